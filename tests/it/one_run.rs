//! One run state machine, two drivers: the same flows run by `wvflow run`'s engine (an
//! in-memory board, threads) and by the tasks of an exported run (`wvflow stage`, one stage at a
//! time over records in a state folder), both on a manual clock with scripted activities, end
//! alike: states, errors, attempts, rows, compensations and the run's state. Time-dependent
//! rules (retry delays against `schedule_timeout`, non-retryable codes) are compared without
//! waiting.

use crate::runtime::{fail, ok, run_params};
use serde_json::json;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use wvflow::check::Index;
use wvflow::plan::Plan;
use wvflow::plan::lower;
use wvflow::plan::tasks::{engine_retries, fans_out_as_tasks};
use wvflow::runtime::activity::Request;
use wvflow::runtime::clock::ManualClock;
use wvflow::runtime::engine::{Context, ScriptedLauncher, Summary, execute};
use wvflow::runtime::retry::{Outcome, SeededRandom};
use wvflow::runtime::rules::{Waiter, retry_delay};
use wvflow::runtime::store::{Rows, StoreConfig};
use wvflow::runtime::tasks::state::Location;
use wvflow::runtime::tasks::{Means, TaskEnd, TaskRun};
use wvflow::session::{Notice, Reporter};
use wvflow::workspace::Workspace;

const EPOCH: &str = "2026-01-01T00:00:00Z";

/// An activity's answer to attempt `n` (from 1).
type Script = fn(&str, u32) -> Outcome<Rows>;

fn plan_of(src: &str) -> Plan {
    let mut workspace = Workspace::default();
    workspace.add("flow.wv".into(), src.to_string());
    let found = wvflow::check::check(&workspace).diagnostics;
    assert!(found.iter().all(|d| !d.is_error()), "{found:?}");
    let index = Index::new(&workspace);
    lower(&workspace, &index, index.flows[0])
}

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("one-run-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn attempt_of(r: &Request) -> u32 {
    r.env
        .iter()
        .find(|(k, _)| k == "WVFLOW_ATTEMPT")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(1)
}

/// The launcher both drivers use: `script` answers, and every call is noted.
fn launcher(
    script: Script,
    calls: &Mutex<Vec<String>>,
) -> ScriptedLauncher<impl Fn(&Request) -> Outcome<Rows> + Send + Sync + '_> {
    ScriptedLauncher(move |r: &Request| {
        let n = attempt_of(r);
        calls.lock().unwrap().push(format!("{}#{n}", r.activity));
        script(&r.activity, n)
    })
}

