//! The binder: what every name in an expression means. A name is a parameter, a signal,
//! `run_time`/`run_date`, a column of the input row (where there is one), or a function of
//! the table in [`crate::check::functions`]; anything else is a diagnostic. The checker reports with
//! it, the lowering writes SQL with it, and the plan records the types it finds.

use crate::check::functions::{self, Returns, Use};
use crate::diagnostics::Code;
use crate::diagnostics::Diagnostic;
use crate::source::FileId;
use crate::syntax::ast::{BinaryOp, Expr, ExprKind, Field, UnaryOp};
use crate::value::ValueType;

/// A column of a stage's rows: its name, type, and for columns of a join, the source alias
/// and column it came from (so `customers.name` still finds `customers_name`).
#[derive(Clone, Debug, PartialEq)]
pub struct Column {
    pub name: String,
    pub ty: ValueType,
    pub origin: Option<(String, String)>,
    /// A join key kept once: the right side's column it also stands for.
    pub joined_key: Option<(String, String)>,
}

impl Column {
    pub fn new(name: impl Into<String>, ty: ValueType) -> Self {
        Column {
            name: name.into(),
            ty,
            origin: None,
            joined_key: None,
        }
    }
}

/// The columns of some rows, shared (a pipeline's operators mostly pass them on unchanged).
pub type Columns = std::rc::Rc<[Column]>;

/// The columns of some rows, when they can be known before running.
pub type Shape = Option<Columns>;

/// The row an expression is evaluated over.
#[derive(Clone, Debug, Default)]
pub struct Row {
    pub shape: Shape,
    /// Names that qualify a column here (`orders.id`): the sources of the query.
    pub aliases: std::rc::Rc<[String]>,
}

impl Row {
    pub fn unknown() -> Row {
        Row::default()
    }

    pub fn of(shape: Shape, alias: &str) -> Row {
        Row {
            shape,
            aliases: std::rc::Rc::from([alias.to_string()]),
        }
    }

    /// The name in these rows of the column `alias.name`, after a join renamed it.
    pub fn qualified_name(&self, alias: &str, name: &str) -> Option<&str> {
        self.qualified(alias, name).map(|c| c.name.as_str())
    }

    fn column(&self, name: &str) -> Option<&Column> {
        self.shape.as_ref()?.iter().find(|c| c.name == name)
    }

    /// The column `alias.name` stands for.
    fn qualified(&self, alias: &str, name: &str) -> Option<&Column> {
        let columns = self.shape.as_ref()?;
        columns
            .iter()
            .find(|c| {
                [&c.origin, &c.joined_key]
                    .iter()
                    .any(|o| o.as_ref().is_some_and(|(a, n)| a == alias && n == name))
            })
            .or_else(|| {
                columns
                    .iter()
                    .find(|c| c.origin.is_none() && c.name == name)
                    .filter(|_| self.aliases.first().is_some_and(|a| a == alias))
            })
    }
}

/// Where an expression is written: what it may name.
#[derive(Clone, Copy, Debug)]
pub struct Scope<'a> {
    /// Parameters: of the flow, or of the activity for `exec` arguments.
    pub values: &'a [(&'a str, ValueType)],
    /// Signals of the flow, each with the type of its initial value.
    pub signals: &'a [(&'a str, ValueType)],
    /// `run_time` and `run_date`.
    pub run_values: bool,
    /// `completed_stages()` and the other run-state functions (`query` only).
    pub run_state: bool,
    /// The input row, for per-row expressions.
    pub row: Option<&'a Row>,
    /// What the expression is, for messages: "a `call` argument".
    pub place: &'static str,
}

/// What a name means.
#[derive(Clone, Debug, PartialEq)]
pub enum Meaning {
    /// A parameter, `run_time` or `run_date`: a named value of the run.
    Value(ValueType),
    /// A signal of the flow, of its initial value's type.
    Signal(ValueType),
    /// A column of the input row, by the name it has there.
    Column(String, ValueType),
    Unresolved,
}

/// The column a `while` loop's rows get: the iteration that gave them, from 1.
pub const ITERATION_COLUMN: &str = "iteration";

pub const RUN_VALUES: [(&str, ValueType); 2] = [
    ("run_time", ValueType::Timestamp),
    ("run_date", ValueType::Date),
];

