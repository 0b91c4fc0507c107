//! The keys of a `[connectors.NAME]` table, for `wvflow explain` and the docs.

/// A key of a connector's table.
pub struct Key {
    pub name: &'static str,
    /// The kinds that take it.
    pub kinds: &'static str,
    pub takes: &'static str,
    pub meaning: &'static str,
}

pub const KEYS: &[Key] = &[
    Key {
        name: "kind",
        kinds: "every connector, required",
        takes: "\"sqlite\", \"postgres\" or \"duckdb\"",
        meaning: "the database engine the connector's stages run on",
    },
    Key {
        name: "url",
        kinds: "postgres connectors, required",
        takes: "a string starting postgresql:// (or postgres://)",
        meaning: "the server to connect to; ${NAME} is read from the environment when the \
                  connector is opened and never written anywhere ($$ is a dollar sign)",
    },
    Key {
        name: "path",
        kinds: "sqlite and duckdb connectors, required",
        takes: "a file path",
        meaning: "the database file, relative to the folder of wvflow.toml (or absolute)",
    },
];

const FILE: &str = "wvflow.toml: the connectors a stage can run on (`stage s on NAME = ...`)

It is looked for in the folder wvflow is given (the folder of a file given), then in each
folder above it; the first one found is the workspace's. Each connector is a table:

  [connectors.pg]
  kind = \"postgres\"
  url = \"postgresql://app:${PGPASSWORD}@db.internal:5432/analytics\"

  [connectors.duck]
  kind = \"duckdb\"
  path = \"analytics.duckdb\"

`default` is the embedded SQLite database, always there; it cannot be redefined. wvflow runs
stages on `default`, on postgres connectors, and on duckdb connectors when it is built with
DuckDB (the `duckdb` feature); a stage on a sqlite connector, or on a duckdb one in a build
without DuckDB, is refused at check (E0702).";

/// `wvflow explain wvflow.toml`, `connectors`, or one key (`connectors.url`, or `url`).
pub fn explain(word: &str) -> Option<String> {
    let word = word.trim();
    if word == super::FILE_NAME || word == "connectors" {
        let keys: Vec<String> = KEYS.iter().map(describe).collect();
        return Some(format!("{FILE}\n\nKeys:\n\n{}", keys.join("\n\n")));
    }
    let name = word.strip_prefix("connectors.").unwrap_or(word);
    KEYS.iter().find(|k| k.name == name).map(describe)
}

fn describe(key: &Key) -> String {
    format!(
        "`{}` (wvflow.toml key of {}): {}\n\n{}",
        key.name, key.kinds, key.takes, key.meaning
    )
}
