//! The executor: runs a flow's plan stage by stage, in dependency order, with the semantics
//! of the runtime (docs/runtime.md): triggers over upstream states, retries, saga compensation on failure.

use super::activity::{CommandLine, Launcher, Request, command_line};
use super::clock::Clock;
use super::error::StageError;
use super::output::Output;
use super::retry::{self, Outcome, Random};
use super::state::{RunState, StageState};
use super::store::{Pool, Rows, Store, StoreConfig};
use crate::plan::ir::*;
use rusqlite::types::Value;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// What a run needs from outside: time, randomness, processes, and its values.
pub struct Context<'a> {
    pub clock: &'a dyn Clock,
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
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct StageSummary {
    pub stage: String,
    pub state: StageState,
    pub attempts: u32,
    pub rows: usize,
    pub duration_ms: u64,
    pub error: Option<String>,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct CompensationSummary {
    pub stage: String,
    pub activity: String,
    pub state: StageState,
    pub attempts: u32,
    pub error: Option<String>,
}

impl StageSummary {
    /// A stage in `state` with nothing done yet.
    fn new(stage: &StagePlan, state: StageState) -> Self {
        StageSummary {
            stage: stage.id.clone(),
            state,
            attempts: 0,
            rows: 0,
            duration_ms: 0,
            error: None,
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
}

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
    pub error: Option<&'a str>,
}

/// Which attempt of which activity call.
#[derive(Clone, Debug, PartialEq)]
pub struct Attempt<'a> {
    pub stage: &'a str,
    /// `run`, or `compensate` for the stage's compensation.
    pub phase: &'a str,
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
    fn attempt_finished(&self, _attempt: &Attempt, _end: &AttemptEnd) {}
    /// `attempt` failed and another follows after `delay`: the stage is `retrying`.
    fn retrying(&self, _attempt: &Attempt, _delay: Duration) {}
    /// A stage reached a terminal state (also one that never ran: skipped or cancelled).
    fn stage_finished(&self, _summary: &StageSummary) {}
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
    fn attempt_finished(&self, attempt: &Attempt, end: &AttemptEnd) {
        self.0.iter().for_each(|p| p.attempt_finished(attempt, end));
    }
    fn retrying(&self, attempt: &Attempt, delay: Duration) {
        self.0.iter().for_each(|p| p.retrying(attempt, delay));
    }
    fn stage_finished(&self, summary: &StageSummary) {
        self.0.iter().for_each(|p| p.stage_finished(summary));
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
    ) -> Result<Summary, String>;
}

/// Runs the plan: ready stages in parallel (at most `max_parallel`, lower `priority` first),
/// each trigger evaluated once its upstreams are terminal.
pub fn execute(plan: &Plan, stores: &StoreConfig, ctx: &Context, max_parallel: usize) -> Summary {
    let flow = &plan.flow;
    let n = flow.stages.len();
    let index: BTreeMap<&str, usize> = flow
        .stages
        .iter()
        .enumerate()
        .map(|(i, s)| (s.id.as_str(), i))
        .collect();
    let upstream: Vec<Vec<usize>> = flow
        .stages
        .iter()
        .map(|s| {
            s.upstream
                .iter()
                .filter_map(|e| index.get(e.stage.as_str()).copied())
                .collect()
        })
        .collect();
    // A fork stage's branches; a fork is settled (its final state known) once they are all
    // terminal, and only then do stages after the fork see it.
    let branches: Vec<Vec<usize>> = flow
        .stages
        .iter()
        .map(|s| {
            s.steps
                .iter()
                .filter_map(|step| match step {
                    Step::Fork { branches } => Some(
                        branches
                            .iter()
                            .filter_map(|b| index.get(b.as_str()).copied())
                            .collect::<Vec<_>>(),
                    ),
                    _ => None,
                })
                .flatten()
                .collect()
        })
        .collect();
    let mut settled = vec![false; n];
    let mut states: BTreeMap<String, StageState> = BTreeMap::new();
    let mut results: Vec<Option<StageSummary>> = vec![None; n];
    let mut started = vec![false; n];
    let mut completed: Vec<usize> = Vec::new();
    let mut ended = false;
    for done in &ctx.resumed {
        if let Some(&i) = index.get(done.stage.as_str()) {
            started[i] = true;
            states.insert(done.stage.clone(), StageState::Success);
            results[i] = Some(done.clone());
            completed.push(i);
            ended |= flow.stages[i].steps.iter().any(|s| matches!(s, Step::End));
        }
    }
    let (sender, receiver) = std::sync::mpsc::channel::<(usize, StageSummary)>();
    let pool = &Pool::default();
    // The first connection sets the files up (WAL, the run store's tables) before stages race
    // to open theirs.
    if let Ok(mut store) = pool.take(stores) {
        replay_jumps(&mut store, ctx, &flow.stages, &index);
        pool.give_back(store);
    }
    // The flow's `timeout` bounds the whole run: when it passes, running attempts are
    // stopped as by a cancel, and the run fails (compensations and hooks follow).
    let deadline = flow
        .timeout_ms
        .map(|ms| ctx.clock.now() + Duration::from_millis(ms));
    let mut timed_out = false;
    std::thread::scope(|scope| {
        let mut running = 0usize;
        loop {
            if !timed_out && deadline.is_some_and(|d| ctx.clock.now() >= d) {
                timed_out = true;
                ctx.cancel.store(true, Ordering::SeqCst);
            }
            for u in settle_forks(
                &flow.stages,
                &branches,
                &mut settled,
                &mut results,
                &mut states,
            ) {
                if let (Some(p), Some(result)) = (ctx.progress, &results[u]) {
                    p.stage_finished(result);
                }
            }
            let cancelled = ctx.cancel.load(Ordering::Relaxed);
            let hold = ctx.paused.load(Ordering::Relaxed) && !cancelled;
            // A stage marked skipped or cancelled below settles on the next pass, which may
            // make stages after it ready.
            let mut marked = false;
            // Start what is ready, lowest priority number first, then in plan order.
            if !hold {
                loop {
                    let ready = (0..n)
                        .filter(|&i| {
                            !started[i]
                                && upstream[i].iter().all(|&u| {
                                    results[u].is_some() && (settled[u] || branches[u].contains(&i))
                                })
                        })
                        .min_by_key(|&i| (flow.stages[i].priority, i));
                    let Some(i) = ready else { break };
                    let stage = &flow.stages[i];
                    let not_run = if cancelled {
                        Some(StageState::Cancelled)
                    } else if ended || !holds(&stage.trigger, &states) {
                        Some(StageState::Skipped)
                    } else {
                        None
                    };
                    if let Some(state) = not_run {
                        started[i] = true;
                        states.insert(stage.id.clone(), state);
                        let summary = StageSummary::new(stage, state);
                        if let Some(p) = ctx.progress {
                            p.stage_finished(&summary);
                        }
                        results[i] = Some(summary);
                        marked = true;
                        continue;
                    }
                    if running >= max_parallel.max(1) {
                        break;
                    }
                    started[i] = true;
                    running += 1;
                    if let Some(p) = ctx.progress {
                        p.stage_started(&stage.id);
                    }
                    let sender = sender.clone();
                    let done_states = states.clone();
                    scope.spawn(move || {
                        // A bug that panics fails its stage, rather than leaving the run
                        // waiting for a stage that will never end.
                        let summary =
                            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                                run_stage(stage, stores, pool, ctx, &done_states)
                            }))
                            .unwrap_or_else(|panic| StageSummary {
                                attempts: 1,
                                error: Some(format!(
                                    "internal error of wvflow (please report it): {}",
                                    panic_text(&*panic)
                                )),
                                ..StageSummary::new(stage, StageState::Failed)
                            });
                        let _ = sender.send((i, summary));
                    });
                }
            }
            if running == 0 && !hold {
                if marked {
                    continue;
                }
                break;
            }
            // Wake up now and then to notice a pause ending or a cancel while paused.
            let (i, summary) = match receiver.recv_timeout(Duration::from_millis(100)) {
                Ok(done) => done,
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => continue,
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
            };
            let mut summary = summary;
            if timed_out && summary.state == StageState::Cancelled {
                summary.state = StageState::Failed;
                summary.error = Some(timeout_error(flow));
            }
            if let Some(p) = ctx.progress {
                p.stage_finished(&summary);
            }
            running -= 1;
            let stage = &flow.stages[i];
            let state = summary.state;
            if state == StageState::Success {
                completed.push(i);
                ended |= stage.steps.iter().any(|s| matches!(s, Step::End));
            }
            states.insert(stage.id.clone(), state);
            results[i] = Some(summary);
        }
    });
    let results: Vec<StageSummary> = results.into_iter().flatten().collect();
    if timed_out {
        // The flag was this run's doing: later runs of the process are not cancelled.
        ctx.cancel.store(false, Ordering::SeqCst);
    }
    let cancelled = ctx.cancel.load(Ordering::Relaxed);
    let failed = cancelled
        || timed_out
        || flow
            .stages
            .iter()
            .zip(&results)
            .any(|(s, r)| r.state == StageState::Failed && s.on_failure == OnFailure::Fail);
    let compensations = if failed && (!cancelled || ctx.compensate_on_cancel) {
        let stages: Vec<&StagePlan> = completed.iter().map(|&i| &flow.stages[i]).collect();
        match stores.connect() {
            Ok(mut store) => compensate(&mut store, ctx, &stages),
            // Never skipped silently: each compensation that could not run says why.
            Err(e) => not_compensated(ctx, &stages, &format!("cannot open the run store: {e}")),
        }
    } else {
        Vec::new()
    };
    Summary {
        run_id: ctx.run_id.clone(),
        flow: flow.name.clone(),
        state: if cancelled {
            RunState::Cancelled
        } else if failed {
            RunState::Failed
        } else {
            RunState::Success
        },
        stages: results,
        compensations,
        next: if failed {
            Vec::new()
        } else {
            ctx.jumps.lock().map(|j| j.clone()).unwrap_or_default()
        },
    }
}

