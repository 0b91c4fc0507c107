//! A stage on a connector's server (`on pg`): its steps run there (`runtime::postgres`), and
//! its rows come back as a query's table of the stage's connection, stored as any other.

use super::{StageRun, StepError};
use crate::runtime::output::Data;

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
        let job = crate::runtime::postgres::Job {
            connector,
            cwd: &self.ctx.cwd,
            stage: self.stage,
            params,
            cancel: vec![self.ctx.cancel.clone(), self.cancel.clone()],
        };
        self.attempts = self.attempts.max(1);
        crate::runtime::postgres::run(&job, self.store)
            .map(Data::Table)
            .map_err(|e| (e.into(), 1))
    }
}
