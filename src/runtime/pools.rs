//! Pools (`pool NAME with { slots: N }`): slots held in the run store's table
//! `wvflow_pool_slots`, so that every run of every flow, in every process on the machine,
//! respects them. A slot is taken under the database's write lock, and given back when its
//! holder ends (or found abandoned: a holder whose process is gone no longer counts).

use super::clock::Clock;
use super::error::StageError;
use crate::plan::ir::PoolPlan;
use rusqlite::{Connection, params};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// How often a waiting holder looks for a free slot.
const POLL: Duration = Duration::from_millis(50);

/// Who holds a slot: what `runs show` and a stuck pool's investigator read.
pub struct Holder<'a> {
    pub run_id: &'a str,
    pub stage: &'a str,
    /// The `each` item, if the slot is an item's.
    pub item: Option<usize>,
}

/// A slot held; given back when dropped.
pub struct Slot {
    conn: Connection,
    id: i64,
}

impl Drop for Slot {
    fn drop(&mut self) {
        // A slot that cannot be deleted now is found abandoned once this process is gone.
        let _ = self
            .conn
            .execute("DELETE FROM wvflow_pool_slots WHERE id = ?1", [self.id]);
    }
}

/// Takes a slot of `pool`, waiting (on `clock`) while all are held, at most `limit`;
/// `waiting` is told when the wait starts (`true`) and ends (`false`, with a slot or not). A
/// cancel while waiting gives up.
pub fn acquire(
    workspace_db: &Path,
    pool: &PoolPlan,
    holder: &Holder,
    (cancel, limit): (&AtomicBool, Option<Duration>),
    clock: &dyn Clock,
    mut waiting: impl FnMut(bool),
) -> Result<Slot, StageError> {
    let conn = super::runs::schema::open(workspace_db)?;
    let started = clock.now();
    let mut waited = false;
    let taken = loop {
        if cancel.load(Ordering::Relaxed) {
            break Err(StageError::Cancelled);
        }
        if let Some(limit) = limit
            && clock.now().saturating_sub(started) >= limit
        {
            break Err(StageError::NoSlot {
                pool: pool.name.clone(),
                within: limit,
            });
        }
        match try_take(&conn, pool, holder) {
            Ok(Some(id)) => break Ok(id),
            Ok(None) => {}
            Err(e) => {
                let error = format!("cannot take a slot of pool `{}`: {e}", pool.name);
                break Err(StageError::Data(error));
            }
        }
        if !waited {
            waited = true;
            waiting(true);
        }
        clock.sleep(POLL);
    };
    if waited {
        waiting(false);
    }
    taken.map(|id| Slot { conn, id })
}

/// One look for a free slot, under the write lock: abandoned slots are freed first.
fn try_take(conn: &Connection, pool: &PoolPlan, holder: &Holder) -> rusqlite::Result<Option<i64>> {
    conn.execute_batch("BEGIN IMMEDIATE")?;
    let taken = (|| {
        let holders: Vec<(i64, i64, i64)> = conn
            .prepare("SELECT id, pid, pid_start FROM wvflow_pool_slots WHERE pool = ?1")?
            .query_map([&pool.name], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<Result<_, _>>()?;
        let mut held = 0u64;
        for (id, pid, start) in holders {
            // The process that took it, not another that was given its id since.
            if start != 0 && super::runs::owner::process_start(pid) == start {
                held += 1;
            } else {
                conn.execute("DELETE FROM wvflow_pool_slots WHERE id = ?1", [id])?;
            }
        }
        if held >= pool.slots {
            return Ok(None);
        }
        conn.execute(
            "INSERT INTO wvflow_pool_slots (pool, run_id, stage, item, pid, pid_start, acquired_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                pool.name,
                holder.run_id,
                holder.stage,
                holder.item.map(|i| i as i64),
                std::process::id() as i64,
                super::runs::owner::process_start(std::process::id() as i64),
                super::runs::schema::now_ms(),
            ],
        )?;
        Ok(Some(conn.last_insert_rowid()))
    })();
    match taken {
        Ok(found) => {
            conn.execute_batch("COMMIT")?;
            Ok(found)
        }
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(e)
        }
    }
}
