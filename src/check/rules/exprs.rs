//! Every expression of a flow through the binder, each in the scope of where it is written:
//! unknown names (E0615), unknown columns of inputs whose shape is known (E0114), `_` where no
//! row is read (E0616), unknown functions (E0617) and wrong function arities (E0618).

use crate::check::binder::{Binder, Row, Scope};
use crate::check::graph::FlowGraph;
use crate::check::settings::FlowSettings;
use crate::check::shapes::{Pipeline, Shapes};
use crate::check::{Ctx, Def};
use crate::diagnostics::{Code, Diagnostic};
use crate::syntax::ast::{
    Activity, Arg, Command, Config, Expr, ExprKind, Member, OpKind, SourceKind, SourceRef, Stage,
};
use crate::value::ValueType;

/// Scopes of one flow: its parameters, signals and run values.
pub struct FlowScopes<'a> {
    params: Vec<(&'a str, ValueType)>,
    signals: Vec<(&'a str, ValueType)>,
}

impl<'a> FlowScopes<'a> {
    pub fn new(flow: &'a crate::syntax::ast::Flow) -> Self {
        FlowScopes {
            params: flow
                .params
                .iter()
                .map(|p| (p.name.name.as_str(), p.ty.value.into()))
                .collect(),
            signals: crate::check::binder::signal_types(flow),
        }
    }

    /// An expression of the flow evaluated once, or per row of `row`.
    pub fn scope<'s>(&'s self, row: Option<&'s Row>, place: &'static str) -> Scope<'s> {
        Scope {
            values: &self.params,
            signals: &self.signals,
            run_values: true,
            run_state: false,
            row,
            place,
        }
    }

    /// A `query`: also the run-state functions.
    pub fn query(&self) -> Scope<'_> {
        Scope {
            run_state: true,
            ..self.scope(None, "a `query`")
        }
    }

    /// A signal's initial value: parameters and run values only.
    pub fn signal(&self) -> Scope<'_> {
        Scope {
            signals: &[],
            ..self.scope(None, "a signal's initial value")
        }
    }
}

/// The parameters of an activity, as the scope of its `exec` arguments names them.
pub fn activity_params(activity: &Activity) -> Vec<(&str, ValueType)> {
    activity
        .params
        .iter()
        .map(|p| (p.name.name.as_str(), p.ty.value.into()))
        .collect()
}

