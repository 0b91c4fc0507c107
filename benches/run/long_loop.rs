//! `-- --long-loop 1000,10000,30000`: `examples/long_loop.wv` (a `while` loop of N
//! iterations, `continue_as_new: 1000`, `keep_runs: 3`) run by the `wvflow` binary, against
//! the same flow without `continue_as_new`: wall time, peak RSS (the kernel's, `wait4`), the
//! run store's size on disk after the run, and the largest run database. With
//! `continue_as_new` the peak and the store must not grow with N.

use std::path::Path;
use std::time::Instant;

/// One run: seconds, peak RSS in MB, the store's bytes, the largest run database's bytes.
struct Measured {
    seconds: f64,
    peak_mb: f64,
    store: u64,
    largest_run_db: u64,
}

pub fn long_loop(args: &[String]) {
    let sizes: Vec<u64> = args
        .iter()
        .position(|a| a == "--long-loop")
        .and_then(|i| args.get(i + 1))
        .map_or(vec![1000, 10000, 30000], |list| {
            list.split(',').filter_map(|n| n.parse().ok()).collect()
        });
    let example = std::fs::read_to_string("examples/long_loop.wv").unwrap();
    let without = example.replace("continue_as_new: 1000, ", "");
    assert_ne!(example, without, "the example sets `continue_as_new: 1000`");
    println!("iterations  flow                    seconds  peak RSS  run store  largest run db");
    for n in sizes {
        for (name, text) in [("continue_as_new: 1000", &example), ("one run", &without)] {
            let m = measure(&format!("long-loop-{n}-{}", name.len()), text, n);
            println!(
                "{n:>10}  {name:<22} {:>8.2}  {:>5.1} MB  {:>6} KB  {:>11} KB",
                m.seconds,
                m.peak_mb,
                m.store / 1024,
                m.largest_run_db / 1024
            );
        }
    }
}

// The child is reaped by `wait4`, which also gives its peak RSS.
#[allow(clippy::zombie_processes)]
fn measure(name: &str, flow: &str, n: u64) -> Measured {
    let dir = Path::new("target/bench-run").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("long_loop.wv"), flow).unwrap();
    let started = Instant::now();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_wvflow"))
        .arg("run")
        .arg(dir.join("long_loop.wv"))
        .arg(format!("Drain(batches = {n})"))
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut status = 0;
    // SAFETY: an all-zero rusage is valid; wait4 fills it for the child this function started.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for that child, which nothing else waits for.
    unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    let seconds = started.elapsed().as_secs_f64();
    assert_eq!(status, 0, "{name}: wvflow failed");
    let files: Vec<(std::path::PathBuf, u64)> = walk(&dir.join(".wvflow"));
    Measured {
        seconds,
        peak_mb: usage.ru_maxrss as f64 / 1024.0,
        store: files.iter().map(|(_, size)| size).sum(),
        largest_run_db: files
            .iter()
            .filter(|(path, _)| path.parent().is_some_and(|p| p.ends_with("runs")))
            .map(|(_, size)| *size)
            .max()
            .unwrap_or(0),
    }
}

/// Every file under `dir`, with its size.
fn walk(dir: &Path) -> Vec<(std::path::PathBuf, u64)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(walk(&path));
        } else if let Ok(meta) = entry.metadata() {
            found.push((path, meta.len()));
        }
    }
    found
}
