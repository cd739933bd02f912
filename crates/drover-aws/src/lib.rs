//! drover's AWS adapter: the engine's ports on the official AWS SDK.
//!
//! The only crate of the workspace that uses the AWS SDK (checked by `tests/architecture.rs`).
//! [`AwsCloud`] implements [`BackupService`](drover_engine::ports::BackupService),
//! [`TableService`](drover_engine::ports::TableService) and
//! [`KeyService`](drover_engine::ports::KeyService) with the calls the AWS API model defines,
//! each in the region the engine names, one module per service and concern:
//!
//! - `backup.rs` (AWS Backup):
//!   - StartBackupJob / DescribeBackupJob in the table's (source) region;
//!   - StartCopyJob / DescribeCopyJob in the source region, with the target vault's ARN;
//!   - StartRestoreJob / DescribeRestoreJob in the recovery point's (target) region, with the
//!     metadata `targetTableName`, `encryptionType=KMS` and `kmsMasterKeyArn`;
//!   - ListRecoveryPointsByBackupVault (filtered by resource type, then by table or not at
//!     all), ListTags of a recovery point (paged), DeleteRecoveryPoint and DescribeBackupVault
//!     in the vault's region; DescribeRegionSettings (advanced DynamoDB backup, required for
//!     copies);
//! - `jobs.rs` (AWS Backup): ListBackupJobs / ListCopyJobs / ListRestoreJobs, paged, to find
//!   the job of an idempotent replay that answered without a job id;
//! - `tables.rs` (DynamoDB): ListTables (paged), DescribeTable (alone: polling a table costs
//!   one call), DescribeTimeToLive, ListTagsOfResource (paged), UpdateContinuousBackups,
//!   UpdateTimeToLive, UpdateTable, TagResource, DeleteTable, GetItem, PutItem, DeleteItem;
//! - `pitr.rs` (DynamoDB): DescribeContinuousBackups (point-in-time recovery and its window),
//!   RestoreTableToPointInTime in the new table's region, by the source's ARN, with the target
//!   key as `SSESpecificationOverride`;
//! - `scan.rs` (DynamoDB): parallel segmented `Scan`, with `Select=COUNT` for item counts and
//!   consistent reads for digests;
//! - `keys.rs` (KMS): DescribeKey, GetKeyPolicy;
//! - `events.rs` (EventBridge, SNS): the engine's
//!   [`EventService`](drover_engine::notify::EventService): PutEvents of one entry to a bus
//!   in the region the engine names, Publish to a topic in its ARN's region;
//! - `metrics.rs` (CloudWatch, Smithy RPC v2 CBOR): the engine's
//!   [`MetricService`](drover_engine::metrics::MetricService): PutMetricData;
//! - `identity.rs` (STS): GetCallerIdentity, through the region's account's credentials;
//! - `state_store.rs` (S3): [`S3Store`], the engine's
//!   [`ObjectStore`](drover_engine::store::ObjectStore) for runs' state in a bucket:
//!   conditional PutObject (`If-None-Match: *`, `If-Match`) with a SHA-256 checksum and
//!   optional SSE-KMS, GetObject, conditional DeleteObject, ListObjectsV2 (paged, with and
//!   without a delimiter), GetBucketVersioning, GetBucketEncryption, and HeadBucket /
//!   GetBucketLocation to find the bucket's region.
//!
//! Beside them: `clients.rs` builds and caches the SDK clients of each (account, region),
//! `accounts.rs` maps regions to accounts and assumes the roles a plan names there, `items.rs`
//! converts attribute values (and encodes items canonically for digests), `errors.rs` maps SDK
//! errors to drover's error kinds, and [`iam`] derives the IAM policies of a plan.
//!
//! Every Start* call carries the engine's idempotency token. Credentials come from the
//! standard chain (environment, profile, SSO, process, IMDS); `endpoint_url` points every
//! service in every region at one endpoint (emulators), as does `AWS_ENDPOINT_URL`.

mod accounts;
mod backup;
mod clients;
mod errors;
mod events;
pub mod iam;
mod identity;
mod items;
mod jobs;
mod keys;
mod metrics;
mod pitr;
mod scan;
mod state_store;
mod tables;

use std::collections::BTreeMap;
use std::sync::Arc;

use clients::{ClientFactory, Clients};

pub use accounts::{ASSUME_ROLE_FAILED, Accounts, REFRESH_BEFORE, session_name};
pub use errors::classify;
pub use state_store::{S3Store, S3StoreConfig};

/// How to reach AWS.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AwsOptions {
    /// Named profile of the shared config files (`--profile`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// One endpoint for every service in every region (`--endpoint-url`), for emulators.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint_url: Option<String>,
    /// Endpoints for single regions, over `endpoint_url` (`--region-endpoint REGION=URL`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub region_endpoints: BTreeMap<String, String>,
    /// Use fixed dummy credentials instead of the credential chain: for local emulators,
    /// which accept any. Never for AWS.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub emulator_credentials: bool,
    /// Longest wait for one attempt of a call, in milliseconds (`--call-timeout`; default
    /// 30 s). A timed-out attempt is retried like any passing fault.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_timeout_ms: Option<u64>,
}

/// The engine's ports on AWS.
#[derive(Clone)]
pub struct AwsCloud {
    factory: Arc<ClientFactory>,
}

impl AwsCloud {
    /// A cloud that builds its clients on first use of each region, acting in every region
    /// with the operator's own credentials.
    #[must_use]
    pub fn new(options: AwsOptions) -> AwsCloud {
        AwsCloud::with_accounts(options, Accounts::default())
    }

    /// A cloud that acts in each region's account as `accounts` says (the role the plan
    /// names there, assumed from the operator's credentials, or the operator's own).
    #[must_use]
    pub fn with_accounts(options: AwsOptions, accounts: Accounts) -> AwsCloud {
        AwsCloud { factory: Arc::new(ClientFactory::new(options, accounts)) }
    }

    /// The SDK clients of `region`.
    async fn clients(&self, region: &str) -> Clients {
        self.factory.get(region).await
    }
}
