//! Every rule, through its entry in docs/errors.md (the text `wvflow explain` prints): the
//! entry's example produces exactly its code, rendered as a reviewed snapshot, and the
//! entry's fix, a near miss, is clean. And every code the sources can emit is documented.

use wvflow::diagnostics::{Code, Diagnostic, docs, render_human};
use wvflow::workspace::Workspace;

/// Syntax and semantic diagnostics of one file, with a `wvflow.toml` of text `config` when
/// there is one, as `wvflow check` reports them.
fn check(name: &str, src: &str, config: Option<&String>) -> (Workspace, Vec<Diagnostic>) {
    let mut workspace = Workspace::default();
    workspace.add(format!("{name}.wv").into(), src.to_string());
    if let Some(config) = config {
        workspace.add_config("wvflow.toml".into(), config.clone());
    }
    let mut diagnostics: Vec<Diagnostic> = workspace.diagnostics().cloned().collect();
    diagnostics.extend(wvflow::check::check(&workspace).diagnostics);
    wvflow::diagnostics::normalize(&mut diagnostics);
    (workspace, diagnostics)
}

/// Codes that cannot occur alone, with the code that always comes with them: a flow with no
/// terminal stage is made of cycles.
const COMPANIONS: [(&str, &str); 1] = [("E0109", "E0105")];

/// Codes whose inputs cannot be shown in a few lines (a 4 GiB file, 1,000 nested brackets, a
/// NUL byte), which the syntax tests cover; and E0806, which `wvflow test` gives when a run
/// does not do what a test expects (tests/it/testing.rs).
const WITHOUT_EXAMPLE: [&str; 4] = ["E0012", "E0013", "E0014", "E0806"];

#[test]
fn every_documented_example_produces_its_code_and_every_fix_is_clean() {
    let mut failures = Vec::new();
    let mut checked = 0;
    for entry in docs::entries() {
        let blocks = crate::common::code_blocks(entry.body, "wv");
        let [example, fix] = blocks.as_slice() else {
            if !WITHOUT_EXAMPLE.contains(&entry.code) {
                failures.push(format!(
                    "{}: needs an example and a fix, found {} blocks",
                    entry.code,
                    blocks.len()
                ));
            }
            continue;
        };
        // A connector's entry shows `wvflow.toml` too: its first block beside the example,
        // its second (or the same) beside the fix.
        let configs = crate::common::code_blocks(entry.body, "toml");
        let (workspace, found) = check(entry.code, example, configs.first());
        let codes: Vec<&str> = found.iter().map(|d| d.code.as_str()).collect();
        let companion = COMPANIONS
            .iter()
            .find(|(code, _)| *code == entry.code)
            .map(|(_, c)| *c);
        if !codes.contains(&entry.code)
            || codes
                .iter()
                .any(|c| *c != entry.code && Some(*c) != companion)
        {
            failures.push(format!("{}: the example gives {codes:?}", entry.code));
            continue;
        }
        insta::with_settings!({ description => example.as_str(), omit_expression => true, snapshot_suffix => entry.code }, {
            insta::assert_snapshot!("rule", render_human(&found, &workspace.sources, false));
        });
        let (_, fixed) = check(entry.code, fix, configs.last());
        if !fixed.is_empty() {
            failures.push(format!(
                "{}: the fix gives {:?}",
                entry.code,
                fixed.iter().map(|d| d.code.as_str()).collect::<Vec<_>>()
            ));
        }
        checked += 1;
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(checked >= 60, "only {checked} rules checked");
}

#[test]
fn the_code_table_and_the_reference_hold_the_same_codes_and_titles() {
    // Every diagnostic is made with a `Code` of the table: a code cannot be emitted without
    // being documented.
    let documented: Vec<(String, String)> = docs::entries()
        .map(|e| (e.code.to_string(), e.title.to_string()))
        .collect();
    let table: Vec<(String, String)> = Code::ALL
        .iter()
        .map(|c| (c.as_str().to_string(), c.title().to_string()))
        .collect();
    let mut sorted = documented.clone();
    sorted.sort();
    assert_eq!(
        table, sorted,
        "docs/errors.md and src/diagnostics/codes.rs differ"
    );
    for code in Code::ALL {
        assert_eq!(Code::parse(&code.as_str().to_lowercase()), Some(*code));
        assert_eq!(code.is_warning(), code.as_str().starts_with('W'));
    }
    assert_eq!(
        Code::E0201.family(),
        wvflow::diagnostics::Family::ConfigurationValues
    );
}

#[test]
fn explain_prints_the_reference_entry() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_wvflow"))
        .args(["explain", "E0201"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    let entry = docs::entry("E0201").expect("E0201 is documented");
    assert_eq!(text, format!("E0201: {}\n\n{}\n", entry.title, entry.body));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_wvflow"))
        .args(["explain", "E9999"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

/// `wvflow explain KEY` prints what the editor hover shows: where the key stands, what it
/// takes, its default (the one the runtime uses) and its meaning; a key of both stages and
/// flows is explained for each.
#[test]
fn explain_prints_a_configuration_key() {
    let explain = |what: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_wvflow"))
            .args(["explain", what])
            .output()
            .unwrap()
    };
    let out = explain("retry_delay");
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "`retry_delay` (stage key): a duration such as `30s`\n\n\
         delay before the first retry\n\ndefault: `1s`\n"
    );
    let out = explain("timeout");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("(stage key)") && text.contains("(flow key)"),
        "{text}"
    );
    assert!(
        text.contains("start-to-close timeout of one attempt")
            && text.contains("bound on the whole run"),
        "{text}"
    );
    let out = explain("max_parallel");
    assert!(String::from_utf8_lossy(&out.stdout).contains("default: `number of cores`"));
    let out = explain("retires");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("did you mean retries?"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
