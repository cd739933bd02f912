//! Accounts, through the ports and without the engine: regions in accounts and the ARNs they
//! give, copies into another account's vault (the Organization, the vault's access policy, an
//! AWS managed key), Vault Lock, keys' policies, who the caller is; every call of a persisted
//! world checked against its files; older files and records without any of it.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use drover_engine::ErrorKind;
use drover_engine::ports::{
    BackupRequest, BackupService as _, CopyRequest, IdentityService as _, JobState, JobStatus,
    KeyService as _, Millis, RestoreRequest, TableService as _, VaultLock,
};
use drover_engine::{CloudError, SystemClock};

use crate::jobs::{
    AWS_MANAGED_DESTINATION_KEY, COPY_ACCESS_DENIED, CROSS_ACCOUNT_DISABLED, NOT_SAME_ORGANIZATION,
};
use crate::{DurationModel, Organization, SimCloud};

const T0: Millis = 1_795_000_000_000;
const SRC: &str = "us-east-1";
const DST: &str = "us-west-2";
const SOURCE: &str = "123456789012";
const RECOVERY: &str = "210987654321";
const ROLE: &str = "arn:aws:iam::123456789012:role/drover-backup";
const DST_KEY: &str = "arn:aws:kms:us-west-2:210987654321:key/1111aaaa-22bb-33cc-44dd-555555eeeeee";
const DST_VAULT: &str = "arn:aws:backup:us-west-2:210987654321:backup-vault:dr";

/// The source region in the world's account, the target region in another: a table, the
/// source vault, the target's key and vault; no Organization, no policy. Every call is checked
/// against the files when `dir` is given.
fn world(dir: Option<&std::path::Path>) -> SimCloud {
    let sim = SimCloud::new(SOURCE, 5, Arc::new(SystemClock::starting_at(T0)));
    let sim = match dir {
        Some(dir) => {
            let sim = sim.persist_to(&dir.join("sim.json")).unwrap();
            sim.verify_persistence(0);
            sim
        }
        None => sim,
    };
    sim.add_region(SRC);
    sim.set_account(DST, RECOVERY);
    sim.add_vault(SRC, "prod", None);
    sim.add_key(DST, DST_KEY);
    sim.add_vault(DST, "dr", Some(DST_KEY));
    sim.add_table(SRC, "orders", "pk", None, 10, &[]);
    sim
}

/// What a copy into another account needs: both accounts in one Organization with
/// cross-account backup on, and the target vault letting the source copy in.
fn allow_cross_account(sim: &SimCloud) {
    sim.set_organization(Some(Organization::new(SOURCE, [RECOVERY], true)));
    sim.allow_copies_from(DST, "dr", &[SOURCE]);
}

/// Polls a job until it ends (jobs take the default model's minutes, in paused time).
async fn done(f: impl AsyncFn() -> Result<JobStatus, CloudError>) -> JobStatus {
    for _ in 0..100 {
        let status = f().await.unwrap();
        if matches!(status.state, JobState::Completed | JobState::Failed) {
            return status;
        }
        tokio::time::sleep(std::time::Duration::from_secs(60)).await;
    }
    panic!("the job did not end");
}

/// A completed backup of `orders` into `vault` (kept `days`): its recovery point.
async fn backup(sim: &SimCloud, vault: &str, days: Option<u32>, token: &str) -> JobStatus {
    let req = BackupRequest {
        region: SRC.to_owned(),
        table_arn: format!("arn:aws:dynamodb:{SRC}:{SOURCE}:table/orders"),
        vault: vault.to_owned(),
        iam_role_arn: ROLE.to_owned(),
        idempotency_token: token.to_owned(),
        delete_after_days: days,
        ..Default::default()
    };
    let job = sim.start_backup_job(&req).await.unwrap();
    done(async || sim.describe_backup_job(SRC, &job).await).await
}

