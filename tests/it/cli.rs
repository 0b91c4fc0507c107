//! `wvflow check` as a user runs it: exit codes, the three output formats, folders, colour,
//! unreadable input.

use crate::common::{scratch, wvflow};
use std::path::Path;
use std::process::Output;

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn write(dir: &Path, name: &str, text: impl AsRef<[u8]>) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write test file");
    path.to_string_lossy().into_owned()
}

const BROKEN: &str = "flow f = {\n  stage a from t\n  stage b = from a | where x >\n}\n";

#[test]
fn clean_files_and_folders_exit_zero() {
    let o = wvflow(&["check", "examples/booking_saga.wv"]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    // The file and the examples' wvflow.toml, found in its folder.
    assert_eq!(stdout(&o), "checked 2 files: no problems\n");

    let o = wvflow(&["check", "examples"]);
    assert_eq!(o.status.code(), Some(0));
    let files = std::fs::read_dir("examples")
        .unwrap()
        .flatten()
        .filter(|e| {
            // The .wv files and the workspace's wvflow.toml (its connectors): both checked.
            e.path().extension().is_some_and(|x| x == "wv") || e.file_name() == "wvflow.toml"
        })
        .count();
    assert!(
        stdout(&o).starts_with(&format!("checked {files} files: no problems")),
        "{}",
        stdout(&o)
    );
}

#[test]
fn errors_exit_one_in_every_format() {
    let dir = scratch("errors_exit_one", &[]);
    let file = write(&dir, "broken.wv", BROKEN);

    let human = wvflow(&["check", &file, "--color", "never"]);
    assert_eq!(human.status.code(), Some(1));
    let text = stdout(&human);
    assert!(
        text.contains("[E0010] Error: expected `=`, `[`, `if`, `on` or `with`, found `from`"),
        "{text}"
    );
    assert!(text.contains("broken.wv:2:11"), "{text}");
    assert!(
        text.ends_with("checked 1 file: 2 errors, 0 warnings\n"),
        "{text}"
    );

    let short = wvflow(&["check", &file, "--format", "short"]);
    assert_eq!(short.status.code(), Some(1));
    assert_eq!(
        stdout(&short),
        format!(
            "{file}:2:11: error[E0010]: expected `=`, `[`, `if`, `on` or `with`, found `from`\n\
             {file}:4:1: error[E0010]: expected an expression, found `}}`\n"
        )
    );

    let json = wvflow(&["check", &file, "--format", "json"]);
    assert_eq!(json.status.code(), Some(1));
    let value: serde_json::Value = serde_json::from_slice(&json.stdout).expect("valid JSON");
    let first = &value[0];
    assert_eq!(first["file"], file.as_str());
    assert_eq!(first["code"], "E0010");
    assert_eq!(first["severity"], "error");
    assert_eq!(first["range"]["start"]["line"], 1);
    assert_eq!(first["range"]["start"]["character"], 10);
    assert_eq!(first["range"]["end"]["character"], 14);
    assert_eq!(first["labels"][0]["message"], "not expected here");
    assert_eq!(
        first["help"],
        "a definition needs `=` before its body: `stage name = from source`"
    );
    assert_eq!(value.as_array().map(Vec::len), Some(2));
}

#[test]
fn json_positions_count_utf16_code_units() {
    let dir = scratch("json_utf16", &[]);
    // `é` is one UTF-16 unit (two UTF-8 bytes); `𝄞` is two UTF-16 units (four bytes).
    let src = "flow f = { stage s = from t | where n = 'é𝄞' ? }\n";
    let file = write(&dir, "unicode.wv", src);
    let o = wvflow(&["check", &file, "--format", "json"]);
    let value: serde_json::Value = serde_json::from_slice(&o.stdout).expect("valid JSON");
    assert_eq!(value[0]["code"], "E0001");
    let before = &src[..src.find('?').unwrap()];
    assert_eq!(
        before.encode_utf16().count(),
        before.chars().count() + 1,
        "`𝄞` counts twice"
    );
    assert_eq!(
        value[0]["range"]["start"]["character"],
        before.encode_utf16().count()
    );
}

#[test]
fn colour_follows_the_flag() {
    let dir = scratch("colour", &[]);
    let file = write(&dir, "broken.wv", BROKEN);
    assert!(stdout(&wvflow(&["check", &file, "--color", "always"])).contains("\u{1b}["));
    assert!(!stdout(&wvflow(&["check", &file, "--color", "never"])).contains("\u{1b}["));
    // Not a terminal: auto means no colour.
    assert!(!stdout(&wvflow(&["check", &file])).contains("\u{1b}["));
}

#[test]
fn a_folder_is_searched_recursively_and_reports_every_file() {
    let dir = scratch("folder", &[]);
    std::fs::create_dir_all(dir.join("nested/deeper")).unwrap();
    write(&dir, "ok.wv", "flow a = { stage s = from t }");
    write(
        &dir.join("nested/deeper"),
        "bad.wv",
        "flow b = { stage s = }",
    );
    write(&dir, "notes.txt", "not a flow");
    let o = wvflow(&["check", dir.to_str().unwrap(), "--format", "short"]);
    assert_eq!(o.status.code(), Some(1));
    let out = stdout(&o);
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(
        out.contains("nested/deeper/bad.wv:1:22: error[E0010]"),
        "{out}"
    );
}

#[test]
fn missing_and_unreadable_input_exit_two() {
    let o = wvflow(&["check", "no/such/file.wv"]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(
        stderr(&o),
        "error: no/such/file.wv: no such file or folder\n"
    );

    let dir = scratch("binary", &[]);
    let file = write(&dir, "blob.wv", [0x66u8, 0x6c, 0xff, 0xfe, 0x00, 0x10]);
    let o = wvflow(&["check", &file]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("not UTF-8 text (invalid byte at line 1, byte offset 2)"),
        "{}",
        stderr(&o)
    );

    let o = wvflow(&["check", "--format", "yaml", "examples"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn a_missing_path_prints_only_the_error_in_every_format_and_checks_nothing() {
    for format in ["human", "short", "json"] {
        let o = wvflow(&["check", "nonexist.wv", "--format", format]);
        assert_eq!(o.status.code(), Some(2), "{format}");
        assert_eq!(stdout(&o), "", "{format}: no summary, no empty report");
        assert_eq!(stderr(&o), "error: nonexist.wv: no such file or folder\n");
    }
    // Beside a file that has problems: the workspace is incomplete, so nothing is checked (a
    // flow defined in the missing file would read as an unknown flow in the others).
    let dir = scratch("missing-beside-broken", &[]);
    let broken = write(&dir, "broken.wv", BROKEN);
    let o = wvflow(&["check", &broken, "nonexist.wv"]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(stdout(&o), "");
    assert_eq!(stderr(&o), "error: nonexist.wv: no such file or folder\n");
}

#[test]
fn a_fractional_duration_is_refused_with_its_whole_equivalent() {
    let dir = scratch("fractional-duration", &[]);
    let file = write(
        &dir,
        "pause.wv",
        "flow Pause = {\n  stage pause = wait(1.5h)\n}\n",
    );
    let o = wvflow(&["check", &file, "--format", "json"]);
    assert_eq!(o.status.code(), Some(1));
    let found: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let d = &found[0];
    assert_eq!(d["code"], "E0005");
    assert_eq!(
        d["message"],
        "`1.5h` is not a duration: a duration literal takes a whole number of its unit"
    );
    assert_eq!(d["help"], "write `90m`, the same duration in whole minutes");
    // `1.5h` on line 2 (0-based: 1), columns 21 to 25.
    assert_eq!(
        d["range"],
        serde_json::json!({"start": {"line": 1, "character": 21}, "end": {"line": 1, "character": 25}})
    );
}

#[test]
fn empty_file_is_clean_and_deny_warnings_keeps_clean_files_passing() {
    let dir = scratch("empty", &[]);
    let file = write(&dir, "empty.wv", "");
    let o = wvflow(&["check", &file, "--deny-warnings"]);
    assert_eq!(o.status.code(), Some(0));
}

#[test]
fn a_large_file_is_checked_without_trouble() {
    // 50 MB of valid, distinct flows.
    let dir = scratch("large", &[]);
    let template = "activity fetch_N(id: string) with { retries: 3, timeout: 30s } = exec('bin/fetch', id)\n\
        activity undo_N(id: string) with { retries: 5 } = sh(\"\"\"printf '{}' \"\"\")\n\
        flow Load_N(day: date = '2024-01-01') with { schedule: cron('0 2 * * *'), timezone: 'UTC' } = {\n\
          stage orders [retries: 2, timeout: 5m] = from 'data/orders.csv' | where _.amount > 10 and status in ('paid', 'open')\n\
          stage totals = from orders | group by customer | select customer, count(*) as n, sum(amount) as total | order by total desc | limit 10\n\
          stage pay with { compensate: undo_N(id: _.id), concurrency: 4 } = from orders | each fetch_N(_.id)\n\
          stage report if pay.failed or totals.failed = from 'data/empty.csv'\n\
        }\n";
    let mut text = String::with_capacity(51_000_000);
    let mut n = 0;
    while text.len() < 50_000_000 {
        text.push_str(&template.replace('N', &n.to_string()));
        n += 1;
    }
    let file = write(&dir, "large.wv", &text);
    let o = wvflow(&["check", &file, "--format", "short"]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    assert_eq!(stdout(&o), "");
}
