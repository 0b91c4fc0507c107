//! The scheduler daemon behind `wvflow schedule`: starts flows on their schedules and when
//! runs of the flows they name in `if` end. Each run is a `wvflow run` process of its own (its
//! own process group), so a run outlives a reload and a crash of one run touches no other.
//! It prints nothing: what it watches, starts, skips, reloads and why it stops are [`Event`]s
//! told to a [`Listener`] (the command line prints them). Semantics: `docs/scheduler.md`.

use super::rules::holds;
use super::launch::RunProcess;
use super::runs::journal::{Journal, NewRun};
use super::runs::{catalog, schema};
use super::schedule::{MAX_CATCHUP, Timing, run_time_text, utc_now};
use super::state::{RunState, StageState};
use crate::plan::ir::{Cond, Plan, Schedule};
use crate::session::{Reporter, Session};
use crate::workspace::discover;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

/// What `wvflow schedule` was asked to do.
pub struct Options {
    /// A .wv file or a folder (one workspace).
    pub path: PathBuf,
    /// The workspace database.
    pub db: PathBuf,
    /// Evaluate the current minute, start what is due, wait for those runs (and the runs
    /// their ends start), then end.
    pub once: bool,
    /// Start every missed window since each flow's last recorded run.
    pub catchup: bool,
    /// After a stop, how long running runs may go on before they are cancelled.
    pub grace: Duration,
    /// With `once`: the minute to evaluate instead of now.
    pub at: Option<chrono::DateTime<chrono::Utc>>,
}

/// Whoever runs the scheduler, told what it does and why: a reporter (each load's
/// diagnostics, the warnings of the runs it records) that also hears the daemon's events.
pub trait Listener: Reporter {
    fn event(&self, event: Event);
}

/// What the scheduler does, in the order it does it.
#[derive(Debug)]
pub enum Event {
    /// A path of the workspace could not be read (missing, not UTF-8).
    Unreadable(String),
    /// A flow's schedule cannot give fire times.
    BadSchedule { flow: String, error: String },
    /// At the start: the workspace and the flows it can start. `once`: only the minute `at`
    /// is looked at; otherwise the files are watched for changes.
    Watching {
        path: PathBuf,
        files: usize,
        flows: Vec<Watched>,
        once: bool,
        at: DateTime<Utc>,
    },
    /// The earliest window to come, at the start and whenever it changes (not under --once,
    /// which says it as it ends). `None`: no flow has a schedule.
    Next(Option<NextRun>),
    /// The files changed and check: the new schedules are in force.
    Reloaded { path: PathBuf },
    /// The files changed and do not check: the previous schedules stay in force.
    KeptPreviousSchedules,
    /// A catch-up found more missed windows than it starts; those from `oldest` are left.
    TooManyMissed {
        flow: String,
        oldest: Option<DateTime<Utc>>,
    },
    /// A flow whose runs take longer than its period dropped its oldest waiting window.
    DroppedWindow { flow: String, window: DateTime<Utc> },
    /// A run of `ended` ended `state`, which starts `starting`.
    Following {
        ended: String,
        state: String,
        starting: String,
    },
    Started { flow: String, window: DateTime<Utc> },
    CannotStart { flow: String, error: String },
    /// A run the scheduler started ended.
    Ended {
        flow: String,
        window: DateTime<Utc>,
        run_id: String,
        state: String,
    },
    /// A window recorded as skipped without running, and why.
    Skipped {
        flow: String,
        window: DateTime<Utc>,
        reason: String,
    },
    /// The run store refused a record.
    StoreError(String),
    /// Asked to stop while runs are going: how long they may go on.
    Stopping { grace: Duration, running: usize },
    /// A run still going after the grace period: `cancelling` (SIGTERM) or `killing`.
    Signalling {
        action: &'static str,
        flow: String,
        pid: i32,
    },
    /// --once: the minute `at` was looked at, `runs` runs were started for it (and by their
    /// ends) and have all ended, `failed` of them failed.
    OnceDone {
        at: DateTime<Utc>,
        runs: usize,
        failed: usize,
        next: Option<NextRun>,
    },
    /// Stopped by Ctrl-C or SIGTERM; every run it started has ended.
    Stopped,
}

/// A flow the scheduler can start, and what starts it.
#[derive(Debug)]
pub struct Watched {
    pub flow: String,
    /// Its `schedule:` or `interval:`.
    pub schedule: Option<Schedule>,
    /// `if`: the flows whose runs' ends start it when its condition holds.
    pub if_ends_of: Vec<String>,
    /// `depends on`: with a schedule, they gate its windows; without, their successes start it.
    pub depends_on: Vec<String>,
}

