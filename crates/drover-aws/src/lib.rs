//! drover's AWS adapter: the engine's ports on the official AWS SDK.
//!
//! The only crate of the workspace that uses the AWS SDK (checked by `tests/architecture.rs`).
//! [`AwsCloud`] implements [`BackupService`], [`TableService`] and [`KeyService`] with the
//! calls the AWS API model defines, each in the region the engine names:
//!
//! - StartBackupJob / DescribeBackupJob in the table's (source) region;
//! - StartCopyJob / DescribeCopyJob in the source region, with the target vault's ARN;
//! - StartRestoreJob / DescribeRestoreJob in the recovery point's (target) region, with the
//!   metadata `targetTableName`, `encryptionType=KMS` and `kmsMasterKeyArn`;
//! - ListRecoveryPointsByBackupVault (filtered by resource type, then by table) and
//!   DescribeBackupVault in the vault's region; DescribeRegionSettings (advanced DynamoDB
//!   backup, required for copies);
//! - DynamoDB DescribeTable (+ DescribeContinuousBackups, DescribeTimeToLive,
//!   ListTagsOfResource), UpdateContinuousBackups, UpdateTimeToLive, UpdateTable, TagResource,
//!   DeleteTable, parallel segmented `Scan` with `Select=COUNT`, GetItem, PutItem, DeleteItem;
//! - KMS DescribeKey.
//!
//! Every Start* call carries the engine's idempotency token. Credentials come from the
//! standard chain (environment, profile, SSO, process, IMDS); `endpoint_url` points every
//! service in every region at one endpoint (emulators), as does `AWS_ENDPOINT_URL`.

mod errors;
pub mod iam;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region};
use aws_sdk_dynamodb::types::{
    AttributeValue, KeyType as DdbKeyType, PointInTimeRecoverySpecification, ScalarAttributeType,
    Select, StreamSpecification, StreamViewType, Tag, TimeToLiveSpecification,
};
use drover_engine::ports::{
    BackupRequest, BackupService, CloudResult, CopyRequest, Item, JobState, JobStatus,
    KeyAttribute, KeyInfo, KeyService, KeyType, Millis, RecoveryPoint, RestoreRequest, TableDigest,
    TableInfo, TableService, TableSettings,
};
use drover_engine::{CloudError, ErrorKind};
use tokio::sync::Mutex;

pub use errors::classify;

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

/// The SDK clients of one region.
#[derive(Clone)]
struct Clients {
    backup: aws_sdk_backup::Client,
    dynamodb: aws_sdk_dynamodb::Client,
    kms: aws_sdk_kms::Client,
}

/// Builds SDK clients once per region and keeps them: one shared configuration (behaviour
/// version, retries, timeouts, credentials, endpoint), per-region clients.
struct ClientFactory {
    options: AwsOptions,
    clients: Mutex<HashMap<String, Clients>>,
}

impl ClientFactory {
    async fn get(&self, region: &str) -> Clients {
        let mut clients = self.clients.lock().await;
        if let Some(c) = clients.get(region) {
            return c.clone();
        }
        let attempt = Duration::from_millis(self.options.call_timeout_ms.unwrap_or(30_000));
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new(region.to_owned()))
            // The engine retries throttling with backoff and lowers its concurrency; the SDK
            // makes a few quick attempts first.
            .retry_config(RetryConfig::standard().with_max_attempts(3))
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(5).min(attempt))
                    .operation_attempt_timeout(attempt)
                    // Every attempt may time out, with the SDK's backoff between them.
                    .operation_timeout(attempt * 4)
                    .build(),
            );
        if let Some(profile) = &self.options.profile {
            loader = loader.profile_name(profile);
        }
        if self.options.emulator_credentials {
            loader = loader.credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
                "testing",
                "testing",
                None,
                None,
                "drover-emulator",
            ));
        }
        if let Some(url) =
            self.options.region_endpoints.get(region).or(self.options.endpoint_url.as_ref())
        {
            loader = loader.endpoint_url(url);
        }
        let config = loader.load().await;
        let c = Clients {
            backup: aws_sdk_backup::Client::new(&config),
            dynamodb: aws_sdk_dynamodb::Client::new(&config),
            kms: aws_sdk_kms::Client::new(&config),
        };
        clients.insert(region.to_owned(), c.clone());
        c
    }
}

