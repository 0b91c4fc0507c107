//! The delay before each retry: one rule, computed per attempt, for the checker's budget
//! check (W0202), the plan's text and the executor. Nothing here allocates per attempt, so
//! `retries: 1000000000` costs what `retries: 3` does.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// How the delay grows from one retry to the next (`backoff:`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backoff {
    /// The first delay every time.
    Constant,
    /// The first delay times n.
    Linear,
    /// The first delay times coefficient^(n-1).
    #[default]
    Exponential,
}

impl Backoff {
    pub const WORDS: [&str; 3] = ["constant", "linear", "exponential"];

    /// The key's word; `None` for any other (the checker reports it).
    pub fn parse(word: &str) -> Option<Backoff> {
        match word {
            "constant" => Some(Backoff::Constant),
            "linear" => Some(Backoff::Linear),
            "exponential" => Some(Backoff::Exponential),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Backoff::Constant => "constant",
            Backoff::Linear => "linear",
            Backoff::Exponential => "exponential",
        }
    }
}

impl std::fmt::Display for Backoff {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The delays of one retry policy, before jitter.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RetryDelays {
    /// `retry_delay`: the delay before the first retry.
    pub first: Duration,
    pub backoff: Backoff,
    /// `backoff_coefficient`, for exponential backoff.
    pub coefficient: f64,
    /// `max_retry_delay`.
    pub cap: Option<Duration>,
}

impl RetryDelays {
    /// The delay before retry `n` (n = 1 is the wait between attempts 1 and 2), capped, and
    /// saturating at `Duration::MAX` rather than overflowing.
    pub fn before_retry(&self, n: u32) -> Duration {
        let factor = match self.backoff {
            Backoff::Constant => 1.0,
            Backoff::Linear => n as f64,
            Backoff::Exponential => self
                .coefficient
                .powi(n.saturating_sub(1).min(i32::MAX as u32) as i32),
        };
        let delay =
            Duration::try_from_secs_f64(self.first.as_secs_f64() * factor).unwrap_or(Duration::MAX);
        self.cap.map_or(delay, |cap| delay.min(cap))
    }

    /// The waits before retries 1..=`retries` together (saturating at `Duration::MAX`), and
    /// the first retry whose cumulative wait reaches `limit`. A few steps for any `retries`:
    /// linear delays are summed in closed form, a tail of equal delays (constant, capped or
    /// zero) at once, and growth stops mattering once the sum saturates.
    pub fn total(&self, retries: u32, limit: Option<Duration>) -> Total {
        if self.backoff == Backoff::Linear {
            return self.linear_total(retries, limit);
        }
        let mut sum = Duration::ZERO;
        let mut reached = None;
        let mut n = 1;
        while n <= retries {
            let delay = self.before_retry(n);
            let steady = delay == self.before_retry(n.saturating_add(1)) || delay.is_zero();
            let count = if steady { retries - n + 1 } else { 1 };
            let added = delay.saturating_mul(count);
            if let Some(limit) = limit
                && reached.is_none()
                && sum.saturating_add(added) >= limit
            {
                // Within these equal delays, the first retry that reaches the limit.
                let short = limit.saturating_sub(sum).as_nanos();
                let within = short
                    .div_ceil(delay.as_nanos().max(1))
                    .clamp(1, count as u128);
                reached = Some(n + within as u32 - 1);
            }
            sum = sum.saturating_add(added);
            if steady || sum == Duration::MAX || n == u32::MAX {
                break;
            }
            n += 1;
        }
        Total { sum, reached }
    }

