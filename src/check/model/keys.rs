//! The configuration keys (docs/language.md): where each may stand, what it takes, what it
//! means. One table serves the checker, `explain` and (later) editor hovers.

/// Where a config block stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Place {
    Flow,
    Stage,
    Activity,
    Pool,
}

impl Place {
    pub fn describe(self) -> &'static str {
        match self {
            Place::Flow => "a flow",
            Place::Stage => "a stage",
            Place::Activity => "an activity",
            Place::Pool => "a pool",
        }
    }
}

/// What a key's value must be.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Kind {
    /// A whole number at least `min`, at most `max`.
    Int {
        min: i64,
        max: i64,
    },
    /// A number at least `min`.
    Float {
        min: f64,
    },
    /// A duration literal (`30s`) or a humantime string (`'1h 30m'`), greater than zero.
    Duration,
    Bool,
    /// One of the listed words, as a name or a string.
    Word(&'static [&'static str]),
    /// A list of whole numbers (exit codes).
    IntList,
    /// `fail`, `ignore` or the name of a stage.
    FailureAction,
    /// One of Airflow's trigger rules.
    TriggerRule,
    /// An activity call.
    ActivityCall,
    /// An activity call or `activate(...)`.
    Hook,
    /// An expression over the input row and parameters.
    Expression,
    /// A whole number at least 0, or a percentage string `'10%'`.
    CountOrPercent,
    /// `cron('m h dom mon dow')`.
    Cron,
    /// An IANA time zone name.
    TimeZone,
    /// The name of a `pool` of the workspace.
    Pool,
}

impl Kind {
    /// What the value must be, for people.
    pub fn describe(&self) -> String {
        match self {
            Kind::Int { min, max } if *max == i64::MAX => format!("a whole number >= {min}"),
            Kind::Int { min, max } => format!("a whole number {min}..{max}"),
            Kind::Float { min } => format!("a number >= {min}"),
            Kind::Duration => "a duration such as `30s`".into(),
            Kind::Bool => "`true` or `false`".into(),
            Kind::Word(words) => words
                .iter()
                .map(|w| format!("`{w}`"))
                .collect::<Vec<_>>()
                .join(", "),
            Kind::IntList => "a list of exit codes".into(),
            Kind::FailureAction => "`fail`, `ignore` or a stage name".into(),
            Kind::TriggerRule => "a trigger rule such as `all_success`".into(),
            Kind::ActivityCall => "an activity call".into(),
            Kind::Hook => "an activity call or `activate(...)`".into(),
            Kind::Expression => "an expression".into(),
            Kind::CountOrPercent => "a count or a percentage such as `'10%'`".into(),
            Kind::Cron => "`cron('m h dom mon dow')`".into(),
            Kind::TimeZone => "an IANA time zone name".into(),
            Kind::Pool => "the name of a `pool` of the workspace".into(),
        }
    }
}

/// A key's name, places, type and meaning. Its default is the field's in
/// [`super::settings`].
pub struct Key {
    pub name: &'static str,
    pub places: &'static [Place],
    pub kind: Kind,
    pub meaning: &'static str,
}

pub const BACKOFF_KINDS: &[&str] = &crate::retry_rule::Backoff::WORDS;
pub const PARENT_CLOSE: &[&str] = crate::vocabulary::ParentClose::WORDS;
pub const TRIGGER_RULES: &[&str] = crate::vocabulary::TriggerRule::WORDS;

const STAGE_LIKE: &[Place] = &[Place::Stage, Place::Activity];
const STAGE: &[Place] = &[Place::Stage];
const FLOW: &[Place] = &[Place::Flow];
const POOL: &[Place] = &[Place::Pool];

