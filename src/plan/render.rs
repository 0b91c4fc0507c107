//! Plans for people and tools: a text listing, Graphviz DOT and Mermaid flowcharts.

use super::ir::*;
use std::fmt::Write;

pub fn json(plan: &Plan) -> String {
    // Plain data: serialization cannot fail.
    serde_json::to_string_pretty(plan).unwrap_or_default() + "\n"
}

/// A readable listing in topological order.
pub fn text(plan: &Plan) -> String {
    let f = &plan.flow;
    let mut out = String::new();
    flow_text(&mut out, f);
    for s in &f.stages {
        stage_text(&mut out, s);
    }
    out
}

/// The flow's header: where it is written, its parameters, schedule, limits, dependencies,
/// hooks, signals and queries.
fn flow_text(out: &mut String, f: &FlowPlan) {
    let version = f
        .version
        .map(|v| format!(" @version({v})"))
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "flow {}{version}  ({}:{})",
        f.name, f.origin.file, f.origin.line
    );
    if !f.params.is_empty() {
        let params: Vec<String> = f
            .params
            .iter()
            .map(|p| match &p.default {
                Some(d) => format!("{}: {} = {d}", p.name, p.ty.name()),
                None => format!("{}: {}", p.name, p.ty.name()),
            })
            .collect();
        let _ = writeln!(out, "  params: {}", params.join(", "));
    }
    if let Some(s) = &f.schedule {
        let when = match (&s.cron, s.interval_ms) {
            (Some(c), _) => format!("cron('{c}') in {}", s.timezone),
            (None, Some(ms)) => format!("every {}", duration(ms)),
            _ => String::new(),
        };
        let _ = writeln!(
            out,
            "  schedule: {when}{}",
            if s.catchup { ", catch up" } else { "" }
        );
    }
    let limits: Vec<String> = [
        f.concurrency.map(|n| format!("concurrency {n}")),
        f.max_parallel.map(|n| format!("max_parallel {n}")),
        f.timeout_ms.map(|ms| format!("timeout {}", duration(ms))),
        f.keep_runs.map(|n| format!("keep_runs {n}")),
    ]
    .into_iter()
    .flatten()
    .collect();
    if !limits.is_empty() {
        let _ = writeln!(out, "  limits: {}", limits.join(", "));
    }
    if !f.depends_on.is_empty() {
        let _ = writeln!(out, "  depends on: {}", f.depends_on.join(", "));
    }
    if let Some(c) = &f.start_condition {
        let _ = writeln!(out, "  starts if: {}", cond(c));
    }
    for h in &f.hooks {
        let _ = writeln!(out, "  {}: {}", h.event, action(&h.action));
    }
    for (kind, named) in [("signal", &f.signals), ("query", &f.queries)] {
        for n in named {
            let _ = writeln!(
                out,
                "  {kind} {}: {} = {}",
                n.name,
                n.ty.name(),
                sql(&n.sql)
            );
        }
    }
}

/// One stage: what it waits for, its trigger, retry, limits, compensation and steps.
fn stage_text(out: &mut String, s: &StagePlan) {
    let _ = writeln!(
        out,
        "\nstage {}  [{}]  ({}:{})",
        s.id,
        s.kind.name(),
        s.origin.file,
        s.origin.line
    );
    if let Some(parent) = &s.fork_parent {
        let _ = writeln!(out, "  branch of: {parent}");
    }
    if !s.upstream.is_empty() {
        let waits: Vec<String> = s
            .upstream
            .iter()
            .map(|e| format!("{} ({})", e.stage, e.requires))
            .collect();
        let _ = writeln!(out, "  waits for: {}", waits.join(", "));
    }
    let _ = writeln!(out, "  trigger: {}", cond(&s.trigger));
    let _ = writeln!(out, "  retry: {}", retry(&s.retry));
    let limits = stage_limits(s);
    if !limits.is_empty() {
        let _ = writeln!(out, "  limits: {}", limits.join(", "));
    }
    if let Some(c) = &s.compensation {
        let _ = writeln!(out, "  compensate: {}", invocation(c));
    }
    if let Some(k) = &s.idempotency_key {
        let _ = writeln!(out, "  idempotency key: {}", sql(k));
    }
    // What a stage on a server is sent first, in the run database's SQL; its own steps are
    // in the server's dialect.
    for ship in &s.ship_in {
        let _ = writeln!(out, "  ship in: {} <- {}", ship.table, sql(&ship.sql));
    }
    for step in &s.steps {
        let _ = writeln!(out, "  {}", self::step(step));
    }
}

