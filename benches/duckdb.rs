//! The data path on a DuckDB connector: `cargo bench --features duckdb --bench duckdb`
//! (`-- --rows 1000000,5000000 --runs 5`).
//!
//! A CSV of orders (`benches/data/generate.py`, the same bytes as `benches/data/measure.sh`'s)
//! goes through one flow whose only stage runs on DuckDB: `from 'orders.csv' | where ... |
//! group by customer | select ... | order by revenue desc | limit 100`, so DuckDB reads the
//! file itself (`read_csv`). The reference is DuckDB's own time on the same query, through the
//! same library (libduckdb 1.5.6, linked as wvflow links it), in a process of its own (this
//! bench started again with `--reference CSV`), in the same session: both are whole
//! processes, from start to exit. Runs alternate between the two; each figure is the median.
//! The answers are compared first (the top 100, revenue to the cent).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// The query, as the reference writes it for DuckDB (reading the file as the plan does); the
/// flow's stage says the same in wvflow.
fn query(csv: &str) -> String {
    format!(
        "SELECT customer, count(*) AS orders, sum(amount) AS revenue \
         FROM {} \
         WHERE status = 'paid' AND amount > 100 \
         GROUP BY customer ORDER BY revenue DESC LIMIT 100",
        wvflow::plan::sql::duckdb_csv(csv)
    )
}

const FLOW: &str = "flow Top = {
  stage top on duck = from 'orders.csv'
    | where status = 'paid' and amount > 100
    | group by customer
    | select customer, count(*) as orders, sum(amount) as revenue
    | order by revenue desc
    | limit 100
}
";

/// The reference: the query in DuckDB, in this process; its rows as CSV with `ANSWER=1`.
fn reference(csv: &str) {
    let db = duckdb::Connection::open_in_memory().expect("DuckDB opens");
    let mut statement = db.prepare(&query(csv)).expect("the query prepares");
    let rows: Vec<(String, i64, f64)> = statement
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .expect("the query runs")
        .map(|r| r.expect("a row"))
        .collect();
    assert_eq!(rows.len(), 100);
    if std::env::var_os("ANSWER").is_some() {
        for (customer, orders, revenue) in rows {
            println!("{customer},{orders},{revenue}");
        }
    }
}

fn seconds(mut command: Command) -> f64 {
    let started = Instant::now();
    let out = command.output().expect("the command starts");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    started.elapsed().as_secs_f64()
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

/// `(customer, orders, revenue to the cent)` of CSV lines.
fn answer(text: &str) -> Vec<(String, i64, i64)> {
    text.lines()
        .filter(|l| !l.is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            let revenue: f64 = f[2].parse().unwrap();
            (
                f[0].to_string(),
                f[1].parse().unwrap(),
                (revenue * 100.0).round() as i64,
            )
        })
        .collect()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--reference") {
        reference(&args[i + 1]);
        return;
    }
    let option = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1).cloned())
    };
    let sizes: Vec<u64> = option("--rows")
        .unwrap_or_else(|| "1000000,5000000".to_string())
        .split(',')
        .map(|n| n.parse().expect("--rows N,N"))
        .collect();
    let runs: usize = option("--runs").map_or(5, |n| n.parse().expect("--runs N"));
    let wvflow = PathBuf::from(env!("CARGO_BIN_EXE_wvflow"));
    let me = std::env::current_exe().unwrap();
    let work = Path::new(env!("CARGO_TARGET_TMPDIR")).join("bench_duckdb");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).unwrap();
    std::fs::write(
        work.join("wvflow.toml"),
        "[connectors.duck]\nkind = \"duckdb\"\npath = \"bench.duckdb\"\n",
    )
    .unwrap();
    std::fs::write(work.join("top.wv"), FLOW).unwrap();
    let csv = work.join("orders.csv");
    let generate = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/data/generate.py");
    println!("| rows | CSV | `wvflow run`, stage on duck | DuckDB alone (same library) | ratio |");
    println!("|---|---|---|---|---|");
    for n in sizes {
        let ok = Command::new("python3")
            .arg(&generate)
            .arg(n.to_string())
            .arg(&csv)
            .status()
            .expect("python3 runs");
        assert!(ok.success());
        let run = || {
            let mut c = Command::new(&wvflow);
            c.args(["run", "top.wv", "--format", "json"])
                .current_dir(&work);
            c
        };
        let refer = || {
            let mut c = Command::new(&me);
            c.args(["--reference", csv.to_str().unwrap()]);
            c
        };
        // The same answer, or nothing is measured.
        let out = run().output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let rows = Command::new(&wvflow)
            .args(["runs", "rows", summary["run_id"].as_str().unwrap(), "top"])
            .args(["--format", "csv", "--limit", "100"])
            .current_dir(&work)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&rows.stdout);
        let theirs = refer().env("ANSWER", "1").output().unwrap();
        let expected = answer(&String::from_utf8_lossy(&theirs.stdout));
        assert_eq!(expected.len(), 100);
        assert_eq!(
            answer(text.split_once('\n').unwrap().1),
            expected,
            "the answers differ"
        );
        let (mut ours, mut duck) = (Vec::new(), Vec::new());
        for _ in 0..runs {
            ours.push(seconds(run()));
            duck.push(seconds(refer()));
        }
        let (ours, duck) = (median(ours), median(duck));
        let mb = std::fs::metadata(&csv).unwrap().len() as f64 / 1e6;
        println!(
            "| {n} | {mb:.0} MB | {ours:.3} s | {duck:.3} s | {:.2}x |",
            ours / duck
        );
    }
}