/// The engine's ports on AWS.
#[derive(Clone)]
pub struct AwsCloud {
    factory: Arc<ClientFactory>,
}

impl AwsCloud {
    /// A cloud that builds its clients on first use of each region.
    #[must_use]
    pub fn new(options: AwsOptions) -> AwsCloud {
        AwsCloud {
            factory: Arc::new(ClientFactory { options, clients: Mutex::new(HashMap::new()) }),
        }
    }

    async fn clients(&self, region: &str) -> Clients {
        self.factory.get(region).await
    }
}

fn millis(dt: Option<&aws_smithy_types::DateTime>) -> Option<Millis> {
    dt.and_then(|d| d.to_millis().ok())
}

fn missing(op: &str, what: &str) -> CloudError {
    CloudError::new(ErrorKind::Fatal, op, format!("the response has no {what}"))
}

/// Maps a Backup job state name (backup and copy jobs: `State`; restore jobs: `Status`).
fn job_state(raw: &str) -> JobState {
    match raw {
        "CREATED" | "PENDING" => JobState::Created,
        "RUNNING" | "ABORTING" => JobState::Running,
        "COMPLETED" => JobState::Completed,
        _ => JobState::Failed,
    }
}

#[allow(clippy::too_many_arguments)]
fn status(
    raw: Option<&str>,
    message: Option<&str>,
    percent: Option<&str>,
    point: Option<&str>,
    resource: Option<&str>,
    created: Option<&aws_smithy_types::DateTime>,
    completed: Option<&aws_smithy_types::DateTime>,
) -> JobStatus {
    let raw = raw.unwrap_or("CREATED").to_owned();
    JobStatus {
        state: job_state(&raw),
        raw_state: raw,
        message: message.map(str::to_owned),
        percent_done: percent.and_then(|p| p.trim_end_matches('%').parse().ok()),
        recovery_point_arn: point.map(str::to_owned),
        created_resource_arn: resource.map(str::to_owned),
        created_at: millis(created),
        completed_at: millis(completed),
    }
}

#[async_trait]
impl BackupService for AwsCloud {
    async fn start_backup_job(&self, req: &BackupRequest) -> CloudResult<String> {
        const OP: &str = "StartBackupJob";
        let out = self
            .clients(&req.region)
            .await
            .backup
            .start_backup_job()
            .backup_vault_name(&req.vault)
            .resource_arn(&req.table_arn)
            .iam_role_arn(&req.iam_role_arn)
            .idempotency_token(&req.idempotency_token)
            .send()
            .await
            .map_err(|e| errors::map(OP, &e))?;
        out.backup_job_id().map(str::to_owned).ok_or_else(|| missing(OP, "BackupJobId"))
    }

    async fn describe_backup_job(&self, region: &str, job_id: &str) -> CloudResult<JobStatus> {
        const OP: &str = "DescribeBackupJob";
        let out = self
            .clients(region)
            .await
            .backup
            .describe_backup_job()
            .backup_job_id(job_id)
            .send()
            .await
            .map_err(|e| errors::map(OP, &e))?;
        Ok(status(
            out.state().map(|s| s.as_str()),
            out.status_message(),
            out.percent_done(),
            out.recovery_point_arn(),
            None,
            out.creation_date(),
            out.completion_date(),
        ))
    }

    async fn start_copy_job(&self, req: &CopyRequest) -> CloudResult<String> {
        const OP: &str = "StartCopyJob";
        let out = self
            .clients(&req.region)
            .await
            .backup
            .start_copy_job()
            .recovery_point_arn(&req.recovery_point_arn)
            .source_backup_vault_name(&req.source_vault)
            .destination_backup_vault_arn(&req.destination_vault_arn)
            .iam_role_arn(&req.iam_role_arn)
            .idempotency_token(&req.idempotency_token)
            .send()
            .await
            .map_err(|e| errors::map(OP, &e))?;
        out.copy_job_id().map(str::to_owned).ok_or_else(|| missing(OP, "CopyJobId"))
    }

