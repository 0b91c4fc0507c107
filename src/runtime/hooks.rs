//! Flow hooks: `on_success`, `on_failure` (a failed or cancelled run) and `on_finish` (any
//! run that ran), called after the run reached its terminal state with the run summary as
//! rows, one per stage. A hook that fails is reported and never changes the run's result.

use super::activity::Request;
use super::engine::{Attempt, Progress, Summary, launch_reported};
use super::retry;
use super::state::RunState;
use super::store::{Rows, Store};
use crate::plan::ir::{Action, HookEvent, Plan};
use rusqlite::types::Value;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

/// How long a hook activity without a `timeout` of its own may run: a hook that hangs must
/// not keep its run's process from ending.
const HOOK_TIMEOUT_MS: u64 = 5 * 60 * 1000;


/// How one hook ended.
#[derive(Clone, Debug, PartialEq)]
pub struct HookOutcome {
    pub event: String,
    pub target: String,
    /// Why it failed ([`HookError`]), as it is reported and recorded.
    pub error: Option<String>,
}

/// Why a hook failed. `Display` gives the message users see.
#[derive(Debug)]
pub enum HookError {
    /// Its store (where its arguments are evaluated) could not be made or read.
    Store(super::store::Error),
    /// An `activate(...)` hook could not deliver the rows.
    Activate(super::activate::Error),
    /// An activity hook's last attempt failed.
    Call(super::error::StageError),
}

impl From<super::store::Error> for HookError {
    fn from(e: super::store::Error) -> Self {
        HookError::Store(e)
    }
}

impl From<super::activate::Error> for HookError {
    fn from(e: super::activate::Error) -> Self {
        HookError::Activate(e)
    }
}

impl std::fmt::Display for HookError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HookError::Store(e) => write!(f, "{e}"),
            HookError::Activate(e) => write!(f, "{e}"),
            HookError::Call(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for HookError {}

/// The summary as rows: one per stage, with the run's id, flow and state on each.
pub fn summary_rows(summary: &Summary) -> Rows {
    let columns = [
        "run_id",
        "flow",
        "run_state",
        "stage",
        "state",
        "attempts",
        "rows",
        "duration_ms",
        "error",
    ];
    Rows::untyped(
        columns.iter().map(|c| c.to_string()).collect(),
        summary
            .stages
            .iter()
            .map(|s| {
                vec![
                    Value::Text(summary.run_id.clone()),
                    Value::Text(summary.flow.clone()),
                    Value::Text(summary.state.to_string()),
                    Value::Text(s.stage.clone()),
                    Value::Text(s.state.to_string()),
                    Value::Integer(s.attempts.into()),
                    Value::Integer(s.rows as i64),
                    Value::Integer(s.duration_ms as i64),
                    s.error
                        .as_ref()
                        .map_or(Value::Null, |e| Value::Text(e.to_string())),
                ]
            })
            .collect(),
    )
}

/// Calls the hooks of `plan` that the summary's state selects. `params` are the run's values
/// (hook arguments may use them); activities run in `cwd`. Each activity attempt is reported
/// to `progress` as an attempt of phase `hook`, named by its event, so its log is kept.
pub fn fire(
    plan: &Plan,
    summary: &Summary,
    params: &BTreeMap<String, Value>,
    means: super::means::Means,
    cwd: &Path,
    progress: Option<&dyn Progress>,
) -> Vec<HookOutcome> {
    let wanted = |event: &HookEvent| match event {
        HookEvent::OnSuccess => summary.state == RunState::Success,
        HookEvent::OnFailure => matches!(summary.state, RunState::Failed | RunState::Cancelled),
        // A run continued as a new one has not finished: the last run of the chain fires.
        HookEvent::OnFinish => !matches!(summary.state, RunState::Skipped | RunState::Continued),
    };
    let rows = summary_rows(summary);
    plan.flow
        .hooks
        .iter()
        .enumerate()
        .filter(|(_, h)| wanted(&h.event))
        .map(|(index, hook)| {
            let (target, result) = match &hook.action {
                Action::Activate(activation) => (
                    format!("activate('{}')", activation.target),
                    activate(
                        activation,
                        params,
                        &rows,
                        (cwd, means.launcher),
                        hook.event.as_str(),
                    ),
                ),
                Action::Invoke(invocation) => (
                    invocation.activity.clone(),
                    call(
                        invocation,
                        summary,
                        (hook.event.as_str(), index),
                        params,
                        &rows,
                        (means, progress),
                        cwd,
                    ),
                ),
            };
            HookOutcome {
                event: hook.event.to_string(),
                target,
                error: result.err().map(|e| e.to_string()),
            }
        })
        .collect()
}

/// An `activate(...)` hook: its options evaluated over the run's values, then the rows
/// delivered.
fn activate(
    activation: &crate::plan::ir::Activation,
    params: &BTreeMap<String, Value>,
    rows: &Rows,
    (cwd, launcher): (&Path, &dyn super::activity::Launcher),
    label: &str,
) -> Result<(), HookError> {
    let mut store = Store::in_memory(cwd)?;
    let activation = super::activate::evaluated(activation, &mut store, params)?;
    Ok(launcher.deliver(&activation, rows, cwd, label)?)
}

/// An activity hook, with its activity's retry policy; the rows go to its stdin.
fn call(
    invocation: &crate::plan::ir::Invocation,
    summary: &Summary,
    (event, index): (&str, usize),
    params: &BTreeMap<String, Value>,
    rows: &Rows,
    (means, progress): (super::means::Means, Option<&dyn Progress>),
    cwd: &Path,
) -> Result<(), HookError> {
    let mut store = Store::in_memory(cwd)?;
    let args = super::engine::bind_one(&mut store, &invocation.bindings, params, None)?;
    let (argv, mut env) = super::activity::command_line(&mut store, invocation, &args)?;
    env.extend([
        ("WVFLOW_RUN_ID".into(), summary.run_id.clone()),
        ("WVFLOW_FLOW".into(), summary.flow.clone()),
        ("WVFLOW_RUN_STATE".into(), summary.state.to_string()),
        ("WVFLOW_HOOK".into(), event.to_string()),
    ]);
    let done = retry::run(
        &invocation.retry,
        None,
        means.clock,
        means.random,
        |attempt| {
            let which = Attempt {
                stage: event,
                phase: crate::runtime::state::Phase::Hook,
                step: index,
                item: None,
                number: attempt,
            };
            launch_reported(
                means.launcher,
                &Request {
                    activity: invocation.activity.clone(),
                    command: invocation.command.clone(),
                    args: args.clone(),
                    argv: argv.clone(),
                    env: env
                        .iter()
                        .cloned()
                        .chain([("WVFLOW_ATTEMPT".into(), attempt.to_string())])
                        .collect(),
                    input: rows.clone().into(),
                    cwd: cwd.to_path_buf(),
                    timeout: Some(Duration::from_millis(
                        invocation.timeout_ms.unwrap_or(HOOK_TIMEOUT_MS),
                    )),
                    heartbeat: None,
                    cancel: Arc::new(AtomicBool::new(false)),
                },
                &which,
                progress,
            )
        },
    );
    done.result.map(|_| ()).map_err(HookError::Call)
}
