//! Where the tasks of an exported run keep what they share: the run's values, one record and
//! one table file per stage, the summary. Each object is written once, by the one task that
//! owns it, whole or not at all (a file under a temporary name then renamed; an S3 object by
//! one PUT), so a reader sees all of it or nothing.
//!
//! ```text
//! STATE/workspace.db                          `save to` tables and idempotency records (shared)
//! STATE/runs/FLOW/RUN/plan.json               the plan the run's tasks run
//! STATE/runs/FLOW/RUN/run.json                the run's arguments, run time, start
//! STATE/runs/FLOW/RUN/stages/STAGE.json       how the stage ended (its record)
//! STATE/runs/FLOW/RUN/stages/STAGE.db         its rows, with their column types
//! STATE/runs/FLOW/RUN/signals/N.json          the signals sent to the run, in order
//! STATE/runs/FLOW/RUN/cancel.json             someone asked the run to stop
//! STATE/runs/FLOW/RUN/summary.json            what `finish` decided
//! ```
//!
//! Two kinds of location: a folder every worker sees (`file:///path` or a path: one host, NFS,
//! EFS, an Argo volume) and an S3 bucket (`s3://bucket/prefix`), for workers without a shared
//! disk. S3 is reached through presigned requests (`rusty-s3`) sent by `ureq`, which follows
//! no redirect.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Why the state location could not be named, read or written: what was asked, of which
/// file or object, and the cause. `Display` gives the message `wvflow stage` prints.
#[derive(Debug)]
pub enum Error {
    /// A `file://` location whose path is not absolute.
    RelativeFile(String),
    /// A location of another scheme (`http://...`).
    NotALocation(String),
    /// `s3://` without a bucket.
    NoBucket(String),
    /// An S3 endpoint (from `AWS_ENDPOINT_URL...`) that is not a URL.
    Endpoint {
        endpoint: String,
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A bucket name S3 cannot take.
    Bucket {
        text: String,
        source: rusty_s3::BucketError,
    },
    /// A file of a folder location (or a task's scratch copy) that could not be used.
    File {
        action: Action,
        path: PathBuf,
        source: std::io::Error,
    },
    /// A file a task just wrote, read back to upload: the cause alone, as it always said.
    Reread(std::io::Error),
    /// A request to the bucket that got no answer (or whose answer could not be read).
    Request {
        action: Action,
        object: String,
        source: Box<ureq::Error>,
    },
    /// A request the bucket refused: its HTTP status and what it said.
    Refused {
        action: Action,
        object: String,
        status: u16,
        body: String,
    },
}

/// What was being done to a file or object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Read,
    Write,
    Create,
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Action::Read => "read",
            Action::Write => "write",
            Action::Create => "create",
        })
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::RelativeFile(text) => {
                write!(f, "`{text}`: a file:// location needs an absolute path")
            }
            Error::NotALocation(text) => write!(
                f,
                "`{text}`: the state location is a folder, file:///path or s3://bucket/prefix"
            ),
            Error::NoBucket(text) => write!(f, "`{text}`: no bucket"),
            Error::Endpoint { endpoint, source } => {
                write!(f, "the S3 endpoint `{endpoint}`: {source}")
            }
            Error::Bucket { text, source } => write!(f, "`{text}`: {source}"),
            Error::File {
                action,
                path,
                source,
            } => write!(f, "cannot {action} {}: {source}", path.display()),
            Error::Reread(source) => write!(f, "{source}"),
            Error::Request {
                action,
                object,
                source,
            } => write!(f, "cannot {action} {object}: {source}"),
            Error::Refused {
                action,
                object,
                status,
                body,
            } => write!(f, "cannot {action} {object}: HTTP {status}: {body}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Endpoint { source, .. } => Some(source.as_ref()),
            Error::Bucket { source, .. } => Some(source),
            Error::File { source, .. } | Error::Reread(source) => Some(source),
            Error::Request { source, .. } => Some(source.as_ref()),
            Error::RelativeFile(_)
            | Error::NotALocation(_)
            | Error::NoBucket(_)
            | Error::Refused { .. } => None,
        }
    }
}

/// The error of `action` on `path`, as a closure for `map_err`.
fn file_error(action: Action, path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::File {
        action,
        path: path.to_path_buf(),
        source,
    }
}

/// A state location.
pub enum Location {
    Folder(PathBuf),
    Bucket(Box<Bucket>),
}

