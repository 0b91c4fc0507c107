//! Semantics a user can trust: every name resolves at check time, values keep their types up
//! to the activity, rows combine by column name, idempotency keys are evaluated where they are
//! written, and every configured bound holds. Each test is a defect a user met, end to end.

use crate::common::{copy_dir, ndjson, run_json, scratch, stage, wvflow};
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// `wvflow check DIR`: the exit code, and the output in the short format (codes) followed by
/// the human one (helps).
fn check_short(dir: &Path) -> (Option<i32>, String) {
    let short = wvflow(&["check", dir.to_str().unwrap(), "--format", "short"]);
    let human = wvflow(&["check", dir.to_str().unwrap(), "--color", "never"]);
    let text = |o: &std::process::Output| {
        String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr)
    };
    (short.status.code(), text(&short) + &text(&human))
}

/// Rows a stage saved with `activate('file', path: ...)` as NDJSON.

#[test]
fn values_keep_their_types_up_to_the_activity() {
    let dir = scratch(
        "typed_values",
        &[(
            "flow.wv",
            r#"activity showx(flag: boolean, n: float, d: duration, day: date, at: timestamp, s: string) = exec('printf', '{"flag": "%s", "n": "%s", "d": "%s", "day": "%s", "at": "%s", "s": "%s", "n1": "%s", "sx": "%s"}\n', flag, n, d, day, at, s, n + 1, s || '-x')
activity showenv(flag: boolean, n: float, d: duration, missing: string) = sh("""printf '{"flag": "%s", "n": "%s", "d": "%s", "missing": "[%s]"}\n' "$WV_FLAG" "$WV_N" "$WV_D" "$WV_MISSING" """)
activity echo_rows = sh("""cat""")
flow C(flag: boolean = false, n: float = 2, d: duration = 90s, day: date = '2026-01-31', at: timestamp = '2026-01-31 09:30:00', s: string = 'a') = {
  stage argv = showx(flag, n, d, day, at, s) | activate('file', path: 'argv.ndjson')
  stage env = showenv(flag, n, d, null) | activate('file', path: 'env.ndjson')
  stage rows = from [[flag, n, d]] as t(flag, n, d) | echo_rows() | activate('file', path: 'rows.ndjson')
}
"#,
        )],
    );
    let (code, summary) = run_json(&dir, Some("C(flag = true)"));
    assert_eq!(code, Some(0), "{summary}");
    let argv = &ndjson(&dir.join("argv.ndjson"))[0];
    assert_eq!(argv["flag"], "true");
    assert_eq!(argv["n"], "2.0");
    assert_eq!(argv["d"], "90s");
    assert_eq!(argv["day"], "2026-01-31");
    assert_eq!(argv["at"], "2026-01-31T09:30:00Z");
    assert_eq!(argv["s"], "a");
    assert_eq!(
        argv["n1"], "3.0",
        "exec arguments that are expressions are evaluated"
    );
    assert_eq!(argv["sx"], "a-x");
    let env = &ndjson(&dir.join("env.ndjson"))[0];
    assert_eq!(env["flag"], "true");
    assert_eq!(env["n"], "2.0");
    assert_eq!(env["d"], "90s");
    assert_eq!(env["missing"], "[]");
    let rows = ndjson(&dir.join("rows.ndjson"));
    assert_eq!(rows[0]["flag"], Value::Bool(true), "{rows:?}");
    assert_eq!(rows[0]["n"], serde_json::json!(2.0));
    assert_eq!(rows[0]["d"], "90s");
}

