//! The object store port: what a run's state needs from a bucket (Amazon S3).
//!
//! Implemented by `drover-aws` (S3, through the official SDK) and by tests (in memory). Keys
//! are relative to the store's prefix (`runs/<run id>/journal/00000000000000000001.jsonl`);
//! the implementation adds the prefix. Every write is conditional where the caller asks: S3's
//! own conditional writes (`If-None-Match: *`, `If-Match: <ETag>`) are what fence two
//! writers, not anything drover keeps.

use async_trait::async_trait;

use crate::ports::{CloudResult, Millis};

/// An object read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Object {
    /// Its bytes.
    pub bytes: Vec<u8>,
    /// Its entity tag, as the store returns it (quotes included), for `If-Match`.
    pub etag: String,
    /// When it was last written (the store's clock).
    pub modified: Option<Millis>,
}

/// An object in a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// Its key, relative to the store's prefix.
    pub key: String,
    /// Its size in bytes.
    pub size: u64,
    /// When it was last written (the store's clock).
    pub modified: Option<Millis>,
}

/// The condition of a write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    /// Only if no object has the key (`If-None-Match: *`).
    Absent,
    /// Only if the object's entity tag is this one (`If-Match`).
    Matches(String),
}

/// What a conditional write or delete did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Written {
    /// Done; the new object's entity tag (empty after a delete).
    Done {
        /// The entity tag of what was written.
        etag: String,
    },
    /// The condition did not hold (`412 Precondition Failed`, or `409
    /// ConditionalRequestConflict`: another write to the key was in progress). Nothing was
    /// written by this request.
    Conflict,
}

/// Whether a bucket keeps versions of overwritten and deleted objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Versioning {
    /// On.
    Enabled,
    /// Turned on once, now suspended.
    Suspended,
    /// Never turned on.
    Off,
}

/// What preflight checks about the store's bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreFacts {
    /// The bucket's region.
    pub region: String,
    /// Its versioning.
    pub versioning: Versioning,
    /// The default encryption of new objects (`aws:kms`, `AES256`), when it can be read.
    pub default_encryption: Option<String>,
}

/// A bucket (and prefix) that holds runs' state.
///
/// Implementations retry throttling and passing faults a bounded number of times, and
/// classify what remains into [`crate::ErrorKind`]s like the cloud ports. A conditional
/// request that fails its condition is [`Written::Conflict`], never an error.
#[async_trait]
pub trait ObjectStore: Send + Sync {
    /// Where the store is, for messages: `s3://bucket/prefix`.
    fn location(&self) -> String;

    /// Reads an object; `None` when no object has the key.
    async fn get(&self, key: &str) -> CloudResult<Option<Object>>;

    /// Writes an object under a condition, encrypted and with a checksum the store verifies.
    async fn put(&self, key: &str, bytes: Vec<u8>, condition: Condition) -> CloudResult<Written>;

    /// Deletes an object, only if its entity tag is `if_match` when one is given. Deleting
    /// an object that does not exist is `Done`.
    async fn delete(&self, key: &str, if_match: Option<&str>) -> CloudResult<Written>;

    /// Every object whose key starts with `prefix`, in key order (all pages).
    async fn list(&self, prefix: &str) -> CloudResult<Vec<Listed>>;

    /// The names directly under `prefix` that have objects below them (`runs/` lists the
    /// run ids), in order (all pages).
    async fn list_dirs(&self, prefix: &str) -> CloudResult<Vec<String>>;

    /// The bucket's region, versioning and default encryption (for preflight).
    async fn facts(&self) -> CloudResult<StoreFacts>;
}

impl std::fmt::Debug for dyn ObjectStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ObjectStore({})", self.location())
    }
}
