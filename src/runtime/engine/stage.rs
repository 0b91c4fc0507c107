//! One stage's execution: its idempotency key, its steps in order (queries, activity calls
//! with retries, `each` fan-outs, waits, deliveries, child runs and jumps), and its table.

use super::{Attempt, Context, Jump, StageSummary};
use crate::plan::ir::*;
use crate::runtime::activity::{AttemptFailure, CommandLine, Request, command_line};
use crate::runtime::error::{RowReader, StageError};
use crate::runtime::input::Input;
use crate::runtime::output::{Data, Output};
use crate::runtime::retry::{self, Outcome};
use crate::runtime::state::{Phase, RunState, StageState};
use crate::runtime::store::{Pool, Rows, Store, StoreConfig};
use rusqlite::types::Value;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

mod fan;
mod looped;
pub mod parts;
mod server;
mod span;
mod steps;

use span::{Carried, Span, SpanEnd, failed, run_span_on};


/// Runs one stage on its own connection and materializes its rows.
pub(super) fn run_stage(
    stage: &StagePlan,
    stores: &StoreConfig,
    pool: &Pool,
    ctx: &Context,
    started: &Started,
) -> StageSummary {
    match pool.take(stores) {
        Ok(mut store) => {
            let summary = run_stage_on(stage, &mut store, ctx, started);
            // The stage's query tables, stored or not, are not needed by the next stage the
            // connection runs.
            let _ = store.drop_step_tables();
            pool.give_back(store);
            summary
        }
        Err(e) => StageSummary {
            attempts: 1,
            error: Some(e.into()),
            ..StageSummary::new(stage, StageState::Failed)
        },
    }
}

/// Whether `stage` is a route target that gets no rows from any of its routes: the branch
/// was not taken, and the stage is skipped before it does anything (a `save to`, a call).
/// A route that did not succeed gives no rows.
fn branch_not_taken(
    stage: &StagePlan,
    store: &mut Store,
    ctx: &Context,
    states: &BTreeMap<String, StageState>,
) -> Result<bool, crate::runtime::store::Error> {
    for input in &stage.routed_from {
        if states.get(&input.route) != Some(&StageState::Success) {
            continue;
        }
        let any = format!(
            "SELECT EXISTS (SELECT 1 FROM {} WHERE {})",
            crate::plan::sql::stage_table(&input.route),
            input.filter
        );
        if store.query(&any, &ctx.params, None)?.first_value() == Some(&Value::Integer(1)) {
            return Ok(false);
        }
    }
    Ok(!stage.routed_from.is_empty())
}

/// What a stage starts with: the states of the stages before it, its own cancel flag (set
/// with the run's, or alone when a `first_success` stage no longer needs it), and for a
/// `first_success` stage the upstream whose rows it reads.
pub(super) struct Started {
    /// The run store, which holds the slots of pools.
    pub workspace_db: std::path::PathBuf,
    pub states: BTreeMap<String, StageState>,
    pub cancel: Arc<AtomicBool>,
    pub first_success: Option<String>,
}

fn run_stage_on(
    stage: &StagePlan,
    store: &mut Store,
    ctx: &Context,
    start: &Started,
) -> StageSummary {
    match run_span_on(stage, store, ctx, start, Span::whole(stage)) {
        SpanEnd::Ended(summary) => summary,
        // A whole stage ends.
        SpanEnd::Reached(..) => StageSummary::new(stage, StageState::Pending),
    }
}

/// The values of this stage that are not the run's; the connection serves other stages after
/// this one.
fn set_stage_params(store: &mut Store, start: &Started) {
    store.stage_params.clear();
    store.iteration.set(0);
    if let Some(first) = &start.first_success {
        store
            .stage_params
            .insert(FIRST_SUCCESS_PARAM.to_string(), Value::Text(first.clone()));
    }
}

/// The stage's idempotency key, when it is evaluated before the stage runs: over the run's
/// values alone. Each item of an `each` stage has a key of its own, evaluated over its row; a
/// key that reads the input's row waits for it ([`StageRun::key_over_input`]).
fn stage_key(
    stage: &StagePlan,
    store: &mut Store,
    ctx: &Context,
) -> Result<Option<String>, StageError> {
    let Some(sql) = &stage.idempotency_key else {
        return Ok(None);
    };
    if stage.idempotency_per_item || stage.idempotency_reads_row || stage.idempotency_per_iteration
    {
        return Ok(None);
    }
    let rows = store
        .query(&format!("SELECT {}", sql.text), &ctx.params, None)
        .map_err(|e| StageError::Data(format!("cannot evaluate the idempotency key: {e}")))?;
    Ok(rows
        .first_value()
        .filter(|v| **v != Value::Null)
        .map(|v| crate::value::text(v, crate::value::ValueType::Any)))
}