impl Scope<'_> {
    pub fn resolve(&self, name: &str) -> Meaning {
        if let Some((_, ty)) = self.values.iter().find(|(n, _)| *n == name) {
            return Meaning::Value(*ty);
        }
        if let Some((_, ty)) = self.signals.iter().find(|(n, _)| *n == name) {
            return Meaning::Signal(*ty);
        }
        if self.run_values
            && let Some((_, ty)) = RUN_VALUES.iter().find(|(n, _)| *n == name)
        {
            return Meaning::Value(*ty);
        }
        match self.row {
            Some(row) if row.shape.is_none() => Meaning::Column(name.to_string(), ValueType::Any),
            Some(row) => row.column(name).map_or(Meaning::Unresolved, |c| {
                Meaning::Column(c.name.clone(), c.ty)
            }),
            None => Meaning::Unresolved,
        }
    }

    /// `base.field` with a base that is neither `_` nor `signal`.
    pub fn resolve_qualified(&self, base: &str, field: &str) -> Meaning {
        match self.row {
            Some(row) if row.aliases.iter().any(|a| a == base) => match &row.shape {
                None => Meaning::Column(field.to_string(), ValueType::Any),
                Some(_) => row.qualified(base, field).map_or(Meaning::Unresolved, |c| {
                    Meaning::Column(c.name.clone(), c.ty)
                }),
            },
            _ => Meaning::Unresolved,
        }
    }

    /// `_.field`.
    pub fn resolve_row(&self, field: &str) -> Meaning {
        match self.row {
            Some(row) if row.shape.is_none() => Meaning::Column(field.to_string(), ValueType::Any),
            Some(row) => row.column(field).map_or(Meaning::Unresolved, |c| {
                Meaning::Column(c.name.clone(), c.ty)
            }),
            None => Meaning::Unresolved,
        }
    }

    fn known_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.values.iter().map(|(n, _)| n.to_string()).collect();
        names.extend(self.signals.iter().map(|(s, _)| s.to_string()));
        if self.run_values {
            names.extend(RUN_VALUES.iter().map(|(n, _)| n.to_string()));
        }
        if let Some(Some(columns)) = self.row.map(|r| &r.shape) {
            names.extend(columns.iter().map(|c| c.name.clone()));
        }
        names
    }
}

/// Where `_` and input columns may be used, for the message that says they may not.
pub const ROW_PLACES: &str = "`_.column` reads the current row in `where`, `select`, `group by`, `order by`, `route` cases, `join ... on`, `wait until`, `each` arguments, the `idempotency_key` of a stage with input (per item with `each`), `compensate:` arguments, and the arguments of a single call or jump after `|`";

/// Binds expressions, collecting the diagnostics of names that do not resolve.
pub struct Binder {
    pub file: FileId,
    pub out: Vec<Diagnostic>,
    /// Functions a rule of its own already reports here (non-deterministic idempotency keys).
    pub quiet_functions: &'static [&'static str],
    /// Set when an expression bound since it was cleared reads a column of the row.
    pub read_row: bool,
    /// The expressions bound are a loop's (its condition, the operators it repeats, its
    /// stage's keys): `iteration()` has a value there.
    pub in_loop: bool,
    /// The expressions bound are a stage's on this PostgreSQL (or DuckDB) connector: what its
    /// dialect cannot express is reported (E0709).
    pub on_postgres: Option<String>,
    /// The engine of `on_postgres`, as E0709 names it: "PostgreSQL" or "DuckDB".
    pub engine: &'static str,
}

impl Binder {
    pub fn new(file: FileId) -> Self {
        Binder {
            file,
            out: Vec::new(),
            quiet_functions: &[],
            read_row: false,
            in_loop: false,
            on_postgres: None,
            engine: "PostgreSQL",
        }
    }

