//! Ctrl-C (SIGINT) and SIGTERM cancel the run: the flag the executor and every running
//! attempt watch is set; attempts' process groups are killed, pending stages cancelled.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

static FLAG: OnceLock<Arc<AtomicBool>> = OnceLock::new();

extern "C" fn on_signal(_: libc::c_int) {
    // Only an atomic store: safe in a signal handler.
    if let Some(flag) = FLAG.get() {
        flag.store(true, Ordering::SeqCst);
    }
}

/// The flag set by Ctrl-C or SIGTERM, with the handlers installed once.
pub fn on_ctrl_c() -> Arc<AtomicBool> {
    FLAG.get_or_init(|| {
        let flag = Arc::new(AtomicBool::new(false));
        let handler = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
        // SAFETY: the handler only performs an atomic store.
        unsafe {
            libc::signal(libc::SIGINT, handler);
            libc::signal(libc::SIGTERM, handler);
        }
        flag
    })
    .clone()
}
