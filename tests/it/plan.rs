//! Lowering to plans: every example lowers, deterministically, and round-trips through JSON;
//! the examples' plans are snapshots; retry schedules follow the documented backoff; the graph
//! outputs render with Graphviz and parse with Mermaid's own parser.

use std::path::{Path, PathBuf};
use std::process::Command;
use wvflow::check::Index;
use wvflow::plan::{Plan, lower, render};
use wvflow::workspace::Workspace;

fn examples() -> Workspace {
    let (workspace, errors) = Workspace::load(&[PathBuf::from("examples")]);
    assert!(errors.is_empty());
    workspace
}

fn plans(workspace: &Workspace) -> Vec<Plan> {
    let index = Index::new(workspace);
    index
        .flows
        .iter()
        .map(|&def| lower(workspace, &index, def))
        .collect()
}

#[test]
fn every_example_flow_lowers_deterministically_and_round_trips() {
    let workspace = examples();
    let first = plans(&workspace);
    let second = plans(&examples());
    assert!(first.len() >= 14, "{} flows", first.len());
    for (a, b) in first.iter().zip(&second) {
        let json = render::json(a);
        assert_eq!(
            json,
            render::json(b),
            "{}: plans differ between runs",
            a.flow.name
        );
        let back: Plan = serde_json::from_str(&json).expect("the plan reads back");
        assert_eq!(
            &back, a,
            "{}: JSON round trip changed the plan",
            a.flow.name
        );
        assert_eq!(a.plan_version, wvflow::plan::ir::PLAN_VERSION);
        // Topological order: every upstream stage comes earlier.
        for (i, stage) in a.flow.stages.iter().enumerate() {
            for edge in &stage.upstream {
                let at = a
                    .flow
                    .stages
                    .iter()
                    .position(|s| s.id == edge.stage)
                    .expect("upstream exists");
                assert!(
                    at < i,
                    "{}: {} before its upstream {}",
                    a.flow.name,
                    stage.id,
                    edge.stage
                );
            }
        }
    }
}

#[test]
fn example_plans_are_snapshots() {
    let workspace = examples();
    let index = Index::new(&workspace);
    // wvflow.toml is a source too, with no flows: no plan.
    for (id, file) in workspace
        .sources
        .iter()
        .filter(|(_, f)| f.name.ends_with(".wv"))
    {
        let text: String = index
            .flows
            .iter()
            .filter(|d| d.file == id)
            .map(|&d| render::text(&lower(&workspace, &index, d)))
            .collect::<Vec<_>>()
            .join("\n");
        let name = Path::new(&file.name)
            .file_stem()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        insta::with_settings!({ snapshot_suffix => name, omit_expression => true }, {
            insta::assert_snapshot!("plan", text);
        });
    }
}

fn plan_of(src: &str) -> Plan {
    let mut workspace = Workspace::default();
    workspace.add("test.wv".into(), src.to_string());
    assert!(workspace.diagnostics().next().is_none());
    assert!(
        wvflow::check::check(&workspace)
            .diagnostics
            .iter()
            .all(|d| !d.is_error())
    );
    plans(&workspace).remove(0)
}

fn delays(policy: &str) -> Vec<u64> {
    let src =
        format!("activity a = exec('true')\nflow f = {{ stage s with {{ {policy} }} = a() }}\n");
    let plan = plan_of(&src);
    let retry = &plan.flow.stages[0].retry;
    (1..retry.attempts)
        .map(|n| retry.delays().before_retry(n).as_millis() as u64)
        .collect()
}

