//! E04: saga and idempotency. Compensation calls (a defined activity, matching arguments, not
//! the stage's own activity, retried, on a stage with side effects) and idempotency keys that
//! stay the same from one run to the next.

use crate::check::calls::{bind, find_activity, report_binding};
use crate::check::graph::{FlowGraph, activity_calls, has_op};
use crate::check::settings::StageSettings;
use crate::check::{Ctx, values};
use crate::diagnostics::Code;
use crate::diagnostics::Diagnostic;
use crate::source::FileId;
use crate::syntax::ast::{ConfigEntry, Expr, ExprKind, OpKind, SourceKind, Stage};

/// Functions whose value differs between runs: a key built on them never repeats.
pub(super) const NON_DETERMINISTIC: [&str; 10] = [
    "now",
    "random",
    "rand",
    "uuid",
    "gen_random_uuid",
    "current_timestamp",
    "current_date",
    "current_time",
    "sysdate",
    "localtimestamp",
];

pub fn check_flow(ctx: &mut Ctx, graph: &FlowGraph) {
    for node in &graph.stages {
        let stage = node.stage;
        let Some(config) = &stage.config else {
            continue;
        };
        if let Some(e) = config.get("compensate") {
            compensation(ctx, graph, stage, e);
        }
        if let Some(e) = config.get("idempotency_key") {
            idempotency_key(ctx, graph.file, e);
        }
    }
}

pub fn check_activity(ctx: &mut Ctx, def: crate::check::Def<'_, crate::syntax::ast::Activity>) {
    let Some(config) = &def.node.config else {
        return;
    };
    if let Some(e) = config.get("compensate") {
        compensation_call(ctx, def.file, e, &[def.node.name.name.as_str()], None);
    }
    if let Some(e) = config.get("idempotency_key") {
        idempotency_key(ctx, def.file, e);
    }
}

fn compensation(ctx: &mut Ctx, graph: &FlowGraph, stage: &Stage, e: &ConfigEntry) {
    if let ExprKind::Name(name) = &e.value.kind
        && graph.index_of(&name.name).is_some()
    {
        ctx.emit(
            Diagnostic::error(Code::E0401, graph.file, e.value.span, format!("`compensate` names stage `{}`; it takes an activity call", name.name))
                .with_label("a stage, not an activity")
                .with_help("call the activity that undoes this stage, such as `compensate: refund(order_id: _.order_id)`"),
        );
        return;
    }
    let own: Vec<&str> = activity_calls(stage)
        .iter()
        .map(|c| c.name.name.as_str())
        .collect();
    compensation_call(ctx, graph.file, e, &own, Some(stage));
    if is_pure_query(stage) {
        ctx.emit(
            Diagnostic::warning(
                Code::W0402,
                graph.file,
                e.key.span,
                format!(
                    "stage `{}` only queries data: there is nothing to compensate",
                    stage.name.name
                ),
            )
            .with_label("no side effect to undo")
            .with_help(
                "put `compensate:` on the stage that calls the activity with the side effect",
            ),
        );
    }
}

/// The call of a `compensate:` entry, in a stage or in an activity's defaults. `own` are the
/// activities whose effect it undoes.
fn compensation_call(
    ctx: &mut Ctx,
    file: FileId,
    e: &ConfigEntry,
    own: &[&str],
    stage: Option<&Stage>,
) {
    let ExprKind::Call(call) = &e.value.kind else {
        ctx.emit(
            Diagnostic::error(
                Code::E0401,
                file,
                e.value.span,
                format!(
                    "`compensate` takes an activity call, found {}",
                    values::describe(&e.value)
                ),
            )
            .with_label("not an activity call")
            .with_help("write `compensate: undo_activity(arg: _.column)`"),
        );
        return;
    };
    let unknown = Diagnostic::error(
        Code::E0402,
        file,
        call.name.span,
        format!(
            "`compensate` calls `{}`, which is not an activity of this workspace",
            call.name.name
        ),
    )
    .with_label("no such activity");
    let Some(def) = find_activity(ctx, call, unknown, "with { retries: 3 } = exec(...)") else {
        return;
    };
    if own.contains(&call.name.name.as_str()) {
        let who = stage.map_or("the activity".to_string(), |s| {
            format!("stage `{}`", s.name.name)
        });
        ctx.emit(
            Diagnostic::error(
                Code::E0404,
                file,
                call.name.span,
                format!(
                    "{who} compensates with `{}`, the activity it runs",
                    call.name.name
                ),
            )
            .with_label("the same activity again")
            .with_help("a compensation undoes the effect: call an activity that reverses it"),
        );
    }
    let problems = bind(&def.node.params, &call.args, call.span);
    report_binding(
        ctx,
        file,
        problems,
        Some(Code::E0403),
        "activity",
        &call.name.name,
        Some((def.file, def.node.name.span)),
    );
    if StageSettings::of_activity(def.file, def.node).retries.value == 0 {
        ctx.emit(
            Diagnostic::warning(Code::W0401, file, call.name.span, format!("compensation `{}` has no retries", call.name.name))
                .with_label("runs once")
                .with_secondary(def.file, def.node.name.span, "defined here")
                .with_help(format!("a failed compensation leaves the saga half undone: give `{}` `retries` (and make it idempotent)", call.name.name)),
        );
    }
}

/// A stage that only reads and transforms rows: no activity, child run, jump, save or activation.
fn is_pure_query(stage: &Stage) -> bool {
    matches!(
        stage.body.source.kind,
        SourceKind::From(_) | SourceKind::Merge(_)
    ) && activity_calls(stage).is_empty()
        && !has_op(stage, |k| {
            matches!(
                k,
                OpKind::SaveTo(_) | OpKind::Activate(_) | OpKind::Jump(_) | OpKind::Fork(_)
            )
        })
}

fn idempotency_key(ctx: &mut Ctx, file: FileId, e: &ConfigEntry) {
    let mut calls = Vec::new();
    find_calls(&e.value, &mut calls);
    for (name, span) in calls {
        if NON_DETERMINISTIC.contains(&name.to_ascii_lowercase().as_str()) {
            ctx.emit(
                Diagnostic::error(Code::E0405, file, span, format!("`idempotency_key` calls `{name}()`, which changes on every run"))
                    .with_label("never the same twice")
                    .with_help("build the key from inputs (`_.order_id`), parameters and `run_time`, so a retried run finds its earlier result"),
            );
        }
    }
}

fn find_calls<'a>(expr: &'a Expr, out: &mut Vec<(&'a str, crate::syntax::Span)>) {
    let mut stack = vec![expr];
    while let Some(e) = stack.pop() {
        match &e.kind {
            ExprKind::Call(call) => {
                out.push((&call.name.name, call.name.span));
                stack.extend(call.args.iter().map(|a| &a.value));
            }
            ExprKind::Unary { operand, .. } | ExprKind::IsNull { operand, .. } => {
                stack.push(operand)
            }
            ExprKind::Binary { lhs, rhs, .. } => {
                stack.push(lhs);
                stack.push(rhs);
            }
            ExprKind::Like {
                operand, pattern, ..
            } => {
                stack.push(operand);
                stack.push(pattern);
            }
            ExprKind::InList { operand, list, .. } => {
                stack.push(operand);
                stack.extend(list);
            }
            ExprKind::List(items) => stack.extend(items),
            _ => {}
        }
    }
}