/// The scope of an activity's `exec` arguments: its parameters.
pub fn exec_scope<'a>(params: &'a [(&'a str, ValueType)]) -> Scope<'a> {
    Scope {
        values: params,
        signals: &[],
        run_values: false,
        run_state: false,
        row: None,
        place: "an `exec` argument",
    }
}

pub fn check_flow(ctx: &mut Ctx, graph: &FlowGraph) {
    check_flow_assuming(ctx, graph, Default::default());
}

/// [`check_flow`], with the rows of these activities known (a test's mocks).
pub fn check_flow_assuming(
    ctx: &mut Ctx,
    graph: &FlowGraph,
    assumed: std::collections::BTreeMap<String, crate::check::binder::Shape>,
) {
    let path = ctx.workspace.sources.get(graph.file).path.clone();
    let pipelines = Shapes::new(graph, &path).assuming(assumed).all();
    let scopes = FlowScopes::new(graph.flow);
    let mut binder = Binder::new(graph.file);
    for (node, pipeline) in graph.stages.iter().zip(&pipelines) {
        (binder.on_postgres, binder.engine) = match server_connector(ctx, node.stage) {
            Some((name, engine)) => (Some(name), engine),
            None => (None, "PostgreSQL"),
        };
        stage(&mut binder, &scopes, pipeline, node.stage);
        binder.on_postgres = None;
    }
    for member in &graph.flow.members {
        match member {
            Member::Signal(s) => {
                binder.bind(&s.value, &scopes.signal());
            }
            Member::Query(q) => {
                binder.bind(&q.value, &scopes.query());
            }
            Member::Stage(_) => {}
        }
    }
    for (_, hook) in FlowSettings::of_flow(graph.file, graph.flow).hooks {
        let call = hook.value;
        let place = if call.name.name == "activate" {
            "an `activate` option"
        } else {
            "a hook argument"
        };
        args(&mut binder, &call.args, &scopes.scope(None, place));
    }
    ctx.out.extend(binder.out);
}

/// The name of the PostgreSQL or DuckDB connector a stage runs on, if it does, and the
/// engine's name: their dialects refuse the same expressions (E0709).
fn server_connector(ctx: &Ctx, stage: &Stage) -> Option<(String, &'static str)> {
    use crate::connectors::ConnectorKind;
    let on = stage.connector.as_ref()?;
    match ctx.workspace.connectors.lookup(&on.name) {
        crate::connectors::Lookup::Found(c) => match c.kind {
            ConnectorKind::Postgres => Some((on.name.to_string(), "PostgreSQL")),
            ConnectorKind::Duckdb => Some((on.name.to_string(), "DuckDB")),
            ConnectorKind::Sqlite => None,
        },
        _ => None,
    }
}

pub fn check_activity(ctx: &mut Ctx, def: Def<'_, Activity>) {
    let Command::Exec(argv) = &def.node.command else {
        return;
    };
    let params = activity_params(def.node);
    let scope = exec_scope(&params);
    let mut binder = Binder::new(def.file);
    for a in argv {
        binder.bind(a, &scope);
    }
    ctx.out.extend(binder.out);
}

fn args(binder: &mut Binder, args: &[Arg], scope: &Scope) {
    for a in args {
        binder.bind(&a.value, scope);
    }
}

fn values(binder: &mut Binder, r: &SourceRef, scopes: &FlowScopes) {
    if let SourceRef::Values { rows, .. } = r {
        let scope = scopes.scope(None, "inline values");
        for e in rows.iter().flatten() {
            binder.bind(e, &scope);
        }
    }
}

/// `wait(D)`: a duration literal, or an expression of type duration (a parameter), which
/// the run evaluates when the wait starts.
fn wait_duration(binder: &mut Binder, e: &Expr, scope: &Scope) {
    let literal = crate::check::values::duration(e);
    if literal.is_ok() {
        return;
    }
    let ty = binder.bind(e, scope);
    if matches!(ty, ValueType::Duration | ValueType::Any) && !is_literal(e) {
        return;
    }
    let found = match literal {
        Err(reason) if is_literal(e) => reason.to_string(),
        _ => format!("found {}", ty.name()),
    };
    binder.out.push(
        Diagnostic::error(
            Code::E0620,
            binder.file,
            e.span,
            format!("`wait` takes a duration: {found}"),
        )
        .with_label("not a duration")
        .with_help("write `wait(30s)`, or pass a parameter of type duration"),
    );
}

fn is_literal(e: &Expr) -> bool {
    matches!(
        e.kind,
        ExprKind::Int(_)
            | ExprKind::Float(_)
            | ExprKind::Str(_)
            | ExprKind::Bool(_)
            | ExprKind::Null
            | ExprKind::Time { .. }
    )
}

fn stage(binder: &mut Binder, scopes: &FlowScopes, pipeline: &Pipeline, stage: &Stage) {
    source(binder, scopes, &stage.body.source.kind);
    let mut each_row = None;
    for (index, (op, row)) in stage.body.ops.iter().zip(&pipeline.before).enumerate() {
        if matches!(op.kind, OpKind::Each(_) | OpKind::EachCall(_)) {
            each_row = Some(row);
        }
        // From `while` on, `iteration()` counts the loop's iterations.
        binder.in_loop |= matches!(op.kind, OpKind::While(_));
        operator(binder, scopes, &OpAt { stage, index, row }, &op.kind);
    }
    if let Some(config) = &stage.config {
        // A stage's keys are evaluated by the embedded engine, wherever the stage runs.
        let on_postgres = binder.on_postgres.take();
        config_exprs(binder, scopes, stage, config, each_row, pipeline);
        binder.on_postgres = on_postgres;
    }
    binder.in_loop = false;
}

/// A stage's source: evaluated once, with no input row.
fn source(binder: &mut Binder, scopes: &FlowScopes, source: &SourceKind) {
    match source {
        SourceKind::From(refs) => refs.iter().for_each(|r| values(binder, r, scopes)),
        SourceKind::Activity(call) => args(
            binder,
            &call.args,
            &scopes.scope(None, "an activity argument (a stage with no input)"),
        ),
        SourceKind::CallFlow(call) => args(
            binder,
            call.args.as_deref().unwrap_or_default(),
            &scopes.scope(None, "a `call` argument"),
        ),
        SourceKind::Jump(call) => args(
            binder,
            call.args.as_deref().unwrap_or_default(),
            &scopes.scope(None, "a jump argument (a stage with no input)"),
        ),
        SourceKind::Wait(e) => wait_duration(binder, e, &scopes.scope(None, "a `wait` duration")),
        SourceKind::WaitUntil(e) => {
            binder.bind(
                e,
                &scopes.scope(None, "a `wait until` source (a stage with no input)"),
            );
        }
        SourceKind::Merge(_) => {}
    }
}

/// An operator of a stage, with the row it reads.
struct OpAt<'a> {
    stage: &'a Stage,
    /// Its place among the stage's operators.
    index: usize,
    row: &'a Row,
}

fn operator(binder: &mut Binder, scopes: &FlowScopes, at: &OpAt, kind: &OpKind) {
    let per_row = |place| scopes.scope(Some(at.row), place);
    match kind {
        OpKind::Where(_)
        | OpKind::Select(_)
        | OpKind::Join(_)
        | OpKind::GroupBy(_)
        | OpKind::OrderBy(_)
        | OpKind::Route(_) => query_operator(binder, scopes, at.row, kind),
        OpKind::Each(call) => args(binder, &call.args, &per_row("an `each` argument")),
        OpKind::Activity(call) => single_call(
            binder,
            scopes,
            at,
            SingleCall {
                args: &call.args,
                place: "an activity argument without `each`",
                reader: format!("the arguments of `{}` read", call.name.name),
                span: call.span,
            },
        ),
        OpKind::CallFlow(call) => single_call(
            binder,
            scopes,
            at,
            SingleCall {
                args: call.args.as_deref().unwrap_or_default(),
                place: "a `call` argument",
                reader: format!("the arguments of `call {}` read", call.name.name),
                span: call.span,
            },
        ),
        OpKind::EachCall(call) => args(
            binder,
            call.args.as_deref().unwrap_or_default(),
            &per_row("an `each call` argument"),
        ),
        OpKind::WaitUntil(e) => {
            binder.bind(e, &per_row("a `wait until` condition"));
        }
        OpKind::Activate(a) => args(
            binder,
            &a.options,
            &scopes.scope(None, "an `activate` option"),
        ),
        OpKind::Jump(call) => single_call(
            binder,
            scopes,
            at,
            SingleCall {
                args: call.args.as_deref().unwrap_or_default(),
                place: "a jump argument",
                reader: format!("the arguments of `-> {}` read", call.name.name),
                span: call.span,
            },
        ),
        OpKind::Wait(e) => wait_duration(binder, e, &scopes.scope(None, "a `wait` duration")),
        OpKind::While(e) => match crate::check::loop_activity(e) {
            Some(call) => single_call(
                binder,
                scopes,
                at,
                SingleCall {
                    args: &call.args,
                    place: "the argument of a `while` activity",
                    reader: format!("the arguments of `while {}` read", call.name.name),
                    span: call.span,
                },
            ),
            None => {
                let ty = binder.bind(e, &per_row("a `while` condition"));
                let file = binder.file;
                binder
                    .out
                    .extend(crate::check::rules::loops::not_boolean(file, e, ty));
            }
        },
        OpKind::Limit(_) | OpKind::SaveTo(_) | OpKind::Fork(_) | OpKind::End => {}
    }
}

/// The operators of a SQL query, over `row`: `where`, `select`, `join`, `group by`,
/// `order by` and `route`.
fn query_operator(binder: &mut Binder, scopes: &FlowScopes, row: &Row, kind: &OpKind) {
    let per_row = |place| scopes.scope(Some(row), place);
    match kind {
        OpKind::Where(e) => {
            binder.bind(e, &per_row("a `where` condition"));
        }
        OpKind::Select(items) => {
            let scope = per_row("a `select` item");
            for item in items {
                binder.bind(&item.expr, &scope);
            }
        }
        OpKind::Join(join) => {
            values(binder, &join.source, scopes);
            binder.bind(&join.on, &per_row("a `join` condition"));
        }
        OpKind::GroupBy(keys) => {
            let scope = per_row("a `group by` key");
            keys.iter().for_each(|k| {
                binder.bind(k, &scope);
            });
        }
        OpKind::OrderBy(keys) => {
            let scope = per_row("an `order by` key");
            keys.iter().for_each(|k| {
                binder.bind(&k.expr, &scope);
            });
        }
        OpKind::Route(route) => {
            let scope = per_row("a `route` case");
            if let Some(by) = &route.by {
                binder.bind(by, &scope);
            }
            for case in &route.cases {
                if !matches!(case.when.kind, ExprKind::Int(_)) {
                    binder.bind(&case.when, &scope);
                }
            }
        }
        _ => {}
    }
}

/// A single call after `|`: an activity, `call` or a jump, without `each`.
struct SingleCall<'a> {
    args: &'a [Arg],
    /// Where the arguments are, for messages.
    place: &'static str,
    /// What reads the row, for the message when the input may have several.
    reader: String,
    span: crate::span::Span,
}

