//! One stage on a PostgreSQL connector: opened, its upstream rows shipped in, its queries and
//! `save to`s run in one transaction, its rows streamed back, then committed; a watch beside
//! it cancels the query on the server when the stage's `timeout` passes or the run is
//! cancelled.

use super::Error;
use super::literal::inline_params;
use super::open::{Server, open};
use super::ship::{ship_in, ship_out};
use crate::plan::ir::{StagePlan, Step};
use crate::plan::sql::quote_ident;
use crate::runtime::store::{Store, Table};
use rusqlite::types::Value;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// How often the watch looks at the cancel flags and the clock.
const WATCH: Duration = Duration::from_millis(20);

/// What a stage on a server needs of its run.
pub struct Job<'a> {
    pub connector: &'a str,
    /// The `.wv` file's folder: `wvflow.toml` is found from it, as the checker found it.
    pub cwd: &'a Path,
    pub stage: &'a StagePlan,
    /// The run's values and the stage's, by name.
    pub params: BTreeMap<String, Value>,
    /// Set when the run (or the stage alone) is cancelled.
    pub cancel: Vec<Arc<AtomicBool>>,
}

/// Why the watch stopped the stage.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Stop {
    TimedOut,
    Cancelled,
}

/// Runs the stage on its server; its rows, in a table of `store`'s connection.
pub fn run(job: &Job, store: &mut Store) -> Result<Table, Error> {
    let started = Instant::now();
    let timeout = job.stage.timeout_ms.map(Duration::from_millis);
    let mut server = open(job.cwd, job.connector)?;
    let token = server.client.cancel_token();
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
                    // Asked again until the stage ends: a statement that started after a
                    // request is cancelled too.
                    let _ = token.cancel_query(postgres::NoTls);
                    std::thread::sleep(WATCH * 5);
                    continue;
                }
                std::thread::sleep(WATCH);
            }
        });
        let result = stage(&mut server, store, job, &stopped);
        done.store(true, Ordering::SeqCst);
        result
    });
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
    server: &mut Server,
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
    server.execute("BEGIN")?;
    for ship in &job.stage.ship_in {
        go_on()?;
        ship_in(server, store, ship, &job.params)?;
    }
    // The query whose rows are the step's, not yet run: the next query reads them as
    // `_input`, a `save to` writes them, and the last one's come back.
    let mut pending: Option<(String, &[crate::value::ValueType])> = None;
    for step in &job.stage.steps {
        go_on()?;
        match step {
            Step::Query { sql, types } => {
                if let Some((before, _)) = pending.take() {
                    into_input(server, &before)?;
                }
                pending = Some((inline_params(&sql.text, &job.params), types));
            }
            Step::SaveTo { table } => {
                if let Some((before, _)) = pending.take() {
                    into_input(server, &before)?;
                }
                save(server, table)?;
            }
            other => {
                return Err(Error::Step {
                    connector: job.connector.to_string(),
                    step: step_name(other),
                });
            }
        }
    }
    let (last, types) = pending.unwrap_or_else(|| ("SELECT * FROM pg_temp._input".to_string(), &[]));
    let rows = ship_out(server, store, &last, types)?;
    go_on()?;
    server.execute("COMMIT")?;
    Ok(rows)
}

/// The rows of `sql` as the session's `_input`, which the next query reads.
fn into_input(server: &mut Server, sql: &str) -> Result<(), Error> {
    server.execute(&format!(
        "DROP TABLE IF EXISTS pg_temp._wv_next; \
         CREATE TEMPORARY TABLE _wv_next ON COMMIT DROP AS {sql}; \
         DROP TABLE IF EXISTS pg_temp._input; \
         ALTER TABLE pg_temp._wv_next RENAME TO _input"
    ))
}

/// `save to schema.table`: the table replaced by the rows of `_input`, as on `default`.
fn save(server: &mut Server, table: &str) -> Result<(), Error> {
    let name: Vec<String> = table.split('.').map(quote_ident).collect();
    let name = name.join(".");
    server.execute(&format!(
        "DROP TABLE IF EXISTS {name}; CREATE TABLE {name} AS SELECT * FROM pg_temp._input"
    ))
}

fn step_name(step: &Step) -> &'static str {
    match step {
        Step::Union { .. } => "a union of sources",
        Step::Invoke { .. } | Step::Each { .. } => "an activity call",
        Step::Wait { .. } | Step::WaitUntil { .. } => "a wait",
        _ => "this step",
    }
}
