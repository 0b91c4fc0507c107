//! The durable run store in the workspace database: runs, stage states, attempts, an
//! append-only event log, compensations and signals, written as the run goes so that runs can
//! be listed, traced, resumed after a crash, cancelled and signalled from another process.
//! Schema and semantics: `docs/runs.md`.
//!
//! | module | job |
//! |---|---|
//! | [`schema`] | the tables, their version and migration; opening the database |
//! | [`journal`] | recording one run's transitions; requests from other processes |
//! | [`owner`] | liveness: the owner process, its lease, cancel and pause polling |
//! | [`catalog`] | reading runs back; retention |
//! | [`report`] | a run as one JSON document, for `runs show` and the dashboard |

pub mod catalog;
pub mod journal;
pub mod owner;
pub mod report;
pub mod schema;
pub mod wake;

use crate::runtime::state::RunState;
use rusqlite::types::Value;
use std::collections::BTreeMap;

/// A new run id: the UTC time to the second, the process id, and a counter of this process,
/// so ids sort by time and never repeat.
pub fn new_run_id() -> String {
    static RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    format!(
        "{}-{}-{}",
        crate::runtime::schedule::utc_now().format("%Y%m%dT%H%M%S"),
        std::process::id(),
        RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    )
}

/// The flow's time zone (its `timezone`, UTC without a schedule): `run_date` is a date there.
pub fn zone_of(plan: &crate::plan::Plan) -> &str {
    plan.flow
        .schedule
        .as_ref()
        .map_or("UTC", |s| s.timezone.as_str())
}

/// The values a run's SQL reads besides its arguments: `run_time`, `run_date` (its date in
/// `zone`, the flow's time zone) and the run id, which queries over the run store use.
pub fn run_params(
    mut args: BTreeMap<String, Value>,
    run_time: &str,
    run_id: &str,
    zone: &str,
) -> BTreeMap<String, Value> {
    let zone: chrono_tz::Tz = zone.parse().unwrap_or(chrono_tz::UTC);
    let date = chrono::DateTime::parse_from_rfc3339(run_time)
        .map(|t| t.with_timezone(&zone).format("%Y-%m-%d").to_string())
        .unwrap_or_else(|_| run_time.get(..10).unwrap_or_default().to_string());
    args.insert("run_date".into(), Value::Text(date));
    args.insert("run_time".into(), Value::Text(run_time.to_string()));
    args.insert(
        crate::plan::sql::RUN_ID_PARAM.into(),
        Value::Text(run_id.to_string()),
    );
    args
}

/// The racers of every `first_success` stage that succeeded: a resumed run does not run
/// them again (a decided race stays decided), unless they failed on their own.
pub fn race_losers(
    plan: &crate::plan::Plan,
    stages: &[catalog::StageRow],
) -> std::collections::BTreeSet<String> {
    let succeeded = |id: &str| {
        stages.iter().any(|s| {
            s.summary.stage == id && s.summary.state == crate::runtime::state::StageState::Success
        })
    };
    plan.flow
        .stages
        .iter()
        .filter(|s| s.first_success && succeeded(&s.id))
        .flat_map(|s| s.upstream.iter().map(|e| e.stage.clone()))
        .collect()
}

