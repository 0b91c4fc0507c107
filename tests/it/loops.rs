//! `while` loops as a user runs them: zero, one and many iterations, the bound, booleans and
//! null, an activity that decides, retries per iteration, cancel and kill -9 during a loop,
//! a second run, and the plan's renderings of a loop.

use crate::common::{run_json, scratch, stage, wait_for, wvflow};
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

/// The rows of `stage` of the run `run` reports, as CSV lines.
fn rows(dir: &Path, run: &Value, stage: &str) -> Vec<String> {
    crate::common::csv_rows(dir, run["run_id"].as_str().unwrap(), stage)
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

const COUNTS: &str = r#"
activity tick(n: int) = sh("""echo "tick $WV_N" >> ticks.log; printf '{"n": %s}\n' "$WV_N" """)
flow Counts = {
  stage zero = from [[0]] as t(n) | while n > 5 | select n + 1 as n
  stage one = from [[0]] as t(n) | while n < 1 | select n + 1 as n
  stage many = from [[0]] as t(n) | while n < 5 | tick(_.n + 1)
  stage bounded [max_iterations: 3] = from [[0]] as t(n) | while iteration() <= 3 | select n + iteration() as n
}
"#;

#[test]
fn a_loop_runs_zero_one_and_many_iterations_and_numbers_its_rows() {
    let dir = scratch("loops-counts", &[("flow.wv", COUNTS)]);
    let (code, run) = run_json(&dir.join("flow.wv"), None);
    assert_eq!(code, Some(0), "{run}");
    // No iteration: the stage succeeds with no rows, its columns the input's and `iteration`.
    assert_eq!(stage(&run, "zero")["state"], "success");
    assert_eq!(stage(&run, "zero")["rows"], 0);
    assert_eq!(rows(&dir, &run, "zero"), ["n,iteration"]);
    assert_eq!(rows(&dir, &run, "one"), ["n,iteration", "1,1"]);
    // Each iteration reads the rows of the one before; one call per iteration.
    assert_eq!(
        rows(&dir, &run, "many"),
        ["n,iteration", "1,1", "2,2", "3,3", "4,4", "5,5"]
    );
    assert_eq!(
        read(&dir.join("ticks.log")),
        "tick 1\ntick 2\ntick 3\ntick 4\ntick 5\n"
    );
    // Exactly `max_iterations` iterations is within the bound.
    assert_eq!(
        rows(&dir, &run, "bounded"),
        ["n,iteration", "1,1", "3,2", "6,3"]
    );
}

const RUNAWAY: &str = r#"
flow Runaway = {
  stage bounded [max_iterations: 3] = from [[0]] as t(n) | while n >= 0 | select n + 1 as n
}
flow Default = {
  stage forever = from [[0]] as t(n) | while n >= 0 | select n + 1 as n
}
"#;

#[test]
fn a_loop_that_hits_its_bound_fails_and_says_so() {
    let dir = scratch("loops-bound", &[("flow.wv", RUNAWAY)]);
    let (code, run) = run_json(&dir.join("flow.wv"), Some("Runaway"));
    assert_eq!(code, Some(1), "{run}");
    let bounded = stage(&run, "bounded");
    assert_eq!(bounded["state"], "failed");
    let error = bounded["error"].as_str().unwrap();
    assert!(
        error.contains("still held after 3 iterations") && error.contains("max_iterations"),
        "{error}"
    );
    // Without `max_iterations`, the default stops a loop that never ends.
    let (code, run) = run_json(&dir.join("flow.wv"), Some("Default"));
    assert_eq!(code, Some(1), "{run}");
    let error = stage(&run, "forever")["error"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        error.contains("still held after 1000 iterations"),
        "{error}"
    );
}

const DECIDED: &str = r#"
activity not_done() = sh("""
  n=$(cat polls 2>/dev/null || echo 0); n=$((n + 1)); echo $n > polls
  if [ "$n" -le 2 ]; then echo '{"pending": true}'; fi
""")
activity process_batch() = sh("""cat > /dev/null; echo '{"processed": true}'""")
activity flags() = sh("""printf '{"more": true}\n'""")
flow Decided = {
  stage source = from [[1]] as t(x)
  stage loop = from source | while not_done() | process_batch()
  stage booleans = flags() | while more | select false as more
  stage nulls = from [[null]] as t(more) | while more | select true as more
}
"#;

#[test]
fn the_issue_form_runs_an_activity_that_decides_and_booleans_and_null_decide_too() {
    let dir = scratch("loops-decided", &[("flow.wv", DECIDED)]);
    let check = wvflow(&["check", dir.join("flow.wv").to_str().unwrap()]);
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );
    let (code, run) = run_json(&dir.join("flow.wv"), None);
    assert_eq!(code, Some(0), "{run}");
    // `not_done()` printed a row twice, then nothing: two iterations, three calls of it.
    assert_eq!(
        rows(&dir, &run, "loop"),
        ["processed,iteration", "true,1", "true,2"]
    );
    assert_eq!(read(&dir.join("polls")).trim(), "3");
    // A JSON `true` from an activity holds; the `false` the iteration gives stops the loop.
    assert_eq!(rows(&dir, &run, "booleans"), ["more,iteration", "false,1"]);
    // Null is not true: no iteration.
    assert_eq!(stage(&run, "nulls")["rows"], 0);
}

