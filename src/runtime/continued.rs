//! `continue_as_new`: a run whose loop reached its bound ends `continued`, and a new run of the
//! same flow, with the same arguments and run time, goes on where it stopped. The new run
//! carries the stages that ended in the old one (as they ended, with their rows) and the
//! loop's state (the rows of its last iteration and that iteration's number); the rest runs
//! there. Each run's database holds one stretch of the loop, so the store and the memory of
//! a loop that runs for months stay bounded by `continue_as_new`.

use super::engine::StageSummary;
use super::runs::catalog;
use super::state::StageState;
use super::store::{Store, StoreConfig, table_names};
use crate::plan::Plan;
use crate::plan::ir::Step;
use std::path::Path;

/// The stages of run `run_id` that a run continuing it takes as they ended there, in the
/// order they ended: every stage that ended, except the loops that stopped to continue.
pub fn carried_stages(
    conn: &rusqlite::Connection,
    run_id: &str,
) -> Result<Vec<StageSummary>, catalog::Error> {
    let mut ended: Vec<_> = catalog::stages(conn, run_id)?
        .into_iter()
        .filter(|s| {
            matches!(
                s.summary.state,
                StageState::Success
                    | StageState::Failed
                    | StageState::Skipped
                    | StageState::Cancelled
            )
        })
        .map(|s| (s.finished_at, s.summary))
        .collect();
    ended.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(ended.into_iter().map(|(_, s)| s).collect())
}

/// The tables of the old run's database (`old_db`) that the new run reads: the rows of the
/// stages that succeeded (and their failed `each` items), and the state of every loop of the
/// plan that continues. Copied into the new run's database.
pub fn carry_rows(
    old_db: &Path,
    new: &StoreConfig,
    plan: &Plan,
    carried: &[StageSummary],
) -> Result<(), super::store::Error> {
    let mut wanted: Vec<String> = carried
        .iter()
        .filter(|s| s.state == StageState::Success)
        .flat_map(|s| [s.stage.clone(), crate::plan::sql::failed_table(&s.stage)])
        .collect();
    for stage in &plan.flow.stages {
        if stage.steps.iter().any(|s| matches!(s, Step::While { .. })) {
            wanted.extend([carried_rows(&stage.id), carried_number(&stage.id)]);
        }
    }
    let present = rusqlite::Connection::open_with_flags(
        old_db,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .and_then(|conn| table_names(&conn))
    .map_err(|e| super::store::Error::Path {
        access: super::store::Access::Open,
        path: old_db.to_path_buf(),
        message: e.to_string(),
    })?;
    let mut store: Store = new.connect()?;
    for name in wanted.iter().filter(|n| present.contains(*n)) {
        let rows = Store::stage_rows_of_run(old_db, name, None)?;
        store.write_table("run", name, &rows)?;
    }
    Ok(())
}

/// The run's table of the rows a run that continues this one starts its loop from: those of
/// the last iteration before the `continue_as_new` boundary.
pub fn carried_rows(stage: &str) -> String {
    format!("loop:{stage}:carried")
}

/// The run's table of the number of that iteration (one row, column `iteration`).
pub fn carried_number(stage: &str) -> String {
    format!("loop:{stage}:carried:iteration")
}
