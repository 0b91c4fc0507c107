//! The writer of one run's history. Every transition is committed (one transaction: the
//! event and the state it leads to) before the executor goes on, so a crash loses none and
//! records none that did not happen.

use super::catalog::{RunRow, ShownState};
use crate::runtime::state::{RunState, StageState};
use super::owner::{Owner, is_stale, lease_until};
use super::schema::{self, now_ms};
use crate::plan::Plan;
use crate::session::{Notice, Reporter};
use crate::runtime::engine::{
    Attempt, AttemptEnd, CompensationSummary, Progress, StageSummary, Summary,
};
use crate::value::ValueType;
use rusqlite::types::Value;
use rusqlite::{Connection, Transaction, TransactionBehavior, params};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// Why the journal could not record a run or a request, or a run cannot be resumed.
/// `Display` gives the message users see.
#[derive(Debug)]
pub enum Error {
    /// The run store cannot be opened.
    Store(schema::Error),
    /// The run store cannot be read.
    Catalog(super::catalog::Error),
    /// SQLite refused to record `what`.
    Record {
        what: Recording,
        sqlite: rusqlite::Error,
    },
    /// The plan could not be written as JSON.
    Plan(serde_json::Error),
    /// No run of this id in the store at `db`.
    NoRun { run_id: String, db: PathBuf },
    /// A request to a run that has ended.
    Finished { run_id: String, state: ShownState },
    /// The flow's `concurrency` slots are all held, by `holders`.
    Concurrency {
        flow: String,
        limit: u64,
        holders: Vec<String>,
    },
    /// A run in a state that cannot be resumed.
    NotResumable { run_id: String, state: ShownState },
    /// A run whose compensations undid its successful stages.
    Compensated { run_id: String },
    /// A run whose database is gone, with the successful stages whose rows are lost.
    RunDbMissing {
        run_id: String,
        path: PathBuf,
        stages: Vec<String>,
    },
    /// A run whose database cannot be read.
    RunDbUnreadable {
        run_id: String,
        path: PathBuf,
        sqlite: rusqlite::Error,
    },
    /// A run whose database has lost the tables of these successful stages.
    RowsLost {
        run_id: String,
        path: PathBuf,
        stages: Vec<String>,
    },
}

/// What [`Error::Record`] was recording, for which run.
#[derive(Debug)]
pub enum Recording {
    Run(String),
    Resume(String),
    Request(String),
}

impl From<schema::Error> for Error {
    fn from(e: schema::Error) -> Self {
        Error::Store(e)
    }
}

impl From<super::catalog::Error> for Error {
    fn from(e: super::catalog::Error) -> Self {
        Error::Catalog(e)
    }
}

/// Stage names as a message lists them: `` `a`, `b` ``.
fn quoted(names: &[String]) -> String {
    names
        .iter()
        .map(|s| format!("`{s}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Store(e) => write!(f, "{e}"),
            Error::Catalog(e) => write!(f, "{e}"),
            Error::Record { what, sqlite } => match what {
                Recording::Run(id) => write!(f, "cannot record run {id}: {sqlite}"),
                Recording::Resume(id) => write!(f, "cannot resume run {id}: {sqlite}"),
                Recording::Request(id) => {
                    write!(f, "cannot record the request for run {id}: {sqlite}")
                }
            },
            Error::Plan(e) => write!(f, "{e}"),
            Error::NoRun { run_id, db } => write!(f, "no run `{run_id}` in {}", db.display()),
            Error::Finished { run_id, state } => {
                write!(f, "run {run_id} has already finished ({state})")
            }
            Error::Concurrency {
                flow,
                limit,
                holders,
            } => write!(
                f,
                "flow `{flow}` allows {limit} run(s) at once; held by {}",
                holders.join(", ")
            ),
            Error::NotResumable { run_id, state } => write!(
                f,
                "run {run_id} is {state}: only a failed, cancelled or stale run can be resumed"
            ),
            Error::Compensated { run_id } => write!(
                f,
                "run {run_id} ran its compensations, which undid its successful stages; start a new run instead"
            ),
            Error::RunDbMissing {
                run_id,
                path,
                stages,
            } => write!(
                f,
                "the run's database {} is missing: the rows of its successful stages {} are lost, so run {run_id} cannot resume; start a new run",
                path.display(),
                quoted(stages)
            ),
            Error::RunDbUnreadable {
                run_id,
                path,
                sqlite,
            } => write!(
                f,
                "cannot read the run's database {}: {sqlite}; run {run_id} cannot resume, start a new run",
                path.display()
            ),
            Error::RowsLost {
                run_id,
                path,
                stages,
            } => write!(
                f,
                "the run's database {} has lost the rows of {}: run {run_id} cannot resume; start a new run",
                path.display(),
                quoted(stages)
            ),
        }
    }
}

impl std::error::Error for Error {}


