//! `wvflow.toml` read once into [`Connectors`], with every problem as a [`ConfigError`] at
//! its place in the file.

use super::{
    ConnectorKind, Connector, Connectors, DEFAULT, FILE_NAME, Location, SecretText, TemplateError,
};
use crate::diagnostics::{Code, Diagnostic};
use crate::source::FileId;
use crate::span::Span;
use std::path::Path;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// A problem of `wvflow.toml`, with the span it is about.
#[derive(Clone, Debug, PartialEq)]
pub enum ConfigError {
    /// Not TOML; the parser's message.
    Malformed { message: String, span: Span },
    /// A key wvflow does not read (`table` is the connector's name, `None` at the top).
    UnknownKey {
        key: String,
        table: Option<String>,
        /// A kind this key belongs to, when it is another kind's key.
        kind_key: Option<ConnectorKind>,
        span: Span,
    },
    /// A key whose value is of another TOML type.
    WrongType {
        key: String,
        expected: &'static str,
        found: &'static str,
        span: Span,
    },
    /// `[connectors.default]`: the embedded database is not configurable.
    DefaultRedefined { span: Span },
    /// A connector without `kind`, or without the key its kind needs.
    MissingKey {
        connector: String,
        key: &'static str,
        kind: Option<ConnectorKind>,
        span: Span,
    },
    UnknownKind {
        connector: String,
        kind: String,
        span: Span,
    },
    /// A `url` that is not a template, or not a PostgreSQL URL.
    BadUrl { problem: UrlProblem, span: Span },
    /// `path = ""`.
    EmptyPath { span: Span },
}

#[derive(Clone, Debug, PartialEq)]
pub enum UrlProblem {
    Template(TemplateError),
    Scheme,
}

fn span_of(range: std::ops::Range<usize>) -> Span {
    Span::new(range.start, range.end)
}

/// The connectors `text` (the file at `path`, in the folder `root`) declares, and its
/// problems. A file that is not TOML declares none, and says so in
/// [`Connectors::unreadable`].
pub fn read(text: &str, file: FileId, root: &Path) -> (Connectors, Vec<ConfigError>) {
    let mut found = Connectors {
        file: Some(file),
        root: Some(root.to_path_buf()),
        ..Connectors::default()
    };
    let mut errors = Vec::new();
    let document = match DeTable::parse(text) {
        Ok(document) => document,
        Err(e) => {
            found.unreadable = true;
            let span = e.span().map(span_of).unwrap_or_else(|| Span::at(0));
            let message = e.message().lines().next().unwrap_or_default().to_string();
            errors.push(ConfigError::Malformed { message, span });
            return (found, errors);
        }
    };
    for (key, value) in in_file_order(document.get_ref()) {
        if key.get_ref() != "connectors" {
            errors.push(ConfigError::UnknownKey {
                key: key.get_ref().to_string(),
                table: None,
                kind_key: None,
                span: span_of(key.span()),
            });
            continue;
        }
        let Some(table) = value.get_ref().as_table() else {
            errors.push(wrong_type("connectors", "a table", value));
            continue;
        };
        for (name, body) in in_file_order(table) {
            let name_span = span_of(name.span());
            if name.get_ref() == DEFAULT {
                errors.push(ConfigError::DefaultRedefined { span: name_span });
                continue;
            }
            match connector(name.get_ref(), name_span, body, root, &mut errors) {
                Some(c) => found.connectors.push(c),
                None => found.broken.push(name.get_ref().to_string()),
            }
        }
    }
    (found, errors)
}

type Entry<'t, 'i> = (&'t Spanned<std::borrow::Cow<'i, str>>, &'t Spanned<DeValue<'i>>);

/// The table's entries as they are written (the map keeps them sorted by key).
fn in_file_order<'t, 'i>(table: &'t DeTable<'i>) -> Vec<Entry<'t, 'i>> {
    let mut entries: Vec<Entry> = table.iter().collect();
    entries.sort_by_key(|(key, _)| key.span().start);
    entries
}

fn wrong_type(key: &str, expected: &'static str, value: &Spanned<DeValue>) -> ConfigError {
    ConfigError::WrongType {
        key: key.to_string(),
        expected,
        found: value.get_ref().type_str(),
        span: span_of(value.span()),
    }
}

