//! The executor: runs a flow's plan stage by stage, in dependency order, with the semantics
//! of the runtime (docs/runtime.md). This file is the scheduling loop (triggers over upstream
//! states, parallel stages, forks, the flow timeout) and what a run reports; [`stage`] runs
//! one stage, [`saga`] its compensations.

use super::activity::{AttemptEvent, Launcher, Request};
use super::clock::Clock;
use super::error::StageError;
use super::output::Output;
use super::retry::{Outcome, Random};
use super::state::{Phase, RunState, StageState};
use super::store::{Pool, Rows, Store, StoreConfig};
use crate::plan::ir::*;
use rusqlite::types::Value;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
mod saga;
mod stage;

use saga::{compensate, not_compensated};
mod board;
mod frontier;
use board::Board;
pub use stage::parts::{
    Alone, BeforeStep, after_items, call_targets, one_item, steps_before, wait_once,
};
pub use stage::{bind, bind_one};
use stage::{StageRun, Started, run_stage};

/// What a run needs from outside: time, randomness, processes, and its values.
pub struct Context<'a> {
    pub clock: &'a dyn Clock,
    /// The wall time at which `clock` read zero: `now()` is this plus `clock.now()`.
    pub epoch: chrono::DateTime<chrono::Utc>,
    pub random: &'a dyn Random,
    pub launcher: &'a dyn Launcher,
    /// Activities run here, and relative file paths resolve here: the `.wv` file's folder.
    pub cwd: PathBuf,
    pub run_id: String,
    pub flow: String,
    /// Flow parameters, `run_time` and `run_date`.
    pub params: BTreeMap<String, Value>,
    /// Set to cancel the run: running attempts are killed, pending stages cancelled.
    pub cancel: Arc<AtomicBool>,
    /// Runs child flows; without it `call` fails.
    pub flows: Option<&'a dyn FlowRunner>,
    /// Jumps reached by stages of this run.
    pub jumps: std::sync::Mutex<Vec<Jump>>,
    /// Told of every transition: live progress, the run store.
    pub progress: Option<&'a dyn Progress>,
    /// Whether a cancelled run compensates (false for a child terminated by its parent).
    pub compensate_on_cancel: bool,
    /// While set, no new stage starts (the `pause` signal); running ones go on.
    pub paused: Arc<AtomicBool>,
    /// Stages that succeeded in an earlier execution of this run (`runs resume`), in the
    /// order they finished: their tables are in the run database and they are not run again.
    pub resumed: Vec<StageSummary>,
    /// The saga of an earlier execution of this run that was stopped in it (`runs resume`),
    /// in its order: the compensations owed are these, and those that ended are not run again.
    pub compensated: Vec<CompensationSummary>,
    /// An exported task's try: only this attempt of each activity call is made, numbered so;
    /// the engine that runs the task retries it.
    pub single_attempt: Option<u32>,
    /// The run's signals and stage states, when not in a run store.
    pub inbox: Option<&'a dyn Inbox>,
    /// Whether a loop's `continue_as_new` ends the run for a new one to go on (`wvflow run`);
    /// otherwise (an exported task) the loop goes on in the task with its rows begun anew.
    pub continues: bool,
}

/// Where a run's signals and stage states come from when it has no run store (a task of an
/// exported run reads them from the run's state): shown to a stage's store before its steps,
/// and before each check of a `wait until`, which may read them.
pub trait Inbox: Sync {
    fn show(&self, stage: &StagePlan, store: &mut Store) -> Result<(), StageError>;
}

impl Context<'_> {
    /// The wall time on the run's clock: what `now()` gives.
    pub fn now(&self) -> chrono::DateTime<chrono::Utc> {
        chrono::Duration::from_std(self.clock.now())
            .ok()
            .and_then(|d| self.epoch.checked_add_signed(d))
            .unwrap_or(self.epoch)
    }
}

