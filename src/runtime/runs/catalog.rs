//! Reading the run store: runs, their stages, attempts, compensations, children and jumps;
//! and retention (`keep_runs`, `runs clean`).

use super::owner::{Owner, is_stale};
use super::schema::now_ms;
use crate::plan::Plan;
use crate::runtime::engine::{CompensationSummary, StageSummary};
use crate::runtime::state::{RunState, StageState};
use rusqlite::{Connection, OptionalExtension, Row, params};

/// Why the run store could not be read. `Display` gives the message users see.
#[derive(Debug)]
pub enum Error {
    /// SQLite refused (its code is in the error).
    Sqlite(rusqlite::Error),
    /// A run's stored plan is not one this wvflow reads.
    StoredPlan {
        run_id: String,
        json: serde_json::Error,
    },
    /// No run of this id.
    NoRun { run_id: String },
    /// The run has no stage of this name; `closest` is the name meant, maybe.
    NoStage {
        run_id: String,
        stage: String,
        closest: Option<String>,
    },
    /// The stage's rows were asked for, and it did not succeed.
    NotSucceeded {
        run_id: String,
        stage: String,
        state: StageState,
    },
    /// The stage's rows could not be read from the run's database.
    Rows(crate::runtime::store::Error),
}

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        Error::Sqlite(e)
    }
}

impl From<crate::runtime::store::Error> for Error {
    fn from(e: crate::runtime::store::Error) -> Self {
        Error::Rows(e)
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Sqlite(e) => write!(f, "{e}"),
            Error::StoredPlan { run_id, json } => {
                write!(f, "the stored plan of run {run_id}: {json}")
            }
            Error::NoRun { run_id } => write!(f, "no run `{run_id}`"),
            Error::NoStage {
                run_id,
                stage,
                closest,
            } => {
                write!(f, "run {run_id} has no stage `{stage}`")?;
                match closest {
                    Some(name) => write!(f, " (did you mean `{name}`?)"),
                    None => Ok(()),
                }
            }
            Error::NotSucceeded {
                run_id,
                stage,
                state,
            } => write!(
                f,
                "stage `{stage}` of run {run_id} is {state}: only a stage that succeeded has rows"
            ),
            Error::Rows(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for Error {}


/// One run as recorded.
#[derive(Clone, Debug)]
pub struct RunRow {
    pub run_id: String,
    pub flow: String,
    pub version: Option<i64>,
    pub args: serde_json::Map<String, serde_json::Value>,
    pub run_time: String,
    pub state: RunState,
    pub reason: Option<String>,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    pub owner: Owner,
    pub lease_until: i64,
    pub parent_run: Option<String>,
    pub parent_stage: Option<String>,
    pub jumped_from: Option<String>,
    pub workspace: String,
    pub run_db: String,
    pub keep_runs: Option<i64>,
    pub resumes: i64,
    /// A stage of the run waits for its next attempt (`retrying`).
    pub retrying: bool,
    /// The run this one continues (`continue_as_new`).
    pub continued_from: Option<String>,
}

const RUN_COLUMNS: &str = "run_id, flow, version, args, run_time, state, reason, created_at,
  started_at, finished_at, owner_pid, owner_host, owner_start, lease_until, parent_run,
  parent_stage, jumped_from, workspace, run_db, keep_runs, resumes,
  EXISTS (SELECT 1 FROM wvflow_stages AS s
          WHERE s.run_id = wvflow_runs.run_id AND s.state = 'retrying'),
  continued_from";

fn run_row(r: &Row) -> rusqlite::Result<RunRow> {
    Ok(RunRow {
        run_id: r.get(0)?,
        flow: r.get(1)?,
        version: r.get(2)?,
        args: serde_json::from_str(&r.get::<_, String>(3)?).unwrap_or_default(),
        run_time: r.get(4)?,
        state: r.get(5)?,
        reason: r.get(6)?,
        created_at: r.get(7)?,
        started_at: r.get(8)?,
        finished_at: r.get(9)?,
        owner: Owner {
            pid: r.get::<_, Option<i64>>(10)?.unwrap_or(0),
            host: r.get::<_, Option<String>>(11)?.unwrap_or_default(),
            start: r.get::<_, Option<i64>>(12)?.unwrap_or(0),
        },
        lease_until: r.get::<_, Option<i64>>(13)?.unwrap_or(0),
        parent_run: r.get(14)?,
        parent_stage: r.get(15)?,
        jumped_from: r.get(16)?,
        workspace: r.get(17)?,
        run_db: r.get(18)?,
        keep_runs: r.get(19)?,
        resumes: r.get(20)?,
        retrying: r.get(21)?,
        continued_from: r.get(22)?,
    })
}

/// The states a list of runs is filtered by (`runs list --state`, the dashboard's `state=`):
/// the recorded ones, `running` meaning live, and `stale`.
pub const STATE_FILTERS: [&str; 7] = [
    "running",
    "stale",
    "success",
    "failed",
    "cancelled",
    "skipped",
    "continued",
];

/// The state every command and the dashboard show of a run: its recorded state, told apart
/// further while it is `running`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShownState {
    Recorded(RunState),
    /// Running, and its owner is gone.
    Stale,
    /// Running, with a stage waiting for its next attempt.
    Retrying,
}

impl std::fmt::Display for ShownState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Padded as asked: `runs list` lines its columns up.
        f.pad(match self {
            ShownState::Recorded(state) => state.as_str(),
            ShownState::Stale => "running (stale)",
            ShownState::Retrying => "running (retrying)",
        })
    }
}

