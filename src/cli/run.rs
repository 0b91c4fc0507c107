//! `wvflow run PATH [FLOW_CALL] [--format text|json] [--db FILE]`
//!
//! Semantics and decisions: `docs/runtime.md`.

use super::exit;
use super::plan::{choose_flow, compile};
use crate::check::Index;
use crate::plan::lower;
use crate::runtime::activity::ProcessLauncher;
use crate::runtime::clock::SystemClock;
use crate::runtime::engine::{Context, FlowRunner, Jump, Progress, Summary, Tee, execute};
use crate::runtime::hooks;
use crate::runtime::retry::SeededRandom;
use crate::runtime::runs::catalog::{self, Retention, RunRow};
use crate::runtime::runs::journal::{Claim, Journal, NewRun};
use crate::runtime::runs::owner::Watch;
use crate::runtime::runs::{new_run_id, run_params, zone_of};
use crate::runtime::schedule::{run_time_text, utc_now};
use crate::runtime::state::RunState;
use crate::runtime::store::{StoreConfig, from_json};
use crate::syntax::ast::{ExprKind, Item};
use crate::value::{ValueType, stored};
use crate::workspace::Workspace;
use crate::workspace::absolute;
use clap::{Args, ValueEnum};
use rusqlite::types::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(super) enum Format {
    Text,
    Json,
}

#[derive(Args)]
pub struct RunArgs {
    /// A .wv file or a folder (one workspace).
    path: PathBuf,
    /// `Name` or `Name(arg = value, ...)`; optional when the workspace has one flow.
    flow_call: Option<String>,
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// The workspace database (default: `.wvflow/workspace.db` beside the workspace).
    #[arg(long)]
    db: Option<PathBuf>,
    /// Stages of the run executing at once (default: the flow's `max_parallel`, else the
    /// number of cores).
    #[arg(long)]
    max_parallel: Option<usize>,
    /// The run's logical time (`run_time`, RFC 3339, UTC), as the scheduler and backfill set
    /// it; default: now.
    #[arg(long, value_parser = parse_run_time)]
    run_time: Option<String>,
    /// Start as the scheduler does: a flow whose `depends on` is unmet is recorded as skipped.
    #[arg(long)]
    scheduled: bool,
    /// The run and stage that started this run with `call` (`parent_close: abandon`).
    #[arg(long, hide = true, num_args = 2, value_names = ["RUN_ID", "STAGE"])]
    parent: Option<Vec<String>>,
}

pub fn run(args: RunArgs) -> u8 {
    let (workspace, load_errors) = Workspace::load(std::slice::from_ref(&args.path));
    for e in &load_errors {
        eprintln!("error: {e}");
    }
    if !load_errors.is_empty() || compile(&workspace).is_none() {
        return exit::USAGE;
    }
    let index = Index::new(&workspace);
    let (name, given) = match parse_call(args.flow_call.as_deref()) {
        Ok(call) => call,
        Err(e) => {
            eprintln!("error: {e}");
            return exit::USAGE;
        }
    };
    let mut queue = Vec::new();
    if name.is_none() && !index.runs.is_empty() {
        // `run flow` statements run in file order.
        for run in &index.runs {
            let call = &run.node.call;
            let prepared = call_args(call).and_then(|args| {
                let def = index
                    .flow(&call.name.name, call.version.as_ref().map(|v| v.value))
                    .ok_or_else(|| format!("no flow `{}`", call.name.name))?;
                let plan = lower(&workspace, &index, def);
                let params = bind_params(&plan, &args)?;
                Ok((plan, params))
            });
            match prepared {
                Ok(p) => queue.push(p),
                Err(e) => {
                    eprintln!("error: {e}");
                    return exit::USAGE;
                }
            }
        }
    } else {
        let def = match choose_flow(&index, name.as_deref()) {
            Ok(def) => def,
            Err(e) => {
                eprintln!("error: {e}");
                return exit::USAGE;
            }
        };
        let plan = lower(&workspace, &index, def);
        match bind_params(&plan, &given) {
            Ok(params) => queue.push((plan, params)),
            Err(e) => {
                eprintln!("error: {e}");
                return exit::USAGE;
            }
        }
    }
    let db = args.db.clone().unwrap_or_else(|| default_db(&args.path));
    let runner = Runner::new(args.path.clone(), &workspace, &index, db, args.max_parallel);
    let parent = args.parent.as_deref().and_then(|p| match p {
        [run, stage] => Some((run.clone(), stage.clone())),
        _ => None,
    });
    // Each run, then the runs its jumps start, up to a depth limit; a failed run stops the rest.
    let mut status = exit::OK;
    for (plan, params) in queue {
        let start = Start::New {
            parent: parent.clone(),
            jumped_from: None,
            run_time: args.run_time.clone(),
            gate: args.scheduled,
        };
        status = runner.chain(plan, params, start, args.format);
        if status != exit::OK {
            break;
        }
    }
    status
}

