//! `continue_as_new` as a user meets it: a loop that goes on in new runs, linked and shown; a
//! loop that ends at the boundary; the bound across runs; kill -9 then resume; a run killed
//! between its end and its new run; a cancel; the flow-level key; the checker; the plan.

use crate::common::{run_json, scratch, stage, wait_for, wvflow};
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

/// Counts to `upto`, one `tick` call an iteration, a new run every 3 iterations; `start` and
/// `report` log that they ran.
const COUNTER: &str = r#"
activity begin() = sh("""echo begin >> calls.log; printf '{"n": 0}\n'""")
activity tick(n: int, hang: int) with { timeout: 60s } = sh("""
  echo "tick $WV_N" >> calls.log
  if [ "$WV_N" = "$WV_HANG" ] && [ ! -f go ]; then echo $$ > tick.pid; sleep 30; fi
  printf '{"n": %s}\n' "$WV_N"
""")
flow Counter(upto: int = 7, hang: int = 0) = {
  stage start = begin()
  stage counter [continue_as_new: 3] = from start | while n < upto | tick(_.n + 1, hang)
  stage report = from counter | select count(*) as iterations, max(n) as last, min(iteration) as first
}
"#;

fn ws(dir: &Path) -> &str {
    dir.to_str().unwrap()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// The workspace's runs, oldest first.
fn runs(dir: &Path) -> Vec<Value> {
    let o = wvflow(&["runs", "-w", ws(dir), "list", "--format", "json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let mut list: Vec<Value> = serde_json::from_slice(&o.stdout).unwrap();
    list.reverse();
    list
}

fn show(dir: &Path, run_id: &str) -> Value {
    let o = wvflow(&["runs", "-w", ws(dir), "show", run_id, "--format", "json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).unwrap()
}

use crate::common::csv_rows as rows;

/// `wvflow runs resume RUN --format json`, which must succeed: the last run's summary.
fn resume(dir: &Path, run_id: &str) -> Value {
    let o = wvflow(&["runs", "-w", ws(dir), "resume", run_id, "--format", "json"]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).unwrap()
}

fn states(runs: &[Value]) -> Vec<&str> {
    runs.iter().map(|r| r["state"].as_str().unwrap()).collect()
}

fn id(run: &Value) -> &str {
    run["run_id"].as_str().unwrap()
}

#[test]
fn a_loop_goes_on_in_new_runs_that_carry_its_state() {
    let dir = scratch("can-counter", &[("flow.wv", COUNTER)]);
    let (code, summary) = run_json(&dir.join("flow.wv"), None);
    assert_eq!(code, Some(0), "{summary}");
    // The document is the last run's: iteration 7 is the one its loop ran.
    assert_eq!(summary["state"], "success");
    assert_eq!(stage(&summary, "counter")["rows"], 1);
    let all = runs(&dir);
    assert_eq!(states(&all), ["continued", "continued", "success"]);
    let last = id(&all[2]);
    assert_eq!(summary["run_id"], last);
    assert_eq!(rows(&dir, last, "counter"), ["n,iteration", "7,7"]);
    assert_eq!(
        rows(&dir, last, "report"),
        ["iterations,last,first", "1,7,7"]
    );
    // Every iteration ran once, and the stage before the loop ran once, in the first run.
    let ticks: String = (1..=7).map(|n| format!("tick {n}\n")).collect();
    assert_eq!(read(&dir.join("calls.log")), format!("begin\n{ticks}"));
    // Each run holds its own stretch of the loop; later runs took `start` as it ended.
    assert_eq!(rows(&dir, last, "start"), ["n", "0"]);
    let first = show(&dir, id(&all[0]));
    assert_eq!(stage(&first, "counter")["state"], "continued");
    assert_eq!(stage(&first, "report")["state"], "pending");
    assert_eq!(first["continued_as"]["run_id"], id(&all[1]));
    assert_eq!(first["continued_from"], Value::Null);
    let second = show(&dir, id(&all[1]));
    assert_eq!(second["continued_from"], id(&all[0]));
    assert_eq!(stage(&second, "start")["state"], "success");
    assert_eq!(stage(&second, "start")["attempts"], 1);
    assert_eq!(show(&dir, last)["continued_from"], id(&all[1]));
    // The tree follows the chain, each run with its iterations.
    let o = wvflow(&["runs", "-w", ws(&dir), "show", id(&all[0]), "--tree"]);
    let tree = String::from_utf8_lossy(&o.stdout);
    assert_eq!(tree.matches("continued as new: run ").count(), 2, "{tree}");
    for n in 1..=7 {
        assert!(
            tree.contains(&format!("iteration {n} attempt 1  success")),
            "{tree}"
        );
    }
    // `runs list` lines its states up, `continued` included.
    let o = wvflow(&["runs", "-w", ws(&dir), "list", "--state", "continued"]);
    let list = String::from_utf8_lossy(&o.stdout);
    assert_eq!(list.lines().count(), 3, "{list}");
    let column = |line: &str| line.find("continued").or(line.find("state"));
    let starts: Vec<_> = list.lines().map(column).collect();
    assert!(starts.windows(2).all(|w| w[0] == w[1]), "{list}");
    // The text output says which runs went on in another.
    let o = wvflow(&["run", dir.join("flow.wv").to_str().unwrap()]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        text.matches("continued as a new run (`continue_as_new`)")
            .count(),
        2,
        "{text}"
    );
}

#[test]
fn a_loop_that_ends_at_the_boundary_does_not_continue_and_zero_iterations_neither() {
    let dir = scratch("can-boundary", &[("flow.wv", COUNTER)]);
    // Iterations 1-3, then 4-6 in a second run, whose condition then ends the loop.
    let (code, summary) = run_json(&dir.join("flow.wv"), Some("Counter(upto = 6)"));
    assert_eq!(code, Some(0), "{summary}");
    assert_eq!(states(&runs(&dir)), ["continued", "success"]);
    assert_eq!(
        rows(&dir, summary["run_id"].as_str().unwrap(), "counter"),
        ["n,iteration", "4,4", "5,5", "6,6"]
    );
    let dir = scratch("can-zero", &[("flow.wv", COUNTER)]);
    let (code, summary) = run_json(&dir.join("flow.wv"), Some("Counter(upto = 0)"));
    assert_eq!(code, Some(0), "{summary}");
    assert_eq!(states(&runs(&dir)), ["success"]);
    assert_eq!(stage(&summary, "counter")["rows"], 0);
}

#[test]
fn max_iterations_bounds_the_count_across_runs() {
    let src = r#"
flow Forever with { continue_as_new: 2 } = {
  stage spin [max_iterations: 5] = from [[0]] as t(n) | while n >= 0 | select n + 1 as n
}
"#;
    let dir = scratch("can-bound", &[("flow.wv", src)]);
    let (code, summary) = run_json(&dir.join("flow.wv"), None);
    assert_eq!(code, Some(1), "{summary}");
    // Iterations 1-2, 3-4, then 5 and the bound in the third run.
    assert_eq!(states(&runs(&dir)), ["continued", "continued", "failed"]);
    let error = stage(&summary, "spin")["error"].as_str().unwrap();
    assert!(error.contains("after 5 iterations"), "{error}");
}

fn start(dir: &Path, call: &str) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_wvflow"))
        .arg("run")
        .arg(dir.join("flow.wv"))
        .arg(call)
        .args(["--format", "json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Runs COUNTER with iteration `hang` hanging, waits for it, and returns the child process
/// and the runs recorded by then.
fn hanging(name: &str, hang: u32) -> (std::path::PathBuf, std::process::Child, Vec<Value>) {
    let dir = scratch(name, &[("flow.wv", COUNTER)]);
    let child = start(&dir, &format!("Counter(hang = {hang})"));
    wait_for(Duration::from_secs(30), "the hanging iteration", || {
        dir.join("tick.pid").exists()
    });
    let all = runs(&dir);
    (dir, child, all)
}

#[test]
fn kill_9_in_a_continued_run_then_resume_repeats_no_recorded_iteration() {
    let (dir, mut child, all) = hanging("can-crash", 5);
    assert_eq!(states(&all), ["continued", "running"]);
    child.kill().unwrap(); // SIGKILL: nothing more is recorded
    child.wait().unwrap();
    let pid = read(&dir.join("tick.pid")).trim().to_string();
    let _ = Command::new("kill").args(["-9", &pid]).status();
    std::fs::write(dir.join("go"), "").unwrap();
    resume(&dir, id(&all[1]));
    // Iteration 4 was recorded in the second run: only 5, in flight, runs again; then 6,
    // and 7 in a third run.
    assert_eq!(
        read(&dir.join("calls.log")),
        "begin\ntick 1\ntick 2\ntick 3\ntick 4\ntick 5\ntick 5\ntick 6\ntick 7\n"
    );
    let all = runs(&dir);
    assert_eq!(states(&all), ["continued", "continued", "success"]);
    assert_eq!(rows(&dir, id(&all[2]), "counter"), ["n,iteration", "7,7"]);
    // A run that was continued is not resumed: its new run is named.
    let o = wvflow(&["runs", "-w", ws(&dir), "resume", id(&all[0])]);
    assert_eq!(o.status.code(), Some(2));
    let error = String::from_utf8_lossy(&o.stderr);
    assert!(
        error.contains(&format!("was continued as run {}", id(&all[1]))),
        "{error}"
    );
}

#[test]
fn a_run_killed_before_its_new_run_was_recorded_is_continued_by_resume() {
    let dir = scratch("can-orphan", &[("flow.wv", COUNTER)]);
    let (code, _) = run_json(&dir.join("flow.wv"), None);
    assert_eq!(code, Some(0));
    let all = runs(&dir);
    // As if the process had died after the first run ended `continued`: the runs after it
    // were never recorded.
    let db = rusqlite::Connection::open(dir.join(".wvflow/workspace.db")).unwrap();
    for later in &all[1..] {
        db.execute("DELETE FROM wvflow_runs WHERE run_id = ?1", [id(later)])
            .unwrap();
    }
    drop(db);
    std::fs::write(dir.join("calls.log"), "").unwrap();
    let summary = resume(&dir, id(&all[0]));
    assert_eq!(summary["state"], "success");
    // Iterations 4-7 only, in two new runs; `start` is not run again.
    assert_eq!(
        read(&dir.join("calls.log")),
        "tick 4\ntick 5\ntick 6\ntick 7\n"
    );
    let after = runs(&dir);
    assert_eq!(states(&after), ["continued", "continued", "success"]);
    assert_eq!(show(&dir, id(&after[1]))["continued_from"], id(&all[0]));
}

#[test]
fn a_cancel_in_a_continued_run_ends_the_chain() {
    let (dir, child, all) = hanging("can-cancel", 5);
    let o = wvflow(&["runs", "-w", ws(&dir), "cancel", id(&all[1])]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["state"], "cancelled");
    assert_eq!(stage(&summary, "counter")["state"], "cancelled");
    assert_eq!(states(&runs(&dir)), ["continued", "cancelled"]);
}

#[test]
fn the_checker_and_the_plan_know_continue_as_new() {
    let src = r#"
flow NoLoop with { continue_as_new: 5 } = {
  stage s [continue_as_new: 2] = from [[1]] as t(n)
}
flow Looping with { continue_as_new: 4 } = {
  stage inherits = from [[0]] as t(n) | while n < 9 | select n + 1 as n
  stage own [continue_as_new: 2] = from [[0]] as t(n) | while n < 9 | select n + 1 as n
}
"#;
    let dir = scratch("can-check", &[("flow.wv", src)]);
    let o = wvflow(&["check", ws(&dir), "--format", "short"]);
    let out = String::from_utf8_lossy(&o.stdout);
    let found: Vec<&str> = out.lines().filter(|l| l.contains(": warning[")).collect();
    assert_eq!(found.len(), 2, "{out}");
    let flow_key =
        "2:20: warning[W0203]: `continue_as_new` has no effect here: the flow has no `while` loop";
    let stage_key =
        "3:12: warning[W0203]: `continue_as_new` has no effect here: the stage has no `while` loop";
    assert!(found[0].contains(flow_key), "{out}");
    assert!(found[1].contains(stage_key), "{out}");
    let file = dir.join("flow.wv");
    let o = wvflow(&[
        "plan",
        file.to_str().unwrap(),
        "Looping",
        "--format",
        "json",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let plan: Value = serde_json::from_slice(&o.stdout).unwrap();
    let every = |stage: usize| plan["flow"]["stages"][stage]["steps"][1]["continue_as_new"].clone();
    assert_eq!(
        (every(0), every(1)),
        (Value::from(4), Value::from(2)),
        "{plan}"
    );
    let o = wvflow(&["plan", file.to_str().unwrap(), "Looping"]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("continuing as a new run every 4"), "{text}");
    assert!(text.contains("continuing as a new run every 2"), "{text}");
}

/// The issue's own form: it checks clean, and each decision is made once, across runs: the
/// decision at a boundary is not made again by the new run.
#[test]
fn the_issue_form_runs_and_decides_each_iteration_once() {
    // The loop of `loops.rs`, with the issue's key in place of its idempotency key.
    let src = crate::loops::DECIDED_ONCE.replace(
        "loop [idempotency_key: 'drain-' || iteration()]",
        "loop with { continue_as_new: 1 }",
    );
    assert_ne!(src, crate::loops::DECIDED_ONCE);
    let dir = scratch("can-issue-form", &[("flow.wv", &src)]);
    let o = wvflow(&["check", dir.join("flow.wv").to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stdout));
    let (code, summary) = run_json(&dir.join("flow.wv"), None);
    assert_eq!(code, Some(0), "{summary}");
    assert_eq!(states(&runs(&dir)), ["continued", "success"]);
    assert_eq!(read(&dir.join("polls")).trim(), "3");
    assert_eq!(read(&dir.join("batches.log")), "batch\nbatch\n");
    assert_eq!(
        rows(&dir, summary["run_id"].as_str().unwrap(), "loop"),
        ["processed,iteration", "true,2"]
    );
}

/// A child flow whose loop continues as new: the calling stage waits for the last run of the
/// chain and reads how it ended; each run of the chain is a child of the calling stage.
#[test]
fn a_child_run_that_continues_as_new_is_awaited_to_its_last_run() {
    let src = r#"
flow Child(upto: int = 5) = {
  stage counter with { continue_as_new: 2 } = from [[0]] as t(n) | while n < upto | select n + 1 as n
}
flow Parent = {
  stage kid = call Child(upto = 5)
  stage after = from kid | select *
}
"#;
    let dir = scratch("can-child", &[("flow.wv", src)]);
    let (code, summary) = run_json(&dir.join("flow.wv"), Some("Parent"));
    assert_eq!(code, Some(0), "{summary}");
    let all = runs(&dir);
    let children: Vec<&Value> = all.iter().filter(|r| r["flow"] == "Child").collect();
    assert_eq!(
        states(&children.iter().map(|r| (*r).clone()).collect::<Vec<_>>()),
        ["continued", "continued", "success"]
    );
    let last = id(children[2]);
    let after = rows(&dir, summary["run_id"].as_str().unwrap(), "after");
    assert_eq!(after.len(), 2, "{after:?}");
    assert!(
        after[1].starts_with(&format!("{last},Child,success")),
        "{after:?}"
    );
    for child in &children {
        let shown = show(&dir, id(child));
        assert_eq!(shown["parent_run"], summary["run_id"], "{shown}");
        assert_eq!(shown["parent_stage"], "kid", "{shown}");
    }
    assert_eq!(rows(&dir, last, "counter"), ["n,iteration", "5,5"]);
}

/// Counts slowly until signalled to stop, a new run every 2 iterations.
const STOPPABLE: &str = r#"
activity tick(n: int) = sh("""sleep 0.2; printf '{"n": %s}\n' "$WV_N" """)
flow Ticker = {
  signal stop = false
  stage counter [continue_as_new: 2, max_iterations: 1000] = from [[0]] as t(n)
    | while not stop
    | tick(_.n + 1)
}
"#;

/// Waits until the workspace has `n` runs; its runs, oldest first.
fn at_least(dir: &Path, n: usize) -> Vec<Value> {
    let mut all = Vec::new();
    wait_for(Duration::from_secs(60), "more runs", || {
        // Before the first run is recorded there is no run store to list.
        let o = wvflow(&["runs", "-w", ws(dir), "list", "--format", "json"]);
        all = serde_json::from_slice(&o.stdout).unwrap_or_default();
        all.reverse();
        all.len() >= n
    });
    all
}

/// A user holds the run id `wvflow run` printed first: a signal or a cancel sent to it
/// reaches the run of the chain that goes on now, and the signals sent before a continuation
/// hold in the runs after it.
#[test]
fn requests_to_the_first_run_reach_the_run_that_goes_on() {
    let dir = scratch("can-signal", &[("flow.wv", STOPPABLE)]);
    let child = start(&dir, "Ticker");
    let all = at_least(&dir, 2);
    let o = wvflow(&[
        "runs",
        "-w",
        ws(&dir),
        "signal",
        id(&all[0]),
        "stop",
        "true",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["state"], "success");
    let last = show(&dir, summary["run_id"].as_str().unwrap());
    assert_eq!(last["signals"][0]["name"], "stop", "{last}");
    assert_ne!(summary["run_id"], id(&all[0]));

    let dir = scratch("can-cancel-first", &[("flow.wv", STOPPABLE)]);
    let child = start(&dir, "Ticker");
    let all = at_least(&dir, 2);
    let o = wvflow(&["runs", "-w", ws(&dir), "cancel", id(&all[0])]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["state"], "cancelled");
}
