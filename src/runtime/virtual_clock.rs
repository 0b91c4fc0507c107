//! The clock of `wvflow test`: virtual time that stands still while any work of the run is
//! under way, and jumps to the next wake-up once every piece of work waits (a retry delay, a
//! timeout, a `wait`, a poll, a mocked activity that takes an hour). The engine says when
//! work begins and waits ([`Clock::busy`], [`Clock::idle`], [`super::clock::receive`]); a
//! real clock ignores both.

use super::clock::{Clock, Quiet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

/// How often a waiting thread looks at its cancel flag, in real time: a flag set while every
/// thread waits wakes no one otherwise.
const LOOK: Duration = Duration::from_millis(2);

/// What happens at a virtual moment before anything waits past it (a signal sent).
pub type Event = Box<dyn FnOnce() + Send>;

pub struct VirtualClock {
    timeline: Mutex<Timeline>,
    moved: Condvar,
}

struct Timeline {
    now: Duration,
    /// Work under way (threads not waiting, messages not yet taken): time stands still
    /// while any.
    busy: isize,
    sleepers: Vec<Sleeper>,
    holds: Vec<Hold>,
    events: Vec<(Duration, Event)>,
    next_id: u64,
    /// Set when every piece of work waits and nothing will ever wake any: it is then
    /// cancelled, through `stuck_cancels`.
    stuck_at: Option<Duration>,
    stuck_cancels: Option<Arc<AtomicBool>>,
}

struct Sleeper {
    id: u64,
    until: Option<Duration>,
    cancel: Option<CancelFlag>,
    released: bool,
}

struct Hold {
    id: u64,
    at: Duration,
    reached: bool,
}

/// A sleeping thread's cancel flag, read by whichever thread moves time.
#[derive(Clone, Copy)]
struct CancelFlag(*const AtomicBool);

// SAFETY: a flag is registered only while the thread that borrows it is blocked in
// `VirtualClock::wait`, which removes it before returning; nothing but an atomic load is
// done through it.
unsafe impl Send for CancelFlag {}

impl CancelFlag {
    fn is_set(self) -> bool {
        // SAFETY: see the `Send` impl: the borrow outlives the registration.
        unsafe { (*self.0).load(Ordering::SeqCst) }
    }
}

impl Default for VirtualClock {
    fn default() -> Self {
        VirtualClock {
            timeline: Mutex::new(Timeline {
                now: Duration::ZERO,
                // The thread that starts the run.
                busy: 1,
                sleepers: Vec::new(),
                holds: Vec::new(),
                events: Vec::new(),
                next_id: 0,
                stuck_at: None,
                stuck_cancels: None,
            }),
            moved: Condvar::new(),
        }
    }
}

impl VirtualClock {
    /// `event` happens when time reaches `at`, before any wait ends past it.
    pub fn at(&self, at: Duration, event: Event) {
        self.lock().events.push((at, event));
    }

    /// When every piece of work waits and nothing can wake any, `cancel` is set (the run is
    /// cancelled) and [`VirtualClock::stuck_at`] says when.
    pub fn cancel_when_stuck(&self, cancel: Arc<AtomicBool>) {
        self.lock().stuck_cancels = Some(cancel);
    }

    /// The virtual time at which the run could no longer move, if it came to that.
    pub fn stuck_at(&self) -> Option<Duration> {
        self.lock().stuck_at
    }

    /// When a wait of `d` from now ends: never, for `Duration::MAX` (a wait for a cancel).
    fn until(&self, d: Duration) -> Option<Duration> {
        if d == Duration::MAX {
            return None;
        }
        self.lock().now.checked_add(d)
    }

    fn lock(&self) -> MutexGuard<'_, Timeline> {
        self.timeline.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits until `until` (forever: `None`) unless `cancel` is set; `false` when it was.
    fn wait(&self, until: Option<Duration>, cancel: Option<&AtomicBool>) -> bool {
        let flag = cancel.map(|c| CancelFlag(c as *const AtomicBool));
        let is_cancelled = || flag.is_some_and(CancelFlag::is_set);
        let mut t = self.lock();
        if is_cancelled() {
            return false;
        }
        let id = t.next_id;
        t.next_id += 1;
        t.sleepers.push(Sleeper {
            id,
            until,
            cancel: flag,
            released: false,
        });
        t.busy -= 1;
        self.settle(&mut t);
        loop {
            let at = t.sleepers.iter().position(|s| s.id == id).unwrap_or(0);
            if t.sleepers.get(at).is_some_and(|s| s.released) {
                t.sleepers.swap_remove(at);
                return !is_cancelled();
            }
            if is_cancelled() {
                t.sleepers.swap_remove(at);
                t.busy += 1;
                return false;
            }
            t = match self.moved.wait_timeout(t, LOOK) {
                Ok((t, _)) => t,
                Err(e) => e.into_inner().0,
            };
        }
    }

    /// Moves time while nothing is busy: wakes the sleepers whose time came or whose run was
    /// cancelled, else goes to the next wake-up, hold or event.
    fn settle(&self, t: &mut Timeline) {
        while t.busy <= 0 {
            let now = t.now;
            // One at a time, in the order their waits began: what happens at one virtual
            // instant happens in the same order at every run (a slot freed before the poll
            // that looks for it, not after, by chance).
            let due = t
                .sleepers
                .iter_mut()
                .filter(|s| !s.released)
                .filter(|s| s.until.is_some_and(|u| u <= now) || s.cancel.is_some_and(CancelFlag::is_set))
                .min_by_key(|s| s.id);
            if let Some(sleeper) = due {
                sleeper.released = true;
                t.busy += 1;
                self.moved.notify_all();
                return;
            }
            let next = t
                .sleepers
                .iter()
                .filter(|s| !s.released)
                .filter_map(|s| s.until)
                .chain(t.holds.iter().filter(|h| !h.reached).map(|h| h.at))
                .chain(t.events.iter().map(|(at, _)| *at))
                .min();
            let Some(next) = next else {
                if !t.sleepers.is_empty() && t.stuck_at.is_none() {
                    t.stuck_at = Some(now);
                    if let Some(cancel) = &t.stuck_cancels {
                        cancel.store(true, Ordering::SeqCst);
                    }
                }
                return;
            };
            t.now = t.now.max(next);
            let (due, later): (Vec<_>, Vec<_>) =
                t.events.drain(..).partition(|(at, _)| *at <= t.now);
            t.events = later;
            for (_, event) in due {
                event();
            }
            for hold in t.holds.iter_mut().filter(|h| !h.reached && h.at <= t.now) {
                hold.reached = true;
                t.busy += 1;
            }
        }
    }
}

impl Clock for VirtualClock {
    fn now(&self) -> Duration {
        self.lock().now
    }

    fn sleep(&self, d: Duration) {
        self.wait(self.until(d), None);
    }

    fn sleep_unless(&self, d: Duration, cancel: &AtomicBool) -> bool {
        self.wait(self.until(d), Some(cancel))
    }

    fn counts_work(&self) -> bool {
        true
    }

    fn busy(&self) {
        self.lock().busy += 1;
    }

    fn idle(&self) {
        let mut t = self.lock();
        t.busy -= 1;
        self.settle(&mut t);
    }

    fn hold_at(&self, at: Duration) -> Option<u64> {
        let mut t = self.lock();
        let id = t.next_id;
        t.next_id += 1;
        let reached = at <= t.now;
        if reached {
            t.busy += 1;
        }
        t.holds.push(Hold { id, at, reached });
        Some(id)
    }

    fn quiet_until(&self) -> Quiet {
        let t = self.lock();
        if t.busy != 1 {
            return Quiet::Unknown;
        }
        let next = t
            .sleepers
            .iter()
            .filter_map(|s| if s.released { Some(t.now) } else { s.until })
            .chain(t.holds.iter().filter(|h| !h.reached).map(|h| h.at))
            .chain(t.events.iter().map(|(at, _)| *at))
            .min();
        next.map_or(Quiet::Forever, Quiet::Until)
    }

    fn release(&self, hold: u64) {
        let mut t = self.lock();
        let Some(at) = t.holds.iter().position(|h| h.id == hold) else {
            return;
        };
        if t.holds.swap_remove(at).reached {
            t.busy -= 1;
            self.settle(&mut t);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parallel_waits_overlap_and_the_earliest_ends_first() {
        let clock = VirtualClock::default();
        let ended = Mutex::new(Vec::new());
        std::thread::scope(|scope| {
            for hours in [3u64, 1, 2] {
                clock.busy();
                let (clock, ended) = (&clock, &ended);
                scope.spawn(move || {
                    clock.sleep(Duration::from_secs(hours * 3600));
                    ended.lock().unwrap().push((hours, clock.now()));
                    clock.idle();
                });
            }
            clock.idle();
        });
        let ended = ended.into_inner().unwrap();
        let hours: Vec<u64> = ended.iter().map(|(h, _)| *h).collect();
        assert_eq!(hours, [1, 2, 3]);
        assert!(ended.iter().all(|(h, at)| *at == Duration::from_secs(h * 3600)));
    }

    #[test]
    fn a_cancel_ends_a_wait_at_the_time_it_was_set() {
        let clock = VirtualClock::default();
        let cancel = AtomicBool::new(false);
        std::thread::scope(|scope| {
            clock.busy();
            let (clock, cancel) = (&clock, &cancel);
            let waiter = scope.spawn(move || {
                let slept = clock.sleep_unless(Duration::from_secs(7200), cancel);
                clock.idle();
                slept
            });
            clock.sleep(Duration::from_secs(60));
            cancel.store(true, Ordering::SeqCst);
            clock.idle();
            assert!(!waiter.join().unwrap());
        });
        assert_eq!(clock.now(), Duration::from_secs(60));
    }

    #[test]
    fn a_wait_nothing_ends_is_stuck_and_cancelled() {
        let clock = VirtualClock::default();
        let cancel = Arc::new(AtomicBool::new(false));
        clock.cancel_when_stuck(cancel.clone());
        clock.sleep(Duration::from_secs(5));
        assert!(!clock.wait(None, Some(&cancel)));
        assert_eq!(clock.stuck_at(), Some(Duration::from_secs(5)));
    }

    #[test]
    fn a_hold_stops_time_until_released() {
        let clock = VirtualClock::default();
        let hold = clock.hold_at(Duration::from_secs(10)).unwrap();
        let fired = Arc::new(AtomicBool::new(false));
        let seen = fired.clone();
        clock.at(Duration::from_secs(5), Box::new(move || seen.store(true, Ordering::SeqCst)));
        std::thread::scope(|scope| {
            clock.busy();
            let clock = &clock;
            scope.spawn(move || {
                clock.sleep(Duration::from_secs(60));
                clock.idle();
            });
            clock.idle();
            while clock.now() < Duration::from_secs(10) {
                std::thread::yield_now();
            }
            assert_eq!(clock.now(), Duration::from_secs(10), "held at the deadline");
            clock.busy();
            clock.release(hold);
            clock.idle();
        });
        assert!(fired.load(Ordering::SeqCst));
        assert_eq!(clock.now(), Duration::from_secs(60));
    }
}