/// Stores the stage's rows as its table (and under its key, when it has one); how many.
fn store_rows(
    store: &mut Store,
    ctx: &Context,
    stage: &StagePlan,
    key: Option<&str>,
    output: Data,
    attempts: u32,
) -> Result<usize, StepError> {
    let output = match key {
        // The record holds the rows themselves: they are read into memory for it.
        Some(k) => {
            let rows = store.rows(output).map_err(|e| (e.into(), attempts))?;
            // Unrecorded, the next run would do the work again: the stage fails, as an
            // `each` item whose key cannot be recorded does.
            store.record(&ctx.flow, &stage.id, k, &rows).map_err(|e| {
                (
                    format!("cannot record the idempotency key `{k}`: {e}").into(),
                    attempts,
                )
            })?;
            Data::from(rows)
        }
        None => output,
    };
    store
        .write_data("run", &stage.id, &output)
        .map(|()| output.len())
        .map_err(|e| (e.into(), attempts))
}

/// An upstream that did not succeed has no rows. One with no table gets an empty one shaped
/// like a sibling that did, so that `merge` and `from` read no rows from it rather than
/// failing; a fork failed by a branch wrote its rows before it failed, and they are emptied.
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
        if states.get(&edge.stage) == Some(&StageState::Success) {
            continue;
        }
        if store.exists("run", &edge.stage).unwrap_or(false) {
            let sql = format!(
                "SELECT * FROM {} LIMIT 1",
                crate::plan::sql::stage_table(&edge.stage)
            );
            if let Ok(mut kept) = store.query(&sql, &BTreeMap::new(), None)
                && !kept.is_empty()
            {
                kept.values.clear();
                let _ = store.write_table("run", &edge.stage, &kept);
            }
        } else if !store.exists("run", &edge.stage).unwrap_or(true) {
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
    // A fan-out that did not run has no failed items.
    for stage in &stage.reads_failed {
        let table = crate::plan::sql::failed_table(stage);
        if !store.exists("run", &table).unwrap_or(true) {
            let columns = crate::check::shapes::FAILED_COLUMNS
                .iter()
                .map(|(name, _)| name.to_string())
                .collect();
            let _ = store.write_table("run", &table, &Rows::untyped(columns, Vec::new()));
        }
    }
}

pub(super) struct StageRun<'a, 'c> {
    store: &'a mut Store,
    ctx: &'a Context<'c>,
    stage: &'a StagePlan,
    pub(super) attempts: u32,
    /// The stage's idempotency key, passed to its activities.
    key: Option<String>,
    /// `run`, or `compensate` while running the stage's compensation.
    phase: Phase,
    /// The step being run.
    step: usize,
    /// Nothing was attempted: every item of the stage's `each`, or the key it evaluated over
    /// its input, reused a recorded result.
    all_reused: bool,
    /// The key that reads the input row ([`StagePlan::idempotency_reads_row`]) was evaluated.
    key_evaluated: bool,
    /// Set to stop the stage: by the run's cancel, or alone (a `first_success` stage took
    /// another upstream's result). Never set for a compensation: it runs to its end.
    pub(super) cancel: Arc<AtomicBool>,
    /// The run store, for the slots of the stage's pool.
    workspace_db: Option<std::path::PathBuf>,
}

type StepError = (StageError, u32);

/// An `each`: its rows, or why it failed past its tolerance; and the failed items by index.
type FannedOut = (Result<Rows, StageError>, Vec<(usize, StageError)>);

impl<'a, 'c> StageRun<'a, 'c> {
    pub(super) fn new(
        store: &'a mut Store,
        ctx: &'a Context<'c>,
        stage: &'a StagePlan,
        key: Option<String>,
        phase: Phase,
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
            key_evaluated: false,
            cancel: Arc::default(),
            workspace_db: None,
        }
    }
}

