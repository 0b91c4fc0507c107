//! Stages on a PostgreSQL connector, on a real server (`common::postgres`): rows shipped in
//! and back, `from schema.table`, `save to` in a transaction, the failures a user meets (a
//! wrong password, a server that is down, a missing table, a timeout that cancels the query
//! on the server), each naming the connector and never the secret; and generated flows that
//! give the same rows on SQLite and on PostgreSQL.

use crate::common::postgres::{PASSWORD, server};
use crate::common::{scratch, stage, wait_for};
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

/// `wvflow ARGS` in `dir`, with `PGPASSWORD` set to `password`.
fn wvflow_in(dir: &Path, password: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wvflow"))
        .args(args)
        .current_dir(dir)
        .env("PGPASSWORD", password)
        .env("NO_COLOR", "1")
        .output()
        .expect("wvflow runs")
}

/// `wvflow run FILE --format json` in `dir`: the exit code and the run's summary.
fn run(dir: &Path, file: &str, password: &str) -> (Option<i32>, serde_json::Value) {
    let o = wvflow_in(dir, password, &["run", file, "--format", "json"]);
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
fn rows(dir: &Path, summary: &serde_json::Value, stage: &str) -> Vec<serde_json::Value> {
    let run_id = summary["run_id"].as_str().unwrap();
    let o = wvflow_in(
        dir,
        PASSWORD,
        &["runs", "rows", run_id, stage, "--format", "json"],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    match serde_json::from_slice(&o.stdout).unwrap() {
        serde_json::Value::Array(rows) => rows,
        other => panic!("not rows: {other}"),
    }
}

fn error_of<'a>(summary: &'a serde_json::Value, name: &str) -> &'a str {
    stage(summary, name)["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no error: {summary}"))
}

/// A file on `default`, grouped on the server and saved there, read back by a default stage.
const SHIP: &str = "flow Report = {\n  stage orders = from 'orders.csv'\n  \
    stage totals on pg = from orders | where amount > 4 | group by region \
    | select region, sum(amount) as total, count(*) as n | order by region | save to public.totals\n  \
    stage after = from totals | where total > 0 | select region, total * 2 as twice\n}\n";

const ORDERS_CSV: &str = "id,region,amount\n1,north,10\n2,south,20\n3,north,5\n4,,7\n5,south,1\n";

#[test]
fn postgres_ships_a_csv_file_in_groups_it_there_and_a_later_stage_reads_it() {
    let pg = server();
    pg.database("wv_ship");
    let dir = scratch(
        "postgres_ship",
        &[
            ("wvflow.toml", &pg.toml("wv_ship")),
            ("orders.csv", ORDERS_CSV),
            ("report.wv", SHIP),
        ],
    );
    let (code, summary) = run(&dir, "report.wv", PASSWORD);
    assert_eq!(code, Some(0), "{summary}");
    assert_eq!(
        serde_json::Value::Array(rows(&dir, &summary, "after")),
        serde_json::json!([
            {"region": null, "twice": 14},
            {"region": "north", "twice": 30},
            {"region": "south", "twice": 40}
        ])
    );
    assert_eq!(
        pg.psql(
            "wv_ship",
            "SELECT region, total, n FROM public.totals ORDER BY region NULLS FIRST"
        ),
        "|7|1\nnorth|15|2\nsouth|20|1\n"
    );
    // The plan shows the stage's SQL in PostgreSQL's dialect and what is shipped in.
    let plan = wvflow_in(&dir, PASSWORD, &["plan", "report.wv"]);
    let plan = String::from_utf8_lossy(&plan.stdout);
    assert!(
        plan.contains("ship in: run.orders <- SELECT * FROM run.\"orders\""),
        "{plan}"
    );
    assert!(
        plan.contains("FROM pg_temp.\"run.orders\" AS \"orders\""),
        "{plan}"
    );
    assert!(plan.contains("ORDER BY \"region\" NULLS FIRST"), "{plan}");
}

