//! The syntax tree of one `.wv` file. Every node keeps the span it was written at, so that
//! later passes (checker, plan, runtime) can point back at the source.

use crate::span::{Span, Spanned};
use serde::Serialize;
pub use smol_str::SmolStr;

/// A name as written: plain, a soft keyword, or back-quoted (`name` holds the unquoted text).
/// Names are small strings stored inline, so most of them cost no allocation.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Ident {
    pub name: SmolStr,
    pub span: Span,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct File {
    pub items: Vec<Item>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub enum Item {
    Flow(Box<Flow>),
    Activity(Box<Activity>),
    Run(Box<RunFlow>),
    Pool(Box<Pool>),
    Test(Box<Test>),
}

/// `test NAME = { ... }`: one run of a flow, its activities mocked and its clock virtual,
/// and what must hold after it (docs/testing.md).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Test {
    pub name: Ident,
    pub statements: Vec<TestStatement>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub enum TestStatement {
    /// `call F(args) [at timestamp '...']`: the run, and its run time.
    Call {
        flow: FlowCall,
        at: Option<Expr>,
        span: Span,
    },
    Mock(Box<Mock>),
    /// `signal NAME [= value] at DURATION`: sent that long after the run starts.
    Signal {
        name: Ident,
        value: Option<Expr>,
        at: Expr,
        span: Span,
    },
    /// `real NAME, ...`: these activities run their programs.
    Real { activities: Vec<Ident>, span: Span },
    /// `upstream FLOW STATE`: the last run of a flow the tested flow's start condition or
    /// `depends on` names ended so; the run starts only if the scheduler would start it.
    Upstream {
        flow: Ident,
        state: Ident,
        span: Span,
    },
    Expect(Box<Expect>),
}

/// `mock NAME [when (p = v, ...)] [takes D] (returns ROWS | fails [with N] | never ends)
/// [on attempt[s] N [to M]]`
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Mock {
    pub activity: Ident,
    /// The calls it answers: those with these argument values (all calls without it).
    pub when: Option<(Vec<Arg>, Span)>,
    pub takes: Option<Expr>,
    pub outcome: MockOutcome,
    /// The attempts it answers (from 1); without it, every attempt another mock of the same
    /// activity does not answer.
    pub attempts: Option<(Spanned<u64>, Spanned<u64>)>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub enum MockOutcome {
    Returns(TestRows),
    /// The exit code (1 unless given).
    Fails(Option<Spanned<u64>>),
    /// Runs until its timeout, or the run's, or a cancel.
    NeverEnds,
}

/// Rows a test gives or expects: inline `[[1, 'a']] as (id, name)`, or a data file.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub enum TestRows {
    Inline {
        rows: Vec<Vec<Expr>>,
        columns: Vec<Ident>,
        span: Span,
    },
    File(StrLit),
}

impl TestRows {
    pub fn span(&self) -> Span {
        match self {
            TestRows::Inline { span, .. } => *span,
            TestRows::File(path) => path.span,
        }
    }
}

/// What rows must be: how many, or these (in any order unless `in order`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub enum RowsExpect {
    Count(Spanned<u64>),
    Exactly { rows: TestRows, ordered: bool },
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Expect {
    pub what: Expectation,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub enum Expectation {
    /// `expect run STATE`
    Run(Ident),
    /// `expect exit N`: the exit status `wvflow run` would end with.
    Exit(Spanned<u64>),
    /// `expect compensations [a, b]`: the stages compensated, in the order they were.
    Compensations(Vec<Ident>, Span),
    /// `expect hooks [on_failure, ...]`: the hooks fired, in order.
    Hooks(Vec<Ident>, Span),
    /// `expect elapsed D`: the virtual time the run took.
    Elapsed(Expr),
    /// `expect table NAME rows ...`: a saved table of the workspace database.
    Table { table: Ident, rows: RowsExpect },
    /// `expect STAGE STATE`, `expect STAGE attempts N`, `expect STAGE rows ...`
    Stage { stage: Ident, fact: StageFact },
    /// `expect ACTIVITY called N times`, `... called with (a = 1)`, `... called with rows ...`
    Called { activity: Ident, fact: CallFact },
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub enum StageFact {
    State(Ident),
    Attempts(Spanned<u64>),
    Rows(RowsExpect),
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub enum CallFact {
    Times(Spanned<u64>),
    With(Vec<Arg>, Span),
    Rows(RowsExpect),
}

/// `pool NAME with { slots: N }`: a resource that stages and `each` items of every flow and
/// run on the machine share, at most `slots` at once.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Pool {
    pub name: Ident,
    pub config: Config,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Flow {
    pub name: Ident,
    pub version: Option<Spanned<u32>>,
    pub params: Vec<Param>,
    pub depends_on: Vec<Ident>,
    /// `flow f if other.failed = { ... }`: start condition over other flows' runs.
    pub condition: Option<Condition>,
    pub config: Option<Config>,
    pub members: Vec<Member>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Param {
    pub name: Ident,
    pub ty: Spanned<Type>,
    pub default: Option<Expr>,
    pub span: Span,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Type {
    String,
    Int,
    Float,
    Boolean,
    Duration,
    Date,
    Timestamp,
}

impl Type {
    pub const ALL: [(&'static str, Type); 7] = [
        ("string", Type::String),
        ("int", Type::Int),
        ("float", Type::Float),
        ("boolean", Type::Boolean),
        ("duration", Type::Duration),
        ("date", Type::Date),
        ("timestamp", Type::Timestamp),
    ];

    pub fn from_name(name: &str) -> Option<Type> {
        Type::ALL.iter().find(|(n, _)| *n == name).map(|&(_, t)| t)
    }

    pub fn name(self) -> &'static str {
        Type::ALL
            .iter()
            .find(|(_, t)| *t == self)
            .map_or("", |(n, _)| n)
    }
}

/// A boolean formula over `name.state` atoms: stage triggers and flow start conditions.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub enum Condition {
    /// `target.state`; the state word is checked later, so a typo gets a did-you-mean.
    State {
        target: Ident,
        state: Ident,
    },
    Not(Box<Condition>, Span),
    And(Box<Condition>, Box<Condition>),
    Or(Box<Condition>, Box<Condition>),
}

impl Condition {
    pub fn span(&self) -> Span {
        match self {
            Condition::State { target, state } => target.span.join(state.span),
            Condition::Not(_, span) => *span,
            Condition::And(a, b) | Condition::Or(a, b) => a.span().join(b.span()),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ConfigStyle {
    /// `with { key: value ... }`
    Block,
    /// `[key: value, ...]`
    Inline,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Config {
    pub style: ConfigStyle,
    pub entries: Vec<ConfigEntry>,
    pub span: Span,
}

impl Config {
    /// The entry of `key`, if the block has one: the one lookup of a configuration key.
    pub fn get(&self, key: &str) -> Option<&ConfigEntry> {
        self.entries.iter().find(|e| e.key.name == key)
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ConfigEntry {
    pub key: Ident,
    pub value: Expr,
}

impl ConfigEntry {
    pub fn span(&self) -> Span {
        self.key.span.join(self.value.span)
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub enum Member {
    Stage(Stage),
    Signal(NamedExpr),
    Query(NamedExpr),
}

/// `signal NAME = expr` and `query NAME = expr`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct NamedExpr {
    pub name: Ident,
    pub value: Expr,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Stage {
    pub name: Ident,
    pub trigger: Option<Box<Condition>>,
    pub config: Option<Box<Config>>,
    /// `stage s on duckdb = ...`: the connector that evaluates the stage.
    pub connector: Option<Box<Ident>>,
    pub body: Body,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Body {
    pub source: Source,
    pub ops: Vec<Op>,
}

impl Body {
    pub fn span(&self) -> Span {
        self.ops
            .last()
            .map_or(self.source.span, |op| self.source.span.join(op.span))
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Source {
    pub kind: SourceKind,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub enum SourceKind {
    From(Vec<SourceRef>),
    /// Fan-in: union-all of the named stages.
    Merge(Vec<Ident>),
    /// A stage with no input that calls an activity.
    Activity(Box<Call>),
    /// A child flow run; the stage waits for it.
    CallFlow(Box<FlowCall>),
    /// Continue in another flow.
    Jump(Box<FlowCall>),
    /// A countdown: the stage waits this long, then succeeds with no rows.
    Wait(Expr),
    /// An ETA or a condition over parameters, signals and `now()`: re-checked every
    /// `poll_interval` until true, then the stage succeeds with no rows.
    WaitUntil(Expr),
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub enum SourceRef {
    /// A stage of the flow or a table of the workspace.
    Name(Ident),
    /// `schema.table`: a table of the database the stage's connector names (`on pg`).
    Table { schema: Ident, table: Ident },
    /// A file path.
    File(StrLit),
    /// `failed(stage)`: the items of the stage's `each` that failed (and were tolerated).
    Failed(Ident),
    /// Inline rows `[[1, 'a'], [2, 'b']] as t(id, name)`.
    Values {
        rows: Vec<Vec<Expr>>,
        alias: Option<Box<ValuesAlias>>,
        span: Span,
    },
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ValuesAlias {
    pub table: Ident,
    pub columns: Vec<Ident>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StrLit {
    pub value: SmolStr,
    pub span: Span,
}

/// An activity (or function) call: `name(args)`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Call {
    pub name: Ident,
    pub args: Vec<Arg>,
    pub span: Span,
}

/// A reference to a flow: `name @version(2)? (args)?`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FlowCall {
    pub name: Ident,
    pub version: Option<Spanned<u32>>,
    /// `None` when written without parentheses.
    pub args: Option<Vec<Arg>>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Arg {
    /// Set for named arguments (`name: value` or `name = value`).
    pub name: Option<Ident>,
    pub value: Expr,
}

impl Arg {
    pub fn span(&self) -> Span {
        self.name
            .as_ref()
            .map_or(self.value.span, |n| n.span.join(self.value.span))
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Op {
    pub kind: OpKind,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub enum OpKind {
    Where(Expr),
    Select(Vec<SelectItem>),
    Join(Box<Join>),
    GroupBy(Vec<Expr>),
    OrderBy(Vec<OrderKey>),
    Limit(Spanned<u64>),
    /// `save to a.b`: the dotted table name, part by part.
    SaveTo(Vec<Ident>),
    Route(Box<Route>),
    /// Parallel branches, each a stage of its own.
    Fork(Vec<Stage>),
    /// Dynamic fan-out: one call per input row.
    Each(Box<Call>),
    /// Mapped child flows: one child run per input row (`each call F(x: _.x)`).
    EachCall(Box<FlowCall>),
    Wait(Expr),
    WaitUntil(Expr),
    Activate(Box<Activate>),
    Jump(Box<FlowCall>),
    /// A child flow run with arguments from the input's single row (`| call F(n: _.x)`).
    CallFlow(Box<FlowCall>),
    End,
    Activity(Box<Call>),
    /// `while COND`: the operators after it repeat while `COND` holds (a loop).
    While(Expr),
}

impl OpKind {
    /// A relational operator: a clause of the stage's SQL (`where`, `select`, `join`,
    /// `group by`, `order by`, `limit`).
    pub fn is_relational(&self) -> bool {
        matches!(
            self,
            OpKind::Where(_)
                | OpKind::Select(_)
                | OpKind::Join(_)
                | OpKind::GroupBy(_)
                | OpKind::OrderBy(_)
                | OpKind::Limit(_)
        )
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Join {
    pub source: SourceRef,
    pub on: Expr,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SelectItem {
    pub expr: Expr,
    pub alias: Option<Ident>,
}

impl SelectItem {
    pub fn span(&self) -> Span {
        self.alias
            .as_ref()
            .map_or(self.expr.span, |a| self.expr.span.join(a.span))
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct OrderKey {
    pub expr: Expr,
    pub descending: bool,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Route {
    /// `route by hash(expr)`: percentage split instead of conditions.
    pub by: Option<Expr>,
    pub cases: Vec<RouteCase>,
    pub otherwise: Option<Ident>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RouteCase {
    pub when: Expr,
    pub target: Ident,
    pub span: Span,
}

/// `activate('file', path: 'out.csv')`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Activate {
    pub target: StrLit,
    pub options: Vec<Arg>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Activity {
    pub name: Ident,
    pub params: Vec<Param>,
    pub config: Option<Config>,
    pub command: Command,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub enum Command {
    /// `exec('prog', arg, ...)`: an argument vector, no shell.
    Exec(Vec<Expr>),
    /// `sh('...')`: shell text; parameters arrive as `WV_<NAME>` variables.
    Sh(StrLit),
}

/// `run flow F(args)`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RunFlow {
    pub call: FlowCall,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Expr {
    pub kind: ExprKind,
    pub span: Span,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DurationUnit {
    Ms,
    S,
    M,
    H,
    D,
}

impl DurationUnit {
    pub fn millis(self) -> u64 {
        match self {
            DurationUnit::Ms => 1,
            DurationUnit::S => 1_000,
            DurationUnit::M => 60_000,
            DurationUnit::H => 3_600_000,
            DurationUnit::D => 86_400_000,
        }
    }

    /// Every unit, the longest first.
    pub const LONGEST_FIRST: [DurationUnit; 5] = [
        DurationUnit::D,
        DurationUnit::H,
        DurationUnit::M,
        DurationUnit::S,
        DurationUnit::Ms,
    ];

    /// The unit a literal is written with: `ms`, `s`, `m`, `h`, `d`.
    pub fn from_suffix(suffix: &str) -> Option<DurationUnit> {
        DurationUnit::LONGEST_FIRST
            .into_iter()
            .find(|unit| unit.suffix() == suffix)
    }

    pub fn suffix(self) -> &'static str {
        match self {
            DurationUnit::Ms => "ms",
            DurationUnit::S => "s",
            DurationUnit::M => "m",
            DurationUnit::H => "h",
            DurationUnit::D => "d",
        }
    }

    /// The unit's name in messages, in the plural: `a whole number of hours`.
    pub fn plural_name(self) -> &'static str {
        match self {
            DurationUnit::Ms => "milliseconds",
            DurationUnit::S => "seconds",
            DurationUnit::M => "minutes",
            DurationUnit::H => "hours",
            DurationUnit::D => "days",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub enum ExprKind {
    Int(i64),
    Float(f64),
    Str(SmolStr),
    /// A duration literal such as `30s`; `millis` is its value.
    Duration {
        amount: u64,
        unit: DurationUnit,
        millis: u64,
    },
    Bool(bool),
    Null,
    /// `date '2026-12-01'` or `timestamp '2026-12-01T09:00:00Z'`, with its value in the stored
    /// form (`YYYY-MM-DD`, RFC 3339 UTC).
    Time {
        ty: Type,
        value: SmolStr,
    },
    Name(Ident),
    /// `base.field`, including `_.column` for the current row.
    Field(Box<Field>),
    /// `*`, as in `count(*)` or `select *`.
    Star,
    Call(Box<Call>),
    List(Vec<Expr>),
    Unary {
        op: UnaryOp,
        operand: Box<Expr>,
    },
    Binary {
        op: BinaryOp,
        lhs: Box<Expr>,
        rhs: Box<Expr>,
    },
    IsNull {
        operand: Box<Expr>,
        negated: bool,
    },
    InList {
        operand: Box<Expr>,
        list: Vec<Expr>,
        negated: bool,
    },
    Like {
        operand: Box<Expr>,
        pattern: Box<Expr>,
        negated: bool,
    },
    /// Stands where an expression could not be parsed; its error is already reported.
    Error,
}

/// `base.field`; boxed, which keeps every other expression small.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Field {
    pub base: Ident,
    pub field: Ident,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum UnaryOp {
    Neg,
    Not,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BinaryOp {
    Or,
    And,
    Eq,
    NotEq,
    Lt,
    Le,
    Gt,
    Ge,
    Add,
    Sub,
    Concat,
    Mul,
    Div,
    Rem,
}

impl BinaryOp {
    pub fn is_comparison(self) -> bool {
        matches!(
            self,
            BinaryOp::Eq
                | BinaryOp::NotEq
                | BinaryOp::Lt
                | BinaryOp::Le
                | BinaryOp::Gt
                | BinaryOp::Ge
        )
    }

    pub fn symbol(self) -> &'static str {
        match self {
            BinaryOp::Or => "or",
            BinaryOp::And => "and",
            BinaryOp::Eq => "=",
            BinaryOp::NotEq => "!=",
            BinaryOp::Lt => "<",
            BinaryOp::Le => "<=",
            BinaryOp::Gt => ">",
            BinaryOp::Ge => ">=",
            BinaryOp::Add => "+",
            BinaryOp::Sub => "-",
            BinaryOp::Concat => "||",
            BinaryOp::Mul => "*",
            BinaryOp::Div => "/",
            BinaryOp::Rem => "%",
        }
    }
}

impl From<Type> for crate::value::ValueType {
    fn from(ty: Type) -> Self {
        use crate::value::ValueType;
        match ty {
            Type::String => ValueType::String,
            Type::Int => ValueType::Int,
            Type::Float => ValueType::Float,
            Type::Boolean => ValueType::Boolean,
            Type::Duration => ValueType::Duration,
            Type::Date => ValueType::Date,
            Type::Timestamp => ValueType::Timestamp,
        }
    }
}
