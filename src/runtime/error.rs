//! Why an activity call, a step or a stage did not succeed, with the data each failure has.
//! `Display` gives the message the run summary shows as the stage's error.

use super::state::RunState;

#[derive(Clone, Debug, PartialEq)]
pub enum StageError {
    /// The run was cancelled (Ctrl-C, SIGTERM, `runs cancel`, a parent stage's cancel).
    Cancelled,
    /// The activity's last attempt failed: its stderr tail or how it ended (an exit code, a
    /// timeout, a missing heartbeat), and its exit code when it exited with one.
    Activity {
        message: String,
        exit_code: Option<i32>,
    },
    /// A child run (`call`) ended without success.
    ChildRun {
        run_id: String,
        flow: String,
        state: RunState,
        /// The first error of its stages.
        cause: Option<Box<StageError>>,
    },
    /// More `each` items failed than `tolerated_failures` allows.
    Items {
        failed: usize,
        total: usize,
        tolerated: f64,
        first: String,
    },
    /// A single call's arguments read the row (`_.x`), and the input has not one row.
    NotOneRow {
        stage: String,
        callee: String,
        rows: usize,
        reader: RowReader,
    },
    /// `wait(expression)` whose value is no duration (`found`, as text), or a negative one.
    NotADuration { found: String, negative: bool },
    /// The items of a fan-out that keeps `failed(stage)` have a column of the same name as
    /// one of the failure's.
    FailureColumn { stage: String, column: String },
    /// No slot of the pool came free within the stage's `schedule_timeout`.
    NoSlot {
        pool: String,
        within: std::time::Duration,
    },
    /// The stage's data: its SQL, files or the run's database.
    Store(Shared<super::store::Error>),
    /// Rows that `activate(...)` could not deliver.
    Activate(Shared<super::activate::Error>),
    /// A stage on a server (`on pg`) failed there, or could not reach it.
    Connector(Shared<super::postgres::Error>),
    /// A stage on a DuckDB connector (`on duck`) failed there.
    Duckdb(Shared<super::duckdb::Error>),
    /// A child run that did not end as a run (not started, stopped with its parent stage).
    Child(Shared<super::launch::Error>),
    /// Anything else about the stage's data, as the error said.
    Data(String),
    /// An error read back from a record (a task's state, a run report): its text.
    Recorded(String),
    /// The flow's `timeout` passed while the stage ran.
    FlowTimeout(std::time::Duration),
    /// A branch of the stage's `fork` failed.
    BranchFailed { branch: String },
    /// A bug of wvflow's: what it panicked with.
    Internal(String),
    /// An exported stage's task never recorded its end.
    NeverEnded,
    /// An exported `each` has more items than the engine maps into tasks.
    TooManyItems { items: usize, max: usize },
    /// A `while` loop's condition still held after `max_iterations` iterations.
    LoopBound { max: u64 },
    /// The stage's loop reached its `continue_as_new`: it goes on in a new run (not an error:
    /// the stage ends `continued`).
    Continued,
    /// A loop's rows have a column named `iteration`, the column the loop adds.
    IterationColumn { iteration: u64 },
    /// The last attempt's error, not retried although tries were left.
    GaveUp {
        error: Box<StageError>,
        why: NotRetried,
    },
}

impl StageError {
    /// The exit code of the activity attempt this error is the end of, when it exited with one
    /// (through a give-up's reason).
    pub fn exit_code(&self) -> Option<i32> {
        match self {
            StageError::Activity { exit_code, .. } => *exit_code,
            StageError::GaveUp { error, .. } => error.exit_code(),
            _ => None,
        }
    }

    /// Whether the error is the end of an activity's attempt (not of the stage's data).
    pub fn is_activity(&self) -> bool {
        match self {
            StageError::Activity { .. } => true,
            StageError::GaveUp { error, .. } => error.is_activity(),
            _ => false,
        }
    }
}

/// Why a failed attempt that had tries left was not tried again. `Display` gives what is
/// added after its error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotRetried {
    /// Its exit code is one the policy does not retry.
    NonRetryable(i32),
    /// The stage's `schedule_timeout` would pass before the next attempt.
    ScheduleTimeout { limit_ms: u64, attempts: u32 },
}