impl serde::Serialize for ShownState {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl RunRow {
    /// The state every command and the dashboard show: a running run whose owner is gone is
    /// `running (stale)`; a live one with a stage waiting for its next attempt is `running
    /// (retrying)`.
    pub fn display_state(&self) -> ShownState {
        if self.is_stale() {
            ShownState::Stale
        } else if self.state == RunState::Running && self.retrying {
            ShownState::Retrying
        } else {
            ShownState::Recorded(self.state)
        }
    }

    /// When the run ended, as far as the store knows at `now_ms`: when it finished; for a
    /// stale run, its owner's last heartbeat (the renewal its lease counts from), since
    /// nothing ran after it; `None` while a live run goes on.
    pub fn ended_at(&self, now_ms: i64) -> Option<i64> {
        match self.finished_at {
            Some(at) => Some(at),
            None if self.state == RunState::Running
                && is_stale(&self.owner, self.lease_until, now_ms) =>
            {
                let heartbeat = self.lease_until - super::owner::LEASE.as_millis() as i64;
                Some(
                    heartbeat
                        .max(self.started_at.unwrap_or(heartbeat))
                        .min(now_ms),
                )
            }
            None => None,
        }
    }

    /// How long the run took, or has taken so far at `now_ms` while it goes on; `None`
    /// before it started.
    pub fn duration_ms(&self, now_ms: i64) -> Option<u64> {
        let start = self.started_at?;
        let end = self.ended_at(now_ms).unwrap_or(now_ms);
        Some((end - start).max(0) as u64)
    }

    pub fn is_stale(&self) -> bool {
        self.state == RunState::Running && is_stale(&self.owner, self.lease_until, now_ms())
    }

    /// How the run ended, as dependencies and start conditions see it: a stale run counts as
    /// failed; `None` while it is still going.
    pub fn end(&self) -> Option<StageState> {
        match self.state {
            RunState::Running if self.is_stale() => Some(StageState::Failed),
            RunState::Running => None,
            RunState::Success => Some(StageState::Success),
            RunState::Failed => Some(StageState::Failed),
            RunState::Cancelled => Some(StageState::Cancelled),
            RunState::Skipped => Some(StageState::Skipped),
            // It goes on in the run that continued it.
            RunState::Continued => None,
        }
    }

