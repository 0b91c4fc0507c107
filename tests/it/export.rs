//! `wvflow export` and `wvflow stage`: exported files byte for byte, and runs driven stage by
//! stage as an engine would drive them, which must end as `wvflow run` ends.

use crate::common::{copy_dir, scratch};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn wvflow_at(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wvflow"))
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap()
}

/// A command's stdout and stderr together, as failures print them.
pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A fresh copy of the examples under the target folder.
pub fn examples_copy(name: &str) -> PathBuf {
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
    /// Every ready stage at once, as processes side by side (workers writing at once).
    AllAtOnce,
}

/// What matters of a summary for comparing two runs of the same flow: the errors too, as
/// users read them (two copies of the run's rules once said the same failure two ways).
pub fn outcome(summary: &Value) -> Value {
    json!({
        "state": summary["state"],
        "stages": summary["stages"].as_array().unwrap().iter().map(|s| json!([
            s["stage"], s["state"], s["rows"], s["attempts"], s["error"],
        ])).collect::<Vec<_>>(),
        "compensations": summary["compensations"].as_array().unwrap().iter().map(|c| json!([
            c["stage"], c["state"], c["attempts"], c["error"],
        ])).collect::<Vec<_>>(),
    })
}

/// Drives a run of `plan` (a JSON file) through `wvflow stage`, as an engine would: `init`,
/// each stage once its upstream stages (and a fork's branches) have ended, a try again on
/// exit 1 with the next attempt number, then `finish`. The summary `finish` printed.
pub fn drive(dir: &Path, plan: &Path, args: &Value, run_time: &str, order: Order) -> Value {
    let state = dir.join("state").display().to_string();
    drive_on(dir, (&state, &[]), plan, args, run_time, order)
}

/// [`drive`] with the state at `state` (a folder or an `s3://` location), the tasks run with
/// the environment variables `env` too.
pub fn drive_on(
    dir: &Path,
    (state, env): (&str, &[(&str, &str)]),
    plan: &Path,
    args: &Value,
    run_time: &str,
    order: Order,
) -> Value {
    drive_run(dir, (state, env, "r1"), plan, args, (run_time, order))
}

/// [`drive_on`] for the run `run_id`: a child run is driven so, under the run id its parent's
/// gathering looks for.
fn drive_run(
    dir: &Path,
    (state, env, run_id): (&str, &[(&str, &str)], &str),
    plan: &Path,
    args: &Value,
    (run_time, order): (&str, Order),
) -> Value {
    let plan_json: Value = serde_json::from_slice(&std::fs::read(plan).unwrap()).unwrap();
    let flow = match plan_json["flow"]["version"].as_u64() {
        Some(v) => format!("{}@{v}", plan_json["flow"]["name"].as_str().unwrap()),
        None => plan_json["flow"]["name"].as_str().unwrap().to_string(),
    };
    let cwd = dir.join("examples");
    let common = |extra: &[&str]| -> Vec<String> {
        let mut all: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        all.extend([
            "--state".into(),
            state.to_string(),
            "--run-id".into(),
            run_id.into(),
            "--cwd".into(),
            cwd.display().to_string(),
            "--flow".into(),
            flow.clone(),
        ]);
        all
    };
    let run = |args: Vec<String>| -> Output {
        Command::new(env!("CARGO_BIN_EXE_wvflow"))
            .args(args)
            .envs(env.iter().copied())
            .current_dir(dir)
            .output()
            .unwrap()
    };
    // A task started, to be waited for: tasks that run side by side.
    let start = |args: Vec<String>| -> std::process::Child {
        Command::new(env!("CARGO_BIN_EXE_wvflow"))
            .args(args)
            .envs(env.iter().copied())
            .current_dir(dir)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
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
                        let branches = step["branches"].as_array();
                        // A branch of that fork runs inside it.
                        if branches.is_some_and(|b| b.contains(&s["id"])) {
                            continue;
                        }
                        for b in branches.into_iter().flatten() {
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
    let mut tries: std::collections::BTreeMap<String, u32> = Default::default();
    while done.len() < waits.len() {
        let ready: Vec<String> = waits
            .iter()
            .filter(|(s, up)| !done.contains(s) && up.iter().all(|u| done.contains(u)))
            .map(|(s, _)| s.clone())
            .collect();
        assert!(!ready.is_empty(), "no stage ready; done: {done:?}");
        let batch: Vec<String> = match order {
            Order::Plan => ready[..1].to_vec(),
            Order::Reversed => ready[ready.len() - 1..].to_vec(),
            Order::AllAtOnce => ready,
        };
        // A stage whose `each` items are tasks of their own: prepare, the items (side by
        // side, or one by one in the order's direction), gather.
        let (calls, batch): (Vec<String>, Vec<String>) = batch
            .into_iter()
            .partition(|s| calls_out(&plan_json, s).is_some());
        for stage in calls {
            // The engine's part: each child driven as a run of its own, tried again as the
            // stage's retries say, under the run id the gathering reads.
            let o = run(common(&["stage", "prepare", &stage, "--engine", "airflow"]));
            assert!(
                matches!(o.status.code(), Some(0 | 98 | 99)),
                "{stage} prepare: {}",
                text(&o)
            );
            let children: Vec<Value> = serde_json::from_slice(&o.stdout)
                .unwrap_or_else(|e| panic!("{stage} prepare: {e}: {}", text(&o)));
            let tries = calls_out(&plan_json, &stage).unwrap_or(1);
            for (item, child) in children.iter().enumerate() {
                let child_plan =
                    child_plan(dir, &plan_json, child["trigger_dag_id"].as_str().unwrap());
                for attempt in 1..=tries {
                    let id = format!(
                        "{run_id}-{}-{item}-{attempt}",
                        stage.to_lowercase().replace('_', "-")
                    );
                    let ended = drive_run(
                        dir,
                        (state, env, &id),
                        &child_plan,
                        &child["conf"],
                        (run_time, order),
                    );
                    if ended["state"] == "success" {
                        break;
                    }
                }
            }
            let o = run(common(&["stage", "gather", &stage]));
            assert!(
                matches!(o.status.code(), Some(0 | 98 | 99)),
                "{stage} gather: {}",
                text(&o)
            );
            done.push(stage);
        }
        let (waits, batch): (Vec<String>, Vec<String>) = batch
            .into_iter()
            .partition(|s| waits_out(&plan_json, s).is_some());
        for stage in waits {
            // Airflow's sensor: `poll` again after the poll interval until the wait is over.
            let o = run(common(&["stage", "prepare", &stage]));
            assert!(
                matches!(o.status.code(), Some(0 | 98 | 99)),
                "{stage} prepare: {}",
                text(&o)
            );
            let pause = waits_out(&plan_json, &stage).unwrap_or(100);
            let mut polls = 0;
            while o.status.code() == Some(0) {
                let o = run(common(&["stage", "poll", &stage]));
                match o.status.code() {
                    Some(0) => break,
                    Some(3) if polls < 10_000 => polls += 1,
                    other => panic!("{stage} poll: {other:?} {}", text(&o)),
                }
                std::thread::sleep(std::time::Duration::from_millis(pause));
            }
            let o = run(common(&["stage", "gather", &stage]));
            assert!(
                matches!(o.status.code(), Some(0 | 98 | 99)),
                "{stage} gather: {}",
                text(&o)
            );
            done.push(stage);
        }
        let (fanned, batch): (Vec<String>, Vec<String>) =
            batch.into_iter().partition(|s| fans_out(&plan_json, s));
        for stage in fanned {
            let o = run(common(&["stage", "prepare", &stage]));
            if o.status.code() == Some(0) {
                let items: Vec<usize> = serde_json::from_slice(&o.stdout)
                    .unwrap_or_else(|e| panic!("{stage} prepare: {e}: {}", text(&o)));
                let mut pending: Vec<(usize, u32)> = items.iter().map(|&i| (i, 1)).collect();
                if matches!(order, Order::Reversed) {
                    pending.reverse();
                }
                while !pending.is_empty() {
                    let width = if matches!(order, Order::AllAtOnce) {
                        pending.len()
                    } else {
                        1
                    };
                    let started: Vec<((usize, u32), std::process::Child)> = pending
                        .drain(..width)
                        .map(|(i, attempt)| {
                            let args = common(&[
                                "stage",
                                "item",
                                &stage,
                                "--item",
                                &i.to_string(),
                                "--attempt",
                                &attempt.to_string(),
                            ]);
                            ((i, attempt), start(args))
                        })
                        .collect();
                    for ((i, attempt), child) in started {
                        let o = child.wait_with_output().unwrap();
                        match o.status.code() {
                            Some(0 | 98) => {}
                            Some(1) if attempt < 100 => pending.push((i, attempt + 1)),
                            other => panic!("{stage} item {i}: {other:?} {}", text(&o)),
                        }
                    }
                }
                let o = run(common(&["stage", "gather", &stage]));
                assert!(
                    matches!(o.status.code(), Some(0 | 98 | 99)),
                    "{stage} gather: {}",
                    text(&o)
                );
            } else {
                assert!(
                    matches!(o.status.code(), Some(98 | 99)),
                    "{stage} prepare: {}",
                    text(&o)
                );
            }
            done.push(stage);
        }
        // Started side by side, then waited for.
        let children: Vec<(String, std::process::Child)> = batch
            .into_iter()
            .map(|stage| {
                let attempt = tries.get(&stage).copied().unwrap_or(1).to_string();
                let child = start(common(&["stage", "run", &stage, "--attempt", &attempt]));
                (stage, child)
            })
            .collect();
        for (stage, child) in children {
            let o = child.wait_with_output().unwrap();
            match o.status.code() {
                Some(0 | 98 | 99) => done.push(stage),
                Some(1) if tries.get(&stage).copied().unwrap_or(1) < 100 => {
                    *tries.entry(stage).or_insert(1) += 1;
                }
                other => panic!("stage {stage} ended {other:?}: {}", text(&o)),
            }
        }
    }
    let o = run(common(&["stage", "finish"]));
    assert!(
        matches!(o.status.code(), Some(0 | 98)),
        "finish: {}",
        text(&o)
    );
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&o)))
}

/// The tries of a stage's child runs when they run as the engine's runs (a `call` or an
/// `each call` with nothing but queries before it): 1 for a `call`, the stage's attempts for
/// an `each call`.
fn calls_out(plan: &Value, stage: &str) -> Option<u32> {
    let stage = plan["flow"]["stages"]
        .as_array()?
        .iter()
        .find(|s| s["id"] == stage)?;
    let steps: Vec<&str> = stage["steps"]
        .as_array()?
        .iter()
        .map(|s| s["step"].as_str().unwrap())
        .collect();
    let at = steps
        .iter()
        .position(|s| matches!(*s, "call" | "each_call"))?;
    Some(match steps[at] {
        "each_call" => stage["retry"]["attempts"].as_u64().unwrap_or(1) as u32,
        _ => 1,
    })
}

