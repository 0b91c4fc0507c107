//! E02: configuration values. Unknown, misplaced and duplicate keys; types and ranges;
//! relations between retry and timeout keys; the retry budget; keys with no effect.

use crate::check::graph::{FlowGraph, has_op};
use crate::check::keys::{self, Kind, Place};
use crate::check::settings::{FlowSettings, PoolSettings, StageSettings, Written};
use crate::check::{Ctx, Def, values, with_suggestion};
use crate::diagnostics::Code;
use crate::diagnostics::{Diagnostic, Label};
use crate::vocabulary::OnFailure;
use crate::retry_rule::Backoff;
use crate::source::FileId;
use crate::syntax::ast::{
    Activity, Config, ConfigEntry, Expr, ExprKind, OpKind, SourceKind, Stage,
};
use std::collections::BTreeMap;
use std::time::Duration;

pub fn check_flow(ctx: &mut Ctx, graph: &FlowGraph) {
    if let Some(config) = &graph.flow.config {
        check_block(ctx, graph.file, config, Place::Flow, Some(graph), None);
    }
    let flow_settings = FlowSettings::of_flow(graph.file, graph.flow);
    let flow_timeout = flow_settings.timeout.value;
    if let Some(at) = flow_settings.continue_as_new.written
        && !graph
            .stages
            .iter()
            .any(|n| has_op(n.stage, |k| matches!(k, OpKind::While(_))))
    {
        ctx.emit(
            Diagnostic::warning(
                Code::W0203,
                at.file,
                at.entry.key.span,
                "`continue_as_new` has no effect here: the flow has no `while` loop",
            )
            .with_label("no effect")
            .with_help("remove it, or repeat a stage's operators with `| while <condition> | ...`"),
        );
    }
    for node in &graph.stages {
        let stage = node.stage;
        if let Some(config) = &stage.config {
            check_block(
                ctx,
                graph.file,
                config,
                Place::Stage,
                Some(graph),
                Some(stage),
            );
        }
        let settings = StageSettings::of_stage(ctx.index, graph.file, stage);
        pool_held_by_caller(ctx, stage, &settings);
        let found = ctx.out.len();
        relations(ctx, &settings);
        no_effect(ctx, graph.file, stage, &settings);
        if let (Some(flow_timeout), Some(t), Some(at)) = (
            flow_timeout,
            settings.timeout.value,
            settings.timeout.written,
        ) && t > flow_timeout
        {
            ctx.emit(
                Diagnostic::warning(Code::W0201, at.file, at.entry.value.span, format!("stage timeout {} is longer than the flow's timeout {}", values::show(t), values::show(flow_timeout)))
                    .with_label("the run ends first")
                    .with_help("the engine cuts the stage at the flow's timeout; lower this one or raise the flow's"),
            );
        }
        in_the_stage(ctx, found, graph.file, stage);
    }
}

/// Problems of a stage's settings found at a key its activity wrote are the stage's: they
/// are reported at the stage, with the activity's key beside it. A problem of the activity's
/// keys alone is the activity's, and its own check reports it there. (Each item reports only
/// in its own text, which `check_chunked` needs to hand out problems in order of place.)
fn in_the_stage(ctx: &mut Ctx, found: usize, file: FileId, stage: &Stage) {
    let inside = |d: &Diagnostic| {
        d.primary.file == file
            && stage.span.start <= d.primary.span.start
            && d.primary.span.end <= stage.span.end
    };
    if ctx.out[found..].iter().all(inside) {
        return;
    }
    let mut activity_alone = Ctx::new(ctx.workspace, ctx.index, ctx.schedules);
    if let Some(def) = crate::check::settings::activity_of(ctx.index, stage) {
        relations(&mut activity_alone, &StageSettings::of_activity(def.file, def.node));
    }
    let stray: Vec<Diagnostic> = ctx.out.drain(found..).collect();
    for d in stray {
        if inside(&d) {
            ctx.out.push(d);
        } else if !activity_alone.out.contains(&d) {
            let mut d = d;
            let taken = std::mem::replace(
                &mut d.primary,
                Label {
                    file,
                    span: stage.name.span,
                    message: "in this stage, with its activity's setting".into(),
                },
            );
            d.secondary.insert(0, taken);
            ctx.out.push(d);
        }
    }
}

