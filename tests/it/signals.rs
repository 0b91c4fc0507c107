//! Signals and queries keep their types: a value sent to a signal is read by the signal's
//! declared type (the type of its initial value) and refused when it is not one; what comes
//! back out (the `sent` line, `runs query`, rows, `runs show`) is in its type's form.

use crate::common::{ndjson, run_json, scratch, wait_for, wvflow};
use serde_json::{Value, json};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

const TYPED: &str = r#"
flow Typed(flag: boolean = true) = {
  signal approved = false
  signal batch = 3
  signal ratio = 0.5
  signal note = 'none'
  signal pause_for = 1s
  signal day = date '2026-01-01'
  signal at = timestamp '2026-01-01T00:00:00Z'
  signal anything = null
  query q_approved = approved
  query q_batch = batch
  query q_ratio = ratio
  query q_note = note
  query q_pause = pause_for
  query q_day = day
  query q_at = at
  query q_later = at + pause_for
  query gate_state = state('gate')
  stage gate [poll_interval: 100ms, timeout: 1m] = wait until approved
  stage paused = from gate | wait(pause_for)
  stage row if paused.success = from [[1]] as t(n)
    | select flag, approved, batch, ratio, note, pause_for, day, at
}
"#;

/// A `wvflow run` in the background, killed if the test ends before it does.
struct Running(Option<Child>);

