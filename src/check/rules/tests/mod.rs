//! `test` items (E08xx, docs/testing.md): a test runs one flow; the names it uses are its
//! flow's stages, signals and the workspace's activities; its values have the form they need;
//! every activity the run can reach is mocked or let run, and every mock is of one it reaches.

use super::calls;
use crate::check::model::graph::{FlowGraph, activity_calls};
use crate::check::model::settings::{FlowSettings, StageSettings};
use crate::check::binder::{Column, Shape};
use crate::check::{Ctx, Def, Index, with_suggestion};
use crate::value::ValueType;
use std::collections::BTreeMap;
use crate::diagnostics::{Code, Diagnostic};
use crate::source::FileId;
use crate::span::Span;
use crate::syntax::ast::*;
use crate::vocabulary::{HookEvent, StateWord};
use std::collections::BTreeSet;

mod columns;
mod impossible;
mod names;
mod reach;
mod values;

use columns::mocked_columns;
use impossible::{contradictions, never_succeeding};
use names::{called_with, known_activity, known_stage, never_called, signal, upstream_state};
pub use reach::{flows_reached, reached_activities};
use values::{bad_value, check_expect, check_mock, duration, state_word};

pub fn check_workspace(ctx: &mut Ctx) {
    let mut seen: BTreeMap<&str, Def<Test>> = BTreeMap::new();
    for def in ctx.index.tests.clone() {
        check_test(ctx, def);
        let name = def.node.name.name.as_str();
        match seen.get(name) {
            Some(first) => ctx.emit(
                Diagnostic::error(
                    Code::E0808,
                    def.file,
                    def.node.name.span,
                    format!("a second test named `{name}`"),
                )
                .with_label("named again")
                .with_secondary(first.file, first.node.name.span, "first named here")
                .with_help("give each test of the workspace its own name: `--filter` and reports tell them apart by it"),
            ),
            None => {
                seen.insert(name, def);
            }
        }
    }
}

fn check_test(ctx: &mut Ctx, def: Def<Test>) {
    let (file, test) = (def.file, def.node);
    let calls: Vec<(&FlowCall, Option<&Expr>, Span)> = test
        .statements
        .iter()
        .filter_map(|s| match s {
            TestStatement::Call { flow, at, span } => Some((flow, at.as_ref(), *span)),
            _ => None,
        })
        .collect();
    let Some(&(call, at, call_span)) = calls.first() else {
        ctx.emit(
            Diagnostic::error(
                Code::E0802,
                file,
                test.name.span,
                format!("test `{}` runs no flow", test.name.name),
            )
            .with_label("no `call`")
            .with_help("say which flow the test runs: `call FlowName(arg = value)`"),
        );
        return;
    };
    for &(_, _, span) in &calls[1..] {
        ctx.emit(
            Diagnostic::error(Code::E0802, file, span, "a test runs one flow")
                .with_label("a second `call`")
                .with_secondary(file, call_span, "the test's run")
                .with_help("write another `test` for the other run"),
        );
    }
    calls::flow_call(ctx, file, call, "call");
    if let Some(at) = at
        && !matches!(at.kind, ExprKind::Time { ty: Type::Timestamp, .. })
    {
        bad_value(ctx, file, at.span, "run time", "a timestamp such as `timestamp '2026-03-01T09:00:00Z'`");
    }
    let version = call.version.as_ref().map(|v| v.value);
    let Some(flow) = ctx.index.flow(&call.name.name, version) else {
        return;
    };
    let graph = FlowGraph::new(flow.file, flow.node);
    let reached = reached_activities(ctx.index, flow);
    let mut answered: BTreeSet<&str> = BTreeSet::new();
    for statement in &test.statements {
        match statement {
            TestStatement::Call { .. } => {}
            TestStatement::Mock(mock) => {
                answered.insert(&mock.activity.name);
                check_mock(ctx, file, mock, &reached);
            }
            TestStatement::Real { activities, .. } => {
                for name in activities {
                    answered.insert(&name.name);
                    if known_activity(ctx, file, name) && !reached.contains(name.name.as_str()) {
                        never_called(ctx, file, name, &graph);
                    }
                }
            }
            TestStatement::Signal { name, value, at, .. } => {
                signal(ctx, file, &graph, name, value.as_ref());
                duration(ctx, file, at, "signal time");
            }
            TestStatement::Expect(expect) => check_expect(ctx, file, &graph, expect),
            TestStatement::Upstream { flow: upstream, state, .. } => {
                upstream_state(ctx, file, flow.node, upstream, state);
            }
        }
    }
    let unanswered: Vec<&str> = reached
        .iter()
        .copied()
        .filter(|a| !answered.contains(a))
        .collect();
    if !unanswered.is_empty() {
        let names = unanswered
            .iter()
            .map(|a| format!("`{a}`"))
            .collect::<Vec<_>>()
            .join(", ");
        ctx.emit(
            Diagnostic::error(
                Code::E0803,
                file,
                call.name.span,
                format!("test `{}` would run {names} for real", test.name.name),
            )
            .with_label("its run calls activities the test does not mock")
            .with_help(format!(
                "mock each (`mock {} returns []`, `fails with 2`, `takes 1h`, `never ends`), or let it run its program with `real {}`",
                unanswered[0], unanswered[0]
            )),
        );
    }
    contradictions(ctx, file, test);
    never_succeeding(ctx, file, test, &graph);
    mocked_columns(ctx, file, test, &graph);
}