    /// The type of `e` in `scope`; every name that does not resolve is reported.
    pub fn bind(&mut self, e: &Expr, scope: &Scope) -> ValueType {
        match &e.kind {
            ExprKind::Int(_) => ValueType::Int,
            ExprKind::Float(_) => ValueType::Float,
            ExprKind::Str(_) => ValueType::String,
            ExprKind::Duration { .. } => ValueType::Duration,
            ExprKind::Bool(_) => ValueType::Boolean,
            ExprKind::Time { ty, .. } => (*ty).into(),
            ExprKind::Null | ExprKind::Star | ExprKind::Error => ValueType::Any,
            ExprKind::Name(n) => self.bind_name(&n.name, e, scope),
            ExprKind::Field(f) if f.base.name == "_" => self.bind_row_field(f, e, scope),
            ExprKind::Field(f) if f.base.name == "signal" => self.bind_signal(f, scope),
            ExprKind::Field(f) => self.bind_qualified(f, e, scope),
            ExprKind::Call(call) => {
                let types: Vec<ValueType> = call
                    .args
                    .iter()
                    .map(|a| self.bind(&a.value, scope))
                    .collect();
                self.function(call, scope, &types)
            }
            ExprKind::List(items) => {
                for i in items {
                    self.bind(i, scope);
                }
                ValueType::List
            }
            ExprKind::Unary { op, operand } => {
                let ty = self.bind(operand, scope);
                match op {
                    UnaryOp::Neg => ty,
                    UnaryOp::Not => ValueType::Boolean,
                }
            }
            ExprKind::Binary { op, lhs, rhs } => self.bind_binary(*op, lhs, rhs, e, scope),
            ExprKind::IsNull { operand, .. } => {
                self.bind(operand, scope);
                ValueType::Boolean
            }
            ExprKind::InList { operand, list, .. } => {
                self.bind(operand, scope);
                for i in list {
                    self.bind(i, scope);
                }
                ValueType::Boolean
            }
            ExprKind::Like {
                operand, pattern, ..
            } => {
                self.bind(operand, scope);
                self.bind(pattern, scope);
                ValueType::Boolean
            }
        }
    }

    /// A plain name `e`: a value, a signal or a column of the row.
    fn bind_name(&mut self, name: &str, e: &Expr, scope: &Scope) -> ValueType {
        match scope.resolve(name) {
            Meaning::Value(ty) => ty,
            Meaning::Signal(ty) => {
                self.signal_on_postgres(e.span);
                ty
            }
            Meaning::Column(_, ty) => {
                self.read_row = true;
                ty
            }
            Meaning::Unresolved => {
                self.unresolved(name, e, scope);
                ValueType::Any
            }
        }
    }

    /// `_.field` (the expression `e`): a column of the current row.
    fn bind_row_field(&mut self, f: &Field, e: &Expr, scope: &Scope) -> ValueType {
        if scope.row.is_none() {
            self.out.push(
                Diagnostic::error(
                    Code::E0616,
                    self.file,
                    e.span,
                    format!(
                        "`_.{}` has no row to read: {} is not evaluated per row",
                        f.field.name, scope.place
                    ),
                )
                .with_label("no input row here")
                .with_help(ROW_PLACES),
            );
            return ValueType::Any;
        }
        self.read_row = true;
        match scope.resolve_row(&f.field.name) {
            Meaning::Column(_, ty) => ty,
            _ => {
                self.unknown_column(&f.field.name, e, scope);
                ValueType::Any
            }
        }
    }

    /// `signal.name`: a signal of the flow.
    /// A signal's value is read from the run store, which a server does not have.
    fn signal_on_postgres(&mut self, span: crate::span::Span) {
        if let Some(connector) = &self.on_postgres {
            let d = not_on_postgres(
                self.file,
                span,
                (connector, self.engine),
                "a signal is read from the run store".to_string(),
            );
            self.out.push(d);
        }
    }

    fn bind_signal(&mut self, f: &Field, scope: &Scope) -> ValueType {
        self.signal_on_postgres(f.field.span);
        let signal = scope.signals.iter().find(|(n, _)| *n == f.field.name);
        if signal.is_none() {
            let d = Diagnostic::error(
                Code::E0615,
                self.file,
                f.field.span,
                format!("unknown signal `{}`", f.field.name),
            )
            .with_label("not a signal of this flow");
            let help = if scope.signals.is_empty() {
                Some(format!("declare it: `signal {} = false`", f.field.name))
            } else {
                Some(format!(
                    "the signals are {}",
                    list(scope.signals.iter().map(|(n, _)| *n))
                ))
            };
            self.out.push(crate::check::with_suggestion(
                d,
                &f.field.name,
                scope.signals.iter().map(|(n, _)| *n),
                help,
            ));
        }
        signal.map_or(ValueType::Any, |(_, ty)| *ty)
    }

    /// `source.column` (the expression `e`): a column of one source of the query.
    fn bind_qualified(&mut self, f: &Field, e: &Expr, scope: &Scope) -> ValueType {
        match scope.resolve_qualified(&f.base.name, &f.field.name) {
            Meaning::Column(_, ty) => {
                self.read_row = true;
                ty
            }
            _ => {
                self.unresolved_qualified(f, e, scope);
                ValueType::Any
            }
        }
    }

