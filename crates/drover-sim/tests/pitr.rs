//! Point-in-time recovery through the ports, as the emulator's `tests/emulator/pitr.py` models
//! it: the window, restores to an instant between writes, the errors in their order, the
//! quota shared with restore jobs, durations, and `RestoreSummary`.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use drover_engine::ports::{
    BackupService, Item, Millis, PointInTimeRestore, RestoreRequest, ScanOptions, TableService,
    Value,
};
use drover_engine::{Clock, ErrorKind, SystemClock};
use drover_sim::{DurationModel, Realism, SimCloud};

const T0: Millis = 1_795_000_000_000;
const SRC: &str = "us-east-1";
const DST: &str = "us-west-2";
const ORDERS: &str = "arn:aws:dynamodb:us-east-1:123456789012:table/orders";
const DST_KEY: &str = "arn:aws:kms:us-west-2:123456789012:key/1111aaaa-22bb-33cc-44dd-555555eeeeee";
const SEC: u64 = 1000;
const MIN: u64 = 60 * SEC;
const DAY: Millis = 86_400_000;

fn none() -> Realism {
    Realism { update_ms: 0, delete_ms: 0, ..Realism::off() }
}

/// `orders` (pk, sk; 10 generated items) in the source region, keys in both regions; no noise.
fn world(realism: Realism, model: DurationModel) -> (SimCloud, SystemClock) {
    let clock = SystemClock::starting_at(T0);
    let sim = SimCloud::new("123456789012", 1, Arc::new(clock.clone()));
    sim.set_model(DurationModel { noise: 0.0, ..model });
    sim.set_realism(realism);
    for region in [SRC, DST] {
        sim.add_region(region);
    }
    sim.add_key(DST, DST_KEY);
    sim.add_table(SRC, "orders", "pk", Some("sk"), 10, &[]);
    (sim, clock)
}

fn item(pk: &str, payload: &str) -> Item {
    Item::from([
        ("pk".to_owned(), Value::S(pk.to_owned())),
        ("sk".to_owned(), Value::S("META".to_owned())),
        ("payload".to_owned(), Value::S(payload.to_owned())),
    ])
}

fn key(pk: &str) -> Item {
    let mut k = item(pk, "");
    k.remove("payload");
    k
}

fn restore(name: &str, at: Millis) -> PointInTimeRestore {
    PointInTimeRestore {
        region: DST.to_owned(),
        source_table_arn: ORDERS.to_owned(),
        table_name: name.to_owned(),
        restore_time: at,
        kms_key_arn: Some(DST_KEY.to_owned()),
    }
}

async fn sleep(ms: u64) {
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

/// Waits until the table is ready; returns how long that took.
async fn ready(sim: &SimCloud, region: &str, name: &str) -> Millis {
    let start = sim.clock().now();
    loop {
        if let Some(t) = sim.describe_table(region, name).await.unwrap()
            && t.is_ready()
        {
            return sim.clock().now() - start;
        }
        sleep(10 * SEC).await;
    }
}

#[tokio::test(start_paused = true)]
async fn the_window_starts_when_pitr_is_enabled_and_lags_now() {
    let lag = 5 * MIN;
    let (sim, clock) =
        world(Realism { pitr_latest_lag_ms: lag, ..none() }, DurationModel::default());
    let off = sim.continuous_backups(SRC, "orders").await.unwrap();
    assert!(!off.enabled && off.earliest.is_none() && off.latest.is_none());
    sim.set_point_in_time_recovery(SRC, "orders", true).await.unwrap();
    let on = sim.continuous_backups(SRC, "orders").await.unwrap();
    assert!(on.enabled);
    assert_eq!((on.earliest, on.latest), (Some(T0), Some(T0)), "never before the earliest");
    assert_eq!(on.recovery_period_days, Some(35));
    sleep(10 * MIN).await;
    let on = sim.continuous_backups(SRC, "orders").await.unwrap();
    assert_eq!((on.earliest, on.latest), (Some(T0), Some(clock.now() - 5 * 60_000)));
    assert!(on.covers(T0 + 60_000) && !on.covers(clock.now() - 60_000));
    // Disabling drops the history; enabling again starts a new window.
    sim.set_point_in_time_recovery(SRC, "orders", false).await.unwrap();
    assert!(!sim.continuous_backups(SRC, "orders").await.unwrap().enabled);
    sim.set_point_in_time_recovery(SRC, "orders", true).await.unwrap();
    assert_eq!(sim.continuous_backups(SRC, "orders").await.unwrap().earliest, Some(clock.now()));
    // A table seeded with PITR on has had it for its whole recovery period.
    sim.seed_point_in_time_recovery(SRC, "orders");
    let seeded = sim.continuous_backups(SRC, "orders").await.unwrap();
    assert_eq!(seeded.earliest, Some(clock.now() - 35 * DAY));
    let e = sim.continuous_backups(SRC, "missing").await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::NotFound);
}

