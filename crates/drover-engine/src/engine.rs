//! The executor: drives every step of a run through its state machine, in dependency order,
//! within concurrency limits, journaling each transition before acting on it.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use drover_plan::{Mode, Plan, StepKind};
use sha2::{Digest as _, Sha256};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::error::{CloudError, EngineError, ErrorKind};
use crate::graph::{StepGraph, Wait};
use crate::journal::{Journal, Record};
use crate::ports::{BackupService, CloudResult, KeyService, Millis, TableService};
use crate::state::{Limits, Phase, RunEvent, RunState, StepEvent, StepKey};

/// The cloud a run talks to.
#[derive(Clone)]
pub struct Ports {
    /// AWS Backup.
    pub backup: Arc<dyn BackupService>,
    /// DynamoDB.
    pub tables: Arc<dyn TableService>,
    /// KMS.
    pub keys: Arc<dyn KeyService>,
    /// Time.
    pub clock: Arc<dyn Clock>,
}

/// Watches a run (progress displays, logs). Called with the journal lock held: be quick.
pub trait Observer: Send + Sync {
    /// A step transition was journaled.
    fn step(&self, _key: &StepKey, _event: &StepEvent, _state: &RunState) {}
    /// A cloud call is being retried.
    fn retry(&self, _key: &StepKey, _error: &CloudError, _wait: Duration) {}
}

/// An observer that ignores everything.
#[derive(Debug, Default)]
pub struct Silent;

impl Observer for Silent {}

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
#[derive(Debug, Clone, Default)]
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
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Every step succeeded.
    Succeeded,
    /// Some steps failed (and their dependents were blocked); `resume` retries them.
    Failed {
        /// The failed steps.
        failed: Vec<StepKey>,
        /// How many steps were blocked.
        blocked: usize,
    },
    /// Stopped by cancellation (Ctrl-C); `resume` continues.
    Interrupted,
}

/// Kinds of work with their own concurrency limit in a region.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Class {
    Backup,
    Copy,
    Restore,
    TableOps,
}

/// Additive-increase, multiplicative-decrease limit of one (region, class).
#[derive(Debug)]
struct Gate {
    max: f64,
    limit: f64,
    in_flight: usize,
}

#[derive(Debug, Default)]
struct Limiter {
    gates: HashMap<(String, Class), Gate>,
    peak: BTreeMap<(String, Class), usize>,
}

impl Limiter {
    fn gate(&mut self, scope: &(String, Class), limits: &Limits) -> &mut Gate {
        self.gates.entry(scope.clone()).or_insert_with(|| {
            #[allow(clippy::cast_precision_loss)]
            let max = match scope.1 {
                Class::Backup => limits.backups,
                Class::Copy => limits.copies,
                Class::Restore => limits.restores,
                Class::TableOps => limits.table_ops,
            }
            .max(1) as f64;
            Gate { max, limit: max, in_flight: 0 }
        })
    }

    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    fn try_acquire(&mut self, scope: &(String, Class), limits: &Limits) -> bool {
        let gate = self.gate(scope, limits);
        if gate.in_flight >= (gate.limit.floor() as usize).max(1) {
            return false;
        }
        gate.in_flight += 1;
        let n = gate.in_flight;
        let peak = self.peak.entry(scope.clone()).or_default();
        *peak = (*peak).max(n);
        true
    }

    fn release(&mut self, scope: &(String, Class)) {
        if let Some(g) = self.gates.get_mut(scope) {
            g.in_flight = g.in_flight.saturating_sub(1);
        }
    }

    fn throttled(&mut self, scope: &(String, Class), limits: &Limits) {
        let g = self.gate(scope, limits);
        g.limit = (g.limit / 2.0).max(1.0);
    }

    fn succeeded(&mut self, scope: &(String, Class), limits: &Limits) {
        let g = self.gate(scope, limits);
        g.limit = (g.limit + 1.0).min(g.max);
    }
}

/// The journal and the state it has built, kept together under one lock so that they never
/// disagree.
struct Book {
    journal: Journal,
    state: RunState,
}

