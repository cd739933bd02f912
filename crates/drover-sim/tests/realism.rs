//! The realism layer through the ports: each behaviour of [`Realism`] on its own, what it
//! changes, and that with its knob off the simulator answers as it did before.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use drover_engine::ports::{
    BackupRequest, BackupService, CopyRequest, Item, JobState, JobStatus, Millis, RestoreRequest,
    ScanOptions, TableInfo, TableService, Value,
};
use drover_engine::{ErrorKind, SystemClock};
use drover_sim::{DurationModel, Realism, SimCloud};

const T0: Millis = 1_795_000_000_000;
const SRC: &str = "us-east-1";
const DST: &str = "us-west-2";
const ROLE: &str = "arn:aws:iam::123456789012:role/r";
const SRC_KEY: &str = "arn:aws:kms:us-east-1:123456789012:key/1111aaaa-22bb-33cc-44dd-555555eeeeee";
const ORDERS: &str = "arn:aws:dynamodb:us-east-1:123456789012:table/orders";
const SEC: u64 = 1000;
const MIN: u64 = 60 * SEC;

/// Every behaviour off, the UPDATING and DELETING states too: each test turns on what it
/// exercises.
fn none() -> Realism {
    Realism { update_ms: 0, delete_ms: 0, ..Realism::off() }
}

/// A world with `realism` (and its clock): tables `orders` (pk, sk; 10 generated items and a
/// canary) and `customers` in the source region, vaults and keys in both regions; jobs without
/// noise (backup 60 s, copy 180 s, restore 300 s).
fn world(realism: Realism, seed: u64) -> (SimCloud, SystemClock) {
    let clock = SystemClock::starting_at(T0);
    let sim = SimCloud::new("123456789012", seed, Arc::new(clock.clone()));
    sim.set_model(DurationModel { noise: 0.0, ..DurationModel::default() });
    sim.set_realism(realism);
    for region in [SRC, DST] {
        sim.add_region(region);
        let key = SRC_KEY.replace(SRC, region);
        sim.add_key(region, &key);
        sim.add_vault(region, "vault", Some(&key));
    }
    sim.add_table(SRC, "orders", "pk", Some("sk"), 10, &[item("ORDER#1", "canary")]);
    sim.add_table(SRC, "customers", "pk", None, 5, &[]);
    (sim, clock)
}

fn key(pk: &str) -> Item {
    Item::from([("pk".to_owned(), Value::S(pk.to_owned())), ("sk".to_owned(), s("META"))])
}

fn item(pk: &str, payload: &str) -> Item {
    let mut i = key(pk);
    i.insert("payload".to_owned(), s(payload));
    i
}

fn s(v: &str) -> Value {
    Value::S(v.to_owned())
}

