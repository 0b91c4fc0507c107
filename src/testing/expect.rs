//! A test's expectations held to what its run did. Each one that fails is a diagnostic at its
//! `expect`, with what was expected and what was found side by side.

use super::Ran;
use super::mock::Call;
use super::rows::{matches, rows, same};
use crate::diagnostics::{Code, Diagnostic};
use crate::runtime::engine::{StageSummary, Summary};
use crate::runtime::store::{Rows, Store};
use crate::source::FileId;
use crate::span::Span;
use crate::syntax::ast::*;
use crate::value::ValueType;
use std::path::Path;

/// Every failed expectation of `test`, in order; why the run stopped first, when it did.
pub fn check(file: FileId, test: &Test, ran: &Ran) -> Vec<Diagnostic> {
    let mut failures = Vec::new();
    let fail = |span: Span, message: String, found: String| {
        Diagnostic::error(Code::E0806, file, span, message).with_label(found)
    };
    if let Some(why) = &ran.stopped {
        let message = format!("test `{}` did not run to its end", test.name.name);
        failures.push(fail(test.name.span, message, why.clone()));
    }
    if let Some(at) = ran.stuck_at {
        failures.push(
            fail(
                test.name.span,
                format!(
                    "the run could never end: at {} every stage waited and nothing could wake one",
                    crate::human::duration(at)
                ),
                "cancelled as stuck".into(),
            )
            .with_help("give what never ends a timeout, or send the signal the run waits for"),
        );
    }
    let base = Path::new(".");
    for statement in &test.statements {
        let TestStatement::Expect(expect) = statement else {
            continue;
        };
        if let Err((found, help)) = holds(&expect.what, ran, base) {
            let mut d = fail(expect.span, format!("expectation not met: {}", said(&expect.what)), found);
            if let Some(help) = help {
                d = d.with_help(help);
            }
            failures.push(d);
        }
    }
    failures
}

/// `Err` with what was found instead (the label), and the rows side by side (the help).
type Held = Result<(), (String, Option<String>)>;

fn holds(what: &Expectation, ran: &Ran, base: &Path) -> Held {
    let run = ran.summaries.iter().rev().find(|s| s.flow == ran.flow);
    let found = |text: String| Err((text, None));
    match what {
        Expectation::Run(state) => {
            let is = match run {
                Some(r) => r.state.as_str(),
                None if ran.gated => "skipped",
                None => "not started",
            };
            if state_is(&state.name, is) { Ok(()) } else { found(format!("the run ended {is}")) }
        }
        Expectation::Exit(code) => {
            if u64::from(ran.exit) == code.value { Ok(()) } else { found(format!("exit {}", ran.exit)) }
        }
        Expectation::Compensations(stages, _) => {
            let done: Vec<&str> = run.map_or(Vec::new(), |r| r.compensations.iter().map(|c| c.stage.as_str()).collect());
            let wanted: Vec<&str> = stages.iter().map(|s| s.name.as_str()).collect();
            if done == wanted { Ok(()) } else { found(format!("compensated {}", names(&done))) }
        }
        Expectation::Hooks(events, _) => {
            let fired = hooks_fired(ran, run);
            let wanted: Vec<&str> = events.iter().map(|e| e.name.as_str()).collect();
            if fired.iter().map(String::as_str).eq(wanted.iter().copied()) {
                Ok(())
            } else {
                found(format!("hooks fired: {}", names(&fired.iter().map(String::as_str).collect::<Vec<_>>())))
            }
        }
        Expectation::Elapsed(d) => {
            let wanted = crate::check::values::duration(d).unwrap_or_default();
            if ran.elapsed == wanted { Ok(()) } else { found(format!("{} of virtual time", crate::human::duration(ran.elapsed))) }
        }
        Expectation::Table { table, rows } => {
            let actual = saved_table(ran.db, &table.name).map_err(|e| (e, None))?;
            rows_hold(rows, &actual, base)
        }
        Expectation::Stage { stage, fact } => {
            let summary = run.and_then(|r| r.stages.iter().find(|s| s.stage == stage.name.as_str()));
            stage_holds(stage, fact, summary, run, ran, base)
        }
        Expectation::Called { activity, fact } => {
            let calls: Vec<&Call> = ran
                .calls
                .iter()
                .filter(|c| c.activity == activity.name.as_str())
                .collect();
            call_holds(fact, &calls, base)
        }
    }
}

