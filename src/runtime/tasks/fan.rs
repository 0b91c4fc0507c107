//! A stage whose `each` items are tasks of their own: `prepare` (the steps before the
//! `each`, its input kept), one `item` task per input row, and `gather` (every item's end
//! together, the tolerance judged, the steps after the `each`). Semantics: `docs/export.md`.

use super::state::stage_key;
use super::{Begin, CallEnd, Error, Executed, Part, PartKind, TaskEnd, TaskRun, end_of};
use crate::plan::ir::{RetryPolicy, StagePlan};
use crate::runtime::engine::StageSummary;
use crate::runtime::error::StageError;
use crate::runtime::retry::Finished;
use crate::runtime::rules::{self, AfterFailure};
use crate::runtime::state::StageState;
use crate::runtime::store::{Rows, Store};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

impl TaskRun<'_> {
    /// [`Self::prepare_once`], as the only copy of the stage's `prepare` that runs now.
    pub fn prepare(
        &self,
        stage_id: &str,
        max_items: Option<usize>,
    ) -> Result<(TaskEnd, Prepared), Error> {
        self.one_copy(&format!("prepare-{stage_id}"), || {
            self.prepare_once(stage_id, max_items)
        })
    }

    /// The first task of a stage whose `each` items are tasks of their own
    /// ([`fans_out_as_tasks`]): decides the stage as `run_stage` does, and runs the steps
    /// before the `each`, keeping its input. More items than `max_items` (the engine's limit
    /// of mapped tasks) fail the stage, saying which setting to raise.
    fn prepare_once(
        &self,
        stage_id: &str,
        max_items: Option<usize>,
    ) -> Result<(TaskEnd, Prepared), Error> {
        let ended = |(end, summary)| Ok((end, Prepared::Ended(summary)));
        match self.begin(stage_id, false)? {
            Begin::Done(summary) => ended((end_of(summary.state), summary)),
            Begin::Decided(summary) => ended(self.record(summary)?),
            Begin::Go(stage, run, records, upstream) => {
                match self.execute(stage, (&run, &records), upstream, 1, Part::Prepare)? {
                    Executed::Prepared(n) => match max_items.filter(|max| n > *max) {
                        Some(max) => ended(self.record(StageSummary {
                            error: Some(StageError::TooManyItems { items: n, max }),
                            ..StageSummary::new(stage, StageState::Failed)
                        })?),
                        None => Ok((TaskEnd::Success, Prepared::Items(n))),
                    },
                    Executed::Ended(summary) => ended(self.record(summary)?),
                    _ => Err(Error::PartUnfinished {
                        stage: stage_id.to_string(),
                        part: PartKind::Prepare,
                    }),
                }
            }
        }
    }

    /// [`Self::item_once`], as the only copy of the item's task that runs now.
    pub fn item(
        &self,
        stage_id: &str,
        item: usize,
        attempt: u32,
    ) -> Result<(TaskEnd, Option<String>), Error> {
        self.one_copy(&format!("item-{stage_id}-{item}"), || {
            self.item_once(stage_id, item, attempt)
        })
    }

    /// One item of a prepared fan-out: one attempt, number `attempt`, when its call may be
    /// retried by the engine. Its end is recorded for `gather`; a failed item fails the task
    /// (98) but not yet the stage: its tolerance is `gather`'s to judge.
    fn item_once(
        &self,
        stage_id: &str,
        item: usize,
        attempt: u32,
    ) -> Result<(TaskEnd, Option<String>), Error> {
        if let Some(done) = self.record_of(stage_id)? {
            return Ok((end_of(done.summary.state), None));
        }
        let key = self.item_key(stage_id, item, "json");
        if let Some(bytes) = self.state.read(&key)? {
            let end: ItemRecord =
                serde_json::from_slice(&bytes).map_err(|source| Error::Decode {
                    key: Some(key),
                    source,
                })?;
            return Ok(item_end(end.error));
        }
        let (stage, input) = self.prepared(stage_id)?;
        if item >= input.len() {
            // Failed for good: no try of this task can find the item.
            return Ok((
                TaskEnd::Failed,
                Some(format!(
                    "stage `{stage_id}` has {} items (from 0); there is no item {item}",
                    input.len()
                )),
            ));
        }
        // Past the flow's timeout, or once the run is cancelled, an item does not start: it
        // is cancelled, which the gathering never tolerates.
        if let Some(why) = self.stopped_why()? {
            let record = ItemRecord {
                attempts: 0,
                error: Some(why),
                exit_code: None,
                cancelled: true,
            };
            self.state.write(
                &key,
                &serde_json::to_vec_pretty(&record).map_err(Error::Encode)?,
            )?;
            return Ok(item_end(record.error));
        }
        match self.execute_part(stage, attempt, Part::Item(item, input))? {
            Executed::Item(done) => {
                let cancelled = matches!(done.result, Err(StageError::Cancelled));
                let record = ItemRecord {
                    attempts: done.attempts,
                    error: match &done.result {
                        Err(_) if cancelled => Some(
                            self.stopped_why()?
                                .unwrap_or_else(|| StageError::Cancelled.to_string()),
                        ),
                        Err(other) => Some(other.to_string()),
                        Ok(_) => None,
                    },
                    exit_code: CallEnd::of(&done.result).exit_code(),
                    cancelled,
                };
                if let Ok(rows) = &done.result {
                    let scratch = super::scratch::scratch()?;
                    let table = format!("{stage_id}.item-{item}");
                    let mut store = Store::in_memory(scratch.path())?;
                    store.write_table("run", &table, rows)?;
                    let rows_key = self.item_key(stage_id, item, "db");
                    self.state.put_file(&rows_key, scratch.path(), |file| {
                        store.save_stage_table(&table, file).map_err(Error::Store)
                    })?;
                }
                self.state.write(
                    &key,
                    &serde_json::to_vec_pretty(&record).map_err(Error::Encode)?,
                )?;
                Ok(item_end(record.error))
            }
            Executed::Retry => Ok((TaskEnd::Retry, None)),
            _ => Err(Error::PartUnfinished {
                stage: stage_id.to_string(),
                part: PartKind::Item(item),
            }),
        }
    }

    /// [`Self::gather_once`], as the only copy of the stage's last task that runs now.
    pub fn gather(&self, stage_id: &str) -> Result<(TaskEnd, StageSummary), Error> {
        self.one_copy(&format!("stage-{stage_id}"), || self.gather_once(stage_id))
    }

    /// The last task of a fanned-out stage: its items' ends together (an item that never
    /// ended counts as failed), the tolerance judged, the steps after the `each` run, the
    /// stage recorded.
    fn gather_once(&self, stage_id: &str) -> Result<(TaskEnd, StageSummary), Error> {
        if let Some(done) = self.record_of(stage_id)? {
            return Ok((end_of(done.summary.state), done.summary));
        }
        let (stage, input) = self.prepared(stage_id)?;
        let ends = match crate::plan::tasks::calls_as_runs(stage) {
            Some(_) => self.child_ends(stage)?,
            None if crate::plan::tasks::waits_on_engine(stage).is_some() => self.wait_ends(stage)?,
            None => self.item_ends(stage_id, input.len())?,
        };
        match self.execute_part(stage, 1, Part::Gather(input, ends))? {
            Executed::Ended(summary) => self.record(summary),
            _ => Err(Error::PartUnfinished {
                stage: stage_id.to_string(),
                part: PartKind::Gather,
            }),
        }
    }

    /// How each item of a fanned-out stage ended, as its task recorded it (an item without a
    /// record never ended).
    fn item_ends(
        &self,
        stage_id: &str,
        items: usize,
    ) -> Result<BTreeMap<usize, Finished<Rows>>, Error> {
        let scratch = super::scratch::scratch()?;
        let mut ends = BTreeMap::new();
        for i in 0..items {
            let Some(bytes) = self.state.read(&self.item_key(stage_id, i, "json"))? else {
                continue;
            };
            // Not named by its key, as this message never was.
            let end: ItemRecord = serde_json::from_slice(&bytes)
                .map_err(|source| Error::Decode { key: None, source })?;
            let result = match end.error {
                Some(_) if end.cancelled => Err(StageError::Cancelled),
                Some(message) => Err(StageError::Activity {
                    message,
                    exit_code: end.exit_code,
                }),
                None => {
                    let key = self.item_key(stage_id, i, "db");
                    let Some(file) = self.state.local(&key, scratch.path())? else {
                        return Err(Error::ItemWithoutRows {
                            stage: stage_id.to_string(),
                            item: i,
                            key,
                        });
                    };
                    Ok(Store::stage_rows_of_run(
                        &file,
                        &format!("{stage_id}.item-{i}"),
                        None,
                    )?)
                }
            };
            ends.insert(
                i,
                Finished {
                    result,
                    attempts: end.attempts,
                },
            );
        }
        Ok(ends)
    }

    /// Why an item stops or does not start, when the run says so: the flow's timeout passed,
    /// or the run was cancelled.
    pub(super) fn stopped_why(&self) -> Result<Option<String>, Error> {
        Ok(if self.timed_out(&self.run_record()?) {
            Some(rules::flow_timeout(&self.plan.flow).to_string())
        } else if self.cancel_requested()? {
            Some(StageError::Cancelled.to_string())
        } else {
            None
        })
    }

    /// [`Self::execute`] of a part of a prepared fan-out, on the run's records as they are now.
    pub(super) fn execute_part(
        &self,
        stage: &StagePlan,
        attempt: u32,
        part: Part,
    ) -> Result<Executed, Error> {
        let run = self.run_record()?;
        let (own, records) = self.records()?;
        let upstream = self.upstream_states(stage, (&own, &records))?;
        self.execute(stage, (&run, &records), upstream, attempt, part)
    }

    fn item_key(&self, stage: &str, item: usize, extension: &str) -> String {
        stage_key(
            &self.flow_key(),
            &self.run_id,
            &format!("{stage}.item-{item}"),
            extension,
        )
    }

    /// A fanned-out stage and the input its `prepare` kept.
    pub(super) fn prepared(&self, stage_id: &str) -> Result<(&StagePlan, Rows), Error> {
        let stage = self
            .plan
            .flow
            .stages
            .iter()
            .find(|s| s.id == stage_id)
            .ok_or_else(|| Error::NoStage {
                flow: self.plan.flow.name.clone(),
                stage: stage_id.to_string(),
            })?;
        let table = input_table(stage_id);
        let key = stage_key(&self.flow_key(), &self.run_id, &table, "db");
        let scratch = super::scratch::scratch()?;
        let Some(file) = self.state.local(&key, scratch.path())? else {
            return Err(Error::NotPrepared {
                stage: stage_id.to_string(),
            });
        };
        let rows = Store::stage_rows_of_run(&file, &table, None)?;
        Ok((stage, rows))
    }

    /// How an item's attempt ended (`done`; an error before its call made no attempt),
    /// judged for the engine: tried again, or ended, with why it was not retried and its exit
    /// code kept for `failed(stage)`. An item stopped by a signal records nothing, so that the
    /// engine's retry runs it again.
    pub(super) fn item_ended(
        &self,
        stage: &StagePlan,
        done: Result<Finished<Rows>, StageError>,
        (policy, attempt): (Option<&RetryPolicy>, u32),
        first_ms: i64,
    ) -> Result<Executed, Error> {
        let mut done = done.unwrap_or_else(|error| Finished {
            result: Err(error),
            attempts: 0,
        });
        if matches!(done.result, Err(StageError::Cancelled))
            && self.cancel.load(std::sync::atomic::Ordering::Relaxed)
        {
            return Err(Error::Stopped {
                stage: stage.id.clone(),
                item: true,
            });
        }
        let call = CallEnd::of(&done.result);
        if let (Some(policy), Err(error)) = (policy, &done.result) {
            done.attempts = attempt;
            match self.after_failure(policy, stage, (attempt, call), first_ms) {
                AfterFailure::Again(_) => return Ok(Executed::Retry),
                AfterFailure::GiveUp(Some(why)) => {
                    let message = match error {
                        StageError::Activity { message, .. } => format!("{message}{why}"),
                        other => format!("{other}{why}"),
                    };
                    done.result = Err(StageError::Activity {
                        message,
                        exit_code: call.exit_code(),
                    });
                }
                AfterFailure::GiveUp(None) => {}
            }
        } else if policy.is_some() && done.attempts > 0 {
            done.attempts = attempt;
        }
        Ok(Executed::Item(done))
    }
}

/// What `prepare` left: items to run, or the stage's end (skipped, failed, reused).
pub enum Prepared {
    Items(usize),
    Ended(StageSummary),
}

/// How an item of a fanned-out stage ended, written once by its task.
#[derive(Serialize, Deserialize)]
struct ItemRecord {
    attempts: u32,
    error: Option<String>,
    exit_code: Option<i32>,
    /// Stopped by the flow's timeout: never a tolerated failure.
    #[serde(default)]
    cancelled: bool,
}

/// How an item's task ends: success, or failed for good with why.
fn item_end(error: Option<String>) -> (TaskEnd, Option<String>) {
    match error {
        None => (TaskEnd::Success, None),
        Some(error) => (TaskEnd::Failed, Some(error)),
    }
}

/// The table of a fan-out's prepared input.
pub(super) fn input_table(stage: &str) -> String {
    format!("{stage}.input")
}
