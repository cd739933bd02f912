//! Exit codes, decided in one place.
//!
//! | code | meaning |
//! |------|---------|
//! | 0    | success |
//! | 1    | a plan is invalid or unreadable, or a run failed |
//! | 2    | usage error (bad flags or arguments) |
//! | 130  | interrupted (Ctrl-C); `drover resume` continues |

use std::process::ExitCode;

use crate::output;

/// How a command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Exit {
    /// Everything went as asked.
    Success,
    /// The input was invalid or the work failed.
    Failure,
    /// The command line was wrong.
    Usage,
    /// Stopped by Ctrl-C; resumable.
    Interrupted,
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> Self {
        ExitCode::from(match e {
            Exit::Success => 0,
            Exit::Failure => 1,
            Exit::Usage => 2,
            Exit::Interrupted => 130,
        })
    }
}

/// Errors a command can end with, beyond the outcomes it reports itself.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CliError {
    /// Writing output failed (other than a closed pipe).
    #[error("cannot write output: {0}")]
    Output(#[source] std::io::Error),
}

/// Maps a command's result to the process exit code.
pub(crate) fn finish(result: Result<Exit, CliError>) -> ExitCode {
    match result {
        Ok(exit) => exit.into(),
        Err(CliError::Output(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => {
            Exit::Success.into()
        }
        Err(e) => {
            output::error(&e.to_string());
            Exit::Failure.into()
        }
    }
}
