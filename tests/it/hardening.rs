//! Nothing lost, nothing left running: activity output read as bytes, stderr always drained,
//! processes left behind by an activity stopped with it, and inputs other editors write.

use crate::common::{run_json, scratch, stage, wvflow};
use serde_json::Value;
use std::time::{Duration, Instant};

#[test]
fn a_row_that_is_not_utf8_fails_the_attempt_with_its_line_and_other_lines_survive() {
    let dir = scratch(
        "stdout_bytes",
        &[(
            "flow.wv",
            r#"activity bad_row = sh("""printf '{"a": 1}\n{"b": "x\377y"}\n'""")
activity bad_log = sh("""printf 'log \377 line\n{"a": 1}\n{"a": 2}\n'""")
flow f = {
  stage rows [on_failure: ignore] = bad_row()
  stage logs = bad_log()
}
"#,
        )],
    );
    let (code, summary) = run_json(&dir, None);
    assert_eq!(code, Some(0), "{summary}");
    let rows = stage(&summary, "rows");
    assert_eq!(rows["state"], "failed", "{summary}");
    assert!(
        rows["error"]
            .as_str()
            .unwrap()
            .contains("stdout line 2 is not UTF-8"),
        "{summary}"
    );
    assert_eq!(stage(&summary, "logs")["rows"], 2, "{summary}");
}

#[test]
fn stderr_that_is_not_utf8_is_still_drained() {
    let dir = scratch(
        "stderr_bytes",
        &[(
            "flow.wv",
            // 300 KB of stderr after a bad byte: a reader that stopped would leave the
            // activity blocked on a full pipe or killed by SIGPIPE.
            r#"activity noisy with { timeout: 20s } = sh("""printf 'bad \377\n' >&2; i=0; while [ $i -lt 3000 ]; do printf '%0100d\n' $i >&2; i=$((i+1)); done; echo '{"done": true}'""")
flow f = { stage s = noisy() }
"#,
        )],
    );
    let (code, summary) = run_json(&dir, None);
    assert_eq!(code, Some(0), "{summary}");
    assert_eq!(stage(&summary, "s")["rows"], 1);
}

#[test]
fn what_an_activity_leaves_running_stops_with_it() {
    let marker = std::env::temp_dir().join(format!("wvflow-left-{}", std::process::id()));
    let _ = std::fs::remove_file(&marker);
    let src = format!(
        r#"activity leaves with {{ timeout: 2s }} = sh("""(sleep 3; touch {}) & echo '{{"ok": 1}}'""")
activity escapes with {{ timeout: 2s }} = sh("""setsid sleep 20 & echo '{{"ok": 2}}'""")
flow f = {{
  stage left = leaves()
  stage escaped [on_failure: ignore] = escapes()
}}
"#,
        marker.display()
    );
    let dir = scratch("left_running", &[("flow.wv", &src)]);
    let started = Instant::now();
    let (code, summary) = run_json(&dir, None);
    let took = started.elapsed();
    assert_eq!(code, Some(0), "{summary}");
    // The background `sleep` holding stdout no longer holds the stage: 20 s before.
    assert!(took < Duration::from_secs(8), "took {took:?}: {summary}");
    assert_eq!(stage(&summary, "left")["state"], "success", "{summary}");
    assert_eq!(stage(&summary, "left")["rows"], 1);
    std::thread::sleep(Duration::from_millis(3500));
    assert!(
        !marker.exists(),
        "a process the activity started kept running"
    );
}