/// A run about to start.
pub struct NewRun<'a> {
    pub run_id: &'a str,
    pub plan: &'a Plan,
    /// Flow arguments as bound (without `run_time` and `run_date`).
    pub args: &'a BTreeMap<String, Value>,
    pub run_time: &'a str,
    /// The workspace path as given on the command line, for `runs resume`.
    pub workspace: &'a str,
    pub run_db: &'a str,
    /// The run and stage of a `call` that started this run.
    pub parent: Option<(&'a str, &'a str)>,
    /// The run whose `->` jump started this run.
    pub jumped_from: Option<&'a str>,
    /// The run this one continues (`continue_as_new`), and the stages it carries from it,
    /// recorded as they ended there.
    pub continued_from: Option<(&'a str, &'a [crate::runtime::engine::StageSummary])>,
    /// A scheduled run: one whose `depends on` is unmet is recorded as skipped.
    pub gate: bool,
    /// A run for a schedule window: if the window already has a run, this one is skipped.
    pub once_per_window: bool,
    /// Record the run as skipped for this reason, running nothing.
    pub skip: Option<&'a str>,
}

/// Whether a run may start: its dependencies are met and it got one of its flow's
/// `concurrency` slots.
#[derive(Debug, PartialEq)]
pub enum Claim {
    Started,
    /// The run is recorded as skipped with this reason (an unmet dependency, or the runs that
    /// hold the slots).
    Skipped {
        reason: String,
    },
}

pub struct Journal<'r> {
    conn: Mutex<Connection>,
    run_id: String,
    /// Which execution of the run this is: 0, then one more for each `runs resume`.
    round: i64,
    /// Set when recording failed: the run stops rather than going on unrecorded.
    cancel: Arc<AtomicBool>,
    /// The first failure to record (a full disk, a lost database), if any.
    lost: Mutex<Option<String>>,
    /// Told when the run cannot be recorded, or another process took it over.
    reporter: &'r dyn Reporter,
}

fn begin(conn: &mut Connection) -> rusqlite::Result<Transaction<'_>> {
    conn.transaction_with_behavior(TransactionBehavior::Immediate)
}

fn event(
    tx: &Transaction,
    run_id: &str,
    kind: &str,
    stage: Option<&str>,
    detail: serde_json::Value,
) -> rusqlite::Result<()> {
    exec(
        tx,
        "INSERT INTO wvflow_events (run_id, at, kind, stage, detail) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![
            run_id,
            now_ms(),
            kind,
            stage,
            (!detail.is_null()).then(|| detail.to_string())
        ],
    )?;
    Ok(())
}

/// Runs one statement of the journal, prepared once per connection: a run makes the same few
/// statements for every transition, and parsing them again each time showed in profiles.
fn exec(tx: &Transaction, sql: &str, params: impl rusqlite::Params) -> rusqlite::Result<usize> {
    tx.prepare_cached(sql)?.execute(params)
}

/// The runs of `flow` that hold a concurrency slot: running, with a live owner.
fn slot_holders(tx: &Transaction, flow: &str, except: &str) -> rusqlite::Result<Vec<String>> {
    let mut statement = tx.prepare(
        "SELECT run_id, owner_pid, owner_host, owner_start, lease_until FROM wvflow_runs
         WHERE flow = ?1 AND state = 'running' AND run_id <> ?2 ORDER BY created_at",
    )?;
    let now = now_ms();
    let rows = statement.query_map([flow, except], |r| {
        Ok((
            r.get::<_, String>(0)?,
            Owner {
                pid: r.get::<_, Option<i64>>(1)?.unwrap_or(0),
                host: r.get::<_, Option<String>>(2)?.unwrap_or_default(),
                start: r.get::<_, Option<i64>>(3)?.unwrap_or(0),
            },
            r.get::<_, Option<i64>>(4)?.unwrap_or(0),
        ))
    })?;
    let mut holders = Vec::new();
    for row in rows {
        let (run_id, owner, lease) = row?;
        if !is_stale(&owner, lease, now) {
            holders.push(run_id);
        }
    }
    Ok(holders)
}

/// Why a new run may not start: told to skip, its window ran already, an unmet dependency,
/// or no free slot of the flow's `concurrency`.
fn refusal(tx: &rusqlite::Transaction, run: &NewRun) -> Result<Option<String>, Error> {
    let flow = &run.plan.flow;
    if let Some(skip) = run.skip {
        return Ok(Some(skip.to_string()));
    }
    if run.once_per_window
        && let Some(earlier) = super::catalog::run_at(tx, &flow.name, run.run_time)?
    {
        return Ok(Some(format!(
            "the window {} already has run {earlier}",
            run.run_time
        )));
    }
    if run.gate
        && let Some(unmet) = super::catalog::unmet_dependency(tx, &flow.name, &flow.depends_on)?
    {
        return Ok(Some(unmet));
    }
    if let Some(limit) = flow.concurrency {
        let holders = slot_holders(tx, &flow.name, run.run_id).map_err(|sqlite| Error::Record {
            what: Recording::Run(run.run_id.to_string()),
            sqlite,
        })?;
        if holders.len() as u64 >= limit {
            return Ok(Some(format!(
                "flow `{}` allows {limit} run(s) at once; held by {}",
                flow.name,
                holders.join(", ")
            )));
        }
    }
    Ok(None)
}