async fn sleep(ms: u64) {
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

fn now(clock: &SystemClock) -> Millis {
    drover_engine::Clock::now(clock)
}

fn effects(sim: &SimCloud, field: &str) -> u64 {
    sim.with(|w| w.effects.get(field).copied().unwrap_or(0))
}

async fn describe(sim: &SimCloud, region: &str, name: &str) -> TableInfo {
    sim.describe_table(region, name).await.unwrap().unwrap()
}

fn backup_request(table_arn: &str, token: &str) -> BackupRequest {
    BackupRequest {
        region: SRC.to_owned(),
        table_arn: table_arn.to_owned(),
        vault: "vault".to_owned(),
        iam_role_arn: ROLE.to_owned(),
        idempotency_token: token.to_owned(),
        ..Default::default()
    }
}

fn restore_request(point: &str, table: &str, token: &str) -> RestoreRequest {
    RestoreRequest {
        region: SRC.to_owned(),
        recovery_point_arn: point.to_owned(),
        table_name: table.to_owned(),
        kms_key_arn: SRC_KEY.to_owned(),
        iam_role_arn: ROLE.to_owned(),
        idempotency_token: token.to_owned(),
        ..Default::default()
    }
}

fn copy_request(point: &str, token: &str) -> CopyRequest {
    CopyRequest {
        region: SRC.to_owned(),
        recovery_point_arn: point.to_owned(),
        source_vault: "vault".to_owned(),
        destination_vault_arn: "arn:aws:backup:us-west-2:123456789012:backup-vault:vault"
            .to_owned(),
        iam_role_arn: ROLE.to_owned(),
        idempotency_token: token.to_owned(),
        ..Default::default()
    }
}

/// Polls a job (every second) until it ends.
async fn done(describe: impl AsyncFn() -> JobStatus) -> JobStatus {
    for _ in 0..86_400 {
        let status = describe().await;
        if matches!(status.state, JobState::Completed | JobState::Failed) {
            return status;
        }
        sleep(SEC).await;
    }
    panic!("the job never ended");
}

/// A completed backup of `orders` started now: its recovery point.
async fn backup(sim: &SimCloud, token: &str) -> String {
    let job = sim.start_backup_job(&backup_request(ORDERS, token)).await.unwrap();
    let status = done(async || sim.describe_backup_job(SRC, &job).await.unwrap()).await;
    assert_eq!(status.state, JobState::Completed, "{status:?}");
    status.recovery_point_arn.unwrap()
}

/// Restores `point` into `table` (in the source region) and waits for the job to end.
async fn restore(sim: &SimCloud, point: &str, table: &str) -> JobStatus {
    let job = sim.start_restore_job(&restore_request(point, table, table)).await.unwrap();
    done(async || sim.describe_restore_job(SRC, &job).await.unwrap()).await
}

#[tokio::test(start_paused = true)]
async fn off_is_the_simulator_as_it_was_and_old_worlds_load_with_it() {
    assert_eq!(Realism::default(), Realism::off());
    let off = Realism::off();
    assert_eq!((off.update_ms, off.delete_ms), (5_000, 5_000), "the two states it always had");
    let (sim, _) = world(Realism::aws(), 1);
    // A world saved before the realism layer: no `realism` in its JSON.
    let mut json = sim.with(|w| serde_json::to_value(&*w).unwrap());
    json.as_object_mut().unwrap().remove("realism");
    let path = std::env::temp_dir().join(format!("drover-sim-realism-{}.json", std::process::id()));
    std::fs::write(&path, serde_json::to_vec(&json).unwrap()).unwrap();
    let loaded = SimCloud::load(&path, Arc::new(SystemClock::starting_at(T0))).unwrap();
    std::fs::remove_file(&path).unwrap();
    assert_eq!(loaded.with(|w| w.realism.clone()), Realism::off());
    // A world saved with realism keeps it; a partial one takes `off` for what it leaves out.
    let json = sim.with(|w| serde_json::to_string(&*w).unwrap());
    let w: drover_sim::World = serde_json::from_str(&json).unwrap();
    assert_eq!(w.realism, Realism::aws());
    let partial: Realism = serde_json::from_str(r#"{"tag_delay_ms": 7}"#).unwrap();
    assert_eq!(partial, Realism { tag_delay_ms: 7, ..Realism::off() });
    // Without noise: the same, minus the passing faults and the copy queue.
    let quiet = Realism::aws().without_noise();
    assert_eq!((quiet.fault_rate, quiet.copy_queue_ms), (0.0, 0));
    assert_eq!(Realism { fault_rate: 0.01, copy_queue_ms: 300_000, ..quiet }, Realism::aws());
    assert_eq!(Realism::off().point_delete_ms, 0, "recovery points went at once");
}

/// `Realism::emulator()` is the emulator's `--realism`: the knobs of
/// `tests/emulator/realism.py` at their defaults, seconds as milliseconds.
#[test]
fn the_emulator_preset_matches_the_emulators_knobs() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/emulator/realism.py");
    let text = std::fs::read_to_string(path).unwrap();
    let knobs = text.split("KNOBS = {").nth(1).unwrap().split("\n}").next().unwrap();
    let mut emulator = BTreeMap::new();
    for line in knobs.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
        // "name": ("kind", value),
        let (name, rest) = line.split_once(':').unwrap();
        let (kind, value) = rest.trim_matches([' ', '(', ')', ',']).split_once(',').unwrap();
        let value = value.trim().trim_end_matches([')', ',']).trim();
        emulator.insert(
            name.trim_matches('"').to_owned(),
            (kind.trim_matches('"').to_owned(), value.to_owned()),
        );
    }
    let r = Realism::emulator();
    let ms = |v: u64| format!("{:.1}", v as f64 / 1000.0);
    let ours: BTreeMap<&str, String> = BTreeMap::from([
        ("tag_delay", ms(r.tag_delay_ms)),
        ("pitr_unavailable", ms(r.pitr_unavailable_ms)),
        ("pitr_latest_lag", ms(r.pitr_latest_lag_ms)),
        ("update_seconds", ms(r.update_ms)),
        ("ttl_enabling", ms(r.ttl_enabling_ms)),
        ("ttl_change_window", ms(r.ttl_change_window_ms)),
        ("delete_seconds", ms(r.delete_ms)),
        ("restore_settle", ms(r.restore_settle_ms)),
        ("backup_lag", ms(r.backup_lag_ms)),
        ("unseen_jobs", ms(r.unseen_jobs_ms)),
        ("max_restores", r.max_restores.to_string()),
        ("one_job_per_resource", if r.one_job_per_resource { "True" } else { "False" }.to_owned()),
        ("copy_queue", ms(r.copy_queue_ms)),
        ("fault_rate", r.fault_rate.to_string()),
    ]);
    // What the ports cannot show: list pages and replays without a job id (the adapter's),
    // and the emulator's S3 debug delay (the simulator has no S3).
    let adapter_only = ["page_size", "idempotent_replay_without_id", "s3_write_delay_ms"];
    for (name, (_, value)) in &emulator {
        if adapter_only.contains(&name.as_str()) {
            continue;
        }
        assert_eq!(ours.get(name.as_str()), Some(value), "emulator knob {name}");
    }
    assert_eq!(ours.len() + adapter_only.len(), emulator.len(), "{emulator:?}");
    assert!(r.inactive_tables_not_found, "the emulator's inactive tables are never found");
    assert_eq!(r.point_delete_ms, r.delete_ms, "one knob times both deletions there");
}