    async fn describe_copy_job(&self, region: &str, job_id: &str) -> CloudResult<JobStatus> {
        const OP: &str = "DescribeCopyJob";
        let out = self
            .clients(region)
            .await
            .backup
            .describe_copy_job()
            .copy_job_id(job_id)
            .send()
            .await
            .map_err(|e| errors::map(OP, &e))?;
        let job = out.copy_job().ok_or_else(|| missing(OP, "CopyJob"))?;
        Ok(status(
            job.state().map(|s| s.as_str()),
            job.status_message(),
            None,
            job.destination_recovery_point_arn(),
            None,
            job.creation_date(),
            job.completion_date(),
        ))
    }

    async fn start_restore_job(&self, req: &RestoreRequest) -> CloudResult<String> {
        const OP: &str = "StartRestoreJob";
        let out = self
            .clients(&req.region)
            .await
            .backup
            .start_restore_job()
            .recovery_point_arn(&req.recovery_point_arn)
            .metadata("targetTableName", &req.table_name)
            .metadata("encryptionType", "KMS")
            .metadata("kmsMasterKeyArn", &req.kms_key_arn)
            .iam_role_arn(&req.iam_role_arn)
            .idempotency_token(&req.idempotency_token)
            .resource_type("DynamoDB")
            .send()
            .await
            .map_err(|e| errors::map(OP, &e))?;
        out.restore_job_id().map(str::to_owned).ok_or_else(|| missing(OP, "RestoreJobId"))
    }

    async fn describe_restore_job(&self, region: &str, job_id: &str) -> CloudResult<JobStatus> {
        const OP: &str = "DescribeRestoreJob";
        let out = self
            .clients(region)
            .await
            .backup
            .describe_restore_job()
            .restore_job_id(job_id)
            .send()
            .await
            .map_err(|e| errors::map(OP, &e))?;
        Ok(status(
            out.status().map(|s| s.as_str()),
            out.status_message(),
            out.percent_done(),
            None,
            out.created_resource_arn(),
            out.creation_date(),
            out.completion_date(),
        ))
    }

    async fn list_recovery_points(
        &self,
        region: &str,
        vault: &str,
        source_region: &str,
        table_name: &str,
    ) -> CloudResult<Vec<RecoveryPoint>> {
        const OP: &str = "ListRecoveryPointsByBackupVault";
        let client = self.clients(region).await.backup;
        let suffix = format!(":table/{table_name}");
        let region_part = format!(":dynamodb:{source_region}:");
        let mut points = Vec::new();
        let mut pages = client
            .list_recovery_points_by_backup_vault()
            .backup_vault_name(vault)
            .by_resource_type("DynamoDB")
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| errors::map(OP, &e))?;
            for p in page.recovery_points() {
                let Some(resource) = p.resource_arn() else { continue };
                if !(resource.ends_with(&suffix) && resource.contains(&region_part)) {
                    continue;
                }
                let (Some(arn), Some(created)) =
                    (p.recovery_point_arn(), millis(p.creation_date()))
                else {
                    continue;
                };
                points.push(RecoveryPoint {
                    arn: arn.to_owned(),
                    vault: vault.to_owned(),
                    resource_arn: resource.to_owned(),
                    created_at: created,
                    status: p.status().map_or("UNKNOWN", |s| s.as_str()).to_owned(),
                    size_bytes: p.backup_size_in_bytes().and_then(|b| u64::try_from(b).ok()),
                    encryption_key_arn: p.encryption_key_arn().map(str::to_owned),
                });
            }
        }
        points.sort_by_key(|p| std::cmp::Reverse(p.created_at));
        Ok(points)
    }

    async fn advanced_dynamodb_backup(&self, region: &str) -> CloudResult<bool> {
        const OP: &str = "DescribeRegionSettings";
        let out = self
            .clients(region)
            .await
            .backup
            .describe_region_settings()
            .send()
            .await
            .map_err(|e| errors::map(OP, &e))?;
        let on = |prefs: Option<&HashMap<String, bool>>| {
            prefs.and_then(|p| p.get("DynamoDB")).copied().unwrap_or(false)
        };
        Ok(on(out.resource_type_opt_in_preference())
            && on(out.resource_type_management_preference()))
    }

    async fn vault_arn(&self, region: &str, vault: &str) -> CloudResult<String> {
        const OP: &str = "DescribeBackupVault";
        let out = self
            .clients(region)
            .await
            .backup
            .describe_backup_vault()
            .backup_vault_name(vault)
            .send()
            .await
            .map_err(|e| errors::map(OP, &e))?;
        out.backup_vault_arn().map(str::to_owned).ok_or_else(|| missing(OP, "BackupVaultArn"))
    }
}

