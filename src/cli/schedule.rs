//! `wvflow schedule PATH [--once] [--catchup] [--list]`: the daemon that starts flows on
//! their schedules and when runs of the flows they name in `if` end. Each run is a
//! `wvflow run` process of its own (its own process group), so a run outlives a reload and a
//! crash of one run touches no other. Semantics: `docs/scheduler.md`.

use super::exit;
use super::plan::compile;
use crate::runtime::launch::default_db;
use crate::runtime::schedule::utc_now;
use crate::runtime::scheduler::{self, Options};
use clap::Args;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Args)]
pub struct ScheduleArgs {
    /// A .wv file or a folder (one workspace).
    path: PathBuf,
    /// Evaluate the current minute, start what is due, wait for those runs (and the runs their
    /// ends start), then exit: 0 when none failed.
    #[arg(long)]
    once: bool,
    /// Start every missed window since each flow's last recorded run (as `catchup: true`).
    #[arg(long)]
    catchup: bool,
    /// Print each scheduled flow's next five fire times, in its time zone and in UTC.
    #[arg(long)]
    list: bool,
    /// The workspace database (default: `.wvflow/workspace.db` beside the workspace).
    #[arg(long)]
    db: Option<PathBuf>,
    /// After SIGTERM or Ctrl-C, how long running runs may go on before they are cancelled.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    grace: Duration,
}

pub fn run(args: ScheduleArgs) -> u8 {
    let checks = |workspace: &crate::workspace::Workspace| compile(workspace).is_some();
    let Some(loaded) = scheduler::load(&args.path, &checks) else {
        return exit::USAGE;
    };
    if args.list {
        out!("{}", scheduler::list(&loaded.entries, utc_now()));
        return exit::OK;
    }
    let options = Options {
        db: args.db.clone().unwrap_or_else(|| default_db(&args.path)),
        path: args.path,
        once: args.once,
        catchup: args.catchup,
        grace: args.grace,
    };
    let stop = crate::runtime::cancel::on_ctrl_c();
    match scheduler::serve(&options, loaded, &checks, stop.clone()) {
        Err(e) => {
            errln!("error: {e}");
            exit::USAGE
        }
        Ok(failures)
            if options.once && !stop.load(std::sync::atomic::Ordering::Relaxed) && failures > 0 =>
        {
            exit::PROBLEMS
        }
        Ok(_) => exit::OK,
    }
}