#[tokio::test(start_paused = true)]
async fn tagging_is_asynchronous() {
    let (sim, _) = world(Realism { tag_delay_ms: 5 * SEC, ..none() }, 1);
    let tags = |k: &str, v: &str| BTreeMap::from([(k.to_owned(), v.to_owned())]);
    sim.tag_table(SRC, ORDERS, &tags("a", "1")).await.unwrap();
    assert!(sim.list_tags(SRC, ORDERS).await.unwrap().is_empty(), "the previous (empty) set");
    sleep(3 * SEC).await;
    sim.tag_table(SRC, ORDERS, &tags("b", "2")).await.unwrap();
    assert!(sim.list_tags(SRC, ORDERS).await.unwrap().is_empty());
    sleep(2 * SEC).await;
    assert_eq!(sim.list_tags(SRC, ORDERS).await.unwrap(), tags("a", "1"), "the first change");
    sleep(3 * SEC).await;
    let both = BTreeMap::from([("a".into(), "1".into()), ("b".into(), "2".into())]);
    assert_eq!(sim.list_tags(SRC, ORDERS).await.unwrap(), both);
    assert_eq!(effects(&sim, "tag_delay_ms"), 3);

    let (sim, _) = world(none(), 1);
    sim.tag_table(SRC, ORDERS, &tags("a", "1")).await.unwrap();
    assert_eq!(sim.list_tags(SRC, ORDERS).await.unwrap(), tags("a", "1"), "off: at once");
}

