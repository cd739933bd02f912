//! The job behind a `Start*Job` answer that names none: an idempotent replay.
//!
//! AWS Backup documents only that "retrying a successful request with the same idempotency
//! token results in a success message with no action taken" (StartBackupJob, and likewise
//! StartCopyJob and StartRestoreJob), and its model does not make `BackupJobId`, `CopyJobId`
//! or `RestoreJobId` required members of the answers. So a replay may succeed without saying
//! which job the token started: the SDK retrying an attempt whose answer was lost, the engine
//! retrying a timed-out call, a resume sending again the token it journaled before a crash.
//! The job exists (the token's first call made it); failing the call would fail the step, and
//! the step's next attempt (a new token) would start a second job.
//!
//! So the adapter looks the job up: it lists the jobs of that kind in the call's region
//! created since the step's attempt began (less [`SKEW`]; [`LOOKBACK`] before now when the
//! engine does not say), filtered by the List operation as far as its model
//! allows and then by what the request named, **paged to the end** (a List answer may carry a
//! `NextToken` after any number of jobs), and takes the newest. Jobs made by a backup plan or a
//! restore testing plan are left out: they are not answers to a `Start*Job`.
//!
//! - Backup: `ListBackupJobs` with `ByResourceArn` (the table), `ByBackupVaultName` and
//!   `ByCreatedAfter`; the same checked on each job.
//! - Copy: `ListCopyJobs` with `ByDestinationVaultArn`, `BySourceRecoveryPointArn` and
//!   `ByCreatedAfter`; `SourceRecoveryPointArn` and `DestinationBackupVaultArn` are checked on
//!   each job as well, since `BySourceRecoveryPointArn` is a late addition to the model that
//!   not every service version (nor every emulator) applies.
//! - Restore: `ListRestoreJobs` with `ByResourceType=DynamoDB` and `ByCreatedAfter` (it has no
//!   filter by recovery point or table); then `RecoveryPointArn`, and the target table from
//!   `CreatedResourceArn` when the job already names it (it does once the table exists).
//!
//! Why a short window: the list members carry no idempotency token, so "newest that matches"
//! is only right among jobs that could be the token's. The calls that replay a token (the
//! SDK's attempts, the engine's retries of one call) come within minutes of the first, so a
//! few minutes hold the token's job; a longer window would also hold an earlier attempt's job
//! of the same step, which would be taken for the token's while the lists do not show it yet.
//! The engine passes when the step's attempt began (`requested_after`, from its journal), so
//! the window opens there: a resume long after a crash finds its job, and an earlier attempt's
//! job (another token) is outside it.
//!
//! Nothing listed yet (List* reads are eventually consistent): a [`ErrorKind::Transient`]
//! error, so the engine calls `Start*Job` again with the same token, which is safe by the
//! idempotency contract, and this looks again.

use std::time::{Duration, SystemTime};

use aws_sdk_backup::types::{BackupJob, CopyJob, RestoreJobsListMember};
use aws_smithy_types::DateTime;
use drover_engine::ports::{BackupRequest, CloudResult, CopyRequest, RestoreRequest};
use drover_engine::{CloudError, ErrorKind};

use crate::errors;

/// How far back from now a replayed token's job is looked for (see the module docs): the
/// SDK's attempts of one call (at most four times the call timeout) and the engine's backoff
/// between its retries of it (at most a minute each) fit, with room for clock skew.
pub(crate) const LOOKBACK: Duration = Duration::from_secs(10 * 60);

/// How much earlier than the engine's record of an attempt's start the service may date the
/// attempt's job: the two clocks' skew.
pub(crate) const SKEW: Duration = Duration::from_secs(60);

/// The earliest creation date a replayed token's job may have: a little before the step's
/// attempt began, when the engine says when that was (a resume long after a crash still
/// finds its job, and an earlier attempt's job is left out); else [`LOOKBACK`] before now.
fn since(requested_after: Option<i64>) -> DateTime {
    let skew = i64::try_from(SKEW.as_millis()).unwrap_or(i64::MAX);
    match requested_after {
        Some(t) => DateTime::from_millis(t.saturating_sub(skew)),
        None => DateTime::from(
            SystemTime::now().checked_sub(LOOKBACK).unwrap_or(SystemTime::UNIX_EPOCH),
        ),
    }
}

/// A service timestamp in milliseconds, for ordering (none sorts first).
fn created(dt: Option<&DateTime>) -> Option<i64> {
    dt.and_then(|d| d.to_millis().ok())
}

/// The error when no job matches yet: passing, so the engine retries the `Start*Job` call.
fn not_listed(op: &str, what: &str, token: &str, since: DateTime) -> CloudError {
    CloudError::new(
        ErrorKind::Transient,
        op,
        format!(
            "the answer has no job id (an idempotent replay of token {token}) and {what} \
             created since {since} is not listed yet; the same token is safe to send again"
        ),
    )
}

