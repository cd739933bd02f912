//! AWS Backup: backup, copy and restore jobs (start, with windows, lifecycle and tags;
//! describe, and the mapping of their states), recovery points of a vault (list, by table or
//! all of them; their tags; delete), vault ARNs and the region's DynamoDB backup settings.
//!
//! A `Start*Job` answer without a job id (an idempotent replay) is resolved by listing the
//! jobs of that kind: [`jobs`].

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use aws_sdk_backup::types::Lifecycle;
use drover_engine::ErrorKind;
use drover_engine::ports::{
    BackupRequest, BackupService, CloudResult, CopyRequest, JobState, JobStatus, Millis,
    RecoveryPoint, RestoreRequest, VaultInfo, VaultLock,
};

use crate::errors::{self, missing};
use crate::{AwsCloud, jobs};

/// A service timestamp in milliseconds since the epoch (none if it is out of range).
fn millis(dt: Option<&aws_smithy_types::DateTime>) -> Option<Millis> {
    dt.and_then(|d| d.to_millis().ok())
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

/// A job status from the fields the three Describe*Job answers share.
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

/// A recovery point's `Lifecycle`: deleted after `days`, never moved to cold storage (cold
/// points cannot be copied, and AWS requires 90 days in cold storage before deletion).
fn lifecycle(days: Option<u32>) -> Option<Lifecycle> {
    days.map(|d| Lifecycle::builder().delete_after_days(i64::from(d)).build())
}

#[async_trait]
impl BackupService for AwsCloud {
    async fn start_backup_job(&self, req: &BackupRequest) -> CloudResult<String> {
        const OP: &str = "StartBackupJob";
        let client = self.clients(&req.region).await.backup;
        let out = client
            .start_backup_job()
            .backup_vault_name(&req.vault)
            .resource_arn(&req.table_arn)
            .iam_role_arn(&req.iam_role_arn)
            .idempotency_token(&req.idempotency_token)
            .set_start_window_minutes(req.start_window_minutes.map(i64::from))
            .set_complete_window_minutes(req.complete_window_minutes.map(i64::from))
            .set_lifecycle(lifecycle(req.delete_after_days))
            .set_recovery_point_tags(
                (!req.tags.is_empty())
                    .then(|| req.tags.iter().map(|(k, v)| (k.clone(), v.clone())).collect()),
            )
            .send()
            .await
            .map_err(|e| errors::map(OP, &e))?;
        // A replay of a used token may succeed without the id: look the job up.
        match out.backup_job_id() {
            Some(id) => Ok(id.to_owned()),
            None => jobs::backup_job(&client, OP, req).await,
        }
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
        let client = self.clients(&req.region).await.backup;
        let out = client
            .start_copy_job()
            .recovery_point_arn(&req.recovery_point_arn)
            .source_backup_vault_name(&req.source_vault)
            .destination_backup_vault_arn(&req.destination_vault_arn)
            .iam_role_arn(&req.iam_role_arn)
            .idempotency_token(&req.idempotency_token)
            .set_lifecycle(lifecycle(req.delete_after_days))
            .send()
            .await
            .map_err(|e| errors::map(OP, &e))?;
        match out.copy_job_id() {
            Some(id) => Ok(id.to_owned()),
            None => jobs::copy_job(&client, OP, req).await,
        }
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
        let client = self.clients(&req.region).await.backup;
        let out = client
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
        match out.restore_job_id() {
            Some(id) => Ok(id.to_owned()),
            None => jobs::restore_job(&client, OP, req).await,
        }
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
        let suffix = format!(":table/{table_name}");
        let region_part = format!(":dynamodb:{source_region}:");
        self.vault_points(region, vault, &|resource| {
            resource.ends_with(&suffix) && resource.contains(&region_part)
        })
        .await
    }

    async fn list_vault_recovery_points(
        &self,
        region: &str,
        vault: &str,
    ) -> CloudResult<Vec<RecoveryPoint>> {
        self.vault_points(region, vault, &|_| true).await
    }

    async fn recovery_point_tags(
        &self,
        region: &str,
        arn: &str,
    ) -> CloudResult<BTreeMap<String, String>> {
        const OP: &str = "ListTags";
        let backup = self.clients(region).await.backup;
        let mut tags = BTreeMap::new();
        let mut next: Option<String> = None;
        loop {
            let page = backup
                .list_tags()
                .resource_arn(arn)
                .set_next_token(next.take())
                .send()
                .await
                .map_err(|e| errors::map(OP, &e))?;
            if let Some(page_tags) = page.tags() {
                tags.extend(page_tags.iter().map(|(k, v)| (k.clone(), v.clone())));
            }
            match page.next_token() {
                Some(token) if !token.is_empty() => next = Some(token.to_owned()),
                _ => return Ok(tags),
            }
        }
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

    async fn delete_recovery_point(&self, region: &str, vault: &str, arn: &str) -> CloudResult<()> {
        const OP: &str = "DeleteRecoveryPoint";
        self.clients(region)
            .await
            .backup
            .delete_recovery_point()
            .backup_vault_name(vault)
            .recovery_point_arn(arn)
            .send()
            .await
            .map_err(|e| errors::map(OP, &e))?;
        Ok(())
    }

    async fn describe_vault(&self, region: &str, vault: &str) -> CloudResult<VaultInfo> {
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
        let days = |d: Option<i64>| d.and_then(|d| u32::try_from(d).ok());
        Ok(VaultInfo {
            arn: out.backup_vault_arn().ok_or_else(|| missing(OP, "BackupVaultArn"))?.to_owned(),
            encryption_key_arn: out.encryption_key_arn().map(str::to_owned),
            lock: (out.locked() == Some(true)).then(|| VaultLock {
                min_retention_days: days(out.min_retention_days()),
                max_retention_days: days(out.max_retention_days()),
            }),
        })
    }

    async fn vault_access_policy(&self, region: &str, vault: &str) -> CloudResult<Option<String>> {
        const OP: &str = "GetBackupVaultAccessPolicy";
        let answer = self
            .clients(region)
            .await
            .backup
            .get_backup_vault_access_policy()
            .backup_vault_name(vault)
            .send()
            .await;
        match answer {
            Ok(out) => Ok(out.policy().map(str::to_owned)),
            // A vault without a policy answers ResourceNotFoundException, as a missing vault
            // does: tell them apart by asking for the vault.
            Err(e) => {
                let e = errors::map(OP, &e);
                if e.kind == ErrorKind::NotFound {
                    self.vault_arn(region, vault).await?;
                    return Ok(None);
                }
                Err(e)
            }
        }
    }

    async fn cross_account_backup(&self, region: &str) -> CloudResult<bool> {
        const OP: &str = "DescribeGlobalSettings";
        let out = self
            .clients(region)
            .await
            .backup
            .describe_global_settings()
            .send()
            .await
            .map_err(|e| errors::map(OP, &e))?;
        Ok(out
            .global_settings()
            .and_then(|s| s.get("isCrossAccountBackupEnabled"))
            .is_some_and(|v| v.eq_ignore_ascii_case("true")))
    }
}
impl AwsCloud {
    /// The DynamoDB recovery points of a vault whose resource ARN `keep` accepts
    /// (ListRecoveryPointsByBackupVault by resource type, every page), newest first.
    async fn vault_points(
        &self,
        region: &str,
        vault: &str,
        keep: &(dyn Fn(&str) -> bool + Sync),
    ) -> CloudResult<Vec<RecoveryPoint>> {
        const OP: &str = "ListRecoveryPointsByBackupVault";
        let client = self.clients(region).await.backup;
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
                let Some(resource) = p.resource_arn().filter(|r| keep(r)) else { continue };
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
                    backup_plan_id: p
                        .created_by()
                        .and_then(|c| c.backup_plan_id())
                        .filter(|id| !id.is_empty())
                        .map(str::to_owned),
                });
            }
        }
        points.sort_by_key(|p| std::cmp::Reverse(p.created_at));
        Ok(points)
    }
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
