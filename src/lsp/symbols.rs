//! What names mean across a workspace: the definitions of flows, stages and activities, and
//! every place that refers to one. Definition, references, rename and hover read this.

use crate::check::{FlowGraph, Index, activity_calls, condition_atoms, on_failure_stage};
use crate::source::FileId;
use crate::syntax::Span;
use crate::syntax::ast::{self, Config, ExprKind, Flow, OpKind, SmolStr, SourceKind};

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Kind {
    Flow,
    Stage,
    Activity,
    Pool,
}

/// A defined name.
#[derive(Clone, Debug)]
pub struct Symbol {
    pub kind: Kind,
    /// Inline for almost every name: a large workspace has hundreds of thousands of symbols.
    pub name: SmolStr,
    pub file: FileId,
    /// Where the name is written in the definition.
    pub span: Span,
    /// The whole definition.
    pub extent: Span,
    /// For a stage: the index of its flow among the symbols.
    pub parent: Option<usize>,
}

/// A place that names a symbol.
#[derive(Clone, Copy, Debug)]
pub struct Reference {
    pub file: FileId,
    pub span: Span,
    pub symbol: usize,
}

#[derive(Default)]
pub struct Symbols {
    pub defs: Vec<Symbol>,
    pub refs: Vec<Reference>,
}

impl Symbols {
    /// The symbols of the workspace `index` holds. `flows` calls its argument on flows of the
    /// index in full (the index may hold outlines, which have no stage bodies), in order, each
    /// with its place among the index's flows. Called on every flow, it finds every symbol;
    /// on the flows of some chunks, it finds every symbol and reference written there.
    pub fn collect(
        index: &Index,
        flows: impl FnOnce(&mut dyn FnMut(usize, FileId, &Flow)),
    ) -> Symbols {
        let mut symbols = Symbols::default();
        let mut activities = std::collections::BTreeMap::new();
        for def in &index.activities {
            let a = def.node;
            activities.insert(a.name.name.to_string(), symbols.defs.len());
            symbols.push(Kind::Activity, &a.name, def.file, a.span, None);
        }
        let mut pool_refs: Vec<(FileId, ast::Ident)> = Vec::new();
        let mut flow_symbols = std::collections::BTreeMap::new();
        for def in &index.flows {
            let f = def.node;
            flow_symbols
                .entry(f.name.name.to_string())
                .or_insert(symbols.defs.len());
            symbols.push(Kind::Flow, &f.name, def.file, f.span, None);
        }
        // A name that refers to a flow or an activity, when one has that name.
        let reference = |defined: &std::collections::BTreeMap<String, usize>,
                         symbols: &mut Symbols,
                         file: FileId,
                         name: &ast::Ident| {
            if let Some(&symbol) = defined.get(name.name.as_str()) {
                symbols.refs.push(Reference {
                    file,
                    span: name.span,
                    symbol,
                });
            }
        };
        let flow_ref = |symbols: &mut Symbols, file, name: &ast::Ident| {
            reference(&flow_symbols, symbols, file, name)
        };
        let activity_ref = |symbols: &mut Symbols, file, name: &ast::Ident| {
            reference(&activities, symbols, file, name)
        };
        flows(&mut |n, file, flow| {
            // The flow's own symbol: flows are pushed after the activities, in order.
            let me = index.activities.len() + n;
            for dependency in &flow.depends_on {
                flow_ref(&mut symbols, file, dependency);
            }
            if let Some(condition) = &flow.condition {
                for (target, _) in condition_atoms(condition) {
                    flow_ref(&mut symbols, file, target);
                }
            }
            for call in config_calls(flow.config.as_ref()) {
                activity_ref(&mut symbols, file, &call.name);
            }
            let graph = FlowGraph::new(file, flow);
            let first = symbols.defs.len();
            for node in &graph.stages {
                let stage = node.stage;
                symbols.push(Kind::Stage, &stage.name, file, stage.span, Some(me));
            }
            for (i, node) in graph.stages.iter().enumerate() {
                let stage = node.stage;
                // What it reads (`from`, `merge`, `join`); the graph's waits also hold
                // `on_failure` edges, which point the other way, so triggers are read here.
                for edge in &graph.reads[i] {
                    symbols.refs.push(Reference {
                        file,
                        span: edge.span,
                        symbol: first + edge.to,
                    });
                }
                let mut stage_names: Vec<(&str, Span)> = Vec::new();
                if let Some(trigger) = &stage.trigger {
                    stage_names.extend(
                        condition_atoms(trigger)
                            .into_iter()
                            .map(|(t, _)| (t.name.as_str(), t.span)),
                    );
                }
                if let Some((fallback, span)) = on_failure_stage(stage) {
                    // `on_failure: 'name'` as a string: the name is inside the quotes.
                    let quoted = span.end as usize - span.start as usize == fallback.len() + 2;
                    let span = if quoted {
                        Span::new(span.start as usize + 1, span.end as usize - 1)
                    } else {
                        span
                    };
                    stage_names.push((fallback, span));
                }
                for op in &stage.body.ops {
                    if let OpKind::Route(route) = &op.kind {
                        let targets = route.cases.iter().map(|c| &c.target);
                        stage_names.extend(
                            targets
                                .chain(route.otherwise.iter())
                                .map(|t| (t.name.as_str(), t.span)),
                        );
                    }
                    if let OpKind::Jump(target)
                    | OpKind::CallFlow(target)
                    | OpKind::EachCall(target) = &op.kind
                    {
                        flow_ref(&mut symbols, file, &target.name);
                    }
                }
                for (name, span) in stage_names {
                    if let Some(to) = graph.index_of(name) {
                        symbols.refs.push(Reference {
                            file,
                            span,
                            symbol: first + to,
                        });
                    }
                }
                if let SourceKind::CallFlow(target) | SourceKind::Jump(target) =
                    &stage.body.source.kind
                {
                    flow_ref(&mut symbols, file, &target.name);
                }
                for call in activity_calls(stage) {
                    activity_ref(&mut symbols, file, &call.name);
                }
                for call in config_calls(stage.config.as_deref()) {
                    activity_ref(&mut symbols, file, &call.name);
                }
                pool_refs.extend(pool_ref(file, stage.config.as_deref()));
            }
        });
        for def in &index.runs {
            flow_ref(&mut symbols, def.file, &def.node.call.name);
        }
        for def in &index.activities {
            pool_refs.extend(pool_ref(def.file, def.node.config.as_ref()));
        }
        // Pools last: a flow's symbol is found by its position after the activities.
        let mut pools = std::collections::BTreeMap::new();
        for def in &index.pools {
            pools
                .entry(def.node.name.name.to_string())
                .or_insert(symbols.defs.len());
            symbols.push(Kind::Pool, &def.node.name, def.file, def.node.span, None);
        }
        for (file, name) in pool_refs {
            reference(&pools, &mut symbols, file, &name);
        }
        symbols
    }

