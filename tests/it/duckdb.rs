//! Stages on a DuckDB connector (a build with the `duckdb` feature, as scripts/test.sh
//! builds): rows shipped in and back with their types, CSV files read by DuckDB itself, `save
//! to` in a transaction, a second run, the failures a user meets (a missing table, a database
//! that cannot be opened, a timeout and a cancel that interrupt the query), each naming the
//! connector; and what DuckDB's dialect cannot express refused at check time.

use crate::common::{scratch, stage, wait_for};
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

const DUCK: &str = "[connectors.duck]\nkind = \"duckdb\"\npath = \"data/w.duckdb\"\n";

const ORDERS_CSV: &str = "id,region,amount\n1,north,10\n2,south,20\n3,north,5\n4,,7\n5,south,1\n";

/// `wvflow ARGS` in `dir`.
fn wvflow_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wvflow"))
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .output()
        .expect("wvflow runs")
}

/// `wvflow run FILE --format json` in `dir`: the exit code and the run's summary.
fn run(dir: &Path, file: &str) -> (Option<i32>, serde_json::Value) {
    let o = wvflow_in(dir, &["run", file, "--format", "json"]);
    let summary = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    });
    (o.status.code(), summary)
}

/// The rows of a stage of a run, as JSON objects.
fn rows(dir: &Path, summary: &serde_json::Value, stage: &str) -> serde_json::Value {
    let run_id = summary["run_id"].as_str().unwrap();
    let o = wvflow_in(dir, &["runs", "rows", run_id, stage, "--format", "json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).unwrap()
}

fn error_of<'a>(summary: &'a serde_json::Value, name: &str) -> &'a str {
    stage(summary, name)["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no error: {summary}"))
}

/// A file on `default`, grouped on DuckDB and saved there, read back by a default stage.
const SHIP: &str = "flow Report = {\n  stage orders = from 'orders.csv'\n  \
    stage totals on duck = from orders | where amount > 4 | group by region \
    | select region, sum(amount) as total, count(*) as n | order by region | save to analytics.totals\n  \
    stage after = from totals | where total > 0 | select region, total * 2 as twice\n}\n";

/// Reads the saved table back from the database, through a stage on it.
const READ_BACK: &str =
    "flow ReadBack = {\n  stage saved on duck = from analytics.totals | order by region\n}\n";

#[test]
fn duckdb_ships_rows_in_groups_them_there_saves_a_table_and_a_later_stage_reads_them() {
    let dir = scratch(
        "duckdb_ship",
        &[
            ("wvflow.toml", DUCK),
            ("orders.csv", ORDERS_CSV),
            ("report.wv", SHIP),
            ("read_back.wv", READ_BACK),
        ],
    );
    std::fs::create_dir_all(dir.join("data")).unwrap();
    let (code, summary) = run(&dir, "report.wv");
    assert_eq!(code, Some(0), "{summary}");
    let expected = serde_json::json!([
        {"region": null, "twice": 14},
        {"region": "north", "twice": 30},
        {"region": "south", "twice": 40}
    ]);
    assert_eq!(rows(&dir, &summary, "after"), expected);
    assert!(dir.join("data/w.duckdb").is_file());
    let saved = serde_json::json!([
        {"region": null, "total": 7, "n": 1},
        {"region": "north", "total": 15, "n": 2},
        {"region": "south", "total": 20, "n": 1}
    ]);
    let (code, back) = run(&dir, "read_back.wv");
    assert_eq!(code, Some(0), "{back}");
    assert_eq!(rows(&dir, &back, "saved"), saved);
    // A second run replaces the table (not appended to it) and gives the same rows.
    let (code, again) = run(&dir, "report.wv");
    assert_eq!(code, Some(0), "{again}");
    assert_ne!(again["run_id"], summary["run_id"]);
    assert_eq!(rows(&dir, &again, "after"), expected);
    let (_, back) = run(&dir, "read_back.wv");
    assert_eq!(rows(&dir, &back, "saved"), saved);
    // The plan shows the stage's SQL in DuckDB's dialect and what is shipped in.
    let plan = wvflow_in(&dir, &["plan", "report.wv"]);
    let plan = String::from_utf8_lossy(&plan.stdout);
    assert!(plan.contains("limits: on duck"), "{plan}");
    assert!(
        plan.contains("ship in: run.orders <- SELECT * FROM run.\"orders\""),
        "{plan}"
    );
    assert!(
        plan.contains("FROM temp.\"run.orders\" AS \"orders\""),
        "{plan}"
    );
    assert!(plan.contains("ORDER BY \"region\" NULLS FIRST"), "{plan}");
}