#[test]
fn postgres_from_schema_table_reads_the_servers_table() {
    let pg = server();
    pg.database("wv_from");
    pg.psql(
        "wv_from",
        "CREATE SCHEMA sales; CREATE TABLE sales.orders (id int, customer text, amount numeric(10,2), paid boolean); \
         INSERT INTO sales.orders VALUES (1, 'O''Brien', 12.50, true), (2, 'Ann', 3, false), (3, NULL, 40, NULL)",
    );
    // A parameter is written into the server's query as a literal.
    let flow = "flow Read(least: int = 10, not_named: string = 'it''s', settled: boolean = true) = {\n  \
                stage big on pg = from sales.orders | where amount >= least and coalesce(customer, '') <> not_named \
                and (paid = settled or paid is null) | order by id\n  \
                stage after = from big | select id, customer, amount, paid\n}\n";
    let dir = scratch(
        "postgres_from",
        &[("wvflow.toml", &pg.toml("wv_from")), ("read.wv", flow)],
    );
    let (code, summary) = run(&dir, "read.wv", PASSWORD);
    assert_eq!(code, Some(0), "{summary}");
    assert_eq!(
        serde_json::Value::Array(rows(&dir, &summary, "after")),
        serde_json::json!([
            {"id": 1, "customer": "O'Brien", "amount": 12.5, "paid": true},
            {"id": 3, "customer": null, "amount": 40.0, "paid": null}
        ])
    );
    // On `default`, a server's table is refused before anything runs.
    let refused = "flow Read = {\n  stage big = from sales.orders\n}\n";
    std::fs::write(dir.join("read.wv"), refused).unwrap();
    let o = wvflow_in(&dir, PASSWORD, &["check", "read.wv"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stdout).contains("E0710"));
}

#[test]
fn postgres_a_failed_stage_leaves_the_saved_table_as_it_was() {
    let pg = server();
    pg.database("wv_save");
    pg.psql(
        "wv_save",
        "CREATE TABLE src (id int, name text); INSERT INTO src VALUES (1, 'a'), (2, 'b')",
    );
    let saves = "flow Save = {\n  stage s on pg = from src | save to public.kept\n}\n";
    // The save succeeds; a later operator of the same stage fails on the server.
    let fails = "flow Fail = {\n  stage s on pg = from src | where id > 1 | save to public.kept | select no_such_column\n}\n";
    let dir = scratch(
        "postgres_save",
        &[
            ("wvflow.toml", &pg.toml("wv_save")),
            ("save.wv", saves),
            ("fail.wv", fails),
        ],
    );
    let (code, summary) = run(&dir, "save.wv", PASSWORD);
    assert_eq!(code, Some(0), "{summary}");
    assert_eq!(
        pg.psql("wv_save", "SELECT id, name FROM kept ORDER BY id"),
        "1|a\n2|b\n"
    );
    let (code, summary) = run(&dir, "fail.wv", PASSWORD);
    assert_ne!(code, Some(0));
    let error = error_of(&summary, "s");
    assert!(error.starts_with("connector `pg`: "), "{error}");
    assert!(error.contains("no_such_column"), "{error}");
    assert_eq!(
        pg.psql("wv_save", "SELECT id, name FROM kept ORDER BY id"),
        "1|a\n2|b\n"
    );
}

/// Every file under `dir`, recursively.
fn files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(files(&path));
        } else {
            found.push(path);
        }
    }
    found
}