/// One `[connectors.NAME]` table, or `None` when a problem leaves it without a meaning.
fn connector(
    name: &str,
    name_span: Span,
    body: &Spanned<DeValue>,
    root: &Path,
    errors: &mut Vec<ConfigError>,
) -> Option<Connector> {
    let Some(table) = body.get_ref().as_table() else {
        errors.push(wrong_type(&format!("connectors.{name}"), "a table", body));
        return None;
    };
    let text = |key: &str, errors: &mut Vec<ConfigError>| -> Option<(String, Span)> {
        let value = table.get(key)?;
        match value.get_ref().as_str() {
            Some(s) => Some((s.to_string(), span_of(value.span()))),
            None => {
                errors.push(wrong_type(key, "a string", value));
                None
            }
        }
    };
    let kind = kind_of(name, text("kind", errors), errors);
    if kind.is_none() && table.get("kind").is_none() {
        errors.push(ConfigError::MissingKey {
            connector: name.to_string(),
            key: "kind",
            kind: None,
            span: name_span,
        });
    }
    let mut clean = true;
    for (key, _) in in_file_order(table) {
        let word = key.get_ref().as_ref();
        let known = ["kind", "url", "path"].contains(&word);
        // Another kind's key (`path` on postgres) is reported only when the kind is known.
        let foreign = known && word != "kind" && kind.is_some_and(|k| k.location_key() != word);
        if !known || foreign {
            clean = false;
            errors.push(ConfigError::UnknownKey {
                key: word.to_string(),
                table: Some(name.to_string()),
                kind_key: kind.filter(|_| foreign),
                span: span_of(key.span()),
            });
        }
    }
    let kind = kind?;
    let key = kind.location_key();
    let Some((value, span)) = text(key, errors) else {
        if table.get(key).is_none() {
            errors.push(ConfigError::MissingKey {
                connector: name.to_string(),
                key,
                kind: Some(kind),
                span: name_span,
            });
        }
        return None;
    };
    let location = location_of(kind, value, span, root, errors)?;
    clean.then(|| Connector {
        name: name.to_string(),
        kind,
        location,
        span: name_span,
    })
}

/// The kind a connector's `kind` names (`text`: its value and place, when it is a string);
/// an unknown one is reported.
fn kind_of(
    name: &str,
    text: Option<(String, Span)>,
    errors: &mut Vec<ConfigError>,
) -> Option<ConnectorKind> {
    let (word, span) = text?;
    let kind = ConnectorKind::parse(&word);
    if kind.is_none() {
        errors.push(ConfigError::UnknownKind {
            connector: name.to_string(),
            kind: word,
            span,
        });
    }
    kind
}

/// Where a connector of `kind` is: its `url` (a template of secrets) or its `path`
/// (relative to `root`), from the key's `value` at `span`; a malformed one is reported.
fn location_of(
    kind: ConnectorKind,
    value: String,
    span: Span,
    root: &Path,
    errors: &mut Vec<ConfigError>,
) -> Option<Location> {
    match kind {
        ConnectorKind::Postgres => {
            let problem = match SecretText::parse(&value) {
                Err(e) => UrlProblem::Template(e),
                Ok(_) if !["postgresql://", "postgres://"].iter().any(|s| value.starts_with(s)) => {
                    UrlProblem::Scheme
                }
                Ok(url) => return Some(Location::Url(url)),
            };
            errors.push(ConfigError::BadUrl { problem, span });
            None
        }
        ConnectorKind::Sqlite | ConnectorKind::Duckdb => {
            if value.is_empty() {
                errors.push(ConfigError::EmptyPath { span });
                return None;
            }
            Some(Location::Path(root.join(value)))
        }
    }
}

impl ConfigError {
    pub fn code(&self) -> Code {
        match self {
            ConfigError::Malformed { .. } => Code::E0703,
            ConfigError::UnknownKind { .. } => Code::E0704,
            ConfigError::MissingKey { .. } => Code::E0705,
            ConfigError::UnknownKey { .. } => Code::E0706,
            ConfigError::WrongType { .. }
            | ConfigError::BadUrl { .. }
            | ConfigError::EmptyPath { .. } => Code::E0707,
            ConfigError::DefaultRedefined { .. } => Code::E0708,
        }
    }