#[test]
fn duckdb_reads_a_csv_file_itself_and_gives_the_rows_sqlite_gives() {
    let top = "| where amount > 1 | group by region | select region, sum(amount) as total, \
               count(*) as n, avg(amount) as mean | order by total desc, region | limit 2";
    let flow = format!(
        "flow Top = {{\n  stage lite = from 'in/orders.csv' {top}\n  \
         stage there on duck = from 'in/orders.csv' {top}\n}}\n"
    );
    let dir = scratch(
        "duckdb_csv",
        &[
            ("wvflow.toml", DUCK),
            ("in/orders.csv", ORDERS_CSV),
            ("top.wv", &flow),
            ("data/.keep", ""),
        ],
    );
    let (code, summary) = run(&dir, "top.wv");
    assert_eq!(code, Some(0), "{summary}");
    let lite = rows(&dir, &summary, "lite");
    assert_eq!(
        lite,
        serde_json::json!([
            {"region": "south", "total": 20, "n": 1, "mean": 20.0},
            {"region": "north", "total": 15, "n": 2, "mean": 7.5}
        ])
    );
    assert_eq!(rows(&dir, &summary, "there"), lite);
    // DuckDB reads the file: nothing is shipped in.
    let plan = wvflow_in(&dir, &["plan", "top.wv"]);
    let plan = String::from_utf8_lossy(&plan.stdout);
    assert!(plan.contains("FROM read_csv('in/orders.csv'"), "{plan}");
    assert!(!plan.contains("ship in"), "{plan}");
    // A file that is not there fails the stage with DuckDB's message, naming the connector.
    std::fs::remove_file(dir.join("in/orders.csv")).unwrap();
    let only = "flow Top = {\n  stage there on duck = from 'in/orders.csv' | limit 1\n}\n";
    std::fs::write(dir.join("top.wv"), only).unwrap();
    std::fs::write(dir.join("in/orders.csv"), ORDERS_CSV).unwrap();
    let check = wvflow_in(&dir, &["check", "top.wv"]);
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );
    std::fs::remove_file(dir.join("in/orders.csv")).unwrap();
    let (code, summary) = run(&dir, "top.wv");
    assert_ne!(code, Some(0), "{summary}");
    let error = error_of(&summary, "there");
    assert!(error.starts_with("connector `duck`: "), "{error}");
    assert!(error.contains("in/orders.csv"), "{error}");
}

