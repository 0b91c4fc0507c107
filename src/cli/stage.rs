//! `wvflow stage init | run | prepare | item | gather | finish`: what the tasks of an exported flow run. Exit statuses
//! are the engine's: 0 success, 99 skipped, 98 failed for good (not to be retried), anything
//! else a failure the engine may retry. Semantics: `docs/export.md`.

use crate::cli::Failure;
use super::exit;
use crate::plan::Plan;
use crate::runtime::engine::StageSummary;
use crate::runtime::tasks::state::Location;
use crate::runtime::tasks::{Prepared, SystemMeans, TaskEnd, TaskRun};
use clap::{Args, Subcommand};
use std::path::PathBuf;

#[derive(Args)]
pub struct StageArgs {
    #[command(subcommand)]
    command: StageCommand,
}

/// What every task names: the plan, the shared state and the run.
#[derive(Args)]
struct Common {
    /// The flow's plan (`wvflow plan PATH FLOW --format json`), as JSON or base64; needed by
    /// `init`, which keeps it in the state for the tasks after it.
    #[arg(long)]
    plan: Option<PathBuf>,
    /// The state location the engine's workers share: a folder, file:///path or s3://bucket/prefix.
    #[arg(long)]
    state: String,
    /// The engine's id of the run.
    #[arg(long)]
    run_id: String,
    /// The flow (`Name`, or `Name@2`), to find the plan `init` kept, when --plan is not given.
    #[arg(long)]
    flow: Option<String>,
    /// Where activities run and relative paths resolve: the folder of the flow's .wv file.
    #[arg(long, default_value = ".")]
    cwd: PathBuf,
    /// The engine's first try of this task since it last cleared it (Airflow: `max_tries -
    /// retries + 1`): a stage's or run's end recorded under an earlier one is decided again.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    first_try: u32,
}