#[tokio::test(start_paused = true)]
async fn continuous_backups_are_enabled_late() {
    let realism = Realism { pitr_unavailable_ms: MIN, restore_settle_ms: 20 * SEC, ..none() };
    let (sim, clock) = world(realism, 1);
    // A table created just now.
    let e = sim.set_point_in_time_recovery(SRC, "orders", true).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Transient);
    assert_eq!(
        e.message,
        "ContinuousBackupsUnavailableException: Backups are being enabled for the table"
    );
    assert!(!sim.point_in_time_recovery(SRC, "orders").await.unwrap(), "no effect");
    sleep(MIN).await;
    sim.set_point_in_time_recovery(SRC, "orders", true).await.unwrap();
    assert!(sim.point_in_time_recovery(SRC, "orders").await.unwrap());
    // A restored table: for a minute after it became ACTIVE (10 s after its job ended).
    let point = backup(&sim, "b").await;
    let status = restore(&sim, &point, "restored").await;
    let active = status.completed_at.unwrap() + 10_000;
    while let Err(e) = sim.set_point_in_time_recovery(SRC, "restored", true).await {
        assert_eq!(e.kind, ErrorKind::Transient);
        sleep(SEC).await;
    }
    let after = now(&clock) - active;
    assert!((60_000..61_000).contains(&after), "{after} ms after ACTIVE");
    assert!(effects(&sim, "pitr_unavailable_ms") > 60);

    let (sim, _) = world(none(), 1);
    sim.set_point_in_time_recovery(SRC, "orders", true).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn update_table_leaves_a_table_updating() {
    let (sim, _) = world(Realism { update_ms: 5 * SEC, ..none() }, 1);
    sim.set_stream(SRC, "orders", Some("NEW_IMAGE")).await.unwrap();
    assert_eq!(describe(&sim, SRC, "orders").await.status, "UPDATING");
    for refused in [
        sim.set_deletion_protection(SRC, "orders", true).await,
        sim.set_stream(SRC, "orders", None).await,
        sim.enable_ttl(SRC, "orders", "expires").await,
        sim.delete_table(SRC, "orders").await,
    ] {
        let e = refused.unwrap_err();
        assert_eq!(e.kind, ErrorKind::InvalidState);
        assert!(e.message.contains("is being updated (ResourceInUseException)"), "{e}");
    }
    // UpdateContinuousBackups does not list ResourceInUseException: not refused.
    sim.set_point_in_time_recovery(SRC, "orders", true).await.unwrap();
    sleep(5 * SEC).await;
    assert_eq!(describe(&sim, SRC, "orders").await.status, "ACTIVE");
    sim.set_deletion_protection(SRC, "orders", true).await.unwrap();
    assert_eq!(effects(&sim, "update_ms"), 5, "4 refused, 1 described UPDATING");

    let (sim, _) = world(none(), 1);
    sim.set_stream(SRC, "orders", Some("NEW_IMAGE")).await.unwrap();
    assert_eq!(describe(&sim, SRC, "orders").await.status, "ACTIVE", "0: no UPDATING state");
    sim.set_deletion_protection(SRC, "orders", true).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn time_to_live_is_enabled_slowly_and_changed_once_an_hour() {
    let realism = Realism { ttl_enabling_ms: MIN, ttl_change_window_ms: 60 * MIN, ..none() };
    let (sim, _) = world(realism, 1);
    sim.enable_ttl(SRC, "orders", "expires").await.unwrap();
    let ttl = sim.time_to_live(SRC, "orders").await.unwrap();
    assert_eq!((ttl.status.as_str(), ttl.attribute.as_deref()), ("ENABLING", Some("expires")));
    assert_eq!(ttl.enabled_attribute(), Some("expires"), "ENABLING counts as enabled");
    sleep(MIN).await;
    assert_eq!(sim.time_to_live(SRC, "orders").await.unwrap().status, "ENABLED");
    // A second change within the hour.
    let e = sim.enable_ttl(SRC, "orders", "ttl").await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Fatal);
    assert_eq!(
        e.message,
        "ValidationException: Time to live has been modified multiple times within a fixed interval"
    );
    assert_eq!(
        sim.time_to_live(SRC, "orders").await.unwrap().attribute.as_deref(),
        Some("expires")
    );
    sleep(59 * MIN).await;
    sim.enable_ttl(SRC, "orders", "ttl").await.unwrap();
    assert_eq!((effects(&sim, "ttl_enabling_ms"), effects(&sim, "ttl_change_window_ms")), (1, 1));

    let (sim, _) = world(none(), 1);
    sim.enable_ttl(SRC, "orders", "expires").await.unwrap();
    assert_eq!(sim.time_to_live(SRC, "orders").await.unwrap().status, "ENABLED");
    sim.enable_ttl(SRC, "orders", "ttl").await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn deleted_tables_linger_and_keep_their_name() {
    let (sim, _) = world(Realism { delete_ms: 10 * MIN, ..none() }, 1);
    let point = backup(&sim, "b").await;
    sim.delete_table(SRC, "customers").await.unwrap();
    assert_eq!(describe(&sim, SRC, "customers").await.status, "DELETING");
    // A restore that finishes (after 5 minutes) while the name is still being deleted.
    let status = restore(&sim, &point, "customers").await;
    assert_eq!(status.state, JobState::Failed);
    assert_eq!(status.message.as_deref(), Some("Table already exists: customers"));
    // One that finishes after the deletion, with no call in between: the table went first.
    let job = sim.start_restore_job(&restore_request(&point, "customers", "again")).await.unwrap();
    sleep(10 * MIN).await;
    let status = sim.describe_restore_job(SRC, &job).await.unwrap();
    assert_eq!(status.state, JobState::Completed, "{status:?}");
    assert_eq!(describe(&sim, SRC, "customers").await.status, "ACTIVE");
    assert!(effects(&sim, "delete_ms") >= 2);

    let (sim, _) = world(none(), 1);
    sim.delete_table(SRC, "customers").await.unwrap();
    assert_eq!(sim.describe_table(SRC, "customers").await.unwrap(), None, "0: gone at once");
}

#[tokio::test(start_paused = true)]
async fn deleted_recovery_points_linger() {
    let (sim, _) = world(Realism { point_delete_ms: MIN, ..none() }, 1);
    let point = backup(&sim, "b").await;
    sim.delete_recovery_point(SRC, "vault", &point).await.unwrap();
    let listed = sim.list_recovery_points(SRC, "vault", SRC, "orders").await.unwrap();
    assert_eq!(listed.iter().map(|p| p.status.as_str()).collect::<Vec<_>>(), ["DELETING"]);
    assert!(!listed[0].is_completed());
    let e = sim.delete_recovery_point(SRC, "vault", &point).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Transient);
    assert!(e.message.starts_with("InvalidResourceStateException:"), "{e}");
    for refused in [
        sim.start_restore_job(&restore_request(&point, "restored", "r")).await,
        sim.start_copy_job(&copy_request(&point, "c")).await,
    ] {
        let e = refused.unwrap_err();
        assert_eq!(e.kind, ErrorKind::InvalidState);
        assert!(e.message.starts_with("InvalidRequestException:"), "{e}");
    }
    sleep(MIN).await;
    assert!(sim.list_recovery_points(SRC, "vault", SRC, "orders").await.unwrap().is_empty());
    let e = sim.delete_recovery_point(SRC, "vault", &point).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::NotFound);
    assert_eq!(effects(&sim, "point_delete_ms"), 1);

    let (sim, _) = world(Realism::off(), 1);
    let point = backup(&sim, "b").await;
    sim.delete_recovery_point(SRC, "vault", &point).await.unwrap();
    assert!(sim.list_recovery_points(SRC, "vault", SRC, "orders").await.unwrap().is_empty(), "0");
}