#[test]
fn retry_schedules_follow_the_documented_backoff() {
    // constant: d
    assert_eq!(
        delays("retries: 3, retry_delay: 2s, backoff: constant"),
        [2000, 2000, 2000]
    );
    // linear: d * n
    assert_eq!(
        delays("retries: 4, retry_delay: 1s, backoff: linear"),
        [1000, 2000, 3000, 4000]
    );
    // exponential: d * coefficient^(n-1); the default backoff and coefficient 2
    assert_eq!(
        delays("retries: 4, retry_delay: 500ms"),
        [500, 1000, 2000, 4000]
    );
    assert_eq!(
        delays("retries: 3, retry_delay: 1s, backoff_coefficient: 3"),
        [1000, 3000, 9000]
    );
    // with a cap
    assert_eq!(
        delays("retries: 5, retry_delay: 1s, backoff: exponential, max_retry_delay: 5s"),
        [1000, 2000, 4000, 5000, 5000]
    );
    assert_eq!(
        delays("retries: 4, retry_delay: 2s, backoff: linear, max_retry_delay: 5s"),
        [2000, 4000, 5000, 5000]
    );
    assert_eq!(
        delays("retries: 2, retry_delay: 3s, backoff: constant, max_retry_delay: 3s"),
        [3000, 3000]
    );
    // no retries: one attempt, no delay; the default first delay is 1s
    assert_eq!(delays("timeout: 5s"), Vec::<u64>::new());
    assert_eq!(delays("retries: 1"), [1000]);
}

#[test]
fn activity_defaults_apply_and_stage_keys_override_them() {
    let plan = plan_of(
        "activity charge(id: string) with { retries: 2, retry_delay: 5s, timeout: 30s, non_retryable: [3] } = exec('bin/charge', '--id', id)\n\
         flow f(order_id: string = 'A1') = { stage s [retries: 4] = charge(order_id) }\n",
    );
    let stage = &plan.flow.stages[0];
    assert_eq!(stage.retry.attempts, 5);
    assert_eq!(stage.retry.initial_delay_ms, 5000);
    assert_eq!(stage.retry.non_retryable, [3]);
    assert_eq!(stage.timeout_ms, Some(30_000));
    let wvflow::plan::ir::Step::Invoke { invocation } = &stage.steps[0] else {
        panic!("{:?}", stage.steps)
    };
    assert_eq!(invocation.bindings[0].sql, ":order_id");
    assert_eq!(invocation.bindings[0].params, ["order_id"]);
    let wvflow::plan::ir::Command::Exec { argv } = &invocation.command else {
        panic!()
    };
    assert_eq!(
        serde_json::to_string(argv).unwrap(),
        r#"[{"type":"literal","value":"bin/charge"},{"type":"literal","value":"--id"},{"type":"param","value":"id"}]"#
    );
}

#[test]
fn parameters_are_bound_never_spliced() {
    let plan = plan_of(
        "flow f(region: string = 'eu', min: int = 10) = { stage s = from orders | where region = region and amount > min and day = run_date }\n",
    );
    let wvflow::plan::ir::Step::Query { sql, .. } = &plan.flow.stages[0].steps[0] else {
        panic!()
    };
    assert_eq!(
        sql.text,
        r#"SELECT * FROM "orders" AS "orders" WHERE (((:region = :region) AND ("amount" > :min)) AND ("day" = :run_date))"#
    );
    assert_eq!(sql.params, ["min", "region", "run_date"]);
}

#[test]
fn triggers_and_rules_lower_to_one_form_with_labelled_edges() {
    let plan = plan_of(
        "flow f = {\n  stage a = from t\n  stage b = from t\n  stage alert [trigger: one_failed] = merge a, b\n  stage report if a.success and not b.failed = from a\n}\n",
    );
    let alert = &plan.flow.stages[2];
    assert_eq!(render::cond(&alert.trigger), "(a.failed or b.failed)");
    assert_eq!(
        alert
            .upstream
            .iter()
            .map(|e| e.requires.to_string())
            .collect::<Vec<_>>(),
        ["failed", "failed"]
    );
    let report = &plan.flow.stages[3];
    assert_eq!(
        render::cond(&report.trigger),
        "(a.success and not b.failed)"
    );
    let labels: Vec<_> = report
        .upstream
        .iter()
        .map(|e| format!("{}:{}", e.stage, e.requires))
        .collect();
    assert_eq!(labels, ["a:success", "b:not failed"]);
}

