//! Time for the runtime, injected so that retries, backoff and timeouts are tested fast and
//! deterministically.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

pub trait Clock: Send + Sync {
    /// Time since the clock's start.
    fn now(&self) -> Duration;
    /// Waits for `d` (a test clock just moves forward).
    fn sleep(&self, d: Duration);

    /// Waits for `d` unless `cancel` is set meanwhile (looked at every 100 ms); `false` when
    /// it was.
    fn sleep_unless(&self, d: Duration, cancel: &AtomicBool) -> bool {
        const SLICE: Duration = Duration::from_millis(100);
        let start = self.now();
        loop {
            if cancel.load(Ordering::Relaxed) {
                return false;
            }
            let slept = self.now().saturating_sub(start);
            if slept >= d {
                return true;
            }
            self.sleep((d - slept).min(SLICE));
        }
    }

    /// Whether the clock counts work ([`Clock::busy`]): work handed out must then be taken up
    /// at once, never left queued behind a busy worker.
    fn counts_work(&self) -> bool {
        false
    }

    /// Work begins that the clock must wait for before it moves: a stage handed to a worker,
    /// a thread that woke by itself. Real time moves anyway: only a virtual clock counts.
    fn busy(&self) {}

    /// Work ends or waits on other work (see [`Clock::busy`]).
    fn idle(&self) {}

    /// Time stops at `at` and stays until [`Clock::release`] of the returned hold: the owner
    /// of a deadline notices it before anything later happens. `None` on a real clock.
    fn hold_at(&self, _at: Duration) -> Option<u64> {
        None
    }

    /// Ends a hold: reached or not, time may go past it.
    fn release(&self, _hold: u64) {}

    /// Until when nothing but the caller can act: a virtual clock knows it when every other
    /// piece of work waits (the next wake-up, hold or event); a real clock never does.
    fn quiet_until(&self) -> Quiet {
        Quiet::Unknown
    }
}

/// What [`Clock::quiet_until`] knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Quiet {
    Unknown,
    /// Nothing else happens before this time.
    Until(Duration),
    /// Nothing else will ever happen.
    Forever,
}

/// Waits up to `look` (real time) for work another thread hands back with its message, as
/// idle work meanwhile: the message carries the sender's [`Clock::busy`], and a timeout
/// leaves the caller busy again.
pub fn receive<T>(
    clock: &dyn Clock,
    from: &std::sync::mpsc::Receiver<T>,
    look: Duration,
) -> Result<T, std::sync::mpsc::RecvTimeoutError> {
    clock.idle();
    let received = from.recv_timeout(look);
    if received.is_err() {
        clock.busy();
    }
    received
}

/// The real clock.
pub struct SystemClock {
    start: Instant,
}

impl Default for SystemClock {
    fn default() -> Self {
        SystemClock {
            start: Instant::now(),
        }
    }
}

impl Clock for SystemClock {
    fn now(&self) -> Duration {
        self.start.elapsed()
    }

    fn sleep(&self, d: Duration) {
        std::thread::sleep(d);
    }
}

/// A clock that only moves when asked: `sleep` advances it at once and records the wait.
#[derive(Default)]
pub struct ManualClock {
    state: Mutex<(Duration, Vec<Duration>)>,
}

impl ManualClock {
    pub fn advance(&self, d: Duration) {
        if let Ok(mut s) = self.state.lock() {
            s.0 += d;
        }
    }

    /// Every `sleep` so far, in order.
    pub fn sleeps(&self) -> Vec<Duration> {
        self.state.lock().map(|s| s.1.clone()).unwrap_or_default()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Duration {
        self.state.lock().map(|s| s.0).unwrap_or_default()
    }

    fn sleep(&self, d: Duration) {
        if let Ok(mut s) = self.state.lock() {
            s.0 += d;
            s.1.push(d);
        }
    }

    /// One recorded wait: a test reads the delays as the policy computed them.
    fn sleep_unless(&self, d: Duration, cancel: &AtomicBool) -> bool {
        if cancel.load(Ordering::Relaxed) {
            return false;
        }
        self.sleep(d);
        true
    }
}