impl std::fmt::Display for NotRetried {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NotRetried::NonRetryable(code) => write!(f, " (exit code {code} is non-retryable)"),
            NotRetried::ScheduleTimeout { limit_ms, attempts } => write!(
                f,
                " (schedule_timeout of {} reached after {attempts} attempts)",
                crate::human::duration(std::time::Duration::from_millis(*limit_ms))
            ),
        }
    }
}

/// Recorded as its text: what a run store, a report or a task's record keeps of it.
impl serde::Serialize for StageError {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for StageError {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(StageError::Recorded)
    }
}

/// The run store keeps a stage's error as its text.
impl rusqlite::ToSql for StageError {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        Ok(rusqlite::types::ToSqlOutput::from(self.to_string()))
    }
}

impl rusqlite::types::FromSql for StageError {
    fn column_result(value: rusqlite::types::ValueRef<'_>) -> rusqlite::types::FromSqlResult<Self> {
        String::column_result(value).map(StageError::Recorded)
    }
}

/// What reads the one row of a [`StageError::NotOneRow`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RowReader {
    /// A single call's arguments, over the stage's input.
    Call,
    /// A compensation's arguments, over the stage's output.
    Compensation,
    /// A stage-level idempotency key, over the stage's input.
    IdempotencyKey,
}

impl From<String> for StageError {
    fn from(message: String) -> Self {
        StageError::Data(message)
    }
}

/// An error a [`StageError`] keeps as it was made, shared: a stage's failure is cloned (to
/// its items, its summary) and compared, which the errors of files and SQLite are not. Two
/// are equal when they say the same.
#[derive(Debug)]
pub struct Shared<E>(pub std::sync::Arc<E>);

impl<E> Clone for Shared<E> {
    fn clone(&self) -> Self {
        Shared(self.0.clone())
    }
}

impl<E: std::fmt::Display> PartialEq for Shared<E> {
    fn eq(&self, other: &Self) -> bool {
        std::sync::Arc::ptr_eq(&self.0, &other.0) || self.0.to_string() == other.0.to_string()
    }
}

impl<E> Shared<E> {
    pub fn new(e: E) -> Self {
        Shared(std::sync::Arc::new(e))
    }
}

/// The stage's data could not be read or written.
impl From<super::store::Error> for StageError {
    fn from(e: super::store::Error) -> Self {
        StageError::Store(Shared::new(e))
    }
}

/// Cancelled on the server because the run was: the stage is cancelled, not failed.
impl From<super::postgres::Error> for StageError {
    fn from(e: super::postgres::Error) -> Self {
        match e {
            super::postgres::Error::Cancelled => StageError::Cancelled,
            e => StageError::Connector(Shared::new(e)),
        }
    }
}

/// Interrupted because the run was: the stage is cancelled, not failed.
impl From<super::duckdb::Error> for StageError {
    fn from(e: super::duckdb::Error) -> Self {
        match e {
            super::duckdb::Error::Cancelled => StageError::Cancelled,
            e => StageError::Duckdb(Shared::new(e)),
        }
    }
}

impl From<super::output::Error> for StageError {
    fn from(e: super::output::Error) -> Self {
        super::store::Error::Output(e).into()
    }
}

impl From<super::files::Error> for StageError {
    fn from(e: super::files::Error) -> Self {
        super::store::Error::File(e).into()
    }
}

impl From<super::runs::schema::Error> for StageError {
    fn from(e: super::runs::schema::Error) -> Self {
        super::store::Error::Schema(e).into()
    }
}

impl From<super::activate::Error> for StageError {
    fn from(e: super::activate::Error) -> Self {
        StageError::Activate(Shared::new(e))
    }
}

impl From<super::launch::Error> for StageError {
    fn from(e: super::launch::Error) -> Self {
        StageError::Child(Shared::new(e))
    }
}

