//! `wvflow run` end to end: real `sh` activities, real files, real time with generous bounds.

use crate::common::{run_json, scratch, stage, wvflow};
use serde_json::Value;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

#[test]
fn retry_then_success_fallback_and_exit_codes() {
    let dir = scratch(
        "retry",
        &[(
            "flow.wv",
            r#"activity flaky with { retries: 3, retry_delay: 100ms, backoff: constant } = sh("""
  if [ "$WVFLOW_ATTEMPT" -lt 3 ]; then echo "busy $WVFLOW_ATTEMPT" >&2; exit 75; fi
  echo '{"ok": 1}'
""")
activity broken with { retries: 1, retry_delay: 100ms } = sh("""echo 'disk full' >&2; exit 3""")
activity fallback = sh("""echo '{"fallback": true}'""")
flow f = {
  stage first = flaky()
  stage second [on_failure: rescue] = from first | broken()
  stage rescue if second.failed = fallback()
}
"#,
        )],
    );
    let (code, summary) = run_json(&dir, None);
    assert_eq!(code, Some(0), "{summary}");
    assert_eq!(stage(&summary, "first")["attempts"], 3);
    assert_eq!(stage(&summary, "second")["state"], "failed");
    assert_eq!(stage(&summary, "second")["attempts"], 2);
    assert_eq!(stage(&summary, "second")["error"], "disk full");
    assert_eq!(stage(&summary, "rescue")["state"], "success");
    assert_eq!(summary["state"], "success");
}

#[test]
fn a_timeout_kills_the_attempt_and_its_children() {
    let marker = std::env::temp_dir().join(format!("wvflow-run-orphan-{}", std::process::id()));
    let _ = std::fs::remove_file(&marker);
    let src = format!(
        "activity slow with {{ timeout: 300ms }} = sh(\"\"\"(sleep 1; touch {}) & sleep 30\"\"\")\nflow f = {{ stage s = slow() }}\n",
        marker.display()
    );
    let dir = scratch("timeout", &[("flow.wv", &src)]);
    let started = Instant::now();
    let (code, summary) = run_json(&dir, None);
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(code, Some(1));
    assert!(
        stage(&summary, "s")["error"]
            .as_str()
            .unwrap()
            .starts_with("timed out after 300ms"),
        "{summary}"
    );
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        !marker.exists(),
        "a child of the timed-out attempt kept running"
    );
}

#[test]
fn saga_compensation_runs_in_reverse_order() {
    let dir = scratch(
        "saga",
        &[(
            "flow.wv",
            r#"activity reserve(what: string) = sh("""printf '{"what": "%s"}\n' "$WV_WHAT" """)
activity release(what: string) with { retries: 2 } = sh("""printf '%s\n' "$WV_WHAT" >> released.txt""")
activity charge = sh("""echo 'card declined' >&2; exit 2""")
flow trip = {
  stage flight [compensate: release(_.what)] = reserve('flight')
  stage hotel [compensate: release(_.what)] = from flight | reserve('hotel')
  stage pay = from hotel | charge()
}
"#,
        )],
    );
    let (code, summary) = run_json(&dir, None);
    assert_eq!(code, Some(1));
    let order: Vec<&str> = summary["compensations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["stage"].as_str().unwrap())
        .collect();
    assert_eq!(order, ["hotel", "flight"]);
    assert_eq!(
        std::fs::read_to_string(dir.join("released.txt")).unwrap(),
        "hotel\nflight\n"
    );
}

#[test]
fn routes_merges_joins_files_parameters_and_save_to() {
    let dir = scratch(
        "data",
        &[
            (
                "data/orders.csv",
                "id,customer,amount\n1,7,120.5\n2,3,42\n3,7,15\n4,9,310\n",
            ),
            (
                "data/customers.json",
                r#"[{"id": 7, "name": "Ada"}, {"id": 3, "name": "Bo"}, {"id": 9, "name": "Cy"}]"#,
            ),
            (
                "flow.wv",
                r#"flow load(min: int = 20) = {
  stage orders = from 'data/orders.csv' | where amount >= min
  stage split = from orders | route { case _.amount > 100 -> big else -> small }
  stage big = from split | select id, amount
  stage small = from split | select id, amount
  stage joined = from orders | join 'data/customers.json' on orders.customer = customers.id | group by name | select name, sum(amount) as total | order by total desc
  stage kept = from big | save to big_orders
}
flow report = { stage again = from big_orders | select count(*) as n }
"#,
            ),
        ],
    );
    let (code, summary) = run_json(&dir, Some("load(min = 40)"));
    assert_eq!(code, Some(0), "{summary}");
    assert_eq!(stage(&summary, "orders")["rows"], 3);
    assert_eq!(stage(&summary, "big")["rows"], 2);
    assert_eq!(stage(&summary, "small")["rows"], 1);
    assert_eq!(stage(&summary, "joined")["rows"], 3);
    let (code, summary) = run_json(&dir, Some("report"));
    assert_eq!(code, Some(0), "{summary}");
    assert_eq!(stage(&summary, "again")["rows"], 1);
}

#[test]
fn argument_vectors_pass_shell_metacharacters_literally() {
    let dir = scratch(
        "argv",
        &[(
            "flow.wv",
            r#"activity echo_arg(text: string) = exec('printf', '{"text": "%s"}\n', text)
flow f(text: string = 'a; rm -rf / && $(whoami) `id` > out') = { stage s = echo_arg(text) | activate('file', path: 'out.ndjson') }
"#,
        )],
    );
    let (code, _) = run_json(&dir, None);
    assert_eq!(code, Some(0));
    let written = std::fs::read_to_string(dir.join("out.ndjson")).unwrap();
    assert_eq!(
        written,
        "{\"text\":\"a; rm -rf / && $(whoami) `id` > out\"}\n"
    );
    assert!(!dir.join("out").exists());
}

#[test]
fn a_workspace_that_does_not_check_does_not_run() {
    let dir = scratch(
        "broken",
        &[("flow.wv", "flow f = { stage s [retires: 1] = from t }\n")],
    );
    let o = wvflow(&["run", dir.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("E0201"));
}

#[test]
fn ctrl_c_cancels_the_run_kills_its_activities_and_prints_the_summary() {
    let dir = scratch(
        "cancel",
        &[(
            "flow.wv",
            "activity slow = sh(\"\"\"sleep 30\"\"\")\nactivity after = sh(\"\"\"echo '{}'\"\"\")\nflow f = {\n  stage s = slow()\n  stage t = from s | after()\n}\n",
        )],
    );
    let child = Command::new(env!("CARGO_BIN_EXE_wvflow"))
        .args(["run", dir.to_str().unwrap(), "--format", "json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(700));
    let started = Instant::now();
    // SAFETY: sending SIGINT to the child we started.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the run did not stop promptly"
    );
    assert_eq!(out.status.code(), Some(1));
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["state"], "cancelled");
    assert_eq!(stage(&summary, "s")["state"], "cancelled");
    assert_eq!(stage(&summary, "t")["state"], "cancelled");
}

#[test]
fn every_example_runs_to_success() {
    // Flows a file runs by name: the rest run their only flow or their `run flow` statements.
    let named = [
        ("child_flows.wv", "RefreshProfiles"),
        ("scheduled_flows.wv", "IngestClicks"),
        ("price_race.wv", "PriceRace"),
        ("customer_enrichment.wv", "EnrichCustomers"),
        ("launch_countdown.wv", "Launch"),
        ("gpu_pool.wv", "TrainModels"),
    ];
    let examples: Vec<PathBuf> = std::fs::read_dir("examples")
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "wv"))
        .collect();
    assert!(examples.len() >= 14);
    for path in examples {
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(&path).unwrap();
        if crate::examples::waits_for_runs_commands(&text) {
            // It waits for a signal: examples.rs runs it with the documented `runs signal`.
            continue;
        }
        let mut args = vec![
            "run".to_string(),
            path.to_string_lossy().into_owned(),
            "--format".into(),
            "json".into(),
        ];
        if let Some((_, flow)) = named.iter().find(|(f, _)| *f == file) {
            args.push(flow.to_string());
        }
        // warehouse_report.wv's connector reads the server from the environment.
        let o = Command::new(env!("CARGO_BIN_EXE_wvflow"))
            .args(&args)
            .envs(crate::common::postgres::example_env("run_cli"))
            .output()
            .unwrap();
        assert_eq!(
            o.status.code(),
            Some(0),
            "{file}: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        // Every stage of every run reached a terminal state: none was left pending.
        let summaries = serde_json::Deserializer::from_slice(&o.stdout).into_iter::<Value>();
        for summary in summaries {
            let run_id = summary.unwrap()["run_id"].as_str().unwrap().to_string();
            let shown = Command::new(env!("CARGO_BIN_EXE_wvflow"))
                .args([
                    "runs", "-w", "examples", "show", &run_id, "--format", "json",
                ])
                .output()
                .unwrap();
            let shown: Value = serde_json::from_slice(&shown.stdout).unwrap();
            for stage in shown["stages"].as_array().unwrap() {
                // `cancelled`: the loser of a `first_success` race.
                assert!(
                    ["success", "skipped", "failed", "cancelled"]
                        .contains(&stage["state"].as_str().unwrap()),
                    "{file}: run {run_id}: {stage}"
                );
            }
        }
    }
}

#[test]
fn child_runs_and_jumps_start_the_flows_they_name() {
    let o = wvflow(&[
        "run",
        "examples/child_flows.wv",
        "RefreshProfiles",
        "--format",
        "json",
    ]);
    assert_eq!(o.status.code(), Some(0));
    let text = String::from_utf8_lossy(&o.stdout);
    // One JSON document: the run, and the runs its jumps started in `next_runs`.
    let first: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut runs = vec![first.clone()];
    runs.extend(first["next_runs"].as_array().cloned().unwrap_or_default());
    let flows: Vec<&str> = runs.iter().map(|r| r["flow"].as_str().unwrap()).collect();
    assert_eq!(
        flows,
        ["RefreshProfiles", "PublishProfiles"],
        "the jump starts PublishProfiles after the run"
    );
    assert_eq!(
        stage(&runs[0], "vip")["state"],
        "success",
        "a `call` stage ends in its child's state"
    );
}

#[test]
fn a_bare_table_name_reads_a_file_of_that_name_and_a_missing_one_fails_clearly() {
    let dir = scratch(
        "tables",
        &[
            ("customers.ndjson", "{\"id\": 1}\n{\"id\": 2}\n"),
            (
                "flow.wv",
                "flow f = {\n  stage known = from customers | select count(*) as n\n  stage unknown [on_failure: ignore] = from suppliers\n}\n",
            ),
        ],
    );
    let (code, summary) = run_json(&dir, None);
    assert_eq!(code, Some(0), "{summary}");
    assert_eq!(stage(&summary, "known")["rows"], 1);
    assert_eq!(stage(&summary, "unknown")["state"], "failed");
    assert!(
        stage(&summary, "unknown")["error"]
            .as_str()
            .unwrap()
            .starts_with("no table `suppliers`"),
        "{summary}"
    );
}

/// A one-request HTTP server on loopback: answers `status` and returns what it received.
fn one_request_server(status: u16) -> (String, std::thread::JoinHandle<String>) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let handle = std::thread::spawn(move || {
        let (mut socket, _) = listener.accept().unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut received = Vec::new();
        let mut buffer = [0u8; 4096];
        // Read the head, then as many body bytes as Content-Length says.
        loop {
            let n = socket.read(&mut buffer).unwrap_or(0);
            received.extend_from_slice(&buffer[..n]);
            let text = String::from_utf8_lossy(&received).to_string();
            if let Some(head_end) = text.find("\r\n\r\n") {
                let length = text
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                    })
                    .unwrap_or(0);
                if received.len() >= head_end + 4 + length {
                    break;
                }
            }
            if n == 0 {
                break;
            }
        }
        let reply =
            format!("HTTP/1.1 {status} X\r\ncontent-length: 2\r\nconnection: close\r\n\r\nno");
        socket.write_all(reply.as_bytes()).unwrap();
        String::from_utf8_lossy(&received).into_owned()
    });
    (url, handle)
}

#[test]
fn webhooks_receive_the_rows_as_json_and_an_error_status_fails_the_stage() {
    let (url, server) = one_request_server(200);
    let src = format!(
        "flow f = {{ stage s = from [[1, 'a'], [2, 'b']] as t(id, name) | activate('webhook', url: '{url}') }}\n"
    );
    let dir = scratch("webhook_ok", &[("flow.wv", &src)]);
    let (code, summary) = run_json(&dir, None);
    assert_eq!(code, Some(0), "{summary}");
    let request = server.join().unwrap();
    assert!(request.starts_with("POST /hook HTTP/1.1"), "{request}");
    assert!(
        request.ends_with(r#"[{"id":1,"name":"a"},{"id":2,"name":"b"}]"#),
        "{request}"
    );

    let (url, server) = one_request_server(503);
    let src = format!(
        "flow f = {{ stage s = from [[1]] as t(id) | activate('webhook', url: '{url}') }}\n"
    );
    let dir = scratch("webhook_down", &[("flow.wv", &src)]);
    let (code, summary) = run_json(&dir, None);
    server.join().unwrap();
    assert_eq!(code, Some(1));
    assert!(
        stage(&summary, "s")["error"]
            .as_str()
            .unwrap()
            .contains("answered 503"),
        "{summary}"
    );
}

#[test]
fn parent_close_decides_the_fate_of_a_child_when_its_parent_stage_times_out() {
    for (close, survives) in [("terminate", false), ("abandon", true)] {
        let marker =
            std::env::temp_dir().join(format!("wvflow-child-{close}-{}", std::process::id()));
        let _ = std::fs::remove_file(&marker);
        let src = format!(
            "activity slow = sh(\"\"\"sleep 1; touch {}\"\"\")\n\
             flow child = {{ stage s = slow() }}\n\
             flow parent = {{ stage c [timeout: 300ms, parent_close: {close}] = call child }}\n",
            marker.display()
        );
        let dir = scratch(&format!("parent_close_{close}"), &[("flow.wv", &src)]);
        let started = Instant::now();
        let (code, summary) = run_json(&dir, Some("parent"));
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{close}: the parent waited for the child"
        );
        assert_eq!(code, Some(1), "{summary}");
        let error = stage(&summary, "c")["error"].as_str().unwrap().to_string();
        assert!(
            error.starts_with("the parent stage timed out"),
            "{close}: {error}"
        );
        std::thread::sleep(Duration::from_millis(2500));
        assert_eq!(marker.exists(), survives, "{close}: {error}");
    }
}

/// A flow of one file in a scratch folder of its own.
fn one_flow(name: &str, flow: &str) -> PathBuf {
    scratch(name, &[("flow.wv", flow)])
}

#[test]
fn an_exit_code_listed_non_retryable_is_not_retried() {
    let dir = one_flow(
        "non_retryable",
        r#"activity reject with { retries: 5, retry_delay: 100ms, non_retryable: [64] } = sh("""echo 'bad request' >&2; exit 64""")
flow f = {
  stage rejected [on_failure: ignore] = reject()
}
"#,
    );
    let (code, summary) = run_json(&dir, None);
    assert_eq!(code, Some(0), "{summary}");
    let rejected = stage(&summary, "rejected");
    assert_eq!(rejected["attempts"], 1, "exit 64 is not retried");
    assert!(
        rejected["error"]
            .as_str()
            .unwrap()
            .contains("non-retryable"),
        "{summary}"
    );
}

#[test]
fn independent_stages_run_side_by_side_and_merge_by_name() {
    let dir = one_flow(
        "parallel_merge",
        r#"activity nap(name: string) = sh("""sleep 1; printf '{"name": "%s"}\n' "$WV_NAME" """)
flow f with { max_parallel: 4 } = {
  stage left = nap('left')
  stage right = nap('right')
  stage both = merge left, right
}
"#,
    );
    let started = Instant::now();
    let (code, summary) = run_json(&dir, None);
    let elapsed = started.elapsed();
    assert_eq!(code, Some(0), "{summary}");
    assert_eq!(stage(&summary, "both")["rows"], 2);
    assert!(
        elapsed < Duration::from_millis(1900),
        "two 1 s stages ran one after the other: {elapsed:?}"
    );
}

#[test]
fn an_each_within_its_tolerance_succeeds_with_the_other_items() {
    let dir = one_flow(
        "each_tolerance",
        r#"activity probe(n: int) = sh("""if [ "$WV_N" = 3 ]; then exit 1; fi; printf '{"n": %s}\n' "$WV_N" """)
flow f = {
  stage probes with { concurrency: 2, tolerated_failures: 1 } = from [[1], [2], [3], [4]] as t(n) | each probe(_.n)
}
"#,
    );
    let (code, summary) = run_json(&dir, None);
    assert_eq!(code, Some(0), "{summary}");
    assert_eq!(
        stage(&summary, "probes")["rows"],
        3,
        "one failed item is tolerated"
    );
}

#[test]
fn a_second_run_reuses_a_key_that_succeeded() {
    let dir = one_flow(
        "idempotent_second_run",
        r#"activity pay(id: string) = sh("""echo x >> paid.txt; printf '{"paid": "%s"}\n' "$WV_ID" """)
flow f = {
  stage paid [idempotency_key: 'order-42'] = pay('42')
}
"#,
    );
    let (code, summary) = run_json(&dir, None);
    assert_eq!(code, Some(0), "{summary}");
    assert_eq!(stage(&summary, "paid")["attempts"], 1);
    let (code, summary) = run_json(&dir, None);
    assert_eq!(code, Some(0));
    assert_eq!(
        stage(&summary, "paid")["attempts"],
        0,
        "the key already succeeded"
    );
    assert_eq!(stage(&summary, "paid")["rows"], 1, "its rows are reused");
    assert_eq!(
        std::fs::read_to_string(dir.join("paid.txt")).unwrap(),
        "x\n",
        "paid once over two runs"
    );
}

#[test]
fn end_stops_the_flow() {
    let dir = one_flow(
        "end",
        r#"activity done = sh("""echo '{"ok": 1}'""")
activity slowpoke = sh("""sleep 1.5; echo '{"late": 1}'""")
flow f with { max_parallel: 4 } = {
  stage talk = done()
  stage stop = from talk | end()
  stage slow = slowpoke()
  stage later = from slow | select *
}
"#,
    );
    let started = Instant::now();
    let (code, summary) = run_json(&dir, None);
    assert!(started.elapsed() < Duration::from_secs(4));
    assert_eq!(code, Some(0), "{summary}");
    assert_eq!(
        stage(&summary, "later")["state"],
        "skipped",
        "end() stops the flow"
    );
}

#[test]
fn a_heartbeat_watches_stderr() {
    let dir = one_flow(
        "heartbeat",
        r#"activity quiet with { timeout: 10s, heartbeat: 300ms } = sh("""sleep 5""")
activity chatty with { timeout: 10s, heartbeat: 300ms } = sh("""for i in 1 2 3 4 5; do echo tick >&2; sleep 0.1; done; echo '{"ok": 1}'""")
flow f with { max_parallel: 4 } = {
  stage talk = chatty()
  stage hush [on_failure: ignore] = quiet()
}
"#,
    );
    let started = Instant::now();
    let (code, summary) = run_json(&dir, None);
    assert!(started.elapsed() < Duration::from_secs(4));
    assert_eq!(code, Some(0), "{summary}");
    assert_eq!(
        stage(&summary, "talk")["state"],
        "success",
        "stderr lines keep the heartbeat alive"
    );
    assert!(
        stage(&summary, "hush")["error"]
            .as_str()
            .unwrap()
            .starts_with("no heartbeat for 300ms"),
        "{summary}"
    );
}

#[test]
fn flow_call_arguments_on_the_command_line_follow_the_language_rule() {
    // One rule for calls in the language and on the command line: positional first, then
    // named. A positional argument after a named one was once bound to the second parameter.
    let dir = scratch(
        "cli_flow_call_arguments",
        &[(
            "flow.wv",
            "flow F(a: int, b: int, c: int = 3) = { stage s = from [[a, b, c]] as t(a, b, c) }\n",
        )],
    );
    let flow = dir.join("flow.wv");
    let run = |call: &str| {
        let o = wvflow(&["run", flow.to_str().unwrap(), call]);
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    assert_eq!(run("F(1, b = 2)").0, Some(0));
    for (call, error) in [
        (
            "F(a = 1, 2)",
            "a positional argument of `F` comes after a named one",
        ),
        ("F(1, 2, 3, 4)", "flow `F` takes 3 arguments, 4 given"),
        ("F(1, d = 2)", "flow `F` has no parameter `d`"),
        ("F(1, a = 2)", "argument `a` is given twice"),
        ("F(1)", "flow `F` needs an argument for `b`"),
        ("F(1, 'x')", "argument `b` of flow `F` must be"),
    ] {
        let (code, stderr) = run(call);
        assert_eq!(code, Some(2), "{call}: {stderr}");
        assert!(stderr.contains(error), "{call}: {stderr}");
    }
}

/// A fork that fails because a branch failed keeps no rows, as no stage that failed does: the
/// summary says 0 rows, `runs rows` says it has none, and a stage that reads it anyway
/// (`trigger: all_done`) reads none.
#[test]
fn a_fork_failed_by_its_branch_keeps_no_rows() {
    let dir = scratch(
        "fork_failed_rows",
        &[(
            "flow.wv",
            r#"activity boom = sh("exit 3")
flow F = {
  stage input = from [[1, 'a']] as t(n, name)
  stage publish = from input | fork {
    stage copied = from input | select n
    stage broken = boom()
  }
  stage after_all [trigger: all_done] = from publish | select count(*) as seen
}
"#,
        )],
    );
    let (code, summary) = run_json(&dir.join("flow.wv"), None);
    assert_eq!(code, Some(1), "{summary}");
    let publish = stage(&summary, "publish");
    assert_eq!(publish["state"], "failed", "{summary}");
    assert_eq!(publish["error"], "branch `broken` failed", "{summary}");
    assert_eq!(publish["rows"], 0, "{summary}");
    let run_id = summary["run_id"].as_str().unwrap();
    let workspace = dir.to_str().unwrap();
    let o = wvflow(&["runs", "-w", workspace, "rows", run_id, "publish"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("only a stage that succeeded has rows"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = wvflow(&["runs", "-w", workspace, "show", run_id, "--format", "json"]);
    let shown: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(stage(&shown, "publish")["rows"], 0, "{shown}");
    let o = wvflow(&[
        "runs",
        "-w",
        workspace,
        "rows",
        run_id,
        "after_all",
        "--format",
        "json",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let rows: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(rows, serde_json::json!([{ "seen": 0 }]));
}

/// A `wait until` over a file re-reads the file at each poll, as Airflow's FileSensor looks
/// again: it sees a file change, and a file appear. A plain `from 'file'` reads the file
/// once per run: a snapshot every stage of the run shares.
#[test]
fn wait_until_over_a_file_sees_it_change_and_appear() {
    let dir = scratch(
        "wait_until_file",
        &[
            ("inbox/orders.csv", "id,status\n1,pending\n"),
            (
                "flow.wv",
                r#"flow Watch = {
  stage before = from 'inbox/orders.csv' | select status
  stage ready [poll_interval: 100ms, timeout: 30s] = from 'inbox/orders.csv'
    | where id = 1
    | wait until status = 'ready'
  stage late [poll_interval: 100ms, timeout: 30s] = from 'inbox/late.csv' | wait until id > 0
  stage after if ready.success and before.success = from 'inbox/orders.csv' | select status
}
"#,
            ),
        ],
    );
    let child = Command::new(env!("CARGO_BIN_EXE_wvflow"))
        .args([
            "run",
            dir.join("flow.wv").to_str().unwrap(),
            "--format",
            "json",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    struct Killed(Option<std::process::Child>);
    impl Drop for Killed {
        fn drop(&mut self) {
            if let Some(mut child) = self.0.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
    let mut child = Killed(Some(child));
    let workspace = dir.to_str().unwrap().to_string();
    let stage_states = || -> Value {
        let o = wvflow(&["runs", "-w", &workspace, "list", "--format", "json"]);
        let list: Value = serde_json::from_slice(&o.stdout).unwrap_or(Value::Null);
        let Some(id) = list[0]["run_id"].as_str() else {
            return Value::Null;
        };
        let o = wvflow(&["runs", "-w", &workspace, "show", id, "--format", "json"]);
        serde_json::from_slice(&o.stdout).unwrap_or(Value::Null)
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let shown = stage_states();
        let state = |name: &str| {
            shown["stages"]
                .as_array()
                .and_then(|s| s.iter().find(|s| s["stage"] == name))
                .map(|s| s["state"].clone())
                .unwrap_or(Value::Null)
        };
        if state("before") == "success" && state("ready") == "running" && state("late") == "running"
        {
            break;
        }
        assert!(Instant::now() < deadline, "never waiting: {shown}");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Polled a few times over the old file.
    std::thread::sleep(Duration::from_millis(400));
    std::fs::write(dir.join("inbox/orders.csv"), "id,status\n1,ready\n").unwrap();
    std::fs::write(dir.join("inbox/late.csv"), "id\n7\n").unwrap();
    let out = child.0.take().unwrap().wait_with_output().unwrap();
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
        panic!("{}", String::from_utf8_lossy(&out.stderr));
    });
    assert_eq!(out.status.code(), Some(0), "{summary}");
    let run_id = summary["run_id"].as_str().unwrap();
    let rows = |stage: &str| -> Value {
        let o = wvflow(&[
            "runs", "-w", &workspace, "rows", run_id, stage, "--format", "json",
        ]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        serde_json::from_slice(&o.stdout).unwrap()
    };
    assert_eq!(
        rows("ready"),
        serde_json::json!([{ "id": 1, "status": "ready" }])
    );
    assert_eq!(rows("late"), serde_json::json!([{ "id": 7 }]));
    // The run's snapshot of the file, read before it changed.
    assert_eq!(rows("before"), serde_json::json!([{ "status": "pending" }]));
    assert_eq!(rows("after"), serde_json::json!([{ "status": "pending" }]));
}
