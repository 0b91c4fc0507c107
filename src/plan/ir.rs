//! The execution plan: what the interpreter runs and what exporters translate. Nothing after
//! lowering reads the syntax tree. Serialized as JSON (`wvflow plan --format json`); the
//! schema is documented in `docs/plan.md` and versioned by [`PLAN_VERSION`].

pub use crate::vocabulary::{ActivationTarget, HookEvent, OnFailure, ParentClose, StateWord};
pub use crate::policy::{CHAIN_DEPTH, Tolerance};
pub use crate::retry_rule::RetryPolicy;
use crate::value::ValueType;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Bumped whenever the JSON shape changes incompatibly.
pub const PLAN_VERSION: u32 = 1;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Plan {
    pub plan_version: u32,
    pub flow: FlowPlan,
}

/// Where something was written: file, 1-based line and column, and byte range.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Origin {
    pub file: String,
    pub line: u32,
    pub column: u32,
    pub start: u32,
    pub end: u32,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct FlowPlan {
    pub name: String,
    pub version: Option<u32>,
    pub params: Vec<ParamPlan>,
    pub schedule: Option<Schedule>,
    pub concurrency: Option<u64>,
    pub max_parallel: Option<u64>,
    pub timeout_ms: Option<u64>,
    pub keep_runs: Option<u64>,
    pub hooks: Vec<Hook>,
    pub depends_on: Vec<String>,
    /// `flow f if other.failed`: when a run of another flow should start this one.
    pub start_condition: Option<Cond>,
    /// Every stage, fork branches included, in a topological order (upstream first).
    pub stages: Vec<StagePlan>,
    pub origin: Origin,
    /// `signal NAME = EXPR`: values sent to a running run; `sql` is the initial value.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub signals: Vec<NamedSql>,
    /// `query NAME = EXPR`: read-only expressions over the run's state, evaluated on request.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub queries: Vec<NamedSql>,
}

/// A named expression of the flow (a signal's initial value, a query).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct NamedSql {
    pub name: String,
    pub sql: Sql,
    /// The value's type, as the checker types the expression (a signal: its initial
    /// value's): what a signal's values are read as, and how values are written back out.
    #[serde(rename = "type", default)]
    #[schemars(with = "String")]
    pub ty: ValueType,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ParamPlan {
    pub name: String,
    #[serde(rename = "type")]
    #[schemars(with = "String")]
    pub ty: ValueType,
    /// The default as a JSON value (durations in milliseconds); absent when the parameter
    /// has none, `null` when its default is null.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    pub default: Option<serde_json::Value>,
}

/// A field that is there, even as `null`: `Some` of its value.
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<serde_json::Value>, D::Error> {
    serde_json::Value::deserialize(d).map(Some)
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Schedule {
    pub cron: Option<String>,
    pub interval_ms: Option<u64>,
    pub timezone: String,
    pub catchup: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Hook {
    /// `on_failure`, `on_success` or `on_finish`.
    #[schemars(with = "String")]
    pub event: HookEvent,
    pub action: Action,
}

/// What a hook or a compensation does.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Action {
    Invoke(Invocation),
    Activate(Activation),
}

/// A boolean formula over the terminal states of stages (or, for start conditions, of flow
/// runs). Airflow-style rules and `if` triggers both lower to this one form.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Cond {
    True,
    /// `stage` ended in `state` (`done` holds for every terminal state).
    State {
        stage: String,
        #[schemars(with = "String")]
        state: StateWord,
    },
    Not {
        arg: Box<Cond>,
    },
    And {
        args: Vec<Cond>,
    },
    Or {
        args: Vec<Cond>,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum NodeKind {
    Query,
    Activity,
    Each,
    Route,
    Fork,
    Merge,
    Wait,
    WaitUntil,
    Activate,
    Jump,
    Call,
    End,
    Loop,
}

impl NodeKind {
    pub fn name(self) -> &'static str {
        match self {
            NodeKind::Query => "query",
            NodeKind::Activity => "activity",
            NodeKind::Each => "each",
            NodeKind::Route => "route",
            NodeKind::Fork => "fork",
            NodeKind::Merge => "merge",
            NodeKind::Wait => "wait",
            NodeKind::WaitUntil => "wait_until",
            NodeKind::Activate => "activate",
            NodeKind::Jump => "jump",
            NodeKind::Call => "call",
            NodeKind::End => "end",
            NodeKind::Loop => "loop",
        }
    }
}

/// A data file a `wait until` stage reads anew at each poll, and the table it is read into
/// (one of the stage's connection, which the stage's SQL names).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct WatchedFile {
    pub path: String,
    pub table: String,
}