/// Stage keys (also valid in activities, which give defaults), then flow keys. `timeout`,
/// `concurrency` and `on_failure` mean different things in a flow: see [`key`].
pub const STAGE_KEYS: &[Key] = &[
    Key {
        name: "retries",
        places: STAGE_LIKE,
        kind: Kind::Int {
            min: 0,
            max: i64::MAX,
        },
        meaning: "retry attempts after the first (attempts = retries + 1)",
    },
    Key {
        name: "retry_delay",
        places: STAGE_LIKE,
        kind: Kind::Duration,
        meaning: "delay before the first retry",
    },
    Key {
        name: "backoff",
        places: STAGE_LIKE,
        kind: Kind::Word(BACKOFF_KINDS),
        meaning: "growth of the delay: constant d, linear d*n, exponential d*coefficient^(n-1)",
    },
    Key {
        name: "backoff_coefficient",
        places: STAGE_LIKE,
        kind: Kind::Float { min: 1.0 },
        meaning: "factor for exponential backoff",
    },
    Key {
        name: "max_retry_delay",
        places: STAGE_LIKE,
        kind: Kind::Duration,
        meaning: "cap on any single delay; at least retry_delay",
    },
    Key {
        name: "jitter",
        places: STAGE_LIKE,
        kind: Kind::Bool,
        meaning: "full jitter: each delay is drawn uniformly from [0, computed delay]",
    },
    Key {
        name: "timeout",
        places: STAGE_LIKE,
        kind: Kind::Duration,
        meaning: "start-to-close timeout of one attempt",
    },
    Key {
        name: "schedule_timeout",
        places: STAGE_LIKE,
        kind: Kind::Duration,
        meaning: "bound on the stage as a whole, retries and delays included; at least timeout",
    },
    Key {
        name: "heartbeat",
        places: STAGE_LIKE,
        kind: Kind::Duration,
        meaning: "an attempt that reports no progress for this long fails; less than timeout",
    },
    Key {
        name: "non_retryable",
        places: STAGE_LIKE,
        kind: Kind::IntList,
        meaning: "activity exit codes that fail the stage at once, with no retry",
    },
    Key {
        name: "on_failure",
        places: STAGE_LIKE,
        kind: Kind::FailureAction,
        meaning: "`ignore`: the stage ends failed but does not fail the flow; a stage name: that stage runs when this one fails",
    },
    Key {
        name: "trigger",
        places: STAGE,
        kind: Kind::TriggerRule,
        meaning: "Airflow trigger rule over the stage's upstream stages",
    },
    Key {
        name: "compensate",
        places: STAGE_LIKE,
        kind: Kind::ActivityCall,
        meaning: "saga: activity called when a later part of the flow fails",
    },
    Key {
        name: "idempotency_key",
        places: STAGE_LIKE,
        kind: Kind::Expression,
        meaning: "key under which a successful result is recorded and reused",
    },
    Key {
        name: "poll_interval",
        places: STAGE_LIKE,
        kind: Kind::Duration,
        meaning: "how often `wait until` re-checks",
    },
    Key {
        name: "max_iterations",
        places: STAGE,
        kind: Kind::Int {
            min: 1,
            max: i64::MAX,
        },
        meaning: "bound on a `while` loop's iterations: the stage fails when its condition still holds after this many",
    },
    Key {
        name: "continue_as_new",
        places: STAGE,
        kind: Kind::Int {
            min: 1,
            max: i64::MAX,
        },
        meaning: "after this many iterations of its `while` loop in one run, the run goes on as a new run of the flow carrying the loop's state",
    },
    Key {
        name: "priority",
        places: STAGE_LIKE,
        kind: Kind::Int { min: 0, max: 3 },
        meaning: "0 runs first when stages compete for a slot",
    },
    Key {
        name: "concurrency",
        places: STAGE_LIKE,
        kind: Kind::Int {
            min: 1,
            max: i64::MAX,
        },
        meaning: "parallel calls of an `each` fan-out",
    },
    Key {
        name: "tolerated_failures",
        places: STAGE_LIKE,
        kind: Kind::CountOrPercent,
        meaning: "failed items an `each` fan-out may have and still succeed",
    },
    Key {
        name: "pool",
        places: STAGE_LIKE,
        kind: Kind::Pool,
        meaning: "a `pool` of the workspace: the stage (or each `each` item) holds one of its slots while it runs, across runs, flows and processes",
    },
    Key {
        name: "parent_close",
        places: STAGE_LIKE,
        kind: Kind::Word(PARENT_CLOSE),
        meaning: "what happens to a `call`ed child run when this stage is cancelled or times out",
    },
];

