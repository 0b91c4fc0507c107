//! A stage's child runs (`call F(...)`, `each call F(...)`) as runs of the engine: `prepare`
//! keeps the stage's input and the children to start, each with its arguments typed by the
//! child's parameters; the engine starts each child (Airflow: a triggered DAG run; Argo: a
//! Workflow of the child's WorkflowTemplate) under a run id made by [`child_run_id`], and
//! retries it as the stage's policy says; the stage's last task reads how each child ended,
//! and its rows, from the state they share. How deep children nest travels with them.

use super::next::{NextRun, typed_run};
use super::state::{plan_key, run_key, stage_key};
use super::{Error, FinishedRun, TaskRun};
use crate::plan::Plan;
use crate::plan::ir::{ParentClose, StagePlan, Step};
use crate::plan::tasks::{calls_as_runs, child_run_id};
use crate::runtime::engine::{Jump, StageSummary, final_stages};
use crate::runtime::error::StageError;
use crate::runtime::retry::Finished;
use crate::runtime::state::{RunState, StageState};
use crate::runtime::store::{Rows, Store};
use rusqlite::types::Value;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The key of the children a stage's `prepare` kept.
fn children_key(task: &TaskRun, stage: &str) -> String {
    stage_key(&task.flow_key(), &task.run_id, stage, "children.json")
}

/// What a call stage's `prepare` keeps: the child flow as the state names it (`Name@2`), what
/// becomes of a child when its parent stops, and the children in item order.
#[derive(Default, Serialize, Deserialize)]
struct Children {
    flow_key: String,
    #[serde(default)]
    parent_close: ParentClose,
    runs: Vec<NextRun>,
    /// The attempts of the activity calls before the call, in `prepare`: the stage's count
    /// is the most of them and of its children's tries, as in `wvflow run`.
    #[serde(default)]
    attempts_before: u32,
}