#[derive(Clone, Debug, Serialize, serde::Deserialize, PartialEq)]
pub struct StageSummary {
    pub stage: String,
    pub state: StageState,
    pub attempts: u32,
    pub rows: usize,
    pub duration_ms: u64,
    pub error: Option<crate::runtime::error::StageError>,
    /// The stage succeeded with the rows recorded under its idempotency key by an earlier
    /// run (for an `each`, every item's): nothing ran.
    #[serde(default)]
    pub reused: bool,
}

#[derive(Clone, Debug, Serialize, serde::Deserialize, PartialEq)]
pub struct CompensationSummary {
    pub stage: String,
    pub activity: String,
    pub state: StageState,
    pub attempts: u32,
    pub error: Option<String>,
}

impl StageSummary {
    /// The stage's error as the summary prints it.
    pub fn error_text(&self) -> Option<String> {
        self.error.as_ref().map(ToString::to_string)
    }

    /// A stage in `state` with nothing done yet.
    pub(crate) fn new(stage: &StagePlan, state: StageState) -> Self {
        StageSummary {
            stage: stage.id.clone(),
            state,
            attempts: 0,
            rows: 0,
            duration_ms: 0,
            error: None,
            reused: false,
        }
    }
}

/// The object `wvflow run --format json` prints (docs/runtime.md).
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Summary {
    pub run_id: String,
    pub flow: String,
    pub state: RunState,
    pub stages: Vec<StageSummary>,
    pub compensations: Vec<CompensationSummary>,
    /// Runs to start after this one succeeded (`-> F(args)`), in the order reached.
    #[serde(skip)]
    pub next: Vec<Jump>,
    /// Where the final rows are: the run's database and its last stages (read by no other
    /// stage) that succeeded, in plan order. What a parent's `each call` takes.
    #[serde(skip)]
    pub outputs: Option<Outputs>,
}

/// A run's database and its last stages that succeeded: where its final rows are.
pub type Outputs = (std::path::PathBuf, Vec<String>);

/// A run to start: a flow, its version, and argument values.
#[derive(Clone, Debug, PartialEq)]
pub struct Jump {
    pub flow: String,
    pub version: Option<u32>,
    pub args: BTreeMap<String, Value>,
}

/// How one attempt of an activity ended.
#[derive(Clone, Debug, PartialEq)]
pub struct AttemptEnd<'a> {
    /// `success`, `failed` or `cancelled`.
    pub state: StageState,
    pub exit_code: Option<i32>,
    pub error: Option<&'a crate::runtime::activity::AttemptFailure>,
}

/// Which attempt of which activity call.
#[derive(Clone, Debug, PartialEq)]
pub struct Attempt<'a> {
    pub stage: &'a str,
    pub phase: crate::runtime::state::Phase,
    /// The step of the stage that calls the activity (a stage may call several).
    pub step: usize,
    /// The input row of an `each` fan-out.
    pub item: Option<usize>,
    /// From 1.
    pub number: u32,
}

/// What a run reports while it goes, each call made before the executor acts on the
/// transition: live progress on a terminal, and the durable run store.
pub trait Progress: Sync {
    fn stage_started(&self, _stage: &str) {}
    fn attempt_started(&self, _attempt: &Attempt) {}
    /// The attempt's process exists: `pid`, also the id of its process group.
    fn attempt_process(&self, _attempt: &Attempt, _pid: u32) {}
    /// More of the attempt's log (stderr, and stdout lines that are not rows).
    fn attempt_log(&self, _attempt: &Attempt, _text: &str) {}
    fn attempt_finished(&self, _attempt: &Attempt, _end: &AttemptEnd) {}
    /// `attempt` failed and another follows after `delay`: the stage is `retrying`.
    fn retrying(&self, _attempt: &Attempt, _delay: Duration) {}
    /// The stage (or its `each` item) waits for a slot of `pool` (`waiting`), or has one
    /// after waiting: the stage is `queued` meanwhile.
    fn pool_wait(&self, _stage: &str, _item: Option<usize>, _pool: &str, _waiting: bool) {}
    /// A stage reached a terminal state (also one that never ran: skipped or cancelled).
    fn stage_finished(&self, _summary: &StageSummary) {}
    /// The saga begins: every compensation the run owes, in the order they run (those that
    /// ended in an earlier execution with their end, the others `pending`), and how the run
    /// ends after them (`failed` or `cancelled`).
    fn compensations_due(&self, _due: &[CompensationSummary], _ending: RunState) {}
    fn compensation_finished(&self, _compensation: &CompensationSummary) {}
}

