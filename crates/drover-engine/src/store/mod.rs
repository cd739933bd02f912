//! Where runs' state lives: a local directory (the embedded default) or a bucket (Amazon S3),
//! chosen by `--state URL`.
//!
//! Both hold the same journal (the same records, hash chain and checks); they differ in how
//! a record becomes durable and how one run is kept to one process:
//!
//! | | directory | bucket |
//! |---|---|---|
//! | journal | `runs/<id>/journal.jsonl`, fsynced per record | `runs/<id>/journal/<seq>.jsonl`, one object per group, `If-None-Match: *` |
//! | one process per run | an OS lock on the directory | a lease per run ([`lease`]), and the fenced appends |
//! | torn last record | cut off (a crash mid-write) | impossible (objects are whole): refused |
//!
//! - [`objects`]: the port a bucket is reached through (implemented in `drover-aws`);
//! - `remote.rs`: the journal on objects, and its group-committing writer;
//! - [`lease`]: leases, their renewal and takeover.

pub mod lease;
pub mod objects;
pub(crate) mod remote;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub use objects::{Condition, Listed, Object, ObjectStore, StoreFacts, Versioning, Written};

use crate::error::EngineError;
use crate::journal::{Entry, Journal, Record, TornTail};
use crate::ports::Millis;
use crate::run::{self, Opened, Replaying};
use crate::state::{Header, RunState};

/// Where the state is, as `--state` names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A local directory (`.drover/`, `file:DIR`, or any path).
    Dir(PathBuf),
    /// An S3 bucket and key prefix (`s3://bucket/prefix?region=eu-west-1`).
    S3 {
        /// The bucket.
        bucket: String,
        /// The key prefix, without slashes at either end (may be empty).
        prefix: String,
        /// The bucket's region, when given (else the bucket's location is asked for).
        region: Option<String>,
    },
}

impl Location {
    /// Reads a `--state` value: `s3://bucket[/prefix][?region=REGION]`, `file:DIR`, or a
    /// directory.
    ///
    /// # Errors
    /// A sentence saying what is wrong with it.
    pub fn parse(text: &str) -> Result<Location, String> {
        if let Some(rest) = text.strip_prefix("s3://") {
            let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
            let (bucket, prefix) = path.split_once('/').unwrap_or((path, ""));
            check_bucket(bucket).map_err(|why| format!("`{text}`: {why}"))?;
            let mut region = None;
            for pair in query.split('&').filter(|p| !p.is_empty()) {
                match pair.split_once('=') {
                    Some(("region", r))
                        if !r.is_empty()
                            && r.bytes().all(|b| {
                                b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'
                            }) =>
                    {
                        region = Some(r.to_owned());
                    }
                    _ => {
                        return Err(format!(
                            "`{text}`: `{pair}` is not understood; the only parameter is \
                             `region=REGION`, e.g. s3://{bucket}/drover?region=eu-west-1"
                        ));
                    }
                }
            }
            let prefix = prefix.trim_matches('/');
            if prefix.split('/').any(|s| s == "." || s == "..") || prefix.contains("//") {
                return Err(format!("`{text}`: the key prefix has an empty, `.` or `..` segment"));
            }
            return Ok(Location::S3 {
                bucket: bucket.to_owned(),
                prefix: prefix.to_owned(),
                region,
            });
        }
        let dir = text.strip_prefix("file:").unwrap_or(text);
        if let Some((scheme, _)) = dir.split_once("://") {
            return Err(format!(
                "`{text}`: `{scheme}://` is not a state store drover knows; use a directory, \
                 `file:DIR` or `s3://bucket/prefix`"
            ));
        }
        if dir.is_empty() {
            return Err("the state directory is empty; name one, e.g. `.drover`".to_owned());
        }
        Ok(Location::Dir(PathBuf::from(dir)))
    }

    /// The location as a URL-like string (`s3://bucket/prefix`, or the directory).
    #[must_use]
    pub fn display(&self) -> String {
        match self {
            Location::Dir(dir) => dir.display().to_string(),
            Location::S3 { bucket, prefix, .. } if prefix.is_empty() => format!("s3://{bucket}"),
            Location::S3 { bucket, prefix, .. } => format!("s3://{bucket}/{prefix}"),
        }
    }
}

