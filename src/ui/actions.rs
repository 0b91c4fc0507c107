//! What the page may change: start a flow, cancel, resume, signal. A run started or resumed
//! here is a `wvflow` process of its own (its own process group, as the scheduler starts
//! them), so it goes on if the dashboard stops, and records itself in the run store like any
//! other run.

use super::flows::compile;
use super::http::{Reply, Site, error};
use crate::check::Index;
use crate::plan::lower;
use crate::runtime::flow_call::bind_params;
use crate::runtime::launch::call_text;
use crate::runtime::runs::{catalog, journal, schema};
use crate::runtime::store::{from_json, to_json};
use crate::value::ValueType;
use rusqlite::types::Value;
use serde_json::json;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a started process has to record its run before the page is told it failed.
const START_WAIT: Duration = Duration::from_secs(15);

/// `POST /api/flows/FLOW/runs` with `{"args": {"name": value, ...}}`: starts a run of the
/// flow's newest version and answers its id. Arguments are bound as `wvflow run` binds them,
/// so a wrong one is refused here, before anything runs.
pub fn start(site: &Site, flow: &str, body: &serde_json::Value) -> Reply {
    let compiled = compile(site);
    if !compiled.ok {
        return error(
            409,
            format!("the workspace does not check:\n{}", compiled.diagnostics),
        );
    }
    let index = Index::new(&compiled.workspace);
    let Some(def) = index.flow(flow, None) else {
        return error(404, format!("the workspace has no flow `{flow}`"));
    };
    let plan = lower(&compiled.workspace, &index, def);
    let given = match body.get("args") {
        None | Some(serde_json::Value::Null) => serde_json::Map::new(),
        Some(serde_json::Value::Object(args)) => args.clone(),
        Some(_) => return error(400, "`args` must be an object of argument values"),
    };
    let mut args = Vec::new();
    for (name, value) in &given {
        let ty = plan
            .flow
            .params
            .iter()
            .find(|p| &p.name == name)
            .map(|p| p.ty);
        match argument(ty, value) {
            Ok(value) => args.push((Some(name.clone()), value)),
            Err(e) => return error(400, format!("argument `{name}`: {e}")),
        }
    }
    let params = match bind_params(&plan, &args) {
        Ok(params) => params,
        Err(e) => return error(400, e),
    };
    let call = call_text(&plan.flow.name, None, &params);
    let mut command = wvflow();
    command
        .arg("run")
        .arg(&site.workspace)
        .arg(call)
        .arg("--db")
        .arg(&site.db);
    let since = schema::now_ms();
    let recorded = |conn: &rusqlite::Connection, pid: u32| {
        catalog::run_started_by(conn, pid, since)
            .ok()
            .flatten()
            .map(|r| r.run_id)
    };
    match spawn(command, site, &recorded) {
        Ok(run_id) => Reply::Json(201, json!({ "run_id": run_id })),
        Err(reply) => reply,
    }
}

/// A form's value as `wvflow run` reads the argument: JSON numbers, booleans, texts and null;
/// a duration may be a text such as `90s` or milliseconds.
fn argument(ty: Option<ValueType>, value: &serde_json::Value) -> Result<Value, String> {
    match (ty, value) {
        (Some(ValueType::Duration), serde_json::Value::String(text)) => {
            humantime::parse_duration(text.trim())
                .map(|d| Value::Integer(d.as_millis().min(i64::MAX as u128) as i64))
                .map_err(|e| format!("`{text}` is not a duration such as 90s or 2h: {e}"))
        }
        (_, serde_json::Value::Array(_) | serde_json::Value::Object(_)) => {
            Err("must be a number, a boolean, a text or null".into())
        }
        (_, value) => Ok(from_json(value)),
    }
}