/// Several observers as one.
pub struct Tee<'a>(pub Vec<&'a dyn Progress>);

impl Progress for Tee<'_> {
    fn stage_started(&self, stage: &str) {
        self.0.iter().for_each(|p| p.stage_started(stage));
    }
    fn attempt_started(&self, attempt: &Attempt) {
        self.0.iter().for_each(|p| p.attempt_started(attempt));
    }
    fn attempt_process(&self, attempt: &Attempt, pid: u32) {
        self.0.iter().for_each(|p| p.attempt_process(attempt, pid));
    }
    fn attempt_log(&self, attempt: &Attempt, text: &str) {
        self.0.iter().for_each(|p| p.attempt_log(attempt, text));
    }
    fn attempt_finished(&self, attempt: &Attempt, end: &AttemptEnd) {
        self.0.iter().for_each(|p| p.attempt_finished(attempt, end));
    }
    fn retrying(&self, attempt: &Attempt, delay: Duration) {
        self.0.iter().for_each(|p| p.retrying(attempt, delay));
    }
    fn pool_wait(&self, stage: &str, item: Option<usize>, pool: &str, waiting: bool) {
        self.0
            .iter()
            .for_each(|p| p.pool_wait(stage, item, pool, waiting));
    }
    fn stage_finished(&self, summary: &StageSummary) {
        self.0.iter().for_each(|p| p.stage_finished(summary));
    }
    fn compensations_due(&self, due: &[CompensationSummary], ending: RunState) {
        self.0.iter().for_each(|p| p.compensations_due(due, ending));
    }
    fn compensation_finished(&self, compensation: &CompensationSummary) {
        self.0
            .iter()
            .for_each(|p| p.compensation_finished(compensation));
    }
}

/// Runs other flows of the workspace for `call F(...)` (a child run the stage waits for).
pub trait FlowRunner: Sync {
    /// Runs `target` to its end. `parent_close` says what happens to the child when `cancel`
    /// (the parent's) is set or `timeout` passes first: `terminate` cancels it without its
    /// compensations, `request_cancel` cancels it and lets its compensations run, `abandon`
    /// leaves it running.
    /// `parent` is the calling run and stage, recorded on the child.
    fn run_child(
        &self,
        target: &Jump,
        parent: (&str, &str),
        cancel: Arc<AtomicBool>,
        parent_close: ParentClose,
        timeout: Option<Duration>,
    ) -> Result<Summary, crate::runtime::launch::Error>;
}

/// Runs the plan: ready stages in parallel (at most `max_parallel`, lower `priority` first),
/// each trigger evaluated once its upstreams are terminal.
pub fn execute(plan: &Plan, stores: &StoreConfig, ctx: &Context, max_parallel: usize) -> Summary {
    let flow = &plan.flow;
    let mut board = Board::new(flow, ctx);
    board.take_up(&ctx.resumed);
    let pool = &Pool::default();
    // The first connection sets the files up (WAL, the run store's tables) before stages race
    // to open theirs.
    if let Ok(mut store) = pool.take(stores) {
        replay_jumps(&mut store, ctx, &flow.stages, &board.index);
        pool.give_back(store);
    }
    let timed_out = run_stages(&mut board, stores, pool, max_parallel);
    board.conclude(stores, timed_out)
}

