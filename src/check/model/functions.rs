//! The functions an expression may call: one table, checked by the binder, printed in
//! `docs/language.md`, and mapped to the embedded engine's names by the lowering.

use crate::value::ValueType;

/// What a function returns.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Returns {
    Fixed(ValueType),
    /// The type of its first argument (`min`, `coalesce`, `abs`).
    FirstArgument,
}

/// Where a function may be used.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Use {
    /// Anywhere an expression is evaluated.
    Scalar,
    /// Over the rows of a group: `select` after `group by`, or over all rows of the input.
    Aggregate,
    /// Only in `query NAME = ...`: reads the run's state.
    RunState,
}

pub struct Function {
    pub name: &'static str,
    pub min_args: usize,
    /// `None`: any number from `min_args` on.
    pub max_args: Option<usize>,
    pub returns: Returns,
    pub used: Use,
    /// The name in the embedded engine.
    pub sql: &'static str,
    /// Argument list and meaning, as `docs/language.md` shows them.
    pub signature: &'static str,
    pub meaning: &'static str,
}

const fn f(
    name: &'static str,
    (min_args, max_args): (usize, Option<usize>),
    returns: Returns,
    used: Use,
    signature: &'static str,
    meaning: &'static str,
) -> Function {
    Function {
        name,
        min_args,
        max_args,
        returns,
        used,
        sql: name,
        signature,
        meaning,
    }
}

use Returns::{FirstArgument, Fixed};
use Use::{Aggregate, RunState, Scalar};
use ValueType as T;

pub const FUNCTIONS: &[Function] = &[
    f(
        "abs",
        (1, Some(1)),
        FirstArgument,
        Scalar,
        "abs(x: number)",
        "absolute value",
    ),
    f(
        "round",
        (1, Some(2)),
        Fixed(T::Float),
        Scalar,
        "round(x: number, digits: int = 0)",
        "rounded to `digits` decimals",
    ),
    f(
        "lower",
        (1, Some(1)),
        Fixed(T::String),
        Scalar,
        "lower(s: string)",
        "lower case",
    ),
    f(
        "upper",
        (1, Some(1)),
        Fixed(T::String),
        Scalar,
        "upper(s: string)",
        "upper case",
    ),
    f(
        "length",
        (1, Some(1)),
        Fixed(T::Int),
        Scalar,
        "length(s: string)",
        "number of characters",
    ),
    f(
        "trim",
        (1, Some(2)),
        Fixed(T::String),
        Scalar,
        "trim(s: string, chars: string = ' ')",
        "without leading and trailing `chars`",
    ),
    f(
        "substr",
        (2, Some(3)),
        Fixed(T::String),
        Scalar,
        "substr(s: string, start: int, length: int)",
        "part of `s` from `start` (1-based)",
    ),
    f(
        "replace",
        (3, Some(3)),
        Fixed(T::String),
        Scalar,
        "replace(s: string, from: string, to: string)",
        "every `from` replaced by `to`",
    ),
    f(
        "instr",
        (2, Some(2)),
        Fixed(T::Int),
        Scalar,
        "instr(s: string, part: string)",
        "position of `part` in `s` (1-based), 0 when absent",
    ),
    f(
        "coalesce",
        (2, None),
        FirstArgument,
        Scalar,
        "coalesce(x, y, ...)",
        "the first argument that is not null",
    ),
    f(
        "nullif",
        (2, Some(2)),
        FirstArgument,
        Scalar,
        "nullif(x, y)",
        "null when `x = y`, else `x`",
    ),
    Function {
        sql: "wv_hash",
        ..f(
            "hash",
            (1, Some(1)),
            Fixed(T::Int),
            Scalar,
            "hash(x)",
            "a stable 63-bit hash of `x` as text (FNV-1a), the same on every machine",
        )
    },
    Function {
        sql: "wv_now",
        ..f(
            "now",
            (0, Some(0)),
            Fixed(T::Timestamp),
            Scalar,
            "now()",
            "the current time in UTC, on the run's clock (re-read at each `wait until` check)",
        )
    },
    Function {
        sql: "wv_iteration",
        ..f(
            "iteration",
            (0, Some(0)),
            Fixed(T::Int),
            Scalar,
            "iteration()",
            "in a `while` loop's stage: the iteration being decided or run, from 1",
        )
    },
    f(
        "date",
        (1, None),
        Fixed(T::Date),
        Scalar,
        "date(t: timestamp, modifier: string, ...)",
        "the date of `t`, after SQLite date modifiers such as '+1 day'",
    ),
    f(
        "strftime",
        (2, None),
        Fixed(T::String),
        Scalar,
        "strftime(format: string, t: timestamp, ...)",
        "`t` formatted, as SQLite's strftime",
    ),
    f(
        "printf",
        (1, None),
        Fixed(T::String),
        Scalar,
        "printf(format: string, ...)",
        "formatted text, as SQLite's printf",
    ),
    f(
        "count",
        (0, Some(1)),
        Fixed(T::Int),
        Aggregate,
        "count(*) | count(x)",
        "rows, or rows where `x` is not null",
    ),
    f(
        "sum",
        (1, Some(1)),
        FirstArgument,
        Aggregate,
        "sum(x: number)",
        "sum over the rows",
    ),
    f(
        "avg",
        (1, Some(1)),
        Fixed(T::Float),
        Aggregate,
        "avg(x: number)",
        "mean over the rows",
    ),
    f(
        "min",
        (1, None),
        FirstArgument,
        Aggregate,
        "min(x) | min(x, y, ...)",
        "smallest over the rows; with several arguments, the smallest of them",
    ),
    f(
        "max",
        (1, None),
        FirstArgument,
        Aggregate,
        "max(x) | max(x, y, ...)",
        "largest over the rows; with several arguments, the largest of them",
    ),
    f(
        "group_concat",
        (1, Some(2)),
        Fixed(T::String),
        Aggregate,
        "group_concat(x, separator: string = ',')",
        "the values of the rows joined",
    ),
    f(
        "completed_stages",
        (0, Some(0)),
        Fixed(T::Int),
        RunState,
        "completed_stages()",
        "stages of the run that succeeded so far",
    ),
    f(
        "total_stages",
        (0, Some(0)),
        Fixed(T::Int),
        RunState,
        "total_stages()",
        "stages of the run recorded so far",
    ),
    f(
        "state",
        (1, Some(1)),
        Fixed(T::String),
        RunState,
        "state(stage: string)",
        "the state of a stage of the run, 'unknown' before it is recorded",
    ),
];

