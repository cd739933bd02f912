//! Run progress: a live table on a terminal, plain log lines otherwise.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use drover_engine::state::{Phase, RunState, StepEvent, StepKey};
use drover_engine::{CloudError, Observer};

/// Redraws a status block on stderr (terminal), or logs each transition (`tracing`).
pub(crate) struct Progress {
    live: bool,
    inner: Mutex<Live>,
}

struct Live {
    lines: usize,
    last_draw: Option<Instant>,
    started: Instant,
    /// (table, target) -> (current step, phase).
    rows: BTreeMap<(String, String), (String, &'static str)>,
}

impl Progress {
    pub(crate) fn new(live: bool) -> Progress {
        Progress {
            live,
            #[allow(clippy::disallowed_methods)]
            inner: Mutex::new(Live {
                lines: 0,
                last_draw: None,
                started: Instant::now(),
                rows: BTreeMap::new(),
            }),
        }
    }

    /// Draws the final state (live mode) so that the last frame is complete.
    pub(crate) fn finish(&self, state: &RunState) {
        if self.live {
            let mut live = self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            live.last_draw = None;
            draw(&mut live, state);
        }
    }
}

fn draw(live: &mut Live, state: &RunState) {
    #[allow(clippy::disallowed_methods)]
    let now = Instant::now();
    if live.last_draw.is_some_and(|t| now.duration_since(t) < Duration::from_millis(100)) {
        return;
    }
    live.last_draw = Some(now);
    let in_flight = state
        .steps
        .values()
        .filter(|s| matches!(s.phase, Phase::Attached { .. } | Phase::Requested { .. }))
        .count();
    let done = state.steps.values().filter(|s| s.phase.is_terminal()).count();
    let mut out = String::new();
    if live.lines > 0 {
        out.push_str(&format!("\x1b[{}A\x1b[J", live.lines));
    }
    let mut lines = vec![format!(
        "drover {} {}: {} steps done, {in_flight} jobs in flight, {}s elapsed",
        state.header.mode.as_str(),
        state.header.run_id,
        done,
        live.started.elapsed().as_secs()
    )];
    for ((table, target), (step, phase)) in &live.rows {
        lines.push(format!("  {table:<28} {target:<14} {step:<15} {phase}"));
    }
    for l in &lines {
        out.push_str(l);
        out.push('\n');
    }
    live.lines = lines.len();
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(out.as_bytes());
    let _ = err.flush();
}

impl Observer for Progress {
    fn step(&self, key: &StepKey, event: &StepEvent, state: &RunState) {
        match event {
            StepEvent::Began => tracing::info!(step = %key, "started"),
            StepEvent::JobStarted { job_id } => tracing::info!(step = %key, job_id, "job running"),
            StepEvent::Succeeded(_) => tracing::info!(step = %key, "succeeded"),
            StepEvent::Failed { message, .. } => {
                tracing::warn!(step = %key, error = %message, "failed")
            }
            StepEvent::Blocked { by } => tracing::warn!(step = %key, blocked_by = %by, "blocked"),
            StepEvent::JobRequested { .. } | StepEvent::Retried => {}
        }
        if !self.live {
            return;
        }
        let mut live = self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let phase = state.phase(key).name();
        let target = key.target.clone().unwrap_or_else(|| "(source)".to_owned());
        if key.target.is_some() {
            // The table's source-region row is done once its first target step starts.
            live.rows.remove(&(key.table.clone(), "(source)".to_owned()));
        }
        live.rows.insert((key.table.clone(), target), (key.kind.as_str().to_owned(), phase));
        draw(&mut live, state);
    }

    fn retry(&self, key: &StepKey, error: &CloudError, wait: Duration) {
        tracing::debug!(step = %key, error = %error, wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX), "retrying");
    }
}
