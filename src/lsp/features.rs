//! Hover, completion and document symbols.

use super::analysis::{Analysis, At, View};
use super::symbols::Kind;
use crate::check::keys::{self, BACKOFF_KINDS, PARENT_CLOSE, Place, TRIGGER_RULES};
use crate::check::{Def, FlowGraph, Index};
use crate::connectors::{self, Connectors, Location, Lookup};
use crate::plan::ir::StagePlan;
use crate::syntax::Span;
use crate::syntax::ast::{self, Config, Member};
use serde_json::{Value, json};
use std::path::Path;

fn contains(span: Span, offset: usize) -> bool {
    span.start as usize <= offset && offset <= span.end as usize
}

fn markdown(text: String) -> Value {
    json!({ "contents": { "kind": "markdown", "value": text } })
}

/// The config blocks of the file at `at`, each with where it stands.
fn configs<'w>(index: &Index<'w>, at: At) -> Vec<(&'w Config, Place)> {
    let mut found = Vec::new();
    for def in index.flows.iter().filter(|d| d.file == at.file) {
        found.extend(def.node.config.as_ref().map(|c| (c, Place::Flow)));
        let graph = FlowGraph::new(def.file, def.node);
        for node in &graph.stages {
            found.extend(node.stage.config.as_deref().map(|c| (c, Place::Stage)));
        }
    }
    for def in index.activities.iter().filter(|d| d.file == at.file) {
        found.extend(def.node.config.as_ref().map(|c| (c, Place::Activity)));
    }
    found
}

pub fn hover(analysis: &Analysis, at: At) -> Value {
    // What a name means may be defined in another chunk than the name: its tree is then
    // parsed too, and the answer found again.
    match hover_in(analysis, &analysis.view(&[at]), at) {
        Ok(answer) => answer,
        Err(definition) => {
            hover_in(analysis, &analysis.view(&[at, definition]), at).unwrap_or(Value::Null)
        }
    }
}

/// The hover at `at`, or the place of the definition it describes when `view` does not hold
/// that in full.
fn hover_in(analysis: &Analysis, view: &View, at: At) -> Result<Value, At> {
    let index = view.index();
    // A config key: its type, default and meaning.
    for (config, place) in configs(&index, at) {
        for entry in config
            .entries
            .iter()
            .filter(|e| contains(e.key.span, at.offset))
        {
            if let Some(key) = keys::key(&entry.key.name, place) {
                return Ok(markdown(crate::check::settings::key_help(key, place)));
            }
        }
    }
    if let Some(text) = connector_hover(analysis, &index, at) {
        return Ok(markdown(text));
    }
    let symbols = analysis.symbols_in(view);
    let Some(s) = symbols.at(at.file, at.offset) else {
        return Ok(Value::Null);
    };
    let symbol = &symbols.defs[s];
    let in_full = |file, span: Span| match view.full(file, span.start) {
        true => Ok(()),
        false => Err(At {
            file,
            offset: span.start as usize,
        }),
    };
    let text = match symbol.kind {
        Kind::Activity => match index.activity_by_name.get(symbol.name.as_str()) {
            Some(def) => {
                in_full(def.file, def.node.span)?;
                Some(activity_hover(analysis, def))
            }
            None => None,
        },
        Kind::Flow => match index.flows.iter().find(|d| d.node.name.name == symbol.name) {
            Some(def) => {
                in_full(def.file, def.node.span)?;
                Some(flow_hover(analysis, &index, *def))
            }
            None => None,
        },
        Kind::Stage => match symbol.parent {
            Some(flow) => {
                let flow_name = &symbols.defs[flow].name;
                match index
                    .flows
                    .iter()
                    .find(|d| d.node.name.name == *flow_name && d.file == symbols.defs[flow].file)
                {
                    Some(def) => {
                        in_full(def.file, def.node.span)?;
                        let plan = crate::plan::lower(analysis.workspace(), &index, *def);
                        plan.flow
                            .stages
                            .iter()
                            .find(|st| st.id == symbol.name)
                            .map(|stage| stage_hover(flow_name, stage))
                    }
                    None => None,
                }
            }
            None => None,
        },
        Kind::Pool => index.pool_by_name.get(symbol.name.as_str()).map(|def| {
            let slots = crate::check::settings::PoolSettings::of_pool(def.file, def.node)
                .slots
                .value
                .map_or("no `slots` yet".to_string(), |n| format!("{n} slot(s)"));
            format!(
                "**pool `{}`**: {slots}, shared by every run on the machine",
                symbol.name
            )
        }),
    };
    Ok(text.map_or(Value::Null, markdown))
}