/// An upstream stage and the state this stage waits for it to reach.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Edge {
    pub stage: String,
    /// `success`, `done`, `not failed`, `first success`, ... or several joined by `|`.
    #[schemars(with = "String")]
    pub requires: Requires,
}

/// What a stage waits for an upstream stage to reach, one or more of these (in the plan's
/// JSON and its drawings, joined by `|`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Requires(pub Vec<Requirement>);

/// One thing a stage waits for of an upstream stage.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Requirement {
    /// It reaches this state.
    Reaches(StateWord),
    /// It ends in any other state than this one.
    NotReaches(StateWord),
    /// It is the first of the stage's upstreams to succeed (`first_success`).
    FirstSuccess,
}

impl std::fmt::Display for Requirement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Requirement::Reaches(state) => f.write_str(state.as_str()),
            Requirement::NotReaches(state) => write!(f, "not {}", state.as_str()),
            Requirement::FirstSuccess => f.write_str("first success"),
        }
    }
}

impl std::str::FromStr for Requirement {
    type Err = NotAState;

    fn from_str(text: &str) -> Result<Self, NotAState> {
        let state = |word: &str| StateWord::parse(word).ok_or_else(|| NotAState(word.into()));
        match text.strip_prefix("not ") {
            _ if text == "first success" => Ok(Requirement::FirstSuccess),
            Some(word) => state(word).map(Requirement::NotReaches),
            None => state(text).map(Requirement::Reaches),
        }
    }
}

/// A word of a plan's `requires` that names no stage state.
#[derive(Debug)]
pub struct NotAState(String);

impl std::fmt::Display for NotAState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "`{}` is not a stage's state", self.0)
    }
}

impl std::fmt::Display for Requires {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, r) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("|")?;
            }
            write!(f, "{r}")?;
        }
        Ok(())
    }
}

impl Serialize for Requires {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Requires {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.split('|')
            .map(str::parse)
            .collect::<Result<Vec<_>, _>>()
            .map(Requires)
            .map_err(serde::de::Error::custom)
    }
}

/// A SQL statement, in the dialect of the database its stage runs on (SQLite, unless the
/// stage is on a connector). Flow parameters and the run's values appear as named parameters
/// (`:day`, `:run_time`); for a server they are written in as literals when the stage runs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Sql {
    pub text: String,
    pub params: Vec<String>,
}