fn to_attribute_value(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_owned())
}

fn from_item(item: &HashMap<String, AttributeValue>) -> Item {
    item.iter()
        .filter_map(|(k, v)| {
            let s = match v {
                AttributeValue::S(s) | AttributeValue::N(s) => s.clone(),
                AttributeValue::Bool(b) => b.to_string(),
                _ => return None,
            };
            Some((k.clone(), s))
        })
        .collect()
}

/// A canonical encoding of an item of any attribute types (attributes and map keys sorted,
/// sets sorted), for digests.
fn canonical(item: &HashMap<String, AttributeValue>) -> Vec<u8> {
    fn value(v: &AttributeValue, out: &mut Vec<u8>) {
        let sorted = |v: &[String]| {
            let mut v = v.to_vec();
            v.sort();
            v.join("\u{1d}")
        };
        match v {
            AttributeValue::S(s) => out.extend_from_slice(format!("S:{s}").as_bytes()),
            AttributeValue::N(n) => out.extend_from_slice(format!("N:{n}").as_bytes()),
            AttributeValue::B(b) => {
                out.extend_from_slice(b"B:");
                out.extend_from_slice(b.as_ref());
            }
            AttributeValue::Bool(b) => out.extend_from_slice(format!("BOOL:{b}").as_bytes()),
            AttributeValue::Null(_) => out.extend_from_slice(b"NULL"),
            AttributeValue::Ss(v) => out.extend_from_slice(format!("SS:{}", sorted(v)).as_bytes()),
            AttributeValue::Ns(v) => out.extend_from_slice(format!("NS:{}", sorted(v)).as_bytes()),
            AttributeValue::Bs(v) => {
                let mut v: Vec<&[u8]> = v.iter().map(AsRef::as_ref).collect();
                v.sort_unstable();
                out.extend_from_slice(b"BS:");
                for b in v {
                    out.extend_from_slice(b);
                    out.push(0x1d);
                }
            }
            AttributeValue::L(items) => {
                out.extend_from_slice(b"L[");
                for i in items {
                    value(i, out);
                    out.push(0x1d);
                }
                out.push(b']');
            }
            AttributeValue::M(map) => {
                out.extend_from_slice(b"M{");
                out.extend_from_slice(&canonical(map));
                out.push(b'}');
            }
            _ => out.extend_from_slice(b"?"),
        }
    }
    let mut keys: Vec<&String> = item.keys().collect();
    keys.sort();
    let mut out = Vec::new();
    for k in keys {
        out.extend_from_slice(k.as_bytes());
        out.push(0x1f);
        value(&item[k], &mut out);
        out.push(0x1e);
    }
    out
}

fn key_map(key: &Item) -> HashMap<String, AttributeValue> {
    key.iter().map(|(k, v)| (k.clone(), to_attribute_value(v))).collect()
}

