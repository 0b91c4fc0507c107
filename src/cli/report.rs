//! The command line's reporter: what the library finds and warns of, on stderr, as
//! `wvflow check` prints diagnostics (in colour on a terminal, unless `NO_COLOR`).

use crate::diagnostics::{Diagnostic, render_human};
use crate::session::{Notice, Reporter};
use crate::source::SourceMap;
use std::io::IsTerminal;

/// Writes every report to stderr.
pub struct Stderr;

impl Reporter for Stderr {
    fn diagnostics(&self, found: &[Diagnostic], sources: &SourceMap) {
        let color = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
        err!("{}", render_human(found, sources, color));
    }

    fn notice(&self, notice: &Notice) {
        errln!("{notice}");
    }
}
