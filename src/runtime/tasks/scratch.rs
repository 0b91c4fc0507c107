//! A task's scratch folder: its fresh run database, the upstream tables it reads, copies from
//! a bucket. Only its owner can read it (mode 0700), and it is removed when the task ends. A
//! task killed with SIGKILL cannot remove its own: the next task on the host removes the
//! folders of tasks whose process is gone (the name says which process made it).

use crate::runtime::runs::owner::process_start;
use std::path::{Path, PathBuf};

const PREFIX: &str = "wvflow-task-";

/// A scratch folder that could not be made in `base` (the temporary folder).
#[derive(Debug)]
pub struct Error {
    pub base: PathBuf,
    pub source: std::io::Error,
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "cannot make a scratch folder in {}: {}",
            self.base.display(),
            self.source
        )
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// A new scratch folder, after removing those of dead tasks.
pub fn scratch() -> Result<tempfile::TempDir, Error> {
    let base = std::env::temp_dir();
    remove_dead(&base);
    let pid = std::process::id();
    use std::os::unix::fs::PermissionsExt;
    tempfile::Builder::new()
        .prefix(&format!("{PREFIX}{pid}-{}-", process_start(pid.into())))
        // Created so, not changed after: no moment when another user could open it.
        .permissions(std::fs::Permissions::from_mode(0o700))
        .tempdir_in(&base)
        .map_err(|source| Error { base, source })
}

/// Removes the scratch folders in `base` whose task's process no longer exists (a pid that
/// is gone, or taken by a process that started at another time).
fn remove_dead(base: &Path) {
    let Ok(entries) = std::fs::read_dir(base) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(PREFIX)) else {
            continue;
        };
        let mut parts = rest.splitn(3, '-');
        let (Some(Ok(pid)), Some(Ok(start))) = (
            parts.next().map(str::parse::<i64>),
            parts.next().map(str::parse::<i64>),
        ) else {
            continue;
        };
        // Another user's folder cannot be removed (a sticky temporary folder): it stays.
        let alive = std::fs::metadata(format!("/proc/{pid}")).is_ok() && process_start(pid) == start;
        if !alive {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}