/// The message a panic carried.
fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic".into())
}

/// Why the stages running when the flow's timeout passed failed.
fn timeout_error(flow: &FlowPlan) -> String {
    format!(
        "stopped: the flow timeout of {} passed",
        crate::human::duration(Duration::from_millis(flow.timeout_ms.unwrap_or(0)))
    )
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
            let mut run = StageRun::new(&mut *store, ctx, stage, None, "run");
            if let (Ok(jump), Ok(mut jumps)) = (run.target(target, &rows), ctx.jumps.lock()) {
                jumps.push(jump);
            }
        }
    }
}

/// Settles every fork whose stage and branches have all ended: it fails when a branch failed
/// (and does not ignore its failure). Stages that are not forks are settled when they end.
/// Returns the forks that failed this way.
fn settle_forks(
    stages: &[StagePlan],
    branches: &[Vec<usize>],
    settled: &mut [bool],
    results: &mut [Option<StageSummary>],
    states: &mut BTreeMap<String, StageState>,
) -> Vec<usize> {
    let mut failed_forks = Vec::new();
    let mut changed = true;
    while changed {
        changed = false;
        for u in 0..stages.len() {
            if settled[u] || results[u].is_none() || !branches[u].iter().all(|&b| settled[b]) {
                continue;
            }
            settled[u] = true;
            changed = true;
            let failed = branches[u].iter().find(|&&b| {
                results[b]
                    .as_ref()
                    .is_some_and(|r| r.state == StageState::Failed)
                    && stages[b].on_failure == OnFailure::Fail
            });
            if let (Some(&b), Some(result)) = (failed, results[u].as_mut())
                && result.state == StageState::Success
            {
                result.state = StageState::Failed;
                result.error = Some(format!("branch `{}` failed", stages[b].id));
                states.insert(stages[u].id.clone(), StageState::Failed);
                failed_forks.push(u);
            }
        }
    }
    failed_forks
}