#[tokio::test(start_paused = true)]
async fn a_restore_between_two_writes_has_exactly_the_first_ones_items() {
    let (sim, clock) = world(none(), DurationModel::instant());
    sim.put_item(SRC, "orders", &item("ORDER#1", "kept")).await.unwrap();
    sim.set_point_in_time_recovery(SRC, "orders", true).await.unwrap();
    sleep(SEC).await;
    // T1's writes.
    sim.put_item(SRC, "orders", &item("ORDER#2", "v1")).await.unwrap();
    sim.put_item(SRC, "orders", &item("ITEM#3", "replaces a generated item")).await.unwrap();
    sleep(SEC).await;
    let scan = ScanOptions::unpaced(4);
    let at_t1 = sim.digest_items(SRC, "orders", &scan).await.unwrap();
    let t = clock.now();
    sleep(SEC).await;
    // T2's writes: changed, added, deleted.
    sim.put_item(SRC, "orders", &item("ORDER#2", "v2")).await.unwrap();
    sim.put_item(SRC, "orders", &item("ORDER#3", "new")).await.unwrap();
    sim.delete_item(SRC, "orders", &key("ORDER#1")).await.unwrap();
    sim.delete_item(SRC, "orders", &key("ITEM#3")).await.unwrap();
    let now = sim.digest_items(SRC, "orders", &scan).await.unwrap();
    assert_ne!(now, at_t1);

    let arn = sim.restore_to_point_in_time(&restore("orders-at-t", t)).await.unwrap();
    assert_eq!(arn, "arn:aws:dynamodb:us-west-2:123456789012:table/orders-at-t");
    ready(&sim, DST, "orders-at-t").await;
    let restored = sim.digest_items(DST, "orders-at-t", &scan).await.unwrap();
    assert_eq!(restored, at_t1, "exactly the items at T");
    let got = sim.get_item(DST, "orders-at-t", &key("ORDER#2")).await.unwrap();
    assert_eq!(got, Some(item("ORDER#2", "v1")));
    // The source is untouched.
    assert_eq!(sim.digest_items(SRC, "orders", &scan).await.unwrap(), now);

    // The new table: the source's schema, the given key, PITR off, RestoreSummary.
    let info = sim.describe_table(DST, "orders-at-t").await.unwrap().unwrap();
    assert_eq!(info.kms_key_arn.as_deref(), Some(DST_KEY));
    assert_eq!(info.sort_key.as_ref().map(|k| k.name.as_str()), Some("sk"));
    let from = info.restored_from.unwrap();
    assert_eq!(from.source_table_arn.as_deref(), Some(ORDERS));
    assert_eq!(from.source_backup_arn, None);
    assert_eq!(from.restore_time, t);
    assert!(!sim.point_in_time_recovery(DST, "orders-at-t").await.unwrap());
    assert!(sim.list_tags(DST, &info.arn).await.unwrap().is_empty());

    // Beside the source, without an override: the source's encryption.
    let beside = PointInTimeRestore {
        region: SRC.to_owned(),
        kms_key_arn: None,
        ..restore("orders-beside", clock.now())
    };
    sim.restore_to_point_in_time(&beside).await.unwrap();
    ready(&sim, SRC, "orders-beside").await;
    assert_eq!(sim.digest_items(SRC, "orders-beside", &scan).await.unwrap(), now);
    let info = sim.describe_table(SRC, "orders-beside").await.unwrap().unwrap();
    assert_eq!(info.kms_key_arn, None);

    // A misbehaving service (a fault) encrypts with another key: validation must notice.
    let other = DST_KEY.replace("1111aaaa", "2222bbbb");
    sim.set_faults(drover_sim::Faults {
        restore_with_key: Some(other.clone()),
        ..drover_sim::Faults::default()
    });
    sim.restore_to_point_in_time(&restore("orders-wrong-key", t)).await.unwrap();
    let info = sim.describe_table(DST, "orders-wrong-key").await.unwrap().unwrap();
    assert_eq!(info.kms_key_arn, Some(other));
}

