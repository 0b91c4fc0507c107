//! The configuration in force, resolved once into typed fields: a stage's settings are its
//! activity's block overridden by its own, a flow's are its block. Every default lives here
//! ([`StageSettings::default`], [`FlowSettings::default`]); the key table ([`super::keys`])
//! keeps the names, types and meanings. The checker's relation rules, lowering, editor hovers
//! and `wvflow explain` read these fields instead of looking keys up by name.
//!
//! A value the checker refuses leaves the field as it was (the default, or the activity's):
//! nothing is run from a workspace that does not check, so no refused value is ever used.

use super::graph::activity_calls;
use super::index::{Def, Index};
use super::keys::{self, Place};
use super::values;
use crate::policy::Tolerance;
use crate::retry_rule::RetryPolicy;
use crate::vocabulary::{HookEvent, OnFailure, ParentClose, TriggerRule};
use crate::retry_rule::{Backoff, RetryDelays};
use crate::source::FileId;
use crate::syntax::ast::{Activity, Call, Config, ConfigEntry, Expr, ExprKind, Flow, Stage};
use std::time::Duration;

/// A stage's `priority` when it says none: lower numbers start first. The plan text and the
/// exports leave it out.
pub const DEFAULT_PRIORITY: u8 = 2;

/// Where a setting was written, for diagnostics that point at it.
#[derive(Clone, Copy, Debug)]

pub struct Written<'a> {
    pub file: FileId,
    pub entry: &'a ConfigEntry,
    pub place: Place,
}

/// A value in force, and where it was written (`None`: the default).
#[derive(Clone, Debug)]
pub struct Setting<'a, T> {
    pub value: T,
    pub written: Option<Written<'a>>,
    /// The last entry of the key, even one whose value was refused: a key can be misplaced
    /// and wrong at once, and both are worth saying in one pass.
    last: Option<Written<'a>>,
}

impl<'a, T> Setting<'a, T> {
    fn default(value: T) -> Self {
        Setting {
            value,
            written: None,
            last: None,
        }
    }

    /// The entry, when the stage's own block (not its activity's) wrote the key.
    pub fn own(&self) -> Option<&'a ConfigEntry> {
        self.last
            .filter(|w| w.place == Place::Stage)
            .map(|w| w.entry)
    }

    fn set(&mut self, value: Option<T>, written: Written<'a>) {
        self.last = Some(written);
        if let Some(value) = value {
            self.value = value;
            self.written = Some(written);
        }
    }
}

/// Every stage key of the key table, typed.
#[derive(Clone, Debug)]
pub struct StageSettings<'a> {
    /// Retry attempts after the first, at most `u32::MAX - 1` so attempts fit a `u32`.
    pub retries: Setting<'a, u32>,
    pub retry_delay: Setting<'a, Duration>,
    pub backoff: Setting<'a, Backoff>,
    pub backoff_coefficient: Setting<'a, f64>,
    pub max_retry_delay: Setting<'a, Option<Duration>>,
    pub jitter: Setting<'a, bool>,
    pub timeout: Setting<'a, Option<Duration>>,
    pub schedule_timeout: Setting<'a, Option<Duration>>,
    pub heartbeat: Setting<'a, Option<Duration>>,
    pub non_retryable: Setting<'a, Vec<i64>>,
    pub on_failure: Setting<'a, OnFailure>,
    pub trigger: Setting<'a, TriggerRule>,
    pub compensate: Setting<'a, Option<&'a Call>>,
    pub idempotency_key: Setting<'a, Option<&'a Expr>>,
    pub poll_interval: Setting<'a, Duration>,
    /// The iterations a `while` loop may make before the stage fails.
    pub max_iterations: Setting<'a, u64>,
    /// Iterations of a `while` loop in one run before the run continues as a new one.
    pub continue_as_new: Setting<'a, Option<u64>>,
    pub priority: Setting<'a, u8>,
    pub concurrency: Setting<'a, u64>,
    pub tolerated_failures: Setting<'a, Tolerance>,
    pub parent_close: Setting<'a, ParentClose>,
    /// The `pool` whose slot the stage (or each `each` item) holds while it runs.
    pub pool: Setting<'a, Option<&'a str>>,
}

