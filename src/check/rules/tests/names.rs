//! The names a test uses: activities, the flow's stages and signals, parameters, upstream flows.

use super::*;

pub(super) fn known_activity(ctx: &mut Ctx, file: FileId, name: &Ident) -> bool {
    if ctx.index.activity_by_name.contains_key(name.name.as_str()) {
        return true;
    }
    let d = Diagnostic::error(
        Code::E0801,
        file,
        name.span,
        format!("`{}` is not an activity of this workspace", name.name),
    )
    .with_label("no such activity");
    let known: Vec<&str> = ctx.index.activity_by_name.keys().copied().collect();
    ctx.emit(with_suggestion(d, &name.name, known, None));
    false
}

pub(super) fn never_called(ctx: &mut Ctx, file: FileId, name: &Ident, graph: &FlowGraph) {
    ctx.emit(
        Diagnostic::warning(
            Code::W0801,
            file,
            name.span,
            format!(
                "flow `{}` never calls `{}`: this does nothing",
                graph.flow.name.name, name.name
            ),
        )
        .with_label("never called by the run")
        .with_help("remove it, or mock an activity the flow, its compensations, hooks or child flows call"),
    );
}

pub(super) fn signal(ctx: &mut Ctx, file: FileId, graph: &FlowGraph, name: &Ident, value: Option<&Expr>) {
    let declared: Vec<&str> = graph
        .flow
        .members
        .iter()
        .filter_map(|m| match m {
            Member::Signal(s) => Some(s.name.name.as_str()),
            _ => None,
        })
        .collect();
    let builtin = matches!(name.name.as_str(), "pause" | "resume");
    if builtin && !declared.contains(&name.name.as_str()) {
        // The run's owner applies them as it polls the run store, in real time.
        let takes = "a signal the flow declares: a test does not send `pause` or `resume`";
        bad_value(ctx, file, name.span, "signal", takes);
    } else if !declared.contains(&name.name.as_str()) {
        let d = Diagnostic::error(
            Code::E0801,
            file,
            name.span,
            format!("flow `{}` has no signal `{}`", graph.flow.name.name, name.name),
        )
        .with_label("no such signal");
        ctx.emit(with_suggestion(d, &name.name, declared, None));
    }
    if let Some(value) = value
        && crate::check::values::literal_value(value).is_none()
    {
        bad_value(ctx, file, value.span, "signal value", "a literal");
    }
}

/// `upstream FLOW STATE`: a flow the tested flow's start condition or `depends on` names, and
/// how its last run ended.
pub(super) fn upstream_state(ctx: &mut Ctx, file: FileId, flow: &Flow, upstream: &Ident, state: &Ident) {
    let mut named: Vec<&str> = flow.depends_on.iter().map(|d| d.name.as_str()).collect();
    if let Some(condition) = &flow.condition {
        named.extend(condition_flows(condition));
    }
    if !named.contains(&upstream.name.as_str()) {
        let d = Diagnostic::error(
            Code::E0801,
            file,
            upstream.span,
            format!(
                "flow `{}` does not start after `{}`: neither its `if` nor its `depends on` names it",
                flow.name.name, upstream.name
            ),
        )
        .with_label("not an upstream flow");
        ctx.emit(with_suggestion(d, &upstream.name, named, None));
    }
    let ends = ["success", "failed", "skipped", "cancelled"];
    state_word(ctx, file, state, &ends);
}

pub(super) fn condition_flows(condition: &Condition) -> Vec<&str> {
    match condition {
        Condition::State { target, .. } => vec![target.name.as_str()],
        Condition::Not(inner, _) => condition_flows(inner),
        Condition::And(a, b) | Condition::Or(a, b) => {
            let mut names = condition_flows(a);
            names.extend(condition_flows(b));
            names
        }
    }
}

pub(super) fn known_stage(ctx: &mut Ctx, file: FileId, graph: &FlowGraph, stage: &Ident) -> bool {
    if graph.index_of(&stage.name).is_some() {
        return true;
    }
    let d = Diagnostic::error(
        Code::E0801,
        file,
        stage.span,
        format!("flow `{}` has no stage `{}`", graph.flow.name.name, stage.name),
    )
    .with_label("no such stage");
    ctx.emit(with_suggestion(d, &stage.name, graph.stage_names(), None));
    false
}

pub(super) fn called_with(ctx: &mut Ctx, file: FileId, activity: &Ident, args: &[Arg]) {
    let Some(def) = ctx.index.activity_by_name.get(activity.name.as_str()).copied() else {
        return;
    };
    let params: Vec<&str> = def.node.params.iter().map(|p| p.name.name.as_str()).collect();
    for arg in args {
        let Some(name) = &arg.name else {
            bad_value(ctx, file, arg.span(), "argument", "a named argument: `called with (trip = 'T-1')`");
            continue;
        };
        if !params.contains(&name.name.as_str()) {
            let d = Diagnostic::error(
                Code::E0801,
                file,
                name.span,
                format!("activity `{}` has no parameter `{}`", activity.name, name.name),
            )
            .with_label("no such parameter");
            ctx.emit(with_suggestion(d, &name.name, params.iter().copied(), None));
        }
        if crate::check::values::literal_value(&arg.value).is_none() {
            bad_value(ctx, file, arg.value.span, "argument value", "a literal");
        }
    }
}
