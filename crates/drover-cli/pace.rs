//! Pacing of simulated runs for people watching them.
//!
//! A simulated run's time is virtual ([`crate::support::sim_runtime`]): it jumps to the next
//! event, so a run takes as long as the machine needs to compute it. The pacer holds it back
//! so that simulated time runs at most `speed` simulated seconds per real second: every
//! [`TICK`] of simulated time it compares how far the run is with how far it may be, and
//! sleeps the difference on the runtime's one thread (nothing else runs meanwhile; simulated
//! time stands still while it sleeps).
//!
//! Its ticks are the same whatever the speed (also at `max`, where it never sleeps), so the
//! order of events, and with it the journal and the report, never depend on the pacing.

use std::sync::Arc;
use std::time::{Duration, Instant};

use drover_engine::Clock;
use drover_engine::graph::StepGraph;
use drover_engine::state::{Limits, StepKey};
use drover_plan::{Mode, Plan, StepKind};

use crate::args::SimSpeed;

/// How often, in simulated time, the pacer looks at the wall clock.
pub(crate) const TICK: Duration = Duration::from_secs(1);

/// How long the default pacing aims to make a run last, in real time.
const AUTO_TARGET: Duration = Duration::from_secs(4);

/// After this much real time the default pacing stops holding a run back, so that a run the
/// lower bound underestimated still ends within about ten seconds of real time (or as soon as
/// the machine can compute it).
const AUTO_LIMIT: Duration = Duration::from_secs(8);

/// How a run is paced.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Pacing {
    /// Simulated seconds per real second; `None`: no pacing.
    speed: Option<f64>,
    /// Real time after which pacing stops.
    limit: Option<Duration>,
}

impl Pacing {
    /// The pacing asked for, or (`None`) the default: `expected_ms`, a lower bound of the
    /// run's simulated duration, spread over about four seconds.
    pub(crate) fn new(asked: Option<SimSpeed>, expected_ms: u64) -> Pacing {
        match asked {
            Some(SimSpeed::Max) => Pacing { speed: None, limit: None },
            Some(SimSpeed::Times(x)) => Pacing { speed: Some(x), limit: None },
            None => {
                #[allow(clippy::cast_precision_loss)]
                let speed = (expected_ms as f64 / AUTO_TARGET.as_millis() as f64).max(1.0);
                Pacing { speed: Some(speed), limit: Some(AUTO_LIMIT) }
            }
        }
    }

    /// How long the pacer sleeps when the run is `simulated` in after `real` time: what it
    /// takes for simulated time not to run faster than the speed.
    pub(crate) fn hold(&self, simulated: Duration, real: Duration) -> Duration {
        let Some(speed) = self.speed else { return Duration::ZERO };
        if self.limit.is_some_and(|limit| real >= limit) {
            return Duration::ZERO;
        }
        let due = simulated.div_f64(speed);
        let due = self.limit.map_or(due, |limit| due.min(limit));
        due.saturating_sub(real)
    }
}

/// Paces the run on `clock` until the task is dropped (spawn it beside the run).
pub(crate) async fn run(clock: Arc<dyn Clock>, pacing: Pacing) {
    let start = clock.monotonic();
    #[allow(clippy::disallowed_methods)]
    let wall = Instant::now();
    loop {
        clock.sleep(TICK).await;
        let hold = pacing.hold(clock.monotonic().saturating_sub(start), wall.elapsed());
        if !hold.is_zero() {
            // Blocks the runtime's one thread on purpose: nothing may run (and simulated time
            // may not advance) until the wall clock has caught up.
            std::thread::sleep(hold);
        }
    }
}

/// A lower bound of a run's simulated duration (ms): the longest chain of expected step
/// durations, or the busiest class of work divided by its concurrency limit, whichever is
/// longer; plus a drill's wait before its backups.
pub(crate) fn lower_bound(
    plan: &Plan,
    shape: drover_engine::graph::Shape,
    expected: &std::collections::BTreeMap<StepKey, u64>,
    limits: &Limits,
    backup_settle: Duration,
) -> u64 {
    let graph = StepGraph::with_weights(
        plan,
        drover_engine::graph::Shape { teardown: false, ..shape },
        &|k| expected.get(k).copied(),
    );
    let chain = (0..graph.len()).map(|i| graph.priority(i)).max().unwrap_or(0);
    let mut work: std::collections::BTreeMap<(Option<&str>, StepKind), u64> =
        std::collections::BTreeMap::new();
    for (k, ms) in expected {
        *work.entry((k.target.as_deref(), k.kind)).or_default() += ms;
    }
    let busiest = work
        .iter()
        .map(|((_, kind), ms)| {
            let slots = match kind {
                StepKind::RecoveryPoint => limits.backups,
                StepKind::Copy => limits.copies,
                StepKind::Restore => limits.restores,
                _ => limits.table_ops,
            };
            ms / u64::try_from(slots.max(1)).unwrap_or(1)
        })
        .max()
        .unwrap_or(0);
    let settle = if shape.mode == Mode::Drill && !shape.pitr {
        u64::try_from(backup_settle.as_millis()).unwrap_or(u64::MAX)
    } else {
        0
    };
    chain.max(busiest).saturating_add(settle)
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn max_never_holds() {
        let p = Pacing::new(Some(SimSpeed::Max), 0);
        assert_eq!(p.hold(S(3600), Duration::ZERO), Duration::ZERO);
    }

    #[test]
    fn a_speed_holds_simulated_time_back_to_it() {
        let p = Pacing::new(Some(SimSpeed::Times(60.0)), 0);
        // An hour simulated in 10 s of real time: 60x allows it after 60 s.
        assert_eq!(p.hold(S(3600), S(10)), S(50));
        assert_eq!(p.hold(S(3600), S(70)), Duration::ZERO);
    }

    #[test]
    fn the_default_spreads_the_bound_over_a_few_seconds_and_gives_up_after_eight() {
        let p = Pacing::new(None, 40 * 60 * 1000);
        // 40 minutes over 4 s: 600x.
        assert_eq!(p.hold(S(1200), Duration::ZERO), S(2));
        // A run four times longer than the bound is not held past the limit...
        assert_eq!(p.hold(S(9600), S(5)), S(3));
        // ...nor at all after it.
        assert_eq!(p.hold(S(9600), S(9)), Duration::ZERO);
    }

    #[test]
    fn the_default_never_slows_time_below_real_time() {
        let p = Pacing::new(None, 100);
        assert_eq!(p.hold(S(1), Duration::ZERO), S(1));
    }
}
