//! What each kind of step does, on the rows of the step before ([`StageRun::steps`] runs
//! them in order).

use super::{StageRun, StepError, nap};
use crate::plan::ir::*;
use crate::runtime::error::StageError;
use crate::runtime::output::Data;
use crate::runtime::state::{RunState, StageState};
use crate::runtime::store::Rows;
use rusqlite::types::Value;
use std::sync::atomic::Ordering;
use std::time::Duration;

impl StageRun<'_, '_> {
    /// Step `step` on `input`, giving the next step's input. `last_query`: the query before
    /// it, which a `wait until` runs again.
    pub(super) fn step(
        &mut self,
        step: &Step,
        input: Data,
        last_query: Option<&Sql>,
    ) -> Result<Data, StepError> {
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
            Step::Each { invocation, fan } => self.each(invocation, fan, input)?,
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
            Step::While {
                condition,
                body,
                max_iterations,
                continue_as_new,
            } => self.repeat(condition, body, (*max_iterations, *continue_as_new), input)?,
        };
        Ok(output)
    }

    /// One activity call: rows no argument reads go to its stdin from the engine, in
    /// batches; arguments that read the row need the input's one row.
    pub(super) fn invoke(
        &mut self,
        invocation: &Invocation,
        input: Data,
    ) -> Result<Data, StepError> {
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

    /// `activate(...)`: the rows delivered where the activation says, and passed on.
    fn activate(&mut self, activation: &Activation, input: Data) -> Result<Data, StepError> {
        let activation =
            crate::runtime::activate::evaluated(activation, self.store, &self.ctx.params)
                .map_err(|e| (e.into(), 1))?;
        let input = self.values(input)?;
        self.ctx
            .launcher
            .deliver(&activation, &input, &self.ctx.cwd, &self.stage.id)
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
