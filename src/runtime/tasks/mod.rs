//! What the tasks of an exported flow run (`wvflow stage init | run | finish | next`, and
//! `prepare | item | poll | gather` for a stage in parts): a run driven
//! one stage at a time by another engine (Airflow, Argo), against a state location its
//! workers share. wvflow still decides everything the flow says: triggers, the rows each
//! stage reads, retries, the saga, hooks and the run's state. The engine provides workers,
//! ordering and its UI. Decisions: `docs/export.md`.
//!
//! | module | job |
//! |---|---|
//! | [`state`] | the state location and its files |
//! | `error` | why a task could not do its work |
//! | `fan` | a stage whose `each` items are tasks of their own |
//! | `calls` | a stage's child runs as runs of the engine |
//! | `next` | the run a jump starts after the run succeeded |
//! | `waits` | a `wait until` the engine checks between its own waits |
//! | `lease` | one copy of a task at a time |
//! | `scratch` | a task's scratch folder, and those of dead tasks removed |
//! | `requests` | what others ask of an exported run: signals, queries, a cancel |

mod calls;
mod error;
mod fan;
mod lease;
mod next;
mod requests;
mod scratch;
pub mod state;
mod waits;

pub use error::{ArgError, Error, PartKind};
use fan::input_table;
pub use fan::Prepared;
pub use next::{NextError, NextRun, reference};
pub use waits::Polled;
use crate::plan::tasks::{engine_retries, flow_key, item_retries};

use super::engine::{
    Alone, BeforeStep, CompensationSummary, Context, StageSummary, Summary, after_items,
    call_targets, compensate_completed, one_item, run_single_stage, steps_before, wait_once,
};
use super::error::{NotRetried, StageError};
use super::flow_call::CallArgs;
use super::rules::{self, AfterFailure, Before, End, Waiter};
use super::runs::{run_params, zone_of};
use super::schedule::run_time_text;
use super::state::{RunState, StageState};
use super::store::{StoreConfig, from_json, to_json};
use crate::plan::Plan;
use crate::plan::ir::{RetryPolicy, StagePlan};
use crate::session::{Notice, Reporter};
use rusqlite::types::Value;
use serde::{Deserialize, Serialize};
use state::{Location, plan_key, run_key, stage_key};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// How a task ended, as the engine reads its exit status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TaskEnd {
    /// 0: the stage succeeded (or the run did, for `finish`).
    Success,
    /// 99: the stage did not run: its trigger did not hold, or it was cancelled before it
    /// started or lost a race (Airflow's skip code).
    Skipped,
    /// 98: failed for good: the stage used its retries, or the run failed. Not to be retried.
    Failed,
    /// 1: this attempt failed and the engine is to try the task again.
    Retry,
}

impl TaskEnd {
    pub fn exit_code(self) -> u8 {
        match self {
            TaskEnd::Success => 0,
            TaskEnd::Skipped => 99,
            TaskEnd::Failed => 98,
            TaskEnd::Retry => 1,
        }
    }
}

/// Stage records by stage id.
type Records = BTreeMap<String, StageRecord>;

/// What `init` records of a run.
#[derive(Serialize, Deserialize)]
struct RunRecord {
    flow: String,
    args: serde_json::Map<String, serde_json::Value>,
    run_time: String,
    started_at_ms: i64,
    #[serde(flatten)]
    lineage: Lineage,
}

/// How a run came to be: how many jumps (`-> F`) led to it, and how deep it is nested in child
/// runs (`call F`). Each stops at the depth limit, as in `wvflow run`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lineage {
    #[serde(default)]
    pub depth: u32,
    #[serde(default)]
    pub nesting: u32,
    /// The run whose call started this one, as `FLOW/RUN_ID`: started after that run was
    /// cancelled (a try the engine made late), this one starts cancelled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
}

/// How a stage ended, written once by its task.
#[derive(Clone, Serialize, Deserialize)]
struct StageRecord {
    #[serde(flatten)]
    summary: StageSummary,
    finished_at_ms: i64,
    /// The first try of the task that wrote it since the engine last cleared that task
    /// ([`TaskRun::first_try`]).
    #[serde(default = "first")]
    first_try: u32,
}

fn first() -> u32 {
    1
}

/// One run of an exported flow: its plan, where its state is, and where activities run.
pub struct TaskRun<'a> {
    pub plan: &'a Plan,
    pub state: Location,
    pub run_id: String,
    /// The folder of the flow's `.wv` file: activities run here, relative paths resolve here.
    pub cwd: PathBuf,
    /// Set to stop the running attempts (the engine's SIGTERM).
    pub cancel: Arc<AtomicBool>,
    /// Whether the engine retries a stage's task ([`engine_retries`]); when not, every stage
    /// retries inside its task (an Argo backoff that has no Argo form).
    pub engine_retries: bool,
    /// Told what the run's hooks warn of.
    pub reporter: &'a dyn Reporter,
    /// Time, randomness and processes, injected.
    pub means: Means<'a>,
    /// The engine's first try of this task since it last cleared it (Airflow: `max_tries -
    /// retries + 1`; 1 when never cleared). A record written under an earlier one is from
    /// before the clear: the user asked for the work again, and it runs again.
    pub first_try: u32,
}