/// The poll interval of a stage's `wait until` when Airflow checks it (nothing but queries
/// before it), in milliseconds.
fn waits_out(plan: &Value, stage: &str) -> Option<u64> {
    let stage = plan["flow"]["stages"]
        .as_array()?
        .iter()
        .find(|s| s["id"] == stage)?;
    let steps = stage["steps"].as_array()?;
    let at = steps.iter().position(|s| s["step"] == "wait_until")?;
    let before = steps[..at]
        .iter()
        .all(|s| matches!(s["step"].as_str(), Some("query" | "union")));
    let first_split = !steps[..at]
        .iter()
        .any(|s| matches!(s["step"].as_str(), Some("call" | "each_call" | "each")));
    (before && first_split).then(|| steps[at]["poll_interval_ms"].as_u64().unwrap_or(1000))
}

/// The plan of a child flow (its DAG id `Name` or `Name_vN`), from the parent's file, written
/// beside the parent's.
fn child_plan(dir: &Path, parent: &Value, dag_id: &str) -> PathBuf {
    let key = match dag_id.rsplit_once("_v") {
        Some((name, v)) if v.chars().all(|c| c.is_ascii_digit()) => format!("{name}@{v}"),
        _ => dag_id.to_string(),
    };
    let file = parent["flow"]["origin"]["file"].as_str().unwrap();
    let o = wvflow_at(dir, &["plan", file, &key, "--format", "json"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let path = dir.join(format!("child-{dag_id}.json"));
    std::fs::write(&path, &o.stdout).unwrap();
    path
}

/// Whether a stage's `each` items run as tasks of their own: an `each` with nothing but
/// queries before it (as `wvflow::runtime::tasks::fans_out_as_tasks` decides).
fn fans_out(plan: &Value, stage: &str) -> bool {
    let Some(stage) = plan["flow"]["stages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == stage)
    else {
        return false;
    };
    let steps: Vec<&str> = stage["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["step"].as_str().unwrap())
        .collect();
    match steps.iter().position(|s| *s == "each") {
        Some(at) => steps[..at].iter().all(|s| matches!(*s, "query" | "union")),
        None => false,
    }
}

/// The environment of the runs of the examples the test `name` makes: the PostgreSQL server
/// of warehouse_report.wv's connector (a database of the test's own); the other examples
/// never read it.
pub fn examples_server(name: &str) -> Vec<(&'static str, String)> {
    crate::common::postgres::example_env(name)
}

/// One documented `wvflow run` of an example: its summary, its flow, its bound arguments and
/// its run time, from a fresh copy of the examples. `scratch` names its folder: tests that
/// run at once use their own.
pub fn reference_run(scratch: &str, args: &[String]) -> (Value, String, Value, String) {
    let dir = examples_copy(scratch);
    let mut words: Vec<&str> = args.iter().map(String::as_str).collect();
    words.extend(["--format", "json"]);
    let o = Command::new(env!("CARGO_BIN_EXE_wvflow"))
        .args(&words)
        .envs(examples_server(scratch))
        .current_dir(&dir)
        .output()
        .unwrap();
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
/// stage` in two orders and with every ready stage at once, ends as `wvflow run` ends: the run's state, each stage's state, rows
/// and attempts, and the compensations. A flow export refuses is listed with its reason.
#[test]
fn stage_by_stage_runs_end_as_wvflow_run_ends() {
    let mut refused = Vec::new();
    let mut compared = 0;
    for (file, args) in crate::examples::documented_runs() {
        let (reference, flow, bound, run_time) = reference_run("drive_reference", &args);
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
        let racers = racers(&serde_json::from_slice(&plan).unwrap());
        for order in [Order::Plan, Order::Reversed, Order::AllAtOnce] {
            let dir = examples_copy("export_drive");
            std::fs::write(dir.join("plan.json"), &plan).unwrap();
            let state = dir.join("state").display().to_string();
            let env = examples_server("drive_reference");
            let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let driven = drive_on(
                &dir,
                (&state, &env),
                &dir.join("plan.json"),
                &bound,
                &run_time,
                order,
            );
            assert_eq!(
                outcome_in(&driven, order, &racers),
                outcome_in(&reference, order, &racers),
                "{args:?} driven in {order:?} order"
            );
        }
        compared += 1;
    }
    refused.sort();
    refused.dedup();
    assert_eq!(refused, Vec::<String>::new());
    assert!(compared >= 18, "{compared} runs compared");
}

/// [`outcome`] as an engine that runs ready tasks one at a time can match it: the racer it
/// starts first wins a `first_success` race, and the other is cancelled before its task
/// starts, where `wvflow run` starts the racers together. As many racers must win (one, or
/// none when all fail); which one may differ.
fn outcome_in(summary: &Value, order: Order, racers: &[String]) -> Value {
    let mut outcome = outcome(summary);
    if matches!(order, Order::AllAtOnce) || racers.is_empty() {
        return outcome;
    }
    let stages = outcome["stages"].as_array_mut().unwrap();
    let won = stages
        .iter()
        .filter(|s| racers.iter().any(|r| s[0] == r.as_str()) && s[1] == "success")
        .count();
    stages.retain(|s| !racers.iter().any(|r| s[0] == r.as_str()));
    outcome["racers_won"] = json!(won);
    outcome
}

/// The stages that race for a `first_success` stage.
fn racers(plan: &Value) -> Vec<String> {
    plan["flow"]["stages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["first_success"] == true)
        .flat_map(|s| s["upstream"].as_array().unwrap().iter())
        .map(|e| e["stage"].as_str().unwrap().to_string())
        .collect()
}

/// Every flow of every example, `(file, flow)`.
fn example_flows() -> Vec<(String, String)> {
    let mut found = Vec::new();
    for (file, _) in crate::examples::documented_runs() {
        if found.iter().any(|(f, _)| f == &file) {
            continue;
        }
        let (workspace, _) = wvflow::workspace::Workspace::load(&[PathBuf::from(&file)]);
        let index = wvflow::check::Index::new(&workspace);
        let mut flows: Vec<String> = index.flow_names().map(str::to_string).collect();
        flows.sort();
        flows.dedup();
        found.extend(flows.into_iter().map(|f| (file.clone(), f)));
    }
    found
}

/// Every flow of a file as `Name`, or `Name@N` for each of its versions.
fn flow_keys(file: &str) -> Vec<String> {
    let (workspace, _) = wvflow::workspace::Workspace::load(&[PathBuf::from(file)]);
    let index = wvflow::check::Index::new(&workspace);
    let mut keys = Vec::new();
    for name in index.flow_names() {
        let versions: Vec<u32> = (1..=20)
            .filter(|v| index.flow(name, Some(*v)).is_some())
            .collect();
        if versions.is_empty() {
            keys.push(name.to_string());
        }
        keys.extend(versions.iter().map(|v| format!("{name}@{v}")));
    }
    keys.sort();
    keys.dedup();
    keys
}

/// The base64 plan of an exported file, and the file with it left out (a golden file
/// reviewers can read). The plan must be the one `wvflow plan --format json` writes.
fn without_plan(text: &str, file: &str, flow: &str) -> String {
    use base64::Engine as _;
    let (blob, redacted) = if text.starts_with("# The flow") && text.contains("PLAN_BASE64 = (") {
        let start = text.find("PLAN_BASE64 = (\n").unwrap() + "PLAN_BASE64 = (\n".len();
        let end = start + text[start..].find(")\n").unwrap();
        let blob: String = text[start..end]
            .lines()
            .map(|l| l.trim().trim_matches('"'))
            .collect();
        (
            blob,
            format!("{}    \"<the plan>\"\n{}", &text[..start], &text[end..]),
        )
    } else {
        let marker = "data: \"";
        let start = text.find(marker).unwrap() + marker.len();
        let end = start + text[start..].find('"').unwrap();
        (
            text[start..end].to_string(),
            format!("{}<the plan>{}", &text[..start], &text[end..]),
        )
    };
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(blob)
        .unwrap();
    let planned = wvflow_at(Path::new("."), &["plan", file, flow, "--format", "json"]);
    let planned: Value = serde_json::from_slice(&planned.stdout).unwrap();
    assert_eq!(
        serde_json::from_slice::<Value>(&decoded).unwrap(),
        planned,
        "{file} {flow}"
    );
    redacted
}

/// Golden files of both targets for every flow of every example, the same at every export;
/// a flow that cannot be exported exactly is refused with its reasons.
#[test]
fn exports_of_every_example_are_golden() {
    for (file, flow) in example_flows() {
        let stem = Path::new(&file)
            .file_stem()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        for target in ["airflow", "argo"] {
            let args = [
                "export",
                &file,
                &flow,
                "--target",
                target,
                "--workspace",
                "/srv/flows",
                "--state",
                "/srv/wvflow-state",
            ];
            let first = wvflow_at(Path::new("."), &args);
            let second = wvflow_at(Path::new("."), &args);
            assert_eq!(first.stdout, second.stdout, "{file} {flow} {target}");
            let name = format!("export_{stem}_{flow}_{target}");
            match first.status.code() {
                Some(0) => {
                    let text = String::from_utf8(first.stdout).unwrap();
                    let warnings = String::from_utf8_lossy(&first.stderr).into_owned();
                    insta::assert_snapshot!(
                        name,
                        format!("{warnings}----\n{}", without_plan(&text, &file, &flow))
                    );
                }
                Some(2) => insta::assert_snapshot!(name, String::from_utf8_lossy(&first.stderr)),
                other => panic!("{file} {flow} {target}: {other:?} {}", text(&first)),
            }
        }
    }
}

/// Runs an exported Workflow through the tests' interpreter of Argo, its state in `state`.
fn run_on_argo(manifest: &Path, state: &Path) -> Output {
    Command::new(python())
        .args([
            "tests/export/argo_check.py",
            "run",
            manifest.to_str().unwrap(),
        ])
        .args(["--wvflow", env!("CARGO_BIN_EXE_wvflow")])
        .args(["--state", state.to_str().unwrap()])
        .args(["--run-time", "2026-11-26T00:00:00Z"])
        .output()
        .unwrap()
}

/// The Python of the export tests' venv (scripts/test.sh makes it).
pub fn python() -> PathBuf {
    let python = Path::new("tests/export/.venv/bin/python");
    assert!(
        python.exists(),
        "tests/export/.venv is missing: scripts/test.sh installs it"
    );
    // Not canonicalized: the venv's python is a link, and the venv is found through it.
    std::env::current_dir().unwrap().join(python)
}

/// Every flow of the examples that export takes, exported for `target` into `folder` as
/// `FLOW.EXTENSION`: each flow with its file.
fn export_examples(target: &str, folder: &Path, extension: &str) -> Vec<(String, PathBuf)> {
    let mut exported = Vec::new();
    for (file, flow) in example_flows() {
        let out = folder.join(format!("{flow}.{extension}"));
        let args = ["export", &file, &flow, "--target", target, "-o"];
        let o = wvflow_at(
            Path::new("."),
            &[&args[..], &[out.to_str().unwrap()]].concat(),
        );
        if o.status.code() == Some(0) {
            exported.push((flow, out));
        }
    }
    exported
}

/// Every exported Argo manifest validates against Argo's schema made strict, and passes the
/// lint of what the schema cannot say; a misspelled key does not.
#[test]
fn argo_exports_validate_against_the_schema() {
    let dir = crate::common::scratch("argo_validate", &[]);
    let files: Vec<String> = export_examples("argo", &dir, "yaml")
        .into_iter()
        .map(|(_, out)| out.display().to_string())
        .collect();
    assert!(files.len() >= 15, "{files:?}");
    let typo = dir.join("typo.yaml");
    let manifest = std::fs::read_to_string(&files[0]).unwrap();
    std::fs::write(
        &typo,
        manifest.replacen("retryStrategy", "retryStrategyy", 1),
    )
    .unwrap();
    let cycle = dir.join("cycle.yaml");
    std::fs::write(
        &cycle,
        manifest.replacen("depends: \"wvflow-init\"", "depends: \"wvflow-finish\"", 1),
    )
    .unwrap();
    // A semaphore whose limit is not in the file's ConfigMap.
    let pooled = files
        .iter()
        .find(|f| std::fs::read_to_string(f).unwrap().contains("semaphores:"))
        .expect("a manifest with a pool");
    let unlimited = dir.join("unlimited.yaml");
    std::fs::write(
        &unlimited,
        std::fs::read_to_string(pooled)
            .unwrap()
            .replacen("gpu: \"2\"", "cpu: \"2\"", 1),
    )
    .unwrap();
    let schema = "tests/export/argo-schema.json".to_string();
    let mut command = Command::new(python());
    command.args(["tests/export/argo_check.py", "validate", &schema]);
    command.args(&files).arg(&typo).arg(&cycle).arg(&unlimited);
    let o = command.output().unwrap();
    let report = text(&o);
    for file in &files {
        assert!(report.contains(&format!("ok {file}\n")), "{report}");
    }
    assert!(
        report.contains(&format!("FAILED {}", typo.display())),
        "{report}"
    );
    assert!(report.contains("retryStrategyy"), "{report}");
    assert!(
        report.contains(&format!("FAILED {}", cycle.display())),
        "{report}"
    );
    assert!(report.contains("cycle through"), "{report}");
    assert!(
        report.contains(&format!("FAILED {}", unlimited.display())),
        "{report}"
    );
    assert!(report.contains("has no limit in the file"), "{report}");
    assert_eq!(o.status.code(), Some(1));
}

/// A JSON argument value as an Argo parameter's text.
fn parameter_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `wvflow export FILE FLOW --target argo --workspace WORKSPACE -o OUT EXTRA...` in `dir`.
fn export_argo(
    dir: &Path,
    (file, flow): (&str, &str),
    workspace: &Path,
    (out, extra): (&Path, &[&str]),
) -> Output {
    let mut args = vec!["export", file, flow, "--target", "argo", "--workspace"];
    args.extend([workspace.to_str().unwrap(), "-o", out.to_str().unwrap()]);
    args.extend(extra);
    wvflow_at(dir, &args)
}

/// Every documented run of the examples, run as Argo would run its exported Workflow (an
/// interpreter of `depends`, retryStrategy and the exit handler over the containers' commands),
/// ends as `wvflow run` ends.
#[test]
fn argo_workflows_run_as_wvflow_runs() {
    let mut compared = 0;
    let mut pooled_runs = 0;
    for (file, args) in crate::examples::documented_runs() {
        let (reference, flow, bound, run_time) = reference_run("argo_reference", &args);
        let dir = examples_copy("argo_run");
        let workspace = dir.join("examples").canonicalize().unwrap();
        let manifest = dir.join("flow.yaml");
        let o = export_argo(&dir, (&file, &flow), &workspace, (&manifest, &[]));
        if o.status.code() == Some(2) {
            continue;
        }
        let state = dir.join("state");
        std::fs::create_dir_all(&state).unwrap();
        let mut command = Command::new(python());
        command.args([
            "tests/export/argo_check.py",
            "run",
            manifest.to_str().unwrap(),
        ]);
        // The flows of the file as WorkflowTemplates: what its calls and jumps start.
        for other in flow_keys(&file) {
            let template = dir.join(format!("{}.template.yaml", other.replace('@', "_v")));
            let o = export_argo(
                &dir,
                (&file, &other),
                &workspace,
                (&template, &["--template"]),
            );
            if o.status.code() == Some(0) {
                command.arg("--template").arg(&template);
            }
        }
        command.args(["--wvflow", env!("CARGO_BIN_EXE_wvflow")]);
        command.envs(examples_server("argo_reference"));
        command.args(["--state", state.to_str().unwrap(), "--run-time", &run_time]);
        for (name, value) in bound.as_object().unwrap() {
            command.args(["-p", &format!("{name}={}", parameter_text(value))]);
        }
        let o = command.output().unwrap();
        assert!(o.status.success(), "{args:?}: {}", text(&o));
        let driven: Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(outcome(&driven), outcome(&reference), "{args:?} on Argo");
        // A pool's semaphore: never more holders at once than the pool's slots.
        for line in String::from_utf8_lossy(&o.stderr).lines() {
            let Some(held) = line.strip_prefix("semaphore wvflow-pools/") else {
                continue;
            };
            let (_, counts) = held.split_once(": ").unwrap();
            let words: Vec<&str> = counts.split(' ').collect();
            let (most, slots): (u64, u64) = (words[0].parse().unwrap(), words[2].parse().unwrap());
            assert!(most >= 1 && most <= slots, "{args:?}: {line}");
            pooled_runs += 1;
        }
        compared += 1;
    }
    // TrainModels' items and Evaluate's stage hold the pool `gpu`.
    assert!(pooled_runs >= 2, "{pooled_runs}");
    assert!(compared >= 15, "{compared}");
}

/// Every exported DAG imports into Airflow's DagBag without an error, and `airflow dags test`
/// of three flows (trigger rules with a fallback, `each` and retries, a saga that compensates)
/// ends as `wvflow run` ends.
#[test]
fn airflow_runs_exported_dags_as_wvflow_runs() {
    let dir = examples_copy("airflow_dags");
    let workspace = dir.join("examples").canonicalize().unwrap();
    let dags = dir.join("dags");
    std::fs::create_dir_all(&dags).unwrap();
    let exported: Vec<String> = export_examples("airflow", &dags, "py")
        .into_iter()
        .map(|(flow, _)| flow)
        .collect();
    let o = Command::new(python())
        .args([
            "tests/export/airflow_check.py",
            "import",
            dags.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let report: Value =
        serde_json::from_slice(&o.stdout).unwrap_or_else(|_| panic!("{}", text(&o)));
    assert_eq!(report["import_errors"], json!({}), "{}", text(&o));
    // A versioned flow's DAG is `Name_vN`.
    let ids: Vec<&str> = report["dags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), exported.len(), "{ids:?} {exported:?}");
    for flow in &exported {
        assert!(
            ids.iter().any(|d| d == flow
                || d.strip_prefix(flow.as_str())
                    .is_some_and(|v| v.starts_with("_v"))),
            "{flow}: {ids:?}"
        );
    }

    for (args, dag) in [
        (
            vec![
                "run",
                "examples/booking_saga.wv",
                "BookTrip(city = \"Reykjavik\")",
            ],
            "BookTrip",
        ),
        (vec!["run", "examples/nightly_etl.wv"], "NightlyOrdersEtl"),
        // A stage fails and the flow ignores it: the run succeeds, on Airflow too.
        (vec!["run", "examples/trigger_rules.wv"], "WarehouseSync"),
        (
            vec!["run", "examples/idempotent_payouts.wv"],
            "SettlePayouts",
        ),
        // Items as mapped tasks: retried, one failing for good within the tolerance.
        (vec!["run", "examples/scatter_gather.wv"], "ProbeEndpoints"),
        // Stages on PostgreSQL, the connector's variable in the workers' environment.
        (
            vec!["run", "examples/warehouse_report.wv"],
            "WarehouseReport",
        ),
        (
            vec![
                "run",
                "examples/booking_saga.wv",
                "BookTrip(decline_card = true)",
            ],
            "BookTrip",
        ),
    ] {
        let args: Vec<String> = args.into_iter().map(String::from).collect();
        let (reference, _, bound, _) = reference_run("airflow_reference", &args);
        let state = dir.join(format!("state-{}", args.len()));
        let _ = std::fs::remove_dir_all(&state);
        std::fs::create_dir_all(&state).unwrap();
        let o = Command::new(python())
            .args([
                "tests/export/airflow_check.py",
                "test",
                dags.to_str().unwrap(),
                dag,
            ])
            .arg(bound.to_string())
            .arg(&state)
            .env("WVFLOW", env!("CARGO_BIN_EXE_wvflow"))
            .env("WVFLOW_WORKSPACE", &workspace)
            .envs(examples_server("airflow_reference"))
            .output()
            .unwrap();
        assert!(o.status.success(), "{args:?}: {}", text(&o));
        let driven: Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(outcome(&driven), outcome(&reference), "{args:?} on Airflow");
        // Airflow's run ends as wvflow's, whatever task failed on the way (`wvflow_result`
        // is its one leaf; `wvflow_finish` is a teardown).
        assert_eq!(
            driven["airflow_run_state"],
            json!([reference["state"]]),
            "{args:?}"
        );
    }
}

/// What an Argo cluster needs beyond the image: an older Argo than the fields need is refused
/// saying which; the pods' service account, the workspace on a volume of its own (files
/// activities write outlive their pod) and a fan-out's limit reach the manifest, which the
/// schema accepts; a fan-out over the limit fails its stage, naming the option, as `wvflow
/// run` runs nothing of it.
#[test]
fn argo_deployment_options_reach_the_workflow() {
    let dir = crate::common::scratch(
        "argo_options",
        &[(
            "flow.wv",
            r#"activity item(n: int) = sh("""echo "{\"n\": $WV_N}" """)
flow Fan = {
  stage rows = from [[1], [2], [3]] as t(n)
  stage items = from rows | each item(_.n)
}
"#,
        )],
    );
    let export = |extra: &[&str]| {
        let mut args = vec!["export", "flow.wv", "--target", "argo"];
        args.extend(extra);
        wvflow_at(&dir, &args)
    };
    let o = export(&["--argo-version", "3.5"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("needs Argo 3.6 or later"), "{}", text(&o));
    let o = export(&["--argo-version", "three"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let o = export(&["--service-account", "Not A Name"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("--service-account"), "{}", text(&o));

    let manifest = dir.join("fan.yaml");
    let o = export(&[
        "--argo-version",
        "v4.1",
        "--service-account",
        "wvflow-runner",
        "--workspace-claim",
        "flows",
        "--workspace",
        dir.to_str().unwrap(),
        "--max-items",
        "2",
        "-o",
        manifest.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let yaml = std::fs::read_to_string(&manifest).unwrap();
    assert!(
        yaml.contains("serviceAccountName: \"wvflow-runner\""),
        "{yaml}"
    );
    assert!(yaml.contains("claimName: \"flows\""), "{yaml}");
    assert!(
        yaml.contains(&format!("mountPath: \"{}\"", dir.display())),
        "{yaml}"
    );
    let o = Command::new(python())
        .args([
            "tests/export/argo_check.py",
            "validate",
            "tests/export/argo-schema.json",
        ])
        .arg(&manifest)
        .output()
        .unwrap();
    assert!(text(&o).contains("ok "), "{}", text(&o));
    // Three items against a limit of two: the stage fails at `prepare`, saying which option.
    let state = dir.join("state");
    std::fs::create_dir_all(&state).unwrap();
    let o = run_on_argo(&manifest, &state);
    assert!(o.status.success(), "{}", text(&o));
    let summary: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(summary["stages"][1]["state"], "failed", "{summary}");
    let error = summary["stages"][1]["error"].as_str().unwrap();
    assert!(
        error.contains("3 items, more than the 2") && error.contains("wvflow export"),
        "{error}"
    );
}

/// `wvflow runs cancel --state` cancels an exported run as `runs cancel` cancels a local one:
/// the running stage stops (its task sees the request within a second), a stage not started
/// is cancelled without running, and `finish` ends the run cancelled after compensating.
#[test]
fn an_exported_run_cancelled_stops_and_compensates() {
    let dir = crate::common::scratch(
        "stage_cancelled",
        &[(
            "flow.wv",
            r#"activity book = sh("""echo x >> booked.log; echo '{"ref": 1}'""")
activity unbook = sh("""cat >/dev/null; echo x >> unbooked.log""")
activity slow = sh("""cat >/dev/null; touch started; sleep 60""")
flow Trip = {
  stage b with { compensate: unbook() } = book()
  stage s = from b | slow()
  stage after [trigger: all_done] = from b | book()
}
"#,
        )],
    );
    let o = wvflow_at(&dir, &["plan", "flow.wv", "Trip", "--format", "json"]);
    std::fs::write(dir.join("plan.json"), &o.stdout).unwrap();
    let state = dir.join("state").display().to_string();
    let task = |args: &[&str]| {
        let mut all: Vec<String> = ["stage"]
            .iter()
            .chain(args)
            .map(|a| a.to_string())
            .collect();
        all.extend(
            [
                "--state",
                &state,
                "--run-id",
                "r1",
                "--cwd",
                dir.to_str().unwrap(),
            ]
            .map(String::from),
        );
        if args[0] != "init" {
            all.extend(["--flow".to_string(), "Trip".to_string()]);
        }
        all
    };
    let run = |args: &[&str]| {
        let args = task(args);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        wvflow_at(&dir, &args)
    };
    let cancel = || {
        wvflow_at(
            &dir,
            &["runs", "cancel", "r1", "--state", &state, "--flow", "Trip"],
        )
    };
    assert_eq!(run(&["init", "--plan", "plan.json"]).status.code(), Some(0));
    assert_eq!(run(&["run", "b"]).status.code(), Some(0));
    let slow = Command::new(env!("CARGO_BIN_EXE_wvflow"))
        .args(task(&["run", "s"]))
        .current_dir(&dir)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !dir.join("started").exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "the slow stage did not start"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let o = cancel();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("is cancelling"), "{}", text(&o));
    // The running stage stops mid-attempt, recorded cancelled (its minute not run out, or it
    // would have succeeded): the engine's skip.
    let o = slow.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(99), "{}", text(&o));
    let stopped: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(stopped["state"], "cancelled", "{stopped}");
    assert_eq!(stopped["attempts"], 1, "{stopped}");
    // A stage not started is cancelled without running.
    let o = run(&["run", "after"]);
    assert_eq!(o.status.code(), Some(99), "{}", text(&o));
    assert_eq!(
        std::fs::read_to_string(dir.join("booked.log")).unwrap(),
        "x\n"
    );
    let o = run(&["finish"]);
    let summary: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(summary["state"], "cancelled", "{summary}");
    assert_eq!(summary["compensations"][0]["stage"], "b", "{summary}");
    assert_eq!(
        std::fs::read_to_string(dir.join("unbooked.log")).unwrap(),
        "x\n"
    );
    // Finished: nothing is asked of it any more.
    let o = cancel();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("has finished"), "{}", text(&o));
}

/// An engine's pool differs from `wvflow run`'s where a stage shows it, and export says so:
/// its wait for a slot is not bounded by the stage's `schedule_timeout`, and Airflow gives
/// the slot back while a task waits for its next try.
#[test]
fn the_engines_pools_say_what_differs() {
    let dir = scratch(
        "export_pool_warnings",
        &[(
            "flow.wv",
            "pool p with { slots: 1 }\nactivity hello = sh(\"\"\"echo '{\"n\": 1}'\"\"\")\nflow F = {\n  stage plain [pool: p] = hello()\n  stage bounded [pool: p, retries: 2, schedule_timeout: 1m] = hello()\n}\n",
        )],
    );
    let warnings = |target: &str| {
        let o = wvflow_at(&dir, &["export", "flow.wv", "--target", target]);
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
        String::from_utf8_lossy(&o.stderr).into_owned()
    };
    let airflow = warnings("airflow");
    assert!(!airflow.contains("stage `plain`"), "{airflow}");
    assert!(
        airflow.contains("warning: stage `bounded`: pool `p` is the engine's: its wait for a slot is not bounded by its `schedule_timeout`; the slot is given back while a task waits for its next try"),
        "{airflow}"
    );
    let argo = warnings("argo");
    assert!(argo.contains("stage `bounded`: pool `p` is the engine's: its wait for a slot is not bounded by its `schedule_timeout`\n"), "{argo}");
}

/// A task the engine cleared (Airflow's "Clear": a later first try, `--first-try`) runs its
/// stage again, where the same try run again ends as it ended; `finish` cleared decides the
/// run again without compensating again what it compensated.
#[test]
fn a_cleared_task_runs_its_stage_again() {
    let dir = crate::common::scratch(
        "stage_cleared",
        &[(
            "flow.wv",
            r#"activity book = sh("""echo x >> booked.log; echo '{"ref": 1}'""")
activity unbook = sh("""cat >/dev/null; echo x >> unbooked.log""")
activity pay = sh("""echo x >> paid.log; if [ ! -e card-ok ]; then exit 3; fi; echo '{"paid": true}'""")
flow Trip = {
  stage b with { compensate: unbook() } = book()
  stage p = from b | pay()
}
"#,
        )],
    );
    let o = wvflow_at(&dir, &["plan", "flow.wv", "Trip", "--format", "json"]);
    std::fs::write(dir.join("plan.json"), &o.stdout).unwrap();
    let state = dir.join("state").display().to_string();
    let task = |args: &[&str]| -> (Option<i32>, Value) {
        let mut all = vec!["stage"];
        all.extend(args);
        all.extend([
            "--state",
            &state,
            "--run-id",
            "r1",
            "--cwd",
            dir.to_str().unwrap(),
        ]);
        if args[0] != "init" {
            all.extend(["--flow", "Trip"]);
        }
        let o = wvflow_at(&dir, &all);
        let summary = serde_json::from_slice(&o.stdout).unwrap_or(Value::Null);
        (o.status.code(), summary)
    };
    let lines =
        |file: &str| std::fs::read_to_string(dir.join(file)).map_or(0, |t| t.lines().count());
    assert_eq!(task(&["init", "--plan", "plan.json"]).0, Some(0));
    assert_eq!(task(&["run", "b"]).0, Some(0));
    assert_eq!(task(&["run", "p"]).0, Some(98));
    let (code, failed) = task(&["finish"]);
    assert_eq!(code, Some(98), "{failed}");
    assert_eq!(failed["state"], "failed");
    assert_eq!((lines("paid.log"), lines("unbooked.log")), (1, 1));

    // The card is fixed; the same try again changes nothing.
    std::fs::write(dir.join("card-ok"), "").unwrap();
    assert_eq!(task(&["run", "p", "--attempt", "2"]).0, Some(98));
    assert_eq!(lines("paid.log"), 1);
    // Cleared: a later first try runs the stage again; `finish` cleared decides again.
    let (code, paid) = task(&["run", "p", "--attempt", "2", "--first-try", "2"]);
    assert_eq!(
        (code, &paid["state"]),
        (Some(0), &json!("success")),
        "{paid}"
    );
    assert_eq!(lines("paid.log"), 2);
    assert_eq!(
        task(&["finish"]).1["state"],
        "failed",
        "not cleared: as decided"
    );
    let (code, again) = task(&["finish", "--first-try", "2"]);
    assert_eq!(code, Some(0), "{again}");
    assert_eq!(again["state"], "success");
    // What the first decision compensated is not compensated again, and is still said.
    assert_eq!(lines("unbooked.log"), 1);
    assert_eq!(again["compensations"][0]["stage"], "b", "{again}");
    assert_eq!(lines("booked.log"), 1);
}

/// `wvflow stage` as an engine can misuse it: a stage run before its upstream, a task run
/// twice, an attempt that may be retried and one that may not, `finish` twice, a flow it cannot
/// run, a state location it cannot use, a run out of time.
#[test]
fn stage_tasks_keep_to_their_contract() {
    let dir = crate::common::scratch(
        "stage_contract",
        &[(
            "flow.wv",
            r#"activity book = sh("""echo x >> booked.log; echo '{"ref": 1}'""")
activity unbook = sh("""cat >/dev/null; echo x >> unbooked.log""")
activity flaky with { retries: 2, retry_delay: 10ms, non_retryable: [3] } = sh("""
  echo "try $WVFLOW_ATTEMPT" >> flaky.log
  if [ "$WVFLOW_ATTEMPT" = 1 ]; then exit 75; fi
  if [ "$WVFLOW_ATTEMPT" = 2 ]; then exit 3; fi
  echo '{"ok": true}'
""")
activity slow = sh("""sleep 30""")
flow Trip = {
  stage b with { compensate: unbook() } = book()
  stage f = from b | flaky()
}
flow Late with { timeout: 1s } = {
  stage s = slow()
}
flow Caller = {
  stage c = call Trip() | call Trip()
}
"#,
        )],
    );
    let plan = |flow: &str| {
        let o = wvflow_at(&dir, &["plan", "flow.wv", flow, "--format", "json"]);
        let path = dir.join(format!("{flow}.json"));
        std::fs::write(&path, o.stdout).unwrap();
        path.display().to_string()
    };
    let state = dir.join("state").display().to_string();
    let task = |run: &str, args: &[&str]| -> (Option<i32>, String) {
        let mut all: Vec<&str> = args.to_vec();
        all.extend([
            "--state",
            &state,
            "--run-id",
            run,
            "--cwd",
            dir.to_str().unwrap(),
        ]);
        // The flow of the run ids below, for the tasks that read the plan `init` kept.
        if !args.contains(&"init") {
            all.extend(["--flow", if run == "r4" { "Late" } else { "Trip" }]);
        }
        let o = wvflow_at(&dir, &all);
        (o.status.code(), text(&o))
    };
    let trip = plan("Trip");
    assert_eq!(task("r1", &["stage", "init", "--plan", &trip]).0, Some(0));
    // Before its upstream: refused, nothing run.
    let (code, out) = task("r1", &["stage", "run", "f"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("started before its upstream stage `b` ended"),
        "{out}"
    );
    assert!(!dir.join("flaky.log").exists());
    // Twice: the activity runs once.
    assert_eq!(task("r1", &["stage", "run", "b"]).0, Some(0));
    assert_eq!(task("r1", &["stage", "run", "b"]).0, Some(0));
    assert_eq!(
        std::fs::read_to_string(dir.join("booked.log")).unwrap(),
        "x\n"
    );
    // Attempt 1 fails with a retryable code: try again; attempt 2 with a non-retryable one:
    // failed for good, recorded with why.
    let (code, out) = task("r1", &["stage", "run", "f", "--attempt", "1"]);
    assert_eq!(code, Some(1), "{out}");
    let (code, out) = task("r1", &["stage", "run", "f", "--attempt", "2"]);
    assert_eq!(code, Some(98), "{out}");
    assert!(out.contains("(exit code 3 is non-retryable)"), "{out}");
    assert!(out.contains("\"attempts\":2"), "{out}");
    assert_eq!(
        std::fs::read_to_string(dir.join("flaky.log")).unwrap(),
        "try 1\ntry 2\n"
    );
    // The run failed: `finish` compensates once, however often it is called.
    let (code, first) = task("r1", &["stage", "finish"]);
    assert_eq!(code, Some(98), "{first}");
    let (code, second) = task("r1", &["stage", "finish"]);
    assert_eq!(code, Some(98), "{second}");
    assert_eq!(first, second);
    assert_eq!(
        std::fs::read_to_string(dir.join("unbooked.log")).unwrap(),
        "x\n"
    );

    // A flow whose stages cannot run as separate tasks is refused before anything runs.
    let caller = plan("Caller");
    let (code, out) = task("r2", &["stage", "init", "--plan", &caller]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("cannot run as separate tasks"), "{out}");
    assert!(
        out.contains("stage `c`: the engine starts a stage's child runs"),
        "{out}"
    );
    // A state location it cannot use says so.
    for (state, why) in [
        ("s3://", "no bucket"),
        (
            "ftp://host/x",
            "the state location is a folder, file:///path or s3://bucket/prefix",
        ),
        ("file://relative", "needs an absolute path"),
    ] {
        let o = wvflow_at(
            &dir,
            &[
                "stage", "init", "--plan", &trip, "--state", state, "--run-id", "r3",
            ],
        );
        assert_eq!(o.status.code(), Some(1));
        assert!(text(&o).contains(why), "{}", text(&o));
    }

    // The flow's timeout stops a running attempt, and the stage fails for good.
    let late = plan("Late");
    assert_eq!(task("r4", &["stage", "init", "--plan", &late]).0, Some(0));
    let started = std::time::Instant::now();
    let (code, out) = task("r4", &["stage", "run", "s"]);
    assert_eq!(code, Some(98), "{out}");
    assert!(
        out.contains("stopped: the flow timeout of 1s passed"),
        "{out}"
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}

/// A fan-out's tasks as an engine can misuse them: an item before `prepare`, an item that is
/// not there, an item retried and run again, one failing for good, one whose task never ran,
/// items out of order; `gather` judges the tolerance from what the items recorded.
#[test]
fn fan_out_tasks_keep_to_their_contract() {
    let dir = crate::common::scratch(
        "fan_contract",
        &[(
            "flow.wv",
            r#"activity pay(n: int) with { retries: 2, retry_delay: 10ms, non_retryable: [3] } = sh("""
  echo "$WV_N $WVFLOW_ATTEMPT" >> pay.log
  if [ "$WV_N" = 2 ] && [ "$WVFLOW_ATTEMPT" = 1 ]; then exit 75; fi
  if [ "$WV_N" = 3 ] && [ -f fail3 ]; then echo "card declined" >&2; exit 3; fi
  printf '{"n": %s}\n' "$WV_N"
""")
flow Fan = {
  stage src = from [[1], [2], [3], [4]] as t(n)
  stage paid [concurrency: 2, tolerated_failures: 1] = from src | each pay(_.n)
  stage total = from paid | select sum(n) as s
}
flow LateFan with { timeout: 1s } = {
  stage src = from [[1], [3]] as t(n)
  stage paid [tolerated_failures: '100%'] = from src | each pay(_.n)
}
flow Keyed = {
  stage src = from [[1], [3]] as t(n)
  stage paid with { idempotency_key: 'pay-' || _.n } = from src | each pay(_.n)
}
"#,
        )],
    );
    for flow in ["Fan", "LateFan", "Keyed"] {
        let o = wvflow_at(&dir, &["plan", "flow.wv", flow, "--format", "json"]);
        std::fs::write(dir.join(format!("{flow}.json")), o.stdout).unwrap();
    }
    let state = dir.join("state").display().to_string();
    let task = |run: &str, args: &[&str]| -> (Option<i32>, String, String) {
        let flow = match run {
            "late" => "LateFan",
            "k1" | "k2" => "Keyed",
            _ => "Fan",
        };
        let mut all: Vec<&str> = vec!["stage"];
        all.extend(args);
        all.extend(["--state", &state, "--run-id", run, "--flow", flow]);
        all.extend(["--cwd", dir.to_str().unwrap()]);
        let o = wvflow_at(&dir, &all);
        let stdout = String::from_utf8_lossy(&o.stdout).into_owned();
        (o.status.code(), stdout, text(&o))
    };
    let pay_log = || std::fs::read_to_string(dir.join("pay.log")).unwrap_or_default();
    std::fs::write(dir.join("fail3"), "").unwrap();
    assert_eq!(task("r1", &["init", "--plan", "Fan.json"]).0, Some(0));
    assert_eq!(task("r1", &["run", "src"]).0, Some(0));
    // Before `prepare`: refused, nothing run.
    let (code, _, out) = task("r1", &["item", "paid", "--item", "0"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("has not been prepared"), "{out}");
    assert_eq!(pay_log(), "");
    // `prepare` prints the items' indices, and only them, on stdout.
    let (code, stdout, out) = task("r1", &["prepare", "paid"]);
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(stdout.trim(), "[0,1,2,3]");
    let (code, _, out) = task("r1", &["item", "paid", "--item", "9"]);
    assert_eq!(code, Some(98), "not to be retried: {out}");
    assert!(
        out.contains("has 4 items (from 0); there is no item 9"),
        "{out}"
    );
    // Item 1 (n = 2) fails its first attempt: try again; its second succeeds; a third call
    // of its task runs nothing.
    let (code, _, out) = task("r1", &["item", "paid", "--item", "1", "--attempt", "1"]);
    assert_eq!(code, Some(1), "{out}");
    assert_eq!(
        task("r1", &["item", "paid", "--item", "1", "--attempt", "2"]).0,
        Some(0)
    );
    assert_eq!(
        task("r1", &["item", "paid", "--item", "1", "--attempt", "3"]).0,
        Some(0)
    );
    assert_eq!(pay_log(), "2 1\n2 2\n");
    // Item 2 (n = 3) exits with a non-retryable code: failed for good at its first attempt.
    let (code, _, out) = task("r1", &["item", "paid", "--item", "2", "--attempt", "1"]);
    assert_eq!(code, Some(98), "{out}");
    assert!(out.contains("card declined"), "{out}");
    assert!(out.contains("non-retryable"), "{out}");
    // Its exit code is kept for `failed(paid)`.
    let record: Value = serde_json::from_slice(
        &std::fs::read(dir.join("state/runs/Fan/r1/stages/paid.item-2.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(record["exit_code"], 3, "{record}");
    assert_eq!(task("r1", &["item", "paid", "--item", "0"]).0, Some(0));
    // Item 3's task never ran: with item 2, two failures, past the one tolerated.
    let (code, stdout, out) = task("r1", &["gather", "paid"]);
    assert_eq!(code, Some(98), "{out}");
    let summary: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(summary["state"], "failed", "{summary}");
    assert!(out.contains("2 of 4"), "{out}");
    // The stage ended: its items' tasks, run late, run nothing.
    assert_eq!(task("r1", &["item", "paid", "--item", "3"]).0, Some(98));
    assert!(!pay_log().contains("4 1"), "{}", pay_log());
    assert_eq!(task("r1", &["run", "total"]).0, Some(99));
    assert_eq!(task("r1", &["finish"]).0, Some(98));

    // Again without the failure, the items last to first: they are gathered in their order.
    std::fs::remove_file(dir.join("fail3")).unwrap();
    std::fs::remove_file(dir.join("pay.log")).unwrap();
    assert_eq!(task("r2", &["init", "--plan", "Fan.json"]).0, Some(0));
    assert_eq!(task("r2", &["run", "src"]).0, Some(0));
    assert_eq!(task("r2", &["prepare", "paid"]).0, Some(0));
    for (item, attempt, end) in [
        ("3", "1", 0),
        ("2", "1", 0),
        ("1", "1", 1),
        ("1", "2", 0),
        ("0", "1", 0),
    ] {
        let args = ["item", "paid", "--item", item, "--attempt", attempt];
        assert_eq!(
            task("r2", &args).0,
            Some(end),
            "item {item}, attempt {attempt}"
        );
    }
    let (code, stdout, out) = task("r2", &["gather", "paid"]);
    assert_eq!(code, Some(0), "{out}");
    let summary: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(
        (&summary["rows"], &summary["attempts"]),
        (&json!(4), &json!(2))
    );
    assert_eq!(task("r2", &["run", "total"]).0, Some(0));
    let (code, stdout, out) = task("r2", &["finish"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(stdout.contains("success"), "{stdout}");
    // The rows of `paid` are item 0's first: what `total` and any reader see.
    let db = dir.join("state/runs/Fan/r2/stages/paid.db");
    let conn = rusqlite::Connection::open(&db).unwrap();
    let table: String = conn
        .query_row(
            "SELECT name FROM sqlite_master WHERE type = 'table'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let ns: Vec<i64> = conn
        .prepare(&format!("SELECT n FROM \"{table}\""))
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(ns, vec![1, 2, 3, 4]);

    // More items than the engine maps: the stage fails at `prepare`, saying which limit.
    assert_eq!(task("r3", &["init", "--plan", "Fan.json"]).0, Some(0));
    assert_eq!(task("r3", &["run", "src"]).0, Some(0));
    let (code, stdout, out) = task("r3", &["prepare", "paid", "--count"]);
    assert_eq!((code, stdout.trim()), (Some(0), "4"), "{out}");
    assert_eq!(task("r4", &["init", "--plan", "Fan.json"]).0, Some(0));
    assert_eq!(task("r4", &["run", "src"]).0, Some(0));
    let (code, stdout, out) = task("r4", &["prepare", "paid", "--max-items", "2"]);
    assert_eq!((code, stdout.trim()), (Some(98), "[]"), "{out}");
    assert!(out.contains("has 4 items, more than the 2 tasks"), "{out}");
    let (code, stdout, _) = task("r4", &["gather", "paid"]);
    assert_eq!(code, Some(98));
    assert!(stdout.contains("\"failed\""), "{stdout}");

    // An item past the flow's timeout is cancelled, never a tolerated failure: the stage
    // fails with the timeout, as `wvflow run` fails it.
    assert_eq!(task("late", &["init", "--plan", "LateFan.json"]).0, Some(0));
    assert_eq!(task("late", &["run", "src"]).0, Some(0));
    assert_eq!(task("late", &["prepare", "paid"]).0, Some(0));
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let (code, _, out) = task("late", &["item", "paid", "--item", "0"]);
    assert_eq!(code, Some(98), "{out}");
    assert!(
        out.contains("stopped: the flow timeout of 1s passed"),
        "{out}"
    );
    let (code, stdout, out) = task("late", &["gather", "paid"]);
    assert_eq!(code, Some(98), "{out}");
    assert!(stdout.contains("\"failed\""), "{stdout}");
    assert!(
        out.contains("stopped: the flow timeout of 1s passed"),
        "{out}"
    );

    // Per-item idempotency keys: a second run calls nothing again and, as `wvflow run`
    // says, made no attempt.
    std::fs::remove_file(dir.join("pay.log")).unwrap();
    for run in ["k1", "k2"] {
        assert_eq!(task(run, &["init", "--plan", "Keyed.json"]).0, Some(0));
        assert_eq!(task(run, &["run", "src"]).0, Some(0));
        assert_eq!(task(run, &["prepare", "paid"]).0, Some(0));
        for item in ["0", "1"] {
            assert_eq!(task(run, &["item", "paid", "--item", item]).0, Some(0));
        }
        let (code, stdout, out) = task(run, &["gather", "paid"]);
        assert_eq!(code, Some(0), "{out}");
        let summary: Value = serde_json::from_str(stdout.trim()).unwrap();
        let attempts = if run == "k1" { 1 } else { 0 };
        assert_eq!(
            (&summary["rows"], &summary["attempts"]),
            (&json!(2), &json!(attempts)),
            "{run}"
        );
    }
    assert_eq!(pay_log(), "1 1\n3 1\n");
}

/// An S3 server on 127.0.0.1 (moto's, from the export tests' venv), stopped when dropped.
pub struct S3Server {
    child: std::process::Child,
    pub endpoint: String,
}

impl S3Server {
    pub fn start() -> S3Server {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(python().parent().unwrap().join("moto_server"))
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("moto_server is installed (scripts/test.sh)");
        let endpoint = format!("http://127.0.0.1:{port}");
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while agent.get(&endpoint).call().is_err() {
            assert!(std::time::Instant::now() < deadline, "moto did not start");
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let made = agent
            .put(format!("{endpoint}/wvflow-state"))
            .send_empty()
            .unwrap();
        assert_eq!(made.status().as_u16(), 200);
        S3Server { child, endpoint }
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The same runs with the state in an S3 bucket (moto's server on 127.0.0.1), every ready
/// stage started at once: workers without a shared disk, writing different stages at once,
/// and the shared workspace database (idempotency records, `save to`) kept in the bucket.
#[test]
fn s3_state_runs_as_wvflow_runs() {
    let server = S3Server::start();
    let pg = examples_server("s3_reference");
    let mut env = vec![
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ENDPOINT_URL", server.endpoint.as_str()),
    ];
    env.extend(pg.iter().map(|(k, v)| (*k, v.as_str())));
    let mut compared = 0;
    for (file, args) in crate::examples::documented_runs() {
        let (reference, flow, bound, run_time) = reference_run("s3_reference", &args);
        let dir = examples_copy("s3_drive");
        let plan = wvflow_at(&dir, &["plan", &file, &flow, "--format", "json"]);
        let o = wvflow_at(&dir, &["export", &file, &flow, "--target", "argo"]);
        if o.status.code() == Some(2) {
            continue;
        }
        std::fs::write(dir.join("plan.json"), plan.stdout).unwrap();
        let state = format!("s3://wvflow-state/runs-{compared}");
        let driven = drive_on(
            &dir,
            (&state, &env),
            &dir.join("plan.json"),
            &bound,
            &run_time,
            Order::AllAtOnce,
        );
        assert_eq!(outcome(&driven), outcome(&reference), "{args:?} on S3");
        compared += 1;
    }
    assert!(compared >= 15, "{compared}");
    // The objects are where docs/export.md says.
    let list = ureq::get(format!(
        "{}/wvflow-state?list-type=2&prefix=runs-0/",
        server.endpoint
    ))
    .call()
    .unwrap()
    .body_mut()
    .read_to_string()
    .unwrap();
    for key in [
        "runs-0/runs/CheckoutExperiment/r1/plan.json",
        "runs-0/runs/CheckoutExperiment/r1/run.json",
        "runs-0/runs/CheckoutExperiment/r1/summary.json",
    ] {
        assert!(list.contains(&format!("<Key>{key}</Key>")), "{list}");
    }
}

/// Two runs whose stages write the workspace database at once, on S3 with no pool given to
/// the engine: both idempotency records are kept (each writer takes its turn with the
/// bucket's copy), so that a later run with either key reuses it and calls nothing.
#[test]
fn s3_workspace_writers_keep_each_others_records_without_a_pool() {
    let server = S3Server::start();
    let env = [
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ENDPOINT_URL", server.endpoint.as_str()),
    ];
    let dir = crate::common::scratch(
        "export_s3_writers",
        &[(
            "pay.wv",
            r#"activity pay(who: string) = sh("""sleep 1; echo "{\"paid\": \"$WV_WHO\"}" """)
flow Pay(who: string) = {
  stage paid with { idempotency_key: who } = pay(who)
}
"#,
        )],
    );
    let plan = wvflow_at(&dir, &["plan", "pay.wv", "--format", "json"]);
    std::fs::write(dir.join("plan.json"), &plan.stdout).unwrap();
    let state = "s3://wvflow-state/writers";
    let task = |run: &str, verb: &[&str]| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_wvflow"));
        command
            .arg("stage")
            .args(verb)
            .args(["--state", state, "--run-id", run, "--flow", "Pay"])
            .envs(env)
            .current_dir(&dir)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        command
    };
    let init = |run: &str, who: &str| {
        let args = json!({ "who": who }).to_string();
        let o = task(run, &["init", "--plan", "plan.json", "--args", &args])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", text(&o));
    };
    for (run, who) in [("r1", "a"), ("r2", "b"), ("r3", "a"), ("r4", "b")] {
        init(run, who);
    }
    // Side by side: each takes the database, writes its record, and puts it back.
    let together: Vec<_> = ["r1", "r2"]
        .map(|run| task(run, &["run", "paid"]).spawn().unwrap())
        .into_iter()
        .collect();
    for child in together {
        let o = child.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", text(&o));
    }
    for run in ["r3", "r4"] {
        let o = task(run, &["run", "paid"]).output().unwrap();
        assert!(o.status.success(), "{}", text(&o));
        let summary: Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(
            summary["reused"], true,
            "{run}: the record was lost: {summary}"
        );
        assert_eq!(summary["attempts"], 0, "{run}: {summary}");
    }
}

/// What the review of the export found, each as a run that must end as `wvflow run` ends:
/// an Argo backoff retried inside the task, a flow out of time, a fork whose branch fails
/// compensated, `failed(stage)` after a fan-out past its tolerance, an `activate` before a
/// flaky call, a parameter that defaults to null, a flow in a subfolder of its workspace, a
/// `first_success` race whose loser is still running when the winner records its success,
/// the flow's hooks on a success and on a failure.
#[test]
fn exported_runs_end_as_wvflow_runs_in_the_corners() {
    let dir = crate::common::scratch(
        "export_corners",
        &[
            ("data.csv", "n\n1\n"),
            (
                "sub/flows.wv",
                r#"activity lin with { retries: 4, retry_delay: 10ms, backoff: linear } = sh("""
  if [ "$WVFLOW_ATTEMPT" -lt 3 ]; then exit 75; fi
  echo '{"ok": true}'
""")
activity undo = sh("""cat >/dev/null""")
activity slow = sh("""sleep 3""")
activity item(n: int) = sh("""if [ "$WV_N" = 2 ]; then exit 4; fi; echo "{\"n\": $WV_N}" """)
activity double(n: int) = sh("""echo "{\"n\": $WV_N}"; echo "{\"n\": $WV_N}" """)
activity flaky with { retries: 2, retry_delay: 10ms } = sh("""
  if [ "$WVFLOW_ATTEMPT" = 1 ]; then exit 75; fi
  echo '{"ok": true}'
""")
activity fail = sh("""exit 1""")
activity hook(event: string) = sh("""cat >/dev/null; echo "$WV_EVENT" >> hooks.log""")
activity quote(p: int) = sh("""
  if [ "$WV_P" = 2 ]; then touch slow-started; sleep 60; fi
  # The winner answers once the loser runs, so that the loser is stopped mid-attempt, whatever
  # the machine's load (a bound keeps a runner that starts them in turn from waiting forever).
  n=0; while [ ! -e slow-started ] && [ $n -lt 600 ]; do sleep 0.05; n=$((n+1)); done
  echo "{\"p\": $WV_P}"
""")
flow Linear = {
  stage s = lin()
}
flow Late with { timeout: 1s } = {
  stage a with { compensate: undo() } = from [[1]] as t(n)
  stage b = from a | slow()
  stage c = from b | select 1 as x
}
flow Forked = {
  stage f with { compensate: undo() } = from [[1]] as t(n) | fork {
    stage left = from f | fail()
    stage right = from f | select n
  }
}
flow Items = {
  stage rows = from [[1], [2], [3]] as t(n)
  stage items = from rows | each item(_.n)
  stage what [trigger: all_done] = from failed(items)
}
flow NoItems = {
  stage rows = from [[1]] as t(n) | where n > 5
  stage items = from rows | each item(_.n)
  stage after [trigger: all_done] = from rows | select count(*) as c
}
flow SkippedFan = {
  stage rows = from [[1]] as t(n)
  stage items [trigger: all_failed] = from rows | each item(_.n)
  stage after [trigger: all_done] = from rows | select n
}
flow Posts = {
  stage p = from [[1]] as t(n) | activate('file', path: 'posted.ndjson') | flaky()
}
flow TwoEach = {
  stage twice = from [[1], [3]] as t(n) | each item(_.n) | each double(_.n)
}
flow PostsEach = {
  stage p = from [[1], [3]] as t(n) | activate('file', path: 'each-posted.ndjson') | each item(_.n)
}
flow Nullable(note: string = null) = {
  stage s = from [[1]] as t(n) | select coalesce(note, 'none') as note
}
flow Local = {
  stage d = from 'data.csv'
}
flow Hooked with { on_success: hook('success'), on_failure: hook('failure'), on_finish: hook('finish') } = {
  stage s = from [[1]] as t(n)
}
flow HookedFail with { on_success: hook('success'), on_failure: hook('failure'), on_finish: hook('finish') } = {
  stage s = fail()
}
flow Race = {
  stage fast [on_failure: ignore] = quote(1)
  stage slow [on_failure: ignore] = quote(2)
  stage first [trigger: first_success] = merge fast, slow
  stage after = from first | select p
}
"#,
            ),
        ],
    );
    for flow in [
        "Linear",
        "Late",
        "Forked",
        "Items",
        "NoItems",
        "SkippedFan",
        "Posts",
        "PostsEach",
        "TwoEach",
        "Nullable",
        "Local",
        "Race",
        "Hooked",
        "HookedFail",
    ] {
        // The reference, in a copy of its own.
        let reference_dir = dir.join(format!("ref-{flow}"));
        crate::common::copy_dir(&dir.join("sub"), &reference_dir.join("sub"));
        std::fs::copy(dir.join("data.csv"), reference_dir.join("data.csv")).unwrap();
        let o = wvflow_at(&reference_dir, &["run", ".", flow, "--format", "json"]);
        let reference: Value = serde_json::from_slice(&o.stdout)
            .unwrap_or_else(|e| panic!("{flow}: {e} {}", text(&o)));
        // Through the Argo interpreter, from the workspace folder (the flow is in `sub/`).
        let run_dir = dir.join(format!("argo-{flow}"));
        crate::common::copy_dir(&dir.join("sub"), &run_dir.join("sub"));
        std::fs::copy(dir.join("data.csv"), run_dir.join("data.csv")).unwrap();
        let manifest = run_dir.join("flow.yaml");
        let o = wvflow_at(
            &run_dir,
            &[
                "export",
                ".",
                flow,
                "--target",
                "argo",
                "--workspace",
                run_dir.to_str().unwrap(),
                "-o",
                manifest.to_str().unwrap(),
            ],
        );
        if flow == "Nullable" {
            assert_eq!(o.status.code(), Some(2));
            assert!(text(&o).contains("defaults to null"), "{}", text(&o));
            continue;
        }
        assert_eq!(o.status.code(), Some(0), "{flow}: {}", text(&o));
        // Items after an `activate` run inside the stage's task, said so.
        assert_eq!(
            text(&o).contains("its items run inside the stage's task"),
            flow == "PostsEach",
            "{flow}: {}",
            text(&o)
        );
        let state = run_dir.join("state");
        std::fs::create_dir_all(&state).unwrap();
        let o = run_on_argo(&manifest, &state);
        assert!(o.status.success(), "{flow}: {}", text(&o));
        let driven: Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(outcome(&driven), outcome(&reference), "{flow} on Argo");
        if flow == "TwoEach" {
            assert_eq!(driven["stages"][0]["rows"], 4, "{driven}");
        }
        if flow == "Items" {
            assert_eq!(driven["stages"][2]["rows"], 1, "{driven}");
        }
        // The flow's hooks fire as in `wvflow run`: the same ones, in the same order.
        let hooks = |dir: &Path| std::fs::read_to_string(dir.join("sub/hooks.log")).ok();
        assert_eq!(hooks(&run_dir), hooks(&reference_dir), "{flow}: hooks");
        if flow.starts_with("Hooked") {
            assert!(
                hooks(&run_dir).is_some_and(|h| h.lines().count() == 2),
                "{flow}"
            );
        }
        if flow == "Posts" || flow == "PostsEach" {
            let (file, rows) = if flow == "Posts" {
                ("posted", 1)
            } else {
                ("each-posted", 2)
            };
            let posted =
                std::fs::read_to_string(run_dir.join(format!("sub/{file}.ndjson"))).unwrap();
            assert_eq!(posted.lines().count(), rows, "posted once: {posted}");
        }
    }
    // A null default travels in the plan and in an Airflow DAG.
    let o = wvflow_at(&dir, &["export", "sub", "Nullable", "--target", "airflow"]);
    assert!(
        text(&o).contains("\"note\": Param(None, type=[\"string\", \"null\"])"),
        "{}",
        text(&o)
    );
    let plan_file = dir.join("nullable.json");
    std::fs::write(
        &plan_file,
        wvflow_at(&dir, &["plan", "sub", "Nullable", "--format", "json"]).stdout,
    )
    .unwrap();
    let state = dir.join("null-state").display().to_string();
    let o = wvflow_at(
        &dir,
        &[
            "stage",
            "init",
            "--plan",
            plan_file.to_str().unwrap(),
            "--state",
            &state,
            "--run-id",
            "r",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
}

/// Runs of two flows under the same engine run id (two DAGs on one schedule) keep apart; names
/// an engine cannot be given as they are, and a scheduled flow with a required parameter,
/// are refused.
#[test]
fn exported_runs_keep_apart_and_odd_names_are_refused() {
    let dir = crate::common::scratch(
        "export_apart",
        &[(
            "flows.wv",
            "flow Alpha = {\n  stage a = from [[1], [2]] as t(n)\n}\nflow Beta = {\n  stage a = from [[1]] as t(n) | where n > 5\n}\nflow Odd = {\n  stage `x{{ 7*7 }}` = from [[1]] as t(n)\n}\nflow Reserved = {\n  stage wvflow_init = from [[1]] as t(n)\n}\nflow Daily(region: string) with { schedule: cron('0 0 * * *') } = {\n  stage a = from [[1]] as t(n) | select region\n}\n",
        )],
    );
    let state = dir.join("state").display().to_string();
    let id = "scheduled__2026-11-27T00:00:00+00:00";
    let mut rows = Vec::new();
    for flow in ["Alpha", "Beta"] {
        let plan = dir.join(format!("{flow}.json"));
        std::fs::write(
            &plan,
            wvflow_at(&dir, &["plan", ".", flow, "--format", "json"]).stdout,
        )
        .unwrap();
        let common = ["--state", state.as_str(), "--run-id", id];
        let mut init = vec!["stage", "init", "--plan", plan.to_str().unwrap()];
        init.extend(common);
        assert_eq!(wvflow_at(&dir, &init).status.code(), Some(0));
        let mut run = vec!["stage", "run", "a", "--flow", flow];
        run.extend(common);
        assert_eq!(wvflow_at(&dir, &run).status.code(), Some(0));
        let mut finish = vec!["stage", "finish", "--flow", flow];
        finish.extend(common);
        let o = wvflow_at(&dir, &finish);
        let summary: Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(summary["flow"], flow);
        rows.push(summary["stages"][0]["rows"].clone());
    }
    assert_eq!(rows, [json!(2), json!(0)]);
    for (flow, why) in [
        ("Odd", "has only letters, digits and `_`"),
        (
            "Reserved",
            "names beginning with `wvflow_` are the exported file's own tasks",
        ),
        (
            "Daily",
            "parameter `region` has no default, and the flow is scheduled",
        ),
    ] {
        for target in ["airflow", "argo"] {
            let o = wvflow_at(&dir, &["export", ".", flow, "--target", target]);
            assert_eq!(o.status.code(), Some(2), "{flow} {target}");
            assert!(text(&o).contains(why), "{flow} {target}: {}", text(&o));
        }
    }
}

/// The plan an exported DAG's tasks read cannot be chosen by another local user: the DAG
/// keeps it in a folder only its user can write (a file put at the old shared name, or a
/// folder of the new name that others can write, is never read), and `wvflow stage` refuses
/// a plan whose digest is not the one the DAG carries.
#[test]
fn an_exported_dag_reads_only_its_own_plan() {
    let dir = scratch(
        "dag_plan_file",
        &[(
            "flow.wv",
            "activity hello = sh(\"\"\"echo '{\"hi\": 1}'\"\"\")\nflow F = {\n  stage s = hello()\n}\n",
        )],
    );
    let o = wvflow_at(
        &dir,
        &[
            "export", "flow.wv", "F", "--target", "airflow", "-o", "dag.py",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let dag = std::fs::read_to_string(dir.join("dag.py")).unwrap();
    // Only the helpers, run with the plain Python of the venv: no Airflow needed for them.
    let start = dag.find("def plan_file()").unwrap();
    let end = dag.find("def task_env()").unwrap();
    let plan_line = dag
        .lines()
        .position(|l| l.starts_with("PLAN_BASE64"))
        .unwrap();
    let plan_block: String = dag
        .lines()
        .skip(plan_line)
        .take_while(|l| !l.is_empty())
        .map(|l| format!("{l}\n"))
        .collect();
    let tmp = dir.join("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let script = format!(
        "import base64, hashlib, os, stat, sys, tempfile\ntempfile.tempdir = {tmp:?}\n{plan_block}\n{}\npath, digest = plan_file()\nprint(path)\nprint(digest)\n",
        &dag[start..end],
        tmp = tmp.display().to_string()
    );
    let run = || {
        let o = Command::new(python())
            .arg("-c")
            .arg(&script)
            .output()
            .unwrap();
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            text(&o),
        )
    };
    let (code, out, all) = run();
    assert_eq!(code, Some(0), "{all}");
    let (path, digest) = out.trim().split_once('\n').unwrap();
    let folder = Path::new(path).parent().unwrap();
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(folder).unwrap().permissions().mode();
    assert_eq!(mode & 0o077, 0, "{:o}", mode);
    // A file replaced in that folder is written again before it is read.
    std::fs::write(path, "{\"evil\": true}").unwrap();
    assert_eq!(run().0, Some(0));
    assert_ne!(std::fs::read_to_string(path).unwrap(), "{\"evil\": true}");
    // A folder others can write is not used.
    std::fs::set_permissions(folder, std::fs::Permissions::from_mode(0o777)).unwrap();
    let (code, _, all) = run();
    assert_ne!(code, Some(0));
    assert!(all.contains("only this user can write"), "{all}");
    std::fs::set_permissions(folder, std::fs::Permissions::from_mode(0o700)).unwrap();

    // The task refuses a plan that is not the DAG's.
    let other = dir.join("other.json");
    std::fs::write(
        &other,
        &wvflow_at(&dir, &["plan", "flow.wv", "F", "--format", "json"]).stdout,
    )
    .unwrap();
    std::fs::write(
        &other,
        std::fs::read_to_string(&other)
            .unwrap()
            .replace("echo", "echo "),
    )
    .unwrap();
    let init = |plan: &Path| {
        Command::new(env!("CARGO_BIN_EXE_wvflow"))
            .args(["stage", "init", "--plan", plan.to_str().unwrap(), "--state"])
            .arg(dir.join("state"))
            .args(["--run-id", "r1"])
            .env("WVFLOW_PLAN_SHA256", digest)
            .current_dir(&dir)
            .output()
            .unwrap()
    };
    let o = init(&other);
    assert_ne!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        text(&o).contains("not the plan of this DAG"),
        "{}",
        text(&o)
    );
    assert!(!dir.join("state").exists());
    let o = init(Path::new(path));
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
}

/// `wvflow export` run inside the flow's folder with a bare file name exports what it does
/// from anywhere else (the workspace given, an absolute state), and an option that could
/// break out of its place in the file (a newline, a quote) is refused with its name.
#[test]
fn export_from_the_flows_folder_and_odd_options() {
    let dir = scratch(
        "export_here",
        &[(
            "flow.wv",
            "activity hello = sh(\"\"\"echo '{\"hi\": 1}'\"\"\")\nflow F = {\n  stage s = hello()\n}\n",
        )],
    );
    let argo = wvflow_at(
        &dir,
        &[
            "export",
            "flow.wv",
            "F",
            "--target",
            "argo",
            "--workspace",
            "/w",
        ],
    );
    assert_eq!(argo.status.code(), Some(0), "{}", text(&argo));
    let yaml = String::from_utf8_lossy(&argo.stdout);
    assert!(yaml.contains("workingDir: \"/w\""), "{yaml}");
    assert!(!yaml.contains(&dir.display().to_string()), "{yaml}");
    let airflow = wvflow_at(&dir, &["export", "flow.wv", "F", "--target", "airflow"]);
    let python = String::from_utf8_lossy(&airflow.stdout);
    let state = format!(
        "STATE = os.environ.get(\"WVFLOW_STATE\", \"{}\")",
        dir.join(".wvflow/state").display()
    );
    assert!(python.contains(&state), "{python}");
    for (option, value) in [
        ("--volume-claim", "x\nkind: Evil"),
        ("--volume-claim", "Not_A_Claim"),
        ("--image", "wvflow:1\nkind: Evil"),
        ("--workspace", "/w\"\nevil"),
        ("--state", "/s\n"),
        ("--wvflow", "wvflow\u{7}"),
    ] {
        let o = wvflow_at(
            &dir,
            &["export", "flow.wv", "F", "--target", "argo", option, value],
        );
        assert_eq!(o.status.code(), Some(2), "{option} {value:?}: {}", text(&o));
        assert!(text(&o).contains(option), "{option}: {}", text(&o));
    }
}

/// The delay before each retry that an exported Airflow DAG computes (its `WvflowRetry`, run
/// in Python) is the one `wvflow run` waits (`retry_rule`), for every backoff kind, a
/// coefficient, a cap and large retry numbers.
#[test]
fn the_dags_retry_delays_are_wvflows() {
    let dir = scratch(
        "dag_retry_delays",
        &[(
            "flow.wv",
            "activity work = sh(\"\"\"echo '{}'\"\"\")\nflow F = {\n  stage c [retries: 9, retry_delay: 2s, backoff: constant] = work()\n  stage l [retries: 9, retry_delay: 1500ms, backoff: linear] = work()\n  stage e [retries: 9, retry_delay: 1s, backoff: exponential, backoff_coefficient: 1.5] = work()\n  stage x [retries: 30, retry_delay: 250ms, backoff: exponential, max_retry_delay: 1h] = work()\n}\n",
        )],
    );
    let o = wvflow_at(
        &dir,
        &[
            "export", "flow.wv", "F", "--target", "airflow", "-o", "dag.py",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let script = r#"
import json, random, re, sys
from datetime import timedelta
class RetryPolicy: pass
RetryDecision = None
dag = open(sys.argv[1]).read()
start = dag.index("class WvflowRetry")
end = dag.index("\n\n\n", start) if "\n\n\n" in dag[start:] else len(dag)
exec(dag[start:end])
out = []
for call in sorted(set(re.findall(r"WvflowRetry\(\d[^)]*\)", dag))):
    policy = eval(call)
    out.append({"policy": policy.serialize(), "delays": [policy.delay_ms(n) for n in (1, 2, 3, 5, 10, 30)]})
print(json.dumps(out))
"#;
    let o = Command::new(python())
        .arg("-c")
        .arg(script)
        .arg(dir.join("dag.py"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let policies: Vec<Value> = serde_json::from_slice(&o.stdout).unwrap();
    let kinds: std::collections::BTreeSet<&str> = policies
        .iter()
        .map(|p| p["policy"]["backoff"].as_str().unwrap())
        .collect();
    assert_eq!(kinds.len(), 3, "every backoff kind: {policies:?}");
    for p in &policies {
        let policy = &p["policy"];
        let rule = wvflow::retry_rule::RetryDelays {
            first: std::time::Duration::from_millis(policy["first_ms"].as_u64().unwrap()),
            backoff: wvflow::retry_rule::Backoff::parse(policy["backoff"].as_str().unwrap())
                .unwrap(),
            coefficient: policy["coefficient"].as_f64().unwrap(),
            cap: policy["cap_ms"]
                .as_u64()
                .map(std::time::Duration::from_millis),
        };
        for (n, python_ms) in [1, 2, 3, 5, 10, 30]
            .iter()
            .zip(p["delays"].as_array().unwrap())
        {
            let wvflow_ms = rule.before_retry(*n).as_secs_f64() * 1000.0;
            let python_ms = python_ms.as_f64().unwrap();
            assert!(
                (wvflow_ms - python_ms).abs() <= 1e-6 * wvflow_ms.max(1.0),
                "{policy}: retry {n}: wvflow {wvflow_ms} ms, the DAG {python_ms} ms"
            );
        }
    }
}

/// The task of a stage with a `pool` takes none of wvflow's own slots: the engine's pool
/// (Airflow's pool, Argo's semaphore) is what the stage holds on an engine. Every slot of the
/// pool is held in the state's workspace database, as `wvflow run` would hold it, and the
/// stage's task (whose `schedule_timeout` would end a wait for a slot) still runs.
#[test]
fn a_pooled_stage_task_takes_no_wvflow_slot() {
    let dir = scratch(
        "stage_pool",
        &[(
            "examples/flow.wv",
            "pool gpu with { slots: 1 }\nactivity hello = sh(\"\"\"echo '{\"hi\": 1}'\"\"\")\nflow F = {\n  stage s [pool: gpu, schedule_timeout: 1s] = hello()\n  stage t [pool: gpu, schedule_timeout: 1s] = from [[1], [2]] as x(n) | each hello()\n}\n",
        )],
    );
    let plan = dir.join("plan.json");
    std::fs::write(
        &plan,
        wvflow_at(&dir, &["plan", "examples/flow.wv", "F", "--format", "json"]).stdout,
    )
    .unwrap();
    let state = dir.join("state");
    std::fs::create_dir_all(&state).unwrap();
    // The pool's one slot, held by this process for the whole test.
    let clock = wvflow::runtime::clock::SystemClock::default();
    let holder = wvflow::runtime::pools::Holder {
        run_id: "another-run",
        stage: "s",
        item: None,
    };
    let pool = wvflow::plan::ir::PoolPlan {
        name: "gpu".into(),
        slots: 1,
    };
    let never = std::sync::atomic::AtomicBool::new(false);
    let _slot = wvflow::runtime::pools::acquire(
        &state.join("workspace.db"),
        &pool,
        &holder,
        (&never, None),
        &clock,
        |_| {},
    )
    .unwrap();
    let summary = drive(&dir, &plan, &json!({}), "2026-11-27T00:00:00Z", Order::Plan);
    assert_eq!(summary["state"], "success", "{summary}");
    assert_eq!(summary["stages"][0]["state"], "success", "{summary}");
    assert_eq!(summary["stages"][1]["rows"], 2, "{summary}");
}

/// A flow whose stages hold a pool, on a real Airflow: with the pool as the flow declares it,
/// `airflow dags test` ends as `wvflow run` ends (its items mapped in the pool, the pool
/// checked through the REST API first); without the pool, or with fewer slots, the run fails
/// at its first task, saying so, and no stage runs (the scheduler would leave the pool's tasks
/// waiting). `airflow dags test` itself runs a task whatever its pool: the check is what
/// stops it.
#[test]
fn airflow_checks_the_pools_a_dag_holds() {
    let dir = examples_copy("airflow_pools");
    let workspace = dir.join("examples").canonicalize().unwrap();
    let dags = dir.join("dags");
    std::fs::create_dir_all(&dags).unwrap();
    let o = wvflow_at(
        &dir,
        &[
            "export",
            "examples/gpu_pool.wv",
            "TrainModels",
            "--target",
            "airflow",
            "-o",
            dags.join("train.py").to_str().unwrap(),
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let dag = std::fs::read_to_string(dags.join("train.py")).unwrap();
    assert!(
        dag.contains("#   airflow pools set gpu 2 \"wvflow pool gpu\"\n"),
        "the header says which pools to make"
    );
    let args: Vec<String> = ["run", "examples/gpu_pool.wv", "TrainModels"]
        .map(String::from)
        .to_vec();
    let (reference, _, _, _) = reference_run("airflow_pools_reference", &args);
    let run = |name: &str, pools: &[&str]| {
        let state = dir.join(format!("state-{name}"));
        let _ = std::fs::remove_dir_all(&state);
        std::fs::create_dir_all(&state).unwrap();
        let mut command = Command::new(python());
        command
            .args(["tests/export/airflow_check.py", "test"])
            .args([dags.to_str().unwrap(), "TrainModels", "{}"])
            .arg(&state)
            .arg("--api")
            .env("WVFLOW", env!("CARGO_BIN_EXE_wvflow"))
            .env("WVFLOW_WORKSPACE", &workspace);
        for pool in pools {
            command.args(["--pool", pool]);
        }
        (command.output().unwrap(), state)
    };
    let (o, _) = run("declared", &["gpu=2"]);
    assert!(o.status.success(), "{}", text(&o));
    let driven: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        outcome(&driven),
        outcome(&reference),
        "TrainModels on Airflow"
    );
    for (name, pools, why) in [
        (
            "missing",
            &[][..],
            "pool `gpu` does not exist in Airflow: create it with `airflow pools set gpu 2 \"wvflow pool gpu\"`",
        ),
        (
            "smaller",
            &["gpu=1"][..],
            "pool `gpu` has 1 slots in Airflow, the flow declares 2",
        ),
    ] {
        let (o, state) = run(name, pools);
        assert_eq!(o.status.code(), Some(1), "{name}: {}", text(&o));
        assert!(text(&o).contains(why), "{name}: {}", text(&o));
        // Nothing ran: not even `wvflow_init`, which makes the run's folder.
        assert!(!state.join("runs").exists(), "{name}: {}", text(&o));
    }
}

/// A stage that holds a pool and writes the workspace database: on Argo its template takes
/// both the pool's semaphore and the writers' mutex; an Airflow task holds one pool, so the
/// flow is refused, saying why, unless the stage fans out (its items hold the flow's pool,
/// its gathering task the writers').
#[test]
fn a_pooled_stage_that_writes_the_workspace() {
    let dir = scratch(
        "export_two_pools",
        &[(
            "flow.wv",
            "pool p with { slots: 1 }\nactivity hello = sh(\"\"\"echo '{\"n\": 1}'\"\"\")\nflow Saves = {\n  stage s [pool: p] = hello()\n  stage kept [pool: p] = from s | save to kept_rows\n}\nflow FanSaves = {\n  stage t [pool: p, idempotency_key: 'k-' || _.n] = from [[1], [2]] as x(n) | each hello()\n}\n",
        )],
    );
    // The task holds the flow's pool; the workspace's writers take turns without a pool of
    // their own (SQLite's lock in a folder, the workspace's lease in a bucket).
    let o = wvflow_at(&dir, &["export", "flow.wv", "Saves", "--target", "airflow"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let dag = String::from_utf8_lossy(&o.stdout);
    let kept = &dag[dag.find("tasks[\"kept\"] = BashOperator(").unwrap()..];
    let kept = &kept[..kept.find("\n    )\n").unwrap()];
    assert!(kept.contains("pool=\"p\",\n        pool_slots=1,"), "{dag}");
    assert!(!kept.contains("WORKSPACE_POOL"), "{dag}");
    let o = wvflow_at(
        &dir,
        &["export", "flow.wv", "FanSaves", "--target", "airflow"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let dag = String::from_utf8_lossy(&o.stdout);
    let items = &dag[dag.find("BashOperator.partial(").unwrap()..dag.find(".expand(").unwrap()];
    assert!(
        items.contains("pool=\"p\",\n        pool_slots=1,"),
        "{dag}"
    );
    let gather = &dag[dag.find("tasks[\"t\"] = BashOperator(").unwrap()..];
    assert!(gather.contains("pool=WORKSPACE_POOL,"), "{dag}");
    let manifest = dir.join("saves.yaml");
    let o = wvflow_at(
        &dir,
        &[
            "export",
            "flow.wv",
            "Saves",
            "--target",
            "argo",
            "-o",
            manifest.to_str().unwrap(),
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let yaml = std::fs::read_to_string(&manifest).unwrap();
    assert!(
        yaml.contains("    synchronization:\n      mutexes:\n      - name: \"wvflow-workspace\"\n      semaphores:\n      - configMapKeyRef:\n          name: \"wvflow-pools\"\n          key: \"p\"\n"),
        "{yaml}"
    );
    let o = Command::new(python())
        .args(["tests/export/argo_check.py", "validate"])
        .arg("tests/export/argo-schema.json")
        .arg(&manifest)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
}
