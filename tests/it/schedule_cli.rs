//! The scheduler and backfill from the command line, on real workspaces: `schedule --once`
//! with dependencies, start conditions and hooks; the daemon's reload, concurrency and
//! SIGTERM; `--list`; backfill stopping at a failure. Fire-time arithmetic (time zones,
//! daylight saving, intervals, catch-up) is tested with chosen times in `runtime::schedule`.

use crate::common::{scratch, wvflow};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn runs(dir: &Path) -> Vec<Value> {
    let o = wvflow(&[
        "runs",
        "-w",
        dir.to_str().unwrap(),
        "list",
        "--format",
        "json",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice::<Value>(&o.stdout)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

fn states_of(dir: &Path, flow: &str) -> Vec<String> {
    runs(dir)
        .iter()
        .filter(|r| r["flow"] == flow)
        .map(|r| r["state"].as_str().unwrap().to_string())
        .collect()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

const WORKSPACE: &str = r#"
activity note(msg: string) = sh("""echo "$WV_MSG" >> log.txt; echo '{"ok": 1}'""")
activity keep_summary() = sh("""cat >> hooks.ndjson""")
activity boom() = sh("""exit 3""")

flow Minutely with { schedule: cron('* * * * *'), on_success: keep_summary(), on_finish: boom() } = {
  stage first = note('minutely')
}
flow NeedsUpstream depends on Upstream with { schedule: cron('* * * * *') } = {
  stage only = note('needs-upstream')
}
flow Upstream = {
  stage u = note('upstream')
}
flow AfterMinutely if Minutely.success = {
  stage after = note('after-minutely')
}
flow OnFailure if Minutely.failed = {
  stage never = note('on-failure')
}
flow AfterDependency depends on Minutely = {
  stage d = note('after-dependency')
}
"#;

/// `wvflow schedule --once` over a fresh copy of [`WORKSPACE`] at a pinned minute: the folder
/// and what the command printed.
fn once_at_a_pinned_minute(name: &str) -> (std::path::PathBuf, Output) {
    let dir = scratch(name, &[("flows.wv", WORKSPACE)]);
    let o = wvflow(&[
        "schedule",
        dir.to_str().unwrap(),
        "--once",
        "--at",
        "2026-12-07T10:15:30Z",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    (dir, o)
}

#[test]
fn once_starts_what_is_due_gates_dependencies_and_follows_ends() {
    let (dir, o) = once_at_a_pinned_minute("schedule-once");
    let out = text(&o);
    // Due this minute: Minutely and NeedsUpstream; Minutely's success starts AfterMinutely.
    assert_eq!(states_of(&dir, "Minutely"), ["success"]);
    assert_eq!(states_of(&dir, "AfterMinutely"), ["success"]);
    // No schedule, `depends on Minutely`: started once Minutely succeeded.
    assert_eq!(states_of(&dir, "AfterDependency"), ["success"]);
    assert!(states_of(&dir, "OnFailure").is_empty());
    assert_eq!(states_of(&dir, "NeedsUpstream"), ["skipped"]);
    assert!(
        out.contains("skipped: `Upstream` has no recorded run"),
        "{out}"
    );
    let log = read(&dir.join("log.txt"));
    assert!(
        log.contains("minutely") && log.contains("after-minutely"),
        "{log}"
    );
    assert!(
        !log.contains("needs-upstream") && !log.contains("on-failure"),
        "{log}"
    );
    // The minute's window now has its run: a second --once at the same minute starts none.
    let again = wvflow(&[
        "schedule",
        dir.to_str().unwrap(),
        "--once",
        "--at",
        "2026-12-07T10:15:50Z",
    ]);
    assert_eq!(again.status.code(), Some(0), "{}", text(&again));
    assert_eq!(states_of(&dir, "Minutely"), ["success"]);
}

#[test]
fn once_fires_the_hooks_of_the_runs_it_starts() {
    let (dir, o) = once_at_a_pinned_minute("schedule-once-hooks");
    // on_success got the summary, one row per stage; the failing on_finish hook is reported
    // and does not change the run's result.
    let hooks: Vec<Value> = read(&dir.join("hooks.ndjson"))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(hooks.len(), 1);
    assert_eq!(hooks[0]["flow"], "Minutely");
    assert_eq!(hooks[0]["run_state"], "success");
    assert_eq!(hooks[0]["stage"], "first");
    assert_eq!(hooks[0]["rows"], 1);
    assert!(text(&o).contains("hook on_finish (boom)"), "{}", text(&o));
}

#[test]
fn once_says_what_it_looked_at_and_why_it_ends() {
    let (dir, o) = once_at_a_pinned_minute("schedule-once-says");
    let log = String::from_utf8_lossy(&o.stderr);
    assert!(
        log.lines().any(|l| l
            == format!(
                "checking what is due at 10:15 UTC in {} (1 file):",
                dir.display()
            )),
        "{log}"
    );
    assert!(
        log.contains("\n  Minutely: cron '* * * * *' in UTC\n"),
        "{log}"
    );
    assert!(
        log.contains("\n  AfterMinutely: when a run of Minutely ends (`if`)\n"),
        "{log}"
    );
    assert!(
        log.contains(
            "\n  AfterDependency: when Minutely has succeeded since its last run (`depends on`)\n"
        ),
        "{log}"
    );
    // The flows that Minutely's end starts run for the same instant.
    assert!(
        log.contains("AfterMinutely for 2026-12-07T10:15:30Z: run "),
        "{log}"
    );
    let last = log.lines().last().unwrap_or_default();
    assert_eq!(
        last,
        "--once: everything due at 10:15 UTC has ended: 4 runs, 0 failed; next: Minutely at \
         2026-12-07 10:16 UTC (2026-12-07T10:16:00Z)",
        "{log}"
    );
}

#[test]
fn depends_on_needs_a_success_since_the_last_run_and_if_failed_follows_a_failure() {
    let src = r#"
activity note(msg: string) = sh("""echo "$WV_MSG" >> log.txt""")
activity fail() = sh("""exit 1""")
flow Upstream = {
  stage u = note('upstream')
}
flow Downstream depends on Upstream = {
  stage d = note('downstream')
}
flow Breaks with { schedule: cron('* * * * *') } = {
  stage b = fail()
}
flow Recover if Breaks.failed = {
  stage r = note('recover')
}
"#;
    let dir = scratch("schedule-gates", &[("flows.wv", src)]);
    let file = dir.join("flows.wv");
    let file = file.to_str().unwrap();
    let scheduled = |flow: &str| wvflow(&["run", file, flow, "--scheduled"]);
    let o = scheduled("Downstream");
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o).contains("`Upstream` has no recorded run"),
        "{}",
        text(&o)
    );
    assert!(wvflow(&["run", file, "Upstream"]).status.success());
    assert!(
        scheduled("Downstream").status.success(),
        "Upstream succeeded since"
    );
    let o = scheduled("Downstream");
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o).contains("`Upstream` has not succeeded since the last run of `Downstream`"),
        "{}",
        text(&o)
    );
    // A run by hand (no --scheduled) does not check dependencies.
    assert!(wvflow(&["run", file, "Downstream"]).status.success());
    assert_eq!(
        read(&dir.join("log.txt")),
        "upstream\ndownstream\ndownstream\n"
    );

    let o = wvflow(&["schedule", dir.to_str().unwrap(), "--once"]);
    assert_eq!(o.status.code(), Some(1), "a run failed: {}", text(&o));
    assert_eq!(states_of(&dir, "Breaks"), ["failed"]);
    assert_eq!(states_of(&dir, "Recover"), ["success"]);
}

/// The minute of the hour now, in UTC.
fn minute_now() -> u64 {
    let seconds = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    seconds / 60 % 60
}

/// A flow due at the minute of each hour half an hour from now (not due now), and one that
/// its runs' ends start: for the daemon, which runs in the present (the one test here that
/// reads the wall clock, with half an hour to spare either way).
fn hourly_workspace(name: &str) -> (std::path::PathBuf, u64) {
    let minute = (minute_now() + 30) % 60;
    let src = format!(
        "flow Hourly with {{ schedule: cron('{minute} * * * *') }} = {{\n  stage s = from [[1]] as t(x)\n}}\n\
         flow Report if Hourly.success = {{\n  stage r = from [[1]] as t(x)\n}}\n"
    );
    (scratch(name, &[("flows.wv", &src)]), minute)
}

/// `--once --at`: the minute evaluated is the one given (the run's clock pinned), so the
/// test holds at any time of any day.
#[test]
fn once_with_nothing_due_says_so_and_names_the_next_run() {
    let src = "flow Hourly with { schedule: cron('45 * * * *') } = {\n  stage s = from [[1]] as t(x)\n}\n\
               flow Report if Hourly.success = {\n  stage r = from [[1]] as t(x)\n}\n";
    let dir = scratch("schedule-nothing-due", &[("flows.wv", src)]);
    let at = ["--once", "--at", "2026-12-07T10:15:30Z"];
    let o = wvflow(&[&["schedule", dir.to_str().unwrap()][..], &at].concat());
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "",
        "the log is on stderr"
    );
    let log = String::from_utf8_lossy(&o.stderr);
    assert_eq!(
        log.lines().skip(1).collect::<Vec<_>>(),
        [
            "  Hourly: cron '45 * * * *' in UTC",
            "  Report: when a run of Hourly ends (`if`)",
            "--once: nothing due at 10:15 UTC; next: Hourly at 2026-12-07 10:45 UTC (2026-12-07T10:45:00Z)",
        ],
        "{log}"
    );
    assert!(runs(&dir).is_empty());
    // The daemon runs in the present: --at goes with --once or --list.
    let o = wvflow(&["schedule", dir.to_str().unwrap(), "--at", "2026-12-07"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("--at goes with --once or --list"),
        "{}",
        text(&o)
    );
}

#[test]
fn the_daemon_says_what_it_watches_the_next_run_and_that_it_stopped() {
    let (dir, minute) = hourly_workspace("schedule-daemon-log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_wvflow"))
        .args(["schedule", dir.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = collect_lines(child.stderr.take().unwrap());
    wait_for_line(&lines, "next: Hourly at ");
    // Ctrl-C in a terminal: SIGINT.
    // SAFETY: signals the scheduler process this test started.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    wait_for_line(&lines, "stopped");
    let log = lines.lock().unwrap().clone();
    assert_eq!(
        log[0],
        format!("watching {} (1 file) for changes:", dir.display()),
        "{log:?}"
    );
    assert_eq!(log[1], format!("  Hourly: cron '{minute} * * * *' in UTC"));
    assert_eq!(log[2], "  Report: when a run of Hourly ends (`if`)");
    assert!(
        log[3].starts_with("next: Hourly at ") && log[3].ends_with(&format!(":{minute:02}:00Z)")),
        "{log:?}"
    );
    assert_eq!(log[4..], ["stopped: interrupted (Ctrl-C or SIGTERM)"]);
    let mut out = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut out).unwrap();
    assert_eq!(out, "");
}

#[test]
fn a_workspace_with_nothing_to_schedule_says_so() {
    let dir = scratch(
        "schedule-nothing",
        &[(
            "flows.wv",
            "flow Manual = {\n  stage s = from [[1]] as t(x)\n}\n",
        )],
    );
    let o = wvflow(&["schedule", dir.to_str().unwrap(), "--once"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let log = String::from_utf8_lossy(&o.stderr);
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines.len(), 2, "{log}");
    assert!(
        lines[0].ends_with(&format!(
            " UTC in {} (1 file): no flow has a schedule, an `if` on other flows or `depends on`",
            dir.display()
        )),
        "{log}"
    );
    assert!(
        lines[1].starts_with("--once: nothing due at ") && lines[1].ends_with(" UTC; next: none"),
        "{log}"
    );
}

#[test]
fn backfill_runs_each_window_in_order_and_stops_at_the_first_failure() {
    let src = r#"
activity load(day: date) = sh("""[ "$WV_DAY" != 2026-01-03 ] || [ -f fixed ] || exit 4; echo "$WV_DAY" >> days.txt""")
flow Daily with { schedule: cron('0 0 * * *') } = {
  stage l = load(run_date)
}
"#;
    let dir = scratch("backfill", &[("flow.wv", src)]);
    let path = dir.to_str().unwrap();
    let args = [
        "backfill",
        path,
        "Daily",
        "--from",
        "2026-01-01",
        "--to",
        "2026-01-05",
    ];
    let o = wvflow(&args);
    assert_eq!(o.status.code(), Some(1));
    let out = text(&o);
    assert!(
        out.contains("backfill stopped at window 2026-01-03T00:00:00Z")
            && out.contains("--from 2026-01-03T00:00:00Z --to 2026-01-05"),
        "{out}"
    );
    assert_eq!(read(&dir.join("days.txt")), "2026-01-01\n2026-01-02\n");
    let list = runs(&dir);
    let times: Vec<&str> = list
        .iter()
        .map(|r| r["run_time"].as_str().unwrap())
        .collect();
    assert_eq!(
        times,
        [
            "2026-01-03T00:00:00Z",
            "2026-01-02T00:00:00Z",
            "2026-01-01T00:00:00Z"
        ]
    );
    std::fs::write(dir.join("fixed"), "").unwrap();
    let o = wvflow(&[
        "backfill",
        path,
        "Daily",
        "--from",
        "2026-01-03T00:00:00Z",
        "--to",
        "2026-01-05",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(
        read(&dir.join("days.txt")),
        "2026-01-01\n2026-01-02\n2026-01-03\n2026-01-04\n2026-01-05\n"
    );
}

/// `--list --at`: the next five fire times from a pinned time, across the change to summer
/// time in Berlin (2026-03-29).
#[test]
fn list_shows_the_next_five_fire_times_in_the_zone_and_in_utc() {
    let src = "flow Nightly with { schedule: cron('15 4 * * *'), timezone: 'Europe/Berlin' } = {\n  stage s = from [[1]] as t(x)\n}\n";
    let dir = scratch("schedule-list", &[("flow.wv", src)]);
    let o = wvflow(&[
        "schedule",
        dir.to_str().unwrap(),
        "--list",
        "--at",
        "2026-03-27",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "Nightly (Europe/Berlin)\n\
         \x20 2026-03-27 04:15 CET  2026-03-27T03:15:00Z\n\
         \x20 2026-03-28 04:15 CET  2026-03-28T03:15:00Z\n\
         \x20 2026-03-29 04:15 CEST  2026-03-29T02:15:00Z\n\
         \x20 2026-03-30 04:15 CEST  2026-03-30T02:15:00Z\n\
         \x20 2026-03-31 04:15 CEST  2026-03-31T02:15:00Z\n"
    );
}

/// Reads a child's stderr into lines as they come.
fn collect_lines(stream: impl std::io::Read + Send + 'static) -> Arc<Mutex<Vec<String>>> {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = lines.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            sink.lock().unwrap().push(line);
        }
    });
    lines
}

fn wait_for_line(lines: &Mutex<Vec<String>>, needle: &str) {
    let started = Instant::now();
    while !lines.lock().unwrap().iter().any(|l| l.contains(needle)) {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no line with {needle:?} in {:?}",
            lines.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A flow that runs for 30 s every second, one run at a time, and one that ends at once.
const NAPPER: &str = r#"
activity nap() = sh("""sleep 30""")
flow Napper with { interval: 1s, concurrency: 1 } = {
  stage n = nap()
}
flow Ticker with { interval: 1s } = {
  stage t = from [[1]] as t(x)
}
"#;

/// `wvflow schedule` on a fresh workspace of `text`, with a grace period of 1 s, once it has
/// started a run of Napper: the folder, the daemon and its stderr's lines.
fn daemon(
    name: &str,
    text: &str,
) -> (
    std::path::PathBuf,
    std::process::Child,
    Arc<Mutex<Vec<String>>>,
) {
    let dir = scratch(name, &[("flow.wv", text)]);
    let mut child = Command::new(env!("CARGO_BIN_EXE_wvflow"))
        .args(["schedule", dir.to_str().unwrap(), "--grace", "1s"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = collect_lines(child.stderr.take().unwrap());
    wait_for_line(&lines, "started Napper");
    (dir, child, lines)
}

/// Stops the daemon with SIGTERM: it exits 0 within 15 s, having cancelled what still ran.
fn terminate(mut child: std::process::Child, lines: &Mutex<Vec<String>>) {
    let asked = Instant::now();
    // SAFETY: signals the scheduler process this test started.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    assert!(asked.elapsed() < Duration::from_secs(15));
    wait_for_line(lines, "stopped: interrupted (Ctrl-C or SIGTERM)");
}

#[test]
fn the_daemon_holds_a_flows_concurrency_against_other_processes() {
    let (dir, child, lines) = daemon("schedule-daemon-concurrency", NAPPER);
    // The scheduler starts one run of a flow at a time; the next windows wait in its queue.
    // Another process finds the one slot taken and is recorded as skipped.
    let o = wvflow(&["run", dir.to_str().unwrap(), "Napper"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o).contains("skipped: flow `Napper` allows 1 run(s) at once; held by"),
        "{}",
        text(&o)
    );
    terminate(child, &lines);
    assert!(runs(&dir).iter().any(|r| r["state"] == "skipped"));
}

#[test]
fn the_daemon_keeps_its_schedules_while_the_workspace_does_not_check_then_reloads() {
    let (dir, child, lines) = daemon("schedule-daemon-reload", NAPPER);
    std::fs::write(dir.join("flow.wv"), "flow Napper with { interval: 1s = {\n").unwrap();
    wait_for_line(&lines, "keeping the previous schedules");
    // Windows that come while it does not check are recorded, not run.
    wait_for_line(&lines, "skipped: the workspace does not check");
    let changed = NAPPER.replace("flow Napper", "flow Sleeper");
    std::fs::write(dir.join("flow.wv"), changed).unwrap();
    wait_for_line(&lines, "reloaded");
    wait_for_line(&lines, "started Sleeper");
    terminate(child, &lines);
    let all = runs(&dir);
    assert!(
        all.iter()
            .any(|r| r["flow"] == "Sleeper" && r["state"] == "cancelled"),
        "{all:?}"
    );
    assert!(all.iter().any(|r| r["state"] == "skipped"), "{all:?}");
}

#[test]
fn sigterm_stops_the_daemon_and_cancels_long_runs_after_the_grace_period() {
    let (dir, child, lines) = daemon("schedule-daemon-sigterm", NAPPER);
    terminate(child, &lines);
    wait_for_line(&lines, "cancelling Napper");
    // Every run has ended: the long ones cancelled after the grace period.
    let all = runs(&dir);
    assert!(all.iter().all(|r| r["state"] != "running"), "{all:?}");
    assert!(
        all.iter()
            .any(|r| r["flow"] == "Napper" && r["state"] == "cancelled"),
        "{all:?}"
    );
}

#[test]
fn catchup_starts_every_missed_window_since_the_last_recorded_run() {
    let src = "flow Catchy with { schedule: cron('* * * * *'), catchup: true } = {\n  stage s = from [[1]] as t(x)\n}\n";
    let dir = scratch("schedule-catchup", &[("flow.wv", src)]);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let three_minutes_ago = now - now % 60 - 180;
    let stamp = |s: i64| {
        chrono::DateTime::from_timestamp(s, 0)
            .unwrap()
            .format("%Y-%m-%dT%H:%M:%SZ")
            .to_string()
    };
    let o = wvflow(&[
        "run",
        dir.to_str().unwrap(),
        "Catchy",
        "--run-time",
        &stamp(three_minutes_ago),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let o = wvflow(&["schedule", dir.to_str().unwrap(), "--once"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let mut times: Vec<String> = runs(&dir)
        .iter()
        .map(|r| r["run_time"].as_str().unwrap().to_string())
        .collect();
    times.sort();
    // The recorded window, then each minute after it up to now, once each.
    let expected: Vec<String> = (0..times.len() as i64)
        .map(|k| stamp(three_minutes_ago + 60 * k))
        .collect();
    assert!(times.len() >= 4, "{times:?}");
    assert_eq!(times, expected);
}
