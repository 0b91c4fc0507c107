//! The run's rules, written once: pure functions over what a run knows of its stages so far.
//! `wvflow run` applies them on its in-memory board as stages end on its threads
//! (`engine/board.rs`); `wvflow stage` applies them to the records in the state folder or
//! bucket, one task at a time (`tasks/`). Neither driver decides a run-level question itself:
//! which stage runs, is skipped or cancelled; how a fork settles; what the flow's timeout
//! does; who wins a race; how the run ends; what its saga compensates, in which order; and
//! whether a failed attempt is tried again.

use super::engine::StageSummary;
use super::error::{NotRetried, StageError};
use super::retry::Random;
use super::state::{RunState, StageState};
use crate::plan::ir::{Cond, FlowPlan, OnFailure, RetryPolicy, StagePlan, Step};
use std::collections::BTreeMap;
use std::time::Duration;

/// How a stage ended, as the rules read it: its state, and where its end falls in the run
/// (a number that grows with time: the order of ends, or when it ended).
pub type End = (StageState, i64);

/// Whether a stage stops the flow when it succeeds (`end`).
pub fn ends_flow(stage: &StagePlan) -> bool {
    stage.steps.iter().any(|s| matches!(s, Step::End))
}

/// The branches of a fork stage (none for any other stage).
pub fn branches(stage: &StagePlan) -> impl Iterator<Item = &str> {
    stage.steps.iter().flat_map(|step| match step {
        Step::Fork { branches } => branches.as_slice(),
        _ => &[],
    })
    .map(String::as_str)
}

/// Whether `reader` sees `upstream` as the upstream's own work ended (it is a branch of the
/// fork `upstream`), rather than as its branches settle it.
pub fn sees_own_end(reader: &str, upstream: &StagePlan) -> bool {
    branches(upstream).any(|b| b == reader)
}

/// What the run is when a stage whose upstream stages have ended could start.
#[derive(Clone, Copy, Debug, Default)]
pub struct Before {
    /// The run was cancelled, or its timeout passed: nothing starts.
    pub stopped: bool,
    /// A stage with `end` succeeded: nothing more starts.
    pub end_reached: bool,
    /// The stage lost a race it ran in (another racer succeeded first).
    pub lost_race: bool,
}

/// How a stage that is due to start ends without running, if it does: cancelled when the
/// run stopped or it lost a race, skipped after an `end` or when its trigger does not hold
/// over its upstream stages' states. `None`: it runs.
pub fn unrun(stage: &StagePlan, before: Before, upstream: &BTreeMap<String, StageState>) -> Option<StageState> {
    if before.stopped || before.lost_race {
        Some(StageState::Cancelled)
    } else if before.end_reached || !holds(&stage.trigger, upstream) {
        Some(StageState::Skipped)
    } else {
        None
    }
}

/// Evaluates a compiled trigger over the states reached so far.
pub fn holds(cond: &Cond, states: &BTreeMap<String, StageState>) -> bool {
    match cond {
        Cond::True => true,
        Cond::State { stage, state } => match states.get(stage) {
            Some(reached) => {
                *state == crate::vocabulary::StateWord::Done || reached.as_str() == state.as_str()
            }
            None => false,
        },
        Cond::Not { arg } => !holds(arg, states),
        Cond::And { args } => args.iter().all(|a| holds(a, states)),
        Cond::Or { args } => args.iter().any(|a| holds(a, states)),
    }
}

/// Whether a stage that succeeded stops the flow: any of `succeeded` has `end`.
pub fn end_reached<'a>(flow: &FlowPlan, mut succeeded: impl Iterator<Item = &'a str>) -> bool {
    succeeded.any(|id| flow.stages.iter().any(|s| s.id == id && ends_flow(s)))
}

/// The error of a stage the flow's timeout stopped.
pub fn flow_timeout(flow: &FlowPlan) -> StageError {
    StageError::FlowTimeout(Duration::from_millis(flow.timeout_ms.unwrap_or(0)))
}

/// A stage that was running when the flow's timeout passed was stopped as by a cancel: it
/// failed, saying so.
pub fn stopped_by_timeout(flow: &FlowPlan, summary: &mut StageSummary) {
    if summary.state == StageState::Cancelled {
        summary.state = StageState::Failed;
        summary.error = Some(flow_timeout(flow));
    }
}

/// A fork whose branches have all ended (`state_of` gives a branch's state): when one of them
/// failed and does not ignore it, the fork fails, keeping no rows (readers that still run,
/// `trigger: all_done`, read none). `None`: the fork ends as its own work ended.
pub fn settle_fork(
    flow: &FlowPlan,
    fork: &StagePlan,
    own: &StageSummary,
    state_of: impl Fn(&str) -> Option<StageState>,
) -> Option<StageSummary> {
    if own.state != StageState::Success {
        return None;
    }
    let failed = branches(fork).find(|b| {
        state_of(b) == Some(StageState::Failed)
            && flow
                .stages
                .iter()
                .any(|s| s.id == *b && s.on_failure == OnFailure::Fail)
    })?;
    Some(StageSummary {
        state: StageState::Failed,
        rows: 0,
        error: Some(StageError::BranchFailed {
            branch: failed.to_string(),
        }),
        ..own.clone()
    })
}

/// The `first_success` stages that `stage` races in.
pub fn races<'f>(flow: &'f FlowPlan, stage: &'f str) -> impl Iterator<Item = &'f StagePlan> {
    flow.stages
        .iter()
        .filter(move |s| s.first_success && s.upstream.iter().any(|e| e.stage == stage))
}

