//! `wvflow man [COMMAND...] [--out-dir DIR]`: the manual pages, in roff. wvflow(1) lists the
//! commands, each with a page of its own (wvflow-check(1), wvflow-runs-list(1)), as git's
//! pages do; a page goes to stdout, or every page into a folder of the man path.

use crate::cli::Failure;
use super::exit;
use clap::Args;
use std::path::PathBuf;

#[derive(Args)]
pub struct ManArgs {
    /// The command whose page to print (`runs list` prints wvflow-runs-list(1)); none: wvflow(1).
    command: Vec<String>,
    /// Write every page (wvflow.1, wvflow-check.1, ...) into this folder instead, for
    /// example ~/.local/share/man/man1.
    #[arg(long, value_name = "DIR", conflicts_with = "command")]
    out_dir: Option<PathBuf>,
}

pub fn run(args: ManArgs) -> u8 {
    let result = match &args.out_dir {
        Some(dir) => write_every_page(dir),
        None => page(&args.command).map(|page| out!("{page}")),
    };
    match result {
        Ok(()) => exit::OK,
        Err(e) => {
            errln!("error: {e}");
            exit::USAGE
        }
    }
}

/// The command line with each command's full name (`wvflow-runs-list`), as the pages name
/// each other.
fn built_command() -> clap::Command {
    let mut command = super::command().disable_help_subcommand(true);
    command.build();
    command
}

/// The roff page of the command at `path` below `wvflow`.
fn page(path: &[String]) -> Result<String, Failure> {
    let mut command = built_command();
    for name in path {
        let Some(sub) = command.find_subcommand(name).cloned() else {
            let known: Vec<&str> = command.get_subcommands().map(|c| c.get_name()).collect();
            return Err(format!(
                "`{}` has no command `{name}`; it has: {}",
                command.get_display_name().unwrap_or("wvflow"),
                known.join(", ")
            ).into());
        };
        command = sub;
    }
    render(command)
}

/// A command's page; every page names the same source, `wvflow VERSION`.
fn render(command: clap::Command) -> Result<String, Failure> {
    let mut page = Vec::new();
    clap_mangen::Man::new(command)
        .source(format!("wvflow {}", env!("CARGO_PKG_VERSION")))
        .render(&mut page)
        .map_err(|e| e.to_string())?;
    Ok(String::from_utf8_lossy(&page).into_owned())
}

/// Writes `command`'s page and those of the commands below it into `dir`.
fn write_pages(command: &clap::Command, dir: &std::path::Path) -> Result<(), Failure> {
    for sub in command.get_subcommands().filter(|c| !c.is_hide_set()) {
        write_pages(sub, dir)?;
    }
    let name = command.get_display_name().unwrap_or(command.get_name());
    let file = dir.join(format!("{name}.1"));
    std::fs::write(&file, render(command.clone())?)
        .map_err(|e| format!("{}: {e}", file.display()).into())
}

fn write_every_page(dir: &std::path::Path) -> Result<(), Failure> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    write_pages(&built_command(), dir)
}
