//! Checks before a run (`drover preflight`, run automatically before drills and failovers),
//! and readiness for a real failover (`drover check`): read-only calls, each finding with
//! what to do about it. `accounts.rs` checks the plan's accounts (roles, cross-account
//! copies) first; the checks of an account drover cannot act in are left out, since they
//! would only repeat that.

mod accounts;
pub mod pitr;

use std::future::Future;
use std::time::Duration;

use drover_plan::{Mode, Plan, format_duration};
use serde::Serialize;

use crate::policy::RetryPolicy;
use crate::ports::Ports;
use crate::ports::{CloudResult, Millis, RecoveryPoint};

/// Outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Fine.
    Pass,
    /// Worth a look; does not stop a run.
    Warn,
    /// Stops a run.
    Fail,
}

impl Status {
    /// `pass`, `warn` or `fail`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Warn => "warn",
            Status::Fail => "fail",
        }
    }
}

/// One finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// What was checked (`source-table`, `target-key`, ...).
    pub check: &'static str,
    /// What it was checked on (`orders in us-east-1`).
    pub subject: String,
    /// The outcome.
    pub status: Status,
    /// What was found.
    pub detail: String,
    /// How to fix a failure or warning.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

fn pass(check: &'static str, subject: String, detail: impl Into<String>) -> Finding {
    Finding { check, subject, status: Status::Pass, detail: detail.into(), fix: None }
}

fn fail(
    check: &'static str,
    subject: String,
    detail: impl Into<String>,
    fix: impl Into<String>,
) -> Finding {
    Finding { check, subject, status: Status::Fail, detail: detail.into(), fix: Some(fix.into()) }
}

/// How preflight retries a read: a few times over about 45 seconds, then it reports.
const PATIENCE: RetryPolicy = RetryPolicy {
    initial: Duration::from_millis(500),
    max: Duration::from_secs(10),
    give_up_after: Duration::from_secs(45),
};

async fn patient<T, F, Fut>(ports: &Ports, op: F) -> CloudResult<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = CloudResult<T>>,
{
    crate::retry::patiently(ports, &PATIENCE, op).await
}

fn age(now: Millis, then: Millis) -> Duration {
    Duration::from_millis(u64::try_from(now - then).unwrap_or(0))
}

/// Every check a `mode` run of `plan` needs to pass before it starts. `drill_short_id` is the
/// run's short id (drill table names depend on it).
pub async fn preflight(
    plan: &Plan,
    mode: Mode,
    ports: &Ports,
    drill_short_id: &str,
) -> Vec<Finding> {
    let (mut out, unreachable) = accounts::accounts(plan, mode, ports).await;
    let src = plan.source.region.as_str();
    if mode != Mode::Failover && !unreachable.contains(plan.source_account()) {
        let subject = format!("source region {src}");
        out.push(match patient(ports, || ports.backup.advanced_dynamodb_backup(src)).await {
            Ok(true) => pass("advanced-backup", subject, "advanced DynamoDB backup is on: backups can be copied"),
            Ok(false) => fail(
                "advanced-backup",
                subject,
                "advanced DynamoDB backup is off: copies of new backups would fail",
                format!(
                    "aws backup update-region-settings --region {src} --resource-type-opt-in-preference DynamoDB=true \
                     --resource-type-management-preference DynamoDB=true"
                ),
            ),
            Err(e) => fail("advanced-backup", subject, e.to_string(), "allow backup:DescribeRegionSettings"),
        });
        for t in &plan.tables {
            out.push(source_table(ports, src, &t.name).await);
        }
        let subject = format!("vault {} in {src}", plan.source.backup_vault);
        out.push(
            match patient(ports, || ports.backup.vault_arn(src, &plan.source.backup_vault)).await {
                Ok(_) => pass("source-vault", subject, "exists"),
                Err(e) => fail(
                    "source-vault",
                    subject,
                    e.to_string(),
                    "create the vault, or fix source.backup_vault",
                ),
            },
        );
    }
    for target in &plan.targets {
        if unreachable.contains(plan.target_account(target)) {
            continue;
        }
        let r = target.region.as_str();
        let subject = format!("vault {} in {r}", target.backup_vault);
        out.push(match patient(ports, || ports.backup.vault_arn(r, &target.backup_vault)).await {
            Ok(_) => pass("target-vault", subject, "exists"),
            Err(e) => fail(
                "target-vault",
                subject,
                e.to_string(),
                "create the vault with a customer-managed key, or fix the target's backup_vault",
            ),
        });
        out.push(target_key(plan, target, ports).await);
        for id in plan.tables_in(&target.region) {
            let t = plan.table(id);
            let name = match mode {
                Mode::Failover => t.name.clone(),
                Mode::Drill => plan.drill.table_name(&t.name, drill_short_id, &target.region),
                Mode::Backup | Mode::Recover => continue,
            };
            let check = if mode == Mode::Failover { "target-name" } else { "drill-name" };
            out.push(name_free(ports, check, r, &name).await);
        }
    }
    if mode == Mode::Failover {
        out.extend(readiness(plan, ports).await);
    }
    out
}

