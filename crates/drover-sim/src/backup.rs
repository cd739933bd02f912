//! AWS Backup ([`BackupService`]): backup, copy and restore jobs (their effects are in
//! [`crate::jobs`]), recovery points (with their tags), vaults (their policies and locks),
//! region settings and the Organization's global settings.

use std::collections::BTreeMap;

use async_trait::async_trait;
use drover_engine::ErrorKind;
use drover_engine::ports::{
    BackupRequest, BackupService, CloudResult, CopyRequest, JobStatus, RecoveryPoint,
    RestoreRequest, VaultInfo,
};

use crate::cloud::SimCloud;
use crate::err;
use crate::identity;
use crate::items::ITEM_BYTES;
use crate::model::JobKind;
use crate::realism;
use crate::world::{Point, TableEvent, Work, World};

#[async_trait]
impl BackupService for SimCloud {
    async fn start_backup_job(&self, req: &BackupRequest) -> CloudResult<String> {
        const OP: &str = "StartBackupJob";
        self.op(OP, &req.region, |w, now| {
            may_pass(w, OP, &req.region, &req.iam_role_arn)?;
            let account = w.account_of(&req.region).to_owned();
            let point_id = w.rng.new_id();
            let realism = w.realism.clone();
            let r = w.region(OP, &req.region)?;
            let advanced = r.advanced_backup;
            let Some(vault) = r.vaults.get(&req.vault) else {
                return Err(err(
                    ErrorKind::NotFound,
                    OP,
                    format!("Backup vault {} does not exist", req.vault),
                ));
            };
            let key_arn = vault.key_arn.clone();
            let name = req.table_arn.rsplit('/').next().unwrap_or_default().to_owned();
            let Some(t) = r.tables.get_mut(&name).filter(|t| t.arn == req.table_arn) else {
                return Err(err(
                    ErrorKind::NotFound,
                    OP,
                    format!("Resource {} not found", req.table_arn),
                ));
            };
            // What the snapshot holds: not the writes of the last `backup_lag_ms`.
            let (items, missed) = t.realism.backup_of(&realism, &t.items, now);
            let size = items.count(&t.schema) * ITEM_BYTES;
            let arn = if advanced {
                format!("arn:aws:backup:{}:{account}:recovery-point:{point_id}", req.region)
            } else {
                format!("{}/backup/{:014}-{}", t.arn, now, &point_id[..8])
            };
            // "AWS Backup copies tags from the resources it protects to your recovery points
            // ... Tags that are assigned during backup have priority"; DynamoDB backups carry
            // tags only with advanced DynamoDB backup (AWS Backup developer guide, tags on
            // backups).
            let mut tags = BTreeMap::new();
            if advanced {
                tags.clone_from(&t.tags);
                tags.extend(req.tags.iter().map(|(k, v)| (k.clone(), v.clone())));
            }
            let point = Point {
                arn,
                vault: req.vault.clone(),
                resource_arn: t.arn.clone(),
                created_at: now,
                key_arn: if advanced { key_arn } else { t.kms_key_arn.clone() },
                advanced,
                size,
                schema: t.schema.clone(),
                items,
                deleting_until: None,
                tags,
                delete_after_days: req.delete_after_days,
            };
            let resource = Some(t.arn.clone());
            for _ in 0..missed {
                w.saw("backup_lag_ms");
            }
            let work =
                Work::Backup { table: name, vault: req.vault.clone(), point: Box::new(point) };
            w.start_job(OP, &req.region, &req.idempotency_token, size, now, resource, work)
        })
        .await
    }

    async fn describe_backup_job(&self, region: &str, job_id: &str) -> CloudResult<JobStatus> {
        self.describe("DescribeBackupJob", region, job_id, JobKind::Backup).await
    }