/// The next window of a flow.
#[derive(Clone, Debug, PartialEq)]
pub struct NextRun {
    pub flow: String,
    pub at: DateTime<Utc>,
    /// The flow's time zone, for showing `at`.
    pub zone: Tz,
}

/// A flow the scheduler starts.
pub struct Entry {
    flow: String,
    timing: Option<Timing>,
    catchup: bool,
    /// `flow F if G.failed`: started when a run of a flow it names ends so that this holds.
    condition: Option<Cond>,
    /// `depends on`: a flow without a schedule starts once all of these have succeeded since
    /// its own last run.
    depends_on: Vec<String>,
    /// The plan as last compiled, to record windows that cannot run.
    plan: Plan,
}

/// The workspace as last compiled, and what its files looked like then.
pub struct Loaded {
    pub entries: Vec<Entry>,
    fingerprint: Vec<(PathBuf, Option<SystemTime>, u64)>,
}

fn fingerprint(path: &Path) -> Vec<(PathBuf, Option<SystemTime>, u64)> {
    // `wvflow.toml` too: a connector added or removed changes what checks.
    discover(path)
        .unwrap_or_default()
        .into_iter()
        .chain(crate::connectors::find(path))
        .map(|file| {
            let meta = std::fs::metadata(&file).ok();
            let modified = meta.as_ref().and_then(|m| m.modified().ok());
            let len = meta.map_or(0, |m| m.len());
            (file, modified, len)
        })
        .collect()
}

impl Loaded {
    /// The flows it can start.
    pub fn watched(&self) -> Vec<Watched> {
        self.entries
            .iter()
            .map(|entry| Watched {
                flow: entry.flow.clone(),
                schedule: entry.plan.flow.schedule.clone(),
                if_ends_of: entry.condition.as_ref().map_or_else(Vec::new, |c| {
                    let mut flows: Vec<String> = Vec::new();
                    for flow in names(c) {
                        if !flows.iter().any(|f| f == flow) {
                            flows.push(flow.to_string());
                        }
                    }
                    flows
                }),
                depends_on: entry.depends_on.clone(),
            })
            .collect()
    }
}

/// Compiles the workspace: `None` when it does not check (the listener was told why).
pub fn load(path: &Path, listener: &dyn Listener) -> Option<Loaded> {
    let fingerprint = fingerprint(path);
    let session = Session::load(path, listener);
    for e in session.load_errors() {
        listener.event(Event::Unreadable(e.to_string()));
    }
    let flows = session.flows()?;
    let mut entries = Vec::new();
    for def in &flows.index().flows {
        let plan: Plan = flows.lower(*def);
        let flow = &plan.flow;
        let timing = match &flow.schedule {
            Some(schedule) => match Timing::of(schedule) {
                Ok(t) => Some(t),
                Err(error) => {
                    listener.event(Event::BadSchedule {
                        flow: flow.name.clone(),
                        error: error.to_string(),
                    });
                    return None;
                }
            },
            None => None,
        };
        if timing.is_none() && flow.start_condition.is_none() && flow.depends_on.is_empty() {
            continue;
        }
        entries.push(Entry {
            catchup: flow.schedule.as_ref().is_some_and(|s| s.catchup),
            flow: flow.name.clone(),
            timing,
            condition: flow.start_condition.clone(),
            depends_on: flow.depends_on.clone(),
            plan,
        });
    }
    Some(Loaded {
        entries,
        fingerprint,
    })
}

