//! An in-memory bucket behind the engine's object store port, modelled on S3 where the port
//! depends on it: conditional writes (`If-None-Match: *`, `If-Match`), entity tags that change
//! on every write, conditional deletes, listings in key order in pages, and "directories" of
//! a prefix. No real I/O and no timers: it runs on the paused test clock.
//!
//! Fault knobs for the tests: fail the next N calls of an operation with an error kind, lose
//! the answers of puts that were applied (S3 wrote the object, the client saw a reset
//! connection), count the requests per operation. Raw access (`raw_*`) edits objects behind
//! the port's back, as someone with the bucket's console would.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use drover_engine::ports::{CloudResult, Millis};
use drover_engine::store::{
    Condition, Listed, Object, ObjectStore, StoreFacts, Versioning, Written,
};
use drover_engine::{Clock, CloudError, ErrorKind, SystemClock};

/// The port's operations, as S3 requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Op {
    /// GetObject.
    Get,
    /// PutObject.
    Put,
    /// DeleteObject.
    Delete,
    /// ListObjectsV2 (one per page) for `list`.
    List,
    /// ListObjectsV2 with a delimiter (one per page) for `list_dirs`.
    ListDirs,
    /// GetBucketLocation, GetBucketVersioning, GetBucketEncryption.
    Facts,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Get => "GetObject",
            Op::Put => "PutObject",
            Op::Delete => "DeleteObject",
            Op::List | Op::ListDirs => "ListObjectsV2",
            Op::Facts => "GetBucketVersioning",
        }
    }
}

#[derive(Debug, Clone)]
struct Stored {
    bytes: Vec<u8>,
    etag: String,
    modified: Millis,
}

#[derive(Debug, Default)]
struct Inner {
    objects: BTreeMap<String, Stored>,
    /// Bumped on every write: entity tags are never reused.
    writes: u64,
    /// Requests per operation (a listing counts one per page).
    requests: BTreeMap<Op, u64>,
    /// Calls of an operation still to fail, and how.
    failing: BTreeMap<Op, (u64, ErrorKind)>,
    /// Puts still to apply and then report as failed.
    lost_answers: u64,
    /// Puts still to apply whose answer is lost and whose retry (by the SDK, within the same
    /// call) fails the condition the first attempt met.
    retried_answers: u64,
    /// Puts whose answer was lost (applied, reported as an error).
    answers_lost: u64,
    /// Conditional writes refused (412).
    conflicts: u64,
}

/// An S3 bucket in memory.
pub(crate) struct MemStore {
    inner: Mutex<Inner>,
    clock: Arc<dyn Clock>,
    page_size: usize,
}

/// S3's most keys per ListObjectsV2 page.
const S3_PAGE: usize = 1000;

impl MemStore {
    /// An empty bucket whose clock stamps objects' modification times.
    pub(crate) fn new(clock: Arc<dyn Clock>) -> Arc<MemStore> {
        Arc::new(MemStore { inner: Mutex::default(), clock, page_size: S3_PAGE })
    }

    /// An empty bucket with its own clock, starting at the tests' T0 and following tokio's
    /// (paused) time.
    pub(crate) fn standalone() -> Arc<MemStore> {
        MemStore::new(Arc::new(SystemClock::starting_at(crate::T0)))
    }

