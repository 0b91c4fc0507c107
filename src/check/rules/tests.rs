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

/// The activities every mock of which fails: every call of them fails, whatever the retries.
fn always_failing(test: &Test) -> BTreeSet<&str> {
    let mut mocks: BTreeMap<&str, bool> = BTreeMap::new();
    for statement in &test.statements {
        match statement {
            TestStatement::Mock(mock) => {
                let fails = matches!(mock.outcome, MockOutcome::Fails(_));
                *mocks.entry(&mock.activity.name).or_insert(true) &= fails;
            }
            TestStatement::Real { activities, .. } => {
                for a in activities {
                    mocks.insert(&a.name, false);
                }
            }
            _ => {}
        }
    }
    mocks.into_iter().filter(|(_, f)| *f).map(|(a, _)| a).collect()
}

/// Expectations the test's mocks make impossible: a stage that calls an activity every mock of
/// which fails never succeeds, and neither does a stage that reads it with the default
/// trigger (it is skipped); such a stage neither succeeds nor has rows.
fn never_succeeding(ctx: &mut Ctx, file: FileId, test: &Test, graph: &FlowGraph) {
    let failing = always_failing(test);
    if failing.is_empty() {
        return;
    }
    // Why each stage never succeeds: the activity whose mocks all fail, at the root.
    let mut why: Vec<Option<String>> = vec![None; graph.stages.len()];
    // Stages come in order of writing, which may not be the order of reading: settle.
    loop {
        let mut changed = false;
        for (i, node) in graph.stages.iter().enumerate() {
            if why[i].is_some() || node.fork_parent.is_some() {
                continue;
            }
            let stage = node.stage;
            let calls = activity_calls(stage);
            let each = stage.body.ops.iter().any(|op| matches!(op.kind, OpKind::Each(_) | OpKind::While(_)));
            if let Some(call) = calls.iter().find(|c| failing.contains(c.name.name.as_str()))
                && !each
            {
                why[i] = Some(format!("every mock of `{}` fails", call.name.name));
            } else if plain_trigger(stage)
                && let Some(up) = graph.reads[i].iter().find(|e| why[e.to].is_some())
            {
                why[i] = Some(format!("it reads `{}`, which never succeeds", graph.name(up.to)));
            }
            changed |= why[i].is_some();
        }
        if !changed {
            break;
        }
    }
    for statement in &test.statements {
        let TestStatement::Expect(expect) = statement else { continue };
        let Expectation::Stage { stage, fact } = &expect.what else { continue };
        let Some(Some(reason)) = graph.index_of(&stage.name).map(|i| why[i].clone()) else {
            continue;
        };
        let impossible = match fact {
            StageFact::State(state) => state.name == "success",
            StageFact::Rows(RowsExpect::Count(n)) => n.value > 0,
            StageFact::Rows(RowsExpect::Exactly { rows: TestRows::Inline { rows, .. }, .. }) => !rows.is_empty(),
            _ => false,
        };
        if impossible {
            ctx.emit(
                Diagnostic::error(
                    Code::E0805,
                    file,
                    expect.span,
                    format!("this can never hold: stage `{}` never succeeds in this test", stage.name),
                )
                .with_label(reason)
                .with_help("expect what the mocks make happen, or mock a call that succeeds (`on attempts 1 to 2` fails only those)"),
            );
        }
    }
}

/// A stage that runs only when everything it reads succeeded: no `if`, no `trigger:`, no
/// `on_failure:`.
fn plain_trigger(stage: &Stage) -> bool {
    stage.trigger.is_none()
        && stage
            .config
            .as_ref()
            .is_none_or(|c| c.get("trigger").is_none() && c.get("on_failure").is_none())
}

/// Mocked rows without a column the flow reads from them: with each mocked activity's rows
/// taken as what it prints, the flow's expressions are bound again; a column they name that
/// the rows lack is an error at the mock.
fn mocked_columns(ctx: &mut Ctx, file: FileId, test: &Test, graph: &FlowGraph) {
    let baseline: Vec<(Code, Span)> = missing_columns(ctx, graph, BTreeMap::new())
        .iter()
        .map(|d| (d.code, d.primary.span))
        .collect();
    for (activity, (columns, span)) in mocked_shapes(test) {
        let names = columns.iter().map(|c| format!("`{}`", c.name)).collect::<Vec<_>>().join(", ");
        let assumed = BTreeMap::from([(activity.clone(), Some(columns.into()))]);
        for found in missing_columns(ctx, graph, assumed) {
            if baseline.contains(&(found.code, found.primary.span)) {
                continue;
            }
            ctx.emit(
                Diagnostic::error(
                    Code::E0807,
                    file,
                    span,
                    format!("the flow reads a column that mock `{activity}` does not return: {}", found.message),
                )
                .with_label(format!("columns {names}"))
                .with_secondary(found.primary.file, found.primary.span, "read here")
                .with_help("give the mocked rows the columns the program prints and the flow reads"),
            );
        }
    }
}

