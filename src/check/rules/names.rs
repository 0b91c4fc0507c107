//! E01: names and structure. Duplicates, references that must resolve, dependency cycles,
//! reachability, reads that may find no input, and route rules.

use crate::check::graph::{FlowGraph, failed_reads, find_cycles, read_names};
use crate::check::{Ctx, with_suggestion};
use crate::diagnostics::Code;
use crate::diagnostics::Diagnostic;
use crate::syntax::ast::{ExprKind, Flow, OpKind, Route, RouteCase, SourceKind};
use std::collections::{BTreeMap, HashMap};

pub fn check_workspace(ctx: &mut Ctx) {
    // Flows may repeat only with distinct versions.
    let mut seen: HashMap<(&str, Option<u32>), (crate::source::FileId, &Flow)> = HashMap::new();
    for def in ctx.index.flows.clone() {
        let flow = def.node;
        let key = (
            flow.name.name.as_str(),
            flow.version.as_ref().map(|v| v.value),
        );
        match seen.get(&key) {
            Some(&(first_file, first)) => {
                let version = key.1.map(|v| format!(" @version({v})")).unwrap_or_default();
                ctx.emit(
                    Diagnostic::error(
                        Code::E0102,
                        def.file,
                        flow.name.span,
                        format!("flow `{}`{version} is defined twice", flow.name.name),
                    )
                    .with_label("second definition")
                    .with_secondary(first_file, first.name.span, "first defined here")
                    .with_help("rename one of them, or give each a distinct `@version(n)`"),
                );
            }
            None => {
                seen.insert(key, (def.file, flow));
            }
        }
    }
    let mut first_pool = HashMap::new();
    for def in ctx.index.pools.clone() {
        let name = def.node.name.name.as_str();
        match first_pool.get(name) {
            Some(&(file, span)) => ctx.emit(
                Diagnostic::error(
                    Code::E0117,
                    def.file,
                    def.node.name.span,
                    format!("pool `{name}` is defined twice"),
                )
                .with_label("second definition")
                .with_secondary(file, span, "first defined here")
                .with_help("a pool is one resource of the machine: define it once, in one file of the workspace"),
            ),
            None => {
                first_pool.insert(name, (def.file, def.node.name.span));
            }
        }
    }
    let mut first_activity = HashMap::new();
    for def in ctx.index.activities.clone() {
        let name = def.node.name.name.as_str();
        match first_activity.get(name) {
            Some(&(file, span)) => ctx.emit(
                Diagnostic::error(
                    Code::E0103,
                    def.file,
                    def.node.name.span,
                    format!("activity `{name}` is defined twice"),
                )
                .with_label("second definition")
                .with_secondary(file, span, "first defined here")
                .with_help("activity names are unique in a workspace; rename one of them"),
            ),
            None => {
                first_activity.insert(name, (def.file, def.node.name.span));
            }
        }
    }
}

pub fn check_flow(ctx: &mut Ctx, graph: &FlowGraph) {
    let file = graph.file;
    if graph.stages.is_empty() {
        ctx.emit(
            Diagnostic::error(
                Code::E0106,
                file,
                graph.flow.name.span,
                format!("flow `{}` has no stages", graph.flow.name.name),
            )
            .with_label("nothing to run")
            .with_help("add a stage: `stage first = from some_table`"),
        );
        return;
    }
    duplicate_stages(ctx, graph);
    store_tables(ctx, graph);
    merge_inputs_resolve(ctx, graph);
    failed_items_resolve(ctx, graph);
    misspelled_tables(ctx, graph);
    cycles(ctx, graph);
    ends_and_jumps(ctx, graph);
    inputs_not_guaranteed(ctx, graph);
    routes(ctx, graph);
}

fn duplicate_stages(ctx: &mut Ctx, graph: &FlowGraph) {
    for (i, node) in graph.stages.iter().enumerate() {
        let first = graph.by_name[node.stage.name.name.as_str()];
        if first != i {
            let name = &node.stage.name;
            ctx.emit(
                Diagnostic::error(
                    Code::E0101,
                    graph.file,
                    name.span,
                    format!(
                        "stage `{}` is defined twice in flow `{}`",
                        name.name, graph.flow.name.name
                    ),
                )
                .with_label("second definition")
                .with_secondary(
                    graph.file,
                    graph.stages[first].stage.name.span,
                    "first defined here",
                )
                .with_help("stage names are unique in a flow, fork branches included; rename one"),
            );
        }
    }
}