    /// An empty bucket that lists `page_size` keys per request.
    pub(crate) fn paged(clock: Arc<dyn Clock>, page_size: usize) -> Arc<MemStore> {
        Arc::new(MemStore { inner: Mutex::default(), clock, page_size: page_size.max(1) })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The next `n` calls of `op` fail with `kind`.
    pub(crate) fn fail_next(&self, op: Op, n: u64, kind: ErrorKind) {
        self.lock().failing.insert(op, (n, kind));
    }

    /// Every fault knob off.
    pub(crate) fn heal(&self) {
        let mut inner = self.lock();
        inner.failing.clear();
        inner.lost_answers = 0;
        inner.retried_answers = 0;
    }

    /// Calls of `op` still to fail.
    pub(crate) fn failures_left(&self, op: Op) -> u64 {
        self.lock().failing.get(&op).map_or(0, |(n, _)| *n)
    }

    /// The next `n` puts are applied, their answer is lost, and the SDK's retry of the same
    /// request (two requests in all) fails the condition the first one met: the call answers
    /// [`Written::Conflict`], as S3 through the SDK does after a timeout.
    pub(crate) fn lose_answers_then_retry(&self, n: u64) {
        self.lock().retried_answers = n;
    }

    /// A copy of the bucket as it is now (the same objects and entity tags).
    pub(crate) fn snapshot(&self) -> Arc<MemStore> {
        let inner = self.lock();
        Arc::new(MemStore {
            inner: Mutex::new(Inner {
                objects: inner.objects.clone(),
                writes: inner.writes,
                ..Inner::default()
            }),
            clock: Arc::clone(&self.clock),
            page_size: self.page_size,
        })
    }

    /// The next `n` puts are applied (when their condition holds) but answered with an error,
    /// as when the connection drops after S3 wrote the object.
    pub(crate) fn lose_answers(&self, n: u64) {
        self.lock().lost_answers = n;
    }

    /// Puts whose answer was lost so far.
    pub(crate) fn answers_lost(&self) -> u64 {
        self.lock().answers_lost
    }

    /// Conditional writes and deletes refused so far.
    pub(crate) fn conflicts(&self) -> u64 {
        self.lock().conflicts
    }

    /// Requests of `op` so far.
    pub(crate) fn requests(&self, op: Op) -> u64 {
        self.lock().requests.get(&op).copied().unwrap_or(0)
    }

    /// Requests per operation so far.
    pub(crate) fn all_requests(&self) -> BTreeMap<Op, u64> {
        self.lock().requests.clone()
    }

    /// Every key under `prefix`, in order (no request is counted).
    pub(crate) fn keys(&self, prefix: &str) -> Vec<String> {
        self.lock().objects.keys().filter(|k| k.starts_with(prefix)).cloned().collect()
    }

    /// An object's bytes, behind the port's back.
    pub(crate) fn raw_get(&self, key: &str) -> Option<Vec<u8>> {
        self.lock().objects.get(key).map(|s| s.bytes.clone())
    }

    /// Writes an object unconditionally, behind the port's back (a new entity tag).
    pub(crate) fn raw_put(&self, key: &str, bytes: Vec<u8>) {
        let now = self.clock.now();
        let mut inner = self.lock();
        let etag = Self::etag(&mut inner);
        inner.objects.insert(key.to_owned(), Stored { bytes, etag, modified: now });
    }

    /// Removes an object behind the port's back; whether there was one.
    pub(crate) fn raw_remove(&self, key: &str) -> bool {
        self.lock().objects.remove(key).is_some()
    }

    fn etag(inner: &mut Inner) -> String {
        inner.writes += 1;
        // Quoted, like S3's (an MD5 in hex for a single-part upload).
        format!("\"{:032x}\"", inner.writes.wrapping_mul(0x9E37_79B9_7F4A_7C15))
    }

    /// Counts a request of `op`, and fails it if a fault says so.
    fn request(&self, inner: &mut Inner, op: Op, key: &str) -> CloudResult<()> {
        *inner.requests.entry(op).or_default() += 1;
        if let Some((left, kind)) = inner.failing.get_mut(&op)
            && *left > 0
        {
            *left -= 1;
            let kind = *kind;
            let message = match kind {
                ErrorKind::Unreachable => format!(
                    "dispatch failure: io error: error trying to connect: tcp connect error: \
                     Connection refused (os error 111) ({key})"
                ),
                ErrorKind::Throttled => {
                    format!("SlowDown: Please reduce your request rate ({key})")
                }
                _ => format!("InternalError: We encountered an internal error ({key})"),
            };
            return Err(CloudError::new(kind, op.name(), message));
        }
        Ok(())
    }
}

#[async_trait]
impl ObjectStore for MemStore {
    fn location(&self) -> String {
        "s3://test-bucket/drover".to_owned()
    }

    async fn get(&self, key: &str) -> CloudResult<Option<Object>> {
        let mut inner = self.lock();
        self.request(&mut inner, Op::Get, key)?;
        Ok(inner.objects.get(key).map(|s| Object {
            bytes: s.bytes.clone(),
            etag: s.etag.clone(),
            modified: Some(s.modified),
        }))
    }