impl<'r> Journal<'r> {
    /// Records a new run, claiming a concurrency slot in the same transaction, and its stages
    /// as pending.
    pub fn create(
        db: &Path,
        run: &NewRun,
        cancel: Arc<AtomicBool>,
        reporter: &'r dyn Reporter,
    ) -> Result<(Journal<'r>, Claim), Error> {
        let mut conn = schema::open(db)?;
        let fail = |sqlite| Error::Record {
            what: Recording::Run(run.run_id.to_string()),
            sqlite,
        };
        let flow = &run.plan.flow;
        let owner = Owner::this_process();
        let tx = begin(&mut conn).map_err(fail)?;
        // Why the run may not start: an unmet dependency, or no free slot. A run that
        // continues another takes its slot: nothing may come between them.
        let reason = match run.continued_from {
            Some(_) => None,
            None => refusal(&tx, run)?,
        };
        let now = now_ms();
        let state = if reason.is_some() {
            "skipped"
        } else {
            "running"
        };
        let args = args_json(run);
        let plan = serde_json::to_string(run.plan).map_err(Error::Plan)?;
        // Before this process is recorded as the owner: requests wake it at once.
        super::wake::listen();
        exec(
            &tx,
            "INSERT INTO wvflow_runs (run_id, flow, version, args, run_time, state, reason,
               created_at, started_at, finished_at, owner_pid, owner_host, owner_start,
               lease_until, parent_run, parent_stage, jumped_from, workspace, run_db, plan,
               keep_runs, owner_wakes, continued_from)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16,
               ?17, ?18, ?19, ?20, 1, ?21)",
            params![
                run.run_id,
                flow.name,
                flow.version,
                args,
                run.run_time,
                state,
                reason,
                now,
                reason.as_ref().map(|_| now),
                owner.pid,
                owner.host,
                owner.start,
                lease_until(now),
                run.parent.map(|p| p.0),
                run.parent.map(|p| p.1),
                run.jumped_from,
                run.workspace,
                run.run_db,
                plan,
                flow.keep_runs.map(|n| n as i64),
                run.continued_from.map(|(from, _)| from),
            ],
        )
        .map_err(fail)?;
        if reason.is_none() {
            pending_stages(&tx, run).map_err(fail)?;
        }
        if let Some((from, _)) = run.continued_from {
            carry_signals(&tx, run.run_id, from).map_err(fail)?;
        }
        event(
            &tx,
            run.run_id,
            if reason.is_some() {
                "run_skipped"
            } else {
                "run_started"
            },
            None,
            serde_json::json!({ "pid": owner.pid, "reason": reason }),
        )
        .map_err(fail)?;
        tx.commit().map_err(fail)?;
        let claim = match reason {
            Some(reason) => Claim::Skipped { reason },
            None => Claim::Started,
        };
        Ok((Journal::new(conn, run.run_id, 0, cancel, reporter), claim))
    }

    /// Takes over a failed, cancelled or stale run for `runs resume` ([`not_resumable`]): this process becomes its
    /// owner, and stages that did not succeed are pending again.
    pub fn reclaim(
        db: &Path,
        run_id: &str,
        cancel: Arc<AtomicBool>,
        reporter: &'r dyn Reporter,
    ) -> Result<Journal<'r>, Error> {
        let mut conn = schema::open(db)?;
        let fail = |sqlite| Error::Record {
            what: Recording::Resume(run_id.to_string()),
            sqlite,
        };
        let tx = begin(&mut conn).map_err(fail)?;
        let record = super::catalog::run_in(&tx, run_id)?.ok_or_else(|| Error::NoRun {
            run_id: run_id.to_string(),
            db: db.to_path_buf(),
        })?;
        not_resumable(&tx, &record)?;
        let state = record.display_state();
        let plan = super::catalog::plan_of(&tx, run_id)?;
        if let Some(limit) = plan.flow.concurrency {
            let holders = slot_holders(&tx, &record.flow, run_id).map_err(fail)?;
            if holders.len() as u64 >= limit {
                return Err(Error::Concurrency {
                    flow: record.flow.clone(),
                    limit,
                    holders,
                });
            }
        }
        stop_left_running(&tx, run_id).map_err(fail)?;
        super::wake::listen();
        let owner = Owner::this_process();
        let now = now_ms();
        exec(
            &tx,
            "UPDATE wvflow_runs SET state = 'running', reason = NULL, finished_at = NULL,
               owner_pid = ?2, owner_host = ?3, owner_start = ?4, lease_until = ?5, owner_wakes = 1,
               cancel_requested = 0, paused = 0, resumes = resumes + 1
             WHERE run_id = ?1",
            params![run_id, owner.pid, owner.host, owner.start, lease_until(now)],
        )
        .map_err(fail)?;
        // A run stopped in its saga keeps its stages as they ended: only the compensations
        // still owed run.
        exec(
            &tx,
            "UPDATE wvflow_stages SET state = 'pending' WHERE run_id = ?1 AND state <> 'success'
               AND NOT EXISTS (SELECT 1 FROM wvflow_compensations WHERE run_id = ?1)",
            [run_id],
        )
        .map_err(fail)?;
        event(
            &tx,
            run_id,
            "run_resumed",
            None,
            serde_json::json!({ "pid": owner.pid, "was": state }),
        )
        .map_err(fail)?;
        tx.commit().map_err(fail)?;
        Ok(Journal::new(
            conn,
            run_id,
            record.resumes + 1,
            cancel,
            reporter,
        ))
    }

    fn new(
        conn: Connection,
        run_id: &str,
        round: i64,
        cancel: Arc<AtomicBool>,
        reporter: &'r dyn Reporter,
    ) -> Journal<'r> {
        Journal {
            conn: Mutex::new(conn),
            run_id: run_id.to_string(),
            round,
            cancel,
            lost: Mutex::new(None),
            reporter,
        }
    }

    /// Commits one transition. A failure to record cancels the run: going on would leave
    /// the store behind what really happened.
    /// Updates one attempt's row: `set` names its values from `?8` on.
    fn update_attempt(
        &self,
        tx: &Transaction,
        attempt: &Attempt,
        set: &str,
        values: &[&dyn rusqlite::ToSql],
    ) -> rusqlite::Result<usize> {
        let (step, item) = (attempt.step as i64, attempt.item.map_or(-1, |i| i as i64));
        let key: [&dyn rusqlite::ToSql; 7] = [
            &self.run_id,
            &attempt.stage,
            &attempt.phase,
            &step,
            &item,
            &self.round,
            &attempt.number,
        ];
        exec(
            tx,
            &format!(
                "UPDATE wvflow_attempts SET {set}
                 WHERE run_id = ?1 AND stage = ?2 AND phase = ?3 AND step = ?4 AND item = ?5
                   AND round = ?6 AND attempt = ?7"
            ),
            rusqlite::params_from_iter(key.iter().chain(values)),
        )
    }

    fn write(&self, what: impl FnOnce(&Transaction) -> rusqlite::Result<()>) {
        let result = match self.conn.lock() {
            Ok(mut conn) => begin(&mut conn).and_then(|tx| {
                what(&tx)?;
                tx.commit()
            }),
            Err(_) => return,
        };
        if let Err(e) = result {
            self.cancel.store(true, Ordering::SeqCst);
            let mut lost = self.lost.lock().unwrap_or_else(|e| e.into_inner());
            if lost.is_none() {
                self.reporter.notice(&Notice::RecordLost {
                    run_id: self.run_id.clone(),
                    error: e.to_string(),
                });
                *lost = Some(e.to_string());
            }
        }
    }

    /// Why recording failed, if it did: the run was stopped and ends `failed`.
    pub fn lost(&self) -> Option<String> {
        self.lost.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Records the run's end (its compensations were recorded as they ended). Only while
    /// this process still owns the run: if another one took it over (a resume, or a cancel of
    /// a run it judged stale), that record stands.
    ///
    /// After a failure to record, the run's state and reason and every stage's end are
    /// written again from the summary, so that nothing stays `running` in the store.
    pub fn finish(&self, summary: &Summary) {
        let run_id = &self.run_id;
        let me = Owner::this_process();
        let lost = self.lost();
        self.write(|tx| {
            let reason = lost
                .as_ref()
                .map(|e| format!("the run store could not record it: {e}"));
            let owned = exec(tx,
                "UPDATE wvflow_runs SET state = ?2, finished_at = ?3, reason = coalesce(?6, reason)
                 WHERE run_id = ?1 AND state = 'running' AND owner_pid = ?4 AND owner_start = ?5",
                params![run_id, summary.state, now_ms(), me.pid, me.start, reason],
            )?;
            if owned > 0 && lost.is_some() {
                for stage in &summary.stages {
                    exec(tx,
                        "UPDATE wvflow_stages SET state = ?3, attempts = ?4, rows = ?5,
                           duration_ms = ?6, error = ?7, finished_at = coalesce(finished_at, ?8),
                           reused = ?9
                         WHERE run_id = ?1 AND stage = ?2",
                        params![
                            run_id,
                            stage.stage,
                            stage.state,
                            stage.attempts,
                            stage.rows as i64,
                            stage.duration_ms as i64,
                            stage.error,
                            now_ms(),
                            stage.reused
                        ],
                    )?;
                }
            }
            if owned == 0 {
                self.reporter.notice(&Notice::TakenOver {
                    run_id: run_id.clone(),
                });
                return Ok(());
            }
            event(
                tx,
                run_id,
                "run_finished",
                None,
                serde_json::json!({ "state": summary.state }),
            )
        });
    }

    /// Records how a flow hook ended.
    pub fn hook(&self, outcome: &crate::runtime::hooks::HookOutcome) {
        let run_id = &self.run_id;
        self.write(|tx| {
            event(
                tx,
                run_id,
                if outcome.error.is_some() {
                    "hook_failed"
                } else {
                    "hook_finished"
                },
                None,
                serde_json::json!({
                    "event": outcome.event, "target": outcome.target, "error": outcome.error,
                }),
            )
        });
    }

    /// Records that `keep_runs` could not remove old runs after this one.
    pub fn retention_failed(&self, error: &str) {
        let run_id = &self.run_id;
        self.write(|tx| {
            event(
                tx,
                run_id,
                "retention_failed",
                None,
                serde_json::json!({ "error": error }),
            )
        });
    }

    /// Records a run that could not start (its store failed before any stage ran).
    pub fn abort(&self, error: &str) {
        let run_id = &self.run_id;
        self.write(|tx| {
            exec(tx,
                "UPDATE wvflow_runs SET state = 'failed', reason = ?2, finished_at = ?3 WHERE run_id = ?1",
                params![run_id, error, now_ms()],
            )?;
            event(tx, run_id, "run_finished", None, serde_json::json!({ "state": "failed", "error": error }))
        });
    }
}

