//! Starting an activity's program. The standard library forks when a hook must run in the
//! child, and a fork of wvflow (many threads, a large memory map) costs more than the program
//! it starts: its page tables are copied, every page it then writes is copied again, and the
//! other cores flush their TLBs. So the child is started as `posix_spawn` starts one, sharing
//! wvflow's memory on a stack of its own (`clone(CLONE_VM | CLONE_VFORK)`) until it executes
//! the program, and it does there only what `fork` + `exec` would: it dies with the thread
//! that started it (`PR_SET_PDEATHSIG`), leads a process group of its own, takes the pipes as
//! stdin, stdout and stderr, changes folder, and gets default signal handling back.
//!
//! Everything the child reads is built before it exists; the child calls nothing but system
//! calls, touches no allocator and no lock, and reports a failure to execute through a pipe
//! that its `exec` closes.

use std::ffi::{CString, OsStr, OsString, c_char, c_int, c_void};
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;

/// A started program: its process id and the parent's ends of its three pipes. One dropped
/// before it was waited for (a panic on the way) has its group killed and is reaped.
pub struct Process {
    pid: libc::pid_t,
    waited: bool,
    pub stdin: Option<File>,
    pub stdout: Option<File>,
    pub stderr: Option<File>,
}

impl Process {
    pub fn id(&self) -> u32 {
        self.pid as u32
    }

    /// SIGKILL to every process of the program's group (it leads one of its own).
    pub fn kill_group(&self) {
        // SAFETY: a signal to the group our child leads; no memory is involved.
        unsafe { libc::kill(-self.pid, libc::SIGKILL) };
    }

    /// Waits for the program to end and reaps it.
    pub fn wait(&mut self) -> io::Result<ExitStatus> {
        let mut status: c_int = 0;
        loop {
            // SAFETY: waits for our own child; `status` is a valid out-pointer.
            let done = unsafe { libc::waitpid(self.pid, &mut status, 0) };
            if done == self.pid {
                self.waited = true;
                reaped(self.pid);
                return Ok(ExitStatus::from_raw(status));
            }
            let error = io::Error::last_os_error();
            if error.kind() != io::ErrorKind::Interrupted {
                return Err(error);
            }
        }
    }
}

/// The process groups this process started and has not reaped yet, each with its leader's
/// start time: what a task's lease records, so that whoever takes over from a task killed
/// with SIGKILL can stop what it left running.
static LIVE: std::sync::Mutex<Vec<(i64, i64)>> = std::sync::Mutex::new(Vec::new());

/// [`LIVE`], now.
pub fn live_groups() -> Vec<(i64, i64)> {
    LIVE.lock().map(|live| live.clone()).unwrap_or_default()
}

fn started(pid: libc::pid_t) {
    let start = crate::runtime::runs::owner::process_start(pid.into());
    if let Ok(mut live) = LIVE.lock() {
        live.push((pid.into(), start));
    }
}

fn reaped(pid: libc::pid_t) {
    if let Ok(mut live) = LIVE.lock() {
        live.retain(|(p, _)| *p != i64::from(pid));
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if !self.waited {
            self.kill_group();
            let _ = self.wait();
        }
    }
}

/// What the child reads: built by the parent, borrowed by the child until it executes.
struct ChildPlan {
    /// The paths to try executing, in order (one, or one per `PATH` folder).
    candidates: Vec<CString>,
    argv: Vec<*const c_char>,
    /// For each candidate, `sh CANDIDATE ARGS...`: a file without `#!` that the kernel will
    /// not execute is run by `/bin/sh`, as `execvp` runs it.
    sh_argv: Vec<Vec<*const c_char>>,
    envp: Vec<*const c_char>,
    cwd: CString,
    /// The child's ends of the pipes, for descriptors 0, 1 and 2.
    stdio: [RawFd; 3],
    /// Where the child writes `errno` when it cannot execute the program.
    report: RawFd,
    /// The process that starts it: should it be gone already, the child does not run.
    parent: libc::pid_t,
}

