//! Exported DAGs on a real Airflow 3.3 deployment: a LocalExecutor scheduler, a
//! dag-processor and an API server on 127.0.0.1, runs triggered through the REST API. Unlike
//! `airflow dags test` (one process, pools ignored), every task is queued by the scheduler,
//! holds its pool and runs as a process of its own, retried by the scheduler. Each run must
//! end as `wvflow run` of the same flow and arguments ends.

use crate::export::{examples_copy, outcome, python, text, wvflow_at};
use serde_json::{Value, json};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A fan-out whose second item fails its first attempt: the scheduler retries that item's
/// mapped task alone.
const FAN_RETRY: &str = r#"activity flaky(n: int) with { timeout: 30s } = sh("""
  if [ "$WV_N" = "2" ] && [ "$WVFLOW_ATTEMPT" = "1" ]; then
    echo "item $WV_N: first attempt fails" >&2
    exit 1
  fi
  printf '{"n": %s, "attempt": %s}\n' "$WV_N" "$WVFLOW_ATTEMPT"
""")

flow FanRetry = {
  stage items = from [[1], [2], [3]] as t(n)
  stage probed [concurrency: 2, retries: 2, retry_delay: 1s] = from items | each flaky(_.n)
  stage total = from probed | select count(*) as items, sum(attempt) as attempts
}
"#;

/// A run someone marks failed in Airflow while its second stage runs.
const HELD: &str = r#"activity book = sh("""echo '{"ref": 1}'""")
activity undo = sh("""cat >/dev/null; touch undone""")
activity slow = sh("""cat >/dev/null; sleep 120""")

flow Held = {
  stage booked with { compensate: undo() } = book()
  stage held = from booked | slow()
}
"#;

/// Generous: five runs and their child runs, about 60 task processes of Airflow's (seconds of
/// CPU each to start), on a 2-core machine shared with another test.
const DEADLINE: Duration = Duration::from_secs(900);

fn first_json(o: &Output) -> Value {
    serde_json::Deserializer::from_slice(&o.stdout)
        .into_iter()
        .next()
        .and_then(Result::ok)
        .unwrap_or_else(|| panic!("no JSON: {}", text(o)))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A run id as one segment of a URL path (Airflow's contain `:` and `+`).
fn segment(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Polls `ready` until it holds; fails with `what` after `within`.
fn wait_for(within: Duration, what: &str, mut ready: impl FnMut() -> bool) {
    wait_seeing(within, what, |_| ready());
}

/// [`wait_for`], where `ready` also says what it saw, which the failure shows.
fn wait_seeing(within: Duration, what: &str, mut ready: impl FnMut(&mut String) -> bool) {
    let deadline = Instant::now() + within;
    let mut seen = String::new();
    while !ready(&mut seen) {
        assert!(
            Instant::now() < deadline,
            "{what}: not within {within:?}; last seen: {seen}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// An Airflow home in a scratch folder and the servers started on it. Dropping it stops
/// every process it started, and every process they started (found by the home in their
/// environment, which each task inherits), even when the test fails half-way.
struct Airflow {
    home: PathBuf,
    env: Vec<(String, String)>,
    port: u16,
    address: String,
    servers: Vec<(String, Child)>,
    agent: ureq::Agent,
    token: String,
}

impl Airflow {
    fn new(home: PathBuf, dags: &Path) -> Airflow {
        std::fs::create_dir_all(&home).unwrap();
        let port = free_port();
        let address = format!("http://127.0.0.1:{port}");
        let database = format!("sqlite:///{}/airflow.db?timeout=60", home.display());
        let env: Vec<(String, String)> = [
            ("AIRFLOW_HOME", home.to_str().unwrap()),
            ("AIRFLOW__CORE__DAGS_FOLDER", dags.to_str().unwrap()),
            ("AIRFLOW__CORE__LOAD_EXAMPLES", "False"),
            ("AIRFLOW__CORE__UNIT_TEST_MODE", "False"),
            // The default of Airflow 3 and accepted with its default SQLite database: no
            // configuration check refuses the pair (airflow/configuration.py validates the
            // SQLite version only), so no PostgreSQL is needed.
            ("AIRFLOW__CORE__EXECUTOR", "LocalExecutor"),
            // SQLite's wait for a lock held by another of the four processes: 60 s, not
            // Python's 5 s, which a loaded machine exceeds.
            ("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", &database),
            ("AIRFLOW__CORE__PARALLELISM", "6"),
            ("AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION", "False"),
            ("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS", "True"),
            ("AIRFLOW__API__WORKERS", "1"),
            // Where the executor's task processes reach the Execution API.
            ("AIRFLOW__API__BASE_URL", &address),
            // The scheduler signs the tasks' tokens, the API server checks them.
            (
                "AIRFLOW__API_AUTH__JWT_SECRET",
                "wvflow-scheduler-test-0123456789abcdef0123456789abcdef0123456789abcdef",
            ),
            // The scheduler's log server, off its fixed default port (other tests, other
            // deployments on this machine).
            (
                "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT",
                &free_port().to_string(),
            ),
            ("AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL", "2"),
            // What `wvflow_pools` reads the pools through.
            ("AIRFLOW_CONN_WVFLOW_AIRFLOW_API", &address),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        Airflow {
            home,
            env,
            port,
            address,
            servers: Vec::new(),
            agent: ureq::Agent::config_builder()
                .http_status_as_error(false)
                .timeout_global(Some(Duration::from_secs(30)))
                .build()
                .into(),
            token: String::new(),
        }
    }

    fn airflow(&self, args: &[&str]) -> Command {
        let mut command = Command::new(python().parent().unwrap().join("airflow"));
        command
            .args(args)
            .envs(self.env.iter().map(|(k, v)| (k, v)));
        command
    }

    fn run(&self, args: &[&str]) {
        let o = self.airflow(args).output().unwrap();
        assert!(o.status.success(), "airflow {args:?}: {}", text(&o));
    }

    /// `airflow NAME ARGS` in a process group of its own, its output in the home's NAME.log.
    fn start(&mut self, name: &str, args: &[&str]) {
        let log = std::fs::File::create(self.home.join(format!("{name}.log"))).unwrap();
        let mut words = vec![name];
        words.extend(args);
        let child = self
            .airflow(&words)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .process_group(0)
            .spawn()
            .unwrap();
        self.servers.push((name.to_string(), child));
    }

    /// Fails the test when a server has ended, with the end of its log.
    fn check_servers(&mut self) {
        for (name, child) in &mut self.servers {
            if let Some(status) = child.try_wait().unwrap() {
                let log = std::fs::read_to_string(self.home.join(format!("{name}.log")))
                    .unwrap_or_default();
                let tail = &log[log.len().saturating_sub(4000)..];
                panic!("airflow {name} ended ({status}):\n{tail}");
            }
        }
    }

    /// One request, sent again while Airflow answers with a database error: its SQLite
    /// metadata database, shared by four processes on a busy machine, refuses a write now and
    /// then ("database is locked"), and the request's transaction is rolled back whole.
    fn call(&self, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
        let mut tries = 0;
        loop {
            let (status, answer) = self.call_once(method, path, body);
            let locked = status == 500 && answer["detail"]["reason"] == "Database error";
            tries += 1;
            if !locked || tries == 10 {
                return (status, answer);
            }
            std::thread::sleep(Duration::from_secs(1));
        }
    }

    fn call_once(&self, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
        let url = format!("{}{path}", self.address);
        let bearer = format!("Bearer {}", self.token);
        let response = match (method, body) {
            (_, None) => self.agent.get(&url).header("Authorization", &bearer).call(),
            ("PATCH", Some(body)) => self
                .agent
                .patch(&url)
                .header("Authorization", &bearer)
                .header("Content-Type", "application/json")
                .send(body.to_string()),
            (_, Some(body)) => self
                .agent
                .post(&url)
                .header("Authorization", &bearer)
                .header("Content-Type", "application/json")
                .send(body.to_string()),
        };
        match response {
            Ok(mut r) => {
                let status = r.status().as_u16();
                let text = r.body_mut().read_to_string().unwrap_or_default();
                (
                    status,
                    serde_json::from_str(&text).unwrap_or(Value::String(text)),
                )
            }
            Err(e) => (0, Value::String(format!("{method} {path}: {e}"))),
        }
    }

    fn get(&self, path: &str) -> Value {
        let (status, body) = self.call("GET", path, None);
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }

    /// The processes left with this home in their environment, other than the servers.
    fn strays(&self) -> Vec<i32> {
        let marker = format!("AIRFLOW_HOME={}\0", self.home.display()).into_bytes();
        let mut found = Vec::new();
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            // Another user's processes cannot be read: they are not ours.
            let Ok(environ) = std::fs::read(entry.path().join("environ")) else {
                continue;
            };
            if environ
                .windows(marker.len())
                .any(|w| w == marker.as_slice())
            {
                found.push(pid);
            }
        }
        found
    }

    /// Stops the servers (their process groups: SIGTERM, then SIGKILL after a grace), then
    /// any process that still carries this home, and says which ones had to be killed so.
    fn stop(&mut self) -> Vec<i32> {
        for (_, child) in &self.servers {
            unsafe { libc::kill(-(child.id() as i32), libc::SIGTERM) };
        }
        let grace = Instant::now() + Duration::from_secs(30);
        for (_, child) in &mut self.servers {
            while child.try_wait().ok().flatten().is_none() && Instant::now() < grace {
                std::thread::sleep(Duration::from_millis(100));
            }
            unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
            let _ = child.wait();
        }
        self.servers.clear();
        let strays = self.strays();
        for &pid in &strays {
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        strays
    }
}

impl Drop for Airflow {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `wvflow run examples/approval.wv` released by the documented signal once it waits at
/// its gate: its summary.
fn approved_reference(dir: &Path) -> Value {
    struct Kill(Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut run = Kill(
        Command::new(env!("CARGO_BIN_EXE_wvflow"))
            .args(["run", "examples/approval.wv", "--format", "json"])
            .current_dir(dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let runs = |args: &[&str]| {
        let mut words = vec!["runs", "-w", "examples"];
        words.extend(args);
        wvflow_at(dir, &words)
    };
    let mut id = String::new();
    wait_for(Duration::from_secs(60), "the reference run to wait", || {
        let listed = runs(&["list", "--state", "running", "--format", "json"]);
        let listed: Value = serde_json::from_slice(&listed.stdout).unwrap_or(Value::Null);
        let Some(run) = listed[0]["run_id"].as_str() else {
            return false;
        };
        id = run.to_string();
        String::from_utf8_lossy(&runs(&["query", run, "progress"]).stdout).trim() == "1/3"
    });
    let sent = runs(&["signal", &id, "approved", "true"]);
    assert!(sent.status.success(), "{}", text(&sent));
    let mut child = run.0.stdout.take().unwrap();
    let mut out = Vec::new();
    std::io::Read::read_to_end(&mut child, &mut out).unwrap();
    let _ = run.0.wait();
    serde_json::from_slice(&out).unwrap()
}

/// One run on Airflow: its DAG, the arguments it is triggered with, its `wvflow run`
/// summary, and once triggered its run id.
struct Case {
    dag: &'static str,
    conf: Value,
    reference: Value,
    run_id: String,
    state: String,
}

/// The five runs the issue names (a saga that compensates, a fan-out with an item retry, a
/// pool, a signal, child flows), each triggered on a LocalExecutor scheduler through the REST
/// API, end as `wvflow run` ends: run state, each stage's state, rows, attempts and error, and
/// the compensations. Airflow's own record agrees: each stage task ended as its stage did,
/// every task ran as a process of its own after the scheduler queued it, the failing item was
/// retried by the scheduler, the pooled items held the pool (never more of them at once than
/// its slots), the gate was released by a signal sent while its check waited for its next poke holding no
/// worker (a sensor in reschedule mode), and each child
/// run was a DAG run of the child's DAG, a failed child started again as a new run. Then a run
/// marked failed, and a jump.
#[test]
fn exported_runs_on_a_localexecutor_scheduler_end_as_wvflow_runs() {
    let started = Instant::now();
    let dir = examples_copy("airflow_scheduler");
    std::fs::write(dir.join("examples/fan_retry.wv"), FAN_RETRY).unwrap();
    std::fs::write(dir.join("examples/held.wv"), HELD).unwrap();
    std::fs::write(dir.join("examples/jumps.wv"), crate::export_jumps::JUMPS).unwrap();
    std::fs::write(dir.join("examples/data.csv"), "a,b\n1,2\n").unwrap();
    let workspace = dir.join("examples").canonicalize().unwrap();
    let state = dir.join("state");
    let dags = dir.join("dags");
    std::fs::create_dir_all(&state).unwrap();
    std::fs::create_dir_all(&dags).unwrap();
    for (file, flow) in [
        ("examples/booking_saga.wv", "BookTrip"),
        ("examples/fan_retry.wv", "FanRetry"),
        ("examples/gpu_pool.wv", "TrainModels"),
        ("examples/approval.wv", "ApproveRelease"),
        ("examples/held.wv", "Held"),
        ("examples/jumps.wv", "Hand"),
        ("examples/jumps.wv", "Publish"),
        ("examples/customer_enrichment.wv", "EnrichCustomers"),
        ("examples/customer_enrichment.wv", "EnrichOne"),
    ] {
        let o = wvflow_at(
            &dir,
            &[
                "export",
                file,
                flow,
                "--target",
                "airflow",
                "--wvflow",
                env!("CARGO_BIN_EXE_wvflow"),
                "--workspace",
                workspace.to_str().unwrap(),
                "--state",
                state.to_str().unwrap(),
                "-o",
                dags.join(format!("{flow}.py")).to_str().unwrap(),
            ],
        );
        assert_eq!(o.status.code(), Some(0), "{file} {flow}: {}", text(&o));
    }

    // The references, from a copy of their own (its run store apart from Airflow's state).
    let reference_dir = examples_copy("airflow_scheduler_reference");
    std::fs::write(reference_dir.join("examples/fan_retry.wv"), FAN_RETRY).unwrap();
    let reference = |args: &[&str]| {
        let mut words = vec!["run"];
        words.extend(args);
        words.extend(["--format", "json"]);
        first_json(&wvflow_at(&reference_dir, &words))
    };
    let mut cases = vec![
        Case {
            dag: "BookTrip",
            conf: json!({"decline_card": true}),
            reference: reference(&["examples/booking_saga.wv", "BookTrip(decline_card = true)"]),
            run_id: String::new(),
            state: String::new(),
        },
        Case {
            dag: "FanRetry",
            conf: json!({}),
            reference: reference(&["examples/fan_retry.wv", "FanRetry"]),
            run_id: String::new(),
            state: String::new(),
        },
        Case {
            dag: "TrainModels",
            conf: json!({}),
            reference: reference(&["examples/gpu_pool.wv", "TrainModels"]),
            run_id: String::new(),
            state: String::new(),
        },
        Case {
            dag: "ApproveRelease",
            conf: json!({}),
            reference: approved_reference(&reference_dir),
            run_id: String::new(),
            state: String::new(),
        },
        Case {
            dag: "EnrichCustomers",
            conf: json!({}),
            reference: reference(&["examples/customer_enrichment.wv", "EnrichCustomers"]),
            run_id: String::new(),
            state: String::new(),
        },
    ];
    // What each reference shows, so that the comparison means what the test says.
    assert_eq!(
        cases[0].reference["compensations"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    assert_eq!(cases[1].reference["stages"][1]["attempts"], 2);

    let mut airflow = Airflow::new(dir.join("airflow"), &dags);
    airflow.run(&["db", "migrate"]);
    airflow.run(&["pools", "set", "gpu", "2", "wvflow pool gpu"]);
    // The API server's command line, not [api] host and port, says where it listens.
    let port = airflow.port.to_string();
    airflow.start("api-server", &["--host", "127.0.0.1", "--port", &port]);
    airflow.start("scheduler", &[]);
    airflow.start("dag-processor", &[]);
    // A call stage's triggers wait for their child runs deferred, in the triggerer.
    airflow.start("triggerer", &[]);
    // The API server answers once it runs, and gives a token: every user is an admin.
    wait_for(DEADLINE, "the API server", || {
        airflow.check_servers();
        let (status, body) = airflow.call("GET", "/auth/token", None);
        if let Some(token) = body["access_token"].as_str() {
            airflow.token = token.to_string();
        }
        (200..300).contains(&status)
    });
    wait_for(DEADLINE, "the exported DAGs to be parsed", || {
        airflow.check_servers();
        cases
            .iter()
            .map(|c| c.dag)
            .chain(["Held", "Hand", "Publish", "EnrichOne"])
            .all(|dag| airflow.call("GET", &format!("/api/v2/dags/{dag}"), None).0 == 200)
    });
    let up = started.elapsed();
    for case in &mut cases {
        let (status, run) = airflow.call(
            "POST",
            &format!("/api/v2/dags/{}/dagRuns", case.dag),
            Some(&json!({"logical_date": null, "conf": case.conf})),
        );
        assert_eq!(status, 200, "{}: {run}", case.dag);
        case.run_id = run["dag_run_id"].as_str().unwrap().to_string();
    }

    let tasks = |airflow: &Airflow, case: &Case| -> Vec<Value> {
        airflow.get(&format!(
            "/api/v2/dags/{}/dagRuns/{}/taskInstances?limit=100",
            case.dag,
            segment(&case.run_id)
        ))["task_instances"]
            .as_array()
            .unwrap()
            .clone()
    };
    let mut signalled = false;
    wait_seeing(DEADLINE, "the five runs to end", |seen| {
        airflow.check_servers();
        for case in &mut cases {
            let run = airflow.get(&format!(
                "/api/v2/dags/{}/dagRuns/{}",
                case.dag,
                segment(&case.run_id)
            ));
            case.state = run["state"].as_str().unwrap_or_default().to_string();
        }
        // The gate's check is waiting for its next poke, holding no worker: the run waits
        // for its signal. Until the signal the sensor cycles through that state, so a look
        // finds it there; should none ever do, the wait fails at its deadline, saying so.
        let approve = &cases[3];
        let waiting = tasks(&airflow, approve)
            .iter()
            .any(|t| t["task_id"] == "approval.wait" && t["state"] == "up_for_reschedule");
        if !signalled && waiting {
            let runs = |args: &[&str]| {
                let mut words = vec!["runs"];
                words.extend(args);
                words.extend([
                    "--state",
                    state.to_str().unwrap(),
                    "--flow",
                    "ApproveRelease",
                ]);
                wvflow_at(&dir, &words)
            };
            let query = runs(&["query", &approve.run_id, "progress"]);
            assert_eq!(text(&query).trim(), "1/3", "a query of the waiting run");
            let sent = runs(&["signal", &approve.run_id, "approved", "true"]);
            assert_eq!(
                text(&sent).trim(),
                format!("signal approved = true sent to run {}", approve.run_id)
            );
            signalled = true;
        }
        *seen = cases
            .iter()
            .filter(|c| c.state != "success" && c.state != "failed")
            .map(|c| {
                let running: Vec<String> = tasks(&airflow, c)
                    .iter()
                    .filter(|t| !matches!(t["state"].as_str(), Some("success" | "skipped")))
                    .map(|t| format!("{}={}", t["task_id"], t["state"]))
                    .collect();
                format!("{} {} [{}]", c.dag, c.state, running.join(", "))
            })
            .collect::<Vec<_>>()
            .join("; ");
        cases
            .iter()
            .all(|c| c.state == "success" || c.state == "failed")
    });
    assert!(
        signalled,
        "the gate's check was never seen waiting for its next poke"
    );
    let ended = started.elapsed();

    let mut pids = Vec::new();
    for case in &cases {
        let what = format!("{} on Airflow's scheduler", case.dag);
        // The run's summary, in the state folder under its flow and Airflow's run id.
        let runs = state.join("runs").join(case.dag);
        let folders: Vec<PathBuf> = std::fs::read_dir(&runs)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(folders.len(), 1, "{what}: {folders:?}");
        let summary: Value =
            serde_json::from_slice(&std::fs::read(folders[0].join("summary.json")).unwrap())
                .unwrap_or_else(|e| panic!("{what}: no summary: {e}"));
        assert_eq!(summary["run_id"], case.run_id.as_str(), "{what}");
        assert_eq!(outcome(&summary), outcome(&case.reference), "{what}");
        assert_eq!(
            summary["state"],
            case.state.as_str(),
            "{what}: the DAG run's state"
        );

        let tis = tasks(&airflow, case);
        let task = |id: &str| -> &Value {
            tis.iter()
                .find(|t| t["task_id"] == id && t["map_index"] == -1)
                .unwrap_or_else(|| panic!("{what}: no task {id}: {tis:#?}"))
        };
        // Each stage's task ended as its stage (a fan-out's gathering task is the stage's).
        for stage in summary["stages"].as_array().unwrap() {
            let ti = task(stage["stage"].as_str().unwrap());
            assert_eq!(ti["state"], stage["state"], "{what}: {ti:#}");
        }
        assert_eq!(task("wvflow_init")["state"], "success", "{what}");
        assert_eq!(task("wvflow_finish")["state"], summary["state"], "{what}");
        // Every task the scheduler queued and ran, in a process of its own.
        for ti in &tis {
            assert!(
                ti["queued_when"].is_string(),
                "{what}: never queued: {ti:#}"
            );
            assert!(ti["pid"].is_u64(), "{what}: no process: {ti:#}");
            assert!(ti["hostname"].is_string(), "{what}: {ti:#}");
            pids.push(ti["pid"].as_u64().unwrap());
        }
        let items = |stage: &str| -> Vec<&Value> {
            let mut items: Vec<&Value> = tis
                .iter()
                .filter(|t| t["task_id"] == format!("{stage}.items").as_str())
                .collect();
            items.sort_by_key(|t| t["map_index"].as_i64());
            items
        };
        match case.dag {
            "BookTrip" => {
                // A declined card is not retried: one try, then the saga compensates.
                assert_eq!(task("payment")["try_number"], 1, "{what}");
                assert_eq!(task("payment")["state"], "failed", "{what}");
            }
            "FanRetry" => {
                let tries: Vec<&Value> = items("probed").iter().map(|t| &t["try_number"]).collect();
                assert_eq!(tries, [1, 2, 1], "{what}: the second item retried alone");
                let history = airflow.get(&format!(
                    "/api/v2/dags/FanRetry/dagRuns/{}/taskInstances/probed.items/1/tries",
                    segment(&case.run_id)
                ));
                let states: Vec<&Value> = history["task_instances"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|t| &t["state"])
                    .collect();
                assert_eq!(states.len(), 2, "{what}: {history:#}");
                assert_ne!(states[0], "success", "{what}: {history:#}");
                assert_eq!(states[1], "success", "{what}: {history:#}");
            }
            "TrainModels" => {
                assert_eq!(task("wvflow_pools")["state"], "success", "{what}");
                let items = items("trained");
                assert_eq!(items.len(), 3, "{what}");
                // Each item held the pool, which Airflow counts from the task's queueing
                // to its end: never more items in it at once than its two slots, by the
                // times Airflow recorded (without the pool, all three are queued at once).
                let held = |t: &Value| {
                    let at = |k: &str| {
                        chrono::DateTime::parse_from_rfc3339(t[k].as_str().unwrap()).unwrap()
                    };
                    (at("queued_when"), at("end_date"))
                };
                for item in &items {
                    assert_eq!(item["pool"], "gpu", "{what}: {item:#}");
                    let (queued, _) = held(item);
                    let holding = items
                        .iter()
                        .filter(|other| {
                            let (from, to) = held(other);
                            from <= queued && queued < to
                        })
                        .count();
                    assert!(
                        holding <= 2,
                        "{what}: {holding} items in the pool: {items:#?}"
                    );
                }
            }
            "ApproveRelease" => {
                // The sensor ended once the signal opened the gate; the stage ran once after.
                assert_eq!(task("approval.wait")["state"], "success", "{what}");
                assert_eq!(task("approval")["try_number"], 1, "{what}");
            }
            "EnrichCustomers" => {
                // One DAG run of EnrichOne per child, the blocked customer's twice (its
                // retry is a new run), each under the run id the gathering reads.
                let children = items("enriched");
                assert!(children.is_empty(), "{what}: no item tasks: {children:#?}");
                let mut tries: Vec<(i64, i64)> = tis
                    .iter()
                    .filter(|t| t["task_id"] == "enriched.children")
                    .map(|t| {
                        (
                            t["map_index"].as_i64().unwrap(),
                            t["try_number"].as_i64().unwrap(),
                        )
                    })
                    .collect();
                tries.sort();
                assert_eq!(tries, [(0, 1), (1, 1), (2, 2), (3, 1)], "{what}");
                let runs = airflow.get("/api/v2/dags/EnrichOne/dagRuns?limit=100");
                let mut ids: Vec<String> = runs["dag_runs"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|r| r["dag_run_id"].as_str().unwrap().to_string())
                    .collect();
                ids.sort();
                let expected: Vec<String> = ["0-1", "1-1", "2-1", "2-2", "3-1"]
                    .iter()
                    .map(|item_try| format!("{}-enriched-{item_try}", case.run_id))
                    .collect();
                assert_eq!(ids, expected, "{what}");
            }
            _ => unreachable!(),
        }
    }
    marked_failed(&airflow, &dir, &state);
    jumped(&airflow, &dir);
    let count = pids.len();
    pids.sort();
    pids.dedup();
    assert_eq!(pids.len(), count, "each task a process of its own");

    let strays = airflow.stop();
    assert_eq!(
        strays,
        Vec::<i32>::new(),
        "processes left after the servers stopped"
    );
    eprintln!(
        "Airflow's scheduler: up at {up:?}, the runs ended at {ended:?}, stopped at {:?}",
        started.elapsed()
    );
}

/// Marking a run failed in Airflow stops its running task and skips what had not started;
/// `wvflow_finish`, a teardown, still runs: the stage that never ended counts as cancelled,
/// the run fails, and the stage that succeeded is compensated.
fn marked_failed(airflow: &Airflow, dir: &Path, state: &Path) {
    let (status, run) = airflow.call(
        "POST",
        "/api/v2/dags/Held/dagRuns",
        Some(&json!({"logical_date": null, "conf": {}})),
    );
    assert_eq!(status, 200, "{run}");
    let run_id = segment(run["dag_run_id"].as_str().unwrap());
    let tasks = || -> Vec<Value> {
        airflow.get(&format!(
            "/api/v2/dags/Held/dagRuns/{run_id}/taskInstances?limit=100"
        ))["task_instances"]
            .as_array()
            .unwrap()
            .clone()
    };
    let state_of = |tasks: &[Value], id: &str| -> Value {
        tasks
            .iter()
            .find(|t| t["task_id"] == id)
            .map_or(Value::Null, |t| t["state"].clone())
    };
    wait_for(DEADLINE, "the held stage to run", || {
        state_of(&tasks(), "held") == "running"
    });
    let (status, marked) = airflow.call(
        "PATCH",
        &format!("/api/v2/dags/Held/dagRuns/{run_id}"),
        Some(&json!({"state": "failed"})),
    );
    assert_eq!(status, 200, "{marked}");
    let runs = state.join("runs").join("Held");
    let summary = || -> Option<Value> {
        let folder = std::fs::read_dir(&runs).ok()?.next()?.ok()?.path();
        serde_json::from_slice(&std::fs::read(folder.join("summary.json")).ok()?).ok()
    };
    wait_for(DEADLINE, "wvflow_finish to decide the marked run", || {
        summary().is_some() && state_of(&tasks(), "wvflow_finish") == "failed"
    });
    let summary = summary().unwrap();
    assert_eq!(summary["state"], "failed", "{summary}");
    assert_eq!(summary["stages"][0]["state"], "success", "{summary}");
    assert_eq!(summary["stages"][1]["state"], "cancelled", "{summary}");
    assert_eq!(summary["compensations"][0]["stage"], "booked", "{summary}");
    assert_eq!(summary["compensations"][0]["state"], "success", "{summary}");
    assert!(dir.join("examples/undone").exists(), "the compensation ran");
    let tasks = tasks();
    assert_eq!(state_of(&tasks, "wvflow_result"), "skipped", "{tasks:#?}");
}

/// A run that succeeds and reaches a jump: its `wvflow_start` triggers the target's DAG under
/// a run id made from its own, with the arguments typed as `wvflow run` gives them.
fn jumped(airflow: &Airflow, dir: &Path) {
    let expected = crate::export_jumps::reference();
    let (status, run) = airflow.call(
        "POST",
        "/api/v2/dags/Hand/dagRuns",
        Some(&json!({"logical_date": null, "conf": {}})),
    );
    assert_eq!(status, 200, "{run}");
    let run_id = run["dag_run_id"].as_str().unwrap().to_string();
    let next = format!("{run_id}.next");
    // Not found (yet): no state.
    let state_of = |dag: &str, id: &str| -> String {
        let path = format!("/api/v2/dags/{dag}/dagRuns/{}", segment(id));
        let (_, run) = airflow.call("GET", &path, None);
        run["state"].as_str().unwrap_or_default().to_string()
    };
    wait_for(DEADLINE, "the jump's run of Publish to end", || {
        matches!(state_of("Publish", &next).as_str(), "success" | "failed")
    });
    assert_eq!(state_of("Hand", &run_id), "success");
    assert_eq!(state_of("Publish", &next), "success");
    let published = std::fs::read_to_string(dir.join("examples/published.json")).unwrap();
    assert_eq!(
        published, expected,
        "the values the target's activity was given"
    );
}