    /// Reports `source.column` that names no column: an unknown column of a source, a name
    /// that is not a source, or a column read where there is no row.
    fn unresolved_qualified(&mut self, f: &Field, e: &Expr, scope: &Scope) {
        match scope.row {
            Some(row) if row.aliases.iter().any(|a| *a == f.base.name) => {
                self.unknown_column(&format!("{}.{}", f.base.name, f.field.name), e, scope)
            }
            Some(row) => self.out.push(
                Diagnostic::error(
                    Code::E0114,
                    self.file,
                    f.base.span,
                    format!("`{}` is not a source of this query", f.base.name),
                )
                .with_label("not in scope here")
                .with_help(format!(
                    "columns here are qualified by {}; read another stage with `from` or `join`",
                    list(row.aliases.iter().map(String::as_str))
                )),
            ),
            None => self.out.push(
                Diagnostic::error(
                    Code::E0616,
                    self.file,
                    e.span,
                    format!(
                        "`{}.{}` reads a column, but {} has no input row",
                        f.base.name, f.field.name, scope.place
                    ),
                )
                .with_label("no input row here")
                .with_help(format!(
                    "stage rows reach other stages through `from`: read `{}` in a stage and use `_.{}` where {ROW_PLACES_SHORT}",
                    f.base.name, f.field.name
                )),
            ),
        }
    }

    /// `lhs op rhs` (the expression `e`); time arithmetic that makes no sense is reported.
    fn bind_binary(
        &mut self,
        op: BinaryOp,
        lhs: &Expr,
        rhs: &Expr,
        e: &Expr,
        scope: &Scope,
    ) -> ValueType {
        let (l, r) = (self.bind(lhs, scope), self.bind(rhs, scope));
        if let Some(connector) = &self.on_postgres
            && let Some(what) = sqlite_time(op, l, r)
        {
            let d = not_on_postgres(self.file, e.span, (connector, self.engine), what.to_string());
            self.out.push(d);
        }
        if let Some(why) = time_misuse(op, l, r) {
            self.out.push(
                Diagnostic::error(
                    Code::E0621,
                    self.file,
                    e.span,
                    format!("`{}` of {} and {}: {why}", op.symbol(), l.name(), r.name()),
                )
                .with_label("not time arithmetic")
                .with_help("a timestamp or a date moves by a duration (`run_time + 1h`, `eta - 15m`); two timestamps subtract to a duration; a duration scales by a number (`d * 2`)"),
            );
        }
        binary_type(op, l, r)
    }

    fn function(
        &mut self,
        call: &crate::syntax::ast::Call,
        scope: &Scope,
        types: &[ValueType],
    ) -> ValueType {
        let name = call.name.name.as_str();
        let Some(f) = functions::lookup(name) else {
            if self
                .quiet_functions
                .contains(&name.to_ascii_lowercase().as_str())
            {
                return ValueType::Any;
            }
            let d = Diagnostic::error(
                Code::E0617,
                self.file,
                call.name.span,
                format!("unknown function `{name}`"),
            )
            .with_label("not a function wvflow knows");
            let names = functions::FUNCTIONS
                .iter()
                .filter(|f| scope.run_state || f.used != Use::RunState)
                .map(|f| f.name);
            self.out.push(crate::check::with_suggestion(
                d,
                name,
                names,
                Some("the functions an expression may call are listed in docs/language.md (`Functions`); activities are called as stage operators, not inside expressions".into()),
            ));
            return ValueType::Any;
        };
        if let Some(connector) = &self.on_postgres
            && !functions::on_postgres(f)
        {
            let d = not_on_postgres(
                self.file,
                call.name.span,
                (connector, self.engine),
                format!("`{}()` has no {} form", f.name, self.engine),
            );
            self.out.push(d);
        }
        if f.used == Use::RunState && !scope.run_state {
            self.out.push(
                Diagnostic::error(
                    Code::E0617,
                    self.file,
                    call.name.span,
                    format!(
                        "`{}()` reads the run's state: it is only available in `query`",
                        f.name
                    ),
                )
                .with_label("not available here")
                .with_help(format!(
                    "declare a query: `query progress = {}`",
                    f.signature
                )),
            );
            return ValueType::Any;
        }
        if f.name == "iteration" && !self.in_loop {
            self.out.push(
                Diagnostic::error(
                    Code::E0624,
                    self.file,
                    call.span,
                    "`iteration()` outside a `while` loop".to_string(),
                )
                .with_label("no loop counts iterations here")
                .with_help("`iteration()` is read in a `while` condition, in the operators after `while` and in the loop stage's `idempotency_key`"),
            );
            return ValueType::Int;
        }
        let n = call.args.len();
        if n < f.min_args || f.max_args.is_some_and(|max| n > max) {
            let expected = match f.max_args {
                Some(max) if max == f.min_args => format!("{max}"),
                Some(max) => format!("{} to {max}", f.min_args),
                None => format!("at least {}", f.min_args),
            };
            self.out.push(
                Diagnostic::error(
                    Code::E0618,
                    self.file,
                    call.span,
                    format!("`{}` takes {expected} argument(s), {n} given", f.name),
                )
                .with_label("here")
                .with_help(format!("`{}`: {}", f.signature, f.meaning)),
            );
        }
        match f.returns {
            Returns::Fixed(t) => t,
            Returns::FirstArgument => types.first().copied().unwrap_or_default(),
        }
    }