/// Whether `job` may be the backup job `req` started.
fn is_backup_of(job: &BackupJob, req: &BackupRequest) -> bool {
    job.resource_arn() == Some(req.table_arn.as_str())
        && job.backup_vault_name() == Some(req.vault.as_str())
        && job.created_by().and_then(|c| c.backup_plan_id()).is_none()
}

/// Whether `job` may be the copy job `req` started.
fn is_copy_of(job: &CopyJob, req: &CopyRequest) -> bool {
    job.source_recovery_point_arn() == Some(req.recovery_point_arn.as_str())
        && job.destination_backup_vault_arn() == Some(req.destination_vault_arn.as_str())
        && job.created_by().and_then(|c| c.backup_plan_id()).is_none()
}

/// Whether `job` may be the restore job `req` started: same recovery point, and the table it
/// created (when it names one yet) is `req`'s.
fn is_restore_of(job: &RestoreJobsListMember, req: &RestoreRequest) -> bool {
    let table = format!(":table/{}", req.table_name);
    job.recovery_point_arn() == Some(req.recovery_point_arn.as_str())
        && job.created_resource_arn().is_none_or(|arn| arn.ends_with(&table))
        && job.created_by().and_then(|c| c.restore_testing_plan_arn()).is_none()
}

/// The newest of `(creation date, job id)` candidates.
fn newest(candidates: Vec<(Option<i64>, String)>) -> Option<String> {
    candidates.into_iter().max_by_key(|(created, _)| *created).map(|(_, id)| id)
}

/// The backup job `req`'s token started (`op` names the `Start*Job` for errors).
pub(crate) async fn backup_job(
    client: &aws_sdk_backup::Client,
    op: &str,
    req: &BackupRequest,
) -> CloudResult<String> {
    const LIST: &str = "ListBackupJobs";
    let since = since(req.requested_after);
    let mut found = Vec::new();
    let mut pages = client
        .list_backup_jobs()
        .by_resource_arn(&req.table_arn)
        .by_backup_vault_name(&req.vault)
        .by_created_after(since)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| errors::map(LIST, &e))?;
        for job in page.backup_jobs() {
            if let (true, Some(id)) = (is_backup_of(job, req), job.backup_job_id()) {
                found.push((created(job.creation_date()), id.to_owned()));
            }
        }
    }
    newest(found).ok_or_else(|| {
        not_listed(op, "no backup job of that table into that vault", &req.idempotency_token, since)
    })
}

/// The copy job `req`'s token started (`op` names the `Start*Job` for errors).
pub(crate) async fn copy_job(
    client: &aws_sdk_backup::Client,
    op: &str,
    req: &CopyRequest,
) -> CloudResult<String> {
    const LIST: &str = "ListCopyJobs";
    let since = since(req.requested_after);
    let mut found = Vec::new();
    let mut pages = client
        .list_copy_jobs()
        .by_destination_vault_arn(&req.destination_vault_arn)
        .by_source_recovery_point_arn(&req.recovery_point_arn)
        .by_created_after(since)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| errors::map(LIST, &e))?;
        for job in page.copy_jobs() {
            if let (true, Some(id)) = (is_copy_of(job, req), job.copy_job_id()) {
                found.push((created(job.creation_date()), id.to_owned()));
            }
        }
    }
    newest(found).ok_or_else(|| {
        not_listed(
            op,
            "no copy job of that recovery point into that vault",
            &req.idempotency_token,
            since,
        )
    })
}

/// The restore job `req`'s token started (`op` names the `Start*Job` for errors).
pub(crate) async fn restore_job(
    client: &aws_sdk_backup::Client,
    op: &str,
    req: &RestoreRequest,
) -> CloudResult<String> {
    const LIST: &str = "ListRestoreJobs";
    let since = since(req.requested_after);
    let mut found = Vec::new();
    let mut pages = client
        .list_restore_jobs()
        .by_resource_type("DynamoDB")
        .by_created_after(since)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| errors::map(LIST, &e))?;
        for job in page.restore_jobs() {
            if let (true, Some(id)) = (is_restore_of(job, req), job.restore_job_id()) {
                found.push((created(job.creation_date()), id.to_owned()));
            }
        }
    }
    newest(found).ok_or_else(|| {
        not_listed(
            op,
            "no restore job of that recovery point into that table",
            &req.idempotency_token,
            since,
        )
    })
}

#[cfg(test)]
mod tests {
    use aws_sdk_backup::types::{RecoveryPointCreator, RestoreJobCreator};

    use super::*;

    const TABLE: &str = "arn:aws:dynamodb:us-east-1:123456789012:table/orders";
    const POINT: &str = "arn:aws:backup:us-west-2:123456789012:recovery-point:ABC";
    const VAULT: &str = "arn:aws:backup:us-west-2:123456789012:backup-vault:dr-vault";

