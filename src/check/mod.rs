//! The semantic checker: every rule of the catalogue (docs/errors.md), one file per rule
//! family under [`rules`], over a whole workspace and the shared [`model`] of it (index,
//! graphs, key table, values, binder). It never runs user code.
//!
//! | family | file |
//! |---|---|
//! | E01 names and structure | [`names`] |
//! | E02 configuration values | [`config`] |
//! | E03 triggers | [`triggers`] |
//! | E04 saga and idempotency | [`saga`] |
//! | E05 schedules | [`schedules`] (cron patterns in [`crate::cron`]) |
//! | E06 flows, parameters, activities, calls | [`calls`] |
//! | E07 connectors: `on NAME` (`wvflow.toml`'s own in [`crate::connectors`]) | [`connectors`] |
//! | E08 `test` items | [`tests`] |
//! | names in expressions (E0114, E0615-E0618) | [`exprs`], on the [`binder`] and [`shapes`] |

pub mod chunked;
mod in_order;
pub mod model;
pub mod rules;

pub use model::{binder, functions, keys, settings, shapes, values};
use model::{graph, index};
use rules::{calls, config, connectors, loops, names, saga, schedules, tests};
pub use rules::{exprs, triggers};

pub use graph::{
    FlowGraph, activity_calls, any_expr, calls_function, condition_atoms, key_per_iteration,
    loop_activity, on_failure_stage,
};
pub use index::{Def, Index};

use crate::diagnostics::{self, Code, Diagnostic};
use crate::workspace::Workspace;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Shared state of one check: the workspace, its index, and the diagnostics found so far.
pub struct Ctx<'w> {
    pub workspace: &'w Workspace,
    pub index: &'w Index<'w>,
    pub out: Vec<Diagnostic>,
    schedules: &'w Mutex<schedules::Cache>,
}

impl<'w> Ctx<'w> {
    fn new(
        workspace: &'w Workspace,
        index: &'w Index<'w>,
        schedules: &'w Mutex<schedules::Cache>,
    ) -> Self {
        Ctx {
            workspace,
            index,
            out: Vec::new(),
            schedules,
        }
    }

    /// The shared schedule cache. Held only for a lookup or an insert, never while computing.
    fn schedules(&self) -> std::sync::MutexGuard<'_, schedules::Cache> {
        self.schedules
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn emit(&mut self, diagnostic: Diagnostic) {
        self.out.push(diagnostic);
    }
}

/// Problems an item that failed to parse can cause elsewhere (a name that no longer resolves,
/// a flow left without stages); not reported while the workspace has syntax errors.
const UNRESOLVED: [Code; 10] = [
    Code::E0104,
    Code::E0106,
    Code::E0301,
    Code::E0402,
    Code::E0601,
    Code::E0610,
    Code::E0611,
    Code::W0103,
    Code::E0801,
    Code::W0801,
];

/// What checking found, with the time spent on each file.
pub struct Report {
    pub diagnostics: Vec<Diagnostic>,
    pub file_times: Vec<Duration>,
    pub workspace_time: Duration,
}

/// Every problem of a workspace as `wvflow check` shows them: its files' syntax diagnostics
/// and what checking found (`checked`), in one order (by file, then position).
pub fn problems(workspace: &Workspace, checked: Vec<Diagnostic>) -> Vec<Diagnostic> {
    let mut found: Vec<Diagnostic> = workspace.diagnostics().cloned().collect();
    found.extend(checked);
    diagnostics::normalize(&mut found);
    found
}

