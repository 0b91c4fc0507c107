//! Why a task of an exported run could not do its work (as opposed to a stage that ran and
//! failed, which its summary says). Each error keeps its data; `Display` gives the message
//! `wvflow stage` prints, the only place it becomes text.

use super::{lease, scratch, state};
use crate::value::WrongValue;
use std::fmt;

/// Why a task could not run, or could not record what it did.
#[derive(Debug)]
pub enum Error {
    /// The state location: a file or object that could not be read or written.
    State(state::Error),
    /// The task's lease, which makes it the only copy running.
    Lease(lease::Error),
    /// The task's scratch folder.
    Scratch(scratch::Error),
    /// The task's run database. The store's own error, kept as it is.
    Store(crate::runtime::store::Error),
    /// A record that could not be written as JSON.
    Encode(serde_json::Error),
    /// A record of the state that is not what a task writes, and the key it is at (`None`
    /// for an item's record, whose message has never named it).
    Decode {
        key: Option<String>,
        source: serde_json::Error,
    },
    /// The run has no record: `init` has not run.
    NoRunRecord { run_id: String, key: String },
    /// The engine started a stage before one of its upstream stages ended.
    UpstreamNotEnded { stage: String, upstream: String },
    /// The engine stopped the task (a signal) while its stage, or an item of it, ran:
    /// nothing was recorded, so that a retry runs it again.
    Stopped { stage: String, item: bool },
    /// The flow has no stage of that name.
    NoStage { flow: String, stage: String },
    /// An item or the gathering of a fan-out whose `prepare` has not run.
    NotPrepared { stage: String },
    /// An item that succeeded but whose rows are not in the state.
    ItemWithoutRows {
        stage: String,
        item: usize,
        key: String,
    },
    /// A part of a fanned-out stage that ended otherwise than a part of its kind can.
    PartUnfinished { stage: String, part: PartKind },
    /// A signal that cannot be sent: undeclared, or a value of another type.
    Signal(crate::runtime::runs::SignalError),
    /// `pause` or `resume` sent to an exported run: the engine's own controls do that.
    EngineControl(String),
    /// The run has ended (`finish` ran): nothing is sent to it any more.
    Finished { run_id: String },
    /// The flow declares no query of that name; `known` are those it has.
    NoQuery {
        flow: String,
        name: String,
        known: Vec<String>,
    },
}

/// Which part of a fanned-out stage a task ran.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PartKind {
    Prepare,
    Item(usize),
    Gather,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::State(e) => write!(f, "{e}"),
            Error::Lease(e) => write!(f, "{e}"),
            Error::Scratch(e) => write!(f, "{e}"),
            Error::Store(e) => write!(f, "{e}"),
            Error::Encode(e) => write!(f, "{e}"),
            Error::Decode { key: None, source } => write!(f, "{source}"),
            Error::Decode {
                key: Some(key),
                source,
            } => write!(f, "{key}: {source}"),
            Error::NoRunRecord { run_id, key } => write!(
                f,
                "run {run_id} has no record ({key}): `wvflow stage init` runs first"
            ),
            Error::UpstreamNotEnded { stage, upstream } => write!(
                f,
                "stage `{stage}` started before its upstream stage `{upstream}` ended: the \
                 engine must run it after all its upstream tasks are done"
            ),
            Error::Stopped { stage, item: false } => write!(
                f,
                "stage `{stage}` was stopped by a signal; nothing was recorded"
            ),
            Error::Stopped { stage, item: true } => write!(
                f,
                "an item of `{stage}` was stopped by a signal; nothing was recorded"
            ),
            Error::NoStage { flow, stage } => write!(f, "flow `{flow}` has no stage `{stage}`"),
            Error::NotPrepared { stage } => write!(
                f,
                "stage `{stage}` has not been prepared: `wvflow stage prepare` runs first"
            ),
            Error::ItemWithoutRows { stage, item, key } => {
                write!(f, "item {item} of `{stage}` has no rows ({key})")
            }
            Error::PartUnfinished { stage, part } => match part {
                PartKind::Prepare => write!(f, "stage `{stage}` could not be prepared"),
                PartKind::Item(item) => write!(f, "item {item} of `{stage}` did not run"),
                PartKind::Gather => write!(f, "stage `{stage}` could not be gathered"),
            },
            Error::Signal(e) => write!(f, "{e}"),
            Error::EngineControl(name) => write!(
                f,
                "`{name}` is not sent to an exported run: pause it with the engine's own control \
                 (Airflow: pause the DAG; Argo: `argo suspend` / `argo resume`)"
            ),
            Error::Finished { run_id } => {
                write!(f, "run {run_id} has finished: nothing is sent to it any more")
            }
            Error::NoQuery { flow, name, known } => {
                write!(f, "flow `{flow}` declares no query `{name}`")?;
                if !known.is_empty() {
                    write!(f, " (it has: {})", known.join(", "))?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::State(e) => Some(e),
            Error::Lease(e) => Some(e),
            Error::Scratch(e) => Some(e),
            Error::Encode(e) | Error::Decode { source: e, .. } => Some(e),
            // The store's error is only known to be displayable.
            _ => None,
        }
    }
}

impl From<state::Error> for Error {
    fn from(e: state::Error) -> Self {
        Error::State(e)
    }
}

impl From<lease::Error> for Error {
    fn from(e: lease::Error) -> Self {
        Error::Lease(e)
    }
}

impl From<scratch::Error> for Error {
    fn from(e: scratch::Error) -> Self {
        Error::Scratch(e)
    }
}

// Only store calls give a `store::Error` here (a `String` until the store has its own type):
// `?` on one keeps it as the store's.
impl From<crate::runtime::store::Error> for Error {
    fn from(e: crate::runtime::store::Error) -> Self {
        Error::Store(e)
    }
}

/// Why an argument given as `NAME=TEXT` ([`super::text_args`]) was refused.
#[derive(Debug)]
pub enum ArgError {
    /// Not `NAME=VALUE`.
    NotAPair(String),
    /// A text its parameter's type cannot read.
    Wrong {
        name: String,
        flow: String,
        wrong: WrongValue,
        text: String,
    },
}

impl fmt::Display for ArgError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ArgError::NotAPair(pair) => write!(f, "`{pair}` is not NAME=VALUE"),
            ArgError::Wrong {
                name,
                flow,
                wrong,
                text,
            } => write!(
                f,
                "argument `{name}` of flow `{flow}` must be {wrong}, not `{text}`"
            ),
        }
    }
}

impl std::error::Error for ArgError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_those_wvflow_stage_prints() {
        let stopped = Error::Stopped {
            stage: "load".into(),
            item: true,
        };
        assert_eq!(
            stopped.to_string(),
            "an item of `load` was stopped by a signal; nothing was recorded"
        );
        let early = Error::UpstreamNotEnded {
            stage: "b".into(),
            upstream: "a".into(),
        };
        assert_eq!(
            early.to_string(),
            "stage `b` started before its upstream stage `a` ended: the engine must run it \
             after all its upstream tasks are done"
        );
        let lease = Error::from(lease::Error::StoppedWhileHeld);
        assert_eq!(
            lease.to_string(),
            "stopped while another copy of the task ran"
        );
        let part = Error::PartUnfinished {
            stage: "s".into(),
            part: PartKind::Item(3),
        };
        assert_eq!(part.to_string(), "item 3 of `s` did not run");
    }
}
