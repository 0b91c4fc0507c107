//! E06: flows, parameters, activities and calls. References to flows and activities, `depends
//! on` cycles, looping jumps, argument binding and literal types, parameter declarations.

use crate::arguments::{ArgProblem, assign_call};
use crate::check::graph::{FlowGraph, find_cycles};
use crate::check::settings::FlowSettings;
use crate::check::{Ctx, Def, values, with_suggestion};
use crate::diagnostics::Code;
use crate::diagnostics::Diagnostic;
use crate::source::FileId;
use crate::syntax::Span;
use crate::syntax::ast::*;
use std::collections::BTreeMap;

pub fn check_workspace(ctx: &mut Ctx) {
    for def in ctx.index.runs.clone() {
        flow_call(ctx, def.file, &def.node.call, "run flow");
    }
    depends_on_cycles(ctx);
    jump_loops(ctx);
    call_loops(ctx);
    condition_loops(ctx);
}

pub fn check_flow(ctx: &mut Ctx, graph: &FlowGraph) {
    let file = graph.file;
    let flow = graph.flow;
    params(ctx, file, &flow.params);
    for name in &flow.depends_on {
        if ctx.index.flow(&name.name, None).is_none() {
            undefined_flow(ctx, file, name, "depends on");
        }
    }
    if let Some(condition) = &flow.condition {
        flow_condition(ctx, file, flow, condition);
    }
    for (_, hook) in FlowSettings::of_flow(file, flow).hooks {
        activity_call(ctx, file, hook.value);
    }
    for node in &graph.stages {
        let stage = node.stage;
        match &stage.body.source.kind {
            SourceKind::Activity(call) => activity_call(ctx, file, call),
            SourceKind::CallFlow(call) => flow_call(ctx, file, call, "call"),
            SourceKind::Jump(call) => flow_call(ctx, file, call, "->"),
            _ => {}
        }
        for op in &stage.body.ops {
            match &op.kind {
                OpKind::Activity(call) | OpKind::Each(call) => activity_call(ctx, file, call),
                OpKind::Jump(call) => flow_call(ctx, file, call, "->"),
                OpKind::CallFlow(call) | OpKind::EachCall(call) => {
                    flow_call(ctx, file, call, "call")
                }
                OpKind::Activate(activate) => activation(ctx, file, activate),
                OpKind::While(condition) => {
                    if let Some(call) = crate::check::loop_activity(condition) {
                        activity_call(ctx, file, call);
                    }
                }
                _ => {}
            }
        }
    }
}

pub fn check_activity(ctx: &mut Ctx, def: Def<'_, Activity>) {
    params(ctx, def.file, &def.node.params);
    environment_names(ctx, def.file, &def.node.params);
}

/// An activity's parameters arrive as `WV_<NAME>` in upper case: `id` and `ID` would be one
/// variable, and one value would silently replace the other.
fn environment_names(ctx: &mut Ctx, file: FileId, params: &[Param]) {
    for (i, p) in params.iter().enumerate() {
        let variable = p.name.name.to_ascii_uppercase();
        if let Some(first) = params[..i]
            .iter()
            .find(|q| q.name.name != p.name.name && q.name.name.to_ascii_uppercase() == variable)
        {
            ctx.emit(
                Diagnostic::error(
                    Code::E0619,
                    file,
                    p.name.span,
                    format!(
                        "parameters `{}` and `{}` would both arrive as `WV_{variable}`",
                        first.name.name, p.name.name
                    ),
                )
                .with_label("same environment variable")
                .with_secondary(file, first.name.span, "the other parameter")
                .with_help("rename one of them: names that differ only in case cannot both be passed to the activity"),
            );
        }
    }
}

fn undefined_flow(ctx: &mut Ctx, file: FileId, name: &Ident, context: &str) {
    let d = Diagnostic::error(
        Code::E0601,
        file,
        name.span,
        format!(
            "`{context}` names `{}`, which is not a flow of this workspace",
            name.name
        ),
    )
    .with_label("no such flow");
    let names: Vec<&str> = ctx.index.flow_names().collect();
    ctx.emit(with_suggestion(
        d,
        &name.name,
        names,
        Some("flows resolve across every .wv file of the folder being checked".into()),
    ));
}

