//! `wvflow test`: tests written in the flow language, run as a user runs them, on the
//! command line: mocks, virtual time, expectations, the three output formats, and what the
//! checker refuses before anything runs.

use crate::common::scratch;
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output};

/// `wvflow ARGS` in `dir`.
fn wvflow_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wvflow"))
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap()
}

fn wvflow_test(dir: &Path, args: &[&str]) -> Output {
    let mut all = vec!["test"];
    all.extend(args);
    wvflow_in(dir, &all)
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `wvflow test --format json` of `flow.wv` in a fresh folder: the exit code and the document.
fn json_of(name: &str, text: &str, extra: &[&str]) -> (Option<i32>, Value) {
    let dir = scratch(name, &[("flow.wv", text)]);
    let mut args = vec!["flow.wv", "--format", "json"];
    args.extend(extra);
    let o = wvflow_test(&dir, &args);
    let doc = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}{}", stdout(&o), stderr(&o)));
    (o.status.code(), doc)
}

fn test_named<'a>(doc: &'a Value, name: &str) -> &'a Value {
    doc["tests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == name)
        .unwrap_or_else(|| panic!("no test {name} in {doc:#}"))
}

/// The messages and labels of a test's failures, one line each.
fn failures(test: &Value) -> Vec<String> {
    test["failures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            format!(
                "{} | {}",
                f["message"].as_str().unwrap(),
                f["labels"][0]["message"].as_str().unwrap()
            )
        })
        .collect()
}

/// A flow that touches a file in its folder from every activity: a test that spawned one
/// would leave the file.
const TRIP: &str = r#"
activity reserve(kind: string) with { retries: 3, retry_delay: 1h, backoff: constant } = exec('touch', 'spawned')
activity charge(amount: float, decline: boolean) with { retries: 2, retry_delay: 1s, non_retryable: [2] } = exec('touch', 'spawned')
activity undo(kind: string) = exec('touch', 'spawned')
activity notify = exec('touch', 'spawned')

flow Trip(decline: boolean = false) with { on_failure: notify() } = {
  stage flight with { compensate: undo('flight') } = reserve('flight')
  stage hotel with { compensate: undo('hotel') } = from flight | reserve('hotel')
  stage payment = from hotel | charge(1480.0, decline)
  stage receipt if payment.success = from payment | select amount
}
"#;

fn trip(tests: &str) -> String {
    format!("{TRIP}\n{tests}")
}