#[test]
fn a_declined_card_compensates_the_booking() {
    let dir = examples_copy("saga_decline");
    let file = dir.join("booking_saga.wv");
    let (code, summary) = run_json(&file, Some("BookTrip(decline_card = true)"));
    assert_eq!(code, Some(1), "{summary}");
    assert_eq!(summary["state"], "failed");
    assert_eq!(stage(&summary, "payment")["state"], "failed");
    let undone: Vec<&str> = summary["compensations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["stage"].as_str().unwrap())
        .collect();
    assert_eq!(undone, ["car", "hotel", "flight"], "{summary}");
}

/// A copy of `examples/` in a fresh folder, so that runs do not share state.
fn examples_copy(name: &str) -> std::path::PathBuf {
    let dir = scratch(name, &[]);
    copy_dir(Path::new("examples"), &dir);
    dir
}

#[test]
fn merge_and_multi_source_from_match_columns_by_name() {
    let dir = scratch(
        "merge_by_name",
        &[(
            "flow.wv",
            r#"activity fails = sh("""exit 3""")
flow m = {
  stage a = from [['x', 1]] as t(id, name)
  stage b = from [[2, 'y']] as t(name, id)
  stage c = from [['z']] as t(id)
  stage both = merge a, b, c | activate('file', path: 'merged.ndjson')
  stage sources = from a, b | activate('file', path: 'from.ndjson')
  stage primary [on_failure: backup] = fails()
  stage backup if primary.failed = from [['backup']] as t(src)
  stage either [trigger: one_success] = merge primary, backup | activate('file', path: 'either.ndjson')
}
"#,
        )],
    );
    let (code, summary) = run_json(&dir, None);
    assert_eq!(code, Some(0), "{summary}");
    let merged = ndjson(&dir.join("merged.ndjson"));
    assert_eq!(
        merged,
        [
            serde_json::json!({"id": "x", "name": 1}),
            serde_json::json!({"id": "y", "name": 2}),
            serde_json::json!({"id": "z", "name": null}),
        ]
    );
    let from = ndjson(&dir.join("from.ndjson"));
    assert_eq!(from[1], serde_json::json!({"id": "y", "name": 2}));
    assert_eq!(
        ndjson(&dir.join("either.ndjson")),
        [serde_json::json!({"src": "backup"})]
    );
}

#[test]
fn a_merge_of_known_shapes_reports_a_missing_column_before_running() {
    let dir = scratch(
        "merge_known_missing",
        &[(
            "flow.wv",
            "flow m = {\n  stage a = from [[1]] as t(id)\n  stage b = from [[2, 'x']] as t(id, name)\n  stage u = merge a, b | where nmae = 'x'\n}\n",
        )],
    );
    let (code, out) = check_short(&dir);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("error[E0114]"), "{out}");
    assert!(out.contains("did you mean `name`"), "{out}");
}

#[test]
fn joins_keep_one_copy_of_the_key_and_rename_other_collisions() {
    let dir = scratch(
        "join_collisions",
        &[
            (
                "orders.csv",
                "order_id,customer_id,name,amount\n1,10,first order,5\n2,11,second order,7\n",
            ),
            ("customers.csv", "customer_id,name\n10,Ada\n11,Bo\n"),
            (
                "flow.wv",
                r#"flow j = {
  stage joined = from orders | join customers on orders.customer_id = customers.customer_id
    | activate('file', path: 'joined.ndjson')
  stage picked = from orders | join customers on orders.customer_id = customers.customer_id
    | select customer_id, customers_name | order by customer_id
    | activate('file', path: 'picked.ndjson')
  stage qualified = from orders | join customers on orders.customer_id = customers.customer_id
    | select customers.customer_id, customers.name | order by customer_id
    | activate('file', path: 'qualified.ndjson')
}
"#,
            ),
        ],
    );
    let (code, summary) = run_json(&dir, None);
    assert_eq!(code, Some(0), "{summary}");
    let joined = ndjson(&dir.join("joined.ndjson"));
    assert_eq!(
        joined[0],
        serde_json::json!({"order_id": 1, "customer_id": 10, "name": "first order", "amount": 5, "customers_name": "Ada"})
    );
    assert_eq!(
        ndjson(&dir.join("qualified.ndjson"))[0],
        serde_json::json!({"customer_id": 10, "customers_name": "Ada"}),
        "a qualified name after the join means the column it became"
    );
    let picked = ndjson(&dir.join("picked.ndjson"));
    assert_eq!(
        picked,
        [
            serde_json::json!({"customer_id": 10, "customers_name": "Ada"}),
            serde_json::json!({"customer_id": 11, "customers_name": "Bo"})
        ]
    );
}

