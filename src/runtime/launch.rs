//! Running flows as `wvflow run` does: claiming a run in the run store, its journal, hooks
//! and retention, child runs (`call`, in this process or, with `parent_close: abandon`, in a
//! process of their own) and the runs that jumps start. The command line only parses
//! arguments, calls this and prints.

use super::means::{Means, SystemMeans};
use super::continued;
use super::engine::{Context, FlowRunner, Jump, Progress, StageSummary, Summary, Tee, execute};
use super::flow_call::{CallArgs, bind_params};
use super::hooks;
use super::runs::catalog::{self, Retention, RunRow};
use super::runs::journal::{Claim, Journal, NewRun};
use super::runs::owner::Watch;
use super::runs::{new_run_id, run_params, zone_of};
use super::schedule::{run_time_text, utc_now};
use super::state::RunState;
use super::store::StoreConfig;
use crate::session::{Flows, Notice};
use crate::workspace::absolute;
use rusqlite::types::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// The workspace database of a workspace path: `.wvflow/workspace.db` in its folder.
pub fn default_db(path: &Path) -> PathBuf {
    let root = if path.is_dir() {
        path.to_path_buf()
    } else {
        path.parent().map(Path::to_path_buf).unwrap_or_default()
    };
    let root = if root.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        root
    };
    root.join(".wvflow").join("workspace.db")
}

/// How a run begins: new (started by the command line, a `call` or a jump) or resumed.
pub enum Start {
    New {
        /// The run and stage whose `call` started this run.
        parent: Option<(String, String)>,
        /// The run whose jump (`->`) started this run.
        jumped_from: Option<String>,
        /// The run this one continues (`continue_as_new`): its parent, run time and ended
        /// stages are taken, and its loops go on here.
        continued_from: Option<String>,
        /// The logical time (a schedule window); default: now.
        run_time: Option<String>,
        /// Check `depends on` first, as the scheduler does.
        gate: bool,
    },
    Resume {
        run: Box<RunRow>,
        /// Stages that already succeeded, in the order they finished; when the run was
        /// stopped while it compensated, every stage as it ended.
        resumed: Vec<crate::runtime::engine::StageSummary>,
        /// The compensations that already ended (a run stopped while it compensated).
        compensated: Vec<crate::runtime::engine::CompensationSummary>,
        /// The run had been cancelled (not failed) when it was stopped while compensating.
        cancelled: bool,
    },
}

/// Why a run could not start or a child run did not end as a run. `Display` gives the
/// message users see.
#[derive(Debug)]
pub enum Error {
    /// A jump or child names a flow the workspace does not have.
    NoFlow { flow: String },
    /// The arguments of a jump or child do not bind to its flow's parameters.
    Arguments(super::flow_call::Error),
    /// The run store could not record the run, or it may not be resumed.
    Journal(super::runs::journal::Error),
    /// The run's database cannot be used.
    Store(super::store::Error),
    /// The run store cannot be opened (or watched for requests).
    RunStore(super::runs::schema::Error),
    /// The run store cannot be read.
    Catalog(catalog::Error),
    /// A child run nested `CHAIN_DEPTH` deep already.
    TooDeep { flow: String },
    /// The thread of a child run panicked.
    ChildPanicked,
    /// The parent stage stopped while its child ran: the child was cancelled (with its
    /// compensations) or terminated.
    ChildStopped {
        why: ParentStop,
        run_id: String,
        compensated: bool,
    },
    /// The parent stage stopped while its abandonable child ran, in process `pid`.
    Abandoned {
        why: ParentStop,
        flow: String,
        pid: u32,
    },
    /// The process of an abandonable child run could not start.
    ChildNotStarted(Box<Error>),
    /// `wvflow run` could not be started as a process of its own.
    Spawn(std::io::Error),
    /// Its stdout could not be read.
    NoStdout,
    /// An abandonable child runs in a process of its own, on the real clock with real
    /// activities: a run on given means (`wvflow test`) cannot start one.
    AbandonableInTest { flow: String },
}

/// Why a parent stage stopped its child run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParentStop {
    Cancelled,
    TimedOut,
}

impl std::fmt::Display for ParentStop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ParentStop::Cancelled => "the parent stage was cancelled",
            ParentStop::TimedOut => "the parent stage timed out",
        })
    }
}

impl From<super::flow_call::Error> for Error {
    fn from(e: super::flow_call::Error) -> Self {
        Error::Arguments(e)
    }
}

