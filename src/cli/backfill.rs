//! `wvflow backfill PATH FLOW --from DATE [--to DATE]`: one run per schedule window,
//! oldest first, one at a time, each with the window as its `run_time`; it stops at the
//! first run that does not succeed and says how to go on from there.

use crate::cli::Failure;
use super::exit;
use super::plan::plan_of;
use super::progress::Live;
use super::report::Stderr;
use super::run::{Format, print_chain, runner};
use crate::runtime::flow_call::bind_params;
use crate::runtime::launch::{Start, default_db};
use crate::runtime::schedule::{Timing, run_time_text, utc_now};
use crate::session::Session;
use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;
use clap::Args;
use std::path::PathBuf;

/// More windows than this in one backfill is refused: narrow `--from`/`--to`.
const MAX_WINDOWS: usize = 10_000;

#[derive(Args)]
pub struct BackfillArgs {
    /// A .wv file or a folder (one workspace).
    path: PathBuf,
    /// The flow to backfill; it needs a `schedule` or an `interval`.
    flow: String,
    /// The first window: a date (midnight in the flow's time zone) or an RFC 3339 time.
    #[arg(long)]
    from: String,
    /// The last window: a date (the whole day, in the flow's time zone) or an RFC 3339 time;
    /// default: now.
    #[arg(long)]
    to: Option<String>,
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// The workspace database (default: `.wvflow/workspace.db` beside the workspace).
    #[arg(long)]
    db: Option<PathBuf>,
}

/// A bound as an instant: a date is midnight in `zone` (`end_of_day`: the next midnight).
fn instant(text: &str, zone: Tz, end_of_day: bool) -> Result<DateTime<Utc>, Failure> {
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Ok(at.with_timezone(&Utc));
    }
    let date = NaiveDate::parse_from_str(text, "%Y-%m-%d").map_err(|_| {
        format!("`{text}` is not a date such as 2026-01-31 or a time such as 2026-01-31T02:00:00Z")
    })?;
    let date = if end_of_day {
        date.succ_opt().ok_or("date out of range")?
    } else {
        date
    };
    let midnight = date.and_time(chrono::NaiveTime::MIN);
    zone.from_local_datetime(&midnight)
        .earliest()
        .map(|t| t.with_timezone(&Utc))
        .ok_or_else(|| format!("midnight of {date} does not exist in {zone}").into())
}

pub fn run(args: BackfillArgs) -> u8 {
    match backfill(&args) {
        Ok(status) => status,
        Err(e) => {
            errln!("error: {e}");
            exit::USAGE
        }
    }
}

fn backfill(args: &BackfillArgs) -> Result<u8, Failure> {
    let session = Session::load(&args.path, &Stderr);
    if let Some(e) = session.load_errors().first() {
        return Err(e.to_string().into());
    }
    let Some(flows) = session.flows() else {
        return Ok(exit::USAGE);
    };
    let plan = plan_of(&flows, Some(&args.flow))?;
    let schedule = plan.flow.schedule.as_ref().ok_or_else(|| {
        format!(
            "flow `{}` has no `schedule` or `interval` to take windows from",
            plan.flow.name
        )
    })?;
    let timing = Timing::of(schedule)?;
    let zone = timing.zone();
    let from = instant(&args.from, zone, false)?;
    let to = match &args.to {
        Some(to) if to.contains('T') => instant(to, zone, false)?,
        Some(to) => instant(to, zone, true)? - chrono::Duration::milliseconds(1),
        None => utc_now(),
    };
    let windows = timing.first_between(
        from - chrono::Duration::milliseconds(1),
        to,
        MAX_WINDOWS + 1,
    );
    if windows.len() > MAX_WINDOWS {
        return Err(format!(
            "more than {MAX_WINDOWS} windows between {} and {}: backfill a shorter span",
            run_time_text(from),
            run_time_text(to)
        ).into());
    }
    if windows.is_empty() {
        errln!(
            "no window of `{}` between {} and {}",
            plan.flow.name,
            run_time_text(from),
            run_time_text(to)
        );
        return Ok(exit::OK);
    }
    let params = bind_params(&plan, &[])?;
    let db = args.db.clone().unwrap_or_else(|| default_db(&args.path));
    let live = Live::on_terminal();
    let runner = runner(&flows, db, &live);
    let total = windows.len();
    for (n, window) in windows.into_iter().enumerate() {
        let run_time = run_time_text(window);
        errln!("window {}/{total}: {run_time}", n + 1);
        let start = Start::New {
            parent: None,
            jumped_from: None,
            continued_from: None,
            run_time: Some(run_time.clone()),
            gate: false,
        };
        let status = print_chain(&runner, plan.clone(), params.clone(), start, args.format);
        if status != exit::OK {
            errln!(
                "backfill stopped at window {run_time}; after fixing it, go on with:\n  wvflow backfill {} {} --from {run_time}{}{}",
                args.path.display(),
                args.flow,
                args.to
                    .as_ref()
                    .map(|t| format!(" --to {t}"))
                    .unwrap_or_default(),
                args.db
                    .as_ref()
                    .map(|d| format!(" --db {}", d.display()))
                    .unwrap_or_default()
            );
            return Ok(exit::PROBLEMS);
        }
    }
    errln!("backfilled {total} window(s) of `{}`", plan.flow.name);
    Ok(exit::OK)
}