/// Checks every flow, activity and `run flow` of the workspace. Syntax diagnostics are not
/// repeated here; items that did not parse are simply absent.
pub fn check(workspace: &Workspace) -> Report {
    let started = Instant::now();
    let index = Index::new(workspace);
    let cache = Mutex::new(schedules::Cache::default());
    let mut diagnostics = check_workspace(workspace, &index, &cache, true);
    let workspace_time = started.elapsed();

    // Flows and activities are checked independently: in batches, on every core.
    let items: Vec<Item> = index
        .flows
        .iter()
        .map(|&d| Item::Flow(d))
        .chain(index.activities.iter().map(|&d| Item::Activity(d)))
        .collect();
    let batch = items.len().div_ceil(64).max(1);
    let batches = crate::parallel::map_indexed(items.len().div_ceil(batch), |b| {
        let mut ctx = Ctx::new(workspace, &index, &cache);
        let mut times = Vec::new();
        for item in &items[b * batch..((b + 1) * batch).min(items.len())] {
            let started = Instant::now();
            let file = item.check(&mut ctx);
            times.push((file, started.elapsed()));
        }
        (ctx.out, times)
    });
    let mut file_times = vec![Duration::ZERO; workspace.sources.len()];
    for (found, times) in batches {
        diagnostics.extend(found);
        for (file, time) in times {
            file_times[file.0 as usize] += time;
        }
    }
    Report {
        diagnostics: finish(workspace, diagnostics),
        file_times,
        workspace_time,
    }
}

/// Checks a workspace held as outlines, as [`check`] checks one held in full, with the same
/// result: the workspace-wide rules and every lookup of another item read the outlines, and
/// each chunk is parsed again, its flows and activities checked, and its tree dropped.
///
/// Every problem (the syntax errors too) goes to `emit` in [`diagnostics::normalize`]'s
/// order as the chunks are checked, so that thousands of problems are never all held.
pub fn check_chunked(
    chunked: &crate::check::chunked::Chunked,
    emit: impl FnMut(Diagnostic),
) -> Timings {
    let started = Instant::now();
    let workspace = &chunked.workspace;
    let index = Index::new(workspace);
    let cache = Mutex::new(schedules::Cache::default());
    let hide_unresolved = workspace.has_syntax_errors();
    let mut early: Vec<Diagnostic> = workspace.diagnostics().cloned().collect();
    early.extend(reported(
        check_workspace(workspace, &index, &cache, chunked.keeps_trees()),
        hide_unresolved,
    ));
    early.extend(reported(
        check_tests_lean(chunked, &index, &cache),
        hide_unresolved,
    ));
    diagnostics::normalize(&mut early);
    let workspace_time = started.elapsed();

    let mut merged = in_order::Merge::new(early, emit);
    let mut file_times = vec![Duration::ZERO; workspace.sources.len()];
    chunked.map_in_order(
        |chunk| {
            // Every flow first, then every activity, each in workspace order: diagnostics at
            // one place keep the order in which `check` finds them.
            let mut flows = Ctx::new(workspace, &index, &cache);
            let mut activities = Ctx::new(workspace, &index, &cache);
            let started = Instant::now();
            for item in chunk.items.iter() {
                let file = chunk.file;
                match item {
                    crate::syntax::ast::Item::Flow(node) => {
                        Item::Flow(Def { file, node }).check(&mut flows);
                    }
                    crate::syntax::ast::Item::Activity(node) => {
                        Item::Activity(Def { file, node }).check(&mut activities);
                    }
                    _ => {}
                }
            }
            flows.out.append(&mut activities.out);
            let mut found = reported(flows.out, hide_unresolved);
            diagnostics::normalize(&mut found);
            (chunk.file, found, started.elapsed())
        },
        |(file, found, time)| {
            file_times[file.0 as usize] += time;
            merged.extend(found);
        },
    );
    merged.finish();
    Timings {
        file_times,
        workspace_time,
    }
}

/// The time [`check_chunked`] spent on each file, and on the workspace-wide rules.
pub struct Timings {
    pub file_times: Vec<Duration>,
    pub workspace_time: Duration,
}

/// Where some item did not parse, a reference may name exactly what is missing: only the
/// problems that cannot come from that.
fn reported(mut diagnostics: Vec<Diagnostic>, hide_unresolved: bool) -> Vec<Diagnostic> {
    if hide_unresolved {
        diagnostics.retain(|d| !UNRESOLVED.contains(&d.code));
    }
    diagnostics
}