pub(crate) fn flow_call(ctx: &mut Ctx, file: FileId, call: &FlowCall, context: &str) {
    let Some(versions) = ctx
        .index
        .flows_by_name
        .get(call.name.name.as_str())
        .cloned()
    else {
        undefined_flow(ctx, file, &call.name, context);
        return;
    };
    let target = match &call.version {
        Some(v) => match ctx.index.flow(&call.name.name, Some(v.value)) {
            Some(t) => t,
            None => {
                let known: Vec<String> = versions
                    .iter()
                    .filter_map(|d| d.node.version.as_ref().map(|x| x.value.to_string()))
                    .collect();
                let help = if known.is_empty() {
                    "the flow declares no `@version`".to_string()
                } else {
                    format!("defined versions: {}", known.join(", "))
                };
                ctx.emit(
                    Diagnostic::error(
                        Code::E0611,
                        file,
                        v.span,
                        format!("flow `{}` has no version {}", call.name.name, v.value),
                    )
                    .with_label("no such version")
                    .with_help(help),
                );
                return;
            }
        },
        None => match ctx.index.flow(&call.name.name, None) {
            Some(t) => t,
            None => return,
        },
    };
    let args = call.args.as_deref().unwrap_or_default();
    let problems = bind(&target.node.params, args, call.span);
    report_binding(
        ctx,
        file,
        problems,
        None,
        "flow",
        &call.name.name,
        Some((target.file, target.node.name.span)),
    );
}

fn activity_call(ctx: &mut Ctx, file: FileId, call: &Call) {
    if call.name.name == "activate" {
        return;
    }
    let unknown = Diagnostic::error(
        Code::E0610,
        file,
        call.name.span,
        format!("unknown activity `{}`", call.name.name),
    )
    .with_label("not an activity of this workspace");
    let Some(def) = find_activity(ctx, call, unknown, "= exec('program', ...)") else {
        return;
    };
    let problems = bind(&def.node.params, &call.args, call.span);
    report_binding(
        ctx,
        file,
        problems,
        None,
        "activity",
        &call.name.name,
        Some((def.file, def.node.name.span)),
    );
}

/// The activity a call names; when there is none, reports `unknown` with a did-you-mean, or
/// else how to define it (`rest` follows the name and parameters in the example).
pub fn find_activity<'w>(
    ctx: &mut Ctx<'w>,
    call: &Call,
    unknown: Diagnostic,
    rest: &str,
) -> Option<Def<'w, Activity>> {
    if let Some(def) = ctx.index.activity_by_name.get(call.name.name.as_str()) {
        return Some(*def);
    }
    let names: Vec<&str> = ctx.index.activity_names().collect();
    let help = Some(format!(
        "define it: `activity {}(...) {rest}`",
        call.name.name
    ));
    ctx.emit(with_suggestion(unknown, &call.name.name, names, help));
    None
}

fn activation(ctx: &mut Ctx, file: FileId, activate: &Activate) {
    const TARGETS: &[&str] = crate::vocabulary::ActivationTarget::WORDS;
    let target = activate.target.value.as_str();
    if !TARGETS.contains(&target) {
        let d = Diagnostic::error(
            Code::E0614,
            file,
            activate.target.span,
            format!("unknown `activate` target '{target}'"),
        )
        .with_label("not a target");
        ctx.emit(with_suggestion(
            d,
            target,
            TARGETS.iter().copied(),
            Some("`activate` takes 'file', 'webhook' or 'log'".into()),
        ));
        return;
    }
    let required = match target {
        "file" => Some("path"),
        "webhook" => Some("url"),
        _ => None,
    };
    if let Some(option) = required
        && !activate
            .options
            .iter()
            .any(|o| o.name.as_ref().is_some_and(|n| n.name == option))
    {
        ctx.emit(
            Diagnostic::error(
                Code::E0614,
                file,
                activate.target.span,
                format!("`activate('{target}')` needs `{option}:`"),
            )
            .with_label(format!("no `{option}`"))
            .with_help(format!("write `activate('{target}', {option}: '...')`")),
        );
    }
}