    /// [`RetryDelays::total`] of linear delays: first * n up to the cap, then the cap.
    fn linear_total(&self, retries: u32, limit: Option<Duration>) -> Total {
        let first = self.first.as_nanos();
        let cap = self.cap.map(|c| c.as_nanos());
        // Retries 1..=growing wait first * n; the later ones wait the cap.
        let growing = match (cap, first) {
            (_, 0) | (None, _) => retries as u128,
            (Some(cap), first) => (cap / first).min(retries as u128),
        };
        let cumulative = |n: u128| -> u128 {
            let below = n.min(growing);
            let grown = first.saturating_mul(below.saturating_mul(below + 1) / 2);
            grown.saturating_add(cap.unwrap_or(0).saturating_mul(n - below))
        };
        let duration = |nanos: u128| {
            let secs = u64::try_from(nanos / 1_000_000_000).unwrap_or(u64::MAX);
            Duration::new(secs, (nanos % 1_000_000_000) as u32)
        };
        let reached = limit.and_then(|limit| {
            let limit = limit.as_nanos();
            if cumulative(retries as u128) < limit || retries == 0 {
                return None;
            }
            // The cumulative wait only grows: the first retry that reaches the limit.
            let (mut low, mut high) = (1u128, retries as u128);
            while low < high {
                let mid = (low + high) / 2;
                if cumulative(mid) >= limit {
                    high = mid;
                } else {
                    low = mid + 1;
                }
            }
            Some(low as u32)
        });
        Total {
            sum: duration(cumulative(retries as u128)),
            reached,
        }
    }
}

/// What [`RetryDelays::total`] found.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Total {
    /// The sum of the waits, exact up to the point where it passed the limit.
    pub sum: Duration,
    /// The first retry whose cumulative wait reaches the limit: from it on, no attempt can
    /// start within the limit.
    pub reached: Option<u32>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RetryPolicy {
    /// retries + 1.
    pub attempts: u32,
    pub initial_delay_ms: u64,
    /// `constant`, `linear` or `exponential`.
    #[schemars(with = "String")]
    pub backoff: Backoff,
    pub coefficient: f64,
    pub max_delay_ms: Option<u64>,
    pub jitter: bool,
    pub non_retryable: Vec<i64>,
}

impl RetryPolicy {
    /// The delay before each retry, before jitter ([`RetryDelays::before_retry`]).
    pub fn delays(&self) -> RetryDelays {
        RetryDelays {
            first: Duration::from_millis(self.initial_delay_ms),
            backoff: self.backoff,
            coefficient: self.coefficient,
            cap: self.max_delay_ms.map(Duration::from_millis),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    fn delays(backoff: Backoff, first: u64, coefficient: f64, cap: Option<u64>) -> RetryDelays {
        RetryDelays {
            first: s(first),
            backoff,
            coefficient,
            cap: cap.map(s),
        }
    }

    #[test]
    fn each_backoff_grows_as_documented() {
        let each = |d: RetryDelays, n: u32| (1..=n).map(|i| d.before_retry(i)).collect::<Vec<_>>();
        assert_eq!(
            each(delays(Backoff::Constant, 2, 2.0, None), 3),
            [s(2), s(2), s(2)]
        );
        assert_eq!(
            each(delays(Backoff::Linear, 2, 2.0, None), 3),
            [s(2), s(4), s(6)]
        );
        assert_eq!(
            each(delays(Backoff::Exponential, 1, 3.0, None), 4),
            [s(1), s(3), s(9), s(27)]
        );
        assert_eq!(
            each(delays(Backoff::Exponential, 1, 2.0, Some(5)), 5),
            [s(1), s(2), s(4), s(5), s(5)]
        );
    }

    #[test]
    fn a_billion_retries_neither_overflow_nor_take_long() {
        let d = delays(Backoff::Exponential, 1, 2.0, None);
        assert_eq!(d.before_retry(1_000_000_000), Duration::MAX);
        assert_eq!(d.before_retry(u32::MAX), Duration::MAX);
        let total = d.total(1_000_000_000, None);
        assert_eq!(total.sum, Duration::MAX);
        let capped = delays(Backoff::Exponential, 1, 2.0, Some(2));
        // 1 + 2 * (10^9 - 1) seconds, summed at once after the cap is reached.
        assert_eq!(
            capped.total(1_000_000_000, None).sum,
            s(1 + 2 * 999_999_999)
        );
        let zero = delays(Backoff::Linear, 0, 2.0, None);
        assert_eq!(zero.total(u32::MAX, Some(s(1))).sum, Duration::ZERO);
        assert_eq!(zero.total(u32::MAX, Some(s(1))).reached, None);
        // 1 ms, 2 ms, ...: n (n + 1) / 2 ms, in closed form.
        let linear = RetryDelays {
            first: Duration::from_millis(1),
            ..delays(Backoff::Linear, 0, 2.0, None)
        };
        let total = linear.total(1_000_000_000, Some(s(1)));
        assert_eq!(total.sum, Duration::from_millis(500_000_000_500_000_000));
        // 1 + 2 + ... + 44 = 990 ms, + 45 = 1035 ms.
        assert_eq!(total.reached, Some(45));
        let capped = RetryDelays {
            cap: Some(Duration::from_millis(3)),
            ..linear
        };
        assert_eq!(
            capped.total(5, None).sum,
            Duration::from_millis(1 + 2 + 3 + 3 + 3)
        );
    }

    #[test]
    fn the_first_retry_past_a_limit() {
        // 1, 2, 4, 8: cumulative 1, 3, 7, 15; a limit of 7 s is reached by retry 3.
        let d = delays(Backoff::Exponential, 1, 2.0, None);
        assert_eq!(d.total(10, Some(s(7))).reached, Some(3));
        // Constant 10 s: 10, 20, 30, ...; 25 s is reached by retry 3.
        let c = delays(Backoff::Constant, 10, 1.0, None);
        assert_eq!(c.total(1_000_000, Some(s(25))).reached, Some(3));
        assert_eq!(c.total(2, Some(s(25))).reached, None);
        assert_eq!(c.total(2, Some(s(25))).sum, s(20));
        let l = delays(Backoff::Linear, 1, 2.0, Some(3));
        // 1, 2, 3, 3, 3: cumulative 1, 3, 6, 9, 12; 7 s is reached by retry 4.
        assert_eq!(l.total(5, Some(s(7))).reached, Some(4));
        assert_eq!(l.total(5, Some(s(7))).sum, s(12));
    }
}
