//! What an exported run's task knows of its run that `wvflow run` keeps in the run store: the
//! signals sent to it and its stages' states. They go into temporary tables that shadow the
//! run store's (the plan's SQL names those tables without a schema), so that a signal,
//! `state(stage)`, `completed_stages()` and `total_stages()` read the same in both.

use super::{Error, Store};
use crate::runtime::state::StageState;
use rusqlite::params;
use rusqlite::types::Value;

/// A run as its task sees it.
pub struct RunView<'a> {
    pub run_id: &'a str,
    /// The signals sent to the run, in the order they were sent: name, value, when (ms).
    pub signals: &'a [(String, Value, i64)],
    /// Every stage of the run with its state so far (`pending` until it ends).
    pub stages: &'a [(String, StageState)],
}

impl Store {
    /// Shows the run as `view` says, replacing what was shown before.
    pub fn show_run(&mut self, view: &RunView) -> Result<(), Error> {
        let tx = self.conn.transaction()?;
        tx.execute_batch(
            "CREATE TEMP TABLE IF NOT EXISTS wvflow_signals (
               seq INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT NOT NULL, name TEXT NOT NULL,
               value, at INTEGER NOT NULL);
             CREATE TEMP TABLE IF NOT EXISTS wvflow_stages (
               run_id TEXT NOT NULL, stage TEXT NOT NULL, state TEXT NOT NULL);
             DELETE FROM temp.wvflow_signals;
             DELETE FROM temp.wvflow_stages;",
        )?;
        for (name, value, at) in view.signals {
            tx.execute(
                "INSERT INTO temp.wvflow_signals (run_id, name, value, at) VALUES (?1, ?2, ?3, ?4)",
                params![view.run_id, name, value, at],
            )?;
        }
        for (stage, state) in view.stages {
            tx.execute(
                "INSERT INTO temp.wvflow_stages (run_id, stage, state) VALUES (?1, ?2, ?3)",
                params![view.run_id, stage, state.as_str()],
            )?;
        }
        tx.commit()?;
        Ok(())
    }
}