/// What is wrong with a list of arguments against a list of parameters.
pub struct Problem {
    pub code: Code,
    pub span: Span,
    pub message: String,
    pub help: Option<String>,
}

/// Binds arguments to parameters ([`crate::arguments::assign`]); reports every mismatch, and
/// each literal argument of the wrong type.
pub fn bind(params: &[Param], args: &[Arg], call_span: Span) -> Vec<Problem> {
    let assignment = assign_call(params, args);
    let mut problems: Vec<Problem> = assignment
        .problems
        .iter()
        .map(|problem| match problem {
            ArgProblem::PositionalAfterNamed { arg } => Problem {
                code: Code::E0606,
                span: args[*arg].span(),
                message: "positional argument after a named one".into(),
                help: Some("put positional arguments first, or name this one".into()),
            },
            ArgProblem::TooMany { arg } => Problem {
                code: Code::E0603,
                span: args[*arg].span(),
                message: format!(
                    "too many arguments: {} expected, {} given",
                    params.len(),
                    args.len()
                ),
                help: Some(format!("the parameters are ({})", signature(params))),
            },
            ArgProblem::Unknown { arg } => {
                let name = args[*arg].name.as_ref().map_or("", |n| n.name.as_str());
                let names = params.iter().map(|p| p.name.name.as_str());
                let help = crate::check::did_you_mean(name, names)
                    .or_else(|| Some(format!("the parameters are ({})", signature(params))));
                Problem {
                    code: Code::E0604,
                    span: args[*arg]
                        .name
                        .as_ref()
                        .map_or(args[*arg].span(), |n| n.span),
                    message: format!("unknown argument `{name}`"),
                    help,
                }
            }
            ArgProblem::Twice { arg, param } => Problem {
                code: Code::E0605,
                span: args[*arg].span(),
                message: format!("argument `{}` is given twice", params[*param].name.name),
                help: Some("give each parameter one value".into()),
            },
            ArgProblem::Missing { params: missing } => {
                let list = missing
                    .iter()
                    .map(|&m| format!("`{}`", params[m].name.name))
                    .collect::<Vec<_>>()
                    .join(", ");
                Problem {
                    code: Code::E0607,
                    span: call_span,
                    message: format!(
                        "missing argument{} {list}",
                        if missing.len() > 1 { "s" } else { "" }
                    ),
                    help: Some(format!("the parameters are ({})", signature(params))),
                }
            }
        })
        .collect();
    for (param, arg) in params.iter().zip(&assignment.args) {
        let Some(arg) = arg.map(|a| &args[a]) else {
            continue;
        };
        if let Some(found) = literal_mismatch(param.ty.value, &arg.value) {
            problems.push(Problem {
                code: Code::E0608,
                span: arg.value.span,
                message: format!(
                    "`{}` is {}, found {found}",
                    param.name.name,
                    article(param.ty.value)
                ),
                help: Some(example(param.ty.value)),
            });
        }
    }
    problems
}

/// Reports binding problems. `code` replaces their own codes (compensation uses E0403).
pub fn report_binding(
    ctx: &mut Ctx,
    file: FileId,
    problems: Vec<Problem>,
    code: Option<Code>,
    kind: &str,
    name: &str,
    definition: Option<(FileId, Span)>,
) {
    for p in problems {
        let mut d = Diagnostic::error(
            code.unwrap_or(p.code),
            file,
            p.span,
            format!("{} (calling {kind} `{name}`)", p.message),
        )
        .with_label("here");
        if let Some((def_file, span)) = definition {
            d = d.with_secondary(def_file, span, format!("{kind} `{name}` is defined here"));
        }
        if let Some(help) = p.help {
            d = d.with_help(help);
        }
        ctx.emit(d);
    }
}

