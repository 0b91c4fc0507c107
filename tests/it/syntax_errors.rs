//! One snapshot per kind of syntax error: the rendered report a user sees, with its code,
//! span, message and help. The source is kept as the snapshot's description.

use wvflow::diagnostics::render_human;
use wvflow::workspace::Workspace;

fn report(name: &str, src: &str) -> Vec<&'static str> {
    let mut workspace = Workspace::default();
    workspace.add(format!("{name}.wv").into(), src.to_string());
    let diagnostics: Vec<_> = workspace.diagnostics().cloned().collect();
    let rendered = render_human(&diagnostics, &workspace.sources, false);
    insta::with_settings!({ description => src, omit_expression => true }, {
        insta::assert_snapshot!(name, rendered);
    });
    diagnostics.iter().map(|d| d.code.as_str()).collect()
}

#[test]
fn unexpected_character() {
    assert_eq!(
        report(
            "unexpected_character",
            "flow f = { stage s = from t | where a ? b }"
        ),
        ["E0001"]
    );
}

#[test]
fn unterminated_strings() {
    let codes = report(
        "unterminated_strings",
        "flow f = {\n  stage a = from 'data/x.csv\n  stage b = notify(\"oops)\n}\nactivity x = sh(\"\"\"echo\n",
    );
    // The `)` swallowed by the second string is missed at the `}`; the flow itself is not lost.
    assert_eq!(codes, ["E0002", "E0002", "E0010", "E0002", "E0011"]);
}

#[test]
fn unterminated_quoted_name_and_comment() {
    let codes = report(
        "unterminated_name_and_comment",
        "flow f = { stage s = from `odd name }\n/* never closed\n",
    );
    assert_eq!(codes, ["E0003", "E0004", "E0011"]);
}

#[test]
fn malformed_number() {
    assert_eq!(
        report(
            "malformed_number",
            "flow f = { stage s [timeout: 5min] = from t }"
        ),
        ["E0005"]
    );
}

#[test]
fn a_fraction_of_a_duration_unit_suggests_the_whole_equivalent() {
    assert_eq!(
        report(
            "fractional_duration",
            "flow f = {\n  stage pause = wait(1.5h)\n  stage s [timeout: 0.5s, retry_delay: 1.0m] = from t\n  stage tiny = wait(0.0005s)\n}"
        ),
        ["E0005"; 4]
    );
}

#[test]
fn unknown_escape() {
    assert_eq!(
        report(
            "unknown_escape",
            r"flow f = { stage s = from 'C:\data\x.csv' }"
        ),
        ["E0006"]
    );
}

#[test]
fn numbers_out_of_range() {
    let codes = report(
        "numbers_out_of_range",
        "flow f @version(4294967296) = {\n  stage s = from t | limit 99999999999999999999 | where x = 9223372036854775808 | wait(99999999999999999d)\n}",
    );
    assert_eq!(codes, ["E0007"; 4]);
}

#[test]
fn unknown_parameter_type() {
    assert_eq!(
        report(
            "unknown_type",
            "flow f(day: dat, n: integer) = { stage s = from t }"
        ),
        ["E0008", "E0008"]
    );
}

#[test]
fn config_entries_on_one_line_need_a_comma() {
    assert_eq!(
        report(
            "entries_need_separator",
            "flow f = {\n  stage s with { retries: 3 timeout: 5s } = from t\n}"
        ),
        ["E0009"]
    );
}

#[test]
fn missing_equals_arrow_colon_and_brace() {
    let codes = report(
        "missing_punctuation",
        "flow f = {\n  stage a from t\n  stage b = from a | route { case x > 1 big }\n  stage c with { retries 3 } = from a\n  stage d = from a | where (x > 1\n}\nflow g = {\n  stage e = from t\n",
    );
    assert_eq!(codes, ["E0010", "E0010", "E0010", "E0010", "E0011"]);
}

#[test]
fn keyword_used_as_a_name() {
    assert_eq!(
        report("keyword_as_name", "flow f = { stage limit = from t }"),
        ["E0010"]
    );
}

#[test]
fn unexpected_end_of_file() {
    assert_eq!(
        report("unexpected_end", "flow f = { stage s = from"),
        ["E0011"]
    );
}

#[test]
fn nesting_too_deep() {
    let src = format!(
        "flow f = {{ stage s = from t | where {}1{} }}",
        "(".repeat(10_000),
        ")".repeat(10_000)
    );
    let mut workspace = Workspace::default();
    workspace.add("deep.wv".into(), src);
    let codes: Vec<_> = workspace.diagnostics().map(|d| d.code.as_str()).collect();
    assert_eq!(codes, ["E0012"]);
    let d = workspace.diagnostics().next().unwrap();
    assert_eq!(d.message, "nesting deeper than 1000 levels");
}

