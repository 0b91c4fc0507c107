//! `wvflow run PATH [FLOW_CALL] [--format text|json] [--db FILE]`
//!
//! Semantics and decisions: `docs/runtime.md`.

use crate::cli::Failure;
use super::exit;
use super::progress::Live;
use crate::runtime::engine::{Progress, Summary};
use crate::runtime::state::RunState;
use super::plan::plan_of;
use crate::runtime::flow_call::{bind_json_args, bind_params, call_args, parse_call};
use crate::runtime::launch::{ChainEnd, Runner, Start, default_db};
use crate::session::Flows;
use clap::{Args, ValueEnum};
use rusqlite::types::Value;
use std::collections::BTreeMap;
use std::path::PathBuf;

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
    /// The flow's arguments as a JSON object (`{"city": "Oslo", "pause": "90s"}`), instead of
    /// `Name(arg = value)`: what programs that start runs pass.
    #[arg(long)]
    args: Option<String>,
    /// The workspace database (default: `.wvflow/workspace.db` beside the workspace).
    #[arg(long)]
    db: Option<PathBuf>,
    /// Stages of the run executing at once (default: the flow's `max_parallel`, else the
    /// number of cores).
    #[arg(long)]
    max_parallel: Option<usize>,
    /// The run's logical time (`run_time`, RFC 3339, UTC), as the scheduler and backfill set
    /// it; default: now.
    #[arg(long, value_parser = crate::runtime::schedule::parse_run_time)]
    run_time: Option<String>,
    /// Start as the scheduler does: a flow whose `depends on` is unmet is recorded as skipped.
    #[arg(long)]
    scheduled: bool,
    /// The run and stage that started this run with `call` (`parent_close: abandon`).
    #[arg(long, hide = true, num_args = 2, value_names = ["RUN_ID", "STAGE"])]
    parent: Option<Vec<String>>,
}

pub fn run(args: RunArgs) -> u8 {
    let session = super::plan::load(&args.path);
    let Some(flows) = session.flows() else {
        return exit::USAGE;
    };
    let (name, given) = match parse_call(args.flow_call.as_deref()) {
        Ok(call) => call,
        Err(e) => {
            errln!("error: {e}");
            return exit::USAGE;
        }
    };
    let index = flows.index();
    let mut queue = Vec::new();
    if args.args.is_some() && name.is_none() && !index.runs.is_empty() {
        errln!("error: --args needs the flow's name");
        return exit::USAGE;
    }
    if name.is_none() && !index.runs.is_empty() {
        // `run flow` statements run in file order.
        for run in &index.runs {
            let call = &run.node.call;
            let prepared = call_args(call).map_err(Failure::from).and_then(|args| {
                let plan = flows
                    .plan(&call.name.name, call.version.as_ref().map(|v| v.value))
                    .ok_or_else(|| format!("no flow `{}`", call.name.name))?;
                let params = bind_params(&plan, &args)?;
                Ok((plan, params))
            });
            match prepared {
                Ok(p) => queue.push(p),
                Err(e) => {
                    errln!("error: {e}");
                    return exit::USAGE;
                }
            }
        }
    } else {
        let plan = match plan_of(&flows, name.as_deref()) {
            Ok(plan) => plan,
            Err(e) => {
                errln!("error: {e}");
                return exit::USAGE;
            }
        };
        let bound = match &args.args {
            None => bind_params(&plan, &given).map_err(Failure::from),
            Some(_) if !given.is_empty() => Err(
                "give the arguments either as `Name(arg = value)` or with --args, not both".into(),
            ),
            Some(json) => serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(json)
                .map_err(|e| Failure::from(format!("--args is not a JSON object: {e}")))
                .and_then(|given| Ok(bind_json_args(&plan, &given)?)),
        };
        match bound {
            Ok(params) => queue.push((plan, params)),
            Err(e) => {
                errln!("error: {e}");
                return exit::USAGE;
            }
        }
    }
    let db = args.db.clone().unwrap_or_else(|| default_db(&args.path));
    let live = Live::on_terminal();
    let runner = runner(&flows, db, &live).max_parallel(args.max_parallel);
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
            continued_from: None,
            run_time: args.run_time.clone(),
            gate: args.scheduled,
        };
        status = print_chain(&runner, plan, params, start, args.format);
        if status != exit::OK {
            break;
        }
    }
    status
}

/// A runner for the command line: Ctrl-C and SIGTERM cancel, progress on a terminal.
pub(super) fn runner<'w>(flows: &'w Flows<'w>, db: PathBuf, live: &'w Option<Live>) -> Runner<'w> {
    Runner::new(flows, db)
        .cancel(crate::runtime::cancel::on_ctrl_c())
        .observer(live.as_ref().map(|l| l as &(dyn Progress + Sync)))
}

/// Runs `plan` and the runs its jumps start, printing each summary: a table as each run
/// ends, or one JSON document at the end (the runs the jumps started in the first run's
/// `next_runs`, in the order they ran). The exit status.
pub(super) fn print_chain(
    runner: &Runner,
    plan: crate::plan::Plan,
    params: BTreeMap<String, Value>,
    start: Start,
    format: Format,
) -> u8 {
    let mut printed: Vec<serde_json::Value> = Vec::new();
    let end = runner.chain(plan, params, start, &mut |summary| match format {
        // A run that another continues is one line; the JSON document is the last one's.
        _ if summary.state == RunState::Continued => {
            if format == Format::Text {
                outln!(
                    "run {} of flow {}: continued as a new run (`continue_as_new`)",
                    summary.run_id,
                    summary.flow
                );
            }
        }
        Format::Json => printed.push(serde_json::to_value(summary).unwrap_or_default()),
        Format::Text => out!("{}", table(summary)),
    });
    if let Some(mut first) = (!printed.is_empty()).then(|| printed.remove(0)) {
        if !printed.is_empty() {
            first["next_runs"] = serde_json::Value::Array(printed);
        }
        outln!(
            "{}",
            serde_json::to_string_pretty(&first).unwrap_or_default()
        );
    }
    match end {
        ChainEnd::Succeeded => exit::OK,
        ChainEnd::Failed => exit::PROBLEMS,
        ChainEnd::Stopped(e) => {
            errln!("error: {e}");
            exit::PROBLEMS
        }
        ChainEnd::NotStarted(e) => {
            errln!("error: {e}");
            exit::USAGE
        }
    }
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
    // A stage whose rows came from an earlier run's idempotency key says so in its state.
    let shown_state = |s: &crate::runtime::engine::StageSummary| {
        if s.reused {
            format!("{} (reused)", s.state)
        } else {
            s.state.to_string()
        }
    };
    let state_width = summary
        .stages
        .iter()
        .map(|s| shown_state(s).len())
        .max()
        .unwrap_or(9)
        .max(9);
    out.push_str(&format!(
        "{:width$}  {:state_width$} {:>8} {:>6} {:>9}  error\n",
        "stage", "state", "attempts", "rows", "duration"
    ));
    for s in &summary.stages {
        let error = s.error_text().unwrap_or_default();
        let error = error
            .lines()
            .last()
            .unwrap_or("");
        // Errors quote what programs wrote: escaped, so they cannot drive the terminal.
        let error = crate::terminal::escape_controls(error);
        out.push_str(&format!(
            "{:width$}  {:state_width$} {:>8} {:>6} {:>7}ms  {error}\n",
            s.stage,
            shown_state(s),
            s.attempts,
            s.rows,
            s.duration_ms
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
                    .map(|e| format!(": {}", crate::terminal::escape_controls(e)))
                    .unwrap_or_default()
            ));
        }
    }
    out
}