impl Progress for Journal<'_> {
    fn stage_started(&self, stage: &str) {
        let run_id = &self.run_id;
        self.write(|tx| {
            exec(
                tx,
                "UPDATE wvflow_stages SET state = 'running', started_at = ?3, error = NULL
                 WHERE run_id = ?1 AND stage = ?2",
                params![run_id, stage, now_ms()],
            )?;
            event(
                tx,
                run_id,
                "stage_started",
                Some(stage),
                serde_json::Value::Null,
            )
        });
    }

    fn retrying(&self, attempt: &Attempt, delay: std::time::Duration) {
        let run_id = &self.run_id;
        let next_at = now_ms() + delay.as_millis() as i64;
        self.write(|tx| {
            exec(
                tx,
                "UPDATE wvflow_stages SET state = 'retrying', attempts = max(attempts, ?3)
                 WHERE run_id = ?1 AND stage = ?2 AND state IN ('running', 'retrying')",
                params![run_id, attempt.stage, attempt.number],
            )?;
            event(
                tx,
                run_id,
                "stage_retrying",
                Some(attempt.stage),
                serde_json::json!({
                    "phase": attempt.phase, "item": attempt.item,
                    "failed_attempt": attempt.number, "next_attempt_at_ms": next_at,
                }),
            )
        });
    }

    fn pool_wait(&self, stage: &str, item: Option<usize>, pool: &str, waiting: bool) {
        let run_id = &self.run_id;
        let (from, to, what) = if waiting {
            ("'running', 'retrying'", "queued", "stage_queued")
        } else {
            ("'queued'", "running", "stage_dequeued")
        };
        self.write(|tx| {
            exec(tx,
                &format!(
                    "UPDATE wvflow_stages SET state = '{to}' WHERE run_id = ?1 AND stage = ?2 AND state IN ({from})"
                ),
                params![run_id, stage],
            )?;
            event(
                tx,
                run_id,
                what,
                Some(stage),
                serde_json::json!({ "pool": pool, "item": item }),
            )
        });
    }

    fn attempt_started(&self, attempt: &Attempt) {
        let run_id = &self.run_id;
        let item = attempt.item.map_or(-1, |i| i as i64);
        self.write(|tx| {
            exec(tx,
                "UPDATE wvflow_stages SET state = 'running' WHERE run_id = ?1 AND stage = ?2 AND state = 'retrying'",
                params![run_id, attempt.stage],
            )?;
            exec(tx,
                "INSERT OR REPLACE INTO wvflow_attempts
                   (run_id, stage, phase, step, item, round, attempt, state, started_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'running', ?8)",
                params![
                    run_id,
                    attempt.stage,
                    attempt.phase,
                    attempt.step as i64,
                    item,
                    self.round,
                    attempt.number,
                    now_ms()
                ],
            )?;
            event(
                tx,
                run_id,
                "attempt_started",
                Some(attempt.stage),
                serde_json::json!({
                    "phase": attempt.phase, "step": attempt.step, "item": attempt.item,
                    "attempt": attempt.number,
                }),
            )
        });
    }

    fn attempt_log(&self, attempt: &Attempt, text: &str) {
        let run_id = &self.run_id;
        let item = attempt.item.map_or(-1, |i| i as i64);
        self.write(|tx| {
            exec(
                tx,
                "UPDATE wvflow_attempts SET log = coalesce(log, '') || ?8
                 WHERE run_id = ?1 AND stage = ?2 AND phase = ?3 AND step = ?4 AND item = ?5
                   AND round = ?6 AND attempt = ?7",
                params![
                    run_id,
                    attempt.stage,
                    attempt.phase,
                    attempt.step as i64,
                    item,
                    self.round,
                    attempt.number,
                    text
                ],
            )
            .map(|_| ())
        });
    }

    fn attempt_process(&self, attempt: &Attempt, pid: u32) {
        let start = super::owner::process_start(pid.into());
        self.write(|tx| {
            self.update_attempt(tx, attempt, "pid = ?8, pid_start = ?9", &[&pid, &start])
                .map(|_| ())
        });
    }

    fn attempt_finished(&self, attempt: &Attempt, end: &AttemptEnd) {
        let run_id = &self.run_id;
        // The store keeps the failure as it is printed.
        let error = end.error.map(ToString::to_string);
        self.write(|tx| {
            self.update_attempt(
                tx,
                attempt,
                "state = ?8, finished_at = ?9, exit_code = ?10, error = ?11",
                &[&end.state, &now_ms(), &end.exit_code, &error],
            )?;
            event(
                tx,
                run_id,
                "attempt_finished",
                Some(attempt.stage),
                serde_json::json!({
                    "phase": attempt.phase, "step": attempt.step, "item": attempt.item,
                    "attempt": attempt.number, "state": end.state, "exit_code": end.exit_code,
                    "error": error,
                }),
            )
        });
    }

    fn stage_finished(&self, summary: &StageSummary) {
        let run_id = &self.run_id;
        self.write(|tx| {
            exec(tx,
                "UPDATE wvflow_stages SET state = ?3, attempts = ?4, rows = ?5, duration_ms = ?6,
                   error = ?7, finished_at = ?8, reused = ?9
                 WHERE run_id = ?1 AND stage = ?2",
                params![
                    run_id,
                    summary.stage,
                    summary.state,
                    summary.attempts,
                    summary.rows as i64,
                    summary.duration_ms as i64,
                    summary.error,
                    now_ms(),
                    summary.reused
                ],
            )?;
            event(
                tx,
                run_id,
                "stage_finished",
                Some(&summary.stage),
                serde_json::json!({ "state": summary.state, "rows": summary.rows, "error": summary.error }),
            )
        });
    }

    fn compensations_due(&self, due: &[CompensationSummary], ending: RunState) {
        let run_id = &self.run_id;
        self.write(|tx| {
            for (position, c) in due.iter().enumerate() {
                exec(
                    tx,
                    "INSERT INTO wvflow_compensations (run_id, stage, activity, state, attempts, error, finished_at, position)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, 0, ?7)
                     ON CONFLICT (run_id, stage) DO UPDATE SET position = excluded.position",
                    params![run_id, c.stage, c.activity, c.state, c.attempts, c.error, position as i64],
                )?;
            }
            event(
                tx,
                run_id,
                "compensations_due",
                None,
                serde_json::json!({
                    "stages": due.iter().map(|c| &c.stage).collect::<Vec<_>>(),
                    "ending": ending,
                }),
            )
        });
    }

    fn compensation_finished(&self, c: &CompensationSummary) {
        let run_id = &self.run_id;
        self.write(|tx| {
            // Its place in the saga, recorded when the saga began, stays.
            exec(tx,
                "INSERT INTO wvflow_compensations (run_id, stage, activity, state, attempts, error, finished_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT (run_id, stage) DO UPDATE SET activity = excluded.activity,
                   state = excluded.state, attempts = excluded.attempts, error = excluded.error,
                   finished_at = excluded.finished_at",
                params![run_id, c.stage, c.activity, c.state, c.attempts, c.error, now_ms()],
            )?;
            event(
                tx,
                run_id,
                "compensation_finished",
                Some(&c.stage),
                serde_json::json!({ "activity": c.activity, "state": c.state, "error": c.error }),
            )
        });
    }
}

