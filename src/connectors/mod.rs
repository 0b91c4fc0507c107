//! Connectors: the databases a stage can run on (`stage s on pg = ...`), declared in
//! `wvflow.toml` at the workspace's root (`docs/connectors.md`). The file is read once into
//! typed settings ([`Connectors`]); its problems are diagnostics with spans into it. Secrets
//! stay templates ([`SecretText`]) until a connector is opened.

mod keys;
mod read;
mod secret;

pub use keys::{KEYS, Key, explain};
pub use read::{ConfigError, read};
pub use secret::{ExpandError, Revealed, SecretText, TemplateError};

use crate::source::FileId;
use crate::span::Span;
use std::path::{Path, PathBuf};

/// The file's name, looked for at the workspace's root.
pub const FILE_NAME: &str = "wvflow.toml";

/// The embedded SQLite database of the workspace: always there, never redefined.
pub const DEFAULT: &str = "default";

/// A connector's database engine, as `kind = "..."` names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnectorKind {
    Sqlite,
    Postgres,
    Duckdb,
}

impl ConnectorKind {
    pub const ALL: [ConnectorKind; 3] = [
        ConnectorKind::Sqlite,
        ConnectorKind::Postgres,
        ConnectorKind::Duckdb,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ConnectorKind::Sqlite => "sqlite",
            ConnectorKind::Postgres => "postgres",
            ConnectorKind::Duckdb => "duckdb",
        }
    }

    pub fn parse(word: &str) -> Option<ConnectorKind> {
        ConnectorKind::ALL.into_iter().find(|k| k.as_str() == word)
    }

    /// The key that says where its database is: a URL for a server, a file otherwise.
    pub fn location_key(self) -> &'static str {
        match self {
            ConnectorKind::Postgres => "url",
            ConnectorKind::Sqlite | ConnectorKind::Duckdb => "path",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duckdb_runs_only_in_a_build_with_it_and_sqlite_files_in_none() {
        assert!(runs_kind(ConnectorKind::Postgres, false));
        assert!(runs_kind(ConnectorKind::Duckdb, true));
        assert!(!runs_kind(ConnectorKind::Duckdb, false));
        assert!(!runs_kind(ConnectorKind::Sqlite, true));
        let (why, help) = not_run_why(ConnectorKind::Duckdb);
        assert!(why.contains("built without DuckDB"), "{why}");
        assert!(help.contains("--features duckdb"), "{help}");
    }
}

impl std::fmt::Display for ConnectorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a connector's database is.
#[derive(Clone, Debug, PartialEq)]
pub enum Location {
    /// A server's URL, which may read the environment (`${PGPASSWORD}`).
    Url(SecretText),
    /// A database file: absolute, or made so against the workspace's root.
    Path(PathBuf),
}

/// One connector of `wvflow.toml`.
#[derive(Clone, Debug, PartialEq)]
pub struct Connector {
    pub name: String,
    pub kind: ConnectorKind,
    pub location: Location,
    /// Its table's name (`pg` of `[connectors.pg]`) in `wvflow.toml`.
    pub span: Span,
}

/// The connectors of a workspace, as its `wvflow.toml` declares them.
#[derive(Clone, Debug, Default)]
pub struct Connectors {
    /// `wvflow.toml` among the workspace's sources, when there is one.
    pub file: Option<FileId>,
    /// The folder the file is in: relative paths are read against it.
    pub root: Option<PathBuf>,
    pub connectors: Vec<Connector>,
    /// Names declared with a problem (reported in `wvflow.toml`): a stage on one is not
    /// reported again.
    pub broken: Vec<String>,
    /// The file is not TOML: no name can be said to be unknown.
    pub unreadable: bool,
}

/// What `on NAME` names.
#[derive(Debug, PartialEq)]
pub enum Lookup<'c> {
    /// The embedded SQLite database.
    Default,
    Found(&'c Connector),
    /// Declared, but with a problem already reported.
    Broken,
    Unknown,
}

impl Connectors {
    pub fn lookup(&self, name: &str) -> Lookup<'_> {
        if name == DEFAULT {
            return Lookup::Default;
        }
        if let Some(c) = self.connectors.iter().find(|c| c.name == name) {
            return Lookup::Found(c);
        }
        if self.unreadable || self.broken.iter().any(|b| b == name) {
            return Lookup::Broken;
        }
        Lookup::Unknown
    }

    /// Every name `on` may take: `default` first, then the file's in its order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        std::iter::once(DEFAULT)
            .chain(self.connectors.iter().map(|c| c.name.as_str()))
            .chain(self.broken.iter().map(String::as_str))
    }
}

/// Whether this build runs a stage's queries on the connector: a PostgreSQL server does
/// (`runtime::postgres`), a DuckDB file when wvflow is built with the `duckdb` feature
/// (`runtime::duckdb`); another SQLite file is not built yet.
pub fn runs_here(connector: &Connector) -> bool {
    runs_kind(connector.kind, DUCKDB_BUILT)
}

/// Whether this build links DuckDB (the `duckdb` cargo feature).
pub const DUCKDB_BUILT: bool = cfg!(feature = "duckdb");

/// Whether a build with or without DuckDB runs stages on a connector of `kind`.
pub fn runs_kind(kind: ConnectorKind, duckdb_built: bool) -> bool {
    match kind {
        ConnectorKind::Postgres => true,
        ConnectorKind::Duckdb => duckdb_built,
        ConnectorKind::Sqlite => false,
    }
}

/// Why this build does not run stages on a connector of `kind` (E0702's message ends with
/// it), and what to do instead.
pub fn not_run_why(kind: ConnectorKind) -> (&'static str, &'static str) {
    match kind {
        ConnectorKind::Duckdb => (
            "which this build of wvflow cannot run: it was built without DuckDB (the `duckdb` feature)",
            "build wvflow with DuckDB (`cargo install --path . --features duckdb`, after \
             scripts/duckdb.sh installs its library: docs/connectors.md), or remove the stage's \
             `on` to run it on `default`",
        ),
        _ => (
            "which this build of wvflow cannot run yet",
            "`default` (the embedded SQLite database), postgres and duckdb connectors run \
             queries today: remove `on NAME` or write `on default`",
        ),
    }
}

/// The `wvflow.toml` of the workspace whose first path is `start`: in the folder `start`
/// names (the file's folder, for a file) or the nearest folder above it that holds one.
pub fn find(start: &Path) -> Option<PathBuf> {
    // Made absolute so that the search goes on above the current folder.
    let start = std::path::absolute(start).ok()?;
    let folder = if start.is_dir() {
        start.as_path()
    } else {
        start.parent()?
    };
    folder
        .ancestors()
        .map(|f| f.join(FILE_NAME))
        .find(|candidate| candidate.is_file())
}
