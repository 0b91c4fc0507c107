//! Standard 5-field cron (`minute hour day-of-month month day-of-week`).
//!
//! wvflow validates each field itself, so that a message can name the field and the bad part,
//! and leaves the meaning to `croner`, which reads the same 5-field POSIX/Vixie form: 0 or 7
//! is Sunday, and when both day fields are restricted a day matches either of them. See
//! `docs/schedules.md` for why croner rather than the `cron` crate.

use chrono::{Duration as Days, NaiveDate, NaiveDateTime, NaiveTime, Timelike};
use std::ops::Range;

pub const FIELDS: [&str; 5] = ["minute", "hour", "day-of-month", "month", "day-of-week"];
const BOUNDS: [(u32, u32); 5] = [(0, 59), (0, 23), (1, 31), (1, 12), (0, 7)];
const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const WEEKDAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

/// A problem in a cron pattern; `range` is the bad part, in bytes of the pattern.
#[derive(Debug, PartialEq)]
pub struct CronError {
    pub message: String,
    pub range: Range<usize>,
}

/// A valid pattern: which values each field allows, and croner's reading of it.
#[derive(Debug)]
pub struct CronSpec {
    pub pattern: String,
    /// Allowed values per field (`[minute, hour, dom, month, dow]`), dow 7 folded into 0.
    pub allowed: [Vec<u32>; 5],
    cron: croner::Cron,
}

pub fn parse(pattern: &str) -> Result<CronSpec, CronError> {
    let expanded = match pattern.trim() {
        "@yearly" | "@annually" => "0 0 1 1 *",
        "@monthly" => "0 0 1 * *",
        "@weekly" => "0 0 * * 0",
        "@daily" | "@midnight" => "0 0 * * *",
        "@hourly" => "0 * * * *",
        other => other,
    };
    let from_alias = expanded != pattern.trim();
    let fields: Vec<(usize, &str)> = split_fields(expanded);
    if fields.len() != 5 {
        return Err(CronError {
            message: format!(
                "cron takes 5 fields (minute hour day-of-month month day-of-week), found {}",
                fields.len()
            ),
            range: 0..pattern.len(),
        });
    }
    let mut allowed: [Vec<u32>; 5] = Default::default();
    for (i, &(offset, text)) in fields.iter().enumerate() {
        let mut values = parse_field(i, text).map_err(|(message, range)| CronError {
            message,
            range: if from_alias {
                0..pattern.len()
            } else {
                offset + range.start..offset + range.end
            },
        })?;
        if i == 4 {
            values.iter_mut().filter(|v| **v == 7).for_each(|v| *v = 0);
        }
        values.sort_unstable();
        values.dedup();
        allowed[i] = values;
    }
    let cron = croner::parser::CronParser::builder()
        .build()
        .parse(expanded)
        .map_err(|e| CronError {
            message: format!("not a valid cron pattern: {e}"),
            range: 0..pattern.len(),
        })?;
    Ok(CronSpec {
        pattern: pattern.to_string(),
        allowed,
        cron,
    })
}

fn split_fields(pattern: &str) -> Vec<(usize, &str)> {
    let mut fields = Vec::new();
    let mut start = None;
    for (i, c) in pattern.char_indices() {
        match (c.is_whitespace(), start) {
            (false, None) => start = Some(i),
            (true, Some(s)) => {
                fields.push((s, &pattern[s..i]));
                start = None;
            }
            _ => {}
        }
    }
    if let Some(s) = start {
        fields.push((s, &pattern[s..]));
    }
    fields
}

/// The values one field allows, or a message and the bad part's range within the field.
fn parse_field(field: usize, text: &str) -> Result<Vec<u32>, (String, Range<usize>)> {
    let name = FIELDS[field];
    let (low, high) = BOUNDS[field];
    let mut values = Vec::new();
    let mut offset = 0;
    for part in text.split(',') {
        let range = offset..offset + part.len();
        offset += part.len() + 1;
        if part.is_empty() {
            return Err((format!("empty entry in the {name} field"), range));
        }
        let (base, step) = match part.split_once('/') {
            Some((base, step)) => match step.parse::<u32>() {
                Ok(s) if s > 0 => (base, s),
                _ => {
                    return Err((
                        format!("step `{step}` in the {name} field is not a positive number"),
                        range,
                    ));
                }
            },
            None => (part, 1),
        };
        let (first, last) = if base == "*" {
            (low, if field == 4 { 6 } else { high })
        } else if let Some((a, b)) = base.split_once('-') {
            let a = value(field, a).map_err(|m| (m.to_string(), range.clone()))?;
            let b = value(field, b).map_err(|m| (m.to_string(), range.clone()))?;
            if b < a {
                return Err((
                    format!("range {base} in the {name} field ends before it starts"),
                    range,
                ));
            }
            (a, b)
        } else {
            let a = value(field, base).map_err(|m| (m.to_string(), range.clone()))?;
            // `5/15` means from 5 to the end, every 15 (Vixie cron).
            (a, if part.contains('/') { high } else { a })
        };
        values.extend((first..=last).step_by(step as usize));
    }
    Ok(values)
}