pub fn check_activity(ctx: &mut Ctx, def: Def<'_, Activity>) {
    if let Some(config) = &def.node.config {
        check_block(ctx, def.file, config, Place::Activity, None, None);
        relations(ctx, &StageSettings::of_activity(def.file, def.node));
    }
}

/// A stage that holds a pool slot while it waits for a child run (`call`, `each call`) whose
/// stages need the same pool can wait for itself: with every slot held by such callers, no
/// child ever starts.
fn pool_held_by_caller(ctx: &mut Ctx, stage: &Stage, settings: &StageSettings) {
    let (Some(pool), Some(at)) = (settings.pool.value, settings.pool.written) else {
        return;
    };
    let mut seen = std::collections::BTreeSet::new();
    let mut todo: Vec<&crate::syntax::ast::FlowCall> = called_flows(stage);
    while let Some(call) = todo.pop() {
        let Some(def) = ctx
            .index
            .flow(&call.name.name, call.version.as_ref().map(|v| v.value))
        else {
            continue;
        };
        if !seen.insert((def.file, def.node.name.span)) {
            continue;
        }
        let graph = FlowGraph::new(def.file, def.node);
        for node in &graph.stages {
            let child = StageSettings::of_stage(ctx.index, def.file, node.stage);
            if child.pool.value == Some(pool) {
                ctx.emit(
                    Diagnostic::error(
                        Code::E0212,
                        at.file,
                        at.entry.value.span,
                        format!(
                            "stage `{}` holds a slot of pool `{pool}` while it waits for flow `{}`, whose stage `{}` needs one",
                            stage.name.name, def.node.name.name, node.stage.name.name
                        ),
                    )
                    .with_label("held while the child waits")
                    .with_secondary(def.file, node.stage.name.span, "needs a slot of the same pool")
                    .with_help("let the child stages hold the pool and the calling stage none, or give them different pools"),
                );
                return;
            }
            todo.extend(called_flows(node.stage));
        }
    }
}

/// The flows a stage starts child runs of: `call F`, `| call F`, `each call F`.
fn called_flows(stage: &Stage) -> Vec<&crate::syntax::ast::FlowCall> {
    let mut calls = Vec::new();
    if let SourceKind::CallFlow(call) = &stage.body.source.kind {
        calls.push(&**call);
    }
    for op in &stage.body.ops {
        if let OpKind::CallFlow(call) | OpKind::EachCall(call) = &op.kind {
            calls.push(&**call);
        }
    }
    calls
}

/// A pool's block: its keys, and the `slots` it cannot do without.
pub fn check_pool(ctx: &mut Ctx, def: Def<'_, crate::syntax::ast::Pool>) {
    let pool = def.node;
    check_block(ctx, def.file, &pool.config, Place::Pool, None, None);
    let slots = PoolSettings::of_pool(def.file, pool).slots;
    if slots.written.is_none() && pool.config.get("slots").is_none() {
        ctx.emit(
            Diagnostic::error(
                Code::E0211,
                def.file,
                pool.name.span,
                format!(
                    "pool `{}` does not say how many slots it has",
                    pool.name.name
                ),
            )
            .with_label("no `slots`")
            .with_help(
                "give it `slots: N`, the number of stages or `each` items that may hold it at once",
            ),
        );
    }
}

/// Keys, duplicates, types and ranges of one block.
fn check_block(
    ctx: &mut Ctx,
    file: FileId,
    config: &Config,
    place: Place,
    graph: Option<&FlowGraph>,
    stage: Option<&Stage>,
) {
    let mut seen: BTreeMap<&str, &ConfigEntry> = BTreeMap::new();
    for e in &config.entries {
        let name = e.key.name.as_str();
        if let Some(first) = seen.get(name) {
            ctx.emit(
                Diagnostic::error(
                    Code::E0203,
                    file,
                    e.key.span,
                    format!("`{name}` is set twice"),
                )
                .with_label("second value")
                .with_secondary(file, first.key.span, "first set here")
                .with_help("keep one of them"),
            );
            continue;
        }
        seen.insert(name, e);
        let Some(key) = keys::key(name, place) else {
            misplaced_or_unknown(ctx, file, e, place);
            continue;
        };
        value(ctx, file, e, key.kind, place, graph, stage);
    }
}

