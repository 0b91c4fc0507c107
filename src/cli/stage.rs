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
        /// How deep this run is nested in child runs (`call F`); default: `wvflow_nesting` in
        /// --args, else 0.
        #[arg(long)]
        nesting: Option<u32>,
        /// The run whose call started this one, FLOW/RUN_ID (empty: none); default:
        /// `wvflow_parent` in --args.
        #[arg(long)]
        parent: Option<String>,
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
        /// For a stage that calls a flow: print its child runs in this engine's form instead.
        #[arg(long, value_enum)]
        engine: Option<EngineArg>,
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
    /// One check of a prepared stage's `wait until`: exit 0 once the wait is over (its end
    /// recorded for `gather`), 3 while its condition does not hold yet.
    Poll {
        stage: String,
        #[command(flatten)]
        common: Common,
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
            nesting,
            parent,
            ..
        } => {
            let lineage = (*depth, *nesting, parent.clone());
            init(&task, (args, arg), run_time.as_deref(), lineage)
        }
        StageCommand::Run { stage, tries, .. } => {
            let (end, summary) = task.run_stage(stage, tries.attempt)?;
            Ok(print_stage_end(end, &summary))
        }
        StageCommand::Prepare {
            stage,
            count,
            max_items,
            engine,
            ..
        } => prepare(&task, stage, (*count, *max_items), *engine),
        StageCommand::Item {
            stage, item, tries, ..
        } => {
            let (end, error) = task.item(stage, *item, tries.attempt)?;
            if let Some(error) = error {
                errln!("stage {stage}, item {item}: failed: {error}");
            }
            Ok(end.exit_code())
        }
        StageCommand::Poll { stage, .. } => Ok(match task.poll(stage)? {
            crate::runtime::tasks::Polled::Over => exit::OK,
            crate::runtime::tasks::Polled::NotYet => NOT_YET,
        }),
        StageCommand::Gather { stage, .. } => {
            let (end, summary) = task.gather(stage)?;
            Ok(print_stage_end(end, &summary))
        }
        StageCommand::Finish { .. } => finish(&task),
        StageCommand::Next { engine, .. } => next(&task, *engine),
    }
}

fn common_of(command: &StageCommand) -> &Common {
    match command {
        StageCommand::Init { common, .. }
        | StageCommand::Run { common, .. }
        | StageCommand::Prepare { common, .. }
        | StageCommand::Item { common, .. }
        | StageCommand::Gather { common, .. }
        | StageCommand::Poll { common, .. }
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

/// `init`: the run's arguments (`--args`, then each `--arg`), run time and lineage (how
/// many jumps led to it, how deep it is nested in child runs).
fn init(
    task: &TaskRun,
    (args, arg): (&str, &[String]),
    run_time: Option<&str>,
    (depth, nesting, parent): (Option<u32>, Option<u32>, Option<String>),
) -> Result<u8, Failure> {
    use crate::export::Started;
    let plan = task.plan;
    let mut given: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(args).map_err(|e| format!("--args is not a JSON object: {e}"))?;
    // A run an engine started for a jump or a call carries its count beside the arguments
    // (Airflow's `conf`); no parameter has that name (export refuses `wvflow_` names).
    let mut carried = |given_here: Option<u32>, why: Started| -> Result<u32, Failure> {
        let key = why.airflow_key();
        match (given_here, given.remove(key)) {
            (Some(n), _) => Ok(n),
            (None, Some(value)) => value
                .as_u64()
                .and_then(|d| u32::try_from(d).ok())
                .ok_or_else(|| format!("--args: `{key}` must be a count, not {value}").into()),
            (None, None) => Ok(0),
        }
    };
    let depth = carried(depth, Started::Jump)?;
    let nesting = carried(nesting, Started::Child)?;
    let carried_parent = given.remove(crate::export::starts::AIRFLOW_PARENT);
    let parent = parent
        .or_else(|| carried_parent.and_then(|p| p.as_str().map(str::to_string)))
        .filter(|p| !p.is_empty());
    let lineage = crate::runtime::tasks::Lineage {
        depth,
        nesting,
        parent,
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
    task.init(&bound, run_time, lineage)?;
    Ok(exit::OK)
}

/// `next`: the run to start after this one, in the engine's form, as the only line on
/// stdout; a chain past the depth limit fails for good.
fn next(task: &TaskRun, engine: EngineArg) -> Result<u8, Failure> {
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
            let key = run.reference();
            vec![match engine {
                EngineArg::Airflow => {
                    crate::export::airflow_trigger(&run, &key, crate::export::Started::Jump)
                }
                EngineArg::Argo => crate::export::argo_workflow_of_template(&run, &key)?,
            }]
        }
    };
    outln!("{}", serde_json::Value::Array(starts));
    Ok(exit::OK)
}

/// `prepare`: the items of the stage's `each`, or its child runs in the engine's form,
/// printed for the engine.
fn prepare(
    task: &TaskRun,
    stage: &str,
    (count, max_items): (bool, Option<usize>),
    engine: Option<EngineArg>,
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
    if let Some(engine) = engine {
        let (key, children) = if items == 0 {
            (String::new(), Vec::new())
        } else {
            task.children(stage)?
        };
        let mut starts = Vec::new();
        for (item, child) in children.iter().enumerate() {
            starts.push(match engine {
                EngineArg::Airflow => {
                    crate::export::airflow_trigger(child, &key, crate::export::Started::Child)
                }
                EngineArg::Argo => match crate::export::argo_child(child, item) {
                    Ok(start) => start,
                    // The engine cannot carry it: the stage fails for good, saying why.
                    Err(why) => {
                        let (end, summary) = task.refuse_children(stage, why)?;
                        outln!("[]");
                        return Ok(print_refusal(end, &summary));
                    }
                },
            });
        }
        outln!("{}", serde_json::Value::Array(starts));
    } else if count {
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

/// `poll`'s exit status while a wait's condition does not hold yet.
const NOT_YET: u8 = 3;

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

/// A stage that ended at its `prepare`: its error on stderr; its exit status.
fn print_refusal(end: TaskEnd, summary: &StageSummary) -> u8 {
    if let Some(error) = &summary.error {
        errln!("stage {}: {}: {error}", summary.stage, summary.state);
    }
    end.exit_code()
}

/// A stage task's end: its summary as JSON on stdout, its error on stderr; its exit status.
fn print_stage_end(end: TaskEnd, summary: &StageSummary) -> u8 {
    outln!("{}", serde_json::to_string(summary).unwrap_or_default());
    if let Some(error) = &summary.error {
        errln!("stage {}: {}: {error}", summary.stage, summary.state);
    }
    end.exit_code()
}
