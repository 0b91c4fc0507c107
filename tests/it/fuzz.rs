//! Random and mutated inputs through the lexer, parser and renderers: no panic, no hang, and
//! every diagnostic points inside its file at character boundaries. And random sessions with
//! the language server: every request answered once, no handler failing.

#[path = "../../fuzz/common/lsp_session.rs"]
mod lsp_session;

use wvflow::diagnostics::{render_human, render_json, render_short};
use wvflow::workspace::Workspace;

/// xorshift64*: deterministic, so a failure reproduces with the printed case number.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const FRAGMENTS: &[&str] = &[
    "(",
    ")",
    "[",
    "]",
    "{",
    "}",
    ",",
    ":",
    ";",
    ".",
    "|",
    "->",
    "=",
    "'",
    "\"",
    "\"\"\"",
    "`",
    "--",
    "/*",
    "*/",
    "\\",
    "stage",
    "flow",
    "from",
    "with",
    "if",
    "route",
    "case",
    "else",
    "fork",
    "each",
    "wait",
    "until",
    "activate",
    "call",
    "run",
    "activity",
    "sh",
    "exec",
    "not",
    "and",
    "or",
    "is",
    "null",
    "in",
    "like",
    "5m",
    "99999999999999999999",
    "1.5",
    "x",
    "_",
    "é",
    "𝄞",
    "\n",
    " ",
    "\t",
    "\u{0}",
    "((((((((((",
    "- - - - -",
    "@version(",
    "select *",
    "pool",
    "failed(",
    "timestamp '2026-12-01T09:00:00Z'",
    "date '2026-02-30'",
    "now()",
    "each call",
    "| call",
    "wait until",
    "first_success",
];