/// S3's bucket naming rules (general purpose buckets).
fn check_bucket(bucket: &str) -> Result<(), String> {
    let ok = (3..=63).contains(&bucket.len())
        && bucket
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
        && bucket.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        && bucket.bytes().last().is_some_and(|b| b.is_ascii_alphanumeric())
        && !bucket.contains("..");
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{bucket}` is not an S3 bucket name (3 to 63 lowercase letters, digits, `.` and `-`, \
             starting and ending with a letter or digit)"
        ))
    }
}

/// A bucket that holds runs' state.
#[derive(Clone)]
pub struct Bucket {
    /// The bucket, through its port.
    pub objects: Arc<dyn ObjectStore>,
    /// How long a journal write rides out a store that fails or cannot be reached before the
    /// run stops (cleanly: `resume` continues it).
    pub ride_out: Duration,
}

/// Where runs' state lives.
#[derive(Clone)]
pub enum Store {
    /// A local directory.
    Dir(PathBuf),
    /// A bucket.
    Bucket(Bucket),
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Store({})", self.location())
    }
}

impl Store {
    /// Where it is, for messages.
    #[must_use]
    pub fn location(&self) -> String {
        match self {
            Store::Dir(dir) => dir.display().to_string(),
            Store::Bucket(bucket) => bucket.objects.location(),
        }
    }

    /// The local directory, for a directory store.
    #[must_use]
    pub fn dir(&self) -> Option<&Path> {
        match self {
            Store::Dir(dir) => Some(dir),
            Store::Bucket(_) => None,
        }
    }

    fn bucket_path(bucket: &Bucket, key: &str) -> PathBuf {
        PathBuf::from(format!("{}/{key}", bucket.objects.location()))
    }

    /// Where a run's journal objects are, for messages.
    fn journal_location(bucket: &Bucket, run_id: &str) -> PathBuf {
        Self::bucket_path(bucket, &remote::journal_prefix(run_id))
    }

    /// Whether a run has a journal in the store.
    ///
    /// # Errors
    /// The store cannot be read.
    pub async fn exists(&self, run_id: &str) -> Result<bool, EngineError> {
        match self {
            Store::Dir(dir) => Ok(run::journal_path(dir, run_id).exists()),
            Store::Bucket(bucket) => {
                let prefix = remote::journal_prefix(run_id);
                let listed = bucket.objects.list(&prefix).await.map_err(|e| {
                    crate::journal::JournalError::Store {
                        path: Self::bucket_path(bucket, &prefix),
                        message: e.to_string(),
                    }
                })?;
                Ok(!listed.is_empty())
            }
        }
    }

    /// Creates a new run's journal holding `header`, durable when this returns.
    ///
    /// # Errors
    /// The run exists already (another process may have created it at the same moment), or
    /// the journal cannot be written.
    pub async fn create(
        &self,
        header: Header,
        now: Millis,
    ) -> Result<(Journal, RunState), EngineError> {
        let bucket = match self {
            Store::Dir(dir) => return run::create(dir, header, now),
            Store::Bucket(bucket) => bucket,
        };
        let exists = || {
            EngineError::Refused(format!(
                "run `{}` exists already in {}; resume it with `drover resume {}`",
                header.run_id,
                self.location(),
                header.run_id
            ))
        };
        if self.exists(&header.run_id).await? {
            return Err(exists());
        }
        let mut journal = Self::journal_on(bucket, &header.run_id, 0, String::new());
        journal.append(now, Record::Header(Box::new(header.clone())))?;
        match journal.flush().await {
            Ok(()) => Ok((journal, RunState::new(header, now))),
            Err(crate::journal::JournalError::Lost { .. }) => Err(exists()),
            Err(e) => Err(e.into()),
        }
    }

    /// A journal of `run_id` on `bucket` whose next record follows `count` verified ones,
    /// with its writer started.
    fn journal_on(bucket: &Bucket, run_id: &str, count: u64, last_hash: String) -> Journal {
        let writer = remote::Writer::start(
            Arc::clone(&bucket.objects),
            run_id,
            count + 1,
            remote::WriterOptions { ride_out: bucket.ride_out },
        );
        let location = Self::journal_location(bucket, run_id).display().to_string();
        Journal::on_objects(location, writer, count, last_hash)
    }

    /// Opens a run's journal for appending and replays it.
    ///
    /// # Errors
    /// Unknown run, unreadable, corrupt or foreign journal, or records that do not replay.
    pub async fn open(&self, run_id: &str) -> Result<Opened, EngineError> {
        let bucket = match self {
            Store::Dir(dir) => return run::open(dir, run_id),
            Store::Bucket(bucket) => bucket,
        };
        let mut entries: Vec<Entry> = Vec::new();
        let read =
            remote::read_each(&bucket.objects, run_id, &mut |entry| entries.push(entry)).await?;
        let Some(read) = read else { return Err(self.unknown(run_id)) };
        let state = run::replay(&Self::journal_location(bucket, run_id), run_id, &entries)?;
        let journal = Self::journal_on(bucket, run_id, read.count, read.last_hash);
        Ok(Opened { journal, state, torn: None })
    }

    fn unknown(&self, run_id: &str) -> EngineError {
        EngineError::Refused(format!(
            "no run `{run_id}` in {} (see `drover runs`)",
            self.location()
        ))
    }

    /// Reads a run without opening it for writing (`status`, `report`, `runs`, `sweep`).
    ///
    /// # Errors
    /// As [`Store::open`].
    pub async fn read(&self, run_id: &str) -> Result<(RunState, Option<TornTail>), EngineError> {
        self.read_if_exists(run_id).await?.ok_or_else(|| self.unknown(run_id))
    }

    /// As [`Store::read`], with `None` for a run that has no journal in the store.
    ///
    /// # Errors
    /// As [`Store::open`], but for an unknown run.
    pub async fn read_if_exists(
        &self,
        run_id: &str,
    ) -> Result<Option<(RunState, Option<TornTail>)>, EngineError> {
        match self {
            Store::Dir(dir) if !run::journal_path(dir, run_id).exists() => Ok(None),
            Store::Dir(dir) => run::read(dir, run_id).map(Some),
            Store::Bucket(bucket) => {
                Ok(Self::read_objects(bucket, run_id).await?.map(|(state, _)| (state, None)))
            }
        }
    }

    /// Reads a run's journal objects into its state, with when its journal was created;
    /// `None` when it has none.
    async fn read_objects(
        bucket: &Bucket,
        run_id: &str,
    ) -> Result<Option<(RunState, Option<Millis>)>, EngineError> {
        let mut replaying = Replaying::default();
        let read =
            remote::read_each(&bucket.objects, run_id, &mut |entry| replaying.feed(&entry)).await?;
        let Some(read) = read else { return Ok(None) };
        let state = replaying.finish(&Self::journal_location(bucket, run_id), run_id)?;
        Ok(Some((state, read.created)))
    }

    /// Every run in the store, oldest first, with its state (or why it cannot be read).
    ///
    /// # Errors
    /// The store cannot be listed.
    pub async fn list(&self) -> Result<Vec<(String, Result<RunState, String>)>, EngineError> {
        let bucket = match self {
            Store::Dir(dir) => return Ok(run::list(dir)),
            Store::Bucket(bucket) => bucket,
        };
        let ids = bucket.objects.list_dirs("runs/").await.map_err(|e| {
            crate::journal::JournalError::Store {
                path: Self::bucket_path(bucket, "runs/"),
                message: e.to_string(),
            }
        })?;
        let mut runs = Vec::new();
        for id in ids {
            if run::check_run_id(&id).is_err() {
                continue;
            }
            match Self::read_objects(bucket, &id).await {
                Ok(Some((state, created))) => runs.push((created.unwrap_or(0), id, Ok(state))),
                // A lease alone (a run being created) has no journal: it is not listed.
                Ok(None) => {}
                Err(e) => runs.push((0, id, Err(e.to_string()))),
            }
        }
        runs.sort_by(|(a, id_a, _), (b, id_b, _)| (a, id_a).cmp(&(b, id_b)));
        Ok(runs.into_iter().map(|(_, id, state)| (id, state)).collect())
    }
}
