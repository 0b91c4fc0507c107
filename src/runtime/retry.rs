//! Running an attempt again: the retry policy of the plan applied to attempt outcomes, as the
//! run's rules decide after each failure ([`super::rules::after_failure`]: the delays of
//! [`crate::retry_rule`], full jitter, non-retryable exit codes and `schedule_timeout`), with
//! the waits on the injected clock.

use super::clock::Clock;
use super::activity::AttemptFailure;
use super::error::StageError;
use super::rules::{AfterFailure, Waiter, after_failure};
use crate::plan::ir::RetryPolicy;
use std::time::Duration;

/// How one attempt ended.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome<T> {
    Success(T),
    /// The attempt failed, and why.
    Failure(AttemptFailure),
    /// The run was cancelled while the attempt ran: no retry.
    Cancelled,
}

/// How the whole retried call ended.
#[derive(Clone, Debug, PartialEq)]
pub struct Finished<T> {
    pub result: Result<T, StageError>,
    pub attempts: u32,
}

/// A source of uniform random numbers in [0, 1), injected for jitter.
pub trait Random: Send + Sync {
    fn unit(&self) -> f64;
}

/// xorshift: enough randomness for spreading retries, and reproducible with a seed.
pub struct SeededRandom(std::sync::Mutex<u64>);

impl SeededRandom {
    pub fn new(seed: u64) -> Self {
        SeededRandom(std::sync::Mutex::new(seed.max(1)))
    }

    /// Seeded from the time of day.
    pub fn from_time() -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64);
        SeededRandom::new(nanos)
    }
}

