//! A journal kept as objects in a bucket.
//!
//! ```text
//! runs/<run id>/journal/00000000000000000001.jsonl   records 1..=k (the header first)
//! runs/<run id>/journal/0000000000000000000k+1.jsonl records k+1..
//! ```
//!
//! Each object holds one group of records appended together, in the journal's own line
//! format (`HASH JSON\n`, chained across objects exactly as across lines of a file), under a
//! key that carries the sequence number of its first record. Every object is written with
//! `If-None-Match: *`: two processes that both believe they hold the run both try to write the
//! same key next (each writes the key after the last group it read), and the store lets only
//! one of them. The other has lost the run and stops before any further effect.
//!
//! Appends are staged and written by one task per journal ([`Writer`]): while a group is in
//! flight, the records appended meanwhile accumulate into the next group (group commit), so
//! a busy run costs one request per round trip, not one per record.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, watch};

use crate::journal::{Entry, JournalError, MAX_LINE, verify};
use crate::store::objects::{Condition, ObjectStore, Written};

/// How many objects a reader fetches ahead.
const READ_AHEAD: usize = 8;

/// The key prefix of a run's journal objects.
pub(crate) fn journal_prefix(run_id: &str) -> String {
    format!("runs/{run_id}/journal/")
}

/// The key of the journal object whose first record is `seq`.
pub(crate) fn journal_key(run_id: &str, seq: u64) -> String {
    format!("{}{seq:020}.jsonl", journal_prefix(run_id))
}

/// The first sequence number a journal object's key names, if it is a journal key.
fn key_seq(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".jsonl")?;
    (digits.len() == 20 && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse().ok())
        .flatten()
}

/// What reading a journal's objects found.
pub(crate) struct ReadObjects {
    /// Records read.
    pub(crate) count: u64,
    /// The chain's last hash.
    pub(crate) last_hash: String,
    /// When the first object (the header) was written, by the store's clock.
    pub(crate) created: Option<crate::ports::Millis>,
}

/// Reads and verifies a run's journal objects in order, handing each entry to `sink`. There
/// is no torn tail on a bucket (an object is written whole or not at all), so a bad record
/// anywhere, a gap, an object under a key that does not match its first record, or an
/// object that is not a journal object is an error. `None` when the run has no journal object
/// at all (no such run, or one whose lease was taken but whose header was never written).
pub(crate) async fn read_each(
    objects: &Arc<dyn ObjectStore>,
    run_id: &str,
    sink: &mut (dyn FnMut(Entry) + Send),
) -> Result<Option<ReadObjects>, JournalError> {
    let prefix = journal_prefix(run_id);
    let location = |key: &str| PathBuf::from(format!("{}/{key}", objects.location()));
    let listed = objects
        .list(&prefix)
        .await
        .map_err(|e| JournalError::Store { path: location(&prefix), message: e.to_string() })?;
    let created = listed.first().and_then(|item| item.modified);
    let mut keys = Vec::with_capacity(listed.len());
    for item in listed {
        let Some(seq) = item.key.strip_prefix(&prefix).and_then(key_seq) else {
            return Err(JournalError::Foreign {
                path: location(&item.key),
                reason: "it is not a journal object (journal objects are named by the sequence \
                         number of their first record, like 00000000000000000001.jsonl)"
                    .to_owned(),
            });
        };
        if item.size > MAX_LINE as u64 * 4 {
            return Err(JournalError::Corrupt {
                path: location(&item.key),
                line: 1,
                reason: format!("{} bytes, more than any group of records", item.size),
            });
        }
        keys.push((seq, item.key));
    }
    if keys.is_empty() {
        return Ok(None);
    }
    let mut fetching: VecDeque<tokio::task::JoinHandle<_>> = VecDeque::new();
    let mut next_fetch = 0;
    let mut count = 0u64;
    let mut last_hash = crate::journal::GENESIS.to_owned();
    for (seq, key) in &keys {
        while next_fetch < keys.len() && fetching.len() < READ_AHEAD {
            let objects = Arc::clone(objects);
            let key = keys[next_fetch].1.clone();
            fetching.push_back(tokio::spawn(async move { objects.get(&key).await }));
            next_fetch += 1;
        }
        let path = location(key);
        let fetched = match fetching.pop_front() {
            Some(handle) => handle.await.map_err(|e| JournalError::Store {
                path: path.clone(),
                message: format!("reading it ended abnormally: {e}"),
            })?,
            None => continue,
        };
        let object = fetched
            .map_err(|e| JournalError::Store { path: path.clone(), message: e.to_string() })?
            .ok_or_else(|| JournalError::Corrupt {
                path: path.clone(),
                line: 1,
                reason: "the object was listed but is gone: it was deleted".to_owned(),
            })?;
        if *seq != count + 1 {
            return Err(JournalError::Corrupt {
                path,
                line: 1,
                reason: format!(
                    "it starts at record {seq} where record {} was expected: records are \
                     missing or were added",
                    count + 1
                ),
            });
        }
        if object.bytes.is_empty() {
            return Err(JournalError::Corrupt { path, line: 1, reason: "empty object".into() });
        }
        for (i, line) in object.bytes.split_inclusive(|&b| b == b'\n').enumerate() {
            let (entry, hash) = verify(line, &last_hash, count + 1).map_err(|reason| {
                JournalError::Corrupt { path: path.clone(), line: i + 1, reason }
            })?;
            if count == 0 && !matches!(entry.record, crate::journal::Record::Header(_)) {
                return Err(JournalError::NoHeader { path });
            }
            count += 1;
            last_hash = hash;
            sink(entry);
        }
    }
    Ok(Some(ReadObjects { count, last_hash, created }))
}

