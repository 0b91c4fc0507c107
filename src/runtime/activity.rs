//! Running an activity: a program with an argument vector (no shell), or `sh -c` with the
//! parameters as `WV_<NAME>` environment variables (never spliced into the text). Input rows go
//! to stdin as NDJSON; each stdout line that is a JSON object becomes a row (stdout goes to a
//! temporary file as it comes, never whole into memory). The attempt runs in its own process
//! group, so a timeout kills everything it started.

use super::input::Input;
use super::output::{Output, Spool, Spooled};
use super::retry::Outcome;
use super::store::Store;
use crate::plan::ir::Invocation;
use crate::plan::ir::{ArgvItem, Command};
use crate::value::{self, ValueType};
use rusqlite::types::Value;
use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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

/// An attempt's log as it grows: what was handed on, and what was cut.
#[derive(Default)]
struct Log {
    text: String,
    handed_on: usize,
    cut: usize,
}

impl Log {
    fn push(&mut self, prefix: &str, line: &[u8]) {
        let line = String::from_utf8_lossy(line);
        let line = line.trim_end_matches(['\n', '\r']);
        let wanted = prefix.len() + line.len() + 1;
        if self.text.len() + wanted > LOG_CAP {
            self.cut += wanted;
            return;
        }
        self.text.push_str(prefix);
        self.text.push_str(line);
        self.text.push('\n');
    }

    /// What was added since the last call.
    fn news(&mut self) -> Option<String> {
        let news = self
            .text
            .get(self.handed_on..)
            .filter(|n| !n.is_empty())?
            .to_string();
        self.handed_on = self.text.len();
        Some(news)
    }
}

fn hand_on(log: &Mutex<Log>, events: &dyn Fn(AttemptEvent)) {
    let news = log.lock().ok().and_then(|mut log| log.news());
    if let Some(news) = news {
        events(AttemptEvent::Logged(&news));
    }
}

/// Runs real processes.
pub struct ProcessLauncher;

/// How much of stderr is kept for the stage's error.
const STDERR_TAIL: usize = 2000;

/// The words of an `exec`, and the environment variables of a call (`WV_<NAME>`, ...).
pub type CommandLine = (Vec<String>, Vec<(String, String)>);

/// The words of an `exec` and the `WV_<NAME>` variables of one call: every value as its
/// declared type's text (`true`, `2.0`, `90s`), and `exec` arguments that are expressions
/// (`n + 1`) evaluated over the call's arguments, never passed as their text.
pub fn command_line(
    store: &mut Store,
    invocation: &Invocation,
    args: &BTreeMap<String, Value>,
) -> Result<CommandLine, String> {
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
            .collect::<Result<_, String>>()?,
    };
    Ok((argv, env))
}

impl Launcher for ProcessLauncher {
    fn launch(&self, request: &Request, events: &dyn Fn(AttemptEvent)) -> Outcome<Output> {
        let (program, args): (&OsStr, Vec<&OsStr>) = match &request.command {
            Command::Exec { .. } => {
                let Some((program, rest)) = request.argv.split_first() else {
                    return Outcome::Failure {
                        error: "exec() names no program".into(),
                        exit_code: None,
                    };
                };
                (program.as_ref(), rest.iter().map(|a| a.as_ref()).collect())
            }
            Command::Shell { text } => ("sh".as_ref(), vec!["-c".as_ref(), text.as_ref()]),
        };
        let env = request.env.iter().map(|(k, v)| (k.as_str(), v.as_str()));
        let mut child = match super::spawn::spawn(program, &args, env, &request.cwd) {
            Ok(child) => child,
            Err(e) => {
                return Outcome::Failure {
                    error: format!("cannot start `{}`: {e}", request.activity),
                    exit_code: None,
                };
            }
        };
        // Recorded as soon as it exists: a resume or a stale-run cancel stops its group.
        events(AttemptEvent::Spawned(child.id()));
        supervise(&mut child, request, events)
    }
}

