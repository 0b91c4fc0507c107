//! The command line: argument parsing and dispatch to one module per command.

/// `print!` that ends quietly at a closed pipe (`wvflow runs list | head -1`): the output
/// stops, the command goes on to its own exit status.
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::terminal::write_stdout(format_args!($($arg)*))
    };
}

/// `println!` that ends quietly at a closed pipe.
macro_rules! outln {
    () => {
        $crate::terminal::write_stdout(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::terminal::write_stdout(format_args!("{}\n", format_args!($($arg)*)))
    };
}

mod backfill;
mod check;
mod completions;
mod explain;
mod export;
mod fmt;
mod man;
mod plan;
mod progress;
mod report;
mod run;
mod runs;
mod schedule;
mod stage;
mod test;
mod ui;

/// Why a command could not do what it was asked, whichever part of wvflow says so: made text
/// only when the command prints it.
pub(crate) type Failure = Box<dyn std::error::Error>;

use clap::{CommandFactory, Parser, Subcommand};
use std::process::ExitCode;

/// Exit statuses (README.md, docs/runtime.md).
pub mod exit {
    pub const OK: u8 = 0;
    pub const PROBLEMS: u8 = 1;
    pub const USAGE: u8 = 2;
}

#[derive(Parser)]
#[command(
    name = "wvflow",
    version,
    about = "Compile, check and run wvlet-style flows"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check .wv files (or every .wv file below a folder) and report problems.
    Check(check::CheckArgs),
    /// Show the execution plan of a flow: stages, dependencies, triggers, retries, SQL.
    Plan(plan::PlanArgs),
    /// Run a flow locally on the embedded SQLite database.
    Run(run::RunArgs),
    /// Run the `test` items of .wv files: mocked activities, virtual time (docs/testing.md).
    Test(test::TestArgs),
    /// The run store: list, show, resume, cancel, signal, query and clean runs.
    Runs(runs::RunsArgs),
    /// The scheduler: start flows on their schedules and when the runs they name end.
    Schedule(schedule::ScheduleArgs),
    /// One run per schedule window of a flow, oldest first, stopping at the first failure.
    Backfill(backfill::BackfillArgs),
    /// Rewrite .wv files in the canonical layout (`--check`: only list those that differ).
    Fmt(fmt::FmtArgs),
    /// The Language Server (stdio), for editors: diagnostics, hover, navigation, completion,
    /// symbols, formatting, rename.
    Lsp,
    /// Explain a diagnostic code (with an example and its fix) or a configuration key.
    Explain(explain::ExplainArgs),
    /// A flow as an Airflow DAG or an Argo Workflow whose tasks run `wvflow stage`.
    Export(export::ExportArgs),
    /// What the tasks of an exported flow run: `init`, `run STAGE`, `finish` (docs/export.md).
    Stage(stage::StageArgs),
    /// A local web dashboard of the workspace's runs and flows (127.0.0.1, with a token).
    Ui(ui::UiArgs),
    /// Print the shell completion script for bash, zsh, fish, elvish or powershell.
    Completions(completions::CompletionsArgs),
    /// Print the manual page, wvflow(1), or a command's, in roff (`--out-dir`: write them all).
    Man(man::ManArgs),
}

/// The whole command line as clap describes it: what completions and the man page are
/// made from.
fn command() -> clap::Command {
    Cli::command()
}

pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            // clap's --help and --version are successes; everything else is a usage error.
            return ExitCode::from(if e.use_stderr() {
                exit::USAGE
            } else {
                exit::OK
            });
        }
    };
    let status = match cli.command {
        Command::Check(args) => check::run(args),
        Command::Plan(args) => plan::run(args),
        Command::Run(args) => run::run(args),
        Command::Test(args) => test::run(args),
        Command::Runs(args) => runs::run(args),
        Command::Schedule(args) => schedule::run(args),
        Command::Backfill(args) => backfill::run(args),
        Command::Fmt(args) => fmt::run(args),
        Command::Lsp => match crate::lsp::serve() {
            Ok(true) => exit::OK,
            // The protocol's rule: `exit` without `shutdown` first exits with 1.
            Ok(false) => exit::PROBLEMS,
            Err(e) => {
                errln!("error: wvflow lsp: {e}");
                exit::PROBLEMS
            }
        },
        Command::Explain(args) => explain::run(args),
        Command::Ui(args) => ui::run(args),
        Command::Stage(args) => stage::run(args),
        Command::Export(args) => export::run(args),
        Command::Completions(args) => completions::run(args),
        Command::Man(args) => man::run(args),
    };
    // Output that could not be written is an I/O error, said where it still can be.
    if let Some(failure) = crate::terminal::write_failure() {
        errln!("error: {failure}");
        if status == exit::OK {
            return ExitCode::from(exit::USAGE);
        }
    }
    ExitCode::from(status)
}
