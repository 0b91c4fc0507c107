//! The plan's closed vocabularies, written in the plan's JSON as the words of the source
//! (`on_failure`, `request_cancel`, `webhook`, ...). Each word is parsed once, in lowering,
//! after the checker has refused every other word.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

vocabulary! {
    /// The state a trigger condition waits for (`stage.success`; a flow's, in a start
    /// condition): `done` holds for every end.
    StateWord {
        Success = "success",
        Failed = "failed",
        Done = "done",
        Skipped = "skipped",
        Cancelled = "cancelled",
    }
}

vocabulary! {
    /// When a flow hook fires.
    HookEvent {
        /// The run failed or was cancelled.
        OnFailure = "on_failure",
        OnSuccess = "on_success",
        /// Any end but `skipped`.
        OnFinish = "on_finish",
    }
}

vocabulary! {
    /// Where `activate(...)` delivers rows.
    ActivationTarget {
        File = "file",
        Webhook = "webhook",
        Log = "log",
    }
}

vocabulary! {
    /// What happens to a child run (`call`) when its parent stage is cancelled or times out.
    #[derive(Default)]
    ParentClose {
        /// Stopped at once, without its compensations.
        #[default]
        Terminate = "terminate",
        /// Cancelled: its compensations run.
        RequestCancel = "request_cancel",
        /// Left running, in a process of its own.
        Abandon = "abandon",
    }
}

vocabulary! {
    /// An Airflow trigger rule (`trigger:`): when a stage runs, given its upstream stages.
    #[derive(Default)]
    TriggerRule {
        #[default]
        AllSuccess = "all_success",
        AllFailed = "all_failed",
        AllDone = "all_done",
        OneSuccess = "one_success",
        OneFailed = "one_failed",
        OneDone = "one_done",
        NoneFailed = "none_failed",
        NoneFailedMinOneSuccess = "none_failed_min_one_success",
        NoneSkipped = "none_skipped",
        Always = "always",
        /// Starts when the first upstream succeeds, reads its rows only, and cancels the
        /// upstream stages still running (Temporal's Selector, `Promise.race`).
        FirstSuccess = "first_success",
    }
}

impl TriggerRule {
    /// Whether the rule looks at upstream states, and so means nothing without an upstream.
    pub fn needs_upstream(self) -> bool {
        matches!(
            self,
            TriggerRule::AllFailed
                | TriggerRule::OneSuccess
                | TriggerRule::OneFailed
                | TriggerRule::OneDone
                | TriggerRule::NoneFailedMinOneSuccess
                | TriggerRule::FirstSuccess
        )
    }
}

/// What a stage's failure does to the flow (`on_failure:`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum OnFailure {
    /// The flow fails (and compensates).
    #[default]
    Fail,
    /// The flow goes on as if the stage had not run.
    Ignore,
    /// This stage runs when it fails, and the flow goes on.
    Stage(String),
}

impl OnFailure {
    pub fn parse(word: &str) -> OnFailure {
        match word {
            "fail" => OnFailure::Fail,
            "ignore" => OnFailure::Ignore,
            stage => OnFailure::Stage(stage.to_string()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            OnFailure::Fail => "fail",
            OnFailure::Ignore => "ignore",
            OnFailure::Stage(stage) => stage,
        }
    }
}

impl Serialize for OnFailure {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for OnFailure {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(|word| OnFailure::parse(&word))
    }
}

macro_rules! written_as_words {
    ($($t:ty),*) => {$(
        impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.pad(self.as_str())
            }
        }
    )*};
}

written_as_words!(HookEvent, ActivationTarget, ParentClose, OnFailure);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_written_as_in_the_source() {
        assert_eq!(
            serde_json::to_value(HookEvent::OnFinish).unwrap(),
            "on_finish"
        );
        assert_eq!(
            serde_json::to_value(ParentClose::RequestCancel).unwrap(),
            "request_cancel"
        );
        assert_eq!(
            serde_json::to_value(ActivationTarget::Webhook).unwrap(),
            "webhook"
        );
        for (rule, word) in TriggerRule::ALL.iter().zip(TriggerRule::WORDS) {
            assert_eq!(TriggerRule::parse(word), Some(*rule));
            assert_eq!(rule.as_str(), *word);
        }
        assert_eq!(TriggerRule::parse("all_sucess"), None);
        for word in ["fail", "ignore", "cleanup"] {
            let parsed = OnFailure::parse(word);
            assert_eq!(serde_json::to_value(&parsed).unwrap(), word);
            let back: OnFailure = serde_json::from_value(word.into()).unwrap();
            assert_eq!(back, parsed);
        }
    }
}
