//! `wvflow test`: the `test` items of a workspace, each one run of a flow through the same
//! runner and engine as `wvflow run`, with two things injected: a virtual clock
//! ([`crate::runtime::virtual_clock`]) and a launcher that answers activity calls from the
//! test's mocks ([`mock`]). Each test has a run store of its own in a temporary folder;
//! nothing is written to the workspace's. What the run did is then held to the test's
//! expectations ([`expect`]), each failure a diagnostic at the `expect` that failed.

mod expect;
pub mod mock;
mod rows;

use crate::check::Def;
use crate::diagnostics::{Code, Diagnostic};
use crate::runtime::clock::Clock;
use crate::runtime::engine::Summary;
use crate::runtime::launch::{ChainEnd, Runner, Start};
use crate::runtime::means::Means;
use crate::runtime::retry::SeededRandom;
use crate::runtime::virtual_clock::VirtualClock;
use crate::session::Flows;
use crate::source::FileId;
use crate::span::Span;
use crate::syntax::ast::{ExprKind, MockOutcome, Test, TestStatement};
use mock::{Answer, MockLauncher, Rule};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The run time of a test that names none: fixed, so that a test never reads the machine's
/// clock.
pub const DEFAULT_RUN_TIME: &str = "2000-01-01T00:00:00Z";

/// How long, in real time, a test may take before it is stopped as hung.
const HUNG_AFTER: Duration = Duration::from_secs(120);

/// The stages of a test run without their own `max_parallel`: fixed, so that virtual time
/// does not depend on the machine's cores.
const MAX_PARALLEL: usize = 8;

/// How one test went.
#[derive(Clone, Debug)]
pub struct TestResult {
    pub name: String,
    pub file: FileId,
    pub span: Span,
    /// Each expectation that did not hold, or why the test could not run; none when it passed.
    pub failures: Vec<Diagnostic>,
    /// The run's virtual time.
    pub elapsed: Duration,
    /// The real time the test took.
    pub wall: Duration,
}

impl TestResult {
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }
}

/// The tests of a checked workspace whose names contain `filter`, run in parallel, in
/// workspace order; and how many `filter` left out.
pub fn run_tests(flows: &Flows, filter: Option<&str>) -> (Vec<TestResult>, usize) {
    let all = &flows.index().tests;
    let chosen: Vec<Def<Test>> = all
        .iter()
        .copied()
        .filter(|t| filter.is_none_or(|f| t.node.name.name.contains(f)))
        .collect();
    let results = crate::parallel::map_indexed(chosen.len(), |i| run_test(flows, chosen[i]));
    (results, all.len() - chosen.len())
}

/// What a test's run left to be held to its expectations.
pub struct Ran<'a> {
    pub flow: String,
    /// The scheduler would not start the run, given the test's `upstream` states: it did not.
    pub gated: bool,
    /// Every run of the chain, in the order they ended (continued runs, jumps).
    pub summaries: Vec<Summary>,
    pub exit: u8,
    pub elapsed: Duration,
    pub stuck_at: Option<Duration>,
    pub calls: Vec<mock::Call>,
    pub db: &'a Path,
    /// Why the run could not start or was stopped, when it was.
    pub stopped: Option<String>,
}

/// Runs one test.
pub fn run_test(flows: &Flows, def: Def<Test>) -> TestResult {
    let started = Instant::now();
    let test = def.node;
    let mut result = TestResult {
        name: test.name.name.to_string(),
        file: def.file,
        span: test.span,
        failures: Vec::new(),
        elapsed: Duration::ZERO,
        wall: Duration::ZERO,
    };
    let fail = |message: String| Diagnostic::error(Code::E0806, def.file, test.name.span, message);
    match prepare_and_run(flows, def) {
        Ok(checked) => {
            result.elapsed = checked.0;
            result.failures = checked.1;
        }
        Err(message) => result.failures.push(fail(message)),
    }
    result.wall = started.elapsed();
    result
}

