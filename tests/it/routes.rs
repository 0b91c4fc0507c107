//! `route` as users read it: a target that gets no rows is `skipped`, and so is what reads it
//! under the default trigger, on `wvflow run` and on the tasks of an exported run alike.

use crate::common::{run_json, scratch, stage, wvflow};
use crate::export::{Order, drive, outcome};
use serde_json::{Value, json};

const ORDERS: &str = r#"activity page_oncall = sh("""echo paged >> paged.log; echo '{"paged": true}'""")
flow Orders(amount: int = 10) = {
  stage orders = from [[1, amount]] as t(id, amount)
  stage split = from orders | route {
    case amount >= 1000 -> big_orders
    else -> normal_orders
  }
  stage big_orders = from split | save to big
  stage normal_orders = from split | select id
  stage alert = from big_orders | page_oncall()
  stage report [trigger: none_failed_min_one_success] = merge big_orders, normal_orders
}
flow Mixed(amount: int = 10) = {
  stage orders = from [[1, amount]] as t(id, amount)
  stage manual = from [[2, 7]] as t(id, amount)
  stage split = from orders | route { case amount >= 1000 -> big else -> small }
  stage big = merge split, manual
  stage small = from split | select id
}
flow Split(n: int = 1) = {
  stage rows = from [[1], [2], [3], [4]] as t(id) | where id <= n
  stage halves = from rows | route by hash(_.id) {
    case 50 -> left
    case 50 -> right
  }
  stage left = from halves | select id
  stage right = from halves | select id
  stage after_left = from left | select count(*) as n
}
"#;

fn states(summary: &Value, stages: &[&str]) -> Vec<String> {
    stages
        .iter()
        .map(|s| format!("{s} {}", stage(summary, s)["state"].as_str().unwrap()))
        .collect()
}

/// The branch not taken does nothing: no table saved, no page, and the stage after it is
/// skipped too. The join after both branches still runs.
#[test]
fn a_route_target_without_rows_is_skipped_and_so_is_what_reads_it() {
    let dir = scratch("route_not_taken", &[("flow.wv", ORDERS)]);
    let (code, summary) = run_json(&dir, Some("Orders(amount = 10)"));
    assert_eq!(code, Some(0), "{summary}");
    assert_eq!(summary["state"], "success");
    assert_eq!(
        states(
            &summary,
            &["split", "big_orders", "normal_orders", "alert", "report"]
        ),
        [
            "split success",
            "big_orders skipped",
            "normal_orders success",
            "alert skipped",
            "report success"
        ]
    );
    assert_eq!(stage(&summary, "big_orders")["attempts"], 0);
    assert_eq!(stage(&summary, "report")["rows"], 1);
    assert!(!dir.join("paged.log").exists(), "on-call was paged");
    // `save to big` did not run: the table is not there.
    let o = wvflow(&[
        "runs",
        "-w",
        dir.to_str().unwrap(),
        "rows",
        summary["run_id"].as_str().unwrap(),
        "big_orders",
    ]);
    assert_ne!(o.status.code(), Some(0));

    // The other branch, on a second run.
    let (code, summary) = run_json(&dir, Some("Orders(amount = 5000)"));
    assert_eq!(code, Some(0), "{summary}");
    assert_eq!(
        states(&summary, &["big_orders", "normal_orders", "alert"]),
        [
            "big_orders success",
            "normal_orders skipped",
            "alert success"
        ]
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("paged.log")).unwrap(),
        "paged\n"
    );
}

/// A target that also reads another stage has rows of its own: it runs when its route gives
/// it none.
#[test]
fn a_route_target_that_reads_another_stage_runs_on_its_rows() {
    let dir = scratch("route_mixed", &[("flow.wv", ORDERS)]);
    let (code, summary) = run_json(&dir, Some("Mixed(amount = 10)"));
    assert_eq!(code, Some(0), "{summary}");
    assert_eq!(stage(&summary, "big")["state"], "success", "{summary}");
    assert_eq!(stage(&summary, "big")["rows"], 1, "{summary}");
    assert_eq!(stage(&summary, "small")["rows"], 1, "{summary}");
}

/// `route by`: the one row goes to one half; the other half is skipped, with what reads it.
/// No rows at all: every target is skipped.
#[test]
fn route_by_skips_the_share_that_gets_no_rows() {
    let dir = scratch("route_by_not_taken", &[("flow.wv", ORDERS)]);
    let (code, summary) = run_json(&dir, Some("Split(n = 1)"));
    assert_eq!(code, Some(0), "{summary}");
    let mut halves = states(&summary, &["left", "right"]);
    halves.sort();
    assert!(
        halves == ["left skipped", "right success"] || halves == ["left success", "right skipped"],
        "{summary}"
    );
    let after = if halves[0] == "left skipped" {
        "skipped"
    } else {
        "success"
    };
    assert_eq!(stage(&summary, "after_left")["state"], after, "{summary}");

    let (code, summary) = run_json(&dir, Some("Split(n = 0)"));
    assert_eq!(code, Some(0), "{summary}");
    assert_eq!(
        states(&summary, &["halves", "left", "right", "after_left"]),
        [
            "halves success",
            "left skipped",
            "right skipped",
            "after_left skipped"
        ]
    );

    // Many rows reach both halves.
    let (code, summary) = run_json(&dir, Some("Split(n = 4)"));
    assert_eq!(code, Some(0), "{summary}");
    let rows = |s: &str| stage(&summary, s)["rows"].as_u64().unwrap();
    assert_eq!(rows("left") + rows("right"), 4, "{summary}");
}

/// The tasks of an exported run decide a branch not taken as `wvflow run` does.
#[test]
fn exported_tasks_skip_a_route_target_without_rows_as_run_does() {
    let dir = scratch("route_not_taken_tasks", &[("examples/flow.wv", ORDERS)]);
    let examples = dir.join("examples");
    for amount in [10, 5000] {
        let plan = wvflow(&[
            "plan",
            examples.join("flow.wv").to_str().unwrap(),
            "Orders",
            "--format",
            "json",
        ]);
        assert_eq!(plan.status.code(), Some(0));
        let plan_path = dir.join("plan.json");
        std::fs::write(&plan_path, &plan.stdout).unwrap();
        let _ = std::fs::remove_dir_all(dir.join("state"));
        let _ = std::fs::remove_file(examples.join("paged.log"));
        let driven = drive(
            &dir,
            &plan_path,
            &json!({ "amount": amount }),
            "2026-01-01T00:00:00Z",
            Order::Plan,
        );
        let paged = examples.join("paged.log");
        assert_eq!(paged.exists(), amount >= 1000, "amount {amount}: {driven}");
        let (code, run) = run_json(&examples, Some(&format!("Orders(amount = {amount})")));
        assert_eq!(code, Some(0), "{run}");
        assert_eq!(outcome(&driven), outcome(&run), "amount {amount}");
    }
}
