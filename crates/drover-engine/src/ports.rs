//! Ports: the narrow, domain-level operations a run needs from a cloud.
//!
//! Implemented by `drover-aws` (the AWS SDK) and `drover-sim` (the simulated cloud). Nothing
//! here names an AWS type: requests and answers are drover's own, and every failure is a
//! [`CloudError`] with a drover [`ErrorKind`](crate::ErrorKind).
//!
//! Every operation names the region it runs in; implementations must call that region (a
//! failover never calls the source region).

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::clock::Clock;
use crate::error::CloudError;

/// The cloud a run talks to.
#[derive(Clone)]
pub struct Ports {
    /// AWS Backup.
    pub backup: Arc<dyn BackupService>,
    /// DynamoDB.
    pub tables: Arc<dyn TableService>,
    /// KMS.
    pub keys: Arc<dyn KeyService>,
    /// Who the credentials of each region's account are (STS).
    pub identity: Arc<dyn IdentityService>,
    /// EventBridge and SNS: where runs and checks say what happened.
    pub events: Arc<dyn crate::notify::EventService>,
    /// CloudWatch: readiness and runs' results as metrics.
    pub metrics: Arc<dyn crate::metrics::MetricService>,
    /// Time.
    pub clock: Arc<dyn Clock>,
}

/// Milliseconds since the Unix epoch (UTC), the time unit of ports and journals.
pub type Millis = i64;

/// The result of a port call.
pub type CloudResult<T> = Result<T, CloudError>;

/// Lifecycle of an AWS Backup job, as the engine sees it.
///
/// Backup and copy jobs report `State` (CREATED, PENDING, RUNNING, ABORTING, ABORTED,
/// COMPLETED, FAILED, EXPIRED, PARTIAL); restore jobs report `Status` (PENDING, RUNNING,
/// COMPLETED, ABORTED, FAILED). Adapters map both onto this.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum JobState {
    /// Accepted, not started (CREATED, PENDING).
    Created,
    /// In progress (RUNNING, ABORTING).
    Running,
    /// Finished successfully.
    Completed,
    /// Ended without success (FAILED, ABORTED, EXPIRED, PARTIAL).
    Failed,
}

/// What a job looks like now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobStatus {
    /// Where the job is.
    pub state: JobState,
    /// The service's own state name (`PARTIAL`, `EXPIRED`, ...), for messages.
    pub raw_state: String,
    /// The service's status message, if any.
    pub message: Option<String>,
    /// Percent done, when the service says.
    pub percent_done: Option<f64>,
    /// The recovery point a backup or copy job produced (for copies: the destination point).
    pub recovery_point_arn: Option<String>,
    /// The resource a restore job created (the table ARN).
    pub created_resource_arn: Option<String>,
    /// When the job was created.
    pub created_at: Option<Millis>,
    /// When the job finished, once it has.
    pub completed_at: Option<Millis>,
}

/// A request to back up one table into a vault (in the table's region).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BackupRequest {
    /// The table's region.
    pub region: String,
    /// The table's ARN.
    pub table_arn: String,
    /// Vault (same region) that receives the recovery point.
    pub vault: String,
    /// Role AWS Backup assumes.
    pub iam_role_arn: String,
    /// Identifies the request across retries and resumes.
    pub idempotency_token: String,
    /// When the step's attempt began: the job, if an earlier process started it, was created
    /// after that (to find it when a replay answers without its id).
    pub requested_after: Option<Millis>,
    /// `StartWindowMinutes`: a job not started by then ends EXPIRED.
    pub start_window_minutes: Option<u32>,
    /// `CompleteWindowMinutes`: a job not done by then (from its creation) is cancelled.
    pub complete_window_minutes: Option<u32>,
    /// `Lifecycle.DeleteAfterDays` of the recovery point (drills: so that an abandoned drill
    /// stops costing money).
    pub delete_after_days: Option<u32>,
    /// `RecoveryPointTags` (drover's ownership tags).
    pub tags: BTreeMap<String, String>,
}