pub use super::means::{Means, SystemMeans};

impl TaskRun<'_> {
    /// The flow as the state's keys name it: `Name`, or `Name@2` for a version.
    fn flow_key(&self) -> String {
        flow_key(self.plan)
    }


    /// Records the run's arguments (bound to the flow's parameters), its run time and how
    /// many jumps led to it. A second `init` of the same run (a retried task) keeps the first
    /// record.
    pub fn init(
        &self,
        args: &BTreeMap<String, Value>,
        run_time: Option<String>,
        lineage: Lineage,
    ) -> Result<(), Error> {
        let key = run_key(&self.flow_key(), &self.run_id, "run.json");
        if self.state.read(&key)?.is_some() {
            return Ok(());
        }
        // The plan, for the tasks after this one to read from here.
        self.state.write(
            &plan_key(&self.flow_key(), &self.run_id),
            &serde_json::to_vec(self.plan).map_err(Error::Encode)?,
        )?;
        let record = RunRecord {
            flow: self.plan.flow.name.clone(),
            args: args.iter().map(|(k, v)| (k.clone(), to_json(v))).collect(),
            run_time: run_time.unwrap_or_else(|| run_time_text(self.means.now())),
            started_at_ms: self.means.now_ms(),
            lineage,
        };
        self.state.write(
            &key,
            &serde_json::to_vec_pretty(&record).map_err(Error::Encode)?,
        )?;
        if self.parent_cancelled(&record.lineage)? {
            self.request_cancel()?;
        }
        Ok(())
    }

    fn run_record(&self) -> Result<RunRecord, Error> {
        let key = run_key(&self.flow_key(), &self.run_id, "run.json");
        let Some(text) = self.state.read(&key)? else {
            return Err(Error::NoRunRecord {
                run_id: self.run_id.clone(),
                key,
            });
        };
        serde_json::from_slice(&text).map_err(|source| Error::Decode {
            key: Some(key),
            source,
        })
    }

    fn record_of(&self, stage: &str) -> Result<Option<StageRecord>, Error> {
        self.read_json(&stage_key(&self.flow_key(), &self.run_id, stage, "json"))
    }

    /// The JSON object at `key` of the state, read as a `T`; `None` when there is none.
    fn read_json<T: serde::de::DeserializeOwned>(&self, key: &str) -> Result<Option<T>, Error> {
        match self.state.read(key)? {
            Some(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|source| Error::Decode {
                    key: Some(key.to_string()),
                    source,
                }),
            None => Ok(None),
        }
    }

    /// Every stage's record, by stage, read once: as its task wrote it (a fork's own end,
    /// before its branches), and with a fork's state settled by its branches.
    fn records(&self) -> Result<(Records, Records), Error> {
        let own = self.own_records()?;
        let mut settled = own.clone();
        let flow = &self.plan.flow;
        for fork in &flow.stages {
            let Some(record) = settled.get(&fork.id) else {
                continue;
            };
            let state_of = |b: &str| settled.get(b).map(|r| r.summary.state);
            if let Some(summary) = rules::settle_fork(flow, fork, &record.summary, state_of) {
                let finished_at_ms = record.finished_at_ms;
                let first_try = record.first_try;
                let settled_record = StageRecord {
                    summary,
                    finished_at_ms,
                    first_try,
                };
                settled.insert(fork.id.clone(), settled_record);
            }
        }
        Ok((own, settled))
    }

    /// Every stage's record as its task wrote it: a fork's own end, before its branches.
    fn own_records(&self) -> Result<Records, Error> {
        let mut records = BTreeMap::new();
        for stage in &self.plan.flow.stages {
            if let Some(record) = self.record_of(&stage.id)? {
                records.insert(stage.id.clone(), record);
            }
        }
        Ok(records)
    }

    /// The run's values as its SQL reads them: arguments, `run_time`, `run_date`, the run id.
    fn params(&self, record: &RunRecord) -> BTreeMap<String, Value> {
        let args = record
            .args
            .iter()
            .map(|(k, v)| (k.clone(), from_json(v)))
            .collect();
        run_params(args, &record.run_time, &self.run_id, zone_of(self.plan))
    }

    /// The run database of this task: a fresh one in a temporary folder.
    fn stores(&self, scratch: &Path) -> Result<StoreConfig, Error> {
        Ok(StoreConfig {
            workspace_db: self.state.workspace_db(scratch)?,
            run_db: scratch.join("run.db"),
            base: self.cwd.clone(),
        })
    }

    fn context(&self, params: BTreeMap<String, Value>) -> Context<'_> {
        Context {
            clock: self.means.clock,
            epoch: self.means.epoch,
            random: self.means.random,
            launcher: self.means.launcher,
            cwd: self.cwd.clone(),
            run_id: self.run_id.clone(),
            flow: self.plan.flow.name.clone(),
            params,
            cancel: self.cancel.clone(),
            flows: None,
            jumps: Default::default(),
            progress: None,
            compensate_on_cancel: true,
            paused: Arc::default(),
            resumed: Vec::new(),
            continues: false,
            compensated: Vec::new(),
            single_attempt: None,
            inbox: Some(self),
        }
    }

    /// [`Self::run_stage_once`], as the only copy of the stage's task that runs now.
    pub fn run_stage(
        &self,
        stage_id: &str,
        attempt: u32,
    ) -> Result<(TaskEnd, StageSummary), Error> {
        self.one_copy(&format!("stage-{stage_id}"), || {
            self.run_stage_once(stage_id, attempt)
        })
    }

    /// Runs stage `stage_id` once its upstream stages have ended: skipped when its trigger
    /// does not hold, else run as `wvflow run` runs it. A stage whose task the engine retries
    /// ([`engine_retries`]) makes one attempt, number `attempt`; any other retries inside its
    /// task. A stage that already has a record (its task ran before and the engine runs it
    /// again) is not run again.
    fn run_stage_once(
        &self,
        stage_id: &str,
        attempt: u32,
    ) -> Result<(TaskEnd, StageSummary), Error> {
        match self.begin(stage_id, true)? {
            Begin::Done(summary) => Ok((end_of(summary.state), summary)),
            Begin::Decided(summary) => self.record(summary),
            Begin::Go(stage, run, records, upstream) => {
                match self.execute(stage, (&run, &records), upstream, attempt, Part::Whole)? {
                    Executed::Ended(summary) => self.record(summary),
                    _ => Ok((TaskEnd::Retry, retrying(stage, attempt))),
                }
            }
        }
    }

    /// Writes the stage's record: how it ended, for the tasks after it and `finish`.
    fn record(&self, summary: StageSummary) -> Result<(TaskEnd, StageSummary), Error> {
        let record = StageRecord {
            summary: summary.clone(),
            finished_at_ms: self.means.now_ms(),
            first_try: self.first_try,
        };
        self.state.write(
            &stage_key(&self.flow_key(), &self.run_id, &summary.stage, "json"),
            &serde_json::to_vec_pretty(&record).map_err(Error::Encode)?,
        )?;
        Ok((end_of(summary.state), summary))
    }

    /// The states of a stage's upstream stages, once they have all ended.
    fn upstream_states(
        &self,
        stage: &StagePlan,
        (own, records): (&Records, &Records),
    ) -> Result<BTreeMap<String, StageState>, Error> {
        let mut upstream = BTreeMap::new();
        for edge in &stage.upstream {
            // A branch sees its fork as the fork's own work ended, not as its branches settle it.
            let inside_fork = self
                .plan
                .flow
                .stages
                .iter()
                .any(|f| f.id == edge.stage && rules::sees_own_end(&stage.id, f));
            let seen = if inside_fork { own } else { records };
            let record = seen
                .get(&edge.stage)
                .ok_or_else(|| Error::UpstreamNotEnded {
                    stage: stage.id.clone(),
                    upstream: edge.stage.clone(),
                })?;
            upstream.insert(edge.stage.clone(), record.summary.state);
        }
        Ok(upstream)
    }

    /// What a stage's first task finds: it ended before, it is decided without running
    /// (skipped, or cancelled past the flow's timeout), or it is to run.
    /// `own`: this task writes the stage's record itself (a stage's one task), so a record
    /// written before the engine last cleared it ([`Self::first_try`]) is not its end: the
    /// user asked for the stage again, and it runs again.
    fn begin<'s>(&'s self, stage_id: &str, own: bool) -> Result<Begin<'s>, Error> {
        let flow = &self.plan.flow;
        let stage = flow
            .stages
            .iter()
            .find(|s| s.id == stage_id)
            .ok_or_else(|| Error::NoStage {
                flow: flow.name.clone(),
                stage: stage_id.to_string(),
            })?;
        if let Some(done) = self.record_of(stage_id)?
            && !(own && done.first_try < self.first_try)
        {
            return Ok(Begin::Done(done.summary));
        }
        let run = self.run_record()?;
        let (own, records) = self.records()?;
        let upstream = self.upstream_states(stage, (&own, &records))?;
        let before = Before {
            // Past the flow's timeout nothing starts, as in `wvflow run`.
            stopped: self.timed_out(&run) || self.cancel_requested()?,
            end_reached: rules::end_reached(
                flow,
                own.iter()
                    .filter(|(_, r)| r.summary.state == StageState::Success)
                    .map(|(id, _)| id.as_str()),
            ),
            lost_race: rules::lost_race(flow, &stage.id, ends(&own)),
        };
        Ok(match rules::unrun(stage, before, &upstream) {
            Some(state) => Begin::Decided(StageSummary::new(stage, state)),
            None => Begin::Go(stage, run, records, upstream),
        })
    }

    /// The flow's deadline, in wall time: when the run started plus its timeout.
    fn deadline(&self, run: &RunRecord) -> Option<i64> {
        let ms = self.plan.flow.timeout_ms?;
        Some(run.started_at_ms.saturating_add(i64::try_from(ms).unwrap_or(i64::MAX)))
    }

    /// Whether the flow's timeout has passed.
    fn timed_out(&self, run: &RunRecord) -> bool {
        self.deadline(run).is_some_and(|d| self.means.now_ms() >= d)
    }

    /// Runs the stage (or `part` of its fan-out) on a fresh run database holding the tables
    /// it reads, then keeps its tables in the state location (before its record, which says
    /// they are there).
    fn execute(
        &self,
        stage: &StagePlan,
        run: (&RunRecord, &BTreeMap<String, StageRecord>),
        upstream: BTreeMap<String, StageState>,
        attempt: u32,
        part: Part,
    ) -> Result<Executed, Error> {
        // A writer takes the workspace database and puts it back in one turn. `prepare` and
        // the items write nothing there: the gathering records the items' keys.
        let puts_back = !matches!(part, Part::Prepare | Part::Item(..) | Part::Poll(..));
        if crate::plan::tasks::writes_workspace(stage) && puts_back {
            self.workspace_turn(|| self.execute_now(stage, run, upstream, attempt, part))
        } else {
            self.execute_now(stage, run, upstream, attempt, part)
        }
    }

    fn execute_now(
        &self,
        stage: &StagePlan,
        (run, records): (&RunRecord, &BTreeMap<String, StageRecord>),
        upstream: BTreeMap<String, StageState>,
        attempt: u32,
        part: Part,
    ) -> Result<Executed, Error> {
        let policy = match &part {
            Part::Whole => engine_retries(stage),
            Part::Item(..) => item_retries(stage),
            Part::Prepare | Part::Poll(..) | Part::Gather(..) => None,
        }
        .filter(|_| self.engine_retries);
        let first_ms = self.first_attempt_ms(stage, &part)?;
        let scratch = scratch::scratch()?;
        let stores = self.stores(scratch.path())?;
        self.load_reads(stage, &upstream, &stores, scratch.path())?;
        let first_success = stage
            .first_success
            .then(|| rules::race_winner(stage, ends(records)).map(str::to_string))
            .flatten();
        let mut ctx = self.context(self.params(run));
        if policy.is_some() {
            ctx.single_attempt = Some(attempt);
        }
        let alone = Alone {
            upstream,
            first_success,
        };
        let (gathering, preparing) = (matches!(part, Part::Gather(..)), matches!(part, Part::Prepare));
        // The flow's timeout bounds the attempt too: it is stopped when the run's time is up.
        let deadline = self.deadline(run);
        let ran = self.until((deadline, stage), &mut ctx, |ctx| part.run(stage, &stores, ctx, alone));
        let timed_out = self.timed_out(run);
        let mut summary = match ran {
            // The fan-out's input, kept for its items and its gathering.
            Ran::Prepared(rows, children) => {
                let items = match children {
                    Some((children, attempts)) => match self.keep_children(stage, &children, attempts)? {
                        Some(failed) => return Ok(Executed::Ended(failed)),
                        None => children.len(),
                    },
                    None => rows.len(),
                };
                return self.keep_prepared(stage, (&rows, items), &stores, scratch.path());
            }
            Ran::Item(done) => return self.item_ended(stage, done, (policy, attempt), first_ms),
            Ran::Polled(polled) => return Ok(Executed::Polled(polled)),
            Ran::Ended(summary) => summary,
        };
        if timed_out {
            rules::stopped_by_timeout(&self.plan.flow, &mut summary);
        }
        if timed_out && summary.state == StageState::Failed {
            return Ok(Executed::Ended(summary));
        }
        if summary.state == StageState::Cancelled && self.cancel.load(Ordering::Relaxed) {
            // The engine stopped the task: nothing is recorded, so that a retry runs it again.
            return Err(Error::Stopped {
                stage: stage.id.clone(),
                item: false,
            });
        }
        if policy.is_some() && summary.attempts > 0 {
            // The attempts of the engine's earlier tries count, and the time since the first.
            summary.attempts = attempt;
            summary.duration_ms = self.since(first_ms);
        }
        if gathering {
            // A fanned-out stage lasted from its `prepare` to its gathering.
            summary.duration_ms = self.since(first_ms);
        }
        if let Some(policy) = policy
            && summary.state == StageState::Failed
        {
            // Only an activity's attempt is retried; a failure before it (its arguments, an
            // idempotency key) is not.
            let call = CallEnd::of_error(summary.error.as_ref());
            if call == CallEnd::NotCalled {
                return Ok(Executed::Ended(summary));
            }
            match self.after_failure(policy, stage, (attempt, call), first_ms) {
                AfterFailure::Again(_) => return Ok(Executed::Retry),
                AfterFailure::GiveUp(why) => append(&mut summary.error, why),
            }
        }
        self.keep_tables(stage, &summary, &stores, scratch.path())?;
        if summary.state == StageState::Success {
            let jumps = ctx.jumps.lock().map(|j| j.clone()).unwrap_or_default();
            self.keep_jumps(stage, &jumps)?;
        }
        // `prepare` writes nothing there, and holds no writer's slot: it must not put back a
        // copy over another writer's records.
        if crate::plan::tasks::writes_workspace(stage) && !preparing {
            self.state.keep_workspace(&stores.workspace_db)?;
        }
        Ok(Executed::Ended(summary))
    }

    /// Keeps a fan-out's prepared input for its items and its gathering.
    fn keep_prepared(
        &self,
        stage: &StagePlan,
        (rows, items): (&crate::runtime::store::Rows, usize),
        stores: &StoreConfig,
        scratch: &std::path::Path,
    ) -> Result<Executed, Error> {
        let table = input_table(&stage.id);
        let mut store = stores.connect()?;
        store.write_table("run", &table, rows)?;
        let key = stage_key(&self.flow_key(), &self.run_id, &table, "db");
        self.state
            .put_file(&key, scratch, |file| {
                store.save_stage_table(&table, file).map_err(Error::Store)
            })?;
        Ok(Executed::Prepared(items))
    }

    /// When the stage's (or item's) first attempt started: `schedule_timeout` counts from
    /// there. Recorded by the first attempt.
    fn first_attempt_ms(&self, stage: &StagePlan, part: &Part) -> Result<i64, Error> {
        let attempt_of = match part {
            Part::Item(i, _) => format!("{}.item-{i}", stage.id),
            _ => stage.id.clone(),
        };
        // `schedule_timeout` counts again from a task the engine cleared.
        let extension = match self.first_try {
            1 => "first-attempt".to_string(),
            n => format!("first-attempt-{n}"),
        };
        self.first_time_ms(&stage_key(&self.flow_key(), &self.run_id, &attempt_of, &extension))
    }

    /// The wall time kept at `key`, or now, kept there when it is the first asking.
    fn first_time_ms(&self, key: &str) -> Result<i64, Error> {
        Ok(match self.state.read(key)? {
            Some(text) => String::from_utf8_lossy(&text)
                .trim()
                .parse()
                .unwrap_or_else(|_| self.means.now_ms()),
            None => {
                let now = self.means.now_ms();
                self.state.write(key, now.to_string().as_bytes())?;
                now
            }
        })
    }

    /// Loads into the task's fresh run database the tables the stage reads: its upstream
    /// stages' that succeeded, and the failed items it reads.
    fn load_reads(
        &self,
        stage: &StagePlan,
        upstream: &BTreeMap<String, StageState>,
        stores: &StoreConfig,
        scratch: &std::path::Path,
    ) -> Result<(), Error> {
        let mut store = stores.connect()?;
        let succeeded = upstream
            .iter()
            .filter(|(_, state)| **state == StageState::Success)
            .map(|(s, _)| s.clone());
        let failed = stage
            .reads_failed
            .iter()
            .map(|s| crate::plan::sql::failed_table(s));
        for table in succeeded.chain(failed) {
            let key = stage_key(&self.flow_key(), &self.run_id, &table, "db");
            if let Some(file) = self.state.local(&key, scratch)? {
                store.load_stage_table(&table, &file)?;
            }
        }
        Ok(())
    }

    /// Runs `stage_run` with the run's cancel flag set when the engine stops the task,
    /// `deadline` (ms since 1970) passes, someone cancels the run, or `stage` loses a race it
    /// runs in (another racer recorded its success first); the last two are looked for every
    /// second.
    fn until<T>(
        &self,
        (deadline, stage): (Option<i64>, &StagePlan),
        ctx: &mut Context,
        stage_run: impl FnOnce(&Context) -> T,
    ) -> T {
        const LOOK_EVERY: u32 = 50;
        let stop = Arc::new(AtomicBool::new(false));
        ctx.cancel = stop.clone();
        let finished = AtomicBool::new(false);
        let races = rules::races(&self.plan.flow, &stage.id).next().is_some();
        std::thread::scope(|scope| {
            let watch = scope.spawn(|| {
                for tick in 0u32.. {
                    if finished.load(Ordering::Relaxed) {
                        return;
                    }
                    let late = deadline.is_some_and(|d| self.means.now_ms() >= d);
                    // The state is looked at every second: a bucket charges each read.
                    let look = tick % LOOK_EVERY == LOOK_EVERY - 1;
                    let lost = look && races && self.lost_race(stage);
                    let asked = look && self.cancel_requested().unwrap_or(false);
                    if late || lost || asked || self.cancel.load(Ordering::Relaxed) {
                        stop.store(true, Ordering::SeqCst);
                        return;
                    }
                    std::thread::park_timeout(std::time::Duration::from_millis(20));
                }
            });
            let done = stage_run(ctx);
            finished.store(true, Ordering::SeqCst);
            watch.thread().unpark();
            done
        })
    }

    /// Whether another racer of a race `stage` runs in has recorded its success.
    fn lost_race(&self, stage: &StagePlan) -> bool {
        let mut racers = BTreeMap::new();
        for race in rules::races(&self.plan.flow, &stage.id) {
            for edge in &race.upstream {
                if let Ok(Some(record)) = self.record_of(&edge.stage) {
                    racers.insert(edge.stage.clone(), record);
                }
            }
        }
        rules::lost_race(&self.plan.flow, &stage.id, ends(&racers))
    }

    /// Milliseconds since `from_ms` (wall time).
    fn since(&self, from_ms: i64) -> u64 {
        u64::try_from(self.means.now_ms().saturating_sub(from_ms)).unwrap_or(0)
    }

    /// Whether a failed attempt (number `attempt`, which ended as `call`) is tried again by
    /// the engine, by the run's rules.
    fn after_failure(
        &self,
        policy: &RetryPolicy,
        stage: &StagePlan,
        (attempt, call): (u32, CallEnd),
        first_ms: i64,
    ) -> AfterFailure {
        // Only an activity's attempt is retried; a failure before it is not.
        let CallEnd::Exited(exit_code) = call else {
            return AfterFailure::GiveUp(None);
        };
        let limit = stage
            .schedule_timeout_ms
            .map(std::time::Duration::from_millis);
        let elapsed = std::time::Duration::from_millis(self.since(first_ms));
        rules::after_failure(policy, limit, (attempt, exit_code), elapsed, Waiter::Engine)
    }

    /// Keeps the stage's tables in the state location: its rows, when it succeeded; its
    /// failed items (`failed(stage)`) whatever its end, as a stage after a failed fan-out
    /// reads them.
    fn keep_tables(
        &self,
        stage: &StagePlan,
        summary: &StageSummary,
        stores: &StoreConfig,
        scratch: &std::path::Path,
    ) -> Result<(), Error> {
        let store = stores.connect()?;
        let failed = crate::plan::sql::failed_table(&stage.id);
        let tables = if summary.state == StageState::Success {
            vec![stage.id.as_str(), failed.as_str()]
        } else {
            vec![failed.as_str()]
        };
        for table in tables {
            if store.exists("run", table)? {
                let key = stage_key(&self.flow_key(), &self.run_id, table, "db");
                self.state
                    .put_file(&key, scratch, |file| {
                        store.save_stage_table(table, file).map_err(Error::Store)
                    })?;
            }
        }
        Ok(())
    }

    /// [`Self::finish_once`], as the only copy of `finish` that runs now: compensations and
    /// hooks run once.
    pub fn finish(&self) -> Result<Summary, Error> {
        // A run that never started (its `init` did not run) has nothing to decide, and gets
        // nothing written to the state, not even a lease.
        self.run_record()?;
        self.one_copy("finish", || self.finish_once())
    }

    /// Decides the run's state from the stages' records (a stage without one never ended:
    /// it counts as cancelled), runs the compensations of the stages that succeeded, newest
    /// first, when the run failed, and fires the flow's hooks.
    fn finish_once(&self) -> Result<Summary, Error> {
        let summary_key = run_key(&self.flow_key(), &self.run_id, "summary.json");
        // A second `finish` (an exit handler after the finish task) decides nothing again:
        // compensations and hooks ran once. One the engine cleared since decides again, and
        // compensates none that its first decision compensated.
        let before = match self.state.read(&summary_key)? {
            Some(bytes) => serde_json::from_slice::<FinishedRun>(&bytes).ok(),
            None => None,
        };
        let undone = match before {
            Some(done) if done.first_try >= self.first_try => return Ok(done.into_summary()),
            Some(done) => done.compensated(),
            None => Vec::new(),
        };
        let run = self.run_record()?;
        let (own, records) = self.records()?;
        let flow = &self.plan.flow;
        let stages: Vec<StageSummary> = flow
            .stages
            .iter()
            .map(|s| match records.get(&s.id) {
                Some(r) => r.summary.clone(),
                None => StageSummary {
                    error: Some(StageError::NeverEnded),
                    ..StageSummary::new(s, StageState::Cancelled)
                },
            })
            .collect();
        // A run still going when its time was up failed, as `wvflow run` fails it.
        let timed_out = self
            .deadline(&run)
            .is_some_and(|d| own.values().any(|r| r.finished_at_ms >= d));
        let state = rules::run_state(flow, &stages, self.cancel_requested()?, timed_out);
        let params = self.params(&run);
        let ctx = self.context(params.clone());
        let succeeded = flow.stages.iter().filter_map(|s| {
            let r = own.get(&s.id)?;
            (r.summary.state == StageState::Success).then_some((s, r.finished_at_ms))
        });
        let mut completed = rules::saga(state, self.cancel_compensates()?, succeeded);
        completed.retain(|s| !undone.iter().any(|c| c.stage == s.id));
        let compensations: Vec<CompensationSummary> = if completed.is_empty() {
            undone
        } else {
            let scratch = scratch::scratch()?;
            let stores = self.stores(scratch.path())?;
            let mut store = stores.connect()?;
            for stage in &completed {
                let key = stage_key(&self.flow_key(), &self.run_id, &stage.id, "db");
                if stage.compensation.is_some()
                    && let Some(file) = self.state.local(&key, scratch.path())?
                {
                    store.load_stage_table(&stage.id, &file)?;
                }
            }
            drop(store);
            let mut compensations = undone;
            compensations.extend(compensate_completed(&stores, &ctx, &completed));
            compensations
        };
        let summary = Summary {
            run_id: self.run_id.clone(),
            flow: flow.name.clone(),
            state,
            stages,
            compensations,
            next: Vec::new(),
            outputs: None,
        };
        for outcome in super::hooks::fire(
            self.plan,
            &summary,
            &params,
            self.means,
            &self.cwd,
            None,
        ) {
            if let Some(error) = outcome.error {
                self.reporter.notice(&Notice::HookFailed {
                    event: outcome.event,
                    target: outcome.target,
                    run_id: self.run_id.clone(),
                    error,
                });
            }
        }
        let written = Written {
            summary: &summary,
            first_try: self.first_try,
        };
        self.state.write(
            &summary_key,
            &serde_json::to_vec_pretty(&written).map_err(Error::Encode)?,
        )?;
        Ok(summary)
    }
}

