//! A stage's `wait until` checked by the engine between its own waits, so that no worker is
//! held while the condition does not hold (Airflow: a sensor in `reschedule` mode): `prepare`
//! keeps the stage's input; each `poll` checks the condition once, with the run's signals and
//! stage states as they are then, and records the wait's end once it is over (the condition
//! held, the stage's `timeout` passed since the first check, the run was cancelled or its time
//! was up); the stage's last task runs the steps after the wait on the rows it recorded.

use super::state::stage_key;
use super::{Error, Executed, Part, TaskRun};
use crate::plan::ir::StagePlan;
use crate::runtime::error::StageError;
use crate::runtime::retry::Finished;
use crate::runtime::store::{Rows, Store};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What one check of a wait found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Polled {
    /// The wait is over (its end recorded, or the stage's): the stage's last task goes on.
    Over,
    /// The condition does not hold yet: check again after the poll interval.
    NotYet,
}

/// How a wait ended, as its `poll` recorded it.
#[derive(Serialize, Deserialize)]
struct WaitEnd {
    /// Why it is over without its condition holding; `None`: it held (the rows are kept).
    error: Option<String>,
    #[serde(default)]
    cancelled: bool,
}

impl TaskRun<'_> {
    /// [`Self::poll_once`], as the only copy of the stage's check that runs now.
    pub fn poll(&self, stage_id: &str) -> Result<Polled, Error> {
        self.one_copy(&format!("poll-{stage_id}"), || self.poll_once(stage_id))
    }

    fn poll_once(&self, stage_id: &str) -> Result<Polled, Error> {
        let over = self.record_of(stage_id)?.is_some()
            || self.state.read(&self.wait_key(stage_id, "json"))?.is_some();
        if over {
            return Ok(Polled::Over);
        }
        let (stage, input) = self.prepared(stage_id)?;
        let first_ms = self.first_check_ms(stage_id)?;
        if let Some(why) = self.stopped_why()? {
            let cancelled = why == StageError::Cancelled.to_string();
            return self.wait_ended(stage_id, Some(why), cancelled, None);
        }
        let ended = match self.execute_part(stage, 1, Part::Poll(input))? {
            Executed::Polled(ended) => ended,
            _ => Err(StageError::Data(format!("stage `{stage_id}` could not be checked"))),
        };
        match ended {
            Ok(Some(rows)) => self.wait_ended(stage_id, None, false, Some(&rows)),
            Err(error) => self.wait_ended(stage_id, Some(error.to_string()), false, None),
            Ok(None) => {
                let limit = stage.timeout_ms;
                match limit.filter(|ms| self.since(first_ms) >= *ms) {
                    Some(ms) => {
                        let why = format!(
                            "`wait until` not met within {}",
                            crate::human::duration(std::time::Duration::from_millis(ms))
                        );
                        self.wait_ended(stage_id, Some(why), false, None)
                    }
                    None => Ok(Polled::NotYet),
                }
            }
        }
    }

    /// Records the wait's end (its rows first, when it held): the last task reads it.
    fn wait_ended(
        &self,
        stage_id: &str,
        error: Option<String>,
        cancelled: bool,
        rows: Option<&Rows>,
    ) -> Result<Polled, Error> {
        if let Some(rows) = rows {
            let scratch = super::scratch::scratch()?;
            let table = format!("{stage_id}.waited");
            let mut store = Store::in_memory(scratch.path())?;
            store.write_table("run", &table, rows)?;
            self.state
                .put_file(&self.wait_key(stage_id, "db"), scratch.path(), |file| {
                    store.save_stage_table(&table, file).map_err(Error::Store)
                })?;
        }
        let end = WaitEnd { error, cancelled };
        self.state.write(
            &self.wait_key(stage_id, "json"),
            &serde_json::to_vec_pretty(&end).map_err(Error::Encode)?,
        )?;
        Ok(Polled::Over)
    }

    /// How the wait of a stage ended, as its one end for the steps after it (none recorded:
    /// its check never ended).
    pub(super) fn wait_ends(
        &self,
        stage: &StagePlan,
    ) -> Result<BTreeMap<usize, Finished<Rows>>, Error> {
        let mut ends = BTreeMap::new();
        let Some(end) = self.read_json::<WaitEnd>(&self.wait_key(&stage.id, "json"))? else {
            return Ok(ends);
        };
        let result = match end.error {
            Some(_) if end.cancelled => Err(StageError::Cancelled),
            Some(error) => Err(StageError::Data(error)),
            None => {
                let scratch = super::scratch::scratch()?;
                let key = self.wait_key(&stage.id, "db");
                let file = self.state.local(&key, scratch.path())?.ok_or_else(|| {
                    Error::ItemWithoutRows {
                        stage: stage.id.clone(),
                        item: 0,
                        key: key.clone(),
                    }
                })?;
                Ok(Store::stage_rows_of_run(
                    &file,
                    &format!("{}.waited", stage.id),
                    None,
                )?)
            }
        };
        ends.insert(
            0,
            Finished {
                result,
                attempts: 1,
            },
        );
        Ok(ends)
    }

    /// When the wait was first checked: its `timeout` counts from there.
    fn first_check_ms(&self, stage_id: &str) -> Result<i64, Error> {
        self.first_time_ms(&self.wait_key(stage_id, "first-check"))
    }

    fn wait_key(&self, stage: &str, extension: &str) -> String {
        stage_key(
            &self.flow_key(),
            &self.run_id,
            &format!("{stage}.waited"),
            extension,
        )
    }
}