/// Starts `program` with `args` in `cwd`, its environment wvflow's with `env` over it, its
/// stdin, stdout and stderr pipes to the parent, in a process group of its own, killed when
/// the calling thread ends.
pub fn spawn<'e>(
    program: &OsStr,
    args: &[&OsStr],
    env: impl IntoIterator<Item = (&'e str, &'e str)>,
    cwd: &Path,
) -> io::Result<Process> {
    if program.is_empty() {
        return Err(io::Error::from_raw_os_error(libc::ENOENT));
    }
    let Words {
        env_strings,
        arg_strings,
        candidates,
        cwd,
    } = words(program, args, env, cwd)?;
    let sh = CString::from(c"sh");
    let sh_argv = candidates
        .iter()
        .map(|candidate| {
            let mut argv = vec![sh.as_ptr(), candidate.as_ptr()];
            argv.extend(arg_strings[1..].iter().map(|a| a.as_ptr()));
            argv.push(std::ptr::null());
            argv
        })
        .collect();
    let (stdin_child, stdin_parent) = pipe()?;
    let (stdout_parent, stdout_child) = pipe()?;
    let (stderr_parent, stderr_child) = pipe()?;
    let (report_parent, report_child) = pipe()?;
    let mut plan = ChildPlan {
        candidates,
        argv: arg_strings.iter().map(|a| a.as_ptr()).collect(),
        sh_argv,
        envp: env_strings.iter().map(|e| e.as_ptr()).collect(),
        cwd,
        stdio: [
            stdin_child.as_raw_fd(),
            stdout_child.as_raw_fd(),
            stderr_child.as_raw_fd(),
        ],
        report: report_child.as_raw_fd(),
        // SAFETY: getpid has no preconditions.
        parent: unsafe { libc::getpid() },
    };
    plan.argv.push(std::ptr::null());
    plan.envp.push(std::ptr::null());
    let pid = clone_vfork(&mut plan);
    drop((stdin_child, stdout_child, stderr_child, report_child));
    let pid = pid?;
    let mut report = File::from(report_parent);
    let mut errno = [0u8; 4];
    if io::Read::read_exact(&mut report, &mut errno).is_ok() {
        // It could not execute: it has exited; reap it.
        let mut failed = Process {
            pid,
            waited: false,
            stdin: None,
            stdout: None,
            stderr: None,
        };
        let _ = failed.wait();
        return Err(io::Error::from_raw_os_error(i32::from_ne_bytes(errno)));
    }
    started(pid);
    Ok(Process {
        pid,
        waited: false,
        stdin: Some(File::from(stdin_parent)),
        stdout: Some(File::from(stdout_parent)),
        stderr: Some(File::from(stderr_parent)),
    })
}

/// Starts the child on a stack of its own, sharing this process's memory until it executes
/// the program (`CLONE_VM | CLONE_VFORK`), with every signal blocked meanwhile; its pid.
fn clone_vfork(plan: &mut ChildPlan) -> io::Result<libc::pid_t> {
    // Not zeroed: a stack needs no initial contents, and a spawn should not pay to clear it.
    let mut stack: Vec<u8> = Vec::with_capacity(128 * 1024);
    // SAFETY: the stack grows down from its (16-byte aligned) top, within the allocation; the
    // vector outlives the child's use of it, which ends at its exec or exit before `clone`
    // returns (CLONE_VFORK).
    let stack_top = unsafe { stack.as_mut_ptr().add(stack.capacity()) };
    let stack_top = ((stack_top as usize) & !15) as *mut c_void;
    // No signal handler may run in the child while it shares our memory: all are blocked
    // here, and the child sets default handling before it unblocks them.
    let mut all: libc::sigset_t = unsafe { std::mem::zeroed() };
    let mut old: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: valid sigset pointers.
    unsafe {
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
    }
    // SAFETY: `child_main` reads `plan` only, calls only async-signal-safe functions, and
    // ends in exec or `_exit`; the parent is suspended until then.
    let pid = unsafe {
        libc::clone(
            child_main,
            stack_top,
            libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
            plan as *mut ChildPlan as *mut c_void,
        )
    };
    let clone_error = io::Error::last_os_error();
    // SAFETY: restores the mask saved above.
    unsafe {
        libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
    }
    drop(stack);
    if pid < 0 {
        return Err(clone_error);
    }
    Ok(pid)
}

