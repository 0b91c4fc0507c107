//! A stage on a connector (`on pg`, `on duck`): its steps run there (`runtime::postgres`,
//! `runtime::duckdb`, by the connector's kind in `wvflow.toml`), tried again by the stage's
//! retry policy when an attempt fails, and its rows come back as a query's table of the
//! stage's connection, stored as any other.

use super::{StageRun, StepError};
use crate::runtime::error::StageError;
use crate::runtime::output::Data;
use crate::connectors::ConnectorKind;
use crate::runtime::duckdb;
use crate::runtime::postgres;
use crate::runtime::store::{Store, Table};
use crate::runtime::rules::{AfterFailure, Waiter, after_failure};
use std::time::Duration;

impl<'a> StageRun<'a, '_> {
    /// The connector the stage runs on, when it is not `default`.
    pub(super) fn on_server(&self) -> Option<&'a str> {
        self.stage
            .connector
            .as_deref()
            .filter(|c| *c != crate::connectors::DEFAULT)
    }

    pub(super) fn run_on_server(&mut self, connector: &str) -> Result<Data, StepError> {
        let mut params = self.ctx.params.clone();
        for (name, value) in &self.store.stage_params {
            params.entry(name.clone()).or_insert_with(|| value.clone());
        }
        let job = postgres::Job {
            connector,
            cwd: &self.ctx.cwd,
            stage: self.stage,
            params,
            cancel: vec![self.ctx.cancel.clone(), self.cancel.clone()],
        };
        let engine = Engine::of(&self.ctx.cwd, connector);
        let started = self.ctx.clock.now();
        let schedule_timeout = self.stage.schedule_timeout_ms.map(Duration::from_millis);
        let mut attempt = 1;
        loop {
            self.attempts = attempt;
            let error = match engine.run(&job, self.store) {
                Ok(rows) => return Ok(Data::Table(rows)),
                Err(e) if e.retried() => e.into_stage_error(),
                Err(e) => return Err((e.into_stage_error(), attempt)),
            };
            let elapsed = self.ctx.clock.now().saturating_sub(started);
            let waiter = Waiter::Wvflow(self.ctx.random);
            match after_failure(&self.stage.retry, schedule_timeout, (attempt, None), elapsed, waiter) {
                AfterFailure::Again(delay) => {
                    if !self.ctx.clock.sleep_unless(delay, &self.cancel) {
                        return Err((StageError::Cancelled, attempt));
                    }
                    attempt += 1;
                }
                AfterFailure::GiveUp(Some(why)) => {
                    let error = Box::new(error);
                    return Err((StageError::GaveUp { error, why }, attempt));
                }
                AfterFailure::GiveUp(None) => return Err((error, attempt)),
            }
        }
    }
}

/// The engine a connector's stages run on, by its kind in `wvflow.toml` (PostgreSQL when the
/// file cannot say: its runner reports what is wrong with the file).
#[derive(Clone, Copy)]
enum Engine {
    Postgres,
    Duckdb,
}

impl Engine {
    fn of(cwd: &std::path::Path, connector: &str) -> Engine {
        let kind = crate::connectors::find(cwd).and_then(|file| {
            let text = std::fs::read_to_string(&file).ok()?;
            let root = file.parent()?.to_path_buf();
            let (found, _) = crate::connectors::read(&text, crate::source::FileId(0), &root);
            match found.lookup(connector) {
                crate::connectors::Lookup::Found(c) => Some(c.kind),
                _ => None,
            }
        });
        match kind {
            Some(ConnectorKind::Duckdb) => Engine::Duckdb,
            _ => Engine::Postgres,
        }
    }

    fn run(self, job: &postgres::Job, store: &mut Store) -> Result<Table, Failure> {
        match self {
            Engine::Postgres => postgres::run(job, store).map_err(Failure::Postgres),
            Engine::Duckdb => duckdb::run(job, store).map_err(Failure::Duckdb),
        }
    }
}

/// An attempt's failure on either engine.
enum Failure {
    Postgres(postgres::Error),
    Duckdb(duckdb::Error),
}

impl Failure {
    /// Whether another attempt may go otherwise: the server, the connection or the time it
    /// took, not the workspace's settings or a cancel.
    fn retried(&self) -> bool {
        match self {
            Failure::Postgres(e) => matches!(
                e,
                postgres::Error::Connect { .. }
                    | postgres::Error::Server { .. }
                    | postgres::Error::TimedOut { .. }
                    | postgres::Error::Store(_)
            ),
            Failure::Duckdb(e) => matches!(
                e,
                duckdb::Error::Open { .. }
                    | duckdb::Error::Database { .. }
                    | duckdb::Error::TimedOut { .. }
                    | duckdb::Error::Store(_)
            ),
        }
    }

    fn into_stage_error(self) -> StageError {
        match self {
            Failure::Postgres(e) => e.into(),
            Failure::Duckdb(e) => e.into(),
        }
    }
}