/// The workspace database of a workspace path: `.wvflow/workspace.db` in its folder.
pub(super) fn default_db(path: &Path) -> PathBuf {
    let root = if path.is_dir() {
        path.to_path_buf()
    } else {
        path.parent().map(Path::to_path_buf).unwrap_or_default()
    };
    let root = if root.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        root
    };
    root.join(".wvflow").join("workspace.db")
}

/// How a run begins: new (started by the command line, a `call` or a jump) or resumed.
pub(super) enum Start {
    New {
        /// The run and stage whose `call` started this run.
        parent: Option<(String, String)>,
        /// The run whose jump (`->`) started this run.
        jumped_from: Option<String>,
        /// The logical time (a schedule window); default: now.
        run_time: Option<String>,
        /// Check `depends on` first, as the scheduler does.
        gate: bool,
    },
    Resume {
        run: Box<RunRow>,
        /// Stages that already succeeded, in the order they finished.
        resumed: Vec<crate::runtime::engine::StageSummary>,
    },
}

impl Runner<'_> {
    /// Runs `plan`, then the runs its jumps start, printing each summary.
    pub(super) fn chain(
        &self,
        plan: crate::plan::Plan,
        params: BTreeMap<String, Value>,
        start: Start,
        format: Format,
    ) -> u8 {
        let runner = self;
        let mut next = Some((plan, params, start));
        let mut depth = 0;
        let mut status = exit::OK;
        let mut printed: Vec<serde_json::Value> = Vec::new();
        let status = loop {
            let Some((plan, params, start)) = next.take() else {
                break status;
            };
            let summary =
                match runner.execute_with(&plan, params, runner.cancel.clone(), true, start) {
                    Ok(s) => s,
                    Err(e) => {
                        eprintln!("error: {e}");
                        break exit::USAGE;
                    }
                };
            match format {
                // One JSON document: the runs the jumps started go in the first run's
                // `next_runs`, in the order they ran.
                Format::Json => printed.push(serde_json::to_value(&summary).unwrap_or_default()),
                Format::Text => out!("{}", table(&summary)),
            }
            status = if summary.state == RunState::Success {
                exit::OK
            } else {
                exit::PROBLEMS
            };
            if let Some(jump) = summary.next.first() {
                depth += 1;
                if depth > crate::plan::ir::CHAIN_DEPTH {
                    eprintln!(
                        "error: jump chain stopped after {} runs (the depth limit)",
                        crate::plan::ir::CHAIN_DEPTH
                    );
                    break exit::PROBLEMS;
                }
                match runner.prepare(jump) {
                    Ok((plan, params)) => {
                        let start = Start::New {
                            parent: None,
                            jumped_from: Some(summary.run_id.clone()),
                            run_time: None,
                            gate: false,
                        };
                        next = Some((plan, params, start))
                    }
                    Err(e) => {
                        eprintln!("error: {e}");
                        break exit::PROBLEMS;
                    }
                }
            }
        };
        if let Some(mut first) = (!printed.is_empty()).then(|| printed.remove(0)) {
            if !printed.is_empty() {
                first["next_runs"] = serde_json::Value::Array(printed);
            }
            outln!(
                "{}",
                serde_json::to_string_pretty(&first).unwrap_or_default()
            );
        }
        status
    }
}