/// The source table exists and is ACTIVE.
async fn source_table(ports: &Ports, src: &str, name: &str) -> Finding {
    let subject = format!("{name} in {src}");
    match patient(ports, || ports.tables.describe_table(src, name)).await {
        Ok(Some(info)) if info.status == "DELETING" => fail(
            "source-table",
            subject,
            "is being deleted",
            "restore the table first (for example from its newest recovery point), or remove it from the plan",
        ),
        Ok(Some(info)) if info.status == "ACTIVE" => {
            pass("source-table", subject, "exists and is ACTIVE")
        }
        Ok(Some(info)) => Finding {
            check: "source-table",
            subject,
            status: Status::Warn,
            detail: format!("exists but is {}", info.status),
            fix: Some("wait for the table to be ACTIVE".to_owned()),
        },
        Ok(None) => fail(
            "source-table",
            subject,
            "does not exist",
            "create the table, or remove it from the plan",
        ),
        Err(e) => fail("source-table", subject, e.to_string(), "allow dynamodb:DescribeTable"),
    }
}

/// The target's KMS key: in the target's region and account, customer managed across
/// accounts, enabled.
async fn target_key(plan: &Plan, target: &drover_plan::Target, ports: &Ports) -> Finding {
    let r = target.region.as_str();
    let subject = format!("key {} in {r}", target.kms_key_arn);
    match patient(ports, || ports.keys.describe_key(r, &target.kms_key_arn)).await {
        Ok(k) if k.region != r => fail(
            "target-key",
            subject,
            format!("the key is in {}", k.region),
            "use a key (or a multi-Region replica) in the target region",
        ),
        Ok(k) if k.aws_managed && plan.crosses_accounts(target) => fail(
            "target-key",
            subject,
            "the key is AWS managed: a recovery in another account needs a customer-managed key",
            "create a customer-managed key in the target's account and region, and name it in kms_key_arn",
        ),
        Ok(k) if drover_plan::arn_account(&k.arn) != plan.target_account(target) => fail(
            "target-key",
            subject,
            format!(
                "the key is in account {}, the target in {}",
                drover_plan::arn_account(&k.arn),
                plan.target_account(target)
            ),
            "use a key of the target's account (restores there encrypt with it)",
        ),
        Ok(k) if k.state == "Enabled" => pass("target-key", subject, "exists and is Enabled"),
        Ok(k) => fail(
            "target-key",
            subject,
            format!("the key is {}", k.state),
            "enable the key (aws kms enable-key), or cancel its deletion",
        ),
        Err(e) => fail(
            "target-key",
            subject,
            e.to_string(),
            "create the key, or grant kms:DescribeKey on it",
        ),
    }
}

/// A table name the run restores into is free.
async fn name_free(ports: &Ports, check: &'static str, r: &str, name: &str) -> Finding {
    let subject = format!("{name} in {r}");
    match patient(ports, || ports.tables.describe_table(r, name)).await {
        Ok(None) => pass(check, subject, "the name is free"),
        Ok(Some(_)) => fail(
            check,
            subject,
            "a table with this name exists; drover never overwrites a table",
            "rename or delete that table (after checking what it is)",
        ),
        Err(e) => {
            fail(check, subject, e.to_string(), format!("allow dynamodb:DescribeTable in {r}"))
        }
    }
}

/// For each table and target, the newest recovery point in the target vault against the RPO.
pub async fn readiness(plan: &Plan, ports: &Ports) -> Vec<Finding> {
    readiness_points(plan, ports).await.0
}

