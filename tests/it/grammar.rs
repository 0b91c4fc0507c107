//! The editor grammar (`grammar/wvflow.tmLanguage.json`) tokenized by VS Code's own TextMate
//! engine (`vscode-textmate` with Oniguruma, npm, pinned in `tests/textmate`) over every
//! example. wvflow's lexer is the reference: each keyword, string, number, duration and
//! comment it finds must get the matching scope in the editor.

use serde_json::Value;
use std::collections::BTreeMap;
use std::process::Command;
use wvflow::source::FileId;
use wvflow::syntax::lexer::Lexer;
use wvflow::syntax::token::Token;

/// The scopes at a byte offset of `src`, from the editor's tokens of its line.
fn scopes_at<'v>(lines: &'v [Value], src: &str, offset: usize) -> Vec<&'v str> {
    let line = src[..offset].matches('\n').count();
    let line_start = src[..offset].rfind('\n').map_or(0, |i| i + 1);
    let column = src[line_start..offset].encode_utf16().count() as u64;
    lines[line]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t[0].as_u64().unwrap() <= column && column < t[1].as_u64().unwrap())
        .map(|t| {
            t[2].as_array()
                .unwrap()
                .iter()
                .map(|s| s.as_str().unwrap())
                .collect()
        })
        .unwrap_or_default()
}

/// The kind of scope each kind of token must have in the editor, if it is checked.
fn expected(token: Token) -> Option<(&'static str, &'static [&'static str])> {
    Some(match token {
        Token::Duration => ("duration", &["constant.numeric.duration"]),
        Token::Int | Token::Float => ("number", &["constant.numeric"]),
        Token::SingleQuoted | Token::DoubleQuoted | Token::TripleQuoted => ("string", &["string."]),
        Token::True | Token::False | Token::Null => ("constant", &["constant.language"]),
        t if t.is_keyword() && !t.is_soft_keyword() => ("keyword", &["keyword.", "storage.type"]),
        _ => return None,
    })
}

#[test]
fn the_textmate_grammar_scopes_keywords_strings_durations_and_comments_like_the_lexer() {
    let mut files: Vec<String> = std::fs::read_dir("examples")
        .unwrap()
        .flatten()
        .map(|e| e.path().display().to_string())
        .filter(|p| p.ends_with(".wv"))
        .collect();
    files.sort();
    let output = Command::new("node")
        .arg("tests/textmate/tokenize.mjs")
        .arg("grammar/wvflow.tmLanguage.json")
        .args(&files)
        .output()
        .expect("node is installed and tests/textmate is set up (scripts/test.sh)");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let editor: Value = serde_json::from_slice(&output.stdout).unwrap();
    let mut checked: BTreeMap<&str, usize> = BTreeMap::new();
    let mut wrong = Vec::new();
    for file in &files {
        let src = std::fs::read_to_string(file).unwrap();
        let lines = editor[file.as_str()].as_array().unwrap();
        let tokens: Vec<(Token, wvflow::syntax::Span)> = Lexer::new(&src, FileId(0)).collect();
        let mut at = 0;
        for (token, span) in &tokens {
            let (start, end) = (span.start as usize, span.end as usize);
            // Comments are in the gaps between tokens.
            let gap = &src[at..start];
            for (marker, _) in gap.match_indices("--").chain(gap.match_indices("/*")) {
                let offset = at + marker;
                let line_start = src[..offset].rfind('\n').map_or(0, |i| i + 1);
                // Only the comment's opening: `--` inside a comment line is its text.
                if src[line_start..offset].contains("--") || src[line_start..offset].contains("/*")
                {
                    continue;
                }
                *checked.entry("comment").or_default() += 1;
                let scopes = scopes_at(lines, &src, offset);
                if !scopes.iter().any(|s| s.starts_with("comment.")) {
                    wrong.push(format!("{file}:{offset}: comment got {scopes:?}"));
                }
            }
            at = end;
            let Some((kind, wanted)) = expected(*token) else {
                continue;
            };
            *checked.entry(kind).or_default() += 1;
            let scopes = scopes_at(lines, &src, start);
            if !scopes
                .iter()
                .any(|s| wanted.iter().any(|w| s.starts_with(w)))
            {
                wrong.push(format!(
                    "{file}:{start}: {kind} `{}` got {scopes:?}",
                    &src[start..end]
                ));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "{} wrong:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
    for kind in [
        "keyword", "string", "duration", "number", "comment", "constant",
    ] {
        assert!(
            checked.get(kind).copied().unwrap_or(0) > 0,
            "no {kind} in the examples"
        );
    }
    eprintln!("checked {checked:?}");
}

#[test]
fn the_vscode_extension_uses_this_grammar_and_starts_wvflow_lsp() {
    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string("editors/vscode/package.json").unwrap())
            .unwrap();
    let language = &manifest["contributes"]["languages"][0];
    assert_eq!(language["id"], "wvflow");
    assert_eq!(language["extensions"][0], ".wv");
    let grammar = &manifest["contributes"]["grammars"][0];
    let path = format!(
        "editors/vscode/{}",
        grammar["path"].as_str().unwrap().trim_start_matches("./")
    );
    let bundled: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let ours: Value =
        serde_json::from_str(&std::fs::read_to_string("grammar/wvflow.tmLanguage.json").unwrap())
            .unwrap();
    assert_eq!(
        bundled, ours,
        "the extension carries grammar/wvflow.tmLanguage.json"
    );
    assert_eq!(grammar["scopeName"], ours["scopeName"]);
    let script = std::fs::read_to_string("editors/vscode/extension.js").unwrap();
    assert!(script.contains("args: ['lsp']") && script.contains("language: 'wvflow'"));
}
