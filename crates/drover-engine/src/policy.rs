//! How a run behaves beyond its plan: retries, polling, limits and other engine settings.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::state::{Limits, StepKey};

/// How failing calls are retried.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// First backoff.
    pub initial: Duration,
    /// Longest backoff.
    pub max: Duration,
    /// Give up on a call after retrying this long.
    pub give_up_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            initial: Duration::from_millis(500),
            max: Duration::from_secs(60),
            give_up_after: Duration::from_secs(30 * 60),
        }
    }
}

/// How jobs are polled.
///
/// With the service's progress (`PercentDone`), the next poll comes at a share (`approach`)
/// of the predicted remaining time, so polls close in on the end geometrically: a one-hour
/// job takes about ten polls. Without progress, waits back off geometrically. Either way a
/// wait is never shorter than `initial` nor than `lag_share` of the job's age, which bounds
/// both the calls and the detection lag (the time between a job finishing and drover noticing)
/// to about `lag_share` of the job's duration.
#[derive(Debug, Clone, Copy)]
pub struct PollPolicy {
    /// First wait after a job starts, and the shortest wait.
    pub initial: Duration,
    /// Growth factor per poll, without progress information.
    pub factor: f64,
    /// Longest wait without progress information.
    pub max: Duration,
    /// Share of the predicted remaining time to wait, with progress information.
    pub approach: f64,
    /// Shortest wait as a share of the job's age.
    pub lag_share: f64,
    /// Longest wait with progress information.
    pub max_predicted: Duration,
    /// Polls of a table (restored but not yet ACTIVE, or being deleted) before giving up.
    pub table_polls: u32,
    /// How long a job this process polls may answer not-found before the step fails: reads
    /// of a job just started are eventually consistent.
    pub unseen_grace: Duration,
    /// How long a change drover made may take to show in reads before the step fails: tags
    /// are applied asynchronously ("Wait for a few seconds", DynamoDB TagResource), and other
    /// reads after a change are eventually consistent.
    pub settle: Duration,
}

impl Default for PollPolicy {
    fn default() -> Self {
        PollPolicy {
            initial: Duration::from_secs(2),
            factor: 1.5,
            max: Duration::from_secs(60),
            approach: 0.6,
            lag_share: 0.01,
            max_predicted: Duration::from_secs(30 * 60),
            table_polls: 120,
            unseen_grace: Duration::from_secs(60),
            settle: Duration::from_secs(60),
        }
    }
}

impl PollPolicy {
    /// The wait before the next poll of a job `age` old, at `percent` done (when the service
    /// says) or `expected` to take so long (from its size and the duration model), after a
    /// previous wait of `previous`.
    #[must_use]
    pub fn next_wait(
        &self,
        age: Duration,
        percent: Option<f64>,
        expected: Option<Duration>,
        previous: Duration,
    ) -> Duration {
        let floor = self.initial.max(age.mul_f64(self.lag_share));
        let cap = self.max_predicted.max(floor);
        match (percent, expected) {
            // The service's own progress: trust it.
            (Some(p), _) if p > 0.0 && p < 100.0 => {
                age.mul_f64((100.0 - p) / p).mul_f64(self.approach).clamp(floor, cap)
            }
            // A prediction from the job's size and the model: it may be far off for jobs that
            // end early, so the wait grows at most threefold per poll (never past twice the
            // job's age): an early job is noticed within about twice its duration.
            (_, Some(e)) if e > age => {
                let trust = (age * 2 + self.initial).max(floor);
                (e - age).mul_f64(self.approach).clamp(floor, cap.min(trust))
            }
            // No idea when it ends (or it runs late): back off geometrically.
            _ => previous.mul_f64(self.factor).clamp(floor, self.max.max(floor)),
        }
    }
}