/// `why`, when there is one, added to the error. The summary's error is text (the engine's),
/// so the reason becomes text here.
fn append(error: &mut Option<StageError>, why: Option<NotRetried>) {
    if let Some(why) = why
        && let Some(last) = error.take()
    {
        *error = Some(StageError::GaveUp {
            error: Box::new(last),
            why,
        });
    }
}

/// How each recorded stage ended, and when, as the run's rules read it.
fn ends(records: &Records) -> impl Fn(&str) -> Option<End> + '_ {
    |id| records.get(id).map(|r| (r.summary.state, r.finished_at_ms))
}

/// What a stage's first task finds ([`TaskRun::begin`]).
enum Begin<'p> {
    Done(StageSummary),
    Decided(StageSummary),
    Go(
        &'p StagePlan,
        RunRecord,
        BTreeMap<String, StageRecord>,
        BTreeMap<String, StageState>,
    ),
}

/// A stage whose task is to be tried again.
fn retrying(stage: &StagePlan, attempt: u32) -> StageSummary {
    StageSummary {
        attempts: attempt,
        ..StageSummary::new(stage, StageState::Retrying)
    }
}

/// Which part of a stage a task runs.
enum Part {
    Whole,
    /// The steps up to its `each`: the items' input.
    Prepare,
    /// One item of its `each`, on the prepared input.
    Item(usize, crate::runtime::store::Rows),
    /// One check of its `wait until`, on the prepared input.
    Poll(crate::runtime::store::Rows),
    /// The `each` with every item's end, then the steps after it.
    Gather(
        crate::runtime::store::Rows,
        BTreeMap<usize, super::retry::Finished<crate::runtime::store::Rows>>,
    ),
}