/// What an activity's calls must have been.
fn call_holds(fact: &CallFact, calls: &[&Call], base: &Path) -> Held {
    let never = || Err(("never called".to_string(), None));
    match fact {
        CallFact::Times(n) if calls.len() as u64 == n.value => Ok(()),
        CallFact::Times(_) => Err((format!("called {}", counted(calls.len() as u64, "time")), None)),
        CallFact::With(..) | CallFact::Rows(_) if calls.is_empty() => never(),
        CallFact::With(args, _) => {
            if calls.iter().any(|call| called_with(call, args)) {
                return Ok(());
            }
            let seen: Vec<String> = calls.iter().map(|c| args_text(c)).collect();
            let help = format!("its calls had: {}", seen.join("; "));
            Err(("called with other arguments".into(), Some(help)))
        }
        CallFact::Rows(rows) => {
            let mut last = Ok(());
            for call in calls {
                last = rows_hold(rows, &call.input, base);
                if last.is_ok() {
                    break;
                }
            }
            last
        }
    }
}

/// Whether a call had every argument value `args` name.
fn called_with(call: &Call, args: &[Arg]) -> bool {
    args.iter().all(|arg| {
        let value = crate::check::values::literal_value(&arg.value);
        let (Some(name), Some((v, ty))) = (&arg.name, value) else {
            return false;
        };
        let given = call.args.get(name.name.as_str());
        given.is_some_and(|a| same((&v, ty), (a, ValueType::Any)))
    })
}

fn stage_holds(stage: &Ident, fact: &StageFact, summary: Option<&StageSummary>, run: Option<&Summary>, ran: &Ran, base: &Path) -> Held {
    let Some(summary) = summary else {
        return Err((format!("stage `{}` did not end", stage.name), None));
    };
    match fact {
        StageFact::State(state) => {
            let is = summary.state.as_str();
            if state_is(&state.name, is) {
                Ok(())
            } else {
                let why = summary.error_text().map(|e| format!(": {e}")).unwrap_or_default();
                Err((format!("`{}` ended {is}{why}", stage.name), None))
            }
        }
        StageFact::Attempts(n) => {
            if u64::from(summary.attempts) == n.value {
                Ok(())
            } else {
                Err((counted(u64::from(summary.attempts), "attempt"), None))
            }
        }
        StageFact::Rows(rows) => {
            let actual = stage_rows(ran, run, &stage.name).map_err(|e| (e, None))?;
            rows_hold(rows, &actual, base)
        }
    }
}

fn rows_hold(expected: &RowsExpect, actual: &Rows, base: &Path) -> Held {
    match expected {
        RowsExpect::Count(n) => {
            if actual.len() as u64 == n.value {
                Ok(())
            } else {
                Err((counted(actual.len() as u64, "row"), None))
            }
        }
        RowsExpect::Exactly { rows: given, ordered } => {
            let wanted = rows(given, base).map_err(|e| (e, None))?;
            match matches(&wanted, actual, *ordered) {
                Ok(true) => Ok(()),
                Ok(false) => Err((
                    counted(actual.len() as u64, "other row"),
                    Some(format!(
                        "expected:\n{}\nfound:\n{}",
                        crate::runtime::rows_text::table(&wanted).trim_end(),
                        crate::runtime::rows_text::table(actual).trim_end()
                    )),
                )),
                Err(e) => Err((e, None)),
            }
        }
    }
}

/// Whether a state is the one a test names (`done` is any end).
fn state_is(wanted: &str, is: &str) -> bool {
    wanted == is || (wanted == "done" && matches!(is, "success" | "failed" | "skipped" | "cancelled"))
}

/// The rows of a stage of the test's run (none for a stage that made none).
fn stage_rows(ran: &Ran, run: Option<&Summary>, stage: &str) -> Result<Rows, String> {
    let run = run.ok_or("the run did not start")?;
    let conn = crate::runtime::runs::schema::open(ran.db).map_err(|e| e.to_string())?;
    let row = crate::runtime::runs::catalog::run_in(&conn, &run.run_id)
        .map_err(|e| e.to_string())?
        .ok_or("the run is not in its store")?;
    Store::stage_rows_of_run(Path::new(&row.run_db), stage, None).or_else(|_| Ok(Rows::default()))
}