#[test]
fn postgres_a_wrong_password_fails_the_stage_naming_the_connector_never_the_secret() {
    let pg = server();
    pg.database("wv_password");
    let wrong = "wrong-pw-0c7e5b1a-never-shown";
    let flow = "flow Report = {\n  stage rows = from [[1, 'a']] as t(id, name)\n  \
                stage there on pg = from rows\n}\n";
    let dir = scratch(
        "postgres_password",
        &[
            ("wvflow.toml", &pg.toml("wv_password")),
            ("report.wv", flow),
        ],
    );
    let o = wvflow_in(&dir, wrong, &["run", "report.wv", "--format", "json"]);
    assert_ne!(o.status.code(), Some(0));
    let summary: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let error = error_of(&summary, "there");
    assert!(
        error.starts_with("connector `pg`: cannot connect: "),
        "{error}"
    );
    assert!(error.contains("password authentication failed"), "{error}");
    let mut shown = vec![o.stdout.clone(), o.stderr.clone()];
    let text = wvflow_in(&dir, wrong, &["run", "report.wv"]);
    shown.extend([text.stdout, text.stderr]);
    let show = wvflow_in(
        &dir,
        wrong,
        &["runs", "show", summary["run_id"].as_str().unwrap()],
    );
    shown.extend([show.stdout, show.stderr]);
    for file in files(&dir.join(".wvflow")) {
        shown.push(std::fs::read(&file).unwrap_or_default());
    }
    for bytes in &shown {
        assert!(
            !bytes.windows(wrong.len()).any(|w| w == wrong.as_bytes()),
            "the password was written: {}",
            String::from_utf8_lossy(bytes)
        );
    }
}

#[test]
fn postgres_a_server_that_is_down_fails_the_stage() {
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let toml = format!(
        "[connectors.pg]\nkind = \"postgres\"\nurl = \"postgresql://wv:${{PGPASSWORD}}@127.0.0.1:{port}/none\"\n"
    );
    let flow = "flow Report = {\n  stage there on pg = from public.t\n}\n";
    let dir = scratch(
        "postgres_down",
        &[("wvflow.toml", &toml), ("report.wv", flow)],
    );
    let (code, summary) = run(&dir, "report.wv", PASSWORD);
    assert_ne!(code, Some(0));
    let error = error_of(&summary, "there");
    assert!(
        error.starts_with("connector `pg`: cannot connect: "),
        "{error}"
    );
    assert!(!error.contains(PASSWORD), "{error}");
}

#[test]
fn postgres_a_missing_table_fails_with_the_servers_message() {
    let pg = server();
    pg.database("wv_missing");
    let flow = "flow Report = {\n  stage there on pg = from public.no_such_table | limit 1\n}\n";
    let dir = scratch(
        "postgres_missing",
        &[("wvflow.toml", &pg.toml("wv_missing")), ("report.wv", flow)],
    );
    let (code, summary) = run(&dir, "report.wv", PASSWORD);
    assert_ne!(code, Some(0));
    let error = error_of(&summary, "there");
    assert!(error.starts_with("connector `pg`: "), "{error}");
    assert!(
        error.contains("relation \"public.no_such_table\" does not exist"),
        "{error}"
    );
    assert_eq!(stage(&summary, "there")["attempts"], 1);
    // The stage's retries try it again on the server.
    let retried = "flow Report = {\n  stage there [retries: 2, retry_delay: 10ms] on pg = from public.no_such_table\n}\n";
    std::fs::write(dir.join("report.wv"), retried).unwrap();
    let (code, summary) = run(&dir, "report.wv", PASSWORD);
    assert_ne!(code, Some(0));
    assert_eq!(stage(&summary, "there")["attempts"], 3, "{summary}");
    assert!(error_of(&summary, "there").contains("does not exist"));
}

#[test]
fn postgres_a_timeout_cancels_the_query_on_the_server() {
    let pg = server();
    pg.database("wv_timeout");
    // A view that sleeps: the stage's query runs it on the server.
    pg.psql(
        "wv_timeout",
        "CREATE VIEW slow_rows AS SELECT 1 AS id FROM (SELECT pg_sleep(600)) AS slept",
    );
    let flow = "flow Report = {\n  stage slow [timeout: 1s] on pg = from public.slow_rows\n}\n";
    let dir = scratch(
        "postgres_timeout",
        &[("wvflow.toml", &pg.toml("wv_timeout")), ("report.wv", flow)],
    );
    let (code, summary) = run(&dir, "report.wv", PASSWORD);
    assert_ne!(code, Some(0));
    let error = error_of(&summary, "slow");
    assert!(
        error.starts_with("connector `pg`: the stage's timeout of 1s passed"),
        "{error}"
    );
    // The server is no longer running it (asked until a generous deadline).
    let sleeping = "SELECT count(*) FROM pg_stat_activity WHERE datname = 'wv_timeout' \
                    AND state = 'active' AND query LIKE '%slow_rows%' AND pid <> pg_backend_pid()";
    wait_for(
        Duration::from_secs(60),
        "the query to leave the server",
        || pg.psql("wv_timeout", sleeping).trim() == "0",
    );
}

