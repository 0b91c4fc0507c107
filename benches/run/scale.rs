//! `--stages N,N,...`: how the executor grows with the number of stages (issue 32).
//!
//! For each N it writes two flows under `target/bench-run/scale/`: a chain of N query stages
//! (each reads the one before) and a fan-out of N query stages from one source merged by one
//! stage. Each runs as a user runs it, `wvflow run FILE` (`--wvflow PATH` picks another
//! binary, say an older build), under `/usr/bin/time` for the peak RSS; `wvflow check FILE`
//! on the same file gives the front end's share. The reference, in the same process and the
//! same run, is the same SQL alone: each stage's query over its upstream's rows, inserted as
//! its rows into one rows table keyed by stage, a transaction per stage, on one connection.
//! `--timeout S` (600) stops a run that takes longer; `--shapes chain,fan` picks the flows.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// The two shapes of flow measured.
#[derive(Clone, Copy, PartialEq)]
enum Shape {
    Chain,
    Fan,
}

impl Shape {
    fn name(self) -> &'static str {
        match self {
            Shape::Chain => "chain",
            Shape::Fan => "fan",
        }
    }

    /// The flow of `n` stages (a fan-out has `n` branches, a source and the merge).
    fn flow(self, n: usize) -> String {
        let mut src = String::new();
        match self {
            Shape::Chain => {
                src.push_str("flow chain = {\n  stage s0 = from [[1, 'a'], [2, 'b'], [3, 'c']] as t(id, name)\n");
                for i in 1..n {
                    let _ = writeln!(src, "  stage s{i} = from s{} | where id > 0", i - 1);
                }
                src.push_str("}\n");
            }
            Shape::Fan => {
                src.push_str("flow fan = {\n  stage source = from [[1, 'a'], [2, 'b'], [3, 'c']] as t(id, name)\n");
                for i in 0..n {
                    let _ = writeln!(src, "  stage b{i} = from source | where id <> {}", i % 3);
                }
                let inputs: Vec<String> = (0..n).map(|i| format!("b{i}")).collect();
                let _ = writeln!(src, "  stage all = merge {}\n}}", inputs.join(", "));
            }
        }
        src
    }

    /// Stages a run of `n` has.
    fn stages(self, n: usize) -> usize {
        match self {
            Shape::Chain => n,
            Shape::Fan => n + 2,
        }
    }
}

/// What one `wvflow` command did: wall time, peak RSS, whether it succeeded, its output.
struct Measured {
    seconds: f64,
    peak_mb: f64,
    ok: bool,
    timed_out: bool,
    tail: String,
}