#[test]
fn a_byte_order_mark_and_carriage_returns_are_read_like_any_other_file() {
    let dir = scratch(
        "bom",
        &[
            (
                "bom.wv",
                "\u{feff}flow f = { stage s = from [[1]] as t(x) }\n",
            ),
            (
                "cr.wv",
                "-- a comment\rflow g = { stage s = from [[1]] as t(x) }\r",
            ),
        ],
    );
    let o = wvflow(&["check", dir.join("bom.wv").to_str().unwrap()]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    let o = wvflow(&["plan", dir.join("cr.wv").to_str().unwrap(), "g"]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "a file with CR line endings is not one comment: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn parameters_that_would_share_an_environment_variable_are_refused() {
    let dir = scratch(
        "wv_collision",
        &[(
            "flow.wv",
            "activity a(id: string, ID: string) = sh(\"echo $WV_ID\")\nflow f = { stage s = a('x', 'y') }\n",
        )],
    );
    let o = wvflow(&["check", dir.to_str().unwrap(), "--format", "short"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(out.contains("WV_ID"), "{out}");
}

/// A server on loopback that answers each request with `answer` and counts the requests.
fn server(answer: String) -> (u16, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let count = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = count.clone();
    std::thread::spawn(move || {
        // Bounded: a few requests at most, then the thread ends with the test.
        for stream in listener.incoming().take(4) {
            let Ok(mut stream) = stream else { continue };
            seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
            let mut buffer = [0u8; 4096];
            let _ = stream.read(&mut buffer);
            let _ = stream.write_all(answer.as_bytes());
        }
    });
    (port, count)
}

#[test]
fn the_webhook_follows_no_redirect_and_no_proxy_from_the_environment() {
    let (elsewhere, elsewhere_hits) =
        server("HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".into());
    let (proxy, proxy_hits) =
        server("HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".into());
    let (hook, hook_hits) = server(format!(
        "HTTP/1.1 302 Found\r\nlocation: http://127.0.0.1:{elsewhere}/\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
    ));
    let dir = scratch(
        "webhook_redirect",
        &[(
            "flow.wv",
            &format!(
                "flow f = {{\n  stage s = from [[1]] as t(x) | activate('webhook', url: 'http://127.0.0.1:{hook}/in')\n}}\n"
            ),
        )],
    );
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_wvflow"))
        .args(["run", dir.to_str().unwrap(), "--format", "json"])
        .env("HTTP_PROXY", format!("http://127.0.0.1:{proxy}"))
        .env("ALL_PROXY", format!("http://127.0.0.1:{proxy}"))
        .output()
        .unwrap();
    let summary: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(o.status.code(), Some(1), "{summary}");
    let error = stage(&summary, "s")["error"].as_str().unwrap().to_string();
    assert!(error.contains("302"), "{error}");
    assert_eq!(hook_hits.load(std::sync::atomic::Ordering::SeqCst), 1);
    assert_eq!(
        elsewhere_hits.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "followed the redirect"
    );
    assert_eq!(
        proxy_hits.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "went through HTTP_PROXY"
    );
}

#[test]
fn an_activity_that_prints_no_rows_gives_the_next_step_zero_rows() {
    // The next step once read whatever `_input` an earlier stage had left on the connection,
    // or failed with "no table `_input`".
    let dir = scratch(
        "no_rows_then_query",
        &[(
            "flow.wv",
            r#"activity nothing = sh("echo 'just a log line'")
flow f = {
  stage a = from [[1, 'x'], [2, 'y']] as t(id, name) | where id > 0
  stage b if a.success = nothing() | limit 5
}
"#,
        )],
    );
    let (code, summary) = run_json(&dir, None);
    assert_eq!(code, Some(0), "{summary}");
    assert_eq!(stage(&summary, "b")["state"], "success", "{summary}");
    assert_eq!(stage(&summary, "b")["rows"], 0, "{summary}");
}

#[test]
fn many_rows_of_an_activity_arrive_whole_with_their_columns_and_types() {
    // 100,000 rows pass through the spool file: a column that only the last row has, a
    // boolean column, floats, nulls and log lines between the rows.
    let dir = scratch(
        "many_rows",
        &[(
            "flow.wv",
            r#"activity emit(n: int) = sh("""
  awk -v n="$WV_N" 'BEGIN {
    print "starting"
    for (i = 0; i < n; i++) printf "{\"id\": %d, \"ok\": %s, \"x\": %d.5, \"note\": null}\n", i, (i % 2 ? "true" : "false"), i
    print "{\"id\": -1, \"late\": \"only here\"}"
    print "done"
  }'
""")
flow f = {
  stage rows = emit(100000)
  stage picked = from rows
    | where id in (-1, 0, 7, 99999)
    | order by id
    | activate('file', path: 'out/picked.ndjson')
  stage saved = from rows | where ok | save to odd_rows
  stage counted if saved.success = from odd_rows | group by ok | select ok, count(*) as n
    | activate('file', path: 'out/counted.ndjson')
}
"#,
        )],
    );
    let (code, summary) = run_json(&dir, None);
    assert_eq!(code, Some(0), "{summary}");
    assert_eq!(stage(&summary, "rows")["rows"], 100_001, "{summary}");
    let picked = std::fs::read_to_string(dir.join("out/picked.ndjson")).unwrap();
    let picked: Vec<Value> = picked
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let ids: Vec<i64> = picked.iter().map(|r| r["id"].as_i64().unwrap()).collect();
    assert_eq!(ids, [-1, 0, 7, 99999]);
    assert_eq!(picked[0]["late"], "only here");
    assert_eq!(picked[1]["late"], Value::Null);
    assert_eq!(picked[2]["ok"], true, "booleans stay booleans: {picked:?}");
    assert_eq!(picked[1]["ok"], false);
    assert_eq!(picked[2]["x"], 7.5);
    let counted = std::fs::read_to_string(dir.join("out/counted.ndjson")).unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(counted.trim()).unwrap(),
        serde_json::json!({"ok": true, "n": 50000})
    );
}

/// A filesystem mounted for one test (root only), unmounted when dropped; `None` where the
/// test cannot mount one (not root, no mount namespace rights).
struct Mount(std::path::PathBuf);

impl Mount {
    fn new(at: &std::path::Path, args: &[&str]) -> Option<Mount> {
        std::fs::create_dir_all(at).unwrap();
        let mounted = std::process::Command::new("mount")
            .args(args)
            .arg(at)
            .output()
            .is_ok_and(|o| o.status.success());
        if !mounted {
            let why = format!("cannot mount {args:?} at {}", at.display());
            // CI runs as root, where the mount must work: there a skip would hide the test.
            let root = unsafe { libc::geteuid() } == 0;
            assert!(
                !(root && std::env::var_os("CI").is_some()),
                "{why}, and CI must run this test"
            );
            // Written past the test harness's capture, so that the skip shows in the output.
            use std::io::Write;
            let _ = writeln!(std::io::stderr(), "skipped: {why}");
        }
        mounted.then(|| Mount(at.to_path_buf()))
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

fn emit_flow(rows: u32) -> String {
    format!(
        r#"activity emit(n: int) = sh("""
  awk -v n="$WV_N" 'BEGIN {{ for (i = 0; i < n; i++) printf "{{\"id\": %d, \"name\": \"row number %d of many\"}}\n", i, i }}'
""")
flow Full = {{
  stage rows = emit({rows})
  stage few = from rows | where id % 50000 = 0 | select id
}}
"#
    )
}

#[test]
fn a_full_disk_fails_the_run_with_its_reason_and_the_next_run_needs_no_cleanup() {
    let dir = scratch("full_disk", &[]);
    let Some(_disk) = Mount::new(&dir, &["-t", "tmpfs", "-o", "size=3m", "tmpfs"]) else {
        return;
    };
    let flow = dir.join("flow.wv");
    // The run database fills the disk: the stage fails, and so does recording it.
    std::fs::write(&flow, emit_flow(200_000)).unwrap();
    let (code, summary) = run_json(&flow, None);
    assert_eq!(code, Some(1), "{summary}");
    assert_eq!(summary["state"], "failed", "{summary}");
    let rows = stage(&summary, "rows");
    assert_eq!(rows["state"], "failed", "{summary}");
    assert!(
        rows["error"].as_str().unwrap().contains("full"),
        "{summary}"
    );
    // The store says the same, nothing left `running`.
    let run_id = summary["run_id"].as_str().unwrap();
    let db = dir.join(".wvflow/workspace.db");
    let shown = wvflow(&[
        "runs",
        "show",
        run_id,
        "--db",
        db.to_str().unwrap(),
        "--format",
        "json",
    ]);
    let shown: Value = serde_json::from_slice(&shown.stdout).unwrap();
    assert_eq!(shown["state"], "failed", "{shown}");
    assert!(!shown.to_string().contains("\"running\""), "{shown}");

    // The activity's output on the full disk: the attempt fails with the reason.
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_wvflow"))
        .args(["run", flow.to_str().unwrap(), "--format", "json"])
        .env("TMPDIR", &dir)
        .output()
        .unwrap();
    let summary: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(o.status.code(), Some(1), "{summary}");
    let error = stage(&summary, "rows")["error"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        error.contains("cannot keep the output of `emit`") && error.contains("No space left"),
        "{error}"
    );

    // Once the flow asks for less, the next run works without removing anything by hand.
    std::fs::write(&flow, emit_flow(10)).unwrap();
    let (code, summary) = run_json(&flow, None);
    assert_eq!(code, Some(0), "{summary}");
    assert_eq!(stage(&summary, "few")["rows"], 1, "{summary}");
}

#[test]
fn a_read_only_folder_is_refused_with_a_way_out() {
    let source = scratch(
        "read_only_source",
        &[("flow.wv", "flow f = { stage a = from [[1]] as t(n) }\n")],
    );
    let dir = scratch("read_only", &[]);
    let Some(_bind) = Mount::new(&dir, &["--bind", "-o", "ro", source.to_str().unwrap()]) else {
        return;
    };
    let flow = dir.join("flow.wv");
    let o = wvflow(&["run", flow.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("read-only") && stderr.contains("--db PATH"),
        "{stderr}"
    );
    let elsewhere = scratch("read_only_db", &[]).join("workspace.db");
    let o = wvflow(&[
        "run",
        flow.to_str().unwrap(),
        "--db",
        elsewhere.to_str().unwrap(),
    ]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn an_activity_that_floods_stdout_or_never_reads_stdin_neither_blocks_nor_loses_rows() {
    let dir = scratch(
        "flood_and_deaf",
        &[(
            "flow.wv",
            r#"activity flood = sh("""yes '{"x": 1, "pad": "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"}' | head -n 300000""")
activity deaf = sh("""sleep 0.5; printf '{"ok": true}\n'""")
activity slow_reader = sh("""sleep 0.5; wc -l | awk '{ printf "{\"lines\": %d}\n", $1 }'""")
flow f = {
  stage flooded = flood()
  stage ignored = from flooded | deaf()
  stage counted = from flooded | slow_reader() | where lines = 300000
}
"#,
        )],
    );
    let started = Instant::now();
    let (code, summary) = run_json(&dir, None);
    assert_eq!(code, Some(0), "{summary}");
    assert!(started.elapsed() < Duration::from_secs(60));
    assert_eq!(stage(&summary, "flooded")["rows"], 300_000, "{summary}");
    assert_eq!(stage(&summary, "ignored")["rows"], 1, "{summary}");
    // A program that reads its input late still gets every row.
    assert_eq!(stage(&summary, "counted")["rows"], 1, "{summary}");
}

#[test]
fn cleaning_runs_during_a_run_leaves_the_running_one_alone() {
    let dir = scratch(
        "clean_during_run",
        &[(
            "flow.wv",
            r#"activity slow = sh("""sleep 1.5; printf '{"a": 1}\n'""")
flow f = {
  stage s = slow()
  stage after = from s | select a
}
"#,
        )],
    );
    let flow = dir.join("flow.wv");
    let (code, _) = run_json(&flow, None);
    assert_eq!(code, Some(0));
    let running = std::process::Command::new(env!("CARGO_BIN_EXE_wvflow"))
        .args(["run", flow.to_str().unwrap(), "--format", "json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(700));
    let ws = dir.to_str().unwrap();
    let o = wvflow(&["runs", "-w", ws, "clean", "--older-than", "0s", "--stale"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = running.wait_with_output().unwrap();
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(0), "{summary}");
    assert_eq!(stage(&summary, "after")["rows"], 1, "{summary}");
    let run_id = summary["run_id"].as_str().unwrap();
    let o = wvflow(&["runs", "-w", ws, "show", run_id, "--format", "json"]);
    let shown: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(shown["state"], "success", "{shown}");
    assert!(
        dir.join(format!(".wvflow/runs/{run_id}.db")).exists(),
        "the running run's database was removed"
    );
}

#[test]
fn a_billion_retries_are_planned_and_checked_like_three() {
    // The plan once built a vector of every delay: a billion of them never finished.
    let dir = scratch(
        "billion_retries",
        &[(
            "flow.wv",
            "activity a with { retries: 1000000000, retry_delay: 1s, max_retry_delay: 2s, timeout: 1s } = sh(\"true\")\nflow R = { stage s [schedule_timeout: 1h] = a() }\n",
        )],
    );
    let flow = dir.join("flow.wv");
    let o = wvflow(&["plan", flow.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        text.contains("retry: 1000000001 attempts, exponential backoff, delays 1s, 2s, 2s, 2s, 2s, 2s, 2s, 2s, ... (1000000000 in all) 2s"),
        "{text}"
    );
    let o = wvflow(&["check", flow.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&o.stdout);
    // 1 + 2 (k - 1) seconds of waits before retry k: retry 1801 passes the hour.
    assert!(
        text.contains("W0202") && text.contains("attempts 1802 to 1000000001 can never start"),
        "{text}"
    );
}

#[test]
fn an_activity_s_columns_keep_the_order_it_printed_them_in() {
    // Keys were once sorted by name: `select ok, name, id` through `cat` came back as
    // id, name, ok.
    let dir = scratch(
        "printed_column_order",
        &[(
            "flow.wv",
            r#"activity echo_rows = sh("cat")
activity late = sh("""printf '{"zeta": 1, "alpha": 2}\n{"beta": 3, "zeta": 4}\n'""")
flow f = {
  stage rows = from [[1, 'a', true]] as t(id, name, ok)
  stage reordered = from rows | select ok, name, id | echo_rows()
    | activate('file', path: 'out/reordered.ndjson')
  stage printed = late() | activate('file', path: 'out/printed.ndjson')
}
"#,
        )],
    );
    let (code, summary) = run_json(&dir, None);
    assert_eq!(code, Some(0), "{summary}");
    let read = |name: &str| std::fs::read_to_string(dir.join("out").join(name)).unwrap();
    assert_eq!(
        read("reordered.ndjson"),
        "{\"ok\":true,\"name\":\"a\",\"id\":1}\n"
    );
    assert_eq!(
        read("printed.ndjson"),
        "{\"zeta\":1,\"alpha\":2,\"beta\":null}\n{\"zeta\":4,\"alpha\":null,\"beta\":3}\n"
    );
}
