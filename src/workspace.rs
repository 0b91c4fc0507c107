//! A workspace: the `.wv` files named on the command line, or found below a folder, parsed;
//! and its `wvflow.toml`, read (`crate::connectors`).

use crate::connectors::Connectors;
use crate::diagnostics::{Diagnostic, Family};
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
    /// What its `wvflow.toml` declares (nothing without one). The file is among `sources`,
    /// with an empty tree and its problems as its diagnostics.
    pub connectors: Connectors,
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
        let (texts, mut errors) = read_all(paths);
        workspace.add_all(texts);
        if let Some(first) = paths.first() {
            errors.extend(workspace.configure(first));
        }
        (workspace, errors)
    }

    pub fn diagnostics(&self) -> impl Iterator<Item = &Diagnostic> {
        self.parsed.iter().flat_map(|p| &p.diagnostics)
    }

    /// Whether some file did not parse (a problem of `wvflow.toml` is not one: it leaves no
    /// item of a `.wv` file missing).
    pub fn has_syntax_errors(&self) -> bool {
        self.diagnostics()
            .any(|d| d.is_error() && d.code.family() == Family::Syntax)
    }

    /// Reads the `wvflow.toml` of the workspace whose first path is `start`
    /// ([`crate::connectors::find`]), if there is one; an unreadable one is returned.
    pub fn configure(&mut self, start: &Path) -> Option<LoadError> {
        let path = crate::connectors::find(start)?;
        match read_source(&path) {
            Ok(text) => {
                self.add_config(path, text);
                None
            }
            Err(e) => Some(e),
        }
    }

    /// Adds `wvflow.toml`'s text at `path` and reads its connectors.
    pub fn add_config(&mut self, path: PathBuf, text: String) -> FileId {
        let root = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let name = config_name(&path);
        let id = self.sources.add(SourceFile::new(path, name, text));
        let (connectors, errors) = crate::connectors::read(&self.sources.get(id).text, id, &root);
        self.parsed.push(Parsed {
            ast: Default::default(),
            diagnostics: errors.iter().map(|e| e.diagnostic(id)).collect(),
        });
        self.parse_times.push(Duration::ZERO);
        self.connectors = connectors;
        id
    }
}

/// `wvflow.toml`'s path as messages show it: from the current folder when it is below it.
fn config_name(path: &Path) -> String {
    let here = std::env::current_dir().ok();
    let shown = here
        .as_deref()
        .and_then(|here| path.strip_prefix(here).ok())
        .unwrap_or(path);
    display_name(shown)
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
