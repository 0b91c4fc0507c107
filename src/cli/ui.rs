//! `wvflow ui [PATH] [--port N] [--host ADDR] [--db FILE]`: the local dashboard.

use super::exit;
use crate::ui::{Dashboard, Options};
use clap::Args;
use std::net::IpAddr;
use std::path::PathBuf;

#[derive(Args)]
pub struct UiArgs {
    /// The workspace (a .wv file or a folder), as given to `wvflow run`.
    #[arg(default_value = ".")]
    path: PathBuf,
    /// The port to listen on; 0 picks a free one.
    #[arg(long, default_value_t = 8765)]
    port: u16,
    /// The address to listen on. Anything but a loopback address lets other machines read
    /// the runs; actions still need the token.
    #[arg(long, default_value = "127.0.0.1")]
    host: IpAddr,
    /// The workspace database (default: `.wvflow/workspace.db` beside the workspace).
    #[arg(long)]
    db: Option<PathBuf>,
}

pub fn run(args: UiArgs) -> u8 {
    let db = args
        .db
        .unwrap_or_else(|| crate::runtime::launch::default_db(&args.path));
    let dashboard = match Dashboard::bind(Options {
        workspace: args.path,
        db,
        host: args.host,
        port: args.port,
    }) {
        Ok(d) => d,
        Err(e) => {
            errln!("error: {e}");
            return exit::USAGE;
        }
    };
    outln!("wvflow ui: {}", dashboard.url());
    outln!("(the token in this address is needed to start, cancel, resume and signal runs)");
    dashboard.serve();
    exit::OK
}