/// Records a request from another process: cancel a run, send it a signal, pause or resume
/// it. Returns the run's state as it was.
/// Stops the attempts a dead owner left running: each recorded process group that is still
/// the attempt's (a reused pid is never hit: [`super::owner::group_is_attempts`]) is killed
/// and waited for up to 2 s. Their attempts are recorded `cancelled`.
fn stop_left_running(tx: &Transaction, run_id: &str) -> rusqlite::Result<()> {
    let mut statement = tx.prepare(
        "SELECT pid, pid_start FROM wvflow_attempts
         WHERE run_id = ?1 AND state = 'running' AND pid IS NOT NULL",
    )?;
    let groups: Vec<(i64, i64)> = statement
        .query_map([run_id], |r| Ok((r.get(0)?, r.get(1)?)))?
        .filter_map(Result::ok)
        .collect();
    for (pid, start) in groups {
        if start != 0 && super::owner::group_is_attempts(pid, start) {
            // SAFETY: a signal to a process group recorded for this run; no memory involved.
            unsafe {
                libc::kill(-(pid as i32), libc::SIGKILL);
            }
            let asked = std::time::Instant::now();
            while super::owner::group_exists(pid)
                && asked.elapsed() < std::time::Duration::from_secs(2)
            {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
        }
    }
    exec(
        tx,
        "UPDATE wvflow_attempts SET state = 'cancelled', finished_at = ?2,
           error = 'stopped: the run''s owner had ended'
         WHERE run_id = ?1 AND state = 'running'",
        params![run_id, now_ms()],
    )?;
    Ok(())
}

/// What another process asks of a run ([`request`]).
#[derive(Clone, Copy, Debug)]
pub enum Request<'a> {
    Cancel,
    /// A signal of the run's flow (or `pause` / `resume`) with its typed value.
    Signal {
        name: &'a str,
        value: &'a crate::value::Typed,
    },
}