#[derive(Subcommand)]
enum StageCommand {
    /// Record the run's arguments and run time: the first task of a run.
    Init {
        #[command(flatten)]
        common: Common,
        /// The arguments, as a JSON object (`{"city": "Oslo", "limit": 10}`).
        #[arg(long, default_value = "{}")]
        args: String,
        /// One argument as NAME=TEXT, typed by the flow's parameter (repeatable; after --args).
        #[arg(long = "arg")]
        arg: Vec<String>,
        /// The run's logical time (RFC 3339, UTC); default: now.
        #[arg(long)]
        run_time: Option<String>,
        /// How many jumps (`-> F`) led to this run; default: `wvflow_depth` in --args, else 0.
        #[arg(long)]
        depth: Option<u32>,
    },
    /// Run one stage once its upstream stages have ended (99: its trigger did not hold).
    Run {
        stage: String,
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        tries: Tries,
    },
    /// A stage whose `each` items are tasks of their own, first: decide it, run the steps
    /// before its `each`, and print the items' indices as a JSON list (the only line on
    /// stdout) for the engine to map over.
    Prepare {
        stage: String,
        #[command(flatten)]
        common: Common,
        /// Print the number of items instead of their list (for Argo's `withSequence`).
        #[arg(long)]
        count: bool,
        /// Fail the stage when it has more items than this: the engine's limit of mapped
        /// tasks.
        #[arg(long)]
        max_items: Option<usize>,
    },
    /// One item of a prepared `each` (exit 1: try again; 98: the item failed for good).
    Item {
        stage: String,
        /// The item, from 0.
        #[arg(long)]
        item: usize,
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        tries: Tries,
    },
    /// A prepared `each`'s items together, then the stage's steps after it: its end.
    Gather {
        stage: String,
        #[command(flatten)]
        common: Common,
    },
    /// Decide the run's state, compensate a failed run, fire the hooks: the last task.
    Finish {
        #[command(flatten)]
        common: Common,
    },
    /// After `finish`: the run a jump (`-> F`) starts, as a JSON list of what the engine
    /// starts (empty when the run failed or reached no jump).
    Next {
        #[command(flatten)]
        common: Common,
        /// The engine whose form to print.
        #[arg(long, value_enum)]
        engine: EngineArg,
        /// What the engine calls a target flow: REF=ID, REF as the jump names it (`Name`,
        /// `Name@2`), ID the DAG id (Airflow) or WorkflowTemplate (Argo). Repeatable.
        #[arg(long = "to")]
        to: Vec<String>,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum EngineArg {
    Airflow,
    Argo,
}

/// How the engine tries a task that makes an activity call (`run`, `item`).
#[derive(Args)]
struct Tries {
    /// The engine's try of this task, from 1: the attempt a task the engine retries makes
    /// (exit 1: try again; 98: failed for good).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    attempt: u32,
    /// Retry inside this task, as `wvflow run` does, rather than one attempt a try (for a
    /// backoff the engine cannot express).
    #[arg(long)]
    retries_here: bool,
}

pub fn run(args: StageArgs) -> u8 {
    match execute(args.command) {
        Ok(status) => status,
        Err(e) => {
            errln!("error: {e}");
            // Not the engine's 98: a task that could not even start may succeed when retried.
            exit::PROBLEMS
        }
    }
}

fn execute(command: StageCommand) -> Result<u8, Failure> {
    let common = common_of(&command);
    let state = Location::parse(&common.state)?;
    let plan = crate::plan::tasks::engine_holds_pools(load_plan(common, &command, &state)?);
    let limits = crate::export::limits(&plan);
    if !limits.is_empty() {
        return Err(format!(
            "flow `{}` cannot run as separate tasks:\n  {}",
            plan.flow.name,
            limits.join("\n  ")
        )
        .into());
    }
    let system = SystemMeans::default();
    let task = TaskRun {
        plan: &plan,
        state,
        run_id: common.run_id.clone(),
        cwd: common.cwd.clone(),
        cancel: crate::runtime::cancel::on_ctrl_c(),
        engine_retries: !matches!(
            &command,
            StageCommand::Run { tries, .. } | StageCommand::Item { tries, .. } if tries.retries_here
        ),
        reporter: &super::report::Stderr,
        means: system.means(),
        first_try: common.first_try,
    };
    match &command {
        StageCommand::Init {
            args,
            arg,
            run_time,
            depth,
            ..
        } => init(&task, args, arg, (run_time.as_deref(), *depth)),
        StageCommand::Run { stage, tries, .. } => {
            let (end, summary) = task.run_stage(stage, tries.attempt)?;
            Ok(print_stage_end(end, &summary))
        }
        StageCommand::Prepare {
            stage,
            count,
            max_items,
            ..
        } => prepare(&task, stage, *count, *max_items),
        StageCommand::Item {
            stage, item, tries, ..
        } => {
            let (end, error) = task.item(stage, *item, tries.attempt)?;
            if let Some(error) = error {
                errln!("stage {stage}, item {item}: failed: {error}");
            }
            Ok(end.exit_code())
        }
        StageCommand::Gather { stage, .. } => {
            let (end, summary) = task.gather(stage)?;
            Ok(print_stage_end(end, &summary))
        }
        StageCommand::Finish { .. } => finish(&task),
        StageCommand::Next { engine, to, .. } => next(&task, *engine, to),
    }
}

fn common_of(command: &StageCommand) -> &Common {
    match command {
        StageCommand::Init { common, .. }
        | StageCommand::Run { common, .. }
        | StageCommand::Prepare { common, .. }
        | StageCommand::Item { common, .. }
        | StageCommand::Gather { common, .. }
        | StageCommand::Finish { common }
        | StageCommand::Next { common, .. } => common,
    }
}

/// The plan: from --plan, or the one `init` kept in the state.
fn load_plan(common: &Common, command: &StageCommand, state: &Location) -> Result<Plan, Failure> {
    match (&common.plan, command) {
        (Some(path), _) => Ok(read_plan_file(path)?),
        (None, StageCommand::Init { .. }) => Err("`init` needs --plan".into()),
        (None, _) => {
            let flow = common
                .flow
                .as_deref()
                .ok_or("which flow? give --flow NAME (or --plan FILE)")?;
            plan_in_state(state, flow, &common.run_id)
        }
    }
}

/// The plan that `init` kept in the state for run `run_id` of `flow` (`Name` or `Name@2`).
pub(super) fn plan_in_state(state: &Location, flow: &str, run_id: &str) -> Result<Plan, Failure> {
    let key = crate::runtime::tasks::state::plan_key(flow, run_id);
    let bytes = state.read(&key)?.ok_or_else(|| -> Failure {
        format!(
            "no run `{run_id}` of flow `{flow}` in the state ({key} is missing: the run's \
             `wvflow stage init` has not run)"
        )
        .into()
    })?;
    read_plan(&bytes, &key)
}

/// The plan at `path`, if it is the one the DAG names.
fn read_plan_file(path: &std::path::Path) -> Result<Plan, Failure> {
    let bytes =
        std::fs::read(path).map_err(|e| format!("cannot read the plan {}: {e}", path.display()))?;
    // An exported DAG names the digest of the plan it carries: a file that is not
    // that plan (put in place by someone else) is never run.
    if let Ok(expected) = std::env::var("WVFLOW_PLAN_SHA256") {
        let found = crate::export::sha256_hex(&bytes);
        if !found.eq_ignore_ascii_case(expected.trim()) {
            return Err(format!(
                "{} is not the plan of this DAG (its SHA-256 is {found}, the DAG's {expected}); export the flow again",
                path.display()
            ).into());
        }
    }
    read_plan(&bytes, &path.display().to_string())
}

/// `init`: the run's arguments (`--args`, then each `--arg`), run time and depth in a chain
/// of jumps.
fn init(
    task: &TaskRun,
    args: &str,
    arg: &[String],
    (run_time, depth): (Option<&str>, Option<u32>),
) -> Result<u8, Failure> {
    let plan = task.plan;
    let mut given: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(args).map_err(|e| format!("--args is not a JSON object: {e}"))?;
    // An engine's run started by a jump carries its depth beside the arguments (Airflow's
    // `conf`); no parameter has that name (export refuses `wvflow_` names).
    let carried = given.remove(crate::export::starts::AIRFLOW_DEPTH);
    let depth = match (depth, carried) {
        (Some(depth), _) => depth,
        (None, Some(value)) => value
            .as_u64()
            .and_then(|d| u32::try_from(d).ok())
            .ok_or_else(|| {
                format!(
                    "--args: `{}` must be a count, not {value}",
                    crate::export::starts::AIRFLOW_DEPTH
                )
            })?,
        (None, None) => 0,
    };
    // An `--arg` wins over the same name in `--args`.
    let texts = crate::runtime::tasks::text_args(plan, arg)?;
    let mut all = crate::runtime::flow_call::json_args(plan, &given)?;
    all.retain(|(name, _)| !texts.iter().any(|(given, _)| given == name));
    all.extend(texts);
    let bound = crate::runtime::flow_call::bind_params(plan, &all)?;
    let run_time = run_time
        .map(crate::runtime::schedule::parse_run_time)
        .transpose()?;
    task.init(&bound, run_time, depth)?;
    Ok(exit::OK)
}

/// `next`: the run to start after this one, in the engine's form, as the only line on
/// stdout; a chain past the depth limit fails for good.
fn next(task: &TaskRun, engine: EngineArg, to: &[String]) -> Result<u8, Failure> {
    let mut ids = std::collections::BTreeMap::new();
    for pair in to {
        let (reference, id) = pair
            .split_once('=')
            .ok_or_else(|| format!("--to {pair}: expected REF=ID"))?;
        ids.insert(reference.to_string(), id.to_string());
    }
    let next = match task.next_run() {
        Ok(next) => next,
        Err(e @ crate::runtime::tasks::NextError::DepthLimit { .. }) => {
            errln!("error: {e}");
            return Ok(TaskEnd::Failed.exit_code());
        }
        Err(crate::runtime::tasks::NextError::Task(e)) => return Err(e.into()),
    };
    let starts: Vec<serde_json::Value> = match next {
        None => Vec::new(),
        Some(run) => {
            let id = ids.get(&run.reference()).ok_or_else(|| {
                format!(
                    "the run jumps to `{}`, which no --to names",
                    run.reference()
                )
            })?;
            vec![match engine {
                EngineArg::Airflow => crate::export::airflow_trigger(&run, id),
                EngineArg::Argo => crate::export::argo_workflow_of_template(&run, id)?,
            }]
        }
    };
    outln!("{}", serde_json::Value::Array(starts));
    Ok(exit::OK)
}

/// `prepare`: the items of the stage's `each`, printed for the engine.
fn prepare(
    task: &TaskRun,
    stage: &str,
    count: bool,
    max_items: Option<usize>,
) -> Result<u8, Failure> {
    let (end, prepared) = task.prepare(stage, max_items)?;
    let items = match prepared {
        Prepared::Items(n) => n,
        Prepared::Ended(summary) => {
            if let Some(error) = &summary.error {
                errln!("stage {stage}: {}: {error}", summary.state);
            }
            0
        }
    };
    // The only line on stdout: what the engine maps over.
    if count {
        outln!("{items}");
    } else {
        let indices: Vec<usize> = (0..items).collect();
        outln!("{}", serde_json::to_string(&indices).unwrap_or_default());
    }
    Ok(end.exit_code())
}

/// `finish`: the run's summary, and whether it succeeded.
fn finish(task: &TaskRun) -> Result<u8, Failure> {
    let summary = task.finish()?;
    outln!(
        "{}",
        serde_json::to_string_pretty(&summary).unwrap_or_default()
    );
    Ok(
        if summary.state == crate::runtime::state::RunState::Success {
            TaskEnd::Success.exit_code()
        } else {
            TaskEnd::Failed.exit_code()
        },
    )
}

/// A plan: JSON as `wvflow plan --format json` writes it, or that in base64.
fn read_plan(bytes: &[u8], name: &str) -> Result<Plan, Failure> {
    use base64::Engine as _;
    let decoded;
    let json = if bytes.trim_ascii_start().starts_with(b"{") {
        bytes
    } else {
        let text: Vec<u8> = bytes
            .iter()
            .copied()
            .filter(|b| !b.is_ascii_whitespace())
            .collect();
        decoded = base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(|e| format!("{name} is neither JSON nor base64: {e}"))?;
        &decoded[..]
    };
    serde_json::from_slice(json).map_err(|e| format!("{name} is not a wvflow plan: {e}").into())
}

/// A stage task's end: its summary as JSON on stdout, its error on stderr; its exit status.
fn print_stage_end(end: TaskEnd, summary: &StageSummary) -> u8 {
    outln!("{}", serde_json::to_string(summary).unwrap_or_default());
    if let Some(error) = &summary.error {
        errln!("stage {}: {}: {error}", summary.stage, summary.state);
    }
    end.exit_code()
}
