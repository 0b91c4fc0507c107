//! Connectors as a user meets them: `wvflow.toml` beside the flows, its problems pointed at in
//! the file, `on NAME` resolved at check time, a stage on a connector this build cannot run
//! refused before anything runs, and a secret of the environment never printed.

use crate::common::scratch;
use std::path::Path;
use std::process::{Command, Output};

/// A server nothing answers on (port 1 of this machine): a run that opens it fails at once.
const PG: &str = "[connectors.pg]\nkind = \"postgres\"\n\
    url = \"postgresql://app:${PGPASSWORD}@127.0.0.1:1/analytics\"\n";

const DUCK: &str = "[connectors.duck]\nkind = \"duckdb\"\npath = \"w.duckdb\"\n";

/// Another SQLite file: no build runs stages on one yet.
const LITE: &str = "[connectors.lite]\nkind = \"sqlite\"\npath = \"other.db\"\n";

const SECRET: &str = "pw-6b1f0c93-unique-in-this-test";

/// A flow with one stage on `on`, or none.
fn flow(on: Option<&str>) -> String {
    let on = on.map(|c| format!(" on {c}")).unwrap_or_default();
    format!(
        "flow Report = {{\n  stage orders = from [[1, 'open'], [2, 'paid']] as t(id, status)\n  \
         stage recent{on} = from orders | limit 10\n}}\n"
    )
}

/// `wvflow ARGS` run in `dir` (paths as a user in that folder writes them), with
/// `PGPASSWORD` set to [`SECRET`].
fn wvflow_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wvflow"))
        .args(args)
        .current_dir(dir)
        .env("PGPASSWORD", SECRET)
        .env("NO_COLOR", "1")
        .output()
        .expect("wvflow runs")
}

fn json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    })
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn an_unknown_connector_is_refused_with_the_closest_name() {
    let toml = "[connectors.warehouse]\nkind = \"duckdb\"\npath = \"w.duckdb\"\n";
    let dir = scratch(
        "connectors_unknown",
        &[
            ("wvflow.toml", toml),
            ("report.wv", &flow(Some("warehose"))),
        ],
    );
    let o = wvflow_in(&dir, &["check", ".", "--format", "json"]);
    assert_eq!(o.status.code(), Some(1));
    let found = json(&o);
    let d = &found[0];
    assert_eq!(found.as_array().unwrap().len(), 1, "{found}");
    assert_eq!(d["code"], "E0701");
    assert_eq!(
        d["message"],
        "stage `recent` runs on an unknown connector `warehose`"
    );
    assert_eq!(d["help"], "did you mean `warehouse`?");
    assert_eq!(d["file"], "report.wv");
    assert_eq!(d["range"]["start"]["line"], 2);
    assert_eq!(d["range"]["start"]["character"], 18);
    assert_eq!(d["range"]["end"]["character"], 26);
    let human = wvflow_in(&dir, &["check", "."]);
    insta::assert_snapshot!("unknown_connector", stdout(&human));
}

#[test]
fn without_wvflow_toml_only_default_is_known() {
    let dir = scratch(
        "connectors_no_file",
        &[("report.wv", &flow(Some("warehouse")))],
    );
    let o = wvflow_in(&dir, &["check", "report.wv", "--format", "json"]);
    let d = &json(&o)[0];
    assert_eq!(d["code"], "E0701");
    assert_eq!(
        d["help"],
        "the workspace has no wvflow.toml: only `default` (the embedded SQLite database) is known"
    );
}

#[test]
fn an_unknown_kind_points_into_wvflow_toml() {
    let toml = "[connectors.pg]\nkind = \"postgress\"\nurl = \"postgresql://db/a\"\n";
    let dir = scratch(
        "connectors_kind",
        &[("wvflow.toml", toml), ("report.wv", &flow(None))],
    );
    let o = wvflow_in(&dir, &["check", ".", "--format", "json"]);
    assert_eq!(o.status.code(), Some(1));
    let found = json(&o);
    assert_eq!(found.as_array().unwrap().len(), 1, "{found}");
    let d = &found[0];
    assert_eq!(d["code"], "E0704");
    assert_eq!(d["file"], "wvflow.toml");
    assert_eq!(d["message"], "unknown connector kind `postgress`");
    assert_eq!(d["help"], "did you mean `postgres`?");
    assert_eq!(d["range"]["start"]["line"], 1);
    assert_eq!(d["range"]["start"]["character"], 7);
}

