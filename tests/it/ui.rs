//! `wvflow ui`: its HTTP API as other tools use it, who may act, and the page driven in the
//! system Chromium (tests/ui/browser.mjs, set up by scripts/test.sh).

use crate::common::{scratch, wvflow};
use serde_json::{Value, json};
use std::io::{BufRead, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const FLOWS: &str = r#"activity slow(seconds: int) = sh("""sleep "$WV_SECONDS"; echo '{"done": true}'""")
activity broken = sh("""echo 'disk full on /data <img src=x onerror="window.pwned=1">' >&2; exit 3""")
activity echo_args(label: string, loud: boolean, pause: duration, ratio: float) = sh("""
  printf '{"label": "%s", "loud": "%s", "pause": "%s", "ratio": "%s"}\n' "$WV_LABEL" "$WV_LOUD" "$WV_PAUSE" "$WV_RATIO"
""")
flow Slow(seconds: int = 2) = {
  stage first = from [[1, 'a'], [2, 'b']] as t(n, name)
  stage work = slow(seconds)
  stage after = from work | select done
}
flow Broken = {
  stage ok = from [[1]] as t(n)
  stage bad = broken()
}
flow Typed(label: string = 'x', loud: boolean = false, pause: duration = 1s, ratio: float = 0.5) = {
  stage show = echo_args(label, loud, pause, ratio)
}
flow Nightly with {
  schedule: cron('30 1 * * *')
  timezone: 'Europe/Berlin'
} = {
  stage a = from [[1]] as t(n)
}
flow Long(upto: int = 5) = {
  stage counter [continue_as_new: 2] = from [[0]] as t(n) | while n < upto | select n + 1 as n
}
flow Waits = {
  signal approved = false
  stage gate [poll_interval: 50ms, timeout: 30s] = wait until approved
  stage done = from gate | select 1 as n
}
"#;

/// `wvflow ui` on a workspace, stopped when dropped.
struct Ui {
    child: Child,
    base: String,
    token: String,
    dir: PathBuf,
}

impl Ui {
    fn start(dir: &Path) -> Ui {
        Ui::start_with(Path::new(env!("CARGO_BIN_EXE_wvflow")), dir, &[])
    }

    fn start_with(program: &Path, dir: &Path, extra: &[&str]) -> Ui {
        let mut child = Command::new(program)
            .args(["ui", dir.to_str().unwrap(), "--port", "0"])
            .args(extra)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let url = line
            .strip_prefix("wvflow ui: ")
            .unwrap_or_else(|| panic!("{line}"))
            .trim()
            .to_string();
        let (base, token) = url.split_once("/?token=").unwrap();
        assert!(base.starts_with("http://127.0.0.1:"), "{base}");
        let _ = &extra;
        assert_eq!(token.len(), 32, "{token}");
        Ui {
            child,
            base: base.to_string(),
            token: token.to_string(),
            dir: dir.to_path_buf(),
        }
    }

    fn agent() -> ureq::Agent {
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into()
    }

    fn get(&self, path: &str) -> (u16, Value) {
        let mut response = Ui::agent()
            .get(format!("{}{path}", self.base))
            .call()
            .unwrap();
        let status = response.status().as_u16();
        let body = response.body_mut().read_to_string().unwrap();
        (status, serde_json::from_str(&body).unwrap_or(Value::Null))
    }

    /// A POST with the token (`token: None` leaves it out) and, if given, an `Origin`.
    fn post(
        &self,
        path: &str,
        body: Value,
        token: Option<&str>,
        origin: Option<&str>,
    ) -> (u16, Value) {
        let mut request = Ui::agent().post(format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.header("X-Wvflow-Token", token);
        }
        if let Some(origin) = origin {
            request = request.header("Origin", origin);
        }
        let mut response = request.send(body.to_string()).unwrap();
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    fn act(&self, path: &str, body: Value) -> (u16, Value) {
        self.post(path, body, Some(&self.token.clone()), None)
    }

    /// The run once it has ended (or `state` is reached).
    fn wait_for(&self, run_id: &str, state: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (status, run) = self.get(&format!("/api/runs/{run_id}"));
            assert_eq!(status, 200, "{run}");
            if run["state"] == state {
                return run;
            }
            assert!(
                Instant::now() < deadline,
                "run {run_id} never got {state}: {run}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Ui {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The API answers what `wvflow runs` prints, starts flows with typed arguments bound as
/// `wvflow run` binds them, and refuses actions without the token, from another origin, or
/// addressed by another name.
#[test]
fn ui_api_reads_runs_and_acts_only_with_the_token() {
    let dir = scratch("ui_api", &[("flows.wv", FLOWS)]);
    let ui = Ui::start(&dir);

    // Nothing recorded yet: an empty list, not an error.
    assert_eq!(ui.get("/api/runs"), (200, json!({ "runs": [], "seq": 0 })));
    let (status, flows) = ui.get("/api/flows");
    assert_eq!(status, 200);
    assert_eq!(flows["checks"], true);
    let names: Vec<&str> = flows["flows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["flow"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["Broken", "Long", "Nightly", "Slow", "Typed", "Waits"]
    );
    let flow = |name: &str| {
        flows["flows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["flow"] == name)
            .unwrap()
            .clone()
    };
    let nightly = &flow("Nightly")["schedule"];
    assert_eq!(nightly["cron"], "30 1 * * *");
    assert_eq!(nightly["timezone"], "Europe/Berlin");
    let next: Vec<&str> = nightly["next"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert_eq!(next.len(), 5, "{nightly}");
    // 01:30 in Berlin is 00:30 UTC in winter, 23:30 the day before in summer.
    assert!(
        next.iter()
            .all(|t| t.ends_with("T00:30:00Z") || t.ends_with("T23:30:00Z")),
        "{next:?}"
    );
    assert!(next.windows(2).all(|w| w[0] < w[1]), "{next:?}");
    // The same times as they read in the flow's zone: 01:30 there.
    for at in nightly["next_local"].as_array().unwrap() {
        let at = at.as_str().unwrap();
        assert!(
            at.ends_with("T01:30:00+01:00") || at.ends_with("T01:30:00+02:00"),
            "{at}"
        );
    }
    assert_eq!(
        flow("Typed")["params"],
        json!([
            { "name": "label", "type": "string", "default": "x" },
            { "name": "loud", "type": "boolean", "default": false },
            { "name": "pause", "type": "duration", "default": 1000 },
            { "name": "ratio", "type": "float", "default": 0.5 },
        ])
    );

    // Who may act.
    let start = "/api/flows/Slow/runs";
    let body = json!({ "args": { "seconds": 0 } });
    let (status, answer) = ui.post(start, body.clone(), None, None);
    assert_eq!(status, 403, "{answer}");
    assert!(
        answer["error"].as_str().unwrap().contains("token"),
        "{answer}"
    );
    assert_eq!(ui.post(start, body.clone(), Some("0123"), None).0, 403);
    let (status, answer) = ui.post(
        start,
        body.clone(),
        Some(&ui.token),
        Some("http://evil.example"),
    );
    assert_eq!(status, 403, "{answer}");
    let port = ui.base.rsplit(':').next().unwrap();
    let raw = |request: String| {
        let mut stream = std::net::TcpStream::connect(format!("127.0.0.1:{port}")).unwrap();
        stream.write_all(request.as_bytes()).unwrap();
        let mut text = String::new();
        stream.read_to_string(&mut text).unwrap();
        text
    };
    // A page on another name that resolves here (DNS rebinding) reads nothing.
    let rebound =
        raw("GET /api/runs HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n".into());
    assert!(rebound.starts_with("HTTP/1.1 403"), "{rebound}");
    assert!(
        ui.runs_recorded() == 0,
        "nothing was started by a refused request"
    );

    // Typed arguments reach the activity as `wvflow run` passes them.
    let (status, answer) = ui.act(
        "/api/flows/Typed/runs",
        json!({ "args": { "label": "it's quoted", "loud": true, "pause": "90s", "ratio": 2 } }),
    );
    assert_eq!(status, 201, "{answer}");
    let typed = answer["run_id"].as_str().unwrap().to_string();
    let run = ui.wait_for(&typed, "success");
    assert_eq!(
        run["args"],
        json!({ "label": "it's quoted", "loud": true, "pause": "90s", "ratio": 2.0 })
    );
    let (_, rows) = ui.get(&format!("/api/runs/{typed}/rows?stage=show"));
    assert_eq!(
        rows,
        json!({ "columns": ["label", "loud", "pause", "ratio"], "rows": [
            { "label": "it's quoted", "loud": "true", "pause": "90s", "ratio": "2.0" }
        ] })
    );
    // The same document as `wvflow runs show --format json`.
    let shown = wvflow(&[
        "runs",
        "-w",
        dir.to_str().unwrap(),
        "show",
        &typed,
        "--format",
        "json",
    ]);
    let shown: Value = serde_json::from_slice(&shown.stdout).unwrap();
    assert_eq!(ui.get(&format!("/api/runs/{typed}")).1, shown);

    // Wrong arguments are refused before anything runs, with `wvflow run`'s words.
    for (args, words) in [
        (json!({ "seconds": "x" }), "must be a whole number"),
        (json!({ "secs": 1 }), "secs"),
        (
            json!({ "seconds": [1] }),
            "must be a number, a boolean, a text or null",
        ),
    ] {
        let (status, answer) = ui.act(start, json!({ "args": args }));
        assert_eq!(status, 400, "{args}: {answer}");
        assert!(
            answer["error"].as_str().unwrap().contains(words),
            "{answer}"
        );
    }
    let (status, answer) = ui.act("/api/flows/Nope/runs", json!({}));
    assert_eq!(
        (status, answer["error"].as_str().unwrap()),
        (404, "the workspace has no flow `Nope`")
    );
    let (status, _) = ui.act(start, Value::Null);
    assert_eq!(status, 400, "a body that is not an object of args");
    assert_eq!(ui.runs_recorded(), 1);

    // A failed stage: its logs and attempts; rows only for a stage that succeeded.
    let (_, answer) = ui.act("/api/flows/Broken/runs", json!({}));
    let broken = answer["run_id"].as_str().unwrap().to_string();
    let run = ui.wait_for(&broken, "failed");
    assert_eq!(run["stages"][1]["history"][0]["exit_code"], 3);
    let (_, logs) = ui.get(&format!("/api/runs/{broken}/logs?stage=bad"));
    assert_eq!(
        logs["logs"][0]["log"],
        "disk full on /data <img src=x onerror=\"window.pwned=1\">\n"
    );
    let (status, answer) = ui.get(&format!("/api/runs/{broken}/rows?stage=bad"));
    assert_eq!(status, 404);
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .contains("only a stage that succeeded has rows")
    );
    assert_eq!(ui.get("/api/runs/no-such-run").0, 404);
    assert_eq!(ui.get("/api/runs?limit=x").0, 400);
    let (_, graph) = ui.get(&format!("/api/runs/{broken}/graph"));
    assert_eq!(
        graph["stages"][1],
        json!({ "stage": "bad", "kind": "activity", "upstream": [] })
    );

    // Filters, as `runs list` has them.
    let (_, failed) = ui.get("/api/runs?state=failed");
    assert_eq!(failed["runs"].as_array().unwrap().len(), 1);
    assert_eq!(failed["runs"][0]["run_id"], broken.as_str());
    let (_, typed_runs) = ui.get("/api/runs?flow=Typed");
    assert_eq!(typed_runs["runs"][0]["run_id"], typed.as_str());

    // A signal lets a waiting run go on; an unknown one is refused with the names it has.
    let (_, answer) = ui.act("/api/flows/Waits/runs", json!({}));
    let waits = answer["run_id"].as_str().unwrap().to_string();
    let (status, answer) = ui.act(
        &format!("/api/runs/{waits}/signal"),
        json!({ "name": "aproved" }),
    );
    assert_eq!(status, 409);
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .contains("did you mean `approved`?"),
        "{answer}"
    );
    // A value the signal's type does not take is refused, and says what it takes.
    let (status, answer) = ui.act(
        &format!("/api/runs/{waits}/signal"),
        json!({ "name": "approved", "value": 1 }),
    );
    assert_eq!(status, 400, "{answer}");
    let refused = answer["error"].as_str().unwrap();
    assert!(
        refused.contains("`approved`")
            && refused.contains("boolean")
            && refused.contains("true or false"),
        "{answer}"
    );
    let (status, answer) = ui.act(
        &format!("/api/runs/{waits}/signal"),
        json!({ "name": "approved", "value": true }),
    );
    assert_eq!(status, 202);
    assert_eq!(answer["value"], true, "{answer}");
    let run = ui.wait_for(&waits, "success");
    assert_eq!(run["signals"][0]["name"], "approved", "{run}");
    assert_eq!(run["signals"][0]["value"], true, "{run}");

    // Cancel a running run, then resume it: it runs to success under the same id.
    let (_, answer) = ui.act(start, json!({ "args": { "seconds": 30 } }));
    let slow = answer["run_id"].as_str().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(20);
    while ui.get(&format!("/api/runs/{slow}")).1["stages"][1]["state"] != "running" {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(50));
    }
    let (status, answer) = ui.act(&format!("/api/runs/{slow}/cancel"), json!({}));
    assert_eq!(status, 202, "{answer}");
    let run = ui.wait_for(&slow, "cancelled");
    assert_eq!(run["stages"][1]["state"], "cancelled");
    assert_eq!(
        ui.act(&format!("/api/runs/{slow}/cancel"), json!({})).0,
        409,
        "it has ended"
    );
    let (status, answer) = ui.act(&format!("/api/runs/{slow}/resume"), json!({}));
    assert_eq!(
        (status, answer["run_id"].as_str()),
        (202, Some(slow.as_str()))
    );
    // The resumed run still sleeps 30 s: cancel it again rather than wait.
    let deadline = Instant::now() + Duration::from_secs(20);
    while ui.get(&format!("/api/runs/{slow}")).1["state"] != "running" {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        ui.act(&format!("/api/runs/{slow}/cancel"), json!({})).0,
        202
    );
    let run = ui.wait_for(&slow, "cancelled");
    assert_eq!(run["resumes"], 1);
    let (status, answer) = ui.act(&format!("/api/runs/{typed}/resume"), json!({}));
    assert_eq!(
        status, 400,
        "a run that succeeded has nothing to resume: {answer}"
    );
    // Refused by the dashboard itself, as `runs resume` refuses it: no process started.
    assert_eq!(
        answer["error"],
        format!("run {typed} is success: only a failed, cancelled or stale run can be resumed"),
        "{answer}"
    );

    // A workspace that stops checking: its diagnostics, and no start.
    std::fs::write(
        dir.join("broken.wv"),
        "flow Oops = {\n  stage a = from\n}\n",
    )
    .unwrap();
    let (_, flows) = ui.get("/api/flows");
    assert_eq!(flows["checks"], false);
    assert!(
        flows["diagnostics"].as_str().unwrap().contains("broken.wv"),
        "{flows}"
    );
    let (status, answer) = ui.act(start, json!({}));
    assert_eq!(status, 409);
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .starts_with("the workspace does not check")
    );
}

impl Ui {
    fn runs_recorded(&self) -> usize {
        let _ = &self.dir;
        self.get("/api/runs").1["runs"]
            .as_array()
            .map_or(0, Vec::len)
    }
}

/// The page in Chromium: start a flow from its form and watch a stage go running -> success
/// without a reload, read a failed stage's logs, cancel a run with the button, a refused
/// action, the runs list with a filter; screenshots of the runs list, a run and the flows.
#[test]
fn ui_in_a_real_browser() {
    let dir = scratch("ui_browser", &[("flows.wv", FLOWS)]);
    let shots = std::env::var_os("WVFLOW_UI_SCREENSHOTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_TARGET_TMPDIR")).join("ui-screenshots"));
    std::fs::create_dir_all(&shots).unwrap();
    let ui = Ui::start(&dir);
    let out = Command::new("node")
        .arg("tests/ui/browser.mjs")
        .arg(format!("{}/?token={}", ui.base, ui.token))
        .arg(&shots)
        .output()
        .expect("node is installed and tests/ui is set up (scripts/test.sh)");
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{report}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(report.matches("ok: ").count(), 11, "{report}");
    // What the page did, as the run store tells it.
    let runs_line = report
        .lines()
        .find_map(|l| l.strip_prefix("runs: "))
        .unwrap();
    let states: Vec<String> = runs_line
        .split(' ')
        .map(|id| {
            let o = wvflow(&[
                "runs",
                "-w",
                dir.to_str().unwrap(),
                "show",
                id,
                "--format",
                "json",
            ]);
            let run: Value = serde_json::from_slice(&o.stdout).unwrap();
            run["state"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(states, ["success", "failed", "cancelled"]);
    for name in ["runs.png", "run.png", "flows.png"] {
        let png = std::fs::read(shots.join(name)).unwrap();
        assert!(png.starts_with(b"\x89PNG") && png.len() > 10_000, "{name}");
    }
}

/// A request to the dashboard's port, as raw bytes; what came back.
fn raw(base: &str, request: &[u8]) -> String {
    let port = base.rsplit(':').next().unwrap();
    let mut stream = std::net::TcpStream::connect(format!("127.0.0.1:{port}")).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let _ = stream.write_all(request);
    let mut text = Vec::new();
    let _ = stream.read_to_end(&mut text);
    String::from_utf8_lossy(&text).into_owned()
}

/// What a careless or hostile client sends: the server answers it and goes on answering
/// others; arguments that need escaping reach the run whole; a replaced binary still starts
/// runs; a server listening beyond loopback answers by any name.
#[test]
fn ui_stands_up_to_odd_requests() {
    let dir = scratch("ui_odd", &[("flows.wv", FLOWS)]);
    // Run from a copy of the binary that is deleted once it runs (an upgrade in place).
    let program = dir.join("wvflow-copy");
    std::fs::copy(env!("CARGO_BIN_EXE_wvflow"), &program).unwrap();
    let ui = Ui::start_with(&program, &dir, &[]);
    std::fs::remove_file(&program).unwrap();

    // Asking about runs of an empty store creates nothing.
    let (status, _) = ui.act("/api/runs/nope/cancel", json!({}));
    assert_eq!(status, 404);
    assert_eq!(ui.act("/api/runs/--help/resume", json!({})).0, 404);
    assert_eq!(ui.act("/api/runs/x/signal", json!({ "name": "go" })).0, 404);
    assert!(!dir.join(".wvflow").exists(), "a store was made");

    // A body announced as huge is refused without being read, and the server lives on.
    let huge = raw(&ui.base, b"POST /api/flows/Slow/runs HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000000000000000\r\n\r\nabc");
    assert!(huge.starts_with("HTTP/1.1 413"), "{huge}");
    let big = vec![b' '; (1 << 20) + 1];
    let mut request = format!(
        "POST /api/flows/Slow/runs HTTP/1.1\r\nHost: {}\r\nContent-Length: {}\r\n\r\n",
        ui.base.trim_start_matches("http://"),
        big.len()
    )
    .into_bytes();
    request.extend_from_slice(&big);
    assert!(raw(&ui.base, &request).starts_with("HTTP/1.1 413"));
    assert!(raw(&ui.base, b"\xff\xfe / HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 400"));
    // Clients that announce a body and never send it hold only their own connections.
    let port = ui.base.rsplit(':').next().unwrap().to_string();
    let stalled: Vec<std::net::TcpStream> = (0..8)
        .map(|_| {
            let mut s = std::net::TcpStream::connect(format!("127.0.0.1:{port}")).unwrap();
            s.write_all(b"POST /api/runs HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n")
                .unwrap();
            s
        })
        .collect();
    let started = Instant::now();
    assert_eq!(ui.get("/api/runs").0, 200);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    drop(stalled);

    // Methods, limits and filters.
    let head = raw(
        &ui.base,
        format!(
            "HEAD /api/flows HTTP/1.1\r\nHost: {}\r\n\r\n",
            ui.base.trim_start_matches("http://")
        )
        .as_bytes(),
    );
    assert!(
        head.starts_with("HTTP/1.1 200") && head.ends_with("\r\n\r\n"),
        "{head}"
    );
    let options = raw(
        &ui.base,
        format!(
            "OPTIONS /api/runs HTTP/1.1\r\nHost: {}\r\n\r\n",
            ui.base.trim_start_matches("http://")
        )
        .as_bytes(),
    );
    assert!(
        options.starts_with("HTTP/1.1 405") && options.contains("Allow: GET, HEAD"),
        "{options}"
    );
    assert_eq!(ui.get("/api/flows/Slow/runs").0, 405);
    let (status, answer) = ui.get("/api/runs?state=bogus");
    assert_eq!(status, 400, "{answer}");

    // Arguments that a flow-call literal could not carry reach the activity whole, and the
    // binary that was replaced still starts runs.
    let (status, answer) = ui.act(
        "/api/flows/Typed/runs",
        json!({ "args": { "label": "two\nlines\tand 'quotes'", "ratio": 0.00001, "pause": 1500 } }),
    );
    assert_eq!(status, 201, "{answer}");
    let id = answer["run_id"].as_str().unwrap().to_string();
    let run = ui.wait_for(&id, "success");
    assert_eq!(run["args"]["label"], "two\nlines\tand 'quotes'");
    assert_eq!(run["args"]["ratio"], 0.00001);
    assert_eq!(run["args"]["pause"], "1500ms");
    assert_eq!(ui.get("/api/runs?limit=0").1["runs"], json!([]));
    let (status, answer) = ui.act(
        "/api/flows/Slow/runs",
        json!({ "args": { "seconds": 1e300 } }),
    );
    assert_eq!(status, 400, "{answer}");

    // Listening on every address: any name reaches it, and an action's Origin must name the
    // host it was sent to.
    let open = Ui::start_with(
        Path::new(env!("CARGO_BIN_EXE_wvflow")),
        &dir,
        &["--host", "0.0.0.0"],
    );
    let named = raw(
        &open.base,
        b"GET /api/runs HTTP/1.1\r\nHost: dashboard.example:1\r\n\r\n",
    );
    assert!(named.starts_with("HTTP/1.1 200"), "{named}");
    let host = open.base.trim_start_matches("http://").to_string();
    assert_eq!(
        open.post(
            "/api/flows/Slow/runs",
            json!({ "args": { "seconds": 0 } }),
            Some(&open.token.clone()),
            Some(&format!("http://{host}"))
        )
        .0,
        201
    );
    assert_eq!(
        open.post(
            "/api/flows/Slow/runs",
            json!({}),
            Some(&open.token.clone()),
            Some("http://elsewhere.example")
        )
        .0,
        403
    );
}

/// A connection to the dashboard's port.
fn connect(base: &str) -> std::net::TcpStream {
    let port = base.rsplit(':').next().unwrap();
    let stream = std::net::TcpStream::connect(format!("127.0.0.1:{port}")).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    stream
}

/// Slow and many connections cannot starve the page: 64 clients sending a byte every 200 ms
/// hold no slot the page needs (the one sending the longest is given up for a new request),
/// a request has a deadline for its whole head (not per read), and an idle connection is
/// closed.
#[test]
fn ui_is_not_starved_by_slow_or_many_connections() {
    let dir = scratch("ui_slow", &[("flows.wv", FLOWS)]);
    let ui = Ui::start(&dir);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let drips: Vec<_> = (0..64)
        .map(|_| {
            let (mut stream, stop) = (connect(&ui.base), stop.clone());
            std::thread::spawn(move || {
                let _ = stream.write_all(b"GET /api/runs HTTP/1.1\r\n");
                for _ in 0..40 {
                    if stop.load(std::sync::atomic::Ordering::Relaxed)
                        || stream.write_all(b"X").is_err()
                    {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(200));
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    for _ in 0..5 {
        let started = Instant::now();
        assert_eq!(ui.get("/api/runs").0, 200);
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
    }
    // A head sent a byte at a time is cut off at the head's deadline (5 s), not kept alive
    // by each byte.
    let mut slow = connect(&ui.base);
    let started = Instant::now();
    let _ = slow.write_all(b"GET /api/runs HTTP/1.1\r\n");
    let mut closed = false;
    while started.elapsed() < Duration::from_secs(15) {
        if slow.write_all(b"X").is_err() {
            closed = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(closed, "a dripping head was kept past its deadline");
    // An idle connection is closed too, with nothing to answer.
    let mut idle = connect(&ui.base);
    let mut byte = [0u8; 1];
    let started = Instant::now();
    assert_eq!(idle.read(&mut byte).unwrap_or(0), 0);
    assert!(
        started.elapsed() < Duration::from_secs(12),
        "{:?}",
        started.elapsed()
    );
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for drip in drips {
        let _ = drip.join();
    }
}

/// The limits say what they are: a head over 16 KiB and a 65th header are 431, a name in
/// capitals is the same host, two Host or Origin headers are refused, and arguments too large
/// for a process's argument are 413, not 500.
#[test]
fn ui_limits_and_names_are_exact() {
    let dir = scratch("ui_limits", &[("flows.wv", FLOWS)]);
    let ui = Ui::start(&dir);
    let host = ui.base.trim_start_matches("http://").to_string();
    let head = |extra: &str| format!("GET /api/runs HTTP/1.1\r\nHost: {host}\r\n{extra}\r\n");
    let filler = |bytes: usize| format!("X-Filler: {}\r\n", "a".repeat(bytes));
    let base_len = head("").len();
    // Exactly 16 KiB is read; one byte more is not.
    let at_limit = head(&filler(16 * 1024 - base_len - 12));
    assert_eq!(at_limit.len(), 16 * 1024);
    assert!(raw(&ui.base, at_limit.as_bytes()).starts_with("HTTP/1.1 200"));
    let over = head(&filler(16 * 1024 - base_len - 11));
    let answer = raw(&ui.base, over.as_bytes());
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
    let many: String = (0..63).map(|i| format!("X-{i}: y\r\n")).collect();
    assert!(raw(&ui.base, head(&many).as_bytes()).starts_with("HTTP/1.1 200"));
    let too_many: String = (0..64).map(|i| format!("X-{i}: y\r\n")).collect();
    let answer = raw(&ui.base, head(&too_many).as_bytes());
    assert!(
        answer.starts_with("HTTP/1.1 431") && answer.contains("64 headers"),
        "{answer}"
    );
    let upper = format!(
        "GET /api/runs HTTP/1.1\r\nHost: {}\r\n\r\n",
        host.replace("127.0.0.1", "LOCALHOST")
    );
    assert!(
        raw(&ui.base, upper.as_bytes()).starts_with("HTTP/1.1 200"),
        "{upper}"
    );
    let twice = format!("GET /api/runs HTTP/1.1\r\nHost: {host}\r\nHost: evil.example\r\n\r\n");
    assert!(raw(&ui.base, twice.as_bytes()).starts_with("HTTP/1.1 400"));
    let origins = format!(
        "POST /api/flows/Typed/runs HTTP/1.1\r\nHost: {host}\r\nOrigin: http://{host}\r\nOrigin: http://evil.example\r\nX-Wvflow-Token: {}\r\nContent-Length: 2\r\n\r\n{{}}",
        ui.token
    );
    assert!(raw(&ui.base, origins.as_bytes()).starts_with("HTTP/1.1 400"));
    let (status, body) = ui.act(
        "/api/flows/Typed/runs",
        json!({ "args": { "label": "x".repeat(200 * 1024) } }),
    );
    assert_eq!(status, 413, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("128 KiB"),
        "{body}"
    );
}

/// The logs of a stage are read a page at a time: an `each` of 300 items is not sent whole
/// (it was, every second, while it ran), and a log can be read on from where the reader is.
#[test]
fn ui_reads_logs_a_page_at_a_time() {
    let flow = r#"activity item(n: int) = sh("""echo "item $WV_N says hello" >&2; echo '{}'""")
flow Fan = {
  stage fan [concurrency: 8] = from 'numbers.csv' | each item(_.n)
}
"#;
    let numbers: String = std::iter::once("n\n".to_string())
        .chain((0..300).map(|n| format!("{n}\n")))
        .collect();
    let dir = scratch(
        "ui_log_pages",
        &[("flows.wv", flow), ("numbers.csv", &numbers)],
    );
    let o = wvflow(&["run", dir.to_str().unwrap(), "Fan", "--format", "json"]);
    assert_eq!(o.status.code(), Some(0));
    let run_id = serde_json::from_slice::<Value>(&o.stdout).unwrap()["run_id"]
        .as_str()
        .unwrap()
        .to_string();
    let ui = Ui::start(&dir);
    let logs = |query: &str| ui.get(&format!("/api/runs/{run_id}/logs?{query}"));
    let (status, page) = logs("stage=fan");
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["total"], 300);
    assert_eq!(
        page["logs"].as_array().unwrap().len(),
        20,
        "a page by default"
    );
    let (_, last) = logs("stage=fan&offset=290&limit=50");
    assert_eq!(last["logs"].as_array().unwrap().len(), 10);
    let (_, lengths) = logs("stage=fan&limit=200&text=0");
    let entries = lengths["logs"].as_array().unwrap();
    assert_eq!(entries.len(), 200);
    assert!(
        entries
            .iter()
            .all(|l| l["log"] == "" && l["chars"].as_u64() > Some(0))
    );
    let (_, one) = logs("stage=fan&item=7&attempt=1");
    let text = one["logs"][0]["log"].as_str().unwrap().to_string();
    assert_eq!(text, "item 7 says hello\n");
    let (_, rest) = logs("stage=fan&item=7&attempt=1&from=5");
    assert_eq!(rest["logs"][0]["log"], "7 says hello\n");
    assert_eq!(rest["logs"][0]["chars"], text.len());
    assert_eq!(logs("stage=fan&limit=201").0, 400);
    assert_eq!(logs("stage=fan&offset=x").0, 400);
}
