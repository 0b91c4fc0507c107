//! The problems of a workspace, merged into one list in [`normalize`]'s order as each chunk
//! is checked: the workspace's own (syntax errors, workspace-wide rules), known first, and
//! each chunk's, which lie in the chunk's bytes and so come in order of place.
//!
//! [`normalize`]: crate::diagnostics::normalize

use crate::diagnostics::{Diagnostic, order, repeats};
use std::cmp::Ordering;

/// Hands diagnostics on in order, without exact repeats, as `normalize` would have left them.
pub struct Merge<F: FnMut(Diagnostic)> {
    early: std::iter::Peekable<std::vec::IntoIter<Diagnostic>>,
    /// The last diagnostic, held back until the next one shows it is no repeat.
    last: Option<Diagnostic>,
    emit: F,
}

impl<F: FnMut(Diagnostic)> Merge<F> {
    /// `early`: sorted by `normalize`; at one place they come before a chunk's.
    pub fn new(early: Vec<Diagnostic>, emit: F) -> Self {
        Merge {
            early: early.into_iter().peekable(),
            last: None,
            emit,
        }
    }

    /// One chunk's diagnostics, sorted by `normalize`, after those of the chunks before it.
    pub fn extend(&mut self, found: Vec<Diagnostic>) {
        for d in found {
            while let Some(early) = self.early.next_if(|e| order(e, &d) != Ordering::Greater) {
                self.pass(early);
            }
            debug_assert!(
                self.last
                    .as_ref()
                    .is_none_or(|last| order(last, &d) != Ordering::Greater),
                "a chunk's diagnostic lies before an earlier chunk's: {d:?}"
            );
            self.pass(d);
        }
    }

    pub fn finish(mut self) {
        while let Some(early) = self.early.next() {
            self.pass(early);
        }
        if let Some(last) = self.last.take() {
            (self.emit)(last);
        }
    }

    fn pass(&mut self, d: Diagnostic) {
        match self.last.take() {
            Some(last) if repeats(&last, &d) => self.last = Some(last),
            Some(last) => {
                (self.emit)(last);
                self.last = Some(d);
            }
            None => self.last = Some(d),
        }
    }
}
