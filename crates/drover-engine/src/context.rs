//! The shared context of a run's step tasks: the journal and the state it builds, the
//! concurrency limiter, and the call, job and poll helpers every step driver uses.
//!
//! The scheduler (`engine.rs`) and the step drivers (`steps.rs`) both use this module; the
//! step drivers never import the scheduler.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use drover_plan::{Mode, Plan, StepKind};
use sha2::{Digest as _, Sha256};

use crate::error::{CloudError, EngineError, ErrorKind};
use crate::journal::{Journal, Record};
use crate::limits::{Class, Limiter};
use crate::observer::Observer;
use crate::policy::Settings;
use crate::ports::{CloudResult, Ports};
use crate::state::{Phase, RunEvent, RunState, StepEvent, StepKey, stamp};

/// The journal and the state it has built, kept together under one lock so that they never
/// disagree.
pub(crate) struct Book {
    pub(crate) journal: Journal,
    pub(crate) state: RunState,
}

/// What step tasks share.
pub(crate) struct Shared {
    pub(crate) plan: Plan,
    pub(crate) run_id: String,
    pub(crate) short_id: String,
    /// A point-in-time run's instant and names (the header's, which never changes).
    pub(crate) pitr: Option<crate::state::Pitr>,
    /// Runs the plan's validation hooks.
    pub(crate) hooks: Option<Arc<dyn crate::hooks::HookRunner>>,
    pub(crate) ports: Ports,
    pub(crate) settings: Settings,
    pub(crate) book: Mutex<Book>,
    pub(crate) limiter: Mutex<Limiter>,
    pub(crate) observer: Arc<dyn Observer>,
}

/// A step failure, recorded as the step's `failed` event.
#[derive(Debug)]
pub(crate) struct StepFailure {
    pub(crate) kind: Option<ErrorKind>,
    pub(crate) message: String,
}

impl StepFailure {
    pub(crate) fn new(message: impl Into<String>) -> StepFailure {
        StepFailure { kind: None, message: message.into() }
    }
}

impl From<CloudError> for StepFailure {
    fn from(e: CloudError) -> Self {
        StepFailure { kind: Some(e.kind), message: e.to_string() }
    }
}

/// A step's result: a failure is data (recorded), a journal error stops the run.
pub(crate) enum StepError {
    Failed(StepFailure),
    Engine(EngineError),
}

impl From<CloudError> for StepError {
    fn from(e: CloudError) -> Self {
        StepError::Failed(e.into())
    }
}

impl From<StepFailure> for StepError {
    fn from(f: StepFailure) -> Self {
        StepError::Failed(f)
    }
}