/// On `NAME` of `stage s on NAME`: the connector's kind, and whether this build runs it. Its
/// URL is not shown (it is in `wvflow.toml`, and may say more than a hover should).
fn connector_hover(analysis: &Analysis, index: &Index, at: At) -> Option<String> {
    let flow = index
        .flows
        .iter()
        .find(|d| d.file == at.file && contains(d.node.span, at.offset))?;
    let graph = FlowGraph::new(flow.file, flow.node);
    let on = graph
        .stages
        .iter()
        .filter_map(|n| n.stage.connector.as_deref())
        .find(|c| contains(c.span, at.offset))?;
    let name = on.name.as_str();
    Some(match analysis.workspace().connectors.lookup(name) {
        Lookup::Default => {
            format!("**connector `{name}`**: the workspace's embedded SQLite database")
        }
        Lookup::Found(c) => {
            let place = match &c.location {
                Location::Path(path) => format!(", file `{}`", path.display()),
                Location::Url(_) => String::new(),
            };
            let runs = match connectors::runs_here(c) {
                true => "",
                false => "; this build of wvflow cannot run stages on it yet (E0702)",
            };
            format!("**connector `{name}`**: {}{place} (wvflow.toml){runs}", c.kind)
        }
        Lookup::Broken => format!("**connector `{name}`**: declared with a problem in wvflow.toml"),
        Lookup::Unknown => format!("**connector `{name}`**: not declared (E0701)"),
    })
}

fn source_text(analysis: &Analysis, file: crate::source::FileId, span: Span) -> &str {
    let text = &analysis.workspace().sources.get(file).text;
    text.get(span.start as usize..span.end as usize)
        .unwrap_or("")
}

fn params(list: &[ast::Param]) -> String {
    list.iter()
        .map(|p| format!("{}: {}", p.name.name, p.ty.value.name()))
        .collect::<Vec<_>>()
        .join(", ")
}

fn activity_hover(analysis: &Analysis, def: &Def<ast::Activity>) -> String {
    let (activity, file) = (def.node, def.file);
    let command = match &activity.command {
        ast::Command::Sh(text) => format!("sh({})", source_text(analysis, file, text.span)),
        ast::Command::Exec(argv) => {
            let args: Vec<&str> = argv
                .iter()
                .map(|a| source_text(analysis, file, a.span))
                .collect();
            format!("exec({})", args.join(", "))
        }
    };
    format!(
        "**activity `{}`**`({})`\n\n```wv\n{command}\n```",
        activity.name.name,
        params(&activity.params)
    )
}

fn flow_hover(analysis: &Analysis, index: &Index, def: Def<ast::Flow>) -> String {
    let flow = def.node;
    let plan = crate::plan::lower(analysis.workspace(), index, def);
    let mut text = format!("**flow `{}`**`({})`", flow.name.name, params(&flow.params));
    if let Some(schedule) = &plan.flow.schedule {
        let what = match (&schedule.cron, schedule.interval_ms) {
            (Some(cron), _) => format!("`cron('{cron}')` in {}", schedule.timezone),
            (None, Some(ms)) => format!(
                "every {}",
                crate::human::duration(std::time::Duration::from_millis(ms))
            ),
            _ => String::new(),
        };
        text.push_str(&format!("\n\nschedule: {what}"));
        if let Ok(timing) = crate::runtime::schedule::Timing::of(schedule)
            && let Some(next) = timing.next_after(crate::runtime::schedule::utc_now())
        {
            text.push_str(&format!(
                "; next fire {} ({})",
                next.with_timezone(&timing.zone())
                    .format("%Y-%m-%d %H:%M %Z"),
                crate::runtime::schedule::run_time_text(next)
            ));
        }
    }
    if !plan.flow.depends_on.is_empty() {
        text.push_str(&format!(
            "\n\ndepends on: {}",
            plan.flow.depends_on.join(", ")
        ));
    }
    text.push_str(&format!("\n\n{} stage(s)", plan.flow.stages.len()));
    text
}

fn stage_hover(flow: &str, stage: &StagePlan) -> String {
    let upstream: Vec<&str> = stage.upstream.iter().map(|e| e.stage.as_str()).collect();
    let retry = stage
        .steps
        .iter()
        .find_map(|step| match step {
            crate::plan::ir::Step::Invoke { invocation }
            | crate::plan::ir::Step::Each { invocation, .. } => Some(&invocation.retry),
            _ => None,
        })
        .map(|r| {
            format!(
                "{} attempt(s), {} backoff from {} ms",
                r.attempts, r.backoff, r.initial_delay_ms
            )
        })
        .unwrap_or_else(|| "no activity".into());
    format!(
        "**stage `{}`** of flow `{flow}` ({})\n\nupstream: {}\n\ntrigger: `{}`\n\nretry: {retry}",
        stage.id,
        stage.kind.name(),
        if upstream.is_empty() {
            "none".to_string()
        } else {
            upstream.join(", ")
        },
        // As `wvflow plan` prints it: one rendering of a trigger.
        crate::plan::render::cond(&stage.trigger)
    )
}

