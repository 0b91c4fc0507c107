//! A workspace held lean (each item's outline, each chunk's tree parsed again when needed)
//! answers as one held in full: the same diagnostics from `wvflow check`, the same answers
//! from the language server. Inputs are cut into many small chunks, so that names, calls,
//! pools and cycles reach from one chunk into others.

use serde_json::Value;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use wvflow::check::chunked::Chunked;
use wvflow::diagnostics::Diagnostic;
use wvflow::lsp::analysis::{Analysis, At};
use wvflow::lsp::features;
use wvflow::source::FileId;

use crate::format::generator;

type Files = Vec<(PathBuf, Arc<String>)>;

/// Items whose references reach across chunks: forward and backward calls with bad
/// arguments, a pool held by a caller, cycles of jumps, calls and `depends on`.
const ACROSS: &str = r#"
flow caller = {
  stage c with { pool: gpu } = from [[1]] as t(x) | call child_pool
  stage d = from c | call flow_1(day: 5, nope: 1)
  stage e = from d | -> loop_b
}
run flow flow_2(min_amount = 'x')
pool gpu with { slots: 2 }
activity heavy(x: int) with { pool: gpu, retries: 2, timeout: 2h } = exec('bin/heavy', x)
flow child_pool depends on loop_a = {
  stage a = from [[1]] as t(x) | each heavy(_.x)
  stage b = from a | fork {
    stage b1 [pool: gpu] = from b | call caller
    stage b2 = from b | activate('log')
  }
}
flow loop_a depends on child_pool with { timeout: 1h } = { stage s = from [[1]] as t(x) | each heavy(_.x) | -> loop_b }
flow loop_b if loop_a.done = { stage s = from [[1]] as t(x) | -> loop_a }
flow flow_1 @version(1) = { stage s = from [[1]] as t(x) }
run flow child_pool
"#;

/// The examples of docs/errors.md and their fixes, the example flows, some generated flows
/// and [`ACROSS`]: whether with syntax errors or not (a syntax error anywhere hides some
/// problems everywhere).
fn corpus(with_syntax_errors: bool) -> Vec<String> {
    let mut texts = Vec::new();
    for entry in wvflow::diagnostics::docs::entries() {
        texts.extend(crate::common::code_blocks(entry.body, "wv"));
    }
    let mut examples: Vec<_> = std::fs::read_dir("examples")
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "wv"))
        .collect();
    examples.sort();
    texts.extend(examples.iter().map(|p| std::fs::read_to_string(p).unwrap()));
    let mut generated = String::new();
    for i in 0..4 {
        generator::flow(&mut generated, i, 8);
    }
    texts.push(generated);
    texts.push(ACROSS.to_string());
    texts
        .into_iter()
        .filter(|text| {
            let parsed = wvflow::syntax::parse(text, FileId(0));
            parsed.diagnostics.is_empty() != with_syntax_errors
        })
        .collect()
}

/// One file of all the texts, and the same texts over three files.
fn workspaces(texts: &[String]) -> Vec<Files> {
    let file = |name: &str, text: String| (PathBuf::from(format!("/ws/{name}")), Arc::new(text));
    let mut split = vec![String::new(), String::new(), String::new()];
    for (i, text) in texts.iter().enumerate() {
        split[i % 3].push_str(text);
        split[i % 3].push('\n');
    }
    vec![
        vec![file("all.wv", texts.join("\n"))],
        split
            .into_iter()
            .enumerate()
            .map(|(i, text)| file(&format!("part{i}.wv"), text))
            .collect(),
    ]
}

/// The texts with syntax errors, each a file of its own (an unclosed comment in one would hide
/// the rest), beside every clean text in one file.
fn with_syntax_errors() -> Files {
    let mut files: Files = corpus(true)
        .into_iter()
        .enumerate()
        .map(|(i, text)| (PathBuf::from(format!("/ws/bad{i:02}.wv")), Arc::new(text)))
        .collect();
    files.push((
        PathBuf::from("/ws/good.wv"),
        Arc::new(corpus(false).join("\n")),
    ));
    files
}

