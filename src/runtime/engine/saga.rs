//! The saga: when a flow fails, the compensations of the stages that succeeded run, latest
//! first, each with its stage's rows.

use super::stage::StageRun;
use super::{CompensationSummary, Context};
use crate::plan::ir::*;
use crate::runtime::error::StageError;
use crate::runtime::state::StageState;
use crate::runtime::store::Store;

/// The compensations of `completed` that could not run at all, each failed with `why`.
pub(super) fn not_compensated(
    ctx: &Context,
    completed: &[&StagePlan],
    why: &str,
) -> Vec<CompensationSummary> {
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
/// Those that ended in an earlier execution of the run ([`Context::compensated`]) are not run
/// again; every one owed is reported first, so that a crash leaves them recorded as due.
pub(super) fn compensate(
    store: &mut Store,
    ctx: &Context,
    completed: &[&StagePlan],
    ending: crate::runtime::state::RunState,
) -> Vec<CompensationSummary> {
    let owed: Vec<(&StagePlan, &Invocation)> = completed
        .iter()
        .rev()
        .filter_map(|stage| Some((*stage, stage.compensation.as_ref()?)))
        .collect();
    let ended = |stage: &StagePlan| {
        ctx.compensated
            .iter()
            .find(|c| c.stage == stage.id && c.state != StageState::Pending)
    };
    if let Some(p) = ctx.progress {
        let due: Vec<CompensationSummary> = owed
            .iter()
            .map(|(stage, invocation)| match ended(stage) {
                Some(c) => c.clone(),
                None => CompensationSummary {
                    stage: stage.id.clone(),
                    activity: invocation.activity.clone(),
                    state: StageState::Pending,
                    attempts: 0,
                    error: None,
                },
            })
            .collect();
        if !due.is_empty() {
            p.compensations_due(&due, ending);
        }
    }
    let mut done = Vec::new();
    for (stage, invocation) in owed {
        if let Some(c) = ended(stage) {
            done.push(c.clone());
            continue;
        }
        let rows = store
            .stage_rows(&stage.id)
            .map_err(|e| format!("cannot read the rows of `{}`: {e}", stage.id));
        let mut run = StageRun::new(
            &mut *store,
            ctx,
            stage,
            None,
            crate::runtime::state::Phase::Compensate,
        );
        // Arguments that name columns take them from the stage's one row, as a single call's
        // do; the rows go to stdin whole.
        let args = rows.map_err(StageError::from).and_then(|rows| {
            let row = run.one_row(&invocation.bindings, &rows, &invocation.activity)?;
            let args = run.bind(invocation, row)?;
            Ok((args, rows))
        });
        let result = match args {
            Ok((args, rows)) => run.call(invocation, args, rows.into()),
            Err(e) => Err((e, 0)),
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
