//! One attempt's process from its start to its outcome: its pipes (input rows to stdin,
//! stdout spooled and its non-row lines logged, stderr logged and its tail kept), the watch
//! (exit, cancel, timeout, heartbeat), and the outcome classified from what they saw.

use super::{AttemptEvent, AttemptFailure, LOG_CAP, Request};
use crate::runtime::output::{Output, Spool, Spooled};
use crate::runtime::retry::Outcome;
use crate::runtime::spawn::Process;
use std::io::{BufRead, BufReader, Read};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How much of stderr is kept for the stage's error.
const STDERR_TAIL: usize = 2000;

pub(super) fn supervise(
    child: &mut Process,
    request: &Request,
    events: &dyn Fn(AttemptEvent),
) -> Outcome<Output> {
    let log = Arc::new(Mutex::new(Log::default()));
    let started = Instant::now();
    // When stderr last said something (ms after the start): the heartbeat.
    let last_sign = Arc::new(AtomicU64::new(0));
    let pipes = Pipes::start(child, request, &log, started, &last_sign);
    let watched = watch(child, request, &log, events, started, &last_sign);
    let kept = pipes.finish(&log, events);
    classify(request, watched, kept)
}

/// The threads on an attempt's pipes and what they keep.
struct Pipes {
    writer: Option<std::thread::JoinHandle<()>>,
    /// stdout, copied as bytes into the spool, shared: what was read is there even when a
    /// process that escaped the attempt's group keeps the pipe open, and taking the spool
    /// back stops the copy.
    out: Arc<Mutex<Option<Spool>>>,
    spool_error: Arc<Mutex<Option<String>>>,
    /// The end of stderr, for the error.
    tail: Arc<Mutex<String>>,
    /// Each reader says when its pipe closed.
    drained: std::sync::mpsc::Receiver<()>,
}

/// What the pipes kept once the attempt ended.
struct Kept {
    spool: Option<Spool>,
    spool_error: Option<String>,
    tail: String,
}

impl Pipes {
    fn start(
        child: &mut Process,
        request: &Request,
        log: &Arc<Mutex<Log>>,
        started: Instant,
        last_sign: &Arc<AtomicU64>,
    ) -> Pipes {
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
        let (drained_tx, drained) = std::sync::mpsc::channel::<()>();
        let pipes = Pipes {
            writer,
            out: Arc::new(Mutex::new(Some(Spool::default()))),
            spool_error: Arc::new(Mutex::new(None)),
            tail: Arc::new(Mutex::new(String::new())),
            drained,
        };
        if let Some(stdout) = child.stdout.take() {
            let (out, spool_error, log) = (
                pipes.out.clone(),
                pipes.spool_error.clone(),
                log.clone(),
            );
            let drained = Signal(drained_tx.clone());
            std::thread::spawn(move || {
                let _drained = drained;
                read_stdout(stdout, &out, &spool_error, &log);
            });
        }
        if let Some(stderr) = child.stderr.take() {
            let (tail, sign, log) = (pipes.tail.clone(), last_sign.clone(), log.clone());
            let drained = Signal(drained_tx);
            std::thread::spawn(move || {
                let _drained = drained;
                read_stderr(stderr, &tail, &log, (started, &sign));
            });
        }
        pipes
    }

    /// Waits a moment for the rest of the output (a process that left the group, `setsid`,
    /// may still hold a pipe), then takes what was kept; the log's last lines are handed on,
    /// and what the log cut is said.
    fn finish(self, log: &Mutex<Log>, events: &dyn Fn(AttemptEvent)) -> Kept {
        let grace = Instant::now() + PIPE_GRACE;
        for _ in 0..2 {
            let left = grace.saturating_duration_since(Instant::now());
            if self.drained.recv_timeout(left).is_err() {
                break;
            }
        }
        hand_on(log, events);
        let cut = log.lock().map_or(0, |log| log.cut);
        if cut > 0 {
            let marker = format!(
                "[{cut} more bytes of log were not kept: an attempt keeps its first {} KiB]\n",
                LOG_CAP / 1024
            );
            events(AttemptEvent::Logged(&marker));
        }
        drop(self.writer);
        let spool = taken(&self.out);
        let spool_error = taken(&self.spool_error);
        let tail = std::mem::take(&mut *self.tail.lock().unwrap_or_else(|e| e.into_inner()));
        let tail = tail.trim_end();
        let start = (tail.len().saturating_sub(STDERR_TAIL)..=tail.len())
            .find(|&i| tail.is_char_boundary(i))
            .unwrap_or(tail.len());
        Kept {
            spool,
            spool_error,
            tail: tail[start..].to_string(),
        }
    }
}

fn taken<T>(kept: &Mutex<Option<T>>) -> Option<T> {
    kept.lock().unwrap_or_else(|e| e.into_inner()).take()
}

