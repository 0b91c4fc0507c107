//! Peak memory of `wvflow check` and `wvflow lsp` against the size of the input, and the time
//! they take: `cargo bench --bench memory` (docs/performance.md, "Memory of `check` and the
//! language server").
//!
//! For each size (5 and 50 MB unless `--mb 5,50` says otherwise) it writes two files of
//! generated flows (as `gen_workspace --mb N`) under `target/bench/memory/`, one valid and
//! one with a problem about every 300 bytes ([`Problems::Dense`]), then runs the
//! release binary: `wvflow check FILE`, and `wvflow lsp` driven as an editor drives it
//! (initialize, `didOpen` with the whole text, the diagnostics, a hover and a completion on
//! the last flow, shutdown, exit). Peak RSS and CPU time (user and system, both cores) are
//! the kernel's (`wait4`); times are the best of `--runs N` (3). Each run is measured from a
//! fresh process of this benchmark (`--measure`): the kernel counts, in a child's peak, the
//! peak of the process that started it, and this one holds the inputs. It fails (exit code 1)
//! when a peak is over [`LIMIT`] times the input. It reports how the CPU time grows from 5 to
//! 50 MB and warns above [`GROWTH`]; with `--strict-time` that fails too (on a machine shared
//! with other work, one busy moment can cost a run 20 %, so it is not the default).
//! `--phases` adds, in this process, the heap each step holds.

use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

#[allow(dead_code)]
#[path = "../examples/gen_workspace.rs"]
mod generator;

/// Peak RSS at most this many times the input.
const LIMIT: f64 = 5.0;

/// 10x the input in at most this many times the time.
const GROWTH: f64 = 11.0;

#[path = "common/counting.rs"]
mod counting;

use counting::{LIVE, PEAK};

