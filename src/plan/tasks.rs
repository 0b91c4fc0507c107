//! How a plan splits into the tasks of an exported run: facts that the exporters (which write
//! the tasks) and the runtime (which runs them, `wvflow stage`) both read.

use super::ir::{Plan, RetryPolicy, StagePlan, Step};

/// The flow of a plan as the state's keys name it: `Name`, or `Name@2` for a version.
pub fn flow_key(plan: &Plan) -> String {
    match plan.flow.version {
        Some(v) => format!("{}@{v}", plan.flow.name),
        None => plan.flow.name.clone(),
    }
}

/// The retry policy the engine applies to a stage's task: that of the stage's one activity
/// call, when that is all it calls and it may be retried. Any other stage (an `each`
/// fan-out, several calls) retries inside its task, where each call keeps its own count; so
/// does a call whose jitter decides whether the next attempt fits its `schedule_timeout`
/// (only the waiter knows the delay it drew).
pub fn engine_retries(stage: &StagePlan) -> Option<&RetryPolicy> {
    let mut calls = stage.steps.iter().filter_map(|step| match step {
        Step::Invoke { invocation } => Some(Some(invocation)),
        // A loop's calls are made in its task, iteration after iteration.
        Step::Each { .. } | Step::EachCall { .. } | Step::Call { .. } | Step::While { .. } => {
            Some(None)
        }
        _ => None,
    });
    // Each try runs the stage from its first step: only queries may come before the call,
    // so that nothing with an effect or a wait (`activate`, `wait`) happens twice.
    let before_call = stage
        .steps
        .iter()
        .take_while(|s| !matches!(s, Step::Invoke { .. }))
        .all(|s| matches!(s, Step::Query { .. } | Step::Union { .. }));
    match (calls.next(), calls.next()) {
        (Some(Some(invocation)), None) if before_call => by_engine(stage, &invocation.retry),
        _ => None,
    }
}

/// The retry policy the engine applies to each item task of a stage's `each`: the policy of
/// its call, when it may be retried.
pub fn item_retries(stage: &StagePlan) -> Option<&RetryPolicy> {
    stage.steps.iter().find_map(|step| match step {
        Step::Each { invocation, .. } => by_engine(stage, &invocation.retry),
        _ => None,
    })
}

/// `policy`, when the engine can make its retries: it may retry, and no jittered delay decides
/// whether a retry fits the stage's `schedule_timeout`.
fn by_engine<'p>(stage: &StagePlan, policy: &'p RetryPolicy) -> Option<&'p RetryPolicy> {
    let jitter_decides = policy.jitter && stage.schedule_timeout_ms.is_some();
    (policy.attempts > 1 && !jitter_decides).then_some(policy)
}

/// Whether a stage's `each` runs as tasks of their own (prepare, items, gather): an `each`
/// of activity calls with nothing but queries before it, so that the prepared input is all
/// that comes before the items.
pub fn fans_out_as_tasks(stage: &StagePlan) -> bool {
    let Some(at) = stage
        .steps
        .iter()
        .position(|s| matches!(s, Step::Each { .. }))
    else {
        return false;
    };
    stage.steps[..at]
        .iter()
        .all(|s| matches!(s, Step::Query { .. } | Step::Union { .. }))
}

/// The step of a stage's child runs (`call`, `each call`) when they run as runs of the
/// engine: the stage's one call, outside any loop. The steps before it run in the stage's
/// `prepare` task, those after it in its last task. `None` for any other stage.
pub fn calls_as_runs(stage: &StagePlan) -> Option<usize> {
    let is_call = |s: &Step| matches!(s, Step::Call { .. } | Step::EachCall { .. });
    let at = stage.steps.iter().position(is_call)?;
    let one = super::looped::all_steps(&stage.steps)
        .filter(|s| is_call(s))
        .count()
        == 1;
    one.then_some(at)
}

/// The step of a stage's `wait until` when the engine checks it between its own waits (a
/// sensor that gives its worker back): a `wait until` with nothing but queries before it.
pub fn waits_on_engine(stage: &StagePlan) -> Option<usize> {
    let at = stage
        .steps
        .iter()
        .position(|s| matches!(s, Step::WaitUntil { .. }))?;
    let before = stage.steps[..at]
        .iter()
        .all(|s| matches!(s, Step::Query { .. } | Step::Union { .. }));
    before.then_some(at)
}

/// The step a stage's tasks split at, `prepare` before it and `gather` after it: its `each`
/// when that fans out as tasks, its child runs when they run as the engine's runs, or its
/// `wait until` when the engine checks it.
pub fn split_at(stage: &StagePlan) -> Option<usize> {
    calls_as_runs(stage).or(waits_on_engine(stage)).or_else(|| {
        fans_out_as_tasks(stage)
            .then(|| stage.steps.iter().position(|s| matches!(s, Step::Each { .. })))
            .flatten()
    })
}

/// The run id of the child run a call stage starts for `item`, try `attempt` (each from the
/// engine, perhaps as its own template expressions): the parent's run id, the stage in
/// lower case with `-` for `_` (a Kubernetes name's letters), the item and the try. The
/// exporters write it with their engine's variables; the stage's last task reads the child's
/// state under it.
pub fn child_run_id(parent: &str, stage: &str, item: &str, attempt: &str) -> String {
    let stage = stage.to_ascii_lowercase().replace('_', "-");
    format!("{parent}-{stage}-{item}-{attempt}")
}

/// Whether a stage writes the workspace database the runs share (`save to`, idempotency
/// records): such writers are serialized, one at a time across runs and workers.
pub fn writes_workspace(stage: &crate::plan::ir::StagePlan) -> bool {
    // A stage on a connector's server saves to the server, in its own transaction: it needs
    // no turn with the shared workspace database.
    let on_server = stage
        .connector
        .as_deref()
        .is_some_and(|c| c != crate::connectors::DEFAULT);
    stage.idempotency_key.is_some()
        || (!on_server
            && super::looped::all_steps(&stage.steps).any(|s| matches!(s, Step::SaveTo { .. })))
}

/// The plan as the tasks of an exported run run it: without pools. On an engine the stage's
/// task (or each item's) holds the engine's pool (Airflow's pool, Argo's semaphore) before it
/// starts; wvflow's own slots would be a second pool of a run store the tasks do not share.
pub fn engine_holds_pools(mut plan: Plan) -> Plan {
    for stage in &mut plan.flow.stages {
        stage.pool = None;
    }
    plan
}