#[test]
fn names_that_do_not_resolve_are_reported_before_anything_runs() {
    let cases: [(&str, &str, &str); 8] = [
        (
            "row_outside_each",
            // A stage with no input has no row; after `|`, `_` is the single input row.
            "activity echoarg(v: string) = exec('echo', v)\nflow f = {\n  stage s = echoarg(_.result)\n}\n",
            "E0616",
        ),
        (
            "unknown_name",
            "activity echoarg(v: string) = exec('echo', v)\nflow f(thing: string = 'x') = {\n  stage s = echoarg(no_such_thing)\n}\n",
            "E0615",
        ),
        (
            "stage_column_in_call",
            "flow Child(param: string) = { stage s = from [[param]] as t(p) }\nflow f = {\n  stage setup = from [['v']] as t(value)\n  stage c = call Child(param: setup.value)\n}\n",
            "E0616",
        ),
        (
            "unknown_function_in_wait",
            "flow f(eta: string = '2026-01-01') = {\n  stage w = from [[1]] as t(x) | wait until current_time_utc() >= eta\n}\n",
            "E0617",
        ),
        (
            "unknown_function_in_query",
            "flow f = {\n  stage s = from [[1]] as t(x)\n  query status = current_status()\n}\n",
            "E0617",
        ),
        (
            "unknown_name_in_query",
            "flow f = {\n  stage s = from [[1]] as t(x)\n  query progress = completed_steps / total_steps\n}\n",
            "E0615",
        ),
        (
            "row_in_stage_key",
            // A stage whose source is an activity has no input row for its key.
            "activity pay(id: string) = exec('echo', id)\nflow f = {\n  stage s [idempotency_key: _.transaction_id] = pay('x')\n}\n",
            "E0616",
        ),
        (
            "wrong_arity",
            "flow f = {\n  stage s = from [['a']] as t(x) | select upper(x, x) as y\n}\n",
            "E0618",
        ),
    ];
    for (name, src, code) in cases {
        let dir = scratch(&format!("unresolved_{name}"), &[("flow.wv", src)]);
        let (status, out) = check_short(&dir);
        assert_eq!(status, Some(1), "{name}: {out}");
        assert!(out.contains(&format!("error[{code}]")), "{name}: {out}");
        // And `run` refuses it without running anything.
        let o = wvflow(&["run", dir.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(2), "{name}");
        assert!(!dir.join(".wvflow").exists(), "{name}: something ran");
    }
    let dir = scratch(
        "unresolved_did_you_mean",
        &[(
            "flow.wv",
            "flow f = {\n  stage s = from [[1]] as t(x)\n  query progress = completed_steps\n}\n",
        )],
    );
    let (_, out) = check_short(&dir);
    assert!(out.contains("completed_stages()"), "{out}");
}

#[test]
fn idempotency_keys_are_evaluated_per_item_and_per_run() {
    let flow = |items: &str| {
        format!(
            r#"activity run_child(child: string) = sh("""echo "$WV_CHILD $WVFLOW_IDEMPOTENCY_KEY" >> calls.txt; printf '{{"child": "%s"}}\n' "$WV_CHILD" """)
activity settle(b: string) = sh("""echo "$WVFLOW_IDEMPOTENCY_KEY" >> settled.txt""")
flow Batch(batch: string = 'b1') = {{
  stage items = from [{items}] as t(child)
  stage children [idempotency_key: batch || '-' || _.child] = from items | each run_child(_.child)
  stage settled [idempotency_key: 'settle-' || batch] = from children | settle(batch)
}}
"#
        )
    };
    let dir = scratch(
        "idempotency_items",
        &[("flow.wv", &flow("['c1'], ['c2'], ['c3']"))],
    );
    let (code, summary) = run_json(&dir, None);
    assert_eq!(code, Some(0), "{summary}");
    assert_eq!(stage(&summary, "children")["rows"], 3);
    std::fs::write(
        dir.join("flow.wv"),
        flow("['c1'], ['c2'], ['c3'], ['c4'], ['c5']"),
    )
    .unwrap();
    let (code, summary) = run_json(&dir, None);
    assert_eq!(code, Some(0), "{summary}");
    assert_eq!(stage(&summary, "children")["rows"], 5);
    let calls = std::fs::read_to_string(dir.join("calls.txt")).unwrap();
    let mut lines: Vec<&str> = calls.lines().collect();
    lines.sort();
    assert_eq!(
        lines,
        ["c1 b1-c1", "c2 b1-c2", "c3 b1-c3", "c4 b1-c4", "c5 b1-c5"],
        "the second run calls exactly the new items, each with its own key"
    );
    let settled = std::fs::read_to_string(dir.join("settled.txt")).unwrap();
    assert_eq!(
        settled, "settle-b1\n",
        "the stage key is plain text, reused"
    );
}

#[test]
fn the_idempotent_payouts_example_moves_money_once() {
    let dir = examples_copy("payouts");
    let file = dir.join("idempotent_payouts.wv");
    let (code, first) = run_json(&file, None);
    assert_eq!(code, Some(0), "{first}");
    for name in ["transfers", "ledger", "report"] {
        assert!(
            stage(&first, name)["rows"].as_u64().unwrap() > 0,
            "{name}: {first}"
        );
        assert!(stage(&first, name)["attempts"].as_u64().unwrap() >= 1);
    }
    let (code, second) = run_json(&file, None);
    assert_eq!(code, Some(0), "{second}");
    assert_eq!(
        stage(&second, "transfers")["rows"],
        stage(&first, "transfers")["rows"]
    );
    assert_eq!(stage(&second, "ledger")["attempts"], 0, "reused: {second}");
}

#[test]
fn the_flow_timeout_stops_the_run() {
    let dir = scratch(
        "flow_timeout",
        &[(
            "flow.wv",
            r#"activity book = sh("""echo '{"booked": 1}'""")
activity unbook = sh("""echo undone >> undone.txt""")
activity slow = sh("""sleep 30""")
activity alarm = sh("""echo alarm >> alarm.txt""")
flow F with { timeout: 1s, on_failure: alarm() } = {
  stage booked [compensate: unbook()] = book()
  stage wait_long = from booked | slow()
}
"#,
        )],
    );
    let started = Instant::now();
    let (code, summary) = run_json(&dir, None);
    let took = started.elapsed();
    assert_eq!(code, Some(1), "{summary}");
    assert!(took < Duration::from_secs(10), "took {took:?}");
    assert!(took >= Duration::from_millis(900), "took {took:?}");
    assert_eq!(summary["state"], "failed");
    let error = stage(&summary, "wait_long")["error"].as_str().unwrap_or("");
    assert!(error.contains("flow timeout"), "{summary}");
    assert_eq!(
        std::fs::read_to_string(dir.join("undone.txt")).unwrap(),
        "undone\n"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("alarm.txt")).unwrap(),
        "alarm\n"
    );
}