/// A request to copy a recovery point into another region's vault. Runs in the source region.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CopyRequest {
    /// Region of the source recovery point.
    pub region: String,
    /// The recovery point to copy.
    pub recovery_point_arn: String,
    /// Vault (in `region`) that holds it.
    pub source_vault: String,
    /// ARN of the destination vault (in the target region).
    pub destination_vault_arn: String,
    /// Role AWS Backup assumes.
    pub iam_role_arn: String,
    /// Identifies the request across retries and resumes.
    pub idempotency_token: String,
    /// When the step's attempt began (see [`BackupRequest::requested_after`]).
    pub requested_after: Option<Millis>,
    /// `Lifecycle.DeleteAfterDays` of the copy.
    pub delete_after_days: Option<u32>,
}

/// A request to restore a recovery point into a new table. Runs in the recovery point's region.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RestoreRequest {
    /// Region of the recovery point, where the table is created.
    pub region: String,
    /// The recovery point.
    pub recovery_point_arn: String,
    /// Name of the new table.
    pub table_name: String,
    /// KMS key (in `region`) the new table is encrypted with.
    pub kms_key_arn: String,
    /// Role AWS Backup assumes.
    pub iam_role_arn: String,
    /// Identifies the request across retries and resumes.
    pub idempotency_token: String,
    /// When the step's attempt began (see [`BackupRequest::requested_after`]).
    pub requested_after: Option<Millis>,
}

/// A recovery point in a vault.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecoveryPoint {
    /// Its ARN (a copy has its own).
    pub arn: String,
    /// Vault holding it.
    pub vault: String,
    /// ARN of the table it backs up (the source table).
    pub resource_arn: String,
    /// When the backup was taken (copies keep the source's time).
    pub created_at: Millis,
    /// `COMPLETED`, `PARTIAL`, `CREATING`, ...
    pub status: String,
    /// Size in bytes, when known.
    pub size_bytes: Option<u64>,
    /// Key that encrypts it.
    pub encryption_key_arn: Option<String>,
    /// The backup plan whose rule created it (`CreatedBy.BackupPlanId`); `None` for on-demand
    /// jobs, which are the only jobs drover starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_plan_id: Option<String>,
}

impl RecoveryPoint {
    /// Whether it can be restored or copied.
    #[must_use]
    pub fn is_completed(&self) -> bool {
        self.status == "COMPLETED" || self.status == "AVAILABLE"
    }
}

/// AWS Backup: jobs and recovery points.
#[async_trait]
pub trait BackupService: Send + Sync {
    /// Starts an on-demand backup job (StartBackupJob). The same token returns the same job.
    async fn start_backup_job(&self, req: &BackupRequest) -> CloudResult<String>;
    /// Describes a backup job (DescribeBackupJob).
    async fn describe_backup_job(&self, region: &str, job_id: &str) -> CloudResult<JobStatus>;
    /// Starts a copy job (StartCopyJob, in the source region). The same token returns the
    /// same job.
    async fn start_copy_job(&self, req: &CopyRequest) -> CloudResult<String>;
    /// Describes a copy job (DescribeCopyJob, in the source region).
    async fn describe_copy_job(&self, region: &str, job_id: &str) -> CloudResult<JobStatus>;
    /// Starts a restore job (StartRestoreJob). The same token returns the same job.
    async fn start_restore_job(&self, req: &RestoreRequest) -> CloudResult<String>;
    /// Describes a restore job (DescribeRestoreJob).
    async fn describe_restore_job(&self, region: &str, job_id: &str) -> CloudResult<JobStatus>;
    /// Recovery points of one table in a vault (ListRecoveryPointsByBackupVault), newest
    /// first. `table_name` and the source region identify the table; the account is not
    /// needed.
    async fn list_recovery_points(
        &self,
        region: &str,
        vault: &str,
        source_region: &str,
        table_name: &str,
    ) -> CloudResult<Vec<RecoveryPoint>>;
    /// Every DynamoDB recovery point in a vault (ListRecoveryPointsByBackupVault by resource
    /// type, every page), newest first, whatever table it backs up: `drover sweep` looks
    /// through them for what abandoned drills left.
    async fn list_vault_recovery_points(
        &self,
        region: &str,
        vault: &str,
    ) -> CloudResult<Vec<RecoveryPoint>>;
    /// The tags of a recovery point (AWS Backup ListTags, every page). Only points fully managed
    /// by AWS Backup (ARNs `arn:<partition>:backup:...`) have tags to read; a point that is gone
    /// is `NotFound`.
    async fn recovery_point_tags(
        &self,
        region: &str,
        arn: &str,
    ) -> CloudResult<BTreeMap<String, String>>;
    /// Deletes a recovery point from a vault (DeleteRecoveryPoint). Deleting is asynchronous
    /// (the point shows `DELETING` for a while); a point already gone is `NotFound`.
    async fn delete_recovery_point(&self, region: &str, vault: &str, arn: &str) -> CloudResult<()>;
    /// The ARN of a vault (DescribeBackupVault).
    async fn vault_arn(&self, region: &str, vault: &str) -> CloudResult<String> {
        Ok(self.describe_vault(region, vault).await?.arn)
    }
    /// Whether advanced DynamoDB backup is on in `region` (DescribeRegionSettings: `DynamoDB`
    /// opted in and fully managed). Only backups taken while it is on can be copied.
    async fn advanced_dynamodb_backup(&self, region: &str) -> CloudResult<bool>;
    /// A vault's settings (DescribeBackupVault): its ARN, its key and its lock.
    async fn describe_vault(&self, region: &str, vault: &str) -> CloudResult<VaultInfo>;
    /// A vault's access policy (GetBackupVaultAccessPolicy), `None` when it has none.
    async fn vault_access_policy(&self, region: &str, vault: &str) -> CloudResult<Option<String>>;
    /// Whether the Organization lets its accounts copy backups to each other
    /// (DescribeGlobalSettings: `isCrossAccountBackupEnabled`), as the account of `region`
    /// reads it. An account outside an Organization, or one that may not read the setting,
    /// gets an error.
    async fn cross_account_backup(&self, region: &str) -> CloudResult<bool>;
}