fn value(field: usize, text: &str) -> Result<u32, BadValue<'_>> {
    let (low, high) = BOUNDS[field];
    let names: &[&str] = match field {
        3 => &MONTHS,
        4 => &WEEKDAYS,
        _ => &[],
    };
    if let Some(i) = names.iter().position(|n| n.eq_ignore_ascii_case(text)) {
        return Ok(i as u32 + if field == 3 { 1 } else { 0 });
    }
    match text.parse::<u32>() {
        Ok(v) if (low..=high).contains(&v) => Ok(v),
        Ok(v) => Err(BadValue::OutOfRange(v, field)),
        Err(_) => Err(BadValue::NotANumber(text, field)),
    }
}

/// A value of a field (by its index) outside the field's range, or no number nor name.
enum BadValue<'a> {
    OutOfRange(u32, usize),
    NotANumber(&'a str, usize),
}

impl std::fmt::Display for BadValue<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let field = match self {
            BadValue::OutOfRange(_, field) | BadValue::NotANumber(_, field) => *field,
        };
        let (name, (low, high)) = (FIELDS[field], BOUNDS[field]);
        match self {
            BadValue::OutOfRange(v, _) => write!(f, "{v} is not a valid {name} ({low}-{high})"),
            BadValue::NotANumber(text, _) => {
                write!(f, "`{text}` is not a valid {name} ({low}-{high})")
            }
        }
    }
}

impl CronSpec {
    /// Whether the pattern fires at this local time (seconds ignored).
    pub fn matches(&self, at: NaiveDateTime) -> bool {
        let at = at
            .with_second(0)
            .and_then(|t| t.with_nanosecond(0))
            .unwrap_or(at);
        self.cron.is_time_matching(&at).unwrap_or(false)
    }

    /// The first local time after `at` at which the pattern fires.
    pub fn next_after(&self, at: NaiveDateTime) -> Option<NaiveDateTime> {
        self.cron.find_next_occurrence(&at, false).ok()
    }

    /// Whether any day in `days` days from `from` fires (checked at the first allowed time).
    pub fn fires_within(&self, from: NaiveDate, days: i64) -> bool {
        let time =
            NaiveTime::from_hms_opt(self.allowed[1][0], self.allowed[0][0], 0).unwrap_or_default();
        (0..days).any(|d| self.matches((from + Days::days(d)).and_time(time)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Datelike;

    fn at(y: i32, m: u32, d: u32, h: u32, min: u32) -> NaiveDateTime {
        NaiveDate::from_ymd_opt(y, m, d)
            .unwrap()
            .and_hms_opt(h, min, 0)
            .unwrap()
    }

    #[test]
    fn monday_at_nine_means_mondays_at_nine() {
        let spec = parse("0 9 * * 1").unwrap();
        // 2026-11-23 is a Monday.
        let mut t = at(2026, 11, 20, 12, 0);
        let mut fires = Vec::new();
        for _ in 0..3 {
            t = spec.next_after(t).unwrap();
            fires.push(t);
        }
        assert_eq!(
            fires,
            [
                at(2026, 11, 23, 9, 0),
                at(2026, 11, 30, 9, 0),
                at(2026, 12, 7, 9, 0)
            ]
        );
        assert!(fires.iter().all(|f| f.weekday() == chrono::Weekday::Mon));
    }

    #[test]
    fn sunday_is_zero_or_seven_and_restricted_day_fields_combine_with_or() {
        let sunday = at(2026, 11, 22, 0, 0);
        assert!(parse("0 0 * * 0").unwrap().matches(sunday));
        assert!(parse("0 0 * * 7").unwrap().matches(sunday));
        assert!(parse("0 0 * * sun").unwrap().matches(sunday));
        // The 13th or any Friday: Friday 2026-11-20 and Friday-less Sunday 2026-12-13 both fire.
        let spec = parse("0 0 13 * 5").unwrap();
        assert!(spec.matches(at(2026, 11, 20, 0, 0)));
        assert!(spec.matches(at(2026, 12, 13, 0, 0)));
        assert!(!spec.matches(at(2026, 11, 21, 0, 0)));
    }

    #[test]
    fn errors_name_the_field_and_the_bad_part() {
        let e = parse("61 * * * *").unwrap_err();
        assert_eq!(e.message, "61 is not a valid minute (0-59)");
        assert_eq!(e.range, 0..2);
        let e = parse("0 9 * 13 *").unwrap_err();
        assert_eq!(e.message, "13 is not a valid month (1-12)");
        assert_eq!(e.range, 6..8);
        assert_eq!(
            parse("0 9 * *").unwrap_err().message,
            "cron takes 5 fields (minute hour day-of-month month day-of-week), found 4"
        );
        assert_eq!(
            parse("0 5-2 * * *").unwrap_err().message,
            "range 5-2 in the hour field ends before it starts"
        );
        assert_eq!(
            parse("*/0 * * * *").unwrap_err().message,
            "step `0` in the minute field is not a positive number"
        );
        assert_eq!(
            parse("0 0 * * mon-fri,sat").unwrap().allowed[4],
            [1, 2, 3, 4, 5, 6]
        );
    }

    #[test]
    fn a_pattern_for_february_31st_never_fires() {
        let start = NaiveDate::from_ymd_opt(2026, 1, 1).unwrap();
        assert!(!parse("0 0 31 2 *").unwrap().fires_within(start, 8 * 366));
        assert!(parse("0 0 29 2 *").unwrap().fires_within(start, 8 * 366));
    }
}
