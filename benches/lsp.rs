//! Editor latency: `cargo bench --bench lsp`. A 2,000-line file from the workspace generator is
//! changed and analysed again as `wvflow lsp` does after the debounce: parse, check, and the
//! LSP diagnostics for every file. Reports the time from the change to the diagnostics.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;
use wvflow::lsp::analysis::Analysis;

#[allow(dead_code)]
#[path = "../examples/gen_workspace.rs"]
mod generator;

fn main() {
    let mut text = String::new();
    let mut flows = 0;
    while text.lines().count() < 2000 {
        generator::flow(&mut text, flows, 20);
        flows += 1;
    }
    let lines = text.lines().count();
    let path = PathBuf::from("bench.wv");
    let mut open = BTreeMap::new();
    let mut times = Vec::new();
    for round in 0..30 {
        // A change: one more character in a comment, as typing does.
        text.push_str(&format!("-- edit {round}\n"));
        open.insert(path.clone(), std::sync::Arc::new(text.clone()));
        let started = Instant::now();
        let analysis = Analysis::new(&BTreeMap::new(), &open);
        let diagnostics = analysis.diagnostics();
        times.push(started.elapsed().as_secs_f64() * 1e3);
        assert!(diagnostics.values().all(|d| d.is_empty()));
    }
    times.sort_by(f64::total_cmp);
    let debounce = wvflow::lsp::DEBOUNCE.as_secs_f64() * 1e3;
    println!(
        "{lines} lines, {flows} flows: change to diagnostics, with the {debounce:.0} ms debounce: median {:.1} ms, p90 {:.1} ms, max {:.1} ms",
        times[times.len() / 2] + debounce,
        times[times.len() * 9 / 10] + debounce,
        times[times.len() - 1] + debounce,
    );
}