/// Starts the stages as they become ready and records each as it ends, until none runs or
/// can start. Returns whether the flow's `timeout` passed: then running attempts were
/// stopped as by a cancel, and the run fails (compensations and hooks follow).
fn run_stages(board: &mut Board, stores: &StoreConfig, pool: &Pool, max_parallel: usize) -> bool {
    let (flow, ctx) = (board.flow, board.ctx);
    let deadline = flow
        .timeout_ms
        .map(|ms| ctx.clock.now() + Duration::from_millis(ms));
    // A virtual clock stops at the deadline until it is noticed here.
    let mut hold = deadline.and_then(|d| ctx.clock.hold_at(d));
    let mut timed_out = false;
    let (sender, receiver) = std::sync::mpsc::channel::<(usize, StageSummary)>();
    // Stages run on worker threads, started as more stages run at once than there are
    // workers and kept until the run ends: starting a thread for every stage showed in
    // profiles of long chains.
    let (jobs, queue) = std::sync::mpsc::channel::<(usize, Started)>();
    let queue = std::sync::Mutex::new(queue);
    std::thread::scope(|scope| {
        let (mut running, mut workers, mut passed_on) = (0usize, 0usize, false);
        loop {
            if !timed_out && deadline.is_some_and(|d| ctx.clock.now() >= d) {
                timed_out = true;
                ctx.cancel.store(true, Ordering::SeqCst);
            }
            let cancelled = ctx.cancel.load(Ordering::Relaxed);
            if cancelled && !passed_on {
                passed_on = true;
                board.cancel_every_stage();
            }
            if timed_out && let Some(hold) = hold.take() {
                ctx.clock.release(hold);
            }
            let hold = ctx.paused.load(Ordering::Relaxed) && !cancelled;
            while let Some(i) = (!hold && !board.continuing)
                .then(|| board.next_ready(cancelled, running < max_parallel.max(1)))
                .flatten()
            {
                running += 1;
                // The stage's work, until its summary is taken below.
                ctx.clock.busy();
                if jobs.send((i, board.start(i, stores))).is_err() {
                    break;
                }
                if workers < running {
                    workers += 1;
                    let (queue, sender) = (&queue, sender.clone());
                    scope.spawn(move || {
                        loop {
                            let job = match queue.lock() {
                                Ok(queue) => queue.recv(),
                                Err(_) => return,
                            };
                            let Ok((i, start)) = job else { return };
                            let summary = run_guarded(&flow.stages[i], stores, pool, ctx, &start);
                            let _ = sender.send((i, summary));
                        }
                    });
                }
            }
            if running == 0 && !hold {
                break;
            }
            // Wake up now and then to notice a pause ending, and a cancel, which is passed on
            // to the running stages' own flags from here.
            match super::clock::receive(ctx.clock, &receiver, Duration::from_millis(20)) {
                Ok((i, summary)) => {
                    running -= 1;
                    board.finish(i, summary, timed_out);
                }
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => continue,
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
        // No more stages: the workers' queue closes and they end.
        drop(jobs);
    });
    if let Some(hold) = hold {
        ctx.clock.release(hold);
    }
    if timed_out {
        // The flag was this run's doing: later runs of the process are not cancelled.
        ctx.cancel.store(false, Ordering::SeqCst);
    }
    timed_out
}

/// One stage alone, as a task of an exported flow runs it: the states of its upstream
/// stages are given and their tables are already in the run database (see also [`parts`]
/// for a stage run in parts).
pub fn run_single_stage(
    stage: &StagePlan,
    stores: &StoreConfig,
    ctx: &Context,
    alone: Alone,
) -> StageSummary {
    let start = Started {
        workspace_db: stores.workspace_db.clone(),
        states: alone.upstream,
        cancel: ctx.cancel.clone(),
        first_success: alone.first_success,
    };
    run_stage(stage, stores, &Pool::default(), ctx, &start)
}

/// The saga of an exported run: the compensations of `completed` (in the order they
/// finished), latest first, their rows read from the run database.
pub fn compensate_completed(
    stores: &StoreConfig,
    ctx: &Context,
    completed: &[&StagePlan],
) -> Vec<CompensationSummary> {
    match stores.connect() {
        Ok(mut store) => compensate(&mut store, ctx, completed, RunState::Failed),
        Err(e) => not_compensated(ctx, completed, &format!("cannot open the run store: {e}")),
    }
}

/// The stages no other stage reads or waits for, that succeeded, in plan order.
pub(crate) fn final_stages(flow: &FlowPlan, results: &[StageSummary]) -> Vec<String> {
    let read: std::collections::BTreeSet<&str> = flow
        .stages
        .iter()
        .flat_map(|s| s.upstream.iter().map(|e| e.stage.as_str()))
        .collect();
    results
        .iter()
        .filter(|r| r.state == StageState::Success && !read.contains(r.stage.as_str()))
        .map(|r| r.stage.clone())
        .collect()
}

/// One attempt of an activity: launched, and reported to `progress` (started, its process,
/// what it writes, how it ended) when there is one. Stages, compensations and hooks share it.
pub(crate) fn launch_reported(
    launcher: &dyn Launcher,
    request: &Request,
    attempt: &Attempt,
    progress: Option<&dyn Progress>,
) -> Outcome<Output> {
    let Some(progress) = progress else {
        return launcher.launch(request, &|_| {});
    };
    progress.attempt_started(attempt);
    let outcome = launcher.launch(request, &|event| match event {
        AttemptEvent::Spawned(pid) => progress.attempt_process(attempt, pid),
        AttemptEvent::Logged(text) => progress.attempt_log(attempt, text),
    });
    let end = match &outcome {
        Outcome::Success(_) => AttemptEnd {
            state: StageState::Success,
            exit_code: Some(0),
            error: None,
        },
        Outcome::Failure(failure) => AttemptEnd {
            state: StageState::Failed,
            exit_code: failure.exit_code(),
            error: Some(failure),
        },
        Outcome::Cancelled => AttemptEnd {
            state: StageState::Cancelled,
            exit_code: None,
            error: None,
        },
    };
    progress.attempt_finished(attempt, &end);
    outcome
}

/// The message a panic carried.
fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic".into())
}

/// Runs one stage; a bug that panics fails its stage, rather than leaving the run waiting for
/// a stage that will never end.
fn run_guarded(
    stage: &StagePlan,
    stores: &StoreConfig,
    pool: &Pool,
    ctx: &Context,
    start: &Started,
) -> StageSummary {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        run_stage(stage, stores, pool, ctx, start)
    }))
    .unwrap_or_else(|panic| StageSummary {
        attempts: 1,
        error: Some(StageError::Internal(panic_text(&*panic))),
        ..StageSummary::new(stage, StageState::Failed)
    })
}

