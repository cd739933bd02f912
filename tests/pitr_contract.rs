//! The point-in-time recovery contract (issue 15), on the simulator and on the AWS adapter
//! against the emulator (`tests/emulator/pitr.py`), with the same assertions: the restorable
//! window, a cross-region restore to an instant between two sets of writes, what the restored
//! table says it was restored from, and the errors the engine's restore step tells apart.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use drover_engine::ports::{
    CloudResult, ContinuousBackups, Item, Millis, PointInTimeRestore, ScanOptions, TableDigest,
    TableInfo, TableService, Value,
};
use drover_engine::{ErrorKind, SystemClock};
use serde_json::json;

use crate::common::Emulator;

const SRC: &str = "us-east-1";
const DST: &str = "us-west-2";

/// How a cloud lets time pass: both run on the wall clock (the simulator on `SystemClock`), so
/// a real sleep; a cloud on a paused clock would advance it here instead.
type Sleep = fn(Duration) -> Pin<Box<dyn Future<Output = ()> + Send>>;

fn real_sleep(d: Duration) -> Pin<Box<dyn Future<Output = ()> + Send>> {
    Box::pin(tokio::time::sleep(d))
}

/// The cloud's clock, in epoch milliseconds.
type Now = fn() -> Millis;

fn wall_clock() -> Millis {
    let since = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap();
    Millis::try_from(since.as_millis()).unwrap()
}

struct Cloud {
    tables: Arc<dyn TableService>,
    target_key: String,
    sleep: Sleep,
    now: Now,
    _emulator: Option<Emulator>,
}

/// The simulator, seeded like the emulator below: `orders` (PITR off) and `customers` (never
/// PITR) in the source region, a key in the destination region.
fn simulator() -> Cloud {
    let sim = drover_sim::SimCloud::new("123456789012", 3, Arc::new(SystemClock::new()));
    sim.set_model(drover_sim::DurationModel::instant());
    let key = "arn:aws:kms:us-west-2:123456789012:key/1111aaaa-22bb-33cc-44dd-555555eeeeee";
    sim.add_region(SRC);
    sim.add_region(DST);
    sim.add_key(DST, key);
    sim.add_table(SRC, "orders", "pk", Some("sk"), 30, &[]);
    sim.add_table(SRC, "customers", "pk", None, 5, &[]);
    Cloud {
        tables: Arc::new(sim),
        target_key: key.to_owned(),
        sleep: real_sleep,
        now: wall_clock,
        _emulator: None,
    }
}

/// The AWS adapter against the emulator in realism mode (its `pitr_latest_lag` is 2 s,
/// restored tables linger in CREATING, calls fail now and then).
fn emulator() -> Cloud {
    let emu = Emulator::start(0.2);
    let seeded = emu.fixture(
        "seed",
        &json!({
            "source": SRC, "targets": [DST], "source_vault": "prod-vault",
            "target_vaults": {DST: "dr-vault"},
            "tables": [{"name": "orders", "items": 30, "sort_key": true},
                       {"name": "customers", "items": 5}],
        }),
    );
    let aws = drover_aws::AwsCloud::new(drover_aws::AwsOptions {
        endpoint_url: Some(emu.url()),
        emulator_credentials: true,
        ..drover_aws::AwsOptions::default()
    });
    Cloud {
        tables: Arc::new(aws),
        target_key: seeded["keys"][DST].as_str().unwrap().to_owned(),
        sleep: real_sleep,
        now: wall_clock,
        _emulator: Some(emu),
    }
}

/// Calls `call` again while it fails with a passing error, as the engine's call helper does
/// (realism's faults, and `ContinuousBackupsUnavailableException` on a table just created).
async fn retried<T>(c: &Cloud, call: impl AsyncFn() -> CloudResult<T>) -> CloudResult<T> {
    let start = Instant::now();
    loop {
        match call().await {
            Err(e) if e.kind.is_retryable() && start.elapsed() < Duration::from_secs(60) => {
                (c.sleep)(Duration::from_millis(200)).await;
            }
            done => return done,
        }
    }
}

async fn ready(c: &Cloud, region: &str, name: &str) -> TableInfo {
    let start = Instant::now();
    loop {
        if let Some(t) =
            retried(c, async || c.tables.describe_table(region, name).await).await.unwrap()
            && t.is_ready()
        {
            return t;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "{name} did not become ready");
        (c.sleep)(Duration::from_millis(100)).await;
    }
}

async fn window(c: &Cloud, name: &str) -> ContinuousBackups {
    retried(c, async || c.tables.continuous_backups(SRC, name).await).await.unwrap()
}

async fn digest(c: &Cloud, region: &str, name: &str) -> TableDigest {
    retried(c, async || c.tables.digest_items(region, name, &ScanOptions::unpaced(4)).await)
        .await
        .unwrap()
}

fn item(pk: &str, status: &str) -> Item {
    Item::from([
        ("pk".to_owned(), Value::S(pk.to_owned())),
        ("sk".to_owned(), Value::S("META".to_owned())),
        ("status".to_owned(), Value::S(status.to_owned())),
    ])
}

fn key(pk: &str) -> Item {
    let mut k = item(pk, "");
    k.remove("status");
    k
}

async fn put(c: &Cloud, pk: &str, status: &str) {
    let it = item(pk, status);
    retried(c, async || c.tables.put_item(SRC, "orders", &it).await).await.unwrap();
}

