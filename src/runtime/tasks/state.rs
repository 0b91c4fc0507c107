//! Where the tasks of an exported run keep what they share: the run's values, one record and
//! one table file per stage, the summary. Each file is written once, by the one task that
//! owns it, under a temporary name and then renamed, so a reader sees all of it or nothing.
//!
//! ```text
//! STATE/workspace.db                     `save to` tables and idempotency records (shared)
//! STATE/runs/RUN/plan.json               the plan the run's tasks run
//! STATE/runs/RUN/run.json                the run's arguments, run time, start
//! STATE/runs/RUN/stages/STAGE.json       how the stage ended (its record)
//! STATE/runs/RUN/stages/STAGE.db         its rows, with their column types
//! STATE/runs/RUN/summary.json            what `finish` decided
//! ```

use std::path::{Path, PathBuf};

/// A state location: `file:///path` or a path (one host, NFS/EFS, an Argo volume).
#[derive(Clone, Debug)]
pub struct Location {
    root: PathBuf,
}

impl Location {
    pub fn parse(text: &str) -> Result<Location, String> {
        if text.starts_with("s3://") {
            return Err(format!(
                "`{text}`: s3:// state is not supported yet; use a shared folder (file:///path)"
            ));
        }
        let path = match text.strip_prefix("file://") {
            Some(path) if path.starts_with('/') => path,
            Some(_) => {
                return Err(format!(
                    "`{text}`: a file:// location needs an absolute path"
                ));
            }
            None if text.contains("://") => {
                return Err(format!(
                    "`{text}`: the state location is a folder or file:///path"
                ));
            }
            None => text,
        };
        Ok(Location {
            root: PathBuf::from(path),
        })
    }

    /// The workspace database the runs share.
    pub fn workspace_db(&self) -> PathBuf {
        self.root.join("workspace.db")
    }

    /// The folder of run `run_id`, whose name is kept to characters any file system takes.
    pub fn run_dir(&self, run_id: &str) -> PathBuf {
        self.root.join("runs").join(file_name(run_id))
    }

    /// The plan the run's tasks run, written by `init`.
    pub fn plan_file(&self, run_id: &str) -> PathBuf {
        self.run_dir(run_id).join("plan.json")
    }

    pub fn stage_record(&self, run_id: &str, stage: &str) -> PathBuf {
        self.run_dir(run_id)
            .join("stages")
            .join(format!("{}.json", file_name(stage)))
    }

    /// The table file of a stage's rows (`table` is the stage, or its failed items' table).
    pub fn table_file(&self, run_id: &str, table: &str) -> PathBuf {
        self.run_dir(run_id)
            .join("stages")
            .join(format!("{}.db", file_name(table)))
    }
}

/// `name` with every character but ASCII letters, digits, `-`, `_` and `.` written as `%XX`,
/// and a leading `.` too: distinct names stay distinct files.
fn file_name(name: &str) -> String {
    let mut out = String::new();
    for (i, b) in name.bytes().enumerate() {
        let plain = b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || (b == b'.' && i > 0);
        if plain {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Writes `bytes` to `path` whole or not at all (a temporary file beside it, then a rename).
pub fn write_whole(path: &Path, bytes: &[u8]) -> Result<(), String> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
    }
    let partial = path.with_extension(format!("partial-{}", std::process::id()));
    std::fs::File::create(&partial)
        .and_then(|mut f| {
            std::io::Write::write_all(&mut f, bytes)?;
            f.sync_all()
        })
        .and_then(|()| std::fs::rename(&partial, path))
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_become_safe_file_names() {
        assert_eq!(
            file_name("manual__2026-01-31T02:00:00+00:00"),
            "manual__2026-01-31T02%3A00%3A00%2B00%3A00"
        );
        assert_eq!(file_name("../etc"), "%2E.%2Fetc");
        assert_eq!(file_name("s.failed"), "s.failed");
    }

    #[test]
    fn locations_are_folders() {
        assert!(Location::parse("file:///srv/state").is_ok());
        assert!(Location::parse("/srv/state").is_ok());
        assert!(Location::parse("file://relative").is_err());
        assert!(
            Location::parse("s3://bucket/x")
                .unwrap_err()
                .contains("not supported yet")
        );
        assert!(Location::parse("http://x").is_err());
    }
}