/// The winner of a race (a `first_success` stage's upstream stage that succeeded first), once
/// one has succeeded; `end_of` gives how an upstream stage ended, if it has.
pub fn race_winner(race: &StagePlan, end_of: impl Fn(&str) -> Option<End>) -> Option<&str> {
    race.upstream
        .iter()
        .filter_map(|e| Some((e.stage.as_str(), end_of(&e.stage)?)))
        .filter(|(_, (state, _))| *state == StageState::Success)
        .min_by_key(|(_, (_, at))| *at)
        .map(|(stage, _)| stage)
}

/// Whether `stage` lost a race it runs in: another racer won it.
pub fn lost_race(flow: &FlowPlan, stage: &str, end_of: impl Fn(&str) -> Option<End>) -> bool {
    races(flow, stage).any(|race| race_winner(race, &end_of).is_some_and(|w| w != stage))
}

/// Whether a run fails, given how its stages ended: a stage failed whose `on_failure` is
/// `fail`, or one never ended (its task died unrecorded).
pub fn fails(flow: &FlowPlan, stages: &[StageSummary]) -> bool {
    stages.iter().any(|r| {
        matches!(r.error, Some(StageError::NeverEnded))
            || r.state == StageState::Failed
                && flow
                    .stages
                    .iter()
                    .find(|s| s.id == r.stage)
                    .is_some_and(|s| s.on_failure == OnFailure::Fail)
    })
}

/// How a run ended: cancelled when it was; failed when its timeout passed or [`fails`] says
/// so; continued when a loop stopped to go on in a new run (`continue_as_new`); else a
/// success.
pub fn run_state(flow: &FlowPlan, stages: &[StageSummary], cancelled: bool, timed_out: bool) -> RunState {
    if cancelled {
        RunState::Cancelled
    } else if timed_out || fails(flow, stages) {
        RunState::Failed
    } else if stages.iter().any(|s| s.state == StageState::Continued) {
        RunState::Continued
    } else {
        RunState::Success
    }
}

/// What a run that ended in `state` compensates: for a failure (and a cancel, when
/// `on_cancel`), every stage whose own work succeeded (a fork's, whatever its branches did),
/// in the order they ended; the saga runs them latest first.
pub fn saga<'p>(
    state: RunState,
    on_cancel: bool,
    succeeded: impl IntoIterator<Item = (&'p StagePlan, i64)>,
) -> Vec<&'p StagePlan> {
    let owes = match state {
        RunState::Failed => true,
        RunState::Cancelled => on_cancel,
        _ => false,
    };
    if !owes {
        return Vec::new();
    }
    let mut ended: Vec<(&StagePlan, i64)> = succeeded.into_iter().collect();
    ended.sort_by_key(|(_, at)| *at);
    ended.into_iter().map(|(s, _)| s).collect()
}

/// Who waits out the delay before a retry.
#[derive(Clone, Copy)]
pub enum Waiter<'r> {
    /// wvflow, drawing the jitter from this source.
    Wvflow(&'r dyn Random),
    /// The engine of an exported run, with its own copy of the delays (and its own jitter,
    /// which wvflow never needs: a stage whose retries the engine makes has no
    /// `schedule_timeout` with jitter, see [`crate::plan::tasks::engine_retries`]).
    Engine,
}

/// The delay after failed attempt `attempt`, as `waiter` waits it.
pub fn retry_delay(policy: &RetryPolicy, attempt: u32, waiter: Waiter) -> Duration {
    let computed = policy.delays().before_retry(attempt);
    match waiter {
        // Full jitter, in whole milliseconds: a test can state the delay (`expect elapsed`).
        Waiter::Wvflow(random) if policy.jitter => {
            let drawn = computed.mul_f64(random.unit());
            Duration::from_millis(u64::try_from(drawn.as_millis()).unwrap_or(u64::MAX))
        }
        _ => computed,
    }
}

/// What follows a failed attempt of an activity call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AfterFailure {
    /// Tried again after this delay.
    Again(Duration),
    /// Not tried again; why, when it had tries left.
    GiveUp(Option<NotRetried>),
}

/// Whether failed attempt `attempt` (which exited with `exit_code`, if it exited) is tried
/// again: not when the policy's attempts are used, the exit code is non-retryable, or the
/// next attempt would start at or after `schedule_timeout` (`elapsed` since the first
/// attempt started, plus the delay).
pub fn after_failure(
    policy: &RetryPolicy,
    schedule_timeout: Option<Duration>,
    (attempt, exit_code): (u32, Option<i32>),
    elapsed: Duration,
    waiter: Waiter,
) -> AfterFailure {
    if attempt >= policy.attempts {
        return AfterFailure::GiveUp(None);
    }
    if let Some(code) = exit_code.filter(|c| policy.non_retryable.contains(&i64::from(*c))) {
        return AfterFailure::GiveUp(Some(NotRetried::NonRetryable(code)));
    }
    let delay = retry_delay(policy, attempt, waiter);
    match schedule_timeout {
        Some(limit) if elapsed + delay >= limit => {
            AfterFailure::GiveUp(Some(NotRetried::ScheduleTimeout {
                limit_ms: limit.as_millis() as u64,
                attempts: attempt,
            }))
        }
        _ => AfterFailure::Again(delay),
    }
}