/// The folder of `folders` (the `PATH` `path`) that holds an executable `program`, looked up
/// once a process for each `PATH` and name: the child tries it first, so that a program
/// late in `PATH` (`sh` in `/usr/bin`) is not looked for in every folder before it at every
/// spawn. The other folders stay after it, in their order, should it be gone since.
fn found_in(path: &OsStr, program: &OsStr, folders: &[PathBuf]) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    type Found = std::collections::HashMap<(OsString, OsString), Option<PathBuf>>;
    static FOUND: std::sync::OnceLock<std::sync::Mutex<Found>> = std::sync::OnceLock::new();
    let key = (path.to_os_string(), program.to_os_string());
    let found = FOUND.get_or_init(Default::default);
    if let Some(known) = found.lock().ok().and_then(|f| f.get(&key).cloned()) {
        return known;
    }
    // A relative folder is the child's folder, which may differ: the search stops there.
    let folder = folders
        .iter()
        .take_while(|f| f.is_absolute())
        .find(|f| {
            std::fs::metadata(f.join(program))
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
        .cloned();
    if let Ok(mut f) = found.lock() {
        f.insert(key, folder.clone());
    }
    folder
}

/// The C strings a spawn passes: the environment, the arguments, the paths to try for the
/// program, the folder.
struct Words {
    env_strings: Vec<CString>,
    arg_strings: Vec<CString>,
    candidates: Vec<CString>,
    cwd: CString,
}

fn words<'e>(
    program: &OsStr,
    args: &[&OsStr],
    env: impl IntoIterator<Item = (&'e str, &'e str)>,
    cwd: &Path,
) -> io::Result<Words> {
    let invalid = |what: &str| io::Error::new(io::ErrorKind::InvalidInput, what.to_string());
    let c_string = |bytes: Vec<u8>, what: &str| CString::new(bytes).map_err(|_| invalid(what));
    // The environment: wvflow's, with the activity's variables over it.
    let env: Vec<(&str, &str)> = env.into_iter().collect();
    let ours: std::collections::HashSet<&OsStr> = env.iter().map(|(k, _)| OsStr::new(*k)).collect();
    let mut vars: Vec<(OsString, OsString)> = std::env::vars_os()
        .filter(|(k, _)| !ours.contains(k.as_os_str()))
        .collect();
    vars.extend(env.iter().map(|(k, v)| ((*k).into(), (*v).into())));
    let path = vars
        .iter()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| v.clone())
        .unwrap_or_else(|| OsString::from("/bin:/usr/bin"));
    let env_strings = vars
        .into_iter()
        .map(|(k, v)| {
            let mut entry = k.into_vec();
            entry.push(b'=');
            entry.extend(v.into_vec());
            c_string(entry, "an environment variable holds a NUL byte")
        })
        .collect::<io::Result<Vec<CString>>>()?;
    let arg_strings = std::iter::once(program)
        .chain(args.iter().copied())
        .map(|a| c_string(a.as_bytes().to_vec(), "an argument holds a NUL byte"))
        .collect::<io::Result<Vec<CString>>>()?;
    // A name without `/` is looked up in the `PATH` the program gets, as `execvp` does.
    let candidates = if program.as_bytes().contains(&b'/') {
        vec![c_string(
            program.as_bytes().to_vec(),
            "the program's name holds a NUL byte",
        )?]
    } else {
        let folders: Vec<PathBuf> = std::env::split_paths(&path)
            .map(|folder| {
                if folder.as_os_str().is_empty() {
                    ".".into()
                } else {
                    folder
                }
            })
            .collect();
        let first = found_in(&path, program, &folders);
        first
            .iter()
            .chain(folders.iter().filter(|f| Some(*f) != first.as_ref()))
            .map(|folder| {
                c_string(
                    folder.join(program).into_os_string().into_vec(),
                    "the program's name holds a NUL byte",
                )
            })
            .collect::<io::Result<Vec<CString>>>()?
    };
    let cwd = c_string(
        cwd.as_os_str().as_bytes().to_vec(),
        "the folder holds a NUL byte",
    )?;
    Ok(Words {
        env_strings,
        arg_strings,
        candidates,
        cwd,
    })
}

