//! Expressions and relational operators to SQL, in the dialect of the database the stage
//! runs on ([`Dialect`]): SQLite for `default`, PostgreSQL for a `postgres` connector, DuckDB
//! for a `duckdb` one.
//!
//! Tables: workspace tables by name (`"orders"`); each stage's rows as `run."stage"` (which the
//! runtime reads from its rows table); each file source as `run."file:path"`, loaded by the
//! runtime. Flow parameters and the run's values
//! are named parameters (`:day`, `:run_time`), never text.

use crate::check::binder::{Meaning, Row, Scope};
use crate::syntax::ast::{BinaryOp, Call, Expr, ExprKind, Field, UnaryOp};
use crate::value::ValueType;
use std::collections::{BTreeMap, BTreeSet};

pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

pub fn quote_str(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// The SQL dialect a stage's queries are written in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Dialect {
    /// The embedded engine (`default`).
    #[default]
    Sqlite,
    /// A `postgres` connector's server.
    Postgres,
    /// A `duckdb` connector's database file, run by the DuckDB library in process.
    Duckdb,
}

impl Dialect {
    /// A connector's database, which rows of the run database are shipped into.
    pub fn is_connector(self) -> bool {
        self != Dialect::Sqlite
    }
}

/// `ASCII A-Z` and `a-z`: PostgreSQL's `like` is written over text folded with these, so that
/// it ignores the case of ASCII letters only, as SQLite's does.
const UPPER: &str = "'ABCDEFGHIJKLMNOPQRSTUVWXYZ'";
const LOWER: &str = "'abcdefghijklmnopqrstuvwxyz'";

/// An `order by` key: nulls first when ascending and last when descending, written out in
/// both dialects (PostgreSQL's default is the other way round).
pub fn order_key(key: String, descending: bool) -> String {
    if descending {
        format!("{key} DESC NULLS LAST")
    } else {
        format!("{key} NULLS FIRST")
    }
}

/// The temporary table of a PostgreSQL or DuckDB session that holds a stage's rows shipped
/// in from the run database (`run."stage"` there).
pub fn shipped_table(dialect: Dialect, stage: &str) -> String {
    let schema = match dialect {
        Dialect::Duckdb => "temp",
        _ => "pg_temp",
    };
    format!("{schema}.{}", quote_ident(&shipped_name(stage)))
}

/// A CSV file read by DuckDB itself, its fields typed by column as integers, reals or text
/// (a column of dates stays text, as on `default`); `path` is relative to the `.wv` file's
/// folder, which the runtime makes DuckDB's `file_search_path`.
pub fn duckdb_csv(path: &str) -> String {
    format!(
        "read_csv({}, header = true, auto_type_candidates = ['BIGINT', 'DOUBLE', 'VARCHAR'])",
        quote_str(path)
    )
}

/// The name of [`shipped_table`], without its schema.
pub fn shipped_name(stage: &str) -> String {
    format!("run.{stage}")
}

pub fn stage_table(stage: &str) -> String {
    format!("run.{}", quote_ident(stage))
}

pub fn file_table(path: &str) -> String {
    format!("run.{}", quote_ident(&format!("file:{path}")))
}

/// A signal of the flow as expressions read it: the SQL of its initial value, and its type.
pub struct SignalSql {
    pub initial: String,
    pub ty: ValueType,
}

/// The parameter that carries the run's id, for expressions that read the run store.
pub const RUN_ID_PARAM: &str = "wv_run_id";

