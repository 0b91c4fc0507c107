//! `wvflow test [PATH] [--filter PATTERN] [--format human|json|junit] [--color ...]`

use super::exit;
use crate::diagnostics::{ColorChoice, render_human, render_json};
use crate::source::SourceMap;
use crate::testing::{TestResult, run_tests};
use clap::{Args, ValueEnum};
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Human,
    Json,
    Junit,
}

#[derive(Args)]
pub struct TestArgs {
    /// A .wv file, or a folder: every `test` of its .wv files.
    #[arg(default_value = ".")]
    path: PathBuf,
    /// Only the tests whose names contain this text.
    #[arg(long)]
    filter: Option<String>,
    #[arg(long, value_enum, default_value_t = Format::Human)]
    format: Format,
    /// Colour in human output.
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto)]
    color: ColorChoice,
}

pub fn run(args: TestArgs) -> u8 {
    let session = super::plan::load(&args.path);
    let Some(flows) = session.flows() else {
        return exit::USAGE;
    };
    let started = Instant::now();
    let (results, filtered) = run_tests(&flows, args.filter.as_deref());
    let wall = started.elapsed();
    let sources = &session.workspace().sources;
    let tally = Tally::of(&results, filtered, wall);
    match args.format {
        Format::Human => {
            let color = args.color.on_stdout();
            out!("{}", human(&results, sources, &tally, color));
        }
        Format::Json => outln!("{}", json(&results, sources, &tally)),
        Format::Junit => out!("{}", junit(&results, sources, &tally)),
    }
    if tally.failed > 0 {
        exit::PROBLEMS
    } else {
        exit::OK
    }
}

struct Tally {
    passed: usize,
    failed: usize,
    filtered: usize,
    wall: Duration,
    virtual_time: Duration,
}

impl Tally {
    fn of(results: &[TestResult], filtered: usize, wall: Duration) -> Tally {
        let failed = results.iter().filter(|r| !r.passed()).count();
        Tally {
            passed: results.len() - failed,
            failed,
            filtered,
            wall,
            virtual_time: results.iter().map(|r| r.elapsed).sum(),
        }
    }
}

fn human(results: &[TestResult], sources: &SourceMap, tally: &Tally, color: bool) -> String {
    let mut out = format!(
        "running {} test{}\n",
        results.len(),
        if results.len() == 1 { "" } else { "s" }
    );
    for r in results {
        out.push_str(&format!(
            "test {} ... {} ({} virtual, {:.1} ms)\n",
            r.name,
            if r.passed() { "ok" } else { "FAILED" },
            crate::human::duration(r.elapsed),
            r.wall.as_secs_f64() * 1e3
        ));
    }
    let failed: Vec<&TestResult> = results.iter().filter(|r| !r.passed()).collect();
    if !failed.is_empty() {
        out.push_str("\nfailures:\n\n");
        for r in &failed {
            out.push_str(&format!("---- {} ----\n", r.name));
            out.push_str(&render_human(&r.failures, sources, color));
            out.push('\n');
        }
    }
    out.push_str(&format!(
        "test result: {}. {} passed; {} failed; {} filtered out; finished in {:.2}s ({} of virtual time)\n",
        if tally.failed == 0 { "ok" } else { "FAILED" },
        tally.passed,
        tally.failed,
        tally.filtered,
        tally.wall.as_secs_f64(),
        crate::human::duration(tally.virtual_time)
    ));
    out
}

fn json(results: &[TestResult], sources: &SourceMap, tally: &Tally) -> String {
    let tests: Vec<serde_json::Value> = results
        .iter()
        .map(|r| {
            let source = sources.get(r.file);
            let (line, column) = source.line_col(r.span.start as usize);
            serde_json::json!({
                "name": r.name,
                "file": source.name,
                "line": line,
                "column": column,
                "passed": r.passed(),
                "virtual_ms": r.elapsed.as_millis() as u64,
                "wall_ms": r.wall.as_secs_f64() * 1e3,
                "failures": serde_json::from_str::<serde_json::Value>(&render_json(&r.failures, sources))
                    .unwrap_or_default(),
            })
        })
        .collect();
    let document = serde_json::json!({
        "passed": tally.passed,
        "failed": tally.failed,
        "filtered": tally.filtered,
        "wall_ms": tally.wall.as_secs_f64() * 1e3,
        "virtual_ms": tally.virtual_time.as_millis() as u64,
        "tests": tests,
    });
    serde_json::to_string_pretty(&document).unwrap_or_default()
}

/// JUnit XML as CI systems read it: a `testsuite` per file, a `testcase` per test, a
/// `failure` holding the failures as `wvflow check` prints them.
fn junit(results: &[TestResult], sources: &SourceMap, tally: &Tally) -> String {
    let mut files: Vec<crate::source::FileId> = results.iter().map(|r| r.file).collect();
    files.dedup();
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    out.push_str(&format!(
        "<testsuites name=\"wvflow\" tests=\"{}\" failures=\"{}\" time=\"{:.3}\">\n",
        results.len(),
        tally.failed,
        tally.wall.as_secs_f64()
    ));
    for file in files {
        let name = xml(&sources.get(file).name);
        let cases: Vec<&TestResult> = results.iter().filter(|r| r.file == file).collect();
        let failed = cases.iter().filter(|r| !r.passed()).count();
        let time: f64 = cases.iter().map(|r| r.wall.as_secs_f64()).sum();
        out.push_str(&format!(
            "  <testsuite name=\"{name}\" tests=\"{}\" failures=\"{failed}\" time=\"{time:.3}\">\n",
            cases.len()
        ));
        for r in cases {
            out.push_str(&format!(
                "    <testcase name=\"{}\" classname=\"{name}\" time=\"{:.3}\"",
                xml(&r.name),
                r.wall.as_secs_f64()
            ));
            match r.failures.first() {
                None => out.push_str("/>\n"),
                Some(first) => {
                    out.push_str(&format!(
                        ">\n      <failure type=\"{}\" message=\"{}\">{}</failure>\n    </testcase>\n",
                        first.code,
                        xml(&first.message),
                        xml(&render_human(&r.failures, sources, false))
                    ));
                }
            }
        }
        out.push_str("  </testsuite>\n");
    }
    out.push_str("</testsuites>\n");
    out
}

/// Text as XML character data or an attribute value: the five special characters escaped,
/// and the control characters XML 1.0 cannot hold dropped.
fn xml(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 => {}
            c => out.push(c),
        }
    }
    out
}