fn signature(params: &[Param]) -> String {
    params
        .iter()
        .map(|p| {
            let default = if p.default.is_some() { " = ..." } else { "" };
            format!("{}: {}{default}", p.name.name, p.ty.value.name())
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn article(ty: Type) -> String {
    match ty {
        Type::Int => "an int".into(),
        other => format!("a {}", other.name()),
    }
}

fn example(ty: Type) -> String {
    match ty {
        Type::String => "write text in quotes: 'value'".into(),
        Type::Int => "write a whole number such as `42`".into(),
        Type::Float => "write a number such as `2.5`".into(),
        Type::Boolean => "write `true` or `false`".into(),
        Type::Duration => "write a duration such as `30s` or '1h 30m'".into(),
        Type::Date => "write a date as 'YYYY-MM-DD'".into(),
        Type::Timestamp => "write a timestamp as 'YYYY-MM-DD HH:MM:SS' or RFC 3339".into(),
    }
}

/// For a literal that cannot have the type, what it is; `None` when it fits or is not a literal.
pub fn literal_mismatch(ty: Type, value: &Expr) -> Option<String> {
    let found = values::describe(value);
    let fits = match (&value.kind, ty) {
        (ExprKind::Null, _) => true,
        (ExprKind::Int(_), Type::Int | Type::Float) => true,
        (ExprKind::Float(_), Type::Float) => true,
        (ExprKind::Bool(_), Type::Boolean) => true,
        (ExprKind::Duration { .. }, Type::Duration) => true,
        (ExprKind::Str(_), Type::String) => true,
        (ExprKind::Time { ty: Type::Date, .. }, Type::Date | Type::Timestamp) => true,
        (
            ExprKind::Time {
                ty: Type::Timestamp,
                ..
            },
            Type::Timestamp,
        ) => true,
        // Text for a duration, date or timestamp: readable in the forms the runtime accepts
        // for such a parameter (one rule, `value::stored`).
        (ExprKind::Str(s), Type::Duration | Type::Date | Type::Timestamp) => {
            let value = rusqlite::types::Value::Text(s.to_string());
            return crate::value::stored(value, ty.into())
                .err()
                .map(|_| match ty {
                    Type::Duration => format!("'{s}', which is not a duration"),
                    Type::Date => format!("'{s}', which is not a date (YYYY-MM-DD)"),
                    _ => format!("'{s}', which is not a timestamp"),
                });
        }
        (
            ExprKind::Int(_)
            | ExprKind::Float(_)
            | ExprKind::Bool(_)
            | ExprKind::Duration { .. }
            | ExprKind::Str(_)
            | ExprKind::Time { .. }
            | ExprKind::List(_),
            _,
        ) => false,
        // Names, columns, calls and operators are known only at run time.
        _ => true,
    };
    (!fits).then(|| found.to_string())
}

fn params(ctx: &mut Ctx, file: FileId, params: &[Param]) {
    let mut seen: BTreeMap<&str, Span> = BTreeMap::new();
    for p in params {
        if let Some(&first) = seen.get(p.name.name.as_str()) {
            ctx.emit(
                Diagnostic::error(
                    Code::E0613,
                    file,
                    p.name.span,
                    format!("parameter `{}` is declared twice", p.name.name),
                )
                .with_label("second declaration")
                .with_secondary(file, first, "first declared here")
                .with_help("rename or remove one of them"),
            );
        }
        seen.entry(&p.name.name).or_insert(p.name.span);
        if let Some(default) = &p.default
            && let Some(found) = literal_mismatch(p.ty.value, default)
        {
            ctx.emit(
                Diagnostic::error(
                    Code::E0609,
                    file,
                    default.span,
                    format!(
                        "default of `{}` is {found}, but the parameter is {}",
                        p.name.name,
                        article(p.ty.value)
                    ),
                )
                .with_label("wrong type")
                .with_secondary(file, p.ty.span, "declared type")
                .with_help(example(p.ty.value)),
            );
        }
        if matches!(p.name.name.as_str(), "run_time" | "run_date") {
            ctx.emit(
                Diagnostic::warning(
                    Code::W0602,
                    file,
                    p.name.span,
                    format!(
                        "parameter `{}` shadows the implicit value of the same name",
                        p.name.name
                    ),
                )
                .with_label("hides the run's own value")
                .with_help("the run binds `run_time` and `run_date` itself; rename the parameter"),
            );
        }
    }
}

/// `flow f if other.failed`: flows, with the states a flow run ends in, and no `not`.
fn flow_condition(ctx: &mut Ctx, file: FileId, flow: &Flow, condition: &Condition) {
    const FLOW_STATES: [&str; 3] = ["success", "failed", "done"];
    let mut stack = vec![condition];
    while let Some(c) = stack.pop() {
        match c {
            Condition::Not(_, span) => ctx.emit(
                Diagnostic::error(
                    Code::E0612,
                    file,
                    *span,
                    "a flow condition cannot use `not`",
                )
                .with_label("not allowed here")
                .with_help(
                    "name the states that should start the flow: `if a.failed or a.success`",
                ),
            ),
            Condition::And(a, b) | Condition::Or(a, b) => {
                stack.push(b);
                stack.push(a);
            }
            Condition::State { target, state } => {
                if target.name == flow.name.name {
                    ctx.emit(
                        Diagnostic::error(
                            Code::E0612,
                            file,
                            target.span,
                            format!("flow `{}` cannot start on its own state", flow.name.name),
                        )
                        .with_label("the flow itself")
                        .with_help("name another flow whose runs should start this one"),
                    );
                } else if ctx.index.flow(&target.name, None).is_none() {
                    undefined_flow(ctx, file, target, "if");
                }
                if !FLOW_STATES.contains(&state.name.as_str()) {
                    let d = Diagnostic::error(
                        Code::E0612,
                        file,
                        state.span,
                        format!("`{}` is not a state a flow run ends in", state.name),
                    )
                    .with_label("not a flow state");
                    ctx.emit(with_suggestion(
                        d,
                        &state.name,
                        FLOW_STATES,
                        Some("flow conditions use `success`, `failed` or `done`".into()),
                    ));
                }
            }
        }
    }
}

/// `depends on` must not loop: a -> b -> a would wait forever.
fn depends_on_cycles(ctx: &mut Ctx) {
    let flows = ctx.index.flows.clone();
    let edges = |f: &Flow| -> Vec<(String, Span)> {
        f.depends_on
            .iter()
            .map(|d| (d.name.to_string(), d.span))
            .collect()
    };
    report_flow_cycles(
        ctx,
        &flows,
        edges,
        "depends on the next flow here",
        |file, span, path| {
            Diagnostic::error(
                Code::E0602,
                file,
                span,
                format!("`depends on` cycle: {path}"),
            )
            .with_label("waits for itself through the cycle")
            .with_help("remove one of these dependencies: none of these flows could ever start")
        },
    );
}

/// Flow references of one kind in a flow's stages (fork branches included), with where each
/// is written: jumps (`-> F`) or child runs (`call F`).
fn flow_refs(f: &Flow, jumps: bool) -> Vec<(String, Span)> {
    let mut out = Vec::new();
    for m in &f.members {
        let Member::Stage(stage) = m else { continue };
        let mut stack = vec![stage];
        while let Some(s) = stack.pop() {
            match &s.body.source.kind {
                SourceKind::Jump(call) if jumps => {
                    out.push((call.name.name.to_string(), call.name.span))
                }
                SourceKind::CallFlow(call) if !jumps => {
                    out.push((call.name.name.to_string(), call.name.span))
                }
                _ => {}
            }
            for op in &s.body.ops {
                match &op.kind {
                    OpKind::Jump(call) if jumps => {
                        out.push((call.name.name.to_string(), call.name.span))
                    }
                    OpKind::CallFlow(call) | OpKind::EachCall(call) if !jumps => {
                        out.push((call.name.name.to_string(), call.name.span))
                    }
                    OpKind::Fork(children) => stack.extend(children.iter()),
                    _ => {}
                }
            }
        }
    }
    out
}

/// Jumps (`-> F`) that come back to where they started: each run starts the next for ever,
/// until the depth limit.
fn jump_loops(ctx: &mut Ctx) {
    let flows = ctx.index.flows.clone();
    report_flow_cycles(
        ctx,
        &flows,
        |f| flow_refs(f, true),
        "jumps on here",
        |file, span, path| {
            Diagnostic::warning(Code::W0601, file, span, format!("jumps loop: {path}"))
                .with_label("starts the loop again")
                .with_help("each run starts the next until the chain depth limit stops it; end the chain in one of the flows")
        },
    );
}

/// Child runs (`call F`) that come back to a flow already running: each run calls the next
/// and waits for it, until the depth limit fails the whole chain.
fn call_loops(ctx: &mut Ctx) {
    let flows = ctx.index.flows.clone();
    report_flow_cycles(
        ctx,
        &flows,
        |f| flow_refs(f, false),
        "calls on here",
        |file, span, path| {
            Diagnostic::warning(Code::W0604, file, span, format!("child runs call each other: {path}"))
                .with_label("calls the loop again")
                .with_help(format!("each run waits for a child run of the next flow; at the depth limit ({}) the innermost fails and every run of the chain with it; break the loop with a condition in its own flow or a jump", crate::policy::CHAIN_DEPTH))
        },
    );
}

/// Flows that start each other through `if` (`A if B.done`, `B if A.done`): once one runs,
/// the scheduler starts the other, and so on, for as long as it runs.
fn condition_loops(ctx: &mut Ctx) {
    let flows = ctx.index.flows.clone();
    let edges = |f: &Flow| -> Vec<(String, Span)> {
        f.condition
            .as_ref()
            .map(|c| {
                crate::check::graph::condition_atoms(c)
                    .into_iter()
                    .map(|(target, _)| (target.name.to_string(), target.span))
                    .collect()
            })
            .unwrap_or_default()
    };
    report_flow_cycles(
        ctx,
        &flows,
        edges,
        "starts after it here",
        |file, span, path| {
            Diagnostic::warning(Code::W0603, file, span, format!("flows start each other: {path}"))
            .with_label("starts the loop again")
            .with_help("the scheduler starts each flow when the other ends, for as long as it runs; break the loop in one of the conditions")
        },
    );
}

/// Finds cycles in a graph of flows (by name, every version together) and reports each once:
/// `report` makes the diagnostic at the first edge from the path `a -> b -> a`, and each
/// other edge gets a label "`flow` {edge_label}".
fn report_flow_cycles<'w>(
    ctx: &mut Ctx<'w>,
    flows: &[Def<'w, Flow>],
    edges: impl Fn(&Flow) -> Vec<(String, Span)>,
    edge_label: &str,
    report: impl Fn(FileId, Span, &str) -> Diagnostic,
) {
    let by_name: BTreeMap<&str, usize> = flows
        .iter()
        .enumerate()
        .rev()
        .map(|(i, d)| (d.node.name.name.as_str(), i))
        .collect();
    let adjacency: Vec<Vec<(usize, Span)>> = flows
        .iter()
        .map(|d| {
            edges(d.node)
                .into_iter()
                .filter_map(|(n, s)| by_name.get(n.as_str()).map(|&j| (j, s)))
                .collect()
        })
        .collect();
    for cycle in find_cycles(flows.len(), |i| adjacency[i].clone()) {
        let names: Vec<&str> = cycle
            .iter()
            .map(|&(f, _)| flows[f].node.name.name.as_str())
            .collect();
        let path = names
            .iter()
            .chain(std::iter::once(&names[0]))
            .copied()
            .collect::<Vec<_>>()
            .join(" -> ");
        let (head, span) = cycle[0];
        let mut d = report(flows[head].file, span, &path);
        for (&(f, span), name) in cycle.iter().zip(&names).skip(1) {
            d = d.with_secondary(flows[f].file, span, format!("`{name}` {edge_label}"));
        }
        ctx.emit(d);
    }
}