#[async_trait]
impl TableService for AwsCloud {
    async fn describe_table(&self, region: &str, name: &str) -> CloudResult<Option<TableInfo>> {
        let ddb = self.clients(region).await.dynamodb;
        let out = match ddb.describe_table().table_name(name).send().await {
            Ok(out) => out,
            Err(e) => {
                let e = errors::map("DescribeTable", &e);
                return if e.kind == ErrorKind::NotFound { Ok(None) } else { Err(e) };
            }
        };
        let t = out.table().ok_or_else(|| missing("DescribeTable", "Table"))?;
        let arn = t.table_arn().unwrap_or_default().to_owned();
        let status = t.table_status().map_or("UNKNOWN", |s| s.as_str()).to_owned();
        let kind_of = |attr: &str| {
            t.attribute_definitions().iter().find(|d| d.attribute_name() == attr).map_or(
                KeyType::S,
                |d| match d.attribute_type() {
                    ScalarAttributeType::N => KeyType::N,
                    ScalarAttributeType::B => KeyType::B,
                    _ => KeyType::S,
                },
            )
        };
        let key = |kt: DdbKeyType| {
            t.key_schema().iter().find(|k| *k.key_type() == kt).map(|k| KeyAttribute {
                name: k.attribute_name().to_owned(),
                kind: kind_of(k.attribute_name()),
            })
        };
        let partition_key =
            key(DdbKeyType::Hash).ok_or_else(|| missing("DescribeTable", "partition key"))?;
        let sort_key = key(DdbKeyType::Range);
        let stream = t
            .stream_specification()
            .filter(|s| s.stream_enabled())
            .and_then(|s| s.stream_view_type())
            .map(|v| v.as_str().to_owned());
        let mut settings = TableSettings {
            point_in_time_recovery: false,
            ttl_attribute: None,
            stream,
            deletion_protection: t.deletion_protection_enabled().unwrap_or(false),
        };
        let mut tags = BTreeMap::new();
        // Settings and tags can be read only once the table exists for real.
        if status == "ACTIVE" || status == "UPDATING" {
            let pitr = ddb
                .describe_continuous_backups()
                .table_name(name)
                .send()
                .await
                .map_err(|e| errors::map("DescribeContinuousBackups", &e))?;
            settings.point_in_time_recovery = pitr
                .continuous_backups_description()
                .and_then(|d| d.point_in_time_recovery_description())
                .and_then(|p| p.point_in_time_recovery_status())
                .is_some_and(|s| s.as_str() == "ENABLED");
            let ttl = ddb
                .describe_time_to_live()
                .table_name(name)
                .send()
                .await
                .map_err(|e| errors::map("DescribeTimeToLive", &e))?;
            settings.ttl_attribute = ttl
                .time_to_live_description()
                .filter(|d| {
                    d.time_to_live_status()
                        .is_some_and(|s| s.as_str() == "ENABLED" || s.as_str() == "ENABLING")
                })
                .and_then(|d| d.attribute_name())
                .map(str::to_owned);
            let mut next: Option<String> = None;
            loop {
                let page = ddb
                    .list_tags_of_resource()
                    .resource_arn(&arn)
                    .set_next_token(next.clone())
                    .send()
                    .await
                    .map_err(|e| errors::map("ListTagsOfResource", &e))?;
                for tag in page.tags() {
                    tags.insert(tag.key().to_owned(), tag.value().to_owned());
                }
                next = page.next_token().map(str::to_owned);
                if next.is_none() {
                    break;
                }
            }
        }
        Ok(Some(TableInfo {
            name: name.to_owned(),
            arn,
            status,
            partition_key,
            sort_key,
            global_indexes: t
                .global_secondary_indexes()
                .iter()
                .map(|g| {
                    (
                        g.index_name().unwrap_or_default().to_owned(),
                        g.index_status().map_or("ACTIVE", |s| s.as_str()).to_owned(),
                    )
                })
                .collect(),
            local_indexes: t
                .local_secondary_indexes()
                .iter()
                .filter_map(|l| l.index_name().map(str::to_owned))
                .collect(),
            restore_in_progress: t.restore_summary().is_some_and(|r| r.restore_in_progress()),
            kms_key_arn: t
                .sse_description()
                .and_then(|s| s.kms_master_key_arn())
                .map(str::to_owned),
            item_count: t.item_count().and_then(|n| u64::try_from(n).ok()).unwrap_or(0),
            size_bytes: t.table_size_bytes().and_then(|n| u64::try_from(n).ok()).unwrap_or(0),
            settings,
            tags,
        }))
    }

