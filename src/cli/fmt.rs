//! `wvflow fmt [PATH...] [--check]`: rewrites `.wv` files in the canonical layout
//! (`docs/format.md`); with `--check`, only names the files that would change.

use super::exit;
use crate::diagnostics::render_human;
use crate::format::Formatter;
use crate::source::FileId;
use crate::workspace::{Workspace, discover, read_source};
use clap::Args;
use std::fs::File;
use std::io::{BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};

#[derive(Args)]
pub struct FmtArgs {
    /// Files or folders (every `.wv` file below a folder); default: the current folder.
    paths: Vec<PathBuf>,
    /// Change nothing: list the files that are not formatted and exit 1 if there are any.
    #[arg(long)]
    check: bool,
}

pub fn run(args: FmtArgs) -> u8 {
    let paths = if args.paths.is_empty() {
        vec![PathBuf::from(".")]
    } else {
        args.paths
    };
    let mut status = exit::OK;
    let (mut changed, mut unchanged) = (0, 0);
    for path in &paths {
        let files = match discover(path) {
            Ok(files) => files,
            Err(e) => {
                errln!("error: {e}");
                status = exit::USAGE;
                continue;
            }
        };
        for file in files {
            match format_file(&file, args.check) {
                Ok(true) => {
                    changed += 1;
                    if args.check {
                        outln!("{}", file.display());
                        status = status.max(exit::PROBLEMS);
                    }
                }
                Ok(false) => unchanged += 1,
                Err(()) => status = exit::USAGE,
            }
        }
    }
    if args.check {
        errln!("{changed} file(s) would be reformatted, {unchanged} already formatted");
    } else {
        errln!("{changed} file(s) reformatted, {unchanged} already formatted");
    }
    status
}

/// Formats one file; `Ok(true)` when it changed (or would). A file that does not parse is
/// reported and left alone. Neither the file's syntax tree nor its formatted text is held
/// whole: the syntax is checked chunk by chunk, the formatted text compared with the file as
/// it is printed (up to the first difference), and only then, when it differs, printed again
/// into the new file.
fn format_file(path: &Path, check: bool) -> Result<bool, ()> {
    let text = read_source(path).map_err(|e| errln!("error: {e}"))?;
    let formatter = match Formatter::new(&text, FileId(0)) {
        Ok(formatter) => formatter,
        Err(diagnostics) => {
            let mut workspace = Workspace::default();
            workspace.add(path.to_path_buf(), text.clone());
            let color = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
            err!("{}", render_human(&diagnostics, &workspace.sources, color));
            errln!(
                "error: {} was not formatted: it has syntax errors",
                path.display()
            );
            return Err(());
        }
    };
    if formatter.is_formatted() {
        return Ok(false);
    }
    if !check {
        // Written beside the real file (through a symlink) and renamed over it, with its
        // permissions, so an interrupted write loses nothing.
        let fail = |e: std::io::Error| errln!("error: cannot write {}: {e}", path.display());
        let target = std::fs::canonicalize(path).map_err(fail)?;
        let permissions = std::fs::metadata(&target).map_err(fail)?.permissions();
        let temporary = target.with_extension("wv.fmt-tmp");
        let write = || -> std::io::Result<()> {
            let mut out = BufWriter::new(File::create(&temporary)?);
            formatter.write_to(&mut out)?;
            out.flush()?;
            drop(out);
            std::fs::set_permissions(&temporary, permissions)?;
            std::fs::rename(&temporary, &target)
        };
        write().map_err(fail)?;
    }
    Ok(true)
}
