//! `wvflow plan PATH [FLOW] [--format text|json|dot|mermaid]`

use super::exit;
use crate::check::Index;
use crate::diagnostics::{self, Diagnostic, render_human};
use crate::plan::{Plan, lower, render};
use crate::workspace::Workspace;
use clap::{Args, ValueEnum};
use std::io::IsTerminal;
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
    let Some(workspace) = load_checked(&args.path) else {
        return exit::USAGE;
    };
    let plan = match plan_of(&workspace, args.flow.as_deref()) {
        Ok(plan) => plan,
        Err(message) => {
            errln!("error: {message}");
            return exit::USAGE;
        }
    };
    let output = match args.format {
        Format::Text => render::text(&plan),
        Format::Json => render::json(&plan),
        Format::Dot => render::dot(&plan),
        Format::Mermaid => render::mermaid(&plan),
    };
    out!("{output}");
    std::mem::forget(workspace);
    exit::OK
}

/// The workspace at `path`, loaded and checked, its load errors and diagnostics printed to
/// stderr; `None` when it cannot be loaded or does not check.
pub fn load_checked(path: &Path) -> Option<Workspace> {
    let (workspace, load_errors) = Workspace::load(std::slice::from_ref(&path.to_path_buf()));
    for e in &load_errors {
        errln!("error: {e}");
    }
    (load_errors.is_empty() && compile(&workspace).is_some()).then_some(workspace)
}

/// The plan of the flow a command names (or the only one) in a checked workspace.
pub fn plan_of(workspace: &Workspace, name: Option<&str>) -> Result<Plan, String> {
    let index = Index::new(workspace);
    let def = choose_flow(&index, name)?;
    Ok(lower(workspace, &index, def))
}

/// Checks the workspace; prints its diagnostics to stderr. `None` when there are errors:
/// nothing is planned or run from a workspace that does not check.
pub fn compile(workspace: &Workspace) -> Option<Vec<Diagnostic>> {
    let mut found: Vec<Diagnostic> = workspace.diagnostics().cloned().collect();
    found.extend(crate::check::check(workspace).diagnostics);
    diagnostics::normalize(&mut found);
    if !found.is_empty() {
        let color = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
        err!("{}", render_human(&found, &workspace.sources, color));
    }
    if found.iter().any(Diagnostic::is_error) {
        None
    } else {
        Some(found)
    }
}

/// The flow a command names, or the only one.
pub fn choose_flow<'w>(
    index: &Index<'w>,
    name: Option<&str>,
) -> Result<crate::check::Def<'w, crate::syntax::ast::Flow>, String> {
    let names: Vec<&str> = index.flow_names().collect();
    // One reference syntax for every command: `Name`, `Name@2`, `Name @version(2)`.
    let name = match name {
        Some(text) => crate::runtime::flow_call::parse_call(Some(text))?.0,
        None => None,
    };
    match name.as_deref() {
        Some(name) => {
            let (name, version) = match name.split_once('@') {
                Some((n, v)) => (
                    n,
                    Some(
                        v.trim_start_matches("version(")
                            .trim_end_matches(')')
                            .parse::<u32>()
                            .map_err(|_| format!("`{v}` is not a version number"))?,
                    ),
                ),
                None => (name, None),
            };
            index.flow(name, version).ok_or_else(|| {
                let hint = crate::check::did_you_mean(name, names.iter().copied())
                    .map(|h| format!("; {h}"))
                    .unwrap_or_default();
                format!(
                    "no flow `{name}`{} in this workspace{hint}",
                    version
                        .map(|v| format!(" @version({v})"))
                        .unwrap_or_default()
                )
            })
        }
        None => match names.as_slice() {
            [one] => index
                .flow(one, None)
                .ok_or_else(|| "no flow found".to_string()),
            [] => Err("the workspace has no flow".into()),
            many => Err(format!(
                "the workspace has {} flows; name one: {}",
                many.len(),
                many.join(", ")
            )),
        },
    }
}