    async fn set_point_in_time_recovery(
        &self,
        region: &str,
        name: &str,
        on: bool,
    ) -> CloudResult<()> {
        const OP: &str = "UpdateContinuousBackups";
        let spec = PointInTimeRecoverySpecification::builder()
            .point_in_time_recovery_enabled(on)
            .build()
            .map_err(|e| CloudError::new(ErrorKind::Fatal, OP, e.to_string()))?;
        self.clients(region)
            .await
            .dynamodb
            .update_continuous_backups()
            .table_name(name)
            .point_in_time_recovery_specification(spec)
            .send()
            .await
            .map_err(|e| errors::map(OP, &e))?;
        Ok(())
    }

    async fn enable_ttl(&self, region: &str, name: &str, attribute: &str) -> CloudResult<()> {
        const OP: &str = "UpdateTimeToLive";
        let spec = TimeToLiveSpecification::builder()
            .enabled(true)
            .attribute_name(attribute)
            .build()
            .map_err(|e| CloudError::new(ErrorKind::Fatal, OP, e.to_string()))?;
        self.clients(region)
            .await
            .dynamodb
            .update_time_to_live()
            .table_name(name)
            .time_to_live_specification(spec)
            .send()
            .await
            .map_err(|e| errors::map(OP, &e))?;
        Ok(())
    }

    async fn enable_stream(&self, region: &str, name: &str, view: &str) -> CloudResult<()> {
        const OP: &str = "UpdateTable";
        let spec = StreamSpecification::builder()
            .stream_enabled(true)
            .stream_view_type(StreamViewType::from(view))
            .build()
            .map_err(|e| CloudError::new(ErrorKind::Fatal, OP, e.to_string()))?;
        self.clients(region)
            .await
            .dynamodb
            .update_table()
            .table_name(name)
            .stream_specification(spec)
            .send()
            .await
            .map_err(|e| errors::map(OP, &e))?;
        Ok(())
    }

    async fn set_deletion_protection(&self, region: &str, name: &str, on: bool) -> CloudResult<()> {
        const OP: &str = "UpdateTable";
        self.clients(region)
            .await
            .dynamodb
            .update_table()
            .table_name(name)
            .deletion_protection_enabled(on)
            .send()
            .await
            .map_err(|e| errors::map(OP, &e))?;
        Ok(())
    }

    async fn tag_table(
        &self,
        region: &str,
        arn: &str,
        tags: &BTreeMap<String, String>,
    ) -> CloudResult<()> {
        const OP: &str = "TagResource";
        let tags = tags
            .iter()
            .map(|(k, v)| Tag::builder().key(k).value(v).build())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| CloudError::new(ErrorKind::Fatal, OP, e.to_string()))?;
        self.clients(region)
            .await
            .dynamodb
            .tag_resource()
            .resource_arn(arn)
            .set_tags(Some(tags))
            .send()
            .await
            .map_err(|e| errors::map(OP, &e))?;
        Ok(())
    }

    async fn delete_table(&self, region: &str, name: &str) -> CloudResult<()> {
        const OP: &str = "DeleteTable";
        self.clients(region)
            .await
            .dynamodb
            .delete_table()
            .table_name(name)
            .send()
            .await
            .map_err(|e| errors::map(OP, &e))?;
        Ok(())
    }

    async fn count_items(&self, region: &str, name: &str, segments: u32) -> CloudResult<u64> {
        let ddb = self.clients(region).await.dynamodb;
        parallel_scan(
            &ddb,
            name,
            segments,
            (Some(Select::Count), None),
            |count: &mut u64, page| *count += u64::try_from(page.count()).unwrap_or(0),
            |a, b| a + b,
        )
        .await
    }

    async fn digest_items(
        &self,
        region: &str,
        name: &str,
        segments: u32,
    ) -> CloudResult<TableDigest> {
        let ddb = self.clients(region).await.dynamodb;
        parallel_scan(
            &ddb,
            name,
            segments,
            (None, Some(true)),
            |digest: &mut TableDigest, page| {
                for item in page.items() {
                    digest.add(&canonical(item));
                }
            },
            TableDigest::merge,
        )
        .await
    }

    async fn get_item(&self, region: &str, name: &str, key: &Item) -> CloudResult<Option<Item>> {
        const OP: &str = "GetItem";
        let out = self
            .clients(region)
            .await
            .dynamodb
            .get_item()
            .table_name(name)
            .set_key(Some(key_map(key)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| errors::map(OP, &e))?;
        Ok(out.item().map(from_item))
    }

    async fn put_item(&self, region: &str, name: &str, item: &Item) -> CloudResult<()> {
        const OP: &str = "PutItem";
        self.clients(region)
            .await
            .dynamodb
            .put_item()
            .table_name(name)
            .set_item(Some(key_map(item)))
            .send()
            .await
            .map_err(|e| errors::map(OP, &e))?;
        Ok(())
    }

    async fn delete_item(&self, region: &str, name: &str, key: &Item) -> CloudResult<()> {
        const OP: &str = "DeleteItem";
        self.clients(region)
            .await
            .dynamodb
            .delete_item()
            .table_name(name)
            .set_key(Some(key_map(key)))
            .send()
            .await
            .map_err(|e| errors::map(OP, &e))?;
        Ok(())
    }
}