#[tokio::test(start_paused = true)]
async fn restored_tables_settle_after_their_job() {
    let (sim, _) = world(Realism { restore_settle_ms: MIN, ..none() }, 1);
    sim.with(|w| w.add_global_index(SRC, "orders", "by-status"));
    let point = backup(&sim, "b").await;
    let status = restore(&sim, &point, "restored").await;
    assert_eq!(status.state, JobState::Completed);
    let ended = status.completed_at.unwrap();
    let t = describe(&sim, SRC, "restored").await;
    assert_eq!((t.status.as_str(), t.restore_in_progress), ("CREATING", true));
    let e = sim.set_stream(SRC, "restored", Some("NEW_IMAGE")).await.unwrap_err();
    assert!(e.message.contains("is being created (ResourceInUseException)"), "{e}");
    sleep(30 * SEC).await;
    let t = describe(&sim, SRC, "restored").await;
    assert_eq!((t.status.as_str(), t.restore_in_progress), ("ACTIVE", true));
    assert_eq!(t.global_indexes["by-status"], "CREATING");
    assert!(!t.is_ready());
    sleep(30 * SEC).await;
    let t = describe(&sim, SRC, "restored").await;
    assert!(t.is_ready(), "{t:?}");
    assert_eq!(t.global_indexes["by-status"], "ACTIVE");
    assert_eq!(sim.with(|w| w.table_settled_at(SRC, "restored")), Some(ended + 60_000));

    let (sim, _) = world(none(), 1);
    let point = backup(&sim, "b").await;
    restore(&sim, &point, "restored").await;
    assert!(describe(&sim, SRC, "restored").await.is_ready(), "0: ready with its job");
    assert_eq!(sim.with(|w| w.table_settled_at(SRC, "restored")), None);
}

