//! `-- --tests`: what `wvflow test` costs. The examples' own tests (`wvflow test examples/`):
//! wall time and the virtual time they cover. And one test's overhead: a flow of 10 stages,
//! each calling an activity, run by `wvflow run` with the activity being `true`, against
//! `wvflow test` of the same flow with the activity mocked; each the median of 15 runs of the
//! process, in the same bench run.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

fn median(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

/// The median wall time of `wvflow ARGS` in `dir`, in ms; panics when it fails.
fn timed(wvflow: &Path, dir: &Path, args: &[&str]) -> f64 {
    let samples = (0..15)
        .map(|_| {
            let started = Instant::now();
            let o = Command::new(wvflow)
                .args(args)
                .current_dir(dir)
                .output()
                .unwrap();
            let ms = started.elapsed().as_secs_f64() * 1e3;
            assert!(
                o.status.success(),
                "wvflow {args:?}: {}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            );
            ms
        })
        .collect();
    median(samples)
}

pub fn tests() {
    let wvflow = PathBuf::from(env!("CARGO_BIN_EXE_wvflow"));
    let o = Command::new(&wvflow)
        .args(["test", "examples", "--format", "json"])
        .output()
        .unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_default();
    let whole = timed(&wvflow, Path::new("."), &["test", "examples"]);
    println!(
        "examples' tests: {} passed, {} failed; the process {:.0} ms (median of 15); {:.1} h of virtual time",
        doc["passed"],
        doc["failed"],
        whole,
        doc["virtual_ms"].as_f64().unwrap_or(0.0) / 3.6e6
    );

    let dir = PathBuf::from("target/bench-run/tests");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut flow =
        String::from("activity step(n: int) = exec('true')\nflow Ten = {\n  stage s0 = step(0)\n");
    for i in 1..10 {
        flow.push_str(&format!("  stage s{i} = from s{} | step({i})\n", i - 1));
    }
    flow.push_str("}\n");
    let test = "test ten = {\n  call Ten()\n  mock step returns []\n  expect run success\n  expect step called 10 times\n}\n";
    std::fs::write(dir.join("run.wv"), &flow).unwrap();
    std::fs::write(dir.join("test.wv"), format!("{flow}\n{test}")).unwrap();
    let run = timed(&wvflow, &dir, &["run", "run.wv"]);
    let tested = timed(&wvflow, &dir, &["test", "test.wv"]);
    println!(
        "10 activity stages: `wvflow run` with `true` {run:.1} ms, `wvflow test` mocked {tested:.1} ms: {:.2}x",
        tested / run
    );
}
