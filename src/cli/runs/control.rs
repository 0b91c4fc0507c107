//! `wvflow runs resume | cancel | signal | query | clean`.

use crate::cli::Failure;
use super::{Format, find_run, open};
use crate::cli::exit;
use crate::cli::progress::Live;
use crate::cli::report::Stderr;
use crate::cli::run::{print_chain, runner};
use crate::runtime::launch::Start;
use crate::runtime::state::RunState;
use crate::runtime::runs::catalog::{self, Retention, ShownState};
use crate::runtime::runs::{journal, run_params};
use crate::runtime::store::{StoreConfig, from_json};
use crate::value::{ValueType, stored};
use crate::session::Session;
use clap::Args;
use rusqlite::types::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Args)]
pub struct CancelArgs {
    run_id: String,
    #[command(flatten)]
    exported: Exported,
}

#[derive(Args)]
pub struct ResumeArgs {
    run_id: String,
    #[arg(long, value_enum, default_value_t = crate::cli::run::Format::Text)]
    format: crate::cli::run::Format,
}

#[derive(Args)]
pub struct SignalArgs {
    run_id: String,
    /// A signal the flow declares, or `pause` / `resume`.
    name: String,
    /// A value of the signal's type (`true`, `42`, `2s`, `2026-01-31`, `"text"`, `null`).
    /// Default: true.
    value: Option<String>,
    #[command(flatten)]
    exported: Exported,
}

#[derive(Args)]
pub struct QueryArgs {
    run_id: String,
    name: String,
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    #[command(flatten)]
    exported: Exported,
}

/// A run exported to another engine: its state, instead of the workspace's run store.
#[derive(Args)]
pub struct Exported {
    /// The state of an exported run, as its tasks were given it (a folder, or
    /// `s3://bucket/prefix`).
    #[arg(long, requires = "flow")]
    state: Option<String>,
    /// The exported run's flow (`Name`, or `Name@2`); the run id is the engine's.
    #[arg(long, requires = "state")]
    flow: Option<String>,
}

impl CancelArgs {
    pub fn is_exported(&self) -> bool {
        self.exported.state.is_some()
    }
}

impl SignalArgs {
    pub fn is_exported(&self) -> bool {
        self.exported.state.is_some()
    }
}

impl QueryArgs {
    pub fn is_exported(&self) -> bool {
        self.exported.state.is_some()
    }
}

#[derive(Args)]
pub struct CleanArgs {
    /// Also remove finished runs that ended longer ago than this (`7d`, `12h`).
    #[arg(long, value_parser = humantime::parse_duration)]
    older_than: Option<std::time::Duration>,
    /// Also remove runs whose owner is gone (`running (stale)`).
    #[arg(long)]
    stale: bool,
}

pub fn resume(db: &Path, args: ResumeArgs) -> Result<u8, Failure> {
    let conn = open(db)?;
    let run = find_run(&conn, db, &args.run_id)?;
    let plan = catalog::plan_of(&conn, &run.run_id)?;
    // A run that ended to continue as a new run, which its process did not get to start
    // (it was killed in between), goes on in that new run now.
    let continuation = run.state == RunState::Continued;
    if continuation
        && let Some(next) = catalog::related(&conn, &run.run_id, "continued_from")?.first()
    {
        return Err(format!(
            "run {} was continued as run {}: resume that one if it stopped (`wvflow runs resume {}`)",
            run.run_id, next.run_id, next.run_id
        )
        .into());
    }
    let stages = catalog::stages(&conn, &run.run_id)?;
    // What makes the run impossible to resume is said first, before the workspace is
    // loaded and checked (its warnings would bury it) and before anything runs.
    let from = if continuation {
        crate::runtime::runs::ResumePoint::default()
    } else {
        crate::runtime::runs::resume_point(&conn, &run, &plan, stages)?
    };
    // Child runs the dead owner left in flight are over: their stages run again under the
    // resumed parent, as new children.
    for child in catalog::related(&conn, &run.run_id, "parent_run")? {
        if child.is_stale() {
            journal::request(db, &child.run_id, journal::Request::Cancel)?;
        }
    }
    drop(conn);
    // Child runs and jumps need the workspace as it is now; the run itself keeps its plan.
    let path = PathBuf::from(&run.workspace);
    let session = Session::load(&path, &Stderr);
    if let Some(e) = session.load_errors().first() {
        return Err(format!("cannot load the run's workspace: {e}").into());
    }
    let Some(flows) = session.flows() else {
        return Err(format!(
            "the run's workspace {} no longer compiles; fix it to resume",
            path.display()
        ).into());
    };
    let live = Live::on_terminal();
    let runner = runner(&flows, db.to_path_buf(), &live);
    let args_values = args_of(&run, &plan);
    let start = if continuation {
        Start::New {
            parent: None,
            jumped_from: None,
            continued_from: Some(run.run_id),
            run_time: None,
            gate: false,
        }
    } else {
        Start::Resume {
            run: Box::new(run),
            resumed: from.stages,
            compensated: from.compensated,
            cancelled: from.cancelled,
        }
    };
    Ok(print_chain(&runner, plan, args_values, start, args.format))
}

