//! The live display on a terminal (indicatif): a header with the run's time and the time left;
//! the critical path's current step; steps in flight by class of work; one bar per target of
//! tables done, with the target's time left; failures printed above, as they happen.
//!
//! ```text
//! failed: validate orders -> eu-west-1: 12 items, expected at least 100
//! ⠋ drill shop-demo aaaa0001 · +12m04s simulated · ~14m10s left
//!   critical path: restore orders -> us-west-2 (running)
//!   in flight: 0 backups, 1 copy, 1 restore, 0 table ops
//!   us-west-2 [================>               ] 2/4 validated · ~12m40s left
//!   eu-west-1 [========>                       ] 1/4 validated, 1 failed, 1 blocked · ~2m10s left
//! ```
//!
//! The times come from the journal (`RunState::last_at`), so they are simulated time on the
//! simulator, and they change when steps move (not in between).

use std::time::Duration;

use drover_engine::state::RunState;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::tally::{Forecast, InFlight, Tally, TargetCount, elapsed, human};
use super::text::{count_short, simulated, step_name};

pub(crate) struct Live {
    multi: MultiProgress,
    header: ProgressBar,
    critical: ProgressBar,
    flight: ProgressBar,
    /// One bar per target, in plan order.
    targets: Vec<(String, ProgressBar)>,
    title: String,
    simulated: bool,
    /// When the figures were last worked out: at most ten times a second, since each time is
    /// a pass over every step (a simulated run makes thousands of transitions a second).
    last: std::sync::Mutex<Option<std::time::Instant>>,
}

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ")
}

impl Live {
    pub(crate) fn new(tally: &Tally, state: &RunState) -> Live {
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
        let header =
            multi.add(ProgressBar::new_spinner().with_style(style("{spinner} {wide_msg}")));
        header.enable_steady_tick(Duration::from_millis(150));
        let critical = multi.add(ProgressBar::new_spinner().with_style(style("  {wide_msg}")));
        let flight = multi.add(ProgressBar::new_spinner().with_style(style("  {wide_msg}")));
        let width = tally.targets().iter().map(String::len).max().unwrap_or(0);
        let counts = tally.counts(state);
        let targets = tally
            .targets()
            .iter()
            .map(|t| {
                let c = counts.get(t).copied().unwrap_or_default();
                let bar = ProgressBar::new(c.total)
                    .with_style(style(&format!("  {{prefix:{width}}} [{{bar:32}}] {{msg}}")))
                    .with_prefix(t.clone());
                (t.clone(), multi.add(bar))
            })
            .collect();
        let title = format!(
            "{} {} {}",
            state.header.mode.as_str(),
            state.header.plan_name,
            drover_engine::run::short_id(&state.header.run_id)
        );
        Live {
            multi,
            header,
            critical,
            flight,
            targets,
            title,
            simulated: simulated(state),
            last: std::sync::Mutex::new(None),
        }
    }

    /// The display a process-wide log writer prints above (see [`super::log_writer`]).
    pub(crate) fn multi(&self) -> &MultiProgress {
        &self.multi
    }

    /// Prints a line above the bars.
    pub(crate) fn println(&self, line: &str) {
        let _ = self.multi.println(line);
    }

    /// Redraws from the state, unless it did less than a tenth of a second ago.
    pub(crate) fn update(&self, tally: &Tally, state: &RunState, retries: u64) {
        {
            let mut last = self.last.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            #[allow(clippy::disallowed_methods)]
            let now = std::time::Instant::now();
            if last.is_some_and(|t| now.duration_since(t) < Duration::from_millis(100)) {
                return;
            }
            *last = Some(now);
        }
        self.redraw(tally, state, retries);
    }

    fn redraw(&self, tally: &Tally, state: &RunState, retries: u64) {
        let forecast = tally.forecast(state);
        let run_ms = elapsed(state.started_at, state.last_at);
        self.header.set_message(header_text(&self.title, run_ms, &forecast, self.simulated));
        self.critical.set_message(critical_text(&forecast));
        self.flight.set_message(flight_text(tally.in_flight(state), retries));
        let counts = tally.counts(state);
        for (target, bar) in &self.targets {
            let c = counts.get(target).copied().unwrap_or_default();
            let left = forecast.target_left_ms.get(target).copied().flatten();
            bar.set_length(c.total);
            bar.set_position(c.done);
            bar.set_message(target_text(c, tally.done_word(), left));
        }
    }

