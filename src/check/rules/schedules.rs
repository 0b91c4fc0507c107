//! E05: schedules. Cron patterns, time zones with their daylight-saving traps, `schedule`
//! versus `interval`, `catchup`, and patterns that never fire.

use crate::check::{Ctx, Def, values, with_suggestion};
use crate::cron::{self, CronSpec};
use crate::diagnostics::Code;
use crate::diagnostics::Diagnostic;
use crate::source::FileId;
use crate::syntax::Span;
use crate::syntax::ast::{ConfigEntry, ExprKind, Flow};
use chrono::{Datelike, NaiveDate, NaiveDateTime, Offset, TimeZone};
use chrono_tz::Tz;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

pub fn check_flow(ctx: &mut Ctx, def: Def<'_, Flow>) {
    let Some(config) = &def.node.config else {
        return;
    };
    let file = def.file;
    let schedule = config.get("schedule");
    let interval = config.get("interval");
    let spec = schedule.and_then(|e| cron_of(ctx, file, e));
    let zone = config.get("timezone").and_then(|e| timezone(ctx, file, e));

    if let (Some(s), Some(i)) = (schedule, interval) {
        ctx.emit(
            Diagnostic::error(
                Code::E0504,
                file,
                i.key.span,
                "a flow takes `schedule` or `interval`, not both",
            )
            .with_label("second trigger time")
            .with_secondary(file, s.key.span, "`schedule` set here")
            .with_help("keep the cron `schedule`, or the fixed `interval`"),
        );
    }
    if let Some(i) = interval
        && let Ok(d) = values::duration(&i.value)
        && !d.is_zero()
        && d < Duration::from_secs(1)
    {
        ctx.emit(
            Diagnostic::error(
                Code::E0505,
                file,
                i.value.span,
                format!("`interval` {} is shorter than one second", values::show(d)),
            )
            .with_label("too short")
            .with_help("the scheduler works in seconds: use at least `1s`"),
        );
    }
    if let Some(c) = config.get("catchup")
        && values::boolean(&c.value) == Some(true)
        && schedule.is_none()
        && interval.is_none()
    {
        ctx.emit(
            Diagnostic::error(
                Code::E0506,
                file,
                c.key.span,
                "`catchup` needs a `schedule` or `interval`",
            )
            .with_label("no windows to catch up")
            .with_help("add `schedule: cron('...')`, or remove `catchup`"),
        );
    }
    if let Some(tz) = config.get("timezone")
        && schedule.is_none()
    {
        ctx.emit(
            Diagnostic::warning(Code::W0503, file, tz.key.span, "`timezone` has no effect without a cron `schedule`")
                .with_label("no effect")
                .with_help("the time zone applies to the cron pattern; remove it or add `schedule: cron('...')`"),
        );
    }
    if let (Some(spec), Some(s)) = (&spec, schedule) {
        let start = NaiveDate::from_ymd_opt(this_year(), 1, 1).unwrap_or_default();
        let known = ctx.schedules().fires.get(&spec.pattern).copied();
        let fires = known.unwrap_or_else(|| {
            let fires = spec.fires_within(start, 8 * 366);
            ctx.schedules().fires.insert(spec.pattern.clone(), fires);
            fires
        });
        if !fires {
            ctx.emit(
                Diagnostic::warning(Code::W0502, file, s.value.span, format!("cron('{}') never fires", spec.pattern))
                    .with_label("no date matches")
                    .with_help("check the day and month: February has no 30th or 31st, and April, June, September and November have no 31st"),
            );
        }
        if let Some(zone) = zone {
            daylight_saving(ctx, file, s.value.span, spec, zone);
        }
    }
}

fn this_year() -> i32 {
    chrono::DateTime::<chrono::Utc>::from(std::time::SystemTime::now()).year()
}