/// `cancel` of an exported run: recorded in its state, for its tasks to act on.
pub fn cancel_exported(args: CancelArgs) -> Result<u8, Failure> {
    with_exported_run(&args.exported, &args.run_id, |task| Ok(task.request_cancel()?))?;
    outln!(
        "run {} is cancelling: its running stages stop within a second, no other stage \
         starts, and its `finish` task ends it cancelled after its compensations",
        args.run_id
    );
    Ok(exit::OK)
}

pub fn cancel(db: &Path, args: CancelArgs) -> Result<u8, Failure> {
    match journal::request(db, &args.run_id, journal::Request::Cancel)? {
        ShownState::Stale => outln!(
            "run {} had no live owner; recorded as cancelled",
            args.run_id
        ),
        _ => {
            let seen = journal::cancel_seen(db, &args.run_id, std::time::Duration::from_secs(5))?;
            if seen {
                outln!(
                    "run {} is cancelling: no new stage or item starts; its running attempts are being stopped",
                    args.run_id
                );
            } else {
                outln!(
                    "cancel requested for run {}; its owner has not confirmed it within 5 s (it acts on it at its next look at the run store)",
                    args.run_id
                );
            }
        }
    }
    Ok(exit::OK)
}

pub fn signal(db: &Path, args: SignalArgs) -> Result<u8, Failure> {
    let given = args
        .value
        .as_deref()
        .map(crate::runtime::runs::SignalInput::Text);
    let sent = crate::runtime::runs::send_signal(db, &args.run_id, &args.name, given)
        .map_err(|e| e.to_string())?;
    Ok(said_sent(&args, &sent))
}

/// The line that says what was sent, as it could be typed again.
fn said_sent(args: &SignalArgs, sent: &crate::value::Typed) -> u8 {
    outln!(
        "signal {} = {} sent to run {}",
        args.name,
        sent.literal(),
        args.run_id
    );
    exit::OK
}

/// `signal` to an exported run: recorded in its state, for its tasks to read.
pub fn signal_exported(args: SignalArgs) -> Result<u8, Failure> {
    let given = args
        .value
        .as_deref()
        .map(crate::runtime::runs::SignalInput::Text);
    let sent = with_exported_run(&args.exported, &args.run_id, |task| {
        Ok(task.send_signal(&args.name, given)?)
    })?;
    Ok(said_sent(&args, &sent))
}

/// `query` of an exported run, over the signals and stage records in its state.
pub fn query_exported(args: QueryArgs) -> Result<u8, Failure> {
    let found = with_exported_run(&args.exported, &args.run_id, |task| Ok(task.query(&args.name)?))?;
    print_value(args.format, &found.value, found.ty);
    Ok(exit::OK)
}

