//! Every example under `examples/` checks clean (no syntax or semantic diagnostic, not even a
//! warning), and every one is documented by a comment header.

use std::path::Path;
use wvflow::workspace::{Workspace, discover};

#[test]
fn every_example_checks_clean_and_has_a_header() {
    let files = discover(Path::new("examples")).expect("examples/ exists");
    assert!(
        files.len() >= 12,
        "the project keeps at least 12 examples, found {}",
        files.len()
    );
    let (workspace, errors) = Workspace::load(&[Path::new("examples").to_path_buf()]);
    assert!(errors.is_empty(), "{errors:?}");
    let diagnostics: Vec<_> = workspace.diagnostics().collect();
    assert!(diagnostics.is_empty(), "{diagnostics:#?}");
    let semantic = wvflow::check::check(&workspace).diagnostics;
    assert!(semantic.is_empty(), "{semantic:#?}");
    for (_, file) in workspace.sources.iter() {
        // wvflow.toml's comments are TOML's.
        let comment = if file.name.ends_with(".toml") {
            "#"
        } else {
            "--"
        };
        assert!(
            file.text.starts_with(comment),
            "{} has no comment header",
            file.name
        );
    }
    // Every .wv file has items; wvflow.toml is among the sources with an empty tree.
    for ((_, file), parsed) in workspace.sources.iter().zip(&workspace.parsed) {
        assert!(
            file.name.ends_with(".toml") || !parsed.ast.items.is_empty(),
            "{} is empty",
            file.name
        );
    }
}

use crate::common::{copy_dir, stage};

use serde_json::Value;
use std::process::Command;

/// Each `wvflow ...` invocation written in an example's header (`-- Run:` and the lines under
/// it), as its words after `wvflow`, with the outcome the header gives in parentheses.
fn documented_invocations(text: &str) -> Vec<(Vec<String>, String)> {
    let mut found = Vec::new();
    let mut in_run = false;
    for line in text.lines().take_while(|l| l.starts_with("--")) {
        let body = line.trim_start_matches('-').trim();
        let body = match body.strip_prefix("Run:") {
            Some(rest) => {
                in_run = true;
                rest.trim()
            }
            None if in_run => body,
            None => continue,
        };
        let Some(command) = body.strip_prefix("wvflow ") else {
            continue;
        };
        let (command, outcome) = match command.split_once("  ") {
            Some((c, o)) => (c.trim(), o.trim()),
            None => (command.trim(), ""),
        };
        found.push((shell_words(command), outcome.to_string()));
    }
    found
}

/// Every documented `wvflow run ...` of every example that ends on its own: the example's
/// path and the words after `wvflow`. A run documented with `wvflow runs ...` commands after
/// it waits for them (a signal) and is left out.
pub fn documented_runs() -> Vec<(String, Vec<String>)> {
    let mut files: Vec<_> = std::fs::read_dir("examples")
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "wv"))
        .collect();
    files.sort();
    let mut runs = Vec::new();
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap();
        let invocations = documented_invocations(&text);
        for (args, _) in &invocations {
            if args[0] == "run" && later_runs_commands(&invocations, args).is_empty() {
                runs.push((args[1].clone(), args.clone()));
            }
        }
    }
    runs
}

/// Whether an example's documented run waits for `wvflow runs ...` commands from another
/// terminal (a signal): it does not end on its own.
pub fn waits_for_runs_commands(text: &str) -> bool {
    let invocations = documented_invocations(text);
    invocations
        .iter()
        .any(|(args, _)| args[0] == "run" && !later_runs_commands(&invocations, args).is_empty())
}

/// Words as a POSIX shell splits them, for the quoting the headers use ('...').
fn shell_words(text: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quoted = false;
    let mut any = false;
    for c in text.chars() {
        match c {
            '\'' => {
                quoted = !quoted;
                any = true;
            }
            ' ' if !quoted => {
                if any {
                    words.push(std::mem::take(&mut word));
                    any = false;
                }
            }
            c => {
                word.push(c);
                any = true;
            }
        }
    }
    if any {
        words.push(word);
    }
    words
}