#[tokio::test(start_paused = true)]
async fn tables_that_are_not_active_are_not_found() {
    let realism = Realism {
        inactive_tables_not_found: true,
        restore_settle_ms: MIN,
        delete_ms: MIN,
        ..none()
    };
    let (sim, _) = world(realism, 1);
    let point = backup(&sim, "b").await;
    restore(&sim, &point, "restored").await;
    let arn = describe(&sim, SRC, "restored").await.arn;
    let tags = BTreeMap::from([("k".to_owned(), "v".to_owned())]);
    // CREATING: no tags, no items.
    let e = sim.list_tags(SRC, &arn).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::NotFound);
    assert!(e.message.contains("Requested resource not found: ResourcArn:"), "{e}");
    assert_eq!(sim.tag_table(SRC, &arn, &tags).await.unwrap_err().kind, ErrorKind::NotFound);
    assert_eq!(
        sim.get_item(SRC, "restored", &key("ORDER#1")).await.unwrap_err().kind,
        ErrorKind::NotFound
    );
    assert_eq!(
        sim.count_items(SRC, "restored", &ScanOptions::unpaced(1)).await.unwrap_err().kind,
        ErrorKind::NotFound
    );
    // ACTIVE (its restore still in progress): both.
    sleep(30 * SEC).await;
    sim.tag_table(SRC, &arn, &tags).await.unwrap();
    assert!(sim.get_item(SRC, "restored", &key("ORDER#1")).await.unwrap().is_some());
    // DELETING: items still, tags not.
    sleep(30 * SEC).await;
    sim.delete_table(SRC, "restored").await.unwrap();
    assert_eq!(sim.list_tags(SRC, &arn).await.unwrap_err().kind, ErrorKind::NotFound);
    assert!(sim.get_item(SRC, "restored", &key("ORDER#1")).await.unwrap().is_some());
    assert_eq!(effects(&sim, "inactive_tables_not_found"), 5);

    let (sim, _) = world(Realism { delete_ms: MIN, ..none() }, 1);
    sim.tag_table(SRC, ORDERS, &tags).await.unwrap();
    sim.delete_table(SRC, "orders").await.unwrap();
    assert_eq!(sim.list_tags(SRC, ORDERS).await.unwrap(), tags, "off: a DELETING table's tags");
}

#[tokio::test(start_paused = true)]
async fn backups_miss_the_writes_of_the_minute_before_them() {
    let (sim, _) = world(Realism { backup_lag_ms: MIN, ..none() }, 1);
    sim.put_item(SRC, "orders", &item("OLD#1", "kept")).await.unwrap();
    sleep(30 * SEC).await;
    sim.put_item(SRC, "orders", &item("NEW#1", "missed")).await.unwrap();
    sim.put_item(SRC, "orders", &item("ORDER#1", "overwritten")).await.unwrap();
    sim.delete_item(SRC, "orders", &key("OLD#1")).await.unwrap();
    sim.put_item(SRC, "orders", &item("OLD#1", "written again")).await.unwrap();
    // A minute after the first write: it is in the backup, the later ones are not.
    sleep(30 * SEC).await;
    let point = backup(&sim, "b").await;
    restore(&sim, &point, "restored").await;
    let get = async |k: &str| sim.get_item(SRC, "restored", &key(k)).await.unwrap();
    assert_eq!(get("OLD#1").await, Some(item("OLD#1", "kept")));
    assert_eq!(get("NEW#1").await, None);
    assert_eq!(get("ORDER#1").await, Some(item("ORDER#1", "canary")));
    assert_eq!(sim.count_items(SRC, "restored", &ScanOptions::unpaced(1)).await.unwrap(), 12);
    assert_eq!(effects(&sim, "backup_lag_ms"), 4);
    // The write log keeps only what a backup could still miss.
    let saved = || sim.with(|w| serde_json::to_string(&*w).unwrap());
    assert!(!saved().contains("\"writes\""), "forgotten once a minute old: {}", saved());
    sim.put_item(SRC, "orders", &item("NEW#2", "logged")).await.unwrap();
    assert!(saved().contains("\"writes\""));
    sleep(MIN).await;
    assert!(!saved().contains("\"writes\""), "with no call in between");

    let (sim, _) = world(none(), 1);
    sim.put_item(SRC, "orders", &item("NEW#1", "kept")).await.unwrap();
    let point = backup(&sim, "b").await;
    restore(&sim, &point, "restored").await;
    assert!(sim.get_item(SRC, "restored", &key("NEW#1")).await.unwrap().is_some(), "off");
    assert!(!sim.with(|w| serde_json::to_string(&*w).unwrap()).contains("\"writes\""));
}

#[tokio::test(start_paused = true)]
async fn jobs_are_unseen_for_a_while_after_they_start() {
    let (sim, _) = world(Realism { unseen_jobs_ms: 5 * SEC, ..none() }, 1);
    let job = sim.start_backup_job(&backup_request(ORDERS, "b")).await.unwrap();
    let e = sim.describe_backup_job(SRC, &job).await.unwrap_err();
    assert_eq!(
        (e.kind, e.message.as_str()),
        (ErrorKind::NotFound, &*format!("Job {job} not found"))
    );
    sleep(5 * SEC).await;
    assert_eq!(sim.describe_backup_job(SRC, &job).await.unwrap().state, JobState::Created);
    assert_eq!(effects(&sim, "unseen_jobs_ms"), 1);
}