pub fn request(db: &Path, run_id: &str, asked: Request) -> Result<ShownState, Error> {
    let mut conn = schema::open(db)?;
    let fail = |sqlite| Error::Record {
        what: Recording::Request(run_id.to_string()),
        sqlite,
    };
    let tx = begin(&mut conn).map_err(fail)?;
    let run_id = &super::catalog::live_run_id(&tx, run_id)?;
    let record = super::catalog::run_in(&tx, run_id)?.ok_or_else(|| Error::NoRun {
        run_id: run_id.to_string(),
        db: db.to_path_buf(),
    })?;
    let state = record.display_state();
    if record.is_finished() {
        return Err(Error::Finished {
            run_id: run_id.to_string(),
            state,
        });
    }
    let now = now_ms();
    match asked {
        Request::Cancel if state == ShownState::Stale => {
            // Nobody is left to act on the request: the run is cancelled here, and what its
            // dead owner left running is stopped.
            stop_left_running(&tx, run_id).map_err(fail)?;
            exec(&tx,
                "UPDATE wvflow_runs SET state = 'cancelled', cancel_requested = 1, finished_at = ?2 WHERE run_id = ?1",
                params![run_id, now],
            )
            .map_err(fail)?;
            for table in ["wvflow_stages", "wvflow_attempts"] {
                exec(&tx,
                    &format!("UPDATE {table} SET state = 'cancelled' WHERE run_id = ?1 AND state IN ('pending', 'running')"),
                    [run_id],
                )
                .map_err(fail)?;
            }
        }
        Request::Cancel => {
            exec(
                &tx,
                "UPDATE wvflow_runs SET cancel_requested = 1 WHERE run_id = ?1",
                [run_id],
            )
            .map_err(fail)?;
        }
        Request::Signal { name, value } => {
            exec(
                &tx,
                "INSERT INTO wvflow_signals (run_id, name, value, at) VALUES (?1, ?2, ?3, ?4)",
                params![
                    run_id,
                    name,
                    value.value.clone(),
                    now
                ],
            )
            .map_err(fail)?;
            if matches!(name, "pause" | "resume") {
                exec(
                    &tx,
                    "UPDATE wvflow_runs SET paused = ?2 WHERE run_id = ?1",
                    params![run_id, (name == "pause") as i64],
                )
                .map_err(fail)?;
            }
        }
    }
    let (kind, detail) = match asked {
        Request::Cancel => ("cancel_requested", serde_json::json!({ "name": null })),
        Request::Signal { name, value } => (
            "signal",
            serde_json::json!({ "name": name, "value": value.json() }),
        ),
    };
    event(&tx, run_id, kind, None, detail).map_err(fail)?;
    let wakes: bool = tx
        .query_row(
            "SELECT owner_wakes FROM wvflow_runs WHERE run_id = ?1",
            [run_id],
            |r| r.get(0),
        )
        .map_err(fail)?;
    tx.commit().map_err(fail)?;
    // The owner reads the request at once, not at its next look at the store.
    if wakes && record.owner.is_alive() == Some(true) {
        super::wake::poke(record.owner.pid, record.owner.start);
    }
    Ok(state)
}