/// Runs flows of one workspace: the run asked for, its jumps, and its child runs.
pub(super) struct Runner<'w> {
    /// The workspace as given on the command line (for child runs in a process of their own).
    path: PathBuf,
    workspace: &'w Workspace,
    index: &'w Index<'w>,
    db: PathBuf,
    max_parallel: Option<usize>,
    random: SeededRandom,
    cancel: Arc<AtomicBool>,
    live: Option<super::progress::Live>,
    /// How deep each run of this process is nested in `call`s: the depth limit holds there.
    depths: std::sync::Mutex<BTreeMap<String, usize>>,
}

impl<'w> Runner<'w> {
    pub(super) fn new(
        path: PathBuf,
        workspace: &'w Workspace,
        index: &'w Index<'w>,
        db: PathBuf,
        max_parallel: Option<usize>,
    ) -> Self {
        Runner {
            path,
            workspace,
            index,
            db,
            max_parallel,
            random: SeededRandom::from_time(),
            cancel: crate::runtime::cancel::on_ctrl_c(),
            live: super::progress::Live::on_terminal(),
            depths: Default::default(),
        }
    }
}

impl Runner<'_> {
    /// The plan of a jump's or child's flow with its parameters bound.
    fn prepare(
        &self,
        target: &Jump,
    ) -> Result<(crate::plan::Plan, BTreeMap<String, Value>), String> {
        let def = self
            .index
            .flow(&target.flow, target.version)
            .ok_or_else(|| format!("no flow `{}`", target.flow))?;
        let plan = lower(self.workspace, self.index, def);
        let args: CallArgs = target
            .args
            .iter()
            .map(|(k, v)| (Some(k.clone()), v.clone()))
            .collect();
        let params = bind_params(&plan, &args)?;
        Ok((plan, params))
    }

    /// Runs one flow run, recorded in the run store from its claim to its end. `Err` when
    /// it could not start: the run store or the run's database is unusable.
    fn execute_with(
        &self,
        plan: &crate::plan::Plan,
        args: BTreeMap<String, Value>,
        cancel: Arc<AtomicBool>,
        compensate_on_cancel: bool,
        start: Start,
    ) -> Result<Summary, String> {
        let runs_folder = self.db.parent().unwrap_or(Path::new(".")).join("runs");
        let (run_id, run_time, run_db, journal, resumed) = match start {
            Start::New {
                parent,
                jumped_from,
                run_time,
                gate,
            } => {
                let run_id = new_run_id();
                if let Ok(mut depths) = self.depths.lock() {
                    let depth = parent
                        .as_ref()
                        .map_or(0, |(p, _)| depths.get(p).map_or(0, |d| d + 1));
                    depths.insert(run_id.clone(), depth);
                }
                // A scheduled run for a given window runs once per window.
                let once_per_window = gate && run_time.is_some();
                let run_time = run_time.unwrap_or_else(|| run_time_text(utc_now()));
                let run_db = runs_folder.join(format!("{run_id}.db"));
                // Absolute, so that the run can be resumed from another folder.
                let (workspace, run_db_text) = (absolute(&self.path), absolute(&run_db));
                let new = NewRun {
                    run_id: &run_id,
                    plan,
                    args: &args,
                    run_time: &run_time,
                    workspace: &workspace.to_string_lossy(),
                    run_db: &run_db_text.to_string_lossy(),
                    parent: parent.as_ref().map(|(r, s)| (r.as_str(), s.as_str())),
                    jumped_from: jumped_from.as_deref(),
                    gate,
                    once_per_window,
                    skip: None,
                };
                let (journal, claim) = Journal::create(&self.db, &new, cancel.clone())?;
                if let Claim::Skipped { reason } = claim {
                    eprintln!("run {run_id} of flow {} skipped: {reason}", plan.flow.name);
                    return Ok(Summary {
                        run_id,
                        flow: plan.flow.name.clone(),
                        state: RunState::Skipped,
                        stages: Vec::new(),
                        compensations: Vec::new(),
                        next: Vec::new(),
                    });
                }
                (run_id, run_time, run_db, journal, Vec::new())
            }
            Start::Resume { run, resumed } => {
                let run = *run;
                let journal = Journal::reclaim(&self.db, &run.run_id, cancel.clone())?;
                (
                    run.run_id,
                    run.run_time,
                    PathBuf::from(run.run_db),
                    journal,
                    resumed,
                )
            }
        };
        let params = run_params(args, &run_time, &run_id, zone_of(plan));
        let folder = Path::new(&plan.flow.origin.file)
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let folder = if folder.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            folder
        };
        let stores = StoreConfig {
            run_db,
            workspace_db: self.db.clone(),
            base: folder.clone(),
        };
        // Opening the store once up front reports a bad database before any stage starts.
        if let Err(e) = stores.connect() {
            journal.abort(&e);
            return Err(e);
        }
        let paused = Arc::new(AtomicBool::new(false));
        let watch = Watch::start(
            self.db.clone(),
            run_id.clone(),
            cancel.clone(),
            paused.clone(),
        );
        let _watch = match watch {
            Ok(watch) => watch,
            Err(e) => {
                journal.abort(&e);
                return Err(e);
            }
        };
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let max_parallel = self
            .max_parallel
            .or(plan.flow.max_parallel.map(|n| n as usize))
            .unwrap_or(cores);
        let mut observers: Vec<&dyn Progress> = vec![&journal];
        if let Some(live) = &self.live {
            observers.push(live);
        }
        let progress = Tee(observers);
        let ctx = Context {
            clock: &SystemClock::default(),
            random: &self.random,
            launcher: &ProcessLauncher,
            cwd: folder,
            run_id,
            flow: plan.flow.name.clone(),
            params,
            cancel,
            flows: Some(self),
            jumps: Default::default(),
            progress: Some(&progress),
            compensate_on_cancel,
            paused,
            resumed,
        };
        let mut summary = execute(plan, &stores, &ctx, max_parallel);
        // A run the store could not record was stopped for that reason: it failed.
        if journal.lost().is_some() {
            summary.state = RunState::Failed;
        }
        journal.finish(&summary);
        for outcome in hooks::fire(plan, &summary, &ctx.params, &ProcessLauncher, &ctx.cwd) {
            if let Some(error) = &outcome.error {
                eprintln!(
                    "warning: hook {} ({}) of run {} failed: {error}",
                    outcome.event, outcome.target, summary.run_id
                );
            }
            journal.hook(&outcome);
        }
        if plan.flow.keep_runs.is_some() {
            let rules = Retention {
                flow: Some(plan.flow.name.clone()),
                older_than_ms: None,
                stale: false,
                keep_runs: true,
            };
            let cleaned = crate::runtime::runs::schema::open(&self.db)
                .and_then(|mut conn| catalog::clean(&mut conn, &rules));
            if let Err(e) = cleaned {
                eprintln!(
                    "warning: keep_runs: cannot remove old runs of `{}`: {e}",
                    plan.flow.name
                );
                journal.retention_failed(&e);
            }
        }
        Ok(summary)
    }
}

