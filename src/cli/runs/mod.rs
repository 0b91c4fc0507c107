//! `wvflow runs list | show | rows | logs | resume | cancel | signal | query | clean`: the run store from
//! the command line. Semantics: `docs/runs.md`.

mod control;
mod show;

use crate::cli::Failure;
use super::exit;
use crate::runtime::runs::schema;
use clap::{Args, Subcommand, ValueEnum};
use std::path::{Path, PathBuf};

#[derive(Args)]
pub struct RunsArgs {
    /// The workspace database (default: `.wvflow/workspace.db` of `--workspace`, else of the
    /// current folder or the nearest folder above it that has one).
    #[arg(long, global = true)]
    db: Option<PathBuf>,
    /// A workspace (a .wv file or a folder), as given to `wvflow run`.
    #[arg(long, short = 'w', global = true)]
    workspace: Option<PathBuf>,
    #[command(subcommand)]
    command: RunsCommand,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
}

#[derive(Subcommand)]
enum RunsCommand {
    /// Runs, newest first.
    List(show::ListArgs),
    /// One run: arguments, stages with their attempts, compensations, child runs and jumps.
    Show(show::ShowArgs),
    /// The rows a stage of a run produced (`--format table|json|ndjson|csv`, `--limit N`).
    Rows(show::RowsArgs),
    /// What attempts wrote: stderr, and stdout lines that are not rows (`--follow`).
    Logs(show::LogsArgs),
    /// Continue a failed, cancelled or stale run from its first stages that did not succeed.
    Resume(control::ResumeArgs),
    /// Cancel a running run from another process (an exported run: with --state and --flow).
    Cancel(control::CancelArgs),
    /// Send a signal the flow declares (`signal NAME = ...`), or `pause` / `resume` (an exported
    /// run: with --state and --flow).
    Signal(control::SignalArgs),
    /// Evaluate a query the flow declares (`query NAME = ...`) over the run's state (an
    /// exported run: with --state and --flow).
    Query(control::QueryArgs),
    /// Remove finished runs with their stage tables, past each flow's `keep_runs`.
    Clean(control::CleanArgs),
}

pub fn run(args: RunsArgs) -> u8 {
    // An exported run's state is not the workspace's run store.
    match args.command {
        RunsCommand::Cancel(a) if a.is_exported() => finish(control::cancel_exported(a)),
        RunsCommand::Signal(a) if a.is_exported() => finish(control::signal_exported(a)),
        RunsCommand::Query(a) if a.is_exported() => finish(control::query_exported(a)),
        command => in_run_store(args.db, args.workspace, command),
    }
}

/// A command on the workspace's run store.
fn in_run_store(db: Option<PathBuf>, workspace: Option<PathBuf>, command: RunsCommand) -> u8 {
    let db = match locate(db, workspace) {
        Ok(db) => db,
        Err(e) => {
            errln!("error: {e}");
            return exit::USAGE;
        }
    };
    let result = match command {
        RunsCommand::List(a) => show::list(&db, a),
        RunsCommand::Show(a) => show::show(&db, a),
        RunsCommand::Rows(a) => show::rows(&db, a),
        RunsCommand::Logs(a) => show::logs(&db, a),
        RunsCommand::Resume(a) => control::resume(&db, a),
        RunsCommand::Cancel(a) => control::cancel(&db, a),
        RunsCommand::Signal(a) => control::signal(&db, a),
        RunsCommand::Query(a) => control::query(&db, a),
        RunsCommand::Clean(a) => control::clean(&db, a),
    };
    finish(result)
}

/// The exit status of a command, its error said.
fn finish(result: Result<u8, Failure>) -> u8 {
    match result {
        Ok(status) => status,
        Err(e) => {
            errln!("error: {e}");
            exit::USAGE
        }
    }
}

/// The workspace database to read: given, of a workspace, or found from the current folder up.
fn locate(db: Option<PathBuf>, workspace: Option<PathBuf>) -> Result<PathBuf, Failure> {
    let found = match (db, workspace) {
        (Some(db), _) => db,
        (None, Some(workspace)) => crate::runtime::launch::default_db(&workspace),
        (None, None) => {
            let here = std::env::current_dir().map_err(|e| e.to_string())?;
            here.ancestors()
                .map(|folder| folder.join(".wvflow").join("workspace.db"))
                .find(|db| db.is_file())
                .ok_or("no run store here: pass --workspace PATH (as given to `wvflow run`) or --db FILE")?
        }
    };
    if !found.is_file() {
        return Err(format!("no run store at {}", found.display()).into());
    }
    Ok(found)
}

/// The database, opened for the run store.
fn open(db: &Path) -> Result<rusqlite::Connection, Failure> {
    Ok(schema::open(db)?)
}

/// A run that must exist.
fn find_run(
    conn: &rusqlite::Connection,
    db: &Path,
    run_id: &str,
) -> Result<crate::runtime::runs::catalog::RunRow, Failure> {
    crate::runtime::runs::catalog::run_in(conn, run_id)?
        .ok_or_else(|| format!("no run `{run_id}` in {}", db.display()).into())
}