/// One run of a command: peak RSS, wall time and CPU time.
struct Run {
    peak: u64,
    time: Duration,
    cpu: Duration,
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(i) = args.iter().position(|a| a == "--measure") {
        measure(&args[i + 1..]);
        return;
    }
    let sizes: Vec<usize> = args
        .iter()
        .position(|a| a == "--mb")
        .and_then(|i| args.get(i + 1))
        .map_or(vec![5, 50], |list| {
            list.split(',').filter_map(|n| n.parse().ok()).collect()
        });
    let runs: usize = args
        .iter()
        .position(|a| a == "--runs")
        .and_then(|i| args.get(i + 1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(3)
        .max(1);
    let binary = PathBuf::from(env!("CARGO_BIN_EXE_wvflow"));
    let mut failures = Vec::new();
    let mut times: Vec<(usize, f64, f64)> = Vec::new();
    println!(
        "{:>8}  {:>11} {:>7} {:>7} {:>7}  {:>11} {:>7} {:>7} {:>7}",
        "input", "check peak", "/input", "wall", "cpu", "lsp peak", "/input", "wall", "cpu"
    );
    let inputs = sizes
        .iter()
        .flat_map(|&mb| [Problems::None, Problems::Dense].map(move |problems| (mb, problems)));
    for (mb, problems) in inputs {
        let file = input(mb, problems);
        let bytes = std::fs::metadata(&file).map_or(0, |m| m.len()) as f64;
        let check = best((0..runs).map(|_| measured("check", &binary, &file).0));
        let lsp_runs: Vec<(Run, Duration)> =
            (0..runs).map(|_| measured("lsp", &binary, &file)).collect();
        let to_diagnostics = lsp_runs.iter().map(|r| r.1).min().unwrap_or_default();
        let lsp = best(lsp_runs.into_iter().map(|r| r.0));
        let ratio = |run: &Run| run.peak as f64 / bytes;
        println!(
            "{:>5.1} MB{}  {:>8.1} MB {:>6.2}x {:>6.2}s {:>6.2}s  {:>8.1} MB {:>6.2}x {:>6.2}s {:>6.2}s  (lsp: diagnostics after {:.2} s)",
            bytes / 1e6,
            problems.tag(),
            check.peak as f64 / 1e6,
            ratio(&check),
            check.time.as_secs_f64(),
            check.cpu.as_secs_f64(),
            lsp.peak as f64 / 1e6,
            ratio(&lsp),
            lsp.time.as_secs_f64(),
            lsp.cpu.as_secs_f64(),
            to_diagnostics.as_secs_f64(),
        );
        for (what, run) in [("check", &check), ("lsp", &lsp)] {
            if ratio(run) > LIMIT {
                failures.push(format!(
                    "{what} of {mb} MB{} peaks at {:.2}x the input (limit {LIMIT}x)",
                    problems.tag(),
                    ratio(run)
                ));
            }
        }
        if problems == Problems::None {
            times.push((mb, check.cpu.as_secs_f64(), lsp.cpu.as_secs_f64()));
        }
        if args.iter().any(|a| a == "--phases") {
            phases(&file);
        }
    }
    for small in &times {
        for large in times.iter().filter(|l| l.0 == 10 * small.0) {
            let (check, lsp) = (large.1 / small.1, large.2 / small.2);
            println!(
                "growth {} -> {} MB: check {check:.2}x the CPU time, lsp (the whole session) {lsp:.2}x",
                small.0, large.0
            );
            for (what, growth) in [("check", check), ("lsp", lsp)] {
                if growth > GROWTH {
                    let problem = format!(
                        "{what}: 10x the input takes {growth:.2}x the CPU time (limit {GROWTH}x)"
                    );
                    if args.iter().any(|a| a == "--strict-time") {
                        failures.push(problem);
                    } else {
                        eprintln!("warning: {problem}; run again on a quiet machine");
                    }
                }
            }
        }
    }
    if !failures.is_empty() {
        for f in &failures {
            eprintln!("FAILED: {f}");
        }
        std::process::exit(1);
    }
}

/// The highest peak and the shortest times of several runs.
fn best(runs: impl Iterator<Item = Run>) -> Run {
    runs.fold(
        Run {
            peak: 0,
            time: Duration::MAX,
            cpu: Duration::MAX,
        },
        |a, b| Run {
            peak: a.peak.max(b.peak),
            time: a.time.min(b.time),
            cpu: a.cpu.min(b.cpu),
        },
    )
}

/// Whether the generated flows are valid, or carry the mistakes of someone typing fast.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Problems {
    None,
    /// About one problem every 300 bytes: in each flow, two misspelt backoffs, two merges
    /// of a stage that does not exist, three priorities given as text and three misspelt
    /// functions (11 diagnostics a flow, warnings included).
    Dense,
}

impl Problems {
    fn tag(self) -> &'static str {
        match self {
            Problems::None => "",
            Problems::Dense => ", problems",
        }
    }

    fn apply(self, text: String) -> String {
        match self {
            Problems::None => text,
            Problems::Dense => {
                let text = text
                    .replace("backoff: linear", "backoff: lineer")
                    .replace("priority: 1 ", "priority: 'high' ")
                    .replace("upper(status)", "uper(status)");
                // `merge s4, s3` -> `merge s4x, s3`
                let mut pieces = text.split("merge s");
                let mut out = pieces.next().unwrap_or_default().to_string();
                for piece in pieces {
                    let digits = piece.find(|c: char| !c.is_ascii_digit()).unwrap_or(0);
                    out.push_str("merge s");
                    out.push_str(&piece[..digits]);
                    out.push('x');
                    out.push_str(&piece[digits..]);
                }
                out
            }
        }
    }
}

/// The generated file of about `mb` megabytes, written once.
fn input(mb: usize, problems: Problems) -> PathBuf {
    let folder = match problems {
        Problems::None => format!("target/bench/memory/{mb}mb"),
        Problems::Dense => format!("target/bench/memory/{mb}mb-problems"),
    };
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(folder);
    let file = dir.join("workspace.wv");
    if !file.exists() {
        // As `gen_workspace --mb N`: flows until the size is reached.
        let mut text = String::new();
        let mut i = 0;
        while text.len() < mb * 1_000_000 {
            generator::flow(&mut text, i, 20);
            i += 1;
        }
        let text = problems.apply(text);
        std::fs::create_dir_all(&dir).expect("target/bench/memory is writable");
        std::fs::write(&file, text).expect("the input is written");
    }
    file
}