#[test]
fn stray_tokens_between_items() {
    assert_eq!(
        report(
            "stray_tokens",
            "stage s = from t\nflow f = { stage s = from t }\n} 42\n"
        ),
        ["E0010", "E0010"]
    );
}

#[test]
fn a_too_deep_item_is_skipped_and_its_neighbours_are_still_read() {
    let deep = format!(
        "flow deep = {{ stage s = from t | where {}1{} }}",
        "(".repeat(2_000),
        ")".repeat(2_000)
    );
    let src = format!(
        "flow before = {{ stage a = }}\n{deep}\nflow after = {{ stage b = from }}\nflow fine = {{ stage c = from t }}\n"
    );
    let mut workspace = Workspace::default();
    workspace.add("neighbours.wv".into(), src);
    let codes: Vec<_> = workspace.diagnostics().map(|d| d.code.as_str()).collect();
    assert_eq!(codes, ["E0010", "E0012", "E0010"]);
    let names: Vec<_> = workspace.parsed[0]
        .ast
        .items
        .iter()
        .map(|item| match item {
            wvflow::syntax::ast::Item::Flow(f) => f.name.name.to_string(),
            _ => String::new(),
        })
        .collect();
    assert_eq!(names, ["before", "after", "fine"]);
}

#[test]
fn comparisons_do_not_chain() {
    assert_eq!(
        report(
            "chained_comparison",
            "flow f = { stage s = from t | where a < b < c }"
        ),
        ["E0010"]
    );
}

#[test]
fn unclosed_brace_is_reported_where_it_opens() {
    assert_eq!(
        report("unclosed_brace", "flow f = {\n  stage a = from t\n"),
        ["E0011"]
    );
}

#[test]
fn unclosed_config_block_is_told_apart_from_the_flow_by_indentation() {
    assert_eq!(
        report(
            "unclosed_config_block",
            "flow f = {\n  stage a with {\n    retries: 2\n  = from t\n  stage b = from a\n}\n"
        ),
        ["E0011"]
    );
}

#[test]
fn unclosed_parenthesis_and_bracket() {
    let codes = report(
        "unclosed_parenthesis_and_bracket",
        "flow f = {\n  stage a = from t | where (x > 1\n  stage b = from a\n}\nflow g = {\n  stage c = from [[1, 'x'], [2, 'y']\n}\n",
    );
    assert_eq!(codes, ["E0010", "E0010"]);
}

#[test]
fn a_flow_left_open_does_not_swallow_the_next_item() {
    let src = "flow f = {\n  stage a = from t\n\nactivity x = sh('echo')\n";
    assert_eq!(report("unclosed_before_next_item", src), ["E0010"]);
    let mut workspace = Workspace::default();
    workspace.add("next_item.wv".into(), src.to_string());
    assert_eq!(workspace.parsed[0].ast.items.len(), 2);
}

#[test]
fn activity_without_command() {
    let codes = report(
        "activity_without_command",
        "activity x with { retries: 2 }\nactivity y(a: int)\n",
    );
    assert_eq!(codes, ["E0010", "E0011"]);
}

#[test]
fn quote_right_before_the_closing_triple_quotes() {
    let codes = report(
        "quote_before_triple_close",
        "activity x = sh(\"\"\"echo \"hi\"\"\"\")\nflow f = {\n  stage s = from t | where a = \"\"\"say \"x\"\"\"\"\n}\n",
    );
    assert_eq!(codes, ["E0002", "E0002"]);
}

#[test]
fn a_nul_in_a_string_is_refused_where_it_is_written() {
    // Not a snapshot: the rendered source line would put a NUL byte into the snapshot file.
    let src = "flow f = {\n  stage s = from [['a\u{0}b']] as t(label)\n}\n";
    let mut workspace = Workspace::default();
    workspace.add("nul.wv".into(), src.to_string());
    let found: Vec<(&str, usize)> = workspace
        .diagnostics()
        .map(|d| (d.code.as_str(), d.primary.span.start as usize))
        .collect();
    assert_eq!(found, [("E0014", src.find('\u{0}').unwrap())]);
}

#[test]
fn long_chains_of_one_operator_are_not_deep_nesting() {
    let terms: Vec<String> = (0..600).map(|i| format!("x = {i}")).collect();
    let src = format!(
        "flow f = {{\n  stage s = from [[1]] as t(x) | where {}\n}}\n",
        terms.join(" or ")
    );
    let mut workspace = wvflow::workspace::Workspace::default();
    workspace.add("chain.wv".into(), src);
    let codes: Vec<&str> = workspace.diagnostics().map(|d| d.code.as_str()).collect();
    assert!(codes.is_empty(), "{codes:?}");
}
