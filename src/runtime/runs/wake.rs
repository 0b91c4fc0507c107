//! Waking the owner of a run at once when another process asks something of it (cancel,
//! pause, a signal), instead of waiting for its next look at the run store.
//!
//! The asking process records its request, then sends the owner `SIGUSR1`. The owner's
//! handler writes a byte to a pipe (all a handler may safely do); one thread per process
//! reads the pipe and wakes every [`super::owner::Watch`], which reads the request at once.
//! A process listens ([`listen`]) before it records itself as a run's owner, so that no
//! process that would die of `SIGUSR1` (its default action) is ever sent one.

use std::sync::{Condvar, Mutex, OnceLock};
use std::time::Duration;

/// How many wake-ups this process has had, and the condition its watches wait on.
static POKES: (Mutex<u64>, Condvar) = (Mutex::new(0), Condvar::new());
/// The write end of the pipe the signal handler writes to (-1: not listening).
static PIPE: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(-1);
static LISTENING: OnceLock<()> = OnceLock::new();

extern "C" fn on_poke(_: libc::c_int) {
    let fd = PIPE.load(std::sync::atomic::Ordering::Relaxed);
    if fd >= 0 {
        // SAFETY: write(2) is async-signal-safe; the pipe does not block, and a full pipe
        // already holds a wake-up. errno is kept for the code the signal interrupted.
        unsafe {
            let errno = *libc::__errno_location();
            libc::write(fd, [1u8].as_ptr().cast(), 1);
            *libc::__errno_location() = errno;
        }
    }
}

/// Makes this process take wake-ups: installs the `SIGUSR1` handler and the thread that
/// passes them on. Idempotent. Without a pipe (no file descriptors left) the handler does
/// nothing, and the watches fall back on their periodic look. (A handler, not SIG_IGN: an
/// ignored signal would stay ignored in the activities the process starts.)
pub fn listen() {
    LISTENING.get_or_init(|| {
        let mut fds = [0 as libc::c_int; 2];
        // SAFETY: a two-element array for pipe2; both ends close on exec.
        let piped = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } == 0;
        if piped {
            // SAFETY: the write end, which the handler must never block on.
            unsafe {
                let flags = libc::fcntl(fds[1], libc::F_GETFL);
                libc::fcntl(fds[1], libc::F_SETFL, flags | libc::O_NONBLOCK);
            }
        }
        if piped {
            PIPE.store(fds[1], std::sync::atomic::Ordering::Relaxed);
            let read_end = fds[0];
            std::thread::spawn(move || {
                let mut buffer = [0u8; 64];
                loop {
                    // SAFETY: reads into a buffer of its own size from our pipe.
                    let n = unsafe { libc::read(read_end, buffer.as_mut_ptr().cast(), 64) };
                    if n == 0
                        || (n < 0
                            && std::io::Error::last_os_error().kind()
                                != std::io::ErrorKind::Interrupted)
                    {
                        return;
                    }
                    poke_watches();
                }
            });
        }
        let handler = on_poke as extern "C" fn(libc::c_int) as libc::sighandler_t;
        // SAFETY: the handler only writes to a pipe; SA_RESTART keeps other system calls
        // of the process from failing with EINTR.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = handler;
            action.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(libc::SIGUSR1, &action, std::ptr::null_mut());
        }
    });
}

/// Asks the process `pid` that started at `start` (a run's owner, on this machine) to look at
/// its runs now. The process is held by a pidfd while its start time is checked, so a pid
/// given to another process meanwhile is never signalled.
pub fn poke(pid: i64, start: i64) {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return;
    };
    // SAFETY: pidfd_open on a pid; the descriptor is closed below.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    let Ok(fd) = libc::c_int::try_from(fd) else {
        return;
    };
    if fd < 0 {
        return;
    }
    if super::owner::process_start(i64::from(pid)) == start {
        // SAFETY: a signal through the pidfd of the process whose start time matched.
        unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                fd,
                libc::SIGUSR1,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            );
        }
    }
    // SAFETY: the descriptor opened above.
    unsafe {
        libc::close(fd);
    }
}

/// Wakes every watch of this process (also used to stop one at once).
pub fn poke_watches() {
    let (count, woken) = &POKES;
    *count.lock().unwrap_or_else(|e| e.into_inner()) += 1;
    woken.notify_all();
}

/// The wake-ups so far, to wait for the next one with [`wait`].
pub fn seen() -> u64 {
    *POKES.0.lock().unwrap_or_else(|e| e.into_inner())
}

/// Waits until a wake-up after `seen` (which it updates), or `timeout`.
pub fn wait(seen: &mut u64, timeout: Duration) {
    let (count, woken) = &POKES;
    let guard = count.lock().unwrap_or_else(|e| e.into_inner());
    let (guard, _) = woken
        .wait_timeout_while(guard, timeout, |now| *now == *seen)
        .unwrap_or_else(|e| e.into_inner());
    *seen = *guard;
}

#[cfg(test)]
mod tests {
    /// A poke of this very process wakes a waiting watch long before its periodic look.
    #[test]
    fn a_poke_wakes_the_watches_of_the_process_at_once() {
        super::listen();
        let mut seen = super::seen();
        let me = super::super::owner::Owner::this_process();
        let waited = std::thread::spawn(move || {
            let started = std::time::Instant::now();
            super::wait(&mut seen, std::time::Duration::from_secs(30));
            started.elapsed()
        });
        std::thread::sleep(std::time::Duration::from_millis(100));
        super::poke(me.pid, me.start);
        let took = waited.join().unwrap();
        assert!(took < std::time::Duration::from_secs(20), "{took:?}");
    }
}