/// One run of `what` (`check` or `lsp`), measured by a fresh process of this benchmark.
fn measured(what: &str, binary: &Path, file: &Path) -> (Run, Duration) {
    let output = Command::new(std::env::current_exe().expect("the benchmark's path"))
        .arg("--measure")
        .arg(what)
        .arg(binary)
        .arg(file)
        .output()
        .expect("the benchmark runs");
    let text = String::from_utf8_lossy(&output.stdout);
    let numbers: Vec<u64> = text
        .split_whitespace()
        .filter_map(|n| n.parse().ok())
        .collect();
    let [peak, time, cpu, diagnostics] = numbers[..] else {
        panic!("a measurement: {text}");
    };
    let micros = Duration::from_micros;
    (
        Run {
            peak,
            time: micros(time),
            cpu: micros(cpu),
        },
        micros(diagnostics),
    )
}

/// `--measure check|lsp BINARY FILE`: one run, printed as peak bytes and microseconds of wall
/// time, CPU time and time to the diagnostics.
fn measure(args: &[String]) {
    let [what, binary, file] = args else {
        panic!("--measure check|lsp BINARY FILE");
    };
    let (binary, file) = (Path::new(binary), Path::new(file));
    let (run, diagnostics) = match what.as_str() {
        "check" => (check_run(binary, file), Duration::ZERO),
        _ => lsp_run(binary, file),
    };
    println!(
        "{} {} {} {}",
        run.peak,
        run.time.as_micros(),
        run.cpu.as_micros(),
        diagnostics.as_micros()
    );
}

/// The peak RSS and the CPU time of a child once it has ended, from the kernel.
fn wait_usage(child: &Child) -> (u64, Duration) {
    let mut status = 0;
    // SAFETY: a zeroed rusage is a valid value for wait4 to fill.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: the pid is our own child's, waited for once; the pointers are to locals.
    let pid = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    assert!(pid > 0, "wait4 failed");
    let seconds = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    (
        usage.ru_maxrss as u64 * 1024,
        seconds(usage.ru_utime) + seconds(usage.ru_stime),
    )
}

// The child is reaped by `wait4` in `wait_usage`, which clippy does not see.
#[allow(clippy::zombie_processes)]
fn check_run(binary: &Path, file: &Path) -> Run {
    let started = Instant::now();
    let child = Command::new(binary)
        .arg("check")
        .arg(file)
        .stdout(Stdio::null())
        .spawn()
        .expect("the wvflow binary runs");
    let (peak, cpu) = wait_usage(&child);
    Run {
        peak,
        time: started.elapsed(),
        cpu,
    }
}

/// `wvflow lsp` opening `file`: the whole session, and the time from the start to the
/// diagnostics.
// The child is reaped by `wait4` in `wait_usage`, which clippy does not see.
#[allow(clippy::zombie_processes)]
fn lsp_run(binary: &Path, file: &Path) -> (Run, Duration) {
    let uri = format!("file://{}", file.display());
    let started = Instant::now();
    // Started before this process reads the input, which the server's peak would count.
    let mut child = Command::new(binary)
        .arg("lsp")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("the wvflow binary runs");
    let text = std::fs::read_to_string(file).expect("the input is readable");
    let mut stdin = child.stdin.take().expect("piped");
    let mut stdout = BufReader::new(child.stdout.take().expect("piped"));
    let root = file.parent().map(|p| format!("file://{}", p.display()));
    request(
        &mut stdin,
        &mut stdout,
        1,
        "initialize",
        json!({ "rootUri": root, "capabilities": {} }),
    );
    send(
        &mut stdin,
        &json!({ "jsonrpc": "2.0", "method": "initialized", "params": {} }),
    );
    send(
        &mut stdin,
        &json!({ "jsonrpc": "2.0", "method": "textDocument/didOpen", "params": {
            "textDocument": { "uri": uri, "languageId": "wvflow", "version": 1, "text": text }
        }}),
    );
    loop {
        let message = receive(&mut stdout);
        if message["method"] == "textDocument/publishDiagnostics" && message["params"]["uri"] == uri
        {
            break;
        }
    }
    let to_diagnostics = started.elapsed();
    // The last flow's name, and a place inside its stages.
    let line = text
        .lines()
        .enumerate()
        .filter(|(_, l)| l.starts_with("flow "))
        .last()
        .map_or(0, |(n, _)| n);
    let at = |line: usize, character: usize| json!({ "textDocument": { "uri": uri }, "position": { "line": line, "character": character } });
    let hover = request(
        &mut stdin,
        &mut stdout,
        2,
        "textDocument/hover",
        at(line, 6),
    );
    assert!(hover["contents"]["value"].is_string(), "a hover: {hover}");
    let completion = request(
        &mut stdin,
        &mut stdout,
        3,
        "textDocument/completion",
        at(line + 6, 10),
    );
    assert!(
        completion.as_array().is_some_and(|c| !c.is_empty()),
        "completions"
    );
    request(&mut stdin, &mut stdout, 4, "shutdown", Value::Null);
    send(&mut stdin, &json!({ "jsonrpc": "2.0", "method": "exit" }));
    let (peak, cpu) = wait_usage(&child);
    (
        Run {
            peak,
            time: started.elapsed(),
            cpu,
        },
        to_diagnostics,
    )
}