/// A call of an activity with its arguments bound to its parameters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Invocation {
    pub activity: String,
    pub command: Command,
    /// One per activity parameter, in declaration order: a SQL expression evaluated against
    /// the input row (for `each`) or the run's parameters.
    pub bindings: Vec<Binding>,
    pub retry: RetryPolicy,
    pub timeout_ms: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Command {
    /// A program and its arguments, no shell.
    Exec { argv: Vec<ArgvItem> },
    /// Shell text run with `sh -c`; parameters arrive as `WV_<NAME>` environment variables.
    Shell { text: String },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", content = "value", rename_all = "snake_case")]
pub enum ArgvItem {
    Literal(String),
    /// The value of an activity parameter.
    Param(String),
    /// Any other expression over the parameters, evaluated before the program starts.
    Expr(TypedSql),
}

/// An expression as SQL over named parameters, and the wvflow type of its value.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TypedSql {
    pub sql: String,
    #[serde(rename = "type")]
    pub ty: ValueType,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Binding {
    pub param: String,
    pub sql: String,
    /// Flow parameters and run values the expression uses.
    pub params: Vec<String>,
    /// The expression reads a column of the input row (`_.x`). Outside `each`, such a call
    /// takes the input's single row, and refuses zero or several rows.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub reads_row: bool,
    /// The parameter's declared type: how the value reaches the activity or flow.
    #[serde(rename = "type", default)]
    pub ty: ValueType,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Activation {
    /// `file`, `webhook` or `log`.
    #[schemars(with = "String")]
    pub target: ActivationTarget,
    /// Options written as literals.
    pub options: std::collections::BTreeMap<String, serde_json::Value>,
    /// Options written as expressions (`path: out_path`), evaluated with the run's values
    /// before the rows are delivered.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub computed: Vec<Binding>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct FlowRef {
    pub flow: String,
    /// The version written, else the highest the workspace has (`None`: the flow has none).
    pub version: Option<u32>,
    /// Argument bindings to the target flow's parameters (SQL expressions).
    pub args: Vec<Binding>,
}

/// One step of a stage's pipeline, run in order; each consumes the rows of the step before.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum Step {
    /// Rows from SQL; the previous step's rows are the table `_input`.
    Query {
        sql: Sql,
        /// The type of each output column where the checker knows it.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        types: Vec<ValueType>,
    },
    /// The rows of several queries together, matched by column name (`merge`, `from a, b`).
    Union {
        inputs: Vec<Sql>,
    },
    Invoke {
        invocation: Invocation,
    },
    Each {
        invocation: Invocation,
        #[serde(flatten)]
        fan: FanOut,
    },
    /// One child run per input row (`each call F(...)`), retried by the stage's policy; the
    /// children's final rows together are the step's rows.
    EachCall {
        target: FlowRef,
        #[schemars(with = "String")]
        parent_close: ParentClose,
        #[serde(flatten)]
        fan: FanOut,
    },
    /// Rows pass through; each target stage reads the rows its filter selects.
    Route {
        targets: Vec<RouteTarget>,
    },
    /// Rows pass through; the branches are stages of their own.
    Fork {
        branches: Vec<String>,
    },
    Wait {
        ms: u64,
        /// A duration written as an expression (a parameter): evaluated when the wait
        /// starts, instead of `ms`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        duration: Option<Sql>,
    },
    WaitUntil {
        condition: Sql,
        poll_interval_ms: u64,
        /// The data files the stage reads, each as a table of its own that is loaded from
        /// the file before the stage's first query and again before each poll: the wait
        /// sees the file change or appear. Other stages read a file once per run.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        watched: Vec<WatchedFile>,
    },
    Activate {
        activation: Activation,
    },
    SaveTo {
        table: String,
    },
    Jump {
        target: FlowRef,
    },
    Call {
        target: FlowRef,
        #[schemars(with = "String")]
        parent_close: ParentClose,
    },
    End,
    /// `while COND | ...`: the steps of `body` run again and again, each time on the rows the
    /// time before gave (the step's input the first time), while `condition` holds over them;
    /// the step's rows are every iteration's rows, each with its `iteration` (from 1).
    While {
        condition: LoopCondition,
        body: Vec<Step>,
        /// Iterations at most: the stage fails when the condition still holds after them.
        max_iterations: u64,
        /// After this many iterations in one run, the run goes on as a new run of the flow
        /// that starts at the next iteration, its condition already decided, over the rows
        /// of the last one (`wvflow run`); an exported task starts its rows anew instead.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        continue_as_new: Option<u64>,
    },
}

/// What decides, before each iteration of a `while`, whether it runs. `iteration()` reads the
/// number of the iteration being decided.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum LoopCondition {
    /// A SQL query giving one value, true (1) to go on. With `over_rows` it reads the rows of
    /// the iteration before as `_input` (no rows there: the condition does not hold).
    Sql {
        sql: Sql,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        over_rows: bool,
    },
    /// An activity called with the rows of the iteration before on stdin, as a single call
    /// is: the loop goes on while it prints at least one row.
    Invoke { invocation: Invocation },
}