    async fn put(&self, key: &str, bytes: Vec<u8>, condition: Condition) -> CloudResult<Written> {
        let now = self.clock.now();
        let mut inner = self.lock();
        self.request(&mut inner, Op::Put, key)?;
        let holds = match (&condition, inner.objects.get(key)) {
            (Condition::Absent, existing) => existing.is_none(),
            (Condition::Matches(etag), Some(existing)) => existing.etag == *etag,
            (Condition::Matches(_), None) => false,
        };
        if !holds {
            inner.conflicts += 1;
            return Ok(Written::Conflict);
        }
        let etag = Self::etag(&mut inner);
        inner.objects.insert(key.to_owned(), Stored { bytes, etag: etag.clone(), modified: now });
        if inner.lost_answers > 0 {
            inner.lost_answers -= 1;
            inner.answers_lost += 1;
            return Err(CloudError::new(
                ErrorKind::Transient,
                "PutObject",
                format!("connection reset by peer after the request was sent ({key})"),
            ));
        }
        if inner.retried_answers > 0 {
            // The retry is a second request; its condition fails against the first's write.
            inner.retried_answers -= 1;
            inner.answers_lost += 1;
            *inner.requests.entry(Op::Put).or_default() += 1;
            inner.conflicts += 1;
            return Ok(Written::Conflict);
        }
        Ok(Written::Done { etag })
    }

    async fn delete(&self, key: &str, if_match: Option<&str>) -> CloudResult<Written> {
        let mut inner = self.lock();
        self.request(&mut inner, Op::Delete, key)?;
        match (inner.objects.get(key), if_match) {
            (None, _) => return Ok(Written::Done { etag: String::new() }),
            (Some(existing), Some(etag)) if existing.etag != etag => {
                inner.conflicts += 1;
                return Ok(Written::Conflict);
            }
            _ => {}
        }
        inner.objects.remove(key);
        Ok(Written::Done { etag: String::new() })
    }

    async fn list(&self, prefix: &str) -> CloudResult<Vec<Listed>> {
        let mut inner = self.lock();
        let all: Vec<Listed> = inner
            .objects
            .range(prefix.to_owned()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, s)| Listed {
                key: k.clone(),
                size: s.bytes.len() as u64,
                modified: Some(s.modified),
            })
            .collect();
        // One request per page, as ListObjectsV2 with continuation tokens.
        let mut out = Vec::with_capacity(all.len());
        let mut pages = all.chunks(self.page_size).peekable();
        if pages.peek().is_none() {
            self.request(&mut inner, Op::List, prefix)?;
        }
        for page in pages {
            self.request(&mut inner, Op::List, prefix)?;
            out.extend_from_slice(page);
        }
        Ok(out)
    }

    async fn list_dirs(&self, prefix: &str) -> CloudResult<Vec<String>> {
        let mut inner = self.lock();
        let dirs: BTreeSet<String> = inner
            .objects
            .range(prefix.to_owned()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .filter_map(|(k, _)| {
                let rest = &k[prefix.len()..];
                rest.split_once('/').map(|(dir, _)| dir.to_owned())
            })
            .collect();
        let pages = dirs.len().div_ceil(self.page_size).max(1);
        for _ in 0..pages {
            self.request(&mut inner, Op::ListDirs, prefix)?;
        }
        Ok(dirs.into_iter().collect())
    }

    async fn facts(&self) -> CloudResult<StoreFacts> {
        let mut inner = self.lock();
        self.request(&mut inner, Op::Facts, "")?;
        Ok(StoreFacts {
            region: "us-east-1".to_owned(),
            versioning: Versioning::Enabled,
            default_encryption: Some("aws:kms".to_owned()),
        })
    }
}

/// The store's own behaviour, as the engine relies on it.
mod model {
    use super::*;

    fn bytes(s: &str) -> Vec<u8> {
        s.as_bytes().to_vec()
    }

    #[tokio::test(start_paused = true)]
    async fn conditional_writes_and_deletes_behave_like_s3() {
        let s = MemStore::standalone();
        let Written::Done { etag: first } =
            s.put("a", bytes("1"), Condition::Absent).await.unwrap()
        else {
            panic!("a free key is written")
        };
        assert!(first.starts_with('"') && first.ends_with('"') && first.len() > 2, "{first}");
        assert_eq!(s.put("a", bytes("2"), Condition::Absent).await.unwrap(), Written::Conflict);
        assert_eq!(
            s.get("a").await.unwrap().unwrap().bytes,
            bytes("1"),
            "a refused write wrote nothing"
        );
        // If-Match: only on the current entity tag; a missing key never matches.
        let Written::Done { etag: second } =
            s.put("a", bytes("2"), Condition::Matches(first.clone())).await.unwrap()
        else {
            panic!("the current etag matches")
        };
        assert_ne!(first, second, "every write changes the entity tag");
        // Even the same bytes again get a new tag.
        let Written::Done { etag: third } =
            s.put("a", bytes("2"), Condition::Matches(second.clone())).await.unwrap()
        else {
            panic!()
        };
        assert_ne!(second, third);
        assert_eq!(
            s.put("a", bytes("3"), Condition::Matches(first.clone())).await.unwrap(),
            Written::Conflict
        );
        assert_eq!(
            s.put("b", bytes("3"), Condition::Matches(third.clone())).await.unwrap(),
            Written::Conflict
        );
        assert!(s.get("b").await.unwrap().is_none());
        assert_eq!(s.get("a").await.unwrap().unwrap().etag, third);
        // Delete with If-Match; a missing key is done.
        assert_eq!(s.delete("a", Some(&first)).await.unwrap(), Written::Conflict);
        assert!(s.get("a").await.unwrap().is_some());
        assert!(matches!(s.delete("a", Some(&third)).await.unwrap(), Written::Done { .. }));
        assert!(s.get("a").await.unwrap().is_none());
        assert!(matches!(s.delete("a", Some(&third)).await.unwrap(), Written::Done { .. }));
        assert!(matches!(s.delete("zzz", None).await.unwrap(), Written::Done { .. }));
        assert_eq!(s.conflicts(), 4);
    }