    fn push(
        &mut self,
        kind: Kind,
        name: &ast::Ident,
        file: FileId,
        extent: Span,
        parent: Option<usize>,
    ) {
        self.defs.push(Symbol {
            kind,
            name: name.name.clone(),
            file,
            span: name.span,
            extent,
            parent,
        });
    }

    /// The symbol named at a byte offset of a file: at its definition or at a reference.
    pub fn at(&self, file: FileId, offset: usize) -> Option<usize> {
        let inside = |span: Span| span.start as usize <= offset && offset <= span.end as usize;
        self.defs
            .iter()
            .position(|d| d.file == file && inside(d.span))
            .or_else(|| {
                self.refs
                    .iter()
                    .find(|r| r.file == file && inside(r.span))
                    .map(|r| r.symbol)
            })
    }

    /// Every place a symbol is named, its definitions first. The versions of a flow share
    /// its name, so they count as one symbol.
    pub fn occurrences(&self, symbol: usize) -> Vec<(FileId, Span)> {
        let def = &self.defs[symbol];
        let same: Vec<usize> = match def.kind {
            Kind::Flow => (0..self.defs.len())
                .filter(|&i| self.defs[i].kind == Kind::Flow && self.defs[i].name == def.name)
                .collect(),
            _ => vec![symbol],
        };
        let mut places: Vec<(FileId, Span)> = same
            .iter()
            .map(|&i| (self.defs[i].file, self.defs[i].span))
            .collect();
        places.extend(
            self.refs
                .iter()
                .filter(|r| same.contains(&r.symbol))
                .map(|r| (r.file, r.span)),
        );
        places
    }
}

/// Activity calls in a config block: `compensate:` and the flow hooks.
/// The pool a block names (`pool: gpu`).
fn pool_ref(file: FileId, config: Option<&Config>) -> Option<(FileId, ast::Ident)> {
    match &config?.get("pool")?.value.kind {
        ExprKind::Name(name) => Some((file, name.clone())),
        _ => None,
    }
}

fn config_calls(config: Option<&Config>) -> Vec<&ast::Call> {
    config
        .map(|c| {
            c.entries
                .iter()
                .filter_map(|e| match &e.value.kind {
                    ExprKind::Call(call) => Some(&**call),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default()
}