    fn unresolved(&mut self, name: &str, e: &Expr, scope: &Scope) {
        if scope.row.is_some_and(|r| r.shape.is_some()) {
            return self.unknown_column(name, e, scope);
        }
        let mut known = scope.known_names();
        let functions: Vec<String> = functions::FUNCTIONS
            .iter()
            .filter(|f| scope.run_state || f.used != Use::RunState)
            .map(|f| format!("{}()", f.name))
            .collect();
        let d = Diagnostic::error(
            Code::E0615,
            self.file,
            e.span,
            format!("unknown name `{name}` in {}", scope.place),
        )
        .with_label("not a parameter, signal or run value");
        let otherwise = if scope.values.is_empty() {
            format!(
                "{} can use literals, `run_time` and `run_date`; there is no input row here",
                scope.place
            )
        } else {
            format!(
                "names here are {}; there is no input row here",
                list(known.iter().map(String::as_str))
            )
        };
        let close = crate::diagnostics::suggest::closest(name, known.iter().map(String::as_str))
            .map(str::to_string)
            .or_else(|| {
                crate::diagnostics::suggest::closest(
                    &format!("{name}()"),
                    functions.iter().map(String::as_str),
                )
                .map(str::to_string)
            });
        known.clear();
        self.out.push(match close {
            Some(best) => d.with_help(format!("did you mean `{best}`?")),
            None => d.with_help(otherwise),
        });
    }

    fn unknown_column(&mut self, name: &str, e: &Expr, scope: &Scope) {
        let columns: Vec<&str> = scope
            .row
            .and_then(|r| r.shape.as_ref())
            .map(|c| c.iter().map(|c| c.name.as_str()).collect())
            .unwrap_or_default();
        let field = name.rsplit('.').next().unwrap_or(name);
        let d = Diagnostic::error(
            Code::E0114,
            self.file,
            e.span,
            format!("no column `{name}` in the input of {}", scope.place),
        )
        .with_label("no such column");
        let known = scope.known_names();
        self.out.push(crate::check::with_suggestion(
            d,
            field,
            known.iter().map(String::as_str),
            Some(format!(
                "the input's columns are {}",
                list(columns.iter().copied())
            )),
        ));
    }
}

const ROW_PLACES_SHORT: &str = "a row is read (`where`, `select`, `each` arguments, ...)";

/// The signals of a flow, each with the type of its initial value as the binder types it
/// (over the flow's parameters and run values, which is all an initial value may read):
/// `signal approved = false` is a boolean. Diagnostics are the checker's to report.
pub fn signal_types(flow: &crate::syntax::ast::Flow) -> Vec<(&str, ValueType)> {
    let params: Vec<(&str, ValueType)> = flow
        .params
        .iter()
        .map(|p| (p.name.name.as_str(), p.ty.value.into()))
        .collect();
    let scope = Scope {
        values: &params,
        signals: &[],
        run_values: true,
        run_state: false,
        row: None,
        place: "a signal's initial value",
    };
    let mut binder = Binder::new(FileId(0));
    flow.members
        .iter()
        .filter_map(|m| match m {
            crate::syntax::ast::Member::Signal(s) => {
                Some((s.name.name.as_str(), binder.bind(&s.value, &scope)))
            }
            _ => None,
        })
        .collect()
}

