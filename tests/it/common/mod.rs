//! Helpers shared by the integration tests.
#![allow(dead_code)] // each test crate uses some of them

pub mod postgres;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Runs the `wvflow` binary.
pub fn wvflow(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wvflow"))
        .args(args)
        .output()
        .expect("wvflow runs")
}

/// A fresh folder under the target directory holding `files` (path, text).
pub fn scratch(name: &str, files: &[(&str, &str)]) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch folder");
    for (path, text) in files {
        let path = dir.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    dir
}

/// The fenced code blocks of `markdown` whose info string is `language`.
pub fn code_blocks(markdown: &str, language: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in markdown.lines() {
        match (&mut current, line.trim_start().strip_prefix("```")) {
            (None, Some(info)) if info.trim() == language => current = Some(String::new()),
            (Some(_), Some(_)) => blocks.extend(current.take()),
            (Some(block), None) => {
                block.push_str(line);
                block.push('\n');
            }
            _ => {}
        }
    }
    blocks
}

/// `wvflow run PATH [CALL] --format json`: the exit code and the one JSON document printed.
pub fn run_json(path: &Path, call: Option<&str>) -> (Option<i32>, serde_json::Value) {
    let mut args = vec!["run", path.to_str().unwrap(), "--format", "json"];
    args.extend(call);
    let o = wvflow(&args);
    let summary = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "not one JSON document ({e}):\n{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    });
    (o.status.code(), summary)
}

/// The JSON values of an NDJSON file, one a line.
pub fn ndjson(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// A stage of a run summary, by name.
pub fn stage<'a>(summary: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    summary["stages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["stage"] == name)
        .unwrap_or_else(|| panic!("no stage {name} in {summary}"))
}

/// Copies a folder, without the run state (`.wvflow`) and outputs (`out`) of earlier runs.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        let name = entry.file_name();
        if name == ".wvflow" || name == "out" {
            continue;
        }
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &to.join(&name));
        } else {
            std::fs::copy(entry.path(), to.join(&name)).unwrap();
        }
    }
}

/// The processes still running in the process groups of the attempts that the run store
/// `db` recorded (each attempt's process leads its group), as `pid (command)` lines, once
/// they have had up to 5 s to finish dying: a group killed with SIGKILL is gone moments later
/// on a busy machine, while one that was never killed is still there. Only the runs' own
/// groups are looked at, never other processes of the machine.
pub fn groups_left(db: &Path) -> String {
    let groups = attempt_groups(db);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let left = in_groups(&groups);
        if left.is_empty() || std::time::Instant::now() > deadline {
            return left.join("\n");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// The processes running now in the process groups of the attempts that `db` recorded.
pub fn group_members(db: &Path) -> Vec<String> {
    in_groups(&attempt_groups(db))
}

/// The process groups of the attempts that the run store `db` recorded.
fn attempt_groups(db: &Path) -> std::collections::BTreeSet<i64> {
    let conn = rusqlite::Connection::open(db).unwrap_or_else(|e| panic!("{}: {e}", db.display()));
    conn.prepare("SELECT DISTINCT pid FROM wvflow_attempts WHERE pid IS NOT NULL")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// Live processes (not zombies) whose process group is one of `groups`.
fn in_groups(groups: &std::collections::BTreeSet<i64>) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| {
            let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
            // `pid (comm) state ppid pgrp ...`: the command may hold spaces and parentheses.
            let (head, rest) = stat.rsplit_once(')')?;
            let fields: Vec<&str> = rest.split_whitespace().collect();
            let (state, pgrp) = (*fields.first()?, fields.get(2)?.parse::<i64>().ok()?);
            (groups.contains(&pgrp) && state != "Z")
                .then(|| head.replacen(" (", " ", 1).to_string())
        })
        .collect()
}

/// Polls `ready` every 50 ms until it holds; panics after `limit`, a generous bound that is
/// never the outcome a test checks.
pub fn wait_for(limit: std::time::Duration, what: &str, mut ready: impl FnMut() -> bool) {
    let started = std::time::Instant::now();
    while !ready() {
        assert!(started.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// `wvflow runs -w DIR rows RUN STAGE --format csv`: its lines.
pub fn csv_rows(dir: &Path, run_id: &str, stage: &str) -> Vec<String> {
    let o = wvflow(&[
        "runs",
        "-w",
        dir.to_str().unwrap(),
        "rows",
        run_id,
        stage,
        "--format",
        "csv",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}