    async fn start_copy_job(&self, req: &CopyRequest) -> CloudResult<String> {
        const OP: &str = "StartCopyJob";
        self.op(OP, &req.region, |w, now| {
            may_pass(w, OP, &req.region, &req.iam_role_arn)?;
            let (dest_region, dest_account, dest_vault) =
                parse_vault_arn(&req.destination_vault_arn).ok_or_else(|| {
                    err(
                        ErrorKind::Fatal,
                        OP,
                        format!("Invalid destination vault ARN {}", req.destination_vault_arn),
                    )
                })?;
            // Into another account, the source account cannot see the vault: what AWS Backup
            // finds there (or not) the job's end tells ([`crate::jobs`]).
            let same_account = dest_account == w.account_of(&req.region);
            let dest_found = w.account_of(&dest_region) == dest_account
                && w.regions.get(&dest_region).is_some_and(|r| r.vaults.contains_key(&dest_vault));
            let r = w.region(OP, &req.region)?;
            let Some(point) =
                r.vaults.get(&req.source_vault).and_then(|v| v.points.get(&req.recovery_point_arn))
            else {
                return Err(err(
                    ErrorKind::NotFound,
                    OP,
                    format!("Recovery point {} not found", req.recovery_point_arn),
                ));
            };
            if point.deleting_until.is_some() {
                return Err(realism::point_deleting(OP, &req.recovery_point_arn));
            }
            let size = point.size;
            let resource = Some(point.resource_arn.clone());
            if same_account && !dest_found {
                return Err(err(
                    ErrorKind::NotFound,
                    OP,
                    format!("Backup vault {} does not exist", req.destination_vault_arn),
                ));
            }
            let work = Work::Copy {
                source_point: req.recovery_point_arn.clone(),
                source_vault: req.source_vault.clone(),
                dest_region,
                dest_vault,
                dest_point: None,
                dest_account: Some(dest_account),
                delete_after_days: req.delete_after_days,
                role: req.iam_role_arn.clone(),
            };
            w.start_job(OP, &req.region, &req.idempotency_token, size, now, resource, work)
        })
        .await
    }

    async fn describe_copy_job(&self, region: &str, job_id: &str) -> CloudResult<JobStatus> {
        self.describe("DescribeCopyJob", region, job_id, JobKind::Copy).await
    }

    async fn start_restore_job(&self, req: &RestoreRequest) -> CloudResult<String> {
        const OP: &str = "StartRestoreJob";
        self.op(OP, &req.region, |w, now| {
            may_pass(w, OP, &req.region, &req.iam_role_arn)?;
            let r = w.region(OP, &req.region)?;
            let Some(point) = r.vaults.values().find_map(|v| v.points.get(&req.recovery_point_arn))
            else {
                return Err(err(
                    ErrorKind::NotFound,
                    OP,
                    format!("Recovery point {} not found", req.recovery_point_arn),
                ));
            };
            if point.deleting_until.is_some() {
                return Err(realism::point_deleting(OP, &req.recovery_point_arn));
            }
            let size = point.size;
            let work = Work::Restore {
                point: req.recovery_point_arn.clone(),
                table: req.table_name.clone(),
                kms_key_arn: req.kms_key_arn.clone(),
                created: None,
            };
            w.start_job(OP, &req.region, &req.idempotency_token, size, now, None, work)
        })
        .await
    }

    async fn describe_restore_job(&self, region: &str, job_id: &str) -> CloudResult<JobStatus> {
        self.describe("DescribeRestoreJob", region, job_id, JobKind::Restore).await
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
        self.vault_points(region, vault, |resource| {
            resource.ends_with(&suffix) && resource.contains(&region_part)
        })
        .await
    }

    async fn list_vault_recovery_points(
        &self,
        region: &str,
        vault: &str,
    ) -> CloudResult<Vec<RecoveryPoint>> {
        self.vault_points(region, vault, |_| true).await
    }

    async fn recovery_point_tags(
        &self,
        region: &str,
        arn: &str,
    ) -> CloudResult<BTreeMap<String, String>> {
        const OP: &str = "ListTags";
        self.op(OP, region, |w, _| {
            // "ListTags only works for resource types that support full AWS Backup management"
            // (ARNs that begin arn:aws:backup; AWS Backup API reference, ListTags).
            if !arn.starts_with("arn:aws:backup:") {
                return Err(err(
                    ErrorKind::Fatal,
                    OP,
                    format!(
                        "InvalidParameterValueException: {arn} is not a resource fully managed by AWS Backup"
                    ),
                ));
            }
            let r = w.region(OP, region)?;
            r.vaults.values().find_map(|v| v.points.get(arn)).map(|p| p.tags.clone()).ok_or_else(
                || err(ErrorKind::NotFound, OP, format!("Recovery point {arn} does not exist")),
            )
        })
        .await
    }