fn mutate(rng: &mut Rng, text: &str) -> String {
    let mut bytes = text.as_bytes().to_vec();
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(bytes.len() + 1);
        match rng.below(5) {
            0 if !bytes.is_empty() => {
                let end = (at + rng.below(40)).min(bytes.len());
                bytes.drain(at.min(end)..end);
            }
            1 => {
                let fragment = FRAGMENTS[rng.below(FRAGMENTS.len())];
                bytes.splice(at..at, fragment.bytes());
            }
            2 if !bytes.is_empty() => {
                let start = rng.below(bytes.len());
                let end = (start + rng.below(200)).min(bytes.len());
                let copy = bytes[start..end].to_vec();
                bytes.splice(at..at, copy);
            }
            3 => bytes.truncate(at),
            _ => {
                let noise: Vec<u8> = (0..rng.below(16)).map(|_| rng.next() as u8).collect();
                bytes.splice(at..at, noise);
            }
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

fn check_case(case: usize, text: String) {
    // The formatter's syntax check, chunk by chunk, agrees with the parser.
    let file_id = wvflow::source::FileId(0);
    let parsed = wvflow::syntax::parse(&text, file_id);
    assert_eq!(
        wvflow::syntax::has_errors(&text, file_id),
        parsed.diagnostics.iter().any(|d| d.is_error()),
        "case {case}: has_errors disagrees with parse:\n{text}"
    );
    // Whatever parses formats, idempotently, to the same tree; printed whole, compared as it
    // is printed, or written out, the text is the same.
    if let Ok(formatter) = wvflow::format::Formatter::new(&text, file_id) {
        let formatted = wvflow::format::format(&text, file_id).unwrap();
        assert_eq!(
            formatter.is_formatted(),
            formatted == text,
            "case {case}:\n{text}"
        );
        let mut written = Vec::new();
        formatter.write_to(&mut written).unwrap();
        assert_eq!(written, formatted.as_bytes(), "case {case}");
    }
    if let Ok(formatted) = wvflow::format::format(&text, wvflow::source::FileId(0)) {
        let tree = |src: &str| {
            wvflow::syntax::sexpr::file(&wvflow::syntax::parse(src, wvflow::source::FileId(0)).ast)
        };
        assert_eq!(
            wvflow::format::format(&formatted, wvflow::source::FileId(0)).ok(),
            Some(formatted.clone()),
            "case {case}: formatting is not idempotent:\n{text}"
        );
        assert_eq!(
            tree(&formatted),
            tree(&text),
            "case {case}: the tree changed:\n{text}"
        );
    }
    let mut workspace = Workspace::default();
    workspace.add(format!("case{case}.wv").into(), text);
    let diagnostics: Vec<_> = workspace.diagnostics().cloned().collect();
    let file = workspace.sources.iter().next().map(|(_, f)| f).unwrap();
    for d in &diagnostics {
        for label in std::iter::once(&d.primary).chain(&d.secondary) {
            let range = label.span.range();
            assert!(
                range.start <= range.end && range.end <= file.text.len(),
                "case {case}: span {range:?} outside the file"
            );
            assert!(
                file.text.is_char_boundary(range.start) && file.text.is_char_boundary(range.end),
                "case {case}: span {range:?} splits a character"
            );
        }
        assert!(
            d.code.as_str().starts_with('E') && d.code.as_str().len() == 5,
            "case {case}: bad code {}",
            d.code
        );
        assert!(!d.message.is_empty(), "case {case}: empty message");
    }
    render_short(&diagnostics, &workspace.sources);
    render_json(&diagnostics, &workspace.sources);
    if case.is_multiple_of(8) {
        render_human(&diagnostics, &workspace.sources, false);
    }
    // The checker (names, shapes, every rule) on whatever parsed, and the lowering of every
    // flow of a workspace that checks clean.
    let report = wvflow::check::check(&workspace);
    render_short(&report.diagnostics, &workspace.sources);
    if diagnostics.is_empty() && !report.diagnostics.iter().any(|d| d.is_error()) {
        let index = wvflow::check::Index::new(&workspace);
        for &def in &index.flows {
            let plan = wvflow::plan::lower(&workspace, &index, def);
            assert!(serde_json::to_string(&plan).is_ok(), "case {case}");
        }
    }
}

#[test]
fn random_bytes_never_stop_the_language_server_reader() {
    let mut rng = Rng(0x15b_f4a3e);
    for _ in 0..3000 {
        let mut bytes: Vec<u8> = (0..rng.below(300)).map(|_| rng.next() as u8).collect();
        // Half of the cases start like a frame, so the reader gets past the headers.
        if rng.below(2) == 0 {
            let header = format!("Content-Length: {}\r\n\r\n", rng.below(400));
            bytes.splice(0..0, header.into_bytes());
        }
        let mut input = bytes.as_slice();
        let mut frames = 0;
        while let Ok(Some(_)) = wvflow::lsp::transport::next_frame(&mut input) {
            frames += 1;
            assert!(frames <= bytes.len() + 1, "a frame out of nothing");
        }
    }
}

/// The short form of the `lsp_session` fuzz target: the same sessions, from seeded bytes.
#[test]
fn random_language_server_sessions_answer_every_request_once() {
    let mut rng = Rng(0x1_5e55_10f5);
    for case in 0..400 {
        let bytes: Vec<u8> = (0..rng.below(1500)).map(|_| rng.next() as u8).collect();
        let steps = lsp_session::decode(&bytes);
        let outcome = lsp_session::run(steps.clone(), std::time::Duration::from_secs(60));
        if let Err(problem) = lsp_session::check(&steps, &outcome) {
            panic!("session {case}: {problem}\n{steps:#?}");
        }
    }
}

#[test]
fn mutated_examples_never_panic() {
    let seeds: Vec<String> = std::fs::read_dir("examples")
        .unwrap()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "wv"))
        .map(|e| std::fs::read_to_string(e.path()).unwrap())
        .collect();
    let mut rng = Rng(0x5eed_cafe_f00d_0001);
    for case in 0..4000 {
        let seed = &seeds[case % seeds.len()];
        check_case(case, mutate(&mut rng, seed));
    }
}

#[test]
fn random_token_soup_never_panics() {
    let mut rng = Rng(0x0dd_ba11_2024);
    for case in 0..4000 {
        let text: String = (0..rng.below(120))
            .map(|_| FRAGMENTS[rng.below(FRAGMENTS.len())])
            .collect::<Vec<_>>()
            .join(" ");
        check_case(case, text);
    }
}

#[test]
fn random_bytes_never_panic() {
    let mut rng = Rng(0xb17e_5eed);
    for case in 0..1500 {
        let bytes: Vec<u8> = (0..rng.below(400)).map(|_| rng.next() as u8).collect();
        check_case(case, String::from_utf8_lossy(&bytes).into_owned());
    }
}

#[test]
fn deep_nesting_of_every_kind_is_refused_not_overflowed() {
    for (open, close) in [
        ("(", ")"),
        ("[", "]"),
        ("not ", ""),
        ("- ", ""),
        ("f(", ")"),
        ("fork { stage s = from t | ", "}"),
    ] {
        let text = format!(
            "flow f = {{ stage s = from t | where {}1{} }}",
            open.repeat(20_000),
            close.repeat(20_000)
        );
        let mut workspace = Workspace::default();
        workspace.add("deep.wv".into(), text);
        let codes: Vec<_> = workspace.diagnostics().map(|d| d.code.as_str()).collect();
        assert!(codes.contains(&"E0012"), "{open}: {codes:?}");
    }
}