impl Default for StageSettings<'_> {
    fn default() -> Self {
        StageSettings {
            retries: Setting::default(0),
            retry_delay: Setting::default(Duration::from_secs(1)),
            backoff: Setting::default(Backoff::Exponential),
            backoff_coefficient: Setting::default(2.0),
            max_retry_delay: Setting::default(None),
            jitter: Setting::default(false),
            timeout: Setting::default(None),
            schedule_timeout: Setting::default(None),
            heartbeat: Setting::default(None),
            non_retryable: Setting::default(Vec::new()),
            on_failure: Setting::default(OnFailure::Fail),
            trigger: Setting::default(TriggerRule::AllSuccess),
            compensate: Setting::default(None),
            idempotency_key: Setting::default(None),
            poll_interval: Setting::default(Duration::from_secs(10)),
            max_iterations: Setting::default(DEFAULT_MAX_ITERATIONS),
            continue_as_new: Setting::default(None),
            priority: Setting::default(DEFAULT_PRIORITY),
            concurrency: Setting::default(8),
            tolerated_failures: Setting::default(Tolerance::Count(0)),
            parent_close: Setting::default(ParentClose::Terminate),
            pool: Setting::default(None),
        }
    }
}

/// The iterations a `while` loop makes at most when the stage does not say: enough for
/// real paging and polling, few enough that a condition that never turns false fails soon.
pub const DEFAULT_MAX_ITERATIONS: u64 = 1000;

/// The activity whose settings a stage takes: the one it calls, when it calls exactly one.
pub fn activity_of<'a>(index: &Index<'a>, stage: &Stage) -> Option<Def<'a, Activity>> {
    let mut names: Vec<&str> = activity_calls(stage)
        .iter()
        .map(|c| c.name.name.as_str())
        .collect();
    names.dedup();
    match names.as_slice() {
        [only] => index.activity_by_name.get(only).copied(),
        _ => None,
    }
}

impl<'a> StageSettings<'a> {
    /// A stage's settings: the defaults, its activity's block when it calls exactly one
    /// activity, then its own block.
    pub fn of_stage(index: &Index<'a>, file: FileId, stage: &'a Stage) -> Self {
        let mut settings = StageSettings::default();
        if let Some(def) = activity_of(index, stage)
            && let Some(config) = &def.node.config
        {
            settings.add(def.file, config, Place::Activity);
        }
        if let Some(config) = &stage.config {
            settings.add(file, config, Place::Stage);
        }
        settings
    }

    /// The settings an activity gives every stage that calls it (and its own calls as a
    /// hook or a compensation).
    pub fn of_activity(file: FileId, activity: &'a Activity) -> Self {
        let mut settings = StageSettings::default();
        if let Some(config) = &activity.config {
            settings.add(file, config, Place::Activity);
        }
        settings
    }

    fn add(&mut self, file: FileId, config: &'a Config, place: Place) {
        for entry in &config.entries {
            if keys::key(&entry.key.name, place).is_some() {
                self.apply(Written { file, entry, place });
            }
        }
    }

    /// The one place a stage key's name meets its field.
    fn apply(&mut self, w: Written<'a>) -> bool {
        let v = &w.entry.value;
        let duration = || values::duration(v).ok().filter(|d| !d.is_zero());
        match w.entry.key.name.as_str() {
            "retries" => self.retries.set(
                values::int(v)
                    .filter(|n| *n >= 0)
                    .map(|n| n.min(u32::MAX as i64 - 1) as u32),
                w,
            ),
            "retry_delay" => self.retry_delay.set(duration(), w),
            "backoff" => self
                .backoff
                .set(values::word(v).and_then(Backoff::parse), w),
            "backoff_coefficient" => self
                .backoff_coefficient
                .set(values::number(v).filter(|x| *x >= 1.0), w),
            "max_retry_delay" => self.max_retry_delay.set(duration().map(Some), w),
            "jitter" => self.jitter.set(values::boolean(v), w),
            "timeout" => self.timeout.set(duration().map(Some), w),
            "schedule_timeout" => self.schedule_timeout.set(duration().map(Some), w),
            "heartbeat" => self.heartbeat.set(duration().map(Some), w),
            "non_retryable" => self.non_retryable.set(
                match &v.kind {
                    ExprKind::List(items) => items.iter().map(values::int).collect(),
                    _ => None,
                },
                w,
            ),
            "on_failure" => self
                .on_failure
                .set(values::word(v).map(OnFailure::parse), w),
            "trigger" => self
                .trigger
                .set(values::word(v).and_then(TriggerRule::parse), w),
            "compensate" => self.compensate.set(
                match &v.kind {
                    ExprKind::Call(call) => Some(Some(&**call)),
                    _ => None,
                },
                w,
            ),
            "idempotency_key" => self.idempotency_key.set(Some(Some(v)), w),
            "poll_interval" => self.poll_interval.set(duration(), w),
            "max_iterations" => self.max_iterations.set(
                values::int(v).and_then(|n| u64::try_from(n).ok()).filter(|n| *n >= 1),
                w,
            ),
            "continue_as_new" => self.continue_as_new.set(
                values::int(v)
                    .and_then(|n| u64::try_from(n).ok())
                    .filter(|n| *n >= 1)
                    .map(Some),
                w,
            ),
            "priority" => self
                .priority
                .set(values::int(v).and_then(|p| u8::try_from(p).ok()), w),
            "concurrency" => self
                .concurrency
                .set(values::int(v).and_then(|n| u64::try_from(n).ok()), w),
            "tolerated_failures" => self.tolerated_failures.set(tolerance(v), w),
            "parent_close" => self
                .parent_close
                .set(values::word(v).and_then(ParentClose::parse), w),
            "pool" => self.pool.set(values::word(v).map(Some), w),
            _ => return false,
        }
        true
    }