/// Runs one stage on its own connection and materializes its rows.
fn run_stage(
    stage: &StagePlan,
    stores: &StoreConfig,
    pool: &Pool,
    ctx: &Context,
    states: &BTreeMap<String, StageState>,
) -> StageSummary {
    match pool.take(stores) {
        Ok(mut store) => {
            let summary = run_stage_on(stage, &mut store, ctx, states);
            pool.give_back(store);
            summary
        }
        Err(e) => StageSummary {
            attempts: 1,
            error: Some(e),
            ..StageSummary::new(stage, StageState::Failed)
        },
    }
}

fn run_stage_on(
    stage: &StagePlan,
    store: &mut Store,
    ctx: &Context,
    states: &BTreeMap<String, StageState>,
) -> StageSummary {
    let started = ctx.clock.now();
    let mut summary = StageSummary {
        attempts: 1,
        ..StageSummary::new(stage, StageState::Failed)
    };
    fill_missing_upstreams(store, stage, states);
    let key = match &stage.idempotency_key {
        // Each item of an `each` stage has a key of its own, evaluated over its row.
        Some(_) if stage.idempotency_per_item => None,
        Some(sql) => match store.query(&format!("SELECT {}", sql.text), &ctx.params, None) {
            Ok(rows) => rows
                .values
                .first()
                .and_then(|r| r.first())
                .filter(|v| **v != Value::Null)
                .map(|v| crate::value::text(v, crate::value::ValueType::Any)),
            Err(e) => {
                summary.error = Some(format!("cannot evaluate the idempotency key: {e}"));
                return summary;
            }
        },
        None => None,
    };
    if let Some(k) = &key
        && let Ok(Some(rows)) = store.recorded(&ctx.flow, &stage.id, k)
    {
        // The key already succeeded: reuse the recorded rows, run nothing.
        summary.rows = rows.len();
        summary.state = if store.write_table("run", &stage.id, &rows).is_ok() {
            StageState::Success
        } else {
            StageState::Failed
        };
        summary.attempts = 0;
        return summary;
    }
    let mut run = StageRun::new(&mut *store, ctx, stage, key.clone(), "run");
    let result = run.steps();
    let attempts = run.attempts;
    let all_reused = run.all_reused;
    match result.and_then(|output| {
        let output = match &key {
            // The record holds the rows themselves: they are read into memory for it.
            Some(k) => {
                let rows = output.into_rows().map_err(|e| (e.into(), attempts))?;
                // Unrecorded, the next run would do the work again: the stage fails, as an
                // `each` item whose key cannot be recorded does.
                store.record(&ctx.flow, &stage.id, k, &rows).map_err(|e| {
                    (
                        format!("cannot record the idempotency key `{k}`: {e}").into(),
                        attempts,
                    )
                })?;
                Output::Rows(rows)
            }
            None => output,
        };
        store
            .write_output("run", &stage.id, &output)
            .map(|()| output.len())
            .map_err(|e| (e.into(), attempts))
    }) {
        Ok(rows) => {
            summary.state = StageState::Success;
            summary.rows = rows;
        }
        Err((e, n)) => {
            match e {
                StageError::Cancelled => summary.state = StageState::Cancelled,
                e => summary.error = Some(e.to_string()),
            }
            summary.attempts = n;
        }
    }
    summary.attempts = if all_reused && summary.state == StageState::Success {
        0
    } else {
        summary.attempts.max(attempts).max(1)
    };
    summary.duration_ms = (ctx.clock.now() - started).as_millis() as u64;
    summary
}

