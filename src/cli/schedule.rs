//! `wvflow schedule PATH [--once] [--catchup] [--list]`: the daemon that starts flows on
//! their schedules and when runs of the flows they name in `if` end. Each run is a
//! `wvflow run` process of its own (its own process group), so a run outlives a reload and a
//! crash of one run touches no other. Semantics: `docs/scheduler.md`.

use super::exit;
use super::plan::compile;
use super::run::default_db;
use crate::check::Index;
use crate::plan::ir::{Cond, Plan};
use crate::plan::lower;
use crate::runtime::engine::holds;
use crate::runtime::runs::{catalog, schema};
use crate::runtime::schedule::{Timing, run_time_text, utc_now};
use crate::workspace::{Workspace, discover};
use chrono::{DateTime, Utc};
use clap::Args;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};

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

/// A flow the scheduler starts.
struct Entry {
    flow: String,
    timing: Option<Timing>,
    catchup: bool,
    /// `flow F if G.failed`: started when a run of a flow it names ends so that this holds.
    condition: Option<Cond>,
}

/// The workspace as last compiled, and what its files looked like then.
struct Loaded {
    entries: Vec<Entry>,
    fingerprint: Vec<(PathBuf, Option<SystemTime>, u64)>,
}

fn fingerprint(path: &Path) -> Vec<(PathBuf, Option<SystemTime>, u64)> {
    discover(path)
        .unwrap_or_default()
        .into_iter()
        .map(|file| {
            let meta = std::fs::metadata(&file).ok();
            let modified = meta.as_ref().and_then(|m| m.modified().ok());
            let len = meta.map_or(0, |m| m.len());
            (file, modified, len)
        })
        .collect()
}

/// Compiles the workspace: `None` (its diagnostics printed) when it does not check.
fn load(path: &Path) -> Option<Loaded> {
    let fingerprint = fingerprint(path);
    let (workspace, errors) = Workspace::load(&[path.to_path_buf()]);
    for e in &errors {
        eprintln!("error: {e}");
    }
    if !errors.is_empty() || compile(&workspace).is_none() {
        return None;
    }
    let index = Index::new(&workspace);
    let mut entries = Vec::new();
    for def in &index.flows {
        let plan: Plan = lower(&workspace, &index, *def);
        let flow = plan.flow;
        let timing = match &flow.schedule {
            Some(schedule) => match Timing::of(schedule) {
                Ok(t) => Some(t),
                Err(e) => {
                    eprintln!("error: flow `{}`: {e}", flow.name);
                    return None;
                }
            },
            None => None,
        };
        if timing.is_none() && flow.start_condition.is_none() {
            continue;
        }
        entries.push(Entry {
            catchup: flow.schedule.as_ref().is_some_and(|s| s.catchup),
            flow: flow.name,
            timing,
            condition: flow.start_condition,
        });
    }
    Some(Loaded {
        entries,
        fingerprint,
    })
}