/// A copy of `point` into the target vault (kept `days`), to its end.
async fn copy(sim: &SimCloud, point: &str, days: Option<u32>, token: &str) -> JobStatus {
    let req = CopyRequest {
        region: SRC.to_owned(),
        recovery_point_arn: point.to_owned(),
        source_vault: "prod".to_owned(),
        destination_vault_arn: DST_VAULT.to_owned(),
        iam_role_arn: ROLE.to_owned(),
        idempotency_token: token.to_owned(),
        delete_after_days: days,
        ..Default::default()
    };
    let job = sim.start_copy_job(&req).await.unwrap();
    done(async || sim.describe_copy_job(SRC, &job).await).await
}

async fn source_point(sim: &SimCloud) -> String {
    let b = backup(sim, "prod", Some(30), "b").await;
    assert_eq!(b.state, JobState::Completed, "{b:?}");
    b.recovery_point_arn.unwrap()
}

#[tokio::test(start_paused = true)]
async fn regions_are_in_accounts_and_their_arns_say_so() {
    let sim = world(None);
    let table = sim.describe_table(SRC, "orders").await.unwrap().unwrap();
    assert_eq!(table.arn, format!("arn:aws:dynamodb:{SRC}:{SOURCE}:table/orders"));
    assert_eq!(
        sim.vault_arn(SRC, "prod").await.unwrap(),
        format!("arn:aws:backup:{SRC}:{SOURCE}:backup-vault:prod")
    );
    assert_eq!(sim.vault_arn(DST, "dr").await.unwrap(), DST_VAULT);
    let point = source_point(&sim).await;
    assert!(
        point.starts_with(&format!("arn:aws:backup:{SRC}:{SOURCE}:recovery-point:")),
        "{point}"
    );
    sim.with(|w| {
        assert_eq!((w.account_of(SRC), w.account_of(DST)), (SOURCE, RECOVERY));
        assert_eq!(w.account_of("eu-west-1"), SOURCE, "a region that names none: the world's");
    });
    // Who drover is: a role's session in each region's account.
    for (region, account) in [(SRC, SOURCE), (DST, RECOVERY)] {
        let me = sim.caller_identity(region).await.unwrap();
        assert_eq!(me.account, account);
        assert!(me.arn.starts_with(&format!("arn:aws:sts::{account}:assumed-role/")), "{me:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_copy_into_another_account_lands_there_when_the_organization_and_the_vault_allow_it() {
    let dir = tempfile::tempdir().unwrap();
    let sim = world(Some(dir.path()));
    allow_cross_account(&sim);
    let point = source_point(&sim).await;
    let c = copy(&sim, &point, Some(30), "c").await;
    assert_eq!(c.state, JobState::Completed, "{c:?}");
    let copied = c.recovery_point_arn.unwrap();
    assert!(
        copied.starts_with(&format!("arn:aws:backup:{DST}:{RECOVERY}:recovery-point:")),
        "{copied}"
    );
    let listed = sim.list_recovery_points(DST, "dr", SRC, "orders").await.unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].arn, copied);
    assert_eq!(listed[0].encryption_key_arn.as_deref(), Some(DST_KEY));
    assert_eq!(listed[0].resource_arn, format!("arn:aws:dynamodb:{SRC}:{SOURCE}:table/orders"));
    // Restored in the target account, with the target account's role.
    let restore = RestoreRequest {
        region: DST.to_owned(),
        recovery_point_arn: copied.clone(),
        table_name: "orders-dr".to_owned(),
        kms_key_arn: DST_KEY.to_owned(),
        iam_role_arn: format!("arn:aws:iam::{RECOVERY}:role/drover-restore"),
        idempotency_token: "r".to_owned(),
        ..Default::default()
    };
    let job = sim.start_restore_job(&restore).await.unwrap();
    let r = done(async || sim.describe_restore_job(DST, &job).await).await;
    assert_eq!(r.state, JobState::Completed, "{r:?}");
    assert_eq!(
        r.created_resource_arn.as_deref(),
        Some(format!("arn:aws:dynamodb:{DST}:{RECOVERY}:table/orders-dr").as_str())
    );
    // A role of another account cannot be passed (iam:PassRole), whatever the job.
    let foreign = RestoreRequest {
        iam_role_arn: ROLE.to_owned(),
        idempotency_token: "r2".to_owned(),
        table_name: "orders-dr2".to_owned(),
        ..restore
    };
    let e = sim.start_restore_job(&foreign).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::AccessDenied, "{e:?}");
    assert!(e.message.contains("iam:PassRole"), "{e:?}");
    drop(sim);
    // The finished world loads with all of it.
    let loaded =
        SimCloud::load(&dir.path().join("sim.json"), Arc::new(SystemClock::starting_at(T0)))
            .unwrap();
    assert_eq!(loaded.with(|w| w.account_of(DST).to_owned()), RECOVERY);
    assert!(loaded.with(|w| w.organization.clone()).is_some_and(|o| o.cross_account_backup));
    assert!(loaded.vault_access_policy(DST, "dr").await.unwrap().is_some());
}