/// The problems of missing columns when the activities print rows of these shapes.
fn missing_columns(ctx: &Ctx, graph: &FlowGraph, assumed: BTreeMap<String, Shape>) -> Vec<Diagnostic> {
    let mut scratch = Ctx::new(ctx.workspace, ctx.index, ctx.schedules);
    super::exprs::check_flow_assuming(&mut scratch, graph, assumed);
    scratch
        .out
        .into_iter()
        .filter(|d| matches!(d.code, Code::E0114 | Code::E0615))
        .collect()
}

/// For each activity every `returns` of which gives inline rows with the same columns: those
/// columns (typed by the first row), and where the first such mock's rows are.
fn mocked_shapes(test: &Test) -> BTreeMap<String, (Vec<Column>, Span)> {
    let mut found: BTreeMap<String, Option<(Vec<Column>, Span)>> = BTreeMap::new();
    for statement in &test.statements {
        let TestStatement::Mock(mock) = statement else { continue };
        let MockOutcome::Returns(rows) = &mock.outcome else { continue };
        let shape = match rows {
            TestRows::Inline { rows, columns, span } if !columns.is_empty() => {
                let ty = |i: usize| {
                    rows.first()
                        .and_then(|r| r.get(i))
                        .and_then(crate::check::values::literal_value)
                        .map_or(ValueType::Any, |(_, ty)| ty)
                };
                let columns: Vec<Column> = columns.iter().enumerate().map(|(i, c)| Column::new(c.name.as_str(), ty(i))).collect();
                Some((columns, *span))
            }
            _ => None,
        };
        let entry = found.entry(mock.activity.name.to_string()).or_insert_with(|| shape.clone());
        let same = match (&*entry, &shape) {
            (Some((a, _)), Some((b, _))) => a.iter().map(|c| &c.name).eq(b.iter().map(|c| &c.name)),
            _ => false,
        };
        if !same {
            *entry = None;
        }
    }
    found.into_iter().filter_map(|(a, s)| Some((a, s?))).collect()
}

/// The flows a test's run can reach: its flow, and those that flow calls or jumps to, and so
/// on. Outlines keep what this reads, so a lean workspace knows which flows' trees a test's
/// checks need in full.
pub fn flows_reached<'w>(index: &Index<'w>, test: &Test) -> Vec<Def<'w, Flow>> {
    let mut todo: Vec<Def<'w, Flow>> = test
        .statements
        .iter()
        .filter_map(|s| match s {
            TestStatement::Call { flow, .. } => {
                index.flow(&flow.name.name, flow.version.as_ref().map(|v| v.value))
            }
            _ => None,
        })
        .collect();
    let mut reached: Vec<Def<'w, Flow>> = Vec::new();
    while let Some(def) = todo.pop() {
        if reached.iter().any(|r| std::ptr::eq(r.node, def.node)) {
            continue;
        }
        reached.push(def);
        for node in FlowGraph::new(def.file, def.node).stages {
            let stage = node.stage;
            let mut targets: Vec<&FlowCall> = Vec::new();
            if let SourceKind::CallFlow(c) | SourceKind::Jump(c) = &stage.body.source.kind {
                targets.push(c);
            }
            for op in &stage.body.ops {
                if let OpKind::Jump(c) | OpKind::CallFlow(c) | OpKind::EachCall(c) = &op.kind {
                    targets.push(c);
                }
            }
            todo.extend(targets.into_iter().filter_map(|t| {
                index.flow(&t.name.name, t.version.as_ref().map(|v| v.value))
            }));
        }
    }
    reached
}

