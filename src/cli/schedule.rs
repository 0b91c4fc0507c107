//! `wvflow schedule PATH [--once] [--catchup] [--list]`: the daemon that starts flows on
//! their schedules and when runs of the flows they name in `if` end. Each run is a
//! `wvflow run` process of its own (its own process group), so a run outlives a reload and a
//! crash of one run touches no other. Semantics: `docs/scheduler.md`.

use super::exit;
use super::report::Stderr;
use crate::diagnostics::Diagnostic;
use crate::plan::ir::Schedule;
use crate::runtime::launch::default_db;
use crate::runtime::schedule::{MAX_CATCHUP, run_time_text, utc_now};
use crate::runtime::scheduler::{self, Event, Listener, NextRun, Options, Watched};
use crate::session::{Notice, Reporter};
use crate::source::SourceMap;
use chrono::{DateTime, Utc};
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
    /// With --once or --list: evaluate this time (RFC 3339, or a date for its midnight UTC)
    /// instead of now: what would be due then, or the next fire times from then.
    #[arg(long, value_parser = crate::runtime::schedule::parse_time)]
    at: Option<chrono::DateTime<chrono::Utc>>,
}

pub fn run(args: ScheduleArgs) -> u8 {
    let Some(loaded) = scheduler::load(&args.path, &Log) else {
        return exit::USAGE;
    };
    if args.at.is_some() && !args.once && !args.list {
        errln!("error: --at goes with --once or --list: the daemon runs in the present");
        return exit::USAGE;
    }
    if args.list {
        out!("{}", scheduler::list(&loaded.entries, args.at.unwrap_or_else(utc_now)));
        return exit::OK;
    }
    let options = Options {
        db: args.db.clone().unwrap_or_else(|| default_db(&args.path)),
        path: args.path,
        once: args.once,
        catchup: args.catchup,
        grace: args.grace,
        at: args.at,
    };
    let stop = crate::runtime::cancel::on_ctrl_c();
    match scheduler::serve(&options, loaded, &Log, stop.clone()) {
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

/// The scheduler's log, a line per event on stderr, as the progress of the other commands:
/// stdout stays for what a command produces (`--list`), and the runs' own output.
struct Log;

/// The workspace's diagnostics at each load, and the warnings of the runs it records, as
/// every command prints them.
impl Reporter for Log {
    fn diagnostics(&self, found: &[Diagnostic], sources: &SourceMap) {
        Stderr.diagnostics(found, sources);
    }

    fn notice(&self, notice: &Notice) {
        Stderr.notice(notice);
    }
}

impl Listener for Log {
    fn event(&self, event: Event) {
        errln!("{}", line(&event));
    }
}

/// The text of one event (several lines for the list of watched flows).
fn line(event: &Event) -> String {
    match event {
        Event::Unreadable(e) => format!("error: {e}"),
        Event::BadSchedule { flow, error } => format!("error: flow `{flow}`: {error}"),
        Event::Watching {
            path,
            files,
            flows,
            once,
            at,
        } => watching(path, *files, flows, *once, *at),
        Event::Next(next) => format!("next: {}", next_text(next.as_ref())),
        Event::Reloaded { path } => format!("reloaded {}", path.display()),
        Event::KeptPreviousSchedules => {
            "the workspace does not check: keeping the previous schedules".to_string()
        }
        Event::TooManyMissed { flow, oldest } => format!(
            "{flow}: more than {MAX_CATCHUP} missed windows; starting the newest {MAX_CATCHUP} (use `wvflow backfill` for those from {})",
            oldest.map(run_time_text).unwrap_or_default()
        ),
        Event::DroppedWindow { flow, window } => format!(
            "{flow}: {MAX_CATCHUP} windows waiting; dropped {}",
            run_time_text(*window)
        ),
        Event::Following {
            ended,
            state,
            starting,
        } => format!("{ended} ended {state}: starting {starting}"),
        Event::Started { flow, window } => {
            format!("started {flow} for {}", run_time_text(*window))
        }
        Event::CannotStart { flow, error } => format!("error: cannot start {flow}: {error}"),
        Event::Ended {
            flow,
            window,
            run_id,
            state,
        } => format!("{flow} for {}: run {run_id} {state}", run_time_text(*window)),
        Event::Skipped {
            flow,
            window,
            reason,
        } => format!("{flow} for {}: skipped: {reason}", run_time_text(*window)),
        Event::StoreError(e) => format!("error: {e}"),
        Event::Stopping { grace, running } => format!(
            "stopping: waiting up to {} for {running} running run(s)",
            crate::human::duration(*grace)
        ),
        Event::Signalling { action, flow, pid } => format!("{action} {flow} (process {pid})"),
        Event::OnceDone {
            at,
            runs,
            failed,
            next,
        } => once_done(*at, *runs, *failed, next.as_ref()),
        Event::Stopped => "stopped: interrupted (Ctrl-C or SIGTERM)".to_string(),
    }
}

/// `watching PATH (N files) for changes:` and a line per flow it can start.
fn watching(
    path: &std::path::Path,
    files: usize,
    flows: &[Watched],
    once: bool,
    at: DateTime<Utc>,
) -> String {
    let files = format!("{} ({files} file{})", path.display(), plural(files));
    let mut text = if once {
        format!("checking what is due at {} in {files}:", minute(at))
    } else {
        format!("watching {files} for changes:")
    };
    if flows.is_empty() {
        text.push_str(" no flow has a schedule, an `if` on other flows or `depends on`");
    }
    for flow in flows {
        text.push_str(&format!("\n  {}: {}", flow.flow, starts_when(flow)));
    }
    text
}

/// What starts a flow: `cron '0 2 * * *' in Europe/Berlin; when a run of Load ends (`if`)`.
fn starts_when(flow: &Watched) -> String {
    let mut parts = Vec::new();
    if let Some(schedule) = &flow.schedule {
        parts.push(schedule_text(schedule));
    }
    if !flow.if_ends_of.is_empty() {
        parts.push(format!(
            "when a run of {} ends (`if`)",
            flow.if_ends_of.join(" or ")
        ));
    }
    if !flow.depends_on.is_empty() {
        let (names, have) = match flow.depends_on.as_slice() {
            [one] => (one.clone(), "has"),
            many => (many.join(" and "), "have all"),
        };
        parts.push(if flow.schedule.is_some() {
            format!(
                "each window runs only if {names} {have} succeeded since its last run (`depends on`)"
            )
        } else {
            format!("when {names} {have} succeeded since its last run (`depends on`)")
        });
    }
    parts.join("; ")
}

fn schedule_text(schedule: &Schedule) -> String {
    match (&schedule.cron, schedule.interval_ms) {
        (Some(pattern), _) => format!("cron '{pattern}' in {}", schedule.timezone),
        (None, Some(ms)) => format!(
            "every {} (from 00:00 UTC)",
            crate::human::duration(Duration::from_millis(ms))
        ),
        (None, None) => "no fire times".to_string(),
    }
}

/// `Flow at 2026-11-24 04:15 CET (2026-11-24T03:15:00Z)`, or `none`.
fn next_text(next: Option<&NextRun>) -> String {
    match next {
        Some(next) => format!(
            "{} at {} ({})",
            next.flow,
            next.at.with_timezone(&next.zone).format("%Y-%m-%d %H:%M %Z"),
            run_time_text(next.at)
        ),
        None => "none".to_string(),
    }
}

/// Why --once ends.
fn once_done(at: DateTime<Utc>, runs: usize, failed: usize, next: Option<&NextRun>) -> String {
    let next = next_text(next);
    if runs == 0 {
        format!("--once: nothing due at {}; next: {next}", minute(at))
    } else {
        format!(
            "--once: everything due at {} has ended: {runs} run{}, {failed} failed; next: {next}",
            minute(at),
            plural(runs)
        )
    }
}

/// `09:23 UTC`: the minute --once looks at.
fn minute(at: DateTime<Utc>) -> String {
    at.format("%H:%M UTC").to_string()
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}