#[tokio::test(start_paused = true)]
async fn a_copy_into_another_account_fails_as_a_job_for_each_missing_leave() {
    let dir = tempfile::tempdir().unwrap();
    let sim = world(Some(dir.path()));
    let point = source_point(&sim).await;
    let failed = async |token: &str| {
        let c = copy(&sim, &point, Some(30), token).await;
        assert_eq!((c.state, c.recovery_point_arn.as_deref()), (JobState::Failed, None), "{c:?}");
        c.message.unwrap()
    };
    // No Organization; accounts in different ones (or one outside it).
    assert_eq!(failed("no-org").await, NOT_SAME_ORGANIZATION);
    sim.set_organization(Some(Organization::new(SOURCE, ["999999999999"], true)));
    assert_eq!(failed("other-org").await, NOT_SAME_ORGANIZATION);
    // One Organization, but cross-account backup off.
    sim.set_organization(Some(Organization::new(SOURCE, [RECOVERY], false)));
    assert_eq!(failed("off").await, CROSS_ACCOUNT_DISABLED);
    // On, but the vault has no policy, or one for someone else, or one that denies.
    sim.set_organization(Some(Organization::new(SOURCE, [RECOVERY], true)));
    assert_eq!(failed("no-policy").await, COPY_ACCESS_DENIED);
    sim.allow_copies_from(DST, "dr", &["999999999999"]);
    assert_eq!(failed("other-account").await, COPY_ACCESS_DENIED);
    let deny = serde_json::json!({"Statement": [
        {"Effect": "Allow", "Principal": "*", "Action": "backup:*", "Resource": "*"},
        {"Effect": "Deny", "Principal": {"AWS": ROLE}, "Action": "backup:CopyIntoBackupVault", "Resource": "*"},
    ]});
    sim.set_vault_access_policy(DST, "dr", Some(&deny.to_string()));
    assert_eq!(failed("denied").await, COPY_ACCESS_DENIED);
    // A policy conditioned on the Organization's id lets its accounts in.
    let org_id = sim.with(|w| w.organization.clone().unwrap().id);
    let by_org = serde_json::json!({"Statement": [{"Effect": "Allow", "Principal": "*",
        "Action": "backup:CopyIntoBackupVault", "Resource": "*",
        "Condition": {"StringEquals": {"aws:PrincipalOrgID": org_id}}}]});
    sim.set_vault_access_policy(DST, "dr", Some(&by_org.to_string()));
    assert_eq!(copy(&sim, &point, Some(30), "by-org").await.state, JobState::Completed);
    // The vault's key is AWS managed (the account's aws/backup).
    sim.allow_copies_from(DST, "dr", &[SOURCE]);
    let aws_backup = sim.aws_backup_key(DST);
    assert!(aws_backup.starts_with(&format!("arn:aws:kms:{DST}:{RECOVERY}:key/")), "{aws_backup}");
    assert_eq!(sim.aws_backup_key(DST), aws_backup, "made once");
    sim.add_vault(DST, "managed", Some(&aws_backup));
    sim.allow_copies_from(DST, "managed", &[SOURCE]);
    let req = CopyRequest {
        region: SRC.to_owned(),
        recovery_point_arn: point.clone(),
        source_vault: "prod".to_owned(),
        destination_vault_arn: format!("arn:aws:backup:{DST}:{RECOVERY}:backup-vault:managed"),
        iam_role_arn: ROLE.to_owned(),
        idempotency_token: "managed".to_owned(),
        ..Default::default()
    };
    let job = sim.start_copy_job(&req).await.unwrap();
    let c = done(async || sim.describe_copy_job(SRC, &job).await).await;
    assert_eq!(c.message.as_deref(), Some(AWS_MANAGED_DESTINATION_KEY), "{c:?}");
    // A vault the other account does not have: StartCopyJob cannot tell, the job fails.
    let missing = CopyRequest {
        destination_vault_arn: format!("arn:aws:backup:{DST}:{RECOVERY}:backup-vault:nope"),
        idempotency_token: "missing".to_owned(),
        ..req.clone()
    };
    let job = sim.start_copy_job(&missing).await.unwrap();
    let c = done(async || sim.describe_copy_job(SRC, &job).await).await;
    assert!(c.message.as_deref().is_some_and(|m| m.contains("does not exist")), "{c:?}");
    // Nothing landed but the one allowed copy.
    assert_eq!(sim.list_vault_recovery_points(DST, "dr").await.unwrap().len(), 1);
    assert!(sim.list_vault_recovery_points(DST, "managed").await.unwrap().is_empty());
    // In the source account, a missing vault is still refused at once.
    let here = CopyRequest {
        destination_vault_arn: format!("arn:aws:backup:{DST}:{SOURCE}:backup-vault:dr"),
        idempotency_token: "here".to_owned(),
        ..req
    };
    assert_eq!(sim.start_copy_job(&here).await.unwrap_err().kind, ErrorKind::NotFound);
}