impl From<super::runs::journal::Error> for Error {
    fn from(e: super::runs::journal::Error) -> Self {
        Error::Journal(e)
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::NoFlow { flow } => write!(f, "no flow `{flow}`"),
            Error::Arguments(e) => write!(f, "{e}"),
            Error::Journal(e) => write!(f, "{e}"),
            Error::Store(e) => write!(f, "{e}"),
            Error::RunStore(e) => write!(f, "{e}"),
            Error::Catalog(e) => write!(f, "{e}"),
            Error::TooDeep { flow } => write!(
                f,
                "child run of `{flow}` not started: {} runs are nested already (the depth limit); do the flows `call` each other in a loop?",
                crate::plan::ir::CHAIN_DEPTH
            ),
            Error::ChildPanicked => f.write_str("the child run panicked"),
            Error::ChildStopped {
                why,
                run_id,
                compensated,
            } => write!(
                f,
                "{why}: child run {run_id} {}",
                if *compensated {
                    "cancelled"
                } else {
                    "terminated"
                }
            ),
            Error::Abandoned { why, flow, pid } => write!(
                f,
                "{why}: child run of `{flow}` (process {pid}) left running (parent_close: abandon)"
            ),
            Error::ChildNotStarted(e) => write!(f, "cannot start the child run: {e}"),
            Error::Spawn(e) => write!(f, "{e}"),
            Error::NoStdout => f.write_str("no stdout"),
            Error::AbandonableInTest { flow } => write!(
                f,
                "a child run of `{flow}` with `parent_close: abandon` runs in a process of its own, with real activities: a test cannot run it"
            ),
        }
    }
}

impl std::error::Error for Error {}


/// How a chain of runs ([`Runner::chain`]) ended.
#[derive(Debug, PartialEq)]
pub enum ChainEnd {
    /// Every run succeeded.
    Succeeded,
    /// The last run did not succeed.
    Failed,
    /// A jump could not be followed (no such flow, bad arguments, the depth limit).
    Stopped(String),
    /// A run could not start: the run store or the run's database is unusable.
    NotStarted(String),
}

impl Runner<'_> {
    /// Runs `plan`, then the runs its jumps start, one after the other; `ended` is told each
    /// run's summary as it ends. A run that does not succeed ends the chain.
    pub fn chain(
        &self,
        plan: crate::plan::Plan,
        params: BTreeMap<String, Value>,
        start: Start,
        ended: &mut dyn FnMut(&Summary),
    ) -> ChainEnd {
        let mut next = Some((plan, params, start));
        let mut depth = 0;
        let mut end = ChainEnd::Succeeded;
        while let Some((plan, params, start)) = next.take() {
            let cancel = self.cancel.clone();
            let summary = match self.execute_continued(&plan, params, cancel, true, start, ended) {
                Ok(s) => s,
                Err(e) => return ChainEnd::NotStarted(e.to_string()),
            };
            end = if summary.state == RunState::Success {
                ChainEnd::Succeeded
            } else {
                ChainEnd::Failed
            };
            if let Some(jump) = summary.next.first() {
                depth += 1;
                if depth > crate::plan::ir::CHAIN_DEPTH {
                    return ChainEnd::Stopped(format!(
                        "jump chain stopped after {} runs (the depth limit)",
                        crate::plan::ir::CHAIN_DEPTH
                    ));
                }
                let (plan, params) = match self.prepare(jump) {
                    Ok(prepared) => prepared,
                    Err(e) => return ChainEnd::Stopped(e.to_string()),
                };
                let start = Start::New {
                    parent: None,
                    jumped_from: Some(summary.run_id.clone()),
                    continued_from: None,
                    run_time: None,
                    gate: false,
                };
                next = Some((plan, params, start));
            }
        }
        end
    }
}

/// Runs flows of one workspace: the run asked for, its jumps, and its child runs.
pub struct Runner<'w> {
    /// The workspace's flows: the plans of child runs and jumps, the path child runs in a
    /// process of their own load, and who is told what the runs warn of.
    flows: &'w Flows<'w>,
    db: PathBuf,
    max_parallel: Option<usize>,
    /// Time, jitter and processes when given (`wvflow test`); otherwise each run takes the
    /// real clock from its start, jitter seeded by the time, and real processes.
    means: Option<Means<'w>>,
    system: SystemMeans,
    cancel: Arc<AtomicBool>,
    /// Told of every stage and attempt besides the run store (a terminal's progress display).
    observer: Option<&'w (dyn Progress + Sync)>,
    /// How deep each run of this process is nested in `call`s: the depth limit holds there.
    depths: std::sync::Mutex<BTreeMap<String, usize>>,
}

