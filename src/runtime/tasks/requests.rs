//! What others ask of an exported run: signals, queries, a cancel. A signal is an object of
//! the run's state, `signals/N.json` (N from 0, each created exclusively, so two senders
//! never take the same number); a task shows the run's signals and its stages' states to its
//! stage's queries before its steps and before each check of a `wait until` ([`Inbox`]), as
//! `wvflow run` shows them from its run store. A query reads them the same way. A cancel is
//! the object `cancel.json`, which each task looks for.

use super::state::run_key;
use super::{Error, Records, TaskRun};
use crate::plan::ir::StagePlan;
use crate::runtime::engine::Inbox;
use crate::runtime::error::StageError;
use crate::runtime::runs::{SignalInput, signal_value};
use crate::runtime::state::StageState;
use crate::runtime::store::{RunView, Store, from_json, to_json};
use crate::value::Typed;
use rusqlite::types::Value;
use serde::{Deserialize, Serialize};

/// A signal as its object keeps it.
#[derive(Serialize, Deserialize)]
struct SignalRecord {
    name: String,
    value: serde_json::Value,
    at_ms: i64,
}

impl TaskRun<'_> {
    /// Sends the run signal `name` with `given` (read by the signal's type; without one,
    /// `true`). Refused: a signal the flow does not declare, a value its type does not take,
    /// `pause` and `resume` (the engine's own controls do that), a run that `init` has not
    /// started or that `finish` has ended.
    pub fn send_signal(&self, name: &str, given: Option<SignalInput>) -> Result<Typed, Error> {
        let declared = self.plan.flow.signals.iter().any(|s| s.name == name);
        if matches!(name, "pause" | "resume") && !declared {
            return Err(Error::EngineControl(name.to_string()));
        }
        let sent = signal_value(self.plan, name, given).map_err(Error::Signal)?;
        self.still_running()?;
        let record = SignalRecord {
            name: name.to_string(),
            value: to_json(&sent.value),
            at_ms: self.means.now_ms(),
        };
        let bytes = serde_json::to_vec_pretty(&record).map_err(Error::Encode)?;
        for n in 0.. {
            if self.state.create(&self.signal_key(n), &bytes)? {
                break;
            }
        }
        Ok(sent)
    }

    /// Asks the run to stop, as `wvflow runs cancel` asks a local run: its running stages stop
    /// (each task looks every second), the stages not started are cancelled, and `finish`
    /// ends the run cancelled after its saga. Refused for a run that has not started or has
    /// finished; asking twice is asking once.
    pub fn request_cancel(&self) -> Result<(), Error> {
        self.still_running()?;
        let at = serde_json::json!({ "at_ms": self.means.now_ms() });
        self.state.create(&self.cancel_key(), at.to_string().as_bytes())?;
        // Its running children stop as their stage's `parent_close` says.
        self.close_children()
    }

    /// Whether a cancel of this run compensates its stages: yes, unless its parent asked it
    /// to stop with `parent_close: terminate`.
    pub(super) fn cancel_compensates(&self) -> Result<bool, Error> {
        let Some(bytes) = self.state.read(&self.cancel_key())? else {
            return Ok(true);
        };
        let record: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
        Ok(record["compensate"].as_bool().unwrap_or(true))
    }

    /// Whether the run whose call started this one (`lineage.parent`) has been cancelled.
    pub(super) fn parent_cancelled(&self, lineage: &super::Lineage) -> Result<bool, Error> {
        let Some((flow, run)) = lineage.parent.as_deref().and_then(|p| p.split_once('/')) else {
            return Ok(false);
        };
        Ok(self.state.read(&run_key(flow, run, "cancel.json"))?.is_some())
    }

    /// Refuses a run that `init` has not started, or that `finish` has ended: nothing is asked
    /// of it.
    fn still_running(&self) -> Result<(), Error> {
        self.run_record()?;
        let summary = run_key(&self.flow_key(), &self.run_id, "summary.json");
        match self.state.read(&summary)? {
            Some(_) => Err(Error::Finished {
                run_id: self.run_id.clone(),
            }),
            None => Ok(()),
        }
    }

    /// Whether someone asked the run to stop ([`Self::request_cancel`]).
    pub(super) fn cancel_requested(&self) -> Result<bool, Error> {
        Ok(self.state.read(&self.cancel_key())?.is_some())
    }

    fn cancel_key(&self) -> String {
        run_key(&self.flow_key(), &self.run_id, "cancel.json")
    }

    /// The value of the flow's query `name` now, with its type.
    pub fn query(&self, name: &str) -> Result<Typed, Error> {
        let flow = &self.plan.flow;
        let query = flow
            .queries
            .iter()
            .find(|q| q.name == name)
            .ok_or_else(|| Error::NoQuery {
                flow: flow.name.clone(),
                name: name.to_string(),
                known: flow.queries.iter().map(|q| q.name.clone()).collect(),
            })?;
        let run = self.run_record()?;
        let scratch = super::scratch::scratch()?;
        let mut store = Store::in_memory(scratch.path())?;
        self.show(&mut store)?;
        let rows = store.query(&format!("SELECT {}", query.sql.text), &self.params(&run), None)?;
        let value = rows.first_value().cloned().unwrap_or(Value::Null);
        Ok(Typed {
            value,
            ty: query.ty,
        })
    }

    fn signal_key(&self, n: u64) -> String {
        run_key(&self.flow_key(), &self.run_id, &format!("signals/{n}.json"))
    }

    /// The signals sent to the run so far, in the order they were sent.
    fn signals(&self) -> Result<Vec<(String, Value, i64)>, Error> {
        let mut signals = Vec::new();
        for n in 0.. {
            let key = self.signal_key(n);
            let Some(bytes) = self.state.read(&key)? else {
                break;
            };
            let record: SignalRecord = serde_json::from_slice(&bytes).map_err(|source| {
                Error::Decode {
                    key: Some(key),
                    source,
                }
            })?;
            // The value as the run store keeps it (its stored form, as sent).
            signals.push((record.name, from_json(&record.value), record.at_ms));
        }
        Ok(signals)
    }

    /// Shows `store` the run's signals and its stages' states as the state holds them now.
    fn show(&self, store: &mut Store) -> Result<(), Error> {
        let signals = self.signals()?;
        let (_, records) = self.records()?;
        let stages = stage_states(self, &records)?;
        store.show_run(&RunView {
            run_id: &self.run_id,
            signals: &signals,
            stages: &stages,
        })?;
        Ok(())
    }
}