#[async_trait]
impl KeyService for AwsCloud {
    async fn describe_key(&self, region: &str, key_arn: &str) -> CloudResult<KeyInfo> {
        const OP: &str = "DescribeKey";
        let out = self
            .clients(region)
            .await
            .kms
            .describe_key()
            .key_id(key_arn)
            .send()
            .await
            .map_err(|e| errors::map(OP, &e))?;
        let meta = out.key_metadata().ok_or_else(|| missing(OP, "KeyMetadata"))?;
        let arn = meta.arn().unwrap_or(key_arn).to_owned();
        let key_region = arn.split(':').nth(3).unwrap_or(region).to_owned();
        Ok(KeyInfo {
            arn,
            state: meta.key_state().map_or("Unknown", |s| s.as_str()).to_owned(),
            region: key_region,
        })
    }
}

/// Scans a table in `segments` parallel segments (with `Select` and `ConsistentRead` as
/// given): `fold` adds each page to its segment's accumulator, `merge` combines the segments'.
async fn parallel_scan<T: Default + Send + 'static>(
    ddb: &aws_sdk_dynamodb::Client,
    name: &str,
    segments: u32,
    (select, consistent_read): (Option<Select>, Option<bool>),
    fold: fn(&mut T, &aws_sdk_dynamodb::operation::scan::ScanOutput),
    merge: fn(T, T) -> T,
) -> CloudResult<T> {
    const OP: &str = "Scan";
    let total = i32::try_from(segments.clamp(1, 1_000_000)).unwrap_or(1);
    let mut tasks = tokio::task::JoinSet::new();
    for segment in 0..total {
        let ddb = ddb.clone();
        let (name, select) = (name.to_owned(), select.clone());
        tasks.spawn(async move {
            let mut acc = T::default();
            let mut start: Option<HashMap<String, AttributeValue>> = None;
            loop {
                let page = ddb
                    .scan()
                    .table_name(&name)
                    .set_select(select.clone())
                    .set_consistent_read(consistent_read)
                    .segment(segment)
                    .total_segments(total)
                    .set_exclusive_start_key(start.take())
                    .send()
                    .await
                    .map_err(|e| errors::map(OP, &e))?;
                fold(&mut acc, &page);
                match page.last_evaluated_key() {
                    Some(k) if !k.is_empty() => start = Some(k.clone()),
                    _ => return Ok::<T, CloudError>(acc),
                }
            }
        });
    }
    let mut out = T::default();
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(Ok(segment)) => out = merge(out, segment),
            Ok(Err(e)) => return Err(e),
            Err(e) => {
                let message = format!("scan segment task failed: {e}");
                return Err(CloudError::new(ErrorKind::Transient, OP, message));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_states_follow_the_model() {
        for (raw, state) in [
            ("CREATED", JobState::Created),
            ("PENDING", JobState::Created),
            ("RUNNING", JobState::Running),
            ("ABORTING", JobState::Running),
            ("COMPLETED", JobState::Completed),
            ("FAILED", JobState::Failed),
            ("ABORTED", JobState::Failed),
            ("EXPIRED", JobState::Failed),
            ("PARTIAL", JobState::Failed),
        ] {
            assert_eq!(job_state(raw), state, "{raw}");
        }
    }
}