fn supervise(
    child: &mut super::spawn::Process,
    request: &Request,
    events: &dyn Fn(AttemptEvent),
) -> Outcome<Output> {
    let log = Arc::new(Mutex::new(Log::default()));
    let started = Instant::now();
    let last_sign = Arc::new(AtomicU64::new(0));
    let stdin = child.stdin.take();
    let input = request.input.clone();
    // No rows: stdin is closed at once (the program reads its end), with no thread for it.
    let writer = (!input.is_empty()).then(|| {
        std::thread::spawn(move || {
            if let Some(mut stdin) = stdin {
                // A program that does not read its input closes the pipe: not an error.
                let _ = input.write_to(&mut stdin);
            }
        })
    });
    // Output is copied as bytes into the spool file, shared: what was read is there even when
    // a process that escaped the attempt's group keeps the pipe open, and taking the file
    // back stops the copy.
    let out = Arc::new(Mutex::new(Some(Spool::default())));
    let stdout = child.stdout.take();
    let spool_error = Arc::new(Mutex::new(None::<String>));
    // Each pipe reader says when its pipe closed: the attempt ends as soon as both have.
    let (drained_tx, drained_rx) = std::sync::mpsc::channel::<()>();
    {
        let (out, spool_error, log) = (out.clone(), spool_error.clone(), log.clone());
        let drained = drained_tx.clone();
        std::thread::spawn(move || {
            let _drained = Signal(drained);
            let Some(mut stdout) = stdout else { return };
            let mut chunk = vec![0u8; 64 * 1024];
            // A line that is not a row goes to the log; rows stay in the spool only.
            let mut line = Vec::new();
            while let Ok(n @ 1..) = stdout.read(&mut chunk) {
                for piece in chunk[..n].split_inclusive(|&b| b == b'\n') {
                    line.extend_from_slice(piece);
                    if line.ends_with(b"\n") || line.len() > LOG_CAP {
                        log_unless_row(&log, &line);
                        line.clear();
                    }
                }
                let Ok(mut out) = out.lock() else { return };
                // No file (taken back, or lost to an error): the rest is drained unread.
                let Some(file) = out.as_mut() else { continue };
                if let Err(e) = file.write_all(&chunk[..n]) {
                    // A full disk: the rows cannot be kept, so the attempt fails (below); the
                    // pipe is still drained so that the program is not blocked on it.
                    if let Ok(mut first) = spool_error.lock() {
                        first.get_or_insert(e.to_string());
                    }
                    *out = None;
                }
            }
            log_unless_row(&log, &line);
        })
    };
    let tail = Arc::new(Mutex::new(String::new()));
    let stderr = child.stderr.take();
    {
        let (tail, sign, log) = (tail.clone(), last_sign.clone(), log.clone());
        let drained = drained_tx;
        std::thread::spawn(move || {
            let _drained = Signal(drained);
            let Some(stderr) = stderr else { return };
            // Every line is read, whatever its bytes: a reader that stopped would leave the
            // activity blocked on a full pipe.
            let mut stderr = BufReader::new(stderr);
            let mut line = Vec::new();
            while let Ok(1..) = stderr.read_until(b'\n', &mut line) {
                sign.store(started.elapsed().as_millis() as u64, Ordering::Relaxed);
                if let Ok(mut log) = log.lock() {
                    log.push("", &line);
                }
                if let Ok(mut tail) = tail.lock() {
                    tail.push_str(&String::from_utf8_lossy(&line));
                    if tail.len() > 2 * STDERR_TAIL {
                        let cut = tail.len() - STDERR_TAIL;
                        let cut = (cut..tail.len())
                            .find(|&i| tail.is_char_boundary(i))
                            .unwrap_or(tail.len());
                        tail.drain(..cut);
                    }
                }
                line.clear();
            }
        })
    };
    let pid = child.id() as i32;
    let exit = ExitWatch::new(pid);
    let (mut cancelled, mut killed) = (false, None);
    let status = loop {
        exit.wait(next_look(request, started.elapsed(), &last_sign));
        hand_on(&log, events);
        if exited(pid) {
            // The attempt ends with its program: what it left running in its process group
            // is stopped now, so it cannot hold the pipes or act after the stage has ended.
            child.kill_group();
            break child.wait().ok();
        }
        let elapsed = started.elapsed();
        if request.cancel.load(Ordering::Relaxed) {
            cancelled = true;
        } else if let Some(limit) = request.timeout
            && elapsed >= limit
        {
            killed = Some(format!("timed out after {}", crate::human::duration(limit)));
        } else if let Some(beat) = request.heartbeat {
            let last = Duration::from_millis(last_sign.load(Ordering::Relaxed));
            if elapsed - last >= beat {
                killed = Some(format!("no heartbeat for {}", crate::human::duration(beat)));
            }
        }
        if cancelled || killed.is_some() {
            // The whole process group: nothing the attempt started is left running.
            child.kill_group();
            break child.wait().ok();
        }
    };
    // A process that left the group (`setsid`) may still hold a pipe: wait a moment for the
    // rest of the output, then go on without it.
    let grace = Instant::now() + PIPE_GRACE;
    for _ in 0..2 {
        let left = grace.saturating_duration_since(Instant::now());
        if drained_rx.recv_timeout(left).is_err() {
            break;
        }
    }
    hand_on(&log, events);
    let cut = log.lock().map_or(0, |log| log.cut);
    if cut > 0 {
        let marker = format!(
            "[{cut} more bytes of log were not kept: an attempt keeps its first {} KiB]\n",
            LOG_CAP / 1024
        );
        events(AttemptEvent::Logged(&marker));
    }

    drop(writer);
    let spool = out.lock().unwrap_or_else(|e| e.into_inner()).take();
    let spool_error = spool_error.lock().unwrap_or_else(|e| e.into_inner()).take();
    let tail = std::mem::take(&mut *tail.lock().unwrap_or_else(|e| e.into_inner()));
    let tail = tail.trim_end();
    let start = (tail.len().saturating_sub(STDERR_TAIL)..=tail.len())
        .find(|&i| tail.is_char_boundary(i))
        .unwrap_or(tail.len());
    let tail = &tail[start..];
    if cancelled {
        return Outcome::Cancelled;
    }
    if let Some(why) = killed {
        let error = if tail.is_empty() {
            why
        } else {
            format!("{why}: {tail}")
        };
        return Outcome::Failure {
            error,
            exit_code: None,
        };
    }
    match status {
        Some(s) if s.success() => match (spool, spool_error) {
            (Some(spool), None) => match Spooled::scan(spool) {
                Ok(spooled) => Outcome::Success(Output::Spooled(spooled)),
                Err(error) => Outcome::Failure {
                    error,
                    exit_code: Some(0),
                },
            },
            (_, why) => Outcome::Failure {
                error: format!(
                    "cannot keep the output of `{}`: {}",
                    request.activity,
                    why.unwrap_or_else(|| "the temporary file was lost".into())
                ),
                exit_code: Some(0),
            },
        },
        Some(s) => {
            let code = s.code();
            let error = if tail.is_empty() {
                format!(
                    "`{}` exited with {}",
                    request.activity,
                    code.map_or("a signal".into(), |c| format!("code {c}"))
                )
            } else {
                tail.to_string()
            };
            Outcome::Failure {
                error,
                exit_code: code,
            }
        }
        None => Outcome::Failure {
            error: format!("lost track of `{}`", request.activity),
            exit_code: None,
        },
    }
}