/// Runs `wvflow ARGS` in `dir` (a copy of the examples); `--format json` is added to runs.
fn wvflow_in(dir: &Path, args: &[String]) -> (Option<i32>, String) {
    let mut args = args.to_vec();
    if args[0] == "run" {
        args.extend(["--format".into(), "json".into()]);
    }
    // The server of warehouse_report.wv's connector; the other examples never read it.
    let o = Command::new(env!("CARGO_BIN_EXE_wvflow"))
        .args(&args)
        .envs(crate::common::postgres::example_env("examples"))
        .current_dir(dir)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    (
        o.status.code(),
        text + "\n" + &String::from_utf8_lossy(&o.stderr),
    )
}

fn json(text: &str) -> Value {
    serde_json::Deserializer::from_str(text)
        .into_iter::<Value>()
        .next()
        .and_then(Result::ok)
        .unwrap_or_else(|| panic!("no JSON summary in {text}"))
}

fn compensated(summary: &Value) -> Vec<&str> {
    summary["compensations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["stage"].as_str().unwrap())
        .collect()
}

/// Every invocation documented in an example's header runs, with the outcome it documents.
#[test]
fn every_documented_invocation_has_its_documented_outcome() {
    let dir = crate::common::scratch("documented_invocations", &[]);
    copy_dir(Path::new("examples"), &dir.join("examples"));
    let mut ran = 0;
    let mut files: Vec<_> = std::fs::read_dir("examples")
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "wv"))
        .collect();
    files.sort();
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap();
        let invocations = documented_invocations(&text);
        assert!(
            !invocations.is_empty(),
            "{}: no `-- Run:` line",
            path.display()
        );
        for (args, outcome) in invocations.iter().cloned() {
            let call = args.get(2).map(String::as_str).unwrap_or("");
            let what = format!("wvflow {} ({outcome})", args.join(" "));
            if args[0] == "runs" {
                // Run against the run it follows, while that run goes on (below).
                continue;
            }
            let daemon = args[0] == "schedule" && args.len() == 2;
            let later = later_runs_commands(&invocations, &args);
            let (code, out) = if daemon {
                scheduler_until_sigterm(&dir, &args)
            } else if !later.is_empty() {
                ran += later.len();
                run_with_runs_commands(&dir, &args, &later)
            } else {
                wvflow_in(&dir, &args)
            };
            ran += 1;
            match (args[0].as_str(), args[1].as_str(), call) {
                ("run", "examples/booking_saga.wv", "BookTrip(city = \"Reykjavik\")") => {
                    let s = json(&out);
                    assert_eq!(code, Some(0), "{what}: {out}");
                    assert_eq!(stage(&s, "car")["state"], "failed", "{what}");
                    assert_eq!(stage(&s, "car_waitlist")["state"], "success", "{what}");
                    assert_eq!(stage(&s, "payment")["state"], "success", "{what}");
                }
                ("run", "examples/booking_saga.wv", "BookTrip(decline_card = true)") => {
                    let s = json(&out);
                    assert_eq!(code, Some(1), "{what}: {out}");
                    assert_eq!(s["state"], "failed", "{what}");
                    assert_eq!(compensated(&s), ["car", "hotel", "flight"], "{what}");
                }
                ("run", "examples/child_flows.wv", "RefreshProfiles") => {
                    let s = json(&out);
                    assert_eq!(code, Some(0), "{what}: {out}");
                    assert_eq!(s["next_runs"][0]["flow"], "PublishProfiles", "{what}");
                }
                ("run", "examples/child_flows.wv", "EnrichCustomer(customer = 9)") => {
                    let s = json(&out);
                    assert_eq!(code, Some(0), "{what}: {out}");
                    // Version 2 is the one with an `enriched` stage.
                    assert_eq!(stage(&s, "enriched")["state"], "success", "{what}");
                }
                ("run", "examples/idempotent_payouts.wv", "") => {
                    let first = json(&out);
                    assert_eq!(code, Some(0), "{what}: {out}");
                    assert!(stage(&first, "transfers")["rows"].as_u64().unwrap() > 0);
                    let (code, out) = wvflow_in(&dir, &args);
                    let second = json(&out);
                    assert_eq!(code, Some(0), "{what}, second run: {out}");
                    assert_eq!(stage(&second, "transfers")["attempts"], 0, "{what}: reused");
                    assert_eq!(stage(&second, "ledger")["attempts"], 0, "{what}: reused");
                    assert_eq!(
                        stage(&second, "transfers")["rows"],
                        stage(&first, "transfers")["rows"]
                    );
                    // "the second run reports the transfers and the ledger entry as reused"
                    for keyed in ["transfers", "ledger"] {
                        assert_eq!(stage(&first, keyed)["reused"], false, "{what}: {keyed}");
                        assert_eq!(stage(&second, keyed)["reused"], true, "{what}: {keyed}");
                        assert_eq!(stage(&second, keyed)["state"], "success", "{what}");
                    }
                    assert_eq!(stage(&second, "report")["reused"], false, "{what}");
                    // The text table of a run says so in the stage's state.
                    let o = Command::new(env!("CARGO_BIN_EXE_wvflow"))
                        .args(&args)
                        .current_dir(&dir)
                        .output()
                        .unwrap();
                    let table = String::from_utf8_lossy(&o.stdout).into_owned();
                    assert_eq!(o.status.code(), Some(0), "{what}, third run: {table}");
                    for (keyed, state) in [
                        ("transfers", "success (reused)"),
                        ("ledger", "success (reused)"),
                        ("report", "success"),
                    ] {
                        let row = table
                            .lines()
                            .find(|l| l.split_whitespace().next() == Some(keyed))
                            .unwrap_or_else(|| panic!("{what}: no {keyed} in {table}"));
                        let shown: Vec<&str> = row.split_whitespace().collect();
                        assert!(shown[1..].join(" ").starts_with(state), "{row}");
                        if state == "success" {
                            assert!(!row.contains("reused"), "{row}");
                        }
                    }
                }
                ("run", "examples/regional_digest.wv", "") => {
                    assert_eq!(code, Some(0), "{what}: {out}");
                    let runs = serde_json::Deserializer::from_str(&out)
                        .into_iter::<Value>()
                        .map_while(Result::ok)
                        .count();
                    assert_eq!(runs, 3, "{what}: {out}");
                }
                ("run", "examples/regional_digest.wv", "RegionalDigest(market = \"latam\")") => {
                    let s = json(&out);
                    assert_eq!(code, Some(0), "{what}: {out}");
                    assert_eq!(s["flow"], "RegionalDigest");
                    assert!(out.contains("\"market\":\"latam\""), "{what}: {out}");
                    assert!(out.contains("\"mode\":\"publish\""), "{what}: {out}");
                    assert!(out.contains("\"kept_for\":\"168h\""), "{what}: {out}");
                }
                ("run", "examples/scheduled_flows.wv", "IngestClicks") => {
                    assert_eq!(code, Some(0), "{what}: {out}");
                    // "then IngestOrdersEU, then BuildDailyMart: it reads the tables the
                    // ingest flows saved"
                    for then in ["IngestOrdersEU", "BuildDailyMart"] {
                        let mut next = args.clone();
                        next[2] = then.to_string();
                        let (code, out) = wvflow_in(&dir, &next);
                        assert_eq!(code, Some(0), "{what} then {then}: {out}");
                        assert_eq!(json(&out)["state"], "success", "{then}");
                    }
                }
                ("schedule", "examples/scheduled_flows.wv", "--once") => {
                    assert_eq!(code, Some(0), "{what}: {out}");
                }
                ("schedule", "examples/queue_monitor.wv", "") => {
                    // The scheduler runs until it is stopped, then exits cleanly.
                    assert_eq!(code, Some(0), "{what}: {out}");
                    // "every 15 minutes": the fire times the scheduler would use.
                    let (code, out) =
                        wvflow_in(&dir, &["schedule".into(), args[1].clone(), "--list".into()]);
                    assert_eq!(code, Some(0), "{what}: {out}");
                    let minutes: Vec<u32> = out
                        .lines()
                        .filter_map(|l| l.split_whitespace().nth(1))
                        .filter_map(|t| t.split_once(':'))
                        .map(|(h, m)| h.parse::<u32>().unwrap() * 60 + m.parse::<u32>().unwrap())
                        .collect();
                    assert_eq!(minutes.len(), 5, "{out}");
                    for pair in minutes.windows(2) {
                        assert_eq!((pair[1] + 1440 - pair[0]) % 1440, 15, "{out}");
                    }
                }
                ("run", "examples/price_race.wv", call) => {
                    let s = json(&out);
                    assert_eq!(code, Some(0), "{what}: {out}");
                    let booking = || {
                        std::fs::read_to_string(dir.join("examples/out/booking.ndjson"))
                            .unwrap_or_default()
                    };
                    match call {
                        "PriceRace" => {
                            assert_eq!(stage(&s, "us")["state"], "cancelled", "{what}");
                            assert!(booking().contains("\"booked_with\":\"eu\""), "{what}");
                        }
                        "PriceRace(eu_delay = 4)" => {
                            assert_eq!(stage(&s, "eu")["state"], "cancelled", "{what}");
                            assert!(booking().contains("\"booked_with\":\"us\""), "{what}");
                        }
                        _ => {
                            assert_eq!(stage(&s, "first_quote")["state"], "skipped", "{what}");
                            assert_eq!(stage(&s, "book")["state"], "skipped", "{what}");
                        }
                    }
                }
                ("run", "examples/customer_enrichment.wv", "EnrichCustomers") => {
                    let s = json(&out);
                    assert_eq!(code, Some(0), "{what}: {out}");
                    assert_eq!(stage(&s, "enriched")["rows"], 3, "{what}");
                    let retry = std::fs::read_to_string(dir.join("examples/out/retry_list.ndjson"))
                        .unwrap();
                    assert_eq!(retry.lines().count(), 1, "{what}: {retry}");
                    assert!(retry.contains("\"id\":13") && retry.contains("blocked in the CRM"));
                }
                ("run", "examples/launch_countdown.wv", call) => {
                    let s = json(&out);
                    let waited = stage(&s, "countdown_done")["duration_ms"].as_u64().unwrap();
                    match call {
                        "Launch" => {
                            assert_eq!(code, Some(0), "{what}: {out}");
                            assert!(waited >= 1000, "{what}");
                            assert_eq!(stage(&s, "release")["state"], "success", "{what}");
                        }
                        "Launch(countdown = 2s)" => {
                            assert_eq!(code, Some(0), "{what}: {out}");
                            assert!(waited >= 2000, "{what}");
                        }
                        _ => {
                            assert_eq!(code, Some(1), "{what}: {out}");
                            let eta = stage(&s, "eta_reached");
                            assert_eq!(eta["state"], "failed", "{what}");
                            assert!(eta["error"].as_str().unwrap().contains("not met within 2s"));
                        }
                    }
                }
                ("run", "examples/gpu_pool.wv", call) => {
                    let s = json(&out);
                    assert_eq!(code, Some(0), "{what}: {out}");
                    if call == "TrainModels" {
                        // Three 0.3 s items on two slots: two rounds.
                        let ms = stage(&s, "trained")["duration_ms"].as_u64().unwrap();
                        assert!(ms >= 600, "{what}: {ms} ms");
                    }
                }
                ("run", "examples/approval.wv", "") => {
                    // Released by the documented signal: the stage after the gate ran.
                    let s = json(&out);
                    assert_eq!(code, Some(0), "{what}: {out}");
                    assert_eq!(s["state"], "success", "{what}");
                    assert_eq!(stage(&s, "approval")["state"], "success", "{what}");
                    assert_eq!(stage(&s, "release")["state"], "success", "{what}");
                }
                ("run", "examples/pagination.wv", call) => {
                    let s = json(&out);
                    assert_eq!(code, Some(0), "{what}: {out}");
                    assert_eq!(stage(&s, "pages")["rows"], 7, "{what}");
                    assert_eq!(stage(&s, "catalog")["rows"], 7, "{what}");
                    // "5 calls" / "2 calls": one attempt per page fetched.
                    let calls = if call.is_empty() { 5 } else { 2 };
                    assert_eq!(attempts_of(&dir, &s, "pages"), calls, "{what}");
                }
                ("run", "examples/poll_until_ready.wv", "") => {
                    let s = json(&out);
                    assert_eq!(code, Some(0), "{what}: {out}");
                    assert_eq!(stage(&s, "poll")["rows"], 3, "{what}");
                    assert_eq!(attempts_of(&dir, &s, "poll"), 3, "{what}");
                    assert_eq!(stage(&s, "result")["rows"], 1, "{what}");
                }
                ("run", "examples/poll_until_ready.wv", _) => {
                    let s = json(&out);
                    assert_eq!(code, Some(1), "{what}: {out}");
                    let poll = stage(&s, "poll");
                    assert_eq!(poll["state"], "failed", "{what}");
                    let error = poll["error"].as_str().unwrap();
                    assert!(
                        error.contains("still held after 5 iterations"),
                        "{what}: {error}"
                    );
                    assert!(error.contains("max_iterations"), "{what}: {error}");
                    assert_eq!(attempts_of(&dir, &s, "poll"), 5, "{what}");
                    assert_eq!(stage(&s, "result")["state"], "skipped", "{what}");
                }
                ("run", "examples/long_loop.wv", call) => {
                    let s = json(&out);
                    assert_eq!(code, Some(0), "{what}: {out}");
                    let (batches, runs) = if call.is_empty() {
                        (10000, 10)
                    } else {
                        (2500, 3)
                    };
                    let first = (batches - 1) / 1000 * 1000 + 1;
                    let drain = rows_of(&dir, &s, "drain");
                    assert_eq!(drain.len(), batches - first + 1, "{what}");
                    assert_eq!(drain[0]["iteration"], first, "{what}");
                    assert_eq!(drain.last().unwrap()["drained"], batches, "{what}");
                    let summary = rows_of(&dir, &s, "summary");
                    assert_eq!(summary[0]["batches_drained"], batches, "{what}");
                    assert_eq!(summary[0]["items_processed"], batches * (batches + 1) / 2);
                    // "N runs": the chain behind the last one, each continued by the next.
                    let mut chain = 1;
                    let mut shown = show_run(&dir, s["run_id"].as_str().unwrap());
                    while let Some(from) = shown["continued_from"].as_str() {
                        chain += 1;
                        match try_show_run(&dir, from) {
                            Some(run) => {
                                assert_eq!(run["state"], "continued", "{what}");
                                shown = run;
                            }
                            // `keep_runs: 3` removed the older ones.
                            None => break,
                        }
                    }
                    assert_eq!(chain, runs.min(4), "{what}");
                }
                ("run", "examples/warehouse_report.wv", "") => {
                    let s = json(&out);
                    assert_eq!(code, Some(0), "{what}: {out}");
                    assert_eq!(s["state"], "success", "{what}");
                    let pg = crate::common::postgres::server();
                    let count = "SELECT count(*) FROM public.warehouse_orders";
                    assert_eq!(pg.psql("wvex_examples", count), "12\n", "{what}");
                    let regions =
                        "SELECT region, orders FROM public.revenue_by_region ORDER BY revenue DESC";
                    assert_eq!(
                        pg.psql("wvex_examples", regions),
                        "eu|5\nus|3\nlatam|2\napac|2\n",
                        "{what}"
                    );
                    let rows = rows_of(&dir, &s, "big_regions");
                    let regions: Vec<&str> =
                        rows.iter().map(|r| r["region"].as_str().unwrap()).collect();
                    assert_eq!(regions, ["eu", "us", "latam"], "{what}: {rows:?}");
                }
                ("test", file, _) => {
                    // The example's own tests, on mocks and virtual time.
                    assert_eq!(code, Some(0), "{what}: {out}");
                    assert!(out.contains("test result: ok."), "{what}: {out}");
                    assert!(out.contains(" 0 failed;"), "{file}: {out}");
                }
                ("run", file, "") => {
                    // Unqualified: the example's flow succeeds.
                    assert_eq!(code, Some(0), "{what}: {out}");
                    assert_eq!(json(&out)["state"], "success", "{file}");
                }
                _ => panic!(
                    "{what}: no documented outcome is checked for this invocation; add it here"
                ),
            }
        }
    }
    assert!(ran >= 20, "{ran} invocations");
}

