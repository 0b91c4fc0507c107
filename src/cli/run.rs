//! `wvflow run PATH [FLOW_CALL] [--format text|json] [--db FILE]`
//!
//! Semantics and decisions: `docs/runtime.md`.

use super::exit;
use super::plan::{choose_flow, compile};
use crate::check::Index;
use crate::plan::lower;
use crate::runtime::activity::ProcessLauncher;
use crate::runtime::clock::SystemClock;
use crate::runtime::engine::{Context, FlowRunner, Jump, Summary, execute};
use crate::runtime::retry::SeededRandom;
use crate::runtime::store::{StoreConfig, from_json};
use crate::syntax::ast::{ExprKind, Item};
use crate::workspace::Workspace;
use clap::{Args, ValueEnum};
use rusqlite::types::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
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
    let root = if args.path.is_dir() {
        args.path.clone()
    } else {
        args.path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default()
    };
    let root = if root.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        root
    };
    let runner = Runner {
        path: args.path.clone(),
        workspace: &workspace,
        index: &index,
        db: args
            .db
            .clone()
            .unwrap_or_else(|| root.join(".wvflow").join("workspace.db")),
        max_parallel: args.max_parallel,
        random: SeededRandom::from_time(),
        cancel: crate::runtime::cancel::on_ctrl_c(),
        live: super::progress::Live::on_terminal(),
    };
    // Each run, then the runs its jumps start, up to a depth limit; a failed run stops the rest.
    let mut status = exit::OK;
    for first in queue {
        status = runner.chain(first, args.format);
        if status != exit::OK {
            break;
        }
    }
    status
}

impl Runner<'_> {
    fn chain(&self, first: (crate::plan::Plan, BTreeMap<String, Value>), format: Format) -> u8 {
        let runner = self;
        let mut next = Some(first);
        let mut depth = 0;
        let mut status = exit::OK;
        while let Some((plan, params)) = next.take() {
            let summary = match runner.execute(&plan, params, runner.cancel.clone()) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("error: {e}");
                    return exit::PROBLEMS;
                }
            };
            match format {
                Format::Json => println!(
                    "{}",
                    serde_json::to_string_pretty(&summary).unwrap_or_default()
                ),
                Format::Text => print!("{}", table(&summary)),
            }
            status = if summary.state == "success" {
                exit::OK
            } else {
                exit::PROBLEMS
            };
            if let Some(jump) = summary.next.first() {
                depth += 1;
                if depth > JUMP_DEPTH {
                    eprintln!(
                        "error: jump chain stopped after {JUMP_DEPTH} runs (the depth limit)"
                    );
                    return exit::PROBLEMS;
                }
                match runner.prepare(jump) {
                    Ok(prepared) => next = Some(prepared),
                    Err(e) => {
                        eprintln!("error: {e}");
                        return exit::PROBLEMS;
                    }
                }
            }
        }
        status
    }
}

/// How many runs a chain of jumps (`-> F`) may start before wvflow stops it.
const JUMP_DEPTH: usize = 16;

/// Runs flows of one workspace: the run asked for, its jumps, and its child runs.
struct Runner<'w> {
    /// The workspace as given on the command line (for child runs in a process of their own).
    path: PathBuf,
    workspace: &'w Workspace,
    index: &'w Index<'w>,
    db: PathBuf,
    max_parallel: Option<usize>,
    random: SeededRandom,
    cancel: Arc<AtomicBool>,
    live: Option<super::progress::Live>,
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

    fn execute(
        &self,
        plan: &crate::plan::Plan,
        params: BTreeMap<String, Value>,
        cancel: Arc<AtomicBool>,
    ) -> Result<Summary, String> {
        self.execute_with(plan, params, cancel, true)
    }

    fn execute_with(
        &self,
        plan: &crate::plan::Plan,
        mut params: BTreeMap<String, Value>,
        cancel: Arc<AtomicBool>,
        compensate_on_cancel: bool,
    ) -> Result<Summary, String> {
        let now = chrono::DateTime::<chrono::Utc>::from(std::time::SystemTime::now());
        params.insert(
            "run_time".into(),
            Value::Text(now.format("%Y-%m-%dT%H:%M:%SZ").to_string()),
        );
        params.insert(
            "run_date".into(),
            Value::Text(now.format("%Y-%m-%d").to_string()),
        );
        static RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let run_id = format!(
            "{}-{}-{}",
            now.format("%Y%m%dT%H%M%S"),
            std::process::id(),
            RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
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
            run_db: self
                .db
                .parent()
                .unwrap_or(Path::new("."))
                .join("runs")
                .join(format!("{run_id}.db")),
            workspace_db: self.db.clone(),
            base: folder.clone(),
        };
        // Opening the store once up front reports a bad database path before any stage starts.
        stores.connect()?;
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let max_parallel = self
            .max_parallel
            .or(plan.flow.max_parallel.map(|n| n as usize))
            .unwrap_or(cores);
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
            progress: self
                .live
                .as_ref()
                .map(|l| l as &dyn crate::runtime::engine::Progress),
            compensate_on_cancel,
        };
        Ok(execute(plan, &stores, &ctx, max_parallel))
    }
}