impl Running {
    fn wait_with_output(mut self) -> std::process::Output {
        self.0.take().unwrap().wait_with_output().unwrap()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn start(dir: &Path) -> Running {
    Running(Some(
        Command::new(env!("CARGO_BIN_EXE_wvflow"))
            .args([
                "run",
                dir.join("flow.wv").to_str().unwrap(),
                "--format",
                "json",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    ))
}

fn runs(dir: &Path, args: &[&str]) -> Output {
    let workspace = dir.to_string_lossy().into_owned();
    let mut all = vec!["runs", "-w", workspace.as_str()];
    all.extend(args);
    wvflow(&all)
}

fn text(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).trim_end().to_string()
}

/// The run once it is recorded.
fn the_run(dir: &Path) -> String {
    let mut id = String::new();
    wait_for(Duration::from_secs(20), "a recorded run", || {
        if !dir.join(".wvflow/workspace.db").exists() {
            return false;
        }
        let o = runs(dir, &["list", "--format", "json"]);
        let list: Value = serde_json::from_slice(&o.stdout).unwrap_or(Value::Null);
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
fn signal_and_query_values_keep_their_types_in_and_out() {
    let dir = scratch("signals-typed", &[("flow.wv", TYPED)]);
    let child = start(&dir);
    let run = the_run(&dir);
    let query = |name: &str| {
        let o = runs(&dir, &["query", &run, name]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        text(&o)
    };
    let query_json = |name: &str| -> Value {
        let o = runs(&dir, &["query", &run, name, "--format", "json"]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        serde_json::from_slice(&o.stdout).unwrap()
    };
    wait_for(Duration::from_secs(20), "the gate to wait", || {
        query("gate_state") == "running"
    });

    // The initial values, each in its type's form.
    for (name, as_text, as_json) in [
        ("q_approved", "false", json!(false)),
        ("q_batch", "3", json!(3)),
        ("q_ratio", "0.5", json!(0.5)),
        ("q_note", "none", json!("none")),
        ("q_pause", "1s", json!("1s")),
        ("q_day", "2026-01-01", json!("2026-01-01")),
        (
            "q_at",
            "2026-01-01T00:00:00Z",
            json!("2026-01-01T00:00:00Z"),
        ),
        (
            "q_later",
            "2026-01-01T00:00:01Z",
            json!("2026-01-01T00:00:01Z"),
        ),
    ] {
        assert_eq!(query(name), as_text, "{name}");
        assert_eq!(query_json(name), as_json, "{name}");
    }

    // Wrong values are refused with the signal, its type and what it takes; nothing is sent.
    for (signal, value, ty, takes) in [
        ("approved", "1", "boolean", "true or false"),
        ("approved", "yes", "boolean", "true or false"),
        ("batch", "2.5", "int", "a whole number"),
        ("ratio", "half", "float", "a number"),
        ("pause_for", "2000", "duration", "a duration"),
        ("pause_for", "soon", "duration", "a duration"),
        ("day", "2026-13-01", "date", "a date"),
        ("at", "yesterday", "timestamp", "a timestamp"),
    ] {
        let o = runs(&dir, &["signal", &run, signal, value]);
        assert_eq!(o.status.code(), Some(2), "{signal} {value}: {}", text(&o));
        let stderr = String::from_utf8_lossy(&o.stderr);
        for part in [&format!("`{signal}`"), ty, takes, &format!("`{value}`")] {
            assert!(stderr.contains(part), "{signal} {value}: {stderr}");
        }
    }
    let o = runs(&dir, &["signal", &run, "batch"]);
    assert_eq!(o.status.code(), Some(2), "a value is needed: {}", text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("a whole number"));
    let shown: Value =
        serde_json::from_slice(&runs(&dir, &["show", &run, "--format", "json"]).stdout).unwrap();
    assert_eq!(shown["signals"], json!([]), "nothing recorded: {shown}");
    assert_eq!(query("q_approved"), "false");

    // Values as the command line gives them, read by type; the line says what was sent.
    for (signal, value, sent) in [
        ("batch", "7", "7"),
        ("ratio", "2", "2.0"),
        ("note", "\"hello world\"", "\"hello world\""),
        ("note", "plain text", "\"plain text\""),
        ("note", "null", "null"),
        ("pause_for", "1h 30m", "90m"),
        ("pause_for", "\"2s\"", "2s"),
        ("day", "2026-02-03", "2026-02-03"),
        ("at", "2026-02-03 04:05:06", "2026-02-03T04:05:06Z"),
        ("anything", "42", "42"),
    ] {
        let o = runs(&dir, &["signal", &run, signal, value]);
        assert!(
            o.status.success(),
            "{signal} {value}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert_eq!(
            text(&o),
            format!("signal {signal} = {sent} sent to run {run}")
        );
    }
    // `null` falls back to the initial value; the latest value wins.
    assert_eq!(query("q_note"), "none");
    assert_eq!(query("q_pause"), "2s");
    assert_eq!(query_json("q_pause"), json!("2s"));
    assert_eq!(query_json("q_ratio"), json!(2.0));
    assert_eq!(query("q_ratio"), "2.0");
    assert_eq!(query("q_at"), "2026-02-03T04:05:06Z");
    assert_eq!(query("q_later"), "2026-02-03T04:05:08Z");

    let o = runs(&dir, &["signal", &run, "approved", "true"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        text(&o),
        format!("signal approved = true sent to run {run}")
    );
    let out = child.wait_with_output();
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(0), "{summary}");
    // `wait(pause_for)` waited the 2 s sent as `"2s"`.
    let paused = summary["stages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["stage"] == "paused")
        .unwrap();
    assert!(paused["duration_ms"].as_u64().unwrap() >= 2000, "{paused}");
    assert_eq!(query("q_approved"), "true");
    assert_eq!(query_json("q_approved"), json!(true));

    // A signal selected into a row keeps its type, as a parameter does.
    let o = runs(&dir, &["rows", &run, "row", "--format", "json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let rows: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        rows,
        json!([{
            "flag": true, "approved": true, "batch": 7, "ratio": 2.0, "note": "none",
            "pause_for": "2s", "day": "2026-02-03", "at": "2026-02-03T04:05:06Z"
        }])
    );

    // `runs show` lists the signals sent, each in its type's form.
    let shown: Value =
        serde_json::from_slice(&runs(&dir, &["show", &run, "--format", "json"]).stdout).unwrap();
    let sent: Vec<(Value, Value)> = shown["signals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["name"].clone(), s["value"].clone()))
        .collect();
    assert_eq!(sent.len(), 11, "{shown}");
    assert_eq!(sent[1], (json!("ratio"), json!(2.0)));
    assert_eq!(sent[2], (json!("note"), json!("hello world")));
    assert_eq!(sent[4], (json!("note"), Value::Null));
    assert_eq!(sent[6], (json!("pause_for"), json!("2s")));
    assert_eq!(sent[9], (json!("anything"), json!(42)));
    assert_eq!(sent[10], (json!("approved"), json!(true)));
    let shown = text(&runs(&dir, &["show", &run]));
    assert!(shown.contains("\nsignals:\n"), "{shown}");
    assert!(shown.contains("  pause_for = 2s  at 20"), "{shown}");
    assert!(shown.contains("  approved = true  at 20"), "{shown}");
}

#[test]
fn a_finished_run_still_answers_typed_queries_and_refuses_signals() {
    let dir = scratch(
        "signals-finished",
        &[(
            "flow.wv",
            "flow Done(wait_for: duration = 90s) = {\n  signal ok = true\n  query q_ok = ok\n  query q_wait = wait_for\n  stage s = from [[1]] as t(n)\n}\n",
        )],
    );
    let o = wvflow(&["run", dir.join("flow.wv").to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let run = the_run(&dir);
    assert_eq!(text(&runs(&dir, &["query", &run, "q_ok"])), "true");
    assert_eq!(text(&runs(&dir, &["query", &run, "q_wait"])), "90s");
    let o = runs(&dir, &["query", &run, "q_wait", "--format", "json"]);
    assert_eq!(text(&o), "\"90s\"");
    let o = runs(&dir, &["signal", &run, "ok", "false"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("already finished"));
}

/// A boolean or a duration joined into text with `||` reads as its own text (`true`, `90s`),
/// as it does everywhere else, not as SQLite's 1 and 90000: in a query and in a stage's rows.
#[test]
fn booleans_and_durations_joined_into_text_keep_their_form() {
    let dir = scratch(
        "typed_concat",
        &[(
            "flow.wv",
            "flow F(yes: boolean = true, no: boolean = false, pause: duration = 90s) = {\n  signal go = false\n  query status = 'go:' || go\n  stage s = from [[1]] as t(x) | select 'on:' || yes || ' off:' || no || ' pause:' || pause || ' literal:' || (1 < 2) as text | activate('file', path: 'out.ndjson')\n}\n",
        )],
    );
    let (code, summary) = run_json(&dir, None);
    assert_eq!(code, Some(0), "{summary}");
    assert_eq!(
        ndjson(&dir.join("out.ndjson")),
        [serde_json::json!({"text": "on:true off:false pause:90s literal:true"})]
    );
    let run_id = summary["run_id"].as_str().unwrap();
    let o = wvflow(&[
        "runs",
        "-w",
        dir.to_str().unwrap(),
        "query",
        run_id,
        "status",
    ]);
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "go:false");
}

/// A `wvflow` command with environment variables (an S3 state's credentials and endpoint).
fn wvflow_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wvflow"))
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

/// An exported run takes the same signals and answers the same queries as a run of `wvflow
/// run`, through its state (a folder, and an S3 bucket): `runs signal` and `runs query` with
/// `--state` and `--flow`, the waiting task reading what was sent at its next poll.
#[test]
fn an_exported_run_takes_signals_and_answers_queries_through_its_state() {
    let server = crate::export::S3Server::start();
    let s3 = [
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ENDPOINT_URL_S3", server.endpoint.as_str()),
    ];
    let dir = scratch("signals-exported", &[("flow.wv", TYPED)]);
    let plan = dir.join("plan.json");
    let o = wvflow(&[
        "plan",
        dir.join("flow.wv").to_str().unwrap(),
        "--format",
        "json",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    std::fs::write(&plan, &o.stdout).unwrap();
    for target in ["airflow", "argo"] {
        let o = wvflow(&[
            "export",
            dir.join("flow.wv").to_str().unwrap(),
            "--target",
            target,
        ]);
        assert_eq!(
            o.status.code(),
            Some(0),
            "{target}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    let folder = dir.join("state").display().to_string();
    for (state, env) in [
        (folder.as_str(), &[][..]),
        ("s3://wvflow-state/signals", &s3[..]),
    ] {
        let cwd = dir.display().to_string();
        let task = |verb: &[&str]| -> Vec<String> {
            let mut all: Vec<String> = ["stage"]
                .iter()
                .chain(verb)
                .map(|s| s.to_string())
                .collect();
            all.extend(["--state", state, "--run-id", "r1", "--cwd", &cwd].map(String::from));
            if verb[0] != "init" {
                all.extend(["--flow".to_string(), "Typed".to_string()]);
            }
            all
        };
        let run = |args: Vec<String>| {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            wvflow_env(&args, env)
        };
        let o = run(task(&[
            "init",
            "--plan",
            plan.to_str().unwrap(),
            "--args",
            "{}",
        ]));
        assert!(
            o.status.success(),
            "{state}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let gate = Running(Some(
            Command::new(env!("CARGO_BIN_EXE_wvflow"))
                .args(task(&["run", "gate"]))
                .envs(env.iter().copied())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap(),
        ));
        let runs = |args: &[&str]| {
            let mut all = vec!["runs"];
            all.extend(args);
            all.extend(["--state", state, "--flow", "Typed"]);
            wvflow_env(&all, env)
        };
        let query = |name: &str| {
            let o = runs(&["query", "r1", name]);
            assert!(
                o.status.success(),
                "{state} {name}: {}",
                String::from_utf8_lossy(&o.stderr)
            );
            text(&o)
        };
        wait_for(Duration::from_secs(20), "the gate to wait", || {
            query("gate_state") == "running"
        });
        assert_eq!(query("q_approved"), "false", "{state}");
        assert_eq!(query("q_pause"), "1s", "{state}");

        // Refused as the run store refuses, nothing recorded; `pause` is the engine's.
        let o = runs(&["signal", "r1", "batch", "2.5"]);
        assert_eq!(o.status.code(), Some(2), "{state}: {}", text(&o));
        let said = String::from_utf8_lossy(&o.stderr);
        assert!(
            said.contains("`batch`") && said.contains("a whole number"),
            "{said}"
        );
        let o = runs(&["signal", "r1", "pause"]);
        assert_eq!(o.status.code(), Some(2), "{state}: {}", text(&o));
        assert!(String::from_utf8_lossy(&o.stderr).contains("engine's own control"));
        assert_eq!(query("q_batch"), "3", "{state}");

        for (signal, value, sent) in [
            ("batch", "7", "7"),
            ("ratio", "2", "2.0"),
            ("note", "null", "null"),
            ("pause_for", "\"2s\"", "2s"),
            ("at", "2026-02-03 04:05:06", "2026-02-03T04:05:06Z"),
        ] {
            let o = runs(&["signal", "r1", signal, value]);
            assert!(
                o.status.success(),
                "{state} {signal}: {}",
                String::from_utf8_lossy(&o.stderr)
            );
            assert_eq!(text(&o), format!("signal {signal} = {sent} sent to run r1"));
        }
        assert_eq!(query("q_batch"), "7", "{state}");
        assert_eq!(
            query("q_note"),
            "none",
            "{state}: null falls back to the initial value"
        );
        assert_eq!(query("q_later"), "2026-02-03T04:05:08Z", "{state}");
        let o = runs(&["query", "r1", "q_ratio", "--format", "json"]);
        assert_eq!(
            serde_json::from_slice::<Value>(&o.stdout).unwrap(),
            json!(2.0)
        );

        // The waiting task opens at its next poll.
        let o = runs(&["signal", "r1", "approved"]);
        assert!(
            o.status.success(),
            "{state}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let out = gate.wait_with_output();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{state}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        for stage in ["paused", "row"] {
            let o = run(task(&["run", stage]));
            assert_eq!(
                o.status.code(),
                Some(0),
                "{state} {stage}: {}",
                String::from_utf8_lossy(&o.stderr)
            );
        }
        let o = run(task(&["finish"]));
        let summary: Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(summary["state"], "success", "{state}: {summary}");
        // `wait(pause_for)` waited the 2 s sent.
        assert!(
            summary["stages"][1]["duration_ms"].as_u64().unwrap() >= 2000,
            "{summary}"
        );
        assert_eq!(query("q_approved"), "true", "{state}");
        assert_eq!(query("gate_state"), "success", "{state}");
        let o = runs(&["signal", "r1", "approved"]);
        assert_eq!(o.status.code(), Some(2), "{state}: {}", text(&o));
        assert!(String::from_utf8_lossy(&o.stderr).contains("has finished"));
    }
}