#[test]
fn retries_an_hour_apart_take_hours_of_virtual_time_and_no_process() {
    let text = trip(
        r#"
test flaky_flight = {
  call Trip()
  mock reserve fails with 1 on attempts 1 to 3
  mock reserve returns [['flight', 'FL-1']] as (kind, ref)
  mock charge returns [[1480.0, true]] as (amount, ok)
  mock undo returns []
  mock notify returns []
  expect run success
  expect exit 0
  expect flight attempts 4
  expect hotel attempts 4
  expect receipt rows [[1480]] as (amount)
  expect elapsed 6h
}
"#,
    );
    let dir = scratch("testing_retries", &[("flow.wv", &text)]);
    let o = wvflow_test(&dir, &["flow.wv"]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    let out = stdout(&o);
    // Both stages call `reserve`; each call fails its first three attempts.
    assert!(
        out.contains("test flaky_flight ... ok (6h virtual"),
        "{out}"
    );
    assert!(
        out.contains("test result: ok. 1 passed; 0 failed; 0 filtered out;"),
        "{out}"
    );
    assert!(out.contains("(6h of virtual time)"), "{out}");
    assert!(
        !dir.join("spawned").exists(),
        "a mocked activity started a process"
    );
    // Nothing is written to the workspace: no run store, no database.
    let left: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(left, ["flow.wv"], "{left:?}");
}

#[test]
fn a_declined_card_compensates_newest_first_and_fires_the_failure_hook() {
    let (code, doc) = json_of(
        "testing_saga",
        &trip(
            r#"
test declined = {
  call Trip(decline = true)
  mock reserve returns [['x']] as (kind)
  mock charge fails with 2
  mock undo returns []
  mock notify returns []
  expect run failed
  expect exit 1
  expect payment failed
  expect payment attempts 1
  expect receipt skipped
  expect compensations [hotel, flight]
  expect hooks [on_failure]
  expect undo called 2 times
  expect undo called with (kind = 'hotel')
  expect undo called with rows [['x']] as (kind)
  expect charge called with (amount = 1480.0, decline = true)
  expect elapsed 0s
}
"#,
        ),
        &[],
    );
    assert_eq!(code, Some(0), "{doc:#}");
    assert_eq!(doc["passed"], 1);
    assert_eq!(doc["failed"], 0);
    assert_eq!(doc["filtered"], 0);
    assert_eq!(test_named(&doc, "declined")["passed"], true);
}

#[test]
fn failed_expectations_point_at_their_expect_with_expected_and_found() {
    let (code, doc) = json_of(
        "testing_failures",
        &trip(
            r#"
test wrong = {
  call Trip(decline = true)
  mock reserve returns [['flight', 'FL-1'], ['hotel', 'HT-1']] as (kind, ref)
  mock charge fails with 2
  mock undo returns []
  mock notify returns []
  expect run success
  expect payment attempts 3
  expect compensations [flight, hotel]
  expect flight rows [['flight', 'FL-9'], ['hotel', 'HT-1']] as (kind, ref)
  expect flight rows [['x']] as (gate)
  expect undo called 3 times
  expect elapsed 1h
}
"#,
        ),
        &[],
    );
    assert_eq!(code, Some(1), "{doc:#}");
    assert_eq!(
        (doc["passed"].clone(), doc["failed"].clone()),
        (0.into(), 1.into())
    );
    let test = test_named(&doc, "wrong");
    assert_eq!(
        failures(test),
        [
            "expectation not met: the run ends success | the run ended failed",
            "expectation not met: stage `payment` makes 3 attempts | 1 attempt",
            "expectation not met: compensations [flight, hotel] | compensated [hotel, flight]",
            "expectation not met: the rows of stage `flight` | 2 other rows",
            "expectation not met: the rows of stage `flight` | no column `gate` (the columns are `kind`, `ref`)",
            "expectation not met: `undo` called 3 times | called 2 times",
            "expectation not met: elapsed 1h | 0s of virtual time",
        ]
    );
    // Each points at its `expect` line (0-based lines in JSON).
    let lines: Vec<u64> = test["failures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["range"]["start"]["line"].as_u64().unwrap())
        .collect();
    let text = trip("");
    let first = text.lines().count() as u64 + 7;
    assert_eq!(lines, (first..first + 7).collect::<Vec<_>>());
    let rows = &test["failures"][3]["help"];
    assert_eq!(
        rows.as_str().unwrap(),
        "expected:\nkind    ref\nflight  FL-9\nhotel   HT-1\nfound:\nkind    ref\nflight  FL-1\nhotel   HT-1",
    );
}

#[test]
fn an_activity_neither_mocked_nor_real_is_refused_before_anything_runs() {
    let text = trip(
        r#"
test forgot = {
  call Trip()
  mock reserve returns []
  mock charge returns []
  expect run success
}
"#,
    );
    let dir = scratch("testing_unmocked", &[("flow.wv", &text)]);
    let o = wvflow_test(&dir, &["flow.wv"]);
    assert_eq!(o.status.code(), Some(2), "{}", stdout(&o));
    let err = stderr(&o);
    assert!(
        err.contains("[E0803] Error: test `forgot` would run `notify`, `undo` for real"),
        "{err}"
    );
    assert!(stdout(&o).is_empty(), "{}", stdout(&o));
    assert!(!dir.join("spawned").exists());
}

#[test]
fn real_lets_an_activity_run_its_program() {
    let text = trip(
        r#"
test for_real = {
  call Trip()
  real reserve
  mock charge returns []
  mock undo returns []
  mock notify returns []
  expect run success
  expect reserve called 2 times
}
"#,
    );
    let dir = scratch("testing_real", &[("flow.wv", &text)]);
    let o = wvflow_test(&dir, &["flow.wv"]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    assert!(dir.join("spawned").exists(), "`real` ran the program");
}

const GATE: &str = r#"
activity prepare = exec('true')
activity publish = exec('true')
activity slow(n: int) with { timeout: 30s, retries: 1, retry_delay: 10s } = exec('true')

flow Gate with { timeout: 2h } = {
  signal approved = false
  stage prepared = prepare()
  stage approval [poll_interval: 1s, timeout: 1d] = from prepared | wait until approved
  stage release = from approval | publish()
}

flow Slow = {
  stage work = slow(1)
}

flow Race = {
  stage eu = slow(1)
  stage us = slow(2)
  stage first [trigger: first_success] = merge eu, us
}
"#;

#[test]
fn signals_waits_timeouts_and_races_run_on_virtual_time() {
    let tests = r#"
test approved_after_90_minutes = {
  call Gate()
  mock prepare returns [['r1']] as (release)
  mock publish returns [['r1', true]] as (release, published)
  signal approved = true at 90m
  expect run success
  expect release rows [['r1', true]] as (release, published)
  expect elapsed 90m
}

test never_approved_fails_at_the_flow_timeout = {
  call Gate()
  mock prepare returns [['r1']] as (release)
  mock publish returns []
  expect run failed
  expect approval failed
  expect release cancelled
  expect publish called 0 times
  expect elapsed 2h
}

test a_hung_activity_times_out_twice = {
  call Slow()
  mock slow never ends
  expect run failed
  expect work attempts 2
  expect elapsed 70s
}

test a_slow_activity_is_cut_at_its_timeout = {
  call Slow()
  mock slow takes 1h returns []
  expect work failed
  expect elapsed 70s
}

test the_faster_racer_wins = {
  call Race()
  mock slow takes 5s returns [['eu']] as (region) on attempt 1
  mock slow fails
  expect first success
  expect first rows [['eu']] as (region)
  expect elapsed 5s
}
"#;
    let text = format!("{GATE}\n{tests}");
    let (code, doc) = json_of("testing_time", &text, &[]);
    assert_eq!(code, Some(0), "{doc:#}");
    assert_eq!(doc["passed"], 5, "{doc:#}");
    // 1h30m + 2h + 70s + 70s + 5s
    assert_eq!(doc["virtual_ms"], 3_600_000 * 3 + 30 * 60_000 + 145_000);
}

#[test]
fn a_run_that_can_never_end_fails_its_test_instead_of_hanging() {
    let text = r#"
activity stuck = exec('true')
flow Stuck = {
  stage s = stuck()
}
test waits_forever = {
  call Stuck()
  mock stuck never ends
  expect run success
}
"#;
    let (code, doc) = json_of("testing_stuck", text, &[]);
    assert_eq!(code, Some(1), "{doc:#}");
    let test = test_named(&doc, "waits_forever");
    let found = failures(test);
    assert_eq!(
        found[0],
        "the run could never end: at 0s every stage waited and nothing could wake one | cancelled as stuck",
        "{found:?}"
    );
    assert_eq!(
        found[1],
        "expectation not met: the run ends success | the run ended cancelled"
    );
}

#[test]
fn filter_junit_and_a_closed_pipe() {
    let text = trip(
        r#"
test passes = {
  call Trip()
  mock reserve returns []
  mock charge returns []
  mock undo returns []
  mock notify returns []
  expect run success
}

test fails_with_a_less_than = {
  call Trip(decline = true)
  mock reserve returns []
  mock charge fails with 2
  mock undo returns []
  mock notify returns []
  expect run success
}
"#,
    );
    let dir = scratch("testing_formats", &[("flow.wv", &text)]);
    let o = wvflow_test(&dir, &["flow.wv", "--filter", "passes", "--format", "json"]);
    let doc: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(
        (doc["passed"].clone(), doc["filtered"].clone()),
        (1.into(), 1.into())
    );

    let o = wvflow_test(&dir, &["flow.wv", "--format", "junit"]);
    assert_eq!(o.status.code(), Some(1));
    let xml = stdout(&o);
    assert!(xml.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"wvflow\" tests=\"2\" failures=\"1\""), "{xml}");
    assert!(
        xml.contains("<testsuite name=\"flow.wv\" tests=\"2\" failures=\"1\""),
        "{xml}"
    );
    assert!(
        xml.contains("<testcase name=\"passes\" classname=\"flow.wv\""),
        "{xml}"
    );
    assert!(
        xml.contains(
            "<failure type=\"E0806\" message=\"expectation not met: the run ends success\">"
        ),
        "{xml}"
    );
    assert_eq!(xml.matches("<testcase").count(), 2);
    assert_eq!(
        xml.matches("</testcase>").count(),
        1,
        "one failed case holds its failure"
    );
    assert!(!xml.contains("\u{1b}"), "no colour codes in XML");

    // A reader that stops early: no panic, no error.
    let mut child = Command::new(env!("CARGO_BIN_EXE_wvflow"))
        .args(["test", "flow.wv"])
        .current_dir(&dir)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let o = child.wait_with_output().unwrap();
    assert!(!stderr(&o).contains("panicked"), "{}", stderr(&o));
}

#[test]
fn the_checker_knows_the_names_of_a_test() {
    let text = trip(
        r#"
test typos = {
  call Trip(decline = true)
  mock reserv returns []
  mock charge returns [[1]] as (a, b)
  mock undo takes 5 returns []
  mock notify fails with 0
  mock notify returns []
  signal aproved at 1m
  expect paymnt failed
  expect payment finished
  expect hooks [on_fail]
  expect charge called with (amt = 1.0)
}
"#,
    );
    let dir = scratch("testing_names", &[("flow.wv", &text)]);
    let o = wvflow_in(&dir, &["check", "flow.wv", "--format", "short"]);
    assert_eq!(o.status.code(), Some(1));
    let out = stdout(&o);
    let codes: Vec<&str> = out
        .lines()
        .filter_map(|l| l.split(": ").nth(1))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    for wanted in [
        "`reserv` is not an activity of this workspace",
        "invalid row in a test",
        "invalid mock duration in a test",
        "invalid exit code in a test",
        "flow `Trip` has no signal `aproved`",
        "flow `Trip` has no stage `paymnt`",
        "`finished` is not a state",
        "`on_fail` is not a hook event",
        "activity `charge` has no parameter `amt`",
    ] {
        assert!(out.contains(wanted), "{wanted}: {out}");
    }
    assert!(!codes.is_empty());
}

#[test]
fn a_flipped_trigger_fails_the_test_that_names_its_stage() {
    let tests = r#"
test receipt_follows_payment = {
  call Trip()
  mock reserve returns []
  mock charge returns [[1480.0]] as (amount)
  mock undo returns []
  mock notify returns []
  expect receipt success
}
"#;
    let (code, _) = json_of("testing_mutant_ok", &trip(tests), &[]);
    assert_eq!(code, Some(0));
    let mutant = trip(tests).replace("if payment.success", "if payment.failed");
    let (code, doc) = json_of("testing_mutant", &mutant, &[]);
    assert_eq!(code, Some(1));
    assert_eq!(
        failures(test_named(&doc, "receipt_follows_payment")),
        ["expectation not met: stage `receipt` ends success | `receipt` ended skipped"]
    );
}

#[test]
fn upstream_states_decide_whether_a_dependent_flow_starts() {
    let text = r#"
activity work = exec('true')
flow Load = {
  stage l = work()
}
flow Cleanup if Load.failed = {
  stage c = work()
}
flow Report depends on Load = {
  stage r = work()
}
test cleanup_after_a_failed_load = {
  call Cleanup()
  upstream Load failed
  mock work returns []
  expect run success
  expect c success
}
test no_cleanup_after_a_good_load = {
  call Cleanup()
  upstream Load success
  mock work returns []
  expect run skipped
  expect work called 0 times
}
test no_report_after_a_failed_load = {
  call Report()
  upstream Load failed
  mock work returns []
  expect run skipped
}
test report_after_a_good_load = {
  call Report()
  upstream Load success
  mock work returns []
  expect run success
}
"#;
    let (code, doc) = json_of("testing_upstream", text, &[]);
    assert_eq!(code, Some(0), "{doc:#}");
    assert_eq!(doc["passed"], 4, "{doc:#}");
    let wrong = text.replace(
        "upstream Load failed\n  mock work returns []\n  expect run success",
        "upstream Loader failed\n  mock work returns []\n  expect run success",
    );
    let dir = scratch("testing_upstream_typo", &[("flow.wv", &wrong)]);
    let o = wvflow_in(&dir, &["check", "flow.wv"]);
    assert!(
        stdout(&o).contains("flow `Cleanup` does not start after `Loader`: neither its `if` nor its `depends on` names it"),
        "{}",
        stdout(&o)
    );
    assert!(
        stdout(&o).contains("did you mean `Load`?"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn the_example_of_docs_testing_md_checks_clean_and_passes_as_shown() {
    let doc = std::fs::read_to_string("docs/testing.md").unwrap();
    let example = crate::common::code_blocks(&doc, "wv").remove(0);
    let dir = scratch("testing_docs", &[("trips.wv", &example)]);
    let o = wvflow_in(&dir, &["check", "trips.wv"]);
    assert_eq!(stdout(&o), "checked 1 file: no problems\n");
    let o = wvflow_test(&dir, &["trips.wv"]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    let out = stdout(&o);
    for line in [
        "running 2 tests",
        "test declined_card_cancels_the_hotel ... ok (0s virtual,",
        "test a_flaky_gateway_is_tried_again_an_hour_later ... ok (3h virtual,",
        "test result: ok. 2 passed; 0 failed; 0 filtered out;",
    ] {
        assert!(out.contains(line), "{line}: {out}");
        assert!(doc.contains(line), "docs/testing.md shows {line}");
    }
}

#[test]
fn an_expectation_the_mocks_make_impossible_is_refused_before_running() {
    let text = trip(
        r#"
test impossible = {
  call Trip()
  mock reserve fails
  mock charge returns []
  mock undo returns []
  mock notify returns []
  expect flight success
  expect hotel rows 1
  expect hotel failed
  expect receipt skipped
}
"#,
    );
    let dir = scratch("testing_impossible", &[("flow.wv", &text)]);
    let o = wvflow_in(&dir, &["check", "flow.wv", "--format", "short"]);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    let lines: Vec<&str> = out.lines().filter(|l| l.contains("E0805")).collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(
        lines[0].contains("stage `flight` never succeeds in this test"),
        "{out}"
    );
    assert!(
        lines[1].contains("stage `hotel` never succeeds in this test"),
        "{out}"
    );
    // Failing only some attempts makes no claim.
    let retried = text.replace(
        "mock reserve fails\n",
        "mock reserve fails on attempts 1 to 2\n  mock reserve returns []\n",
    );
    let dir = scratch("testing_possible", &[("flow.wv", &retried)]);
    let o = wvflow_in(&dir, &["check", "flow.wv"]);
    assert!(
        stdout(&o).ends_with("checked 1 file: 0 errors, 2 warnings\n"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn mocks_answer_by_arguments_and_saved_tables_by_schema() {
    let text = r#"
activity enrich(customer: int, vip: boolean) with { retries: 1, retry_delay: 5s } = exec('true')
flow Enrich = {
  stage customers = from [[11, false], [13, true], [17, false]] as t(id, vip)
  stage enriched [tolerated_failures: 1] = from customers | each enrich(_.id, _.vip)
  stage kept = from enriched | save to crm.enriched
}
test customer_13_fails_alone = {
  call Enrich()
  mock enrich when (customer = 13) fails with 2
  mock enrich when (vip = false) takes 1s returns [[1]] as (ok)
  expect run success
  expect enriched rows 2
  expect enrich called 4 times
  expect table crm.enriched rows [[1], [1]] as (ok)
  expect elapsed 5s
}
"#;
    let (code, doc) = json_of("testing_when", text, &[]);
    assert_eq!(code, Some(0), "{doc:#}");
    // A second test of the same name is refused.
    let twice = format!(
        "{text}\n{}",
        &text[text.find("test customer_13").unwrap()..]
    );
    let dir = scratch("testing_twice", &[("flow.wv", &twice)]);
    let o = wvflow_in(&dir, &["check", "flow.wv", "--format", "short"]);
    assert!(
        stdout(&o).contains("error[E0808]: a second test named `customer_13_fails_alone`"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn a_test_sends_only_the_signals_its_flow_declares() {
    let text = r#"
activity prepare = exec('true')
flow Gate = {
  signal approved = false
  stage prepared = prepare()
  stage approval [poll_interval: 1s, timeout: 1h] = from prepared | wait until approved
}
test paused = {
  call Gate()
  mock prepare returns [['r1']] as (release)
  signal pause at 1m
  signal approved at 2m
  expect run success
}
"#;
    let dir = scratch("testing_pause", &[("flow.wv", text)]);
    let o = wvflow_in(&dir, &["check", "flow.wv", "--format", "short"]);
    let out = stdout(&o);
    assert!(
        out.contains("error[E0804]: invalid signal in a test"),
        "{out}"
    );
    assert_eq!(out.matches("error[").count(), 1, "{out}");
    let fixed = text.replace("  signal pause at 1m\n", "");
    let (code, doc) = json_of("testing_no_pause", &fixed, &[]);
    assert_eq!(code, Some(0), "{doc:#}");
    assert_eq!(doc["virtual_ms"], 120_000);
}

#[test]
fn typed_values_reach_a_mocked_activity_and_show_as_written() {
    let text = r#"activity take(flag: boolean, ratio: float, pause: duration, note: string) = exec('true')
activity emit = exec('true')
flow Types(flag: boolean = true, ratio: float = 0.5, pause: duration = 90s) = {
  stage rows = emit()
  stage taken = from rows | take(flag, ratio, pause, null)
}
test typed_values_reach_the_activity = {
  call Types(flag = false, ratio = 2.5, pause = 2m)
  mock emit returns [['b', 2], ['a', 1], ['c', 3]] as (name, n)
  mock take returns []
  expect take called with (flag = true, ratio = 2.5, pause = 2m, note = null)
  expect rows rows [[1, 'a'], [3, 'c'], [2, 'b']] as (n, name)
  expect rows rows in order [['b'], ['a'], ['c']] as (name)
  expect take called with rows [[3, 'c'], [1, 'a'], [2, 'b']] as (n, name)
}
test no_rows = {
  call Types()
  mock emit returns []
  mock take returns []
  expect rows rows 0
  expect take called with rows 0
}
test one_row = {
  call Types()
  mock emit returns [[null, 1.0]] as (name, n)
  mock take returns []
  expect rows rows [[null, 1]] as (name, n)
}
"#;
    let (code, doc) = json_of("testing_typed", text, &[]);
    assert_eq!(code, Some(1), "{doc:#}");
    assert_eq!(
        (doc["passed"].clone(), doc["failed"].clone()),
        (2.into(), 1.into())
    );
    let test = test_named(&doc, "typed_values_reach_the_activity");
    assert_eq!(
        test["failures"][0]["help"],
        "its calls had: (flag = false, note = null, pause = 2m, ratio = 2.5)"
    );
    assert_eq!(test["failures"].as_array().unwrap().len(), 1, "{test:#}");
}