#[tokio::test(start_paused = true)]
async fn restores_beyond_the_quota_are_refused() {
    let (sim, _) = world(Realism { max_restores: 2, ..none() }, 1);
    let point = backup(&sim, "b").await;
    let first = sim.start_restore_job(&restore_request(&point, "r1", "t1")).await.unwrap();
    sim.start_restore_job(&restore_request(&point, "r2", "t2")).await.unwrap();
    let e = sim.start_restore_job(&restore_request(&point, "r3", "t3")).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Throttled);
    assert!(
        e.message.starts_with("LimitExceededException: Too many concurrent restore jobs"),
        "{e}"
    );
    // The same token still answers its job; another region has its own quota.
    assert_eq!(sim.start_restore_job(&restore_request(&point, "r1", "t1")).await.unwrap(), first);
    let copy = sim.start_copy_job(&copy_request(&point, "c")).await.unwrap();
    let copied = done(async || sim.describe_copy_job(SRC, &copy).await.unwrap()).await;
    let there = RestoreRequest {
        region: DST.to_owned(),
        kms_key_arn: SRC_KEY.replace(SRC, DST),
        ..restore_request(copied.recovery_point_arn.as_deref().unwrap(), "r3", "t3")
    };
    sim.start_restore_job(&there).await.unwrap();
    // Once one finishes, there is room again.
    sleep(5 * MIN).await;
    sim.start_restore_job(&restore_request(&point, "r3", "t3")).await.unwrap();
    assert_eq!(effects(&sim, "max_restores"), 1);
}

#[tokio::test(start_paused = true)]
async fn one_backup_or_copy_job_runs_per_table() {
    let (sim, _) = world(Realism { one_job_per_resource: true, ..none() }, 1);
    let first = sim.start_backup_job(&backup_request(ORDERS, "b1")).await.unwrap();
    let second = sim.start_backup_job(&backup_request(ORDERS, "b2")).await.unwrap();
    let customers = ORDERS.replace("orders", "customers");
    let other = sim.start_backup_job(&backup_request(&customers, "b3")).await.unwrap();
    sleep(30 * SEC).await;
    let status = |job: &str| {
        let (sim, job) = (sim.clone(), job.to_owned());
        async move { sim.describe_backup_job(SRC, &job).await.unwrap() }
    };
    assert_eq!(status(&first).await.raw_state, "RUNNING");
    assert_eq!(status(&other).await.raw_state, "RUNNING", "another table: not queued");
    let waiting = status(&second).await;
    assert_eq!((waiting.raw_state.as_str(), waiting.percent_done), ("CREATED", Some(0.0)));
    // The second starts when the first ends, and takes its own full minute from then.
    let first_done = done(async || status(&first).await).await;
    let second_done = done(async || status(&second).await).await;
    let (a, b) = (first_done.completed_at.unwrap(), second_done.completed_at.unwrap());
    assert_eq!(b - a, 60_000, "queued, then its whole duration");
    assert_eq!(second_done.created_at, waiting.created_at);
    // A copy's resource is its point's table: two copies of one table take turns.
    let point = first_done.recovery_point_arn.unwrap();
    let c1 = sim.start_copy_job(&copy_request(&point, "c1")).await.unwrap();
    let c2 = sim.start_copy_job(&copy_request(&point, "c2")).await.unwrap();
    assert_eq!(sim.with(|w| w.job_times()[&c2].2), Millis::MAX, "waiting: no end yet");
    let d1 = done(async || sim.describe_copy_job(SRC, &c1).await.unwrap()).await;
    let d2 = done(async || sim.describe_copy_job(SRC, &c2).await.unwrap()).await;
    let (e1, e2) = (d1.completed_at.unwrap(), d2.completed_at.unwrap());
    assert_eq!(e2 - e1, 180_000);
    assert_eq!(sim.with(|w| w.job_times()[&c2].1), e1, "its duration started as the first ended");
    assert_eq!(effects(&sim, "one_job_per_resource"), 2);

    let (sim, _) = world(none(), 1);
    sim.start_backup_job(&backup_request(ORDERS, "b1")).await.unwrap();
    let second = sim.start_backup_job(&backup_request(ORDERS, "b2")).await.unwrap();
    sleep(30 * SEC).await;
    assert_eq!(sim.describe_backup_job(SRC, &second).await.unwrap().raw_state, "RUNNING", "off");
}