/// Evaluates a compiled trigger over the states reached so far.
pub fn holds(cond: &Cond, states: &BTreeMap<String, StageState>) -> bool {
    match cond {
        Cond::True => true,
        Cond::State { stage, state } => match states.get(stage) {
            Some(reached) => state == "done" || reached.as_str() == state,
            None => false,
        },
        Cond::Not { arg } => !holds(arg, states),
        Cond::And { args } => args.iter().all(|a| holds(a, states)),
        Cond::Or { args } => args.iter().any(|a| holds(a, states)),
    }
}

/// An upstream that did not succeed has no table; give it an empty one shaped like a sibling
/// that did, so that `merge` and `from` read no rows from it rather than failing.
fn fill_missing_upstreams(
    store: &mut Store,
    stage: &StagePlan,
    states: &BTreeMap<String, StageState>,
) {
    let succeeded = stage
        .upstream
        .iter()
        .find(|e| states.get(&e.stage) == Some(&StageState::Success))
        .map(|e| e.stage.clone());
    for edge in &stage.upstream {
        if states.get(&edge.stage) != Some(&StageState::Success)
            && !store.exists("run", &edge.stage).unwrap_or(true)
        {
            let shape = match &succeeded {
                Some(sibling) => store
                    .stage_rows(sibling)
                    .map(|r| r.columns)
                    .unwrap_or_default(),
                None => Vec::new(),
            };
            let _ = store.write_table("run", &edge.stage, &Rows::untyped(shape, Vec::new()));
        }
    }
}

struct StageRun<'a, 'c> {
    store: &'a mut Store,
    ctx: &'a Context<'c>,
    stage: &'a StagePlan,
    attempts: u32,
    /// The stage's idempotency key, passed to its activities.
    key: Option<String>,
    /// `run`, or `compensate` while running the stage's compensation.
    phase: &'static str,
    /// The step being run.
    step: usize,
    /// Every item of the stage's `each` reused a recorded result: nothing was attempted.
    all_reused: bool,
}

type StepError = (StageError, u32);

impl<'a, 'c> StageRun<'a, 'c> {
    fn new(
        store: &'a mut Store,
        ctx: &'a Context<'c>,
        stage: &'a StagePlan,
        key: Option<String>,
        phase: &'static str,
    ) -> Self {
        StageRun {
            store,
            ctx,
            stage,
            attempts: 0,
            key,
            phase,
            step: 0,
            all_reused: false,
        }
    }
}

impl StageRun<'_, '_> {
    /// The stage's steps in order, each on the output of the one before. Rows an activity
    /// printed stay in their spool file until a step needs them as values.
    fn steps(&mut self) -> Result<Output, StepError> {
        let mut rows: Option<Output> = None;
        let mut last_query: Option<&Sql> = None;
        for (index, step) in self.stage.steps.iter().enumerate() {
            self.step = index;
            // The first step has no input; a later one reads the step before, even when it
            // produced no rows (an activity that printed nothing is an empty `_input`).
            let before = rows.take();
            if let (Step::Query { .. }, Some(before)) = (step, &before) {
                self.store
                    .write_output("temp", "_input", before)
                    .map_err(|e| (e.into(), 1))?;
            }
            let input = before.unwrap_or_default();
            let output: Output = match step {
                Step::Query { sql, types } => {
                    last_query = Some(sql);
                    let mut rows = self.query(&sql.text, None).map_err(|e| (e.into(), 1))?;
                    // What the table does not declare, the checker may know.
                    rows.types
                        .resize(rows.columns.len(), crate::value::ValueType::Any);
                    for (have, known) in rows.types.iter_mut().zip(types) {
                        if *have == crate::value::ValueType::Any {
                            *have = *known;
                        }
                    }
                    rows.into()
                }
                Step::Union { inputs } => {
                    let parts = inputs
                        .iter()
                        .map(|sql| self.query(&sql.text, None))
                        .collect::<Result<Vec<Rows>, String>>()
                        .map_err(|e| (e.into(), 1))?;
                    Rows::union_by_name(parts).into()
                }
                Step::Invoke { invocation } => {
                    let args = self.bind(invocation, None).map_err(|e| (e.into(), 1))?;
                    let input = values(input)?;
                    self.call(invocation, args, input)?
                }
                Step::Each {
                    invocation,
                    concurrency,
                    tolerated_failures,
                } => self
                    .each(invocation, *concurrency, tolerated_failures, values(input)?)?
                    .into(),
                Step::Route { .. } | Step::Fork { .. } => input,
                Step::Wait { ms } => {
                    if !nap(self.ctx, Duration::from_millis(*ms)) {
                        return Err((StageError::Cancelled, 1));
                    }
                    input
                }
                Step::WaitUntil {
                    condition,
                    poll_interval_ms,
                } => self
                    .wait_until(condition, *poll_interval_ms, last_query, values(input)?)?
                    .into(),
                Step::Activate { activation } => {
                    let activation =
                        super::activate::evaluated(activation, self.store, &self.ctx.params)
                            .map_err(|e| (e.into(), 1))?;
                    let input = values(input)?;
                    super::activate::deliver(&activation, &input, &self.ctx.cwd, &self.stage.id)
                        .map_err(|e| (e.into(), 1))?;
                    input.into()
                }
                Step::SaveTo { table } => {
                    self.store
                        .write_output("main", table, &input)
                        .map_err(|e| (e.into(), 1))?;
                    input
                }
                // The executor stops the flow after this stage.
                Step::End => input,
                Step::Jump { target } => {
                    let input = values(input)?;
                    let jump = self.target(target, &input).map_err(|e| (e.into(), 1))?;
                    if let Ok(mut jumps) = self.ctx.jumps.lock() {
                        jumps.push(jump);
                    }
                    input.into()
                }
                Step::Call {
                    target,
                    parent_close,
                } => {
                    let child = self
                        .target(target, &values(input)?)
                        .map_err(|e| (e.into(), 1))?;
                    let runner = self.ctx.flows.ok_or_else(|| {
                        ("child runs are not available here".to_string().into(), 1)
                    })?;
                    let timeout = self.stage.timeout_ms.map(Duration::from_millis);
                    let summary = runner
                        .run_child(
                            &child,
                            (&self.ctx.run_id, &self.stage.id),
                            self.ctx.cancel.clone(),
                            *parent_close,
                            timeout,
                        )
                        .map_err(|e| (e.into(), 1))?;
                    if summary.state != RunState::Success {
                        let cause = summary.stages.iter().find_map(|s| s.error.clone());
                        return Err((
                            StageError::ChildRun {
                                run_id: summary.run_id,
                                flow: child.flow,
                                state: summary.state,
                                cause,
                            },
                            1,
                        ));
                    }
                    let last = summary
                        .stages
                        .iter()
                        .rev()
                        .find(|s| s.state == StageState::Success)
                        .map(|s| s.stage.clone());
                    Rows::untyped(
                        crate::check::shapes::CALL_COLUMNS
                            .iter()
                            .map(|c| c.to_string())
                            .collect(),
                        vec![vec![
                            Value::Text(summary.run_id),
                            Value::Text(child.flow),
                            Value::Text(summary.state.to_string()),
                            last.map_or(Value::Null, Value::Text),
                        ]],
                    )
                    .into()
                }
            };
            rows = Some(output);
        }
        Ok(rows.unwrap_or_default())
    }

