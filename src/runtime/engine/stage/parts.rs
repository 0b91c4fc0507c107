//! A stage run in parts, each part perhaps in another process: the steps before one of its
//! steps, one item of an `each`, and the steps after an `each` whose items ended elsewhere.
//! The tasks of an exported run compose these (`runtime/tasks/`); `wvflow run` runs a stage
//! whole. Each part opens the run database itself: its upstream stages' tables are there.

use super::{
    Carried, Span, SpanEnd, StageRun, Started, failed, fill_missing_upstreams, run_span_on,
    set_stage_params,
};
use crate::plan::ir::{StagePlan, Step};
use crate::runtime::engine::{Context, StageSummary};
use crate::runtime::error::StageError;
use crate::runtime::retry::Finished;
use crate::runtime::state::{Phase, StageState};
use crate::runtime::store::{Rows, Store, StoreConfig};
use std::collections::BTreeMap;

/// What a stage run alone needs of its run: its upstream stages' states and, for a
/// `first_success` stage, the upstream it reads.
#[derive(Clone)]
pub struct Alone {
    pub upstream: BTreeMap<String, StageState>,
    pub first_success: Option<String>,
}

/// How the steps before a step ended: with the rows that step is to read and the attempts of
/// the activity calls on the way, or with the stage's end (it failed, was skipped, or reused a
/// recorded result).
pub enum BeforeStep {
    Reached(Rows, u32),
    Ended(StageSummary),
}

/// The steps of `stage` before step `step`. When that step is an `each`, its items'
/// arguments and keys are computed too: a failure to compute them fails the stage here, as
/// `wvflow run` fails it before any item runs.
pub fn steps_before(
    stage: &StagePlan,
    stores: &StoreConfig,
    ctx: &Context,
    alone: Alone,
    step: usize,
) -> BeforeStep {
    let start = started(stores, ctx, alone);
    let mut store = match stores.connect() {
        Ok(store) => store,
        Err(e) => return BeforeStep::Ended(unopened(stage, e.into())),
    };
    let span = Span {
        from: 0,
        to: step,
        rows: None,
        carried: Carried::default(),
    };
    let (rows, attempts) = match run_span_on(stage, &mut store, ctx, &start, span) {
        SpanEnd::Ended(summary) => return BeforeStep::Ended(summary),
        SpanEnd::Reached(rows, attempts) => (rows, attempts),
    };
    let mut run = StageRun::new(&mut store, ctx, stage, None, Phase::Run);
    run.step = step;
    if let Some(Step::Each { invocation, .. }) = stage.steps.get(step) {
        let computed = run
            .bind_rows(invocation, Some(&rows))
            .and_then(|_| run.item_keys(&rows).map(|_| ()));
        if let Err(e) = computed {
            return BeforeStep::Ended(unopened(stage, e.into()));
        }
    }
    BeforeStep::Reached(rows, attempts)
}

/// The child runs of the `call` or `each call` at step `step`, on its input `input`: one for
/// a `call` (whose arguments read the input's one row, as `wvflow run` reads it), one per
/// input row for an `each call`.
pub fn call_targets(
    stage: &StagePlan,
    stores: &StoreConfig,
    ctx: &Context,
    alone: Alone,
    (step, input): (usize, &Rows),
) -> Result<Vec<crate::runtime::engine::Jump>, StageError> {
    let start = started(stores, ctx, alone);
    let mut store = stores.connect()?;
    prepare(stage, &mut store, ctx, &start)?;
    let mut run = StageRun::new(&mut store, ctx, stage, None, Phase::Run);
    run.step = step;
    match stage.steps.get(step) {
        Some(Step::Call { target, .. }) => Ok(vec![run.target(target, input)?]),
        Some(Step::EachCall { target, .. }) => {
            let rows = super::bind(run.store, &target.args, &ctx.params, Some(input))?;
            Ok(rows
                .into_iter()
                .map(|args| crate::runtime::engine::Jump {
                    flow: target.flow.clone(),
                    version: target.version,
                    args,
                })
                .collect())
        }
        _ => Err(StageError::Data(format!(
            "step {step} of `{}` calls no flow",
            stage.id
        ))),
    }
}