/// How long the output of an attempt whose program has ended is still waited for.
const PIPE_GRACE: Duration = Duration::from_secs(1);

/// Whether the process has ended, without reaping it: while it is a zombie its pid, and so
/// its process group's id, cannot be taken by another process.
/// How often a running attempt looks at its cancel flag.
const CANCEL_CHECK: Duration = Duration::from_millis(20);

/// A stdout line that is not a row (it does not start with `{`) goes to the log.
fn log_unless_row(log: &Mutex<Log>, line: &[u8]) {
    let trimmed = line.trim_ascii();
    if !trimmed.is_empty()
        && !trimmed.starts_with(b"{")
        && let Ok(mut log) = log.lock()
    {
        log.push("[stdout] ", line);
    }
}

/// How long the watch may sleep: until the next cancel check, timeout or heartbeat deadline.
fn next_look(request: &Request, elapsed: Duration, last_sign: &AtomicU64) -> Duration {
    let mut wait = CANCEL_CHECK;
    if let Some(limit) = request.timeout {
        wait = wait.min(limit.saturating_sub(elapsed));
    }
    if let Some(beat) = request.heartbeat {
        let last = Duration::from_millis(last_sign.load(Ordering::Relaxed));
        wait = wait.min((last + beat).saturating_sub(elapsed));
    }
    wait
}