/// The rules over the whole workspace: duplicates, `run flow` calls, cycles between flows,
/// pools.
fn check_workspace<'w>(
    workspace: &'w Workspace,
    index: &'w Index<'w>,
    cache: &'w Mutex<schedules::Cache>,
    with_tests: bool,
) -> Vec<Diagnostic> {
    let mut ctx = Ctx::new(workspace, index, cache);
    names::check_workspace(&mut ctx);
    calls::check_workspace(&mut ctx);
    // Tests read the flows they run in full: over outlines, `check_tests_lean` does.
    if with_tests {
        tests::check_workspace(&mut ctx);
    }
    for def in index.pools.clone() {
        config::check_pool(&mut ctx, def);
    }
    ctx.out
}

/// The rules of tests over a workspace held as outlines: the chunks of the flows the tests
/// reach are parsed again, and the tests checked over an index with those flows in full.
fn check_tests_lean(
    chunked: &chunked::Chunked,
    outlines: &Index,
    cache: &Mutex<schedules::Cache>,
) -> Vec<Diagnostic> {
    if chunked.keeps_trees() || outlines.tests.is_empty() {
        return Vec::new();
    }
    let mut places: Vec<(crate::source::FileId, usize)> = outlines
        .tests
        .iter()
        .flat_map(|t| tests::flows_reached(outlines, t.node))
        .filter_map(|f| Some((f.file, chunked.chunk_of(f.file, f.node.span.start as usize)?)))
        .collect();
    places.sort();
    places.dedup();
    let full: Vec<chunked::FullChunk> = places.iter().map(|&(f, c)| chunked.parse(f, c)).collect();
    let workspace = &chunked.workspace;
    let full = &full;
    let index = Index::of_items((0..workspace.sources.len()).flat_map(|f| {
        let file = crate::source::FileId(f as u32);
        (0..chunked.chunk_count(file)).flat_map(move |c| {
            let items = match full.iter().find(|l| l.file == file && l.chunk == c) {
                Some(loaded) => &loaded.items[..],
                None => chunked.outlines(file, c),
            };
            items.iter().map(move |item| (file, item))
        })
    }));
    let mut ctx = Ctx::new(workspace, &index, cache);
    tests::check_workspace(&mut ctx);
    ctx.out
}

fn finish(workspace: &Workspace, diagnostics: Vec<Diagnostic>) -> Vec<Diagnostic> {
    let hide_unresolved = workspace.has_syntax_errors();
    let mut diagnostics = reported(diagnostics, hide_unresolved);
    diagnostics::normalize(&mut diagnostics);
    diagnostics
}

/// A unit of checking.
enum Item<'w> {
    Flow(Def<'w, crate::syntax::ast::Flow>),
    Activity(Def<'w, crate::syntax::ast::Activity>),
}

impl<'w> Item<'w> {
    /// Runs every family on the item; returns its file.
    fn check(&self, ctx: &mut Ctx<'w>) -> crate::source::FileId {
        match *self {
            Item::Flow(def) => {
                let graph = FlowGraph::new(def.file, def.node);
                names::check_flow(ctx, &graph);
                config::check_flow(ctx, &graph);
                triggers::check_flow(ctx, &graph);
                saga::check_flow(ctx, &graph);
                schedules::check_flow(ctx, def);
                calls::check_flow(ctx, &graph);
                exprs::check_flow(ctx, &graph);
                loops::check_flow(ctx, &graph);
                connectors::check_flow(ctx, &graph);
                def.file
            }
            Item::Activity(def) => {
                config::check_activity(ctx, def);
                saga::check_activity(ctx, def);
                calls::check_activity(ctx, def);
                exprs::check_activity(ctx, def);
                def.file
            }
        }
    }
}

/// "did you mean `x`?" when a known word is close to `word`.
pub fn did_you_mean<'a>(word: &str, known: impl IntoIterator<Item = &'a str>) -> Option<String> {
    diagnostics::suggest::closest(word, known).map(|best| format!("did you mean `{best}`?"))
}

/// Adds a did-you-mean help, or `otherwise` when nothing is close.
pub fn with_suggestion<'a>(
    d: Diagnostic,
    word: &str,
    known: impl IntoIterator<Item = &'a str>,
    otherwise: Option<String>,
) -> Diagnostic {
    match did_you_mean(word, known).or(otherwise) {
        Some(help) => d.with_help(help),
        None => d,
    }
}