impl Part {
    /// Runs this part of `stage` with the engine.
    fn run(self, stage: &StagePlan, stores: &StoreConfig, ctx: &Context, alone: Alone) -> Ran {
        let each = || crate::plan::tasks::split_at(stage);
        match self {
            Part::Whole => Ran::Ended(run_single_stage(stage, stores, ctx, alone)),
            Part::Prepare => {
                let at = each().unwrap_or(0);
                let (rows, attempts) = match steps_before(stage, stores, ctx, alone.clone(), at) {
                    BeforeStep::Reached(rows, attempts) => (rows, attempts),
                    BeforeStep::Ended(summary) => return Ran::Ended(summary),
                };
                if crate::plan::tasks::calls_as_runs(stage).is_none() {
                    return Ran::Prepared(rows, None);
                }
                match call_targets(stage, stores, ctx, alone, (at, &rows)) {
                    Ok(children) => Ran::Prepared(rows, Some((children, attempts))),
                    Err(error) => Ran::Ended(StageSummary {
                        attempts: 1,
                        error: Some(error),
                        ..StageSummary::new(stage, StageState::Failed)
                    }),
                }
            }
            Part::Poll(input) => {
                let at = each().unwrap_or(0);
                Ran::Polled(wait_once(stage, stores, ctx, alone, (at, input)))
            }
            Part::Item(item, input) => {
                let at = each().unwrap_or(0);
                Ran::Item(one_item(stage, stores, ctx, alone, (at, &input, item)))
            }
            Part::Gather(input, ends) => {
                let at = each().unwrap_or(0);
                Ran::Ended(after_items(stage, stores, ctx, alone, (at, input, ends)))
            }
        }
    }
}

