//! The executor with an injected clock and a scripted launcher: retries and backoff, trigger
//! rules and skipping, saga order, `each` limits, without starting a process or waiting.

use rusqlite::types::Value;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;
use wvflow::check::Index;
use wvflow::plan::lower;
use wvflow::runtime::activity::{AttemptFailure, Request};
use wvflow::runtime::clock::ManualClock;
use wvflow::runtime::engine::{Context, ScriptedLauncher, Summary, execute};
use wvflow::runtime::retry::{Outcome, SeededRandom};
use wvflow::runtime::store::{Rows, StoreConfig};
use wvflow::workspace::Workspace;

/// Runs the only flow of `src`; `script` answers each activity attempt.
fn run(
    src: &str,
    clock: &ManualClock,
    script: impl Fn(&Request) -> Outcome<Rows> + Send + Sync,
) -> (Summary, Vec<String>) {
    run_with(src, clock, 1, script)
}

fn run_with(
    src: &str,
    clock: &ManualClock,
    max_parallel: usize,
    script: impl Fn(&Request) -> Outcome<Rows> + Send + Sync,
) -> (Summary, Vec<String>) {
    run_in(
        src,
        clock,
        max_parallel,
        None,
        &std::sync::Arc::default(),
        script,
    )
}

/// `dir` keeps the workspace database between runs; `cancel` is the run's cancel flag.
fn run_in(
    src: &str,
    clock: &ManualClock,
    max_parallel: usize,
    dir: Option<&Path>,
    cancel: &std::sync::Arc<std::sync::atomic::AtomicBool>,
    script: impl Fn(&Request) -> Outcome<Rows> + Send + Sync,
) -> (Summary, Vec<String>) {
    let mut workspace = Workspace::default();
    workspace.add("flow.wv".into(), src.to_string());
    assert!(
        workspace.diagnostics().next().is_none(),
        "{:?}",
        workspace.diagnostics().collect::<Vec<_>>()
    );
    let found = wvflow::check::check(&workspace).diagnostics;
    assert!(found.iter().all(|d| !d.is_error()), "{found:?}");
    let index = Index::new(&workspace);
    let plan = lower(&workspace, &index, index.flows[0]);
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let dir = match dir {
        Some(d) => d.to_path_buf(),
        None => {
            let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
                "runtime-{}",
                NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            ));
            let _ = std::fs::remove_dir_all(&d);
            d
        }
    };
    let stores = StoreConfig {
        workspace_db: dir.join("workspace.db"),
        run_db: dir.join(format!(
            "run-{}.db",
            NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        )),
        base: dir.clone(),
    };
    let calls = Mutex::new(Vec::new());
    let launcher = ScriptedLauncher(|r: &Request| {
        let attempt = r
            .env
            .iter()
            .find(|(k, _)| k == "WVFLOW_ATTEMPT")
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
        calls
            .lock()
            .unwrap()
            .push(format!("{}#{attempt}", r.activity));
        script(r)
    });
    let random = SeededRandom::new(7);
    let ctx = Context {
        clock,
        // `run_time` below: the run starts at its logical time.
        epoch: "2026-01-01T00:00:00Z".parse().unwrap(),
        random: &random,
        launcher: &launcher,
        cwd: ".".into(),
        run_id: "test".into(),
        flow: plan.flow.name.clone(),
        params: run_params(&plan),
        cancel: cancel.clone(),
        flows: None,
        jumps: Default::default(),
        progress: None,
        compensate_on_cancel: true,
        paused: Default::default(),
        resumed: Vec::new(),
        compensated: Vec::new(),
        single_attempt: None,
        inbox: None,
        continues: false,
    };
    let summary = execute(&plan, &stores, &ctx, max_parallel);
    (summary, calls.into_inner().unwrap())
}

/// The run's values as the tests' runs have them: each parameter's default, and the run time
/// the clock starts at (2026-01-01, pinned).
pub fn run_params(plan: &wvflow::plan::Plan) -> BTreeMap<String, Value> {
    let mut params: BTreeMap<String, Value> = plan
        .flow
        .params
        .iter()
        .filter_map(|p| {
            Some((
                p.name.clone(),
                wvflow::runtime::store::from_json(p.default.as_ref()?),
            ))
        })
        .collect();
    params.insert(
        "run_time".into(),
        Value::Text("2026-01-01T00:00:00Z".into()),
    );
    params.insert("run_date".into(), Value::Text("2026-01-01".into()));
    params
}