    /// A flow reference with its arguments evaluated (columns from the first input row).
    fn target(&mut self, target: &FlowRef, input: &Rows) -> Result<Jump, String> {
        let first = input.row(0);
        let row = (!first.is_empty()).then_some(&first);
        let args = bind(self.store, &target.args, &self.ctx.params, row)?
            .into_iter()
            .next()
            .unwrap_or_default();
        Ok(Jump {
            flow: target.flow.clone(),
            version: target.version,
            args,
        })
    }

    fn query(&mut self, sql: &str, input: Option<&Rows>) -> Result<Rows, String> {
        self.store.query(sql, &self.ctx.params, input)
    }

    /// Argument values: one set, or (with `per_row`) one per input row.
    fn bind(
        &mut self,
        invocation: &Invocation,
        per_row: Option<&Rows>,
    ) -> Result<BTreeMap<String, Value>, String> {
        Ok(self
            .bind_rows(invocation, per_row)?
            .into_iter()
            .next()
            .unwrap_or_default())
    }

    fn bind_rows(
        &mut self,
        invocation: &Invocation,
        per_row: Option<&Rows>,
    ) -> Result<Vec<BTreeMap<String, Value>>, String> {
        bind(self.store, &invocation.bindings, &self.ctx.params, per_row)
    }

    /// One activity call with the stage's retry policy.
    fn call(
        &mut self,
        invocation: &Invocation,
        args: BTreeMap<String, Value>,
        input: Rows,
    ) -> Result<Output, StepError> {
        let line = command_line(self.store, invocation, &args).map_err(|e| (e.into(), 1))?;
        let call = Call {
            invocation,
            key: self.key.as_deref(),
            args: &args,
            line: &line,
            input: &Arc::new(input),
        };
        let done = retried(self.ctx, self.stage, (self.phase, self.step, None), &call);
        self.attempts = self.attempts.max(done.attempts);
        done.result.map_err(|e| (e, done.attempts))
    }

    /// The idempotency key of each input row of an `each` stage, as text; `None` for a row
    /// whose key is null, or when the stage has no per-item key.
    fn item_keys(&mut self, input: &Rows) -> Result<Vec<Option<String>>, String> {
        let Some(sql) = self
            .stage
            .idempotency_key
            .as_ref()
            .filter(|_| self.stage.idempotency_per_item)
        else {
            return Ok(vec![None; input.len()]);
        };
        if input.is_empty() {
            return Ok(Vec::new());
        }
        let keys = self.store.query(
            &format!("SELECT {} FROM _input", sql.text),
            &self.ctx.params,
            Some(input),
        )?;
        Ok(keys
            .values
            .iter()
            .map(|r| {
                r.first()
                    .filter(|v| **v != Value::Null)
                    .map(|v| crate::value::text(v, crate::value::ValueType::Any))
            })
            .collect())
    }