fn list<'a>(names: impl Iterator<Item = &'a str>) -> String {
    let names: Vec<String> = names.map(|n| format!("`{n}`")).collect();
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

/// What of `l op r` the lowering writes with the embedded engine's time functions (`wv_add`,
/// `julianday`, `wv_duration_text`), which a PostgreSQL connector does not have.
fn sqlite_time(op: BinaryOp, l: ValueType, r: ValueType) -> Option<&'static str> {
    use ValueType as T;
    let time = |t: T| matches!(t, T::Timestamp | T::Date);
    let number = |t: T| matches!(t, T::Int | T::Float | T::Duration);
    // What the connectors' dialects write (plan::sql, `connector_time`): a timestamp or a
    // date moved by a duration, the duration between two, and instants compared with
    // timestamps, dates or text.
    let written = match op {
        BinaryOp::Add => (time(l) && r == T::Duration) || (l == T::Duration && time(r)),
        BinaryOp::Sub => time(l) && (r == T::Duration || time(r)),
        _ => false,
    };
    let instant = |t: T| matches!(t, T::Timestamp | T::Date | T::String);
    match op {
        BinaryOp::Add | BinaryOp::Sub
            if !written
                && (time(l)
                    || time(r)
                    || (l == T::Duration && !number(r))
                    || (r == T::Duration && !number(l))) =>
        {
            Some("time arithmetic on a value of unknown type is written only by the embedded engine")
        }
        _ if op.is_comparison()
            && (l == T::Timestamp || r == T::Timestamp)
            && !(instant(l) && instant(r)) =>
        {
            Some("a timestamp compares as an instant with a timestamp, a date or text only")
        }
        BinaryOp::Concat if l == T::Duration || r == T::Duration => {
            Some("a duration as text is written only by the embedded engine")
        }
        _ => None,
    }
}

/// E0709: an expression of a stage on a PostgreSQL (or DuckDB) connector its dialect cannot
/// express.
fn not_on_postgres(
    file: FileId,
    span: crate::span::Span,
    (connector, engine): (&str, &str),
    what: String,
) -> Diagnostic {
    Diagnostic::error(
        Code::E0709,
        file,
        span,
        format!("{what}: the stage runs on {engine} connector `{connector}`"),
    )
    .with_label(format!("not on {engine}"))
    .with_help("compute it in a stage on `default` (before or after this one), or write it another way")
}

/// Why `l op r` is not arithmetic on times, when both types are known: a number without a
/// unit, text, or two timestamps added would otherwise be computed as numbers or text.
fn time_misuse(op: BinaryOp, l: ValueType, r: ValueType) -> Option<&'static str> {
    use ValueType as T;
    let time = |t: T| matches!(t, T::Timestamp | T::Date);
    let number = |t: T| matches!(t, T::Int | T::Float);
    if l == T::Any || r == T::Any || !(time(l) || time(r) || l == T::Duration || r == T::Duration) {
        return None;
    }
    if op.is_comparison() {
        // A time or a duration against a bare number compares milliseconds or text.
        let unitless = |a: T, b: T| (time(a) || a == T::Duration) && number(b);
        return (unitless(l, r) || unitless(r, l))
            .then_some("a number has no unit: write a duration such as `30s`, or a time");
    }
    let fine = match op {
        BinaryOp::Add => {
            matches!((l, r), (T::Duration, T::Duration))
                || (time(l) && r == T::Duration)
                || (l == T::Duration && time(r))
        }
        BinaryOp::Sub => {
            matches!((l, r), (T::Duration, T::Duration))
                || (time(l) && (r == T::Duration || time(r)))
        }
        BinaryOp::Mul => (l == T::Duration && number(r)) || (number(l) && r == T::Duration),
        BinaryOp::Div => l == T::Duration && (number(r) || r == T::Duration),
        // Comparisons, `||`, `and`, `or`: not arithmetic.
        _ => true,
    };
    (!fine).then_some(match op {
        BinaryOp::Add | BinaryOp::Sub if number(l) || number(r) => {
            "a number has no unit: write a duration such as `30s`"
        }
        _ => "these types do not combine",
    })
}

