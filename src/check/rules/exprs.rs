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
    let path = ctx.workspace.sources.get(graph.file).path.clone();
    let pipelines = Shapes::new(graph, &path).all();
    let scopes = FlowScopes::new(graph.flow);
    let mut binder = Binder::new(graph.file);
    for (node, pipeline) in graph.stages.iter().zip(&pipelines) {
        stage(&mut binder, &scopes, pipeline, node.stage);
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
        Err(reason) if is_literal(e) => reason,
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
    match &stage.body.source.kind {
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
    let mut each_row = None;
    for (op, row) in stage.body.ops.iter().zip(&pipeline.before) {
        let per_row = |place| scopes.scope(Some(row), place);
        match &op.kind {
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
            OpKind::Each(call) => {
                each_row = Some(row);
                args(binder, &call.args, &per_row("an `each` argument"));
            }
            // Without `each`, `_` is the input's single row (the runtime refuses any other
            // number of rows).
            OpKind::Activity(call) => args(
                binder,
                &call.args,
                &per_row("an activity argument without `each`"),
            ),
            OpKind::CallFlow(call) => args(
                binder,
                call.args.as_deref().unwrap_or_default(),
                &per_row("a `call` argument"),
            ),
            OpKind::EachCall(call) => {
                each_row = Some(row);
                args(
                    binder,
                    call.args.as_deref().unwrap_or_default(),
                    &per_row("an `each call` argument"),
                );
            }
            OpKind::WaitUntil(e) => {
                binder.bind(e, &per_row("a `wait until` condition"));
            }
            OpKind::Activate(a) => args(
                binder,
                &a.options,
                &scopes.scope(None, "an `activate` option"),
            ),
            OpKind::Jump(call) => args(
                binder,
                call.args.as_deref().unwrap_or_default(),
                &per_row("a jump argument"),
            ),
            OpKind::Wait(e) => wait_duration(binder, e, &scopes.scope(None, "a `wait` duration")),
            OpKind::Limit(_) | OpKind::SaveTo(_) | OpKind::Fork(_) | OpKind::End => {}
        }
    }
    if let Some(config) = &stage.config {
        config_exprs(
            binder,
            scopes,
            stage,
            config,
            each_row,
            pipeline.output.clone(),
        );
    }
}

/// `idempotency_key` (per item of an `each` stage, else once per run) and `compensate:`
/// arguments (over the stage's own output rows).
fn config_exprs(
    binder: &mut Binder,
    scopes: &FlowScopes,
    stage: &Stage,
    config: &Config,
    each_row: Option<&Row>,
    output: crate::check::binder::Shape,
) {
    for e in &config.entries {
        match e.key.name.as_str() {
            "idempotency_key" => {
                let scope = match &each_row {
                    Some(row) => {
                        scopes.scope(Some(row), "the `idempotency_key` of an `each` stage")
                    }
                    None => scopes.scope(
                        None,
                        "a stage-level `idempotency_key` (the stage has no `each`)",
                    ),
                };
                binder.quiet_functions = &crate::check::saga::NON_DETERMINISTIC;
                binder.bind(&e.value, &scope);
                binder.quiet_functions = &[];
            }
            "compensate" => {
                if let ExprKind::Call(call) = &e.value.kind {
                    let row = Row::of(output.clone(), &stage.name.name);
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
