//! A stage on a connector's server (`on pg`): its steps run there (`runtime::postgres`), tried
//! again by the stage's retry policy when an attempt fails, and its rows come back as a
//! query's table of the stage's connection, stored as any other.

use super::{StageRun, StepError};
use crate::runtime::error::StageError;
use crate::runtime::output::Data;
use crate::runtime::postgres::{self, Error};
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
        let started = self.ctx.clock.now();
        let schedule_timeout = self.stage.schedule_timeout_ms.map(Duration::from_millis);
        let mut attempt = 1;
        loop {
            self.attempts = attempt;
            let error = match postgres::run(&job, self.store) {
                Ok(rows) => return Ok(Data::Table(rows)),
                Err(e) if retried(&e) => e,
                Err(e) => return Err((e.into(), attempt)),
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
                    let error = Box::new(error.into());
                    return Err((StageError::GaveUp { error, why }, attempt));
                }
                AfterFailure::GiveUp(None) => return Err((error.into(), attempt)),
            }
        }
    }
}

/// Whether another attempt may go otherwise: the server, the connection or the time it took,
/// not the workspace's settings or a cancel.
fn retried(e: &Error) -> bool {
    matches!(
        e,
        Error::Connect { .. } | Error::Server { .. } | Error::TimedOut { .. } | Error::Store(_)
    )
}