/// A stage's settings that differ from the defaults, each as `key value`.
fn stage_limits(s: &StagePlan) -> Vec<String> {
    [
        s.timeout_ms.map(|ms| format!("timeout {}", duration(ms))),
        s.schedule_timeout_ms
            .map(|ms| format!("schedule_timeout {}", duration(ms))),
        s.heartbeat_ms
            .map(|ms| format!("heartbeat {}", duration(ms))),
        (s.priority != crate::check::settings::DEFAULT_PRIORITY).then(|| format!("priority {}", s.priority)),
        (s.on_failure != OnFailure::Fail).then(|| format!("on_failure {}", s.on_failure)),
        s.connector.as_ref().map(|c| format!("on {c}")),
        s.pool
            .as_ref()
            .map(|p| format!("pool {} ({} slots)", p.name, p.slots)),
    ]
    .into_iter()
    .flatten()
    .collect()
}

fn duration(ms: u64) -> String {
    crate::human::duration(std::time::Duration::from_millis(ms))
}

fn sql(s: &Sql) -> String {
    if s.params.is_empty() {
        s.text.clone()
    } else {
        format!("{}  -- params: {}", s.text, s.params.join(", "))
    }
}

pub fn cond(c: &Cond) -> String {
    match c {
        Cond::True => "true".into(),
        Cond::State { stage, state } => format!("{stage}.{}", state.as_str()),
        Cond::Not { arg } => format!("not {}", cond(arg)),
        Cond::And { args } => format!(
            "({})",
            args.iter().map(cond).collect::<Vec<_>>().join(" and ")
        ),
        Cond::Or { args } => format!(
            "({})",
            args.iter().map(cond).collect::<Vec<_>>().join(" or ")
        ),
    }
}

fn retry(r: &RetryPolicy) -> String {
    if r.attempts <= 1 {
        return "1 attempt".into();
    }
    // The first delays, then the last: a billion retries print like a few.
    const SHOWN: u32 = 8;
    let retries = r.attempts - 1;
    let delays = r.delays();
    let delay = |n| crate::human::duration(delays.before_retry(n));
    let mut shown: Vec<String> = (1..=retries.min(SHOWN)).map(delay).collect();
    if retries > SHOWN {
        shown.push(format!("... ({retries} in all) {}", delay(retries)));
    }
    let mut text = format!(
        "{} attempts, {} backoff, delays {}",
        r.attempts,
        r.backoff,
        shown.join(", ")
    );
    if r.jitter {
        text.push_str(", full jitter");
    }
    if !r.non_retryable.is_empty() {
        text.push_str(&format!(", non-retryable {:?}", r.non_retryable));
    }
    text
}

fn invocation(i: &Invocation) -> String {
    let args: Vec<String> = i
        .bindings
        .iter()
        .map(|b| format!("{} = {}", b.param, b.sql))
        .collect();
    format!("{}({})", i.activity, args.join(", "))
}

fn action(a: &Action) -> String {
    match a {
        Action::Invoke(i) => invocation(i),
        Action::Activate(a) => activation(a),
    }
}

fn activation(a: &Activation) -> String {
    let options: Vec<String> = a.options.iter().map(|(k, v)| format!("{k}: {v}")).collect();
    if options.is_empty() {
        format!("activate('{}')", a.target)
    } else {
        format!("activate('{}', {})", a.target, options.join(", "))
    }
}