/// The type of `l op r`.
pub fn binary_type(op: BinaryOp, l: ValueType, r: ValueType) -> ValueType {
    use ValueType as T;
    match op {
        BinaryOp::Concat => T::String,
        BinaryOp::Add | BinaryOp::Sub | BinaryOp::Mul | BinaryOp::Div | BinaryOp::Rem => {
            match (l, r) {
                (T::Int, T::Int) => T::Int,
                (T::Float, T::Int | T::Float) | (T::Int, T::Float) => T::Float,
                (T::Duration, T::Duration) if matches!(op, BinaryOp::Add | BinaryOp::Sub) => {
                    T::Duration
                }
                (T::Duration, T::Int | T::Float) if matches!(op, BinaryOp::Mul | BinaryOp::Div) => {
                    T::Duration
                }
                (T::Int | T::Float, T::Duration) if op == BinaryOp::Mul => T::Duration,
                (T::Duration, T::Duration) if op == BinaryOp::Div => T::Float,
                (T::Timestamp | T::Date, T::Duration)
                    if matches!(op, BinaryOp::Add | BinaryOp::Sub) =>
                {
                    T::Timestamp
                }
                (T::Duration, T::Timestamp | T::Date) if op == BinaryOp::Add => T::Timestamp,
                (T::Timestamp | T::Date, T::Timestamp | T::Date) if op == BinaryOp::Sub => {
                    T::Duration
                }
                _ => T::Any,
            }
        }
        _ => T::Boolean,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope(row: Option<&Row>) -> Scope<'_> {
        Scope {
            values: &[("market", ValueType::String), ("limit", ValueType::Int)],
            signals: &[("approved", ValueType::Boolean)],
            run_values: true,
            run_state: false,
            row,
            place: "a test",
        }
    }

    fn known(columns: &[(&str, ValueType)]) -> Row {
        Row::of(
            Some(columns.iter().map(|(n, t)| Column::new(*n, *t)).collect()),
            "orders",
        )
    }

    #[test]
    fn every_kind_of_name_resolves_to_one_meaning() {
        let row = known(&[("amount", ValueType::Float), ("market", ValueType::String)]);
        let s = scope(Some(&row));
        assert_eq!(s.resolve("limit"), Meaning::Value(ValueType::Int));
        // A parameter comes before a column of the same name; `_.market` is the column.
        assert_eq!(s.resolve("market"), Meaning::Value(ValueType::String));
        assert_eq!(
            s.resolve_row("market"),
            Meaning::Column("market".into(), ValueType::String)
        );
        assert_eq!(s.resolve("approved"), Meaning::Signal(ValueType::Boolean));
        assert_eq!(s.resolve("run_date"), Meaning::Value(ValueType::Date));
        assert_eq!(
            s.resolve("amount"),
            Meaning::Column("amount".into(), ValueType::Float)
        );
        assert_eq!(
            s.resolve_qualified("orders", "amount"),
            Meaning::Column("amount".into(), ValueType::Float)
        );
        assert_eq!(s.resolve("amout"), Meaning::Unresolved);
        assert_eq!(
            s.resolve_qualified("customers", "amount"),
            Meaning::Unresolved
        );
        // Without a row, a column cannot be meant; with a row of unknown shape, any other
        // name is taken as a column.
        assert_eq!(scope(None).resolve("amount"), Meaning::Unresolved);
        assert_eq!(
            scope(Some(&Row::unknown())).resolve("amount"),
            Meaning::Column("amount".into(), ValueType::Any)
        );
    }

    #[test]
    fn a_qualified_name_after_a_join_finds_the_column_it_became() {
        let left = [
            Column::new("id", ValueType::Int),
            Column::new("name", ValueType::String),
        ];
        let right = [
            Column::new("id", ValueType::Int),
            Column::new("name", ValueType::String),
            Column::new("tier", ValueType::String),
        ];
        let kept = crate::check::shapes::join_columns(
            &left,
            "orders",
            &right,
            "customers",
            &["id".to_string()],
        );
        let names: Vec<&str> = kept.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["id", "name", "customers_name", "tier"]);
        let row = Row {
            shape: Some(kept.into()),
            aliases: vec!["orders".into(), "customers".into()].into(),
        };
        assert_eq!(
            row.qualified_name("customers", "name"),
            Some("customers_name")
        );
        assert_eq!(row.qualified_name("orders", "name"), Some("name"));
        // The key kept once answers for both sides.
        assert_eq!(row.qualified_name("customers", "id"), Some("id"));
    }
}