/// What is sent with a signal: text from the command line, or JSON from the dashboard.
#[derive(Clone, Copy, Debug)]
pub enum SignalInput<'a> {
    Text(&'a str),
    Json(&'a serde_json::Value),
}

/// Why a signal was not sent.
#[derive(Clone, Debug, PartialEq)]
pub enum SignalError {
    /// No such run, a run that has finished, or a run store that cannot be used.
    Run(String),
    /// The run's flow declares no signal of this name; `known` are those it has.
    Undeclared {
        flow: String,
        name: String,
        known: Vec<String>,
    },
    /// The value is not one of the signal's type; `given` is it as written (none: no value).
    WrongValue {
        flow: String,
        name: String,
        wrong: crate::value::WrongValue,
        given: Option<String>,
    },
}

impl From<catalog::Error> for SignalError {
    fn from(e: catalog::Error) -> Self {
        SignalError::Run(e.to_string())
    }
}

impl From<journal::Error> for SignalError {
    fn from(e: journal::Error) -> Self {
        SignalError::Run(e.to_string())
    }
}

impl From<schema::Error> for SignalError {
    fn from(e: schema::Error) -> Self {
        SignalError::Run(e.to_string())
    }
}

impl std::fmt::Display for SignalError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SignalError::Run(message) => f.write_str(message),
            SignalError::Undeclared { flow, name, known } => {
                let hint =
                    crate::diagnostics::suggest::closest(name, known.iter().map(String::as_str))
                        .map(|s| format!("; did you mean `{s}`?"))
                        .unwrap_or_default();
                write!(
                    f,
                    "flow `{flow}` declares no signal `{name}` (it has: {}){hint}",
                    known.join(", ")
                )
            }
            SignalError::WrongValue {
                flow,
                name,
                wrong,
                given,
            } => {
                write!(
                    f,
                    "signal `{name}` of flow `{flow}` is {} and takes {}",
                    wrong.ty.name(),
                    wrong.takes()
                )?;
                match given {
                    Some(given) => write!(f, ", not `{given}`"),
                    None => f.write_str(": give it a value"),
                }
            }
        }
    }
}

impl From<String> for SignalError {
    fn from(message: String) -> Self {
        SignalError::Run(message)
    }
}

/// The type of the signal `name` of a run's flow: its declared one, boolean for the
/// built-in `pause` and `resume`; `None` when the flow has no such signal.
pub fn signal_type(plan: &crate::plan::Plan, name: &str) -> Option<crate::value::ValueType> {
    match plan.flow.signals.iter().find(|s| s.name == name) {
        Some(signal) => Some(signal.ty),
        None if matches!(name, "pause" | "resume") => Some(crate::value::ValueType::Boolean),
        None => None,
    }
}

/// Sends run `run_id` the signal `name` (one its flow declares, or `pause` / `resume`), for
/// its owner to read: the value is read by the signal's type (without one, `true`), and a
/// value the type does not take is refused before anything is recorded. Returns the value
/// as recorded, with its type.
pub fn send_signal(
    db: &std::path::Path,
    run_id: &str,
    name: &str,
    given: Option<SignalInput>,
) -> Result<crate::value::Typed, SignalError> {
    let conn = schema::open(db)?;
    catalog::run_in(&conn, run_id)?
        .ok_or_else(|| format!("no run `{run_id}` in {}", db.display()))?;
    let plan = catalog::plan_of(&conn, run_id)?;
    drop(conn);
    let sent = signal_value(&plan, name, given)?;
    journal::request(db, run_id, journal::Request::Signal { name, value: &sent })?;
    Ok(sent)
}

/// The value of signal `name` of `plan`'s flow as `given` (read by the signal's type; without
/// one, `true`), or why it cannot be sent: a signal the flow does not declare, a value its
/// type does not take.
pub fn signal_value(
    plan: &crate::plan::Plan,
    name: &str,
    given: Option<SignalInput>,
) -> Result<crate::value::Typed, SignalError> {
    use crate::value::ValueType;
    let flow = plan.flow.name.clone();
    let Some(ty) = signal_type(plan, name) else {
        let mut known: Vec<String> = plan.flow.signals.iter().map(|s| s.name.clone()).collect();
        known.extend(["pause".to_string(), "resume".to_string()]);
        return Err(SignalError::Undeclared {
            flow,
            name: name.to_string(),
            known,
        });
    };
    let value = match given {
        None if matches!(ty, ValueType::Boolean | ValueType::Any) => Ok(Value::Integer(1)),
        None => Err(crate::value::WrongValue { ty }),
        Some(SignalInput::Text(text)) => crate::value::parse(text, ty),
        Some(SignalInput::Json(json)) => crate::value::from_json_as(json, ty),
    };
    let value = value.map_err(|wrong| SignalError::WrongValue {
        flow,
        name: name.to_string(),
        wrong,
        given: given.map(|g| match g {
            SignalInput::Text(text) => text.to_string(),
            SignalInput::Json(json) => json.to_string(),
        }),
    })?;
    Ok(crate::value::Typed { value, ty })
}