/// An attempt that printed these NDJSON rows.
pub fn ok(json: &str) -> Outcome<Rows> {
    let objects: Vec<serde_json::Map<String, serde_json::Value>> = json
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    Outcome::Success(Rows::from_json_objects(&objects))
}

/// An attempt that exited with `code`, saying `exit CODE`.
pub fn fail(code: i32) -> Outcome<Rows> {
    Outcome::Failure(AttemptFailure::Said {
        message: format!("exit {code}"),
        exit_code: Some(code),
    })
}

fn states(summary: &Summary) -> BTreeMap<&str, &str> {
    summary
        .stages
        .iter()
        .map(|s| (s.stage.as_str(), s.state.as_str()))
        .collect()
}

#[test]
fn retries_follow_the_backoff_and_succeed_on_a_later_attempt() {
    let clock = ManualClock::default();
    let src = "activity flaky = exec('flaky')\nflow f = { stage s with { retries: 4, retry_delay: 2s, backoff: linear } = flaky() }\n";
    let (summary, calls) = run(src, &clock, |r| {
        if r.env.iter().any(|(k, v)| k == "WVFLOW_ATTEMPT" && v == "3") {
            ok(r#"{"n": 1}"#)
        } else {
            fail(1)
        }
    });
    assert_eq!(summary.state, "success");
    assert_eq!(summary.stages[0].attempts, 3);
    assert_eq!(summary.stages[0].rows, 1);
    assert_eq!(calls, ["flaky#1", "flaky#2", "flaky#3"]);
    assert_eq!(
        clock.sleeps(),
        [Duration::from_secs(2), Duration::from_secs(4)]
    );
}

#[test]
fn retries_exhausted_fail_the_flow_and_skip_what_depends_on_it() {
    let clock = ManualClock::default();
    let src = "activity a = exec('a')\nactivity b = exec('b')\nflow f = {\n  stage first [retries: 2, backoff: constant] = a()\n  stage second = from first | b()\n  stage fallback if first.failed = b()\n}\n";
    let (summary, calls) = run(src, &clock, |r| {
        if r.activity == "a" {
            fail(2)
        } else {
            ok(r#"{"ok": true}"#)
        }
    });
    assert_eq!(summary.state, "failed");
    assert_eq!(
        states(&summary),
        BTreeMap::from([
            ("first", "failed"),
            ("second", "skipped"),
            ("fallback", "success")
        ])
    );
    assert_eq!(summary.stages[0].attempts, 3);
    assert_eq!(summary.stages[0].error_text().as_deref(), Some("exit 2"));
    assert_eq!(calls, ["a#1", "a#2", "a#3", "b#1"]);
    assert_eq!(clock.sleeps(), [Duration::from_secs(1); 2]);
}

#[test]
fn non_retryable_exit_codes_and_on_failure_ignore() {
    let clock = ManualClock::default();
    let src = "activity a = exec('a')\nflow f = { stage s with { retries: 5, non_retryable: [64], on_failure: ignore } = a() }\n";
    let (summary, calls) = run(src, &clock, |_| fail(64));
    assert_eq!(calls, ["a#1"]);
    assert_eq!(summary.stages[0].state, "failed");
    assert_eq!(
        summary.state, "success",
        "an ignored failure does not fail the flow"
    );
}

#[test]
fn trigger_rules_choose_what_runs() {
    let clock = ManualClock::default();
    let src = "activity ok_ = exec('ok')\nactivity bad = exec('bad')\nflow f = {\n  stage a = ok_()\n  stage b [on_failure: ignore] = bad()\n  stage any_failed [trigger: one_failed] = merge a, b\n  stage all_good = merge a, b\n  stage tolerant [trigger: none_failed_min_one_success] = merge a, all_good\n  stage always_ [trigger: always] = merge b, all_good\n}\n";
    let (summary, _) = run(src, &clock, |r| {
        if r.activity == "bad" {
            fail(1)
        } else {
            ok(r#"{"v": 1}"#)
        }
    });
    assert_eq!(
        states(&summary),
        BTreeMap::from([
            ("a", "success"),
            ("b", "failed"),
            ("any_failed", "success"),
            ("all_good", "skipped"),
            ("tolerant", "success"),
            ("always_", "success")
        ])
    );
    // The skipped stage contributes no rows: `tolerant` reads only `a`'s row.
    assert_eq!(
        summary
            .stages
            .iter()
            .find(|s| s.stage == "tolerant")
            .unwrap()
            .rows,
        1
    );
}

#[test]
fn saga_compensates_succeeded_stages_in_reverse_order_with_their_rows() {
    let clock = ManualClock::default();
    let src = "activity book(what: string) = exec('book', what)\n\
        activity undo(what: string) with { retries: 1 } = exec('undo', what)\n\
        activity pay = exec('pay')\n\
        flow trip = {\n  stage flight [compensate: undo(_.what)] = book('flight')\n  stage hotel [compensate: undo(_.what)] = from flight | book('hotel')\n  stage payment = from hotel | pay()\n}\n";
    let seen = Mutex::new(Vec::new());
    let (summary, calls) = run(src, &clock, |r| match r.activity.as_str() {
        "book" => ok(&format!(r#"{{"what": "{}"}}"#, r.args["what"].as_text())),
        "undo" => {
            seen.lock()
                .unwrap()
                .push((r.args["what"].as_text(), r.input.len()));
            ok("")
        }
        _ => fail(1),
    });
    assert_eq!(summary.state, "failed");
    assert_eq!(calls, ["book#1", "book#1", "pay#1", "undo#1", "undo#1"]);
    let order: Vec<_> = summary
        .compensations
        .iter()
        .map(|c| (c.stage.as_str(), c.state.as_str()))
        .collect();
    assert_eq!(order, [("hotel", "success"), ("flight", "success")]);
    assert_eq!(
        seen.into_inner().unwrap(),
        [("hotel".to_string(), 1), ("flight".to_string(), 1)]
    );
}

#[test]
fn each_calls_once_per_row_and_tolerates_failures_up_to_the_limit() {
    let clock = ManualClock::default();
    let src = |tolerated: &str| {
        format!(
            "activity probe(n: int) = exec('probe', n)\nflow f = {{ stage s with {{ concurrency: 3, tolerated_failures: {tolerated} }} = from [[1], [2], [3], [4], [5]] as t(n) | each probe(_.n) }}\n"
        )
    };
    let script = |r: &Request| {
        if r.args["n"] == Value::Integer(4) {
            fail(1)
        } else {
            ok(&format!(r#"{{"n": {}}}"#, r.args["n"].as_i64()))
        }
    };
    let (summary, calls) = run(&src("1"), &clock, script);
    assert_eq!(summary.state, "success");
    assert_eq!(summary.stages[0].rows, 4);
    assert_eq!(calls.len(), 5);
    let (summary, _) = run(&src("'10%'"), &clock, script);
    assert_eq!(summary.state, "failed");
    assert!(
        summary.stages[0]
            .error_text()
            .as_deref()
            .unwrap()
            .starts_with("1 of 5 items failed"),
        "{:?}",
        summary.stages[0].error
    );
}

trait Show {
    fn as_text(&self) -> String;
    fn as_i64(&self) -> i64;
}

impl Show for Value {
    fn as_text(&self) -> String {
        match self {
            Value::Text(s) => s.clone(),
            other => format!("{other:?}"),
        }
    }

    fn as_i64(&self) -> i64 {
        match self {
            Value::Integer(n) => *n,
            _ => 0,
        }
    }
}

#[test]
fn independent_stages_run_in_parallel_up_to_max_parallel_in_priority_order() {
    let clock = ManualClock::default();
    let src = "activity work(name: string) = exec('work', name)\nflow f with { max_parallel: 2 } = {\n  stage a [priority: 3] = work('a')\n  stage b [priority: 0] = work('b')\n  stage c [priority: 1] = work('c')\n  stage d [priority: 2] = work('d')\n  stage e [priority: 0] = work('e')\n}\n";
    let active = std::sync::atomic::AtomicUsize::new(0);
    let peak = std::sync::atomic::AtomicUsize::new(0);
    let order = Mutex::new(Vec::new());
    let (summary, _) = run_with(src, &clock, 2, |r| {
        let now = active.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
        peak.fetch_max(now, std::sync::atomic::Ordering::SeqCst);
        order.lock().unwrap().push(r.args["name"].as_text());
        std::thread::sleep(Duration::from_millis(50));
        active.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
        ok(r#"{"done": 1}"#)
    });
    assert_eq!(summary.state, "success");
    assert_eq!(peak.into_inner(), 2, "two stages at once, never more");
    let order = order.into_inner().unwrap();
    let mut first_two = order[..2].to_vec();
    first_two.sort();
    assert_eq!(first_two, ["b", "e"], "priority 0 first: {order:?}");
    assert_eq!(order.last().map(String::as_str), Some("a"));
}

#[test]
fn a_key_that_succeeded_is_not_run_again_and_its_rows_are_reused() {
    let clock = ManualClock::default();
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("runtime-idempotent");
    let _ = std::fs::remove_dir_all(&dir);
    let src = "activity pay(id: string) = exec('pay', id)\nflow f(id: string = 'P-1') = { stage paid [idempotency_key: 'pay-' || id] = pay(id) }\n";
    let keys = Mutex::new(Vec::new());
    let script = |r: &Request| {
        keys.lock().unwrap().push(
            r.env
                .iter()
                .find(|(k, _)| k == "WVFLOW_IDEMPOTENCY_KEY")
                .map(|(_, v)| v.clone()),
        );
        ok(r#"{"paid": "P-1"}"#)
    };
    let cancel = std::sync::Arc::default();
    let (first, calls) = run_in(src, &clock, 1, Some(&dir), &cancel, script);
    assert_eq!(
        (first.state.as_str(), calls.len(), first.stages[0].rows),
        ("success", 1, 1)
    );
    let (second, calls) = run_in(src, &clock, 1, Some(&dir), &cancel, script);
    assert_eq!(second.state, "success");
    assert!(calls.is_empty(), "the second run called {calls:?}");
    assert_eq!((second.stages[0].attempts, second.stages[0].rows), (0, 1));
    assert_eq!(
        keys.into_inner().unwrap(),
        [Some("pay-P-1".to_string())],
        "the key arrives as its plain text"
    );
}

#[test]
fn cancelling_stops_the_run_and_cancels_what_has_not_started() {
    let clock = ManualClock::default();
    let src = "activity a = exec('a')\nactivity undo = exec('undo')\nflow f = {\n  stage first [compensate: undo()] = a()\n  stage second = from first | a()\n  stage third = from second | a()\n}\n";
    let cancel = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (summary, calls) = run_in(src, &clock, 1, None, &cancel, |r| {
        let n = r
            .env
            .iter()
            .find(|(k, _)| k == "WVFLOW_STAGE")
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
        if n == "second" {
            cancel.store(true, std::sync::atomic::Ordering::SeqCst);
            return Outcome::Cancelled;
        }
        ok(r#"{"ok": 1}"#)
    });
    assert_eq!(summary.state, "cancelled");
    assert_eq!(
        states(&summary),
        BTreeMap::from([
            ("first", "success"),
            ("second", "cancelled"),
            ("third", "cancelled")
        ])
    );
    assert_eq!(calls, ["a#1", "a#1", "undo#1"]);
    assert_eq!(summary.compensations.len(), 1);
}

#[test]
fn a_fork_ends_when_its_branches_do_and_fails_with_them() {
    let clock = ManualClock::default();
    let src = |bad: &str| {
        format!(
            "activity work(name: string) = exec('work', name)\nflow f = {{\n  stage split = from [[1]] as t(n) | fork {{\n    stage left = from split | work('left')\n    stage right = from split | work('{bad}')\n  }}\n  stage after = from split | work('after')\n}}\n"
        )
    };
    let order = Mutex::new(Vec::new());
    let script = |r: &Request| {
        let name = r.args["name"].as_text();
        order.lock().unwrap().push(name.clone());
        if name == "bad" {
            fail(1)
        } else {
            ok(r#"{"ok": 1}"#)
        }
    };
    let (summary, _) = run(&src("right"), &clock, script);
    assert_eq!(summary.state, "success");
    let seen = order.lock().unwrap().clone();
    assert_eq!(
        seen.last().map(String::as_str),
        Some("after"),
        "stages after a fork wait for its branches: {seen:?}"
    );
    order.lock().unwrap().clear();
    let (summary, _) = run(&src("bad"), &clock, script);
    assert_eq!(
        states(&summary),
        BTreeMap::from([
            ("split", "failed"),
            ("left", "success"),
            ("right", "failed"),
            ("after", "skipped")
        ])
    );
    assert_eq!(
        summary
            .stages
            .iter()
            .find(|s| s.stage == "split")
            .unwrap()
            .error_text()
            .as_deref(),
        Some("branch `right` failed")
    );
}

#[test]
fn an_on_failure_stage_runs_only_when_the_stage_fails() {
    let clock = ManualClock::default();
    let src = |action: &str| {
        format!(
            "activity {action} = exec('work')\nactivity rescue_ = exec('rescue')\nflow f = {{\n  stage work [on_failure: rescue] = {action}()\n  stage rescue = rescue_()\n}}\n"
        )
    };
    let (summary, calls) = run(&src("good"), &clock, |_| ok(r#"{"ok": 1}"#));
    assert_eq!(
        states(&summary),
        BTreeMap::from([("work", "success"), ("rescue", "skipped")])
    );
    assert_eq!(calls, ["good#1"]);
    let (summary, calls) = run(&src("bad"), &clock, |r| {
        if r.activity == "bad" {
            fail(1)
        } else {
            ok(r#"{"ok": 1}"#)
        }
    });
    assert_eq!(
        states(&summary),
        BTreeMap::from([("work", "failed"), ("rescue", "success")])
    );
    assert_eq!(
        summary.state, "success",
        "the failure is handled by the fallback"
    );
    assert_eq!(calls, ["bad#1", "rescue_#1"]);
}

#[test]
fn a_stage_waiting_on_a_skipped_stage_still_runs() {
    // `alt` is skipped; `next` depends on it and must still be evaluated (and run).
    let clock = ManualClock::default();
    let src = "activity a = exec('a')\nflow f = {\n  stage first = a()\n  stage alt if first.failed = a()\n  stage next if first.success or alt.success = a()\n  stage last = from next\n}\n";
    let (summary, calls) = run(src, &clock, |_| ok(r#"{"ok": 1}"#));
    assert_eq!(summary.state, "success");
    assert_eq!(
        states(&summary),
        BTreeMap::from([
            ("first", "success"),
            ("alt", "skipped"),
            ("next", "success"),
            ("last", "success")
        ])
    );
    assert_eq!(calls, ["a#1", "a#1"]);
}

#[test]
fn a_saga_that_cannot_open_the_store_reports_each_compensation_it_could_not_run() {
    // Once, the compensations were skipped without a word when the store could not be
    // opened again for them.
    let clock = ManualClock::default();
    let src = "activity book(what: string) = exec('book', what)\n\
        activity undo(what: string) with { retries: 1 } = exec('undo', what)\n\
        activity pay = exec('pay')\n\
        flow trip = {\n  stage flight [compensate: undo(_.what)] = book('flight')\n  stage payment = from flight | pay()\n}\n";
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("saga_without_store");
    let _ = std::fs::remove_dir_all(&dir);
    let db = dir.join("workspace.db");
    let cancel = std::sync::Arc::default();
    let (summary, calls) = run_in(src, &clock, 1, Some(&dir), &cancel, |r| {
        match r.activity.as_str() {
            "book" => ok(r#"{"what": "flight"}"#),
            _ => {
                // The workspace database goes away: a directory now stands in its place.
                std::fs::remove_file(&db).unwrap();
                std::fs::create_dir(&db).unwrap();
                fail(1)
            }
        }
    });
    assert_eq!(summary.state, "failed");
    assert_eq!(calls, ["book#1", "pay#1"]);
    let compensation = &summary.compensations[0];
    assert_eq!(
        (compensation.stage.as_str(), compensation.state.as_str()),
        ("flight", "failed")
    );
    let error = compensation.error.as_deref().unwrap();
    assert!(error.starts_with("cannot open the run store"), "{error}");
}

#[test]
fn a_stage_that_panics_fails_instead_of_hanging_the_run() {
    let clock = ManualClock::default();
    let src = "activity a = exec('a')\nflow f = {\n  stage s = a()\n  stage t = from s | a()\n}\n";
    let (summary, _) = run(src, &clock, |_| panic!("scripted bug"));
    assert_eq!(summary.state, "failed");
    let s = &summary.stages[0];
    assert_eq!(s.state, "failed");
    assert_eq!(
        s.error_text().as_deref(),
        Some("internal error of wvflow (please report it): scripted bug")
    );
    assert_eq!(summary.stages[1].state, "skipped");
}

/// `now()` reads the injected clock: an ETA five minutes after the run's start passes after
/// five minutes of the clock (its polls, none of them real), not at once and not never; a
/// countdown of a duration parameter sleeps that long on it.
#[test]
fn now_and_countdowns_follow_the_injected_clock() {
    let clock = ManualClock::default();
    // The test context's clock reads zero at 2026-01-01T00:00:00Z.
    let src = "flow f(pause_for: duration = 90s) = {\n  stage eta [poll_interval: 1m, timeout: 1h] = wait until now() >= timestamp '2026-01-01T00:05:00Z'\n  stage countdown = from eta | wait(pause_for)\n}\n";
    let (summary, _) = run(src, &clock, |_| ok("{}"));
    assert_eq!(summary.state, "success", "{summary:?}");
    let minute = Duration::from_secs(60);
    let slept: Duration = clock.sleeps().iter().sum();
    assert_eq!(
        slept,
        5 * minute + Duration::from_secs(90),
        "{:?}",
        clock.sleeps()
    );
}
