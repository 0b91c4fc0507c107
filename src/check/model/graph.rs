//! One flow's stages, fork children included, and the stages each one reads or waits for.

use crate::source::FileId;
use crate::syntax::Span;
use crate::syntax::ast::{Condition, Flow, Member, OpKind, SourceKind, SourceRef, Stage};
use std::collections::BTreeMap;

pub struct StageNode<'w> {
    pub stage: &'w Stage,
    /// The stage whose `fork { }` holds this one.
    pub fork_parent: Option<usize>,
}

/// A reference from one stage to another, with where it is written.
#[derive(Clone, Copy, Debug)]
pub struct Edge {
    pub to: usize,
    pub span: Span,
}

pub struct FlowGraph<'w> {
    pub file: FileId,
    pub flow: &'w Flow,
    pub stages: Vec<StageNode<'w>>,
    /// The first stage of each name.
    pub by_name: BTreeMap<&'w str, usize>,
    /// Stages each stage reads rows from (`from`, `merge`, `join`).
    pub reads: Vec<Vec<Edge>>,
    /// Stages each stage's `if` trigger names.
    pub waits: Vec<Vec<Edge>>,
    /// For each stage, the stages whose `on_failure` names it.
    failing: Vec<Vec<usize>>,
}

impl<'w> FlowGraph<'w> {
    pub fn new(file: FileId, flow: &'w Flow) -> Self {
        let mut stages = Vec::new();
        for member in &flow.members {
            if let Member::Stage(stage) = member {
                collect(stage, None, &mut stages);
            }
        }
        let mut by_name = BTreeMap::new();
        for (i, node) in stages.iter().enumerate() {
            by_name.entry(node.stage.name.name.as_str()).or_insert(i);
        }
        let mut graph = FlowGraph {
            file,
            flow,
            reads: vec![Vec::new(); stages.len()],
            waits: vec![Vec::new(); stages.len()],
            failing: vec![Vec::new(); stages.len()],
            stages,
            by_name,
        };
        for i in 0..graph.stages.len() {
            let stage = graph.stages[i].stage;
            let mut reads = Vec::new();
            for (name, span) in read_names(stage).into_iter().chain(failed_reads(stage)) {
                if let Some(&to) = graph.by_name.get(name) {
                    reads.push(Edge { to, span });
                }
            }
            let mut waits = Vec::new();
            if let Some(trigger) = &stage.trigger {
                for (target, _) in condition_atoms(trigger) {
                    // A stage naming itself is reported by the trigger rules (E0302), not as
                    // a cycle.
                    if let Some(&to) = graph.by_name.get(target.name.as_str())
                        && to != i
                    {
                        waits.push(Edge {
                            to,
                            span: target.span,
                        });
                    }
                }
            }
            graph.reads[i] = reads;
            graph.waits[i] = waits;
        }
        // `on_failure: fallback` makes the fallback wait for the failing stage.
        for i in 0..graph.stages.len() {
            let Some((fallback, span)) = on_failure_stage(graph.stages[i].stage) else {
                continue;
            };
            let Some(&f) = graph.by_name.get(fallback) else {
                continue;
            };
            graph.failing[f].push(i);
            if f != i && !graph.waits[f].iter().any(|e| e.to == i) {
                graph.waits[f].push(Edge { to: i, span });
            }
        }
        graph
    }

    /// Stages whose `on_failure` names stage `i`.
    pub fn failing_into(&self, i: usize) -> Vec<usize> {
        // Stages of the same name as `i` (a duplicate, reported elsewhere) share its fallbacks.
        self.by_name
            .get(self.name(i))
            .map_or_else(Vec::new, |&first| self.failing[first].clone())
    }

    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.by_name.get(name).copied()
    }

    pub fn name(&self, i: usize) -> &'w str {
        &self.stages[i].stage.name.name
    }

    /// Every stage this one depends on: what it reads and what its trigger names.
    pub fn upstream(&self, i: usize) -> impl Iterator<Item = Edge> + '_ {
        self.reads[i].iter().chain(&self.waits[i]).copied()
    }

    pub fn stage_names(&self) -> impl Iterator<Item = &'w str> + '_ {
        self.by_name.keys().copied()
    }
}

