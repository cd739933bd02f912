//! Writing to the terminal: data on stdout, messages on stderr, diagnostics rendered by
//! miette. Colour only on a terminal and never when `NO_COLOR` is set.

use std::io::{IsTerminal as _, Write as _};

use miette::{GraphicalReportHandler, GraphicalTheme};

use crate::exit::{CliError, Exit};

/// Writes `text` to stdout.
pub(crate) fn stdout(text: &str) -> Result<Exit, CliError> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes()).and_then(|()| out.flush()).map_err(CliError::Output)?;
    Ok(Exit::Success)
}

/// Writes `text` to stdout, followed by a newline when it does not end with one.
pub(crate) fn stdout_line(text: &str) -> Result<(), CliError> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes()).map_err(CliError::Output)?;
    if !text.ends_with('\n') {
        out.write_all(b"\n").map_err(CliError::Output)?;
    }
    out.flush().map_err(CliError::Output)
}

/// Writes `text` to stderr (messages for people; failures to write are ignored).
pub(crate) fn stderr(text: &str) {
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(text.as_bytes());
    if !text.ends_with('\n') {
        let _ = err.write_all(b"\n");
    }
}

/// Reports an error message on stderr.
pub(crate) fn error(message: &str) {
    stderr(&format!("error: {message}"));
}

fn colour(to_terminal: bool) -> bool {
    to_terminal && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// Renders a plan's diagnostics, as miette does, for the stream `to_stdout` says.
pub(crate) fn render_diagnostics(diags: &drover_plan::Diagnostics, to_stdout: bool) -> String {
    let terminal =
        if to_stdout { std::io::stdout().is_terminal() } else { std::io::stderr().is_terminal() };
    let theme = if colour(terminal) {
        GraphicalTheme::unicode()
    } else {
        GraphicalTheme::unicode_nocolor()
    };
    let handler = GraphicalReportHandler::new_themed(theme)
        .with_width(if terminal { 100 } else { 80 })
        .with_links(false);
    let mut out = String::new();
    for report in diags.reports() {
        // Rendering into a String cannot fail; a failure would only lose this one snippet.
        if handler.render_report(&mut out, &report).is_err() {
            out.push_str(&format!("{report}\n"));
        }
    }
    out
}