impl<'w> Runner<'w> {
    /// A runner of a checked workspace's flows recording in the workspace database `db`.
    pub fn new(flows: &'w Flows<'w>, db: PathBuf) -> Self {
        Runner {
            flows,
            db,
            max_parallel: None,
            means: None,
            system: SystemMeans::default(),
            cancel: Arc::default(),
            observer: None,
            depths: Default::default(),
        }
    }

    /// Stages of a run executing at once (default: the flow's `max_parallel`, else the
    /// number of cores).
    pub fn max_parallel(mut self, n: Option<usize>) -> Self {
        self.max_parallel = n;
        self
    }

    /// The flag that cancels the runs (Ctrl-C, SIGTERM).
    pub fn cancel(mut self, flag: Arc<AtomicBool>) -> Self {
        self.cancel = flag;
        self
    }

    /// The clock, wall time, jitter and launcher of every run (see [`Means`]).
    pub fn means(mut self, means: Means<'w>) -> Self {
        self.means = Some(means);
        self
    }

    /// The means of the runs: those given, else the real ones.
    fn used_means(&self) -> Means<'_> {
        self.means.unwrap_or_else(|| self.system.means())
    }

    /// The wall time now: on the given clock, else the system's.
    fn wall_now(&self) -> chrono::DateTime<chrono::Utc> {
        self.means.map_or_else(utc_now, |m| m.now())
    }

    pub fn observer(mut self, observer: Option<&'w (dyn Progress + Sync)>) -> Self {
        self.observer = observer;
        self
    }
}

impl<'w> Runner<'w> {
    /// The plan of a jump's or child's flow with its parameters bound.
    fn prepare(
        &self,
        target: &Jump,
    ) -> Result<(crate::plan::Plan, BTreeMap<String, Value>), Error> {
        let plan = self
            .flows
            .plan(&target.flow, target.version)
            .ok_or_else(|| Error::NoFlow {
                flow: target.flow.clone(),
            })?;
        let args: CallArgs = target
            .args
            .iter()
            .map(|(k, v)| (Some(k.clone()), v.clone()))
            .collect();
        let params = bind_params(&plan, &args)?;
        Ok((plan, params))
    }

