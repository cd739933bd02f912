//! A run's lease on a bucket: who holds the run, until when.
//!
//! `runs/<run id>/lease.json` names its holder (user, host, pid, drover version, CI job) and
//! when it expires. It is taken with `If-None-Match: *`, renewed with `If-Match` on its entity
//! tag every third of its time to live, released (deleted with `If-Match`) when the run stops,
//! and taken over with `If-Match` once it has expired.
//!
//! The lease keeps honest processes out of each other's way; it is not what keeps a run
//! safe. That is the journal's fencing (`store/remote.rs`): every record is written
//! with `If-None-Match`, so a process that lost its lease (a paused laptop, a clock that runs
//! fast elsewhere) loses the run at its next record, before any further effect.
//!
//! Clock skew: a lease's expiry is the holder's clock plus its time to live, and a reader
//! judges it by its own clock. So that a reader whose clock runs ahead never takes over a live
//! lease, a lease that looks expired is taken over only after the reader has seen it unrenewed
//! (the same entity tag) for its whole time to live by its own monotonic clock. A live holder
//! renews three times in that time, and one that could not renew for that long has stopped
//! itself (its keeper gives up before its lease expires); a lease seen renewed while it looked
//! expired is live, whatever the clocks say.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::error::CloudError;
use crate::ports::Millis;
use crate::store::objects::{Condition, ObjectStore, Written};

/// The default time to live of a lease.
pub const DEFAULT_TTL: Duration = Duration::from_secs(60);

/// The key of a run's lease.
#[must_use]
pub fn lease_key(run_id: &str) -> String {
    format!("runs/{run_id}/lease.json")
}

/// Who holds a lease.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    /// The operating system user.
    pub user: String,
    /// The machine.
    pub host: String,
    /// The process.
    pub pid: u32,
    /// drover's version.
    pub version: String,
    /// The CI job, when drover runs in one (GitHub Actions, GitLab CI).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ci: Option<String>,
}

impl Holder {
    /// This process.
    #[must_use]
    pub fn this_process(version: &str) -> Holder {
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .map(|h| h.trim().to_owned())
            .filter(|h| !h.is_empty())
            .or_else(|| env("HOSTNAME"))
            .or_else(|| env("COMPUTERNAME"))
            .unwrap_or_else(|| "unknown host".to_owned());
        let ci = match (env("GITHUB_REPOSITORY"), env("GITHUB_RUN_ID")) {
            (Some(repo), Some(run)) => Some(format!(
                "GitHub Actions {repo} run {run} attempt {}",
                env("GITHUB_RUN_ATTEMPT").unwrap_or_else(|| "1".to_owned())
            )),
            _ => env("CI_JOB_URL").map(|url| format!("GitLab CI job {url}")),
        };
        Holder {
            user: env("USER").or_else(|| env("USERNAME")).unwrap_or_else(|| "unknown".into()),
            host,
            pid: std::process::id(),
            version: version.to_owned(),
            ci,
        }
    }
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@{} (pid {}, drover {}", self.user, self.host, self.pid, self.version)?;
        if let Some(ci) = &self.ci {
            write!(f, ", {ci}")?;
        }
        write!(f, ")")
    }
}

/// A lease object's content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseBody {
    /// The lease's id (`drover unlock RUN --lease ID`).
    pub lease: String,
    /// The run it holds.
    pub run: String,
    /// Who holds it.
    pub holder: Holder,
    /// When it was acquired (the holder's clock).
    pub acquired_at: Millis,
    /// When it was last renewed (the holder's clock).
    pub renewed_at: Millis,
    /// When it expires unless renewed (the holder's clock).
    pub expires_at: Millis,
    /// Its time to live, in milliseconds.
    pub ttl_ms: u64,
    /// Renewals so far (every renewal changes the object, so its entity tag).
    pub renewals: u64,
}

impl LeaseBody {
    /// How often the holder renews.
    #[must_use]
    pub fn renew_every(&self) -> Duration {
        Duration::from_millis((self.ttl_ms / 3).max(1))
    }
}