    /// One call per input row, at most `concurrency` at once; fails past the tolerance. An
    /// item whose idempotency key succeeded before is not called again: its recorded rows
    /// are reused, and each new success is recorded under its key.
    fn each(
        &mut self,
        invocation: &Invocation,
        concurrency: u64,
        tolerated: &Tolerance,
        input: Rows,
    ) -> Result<Rows, StepError> {
        let per_row = self
            .bind_rows(invocation, Some(&input))
            .map_err(|e| (e.into(), 1))?;
        let keys = self.item_keys(&input).map_err(|e| (e.into(), 1))?;
        struct Item {
            args: BTreeMap<String, Value>,
            line: CommandLine,
            row: Arc<Rows>,
            key: Option<String>,
        }
        let mut items = Vec::with_capacity(input.len());
        let mut reused: Vec<Option<Rows>> = Vec::with_capacity(input.len());
        // Items that succeeded before this run's owner crashed (`runs resume`).
        let mut finished = self
            .store
            .finished_items(&self.stage.id, self.step)
            .map_err(|e| (e.into(), 1))?;
        for (i, args) in per_row.into_iter().enumerate() {
            let key = keys.get(i).cloned().flatten();
            let recorded = match (&key, finished.remove(&i)) {
                (_, Some(rows)) => Some(rows),
                (Some(k), None) => self
                    .store
                    .recorded(&self.ctx.flow, &self.stage.id, k)
                    .map_err(|e| (e.into(), 1))?,
                (None, None) => None,
            };
            let line = match recorded {
                Some(_) => Default::default(),
                None => command_line(self.store, invocation, &args).map_err(|e| (e.into(), 1))?,
            };
            reused.push(recorded);
            items.push(Item {
                args,
                line,
                row: Arc::new(input.row(i)),
                key,
            });
        }
        let next = std::sync::atomic::AtomicUsize::new(0);
        let results: Vec<std::sync::Mutex<Option<retry::Finished<Rows>>>> =
            items.iter().map(|_| std::sync::Mutex::new(None)).collect();
        let (ctx, stage, step) = (self.ctx, self.stage, self.step);
        let fresh = reused.iter().filter(|r| r.is_none()).count() as u64;
        self.all_reused = fresh == 0 && !items.is_empty();
        // A worker that finished an item waits until it is recorded before it starts another:
        // so a crash can lose (and a resume run again) at most `concurrency` items.
        let (done_sender, done_items) =
            std::sync::mpsc::channel::<(usize, std::sync::mpsc::SyncSender<()>)>();
        let store = &mut *self.store;
        let mut unrecorded = None;
        let (items_ref, reused_ref, results_ref, next_ref) = (&items, &reused, &results, &next);
        std::thread::scope(|scope| {
            for _ in 0..concurrency.max(1).min(fresh) {
                let done_sender = done_sender.clone();
                let (items, reused, results, next) = (items_ref, reused_ref, results_ref, next_ref);
                scope.spawn(move || {
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(item) = items.get(i) else {
                            break;
                        };
                        if reused[i].is_some() {
                            continue;
                        }
                        // After a cancel, no new item starts.
                        let done = if ctx.cancel.load(Ordering::Relaxed) {
                            retry::Finished {
                                result: Err(StageError::Cancelled),
                                attempts: 0,
                            }
                        } else {
                            let call = Call {
                                invocation,
                                key: item.key.as_deref(),
                                args: &item.args,
                                line: &item.line,
                                input: &item.row,
                            };
                            let done = retried(ctx, stage, ("run", step, Some(i)), &call);
                            retry::Finished {
                                result: done
                                    .result
                                    .and_then(|o| o.into_rows().map_err(StageError::Data)),
                                attempts: done.attempts,
                            }
                        };
                        let succeeded = done.result.is_ok();
                        if let Ok(mut slot) = results[i].lock() {
                            *slot = Some(done);
                        }
                        if succeeded {
                            let (recorded, wait) = std::sync::mpsc::sync_channel(1);
                            if done_sender.send((i, recorded)).is_ok() {
                                let _ = wait.recv();
                            }
                        }
                    }
                });
            }
            drop(done_sender);
            // Each success is recorded in the run's database as it comes (a resumed run
            // reuses it), by this thread, which holds the stage's connection.
            for (i, recorded) in done_items {
                let rows = results[i]
                    .lock()
                    .ok()
                    .and_then(|slot| slot.as_ref().and_then(|d| d.result.clone().ok()));
                if let Some(rows) = rows
                    && let Err(e) = store.finish_item(&stage.id, step, i, &rows)
                {
                    unrecorded.get_or_insert(e);
                }
                let _ = recorded.send(());
            }
        });
        if let Some(e) = unrecorded {
            return Err((
                format!("cannot record a finished item in the run database: {e}").into(),
                1,
            ));
        }
        let mut outputs = Vec::new();
        let mut failures = Vec::new();
        let mut attempts = 0;
        let mut cancelled = false;
        for ((slot, item), recorded) in results.into_iter().zip(&items).zip(reused) {
            if let Some(rows) = recorded {
                outputs.push(rows);
                continue;
            }
            let Some(done) = slot.into_inner().ok().flatten() else {
                continue;
            };
            attempts = attempts.max(done.attempts);
            match done.result {
                Ok(rows) => {
                    if let Some(k) = &item.key {
                        self.store
                            .record(&self.ctx.flow, &self.stage.id, k, &rows)
                            .map_err(|e| {
                                (
                                    format!("cannot record the idempotency key `{k}`: {e}").into(),
                                    attempts,
                                )
                            })?;
                    }
                    outputs.push(rows);
                }
                Err(StageError::Cancelled) => cancelled = true,
                Err(e) => failures.push(e),
            }
        }
        self.attempts = self.attempts.max(attempts);
        // A cancelled item is cancelled, never a tolerated failure.
        if cancelled {
            return Err((StageError::Cancelled, attempts));
        }
        let allowed = match tolerated {
            Tolerance::Count(n) => *n as f64,
            Tolerance::Percent(p) => items.len() as f64 * p / 100.0,
        };
        if failures.len() as f64 > allowed {
            return Err((
                StageError::Items {
                    failed: failures.len(),
                    total: items.len(),
                    tolerated: allowed,
                    first: failures.first().map(|e| e.to_string()).unwrap_or_default(),
                },
                attempts,
            ));
        }
        Ok(Rows::union_by_name(outputs))
    }

    /// Re-reads the stage's query every `poll_interval_ms` until a row satisfies the
    /// condition; fails once the stage's timeout has passed, not before.
    fn wait_until(
        &mut self,
        condition: &Sql,
        poll_ms: u64,
        source: Option<&Sql>,
        mut input: Rows,
    ) -> Result<Rows, StepError> {
        let started = self.ctx.clock.now();
        let limit = self.stage.timeout_ms.map(Duration::from_millis);
        loop {
            let met = self
                .query(&condition.text, Some(&input))
                .map_err(|e| (e.into(), 1))?;
            if matches!(
                met.values.first().and_then(|r| r.first()),
                Some(Value::Integer(1))
            ) {
                return Ok(input);
            }
            let waited = self.ctx.clock.now() - started;
            let mut pause = Duration::from_millis(poll_ms);
            if let Some(limit) = limit {
                if waited >= limit {
                    return Err((
                        format!(
                            "`wait until` not met within {}",
                            crate::human::duration(limit)
                        )
                        .into(),
                        1,
                    ));
                }
                // The last check comes when the timeout ends.
                pause = pause.min(limit - waited);
            }
            if !nap(self.ctx, pause) {
                return Err((StageError::Cancelled, 1));
            }
            if let Some(sql) = source {
                input = self.query(&sql.text, None).map_err(|e| (e.into(), 1))?;
            }
        }
    }
}