fn write_outputs(format: &str, extension: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("plan_{format}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let workspace = examples();
    let index = Index::new(&workspace);
    index
        .flows
        .iter()
        .map(|&def| {
            let plan = lower(&workspace, &index, def);
            let text = if format == "dot" {
                render::dot(&plan)
            } else {
                render::mermaid(&plan)
            };
            let path = dir.join(format!("{}.{extension}", plan.flow.name));
            std::fs::write(&path, text).unwrap();
            path
        })
        .collect()
}

#[test]
fn dot_output_renders_with_graphviz() {
    for path in write_outputs("dot", "dot") {
        let out = Command::new("dot")
            .arg("-Tsvg")
            .arg(&path)
            .output()
            .expect("Graphviz `dot` is installed (scripts/test.sh installs it)");
        assert!(
            out.status.success(),
            "{}: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains("<svg"));
    }
}

#[test]
fn mermaid_output_parses_with_mermaid() {
    let files = write_outputs("mermaid", "mmd");
    let out = Command::new("node")
        .arg("tests/mermaid/check.mjs")
        .args(&files)
        .output()
        .expect("node is installed and tests/mermaid is set up (scripts/test.sh)");
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{report}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        report
            .lines()
            .filter(|l| l.starts_with("ok ") && l.ends_with("flowchart-v2"))
            .count(),
        files.len(),
        "{report}"
    );
}

#[test]
fn plan_command_picks_the_flow_and_refuses_what_does_not_check() {
    let wvflow = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_wvflow"))
            .args(args)
            .output()
            .unwrap()
    };
    let o = wvflow(&["plan", "examples/booking_saga.wv", "--format", "json"]);
    assert_eq!(o.status.code(), Some(0));
    let plan: Plan = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(plan.flow.name, "BookTrip");
    let o = wvflow(&["plan", "examples"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("flows; name one:"));
    let o = wvflow(&["plan", "examples", "BookTrp"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("did you mean `BookTrip`?"));
    let o = wvflow(&["plan", "examples", "BookTrip", "--format", "mermaid"]);
    assert!(String::from_utf8_lossy(&o.stdout).starts_with("flowchart LR\n"));
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("plan_broken");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("b.wv"),
        "flow f = { stage s [retires: 1] = from t }\n",
    )
    .unwrap();
    let o = wvflow(&["plan", dir.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("E0201"));
    assert!(o.stdout.is_empty());
}

#[test]
fn the_published_json_schema_matches_the_plan_types() {
    let generated = wvflow::plan::ir::json_schema();
    let path = Path::new("docs/plan.schema.json");
    if std::env::var_os("WVFLOW_UPDATE_SCHEMA").is_some() {
        std::fs::write(path, &generated).unwrap();
    }
    let published = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        published == generated,
        "docs/plan.schema.json is out of date: run `WVFLOW_UPDATE_SCHEMA=1 cargo test --test plan`"
    );
    let schema: serde_json::Value = serde_json::from_str(&published).unwrap();
    assert_eq!(schema["title"], "Plan");
    assert!(schema["properties"]["plan_version"].is_object());
}

/// What a stage waits for of an upstream is typed in the plan and written as the words
/// joined by `|`, both ways; a word that is no state is refused when a plan is read.
#[test]
fn edge_requirements_read_and_write_as_their_words() {
    use wvflow::plan::ir::Edge;
    let text = r#"{"stage":"a","requires":"success|not failed|first success"}"#;
    let edge: Edge = serde_json::from_str(text).unwrap();
    assert_eq!(edge.requires.0.len(), 3);
    assert_eq!(serde_json::to_string(&edge).unwrap(), text);
    let wrong = serde_json::from_str::<Edge>(r#"{"stage":"a","requires":"succeeded"}"#);
    assert!(
        wrong
            .unwrap_err()
            .to_string()
            .contains("`succeeded` is not a stage's state")
    );
}
