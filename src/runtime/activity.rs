//! Running an activity: a program with an argument vector (no shell), or `sh -c` with the
//! parameters as `WV_<NAME>` environment variables (never spliced into the text). Input rows go
//! to stdin as NDJSON; each stdout line that is a JSON object becomes a row (stdout goes to a
//! temporary file as it comes, never whole into memory). The attempt runs in its own process
//! group, so a timeout kills everything it started.

use super::input::Input;
use super::output::Output;
use super::retry::Outcome;
use super::store::Store;
use crate::plan::ir::Invocation;
use crate::plan::ir::{ArgvItem, Command};
use crate::value::{self, ValueType};
use rusqlite::types::Value;
use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;


mod supervise;

/// Why one attempt of an activity failed, with what each way of failing knows. `Display`
/// gives the attempt's error as runs show it: the end of stderr when the program wrote one.
#[derive(Clone, Debug, PartialEq)]
pub enum AttemptFailure {
    /// The program exited with a code other than 0; `tail` is the end of its stderr.
    Exited {
        activity: String,
        code: i32,
        tail: String,
    },
    /// The program was ended by a signal (its number, when the system says).
    Signalled {
        activity: String,
        signal: Option<i32>,
        tail: String,
    },
    /// The attempt ran past its timeout and was stopped.
    TimedOut { after: Duration, tail: String },
    /// The program gave no sign of life for its heartbeat and was stopped.
    NoHeartbeat { after: Duration, tail: String },
    /// `exec()` with no program.
    NoProgram,
    /// The program could not be started.
    CouldNotStart { activity: String, message: String },
    /// The program exited with 0, but its output could not be kept (`why`), or is not rows
    /// (`scan`).
    Output {
        activity: String,
        why: Option<String>,
        scan: Option<super::output::Error>,
    },
    /// The program's end could not be waited for.
    Lost { activity: String },
    /// A failure said in the launcher's own words (a scripted launcher; a child run that did
    /// not succeed), with the exit code when there is one.
    Said {
        message: String,
        exit_code: Option<i32>,
    },
}

impl AttemptFailure {
    /// The exit code the attempt ended with, when it exited with one (0 for output that could
    /// not be kept).
    pub fn exit_code(&self) -> Option<i32> {
        match self {
            AttemptFailure::Exited { code, .. } => Some(*code),
            AttemptFailure::Output { .. } => Some(0),
            AttemptFailure::Said { exit_code, .. } => *exit_code,
            _ => None,
        }
    }
}

impl std::fmt::Display for AttemptFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // What stopped the attempt, then the end of stderr when there is one.
        let stopped = |f: &mut std::fmt::Formatter<'_>, why: String, tail: &str| {
            if tail.is_empty() {
                f.write_str(&why)
            } else {
                write!(f, "{why}: {tail}")
            }
        };
        match self {
            AttemptFailure::Exited { tail, .. } | AttemptFailure::Signalled { tail, .. }
                if !tail.is_empty() =>
            {
                f.write_str(tail)
            }
            AttemptFailure::Exited { activity, code, .. } => {
                write!(f, "`{activity}` exited with code {code}")
            }
            AttemptFailure::Signalled { activity, .. } => {
                write!(f, "`{activity}` exited with a signal")
            }
            AttemptFailure::TimedOut { after, tail } => stopped(
                f,
                format!("timed out after {}", crate::human::duration(*after)),
                tail,
            ),
            AttemptFailure::NoHeartbeat { after, tail } => stopped(
                f,
                format!("no heartbeat for {}", crate::human::duration(*after)),
                tail,
            ),
            AttemptFailure::NoProgram => f.write_str("exec() names no program"),
            AttemptFailure::CouldNotStart { activity, message } => {
                write!(f, "cannot start `{activity}`: {message}")
            }
            AttemptFailure::Output {
                scan: Some(scan), ..
            } => write!(f, "{scan}"),
            AttemptFailure::Output { activity, why, .. } => write!(
                f,
                "cannot keep the output of `{activity}`: {}",
                why.as_deref().unwrap_or("the temporary file was lost")
            ),
            AttemptFailure::Lost { activity } => write!(f, "lost track of `{activity}`"),
            AttemptFailure::Said { message, .. } => f.write_str(message),
        }
    }
}