/// The rows of a step's output in memory, for a step that needs them as values.
fn values(output: Output) -> Result<Rows, StepError> {
    output.into_rows().map_err(|e| (e.into(), 1))
}

/// Sleeps on the run's clock in short slices; `false` when the run was cancelled meanwhile.
fn nap(ctx: &Context, total: Duration) -> bool {
    const SLICE: Duration = Duration::from_millis(100);
    let start = ctx.clock.now();
    loop {
        if ctx.cancel.load(Ordering::Relaxed) {
            return false;
        }
        let slept = ctx.clock.now() - start;
        if slept >= total {
            return true;
        }
        ctx.clock.sleep((total - slept).min(SLICE));
    }
}

/// Evaluates bindings (parameter name and SQL expression): once with the run's values, or
/// once per row of `per_row` (the table `_input`). Activity arguments, flow call arguments
/// and hook arguments all bind this way.
pub fn bind(
    store: &mut Store,
    bindings: &[Binding],
    params: &BTreeMap<String, Value>,
    per_row: Option<&Rows>,
) -> Result<Vec<BTreeMap<String, Value>>, String> {
    if bindings.is_empty() {
        return Ok(vec![BTreeMap::new(); per_row.map_or(1, Rows::len)]);
    }
    // Each value is named after its parameter: two `null` arguments are two columns.
    let exprs: Vec<String> = bindings
        .iter()
        .map(|b| format!("{} AS {}", b.sql, crate::plan::sql::quote_ident(&b.param)))
        .collect();
    let from = if per_row.is_some() {
        " FROM _input"
    } else {
        ""
    };
    let values = store.query(
        &format!("SELECT {}{from}", exprs.join(", ")),
        params,
        per_row,
    )?;
    Ok(values
        .values
        .into_iter()
        .map(|row| bindings.iter().map(|b| b.param.clone()).zip(row).collect())
        .collect())
}

/// One attempt, reported before it starts and after it ends.
/// One activity call with its invocation's retry policy; the stage shows `retrying` between
/// attempts.
fn retried(
    ctx: &Context,
    stage: &StagePlan,
    (phase, step, item): (&str, usize, Option<usize>),
    call: &Call,
) -> retry::Finished<Output> {
    let which = |number| Attempt {
        stage: &stage.id,
        phase,
        step,
        item,
        number,
    };
    retry::run_observed(
        &call.invocation.retry,
        stage.schedule_timeout_ms.map(Duration::from_millis),
        ctx.clock,
        ctx.random,
        |attempt| launch(ctx, stage, &which(attempt), call),
        |failed, delay| {
            if let Some(p) = ctx.progress {
                p.retrying(&which(failed), delay);
            }
        },
    )
}