/// How the run's saga said the run ends after it (`compensations_due`): `failed`, or
/// `cancelled`; `None` for a run whose saga did not say.
fn saga_ending(
    conn: &rusqlite::Connection,
    run_id: &str,
) -> Result<Option<RunState>, catalog::Error> {
    use rusqlite::OptionalExtension;
    let detail: Option<String> = conn
        .query_row(
            "SELECT detail FROM wvflow_events WHERE run_id = ?1 AND kind = 'compensations_due'
             ORDER BY seq DESC LIMIT 1",
            [run_id],
            |r| r.get(0),
        )
        .optional()?;
    Ok(detail
        .and_then(|d| serde_json::from_str::<serde_json::Value>(&d).ok())
        .and_then(|d| serde_json::from_value(d["ending"].clone()).ok()))
}

/// Where `runs resume` takes a run up ([`resume_point`]).
#[derive(Default)]
pub struct ResumePoint {
    /// The stages not run again, in the order they finished.
    pub stages: Vec<crate::runtime::engine::StageSummary>,
    /// The saga of a run stopped in it, in its order: each compensation that ended with its
    /// end, the others `pending`.
    pub compensated: Vec<crate::runtime::engine::CompensationSummary>,
    /// The run was cancelled, not failed, when it was stopped while compensating.
    pub cancelled: bool,
}

/// Where a resume of `run` starts, or why it cannot, decided before anything is loaded or
/// run. A run stopped in its saga (before its end was recorded) keeps every stage as it
/// ended and runs only the compensations still owed, then ends; any other run keeps its
/// successful stages (and the losers of a decided race) and runs the rest again.
pub fn resume_point(
    conn: &rusqlite::Connection,
    run: &catalog::RunRow,
    plan: &crate::plan::Plan,
    stages: Vec<catalog::StageRow>,
) -> Result<ResumePoint, journal::Error> {
    use crate::runtime::state::StageState;
    journal::not_resumable(conn, run)?;
    let compensations = catalog::compensations(conn, &run.run_id)?;
    // Its saga had begun (not_resumable refuses a run that ended after it).
    let compensating = !compensations.is_empty();
    let losers = race_losers(plan, &stages);
    let mut kept: Vec<(String, crate::runtime::engine::StageSummary)> = stages
        .into_iter()
        .filter_map(|s| {
            let mut summary = s.summary;
            // A racer of a decided race that had not ended on its own (cancelled, or still
            // in flight when the owner died) stays cancelled; one that failed runs again, as
            // any failure does.
            if summary.state != StageState::Success && !compensating {
                if !losers.contains(&summary.stage) || summary.state == StageState::Failed {
                    return None;
                }
                summary.state = StageState::Cancelled;
            }
            Some((s.finished_at.unwrap_or_default(), summary))
        })
        .collect();
    kept.sort_by(|a, b| a.0.cmp(&b.0));
    let succeeded: Vec<&str> = kept
        .iter()
        .filter(|(_, s)| s.state == StageState::Success)
        .map(|(_, s)| s.stage.as_str())
        .collect();
    journal::check_run_data(run, &succeeded)?;
    let cancelled = compensating && saga_ending(conn, &run.run_id)? == Some(RunState::Cancelled);
    Ok(ResumePoint {
        stages: kept.into_iter().map(|(_, s)| s).collect(),
        cancelled,
        // The saga's own list, in its order, pending ones included.
        compensated: if compensating {
            compensations
        } else {
            Vec::new()
        },
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn run_date_is_the_date_in_the_flows_time_zone() {
        let params = super::run_params(
            Default::default(),
            "2026-03-01T23:30:00Z",
            "r",
            "Europe/Berlin",
        );
        assert_eq!(
            params["run_date"],
            rusqlite::types::Value::Text("2026-03-02".into())
        );
        let params = super::run_params(Default::default(), "2026-03-01T23:30:00Z", "r", "UTC");
        assert_eq!(
            params["run_date"],
            rusqlite::types::Value::Text("2026-03-01".into())
        );
    }
}