/// An S3 bucket and the prefix of the state's keys in it.
pub struct Bucket {
    bucket: rusty_s3::Bucket,
    credentials: Option<rusty_s3::Credentials>,
    prefix: String,
    agent: ureq::Agent,
}

/// How long a presigned request stays valid: longer than any one transfer takes.
const SIGNED_FOR: Duration = Duration::from_secs(15 * 60);

impl Location {
    /// `file:///path`, a path, or `s3://bucket[/prefix]` (credentials from `AWS_ACCESS_KEY_ID`
    /// and `AWS_SECRET_ACCESS_KEY`; the endpoint from `AWS_ENDPOINT_URL_S3` or
    /// `AWS_ENDPOINT_URL`, else AWS in `AWS_REGION`).
    pub fn parse(text: &str) -> Result<Location, Error> {
        if let Some(rest) = text.strip_prefix("s3://") {
            return Bucket::parse(text, rest).map(|b| Location::Bucket(Box::new(b)));
        }
        let path = match text.strip_prefix("file://") {
            Some(path) if path.starts_with('/') => path,
            Some(_) => return Err(Error::RelativeFile(text.to_string())),
            None if text.contains("://") => return Err(Error::NotALocation(text.to_string())),
            None => text,
        };
        Ok(Location::Folder(PathBuf::from(path)))
    }

    /// The bytes of `key`, if it exists.
    pub fn read(&self, key: &str) -> Result<Option<Vec<u8>>, Error> {
        match self {
            Location::Folder(root) => match std::fs::read(root.join(key)) {
                Ok(bytes) => Ok(Some(bytes)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(file_error(Action::Read, &root.join(key))(e)),
            },
            Location::Bucket(bucket) => bucket.get(key),
        }
    }

    /// Writes `key` whole or not at all.
    pub fn write(&self, key: &str, bytes: &[u8]) -> Result<(), Error> {
        match self {
            Location::Folder(root) => write_whole(&root.join(key), bytes),
            Location::Bucket(bucket) => bucket.put(key, bytes),
        }
    }

    /// Writes `key` unless it exists, in one step no other writer can come between: `false`
    /// when it existed (a file created exclusively; an S3 PUT with `If-None-Match: *`).
    pub fn create(&self, key: &str, bytes: &[u8]) -> Result<bool, Error> {
        match self {
            Location::Folder(root) => {
                let path = root.join(key);
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent).map_err(file_error(Action::Create, parent))?;
                }
                // Written under another name, then linked: the key never exists half written,
                // and the link fails when it exists.
                let partial = path.with_extension(format!("partial-{}", std::process::id()));
                write_whole(&partial, bytes)?;
                let linked = std::fs::hard_link(&partial, &path);
                let _ = std::fs::remove_file(&partial);
                match linked {
                    Ok(()) => Ok(true),
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
                    Err(e) => Err(file_error(Action::Write, &path)(e)),
                }
            }
            Location::Bucket(bucket) => bucket.create(key, bytes),
        }
    }

    /// A local file holding `key`, if it exists: the file itself in a folder, a copy in
    /// `scratch` from a bucket.
    pub fn local(&self, key: &str, scratch: &Path) -> Result<Option<PathBuf>, Error> {
        match self {
            Location::Folder(root) => {
                let path = root.join(key);
                Ok(path.exists().then_some(path))
            }
            Location::Bucket(bucket) => {
                let Some(bytes) = bucket.get(key)? else {
                    return Ok(None);
                };
                let path = scratch.join(key.replace('/', "_"));
                std::fs::write(&path, bytes).map_err(file_error(Action::Write, &path))?;
                Ok(Some(path))
            }
        }
    }

    /// Keeps as `key` the file `write` makes at the path it is given: in a folder, that path
    /// is the key's own (`write` writes it whole, under another name and renamed); for a
    /// bucket, a file in `scratch`, then uploaded. `write`'s own error (the store's) is
    /// kept as it is, beside this location's.
    pub fn put_file<E: From<Error>>(
        &self,
        key: &str,
        scratch: &Path,
        write: impl FnOnce(&Path) -> Result<(), E>,
    ) -> Result<(), E> {
        match self {
            Location::Folder(root) => write(&root.join(key)),
            Location::Bucket(bucket) => {
                let path = scratch.join(format!("upload-{}", key.replace('/', "_")));
                write(&path)?;
                let bytes = std::fs::read(&path).map_err(Error::Reread)?;
                Ok(bucket.put(key, &bytes)?)
            }
        }
    }

    /// Whether this is a bucket (no shared disk: files are copies).
    pub fn is_bucket(&self) -> bool {
        matches!(self, Location::Bucket(_))
    }

    /// The workspace database the runs share, as a local file: in a folder, the file itself;
    /// from a bucket, a copy in `scratch` (see [`Location::keep_workspace`]).
    pub fn workspace_db(&self, scratch: &Path) -> Result<PathBuf, Error> {
        match self {
            Location::Folder(root) => Ok(root.join(WORKSPACE)),
            Location::Bucket(_) => Ok(self
                .local(WORKSPACE, scratch)?
                .unwrap_or_else(|| scratch.join(WORKSPACE))),
        }
    }

    /// After a stage that wrote the workspace database: a bucket gets the copy back (its
    /// writers take turns, holding the workspace's lease).
    pub fn keep_workspace(&self, local: &Path) -> Result<(), Error> {
        match self {
            Location::Folder(_) => Ok(()),
            Location::Bucket(bucket) => {
                // Fold the write-ahead log into the file before it travels alone.
                if let Ok(conn) = rusqlite::Connection::open(local) {
                    let _ = conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);");
                }
                let bytes = std::fs::read(local).map_err(Error::Reread)?;
                bucket.put(WORKSPACE, &bytes)
            }
        }
    }
}

