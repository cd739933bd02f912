//! Faults to inject ([`Faults`]) and the decisions they make: whether a call is throttled or
//! meets a passing error, which jobs are doomed, which jobs `Describe*Job` does not see yet,
//! and which key a restore really uses.

use std::collections::{BTreeMap, BTreeSet};

use drover_engine::ErrorKind;
use drover_engine::ports::{CloudResult, Millis};
use serde::{Deserialize, Serialize};

use crate::err;
use crate::model::JobKind;
use crate::rng::Rng;

/// Faults to inject.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Faults {
    /// Probability that any call is throttled.
    pub throttle_rate: f64,
    /// Throttle the next N calls (any operation).
    pub throttle_next: u64,
    /// Operations (e.g. `StartRestoreJob`) throttled every time while listed.
    pub throttle_ops: BTreeSet<String>,
    /// The next N jobs of a kind end in [`Faults::fail_state`].
    pub fail_next: BTreeMap<JobKind, u32>,
    /// Terminal state of the jobs `fail_next` dooms, when not `FAILED`: one the kind's API
    /// model allows ([`JobKind::failure_states`]), e.g. `ABORTED`, `EXPIRED`, `PARTIAL`.
    pub fail_state: Option<String>,
    /// Probability that any call fails with a passing fault (HTTP 500, 503, or a timeout).
    pub error_rate: f64,
    /// Fail the next N calls (any operation) with a passing fault.
    pub error_next: u64,
    /// Restore jobs into these table names end FAILED.
    pub fail_restores_of: BTreeSet<String>,
    /// Latency added to every call, milliseconds of the simulator's clock.
    pub latency_ms: u64,
    /// Restores ignore the requested key and encrypt with this one (a misconfigured or
    /// misbehaving service: validation must notice).
    pub restore_with_key: Option<String>,
    /// `Describe*Job` answers not-found for a job this many milliseconds (simulator clock)
    /// after it started: an eventually consistent read.
    pub unseen_jobs_ms: u64,
    /// The next N calls of these operations (e.g. `RestoreTableToPointInTime`) take effect,
    /// then answer a timeout: the answer lost on the way back, so that a retry meets the
    /// effect of the first call.
    pub lose_answers: BTreeMap<String, u32>,
}

impl Faults {
    /// Whether the answer of this call, which took effect, is lost (`lose_answers`).
    pub(crate) fn answer_lost(&mut self, op: &str) -> bool {
        match self.lose_answers.get_mut(op) {
            Some(n) if *n > 0 => {
                *n -= 1;
                true
            }
            _ => false,
        }
    }

    /// The fault a call meets before the service acts on it, if any, checked in this order:
    /// the next N calls throttled, the listed operations throttled, throttling by rate, then a
    /// passing fault (the next N calls, or by rate). Draws from `rng` only for rates in force.
    pub(crate) fn on_call(&mut self, op: &str, rng: &mut Rng) -> CloudResult<()> {
        if self.throttle_next > 0 {
            self.throttle_next -= 1;
            return Err(err(ErrorKind::Throttled, op, "ThrottlingException: Rate exceeded"));
        }
        if self.throttle_ops.contains(op) {
            return Err(err(ErrorKind::Throttled, op, "ThrottlingException: Rate exceeded"));
        }
        if self.throttle_rate > 0.0 && rng.unit() < self.throttle_rate {
            return Err(err(ErrorKind::Throttled, op, "ThrottlingException: Rate exceeded"));
        }
        let passing = if self.error_next > 0 {
            self.error_next -= 1;
            true
        } else {
            self.error_rate > 0.0 && rng.unit() < self.error_rate
        };
        if passing {
            const PASSING: [&str; 3] = [
                "InternalServerError (HTTP 500): We encountered an internal error",
                "ServiceUnavailableException (HTTP 503): Service unavailable",
                "timed out waiting for the response",
            ];
            #[allow(clippy::cast_possible_truncation)]
            let message = PASSING[(rng.next_rand() % 3) as usize];
            return Err(err(ErrorKind::Transient, op, message));
        }
        Ok(())
    }

    /// The failure a job of `kind` that starts now is doomed to, as `(terminal state,
    /// message)`: one of the next N of its kind ([`Faults::fail_next`]), or a restore into a
    /// listed name (`restore_table`: the table a restore creates).
    pub(crate) fn doom(
        &mut self,
        kind: JobKind,
        restore_table: Option<&str>,
    ) -> Option<(String, String)> {
        match self.fail_next.get_mut(&kind) {
            Some(n) if *n > 0 => {
                *n -= 1;
                let state = self
                    .fail_state
                    .clone()
                    .filter(|s| kind.failure_states().contains(&s.as_str()))
                    .unwrap_or_else(|| "FAILED".to_owned());
                let message = format!("Injected {} (simulator fault)", state.to_lowercase());
                Some((state, message))
            }
            _ => match restore_table {
                Some(table) if self.fail_restores_of.contains(table) => {
                    let message = format!("Injected failure restoring {table} (simulator fault)");
                    Some(("FAILED".to_owned(), message))
                }
                _ => None,
            },
        }
    }

    /// Whether `Describe*Job` sees, at `now`, a job that started at `created_at`
    /// ([`Faults::unseen_jobs_ms`]).
    pub(crate) fn job_visible(&self, created_at: Millis, now: Millis) -> bool {
        let unseen = i64::try_from(self.unseen_jobs_ms).unwrap_or(i64::MAX);
        now >= created_at.saturating_add(unseen)
    }

    /// The key a restore encrypts with: the `requested` one, unless
    /// [`Faults::restore_with_key`] overrides it.
    pub(crate) fn restore_key(&self, requested: String) -> String {
        self.restore_with_key.clone().unwrap_or(requested)
    }
}