#[tokio::test(start_paused = true)]
async fn copy_jobs_sit_in_created_for_a_seeded_while() {
    let delays = |seed: u64| async move {
        let (sim, _) = world(Realism { copy_queue_ms: 30 * MIN, ..none() }, seed);
        let point = backup(&sim, "b").await;
        let mut out = Vec::new();
        for n in 0..8 {
            let job = sim.start_copy_job(&copy_request(&point, &format!("c{n}"))).await.unwrap();
            let (_, began, _) = sim.with(|w| w.job_times()[&job]);
            let created = sim.describe_copy_job(SRC, &job).await.unwrap().created_at.unwrap();
            out.push(began - created);
        }
        assert_eq!(effects(&sim, "copy_queue_ms"), 8);
        out
    };
    let first = delays(1).await;
    assert!(first.iter().all(|d| (0..30 * 60_000).contains(d)), "{first:?}");
    assert!(first.windows(2).any(|w| w[0] != w[1]), "random: {first:?}");
    assert_eq!(delays(1).await, first, "the same seed, the same delays");
    assert_ne!(delays(2).await, first);
    // Meanwhile the job says CREATED.
    let (sim, _) = world(Realism { copy_queue_ms: 30 * MIN, ..none() }, 1);
    let point = backup(&sim, "b").await;
    let job = sim.start_copy_job(&copy_request(&point, "c")).await.unwrap();
    let (_, began, _) = sim.with(|w| w.job_times()[&job]);
    let created = sim.describe_copy_job(SRC, &job).await.unwrap().created_at.unwrap();
    sleep(u64::try_from(began - created).unwrap() - 1).await;
    assert_eq!(sim.describe_copy_job(SRC, &job).await.unwrap().raw_state, "CREATED");
}

#[tokio::test(start_paused = true)]
async fn servers_fault_and_it_passes() {
    let (sim, _) = world(Realism { fault_rate: 1.0, ..none() }, 1);
    let e = sim.put_item(SRC, "orders", &item("NEW#1", "x")).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Transient);
    assert!(e.message.contains("HTTP 50"), "{e}");
    let e = sim.start_backup_job(&backup_request(ORDERS, "b")).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Transient);
    assert!(
        ["ServiceUnavailableException", "DependencyFailureException", "HTTP 503"]
            .iter()
            .any(|f| e.message.contains(f)),
        "{e}"
    );
    sim.set_realism(none());
    assert_eq!(sim.get_item(SRC, "orders", &key("NEW#1")).await.unwrap(), None, "no effect");
    assert_eq!(sim.with(|w| w.jobs_started.values().sum::<u64>()), 0, "no job started");

    let outcomes = |seed: u64| async move {
        let (sim, _) = world(Realism { fault_rate: 0.2, ..none() }, seed);
        let mut out = Vec::new();
        for _ in 0..100 {
            out.push(sim.describe_table(SRC, "orders").await.is_ok());
        }
        assert_eq!(effects(&sim, "fault_rate"), out.iter().filter(|ok| !**ok).count() as u64);
        out
    };
    let first = outcomes(3).await;
    let failed = first.iter().filter(|ok| !**ok).count();
    assert!((8..=35).contains(&failed), "{failed} of 100 at 20%");
    assert_eq!(outcomes(3).await, first, "the same seed, the same faults");
}

#[tokio::test(start_paused = true)]
async fn aws_realism_is_deterministic_under_a_seed() {
    let run = |seed: u64| async move {
        let (sim, _) = world(Realism::aws(), seed);
        let mut log = Vec::new();
        for n in 0..100 {
            let r = sim.start_backup_job(&backup_request(ORDERS, &format!("b{n}"))).await;
            log.push(format!("{r:?}"));
            let tags = BTreeMap::from([(format!("k{n}"), "v".to_owned())]);
            log.push(format!("{:?}", sim.tag_table(SRC, ORDERS, &tags).await));
            log.push(format!("{:?}", sim.list_tags(SRC, ORDERS).await));
            sleep(7 * SEC).await;
        }
        (log, sim.with(|w| serde_json::to_string(&*w).unwrap()))
    };
    let (log, world_json) = run(9).await;
    assert!(log.iter().any(|l| l.contains("Transient")), "some passing faults: {log:?}");
    let effects: serde_json::Value =
        serde_json::from_str::<serde_json::Value>(&world_json).unwrap()["effects"].clone();
    for field in ["fault_rate", "one_job_per_resource", "tag_delay_ms"] {
        assert!(effects[field].as_u64().unwrap_or(0) > 0, "{field}: {effects}");
    }
    assert_eq!(run(9).await, (log.clone(), world_json));
    assert_ne!(run(10).await.0, log, "another seed, another run");
}