/// How a journal's writer behaves.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WriterOptions {
    /// How long a write keeps being retried while the store cannot be reached or fails
    /// passingly, before the journal gives up and the run stops.
    pub(crate) ride_out: Duration,
}

/// Staged records and what the writer has made of them.
#[derive(Debug, Default)]
struct Staged {
    /// Bytes of the records staged and not yet taken by the writer.
    bytes: Vec<u8>,
    /// Sequence number of the first staged record.
    first: u64,
    /// Sequence number of the last record staged (ever).
    last: u64,
    /// A staged durable record waits: write without waiting for more.
    urgent: bool,
    /// No more records (the journal was dropped, or crashed): write what is staged, then stop.
    closing: bool,
}

/// Where the writer is: the last durable record, or why it stopped.
#[derive(Debug, Clone, Default)]
struct Progress {
    durable: u64,
    failed: Option<Failure>,
    /// The writer is idle with nothing staged, or has stopped.
    idle: bool,
}

#[derive(Debug, Clone)]
enum Failure {
    Lost { seq: u64 },
    Store { message: String },
}

struct Inner {
    staged: Mutex<Staged>,
    wake: Notify,
    progress: watch::Sender<Progress>,
    location: PathBuf,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inner").field("location", &self.location).finish_non_exhaustive()
    }
}

/// The writing half of an object journal: stages records; its task writes them.
#[derive(Debug)]
pub(crate) struct Writer {
    inner: Arc<Inner>,
}

/// Waits for staged records to be durable.
#[derive(Debug, Clone)]
pub(crate) struct Waiter {
    inner: Arc<Inner>,
}

impl Writer {
    /// Starts the writing task of the journal of `run_id`, whose next record is `next_seq`.
    /// Must be called inside a tokio runtime.
    pub(crate) fn start(
        objects: Arc<dyn ObjectStore>,
        run_id: &str,
        next_seq: u64,
        options: WriterOptions,
    ) -> Writer {
        let location = PathBuf::from(format!("{}/{}", objects.location(), journal_prefix(run_id)));
        let (progress, _) =
            watch::channel(Progress { durable: next_seq - 1, failed: None, idle: true });
        let inner = Arc::new(Inner {
            staged: Mutex::new(Staged { first: next_seq, last: next_seq - 1, ..Staged::default() }),
            wake: Notify::new(),
            progress,
            location,
        });
        tokio::spawn(write_loop(Arc::clone(&inner), objects, run_id.to_owned(), options));
        Writer { inner }
    }

    /// Stages records `first..=last` (their encoded lines). `urgent`: a caller will wait for
    /// them; write now rather than with the next group.
    pub(crate) fn stage(
        &self,
        first: u64,
        last: u64,
        bytes: Vec<u8>,
        urgent: bool,
    ) -> Result<(), JournalError> {
        if let Some(failure) = self.inner.progress.borrow().failed.clone() {
            return Err(failure.into_error(&self.inner.location));
        }
        let mut staged = lock(&self.inner.staged);
        if staged.bytes.is_empty() {
            staged.first = first;
        }
        staged.bytes.extend_from_slice(&bytes);
        staged.last = last;
        if urgent {
            staged.urgent = true;
            // Under the staging lock, so that the writer's "idle" never overtakes this.
            self.inner.progress.send_modify(|p| p.idle = false);
            self.inner.wake.notify_one();
        }
        Ok(())
    }

