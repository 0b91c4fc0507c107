//! One copy of a task at a time. An engine may run the same task twice at once (a worker it
//! took for lost, an operator's second trigger, two exit handlers): each copy would do the
//! stage's side effects. So a task claims its work with a lease, an object created only if
//! it does not exist (a file linked into place; an S3 PUT with `If-None-Match: *`), which it
//! renews while it works and marks released when done. A second copy waits while the lease
//! is held, then does the work itself, which then finds the first copy's records and does
//! nothing again.
//!
//! A holder that died leaves its lease behind: it is taken over when the holder is known gone
//! (a process of this host that no longer exists) or when it has not been renewed for
//! [`LEASE`] as the waiting copy sees it (no clock is compared across hosts). Taking over
//! creates the next generation of the lease (`NAME.1`, `NAME.2`, ...), which only one copy
//! can create, so two waiters never both take over. The lease also lists the process groups
//! of the holder's running attempts: the copy that takes over from a dead holder of its host
//! stops what it left running (an activity's background children outlive a SIGKILL'd task).

use super::TaskRun;
use super::state::{self, Location, run_key};
use crate::runtime::runs::owner::Owner;
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Why a task's lease could not be claimed.
#[derive(Debug)]
pub enum Error {
    /// The engine stopped this copy while it waited for another copy's lease.
    StoppedWhileHeld,
    /// This copy's lease could not be written as JSON.
    Encode(serde_json::Error),
    /// The lease's objects could not be read or created.
    State(state::Error),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::StoppedWhileHeld => f.write_str("stopped while another copy of the task ran"),
            Error::Encode(e) => write!(f, "{e}"),
            Error::State(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::StoppedWhileHeld => None,
            Error::Encode(e) => Some(e),
            Error::State(e) => Some(e),
        }
    }
}

impl From<state::Error> for Error {
    fn from(e: state::Error) -> Self {
        Error::State(e)
    }
}

/// How long a lease that is not renewed stays held.
const LEASE: Duration = Duration::from_secs(15);
/// How often its holder renews it.
const RENEW: Duration = Duration::from_secs(3);
/// How often a waiting copy looks again.
const LOOK: Duration = Duration::from_millis(200);

/// What a lease says of its holder.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Holder {
    pid: i64,
    host: String,
    start: i64,
    /// Renewals so far: a lease that is renewed changes.
    renewals: u64,
    released: bool,
    /// The process groups of the holder's running attempts, each with its leader's start
    /// time: stopped by the copy that takes over from a holder that died.
    #[serde(default)]
    groups: Vec<(i64, i64)>,
}

impl Holder {
    fn this_process() -> Holder {
        let owner = Owner::this_process();
        Holder {
            pid: owner.pid,
            host: owner.host,
            start: owner.start,
            renewals: 0,
            released: false,
            groups: Vec::new(),
        }
    }

    /// Known gone: released, or a process of this host that no longer exists.
    fn gone(&self) -> bool {
        let owner = Owner {
            pid: self.pid,
            host: self.host.clone(),
            start: self.start,
        };
        self.released || owner.is_alive() == Some(false)
    }
}