/// A resumed run does not run its succeeded stages again, but the jumps they reached still
/// start when the run succeeds: their targets are evaluated again over the stored rows.
fn replay_jumps(
    store: &mut Store,
    ctx: &Context,
    stages: &[StagePlan],
    index: &BTreeMap<&str, usize>,
) {
    for done in &ctx.resumed {
        let Some(stage) = index.get(done.stage.as_str()).map(|&i| &stages[i]) else {
            continue;
        };
        for step in &stage.steps {
            let Step::Jump { target } = step else {
                continue;
            };
            let rows = store.stage_rows(&stage.id).unwrap_or_default();
            let mut run = StageRun::new(&mut *store, ctx, stage, None, Phase::Run);
            if let (Ok(jump), Ok(mut jumps)) = (run.target(target, &rows), ctx.jumps.lock()) {
                jumps.push(jump);
            }
        }
    }
}

/// An activity launcher that only answers from a script, for tests.
pub struct ScriptedLauncher<F: Fn(&Request) -> Outcome<Rows> + Send + Sync>(pub F);

impl<F: Fn(&Request) -> Outcome<Rows> + Send + Sync> Launcher for ScriptedLauncher<F> {
    fn launch(
        &self,
        request: &Request,
        _events: &dyn Fn(crate::runtime::activity::AttemptEvent),
    ) -> Outcome<Output> {
        match (self.0)(request) {
            Outcome::Success(rows) => Outcome::Success(Output::Rows(rows)),
            Outcome::Failure(failure) => Outcome::Failure(failure),
            Outcome::Cancelled => Outcome::Cancelled,
        }
    }
}