/// `schedule: cron('...')`, parsed; problems are reported at the bad field.
fn cron_of(ctx: &mut Ctx, file: FileId, e: &ConfigEntry) -> Option<Arc<CronSpec>> {
    let v = &e.value;
    let pattern = match &v.kind {
        ExprKind::Call(call) if call.name.name == "cron" => match call.args.as_slice() {
            [arg] if arg.name.is_none() => match &arg.value.kind {
                ExprKind::Str(s) => Some((s.as_str(), arg.value.span)),
                _ => None,
            },
            _ => None,
        },
        _ => None,
    };
    let Some((pattern, span)) = pattern else {
        ctx.emit(
            Diagnostic::error(
                Code::E0502,
                file,
                v.span,
                format!(
                    "`schedule` takes `cron('m h dom mon dow')`, found {}",
                    values::describe(v)
                ),
            )
            .with_label("not a cron pattern")
            .with_help("write `schedule: cron('0 2 * * *')`, or `interval: 1h` for a fixed period"),
        );
        return None;
    };
    let known = ctx.schedules().patterns.get(pattern).cloned();
    let parsed = match known {
        Some(spec) => Ok(spec),
        None => cron::parse(pattern).map(Arc::new),
    };
    match parsed {
        Ok(spec) => {
            ctx.schedules()
                .patterns
                .insert(pattern.to_string(), spec.clone());
            Some(spec)
        }
        Err(e) => {
            let at = inner_span(ctx, file, span, pattern, e.range);
            ctx.emit(
                Diagnostic::error(Code::E0501, file, at, format!("invalid cron pattern: {}", e.message))
                    .with_label("here")
                    .with_help("cron takes `minute hour day-of-month month day-of-week`: minute 0-59, hour 0-23, day 1-31, month 1-12, weekday 0-7 (0 and 7 are Sunday)"),
            );
            None
        }
    }
}

/// The span of `range` inside a string literal, when the literal holds the text verbatim.
fn inner_span(
    ctx: &Ctx,
    file: FileId,
    literal: Span,
    value: &str,
    range: std::ops::Range<usize>,
) -> Span {
    let text = &ctx.workspace.sources.get(file).text;
    let written = text.get(literal.range()).unwrap_or_default();
    if written.len() == value.len() + 2 && &written[1..written.len() - 1] == value {
        let start = literal.start as usize + 1;
        Span::new(start + range.start, start + range.end)
    } else {
        literal
    }
}

fn timezone(ctx: &mut Ctx, file: FileId, e: &ConfigEntry) -> Option<Tz> {
    let Some(name) = values::word(&e.value) else {
        ctx.emit(
            Diagnostic::error(
                Code::E0204,
                file,
                e.value.span,
                format!(
                    "`timezone` takes a zone name such as 'Europe/Berlin', found {}",
                    values::describe(&e.value)
                ),
            )
            .with_label("expected a zone name"),
        );
        return None;
    };
    match name.parse::<Tz>() {
        Ok(tz) => Some(tz),
        Err(_) => {
            let d = Diagnostic::error(
                Code::E0503,
                file,
                e.value.span,
                format!("unknown time zone `{name}`"),
            )
            .with_label("not an IANA time zone");
            let names = chrono_tz::TZ_VARIANTS.iter().map(|tz| tz.name());
            ctx.emit(with_suggestion(
                d,
                name,
                names,
                Some(
                    "use an IANA name such as 'UTC', 'Europe/Berlin' or 'America/New_York'".into(),
                ),
            ));
            None
        }
    }
}

/// Facts about schedules that many flows share: computed once per pattern and zone, and
/// shared by the threads that check flows.
#[derive(Default)]
pub struct Cache {
    patterns: HashMap<String, Arc<CronSpec>>,
    fires: HashMap<String, bool>,
    transitions: HashMap<Tz, Arc<Transitions>>,
    traps: HashMap<(String, Tz), Vec<Trap>>,
}