/// Why a lease could not be had, kept, or released.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LeaseError {
    /// Another process holds the run, and its lease has not expired.
    #[error(
        "run {} is held by {} under lease {}, until {} unless renewed (it is renewed while \
         that drover runs); wait for it (`--wait`), or, if that process is gone for good, \
         `drover unlock {} --lease {}`",
        .0.run,
        .0.holder,
        .0.lease,
        crate::run::format_time(.0.expires_at),
        .0.run,
        .0.lease
    )]
    Held(Box<LeaseBody>),
    /// The lease object is not a drover lease of this run.
    #[error(
        "{location} is not a drover lease of this run ({reason}); inspect it, and delete it if it is not a live run's"
    )]
    Foreign {
        /// The object.
        location: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The lease was taken over, or broken with `drover unlock`.
    #[error(
        "the lease on run {run} was taken over by another process or broken with `drover unlock`"
    )]
    Lost {
        /// The run.
        run: String,
    },
    /// The store failed.
    #[error("the state store: {0}")]
    Store(#[from] CloudError),
}

/// How to take a lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Taking {
    /// The time to live of the lease taken.
    pub ttl: Duration,
    /// How long to wait for a live lease held by another process to expire (0: refuse it at
    /// once).
    pub wait: Duration,
}

impl Default for Taking {
    fn default() -> Self {
        Taking { ttl: DEFAULT_TTL, wait: Duration::ZERO }
    }
}

/// A lease this process holds.
#[derive(Debug)]
pub struct Lease {
    objects: Arc<dyn ObjectStore>,
    body: LeaseBody,
    etag: String,
}

/// A lease taken, and the expired one it replaced, if any.
#[derive(Debug)]
pub struct Acquired {
    /// The lease.
    pub lease: Lease,
    /// The expired lease taken over.
    pub took_over: Option<LeaseBody>,
}

/// Reads a run's lease: `None` when nobody holds the run.
///
/// # Errors
/// The store fails, or the object is not a drover lease of this run.
pub async fn read(
    objects: &Arc<dyn ObjectStore>,
    run_id: &str,
) -> Result<Option<(LeaseBody, String)>, LeaseError> {
    let key = lease_key(run_id);
    let Some(object) = objects.get(&key).await? else { return Ok(None) };
    let foreign = |reason: String| LeaseError::Foreign {
        location: format!("{}/{key}", objects.location()),
        reason,
    };
    let body: LeaseBody =
        serde_json::from_slice(&object.bytes).map_err(|e| foreign(format!("unreadable: {e}")))?;
    if body.run != run_id {
        return Err(foreign(format!("it names run `{}`", body.run)));
    }
    Ok(Some((body, object.etag)))
}

/// A new lease id: 16 hex digits, different in every process and call.
fn new_lease_id(clock: &dyn Clock) -> String {
    use std::hash::{BuildHasher as _, Hasher as _};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    h.write_i64(clock.now());
    #[allow(clippy::disallowed_methods)]
    let wall = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    h.write_u128(wall);
    format!("{:016x}", h.finish())
}