const FLAKY: &str = r#"
activity flaky(n: int) with { retries: 1, retry_delay: 10ms } = sh("""
  echo "try $WV_N" >> tries.log
  if [ ! -f "ok-$WV_N" ]; then touch "ok-$WV_N"; exit 3; fi
  printf '{"n": %s}\n' "$WV_N"
""")
flow Flaky = {
  stage loop = from [[0]] as t(n) | while n < 3 | flaky(_.n + 1)
}
"#;

#[test]
fn each_iteration_calls_are_retried_by_the_stage_policy() {
    let dir = scratch("loops-retries", &[("flow.wv", FLAKY)]);
    let (code, run) = run_json(&dir.join("flow.wv"), None);
    assert_eq!(code, Some(0), "{run}");
    assert_eq!(stage(&run, "loop")["rows"], 3);
    assert_eq!(
        read(&dir.join("tries.log")),
        "try 1\ntry 1\ntry 2\ntry 2\ntry 3\ntry 3\n"
    );
    // Every attempt is recorded, none overwriting another iteration's.
    let show = wvflow(&[
        "runs",
        "-w",
        dir.to_str().unwrap(),
        "show",
        run["run_id"].as_str().unwrap(),
        "--format",
        "json",
    ]);
    let show: Value = serde_json::from_slice(&show.stdout).unwrap();
    let history = show["stages"][0]["history"].as_array().unwrap();
    assert_eq!(history.len(), 6, "{history:?}");
    // The trace tree says which iteration each attempt belongs to.
    let tree = wvflow(&[
        "runs",
        "-w",
        dir.to_str().unwrap(),
        "show",
        run["run_id"].as_str().unwrap(),
        "--tree",
    ]);
    let tree = String::from_utf8_lossy(&tree.stdout).into_owned();
    let attempts: Vec<&str> = tree
        .lines()
        .filter_map(|l| l.split("─ ").nth(1))
        .filter(|l| l.starts_with("iteration"))
        .map(|l| l.split("  ").next().unwrap())
        .collect();
    assert_eq!(
        attempts,
        [
            "iteration 1 attempt 1",
            "iteration 1 attempt 2",
            "iteration 2 attempt 1",
            "iteration 2 attempt 2",
            "iteration 3 attempt 1",
            "iteration 3 attempt 2"
        ],
        "{tree}"
    );
}