/// Whether a table name belongs to the run store (`wvflow_runs`, ...) or to SQLite itself:
/// SQL names are not case-sensitive.
pub fn reserved_table(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    lower.starts_with("wvflow_") || lower.starts_with("sqlite_")
}

/// The run store's tables share the workspace database with `save to` tables, but a flow may
/// neither read nor write them: `save to wvflow_runs` would replace the run history.
fn store_tables(ctx: &mut Ctx, graph: &FlowGraph) {
    for node in &graph.stages {
        let mut named: Vec<(String, crate::syntax::Span, &str)> = read_names(node.stage)
            .into_iter()
            .filter(|(n, _)| graph.index_of(n).is_none())
            .map(|(n, span)| (n.to_string(), span, "read"))
            .collect();
        for op in &node.stage.body.ops {
            if let OpKind::SaveTo(parts) = &op.kind
                && let (Some(first), Some(last)) = (parts.first(), parts.last())
            {
                let name = parts
                    .iter()
                    .map(|p| p.name.as_str())
                    .collect::<Vec<_>>()
                    .join(".");
                named.push((name, first.span.join(last.span), "written"));
            }
        }
        for (name, span, how) in named {
            if reserved_table(&name) {
                ctx.emit(
                    Diagnostic::error(
                        Code::E0115,
                        graph.file,
                        span,
                        format!("`{name}` is a table of the run store; it cannot be {how} by a flow"),
                    )
                    .with_label("reserved name")
                    .with_help("tables whose names start with `wvflow_` or `sqlite_` belong to wvflow and SQLite; choose another name (runs are read with `wvflow runs`)"),
                );
            }
        }
    }
}

/// `failed(stage)` names a stage of the flow that fans out with `each`.
fn failed_items_resolve(ctx: &mut Ctx, graph: &FlowGraph) {
    for node in &graph.stages {
        for (name, span) in failed_reads(node.stage) {
            let Some(i) = graph.index_of(name) else {
                let d = Diagnostic::error(
                    Code::E0104,
                    graph.file,
                    span,
                    format!(
                        "`failed({name})` names no stage of flow `{}`",
                        graph.flow.name.name
                    ),
                )
                .with_label("no such stage");
                ctx.emit(with_suggestion(
                    d,
                    name,
                    graph.stage_names(),
                    Some("`failed(stage)` reads the failed items of a stage's `each`".into()),
                ));
                continue;
            };
            let target = graph.stages[i].stage;
            let fans: Vec<usize> = target
                .body
                .ops
                .iter()
                .enumerate()
                .filter(|(_, op)| matches!(op.kind, OpKind::Each(_) | OpKind::EachCall(_)))
                .map(|(at, _)| at)
                .collect();
            if fans.len() > 1 {
                ctx.emit(
                    Diagnostic::error(
                        Code::E0119,
                        graph.file,
                        span,
                        format!("stage `{name}` fans out twice: `failed({name})` could be the items of either"),
                    )
                    .with_label("which `each`?")
                    .with_secondary(graph.file, target.body.ops[fans[1]].span, "the second fan-out")
                    .with_help("give each fan-out a stage of its own, and read the failed items of the one you mean"),
                );
            }
            if let Some(&at) = fans.first() {
                let wv_file = ctx.workspace.sources.get(graph.file).path.clone();
                let mut shapes = crate::check::shapes::Shapes::new(graph, &wv_file);
                let input = shapes
                    .pipeline(i)
                    .before
                    .get(at)
                    .and_then(|r| r.shape.clone());
                let clash = input.iter().flat_map(|cs| cs.iter()).find(|c| {
                    crate::check::shapes::FAILED_COLUMNS
                        .iter()
                        .any(|(name, _)| *name == c.name.as_str())
                });
                if let Some(column) = clash {
                    ctx.emit(
                        Diagnostic::error(
                            Code::E0118,
                            graph.file,
                            span,
                            format!(
                                "the items of `{name}` have a column `{}`, as `failed({name})` has",
                                column.name
                            ),
                        )
                        .with_label("two columns of one name")
                        .with_secondary(graph.file, target.body.ops[at].span, "the items")
                        .with_help(format!(
                            "rename it before the fan-out: `select ..., {} as item_{}`",
                            column.name, column.name
                        )),
                    );
                }
            }
            if fans.is_empty() {
                ctx.emit(
                    Diagnostic::error(
                        Code::E0116,
                        graph.file,
                        span,
                        format!("stage `{name}` has no `each`, so it has no failed items"),
                    )
                    .with_label("not a fan-out")
                    .with_secondary(graph.file, target.name.span, "defined here")
                    .with_help(format!(
                        "read the stage itself (`from {name}`), or fan out in it with `| each activity(_.col)`"
                    )),
                );
            }
        }
    }
}

