//! Helpers shared by the integration tests.
#![allow(dead_code)] // each test crate uses some of them

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
