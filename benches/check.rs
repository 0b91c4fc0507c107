//! Front-end throughput and memory: `cargo bench --bench check -- [FILE...]`.
//!
//! Without arguments it generates a 5 MB and a 50 MB workspace under `target/bench/` with the
//! `gen_workspace` example's generator (run that example first), and reports MB/s for lexing,
//! parsing and the whole `check` pipeline, with peak memory.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use wvflow::source::FileId;
use wvflow::syntax;

#[path = "common/counting.rs"]
mod counting;

use counting::{LIVE, PEAK};

fn reset_peak() -> usize {
    let live = LIVE.load(Ordering::Relaxed);
    PEAK.store(live, Ordering::Relaxed);
    live
}

fn peak_since(base: usize) -> f64 {
    (PEAK.load(Ordering::Relaxed) - base) as f64 / 1e6
}

fn status_kb(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn best_of<T>(runs: usize, mut f: impl FnMut() -> T) -> (Duration, T) {
    let mut best = Duration::MAX;
    let mut out = None;
    for _ in 0..runs {
        let started = Instant::now();
        let value = f();
        best = best.min(started.elapsed());
        out = Some(value);
    }
    (best, out.expect("runs > 0"))
}

fn main() {
    let files: Vec<PathBuf> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .map(PathBuf::from)
        .collect();
    if std::env::args().any(|a| a == "--scaling") {
        scaling();
        return;
    }
    if files.is_empty() {
        eprintln!(
            "usage: cargo bench --bench check -- FILE.wv...  (make one with `cargo run --release --example gen_workspace -- --mb 5 --out target/bench/5mb`)"
        );
        return;
    }
    for path in files {
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("{}: {e}", path.display());
                continue;
            }
        };
        let mb = text.len() as f64 / 1e6;
        let rss_before = status_kb("VmRSS:").unwrap_or(0);
        let (lex_time, (tokens, _)) = best_of(5, || syntax::lexer::lex(&text, FileId(0)));
        let token_count = tokens.len();
        drop(tokens);
        let (parse_time, parsed) = best_of(3, || syntax::parse(&text, FileId(0)));
        assert!(
            parsed.diagnostics.is_empty(),
            "the benchmark input must be valid"
        );
        drop(parsed);
        let (check_time, found) = best_of(3, || {
            let (workspace, _) = wvflow::workspace::Workspace::load(std::slice::from_ref(&path));
            let report = wvflow::check::check(&workspace);
            let found = report.diagnostics.len();
            std::mem::forget(workspace);
            found
        });
        let (plan_time, plan_bytes) = {
            let (workspace, _) = wvflow::workspace::Workspace::load(std::slice::from_ref(&path));
            let index = wvflow::check::Index::new(&workspace);
            let started = Instant::now();
            let plans: Vec<_> = index
                .flows
                .iter()
                .map(|&def| wvflow::plan::lower(&workspace, &index, def))
                .collect();
            let lowered = started.elapsed();
            let bytes: usize = plans
                .iter()
                .map(|p| wvflow::plan::render::json(p).len())
                .sum();
            (lowered, (started.elapsed() - lowered, bytes))
        };
        println!(
            "  plan  {:>8.1} ms to lower every flow, {:.1} ms more to write their JSON ({:.1} MB)",
            plan_time.as_secs_f64() * 1e3,
            plan_bytes.0.as_secs_f64() * 1e3,
            plan_bytes.1 as f64 / 1e6
        );
        let base = reset_peak();
        let (workspace, _) = wvflow::workspace::Workspace::load(std::slice::from_ref(&path));
        let load_peak = peak_since(base);
        let loaded = (LIVE.load(Ordering::Relaxed) - base) as f64 / 1e6;
        let check_base = reset_peak();
        let report = wvflow::check::check(&workspace);
        let check_peak = peak_since(check_base);
        drop(report);
        drop(workspace);
        println!(
            "  heap: workspace loaded {loaded:.1} MB (peak {load_peak:.1} MB while loading), checking adds a peak of {check_peak:.1} MB"
        );
        let base = reset_peak();
        let (tokens, _) = syntax::lexer::lex(&text, FileId(0));
        let token_heap = peak_since(base);
        drop(tokens);
        let base = reset_peak();
        let parsed = syntax::parse(&text, FileId(0));
        let parse_heap = peak_since(base);
        let ast_heap = (LIVE.load(Ordering::Relaxed) - base) as f64 / 1e6;
        drop(parsed);
        let peak = status_kb("VmHWM:").unwrap_or(0);
        println!(
            "{}: {:.1} MB, {} tokens\n  lex   {:>8.1} ms {:>7.1} MB/s\n  parse {:>8.1} ms {:>7.1} MB/s (lex + parse)\n  check {:>8.1} ms {:>7.1} MB/s (read + parse + check, {} diagnostics)\n  heap: tokens {:.1} MB, AST {:.1} MB, peak while parsing {:.1} MB = {:.1}x input\n  peak RSS {:.1} MB ({:.1} MB before)",
            path.display(),
            mb,
            token_count,
            lex_time.as_secs_f64() * 1e3,
            mb / lex_time.as_secs_f64(),
            parse_time.as_secs_f64() * 1e3,
            mb / parse_time.as_secs_f64(),
            check_time.as_secs_f64() * 1e3,
            mb / check_time.as_secs_f64(),
            found,
            token_heap,
            ast_heap,
            parse_heap,
            (parse_heap * 1e6 + text.len() as f64) / text.len() as f64,
            peak as f64 / 1e3,
            rss_before as f64 / 1e3,
        );
    }
}

/// `cargo bench --bench check -- --scaling`: one flow of n stages (a chain), and one stage of
/// n operators, checked and lowered at n and 4n. A linear pass takes about 4x the time.
fn scaling() {
    let chain = |n: usize| {
        let mut src = String::from("flow f = {\n  stage s0 = from [[1]] as t(x)\n");
        for i in 1..n {
            src.push_str(&format!("  stage s{i} = from s{} | where x > 0\n", i - 1));
        }
        src + "}\n"
    };
    let operators = |n: usize| {
        format!(
            "flow f = {{\n  stage s = from [[1]] as t(x){}\n}}\n",
            " | limit 1 | where x > 0".repeat(n / 2)
        )
    };
    /// A name, a generator of the input for n, and n.
    type Case<'a> = (&'a str, &'a dyn Fn(usize) -> String, usize);
    let cases: [Case; 2] = [
        ("stages in one flow", &chain, 16_000),
        ("operators in one stage", &operators, 16_000),
    ];
    for (what, make, n) in cases {
        let time = |n: usize| {
            let src = make(n);
            best_of(3, || {
                let mut workspace = wvflow::workspace::Workspace::default();
                workspace.add("scaling.wv".into(), src.clone());
                let found = wvflow::check::check(&workspace).diagnostics.len();
                let index = wvflow::check::Index::new(&workspace);
                let def = index.flows[0];
                let plan = wvflow::plan::lower(&workspace, &index, def);
                assert_eq!(found, 0, "the scaling input must check clean");
                plan.flow.stages.len()
            })
            .0
        };
        let (small, large) = (time(n), time(4 * n));
        println!(
            "{what}: {n}: {:.1} ms, {}: {:.1} ms, ratio {:.2} (4.0 is linear)",
            small.as_secs_f64() * 1e3,
            4 * n,
            large.as_secs_f64() * 1e3,
            large.as_secs_f64() / small.as_secs_f64()
        );
    }
}