/// `merge` takes stages only; a route target, `on_failure` stage and fork child must exist.
fn merge_inputs_resolve(ctx: &mut Ctx, graph: &FlowGraph) {
    for node in &graph.stages {
        if let SourceKind::Merge(inputs) = &node.stage.body.source.kind {
            for input in inputs {
                if graph.index_of(&input.name).is_none() {
                    let d = Diagnostic::error(
                        Code::E0104,
                        graph.file,
                        input.span,
                        format!(
                            "`merge` input `{}` is not a stage of flow `{}`",
                            input.name, graph.flow.name.name
                        ),
                    )
                    .with_label("no such stage");
                    ctx.emit(with_suggestion(d, &input.name, graph.stage_names(), Some("`merge` combines stages of this flow; read tables and files with `from`".into())));
                }
            }
        }
        for op in &node.stage.body.ops {
            if let OpKind::Route(route) = &op.kind {
                for target in route
                    .cases
                    .iter()
                    .map(|c| &c.target)
                    .chain(&route.otherwise)
                {
                    if graph.index_of(&target.name).is_none() {
                        let d = Diagnostic::error(
                            Code::E0104,
                            graph.file,
                            target.span,
                            format!(
                                "route target `{}` is not a stage of flow `{}`",
                                target.name, graph.flow.name.name
                            ),
                        )
                        .with_label("no such stage");
                        ctx.emit(with_suggestion(
                            d,
                            &target.name,
                            graph.stage_names(),
                            Some(format!(
                                "define it: `stage {} = from {}`",
                                target.name, node.stage.name.name
                            )),
                        ));
                    }
                }
            }
        }
    }
}

/// `from ordrs` when `orders` is a stage: a table of that name may exist, so only a warning,
/// and only for names one or two edits away.
fn misspelled_tables(ctx: &mut Ctx, graph: &FlowGraph) {
    for node in &graph.stages {
        for (name, span) in read_names(node.stage) {
            // Short names are too close to each other to suggest anything.
            let length = name.chars().count();
            let limit = if length < 6 { 1 } else { 2 };
            if length >= 4
                && graph.index_of(name).is_none()
                && let Some(stage) =
                    crate::diagnostics::suggest::closest_within(name, graph.stage_names(), limit)
            {
                let help = format!("did you mean `{stage}`?");
                ctx.emit(
                    Diagnostic::warning(Code::W0103, graph.file, span, format!("`{name}` is not a stage of this flow; it will be read as a table or file"))
                        .with_label("not a stage")
                        .with_help(help),
                );
            }
        }
    }
}

/// Dependency cycles, each reported once with its whole path.
fn cycles(ctx: &mut Ctx, graph: &FlowGraph) {
    let found = find_cycles(graph.stages.len(), |i| {
        graph.upstream(i).map(|e| (e.to, ())).collect()
    });
    let mut in_cycle = vec![false; graph.stages.len()];
    for cycle in &found {
        let stages: Vec<usize> = cycle.iter().map(|&(s, _)| s).collect();
        stages.iter().for_each(|&s| in_cycle[s] = true);
        report_cycle(ctx, graph, &stages);
    }
    if in_cycle.iter().all(|&c| c) {
        ctx.emit(
            Diagnostic::error(
                Code::E0109,
                graph.file,
                graph.flow.name.span,
                format!("flow `{}` has no terminal stage", graph.flow.name.name),
            )
            .with_label("every stage feeds another")
            .with_help("break the cycle so that some stage is read by no other"),
        );
    }
}