fn item(label: &str, kind: u32, detail: &str) -> Value {
    json!({ "label": label, "kind": kind, "detail": detail })
}

/// What fits at the cursor: the text before it on its line says which kind of name.
pub fn completion(analysis: &Analysis, at: At) -> Value {
    let view = analysis.view(&[at]);
    let index = view.index();
    let text = &analysis.workspace().sources.get(at.file).text;
    let cursor = Cursor::new(text, &index, at);
    if let Some(items) = super::in_tests::completion(&index, at, cursor.before) {
        return Value::Array(items);
    }
    let connectors = &analysis.workspace().connectors;
    let items = cursor
        .connector(connectors)
        .or_else(|| cursor.state(&index))
        .or_else(|| cursor.config_value(&index))
        .or_else(|| cursor.stage_name())
        .or_else(|| config_key(&index, at, cursor.context))
        .or_else(|| cursor.flow_or_route_target(&index))
        .unwrap_or_else(|| {
            // Otherwise: activities and flows.
            let mut items: Vec<Value> = index
                .activity_names()
                .map(|a| item(a, 3, "activity"))
                .collect();
            items.extend(index.flow_names().map(|f| item(f, 9, "flow")));
            items
        });
    Value::Array(items)
}

/// Where a completion is asked for, as the text before the cursor says it.
struct Cursor<'a> {
    /// The line up to the cursor.
    before: &'a str,
    /// The line up to the name being written, without the spaces before that name.
    context: &'a str,
    /// The last word of `context`.
    last_word: &'a str,
    /// The stages of the flow the cursor is in.
    stage_names: Vec<String>,
}