/// Waits up to `limit` for the owner of `run_id` to say it has seen the cancel request
/// ([`super::owner::Watch`] sets the run's cancel flag, then records it): from then on no new
/// stage or item of the run starts. `false` when the owner has not said so in time.
pub fn cancel_seen(db: &Path, run_id: &str, limit: std::time::Duration) -> Result<bool, Error> {
    let conn = schema::open(db)?;
    let run_id = &super::catalog::live_run_id(&conn, run_id)?;
    let started = std::time::Instant::now();
    loop {
        let (seen, finished): (i64, bool) = conn
            .query_row(
                "SELECT cancel_requested, finished_at IS NOT NULL FROM wvflow_runs WHERE run_id = ?1",
                [run_id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(|e| Error::Catalog(e.into()))?;
        if seen == super::owner::CANCEL_SEEN || finished {
            return Ok(true);
        }
        if started.elapsed() >= limit {
            return Ok(false);
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// Why `run` cannot be resumed as it stands in the run store, if it cannot: its state, or the
/// compensations it ran to the end (a saga stopped half way is finished by a resume). Decided again inside [`Journal::reclaim`]'s transaction.
pub fn not_resumable(conn: &Connection, run: &RunRow) -> Result<(), Error> {
    let run_id = &run.run_id;
    let state = run.display_state();
    if !matches!(
        state,
        ShownState::Recorded(RunState::Failed | RunState::Cancelled) | ShownState::Stale
    ) {
        return Err(Error::NotResumable {
            run_id: run_id.clone(),
            state,
        });
    }
    // A run that ended after its saga undid its successful stages; a saga stopped half way
    // (or before the run's end was recorded) is finished by the resume.
    let compensated: i64 = conn
        .query_row(
            "SELECT count(*) FROM wvflow_compensations WHERE run_id = ?1",
            [run_id],
            |r| r.get(0),
        )
        .map_err(|sqlite| Error::Record {
            what: Recording::Resume(run_id.clone()),
            sqlite,
        })?;
    let owed: i64 = conn
        .query_row(
            "SELECT count(*) FROM wvflow_compensations WHERE run_id = ?1 AND state = 'pending'",
            [run_id],
            |r| r.get(0),
        )
        .map_err(|sqlite| Error::Record {
            what: Recording::Resume(run_id.clone()),
            sqlite,
        })?;
    // A run cancelled as stale in the middle of its saga still owes what is pending.
    if compensated > 0 && run.is_finished() && owed == 0 {
        return Err(Error::Compensated {
            run_id: run_id.clone(),
        });
    }
    Ok(())
}

/// Whether the run database of `run` still holds the rows of its successful stages
/// (`succeeded`), which the stages after them read when it resumes: a missing or unreadable
/// file, or a missing table, is said with its path, before anything runs again.
pub fn check_run_data(run: &RunRow, succeeded: &[&str]) -> Result<(), Error> {
    if succeeded.is_empty() {
        return Ok(());
    }
    let path = Path::new(&run.run_db);
    if !path.is_file() {
        return Err(Error::RunDbMissing {
            run_id: run.run_id.clone(),
            path: path.to_path_buf(),
            stages: succeeded.iter().map(|s| s.to_string()).collect(),
        });
    }
    let unreadable = |sqlite| Error::RunDbUnreadable {
        run_id: run.run_id.clone(),
        path: path.to_path_buf(),
        sqlite,
    };
    let conn = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(unreadable)?;
    let tables = crate::runtime::store::table_names(&conn).map_err(unreadable)?;
    let lost: Vec<&str> = succeeded
        .iter()
        .copied()
        .filter(|s| !tables.contains(*s))
        .collect();
    if !lost.is_empty() {
        return Err(Error::RowsLost {
            run_id: run.run_id.clone(),
            path: path.to_path_buf(),
            stages: lost.iter().map(|s| s.to_string()).collect(),
        });
    }
    Ok(())
}

/// A run's arguments as one JSON object, each in its type's form (`true`, `"90s"`), as
/// `runs show` prints them.
fn args_json(run: &NewRun) -> String {
    let args: serde_json::Map<String, serde_json::Value> = run
        .args
        .iter()
        .map(|(k, v)| {
            let ty = run
                .plan
                .flow
                .params
                .iter()
                .find(|p| &p.name == k)
                .map_or(ValueType::Any, |p| p.ty);
            (k.clone(), crate::value::json(v, ty))
        })
        .collect();
    serde_json::Value::Object(args).to_string()
}

/// Every stage of a run that starts, recorded `pending` in the plan's order.
/// The signals sent to the run `from` that `run_id` continues, in their order, and its pause:
/// they hold in the new run too.
fn carry_signals(tx: &Transaction, run_id: &str, from: &str) -> rusqlite::Result<()> {
    exec(
        tx,
        "INSERT INTO wvflow_signals (run_id, name, value, at)
         SELECT ?1, name, value, at FROM wvflow_signals WHERE run_id = ?2 ORDER BY seq",
        params![run_id, from],
    )?;
    exec(
        tx,
        "UPDATE wvflow_runs SET paused = (SELECT paused FROM wvflow_runs WHERE run_id = ?2)
         WHERE run_id = ?1",
        params![run_id, from],
    )?;
    Ok(())
}

/// A new run's stages: pending, or as they ended in the run it continues.
fn pending_stages(tx: &Transaction, run: &NewRun) -> rusqlite::Result<()> {
    let mut insert = tx.prepare(
        "INSERT INTO wvflow_stages (run_id, stage, position, state, attempts, rows, duration_ms,
           error, reused, started_at, finished_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?10)",
    )?;
    let carried = run.continued_from.map_or(&[][..], |(_, carried)| carried);
    let now = now_ms();
    for (i, stage) in run.plan.flow.stages.iter().enumerate() {
        match carried.iter().find(|c| c.stage == stage.id) {
            Some(c) => insert.execute(params![
                run.run_id,
                stage.id,
                i as i64,
                c.state,
                c.attempts,
                c.rows as i64,
                c.duration_ms as i64,
                c.error_text(),
                c.reused,
                now,
            ])?,
            None => insert.execute(params![
                run.run_id,
                stage.id,
                i as i64,
                StageState::Pending,
                0,
                0,
                0,
                None::<String>,
                false,
                None::<i64>,
            ])?,
        };
    }
    Ok(())
}