/// `POST /api/runs/RUN/cancel`: asks the run's owner to cancel it, as `runs cancel` does.
pub fn cancel(site: &Site, id: &str) -> Reply {
    match journal::request(&site.db, id, "cancel", None, None) {
        Ok(state) => Reply::Json(
            202,
            json!({ "run_id": id, "was": state.as_str(), "requested": "cancel" }),
        ),
        Err(e) => error(409, e),
    }
}

/// `POST /api/runs/RUN/resume`: `wvflow runs resume RUN` in a process of its own.
pub fn resume(site: &Site, id: &str) -> Reply {
    let mut command = wvflow();
    command
        .arg("runs")
        .arg("--db")
        .arg(&site.db)
        .arg("resume")
        .arg(id);
    // The resume has taken the run over once the run names its process as owner.
    let recorded = |conn: &rusqlite::Connection, pid: u32| {
        catalog::run_in(conn, id)
            .ok()
            .flatten()
            .filter(|r| r.owner.pid == i64::from(pid))
            .map(|r| r.run_id)
    };
    match spawn(command, site, &recorded) {
        Ok(run_id) => Reply::Json(202, json!({ "run_id": run_id })),
        Err(reply) => reply,
    }
}

/// `POST /api/runs/RUN/signal` with `{"name": ..., "value": ...}` (value default `true`).
pub fn signal(site: &Site, id: &str, body: &serde_json::Value) -> Reply {
    let Some(name) = body.get("name").and_then(|n| n.as_str()) else {
        return error(400, "which signal? (`name`)");
    };
    let value = body.get("value").map_or(Value::Integer(1), from_json);
    match crate::runtime::runs::send_signal(&site.db, id, name, &value) {
        Ok(()) => Reply::Json(
            202,
            json!({ "run_id": id, "signal": name, "value": to_json(&value) }),
        ),
        Err(e) => error(409, e),
    }
}

/// This very program, to start runs with.
fn wvflow() -> Command {
    let exe = std::env::current_exe().unwrap_or_else(|_| "wvflow".into());
    let mut command = Command::new(exe);
    command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    // Its own process group: a Ctrl-C meant for the dashboard does not reach the run.
    std::os::unix::process::CommandExt::process_group(&mut command, 0);
    command
}

/// How a started process ended: its exit code and what it wrote to stderr.
type Ended = (Option<i32>, String);

/// Starts `command` and waits until `recorded` finds the run the process owns: its id.
/// A process that ends first failed to start; what it printed is the error.
fn spawn(
    mut command: Command,
    site: &Site,
    recorded: &dyn Fn(&rusqlite::Connection, u32) -> Option<String>,
) -> Result<String, Reply> {
    let mut child = command
        .spawn()
        .map_err(|e| error(500, format!("cannot start wvflow: {e}")))?;
    let pid = child.id();
    let mut stderr = child.stderr.take();
    // The process is waited for by a thread of its own, so it never lingers as a zombie.
    let ended: Arc<Mutex<Option<Ended>>> = Arc::default();
    let slot = ended.clone();
    std::thread::spawn(move || {
        let mut text = String::new();
        if let Some(stderr) = stderr.as_mut() {
            let _ = std::io::Read::read_to_string(stderr, &mut text);
        }
        let code = child.wait().ok().and_then(|s| s.code());
        if let Ok(mut slot) = slot.lock() {
            *slot = Some((code, text));
        }
    });
    let deadline = Instant::now() + START_WAIT;
    loop {
        if site.db.is_file()
            && let Ok(conn) = schema::open(&site.db)
            && let Some(run_id) = recorded(&conn, pid)
        {
            return Ok(run_id);
        }
        if let Some((code, text)) = ended.lock().ok().and_then(|e| e.clone()) {
            if code == Some(0) || text.trim().is_empty() {
                return Err(error(500, "the process ended without recording a run"));
            }
            return Err(error(400, text.trim().to_string()));
        }
        if Instant::now() > deadline {
            return Err(error(504, "the run did not start within 15 s"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
