//! The documentation stays in step with the parser: every complete `wv` example in
//! docs/language.md parses cleanly, the grammar lists exactly the parser's keywords, and the
//! README's first example checks clean and does what it says.

use crate::common::{code_blocks, run_json, scratch, stage, wvflow};
use std::path::{Path, PathBuf};
use wvflow::source::FileId;
use wvflow::syntax::{parse, token::Token};

#[test]
fn every_complete_example_in_the_language_reference_parses() {
    let reference = std::fs::read_to_string("docs/language.md").unwrap();
    let blocks = code_blocks(&reference, "wv");
    assert!(blocks.len() >= 10, "only {} examples found", blocks.len());
    let mut checked = 0;
    let mut failures = Vec::new();
    for block in blocks.iter().filter(|b| !b.contains("...")) {
        // A block of stages is a fragment of a flow body.
        let parsed = parse(block, FileId(0));
        if !parsed.diagnostics.is_empty() {
            let wrapped = parse(&format!("flow doc_example = {{\n{block}}}"), FileId(0));
            if !wrapped.diagnostics.is_empty() {
                failures.push(format!(
                    "{block}\n{:?}\n",
                    parsed
                        .diagnostics
                        .iter()
                        .map(|d| &d.message)
                        .collect::<Vec<_>>()
                ));
            }
        }
        checked += 1;
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(checked >= 8, "only {checked} complete examples");
}

#[test]
fn the_grammar_names_every_keyword_of_the_lexer() {
    let grammar = std::fs::read_to_string("grammar/wvflow.ebnf").unwrap();
    let section = |name: &str| -> String {
        let start = grammar
            .lines()
            .find(|l| l.starts_with(name) && l[name.len()..].trim_start().starts_with("::="))
            .and_then(|l| grammar.find(l))
            .unwrap_or_else(|| panic!("{name} missing"));
        let rest = &grammar[start..];
        let end = rest.find("\n/*").unwrap_or(rest.len());
        let body = &rest[..end];
        let mut lines = body.lines();
        let first = lines.next().unwrap_or_default();
        std::iter::once(first)
            .chain(lines.take_while(|l| !l.trim().is_empty() && !l.contains("::=")))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let hard = section("HARD_KEYWORD");
    let soft = section("SOFT_KEYWORD");
    let mut lexer_keywords = 0;
    for word in hard
        .split('\'')
        .skip(1)
        .step_by(2)
        .chain(soft.split('\'').skip(1).step_by(2))
    {
        let tokens: Vec<Token> = wvflow::syntax::lexer::lex(word, FileId(0))
            .0
            .into_iter()
            .map(|(t, _)| t)
            .collect();
        assert_eq!(tokens.len(), 1, "{word}");
        assert!(
            tokens[0].is_keyword(),
            "the grammar lists `{word}` but the lexer reads a name"
        );
        assert_eq!(
            tokens[0].is_soft_keyword(),
            soft.contains(&format!("'{word}'")),
            "{word}: hard or soft differs"
        );
        lexer_keywords += 1;
    }
    // Every keyword token of the lexer appears in the grammar.
    let all = (0u8..=Token::Query as u8).count();
    assert_eq!(lexer_keywords, all);
}

#[test]
fn the_readme_example_parses() {
    let readme = std::fs::read_to_string("README.md").unwrap();
    for block in code_blocks(&readme, "wv") {
        assert!(parse(&block, FileId(0)).diagnostics.is_empty(), "{block}");
    }
}

const ORDERS: &str = "order_id,customer,amount,status\n\
    A-1001,ada,42.50,open\n\
    A-1002,bob,13.00,paid\n\
    A-1003,cyd,99.90,open\n";

/// A stand-in for a payment provider: it notes each call; order A-1003's card is declined.
const CHARGE: &str = "#!/bin/sh\n\
    echo \"$1\" >> calls.txt\n\
    if [ \"$1\" = A-1003 ]; then echo \"card declined for $1\" >&2; exit 3; fi\n\
    printf '{\"order_id\": \"%s\", \"charged\": true}\\n' \"$1\"\n";

/// The README's first `wv` block in a folder of its own, with the data file and the program
/// it names: what a newcomer who copies it has.
fn readme_example(name: &str) -> PathBuf {
    let readme = std::fs::read_to_string("README.md").unwrap();
    let first = code_blocks(&readme, "wv")
        .into_iter()
        .next()
        .expect("README.md has a wv block");
    let dir = scratch(
        name,
        &[
            ("billing.wv", &first),
            ("data/orders.csv", ORDERS),
            ("bin/charge", CHARGE),
        ],
    );
    make_executable(&dir.join("bin/charge"));
    dir
}

fn make_executable(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn the_readme_first_example_checks_with_no_warning() {
    let dir = readme_example("readme-first-check");
    let o = wvflow(&["check", dir.to_str().unwrap()]);
    let (out, err) = (
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr),
    );
    assert_eq!(o.status.code(), Some(0), "{out}{err}");
    assert_eq!(out, "checked 1 file: no problems\n", "{err}");
    assert_eq!(err, "");
}

#[test]
fn the_readme_first_example_charges_open_orders_and_keeps_the_failed_charges() {
    let dir = readme_example("readme-first-run");
    let (code, summary) = run_json(&dir, Some("Billing"));
    // A charge that failed fails the run, so that it is seen; the report is kept anyway.
    assert_eq!(code, Some(1), "{summary}");
    assert_eq!(stage(&summary, "orders")["rows"], 2, "the open orders");
    assert_eq!(stage(&summary, "charged")["state"], "failed");
    assert_eq!(stage(&summary, "failed_report")["state"], "success");
    assert_eq!(stage(&summary, "failed_report")["rows"], 1);
    // The paid order is not charged; the declined one is tried 1 + 3 retries times.
    let mut calls: Vec<String> = std::fs::read_to_string(dir.join("calls.txt"))
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    calls.sort();
    assert_eq!(calls, ["A-1001", "A-1003", "A-1003", "A-1003", "A-1003"]);
    let run_id = summary["run_id"].as_str().unwrap();
    let o = wvflow(&[
        "runs",
        "-w",
        dir.to_str().unwrap(),
        "rows",
        run_id,
        "failed_report",
        "--format",
        "csv",
    ]);
    let rows = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        rows.contains("A-1003") && rows.contains("card declined for A-1003"),
        "{rows}"
    );
    assert!(!rows.contains("A-1001"), "{rows}");
}

#[test]
fn the_language_reference_lists_the_function_table() {
    let reference = std::fs::read_to_string("docs/language.md").unwrap();
    let table = wvflow::check::functions::markdown_table();
    assert!(
        reference.contains(&table),
        "docs/language.md must hold the function table as the binder checks it:\n{table}"
    );
}
