//! What each kind of step does, on the rows of the step before ([`StageRun::steps`] runs
//! them in order).

use super::{FanPart, StageRun, StepError, nap};
use crate::plan::ir::*;
use crate::runtime::error::StageError;
use crate::runtime::output::Data;
use crate::runtime::retry;
use crate::runtime::state::{RunState, StageState};
use crate::runtime::store::Rows;
use rusqlite::types::Value;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// What a step gives the next one.
pub(super) enum Next {
    Rows(Data),
    /// An exported task's part of a fan-out ends the stage's steps here.
    Stop,
}

impl StageRun<'_, '_> {
    /// Step `step` on `input`. `part`: an exported task's part of this step's fan-out;
    /// `last_query`: the query before it, which a `wait until` runs again.
    pub(super) fn step(
        &mut self,
        step: &Step,
        input: Data,
        part: Option<&FanPart>,
        last_query: Option<&Sql>,
    ) -> Result<Next, StepError> {
        let output = match step {
            // The rows stay in the engine; the checker's types fill what it does not declare.
            Step::Query { sql, types } => self
                .store
                .query_to_table(&sql.text, &self.ctx.params, types)
                .map(Data::Table)
                .map_err(|e| (e.into(), 1))?,
            Step::Union { inputs } => {
                let parts = inputs
                    .iter()
                    .map(|sql| self.query(&sql.text, None))
                    .collect::<Result<Vec<Rows>, crate::runtime::store::Error>>()
                    .map_err(|e| (e.into(), 1))?;
                Rows::union_by_name(parts).into()
            }
            Step::Invoke { invocation } => self.invoke(invocation, input)?,
            Step::Each { invocation, fan } => match part {
                None => self.each(invocation, fan, input)?,
                Some(part) => return self.fan_part(part, invocation, fan, input),
            },
            Step::EachCall {
                target,
                parent_close,
                fan,
            } => self.each_call(target, *parent_close, fan, input)?,
            // The executor stops the flow after an `end`.
            Step::Route { .. } | Step::Fork { .. } | Step::End => input,
            Step::Wait { ms, duration } => {
                let ms = match duration {
                    Some(sql) => self.wait_duration(sql).map_err(|e| (e, 1))?,
                    None => *ms,
                };
                if !nap(self.ctx, &self.cancel, Duration::from_millis(ms)) {
                    return Err((StageError::Cancelled, 1));
                }
                input
            }
            Step::WaitUntil {
                condition,
                poll_interval_ms,
                watched,
            } => {
                let input = self.values(input)?;
                let waited =
                    self.wait_until(condition, *poll_interval_ms, last_query, watched, input);
                // The files' tables are this wait's alone: done with them.
                for file in watched {
                    let _ = self.store.drop_table("temp", &file.table);
                }
                waited?.into()
            }
            Step::Activate { activation } => self.activate(activation, input)?,
            Step::SaveTo { table } => {
                self.store
                    .write_data("main", table, &input)
                    .map_err(|e| (e.into(), 1))?;
                input
            }
            Step::Jump { target } => {
                let input = self.values(input)?;
                let jump = self.target(target, &input).map_err(|e| (e, 1))?;
                if let Ok(mut jumps) = self.ctx.jumps.lock() {
                    jumps.push(jump);
                }
                input.into()
            }
            Step::Call {
                target,
                parent_close,
            } => {
                let input = self.values(input)?;
                self.call_child(target, *parent_close, &input)?.into()
            }
        };
        Ok(Next::Rows(output))
    }

    /// One activity call: rows no argument reads go to its stdin from the engine, in
    /// batches; arguments that read the row need the input's one row.
    fn invoke(&mut self, invocation: &Invocation, input: Data) -> Result<Data, StepError> {
        let (args, input) = match input {
            Data::Table(table) if !invocation.bindings.iter().any(|b| b.reads_row) => {
                let args = self.bind(invocation, None).map_err(|e| (e.into(), 1))?;
                let input = self.store.table_input(table).map_err(|e| (e.into(), 1))?;
                (args, input)
            }
            data => {
                let input = self.values(data)?;
                let row = self
                    .one_row(&invocation.bindings, &input, &invocation.activity)
                    .map_err(|e| (e, 1))?;
                let args = self.bind(invocation, row).map_err(|e| (e.into(), 1))?;
                (args, input.into())
            }
        };
        Ok(self.call(invocation, args, input)?.into())
    }