/// Filters and tails of the generated pipelines: every filter with every tail, each run on
/// SQLite, on PostgreSQL and (in a build with it) on DuckDB.
const FILTERS: [&str; 6] = [
    "",
    "| where a > 2",
    "| where s like 'A%'",
    "| where flag",
    "| where not flag or a is null",
    "| where s = 'it''s' or s = 'say \"hi\"'",
];

/// Each tail, and whether its rows come in a defined order.
const TAILS: [(&str, bool); 11] = [
    (
        "| select id, a / 2 as half, a % 3 as m, a / 0 as z, s || '!' as t2",
        false,
    ),
    (
        "| group by flag | select flag, count(*) as n, sum(a) as total, min(a) as lo, max(s) as hi, avg(x) as mean",
        false,
    ),
    ("| order by a desc, id | limit 3", true),
    ("| order by s, id", true),
    (
        "| join other on data.id = other.id | select id, label, a",
        false,
    ),
    (
        "| select id, round(x, 1) as r, upper(s) as up, length(s) as len, coalesce(a, -1) as c, \
         instr(s, 'p') as i, substr(s, 2, 3) as sub, trim(s) as tr, min(a, id) as mn, \
         replace(s, 'p', 'P') as rp, substr(s, -2, 2) as tail",
        false,
    ),
    (
        "| select id, flag, not flag as nf, a > 2 as big, x * 2 as dx",
        false,
    ),
    (
        "| select id, at, d, d * 2 as dd, at is null as never | order by at, id",
        true,
    ),
    (
        "| where at > timestamp '2026-01-01T00:00:00Z' and at <= timestamp '2026-03-01T09:30:00.000Z' \
         | select id, at, at <> timestamp '2026-03-01T10:00:00Z' as other, at < date '2026-03-01' as early",
        false,
    ),
    (
        "| select id, at + d as later, at - d as earlier, d + at as also, at - 250ms as odd, \
         at + 1500ms - 1500ms as back, at - timestamp '2026-01-01T00:00:00Z' as since, \
         d + 1h as longer, d - 30s as shorter, date '2026-03-01' + d as from_day",
        false,
    ),
    (
        "| select id, at >= timestamp '2026-03-01T09:30:00Z' as recent, \
         date '2026-03-01' < date '2026-03-02' as before, \
         date '2026-03-02' - date '2026-03-01' as day, at - date '2026-03-01' as into_day \
         | order by at, id",
        true,
    ),
];