/// Without `each`, `_` is the input's single row (the runtime refuses any other number of
/// rows): a single call's arguments may read the input's one row.
fn single_call(binder: &mut Binder, scopes: &FlowScopes, at: &OpAt, call: SingleCall) {
    binder.read_row = false;
    args(binder, call.args, &scopes.scope(Some(at.row), call.place));
    one_row(binder, at.stage, at.index, &call.reader, call.span);
}

/// `idempotency_key` (per item of an `each` stage, else over the stage's one input row, or
/// once per run when it reads no row) and `compensate:` arguments (over the stage's own
/// output rows).
fn config_exprs(
    binder: &mut Binder,
    scopes: &FlowScopes,
    stage: &Stage,
    config: &Config,
    each_row: Option<&Row>,
    pipeline: &Pipeline,
) {
    for e in &config.entries {
        match e.key.name.as_str() {
            "idempotency_key" => {
                let per_iteration = crate::check::key_per_iteration(stage, &e.value);
                let input = key_input(stage, pipeline).filter(|_| !per_iteration);
                let scope = match (&each_row, &input) {
                    (None, None) if per_iteration => scopes.scope(
                        None,
                        "the `idempotency_key` of a loop stage, evaluated at each iteration",
                    ),
                    (Some(row), _) => {
                        scopes.scope(Some(row), "the `idempotency_key` of an `each` stage")
                    }
                    (None, Some((_, row))) => scopes.scope(
                        Some(row),
                        "a stage-level `idempotency_key` (over the stage's one input row)",
                    ),
                    (None, None) => {
                        scopes.scope(None, "the `idempotency_key` of a stage with no input")
                    }
                };
                binder.quiet_functions = &crate::check::saga::NON_DETERMINISTIC;
                binder.read_row = false;
                binder.bind(&e.value, &scope);
                binder.quiet_functions = &[];
                if let (None, Some((before, _))) = (each_row, input) {
                    let reader =
                        format!("the `idempotency_key` of stage `{}` reads", stage.name.name);
                    one_row(binder, stage, before, &reader, e.value.span);
                }
            }
            "compensate" => {
                if let ExprKind::Call(call) = &e.value.kind {
                    let row = Row::of(pipeline.output.clone(), &stage.name.name);
                    args(
                        binder,
                        &call.args,
                        &scopes.scope(Some(&row), "a `compensate:` argument"),
                    );
                }
            }
            _ => {}
        }
    }
}

