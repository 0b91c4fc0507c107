//! Finds the tables of the run database a query names (`run."stage"`, `run.name`), outside
//! string literals, quoted names and comments, so that each one the catalog holds is read
//! from the rows table instead ([`super::layout`]).

use std::ops::Range;

/// A table of the run database named in SQL text.
#[derive(Debug, PartialEq)]
pub(super) struct Named {
    pub name: String,
    /// Where `run."name"` is in the text.
    pub span: Range<usize>,
    /// Whether an alias follows (`AS o`, `"o"`, `o`): the subquery that replaces it then
    /// needs none of its own.
    pub aliased: bool,
}

/// Words that may follow a table in a `FROM` clause and are no alias.
const NOT_ALIASES: &[&str] = &[
    "where",
    "group",
    "having",
    "order",
    "limit",
    "window",
    "union",
    "except",
    "intersect",
    "join",
    "left",
    "right",
    "full",
    "inner",
    "cross",
    "natural",
    "outer",
    "on",
    "using",
    "indexed",
    "not",
    "returning",
];

fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b >= 0x80
}

/// The end of the quoted text that starts at `at` (its quote doubled inside it).
fn quoted_end(sql: &[u8], at: usize, close: u8) -> usize {
    let mut i = at + 1;
    while i < sql.len() {
        if sql[i] == close {
            if close != b']' && sql.get(i + 1) == Some(&close) {
                i += 2;
                continue;
            }
            return i + 1;
        }
        i += 1;
    }
    sql.len()
}

fn skip_space(sql: &[u8], mut i: usize) -> usize {
    while i < sql.len() && sql[i].is_ascii_whitespace() {
        i += 1;
    }
    i
}

fn word_end(sql: &[u8], mut i: usize) -> usize {
    while i < sql.len() && is_word(sql[i]) {
        i += 1;
    }
    i
}

/// The end of the token that starts at `i` when it is a string, a quoted name or a comment.
fn skipped(sql: &[u8], i: usize) -> Option<usize> {
    match sql[i] {
        b'\'' => Some(quoted_end(sql, i, b'\'')),
        b'"' => Some(quoted_end(sql, i, b'"')),
        b'`' => Some(quoted_end(sql, i, b'`')),
        b'[' => Some(quoted_end(sql, i, b']')),
        b'-' if sql.get(i + 1) == Some(&b'-') => Some(
            sql[i..]
                .iter()
                .position(|&b| b == b'\n')
                .map_or(sql.len(), |n| i + n + 1),
        ),
        b'/' if sql.get(i + 1) == Some(&b'*') => Some(
            sql[i + 2..]
                .windows(2)
                .position(|w| w == b"*/")
                .map_or(sql.len(), |n| i + 2 + n + 2),
        ),
        _ => None,
    }
}

/// The table named after `run.` at `i` (a quoted or a bare name), and where it ends.
fn table_name(text: &str, i: usize) -> Option<(String, usize)> {
    let sql = text.as_bytes();
    match sql.get(i)? {
        b'"' => {
            let end = quoted_end(sql, i, b'"');
            let inner = text.get(i + 1..end.checked_sub(1)?)?;
            Some((inner.replace("\"\"", "\""), end))
        }
        &b if is_word(b) && !b.is_ascii_digit() => {
            let end = word_end(sql, i);
            Some((text[i..end].to_string(), end))
        }
        _ => None,
    }
}

/// Whether an alias follows the table that ends at `i`.
fn alias_follows(text: &str, i: usize) -> bool {
    let sql = text.as_bytes();
    let i = skip_space(sql, i);
    match sql.get(i) {
        Some(b'"' | b'`' | b'[') => true,
        Some(&b) if is_word(b) => {
            let word = &text[i..word_end(sql, i)];
            word.eq_ignore_ascii_case("as")
                || !NOT_ALIASES.iter().any(|k| word.eq_ignore_ascii_case(k))
        }
        _ => false,
    }
}

/// Each table of schema `run` the SQL names, in order.
pub(super) fn run_tables(text: &str) -> Vec<Named> {
    let sql = text.as_bytes();
    let mut found = Vec::new();
    // The last byte of the token before, other than space: `x.run` is no schema.
    let mut before = b' ';
    let mut i = 0;
    while i < sql.len() {
        if let Some(end) = skipped(sql, i) {
            before = sql[i];
            i = end;
            continue;
        }
        let b = sql[i];
        if !is_word(b) {
            if !b.is_ascii_whitespace() {
                before = b;
            }
            i += 1;
            continue;
        }
        let end = word_end(sql, i);
        if before != b'.' && text[i..end].eq_ignore_ascii_case("run") {
            let dot = skip_space(sql, end);
            if sql.get(dot) == Some(&b'.')
                && let Some((name, name_end)) = table_name(text, skip_space(sql, dot + 1))
            {
                found.push(Named {
                    name,
                    span: i..name_end,
                    aliased: alias_follows(text, name_end),
                });
                before = b'"';
                i = name_end;
                continue;
            }
        }
        before = b'a';
        i = end;
    }
    found
}

/// `text` with the tables at `replaced` (in order, each with its SQL) replaced; an
/// unaliased one keeps its name as its alias.
pub(super) fn replace(text: &str, replaced: &[(&Named, String)]) -> String {
    let mut out = String::with_capacity(text.len() + replaced.len() * 96);
    let mut at = 0;
    for (named, sql) in replaced {
        out.push_str(&text[at..named.span.start]);
        out.push_str(sql);
        if !named.aliased {
            out.push_str(" AS ");
            out.push_str(&super::quote(&named.name));
        }
        at = named.span.end;
    }
    out.push_str(&text[at..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(sql: &str) -> Vec<(String, bool)> {
        run_tables(sql)
            .into_iter()
            .map(|n| (n.name, n.aliased))
            .collect()
    }

    #[test]
    fn tables_of_the_run_database_are_found_outside_strings_and_comments() {
        assert_eq!(
            names(r#"SELECT * FROM run."a b" AS "a" JOIN run."c""d" AS "c" ON x"#),
            [("a b".to_string(), true), ("c\"d".to_string(), true)]
        );
        assert_eq!(
            names(r#"SELECT * FROM (SELECT * FROM run."s" WHERE "k" > 1) AS "s""#),
            [("s".to_string(), false)]
        );
        assert_eq!(
            names("SELECT 'run.\"x\"', \"run\".\"y\" -- run.\"z\"\n FROM RUN.t o /* run.u */"),
            [("t".to_string(), true)]
        );
        // A column of a table called `run`, or a schema's table called `run`: neither.
        assert!(names(r#"SELECT t.run."x", main.run FROM t"#).is_empty());
        assert_eq!(
            names(r#"SELECT * FROM run."s" LIMIT 1"#),
            [("s".to_string(), false)]
        );
    }

    #[test]
    fn a_replaced_table_keeps_its_name_unless_it_has_an_alias() {
        let sql = r#"SELECT "s"."x" FROM run."s" WHERE 1 UNION SELECT * FROM run."t" AS o"#;
        let found = run_tables(sql);
        let replaced: Vec<(&Named, String)> = found
            .iter()
            .map(|n| (n, format!("(sub {})", n.name)))
            .collect();
        assert_eq!(
            replace(sql, &replaced),
            r#"SELECT "s"."x" FROM (sub s) AS "s" WHERE 1 UNION SELECT * FROM (sub t) AS o"#
        );
    }
}
