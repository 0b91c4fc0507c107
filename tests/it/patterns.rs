//! The patterns people come for (task queues and orchestrators), each end to end with real
//! processes: results into a single call, delays, first to finish.

use crate::common::{run_json, scratch, stage, wvflow};
use serde_json::Value;
use std::path::Path;

fn ndjson(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
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
    let o = wvflow(&["check", dir.to_str().unwrap(), "--format", "short"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stdout).contains("E0616"));
}