/// What the engine did of a part.
enum Ran {
    Ended(StageSummary),
    /// The rows of a fan-out's items, and for a call stage the children to start and the
    /// attempts of the activity calls before the call.
    Prepared(
        crate::runtime::store::Rows,
        Option<(Vec<super::engine::Jump>, u32)>,
    ),
    /// How an item ended; an error before its call made no attempt.
    Item(Result<super::retry::Finished<crate::runtime::store::Rows>, StageError>),
    /// A wait's check: its rows once its condition holds.
    Polled(Result<Option<crate::runtime::store::Rows>, StageError>),
}

/// How a part ended.
enum Executed {
    /// The stage ended (its record is to be written).
    Ended(StageSummary),
    /// This attempt failed and the engine is to try the task again.
    Retry,
    /// The fan-out's input is kept: this many items.
    Prepared(usize),
    /// An item ended.
    Item(super::retry::Finished<crate::runtime::store::Rows>),
    /// A wait was checked once.
    Polled(Result<Option<crate::runtime::store::Rows>, StageError>),
}

/// How a failed stage's (or item's) activity call ended, as [`verdict`] judges it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum CallEnd {
    /// No attempt of the call ended: the failure came before it (its arguments, an
    /// idempotency key) and is not retried.
    #[default]
    NotCalled,
    /// An attempt ended, with its exit code when it exited with one.
    Exited(Option<i32>),
}

