//! A test's expectations held to what its run did. Each one that fails is a diagnostic at its
//! `expect`, with what was expected and what was found side by side.

use super::Ran;
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
        failures.push(fail(test.name.span, format!("test `{}` did not run to its end", test.name.name), why.clone()));
    }
    if let Some(at) = ran.stuck_at {
        failures.push(
            fail(
                test.name.span,
                format!("the run could never end: at {} every stage waited and nothing could wake one", crate::human::duration(at)),
                "cancelled as stuck".into(),
            )
            .with_help("mock the activity that never ends with a timeout, or send the signal the run waits for"),
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
            let calls: Vec<&super::mock::Call> = ran.calls.iter().filter(|c| c.activity == activity.name.as_str()).collect();
            match fact {
                CallFact::Times(n) => {
                    if calls.len() as u64 == n.value { Ok(()) } else { found(format!("called {} time{}", calls.len(), if calls.len() == 1 { "" } else { "s" })) }
                }
                CallFact::With(args, _) => {
                    let fits = |call: &&super::mock::Call| {
                        args.iter().all(|arg| {
                            let (Some(name), Some((v, ty))) = (&arg.name, crate::check::values::literal_value(&arg.value)) else {
                                return false;
                            };
                            call.args.get(name.name.as_str()).is_some_and(|a| same((&v, ty), (a, ValueType::Any)))
                        })
                    };
                    if calls.iter().any(fits) {
                        Ok(())
                    } else if calls.is_empty() {
                        found("never called".into())
                    } else {
                        let seen: Vec<String> = calls.iter().map(|c| args_text(&c.args)).collect();
                        Err(("called with other arguments".into(), Some(format!("its calls had: {}", seen.join("; ")))))
                    }
                }
                CallFact::Rows(rows) => {
                    if calls.is_empty() {
                        return found("never called".into());
                    }
                    let mut last = Ok(());
                    for call in &calls {
                        last = rows_hold(rows, &call.input, base);
                        if last.is_ok() {
                            return Ok(());
                        }
                    }
                    last
                }
            }
        }
    }
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
                Err((format!("{} attempt{}", summary.attempts, if summary.attempts == 1 { "" } else { "s" }), None))
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
                Err((format!("{} row{}", actual.len(), if actual.len() == 1 { "" } else { "s" }), None))
            }
        }
        RowsExpect::Exactly { rows: given, ordered } => {
            let wanted = rows(given, base).map_err(|e| (e, None))?;
            match matches(&wanted, actual, *ordered) {
                Ok(true) => Ok(()),
                Ok(false) => Err((
                    format!("{} other row{}", actual.len(), if actual.len() == 1 { "" } else { "s" }),
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
    let types: Vec<ValueType> = statement.columns().into_iter().map(|c| ValueType::from_column_decl(c.decl_type())).collect();
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

fn names(names: &[&str]) -> String {
    if names.is_empty() {
        return "nothing".into();
    }
    format!("[{}]", names.join(", "))
}

fn args_text(args: &std::collections::BTreeMap<String, rusqlite::types::Value>) -> String {
    let parts: Vec<String> = args.iter().map(|(k, v)| format!("{k} = {}", crate::value::literal(v, ValueType::Any))).collect();
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
            StageFact::Attempts(n) => format!("stage `{}` makes {} attempt{}", stage.name, n.value, if n.value == 1 { "" } else { "s" }),
            StageFact::Rows(_) => format!("the rows of stage `{}`", stage.name),
        },
        Expectation::Called { activity, fact } => match fact {
            CallFact::Times(n) => format!("`{}` called {} time{}", activity.name, n.value, if n.value == 1 { "" } else { "s" }),
            CallFact::With(..) => format!("`{}` called with these arguments", activity.name),
            CallFact::Rows(_) => format!("`{}` called with these rows", activity.name),
        },
    }
}