/// Every stage of the run with its state so far: as its record says; else `running` while a
/// task of it holds its lease, `pending` before.
fn stage_states(task: &TaskRun, records: &Records) -> Result<Vec<(String, StageState)>, Error> {
    let mut states = Vec::new();
    for stage in &task.plan.flow.stages {
        let state = match records.get(&stage.id) {
            Some(record) => record.summary.state,
            None if task.held(&format!("stage-{}", stage.id))?
                || task.held(&format!("prepare-{}", stage.id))? =>
            {
                StageState::Running
            }
            None => StageState::Pending,
        };
        states.push((stage.id.clone(), state));
    }
    Ok(states)
}

impl Inbox for TaskRun<'_> {
    fn show(&self, stage: &StagePlan, store: &mut Store) -> Result<(), StageError> {
        if !reads_run(stage) {
            return Ok(());
        }
        TaskRun::show(self, store)
            .map_err(|e| StageError::Data(format!("cannot read the run's state: {e}")))
    }
}

/// Whether a stage's SQL reads the run's signals or stage states: only then are they read
/// from the state (objects a bucket charges a request for each). The plan's SQL names the
/// run store's tables so ([`crate::plan::sql`]).
fn reads_run(stage: &StagePlan) -> bool {
    serde_json::to_string(stage)
        .is_ok_and(|text| text.contains("wvflow_signals") || text.contains("wvflow_stages"))
}