#[test]
fn wait_until_fails_no_earlier_than_its_timeout() {
    let dir = scratch(
        "wait_until_timeout",
        &[(
            "flow.wv",
            "flow F = {\n  stage request = from [[false]] as t(approved)\n  stage gate [poll_interval: 200ms, timeout: 1s] = from request | wait until approved\n}\n",
        )],
    );
    let started = Instant::now();
    let (code, summary) = run_json(&dir, None);
    assert_eq!(code, Some(1), "{summary}");
    assert!(started.elapsed() >= Duration::from_secs(1), "{summary}");
    assert!(
        stage(&summary, "gate")["error"]
            .as_str()
            .unwrap()
            .contains("not met within 1s")
    );
}

#[test]
fn call_cycles_are_warned_and_stopped_at_the_depth_limit() {
    let dir = scratch(
        "call_cycle",
        &[(
            "flow.wv",
            "flow Ping(n: int = 0) = {\n  stage p = call Pong(n + 1)\n}\nflow Pong(n: int = 0) = {\n  stage q = call Ping(n + 1)\n}\n",
        )],
    );
    let (code, out) = check_short(&dir);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("warning[W0604]"), "{out}");
    assert!(out.contains("Ping -> Pong -> Ping"), "{out}");
    let started = Instant::now();
    let (code, summary) = run_json(&dir, Some("Ping"));
    assert_eq!(code, Some(1), "{summary}");
    assert!(started.elapsed() < Duration::from_secs(30));
    let runs = std::fs::read_dir(dir.join(".wvflow/runs")).unwrap().count();
    assert!(runs <= 17, "{runs} run databases");
    let error = summary.to_string();
    assert!(error.contains("depth limit"), "{summary}");
}

#[test]
fn a_closed_pipe_ends_output_quietly() {
    let dir = scratch(
        "closed_pipe",
        &[("flow.wv", "flow f = { stage s = from [[1]] as t(x) }\n")],
    );
    for _ in 0..3 {
        let (code, _) = run_json(&dir, None);
        assert_eq!(code, Some(0));
    }
    let db = dir.join(".wvflow/workspace.db");
    let (db, path) = (db.to_str().unwrap(), dir.to_str().unwrap());
    let commands: [&[&str]; 8] = [
        &["runs", "list", "--db", db],
        &["runs", "list", "--db", db, "--format", "json"],
        &["check", path],
        &["plan", path],
        &["plan", path, "--format", "json"],
        &["run", path],
        &["explain", "E0114"],
        &["fmt", path, "--check"],
    ];
    for args in commands {
        let mut child = Command::new(env!("CARGO_BIN_EXE_wvflow"))
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert!(
            matches!(out.status.code(), Some(0 | 1)),
            "{args:?}: {:?} {stderr}",
            out.status
        );
    }
}

