//! The run an exported run's jump starts (`-> F(...)`): each stage that jumps keeps the
//! target it reached, its arguments typed by the target's parameters; once the run has
//! succeeded, `wvflow stage next` names the one run to start, as `wvflow run` follows one.
//! The engine starts it (Airflow: a triggered DAG run; Argo: a Workflow of the target's
//! WorkflowTemplate). How deep a chain of jumps is travels with the runs it starts.

use super::state::stage_key;
use super::{Error, TaskRun};
use crate::plan::ir::{StagePlan, Step};
use crate::runtime::engine::Jump;
use crate::runtime::state::{RunState, StageState};
use serde::{Deserialize, Serialize};

/// A run to start: the flow as the jump names it, its arguments as JSON typed by the target's
/// parameters (a boolean as `true`, a duration as `90s`), and how deep in a chain of jumps
/// it is (the first run is 0).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NextRun {
    pub flow: String,
    pub version: Option<u32>,
    pub args: serde_json::Map<String, serde_json::Value>,
    pub depth: u32,
    /// The run whose call starts it, as `FLOW/RUN_ID` (none for a jump's run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
}

impl NextRun {
    /// The flow as the plan refers to it: `Name`, or `Name@2` (how an export names the
    /// engine's DAG or template to start).
    pub fn reference(&self) -> String {
        reference(&self.flow, self.version)
    }
}

/// `Name`, or `Name@2`.
pub fn reference(flow: &str, version: Option<u32>) -> String {
    match version {
        Some(v) => format!("{flow}@{v}"),
        None => flow.to_string(),
    }
}

/// Why no run is started after a run that succeeded.
#[derive(Debug)]
pub enum NextError {
    /// The chain of jumps is as deep as `wvflow run` lets it grow.
    DepthLimit { depth: u32 },
    Task(Error),
}

impl std::fmt::Display for NextError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NextError::DepthLimit { depth } => write!(
                f,
                "jump chain stopped after {depth} runs (the depth limit); do the flows jump to \
                 each other in a loop?"
            ),
            NextError::Task(e) => write!(f, "{e}"),
        }
    }
}

impl From<Error> for NextError {
    fn from(e: Error) -> Self {
        NextError::Task(e)
    }
}

/// The key of the jumps a stage reached.
fn jumps_key(task: &TaskRun, stage: &str) -> String {
    stage_key(&task.flow_key(), &task.run_id, stage, "next.json")
}

impl TaskRun<'_> {
    /// Keeps the jumps a stage reached, before its record (which says it succeeded).
    pub(super) fn keep_jumps(&self, stage: &StagePlan, jumps: &[Jump]) -> Result<(), Error> {
        if jumps.is_empty() {
            return Ok(());
        }
        let depth = self.run_record()?.lineage.depth;
        let runs: Vec<NextRun> = jumps
            .iter()
            .map(|j| typed_run(stage, j, depth + 1))
            .collect();
        Ok(self.state.write(
            &jumps_key(self, &stage.id),
            &serde_json::to_vec_pretty(&runs).map_err(Error::Encode)?,
        )?)
    }

    /// The run to start after this one, if it succeeded and a stage that succeeded reached a
    /// jump: the first such stage in plan order, its first jump.
    pub fn next_run(&self) -> Result<Option<NextRun>, NextError> {
        let summary = self.finish()?;
        if summary.state != RunState::Success {
            return Ok(None);
        }
        let (_, records) = self.records()?;
        for stage in &self.plan.flow.stages {
            let succeeded = records
                .get(&stage.id)
                .is_some_and(|r| r.summary.state == StageState::Success);
            if !succeeded || !stage.steps.iter().any(|s| matches!(s, Step::Jump { .. })) {
                continue;
            }
            let Some(runs) = self.read_json::<Vec<NextRun>>(&jumps_key(self, &stage.id))? else {
                continue;
            };
            if let Some(run) = runs.into_iter().next() {
                if run.depth as usize > crate::plan::ir::CHAIN_DEPTH {
                    return Err(NextError::DepthLimit {
                        depth: crate::plan::ir::CHAIN_DEPTH as u32,
                    });
                }
                return Ok(Some(run));
            }
        }
        Ok(None)
    }
}

/// A run a stage starts (a jump's, a child's), its arguments as JSON, each typed by the
/// target's parameter its binding names; `depth` deep.
pub(super) fn typed_run(stage: &StagePlan, jump: &Jump, depth: u32) -> NextRun {
    let bindings = stage.steps.iter().find_map(|s| match s {
        Step::Jump { target } | Step::Call { target, .. } | Step::EachCall { target, .. }
            if target.flow == jump.flow && target.version == jump.version =>
        {
            Some(&target.args)
        }
        _ => None,
    });
    let type_of = |name: &str| {
        bindings
            .and_then(|b| b.iter().find(|b| b.param == name))
            .map_or(crate::value::ValueType::Any, |b| b.ty)
    };
    NextRun {
        flow: jump.flow.clone(),
        version: jump.version,
        args: jump
            .args
            .iter()
            .map(|(name, value)| (name.clone(), crate::value::json(value, type_of(name))))
            .collect(),
        depth,
        parent: None,
    }
}
