//! `wvflow check PATH... [--format human|short|json] [--color ...] [--deny-warnings]`

use super::exit;
use crate::diagnostics::{ColorChoice, Diagnostic, HumanReports, JsonArray, write_short};
use crate::workspace::Workspace;
use clap::{Args, ValueEnum};
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

fn print_timings(workspace: &Workspace, report: &crate::check::Timings) {
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
    // Held lean: the texts and the items' outlines; each chunk's tree is parsed again to be
    // checked, then dropped (docs/performance.md, "Memory of `check` and the language server").
    crate::check::chunked::return_freed_memory();
    let (mut chunked, load_errors) = crate::check::chunked::Chunked::load(&args.paths);
    chunked.compact();
    let workspace = &chunked.workspace;
    if !load_errors.is_empty() {
        // Checked without one of its files, a workspace would show false problems (a flow
        // defined there reads as unknown) and a summary that means nothing: as rustc does with
        // an input it cannot read, say what is wrong and check nothing.
        for e in &load_errors {
            errln!("error: {e}");
        }
        return exit::USAGE;
    }
    let color = args.color.on_stdout();
    // Written as each chunk is checked: thousands of problems are never all held, nor the
    // report one string.
    let mut out = std::io::BufWriter::with_capacity(64 * 1024, crate::terminal::Stdout);
    let sources = &workspace.sources;
    let mut human = HumanReports::new(sources, color);
    let mut json = JsonArray::default();
    let (mut errors, mut warnings) = (0, 0);
    let timings = crate::check::check_chunked(&chunked, |d: Diagnostic| {
        if d.is_error() {
            errors += 1;
        } else {
            warnings += 1;
        }
        // `Stdout` keeps its failures for the end of the command, and returns none.
        let _ = match args.format {
            Format::Human => human.write(&d, &mut out),
            Format::Short => write_short(&d, sources, &mut out),
            Format::Json => json.write(&d, sources, &mut out),
        };
    });
    if args.format == Format::Json {
        let _ = json.finish(&mut out);
    }
    let _ = std::io::Write::flush(&mut out);
    if args.timings {
        print_timings(workspace, &timings);
    }
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
    // The process ends now; freeing the outlines node by node would only delay the exit.
    std::mem::forget(chunked);
    if errors > 0 || args.deny_warnings && warnings > 0 {
        exit::PROBLEMS
    } else {
        exit::OK
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}
