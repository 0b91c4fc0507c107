//! The values of a test: mocks, rows, states, durations, expectations (E0804).

use super::*;

pub(super) fn check_mock(ctx: &mut Ctx, file: FileId, mock: &Mock, reached: &BTreeSet<&str>) {
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

pub(super) fn check_rows(ctx: &mut Ctx, file: FileId, rows: &TestRows) {
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

pub(super) fn check_expect(ctx: &mut Ctx, file: FileId, graph: &FlowGraph, expect: &Expect) {
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

pub(super) fn rows_expect(ctx: &mut Ctx, file: FileId, rows: &RowsExpect) {
    if let RowsExpect::Exactly { rows, .. } = rows {
        check_rows(ctx, file, rows);
    }
}

pub(super) fn state_word(ctx: &mut Ctx, file: FileId, state: &Ident, words: &[&str]) {
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

pub(super) fn duration(ctx: &mut Ctx, file: FileId, e: &Expr, what: &str) {
    if !matches!(e.kind, ExprKind::Duration { .. }) {
        bad_value(ctx, file, e.span, what, "a duration such as `90s` or `1h`");
    }
}

pub(super) fn bad_value(ctx: &mut Ctx, file: FileId, span: Span, what: &str, takes: &str) {
    ctx.emit(
        Diagnostic::error(Code::E0804, file, span, format!("invalid {what} in a test"))
            .with_label("not valid here")
            .with_help(format!("write {takes}")),
    );
}
