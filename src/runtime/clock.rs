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