/// A backup vault as preflight and teardown see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VaultInfo {
    /// Its ARN (the destination of copies into it).
    pub arn: String,
    /// The key that encrypts its recovery points.
    pub encryption_key_arn: Option<String>,
    /// Its Vault Lock, when one is in effect (`Locked`): its points cannot be deleted before
    /// their minimum retention.
    pub lock: Option<VaultLock>,
}

/// A vault's lock (AWS Backup Vault Lock): how long its recovery points must be kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct VaultLock {
    /// Points cannot be deleted before they are this many days old; copies into the vault
    /// must be kept at least this long.
    pub min_retention_days: Option<u32>,
    /// Copies into the vault may be kept at most this long.
    pub max_retention_days: Option<u32>,
}

/// DynamoDB key attribute type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum KeyType {
    /// String.
    S,
    /// Number.
    N,
    /// Binary.
    B,
}

/// A key attribute of a table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyAttribute {
    /// Attribute name.
    pub name: String,
    /// Attribute type.
    pub kind: KeyType,
}

/// What a table looks like now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableInfo {
    /// Table name.
    pub name: String,
    /// Table ARN.
    pub arn: String,
    /// `ACTIVE`, `CREATING`, `UPDATING`, `DELETING`, ...
    pub status: String,
    /// Partition key.
    pub partition_key: KeyAttribute,
    /// Sort key, if any.
    pub sort_key: Option<KeyAttribute>,
    /// Names of global secondary indexes with their status.
    pub global_indexes: BTreeMap<String, String>,
    /// Names of local secondary indexes.
    pub local_indexes: Vec<String>,
    /// Whether a restore into this table is still in progress.
    pub restore_in_progress: bool,
    /// KMS key encrypting the table, when it is a customer-managed or AWS-managed key.
    pub kms_key_arn: Option<String>,
    /// Approximate item count (DescribeTable; may be hours old).
    pub item_count: u64,
    /// Approximate size in bytes.
    pub size_bytes: u64,
    /// Provisioned read capacity units; `None` for an on-demand (`PAY_PER_REQUEST`) table.
    #[serde(default)]
    pub read_capacity_units: Option<u64>,
    /// Stream view type (`NEW_IMAGE`, ...), when the stream is enabled.
    pub stream: Option<String>,
    /// Deletion protection enabled.
    pub deletion_protection: bool,
    /// When the table was created (`CreationDateTime`; for a restored table, when its restore
    /// created it), when the service says.
    #[serde(default)]
    pub created_at: Option<Millis>,
    /// Where the table was restored from (DescribeTable's `RestoreSummary`), for a restored
    /// table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restored_from: Option<RestoreSummary>,
}

/// What a restored table was restored from (DescribeTable's `RestoreSummary`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoreSummary {
    /// The source table (`SourceTableArn`), for a point-in-time restore (and some restores
    /// from a backup).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_table_arn: Option<String>,
    /// The backup (`SourceBackupArn`), for a restore from a backup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_backup_arn: Option<String>,
    /// The instant restored to (`RestoreDateTime`): for a point-in-time restore, the time the
    /// table's data is from.
    pub restore_time: Millis,
}