    /// The delays between attempts.
    pub fn retry_delays(&self) -> RetryDelays {
        RetryDelays {
            first: self.retry_delay.value,
            backoff: self.backoff.value,
            coefficient: self.backoff_coefficient.value,
            cap: self.max_retry_delay.value,
        }
    }

    /// The retry policy as the plan carries it.
    pub fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy {
            attempts: self.retries.value + 1,
            initial_delay_ms: millis(self.retry_delay.value),
            backoff: self.backoff.value,
            coefficient: self.backoff_coefficient.value,
            max_delay_ms: self.max_retry_delay.value.map(millis),
            jitter: self.jitter.value,
            non_retryable: self.non_retryable.value.clone(),
        }
    }

    /// A key's value as a user writes it (`30s`, `exponential`, `none`).
    pub fn show(&self, key: &str) -> Option<String> {
        let duration = |d: Option<Duration>| d.map_or("none".to_string(), values::show);
        Some(match key {
            "retries" => self.retries.value.to_string(),
            "retry_delay" => values::show(self.retry_delay.value),
            "backoff" => self.backoff.value.to_string(),
            "backoff_coefficient" => format!("{:?}", self.backoff_coefficient.value),
            "max_retry_delay" => duration(self.max_retry_delay.value),
            "jitter" => self.jitter.value.to_string(),
            "timeout" => duration(self.timeout.value),
            "schedule_timeout" => duration(self.schedule_timeout.value),
            "heartbeat" => duration(self.heartbeat.value),
            "non_retryable" => format!("{:?}", self.non_retryable.value),
            "on_failure" => self.on_failure.value.to_string(),
            "trigger" => self.trigger.value.as_str().to_string(),
            "compensate" => written_or_none(&self.compensate),
            "idempotency_key" => written_or_none(&self.idempotency_key),
            "poll_interval" => values::show(self.poll_interval.value),
            "max_iterations" => self.max_iterations.value.to_string(),
            "continue_as_new" => self
                .continue_as_new
                .value
                .map_or("never".to_string(), |n| n.to_string()),
            "priority" => self.priority.value.to_string(),
            "concurrency" => self.concurrency.value.to_string(),
            "tolerated_failures" => match self.tolerated_failures.value {
                Tolerance::Count(n) => n.to_string(),
                Tolerance::Percent(p) => format!("'{p}%'"),
            },
            "parent_close" => self.parent_close.value.to_string(),
            "pool" => self.pool.value.unwrap_or("none").to_string(),
            _ => return None,
        })
    }
}

/// Every flow key of the key table, typed.
#[derive(Clone, Debug)]
pub struct FlowSettings<'a> {
    /// The cron pattern of `schedule: cron('...')`.
    pub schedule: Setting<'a, Option<String>>,
    pub interval: Setting<'a, Option<Duration>>,
    pub timezone: Setting<'a, String>,
    pub catchup: Setting<'a, bool>,
    /// Runs of the flow at once; `None`: unbounded.
    pub concurrency: Setting<'a, Option<u64>>,
    /// Stages of one run at once; `None`: the number of cores.
    pub max_parallel: Setting<'a, Option<u64>>,
    pub timeout: Setting<'a, Option<Duration>>,
    /// Finished runs kept; `None`: all.
    pub keep_runs: Setting<'a, Option<u64>>,
    /// `continue_as_new` of the flow's loops that do not set their own.
    pub continue_as_new: Setting<'a, Option<u64>>,
    /// `on_failure`, `on_success`, `on_finish`, in [`HookEvent::ALL`] order.
    pub hooks: Vec<(HookEvent, Setting<'a, &'a Call>)>,
}