#[test]
fn a_run_that_jumps_prints_one_json_document() {
    let dir = scratch(
        "jump_json",
        &[(
            "flow.wv",
            "flow A = { stage s = from [[1]] as t(x) | -> B(x: _.x) }\nflow B(x: int) = { stage t = from [[x]] as t(y) }\n",
        )],
    );
    let (code, summary) = run_json(&dir, Some("A"));
    assert_eq!(code, Some(0), "{summary}");
    assert_eq!(summary["flow"], "A");
    assert_eq!(summary["next_runs"][0]["flow"], "B");
    assert_eq!(summary["next_runs"][0]["state"], "success");
}

#[test]
fn one_flow_reference_syntax_for_every_command() {
    let dir = scratch(
        "flow_versions",
        &[(
            "flow.wv",
            "flow Order @version(1) = { stage a = from [[1]] as t(x) }\nflow Order @version(2) = { stage b = from [[2]] as t(x) }\n",
        )],
    );
    for reference in ["Order@1", "Order@version(1)", "Order @version(1)"] {
        let (code, summary) = run_json(&dir, Some(reference));
        assert_eq!(code, Some(0), "{reference}: {summary}");
        assert_eq!(summary["stages"][0]["stage"], "a", "{reference}");
        let o = wvflow(&["plan", dir.to_str().unwrap(), reference]);
        assert_eq!(o.status.code(), Some(0), "plan {reference}");
    }
}

