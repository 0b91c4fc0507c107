//! `wvflow check PATH... [--format human|short|json] [--color ...] [--deny-warnings]`

use super::exit;
use crate::diagnostics::{
    ColorChoice, Diagnostic, Severity, render_human, render_json, render_short,
};
use crate::workspace::Workspace;
use clap::{Args, ValueEnum};
use std::io::IsTerminal;
use std::path::PathBuf;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Human,
    Short,
    Json,
}

#[derive(Args)]
pub struct CheckArgs {
    /// Files or folders to check (a folder means every .wv file below it).
    #[arg(default_value = ".")]
    paths: Vec<PathBuf>,
    #[arg(long, value_enum, default_value_t = Format::Human)]
    format: Format,
    /// Colour in human output.
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto)]
    color: ColorChoice,
    /// Fail (exit 1) on warnings too.
    #[arg(long)]
    deny_warnings: bool,
    /// Print per-file parse and check times (to stderr).
    #[arg(long)]
    timings: bool,
}

fn print_timings(workspace: &Workspace, report: &crate::check::Report) {
    let ms = |d: std::time::Duration| d.as_secs_f64() * 1e3;
    errln!(
        "{:>10} {:>10} {:>10}  file",
        "bytes",
        "parse ms",
        "check ms"
    );
    for (id, file) in workspace.sources.iter() {
        let i = id.0 as usize;
        errln!(
            "{:>10} {:>10.3} {:>10.3}  {}",
            file.text.len(),
            ms(workspace.parse_times[i]),
            ms(report.file_times[i]),
            file.name
        );
    }
    errln!(
        "{:>10} {:>10} {:>10.3}  (workspace-wide checks)",
        "",
        "",
        ms(report.workspace_time)
    );
}

pub fn run(args: CheckArgs) -> u8 {
    let (workspace, load_errors) = Workspace::load(&args.paths);
    if !load_errors.is_empty() {
        // Checked without one of its files, a workspace would show false problems (a flow
        // defined there reads as unknown) and a summary that means nothing: as rustc does with
        // an input it cannot read, say what is wrong and check nothing.
        for e in &load_errors {
            errln!("error: {e}");
        }
        return exit::USAGE;
    }
    let report = crate::check::check(&workspace);
    let mut diagnostics: Vec<Diagnostic> = workspace.diagnostics().cloned().collect();
    diagnostics.extend(report.diagnostics.iter().cloned());
    crate::diagnostics::normalize(&mut diagnostics);
    if args.timings {
        print_timings(&workspace, &report);
    }
    let color = match args.color {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => {
            std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()
        }
    };
    let output = match args.format {
        Format::Human => render_human(&diagnostics, &workspace.sources, color),
        Format::Short => render_short(&diagnostics, &workspace.sources),
        Format::Json => render_json(&diagnostics, &workspace.sources),
    };
    out!("{output}");
    let errors = diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .count();
    let warnings = diagnostics.len() - errors;
    if args.format == Format::Human {
        let files = workspace.sources.len();
        let summary = match (errors, warnings) {
            (0, 0) => format!("checked {files} file{}: no problems", plural(files)),
            _ => format!(
                "checked {files} file{}: {errors} error{}, {warnings} warning{}",
                plural(files),
                plural(errors),
                plural(warnings)
            ),
        };
        outln!("{summary}");
    }
    // The process ends now; freeing a large syntax tree node by node would only delay the exit.
    std::mem::forget(workspace);
    if errors > 0 || args.deny_warnings && warnings > 0 {
        exit::PROBLEMS
    } else {
        exit::OK
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}
