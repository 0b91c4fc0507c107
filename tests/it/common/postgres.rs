//! A real PostgreSQL server for the tests of stages on one: Debian's `initdb` and `pg_ctl` in
//! a temporary folder, listening on a free 127.0.0.1 port (and a Unix socket in the folder),
//! started once per run of the test binary and stopped when the binary exits: a watcher
//! process waits for it to end, then stops the server and removes the folder. Each test makes
//! a database of its own.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// The server's superuser and password (connectors read it as `${PGPASSWORD}`).
pub const USER: &str = "wv";
pub const PASSWORD: &str = "pw-5d2a91c7-test-server";

pub struct Server {
    pub port: u16,
    bin: PathBuf,
}

/// The server of this run of the tests, started at the first call.
pub fn server() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(start)
}

/// The folder of PostgreSQL's programs: `initdb` on the PATH (Debian's are not), else the
/// newest version under /usr/lib/postgresql.
fn bin_dir() -> PathBuf {
    let on_path = std::env::var_os("PATH")
        .map(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join("initdb"))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default()
        .into_iter()
        .find(|p| p.is_file())
        .and_then(|p| std::fs::canonicalize(p).ok());
    if let Some(initdb) = on_path {
        return initdb.parent().unwrap().to_path_buf();
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|dir| dir.flatten().map(|e| e.path().join("bin")).collect())
        .unwrap_or_default();
    versions.retain(|b| b.join("initdb").is_file());
    versions.sort_by_key(|b| {
        b.parent()
            .and_then(|v| v.file_name()?.to_str()?.parse::<u32>().ok())
            .unwrap_or(0)
    });
    versions.pop().unwrap_or_else(|| {
        panic!(
            "PostgreSQL is not installed: scripts/test.sh installs Debian's `postgresql` package"
        )
    })
}

/// The OS user the server runs as: PostgreSQL refuses to run as root.
fn os_user() -> Option<&'static str> {
    // SAFETY: geteuid reads the process's effective user id and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return None;
    }
    let has = |u: &str| {
        Command::new("id")
            .arg(u)
            .output()
            .is_ok_and(|o| o.status.success())
    };
    Some(if has("postgres") {
        "postgres"
    } else {
        "nobody"
    })
}

/// `program args...`, as the server's OS user.
fn as_server(bin: &Path, program: &str) -> Command {
    let path = bin.join(program);
    match os_user() {
        Some(user) => {
            let mut c = Command::new("runuser");
            c.args(["-u", user, "--"]).arg(path);
            c
        }
        None => Command::new(path),
    }
}

fn check(what: &str, c: &mut Command) {
    let o = c.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        o.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

// The watcher is never waited for: it outlives the test binary, to stop the server after it.
#[allow(clippy::zombie_processes)]
fn start() -> Server {
    let bin = bin_dir();
    let dir = tempfile::Builder::new()
        .prefix("wvflow-pg-")
        .tempdir()
        .expect("a temporary folder")
        .keep();
    std::fs::write(dir.join("pw"), PASSWORD).unwrap();
    if let Some(user) = os_user() {
        check("chown", Command::new("chown").args(["-R", user]).arg(&dir));
    }
    check(
        "initdb",
        as_server(&bin, "initdb")
            .arg("-D")
            .arg(dir.join("data"))
            .args([
                "-U",
                USER,
                "-A",
                "scram-sha-256",
                "-E",
                "UTF8",
                "--locale=C",
            ])
            .arg(format!("--pwfile={}", dir.join("pw").display())),
    );
    // A port free now; another process may take it before the server does: then the next.
    let mut started = None;
    for _ in 0..5 {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let ok = as_server(&bin, "pg_ctl")
            .arg("-D")
            .arg(dir.join("data"))
            .arg("-l")
            .arg(dir.join("log"))
            .args(["-w", "-t", "120", "-o"])
            .arg(format!(
                "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
                dir.display()
            ))
            .arg("start")
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            started = Some(port);
            break;
        }
    }
    let port = started.unwrap_or_else(|| {
        panic!(
            "the PostgreSQL server did not start: {}",
            std::fs::read_to_string(dir.join("log")).unwrap_or_default()
        )
    });
    // Stops the server and removes its folder once this test binary has ended.
    let stop = format!(
        "while kill -0 {pid} 2>/dev/null; do sleep 1; done; {runas}{pg_ctl} -D {data} stop -m immediate; rm -rf {dir}",
        pid = std::process::id(),
        runas = os_user()
            .map(|u| format!("runuser -u {u} -- "))
            .unwrap_or_default(),
        pg_ctl = bin.join("pg_ctl").display(),
        data = dir.join("data").display(),
        dir = dir.display(),
    );
    Command::new("sh")
        .args(["-c", &stop])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the server's watcher starts");
    Server { port, bin }
}

impl Server {
    /// A new empty database `name` (dropped first if an earlier run left it).
    pub fn database(&self, name: &str) {
        self.psql(
            "postgres",
            &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
        );
        self.psql("postgres", &format!("CREATE DATABASE {name}"));
    }

    /// `sql` run by `psql` on database `db`: its rows, unaligned, `|` between columns.
    pub fn psql(&self, db: &str, sql: &str) -> String {
        let psql = self.bin.join("psql");
        let o = Command::new(if psql.is_file() {
            psql
        } else {
            PathBuf::from("psql")
        })
        .args([
            "-X",
            "-At",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            "127.0.0.1",
            "-U",
            USER,
        ])
        .args(["-p", &self.port.to_string(), "-d", db, "-c", sql])
        .env("PGPASSWORD", PASSWORD)
        .output()
        .expect("psql runs");
        assert!(
            o.status.success(),
            "psql {sql}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// A `wvflow.toml` declaring connector `pg` on database `db`, its password read from
    /// `PGPASSWORD`.
    pub fn toml(&self, db: &str) -> String {
        format!(
            "[connectors.pg]\nkind = \"postgres\"\nurl = \"postgresql://{USER}:${{PGPASSWORD}}@127.0.0.1:{}/{db}\"\n",
            self.port
        )
    }
}

/// The variable `examples/wvflow.toml` builds its `warehouse` connector's url from
/// (`postgresql://${WVFLOW_EXAMPLE_PG}`).
pub const EXAMPLE_VAR: &str = "WVFLOW_EXAMPLE_PG";

/// The environment the runs of the examples need: `WVFLOW_EXAMPLE_PG` naming the database
/// `wvex_NAME` of this server, made at the first call for `name`, so that tests running the
/// examples at once each save to tables of their own.
pub fn example_env(name: &str) -> Vec<(&'static str, String)> {
    static MADE: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    let pg = server();
    let db = format!("wvex_{name}");
    let mut made = MADE.lock().unwrap_or_else(|e| e.into_inner());
    if !made.contains(&db) {
        pg.database(&db);
        made.push(db.clone());
    }
    vec![(
        EXAMPLE_VAR,
        format!("{USER}:{PASSWORD}@127.0.0.1:{}/{db}", pg.port),
    )]
}
