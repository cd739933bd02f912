//! One contract for every implementation of the engine's ports: the simulator (in process)
//! and the AWS adapter (official SDK, over HTTP, against the emulator). The same assertions
//! run on both, so the simulator cannot drift from the real behaviour.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use drover_engine::ports::{
    BackupRequest, BackupService, CloudResult, CopyRequest, IdentityService, Item, JobState,
    JobStatus, KeyService, KeyType, RestoreRequest, ScanOptions, TableInfo, TableService, Value,
    VaultLock,
};
use drover_engine::{ErrorKind, SystemClock};
use serde_json::json;

use crate::common::Emulator;

const SRC: &str = "us-east-1";
const DST: &str = "us-west-2";
const ROLE: &str = "arn:aws:iam::123456789012:role/drover-backup";

struct Cloud {
    backup: Arc<dyn BackupService>,
    tables: Arc<dyn TableService>,
    keys: Arc<dyn KeyService>,
    target_key: String,
    _emulator: Option<Emulator>,
}

fn canary() -> Item {
    Item::from([
        ("pk".to_owned(), Value::S("ORDER#1".to_owned())),
        ("sk".to_owned(), Value::S("META".to_owned())),
    ])
}

/// The simulator, seeded like the emulator below; jobs finish at once.
fn simulator() -> Cloud {
    let sim = drover_sim::SimCloud::new("123456789012", 3, Arc::new(SystemClock::new()));
    sim.set_model(drover_sim::DurationModel::instant());
    let key = "arn:aws:kms:us-west-2:123456789012:key/1111aaaa-22bb-33cc-44dd-555555eeeeee";
    sim.add_region(SRC);
    sim.add_region(DST);
    sim.add_vault(SRC, "prod-vault", None);
    sim.add_key(DST, key);
    sim.add_vault(DST, "dr-vault", Some(key));
    let mut item = canary();
    item.insert("status".to_owned(), Value::S("canary".to_owned()));
    sim.add_table(SRC, "orders", "pk", Some("sk"), 30, &[item]);
    Cloud {
        backup: Arc::new(sim.clone()),
        tables: Arc::new(sim.clone()),
        keys: Arc::new(sim),
        target_key: key.to_owned(),
        _emulator: None,
    }
}

/// The AWS adapter against the emulator (in realism mode).
fn emulator() -> Cloud {
    on_emulator(Emulator::start(0.2))
}

/// The AWS adapter against `emu`, seeded like the simulator above.
fn on_emulator(emu: Emulator) -> Cloud {
    let seeded = emu.fixture(
        "seed",
        &json!({
            "source": SRC, "targets": [DST], "source_vault": "prod-vault",
            "target_vaults": {DST: "dr-vault"},
            "tables": [{"name": "orders", "items": 30, "sort_key": true,
                        "canaries": [{"pk": "ORDER#1", "sk": "META"}]}],
        }),
    );
    let aws = drover_aws::AwsCloud::new(drover_aws::AwsOptions {
        endpoint_url: Some(emu.url()),
        emulator_credentials: true,
        ..drover_aws::AwsOptions::default()
    });
    Cloud {
        backup: Arc::new(aws.clone()),
        tables: Arc::new(aws.clone()),
        keys: Arc::new(aws),
        target_key: seeded["keys"][DST].as_str().unwrap().to_owned(),
        _emulator: Some(emu),
    }
}