    /// As `wvflow check` shows it, in `file` (the `wvflow.toml` among the sources). No
    /// message shows more of a value than the file holds: templates stay templates.
    pub fn diagnostic(&self, file: FileId) -> Diagnostic {
        let at = |span: Span, message: String| Diagnostic::error(self.code(), file, span, message);
        match self {
            ConfigError::Malformed { message, span } => {
                at(*span, format!("{FILE_NAME} is not valid TOML: {message}"))
                    .with_label("here")
            }
            ConfigError::UnknownKey {
                key,
                table: None,
                span,
                ..
            } => at(*span, format!("unknown key `{key}` in {FILE_NAME}"))
                .with_label("not read by wvflow")
                .with_help("declare connectors as `[connectors.NAME]` tables"),
            ConfigError::UnknownKey {
                key,
                table: Some(name),
                kind_key: Some(kind),
                span,
            } => at(
                *span,
                format!("connector `{name}` is {kind}, which takes no `{key}`"),
            )
            .with_label("not a key of this kind")
            .with_help(format!("a {kind} connector says where it is with `{}`", kind.location_key())),
            ConfigError::UnknownKey {
                key,
                table: Some(name),
                kind_key: None,
                span,
            } => {
                let d = at(*span, format!("unknown key `{key}` in connector `{name}`"))
                    .with_label("unknown key");
                let help = match crate::diagnostics::suggest::closest(key, ["kind", "url", "path"]) {
                    Some(best) => format!("did you mean `{best}`?"),
                    None => "a connector takes `kind`, and `url` or `path`".to_string(),
                };
                d.with_help(help)
            }
            ConfigError::WrongType {
                key,
                expected,
                found,
                span,
            } => at(*span, format!("`{key}` must be {expected}, not {found}"))
                .with_label(format!("expected {expected}")),
            ConfigError::DefaultRedefined { span } => {
                at(*span, "the connector `default` cannot be redefined".to_string())
                    .with_label("`default` is the workspace's embedded SQLite database")
                    .with_help("give this connector another name")
            }
            ConfigError::MissingKey {
                connector,
                key,
                kind,
                span,
            } => {
                let message = match kind {
                    Some(kind) => format!("{kind} connector `{connector}` has no `{key}`"),
                    None => format!("connector `{connector}` has no `{key}`"),
                };
                let help = match *key {
                    "url" => "add `url = \"postgresql://USER:${PASSWORD}@HOST:5432/DATABASE\"`",
                    "path" => "add `path = \"FILE\"` (relative to the folder of wvflow.toml)",
                    _ => "add `kind = \"postgres\"`, `\"duckdb\"` or `\"sqlite\"`",
                };
                at(*span, message)
                    .with_label(format!("`{key}` missing"))
                    .with_help(help)
            }
            ConfigError::UnknownKind { kind, span, .. } => {
                let kinds = ConnectorKind::ALL.map(ConnectorKind::as_str);
                let d = at(*span, format!("unknown connector kind `{kind}`"))
                    .with_label("not a kind wvflow knows");
                match crate::diagnostics::suggest::closest(kind, kinds) {
                    Some(best) => d.with_help(format!("did you mean `{best}`?")),
                    None => d.with_help("the kinds are `sqlite`, `postgres` and `duckdb`"),
                }
            }
            ConfigError::BadUrl { problem, span } => {
                let (message, help) = problem.words();
                at(*span, message)
                    .with_label("invalid url")
                    .with_help(help)
            }
            ConfigError::EmptyPath { span } => at(*span, "`path` is empty".to_string())
                .with_label("no file named")
                .with_help("name the database file, relative to the folder of wvflow.toml"),
        }
    }
}

impl UrlProblem {
    /// What is wrong, and how to write it.
    fn words(&self) -> (String, &'static str) {
        match self {
            UrlProblem::Scheme => (
                "a postgres connector's `url` must start with `postgresql://`".to_string(),
                "write `postgresql://USER:${PASSWORD}@HOST:PORT/DATABASE`",
            ),
            UrlProblem::Template(TemplateError::Unterminated { .. }) => (
                "`${` without its closing `}` in `url`".to_string(),
                "write an environment variable as `${NAME}`",
            ),
            UrlProblem::Template(TemplateError::BadName { name, .. }) => (
                format!("`${{{name}}}` in `url` is not an environment variable name"),
                "a name is letters, digits and `_`, not starting with a digit",
            ),
            UrlProblem::Template(TemplateError::LoneDollar { .. }) => (
                "a `$` in `url` that is not `${NAME}`".to_string(),
                "write `$$` for a dollar sign, `${NAME}` for an environment variable",
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "[connectors.pg]\nkind = \"postgres\"\nurl = \"postgresql://app:${PW}@db/a\"\n\n[connectors.duck]\nkind = \"duckdb\"\npath = \"data/a.duckdb\"\n";

    #[test]
    fn reads_connectors_in_file_order_with_typed_locations() {
        let (found, errors) = read(FILE, FileId(3), Path::new("/ws"));
        assert_eq!(errors, []);
        let names: Vec<&str> = found.names().collect();
        assert_eq!(names, ["default", "pg", "duck"]);
        let pg = &found.connectors[0];
        assert_eq!(pg.kind, ConnectorKind::Postgres);
        assert_eq!(&FILE[pg.span.range()], "pg");
        match &pg.location {
            Location::Url(url) => assert_eq!(url.template(), "postgresql://app:${PW}@db/a"),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            found.connectors[1].location,
            Location::Path("/ws/data/a.duckdb".into())
        );
    }

    #[test]
    fn another_kinds_key_is_refused_and_the_connector_kept_as_declared() {
        let text = "[connectors.pg]\nkind = \"postgres\"\nurl = \"postgresql://db/a\"\npath = \"x\"\n";
        let (found, errors) = read(text, FileId(0), Path::new("/ws"));
        assert!(found.connectors.is_empty());
        assert_eq!(found.lookup("pg"), super::super::Lookup::Broken);
        let [ConfigError::UnknownKey { key, kind_key, .. }] = errors.as_slice() else {
            panic!("{errors:?}");
        };
        assert_eq!((key.as_str(), *kind_key), ("path", Some(ConnectorKind::Postgres)));
    }

    #[test]
    fn every_prefix_of_a_file_reads_without_panicking_and_spans_stay_inside() {
        for end in (0..=FILE.len()).filter(|&i| FILE.is_char_boundary(i)) {
            let text = &FILE[..end];
            let (_, errors) = read(text, FileId(0), Path::new("/ws"));
            for e in errors {
                let d = e.diagnostic(FileId(0));
                assert!(d.primary.span.end as usize <= text.len(), "{text:?}: {d:?}");
            }
        }
    }
}