    /// An exported task's part of the stage's fan-out: prepare its items (and stop), run one
    /// item (and stop), or gather the items' ends that the other tasks left.
    fn fan_part(
        &mut self,
        part: &FanPart,
        invocation: &Invocation,
        fan: &FanOut,
        input: Data,
    ) -> Result<Next, StepError> {
        let input = self.values(input)?;
        let done = match part {
            FanPart::Prepare(slot) => {
                // Arguments and keys that cannot be computed fail the stage here, as
                // `wvflow run` fails it, not item by item.
                self.bind_rows(invocation, Some(&input))
                    .map_err(|e| (e.into(), 1))?;
                self.item_keys(&input).map_err(|e| (e.into(), 1))?;
                if let Ok(mut slot) = slot.lock() {
                    *slot = Some(input);
                }
                self.stopped = true;
                return Ok(Next::Stop);
            }
            FanPart::Item { item, done, .. } => {
                let finished = self.one_item(invocation, &input, *item)?;
                if let Ok(mut done) = done.lock() {
                    *done = Some(finished);
                }
                self.stopped = true;
                return Ok(Next::Stop);
            }
            FanPart::Gather { ends, .. } => {
                let keys = self.item_keys(&input).map_err(|e| (e.into(), 1))?;
                // An item that made no attempt reused its idempotency key's rows.
                let (reused, results): (Vec<_>, Vec<_>) = (0..input.len())
                    .map(|i| match ends.get(&i) {
                        Some(retry::Finished {
                            result: Ok(rows),
                            attempts: 0,
                        }) => (Some(rows.clone()), None),
                        Some(end) => (None, Some(end.clone())),
                        None => (
                            None,
                            Some(retry::Finished {
                                result: Err("its task never ended".to_string().into()),
                                attempts: 0,
                            }),
                        ),
                    })
                    .unzip();
                self.all_reused = !reused.is_empty() && reused.iter().all(Option::is_some);
                self.fan_in(fan, reused, &keys, results)?
            }
        };
        Ok(Next::Rows(self.fanned_in(fan, &input, done)?.into()))
    }

    /// `activate(...)`: the rows delivered where the activation says, and passed on.
    fn activate(&mut self, activation: &Activation, input: Data) -> Result<Data, StepError> {
        let activation =
            crate::runtime::activate::evaluated(activation, self.store, &self.ctx.params)
                .map_err(|e| (e.into(), 1))?;
        let input = self.values(input)?;
        crate::runtime::activate::deliver(&activation, &input, &self.ctx.cwd, &self.stage.id)
            .map_err(|e| (e.into(), 1))?;
        Ok(input.into())
    }

    /// `call F(...)`: a child run, waited for; its id, flow, state and last stage as a row.
    fn call_child(
        &mut self,
        target: &FlowRef,
        parent_close: ParentClose,
        input: &Rows,
    ) -> Result<Rows, StepError> {
        let child = self.target(target, input).map_err(|e| (e, 1))?;
        let runner = self
            .ctx
            .flows
            .ok_or_else(|| ("child runs are not available here".to_string().into(), 1))?;
        let timeout = self.stage.timeout_ms.map(Duration::from_millis);
        let summary = runner
            .run_child(
                &child,
                (&self.ctx.run_id, &self.stage.id),
                self.cancel.clone(),
                parent_close,
                timeout,
            )
            .map_err(|e| {
                // Stopped because this stage was cancelled: cancelled, not failed.
                if self.cancel.load(Ordering::Relaxed) {
                    (StageError::Cancelled, 1)
                } else {
                    (e.into(), 1)
                }
            })?;
        if summary.state == RunState::Cancelled && self.cancel.load(Ordering::Relaxed) {
            return Err((StageError::Cancelled, 1));
        }
        if summary.state != RunState::Success {
            let cause = summary.stages.iter().find_map(|s| s.error.clone()).map(Box::new);
            return Err((
                StageError::ChildRun {
                    run_id: summary.run_id,
                    flow: child.flow,
                    state: summary.state,
                    cause,
                },
                1,
            ));
        }
        let last = summary
            .stages
            .iter()
            .rev()
            .find(|s| s.state == StageState::Success)
            .map(|s| s.stage.clone());
        Ok(Rows::untyped(
            crate::check::shapes::CALL_COLUMNS
                .iter()
                .map(|c| c.to_string())
                .collect(),
            vec![vec![
                Value::Text(summary.run_id),
                Value::Text(child.flow),
                Value::Text(summary.state.to_string()),
                last.map_or(Value::Null, Value::Text),
            ]],
        ))
    }
}