impl std::error::Error for AttemptFailure {}
/// One attempt of one activity call.
#[derive(Clone, Debug)]
pub struct Request {
    pub activity: String,
    pub command: Command,
    /// Parameter values, by activity parameter name.
    pub args: BTreeMap<String, Value>,
    /// The words an `exec` starts with, each value in its type's text (see [`command_line`]).
    pub argv: Vec<String>,
    /// `WV_<NAME>` of each parameter, `WVFLOW_RUN_ID`, `WVFLOW_FLOW`, `WVFLOW_STAGE`, ...
    pub env: Vec<(String, String)>,
    /// Input rows, written to stdin as NDJSON one row at a time (shared, not copied).
    pub input: Input,
    pub cwd: PathBuf,
    pub timeout: Option<Duration>,
    /// Fail when the activity writes nothing to stderr for this long.
    pub heartbeat: Option<Duration>,
    /// Set when the run is cancelled: the attempt's process group is killed.
    pub cancel: Arc<AtomicBool>,
}

/// Starts activities; tests replace it with a scripted one.
pub trait Launcher: Send + Sync {
    /// Runs one attempt, telling `events` what happens meanwhile.
    fn launch(&self, request: &Request, events: &dyn Fn(AttemptEvent)) -> Outcome<Output>;

    /// Delivers the rows of an `activate(...)` (see [`super::activate::deliver`]); a test's
    /// launcher delivers nothing.
    fn deliver(
        &self,
        activation: &crate::plan::ir::Activation,
        rows: &super::store::Rows,
        cwd: &std::path::Path,
        label: &str,
    ) -> Result<(), super::activate::Error> {
        super::activate::deliver(activation, rows, cwd, label)
    }
}

/// What a running attempt reports.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum AttemptEvent<'a> {
    /// The process exists, with this id (the run store records it).
    Spawned(u32),
    /// More of the attempt's log: its stderr, and its stdout lines that are not rows, as
    /// they come (at most [`LOG_CAP`] bytes an attempt).
    Logged(&'a str),
}

/// How much of an attempt's log is kept: the first 256 KiB, then a line saying how much
/// was not.
pub const LOG_CAP: usize = 256 * 1024;

/// Runs real processes.
pub struct ProcessLauncher;

/// The words of an `exec`, and the environment variables of a call (`WV_<NAME>`, ...).
pub type CommandLine = (Vec<String>, Vec<(String, String)>);

/// The words of an `exec` and the `WV_<NAME>` variables of one call: every value as its
/// declared type's text (`true`, `2.0`, `90s`), and `exec` arguments that are expressions
/// (`n + 1`) evaluated over the call's arguments, never passed as their text.
pub fn command_line(
    store: &mut Store,
    invocation: &Invocation,
    args: &BTreeMap<String, Value>,
) -> Result<CommandLine, super::store::Error> {
    let ty = |param: &str| {
        invocation
            .bindings
            .iter()
            .find(|b| b.param == param)
            .map_or(ValueType::Any, |b| b.ty)
    };
    // A value given in another form of its type ('1h 30m' for a duration) is normalized.
    let args: BTreeMap<String, Value> = args
        .iter()
        .map(|(name, v)| {
            let v = value::stored(v.clone(), ty(name)).unwrap_or_else(|_| v.clone());
            (name.clone(), v)
        })
        .collect();
    let args = &args;
    let env = args
        .iter()
        .map(|(name, v)| {
            (
                format!("WV_{}", name.to_ascii_uppercase()),
                value::text(v, ty(name)),
            )
        })
        .collect();
    let argv = match &invocation.command {
        Command::Shell { .. } => Vec::new(),
        Command::Exec { argv } => argv
            .iter()
            .map(|item| {
                Ok(match item {
                    ArgvItem::Literal(s) => s.clone(),
                    ArgvItem::Param(p) => args
                        .get(p)
                        .map(|v| value::text(v, ty(p)))
                        .unwrap_or_default(),
                    ArgvItem::Expr(e) => {
                        let rows = store.query(&format!("SELECT {}", e.sql), args, None)?;
                        let v = rows.first_value();
                        value::text(v.unwrap_or(&Value::Null), e.ty)
                    }
                })
            })
            .collect::<Result<_, super::store::Error>>()?,
    };
    Ok((argv, env))
}