impl TaskRun<'_> {
    /// Keeps the children a call stage starts, typed, one level deeper than this run. Past the
    /// depth limit none starts and the stage fails, as `wvflow run` fails its call.
    pub(super) fn keep_children(
        &self,
        stage: &StagePlan,
        targets: &[Jump],
        attempts_before: u32,
    ) -> Result<Option<StageSummary>, Error> {
        let nesting = self.run_record()?.lineage.nesting + 1;
        if nesting as usize > crate::plan::ir::CHAIN_DEPTH
            && let Some(target) = targets.first()
        {
            let error = crate::runtime::launch::Error::TooDeep {
                flow: target.flow.clone(),
            };
            return Ok(Some(StageSummary {
                attempts: 1,
                error: Some(StageError::Data(error.to_string())),
                ..StageSummary::new(stage, StageState::Failed)
            }));
        }
        let (reference, parent_close) = match calls_as_runs(stage).map(|at| &stage.steps[at]) {
            Some(Step::Call { target, parent_close } | Step::EachCall { target, parent_close, .. }) => {
                (super::reference(&target.flow, target.version), *parent_close)
            }
            _ => return Ok(None),
        };
        let parent = format!("{}/{}", self.flow_key(), self.run_id);
        let runs: Vec<NextRun> = targets
            .iter()
            .map(|t| NextRun {
                parent: Some(parent.clone()),
                ..typed_run(stage, t, nesting)
            })
            .collect();
        let children = Children {
            flow_key: reference,
            parent_close,
            runs,
            attempts_before,
        };
        self.state.write(
            &children_key(self, &stage.id),
            &serde_json::to_vec_pretty(&children).map_err(Error::Encode)?,
        )?;
        Ok(None)
    }

    /// The child runs of a call stage that have started and not ended, by run id, with the
    /// child flow's key and its `parent_close`.
    fn running_children(&self, stage: &StagePlan) -> Result<Vec<(String, String, ParentClose)>, Error> {
        let kept = self.kept_children(&stage.id)?;
        let mut running = Vec::new();
        for item in 0..kept.runs.len() {
            for attempt in 1..=stage.retry.attempts.max(1) {
                let id = child_run_id(&self.run_id, &stage.id, &item.to_string(), &attempt.to_string());
                let started = self.state.read(&run_key(&kept.flow_key, &id, "run.json"))?.is_some();
                if started && self.finished_child(&kept.flow_key, &id)?.is_none() {
                    running.push((kept.flow_key.clone(), id, kept.parent_close));
                }
            }
        }
        Ok(running)
    }

    /// Asks this run's running children to stop, as each stage's `parent_close` says (those
    /// it abandons go on).
    pub(super) fn close_children(&self) -> Result<(), Error> {
        for stage in &self.plan.flow.stages {
            if calls_as_runs(stage).is_none() {
                continue;
            }
            for (flow, id, close) in self.running_children(stage)? {
                if close != ParentClose::Abandon {
                    self.stop_child(&flow, &id, close)?;
                }
            }
        }
        Ok(())
    }

    /// Fails a call stage whose children the engine cannot be given (`why`: an argument it
    /// cannot carry), for good: its last task ends with it, and no child starts.
    pub fn refuse_children(
        &self,
        stage_id: &str,
        why: String,
    ) -> Result<(super::TaskEnd, StageSummary), Error> {
        let (stage, _) = self.prepared(stage_id)?;
        self.record(StageSummary {
            attempts: 1,
            error: Some(StageError::Data(why)),
            ..StageSummary::new(stage, StageState::Failed)
        })
    }

    /// The children a call stage's `prepare` kept, in item order (none when it decided the
    /// stage without them), and the key of their flow.
    pub fn children(&self, stage_id: &str) -> Result<(String, Vec<NextRun>), Error> {
        let kept = self.kept_children(stage_id)?;
        Ok((kept.flow_key, kept.runs))
    }

    fn kept_children(&self, stage_id: &str) -> Result<Children, Error> {
        Ok(self
            .read_json(&children_key(self, stage_id))?
            .unwrap_or_default())
    }

    /// How each child of a call stage ended, by item: its last try's run (`child_flow` is the
    /// child as the state names it, `Name` or `Name@2`). A child still running when the stage
    /// gathers (a try the engine gave up waiting for) is asked to stop, unless the stage's
    /// `parent_close` abandons it.
    pub(super) fn child_ends(
        &self,
        stage: &StagePlan,
    ) -> Result<BTreeMap<usize, Finished<Rows>>, Error> {
        let Some(at) = calls_as_runs(stage) else {
            return Ok(BTreeMap::new());
        };
        let kept = self.kept_children(&stage.id)?;
        let child_flow = kept.flow_key.as_str();
        let (tries, parent_close, each) = match &stage.steps[at] {
            Step::EachCall { parent_close, .. } => (stage.retry.attempts.max(1), *parent_close, true),
            Step::Call { parent_close, .. } => (1, *parent_close, false),
            _ => return Ok(BTreeMap::new()),
        };
        let mut ends = BTreeMap::new();
        for (item, child) in kept.runs.iter().enumerate() {
            let mut last = None;
            for attempt in 1..=tries {
                let id = child_run_id(&self.run_id, &stage.id, &item.to_string(), &attempt.to_string());
                if self.state.read(&run_key(child_flow, &id, "run.json"))?.is_none() {
                    continue;
                }
                let finished = self.finished_child(child_flow, &id)?;
                if finished.is_none() && parent_close != ParentClose::Abandon {
                    self.stop_child(child_flow, &id, parent_close)?;
                }
                last = Some((id, attempt, finished));
            }
            let made = last.as_ref().map_or(0, |(_, attempt, _)| *attempt);
            let attempts = made.max(kept.attempts_before);
            let end = match last {
                None => Err(StageError::Data(format!(
                    "the child run of `{}` never started: is the child flow exported to the \
                     engine?",
                    child.reference()
                ))),
                Some((id, _, None)) => Err(StageError::Data(format!(
                    "child run {id} of `{}` did not end",
                    child.flow
                ))),
                Some((id, _, Some(run))) => self.child_rows(child_flow, &id, &run, each),
            };
            ends.insert(
                item,
                Finished {
                    result: end,
                    attempts,
                },
            );
        }
        Ok(ends)
    }

    /// The child run's summary, once its `finish` wrote one.
    fn finished_child(&self, child_flow: &str, id: &str) -> Result<Option<FinishedRun>, Error> {
        self.read_json(&run_key(child_flow, id, "summary.json"))
    }

    /// Asks a child to stop: `terminate` without its compensations, `request_cancel` with them.
    fn stop_child(&self, child_flow: &str, id: &str, close: ParentClose) -> Result<(), Error> {
        let record = serde_json::json!({
            "at_ms": self.means.now_ms(),
            "compensate": close != ParentClose::Terminate,
        });
        self.state
            .create(&run_key(child_flow, id, "cancel.json"), record.to_string().as_bytes())?;
        Ok(())
    }

    /// What a child that ended gives its call: for `each call`, the rows of its last stages
    /// (read by no other stage) that succeeded; for `call`, one row saying how it ended.
    fn child_rows(
        &self,
        child_flow: &str,
        id: &str,
        run: &FinishedRun,
        each: bool,
    ) -> Result<Rows, StageError> {
        if run.state != RunState::Success {
            let cause = run.stages.iter().find_map(|s| s.error.clone()).map(Box::new);
            return Err(StageError::ChildRun {
                run_id: id.to_string(),
                flow: run.flow.clone(),
                state: run.state,
                cause,
            });
        }
        if !each {
            let last = run
                .stages
                .iter()
                .rev()
                .find(|s| s.state == StageState::Success)
                .map(|s| s.stage.clone());
            return Ok(Rows::untyped(
                crate::check::shapes::CALL_COLUMNS
                    .iter()
                    .map(|c| c.to_string())
                    .collect(),
                vec![vec![
                    Value::Text(id.to_string()),
                    Value::Text(run.flow.clone()),
                    Value::Text(run.state.to_string()),
                    last.map_or(Value::Null, Value::Text),
                ]],
            ));
        }
        let unreadable = |e: String| StageError::Data(format!("cannot read the rows of child run {id}: {e}"));
        let plan = self.plan_of(child_flow, id).map_err(|e| unreadable(e.to_string()))?;
        let scratch = super::scratch::scratch().map_err(|e| unreadable(e.to_string()))?;
        let mut parts = Vec::new();
        for stage in final_stages(&plan.flow, &run.stages) {
            let key = stage_key(child_flow, id, &stage, "db");
            let file = self
                .state
                .local(&key, scratch.path())
                .map_err(|e| unreadable(e.to_string()))?;
            if let Some(file) = file {
                parts.push(
                    Store::stage_rows_of_run(&file, &stage, None)
                        .map_err(|e| unreadable(e.to_string()))?,
                );
            }
        }
        Ok(Rows::union_by_name(parts))
    }

    /// The plan a run's `init` kept in the state.
    fn plan_of(&self, flow: &str, id: &str) -> Result<Plan, Error> {
        let key = plan_key(flow, id);
        let bytes = self.state.read(&key)?.ok_or_else(|| Error::NoRunRecord {
            run_id: id.to_string(),
            key: key.clone(),
        })?;
        serde_json::from_slice(&bytes).map_err(|source| Error::Decode {
            key: Some(key),
            source,
        })
    }
}
