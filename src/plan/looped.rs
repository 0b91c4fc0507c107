//! `while` loops in the plan: the steps after a `while` become its body, and its condition
//! becomes SQL over the rows of the iteration before.

use crate::check::functions::{self, Use};
use crate::plan::ir::{LoopCondition, Sql, Step};
use crate::plan::sql::Writer;
use crate::syntax::ast::{Expr, ExprKind};

/// The steps of a stage with the steps after its `while` moved into the loop's body: lowering
/// writes them one after the other, as the operators are written.
pub fn nest_body(mut steps: Vec<Step>) -> Vec<Step> {
    let Some(at) = steps.iter().position(|s| matches!(s, Step::While { .. })) else {
        return steps;
    };
    let rest = steps.split_off(at + 1);
    if let Some(Step::While { body, .. }) = steps.last_mut() {
        *body = rest;
    }
    steps
}

/// Every step of `steps`, those of loop bodies included.
pub fn all_steps(steps: &[Step]) -> Box<dyn Iterator<Item = &Step> + '_> {
    Box::new(steps.iter().flat_map(|s| {
        let inner: Box<dyn Iterator<Item = &Step>> = match s {
            Step::While { body, .. } => all_steps(body),
            _ => Box::new(std::iter::empty()),
        };
        std::iter::once(s).chain(inner)
    }))
}

/// A condition that is an expression, as a query giving 1 while the loop goes on. An
/// aggregate (`count(*) > 0`) is over all the rows of the iteration before; a condition that
/// reads a column holds when some row satisfies it; any other is evaluated once. Null is false.
pub fn condition(w: &mut Writer, e: &Expr) -> LoopCondition {
    w.reads_row = false;
    let text = w.expr(e);
    let reads_row = std::mem::take(&mut w.reads_row);
    let aggregate = crate::check::any_expr(e, &|e| {
        matches!(&e.kind, ExprKind::Call(c)
            if functions::lookup(&c.name.name).is_some_and(|f| f.used == Use::Aggregate))
    });
    let (text, over_rows) = if aggregate {
        (format!("SELECT COALESCE(({text}), 0) FROM _input"), true)
    } else if reads_row {
        (format!("SELECT EXISTS (SELECT 1 FROM _input WHERE {text})"), true)
    } else {
        (format!("SELECT COALESCE(({text}), 0)"), false)
    };
    LoopCondition::Sql {
        sql: Sql {
            text,
            params: w.take_params(),
        },
        over_rows,
    }
}

/// The step number the attempts of iteration `n` (from 1) record for place `pos` of a loop at
/// step `at` with `len` steps (place 0: its condition's activity, then its steps from 1): the
/// steps as if the loop were written out, iteration after iteration, so that no two attempts
/// of a run share a number.
pub fn unrolled_step(at: usize, len: usize, n: u64, pos: usize) -> usize {
    let n = usize::try_from(n).unwrap_or(usize::MAX);
    at.saturating_add(n.saturating_sub(1).saturating_mul(len + 1))
        .saturating_add(pos)
}

/// The iteration an attempt recorded at `step` belongs to, in a stage whose steps are
/// `steps`: `None` when the stage has no loop or the step comes before it.
pub fn iteration_of_step(steps: &[Step], step: usize) -> Option<u64> {
    let at = steps.iter().position(|s| matches!(s, Step::While { .. }))?;
    let Step::While { body, .. } = &steps[at] else {
        return None;
    };
    let since = step.checked_sub(at)?;
    u64::try_from(since / (body.len() + 1) + 1).ok()
}