impl FlowRunner for Runner<'_> {
    fn run_child(
        &self,
        target: &Jump,
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
        if parent_close == "abandon" {
            return self.run_abandonable(target, stop, why);
        }
        let (plan, params) = self.prepare(target)?;
        let child_cancel = Arc::new(AtomicBool::new(false));
        let compensate = parent_close == "request_cancel";
        std::thread::scope(|scope| {
            let child =
                scope.spawn(|| self.execute_with(&plan, params, child_cancel.clone(), compensate));
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
        stop: impl Fn() -> bool,
        why: impl Fn() -> String,
    ) -> Result<Summary, String> {
        let call = flow_call_text(target);
        let exe =
            std::env::current_exe().map_err(|e| format!("cannot start the child run: {e}"))?;
        let mut command = std::process::Command::new(exe);
        command
            .arg("run")
            .arg(&self.path)
            .arg(&call)
            .arg("--format")
            .arg("json")
            .arg("--db")
            .arg(&self.db);
        command
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null());
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let mut child = command
            .spawn()
            .map_err(|e| format!("cannot start the child run: {e}"))?;
        loop {
            if let Ok(Some(_)) = child.try_wait() {
                let mut out = String::new();
                if let Some(mut stdout) = child.stdout.take() {
                    let _ = std::io::Read::read_to_string(&mut stdout, &mut out);
                }
                let summary: serde_json::Value = serde_json::Deserializer::from_str(&out)
                    .into_iter()
                    .next()
                    .and_then(Result::ok)
                    .unwrap_or_default();
                return Ok(Summary {
                    run_id: summary["run_id"].as_str().unwrap_or_default().to_string(),
                    flow: target.flow.clone(),
                    state: summary["state"].as_str().unwrap_or("failed").to_string(),
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
                    child.id()
                ));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
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
fn parse_call(text: Option<&str>) -> Result<(Option<String>, CallArgs), String> {
    let Some(text) = text else {
        return Ok((None, Vec::new()));
    };
    let parsed = crate::syntax::parse(&format!("run flow {text}"), crate::source::FileId(0));
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
fn bind_params(
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
        if let Some(expected) = type_mismatch(&param.ty, value) {
            return Err(format!(
                "argument `{}` of flow `{}` must be {expected}",
                param.name, plan.flow.name
            ));
        }
        if bound.insert(param.name.clone(), value.clone()).is_some() {
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
            bound.insert(p.name.clone(), from_json(default));
        }
    }
    Ok(bound)
}

/// What a value should have been for a parameter of type `ty`, if it is not.
fn type_mismatch(ty: &str, value: &Value) -> Option<&'static str> {
    let text = match value {
        Value::Text(t) => Some(t.as_str()),
        _ => None,
    };
    let ok = match ty {
        _ if *value == Value::Null => true,
        "int" => matches!(value, Value::Integer(_)),
        "float" => matches!(value, Value::Integer(_) | Value::Real(_)),
        "boolean" => matches!(value, Value::Integer(0 | 1)),
        "string" => text.is_some(),
        "duration" => {
            matches!(value, Value::Integer(_))
                || text.is_some_and(|t| humantime::parse_duration(t).is_ok())
        }
        "date" => text.is_some_and(|t| chrono::NaiveDate::parse_from_str(t, "%Y-%m-%d").is_ok()),
        "timestamp" => text.is_some_and(|t| {
            chrono::DateTime::parse_from_rfc3339(t).is_ok()
                || chrono::NaiveDateTime::parse_from_str(t, "%Y-%m-%d %H:%M:%S").is_ok()
                || chrono::NaiveDate::parse_from_str(t, "%Y-%m-%d").is_ok()
        }),
        _ => true,
    };
    (!ok).then_some(match ty {
        "int" => "a whole number",
        "float" => "a number",
        "boolean" => "true or false",
        "string" => "a string",
        "duration" => "a duration such as 30s",
        "date" => "a date 'YYYY-MM-DD'",
        _ => "a timestamp 'YYYY-MM-DD HH:MM:SS'",
    })
}

/// The per-stage table printed after a run.
fn table(summary: &Summary) -> String {
    let mut out = format!(
        "run {} of flow {}: {}\n\n",
        summary.run_id, summary.flow, summary.state
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