/// One check of the `wait until` at step `step` (its input read again when it has a source):
/// its rows when the condition holds now, `None` when it does not yet.
pub fn wait_once(
    stage: &StagePlan,
    stores: &StoreConfig,
    ctx: &Context,
    alone: Alone,
    (step, input): (usize, Rows),
) -> Result<Option<Rows>, StageError> {
    let start = started(stores, ctx, alone);
    let mut store = stores.connect()?;
    prepare(stage, &mut store, ctx, &start)?;
    let Some(Step::WaitUntil {
        condition, watched, ..
    }) = stage.steps.get(step)
    else {
        return Err(StageError::Data(format!(
            "step {step} of `{}` is no `wait until`",
            stage.id
        )));
    };
    let source = stage.steps[..step].iter().rev().find_map(|s| match s {
        Step::Query { sql, .. } => Some(sql),
        _ => None,
    });
    let mut run = StageRun::new(&mut store, ctx, stage, None, Phase::Run);
    run.step = step;
    let input = match source {
        Some(sql) if !watched.is_empty() => run.wait_input(sql, watched)?,
        _ => input,
    };
    Ok(run.wait_met(condition, &input)?.then_some(input))
}

/// Item `item` of the `each` at step `step`, on `input`: reused when its idempotency key
/// succeeded before, else called with the stage's retry policy (one attempt when the context
/// asks for one). An error before the call is the item's failure with no attempt.
pub fn one_item(
    stage: &StagePlan,
    stores: &StoreConfig,
    ctx: &Context,
    alone: Alone,
    (step, input, item): (usize, &Rows, usize),
) -> Result<Finished<Rows>, StageError> {
    let start = started(stores, ctx, alone);
    let mut store = stores.connect()?;
    prepare(stage, &mut store, ctx, &start)?;
    let Some(Step::Each { invocation, .. }) = stage.steps.get(step) else {
        return Err(StageError::Data(format!("step {step} of `{}` is no `each`", stage.id)));
    };
    let mut run = StageRun::new(&mut store, ctx, stage, None, Phase::Run);
    run.step = step;
    run.cancel = start.cancel.clone();
    run.workspace_db = Some(start.workspace_db.clone());
    run.one_item(invocation, input, item).map_err(|(e, _)| e)
}

