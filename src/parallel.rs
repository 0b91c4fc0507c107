//! A small work-sharing map over the machine's cores, for independent front-end work (files of
//! a workspace, chunks of a large file). Results come back in input order.

use std::sync::{Condvar, Mutex};
use std::sync::atomic::{AtomicUsize, Ordering};

/// The cores this process may use, asked once: the answer reads the cgroup's CPU quota from
/// three files, which is worth doing once per process, not once per call.
pub fn cores() -> usize {
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// `f` applied to `0..count`, on up to one thread per core; sequential when there is one item
/// or one core.
pub fn map_indexed<R: Send>(count: usize, f: impl Fn(usize) -> R + Sync) -> Vec<R> {
    let workers = cores().min(count);
    if workers <= 1 {
        return (0..count).map(f).collect();
    }
    let slots: Vec<Mutex<Option<R>>> = (0..count).map(|_| Mutex::new(None)).collect();
    let next = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= count {
                        break;
                    }
                    let result = f(i);
                    if let Ok(mut slot) = slots[i].lock() {
                        *slot = Some(result);
                    }
                }
            });
        }
    });
    // Every index was taken by exactly one worker, and a worker that panicked has already
    // propagated its panic out of `scope`, so every slot is filled.
    slots
        .into_iter()
        .filter_map(|slot| slot.into_inner().ok().flatten())
        .collect()
}

/// `f` applied to `0..count` on one thread per core, its results handed to `sink` on this
/// thread in input order as they come: the workers go on while `sink` works, and run at most
/// `window` items ahead of it, so that only that many results are held at once.
pub fn for_each_in_order<R: Send>(
    count: usize,
    window: usize,
    f: impl Fn(usize) -> R + Sync,
    mut sink: impl FnMut(R),
) {
    let workers = cores().min(count);
    if workers <= 1 {
        return (0..count).map(f).for_each(sink);
    }
    let window = window.max(workers);
    let done: Mutex<Done<R>> = Mutex::new(Done {
        results: std::collections::BTreeMap::new(),
        handed: 0,
        stopped: false,
    });
    let changed = Condvar::new();
    let next = AtomicUsize::new(0);
    let lock = || done.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let wait = |state| {
        changed
            .wait(state)
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    };
    let panicked = std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let mut state = lock();
                    while !state.stopped && i < count && i >= state.handed + window {
                        state = wait(state);
                    }
                    if state.stopped || i >= count {
                        break;
                    }
                    drop(state);
                    // A panic is handed on in its place: `sink`'s thread waits for every index.
                    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(i)));
                    lock().results.insert(i, result);
                    changed.notify_all();
                }
            });
        }
        let handed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            for i in 0..count {
                let mut state = lock();
                let result = loop {
                    if let Some(result) = state.results.remove(&i) {
                        break result;
                    }
                    state = wait(state);
                };
                state.handed = i + 1;
                drop(state);
                changed.notify_all();
                match result {
                    Ok(result) => sink(result),
                    Err(panic) => std::panic::resume_unwind(panic),
                }
            }
        }));
        // A panic (of `f` or of `sink`) stops the workers before it goes on, or they would
        // wait for a `sink` that no longer takes anything.
        lock().stopped = true;
        changed.notify_all();
        handed.err()
    });
    if let Some(panic) = panicked {
        std::panic::resume_unwind(panic);
    }
}

/// The results of [`for_each_in_order`] not yet handed on, and how many were.
struct Done<R> {
    results: std::collections::BTreeMap<usize, std::thread::Result<R>>,
    handed: usize,
    /// Every result was handed on, or a panic ended the handing.
    stopped: bool,
}

#[cfg(test)]
mod tests {
    #[test]
    fn results_keep_input_order() {
        let squares = super::map_indexed(100, |i| i * i);
        assert_eq!(squares, (0..100).map(|i| i * i).collect::<Vec<_>>());
    }

    #[test]
    fn results_are_handed_on_in_order_with_few_held() {
        let held = std::sync::atomic::AtomicUsize::new(0);
        let most = std::sync::atomic::AtomicUsize::new(0);
        let mut seen = Vec::new();
        super::for_each_in_order(
            500,
            4,
            |i| {
                let now = held.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                most.fetch_max(now, std::sync::atomic::Ordering::SeqCst);
                // Later items finish first now and then.
                std::thread::sleep(std::time::Duration::from_micros((i % 7) as u64 * 50));
                i * i
            },
            |r| {
                held.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                seen.push(r);
            },
        );
        assert_eq!(seen, (0..500).map(|i| i * i).collect::<Vec<_>>());
        // At most `window` items ahead of the one handed on, the one in `sink` included.
        assert!(most.into_inner() <= 5);
    }

    #[test]
    fn a_panic_reaches_the_caller_and_stops_the_workers() {
        let caught = std::panic::catch_unwind(|| {
            super::for_each_in_order(50, 4, |i| assert_ne!(i, 17), |_| {});
        });
        assert!(caught.is_err());
        // A panic of `sink`, with workers waiting for it to take more.
        let caught = std::panic::catch_unwind(|| {
            super::for_each_in_order(50, 2, |i| i, |i| assert_ne!(i, 3));
        });
        assert!(caught.is_err());
    }
}
