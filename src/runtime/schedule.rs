//! When scheduled flows fire: cron patterns read in the flow's time zone, with daylight saving
//! handled the way `docs/schedules.md` says (a local time in a gap fires once, at the end of the
//! gap; a local time that happens twice fires once, at its first instant), and intervals.
//! Everything takes the current time as an argument, so tests choose it.

use crate::cron::{self, CronSpec};
use crate::plan::ir::Schedule;
use chrono::{DateTime, LocalResult, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;

/// How many missed windows a catch-up starts at most: the newest ones. Older windows are
/// left to `wvflow backfill`.
pub const MAX_CATCHUP: usize = 100;

/// A flow's schedule, ready to compute fire times.
#[derive(Debug)]
pub enum Timing {
    Cron {
        spec: Box<CronSpec>,
        zone: Tz,
    },
    /// Fires at every multiple of the interval since the Unix epoch (so `1h` fires on the
    /// hour, UTC).
    Interval {
        every_ms: i64,
    },
}

/// Why a schedule or a time given on a command line cannot be read. `Display` gives the
/// message users see.
#[derive(Clone, Debug, PartialEq)]
pub enum Error {
    /// The cron pattern is not one: what the cron reader said.
    Cron(String),
    TimeZone { zone: String },
    IntervalTooLong,
    NoTiming,
    /// Neither an RFC 3339 time nor a date.
    NotATime { text: String },
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Cron(message) => f.write_str(message),
            Error::TimeZone { zone } => write!(f, "unknown time zone `{zone}`"),
            Error::IntervalTooLong => f.write_str("interval too long"),
            Error::NoTiming => f.write_str("the schedule has neither a cron pattern nor an interval"),
            Error::NotATime { text } => write!(
                f,
                "`{text}` is not a time such as 2026-01-31T02:00:00Z or a date such as 2026-01-31"
            ),
        }
    }
}

impl std::error::Error for Error {}


impl Timing {
    pub fn of(schedule: &Schedule) -> Result<Timing, Error> {
        if let Some(pattern) = &schedule.cron {
            let spec = cron::parse(pattern).map_err(|e| Error::Cron(e.message))?;
            let zone: Tz = schedule.timezone.parse().map_err(|_| Error::TimeZone {
                zone: schedule.timezone.clone(),
            })?;
            return Ok(Timing::Cron {
                spec: Box::new(spec),
                zone,
            });
        }
        match schedule.interval_ms {
            Some(ms) if ms > 0 => Ok(Timing::Interval {
                every_ms: i64::try_from(ms).map_err(|_| Error::IntervalTooLong)?,
            }),
            _ => Err(Error::NoTiming),
        }
    }

    /// The first fire time strictly after `after`.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Timing::Interval { every_ms } => {
                let ms = after.timestamp_millis();
                let next = (ms.div_euclid(*every_ms) + 1).checked_mul(*every_ms)?;
                DateTime::from_timestamp_millis(next)
            }
            Timing::Cron { spec, zone } => {
                let mut local = after.with_timezone(zone).naive_local();
                // Local times that map back before `after` (the second pass of a repeated
                // hour, or the gap's times already fired) are passed over.
                for _ in 0..10_000 {
                    let next = spec.next_after(local)?;
                    let instant = instant_of(zone, next)?;
                    if instant > after {
                        return Some(instant);
                    }
                    local = next;
                }
                None
            }
        }
    }

    /// Fire times in `(from, to]`, oldest first, at most `limit` (the newest ones).
    pub fn between(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        limit: usize,
    ) -> Vec<DateTime<Utc>> {
        let mut times = std::collections::VecDeque::new();
        let mut at = from;
        while let Some(next) = self.next_after(at).filter(|t| *t <= to) {
            times.push_back(next);
            if times.len() > limit {
                times.pop_front();
            }
            at = next;
        }
        times.into()
    }

    /// The first `limit` fire times in `(from, to]`, oldest first: it stops there, however
    /// long the span.
    pub fn first_between(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        limit: usize,
    ) -> Vec<DateTime<Utc>> {
        let mut times = Vec::new();
        let mut at = from;
        while times.len() < limit {
            match self.next_after(at).filter(|t| *t <= to) {
                Some(next) => {
                    times.push(next);
                    at = next;
                }
                None => break,
            }
        }
        times
    }

    /// Fire times due at `now` for a flow last considered at `since`: with `catchup`, every
    /// window in `(since, now]` (up to [`MAX_CATCHUP`]); without, only the latest one.
    pub fn due(
        &self,
        since: DateTime<Utc>,
        now: DateTime<Utc>,
        catchup: bool,
    ) -> Vec<DateTime<Utc>> {
        let limit = if catchup { MAX_CATCHUP } else { 1 };
        self.between(since, now, limit)
    }

    /// The zone fire times are shown in.
    pub fn zone(&self) -> Tz {
        match self {
            Timing::Cron { zone, .. } => *zone,
            Timing::Interval { .. } => Tz::UTC,
        }
    }
}