/// Every activity a run of `flow` can call: its stages', their compensations, its hooks', and
/// those of the flows it calls or jumps to.
pub fn reached_activities<'w>(index: &Index<'w>, flow: Def<'w, Flow>) -> BTreeSet<&'w str> {
    let mut reached = BTreeSet::new();
    let mut flows_seen: BTreeSet<(&str, Option<u32>)> = BTreeSet::new();
    let mut todo = vec![flow];
    while let Some(def) = todo.pop() {
        let key = (def.node.name.name.as_str(), def.node.version.as_ref().map(|v| v.value));
        if !flows_seen.insert(key) {
            continue;
        }
        for (_, hook) in FlowSettings::of_flow(def.file, def.node).hooks {
            if hook.value.name.name != "activate" {
                reached.insert(hook.value.name.name.as_str());
            }
        }
        let graph = FlowGraph::new(def.file, def.node);
        for node in &graph.stages {
            let stage = node.stage;
            reached.extend(activity_calls(stage).iter().map(|c| c.name.name.as_str()));
            if let Some(undo) = StageSettings::of_stage(index, def.file, stage).compensate.value {
                reached.insert(undo.name.name.as_str());
            }
            let mut targets: Vec<&FlowCall> = Vec::new();
            if let SourceKind::CallFlow(c) | SourceKind::Jump(c) = &stage.body.source.kind {
                targets.push(c);
            }
            for op in &stage.body.ops {
                if let OpKind::Jump(c) | OpKind::CallFlow(c) | OpKind::EachCall(c) = &op.kind {
                    targets.push(c);
                }
            }
            for target in targets {
                if let Some(next) = index.flow(&target.name.name, target.version.as_ref().map(|v| v.value)) {
                    todo.push(next);
                }
            }
        }
    }
    reached.retain(|name| index.activity_by_name.contains_key(name));
    reached
}

fn known_activity(ctx: &mut Ctx, file: FileId, name: &Ident) -> bool {
    if ctx.index.activity_by_name.contains_key(name.name.as_str()) {
        return true;
    }
    let d = Diagnostic::error(
        Code::E0801,
        file,
        name.span,
        format!("`{}` is not an activity of this workspace", name.name),
    )
    .with_label("no such activity");
    let known: Vec<&str> = ctx.index.activity_by_name.keys().copied().collect();
    ctx.emit(with_suggestion(d, &name.name, known, None));
    false
}

fn never_called(ctx: &mut Ctx, file: FileId, name: &Ident, graph: &FlowGraph) {
    ctx.emit(
        Diagnostic::warning(
            Code::W0801,
            file,
            name.span,
            format!(
                "flow `{}` never calls `{}`: this does nothing",
                graph.flow.name.name, name.name
            ),
        )
        .with_label("never called by the run")
        .with_help("remove it, or mock an activity the flow, its compensations, hooks or child flows call"),
    );
}

fn check_mock(ctx: &mut Ctx, file: FileId, mock: &Mock, reached: &BTreeSet<&str>) {
    if known_activity(ctx, file, &mock.activity) && !reached.contains(mock.activity.name.as_str()) {
        ctx.emit(
            Diagnostic::warning(
                Code::W0801,
                file,
                mock.activity.span,
                format!("the test's run never calls `{}`: this mock does nothing", mock.activity.name),
            )
            .with_label("never called by the run")
            .with_help("remove it, or mock an activity the flow, its compensations, hooks or child flows call"),
        );
    }
    if let Some(takes) = &mock.takes {
        duration(ctx, file, takes, "mock duration");
    }
    if let Some((args, _)) = &mock.when {
        called_with(ctx, file, &mock.activity, args);
    }
    if let Some((first, last)) = &mock.attempts
        && (first.value == 0 || last.value < first.value)
    {
        bad_value(ctx, file, first.span.join(last.span), "attempt range", "attempts counted from 1, the first no later than the last: `on attempts 1 to 2`");
    }
    match &mock.outcome {
        MockOutcome::Returns(rows) => check_rows(ctx, file, rows),
        MockOutcome::Fails(Some(code)) if code.value == 0 || code.value > 255 => {
            bad_value(ctx, file, code.span, "exit code", "an exit code from 1 to 255");
        }
        _ => {}
    }
}

fn check_rows(ctx: &mut Ctx, file: FileId, rows: &TestRows) {
    let (rows, columns, span) = match rows {
        TestRows::Inline { rows, columns, span } => (rows, columns, span),
        TestRows::File(path) => {
            let folder = ctx.workspace.sources.get(file).path.parent().map(std::path::Path::to_path_buf);
            let found = folder.unwrap_or_default().join(path.value.as_str());
            if !found.is_file() {
                bad_value(ctx, file, path.span, "rows file", "the path of a CSV, JSON or NDJSON file, relative to this file's folder");
            }
            return;
        }
    };
    if !rows.is_empty() && columns.is_empty() {
        bad_value(ctx, file, *span, "rows", "name their columns: `[[1, 'a']] as (id, name)`");
        return;
    }
    let mut seen = BTreeSet::new();
    for column in columns {
        if !seen.insert(column.name.as_str()) {
            bad_value(ctx, file, column.span, "column name", "each column once");
        }
    }
    for row in rows {
        if row.len() != columns.len() {
            let span = row.first().zip(row.last()).map_or(*span, |(a, b)| a.span.join(b.span));
            let n = columns.len();
            let values = if n == 1 { "1 value".to_string() } else { format!("{n} values") };
            bad_value(ctx, file, span, "row", &format!("{values}, one per column"));
        }
        for value in row {
            if crate::check::values::literal_value(value).is_none() {
                bad_value(ctx, file, value.span, "row value", "a literal: a number, a string, `true`, `null`, a duration or a `timestamp '...'`");
            }
        }
    }
}