    /// The run claimed in the run store: a new run recorded (or skipped: `Err` with its
    /// summary, as for a window that ran already), or a run taken up again.
    fn claim(
        &self,
        plan: &crate::plan::Plan,
        args: &BTreeMap<String, Value>,
        cancel: &Arc<AtomicBool>,
        start: Start,
    ) -> Result<Result<Claimed<'w>, Summary>, Error> {
        let runs_folder = self.db.parent().unwrap_or(Path::new(".")).join("runs");
        let claimed = match start {
            Start::New {
                parent,
                jumped_from,
                continued_from,
                run_time,
                gate,
            } => {
                let continues = match &continued_from {
                    Some(from) => Some(self.continues(from)?),
                    None => None,
                };
                let (parent, run_time) = match &continues {
                    Some((old, _)) => (
                        old.parent_run.clone().zip(old.parent_stage.clone()),
                        Some(old.run_time.clone()),
                    ),
                    None => (parent, run_time),
                };
                let run_id = new_run_id();
                self.nest(&run_id, parent.as_ref(), continued_from.as_deref());
                // A scheduled run for a given window runs once per window.
                let once_per_window = gate && run_time.is_some();
                let run_time = run_time.unwrap_or_else(|| run_time_text(self.wall_now()));
                let run_db = runs_folder.join(format!("{run_id}.db"));
                if let Some((old, carried)) = &continues {
                    let new = StoreConfig {
                        workspace_db: self.db.clone(),
                        run_db: run_db.clone(),
                        base: PathBuf::from("."),
                    };
                    continued::carry_rows(Path::new(&old.run_db), &new, plan, carried)
                        .map_err(Error::Store)?;
                }
                // Absolute, so that the run can be resumed from another folder.
                let (workspace, run_db_text) = (absolute(self.flows.path()), absolute(&run_db));
                let new = NewRun {
                    run_id: &run_id,
                    plan,
                    args,
                    run_time: &run_time,
                    workspace: &workspace.to_string_lossy(),
                    run_db: &run_db_text.to_string_lossy(),
                    parent: parent.as_ref().map(|(r, s)| (r.as_str(), s.as_str())),
                    jumped_from: jumped_from.as_deref(),
                    continued_from: continues
                        .as_ref()
                        .map(|(old, carried)| (old.run_id.as_str(), carried.as_slice())),
                    gate,
                    once_per_window,
                    skip: None,
                };
                let journal = match self.record(&new, cancel)? {
                    Ok(journal) => journal,
                    Err(skipped) => return Ok(Err(skipped)),
                };
                Claimed {
                    run_id,
                    run_time,
                    run_db,
                    journal,
                    resumed: continues.map(|(_, carried)| carried).unwrap_or_default(),
                    compensated: Vec::new(),
                }
            }
            Start::Resume {
                run,
                resumed,
                compensated,
                cancelled,
            } => {
                let run = *run;
                let reporter = self.flows.reporter();
                let journal = Journal::reclaim(&self.db, &run.run_id, cancel.clone(), reporter)?;
                // A cancelled run stopped while it compensated ends cancelled again.
                if cancelled {
                    cancel.store(true, std::sync::atomic::Ordering::SeqCst);
                }
                Claimed {
                    run_id: run.run_id,
                    run_time: run.run_time,
                    run_db: PathBuf::from(run.run_db),
                    journal,
                    resumed,
                    compensated,
                }
            }
        };
        Ok(Ok(claimed))
    }

    /// Records the new run `new`: its journal, or the summary of a run skipped (a schedule's
    /// gate, no free slot of the flow's `concurrency`).
    fn record(
        &self,
        new: &NewRun,
        cancel: &Arc<AtomicBool>,
    ) -> Result<Result<Journal<'w>, Summary>, Error> {
        let reporter = self.flows.reporter();
        let (journal, claim) = Journal::create(&self.db, new, cancel.clone(), reporter)?;
        let Claim::Skipped { reason } = claim else {
            return Ok(Ok(journal));
        };
        let flow = new.plan.flow.name.clone();
        reporter.notice(&Notice::RunSkipped {
            run_id: new.run_id.to_string(),
            flow: flow.clone(),
            reason,
        });
        Ok(Err(Summary {
            run_id: new.run_id.to_string(),
            flow,
            state: RunState::Skipped,
            stages: Vec::new(),
            compensations: Vec::new(),
            next: Vec::new(),
            outputs: None,
        }))
    }

    /// Records how deep run `run_id` is nested in `call`s: one more than its `parent`.
    fn nest(&self, run_id: &str, parent: Option<&(String, String)>, continued_from: Option<&str>) {
        let Ok(mut depths) = self.depths.lock() else {
            return;
        };
        let depth = parent.map_or(0, |(p, _)| depths.get(p).map_or(0, |d| d + 1));
        depths.insert(run_id.to_string(), depth);
        // A continued run starts nothing more: the map holds the runs of a chain that go on,
        // not every run it made.
        if let Some(from) = continued_from {
            depths.remove(from);
        }
    }

    /// The run `from`, which a new run continues, and the stages it carries from it.
    fn continues(&self, from: &str) -> Result<(RunRow, Vec<StageSummary>), Error> {
        let conn = super::runs::schema::open(&self.db).map_err(Error::RunStore)?;
        let old = catalog::run_in(&conn, from)
            .map_err(Error::Catalog)?
            .ok_or_else(|| Error::Catalog(catalog::Error::NoRun { run_id: from.into() }))?;
        let carried = continued::carried_stages(&conn, from).map_err(Error::Catalog)?;
        Ok((old, carried))
    }

    /// After the run: the flow's hooks fired (and recorded), old runs removed (`keep_runs`).
    fn after_run(&self, plan: &crate::plan::Plan, summary: &Summary, ctx: &Context, journal: &Journal) {
                for outcome in hooks::fire(
            plan,
            summary,
            &ctx.params,
            Means {
                clock: ctx.clock,
                epoch: ctx.epoch,
                random: ctx.random,
                launcher: ctx.launcher,
            },
            &ctx.cwd,
            Some(journal),
        ) {
            if let Some(error) = &outcome.error {
                self.flows.reporter().notice(&Notice::HookFailed {
                    event: outcome.event.clone(),
                    target: outcome.target.clone(),
                    run_id: summary.run_id.clone(),
                    error: error.clone(),
                });
            }
            journal.hook(&outcome);
        }
        if plan.flow.keep_runs.is_some() {
            let rules = Retention {
                flow: Some(plan.flow.name.clone()),
                older_than_ms: None,
                stale: false,
                keep_runs: true,
            };
            let cleaned: Result<_, Box<dyn std::error::Error>> =
                crate::runtime::runs::schema::open(&self.db)
                    .map_err(Into::into)
                    .and_then(|mut conn| Ok(catalog::clean(&mut conn, &rules)?));
            if let Err(e) = cleaned {
                self.flows.reporter().notice(&Notice::RetentionFailed {
                    flow: plan.flow.name.clone(),
                    error: e.to_string(),
                });
                journal.retention_failed(&e.to_string());
            }
        }
    }

    /// Runs one flow run and the runs that continue it (`continue_as_new`), with its
    /// arguments; `ended` is told each one's summary. The last one's summary; `Err` when one
    /// could not start.
    fn execute_continued(
        &self,
        plan: &crate::plan::Plan,
        args: BTreeMap<String, Value>,
        cancel: Arc<AtomicBool>,
        compensate_on_cancel: bool,
        start: Start,
        ended: &mut dyn FnMut(&Summary),
    ) -> Result<Summary, Error> {
        let mut start = start;
        loop {
            let summary =
                self.execute_with(plan, args.clone(), cancel.clone(), compensate_on_cancel, start)?;
            ended(&summary);
            if summary.state != RunState::Continued {
                return Ok(summary);
            }
            // Not a jump: no depth limit, for a loop may go on for months.
            start = Start::New {
                parent: None,
                jumped_from: None,
                continued_from: Some(summary.run_id),
                run_time: None,
                gate: false,
            };
        }
    }

    /// Runs one flow run, recorded in the run store from its claim to its end. `Err` when
    /// it could not start: the run store or the run's database is unusable.
    fn execute_with(
        &self,
        plan: &crate::plan::Plan,
        args: BTreeMap<String, Value>,
        cancel: Arc<AtomicBool>,
        compensate_on_cancel: bool,
        start: Start,
    ) -> Result<Summary, Error> {
        let Claimed {
            run_id,
            run_time,
            run_db,
            journal,
            resumed,
            compensated,
        } = match self.claim(plan, &args, &cancel, start)? {
            Ok(claimed) => claimed,
            Err(skipped) => return Ok(skipped),
        };
        let params = run_params(args, &run_time, &run_id, zone_of(plan));
        let folder = Path::new(&plan.flow.origin.file)
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let folder = if folder.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            folder
        };
        let stores = StoreConfig {
            run_db,
            workspace_db: self.db.clone(),
            base: folder.clone(),
        };
        // Opening the store once up front reports a bad database before any stage starts.
        if let Err(e) = stores.connect() {
            journal.abort(&e.to_string());
            return Err(Error::Store(e));
        }
        let paused = Arc::new(AtomicBool::new(false));
        let watch = Watch::start(
            self.db.clone(),
            run_id.clone(),
            cancel.clone(),
            paused.clone(),
        );
        let _watch = match watch {
            Ok(watch) => watch,
            Err(e) => {
                journal.abort(&e.to_string());
                return Err(Error::RunStore(e));
            }
        };
        let cores = crate::parallel::cores();
        let max_parallel = self
            .max_parallel
            .or(plan.flow.max_parallel.map(|n| n as usize))
            .unwrap_or(cores);
        let mut observers: Vec<&dyn Progress> = vec![&journal];
        if let Some(observer) = self.observer {
            observers.push(observer);
        }
        let progress = Tee(observers);
        let means = self.used_means();
        let ctx = Context {
            clock: means.clock,
            epoch: means.epoch,
            random: means.random,
            launcher: means.launcher,
            cwd: folder,
            run_id,
            flow: plan.flow.name.clone(),
            params,
            cancel,
            flows: Some(self),
            jumps: Default::default(),
            progress: Some(&progress),
            compensate_on_cancel,
            paused,
            resumed,
            compensated,
            single_attempt: None,
            inbox: None,
            continues: true,
        };
        let mut summary = execute(plan, &stores, &ctx, max_parallel);
        // A run the store could not record was stopped for that reason: it failed.
        if journal.lost().is_some() {
            summary.state = RunState::Failed;
        }
        journal.finish(&summary);
        self.after_run(plan, &summary, &ctx, &journal);
        Ok(summary)
    }
}