fn collect<'w>(stage: &'w Stage, fork_parent: Option<usize>, out: &mut Vec<StageNode<'w>>) {
    let me = out.len();
    out.push(StageNode { stage, fork_parent });
    for op in &stage.body.ops {
        if let OpKind::Fork(children) = &op.kind {
            for child in children {
                collect(child, Some(me), out);
            }
        }
    }
}

/// Names a stage reads rows from: `from` and `join` names and `merge` inputs. Names that are
/// not stages are tables of the workspace.
pub fn read_names(stage: &Stage) -> Vec<(&str, Span)> {
    let mut names = Vec::new();
    match &stage.body.source.kind {
        SourceKind::From(refs) => {
            for r in refs {
                if let SourceRef::Name(n) = r {
                    names.push((n.name.as_str(), n.span));
                }
            }
        }
        SourceKind::Merge(inputs) => names.extend(inputs.iter().map(|n| (n.name.as_str(), n.span))),
        _ => {}
    }
    for op in &stage.body.ops {
        if let OpKind::Join(join) = &op.kind
            && let SourceRef::Name(n) = &join.source
        {
            names.push((n.name.as_str(), n.span));
        }
    }
    names
}

/// What a stage reads by name: the sources of its `from` and of its `join`s.
pub fn source_refs(stage: &Stage) -> Vec<&SourceRef> {
    let mut refs: Vec<&SourceRef> = Vec::new();
    if let SourceKind::From(sources) = &stage.body.source.kind {
        refs.extend(sources);
    }
    for op in &stage.body.ops {
        if let OpKind::Join(join) = &op.kind {
            refs.push(&join.source);
        }
    }
    refs
}

/// The stages whose failed items a stage reads (`from failed(payouts)`).
pub fn failed_reads(stage: &Stage) -> Vec<(&str, Span)> {
    source_refs(stage)
        .into_iter()
        .filter_map(|r| match r {
            SourceRef::Failed(n) => Some((n.name.as_str(), n.span)),
            _ => None,
        })
        .collect()
}

/// The `name.state` atoms of a condition, in order.
pub fn condition_atoms(
    condition: &Condition,
) -> Vec<(&crate::syntax::ast::Ident, &crate::syntax::ast::Ident)> {
    let mut atoms = Vec::new();
    let mut stack = vec![condition];
    while let Some(c) = stack.pop() {
        match c {
            Condition::State { target, state } => atoms.push((target, state)),
            Condition::Not(inner, _) => stack.push(inner),
            Condition::And(a, b) | Condition::Or(a, b) => {
                stack.push(b);
                stack.push(a);
            }
        }
    }
    atoms
}

/// The stage an `on_failure:` entry names (not `fail` or `ignore`), with where it is written.
pub fn on_failure_stage(stage: &Stage) -> Option<(&str, Span)> {
    let entry = stage.config.as_ref()?.get("on_failure")?;
    let word = super::values::word(&entry.value)?;
    match crate::vocabulary::OnFailure::parse(word) {
        crate::vocabulary::OnFailure::Stage(_) => Some((word, entry.value.span)),
        _ => None,
    }
}

/// The activity calls a stage makes: its source, `each`, and operators.
pub fn activity_calls(stage: &Stage) -> Vec<&crate::syntax::ast::Call> {
    let mut calls = Vec::new();
    if let SourceKind::Activity(call) = &stage.body.source.kind {
        calls.push(&**call);
    }
    for op in &stage.body.ops {
        match &op.kind {
            OpKind::Activity(call) | OpKind::Each(call) => calls.push(call),
            OpKind::While(condition) => calls.extend(loop_activity(condition)),
            _ => {}
        }
    }
    calls
}