#[tokio::test(start_paused = true)]
async fn restores_are_refused_as_the_emulator_refuses_them_in_its_order() {
    let realism = Realism { pitr_latest_lag_ms: 2 * SEC, restore_settle_ms: 10 * SEC, ..none() };
    let (sim, clock) = world(realism, DurationModel::default());
    let kind = |r: Result<String, drover_engine::CloudError>| {
        let e = r.unwrap_err();
        (e.kind, e.message)
    };
    let t = clock.now();
    // Parameters first, even for a source without PITR.
    let (k, m) = kind(sim.restore_to_point_in_time(&restore("ab", t)).await);
    assert_eq!(k, ErrorKind::Fatal);
    assert!(m.starts_with("ValidationException: TargetTableName"), "{m}");
    let cross = PointInTimeRestore { kms_key_arn: None, ..restore("orders-x", t) };
    let (k, m) = kind(sim.restore_to_point_in_time(&cross).await);
    assert_eq!(k, ErrorKind::Fatal);
    assert!(m.contains("SSESpecificationOverride is mandatory"), "{m}");
    // A source that is not there, or in another account.
    let missing = PointInTimeRestore {
        source_table_arn: ORDERS.replace("orders", "nope"),
        ..restore("orders-x", t)
    };
    let (k, m) = kind(sim.restore_to_point_in_time(&missing).await);
    assert_eq!(k, ErrorKind::NotFound);
    assert!(m.contains("Table not found"), "{m}");
    let other = PointInTimeRestore {
        source_table_arn: ORDERS.replace("123456789012", "210987654321"),
        ..restore("orders-x", t)
    };
    assert_eq!(kind(sim.restore_to_point_in_time(&other).await).0, ErrorKind::NotFound);
    // A target that exists (before PITR is looked at).
    sim.add_table(DST, "taken", "pk", None, 0, &[]);
    let (k, m) = kind(sim.restore_to_point_in_time(&restore("taken", t)).await);
    assert_eq!(k, ErrorKind::AlreadyExists);
    assert!(m.contains("Table already exists: taken"), "{m}");
    // PITR off.
    let (k, m) = kind(sim.restore_to_point_in_time(&restore("orders-x", t)).await);
    assert_eq!(k, ErrorKind::InvalidState);
    assert!(m.starts_with("PointInTimeRecoveryUnavailableException"), "{m}");
    // Outside the window: before the enabling, and within the lag.
    sim.set_point_in_time_recovery(SRC, "orders", true).await.unwrap();
    sleep(10 * SEC).await;
    for at in [t - 1, clock.now() - 1000, clock.now() + 1000] {
        let (k, m) = kind(sim.restore_to_point_in_time(&restore("orders-x", at)).await);
        assert_eq!(k, ErrorKind::InvalidState);
        assert!(m.starts_with("InvalidRestoreTimeException"), "{m}");
    }
    assert!(sim.with(|w| w.effects.get("pitr_latest_lag_ms").copied()).unwrap_or(0) >= 1);
    // A target being created: TableInUse.
    sim.restore_to_point_in_time(&restore("orders-x", t)).await.unwrap();
    let (k, m) = kind(sim.restore_to_point_in_time(&restore("orders-x", t)).await);
    assert_eq!(k, ErrorKind::InvalidState);
    assert!(m.starts_with("TableInUseException"), "{m}");
    // Nothing refused created anything.
    assert_eq!(sim.table_names(DST), ["orders-x", "taken"]);
}

