//! One compilation of a workspace, as the commands, the scheduler, the runs and the dashboard
//! need it: loaded from a path, checked, its diagnostics kept, and its flows planned on
//! request (the flow a command names, and the child flows and jumps of its runs). What it
//! finds goes to a [`Reporter`]; it prints nothing.

mod reporter;

pub use reporter::{Notice, Reporter};

use crate::check::{Def, Index};
use crate::diagnostics::Diagnostic;
use crate::plan::{Plan, lower};
use crate::syntax::ast;
use crate::workspace::{LoadError, Workspace};
use std::fmt;
use std::path::{Path, PathBuf};

/// A workspace loaded and checked.
pub struct Session<'r> {
    path: PathBuf,
    workspace: Workspace,
    load_errors: Vec<LoadError>,
    /// Every problem found, in `wvflow check`'s order.
    diagnostics: Vec<Diagnostic>,
    reporter: &'r dyn Reporter,
}

impl<'r> Session<'r> {
    /// Loads and checks the workspace at `path` (a .wv file or a folder); `reporter` is told
    /// the diagnostics, and later what the runs of its flows warn of.
    pub fn load(path: &Path, reporter: &'r dyn Reporter) -> Session<'r> {
        let (workspace, load_errors) = Workspace::load(&[path.to_path_buf()]);
        let checked = crate::check::check(&workspace).diagnostics;
        let diagnostics = crate::check::problems(&workspace, checked);
        if load_errors.is_empty() && !diagnostics.is_empty() {
            reporter.diagnostics(&diagnostics, &workspace.sources);
        }
        Session {
            path: path.to_path_buf(),
            workspace,
            load_errors,
            diagnostics,
            reporter,
        }
    }

    /// The path it was loaded from, as given.
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn workspace(&self) -> &Workspace {
        &self.workspace
    }

    /// The paths that could not be read (missing, not UTF-8).
    pub fn load_errors(&self) -> &[LoadError] {
        &self.load_errors
    }

    pub fn diagnostics(&self) -> &[Diagnostic] {
        &self.diagnostics
    }

    /// Every file read, and no error found: its flows can be planned.
    pub fn checks(&self) -> bool {
        self.load_errors.is_empty() && !self.diagnostics.iter().any(Diagnostic::is_error)
    }

    /// The diagnostics as `wvflow check` prints them.
    pub fn rendered(&self, color: bool) -> String {
        crate::diagnostics::render_human(&self.diagnostics, &self.workspace.sources, color)
    }

    /// The flows to plan; `None` when the workspace does not check: nothing is planned or
    /// run from a workspace with errors.
    pub fn flows(&self) -> Option<Flows<'_>> {
        self.checks().then(|| Flows {
            path: &self.path,
            workspace: &self.workspace,
            index: Index::new(&self.workspace),
            reporter: self.reporter,
        })
    }
}

/// The flows of a checked workspace, planned on request.
pub struct Flows<'s> {
    path: &'s Path,
    workspace: &'s Workspace,
    index: Index<'s>,
    reporter: &'s dyn Reporter,
}

impl<'s> Flows<'s> {
    /// The workspace's path, as given (child runs in a process of their own load it again).
    pub fn path(&self) -> &'s Path {
        self.path
    }

    /// Who is told what the runs of these flows warn of.
    pub fn reporter(&self) -> &'s dyn Reporter {
        self.reporter
    }

    /// The path of one of its files, as the workspace names it.
    pub fn file_name(&self, file: crate::source::FileId) -> &'s str {
        &self.workspace.sources.get(file).name
    }

    /// Its flows, activities and `run flow` statements.
    pub fn index(&self) -> &Index<'s> {
        &self.index
    }

    /// The plan of one flow of the index.
    pub fn lower(&self, def: Def<'s, ast::Flow>) -> Plan {
        lower(self.workspace, &self.index, def)
    }

    /// The plan of flow `name` (its newest version without `version`): what a `call`, a jump
    /// or a `run flow` statement starts.
    pub fn plan(&self, name: &str, version: Option<u32>) -> Option<Plan> {
        self.index.flow(name, version).map(|def| self.lower(def))
    }

    /// The plan of the flow a command names (`Name` or `Name@2`), or of the only one.
    pub fn named(&self, name: Option<&str>) -> Result<Plan, PlanError> {
        self.choose(name).map(|def| self.lower(def))
    }

    fn choose(&self, name: Option<&str>) -> Result<Def<'s, ast::Flow>, PlanError> {
        let names: Vec<&str> = self.index.flow_names().collect();
        let Some(name) = name else {
            return match names.as_slice() {
                [one] => self.index.flow(one, None).ok_or(PlanError::NoFlowFound),
                [] => Err(PlanError::NoFlows),
                many => Err(PlanError::Several(
                    many.iter().map(|n| n.to_string()).collect(),
                )),
            };
        };
        let (name, version) = match name.split_once('@') {
            Some((n, v)) => {
                let digits = v.trim_start_matches("version(").trim_end_matches(')');
                let version = digits
                    .parse::<u32>()
                    .map_err(|_| PlanError::NotAVersion(v.to_string()))?;
                (n, Some(version))
            }
            None => (name, None),
        };
        self.index
            .flow(name, version)
            .ok_or_else(|| PlanError::NoFlow {
                name: name.to_string(),
                version,
                hint: crate::check::did_you_mean(name, names.iter().copied()),
            })
    }
}

/// Why a command's flow could not be planned.
#[derive(Clone, Debug, PartialEq)]
pub enum PlanError {
    /// `Name@v` where `v` is not a number.
    NotAVersion(String),
    NoFlow {
        name: String,
        version: Option<u32>,
        /// The closest name, when one is close.
        hint: Option<String>,
    },
    /// The one flow name did not resolve (not expected).
    NoFlowFound,
    NoFlows,
    /// No name given, and these flows to choose from.
    Several(Vec<String>),
}

impl std::error::Error for PlanError {}

impl fmt::Display for PlanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PlanError::NotAVersion(v) => write!(f, "`{v}` is not a version number"),
            PlanError::NoFlow {
                name,
                version,
                hint,
            } => {
                write!(f, "no flow `{name}`")?;
                if let Some(v) = version {
                    write!(f, " @version({v})")?;
                }
                write!(f, " in this workspace")?;
                match hint {
                    Some(hint) => write!(f, "; {hint}"),
                    None => Ok(()),
                }
            }
            PlanError::NoFlowFound => write!(f, "no flow found"),
            PlanError::NoFlows => write!(f, "the workspace has no flow"),
            PlanError::Several(names) => write!(
                f,
                "the workspace has {} flows; name one: {}",
                names.len(),
                names.join(", ")
            ),
        }
    }
}