pub fn run(args: ScheduleArgs) -> u8 {
    let Some(mut loaded) = load(&args.path) else {
        return exit::USAGE;
    };
    if args.list {
        print!("{}", list(&loaded.entries, utc_now()));
        return exit::OK;
    }
    let db = args.db.clone().unwrap_or_else(|| default_db(&args.path));
    let conn = match schema::open(&db) {
        Ok(conn) => conn,
        Err(e) => {
            eprintln!("error: {e}");
            return exit::USAGE;
        }
    };
    let started_at = utc_now();
    let seconds = started_at.timestamp();
    let minute =
        DateTime::from_timestamp(seconds - seconds.rem_euclid(60), 0).unwrap_or(started_at);
    // Where each flow's schedule resumes: its last recorded run with catch-up; otherwise now
    // (with --once, the start of the current minute).
    let mut since: BTreeMap<String, DateTime<Utc>> = BTreeMap::new();
    for entry in &loaded.entries {
        let fresh = if args.once {
            minute - chrono::Duration::milliseconds(1)
        } else {
            started_at
        };
        let last = (args.catchup || entry.catchup)
            .then(|| catalog::latest(&conn, &entry.flow).ok().flatten())
            .flatten()
            .and_then(|r| DateTime::parse_from_rfc3339(&r.run_time).ok())
            .map(|t| t.with_timezone(&Utc));
        since.insert(entry.flow.clone(), last.unwrap_or(fresh));
    }
    let mut seen_finish = schema::now_ms();
    let stop = crate::runtime::cancel::on_ctrl_c();
    let mut running: Vec<Started> = Vec::new();
    let mut failures = 0;
    let mut first = true;
    loop {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let now = utc_now();
        if !args.once && fingerprint(&args.path) != loaded.fingerprint {
            match load(&args.path) {
                Some(new) => {
                    eprintln!("reloaded {}", args.path.display());
                    for entry in &new.entries {
                        since.entry(entry.flow.clone()).or_insert(now);
                    }
                    loaded = new;
                }
                None => {
                    eprintln!("the workspace does not check: keeping the previous schedules");
                    loaded.fingerprint = fingerprint(&args.path);
                }
            }
        }
        let mut starts: Vec<(String, DateTime<Utc>)> = Vec::new();
        if first || !args.once {
            for entry in &loaded.entries {
                let Some(timing) = &entry.timing else {
                    continue;
                };
                let from = since.get(&entry.flow).copied().unwrap_or(now);
                let catchup = args.catchup || entry.catchup;
                for fire in timing.due(from, now, catchup) {
                    // A window that already has a run (an earlier --once, a backfill) is done.
                    if !catalog::has_run_at(&conn, &entry.flow, &run_time_text(fire))
                        .unwrap_or(false)
                    {
                        starts.push((entry.flow.clone(), fire));
                    }
                }
                since.insert(entry.flow.clone(), now);
            }
        }
        first = false;
        // Runs that ended since the last look may start flows that name them in `if`.
        if let Ok(ended) = catalog::finished_since(&conn, seen_finish) {
            for run in &ended {
                seen_finish = seen_finish.max(run.finished_at.unwrap_or(0));
                for entry in &loaded.entries {
                    let Some(condition) = &entry.condition else {
                        continue;
                    };
                    if !names(condition).contains(&run.flow.as_str()) {
                        continue;
                    }
                    if holds(condition, &latest_states(&conn, condition)) {
                        eprintln!(
                            "{} ended {}: starting {}",
                            run.flow,
                            run.display_state(),
                            entry.flow
                        );
                        starts.push((entry.flow.clone(), now));
                    }
                }
            }
        }
        for (flow, fire) in starts {
            match start(&args.path, &db, &flow, fire) {
                Ok(started) => running.push(started),
                Err(e) => {
                    eprintln!("error: cannot start {flow}: {e}");
                    failures += 1;
                }
            }
        }
        failures += reap(&mut running);
        if args.once && running.is_empty() {
            // One more look for runs whose end starts another flow.
            std::thread::sleep(Duration::from_millis(50));
            let more = catalog::finished_since(&conn, seen_finish)
                .map(|e| !e.is_empty())
                .unwrap_or(false);
            if !more {
                break;
            }
            continue;
        }
        std::thread::sleep(Duration::from_millis(if args.once { 100 } else { 500 }));
    }
    shut_down(running, args.grace);
    if args.once && failures > 0 {
        exit::PROBLEMS
    } else {
        exit::OK
    }
}

/// The flows a start condition names.
fn names(condition: &Cond) -> Vec<&str> {
    match condition {
        Cond::True => Vec::new(),
        Cond::State { stage, .. } => vec![stage.as_str()],
        Cond::Not { arg } => names(arg),
        Cond::And { args } | Cond::Or { args } => args.iter().flat_map(names).collect(),
    }
}

/// The state of the latest run of each flow a condition names (a stale run counts as failed).
fn latest_states(conn: &rusqlite::Connection, condition: &Cond) -> BTreeMap<String, &'static str> {
    let mut states = BTreeMap::new();
    for flow in names(condition) {
        let Ok(Some(run)) = catalog::latest(conn, flow) else {
            continue;
        };
        let state = match run.state.as_str() {
            _ if run.is_stale() => "failed",
            "success" => "success",
            "failed" => "failed",
            "cancelled" => "cancelled",
            "skipped" => "skipped",
            _ => continue, // still running: not an end
        };
        states.insert(flow.to_string(), state);
    }
    states
}

