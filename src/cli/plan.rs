//! `wvflow plan PATH [FLOW] [--format text|json|dot|mermaid]`

use crate::cli::Failure;
use super::exit;
use super::report::Stderr;
use crate::plan::{Plan, render};
use crate::session::{Flows, Session};
use clap::{Args, ValueEnum};
use std::path::{Path, PathBuf};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
    Dot,
    Mermaid,
}

#[derive(Args)]
pub struct PlanArgs {
    /// A .wv file or a folder (one workspace).
    path: PathBuf,
    /// The flow to plan (`Name`, or `Name@2` for a version); optional when the workspace has one flow.
    flow: Option<String>,
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
}

pub fn run(args: PlanArgs) -> u8 {
    let session = load(&args.path);
    let Some(flows) = session.flows() else {
        return exit::USAGE;
    };
    let plan = match plan_of(&flows, args.flow.as_deref()) {
        Ok(plan) => plan,
        Err(message) => {
            errln!("error: {message}");
            return exit::USAGE;
        }
    };
    drop(flows);
    let output = match args.format {
        Format::Text => render::text(&plan),
        Format::Json => render::json(&plan),
        Format::Dot => render::dot(&plan),
        Format::Mermaid => render::mermaid(&plan),
    };
    out!("{output}");
    // The process ends here: its trees need not be freed one by one.
    std::mem::forget(session);
    exit::OK
}

/// The workspace at `path`, loaded and checked: its diagnostics printed to stderr (by
/// [`Stderr`]), and here the paths that could not be read.
pub fn load(path: &Path) -> Session<'static> {
    let session = Session::load(path, &Stderr);
    for e in session.load_errors() {
        errln!("error: {e}");
    }
    session
}

/// The plan of the flow a command names (or the only one).
pub fn plan_of(flows: &Flows, name: Option<&str>) -> Result<Plan, Failure> {
    // One reference syntax for every command: `Name`, `Name@2`, `Name @version(2)`.
    let name = match name {
        Some(text) => crate::runtime::flow_call::parse_call(Some(text))?.0,
        None => None,
    };
    Ok(flows.named(name.as_deref())?)
}