    pub fn is_finished(&self) -> bool {
        self.state != RunState::Running
    }
}

pub fn run_in(conn: &Connection, run_id: &str) -> Result<Option<RunRow>, Error> {
    conn.query_row(
        &format!("SELECT {RUN_COLUMNS} FROM wvflow_runs WHERE run_id = ?1"),
        [run_id],
        run_row,
    )
    .optional()
    .map_err(Error::from)
}

/// The latest run of a flow (the one created last) that was not skipped: a skipped run ran
/// nothing, so it neither ends anything nor uses up a dependency.
pub fn latest(conn: &Connection, flow: &str) -> Result<Option<RunRow>, Error> {
    conn.query_row(
        &format!(
            "SELECT {RUN_COLUMNS} FROM wvflow_runs WHERE flow = ?1 AND state <> 'skipped'
             ORDER BY created_at DESC, rowid DESC LIMIT 1"
        ),
        [flow],
        run_row,
    )
    .optional()
    .map_err(Error::from)
}

/// Why `flow` may not run now: each flow it `depends on` must have a latest run that
/// succeeded (a stale run counts as failed) and ended after this flow's last run began.
pub fn unmet_dependency(
    conn: &Connection,
    flow: &str,
    depends_on: &[String],
) -> Result<Option<String>, Error> {
    let mine = latest(conn, flow)?;
    for dependency in depends_on {
        let Some(theirs) = latest(conn, dependency)? else {
            return Ok(Some(format!("`{dependency}` has no recorded run")));
        };
        if theirs.end() != Some(StageState::Success) {
            return Ok(Some(format!(
                "the latest run of `{dependency}` ({}) is {}",
                theirs.run_id,
                theirs.display_state()
            )));
        }
        if let Some(mine) = &mine
            && theirs.finished_at.unwrap_or(0) <= mine.created_at
        {
            return Ok(Some(format!(
                "`{dependency}` has not succeeded since the last run of `{flow}` ({})",
                mine.run_id
            )));
        }
    }
    Ok(None)
}

/// The run `flow` already has for this `run_time` (a skipped one does not count): a schedule
/// window runs once.
pub fn run_at(conn: &Connection, flow: &str, run_time: &str) -> Result<Option<String>, Error> {
    conn.query_row(
        "SELECT run_id FROM wvflow_runs WHERE flow = ?1 AND run_time = ?2 AND state <> 'skipped' LIMIT 1",
        [flow, run_time],
        |r| r.get(0),
    )
    .optional()
    .map_err(Error::from)
}

/// Runs that ended after event `after_seq` (a `run_finished` event), in the order they
/// ended, with the sequence number of each end. Event numbers follow commit order.
pub fn ended_since(conn: &Connection, after_seq: i64) -> Result<Vec<(i64, RunRow)>, Error> {
    let mut statement = conn
        .prepare(
            "SELECT seq, run_id FROM wvflow_events WHERE kind = 'run_finished' AND seq > ?1 ORDER BY seq",
        )
        ?;
    let ends: Vec<(i64, String)> = statement
        .query_map([after_seq], |r| Ok((r.get(0)?, r.get(1)?)))
        ?
        .collect::<Result<_, _>>()
        ?;
    let mut runs = Vec::new();
    for (seq, run_id) in ends {
        if let Some(run) = run_in(conn, &run_id)? {
            runs.push((seq, run));
        }
    }
    Ok(runs)
}

/// The newest event number: where a reader of [`ended_since`] starts.
pub fn last_event(conn: &Connection) -> Result<i64, Error> {
    conn.query_row("SELECT coalesce(max(seq), 0) FROM wvflow_events", [], |r| {
        r.get(0)
    })
    .map_err(Error::from)
}

/// The plan a run started with.
pub fn plan_of(conn: &Connection, run_id: &str) -> Result<Plan, Error> {
    let text: String = conn
        .query_row(
            "SELECT plan FROM wvflow_runs WHERE run_id = ?1",
            [run_id],
            |r| r.get(0),
        )
        ?;
    serde_json::from_str(&text).map_err(|e| Error::StoredPlan {
        run_id: run_id.to_string(),
        json: e,
    })
}

/// The first run that process `pid` of this host owns and recorded at `since_ms` or later
/// (later ones are the runs its jumps started).
pub fn run_started_by(
    conn: &Connection,
    pid: u32,
    since_ms: i64,
) -> Result<Option<RunRow>, Error> {
    conn.query_row(
        &format!(
            "SELECT {RUN_COLUMNS} FROM wvflow_runs
             WHERE owner_pid = ?1 AND owner_host = ?2 AND created_at >= ?3
             ORDER BY created_at, rowid LIMIT 1"
        ),
        params![pid, super::owner::Owner::this_process().host, since_ms],
        run_row,
    )
    .optional()
    .map_err(Error::from)
}

/// Which runs to list.
#[derive(Default)]
pub struct Filter {
    pub flow: Option<String>,
    /// A state as shown: `running (stale)` matches `stale` too.
    pub state: Option<String>,
    pub limit: Option<usize>,
}

/// Runs, newest first.
pub fn list(conn: &Connection, filter: &Filter) -> Result<Vec<RunRow>, Error> {
    let mut statement = conn
        .prepare(&format!(
            "SELECT {RUN_COLUMNS} FROM wvflow_runs WHERE (?1 IS NULL OR flow = ?1)
             ORDER BY created_at DESC, rowid DESC"
        ))
        ?;
    let rows = statement
        .query_map(params![filter.flow], run_row)
        ?;
    let mut runs = Vec::new();
    if filter.limit == Some(0) {
        return Ok(runs);
    }
    for row in rows {
        let row = row?;
        if let Some(wanted) = &filter.state {
            let shown = row.display_state();
            let stale = shown == ShownState::Stale;
            let matches = match wanted.as_str() {
                "stale" => stale,
                "running" => row.state == RunState::Running && !stale,
                other => shown.to_string() == other,
            };
            if !matches {
                continue;
            }
        }
        runs.push(row);
        if filter.limit.is_some_and(|n| runs.len() >= n) {
            break;
        }
    }
    Ok(runs)
}

/// A stage as recorded: what `wvflow run` reports of it, when it ran, and its attempts.
#[derive(Clone, Debug, serde::Serialize)]
pub struct StageRow {
    #[serde(flatten)]
    pub summary: StageSummary,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    /// While the stage is `retrying`: when its next attempt starts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<String>,
    pub history: Vec<AttemptRow>,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct AttemptRow {
    /// `run`, or `compensate` for a compensation's attempts.
    pub phase: crate::runtime::state::Phase,
    /// The step of the stage that called the activity.
    pub step: u32,
    /// The row of an `each` fan-out, from 0.
    pub item: Option<u64>,
    /// 0 for the first execution, one more after each `runs resume`.
    pub round: u32,
    pub attempt: u32,
    pub state: String,
    pub started_at: String,
    pub duration_ms: Option<u64>,
    pub exit_code: Option<i32>,
    pub error: Option<String>,
}

fn time(ms: Option<i64>) -> Option<String> {
    ms.map(super::schema::rfc3339)
}

/// The run's stages in plan order, each with its attempts.
pub fn stages(conn: &Connection, run_id: &str) -> Result<Vec<StageRow>, Error> {
    let e = Error::from;
    let mut attempts: std::collections::BTreeMap<String, Vec<AttemptRow>> = Default::default();
    let mut statement = conn
        .prepare(
            "SELECT stage, phase, item, round, attempt, state, started_at, finished_at, exit_code, error, step
             FROM wvflow_attempts WHERE run_id = ?1 AND phase != 'hook'
             ORDER BY stage, phase DESC, round, step, item, attempt",
        )
        .map_err(e)?;
    let rows = statement
        .query_map([run_id], |r| {
            let started: i64 = r.get(6)?;
            let finished: Option<i64> = r.get(7)?;
            Ok((
                r.get::<_, String>(0)?,
                AttemptRow {
                    phase: r.get(1)?,
                    step: r.get(10)?,
                    item: r.get::<_, i64>(2).map(|i| u64::try_from(i).ok())?,
                    round: r.get(3)?,
                    attempt: r.get(4)?,
                    state: r.get(5)?,
                    started_at: super::schema::rfc3339(started),
                    duration_ms: finished.map(|f| (f - started).max(0) as u64),
                    exit_code: r.get(8)?,
                    error: r.get(9)?,
                },
            ))
        })
        .map_err(e)?;
    for row in rows {
        let (stage, attempt) = row.map_err(e)?;
        attempts.entry(stage).or_default().push(attempt);
    }
    let mut statement = conn
        .prepare(
            "SELECT stage, state, attempts, rows, duration_ms, error, started_at, finished_at,
               reused
             FROM wvflow_stages WHERE run_id = ?1 ORDER BY position",
        )
        .map_err(e)?;
    let rows = statement
        .query_map([run_id], |r| {
            let stage: String = r.get(0)?;
            Ok(StageRow {
                history: attempts.remove(&stage).unwrap_or_default(),
                summary: StageSummary {
                    stage,
                    state: r.get(1)?,
                    attempts: r.get(2)?,
                    rows: r.get::<_, i64>(3)?.max(0) as usize,
                    duration_ms: r.get::<_, i64>(4)?.max(0) as u64,
                    error: r.get(5)?,
                    reused: r.get(8)?,
                },
                started_at: time(r.get(6)?),
                finished_at: time(r.get(7)?),
                next_attempt_at: None,
            })
        })
        .map_err(e)?;
    let mut stages: Vec<StageRow> = rows.collect::<Result<_, _>>().map_err(e)?;
    for stage in stages
        .iter_mut()
        .filter(|s| s.summary.state == StageState::Retrying)
    {
        stage.next_attempt_at = next_attempt(conn, run_id, &stage.summary.stage)?;
    }
    Ok(stages)
}

/// When a retrying stage's next attempt starts, from its latest `stage_retrying` event.
fn next_attempt(conn: &Connection, run_id: &str, stage: &str) -> Result<Option<String>, Error> {
    let detail: Option<String> = conn
        .query_row(
            "SELECT detail FROM wvflow_events WHERE run_id = ?1 AND stage = ?2 AND kind = 'stage_retrying'
             ORDER BY seq DESC LIMIT 1",
            [run_id, stage],
            |r| r.get(0),
        )
        .optional()
        ?;
    Ok(detail
        .and_then(|d| serde_json::from_str::<serde_json::Value>(&d).ok())
        .and_then(|d| d["next_attempt_at_ms"].as_i64())
        .map(super::schema::rfc3339))
}

/// Compensations in the order they ran.
pub fn compensations(conn: &Connection, run_id: &str) -> Result<Vec<CompensationSummary>, Error> {
    let mut statement = conn
        .prepare(
            "SELECT stage, activity, state, attempts, error FROM wvflow_compensations
             WHERE run_id = ?1 ORDER BY position, finished_at, rowid",
        )
        ?;
    let rows = statement
        .query_map([run_id], |r| {
            Ok(CompensationSummary {
                stage: r.get(0)?,
                activity: r.get(1)?,
                state: r.get(2)?,
                attempts: r.get(3)?,
                error: r.get(4)?,
            })
        })
        ?;
    rows.collect::<Result<_, _>>().map_err(Error::from)
}

/// A signal sent to a run: its name, its value as stored, and when it was sent.
#[derive(Clone, Debug, PartialEq)]
pub struct SignalRow {
    pub name: String,
    pub value: rusqlite::types::Value,
    pub at: i64,
}

/// The signals sent to a run, in the order they were sent.
pub fn signals(conn: &Connection, run_id: &str) -> Result<Vec<SignalRow>, Error> {
    let mut statement = conn
        .prepare("SELECT name, value, at FROM wvflow_signals WHERE run_id = ?1 ORDER BY seq")
        ?;
    let rows = statement
        .query_map([run_id], |r| {
            Ok(SignalRow {
                name: r.get(0)?,
                value: r.get(1)?,
                at: r.get(2)?,
            })
        })
        ?;
    rows.collect::<Result<_, _>>().map_err(Error::from)
}

/// The run that goes on for `run_id` now: itself, or, for a run continued as new, the newest
/// run of its chain. A request (cancel, signal) to any run of the chain reaches that one.
pub fn live_run_id(conn: &Connection, run_id: &str) -> Result<String, Error> {
    let mut id = run_id.to_string();
    while let Some(run) = run_in(conn, &id)?
        && run.state == RunState::Continued
        && let Some(next) = related(conn, &id, "continued_from")?.into_iter().next()
    {
        id = next.run_id;
    }
    Ok(id)
}

/// Runs started by this one: `call` children (`column = "parent_run"`) or jump targets
/// (`"jumped_from"`), oldest first.
pub fn related(conn: &Connection, run_id: &str, column: &str) -> Result<Vec<RunRow>, Error> {
    let mut statement = conn
        .prepare(&format!(
            "SELECT {RUN_COLUMNS} FROM wvflow_runs WHERE {column} = ?1 ORDER BY created_at, rowid"
        ))
        ?;
    let rows = statement
        .query_map([run_id], run_row)
        ?;
    rows.collect::<Result<_, _>>().map_err(Error::from)
}

/// Which finished runs `runs clean` removes.
pub struct Retention {
    /// Only runs of this flow.
    pub flow: Option<String>,
    /// Runs that finished longer ago than this.
    pub older_than_ms: Option<i64>,
    /// Runs whose owner is gone.
    pub stale: bool,
    /// Apply each flow's `keep_runs`.
    pub keep_runs: bool,
}

/// Removes runs per the retention rules, with their rows and run databases; never the
/// latest finished run of a flow. Returns the removed run ids.
pub fn clean(conn: &mut Connection, rules: &Retention) -> Result<Vec<String>, Error> {
    // Decide and delete in one immediate transaction: a run resumed meanwhile is not removed.
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        ?;
    let filter = Filter {
        flow: rules.flow.clone(),
        ..Filter::default()
    };
    let mut runs = list(&tx, &filter)?;
    // Latest finish first: "the latest finished run" is the one that ended last.
    runs.sort_by_key(|r| std::cmp::Reverse(r.finished_at.unwrap_or(r.created_at)));
    let now = now_ms();
    let mut latest_seen: std::collections::BTreeSet<String> = Default::default();
    let mut kept_per_flow: std::collections::BTreeMap<String, i64> = Default::default();
    // The latest finished run of each flow says how many that flow keeps.
    let mut keep: std::collections::BTreeMap<String, Option<i64>> = Default::default();
    let mut doomed = Vec::new();
    for run in &runs {
        let stale = run.is_stale();
        if !run.is_finished() && !stale {
            continue;
        }
        let keep_runs = *keep.entry(run.flow.clone()).or_insert(run.keep_runs);
        // The latest finished run of a flow is never removed; a skipped run ran nothing and
        // does not count as that run.
        if run.is_finished()
            && run.state != RunState::Skipped
            && latest_seen.insert(run.flow.clone())
        {
            *kept_per_flow.entry(run.flow.clone()).or_default() += 1;
            continue;
        }
        let too_old = rules.older_than_ms.is_some_and(|age| {
            run.is_finished() && now - run.finished_at.unwrap_or(run.created_at) > age
        });
        let kept = kept_per_flow.entry(run.flow.clone()).or_default();
        let over_keep =
            rules.keep_runs && run.is_finished() && keep_runs.is_some_and(|k| *kept >= k);
        if too_old || over_keep || (rules.stale && stale) {
            doomed.push(run.clone());
        } else if run.is_finished() {
            *kept += 1;
        }
    }
    for run in &doomed {
        for table in [
            "wvflow_stages",
            "wvflow_attempts",
            "wvflow_events",
            "wvflow_compensations",
            "wvflow_signals",
            "wvflow_runs",
        ] {
            tx.execute(
                &format!("DELETE FROM {table} WHERE run_id = ?1"),
                [&run.run_id],
            )
            ?;
        }
    }
    tx.commit()?;
    for run in &doomed {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", run.run_db));
        }
    }
    Ok(doomed.into_iter().map(|r| r.run_id).collect())
}

/// At most `limit` rows that stage `stage` of run `run_id` produced: the `result.get()` of
/// task queues. Only a stage that succeeded has rows.
pub fn output_rows(
    conn: &Connection,
    run_id: &str,
    stage: &str,
    limit: Option<u64>,
) -> Result<crate::runtime::store::Rows, Error> {
    let run = run_in(conn, run_id)?.ok_or_else(|| Error::NoRun {
        run_id: run_id.to_string(),
    })?;
    let stages = stages(conn, run_id)?;
    let Some(found) = stages.iter().find(|s| s.summary.stage == stage) else {
        let names = stages.iter().map(|s| s.summary.stage.as_str());
        return Err(Error::NoStage {
            run_id: run_id.to_string(),
            stage: stage.to_string(),
            closest: crate::diagnostics::suggest::closest(stage, names).map(str::to_string),
        });
    };
    if found.summary.state != StageState::Success {
        return Err(Error::NotSucceeded {
            run_id: run_id.to_string(),
            stage: stage.to_string(),
            state: found.summary.state,
        });
    }
    Ok(crate::runtime::store::Store::stage_rows_of_run(
        std::path::Path::new(&run.run_db),
        stage,
        limit,
    )?)
}

/// One attempt's log: which attempt it is, and what it wrote (`wvflow runs logs`).
#[derive(Clone, Debug, serde::Serialize)]
pub struct AttemptLog {
    pub stage: String,
    /// `run`, `compensate` for a compensation's attempts, or `hook` for a flow hook's (whose
    /// `stage` is then its event, `on_failure` say).
    pub phase: crate::runtime::state::Phase,
    /// The row of an `each` fan-out, from 0.
    pub item: Option<u64>,
    /// 0 for the first execution, one more after each `runs resume`.
    pub round: u32,
    pub attempt: u32,
    pub state: String,
    pub log: String,
}

/// The logs of a run's attempts (of one stage, if given), in the order they started.
pub fn logs(
    conn: &Connection,
    run_id: &str,
    stage: Option<&str>,
) -> Result<Vec<AttemptLog>, Error> {
    let e = Error::from;
    let mut statement = conn
        .prepare(
            "SELECT stage, phase, item, round, attempt, state, coalesce(log, '')
             FROM wvflow_attempts WHERE run_id = ?1 AND (?2 IS NULL OR stage = ?2)
             ORDER BY started_at, rowid",
        )
        .map_err(e)?;
    let rows = statement
        .query_map(params![run_id, stage], |r| {
            Ok(AttemptLog {
                stage: r.get(0)?,
                phase: r.get(1)?,
                item: r.get::<_, i64>(2).map(|i| u64::try_from(i).ok())?,
                round: r.get(3)?,
                attempt: r.get(4)?,
                state: r.get(5)?,
                log: r.get(6)?,
            })
        })
        .map_err(e)?;
    rows.collect::<Result<_, _>>().map_err(e)
}

/// Which attempts' logs to read, and how much of each ([`log_page`]).
#[derive(Clone, Debug, Default)]
pub struct LogQuery<'a> {
    pub stage: Option<&'a str>,
    pub attempt: Option<u32>,
    pub item: Option<u64>,
    /// Skip this many attempts (in the order they started).
    pub offset: u64,
    /// At most this many attempts.
    pub limit: u64,
    /// Each log from this character on: what a reader that has the first `from` characters
    /// still lacks.
    pub from: u64,
    /// Leave the text out: only each log's length (`chars`).
    pub lengths_only: bool,
}

