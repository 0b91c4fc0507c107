//! `while` loops: something to repeat after `while` (E0120), only operators a loop can repeat
//! (E0121), a boolean condition (E0623, typed where the expression rules bind it), and a
//! warning for a condition the loop cannot change (W0104). Names in the condition are the
//! binder's (`exprs.rs`), `iteration()` outside a loop is the binder's too (E0624).

use crate::check::Ctx;
use crate::check::binder::{Meaning, Row, Scope};
use crate::check::functions::{self, Use};
use crate::check::graph::FlowGraph;
use crate::check::rules::exprs::FlowScopes;
use crate::diagnostics::{Code, Diagnostic};
use crate::source::FileId;
use crate::syntax::ast::{Expr, ExprKind, Op, OpKind, Stage};
use crate::value::ValueType;

pub fn check_flow(ctx: &mut Ctx, graph: &FlowGraph) {
    let scopes = FlowScopes::new(graph.flow);
    for node in &graph.stages {
        let stage = node.stage;
        let ops = &stage.body.ops;
        let Some(at) = ops.iter().position(|op| matches!(op.kind, OpKind::While(_))) else {
            continue;
        };
        let OpKind::While(condition) = &ops[at].kind else {
            continue;
        };
        let body = &ops[at + 1..];
        if body.is_empty() {
            ctx.emit(nothing_to_repeat(graph, stage, &ops[at]));
        }
        for op in body {
            if let Some(what) = unrepeatable(&op.kind) {
                ctx.emit(
                    Diagnostic::error(
                        Code::E0121,
                        graph.file,
                        op.span,
                        format!("a `while` loop cannot repeat {what}"),
                    )
                    .with_label("inside the loop")
                    .with_secondary(graph.file, ops[at].span, "the loop repeats from here")
                    .with_help(format!(
                        "move {what} into a stage that reads `{}`: `stage next = from {} | ...`",
                        stage.name.name, stage.name.name
                    )),
                );
            }
        }
        if crate::check::loop_activity(condition).is_none() {
            condition_rules(ctx, graph, &scopes, condition);
        }
    }
}

/// E0120: `while COND` at the end of a pipeline.
fn nothing_to_repeat(graph: &FlowGraph, stage: &Stage, op: &Op) -> Diagnostic {
    Diagnostic::error(
        Code::E0120,
        graph.file,
        op.span,
        format!(
            "`while` ends the pipeline of stage `{}`: nothing to repeat",
            stage.name.name
        ),
    )
    .with_label("no operator after it")
    .with_help("put the operators to repeat after it: `| while has_more | fetch_page(_.cursor)`")
}

/// What an operator after `while` is, when a loop cannot repeat it.
fn unrepeatable(kind: &OpKind) -> Option<&'static str> {
    Some(match kind {
        OpKind::While(_) => "another `while` (one loop per stage)",
        OpKind::Route(_) => "a `route`",
        OpKind::Fork(_) => "a `fork`",
        OpKind::Jump(_) => "a jump (`->`)",
        OpKind::End => "`end()`",
        _ => return None,
    })
}

/// E0623: a condition of type `ty` (as the binder typed it over the loop's rows) that is no
/// boolean.
pub fn not_boolean(file: FileId, condition: &Expr, ty: ValueType) -> Option<Diagnostic> {
    if matches!(ty, ValueType::Boolean | ValueType::Any) {
        return None;
    }
    Some(
        Diagnostic::error(
            Code::E0623,
            file,
            condition.span,
            format!("a `while` condition must be a boolean, this is {}", ty.name()),
        )
        .with_label(format!("{} here", ty.name()))
        .with_help("compare it (`while n > 0`, `while status != 'done'`), or call an activity whose rows decide: `while more_pages()`"),
    )
}

/// W0104 for a condition that is an expression.
fn condition_rules(ctx: &mut Ctx, graph: &FlowGraph, scopes: &FlowScopes, condition: &Expr) {
    let row = Row::unknown();
    let scope = scopes.scope(Some(&row), "a `while` condition");
    if !any_change(condition, &scope) {
        ctx.emit(
            Diagnostic::warning(
                Code::W0104,
                graph.file,
                condition.span,
                "the loop cannot change this condition: it reads no column, signal, `iteration()` or `now()`".to_string(),
            )
            .with_label("the same at every iteration")
            .with_help("read what the loop gives (`while has_more`), bound it (`while iteration() <= 10`), or call an activity that decides: `while not_done()`"),
        );
    }
}

/// Whether the condition reads anything that may differ from one iteration to the next: a
/// column of the rows, a signal, `iteration()`, `now()` or an aggregate over the rows.
fn any_change(condition: &Expr, scope: &Scope) -> bool {
    crate::check::any_expr(condition, &|e| match &e.kind {
        ExprKind::Name(n) => matches!(
            scope.resolve(&n.name),
            Meaning::Column(..) | Meaning::Signal(_)
        ),
        ExprKind::Field(_) => true,
        ExprKind::Call(call) => {
            let name = call.name.name.to_ascii_lowercase();
            name == "iteration"
                || name == "now"
                || functions::lookup(&name).is_some_and(|f| f.used == Use::Aggregate)
        }
        _ => false,
    })
}