fn misplaced_or_unknown(ctx: &mut Ctx, file: FileId, e: &ConfigEntry, place: Place) {
    let name = e.key.name.as_str();
    let elsewhere = keys::places_of(name);
    if let Some(other) = elsewhere.first() {
        ctx.emit(
            Diagnostic::error(
                Code::E0202,
                file,
                e.key.span,
                format!(
                    "`{name}` is a key of {}, not of {}",
                    other.describe(),
                    place.describe()
                ),
            )
            .with_label("misplaced")
            .with_help(format!(
                "move it into the `with {{ }}` of {}",
                other.describe()
            )),
        );
    } else {
        let d = Diagnostic::error(
            Code::E0201,
            file,
            e.key.span,
            format!("unknown key `{name}` in {}", place.describe()),
        )
        .with_label("unknown key");
        let known: Vec<&str> = keys::names_in(place).collect();
        ctx.emit(with_suggestion(
            d,
            name,
            known.iter().copied(),
            Some(format!(
                "the keys of {} are {}",
                place.describe(),
                known.join(", ")
            )),
        ));
    }
}

fn value(
    ctx: &mut Ctx,
    file: FileId,
    e: &ConfigEntry,
    kind: Kind,
    place: Place,
    graph: Option<&FlowGraph>,
    stage: Option<&Stage>,
) {
    let v = &e.value;
    // A value that did not parse is already reported.
    if matches!(v.kind, ExprKind::Error) {
        return;
    }
    let value = Value {
        file,
        name: e.key.name.as_str(),
        v,
    };
    match kind {
        Kind::Int { min, max } => int_value(ctx, &value, place, min, max),
        Kind::Float { min } => match values::number(v) {
            None => ctx.emit(value.wrong_type("a number")),
            Some(x) if x < min => ctx.emit(value.out_of_range(
                format!("`{}` must be at least {min:?}, found {x}", value.name),
                "a coefficient below 1 would shrink the delay at each retry",
            )),
            Some(_) => {}
        },
        Kind::Duration => duration_value(ctx, &value),
        Kind::Bool => {
            if values::boolean(v).is_none() {
                ctx.emit(value.wrong_type("`true` or `false`"));
            }
        }
        Kind::Word(words) => word_value(ctx, &value, words),
        Kind::IntList => {
            let ok = matches!(&v.kind, ExprKind::List(items) if items.iter().all(|i| values::int(i).is_some()));
            if !ok {
                ctx.emit(value.wrong_type("a list of exit codes such as `[2, 64]`"));
            }
        }
        Kind::FailureAction => failure_action(ctx, file, e, graph, stage),
        Kind::CountOrPercent => count_or_percent(ctx, file, e),
        Kind::Hook => {
            if !matches!(v.kind, ExprKind::Call(_)) {
                ctx.emit(value.wrong_type("an activity call or `activate(...)`"));
            }
        }
        Kind::Pool => pool_value(ctx, &value),
        // Checked by their own families: triggers, saga, schedules.
        Kind::TriggerRule | Kind::ActivityCall | Kind::Expression | Kind::Cron | Kind::TimeZone => {
        }
    }
}

/// The value of one configuration entry, for the messages about it.
struct Value<'a> {
    file: FileId,
    /// The key.
    name: &'a str,
    v: &'a Expr,
}

impl Value<'_> {
    fn wrong_type(&self, expected: &str) -> Diagnostic {
        Diagnostic::error(
            Code::E0204,
            self.file,
            self.v.span,
            format!(
                "`{}` takes {expected}, found {}",
                self.name,
                values::describe(self.v)
            ),
        )
        .with_label(format!("expected {expected}"))
    }

    fn out_of_range(&self, message: String, help: &str) -> Diagnostic {
        Diagnostic::error(Code::E0205, self.file, self.v.span, message)
            .with_label("out of range")
            .with_help(help.to_string())
    }
}