/// The instant a local time stands for: the first of two in a repeated hour, the end of the
/// gap for a local time that does not exist.
fn instant_of(zone: &Tz, local: NaiveDateTime) -> Option<DateTime<Utc>> {
    match zone.from_local_datetime(&local) {
        LocalResult::Single(t) => Some(t.with_timezone(&Utc)),
        LocalResult::Ambiguous(first, _) => Some(first.with_timezone(&Utc)),
        LocalResult::None => {
            // Gaps are at most a few hours; the first local minute after it that exists is
            // the instant the clocks jumped.
            let mut probe = local;
            for _ in 0..24 * 60 {
                probe += chrono::Duration::minutes(1);
                if let LocalResult::Single(t) | LocalResult::Ambiguous(t, _) =
                    zone.from_local_datetime(&probe)
                {
                    return Some(t.with_timezone(&Utc));
                }
            }
            None
        }
    }
}

/// The wall clock now (chrono's own clock feature is not built).
pub fn utc_now() -> DateTime<Utc> {
    DateTime::<Utc>::from(std::time::SystemTime::now())
}

/// A time as `run_time` takes it: RFC 3339 UTC, seconds.
pub fn run_time_text(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// A run time given on a command line: an RFC 3339 time (any offset), or a date (midnight
/// UTC), as the run's `run_time` text.
pub fn parse_run_time(text: &str) -> Result<String, Error> {
    parse_time(text).map(run_time_text)
}

/// A time given on a command line: an RFC 3339 time (any offset), or a date (midnight UTC).
pub fn parse_time(text: &str) -> Result<DateTime<Utc>, Error> {
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&chrono::Utc))
        .or_else(|_| {
            chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
                .map(|d| d.and_time(chrono::NaiveTime::MIN).and_utc())
        })
        .map_err(|_| Error::NotATime {
            text: text.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    fn cron(pattern: &str, zone: &str) -> Timing {
        Timing::of(&Schedule {
            cron: Some(pattern.into()),
            interval_ms: None,
            timezone: zone.into(),
            catchup: false,
        })
        .unwrap()
    }

    fn times(timing: &Timing, from: &str, to: &str) -> Vec<String> {
        timing
            .between(utc(from), utc(to), 1000)
            .into_iter()
            .map(run_time_text)
            .collect()
    }

    #[test]
    fn cron_fires_in_its_time_zone() {
        let nine = cron("0 9 * * 1-5", "Asia/Tokyo");
        assert_eq!(
            times(&nine, "2026-03-05T23:00:00Z", "2026-03-09T23:00:00Z"),
            ["2026-03-06T00:00:00Z", "2026-03-09T00:00:00Z"],
            "09:00 in Tokyo is 00:00 UTC; the weekend does not fire"
        );
        let utc_noon = cron("0 12 * * *", "UTC");
        assert_eq!(
            utc_noon
                .next_after(utc("2026-01-01T12:00:00Z"))
                .map(run_time_text),
            Some("2026-01-02T12:00:00Z".into())
        );
    }

    #[test]
    fn a_local_time_skipped_by_daylight_saving_fires_once_at_the_end_of_the_gap() {
        // New York, 2026-03-08: 02:00 EST jumps to 03:00 EDT (07:00 UTC).
        let at_half_past_two = cron("30 2 * * *", "America/New_York");
        assert_eq!(
            times(
                &at_half_past_two,
                "2026-03-07T00:00:00Z",
                "2026-03-10T00:00:00Z"
            ),
            [
                "2026-03-07T07:30:00Z", // 02:30 EST
                "2026-03-08T07:00:00Z", // 02:30 does not exist: 03:00 EDT
                "2026-03-09T06:30:00Z", // 02:30 EDT
            ]
        );
        let every_quarter = cron("*/15 2 * * *", "America/New_York");
        assert_eq!(
            times(
                &every_quarter,
                "2026-03-08T06:00:00Z",
                "2026-03-08T09:00:00Z"
            ),
            ["2026-03-08T07:00:00Z"],
            "four local times in the gap fire once"
        );
    }

    #[test]
    fn a_local_time_repeated_by_daylight_saving_fires_once_at_its_first_instant() {
        // Berlin, 2026-10-25: 03:00 CEST goes back to 02:00 CET; 02:30 happens twice.
        let at_half_past_two = cron("30 2 * * *", "Europe/Berlin");
        assert_eq!(
            times(
                &at_half_past_two,
                "2026-10-24T00:00:00Z",
                "2026-10-27T00:00:00Z"
            ),
            [
                "2026-10-24T00:30:00Z", // 02:30 CEST
                "2026-10-25T00:30:00Z", // the first 02:30 (CEST), not the second (01:30 UTC)
                "2026-10-26T01:30:00Z", // 02:30 CET
            ]
        );
        let hourly = cron("0 * * * *", "Europe/Berlin");
        assert_eq!(
            times(&hourly, "2026-10-24T23:30:00Z", "2026-10-25T02:30:00Z"),
            [
                "2026-10-25T00:00:00Z", // 02:00 CEST
                "2026-10-25T02:00:00Z", // 03:00 CET; the second 02:00 (01:00 UTC) does not fire
            ]
        );
    }

    #[test]
    fn intervals_fire_on_multiples_since_the_epoch() {
        let hourly = Timing::of(&Schedule {
            cron: None,
            interval_ms: Some(3_600_000),
            timezone: "UTC".into(),
            catchup: false,
        })
        .unwrap();
        assert_eq!(
            times(&hourly, "2026-01-01T10:20:00Z", "2026-01-01T13:00:00Z"),
            [
                "2026-01-01T11:00:00Z",
                "2026-01-01T12:00:00Z",
                "2026-01-01T13:00:00Z"
            ]
        );
    }

    #[test]
    fn without_catchup_only_the_latest_window_is_due_and_catchup_is_bounded() {
        let every_minute = cron("* * * * *", "UTC");
        let since = utc("2026-01-01T00:00:00Z");
        let now = utc("2026-01-01T00:10:30Z");
        let due: Vec<String> = every_minute
            .due(since, now, false)
            .into_iter()
            .map(run_time_text)
            .collect();
        assert_eq!(due, ["2026-01-01T00:10:00Z"]);
        let caught_up = every_minute.due(since, now, true);
        assert_eq!(caught_up.len(), 10);
        assert_eq!(run_time_text(caught_up[0]), "2026-01-01T00:01:00Z");
        let long_ago = utc("2025-12-01T00:00:00Z");
        let bounded = every_minute.due(long_ago, now, true);
        assert_eq!(bounded.len(), MAX_CATCHUP);
        assert_eq!(
            run_time_text(*bounded.last().unwrap()),
            "2026-01-01T00:10:00Z",
            "the newest windows are kept"
        );
    }
}