impl<'a> Cursor<'a> {
    fn new(text: &'a str, index: &Index, at: At) -> Self {
        let line_start = text[..at.offset].rfind('\n').map_or(0, |i| i + 1);
        let before = &text[line_start..at.offset];
        // After the last character that is not part of a name (it may take several bytes).
        let word_start = before
            .char_indices()
            .rfind(|&(_, c)| !(c.is_ascii_alphanumeric() || c == '_'))
            .map_or(0, |(i, c)| i + c.len_utf8());
        let context = before[..word_start].trim_end();
        let flow = index
            .flows
            .iter()
            .find(|d| d.file == at.file && contains(d.node.span, at.offset));
        let stage_names: Vec<String> = flow
            .map(|d| {
                FlowGraph::new(d.file, d.node)
                    .stage_names()
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        let last_word = context
            .rsplit(|c: char| c.is_whitespace() || c == '(')
            .next()
            .unwrap_or("");
        Cursor {
            before,
            context,
            last_word,
            stage_names,
        }
    }

    fn stages(&self) -> Vec<Value> {
        self.stage_names
            .iter()
            .map(|s| item(s, 6, "stage"))
            .collect()
    }

    /// After `stage NAME on`: the connectors (the `on` of a `join` is not this one).
    fn connector(&self, connectors: &Connectors) -> Option<Vec<Value>> {
        let header = self.context.trim_start();
        let stage = header.starts_with("stage ") && !header.contains('=');
        (self.last_word == "on" && stage).then(|| {
            connectors
                .names()
                .map(|name| {
                    let detail = match connectors.lookup(name) {
                        Lookup::Found(c) => format!("{} connector", c.kind),
                        Lookup::Default => "embedded SQLite database".to_string(),
                        _ => "connector".to_string(),
                    };
                    item(name, 9, &detail)
                })
                .collect()
        })
    }

    /// `stage.` in a trigger: the states.
    fn state(&self, index: &Index) -> Option<Vec<Value>> {
        let target = self
            .context
            .strip_suffix('.')
            .or_else(|| self.before.strip_suffix('.'))?;
        let name = target
            .rsplit(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .next()
            .unwrap_or("");
        if self.stage_names.iter().any(|s| s == name) {
            return Some(words(crate::check::triggers::STATES, "stage state"));
        }
        if index.flows_by_name.contains_key(name) {
            return Some(words(&["success", "failed", "done"], "flow state"));
        }
        None
    }

    /// A config value.
    fn config_value(&self, index: &Index) -> Option<Vec<Value>> {
        let context = self.context;
        for (key, values) in [
            ("backoff:", BACKOFF_KINDS),
            ("trigger:", TRIGGER_RULES),
            ("parent_close:", PARENT_CLOSE),
        ] {
            if context.ends_with(key) {
                return Some(words(values, key.trim_end_matches(':')));
            }
        }
        if context.ends_with("pool:") {
            let pools = index.pool_by_name.keys().map(|p| item(p, 14, "pool"));
            return Some(pools.collect());
        }
        if context.ends_with("failed(") {
            return Some(self.stages());
        }
        if context.ends_with("on_failure:") {
            let mut items = words(&["fail", "ignore"], "on_failure");
            items.extend(self.stages());
            return Some(items);
        }
        None
    }

    /// Stage names after `from`, `merge`, a trigger's `if`, `and`, `or`, `not`.
    fn stage_name(&self) -> Option<Vec<Value>> {
        let (context, before) = (self.context, self.before);
        let after_keyword = ["from", "merge", "if", "and", "or", "not", "join"]
            .contains(&self.last_word);
        let in_list =
            context.ends_with(',') && (before.contains("from ") || before.contains("merge "));
        (after_keyword || in_list).then(|| self.stages())
    }

    /// After `call`, or a jump's `->` (not a route case's): a flow. After a route case's
    /// `->`: a stage.
    fn flow_or_route_target(&self, index: &Index) -> Option<Vec<Value>> {
        let jump = self
            .context
            .strip_suffix("->")
            .map(str::trim_end)
            .is_some_and(|c| c.ends_with('|') || c.ends_with('='));
        if self.last_word == "call" || jump {
            return Some(index.flow_names().map(|f| item(f, 9, "flow")).collect());
        }
        // A route case's target.
        if self.context.ends_with("->") {
            return Some(self.stages());
        }
        None
    }
}

/// A config key, in a `with { }` block or `[ ]`.
fn config_key(index: &Index, at: At, context: &str) -> Option<Vec<Value>> {
    for (config, place) in configs(index, at) {
        let in_block = contains(config.span, at.offset);
        let at_key = context.ends_with('{')
            || context.ends_with('[')
            || context.ends_with(',')
            || context.is_empty();
        if in_block && at_key {
            return Some(
                keys::names_in(place)
                    .filter_map(|name| keys::key(name, place))
                    .map(|k| {
                        json!({
                            "label": k.name, "kind": 10, "detail": format!("{} key", place.describe()),
                            "documentation": { "kind": "markdown", "value": k.meaning },
                            "insertText": format!("{}: ", k.name),
                        })
                    })
                    .collect(),
            );
        }
    }
    None
}

fn words(list: &[&str], detail: &str) -> Vec<Value> {
    list.iter().map(|w| item(w, 12, detail)).collect()
}

/// The file's flows (with their stages) and activities.
pub fn document_symbols(analysis: &Analysis, path: &Path) -> Value {
    let Some(file) = analysis.file_of(path) else {
        return Value::Null;
    };
    let symbol = |name: &str, kind: u32, span: Span, selection: Span, children: Vec<Value>| {
        json!({
            "name": name, "kind": kind,
            "range": analysis.range(file, span),
            "selectionRange": analysis.range(file, selection),
            "children": children,
        })
    };
    let mut out = Vec::new();
    // The stages are read from each chunk's full tree, one chunk after the other.
    analysis.for_each_chunk(
        |f| f == file,
        |chunk| {
            for item in chunk.items.iter() {
                let ast::Item::Flow(flow) = item else {
                    continue;
                };
                let stages: Vec<Value> = flow
                    .members
                    .iter()
                    .filter_map(|m| match m {
                        Member::Stage(stage) => Some(symbol(
                            &stage.name.name,
                            12,
                            stage.span,
                            stage.name.span,
                            Vec::new(),
                        )),
                        _ => None,
                    })
                    .collect();
                out.push(symbol(
                    &flow.name.name,
                    2,
                    flow.span,
                    flow.name.span,
                    stages,
                ));
            }
        },
    );
    let view = analysis.view(&[]);
    let index = view.index();
    for def in index.activities.iter().filter(|d| d.file == file) {
        out.push(symbol(
            &def.node.name.name,
            12,
            def.node.span,
            def.node.name.span,
            Vec::new(),
        ));
    }
    for def in index.pools.iter().filter(|d| d.file == file) {
        out.push(symbol(
            &def.node.name.name,
            14,
            def.node.span,
            def.node.name.span,
            Vec::new(),
        ));
    }
    Value::Array(out)
}