    #[tokio::test(start_paused = true)]
    async fn listings_are_in_key_order_in_pages_and_dirs_are_run_ids() {
        let clock: Arc<dyn Clock> = Arc::new(SystemClock::starting_at(crate::T0));
        let s = MemStore::paged(clock, 2);
        for key in [
            "runs/b/journal/2.jsonl",
            "runs/a/lease.json",
            "runs/b/journal/1.jsonl",
            "runs/c/journal/1.jsonl",
            "runsx/d/1",
            "other",
        ] {
            s.raw_put(key, bytes(key));
        }
        let listed = s.list("runs/b/").await.unwrap();
        let keys: Vec<&str> = listed.iter().map(|l| l.key.as_str()).collect();
        assert_eq!(keys, ["runs/b/journal/1.jsonl", "runs/b/journal/2.jsonl"]);
        assert_eq!(listed[0].size, "runs/b/journal/1.jsonl".len() as u64);
        assert_eq!(listed[0].modified, Some(crate::T0));
        assert_eq!(s.requests(Op::List), 1);
        assert_eq!(s.list("runs/").await.unwrap().len(), 4);
        assert_eq!(s.requests(Op::List), 3, "4 keys in pages of 2");
        assert!(s.list("nothing/").await.unwrap().is_empty());
        assert_eq!(s.requests(Op::List), 4, "an empty listing is a request too");
        assert_eq!(s.list_dirs("runs/").await.unwrap(), ["a", "b", "c"]);
    }

    #[tokio::test(start_paused = true)]
    async fn faults_fail_the_next_calls_and_lost_answers_are_applied() {
        let s = MemStore::standalone();
        s.fail_next(Op::Put, 2, ErrorKind::Unreachable);
        for _ in 0..2 {
            let e = s.put("k", bytes("x"), Condition::Absent).await.unwrap_err();
            assert_eq!(e.kind, ErrorKind::Unreachable);
            assert!(e.to_string().contains("PutObject"), "{e}");
        }
        assert!(s.raw_get("k").is_none(), "a failed request wrote nothing");
        assert!(s.get("k").await.unwrap().is_none(), "gets were not failed");
        s.lose_answers(1);
        let e = s.put("k", bytes("x"), Condition::Absent).await.unwrap_err();
        assert_eq!(e.kind, ErrorKind::Transient);
        assert_eq!(s.raw_get("k"), Some(bytes("x")), "the put was applied");
        assert_eq!(s.put("k", bytes("x"), Condition::Absent).await.unwrap(), Written::Conflict);
        assert_eq!(s.answers_lost(), 1);
        assert_eq!(s.requests(Op::Put), 4);
        assert_eq!(s.requests(Op::Get), 1);
        s.lose_answers_then_retry(1);
        assert_eq!(s.put("j", bytes("y"), Condition::Absent).await.unwrap(), Written::Conflict);
        assert_eq!(s.raw_get("j"), Some(bytes("y")), "the first attempt was applied");
        assert_eq!(s.requests(Op::Put), 6, "two attempts");
        s.fail_next(Op::Get, 1, ErrorKind::Transient);
        assert!(s.get("k").await.is_err());
        assert!(s.get("k").await.is_ok());
        let facts = s.facts().await.unwrap();
        assert_eq!((facts.region.as_str(), facts.versioning), ("us-east-1", Versioning::Enabled));
    }
}