fn signal(ctx: &mut Ctx, file: FileId, graph: &FlowGraph, name: &Ident, value: Option<&Expr>) {
    let declared: Vec<&str> = graph
        .flow
        .members
        .iter()
        .filter_map(|m| match m {
            Member::Signal(s) => Some(s.name.name.as_str()),
            _ => None,
        })
        .collect();
    if !declared.contains(&name.name.as_str()) && !matches!(name.name.as_str(), "pause" | "resume") {
        let d = Diagnostic::error(
            Code::E0801,
            file,
            name.span,
            format!("flow `{}` has no signal `{}`", graph.flow.name.name, name.name),
        )
        .with_label("no such signal");
        ctx.emit(with_suggestion(d, &name.name, declared, None));
    }
    if let Some(value) = value
        && crate::check::values::literal_value(value).is_none()
    {
        bad_value(ctx, file, value.span, "signal value", "a literal");
    }
}

/// `upstream FLOW STATE`: a flow the tested flow's start condition or `depends on` names, and
/// how its last run ended.
fn upstream_state(ctx: &mut Ctx, file: FileId, flow: &Flow, upstream: &Ident, state: &Ident) {
    let mut named: Vec<&str> = flow.depends_on.iter().map(|d| d.name.as_str()).collect();
    if let Some(condition) = &flow.condition {
        named.extend(condition_flows(condition));
    }
    if !named.contains(&upstream.name.as_str()) {
        let d = Diagnostic::error(
            Code::E0801,
            file,
            upstream.span,
            format!(
                "flow `{}` does not start after `{}`: neither its `if` nor its `depends on` names it",
                flow.name.name, upstream.name
            ),
        )
        .with_label("not an upstream flow");
        ctx.emit(with_suggestion(d, &upstream.name, named, None));
    }
    let ends = ["success", "failed", "skipped", "cancelled"];
    state_word(ctx, file, state, &ends);
}

fn condition_flows(condition: &Condition) -> Vec<&str> {
    match condition {
        Condition::State { target, .. } => vec![target.name.as_str()],
        Condition::Not(inner, _) => condition_flows(inner),
        Condition::And(a, b) | Condition::Or(a, b) => {
            let mut names = condition_flows(a);
            names.extend(condition_flows(b));
            names
        }
    }
}

fn check_expect(ctx: &mut Ctx, file: FileId, graph: &FlowGraph, expect: &Expect) {
    match &expect.what {
        Expectation::Run(state) => {
            let mut words: Vec<&str> = StateWord::WORDS.to_vec();
            words.push("continued");
            state_word(ctx, file, state, &words);
        }
        Expectation::Exit(_) => {}
        Expectation::Compensations(stages, _) => {
            for stage in stages {
                known_stage(ctx, file, graph, stage);
            }
        }
        Expectation::Hooks(events, _) => {
            for event in events {
                if HookEvent::parse(&event.name).is_none() {
                    let d = Diagnostic::error(
                        Code::E0804,
                        file,
                        event.span,
                        format!("`{}` is not a hook event", event.name),
                    )
                    .with_label("no such event");
                    ctx.emit(with_suggestion(d, &event.name, HookEvent::WORDS.iter().copied(), Some(format!("hook events are {}", HookEvent::WORDS.join(", ")))));
                }
            }
        }
        Expectation::Elapsed(d) => duration(ctx, file, d, "elapsed time"),
        Expectation::Table { rows, .. } => rows_expect(ctx, file, rows),
        Expectation::Stage { stage, fact } => {
            known_stage(ctx, file, graph, stage);
            match fact {
                StageFact::State(state) => state_word(ctx, file, state, StateWord::WORDS),
                StageFact::Attempts(_) => {}
                StageFact::Rows(rows) => rows_expect(ctx, file, rows),
            }
        }
        Expectation::Called { activity, fact } => {
            if !known_activity(ctx, file, activity) {
                return;
            }
            match fact {
                CallFact::Times(_) => {}
                CallFact::Rows(rows) => rows_expect(ctx, file, rows),
                CallFact::With(args, _) => called_with(ctx, file, activity, args),
            }
        }
    }
}