/// Writes expressions, remembering which parameters they use. Names mean what the binder
/// says they mean ([`Scope::resolve`]): the checker has refused any name that does not
/// resolve, so what is written here is what was checked.
pub struct Writer<'a> {
    /// Parameters in scope (of the flow, or of the activity).
    values: Vec<(&'a str, ValueType)>,
    signal_names: Vec<(&'a str, ValueType)>,
    run_values: bool,
    /// The input row as SQL sees it: any other name is one of its columns.
    unknown: Row,
    /// Signals of the flow by name.
    signals: Option<&'a BTreeMap<String, SignalSql>>,
    pub used: BTreeSet<String>,
    /// An expression written since this was last reset read a column of the row (`_.x`).
    pub reads_row: bool,
    /// The rows after a `join`: a qualified name (`customers.name`) is written as the column
    /// it became there (`customers_name`).
    pub joined: Option<crate::check::binder::Row>,
    pub dialect: Dialect,
}

impl<'a> Writer<'a> {
    /// A writer for expressions of a flow with these parameters.
    pub fn new(flow_params: &'a BTreeSet<String>) -> Self {
        Writer {
            values: flow_params
                .iter()
                .map(|p| (p.as_str(), ValueType::Any))
                .collect(),
            signal_names: Vec::new(),
            run_values: true,
            unknown: Row::unknown(),
            signals: None,
            used: BTreeSet::new(),
            reads_row: false,
            joined: None,
            dialect: Dialect::Sqlite,
        }
    }

    /// The same writer, writing `dialect`.
    pub fn in_dialect(mut self, dialect: Dialect) -> Self {
        self.dialect = dialect;
        self
    }

    /// A writer for an activity's `exec` arguments: its parameters only.
    pub fn for_activity(activity_params: &'a BTreeSet<String>) -> Self {
        Writer {
            run_values: false,
            ..Writer::new(activity_params)
        }
    }

    /// A writer that knows the declared types of the flow's parameters (so that timestamp
    /// arithmetic is written as such).
    pub fn typed(mut self, params: &'a [crate::syntax::ast::Param]) -> Self {
        for (name, ty) in &mut self.values {
            if let Some(p) = params.iter().find(|p| p.name.name == *name) {
                *ty = p.ty.value.into();
            }
        }
        self
    }

    /// A writer that also knows the flow's signals.
    pub fn with_signals(mut self, signals: &'a BTreeMap<String, SignalSql>) -> Self {
        self.signal_names = signals.iter().map(|(n, s)| (n.as_str(), s.ty)).collect();
        self.signals = Some(signals);
        self
    }

    /// The row the expressions that follow read, with its columns' types where the checker
    /// knows them (time arithmetic is written by type).
    pub fn reading(&mut self, row: Option<&Row>) {
        self.unknown = row.cloned().unwrap_or_else(Row::unknown);
    }

    fn scope(&self) -> Scope<'_> {
        Scope {
            values: &self.values,
            signals: &self.signal_names,
            run_values: self.run_values,
            run_state: true,
            row: Some(&self.unknown),
            place: "",
        }
    }

    /// What a name means, as the binder resolves it (the row's columns are what the SQL's
    /// own scope holds).
    fn resolve(&self, name: &str) -> Meaning {
        self.scope().resolve(name)
    }

    /// A subquery over the run store's rows of the current run.
    fn run_store(&mut self, sql: String) -> String {
        self.used.insert(RUN_ID_PARAM.to_string());
        sql.replace("$RUN", &format!(":{RUN_ID_PARAM}"))
    }

    /// The latest value sent for a signal, else its initial value. The run store's tables are
    /// named without their schema: an exported run's task, which has no run store, shadows
    /// them with temporary tables of what its state holds.
    fn signal(&mut self, name: &str) -> Option<String> {
        let initial = self.signals?.get(name)?.initial.clone();
        Some(self.run_store(format!(
            "COALESCE((SELECT value FROM wvflow_signals WHERE run_id = $RUN AND name = {} ORDER BY seq DESC LIMIT 1), {initial})",
            quote_str(name)
        )))
    }

    /// The built-ins of queries over the run's state.
    fn run_function(&mut self, name: &str, args: &[String]) -> Option<String> {
        let sql = match (name, args) {
            ("completed_stages", []) => "(SELECT count(*) FROM wvflow_stages WHERE run_id = $RUN AND state = 'success')".to_string(),
            ("total_stages", []) => "(SELECT count(*) FROM wvflow_stages WHERE run_id = $RUN)".to_string(),
            ("state", [stage]) => format!(
                "COALESCE((SELECT state FROM wvflow_stages WHERE run_id = $RUN AND stage = {stage}), 'unknown')"
            ),
            _ => return None,
        };
        Some(self.run_store(sql))
    }

    /// The parameters used so far, taken.
    pub fn take_params(&mut self) -> Vec<String> {
        std::mem::take(&mut self.used).into_iter().collect()
    }

    pub fn expr(&mut self, e: &Expr) -> String {
        match &e.kind {
            ExprKind::Int(n) => n.to_string(),
            ExprKind::Float(x) => format!("{x:?}"),
            ExprKind::Str(s) | ExprKind::Time { value: s, .. } => quote_str(s),
            ExprKind::Duration { millis, .. } => millis.to_string(),
            ExprKind::Bool(b) => if *b { "TRUE" } else { "FALSE" }.to_string(),
            ExprKind::Null => "NULL".to_string(),
            ExprKind::Name(n) => self.name(&n.name),
            ExprKind::Field(f) => self.field(f),
            ExprKind::Star => "*".to_string(),
            ExprKind::Call(call) => self.call(call),
            ExprKind::List(items) => {
                let items: Vec<String> = items.iter().map(|i| self.expr(i)).collect();
                format!("({})", items.join(", "))
            }
            ExprKind::Unary { op, operand } => match op {
                UnaryOp::Neg => format!("-{}", self.operand(operand)),
                UnaryOp::Not => format!("NOT {}", self.operand(operand)),
            },
            ExprKind::Binary { op, lhs, rhs } => self.binary(e, *op, lhs, rhs),
            ExprKind::IsNull { operand, negated } => {
                format!(
                    "{} IS {}NULL",
                    self.operand(operand),
                    if *negated { "NOT " } else { "" }
                )
            }
            ExprKind::InList {
                operand,
                list,
                negated,
            } => {
                let items: Vec<String> = list.iter().map(|i| self.expr(i)).collect();
                format!(
                    "{} {}IN ({})",
                    self.operand(operand),
                    if *negated { "NOT " } else { "" },
                    items.join(", ")
                )
            }
            ExprKind::Like {
                operand,
                pattern,
                negated,
            } => {
                let (text, pattern) = (self.operand(operand), self.operand(pattern));
                let not = if *negated { "NOT " } else { "" };
                match self.dialect {
                    Dialect::Sqlite => format!("{text} {not}LIKE {pattern}"),
                    // SQLite's `like`: ASCII letters in any case, and no escape character.
                    Dialect::Postgres => format!(
                        "translate({text}, {UPPER}, {LOWER}) {not}LIKE translate({pattern}, {UPPER}, {LOWER}) ESCAPE ''"
                    ),
                    // DuckDB's `LIKE` has no escape character unless one is given.
                    Dialect::Duckdb => format!(
                        "translate({text}, {UPPER}, {LOWER}) {not}LIKE translate({pattern}, {UPPER}, {LOWER})"
                    ),
                }
            }
            ExprKind::Error => "NULL".to_string(),
        }
    }

    /// `_.column`, `signal.name` or `source.column`.
    fn field(&mut self, f: &Field) -> String {
        if f.base.name == "_" {
            self.reads_row = true;
            return quote_ident(&f.field.name);
        }
        if f.base.name == "signal" {
            return self
                .signal(&f.field.name)
                .unwrap_or_else(|| format!("\"signal\".{}", quote_ident(&f.field.name)));
        }
        match self
            .joined
            .as_ref()
            .and_then(|row| row.qualified_name(&f.base.name, &f.field.name))
        {
            Some(column) => quote_ident(column),
            None => format!(
                "{}.{}",
                quote_ident(&f.base.name),
                quote_ident(&f.field.name)
            ),
        }
    }

    fn call(&mut self, call: &Call) -> String {
        if self.dialect.is_connector()
            && let Some(sql) = self.postgres_call(call)
        {
            return sql;
        }
        // The function table names each function's SQL (`hash` is the runtime's own).
        let name = crate::check::functions::lookup(&call.name.name).map_or_else(
            || call.name.name.to_ascii_lowercase(),
            |f| f.sql.to_string(),
        );
        let args: Vec<String> = call.args.iter().map(|a| self.expr(&a.value)).collect();
        self.run_function(&name, &args)
            .unwrap_or_else(|| format!("{name}({})", args.join(", ")))
    }

    /// A function whose PostgreSQL (or DuckDB) form differs from its SQLite one, written so
    /// that it gives what SQLite gives; `None` for one of the same name and meaning. The
    /// checker refused the functions they have no form of (E0709) on a stage on a connector.
    fn postgres_call(&mut self, call: &Call) -> Option<String> {
        let name = call.name.name.to_ascii_lowercase();
        let args: Vec<String> = call.args.iter().map(|a| self.expr(&a.value)).collect();
        // Text of a value, in the dialect's name for the type.
        let text = match self.dialect {
            Dialect::Duckdb => "VARCHAR",
            _ => "text",
        };
        Some(match (name.as_str(), args.as_slice()) {
            // SQLite rounds half away from zero and gives a real: so does numeric's round, and
            // DuckDB's round of a double.
            ("round", [x]) if self.dialect == Dialect::Duckdb => {
                format!("round(CAST({x} AS DOUBLE))")
            }
            ("round", [x, digits]) if self.dialect == Dialect::Duckdb => {
                format!("round(CAST({x} AS DOUBLE), CAST({digits} AS INTEGER))")
            }
            ("round", [x]) => format!("CAST(round(CAST({x} AS numeric)) AS double precision)"),
            ("round", [x, digits]) => format!(
                "CAST(round(CAST({x} AS numeric), CAST({digits} AS integer)) AS double precision)"
            ),
            // DuckDB has SQLite's `trim(s, chars)` and `instr`.
            ("trim", [s, chars]) if self.dialect == Dialect::Postgres => {
                format!("btrim({s}, {chars})")
            }
            ("instr", [s, part]) if self.dialect == Dialect::Postgres => {
                format!("strpos({s}, {part})")
            }
            ("length", [s]) => format!("length(CAST({s} AS {text}))"),
            // A negative start counts from the end in SQLite.
            ("substr", [s, start, rest @ ..]) => {
                let start = format!(
                    "(CASE WHEN {start} < 0 THEN length({s}) + {start} + 1 ELSE {start} END)"
                );
                let rest: String = rest.iter().map(|a| format!(", {a}")).collect();
                format!("substr({s}, {start}{rest})")
            }
            // SQLite's scalar min and max are null when an argument is; least and greatest skip it.
            ("min" | "max", many) if many.len() >= 2 => {
                let f = if name == "min" { "least" } else { "greatest" };
                let nulls: Vec<String> = many.iter().map(|a| format!("{a} IS NULL")).collect();
                format!(
                    "(CASE WHEN {} THEN NULL ELSE {f}({}) END)",
                    nulls.join(" OR "),
                    many.join(", ")
                )
            }
            ("group_concat", [x]) => format!("string_agg(CAST({x} AS {text}), ',')"),
            ("group_concat", [x, separator]) => {
                format!("string_agg(CAST({x} AS {text}), {separator})")
            }
            _ => return None,
        })
    }

    /// `lhs op rhs` (the expression `e`): time arithmetic and comparisons by the engine's
    /// functions, the rest as SQL operators.
    fn binary(&mut self, e: &Expr, op: BinaryOp, lhs: &Expr, rhs: &Expr) -> String {
        if self.dialect.is_connector()
            && let Some(sql) = self.connector_time(op, lhs, rhs)
        {
            sql
        } else if matches!(op, BinaryOp::Add | BinaryOp::Sub) && self.temporal(lhs, rhs) {
            let function = if op == BinaryOp::Add {
                "wv_add"
            } else {
                "wv_sub"
            };
            format!("{function}({}, {})", self.expr(lhs), self.expr(rhs))
        } else if matches!(op, BinaryOp::Mul | BinaryOp::Div)
            && self.static_type(e) == ValueType::Duration
        {
            // Milliseconds stay whole: `d * 1.5` is a duration, not 1500.0.
            // PostgreSQL's INTEGER is 32 bits: milliseconds need its BIGINT.
            let whole = match self.dialect {
                Dialect::Sqlite => "INTEGER",
                Dialect::Postgres | Dialect::Duckdb => "BIGINT",
            };
            format!(
                "CAST(ROUND({} {} {}) AS {whole})",
                self.operand(lhs),
                op.symbol(),
                self.operand(rhs)
            )
        } else if op.is_comparison() && self.timed(lhs, rhs) {
            // Timestamps compare as instants, whatever their precision or zone is written as.
            format!(
                "julianday({}) {} julianday({})",
                self.expr(lhs),
                if op == BinaryOp::NotEq {
                    "<>"
                } else {
                    op.symbol()
                },
                self.expr(rhs)
            )
        } else if op == BinaryOp::Concat {
            format!("{} || {}", self.text_operand(lhs), self.text_operand(rhs))
        } else if self.dialect.is_connector() && matches!(op, BinaryOp::Div | BinaryOp::Rem) {
            // SQLite divides by zero into null; PostgreSQL would fail the query. (DuckDB's
            // session divides integers as integers: `SET integer_division`, runtime::duckdb.)
            format!(
                "{} {} NULLIF({}, 0)",
                self.operand(lhs),
                op.symbol(),
                self.operand(rhs)
            )
        } else {
            let symbol = match op {
                BinaryOp::Or => "OR",
                BinaryOp::And => "AND",
                BinaryOp::NotEq => "<>",
                other => other.symbol(),
            };
            format!("{} {symbol} {}", self.operand(lhs), self.operand(rhs))
        }
    }

    /// Time arithmetic and comparisons of instants on PostgreSQL or DuckDB, giving what
    /// SQLite's `wv_add`/`wv_sub` and `julianday` give: timestamps (and dates) are RFC 3339
    /// UTC text, read as the engine's timestamps and written back as the same text (to the
    /// second, or with the milliseconds or microseconds it has, as `timestamp_text`);
    /// durations are milliseconds. `None` for what is not time arithmetic (the checker
    /// refused, E0709, the time arithmetic this does not write).
    fn connector_time(&mut self, op: BinaryOp, lhs: &Expr, rhs: &Expr) -> Option<String> {
        use ValueType as T;
        let (l, r) = (self.static_type(lhs), self.static_type(rhs));
        let time = |t: T| matches!(t, T::Timestamp | T::Date);
        match op {
            BinaryOp::Add | BinaryOp::Sub if time(l) && r == T::Duration => {
                Some(self.shifted(lhs, rhs, op == BinaryOp::Sub))
            }
            BinaryOp::Add if l == T::Duration && time(r) => Some(self.shifted(rhs, lhs, false)),
            BinaryOp::Sub if time(l) && time(r) => {
                let (a, b) = (self.instant(lhs), self.instant(rhs));
                Some(match self.dialect {
                    Dialect::Duckdb => format!(
                        "CAST(trunc((epoch_us({a}) - epoch_us({b})) / 1000.0) AS BIGINT)"
                    ),
                    _ => format!(
                        "CAST(trunc((extract(epoch FROM {a}) - extract(epoch FROM {b})) * 1000) AS bigint)"
                    ),
                })
            }
            _ if op.is_comparison() && (l == T::Timestamp || r == T::Timestamp) => {
                let symbol = if op == BinaryOp::NotEq {
                    "<>"
                } else {
                    op.symbol()
                };
                Some(format!(
                    "{} {symbol} {}",
                    self.instant(lhs),
                    self.instant(rhs)
                ))
            }
            _ => None,
        }
    }

    /// A timestamp's (or a date's) text as the engine's instant: a timestamp with a zone on
    /// PostgreSQL (its session's zone is UTC, runtime::postgres), a UTC timestamp on DuckDB
    /// (which reads an offset in the text, converting to UTC).
    fn instant(&mut self, e: &Expr) -> String {
        let text = self.expr(e);
        match self.dialect {
            Dialect::Duckdb => format!("CAST({text} AS TIMESTAMP)"),
            _ => format!("CAST({text} AS timestamptz)"),
        }
    }

    /// `at ± d` (minus when `minus`): the instant moved by `d` milliseconds, as wvflow's text.
    fn shifted(&mut self, at: &Expr, d: &Expr, minus: bool) -> String {
        let (at, d) = (self.instant(at), self.operand(d));
        let sign = if minus { "-" } else { "+" };
        let text = match self.dialect {
            Dialect::Duckdb => format!(
                "strftime(make_timestamp(epoch_us({at}) {sign} CAST({d} AS BIGINT) * 1000), '%Y-%m-%dT%H:%M:%S.%f')"
            ),
            _ => format!(
                "to_char(({at} {sign} CAST({d} AS bigint) * interval '1 millisecond') AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US')"
            ),
        };
        // To the second unless there is a fraction, then to the millisecond if it is whole.
        format!(
            "(regexp_replace(regexp_replace({text}, '\\.000000$', ''), '(\\.[0-9]{{3}})000$', '\\1') || 'Z')"
        )
    }

    /// Whether `l ± r` involves a timestamp, a date or a duration with something that is not
    /// a known number: SQLite's `+` would add text and milliseconds as numbers, so the
    /// engine's typed `wv_add`/`wv_sub` do it (and refuse what they cannot read).
    /// Whether a comparison is between instants (a timestamp on one side): their text may
    /// differ in precision (`...:05.250Z` sorts before `...:05Z`). Dates compare as text.
    fn timed(&self, l: &Expr, r: &Expr) -> bool {
        self.static_type(l) == ValueType::Timestamp || self.static_type(r) == ValueType::Timestamp
    }

    fn temporal(&self, l: &Expr, r: &Expr) -> bool {
        use ValueType as T;
        let number = |t: T| matches!(t, T::Int | T::Float | T::Duration);
        match (self.static_type(l), self.static_type(r)) {
            (T::Timestamp | T::Date, _) | (_, T::Timestamp | T::Date) => true,
            (T::Duration, other) | (other, T::Duration) => !number(other),
            _ => false,
        }
    }

    /// The type of an expression as far as the writer knows: literals, parameters, run
    /// values, functions and operators over them; columns are `Any`.
    fn static_type(&self, e: &Expr) -> ValueType {
        use ValueType as T;
        match &e.kind {
            ExprKind::Int(_) => T::Int,
            ExprKind::Float(_) => T::Float,
            ExprKind::Str(_) => T::String,
            ExprKind::Duration { .. } => T::Duration,
            ExprKind::Bool(_) => T::Boolean,
            ExprKind::Time { ty, .. } => (*ty).into(),
            ExprKind::Name(n) => match self.resolve(&n.name) {
                Meaning::Value(ty) | Meaning::Column(_, ty) | Meaning::Signal(ty) => ty,
                Meaning::Unresolved => T::Any,
            },
            ExprKind::Field(f) if f.base.name == "signal" => self
                .signal_names
                .iter()
                .find(|(n, _)| *n == f.field.name)
                .map_or(T::Any, |(_, ty)| *ty),
            ExprKind::Field(f) if f.base.name == "_" => {
                match self.scope().resolve_row(&f.field.name) {
                    Meaning::Column(_, ty) => ty,
                    _ => T::Any,
                }
            }
            ExprKind::Call(call) => match crate::check::functions::lookup(&call.name.name) {
                Some(f) => match f.returns {
                    crate::check::functions::Returns::Fixed(ty) => ty,
                    crate::check::functions::Returns::FirstArgument => call
                        .args
                        .first()
                        .map_or(T::Any, |a| self.static_type(&a.value)),
                },
                None => T::Any,
            },
            ExprKind::Unary {
                op: UnaryOp::Neg,
                operand,
            } => self.static_type(operand),
            ExprKind::Binary { op, lhs, rhs } => {
                crate::check::binder::binary_type(*op, self.static_type(lhs), self.static_type(rhs))
            }
            _ => T::Any,
        }
    }

    /// An operand, parenthesized when it is itself an operation, so precedence is explicit.
    /// An operand of `||`, as the text of its type: a boolean is `true`/`false` and a
    /// duration `90s`, as they read everywhere else, not SQLite's 1 and 90000.
    fn text_operand(&mut self, e: &Expr) -> String {
        match self.static_type(e) {
            ValueType::Boolean => {
                let x = self.operand(e);
                format!("(CASE WHEN {x} THEN 'true' WHEN NOT {x} THEN 'false' END)")
            }
            ValueType::Duration => format!("wv_duration_text({})", self.expr(e)),
            _ => self.operand(e),
        }
    }

    fn operand(&mut self, e: &Expr) -> String {
        let text = self.expr(e);
        match e.kind {
            ExprKind::Binary { .. }
            | ExprKind::Unary { .. }
            | ExprKind::IsNull { .. }
            | ExprKind::InList { .. }
            | ExprKind::Like { .. } => {
                format!("({text})")
            }
            _ => text,
        }
    }

    fn name(&mut self, name: &str) -> String {
        match self.resolve(name) {
            // PostgreSQL has a boolean type: a boolean value (kept as 1 or 0) is cast to it.
            Meaning::Value(ValueType::Boolean) if self.dialect.is_connector() => {
                self.used.insert(name.to_string());
                format!("CAST(:{name} AS boolean)")
            }
            Meaning::Value(_) => {
                self.used.insert(name.to_string());
                format!(":{name}")
            }
            Meaning::Signal(_) => self.signal(name).unwrap_or_else(|| quote_ident(name)),
            Meaning::Column(column, _) => {
                self.reads_row = true;
                quote_ident(&column)
            }
            Meaning::Unresolved => quote_ident(name),
        }
    }
}