/// Engine settings beyond the plan.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Expected duration (ms) of steps, when known (from table sizes and a duration model):
    /// ready steps start longest-remaining-work first. Without it, fixed weights per kind.
    pub expected_ms: Option<Arc<BTreeMap<StepKey, u64>>>,
    /// Sync every journal append to disk (always, except for simulations and estimates,
    /// whose journals are thrown away).
    pub volatile_journal: bool,
    /// Concurrency limits.
    pub limits: Limits,
    /// Retries.
    pub retry: RetryPolicy,
    /// Polling.
    pub poll: PollPolicy,
    /// Segments of the parallel count scan.
    pub scan_segments: u32,
    /// Run only the drill's teardown steps (`drover teardown`), whatever else is unfinished.
    pub teardown_only: bool,
    /// How long after writing the drill marker and taking the source digest a backup job
    /// starts: a backup "is guaranteed to contain all data committed ... up to 1 minute before
    /// the request" and may or may not contain later writes (DynamoDB CreateBackup), so the
    /// marker and the digest describe the backup only when they are older than that.
    pub backup_settle: Duration,
    /// Read capacity units per second for every scan of a source table, over the plan's
    /// `drill.source_reads` (`--source-read-units`).
    pub source_read_units: Option<u32>,
    /// Retries of an event's delivery (`notify`): never the run's.
    pub notify_retry: RetryPolicy,
}

/// The default [`Settings::backup_settle`]: the minute DynamoDB documents.
pub const BACKUP_SETTLE: Duration = Duration::from_secs(60);

impl Default for Settings {
    fn default() -> Self {
        Settings {
            expected_ms: None,
            volatile_journal: false,
            limits: Limits::default(),
            retry: RetryPolicy::default(),
            poll: PollPolicy::default(),
            scan_segments: 0,
            teardown_only: false,
            backup_settle: BACKUP_SETTLE,
            source_read_units: None,
            notify_retry: crate::notify::default_retry(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Polls of a job of `duration` whose progress is reported exactly (or not at all), and
    /// the detection lag: (polls, lag).
    fn simulate(duration: Duration, with_progress: bool) -> (u32, Duration) {
        simulate_expecting(duration, with_progress, None)
    }

    fn simulate_expecting(
        duration: Duration,
        with_progress: bool,
        expected: Option<Duration>,
    ) -> (u32, Duration) {
        let policy = PollPolicy::default();
        let mut t = Duration::ZERO;
        let mut wait = policy.initial;
        let mut polls = 0;
        loop {
            polls += 1;
            if t >= duration {
                return (polls, t - duration);
            }
            let percent = with_progress.then(|| t.as_secs_f64() / duration.as_secs_f64() * 100.0);
            wait = policy.next_wait(t, percent, expected, wait);
            t += wait;
        }
    }

    #[test]
    fn polling_a_one_hour_job_takes_few_polls_and_notices_the_end_quickly() {
        let hour = Duration::from_secs(3600);
        let (polls, lag) = simulate(hour, true);
        assert!(polls <= 15, "{polls} polls");
        assert!(lag <= hour.mul_f64(0.02), "lag {lag:?}");
        // Without progress but with an expected duration (copy jobs report no progress).
        let (polls, lag) = simulate_expecting(hour, false, Some(hour));
        assert!(polls <= 15 && lag <= hour.mul_f64(0.02), "{polls} polls, lag {lag:?}");
        // ... running 10% late, or 10% early, or a hundred times faster than predicted.
        let (polls, lag) = simulate_expecting(Duration::from_secs(30), false, Some(hour));
        assert!(polls <= 6 && lag <= Duration::from_secs(60), "{polls} polls, lag {lag:?}");
        let (polls, lag) = simulate_expecting(hour.mul_f64(1.1), false, Some(hour));
        assert!(polls <= 20 && lag <= Duration::from_secs(60), "{polls} polls, lag {lag:?}");
        let (polls, lag) = simulate_expecting(hour.mul_f64(0.9), false, Some(hour));
        assert!(polls <= 15 && lag <= hour.mul_f64(0.1), "{polls} polls, lag {lag:?}");
        // Without progress or expectation the floor still bounds the lag (many polls).
        let (polls, lag) = simulate(hour, false);
        assert!(lag <= Duration::from_secs(60), "lag {lag:?} after {polls} polls");
        // Short jobs are noticed within seconds.
        let (_, lag) = simulate(Duration::from_secs(30), true);
        assert!(lag <= Duration::from_secs(2), "lag {lag:?}");
    }
}