impl TaskRun<'_> {
    /// Runs `work` as the only copy of task `name` that runs it now (see the module's
    /// documentation); a copy that finds the lease held waits (until the engine stops it).
    pub(super) fn one_copy<T>(
        &self,
        name: &str,
        work: impl FnOnce() -> Result<T, super::Error>,
    ) -> Result<T, super::Error> {
        self.holding(&|generation| self.task_lease(name, generation), work)
    }

    /// Runs `work` (a stage that writes the workspace database the runs share) as the only
    /// writer of a bucket's copy of it: without this turn, two writers that each take a copy
    /// and put it back lose one's records, whatever pools the engine was given. A folder's
    /// database needs none: SQLite locks it.
    pub(super) fn workspace_turn<T>(
        &self,
        work: impl FnOnce() -> Result<T, super::Error>,
    ) -> Result<T, super::Error> {
        if !self.state.is_bucket() {
            return work();
        }
        self.holding(&|generation| format!("leases/workspace.{generation}"), work)
    }

    /// Runs `work` holding the lease whose generations are `key`s.
    fn holding<T>(
        &self,
        key: &dyn Fn(u32) -> String,
        work: impl FnOnce() -> Result<T, super::Error>,
    ) -> Result<T, super::Error> {
        let lease = key(self.claim(key)?);
        let stop = AtomicBool::new(false);
        let done = std::thread::scope(|scope| {
            scope.spawn(|| renew(&self.state, &lease, &stop));
            let done = work();
            stop.store(true, Ordering::SeqCst);
            done
        });
        // After the renewals have stopped, so that none comes after it.
        release(&self.state, &lease);
        done
    }

    fn task_lease(&self, name: &str, generation: u32) -> String {
        run_key(
            &self.flow_key(),
            &self.run_id,
            &format!("leases/{name}.{generation}"),
        )
    }

    /// Whether a copy of task `name` holds its lease now: its newest generation is neither
    /// released nor known gone.
    pub(super) fn held(&self, name: &str) -> Result<bool, super::Error> {
        let key = |generation| self.task_lease(name, generation);
        Ok(self
            .newest(&key)?
            .and_then(|(_, bytes)| serde_json::from_slice::<Holder>(&bytes).ok())
            .is_some_and(|holder| !holder.gone()))
    }

    /// The newest generation of a lease and what it says, if it has one. Generations are
    /// created in order without gaps, so it is found in a logarithmic number of reads (a
    /// lease the runs share, as the workspace's, gains one each turn).
    fn newest(&self, key: &dyn Fn(u32) -> String) -> Result<Option<(u32, Vec<u8>)>, Error> {
        let Some(first) = self.state.read(&key(0))? else {
            return Ok(None);
        };
        // The newest known to exist, and one known not to.
        let (mut found, mut bytes) = (0u32, first);
        let mut missing = None;
        let mut step = 1u32;
        while missing.is_none() {
            let probe = found.saturating_add(step);
            match self.state.read(&key(probe))? {
                Some(b) => (found, bytes) = (probe, b),
                None => missing = Some(probe),
            }
            step = step.saturating_mul(2);
        }
        let mut missing = missing.unwrap_or(u32::MAX);
        while missing - found > 1 {
            let probe = found + (missing - found) / 2;
            match self.state.read(&key(probe))? {
                Some(b) => (found, bytes) = (probe, b),
                None => missing = probe,
            }
        }
        Ok(Some((found, bytes)))
    }

    /// Claims the lease: its first generation, or the next one once the current holder is
    /// gone or has not renewed it for [`LEASE`].
    fn claim(&self, key: &dyn Fn(u32) -> String) -> Result<u32, Error> {
        let me = serde_json::to_vec(&Holder::this_process()).map_err(Error::Encode)?;
        // The newest generation and what it said, and since when it has said it.
        let mut seen: Option<(u32, Vec<u8>, Instant)> = None;
        loop {
            let Some((newest, bytes)) = self.newest(key)? else {
                if self.state.create(&key(0), &me)? {
                    return Ok(0);
                }
                continue;
            };
            let holder: Option<Holder> = serde_json::from_slice(&bytes).ok();
            let unchanged_since = match &seen {
                Some((g, b, since)) if *g == newest && *b == bytes => *since,
                _ => Instant::now(),
            };
            let stale = unchanged_since.elapsed() >= LEASE;
            if holder.as_ref().is_none_or(Holder::gone) || stale {
                if self.state.create(&key(newest + 1), &me)? {
                    if let Some(dead) = holder.filter(|h| !h.released) {
                        stop_left_running(&dead);
                    }
                    return Ok(newest + 1);
                }
                continue;
            }
            seen = Some((newest, bytes, unchanged_since));
            if self.cancel.load(Ordering::Relaxed) {
                return Err(Error::StoppedWhileHeld);
            }
            std::thread::sleep(LOOK);
        }
    }
}

/// Renews the lease every [`RENEW`] until `stop`, and at once when the process groups of
/// the attempts running change.
fn renew(state: &Location, key: &str, stop: &AtomicBool) {
    let mut holder = Holder::this_process();
    let mut renewed = Instant::now();
    while !stop.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(50));
        let groups = crate::runtime::spawn::live_groups();
        if groups == holder.groups && renewed.elapsed() < RENEW {
            continue;
        }
        holder.groups = groups;
        holder.renewals += 1;
        renewed = Instant::now();
        if let Ok(bytes) = serde_json::to_vec(&holder) {
            let _ = state.write(key, &bytes);
        }
    }
}

/// Stops what a holder that died left running: each recorded process group that is still
/// its attempt's (a reused pid is never hit), on this host.
fn stop_left_running(dead: &Holder) {
    use crate::runtime::runs::owner::{group_exists, group_is_attempts, hostname};
    if dead.host != hostname() {
        return;
    }
    for &(pid, start) in &dead.groups {
        if start == 0 || !group_is_attempts(pid, start) {
            continue;
        }
        let Ok(pgid) = libc::pid_t::try_from(pid) else {
            continue;
        };
        // SAFETY: a signal to a process group the dead holder recorded as its attempt's.
        unsafe { libc::kill(-pgid, libc::SIGKILL) };
        let asked = Instant::now();
        while group_exists(pid) && asked.elapsed() < Duration::from_secs(2) {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// Marks the lease released: a copy waiting for it goes on at once.
fn release(state: &Location, key: &str) {
    let holder = Holder {
        released: true,
        ..Holder::this_process()
    };
    if let Ok(bytes) = serde_json::to_vec(&holder) {
        let _ = state.write(key, &bytes);
    }
}