#[test]
fn check_finds_the_same_problems_in_a_lean_workspace() {
    let mut all = workspaces(&corpus(false));
    all.push(with_syntax_errors());
    {
        for files in all {
            for chunk in [1, 300, 5000] {
                let full = Chunked::sized(files.clone(), true, Some(chunk));
                let lean = Chunked::sized(files.clone(), false, Some(chunk));
                for (a, b) in full.workspace.parsed.iter().zip(&lean.workspace.parsed) {
                    assert_eq!(a.diagnostics, b.diagnostics, "syntax, chunks of {chunk}");
                }
                let mut compact = Chunked::sized(files.clone(), false, Some(chunk));
                compact.compact();
                let expected = everything(&full.workspace);
                assert!(
                    expected.len() > 50,
                    "the corpus has problems to find: {}",
                    expected.len()
                );
                for (held, chunked) in [("lean", &lean), ("compact", &compact), ("full", &full)] {
                    assert_eq!(streamed(chunked), expected, "{held}, chunks of {chunk}");
                }
            }
        }
    }
    // The chunks `wvflow check` cuts, against a workspace loaded as before.
    let files = &workspaces(&corpus(false))[0];
    let mut workspace = wvflow::workspace::Workspace::default();
    workspace.add(files[0].0.clone(), files[0].1.to_string());
    let lean = Chunked::with_trees(files.clone(), false);
    assert_eq!(streamed(&lean), everything(&workspace));
}

/// What `wvflow check` reports of a workspace held in full: its syntax errors and what
/// `check` finds, in order.
fn everything(workspace: &wvflow::workspace::Workspace) -> Vec<Diagnostic> {
    let mut all: Vec<Diagnostic> = workspace.diagnostics().cloned().collect();
    all.extend(wvflow::check::check(workspace).diagnostics);
    wvflow::diagnostics::normalize(&mut all);
    all
}

/// What `check_chunked` hands out, one at a time, in its order.
fn streamed(chunked: &Chunked) -> Vec<Diagnostic> {
    let mut found = Vec::new();
    wvflow::check::check_chunked(chunked, |d| found.push(d));
    found
}

/// A hover without the next fire time of a schedule, which moves with the clock.
fn without_clock(mut hover: Value) -> Value {
    if let Some(text) = hover["contents"]["value"].as_str()
        && let Some(start) = text.find("; next fire")
    {
        let end = text[start..].find('\n').map_or(text.len(), |n| start + n);
        hover["contents"]["value"] = Value::from(format!("{}{}", &text[..start], &text[end..]));
    }
    hover
}

/// Every answer of the language server at `at`.
fn answers(analysis: &Analysis, at: At) -> Vec<Value> {
    vec![
        without_clock(features::hover(analysis, at)),
        analysis.definition(at),
        analysis.references(at, true),
        analysis.rename(at, "renamed"),
        features::completion(analysis, at),
    ]
}

#[test]
fn the_language_server_answers_the_same_from_a_lean_workspace() {
    let texts = corpus(false);
    for files in workspaces(&texts) {
        let disk: BTreeMap<PathBuf, Arc<String>> = files.iter().cloned().collect();
        let open = BTreeMap::new();
        let full = Analysis::sized(&disk, &open, true, 200);
        let lean = Analysis::sized(&disk, &open, false, 200);
        assert_eq!(full.diagnostics(), lean.diagnostics());
        let mut asked = 0;
        for (f, (path, text)) in files.iter().enumerate() {
            let file = FileId(f as u32);
            assert_eq!(
                features::document_symbols(&full, path),
                features::document_symbols(&lean, path)
            );
            // Names, keys and the places just after them, where completion looks back.
            let (tokens, _) = wvflow::syntax::lexer::lex(text, file);
            for (i, (_, span)) in tokens.iter().enumerate().step_by(6) {
                for offset in [span.start as usize, span.end as usize] {
                    let at = At { file, offset };
                    assert_eq!(
                        answers(&full, at),
                        answers(&lean, at),
                        "{} at token {i}",
                        path.display()
                    );
                    asked += 1;
                }
            }
        }
        assert!(asked > 500, "{asked} places asked");
    }
}