impl std::fmt::Display for StageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StageError::FlowTimeout(timeout) => write!(
                f,
                "stopped: the flow timeout of {} passed",
                crate::human::duration(*timeout)
            ),
            StageError::BranchFailed { branch } => write!(f, "branch `{branch}` failed"),
            StageError::Internal(panic) => {
                write!(f, "internal error of wvflow (please report it): {panic}")
            }
            StageError::NeverEnded => f.write_str("its task never ended"),
            StageError::TooManyItems { items, max } => write!(
                f,
                "its `each` has {items} items, more than the {max} tasks the engine maps \
                 (`--max-items`: on Airflow, `[core] max_map_length`; on Argo, `wvflow export \
                 --max-items`): raise that limit"
            ),
            StageError::LoopBound { max } => write!(
                f,
                "the `while` condition still held after {max} iterations, the stage's \
                 `max_iterations`: the loop was stopped (raise `max_iterations` if it needs more)"
            ),
            StageError::IterationColumn { iteration } => write!(
                f,
                "the rows of iteration {iteration} have a column `iteration`, the column the \
                 loop adds: rename it with `select ... as`"
            ),
            StageError::GaveUp { error, why } => write!(f, "{error}{why}"),
            StageError::Cancelled => f.write_str("cancelled"),
            StageError::Continued => f.write_str("continued as a new run (`continue_as_new`)"),
            StageError::Activity { message, .. }
            | StageError::Data(message)
            | StageError::Recorded(message) => {
                f.write_str(message)
            }
            StageError::NoSlot { pool, within } => write!(
                f,
                "no slot of pool `{pool}` came free within the schedule_timeout of {}",
                crate::human::duration(*within)
            ),
            StageError::Store(e) => write!(f, "{}", e.0),
            StageError::Activate(e) => write!(f, "{}", e.0),
            StageError::Connector(e) => write!(f, "{}", e.0),
            StageError::Duckdb(e) => write!(f, "{}", e.0),
            StageError::Child(e) => write!(f, "{}", e.0),
            StageError::ChildRun {
                run_id,
                flow,
                state,
                cause,
            } => {
                write!(f, "child run {run_id} of `{flow}` ended {state}")?;
                match cause {
                    Some(cause) => write!(f, ": {cause}"),
                    None => Ok(()),
                }
            }
            StageError::NotOneRow {
                stage,
                callee,
                rows,
                reader,
            } => not_one_row(f, (stage, callee), *rows, *reader),
            StageError::NotADuration {
                found,
                negative: true,
            } => write!(
                f,
                "`wait` needs a duration of zero or more, and its duration is {found}"
            ),
            StageError::NotADuration { found, .. } => {
                write!(f, "`wait` needs a duration, and its duration is {found}")
            }
            StageError::FailureColumn { stage, column } => write!(
                f,
                "the items have a column `{column}`, as `failed({stage})` has: rename it with `select ... as`"
            ),
            StageError::Items {
                failed,
                total,
                tolerated,
                first,
            } => write!(
                f,
                "{failed} of {total} items failed (tolerated: {}); first error: {first}",
                tolerated.floor()
            ),
        }
    }
}

/// [`StageError::NotOneRow`]'s message: who reads the row, and what to write instead.
fn not_one_row(
    f: &mut std::fmt::Formatter<'_>,
    (stage, callee): (&str, &str),
    rows: usize,
    reader: RowReader,
) -> std::fmt::Result {
        let rows = match rows {
            0 => "no rows".to_string(),
            n => format!("{n} rows"),
        };
        match reader {
            RowReader::Compensation => write!(
                f,
                "the compensation `{callee}` of stage `{stage}` reads columns of the stage's row (`_.`), which takes exactly one row; the stage has {rows} (compensate with arguments that read no column, and read the rows from stdin)"
            ),
            RowReader::Call => write!(
                f,
                "stage `{stage}` passes columns of its input row (`_.`) to `{callee}`, which takes exactly one row; the input has {rows} (use `each` for one call per row, or `limit 1`)"
            ),
            RowReader::IdempotencyKey => write!(
                f,
                "the idempotency key of stage `{stage}` reads columns of its input row (`_.`), which takes exactly one row; the input has {rows}, and nothing was called (use `each` for one call and one key per row, or `limit 1`)"
            ),
        }
}