impl From<EngineError> for StepError {
    fn from(e: EngineError) -> Self {
        StepError::Engine(e)
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic in another task cannot leave these structures half-updated (every update is a
    // single assignment after the fallible work), so a poisoned lock is still usable.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Shared {
    pub(crate) fn mode(&self) -> Mode {
        lock(&self.book).state.header.mode
    }

    /// Appends a step transition (durably), then applies it to the state. Returns once the
    /// record is durable: the caller may act on it.
    pub(crate) async fn record(&self, key: &StepKey, event: StepEvent) -> Result<(), EngineError> {
        let (seq, durability, lazy) = {
            let mut book = lock(&self.book);
            // Losing `began` or `blocked` in a crash only makes the step start again from
            // where it was: in a file they are written now and made durable with the next
            // record. On a bucket every record is waited for: its write is also the check that
            // this process still holds the run (a stale process must not write a drill marker
            // or delete a table before its first durable record is refused).
            let lazy = book.journal.is_local()
                && matches!(event, StepEvent::Began | StepEvent::Blocked { .. });
            let mut next = book.state.steps.get(key).cloned().unwrap_or_default();
            let now = stamp(self.ports.clock.now(), &book.state);
            if let Err(reason) = next.apply(&event, now) {
                // The code asked for a transition its own state machine forbids: a bug. Stop
                // before the journal records something that would not replay.
                return Err(EngineError::Refused(format!("internal error: step {key}: {reason}")));
            }
            let record = Record::Step { step: key.clone(), event: event.clone() };
            let entry = if lazy {
                book.journal.append_lazy(now, record)?
            } else {
                book.journal.append(now, record)?
            };
            book.state.steps.insert(key.clone(), next);
            book.state.last_at = entry.at;
            book.state.records = entry.seq;
            self.observer.step(key, &event, &book.state);
            (entry.seq, book.journal.durability(), lazy)
        };
        if !lazy {
            durability.until(seq).await?;
        }
        Ok(())
    }

    /// Appends a run-level record, applies it, and returns once it is durable.
    pub(crate) async fn record_run(&self, event: RunEvent) -> Result<(), EngineError> {
        let (seq, durability) = {
            let mut book = lock(&self.book);
            let now = stamp(self.ports.clock.now(), &book.state);
            let entry = book.journal.append(now, Record::Run { event })?;
            book.state.apply(&entry).map_err(EngineError::Refused)?;
            (entry.seq, book.journal.durability())
        };
        durability.until(seq).await?;
        Ok(())
    }

    /// What waits for the journal's records to be durable.
    pub(crate) fn durability(&self) -> crate::journal::Durability {
        lock(&self.book).journal.durability()
    }

    pub(crate) fn state(&self) -> RunState {
        lock(&self.book).state.clone()
    }

    /// Reads the state without copying it (the lock is held while `f` runs: keep it short).
    pub(crate) fn with_state<T>(&self, f: impl FnOnce(&RunState) -> T) -> T {
        f(&lock(&self.book).state)
    }

    pub(crate) fn phase(&self, key: &StepKey) -> Phase {
        lock(&self.book).state.phase(key).clone()
    }

    /// The idempotency token of a step's current attempt: the same across crashes, new for
    /// a retry after failure.
    pub(crate) fn token(&self, key: &StepKey) -> String {
        let attempt = lock(&self.book).state.steps.get(key).map_or(0, |s| s.attempt);
        let mut h = Sha256::new();
        h.update(format!(
            "{}/{}/{}/{attempt}",
            self.run_id,
            key,
            key.target.as_deref().unwrap_or("-")
        ));
        h.finalize().iter().take(16).map(|b| format!("{b:02x}")).collect()
    }

    /// A fraction of `max`, drawn from the step and the retry's number: retries of different
    /// steps spread out, and a step's waits are the same whatever else runs (a simulated run
    /// is a function of its plan and seed, not of its run id or of the order tasks run in).
    fn jitter(&self, key: &StepKey, retry: u32, max: Duration) -> Duration {
        let mut z = format!("{}/{key}/{retry}", self.plan.name)
            .bytes()
            .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
                (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
            });
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        #[allow(clippy::cast_precision_loss)]
        let frac = (z >> 11) as f64 / (1u64 << 53) as f64;
        max.mul_f64(frac)
    }

    /// Calls `op`, retrying throttling and transient errors with full-jitter exponential
    /// backoff; throttling also halves the concurrency limit of `scope` (AIMD).
    pub(crate) async fn call<T, F, Fut>(
        &self,
        key: &StepKey,
        scope: &(String, Class),
        mut op: F,
    ) -> CloudResult<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = CloudResult<T>>,
    {
        // Retry budgets are elapsed time: a wall clock that jumps must not end them early.
        let started = self.ports.clock.monotonic();
        let mut backoff = self.settings.retry.initial;
        let mut retry = 0u32;
        loop {
            match op().await {
                Ok(v) => return Ok(v),
                Err(e) if e.kind.is_retryable() => {
                    let waited = self.ports.clock.monotonic().saturating_sub(started);
                    if waited >= self.settings.retry.give_up_after {
                        return Err(CloudError::new(
                            e.kind,
                            e.op.clone(),
                            format!(
                                "{} (still failing after {}s of retries)",
                                e.message,
                                waited.as_secs()
                            ),
                        ));
                    }
                    if e.kind == ErrorKind::Throttled {
                        lock(&self.limiter).throttled(scope, &self.settings.limits);
                    }
                    retry = retry.saturating_add(1);
                    let wait = backoff / 2 + self.jitter(key, retry, backoff / 2);
                    self.observer.retry(key, &e, wait);
                    tracing::debug!(step = %key, error = %e, wait_ms = wait.as_millis() as u64, "retrying");
                    self.ports.clock.sleep(wait).await;
                    backoff = (backoff * 2).min(self.settings.retry.max);
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Calls a Start*Job once per attempt: requests it with a token journaled first, or
    /// re-attaches to the job a previous process started (same token, same job).
    pub(crate) async fn job<F, Fut>(
        &self,
        key: &StepKey,
        scope: &(String, Class),
        start: F,
    ) -> Result<String, StepError>
    where
        F: Fn(String) -> Fut,
        Fut: std::future::Future<Output = CloudResult<String>>,
    {
        let token = match self.phase(key) {
            Phase::Attached { job_id, .. } => return Ok(job_id),
            Phase::Requested { token } => token,
            _ => {
                let token = self.token(key);
                self.record(key, StepEvent::JobRequested { token: token.clone() }).await?;
                token
            }
        };
        let job_id = self.call(key, scope, || start(token.clone())).await?;
        lock(&self.limiter).succeeded(scope, &self.settings.limits);
        self.record(key, StepEvent::JobStarted { job_id: job_id.clone() }).await?;
        Ok(job_id)
    }

    /// Polls `describe` until the job ends: short waits at first, backing off to the cap.
    /// Polls a job until it ends (see [`PollPolicy`]).
    pub(crate) async fn poll_job<F, Fut>(
        &self,
        key: &StepKey,
        scope: &(String, Class),
        describe: F,
    ) -> Result<crate::ports::JobStatus, StepError>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = CloudResult<crate::ports::JobStatus>>,
    {
        use crate::ports::JobState;
        let poll = self.settings.poll;
        let first_seen = self.ports.clock.now();
        let polling = self.ports.clock.monotonic();
        let mut wait = poll.initial;
        let mut waiting: Option<String> = None;
        loop {
            let status = match self.call(key, scope, &describe).await {
                Ok(status) => status,
                Err(e)
                    if e.kind == ErrorKind::NotFound
                        && self.ports.clock.monotonic().saturating_sub(polling)
                            < poll.unseen_grace =>
                {
                    tracing::debug!(step = %key, error = %e, "job not visible yet; polling again");
                    self.ports.clock.sleep(wait).await;
                    wait = wait.mul_f64(poll.factor).min(poll.max);
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            match status.state {
                JobState::Completed | JobState::Failed => return Ok(status),
                JobState::Created | JobState::Running => {}
            }
            // Say why a job waits, once per reason: AWS Backup keeps a job CREATED while
            // another job of the same resource runs, or while it retries a copy (up to 2 h).
            if status.message.is_some() && status.message != waiting {
                tracing::info!(
                    step = %key,
                    state = %status.raw_state,
                    reason = status.message.as_deref().unwrap_or_default(),
                    "job waiting"
                );
                waiting.clone_from(&status.message);
            }
            let now = self.ports.clock.now();
            let age = now - status.created_at.unwrap_or(first_seen).min(now);
            let age = Duration::from_millis(u64::try_from(age).unwrap_or(0));
            let expected = self
                .settings
                .expected_ms
                .as_ref()
                .and_then(|e| e.get(key))
                .map(|ms| Duration::from_millis(*ms));
            wait = poll.next_wait(age, status.percent_done, expected, wait);
            self.ports.clock.sleep(wait).await;
        }
    }

    /// Concurrency limits reached so far, per region and class of work.
    pub(crate) fn peaks(&self) -> BTreeMap<(String, Class), usize> {
        lock(&self.limiter).peak.clone()
    }
}

/// The scope (region, class) whose limit a step counts against.
pub(crate) fn scope_of(plan: &Plan, key: &StepKey) -> (String, Class) {
    let region = key.target.clone().unwrap_or_else(|| plan.source.region.to_string());
    let class = match key.kind {
        StepKind::RecoveryPoint if key.target.is_none() => Class::Backup,
        StepKind::Copy => Class::Copy,
        StepKind::Restore => Class::Restore,
        _ => Class::TableOps,
    };
    (region, class)
}