    fn backup_request() -> BackupRequest {
        BackupRequest {
            region: "us-east-1".to_owned(),
            table_arn: TABLE.to_owned(),
            vault: "prod-vault".to_owned(),
            iam_role_arn: "arn:aws:iam::123456789012:role/drover-backup".to_owned(),
            idempotency_token: "t".to_owned(),
            ..Default::default()
        }
    }

    fn plan() -> RecoveryPointCreator {
        RecoveryPointCreator::builder().backup_plan_id("plan-1").build()
    }

    #[test]
    fn a_backup_job_matches_its_table_and_vault_unless_a_plan_made_it() {
        let req = backup_request();
        let job = || BackupJob::builder().resource_arn(TABLE).backup_vault_name("prod-vault");
        assert!(is_backup_of(&job().build(), &req));
        assert!(is_backup_of(
            &job().created_by(RecoveryPointCreator::builder().build()).build(),
            &req
        ));
        assert!(!is_backup_of(&job().created_by(plan()).build(), &req));
        assert!(!is_backup_of(&job().backup_vault_name("other").build(), &req));
        assert!(!is_backup_of(&job().resource_arn(format!("{TABLE}-2")).build(), &req));
    }

    #[test]
    fn a_copy_job_matches_its_recovery_point_and_destination_unless_a_plan_made_it() {
        let req = CopyRequest {
            region: "us-east-1".to_owned(),
            recovery_point_arn: POINT.to_owned(),
            source_vault: "prod-vault".to_owned(),
            destination_vault_arn: VAULT.to_owned(),
            iam_role_arn: "arn:aws:iam::123456789012:role/drover-backup".to_owned(),
            idempotency_token: "t".to_owned(),
            ..Default::default()
        };
        let job = || {
            CopyJob::builder().source_recovery_point_arn(POINT).destination_backup_vault_arn(VAULT)
        };
        assert!(is_copy_of(&job().build(), &req));
        assert!(!is_copy_of(&job().created_by(plan()).build(), &req));
        assert!(!is_copy_of(&job().source_recovery_point_arn(format!("{POINT}D")).build(), &req));
        assert!(!is_copy_of(
            &job().destination_backup_vault_arn(format!("{VAULT}2")).build(),
            &req
        ));
    }

    #[test]
    fn a_restore_job_matches_its_recovery_point_and_the_table_it_names() {
        let req = RestoreRequest {
            region: "us-west-2".to_owned(),
            recovery_point_arn: POINT.to_owned(),
            table_name: "orders-drill".to_owned(),
            kms_key_arn: "arn:aws:kms:us-west-2:123456789012:key/k".to_owned(),
            iam_role_arn: "arn:aws:iam::123456789012:role/drover-backup".to_owned(),
            idempotency_token: "t".to_owned(),
            ..Default::default()
        };
        let job = || RestoreJobsListMember::builder().recovery_point_arn(POINT);
        let arn = |name: &str| format!("arn:aws:dynamodb:us-west-2:123456789012:table/{name}");
        assert!(is_restore_of(&job().build(), &req), "no table created yet");
        assert!(is_restore_of(&job().created_resource_arn(arn("orders-drill")).build(), &req));
        assert!(!is_restore_of(&job().created_resource_arn(arn("orders-drill-2")).build(), &req));
        assert!(!is_restore_of(&job().created_resource_arn(arn("x-orders-drill")).build(), &req));
        assert!(!is_restore_of(&job().recovery_point_arn(format!("{POINT}D")).build(), &req));
        let testing = RestoreJobCreator::builder().restore_testing_plan_arn("arn:x").build();
        assert!(!is_restore_of(&job().created_by(testing).build(), &req));
    }

    #[test]
    fn the_newest_candidate_wins() {
        let found = vec![
            (Some(2_000), "b".to_owned()),
            (None, "undated".to_owned()),
            (Some(3_000), "c".to_owned()),
            (Some(1_000), "a".to_owned()),
        ];
        assert_eq!(newest(found).as_deref(), Some("c"));
        assert_eq!(newest(Vec::new()), None);
    }

    #[test]
    fn the_window_ends_now_and_opens_a_few_minutes_before() {
        let now = DateTime::from(SystemTime::now()).secs();
        let opens = since(None).secs();
        let lookback = i64::try_from(LOOKBACK.as_secs()).unwrap();
        assert!((now - opens - lookback).abs() <= 1, "{now} {opens}");
        let e = not_listed("StartBackupJob", "no backup job", "tok", since(None));
        // With the attempt's start, the window opens a minute before it.
        assert_eq!(since(Some(1_000_000)).to_millis().unwrap(), 940_000);
        assert_eq!((e.kind, e.op.as_str()), (ErrorKind::Transient, "StartBackupJob"));
        assert!(e.message.contains("tok") && e.message.contains("not listed yet"), "{e:?}");
    }
}