    /// A simulated crash: what is staged is written, nothing more is taken.
    pub(crate) fn crash(&self) {
        self.close();
    }

    fn close(&self) {
        let mut staged = lock(&self.inner.staged);
        staged.closing = true;
        self.inner.progress.send_modify(|p| p.idle = false);
        self.inner.wake.notify_one();
    }

    pub(crate) fn waiter(&self) -> Waiter {
        Waiter { inner: Arc::clone(&self.inner) }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        // What was staged is still written: a dropped journal loses no record it accepted.
        self.close();
    }
}

impl Waiter {
    pub(crate) async fn until(&self, seq: u64) -> Result<(), JournalError> {
        let mut rx = self.inner.progress.subscribe();
        let progress = rx
            .wait_for(|p| p.durable >= seq || p.failed.is_some())
            .await
            .map(|p| p.clone())
            .unwrap_or_else(|_| Progress {
                failed: Some(Failure::Store { message: "the journal's writer stopped".into() }),
                ..Progress::default()
            });
        match progress.failed {
            Some(failure) if progress.durable < seq => {
                Err(failure.into_error(&self.inner.location))
            }
            _ => Ok(()),
        }
    }

    pub(crate) async fn settle(&self) {
        let mut rx = self.inner.progress.subscribe();
        let _ = rx.wait_for(|p| p.idle || p.failed.is_some()).await;
    }
}

impl Failure {
    fn into_error(self, location: &std::path::Path) -> JournalError {
        match self {
            Failure::Lost { seq } => JournalError::Lost { path: location.to_owned(), seq },
            Failure::Store { message } => {
                JournalError::Store { path: location.to_owned(), message }
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The writer task: takes what is staged, writes it as one object, says so; until closed or
/// a write fails.
async fn write_loop(
    inner: Arc<Inner>,
    objects: Arc<dyn ObjectStore>,
    run_id: String,
    options: WriterOptions,
) {
    loop {
        let batch = {
            let mut staged = lock(&inner.staged);
            if staged.bytes.is_empty() || (!staged.urgent && !staged.closing) {
                // Nothing to write now (lazy records wait for the next durable one).
                inner.progress.send_modify(|p| p.idle = true);
                Err(staged.closing)
            } else {
                staged.urgent = false;
                Ok((staged.first, staged.last, std::mem::take(&mut staged.bytes)))
            }
        };
        let batch = match batch {
            Ok(batch) => batch,
            Err(true) => return,
            Err(false) => {
                inner.wake.notified().await;
                continue;
            }
        };
        let (first, last, bytes) = batch;
        let key = journal_key(&run_id, first);
        match write_group(objects.as_ref(), &key, first, bytes, options).await {
            Ok(()) => inner.progress.send_modify(|p| p.durable = last),
            Err(failure) => {
                tracing::warn!(key = %key, "journal write failed: {failure:?}");
                inner.progress.send_modify(|p| {
                    p.failed = Some(failure);
                    p.idle = true;
                });
                return;
            }
        }
    }
}

/// Writes one group under its key, fenced by `If-None-Match: *`. A conflict is either this
/// writer's own earlier attempt that landed without its answer arriving (the object holds
/// exactly these bytes) or another writer's group: the run is lost.
async fn write_group(
    objects: &dyn ObjectStore,
    key: &str,
    seq: u64,
    bytes: Vec<u8>,
    options: WriterOptions,
) -> Result<(), Failure> {
    let started = tokio::time::Instant::now();
    let mut backoff = Duration::from_millis(200);
    loop {
        let outcome = match objects.put(key, bytes.clone(), Condition::Absent).await {
            Ok(Written::Done { .. }) => return Ok(()),
            Ok(Written::Conflict) => match objects.get(key).await {
                Ok(Some(object)) if object.bytes == bytes => return Ok(()),
                Ok(Some(_)) => return Err(Failure::Lost { seq }),
                // A conflicting write still in progress (409): look again.
                Ok(None) => None,
                Err(e) => Some(e),
            },
            Err(e) => Some(e),
        };
        if let Some(e) = &outcome
            && !e.kind.is_retryable()
        {
            return Err(Failure::Store { message: e.to_string() });
        }
        if started.elapsed() >= options.ride_out {
            let message = outcome
                .map_or_else(|| "another writer kept the key busy".to_owned(), |e| e.to_string());
            return Err(Failure::Store {
                message: format!("{message} (kept failing for {}s)", options.ride_out.as_secs()),
            });
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}