impl StageRun<'_, '_> {
    /// The stage's steps in order, each on the output of the one before. Rows an activity
    /// printed stay in their spool file until a step needs them as values.
    fn steps(&mut self, span: &Span) -> Result<Data, StepError> {
        if let Some(connector) = self.on_server() {
            return self.run_on_server(connector);
        }
        let mut rows: Option<Data> = span.rows.clone().map(Data::from);
        let mut last_query: Option<&Sql> = None;
        let steps = &self.stage.steps[..span.to.min(self.stage.steps.len())];
        // A `wait until` reads its files as they are now, from its first query on.
        for step in crate::plan::looped::all_steps(&steps[span.from.min(steps.len())..]) {
            if let Step::WaitUntil { watched, .. } = step {
                self.reload(watched).map_err(|e| (e, 1))?;
            }
        }
        for (index, step) in steps.iter().enumerate().skip(span.from) {
            self.step = index;
            self.store.now.set(self.ctx.now());
            // The first step has no input; a later one reads the step before, even when it
            // produced no rows (an activity that printed nothing is an empty `_input`).
            let mut before = rows.take();
            if self.key_waits_for_input(step) {
                let (input, reused) = self.key_over_input(before.unwrap_or_default())?;
                if let Some(reused) = reused {
                    self.all_reused = true;
                    return Ok(reused.into());
                }
                before = Some(input.into());
            }
            let input = match (step, before) {
                (Step::Query { .. }, Some(before)) => {
                    self.store.set_input(before).map_err(|e| (e.into(), 1))?;
                    Data::default()
                }
                (_, before) => before.unwrap_or_default(),
            };
            if let Step::Query { sql, .. } = step {
                last_query = Some(sql);
            }
            rows = Some(self.step(step, input, last_query)?);
        }
        // A stage of queries alone evaluates its key over its rows, as the checker says.
        if span.to >= self.stage.steps.len() && self.key_waits(true) {
            let (rows, reused) = self.key_over_input(rows.unwrap_or_default())?;
            if let Some(reused) = reused {
                self.all_reused = true;
                return Ok(reused.into());
            }
            return Ok(rows.into());
        }
        Ok(rows.unwrap_or_default())
    }

    /// A flow reference with its arguments evaluated ([`Self::one_row`]).
    pub(super) fn target(&mut self, target: &FlowRef, input: &Rows) -> Result<Jump, StageError> {
        let row = self.one_row(&target.args, input, &target.flow)?;
        let args = bind_one(self.store, &target.args, &self.ctx.params, row)?;
        Ok(Jump {
            flow: target.flow.clone(),
            version: target.version,
            args,
        })
    }