/// The activity a `while` calls to decide (`while more_pages()`): its condition is a call of
/// a name that is no function of the table. The loop goes on while the activity prints a row.
pub fn loop_activity(condition: &crate::syntax::ast::Expr) -> Option<&crate::syntax::ast::Call> {
    match &condition.kind {
        crate::syntax::ast::ExprKind::Call(call)
            if crate::check::functions::lookup(&call.name.name).is_none() =>
        {
            Some(call)
        }
        _ => None,
    }
}

pub fn has_op(stage: &Stage, pred: impl Fn(&OpKind) -> bool) -> bool {
    stage.body.ops.iter().any(|op| pred(&op.kind))
}

/// A node on the search path: the node, its edges, and the index of the next edge to follow.
type Visit<L> = (usize, Vec<(usize, L)>, usize);

/// Cycles of a directed graph of `n` nodes, found by depth-first search; `edges(i)` lists the
/// edges of node `i` as (target, label). Each cycle lists its nodes in search order, each with
/// the edge it leaves by; a node belongs to at most one reported cycle.
pub fn find_cycles<L: Copy>(
    n: usize,
    edges: impl Fn(usize) -> Vec<(usize, L)>,
) -> Vec<Vec<(usize, L)>> {
    let mut state = vec![0u8; n]; // 0 new, 1 on the path, 2 done
    let mut in_cycle = vec![false; n];
    let mut cycles = Vec::new();
    for start in 0..n {
        if state[start] != 0 {
            continue;
        }
        let mut path: Vec<Visit<L>> = vec![(start, edges(start), 0)];
        state[start] = 1;
        while let Some(top) = path.last_mut() {
            let Some(&(to, _)) = top.1.get(top.2) else {
                state[top.0] = 2;
                path.pop();
                continue;
            };
            top.2 += 1;
            match state[to] {
                0 => {
                    state[to] = 1;
                    path.push((to, edges(to), 0));
                }
                1 => {
                    let at = path.iter().position(|(s, _, _)| *s == to).unwrap_or(0);
                    let cycle: Vec<(usize, L)> = path[at..]
                        .iter()
                        .map(|(s, out, next)| (*s, out[next - 1].1))
                        .collect();
                    if cycle.iter().all(|(s, _)| !in_cycle[*s]) {
                        cycle.iter().for_each(|(s, _)| in_cycle[*s] = true);
                        cycles.push(cycle);
                    }
                }
                _ => {}
            }
        }
    }
    cycles
}

/// Whether `e` or any expression inside it satisfies `pred`.
pub fn any_expr(
    e: &crate::syntax::ast::Expr,
    pred: &dyn Fn(&crate::syntax::ast::Expr) -> bool,
) -> bool {
    use crate::syntax::ast::ExprKind as K;
    if pred(e) {
        return true;
    }
    match &e.kind {
        K::Call(call) => call.args.iter().any(|a| any_expr(&a.value, pred)),
        K::List(items) => items.iter().any(|i| any_expr(i, pred)),
        K::Unary { operand, .. } | K::IsNull { operand, .. } => any_expr(operand, pred),
        K::Binary { lhs, rhs, .. } => any_expr(lhs, pred) || any_expr(rhs, pred),
        K::InList { operand, list, .. } => {
            any_expr(operand, pred) || list.iter().any(|i| any_expr(i, pred))
        }
        K::Like {
            operand, pattern, ..
        } => any_expr(operand, pred) || any_expr(pattern, pred),
        _ => false,
    }
}

/// Whether `e` calls the function `name`.
pub fn calls_function(e: &crate::syntax::ast::Expr, name: &str) -> bool {
    any_expr(e, &|e| {
        matches!(&e.kind, crate::syntax::ast::ExprKind::Call(c) if c.name.name.eq_ignore_ascii_case(name))
    })
}

/// The stage's key is a loop's, evaluated at each iteration: it calls `iteration()` in a
/// stage with `while` and no `each` (an `each` evaluates its key per item).
pub fn key_per_iteration(stage: &Stage, key: &crate::syntax::ast::Expr) -> bool {
    has_op(stage, |k| matches!(k, OpKind::While(_)))
        && !has_op(stage, |k| matches!(k, OpKind::Each(_) | OpKind::EachCall(_)))
        && calls_function(key, "iteration")
}
