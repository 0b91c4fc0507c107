//! What the library tells whoever drives it. The library prints nothing: the command line
//! writes these to stderr, the dashboard shows what it needs of them, a test keeps them.

use crate::diagnostics::Diagnostic;
use crate::source::SourceMap;
use std::fmt;

/// Whoever drives the library (the command line, the dashboard, a test), told of the
/// problems it finds and of how the work goes, to show them its own way. `Sync`: runs tell
/// it from several threads (child runs, hooks).
pub trait Reporter: Sync {
    /// What checking found in a workspace whose files were all read: warnings, or errors
    /// that stop it. Not told when nothing was found, nor when paths could not be read (the
    /// caller says that in its own words, and the rest may come from what is missing).
    fn diagnostics(&self, found: &[Diagnostic], sources: &SourceMap);
    /// A warning, an error that stopped a run, or a run that did not start.
    fn notice(&self, notice: &Notice);
}

/// What happens during the work that a person should see; the text is what `wvflow` prints.
#[derive(Clone, Debug, PartialEq)]
pub enum Notice {
    /// A run's `depends on` (or its window having run already) skipped it.
    RunSkipped {
        run_id: String,
        flow: String,
        reason: String,
    },
    /// A hook of a run failed; the run's outcome stands.
    HookFailed {
        event: String,
        target: String,
        run_id: String,
        error: String,
    },
    /// `keep_runs` could not remove a flow's old runs.
    RetentionFailed { flow: String, error: String },
    /// The run store could not record a run, so the run was stopped.
    RecordLost { run_id: String, error: String },
    /// Another process took a run over before its end was recorded; its record stands.
    TakenOver { run_id: String },
}

impl fmt::Display for Notice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Notice::RunSkipped {
                run_id,
                flow,
                reason,
            } => write!(f, "run {run_id} of flow {flow} skipped: {reason}"),
            Notice::HookFailed {
                event,
                target,
                run_id,
                error,
            } => write!(
                f,
                "warning: hook {event} ({target}) of run {run_id} failed: {error}"
            ),
            Notice::RetentionFailed { flow, error } => write!(
                f,
                "warning: keep_runs: cannot remove old runs of `{flow}`: {error}"
            ),
            Notice::RecordLost { run_id, error } => {
                write!(f, "error: cannot record run {run_id} ({error}); stopping it")
            }
            Notice::TakenOver { run_id } => write!(
                f,
                "warning: run {run_id} was taken over by another process; its record stands as that process wrote it"
            ),
        }
    }
}