/// Runs the test's flow and holds it to the expectations: the virtual time and the failures.
fn prepare_and_run(flows: &Flows, def: Def<Test>) -> Result<(Duration, Vec<Diagnostic>), String> {
    let test = def.node;
    let Some((call, at)) = test.statements.iter().find_map(|s| match s {
        TestStatement::Call { flow, at, .. } => Some((flow, at.as_ref())),
        _ => None,
    }) else {
        return Err(format!("test `{}` runs no flow", test.name.name));
    };
    let plan = flows
        .plan(&call.name.name, call.version.as_ref().map(|v| v.value))
        .ok_or_else(|| format!("no flow `{}`", call.name.name))?;
    let args = crate::runtime::flow_call::call_args(call).map_err(|e| e.to_string())?;
    let params = crate::runtime::flow_call::bind_params(&plan, &args).map_err(|e| e.to_string())?;
    let run_time = match at.map(|e| &e.kind) {
        Some(ExprKind::Time { value, .. }) => value.to_string(),
        _ => DEFAULT_RUN_TIME.to_string(),
    };
    let epoch = chrono::DateTime::parse_from_rfc3339(&run_time)
        .map_err(|e| format!("the run time `{run_time}`: {e}"))?
        .with_timezone(&chrono::Utc);
    let folder = tempfile::tempdir().map_err(|e| format!("cannot make a scratch folder: {e}"))?;
    let db = folder.path().join("wvflow.db");
    let base = Path::new(flows.file_name(def.file))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();

    let clock = VirtualClock::default();
    let cancel = Arc::new(AtomicBool::new(false));
    clock.cancel_when_stuck(cancel.clone());
    let (rules, real) = mocks(test, &base)?;
    let launcher = MockLauncher {
        clock: &clock,
        rules,
        real,
        calls: Mutex::new(Vec::new()),
    };
    let signal_errors = Arc::new(Mutex::new(Vec::new()));
    schedule_signals(&clock, test, &db, &signal_errors);
    let random = SeededRandom::new(1);
    let means = Means {
        clock: &clock,
        epoch,
        random: &random,
        launcher: &launcher,
    };
    let max_parallel = plan.flow.max_parallel.map_or(MAX_PARALLEL, |n| n as usize);
    let runner = Runner::new(flows, db.clone())
        .means(means)
        .cancel(cancel.clone())
        .max_parallel(Some(max_parallel));
    let flow = plan.flow.name.clone();
    let start = Start::New {
        parent: None,
        jumped_from: None,
        continued_from: None,
        run_time: Some(run_time),
        gate: false,
    };
    let mut summaries = Vec::new();
    let hung = Arc::new(AtomicBool::new(false));
    let gated = !starts_after(test, &plan);
    let end = if gated {
        ChainEnd::Succeeded
    } else {
        watched(&cancel, &hung, || {
            runner.chain(plan, params, start, &mut |s| summaries.push(s.clone()))
        })
    };
    let (exit, mut stopped) = match end {
        ChainEnd::Succeeded => (0, None),
        ChainEnd::Failed => (1, None),
        ChainEnd::Stopped(e) => (1, Some(e)),
        ChainEnd::NotStarted(e) => (2, Some(e)),
    };
    if hung.load(Ordering::SeqCst) {
        stopped = Some(format!("the test took longer than {}s of real time and was stopped", HUNG_AFTER.as_secs()));
    }
    let errors = signal_errors.lock().map(|e| e.clone()).unwrap_or_default();
    if let Some(first) = errors.first() {
        stopped = Some(first.clone());
    }
    let ran = Ran {
        flow,
        gated,
        summaries,
        exit,
        elapsed: clock.now(),
        stuck_at: clock.stuck_at(),
        calls: launcher.calls(),
        db: &db,
        stopped,
    };
    let failures = expect::check(def.file, test, &ran);
    Ok((ran.elapsed, failures))
}

/// Runs `body`; if it has not ended after [`HUNG_AFTER`] of real time, `hung` is set and the
/// run cancelled.
fn watched<T>(cancel: &Arc<AtomicBool>, hung: &Arc<AtomicBool>, body: impl FnOnce() -> T) -> T {
    let (done, waiting) = std::sync::mpsc::channel::<()>();
    let (cancel, hung) = (cancel.clone(), hung.clone());
    let watch = std::thread::spawn(move || {
        if waiting.recv_timeout(HUNG_AFTER) == Err(std::sync::mpsc::RecvTimeoutError::Timeout) {
            hung.store(true, Ordering::SeqCst);
            cancel.store(true, Ordering::SeqCst);
        }
    });
    let result = body();
    let _ = done.send(());
    let _ = watch.join();
    result
}