/// Polls a job until it ends. A job just started may not be visible yet (reads right after a
/// start are eventually consistent: the engine's `PollPolicy::unseen_grace`), and passing
/// errors are asked again.
async fn until_done(describe: impl AsyncFn() -> CloudResult<JobStatus>) -> JobStatus {
    let start = Instant::now();
    loop {
        match describe().await {
            Ok(status) if matches!(status.state, JobState::Completed | JobState::Failed) => {
                return status;
            }
            Ok(status) => {
                assert!(
                    start.elapsed() < Duration::from_secs(60),
                    "job did not finish: {status:?}"
                );
            }
            Err(e) if e.kind == ErrorKind::NotFound || e.kind.is_retryable() => {
                assert!(start.elapsed() < Duration::from_secs(30), "job never seen: {e}");
            }
            Err(e) => panic!("{e}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Calls `call` again while it fails with a passing error, as the engine's call helper does:
/// a `Start*Job` replay whose job the lists do not show yet is one (drover-aws `jobs.rs`).
async fn retried<T>(call: impl AsyncFn() -> CloudResult<T>) -> CloudResult<T> {
    let start = Instant::now();
    loop {
        match call().await {
            Err(e) if e.kind.is_retryable() && start.elapsed() < Duration::from_secs(60) => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            done => return done,
        }
    }
}

async fn ready(c: &Cloud, region: &str, name: &str) -> TableInfo {
    let start = Instant::now();
    loop {
        if let Some(t) = c.tables.describe_table(region, name).await.unwrap()
            && t.is_ready()
        {
            return t;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "{name} did not become ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn contract(c: &Cloud) {
    // Tables: absent is `None`, present is described with its key schema.
    assert_eq!(c.tables.describe_table(SRC, "no-such-table").await.unwrap(), None);
    let source = ready(c, SRC, "orders").await;
    assert!(
        source.arn.starts_with("arn:aws:dynamodb:us-east-1:")
            && source.arn.ends_with(":table/orders")
    );
    assert_eq!((source.partition_key.name.as_str(), source.partition_key.kind), ("pk", KeyType::S));
    assert_eq!(source.sort_key.as_ref().map(|k| k.name.as_str()), Some("sk"));
    let source_count = c.tables.count_items(SRC, "orders", &ScanOptions::unpaced(4)).await.unwrap();
    assert_eq!(source_count, 31);
    assert!(c.backup.advanced_dynamodb_backup(SRC).await.unwrap());
    // Every table of a region, with its creation time.
    assert!(c.tables.list_tables(SRC).await.unwrap().contains(&"orders".to_owned()));
    assert!(source.created_at.is_some(), "{source:?}");

    // Vaults.
    let dst_vault = c.backup.vault_arn(DST, "dr-vault").await.unwrap();
    assert!(
        dst_vault.starts_with("arn:aws:backup:us-west-2:")
            && dst_vault.ends_with(":backup-vault:dr-vault"),
        "{dst_vault}"
    );
    assert_eq!(
        c.backup.vault_arn(DST, "no-such-vault").await.unwrap_err().kind,
        ErrorKind::NotFound
    );

    // Backup: idempotent by token, then completed with an advanced recovery point.
    let backup = BackupRequest {
        region: SRC.to_owned(),
        table_arn: source.arn.clone(),
        vault: "prod-vault".to_owned(),
        iam_role_arn: ROLE.to_owned(),
        idempotency_token: "contract-backup-1".to_owned(),
        ..Default::default()
    };
    let job = c.backup.start_backup_job(&backup).await.unwrap();
    let replayed = retried(async || c.backup.start_backup_job(&backup).await).await;
    assert_eq!(replayed.unwrap(), job, "same token, same job");
    let done = until_done(async || c.backup.describe_backup_job(SRC, &job).await).await;
    assert_eq!(done.state, JobState::Completed, "{done:?}");
    let point = done.recovery_point_arn.clone().unwrap();
    assert!(
        point.starts_with("arn:aws:backup:us-east-1:") && point.contains(":recovery-point:"),
        "{point}"
    );
    assert_eq!(
        c.backup.describe_backup_job(SRC, "no-such-job").await.unwrap_err().kind,
        ErrorKind::NotFound
    );

    // Copy: a new recovery point (new ARN) in the destination vault, under the vault's key.
    let copy = CopyRequest {
        region: SRC.to_owned(),
        recovery_point_arn: point.clone(),
        source_vault: "prod-vault".to_owned(),
        destination_vault_arn: dst_vault.clone(),
        iam_role_arn: ROLE.to_owned(),
        idempotency_token: "contract-copy-1".to_owned(),
        ..Default::default()
    };
    let job = c.backup.start_copy_job(&copy).await.unwrap();
    assert_eq!(retried(async || c.backup.start_copy_job(&copy).await).await.unwrap(), job);
    let done = until_done(async || c.backup.describe_copy_job(SRC, &job).await).await;
    assert_eq!(done.state, JobState::Completed, "{done:?}");
    let copied = done.recovery_point_arn.clone().unwrap();
    assert!(copied.starts_with("arn:aws:backup:us-west-2:") && copied != point, "{copied}");
    let points = c.backup.list_recovery_points(DST, "dr-vault", SRC, "orders").await.unwrap();
    let listed =
        points.iter().find(|p| p.arn == copied).expect("the copy is listed in the target vault");
    assert!(listed.is_completed(), "{listed:?}");
    assert_eq!(listed.resource_arn, source.arn);
    assert_eq!(listed.encryption_key_arn.as_deref(), Some(c.target_key.as_str()));
    assert!(
        c.backup
            .list_recovery_points(DST, "dr-vault", SRC, "other-table")
            .await
            .unwrap()
            .is_empty()
    );
    // A whole vault's points: the copy, on demand (no backup plan made it).
    let vault = c.backup.list_vault_recovery_points(DST, "dr-vault").await.unwrap();
    let listed = vault.iter().find(|p| p.arn == copied).expect("the copy is in the vault's list");
    assert_eq!(
        (listed.resource_arn.as_str(), listed.backup_plan_id.as_deref()),
        (source.arn.as_str(), None)
    );

    // Restore: a new table with the items, encrypted with the requested key.
    let restore = RestoreRequest {
        region: DST.to_owned(),
        recovery_point_arn: copied.clone(),
        table_name: "orders-restored".to_owned(),
        kms_key_arn: c.target_key.clone(),
        iam_role_arn: ROLE.to_owned(),
        idempotency_token: "contract-restore-1".to_owned(),
        ..Default::default()
    };
    let job = c.backup.start_restore_job(&restore).await.unwrap();
    assert_eq!(retried(async || c.backup.start_restore_job(&restore).await).await.unwrap(), job);
    let done = until_done(async || c.backup.describe_restore_job(DST, &job).await).await;
    assert_eq!(done.state, JobState::Completed, "{done:?}");
    assert!(
        done.created_resource_arn.as_deref().is_some_and(|a| a.ends_with(":table/orders-restored")),
        "{done:?}"
    );
    let restored = ready(c, DST, "orders-restored").await;
    assert_eq!(restored.kms_key_arn.as_deref(), Some(c.target_key.as_str()));
    assert!(restored.created_at.is_some(), "{restored:?}");
    assert!(c.tables.list_tables(DST).await.unwrap().contains(&"orders-restored".to_owned()));
    // A restore drops settings and tags.
    assert!(restored.stream.is_none() && !restored.deletion_protection);
    assert!(!c.tables.point_in_time_recovery(DST, "orders-restored").await.unwrap());
    assert_eq!(
        c.tables.time_to_live(DST, "orders-restored").await.unwrap().enabled_attribute(),
        None
    );
    assert!(c.tables.list_tags(DST, &restored.arn).await.unwrap().is_empty());
    assert_eq!(
        c.tables.count_items(DST, "orders-restored", &ScanOptions::unpaced(4)).await.unwrap(),
        source_count
    );
    assert!(c.tables.get_item(DST, "orders-restored", &canary()).await.unwrap().is_some());

    // A second restore into the same name fails as a job, with the service's message.
    let again = RestoreRequest { idempotency_token: "contract-restore-2".to_owned(), ..restore };
    let job = c.backup.start_restore_job(&again).await.unwrap();
    let done = until_done(async || c.backup.describe_restore_job(DST, &job).await).await;
    assert_eq!(done.state, JobState::Failed, "{done:?}");
    assert!(
        done.message.as_deref().unwrap_or_default().to_lowercase().contains("exist"),
        "{done:?}"
    );

    // Settings and tags.
    // Right after a restore, AWS may answer ContinuousBackupsUnavailableException: passing.
    retried(async || c.tables.set_point_in_time_recovery(DST, "orders-restored", true).await)
        .await
        .unwrap();
    c.tables.enable_ttl(DST, "orders-restored", "expires_at").await.unwrap();
    c.tables.set_stream(DST, "orders-restored", Some("NEW_IMAGE")).await.unwrap();
    ready(c, DST, "orders-restored").await;
    // A stream is not re-enabled with another view: it is disabled first.
    assert!(c.tables.set_stream(DST, "orders-restored", Some("NEW_AND_OLD_IMAGES")).await.is_err());
    c.tables.set_stream(DST, "orders-restored", None).await.unwrap();
    ready(c, DST, "orders-restored").await;
    c.tables.set_stream(DST, "orders-restored", Some("NEW_AND_OLD_IMAGES")).await.unwrap();
    ready(c, DST, "orders-restored").await;
    c.tables.set_deletion_protection(DST, "orders-restored", true).await.unwrap();
    let t = ready(c, DST, "orders-restored").await;
    let tags = BTreeMap::from([("drover:run".to_owned(), "contract".to_owned())]);
    c.tables.tag_table(DST, &t.arn, &tags).await.unwrap();
    let t = ready(c, DST, "orders-restored").await;
    assert!(c.tables.point_in_time_recovery(DST, "orders-restored").await.unwrap());
    let ttl = c.tables.time_to_live(DST, "orders-restored").await.unwrap();
    assert_eq!(ttl.enabled_attribute(), Some("expires_at"), "{ttl:?}");
    assert_eq!(t.stream.as_deref(), Some("NEW_AND_OLD_IMAGES"));
    assert!(t.deletion_protection);
    // Tagging is asynchronous: the tags show within seconds.
    let start = Instant::now();
    while c.tables.list_tags(DST, &t.arn).await.unwrap() != tags {
        assert!(start.elapsed() < Duration::from_secs(30), "the tags never showed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Items.
    let mut marker = Item::from([
        ("pk".to_owned(), Value::S("drover-marker#x".to_owned())),
        ("sk".to_owned(), Value::S("drover-marker".to_owned())),
    ]);
    let key = marker.clone();
    marker.insert("drover_marker".to_owned(), Value::S("x".to_owned()));
    c.tables.put_item(DST, "orders-restored", &marker).await.unwrap();
    assert_eq!(c.tables.get_item(DST, "orders-restored", &key).await.unwrap(), Some(marker));
    c.tables.delete_item(DST, "orders-restored", &key).await.unwrap();
    assert_eq!(c.tables.get_item(DST, "orders-restored", &key).await.unwrap(), None);

    // Deletion protection refuses a delete; without it the table goes away.
    assert!(c.tables.delete_table(DST, "orders-restored").await.is_err());
    c.tables.set_deletion_protection(DST, "orders-restored", false).await.unwrap();
    ready(c, DST, "orders-restored").await;
    c.tables.delete_table(DST, "orders-restored").await.unwrap();
    let start = Instant::now();
    while c.tables.describe_table(DST, "orders-restored").await.unwrap().is_some() {
        assert!(start.elapsed() < Duration::from_secs(60));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Keys.
    let key = c.keys.describe_key(DST, &c.target_key).await.unwrap();
    assert_eq!((key.state.as_str(), key.region.as_str()), ("Enabled", DST));
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

#[test]
fn contract_holds_on_the_simulator() {
    runtime().block_on(contract(&simulator()));
}

#[test]
fn contract_holds_on_the_aws_adapter_against_the_emulator() {
    runtime().block_on(contract(&emulator()));
}

/// A `Start*Job` replayed with a used token may answer without the job id (AWS promises only
/// "a success message with no action taken", and the model makes no output member required):
/// the adapter still gets the token's job, found by listing past other jobs on other pages.
#[test]
fn a_replay_answered_without_a_job_id_gets_the_tokens_job() {
    runtime().block_on(async {
        // Without realism mode, so that only the knobs set here apply.
        let c = on_emulator(Emulator::start_ideal(0.2));
        let emu = c._emulator.as_ref().unwrap();
        // Replays answer `{}`; every list page holds one job.
        let knobs = json!({"idempotent_replay_without_id": true, "page_size": 1});
        assert_eq!(emu.control("/_drover/realism", &knobs), 200, "{}", emu.log());
        let source = ready(&c, SRC, "orders").await;
        let dst_vault = c.backup.vault_arn(DST, "dr-vault").await.unwrap();

        // Backups: the replay gets the first job's id; then a second one, for a second point.
        let mut points = Vec::new();
        for n in 1..=2 {
            let backup = BackupRequest {
                region: SRC.to_owned(),
                table_arn: source.arn.clone(),
                vault: "prod-vault".to_owned(),
                iam_role_arn: ROLE.to_owned(),
                idempotency_token: format!("replay-backup-{n}"),
                ..Default::default()
            };
            let job = c.backup.start_backup_job(&backup).await.unwrap();
            let replayed = c.backup.start_backup_job(&backup).await;
            assert_eq!(replayed.as_ref(), Ok(&job), "backup {n}: same token, same job");
            let done = until_done(async || c.backup.describe_backup_job(SRC, &job).await).await;
            assert_eq!(done.state, JobState::Completed, "{done:?}");
            points.push(done.recovery_point_arn.unwrap());
        }

        // Copies of both points into the target vault, each replayed after both started.
        let copies: Vec<CopyRequest> = points
            .iter()
            .enumerate()
            .map(|(n, point)| CopyRequest {
                region: SRC.to_owned(),
                recovery_point_arn: point.clone(),
                source_vault: "prod-vault".to_owned(),
                destination_vault_arn: dst_vault.clone(),
                iam_role_arn: ROLE.to_owned(),
                idempotency_token: format!("replay-copy-{n}"),
                ..Default::default()
            })
            .collect();
        let mut copy_jobs = Vec::new();
        for copy in &copies {
            copy_jobs.push(c.backup.start_copy_job(copy).await.unwrap());
        }
        let mut copied = Vec::new();
        for (copy, job) in copies.iter().zip(&copy_jobs) {
            assert_eq!(c.backup.start_copy_job(copy).await.as_ref(), Ok(job), "{copy:?}");
            let done = until_done(async || c.backup.describe_copy_job(SRC, job).await).await;
            assert_eq!(done.state, JobState::Completed, "{done:?}");
            copied.push(done.recovery_point_arn.unwrap());
        }

        // Restores: the token's job from the first copy, then newer restores from the second
        // copy that the lookup must page past (newest first, one a page).
        let restore = |n: usize, point: &str, table: &str| RestoreRequest {
            region: DST.to_owned(),
            recovery_point_arn: point.to_owned(),
            table_name: table.to_owned(),
            kms_key_arn: c.target_key.clone(),
            iam_role_arn: ROLE.to_owned(),
            idempotency_token: format!("replay-restore-{n}"),
            ..Default::default()
        };
        let mine = restore(0, &copied[0], "orders-replayed");
        let job = c.backup.start_restore_job(&mine).await.unwrap();
        for n in 1..=3 {
            let other = restore(n, &copied[1], &format!("orders-other-{n}"));
            assert_ne!(c.backup.start_restore_job(&other).await.unwrap(), job);
        }
        assert_eq!(c.backup.start_restore_job(&mine).await.as_ref(), Ok(&job));
        let done = until_done(async || c.backup.describe_restore_job(DST, &job).await).await;
        assert_eq!(done.state, JobState::Completed, "{done:?}");
        assert!(
            done.created_resource_arn
                .as_deref()
                .is_some_and(|a| a.ends_with(":table/orders-replayed")),
            "{done:?}"
        );
        // Once finished, the job names its table: still the token's job.
        assert_eq!(c.backup.start_restore_job(&mine).await.as_ref(), Ok(&job));

        // A job the lists do not show yet: a passing error, then the job once it is listed.
        let young = json!({"unseen_jobs": 2.0});
        assert_eq!(emu.control("/_drover/realism", &young), 200, "{}", emu.log());
        let late = restore(9, &copied[0], "orders-replayed-late");
        let job = c.backup.start_restore_job(&late).await.unwrap();
        let err = c.backup.start_restore_job(&late).await.unwrap_err();
        assert_eq!(err.kind, ErrorKind::Transient, "{err:?}");
        assert!(err.message.contains("not listed yet"), "{err:?}");
        let start = Instant::now();
        loop {
            match c.backup.start_restore_job(&late).await {
                Ok(found) => break assert_eq!(found, job),
                Err(e) if e.kind == ErrorKind::Transient => {
                    assert!(start.elapsed() < Duration::from_secs(30), "never listed: {e:?}");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => panic!("{e:?}"),
            }
        }
    });
}

// ---------------------------------------------------------------- accounts (issue 14)

/// The operator's own account (the emulator's default): it holds no region, it only assumes
/// the roles below.
const OPERATOR: &str = "123456789012";
/// The production account: the source region.
const PROD: &str = "111111111111";
/// The recovery account, in the production account's Organization.
const RECOVERY: &str = "222222222222";
/// An account outside the Organization.
const OUTSIDER: &str = "333333333333";
/// Recovery account regions: a vault that lets production copy in, under Vault Lock (7 to 365
/// days); a vault without an access policy; a vault encrypted with the account's AWS managed
/// key (`aws/backup`), though its policy lets production in.
const LOCKED: &str = "us-west-2";
const NO_POLICY: &str = "eu-west-1";
const AWS_MANAGED: &str = "ap-southeast-2";
/// The outsider's region: its vault lets production in, the Organization does not.
const OUTSIDE: &str = "eu-central-1";
const PROD_ROLE: &str = "arn:aws:iam::111111111111:role/drover-backup";
const LOCK: VaultLock = VaultLock { min_retention_days: Some(7), max_retention_days: Some(365) };

/// Each region and the account it is in.
fn regions() -> [(&'static str, &'static str); 5] {
    [
        (SRC, PROD),
        (LOCKED, RECOVERY),
        (NO_POLICY, RECOVERY),
        (AWS_MANAGED, RECOVERY),
        (OUTSIDE, OUTSIDER),
    ]
}

/// A cloud whose regions are in several accounts.
struct Accounts {
    backup: Arc<dyn BackupService>,
    tables: Arc<dyn TableService>,
    keys: Arc<dyn KeyService>,
    identity: Arc<dyn IdentityService>,
    /// The key of each recovery region's vault.
    vault_keys: BTreeMap<&'static str, String>,
    _emulator: Option<Emulator>,
}

/// The simulator, set up as the emulator below.
fn simulator_in_accounts() -> Accounts {
    let sim = drover_sim::SimCloud::new(PROD, 3, Arc::new(SystemClock::new()));
    sim.set_model(drover_sim::DurationModel::instant());
    for (region, account) in regions() {
        sim.set_account(region, account);
    }
    sim.add_vault(SRC, "prod-vault", None);
    let mut vault_keys = BTreeMap::new();
    for (region, account) in regions().into_iter().skip(1) {
        let key = if region == AWS_MANAGED {
            sim.aws_backup_key(region)
        } else {
            let key =
                format!("arn:aws:kms:{region}:{account}:key/1111aaaa-22bb-33cc-44dd-555555eeeeee");
            sim.add_key(region, &key);
            key
        };
        sim.add_vault(region, "dr-vault", Some(&key));
        if region != NO_POLICY {
            sim.allow_copies_from(region, "dr-vault", &[PROD]);
        }
        vault_keys.insert(region, key);
    }
    sim.set_vault_lock(LOCKED, "dr-vault", Some(LOCK));
    sim.set_organization(Some(drover_sim::Organization::new(PROD, [RECOVERY], true)));
    sim.add_table(SRC, "orders", "pk", Some("sk"), 30, &[canary()]);
    Accounts {
        backup: Arc::new(sim.clone()),
        tables: Arc::new(sim.clone()),
        keys: Arc::new(sim.clone()),
        identity: Arc::new(sim),
        vault_keys,
        _emulator: None,
    }
}

/// The AWS adapter against the emulator (realism mode), acting in each region's account with
/// the role the plan names there, assumed from the operator's credentials.
fn emulator_in_accounts() -> Accounts {
    let emu = Emulator::start(0.2);
    let targets: Vec<&str> = regions().into_iter().skip(1).map(|(r, _)| r).collect();
    let accounts: serde_json::Map<String, serde_json::Value> =
        regions().into_iter().map(|(r, a)| (r.to_owned(), json!(a))).collect();
    let roles: Vec<serde_json::Value> = [PROD, RECOVERY, OUTSIDER]
        .into_iter()
        .map(|a| json!({"account": a, "name": "drover", "trusts": OPERATOR}))
        .collect();
    let allow = json!({"allow_copy_from": [PROD]});
    let seeded = emu.fixture(
        "seed",
        &json!({
            "source": SRC, "targets": targets, "source_vault": "prod-vault",
            "target_vaults": targets.iter().map(|r| (r.to_string(), json!("dr-vault"))).collect::<serde_json::Map<_, _>>(),
            "accounts": accounts,
            "roles": roles,
            "organization": {"management": PROD, "members": [RECOVERY], "cross_account_backup": true},
            "vault_policies": {LOCKED: allow, AWS_MANAGED: allow, OUTSIDE: allow},
            "vault_locks": {LOCKED: {"min_retention_days": 7, "max_retention_days": 365}},
            "aws_managed_vault_keys": [AWS_MANAGED],
            "tables": [{"name": "orders", "items": 30, "sort_key": true,
                        "canaries": [{"pk": "ORDER#1", "sk": "META"}]}],
        }),
    );
    // The plan only says which account each region is in and the role drover assumes there.
    let mut yaml = format!(
        "version: 1\nname: contract-accounts\nsource: {{region: {SRC}, account_id: \"{PROD}\", \
         backup_vault: prod-vault, role_arn: \"arn:aws:iam::{PROD}:role/drover\"}}\n\
         iam_role_arn: {PROD_ROLE}\nobjectives: {{rpo: 1h, rto: 1h}}\ntargets:\n"
    );
    for (region, account) in regions().into_iter().skip(1) {
        yaml.push_str(&format!(
            "  - {{region: {region}, account_id: \"{account}\", backup_vault: dr-vault, \
             role_arn: \"arn:aws:iam::{account}:role/drover\", \
             iam_role_arn: \"arn:aws:iam::{account}:role/drover-restore\", \
             kms_key_arn: \"arn:aws:kms:{region}:{account}:key/1111aaaa-22bb-33cc-44dd-555555eeeeee\"}}\n"
        ));
    }
    yaml.push_str("tables:\n  - name: orders\n");
    let loaded = drover_plan::load("contract-accounts.yaml", yaml.as_bytes());
    assert!(!loaded.diagnostics.has_errors(), "{:?}", loaded.diagnostics.items());
    let plan = loaded.plan.unwrap();
    let aws = drover_aws::AwsCloud::with_accounts(
        drover_aws::AwsOptions {
            endpoint_url: Some(emu.url()),
            emulator_credentials: true,
            ..drover_aws::AwsOptions::default()
        },
        drover_aws::Accounts::of_plan(&plan, "contract"),
    );
    let vault_keys =
        targets.iter().map(|r| (*r, seeded["keys"][*r].as_str().unwrap().to_owned())).collect();
    Accounts {
        backup: Arc::new(aws.clone()),
        tables: Arc::new(aws.clone()),
        keys: Arc::new(aws.clone()),
        identity: Arc::new(aws),
        vault_keys,
        _emulator: Some(emu),
    }
}

/// A copy of `point` into `region`'s vault, kept `days`, to its end.
async fn copy_into(c: &Accounts, point: &str, region: &str, days: u32) -> JobStatus {
    let account = regions().into_iter().find(|(r, _)| *r == region).unwrap().1;
    let copy = CopyRequest {
        region: SRC.to_owned(),
        recovery_point_arn: point.to_owned(),
        source_vault: "prod-vault".to_owned(),
        destination_vault_arn: format!("arn:aws:backup:{region}:{account}:backup-vault:dr-vault"),
        iam_role_arn: PROD_ROLE.to_owned(),
        idempotency_token: format!("contract-accounts-copy-{region}-{days}"),
        delete_after_days: Some(days),
        ..Default::default()
    };
    // Not replayed: two copies of one point into one vault follow each other here, and a
    // replay answered without a job id (realism mode) is looked up by point and vault.
    let job = c.backup.start_copy_job(&copy).await.unwrap();
    until_done(async || c.backup.describe_copy_job(SRC, &job).await).await
}

async fn accounts_contract(c: &Accounts) {
    // Who drover is, per region: a role's session in the region's account.
    for (region, account) in regions() {
        let me = c.identity.caller_identity(region).await.unwrap();
        assert_eq!(me.account, account, "{region}: {me:?}");
        assert!(me.arn.starts_with(&format!("arn:aws:sts::{account}:assumed-role/")), "{me:?}");
    }

    // The Organization's setting, as its accounts read it; an error outside it.
    assert!(c.backup.cross_account_backup(SRC).await.unwrap());
    assert!(c.backup.cross_account_backup(LOCKED).await.unwrap());
    let e = c.backup.cross_account_backup(OUTSIDE).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::InvalidState, "{e:?}");

    // Vaults: ARNs in their account, their key, their lock, their access policy.
    let locked = c.backup.describe_vault(LOCKED, "dr-vault").await.unwrap();
    assert_eq!(locked.arn, format!("arn:aws:backup:{LOCKED}:{RECOVERY}:backup-vault:dr-vault"));
    assert_eq!(locked.encryption_key_arn.as_deref(), Some(c.vault_keys[LOCKED].as_str()));
    assert_eq!(locked.lock, Some(LOCK));
    assert_eq!(c.backup.describe_vault(NO_POLICY, "dr-vault").await.unwrap().lock, None);
    let policy = c.backup.vault_access_policy(LOCKED, "dr-vault").await.unwrap().unwrap();
    assert!(policy.contains("backup:CopyIntoBackupVault") && policy.contains(PROD), "{policy}");
    assert_eq!(c.backup.vault_access_policy(NO_POLICY, "dr-vault").await.unwrap(), None);
    assert_eq!(
        c.backup.vault_access_policy(NO_POLICY, "no-such-vault").await.unwrap_err().kind,
        ErrorKind::NotFound
    );

    // Keys: who manages them, and their policy (KMS's default: the account root may do all).
    let key = c.keys.describe_key(LOCKED, &c.vault_keys[LOCKED]).await.unwrap();
    assert!(!key.aws_managed, "{key:?}");
    let policy: serde_json::Value =
        serde_json::from_str(&c.keys.key_policy(LOCKED, &c.vault_keys[LOCKED]).await.unwrap())
            .unwrap();
    let root = format!("arn:aws:iam::{RECOVERY}:root");
    let statements = policy["Statement"].as_array().cloned().unwrap_or_default();
    assert!(
        statements.iter().any(|s| s["Effect"] == "Allow"
            && s["Action"] == "kms:*"
            && s["Principal"]["AWS"] == root.as_str()),
        "{policy}"
    );
    let managed = c.backup.describe_vault(AWS_MANAGED, "dr-vault").await.unwrap();
    let managed_key = managed.encryption_key_arn.unwrap();
    assert_eq!(managed_key, c.vault_keys[AWS_MANAGED]);
    assert!(c.keys.describe_key(AWS_MANAGED, &managed_key).await.unwrap().aws_managed);

    // A backup in the production account.
    let source = ready_in(c, "orders").await;
    assert!(source.starts_with(&format!("arn:aws:dynamodb:{SRC}:{PROD}:table/")), "{source}");
    let backup = BackupRequest {
        region: SRC.to_owned(),
        table_arn: source.clone(),
        vault: "prod-vault".to_owned(),
        iam_role_arn: PROD_ROLE.to_owned(),
        idempotency_token: "contract-accounts-backup".to_owned(),
        delete_after_days: Some(30),
        ..Default::default()
    };
    let job = c.backup.start_backup_job(&backup).await.unwrap();
    let done = until_done(async || c.backup.describe_backup_job(SRC, &job).await).await;
    assert_eq!(done.state, JobState::Completed, "{done:?}");
    let point = done.recovery_point_arn.unwrap();
    assert!(point.starts_with(&format!("arn:aws:backup:{SRC}:{PROD}:recovery-point:")), "{point}");

    // Into the recovery account: the copy lands in its vault, under its ARN and key.
    let done = copy_into(c, &point, LOCKED, 30).await;
    assert_eq!(done.state, JobState::Completed, "{done:?}");
    let copied = done.recovery_point_arn.unwrap();
    assert!(
        copied.starts_with(&format!("arn:aws:backup:{LOCKED}:{RECOVERY}:recovery-point:")),
        "{copied}"
    );
    let points = c.backup.list_recovery_points(LOCKED, "dr-vault", SRC, "orders").await.unwrap();
    let listed = points.iter().find(|p| p.arn == copied).expect("the copy is in the vault");
    assert_eq!(listed.resource_arn, source);
    assert_eq!(listed.encryption_key_arn.as_deref(), Some(c.vault_keys[LOCKED].as_str()));
    // Vault Lock: its points cannot be deleted; a copy kept shorter than its minimum fails.
    let e = c.backup.delete_recovery_point(LOCKED, "dr-vault", &copied).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::InvalidState, "{e:?}");
    let points = c.backup.list_vault_recovery_points(LOCKED, "dr-vault").await.unwrap();
    assert!(points.iter().any(|p| p.arn == copied), "still there: {points:?}");
    let done = copy_into(c, &point, LOCKED, 1).await;
    assert_eq!(done.state, JobState::Failed, "{done:?}");
    assert!(done.message.as_deref().unwrap_or_default().contains("Vault Lock"), "{done:?}");

    // Refused copies fail as jobs, with AWS's message.
    let done = copy_into(c, &point, NO_POLICY, 30).await;
    assert_eq!(
        (done.state, done.message.as_deref()),
        (JobState::Failed, Some("Access Denied trying to call AWS Backup service")),
        "{done:?}"
    );
    let done = copy_into(c, &point, AWS_MANAGED, 30).await;
    assert_eq!(done.state, JobState::Failed, "{done:?}");
    assert!(done.message.as_deref().unwrap_or_default().contains("AWS managed key"), "{done:?}");
    let done = copy_into(c, &point, OUTSIDE, 30).await;
    assert_eq!(done.state, JobState::Failed, "{done:?}");
    assert!(done.message.as_deref().unwrap_or_default().contains("same organization"), "{done:?}");
    for region in [NO_POLICY, AWS_MANAGED, OUTSIDE] {
        let points = c.backup.list_vault_recovery_points(region, "dr-vault").await.unwrap();
        assert!(points.is_empty(), "{region}: {points:?}");
    }
}

/// The ARN of a source table once it is ready.
async fn ready_in(c: &Accounts, name: &str) -> String {
    let start = Instant::now();
    loop {
        if let Some(t) = c.tables.describe_table(SRC, name).await.unwrap()
            && t.is_ready()
        {
            return t.arn;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "{name} did not become ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[test]
fn the_accounts_contract_holds_on_the_simulator() {
    runtime().block_on(accounts_contract(&simulator_in_accounts()));
}

#[test]
fn the_accounts_contract_holds_on_the_aws_adapter_against_the_emulator() {
    runtime().block_on(accounts_contract(&emulator_in_accounts()));
}
