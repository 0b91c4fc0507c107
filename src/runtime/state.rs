//! The states of stages, attempts and runs: closed vocabularies, written to the run store, the
//! JSON summary and the terminal as their lowercase names (docs/runs.md).

use serde::{Deserialize, Serialize};

/// Where a stage (or an attempt, or a compensation) is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StageState {
    /// Not started yet.
    #[default]
    Pending,
    Running,
    /// Between two attempts.
    Retrying,
    Success,
    Failed,
    /// Its trigger did not hold, or the flow ended before it.
    Skipped,
    Cancelled,
}

impl StageState {
    pub const ALL: [StageState; 7] = [
        StageState::Pending,
        StageState::Running,
        StageState::Retrying,
        StageState::Success,
        StageState::Failed,
        StageState::Skipped,
        StageState::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            StageState::Pending => "pending",
            StageState::Running => "running",
            StageState::Retrying => "retrying",
            StageState::Success => "success",
            StageState::Failed => "failed",
            StageState::Skipped => "skipped",
            StageState::Cancelled => "cancelled",
        }
    }
}

/// How a run is, or ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunState {
    Running,
    Success,
    Failed,
    Cancelled,
    /// Not run at all (a schedule's gate, `once per window`).
    Skipped,
}

impl RunState {
    pub const ALL: [RunState; 5] = [
        RunState::Running,
        RunState::Success,
        RunState::Failed,
        RunState::Cancelled,
        RunState::Skipped,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Running => "running",
            RunState::Success => "success",
            RunState::Failed => "failed",
            RunState::Cancelled => "cancelled",
            RunState::Skipped => "skipped",
        }
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
                <$t>::ALL
                    .into_iter()
                    .find(|s| s.as_str() == text)
                    .ok_or_else(|| {
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

text_forms!(StageState, RunState);

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