/// Nulls, booleans, integers, reals, text with quotes, timestamps and durations go to DuckDB
/// and come back as they were, for no rows, one row and several.
#[test]
fn duckdb_values_of_every_type_come_back_as_they_went() {
    let data = "[[1, true, 0.5, 'it''s', timestamp '2026-01-02T03:04:05Z', 90s], \
                [2, false, -3.25, 'say \"hi\"', null, 1h], \
                [3, null, null, null, timestamp '2025-12-31T23:59:59.250Z', null]] \
                as t(id, flag, x, s, at, d)";
    let flow = format!(
        "flow Types = {{\n  stage data = from {data}\n  \
         stage many on duck = from data | order by id\n  \
         stage one on duck = from data | where id = 2\n  \
         stage none on duck = from data | where id > 10\n  \
         stage computed on duck = from data | select id, not flag as nf, x * 2 as dx, \
         s || '!' as t, d * 2 as dd, at | order by id\n  \
         stage lite = from data | select id, not flag as nf, x * 2 as dx, s || '!' as t, \
         d * 2 as dd, at | order by id\n}}\n"
    );
    let dir = scratch(
        "duckdb_types",
        &[
            ("wvflow.toml", DUCK),
            ("types.wv", &flow),
            ("data/.keep", ""),
        ],
    );
    let (code, summary) = run(&dir, "types.wv");
    assert_eq!(code, Some(0), "{summary}");
    let all = rows(&dir, &summary, "data");
    assert_eq!(all.as_array().unwrap().len(), 3);
    assert_eq!(all[0]["flag"], true, "{all}");
    assert_eq!(all[1]["s"], "say \"hi\"", "{all}");
    assert_eq!(rows(&dir, &summary, "many"), all);
    assert_eq!(
        rows(&dir, &summary, "one"),
        serde_json::json!([all[1].clone()])
    );
    assert_eq!(rows(&dir, &summary, "none"), serde_json::json!([]));
    assert_eq!(stage(&summary, "none")["rows"], 0, "{summary}");
    assert_eq!(
        rows(&dir, &summary, "computed"),
        rows(&dir, &summary, "lite")
    );
}