    /// The last frame, left on the terminal.
    pub(crate) fn finish(&self, tally: &Tally, state: &RunState, retries: u64) {
        self.redraw(tally, state, retries);
        let outcome = match state.finished {
            Some(true) => "succeeded",
            Some(false) => "failed",
            None => "stopped",
        };
        let run_ms = elapsed(state.started_at, state.last_at);
        let clock = if self.simulated { " simulated" } else { "" };
        self.header.finish_with_message(format!(
            "{} · {outcome} after {}{clock}",
            self.title,
            human(run_ms)
        ));
        self.critical.finish();
        self.flight.finish();
        for (_, bar) in &self.targets {
            bar.finish();
        }
    }
}

/// `drill shop-demo aaaa0001 · +12m04s simulated · ~14m10s left`.
pub(crate) fn header_text(
    title: &str,
    run_ms: u64,
    forecast: &Forecast,
    simulated: bool,
) -> String {
    let mut text = format!("{title} · +{}", human(run_ms));
    if simulated {
        text.push_str(" simulated");
    }
    if let Some(left) = forecast.left_ms {
        text.push_str(&format!(" · ~{} left", human(left)));
    }
    text
}

/// `critical path: restore orders -> us-west-2 (running)`: where the longest remaining chain
/// is now (`next` when its step waits to be started).
pub(crate) fn critical_text(forecast: &Forecast) -> String {
    match &forecast.critical {
        Some((step, running)) => {
            let state = if *running { "running" } else { "next" };
            format!("critical path: {} ({state})", step_name(step))
        }
        None => "critical path: nothing left".to_owned(),
    }
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// `in flight: 2 backups, 1 copy, 0 restores, 1 table op`, and the calls retried so far.
pub(crate) fn flight_text(f: InFlight, retries: u64) -> String {
    let mut text = format!(
        "in flight: {}, {}, {}, {}",
        plural(f.backups, "backup", "backups"),
        plural(f.copies, "copy", "copies"),
        plural(f.restores, "restore", "restores"),
        plural(f.table_ops, "table op", "table ops"),
    );
    if retries > 0 {
        text.push_str(&format!(" · {retries} calls retried"));
    }
    text
}

/// `2/4 validated, 1 failed · ~8m10s left`, or `· done` once nothing is left there.
pub(crate) fn target_text(c: TargetCount, word: &str, left_ms: Option<u64>) -> String {
    let mut text = count_short(c, word);
    if c.done + c.failed + c.blocked >= c.total {
        text.push_str(" · done");
    } else if let Some(left) = left_ms {
        text.push_str(&format!(" · ~{} left", human(left)));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use drover_engine::state::StepKey;
    use drover_plan::StepKind;

    #[test]
    fn the_header_says_which_clock_and_what_is_critical() {
        let step = StepKey {
            table: "orders".into(),
            target: Some("us-west-2".into()),
            kind: StepKind::Restore,
        };
        let forecast = Forecast {
            left_ms: Some(850_000),
            target_left_ms: Default::default(),
            critical: Some((step, true)),
        };
        assert_eq!(
            header_text("drill shop-demo aaaa0001", 724_000, &forecast, true),
            "drill shop-demo aaaa0001 · +12m04s simulated · ~14m10s left"
        );
        assert_eq!(
            critical_text(&forecast),
            "critical path: restore orders -> us-west-2 (running)"
        );
        let none = Forecast { left_ms: None, target_left_ms: Default::default(), critical: None };
        assert_eq!(header_text("failover x y", 1000, &none, false), "failover x y · +1s");
        assert_eq!(critical_text(&none), "critical path: nothing left");
    }

    #[test]
    fn flight_and_targets_read_naturally() {
        let f = InFlight { backups: 2, copies: 1, restores: 0, table_ops: 1 };
        assert_eq!(flight_text(f, 0), "in flight: 2 backups, 1 copy, 0 restores, 1 table op");
        assert_eq!(
            flight_text(InFlight::default(), 3),
            "in flight: 0 backups, 0 copies, 0 restores, 0 table ops · 3 calls retried"
        );
        let c = TargetCount { done: 2, total: 4, failed: 1, blocked: 0 };
        assert_eq!(
            target_text(c, "validated", Some(490_000)),
            "2/4 validated, 1 failed · ~8m10s left"
        );
        let c = TargetCount { done: 3, total: 4, failed: 1, blocked: 0 };
        assert_eq!(target_text(c, "validated", Some(0)), "3/4 validated, 1 failed · done");
        assert_eq!(target_text(TargetCount::default(), "copied", None), "0/0 copied · done");
    }
}