    async fn advanced_dynamodb_backup(&self, region: &str) -> CloudResult<bool> {
        self.describe_settings(region).await
    }

    async fn delete_recovery_point(&self, region: &str, vault: &str, arn: &str) -> CloudResult<()> {
        const OP: &str = "DeleteRecoveryPoint";
        self.op(OP, region, |w, now| {
            // A point an unfinished copy job reads cannot be deleted yet (AWS Backup:
            // InvalidResourceStateException, "try again later").
            if w.copy_reading(arn) {
                return Err(err(
                    ErrorKind::Transient,
                    OP,
                    format!("InvalidResourceStateException: a copy job is reading {arn}"),
                ));
            }
            let lingers = w.realism.point_lingers(now);
            let r = w.region(OP, region)?;
            let v = r.vaults.get_mut(vault).ok_or_else(|| {
                err(ErrorKind::NotFound, OP, format!("Backup vault {vault} does not exist"))
            })?;
            // "Vault Lock ... preventing attempts to delete any recovery point stored in or
            // created in a backup vault" (PutBackupVaultLockConfiguration).
            if v.lock.is_some() && v.points.contains_key(arn) {
                return Err(vault_locked(OP, vault, arn));
            }
            let point = v.points.get_mut(arn).ok_or_else(|| {
                err(ErrorKind::NotFound, OP, format!("Recovery point {arn} does not exist"))
            })?;
            if point.deleting_until.is_some() {
                w.saw("point_delete_ms");
                return Err(realism::point_already_deleting(OP, arn));
            }
            match lingers {
                Some(until) => {
                    point.deleting_until = Some(until);
                    let what =
                        TableEvent::Point(region.to_owned(), vault.to_owned(), arn.to_owned());
                    w.table_event(until, what);
                }
                None => {
                    v.points.remove(arn);
                }
            }
            Ok(())
        })
        .await
    }

    async fn describe_vault(&self, region: &str, vault: &str) -> CloudResult<VaultInfo> {
        const OP: &str = "DescribeBackupVault";
        self.op(OP, region, |w, _| {
            let r = w.region(OP, region)?;
            let v = r.vaults.get(vault).ok_or_else(|| {
                err(ErrorKind::NotFound, OP, format!("Backup vault {vault} does not exist"))
            })?;
            Ok(VaultInfo {
                arn: v.arn.clone(),
                encryption_key_arn: v.key_arn.clone(),
                lock: v.lock,
            })
        })
        .await
    }

    async fn vault_access_policy(&self, region: &str, vault: &str) -> CloudResult<Option<String>> {
        const OP: &str = "GetBackupVaultAccessPolicy";
        self.op(OP, region, |w, _| {
            let r = w.region(OP, region)?;
            r.vaults.get(vault).map(|v| v.access_policy.clone()).ok_or_else(|| {
                err(ErrorKind::NotFound, OP, format!("Backup vault {vault} does not exist"))
            })
        })
        .await
    }

    async fn cross_account_backup(&self, region: &str) -> CloudResult<bool> {
        const OP: &str = "DescribeGlobalSettings";
        self.op(OP, region, |w, _| {
            let account = w.account_of(region);
            // "Returns an error if the account is not a member of an Organizations
            // organization" (DescribeGlobalSettings; its one client error is
            // InvalidRequestException).
            match &w.organization {
                Some(org) if org.has(account) => Ok(org.cross_account_backup),
                _ => Err(err(
                    ErrorKind::InvalidState,
                    OP,
                    "InvalidRequestException: Your account is not a member of an organization.",
                )),
            }
        })
        .await
    }
}

