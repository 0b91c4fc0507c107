//! What wvflow writes to a terminal, a pipe or a full disk: a write that fails is an error
//! with a message where one can still go (never a panic, never exit 0), the run's state is
//! recorded whatever happens to the output, and an activity's control sequences reach a
//! terminal escaped.

use crate::common::{run_json, scratch, stage, wvflow};
use std::process::{Command, Output, Stdio};

/// `wvflow ARGS` with stdout or stderr (`which`: 1 or 2) on `/dev/full`, a disk that is full.
fn onto_full_disk(which: u8, args: &[&str]) -> Output {
    let full = || Stdio::from(std::fs::File::create("/dev/full").unwrap());
    let mut command = Command::new(env!("CARGO_BIN_EXE_wvflow"));
    command.args(args);
    match which {
        1 => command.stdout(full()).stderr(Stdio::piped()),
        _ => command.stdout(Stdio::piped()).stderr(full()),
    };
    command.output().unwrap()
}

const FLOW: &str = r#"activity broken = sh("""printf '\033[2J boom\n' >&2; exit 3""")
activity noisy = sh("""printf '\033[31mred\033[0m \033]0;title\007 done\n' >&2; echo '{"ok": true}'""")
flow Logged = {
  stage rows = from [[1, 'a']] as t(id, name) | activate('log')
}
flow Quiet = {
  stage rows = from [[1, 'a']] as t(id, name)
}
flow Noisy = {
  stage s = noisy()
}
flow Broken = {
  stage s = broken()
}
"#;

#[test]
fn output_on_a_full_disk_is_an_error_and_not_a_panic() {
    let dir = scratch("full_output", &[("flow.wv", FLOW)]);
    let path = dir.to_str().unwrap();
    let (code, summary) = run_json(&dir, Some("Quiet"));
    assert_eq!(code, Some(0), "{summary}");

    // stdout: said on stderr, exit 2 (an I/O error), not 0.
    for args in [
        &["runs", "-w", path, "list"][..],
        &["check", path],
        &["plan", path, "Quiet"],
        &["explain", "E0101"],
    ] {
        let o = onto_full_disk(1, args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.contains("error: cannot write to standard output: No space left on device"),
            "{args:?}: {err}"
        );
    }

    // stderr: no panic (101); the command's own error status stands.
    let o = onto_full_disk(2, &["runs", "-w", path, "show", "no-such-run"]);
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    let o = onto_full_disk(2, &["check", "no-such-file.wv"]);
    assert_eq!(o.status.code(), Some(2), "{o:?}");
}

/// A run whose stderr is on a full disk is recorded as it ended: `activate('log')` cannot
/// deliver its rows, so that stage fails and says why, and the run is `failed`, not left
/// `running (stale)` by a panic.
#[test]
fn a_run_whose_stderr_is_full_records_how_it_ended() {
    let dir = scratch("full_stderr_run", &[("flow.wv", FLOW)]);
    let o = onto_full_disk(
        2,
        &["run", dir.to_str().unwrap(), "Logged", "--format", "json"],
    );
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    let summary: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let rows = stage(&summary, "rows");
    assert_eq!(rows["state"], "failed", "{summary}");
    assert!(
        rows["error"]
            .as_str()
            .unwrap()
            .contains("cannot write to standard error"),
        "{summary}"
    );
    let shown = wvflow(&[
        "runs",
        "-w",
        dir.to_str().unwrap(),
        "show",
        summary["run_id"].as_str().unwrap(),
        "--format",
        "json",
    ]);
    let shown: serde_json::Value = serde_json::from_slice(&shown.stdout).unwrap();
    assert_eq!(shown["state"], "failed", "{shown}");
}

/// What an activity writes reaches a terminal with its control characters escaped (a colour,
/// a window title, a bell), unless `--raw`; the bytes themselves are kept as written.
#[test]
fn activity_output_is_escaped_for_the_terminal_unless_raw() {
    let dir = scratch("escaped_logs", &[("flow.wv", FLOW)]);
    let (code, summary) = run_json(&dir, Some("Noisy"));
    assert_eq!(code, Some(0), "{summary}");
    let run_id = summary["run_id"].as_str().unwrap();
    let logs = |extra: &[&str]| -> String {
        let mut args = vec!["runs", "-w", dir.to_str().unwrap(), "logs", run_id];
        args.extend(extra);
        let o = wvflow(&args);
        assert_eq!(o.status.code(), Some(0), "{o:?}");
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let escaped = logs(&[]);
    assert!(
        !escaped.contains('\u{1b}') && !escaped.contains('\u{7}'),
        "{escaped:?}"
    );
    assert!(
        escaped.contains(r"\e[31mred\e[0m \e]0;title\a done"),
        "{escaped:?}"
    );
    let raw = logs(&["--raw"]);
    assert!(
        raw.contains("\u{1b}[31mred\u{1b}[0m \u{1b}]0;title\u{7} done"),
        "{raw:?}"
    );
}

/// A failed activity's error, as the run's table and `runs show` quote it, is escaped too.
#[test]
fn errors_quoting_an_activity_are_escaped() {
    let dir = scratch("escaped_errors", &[("flow.wv", FLOW)]);
    let o = wvflow(&["run", dir.to_str().unwrap(), "Broken"]);
    assert_eq!(o.status.code(), Some(1));
    let table = String::from_utf8_lossy(&o.stdout);
    assert!(!table.contains('\u{1b}'), "{table:?}");
    assert!(table.contains("\\e[2J boom"), "{table:?}");
    let run_id = table.split_whitespace().nth(1).unwrap();
    let o = wvflow(&["runs", "-w", dir.to_str().unwrap(), "show", run_id]);
    let shown = String::from_utf8_lossy(&o.stdout);
    assert!(
        !shown.contains('\u{1b}') && shown.contains("\\e[2J boom"),
        "{shown:?}"
    );
}