/// A pipe, both ends closed on exec and numbered 3 or above (so that moving the child's ends
/// to 0, 1 and 2 never overwrites another): (read end, write end).
fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as c_int; 2];
    // SAFETY: `fds` has room for two descriptors.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both were just opened and are ours.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    Ok((high(read)?, high(write)?))
}

fn high(fd: OwnedFd) -> io::Result<OwnedFd> {
    if fd.as_raw_fd() > 2 {
        return Ok(fd);
    }
    // SAFETY: duplicates a descriptor we own.
    let moved = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 3) };
    if moved < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: just opened, ours.
    Ok(unsafe { OwnedFd::from_raw_fd(moved) })
}

/// The child's end when it cannot execute the program: `errno` to the parent, then exit.
unsafe fn fail(report: RawFd) -> ! {
    // SAFETY: async-signal-safe calls on a descriptor the child holds.
    unsafe {
        let bytes = (*libc::__errno_location()).to_ne_bytes();
        libc::write(report, bytes.as_ptr() as *const c_void, bytes.len());
        libc::_exit(127)
    }
}

/// The child, until it executes the program: system calls only.
extern "C" fn child_main(arg: *mut c_void) -> c_int {
    // SAFETY: `arg` is the parent's `ChildPlan`, alive and unchanged while the parent waits.
    let plan = unsafe { &*(arg as *const ChildPlan) };
    // SAFETY: each call is async-signal-safe and reads only what the plan holds.
    unsafe {
        // Dies with the thread that started it: a killed `wvflow run` leaves no attempt
        // running unwatched.
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong);
        if libc::getppid() != plan.parent {
            libc::_exit(127);
        }
        if libc::setpgid(0, 0) != 0 {
            fail(plan.report);
        }
        for (target, &fd) in plan.stdio.iter().enumerate() {
            if libc::dup2(fd, target as c_int) < 0 {
                fail(plan.report);
            }
        }
        if libc::chdir(plan.cwd.as_ptr()) != 0 {
            fail(plan.report);
        }
        // Default handling of every signal, as a fresh program expects: a handler of ours
        // must not run here, and an ignored SIGPIPE (Rust's default) must not be inherited.
        let mut action: libc::sigaction = std::mem::zeroed();
        for signal in 1..=libc::SIGRTMAX() {
            if libc::sigaction(signal, std::ptr::null(), &mut action) == 0
                && (signal == libc::SIGPIPE
                    || (action.sa_sigaction != libc::SIG_DFL
                        && action.sa_sigaction != libc::SIG_IGN))
            {
                libc::signal(signal, libc::SIG_DFL);
            }
        }
        let mut none: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut none);
        libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
        // As `execvp`: the first folder that has it; a permission error is kept over a
        // later "not found".
        let mut denied = false;
        for (candidate, sh_argv) in plan.candidates.iter().zip(&plan.sh_argv) {
            libc::execve(candidate.as_ptr(), plan.argv.as_ptr(), plan.envp.as_ptr());
            match *libc::__errno_location() {
                libc::ENOEXEC => {
                    libc::execve(c"/bin/sh".as_ptr(), sh_argv.as_ptr(), plan.envp.as_ptr());
                    fail(plan.report)
                }
                libc::EACCES => denied = true,
                libc::ENOENT | libc::ENOTDIR | libc::ESTALE | libc::ENODEV | libc::ETIMEDOUT => {}
                _ => fail(plan.report),
            }
        }
        if denied {
            *libc::__errno_location() = libc::EACCES;
        }
        fail(plan.report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    fn run(program: &str, args: &[&str], env: &[(&str, &str)]) -> (ExitStatus, String, String) {
        let args: Vec<&OsStr> = args.iter().map(OsStr::new).collect();
        let mut p = spawn(
            OsStr::new(program),
            &args,
            env.iter().copied(),
            Path::new("/"),
        )
        .unwrap();
        drop(p.stdin.take());
        let (mut out, mut err) = (String::new(), String::new());
        p.stdout.take().unwrap().read_to_string(&mut out).unwrap();
        p.stderr.take().unwrap().read_to_string(&mut err).unwrap();
        (p.wait().unwrap(), out, err)
    }

    #[test]
    fn a_program_runs_where_and_as_asked() {
        // Found in PATH, in the folder given, with the variables given over ours.
        let (status, out, _) = run(
            "sh",
            &["-c", "pwd; echo \"$WV_X\"; exit 3"],
            &[("WV_X", "1")],
        );
        assert_eq!((status.code(), out.as_str()), (Some(3), "/\n1\n"));
        // In a process group of its own (the fifth field of its stat).
        let (_, out, _) = run("sh", &["-c", "cut -d' ' -f5 /proc/$$/stat; echo $$"], &[]);
        let ids: Vec<&str> = out.split_whitespace().collect();
        assert_eq!(ids.len(), 2, "{out}");
        assert_eq!(ids[0], ids[1]);
    }

    #[test]
    fn stdin_reaches_the_program_and_sigpipe_is_default_again() {
        let mut p = spawn(OsStr::new("cat"), &[], [], Path::new("/")).unwrap();
        p.stdin.take().unwrap().write_all(b"a\nb\n").unwrap();
        let mut out = String::new();
        p.stdout.take().unwrap().read_to_string(&mut out).unwrap();
        assert!(p.wait().unwrap().success());
        assert_eq!(out, "a\nb\n");
        // `yes` killed by SIGPIPE says nothing; with SIGPIPE ignored it would complain.
        let (status, out, err) = run("sh", &["-c", "yes | head -n 1"], &[]);
        assert!(status.success());
        assert_eq!((out.as_str(), err.as_str()), ("y\n", ""));
    }

    #[test]
    fn a_script_without_a_shebang_runs_in_sh_as_execvp_runs_it() {
        let folder = tempfile::tempdir().unwrap();
        let script = folder.path().join("tool");
        std::fs::write(&script, "echo \"tool $1\"\n").unwrap();
        std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let (status, out, _) = run(script.to_str().unwrap(), &["x"], &[]);
        assert!(status.success());
        assert_eq!(out, "tool x\n");
    }

    #[test]
    fn what_cannot_start_says_why() {
        let path = [("PATH", "/usr/bin:/bin")];
        let missing = spawn(OsStr::new("no-such-program-wv"), &[], path, Path::new("/"));
        assert_eq!(missing.err().unwrap().kind(), io::ErrorKind::NotFound);
        let empty = spawn(OsStr::new(""), &[], path, Path::new("/"));
        assert_eq!(empty.err().unwrap().kind(), io::ErrorKind::NotFound);
        let folder = tempfile::tempdir().unwrap();
        let script = folder.path().join("not-executable");
        std::fs::write(&script, "echo hi\n").unwrap();
        let denied = spawn(script.as_os_str(), &[], [], Path::new("/"));
        assert_eq!(
            denied.err().unwrap().kind(),
            io::ErrorKind::PermissionDenied
        );
        let nowhere = spawn(OsStr::new("true"), &[], [], Path::new("/no/such/folder"));
        assert_eq!(nowhere.err().unwrap().kind(), io::ErrorKind::NotFound);
        let nul = spawn(
            OsStr::new("echo"),
            &[OsStr::new("a\0b")],
            [],
            Path::new("/"),
        );
        assert_eq!(nul.err().unwrap().kind(), io::ErrorKind::InvalidInput);
    }
}
