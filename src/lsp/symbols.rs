//! What names mean across a workspace: the definitions of flows, stages and activities, and
//! every place that refers to one. Definition, references, rename and hover read this.

use crate::check::{FlowGraph, Index, activity_calls, condition_atoms};
use crate::source::FileId;
use crate::syntax::Span;
use crate::syntax::ast::{self, Config, ExprKind, OpKind, SourceKind};

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Kind {
    Flow,
    Stage,
    Activity,
}

/// A defined name.
#[derive(Clone, Debug)]
pub struct Symbol {
    pub kind: Kind,
    pub name: String,
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
    pub fn collect(index: &Index) -> Symbols {
        let mut symbols = Symbols::default();
        let mut activities = std::collections::BTreeMap::new();
        for def in &index.activities {
            let a = def.node;
            activities.insert(a.name.name.to_string(), symbols.defs.len());
            symbols.push(Kind::Activity, &a.name, def.file, a.span, None);
        }
        let mut flows = std::collections::BTreeMap::new();
        for def in &index.flows {
            let f = def.node;
            flows
                .entry(f.name.name.to_string())
                .or_insert(symbols.defs.len());
            symbols.push(Kind::Flow, &f.name, def.file, f.span, None);
        }
        let flow_ref = |symbols: &mut Symbols, file: FileId, name: &ast::Ident| {
            if let Some(&i) = flows.get(name.name.as_str()) {
                symbols.refs.push(Reference {
                    file,
                    span: name.span,
                    symbol: i,
                });
            }
        };
        let activity_ref = |symbols: &mut Symbols, file: FileId, name: &ast::Ident| {
            if let Some(&i) = activities.get(name.name.as_str()) {
                symbols.refs.push(Reference {
                    file,
                    span: name.span,
                    symbol: i,
                });
            }
        };
        for (n, def) in index.flows.iter().enumerate() {
            let (file, flow) = (def.file, def.node);
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
                for edge in graph.upstream(i) {
                    symbols.refs.push(Reference {
                        file,
                        span: edge.span,
                        symbol: first + edge.to,
                    });
                }
                let mut stage_names: Vec<&ast::Ident> = Vec::new();
                if let Some(trigger) = &stage.trigger {
                    // Self references are not edges of the graph, but still name the stage.
                    stage_names.extend(
                        condition_atoms(trigger)
                            .into_iter()
                            .map(|(t, _)| t)
                            .filter(|t| t.name == stage.name.name),
                    );
                }
                for op in &stage.body.ops {
                    if let OpKind::Route(route) = &op.kind {
                        stage_names.extend(route.cases.iter().map(|c| &c.target));
                        stage_names.extend(route.otherwise.iter());
                    }
                    if let OpKind::Jump(target) = &op.kind {
                        flow_ref(&mut symbols, file, &target.name);
                    }
                }
                for name in stage_names {
                    if let Some(to) = graph.index_of(&name.name) {
                        symbols.refs.push(Reference {
                            file,
                            span: name.span,
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
            }
        }
        for def in &index.runs {
            flow_ref(&mut symbols, def.file, &def.node.call.name);
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
            name: name.name.to_string(),
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

    /// Every place a symbol is named, its definition first.
    pub fn occurrences(&self, symbol: usize) -> Vec<(FileId, Span)> {
        let def = &self.defs[symbol];
        let mut places = vec![(def.file, def.span)];
        places.extend(
            self.refs
                .iter()
                .filter(|r| r.symbol == symbol)
                .map(|r| (r.file, r.span)),
        );
        places
    }
}

/// Activity calls in a config block: `compensate:` and the flow hooks.
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
