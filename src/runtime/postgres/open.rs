//! A PostgreSQL connector opened for one stage: `wvflow.toml` read where the workspace's is
//! found, the URL's `${NAME}`s read from the environment now (never earlier, never kept
//! beyond the client and the scrubbing of messages), one session.

use super::Error;
use crate::connectors::{self, ConnectorKind, Location, Lookup};
use std::path::Path;
use std::time::Duration;

/// How long connecting may take before the stage fails: a server that does not answer.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// One session on a connector's server.
pub struct Server {
    pub client: postgres::Client,
    pub connector: String,
    scrub: Scrub,
}

/// Opens the connector `name` of the workspace's `wvflow.toml`, looked for from `cwd` (the
/// `.wv` file's folder) as the checker found it.
pub fn open(cwd: &Path, name: &str) -> Result<Server, Error> {
    let not_declared = |why: String| Error::NotDeclared {
        connector: name.to_string(),
        why,
    };
    let file = connectors::find(cwd)
        .ok_or_else(|| not_declared(format!("no {} is found", connectors::FILE_NAME)))?;
    let text = std::fs::read_to_string(&file)
        .map_err(|e| not_declared(format!("cannot read {}: {e}", file.display())))?;
    let root = file.parent().unwrap_or(Path::new("."));
    let (found, _) = connectors::read(&text, crate::source::FileId(0), root);
    let connector = match found.lookup(name) {
        Lookup::Found(c) if c.kind == ConnectorKind::Postgres => c,
        _ => {
            return Err(not_declared(format!(
                "{} no longer declares it as a postgres connector",
                file.display()
            )));
        }
    };
    let Location::Url(url) = &connector.location else {
        return Err(not_declared("it has no url".to_string()));
    };
    let revealed = url.expand_env().map_err(|e| match e {
        connectors::ExpandError::Unset { name: variable } => Error::Unset {
            connector: name.to_string(),
            variable,
        },
    })?;
    let mut secrets: Vec<(String, String)> = url
        .variables()
        .into_iter()
        .filter_map(|v| {
            let value = std::env::var(v).ok().filter(|value| !value.is_empty())?;
            Some((value, format!("${{{v}}}")))
        })
        .collect();
    // The longest first: a value inside another is replaced after it.
    secrets.sort_by_key(|(value, _)| std::cmp::Reverse(value.len()));
    let scrub = Scrub { secrets };
    let url = revealed.expose();
    let mut config: postgres::Config = url.parse().map_err(|e: postgres::Error| Error::Url {
        connector: name.to_string(),
        message: scrub.text(&e.to_string(), Some(url)),
    })?;
    config.connect_timeout(CONNECT_TIMEOUT);
    if config.get_application_name().is_none() {
        config.application_name("wvflow");
    }
    let client = config.connect(postgres::NoTls).map_err(|e| Error::Connect {
        connector: name.to_string(),
        message: scrub.text(&describe(&e), Some(url)),
    })?;
    let mut server = Server {
        client,
        connector: name.to_string(),
        scrub,
    };
    // Literals are written as SQL's standard ones (`'it''s'`), whatever the server's default.
    server.execute("SET standard_conforming_strings = on")?;
    // Timestamps without a zone (a date, `2026-12-01 09:00:00`) are UTC, as on SQLite.
    server.execute("SET TIME ZONE 'UTC'")?;
    Ok(server)
}

/// Replaces secrets in what a server or the driver says.
#[derive(Clone)]
struct Scrub {
    /// Each secret value the URL was expanded with, and the `${NAME}` it came from.
    secrets: Vec<(String, String)>,
}

impl Scrub {
    /// `text` without the expanded URL or any secret value in it.
    fn text(&self, text: &str, url: Option<&str>) -> String {
        let mut text = match url {
            Some(url) if !url.is_empty() => text.replace(url, "the connector's url"),
            _ => text.to_string(),
        };
        for (value, name) in &self.secrets {
            text = text.replace(value.as_str(), name);
        }
        text
    }
}

/// What the server said (its severity, message, detail and hint, and SQLSTATE), or the
/// driver's error with its causes.
fn describe(e: &postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        let mut text = format!("{}: {} (SQLSTATE {})", db.severity(), db.message(), db.code().code());
        if let Some(detail) = db.detail() {
            text.push_str(&format!("; {detail}"));
        }
        if let Some(hint) = db.hint() {
            text.push_str(&format!("; hint: {hint}"));
        }
        return text;
    }
    let mut text = e.to_string();
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        let said = c.to_string();
        if !text.contains(&said) {
            text.push_str(&format!(": {said}"));
        }
        cause = c.source();
    }
    text
}

impl Server {
    /// Statements with no rows, in order.
    pub fn execute(&mut self, sql: &str) -> Result<(), Error> {
        self.client.batch_execute(sql).map_err(|e| self.failed(&e))
    }

    /// A statement's failure as the stage's error: what the server said, scrubbed.
    pub fn failed(&self, e: &postgres::Error) -> Error {
        (self.fail())(e)
    }

    /// [`Server::failed`] apart from the session, for while its client is borrowed.
    pub fn fail(&self) -> impl Fn(&postgres::Error) -> Error + use<> {
        let (scrub, connector) = (self.scrub.clone(), self.connector.clone());
        move |e| Error::Server {
            connector: connector.clone(),
            message: scrub.text(&describe(e), None),
        }
    }
}
