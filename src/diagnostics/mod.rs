//! The diagnostic model shared by every pass, and its renderings (human, short, JSON).

mod codes;
pub mod docs;
mod render;
pub mod suggest;

pub use codes::{Code, Family};
pub use render::{
    ColorChoice, HumanReports, JsonArray, render_human, render_json, render_short, write_short,
};

use crate::source::FileId;
use crate::span::Span;
use serde::Serialize;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

/// A place in a file with what to say about it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct Label {
    pub file: FileId,
    pub span: Span,
    pub message: String,
}

/// One problem: a code of docs/errors.md, a primary place, other places, and a likely fix.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct Diagnostic {
    pub code: Code,
    pub severity: Severity,
    pub message: String,
    pub primary: Label,
    pub secondary: Vec<Label>,
    pub help: Option<String>,
}

impl Diagnostic {
    pub fn error(code: Code, file: FileId, span: Span, message: impl Into<String>) -> Self {
        Diagnostic {
            code,
            severity: Severity::Error,
            message: message.into(),
            primary: Label {
                file,
                span,
                message: String::new(),
            },
            secondary: Vec::new(),
            help: None,
        }
    }

    pub fn warning(code: Code, file: FileId, span: Span, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(code, file, span, message)
        }
    }

    /// The text under the primary span's caret.
    pub fn with_label(mut self, message: impl Into<String>) -> Self {
        self.primary.message = message.into();
        self
    }

    pub fn with_secondary(mut self, file: FileId, span: Span, message: impl Into<String>) -> Self {
        self.secondary.push(Label {
            file,
            span,
            message: message.into(),
        });
        self
    }

    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

/// Sorts diagnostics by file and position and drops exact repeats (a backtracking parser can
/// meet the same bad token twice).
pub fn normalize(diagnostics: &mut Vec<Diagnostic>) {
    diagnostics.sort_by(order);
    diagnostics.dedup_by(|d, before| repeats(before, d));
}

/// The order diagnostics are reported in: by file, then place, then code.
pub fn order(a: &Diagnostic, b: &Diagnostic) -> std::cmp::Ordering {
    let key = |d: &Diagnostic| (d.primary.file, d.primary.span.start, d.primary.span.end, d.code);
    key(a).cmp(&key(b))
}

/// Whether `d` only repeats the diagnostic reported `before` it.
pub fn repeats(before: &Diagnostic, d: &Diagnostic) -> bool {
    d.code == before.code && d.primary == before.primary && d.message == before.message
}