impl FlowRunner for Runner<'_> {
    fn run_child(
        &self,
        target: &Jump,
        parent: (&str, &str),
        cancel: Arc<AtomicBool>,
        parent_close: &str,
        timeout: Option<Duration>,
    ) -> Result<Summary, String> {
        let started = Instant::now();
        let stop =
            || cancel.load(Ordering::Relaxed) || timeout.is_some_and(|t| started.elapsed() >= t);
        let why = || {
            if cancel.load(Ordering::Relaxed) {
                "the parent stage was cancelled".to_string()
            } else {
                "the parent stage timed out".to_string()
            }
        };
        let depth = self
            .depths
            .lock()
            .map_or(0, |d| d.get(parent.0).copied().unwrap_or(0));
        if depth + 1 >= crate::plan::ir::CHAIN_DEPTH {
            return Err(format!(
                "child run of `{}` not started: {} runs are nested already (the depth limit); do the flows `call` each other in a loop?",
                target.flow,
                crate::plan::ir::CHAIN_DEPTH
            ));
        }
        if parent_close == "abandon" {
            return self.run_abandonable(target, parent, stop, why);
        }
        let (plan, params) = self.prepare(target)?;
        let child_cancel = Arc::new(AtomicBool::new(false));
        let compensate = parent_close == "request_cancel";
        std::thread::scope(|scope| {
            let start = Start::New {
                parent: Some((parent.0.to_string(), parent.1.to_string())),
                jumped_from: None,
                run_time: None,
                gate: false,
            };
            let child = scope.spawn(|| {
                self.execute_with(&plan, params, child_cancel.clone(), compensate, start)
            });
            while !child.is_finished() {
                if stop() {
                    child_cancel.store(true, Ordering::SeqCst);
                    let summary = child
                        .join()
                        .map_err(|_| "the child run panicked".to_string())??;
                    return Err(format!(
                        "{}: child run {} {}",
                        why(),
                        summary.run_id,
                        if compensate {
                            "cancelled"
                        } else {
                            "terminated"
                        }
                    ));
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            child
                .join()
                .map_err(|_| "the child run panicked".to_string())?
        })
    }
}

impl Runner<'_> {
    /// `parent_close: abandon`: the child runs as a process of its own (its own process group,
    /// so Ctrl-C in the terminal does not reach it), which outlives the parent stage.
    fn run_abandonable(
        &self,
        target: &Jump,
        parent: (&str, &str),
        stop: impl Fn() -> bool,
        why: impl Fn() -> String,
    ) -> Result<Summary, String> {
        let call = flow_call_text(target);
        let mut child = RunProcess::spawn(
            [
                self.path.as_os_str(),
                call.as_ref(),
                "--db".as_ref(),
                self.db.as_os_str(),
                "--parent".as_ref(),
                parent.0.as_ref(),
                parent.1.as_ref(),
            ],
            std::process::Stdio::null(),
        )
        .map_err(|e| format!("cannot start the child run: {e}"))?;
        loop {
            if child.finished() {
                let summary = child.summary();
                return Ok(Summary {
                    run_id: summary["run_id"].as_str().unwrap_or_default().to_string(),
                    flow: target.flow.clone(),
                    state: serde_json::from_value(summary["state"].clone())
                        .unwrap_or(RunState::Failed),
                    stages: Vec::new(),
                    compensations: Vec::new(),
                    next: Vec::new(),
                });
            }
            if stop() {
                return Err(format!(
                    "{}: child run of `{}` (process {}) left running (parent_close: abandon)",
                    why(),
                    target.flow,
                    child.child.id()
                ));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// A `wvflow run` in a process of its own: its own process group, so Ctrl-C in the terminal
/// reaches only the process that started it, which decides. Its stdout (the JSON summary) is
/// read as it comes, so a run that prints much never blocks on a full pipe.
pub(super) struct RunProcess {
    pub child: std::process::Child,
    output: std::thread::JoinHandle<String>,
}

impl RunProcess {
    /// `wvflow run ARGS... --format json`, its stderr to `stderr`.
    pub(super) fn spawn<'a>(
        args: impl IntoIterator<Item = &'a std::ffi::OsStr>,
        stderr: std::process::Stdio,
    ) -> Result<RunProcess, String> {
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let mut command = std::process::Command::new(exe);
        command
            .arg("run")
            .args(args)
            .args(["--format", "json"])
            .stdout(std::process::Stdio::piped())
            .stderr(stderr);
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let mut child = command.spawn().map_err(|e| e.to_string())?;
        let mut stdout = child.stdout.take().ok_or("no stdout")?;
        let output = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = std::io::Read::read_to_string(&mut stdout, &mut text);
            text
        });
        Ok(RunProcess { child, output })
    }

    pub(super) fn finished(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    /// The first summary the run printed; `Null` when it printed none (it could not start).
    pub(super) fn summary(self) -> serde_json::Value {
        let text = self.output.join().unwrap_or_default();
        serde_json::Deserializer::from_str(&text)
            .into_iter()
            .next()
            .and_then(Result::ok)
            .unwrap_or_default()
    }
}

/// `Name@v(arg = literal, ...)` for a command line.
fn flow_call_text(target: &Jump) -> String {
    let version = target
        .version
        .map(|v| format!("@version({v})"))
        .unwrap_or_default();
    let args: Vec<String> = target
        .args
        .iter()
        .map(|(k, v)| {
            let value = match v {
                Value::Null => "null".to_string(),
                Value::Integer(n) => n.to_string(),
                Value::Real(x) => format!("{x:?}"),
                Value::Text(t) => format!("'{}'", t.replace('\\', "\\\\").replace('\'', "\\'")),
                Value::Blob(b) => format!("'{}'", String::from_utf8_lossy(b)),
            };
            format!("{k} = {value}")
        })
        .collect();
    format!("{}{version}({})", target.flow, args.join(", "))
}

/// Arguments of a flow call: positional (no name) or named, as values.
type CallArgs = Vec<(Option<String>, Value)>;

/// `Name` or `Name(arg = value, ...)`, read with the language's own parser.
/// `Name@2` is short for `Name @version(2)`, for every command that takes a flow.
pub(super) fn parse_call(text: Option<&str>) -> Result<(Option<String>, CallArgs), String> {
    let Some(text) = text else {
        return Ok((None, Vec::new()));
    };
    let long = match text.split_once('@') {
        Some((name, rest)) if rest.starts_with(|c: char| c.is_ascii_digit()) => {
            let digits = rest.chars().take_while(char::is_ascii_digit).count();
            format!("{name}@version({}){}", &rest[..digits], &rest[digits..])
        }
        _ => text.to_string(),
    };
    let parsed = crate::syntax::parse(&format!("run flow {long}"), crate::source::FileId(0));
    let call = match (parsed.diagnostics.first(), parsed.ast.items.as_slice()) {
        (None, [Item::Run(run)]) => &run.call,
        (Some(d), _) => return Err(format!("cannot read the flow call `{text}`: {}", d.message)),
        _ => return Err(format!("cannot read the flow call `{text}`")),
    };
    let mut name = call.name.name.to_string();
    if let Some(v) = &call.version {
        name.push_str(&format!("@{}", v.value));
    }
    Ok((Some(name), call_args(call)?))
}

/// The literal arguments of a flow call.
fn call_args(call: &crate::syntax::ast::FlowCall) -> Result<CallArgs, String> {
    let mut args = Vec::new();
    for arg in call.args.as_deref().unwrap_or_default() {
        let value = match &arg.value.kind {
            ExprKind::Int(n) => Value::Integer(*n),
            ExprKind::Float(x) => Value::Real(*x),
            ExprKind::Str(s) => Value::Text(s.to_string()),
            ExprKind::Bool(b) => Value::Integer(*b as i64),
            ExprKind::Duration { millis, .. } => Value::Integer(*millis as i64),
            ExprKind::Null => Value::Null,
            _ => {
                return Err(format!(
                    "arguments of `{}` must be literals, such as 42, 'text' or 30s",
                    call.name.name
                ));
            }
        };
        args.push((arg.name.as_ref().map(|n| n.name.to_string()), value));
    }
    Ok(args)
}

/// Binds call arguments to the flow's parameters: positional, then named, then defaults.
pub(super) fn bind_params(
    plan: &crate::plan::Plan,
    args: &[(Option<String>, Value)],
) -> Result<BTreeMap<String, Value>, String> {
    let params = &plan.flow.params;
    let mut bound = BTreeMap::new();
    for (i, (name, value)) in args.iter().enumerate() {
        let param = match name {
            Some(n) => params
                .iter()
                .find(|p| &p.name == n)
                .ok_or_else(|| format!("flow `{}` has no parameter `{n}`", plan.flow.name))?,
            None => params.get(i).ok_or_else(|| {
                format!(
                    "flow `{}` takes {} arguments, {} given",
                    plan.flow.name,
                    params.len(),
                    args.len()
                )
            })?,
        };
        let value = stored(value.clone(), ValueType::from_name(&param.ty)).map_err(|expected| {
            format!(
                "argument `{}` of flow `{}` must be {expected}",
                param.name, plan.flow.name
            )
        })?;
        if bound.insert(param.name.clone(), value).is_some() {
            return Err(format!("argument `{}` is given twice", param.name));
        }
    }
    for p in params {
        if !bound.contains_key(&p.name) {
            let default = p.default.as_ref().ok_or_else(|| {
                format!(
                    "flow `{}` needs an argument for `{}`",
                    plan.flow.name, p.name
                )
            })?;
            let value = stored(from_json(default), ValueType::from_name(&p.ty))
                .unwrap_or_else(|_| from_json(default));
            bound.insert(p.name.clone(), value);
        }
    }
    Ok(bound)
}

/// The per-stage table printed after a run.
pub(super) fn table(summary: &Summary) -> String {
    table_as(summary, summary.state.as_str())
}

/// [`table`], with the run's state as shown (`running (stale)`).
pub(super) fn table_as(summary: &Summary, state: &str) -> String {
    let mut out = format!(
        "run {} of flow {}: {state}\n\n",
        summary.run_id, summary.flow
    );
    let width = summary
        .stages
        .iter()
        .map(|s| s.stage.len())
        .max()
        .unwrap_or(5)
        .max(5);
    out.push_str(&format!(
        "{:width$}  {:9} {:>8} {:>6} {:>9}  error\n",
        "stage", "state", "attempts", "rows", "duration"
    ));
    for s in &summary.stages {
        let error = s
            .error
            .as_deref()
            .unwrap_or("")
            .lines()
            .last()
            .unwrap_or("");
        out.push_str(&format!(
            "{:width$}  {:9} {:>8} {:>6} {:>7}ms  {error}\n",
            s.stage, s.state, s.attempts, s.rows, s.duration_ms
        ));
    }
    if !summary.compensations.is_empty() {
        out.push_str("\ncompensations:\n");
        for c in &summary.compensations {
            out.push_str(&format!(
                "  {} ({}): {} after {} attempt(s){}\n",
                c.stage,
                c.activity,
                c.state,
                c.attempts,
                c.error
                    .as_deref()
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default()
            ));
        }
    }
    out
}

/// `--run-time`: an RFC 3339 time, or a date (midnight UTC), as the run's `run_time` text.
fn parse_run_time(text: &str) -> Result<String, String> {
    let at = chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&chrono::Utc))
        .or_else(|_| {
            chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
                .map(|d| d.and_time(chrono::NaiveTime::MIN).and_utc())
        })
        .map_err(|_| {
            format!(
                "`{text}` is not a time such as 2026-01-31T02:00:00Z or a date such as 2026-01-31"
            )
        })?;
    Ok(crate::runtime::schedule::run_time_text(at))
}
