//! The plan's closed vocabularies, written in the plan's JSON as the words of the source
//! (`on_failure`, `request_cancel`, `webhook`, ...). Each word is parsed once, in lowering,
//! after the checker has refused every other word.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// When a flow hook fires.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HookEvent {
    /// The run failed or was cancelled.
    OnFailure,
    OnSuccess,
    /// Any end but `skipped`.
    OnFinish,
}

impl HookEvent {
    pub const ALL: [HookEvent; 3] = [
        HookEvent::OnFailure,
        HookEvent::OnSuccess,
        HookEvent::OnFinish,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            HookEvent::OnFailure => "on_failure",
            HookEvent::OnSuccess => "on_success",
            HookEvent::OnFinish => "on_finish",
        }
    }
}

/// Where `activate(...)` delivers rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ActivationTarget {
    File,
    Webhook,
    Log,
}

impl ActivationTarget {
    pub const WORDS: [&str; 3] = ["file", "webhook", "log"];

    pub fn parse(word: &str) -> Option<ActivationTarget> {
        match word {
            "file" => Some(ActivationTarget::File),
            "webhook" => Some(ActivationTarget::Webhook),
            "log" => Some(ActivationTarget::Log),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ActivationTarget::File => "file",
            ActivationTarget::Webhook => "webhook",
            ActivationTarget::Log => "log",
        }
    }
}

/// What happens to a child run (`call`) when its parent stage is cancelled or times out.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ParentClose {
    /// Stopped at once, without its compensations.
    #[default]
    Terminate,
    /// Cancelled: its compensations run.
    RequestCancel,
    /// Left running, in a process of its own.
    Abandon,
}

impl ParentClose {
    pub const WORDS: [&str; 3] = ["terminate", "request_cancel", "abandon"];

    pub fn as_str(self) -> &'static str {
        match self {
            ParentClose::Terminate => "terminate",
            ParentClose::RequestCancel => "request_cancel",
            ParentClose::Abandon => "abandon",
        }
    }

    pub fn parse(word: &str) -> Option<ParentClose> {
        match word {
            "terminate" => Some(ParentClose::Terminate),
            "request_cancel" => Some(ParentClose::RequestCancel),
            "abandon" => Some(ParentClose::Abandon),
            _ => None,
        }
    }
}

/// An Airflow trigger rule (`trigger:`): when a stage runs, given its upstream stages.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TriggerRule {
    #[default]
    AllSuccess,
    AllFailed,
    AllDone,
    OneSuccess,
    OneFailed,
    OneDone,
    NoneFailed,
    NoneFailedMinOneSuccess,
    NoneSkipped,
    Always,
}

impl TriggerRule {
    pub const ALL: [TriggerRule; 10] = [
        TriggerRule::AllSuccess,
        TriggerRule::AllFailed,
        TriggerRule::AllDone,
        TriggerRule::OneSuccess,
        TriggerRule::OneFailed,
        TriggerRule::OneDone,
        TriggerRule::NoneFailed,
        TriggerRule::NoneFailedMinOneSuccess,
        TriggerRule::NoneSkipped,
        TriggerRule::Always,
    ];
    pub const WORDS: [&str; 10] = [
        "all_success",
        "all_failed",
        "all_done",
        "one_success",
        "one_failed",
        "one_done",
        "none_failed",
        "none_failed_min_one_success",
        "none_skipped",
        "always",
    ];

    pub fn parse(word: &str) -> Option<TriggerRule> {
        let at = Self::WORDS.iter().position(|w| *w == word)?;
        Some(Self::ALL[at])
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
        for (rule, word) in TriggerRule::ALL.into_iter().zip(TriggerRule::WORDS) {
            assert_eq!(TriggerRule::parse(word), Some(rule));
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
