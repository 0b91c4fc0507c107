//! E03: triggers. `if` conditions over stage states and `trigger:` rules: operands, states,
//! rule names, contradictions, rules that need an upstream, and joins after a route.

use crate::check::graph::{FlowGraph, condition_atoms};
use crate::check::keys::TRIGGER_RULES;
use crate::check::{Ctx, values, with_suggestion};
use crate::diagnostics::Code;
use crate::diagnostics::Diagnostic;
use crate::vocabulary::TriggerRule;
use crate::syntax::ast::{Condition, ConfigEntry, OpKind, Stage};

/// The states a stage can end in; `done` is true of all of them.
pub const OUTCOMES: [&str; 4] = ["success", "failed", "skipped", "cancelled"];
pub const STATES: &[&str] = crate::vocabulary::StateWord::WORDS;

pub fn check_flow(ctx: &mut Ctx, graph: &FlowGraph) {
    let routes = route_targets(graph);
    for (i, node) in graph.stages.iter().enumerate() {
        let stage = node.stage;
        let rule = rule_entry(stage);
        if let Some(trigger) = &stage.trigger {
            if let Some(entry) = rule {
                ctx.emit(
                    Diagnostic::error(Code::E0307, graph.file, entry.key.span, format!("stage `{}` has both an `if` trigger and a `trigger:` rule", stage.name.name))
                        .with_label("second trigger")
                        .with_secondary(graph.file, trigger.span(), "the `if` trigger")
                        .with_help("keep one: an `if` condition names states, a rule such as `one_failed` applies to every upstream"),
                );
            }
            operands(ctx, graph, stage, trigger);
        }
        if let Some(entry) = rule {
            rule_value(ctx, graph, i, entry);
        }
        join_after_route(ctx, graph, &routes, i);
    }
}

/// Each stage with a `route`, and the stages its cases send rows to: found once per flow, so
/// the join rule is linear in the stages.
fn route_targets(graph: &FlowGraph) -> Vec<(usize, Vec<usize>)> {
    graph
        .stages
        .iter()
        .enumerate()
        .filter_map(|(r, node)| {
            let targets: Vec<usize> = node
                .stage
                .body
                .ops
                .iter()
                .filter_map(|op| match &op.kind {
                    OpKind::Route(route) => Some(route),
                    _ => None,
                })
                .flat_map(|route| {
                    route
                        .cases
                        .iter()
                        .map(|c| &c.target)
                        .chain(route.otherwise.iter())
                })
                .filter_map(|t| graph.index_of(&t.name))
                .collect();
            (!targets.is_empty()).then_some((r, targets))
        })
        .collect()
}

pub fn rule_entry(stage: &Stage) -> Option<&ConfigEntry> {
    stage.config.as_ref()?.get("trigger")
}

fn operands(ctx: &mut Ctx, graph: &FlowGraph, stage: &Stage, trigger: &Condition) {
    let mut all_known = true;
    for (target, state) in condition_atoms(trigger) {
        if target.name == stage.name.name {
            all_known = false;
            ctx.emit(
                Diagnostic::error(
                    Code::E0302,
                    graph.file,
                    target.span,
                    format!("stage `{}` cannot trigger on itself", stage.name.name),
                )
                .with_label("the stage's own state")
                .with_help("a trigger names upstream stages, which end before this one starts"),
            );
        } else if graph.index_of(&target.name).is_none() {
            all_known = false;
            let d = Diagnostic::error(
                Code::E0301,
                graph.file,
                target.span,
                format!(
                    "trigger names `{}`, which is not a stage of flow `{}`",
                    target.name, graph.flow.name.name
                ),
            )
            .with_label("no such stage");
            ctx.emit(with_suggestion(d, &target.name, graph.stage_names(), None));
        }
        if !STATES.contains(&state.name.as_str()) {
            all_known = false;
            let d = Diagnostic::error(
                Code::E0303,
                graph.file,
                state.span,
                format!("unknown stage state `{}`", state.name),
            )
            .with_label("not a state");
            let known = Some(format!("the states are {}", STATES.join(", ")));
            ctx.emit(with_suggestion(d, &state.name, STATES.iter().copied(), known));
        }
    }
    if all_known && !satisfiable(trigger) {
        ctx.emit(
            Diagnostic::error(Code::E0305, graph.file, trigger.span(), format!("the trigger of stage `{}` can never be true", stage.name.name))
                .with_label("contradiction")
                .with_help("a stage ends in exactly one state: `a.failed and a.success` never holds; did you mean `or`?"),
        );
    }
}

