//! Helpers the subcommands share (loading a plan for a run, the async runtime), so that the
//! command modules depend on this one and never on each other in a circle.

use std::path::Path;

use drover_plan::Plan;

use crate::exit::CliError;
use crate::output;

/// Loads a plan file for a run: diagnostics on stderr, `None` when it is invalid.
pub(crate) fn load_plan(path: &Path) -> Option<(Plan, Vec<u8>)> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) => {
            output::error(&format!("cannot read {}: {e}", path.display()));
            return None;
        }
    };
    let loaded = drover_plan::load(&path.display().to_string(), &bytes);
    if !loaded.diagnostics.is_empty() {
        output::stderr(&output::render_diagnostics(&loaded.diagnostics, false));
    }
    if loaded.plan.is_none() {
        output::error(&format!("{} is not a valid plan", path.display()));
    }
    loaded.plan.map(|p| (p, bytes))
}

/// The tokio runtime every command that talks to a cloud runs on (two worker threads).
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(CliError::Output)
}

/// The runtime of a simulated run: one thread, tokio's clock paused, so that simulated time
/// jumps from one event to the next (a discrete-event simulation) instead of following the
/// wall clock; a run is then a function of its plan, options and seed, whatever the machine's
/// load ([`crate::pace`] slows it down for people watching).
pub(crate) fn sim_runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .map_err(CliError::Output)
}

/// The runtime for a command on `cloud`: [`sim_runtime`] for the simulator, else
/// [`runtime`].
pub(crate) fn runtime_for(
    cloud: crate::args::CloudArg,
) -> Result<tokio::runtime::Runtime, CliError> {
    match cloud {
        crate::args::CloudArg::Sim => sim_runtime(),
        crate::args::CloudArg::Aws => runtime(),
    }
}
