//! The `drover` command line: argument parsing, output, and exit codes.
//!
//! A thin layer over the libraries: each subcommand reads its inputs, calls into
//! `drover-plan` and `drover-engine`, and renders the result. Exit codes are decided in one
//! place, [`exit`].

mod access;
mod args;
mod checks;
mod ci;
mod cloud;
mod estimate;
mod exit;
mod hooks;
mod iam;
mod notify;
mod output;
mod pace;
mod plan_cmd;
mod progress;
mod run_cmd;
mod state_store;
mod status;
mod support;
mod sweep;
mod unlock;
mod validate;

use std::process::ExitCode;

use clap::Parser as _;

use crate::args::{Cli, Command, LogFormat};
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
    init_logging(cli.log_format, cli.log_level.as_deref(), &cli.command);
    if let Some(message) = cli.command.misused_sim_flag() {
        output::error(&message);
        return Exit::Usage.into();
    }
    let log = cli.log_format;
    let result = match &cli.command {
        Command::Validate(args) => validate::run(args),
        Command::Plan(args) => plan_cmd::run(args),
        Command::Schema => output::stdout(drover_plan::JSON_SCHEMA),
        Command::Drill(args) => run_cmd::drill(args, log),
        Command::Backup(args) => run_cmd::backup(args, log),
        Command::Points(args) => checks::points_cmd(args),
        Command::Failover(args) => run_cmd::failover(args, log),
        Command::Recover(args) => run_cmd::recover(args, log),
        Command::Resume(args) => run_cmd::resume(args, log),
        Command::Teardown(args) => run_cmd::teardown(args, log),
        Command::Sweep(args) => sweep::run(args),
        Command::Status(args) => status::status(args),
        Command::Runs(args) => status::runs(args),
        Command::Report(args) => status::report(args),
        Command::Preflight(args) => checks::preflight_cmd(args),
        Command::Check(args) => checks::check_cmd(args),
        Command::Unlock(args) => unlock::run(args),
        Command::IamPolicy(args) => iam::run(args),
    };
    exit::finish(result)
}

/// Logs go to stderr: plain lines or JSON, at `--log-level` (by default `info` for runs off a
/// terminal, `warn` otherwise; on a terminal, runs show a live display instead of info lines).
/// `RUST_LOG`, when set, wins over both.
fn init_logging(format: LogFormat, level: Option<&str>, command: &Command) {
    use std::io::IsTerminal as _;
    use tracing_subscriber::EnvFilter;
    let runs = matches!(
        command,
        Command::Drill(_)
            | Command::Failover(_)
            | Command::Recover(_)
            | Command::Backup(_)
            | Command::Resume(_)
            | Command::Teardown(_)
    );
    let live = runs && format == LogFormat::Text && std::io::stderr().is_terminal();
    let default = if runs && !live { "info" } else { "warn" };
    let filter = EnvFilter::try_from_env("RUST_LOG")
        .unwrap_or_else(|_| EnvFilter::new(log_directives(level.unwrap_or(default))));
    let builder =
        tracing_subscriber::fmt().with_env_filter(filter).with_writer(progress::log_writer);
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        // No wall-clock time: a simulated run's lines are the same from run to run.
        LogFormat::Text => builder.with_target(false).with_ansi(false).without_time().try_init(),
    };
}

/// The AWS SDK's crates and its HTTP stack (target prefixes). Their `warn` lines are the
/// credential chain's and the HTTP client's inner workings, with `Debug` dumps of requests and
/// responses (a missing credential chain warns for every provider it tried); drover says what
/// failed in its own words (`access.rs`, the adapter's error messages).
const SDK_TARGETS: [&str; 11] = [
    "aws_config",
    "aws_credential_types",
    "aws_runtime",
    "aws_sdk",
    "aws_sigv4",
    "aws_smithy",
    "aws_types",
    "h2",
    "hyper",
    "rustls",
    "tower",
];

/// The filter directives for `level`: below `debug`, the SDK's crates log errors only.
fn log_directives(level: &str) -> String {
    let mut directives = level.to_owned();
    if !matches!(level, "debug" | "trace") {
        for target in SDK_TARGETS {
            directives.push_str(&format!(",{target}=error"));
        }
    }
    directives
}

#[cfg(test)]
mod tests {
    use super::log_directives;

    #[test]
    fn the_sdk_is_quiet_below_debug() {
        assert!(log_directives("warn").starts_with("warn,aws_config=error,"));
        assert!(log_directives("info").contains(",hyper=error"));
        assert_eq!(log_directives("debug"), "debug");
        assert_eq!(log_directives("trace"), "trace");
        for level in ["error", "warn", "info", "debug", "trace"] {
            let _ = tracing_subscriber::EnvFilter::builder()
                .parse(log_directives(level))
                .unwrap_or_else(|e| panic!("{level}: {e}"));
        }
    }
}