fn rule_value(ctx: &mut Ctx, graph: &FlowGraph, i: usize, entry: &ConfigEntry) {
    let Some(rule) = values::word(&entry.value) else {
        ctx.emit(
            Diagnostic::error(
                Code::E0304,
                graph.file,
                entry.value.span,
                format!(
                    "`trigger` takes a rule name, found {}",
                    values::describe(&entry.value)
                ),
            )
            .with_label("not a rule")
            .with_help(format!("the rules are {}", TRIGGER_RULES.join(", "))),
        );
        return;
    };
    let Some(parsed) = TriggerRule::parse(rule) else {
        let d = Diagnostic::error(
            Code::E0304,
            graph.file,
            entry.value.span,
            format!("unknown trigger rule `{rule}`"),
        )
        .with_label("not a rule");
        ctx.emit(with_suggestion(
            d,
            rule,
            TRIGGER_RULES.iter().copied(),
            Some(format!("the rules are {}", TRIGGER_RULES.join(", "))),
        ));
        return;
    };
    if parsed == TriggerRule::FirstSuccess
        && let Some(join) = graph.stages[i]
            .stage
            .body
            .ops
            .iter()
            .find(|op| matches!(op.kind, OpKind::Join(_)))
    {
        ctx.emit(
            Diagnostic::error(
                Code::E0308,
                graph.file,
                entry.value.span,
                format!(
                    "`first_success` reads one upstream's rows, but `{}` joins",
                    graph.name(i)
                ),
            )
            .with_label("reads the first to succeed only")
            .with_secondary(graph.file, join.span, "needs the rows of both sides")
            .with_help(
                "race with `merge a, b` in a stage of its own, and join its rows in the next stage",
            ),
        );
    }
    if parsed.needs_upstream() && graph.upstream(i).next().is_none() {
        ctx.emit(
            Diagnostic::error(
                Code::E0306,
                graph.file,
                entry.value.span,
                format!(
                    "rule `{rule}` looks at upstream stages, but `{}` has none",
                    graph.name(i)
                ),
            )
            .with_label("no upstream to evaluate")
            .with_help("read the stages to watch (`merge a, b`), or drop the rule"),
        );
    }
}

/// A stage that reads several targets of one route keeps `all_success`: whenever a branch is
/// not taken, it is skipped too.
fn join_after_route(ctx: &mut Ctx, graph: &FlowGraph, routes: &[(usize, Vec<usize>)], i: usize) {
    let stage = graph.stages[i].stage;
    if stage.trigger.is_some()
        || rule_entry(stage).is_some_and(|e| values::word(&e.value) != Some("all_success"))
        || graph.reads[i].len() < 2
    {
        return;
    }
    for (r, targets) in routes {
        let joined: Vec<_> = graph.reads[i]
            .iter()
            .filter(|e| targets.contains(&e.to))
            .collect();
        if joined.len() >= 2 {
            ctx.emit(
                Diagnostic::warning(Code::W0301, graph.file, stage.name.span, format!("stage `{}` joins branches of the route in `{}` but waits for all of them to succeed", graph.name(i), graph.name(*r)))
                    .with_label("skipped whenever a branch is not taken")
                    .with_secondary(graph.file, joined[0].span, "a route branch")
                    .with_secondary(graph.file, joined[1].span, "another route branch")
                    .with_help("add `trigger: none_failed_min_one_success` so it runs after whichever branches ran"),
            );
        }
    }
}

/// Whether some assignment of outcomes to the named stages makes the condition true.
pub fn satisfiable(condition: &Condition) -> bool {
    any_assignment(condition, |_| true)
}

/// Whether the condition holds only when `stage` succeeded.
pub fn requires_success(condition: &Condition, stage: &str) -> bool {
    !any_assignment_with(condition, stage, |outcome_of| {
        outcome_of(stage) != "success"
    })
}

fn any_assignment(
    condition: &Condition,
    accept: impl Fn(&dyn Fn(&str) -> &'static str) -> bool,
) -> bool {
    any_assignment_with(condition, "", accept)
}

/// Enumerates outcomes of the stages in `condition` (and `extra`), looking for one where the
/// condition holds and `accept` agrees. Conditions over more than 7 stages are assumed fine.
fn any_assignment_with(
    condition: &Condition,
    extra: &str,
    accept: impl Fn(&dyn Fn(&str) -> &'static str) -> bool,
) -> bool {
    let mut names: Vec<&str> = condition_atoms(condition)
        .into_iter()
        .map(|(t, _)| t.name.as_str())
        .collect();
    if !extra.is_empty() {
        names.push(extra);
    }
    names.sort_unstable();
    names.dedup();
    if names.len() > 7 {
        return true;
    }
    let combinations = 4usize.pow(names.len() as u32);
    (0..combinations).any(|mut code| {
        let outcomes: Vec<&'static str> = names
            .iter()
            .map(|_| {
                let o = OUTCOMES[code % 4];
                code /= 4;
                o
            })
            .collect();
        let outcome_of = |name: &str| {
            names
                .iter()
                .position(|n| *n == name)
                .map_or("success", |i| outcomes[i])
        };
        eval(condition, &outcome_of) && accept(&outcome_of)
    })
}

fn eval(condition: &Condition, outcome_of: &dyn Fn(&str) -> &'static str) -> bool {
    match condition {
        Condition::State { target, state } => {
            state.name == "done" || outcome_of(&target.name) == state.name
        }
        Condition::Not(inner, _) => !eval(inner, outcome_of),
        Condition::And(a, b) => eval(a, outcome_of) && eval(b, outcome_of),
        Condition::Or(a, b) => eval(a, outcome_of) || eval(b, outcome_of),
    }
}