/// A `pool` of the workspace: its name and how many may hold it at once.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PoolPlan {
    pub name: String,
    pub slots: u64,
}

/// How an `each` fans out.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct FanOut {
    /// Items at once.
    pub concurrency: u64,
    pub tolerated_failures: Tolerance,
    /// Another stage reads the failed items (`failed(stage)`): they are written to the run
    /// table `<stage>.failed`, the item's index, exit code and error, then its row.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub keep_failed: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RouteTarget {
    pub stage: String,
    /// A SQL condition over the route's rows: first match wins, so it excludes earlier cases.
    pub filter: String,
}

/// A route stage as one of its targets reads it: the target's rows are the route's rows that
/// satisfy `filter`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RouteInput {
    pub route: String,
    pub filter: String,
}

/// The SQL parameter that names the first upstream to succeed, in a `first_success` stage.
pub const FIRST_SUCCESS_PARAM: &str = "@first_success";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct StagePlan {
    pub id: String,
    pub kind: NodeKind,
    pub upstream: Vec<Edge>,
    pub trigger: Cond,
    pub steps: Vec<Step>,
    /// Applies to the stage's activity calls.
    pub retry: RetryPolicy,
    pub timeout_ms: Option<u64>,
    pub schedule_timeout_ms: Option<u64>,
    pub heartbeat_ms: Option<u64>,
    pub priority: u8,
    /// `fail`, `ignore`, or a stage that runs when this one fails.
    #[schemars(with = "String")]
    pub on_failure: OnFailure,
    pub compensation: Option<Invocation>,
    pub idempotency_key: Option<Sql>,
    /// The key is evaluated for each row of the stage's `each` (over `_input`): every item is
    /// recorded and reused under its own key.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub idempotency_per_item: bool,
    /// The key of a stage without `each` reads its input's one row (`_.column`): it is
    /// evaluated over the rows reaching the stage's first step that is not a query, before
    /// that step runs.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub idempotency_reads_row: bool,
    /// The key of a loop stage that reads `iteration()`: evaluated before each iteration, and
    /// each iteration's rows are recorded and reused under its own key.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub idempotency_per_iteration: bool,
    /// `trigger: first_success`: the stage starts when its first upstream succeeds, reads
    /// only that stage's rows (its SQL compares [`FIRST_SUCCESS_PARAM`] with each upstream's
    /// name), and the upstream stages still running are cancelled.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub first_success: bool,
    /// The pool whose slot the stage (or each of its `each` items) holds while it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool: Option<PoolPlan>,
    /// Stages whose failed items this one reads (`failed(stage)`): a stage that did not run
    /// has none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reads_failed: Vec<String>,
    /// The routes this stage is a target of, each with the filter that selects its rows: a
    /// target that gets no rows from any of them is skipped (the branch was not taken).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routed_from: Vec<RouteInput>,
    /// The stage whose `fork { }` holds this one.
    pub fork_parent: Option<String>,
    pub connector: Option<String>,
    /// A stage on a server (`on pg`): the rows of the stages it reads, each shipped from the
    /// run database into a temporary table of its session before its queries run; its
    /// queries are in the server's dialect.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ship_in: Vec<ShipIn>,
    pub origin: Origin,
}

/// Rows shipped to a server: what `sql` (SQLite, over the run database) gives becomes the
/// session's temporary table `table`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ShipIn {
    pub table: String,
    pub sql: Sql,
}

/// The JSON Schema of [`Plan`], as published in `docs/plan.schema.json`.
pub fn json_schema() -> String {
    // Plain data: serialization cannot fail.
    serde_json::to_string_pretty(&schemars::schema_for!(Plan)).unwrap_or_default() + "\n"
}