/// Runs `what` on the exported run `run_id` of `exported`'s state and flow.
fn with_exported_run<T>(
    exported: &Exported,
    run_id: &str,
    what: impl FnOnce(&crate::runtime::tasks::TaskRun) -> Result<T, Failure>,
) -> Result<T, Failure> {
    let (Some(state), Some(flow)) = (&exported.state, &exported.flow) else {
        return Err("an exported run needs --state and --flow".into());
    };
    let state = crate::runtime::tasks::state::Location::parse(state)?;
    let plan = crate::cli::stage::plan_in_state(&state, flow, run_id)?;
    let system = crate::runtime::tasks::SystemMeans::default();
    let task = crate::runtime::tasks::TaskRun {
        plan: &plan,
        state,
        run_id: run_id.to_string(),
        cwd: PathBuf::from("."),
        cancel: Default::default(),
        engine_retries: true,
        reporter: &Stderr,
        means: system.means(),
        first_try: 1,
    };
    what(&task)
}

/// A query's value in its type's form: `true`, `90s`, not the stored `1`, `90000`.
fn print_value(format: Format, value: &Value, ty: ValueType) {
    match (format, value) {
        (Format::Json, _) => outln!("{}", crate::value::json(value, ty)),
        (Format::Text, Value::Null) => outln!("null"),
        (Format::Text, _) => outln!("{}", crate::value::text(value, ty)),
    }
}

pub fn query(db: &Path, args: QueryArgs) -> Result<u8, Failure> {
    let (run, plan) = run_and_plan(db, &args.run_id)?;
    let Some(query) = plan.flow.queries.iter().find(|q| q.name == args.name) else {
        let known: Vec<&str> = plan.flow.queries.iter().map(|q| q.name.as_str()).collect();
        return Err(format!(
            "flow `{}` declares no query `{}`{}",
            plan.flow.name,
            args.name,
            if known.is_empty() {
                String::new()
            } else {
                format!(" (it has: {})", known.join(", "))
            }
        ).into());
    };
    let params = run_params(
        args_of(&run, &plan),
        &run.run_time,
        &run.run_id,
        crate::runtime::runs::zone_of(&plan),
    );
    let base = Path::new(&plan.flow.origin.file)
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let stores = StoreConfig {
        workspace_db: db.to_path_buf(),
        run_db: PathBuf::from(&run.run_db),
        base,
    };
    let mut store = stores.connect()?;
    let rows = store.query(&format!("SELECT {}", query.sql.text), &params, None)?;
    let value = rows
        .values
        .first()
        .and_then(|r| r.first())
        .cloned()
        .unwrap_or(Value::Null);
    print_value(args.format, &value, query.ty);
    Ok(exit::OK)
}

pub fn clean(db: &Path, args: CleanArgs) -> Result<u8, Failure> {
    let mut conn = open(db)?;
    let rules = Retention {
        flow: None,
        older_than_ms: args.older_than.map(|d| d.as_millis() as i64),
        stale: args.stale,
        keep_runs: true,
    };
    let removed = catalog::clean(&mut conn, &rules)?;
    outln!("removed {} run(s)", removed.len());
    for id in &removed {
        outln!("  {id}");
    }
    Ok(exit::OK)
}

/// A run's arguments as values, each in the stored form of its parameter's type (the run
/// store keeps them as their JSON: `true`, `"90s"`).
fn args_of(run: &catalog::RunRow, plan: &crate::plan::Plan) -> BTreeMap<String, Value> {
    run.args
        .iter()
        .map(|(k, v)| {
            let value = from_json(v);
            let ty = plan
                .flow
                .params
                .iter()
                .find(|p| &p.name == k)
                .map_or(ValueType::Any, |p| p.ty);
            (k.clone(), stored(value.clone(), ty).unwrap_or(value))
        })
        .collect()
}

/// A run that must exist, and the plan it started with.
fn run_and_plan(db: &Path, run_id: &str) -> Result<(catalog::RunRow, crate::plan::Plan), Failure> {
    let conn = open(db)?;
    let run = find_run(&conn, db, run_id)?;
    let plan = catalog::plan_of(&conn, run_id)?;
    Ok((run, plan))
}