fn send(stdin: &mut ChildStdin, message: &Value) {
    let body = message.to_string();
    write!(stdin, "Content-Length: {}\r\n\r\n", body.len()).expect("the server reads");
    stdin.write_all(body.as_bytes()).expect("the server reads");
    stdin.flush().expect("the server reads");
}

fn receive(stdout: &mut BufReader<ChildStdout>) -> Value {
    let mut length = 0;
    loop {
        let mut line = String::new();
        assert!(
            stdout.read_line(&mut line).expect("the server writes") > 0,
            "the server ended"
        );
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some(n) = line.strip_prefix("Content-Length: ") {
            length = n.parse().expect("a length");
        }
    }
    let mut body = vec![0; length];
    stdout.read_exact(&mut body).expect("a whole body");
    serde_json::from_slice(&body).expect("JSON")
}

/// Sends a request and returns its result, setting aside what comes meanwhile.
fn request(
    stdin: &mut ChildStdin,
    stdout: &mut BufReader<ChildStdout>,
    id: i64,
    method: &str,
    params: Value,
) -> Value {
    send(
        stdin,
        &json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params }),
    );
    loop {
        let message = receive(stdout);
        if message["id"] == id {
            return message["result"].clone();
        }
    }
}

fn live() -> f64 {
    LIVE.load(Ordering::Relaxed) as f64 / 1e6
}

/// Peak heap since the last call, and the live heap now, in MB.
fn peak_since_reset() -> f64 {
    let peak = PEAK.swap(LIVE.load(Ordering::Relaxed), Ordering::Relaxed);
    peak as f64 / 1e6
}

/// The heap each step of `check` and of the language server holds, in this process.
fn phases(file: &Path) {
    let text = std::fs::read_to_string(file).expect("the input is readable");
    let mb = text.len() as f64 / 1e6;
    let base = live();
    peak_since_reset();
    let files = vec![(file.to_path_buf(), std::sync::Arc::new(text))];
    let chunked = wvflow::check::chunked::Chunked::new(files.clone());
    let loaded = live() - base;
    let loading = peak_since_reset() - base;
    // As `wvflow check`: each problem counted as it comes, not held.
    let mut problems = 0;
    wvflow::check::check_chunked(&chunked, |_| problems += 1);
    let checking = peak_since_reset() - base;
    drop(chunked);
    println!(
        "  heap, check: texts and outlines {loaded:.1} MB ({:.2}x), peak {loading:.1} MB while parsing, {checking:.1} MB while checking ({problems} problems)",
        loaded / mb
    );
    let open = files.into_iter().collect();
    let analysis = wvflow::lsp::analysis::Analysis::new(&Default::default(), &open);
    let held = live() - base;
    peak_since_reset();
    let found = analysis.problems();
    drop(found);
    let diagnosing = peak_since_reset() - base;
    analysis.symbols();
    let symbols = live() - base - held;
    let symbols_peak = peak_since_reset() - base;
    println!(
        "  heap, lsp: analysis {held:.1} MB, peak {diagnosing:.1} MB for the diagnostics; symbols {symbols:.1} MB more ({:.2}x), peak {symbols_peak:.1} MB",
        symbols / mb
    );
}
