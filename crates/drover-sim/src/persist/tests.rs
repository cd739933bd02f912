//! The change log against real engine drills: after every call the files load back to the
//! live world (with realism and faults, through compactions); a compaction cut short.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::sync::Arc;

use drover_engine::ports::Millis;
use drover_engine::state::{
    DEFAULT_PITR_TEMPLATE, Header, Limits, Pitr, PitrNames, PitrTime, RunOptions,
};
use drover_engine::{Execution, Settings, Silent, SystemClock, execute, run};
use drover_plan::{Mode, Plan};
use tokio_util::sync::CancellationToken;

use super::{diff, load, log_path};
use crate::{Faults, JobKind, Realism, SimCloud};

const T0: Millis = 1_795_000_000_000;

const PLAN: &str = "version: 1
name: persist
source: {region: us-east-1, account_id: \"123456789012\", backup_vault: src}
iam_role_arn: arn:aws:iam::123456789012:role/r
objectives: {rpo: 24h, rto: 240h}
targets:
  - {region: us-west-2, backup_vault: dr, kms_key_arn: \"arn:aws:kms:us-west-2:123456789012:key/1111aaaa-22bb-33cc-44dd-555555eeeeee\"}
  - {region: eu-west-1, backup_vault: dr, kms_key_arn: \"arn:aws:kms:eu-west-1:123456789012:key/1111aaaa-22bb-33cc-44dd-555555eeeeee\"}
defaults: {point_in_time_recovery: true, tags: {team: t}}
tables:
  - name: customers
    validate: {min_items: 5, canary_keys: [{pk: \"CUSTOMER#1\"}]}
  - name: orders
    depends_on: [customers]
    stream: NEW_AND_OLD_IMAGES
    ttl_attribute: expires
    deletion_protection: true
    validate: {canary_keys: [{pk: \"ORDER#1\", sk: \"META\"}]}
  - name: invoices
    depends_on: [orders]
  - name: events
drill: {write_marker: true}
";

fn plan() -> Plan {
    let loaded = drover_plan::load("persist.yaml", PLAN.as_bytes());
    assert!(!loaded.diagnostics.has_errors(), "{:?}", loaded.diagnostics.items());
    loaded.plan.unwrap()
}

/// Runs `mode` of the plan against `sim`, its journal in `dir` (the outcome does not matter:
/// faults may fail steps).
async fn run_plan(plan: &Plan, mode: Mode, sim: &SimCloud, dir: &Path) {
    let header = Header {
        run_id: format!("persist-20261124t000000z-{:08x}", mode as u32),
        mode,
        plan_name: plan.name.clone(),
        plan_hash: run::plan_hash(PLAN.as_bytes()),
        plan_path: "persist.yaml".to_owned(),
        plan_text: PLAN.to_owned(),
        drover_version: "test".to_owned(),
        options: RunOptions {
            keep: false,
            limits: Limits::default(),
            cloud: serde_json::json!({"kind": "sim"}),
            cut_at: None,
            backup_settle_ms: None,
            poll_interval_ms: None,
            source_read_units: None,
            notify: Default::default(),
            publish_metrics: false,
            // A recovery restores to ten minutes before the run.
            pitr: (mode == Mode::Recover).then(|| Pitr {
                at: T0 - 600_000,
                requested: PitrTime::BeforeMinutes { minutes: 10 },
                chosen_at: T0,
                into_source: false,
                names: PitrNames::Template(DEFAULT_PITR_TEMPLATE.to_owned()),
            }),
        },
    };
    let (journal, state) = run::create(dir, header, T0).unwrap();
    let ports = sim.ports();
    execute(Execution {
        plan: plan.clone(),
        journal,
        state,
        ports,
        settings: Settings { scan_segments: 4, volatile_journal: true, ..Settings::default() },
        cancel: CancellationToken::new(),
        observer: Arc::new(Silent),
        hooks: None,
    })
    .await
    .unwrap();
}

/// A drill (and, for failover, seeded copies and a failover) with `realism` and `faults`,
/// every call checked against the files; the log compacted from `compact_min` bytes on.
async fn checked(
    realism: Realism,
    faults: Faults,
    mode: Mode,
    compact_min: u64,
) -> serde_json::Value {
    let dir = tempfile::tempdir().unwrap();
    let plan = plan();
    let clock = Arc::new(SystemClock::starting_at(T0));
    let sim = SimCloud::new("123456789012", 3, clock.clone());
    sim.set_realism(realism);
    sim.seed_from_plan(&plan, 50);
    if mode == Mode::Failover {
        sim.seed_copies(&plan, 3_600_000);
    }
    let path = dir.path().join("sim.json");
    let sim = sim.persist_to(&path).unwrap();
    sim.verify_persistence(compact_min);
    sim.set_faults(faults);
    if mode == Mode::Recover {
        // Writes since the instant restored to: in the history, undone by the restores.
        let item = drover_engine::ports::Item::from([
            ("pk".to_owned(), drover_engine::ports::Value::S("LATE#1".to_owned())),
            ("payload".to_owned(), drover_engine::ports::Value::S("after".to_owned())),
        ]);
        drover_engine::ports::TableService::put_item(&sim, "us-east-1", "events", &item)
            .await
            .unwrap();
    }
    run_plan(&plan, mode, &sim, dir.path()).await;
    // The world as the run left it is in the files once the last handle went.
    let live = sim.with(|w| serde_json::to_value(&*w).unwrap());
    drop(sim);
    let disk = serde_json::to_value(load(&path).unwrap()).unwrap();
    assert!(live == disk, "{}", diff(&disk, &live));
    live
}

fn faults() -> Faults {
    Faults {
        throttle_rate: 0.05,
        error_rate: 0.03,
        fail_next: [(JobKind::Restore, 1), (JobKind::Copy, 1)].into(),
        unseen_jobs_ms: 2_000,
        ..Faults::default()
    }
}

#[tokio::test(start_paused = true)]
async fn a_drill_with_aws_realism_and_faults_is_on_disk_after_every_call() {
    let world = checked(Realism::aws(), faults(), Mode::Drill, 0).await;
    let calls: u64 = world["calls"].as_object().unwrap().values().filter_map(|n| n.as_u64()).sum();
    assert!(calls > 300, "{calls} calls");
    assert!(world["jobs_started"]["restore"].as_u64() > Some(4), "{}", world["jobs_started"]);
    assert!(world["effects"].as_object().unwrap().len() > 5, "{}", world["effects"]);
}

#[tokio::test(start_paused = true)]
async fn a_drill_with_the_emulators_realism_is_on_disk_after_every_call() {
    checked(
        Realism::emulator(),
        Faults { throttle_rate: 0.1, ..Faults::default() },
        Mode::Drill,
        0,
    )
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_failover_with_faults_is_on_disk_after_every_call() {
    checked(Realism::aws(), faults(), Mode::Failover, 1 << 20).await;
}

#[tokio::test(start_paused = true)]
async fn a_point_in_time_recovery_is_on_disk_after_every_call() {
    let world = checked(Realism::aws(), Faults::default(), Mode::Recover, 0).await;
    // Every table restored to the instant, in both targets, from its PITR history.
    let restored = world["tables_restored"].as_object().unwrap();
    assert_eq!(restored.len(), 8, "{restored:?}");
    let events = &world["regions"]["us-east-1"]["tables"]["events"];
    assert!(events["pitr"]["enabled_at"].as_i64().unwrap() < T0 - 30 * 86_400_000, "{events}");
    assert_eq!(events["pitr"]["writes"].as_array().unwrap().len(), 1, "{events}");
    let name = format!("events-at-{}", drover_engine::run::compact_time(T0 - 600_000));
    let copy = &world["regions"]["us-west-2"]["tables"][name.as_str()];
    assert_eq!(copy["restored_from"]["restore_time"].as_i64(), Some(T0 - 600_000), "{copy}");
    assert!(copy["items"]["explicit"].as_object().unwrap().is_empty(), "the late write undone");
}

#[tokio::test(start_paused = true)]
async fn realism_off_without_faults_is_on_disk_after_every_call() {
    checked(Realism::off(), Faults::default(), Mode::Drill, 0).await;
}

#[tokio::test(start_paused = true)]
async fn a_compaction_cut_short_between_snapshot_and_log_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let plan = plan();
    let clock = Arc::new(SystemClock::starting_at(T0));
    let path = dir.path().join("sim.json");
    let sim = SimCloud::new("123456789012", 3, clock.clone()).persist_to(&path).unwrap();
    sim.seed_from_plan(&plan, 50);
    // The log as it was before the compaction below, and the world then.
    let old_log = std::fs::read(log_path(&path)).unwrap();
    assert!(old_log.iter().filter(|b| **b == b'\n').count() > 5, "records were written");
    let before = serde_json::to_value(load(&path).unwrap()).unwrap();
    sim.set_realism(Realism::aws());
    {
        let mut state = sim.lock();
        let state = &mut *state;
        state.log.as_mut().unwrap().compact(&state.world).unwrap();
    }
    // Killed after the new snapshot was renamed, before the new log was: the old log names
    // the old snapshot and is ignored.
    std::fs::write(log_path(&path), &old_log).unwrap();
    let after = serde_json::to_value(load(&path).unwrap()).unwrap();
    let live = sim.with(|w| serde_json::to_value(&*w).unwrap());
    assert_ne!(before, after);
    assert!(after == live, "{}", diff(&after, &live));
    // Loading then goes on from the new snapshot with a log of its own.
    drop(sim);
    let again = SimCloud::load(&path, clock).unwrap();
    again.add_region("ap-south-1");
    drop(again);
    let w = load(&path).unwrap();
    assert!(w.regions.contains_key("ap-south-1"));
}