/// The flow as `wvflow run` runs it, one stage at a time in priority and plan order.
fn by_the_engine(plan: &Plan, script: Script, name: &str) -> (Summary, Vec<String>) {
    let dir = scratch(&format!("{name}-engine"));
    let stores = StoreConfig {
        workspace_db: dir.join("workspace.db"),
        run_db: dir.join("run.db"),
        base: dir.clone(),
    };
    let (clock, random, calls) = (
        ManualClock::default(),
        SeededRandom::new(7),
        Mutex::default(),
    );
    let launcher = launcher(script, &calls);
    let ctx = Context {
        clock: &clock,
        epoch: EPOCH.parse().unwrap(),
        random: &random,
        launcher: &launcher,
        cwd: dir.clone(),
        run_id: "test".into(),
        flow: plan.flow.name.clone(),
        params: run_params(plan),
        cancel: Default::default(),
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
    let summary = execute(plan, &stores, &ctx, 1);
    let calls = calls.lock().unwrap().clone();
    (summary, calls)
}

struct Quiet;

impl Reporter for Quiet {
    fn notice(&self, _: &Notice) {}
    fn diagnostics(&self, _: &[wvflow::diagnostics::Diagnostic], _: &wvflow::source::SourceMap) {}
}

/// The flow as the tasks of an exported run run it: each stage's task in plan order, a task
/// the engine retries tried again after the delay the engine waits (on the same manual clock).
fn by_tasks(plan: &Plan, script: Script, name: &str) -> (Summary, Vec<String>) {
    let dir = scratch(&format!("{name}-tasks"));
    let (clock, random, calls) = (
        ManualClock::default(),
        SeededRandom::new(7),
        Mutex::default(),
    );
    let launcher = launcher(script, &calls);
    let task = TaskRun {
        plan,
        state: Location::parse(dir.join("state").to_str().unwrap()).unwrap(),
        run_id: "test".into(),
        cwd: dir.clone(),
        cancel: Default::default(),
        engine_retries: true,
        reporter: &Quiet,
        means: Means {
            clock: &clock,
            epoch: EPOCH.parse().unwrap(),
            random: &random,
            launcher: &launcher,
        },
        first_try: 1,
    };
    let args = run_params(plan)
        .into_iter()
        .filter(|(k, _)| plan.flow.params.iter().any(|p| &p.name == k))
        .collect();
    task.init(&args, Some(EPOCH.into()), Default::default())
        .unwrap();
    for stage in &plan.flow.stages {
        assert!(!fans_out_as_tasks(stage), "not driven here: {}", stage.id);
        let mut attempt = 1;
        while task.run_stage(&stage.id, attempt).unwrap().0 == TaskEnd::Retry {
            let policy = engine_retries(stage).expect("only a stage the engine retries");
            clock.advance(retry_delay(policy, attempt, Waiter::Engine));
            attempt += 1;
        }
    }
    let summary = task.finish().unwrap();
    let calls = calls.lock().unwrap().clone();
    (summary, calls)
}

/// What both drivers must agree on.
fn outcome(summary: &Summary) -> serde_json::Value {
    json!({
        "state": summary.state.as_str(),
        "stages": summary.stages.iter().map(|s| json!({
            "stage": s.stage,
            "state": s.state.as_str(),
            "attempts": s.attempts,
            "rows": s.rows,
            "error": s.error.as_ref().map(|e| e.to_string()),
        })).collect::<Vec<_>>(),
        "compensations": summary.compensations.iter().map(|c| json!({
            "stage": c.stage,
            "state": c.state.as_str(),
            "error": c.error,
        })).collect::<Vec<_>>(),
    })
}

/// Runs `src` both ways and returns the outcome they agree on, with the engine's calls.
fn both_ways(name: &str, src: &str, script: Script) -> (serde_json::Value, Vec<String>) {
    let plan = plan_of(src);
    let (engine, engine_calls) = by_the_engine(&plan, script, name);
    let (tasks, task_calls) = by_tasks(&plan, script, name);
    assert_eq!(
        outcome(&engine),
        outcome(&tasks),
        "{name}: the drivers disagree"
    );
    assert_eq!(
        engine_calls, task_calls,
        "{name}: the drivers called differently"
    );
    (outcome(&engine), engine_calls)
}

fn states(outcome: &serde_json::Value) -> BTreeMap<String, String> {
    outcome["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["stage"].as_str().unwrap().to_string(),
                s["state"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn a_retry_that_would_start_past_the_schedule_timeout_is_not_made_either_way() {
    // Constant 10 s delays against 25 s: attempts at 0 s, 10 s, 20 s; a fourth would start
    // at 30 s.
    let src = "activity flaky = exec('flaky')\nflow F = {\n  stage s with { retries: 5, retry_delay: 10s, backoff: constant, schedule_timeout: 25s } = flaky()\n}\n";
    let (outcome, calls) = both_ways("schedule-timeout", src, |_, _| fail(1));
    assert_eq!(calls, ["flaky#1", "flaky#2", "flaky#3"]);
    assert_eq!(outcome["state"], "failed");
    assert_eq!(outcome["stages"][0]["attempts"], 3);
    assert_eq!(
        outcome["stages"][0]["error"],
        "exit 1 (schedule_timeout of 25s reached after 3 attempts)"
    );
}

#[test]
fn a_non_retryable_exit_code_ends_the_retries_either_way() {
    let src = "activity pay = exec('pay')\nflow F = {\n  stage s with { retries: 3, retry_delay: 1s, non_retryable: [64] } = pay()\n  stage after = from s | pay()\n}\n";
    let (outcome, calls) = both_ways("non-retryable", src, |_, n| {
        if n == 2 { fail(64) } else { fail(1) }
    });
    assert_eq!(calls, ["pay#1", "pay#2"]);
    assert_eq!(
        outcome["stages"][0]["error"],
        "exit 64 (exit code 64 is non-retryable)"
    );
    assert_eq!(states(&outcome)["after"], "skipped");
}

#[test]
fn a_failed_branch_fails_its_fork_and_the_saga_undoes_newest_first_either_way() {
    let src = r#"activity book(what: string) = exec('book', what)
activity undo(what: string) = exec('undo', what)
activity broken = exec('broken')
flow F = {
  stage flight with { compensate: undo('flight') } = book('flight')
  stage hotel with { compensate: undo('hotel') } = from flight | book('hotel')
  stage extras = from hotel | fork {
    stage car = from hotel | broken()
    stage museum = from hotel | book('museum')
  }
  stage notify [trigger: all_done] = from extras | book('notify')
  stage thanks if extras.success = book('thanks')
}
"#;
    let (outcome, _) = both_ways("fork-saga", src, |activity, _| match activity {
        "broken" => fail(3),
        _ => ok(r#"{"ok": true}"#),
    });
    assert_eq!(outcome["state"], "failed");
    let states = states(&outcome);
    assert_eq!(states["extras"], "failed");
    assert_eq!(states["thanks"], "skipped");
    assert_eq!(states["notify"], "success");
    let extras = outcome["stages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["stage"] == "extras")
        .unwrap();
    assert_eq!(extras["error"], "branch `car` failed");
    let undone: Vec<&str> = outcome["compensations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["stage"].as_str().unwrap())
        .collect();
    assert_eq!(undone, ["hotel", "flight"]);
}

#[test]
fn the_first_success_wins_the_race_and_the_loser_is_cancelled_either_way() {
    let src = r#"activity quote(provider: string) = exec('quote', provider)
activity book = exec('book')
flow F = {
  stage eu [on_failure: ignore] = quote('eu')
  stage us [on_failure: ignore] = quote('us')
  stage first [trigger: first_success] = merge eu, us
  stage booked = from first | book()
}
"#;
    let (outcome, calls) = both_ways("race", src, |activity, _| match activity {
        "quote" => ok(r#"{"price": 118}"#),
        _ => ok(r#"{"booked": true}"#),
    });
    assert_eq!(outcome["state"], "success");
    let states = states(&outcome);
    assert_eq!(
        [&states["eu"], &states["us"], &states["first"]],
        ["success", "cancelled", "success"]
    );
    assert_eq!(calls, ["quote#1", "book#1"]);
}

#[test]
fn a_stage_with_end_skips_what_had_not_started_either_way() {
    let src = "activity a = exec('a')\nflow F = {\n  stage first = a() | end()\n  stage second = a()\n}\n";
    let (outcome, calls) = both_ways("end", src, |_, _| ok(r#"{"n": 1}"#));
    assert_eq!(states(&outcome)["second"], "skipped");
    assert_eq!(outcome["state"], "success");
    assert_eq!(calls, ["a#1"]);
}