#[test]
fn a_malformed_file_is_shown_at_its_line() {
    let toml = "[connectors.pg]\nkind = \"postgres\"\nurl = postgresql://db/a\n";
    let dir = scratch(
        "connectors_malformed",
        &[("wvflow.toml", toml), ("report.wv", &flow(Some("pg")))],
    );
    let o = wvflow_in(&dir, &["check", ".", "--format", "json"]);
    assert_eq!(o.status.code(), Some(1));
    let found = json(&o);
    // Only the file's problem: a stage on one of its connectors is not reported again.
    assert_eq!(found.as_array().unwrap().len(), 1, "{found}");
    assert_eq!(found[0]["code"], "E0703");
    assert_eq!(found[0]["file"], "wvflow.toml");
    assert_eq!(found[0]["range"]["start"]["line"], 2);
    let human = wvflow_in(&dir, &["check", "."]);
    insta::assert_snapshot!("malformed_toml", stdout(&human));
}

#[test]
fn a_postgres_connector_without_url_is_refused() {
    let dir = scratch(
        "connectors_missing_url",
        &[
            ("wvflow.toml", "[connectors.pg]\nkind = \"postgres\"\n"),
            ("report.wv", &flow(None)),
        ],
    );
    let o = wvflow_in(&dir, &["check", ".", "--format", "json"]);
    let d = &json(&o)[0];
    assert_eq!(d["code"], "E0705");
    assert_eq!(d["message"], "postgres connector `pg` has no `url`");
    assert_eq!(d["file"], "wvflow.toml");
    assert_eq!(d["range"]["start"]["line"], 0);
    assert_eq!(d["range"]["start"]["character"], 12);
}

#[test]
fn a_stage_on_a_sqlite_file_is_refused_before_anything_runs() {
    let dir = scratch(
        "connectors_refused",
        &[("wvflow.toml", LITE), ("report.wv", &flow(Some("lite")))],
    );
    let check = wvflow_in(&dir, &["check", "."]);
    assert_eq!(check.status.code(), Some(1));
    insta::assert_snapshot!("sqlite_file_refused", stdout(&check));
    let run = wvflow_in(&dir, &["run", "report.wv"]);
    assert_ne!(run.status.code(), Some(0));
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(
        err.contains("error[E0702]") || err.contains("[E0702] Error"),
        "{err}"
    );
    assert!(
        err.contains(
            "stage `recent` runs on connector `lite` (sqlite), which this build of wvflow cannot run yet"
        ),
        "{err}"
    );
    // Nothing ran: no run was recorded, no workspace database made.
    assert!(!dir.join(".wvflow").exists());
    assert_eq!(stdout(&run), "");
}

/// A stage on DuckDB checks and runs in a build with DuckDB (the `duckdb` feature, which
/// scripts/test.sh turns on); a build without it refuses it at check time, saying so.
#[test]
fn a_stage_on_duckdb_runs_only_in_a_build_with_duckdb() {
    let dir = scratch(
        "connectors_duckdb",
        &[("wvflow.toml", DUCK), ("report.wv", &flow(Some("duck")))],
    );
    let check = wvflow_in(&dir, &["check", "."]);
    let out = stdout(&check);
    if cfg!(feature = "duckdb") {
        assert_eq!(check.status.code(), Some(0), "{out}");
        let run = wvflow_in(&dir, &["run", "report.wv"]);
        assert_eq!(
            run.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&run.stderr)
        );
        assert!(dir.join("w.duckdb").is_file());
    } else {
        assert_eq!(check.status.code(), Some(1), "{out}");
        assert!(
            out.contains(
                "stage `recent` runs on connector `duck` (duckdb), which this build of wvflow \
                 cannot run: it was built without DuckDB (the `duckdb` feature)"
            ),
            "{out}"
        );
        assert!(out.contains("--features duckdb"), "{out}");
    }
}