/// A local time at which a pattern fires inside a daylight-saving gap or overlap.
#[derive(Clone)]
struct Trap {
    gap: bool,
    at: NaiveDateTime,
    from: NaiveDateTime,
    to: NaiveDateTime,
}

/// Warns when the pattern fires inside a zone's daylight-saving gap or overlap this year or
/// next: the local time is skipped or happens twice.
fn daylight_saving(ctx: &mut Ctx, file: FileId, span: Span, spec: &CronSpec, zone: Tz) {
    let key = (spec.pattern.clone(), zone);
    let known = ctx.schedules().traps.get(&key).cloned();
    let traps = match known {
        Some(traps) => traps,
        None => {
            let known = ctx.schedules().transitions.get(&zone).cloned();
            let transitions = known.unwrap_or_else(|| {
                let start = NaiveDate::from_ymd_opt(this_year(), 1, 1)
                    .unwrap_or_default()
                    .and_hms_opt(0, 0, 0)
                    .unwrap_or_default();
                let found = Arc::new(transitions(zone, start, 2 * 366 * 24));
                ctx.schedules().transitions.insert(zone, found.clone());
                found
            });
            let traps = find_traps(spec, &transitions);
            ctx.schedules().traps.insert(key, traps.clone());
            traps
        }
    };
    for trap in traps {
        let kind = if trap.gap { "gap" } else { "overlap" };
        let what = if trap.gap {
            format!(
                "local times from {} to {} do not exist on the day clocks go forward",
                trap.from.format("%H:%M"),
                trap.to.format("%H:%M")
            )
        } else {
            format!(
                "local times from {} to {} happen twice on the day clocks go back",
                trap.from.format("%H:%M"),
                trap.to.format("%H:%M")
            )
        };
        ctx.emit(
            Diagnostic::warning(Code::W0501, file, span, format!("cron('{}') fires at {} in the daylight-saving {kind} of {}", spec.pattern, trap.at.format("%H:%M"), zone.name()))
                .with_label(what)
                .with_help("the scheduler runs such a time once; choose a time outside the transition, or set `timezone: 'UTC'`"),
        );
    }
}

/// The first gap and the first overlap in which the pattern fires.
type Transitions = Vec<(NaiveDateTime, chrono::Duration, chrono::Duration)>;

fn find_traps(spec: &CronSpec, transitions: &Transitions) -> Vec<Trap> {
    let mut traps: Vec<Trap> = Vec::new();
    for &(instant, before, after) in transitions {
        let gap = after > before;
        if traps.iter().any(|t| t.gap == gap) {
            continue;
        }
        let (from, to) = if gap {
            (instant + before, instant + after)
        } else {
            (instant + after, instant + before)
        };
        let mut local = from;
        while local < to {
            if spec.matches(local) {
                traps.push(Trap {
                    gap,
                    at: local,
                    from,
                    to,
                });
                break;
            }
            local += chrono::Duration::minutes(1);
        }
    }
    traps
}

/// UTC instants in `hours` hours from `start` where the zone's offset changes, with the
/// offsets before and after.
fn transitions(zone: Tz, start: NaiveDateTime, hours: i64) -> Transitions {
    let offset = |t: NaiveDateTime| {
        chrono::Duration::seconds(zone.offset_from_utc_datetime(&t).fix().local_minus_utc() as i64)
    };
    let mut found = Vec::new();
    let mut previous = offset(start);
    for h in 1..=hours {
        let t = start + chrono::Duration::hours(h);
        let current = offset(t);
        if current != previous {
            // Find the minute of the change within the last hour.
            let mut low = t - chrono::Duration::hours(1);
            let mut high = t;
            while high - low > chrono::Duration::minutes(1) {
                let mid = low + (high - low) / 2;
                if offset(mid) == previous {
                    low = mid
                } else {
                    high = mid
                }
            }
            found.push((high, previous, current));
            previous = current;
        }
    }
    found
}
