//! A `while` loop: before each iteration its condition is decided over the rows the iteration
//! before gave (the loop's input the first time); each iteration runs the loop's steps on
//! them. The stage's rows are every iteration's rows, each with its `iteration`. Each
//! iteration's rows are kept in the run's database as it ends, so that a resumed run goes on
//! after the last one that ended.

use super::{StageRun, StepError};
use crate::plan::ir::{LoopCondition, Step};
use crate::plan::looped::unrolled_step;
use crate::runtime::error::StageError;
use crate::runtime::output::Data;
use crate::runtime::store::Rows;
use crate::value::ValueType;
use rusqlite::types::Value;
use std::sync::atomic::Ordering;

use crate::check::binder::ITERATION_COLUMN;
use crate::runtime::continued::{carried_number, carried_rows};

impl StageRun<'_, '_> {
    /// `while`: iterations while the condition holds, at most `max` of them (counted from the
    /// loop's first iteration, in whichever run it was). With `continue_as_new: every`, after
    /// `every` iterations in this run whose condition still holds, the stage ends
    /// [`StageError::Continued`] for the run to go on as a new run ([`Context::continues`]),
    /// or, in an exported task, its rows start anew.
    ///
    /// [`Context::continues`]: crate::runtime::engine::Context::continues
    pub(super) fn repeat(
        &mut self,
        condition: &LoopCondition,
        body: &[Step],
        (max, every): (u64, Option<u64>),
        input: Data,
    ) -> Result<Data, StepError> {
        let at = self.step;
        // A run that continues another starts after the iteration it carries, whose
        // condition was decided there.
        let carried = self.carried().map_err(|e| (e, 1))?;
        let (mut rows, mut n, mut decided) = match carried {
            Some((last, rows)) => (rows, last + 1, true),
            None => (self.values(input)?, 1, false),
        };
        let shape = rows.columns.clone();
        let mut all = Vec::new();
        // Iterations since this run (or the task's rows) began.
        let mut since: u64 = 0;
        // Whether an iteration ran, rather than reusing what its key recorded.
        let mut fresh = false;
        let ended = loop {
            let decides = (!decided).then_some(condition);
            decided = false;
            match self.next_iteration(decides, body, (at, n, max), &rows) {
                Ok(Some((out, reused))) => {
                    fresh |= !reused;
                    match numbered(&out, n) {
                        Ok(numbered) => all.push(numbered),
                        Err(e) => break Err((e, 1)),
                    }
                    rows = out;
                    n += 1;
                    since += 1;
                }
                Ok(None) => break Ok(()),
                Err(e) => break Err(e),
            }
            if every.is_some_and(|every| since >= every) {
                match self.renew(condition, body, (at, n, max), &rows) {
                    Ok(false) => break Ok(()),
                    Ok(true) if self.ctx.continues => break Err((StageError::Continued, 1)),
                    Ok(true) => {
                        // An exported task has no new run to go on in: its rows begin anew.
                        (all, since, decided) = (Vec::new(), 0, true);
                    }
                    Err(e) => break Err(e),
                }
            }
        };
        self.store.iteration.set(0);
        self.step = at;
        ended?;
        // Every iteration reused its recorded rows and no activity decided: nothing ran.
        if !all.is_empty() && !fresh && matches!(condition, LoopCondition::Sql { .. }) {
            self.all_reused = true;
        }
        if all.is_empty() {
            let columns = shape.into_iter().chain([ITERATION_COLUMN.to_string()]);
            return Ok(Rows::untyped(columns.collect(), Vec::new()).into());
        }
        Ok(Rows::union_by_name(all).into())
    }