#[tokio::test(start_paused = true)]
async fn global_settings_are_the_organizations_and_an_error_outside_one() {
    let sim = world(None);
    let e = sim.cross_account_backup(SRC).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::InvalidState, "{e:?}");
    assert!(e.message.starts_with("InvalidRequestException"), "{e:?}");
    sim.set_organization(Some(Organization::new(SOURCE, [RECOVERY], false)));
    assert!(!sim.cross_account_backup(SRC).await.unwrap());
    assert!(!sim.cross_account_backup(DST).await.unwrap());
    sim.set_organization(Some(Organization::new(SOURCE, ["999999999999"], true)));
    assert!(sim.cross_account_backup(SRC).await.unwrap());
    assert_eq!(sim.cross_account_backup(DST).await.unwrap_err().kind, ErrorKind::InvalidState);
}

#[tokio::test(start_paused = true)]
async fn a_locked_vault_keeps_its_points_and_fails_jobs_outside_its_retention() {
    let dir = tempfile::tempdir().unwrap();
    let sim = world(Some(dir.path()));
    allow_cross_account(&sim);
    let lock = VaultLock { min_retention_days: Some(7), max_retention_days: Some(365) };
    sim.set_vault_lock(DST, "dr", Some(lock));
    let vault = sim.describe_vault(DST, "dr").await.unwrap();
    assert_eq!(
        (vault.arn.as_str(), vault.encryption_key_arn.as_deref(), vault.lock),
        (DST_VAULT, Some(DST_KEY), Some(lock))
    );
    assert_eq!(sim.describe_vault(SRC, "prod").await.unwrap().lock, None);
    assert_eq!(sim.describe_vault(SRC, "nope").await.unwrap_err().kind, ErrorKind::NotFound);

    let point = source_point(&sim).await; // kept 30 days
    for (days, token) in [(Some(1), "short"), (Some(400), "long")] {
        let c = copy(&sim, &point, days, token).await;
        assert_eq!(c.state, JobState::Failed, "{c:?}");
        assert!(c.message.as_deref().is_some_and(|m| m.contains("Vault Lock")), "{c:?}");
    }
    // Given no lifecycle, a copy keeps its source's (30 days): within the lock.
    let c = copy(&sim, &point, None, "inherited").await;
    assert_eq!(c.state, JobState::Completed, "{c:?}");
    let copied = c.recovery_point_arn.unwrap();
    // Its points cannot be deleted.
    let e = sim.delete_recovery_point(DST, "dr", &copied).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::InvalidState, "{e:?}");
    assert!(e.message.starts_with("InvalidRequestException"), "{e:?}");
    assert_eq!(sim.list_vault_recovery_points(DST, "dr").await.unwrap().len(), 1);
    // A missing point is still not found.
    let e = sim.delete_recovery_point(DST, "dr", "arn:aws:backup:us-west-2:1:recovery-point:x");
    assert_eq!(e.await.unwrap_err().kind, ErrorKind::NotFound);

    // Backups into a locked vault: without a lifecycle a minimum fails them.
    sim.set_vault_lock(
        SRC,
        "prod",
        Some(VaultLock { min_retention_days: Some(7), max_retention_days: None }),
    );
    let b = backup(&sim, "prod", None, "forever").await;
    assert_eq!(b.state, JobState::Failed, "{b:?}");
    assert!(b.message.as_deref().is_some_and(|m| m.contains("no retention period")), "{b:?}");
    assert_eq!(backup(&sim, "prod", Some(7), "week").await.state, JobState::Completed);
    // Lifted, the vault lets its points go again.
    sim.set_vault_lock(DST, "dr", None);
    sim.delete_recovery_point(DST, "dr", &copied).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn keys_say_who_manages_them_and_their_policy() {
    let sim = world(None);
    let key = sim.describe_key(DST, DST_KEY).await.unwrap();
    assert!(!key.aws_managed);
    // KMS's default policy: the key's account root may do everything.
    let policy: serde_json::Value =
        serde_json::from_str(&sim.key_policy(DST, DST_KEY).await.unwrap()).unwrap();
    let s = &policy["Statement"][0];
    assert_eq!((s["Effect"].as_str(), s["Action"].as_str()), (Some("Allow"), Some("kms:*")));
    assert_eq!(s["Principal"]["AWS"], format!("arn:aws:iam::{RECOVERY}:root"));
    let mine = r#"{"Version":"2012-10-17","Statement":[]}"#;
    sim.set_key_policy(DST, DST_KEY, mine);
    assert_eq!(sim.key_policy(DST, DST_KEY).await.unwrap(), mine);
    // A vault made without a key has the account's AWS managed aws/backup.
    let managed = sim.describe_vault(SRC, "prod").await.unwrap().encryption_key_arn.unwrap();
    assert_eq!(managed, sim.aws_backup_key(SRC));
    let k = sim.describe_key(SRC, &managed).await.unwrap();
    assert!(k.aws_managed && k.state == "Enabled", "{k:?}");
    let policy = sim.key_policy(SRC, &managed).await.unwrap();
    assert!(policy.contains("kms:ViaService"), "{policy}");
    let other = "arn:aws:kms:us-east-1:123456789012:key/aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee";
    sim.add_aws_managed_key(SRC, other);
    assert!(sim.describe_key(SRC, other).await.unwrap().aws_managed);
    assert_eq!(sim.key_policy(SRC, "nope").await.unwrap_err().kind, ErrorKind::NotFound);
}