/// A table's point-in-time recovery, as DescribeContinuousBackups reports it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContinuousBackups {
    /// `PointInTimeRecoveryStatus` is `ENABLED`.
    pub enabled: bool,
    /// `EarliestRestorableDateTime`, when enabled.
    pub earliest: Option<Millis>,
    /// `LatestRestorableDateTime` (typically about five minutes before now), when enabled.
    pub latest: Option<Millis>,
    /// `RecoveryPeriodInDays` (1 to 35), when the service says.
    pub recovery_period_days: Option<u32>,
}

impl ContinuousBackups {
    /// Whether `at` is inside the restorable window.
    #[must_use]
    pub fn covers(&self, at: Millis) -> bool {
        self.enabled
            && self.earliest.is_some_and(|e| e <= at)
            && self.latest.is_some_and(|l| at <= l)
    }
}

/// A point-in-time restore (RestoreTableToPointInTime), called in the destination region.
/// It has no client token: a caller that may have made it already finds the table it created
/// by its `RestoreSummary`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PointInTimeRestore {
    /// Region the restore runs in (the new table's).
    pub region: String,
    /// The source table (`SourceTableArn`; in another region for a cross-region restore).
    pub source_table_arn: String,
    /// The new table's name.
    pub table_name: String,
    /// The instant to restore to (`RestoreDateTime`), inside the source's window.
    pub restore_time: Millis,
    /// The KMS key the new table is encrypted with (`SSESpecificationOverride`, KMS); `None`
    /// keeps the source table's current encryption (not allowed across regions).
    pub kms_key_arn: Option<String>,
}

impl TableInfo {
    /// Restored and usable: ACTIVE, no restore in progress, every index ACTIVE.
    #[must_use]
    pub fn is_ready(&self) -> bool {
        self.status == "ACTIVE"
            && !self.restore_in_progress
            && self.global_indexes.values().all(|s| s == "ACTIVE")
    }
}

/// A table's time to live, as DescribeTimeToLive reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeToLive {
    /// `ENABLED`, `ENABLING`, `DISABLED`, `DISABLING`.
    pub status: String,
    /// The TTL attribute, when TTL is (being) enabled.
    pub attribute: Option<String>,
}

impl TimeToLive {
    /// The attribute TTL is on for, counting a change still `ENABLING` (UpdateTimeToLive
    /// takes effect asynchronously, and a second change within an hour is refused).
    #[must_use]
    pub fn enabled_attribute(&self) -> Option<&str> {
        match self.status.as_str() {
            "ENABLED" | "ENABLING" => self.attribute.as_deref(),
            _ => None,
        }
    }
}

/// The settings a restore drops and drover re-applies, as read from the service (DescribeTable
/// for the stream and deletion protection, DescribeContinuousBackups, DescribeTimeToLive).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableSettings {
    /// Point-in-time recovery enabled.
    pub point_in_time_recovery: bool,
    /// TTL attribute, when TTL is enabled.
    pub ttl_attribute: Option<String>,
    /// Stream view type (`NEW_IMAGE`, ...), when the stream is enabled.
    pub stream: Option<String>,
    /// Deletion protection enabled.
    pub deletion_protection: bool,
}

/// A key attribute value (string, number or binary): drover reads and writes only key
/// attributes and its marker, whose values are scalars.
pub use drover_plan::KeyValue as Value;

/// An item: attribute names to scalar values. Reads keep only the scalar attributes.
pub type Item = BTreeMap<String, Value>;