/// A whole number from `min` to `max`.
fn int_value(ctx: &mut Ctx, value: &Value, place: Place, min: i64, max: i64) {
    let name = value.name;
    match values::int(value.v) {
        None => ctx.emit(value.wrong_type("a whole number")),
        Some(n) if n < min || n > max => {
            // Flow concurrency belongs to the schedule family (docs/errors.md).
            let code = if place == Place::Flow && name == "concurrency" {
                Code::E0507
            } else {
                Code::E0205
            };
            let range = if max == i64::MAX {
                format!("at least {min}")
            } else {
                format!("{min} to {max}")
            };
            ctx.emit(
                Diagnostic::error(
                    code,
                    value.file,
                    value.v.span,
                    format!("`{name}` must be {range}, found {n}"),
                )
                .with_label("out of range")
                .with_help(format!("use a value {range}")),
            );
        }
        Some(_) => {}
    }
}

/// A duration longer than zero.
fn duration_value(ctx: &mut Ctx, value: &Value) {
    let name = value.name;
    match values::duration(value.v) {
        Err(reason) => ctx.emit(
            Diagnostic::error(
                Code::E0204,
                value.file,
                value.v.span,
                format!("`{name}` takes a duration: {reason}"),
            )
            .with_label("not a duration")
            .with_help("durations read `100ms`, `30s`, `5m`, `2h`, `1d` or '1h 30m'"),
        ),
        Ok(d) if d.is_zero() => ctx.emit(value.out_of_range(
            format!("`{name}` must be longer than zero"),
            "give a positive duration, or remove the key",
        )),
        Ok(_) => {}
    }
}

/// One of `words`.
fn word_value(ctx: &mut Ctx, value: &Value, words: &[&str]) {
    let name = value.name;
    match values::word(value.v) {
        None => ctx.emit(value.wrong_type(&format!("one of {}", words.join(", ")))),
        Some(w) if !words.contains(&w) => {
            let d = Diagnostic::error(
                Code::E0206,
                value.file,
                value.v.span,
                format!("unknown `{name}` value `{w}`"),
            )
            .with_label("not a known value");
            ctx.emit(with_suggestion(
                d,
                w,
                words.iter().copied(),
                Some(format!("`{name}` takes {}", words.join(", "))),
            ));
        }
        Some(_) => {}
    }
}

/// The name of a pool of the workspace.
fn pool_value(ctx: &mut Ctx, value: &Value) {
    let v = value.v;
    match values::word(v) {
        Some(pool) if ctx.index.pool_by_name.contains_key(pool) => {}
        found => {
            let d = Diagnostic::error(
                Code::E0210,
                value.file,
                v.span,
                match found {
                    Some(pool) => format!("no pool `{pool}` is defined in the workspace"),
                    None => {
                        format!("`pool` takes a pool's name, found {}", values::describe(v))
                    }
                },
            )
            .with_label("not a pool");
            let pools: Vec<&str> = ctx.index.pool_by_name.keys().copied().collect();
            ctx.emit(with_suggestion(
                d,
                found.unwrap_or_default(),
                pools,
                Some("define it beside the flows: `pool NAME with { slots: N }`".into()),
            ));
        }
    }
}

fn failure_action(
    ctx: &mut Ctx,
    file: FileId,
    e: &ConfigEntry,
    graph: Option<&FlowGraph>,
    stage: Option<&Stage>,
) {
    let v = &e.value;
    let Some(word) = values::word(v) else {
        ctx.emit(
            Diagnostic::error(
                Code::E0204,
                file,
                v.span,
                format!(
                    "`on_failure` takes `fail`, `ignore` or a stage name, found {}",
                    values::describe(v)
                ),
            )
            .with_label("expected a word"),
        );
        return;
    };
    if !matches!(OnFailure::parse(word), OnFailure::Stage(_)) {
        return;
    }
    let (Some(graph), Some(stage)) = (graph, stage) else {
        ctx.emit(
            Diagnostic::error(
                Code::E0206,
                file,
                v.span,
                format!("`on_failure` of an activity takes `fail` or `ignore`, found `{word}`"),
            )
            .with_label("not `fail` or `ignore`")
            .with_help("name a fallback stage in the stage that calls the activity"),
        );
        return;
    };
    if word == stage.name.name {
        ctx.emit(
            Diagnostic::error(
                Code::E0104,
                file,
                v.span,
                format!("stage `{word}` cannot be its own `on_failure` stage"),
            )
            .with_label("the failing stage itself")
            .with_help("name another stage, or `ignore`"),
        );
    } else if graph.index_of(word).is_none() {
        let d = Diagnostic::error(
            Code::E0104,
            file,
            v.span,
            format!(
                "`on_failure` names `{word}`, which is not a stage of flow `{}`",
                graph.flow.name.name
            ),
        )
        .with_label("no such stage");
        let names: Vec<&str> = graph.stage_names().chain(["fail", "ignore"]).collect();
        ctx.emit(with_suggestion(
            d,
            word,
            names,
            Some("`on_failure` takes `fail`, `ignore` or a stage of this flow".into()),
        ));
    }
}

