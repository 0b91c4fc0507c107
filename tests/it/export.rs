//! `wvflow export` and `wvflow stage`: exported files byte for byte, and runs driven stage by
//! stage as an engine would drive them, which must end as `wvflow run` ends.

use crate::common::copy_dir;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn wvflow_at(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wvflow"))
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A fresh copy of the examples under the target folder.
fn examples_copy(name: &str) -> PathBuf {
    let dir = crate::common::scratch(name, &[]);
    copy_dir(Path::new("examples"), &dir.join("examples"));
    dir
}

/// In which order an engine starts the stages whose upstream tasks are all done.
#[derive(Clone, Copy, Debug)]
pub enum Order {
    /// The plan's order.
    Plan,
    /// The last ready stage first.
    Reversed,
}

/// What matters of a summary for comparing two runs of the same flow.
pub fn outcome(summary: &Value) -> Value {
    json!({
        "state": summary["state"],
        "stages": summary["stages"].as_array().unwrap().iter().map(|s| json!([
            s["stage"], s["state"], s["rows"], s["attempts"],
        ])).collect::<Vec<_>>(),
        "compensations": summary["compensations"].as_array().unwrap().iter().map(|c| json!([
            c["stage"], c["state"], c["attempts"],
        ])).collect::<Vec<_>>(),
    })
}

/// Drives a run of `plan` (a JSON file) through `wvflow stage`, as an engine would: `init`,
/// each stage once its upstream stages (and a fork's branches) have ended, a try again on
/// exit 1 with the next attempt number, then `finish`. The summary `finish` printed.
pub fn drive(dir: &Path, plan: &Path, args: &Value, run_time: &str, order: Order) -> Value {
    let plan_json: Value = serde_json::from_slice(&std::fs::read(plan).unwrap()).unwrap();
    let state = dir.join("state");
    let cwd = dir.join("examples");
    let common = |extra: &[&str]| -> Vec<String> {
        let mut all: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        all.extend([
            "--state".into(),
            state.display().to_string(),
            "--run-id".into(),
            "r1".into(),
            "--cwd".into(),
            cwd.display().to_string(),
        ]);
        all
    };
    let run = |args: Vec<String>| -> Output {
        let words: Vec<&str> = args.iter().map(String::as_str).collect();
        wvflow_at(dir, &words)
    };
    let mut init = common(&["stage", "init", "--plan", plan.to_str().unwrap()]);
    init.extend([
        "--args".into(),
        args.to_string(),
        "--run-time".into(),
        run_time.into(),
    ]);
    let o = run(init);
    assert_eq!(o.status.code(), Some(0), "init: {}", text(&o));
    let stages = plan_json["flow"]["stages"].as_array().unwrap();
    let waits: Vec<(String, Vec<String>)> = stages
        .iter()
        .map(|s| {
            let mut up: Vec<String> = s["upstream"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["stage"].as_str().unwrap().to_string())
                .collect();
            // A fork has ended once its branches have.
            let mut i = 0;
            while i < up.len() {
                if let Some(fork) = stages.iter().find(|f| f["id"] == up[i].as_str()) {
                    for step in fork["steps"].as_array().unwrap() {
                        for b in step["branches"].as_array().into_iter().flatten() {
                            let b = b.as_str().unwrap().to_string();
                            if !up.contains(&b) {
                                up.push(b);
                            }
                        }
                    }
                }
                i += 1;
            }
            (s["id"].as_str().unwrap().to_string(), up)
        })
        .collect();
    let mut done: Vec<String> = Vec::new();
    while done.len() < waits.len() {
        let ready: Vec<&String> = waits
            .iter()
            .filter(|(s, up)| !done.contains(s) && up.iter().all(|u| done.contains(u)))
            .map(|(s, _)| s)
            .collect();
        let next = match order {
            Order::Plan => ready.first(),
            Order::Reversed => ready.last(),
        }
        .copied()
        .unwrap_or_else(|| panic!("no stage ready; done: {done:?}"))
        .clone();
        let mut attempt = 1;
        loop {
            let o = run(common(&[
                "stage",
                "run",
                &next,
                "--attempt",
                &attempt.to_string(),
            ]));
            match o.status.code() {
                Some(0 | 98 | 99) => break,
                Some(1) if attempt < 100 => attempt += 1,
                other => panic!("stage {next} ended {other:?}: {}", text(&o)),
            }
        }
        done.push(next);
    }
    let o = run(common(&["stage", "finish"]));
    assert!(
        matches!(o.status.code(), Some(0 | 98)),
        "finish: {}",
        text(&o)
    );
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&o)))
}

/// One documented `wvflow run` of an example: its summary, its flow, its bound arguments and
/// its run time, from a fresh copy of the examples.
pub fn reference_run(args: &[String]) -> (Value, String, Value, String) {
    let dir = examples_copy("export_reference");
    let mut words: Vec<&str> = args.iter().map(String::as_str).collect();
    words.extend(["--format", "json"]);
    let o = wvflow_at(&dir, &words);
    let summary: Value = serde_json::Deserializer::from_slice(&o.stdout)
        .into_iter()
        .next()
        .and_then(Result::ok)
        .unwrap_or_else(|| panic!("{args:?}: {}", text(&o)));
    let id = summary["run_id"].as_str().unwrap();
    let shown = wvflow_at(
        &dir,
        &["runs", "-w", &args[1], "show", id, "--format", "json"],
    );
    let shown: Value = serde_json::from_slice(&shown.stdout).unwrap();
    (
        summary.clone(),
        summary["flow"].as_str().unwrap().to_string(),
        shown["args"].clone(),
        shown["run_time"].as_str().unwrap().to_string(),
    )
}

/// Every documented `wvflow run` of every example, driven stage by stage through `wvflow
/// stage` in two orders, ends as `wvflow run` ends: the run's state, each stage's state, rows
/// and attempts, and the compensations. A flow export refuses is listed with its reason.
#[test]
fn stage_by_stage_runs_end_as_wvflow_run_ends() {
    let mut refused = Vec::new();
    let mut compared = 0;
    for (file, args) in crate::examples::documented_runs() {
        let (reference, flow, bound, run_time) = reference_run(&args);
        let dir = examples_copy("export_drive");
        let o = wvflow_at(&dir, &["export", &file, &flow, "--target", "airflow"]);
        if o.status.code() == Some(2) {
            let why = text(&o);
            assert!(
                why.contains("cannot be exported exactly"),
                "{file} {flow}: {why}"
            );
            refused.push(format!("{file} {flow}"));
            continue;
        }
        let plan = wvflow_at(&dir, &["plan", &file, &flow, "--format", "json"]).stdout;
        for order in [Order::Plan, Order::Reversed] {
            let dir = examples_copy("export_drive");
            std::fs::write(dir.join("plan.json"), &plan).unwrap();
            let driven = drive(&dir, &dir.join("plan.json"), &bound, &run_time, order);
            assert_eq!(
                outcome(&driven),
                outcome(&reference),
                "{args:?} driven in {order:?} order"
            );
        }
        compared += 1;
    }
    refused.sort();
    refused.dedup();
    assert_eq!(
        refused,
        [
            // `call`, `-> PublishProfiles`
            "examples/child_flows.wv RefreshProfiles",
            // `each call EnrichOne(...)`
            "examples/customer_enrichment.wv EnrichCustomers",
            // `pool: gpu`
            "examples/gpu_pool.wv Evaluate",
            "examples/gpu_pool.wv TrainModels",
            // `trigger: first_success`
            "examples/price_race.wv PriceRace",
        ]
    );
    assert!(compared >= 15, "{compared} runs compared");
}