/// `cycle` lists stages each of which depends on the next (and the last on the first).
fn report_cycle(ctx: &mut Ctx, graph: &FlowGraph, cycle: &[usize]) {
    // Print in execution order (a -> b: b reads a), from the stage defined first.
    let mut order: Vec<usize> = cycle.iter().rev().copied().collect();
    let earliest = order
        .iter()
        .enumerate()
        .min_by_key(|&(_, &s)| s)
        .map_or(0, |(i, _)| i);
    order.rotate_left(earliest);
    let first = order[0];
    order.push(first);
    let path = order
        .iter()
        .map(|&s| graph.name(s))
        .collect::<Vec<_>>()
        .join(" -> ");
    let head = graph.stages[first].stage;
    let mut d = Diagnostic::error(
        Code::E0105,
        graph.file,
        head.name.span,
        format!("dependency cycle: {path}"),
    )
    .with_label("this stage waits for itself through the cycle");
    for pair in cycle.windows(2).chain(std::iter::once(
        [cycle[cycle.len() - 1], cycle[0]].as_slice(),
    )) {
        let (from, to) = (pair[0], pair[1]);
        if let Some(edge) = graph.upstream(from).find(|e| e.to == to) {
            d = d.with_secondary(
                graph.file,
                edge.span,
                format!(
                    "`{}` depends on `{}` here",
                    graph.name(from),
                    graph.name(to)
                ),
            );
        }
    }
    ctx.emit(d.with_help("a flow is a DAG: remove one of these dependencies"));
}

/// `end()` and `->` end a pipeline: nothing may follow them, and no stage may read their stage.
fn ends_and_jumps(ctx: &mut Ctx, graph: &FlowGraph) {
    let mut ending: BTreeMap<usize, &'static str> = BTreeMap::new();
    for (i, node) in graph.stages.iter().enumerate() {
        let ops = &node.stage.body.ops;
        for (at, op) in ops.iter().enumerate() {
            let what = match op.kind {
                OpKind::End => "end()",
                OpKind::Jump(_) => "->",
                _ => continue,
            };
            ending.insert(i, what);
            if at + 1 < ops.len() {
                ctx.emit(
                    Diagnostic::error(
                        Code::E0108,
                        graph.file,
                        ops[at + 1].span,
                        format!("nothing may follow `{what}` in a pipeline"),
                    )
                    .with_label("never reached")
                    .with_secondary(graph.file, op.span, "the pipeline ends here")
                    .with_help(format!(
                        "move `{what}` to the end, or this operator into its own stage"
                    )),
                );
            }
        }
    }
    for (i, _) in graph.stages.iter().enumerate() {
        for edge in &graph.reads[i] {
            if let Some(what) = ending.get(&edge.to) {
                ctx.emit(
                    Diagnostic::error(
                        Code::E0107,
                        graph.file,
                        edge.span,
                        format!(
                            "stage `{}` can never run: `{}` ends with `{what}`",
                            graph.name(i),
                            graph.name(edge.to)
                        ),
                    )
                    .with_label("reads a stage that ends the flow")
                    .with_help(format!(
                        "read the stage before `{}`, or drop `{what}`",
                        graph.name(edge.to)
                    )),
                );
            }
        }
    }
}

/// `stage x if p.done = from p`: the trigger lets x run when p failed, but then p has no rows.
fn inputs_not_guaranteed(ctx: &mut Ctx, graph: &FlowGraph) {
    for (i, node) in graph.stages.iter().enumerate() {
        let Some(trigger) = &node.stage.trigger else {
            continue;
        };
        // A trigger with an unknown operand is reported by itself.
        if crate::check::graph::condition_atoms(trigger)
            .iter()
            .any(|(t, _)| graph.index_of(&t.name).is_none())
        {
            continue;
        }
        for edge in &graph.reads[i] {
            let upstream = graph.name(edge.to);
            if !crate::check::triggers::requires_success(trigger, upstream) {
                ctx.emit(
                    Diagnostic::warning(Code::W0101, graph.file, edge.span, format!("stage `{}` reads `{upstream}`, but its trigger lets it run when `{upstream}` did not succeed", graph.name(i)))
                        .with_label("this input may not exist")
                        .with_secondary(graph.file, trigger.span(), "the trigger")
                        .with_help(format!("require `{upstream}.success` in the trigger, or read another stage")),
                );
            }
        }
    }
}

