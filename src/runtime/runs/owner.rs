//! Who runs a run, and whether it still does: the owner's process id, host and process start
//! time, and a lease the owner keeps refreshing. A run whose owner is gone is *stale*.

use rusqlite::{Connection, OptionalExtension};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// How long a lease lasts; the owner refreshes it every [`REFRESH`].
pub const LEASE: Duration = Duration::from_secs(15);
const REFRESH: Duration = Duration::from_secs(3);
/// How often the owner looks for a cancel request or a pause: well within one second.
const POLL: Duration = Duration::from_millis(200);

/// The identity of a process that owns runs.
#[derive(Clone, Debug, PartialEq)]
pub struct Owner {
    pub pid: i64,
    pub host: String,
    /// Process start time in clock ticks since boot (Linux), so that a reused pid is not
    /// taken for the owner; 0 where unknown.
    pub start: i64,
}

impl Owner {
    pub fn this_process() -> Owner {
        let pid = std::process::id() as i64;
        Owner {
            pid,
            host: hostname(),
            start: process_start(pid),
        }
    }

    /// `Some(false)` when the owner was a process on this machine that no longer exists,
    /// `Some(true)` when it still runs, `None` when only the lease can tell (another host).
    pub fn is_alive(&self) -> Option<bool> {
        if self.host != hostname() {
            return None;
        }
        let Ok(pid) = libc::pid_t::try_from(self.pid) else {
            return Some(false);
        };
        // SAFETY: signal 0 sends nothing; it only asks whether the process exists.
        let exists = unsafe { libc::kill(pid, 0) } == 0
            || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
        Some(exists && (self.start == 0 || process_start(self.pid) == self.start))
    }
}

/// Whether a run recorded as running has lost its owner: at once for a dead local process,
/// otherwise once its lease has expired.
pub fn is_stale(owner: &Owner, lease_until: i64, now_ms: i64) -> bool {
    match owner.is_alive() {
        Some(alive) => !alive,
        None => lease_until < now_ms,
    }
}

pub fn hostname() -> String {
    let mut buffer = [0u8; 256];
    // SAFETY: the buffer is writable and its length is passed.
    let status = unsafe { libc::gethostname(buffer.as_mut_ptr().cast(), buffer.len()) };
    if status != 0 {
        return String::new();
    }
    let end = buffer.iter().position(|&b| b == 0).unwrap_or(buffer.len());
    String::from_utf8_lossy(&buffer[..end]).into_owned()
}

/// Whether the process group `pid` can only be the one an attempt created when process `pid`
/// started at `start`. While its leader lives, the start time tells; once the leader has
/// ended, no other process can take the id while the group has members, so a group of that
/// id is still the attempt's.
pub fn group_is_attempts(pid: i64, start: i64) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return true;
    };
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return false;
    };
    let mut fields = rest.split_whitespace();
    let state = fields.next().unwrap_or("X");
    let started: i64 = fields.nth(18).and_then(|f| f.parse().ok()).unwrap_or(0);
    matches!(state, "Z" | "X") || started == start
}

/// Whether process group `pgid` has a member.
pub fn group_exists(pgid: i64) -> bool {
    // SAFETY: signal 0 only checks that the group exists.
    unsafe { libc::kill(-(pgid as i32), 0) == 0 }
}

/// Field 22 of `/proc/PID/stat`, the start time; 0 when there is no such file.
pub fn process_start(pid: i64) -> i64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0;
    };
    // The command name (field 2) may hold spaces; fields after it follow the last ')'.
    stat.rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().nth(19)?.parse().ok())
        .unwrap_or(0)
}

/// `cancel_requested` once the owner has seen the request and set the run's cancel flag.
pub const CANCEL_SEEN: i64 = 2;

/// The owner's side of a run: a thread that refreshes the lease and turns a recorded cancel
/// request or pause into the flags the executor watches, at its periodic look or at once when
/// woken ([`super::wake`]). Stops when dropped.
pub struct Watch {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Watch {
    pub fn start(
        db: PathBuf,
        run_id: String,
        cancel: Arc<AtomicBool>,
        paused: Arc<AtomicBool>,
    ) -> Result<Watch, super::schema::Error> {
        let conn = super::schema::open(&db)?;
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut refreshed = std::time::Instant::now();
            let mut seen = super::wake::seen();
            loop {
                super::wake::wait(&mut seen, POLL);
                if stopped.load(Ordering::SeqCst) {
                    return;
                }
                if refreshed.elapsed() >= REFRESH {
                    refreshed = std::time::Instant::now();
                    let _ = refresh_lease(&conn, &run_id);
                }
                if let Ok(Some((cancel_requested, pause))) = controls(&conn, &run_id) {
                    if cancel_requested != 0 {
                        cancel.store(true, Ordering::SeqCst);
                        // Said after the flag is set: `runs cancel` returns on it.
                        if cancel_requested != CANCEL_SEEN {
                            let _ = cancel_seen(&conn, &run_id);
                        }
                    }
                    paused.store(pause, Ordering::SeqCst);
                }
            }
        });
        Ok(Watch {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        super::wake::poke_watches();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

pub fn lease_until(now_ms: i64) -> i64 {
    now_ms + LEASE.as_millis() as i64
}

fn refresh_lease(conn: &Connection, run_id: &str) -> rusqlite::Result<usize> {
    conn.execute(
        "UPDATE wvflow_runs SET lease_until = ?1 WHERE run_id = ?2 AND state = 'running'",
        rusqlite::params![lease_until(super::schema::now_ms()), run_id],
    )
}

/// The run's `cancel_requested` (0, 1, or [`CANCEL_SEEN`]) and whether it is paused.
fn controls(conn: &Connection, run_id: &str) -> rusqlite::Result<Option<(i64, bool)>> {
    conn.query_row(
        "SELECT cancel_requested, paused FROM wvflow_runs WHERE run_id = ?1",
        [run_id],
        |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)? != 0)),
    )
    .optional()
}

fn cancel_seen(conn: &Connection, run_id: &str) -> rusqlite::Result<usize> {
    conn.execute(
        "UPDATE wvflow_runs SET cancel_requested = ?2 WHERE run_id = ?1 AND cancel_requested = 1",
        rusqlite::params![run_id, CANCEL_SEEN],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_a_finished_child_is_not() {
        let me = Owner::this_process();
        assert!(me.start > 0, "Linux gives a start time");
        assert_eq!(me.is_alive(), Some(true));
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id() as i64;
        child.wait().unwrap();
        let gone = Owner { pid, ..me.clone() };
        assert_eq!(gone.is_alive(), Some(false));
        assert!(
            is_stale(&gone, i64::MAX, 0),
            "a dead local owner is stale at once"
        );
        let elsewhere = Owner {
            host: "another-host".into(),
            ..me
        };
        assert_eq!(elsewhere.is_alive(), None);
        assert!(!is_stale(&elsewhere, 2_000, 1_000), "lease not yet expired");
        assert!(is_stale(&elsewhere, 1_000, 2_000), "lease expired");
    }
}
