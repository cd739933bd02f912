//! Run progress, watched from the engine's journaled transitions (`Observer`):
//!
//! - on a terminal (`--log-format text`), a live display ([`live`]): a bar per target of
//!   tables validated with the time left, steps in flight by class of work, the critical
//!   path's current step, failures as they happen;
//! - otherwise plain lines ([`text`]), one per meaningful event, with no wall-clock time;
//! - with `--log-format json`, `tracing` events (one JSON line each).
//!
//! What they show is computed in [`tally`], from the plan's step graph, the estimator's
//! expected step durations and the run's state (whose journal times are simulated time on the
//! simulator).

mod live;
mod tally;
mod text;

use std::io::IsTerminal as _;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use drover_engine::state::{RunState, StepEvent, StepKey};
use drover_engine::{CloudError, Observer, Settings};
use drover_plan::Plan;
use indicatif::MultiProgress;

use crate::args::LogFormat;
use crate::output;

/// Watches a run and shows it on stderr.
pub(crate) struct Progress {
    tally: tally::Tally,
    view: View,
    /// Cloud calls retried so far.
    retries: AtomicU64,
}

enum View {
    Live(live::Live),
    Lines(text::Lines),
    Tracing,
}

/// The live display, once there is one: log lines are printed above it ([`log_writer`]).
static LIVE: OnceLock<MultiProgress> = OnceLock::new();

impl Progress {
    /// The display for `log` and stderr: live on a terminal, plain lines elsewhere, `tracing`
    /// events in JSON. `state` is the run as it starts (or resumes); `settings` are the run's
    /// (expected step durations, teardown only).
    pub(crate) fn new(
        log: LogFormat,
        plan: &Plan,
        state: &RunState,
        settings: &Settings,
    ) -> Progress {
        let tally =
            tally::Tally::new(plan, state, settings.expected_ms.as_deref(), settings.teardown_only);
        let view = match log {
            LogFormat::Json => View::Tracing,
            LogFormat::Text if std::io::stderr().is_terminal() => {
                let live = live::Live::new(&tally, state);
                let _ = LIVE.set(live.multi().clone());
                live.update(&tally, state, 0);
                View::Live(live)
            }
            LogFormat::Text => View::Lines(text::Lines::new(state)),
        };
        Progress { tally, view, retries: AtomicU64::new(0) }
    }

    /// Shows how the run ended: the live display's last frame, or the last plain line.
    pub(crate) fn finish(&self, state: &RunState) {
        match &self.view {
            View::Live(live) => {
                live.finish(&self.tally, state, self.retries.load(Ordering::Relaxed))
            }
            View::Lines(lines) => output::stderr(&lines.finish(&self.tally, state)),
            View::Tracing => {}
        }
    }
}

impl Observer for Progress {
    fn step(&self, key: &StepKey, event: &StepEvent, state: &RunState) {
        match &self.view {
            View::Tracing => trace(key, event),
            View::Lines(lines) => {
                if let Some(line) = lines.step(&self.tally, state, key, event) {
                    output::stderr(&line);
                }
            }
            View::Live(live) => {
                if let StepEvent::Failed { message, .. } = event {
                    live.println(&format!(
                        "failed: {}: {}",
                        text::step_name(key),
                        text::one_line(message)
                    ));
                }
                live.update(&self.tally, state, self.retries.load(Ordering::Relaxed));
            }
        }
    }

    fn retry(&self, key: &StepKey, error: &CloudError, wait: Duration) {
        self.retries.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(step = %key, error = %error, wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX), "retrying");
    }
}

/// A transition as a `tracing` event (`--log-format json`).
fn trace(key: &StepKey, event: &StepEvent) {
    match event {
        StepEvent::Began => tracing::info!(step = %key, "started"),
        StepEvent::JobStarted { job_id } => tracing::info!(step = %key, job_id, "job running"),
        StepEvent::Succeeded(_) => tracing::info!(step = %key, "succeeded"),
        StepEvent::Failed { message, .. } => {
            tracing::warn!(step = %key, error = %message, "failed");
        }
        StepEvent::Blocked { by } => tracing::warn!(step = %key, blocked_by = %by, "blocked"),
        StepEvent::HookFinished(o) if o.passed() => {
            tracing::info!(step = %key, hook = %o.name, duration_ms = o.duration_ms, "hook passed");
        }
        StepEvent::HookFinished(o) => {
            tracing::warn!(step = %key, hook = %o.name, exit_code = ?o.exit_code, timed_out = o.timed_out, "hook failed");
        }
        StepEvent::JobRequested { .. } | StepEvent::Retried => {}
    }
}

/// Where log lines go: stderr, above the live display when there is one (so that a warning
/// does not tear the bars).
pub(crate) fn log_writer() -> LogWriter {
    LogWriter
}

/// See [`log_writer`].
pub(crate) struct LogWriter;

impl std::io::Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.write_all(buf).map(|()| buf.len())
    }

    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        let write = || std::io::stderr().lock().write_all(buf);
        match LIVE.get() {
            Some(multi) => multi.suspend(write),
            None => write(),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}
