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

/// Takes a slot of `pool`, waiting (on `clock`) while all are held; `waiting` is told when
/// the wait starts (`true`) and ends (`false`). A cancel while waiting gives up.
pub fn acquire(
    workspace_db: &Path,
    pool: &PoolPlan,
    holder: &Holder,
    cancel: &AtomicBool,
    clock: &dyn Clock,
    mut waiting: impl FnMut(bool),
) -> Result<Slot, StageError> {
    let conn = super::runs::schema::open(workspace_db)?;
    let mut waited = false;
    loop {
        if cancel.load(Ordering::Relaxed) {
            return Err(StageError::Cancelled);
        }
        if let Some(id) = try_take(&conn, pool, holder)
            .map_err(|e| format!("cannot take a slot of pool `{}`: {e}", pool.name))?
        {
            if waited {
                waiting(false);
            }
            return Ok(Slot { conn, id });
        }
        if !waited {
            waited = true;
            waiting(true);
        }
        clock.sleep(POLL);
    }
}

/// One look for a free slot, under the write lock: abandoned slots are freed first.
fn try_take(conn: &Connection, pool: &PoolPlan, holder: &Holder) -> rusqlite::Result<Option<i64>> {
    conn.execute_batch("BEGIN IMMEDIATE")?;
    let taken = (|| {
        let holders: Vec<(i64, i64)> = conn
            .prepare("SELECT id, pid FROM wvflow_pool_slots WHERE pool = ?1")?
            .query_map([&pool.name], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?;
        let mut held = 0u64;
        for (id, pid) in holders {
            if alive(pid) {
                held += 1;
            } else {
                conn.execute("DELETE FROM wvflow_pool_slots WHERE id = ?1", [id])?;
            }
        }
        if held >= pool.slots {
            return Ok(None);
        }
        conn.execute(
            "INSERT INTO wvflow_pool_slots (pool, run_id, stage, item, pid, acquired_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                pool.name,
                holder.run_id,
                holder.stage,
                holder.item.map(|i| i as i64),
                std::process::id() as i64,
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

/// Whether process `pid` exists (a slot of a process that is gone is free).
fn alive(pid: i64) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: signal 0 only checks that the process exists and may be signalled.
    let found = unsafe { libc::kill(pid, 0) } == 0;
    found || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}