/// Runs `wvflow ARGS` under `/usr/bin/time`, in `dir`, stopped after `timeout`.
fn measure(wvflow: &Path, dir: &Path, args: &[&str], timeout: Duration) -> Measured {
    let times = dir.join("time.txt");
    let started = Instant::now();
    let mut child = Command::new("/usr/bin/time")
        .arg("-f")
        .arg("%M")
        .arg("-o")
        .arg(&times)
        .arg(wvflow)
        .args(args)
        .current_dir(dir)
        .stdout(std::fs::File::create(dir.join("stdout.txt")).unwrap())
        .stderr(std::fs::File::create(dir.join("stderr.txt")).unwrap())
        .spawn()
        .unwrap();
    let mut timed_out = false;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if started.elapsed() > timeout {
            timed_out = true;
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let seconds = started.elapsed().as_secs_f64();
    let peak_kb: f64 = std::fs::read_to_string(&times)
        .unwrap_or_default()
        .lines()
        .last()
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or(f64::NAN);
    let out = std::fs::read_to_string(dir.join("stdout.txt")).unwrap_or_default()
        + &std::fs::read_to_string(dir.join("stderr.txt")).unwrap_or_default();
    let tail: Vec<&str> = out
        .lines()
        .filter(|l| l.contains("failed") || l.contains("locked") || l.contains("error"))
        .take(3)
        .collect();
    Measured {
        seconds,
        peak_mb: peak_kb / 1024.0,
        ok: status.is_some_and(|s| s.success()),
        timed_out,
        tail: tail.join(" | "),
    }
}

/// The same SQL alone, on one connection: each stage's query over its upstream's rows,
/// inserted into one rows table under the stage's own range of row ids, a transaction per
/// stage. Seconds.
fn reference(shape: Shape, n: usize, dir: &Path) -> f64 {
    let db = dir.join("reference.db");
    let _ = std::fs::remove_file(&db);
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;
         CREATE TABLE rows (id INTEGER PRIMARY KEY, a0, a1);
         INSERT INTO rows VALUES (1, 1, 'a'), (2, 2, 'b'), (3, 3, 'c');",
    )
    .unwrap();
    const SPAN: i64 = 1 << 32;
    let started = Instant::now();
    let stage = |from: i64, to: i64, filter: &str| {
        conn.execute_batch("BEGIN").unwrap();
        conn.execute(
            &format!(
                "INSERT INTO rows (id, a0, a1) SELECT id - ?1 + ?2, a0, a1 FROM rows
                 WHERE id > ?1 AND id < ?1 + {SPAN} AND {filter}"
            ),
            [from * SPAN, to * SPAN],
        )
        .unwrap();
        conn.execute_batch("COMMIT").unwrap();
    };
    match shape {
        Shape::Chain => (1..n as i64).for_each(|i| stage(i - 1, i, "a0 > 0")),
        Shape::Fan => {
            (1..=n as i64).for_each(|i| stage(0, i, &format!("a0 <> {}", (i - 1) % 3)));
            // The merge reads each branch, then writes their rows as one more stage.
            conn.execute_batch("BEGIN").unwrap();
            let mut read = conn
                .prepare_cached("SELECT a0, a1 FROM rows WHERE id > ?1 AND id < ?1 + 4294967296")
                .unwrap();
            let mut rows = 0;
            for i in 1..=n as i64 {
                rows += read.query_map([i * SPAN], |_| Ok(())).unwrap().count();
            }
            drop(read);
            let merged = (n as i64 + 1) * SPAN;
            conn.execute(
                "INSERT INTO rows (id, a0, a1) SELECT ?1 + row_number() OVER (ORDER BY id), a0, a1
                 FROM rows WHERE id > ?2 AND id < ?1",
                [merged, SPAN],
            )
            .unwrap();
            conn.execute_batch("COMMIT").unwrap();
            // A branch of a multiple of 3 keeps the 3 rows, any other 2.
            assert_eq!(
                rows,
                (0..n)
                    .map(|i| if i % 3 == 0 { 3 } else { 2 })
                    .sum::<usize>()
            );
        }
    }
    started.elapsed().as_secs_f64()
}

pub fn scale(args: &[String]) {
    let value = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|at| args.get(at + 1))
    };
    let sizes: Vec<usize> = value("--stages")
        .map(|s| s.split(',').filter_map(|n| n.parse().ok()).collect())
        .unwrap_or_else(|| vec![1_000, 10_000, 30_000]);
    let shapes: Vec<Shape> = value("--shapes")
        .map_or("chain,fan", String::as_str)
        .split(',')
        .filter_map(|s| match s {
            "chain" => Some(Shape::Chain),
            "fan" => Some(Shape::Fan),
            _ => None,
        })
        .collect();
    let timeout = Duration::from_secs(
        value("--timeout")
            .and_then(|t| t.parse().ok())
            .unwrap_or(600),
    );
    let wvflow: PathBuf = value("--wvflow")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_wvflow")))
        .canonicalize()
        .unwrap();
    println!(
        "shape\tstages\trun s\tms/stage\tcheck ms/stage\treference ms/stage\tbeyond SQL and check ms/stage\tratio to reference\tpeak RSS MB\tstate"
    );
    for shape in shapes {
        for &n in &sizes {
            let dir = PathBuf::from("target/bench-run/scale").join(format!("{}-{n}", shape.name()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            let dir = dir.canonicalize().unwrap();
            std::fs::write(dir.join("flow.wv"), shape.flow(n)).unwrap();
            let reference = reference(shape, n, &dir);
            let check = measure(&wvflow, &dir, &["check", "flow.wv"], timeout);
            let run = measure(&wvflow, &dir, &["run", "flow.wv"], timeout);
            let stages = shape.stages(n) as f64;
            let per = |s: f64| s * 1e3 / stages;
            let state = if run.timed_out {
                format!("stopped after {:.0} s", run.seconds)
            } else if run.ok {
                "success".to_string()
            } else {
                format!("failed: {}", run.tail)
            };
            println!(
                "{}\t{}\t{:.1}\t{:.3}\t{:.3}\t{:.3}\t{:.3}\t{:.2}\t{:.1}\t{state}",
                shape.name(),
                shape.stages(n),
                run.seconds,
                per(run.seconds),
                per(check.seconds),
                per(reference),
                per(run.seconds - check.seconds - reference),
                run.seconds / reference,
                run.peak_mb,
            );
        }
    }
}