#[tokio::test(start_paused = true)]
async fn restores_in_progress_share_the_quota_with_restore_jobs() {
    let realism = Realism { max_restores: 2, restore_settle_ms: 10 * SEC, ..none() };
    let (sim, clock) = world(realism, DurationModel::default());
    sim.seed_point_in_time_recovery(SRC, "orders");
    // A recovery point of `orders` to restore from later.
    sim.add_vault(SRC, "src", None);
    let job = sim
        .start_backup_job(&drover_engine::ports::BackupRequest {
            region: SRC.to_owned(),
            table_arn: ORDERS.to_owned(),
            vault: "src".to_owned(),
            iam_role_arn: "arn:aws:iam::123456789012:role/r".to_owned(),
            idempotency_token: "b".to_owned(),
            ..Default::default()
        })
        .await
        .unwrap();
    sleep(2 * MIN).await;
    let point = sim.describe_backup_job(SRC, &job).await.unwrap().recovery_point_arn.unwrap();
    // Two restores beside the source, in progress for 20 minutes.
    let beside = |name: &str| PointInTimeRestore {
        region: SRC.to_owned(),
        kms_key_arn: None,
        ..restore(name, clock.now() - 60_000)
    };
    sim.restore_to_point_in_time(&beside("rr1")).await.unwrap();
    sim.restore_to_point_in_time(&beside("rr2")).await.unwrap();
    let e = sim.restore_to_point_in_time(&beside("rr3")).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Throttled);
    assert!(e.message.starts_with("LimitExceededException"), "{}", e.message);
    assert_eq!(sim.table_names(SRC).len(), 3, "nothing created");
    // StartRestoreJob counts them too.
    let request = RestoreRequest {
        region: SRC.to_owned(),
        recovery_point_arn: point,
        table_name: "rr4".to_owned(),
        kms_key_arn: sim.aws_backup_key(SRC),
        iam_role_arn: "arn:aws:iam::123456789012:role/r".to_owned(),
        idempotency_token: "t".to_owned(),
        ..RestoreRequest::default()
    };
    let e = sim.start_restore_job(&request).await;
    assert!(matches!(e, Err(ref e) if e.kind == ErrorKind::Throttled), "{e:?}");
    // In another region, the quota is another one.
    sim.restore_to_point_in_time(&restore("rr5", clock.now() - 60_000)).await.unwrap();
    // Once they settled, the quota is free again, for both kinds.
    ready(&sim, SRC, "rr1").await;
    ready(&sim, SRC, "rr2").await;
    sim.start_restore_job(&request).await.unwrap();
    sim.restore_to_point_in_time(&beside("rr3")).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_point_in_time_restore_takes_at_least_twenty_minutes_on_aws() {
    let realism = drover_sim::estimate::default_realism();
    assert_eq!(Realism::aws().pitr_latest_lag_ms, 5 * MIN, "typically 5 minutes");
    let (sim, clock) = world(realism.clone(), DurationModel::default());
    sim.seed_point_in_time_recovery(SRC, "orders");
    sim.with(|w| w.set_generated_items(SRC, "orders", 10_000));
    sim.restore_to_point_in_time(&restore("big", clock.now() - 600_000)).await.unwrap();
    let info = sim.describe_table(DST, "big").await.unwrap().unwrap();
    assert_eq!(info.status, "CREATING");
    let took = ready(&sim, DST, "big").await;
    let settle = Millis::try_from(realism.restore_settle_ms).unwrap();
    assert!(took >= 20 * 60_000 + settle, "{took} ms");
    assert!(took <= 21 * 60_000 + settle, "{took} ms");
    let bytes = 10_000 * drover_sim::ITEM_BYTES;
    assert_eq!(
        DurationModel::default().pitr_restore_ms(bytes),
        1_200_000 + bytes as Millis / 25_000
    );
}

#[tokio::test(start_paused = true)]
async fn tables_restored_from_backups_name_their_recovery_point() {
    let (sim, _) = world(none(), DurationModel::instant());
    sim.add_vault(DST, "v", Some(DST_KEY));
    // Take a backup in the source region and restore it there.
    sim.add_vault(SRC, "src", None);
    let job = sim
        .start_backup_job(&drover_engine::ports::BackupRequest {
            region: SRC.to_owned(),
            table_arn: ORDERS.to_owned(),
            vault: "src".to_owned(),
            iam_role_arn: "arn:aws:iam::123456789012:role/r".to_owned(),
            idempotency_token: "b".to_owned(),
            ..Default::default()
        })
        .await
        .unwrap();
    sleep(SEC).await;
    let point = sim.describe_backup_job(SRC, &job).await.unwrap().recovery_point_arn.unwrap();
    let job = sim
        .start_restore_job(&RestoreRequest {
            region: SRC.to_owned(),
            recovery_point_arn: point.clone(),
            table_name: "orders-restored".to_owned(),
            kms_key_arn: sim.aws_backup_key(SRC),
            iam_role_arn: "arn:aws:iam::123456789012:role/r".to_owned(),
            idempotency_token: "r".to_owned(),
            ..RestoreRequest::default()
        })
        .await
        .unwrap();
    sleep(SEC).await;
    let status = sim.describe_restore_job(SRC, &job).await.unwrap();
    assert!(status.created_resource_arn.is_some(), "{status:?}");
    let info = sim.describe_table(SRC, "orders-restored").await.unwrap().unwrap();
    let from = info.restored_from.unwrap();
    assert_eq!(from.source_backup_arn.as_deref(), Some(point.as_str()));
    assert_eq!(from.source_table_arn.as_deref(), Some(ORDERS));
}
