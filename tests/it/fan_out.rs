//! `each` at the sizes users reach: items stream from the engine a slice at a time, so these
//! flows cross slice boundaries (1,024 items) with items that end out of order, fail, reuse
//! their keys, and are cancelled at any moment of a million.

use crate::common::{groups_left, run_json, scratch, stage, wvflow};
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A CSV of one column `n`, 1..=count.
fn numbers(count: usize) -> String {
    let mut csv = String::with_capacity(count * 8);
    csv.push_str("n\n");
    for n in 1..=count {
        csv.push_str(&n.to_string());
        csv.push('\n');
    }
    csv
}

/// The rows of a stage of a run, as JSON objects.
fn rows_of(dir: &Path, run_id: &str, stage: &str) -> Vec<Value> {
    let workspace = dir.to_str().unwrap();
    let o = wvflow(&[
        "runs", "-w", workspace, "rows", run_id, stage, "--format", "ndjson",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

const MANY: &str = r#"
activity item(n: int) = sh("""
  if [ $((WV_N % 500)) = 0 ]; then echo "no $WV_N" >&2; exit 3; fi
  echo "$WV_N" >> items.log
  if [ $((WV_N % 3)) = 0 ]; then printf '{"n": %s, "fizz": true}\n' "$WV_N"; else printf '{"n": %s}\n' "$WV_N"; fi
""")
flow Many = {
  stage fan [concurrency: 8, tolerated_failures: 5, idempotency_key: 'item-' || _.n] = from 'numbers.csv' | each item(_.n)
  stage lost [trigger: all_done] = from failed(fan) | select item_index, exit_code, n
  stage fizz = from fan | where fizz | select count(*) as c
}
"#;

/// 2,600 items over three slices, 8 at a time, so that they end out of order: the stage's
/// rows are every success once, in item order, with the columns of every item (`fizz` only
/// where an item printed it); the five failures are tolerated and kept in order; a second
/// run reuses every item's key and starts no process.
#[test]
fn items_over_several_slices_keep_their_order_columns_failures_and_keys() {
    let dir = scratch(
        "fan_out_slices",
        &[("flow.wv", MANY), ("numbers.csv", &numbers(2600))],
    );
    let (code, summary) = run_json(&dir.join("flow.wv"), Some("Many"));
    assert_eq!(code, Some(0), "{summary}");
    let fan = stage(&summary, "fan");
    assert_eq!(fan["state"], "success", "{summary}");
    assert_eq!(fan["rows"], 2595, "{summary}");
    let run_id = summary["run_id"].as_str().unwrap();
    let rows = rows_of(&dir, run_id, "fan");
    let expected: Vec<u64> = (1..=2600).filter(|n| n % 500 != 0).collect();
    let got: Vec<u64> = rows.iter().map(|r| r["n"].as_u64().unwrap()).collect();
    assert_eq!(got, expected);
    for row in &rows {
        let n = row["n"].as_u64().unwrap();
        let keys: Vec<&String> = row.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["n", "fizz"], "{row}");
        let fizz = if n % 3 == 0 {
            Value::Bool(true)
        } else {
            Value::Null
        };
        assert_eq!(row["fizz"], fizz, "{row}");
    }
    let fizz = rows_of(&dir, run_id, "fizz");
    assert_eq!(
        fizz[0]["c"],
        expected.iter().filter(|n| *n % 3 == 0).count()
    );
    let lost = rows_of(&dir, run_id, "lost");
    let lost: Vec<(u64, u64, u64)> = lost
        .iter()
        .map(|r| {
            let at = |c: &str| r[c].as_u64().unwrap();
            (at("item_index"), at("exit_code"), at("n"))
        })
        .collect();
    let want: Vec<(u64, u64, u64)> = (1..=5).map(|k| (500 * k - 1, 3, 500 * k)).collect();
    assert_eq!(lost, want);
    let started = std::fs::read_to_string(dir.join("items.log")).unwrap();
    assert_eq!(started.lines().count(), 2595);

    // Every key succeeded: nothing runs again but the failures.
    let (code, again) = run_json(&dir.join("flow.wv"), Some("Many"));
    assert_eq!(code, Some(0), "{again}");
    assert_eq!(stage(&again, "fan")["rows"], 2595, "{again}");
    let again_id = again["run_id"].as_str().unwrap();
    assert_eq!(rows_of(&dir, again_id, "fan"), rows);
    let started = std::fs::read_to_string(dir.join("items.log")).unwrap();
    assert_eq!(started.lines().count(), 2595, "an item ran again");
}

/// Past the tolerance, the stage fails and names the count and the first failure (by item,
/// not by the order they ended in).
#[test]
fn failures_past_the_tolerance_name_the_first_item_that_failed() {
    let flow = MANY.replace("tolerated_failures: 5", "tolerated_failures: 4");
    let dir = scratch(
        "fan_out_past_tolerance",
        &[("flow.wv", &flow), ("numbers.csv", &numbers(2600))],
    );
    let (code, summary) = run_json(&dir.join("flow.wv"), Some("Many"));
    assert_eq!(code, Some(1), "{summary}");
    let fan = stage(&summary, "fan");
    assert_eq!(fan["state"], "failed", "{summary}");
    let error = fan["error"].as_str().unwrap();
    assert!(
        error.starts_with("5 of 2600 items failed (tolerated: 4); first error: "),
        "{error}"
    );
    assert!(
        error.contains("no 500\n") || error.ends_with("no 500"),
        "{error}"
    );
}

/// Cancellation campaign at a million items (`concurrency: 8`, each item sleeps): cancelled
/// by SIGTERM or by `wvflow runs cancel` at seeded moments, before the first item starts and
/// while items run. The run stops within seconds, no item starts after the cancel returned,
/// and no process is left. Reports the slowest stop (`WVFLOW_MILLION_CASES` for more).
#[test]
fn a_million_items_are_cancelled_at_any_moment() {
    const FLOW: &str = r#"
activity item(n: int) = sh("""echo "$WV_N" >> items.log; sleep 0.3""")
flow Million = {
  stage fan [concurrency: 8] = from 'numbers.csv' | each item(_.n)
}
"#;
    let csv = numbers(1_000_000);
    let count: u64 = std::env::var("WVFLOW_MILLION_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(4);
    let mut slowest = Duration::ZERO;
    let mut most_after = 0;
    for case in 0..count {
        let dir = scratch(
            &format!("fan_out_million_{case}"),
            &[("flow.wv", FLOW), ("numbers.csv", &csv)],
        );
        let mut child = Command::new(env!("CARGO_BIN_EXE_wvflow"))
            .args(["run", dir.join("flow.wv").to_str().unwrap()])
            .args(["Million", "--format", "json"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Seeded moments from 0.2 s (loading the items) to 2.6 s (items running).
        std::thread::sleep(Duration::from_millis(200 + (case * 797) % 2400));
        let by_signal = case % 2 == 0;
        let asked = Instant::now();
        if by_signal {
            // SAFETY: a signal to the child this test started.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        } else {
            let workspace = dir.to_str().unwrap();
            let list = wvflow(&["runs", "-w", workspace, "list", "--format", "json"]);
            let list: Value = serde_json::from_slice(&list.stdout).unwrap_or(Value::Null);
            match list[0]["run_id"].as_str() {
                Some(id) => {
                    let o = wvflow(&["runs", "-w", workspace, "cancel", id]);
                    assert!(o.status.success(), "case {case}: {o:?}");
                }
                // Not recorded yet: the cancel a user can give then is Ctrl-C.
                None => unsafe {
                    libc::kill(child.id() as i32, libc::SIGTERM);
                },
            }
        }
        let at_cancel = read_lines(&dir.join("items.log"));
        let status = child.wait().unwrap();
        let took = asked.elapsed();
        slowest = slowest.max(took);
        assert_eq!(status.code(), Some(1), "case {case}");
        assert!(
            took < Duration::from_secs(5),
            "case {case}: {took:?} to stop"
        );
        std::thread::sleep(Duration::from_millis(300));
        let after = read_lines(&dir.join("items.log")) - at_cancel;
        most_after = most_after.max(after);
        assert!(
            after <= 8,
            "case {case}: {after} items started after the cancel"
        );
        let left = groups_left(&dir.join(".wvflow/workspace.db"));
        assert!(left.is_empty(), "case {case}: processes left: {left}");
        let _ = std::fs::remove_dir_all(&dir);
    }
    eprintln!(
        "{count} cancels of 1,000,000 items: slowest stop {slowest:?}, at most {most_after} items started after a cancel"
    );
}

fn read_lines(path: &Path) -> usize {
    std::fs::read_to_string(path).map_or(0, |s| s.lines().count())
}

/// An argument that cannot be computed: in a fan-out of one slice, the stage fails before any
/// item is called; in a larger one, when the fan-out reaches its slice, naming the items, the
/// items before it having run (once each).
#[test]
fn an_argument_that_cannot_be_computed_fails_the_stage_at_its_slice() {
    const FLOW: &str = r#"
activity item(n: int, at: timestamp) = sh("""echo "$WV_N" >> items.log""")
flow Late = {
  stage fan [concurrency: 4] = from 'rows.csv' | each item(_.n, _.at + 1h)
}
"#;
    for (count, bad, called, error) in [
        (1000, 700, 0, "'soon' is not a timestamp"),
        (
            1500,
            1400,
            1024,
            "items 1024 to 1499 of 1500: 'soon' is not a timestamp",
        ),
    ] {
        let mut csv = "n,at\n".to_string();
        for n in 1..=count {
            let at = if n == bad {
                "soon"
            } else {
                "2026-12-01T00:00:00Z"
            };
            csv.push_str(&format!("{n},{at}\n"));
        }
        let dir = scratch(
            &format!("fan_out_bad_argument_{count}"),
            &[("flow.wv", FLOW), ("rows.csv", &csv)],
        );
        let (code, summary) = run_json(&dir.join("flow.wv"), Some("Late"));
        assert_eq!(code, Some(1), "{summary}");
        let fan = stage(&summary, "fan");
        assert_eq!(fan["state"], "failed", "{summary}");
        assert!(
            fan["error"].as_str().unwrap().starts_with(error),
            "{count}: {summary}"
        );
        let log = std::fs::read_to_string(dir.join("items.log")).unwrap_or_default();
        let mut items: Vec<usize> = log.lines().map(|l| l.parse().unwrap()).collect();
        items.sort();
        assert_eq!(items, (1..=called).collect::<Vec<_>>(), "{count}");
    }
}

/// Killed (SIGKILL) past its second slice and resumed: every item of 2,600 ends once, in
/// order in the stage's rows; only items in flight at the kill (at most `concurrency`) may
/// have started twice.
#[test]
fn a_fan_out_killed_past_a_slice_resumes_where_it_was() {
    const FLOW: &str = r#"
activity item(n: int) = sh("""echo "start $WV_N" >> items.log; echo "done $WV_N" >> items.log; printf '{"n": %s}\n' "$WV_N" """)
flow Resumed = {
  stage fan [concurrency: 8] = from 'numbers.csv' | each item(_.n)
}
"#;
    let dir = scratch(
        "fan_out_resume",
        &[("flow.wv", FLOW), ("numbers.csv", &numbers(2600))],
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_wvflow"))
        .args(["run", dir.join("flow.wv").to_str().unwrap(), "Resumed"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let log = dir.join("items.log");
    let started = Instant::now();
    let done = || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .matches("done")
            .count()
    };
    while done() < 1500 {
        assert!(started.elapsed() < Duration::from_secs(120), "too slow");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    let _ = child.wait();
    let workspace = dir.to_str().unwrap();
    let list = wvflow(&["runs", "-w", workspace, "list", "--format", "json"]);
    let list: Value = serde_json::from_slice(&list.stdout).unwrap();
    let run_id = list[0]["run_id"].as_str().unwrap().to_string();
    let resumed = wvflow(&[
        "runs", "-w", workspace, "resume", &run_id, "--format", "json",
    ]);
    assert!(resumed.status.success(), "{resumed:?}");
    let rows = rows_of(&dir, &run_id, "fan");
    let got: Vec<u64> = rows.iter().map(|r| r["n"].as_u64().unwrap()).collect();
    assert_eq!(got, (1..=2600).collect::<Vec<u64>>());
    let text = std::fs::read_to_string(&log).unwrap();
    let mut twice = 0;
    for n in 1..=2600 {
        let count = |what: &str| text.lines().filter(|l| *l == format!("{what} {n}")).count();
        assert!(count("done") >= 1, "item {n} never ran");
        if count("start") > 1 {
            twice += 1;
        }
    }
    assert!(twice <= 8, "{twice} items ran twice");
}
