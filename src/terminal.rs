//! The process's standard output and error, written without panicking (`println!` and
//! `eprintln!` panic when a write fails). A reader that closed the pipe (`| head -1`) ends the
//! output quietly, as the user asked for; any other failure (a full disk, `/dev/full`) is
//! kept, so that the command says so where it still can and does not exit 0.
//!
//! Text that others wrote (an activity's output, its errors) is shown on a terminal with its
//! control characters escaped ([`escape_controls`]): a program's colour codes, window titles
//! or cursor moves must not take over the user's terminal.

use std::borrow::Cow;
use std::io::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

/// Set once stdout's reader has gone: nothing more will be read.
static STDOUT_CLOSED: AtomicBool = AtomicBool::new(false);
/// The first write that failed for another reason than a closed pipe.
static FAILED: Mutex<Option<String>> = Mutex::new(None);

/// Whether stdout's reader has gone (`| head -1`): nothing more will be read.
pub fn stdout_closed() -> bool {
    STDOUT_CLOSED.load(Ordering::Relaxed)
}

/// Writes to stdout; a closed pipe stops the output, another failure is kept.
pub fn write_stdout(text: std::fmt::Arguments) {
    if stdout_closed() {
        return;
    }
    let mut stdout = std::io::stdout().lock();
    match stdout.write_fmt(text).and_then(|()| stdout.flush()) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
            STDOUT_CLOSED.store(true, Ordering::Relaxed);
        }
        Err(e) => failed("standard output", &e),
    }
}

/// Standard output as a writer, for output written in pieces: like [`write_stdout`], a closed
/// pipe stops the output and another failure is kept, never returned.
pub struct Stdout;

impl Write for Stdout {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if !stdout_closed() {
            let mut stdout = std::io::stdout().lock();
            match stdout.write_all(buf).and_then(|()| stdout.flush()) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
                    STDOUT_CLOSED.store(true, Ordering::Relaxed);
                }
                Err(e) => failed("standard output", &e),
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Writes to stderr; a failure is kept and given back, for a caller whose job the writing
/// is (`activate('log')`). A reader that closed the pipe (`2>&1 | head`, a dashboard that
/// started the run and went away) ends it quietly, as on stdout.
pub fn write_stderr(text: std::fmt::Arguments) -> Result<(), StderrFailed> {
    let mut stderr = std::io::stderr().lock();
    match stderr.write_fmt(text) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => {
            failed("standard error", &e);
            Err(StderrFailed(e))
        }
    }
}

/// A write to stderr that failed, for other reasons than a closed pipe.
#[derive(Debug)]
pub struct StderrFailed(pub std::io::Error);

impl std::fmt::Display for StderrFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "cannot write to standard error: {}", plain(&self.0))
    }
}

impl std::error::Error for StderrFailed {}

/// Why the first write that failed did, if one did: `cannot write to standard output: ...`.
pub fn write_failure() -> Option<String> {
    FAILED.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

fn failed(stream: &str, e: &std::io::Error) {
    let mut first = FAILED.lock().unwrap_or_else(|e| e.into_inner());
    first.get_or_insert_with(|| format!("cannot write to {stream}: {}", plain(e)));
}

/// An I/O error's text without Rust's ` (os error 28)`.
fn plain(e: &std::io::Error) -> String {
    let text = e.to_string();
    match text.rfind(" (os error") {
        Some(at) => text[..at].to_string(),
        None => text,
    }
}

/// `text` with every control character but newline and tab written out visibly: `\e` for
/// escape, `\a` bell, `\r` carriage return, `\b` backspace, `\xNN` the other C0 and DEL,
/// `\u{NN}` the C1 controls (which some terminals also obey).
pub fn escape_controls(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_escaped) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match c {
            '\u{1b}' => out.push_str("\\e"),
            '\u{7}' => out.push_str("\\a"),
            '\r' => out.push_str("\\r"),
            '\u{8}' => out.push_str("\\b"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if is_escaped(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

fn is_escaped(c: char) -> bool {
    (c.is_control() && c != '\n' && c != '\t') || ('\u{80}'..='\u{9f}').contains(&c)
}

#[cfg(test)]
mod tests {
    use super::escape_controls;

    #[test]
    fn control_characters_are_written_out_and_text_is_kept() {
        assert_eq!(escape_controls("plain\ttext\n"), "plain\ttext\n");
        assert_eq!(
            escape_controls("\u{1b}[31mred\u{1b}[0m\r\u{7}\u{0}\u{7f}\u{9b}2J é"),
            "\\e[31mred\\e[0m\\r\\a\\x00\\x7f\\u{9b}2J é"
        );
    }
}