#[test]
fn a_stage_on_default_runs() {
    let dir = scratch(
        "connectors_default",
        &[("wvflow.toml", PG), ("report.wv", &flow(Some("default")))],
    );
    let o = wvflow_in(&dir, &["run", "report.wv", "--format", "json"]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let summary = json(&o);
    assert_eq!(summary["state"], "success", "{summary}");
}

#[test]
fn a_secret_of_the_environment_is_never_printed() {
    let used = scratch(
        "connectors_secret_used",
        &[("wvflow.toml", PG), ("report.wv", &flow(Some("pg")))],
    );
    let unused = scratch(
        "connectors_secret_unused",
        &[("wvflow.toml", PG), ("report.wv", &flow(Some("default")))],
    );
    let mut outputs = Vec::new();
    for (dir, refused) in [(&used, true), (&unused, false)] {
        for args in [
            &["check", "."][..],
            &["check", ".", "--format", "json"],
            &["plan", "report.wv"],
            &["plan", "report.wv", "--format", "json"],
            &["export", "--target", "airflow", "report.wv"],
            &["export", "--target", "argo", "report.wv"],
            &["run", "report.wv"],
            &["run", "report.wv", "--format", "json"],
        ] {
            let o = wvflow_in(dir, args);
            // The connector was in view of each: checked, planned and exported; a run that
            // uses it opens it, and fails (nothing answers), a run that does not succeeds.
            let fails = refused && args[0] == "run";
            assert_eq!(o.status.code() == Some(0), !fails, "wvflow {args:?}");
            outputs.push((args.join(" "), o));
        }
    }
    for (args, o) in &outputs {
        for text in [&o.stdout, &o.stderr] {
            let text = String::from_utf8_lossy(text);
            assert!(
                !text.contains(SECRET),
                "`wvflow {args}` printed the secret: {text}"
            );
        }
    }
    let (_, run) = outputs.last().unwrap();
    assert_eq!(json(run)["state"], "success");
    let (_, failed) = &outputs[outputs.len() / 2 - 1];
    let error = json(failed)["stages"][1]["error"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        error.starts_with("connector `pg`: cannot connect"),
        "{error}"
    );
    assert!(!error.contains(SECRET), "{error}");
    for entry in walk(&used.join(".wvflow")) {
        let bytes = std::fs::read(&entry).unwrap();
        let found = bytes.windows(SECRET.len()).any(|w| w == SECRET.as_bytes());
        assert!(!found, "{} holds the secret", entry.display());
    }
    // The run store holds no copy either.
    for entry in walk(&unused.join(".wvflow")) {
        let bytes = std::fs::read(&entry).unwrap();
        let found = bytes.windows(SECRET.len()).any(|w| w == SECRET.as_bytes());
        assert!(!found, "{} holds the secret", entry.display());
    }
}

/// Every file below `dir`.
fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    let mut folders = vec![dir.to_path_buf()];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                folders.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files
}

#[test]
fn explain_documents_the_file_and_its_keys() {
    let o = crate::common::wvflow(&["explain", "wvflow.toml"]);
    assert_eq!(o.status.code(), Some(0));
    let text = stdout(&o);
    for key in ["`kind`", "`url`", "`path`", "[connectors.pg]", "E0702"] {
        assert!(text.contains(key), "{key}: {text}");
    }
    let o = crate::common::wvflow(&["explain", "connectors.url"]);
    assert!(stdout(&o).starts_with("`url` (wvflow.toml key of postgres connectors"));
    let o = crate::common::wvflow(&["explain", "E0702"]);
    assert!(stdout(&o).starts_with("E0702: connector this build cannot run"));
}
