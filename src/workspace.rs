//! A workspace: the `.wv` files named on the command line, or found below a folder, parsed.

use crate::diagnostics::Diagnostic;
use crate::source::{FileId, SourceFile, SourceMap};
use crate::syntax::{self, Parsed};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[derive(Debug, Default)]
pub struct Workspace {
    pub sources: SourceMap,
    /// One entry per file, in the order of `sources`.
    pub parsed: Vec<Parsed>,
    /// How long each file took to parse.
    pub parse_times: Vec<Duration>,
}

/// A path that could not be read as a workspace file.
#[derive(Debug)]
pub struct LoadError {
    pub path: PathBuf,
    pub message: String,
}

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.message)
    }
}

/// A path made absolute against the current folder (as it is, if that fails), so that it still
/// names the same file from another folder.
pub fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// Every `.wv` file a path names: itself, or the files below a folder in a stable order.
/// Hidden folders (`.git`, `.wvflow`) and `target` are not searched.
pub fn discover(path: &Path) -> Result<Vec<PathBuf>, LoadError> {
    let error = |message: String| LoadError {
        path: path.to_path_buf(),
        message,
    };
    let meta = std::fs::metadata(path).map_err(|e| error(io_message(&e)))?;
    if !meta.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut found = Vec::new();
    let mut folders = vec![path.to_path_buf()];
    while let Some(folder) = folders.pop() {
        let entries = std::fs::read_dir(&folder).map_err(|e| error(io_message(&e)))?;
        for entry in entries.flatten() {
            let entry_path = entry.path();
            let name = entry.file_name();
            let name = name.to_string_lossy();
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() {
                if !name.starts_with('.') && name != "target" {
                    folders.push(entry_path);
                }
            } else if entry_path.extension().is_some_and(|e| e == "wv") {
                found.push(entry_path);
            }
        }
    }
    found.sort();
    Ok(found)
}

fn io_message(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file or folder".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string(),
    }
}

/// Reads a file as UTF-8 text. A file that is not UTF-8 (a binary, say) is refused with the
/// position of its first bad byte.
pub fn read_source(path: &Path) -> Result<String, LoadError> {
    let bytes = std::fs::read(path).map_err(|e| LoadError {
        path: path.to_path_buf(),
        message: io_message(&e),
    })?;
    String::from_utf8(bytes).map_err(|e| {
        let valid = e.utf8_error().valid_up_to();
        let prefix = &e.as_bytes()[..valid];
        let line = prefix.iter().filter(|&&b| b == b'\n').count() + 1;
        LoadError {
            path: path.to_path_buf(),
            message: format!("not UTF-8 text (invalid byte at line {line}, byte offset {valid}); .wv files must be UTF-8"),
        }
    })
}

impl Workspace {
    /// Adds and parses one file's text.
    pub fn add(&mut self, path: PathBuf, text: String) -> FileId {
        self.add_all(vec![(path, text)]);
        FileId(self.sources.len() as u32 - 1)
    }

    /// Adds files and parses them, in parallel across the machine's cores.
    pub fn add_all(&mut self, files: Vec<(PathBuf, String)>) {
        let first = self.sources.len();
        for (path, text) in files {
            let name = display_name(&path);
            self.sources.add(SourceFile::new(path, name, text));
        }
        let sources = &self.sources;
        let results = crate::parallel::map_indexed(sources.len() - first, |i| {
            let id = FileId((first + i) as u32);
            let started = Instant::now();
            let parsed = syntax::parse(&sources.get(id).text, id);
            (parsed, started.elapsed())
        });
        for (parsed, time) in results {
            self.parsed.push(parsed);
            self.parse_times.push(time);
        }
    }

    /// Loads every file the paths name. Unreadable paths are returned beside the workspace;
    /// the readable files are still parsed.
    pub fn load(paths: &[PathBuf]) -> (Workspace, Vec<LoadError>) {
        let mut workspace = Workspace::default();
        let (texts, errors) = read_all(paths);
        workspace.add_all(texts);
        (workspace, errors)
    }

    pub fn diagnostics(&self) -> impl Iterator<Item = &Diagnostic> {
        self.parsed.iter().flat_map(|p| &p.diagnostics)
    }
}

/// The text of every file the paths name, and the paths that could not be read.
pub fn read_all(paths: &[PathBuf]) -> (Vec<(PathBuf, String)>, Vec<LoadError>) {
    let mut texts = Vec::new();
    let mut errors = Vec::new();
    for path in paths {
        let files = match discover(path) {
            Ok(files) => files,
            Err(e) => {
                errors.push(e);
                continue;
            }
        };
        for file in files {
            match read_source(&file) {
                Ok(text) => texts.push((file, text)),
                Err(e) => errors.push(e),
            }
        }
    }
    (texts, errors)
}

/// The path as messages show it.
pub fn display_name(path: &Path) -> String {
    let shown = path.strip_prefix("./").unwrap_or(path);
    shown.display().to_string()
}