/// [`readiness`], with the newest completed point found per table and target (none for a
/// vault that could not be read): what `check --publish-metrics` puts.
pub async fn readiness_points(
    plan: &Plan,
    ports: &Ports,
) -> (Vec<Finding>, Vec<crate::metrics::PointAge>) {
    let now = ports.clock.now();
    let mut out = Vec::new();
    let mut ages = Vec::new();
    for target in &plan.targets {
        let r = target.region.as_str();
        for id in plan.tables_in(&target.region) {
            let t = plan.table(id);
            let subject = format!("{} in {r}", t.name);
            let points = patient(ports, || {
                ports.backup.list_recovery_points(
                    r,
                    &target.backup_vault,
                    plan.source.region.as_str(),
                    &t.name,
                )
            })
            .await;
            let newest: Option<RecoveryPoint> = match points {
                Ok(points) => points
                    .into_iter()
                    .filter(RecoveryPoint::is_completed)
                    .max_by_key(|p| p.created_at),
                Err(e) => {
                    out.push(fail(
                        "recovery-point",
                        subject,
                        e.to_string(),
                        "allow backup:ListRecoveryPointsByBackupVault",
                    ));
                    continue;
                }
            };
            ages.push(crate::metrics::PointAge {
                table: t.name.clone(),
                target: r.to_owned(),
                newest_at: newest.as_ref().map(|p| p.created_at),
            });
            let Some(point) = newest else {
                out.push(fail(
                    "recovery-point",
                    subject,
                    format!("no completed recovery point in vault {}", target.backup_vault),
                    "add a copy rule to the backup plan, or run `drover backup PLAN`",
                ));
                continue;
            };
            let a = age(now, point.created_at);
            let detail =
                format!("newest recovery point is {} old ({})", format_duration(a), point.arn);
            out.push(match plan.objectives.rpo {
                Some(rpo) if a > rpo => fail(
                    "recovery-point",
                    subject,
                    format!("{detail}, beyond the RPO of {}", format_duration(rpo)),
                    "back up and copy more often, or run `drover backup PLAN` now",
                ),
                _ => pass("recovery-point", subject, detail),
            });
        }
    }
    (out, ages)
}

/// Checks a state store before a run: a bucket is reachable, keeps versions (so that a
/// journal object deleted or overwritten by mistake can be brought back), and is not in the
/// plan's source region (a region outage would take the run's state with it: a warning). A
/// local directory is checked by the run itself.
pub async fn state_store(plan: &Plan, store: &crate::store::Store) -> Vec<Finding> {
    use crate::store::{Store, Versioning};
    let Store::Bucket(bucket) = store else { return Vec::new() };
    let subject = bucket.objects.location();
    let facts = match bucket.objects.facts().await {
        Ok(facts) => facts,
        Err(e) => {
            return vec![fail(
                "state-bucket",
                subject,
                format!("cannot be read: {e}"),
                "check the bucket's name and region, and that you may read it (`drover \
                 iam-policy PLAN --state URL` lists the permissions)",
            )];
        }
    };
    let mut out = Vec::new();
    let bucket_name = subject.trim_start_matches("s3://").split('/').next().unwrap_or_default();
    out.push(match facts.versioning {
        Versioning::Enabled => pass("state-bucket", subject.clone(), "versioning is on"),
        other => fail(
            "state-bucket",
            subject.clone(),
            format!(
                "versioning is {}: a journal object deleted by mistake could not be brought back",
                if other == Versioning::Suspended { "suspended" } else { "off" }
            ),
            format!(
                "aws s3api put-bucket-versioning --bucket {bucket_name} \
                 --versioning-configuration Status=Enabled"
            ),
        ),
    });
    let source = plan.source.region.as_str();
    out.push(if facts.region == source {
        Finding {
            check: "state-region",
            subject,
            status: Status::Warn,
            detail: format!(
                "the bucket is in {source}, the source region: an outage there would take the \
                 runs' state with it, when a failover needs it most"
            ),
            fix: Some(
                "keep the state in a bucket in another region (a target region, or a third one)"
                    .to_owned(),
            ),
        }
    } else {
        pass(
            "state-region",
            subject,
            format!("the bucket is in {}, not in the source region {source}", facts.region),
        )
    });
    out
}