fn routes(ctx: &mut Ctx, graph: &FlowGraph) {
    // A target named by two cases or two routes.
    let mut named: HashMap<&str, crate::syntax::Span> = HashMap::new();
    for (i, node) in graph.stages.iter().enumerate() {
        for op in &node.stage.body.ops {
            let OpKind::Route(route) = &op.kind else {
                continue;
            };
            for target in route
                .cases
                .iter()
                .map(|c| &c.target)
                .chain(&route.otherwise)
            {
                if let Some(&first) = named.get(target.name.as_str()) {
                    ctx.emit(
                        Diagnostic::error(Code::E0111, graph.file, target.span, format!("stage `{}` is already a route target", target.name))
                            .with_label("named again")
                            .with_secondary(graph.file, first, "first named here")
                            .with_help("each route target receives one share of the rows; give each case its own stage and `merge` them if needed"),
                    );
                } else {
                    named.insert(&target.name, target.span);
                }
                // The target must read from the route stage.
                if let Some(t) = graph.index_of(&target.name)
                    && !graph.reads[t].iter().any(|e| e.to == i)
                {
                    ctx.emit(
                        Diagnostic::error(
                            Code::E0110,
                            graph.file,
                            target.span,
                            format!(
                                "route target `{}` does not read from `{}`",
                                target.name,
                                graph.name(i)
                            ),
                        )
                        .with_label("receives no routed rows")
                        .with_secondary(graph.file, graph.stages[t].stage.name.span, "defined here")
                        .with_help(format!(
                            "define it as `stage {} = from {} | ...`",
                            target.name,
                            graph.name(i)
                        )),
                    );
                }
            }
            route_cases(ctx, graph, route, op.span);
        }
    }
}

fn route_cases(ctx: &mut Ctx, graph: &FlowGraph, route: &Route, span: crate::syntax::Span) {
    if route.by.is_some() {
        percentage_cases(ctx, graph, route, span);
    } else {
        condition_cases(ctx, graph, route, span);
    }
}

fn is_percentage(case: &RouteCase) -> bool {
    matches!(case.when.kind, ExprKind::Int(_))
}

/// `route by`: every case a positive percentage, adding up to 100, and no `else`.
fn percentage_cases(ctx: &mut Ctx, graph: &FlowGraph, route: &Route, span: crate::syntax::Span) {
    let mut conditions = route.cases.iter().filter(|c| !is_percentage(c)).peekable();
    if conditions.peek().is_some() {
        for case in conditions {
            ctx.emit(
                Diagnostic::error(Code::E0113, graph.file, case.when.span, "`route by` cases are percentages, not conditions")
                    .with_label("a condition")
                    .with_help("write `case 50 -> a` under `route by hash(...)`, or drop `by` to route by conditions"),
            );
        }
        return;
    }
    let mut total: i64 = 0;
    for case in &route.cases {
        let ExprKind::Int(p) = case.when.kind else {
            continue;
        };
        if p <= 0 {
            ctx.emit(
                Diagnostic::error(
                    Code::E0112,
                    graph.file,
                    case.when.span,
                    format!("route percentage {p} is not positive"),
                )
                .with_label("must be 1 to 100")
                .with_help("drop the case, or give it a share of at least 1"),
            );
        }
        total = total.saturating_add(p);
    }
    if total != 100 {
        ctx.emit(
            Diagnostic::error(
                Code::E0112,
                graph.file,
                span,
                format!("route percentages sum to {total}, not 100"),
            )
            .with_label("shares of the rows")
            .with_help("adjust the cases so that they add up to 100"),
        );
    }
    if let Some(otherwise) = &route.otherwise {
        ctx.emit(
            Diagnostic::error(
                Code::E0113,
                graph.file,
                otherwise.span,
                "`else` has no meaning in `route by`: the percentages cover every row",
            )
            .with_label("never taken")
            .with_help("remove the `else` case"),
        );
    }
}

/// `route` without `by`: conditions, not percentages; without `else` (or a case that is
/// always true), some rows may go nowhere.
fn condition_cases(ctx: &mut Ctx, graph: &FlowGraph, route: &Route, span: crate::syntax::Span) {
    let mut percentages = route.cases.iter().filter(|c| is_percentage(c)).peekable();
    if percentages.peek().is_some() {
        for case in percentages {
            ctx.emit(
                Diagnostic::error(
                    Code::E0113,
                    graph.file,
                    case.when.span,
                    "a percentage case needs `route by hash(...)`",
                )
                .with_label("a number, not a condition")
                .with_help("write `route by hash(_.key) { case 50 -> a case 50 -> b }`"),
            );
        }
        return;
    }
    let total = route
        .cases
        .iter()
        .any(|c| matches!(c.when.kind, ExprKind::Bool(true)));
    if route.otherwise.is_none() && !total {
        ctx.emit(
            Diagnostic::warning(
                Code::W0102,
                graph.file,
                span,
                "route has no `else`: rows that match no case are dropped",
            )
            .with_label("cases may not cover every row")
            .with_help("add `else -> some_stage` to keep the other rows"),
        );
    }
}