pub const FLOW_KEYS: &[Key] = &[
    Key {
        name: "schedule",
        places: FLOW,
        kind: Kind::Cron,
        meaning: "when the scheduler starts the flow: cron('m h dom mon dow')",
    },
    Key {
        name: "interval",
        places: FLOW,
        kind: Kind::Duration,
        meaning: "alternative to schedule: start the flow this often",
    },
    Key {
        name: "timezone",
        places: FLOW,
        kind: Kind::TimeZone,
        meaning: "IANA zone for the cron expression",
    },
    Key {
        name: "concurrency",
        places: FLOW,
        kind: Kind::Int {
            min: 1,
            max: i64::MAX,
        },
        meaning: "max runs of this flow at once",
    },
    Key {
        name: "max_parallel",
        places: FLOW,
        kind: Kind::Int {
            min: 1,
            max: i64::MAX,
        },
        meaning: "max stages of one run executing at once",
    },
    Key {
        name: "timeout",
        places: FLOW,
        kind: Kind::Duration,
        meaning: "bound on the whole run",
    },
    Key {
        name: "on_failure",
        places: FLOW,
        kind: Kind::Hook,
        meaning: "hook fired with the run summary when the run fails",
    },
    Key {
        name: "on_success",
        places: FLOW,
        kind: Kind::Hook,
        meaning: "hook fired with the run summary when the run succeeds",
    },
    Key {
        name: "on_finish",
        places: FLOW,
        kind: Kind::Hook,
        meaning: "hook fired with the run summary when the run ends",
    },
    Key {
        name: "keep_runs",
        places: FLOW,
        kind: Kind::Int {
            min: 1,
            max: i64::MAX,
        },
        meaning: "retention of finished runs",
    },
    Key {
        name: "continue_as_new",
        places: FLOW,
        kind: Kind::Int {
            min: 1,
            max: i64::MAX,
        },
        meaning: "`continue_as_new` of every `while` loop of the flow that does not set its own",
    },
    Key {
        name: "catchup",
        places: FLOW,
        kind: Kind::Bool,
        meaning: "run missed schedule windows",
    },
];

pub const POOL_KEYS: &[Key] = &[Key {
    name: "slots",
    places: POOL,
    kind: Kind::Int {
        min: 1,
        max: i64::MAX,
    },
    meaning: "how many stages or `each` items may hold the pool at once (required)",
}];

fn table(place: Place) -> &'static [Key] {
    match place {
        Place::Flow => FLOW_KEYS,
        Place::Pool => POOL_KEYS,
        Place::Stage | Place::Activity => STAGE_KEYS,
    }
}

/// The key `name` as it applies in `place`.
pub fn key(name: &str, place: Place) -> Option<&'static Key> {
    table(place)
        .iter()
        .find(|k| k.name == name && k.places.contains(&place))
}

/// Every key name valid in `place`, for did-you-mean.
pub fn names_in(place: Place) -> impl Iterator<Item = &'static str> {
    table(place)
        .iter()
        .filter(move |k| k.places.contains(&place))
        .map(|k| k.name)
}

/// Every key name, for did-you-mean.
pub fn all_names() -> impl Iterator<Item = &'static str> {
    STAGE_KEYS
        .iter()
        .chain(FLOW_KEYS)
        .chain(POOL_KEYS)
        .map(|k| k.name)
}

/// Where else a key that is not valid in `place` would be valid.
pub fn places_of(name: &str) -> Vec<Place> {
    let mut places: Vec<Place> = STAGE_KEYS
        .iter()
        .chain(FLOW_KEYS)
        .chain(POOL_KEYS)
        .filter(|k| k.name == name)
        .flat_map(|k| k.places.iter().copied())
        .collect();
    places.dedup();
    places
}