/// Whether the scheduler would start the flow after the upstream runs the test states (`flow
/// F if G.failed`, `depends on G`); a test that states none runs the flow as `wvflow run` does.
fn starts_after(test: &Test, plan: &crate::plan::Plan) -> bool {
    use crate::runtime::state::StageState;
    let states: BTreeMap<String, StageState> = test
        .statements
        .iter()
        .filter_map(|s| match s {
            TestStatement::Upstream { flow, state, .. } => {
                Some((flow.name.to_string(), StageState::parse(&state.name)?))
            }
            _ => None,
        })
        .collect();
    if states.is_empty() {
        return true;
    }
    match &plan.flow.start_condition {
        Some(condition) => crate::runtime::rules::holds(condition, &states),
        None => plan
            .flow
            .depends_on
            .iter()
            .all(|flow| states.get(flow) == Some(&StageState::Success)),
    }
}

/// The mocks of a test by activity, and the activities it lets run.
type Mocks = (BTreeMap<String, Vec<Rule>>, BTreeSet<String>);

/// The test's `mock` lines as rules by activity, and the activities it lets run.
fn mocks(test: &Test, base: &Path) -> Result<Mocks, String> {
    let mut rules: BTreeMap<String, Vec<Rule>> = BTreeMap::new();
    let mut real = BTreeSet::new();
    for statement in &test.statements {
        match statement {
            TestStatement::Mock(mock) => {
                let takes = mock
                    .takes
                    .as_ref()
                    .and_then(|e| crate::check::values::duration(e).ok())
                    .unwrap_or_default();
                let answer = match &mock.outcome {
                    MockOutcome::Returns(given) => Answer::Rows(Arc::new(rows::ndjson(given, base)?)),
                    MockOutcome::Fails(code) => {
                        Answer::Fails(code.as_ref().map_or(1, |c| i32::try_from(c.value).unwrap_or(1)))
                    }
                    MockOutcome::NeverEnds => Answer::NeverEnds,
                };
                let when = mock
                    .when
                    .iter()
                    .flat_map(|(args, _)| args)
                    .filter_map(|arg| {
                        let (v, ty) = crate::check::values::literal_value(&arg.value)?;
                        Some((arg.name.as_ref()?.name.to_string(), v, ty))
                    })
                    .collect();
                rules.entry(mock.activity.name.to_string()).or_default().push(Rule {
                    when,
                    attempts: mock.attempts.as_ref().map(|(a, b)| (a.value, b.value)),
                    takes,
                    answer,
                });
            }
            TestStatement::Real { activities, .. } => {
                real.extend(activities.iter().map(|a| a.name.to_string()));
            }
            _ => {}
        }
    }
    Ok((rules, real))
}

/// Each `signal` line, sent to the test's run when the virtual clock reaches its time.
fn schedule_signals(clock: &VirtualClock, test: &Test, db: &Path, errors: &Arc<Mutex<Vec<String>>>) {
    for statement in &test.statements {
        let TestStatement::Signal { name, value, at, .. } = statement else {
            continue;
        };
        let Ok(at) = crate::check::values::duration(at) else {
            continue;
        };
        let json = value
            .as_ref()
            .and_then(crate::check::values::literal_value)
            .map(|(v, ty)| crate::value::json(&v, ty));
        let (db, name, errors) = (db.to_path_buf(), name.name.to_string(), errors.clone());
        clock.at(
            at,
            Box::new(move || {
                if let Err(e) = send_signal(&db, &name, json.as_ref())
                    && let Ok(mut errors) = errors.lock()
                {
                    errors.push(format!("signal `{name}` could not be sent: {e}"));
                }
            }),
        );
    }
}

/// Sends signal `name` to the test's run: the first run recorded (a continued one forwards
/// it to the run live now).
fn send_signal(db: &Path, name: &str, value: Option<&serde_json::Value>) -> Result<(), String> {
    let conn = crate::runtime::runs::schema::open(db).map_err(|e| e.to_string())?;
    let run_id: String = conn
        .query_row(
            "SELECT run_id FROM wvflow_runs WHERE parent_run IS NULL ORDER BY created_at, rowid LIMIT 1",
            [],
            |row| row.get(0),
        )
        .map_err(|_| "the run has not started".to_string())?;
    drop(conn);
    let given = value.map(crate::runtime::runs::SignalInput::Json);
    crate::runtime::runs::send_signal(db, &run_id, name, given)
        .map(|_| ())
        .map_err(|e| e.to_string())
}
