//! `wvflow fmt`: formatting twice equals formatting once, and the formatted file parses to the
//! same tree (spans aside), over every example, the benchmark generator's flows, and the
//! examples with their spacing and indentation scrambled. And the command line: `--check`,
//! files with syntax errors left alone.

#[allow(dead_code)]
#[path = "../../examples/gen_workspace.rs"]
pub(crate) mod generator;

use crate::common::{scratch, wvflow};
use wvflow::format::format;
use wvflow::source::FileId;
use wvflow::syntax::lexer::Lexer;
use wvflow::syntax::{parse, sexpr};

fn tree(src: &str) -> String {
    let parsed = parse(src, FileId(0));
    assert!(parsed.diagnostics.is_empty(), "{:?}", parsed.diagnostics);
    sexpr::file(&parsed.ast)
}

/// Formats `src` and checks the two properties; returns the formatted text.
fn check_properties(name: &str, src: &str) -> String {
    let once = format(src, FileId(0)).unwrap_or_else(|d| panic!("{name}: {d:?}"));
    let twice = format(&once, FileId(0)).unwrap();
    assert_eq!(twice, once, "{name}: formatting is not idempotent");
    assert_eq!(tree(&once), tree(src), "{name}: the tree changed");
    once
}

fn examples() -> Vec<(String, String)> {
    let mut found: Vec<(String, String)> = std::fs::read_dir("examples")
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "wv"))
        .map(|p| {
            (
                p.display().to_string(),
                std::fs::read_to_string(&p).unwrap(),
            )
        })
        .collect();
    found.sort();
    found
}

#[test]
fn every_example_is_formatted_and_formatting_keeps_the_tree() {
    for (name, src) in examples() {
        let formatted = check_properties(&name, &src);
        assert_eq!(
            formatted, src,
            "{name} is not in the canonical layout: run `wvflow fmt examples`"
        );
    }
}

#[test]
fn generated_flows_format_idempotently_to_the_same_tree() {
    let mut src = String::new();
    for i in 0..200 {
        generator::flow(&mut src, i, 12);
    }
    check_properties("generated", &src);
}

/// A tiny deterministic random source (xorshift), so a failure can be reproduced.
struct Random(u64);

