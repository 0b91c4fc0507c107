//! A span of a stage's steps: `wvflow run` runs them all; the tasks of an exported run run
//! a stage in parts ([`super::parts`]). Around the steps: the stage's route, its idempotency
//! key and the rows it reused, its pool, and its table.

use super::{
    StageRun, StepError, Started, branch_not_taken, fill_missing_upstreams, set_stage_params,
    stage_key, store_rows,
};
use crate::plan::ir::{StagePlan, Step};
use crate::runtime::engine::{Context, StageSummary};
use crate::runtime::error::StageError;
use crate::runtime::output::Data;
use crate::runtime::state::{Phase, StageState};
use crate::runtime::store::{Rows, Store};
use std::sync::atomic::Ordering;
use std::time::Duration;

/// Which of a stage's steps a run of it makes: steps `from..to`, on `rows` (none: the first
/// step reads its sources), after what earlier parts of the stage did (`carried`). `wvflow
/// run` runs every step; the tasks of an exported run run a stage in parts ([`parts`]).
pub(in crate::runtime::engine) struct Span {
    pub from: usize,
    pub to: usize,
    pub rows: Option<Rows>,
    pub carried: Carried,
}

/// What earlier parts of a stage did: its attempts so far, and whether they reused every
/// result they gave.
#[derive(Clone, Copy, Default)]
pub(in crate::runtime::engine) struct Carried {
    pub attempts: u32,
    pub all_reused: bool,
}

impl Span {
    pub(super) fn whole(stage: &StagePlan) -> Span {
        Span {
            from: 0,
            to: stage.steps.len(),
            rows: None,
            carried: Carried::default(),
        }
    }
}

/// How a span of a stage's steps ended: the stage ended (it failed, was skipped or reused, or
/// the span reached its last step), or the span reached step `to` with these rows for it,
/// after this many attempts of the activity calls on the way.
pub(in crate::runtime::engine) enum SpanEnd {
    Ended(StageSummary),
    Reached(Rows, u32),
}

/// [`run_stage_on`] for the steps of `span` only.
pub(super) fn run_span_on(
    stage: &StagePlan,
    store: &mut Store,
    ctx: &Context,
    start: &Started,
    span: Span,
) -> SpanEnd {
    let ended = |summary| SpanEnd::Ended(summary);
    // A cancel seen after the stage was handed to a worker: it starts nothing.
    if ctx.cancel.load(Ordering::SeqCst) || start.cancel.load(Ordering::SeqCst) {
        return ended(StageSummary::new(stage, StageState::Cancelled));
    }
    let started = ctx.clock.now();
    let mut summary = StageSummary {
        attempts: 1,
        ..StageSummary::new(stage, StageState::Failed)
    };
    fill_missing_upstreams(store, stage, &start.states);
    set_stage_params(store, start);
    if let Some(inbox) = ctx.inbox
        && let Err(e) = inbox.show(stage, store)
    {
        summary.error = Some(e);
        return ended(summary);
    }
    match branch_not_taken(stage, store, ctx, &start.states) {
        Ok(false) => {}
        Ok(true) => {
            return ended(StageSummary {
                attempts: 0,
                ..StageSummary::new(stage, StageState::Skipped)
            });
        }
        Err(e) => {
            summary.error = Some(StageError::Data(format!(
                "cannot read the rows its routes give it: {e}"
            )));
            return ended(summary);
        }
    }
    let key = match stage_key(stage, store, ctx) {
        Ok(key) => key,
        Err(e) => {
            summary.error = Some(e);
            return ended(summary);
        }
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
        summary.reused = summary.state == StageState::Success;
        summary.attempts = 0;
        return ended(summary);
    }
    let mut run = StageRun::new(&mut *store, ctx, stage, key.clone(), Phase::Run);
    run.cancel = start.cancel.clone();
    run.workspace_db = Some(start.workspace_db.clone());
    run.attempts = span.carried.attempts;
    run.all_reused = span.carried.all_reused;
    // A fan-out's items hold the pool one by one (in a loop too); any other stage holds it
    // while it runs.
    let fans_out = crate::plan::looped::all_steps(&stage.steps)
        .any(|s| matches!(s, Step::Each { .. } | Step::EachCall { .. }));
    let slot = match &stage.pool {
        Some(pool) if !fans_out => run.hold(pool).map(Some),
        _ => Ok(None),
    };
    let result = slot.map_err(|e| (e, 1)).and_then(|_slot| run.steps(&span));
    let attempts = run.attempts;
    let all_reused = run.all_reused;
    // A key evaluated over the input was recorded already when its rows were reused.
    let key = if all_reused { None } else { run.key.take() };
    // The span stopped before the stage's last step: its end is a later part's to decide.
    if span.to < stage.steps.len() && !all_reused {
        match result.and_then(|output| run_rows(store, output, attempts)) {
            Ok(rows) => return SpanEnd::Reached(rows, attempts),
            Err(e) => return ended(failed(summary, e, attempts, started, ctx)),
        }
    }
    match result.and_then(|output| store_rows(store, ctx, stage, key.as_deref(), output, attempts)) {
        Ok(rows) => {
            summary.state = StageState::Success;
            summary.rows = rows;
            summary.reused = all_reused;
            summary.attempts = if all_reused { 0 } else { attempts.max(1) };
            summary.duration_ms = (ctx.clock.now() - started).as_millis() as u64;
            ended(summary)
        }
        Err(e) => ended(failed(summary, e, attempts, started, ctx)),
    }
}

/// A stage that did not succeed: cancelled, or failed with the error, after `attempts`.
pub(super) fn failed(
    mut summary: StageSummary,
    (error, n): StepError,
    attempts: u32,
    started: Duration,
    ctx: &Context,
) -> StageSummary {
    match error {
        StageError::Cancelled => summary.state = StageState::Cancelled,
        StageError::Continued => summary.state = StageState::Continued,
        e => summary.error = Some(e),
    }
    summary.attempts = n.max(attempts).max(1);
    summary.duration_ms = (ctx.clock.now() - started).as_millis() as u64;
    summary
}

/// A span's output as rows, for the part after it.
fn run_rows(store: &mut Store, output: Data, attempts: u32) -> Result<Rows, StepError> {
    store.rows(output).map_err(|e| (e.into(), attempts))
}