/// Runs the scheduler until `stop` is set (or, with `once`, until what was due has run).
/// The number of runs that failed or could not start.
pub fn serve(
    options: &Options,
    loaded: Loaded,
    listener: &dyn Listener,
    stop: Arc<AtomicBool>,
) -> Result<usize, schema::Error> {
    let conn = schema::open(&options.db)?;
    let mut daemon = Daemon {
        args: options,
        listener,
        db: options.db.clone(),
        conn,
        loaded,
        broken: false,
        since: BTreeMap::new(),
        queues: BTreeMap::new(),
        running: Vec::new(),
        failures: 0,
        started: 0,
        seen_event: 0,
        followed: BTreeSet::new(),
        next: None,
    };
    daemon.seen_event = catalog::last_event(&daemon.conn).unwrap_or(0);
    let started_at = options.at.filter(|_| options.once).unwrap_or_else(utc_now);
    daemon.position_schedules(started_at);
    listener.event(Event::Watching {
        path: options.path.clone(),
        files: daemon.loaded.fingerprint.len(),
        flows: daemon.loaded.watched(),
        once: options.once,
        at: started_at,
    });
    let args = options;
    let mut first = true;
    loop {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        // --once evaluates one instant, the one it started at (or `--at`), even if starting
        // took it past the minute: the flows that runs' ends start get that time too.
        let now = if args.once { started_at } else { utc_now() };
        if !args.once {
            daemon.reload_if_changed(now);
        }
        if first || !args.once {
            daemon.queue_due_windows(now);
        }
        if !args.once {
            daemon.tell_next_if_changed(first);
        }
        first = false;
        let followed = daemon.follow_ends(now);
        daemon.start_queued();
        daemon.failures += reap(&mut daemon.running, listener);
        if args.once && daemon.running.is_empty() && daemon.queues.values().all(|q| q.is_empty()) {
            // Done unless a run that just ended starts another flow.
            std::thread::sleep(Duration::from_millis(50));
            let more = catalog::ended_since(&daemon.conn, daemon.seen_event)
                .map(|e| !e.is_empty())
                .unwrap_or(false);
            if !more && !followed {
                break;
            }
            continue;
        }
        std::thread::sleep(Duration::from_millis(if args.once { 100 } else { 500 }));
    }
    daemon.failures += shut_down(std::mem::take(&mut daemon.running), args.grace, listener);
    if stop.load(Ordering::Relaxed) {
        listener.event(Event::Stopped);
    } else {
        listener.event(Event::OnceDone {
            at: started_at,
            runs: daemon.started,
            failed: daemon.failures,
            next: daemon.next_due(),
        });
    }
    Ok(daemon.failures)
}

/// The scheduler's state between ticks.
struct Daemon<'a> {
    args: &'a Options,
    listener: &'a dyn Listener,
    db: PathBuf,
    conn: rusqlite::Connection,
    loaded: Loaded,
    /// The workspace's files changed and no longer check: the schedules are the previous
    /// ones, and their windows are recorded as skipped rather than run.
    broken: bool,
    /// Where each flow's schedule goes on from.
    since: BTreeMap<String, DateTime<Utc>>,
    /// Windows waiting to start, per flow, oldest first: one run of a flow at a time.
    queues: BTreeMap<String, VecDeque<DateTime<Utc>>>,
    running: Vec<Started>,
    failures: usize,
    /// How many runs it started.
    started: usize,
    /// The last `run_finished` event looked at.
    seen_event: i64,
    /// With --once, flows already started by an end: each at most once, so flows that start
    /// each other (`A if B.done`, `B if A.done`) cannot keep --once from ending.
    followed: BTreeSet<String>,
    /// The next window as last told.
    next: Option<NextRun>,
}