impl Random for SeededRandom {
    fn unit(&self) -> f64 {
        let Ok(mut x) = self.0.lock() else { return 0.5 };
        *x ^= *x << 13;
        *x ^= *x >> 7;
        *x ^= *x << 17;
        (*x >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Runs `attempt` (given the attempt number, from 1) until it succeeds, fails with a
/// non-retryable exit code, runs out of attempts, or would start after `schedule_timeout`.
pub fn run<T>(
    policy: &RetryPolicy,
    schedule_timeout: Option<Duration>,
    clock: &dyn Clock,
    random: &dyn Random,
    attempt: impl FnMut(u32) -> Outcome<T>,
) -> Finished<T> {
    let never = std::sync::atomic::AtomicBool::new(false);
    run_observed(
        policy,
        schedule_timeout,
        (clock, &never),
        random,
        attempt,
        |_, _| {},
    )
}

/// [`run`], telling `retrying` (the attempt that failed, the delay before the next) before
/// each wait: the stage shows `retrying` meanwhile.
/// A cancel (`cancel` set) during a wait between attempts ends it: no further attempt.
pub fn run_observed<T>(
    policy: &RetryPolicy,
    schedule_timeout: Option<Duration>,
    (clock, cancel): (&dyn Clock, &std::sync::atomic::AtomicBool),
    random: &dyn Random,
    mut attempt: impl FnMut(u32) -> Outcome<T>,
    mut retrying: impl FnMut(u32, Duration),
) -> Finished<T> {
    let started = clock.now();
    let mut n = 1;
    loop {
        match attempt(n) {
            Outcome::Cancelled => {
                return Finished {
                    result: Err(StageError::Cancelled),
                    attempts: n,
                };
            }
            Outcome::Success(value) => {
                return Finished {
                    result: Ok(value),
                    attempts: n,
                };
            }
            Outcome::Failure(failure) => {
                let exit_code = failure.exit_code();
                let elapsed = clock.now().saturating_sub(started);
                let waiter = Waiter::Wvflow(random);
                let delay = match after_failure(policy, schedule_timeout, (n, exit_code), elapsed, waiter) {
                    AfterFailure::Again(delay) => delay,
                    AfterFailure::GiveUp(why) => {
                        let error = StageError::Activity {
                            message: failure.to_string(),
                            exit_code,
                        };
                        return Finished {
                            result: Err(match why {
                                Some(why) => StageError::GaveUp {
                                    error: Box::new(error),
                                    why,
                                },
                                None => error,
                            }),
                            attempts: n,
                        };
                    }
                };
                retrying(n, delay);
                if !clock.sleep_unless(delay, cancel) {
                    return Finished {
                        result: Err(StageError::Cancelled),
                        attempts: n,
                    };
                }
                n += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::clock::ManualClock;

    fn policy(attempts: u32, backoff: &str, cap: Option<u64>, jitter: bool) -> RetryPolicy {
        RetryPolicy {
            attempts,
            initial_delay_ms: 1000,
            backoff: crate::retry_rule::Backoff::parse(backoff).unwrap(),
            coefficient: 2.0,
            max_delay_ms: cap,
            jitter,
            non_retryable: vec![64],
        }
    }

    fn fail<T>(code: i32) -> Outcome<T> {
        Outcome::Failure(AttemptFailure::Said {
            message: "boom".into(),
            exit_code: Some(code),
        })
    }

    #[test]
    fn retries_wait_the_policy_delays_then_give_up() {
        let clock = ManualClock::default();
        let done = run(
            &policy(4, "exponential", Some(3000), false),
            None,
            &clock,
            &SeededRandom::new(1),
            |_| fail::<()>(1),
        );
        assert_eq!(done.attempts, 4);
        assert_eq!(done.result.map_err(|e| e.to_string()), Err("boom".into()));
        assert_eq!(clock.sleeps(), [1, 2, 3].map(Duration::from_secs));
    }

    #[test]
    fn success_on_a_later_attempt_stops_retrying() {
        let clock = ManualClock::default();
        let done = run(
            &policy(5, "linear", None, false),
            None,
            &clock,
            &SeededRandom::new(1),
            |n| if n == 3 { Outcome::Success(n) } else { fail(1) },
        );
        assert_eq!(
            done,
            Finished {
                result: Ok(3),
                attempts: 3
            }
        );
        assert_eq!(clock.sleeps(), [1, 2].map(Duration::from_secs));
    }

    #[test]
    fn non_retryable_exit_codes_fail_at_once() {
        let clock = ManualClock::default();
        let done = run(
            &policy(5, "constant", None, false),
            None,
            &clock,
            &SeededRandom::new(1),
            |_| fail::<()>(64),
        );
        assert_eq!(done.attempts, 1);
        assert!(
            done.result
                .unwrap_err()
                .to_string()
                .contains("non-retryable")
        );
        assert!(clock.sleeps().is_empty());
    }

    #[test]
    fn full_jitter_draws_each_delay_below_the_computed_one() {
        let clock = ManualClock::default();
        run(
            &policy(6, "exponential", None, true),
            None,
            &clock,
            &SeededRandom::new(42),
            |_| fail::<()>(1),
        );
        let sleeps = clock.sleeps();
        assert_eq!(sleeps.len(), 5);
        for (sleep, max) in sleeps.iter().zip([1, 2, 4, 8, 16]) {
            assert!(*sleep <= Duration::from_secs(max), "{sleep:?} > {max}s");
        }
        assert!(
            sleeps.iter().any(|s| s.subsec_millis() != 0),
            "jitter must not keep the computed delays: {sleeps:?}"
        );
    }

    #[test]
    fn schedule_timeout_stops_before_an_attempt_that_would_start_too_late() {
        let clock = ManualClock::default();
        // Each attempt takes 10s; delays 1s, 2s, 4s: attempt 3 would start at 10+1+10+2 = 23s.
        let done = run(
            &policy(5, "exponential", None, false),
            Some(Duration::from_secs(22)),
            &clock,
            &SeededRandom::new(1),
            |_| {
                clock.advance(Duration::from_secs(10));
                fail::<()>(1)
            },
        );
        assert_eq!(done.attempts, 2);
        assert!(
            done.result
                .unwrap_err()
                .to_string()
                .contains("schedule_timeout")
        );
    }
}
