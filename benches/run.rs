//! Executor overhead: `cargo bench --bench run`.
//!
//! - a chain of 1,000 query stages (each reads the one before);
//! - a fan-out of 1,000 query stages from one source, merged by one stage;
//! - `each` over 10,000 rows with a trivial activity (`cat`), at `concurrency: 8`.
//!
//! `-- --fan-out-items N` (default 1,000,000): the `wvflow` binary runs an `each` over N rows
//! whose items sleep; reports the time to the first item, peak RSS and how long a SIGTERM takes
//! to end the run, against the same rows counted by a query; exits 1 when peak RSS passes 64 MB.
//!
//! Each runs twice: without the run store, and recorded in it as `wvflow run` does (every
//! transition committed to the workspace database before the executor goes on).
//!
//! `-- --stages 1000,10000,30000,100000`: chains and fan-outs + merge of that many stages, run
//! by the `wvflow` binary, against the same SQL alone (`run/scale.rs`).
//!
//! `-- --long-loop 1000,10000,30000`: a `while` loop of that many iterations with and without
//! `continue_as_new` (`run/long_loop.rs`).
//!
//! `-- --tests`: the examples' tests, and one test's overhead against `wvflow run` of the same
//! flow (`run/tests.rs`).
//!
//! Per-stage figures include planning, SQLite materialization of every stage's rows and state
//! keeping; peak RSS is read from /proc.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Instant;
use wvflow::check::Index;
use wvflow::plan::lower;
use wvflow::runtime::activity::ProcessLauncher;
use wvflow::runtime::clock::SystemClock;
use wvflow::runtime::engine::{Context, Progress, execute};
use wvflow::runtime::retry::SeededRandom;
use wvflow::runtime::runs::journal::{Journal, NewRun};
use wvflow::runtime::store::StoreConfig;
use wvflow::workspace::Workspace;

#[path = "run/scale.rs"]
mod scale;

#[path = "run/long_loop.rs"]
mod long_loop;

#[path = "run/tests.rs"]
mod tests;

fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        .unwrap_or(0.0)
        / 1024.0
}

