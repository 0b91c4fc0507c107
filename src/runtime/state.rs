//! The states of stages, attempts and runs: closed vocabularies, written to the run store, the
//! JSON summary and the terminal as their lowercase names (docs/runs.md).

use crate::vocabulary::vocabulary;

vocabulary! {
    /// Where a stage (or an attempt, or a compensation) is.
    #[derive(Default, Hash)]
    StageState {
        /// Not started yet.
        #[default]
        Pending = "pending",
        Running = "running",
        /// Waiting for a slot of its `pool`.
        Queued = "queued",
        /// Between two attempts.
        Retrying = "retrying",
        Success = "success",
        Failed = "failed",
        /// Its trigger did not hold, or the flow ended before it.
        Skipped = "skipped",
        Cancelled = "cancelled",
        /// Its `while` loop reached `continue_as_new`: the loop goes on in a new run.
        Continued = "continued",
    }
}

vocabulary! {
    /// How a run is, or ended.
    #[derive(Hash)]
    RunState {
        Running = "running",
        Success = "success",
        Failed = "failed",
        Cancelled = "cancelled",
        /// Not run at all (a schedule's gate, `once per window`).
        Skipped = "skipped",
        /// A loop reached `continue_as_new`: the run goes on as a new run of the flow.
        Continued = "continued",
    }
}

vocabulary! {
    /// Why an activity attempt ran: the stage's own work, its compensation, or a flow hook
    /// (then its `stage` is the hook's event).
    #[derive(Hash, PartialOrd, Ord)]
    Phase {
        Run = "run",
        Compensate = "compensate",
        Hook = "hook",
    }
}

macro_rules! text_forms {
    ($($t:ty),*) => {$(
        impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.pad(self.as_str())
            }
        }

        impl rusqlite::types::FromSql for $t {
            fn column_result(
                value: rusqlite::types::ValueRef<'_>,
            ) -> rusqlite::types::FromSqlResult<Self> {
                let text = value.as_str()?;
                <$t>::parse(text).ok_or_else(|| {
                        rusqlite::types::FromSqlError::Other(
                            format!("`{text}` is not a state the run store knows").into(),
                        )
                    })
            }
        }

        // A state equals its written name: summaries read back as JSON compare the same way.
        impl PartialEq<&str> for $t {
            fn eq(&self, other: &&str) -> bool {
                self.as_str() == *other
            }
        }

        impl rusqlite::ToSql for $t {
            fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
                Ok(self.as_str().into())
            }
        }
    )*};
}

text_forms!(StageState, RunState, Phase);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_are_written_as_their_lowercase_names() {
        for (state, name) in [
            (StageState::Pending, "pending"),
            (StageState::Retrying, "retrying"),
            (StageState::Cancelled, "cancelled"),
        ] {
            assert_eq!(state.to_string(), name);
            assert_eq!(serde_json::to_value(state).unwrap(), name);
        }
        assert_eq!(serde_json::to_value(RunState::Skipped).unwrap(), "skipped");
        assert_eq!(format!("{:9}|", StageState::Failed), "failed   |");
    }
}