impl SimCloud {
    /// The recovery points of a vault whose resource ARN `keep` accepts
    /// (ListRecoveryPointsByBackupVault), newest first.
    async fn vault_points(
        &self,
        region: &str,
        vault: &str,
        keep: impl Fn(&str) -> bool + Send,
    ) -> CloudResult<Vec<RecoveryPoint>> {
        const OP: &str = "ListRecoveryPointsByBackupVault";
        self.op(OP, region, |w, _| {
            let r = w.region(OP, region)?;
            let v = r.vaults.get(vault).ok_or_else(|| {
                err(ErrorKind::NotFound, OP, format!("Backup vault {vault} does not exist"))
            })?;
            let mut points: Vec<RecoveryPoint> = v
                .points
                .values()
                .filter(|p| keep(&p.resource_arn))
                .map(|p| RecoveryPoint {
                    arn: p.arn.clone(),
                    vault: vault.to_owned(),
                    resource_arn: p.resource_arn.clone(),
                    created_at: p.created_at,
                    status: if p.deleting_until.is_some() { "DELETING" } else { "COMPLETED" }
                        .to_owned(),
                    size_bytes: Some(p.size),
                    encryption_key_arn: p.key_arn.clone(),
                    backup_plan_id: None,
                })
                .collect();
            points.sort_by_key(|p| std::cmp::Reverse(p.created_at));
            Ok(points)
        })
        .await
    }

    /// Whether advanced DynamoDB backup is on in the region (DescribeRegionSettings).
    async fn describe_settings(&self, region: &str) -> CloudResult<bool> {
        const OP: &str = "DescribeRegionSettings";
        self.op(OP, region, |w, _| Ok(w.region(OP, region)?.advanced_backup)).await
    }

    /// A job of `kind` in `region`, as `op` (a `Describe*Job`) reports it.
    async fn describe(
        &self,
        op: &str,
        region: &str,
        job_id: &str,
        kind: JobKind,
    ) -> CloudResult<JobStatus> {
        self.op(op, region, |w, now| {
            let job = w
                .jobs
                .get(job_id)
                .filter(|j| j.region == region && j.kind == kind)
                .filter(|j| w.faults.job_visible(j.created_at, now));
            let unseen = job.is_some_and(|j| !w.realism.job_visible(j.created_at, now));
            let found = job.filter(|_| !unseen).map(|j| w.status(j, now));
            if unseen {
                w.saw("unseen_jobs_ms");
            }
            found.ok_or_else(|| err(ErrorKind::NotFound, op, format!("Job {job_id} not found")))
        })
        .await
    }
}

/// Refuses a role of another account than `region`'s: "You can only use the PassRole
/// permission to pass an IAM role to a service that shares the same AWS account" (IAM User
/// Guide, passing a role), answered as a denial, as the emulator does.
fn may_pass(w: &World, op: &str, region: &str, role: &str) -> CloudResult<()> {
    let account = w.account_of(region);
    match drover_plan::arn_account(role) {
        "" => Ok(()),
        of_role if of_role == account => Ok(()),
        _ => Err(err(
            ErrorKind::AccessDenied,
            op,
            format!(
                "AccessDeniedException: User: {} is not authorized to perform: iam:PassRole on \
                 resource: {role}",
                identity::session_arn(account)
            ),
        )),
    }
}

/// What DeleteRecoveryPoint answers in a vault under Vault Lock.
fn vault_locked(op: &str, vault: &str, arn: &str) -> drover_engine::CloudError {
    err(
        ErrorKind::InvalidState,
        op,
        format!(
            "InvalidRequestException: Recovery point {arn} cannot be deleted: backup vault \
             {vault} is protected by AWS Backup Vault Lock."
        ),
    )
}

/// The region, account and name a backup vault ARN names.
fn parse_vault_arn(arn: &str) -> Option<(String, String, String)> {
    let parts: Vec<&str> = arn.splitn(7, ':').collect();
    (parts.len() == 7 && parts[2] == "backup" && parts[5] == "backup-vault")
        .then(|| (parts[3].to_owned(), parts[4].to_owned(), parts[6].to_owned()))
}