impl Random {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// The same tokens and comments with spacing and indentation scrambled: spaces between tokens
/// on a line become 1-4 spaces or tabs (or stay absent), indentation becomes 0-9 spaces. Line
/// breaks stay, because the grammar reads some of them.
fn scramble(src: &str, random: &mut Random) -> String {
    let mut out = String::new();
    let mut at = 0;
    let tokens: Vec<_> = Lexer::new(src, FileId(0)).collect();
    for (_, span) in tokens.iter().chain(std::iter::once(&(
        wvflow::syntax::token::Token::Unknown,
        wvflow::syntax::Span::new(src.len(), src.len()),
    ))) {
        let gap = &src[at..span.start as usize];
        for (k, line) in gap.split('\n').enumerate() {
            if k > 0 {
                out.push('\n');
                out.push_str(&" ".repeat(random.below(10) as usize));
            }
            let trimmed = line.trim_matches([' ', '\t']);
            if trimmed.is_empty() {
                if k == 0 && !line.is_empty() {
                    out.push_str(&scrambled_space(random));
                }
                continue;
            }
            // A comment: keep its text, with scrambled space around it.
            if k == 0 && line.starts_with([' ', '\t']) {
                out.push_str(&scrambled_space(random));
            }
            out.push_str(trimmed);
        }
        if gap.is_empty() && at > 0 && random.below(3) == 0 {
            out.push(' ');
        }
        out.push_str(&src[span.start as usize..span.end as usize]);
        at = span.end as usize;
    }
    out
}

fn scrambled_space(random: &mut Random) -> String {
    (0..=random.below(4))
        .map(|_| if random.below(4) == 0 { '\t' } else { ' ' })
        .collect()
}

#[test]
fn scrambled_examples_format_back_to_the_same_layout() {
    let mut random = Random(0x5eed);
    for (name, src) in examples() {
        for round in 0..10 {
            let scrambled = scramble(&src, &mut random);
            assert_ne!(scrambled, src, "{name}: the scramble changed nothing");
            let formatted = check_properties(&format!("{name} round {round}"), &scrambled);
            assert_eq!(
                formatted, src,
                "{name} round {round}: scrambled\n{scrambled}"
            );
        }
    }
}

#[test]
fn fmt_rewrites_files_check_names_them_and_files_with_errors_are_left_alone() {
    let messy = "flow   F  with {retries:2} = {\n stage a=from [[1,'x']] as t( id,name )\n      |where id>=1   -- keep me\n}\n";
    let broken = "flow G = {\n  stage a = from\n";
    let dir = scratch("fmt-cli", &[("messy.wv", messy), ("sub/broken.wv", broken)]);
    let path = dir.to_str().unwrap();
    let o = wvflow(&["fmt", "--check", path]);
    assert_eq!(
        o.status.code(),
        Some(2),
        "a file with syntax errors is an error"
    );
    let listed = String::from_utf8_lossy(&o.stdout);
    assert!(listed.contains("messy.wv"), "{listed}");
    assert_eq!(
        std::fs::read_to_string(dir.join("messy.wv")).unwrap(),
        messy,
        "--check changes nothing"
    );

    std::fs::remove_file(dir.join("sub/broken.wv")).unwrap();
    let o = wvflow(&["fmt", "--check", path]);
    assert_eq!(o.status.code(), Some(1));
    let o = wvflow(&["fmt", path]);
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(
        std::fs::read_to_string(dir.join("messy.wv")).unwrap(),
        "flow F with { retries: 2 } = {\n  stage a = from [[1, 'x']] as t(id, name)\n    | where id >= 1 -- keep me\n}\n"
    );
    let o = wvflow(&["fmt", "--check", path]);
    assert_eq!(o.status.code(), Some(0));

    let broken_dir = scratch("fmt-broken", &[("broken.wv", broken)]);
    let o = wvflow(&["fmt", broken_dir.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("has syntax errors"));
    assert_eq!(
        std::fs::read_to_string(broken_dir.join("broken.wv")).unwrap(),
        broken
    );
}

#[test]
fn signs_comments_and_stars_keep_their_meaning() {
    let src = "flow F = {\n  stage s = from t |where x = - -1 and y=a*-1 /*/ still a comment */ | select count(*)\n}\n";
    let formatted = check_properties("tricky", src);
    assert_eq!(
        formatted,
        "flow F = {\n  stage s = from t | where x = - -1 and y = a * -1 /*/ still a comment */ | select count(*)\n}\n"
    );
}

/// `wvflow fmt` streams: it checks the syntax chunk by chunk, compares the formatted text with
/// the file as it is printed, and writes it out in pieces. Over a file of many chunks, the
/// result is the text `format` returns, and a difference or a syntax error anywhere is found.
#[test]
fn fmt_streams_large_files_to_the_same_text() {
    let mut src = String::new();
    for i in 0..600 {
        generator::flow(&mut src, i, 12);
    }
    assert!(src.len() > 4 * 64 * 1024, "several chunks: {}", src.len());
    let formatted = check_properties("large", &src);
    let formatter = wvflow::format::Formatter::new(&formatted, FileId(0)).unwrap();
    assert!(formatter.is_formatted());
    let middle = formatted.len() / 2 + formatted[formatted.len() / 2..].find('\n').unwrap();
    for (place, changed) in [
        ("start", format!(" {formatted}")),
        (
            "middle",
            format!("{} {}", &formatted[..=middle], &formatted[middle + 1..]),
        ),
        ("end", format!("{formatted}\n")),
        ("no final newline", formatted.trim_end().to_string()),
    ] {
        let formatter = wvflow::format::Formatter::new(&changed, FileId(0)).unwrap();
        assert!(!formatter.is_formatted(), "{place}");
        let mut written = Vec::new();
        formatter.write_to(&mut written).unwrap();
        assert_eq!(String::from_utf8(written).unwrap(), formatted, "{place}");
    }
    let broken = format!("{formatted}flow Broken = {{\n  stage a = from\n");
    assert!(wvflow::format::Formatter::new(&broken, FileId(0)).is_err());

    let mut random = Random(0xb16);
    let scrambled = scramble(&src, &mut random);
    let dir = scratch("fmt-large", &[("large.wv", &scrambled)]);
    let path = dir.to_str().unwrap();
    assert_eq!(wvflow(&["fmt", "--check", path]).status.code(), Some(1));
    assert_eq!(wvflow(&["fmt", path]).status.code(), Some(0));
    let written = std::fs::read_to_string(dir.join("large.wv")).unwrap();
    assert!(written == formatted, "fmt wrote a different text");
    assert_eq!(wvflow(&["fmt", "--check", path]).status.code(), Some(0));
}