fn called_with(ctx: &mut Ctx, file: FileId, activity: &Ident, args: &[Arg]) {
    let Some(def) = ctx.index.activity_by_name.get(activity.name.as_str()).copied() else {
        return;
    };
    let params: Vec<&str> = def.node.params.iter().map(|p| p.name.name.as_str()).collect();
    for arg in args {
        let Some(name) = &arg.name else {
            bad_value(ctx, file, arg.span(), "argument", "a named argument: `called with (trip = 'T-1')`");
            continue;
        };
        if !params.contains(&name.name.as_str()) {
            let d = Diagnostic::error(
                Code::E0801,
                file,
                name.span,
                format!("activity `{}` has no parameter `{}`", activity.name, name.name),
            )
            .with_label("no such parameter");
            ctx.emit(with_suggestion(d, &name.name, params.iter().copied(), None));
        }
        if crate::check::values::literal_value(&arg.value).is_none() {
            bad_value(ctx, file, arg.value.span, "argument value", "a literal");
        }
    }
}

fn rows_expect(ctx: &mut Ctx, file: FileId, rows: &RowsExpect) {
    if let RowsExpect::Exactly { rows, .. } = rows {
        check_rows(ctx, file, rows);
    }
}

fn known_stage(ctx: &mut Ctx, file: FileId, graph: &FlowGraph, stage: &Ident) -> bool {
    if graph.index_of(&stage.name).is_some() {
        return true;
    }
    let d = Diagnostic::error(
        Code::E0801,
        file,
        stage.span,
        format!("flow `{}` has no stage `{}`", graph.flow.name.name, stage.name),
    )
    .with_label("no such stage");
    ctx.emit(with_suggestion(d, &stage.name, graph.stage_names(), None));
    false
}

fn state_word(ctx: &mut Ctx, file: FileId, state: &Ident, words: &[&str]) {
    if words.contains(&state.name.as_str()) {
        return;
    }
    let d = Diagnostic::error(
        Code::E0804,
        file,
        state.span,
        format!("`{}` is not a state", state.name),
    )
    .with_label("no such state");
    ctx.emit(with_suggestion(d, &state.name, words.iter().copied(), Some(format!("states are {}", words.join(", ")))));
}

fn duration(ctx: &mut Ctx, file: FileId, e: &Expr, what: &str) {
    if !matches!(e.kind, ExprKind::Duration { .. }) {
        bad_value(ctx, file, e.span, what, "a duration such as `90s` or `1h`");
    }
}

fn bad_value(ctx: &mut Ctx, file: FileId, span: Span, what: &str, takes: &str) {
    ctx.emit(
        Diagnostic::error(Code::E0804, file, span, format!("invalid {what} in a test"))
            .with_label("not valid here")
            .with_help(format!("write {takes}")),
    );
}

/// Expectations of one stage that cannot all hold: a stage that never ran has no rows and
/// made no attempt.
fn contradictions(ctx: &mut Ctx, file: FileId, test: &Test) {
    let expects = || {
        test.statements.iter().filter_map(|s| match s {
            TestStatement::Expect(e) => match &e.what {
                Expectation::Stage { stage, fact } => Some((stage, fact, e.span)),
                _ => None,
            },
            _ => None,
        })
    };
    for (stage, fact, span) in expects() {
        let StageFact::State(state) = fact else { continue };
        if !matches!(state.name.as_str(), "skipped" | "cancelled") {
            continue;
        }
        for (other, fact, other_span) in expects() {
            let impossible = other.name == stage.name
                && match fact {
                    StageFact::Attempts(n) => n.value > 0 && state.name == "skipped",
                    StageFact::Rows(RowsExpect::Count(n)) => n.value > 0,
                    StageFact::Rows(RowsExpect::Exactly { rows: TestRows::Inline { rows, .. }, .. }) => !rows.is_empty(),
                    _ => false,
                };
            if impossible {
                ctx.emit(
                    Diagnostic::error(
                        Code::E0805,
                        file,
                        other_span,
                        format!("this can never hold: the test expects stage `{}` {}", stage.name, state.name),
                    )
                    .with_label("never holds")
                    .with_secondary(file, span, format!("`{}` is expected {} here", stage.name, state.name))
                    .with_help(format!("a {} stage has no rows and made no attempt: expect `rows 0`, or another state", state.name)),
                );
            }
        }
    }
}