impl CallEnd {
    /// What a failure says of the call: an activity's failure has its exit code.
    fn of<T>(result: &Result<T, StageError>) -> CallEnd {
        CallEnd::of_error(result.as_ref().err())
    }

    /// What a stage's error says of its call, as [`CallEnd::of`].
    fn of_error(error: Option<&StageError>) -> CallEnd {
        match error {
            Some(error) if error.is_activity() => CallEnd::Exited(error.exit_code()),
            _ => CallEnd::NotCalled,
        }
    }

    fn exit_code(self) -> Option<i32> {
        match self {
            CallEnd::Exited(code) => code,
            CallEnd::NotCalled => None,
        }
    }
}

/// Arguments given as `NAME=TEXT` (what an engine's string parameters give), each read by
/// its parameter's type ([`crate::value::parse`]), for
/// [`crate::runtime::flow_call::bind_params`]. A name the flow has no parameter for is left
/// to the binding to refuse.
pub fn text_args(plan: &Plan, pairs: &[String]) -> Result<CallArgs, ArgError> {
    let mut args = Vec::new();
    for pair in pairs {
        let (name, text) = pair
            .split_once('=')
            .ok_or_else(|| ArgError::NotAPair(pair.clone()))?;
        let ty = plan
            .flow
            .params
            .iter()
            .find(|p| p.name == name)
            .map_or(crate::value::ValueType::Any, |p| p.ty);
        let value = crate::value::parse(text, ty).map_err(|wrong| ArgError::Wrong {
            name: name.to_string(),
            flow: plan.flow.name.clone(),
            wrong,
            text: text.to_string(),
        })?;
        args.push((Some(name.to_string()), value));
    }
    Ok(args)
}

