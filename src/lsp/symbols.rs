//! What names mean across a workspace: the definitions of flows, stages and activities, and
//! every place that refers to one. Definition, references, rename and hover read this.

use crate::check::{FlowGraph, Index, activity_calls, condition_atoms, on_failure_stage};
use crate::source::FileId;
use crate::syntax::Span;
use crate::syntax::ast::{self, Config, ExprKind, Flow, OpKind, SmolStr, SourceKind};
use std::collections::BTreeMap;

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
        let mut c = Collector::default();
        for def in &index.activities {
            let a = def.node;
            c.activities
                .insert(a.name.name.to_string(), c.symbols.defs.len());
            c.symbols
                .push(Kind::Activity, &a.name, def.file, a.span, None);
        }
        for def in &index.flows {
            let f = def.node;
            c.flows
                .entry(f.name.name.to_string())
                .or_insert(c.symbols.defs.len());
            c.symbols.push(Kind::Flow, &f.name, def.file, f.span, None);
        }
        flows(&mut |n, file, flow| {
            // The flow's own symbol: flows are pushed after the activities, in order.
            c.flow(index.activities.len() + n, file, flow)
        });
        for def in &index.runs {
            c.flow_ref(def.file, &def.node.call.name);
        }
        for def in &index.tests {
            c.test_refs(def.file, def.node);
        }
        for def in &index.activities {
            c.pool_refs
                .extend(pool_ref(def.file, def.node.config.as_ref()));
        }
        // Pools last: a flow's symbol is found by its position after the activities.
        let mut symbols = c.symbols;
        let mut pools = BTreeMap::new();
        for def in &index.pools {
            pools
                .entry(def.node.name.name.to_string())
                .or_insert(symbols.defs.len());
            symbols.push(Kind::Pool, &def.node.name, def.file, def.node.span, None);
        }
        for (file, name) in c.pool_refs {
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
/// What [`Symbols::collect`] has found so far.
#[derive(Default)]
struct Collector {
    symbols: Symbols,
    /// The symbols of activities and flows, by name.
    activities: BTreeMap<String, usize>,
    flows: BTreeMap<String, usize>,
    /// Names of pools, defined last (their symbols come after the flows').
    pool_refs: Vec<(FileId, ast::Ident)>,
}

impl Collector {
    fn flow_ref(&mut self, file: FileId, name: &ast::Ident) {
        reference(&self.flows, &mut self.symbols, file, name)
    }

    fn activity_ref(&mut self, file: FileId, name: &ast::Ident) {
        reference(&self.activities, &mut self.symbols, file, name)
    }

    /// What a test names: its flow, that flow's stages, activities, upstream flows.
    fn test_refs(&mut self, file: FileId, test: &ast::Test) {
        use ast::{Expectation, TestStatement};
        let flow = test.statements.iter().find_map(|s| match s {
            TestStatement::Call { flow, .. } => self.flows.get(flow.name.name.as_str()).copied(),
            _ => None,
        });
        for statement in &test.statements {
            match statement {
                TestStatement::Call { flow, .. } => self.flow_ref(file, &flow.name),
                TestStatement::Upstream { flow, .. } => self.flow_ref(file, flow),
                TestStatement::Mock(mock) => self.activity_ref(file, &mock.activity),
                TestStatement::Real { activities, .. } => {
                    for activity in activities {
                        self.activity_ref(file, activity);
                    }
                }
                TestStatement::Signal { .. } => {}
                TestStatement::Expect(expect) => match &expect.what {
                    Expectation::Stage { stage, .. } => self.stage_ref(file, flow, stage),
                    Expectation::Compensations(stages, _) => {
                        for stage in stages {
                            self.stage_ref(file, flow, stage);
                        }
                    }
                    Expectation::Called { activity, .. } => self.activity_ref(file, activity),
                    _ => {}
                },
            }
        }
    }

    /// A stage of the flow whose symbol is `flow`, named in a test.
    fn stage_ref(&mut self, file: FileId, flow: Option<usize>, stage: &ast::Ident) {
        let Some(flow) = flow else { return };
        let found = self.symbols.defs.iter().position(|d| {
            d.kind == Kind::Stage && d.parent == Some(flow) && d.name == stage.name
        });
        if let Some(symbol) = found {
            self.symbols.refs.push(Reference {
                file,
                span: stage.span,
                symbol,
            });
        }
    }

    /// A flow in full, whose own symbol is `me`: its stages, and what it and they name.
    fn flow(&mut self, me: usize, file: FileId, flow: &Flow) {
        for dependency in &flow.depends_on {
            self.flow_ref(file, dependency);
        }
        if let Some(condition) = &flow.condition {
            for (target, _) in condition_atoms(condition) {
                self.flow_ref(file, target);
            }
        }
        for call in config_calls(flow.config.as_ref()) {
            self.activity_ref(file, &call.name);
        }
        let graph = FlowGraph::new(file, flow);
        let first = self.symbols.defs.len();
        for node in &graph.stages {
            let stage = node.stage;
            self.symbols
                .push(Kind::Stage, &stage.name, file, stage.span, Some(me));
        }
        for i in 0..graph.stages.len() {
            self.stage_refs(&graph, i, first);
        }
    }

    /// What stage `i` of `graph` names; the flow's stages are the symbols from `first` on.
    fn stage_refs(&mut self, graph: &FlowGraph, i: usize, first: usize) {
        let file = graph.file;
        let stage = graph.stages[i].stage;
        // What it reads (`from`, `merge`, `join`); the graph's waits also hold
        // `on_failure` edges, which point the other way, so triggers are read here.
        for edge in &graph.reads[i] {
            self.symbols.refs.push(Reference {
                file,
                span: edge.span,
                symbol: first + edge.to,
            });
        }
        for op in &stage.body.ops {
            if let OpKind::Jump(target) | OpKind::CallFlow(target) | OpKind::EachCall(target) =
                &op.kind
            {
                self.flow_ref(file, &target.name);
            }
        }
        for (name, span) in named_stages(stage) {
            if let Some(to) = graph.index_of(name) {
                self.symbols.refs.push(Reference {
                    file,
                    span,
                    symbol: first + to,
                });
            }
        }
        if let SourceKind::CallFlow(target) | SourceKind::Jump(target) = &stage.body.source.kind {
            self.flow_ref(file, &target.name);
        }
        for call in activity_calls(stage) {
            self.activity_ref(file, &call.name);
        }
        for call in config_calls(stage.config.as_deref()) {
            self.activity_ref(file, &call.name);
        }
        self.pool_refs
            .extend(pool_ref(file, stage.config.as_deref()));
    }
}

/// A name that refers to a flow, an activity or a pool, when one has that name.
fn reference(
    defined: &BTreeMap<String, usize>,
    symbols: &mut Symbols,
    file: FileId,
    name: &ast::Ident,
) {
    if let Some(&symbol) = defined.get(name.name.as_str()) {
        symbols.refs.push(Reference {
            file,
            span: name.span,
            symbol,
        });
    }
}

/// The names of other stages of its flow a stage writes: in its trigger, its `on_failure`
/// and its routes.
fn named_stages(stage: &ast::Stage) -> Vec<(&str, Span)> {
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
    }
    stage_names
}

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