    /// The one rule for a single call (an activity without `each`, `call`, `->`) whose
    /// arguments read the row (`_.x`): they come from the input's only row. Zero or several
    /// rows refuse the call rather than pick one. `None`: no argument reads the row.
    /// A compensation takes the stage's output rows by the same rule.
    pub(super) fn one_row<'r>(
        &self,
        bindings: &[Binding],
        input: &'r Rows,
        callee: &str,
    ) -> Result<Option<&'r Rows>, StageError> {
        if !bindings.iter().any(|b| b.reads_row) {
            return Ok(None);
        }
        match input.len() {
            1 => Ok(Some(input)),
            rows => Err(StageError::NotOneRow {
                stage: self.stage.id.clone(),
                callee: callee.to_string(),
                rows,
                reader: if self.phase == Phase::Compensate {
                    RowReader::Compensation
                } else {
                    RowReader::Call
                },
            }),
        }
    }

    /// The milliseconds of `wait(expression)`: a duration, or an error saying what it was.
    fn wait_duration(&mut self, sql: &Sql) -> Result<u64, StageError> {
        let rows = self.query(&format!("SELECT {}", sql.text), None)?;
        let not_one = |found: String, negative: bool| StageError::NotADuration { found, negative };
        match rows.first_value() {
            Some(Value::Integer(ms)) if *ms >= 0 => Ok(*ms as u64),
            Some(Value::Real(ms)) if *ms >= 0.0 => Ok(ms.round() as u64),
            Some(Value::Integer(ms)) => Err(not_one(crate::value::duration_text(*ms), true)),
            Some(Value::Null) | None => Err(not_one("null".to_string(), false)),
            Some(other) => Err(not_one(
                crate::value::text(other, crate::value::ValueType::Any),
                false,
            )),
        }
    }

    /// The rows of a step's output in memory, for a step that needs them as values.
    fn values(&mut self, data: Data) -> Result<Rows, StepError> {
        self.store.rows(data).map_err(|e| (e.into(), 1))
    }

    fn query(
        &mut self,
        sql: &str,
        input: Option<&Rows>,
    ) -> Result<Rows, crate::runtime::store::Error> {
        self.store.query(sql, &self.ctx.params, input)
    }

    /// Argument values: one set, or (with `per_row`) one per input row.
    pub(super) fn bind(
        &mut self,
        invocation: &Invocation,
        per_row: Option<&Rows>,
    ) -> Result<BTreeMap<String, Value>, crate::runtime::store::Error> {
        bind_one(self.store, &invocation.bindings, &self.ctx.params, per_row)
    }

    fn bind_rows(
        &mut self,
        invocation: &Invocation,
        per_row: Option<&Rows>,
    ) -> Result<Vec<BTreeMap<String, Value>>, crate::runtime::store::Error> {
        bind(self.store, &invocation.bindings, &self.ctx.params, per_row)
    }

    /// One activity call with the stage's retry policy.
    pub(super) fn call(
        &mut self,
        invocation: &Invocation,
        args: BTreeMap<String, Value>,
        input: Input,
    ) -> Result<Output, StepError> {
        let line = command_line(self.store, invocation, &args).map_err(|e| (e.into(), 1))?;
        let call = Call {
            invocation,
            key: self.key.as_deref(),
            args: &args,
            line: &line,
            input: &input,
            cancel: &self.cancel,
        };
        let done = retried(self.ctx, self.stage, (self.phase, self.step, None), &call);
        self.attempts = self.attempts.max(done.attempts);
        done.result.map_err(|e| (e, done.attempts))
    }

    /// The idempotency key of each input row of an `each` stage, as text; `None` for a row
    /// whose key is null, or when the stage has no per-item key.
    fn item_keys(
        &mut self,
        input: &Rows,
    ) -> Result<Vec<Option<String>>, crate::runtime::store::Error> {
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

    /// Whether the stage's key reads its input's one row and is still to be evaluated before
    /// `step`: the first step that is not a query, which may have effects.
    fn key_waits_for_input(&self, step: &Step) -> bool {
        self.key_waits(!matches!(
            step,
            Step::Query { .. } | Step::Union { .. } | Step::Route { .. }
        ))
    }

    /// Whether the key that reads the input row is still to be evaluated, `now`.
    fn key_waits(&self, now: bool) -> bool {
        now && self.stage.idempotency_reads_row && !self.key_evaluated && self.phase == Phase::Run
    }

    /// The stage's key over its input's one row (`input`, given back as rows), and the rows
    /// recorded under it when it succeeded before: then nothing else runs.
    fn key_over_input(&mut self, input: Data) -> Result<(Rows, Option<Rows>), StepError> {
        // Once, whatever it gives: a null key records nothing and is not asked again.
        self.key_evaluated = true;
        let Some(sql) = &self.stage.idempotency_key else {
            return Ok((self.values(input)?, None));
        };
        // Counted where the rows are: a large input is refused without being read.
        if input.len() != 1 {
            return Err((
                StageError::NotOneRow {
                    stage: self.stage.id.clone(),
                    callee: String::new(),
                    rows: input.len(),
                    reader: RowReader::IdempotencyKey,
                },
                1,
            ));
        }
        let input = self.values(input)?;
        let key = self
            .query(&format!("SELECT {} FROM _input", sql.text), Some(&input))
            .map_err(|e| {
                (
                    format!("cannot evaluate the idempotency key: {e}").into(),
                    1,
                )
            })?
            .first_value()
            .filter(|v| **v != Value::Null)
            .map(|v| crate::value::text(v, crate::value::ValueType::Any));
        let Some(key) = key else {
            return Ok((input, None));
        };
        let recorded = self
            .store
            .recorded(&self.ctx.flow, &self.stage.id, &key)
            .map_err(|e| (e.into(), 1))?;
        self.key = Some(key);
        Ok((input, recorded))
    }

    /// One activity call per input row, streamed ([`Self::stream`]). An item whose
    /// idempotency key succeeded before is not called again: its recorded rows are reused,
    /// and each new success is recorded under its key.
    fn each(
        &mut self,
        invocation: &Invocation,
        fan: &FanOut,
        input: Data,
    ) -> Result<Data, StepError> {
        let params = &self.ctx.params;
        let prepare = |store: &mut Store, rows: &Rows, fresh: &[bool]| {
            let args = bind(store, &invocation.bindings, params, Some(rows))?;
            args.into_iter()
                .enumerate()
                .map(|(i, args)| {
                    if !fresh[i] {
                        return Ok(None);
                    }
                    let line = command_line(store, invocation, &args)?;
                    Ok(Some((args, line, Input::from(rows.row(i)))))
                })
                .collect()
        };
        let (ctx, stage, step) = (self.ctx, self.stage, self.step);
        let work = |job: &fan::Job<(BTreeMap<String, Value>, CommandLine, Input)>,
                    cancel: &Arc<AtomicBool>| {
            let (args, line, input) = &job.payload;
            let call = Call {
                invocation,
                key: job.key.as_deref(),
                args,
                line,
                input,
                cancel,
            };
            let done = retried(ctx, stage, (Phase::Run, step, Some(job.index)), &call);
            retry::Finished {
                result: done
                    .result
                    .and_then(|o| o.into_rows().map_err(StageError::from)),
                attempts: done.attempts,
            }
        };
        self.stream(fan, input, &prepare, &work)
    }

    /// Item `i` of an `each`, alone: reused when its idempotency key succeeded before, else
    /// called with the stage's retry policy (one attempt, for an exported task).
    fn one_item(
        &mut self,
        invocation: &Invocation,
        input: &Rows,
        i: usize,
    ) -> Result<retry::Finished<Rows>, StepError> {
        // Only this item's row is bound and keyed: an item task of a fan-out of n items
        // would otherwise do the work of all n.
        let one = input.row(i);
        if one.is_empty() {
            return Err((format!("the fan-out has no item {i}").into(), 0));
        }
        let per_row = self
            .bind_rows(invocation, Some(&one))
            .map_err(|e| (e.into(), 1))?;
        let keys = self.item_keys(&one).map_err(|e| (e.into(), 1))?;
        let Some(args) = per_row.first() else {
            return Err((format!("the fan-out has no item {i}").into(), 0));
        };
        let key = keys.first().and_then(Option::as_deref);
        if let Some(k) = key
            && let Some(rows) = self
                .store
                .recorded(&self.ctx.flow, &self.stage.id, k)
                .map_err(|e| (e.into(), 1))?
        {
            return Ok(retry::Finished {
                result: Ok(rows),
                attempts: 0,
            });
        }
        let line = command_line(self.store, invocation, args).map_err(|e| (e.into(), 1))?;
        let row = Input::from(one);
        let call = Call {
            invocation,
            key,
            args,
            line: &line,
            input: &row,
            cancel: &self.cancel,
        };
        let done = retried(self.ctx, self.stage, (Phase::Run, self.step, Some(i)), &call);
        Ok(retry::Finished {
            result: done
                .result
                .and_then(|o| o.into_rows().map_err(StageError::from)),
            attempts: done.attempts,
        })
    }

    /// One child run per input row (`each call F(...)`), streamed ([`Self::stream`]),
    /// retried as the stage's retry policy says; each child's final rows are its item's rows.
    fn each_call(
        &mut self,
        target: &FlowRef,
        parent_close: ParentClose,
        fan: &FanOut,
        input: Data,
    ) -> Result<Data, StepError> {
        let runner = self
            .ctx
            .flows
            .ok_or_else(|| ("child runs are not available here".to_string().into(), 1))?;
        let params = &self.ctx.params;
        let prepare = |store: &mut Store, rows: &Rows, fresh: &[bool]| {
            let args = bind(store, &target.args, params, Some(rows))?;
            Ok(args
                .into_iter()
                .zip(fresh)
                .map(|(args, fresh)| fresh.then_some(args))
                .collect())
        };
        let (ctx, stage, run_id) = (self.ctx, self.stage, &self.ctx.run_id);
        let timeout = stage.timeout_ms.map(Duration::from_millis);
        let work = |job: &fan::Job<BTreeMap<String, Value>>, cancel: &Arc<AtomicBool>| {
            let child = Jump {
                flow: target.flow.clone(),
                version: target.version,
                args: job.payload.clone(),
            };
            let done = retry::run_observed(
                &stage.retry,
                stage.schedule_timeout_ms.map(Duration::from_millis),
                (ctx.clock, cancel),
                ctx.random,
                |_| {
                    if cancel.load(Ordering::Relaxed) {
                        return retry::Outcome::Cancelled;
                    }
                    let ran = runner.run_child(
                        &child,
                        (run_id, &stage.id),
                        cancel.clone(),
                        parent_close,
                        timeout,
                    );
                    let rows = ran
                        .map_err(StageError::from)
                        .and_then(|summary| child_rows(&summary));
                    match rows {
                        Ok(rows) => retry::Outcome::Success(rows),
                        Err(_) if cancel.load(Ordering::Relaxed) => retry::Outcome::Cancelled,
                        Err(error) => retry::Outcome::Failure(AttemptFailure::Said {
                            message: error.to_string(),
                            exit_code: None,
                        }),
                    }
                },
                |_, _| {},
            );
            retry::Finished {
                result: done.result,
                attempts: done.attempts,
            }
        };
        self.stream(fan, input, &prepare, &work)
    }

    /// A slot of `pool` for the stage (or its `item`), waiting while all are held; the stage
    /// is `queued` meanwhile.
    fn hold(&self, pool: &PoolPlan) -> Result<crate::runtime::pools::Slot, StageError> {
        let (ctx, stage) = (self.ctx, self.stage);
        let at = (self.workspace_db.as_deref(), &*self.cancel);
        hold(ctx, stage, at, pool, None, |waiting| {
            if let Some(p) = ctx.progress {
                p.pool_wait(&stage.id, None, &pool.name, waiting);
            }
        })
    }

    /// The items' ends together: each success recorded under its idempotency key, the rows
    /// of all, or the failure past the tolerance; the failed items by index.
    fn fan_in(
        &mut self,
        fan: &FanOut,
        reused: Vec<Option<Rows>>,
        keys: &[Option<String>],
        results: Vec<Option<retry::Finished<Rows>>>,
    ) -> Result<FannedOut, StepError> {
        let count = reused.len();
        let mut outputs = Vec::new();
        let mut failures = Vec::new();
        let mut attempts = 0;
        let mut cancelled = false;
        for (index, (done, recorded)) in results.into_iter().zip(reused).enumerate() {
            if let Some(rows) = recorded {
                outputs.push(rows);
                continue;
            }
            let Some(done) = done else {
                continue;
            };
            attempts = attempts.max(done.attempts);
            match done.result {
                Ok(rows) => {
                    if let Some(k) = keys.get(index).and_then(Option::as_ref) {
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
                Err(e) => failures.push((index, e)),
            }
        }
        self.attempts = self.attempts.max(attempts);
        // A cancelled item is cancelled, never a tolerated failure.
        if cancelled {
            return Err((StageError::Cancelled, attempts));
        }
        let first = failures.first().map(|(_, e)| e.to_string());
        let rows = judged(fan, failures.len(), count, first).map(|()| Rows::union_by_name(outputs));
        Ok((rows, failures))
    }

    /// A fan-out's rows, or its failure past the tolerance; its failed items kept first when
    /// a stage reads them, so that a stage after a failed fan-out (`trigger: all_done`) sees
    /// what failed too.
    fn fanned_in(
        &mut self,
        fan: &FanOut,
        input: &Rows,
        (rows, failed): FannedOut,
    ) -> Result<Rows, StepError> {
        if fan.keep_failed {
            self.keep_failed(input, &failed)
                .map_err(|e| (e, 1))?;
        }
        rows.map_err(|e| (e, self.attempts))
    }

    /// `failed(stage)`: each failed item's index, exit code and error, then its input row.
    fn keep_failed(
        &mut self,
        input: &Rows,
        failed: &[(usize, StageError)],
    ) -> Result<(), StageError> {
        use crate::check::shapes::FAILED_COLUMNS;
        no_failure_column(&self.stage.id, &input.columns)?;
        let values = failed
            .iter()
            .map(|(index, error)| {
                let row = input.values.get(*index).cloned().unwrap_or_default();
                failed_row(*index, error, row)
            })
            .collect();
        let rows = Rows {
            columns: FAILED_COLUMNS
                .iter()
                .map(|(name, _)| name.to_string())
                .chain(input.columns.iter().cloned())
                .collect(),
            types: FAILED_COLUMNS
                .iter()
                .map(|(_, ty)| *ty)
                .chain(input.types.iter().copied())
                .collect(),
            values,
        };
        Ok(self.store.write_table(
            "run",
            &crate::plan::sql::failed_table(&self.stage.id),
            &rows,
        )?)
    }

    /// Loads each watched file into its table as the file is now.
    pub(super) fn reload(
        &mut self,
        watched: &[crate::plan::ir::WatchedFile],
    ) -> Result<(), StageError> {
        for file in watched {
            self.store
                .reload_file(&file.table, &file.path)?;
        }
        Ok(())
    }

    /// Re-reads the stage's query (and the files it reads, `watched`) every
    /// `poll_interval_ms` until a row satisfies the condition; fails once the stage's
    /// timeout has passed, not before.
    fn wait_until(
        &mut self,
        condition: &Sql,
        poll_ms: u64,
        source: Option<&Sql>,
        watched: &[crate::plan::ir::WatchedFile],
        mut input: Rows,
    ) -> Result<Rows, StepError> {
        let started = self.ctx.clock.now();
        let limit = self.stage.timeout_ms.map(Duration::from_millis);
        loop {
            if self.wait_met(condition, &input).map_err(|e| (e, 1))? {
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
            pause = skipped_polls(self.ctx.clock, condition, pause, limit.map(|l| l - waited));
            if !nap(self.ctx, &self.cancel, pause) {
                return Err((StageError::Cancelled, 1));
            }
            if let Some(sql) = source {
                input = self.wait_input(sql, watched).map_err(|e| (e, 1))?;
            }
        }
    }

    /// Whether a `wait until`'s condition holds now over `input`, with the run's signals and
    /// stage states as they are now.
    pub(super) fn wait_met(&mut self, condition: &Sql, input: &Rows) -> Result<bool, StageError> {
        self.store.now.set(self.ctx.now());
        if let Some(inbox) = self.ctx.inbox {
            inbox.show(self.stage, self.store)?;
        }
        // As a stage's source, the condition reads no rows.
        let rows = (!input.columns.is_empty()).then_some(input);
        let met = self.query(&condition.text, rows)?;
        Ok(matches!(met.first_value(), Some(Value::Integer(1))))
    }

    /// A `wait until`'s input again: the files it watches read again, its source query run
    /// again.
    pub(super) fn wait_input(
        &mut self,
        source: &Sql,
        watched: &[crate::plan::ir::WatchedFile],
    ) -> Result<Rows, StageError> {
        self.reload(watched)?;
        Ok(self.query(&source.text, None)?)
    }
}

/// A fan-out's end: fine, or its failures past the tolerance (`first`: the first item's).
fn judged(
    fan: &FanOut,
    failed: usize,
    total: usize,
    first: Option<String>,
) -> Result<(), StageError> {
    let allowed = match &fan.tolerated_failures {
        Tolerance::Count(n) => *n as f64,
        Tolerance::Percent(p) => total as f64 * p / 100.0,
    };
    if failed as f64 > allowed {
        return Err(StageError::Items {
            failed,
            total,
            tolerated: allowed,
            first: first.unwrap_or_default(),
        });
    }
    Ok(())
}

/// A failed item as `failed(stage)` reads it: its place, exit code and error, then its row.
fn failed_row(index: usize, error: &StageError, row: Vec<Value>) -> Vec<Value> {
    let exit_code = error
        .exit_code()
        .map_or(Value::Null, |code| Value::Integer(i64::from(code)));
    [
        Value::Integer(index as i64),
        exit_code,
        Value::Text(error.to_string()),
    ]
    .into_iter()
    .chain(row)
    .collect()
}

/// `failed(stage)` adds its own columns to the items': none may have one of their names.
fn no_failure_column(stage: &str, columns: &[String]) -> Result<(), StageError> {
    use crate::check::shapes::FAILED_COLUMNS;
    match columns
        .iter()
        .find(|c| FAILED_COLUMNS.iter().any(|(name, _)| name == c))
    {
        Some(same) => Err(StageError::FailureColumn {
            stage: stage.to_string(),
            column: same.clone(),
        }),
        None => Ok(()),
    }
}

/// The pause before the next check of a `wait until` whose condition reads neither the time
/// nor anything random, when the clock knows that nothing else acts for a while (a test's
/// virtual clock): the checks that would all see the same data are skipped, and the next
/// one falls on the same tick as it would after them. `pause` otherwise.
fn skipped_polls(
    clock: &dyn crate::runtime::clock::Clock,
    condition: &Sql,
    pause: Duration,
    left: Option<Duration>,
) -> Duration {
    use crate::runtime::clock::Quiet;
    let text = condition.text.to_ascii_lowercase();
    let varies = ["wv_now", "now", "random", "current_", "wv_iteration"]
        .iter()
        .any(|f| text.contains(f));
    if varies || pause.is_zero() {
        return pause;
    }
    match clock.quiet_until() {
        Quiet::Unknown => pause,
        // Nothing will change: the next check that matters is the last one.
        Quiet::Forever => left.unwrap_or(Duration::MAX),
        Quiet::Until(at) => {
            let ahead = at.saturating_sub(clock.now());
            let ticks = (ahead.as_nanos() / pause.as_nanos()).max(1);
            let skip = pause.saturating_mul(u32::try_from(ticks).unwrap_or(u32::MAX));
            left.map_or(skip, |left| skip.min(left))
        }
    }
}

/// Sleeps on the run's clock; `false` when the stage was cancelled meanwhile.
pub(super) fn nap(ctx: &Context, cancel: &AtomicBool, total: Duration) -> bool {
    ctx.clock.sleep_unless(total, cancel)
}

/// A slot of `pool` for `stage` (or its `item`) in the run store at `workspace_db`, waiting
/// at most the stage's `schedule_timeout`; `waiting` is told when a wait starts and ends.
fn hold(
    ctx: &Context,
    stage: &StagePlan,
    (workspace_db, cancel): (Option<&std::path::Path>, &AtomicBool),
    pool: &PoolPlan,
    item: Option<usize>,
    waiting: impl FnMut(bool),
) -> Result<crate::runtime::pools::Slot, StageError> {
    let db = workspace_db.ok_or_else(|| StageError::Data("pools need the run store".into()))?;
    let holder = crate::runtime::pools::Holder {
        run_id: &ctx.run_id,
        stage: &stage.id,
        item,
    };
    let limit = stage.schedule_timeout_ms.map(Duration::from_millis);
    crate::runtime::pools::acquire(db, pool, &holder, (cancel, limit), ctx.clock, waiting)
}

/// How many of a fan-out's items wait for a pool slot and how many hold one: the stage is
/// `queued` only while some wait and none holds one (then its items are not running).
#[derive(Default)]
struct Occupancy(std::sync::Mutex<(usize, usize, bool)>);

impl Occupancy {
    /// One item starts (`Some(true)`) or stops (`Some(false)`) waiting, or holding; `show` is
    /// told when the stage becomes queued or stops being so.
    fn change(&self, waiting: Option<bool>, holding: Option<bool>, show: impl Fn(bool)) {
        let Ok(mut counts) = self.0.lock() else {
            return;
        };
        let (waits, holds, shown) = &mut *counts;
        let step = |n: &mut usize, up: bool| *n = if up { *n + 1 } else { n.saturating_sub(1) };
        if let Some(up) = waiting {
            step(waits, up);
        }
        if let Some(up) = holding {
            step(holds, up);
        }
        let queued = *waits > 0 && *holds == 0;
        if queued != *shown {
            *shown = queued;
            show(queued);
        }
    }
}

/// A child run's final rows ([`super::Summary::outputs`]); an error when it did not succeed.
fn child_rows(summary: &super::Summary) -> Result<Rows, StageError> {
    if summary.state != RunState::Success {
        let cause = summary.stages.iter().find_map(|s| s.error.clone()).map(Box::new);
        return Err(StageError::ChildRun {
            run_id: summary.run_id.clone(),
            flow: summary.flow.clone(),
            state: summary.state,
            cause,
        });
    }
    match &summary.outputs {
        Some((run_db, stages)) => Store::rows_of_run(run_db, stages)
            .map_err(|e| {
                StageError::Data(format!(
                    "cannot read the rows of child run {}: {e}",
                    summary.run_id
                ))
            }),
        // A child left to run on its own (`parent_close: abandon`) has no rows here.
        None => Ok(Rows::default()),
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
) -> Result<Vec<BTreeMap<String, Value>>, crate::runtime::store::Error> {
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

/// [`bind`] once: over the run's values, or over one row (its columns).
pub fn bind_one(
    store: &mut Store,
    bindings: &[Binding],
    params: &BTreeMap<String, Value>,
    row: Option<&Rows>,
) -> Result<BTreeMap<String, Value>, crate::runtime::store::Error> {
    Ok(bind(store, bindings, params, row)?
        .into_iter()
        .next()
        .unwrap_or_default())
}

/// One attempt, reported before it starts and after it ends.
/// One activity call with its invocation's retry policy; the stage shows `retrying` between
/// attempts.
fn retried(
    ctx: &Context,
    stage: &StagePlan,
    (phase, step, item): (Phase, usize, Option<usize>),
    call: &Call,
) -> retry::Finished<Output> {
    let which = |number| Attempt {
        stage: &stage.id,
        phase,
        step,
        item,
        number,
    };
    // An exported task makes one attempt, numbered as the engine counts its tries.
    let one;
    let (policy, before) = match ctx.single_attempt {
        Some(n) => {
            one = crate::plan::ir::RetryPolicy {
                attempts: 1,
                ..call.invocation.retry.clone()
            };
            (&one, n.max(1) - 1)
        }
        None => (&call.invocation.retry, 0),
    };
    retry::run_observed(
        policy,
        stage.schedule_timeout_ms.map(Duration::from_millis),
        (ctx.clock, call.cancel),
        ctx.random,
        |attempt| launch(ctx, stage, &which(attempt + before), call),
        |failed, delay| {
            if let Some(p) = ctx.progress {
                p.retrying(&which(failed + before), delay);
            }
        },
    )
}

fn launch(ctx: &Context, stage: &StagePlan, attempt: &Attempt, call: &Call) -> Outcome<Output> {
    let request = request(ctx, stage, attempt, call);
    super::launch_reported(ctx.launcher, &request, attempt, ctx.progress)
}

/// What one activity call passes: the activity, the stage's idempotency key, argument values
/// and input rows.
struct Call<'a> {
    invocation: &'a Invocation,
    key: Option<&'a str>,
    args: &'a BTreeMap<String, Value>,
    /// The words and `WV_<NAME>` variables ([`command_line`]).
    line: &'a CommandLine,
    input: &'a Input,
    /// The stage's cancel flag.
    cancel: &'a Arc<AtomicBool>,
}

/// One attempt's request: the call and the run's environment.
fn request(ctx: &Context, stage: &StagePlan, attempt: &Attempt, call: &Call) -> Request {
    let Call {
        invocation,
        key,
        args,
        line: (argv, env),
        input,
        cancel,
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
        cancel: cancel.clone(),
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

#[cfg(test)]
mod tests {
    use super::Occupancy;
    use std::sync::Mutex;

    /// A fan-out is `queued` while some items wait and none holds a slot, and only then: an
    /// item waiting while others run does not make the stage look stopped.
    #[test]
    fn a_fan_out_is_queued_only_while_nothing_holds_a_slot() {
        let shown = Mutex::new(Vec::new());
        let show = |queued| shown.lock().unwrap().push(queued);
        let o = Occupancy::default();
        o.change(Some(true), None, show); // item 0 waits: queued
        o.change(Some(false), Some(true), show); // it holds a slot: running
        o.change(Some(true), None, show); // item 1 waits while 0 runs: still running
        o.change(None, Some(false), show); // 0 is done, 1 still waits: queued
        o.change(Some(false), Some(true), show); // 1 holds one: running
        o.change(None, Some(false), show); // done, nobody waits: nothing to show
        assert_eq!(*shown.lock().unwrap(), [true, false, true, false]);
    }
}