fn run(name: &str, src: &str, recorded: bool) -> (f64, usize, String) {
    let dir = PathBuf::from("target/bench-run").join(format!("{name}-{recorded}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut workspace = Workspace::default();
    workspace.add(dir.join("flow.wv"), src.to_string());
    assert!(workspace.diagnostics().next().is_none());
    let started = Instant::now();
    let index = Index::new(&workspace);
    let plan = lower(&workspace, &index, index.flows[0]);
    let stores = StoreConfig {
        workspace_db: dir.join("workspace.db"),
        run_db: dir.join("run.db"),
        base: dir.clone(),
    };
    let random = SeededRandom::new(1);
    let cancel: Arc<AtomicBool> = Default::default();
    let journal = recorded.then(|| {
        let new = NewRun {
            run_id: name,
            plan: &plan,
            args: &BTreeMap::new(),
            run_time: "2026-01-01T00:00:00Z",
            workspace: ".",
            run_db: "run.db",
            parent: None,
            jumped_from: None,
            continued_from: None,
            gate: false,
            once_per_window: false,
            skip: None,
        };
        Journal::create(&stores.workspace_db, &new, cancel.clone(), &Unheard)
            .unwrap()
            .0
    });
    let ctx = Context {
        clock: &SystemClock::default(),
        epoch: wvflow::runtime::schedule::utc_now(),
        random: &random,
        launcher: &ProcessLauncher,
        cwd: dir.clone(),
        run_id: name.into(),
        flow: plan.flow.name.clone(),
        params: Default::default(),
        cancel,
        flows: None,
        jumps: Default::default(),
        progress: journal.as_ref().map(|j| j as &dyn Progress),
        compensate_on_cancel: true,
        paused: Default::default(),
        resumed: Vec::new(),
        compensated: Vec::new(),
        single_attempt: None,
        inbox: None,
        continues: true,
    };
    let summary = execute(&plan, &stores, &ctx, 2);
    if let Some(journal) = &journal {
        journal.finish(&summary);
    }
    let seconds = started.elapsed().as_secs_f64();
    if let Some(failed) = summary.stages.iter().find(|s| s.state == "failed") {
        eprintln!("{name}: stage {} failed: {:?}", failed.stage, failed.error);
    }
    (seconds, summary.stages.len(), summary.state.to_string())
}

fn main() {
    if !Path::new("Cargo.toml").exists() {
        eprintln!("run from the repository root");
        return;
    }
    let args: Vec<String> = std::env::args().collect();
    if let Some(at) = args.iter().position(|a| a == "--output-rows") {
        let n = args
            .get(at + 1)
            .and_then(|n| n.parse().ok())
            .unwrap_or(1_000_000);
        return activity_output(n);
    }
    if let Some(at) = args.iter().position(|a| a == "--fan-out-items") {
        let n = args
            .get(at + 1)
            .and_then(|n| n.parse().ok())
            .unwrap_or(1_000_000);
        return fan_out_items(n);
    }
    if args.iter().any(|a| a == "--stages") {
        return scale::scale(&args);
    }
    if args.iter().any(|a| a == "--long-loop") {
        return long_loop::long_loop(&args);
    }
    if args.iter().any(|a| a == "--tests") {
        return tests::tests();
    }
    if args.iter().any(|a| a == "--sh-stages") {
        return sh_stages(200);
    }
    let mut chain = String::from(
        "flow chain = {\n  stage s0 = from [[1, 'a'], [2, 'b'], [3, 'c']] as t(id, name)\n",
    );
    for i in 1..1000 {
        let _ = writeln!(chain, "  stage s{i} = from s{} | where id > 0", i - 1);
    }
    chain.push_str("}\n");
    for recorded in [false, true] {
        let (t, n, state) = run("chain", &chain, recorded);
        println!(
            "chain of {n} query stages{}: {:.0} ms, {:.3} ms a stage ({state})",
            store_label(recorded),
            t * 1e3,
            t * 1e3 / n as f64
        );
    }

    let mut fan = String::from(
        "flow fan = {\n  stage source = from [[1, 'a'], [2, 'b'], [3, 'c']] as t(id, name)\n",
    );
    for i in 0..1000 {
        let _ = writeln!(fan, "  stage b{i} = from source | where id <> {}", i % 3);
    }
    let inputs: Vec<String> = (0..1000).map(|i| format!("b{i}")).collect();
    let _ = writeln!(fan, "  stage all = merge {}\n}}", inputs.join(", "));
    for recorded in [false, true] {
        let (t, n, state) = run("fan", &fan, recorded);
        println!(
            "fan-out of 1,000 stages + merge ({n} stages){}: {:.0} ms, {:.3} ms a stage ({state})",
            store_label(recorded),
            t * 1e3,
            t * 1e3 / n as f64
        );
    }

    let rows: Vec<String> = (0..10_000).map(|i| format!("[{i}]")).collect();
    let each = format!(
        "activity echo_row(n: int) = exec('printf', '{{\"n\": %s}}\\n', n)\nflow each_rows = {{ stage items [concurrency: 8] = from [{}] as t(n) | each echo_row(_.n) }}\n",
        rows.join(", ")
    );
    for recorded in [false, true] {
        let (t, _, state) = run("each", &each, recorded);
        println!(
            "each over 10,000 rows (printf, concurrency 8){}: {:.1} s, {:.0} calls/s ({state})",
            store_label(recorded),
            t,
            10_000.0 / t
        );
    }
    println!("peak RSS {:.1} MB", peak_rss_mb());
}

/// `--sh-stages`: a chain of `n` stages that each run `sh("true")`, against spawning
/// `sh -c true` `n` times (the physical limit), in the same run.
fn sh_stages(n: usize) {
    let started = Instant::now();
    for _ in 0..n {
        let status = std::process::Command::new("sh")
            .args(["-c", "true"])
            .status()
            .unwrap();
        assert!(status.success());
    }
    let reference = started.elapsed().as_secs_f64();
    let mut chain =
        String::from("activity noop = sh(\"true\")\nflow shs = {\n  stage s0 = noop()\n");
    for i in 1..n {
        let _ = writeln!(chain, "  stage s{i} if s{}.success = noop()", i - 1);
    }
    chain.push_str("}\n");
    let (t, stages, state) = run("sh", &chain, true);
    println!(
        "chain of {stages} sh activity stages, recorded: {:.2} ms a stage ({state}); sh -c true: {:.2} ms; ratio {:.2}",
        t * 1e3 / stages as f64,
        reference * 1e3 / n as f64,
        t / reference
    );
}

/// `--output-rows N`: one activity prints N JSON rows, which become the stage's table, and a
/// second stage reads ten of them. Peak RSS against the size of the output; time against the
/// program alone writing the same bytes to /dev/null (the reference, in the same run).
fn activity_output(n: u64) {
    const PROGRAM: &str = r#"awk -v n="$WV_N" 'BEGIN { for (i = 0; i < n; i++) printf "{\"id\": %d, \"name\": \"row %d\", \"ok\": true, \"x\": %d.5}\n", i, i, i }'"#;
    let started = Instant::now();
    let reference = std::process::Command::new("sh")
        .args(["-c", &format!("{PROGRAM} > /dev/null")])
        .env("WV_N", n.to_string())
        .status()
        .unwrap();
    assert!(reference.success());
    let alone = started.elapsed().as_secs_f64();
    let bytes = std::process::Command::new("sh")
        .args(["-c", &format!("{PROGRAM} | wc -c")])
        .env("WV_N", n.to_string())
        .output()
        .unwrap();
    let bytes: f64 = String::from_utf8_lossy(&bytes.stdout)
        .trim()
        .parse()
        .unwrap_or(0.0);
    let flow = format!(
        "activity emit(n: int) = sh(\"\"\"\n  {PROGRAM}\n\"\"\")\nflow output = {{\n  stage rows = emit({n})\n  stage few = from rows | where id % {} = 0 | select id\n}}\n",
        (n / 10).max(1)
    );
    let (t, _, state) = run("output", &flow, true);
    let rss = peak_rss_mb();
    println!(
        "an activity printing {n} rows ({:.0} MB): {t:.2} s, {:.1}x the program alone ({alone:.2} s); peak RSS {rss:.1} MB, {:.2}x the output ({state})",
        bytes / 1e6,
        t / alone,
        rss * 1e6 / bytes.max(1.0)
    );
}

/// `--fan-out-items N`: see the top of the file.
fn fan_out_items(n: usize) {
    let dir = PathBuf::from("target/bench-run/fan-out-items");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let dir = dir.canonicalize().unwrap();
    let mut csv = String::from("n\n");
    for i in 1..=n {
        let _ = writeln!(csv, "{i}");
    }
    std::fs::write(dir.join("numbers.csv"), csv).unwrap();
    std::fs::write(
        dir.join("flow.wv"),
        r#"activity item(n: int) = sh("""[ "$WV_N" = 1 ] && date +%s.%N > first.txt; sleep 5""")
flow Items = {
  stage fan [concurrency: 8] = from 'numbers.csv' | each item(_.n)
}
flow Count = {
  stage counted = from 'numbers.csv' | select count(*) as c
}
"#,
    )
    .unwrap();
    let wvflow = env!("CARGO_BIN_EXE_wvflow");
    let flow = dir.join("flow.wv");
    let started = Instant::now();
    let counted = std::process::Command::new(wvflow)
        .args(["run", flow.to_str().unwrap(), "Count"])
        .output()
        .unwrap();
    assert!(counted.status.success());
    let reference = started.elapsed().as_secs_f64();
    let since_epoch = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64()
    };
    let at_start = since_epoch();
    let mut child = std::process::Command::new(wvflow)
        .args(["run", flow.to_str().unwrap(), "Items"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let first = dir.join("first.txt");
    let waited = Instant::now();
    while !first.exists() && waited.elapsed().as_secs() < 120 {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    std::thread::sleep(std::time::Duration::from_secs(2));
    let status = std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap();
    let peak_mb = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        .unwrap_or(0.0)
        / 1024.0;
    let asked = Instant::now();
    // SAFETY: a signal to the child this function started.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let _ = child.wait();
    let stop = asked.elapsed().as_secs_f64();
    let first_at: f64 = std::fs::read_to_string(&first)
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or(f64::NAN);
    let to_first = first_at - at_start;
    println!(
        "each over {n} rows: first item after {to_first:.2} s ({:.2}x counting the rows, {reference:.2} s); peak RSS {peak_mb:.1} MB; SIGTERM ended the run in {stop:.2} s",
        to_first / reference
    );
    if peak_mb > 64.0 {
        println!("over the 64 MB bound");
        std::process::exit(1);
    }
}

fn store_label(recorded: bool) -> &'static str {
    if recorded {
        ", recorded in the run store"
    } else {
        ", no run store"
    }
}

/// A benchmark's runs record on a local database: nothing to warn of is expected, and what
/// would come is not what is measured.
struct Unheard;

impl wvflow::session::Reporter for Unheard {
    fn diagnostics(&self, _: &[wvflow::diagnostics::Diagnostic], _: &wvflow::source::SourceMap) {}

    fn notice(&self, _: &wvflow::session::Notice) {}
}