/// What step tasks share.
pub(crate) struct Shared {
    pub(crate) plan: Plan,
    pub(crate) run_id: String,
    pub(crate) short_id: String,
    pub(crate) ports: Ports,
    pub(crate) settings: Settings,
    book: Mutex<Book>,
    limiter: Mutex<Limiter>,
    observer: Arc<dyn Observer>,
    rng: Mutex<u64>,
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

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic in another task cannot leave these structures half-updated (every update is a
    // single assignment after the fallible work), so a poisoned lock is still usable.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Shared {
    pub(crate) fn mode(&self) -> Mode {
        lock(&self.book).state.header.mode
    }

    /// Appends a step transition (durably), then applies it to the state.
    pub(crate) fn record(&self, key: &StepKey, event: StepEvent) -> Result<(), EngineError> {
        let mut book = lock(&self.book);
        let mut next = book.state.steps.get(key).cloned().unwrap_or_default();
        let now = stamp(self.ports.clock.now(), &book.state);
        if let Err(reason) = next.apply(&event, now) {
            // The code asked for a transition its own state machine forbids: a bug. Stop
            // before the journal records something that would not replay.
            return Err(EngineError::Refused(format!("internal error: step {key}: {reason}")));
        }
        let record = Record::Step { step: key.clone(), event: event.clone() };
        // Losing `began` or `blocked` in a crash only makes the step start again from where it
        // was: they are written now and made durable with the next record.
        let entry = if matches!(event, StepEvent::Began | StepEvent::Blocked { .. }) {
            book.journal.append_lazy(now, record)?
        } else {
            book.journal.append(now, record)?
        };
        book.state.steps.insert(key.clone(), next);
        book.state.last_at = entry.at;
        book.state.records = entry.seq;
        self.observer.step(key, &event, &book.state);
        Ok(())
    }

    pub(crate) fn record_run(&self, event: RunEvent) -> Result<(), EngineError> {
        let mut book = lock(&self.book);
        let now = stamp(self.ports.clock.now(), &book.state);
        let entry = book.journal.append(now, Record::Run { event })?;
        book.state.apply(&entry).map_err(EngineError::Refused)?;
        Ok(())
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

    fn jitter(&self, max: Duration) -> Duration {
        let mut s = lock(&self.rng);
        *s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = *s;
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
                    let wait = backoff / 2 + self.jitter(backoff / 2);
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
                self.record(key, StepEvent::JobRequested { token: token.clone() })?;
                token
            }
        };
        let job_id = self.call(key, scope, || start(token.clone())).await?;
        lock(&self.limiter).succeeded(scope, &self.settings.limits);
        self.record(key, StepEvent::JobStarted { job_id: job_id.clone() })?;
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
    fn peaks(&self) -> BTreeMap<(String, Class), usize> {
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

/// Everything a run needs.
pub struct Execution {
    /// The validated plan.
    pub plan: Plan,
    /// The open journal (created or resumed) and the state it replays to.
    pub journal: Journal,
    /// State rebuilt from the journal.
    pub state: RunState,
    /// The cloud.
    pub ports: Ports,
    /// Engine settings.
    pub settings: Settings,
    /// Cancels the run (Ctrl-C).
    pub cancel: CancellationToken,
    /// Progress.
    pub observer: Arc<dyn Observer>,
}

/// What a finished (or stopped) execution reports.
#[derive(Debug, Clone)]
pub struct Report {
    /// How it ended.
    pub outcome: Outcome,
    /// The final state.
    pub state: RunState,
    /// Highest number of steps in flight per (region, class of work).
    pub peak_concurrency: BTreeMap<String, usize>,
}

/// Runs (or resumes) the run to its end, or until cancelled.
///
/// # Errors
/// Journal failures (disk full, a simulated crash) and internal errors stop the run; the
/// journal then holds everything done so far and `resume` continues from it.
///
/// # Cancel safety
/// Not cancel safe: cancel through `Execution::cancel`, which journals the interruption.
pub async fn execute(exec: Execution) -> Result<Report, EngineError> {
    let Execution { plan, journal, state, ports, settings, cancel, observer } = exec;
    let mode = state.header.mode;
    let teardown = mode == Mode::Drill && (!state.header.options.keep || state.teardown_requested);
    let graph = Arc::new(match &settings.expected_ms {
        Some(expected) => {
            StepGraph::with_weights(&plan, mode, teardown, &|k| expected.get(k).copied())
        }
        None => StepGraph::new(&plan, mode, teardown),
    });
    let mut journal = journal;
    journal.set_durable(!settings.volatile_journal);
    let run_id = state.header.run_id.clone();
    let short_id = crate::run::short_id(&run_id).to_owned();
    let seed = run_id.bytes().fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
    let shared = Arc::new(Shared {
        plan,
        run_id,
        short_id,
        ports,
        settings,
        book: Mutex::new(Book { journal, state }),
        limiter: Mutex::new(Limiter::default()),
        observer,
        rng: Mutex::new(seed),
    });

    if mode == Mode::Failover && !shared.settings.teardown_only {
        for target in &shared.plan.targets {
            crate::steps::choose_cut(&shared, target.region.as_str()).await?;
        }
    }
    let outcome = schedule(&shared, &graph, &cancel).await?;
    if outcome == Outcome::Interrupted {
        shared.record_run(RunEvent::Interrupted)?;
    } else {
        if mode == Mode::Drill {
            crate::steps::remove_markers(&shared).await?;
        }
        // A teardown-only pass leaves the run's outcome as it was.
        if !shared.settings.teardown_only {
            shared.record_run(RunEvent::Finished { success: outcome == Outcome::Succeeded })?;
        }
    }
    let peak_concurrency = shared
        .peaks()
        .into_iter()
        .map(|((region, class), n)| (format!("{region} {}", class_name(class)), n))
        .collect();
    Ok(Report { outcome, state: shared.state(), peak_concurrency })
}

fn class_name(c: Class) -> &'static str {
    match c {
        Class::Backup => "backup jobs",
        Class::Copy => "copy jobs",
        Class::Restore => "restores",
        Class::TableOps => "table operations",
    }
}

async fn schedule(
    shared: &Arc<Shared>,
    graph: &Arc<StepGraph>,
    cancel: &CancellationToken,
) -> Result<Outcome, EngineError> {
    let mut running: JoinSet<(usize, Result<(), EngineError>)> = JoinSet::new();
    let mut in_flight = vec![false; graph.len()];
    let teardown_only = shared.settings.teardown_only;
    // Steps to look at, and steps that are ready but wait for a slot (most work left first).
    // A step is looked at again only when something it waits for finishes, so a run costs
    // time in proportion to its steps and edges, not their product.
    let mut candidates: Vec<usize> = (0..graph.len()).collect();
    let mut ready: std::collections::BTreeSet<(std::cmp::Reverse<u64>, usize)> =
        std::collections::BTreeSet::new();
    loop {
        while !candidates.is_empty() {
            // Decide under one lock, act (journal) after it. A step may be listed twice (two
            // of its dependencies finished or were blocked together): look at it once.
            candidates.sort_unstable();
            candidates.dedup();
            let mut blocked = Vec::new();
            shared.with_state(|state| {
                let phase = |i: usize| state.phase(&graph.steps()[i]);
                for i in candidates.drain(..) {
                    if in_flight[i]
                        || (teardown_only && graph.steps()[i].kind != StepKind::Teardown)
                    {
                        continue;
                    }
                    match phase(i) {
                        Phase::Pending => {}
                        Phase::Running | Phase::Requested { .. } | Phase::Attached { .. } => {
                            // Started by a previous process: carry on.
                            ready.insert((std::cmp::Reverse(graph.priority(i)), i));
                            continue;
                        }
                        _ => continue,
                    }
                    let mut blocked_by = None;
                    let mut waiting = false;
                    let waits = if teardown_only { &[][..] } else { graph.waits(i) };
                    for &(j, wait) in waits {
                        match (phase(j), wait) {
                            (Phase::Succeeded { .. }, _)
                            | (Phase::Failed { .. } | Phase::Blocked { .. }, Wait::Finished) => {}
                            (Phase::Failed { .. }, Wait::Success) => {
                                blocked_by = Some(graph.steps()[j].clone())
                            }
                            (Phase::Blocked { by }, Wait::Success) => blocked_by = Some(by.clone()),
                            _ => waiting = true,
                        }
                    }
                    if let Some(by) = blocked_by {
                        blocked.push((i, by));
                    } else if !waiting {
                        ready.insert((std::cmp::Reverse(graph.priority(i)), i));
                    }
                }
            });
            for (i, by) in blocked {
                shared.record(&graph.steps()[i], StepEvent::Blocked { by })?;
                // Blocks propagate through dependents.
                candidates.extend_from_slice(graph.dependents(i));
            }
        }
        if !cancel.is_cancelled() {
            let mut started = Vec::new();
            for &(p, i) in &ready {
                let key = graph.steps()[i].clone();
                let scope = scope_of(&shared.plan, &key);
                if !lock(&shared.limiter).try_acquire(&scope, &shared.settings.limits) {
                    continue;
                }
                started.push((p, i));
                in_flight[i] = true;
                let shared = Arc::clone(shared);
                running.spawn(async move {
                    let result = crate::steps::drive(&shared, &key).await;
                    lock(&shared.limiter).release(&scope);
                    (i, result)
                });
            }
            for s in started {
                ready.remove(&s);
            }
        }
        if running.is_empty() {
            break;
        }
        tokio::select! {
            joined = running.join_next() => {
                let Some(joined) = joined else { continue };
                match joined {
                    Ok((i, Ok(()))) => {
                        in_flight[i] = false;
                        candidates.extend_from_slice(graph.dependents(i));
                    }
                    Ok((_, Err(e))) => {
                        running.abort_all();
                        return Err(e);
                    }
                    Err(e) => {
                        running.abort_all();
                        return Err(EngineError::Refused(format!("internal error: a step task ended abnormally: {e}")));
                    }
                }
            }
            () = cancel.cancelled() => {
                // Jobs in the cloud go on; the journal knows them, and resume re-attaches.
                running.abort_all();
                while running.join_next().await.is_some() {}
                return Ok(Outcome::Interrupted);
            }
        }
    }
    if cancel.is_cancelled() {
        return Ok(Outcome::Interrupted);
    }
    let state = shared.state();
    let mut failed = Vec::new();
    let mut blocked = 0;
    for key in graph.steps() {
        if shared.settings.teardown_only && key.kind != StepKind::Teardown {
            continue;
        }
        match state.phase(key) {
            Phase::Failed { .. } => failed.push(key.clone()),
            Phase::Blocked { .. } => blocked += 1,
            _ => {}
        }
    }
    Ok(if failed.is_empty() && blocked == 0 {
        Outcome::Succeeded
    } else {
        Outcome::Failed { failed, blocked }
    })
}

/// The time to stamp a record with: the wall clock, but never earlier than the journal's
/// last record, so that durations read from the journal are never negative when the machine's
/// clock jumps backwards (a forward jump only makes a step look longer).
pub(crate) fn stamp(now: Millis, state: &RunState) -> Millis {
    now.max(state.last_at)
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