/// Takes the lease of `run_id`: a free one at once; one that looks expired once it has stayed
/// unrenewed (the same entity tag) for its whole time to live by this process's monotonic
/// clock; a live one only if it ends or expires within `taking.wait`. A lease that looks
/// expired but is renewed meanwhile is live (this machine's clock is ahead). `note` hears what
/// it waits for, once per lease seen. The store's passing failures are retried for up to the
/// time to live taken.
///
/// # Errors
/// [`LeaseError::Held`] when a live lease outlasts the wait; store failures.
pub async fn acquire(
    objects: &Arc<dyn ObjectStore>,
    run_id: &str,
    holder: Holder,
    clock: &Arc<dyn Clock>,
    taking: Taking,
    note: &(dyn Fn(String) + Send + Sync),
) -> Result<Acquired, LeaseError> {
    let key = lease_key(run_id);
    let started = tokio::time::Instant::now();
    // The lease last seen, since when, and whether a renewal was seen at all.
    let mut seen: Option<(String, tokio::time::Instant)> = None;
    let mut renewed = false;
    let ttl_ms = u64::try_from(taking.ttl.as_millis()).unwrap_or(u64::MAX);
    let body = |now: Millis| LeaseBody {
        lease: new_lease_id(clock.as_ref()),
        run: run_id.to_owned(),
        holder: holder.clone(),
        acquired_at: now,
        renewed_at: now,
        expires_at: now.saturating_add(i64::try_from(ttl_ms).unwrap_or(i64::MAX)),
        ttl_ms,
        renewals: 0,
    };
    let mut failing = Duration::ZERO;
    loop {
        let current = match patiently(read(objects, run_id).await, &mut failing, taking.ttl).await {
            Some(current) => current?,
            None => continue,
        };
        let now = clock.now();
        let (condition, took_over) = match current {
            None => (Condition::Absent, None),
            Some((old, etag)) => {
                let first_seen = match &seen {
                    Some((e, at)) if *e == etag => *at,
                    previous => {
                        renewed |= previous.is_some();
                        let at = tokio::time::Instant::now();
                        if previous.is_none() {
                            if now >= old.expires_at {
                                note(format!(
                                    "the lease of run {run_id} held by {} expired at {}; taking \
                                     it over once it stays unrenewed for {}s",
                                    old.holder,
                                    crate::run::format_time(old.expires_at),
                                    Duration::from_millis(old.ttl_ms).as_secs_f64().ceil()
                                ));
                            } else if !taking.wait.is_zero() {
                                note(format!(
                                    "run {run_id} is held by {} until {}; waiting up to {}s for \
                                     it to end or expire",
                                    old.holder,
                                    crate::run::format_time(old.expires_at),
                                    taking.wait.as_secs()
                                ));
                            }
                        }
                        seen = Some((etag.clone(), at));
                        at
                    }
                };
                let ttl = Duration::from_millis(old.ttl_ms);
                let expired = now >= old.expires_at;
                // Dead: expired by this clock, and seen unrenewed for a whole time to live.
                // Live: not expired by this clock, or renewed while this process watched (its
                // clock is ahead).
                if expired && first_seen.elapsed() >= ttl {
                    (Condition::Matches(etag), Some(old))
                } else if (!expired || renewed) && started.elapsed() >= taking.wait {
                    return Err(LeaseError::Held(Box::new(old)));
                } else {
                    let pause = old.renew_every() / 4;
                    tokio::time::sleep(
                        pause.clamp(Duration::from_millis(50), Duration::from_secs(2)),
                    )
                    .await;
                    continue;
                }
            }
        };
        let new = body(now);
        let bytes = serde_json::to_vec(&new).unwrap_or_default();
        let put = objects.put(&key, bytes.clone(), condition).await.map_err(LeaseError::from);
        let written = match patiently(put, &mut failing, taking.ttl).await {
            Some(written) => written?,
            None => continue,
        };
        let etag = match written {
            Written::Done { etag } => Some(etag),
            // Another process took it first, or this write landed on an attempt whose answer
            // was lost (then the lease holds exactly these bytes): look again.
            Written::Conflict => match objects.get(&key).await {
                Ok(Some(object)) if object.bytes == bytes => Some(object.etag),
                _ => None,
            },
        };
        if let Some(etag) = etag {
            return Ok(Acquired {
                lease: Lease { objects: Arc::clone(objects), body: new, etag },
                took_over,
            });
        }
    }
}

/// A store call's result, with passing failures waited out: `None` to try again (after a
/// pause), the result otherwise; gives up once the failures have lasted `budget`.
async fn patiently<T>(
    result: Result<T, LeaseError>,
    failing: &mut Duration,
    budget: Duration,
) -> Option<Result<T, LeaseError>> {
    match result {
        Ok(value) => {
            *failing = Duration::ZERO;
            Some(Ok(value))
        }
        Err(LeaseError::Store(e)) if e.kind.is_retryable() && *failing < budget => {
            tracing::warn!("the state store failed, retrying: {e}");
            let pause = Duration::from_secs(1);
            tokio::time::sleep(pause).await;
            *failing += pause;
            None
        }
        Err(e) => Some(Err(e)),
    }
}

impl Lease {
    /// What the lease says.
    #[must_use]
    pub fn body(&self) -> &LeaseBody {
        &self.body
    }

    /// Renews the lease for another time to live.
    ///
    /// # Errors
    /// [`LeaseError::Lost`] when it was taken over or broken; store failures.
    pub async fn renew(&mut self, clock: &dyn Clock) -> Result<(), LeaseError> {
        let now = clock.now();
        let mut next = self.body.clone();
        next.renewed_at = now;
        next.expires_at = now.saturating_add(i64::try_from(next.ttl_ms).unwrap_or(i64::MAX));
        next.renewals += 1;
        let bytes = serde_json::to_vec(&next).unwrap_or_default();
        let key = lease_key(&self.body.run);
        let etag = match self
            .objects
            .put(&key, bytes.clone(), Condition::Matches(self.etag.clone()))
            .await?
        {
            Written::Done { etag } => etag,
            // This renewal may have landed on an earlier attempt whose answer was lost: then
            // the lease holds exactly what was written.
            Written::Conflict => match self.objects.get(&key).await? {
                Some(object) if object.bytes == bytes => object.etag,
                _ => return Err(LeaseError::Lost { run: self.body.run.clone() }),
            },
        };
        self.body = next;
        self.etag = etag;
        Ok(())
    }

