//! The `drover` command line: argument parsing, output, and exit codes.
//!
//! A thin layer over the libraries: each subcommand reads its inputs, calls into
//! `drover-plan` (and later the engine), and renders the result. Exit codes are decided in
//! one place, [`exit`].

mod args;
mod exit;
mod output;
mod plan_cmd;
mod validate;

use std::process::ExitCode;

use clap::Parser as _;

use crate::args::{Cli, Command};
use crate::exit::Exit;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // Help and version go to stdout and succeed; usage errors exit 2.
            let _ = e.print();
            return if e.use_stderr() { Exit::Usage.into() } else { Exit::Success.into() };
        }
    };
    let result = match cli.command {
        Command::Validate(args) => validate::run(&args),
        Command::Plan(args) => plan_cmd::run(&args),
        Command::Schema => output::stdout(drover_plan::JSON_SCHEMA),
    };
    exit::finish(result)
}