#[test]
fn a_retrying_stage_shows_retrying_and_its_attempt_count() {
    let dir = scratch(
        "retrying_state",
        &[(
            "flow.wv",
            r#"activity flaky with { retries: 2, retry_delay: 2s, backoff: constant } = sh("""exit 75""")
flow f = { stage s = flaky() }
"#,
        )],
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_wvflow"))
        .args(["run", dir.to_str().unwrap(), "--format", "json"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let db = dir.join(".wvflow/workspace.db");
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = None;
    while Instant::now() < deadline && seen.is_none() {
        std::thread::sleep(Duration::from_millis(100));
        let o = wvflow(&[
            "runs",
            "list",
            "--db",
            db.to_str().unwrap(),
            "--format",
            "json",
        ]);
        let Ok(list) = serde_json::from_slice::<Value>(&o.stdout) else {
            continue;
        };
        let Some(id) = list[0]["run_id"].as_str() else {
            continue;
        };
        let o = wvflow(&[
            "runs",
            "show",
            id,
            "--db",
            db.to_str().unwrap(),
            "--format",
            "json",
        ]);
        if let Ok(run) = serde_json::from_slice::<Value>(&o.stdout)
            && let Some(s) = run["stages"].as_array().and_then(|s| s.first())
            && s["state"] == "retrying"
        {
            seen = Some(s.clone());
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let seen = seen.expect("the stage was never shown retrying");
    assert!(seen["attempts"].as_u64().unwrap() >= 1, "{seen}");
}

/// A small seeded generator (xorshift), so that a failing flow can be generated again.
struct Gen(u64);

impl Gen {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a>(&mut self, items: &'a [String]) -> &'a str {
        &items[self.below(items.len())]
    }
}

/// A flow whose expressions name only what resolves: parameters, columns of inputs whose shape
/// is known, and functions of the table. Returns the source and one column reference that a
/// mutation can break.
fn generated_flow(g: &mut Gen) -> (String, String) {
    let ints = ["n0", "n1"].map(String::from).to_vec();
    let texts = ["t0", "t1"].map(String::from).to_vec();
    let mut src = String::from(
        "flow G(limit_n: int = 3, label: string = 'a', flag: boolean = true, ratio: float = 1.5) = {\n",
    );
    let rows: Vec<String> = (0..1 + g.below(4))
        .map(|i| format!("[{i}, {}, 'a{i}', 'b{}']", g.below(9), g.below(3)))
        .collect();
    src += &format!(
        "  stage s0 = from [{}] as t(n0, n1, t0, t1)\n",
        rows.join(", ")
    );
    let mut breakable = String::new();
    let conditions = |g: &mut Gen, ints: &[String], texts: &[String]| -> String {
        match g.below(7) {
            0 => format!("{} >= limit_n", g.pick(ints)),
            1 => format!("lower({}) like 'a%'", g.pick(texts)),
            2 => format!("coalesce({}, 0) + 1 > 0 and flag", g.pick(ints)),
            3 => format!("length({}) >= 0 or not flag", g.pick(texts)),
            4 => format!("hash(_.{}) % 2 in (0, 1, -1)", g.pick(texts)),
            5 => format!("{} * ratio < 100.0", g.pick(ints)),
            _ => format!("{} || label is not null", g.pick(texts)),
        }
    };
    for i in 1..=3 + g.below(3) {
        let from = if i > 2 && g.below(3) == 0 {
            format!("merge s{}, s{}", i - 1, i - 2)
        } else {
            format!("from s{}", i - 1)
        };
        let mut line = format!("  stage s{i} = {from}");
        let condition = conditions(g, &ints, &texts);
        if breakable.is_empty() {
            breakable = condition.clone();
        }
        line += &format!(" | where {condition}");
        match g.below(4) {
            0 => line += &format!(" | order by {} desc | limit 2", g.pick(&ints)),
            1 => line += &format!(" | select * | order by {}", g.pick(&texts)),
            2 => {
                line += &format!(
                    " | select n0, n1, t0, t1, upper({}) as shout",
                    g.pick(&texts)
                )
            }
            _ => {}
        }
        src += &line;
        src += "\n";
    }
    src += "  stage summary = from s1 | group by t1 | select t1, count(*) as n, sum(n0) as total, max(n1) as top\n";
    src += "}\n";
    (src, breakable)
}

#[test]
fn generated_flows_that_resolve_check_clean_and_run_without_sqlite_name_errors() {
    let mut g = Gen(0x5eed_1234_abcd);
    for round in 0..25 {
        let (src, breakable) = generated_flow(&mut g);
        let dir = scratch(&format!("generated_{round}"), &[("flow.wv", &src)]);
        let (code, out) = check_short(&dir);
        assert_eq!(code, Some(0), "round {round}:\n{src}\n{out}");
        assert!(!out.contains("error["), "round {round}:\n{src}\n{out}");
        let o = wvflow(&["run", dir.to_str().unwrap(), "--format", "json"]);
        let text =
            String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr);
        for sqlite in [
            "no such column",
            "no such function",
            "no such table",
            "ambiguous column",
        ] {
            assert!(!text.contains(sqlite), "round {round}:\n{src}\n{text}");
        }
        assert_eq!(o.status.code(), Some(0), "round {round}:\n{src}\n{text}");
        // One name mutated: the checker reports it, before anything runs.
        let word = breakable
            .split(|c: char| !(c.is_alphanumeric() || c == '_'))
            .find(|w| ["n0", "n1", "t0", "t1", "limit_n", "flag", "ratio", "label"].contains(w))
            .unwrap();
        let mutated = src.replacen(
            &breakable,
            &breakable.replacen(word, &format!("{word}x"), 1),
            1,
        );
        let dir = scratch(
            &format!("generated_{round}_mutated"),
            &[("flow.wv", &mutated)],
        );
        let (code, out) = check_short(&dir);
        assert_eq!(
            code,
            Some(1),
            "round {round}, `{word}` mutated:\n{mutated}\n{out}"
        );
        assert!(
            out.contains("error[E0114]") || out.contains("error[E0615]"),
            "round {round}:\n{mutated}\n{out}"
        );
    }
}

#[test]
fn activate_options_are_evaluated_like_arguments() {
    let dir = scratch(
        "activate_options",
        &[(
            "flow.wv",
            "flow F(p: string = 'chosen.ndjson', tag: string = 'x') with { on_success: activate('file', path: 'hook-' || tag || '.json') } = {\n  stage s = from [[1]] as t(n) | activate('file', path: p)\n}\n",
        )],
    );
    let (code, summary) = run_json(&dir, None);
    assert_eq!(code, Some(0), "{summary}");
    assert!(
        dir.join("chosen.ndjson").exists(),
        "the option's value names the file"
    );
    assert!(!dir.join("p").exists(), "not the option's text");
    assert!(dir.join("hook-x.json").exists(), "hook options too");
}

#[test]
fn the_run_store_tables_are_out_of_reach_of_flows() {
    for (name, body) in [
        ("save", "from [[1]] as t(x) | save to wvflow_runs"),
        ("save_case", "from [[1]] as t(x) | save to WVFLOW_Stages"),
        ("read", "from wvflow_idempotency"),
        (
            "join",
            "from [[1]] as t(x) | join wvflow_events on t.x = wvflow_events.seq",
        ),
    ] {
        let dir = scratch(
            &format!("store_tables_{name}"),
            &[("flow.wv", &format!("flow f = {{\n  stage s = {body}\n}}\n"))],
        );
        let (code, out) = check_short(&dir);
        assert_eq!(code, Some(1), "{name}: {out}");
        assert!(out.contains("error[E0115]"), "{name}: {out}");
    }
}

#[test]
fn null_arguments_reach_the_activity_as_empty_values() {
    let dir = scratch(
        "null_arguments",
        &[(
            "flow.wv",
            r#"activity show(flag: boolean, n: float, s: string) = exec('printf', '{"flag": "[%s]", "n": "[%s]", "s": "[%s]"}\n', flag, n, s)
flow F = {
  stage nulls = show(null, null, null) | activate('file', path: 'nulls.ndjson')
  stage none = from [[1]] as t(id) | where id > 5 | each show(true, _.id, 'x')
}
"#,
        )],
    );
    let (code, summary) = run_json(&dir, None);
    assert_eq!(code, Some(0), "{summary}");
    assert_eq!(
        ndjson(&dir.join("nulls.ndjson"))[0],
        serde_json::json!({"flag": "[]", "n": "[]", "s": "[]"})
    );
    assert_eq!(stage(&summary, "none")["rows"], 0, "zero rows, zero calls");
}

/// `select id` where `id` is a parameter gives a column named `id` (it was named `:id`, the
/// SQL parameter's text), as the checker's column list says.
#[test]
fn a_selected_parameter_keeps_its_name() {
    let dir = scratch(
        "selected_parameter",
        &[(
            "flow.wv",
            "flow P(id: int = 7) = {\n  stage s = from [[1]] as t(x) | select id, x, _.x as y | activate('file', path: 'p.ndjson')\n}\n",
        )],
    );
    let (code, summary) = run_json(&dir, None);
    assert_eq!(code, Some(0), "{summary}");
    assert_eq!(
        ndjson(&dir.join("p.ndjson")),
        vec![serde_json::json!({"id": 7, "x": 1, "y": 1})]
    );
}

/// A `select` of named items says its columns even over an activity's output, whose columns
/// are known only at run time: a comparison is a boolean (it was written as 1).
#[test]
fn a_select_over_activity_output_keeps_its_items_types() {
    let dir = scratch(
        "select_over_activity",
        &[(
            "flow.wv",
            "activity src = sh(\"\"\"echo '{\"n\": 5}'\"\"\")\nflow F = {\n  stage s = src() | select n > 1 as big, n | activate('file', path: 'b.ndjson')\n}\n",
        )],
    );
    let (code, summary) = run_json(&dir, None);
    assert_eq!(code, Some(0), "{summary}");
    assert_eq!(
        ndjson(&dir.join("b.ndjson")),
        vec![serde_json::json!({"big": true, "n": 5})]
    );
}

const KEYED_PAYMENT: &str = r#"activity charge(amount: int) = sh("""echo "charged $WV_AMOUNT under $WVFLOW_IDEMPOTENCY_KEY" >> charges.log; echo '{"ok": true}'""")
flow Logged(request_id: string = 'r-1') = {
  stage requests = from [[request_id, 5]] as t(request_id, amount)
  stage paid [idempotency_key: _.request_id] = from requests | charge(_.amount) | activate('file', path: 'paid.ndjson')
  stage listed [idempotency_key: _.request_id] = from requests | select request_id
}
flow Pay(request_id: string = 'r-1', up_to: int = 5) = {
  stage requests = from [[request_id, 5], [request_id, 7]] as t(request_id, amount) | where amount <= up_to
  stage paid [idempotency_key: _.request_id] = from requests | charge(_.amount)
}
"#;

/// The language design's own key, a payment stage keyed by its request's id: a stage-level
/// `idempotency_key` reads the stage's one input row, as the arguments of a single call do.
/// A second run with the same request reuses the payment; another request pays again.
#[test]
fn a_stage_key_reads_the_one_input_row() {
    let dir = scratch("stage_key_row", &[("flow.wv", KEYED_PAYMENT)]);
    let (status, out) = check_short(&dir);
    assert_eq!(status, Some(0), "{out}");
    let (code, summary) = run_json(&dir, Some("Pay(request_id = 'r-1')"));
    assert_eq!(code, Some(0), "{summary}");
    assert_eq!(stage(&summary, "paid")["attempts"], 1, "{summary}");
    let (code, summary) = run_json(&dir, Some("Pay(request_id = 'r-1')"));
    assert_eq!(code, Some(0), "{summary}");
    assert_eq!(stage(&summary, "paid")["attempts"], 0, "reused: {summary}");
    assert_eq!(stage(&summary, "paid")["reused"], true, "{summary}");
    assert_eq!(stage(&summary, "paid")["rows"], 1, "{summary}");
    let (code, _) = run_json(&dir, Some("Pay(request_id = 'r-2')"));
    assert_eq!(code, Some(0));
    assert_eq!(
        std::fs::read_to_string(dir.join("charges.log")).unwrap(),
        "charged 5 under r-1\ncharged 5 under r-2\n"
    );

    // A null key records nothing and is asked once: the steps after the call run as written.
    for _ in 0..2 {
        let (code, summary) = run_json(&dir, Some("Logged(request_id = null)"));
        assert_eq!(code, Some(0), "{summary}");
        assert_eq!(stage(&summary, "paid")["attempts"], 1, "{summary}");
    }
    // A stage of queries alone keys its rows too.
    let (_, summary) = run_json(&dir, Some("Logged(request_id = 'r-9')"));
    assert_eq!(stage(&summary, "listed")["reused"], false, "{summary}");
    let (_, summary) = run_json(&dir, Some("Logged(request_id = 'r-9')"));
    assert_eq!(stage(&summary, "listed")["reused"], true, "{summary}");
    let charges = std::fs::read_to_string(dir.join("charges.log")).unwrap();
    assert_eq!(
        charges.matches("charged 5 under \n").count(),
        2,
        "{charges}"
    );
    // Two rows or none: the stage fails before charging, saying why.
    for (up_to, rows) in [(7, "2 rows"), (0, "no rows")] {
        let (code, summary) = run_json(
            &dir,
            Some(&format!("Pay(request_id = 'r-3', up_to = {up_to})")),
        );
        assert_eq!(code, Some(1), "{summary}");
        let paid = stage(&summary, "paid");
        assert_eq!(paid["state"], "failed");
        let error = paid["error"].as_str().unwrap();
        assert!(
            error.contains("idempotency key") && error.contains(rows) && error.contains("`paid`"),
            "{error}"
        );
    }
    assert!(
        !std::fs::read_to_string(dir.join("charges.log"))
            .unwrap()
            .contains("r-3")
    );
}

/// Where the number of rows is known before running (inline values), a key or a single
/// call that reads `_` over other than one row is reported by `check`.
#[test]
fn reading_one_row_of_a_known_number_of_rows_is_checked() {
    let dir = scratch(
        "one_row_known",
        &[(
            "flow.wv",
            "activity pay(id: string) = exec('echo', id)\nflow f = {\n  stage due [idempotency_key: _.transaction_id] = from [['t-1'], ['t-2']] as t(transaction_id) | pay('batch')\n  stage each_one = from [['t-1'], ['t-2']] as t(transaction_id) | pay(_.transaction_id)\n  stage one = from [['t-1'], ['t-2']] as t(transaction_id) | limit 1 | pay(_.transaction_id)\n}\n",
        )],
    );
    let (status, out) = check_short(&dir);
    assert_eq!(status, Some(1), "{out}");
    assert!(
        out.contains("flow.wv:3:31: error[E0622]: the `idempotency_key` of stage `due` reads the input's one row, and 2 rows reach it"),
        "{out}"
    );
    assert!(
        out.contains("flow.wv:4:67: error[E0622]: the arguments of `pay` read the input's one row, and 2 rows reach it"),
        "{out}"
    );
    assert_eq!(out.matches("error[E0622]").count(), 2, "{out}");
    assert!(out.contains("each"), "the help names `each`: {out}");
}

/// A key joins its input's values in their own text, as the activity sees them: a boolean
/// `true`, a float `2.0`, a duration `90s` (not 1, 2.0 and 90000), in a stage's key and in an
/// `each` item's; a second run reuses both.
#[test]
fn keys_join_typed_values_as_their_text() {
    let dir = scratch(
        "typed_keys",
        &[(
            "flow.wv",
            r#"activity show(flag: boolean) = sh("""echo "$WVFLOW_IDEMPOTENCY_KEY" >> keys.log; echo '{}'""")
flow Typed(flag: boolean = true, ratio: float = 2, d: duration = 90s) = {
  stage req = from [[d, ratio, flag]] as t(d, ratio, flag)
  stage one [idempotency_key: 'k-' || _.flag || '-' || _.ratio || '-' || _.d] = from req | show(_.flag)
  stage many [idempotency_key: 'i-' || _.flag || '-' || _.d] = from req | each show(_.flag)
}
"#,
        )],
    );
    for reused in [false, true] {
        let (code, summary) = run_json(&dir, None);
        assert_eq!(code, Some(0), "{summary}");
        assert_eq!(stage(&summary, "one")["reused"], reused, "{summary}");
        assert_eq!(stage(&summary, "many")["reused"], reused, "{summary}");
    }
    let mut keys: Vec<String> = std::fs::read_to_string(dir.join("keys.log"))
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    keys.sort();
    assert_eq!(keys, ["i-true-90s", "k-true-2.0-90s"]);
}