#[test]
fn postgres_and_duckdb_generated_flows_give_the_same_rows_as_sqlite() {
    let pg = server();
    pg.database("wv_differential");
    let duck = cfg!(feature = "duckdb");
    let mut flow = String::from(
        "flow Differential = {\n  stage data = from [\
         [1, 5, 'apple', true, 0.5, timestamp '2026-03-01T10:00:00Z', 90s], \
         [2, null, 'Avocado', false, 1.25, null, 1h], \
         [3, -7, 'it''s', null, 2.5, timestamp '2025-12-31T23:59:59Z', null], \
         [4, 3, null, true, -3.75, timestamp '2026-03-01T09:30:00Z', 250ms], \
         [5, 10, 'banana', false, null, timestamp '2026-01-15T00:00:00Z', 0s], \
         [6, 2, ' a_b ', true, 0.5, null, 2d], \
         [7, -1, 'say \"hi\"', false, 8.0, timestamp '2026-03-01T10:00:00Z', 45m]\
         ] as t(id, a, s, flag, x, at, d)\n  \
         stage other = from [[1, 'one'], [2, 'two'], [5, 'five'], [9, 'nine']] as u(id, label)\n",
    );
    let mut pipelines = Vec::new();
    for filter in FILTERS {
        for (tail, ordered) in TAILS {
            let i = pipelines.len();
            let ops = format!("{filter} {tail}");
            flow.push_str(&format!("  stage lite_{i} = from data {ops}\n"));
            flow.push_str(&format!("  stage pg_{i} on pg = from data {ops}\n"));
            if duck {
                flow.push_str(&format!("  stage duck_{i} on duck = from data {ops}\n"));
            }
            pipelines.push((ops, ordered));
        }
    }
    flow.push_str("}\n");
    let dir = scratch(
        "postgres_differential",
        &[
            (
                "wvflow.toml",
                &format!(
                    "{}\n[connectors.duck]\nkind = \"duckdb\"\npath = \"d.duckdb\"\n",
                    pg.toml("wv_differential")
                ),
            ),
            ("d.wv", &flow),
        ],
    );
    let (code, summary) = run(&dir, "d.wv", PASSWORD);
    assert_eq!(code, Some(0), "{summary}");
    for (i, (ops, ordered)) in pipelines.iter().enumerate() {
        let read = |prefix: &str| {
            let mut rows = rows(&dir, &summary, &format!("{prefix}_{i}"));
            if !ordered {
                rows.sort_by_key(|r: &serde_json::Value| r.to_string());
            }
            rows
        };
        let lite = read("lite");
        assert_eq!(
            lite,
            read("pg"),
            "`from data {ops}` differs (SQLite, then PostgreSQL)"
        );
        if duck {
            assert_eq!(
                lite,
                read("duck"),
                "`from data {ops}` differs (SQLite, then DuckDB)"
            );
        }
        assert!(
            !lite.is_empty() || ops.contains("where"),
            "`{ops}` gave no rows"
        );
    }
}

#[test]
fn postgres_what_its_dialect_cannot_express_is_refused_at_check() {
    let toml = "[connectors.pg]\nkind = \"postgres\"\nurl = \"postgresql://app:${PGPASSWORD}@127.0.0.1:1/a\"\n";
    let flow = "flow Report = {\n  signal go = false\n  stage orders = from [[1, 'open']] as t(id, status)\n  \
                stage tagged on pg = from orders | select id, hash(status) as tag, now() as at\n  \
                stage late on pg = from orders | select id, 1h || ' late' as late\n  \
                stage rows on pg = from 'orders.csv' | limit 1\n  \
                stage fine on pg = from orders | select id, round(id, 1) as r, instr(status, 'p') as i\n  \
                stage keyed [idempotency_key: 'k'] on pg = from orders\n  \
                stage waits on pg = from orders | where signal.go\n}\n";
    let dir = scratch(
        "postgres_refused",
        &[
            ("wvflow.toml", toml),
            ("report.wv", flow),
            ("orders.csv", "id\n1\n"),
        ],
    );
    let o = wvflow_in(&dir, PASSWORD, &["check", ".", "--format", "json"]);
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
    assert_eq!(
        codes,
        [
            ("E0709", 3),
            ("E0709", 3),
            ("E0709", 4),
            ("E0710", 5),
            ("E0710", 7),
            ("E0709", 8)
        ],
        "{found:?}"
    );
    assert!(
        found[0]["message"].as_str().unwrap().contains(
            "`hash()` has no PostgreSQL form: the stage runs on PostgreSQL connector `pg`"
        ),
        "{found:?}"
    );
    // Nothing ran.
    let o = wvflow_in(&dir, PASSWORD, &["run", "report.wv"]);
    assert_ne!(o.status.code(), Some(0));
    assert!(!dir.join(".wvflow").exists());
    let o = crate::common::wvflow(&["explain", "E0709"]);
    assert!(
        String::from_utf8_lossy(&o.stdout).starts_with("E0709: expression a connector cannot run")
    );
}

