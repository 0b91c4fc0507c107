//! The checker over a folder as one workspace: names resolve across files, diagnostics name
//! the right file, warnings fail only with --deny-warnings, --timings reports every file.

use crate::common::{scratch, wvflow};

const INGEST: &str = "activity load(day: date) with { retries: 2 } = exec('bin/load', day)\n\
    flow Ingest(day: date = '2024-01-01') = { stage raw = load(run_date) }\n";
const REPORT: &str = "flow Report depends on Ingest = {\n  stage rows = from raw_orders\n  stage again = call Ingest(day = '2024-02-01')\n}\n";

#[test]
fn flows_and_activities_resolve_across_the_files_of_a_folder() {
    let dir = scratch(
        "cross_file_ok",
        &[("ingest.wv", INGEST), ("reports/report.wv", REPORT)],
    );
    let o = wvflow(&["check", dir.to_str().unwrap(), "--format", "short"]);
    assert_eq!(String::from_utf8_lossy(&o.stdout), "");
    assert_eq!(o.status.code(), Some(0));
    // Checked alone, the report cannot see Ingest.
    let o = wvflow(&[
        "check",
        dir.join("reports/report.wv").to_str().unwrap(),
        "--format",
        "short",
    ]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("report.wv:1:24: error[E0601]: `depends on` names `Ingest`"),
        "{out}"
    );
    assert_eq!(o.status.code(), Some(1));
}

#[test]
fn a_duplicate_in_another_file_points_at_both_files() {
    let dir = scratch(
        "cross_file_duplicate",
        &[
            ("a.wv", INGEST),
            ("b.wv", "flow Ingest = { stage s = from t }\n"),
        ],
    );
    let o = wvflow(&["check", dir.to_str().unwrap(), "--format", "json"]);
    let value: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let d = &value[0];
    assert_eq!(d["code"], "E0102");
    assert!(d["file"].as_str().unwrap().ends_with("b.wv"));
    assert!(d["labels"][1]["file"].as_str().unwrap().ends_with("a.wv"));
    assert_eq!(d["labels"][1]["message"], "first defined here");
    assert_eq!(d["labels"][1]["range"]["start"]["line"], 1);
}

#[test]
fn warnings_pass_unless_denied() {
    let dir = scratch(
        "warnings",
        &[("w.wv", "flow f = { stage s [backoff: linear] = from t }\n")],
    );
    let file = dir.join("w.wv");
    let o = wvflow(&["check", file.to_str().unwrap(), "--format", "short"]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("warning[W0203]"));
    assert_eq!(o.status.code(), Some(0));
    let o = wvflow(&["check", file.to_str().unwrap(), "--deny-warnings"]);
    assert_eq!(o.status.code(), Some(1));
}

#[test]
fn syntax_errors_silence_only_the_references_they_may_explain() {
    // `helper` does not parse, so `merge helper` is not reported; the unknown key still is.
    let src = "flow f = {\n  stage helper = from\n  stage main [retires: 1] = merge helper\n}\n";
    let dir = scratch("syntax_and_semantics", &[("s.wv", src)]);
    let o = wvflow(&["check", dir.to_str().unwrap(), "--format", "short"]);
    let out = String::from_utf8_lossy(&o.stdout);
    let codes: Vec<&str> = out
        .lines()
        .filter_map(|l| l.split('[').nth(1)?.split(']').next())
        .collect();
    assert_eq!(codes, ["E0010", "E0201"], "{out}");
}

#[test]
fn timings_list_every_file() {
    let dir = scratch(
        "timings",
        &[("ingest.wv", INGEST), ("reports/report.wv", REPORT)],
    );
    let o = wvflow(&["check", dir.to_str().unwrap(), "--timings"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.lines().next().unwrap().contains("parse ms"), "{err}");
    assert!(
        err.contains("ingest.wv") && err.contains("report.wv") && err.contains("workspace-wide"),
        "{err}"
    );
}

/// A stage takes its activity's settings. A problem of the two together is the stage's, and
/// is reported at the stage (in the file that uses the activity), with the activity's key
/// beside it; a problem of the activity's keys alone is reported once, at the activity. Each
/// item reports only in its own text, so a large workspace reports in order of place.
#[test]
fn a_problem_of_a_stage_with_its_activity_settings_is_reported_at_the_stage() {
    let activity = "activity slow(x: int) with { timeout: 2h, max_retry_delay: 1s } = exec('bin/slow', x)\n\
        activity odd() with { retry_delay: 10s, max_retry_delay: 5s } = exec('bin/odd')\n";
    let flows = "flow quick with { timeout: 1h } = {\n\
        \x20 stage a = from [[1]] as t(x) | each slow(_.x)\n\
        \x20 stage b with { retries: 2, retry_delay: 5s } = from a | each slow(_.x)\n\
        \x20 stage c = odd()\n\
        }\n";
    let dir = scratch(
        "stage_with_activity",
        &[("activities.wv", activity), ("flows.wv", flows)],
    );
    let o = wvflow(&["check", dir.to_str().unwrap(), "--format", "json"]);
    let found: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let places: Vec<String> = found
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            let labels: Vec<String> = d["labels"]
                .as_array()
                .unwrap()
                .iter()
                .map(|l| {
                    let file = std::path::Path::new(l["file"].as_str().unwrap());
                    format!(
                        "{}:{} {}",
                        file.file_name().unwrap().to_str().unwrap(),
                        l["range"]["start"]["line"],
                        l["message"].as_str().unwrap()
                    )
                })
                .collect();
            format!("{} {}", d["code"].as_str().unwrap(), labels.join(" | "))
        })
        .collect();
    assert_eq!(
        places,
        [
            // The activity's own keys disagree: once, at the activity, not again at `c`.
            "E0207 activities.wv:1 cap below the first delay",
            // The flow's timeout against the activity's: at each stage that calls it.
            "W0201 flows.wv:1 in this stage, with its activity's setting | activities.wv:0 the run ends first",
            // The stage's `retry_delay` against the activity's cap.
            "E0207 flows.wv:2 in this stage, with its activity's setting | activities.wv:0 cap below the first delay",
            "W0201 flows.wv:2 in this stage, with its activity's setting | activities.wv:0 the run ends first",
        ],
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
}
