//! One stage on a DuckDB connector: opened, its upstream rows appended into temporary tables,
//! its queries and `save to`s run in one transaction, its rows read back, then committed; a
//! watch beside it interrupts the query when the stage's `timeout` passes or the run is
//! cancelled.

use super::open::{Session, open};
use super::ship::{ship_in, ship_out};
use super::{Error, Job};
use crate::plan::ir::Step;
use crate::plan::sql::quote_ident;
use crate::runtime::postgres::inline_params;
use crate::runtime::store::{Store, Table};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// How often the watch looks at the cancel flags and the clock.
const WATCH: Duration = Duration::from_millis(20);

/// Why the watch stopped the stage.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Stop {
    TimedOut,
    Cancelled,
}

/// Runs the stage on its database; its rows, in a table of `store`'s connection.
pub fn run(job: &Job, store: &mut Store) -> Result<Table, Error> {
    let started = Instant::now();
    let timeout = job.stage.timeout_ms.map(Duration::from_millis);
    let session = open(job.cwd, job.connector)?;
    let interrupt = session.conn.interrupt_handle();
    let done = AtomicBool::new(false);
    let stopped: std::sync::Mutex<Option<Stop>> = std::sync::Mutex::new(None);
    let result = std::thread::scope(|scope| {
        scope.spawn(|| {
            while !done.load(Ordering::SeqCst) {
                let stop = if job.cancel.iter().any(|c| c.load(Ordering::SeqCst)) {
                    Some(Stop::Cancelled)
                } else if timeout.is_some_and(|t| started.elapsed() >= t) {
                    Some(Stop::TimedOut)
                } else {
                    None
                };
                if let Some(stop) = stop {
                    if let Ok(mut s) = stopped.lock() {
                        *s = Some(stop);
                    }
                    // Again until the stage ends: a statement that started after is
                    // interrupted too.
                    interrupt.interrupt();
                    std::thread::sleep(WATCH * 5);
                    continue;
                }
                std::thread::sleep(WATCH);
            }
        });
        let result = stage(&session, store, job, &stopped);
        done.store(true, Ordering::SeqCst);
        result
    });
    if result.is_err() {
        // Whatever the stage wrote is undone (closing the connection would, too).
        let _ = session.conn.execute_batch("ROLLBACK");
    }
    let stop = stopped.lock().ok().and_then(|s| *s);
    match (result, stop) {
        (Err(_), Some(Stop::Cancelled)) => Err(Error::Cancelled),
        (Err(_), Some(Stop::TimedOut)) => Err(Error::TimedOut {
            connector: job.connector.to_string(),
            after: timeout.unwrap_or_default(),
        }),
        (result, _) => result,
    }
}

/// The stage's steps in one transaction: a failed stage leaves every table as it was.
fn stage(
    session: &Session,
    store: &mut Store,
    job: &Job,
    stopped: &std::sync::Mutex<Option<Stop>>,
) -> Result<Table, Error> {
    let go_on = || {
        if stopped.lock().map(|s| s.is_some()).unwrap_or(true) {
            Err(Error::Cancelled)
        } else {
            Ok(())
        }
    };
    session.execute("BEGIN TRANSACTION")?;
    for ship in &job.stage.ship_in {
        go_on()?;
        ship_in(session, store, ship, &job.params)?;
    }
    // The query whose rows are the step's, not yet run: the next query reads them as
    // `_input`, a `save to` writes them, and the last one's come back.
    let mut pending: Option<(String, &[crate::value::ValueType])> = None;
    for step in &job.stage.steps {
        go_on()?;
        match step {
            Step::Query { sql, types } => {
                if let Some((before, _)) = pending.take() {
                    into_input(session, &before)?;
                }
                pending = Some((inline_params(&sql.text, &job.params), types));
            }
            Step::SaveTo { table } => {
                if let Some((before, _)) = pending.take() {
                    into_input(session, &before)?;
                }
                save(session, table)?;
            }
            _ => {
                return Err(Error::Step {
                    connector: job.connector.to_string(),
                    step: "this step",
                });
            }
        }
    }
    let (last, types) = pending.unwrap_or_else(|| ("SELECT * FROM temp._input".to_string(), &[]));
    let rows = ship_out(session, store, &last, types)?;
    go_on()?;
    session.execute("COMMIT")?;
    Ok(rows)
}

/// The rows of `sql` as the session's `_input`, which the next query reads.
fn into_input(session: &Session, sql: &str) -> Result<(), Error> {
    session.execute(&format!(
        "CREATE OR REPLACE TEMPORARY TABLE _wv_next AS {sql}; \
         DROP TABLE IF EXISTS temp._input; \
         ALTER TABLE temp._wv_next RENAME TO _input"
    ))
}

/// `save to schema.table`: the table replaced by the rows of `_input`, as on `default`; its
/// schema made when the database has none of that name.
fn save(session: &Session, table: &str) -> Result<(), Error> {
    let parts: Vec<String> = table.split('.').map(quote_ident).collect();
    let schema = match parts.as_slice() {
        [schema, _] => format!("CREATE SCHEMA IF NOT EXISTS {schema}; "),
        _ => String::new(),
    };
    let name = parts.join(".");
    session.execute(&format!(
        "{schema}CREATE OR REPLACE TABLE {name} AS SELECT * FROM temp._input"
    ))
}
