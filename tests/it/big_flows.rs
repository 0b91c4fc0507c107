//! Flows as big as users make them: none fails for its size (issue 32). The figures (how the
//! time grows to 100,000 stages) are the benchmark's (`cargo bench --bench run -- --stages`);
//! these say what must hold at any size.

use crate::common::{scratch, stage, wvflow};
use std::fmt::Write as _;
use std::process::Command;

/// A fan-out of `branches` query stages from one source, each keeping the rows whose `id`
/// is not its number modulo 3, merged by one stage; and the rows the merge has.
fn fan_out(branches: usize) -> (String, usize) {
    let mut src = String::from(
        "flow Fan = {\n  stage source = from [[1, 'a'], [2, 'b'], [3, 'c']] as t(id, name)\n",
    );
    for i in 0..branches {
        let _ = writeln!(src, "  stage b{i} = from source | where id <> {}", i % 3);
    }
    let inputs: Vec<String> = (0..branches).map(|i| format!("b{i}")).collect();
    let _ = writeln!(src, "  stage all = merge {}\n}}", inputs.join(", "));
    // A branch of a multiple of 3 keeps the 3 rows, any other 2.
    let rows = (0..branches).map(|i| if i % 3 == 0 { 3 } else { 2 }).sum();
    (src, rows)
}

/// 2,000 branches written 16 at a time, every wait for a lock bounded at 2 s: every branch
/// and the merge succeed, with every row. With a table per stage, each new table made the
/// other connections parse the whole schema again, writers queued past the bound and
/// branches failed with `database is locked` (as a 30,000-branch fan-out did at the default
/// 30 s), skipping the merge. The run database's schema no longer grows with the stages.
#[test]
fn a_wide_fan_out_and_its_merge_succeed_with_many_writers_at_once() {
    let (src, rows) = fan_out(2_000);
    let dir = scratch("big_flows_fan_out", &[("flow.wv", &src)]);
    let o = Command::new(env!("CARGO_BIN_EXE_wvflow"))
        .args(["run", dir.join("flow.wv").to_str().unwrap()])
        .args(["--format", "json", "--max-parallel", "16"])
        .env("WVFLOW_BUSY_TIMEOUT_MS", "2000")
        .output()
        .unwrap();
    let summary: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let failed: Vec<&serde_json::Value> = summary["stages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["state"] != "success")
        .take(3)
        .collect();
    assert!(failed.is_empty(), "{failed:?}");
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(stage(&summary, "all")["rows"], rows);
    // What `wvflow runs rows` reads back: every row, the columns as the stages named them.
    let run_id = summary["run_id"].as_str().unwrap();
    let workspace = dir.to_str().unwrap();
    let o = wvflow(&[
        "runs", "-w", workspace, "rows", run_id, "all", "--format", "ndjson",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let read: Vec<serde_json::Value> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(read.len(), rows);
    assert_eq!(read[0], serde_json::json!({"id": 1, "name": "a"}));
    let db = dir.join(format!(".wvflow/runs/{run_id}.db"));
    let tables: i64 = rusqlite::Connection::open(db)
        .unwrap()
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(tables < 10, "{tables} tables for 2,002 stages");
}