    /// At a `continue_as_new` boundary before iteration `n`: whether the loop goes on (its
    /// condition decided once, here), and if so, what the run that goes on with it carries,
    /// written to this run's database: the rows of iteration `n - 1` and its number.
    fn renew(
        &mut self,
        condition: &LoopCondition,
        body: &[Step],
        (at, n, max): (usize, u64, u64),
        rows: &Rows,
    ) -> Result<bool, StepError> {
        self.store.iteration.set(i64::try_from(n).unwrap_or(i64::MAX));
        self.store.now.set(self.ctx.now());
        self.step = unrolled_step(at, body.len(), n, 0);
        if !self.holds(condition, rows)? {
            return Ok(false);
        }
        if n > max {
            return Err((StageError::LoopBound { max }, 1));
        }
        let last = Rows::untyped(
            vec![ITERATION_COLUMN.to_string()],
            vec![vec![Value::Integer(i64::try_from(n - 1).unwrap_or(i64::MAX))]],
        );
        let id = &self.stage.id;
        self.store
            .write_table("run", &carried_rows(id), rows)
            .and_then(|()| self.store.write_table("run", &carried_number(id), &last))
            .map_err(|e| (e.into(), 1))?;
        Ok(true)
    }

    /// The iteration a run that continues another starts after, and its rows.
    fn carried(&mut self) -> Result<Option<(u64, Rows)>, StageError> {
        let id = self.stage.id.clone();
        if !self.store.exists("run", &carried_number(&id))? {
            return Ok(None);
        }
        let number = self.store.stage_rows(&carried_number(&id))?;
        let Some(Value::Integer(last)) = number.first_value().cloned() else {
            return Ok(None);
        };
        let rows = self.store.stage_rows(&carried_rows(&id))?;
        Ok(Some((u64::try_from(last).unwrap_or(0), rows)))
    }

    /// Whether the loop goes on: the condition's value over `rows`, or its activity's rows.
    fn holds(&mut self, condition: &LoopCondition, rows: &Rows) -> Result<bool, StepError> {
        match condition {
            LoopCondition::Sql { sql, over_rows } => {
                // Rows with no columns cannot be read as a table: there is nothing to satisfy it.
                if *over_rows && rows.columns.is_empty() {
                    return Ok(false);
                }
                let over = over_rows.then_some(rows);
                let value = self
                    .query(&sql.text, over)
                    .map_err(|e| (e.into(), 1))?;
                Ok(matches!(value.first_value(), Some(Value::Integer(v)) if *v != 0)
                    || matches!(value.first_value(), Some(Value::Real(v)) if *v != 0.0))
            }
            LoopCondition::Invoke { invocation } => {
                let printed = self.invoke(invocation, rows.clone().into())?;
                Ok(!self.values(printed)?.is_empty())
            }
        }
    }

    /// Iteration `n` of the loop at step `at` (at most `max`), after `rows`: the rows its
    /// idempotency key recorded when it succeeded before (it was decided then, and is not
    /// decided again), else decided by `condition` (`None`: decided already, at a
    /// `continue_as_new` boundary) and, when it holds, run. Its rows and whether they were
    /// reused; `None` when the loop ends.
    fn next_iteration(
        &mut self,
        condition: Option<&LoopCondition>,
        body: &[Step],
        (at, n, max): (usize, u64, u64),
        rows: &Rows,
    ) -> Result<Option<(Rows, bool)>, StepError> {
        if self.cancel.load(Ordering::Relaxed) {
            return Err((StageError::Cancelled, 1));
        }
        self.store.iteration.set(i64::try_from(n).unwrap_or(i64::MAX));
        self.store.now.set(self.ctx.now());
        // Signals sent meanwhile decide too (an exported task reads them from its state).
        if let Some(inbox) = self.ctx.inbox {
            inbox.show(self.stage, self.store).map_err(|e| (e, 1))?;
        }
        // The condition's activity is a step of its own, numbered as the iteration's first.
        self.step = unrolled_step(at, body.len(), n, 0);
        let key = self.iteration_key().map_err(|e| (e, 1))?;
        if let Some(k) = &key
            && let Some(reused) = self
                .store
                .recorded(&self.ctx.flow, &self.stage.id, k)
                .map_err(|e| (e.into(), 1))?
        {
            return Ok(Some((reused, true)));
        }
        // Ended in an earlier execution of this run (before a crash, a failure or a cancel):
        // `runs resume` goes on after it.
        let ended = checkpoint(&self.stage.id, n);
        if self.store.exists("run", &ended).map_err(|e| (e.into(), 1))? {
            let rows = self.store.stage_rows(&ended).map_err(|e| (e.into(), 1))?;
            return Ok(Some((rows, false)));
        }
        if let Some(condition) = condition
            && !self.holds(condition, rows)?
        {
            return Ok(None);
        }
        if n > max {
            return Err((StageError::LoopBound { max }, 1));
        }
        self.iteration(body, (at, n), rows.clone(), key).map(Some)
    }