fn count_or_percent(ctx: &mut Ctx, file: FileId, e: &ConfigEntry) {
    let v = &e.value;
    match &v.kind {
        ExprKind::Int(n) if *n < 0 => ctx.emit(Diagnostic::error(Code::E0205, file, v.span, format!("`tolerated_failures` must be at least 0, found {n}")).with_label("out of range").with_help("use a count such as `3` or a percentage such as '10%'")),
        ExprKind::Int(_) => {}
        ExprKind::Str(s) => match s.strip_suffix('%').map(|p| p.trim().parse::<f64>()) {
            Some(Ok(p)) if (0.0..=100.0).contains(&p) => {}
            Some(Ok(p)) => ctx.emit(Diagnostic::error(Code::E0205, file, v.span, format!("`tolerated_failures` must be 0% to 100%, found {p}%")).with_label("out of range").with_help("a percentage of the items, from '0%' to '100%'")),
            _ => ctx.emit(Diagnostic::error(Code::E0204, file, v.span, format!("`tolerated_failures` takes a count or a percentage such as '10%', found '{s}'")).with_label("not a percentage")),
        },
        _ => ctx.emit(Diagnostic::error(Code::E0204, file, v.span, format!("`tolerated_failures` takes a count or a percentage such as '10%', found {}", values::describe(v))).with_label("expected a count or percentage")),
    }
}

fn relations(ctx: &mut Ctx, p: &StageSettings) {
    // Each relation is reported at the entry that breaks it, in the block that wrote it.
    let mut refuse = |code, at: Written, message: String, label: &str, help: &str| {
        ctx.emit(
            Diagnostic::error(code, at.file, at.entry.value.span, message)
                .with_label(label)
                .with_help(help),
        )
    };
    let retry_delay = p.retry_delay.value;
    if let (Some(max), Some(at)) = (p.max_retry_delay.value, p.max_retry_delay.written)
        && max < retry_delay
    {
        refuse(
            Code::E0207,
            at,
            format!(
                "`max_retry_delay` {} is shorter than `retry_delay` {}",
                values::show(max),
                values::show(retry_delay)
            ),
            "cap below the first delay",
            "the cap must be at least the first delay; raise it or lower `retry_delay`",
        );
    }
    let timeout = p.timeout.value;
    if let (Some(beat), Some(at), Some(t)) = (p.heartbeat.value, p.heartbeat.written, timeout)
        && beat >= t
    {
        refuse(
            Code::E0208,
            at,
            format!(
                "`heartbeat` {} is not shorter than `timeout` {}",
                values::show(beat),
                values::show(t)
            ),
            "never fires before the timeout",
            "a heartbeat must be shorter than the attempt's timeout",
        );
    }
    let (Some(limit), Some(at)) = (p.schedule_timeout.value, p.schedule_timeout.written) else {
        return;
    };
    match timeout {
        Some(t) if t > limit => refuse(
            Code::E0209,
            at,
            format!(
                "`schedule_timeout` {} is shorter than `timeout` {}",
                values::show(limit),
                values::show(t)
            ),
            "bounds the whole stage, so it must hold one attempt",
            "make `schedule_timeout` at least `timeout`",
        ),
        _ => budget(ctx, p, at, limit),
    }
}