async fn delete(c: &Cloud, pk: &str) {
    let k = key(pk);
    retried(c, async || c.tables.delete_item(SRC, "orders", &k).await).await.unwrap();
}

/// Waits (on the cloud's clock) until `at` is `ms` in the past.
async fn until_past(c: &Cloud, at: Millis, ms: Millis) {
    while (c.now)() < at + ms {
        (c.sleep)(Duration::from_millis(50)).await;
    }
}

async fn contract(c: &Cloud) {
    let source = ready(c, SRC, "orders").await;

    // Off, then on: the window starts at the enabling, and its latest instant never precedes
    // its earliest.
    let off = window(c, "orders").await;
    assert!(!off.enabled && off.earliest.is_none() && off.latest.is_none(), "{off:?}");
    retried(c, async || c.tables.set_point_in_time_recovery(SRC, "orders", true).await)
        .await
        .unwrap();
    let on = window(c, "orders").await;
    assert!(on.enabled, "{on:?}");
    let (earliest, latest) = (on.earliest.unwrap(), on.latest.unwrap());
    assert!(earliest <= latest, "{on:?}");
    assert!(c.tables.point_in_time_recovery(SRC, "orders").await.unwrap());
    assert_eq!(
        c.tables.continuous_backups(SRC, "no-such-table").await.unwrap_err().kind,
        ErrorKind::NotFound
    );

    // T1: two items; the instant `at`, a whole second after them; T2: one deleted, one
    // changed, one added.
    put(c, "PITR#1", "t1").await;
    put(c, "PITR#2", "t1").await;
    let t1 = digest(c, SRC, "orders").await;
    let written = (c.now)();
    until_past(c, written, 1_200).await;
    let at = (c.now)().div_euclid(1000) * 1000;
    assert!(at > written, "{at} is not after the first writes ({written})");
    until_past(c, at, 1_000).await;
    delete(c, "PITR#1").await;
    put(c, "PITR#2", "t2").await;
    put(c, "PITR#3", "t2").await;
    let t2 = digest(c, SRC, "orders").await;
    assert_ne!(t1, t2);
    // The window reaches the instant once the service's lag has passed.
    let start = Instant::now();
    while !window(c, "orders").await.covers(at) {
        assert!(start.elapsed() < Duration::from_secs(30), "the window never reached {at}");
        (c.sleep)(Duration::from_millis(250)).await;
    }

    let restore = |table: &str, name: &str, at: Millis, key: Option<&str>| PointInTimeRestore {
        region: DST.to_owned(),
        source_table_arn: format!(
            "{}{table}",
            source.arn.strip_suffix("orders").unwrap_or(&source.arn)
        ),
        table_name: name.to_owned(),
        restore_time: at,
        kms_key_arn: key.map(str::to_owned),
    };
    let key = Some(c.target_key.as_str());

    // Errors: an instant outside the window (either side), a source without PITR, a
    // cross-region restore without a key, all refused before anything is created.
    let now = window(c, "orders").await;
    for outside in [now.earliest.unwrap() - 60_000, now.latest.unwrap() + 60_000] {
        let req = restore("orders", "orders-outside", outside, key);
        let e = retried(c, async || c.tables.restore_to_point_in_time(&req).await).await;
        assert_eq!(e.unwrap_err().kind, ErrorKind::InvalidState, "{outside}");
    }
    ready(c, SRC, "customers").await;
    let req = restore("customers", "customers-at-contract", at, key);
    let e = retried(c, async || c.tables.restore_to_point_in_time(&req).await).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::InvalidState, "{e}");
    let req = restore("orders", "orders-no-key", at, None);
    let e = retried(c, async || c.tables.restore_to_point_in_time(&req).await).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Fatal, "{e}");
    for name in ["orders-outside", "customers-at-contract", "orders-no-key"] {
        let t = retried(c, async || c.tables.describe_table(DST, name).await).await.unwrap();
        assert_eq!(t, None, "a refused restore created {name}");
    }

    // The restore: in the destination region, under the target key, exactly the T1 items.
    let req = restore("orders", "orders-at-contract", at, key);
    let arn = retried(c, async || c.tables.restore_to_point_in_time(&req).await).await.unwrap();
    assert!(
        arn.starts_with("arn:aws:dynamodb:us-west-2:")
            && arn.ends_with(":table/orders-at-contract"),
        "{arn}"
    );
    let restored = ready(c, DST, "orders-at-contract").await;
    assert_eq!(restored.arn, arn);
    assert_eq!(restored.kms_key_arn.as_deref(), Some(c.target_key.as_str()));
    let from = restored.restored_from.clone().expect("a restored table names its source");
    assert_eq!(from.source_table_arn.as_deref(), Some(source.arn.as_str()), "{from:?}");
    assert_eq!(from.restore_time.div_euclid(1000), at.div_euclid(1000), "{from:?}");
    assert_eq!(restored.partition_key, source.partition_key);
    assert_eq!(restored.sort_key, source.sort_key);
    assert_eq!(digest(c, DST, "orders-at-contract").await, t1);
    // The source table itself was never restored.
    assert_eq!(source.restored_from, None);

    // The name is now taken.
    let e = retried(c, async || c.tables.restore_to_point_in_time(&req).await).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::AlreadyExists, "{e}");
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

#[test]
fn pitr_contract_holds_on_the_simulator() {
    runtime().block_on(contract(&simulator()));
}

#[test]
fn pitr_contract_holds_on_the_aws_adapter_against_the_emulator() {
    runtime().block_on(contract(&emulator()));
}