/// The key of the workspace database.
const WORKSPACE: &str = "workspace.db";

/// The keys of a run's objects: under its flow (`Name` or `Name@2`) and its engine's run id,
/// so that runs of two flows with the same id (two DAGs on one schedule) never meet.
pub fn run_key(flow: &str, run_id: &str, rest: &str) -> String {
    format!("runs/{}/{}/{rest}", file_name(flow), file_name(run_id))
}

pub fn plan_key(flow: &str, run_id: &str) -> String {
    run_key(flow, run_id, "plan.json")
}

pub fn stage_key(flow: &str, run_id: &str, stage: &str, extension: &str) -> String {
    run_key(
        flow,
        run_id,
        &format!("stages/{}.{extension}", file_name(stage)),
    )
}

impl Bucket {
    fn parse(text: &str, rest: &str) -> Result<Bucket, Error> {
        let (name, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if name.is_empty() {
            return Err(Error::NoBucket(text.to_string()));
        }
        let var = |names: &[&str]| names.iter().find_map(|n| std::env::var(n).ok());
        let region = var(&["AWS_REGION", "AWS_DEFAULT_REGION"]).unwrap_or("us-east-1".into());
        let (endpoint, style) = match var(&["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"]) {
            Some(url) => (url, rusty_s3::UrlStyle::Path),
            None => (
                format!("https://s3.{region}.amazonaws.com"),
                rusty_s3::UrlStyle::VirtualHost,
            ),
        };
        let endpoint = endpoint.parse().map_err(|e| Error::Endpoint {
            source: Box::new(e),
            endpoint,
        })?;
        let bucket = rusty_s3::Bucket::new(endpoint, style, name.to_string(), region).map_err(
            |source| Error::Bucket {
                text: text.to_string(),
                source,
            },
        )?;
        let agent = ureq::Agent::config_builder()
            .max_redirects(0)
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(300)))
            .build()
            .into();
        let prefix = prefix.trim_matches('/');
        Ok(Bucket {
            bucket,
            credentials: rusty_s3::Credentials::from_env(),
            prefix: if prefix.is_empty() {
                String::new()
            } else {
                format!("{prefix}/")
            },
            agent,
        })
    }

    fn object(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    /// `s3://bucket/object`, as errors name an object.
    fn url_of(&self, object: &str) -> String {
        format!("s3://{}/{object}", self.bucket.name())
    }

    /// The error of a request that got no answer.
    fn request_error(&self, action: Action, object: &str) -> impl FnOnce(ureq::Error) -> Error {
        let object = self.url_of(object);
        move |source| Error::Request {
            action,
            object,
            source: Box::new(source),
        }
    }

    /// The error of a request the bucket refused, with what it said.
    fn refused(
        &self,
        action: Action,
        object: &str,
        status: u16,
        response: &mut ureq::http::Response<ureq::Body>,
    ) -> Error {
        Error::Refused {
            action,
            object: self.url_of(object),
            status,
            body: response.body_mut().read_to_string().unwrap_or_default(),
        }
    }

    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, Error> {
        use rusty_s3::S3Action as _;
        let object = self.object(key);
        let url = self
            .bucket
            .get_object(self.credentials.as_ref(), &object)
            .sign(SIGNED_FOR);
        let mut response = self
            .agent
            .get(url.as_str())
            .call()
            .map_err(self.request_error(Action::Read, &object))?;
        match response.status().as_u16() {
            200 => response
                .body_mut()
                .with_config()
                .limit(u64::MAX)
                .read_to_vec()
                .map(Some)
                .map_err(self.request_error(Action::Read, &object)),
            404 => Ok(None),
            status => Err(self.refused(Action::Read, &object, status, &mut response)),
        }
    }

    fn put(&self, key: &str, bytes: &[u8]) -> Result<(), Error> {
        self.send_put(key, bytes, false).map(|_| ())
    }

    /// A PUT that only creates: S3 answers 412 when the object exists.
    fn create(&self, key: &str, bytes: &[u8]) -> Result<bool, Error> {
        self.send_put(key, bytes, true)
    }

    /// PUTs `key`; with `only_new`, with `If-None-Match: *`: `false` when it existed.
    fn send_put(&self, key: &str, bytes: &[u8], only_new: bool) -> Result<bool, Error> {
        use rusty_s3::S3Action as _;
        let object = self.object(key);
        let url = self
            .bucket
            .put_object(self.credentials.as_ref(), &object)
            .sign(SIGNED_FOR);
        let mut request = self.agent.put(url.as_str());
        if only_new {
            request = request.header("If-None-Match", "*");
        }
        let mut response = request
            .send(bytes)
            .map_err(self.request_error(Action::Write, &object))?;
        match response.status().as_u16() {
            200 | 201 | 204 => Ok(true),
            // 409: another conditional write of the object is in flight.
            412 | 409 if only_new => Ok(false),
            status => Err(self.refused(Action::Write, &object, status, &mut response)),
        }
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

/// Writes `bytes` to `path` whole or not at all (a temporary file beside it, synced, then a
/// rename).
pub fn write_whole(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(file_error(Action::Create, parent))?;
    }
    let partial = path.with_extension(format!("partial-{}", std::process::id()));
    std::fs::File::create(&partial)
        .and_then(|mut f| {
            std::io::Write::write_all(&mut f, bytes)?;
            f.sync_all()
        })
        .and_then(|()| std::fs::rename(&partial, path))
        .map_err(file_error(Action::Write, path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_become_safe_keys() {
        assert_eq!(
            run_key("Load@2", "manual__2026-01-31T02:00:00+00:00", "run.json"),
            "runs/Load%402/manual__2026-01-31T02%3A00%3A00%2B00%3A00/run.json"
        );
        assert_eq!(file_name("../etc"), "%2E.%2Fetc");
        assert_eq!(
            stage_key("F", "r", "s.failed", "db"),
            "runs/F/r/stages/s.failed.db"
        );
    }

    #[test]
    fn locations_are_folders_or_buckets() {
        assert!(matches!(
            Location::parse("file:///srv/state"),
            Ok(Location::Folder(_))
        ));
        assert!(matches!(
            Location::parse("/srv/state"),
            Ok(Location::Folder(_))
        ));
        assert!(Location::parse("file://relative").is_err());
        assert!(matches!(
            Location::parse("s3://bucket/x"),
            Ok(Location::Bucket(_))
        ));
        assert!(Location::parse("s3://").is_err());
        assert!(Location::parse("http://x").is_err());
    }

    #[test]
    fn errors_say_what_failed_on_which_file_or_object() {
        let text = |r: Result<Location, Error>| r.err().map(|e| e.to_string());
        assert_eq!(
            text(Location::parse("http://x")).as_deref(),
            Some("`http://x`: the state location is a folder, file:///path or s3://bucket/prefix")
        );
        assert_eq!(
            text(Location::parse("s3://")).as_deref(),
            Some("`s3://`: no bucket")
        );
        let refused = Error::Refused {
            action: Action::Write,
            object: "s3://b/runs/F/r/run.json".into(),
            status: 403,
            body: "denied".into(),
        };
        assert_eq!(
            refused.to_string(),
            "cannot write s3://b/runs/F/r/run.json: HTTP 403: denied"
        );
        let file = Error::File {
            action: Action::Create,
            path: "/srv/state/runs".into(),
            source: std::io::Error::from(std::io::ErrorKind::PermissionDenied),
        };
        assert!(
            file.to_string()
                .starts_with("cannot create /srv/state/runs: ")
        );
    }
}