/// Simulates the retry schedule against `schedule_timeout`.
fn budget(ctx: &mut Ctx, p: &StageSettings, at: Written, limit: Duration) {
    let retries = p.retries.value;
    if retries == 0 {
        return;
    }
    let attempts = retries + 1;
    let timeout = p.timeout.value;
    let delays = p.retry_delays().total(retries, Some(limit));
    // Retry k starts attempt k + 1 after the waits before it, at the earliest (with jitter,
    // the waits may be shorter).
    let never = delays.reached.filter(|_| !p.jitter.value).map(|k| k + 1);
    let total_delay = delays.sum;
    let worst = timeout.map(|t| t.saturating_mul(attempts).saturating_add(total_delay));
    if never.is_none() && worst.is_none_or(|w| w <= limit) {
        return;
    }
    let mut message = match (worst, timeout) {
        (Some(w), Some(t)) if w > limit => format!(
            "{attempts} attempts of up to {} plus {} of retry delays can take {}, more than `schedule_timeout` {}",
            values::show(t),
            values::show(total_delay),
            values::show(w),
            values::show(limit)
        ),
        _ => format!(
            "the retry delays alone exceed `schedule_timeout` {}",
            values::show(limit)
        ),
    };
    if let Some(k) = never {
        let which = if k == attempts {
            format!("attempt {k}")
        } else {
            format!("attempts {k} to {attempts}")
        };
        message.push_str(&format!("; {which} can never start"));
    }
    ctx.emit(
        Diagnostic::warning(Code::W0202, at.file, at.entry.value.span, message)
            .with_label("budget for all attempts")
            .with_help("raise `schedule_timeout`, or lower `retries`, `timeout` or the delays"),
    );
}

/// Keys that do nothing where they stand.
fn no_effect(ctx: &mut Ctx, file: FileId, stage: &Stage, p: &StageSettings) {
    let warn = |e: &ConfigEntry, why: String, help: &str| {
        Diagnostic::warning(
            Code::W0203,
            file,
            e.key.span,
            format!("`{}` has no effect here: {why}", e.key.name),
        )
        .with_label("no effect")
        .with_help(help.to_string())
    };
    let mut found = Vec::new();
    if p.retries.value == 0 {
        // The keys that shape retries, and mean nothing without them.
        let retry_keys = [
            p.retry_delay.own(),
            p.backoff.own(),
            p.backoff_coefficient.own(),
            p.max_retry_delay.own(),
            p.jitter.own(),
            p.non_retryable.own(),
        ];
        for e in retry_keys.into_iter().flatten() {
            found.push(warn(
                e,
                format!("stage `{}` has no `retries`", stage.name.name),
                "add `retries: n`, or remove the key",
            ));
        }
    }
    if let Some(e) = p.backoff_coefficient.own()
        && p.backoff.value != Backoff::Exponential
    {
        found.push(warn(
            e,
            "the coefficient applies to exponential backoff only".into(),
            "remove it, or use `backoff: exponential`",
        ));
    }
    if let Some(e) = p.poll_interval.own()
        && !has_op(stage, |k| matches!(k, OpKind::WaitUntil(_)))
        && !matches!(stage.body.source.kind, SourceKind::WaitUntil(_))
    {
        found.push(warn(
            e,
            "the stage has no `wait until`".into(),
            "remove it, or add `| wait until <condition>`",
        ));
    }
    for e in [p.max_iterations.own(), p.continue_as_new.own()] {
        if let Some(e) = e
            && !has_op(stage, |k| matches!(k, OpKind::While(_)))
        {
            found.push(warn(
                e,
                "the stage has no `while` loop".into(),
                "remove it, or repeat operators with `| while <condition> | ...`",
            ));
        }
    }
    for e in [p.concurrency.own(), p.tolerated_failures.own()] {
        if let Some(e) = e
            && !has_op(stage, |k| {
                matches!(k, OpKind::Each(_) | OpKind::EachCall(_))
            })
        {
            found.push(warn(
                e,
                "the stage has no `each` fan-out".into(),
                "remove it, or fan out with `| each activity(...)`",
            ));
        }
    }
    if let Some(e) = p.parent_close.own()
        && !matches!(stage.body.source.kind, SourceKind::CallFlow(_))
        && !has_op(stage, |k| {
            matches!(k, OpKind::CallFlow(_) | OpKind::EachCall(_))
        })
    {
        found.push(warn(
            e,
            "the stage calls no child flow".into(),
            "remove it, or start a child run with `call flow_name(...)`",
        ));
    }
    for d in found {
        ctx.emit(d);
    }
}