/// A run claimed in the run store, ready to execute.
struct Claimed<'r> {
    run_id: String,
    run_time: String,
    run_db: PathBuf,
    journal: Journal<'r>,
    /// What an earlier execution did (`runs resume`): stages, compensations owed.
    resumed: Vec<crate::runtime::engine::StageSummary>,
    compensated: Vec<crate::runtime::engine::CompensationSummary>,
}

impl FlowRunner for Runner<'_> {
    fn run_child(
        &self,
        target: &Jump,
        parent: (&str, &str),
        cancel: Arc<AtomicBool>,
        parent_close: crate::plan::ir::ParentClose,
        timeout: Option<Duration>,
    ) -> Result<Summary, Error> {
        let clock = self.used_means().clock;
        let started = clock.now();
        let stop = || {
            cancel.load(Ordering::Relaxed)
                || timeout.is_some_and(|t| clock.now().saturating_sub(started) >= t)
        };
        let why = || {
            if cancel.load(Ordering::Relaxed) {
                ParentStop::Cancelled
            } else {
                ParentStop::TimedOut
            }
        };
        let depth = self
            .depths
            .lock()
            .map_or(0, |d| d.get(parent.0).copied().unwrap_or(0));
        if depth + 1 >= crate::plan::ir::CHAIN_DEPTH {
            return Err(Error::TooDeep {
                flow: target.flow.clone(),
            });
        }
        if parent_close == crate::plan::ir::ParentClose::Abandon {
            if self.means.is_some() {
                return Err(Error::AbandonableInTest {
                    flow: target.flow.clone(),
                });
            }
            return self.run_abandonable(target, parent, stop, why);
        }
        let (plan, params) = self.prepare(target)?;
        let child_cancel = Arc::new(AtomicBool::new(false));
        let compensate = parent_close == crate::plan::ir::ParentClose::RequestCancel;
        // A virtual clock stops at the timeout until it is noticed here. The child's thread
        // carries this stage's work meanwhile: this one only watches it.
        let hold = timeout.and_then(|t| clock.hold_at(started + t));
        let ended = std::thread::scope(|scope| {
            let start = Start::New {
                parent: Some((parent.0.to_string(), parent.1.to_string())),
                jumped_from: None,
                continued_from: None,
                run_time: None,
                gate: false,
            };
            let child = scope.spawn(|| {
                let cancel = child_cancel.clone();
                self.execute_continued(&plan, params, cancel, compensate, start, &mut |_| {})
            });
            while !child.is_finished() {
                if stop() {
                    child_cancel.store(true, Ordering::SeqCst);
                    let summary = child.join().map_err(|_| Error::ChildPanicked)??;
                    return Err(Error::ChildStopped {
                        why: why(),
                        run_id: summary.run_id,
                        compensated: compensate,
                    });
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            child.join().map_err(|_| Error::ChildPanicked)?
        });
        if let Some(hold) = hold {
            clock.release(hold);
        }
        ended
    }
}

impl Runner<'_> {
    /// `parent_close: abandon`: the child runs as a process of its own (its own process group,
    /// so Ctrl-C in the terminal does not reach it), which outlives the parent stage.
    fn run_abandonable(
        &self,
        target: &Jump,
        parent: (&str, &str),
        stop: impl Fn() -> bool,
        why: impl Fn() -> ParentStop,
    ) -> Result<Summary, Error> {
        let call = flow_call_text(target);
        let mut child = RunProcess::spawn(
            [
                self.flows.path().as_os_str(),
                call.as_ref(),
                "--db".as_ref(),
                self.db.as_os_str(),
                "--parent".as_ref(),
                parent.0.as_ref(),
                parent.1.as_ref(),
            ],
            std::process::Stdio::null(),
        )
        .map_err(|e| Error::ChildNotStarted(Box::new(e)))?;
        loop {
            if child.finished() {
                let summary = child.summary();
                let run_id = summary["run_id"].as_str().unwrap_or_default().to_string();
                // What the run store recorded of it: its stages, and where its rows are.
                let (stages, outputs) = self.recorded_outputs(&run_id).unwrap_or_default();
                return Ok(Summary {
                    run_id,
                    flow: target.flow.clone(),
                    state: serde_json::from_value(summary["state"].clone())
                        .unwrap_or(RunState::Failed),
                    stages,
                    compensations: Vec::new(),
                    next: Vec::new(),
                    outputs,
                });
            }
            if stop() {
                return Err(Error::Abandoned {
                    why: why(),
                    flow: target.flow.clone(),
                    pid: child.child.id(),
                });
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Runner<'_> {
    /// A finished run's stages and final rows' place, as the run store has them.
    fn recorded_outputs(
        &self,
        run_id: &str,
    ) -> Result<
        (
            Vec<super::engine::StageSummary>,
            Option<super::engine::Outputs>,
        ),
        Error,
    > {
        let conn = super::runs::schema::open(&self.db).map_err(Error::RunStore)?;
        let run = catalog::run_in(&conn, run_id)
            .map_err(Error::Catalog)?
            .ok_or_else(|| {
                Error::Catalog(catalog::Error::NoRun {
                    run_id: run_id.to_string(),
                })
            })?;
        let plan = catalog::plan_of(&conn, run_id).map_err(Error::Catalog)?;
        let stages: Vec<_> = catalog::stages(&conn, run_id)
            .map_err(Error::Catalog)?
            .into_iter()
            .map(|s| s.summary)
            .collect();
        let last = super::engine::final_stages(&plan.flow, &stages);
        Ok((stages, Some((PathBuf::from(run.run_db), last))))
    }
}

/// A `wvflow run` in a process of its own: its own process group, so Ctrl-C in the terminal
/// reaches only the process that started it, which decides. Its stdout (the JSON summary) is
/// read as it comes, so a run that prints much never blocks on a full pipe.
pub struct RunProcess {
    pub child: std::process::Child,
    output: std::thread::JoinHandle<String>,
}

impl RunProcess {
    /// `wvflow run ARGS... --format json`, its stderr to `stderr`.
    pub fn spawn<'a>(
        args: impl IntoIterator<Item = &'a std::ffi::OsStr>,
        stderr: std::process::Stdio,
    ) -> Result<RunProcess, Error> {
        let exe = std::env::current_exe().map_err(Error::Spawn)?;
        let mut command = std::process::Command::new(exe);
        command
            .arg("run")
            .args(args)
            .args(["--format", "json"])
            .stdout(std::process::Stdio::piped())
            .stderr(stderr);
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let mut child = command.spawn().map_err(Error::Spawn)?;
        let mut stdout = child.stdout.take().ok_or(Error::NoStdout)?;
        let output = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = std::io::Read::read_to_string(&mut stdout, &mut text);
            text
        });
        Ok(RunProcess { child, output })
    }

    pub fn finished(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    /// The first summary the run printed; `Null` when it printed none (it could not start).
    pub fn summary(self) -> serde_json::Value {
        let text = self.output.join().unwrap_or_default();
        serde_json::Deserializer::from_str(&text)
            .into_iter()
            .next()
            .and_then(Result::ok)
            .unwrap_or_default()
    }
}

/// `Name@v(arg = literal, ...)` for a command line.
fn flow_call_text(target: &Jump) -> String {
    call_text(&target.flow, target.version, &target.args)
}

/// `Name@version(v)(arg = literal, ...)`: a flow call as `wvflow run` reads it, for values
/// that [`super::flow_call::bind_params`] accepted.
pub fn call_text(flow: &str, version: Option<u32>, args: &BTreeMap<String, Value>) -> String {
    let version = version
        .map(|v| format!("@version({v})"))
        .unwrap_or_default();
    let args: Vec<String> = args
        .iter()
        .map(|(k, v)| {
            let value = match v {
                Value::Null => "null".to_string(),
                Value::Integer(n) => n.to_string(),
                // Plain decimals with a point: the literal reader takes no exponent.
                Value::Real(x) => {
                    let text = format!("{x}");
                    if text.contains('.') {
                        text
                    } else {
                        text + ".0"
                    }
                }
                Value::Text(t) => format!(
                    "'{}'",
                    t.replace('\\', "\\\\")
                        .replace('\'', "\\'")
                        .replace('\n', "\\n")
                        .replace('\t', "\\t")
                ),
                Value::Blob(b) => format!("'{}'", String::from_utf8_lossy(b)),
            };
            format!("{k} = {value}")
        })
        .collect();
    format!("{flow}{version}({})", args.join(", "))
}