/// A summary as `finish` wrote it.
#[derive(Deserialize)]
struct FinishedRun {
    run_id: String,
    flow: String,
    state: RunState,
    stages: Vec<StageSummary>,
    compensations: Vec<CompensationSummary>,
    /// The first try of the `finish` task that decided it ([`TaskRun::first_try`]).
    #[serde(default = "first")]
    first_try: u32,
}

/// A summary as `finish` writes it: with the try that decided it.
#[derive(Serialize)]
struct Written<'s> {
    #[serde(flatten)]
    summary: &'s Summary,
    first_try: u32,
}

impl FinishedRun {
    /// The compensations it ran that succeeded: never run again.
    fn compensated(self) -> Vec<CompensationSummary> {
        self.compensations
            .into_iter()
            .filter(|c| c.state == StageState::Success)
            .collect()
    }

    fn into_summary(self) -> Summary {
        Summary {
            run_id: self.run_id,
            flow: self.flow,
            state: self.state,
            stages: self.stages,
            compensations: self.compensations,
            next: Vec::new(),
            outputs: None,
        }
    }
}

/// How a stage's task ends for the engine: a stage that did not run (skipped, or cancelled
/// before it started: a race it lost, the flow's timeout) is the engine's skip.
fn end_of(state: StageState) -> TaskEnd {
    match state {
        StageState::Success => TaskEnd::Success,
        StageState::Skipped | StageState::Cancelled => TaskEnd::Skipped,
        _ => TaskEnd::Failed,
    }
}