/// DynamoDB: tables and the few item operations validation needs.
#[async_trait]
pub trait TableService: Send + Sync {
    /// The names of every table in the region, in any state (ListTables, every page).
    async fn list_tables(&self, region: &str) -> CloudResult<Vec<String>>;
    /// Describes a table (DescribeTable alone); `None` when it does not exist.
    async fn describe_table(&self, region: &str, name: &str) -> CloudResult<Option<TableInfo>>;
    /// Whether point-in-time recovery is enabled (DescribeContinuousBackups).
    async fn point_in_time_recovery(&self, region: &str, name: &str) -> CloudResult<bool> {
        Ok(self.continuous_backups(region, name).await?.enabled)
    }
    /// The table's point-in-time recovery and its restorable window
    /// (DescribeContinuousBackups); a table that does not exist is `NotFound`.
    async fn continuous_backups(&self, region: &str, name: &str) -> CloudResult<ContinuousBackups>;
    /// Restores a table to a point in time (RestoreTableToPointInTime) into a new table in
    /// `req.region`; returns the new table's ARN once the service accepted it (the table is
    /// then `CREATING`).
    /// Errors: the name taken (`AlreadyExists`, or `InvalidState` while that table is being
    /// created or deleted), the time outside the window or PITR off (`InvalidState`), too many
    /// restores in progress (`Throttled`), the source missing (`NotFound`).
    async fn restore_to_point_in_time(&self, req: &PointInTimeRestore) -> CloudResult<String>;
    /// The table's time to live (DescribeTimeToLive).
    async fn time_to_live(&self, region: &str, name: &str) -> CloudResult<TimeToLive>;
    /// The table's tags (ListTagsOfResource, every page). Tagging is asynchronous: right after
    /// a `tag_table` this may still return the previous tags.
    async fn list_tags(&self, region: &str, arn: &str) -> CloudResult<BTreeMap<String, String>>;
    /// Enables or disables point-in-time recovery.
    async fn set_point_in_time_recovery(
        &self,
        region: &str,
        name: &str,
        on: bool,
    ) -> CloudResult<()>;
    /// Enables TTL on `attribute`.
    async fn enable_ttl(&self, region: &str, name: &str, attribute: &str) -> CloudResult<()>;
    /// Enables the stream with `view` (`NEW_IMAGE`, ...), or disables it (`None`). A table
    /// that has a stream must have it disabled before it is enabled with another view.
    async fn set_stream(&self, region: &str, name: &str, view: Option<&str>) -> CloudResult<()>;
    /// Turns deletion protection on or off.
    async fn set_deletion_protection(&self, region: &str, name: &str, on: bool) -> CloudResult<()>;
    /// Adds or replaces tags.
    async fn tag_table(
        &self,
        region: &str,
        arn: &str,
        tags: &BTreeMap<String, String>,
    ) -> CloudResult<()>;
    /// Deletes a table.
    async fn delete_table(&self, region: &str, name: &str) -> CloudResult<()>;
    /// Counts items with a parallel scan (`Select=COUNT`).
    async fn count_items(&self, region: &str, name: &str, scan: &ScanOptions) -> CloudResult<u64>;
    /// Reads one item by its key (strongly consistent); `None` when absent.
    async fn get_item(&self, region: &str, name: &str, key: &Item) -> CloudResult<Option<Item>>;
    /// Writes an item.
    async fn put_item(&self, region: &str, name: &str, item: &Item) -> CloudResult<()>;
    /// Deletes an item by its key.
    async fn delete_item(&self, region: &str, name: &str, key: &Item) -> CloudResult<()>;
    /// An order-independent digest of every item, by a parallel scan (consistent reads).
    async fn digest_items(
        &self,
        region: &str,
        name: &str,
        scan: &ScanOptions,
    ) -> CloudResult<TableDigest>;
}

/// How a parallel scan reads a table.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ScanOptions {
    /// Parallel segments (at least one).
    pub segments: u32,
    /// Read capacity the whole scan may consume per second (`ReturnConsumedCapacity`), paced
    /// across its segments; `None`: as fast as the segments go. A drill's scans of production
    /// tables are budgeted, so that they take little of the application's capacity.
    pub read_units_per_second: Option<f64>,
    /// The table's average item size in bytes, when known (DescribeTable), to size pages.
    pub item_bytes: Option<u64>,
}

impl ScanOptions {
    /// Unpaced, in `segments` segments.
    #[must_use]
    pub fn unpaced(segments: u32) -> ScanOptions {
        ScanOptions { segments: segments.max(1), read_units_per_second: None, item_bytes: None }
    }
}

/// An order-independent digest of a table's items: the item count and the sum (mod 2^128)
/// of the first 128 bits of each item's SHA-256 over a canonical encoding. Equal tables give
/// equal digests whatever the scan order; digests compare only within one cloud.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableDigest {
    /// Items hashed.
    pub items: u64,
    /// Sum of item hashes, hex.
    #[serde(with = "hex128")]
    pub sum: u128,
}