/// A run the scheduler started: a `wvflow run` process.
struct Started {
    flow: String,
    fire: DateTime<Utc>,
    child: Child,
    output: std::thread::JoinHandle<String>,
}

fn start(path: &Path, db: &Path, flow: &str, fire: DateTime<Utc>) -> Result<Started, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut command = Command::new(exe);
    command
        .arg("run")
        .arg(path)
        .arg(flow)
        .arg("--run-time")
        .arg(run_time_text(fire))
        .arg("--scheduled")
        .arg("--db")
        .arg(db)
        .arg("--format")
        .arg("json")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    // Its own process group: Ctrl-C in the terminal reaches the scheduler, which decides.
    std::os::unix::process::CommandExt::process_group(&mut command, 0);
    let mut child = command.spawn().map_err(|e| e.to_string())?;
    let mut stdout = child.stdout.take().ok_or("no stdout")?;
    let output = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut stdout, &mut text);
        text
    });
    eprintln!("started {flow} for {}", run_time_text(fire));
    Ok(Started {
        flow: flow.to_string(),
        fire,
        child,
        output,
    })
}

/// Collects runs that ended, printing each; returns how many failed.
fn reap(running: &mut Vec<Started>) -> usize {
    let mut failed = 0;
    let mut i = 0;
    while i < running.len() {
        if !matches!(running[i].child.try_wait(), Ok(Some(_))) {
            i += 1;
            continue;
        }
        let done = running.swap_remove(i);
        let text = done.output.join().unwrap_or_default();
        let summary: serde_json::Value = serde_json::Deserializer::from_str(&text)
            .into_iter()
            .next()
            .and_then(Result::ok)
            .unwrap_or_default();
        let state = summary["state"].as_str().unwrap_or("failed");
        if matches!(state, "failed" | "cancelled") {
            failed += 1;
        }
        eprintln!(
            "{} for {}: run {} {state}",
            done.flow,
            run_time_text(done.fire),
            summary["run_id"].as_str().unwrap_or("?")
        );
    }
    failed
}

/// Lets running runs finish within `grace`, then cancels them (SIGTERM to each run's
/// process group: the run cancels itself, compensations included) and waits for them.
fn shut_down(mut running: Vec<Started>, grace: Duration) {
    if running.is_empty() {
        return;
    }
    eprintln!(
        "stopping: waiting up to {} for {} running run(s)",
        humantime::format_duration(grace),
        running.len()
    );
    let deadline = Instant::now() + grace;
    while !running.is_empty() && Instant::now() < deadline {
        reap(&mut running);
        std::thread::sleep(Duration::from_millis(100));
    }
    for run in &running {
        if let Ok(pid) = libc::pid_t::try_from(run.child.id()) {
            eprintln!("cancelling {} (process {pid})", run.flow);
            // SAFETY: signals the run's own process group, which it leads.
            unsafe {
                libc::kill(-pid, libc::SIGTERM);
            }
        }
    }
    while !running.is_empty() {
        reap(&mut running);
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `--list`: each scheduled flow's next five fire times.
fn list(entries: &[Entry], now: DateTime<Utc>) -> String {
    let mut out = String::new();
    for entry in entries {
        let Some(timing) = &entry.timing else {
            continue;
        };
        let zone = timing.zone();
        out.push_str(&format!("{} ({zone})\n", entry.flow));
        let mut at = now;
        for _ in 0..5 {
            let Some(next) = timing.next_after(at) else {
                break;
            };
            out.push_str(&format!(
                "  {}  {}\n",
                next.with_timezone(&zone).format("%Y-%m-%d %H:%M %Z"),
                run_time_text(next)
            ));
            at = next;
        }
    }
    if out.is_empty() {
        out.push_str("no scheduled flows\n");
    }
    out
}