/// How many attempts the run store holds for `stage` of the run `summary` reports, in the copy
/// of the examples under `dir`.
fn attempts_of(dir: &Path, summary: &Value, stage: &str) -> usize {
    let run = summary["run_id"].as_str().unwrap();
    let workspace = dir.join("examples");
    let o = Command::new(env!("CARGO_BIN_EXE_wvflow"))
        .args([
            "runs",
            "-w",
            workspace.to_str().unwrap(),
            "show",
            run,
            "--format",
            "json",
        ])
        .output()
        .unwrap();
    let show: Value = serde_json::from_slice(&o.stdout).unwrap();
    show["stages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["stage"] == stage)
        .map_or(0, |s| s["history"].as_array().map_or(0, Vec::len))
}

/// The `wvflow runs ...` invocations documented after `run` (up to the next `run`): they
/// act on that run while it goes on, `RUN_ID` standing for its id.
fn later_runs_commands(
    invocations: &[(Vec<String>, String)],
    run: &[String],
) -> Vec<(Vec<String>, String)> {
    invocations
        .iter()
        .skip_while(|(args, _)| args != run)
        .skip(1)
        .take_while(|(args, _)| args[0] == "runs")
        .cloned()
        .collect()
}

/// `wvflow run ...` in the background; once its run is recorded and a stage of it waits,
/// each documented `runs` invocation with `RUN_ID` replaced by the run's id, checked
/// against its documented outcome: `(prints X ...)` prints X; `signal` says what it sent.
/// Then the run's exit code and output, once it has ended.
fn run_with_runs_commands(
    dir: &Path,
    run: &[String],
    later: &[(Vec<String>, String)],
) -> (Option<i32>, String) {
    let mut args = run.to_vec();
    args.extend(["--format".into(), "json".into()]);
    let child = Command::new(env!("CARGO_BIN_EXE_wvflow"))
        .args(&args)
        .current_dir(dir)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Killed if an assertion fails before the run ends.
    struct Guard(Option<std::process::Child>);
    impl Drop for Guard {
        fn drop(&mut self) {
            if let Some(mut child) = self.0.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
    let mut guard = Guard(Some(child));
    let workspace = later[0].0[2].clone();
    let show = |id: &str| -> Value {
        let (_, out) = wvflow_in(
            dir,
            &[
                "runs".into(),
                "-w".into(),
                workspace.clone(),
                "show".into(),
                id.into(),
                "--format".into(),
                "json".into(),
            ],
        );
        serde_json::from_str(out.trim()).unwrap_or(Value::Null)
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let run_id = loop {
        assert!(std::time::Instant::now() < deadline, "{run:?} never waited");
        let (_, out) = wvflow_in(
            dir,
            &[
                "runs".into(),
                "-w".into(),
                workspace.clone(),
                "list".into(),
                "--state".into(),
                "running".into(),
                "--format".into(),
                "json".into(),
            ],
        );
        let listed: Value = serde_json::from_str(out.trim()).unwrap_or(Value::Null);
        // Waiting: a stage running with no attempt running (a `wait until` makes none),
        // seen twice in a row.
        let waiting = |id: &str| {
            show(id)["stages"].as_array().is_some_and(|stages| {
                stages.iter().any(|s| {
                    s["state"] == "running"
                        && !s["history"]
                            .as_array()
                            .is_some_and(|h| h.iter().any(|a| a["state"] == "running"))
                })
            })
        };
        if let Some(id) = listed[0]["run_id"].as_str()
            && waiting(id)
        {
            std::thread::sleep(std::time::Duration::from_millis(100));
            if waiting(id) {
                break id.to_string();
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    for (args, outcome) in later {
        let args: Vec<String> = args.iter().map(|a| a.replace("RUN_ID", &run_id)).collect();
        let what = format!("wvflow {} ({outcome})", args.join(" "));
        let (code, out) = wvflow_in(dir, &args);
        assert_eq!(code, Some(0), "{what}: {out}");
        let printed = out.lines().next().unwrap_or_default();
        match (args[3].as_str(), outcome.strip_prefix("(prints ")) {
            (_, Some(documented)) => {
                let value = documented.split_whitespace().next().unwrap_or_default();
                assert_eq!(printed, value, "{what}");
            }
            ("signal", None) => assert_eq!(
                printed,
                format!("signal {} = {} sent to run {run_id}", args[5], args[6]),
                "{what}"
            ),
            _ => panic!("{what}: no documented outcome is checked for this invocation"),
        }
    }
    let o = guard.0.take().unwrap().wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    (
        o.status.code(),
        text + "\n" + &String::from_utf8_lossy(&o.stderr),
    )
}

/// The README's `wvflow runs ... signal` and `runs ... query` lines each name an example
/// (`# examples/NAME.wv ...`) that declares that signal or query and documents the same
/// invocation in its header, where the test above runs it.
#[test]
fn the_readmes_signal_and_query_lines_come_from_an_example() {
    let readme = std::fs::read_to_string("README.md").unwrap();
    let mut checked = 0;
    for line in readme.lines() {
        let Some(command) = line.strip_prefix("wvflow runs -w examples ") else {
            continue;
        };
        let (command, comment) = command.split_once('#').unwrap_or((command, ""));
        let words = shell_words(command.trim());
        let member = match words[0].as_str() {
            "signal" => "signal",
            "query" => "query",
            _ => continue,
        };
        checked += 1;
        let file = comment
            .split_whitespace()
            .find(|w| w.starts_with("examples/") && w.ends_with(".wv"))
            .unwrap_or_else(|| panic!("README: `{line}` names no example"));
        let text = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{file}: {e}"));
        let parsed = wvflow::syntax::parse(&text, wvflow::source::FileId(0));
        let declared = parsed.ast.items.iter().any(|item| match item {
            wvflow::syntax::ast::Item::Flow(flow) => flow.members.iter().any(|m| match m {
                wvflow::syntax::ast::Member::Signal(s) => {
                    member == "signal" && s.name.name == words[2]
                }
                wvflow::syntax::ast::Member::Query(q) => {
                    member == "query" && q.name.name == words[2]
                }
                _ => false,
            }),
            _ => false,
        });
        assert!(declared, "{file} declares no {member} `{}`", words[2]);
        let mut documented = vec!["runs".to_string(), "-w".into(), "examples".into()];
        documented.extend(words);
        assert!(
            documented_invocations(&text)
                .iter()
                .any(|(args, _)| *args == documented),
            "{file} does not document `wvflow {}`",
            documented.join(" ")
        );
    }
    assert_eq!(checked, 2, "the README's signal and query lines");
}

/// `wvflow schedule PATH` (a daemon) for a second, then SIGTERM: its exit code and output.
fn scheduler_until_sigterm(dir: &Path, args: &[String]) -> (Option<i32>, String) {
    let child = Command::new(env!("CARGO_BIN_EXE_wvflow"))
        .args(args)
        .current_dir(dir)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_secs(1));
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let o = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    (o.status.code(), text + &String::from_utf8_lossy(&o.stderr))
}

/// `wvflow runs show RUN --format json` in the copy of the examples under `dir`, if the run
/// is still kept.
fn try_show_run(dir: &Path, run: &str) -> Option<Value> {
    let o = Command::new(env!("CARGO_BIN_EXE_wvflow"))
        .args(["runs", "-w", "examples", "show", run, "--format", "json"])
        .current_dir(dir)
        .output()
        .unwrap();
    o.status
        .success()
        .then(|| serde_json::from_slice(&o.stdout).unwrap())
}

fn show_run(dir: &Path, run: &str) -> Value {
    try_show_run(dir, run).unwrap_or_else(|| panic!("run {run} is not kept"))
}

/// The rows of `stage` of the run `summary` reports, as JSON objects.
fn rows_of(dir: &Path, summary: &Value, stage: &str) -> Vec<Value> {
    let run = summary["run_id"].as_str().unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_wvflow"))
        .args([
            "runs", "-w", "examples", "rows", run, stage, "--format", "ndjson",
        ])
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}