fn flow_ref(f: &FlowRef) -> String {
    let version = f
        .version
        .map(|v| format!("@version({v})"))
        .unwrap_or_default();
    let args: Vec<String> = f
        .args
        .iter()
        .map(|b| format!("{} = {}", b.param, b.sql))
        .collect();
    format!("{}{version}({})", f.flow, args.join(", "))
}

fn fan_out(fan: &FanOut) -> String {
    let tolerated = match fan.tolerated_failures {
        Tolerance::Count(n) => n.to_string(),
        Tolerance::Percent(p) => format!("{p}%"),
    };
    let kept = if fan.keep_failed {
        ", failed items kept"
    } else {
        ""
    };
    format!(
        "concurrency {}, tolerated failures {tolerated}{kept}",
        fan.concurrency
    )
}

fn step(s: &Step) -> String {
    match s {
        Step::Query { sql: q, .. } => format!("query: {}", sql(q)),
        Step::Union { inputs } => {
            let inputs: Vec<String> = inputs.iter().map(sql).collect();
            format!("union by column name: {}", inputs.join("; "))
        }
        Step::Invoke { invocation: i } => format!("invoke: {}", invocation(i)),
        Step::Each { invocation: i, fan } => format!("each: {} ({})", invocation(i), fan_out(fan)),
        Step::EachCall {
            target,
            parent_close,
            fan,
        } => format!(
            "each call: {} (parent_close {parent_close}, {})",
            flow_ref(target),
            fan_out(fan)
        ),
        Step::Route { targets } => {
            let targets: Vec<String> = targets
                .iter()
                .map(|t| format!("{} where {}", t.stage, t.filter))
                .collect();
            format!("route: {}", targets.join("; "))
        }
        Step::Fork { branches } => format!("fork: {}", branches.join(", ")),
        Step::Wait {
            duration: Some(sql),
            ..
        } => format!("wait: {}", sql.text),
        Step::Wait { ms, .. } => format!("wait: {}", duration(*ms)),
        Step::WaitUntil {
            condition,
            poll_interval_ms,
            watched,
        } => {
            let files: Vec<&str> = watched.iter().map(|f| f.path.as_str()).collect();
            format!(
                "wait until: {} (every {}{})",
                sql(condition),
                duration(*poll_interval_ms),
                if files.is_empty() {
                    String::new()
                } else {
                    format!(", re-reading {}", files.join(", "))
                }
            )
        }
        Step::Activate { activation: a } => activation(a),
        Step::SaveTo { table } => format!("save to: {table}"),
        Step::Jump { target } => format!("jump: {}", flow_ref(target)),
        Step::Call {
            target,
            parent_close,
        } => format!("call: {} (parent_close {parent_close})", flow_ref(target)),
        Step::End => "end".into(),
        Step::While {
            condition,
            body,
            max_iterations,
            continue_as_new,
        } => {
            let decides = match condition {
                LoopCondition::Sql { sql: q, .. } => sql(q),
                LoopCondition::Invoke { invocation: i } => {
                    format!("invoke {} (goes on while it prints a row)", invocation(i))
                }
            };
            let bound = match continue_as_new {
                Some(n) => format!(
                    "at most {max_iterations} iterations, continuing as a new run every {n}"
                ),
                None => format!("at most {max_iterations} iterations"),
            };
            let mut text = format!("while: {decides} ({bound}), repeats:");
            for inner in body {
                // Each repeated step one level deeper.
                text.push_str("\n    ");
                text.push_str(&step(inner).replace('\n', "\n  "));
            }
            text
        }
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Line {
    /// Waits for an upstream state.
    Solid,
    /// A fork to its branches.
    Dotted,
    /// A stage to its compensation.
    Dashed,
}

/// What both graph formats draw: boxes for stages, notes for compensations, labelled lines.
struct Graph {
    /// (node, label, kind); stage names may hold any character, so nodes are numbered.
    stages: Vec<(String, String, &'static str)>,
    /// (node, activity)
    compensations: Vec<(String, String)>,
    /// (from, to, label, line)
    edges: Vec<(String, String, String, Line)>,
}

fn graph(plan: &Plan) -> Graph {
    let node = |stage: &str| {
        format!(
            "s{}",
            plan.flow
                .stages
                .iter()
                .position(|s| s.id == stage)
                .unwrap_or(usize::MAX)
        )
    };
    let mut g = Graph {
        stages: Vec::new(),
        compensations: Vec::new(),
        edges: Vec::new(),
    };
    for s in &plan.flow.stages {
        g.stages.push((node(&s.id), s.id.clone(), s.kind.name()));
    }
    for s in &plan.flow.stages {
        for e in &s.upstream {
            g.edges
                .push((node(&e.stage), node(&s.id), e.requires.to_string(), Line::Solid));
        }
        for step in &s.steps {
            if let Step::Fork { branches } = step {
                for b in branches {
                    g.edges
                        .push((node(&s.id), node(b), "branch".into(), Line::Dotted));
                }
            }
            // A loop is drawn as the stage going back to itself.
            if let Step::While {
                max_iterations,
                continue_as_new,
                ..
            } = step
            {
                let label = match continue_as_new {
                    Some(n) => format!("while, at most {max_iterations}, new run every {n}"),
                    None => format!("while, at most {max_iterations}"),
                };
                g.edges.push((node(&s.id), node(&s.id), label, Line::Dotted));
            }
        }
        if let Some(c) = &s.compensation {
            let comp = format!("{}_compensate", node(&s.id));
            g.compensations.push((comp.clone(), c.activity.clone()));
            g.edges
                .push((node(&s.id), comp, "compensate".into(), Line::Dashed));
        }
    }
    g
}

fn escape_dot(text: &str) -> String {
    text.replace('\\', "\\\\").replace('"', "\\\"")
}

/// Graphviz: stages as boxes, edges labelled with the state they wait for, compensations
/// dashed.
pub fn dot(plan: &Plan) -> String {
    let g = graph(plan);
    let mut out = format!(
        "digraph \"{}\" {{\n  rankdir=LR;\n  node [shape=box, fontname=\"Helvetica\"];\n  edge [fontname=\"Helvetica\", fontsize=10];\n",
        escape_dot(&plan.flow.name)
    );
    for (id, label, kind) in &g.stages {
        let _ = writeln!(out, "  {id} [label=\"{}\\n{kind}\"];", escape_dot(label));
    }
    for (id, activity) in &g.compensations {
        let _ = writeln!(
            out,
            "  {id} [label=\"{}\", shape=note];",
            escape_dot(activity)
        );
    }
    for (from, to, label, line) in &g.edges {
        let style = match line {
            Line::Solid => "",
            Line::Dotted => ", style=dotted",
            Line::Dashed => ", style=dashed",
        };
        let _ = writeln!(
            out,
            "  {from} -> {to} [label=\"{}\"{style}];",
            escape_dot(label)
        );
    }
    out.push_str("}\n");
    out
}

fn escape_mermaid(text: &str) -> String {
    text.replace('"', "#quot;")
}

/// Mermaid `flowchart`: the same graph as [`dot`].
pub fn mermaid(plan: &Plan) -> String {
    let g = graph(plan);
    let mut out = String::from("flowchart LR\n");
    for (id, label, kind) in &g.stages {
        let _ = writeln!(out, "  {id}[\"{}<br/>{kind}\"]", escape_mermaid(label));
    }
    for (id, activity) in &g.compensations {
        let _ = writeln!(out, "  {id}>\"{}\"]", escape_mermaid(activity));
    }
    for (from, to, label, line) in &g.edges {
        let arrow = if *line == Line::Solid { "-->" } else { "-.->" };
        let _ = writeln!(out, "  {from} {arrow}|\"{}\"| {to}", escape_mermaid(label));
    }
    out
}