/// One SELECT being built from relational operators; a clause that must come before one
/// already set wraps what is there as a subquery. Wrapping moves the query inside, and the
/// whole nest is written once at the end, so building is linear in the operators.
pub struct Select {
    from: From,
    alias: String,
    joins: Vec<String>,
    wheres: Vec<String>,
    group: Vec<String>,
    items: Option<String>,
    order: Vec<String>,
    limit: Option<u64>,
    /// The latest clause set: 0 join, 1 where, 2 group, 3 select, 4 order, 5 limit.
    stage: u8,
}

/// What a SELECT reads: a table (or subquery text), or the query it wrapped.
enum From {
    Table(String),
    Inner(Box<Select>),
}

impl Select {
    /// `FROM table AS alias`.
    pub fn from(table: String, alias: &str) -> Self {
        Select {
            from: From::Table(table),
            alias: alias.to_string(),
            joins: Vec::new(),
            wheres: Vec::new(),
            group: Vec::new(),
            items: None,
            order: Vec::new(),
            limit: None,
            stage: 0,
        }
    }

    /// Whether the latest query level joins another table, whose alias later clauses of
    /// that level may still name.
    pub fn joins_here(&self) -> bool {
        !self.joins.is_empty()
    }

    /// The name the rows go by (`FROM ... AS alias`).
    pub fn alias(&self) -> &str {
        &self.alias
    }