const SLOW: &str = r#"
activity step(n: int) with { timeout: 60s } = sh("""
  echo "start $WV_N" >> steps.log
  if [ "$WV_N" = 3 ] && [ ! -f go ]; then echo $$ > step.pid; sleep 30; fi
  echo "done $WV_N" >> steps.log
  printf '{"n": %s}\n' "$WV_N"
""")
flow Slow = {
  stage loop [idempotency_key: 'slow-' || iteration()] = from [[0]] as t(n) | while n < 5 | step(_.n + 1)
  stage after = from loop | select count(*) as n
}
"#;

fn start(dir: &Path) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_wvflow"))
        .arg("run")
        .arg(dir.join("flow.wv"))
        .args(["--format", "json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// The run id the workspace's newest run has.
fn newest_run(dir: &Path) -> String {
    let mut id = String::new();
    wait_for(Duration::from_secs(20), "a recorded run", || {
        let o = wvflow(&[
            "runs",
            "-w",
            dir.to_str().unwrap(),
            "list",
            "--format",
            "json",
        ]);
        let list: Value = serde_json::from_slice(&o.stdout).unwrap_or_default();
        match list[0]["run_id"].as_str() {
            Some(found) => {
                id = found.to_string();
                true
            }
            None => false,
        }
    });
    id
}

#[test]
fn a_cancel_during_a_loop_stops_its_iteration_and_starts_no_other() {
    let dir = scratch("loops-cancel", &[("flow.wv", SLOW)]);
    let child = start(&dir);
    wait_for(Duration::from_secs(30), "the third iteration", || {
        dir.join("step.pid").exists()
    });
    let run_id = newest_run(&dir);
    let o = wvflow(&["runs", "-w", dir.to_str().unwrap(), "cancel", &run_id]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["state"], "cancelled");
    assert_eq!(stage(&summary, "loop")["state"], "cancelled");
    assert_eq!(stage(&summary, "after")["state"], "cancelled");
    // The third iteration's process is gone, and no fourth one started.
    let pid = read(&dir.join("step.pid")).trim().to_string();
    let alive = Command::new("kill").args(["-0", &pid]).status().unwrap();
    assert!(!alive.success(), "process {pid} survived the cancel");
    assert_eq!(
        read(&dir.join("steps.log")),
        "start 1\ndone 1\nstart 2\ndone 2\nstart 3\n"
    );
}

#[test]
fn kill_9_during_a_loop_then_resume_repeats_no_recorded_iteration() {
    // Without an idempotency key, the run's own record of each iteration is enough.
    let unkeyed = SLOW.replace(" [idempotency_key: 'slow-' || iteration()]", "");
    assert_ne!(unkeyed, SLOW);
    let dir = crash_and_resume("loops-crash-unkeyed", &unkeyed);
    let (code, again) = run_json(&dir.join("flow.wv"), None);
    assert_eq!(code, Some(0), "{again}");
    assert_eq!(stage(&again, "loop")["reused"], false, "{again}");
    assert_eq!(read(&dir.join("steps.log")).lines().count(), 21);
    let dir = crash_and_resume("loops-crash", SLOW);
    // With a key per iteration, a second run reuses every iteration: nothing runs.
    let (code, again) = run_json(&dir.join("flow.wv"), None);
    assert_eq!(code, Some(0), "{again}");
    assert_eq!(stage(&again, "loop")["reused"], true, "{again}");
    assert_eq!(stage(&again, "loop")["rows"], 5);
    assert_eq!(read(&dir.join("steps.log")).lines().count(), 11);
}

/// Runs `flow` (SLOW or a variant), kills it with SIGKILL in its third iteration, resumes
/// it, and checks that only the iteration in flight ran again; the scratch folder.
fn crash_and_resume(name: &str, flow: &str) -> std::path::PathBuf {
    let dir = scratch(name, &[("flow.wv", flow)]);
    let mut child = start(&dir);
    wait_for(Duration::from_secs(30), "the third iteration", || {
        dir.join("step.pid").exists()
    });
    let run_id = newest_run(&dir);
    child.kill().unwrap(); // SIGKILL: nothing more is recorded
    child.wait().unwrap();
    let pid = read(&dir.join("step.pid")).trim().to_string();
    let _ = Command::new("kill").args(["-9", &pid]).status();
    std::fs::write(dir.join("go"), "").unwrap();
    let o = wvflow(&[
        "runs",
        "-w",
        dir.to_str().unwrap(),
        "resume",
        &run_id,
        "--format",
        "json",
    ]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let summary: Value = serde_json::Deserializer::from_slice(&o.stdout)
        .into_iter()
        .next()
        .unwrap()
        .unwrap();
    assert_eq!(summary["state"], "success", "{summary}");
    assert_eq!(stage(&summary, "loop")["rows"], 5);
    // Iterations 1 and 2 were recorded as they ended and are not run again; the third was
    // in flight at the crash and runs again; 4 and 5 run once.
    assert_eq!(
        read(&dir.join("steps.log")),
        "start 1\ndone 1\nstart 2\ndone 2\nstart 3\nstart 3\ndone 3\nstart 4\ndone 4\nstart 5\ndone 5\n"
    );
    assert_eq!(
        rows(&dir, &summary, "loop"),
        ["n,iteration", "1,1", "2,2", "3,3", "4,4", "5,5"]
    );
    dir
}

#[test]
fn the_plan_shows_the_loop_in_every_format() {
    let dir = scratch("loops-plan", &[("flow.wv", DECIDED)]);
    let file = dir.join("flow.wv");
    let plan = |format: &str| {
        let o = wvflow(&[
            "plan",
            file.to_str().unwrap(),
            "Decided",
            "--format",
            format,
        ]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let text = plan("text");
    assert!(
        text.contains("stage loop  [loop]")
            && text.contains("while: invoke not_done() (goes on while it prints a row) (at most 1000 iterations), repeats:\n    invoke: process_batch()"),
        "{text}"
    );
    let json: Value = serde_json::from_str(&plan("json")).unwrap();
    let steps = &json["flow"]["stages"][1]["steps"];
    assert_eq!(steps[1]["step"], "while", "{steps}");
    assert_eq!(steps[1]["condition"]["type"], "invoke");
    assert_eq!(steps[1]["body"][0]["step"], "invoke");
    assert_eq!(steps[1]["max_iterations"], 1000);
    assert!(plan("dot").contains("s1 -> s1 [label=\"while, at most 1000\", style=dotted];"));
    assert!(plan("mermaid").contains("s1 -.->|\"while, at most 1000\"| s1"));
}

/// `wvflow check --format short` of one file: its lines.
fn check_short(name: &str, src: &str) -> Vec<String> {
    let dir = scratch(name, &[("flow.wv", src)]);
    let o = wvflow(&[
        "check",
        dir.join("flow.wv").to_str().unwrap(),
        "--format",
        "short",
    ]);
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| {
            l.split_once("flow.wv:")
                .map_or(l, |(_, rest)| rest)
                .to_string()
        })
        .collect()
}

#[test]
fn the_checker_knows_the_names_and_types_a_loop_reads() {
    let found = check_short(
        "loops-check",
        r#"
activity not_done() = exec('true')
flow C(upto: int = 5) = {
  stage a = from [[0, 'x']] as t(n, label) | while m < upto | select n + 1 as n, label
  stage b = from [[0, 'x']] as t(n, label) | while n < upto | select n + 1 as n
  stage c = from b | select n, iteration, label
  stage d = from [[1]] as t(x) | while not_dne() | select x
  stage e = from [[1]] as t(x) | while x | select x
  stage f = from [[1]] as t(x) | while upto > 3 | select x
  stage g = from [[1]] as t(x) | while not_done() | select x, iteration() as i
}
"#,
    );
    assert_eq!(
        found,
        [
            // Only the columns every iteration has: the input's and the body's (`n`).
            "4:52: error[E0114]: no column `m` in the input of a `while` condition",
            // The loop's rows: the body's columns and `iteration`.
            "6:43: error[E0114]: no column `label` in the input of a `select` item",
            "7:40: error[E0610]: unknown activity `not_dne`",
            "8:40: error[E0623]: a `while` condition must be a boolean, this is int",
            "9:40: warning[W0104]: the loop cannot change this condition: it reads no column, signal, `iteration()` or `now()`",
        ],
    );
}

const STOPPABLE: &str = r#"
activity tick(n: int) = sh("""
  echo "tick $WV_N" >> ticks.log
  if [ "$WV_N" = 2 ]; then while [ ! -f sent ]; do sleep 0.05; done; fi
  printf '{"n": %s}\n' "$WV_N"
""")
flow Stoppable = {
  signal stop = false
  stage loop [max_iterations: 50] = from [[0]] as t(n) | while not stop | tick(_.n + 1)
}
"#;

#[test]
fn a_signal_sent_during_a_loop_decides_its_next_iteration() {
    let dir = scratch("loops-signal", &[("flow.wv", STOPPABLE)]);
    let child = start(&dir);
    wait_for(Duration::from_secs(30), "the second iteration", || {
        read(&dir.join("ticks.log")).contains("tick 2")
    });
    let run_id = newest_run(&dir);
    let o = wvflow(&[
        "runs",
        "-w",
        dir.to_str().unwrap(),
        "signal",
        &run_id,
        "stop",
        "true",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    std::fs::write(dir.join("sent"), "").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    // Decided before the third iteration: the signal holds, and the loop ends after two.
    assert_eq!(stage(&summary, "loop")["rows"], 2, "{summary}");
    assert_eq!(read(&dir.join("ticks.log")), "tick 1\ntick 2\n");
}

const STUCK: &str = r#"
activity poll(n: int) with { timeout: 300ms } = sh("""
  echo "poll $WV_N" >> polls.log
  if [ "$WV_N" = 2 ]; then sleep 30; fi
  printf '{"n": %s}\n' "$WV_N"
""")
flow Stuck = {
  stage loop = from [[0]] as t(n) | while n < 5 | poll(_.n + 1)
}
"#;

#[test]
fn each_iteration_call_has_the_stage_timeout() {
    let dir = scratch("loops-timeout", &[("flow.wv", STUCK)]);
    let (code, run) = run_json(&dir.join("flow.wv"), None);
    assert_eq!(code, Some(1), "{run}");
    let error = stage(&run, "loop")["error"].as_str().unwrap().to_string();
    assert!(error.starts_with("timed out after 300ms"), "{error}");
    assert_eq!(read(&dir.join("polls.log")), "poll 1\npoll 2\n");
}

pub const DECIDED_ONCE: &str = r#"
activity not_done() = sh("""
  n=$(cat polls 2>/dev/null || echo 0); n=$((n + 1)); echo $n > polls
  if [ "$n" -le 2 ]; then echo '{"pending": true}'; fi
""")
activity process_batch() = sh("""cat > /dev/null; echo batch >> batches.log; echo '{"processed": true}'""")
flow Drain = {
  stage source = from [[1]] as t(x)
  stage loop [idempotency_key: 'drain-' || iteration()] = from source | while not_done() | process_batch()
}
"#;

/// An iteration reused under its key was decided when it ran: its condition's activity is
/// not called again, only the decision after the last recorded iteration is made.
#[test]
fn a_reused_iteration_is_not_decided_again() {
    let dir = scratch("loops-decided-once", &[("flow.wv", DECIDED_ONCE)]);
    let (code, first) = run_json(&dir.join("flow.wv"), None);
    assert_eq!(code, Some(0), "{first}");
    assert_eq!(stage(&first, "loop")["rows"], 2);
    assert_eq!(read(&dir.join("polls")).trim(), "3");
    let (code, second) = run_json(&dir.join("flow.wv"), None);
    assert_eq!(code, Some(0), "{second}");
    assert_eq!(stage(&second, "loop")["rows"], 2);
    assert_eq!(read(&dir.join("polls")).trim(), "4");
    assert_eq!(read(&dir.join("batches.log")), "batch\nbatch\n");
}