/// The steps of `stage` from the `each` at step `step` on: its items ended elsewhere (`ends`
/// by item; an item missing never ended), and are judged here as `wvflow run` judges them
/// (each success recorded under its key, the failed items kept, the tolerance), then the
/// steps after it run on their rows and the stage ends.
pub fn after_items(
    stage: &StagePlan,
    stores: &StoreConfig,
    ctx: &Context,
    alone: Alone,
    (step, input, ends): (usize, Rows, BTreeMap<usize, Finished<Rows>>),
) -> StageSummary {
    let start = started(stores, ctx, alone);
    let begun = ctx.clock.now();
    let mut store = match stores.connect() {
        Ok(store) => store,
        Err(e) => return unopened(stage, e.into()),
    };
    if let Err(e) = prepare(stage, &mut store, ctx, &start) {
        return unopened(stage, e);
    }
    let fan = match stage.steps.get(step) {
        Some(Step::Each { fan, .. } | Step::EachCall { fan, .. }) => fan,
        Some(Step::Call { .. } | Step::WaitUntil { .. }) => {
            return after_step(stage, (&mut store, ctx, &start), (step, ends));
        }
        _ => {
            let e = StageError::Data(format!("step {step} of `{}` is no `each`", stage.id));
            return unopened(stage, e);
        }
    };
    let mut run = StageRun::new(&mut store, ctx, stage, None, Phase::Run);
    run.step = step;
    let keys = match run.item_keys(&input) {
        Ok(keys) => keys,
        Err(e) => return unopened(stage, e.into()),
    };
    // An item that made no attempt reused its idempotency key's rows.
    let (reused, results): (Vec<_>, Vec<_>) = (0..input.len())
        .map(|i| match ends.get(&i) {
            Some(Finished {
                result: Ok(rows),
                attempts: 0,
            }) => (Some(rows.clone()), None),
            Some(end) => (None, Some(end.clone())),
            None => (
                None,
                Some(Finished {
                    result: Err("its task never ended".to_string().into()),
                    attempts: 0,
                }),
            ),
        })
        .unzip();
    let all_reused = !reused.is_empty() && reused.iter().all(Option::is_some);
    let rows = run
        .fan_in(fan, reused, &keys, results)
        .and_then(|done| run.fanned_in(fan, &input, done));
    let attempts = run.attempts;
    let rows = match rows {
        Ok(rows) => rows,
        Err(e) => {
            let summary = StageSummary {
                attempts: 1,
                ..StageSummary::new(stage, StageState::Failed)
            };
            return failed(summary, e, attempts, begun, ctx);
        }
    };
    let span = Span {
        from: step + 1,
        to: stage.steps.len(),
        rows: Some(rows),
        carried: Carried {
            attempts,
            all_reused,
        },
    };
    match run_span_on(stage, &mut store, ctx, &start, span) {
        SpanEnd::Ended(summary) => summary,
        SpanEnd::Reached(..) => StageSummary::new(stage, StageState::Pending),
    }
}

/// The steps of `stage` after step `step` (a `call` whose child run ended elsewhere, a `wait
/// until` checked elsewhere): its one end is the step's (`ends[0]`; missing, it never ended).
fn after_step(
    stage: &StagePlan,
    (store, ctx, start): (&mut Store, &Context, &Started),
    (step, mut ends): (usize, BTreeMap<usize, Finished<Rows>>),
) -> StageSummary {
    let begun = ctx.clock.now();
    let end = ends.remove(&0).unwrap_or(Finished {
        result: Err("its task never ended".to_string().into()),
        attempts: 0,
    });
    let rows = match end.result {
        Ok(rows) => rows,
        Err(e) => {
            let summary = StageSummary {
                attempts: 1,
                ..StageSummary::new(stage, StageState::Failed)
            };
            return failed(summary, (e, end.attempts), 1, begun, ctx);
        }
    };
    let span = Span {
        from: step + 1,
        to: stage.steps.len(),
        rows: Some(rows),
        carried: Carried {
            attempts: end.attempts,
            all_reused: false,
        },
    };
    match run_span_on(stage, store, ctx, start, span) {
        SpanEnd::Ended(summary) => summary,
        SpanEnd::Reached(..) => StageSummary::new(stage, StageState::Pending),
    }
}

fn started(stores: &StoreConfig, ctx: &Context, alone: Alone) -> Started {
    Started {
        workspace_db: stores.workspace_db.clone(),
        states: alone.upstream,
        cancel: ctx.cancel.clone(),
        first_success: alone.first_success,
    }
}

/// The run database as a stage's steps read it: empty tables for upstream stages without
/// rows, the stage's own values, the run's signals and states where they come from outside.
fn prepare(
    stage: &StagePlan,
    store: &mut Store,
    ctx: &Context,
    start: &Started,
) -> Result<(), StageError> {
    fill_missing_upstreams(store, stage, &start.states);
    set_stage_params(store, start);
    match ctx.inbox {
        Some(inbox) => inbox.show(stage, store),
        None => Ok(()),
    }
}

/// A stage that failed before any step: `error`.
fn unopened(stage: &StagePlan, error: StageError) -> StageSummary {
    StageSummary {
        attempts: 1,
        error: Some(error),
        ..StageSummary::new(stage, StageState::Failed)
    }
}
