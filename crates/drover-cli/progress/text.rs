//! The plain lines of a run (stderr is not a terminal): one per meaningful event, stable and
//! greppable, with no wall-clock time in them (a simulated run's lines carry its simulated
//! time, labelled `sim`), so the same events give the same lines:
//!
//! ```text
//! [sim +1m05s] drill aaaa0001 restore orders -> us-west-2: job 530e0e61-… running (2/4 validated in us-west-2)
//! drill aaaa0001 validate orders -> us-west-2: failed: 12 items, expected at least 100 (2/4 validated, 1 failed in us-west-2)
//! drill aaaa0001 finished: failed (3/4 validated, 1 failed in us-west-2)
//! ```

use drover_engine::state::{RunState, StepEvent, StepKey};
use drover_plan::{Mode, StepKind};

use super::tally::{Tally, TargetCount, elapsed, human};

/// How a run's lines start.
pub(crate) struct Lines {
    mode: Mode,
    short_id: String,
    /// The run's cloud is the simulator: its time is simulated, and shown.
    simulated: bool,
}

impl Lines {
    pub(crate) fn new(state: &RunState) -> Lines {
        Lines {
            mode: state.header.mode,
            short_id: drover_engine::run::short_id(&state.header.run_id).to_owned(),
            simulated: simulated(state),
        }
    }

    /// `[sim +1m05s] drill aaaa0001`: the simulated time since the run started, when there is
    /// one, then the mode and the run's short id.
    fn prefix(&self, state: &RunState) -> String {
        let run = format!("{} {}", self.mode.as_str(), self.short_id);
        if self.simulated {
            format!("[sim +{}] {run}", human(elapsed(state.started_at, state.last_at)))
        } else {
            run
        }
    }

    /// The line for a step's transition (`state` already has it), or `None` for transitions
    /// that say nothing new (a job requested: its start follows).
    pub(crate) fn step(
        &self,
        tally: &Tally,
        state: &RunState,
        key: &StepKey,
        event: &StepEvent,
    ) -> Option<String> {
        let what = event_text(self.mode, key, event)?;
        let mut line = format!("{} {}: {what}", self.prefix(state), step_name(key));
        if let Some(target) = &key.target {
            let count = tally.counts_after(state, key).get(target).copied().unwrap_or_default();
            line.push_str(&format!(" ({})", count_text(count, tally.done_word(), target)));
        }
        Some(line)
    }

    /// The last line: how the run ended and every target's count.
    pub(crate) fn finish(&self, tally: &Tally, state: &RunState) -> String {
        let outcome = match state.finished {
            Some(true) => "finished: succeeded",
            Some(false) => "finished: failed",
            None => "stopped: unfinished",
        };
        let counts: Vec<String> =
            tally.counts(state).iter().map(|(t, c)| count_text(*c, tally.done_word(), t)).collect();
        format!("{} {outcome} ({})", self.prefix(state), counts.join("; "))
    }
}

/// Whether the run's cloud (journaled in its header) is the simulator.
pub(crate) fn simulated(state: &RunState) -> bool {
    state.header.options.cloud.get("kind").and_then(serde_json::Value::as_str) == Some("sim")
}

/// A step as lines name it: `restore orders -> us-west-2`, `recovery-point orders` (source).
pub(crate) fn step_name(key: &StepKey) -> String {
    match &key.target {
        Some(t) => format!("{} {} -> {t}", key.kind.as_str(), key.table),
        None => format!("{} {}", key.kind.as_str(), key.table),
    }
}

/// `3/12 validated in us-west-2`, with failures and blocked tables when there are some.
pub(crate) fn count_text(c: TargetCount, word: &str, target: &str) -> String {
    format!("{} in {target}", count_short(c, word))
}

/// `3/12 validated`, then `, 1 failed`, `, 2 blocked` when there are some.
pub(crate) fn count_short(c: TargetCount, word: &str) -> String {
    let mut text = format!("{}/{} {word}", c.done, c.total);
    if c.failed > 0 {
        text.push_str(&format!(", {} failed", c.failed));
    }
    if c.blocked > 0 {
        text.push_str(&format!(", {} blocked", c.blocked));
    }
    text
}