impl Default for FlowSettings<'_> {
    fn default() -> Self {
        FlowSettings {
            schedule: Setting::default(None),
            interval: Setting::default(None),
            timezone: Setting::default("UTC".to_string()),
            catchup: Setting::default(false),
            concurrency: Setting::default(None),
            max_parallel: Setting::default(None),
            timeout: Setting::default(None),
            keep_runs: Setting::default(None),
            continue_as_new: Setting::default(None),
            hooks: Vec::new(),
        }
    }
}

impl<'a> FlowSettings<'a> {
    pub fn of_flow(file: FileId, flow: &'a Flow) -> Self {
        let mut settings = FlowSettings::default();
        let Some(config) = &flow.config else {
            return settings;
        };
        for entry in &config.entries {
            if keys::key(&entry.key.name, Place::Flow).is_some() {
                settings.apply(Written {
                    file,
                    entry,
                    place: Place::Flow,
                });
            }
        }
        settings
            .hooks
            .sort_by_key(|(event, _)| HookEvent::ALL.iter().position(|e| e == event));
        settings
    }

    /// The one place a flow key's name meets its field.
    fn apply(&mut self, w: Written<'a>) -> bool {
        let v = &w.entry.value;
        let duration = || values::duration(v).ok().filter(|d| !d.is_zero());
        let count = || values::int(v).and_then(|n| u64::try_from(n).ok()).map(Some);
        let key = w.entry.key.name.as_str();
        match key {
            "schedule" => self.schedule.set(cron_pattern(v).map(Some), w),
            "interval" => self.interval.set(duration().map(Some), w),
            "timezone" => self.timezone.set(values::word(v).map(str::to_string), w),
            "catchup" => self.catchup.set(values::boolean(v), w),
            "concurrency" => self.concurrency.set(count(), w),
            "max_parallel" => self.max_parallel.set(count(), w),
            "timeout" => self.timeout.set(duration().map(Some), w),
            "keep_runs" => self.keep_runs.set(count(), w),
            "continue_as_new" => self
                .continue_as_new
                .set(count().filter(|n| n.is_some_and(|n| n >= 1)), w),
            _ => match (HookEvent::parse(key), &v.kind) {
                (Some(event), ExprKind::Call(call)) => {
                    self.hooks.retain(|(e, _)| *e != event);
                    let mut hook = Setting::default(&**call);
                    hook.set(Some(&**call), w);
                    self.hooks.push((event, hook));
                }
                (Some(_), _) => {}
                (None, _) => return false,
            },
        }
        true
    }

