//! The documentation stays in step with the parser: every complete `wv` example in
//! docs/language.md parses cleanly, and the grammar lists exactly the parser's keywords.

use crate::common::code_blocks;
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

#[test]
fn the_language_reference_lists_the_function_table() {
    let reference = std::fs::read_to_string("docs/language.md").unwrap();
    let table = wvflow::check::functions::markdown_table();
    assert!(
        reference.contains(&table),
        "docs/language.md must hold the function table as the binder checks it:\n{table}"
    );
}