    /// Releases the lease (deletes it, if it is still this one).
    ///
    /// # Errors
    /// [`LeaseError::Lost`] when it is no longer this process's; store failures.
    pub async fn release(self) -> Result<(), LeaseError> {
        break_lease(&self.objects, &self.body, &self.etag).await
    }
}

/// Deletes the lease `body` read with entity tag `etag`, if it is still that very object:
/// `drover unlock`, and a holder's release.
///
/// # Errors
/// [`LeaseError::Lost`] when the lease changed since (renewed, taken over, broken); store
/// failures.
pub async fn break_lease(
    objects: &Arc<dyn ObjectStore>,
    body: &LeaseBody,
    etag: &str,
) -> Result<(), LeaseError> {
    match objects.delete(&lease_key(&body.run), Some(etag)).await? {
        Written::Done { .. } => Ok(()),
        Written::Conflict => Err(LeaseError::Lost { run: body.run.clone() }),
    }
}

/// A lease kept alive in the background while a run executes.
#[derive(Debug)]
pub struct Keeper {
    task: tokio::task::JoinHandle<Option<Lease>>,
    stop: CancellationToken,
    lost: Arc<Mutex<Option<String>>>,
    run: String,
    lease_id: String,
}

/// Keeps `lease` alive: renews it every third of its time to live, on its own task (the
/// scheduler never waits for it). If it is lost (taken over, broken) or cannot be renewed
/// before it expires (the store is unreachable), `run` is cancelled: the run stops, and
/// [`Keeper::lost`] says why.
#[must_use]
pub fn keep(lease: Lease, clock: Arc<dyn Clock>, run: CancellationToken) -> Keeper {
    let stop = CancellationToken::new();
    let lost = Arc::new(Mutex::new(None));
    let run_id = lease.body.run.clone();
    let lease_id = lease.body.lease.clone();
    let task = tokio::spawn(renew_loop(lease, clock, run, stop.clone(), Arc::clone(&lost)));
    Keeper { task, stop, lost, run: run_id, lease_id }
}

async fn renew_loop(
    mut lease: Lease,
    clock: Arc<dyn Clock>,
    run: CancellationToken,
    stop: CancellationToken,
    lost: Arc<Mutex<Option<String>>>,
) -> Option<Lease> {
    let give_up = |why: String| {
        *lost.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(why);
        run.cancel();
    };
    loop {
        let every = lease.body.renew_every();
        tokio::select! {
            () = stop.cancelled() => return Some(lease),
            () = tokio::time::sleep(every) => {}
        }
        // Renew; on passing failures try again every second, until the lease would expire.
        loop {
            match lease.renew(clock.as_ref()).await {
                Ok(()) => break,
                Err(LeaseError::Lost { .. }) => {
                    give_up(format!(
                        "the lease on run {} was taken over by another process or broken with \
                         `drover unlock`; this process stopped",
                        lease.body.run
                    ));
                    return None;
                }
                Err(e) => {
                    let margin = i64::try_from(every.as_millis() / 2).unwrap_or(0);
                    if clock.now() >= lease.body.expires_at.saturating_sub(margin) {
                        give_up(format!(
                            "the lease on run {} could not be renewed before it expired ({e}); \
                             this process stopped so that another may resume the run",
                            lease.body.run
                        ));
                        return Some(lease);
                    }
                    tracing::warn!("renewing the lease failed, retrying: {e}");
                    tokio::select! {
                        () = stop.cancelled() => return Some(lease),
                        () = tokio::time::sleep(Duration::from_secs(1)) => {}
                    }
                }
            }
        }
    }
}

impl Keeper {
    /// Why the lease was lost, if it was.
    #[must_use]
    pub fn lost(&self) -> Option<String> {
        self.lost.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// The lease's id.
    #[must_use]
    pub fn lease_id(&self) -> &str {
        &self.lease_id
    }

    /// Stops renewing and releases the lease if this process still holds it.
    ///
    /// # Errors
    /// Releasing failed (the lease then expires by itself).
    pub async fn release(self) -> Result<(), LeaseError> {
        self.stop.cancel();
        match self.task.await {
            Ok(Some(lease)) => lease.release().await,
            Ok(None) => Ok(()),
            Err(_) => Err(LeaseError::Lost { run: self.run }),
        }
    }
}
