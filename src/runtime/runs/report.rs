//! A run as one JSON document: what `wvflow runs show --format json` prints and the
//! dashboard's HTTP API serves, so both always agree.

use super::catalog::{self, RunRow, StageRow};
use super::schema::rfc3339;
use crate::runtime::engine::CompensationSummary;
use rusqlite::{Connection, params};
use serde_json::{Value, json};

/// What the store knows of a run beyond its row.
pub struct RunDetail {
    pub stages: Vec<StageRow>,
    pub compensations: Vec<CompensationSummary>,
    pub children: Vec<RunRow>,
    pub jumps: Vec<RunRow>,
    /// The run that continues this one (`continue_as_new`).
    pub continued_as: Option<RunRow>,
    /// How each flow hook ended, in the order they ran.
    pub hooks: Vec<Value>,
    /// The signals sent to the run, in order, each typed by the signal's declared type.
    pub signals: Vec<SentSignal>,
}

/// A signal sent to a run, as `runs show` shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct SentSignal {
    pub name: String,
    pub value: crate::value::Typed,
    pub at: i64,
}

impl RunDetail {
    pub fn read(conn: &Connection, run: &RunRow) -> Result<RunDetail, catalog::Error> {
        Ok(RunDetail {
            stages: catalog::stages(conn, &run.run_id)?,
            compensations: catalog::compensations(conn, &run.run_id)?,
            children: catalog::related(conn, &run.run_id, "parent_run")?,
            jumps: catalog::related(conn, &run.run_id, "jumped_from")?,
            continued_as: catalog::related(conn, &run.run_id, "continued_from")?
                .into_iter()
                .next(),
            hooks: hooks(conn, &run.run_id)?,
            signals: signals(conn, &run.run_id)?,
        })
    }

    /// The run as one JSON object: the fields of `wvflow run --format json`, and more.
    pub fn json(&self, run: &RunRow) -> Value {
        let brief = |runs: &[RunRow]| -> Vec<Value> {
            runs.iter()
                .map(|r| {
                    json!({
                        "run_id": r.run_id, "flow": r.flow, "state": r.display_state(),
                        "parent_stage": r.parent_stage,
                    })
                })
                .collect()
        };
        json!({
            "run_id": run.run_id,
            "flow": run.flow,
            "version": run.version,
            "state": run.display_state(),
            "reason": run.reason,
            "args": run.args,
            "run_time": run.run_time,
            "started_at": run.started_at.map(rfc3339),
            "finished_at": run.finished_at.map(rfc3339),
            "duration_ms": run.duration_ms(super::schema::now_ms()),
            "owner": { "pid": run.owner.pid, "host": run.owner.host },
            "resumes": run.resumes,
            "parent_run": run.parent_run,
            "parent_stage": run.parent_stage,
            "jumped_from": run.jumped_from,
            "continued_from": run.continued_from,
            "continued_as": self.continued_as.as_ref().map(|r| brief(std::slice::from_ref(r))[0].clone()),
            "stages": self.stages,
            "compensations": self.compensations,
            "hooks": self.hooks,
            "signals": self.signals.iter().map(|s| json!({
                "name": s.name, "value": s.value.json(), "at": rfc3339(s.at),
            })).collect::<Vec<_>>(),
            "children": brief(&self.children),
            "jumps": brief(&self.jumps),
        })
    }
}

/// A run as one line of `wvflow runs list --format json`.
pub fn brief(run: &RunRow) -> Value {
    json!({
        "run_id": run.run_id,
        "flow": run.flow,
        "state": run.display_state(),
        "started_at": run.started_at.map(rfc3339),
        "finished_at": run.finished_at.map(rfc3339),
        "duration_ms": run.duration_ms(super::schema::now_ms()),
        "run_time": run.run_time,
    })
}

/// The signals sent to a run, typed by its plan (a value of a signal the plan does not know
/// is shown as stored).
fn signals(conn: &Connection, run_id: &str) -> Result<Vec<SentSignal>, catalog::Error> {
    let sent = catalog::signals(conn, run_id)?;
    if sent.is_empty() {
        return Ok(Vec::new());
    }
    let plan = catalog::plan_of(conn, run_id).ok();
    Ok(sent
        .into_iter()
        .map(|s| SentSignal {
            value: crate::value::Typed {
                ty: plan
                    .as_ref()
                    .and_then(|p| super::signal_type(p, &s.name))
                    .unwrap_or_default(),
                value: s.value,
            },
            name: s.name,
            at: s.at,
        })
        .collect())
}

/// How the run's hooks ended: `{event, target, error}` each, from the event log.
pub fn hooks(conn: &Connection, run_id: &str) -> Result<Vec<Value>, catalog::Error> {
    let mut statement = conn
        .prepare(
            "SELECT detail FROM wvflow_events
             WHERE run_id = ?1 AND kind IN ('hook_finished', 'hook_failed') ORDER BY seq",
        )
        ?;
    let rows = statement
        .query_map(params![run_id], |r| r.get::<_, Option<String>>(0))
        ?;
    let mut hooks = Vec::new();
    for detail in rows {
        let detail = detail?.unwrap_or_default();
        hooks.push(serde_json::from_str(&detail).unwrap_or(Value::Null));
    }
    Ok(hooks)
}
