//! The patterns people come for (task queues and orchestrators), each end to end with real
//! processes: results into a single call, delays, first to finish.

use crate::common::{groups_left, ndjson, run_json, scratch, stage, wvflow};
use serde_json::Value;
use std::path::Path;

/// `wvflow check DIR --format short`, which must fail: its lines.
fn short_check(dir: &Path) -> String {
    let o = wvflow(&["check", dir.to_str().unwrap(), "--format", "short"]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

const SINGLE_ROW: &str = r#"activity show(n: int, name: string) = exec('printf', '{"n": %s, "name": "%s"}\n', n, name)
activity count_rows = sh("""wc -l | tr -d ' ' | sed 's/.*/{"lines": &}/'""")
flow Child(n: int) = {
  stage got = from [[n]] as t(n) | activate('file', path: 'child.ndjson')
}
flow One(k: int = 1) = {
  stage totals = from [[1, 'a'], [2, 'b'], [3, 'c']] as t(id, name) | where id <= k
  stage shown = from totals | show(_.id, _.name) | activate('file', path: 'shown.ndjson')
  stage child = from totals | call Child(n: _.id)
  stage counted = from totals | count_rows() | activate('file', path: 'counted.ndjson')
}
flow Jump(k: int = 1) = {
  stage totals = from [[1], [2], [3]] as t(id) | where id <= k | -> Child(n: _.id)
}
"#;

/// `from a | activity(_.col)` and `from a | call F(n: _.col)` take their arguments from the
/// single input row; zero or several rows refuse the call with an error naming the stage.
/// An activity whose arguments read no column still gets every row on stdin.
#[test]
fn results_into_a_single_call_take_the_one_input_row() {
    let dir = scratch("single_row", &[("flow.wv", SINGLE_ROW)]);
    let (code, summary) = run_json(&dir, Some("One(k = 1)"));
    assert_eq!(code, Some(0), "{summary}");
    assert_eq!(
        ndjson(&dir.join("shown.ndjson")),
        vec![serde_json::json!({"n": 1, "name": "a"})]
    );
    assert_eq!(
        ndjson(&dir.join("child.ndjson")),
        vec![serde_json::json!({"n": 1})]
    );
    assert_eq!(stage(&summary, "child")["state"], "success");

    for (k, rows) in [("0", "no rows"), ("3", "3 rows")] {
        let (code, summary) = run_json(&dir, Some(&format!("One(k = {k})")));
        assert_eq!(code, Some(1), "{summary}");
        for (name, callee) in [("shown", "show"), ("child", "Child")] {
            let s = stage(&summary, name);
            assert_eq!(s["state"], "failed", "{summary}");
            let error = s["error"].as_str().unwrap();
            assert!(
                error.contains(&format!("stage `{name}`"))
                    && error.contains(&format!("`{callee}`"))
                    && error.contains(rows),
                "{error}"
            );
        }
        // Reading no column, the activity takes the rows as they are.
        assert_eq!(stage(&summary, "counted")["state"], "success", "{summary}");
        assert_eq!(
            ndjson(&dir.join("counted.ndjson")).last().unwrap()["lines"],
            k.parse::<i64>().unwrap()
        );
    }
}

/// Jumps follow the same rule: `-> F(n: _.id)` after three rows refuses instead of taking
/// the first one.
#[test]
fn a_jump_reads_one_row_or_refuses() {
    let dir = scratch("single_row_jump", &[("flow.wv", SINGLE_ROW)]);
    let (code, summary) = run_json(&dir, Some("Jump(k = 1)"));
    assert_eq!(code, Some(0), "{summary}");
    assert_eq!(
        ndjson(&dir.join("child.ndjson")),
        vec![serde_json::json!({"n": 1})]
    );
    let (code, summary) = run_json(&dir, Some("Jump(k = 3)"));
    assert_eq!(code, Some(1), "{summary}");
    let error = stage(&summary, "totals")["error"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        error.contains("3 rows") && error.contains("stage `totals`"),
        "{error}"
    );
}

/// A stage with no input has no row to read: `_.x` there stays an error of the checker.
#[test]
fn a_stage_without_input_has_no_row_to_read() {
    let dir = scratch(
        "single_row_no_input",
        &[(
            "flow.wv",
            "activity show(n: int) = exec('echo', n)\nflow F = {\n  stage s = show(_.id)\n}\n",
        )],
    );
    assert!(short_check(&dir).contains("E0616"));
}

const DELAYS: &str = r#"-- Countdown and ETA without a dummy source.
flow Delays(delay: duration = 1s, eta: timestamp = timestamp '2020-01-01T00:00:00Z') = {
  stage pause = wait(delay)
  stage due = wait until now() >= eta
  stage countdown [poll_interval: 100ms, timeout: 10s] = wait until now() >= run_time + 1s
  stage after = from pause | select 'done' as x
}
flow Never = {
  stage never [poll_interval: 100ms, timeout: 1s] = wait until now() >= timestamp '2999-01-01T00:00:00Z'
}
flow Arithmetic(at: timestamp = timestamp '2026-12-01T09:00:00Z', step: duration = 90s) = {
  stage s = from [[1]] as t(x)
    | select at + step as later, at - timestamp '2026-12-01T08:00:00Z' as gap, date '2026-12-01' + 1d as next_day, now() >= at - 36500d as passed, now() >= at + 36500d as to_come
    | activate('file', path: 'times.ndjson')
}
flow Columns(a: timestamp = timestamp '2026-01-01T09:00:00Z', b: timestamp = timestamp '2026-01-01T08:00:00Z', d: duration = 1h) = {
  stage s = from [[1]] as t(x) | select a as started_at, b as ended_at, d as wait_for
  stage u = from s
    | select started_at - ended_at as took, started_at + wait_for as due, started_at + 500ms > started_at as later, wait_for * 1.5 as longer
    | activate('file', path: 'columns.ndjson')
}
"#;

/// `stage pause = wait(d)` and `stage at = wait until now() >= ...` are stages of their own:
/// the countdown takes its duration (a parameter too), the ETA waits for the run's clock,
/// and an ETA that does not come within the stage's `timeout` fails it.
#[test]
fn delays_are_stages_without_a_dummy_source() {
    let dir = scratch("delays", &[("flow.wv", DELAYS)]);
    let started = std::time::Instant::now();
    let (code, summary) = run_json(&dir, Some("Delays(delay = 2s)"));
    assert_eq!(code, Some(0), "{summary}");
    let ms = |name: &str| stage(&summary, name)["duration_ms"].as_u64().unwrap();
    assert!(ms("pause") >= 2000, "{summary}");
    assert!(
        ms("due") < 1000,
        "an ETA in the past passes at once: {summary}"
    );
    // `run_time` is to the second: the countdown ends 0 to 1 s early or late.
    assert!((0..2500).contains(&ms("countdown")), "{summary}");
    assert_eq!(stage(&summary, "after")["state"], "success");
    assert_eq!(stage(&summary, "after")["rows"], 0, "a delay has no rows");
    assert!(started.elapsed() < std::time::Duration::from_secs(20));

    let (code, summary) = run_json(&dir, Some("Never"));
    assert_eq!(code, Some(1), "{summary}");
    let never = stage(&summary, "never");
    assert_eq!(never["state"], "failed");
    assert!(
        never["error"]
            .as_str()
            .unwrap()
            .contains("not met within 1s"),
        "{never}"
    );
}

/// Timestamps and durations add as times, not as text and numbers: timestamp ± duration,
/// timestamp - timestamp, date + duration, and `now()` compares with a timestamp.
#[test]
fn timestamp_arithmetic_is_time_arithmetic() {
    let dir = scratch("time_arithmetic", &[("flow.wv", DELAYS)]);
    let (code, summary) = run_json(&dir, Some("Arithmetic"));
    assert_eq!(code, Some(0), "{summary}");
    assert_eq!(
        ndjson(&dir.join("times.ndjson")),
        vec![serde_json::json!({
            "later": "2026-12-01T09:01:30Z",
            "gap": "1h",
            "next_day": "2026-12-02T00:00:00Z",
            // The run's clock against a century before and after `at`: true on any date.
            "passed": true,
            "to_come": false
        })]
    );
}

/// Columns keep their types through a stage: arithmetic on timestamp and duration columns is
/// time arithmetic too, a timestamp with milliseconds compares as a later instant (not as
/// text), and a duration scaled by 1.5 stays a duration.
#[test]
fn column_time_arithmetic_and_comparisons_are_typed() {
    let dir = scratch("time_columns", &[("flow.wv", DELAYS)]);
    let (code, summary) = run_json(&dir, Some("Columns"));
    assert_eq!(code, Some(0), "{summary}");
    assert_eq!(
        ndjson(&dir.join("columns.ndjson")),
        vec![serde_json::json!({
            "took": "1h",
            "due": "2026-01-01T10:00:00Z",
            "later": true,
            "longer": "90m"
        })]
    );
}

/// What a delay or a time literal cannot be is said before anything runs.
#[test]
fn delays_and_time_literals_are_checked() {
    let dir = scratch(
        "delays_checked",
        &[(
            "flow.wv",
            "flow B(flag: boolean = true, d: duration = 1s) = {\n  stage a = wait(5)\n  stage b = wait('abc')\n  stage c = wait(flag)\n  stage d = wait until now() > timestamp 'nope'\n  stage e = wait until now() > date '2026-02-30'\n  stage f [idempotency_key: 'k' || now()] = from [[1]] as t(x)\n  stage g = wait until now() + 86400 > run_time\n  stage h = from [[1]] as t(x) | select d - run_time as y, run_time + run_time as z, d + 5 as w\n}\n",
        )],
    );
    let text = short_check(&dir);
    let codes: Vec<&str> = text
        .lines()
        .filter_map(|l| l.split_once("error[").map(|(_, r)| &r[..5]))
        .collect();
    assert_eq!(
        codes,
        [
            "E0620", "E0620", "E0620", "E0015", "E0015", "E0405", "E0621", "E0621", "E0621",
            "E0621"
        ],
        "{text}"
    );
    assert!(
        text.contains("flow.wv:4:18: error[E0620]: `wait` takes a duration: found boolean"),
        "{text}"
    );
}

const RACE: &str = r#"activity probe(name: string, secs: float, code: int) = sh("""
  sleep "$WV_SECS"
  if [ "$WV_CODE" != 0 ]; then echo "probe $WV_NAME failed" >&2; exit "$WV_CODE"; fi
  printf '{"probe": "%s"}\n' "$WV_NAME"
""")
activity long_job = sh("sleep 3")
flow Race(fast_secs: float = 0.2, fast_code: int = 0, slow_secs: float = 30, slow_code: int = 0) = {
  stage fast [on_failure: ignore] = probe('fast', fast_secs, fast_code)
  stage slow [on_failure: ignore] = probe('slow', slow_secs, slow_code)
  stage winner [trigger: first_success] = merge fast, slow | activate('file', path: 'winner.ndjson')
}
flow Crowded with { max_parallel: 2 } = {
  stage fast = probe('fast', 0.2, 0)
  stage slow = probe('slow', 0.8, 0)
  stage blocker = long_job()
  stage winner [trigger: first_success] = merge fast, slow | activate('file', path: 'crowded.ndjson')
}
"#;

/// `trigger: first_success` starts the stage when the first upstream succeeds, reads that
/// stage's rows only, and cancels the upstream stages still running (their processes
/// killed, their state `cancelled`, not a failure of the flow). When every upstream fails,
/// the stage is skipped.
#[test]
fn first_success_takes_the_first_result_and_cancels_the_rest() {
    let dir = scratch("first_success", &[("flow.wv", RACE)]);
    let started = std::time::Instant::now();
    let (code, summary) = run_json(&dir, Some("Race"));
    assert_eq!(code, Some(0), "{summary}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(15),
        "the slow probe was not stopped: {summary}"
    );
    assert_eq!(summary["state"], "success");
    assert_eq!(stage(&summary, "fast")["state"], "success");
    assert_eq!(stage(&summary, "slow")["state"], "cancelled", "{summary}");
    assert_eq!(stage(&summary, "winner")["state"], "success");
    assert_eq!(
        ndjson(&dir.join("winner.ndjson")),
        vec![serde_json::json!({"probe": "fast"})]
    );
    // No `sleep 30` left behind: nothing runs in the process groups of the run's attempts.
    let left = groups_left(&dir.join(".wvflow/workspace.db"));
    assert!(left.is_empty(), "left running: {left}");

    // The fast one fails: the first success is the slow one's.
    let (code, summary) = run_json(&dir, Some("Race(fast_code = 3, slow_secs = 0.5)"));
    assert_eq!(code, Some(0), "{summary}");
    assert_eq!(stage(&summary, "fast")["state"], "failed");
    assert_eq!(stage(&summary, "winner")["state"], "success");
    assert_eq!(
        ndjson(&dir.join("winner.ndjson")),
        vec![serde_json::json!({"probe": "slow"})]
    );

    // Both fail: nothing to take, the stage is skipped.
    let (code, summary) = run_json(
        &dir,
        Some("Race(fast_code = 3, slow_secs = 0.3, slow_code = 4)"),
    );
    assert_eq!(code, Some(0), "{summary}");
    assert_eq!(stage(&summary, "winner")["state"], "skipped", "{summary}");
}

/// The race is decided when the first racer succeeds, even when the racing stage must wait
/// for a free `max_parallel` slot: the racer still running is cancelled then, and only the
/// first success's rows are read.
#[test]
fn first_success_decides_before_the_stage_can_start() {
    let dir = scratch("first_success_crowded", &[("flow.wv", RACE)]);
    let (code, summary) = run_json(&dir, Some("Crowded"));
    assert_eq!(code, Some(0), "{summary}");
    assert_eq!(stage(&summary, "slow")["state"], "cancelled", "{summary}");
    assert_eq!(
        ndjson(&dir.join("crowded.ndjson")),
        vec![serde_json::json!({"probe": "fast"})]
    );
}

const FAILED_ITEMS: &str = r#"activity pay(id: int, bad: string) = sh("""
  case ",$WV_BAD," in *",$WV_ID,"*) echo "card declined for $WV_ID" >&2; exit 7;; esac
  printf '{"paid": %s}\n' "$WV_ID"
""")
flow Payouts(bad: string = '2,4') = {
  stage items = from [[1, 'a'], [2, 'b'], [3, 'c'], [4, 'd']] as t(id, name)
  stage paid [tolerated_failures: 2] = from items | each pay(_.id, bad)
  stage to_retry = from failed(paid) | select id, name, item_index, exit_code, error | activate('file', path: 'failed.ndjson')
}
flow Strict(bad: string = '2,4') = {
  stage items = from [[1, 'a'], [2, 'b'], [3, 'c'], [4, 'd']] as t(id, name)
  stage paid [tolerated_failures: 1, on_failure: ignore] = from items | each pay(_.id, bad)
  stage report [trigger: all_done] = from failed(paid) | select id, exit_code | activate('file', path: 'strict.ndjson')
}
"#;

/// `failed(stage)` reads the items of an `each` that failed: each one's index, exit code and
/// error, then its input row; zero failures read as zero rows, and a fan-out that failed past
/// its tolerance still tells what failed to a stage that runs after it anyway.
#[test]
fn failed_items_are_read_downstream() {
    let dir = scratch("failed_items", &[("flow.wv", FAILED_ITEMS)]);
    let (code, summary) = run_json(&dir, Some("Payouts"));
    assert_eq!(code, Some(0), "{summary}");
    assert_eq!(stage(&summary, "paid")["rows"], 2);
    let failed = ndjson(&dir.join("failed.ndjson"));
    assert_eq!(failed.len(), 2, "{failed:?}");
    for (row, (id, name, index)) in failed.iter().zip([(2, "b", 1), (4, "d", 3)]) {
        assert_eq!(row["id"], id);
        assert_eq!(row["name"], name);
        assert_eq!(row["item_index"], index);
        assert_eq!(row["exit_code"], 7);
        assert!(
            row["error"]
                .as_str()
                .unwrap()
                .contains(&format!("card declined for {id}")),
            "{row}"
        );
    }

    let (code, summary) = run_json(&dir, Some("Payouts(bad = '')"));
    assert_eq!(code, Some(0), "{summary}");
    assert_eq!(stage(&summary, "to_retry")["state"], "success");
    assert_eq!(stage(&summary, "to_retry")["rows"], 0);

    let (code, summary) = run_json(&dir, Some("Strict"));
    assert_eq!(code, Some(0), "{summary}");
    assert_eq!(stage(&summary, "paid")["state"], "failed");
    assert_eq!(
        ndjson(&dir.join("strict.ndjson")),
        vec![
            serde_json::json!({"id": 2, "exit_code": 7}),
            serde_json::json!({"id": 4, "exit_code": 7})
        ]
    );
}

/// `failed(x)` names a stage with an `each`.
#[test]
fn failed_items_of_what_is_not_a_fan_out_are_refused() {
    let dir = scratch(
        "failed_items_checked",
        &[(
            "flow.wv",
            "flow F = {\n  stage items = from [[1]] as t(id)\n  stage a = from failed(items)\n  stage b = from failed(itemz)\n}\n",
        )],
    );
    let text = short_check(&dir);
    assert!(text.contains("flow.wv:3:25: error[E0116]"), "{text}");
    assert!(text.contains("flow.wv:4:25: error[E0104]"), "{text}");
}

const MAPPED: &str = r#"activity enrich(id: int) = sh("""
  if [ "$WV_ID" = 3 ] && [ ! -e "retried-$WV_ID" ]; then touch "retried-$WV_ID"; echo "flaky $WV_ID" >&2; exit 5; fi
  if [ "$WV_ID" = 9 ]; then echo "bad customer $WV_ID" >&2; exit 9; fi
  printf '{"id": %s, "score": %s}\n' "$WV_ID" "$((WV_ID * 10))"
""")
flow Enrich(id: int) = {
  stage scored = enrich(id)
  stage final = from scored | select id, score, 'child' as source
}
flow Customers(last: int = 4) = {
  stage customers = from [[1], [2], [3], [4], [9]] as t(id) | where id <= last
  stage enriched [concurrency: 2, retries: 1, retry_delay: 100ms, tolerated_failures: 1] = from customers | each call Enrich(id: _.id)
  stage report = from enriched | order by id | activate('file', path: 'enriched.ndjson')
  stage failures [trigger: all_done] = from failed(enriched) | select id, error | activate('file', path: 'children_failed.ndjson')
}
"#;

/// `each call Child(x: _.x)` runs one child run per row, at most `concurrency` at once; a
/// failed child run is retried by the stage's policy; the children's final rows together
/// are the stage's rows; failures within `tolerated_failures` are read with `failed(...)`;
/// every child is linked to its parent.
#[test]
fn mapped_child_flows_run_one_child_per_row() {
    let dir = scratch("mapped_children", &[("flow.wv", MAPPED)]);
    let (code, summary) = run_json(&dir, Some("Customers(last = 9)"));
    assert_eq!(code, Some(0), "{summary}");
    assert_eq!(stage(&summary, "enriched")["state"], "success", "{summary}");
    let rows = ndjson(&dir.join("enriched.ndjson"));
    let ids: Vec<i64> = rows.iter().map(|r| r["id"].as_i64().unwrap()).collect();
    assert_eq!(ids, [1, 2, 3, 4], "{rows:?}");
    assert!(
        rows.iter()
            .all(|r| r["source"] == "child" && r["score"] == r["id"].as_i64().unwrap() * 10)
    );
    // Customer 3 failed once and was retried: its retry marker exists.
    assert!(dir.join("retried-3").exists());
    let failed = ndjson(&dir.join("children_failed.ndjson"));
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0]["id"], 9);
    assert!(
        failed[0]["error"]
            .as_str()
            .unwrap()
            .contains("bad customer 9"),
        "{failed:?}"
    );

    // Each child run is recorded with its parent: five children (one retried twice) under
    // the parent's `enriched` stage.
    let run_id = summary["run_id"].as_str().unwrap();
    let tree = wvflow(&[
        "runs",
        "show",
        run_id,
        "--tree",
        "--db",
        dir.join(".wvflow/workspace.db").to_str().unwrap(),
    ]);
    let text =
        String::from_utf8_lossy(&tree.stdout).into_owned() + &String::from_utf8_lossy(&tree.stderr);
    assert_eq!(text.matches("Enrich").count(), 7, "{text}");
}

const POOLS: &str = r#"pool gpu with { slots: 1 }
pool lanes with { slots: 2 }
activity busy(name: string, secs: float) = sh("""
  echo "start $WV_NAME $(date +%s.%N)" >> trace.log
  sleep "$WV_SECS"
  echo "end $WV_NAME $(date +%s.%N)" >> trace.log
  printf '{"name": "%s"}\n' "$WV_NAME"
""")
flow Train(name: string = 'a', secs: float = 1.0) = {
  stage train [pool: gpu] = busy(name, secs)
}
flow Tune(name: string = 't', secs: float = 0.2) = {
  stage tune [pool: gpu] = busy(name, secs)
}
flow Lanes = {
  stage items = from [['l1'], ['l2'], ['l3'], ['l4'], ['l5']] as t(name)
  stage work [pool: lanes, concurrency: 5] = from items | each busy(_.name, 0.4)
}
"#;

/// The most intervals of `trace.log` open at once, and the count of intervals.
fn most_at_once(dir: &Path) -> (usize, usize) {
    let text = std::fs::read_to_string(dir.join("trace.log")).unwrap();
    let mut events: Vec<(f64, i32)> = text
        .lines()
        .map(|l| {
            let parts: Vec<&str> = l.split(' ').collect();
            (
                parts[2].parse::<f64>().unwrap(),
                if parts[0] == "start" { 1 } else { -1 },
            )
        })
        .collect();
    // At the same instant an end comes before a start.
    events.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let (mut open, mut most) = (0, 0);
    for (_, step) in &events {
        open += step;
        most = most.max(open);
    }
    (most as usize, events.len() / 2)
}

/// `wvflow run DIR CALL` in the background, once its activity has logged `start NAME` in
/// `trace.log` (it holds its pool slot then).
fn started_run(dir: &Path, call: &str, name: &str) -> std::process::Child {
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_wvflow"))
        .args(["run", dir.to_str().unwrap(), call, "--format", "json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let marker = format!("start {name}");
    while !std::fs::read_to_string(dir.join("trace.log"))
        .unwrap_or_default()
        .contains(&marker)
    {
        assert!(std::time::Instant::now() < deadline, "{call} did not start");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child
}

/// A pool's slots hold across processes and flows: a run of `Train` and a run of `Tune`, whose
/// stages take the only slot of `gpu`, run one after the other, and the second shows `queued`
/// in `runs show` meanwhile.
#[test]
fn a_pool_limits_stages_across_processes() {
    let dir = scratch("pools_processes", &[("flow.wv", POOLS)]);
    let first = started_run(&dir, "Train(name = 'a', secs = 2.5)", "a");
    let second = std::process::Command::new(env!("CARGO_BIN_EXE_wvflow"))
        .args([
            "run",
            dir.to_str().unwrap(),
            "Tune(name = 'b')",
            "--format",
            "json",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let db = dir.join(".wvflow/workspace.db");
    let db = db.to_str().unwrap();
    let mut seen_queued = false;
    while std::time::Instant::now() < deadline && !seen_queued {
        let list = wvflow(&["runs", "list", "--db", db]);
        for line in String::from_utf8_lossy(&list.stdout)
            .lines()
            .filter(|l| l.contains("Tune"))
        {
            let id = line.split_whitespace().next().unwrap();
            let show = wvflow(&["runs", "show", id, "--db", db]);
            seen_queued |= String::from_utf8_lossy(&show.stdout).contains("queued");
        }
        if !seen_queued {
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
    for child in [first, second] {
        let out = child.wait_with_output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    assert!(seen_queued, "the waiting run never showed `queued`");
    assert_eq!(most_at_once(&dir), (1, 2), "both held the one slot at once");
}

/// The items of an `each` hold a pool one by one: five items at `concurrency: 5` on a pool of
/// two slots run two at a time.
#[test]
fn a_pool_limits_each_items() {
    let dir = scratch("pools_items", &[("flow.wv", POOLS)]);
    let (code, summary) = run_json(&dir, Some("Lanes"));
    assert_eq!(code, Some(0), "{summary}");
    assert_eq!(stage(&summary, "work")["rows"], 5);
    assert_eq!(most_at_once(&dir), (2, 5));
}

/// A pool is named, defined once, and has slots.
#[test]
fn pools_are_checked() {
    let dir = scratch(
        "pools_checked",
        &[(
            "flow.wv",
            "pool gpu with { slots: 1 }\npool gpu with { slots: 2 }\npool cpu with { size: 2 }\nflow F = {\n  stage a [pool: gpx] = from [[1]] as t(x)\n}\n",
        )],
    );
    let text = short_check(&dir);
    for expected in [
        "flow.wv:2:6: error[E0117]",
        "flow.wv:3:17: error[E0201]",
        "flow.wv:3:6: error[E0211]",
        "flow.wv:5:18: error[E0210]",
    ] {
        assert!(text.contains(expected), "{expected} in {text}");
    }
    let human = wvflow(&["check", dir.to_str().unwrap(), "--color", "never"]);
    let human = String::from_utf8_lossy(&human.stdout).into_owned()
        + &String::from_utf8_lossy(&human.stderr);
    assert!(human.contains("Help: did you mean `gpu`?"), "{human}");
}

/// `parent_close` holds for mapped children: when the stage times out, each child still
/// running is stopped (`terminate`: cancelled, no process left), and the stage fails.
#[test]
fn mapped_children_stop_with_their_stage() {
    let dir = scratch(
        "mapped_children_close",
        &[(
            "flow.wv",
            "activity nap(secs: int) = sh(\"sleep $WV_SECS\")\nflow Slow(secs: int) = {\n  stage napping = nap(secs)\n}\nflow Parent = {\n  stage items = from [[31], [32]] as t(secs)\n  stage children [timeout: 1s, parent_close: terminate, concurrency: 2] = from items | each call Slow(secs: _.secs)\n}\n",
        )],
    );
    let started = std::time::Instant::now();
    let (code, summary) = run_json(&dir, Some("Parent"));
    assert_eq!(code, Some(1), "{summary}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(15),
        "{summary}"
    );
    let children = stage(&summary, "children");
    assert_eq!(children["state"], "failed");
    assert!(
        children["error"].as_str().unwrap().contains("timed out"),
        "{children}"
    );
    let left = groups_left(&dir.join(".wvflow/workspace.db"));
    assert!(left.is_empty(), "left running: {left}");
    let list = wvflow(&[
        "runs",
        "list",
        "--db",
        dir.join(".wvflow/workspace.db").to_str().unwrap(),
    ]);
    let text = String::from_utf8_lossy(&list.stdout);
    assert_eq!(
        text.lines()
            .filter(|l| l.contains("Slow") && l.contains("cancelled"))
            .count(),
        2,
        "{text}"
    );
}

/// A slot whose holder was killed (`kill -9`: no chance to give it back) is freed by the next
/// one to look: the pool does not stay full for ever.
#[test]
fn a_pool_slot_of_a_killed_run_is_freed() {
    let dir = scratch("pools_killed", &[("flow.wv", POOLS)]);
    let mut holder = started_run(&dir, "Train(name = 'k', secs = 41)", "k");
    holder.kill().unwrap();
    holder.wait().unwrap();
    // The activity's process group outlives its owner; it is not what holds the slot.
    let _ = std::process::Command::new("pkill")
        .args(["-f", "sleep 41"])
        .status();
    let started = std::time::Instant::now();
    let (code, summary) = run_json(&dir, Some("Tune(name = 'after')"));
    assert_eq!(code, Some(0), "{summary}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "{summary}"
    );
}

/// A cancel reaches a stage between two attempts too: a race loser waiting out its
/// `retry_delay` is cancelled at once, not after its retries.
#[test]
fn a_cancel_ends_a_retry_delay() {
    let dir = scratch(
        "cancel_retry_delay",
        &[(
            "flow.wv",
            "activity flaky = sh(\"echo down >&2; exit 1\")\nactivity slowish = sh(\"sleep 0.5; echo '{\\\"ok\\\": true}'\")\nflow Race = {\n  stage loser [retries: 3, retry_delay: 20s, on_failure: ignore] = flaky()\n  stage winner = slowish()\n  stage first [trigger: first_success] = merge loser, winner\n}\n",
        )],
    );
    let started = std::time::Instant::now();
    let (code, summary) = run_json(&dir, Some("Race"));
    assert_eq!(code, Some(0), "{summary}");
    assert_eq!(stage(&summary, "loser")["state"], "cancelled", "{summary}");
    assert_eq!(stage(&summary, "loser")["attempts"], 1, "{summary}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "{summary}"
    );
}

/// `first_success` needs upstream stages to race, and reads one of them, so no `join`.
#[test]
fn first_success_is_checked() {
    let dir = scratch(
        "first_success_checked",
        &[(
            "flow.wv",
            "flow F = {\n  stage a = from [[1]] as t(x)\n  stage b = from [[1]] as t(x)\n  stage alone [trigger: first_success] = from [[1]] as t(x)\n  stage joined [trigger: first_success] = from a | join b on a.x = b.x\n}\n",
        )],
    );
    let text = short_check(&dir);
    assert!(text.contains("flow.wv:4:25: error[E0306]"), "{text}");
    assert!(text.contains("flow.wv:5:26: error[E0308]"), "{text}");
}

/// A per-item `idempotency_key` holds for mapped children as for activities: a second run
/// starts no child run for an item whose key succeeded, and reuses its rows.
#[test]
fn mapped_children_reuse_their_idempotency_keys() {
    let dir = scratch(
        "mapped_children_keys",
        &[(
            "flow.wv",
            "activity count(id: int) = sh(\"\"\"echo \"$WV_ID\" >> calls.log; printf '{\"id\": %s}\\n' \"$WV_ID\" \"\"\")\nflow Counted(id: int) = {\n  stage c = count(id)\n}\nflow Parent = {\n  stage items = from [[1], [2]] as t(id)\n  stage kids [idempotency_key: 'call-' || _.id] = from items | each call Counted(id: _.id)\n}\n",
        )],
    );
    for _ in 0..2 {
        let (code, summary) = run_json(&dir, Some("Parent"));
        assert_eq!(code, Some(0), "{summary}");
        assert_eq!(stage(&summary, "kids")["rows"], 2, "{summary}");
    }
    let calls = std::fs::read_to_string(dir.join("calls.log")).unwrap();
    assert_eq!(calls.lines().count(), 2, "{calls}");
}

/// `wvflow run DIR FLOW` killed (`kill -9`) once `ready` holds, then `wvflow runs resume` of
/// its run: the resume's output.
fn crash_and_resume(dir: &Path, flow: &str, ready: impl Fn() -> bool) -> std::process::Output {
    let mut run = std::process::Command::new(env!("CARGO_BIN_EXE_wvflow"))
        .args(["run", dir.to_str().unwrap(), flow])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !ready() {
        assert!(
            std::time::Instant::now() < deadline,
            "{flow} never got there"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    run.kill().unwrap();
    run.wait().unwrap();
    let db = dir.join(".wvflow/workspace.db");
    let db = db.to_str().unwrap();
    let list = String::from_utf8_lossy(&wvflow(&["runs", "list", "--db", db]).stdout).into_owned();
    let id = list
        .lines()
        .find(|l| l.split_whitespace().nth(1) == Some(flow))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("no run of {flow} in {list}"))
        .to_string();
    wvflow(&["runs", "resume", &id, "--db", db])
}

/// A race decided before a crash stays decided: `runs resume` does not run its loser again.
#[test]
fn a_resumed_run_keeps_its_race_loser_cancelled() {
    let dir = scratch(
        "first_success_resume",
        &[(
            "flow.wv",
            "activity fast = sh(\"echo '{\\\"who\\\": \\\"a\\\"}'\")\nactivity slow = sh(\"sleep 3; echo b >> slow.log; echo '{\\\"who\\\": \\\"b\\\"}'\")\nactivity tail_job = sh(\"echo started >> tail.log; sleep 3; echo '{\\\"t\\\": 1}'\")\nflow R = {\n  stage a = fast()\n  stage b = slow()\n  stage w [trigger: first_success] = merge a, b\n  stage t = from w | tail_job()\n}\n",
        )],
    );
    let resumed = crash_and_resume(&dir, "R", || dir.join("tail.log").exists());
    let text = String::from_utf8_lossy(&resumed.stdout);
    assert_eq!(resumed.status.code(), Some(0), "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("b ") && l.contains("cancelled")),
        "{text}"
    );
    assert!(!dir.join("slow.log").exists(), "the loser ran again");
}

/// A stage's `schedule_timeout` bounds its wait for a pool slot too.
#[test]
fn pool_waits_are_bounded_and_reported_once() {
    let dir = scratch(
        "pools_bounded",
        &[(
            "flow.wv",
            &format!(
                "{POOLS}flow Impatient = {{\n  stage i [pool: gpu, schedule_timeout: 1s] = busy('i', 0.1)\n}}\n"
            ),
        )],
    );
    let mut holder = started_run(&dir, "Train(name = 'h', secs = 6)", "h");
    let started = std::time::Instant::now();
    let (code, summary) = run_json(&dir, Some("Impatient"));
    assert_eq!(code, Some(1), "{summary}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(4),
        "{summary}"
    );
    let error = stage(&summary, "i")["error"].as_str().unwrap().to_string();
    assert!(
        error.contains("no slot of pool `gpu` came free within the schedule_timeout of 1s"),
        "{error}"
    );
    holder.kill().unwrap();
    holder.wait().unwrap();
    let _ = std::process::Command::new("pkill")
        .args(["-f", "sleep 6"])
        .status();
}

/// Children left to run on their own (`parent_close: abandon`) still give their final rows
/// when they end while the stage waits for them.
#[test]
fn abandonable_children_give_their_rows() {
    let dir = scratch(
        "mapped_children_abandon",
        &[(
            "flow.wv",
            "activity emit(id: int) = exec('printf', '{\"id\": %s}\\n', id)\nflow One(id: int) = {\n  stage e = emit(id)\n}\nflow Parent = {\n  stage items = from [[1], [2]] as t(id)\n  stage kids [parent_close: abandon] = from items | each call One(id: _.id)\n}\n",
        )],
    );
    let (code, summary) = run_json(&dir, Some("Parent"));
    assert_eq!(code, Some(0), "{summary}");
    assert_eq!(stage(&summary, "kids")["rows"], 2, "{summary}");
}

const RACE_MORE: &str = r#"activity slow(name: string, delay: float) = sh("""sleep "$WV_DELAY"; echo "$WV_NAME" >> ran.log; printf '{"who": "%s"}\n' "$WV_NAME" """)
activity broken = sh("sleep 0.1; echo broken >&2; exit 1")
flow Child(delay: float) = {
  stage c = slow('child', delay)
}
flow Crowd = {
  stage a = slow('a', 0.3)
  stage b = slow('b', 3)
  stage c = slow('c', 3)
  stage first [trigger: first_success] = merge a, b
}
flow WithCall = {
  stage a = slow('a', 0.3)
  stage b = call Child(delay: 30)
  stage first [trigger: first_success] = merge a, b
}
flow Failing = {
  stage a = broken()
  stage b = slow('b', 0.5)
  stage first [trigger: first_success] = merge a, b
}
"#;

/// A race is decided when its first racer succeeds, not when the racing stage can start:
/// with one stage at a time, the racer not yet started never runs.
#[test]
fn a_race_is_decided_when_the_first_racer_succeeds() {
    let dir = scratch("race_decided", &[("flow.wv", RACE_MORE)]);
    let o = wvflow(&[
        "run",
        dir.to_str().unwrap(),
        "Crowd",
        "--max-parallel",
        "1",
        "--format",
        "json",
    ]);
    let summary: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(o.status.code(), Some(0), "{summary}");
    assert_eq!(stage(&summary, "b")["state"], "cancelled", "{summary}");
    assert_eq!(stage(&summary, "b")["attempts"], 0, "{summary}");
    let ran = std::fs::read_to_string(dir.join("ran.log")).unwrap();
    assert!(!ran.contains('b'), "the loser ran: {ran}");
}

/// A racer that is a child run ends `cancelled` when it loses, and the run succeeds.
#[test]
fn a_child_run_that_loses_a_race_is_cancelled() {
    let dir = scratch("race_child", &[("flow.wv", RACE_MORE)]);
    let (code, summary) = run_json(&dir, Some("WithCall"));
    assert_eq!(code, Some(0), "{summary}");
    assert_eq!(stage(&summary, "b")["state"], "cancelled", "{summary}");
}

/// Resuming a run whose racer failed (it was not cancelled by the race) runs it again: the
/// failure is not erased into a cancel.
#[test]
fn resuming_a_failed_race_runs_the_failed_racer_again() {
    let dir = scratch("race_resume_failed", &[("flow.wv", RACE_MORE)]);
    let (code, summary) = run_json(&dir, Some("Failing"));
    assert_eq!(code, Some(1), "{summary}");
    let db = dir.join(".wvflow/workspace.db");
    let run_id = summary["run_id"].as_str().unwrap();
    let resumed = wvflow(&["runs", "resume", run_id, "--db", db.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&resumed.stdout);
    assert_eq!(resumed.status.code(), Some(1), "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("a ") && l.contains("failed")),
        "{text}"
    );
}

/// A bare column (not only `_.x`) is the single row's column in a single call's arguments.
#[test]
fn a_bare_column_reads_the_single_row() {
    let dir = scratch(
        "single_row_bare",
        &[(
            "flow.wv",
            "activity show(n: int) = exec('printf', '{\"n\": %s}\\n', n)\nflow Child(n: int) = {\n  stage c = from [[n]] as t(n) | activate('file', path: 'child.ndjson')\n}\nflow F = {\n  stage a = from [[7]] as t(x)\n  stage shown = from a | show(x) | activate('file', path: 'shown.ndjson')\n  stage called = from a | select max(x) as m | call Child(m)\n}\n",
        )],
    );
    let (code, summary) = run_json(&dir, Some("F"));
    assert_eq!(code, Some(0), "{summary}");
    assert_eq!(
        ndjson(&dir.join("shown.ndjson")),
        vec![serde_json::json!({"n": 7})]
    );
    assert_eq!(
        ndjson(&dir.join("child.ndjson")),
        vec![serde_json::json!({"n": 7})]
    );
}

/// A time or a duration compared with a number without a unit is refused.
#[test]
fn comparing_a_time_with_a_bare_number_is_refused() {
    let dir = scratch(
        "time_compare_number",
        &[(
            "flow.wv",
            "flow F(d: duration = 90s) = {\n  stage w = wait until now() - run_time > 30\n  stage s = from [[1]] as t(x) | where d > 5\n}\n",
        )],
    );
    let text = short_check(&dir);
    assert_eq!(text.matches("error[E0621]").count(), 2, "{text}");
}

/// `kill -9` in the middle of mapped children, then `runs resume`: items that finished are
/// not run again, the rest are, and no child run is left `running (stale)`.
#[test]
fn resuming_mapped_children_after_a_crash() {
    let dir = scratch(
        "mapped_children_crash",
        &[(
            "flow.wv",
            "activity slow(id: int) = sh(\"\"\"sleep 0.6; echo \"$WV_ID\" >> done.log; printf '{\"id\": %s}\\n' \"$WV_ID\" \"\"\")\nflow Child(id: int) = {\n  stage s = slow(id)\n}\nflow Parent = {\n  stage items = from [[1], [2], [3], [4], [5], [6]] as t(id)\n  stage kids [concurrency: 2] = from items | each call Child(id: _.id)\n}\n",
        )],
    );
    let finished = || {
        let done = std::fs::read_to_string(dir.join("done.log")).unwrap_or_default();
        done.lines().count() >= 2
    };
    let resumed = crash_and_resume(&dir, "Parent", finished);
    assert_eq!(
        resumed.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&resumed.stdout)
    );
    let mut done: Vec<String> = std::fs::read_to_string(dir.join("done.log"))
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    done.sort();
    done.dedup();
    assert_eq!(done, ["1", "2", "3", "4", "5", "6"]);
    let db = dir.join(".wvflow/workspace.db");
    let list = wvflow(&["runs", "list", "--db", db.to_str().unwrap()]);
    let list = String::from_utf8_lossy(&list.stdout);
    assert!(!list.contains("stale"), "{list}");
}

/// A compensation whose arguments read a column takes the stage's one output row, as a
/// single call does: with two rows it fails, naming the stage, instead of undoing the first.
#[test]
fn a_compensation_reads_one_row_or_refuses() {
    let dir = scratch(
        "compensation_one_row",
        &[(
            "flow.wv",
            "activity book(n: int) = exec('printf', '{\"id\": %s}\\n', n)\nactivity undo(id: int) = sh(\"\"\"echo \"$WV_ID\" >> undone.log\"\"\")\nactivity boom = sh(\"exit 3\")\nflow One = {\n  stage b [compensate: undo(_.id)] = book(1)\n  stage x = from b | boom()\n}\nflow Two = {\n  stage items = from [[1], [2]] as t(n)\n  stage b [compensate: undo(_.id)] = from items | each book(_.n)\n  stage x = from b | boom()\n}\n",
        )],
    );
    let (code, summary) = run_json(&dir, Some("One"));
    assert_eq!(code, Some(1), "{summary}");
    assert_eq!(summary["compensations"][0]["state"], "success", "{summary}");
    assert_eq!(
        std::fs::read_to_string(dir.join("undone.log")).unwrap(),
        "1\n"
    );
    let (code, summary) = run_json(&dir, Some("Two"));
    assert_eq!(code, Some(1), "{summary}");
    let compensation = &summary["compensations"][0];
    assert_eq!(compensation["state"], "failed", "{summary}");
    let error = compensation["error"].as_str().unwrap();
    assert!(
        error.contains("stage `b`") && error.contains("2 rows"),
        "{error}"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("undone.log")).unwrap(),
        "1\n",
        "nothing undone by guess"
    );
}