/// One attempt's log as [`log_page`] reads it: `log` from the asked character on, `chars`
/// its whole length.
#[derive(Clone, Debug, serde::Serialize)]
pub struct LogPart {
    #[serde(flatten)]
    pub attempt: AttemptLog,
    pub chars: u64,
}

/// A page of a run's attempt logs, read in SQL (a fan-out of thousands of items is never
/// read whole), and how many attempts match in all.
pub fn log_page(
    conn: &Connection,
    run_id: &str,
    q: &LogQuery,
) -> Result<(Vec<LogPart>, u64), Error> {
    let e = Error::from;
    const MATCHING: &str = "FROM wvflow_attempts WHERE run_id = ?1 AND (?2 IS NULL OR stage = ?2)
         AND (?3 IS NULL OR attempt = ?3) AND (?4 IS NULL OR item = ?4)";
    let (attempt, item) = (q.attempt, q.item.map(|i| i as i64));
    let total: i64 = conn
        .query_row(
            &format!("SELECT count(*) {MATCHING}"),
            params![run_id, q.stage, attempt, item],
            |r| r.get(0),
        )
        .map_err(e)?;
    let mut statement = conn
        .prepare(&format!(
            "SELECT stage, phase, item, round, attempt, state,
               CASE WHEN ?7 THEN '' ELSE substr(coalesce(log, ''), ?5 + 1) END,
               length(coalesce(log, ''))
             {MATCHING} ORDER BY started_at, rowid LIMIT ?6 OFFSET ?8"
        ))
        .map_err(e)?;
    let rows = statement
        .query_map(
            params![
                run_id,
                q.stage,
                attempt,
                item,
                q.from as i64,
                q.limit as i64,
                q.lengths_only,
                q.offset as i64
            ],
            |r| {
                Ok(LogPart {
                    attempt: AttemptLog {
                        stage: r.get(0)?,
                        phase: r.get(1)?,
                        item: r.get::<_, i64>(2).map(|i| u64::try_from(i).ok())?,
                        round: r.get(3)?,
                        attempt: r.get(4)?,
                        state: r.get(5)?,
                        log: r.get(6)?,
                    },
                    chars: r.get::<_, i64>(7)?.unsigned_abs(),
                })
            },
        )
        .map_err(e)?;
    Ok((rows.collect::<Result<_, _>>().map_err(e)?, total.unsigned_abs()))
}