/// Whether a step of this kind starts a job (whose start then says it is running).
fn has_job(mode: Mode, kind: StepKind) -> bool {
    match kind {
        StepKind::RecoveryPoint => mode != Mode::Failover,
        StepKind::Copy | StepKind::Restore => true,
        StepKind::Configure | StepKind::Validate | StepKind::Teardown | StepKind::Hooks => false,
    }
}

/// What a transition says: `job … running`, `succeeded`, `failed: …`, `blocked by …`; a step
/// without a job says when it starts.
pub(crate) fn event_text(mode: Mode, key: &StepKey, event: &StepEvent) -> Option<String> {
    Some(match event {
        StepEvent::Began if !has_job(mode, key.kind) => "started".to_owned(),
        // A point-in-time restore has no job: its "job" is the new table.
        StepEvent::JobStarted { job_id } if job_id.contains(":dynamodb:") => {
            let table = job_id.rsplit_once("table/").map_or(job_id.as_str(), |(_, t)| t);
            format!("point-in-time restore into {table} running")
        }
        StepEvent::JobStarted { job_id } => format!("job {job_id} running"),
        StepEvent::Succeeded(_) => "succeeded".to_owned(),
        StepEvent::Failed { message, .. } => format!("failed: {}", one_line(message)),
        StepEvent::Blocked { by } => format!("blocked by {}", step_name(by)),
        StepEvent::HookFinished(o) if o.passed() => format!("hook {} passed", o.name),
        StepEvent::HookFinished(o) => format!("hook {} failed", o.name),
        StepEvent::Began | StepEvent::JobRequested { .. } | StepEvent::Retried => return None,
    })
}

/// A message on one line (a service's message may hold line breaks).
pub(crate) fn one_line(message: &str) -> String {
    message.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use drover_engine::state::StepOutput;

    fn key(kind: StepKind, target: Option<&str>) -> StepKey {
        StepKey { table: "orders".into(), target: target.map(str::to_owned), kind }
    }

    #[test]
    fn transitions_read_as_one_greppable_phrase() {
        let w = Some("us-west-2");
        let cases = [
            (Mode::Drill, key(StepKind::RecoveryPoint, None), StepEvent::Began, None),
            (Mode::Failover, key(StepKind::RecoveryPoint, w), StepEvent::Began, Some("started")),
            (Mode::Drill, key(StepKind::Validate, w), StepEvent::Began, Some("started")),
            (
                Mode::Drill,
                key(StepKind::Restore, w),
                StepEvent::JobRequested { token: "t".into() },
                None,
            ),
            (
                Mode::Drill,
                key(StepKind::Restore, w),
                StepEvent::JobStarted { job_id: "j-1".into() },
                Some("job j-1 running"),
            ),
            (
                Mode::Recover,
                key(StepKind::Restore, w),
                StepEvent::JobStarted {
                    job_id:
                        "arn:aws:dynamodb:us-west-2:123456789012:table/orders-at-20261124T103000Z"
                            .into(),
                },
                Some("point-in-time restore into orders-at-20261124T103000Z running"),
            ),
            (
                Mode::Drill,
                key(StepKind::Copy, w),
                StepEvent::Succeeded(StepOutput::Copy {
                    arn: "a".into(),
                    locked: None,
                    delete_after_days: None,
                }),
                Some("succeeded"),
            ),
            (
                Mode::Drill,
                key(StepKind::Restore, w),
                StepEvent::Failed { kind: None, message: "key\n  disabled".into() },
                Some("failed: key disabled"),
            ),
            (
                Mode::Drill,
                key(StepKind::Restore, w),
                StepEvent::Blocked { by: key(StepKind::Validate, w) },
                Some("blocked by validate orders -> us-west-2"),
            ),
        ];
        for (mode, key, event, want) in cases {
            assert_eq!(event_text(mode, &key, &event).as_deref(), want, "{key} {event:?}");
        }
        assert_eq!(step_name(&key(StepKind::RecoveryPoint, None)), "recovery-point orders");
    }

    #[test]
    fn counts_name_failures_only_when_there_are_some() {
        let c = TargetCount { done: 3, total: 12, failed: 0, blocked: 0 };
        assert_eq!(count_text(c, "validated", "us-west-2"), "3/12 validated in us-west-2");
        let c = TargetCount { done: 0, total: 2, failed: 1, blocked: 1 };
        assert_eq!(
            count_text(c, "copied", "eu-west-1"),
            "0/2 copied, 1 failed, 1 blocked in eu-west-1"
        );
    }
}
