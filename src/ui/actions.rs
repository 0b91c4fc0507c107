//! What the page may change: start a flow, cancel, resume, signal. A run started or resumed
//! here is a `wvflow` process of its own (its own process group, as the scheduler starts
//! them), so it goes on if the dashboard stops, and records itself in the run store like any
//! other run.

use super::flows::compile;
use super::http::{Reply, Site, error};
use crate::runtime::flow_call::bind_json_args;
use crate::runtime::runs::{catalog, journal, schema};
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
    let Some(flows) = compiled.session.flows() else {
        return error(
            409,
            format!("the workspace does not check:\n{}", compiled.diagnostics),
        );
    };
    let Some(plan) = flows.plan(flow, None) else {
        return error(404, format!("the workspace has no flow `{flow}`"));
    };
    let given = match body.get("args") {
        None | Some(serde_json::Value::Null) => serde_json::Map::new(),
        Some(serde_json::Value::Object(args)) => args.clone(),
        Some(_) => return error(400, "`args` must be an object of argument values"),
    };
    let params = match bind_json_args(&plan, &given) {
        Ok(params) => params,
        Err(e) => return error(400, e),
    };
    // The arguments travel as JSON in their type's form (`true`, `"90s"`), bound again the
    // same way by the process: no literal text to print and read back.
    let args: serde_json::Map<String, serde_json::Value> = params
        .iter()
        .map(|(k, v)| {
            let ty = plan
                .flow
                .params
                .iter()
                .find(|p| &p.name == k)
                .map_or(crate::value::ValueType::Any, |p| p.ty);
            (k.clone(), crate::value::json(v, ty))
        })
        .collect();
    let args = serde_json::Value::Object(args).to_string();
    // One argument of a process holds at most 128 KiB (Linux's MAX_ARG_STRLEN).
    if args.len() >= 128 * 1024 {
        return error(
            413,
            format!(
                "the arguments take {} KiB; a run's arguments are at most 128 KiB",
                args.len().div_ceil(1024)
            ),
        );
    }
    let mut command = wvflow();
    command
        .arg("run")
        .arg("--db")
        .arg(&site.db)
        .arg("--args")
        .arg(args)
        .arg("--")
        .arg(&site.workspace)
        .arg(&plan.flow.name);
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

/// The run must exist: a 404 otherwise, and no run store is made for asking.
fn known(site: &Site, id: &str) -> Result<(), Reply> {
    let conn = site
        .db
        .is_file()
        .then(|| schema::open(&site.db).ok())
        .flatten()
        .ok_or_else(|| error(404, format!("no run `{id}`")))?;
    match catalog::run_in(&conn, id) {
        Ok(Some(_)) => Ok(()),
        Ok(None) => Err(error(404, format!("no run `{id}`"))),
        Err(e) => Err(error(500, e)),
    }
}

/// `POST /api/runs/RUN/cancel`: asks the run's owner to cancel it, as `runs cancel` does.
pub fn cancel(site: &Site, id: &str) -> Reply {
    if let Err(reply) = known(site, id) {
        return reply;
    }
    match journal::request(&site.db, id, journal::Request::Cancel) {
        Ok(state) => Reply::Json(
            202,
            json!({ "run_id": id, "was": state, "requested": "cancel" }),
        ),
        Err(e) => error(409, e),
    }
}

/// `POST /api/runs/RUN/resume`: `wvflow runs resume RUN` in a process of its own.
pub fn resume(site: &Site, id: &str) -> Reply {
    if let Err(reply) = known(site, id) {
        return reply;
    }
    if let Some(refused) = not_resumable(site, id) {
        return refused;
    }
    let mut command = wvflow();
    command
        .arg("runs")
        .arg("--db")
        .arg(&site.db)
        .arg("resume")
        .arg("--")
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

/// Why the run cannot be resumed, decided here as `runs resume` decides it before it runs
/// anything: the page gets the reason itself, not what a process printed.
fn not_resumable(site: &Site, id: &str) -> Option<Reply> {
    let refused = |e: &dyn std::fmt::Display| Some(error(400, e.to_string()));
    let conn = match schema::open(&site.db) {
        Ok(conn) => conn,
        Err(e) => return refused(&e),
    };
    let run = match catalog::run_in(&conn, id) {
        Ok(Some(run)) => run,
        Ok(None) => return Some(error(404, format!("no run `{id}`"))),
        Err(e) => return refused(&e),
    };
    let plan_and_stages = catalog::plan_of(&conn, id)
        .and_then(|plan| Ok((plan, catalog::stages(&conn, id)?)));
    match plan_and_stages {
        Ok((plan, stages)) => crate::runtime::runs::resume_point(&conn, &run, &plan, stages)
            .err()
            .and_then(|e| refused(&e)),
        Err(e) => refused(&e),
    }
}

/// `POST /api/runs/RUN/signal` with `{"name": ..., "value": ...}` (value default `true`),
/// the value read by the signal's type: 400 when it is not one.
pub fn signal(site: &Site, id: &str, body: &serde_json::Value) -> Reply {
    if let Err(reply) = known(site, id) {
        return reply;
    }
    let Some(name) = body.get("name").and_then(|n| n.as_str()) else {
        return error(400, "which signal? (`name`)");
    };
    let given = body
        .get("value")
        .map(crate::runtime::runs::SignalInput::Json);
    match crate::runtime::runs::send_signal(&site.db, id, name, given) {
        Ok(sent) => Reply::Json(
            202,
            json!({ "run_id": id, "signal": name, "value": sent.json() }),
        ),
        // A value of another type is the request's fault; the rest is the run's state.
        Err(e @ crate::runtime::runs::SignalError::WrongValue { .. }) => error(400, e.to_string()),
        Err(e) => error(409, e.to_string()),
    }
}

/// This very program, to start runs with; its image in memory when its file was replaced
/// (an upgrade while the dashboard runs).
fn wvflow() -> Command {
    let exe = match std::env::current_exe() {
        Ok(path) if path.exists() => path,
        _ => "/proc/self/exe".into(),
    };
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
        // What could be refused was refused before the process started (the workspace, the
        // flow, the arguments, a run with nothing to resume): a process that ends without
        // recording a run failed, and all it printed is shown.
        if let Some((code, text)) = ended.lock().ok().and_then(|e| e.clone()) {
            let code = code.map_or("no exit code".into(), |c| format!("exit code {c}"));
            let text = text.trim();
            let said = if text.is_empty() { String::new() } else { format!(":\n{text}") };
            return Err(error(
                500,
                format!("the process ended ({code}) without recording a run{said}"),
            ));
        }
        if Instant::now() > deadline {
            // A run that did not start in time is stopped, so that trying again does not
            // make two.
            // SAFETY: kill(2) on the process group this function started.
            unsafe {
                libc::kill(-(pid as i32), libc::SIGTERM);
            }
            return Err(error(
                504,
                "the run did not start within 15 s; it was stopped",
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