/// The function of that name (names are not case-sensitive, as in SQL).
pub fn lookup(name: &str) -> Option<&'static Function> {
    FUNCTIONS.iter().find(|f| f.name.eq_ignore_ascii_case(name))
}

/// The function table as Markdown, for the docs.
pub fn markdown_table() -> String {
    let mut out = String::from("| function | returns | where | meaning |\n|---|---|---|---|\n");
    for f in FUNCTIONS {
        let returns = match f.returns {
            Fixed(t) => t.name(),
            FirstArgument => "type of the first argument",
        };
        let used = match f.used {
            Scalar => "anywhere",
            Aggregate => "aggregate",
            RunState => "`query` only",
        };
        out.push_str(&format!(
            "| `{}` | {returns} | {used} | {} |\n",
            f.signature, f.meaning
        ));
    }
    out
}

/// The functions a stage on a PostgreSQL connector cannot call (E0709): wvflow's own
/// (`hash`, `now`, `iteration`, added to SQLite by the runtime) and SQLite's whose arguments
/// mean something else on PostgreSQL (`date` and `strftime` modifiers, `printf` formats).
/// Every other function has a PostgreSQL form (`plan::sql`).
pub const NOT_ON_POSTGRES: [&str; 9] = [
    "hash",
    "now",
    "iteration",
    "date",
    "strftime",
    "printf",
    "completed_stages",
    "total_stages",
    "state",
];

/// Whether a stage on a PostgreSQL connector can call the function.
pub fn on_postgres(f: &Function) -> bool {
    !NOT_ON_POSTGRES.contains(&f.name)
}