    /// Makes room for a clause of the given rank.
    fn at(&mut self, rank: u8) {
        let repeatable = rank == 1; // several `where`s join with AND
        if rank < self.stage || (rank == self.stage && !repeatable && self.stage != 0) {
            let alias = self.alias.clone();
            let inner = std::mem::replace(self, Select::from(String::new(), &alias));
            self.from = From::Inner(Box::new(inner));
        }
        self.stage = rank;
    }

    pub fn join(&mut self, table: String, alias: &str, on: String) {
        self.at(0);
        self.joins
            .push(format!("JOIN {table} AS {} ON {on}", quote_ident(alias)));
    }

    pub fn filter(&mut self, condition: String) {
        self.at(1);
        self.wheres.push(condition);
    }

    pub fn group_by(&mut self, keys: Vec<String>) {
        self.at(2);
        self.group = keys;
    }

    pub fn select(&mut self, items: String) {
        self.at(3);
        self.items = Some(items);
    }

    pub fn order_by(&mut self, keys: Vec<String>) {
        self.at(4);
        self.order = keys;
    }

    pub fn limit(&mut self, n: u64) {
        // `limit a | limit b` keeps the first min(a, b) rows: no subquery needed.
        if self.stage == 5
            && let Some(limit) = &mut self.limit
        {
            *limit = (*limit).min(n);
            return;
        }
        self.at(5);
        self.limit = Some(n);
    }

