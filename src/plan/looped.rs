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