/// The input row a stage-level `idempotency_key` reads: the row reaching the stage's first
/// operator that is not relational (where the runtime evaluates the key, before any effect),
/// with that operator's index; `None` for a stage with no input (its source is a call).
/// Lowering writes the key over the same row, so that its columns keep their types.
pub fn key_input<'p>(
    stage: &Stage,
    pipeline: &'p Pipeline,
) -> Option<(usize, std::borrow::Cow<'p, Row>)> {
    if !matches!(
        stage.body.source.kind,
        SourceKind::From(_) | SourceKind::Merge(_)
    ) {
        return None;
    }
    // A route passes its rows on: nothing happens outside the run's data before an effect.
    let first_effect = stage
        .body
        .ops
        .iter()
        .position(|op| !op.kind.is_relational() && !matches!(op.kind, OpKind::Route(_)));
    Some(match first_effect {
        Some(i) => (i, std::borrow::Cow::Borrowed(pipeline.before.get(i)?)),
        None => (
            stage.body.ops.len(),
            std::borrow::Cow::Owned(Row::of(pipeline.output.clone(), &stage.name.name)),
        ),
    })
}

/// What read the row since `binder.read_row` was cleared (`reader`, subject and verb, written
/// at `span`) takes
/// the one row reaching operator `before` of `stage`: E0622 where another number of rows is
/// known to reach it.
fn one_row(
    binder: &mut Binder,
    stage: &Stage,
    before: usize,
    reader: &str,
    span: crate::span::Span,
) {
    if !std::mem::take(&mut binder.read_row) {
        return;
    }
    let Some(rows) = known_rows(stage, before).filter(|&n| n != 1) else {
        return;
    };
    let count = match rows {
        0 => "no rows reach it".to_string(),
        n => format!("{n} rows reach it"),
    };
    binder.out.push(
        Diagnostic::error(
            Code::E0622,
            binder.file,
            span,
            format!("{reader} the input's one row, and {count}"),
        )
        .with_label(format!("reads one row of {rows}"))
        .with_help("use `each` for one call (and one key) per row, or `limit 1` to keep one row"),
    );
}

/// How many rows reach operator `before` of `stage`, where that is known before running:
/// inline values, through `order by`, `limit` and `select` of plain columns.
fn known_rows(stage: &Stage, before: usize) -> Option<usize> {
    let SourceKind::From(refs) = &stage.body.source.kind else {
        return None;
    };
    let [SourceRef::Values { rows, .. }] = refs.as_slice() else {
        return None;
    };
    let mut count = rows.len();
    for op in stage.body.ops.iter().take(before) {
        match &op.kind {
            OpKind::OrderBy(_) => {}
            OpKind::Limit(n) => count = count.min(usize::try_from(n.value).unwrap_or(usize::MAX)),
            OpKind::Select(items)
                if items.iter().all(|item| {
                    matches!(item.expr.kind, ExprKind::Name(_) | ExprKind::Field(_))
                }) => {}
            _ => return None,
        }
    }
    Some(count)
}