    /// The SQL text: the nest of wrapped queries written from the outside in, without
    /// recursion (a pipeline may nest thousands of them).
    pub fn render(&self) -> String {
        let mut layers = vec![self];
        while let From::Inner(inner) = &layers[layers.len() - 1].from {
            layers.push(inner);
        }
        let mut sql = String::new();
        for layer in &layers {
            let items = match (&layer.items, layer.group.is_empty()) {
                (Some(items), _) => items.clone(),
                // `group by` alone keeps the distinct keys.
                (None, false) => layer.group.join(", "),
                (None, true) => "*".to_string(),
            };
            sql.push_str(&format!("SELECT {items} FROM "));
            match &layer.from {
                From::Table(table) => sql.push_str(table),
                From::Inner(_) => sql.push('('),
            }
        }
        for (depth, layer) in layers.iter().enumerate().rev() {
            if depth + 1 < layers.len() {
                sql.push(')');
            }
            sql.push_str(&format!(" AS {}", quote_ident(&layer.alias)));
            for j in &layer.joins {
                sql.push(' ');
                sql.push_str(j);
            }
            if !layer.wheres.is_empty() {
                let conditions: Vec<String> =
                    layer.wheres.iter().map(|w| format!("({w})")).collect();
                sql.push_str(&format!(" WHERE {}", conditions.join(" AND ")));
            }
            if !layer.group.is_empty() {
                sql.push_str(&format!(" GROUP BY {}", layer.group.join(", ")));
            }
            if !layer.order.is_empty() {
                sql.push_str(&format!(" ORDER BY {}", layer.order.join(", ")));
            }
            if let Some(n) = layer.limit {
                sql.push_str(&format!(" LIMIT {n}"));
            }
        }
        sql
    }
}
/// The run-database table of a stage's failed `each` items (a stage name has no dot).
pub fn failed_table(stage: &str) -> String {
    format!("{stage}.failed")
}