#[test]
fn postgres_a_cancelled_run_cancels_the_query_on_the_server() {
    let pg = server();
    pg.database("wv_cancel");
    pg.psql(
        "wv_cancel",
        "CREATE VIEW sleepy AS SELECT 1 AS id FROM (SELECT pg_sleep(600)) AS slept",
    );
    let flow = "flow Report = {\n  stage slow on pg = from public.sleepy\n}\n";
    let dir = scratch(
        "postgres_cancel",
        &[("wvflow.toml", &pg.toml("wv_cancel")), ("report.wv", flow)],
    );
    let child = Command::new(env!("CARGO_BIN_EXE_wvflow"))
        .args(["run", "report.wv", "--format", "json"])
        .current_dir(&dir)
        .env("PGPASSWORD", PASSWORD)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let sleeping = "SELECT count(*) FROM pg_stat_activity WHERE datname = 'wv_cancel' \
                    AND state = 'active' AND query LIKE '%sleepy%' AND pid <> pg_backend_pid()";
    wait_for(
        Duration::from_secs(60),
        "the query to run on the server",
        || pg.psql("wv_cancel", sleeping).trim() == "1",
    );
    // SIGTERM cancels the run, as Ctrl-C does.
    // SAFETY: kill sends a signal to the child this test started.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let out = child.wait_with_output().unwrap();
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(stage(&summary, "slow")["state"], "cancelled", "{summary}");
    wait_for(
        Duration::from_secs(60),
        "the query to leave the server",
        || pg.psql("wv_cancel", sleeping).trim() == "0",
    );
}

