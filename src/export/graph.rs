//! A plan as the tasks of an exported run, whatever the engine: for each stage, the tasks it
//! waits for, whether its `each` items are tasks of their own, which retries the engine
//! makes, whether it writes the shared workspace database, and the pool its tasks hold. The
//! exporters only render it.

use crate::plan::Plan;
use crate::plan::ir::{FlowPlan, PoolPlan, RetryPolicy, StagePlan, Step};
use crate::plan::tasks::{
    calls_as_runs, engine_retries, fans_out_as_tasks, item_retries, waits_on_engine,
    writes_workspace,
};
use std::collections::BTreeMap;

/// The tasks of an exported run, stage by stage in plan order.
pub struct TaskGraph<'p> {
    pub flow: &'p FlowPlan,
    pub stages: Vec<StageTasks<'p>>,
}

/// A stage's tasks.
pub struct StageTasks<'p> {
    pub stage: &'p StagePlan,
    /// The stages whose tasks its first task waits for, sorted.
    pub waits_for: Vec<&'p str>,
    pub shape: Shape<'p>,
    /// One writer of the shared workspace database at a time, across runs.
    pub writes_workspace: bool,
    /// The engine's pool its task holds (for a fan-out, each item task: as `wvflow run`,
    /// a fan-out's items hold the pool one by one).
    pub pool: Option<&'p PoolPlan>,
}

/// One task, or a fan-out of tasks.
pub enum Shape<'p> {
    /// The stage in one task, retried by the engine by this policy (else inside the task).
    One { retries: Option<&'p RetryPolicy> },
    /// Its `each` items as tasks of their own: a `prepare` task, one task per item (retried
    /// by the engine by `item_retries`, at most `concurrency` at once), and the stage's own
    /// task that gathers them.
    Fanned {
        item_retries: Option<&'p RetryPolicy>,
        concurrency: Option<u64>,
    },
    /// Its child runs (`call`, `each call`) as runs of the engine: a `prepare` task, one
    /// engine run per child (started and awaited, at most `concurrency` at once, each started
    /// again by the engine by `retries`), and the stage's own task that gathers them.
    Calls {
        retries: Option<&'p RetryPolicy>,
        concurrency: Option<u64>,
        target: &'p crate::plan::ir::FlowRef,
    },
    /// Its `wait until` checked by the engine between its own waits: a `prepare` task, a
    /// check every `poll_interval_ms` that holds no worker in between (Airflow), and the
    /// stage's own task after the wait. An engine without such a check runs the stage in one
    /// task, its wait inside.
    Waits { poll_interval_ms: u64 },
}

impl<'p> TaskGraph<'p> {
    pub fn new(plan: &'p Plan) -> TaskGraph<'p> {
        let stages = plan
            .flow
            .stages
            .iter()
            .map(|stage| StageTasks {
                stage,
                waits_for: waits_for(plan, stage),
                shape: shape(stage),
                writes_workspace: writes_workspace(stage),
                pool: stage.pool.as_ref(),
            })
            .collect();
        TaskGraph {
            flow: &plan.flow,
            stages,
        }
    }

    pub fn any_fanned(&self) -> bool {
        self.stages.iter().any(StageTasks::fanned)
    }

    /// The pools the run's tasks hold, by name, with their slots: what the engine must have.
    pub fn pools(&self) -> BTreeMap<&'p str, u64> {
        self.stages
            .iter()
            .filter_map(|s| s.pool)
            .map(|p| (p.name.as_str(), p.slots))
            .collect()
    }
}

impl StageTasks<'_> {
    /// Whether the stage's tasks are a `prepare`, what it prepares, and the stage's own task.
    pub fn fanned(&self) -> bool {
        matches!(
            self.shape,
            Shape::Fanned { .. } | Shape::Calls { .. } | Shape::Waits { .. }
        )
    }
}

/// How a stage's tasks are shaped.
fn shape(stage: &StagePlan) -> Shape<'_> {
    match calls_as_runs(stage).map(|at| &stage.steps[at]) {
        Some(Step::EachCall { target, fan, .. }) => Shape::Calls {
            retries: (stage.retry.attempts > 1).then_some(&stage.retry),
            concurrency: Some(fan.concurrency),
            target,
        },
        // `wvflow run` makes one child run of a `call`, never another.
        Some(Step::Call { target, .. }) => Shape::Calls {
            retries: None,
            concurrency: None,
            target,
        },
        _ if fans_out_as_tasks(stage) => Shape::Fanned {
            item_retries: item_retries(stage),
            concurrency: stage.steps.iter().find_map(|s| match s {
                Step::Each { fan, .. } => Some(fan.concurrency),
                _ => None,
            }),
        },
        _ => match waits_on_engine(stage).map(|at| &stage.steps[at]) {
            Some(Step::WaitUntil {
                poll_interval_ms, ..
            }) => Shape::Waits {
                poll_interval_ms: *poll_interval_ms,
            },
            _ => Shape::One {
                retries: engine_retries(stage),
            },
        },
    }
}

/// The stages a stage waits for: its upstream stages and, for a fork among them, the
/// fork's branches (a fork has ended only when they have).
fn waits_for<'p>(plan: &'p Plan, stage: &'p StagePlan) -> Vec<&'p str> {
    let mut found: Vec<&str> = Vec::new();
    let mut queue: Vec<&str> = stage.upstream.iter().map(|e| e.stage.as_str()).collect();
    while let Some(name) = queue.pop() {
        if found.contains(&name) {
            continue;
        }
        found.push(name);
        if let Some(up) = plan.flow.stages.iter().find(|s| s.id == name) {
            for step in &up.steps {
                // Not for a branch of that fork itself: it runs inside the fork.
                if let Step::Fork { branches } = step
                    && !branches.contains(&stage.id)
                {
                    queue.extend(branches.iter().map(String::as_str));
                }
            }
        }
    }
    found.sort_unstable();
    found
}

