//! What runs take from outside, in one place: the clock, the wall time it starts at,
//! randomness and the launcher of activities.

use super::clock::Clock;
use super::activity::Launcher;
use super::retry::Random;

/// What a run or a task needs from outside: time (a clock and the wall time at which it read
/// zero: records from other tasks, perhaps on other hosts, are in wall time), randomness for
/// jitter, and the launcher of activities. `wvflow test` gives a virtual clock and mocks.
#[derive(Clone, Copy)]
pub struct Means<'a> {
    pub clock: &'a dyn Clock,
    pub epoch: chrono::DateTime<chrono::Utc>,
    pub random: &'a dyn Random,
    pub launcher: &'a dyn Launcher,
}

/// The real clock, time-seeded jitter and processes: what a task on an engine's worker uses.
pub struct SystemMeans {
    clock: super::clock::SystemClock,
    epoch: chrono::DateTime<chrono::Utc>,
    random: super::retry::SeededRandom,
}

impl Default for SystemMeans {
    fn default() -> Self {
        SystemMeans {
            clock: Default::default(),
            epoch: super::schedule::utc_now(),
            random: super::retry::SeededRandom::from_time(),
        }
    }
}

impl SystemMeans {
    pub fn means(&self) -> Means<'_> {
        Means {
            clock: &self.clock,
            epoch: self.epoch,
            random: &self.random,
            launcher: &super::activity::ProcessLauncher,
        }
    }
}

impl Means<'_> {
    /// The wall time now, in milliseconds since 1970.
    pub fn now_ms(&self) -> i64 {
        let since = i64::try_from(self.clock.now().as_millis()).unwrap_or(i64::MAX);
        self.epoch.timestamp_millis().saturating_add(since)
    }

    pub fn now(&self) -> chrono::DateTime<chrono::Utc> {
        chrono::DateTime::from_timestamp_millis(self.now_ms()).unwrap_or(self.epoch)
    }
}

