//! Exported jumps (`-> F(...)`): once the run has succeeded, the engine starts the target's
//! run with the arguments `wvflow run` gives it, typed as its parameters read them; a chain of
//! jumps stops at the depth limit; a failed run starts nothing.

use crate::common::scratch;
use crate::export::{python, text, wvflow_at};
use serde_json::{Value, json};
use std::process::Command;

/// A flow that jumps with a text, a boolean and a duration; its target writes the values it
/// was given to a file, as its activity saw them.
pub const JUMPS: &str = r#"activity publish(batch: string, quick: boolean, pause: duration) = exec(
  'printf', '{"batch": "%s", "quick": "%s", "pause": "%s"}\n', batch, quick, pause
)

flow Publish(batch: string, quick: boolean = false, pause: duration = 1s) = {
  stage published = publish(batch, quick, pause)
  stage kept = from published | activate('file', path: 'published.json')
}

activity check(fail: boolean) = exec('test', fail, '=', 'false')

flow Hand(batch: string = 'b-1', fail: boolean = false) = {
  stage made = from 'data.csv'
  stage checked = check(fail)
  stage handoff if made.success and checked.success = -> Publish(batch: batch, quick: true, pause: 90s)
}
"#;

/// A folder holding [`JUMPS`] and its data.
pub fn jumps_workspace(name: &str) -> std::path::PathBuf {
    let dir = scratch(name, &[]);
    std::fs::write(dir.join("flows.wv"), JUMPS).unwrap();
    std::fs::write(dir.join("data.csv"), "a,b\n1,2\n").unwrap();
    dir
}

/// What `wvflow run` makes of the jump: the target's run succeeds and its activity sees
/// these values.
pub fn reference() -> String {
    let dir = jumps_workspace("jumps_reference");
    let o = wvflow_at(&dir, &["run", "flows.wv", "Hand", "--format", "json"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let summary: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(summary["next_runs"][0]["flow"], "Publish", "{summary}");
    assert_eq!(summary["next_runs"][0]["state"], "success");
    std::fs::read_to_string(dir.join("published.json")).unwrap()
}

#[test]
fn an_argo_jump_creates_a_workflow_of_the_targets_template() {
    let expected = reference();
    let seen: Value = serde_json::from_str(&expected).unwrap();
    assert_eq!(
        seen,
        json!([{"batch": "b-1", "quick": "true", "pause": "90s"}])
    );
    let dir = jumps_workspace("jumps_argo");
    let workspace = dir.canonicalize().unwrap();
    let export = |flow: &str, extra: &[&str], out: &str| {
        let mut args = vec!["export", "flows.wv", flow, "--target", "argo"];
        args.extend(["--workspace", workspace.to_str().unwrap(), "-o", out]);
        args.extend(extra);
        let o = wvflow_at(&dir, &args);
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    };
    export("Hand", &[], "hand.yaml");
    export("Publish", &["--template"], "publish.yaml");
    let o = Command::new(python())
        .args([
            "tests/export/argo_check.py",
            "validate",
            "tests/export/argo-schema.json",
        ])
        .args([dir.join("hand.yaml"), dir.join("publish.yaml")])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));

    let run = |params: &[&str]| {
        let state = dir.join(format!("state{}", params.len()));
        std::fs::create_dir_all(&state).unwrap();
        let mut command = Command::new(python());
        command.args(["tests/export/argo_check.py", "run"]);
        command.arg(dir.join("hand.yaml"));
        command.args(["--wvflow", env!("CARGO_BIN_EXE_wvflow")]);
        command.arg("--state").arg(&state);
        command.args(["--run-time", "2026-11-26T00:00:00Z", "--template"]);
        command.arg(dir.join("publish.yaml"));
        for p in params {
            command.args(["-p", p]);
        }
        command.output().unwrap()
    };
    let o = run(&[]);
    assert!(o.status.success(), "{}", text(&o));
    let parent: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(parent["state"], "success");
    let created: Vec<Value> = String::from_utf8_lossy(&o.stderr)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert_eq!(created.len(), 1, "{}", text(&o));
    assert_eq!(created[0]["created"], "publish");
    assert_eq!(
        created[0]["parameters"],
        json!({"batch": "b-1", "quick": "true", "pause": "90s", "wvflow-depth": "1"})
    );
    assert_eq!(created[0]["result"]["state"], "success");
    let published = std::fs::read_to_string(dir.join("published.json")).unwrap();
    assert_eq!(published, expected);

    // A run that fails starts nothing.
    std::fs::remove_file(dir.join("published.json")).unwrap();
    let o = run(&["fail=true"]);
    let parent: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(parent["state"], "failed", "{}", text(&o));
    assert!(
        !String::from_utf8_lossy(&o.stderr).contains("\"created\""),
        "{}",
        text(&o)
    );
    assert!(!dir.join("published.json").exists());
}

/// `wvflow stage next` directly: the engine's form of the run to start, nothing after a run
/// that failed, and a failure for good past the depth limit of a chain of jumps.
#[test]
fn stage_next_names_the_run_to_start_and_stops_a_chain_at_the_depth_limit() {
    let dir = jumps_workspace("jumps_next");
    let o = wvflow_at(&dir, &["plan", "flows.wv", "Hand", "--format", "json"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    std::fs::write(dir.join("hand.json"), &o.stdout).unwrap();
    let drive = |run: &str, args: &str| -> std::process::Output {
        let common = ["--plan", "hand.json", "--state", "state", "--run-id", run];
        let step = |words: &[&str]| wvflow_at(&dir, &[&["stage"], words, &common].concat());
        let o = step(&["init", "--args", args]);
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
        for stage in ["made", "checked", "handoff"] {
            step(&["run", stage]);
        }
        step(&["finish"]);
        step(&["next", "--engine", "airflow"])
    };
    let o = drive("r1", "{}");
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let starts: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        starts,
        json!([{"trigger_dag_id": "Publish", "conf": {
            "batch": "b-1", "quick": true, "pause": "90s", "wvflow_depth": 1
        }}])
    );

    let o = drive("r2", r#"{"fail": true}"#);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "[]");

    // A run 16 jumps deep, as Airflow's `conf` carries it: its jump would be the 17th.
    let o = drive("r3", r#"{"wvflow_depth": 16, "batch": "deep"}"#);
    assert_eq!(o.status.code(), Some(98), "{}", text(&o));
    assert!(
        text(&o).contains("jump chain stopped after 16 runs (the depth limit)"),
        "{}",
        text(&o)
    );
    let o = drive("r4", r#"{"wvflow_depth": 15}"#);
    let starts: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(starts[0]["conf"]["wvflow_depth"], 16, "{}", text(&o));
}

/// A parameter named as wvflow's own engine arguments is refused at export.
#[test]
fn a_parameter_named_wvflow_is_refused_at_export() {
    let dir = scratch("jumps_reserved", &[]);
    std::fs::write(
        dir.join("f.wv"),
        "flow F(wvflow_depth: int = 0) = {\n  stage a = from 'x.csv'\n}\n",
    )
    .unwrap();
    for target in ["airflow", "argo"] {
        let o = wvflow_at(&dir, &["export", "f.wv", "F", "--target", target]);
        assert_eq!(o.status.code(), Some(2), "{}", text(&o));
        assert!(
            text(&o).contains("parameter `wvflow_depth`"),
            "{}",
            text(&o)
        );
    }
}