/// The rows of a table saved to the test's workspace database.
fn saved_table(db: &Path, table: &str) -> Result<Rows, String> {
    let conn = rusqlite::Connection::open(db).map_err(|e| e.to_string())?;
    let sql = format!("SELECT * FROM {}", crate::plan::sql::quote_ident(table));
    let mut statement = conn.prepare(&sql).map_err(|_| format!("no table `{table}` was saved"))?;
    let columns: Vec<String> = statement.column_names().map(|c| c.to_string()).collect();
    let types: Vec<ValueType> = statement.columns().map(|c| ValueType::from_column_decl(c.decl_type())).collect();
    let n = columns.len();
    let values = statement
        .query_map([], |row| (0..n).map(|i| row.get::<_, rusqlite::types::Value>(i)).collect::<Result<Vec<_>, _>>())
        .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
        .map_err(|e| e.to_string())?;
    Ok(Rows { columns, values, types })
}

/// The hook events fired for the test's run, in order, each once.
fn hooks_fired(ran: &Ran, run: Option<&Summary>) -> Vec<String> {
    let Some(run) = run else { return Vec::new() };
    let Ok(conn) = crate::runtime::runs::schema::open(ran.db) else { return Vec::new() };
    let mut fired: Vec<String> = Vec::new();
    for hook in crate::runtime::runs::report::hooks(&conn, &run.run_id).unwrap_or_default() {
        if let Some(event) = hook["event"].as_str()
            && !fired.iter().any(|f| f == event)
        {
            fired.push(event.to_string());
        }
    }
    fired
}

/// `1 row`, `2 rows`.
fn counted(n: u64, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}

fn names(names: &[&str]) -> String {
    if names.is_empty() {
        return "nothing".into();
    }
    format!("[{}]", names.join(", "))
}

/// A call's arguments as a test writes them: `(flag = false, pause = 2m, note = 'x')`.
fn args_text(call: &Call) -> String {
    let parts: Vec<String> = call
        .args
        .iter()
        .map(|(name, value)| {
            let text = match (value, call.texts.get(name)) {
                (rusqlite::types::Value::Null, _) => "null".to_string(),
                (rusqlite::types::Value::Text(_), Some(text)) => format!("'{text}'"),
                (_, Some(text)) => text.clone(),
                (value, None) => crate::value::literal(value, ValueType::Any),
            };
            format!("{name} = {text}")
        })
        .collect();
    format!("({})", parts.join(", "))
}

/// The expectation in words, for the failure's message.
fn said(what: &Expectation) -> String {
    match what {
        Expectation::Run(state) => format!("the run ends {}", state.name),
        Expectation::Exit(code) => format!("exit {}", code.value),
        Expectation::Compensations(stages, _) => format!("compensations {}", names(&stages.iter().map(|s| s.name.as_str()).collect::<Vec<_>>())),
        Expectation::Hooks(events, _) => format!("hooks {}", names(&events.iter().map(|s| s.name.as_str()).collect::<Vec<_>>())),
        Expectation::Elapsed(d) => format!("elapsed {}", crate::check::values::duration(d).map(crate::human::duration).unwrap_or_default()),
        Expectation::Table { table, .. } => format!("the rows of table `{}`", table.name),
        Expectation::Stage { stage, fact } => match fact {
            StageFact::State(state) => format!("stage `{}` ends {}", stage.name, state.name),
            StageFact::Attempts(n) => {
                format!("stage `{}` makes {}", stage.name, counted(n.value, "attempt"))
            }
            StageFact::Rows(_) => format!("the rows of stage `{}`", stage.name),
        },
        Expectation::Called { activity, fact } => match fact {
            CallFact::Times(n) => {
                format!("`{}` called {}", activity.name, counted(n.value, "time"))
            }
            CallFact::With(..) => format!("`{}` called with these arguments", activity.name),
            CallFact::Rows(_) => format!("`{}` called with these rows", activity.name),
        },
    }
}