impl Daemon<'_> {
    /// The earliest window to come of the flows with a schedule.
    fn next_due(&self) -> Option<NextRun> {
        self.loaded
            .entries
            .iter()
            .filter_map(|entry| {
                let timing = entry.timing.as_ref()?;
                let since = self.since.get(&entry.flow).copied()?;
                Some(NextRun {
                    flow: entry.flow.clone(),
                    at: timing.next_after(since)?,
                    zone: timing.zone(),
                })
            })
            .min_by_key(|next| next.at)
    }

    /// Tells the next window when it changed since it was last told (and at the start, even
    /// when there is none).
    fn tell_next_if_changed(&mut self, first: bool) {
        let next = self.next_due();
        if first || next != self.next {
            self.listener.event(Event::Next(next.clone()));
            self.next = next;
        }
    }

    /// Where each flow's schedule starts: its last recorded run with catch-up; otherwise now
    /// (with --once, the start of the current minute).
    fn position_schedules(&mut self, now: DateTime<Utc>) {
        let seconds = now.timestamp();
        let minute = DateTime::from_timestamp(seconds - seconds.rem_euclid(60), 0).unwrap_or(now);
        for entry in &self.loaded.entries {
            let fresh = if self.args.once {
                minute - chrono::Duration::milliseconds(1)
            } else {
                now
            };
            let last = (self.args.catchup || entry.catchup)
                .then(|| catalog::latest(&self.conn, &entry.flow).ok().flatten())
                .flatten()
                .and_then(|r| DateTime::parse_from_rfc3339(&r.run_time).ok())
                .map(|t| t.with_timezone(&Utc));
            self.since.insert(entry.flow.clone(), last.unwrap_or(fresh));
        }
    }

    fn reload_if_changed(&mut self, now: DateTime<Utc>) {
        if fingerprint(&self.args.path) == self.loaded.fingerprint {
            return;
        }
        match load(&self.args.path, self.listener) {
            Some(new) => {
                self.listener.event(Event::Reloaded {
                    path: self.args.path.clone(),
                });
                // Flows that are gone are forgotten; new ones start from now.
                self.since
                    .retain(|flow, _| new.entries.iter().any(|e| &e.flow == flow));
                for entry in &new.entries {
                    self.since.entry(entry.flow.clone()).or_insert(now);
                }
                self.loaded = new;
                self.broken = false;
            }
            None => {
                self.listener.event(Event::KeptPreviousSchedules);
                self.loaded.fingerprint = fingerprint(&self.args.path);
                self.broken = true;
            }
        }
    }

    /// Queues each flow's due windows, oldest first.
    fn queue_due_windows(&mut self, now: DateTime<Utc>) {
        for entry in &self.loaded.entries {
            let Some(timing) = &entry.timing else {
                continue;
            };
            let from = self.since.get(&entry.flow).copied().unwrap_or(now);
            let catchup = self.args.catchup || entry.catchup;
            let due = timing.due(from, now, catchup);
            if catchup
                && due.len() == MAX_CATCHUP
                && timing.next_after(from) != due.first().copied()
            {
                self.listener.event(Event::TooManyMissed {
                    flow: entry.flow.clone(),
                    oldest: timing.next_after(from),
                });
            }
            for fire in due {
                // A window that already ran (an earlier --once, a backfill) is done.
                let ran = catalog::run_at(&self.conn, &entry.flow, &run_time_text(fire));
                if !matches!(ran, Ok(Some(_))) {
                    let queue = self.queues.entry(entry.flow.clone()).or_default();
                    queue.push_back(fire);
                    // A flow whose runs take longer than its period falls behind: it keeps
                    // the newest windows.
                    if queue.len() > MAX_CATCHUP
                        && let Some(dropped) = queue.pop_front()
                    {
                        self.listener.event(Event::DroppedWindow {
                            flow: entry.flow.clone(),
                            window: dropped,
                        });
                    }
                }
            }
            self.since.insert(entry.flow.clone(), now);
        }
    }

    /// Queues the flows that runs ended since the last look start: `if` conditions that now
    /// hold, and flows without a schedule whose `depends on` is now met. Each flow at most
    /// once per look. Whether anything was queued.
    fn follow_ends(&mut self, now: DateTime<Utc>) -> bool {
        let Ok(ended) = catalog::ended_since(&self.conn, self.seen_event) else {
            return false;
        };
        let mut chosen: BTreeSet<String> = BTreeSet::new();
        for (seq, run) in &ended {
            self.seen_event = self.seen_event.max(*seq);
            if run.state == RunState::Skipped {
                continue; // ran nothing: not an end
            }
            for entry in &self.loaded.entries {
                if chosen.contains(&entry.flow) || self.followed.contains(&entry.flow) {
                    continue;
                }
                let follows = match &entry.condition {
                    Some(condition) => {
                        names(condition).contains(&run.flow.as_str())
                            && holds(condition, &latest_states(&self.conn, condition))
                    }
                    None => {
                        entry.timing.is_none()
                            && run.state == RunState::Success
                            && entry.depends_on.contains(&run.flow)
                            && matches!(
                                catalog::unmet_dependency(
                                    &self.conn,
                                    &entry.flow,
                                    &entry.depends_on
                                ),
                                Ok(None)
                            )
                    }
                };
                if follows {
                    self.listener.event(Event::Following {
                        ended: run.flow.clone(),
                        state: run.display_state().to_string(),
                        starting: entry.flow.clone(),
                    });
                    chosen.insert(entry.flow.clone());
                }
            }
        }
        let any = !chosen.is_empty();
        for flow in chosen {
            if self.args.once {
                self.followed.insert(flow.clone());
            }
            self.queues.entry(flow).or_default().push_back(now);
        }
        any
    }

    /// Starts the oldest queued window of each flow that has no run of the scheduler going.
    fn start_queued(&mut self) {
        let flows: Vec<String> = self.queues.keys().cloned().collect();
        for flow in flows {
            if self.running.iter().any(|r| r.flow == flow) {
                continue;
            }
            let Some(fire) = self.queues.get_mut(&flow).and_then(VecDeque::pop_front) else {
                continue;
            };
            if self.broken {
                self.record_unrunnable(&flow, fire);
                continue;
            }
            match start(&self.args.path, &self.db, &flow, fire) {
                Ok(started) => {
                    self.listener.event(Event::Started {
                        flow: flow.clone(),
                        window: fire,
                    });
                    self.running.push(started);
                    self.started += 1;
                }
                Err(error) => {
                    self.listener.event(Event::CannotStart {
                        flow,
                        error: error.to_string(),
                    });
                    self.failures += 1;
                }
            }
        }
    }

    /// A window that comes while the workspace does not check: recorded as skipped, with why.
    fn record_unrunnable(&self, flow: &str, fire: DateTime<Utc>) {
        let Some(entry) = self.loaded.entries.iter().find(|e| e.flow == flow) else {
            return;
        };
        let run_id = crate::runtime::runs::new_run_id();
        let run_time = run_time_text(fire);
        let reason = "the workspace does not check; fix it and backfill this window";
        let new = NewRun {
            run_id: &run_id,
            plan: &entry.plan,
            args: &BTreeMap::new(),
            run_time: &run_time,
            workspace: &self.args.path.to_string_lossy(),
            run_db: "",
            parent: None,
            jumped_from: None,
            continued_from: None,
            gate: false,
            once_per_window: false,
            skip: Some(reason),
        };
        let cancel = Default::default();
        self.listener.event(match Journal::create(&self.db, &new, cancel, self.listener) {
            Ok(_) => Event::Skipped {
                flow: flow.to_string(),
                window: fire,
                reason: reason.to_string(),
            },
            Err(e) => Event::StoreError(e.to_string()),
        });
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
fn latest_states(conn: &rusqlite::Connection, condition: &Cond) -> BTreeMap<String, StageState> {
    let mut states = BTreeMap::new();
    for flow in names(condition) {
        // A run still going has not ended yet.
        if let Ok(Some(run)) = catalog::latest(conn, flow)
            && let Some(state) = run.end()
        {
            states.insert(flow.to_string(), state);
        }
    }
    states
}

/// A run the scheduler started: a `wvflow run` process.
struct Started {
    flow: String,
    fire: DateTime<Utc>,
    process: RunProcess,
}

fn start(
    path: &Path,
    db: &Path,
    flow: &str,
    fire: DateTime<Utc>,
) -> Result<Started, super::launch::Error> {
    let run_time = run_time_text(fire);
    let process = RunProcess::spawn(
        [
            path.as_os_str(),
            flow.as_ref(),
            "--run-time".as_ref(),
            run_time.as_ref(),
            "--scheduled".as_ref(),
            "--db".as_ref(),
            db.as_os_str(),
        ],
        Stdio::inherit(),
    )?;
    Ok(Started {
        flow: flow.to_string(),
        fire,
        process,
    })
}

/// Collects runs that ended, telling each; returns how many failed.
fn reap(running: &mut Vec<Started>, listener: &dyn Listener) -> usize {
    let mut failed = 0;
    let mut i = 0;
    while i < running.len() {
        if !running[i].process.finished() {
            i += 1;
            continue;
        }
        let done = running.swap_remove(i);
        let (flow, fire) = (done.flow, done.fire);
        let summary = done.process.summary();
        let state = summary["state"].as_str().unwrap_or("failed");
        if matches!(state, "failed" | "cancelled") {
            failed += 1;
        }
        listener.event(Event::Ended {
            flow,
            window: fire,
            run_id: summary["run_id"].as_str().unwrap_or("?").to_string(),
            state: state.to_string(),
        });
    }
    failed
}

/// Lets running runs finish within `grace`, then cancels them (SIGTERM to each run's
/// process group: the run cancels itself, compensations included), waits as long again, and
/// kills what is left. Returns how many failed.
fn shut_down(mut running: Vec<Started>, grace: Duration, listener: &dyn Listener) -> usize {
    if running.is_empty() {
        return 0;
    }
    listener.event(Event::Stopping {
        grace,
        running: running.len(),
    });
    let mut failed = wait_for(&mut running, grace, listener);
    for (signal, action) in [(libc::SIGTERM, "cancelling"), (libc::SIGKILL, "killing")] {
        if running.is_empty() {
            break;
        }
        for run in &running {
            if let Ok(pid) = libc::pid_t::try_from(run.process.child.id()) {
                listener.event(Event::Signalling {
                    action,
                    flow: run.flow.clone(),
                    pid,
                });
                // SAFETY: signals the run's own process group, which it leads.
                unsafe {
                    libc::kill(-pid, signal);
                }
            }
        }
        failed += wait_for(&mut running, grace.max(Duration::from_secs(5)), listener);
    }
    failed
}

/// Reaps runs until none is left or `limit` has passed.
fn wait_for(running: &mut Vec<Started>, limit: Duration, listener: &dyn Listener) -> usize {
    let deadline = Instant::now() + limit;
    let mut failed = reap(running, listener);
    while !running.is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        failed += reap(running, listener);
    }
    failed
}

/// `--list`: each scheduled flow's next five fire times.
pub fn list(entries: &[Entry], now: DateTime<Utc>) -> String {
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
