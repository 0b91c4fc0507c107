//! `wvflow completions SHELL`: the shell's completion script for every command and option,
//! written to stdout (README.md says where each shell reads it from).

use super::exit;
use clap::Args;
use clap_complete::Shell;

#[derive(Args)]
pub struct CompletionsArgs {
    /// The shell to complete in.
    shell: Shell,
}

pub fn run(args: CompletionsArgs) -> u8 {
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut super::command(), "wvflow", &mut script);
    out!("{}", String::from_utf8_lossy(&script));
    exit::OK
}