#[tokio::test(start_paused = true)]
async fn a_plan_with_a_target_in_another_account_is_seeded_ready_to_copy_there() {
    const PLAN: &str = "version: 1
name: accounts
source: {region: us-east-1, account_id: \"123456789012\", backup_vault: prod}
iam_role_arn: arn:aws:iam::123456789012:role/drover-backup
objectives: {rpo: 24h, rto: 24h}
targets:
  - region: us-west-2
    account_id: \"210987654321\"
    role_arn: arn:aws:iam::210987654321:role/drover
    iam_role_arn: arn:aws:iam::210987654321:role/drover-restore
    backup_vault: dr
    kms_key_arn: arn:aws:kms:us-west-2:210987654321:key/1111aaaa-22bb-33cc-44dd-555555eeeeee
  - {region: eu-west-1, backup_vault: dr, kms_key_arn: \"arn:aws:kms:eu-west-1:123456789012:key/1111aaaa-22bb-33cc-44dd-555555eeeeee\"}
tables:
  - name: orders
";
    let loaded = drover_plan::load("accounts.yaml", PLAN.as_bytes());
    assert!(!loaded.diagnostics.has_errors(), "{:?}", loaded.diagnostics.items());
    let mut plan = loaded.plan.unwrap();
    let sim = SimCloud::new(SOURCE, 5, Arc::new(SystemClock::starting_at(T0)));
    sim.set_model(DurationModel::instant());
    sim.seed_from_plan(&plan, 10);
    sim.with(|w| {
        assert_eq!(
            [SRC, DST, "eu-west-1"].map(|r| w.account_of(r).to_owned()),
            [SOURCE, RECOVERY, SOURCE]
        );
        let org = w.organization.clone().unwrap();
        assert!(org.cross_account_backup && org.has(SOURCE) && org.has(RECOVERY), "{org:?}");
    });
    assert_eq!(sim.vault_arn(DST, "dr").await.unwrap(), DST_VAULT);
    assert!(sim.vault_access_policy(DST, "dr").await.unwrap().is_some());
    // The source vault's key is customer managed, and shared with the recovery account.
    let key = sim.describe_vault(SRC, "prod").await.unwrap().encryption_key_arn.unwrap();
    assert!(key.starts_with(&format!("arn:aws:kms:{SRC}:{SOURCE}:key/")), "{key}");
    assert!(!sim.describe_key(SRC, &key).await.unwrap().aws_managed);
    let policy = sim.key_policy(SRC, &key).await.unwrap();
    assert!(policy.contains(&format!("arn:aws:iam::{RECOVERY}:root")), "{policy}");
    assert_eq!(sim.vault_access_policy("eu-west-1", "dr").await.unwrap(), None);
    let point = source_point(&sim).await;
    assert_eq!(copy(&sim, &point, Some(30), "c").await.state, JobState::Completed);

    // A plan in one account seeds no Organization, and its source vault has AWS Backup's key.
    plan.targets[0].account_id = None;
    plan.targets[0].role = None;
    let sim = SimCloud::new(SOURCE, 5, Arc::new(SystemClock::starting_at(T0)));
    sim.seed_from_plan(&plan, 10);
    assert!(sim.with(|w| w.organization.is_none() && w.account_of(DST) == SOURCE));
    let key = sim.describe_vault(SRC, "prod").await.unwrap().encryption_key_arn.unwrap();
    assert_eq!(key, sim.aws_backup_key(SRC));
}

#[test]
fn worlds_and_records_from_before_accounts_load() {
    // A whole world as an older drover wrote it: no accounts per region, no Organization, no
    // policies, locks, lifecycles or key flags.
    let world = crate::World::new(SOURCE, 1);
    let mut old = serde_json::to_value(&world).unwrap();
    old["regions"] = serde_json::json!({
        "us-west-2": {"tables": {}, "keys": {DST_KEY: {"state": "Enabled"}}, "advanced_backup": true,
                      "down": false,
                      "vaults": {"dr": {"arn": DST_VAULT, "key_arn": DST_KEY, "points": {}}}},
    });
    let mut w: crate::World = serde_json::from_value(old).unwrap();
    assert_eq!(w.account_of(DST), SOURCE);
    assert!(w.organization.is_none());
    let r = &w.regions[DST];
    assert!(r.vaults["dr"].access_policy.is_none() && r.vaults["dr"].lock.is_none());
    assert!(!r.keys[DST_KEY].aws_managed && r.keys[DST_KEY].policy.is_none());
    // A change record as an older drover wrote it.
    let line = format!(
        r#"{{"regions":{{"eu-west-1":{{"advanced_backup":true,"down":false}}}},"put":[[{{"vault":["eu-west-1","v"]}},{{"arn":"arn:aws:backup:eu-west-1:{SOURCE}:backup-vault:v","key_arn":null}}]]}}"#
    );
    crate::changes::apply(&mut w, line.as_bytes()).unwrap();
    assert_eq!(w.account_of("eu-west-1"), SOURCE);
    assert!(w.regions["eu-west-1"].vaults["v"].lock.is_none());
    // And a new one sets them.
    let line = r#"{"organization":{"id":"o-1","management":"1","members":["2"],"cross_account_backup":true},"regions":{"eu-west-1":{"advanced_backup":true,"down":false,"account":"2"}}}"#;
    crate::changes::apply(&mut w, line.as_bytes()).unwrap();
    assert_eq!(w.account_of("eu-west-1"), "2");
    assert!(w.organization.as_ref().is_some_and(|o| o.has("2")));
    crate::changes::apply(&mut w, br#"{"organization":null}"#).unwrap();
    assert!(w.organization.is_none());
}