fn launch(ctx: &Context, stage: &StagePlan, attempt: &Attempt, call: &Call) -> Outcome<Output> {
    let request = request(ctx, stage, attempt, call);
    let Some(progress) = ctx.progress else {
        return ctx.launcher.launch(&request, &|_| {});
    };
    progress.attempt_started(attempt);
    let outcome = ctx
        .launcher
        .launch(&request, &|pid| progress.attempt_process(attempt, pid));
    let end = match &outcome {
        Outcome::Success(_) => AttemptEnd {
            state: StageState::Success,
            exit_code: Some(0),
            error: None,
        },
        Outcome::Failure { error, exit_code } => AttemptEnd {
            state: StageState::Failed,
            exit_code: *exit_code,
            error: Some(error),
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

/// What one activity call passes: the activity, the stage's idempotency key, argument values
/// and input rows.
struct Call<'a> {
    invocation: &'a Invocation,
    key: Option<&'a str>,
    args: &'a BTreeMap<String, Value>,
    /// The words and `WV_<NAME>` variables ([`command_line`]).
    line: &'a CommandLine,
    input: &'a Arc<Rows>,
}

/// One attempt's request: the call and the run's environment.
fn request(ctx: &Context, stage: &StagePlan, attempt: &Attempt, call: &Call) -> Request {
    let Call {
        invocation,
        key,
        args,
        line: (argv, env),
        input,
    } = *call;
    let mut env = env.clone();
    env.extend([
        ("WVFLOW_RUN_ID".to_string(), ctx.run_id.clone()),
        ("WVFLOW_FLOW".to_string(), ctx.flow.clone()),
        ("WVFLOW_STAGE".to_string(), stage.id.clone()),
        ("WVFLOW_ATTEMPT".to_string(), attempt.number.to_string()),
    ]);
    if let Some(key) = key {
        env.push(("WVFLOW_IDEMPOTENCY_KEY".to_string(), key.to_string()));
    }
    Request {
        // A compensation runs to its end even in a cancelled run: it is the cleanup.
        cancel: if attempt.phase == "compensate" {
            Arc::new(AtomicBool::new(false))
        } else {
            ctx.cancel.clone()
        },
        activity: invocation.activity.clone(),
        command: invocation.command.clone(),
        args: args.clone(),
        argv: argv.clone(),
        env,
        input: input.clone(),
        cwd: ctx.cwd.clone(),
        timeout: invocation
            .timeout_ms
            .or(stage.timeout_ms)
            .map(Duration::from_millis),
        heartbeat: stage.heartbeat_ms.map(Duration::from_millis),
    }
}

/// The compensations of `completed` that could not run at all, each failed with `why`.
fn not_compensated(ctx: &Context, completed: &[&StagePlan], why: &str) -> Vec<CompensationSummary> {
    completed
        .iter()
        .rev()
        .filter_map(|stage| {
            let invocation = stage.compensation.as_ref()?;
            let summary = CompensationSummary {
                stage: stage.id.clone(),
                activity: invocation.activity.clone(),
                state: StageState::Failed,
                attempts: 0,
                error: Some(why.to_string()),
            };
            if let Some(p) = ctx.progress {
                p.compensation_finished(&summary);
            }
            Some(summary)
        })
        .collect()
}

/// Saga: compensations of the stages that succeeded, latest first, each with its stage's rows.
fn compensate(
    store: &mut Store,
    ctx: &Context,
    completed: &[&StagePlan],
) -> Vec<CompensationSummary> {
    let mut done = Vec::new();
    for stage in completed.iter().rev() {
        let Some(invocation) = &stage.compensation else {
            continue;
        };
        let rows = store
            .stage_rows(&stage.id)
            .map_err(|e| format!("cannot read the rows of `{}`: {e}", stage.id));
        let mut run = StageRun::new(&mut *store, ctx, stage, None, "compensate");
        // Arguments that name columns take them from the stage's first row.
        let args = rows.and_then(|rows| {
            let first = rows.row(0);
            let args = if first.is_empty() {
                run.bind(invocation, None)
            } else {
                run.bind(invocation, Some(&first))
            };
            args.map(|args| (args, rows))
        });
        let result = match args {
            Ok((args, rows)) => run.call(invocation, args, rows),
            Err(e) => Err((e.into(), 0)),
        };
        let summary = CompensationSummary {
            stage: stage.id.clone(),
            activity: invocation.activity.clone(),
            state: if result.is_ok() {
                StageState::Success
            } else {
                StageState::Failed
            },
            attempts: result.as_ref().map_or_else(|(_, n)| *n, |_| run.attempts),
            error: result.err().map(|(e, _)| e.to_string()),
        };
        if let Some(p) = ctx.progress {
            p.compensation_finished(&summary);
        }
        done.push(summary);
    }
    done
}

/// An activity launcher that only answers from a script, for tests.
pub struct ScriptedLauncher<F: Fn(&Request) -> Outcome<Rows> + Send + Sync>(pub F);

impl<F: Fn(&Request) -> Outcome<Rows> + Send + Sync> Launcher for ScriptedLauncher<F> {
    fn launch(&self, request: &Request, _spawned: &dyn Fn(u32)) -> Outcome<Output> {
        match (self.0)(request) {
            Outcome::Success(rows) => Outcome::Success(Output::Rows(rows)),
            Outcome::Failure { error, exit_code } => Outcome::Failure { error, exit_code },
            Outcome::Cancelled => Outcome::Cancelled,
        }
    }
}