/// The rows of `stage` of an exported run, from its table file in the state.
fn state_rows(state: &Path, flow: &str, stage: &str) -> Vec<serde_json::Value> {
    let db = state.join(format!("runs/{flow}/r1/stages/{stage}.db"));
    let conn = rusqlite::Connection::open(&db).unwrap();
    let table: String = conn
        .query_row(
            "SELECT name FROM sqlite_master WHERE type = 'table'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let mut query = conn.prepare(&format!("SELECT * FROM \"{table}\"")).unwrap();
    let names: Vec<String> = query.column_names().map(str::to_string).collect();
    query
        .query_map([], |r| {
            let mut row = serde_json::Map::new();
            for (i, name) in names.iter().enumerate() {
                let value = match r.get_ref(i)? {
                    rusqlite::types::ValueRef::Null => serde_json::Value::Null,
                    rusqlite::types::ValueRef::Integer(n) => n.into(),
                    rusqlite::types::ValueRef::Real(x) => x.into(),
                    rusqlite::types::ValueRef::Text(t) => {
                        String::from_utf8_lossy(t).into_owned().into()
                    }
                    rusqlite::types::ValueRef::Blob(_) => panic!("a blob in {stage}"),
                };
                row.insert(name.clone(), value);
            }
            Ok(serde_json::Value::Object(row))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// An exported flow with a stage on PostgreSQL: its tasks (`wvflow stage run`) open the
/// connector from the flow's folder with the secret from their own environment, and the run
/// ends as `wvflow run` ends, with the same rows; the exporters name the variable the workers
/// need, and the secret is in no exported file, no file of the state and no task's output.
#[test]
fn postgres_an_exported_run_ends_as_wvflow_run_ends_and_never_holds_the_secret() {
    use crate::export::{Order, drive_on, outcome, wvflow_at};
    let pg = server();
    pg.database("wv_export");
    let dir = scratch(
        "postgres_export",
        &[
            ("examples/wvflow.toml", &pg.toml("wv_export")),
            ("examples/orders.csv", ORDERS_CSV),
            ("examples/report.wv", SHIP),
        ],
    );
    let flows = dir.join("examples");
    let expected = serde_json::json!([
        {"region": null, "twice": 14},
        {"region": "north", "twice": 30},
        {"region": "south", "twice": 40}
    ]);
    let (code, reference) = run(&flows, "report.wv", PASSWORD);
    assert_eq!(code, Some(0), "{reference}");
    assert_eq!(
        serde_json::Value::Array(rows(&flows, &reference, "after")),
        expected
    );
    pg.psql("wv_export", "DROP TABLE public.totals");

    let mut shown = Vec::new();
    for (target, file) in [("airflow", "report.py"), ("argo", "report.yaml")] {
        let out = dir.join(file);
        let o = wvflow_in(
            &dir,
            PASSWORD,
            &["export", "examples/report.wv", "--target", target, "-o"]
                .into_iter()
                .chain([out.to_str().unwrap()])
                .collect::<Vec<_>>(),
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
                "warning: stage `totals`: runs on connector `pg` from the workers, which need \
                 the workspace's `wvflow.toml` in the flow's folder (or above it), and its \
                 url's environment variable `PGPASSWORD` set in the workers' environment"
            ),
            "{target}: {warned}"
        );
        let exported = std::fs::read_to_string(&out).unwrap();
        // Its `save to` writes the server, not the shared workspace database: no turn taken.
        assert!(!exported.contains("mutexes"), "{exported}");
        assert!(!exported.contains("pool=WORKSPACE_POOL"), "{exported}");
        shown.extend([o.stdout, o.stderr, exported.into_bytes()]);
    }
    let plan = wvflow_at(&flows, &["plan", "report.wv", "--format", "json"]);
    assert!(plan.status.success());
    std::fs::write(dir.join("plan.json"), &plan.stdout).unwrap();
    shown.push(plan.stdout);

    // The tasks run with the secret in their environment, as the workers would.
    let state = dir.join("state");
    let driven = drive_on(
        &dir,
        (state.to_str().unwrap(), &[("PGPASSWORD", PASSWORD)]),
        &dir.join("plan.json"),
        &serde_json::json!({}),
        "2026-11-26T00:00:00Z",
        Order::Plan,
    );
    assert_eq!(outcome(&driven), outcome(&reference), "{driven}");
    assert_eq!(
        serde_json::Value::Array(state_rows(&state, "Report", "after")),
        expected
    );
    assert_eq!(
        pg.psql(
            "wv_export",
            "SELECT region, total, n FROM public.totals ORDER BY region NULLS FIRST"
        ),
        "|7|1\nnorth|15|2\nsouth|20|1\n"
    );

    // A task without the variable, or with a wrong password, fails for good naming the
    // variable or the server's refusal, as `wvflow run` does: not retried (exit 98).
    let task = |run_id: &str, password: Option<&str>, args: &[&str]| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_wvflow"));
        c.args(["stage"])
            .args(args)
            .args(["--state", state.to_str().unwrap(), "--run-id", run_id])
            .args(["--cwd", flows.to_str().unwrap(), "--flow", "Report"])
            .current_dir(&dir)
            .env_remove("PGPASSWORD");
        if let Some(p) = password {
            c.env("PGPASSWORD", p);
        }
        c.output().unwrap()
    };
    let plan_path = dir.join("plan.json");
    // And one with it, whose outputs are read too: what a worker's log would show.
    for (run_id, password, said) in [
        ("r2", None, "PGPASSWORD"),
        ("r3", Some("wrong-9f3b"), "password authentication failed"),
        ("r4", Some(PASSWORD), ""),
    ] {
        let ok = run_id == "r4";
        for (args, code) in [
            (vec!["init", "--plan", plan_path.to_str().unwrap()], 0),
            (vec!["run", "orders"], 0),
            (vec!["run", "totals"], if ok { 0 } else { 98 }),
            (vec!["run", "after"], if ok { 0 } else { 99 }),
            (vec!["finish"], if ok { 0 } else { 98 }),
        ] {
            let o = task(run_id, password, &args);
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            );
            assert_eq!(o.status.code(), Some(code), "{run_id} {args:?}: {text}");
            if args == ["run", "totals"] {
                assert!(text.contains(said), "{run_id}: {text}");
                assert!(!text.contains("wrong-9f3b"), "{text}");
            }
            shown.extend([o.stdout, o.stderr]);
        }
    }
    for file in files(&state) {
        shown.push(std::fs::read(&file).unwrap_or_default());
    }
    for bytes in &shown {
        assert!(
            !bytes
                .windows(PASSWORD.len())
                .any(|w| w == PASSWORD.as_bytes()),
            "the password was written: {}",
            String::from_utf8_lossy(bytes)
        );
    }
}