#[test]
fn duckdb_a_failed_stage_leaves_the_saved_table_as_it_was() {
    let setup = "flow Setup = {\n  stage src = from [[1, 'a'], [2, 'b'], [3, 'c']] as t(id, name)\n  \
                 stage copied on duck = from src | save to main.src\n}\n";
    let saves =
        "flow Save = {\n  stage s on duck = from main.src | where id < 3 | save to main.kept\n}\n";
    // The save succeeds; a later operator of the same stage fails in DuckDB (the columns of
    // a table of the database are not known at check time).
    let fails = "flow Fail = {\n  \
                 stage s on duck = from main.src | where id > 1 | save to main.kept | select no_such_column\n}\n";
    let read = "flow Read = {\n  stage kept on duck = from main.kept | order by id\n}\n";
    let dir = scratch(
        "duckdb_save",
        &[
            ("wvflow.toml", DUCK),
            ("setup.wv", setup),
            ("save.wv", saves),
            ("fail.wv", fails),
            ("read.wv", read),
            ("data/.keep", ""),
        ],
    );
    let (code, summary) = run(&dir, "setup.wv");
    assert_eq!(code, Some(0), "{summary}");
    let (code, summary) = run(&dir, "save.wv");
    assert_eq!(code, Some(0), "{summary}");
    let kept = serde_json::json!([{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]);
    let (_, back) = run(&dir, "read.wv");
    assert_eq!(rows(&dir, &back, "kept"), kept);
    let (code, summary) = run(&dir, "fail.wv");
    assert_ne!(code, Some(0));
    let error = error_of(&summary, "s");
    assert!(error.starts_with("connector `duck`: "), "{error}");
    assert!(error.contains("no_such_column"), "{error}");
    let (_, back) = run(&dir, "read.wv");
    assert_eq!(rows(&dir, &back, "kept"), kept);
}

#[test]
fn duckdb_a_missing_table_fails_with_duckdbs_message_and_the_connector() {
    let flow = "flow Report = {\n  stage there on duck = from main.no_such_table | limit 1\n}\n";
    let dir = scratch(
        "duckdb_missing",
        &[
            ("wvflow.toml", DUCK),
            ("report.wv", flow),
            ("data/.keep", ""),
        ],
    );
    let (code, summary) = run(&dir, "report.wv");
    assert_ne!(code, Some(0));
    let error = error_of(&summary, "there");
    assert!(error.starts_with("connector `duck`: "), "{error}");
    assert!(error.contains("no_such_table does not exist"), "{error}");
    assert_eq!(stage(&summary, "there")["attempts"], 1);
    // The stage's retries try it again.
    let retried = "flow Report = {\n  stage there [retries: 2, retry_delay: 10ms] on duck = from main.no_such_table\n}\n";
    std::fs::write(dir.join("report.wv"), retried).unwrap();
    let (code, summary) = run(&dir, "report.wv");
    assert_ne!(code, Some(0));
    assert_eq!(stage(&summary, "there")["attempts"], 3, "{summary}");
    assert!(error_of(&summary, "there").contains("does not exist"));
}

#[test]
fn duckdb_a_database_that_cannot_be_opened_fails_the_stage_naming_the_connector() {
    // Its folder does not exist.
    let toml = "[connectors.duck]\nkind = \"duckdb\"\npath = \"no/such/folder/w.duckdb\"\n";
    let flow = "flow Report = {\n  stage rows = from [[1]] as t(id)\n  stage there on duck = from rows\n}\n";
    let dir = scratch(
        "duckdb_unopened",
        &[("wvflow.toml", toml), ("report.wv", flow)],
    );
    let (code, summary) = run(&dir, "report.wv");
    assert_ne!(code, Some(0));
    let error = error_of(&summary, "there");
    assert!(
        error.starts_with("connector `duck`: cannot open its database: "),
        "{error}"
    );
    assert!(error.contains("w.duckdb"), "{error}");
}

/// A database with a view that takes minutes to compute.
fn slow_database(name: &str, flow: &str) -> std::path::PathBuf {
    let dir = scratch(
        name,
        &[
            ("wvflow.toml", DUCK),
            ("report.wv", flow),
            ("data/.keep", ""),
        ],
    );
    let db = duckdb::Connection::open(dir.join("data/w.duckdb")).unwrap();
    db.execute_batch(
        "CREATE VIEW slow AS SELECT count(*) AS n FROM range(1000000000000) AS t(i) \
         WHERE (i * 7919) % 104729 = 3",
    )
    .unwrap();
    drop(db);
    dir
}

#[test]
fn duckdb_a_timeout_interrupts_the_query() {
    let flow = "flow Report = {\n  stage slow [timeout: 1s] on duck = from main.slow\n}\n";
    let dir = slow_database("duckdb_timeout", flow);
    let started = Instant::now();
    let (code, summary) = run(&dir, "report.wv");
    assert_ne!(code, Some(0));
    let error = error_of(&summary, "slow");
    assert_eq!(
        error,
        "connector `duck`: the stage's timeout of 1s passed; its query was interrupted"
    );
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn duckdb_a_cancelled_run_interrupts_the_query() {
    let flow = "flow Report = {\n  stage slow on duck = from main.slow\n}\n";
    let dir = slow_database("duckdb_cancel", flow);
    let child = Command::new(env!("CARGO_BIN_EXE_wvflow"))
        .args(["run", "report.wv", "--format", "json"])
        .current_dir(&dir)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // The stage is running once the run store says so.
    wait_for(Duration::from_secs(60), "the stage to start", || {
        let o = wvflow_in(&dir, &["runs", "list", "--format", "json"]);
        String::from_utf8_lossy(&o.stdout).contains("running")
    });
    std::thread::sleep(Duration::from_millis(300));
    let sent = Instant::now();
    // SIGTERM cancels the run, as Ctrl-C does.
    // SAFETY: kill sends a signal to the child this test started.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let out = child.wait_with_output().unwrap();
    assert!(
        sent.elapsed() < Duration::from_secs(30),
        "{:?}",
        sent.elapsed()
    );
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(stage(&summary, "slow")["state"], "cancelled", "{summary}");
}

#[test]
fn duckdb_what_its_dialect_cannot_express_is_refused_at_check() {
    let flow = "flow Report = {\n  stage orders = from [[1, 'open']] as t(id, status)\n  \
                stage tagged on duck = from orders | select id, hash(status) as tag\n  \
                stage rows on duck = from 'orders.json' | limit 1\n  \
                stage fine on duck = from 'orders.csv' | select id, round(id, 1) as r\n}\n";
    let dir = scratch(
        "duckdb_refused",
        &[
            ("wvflow.toml", DUCK),
            ("report.wv", flow),
            ("orders.csv", "id\n1\n"),
            ("orders.json", "[{\"id\": 1}]"),
        ],
    );
    let o = wvflow_in(&dir, &["check", ".", "--format", "json"]);
    assert_eq!(o.status.code(), Some(1));
    let found: Vec<serde_json::Value> = serde_json::from_slice(&o.stdout).unwrap();
    let codes: Vec<(&str, u64)> = found
        .iter()
        .map(|d| {
            (
                d["code"].as_str().unwrap(),
                d["range"]["start"]["line"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(codes, [("E0709", 2), ("E0710", 3)], "{found:?}");
    assert_eq!(
        found[0]["message"],
        "`hash()` has no DuckDB form: the stage runs on DuckDB connector `duck`"
    );
    assert!(
        found[1]["message"]
            .as_str()
            .unwrap()
            .contains("cannot run a data file other than CSV"),
        "{found:?}"
    );
    // Nothing ran.
    let o = wvflow_in(&dir, &["run", "report.wv"]);
    assert_ne!(o.status.code(), Some(0));
    assert!(!dir.join(".wvflow").exists());
}

/// An exported flow with a stage on DuckDB: its tasks (`wvflow stage run`) open the database
/// from the flow's folder, and the run ends as `wvflow run` ends, with the same rows; the
/// exporters say what the workers need.
#[test]
fn duckdb_an_exported_run_ends_as_wvflow_run_ends() {
    use crate::export::{Order, drive_on, outcome, wvflow_at};
    let dir = scratch(
        "duckdb_export",
        &[
            ("examples/wvflow.toml", DUCK),
            ("examples/orders.csv", ORDERS_CSV),
            ("examples/report.wv", SHIP),
            ("examples/data/.keep", ""),
        ],
    );
    let flows = dir.join("examples");
    let (code, reference) = run(&flows, "report.wv");
    assert_eq!(code, Some(0), "{reference}");
    let expected = rows(&flows, &reference, "after");
    let out = dir.join("report.py");
    let o = wvflow_at(
        &dir,
        &[
            "export",
            "examples/report.wv",
            "--target",
            "airflow",
            "-o",
            out.to_str().unwrap(),
        ],
    );
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let warned = String::from_utf8_lossy(&o.stderr);
    assert!(
        warned.contains(
            "warning: stage `totals`: runs on connector `duck` from the workers, which need the \
             workspace's `wvflow.toml` in the flow's folder (or above it), its database file \
             (`path`) on a folder they share, and a wvflow built with DuckDB (the `duckdb` feature)"
        ),
        "{warned}"
    );
    let plan = wvflow_at(&flows, &["plan", "report.wv", "--format", "json"]);
    assert!(plan.status.success());
    std::fs::write(dir.join("plan.json"), &plan.stdout).unwrap();
    let state = dir.join("state");
    let driven = drive_on(
        &dir,
        (state.to_str().unwrap(), &[]),
        &dir.join("plan.json"),
        &serde_json::json!({}),
        "2026-11-26T00:00:00Z",
        Order::Plan,
    );
    assert_eq!(outcome(&driven), outcome(&reference), "{driven}");
    let read_back =
        "flow ReadBack = {\n  stage saved on duck = from analytics.totals | order by region\n}\n";
    std::fs::write(flows.join("read_back.wv"), read_back).unwrap();
    let (code, back) = run(&flows, "read_back.wv");
    assert_eq!(code, Some(0), "{back}");
    assert_eq!(
        rows(&flows, &back, "saved"),
        serde_json::json!([
            {"region": null, "total": 7, "n": 1},
            {"region": "north", "total": 15, "n": 2},
            {"region": "south", "total": 20, "n": 1}
        ])
    );
    assert_eq!(expected.as_array().unwrap().len(), 3);
}