    /// Iteration `n` of the loop at step `at`: the loop's steps on `input`, its rows recorded
    /// under its idempotency key `key` when it has one.
    fn iteration(
        &mut self,
        body: &[Step],
        (at, n): (usize, u64),
        input: Rows,
        key: Option<String>,
    ) -> Result<(Rows, bool), StepError> {
        // The iteration's key is the one its activities are given.
        let outer = match &key {
            Some(k) => self.key.replace(k.clone()),
            None => self.key.clone(),
        };
        let ran = self.run_body(body, (at, n), input);
        self.key = outer;
        let data = ran?;
        let rows = self.values(data)?;
        self.store
            .write_table("run", &checkpoint(&self.stage.id, n), &rows)
            .map_err(|e| (e.into(), 1))?;
        // Unrecorded, a run resumed would do the iteration again: the stage fails, as an
        // `each` item whose key cannot be recorded does.
        if let Some(k) = &key {
            self.store
                .record(&self.ctx.flow, &self.stage.id, k, &rows)
                .map_err(|e| {
                    (
                        format!("cannot record the idempotency key `{k}`: {e}").into(),
                        1,
                    )
                })?;
        }
        Ok((rows, false))
    }

    /// The loop's steps in order, each on the output of the one before.
    fn run_body(
        &mut self,
        body: &[Step],
        (at, n): (usize, u64),
        input: Rows,
    ) -> Result<Data, StepError> {
        // A `wait until` dropped its files' tables when it ended: each iteration reads them
        // as they are then.
        for step in body {
            if let Step::WaitUntil { watched, .. } = step {
                self.reload(watched).map_err(|e| (e, 1))?;
            }
        }
        let mut data = Data::from(input);
        let mut last_query = None;
        for (pos, step) in body.iter().enumerate() {
            self.step = unrolled_step(at, body.len(), n, pos + 1);
            self.store.now.set(self.ctx.now());
            let input = match step {
                Step::Query { sql, .. } => {
                    last_query = Some(sql);
                    self.store.set_input(data).map_err(|e| (e.into(), 1))?;
                    Data::default()
                }
                _ => data,
            };
            data = self.step(step, input, last_query)?;
        }
        Ok(data)
    }

    /// The stage's key for the iteration being run, when it is a loop's
    /// ([`crate::plan::ir::StagePlan::idempotency_per_iteration`]).
    fn iteration_key(&mut self) -> Result<Option<String>, StageError> {
        let Some(sql) = self
            .stage
            .idempotency_key
            .as_ref()
            .filter(|_| self.stage.idempotency_per_iteration)
        else {
            return Ok(None);
        };
        let rows = self
            .query(&format!("SELECT {}", sql.text), None)
            .map_err(|e| StageError::Data(format!("cannot evaluate the idempotency key: {e}")))?;
        Ok(rows
            .first_value()
            .filter(|v| **v != Value::Null)
            .map(|v| crate::value::text(v, ValueType::Any)))
    }
}

/// The run's table of the rows iteration `n` of `stage`'s loop gave, written as it ends: a
/// resumed run reads them instead of running it again.
fn checkpoint(stage: &str, n: u64) -> String {
    format!("loop:{stage}:{n}")
}

/// An iteration's rows with their `iteration` column.
fn numbered(rows: &Rows, n: u64) -> Result<Rows, StageError> {
    if rows.columns.iter().any(|c| c == ITERATION_COLUMN) {
        return Err(StageError::IterationColumn { iteration: n });
    }
    let mut out = rows.clone();
    out.columns.push(ITERATION_COLUMN.to_string());
    if !out.types.is_empty() {
        out.types.resize(rows.columns.len(), ValueType::Any);
        out.types.push(ValueType::Int);
    }
    for row in &mut out.values {
        row.push(Value::Integer(n as i64));
    }
    Ok(out)
}
