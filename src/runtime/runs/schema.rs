//! The run store's tables in the workspace database, created and migrated by version
//! (`PRAGMA user_version`). The schema is documented in `docs/runs.md`.

use rusqlite::Connection;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The schema this build writes. A database with a higher version was written by a newer
/// wvflow and is refused rather than damaged.
pub const SCHEMA_VERSION: i64 = 7;

const SCHEMA_1: &str = "
CREATE TABLE IF NOT EXISTS wvflow_runs (
  run_id TEXT PRIMARY KEY,
  flow TEXT NOT NULL,
  version INTEGER,
  args TEXT NOT NULL,
  run_time TEXT NOT NULL,
  state TEXT NOT NULL,
  reason TEXT,
  created_at INTEGER NOT NULL,
  started_at INTEGER,
  finished_at INTEGER,
  owner_pid INTEGER,
  owner_host TEXT,
  owner_start INTEGER,
  lease_until INTEGER,
  cancel_requested INTEGER NOT NULL DEFAULT 0,
  paused INTEGER NOT NULL DEFAULT 0,
  parent_run TEXT,
  parent_stage TEXT,
  jumped_from TEXT,
  workspace TEXT NOT NULL,
  run_db TEXT NOT NULL,
  plan TEXT NOT NULL,
  keep_runs INTEGER,
  resumes INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS wvflow_runs_by_flow ON wvflow_runs (flow, created_at);
CREATE TABLE IF NOT EXISTS wvflow_stages (
  run_id TEXT NOT NULL,
  stage TEXT NOT NULL,
  position INTEGER NOT NULL,
  state TEXT NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  rows INTEGER NOT NULL DEFAULT 0,
  started_at INTEGER,
  finished_at INTEGER,
  duration_ms INTEGER NOT NULL DEFAULT 0,
  error TEXT,
  PRIMARY KEY (run_id, stage)
);
CREATE TABLE IF NOT EXISTS wvflow_attempts (
  run_id TEXT NOT NULL,
  stage TEXT NOT NULL,
  phase TEXT NOT NULL,
  step INTEGER NOT NULL,
  item INTEGER NOT NULL,
  round INTEGER NOT NULL,
  attempt INTEGER NOT NULL,
  state TEXT NOT NULL,
  started_at INTEGER NOT NULL,
  finished_at INTEGER,
  exit_code INTEGER,
  error TEXT,
  PRIMARY KEY (run_id, stage, phase, step, item, round, attempt)
);
CREATE TABLE IF NOT EXISTS wvflow_events (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  run_id TEXT NOT NULL,
  at INTEGER NOT NULL,
  kind TEXT NOT NULL,
  stage TEXT,
  detail TEXT
);
CREATE INDEX IF NOT EXISTS wvflow_events_by_run ON wvflow_events (run_id, seq);
CREATE TABLE IF NOT EXISTS wvflow_compensations (
  run_id TEXT NOT NULL,
  stage TEXT NOT NULL,
  activity TEXT NOT NULL,
  state TEXT NOT NULL,
  attempts INTEGER NOT NULL,
  error TEXT,
  finished_at INTEGER NOT NULL,
  PRIMARY KEY (run_id, stage)
);
CREATE TABLE IF NOT EXISTS wvflow_signals (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  run_id TEXT NOT NULL,
  name TEXT NOT NULL,
  value,
  at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS wvflow_signals_by_run ON wvflow_signals (run_id, name, seq);
CREATE TABLE IF NOT EXISTS wvflow_idempotency (
  flow TEXT, stage TEXT, key TEXT, rows TEXT,
  PRIMARY KEY (flow, stage, key)
);
PRAGMA user_version = 1;
";

/// Version 2: each attempt's process group and that process's start time, recorded before
/// the program runs, so that a resume or a stale-run cancel stops what a dead owner left.
const SCHEMA_2: &str = "
ALTER TABLE wvflow_attempts ADD COLUMN pid INTEGER;
ALTER TABLE wvflow_attempts ADD COLUMN pid_start INTEGER;
PRAGMA user_version = 2;
";

/// Version 3: the slots of pools (`pool NAME with { slots: N }`) held by stages and `each`
/// items of every run on the machine.
const SCHEMA_3: &str = "
CREATE TABLE IF NOT EXISTS wvflow_pool_slots (
  id INTEGER PRIMARY KEY,
  pool TEXT NOT NULL,
  run_id TEXT NOT NULL,
  stage TEXT NOT NULL,
  item INTEGER,
  pid INTEGER NOT NULL,
  acquired_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS wvflow_pool_slots_by_pool ON wvflow_pool_slots (pool);
PRAGMA user_version = 3;
";

/// Version 4: a slot's holder is its process and that process's start time, so a process that
/// was given a dead holder's id does not keep the slot (a slot without it is free).
const SCHEMA_4: &str = "
ALTER TABLE wvflow_pool_slots ADD COLUMN pid_start INTEGER NOT NULL DEFAULT 0;
PRAGMA user_version = 4;
";

/// Version 5: each attempt's log (its stderr and the stdout lines that are not rows).
const SCHEMA_5: &str = "
ALTER TABLE wvflow_attempts ADD COLUMN log TEXT;
PRAGMA user_version = 5;
";

/// Version 6: a compensation's place in its saga. Every compensation a failed run owes is
/// recorded `pending` when the saga begins, so that a run stopped while it compensates shows
/// what is still owed, and `runs resume` runs it. Whether a run's owner takes wake-ups
/// (`SIGUSR1`, [`super::wake`]): only such an owner is sent one. Whether a stage's rows were
/// reused from an earlier run's idempotency key.
const SCHEMA_6: &str = "
ALTER TABLE wvflow_compensations ADD COLUMN position INTEGER;
ALTER TABLE wvflow_runs ADD COLUMN owner_wakes INTEGER NOT NULL DEFAULT 0;
ALTER TABLE wvflow_stages ADD COLUMN reused INTEGER NOT NULL DEFAULT 0;
PRAGMA user_version = 6;
";

/// Version 7: the run a run continues (`continue_as_new`): the new run goes on with the loop
/// where the old one stopped.
const SCHEMA_7: &str = "
ALTER TABLE wvflow_runs ADD COLUMN continued_from TEXT;
PRAGMA user_version = 7;
";

/// How long a writer waits for another process's lock before giving up
/// (`WVFLOW_BUSY_TIMEOUT_MS`, default 30 s: a stage writing a large table holds the lock).
pub fn busy_timeout() -> Duration {
    let ms = std::env::var("WVFLOW_BUSY_TIMEOUT_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30_000);
    Duration::from_millis(ms)
}

/// Why the run store's database cannot be used. `Display` gives the message users see.
#[derive(Debug)]
pub enum Error {
    /// SQLite refused (its code is in the error).
    Sqlite(rusqlite::Error),
    /// The store was made by a newer wvflow.
    Newer { version: i64 },
    /// The store's folder cannot be made.
    Folder(std::io::Error),
    /// The store at `path` cannot be opened or set up, and whether its folder is read-only
    /// (the hint of the message).
    Unusable {
        path: PathBuf,
        cause: Box<Error>,
        read_only_folder: bool,
    },
}

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        Error::Sqlite(e)
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Sqlite(e) => write!(f, "{e}"),
            Error::Folder(e) => write!(f, "{e}"),
            Error::Newer { version } => write!(
                f,
                "its run store has schema version {version}; this wvflow reads up to {SCHEMA_VERSION} (upgrade wvflow)"
            ),
            Error::Unusable {
                path,
                cause,
                read_only_folder,
            } => {
                write!(f, "cannot use the run store {}: {cause}", path.display())?;
                if *read_only_folder {
                    f.write_str(" (its folder is read-only: give the run store a writable place with `--db PATH`)")?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for Error {}


/// Brings the workspace database on `conn` to [`SCHEMA_VERSION`].
pub fn migrate(conn: &Connection) -> Result<(), Error> {
    let version: i64 = conn.query_row("PRAGMA main.user_version", [], |r| r.get(0))?;
    if version > SCHEMA_VERSION {
        return Err(Error::Newer { version });
    }
    if version < SCHEMA_VERSION {
        // Under the write lock, the version is read again: another process may have migrated
        // meanwhile, and `ALTER TABLE` must not run twice.
        let migrated = (|| -> rusqlite::Result<()> {
            conn.execute_batch("BEGIN IMMEDIATE")?;
            let now: i64 = conn.query_row("PRAGMA main.user_version", [], |r| r.get(0))?;
            if now < 1 {
                conn.execute_batch(SCHEMA_1)?;
            }
            if now < 2 {
                conn.execute_batch(SCHEMA_2)?;
            }
            if now < 3 {
                conn.execute_batch(SCHEMA_3)?;
            }
            if now < 4 {
                conn.execute_batch(SCHEMA_4)?;
            }
            if now < 5 {
                conn.execute_batch(SCHEMA_5)?;
            }
            if now < 6 {
                conn.execute_batch(SCHEMA_6)?;
            }
            if now < 7 {
                conn.execute_batch(SCHEMA_7)?;
            }
            conn.execute_batch("COMMIT")
        })();
        migrated.inspect_err(|_| {
            let _ = conn.execute_batch("ROLLBACK");
        })?;
    }
    Ok(())
}

/// Opens the workspace database for the run store: WAL, a bounded wait for locks, the schema
/// migrated. Errors name the file and never touch a file that is not a database.
pub fn open(path: &Path) -> Result<Connection, Error> {
    let fail = |e: Error| Error::Unusable {
        path: path.to_path_buf(),
        cause: Box::new(e),
        read_only_folder: read_only_folder(path),
    };
    if let Some(parent) = path.parent()
        && !parent.as_os_str().is_empty()
    {
        std::fs::create_dir_all(parent).map_err(|e| fail(Error::Folder(e)))?;
    }
    let conn = Connection::open(path).map_err(|e| fail(e.into()))?;
    conn.busy_timeout(busy_timeout())
        .map_err(|e| fail(e.into()))?;
    // Closing, the last connection would copy the WAL into the database and sync both: the
    // run store's WAL is left for the next process, and copied when it passes 1,000 pages.
    // (This connection holds the run store alone: a run's database, attached by the stores,
    // is still copied when their last connection closes, so that its file holds its rows.)
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE,
        Sync::from_env() == Sync::Normal,
    )
    .map_err(|e| fail(e.into()))?;
    use_wal(&conn, "main").map_err(fail)?;
    migrate(&conn).map_err(fail)?;
    Ok(conn)
}

/// Whether the folder that holds (or would hold) the file cannot be written, for the hint of
/// an error; `access` sees a read-only mount even for root.
fn read_only_folder(path: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Some(folder) = path
        .ancestors()
        .skip(1)
        .find(|p| p.as_os_str().is_empty() || p.exists())
    else {
        return false;
    };
    let folder = if folder.as_os_str().is_empty() {
        Path::new(".")
    } else {
        folder
    };
    let Ok(name) = std::ffi::CString::new(folder.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: `access` reads the NUL-terminated path only.
    unsafe { libc::access(name.as_ptr(), libc::W_OK) != 0 }
}

/// Puts a database of the connection in WAL mode with `synchronous = NORMAL` ([`Sync`]):
/// readers go on while one writer commits, and a commit survives a crash of the process
/// without an fsync each time (only a power loss can take back the latest commits).
///
/// Switching a new file to WAL needs an exclusive lock, and SQLite answers "locked" at once
/// rather than waiting when two processes switch together; so this waits itself.
pub fn use_wal(conn: &Connection, schema: &str) -> Result<(), Error> {
    let sync = Sync::from_env();
    let started = std::time::Instant::now();
    loop {
        let result = conn
            .query_row(&format!("PRAGMA {schema}.journal_mode"), [], |r| {
                r.get::<_, String>(0)
            })
            .and_then(|mode| {
                if mode == "wal" {
                    return Ok(());
                }
                // The switch rewrites the header through a rollback journal: a new, empty
                // file has nothing to keep, so it is not synced.
                let pages: i64 =
                    conn.query_row(&format!("PRAGMA {schema}.page_count"), [], |r| r.get(0))?;
                if pages == 0 {
                    conn.execute_batch(&format!("PRAGMA {schema}.synchronous = OFF"))?;
                }
                conn.execute_batch(&format!("PRAGMA {schema}.journal_mode = WAL"))
            })
            .and_then(|()| {
                let level = sync.pragma(schema == RUN_SCHEMA);
                conn.execute_batch(&format!("PRAGMA {schema}.synchronous = {level}"))
            });
        match result {
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::DatabaseBusy
                    && started.elapsed() < busy_timeout() =>
            {
                std::thread::sleep(Duration::from_millis(20));
            }
            other => return other.map_err(Error::from),
        }
    }
}

/// The schema a store attaches a run's database as.
pub const RUN_SCHEMA: &str = "run";

/// How the run store and the runs' databases reach the disk (`WVFLOW_SYNC`). Either way a
/// process that crashes or is killed loses nothing committed.
/// - `normal` (the default): the run store syncs when its WAL is copied into it (when its
///   last connection closes, or the WAL passes 1,000 pages), so a power loss can take back
///   its latest commits, never corrupting it; a run's database is never synced, so a power
///   loss can damage it, and `runs resume` then refuses the run, saying why.
/// - `full`: every commit of both is synced: a power loss loses nothing committed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sync {
    Normal,
    Full,
}

impl Sync {
    /// Read once a process: every connection (one a stage) asks.
    pub fn from_env() -> Sync {
        static SYNC: std::sync::OnceLock<Sync> = std::sync::OnceLock::new();
        *SYNC.get_or_init(|| match std::env::var("WVFLOW_SYNC").as_deref() {
            Ok("full") => Sync::Full,
            _ => Sync::Normal,
        })
    }

    /// SQLite's `synchronous` for the run store, or for a run's database (`run_db`).
    fn pragma(self, run_db: bool) -> &'static str {
        match (self, run_db) {
            (Sync::Full, _) => "FULL",
            (Sync::Normal, false) => "NORMAL",
            (Sync::Normal, true) => "OFF",
        }
    }
}

/// Milliseconds since the Unix epoch: the store's timestamps.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// A store timestamp as RFC 3339 UTC with milliseconds.
pub fn rfc3339(ms: i64) -> String {
    chrono::DateTime::<chrono::Utc>::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
        .unwrap_or_default()
}