/// Copies stdout into the spool; a line that is not a row goes to the log too.
fn read_stdout(
    mut stdout: impl Read,
    out: &Mutex<Option<Spool>>,
    spool_error: &Mutex<Option<String>>,
    log: &Mutex<Log>,
) {
    let mut chunk = vec![0u8; 64 * 1024];
    let mut line = Vec::new();
    while let Ok(n @ 1..) = stdout.read(&mut chunk) {
        for piece in chunk[..n].split_inclusive(|&b| b == b'\n') {
            line.extend_from_slice(piece);
            if line.ends_with(b"\n") || line.len() > LOG_CAP {
                log_unless_row(log, &line);
                line.clear();
            }
        }
        let Ok(mut out) = out.lock() else { return };
        // No file (taken back, or lost to an error): the rest is drained unread.
        let Some(file) = out.as_mut() else { continue };
        if let Err(e) = file.write_all(&chunk[..n]) {
            // A full disk: the rows cannot be kept, so the attempt fails; the pipe is still
            // drained so that the program is not blocked on it.
            if let Ok(mut first) = spool_error.lock() {
                first.get_or_insert(e.to_string());
            }
            *out = None;
        }
    }
    log_unless_row(log, &line);
}

/// Logs every stderr line, whatever its bytes (a reader that stopped would leave the
/// activity blocked on a full pipe), notes when it last spoke, and keeps its tail.
fn read_stderr(
    stderr: impl Read,
    tail: &Mutex<String>,
    log: &Mutex<Log>,
    (started, sign): (Instant, &AtomicU64),
) {
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
}

/// How the watch ended: the program's exit status (if it could be read), and whether the
/// attempt was cancelled or killed (why).
struct Watched {
    status: Option<std::process::ExitStatus>,
    cancelled: bool,
    killed: Option<Killed>,
}

/// Why the watch stopped the attempt, and the limit it ran past.
enum Killed {
    TimedOut(Duration),
    NoHeartbeat(Duration),
}

/// Waits for the program's exit, handing its log on as it grows; a cancel, a timeout or a
/// missed heartbeat kills the whole process group first.
fn watch(
    child: &mut Process,
    request: &Request,
    log: &Mutex<Log>,
    events: &dyn Fn(AttemptEvent),
    started: Instant,
    last_sign: &AtomicU64,
) -> Watched {
    let pid = child.id() as i32;
    let exit = ExitWatch::new(pid);
    let (mut cancelled, mut killed) = (false, None);
    let status = loop {
        exit.wait(next_look(request, started.elapsed(), last_sign));
        hand_on(log, events);
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
            killed = Some(Killed::TimedOut(limit));
        } else if let Some(beat) = request.heartbeat {
            let last = Duration::from_millis(last_sign.load(Ordering::Relaxed));
            if elapsed - last >= beat {
                killed = Some(Killed::NoHeartbeat(beat));
            }
        }
        if cancelled || killed.is_some() {
            // The whole process group: nothing the attempt started is left running.
            child.kill_group();
            break child.wait().ok();
        }
    };
    Watched {
        status,
        cancelled,
        killed,
    }
}

/// The attempt's outcome from how it ended and what its pipes kept.
fn classify(request: &Request, watched: Watched, kept: Kept) -> Outcome<Output> {
    let tail = kept.tail.as_str();
    if watched.cancelled {
        return Outcome::Cancelled;
    }
    if let Some(why) = watched.killed {
        let tail = tail.to_string();
        return Outcome::Failure(match why {
            Killed::TimedOut(after) => AttemptFailure::TimedOut { after, tail },
            Killed::NoHeartbeat(after) => AttemptFailure::NoHeartbeat { after, tail },
        });
    }
    match watched.status {
        Some(s) if s.success() => match (kept.spool, kept.spool_error) {
            (Some(spool), None) => match Spooled::scan(spool) {
                Ok(spooled) => Outcome::Success(Output::Spooled(spooled)),
                Err(scan) => Outcome::Failure(AttemptFailure::Output {
                    activity: request.activity.clone(),
                    why: None,
                    scan: Some(scan),
                }),
            },
            (_, why) => Outcome::Failure(AttemptFailure::Output {
                activity: request.activity.clone(),
                why,
                scan: None,
            }),
        },
        Some(s) => {
            let (activity, tail) = (request.activity.clone(), tail.to_string());
            Outcome::Failure(match s.code() {
                Some(code) => AttemptFailure::Exited {
                    activity,
                    code,
                    tail,
                },
                None => AttemptFailure::Signalled {
                    activity,
                    signal: std::os::unix::process::ExitStatusExt::signal(&s),
                    tail,
                },
            })
        }
        None => Outcome::Failure(AttemptFailure::Lost {
            activity: request.activity.clone(),
        }),
    }
}

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

/// How long the output of an attempt whose program has ended is still waited for.
const PIPE_GRACE: Duration = Duration::from_secs(1);

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

/// Whether the process has ended, without reaping it: while it is a zombie its pid, and so
/// its process group's id, cannot be taken by another process.
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