impl TableDigest {
    /// Adds one item, given its canonical encoding.
    pub fn add(&mut self, canonical: &[u8]) {
        use sha2::Digest as _;
        let h = sha2::Sha256::digest(canonical);
        let mut first = [0u8; 16];
        first.copy_from_slice(&h[..16]);
        self.items += 1;
        self.sum = self.sum.wrapping_add(u128::from_be_bytes(first));
    }

    /// Combines the digests of disjoint parts (scan segments).
    #[must_use]
    pub fn merge(self, other: TableDigest) -> TableDigest {
        TableDigest { items: self.items + other.items, sum: self.sum.wrapping_add(other.sum) }
    }

    /// `<items>:<sum hex>`.
    #[must_use]
    pub fn to_hex(&self) -> String {
        format!("{}:{:032x}", self.items, self.sum)
    }
}

mod hex128 {
    use serde::{Deserialize as _, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(v: &u128, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{v:032x}"))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u128, D::Error> {
        let s = String::deserialize(d)?;
        u128::from_str_radix(&s, 16).map_err(serde::de::Error::custom)
    }
}

/// The canonical encoding of an item of scalars (attributes sorted by name).
#[must_use]
pub fn canonical_item(item: &Item) -> Vec<u8> {
    let mut out = Vec::new();
    for (k, v) in item {
        out.extend_from_slice(k.as_bytes());
        out.push(0x1f);
        canonical_value(v, &mut out);
        out.push(0x1e);
    }
    out
}

/// The canonical encoding of one scalar value: its type letter, a colon, and its text
/// (strings and numbers) or bytes (binary).
pub fn canonical_value(v: &Value, out: &mut Vec<u8>) {
    out.extend_from_slice(v.type_name().as_bytes());
    out.push(b':');
    match v {
        Value::S(s) | Value::N(s) => out.extend_from_slice(s.as_bytes()),
        Value::B(b) => out.extend_from_slice(b),
    }
}

/// A table's key schema and index names, as recorded with a recovery point.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableSchema {
    /// Partition key.
    pub partition_key: KeyAttribute,
    /// Sort key.
    pub sort_key: Option<KeyAttribute>,
    /// Global secondary indexes.
    pub global_indexes: Vec<String>,
    /// Local secondary indexes.
    pub local_indexes: Vec<String>,
}

impl TableInfo {
    /// The table's key schema and index names.
    #[must_use]
    pub fn schema(&self) -> TableSchema {
        TableSchema {
            partition_key: self.partition_key.clone(),
            sort_key: self.sort_key.clone(),
            global_indexes: self.global_indexes.keys().cloned().collect(),
            local_indexes: self.local_indexes.clone(),
        }
    }
}

/// A KMS key as preflight and validation see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyInfo {
    /// Key ARN.
    pub arn: String,
    /// `Enabled`, `Disabled`, `PendingDeletion`, ...
    pub state: String,
    /// Region the key lives in.
    pub region: String,
    /// Whether AWS manages the key (`KeyManager` `AWS`, such as `aws/dynamodb`): such keys
    /// cannot be shared with another account.
    #[serde(default)]
    pub aws_managed: bool,
}

/// KMS.
#[async_trait]
pub trait KeyService: Send + Sync {
    /// Describes a key (DescribeKey) in `region`.
    async fn describe_key(&self, region: &str, key_arn: &str) -> CloudResult<KeyInfo>;
    /// The key's policy (GetKeyPolicy, the policy named `default`), as JSON text.
    async fn key_policy(&self, region: &str, key_arn: &str) -> CloudResult<String>;
}

/// Who a region's credentials are (STS GetCallerIdentity).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallerIdentity {
    /// The account the credentials act in.
    pub account: String,
    /// The principal's ARN (an assumed role's session, a user, ...).
    pub arn: String,
}

/// STS: the identity drover acts as in each region's account.
#[async_trait]
pub trait IdentityService: Send + Sync {
    /// Who drover's credentials for `region` are (GetCallerIdentity, through the role the
    /// plan names for the region's account): a role that cannot be assumed fails here.
    async fn caller_identity(&self, region: &str) -> CloudResult<CallerIdentity>;
}

/// The table ARN of `table` in `region`, given the account (used as a backup job's
/// resource).
#[must_use]
pub fn table_arn(partition: &str, region: &str, account: &str, table: &str) -> String {
    format!("arn:{partition}:dynamodb:{region}:{account}:table/{table}")
}