/// Sends on drop: a thread's end, however it ends.
struct Signal(std::sync::mpsc::Sender<()>);

impl Drop for Signal {
    fn drop(&mut self) {
        let _ = self.0.send(());
    }
}

/// Wakes the supervising loop as soon as the program exits (without reaping it), rather than
/// at its next look; the loop wakes for cancels and deadlines meanwhile. A pidfd polled with
/// the loop's timeout costs no thread; a kernel without pidfds (before Linux 5.3) gets a
/// thread blocked in `waitid`.
enum ExitWatch {
    Pidfd(std::os::fd::OwnedFd),
    Thread(std::sync::mpsc::Receiver<()>),
}

impl ExitWatch {
    fn new(pid: i32) -> ExitWatch {
        // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
        if fd >= 0 {
            use std::os::fd::FromRawFd;
            // SAFETY: the descriptor was just opened and is owned by nothing else.
            return ExitWatch::Pidfd(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd as i32) });
        }
        let (exit_tx, exit_rx) = std::sync::mpsc::channel::<()>();
        std::thread::spawn(move || {
            wait_exit(pid);
            let _ = exit_tx.send(());
        });
        ExitWatch::Thread(exit_rx)
    }

    /// Returns when the program has exited, or after `timeout`, or sooner (a signal).
    fn wait(&self, timeout: Duration) {
        match self {
            ExitWatch::Pidfd(fd) => {
                use std::os::fd::AsRawFd;
                let mut poll = libc::pollfd {
                    fd: fd.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                };
                let ms = timeout.as_micros().div_ceil(1000).min(i32::MAX as u128) as i32;
                // SAFETY: one valid pollfd; an error or EINTR only returns early.
                unsafe { libc::poll(&mut poll, 1, ms) };
            }
            ExitWatch::Thread(exited) => {
                let _ = exited.recv_timeout(timeout);
            }
        }
    }
}

/// Blocks until process `pid` has exited, leaving it to be reaped by its `Child`.
fn wait_exit(pid: i32) {
    // SAFETY: waitid with WNOWAIT only reads the child's state into `info`.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    loop {
        let found = unsafe {
            libc::waitid(
                libc::P_PID,
                pid as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOWAIT,
            )
        };
        // Interrupted by a signal: wait again; any other error (reaped already): done.
        if found == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            return;
        }
    }
}

fn exited(pid: i32) -> bool {
    // SAFETY: waitid with WNOWAIT only reads the child's state into `info`.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    let found = unsafe {
        libc::waitid(
            libc::P_PID,
            pid as libc::id_t,
            &mut info,
            libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
        )
    };
    found == 0 && unsafe { info.si_pid() } != 0
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
            matches!(&outcome, Outcome::Failure { error, exit_code: Some(3) } if error == "first\ndisk full"),
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
        let started = Instant::now();
        let outcome = ProcessLauncher.launch(&request(cmd, Some(200)), &|_| {});
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(
            matches!(&outcome, Outcome::Failure { error, exit_code: None } if error.starts_with("timed out after 200ms")),
            "{outcome:?}"
        );
        std::thread::sleep(Duration::from_millis(1500));
        assert!(!marker.exists(), "the grandchild survived the timeout");
    }
}