    /// A key's value as a user writes it.
    pub fn show(&self, key: &str) -> Option<String> {
        let or = |n: Option<u64>, none: &str| n.map_or(none.to_string(), |n| n.to_string());
        Some(match key {
            "schedule" => self
                .schedule
                .value
                .as_ref()
                .map_or("none".to_string(), |p| format!("cron('{p}')")),
            "interval" => self.interval.value.map_or("none".to_string(), values::show),
            "timezone" => format!("'{}'", self.timezone.value),
            "catchup" => self.catchup.value.to_string(),
            "concurrency" => or(self.concurrency.value, "unbounded"),
            "max_parallel" => or(self.max_parallel.value, "number of cores"),
            "timeout" => self.timeout.value.map_or("none".to_string(), values::show),
            "keep_runs" => or(self.keep_runs.value, "all"),
            "continue_as_new" => or(self.continue_as_new.value, "never"),
            _ => {
                let event = HookEvent::parse(key)?;
                match self.hooks.iter().find(|(e, _)| *e == event) {
                    Some((_, hook)) => format!("{}(...)", hook.value.name.name),
                    None => "none".to_string(),
                }
            }
        })
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn written_or_none<T>(setting: &Setting<'_, Option<T>>) -> String {
    match setting.value {
        Some(_) => "set".to_string(),
        None => "none".to_string(),
    }
}

fn tolerance(v: &Expr) -> Option<Tolerance> {
    match &v.kind {
        ExprKind::Int(n) => u64::try_from(*n).ok().map(Tolerance::Count),
        ExprKind::Str(s) => s
            .strip_suffix('%')
            .and_then(|p| p.trim().parse::<f64>().ok())
            .filter(|p| (0.0..=100.0).contains(p))
            .map(Tolerance::Percent),
        _ => None,
    }
}

fn cron_pattern(v: &Expr) -> Option<String> {
    let ExprKind::Call(call) = &v.kind else {
        return None;
    };
    match &call.args.first()?.value.kind {
        ExprKind::Str(s) => Some(s.to_string()),
        _ => None,
    }
}

/// A pool's settings: `slots`, which has no default.
pub struct PoolSettings<'a> {
    pub slots: Setting<'a, Option<u64>>,
}

impl<'a> PoolSettings<'a> {
    pub fn of_pool(file: FileId, pool: &'a crate::syntax::ast::Pool) -> Self {
        let mut slots = Setting::default(None);
        for entry in &pool.config.entries {
            if entry.key.name == "slots" {
                let w = Written {
                    file,
                    entry,
                    place: Place::Pool,
                };
                slots.set(
                    values::int(&entry.value)
                        .and_then(|n| u64::try_from(n).ok())
                        .filter(|n| *n >= 1)
                        .map(Some),
                    w,
                );
            }
        }
        PoolSettings { slots }
    }
}

/// The text `wvflow explain KEY` prints and an editor shows on hover: where the key stands,
/// what it takes, its default and its meaning.
pub fn key_help(key: &keys::Key, place: Place) -> String {
    let default = match place {
        Place::Flow => FlowSettings::default().show(key.name),
        Place::Stage | Place::Activity => StageSettings::default().show(key.name),
        Place::Pool => Some("none: required".to_string()),
    };
    format!(
        "**`{}`** ({} key): {}\n\n{}\n\ndefault: `{}`",
        key.name,
        place
            .describe()
            .trim_start_matches("a ")
            .trim_start_matches("an "),
        key.kind.describe(),
        key.meaning,
        default.unwrap_or_else(|| "none".to_string()),
    )
}

/// `wvflow explain KEY`: the hover text of the key, for each place it stands (`timeout` is a
/// stage key and a flow key), without markdown emphasis; `None` for an unknown key.
pub fn explain_key(name: &str) -> Option<String> {
    let entries: Vec<String> = [Place::Stage, Place::Flow, Place::Pool]
        .into_iter()
        .filter_map(|place| keys::key(name, place).map(|key| key_help(key, place)))
        .map(|text| text.replace("**", ""))
        .collect();
    (!entries.is_empty()).then(|| entries.join("\n\n"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::syntax::ast::Ident;

    fn entry(key: &str) -> ConfigEntry {
        let span = crate::span::Span::new(0, 0);
        ConfigEntry {
            key: Ident {
                name: key.into(),
                span,
            },
            value: Expr {
                kind: ExprKind::Null,
                span,
            },
        }
    }

    #[test]
    fn every_key_of_the_table_has_a_field() {
        for key in keys::STAGE_KEYS {
            let e = entry(key.name);
            let w = Written {
                file: FileId(0),
                entry: &e,
                place: Place::Stage,
            };
            assert!(StageSettings::default().apply(w), "{}", key.name);
            assert!(
                StageSettings::default().show(key.name).is_some(),
                "{}",
                key.name
            );
        }
        for key in keys::FLOW_KEYS {
            let e = entry(key.name);
            let w = Written {
                file: FileId(0),
                entry: &e,
                place: Place::Flow,
            };
            assert!(FlowSettings::default().apply(w), "{}", key.name);
            assert!(
                FlowSettings::default().show(key.name).is_some(),
                "{}",
                key.name
            );
        }
    }

    /// docs/language.md lists each key with its default: the same defaults as the code.
    #[test]
    fn the_documented_defaults_are_the_defaults() {
        let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/language.md"))
            .expect("docs/language.md");
        let section = |heading: &str| {
            let start = doc.find(heading).expect(heading);
            let rest = &doc[start..];
            rest[..rest[4..].find("\n#").map_or(rest.len(), |end| end + 4)].to_string()
        };
        let mut checked = 0;
        for (heading, place) in [
            ("### Stage keys", Place::Stage),
            ("### Flow keys", Place::Flow),
        ] {
            for line in section(heading).lines() {
                let cells: Vec<&str> = line.split('|').map(str::trim).collect();
                let [_, names, _, default, ..] = cells.as_slice() else {
                    continue;
                };
                for name in names
                    .split(", ")
                    .filter_map(|n| n.strip_prefix('`')?.strip_suffix('`'))
                {
                    let shown = match place {
                        Place::Flow => FlowSettings::default().show(name),
                        _ => StageSettings::default().show(name),
                    };
                    assert_eq!(
                        shown.as_deref(),
                        Some(*default),
                        "default of `{name}` ({place:?})"
                    );
                    checked += 1;
                }
            }
        }
        assert_eq!(checked, keys::STAGE_KEYS.len() + keys::FLOW_KEYS.len());
    }
}