impl Launcher for ProcessLauncher {
    fn launch(&self, request: &Request, events: &dyn Fn(AttemptEvent)) -> Outcome<Output> {
        let (program, args): (&OsStr, Vec<&OsStr>) = match &request.command {
            Command::Exec { .. } => {
                let Some((program, rest)) = request.argv.split_first() else {
                    return Outcome::Failure(AttemptFailure::NoProgram);
                };
                (program.as_ref(), rest.iter().map(|a| a.as_ref()).collect())
            }
            Command::Shell { text } => ("sh".as_ref(), vec!["-c".as_ref(), text.as_ref()]),
        };
        let env = request.env.iter().map(|(k, v)| (k.as_str(), v.as_str()));
        let mut child = match super::spawn::spawn(program, &args, env, &request.cwd) {
            Ok(child) => child,
            Err(e) => {
                return Outcome::Failure(AttemptFailure::CouldNotStart {
                    activity: request.activity.clone(),
                    message: e.to_string(),
                });
            }
        };
        // Recorded as soon as it exists: a resume or a stale-run cancel stops its group.
        events(AttemptEvent::Spawned(child.id()));
        supervise::supervise(&mut child, request, events)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(command: Command, timeout_ms: Option<u64>) -> Request {
        Request {
            activity: "test".into(),
            command,
            args: [(
                "name".to_string(),
                Value::Text("it's; $(rm -rf /) `x`".into()),
            )]
            .into_iter()
            .collect(),
            argv: Vec::new(),
            env: vec![
                ("WVFLOW_STAGE".into(), "s".into()),
                ("WV_NAME".into(), "it's; $(rm -rf /) `x`".into()),
            ],
            input: crate::runtime::store::Rows::untyped(
                vec!["n".into()],
                vec![vec![Value::Integer(1)], vec![Value::Integer(2)]],
            )
            .into(),
            cwd: std::env::temp_dir(),
            timeout: timeout_ms.map(Duration::from_millis),
            heartbeat: None,
            cancel: Arc::default(),
        }
    }

    #[test]
    fn shell_parameters_arrive_as_environment_and_stdout_objects_become_rows() {
        let cmd = Command::Shell {
            text: r#"while read -r line; do printf '%s\n' "$line"; done; printf '{"name": "%s", "stage": "%s"}\nnot json\n' "$WV_NAME" "$WVFLOW_STAGE""#.into(),
        };
        let Outcome::Success(output) = ProcessLauncher.launch(&request(cmd, None), &|_| {}) else {
            panic!()
        };
        let rows = output.into_rows().unwrap();
        assert_eq!(rows.columns, ["n", "name", "stage"]);
        assert_eq!(rows.values.len(), 3);
        assert_eq!(
            rows.values[2][1],
            Value::Text("it's; $(rm -rf /) `x`".into())
        );
    }

    #[test]
    fn exec_passes_arguments_literally() {
        let invocation = Invocation {
            activity: "test".into(),
            command: Command::Exec {
                argv: vec![
                    ArgvItem::Literal("printf".into()),
                    ArgvItem::Literal("{\"arg\": \"%s\"}\\n".into()),
                    ArgvItem::Param("name".into()),
                ],
            },
            bindings: Vec::new(),
            retry: crate::plan::ir::RetryPolicy {
                attempts: 1,
                initial_delay_ms: 0,
                backoff: crate::retry_rule::Backoff::Constant,
                coefficient: 1.0,
                max_delay_ms: None,
                jitter: false,
                non_retryable: Vec::new(),
            },
            timeout_ms: None,
        };
        let mut request = request(invocation.command.clone(), None);
        let mut store = Store::in_memory(&std::env::temp_dir()).unwrap();
        (request.argv, _) = command_line(&mut store, &invocation, &request.args).unwrap();
        let Outcome::Success(output) = ProcessLauncher.launch(&request, &|_| {}) else {
            panic!()
        };
        assert_eq!(
            output.into_rows().unwrap().values,
            [vec![Value::Text("it's; $(rm -rf /) `x`".into())]]
        );
    }

    #[test]
    fn failures_keep_the_exit_code_and_the_stderr_tail() {
        let cmd = Command::Shell {
            text: "echo first >&2; echo 'disk full' >&2; exit 3".into(),
        };
        let outcome = ProcessLauncher.launch(&request(cmd, None), &|_| {});
        assert!(
            matches!(&outcome, Outcome::Failure(error) if error.exit_code() == Some(3) && error.to_string() == "first\ndisk full"),
            "{outcome:?}"
        );
    }

    #[test]
    fn a_timeout_kills_the_whole_process_group() {
        let marker = std::env::temp_dir().join(format!("wvflow-orphan-{}", std::process::id()));
        let _ = std::fs::remove_file(&marker);
        // The child starts a grandchild that would write the marker after a second.
        let cmd = Command::Shell {
            text: format!("(sleep 1; touch {}) & sleep 30", marker.display()),
        };
        let started = std::time::Instant::now();
        let outcome = ProcessLauncher.launch(&request(cmd, Some(200)), &|_| {});
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(
            matches!(&outcome, Outcome::Failure(error @ AttemptFailure::TimedOut { .. }) if error.exit_code().is_none() && error.to_string().starts_with("timed out after 200ms")),
            "{outcome:?}"
        );
        std::thread::sleep(Duration::from_millis(1500));
        assert!(!marker.exists(), "the grandchild survived the timeout");
    }
}
