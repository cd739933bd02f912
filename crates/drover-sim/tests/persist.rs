//! Persistence through the public API: a torn last record, a damaged one, the old whole-world
//! format, read-only calls that write nothing, compaction, the world's time. (Drills checked
//! against the files after every call are unit tests of `persist`.) `persistence_cost_of_a_drill` measures what a drill
//! writes (`DROVER_SIM_TABLES=1000` for the issue's size).

#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use drover_engine::ports::{KeyService as _, Millis, TableService as _};
use drover_engine::state::{Header, Limits, Phase, RunOptions};
use drover_engine::{Execution, Settings, Silent, SystemClock, execute, run};
use drover_plan::{Mode, Plan};
use drover_sim::{Faults, Realism, SimCloud, World};
use tokio_util::sync::CancellationToken;

const T0: Millis = 1_795_000_000_000;

/// A plan of `tables` tables restored in `targets`.
fn plan(tables: usize, targets: &[&str]) -> (Plan, String) {
    let mut y = String::from(
        "version: 1\nname: bench\nsource: {region: us-east-1, account_id: \"123456789012\", backup_vault: src}\n\
         iam_role_arn: arn:aws:iam::123456789012:role/r\nobjectives: {rpo: 24h, rto: 240h}\ntargets:\n",
    );
    for t in targets {
        y.push_str(&format!(
            "  - {{region: {t}, backup_vault: dr-{t}, kms_key_arn: \"arn:aws:kms:{t}:123456789012:key/1111aaaa-22bb-33cc-44dd-555555eeeeee\"}}\n"
        ));
    }
    y.push_str("defaults: {point_in_time_recovery: true, tags: {team: t}}\ndrill: {write_marker: true}\ntables:\n");
    for i in 0..tables {
        y.push_str(&format!(
            "  - name: t{i:05}\n    validate: {{canary_keys: [{{pk: \"C#{i}\"}}]}}\n"
        ));
    }
    let loaded = drover_plan::load("bench.yaml", y.as_bytes());
    assert!(!loaded.diagnostics.has_errors(), "{:?}", loaded.diagnostics.items());
    (loaded.plan.unwrap(), y)
}

/// Runs a drill of `plan` against `sim` (state in `dir`); panics unless every step succeeded.
async fn drill(plan: &Plan, text: &str, sim: &SimCloud, dir: &Path) {
    let header = Header {
        run_id: "bench-20261124t000000z-0123abcd".to_owned(),
        mode: Mode::Drill,
        plan_name: plan.name.clone(),
        plan_hash: run::plan_hash(text.as_bytes()),
        plan_path: "bench.yaml".to_owned(),
        plan_text: text.to_owned(),
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
            pitr: None,
        },
    };
    let (journal, state) = run::create(dir, header, T0).unwrap();
    let ports = sim.ports();
    let report = execute(Execution {
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
    let failed: Vec<_> = report
        .state
        .steps
        .iter()
        .filter(|(_, s)| matches!(s.phase, Phase::Failed { .. }))
        .collect();
    assert!(failed.is_empty(), "{failed:?}");
}

/// Bytes this thread has written so far (`wchar` of /proc/thread-self/io; 0 elsewhere): the
/// drill runs on the test's own thread (a current-thread runtime, every write synchronous), and
/// the other tests of this binary, which run meanwhile on threads of their own, do not count.
fn written() -> u64 {
    std::fs::read_to_string("/proc/thread-self/io")
        .ok()
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("wchar: ")?.trim().parse().ok()))
        .unwrap_or(0)
}

#[tokio::test(start_paused = true)]
async fn persistence_cost_of_a_drill() {
    let tables: usize =
        std::env::var("DROVER_SIM_TABLES").ok().and_then(|v| v.parse().ok()).unwrap_or(100);
    let targets: usize =
        std::env::var("DROVER_SIM_TARGETS").ok().and_then(|v| v.parse().ok()).unwrap_or(1);
    let regions = ["us-west-2", "eu-west-1", "ap-southeast-2"];
    let (plan, text) = plan(tables, &regions[..targets]);
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(SystemClock::starting_at(T0));
    let sim = SimCloud::new("123456789012", 1, clock.clone());
    sim.set_realism(Realism::aws().without_noise());
    sim.seed_from_plan(&plan, 1000);
    // `DROVER_SIM_VOLATILE=1`: the same drill unsaved, for comparison.
    let sim = if std::env::var_os("DROVER_SIM_VOLATILE").is_some() {
        sim
    } else {
        sim.persist_to(&dir.path().join("sim.json")).unwrap()
    };
    let (bytes, wall) = (written(), Instant::now());
    drill(&plan, &text, &sim, dir.path()).await;
    let wall = wall.elapsed();
    let bytes = written() - bytes;
    let calls: u64 = sim.with(|w| w.calls.values().sum());
    println!(
        "{tables} tables, {targets} target(s): {calls} calls, {bytes} bytes written, {:.2} s",
        wall.as_secs_f64()
    );
    // The journal and the change log: a few hundred bytes per call, not the world per call.
    if std::env::var_os("DROVER_SIM_VOLATILE").is_none() && bytes > 0 {
        assert!(bytes < calls * 1_000, "{bytes} bytes for {calls} calls");
    }
}

/// A small world of the plan, saved at `dir/sim.json`.
fn saved(dir: &Path) -> (SimCloud, Arc<SystemClock>, Plan) {
    let (plan, _) = plan(3, &["us-west-2"]);
    let clock = Arc::new(SystemClock::starting_at(T0));
    let sim = SimCloud::new("123456789012", 1, clock.clone());
    sim.set_realism(Realism::aws().without_noise());
    sim.seed_from_plan(&plan, 10);
    (sim.persist_to(&dir.join("sim.json")).unwrap(), clock, plan)
}

fn world(sim: &SimCloud) -> serde_json::Value {
    sim.with(|w| serde_json::to_value(&*w).unwrap())
}

fn loaded(path: &Path, clock: &Arc<SystemClock>) -> serde_json::Value {
    world(&SimCloud::load(path, clock.clone()).unwrap())
}

fn log_len(dir: &Path) -> u64 {
    std::fs::metadata(dir.join("sim.log")).unwrap().len()
}

#[tokio::test(start_paused = true)]
async fn a_torn_last_record_is_skipped_and_cut_off() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sim.json");
    let (sim, clock, _) = saved(dir.path());
    sim.with(|w| w.set_generated_items("us-east-1", "t00001", 99));
    let expected = world(&sim);
    let good = log_len(dir.path());
    std::mem::forget(sim); // killed: no final snapshot
    // A crash in the middle of writing the next record.
    let mut log =
        std::fs::OpenOptions::new().append(true).open(dir.path().join("sim.log")).unwrap();
    std::io::Write::write_all(&mut log, br#"{"time":1795000000000,"put":[[{"table":["us-"#)
        .unwrap();
    drop(log);
    let again = SimCloud::load(&path, clock.clone()).unwrap();
    assert_eq!(world(&again), expected);
    assert_eq!(log_len(dir.path()), good, "the torn line is cut off");
    // Changes go on from there, and load back.
    again.with(|w| w.set_generated_items("us-east-1", "t00002", 7));
    let expected = world(&again);
    std::mem::forget(again);
    assert_eq!(loaded(&path, &clock), expected);
}

#[tokio::test(start_paused = true)]
async fn a_damaged_record_before_the_last_is_an_error_naming_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sim.json");
    let (sim, clock, _) = saved(dir.path());
    sim.with(|w| w.set_generated_items("us-east-1", "t00001", 99));
    sim.with(|w| w.set_generated_items("us-east-1", "t00002", 99));
    std::mem::forget(sim);
    let log = std::fs::read_to_string(dir.path().join("sim.log")).unwrap();
    let mut lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines.len(), 3, "a header and two records");
    lines[1] = "{\"put\": [[{\"table\": \"not a key\"}]]}";
    std::fs::write(dir.path().join("sim.log"), lines.join("\n") + "\n").unwrap();
    let e = SimCloud::load(&path, clock).err().unwrap().to_string();
    assert!(e.contains("sim.log") && e.contains("line 2 is not a change record"), "{e}");
}

#[tokio::test(start_paused = true)]
async fn a_whole_world_file_of_an_older_drover_loads() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sim.json");
    let (plan, _) = plan(3, &["us-west-2"]);
    let clock = Arc::new(SystemClock::starting_at(T0));
    let sim = SimCloud::new("123456789012", 1, clock.clone());
    sim.seed_from_plan(&plan, 10);
    // What older drovers wrote after every change: the world, without its time.
    let mut old = world(&sim);
    old.as_object_mut().unwrap().remove("time");
    std::fs::write(&path, serde_json::to_vec(&old).unwrap()).unwrap();
    let again = SimCloud::load(&path, clock.clone()).unwrap();
    assert_eq!(again.time(), None);
    assert_eq!(again.table_names("us-east-1").len(), 3);
    assert_eq!(again.time(), Some(T0), "its first call sets the time");
    let mut now = world(&again);
    now.as_object_mut().unwrap().remove("time");
    assert_eq!(now, old);
    // It goes on with a change log.
    again.add_region("eu-west-1");
    let expected = world(&again);
    std::mem::forget(again);
    assert!(dir.path().join("sim.log").exists());
    assert_eq!(loaded(&path, &clock), expected);
}

#[tokio::test(start_paused = true)]
async fn read_only_calls_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (sim, clock, _) = saved(dir.path());
    let key = "arn:aws:kms:us-west-2:123456789012:key/1111aaaa-22bb-33cc-44dd-555555eeeeee";
    let before = log_len(dir.path());
    for _ in 0..1_000 {
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        sim.describe_table("us-east-1", "t00001").await.unwrap().unwrap();
        sim.list_tables("us-east-1").await.unwrap();
        sim.point_in_time_recovery("us-east-1", "t00002").await.unwrap();
        sim.get_item("us-east-1", "t00000", &BTreeMap::new()).await.ok();
        sim.describe_key("us-west-2", key).await.unwrap();
    }
    assert_eq!(log_len(dir.path()), before, "5,000 read-only calls wrote nothing");
    // Their counts ride along with the next change.
    sim.set_faults(Faults { throttle_rate: 0.5, ..Faults::default() });
    let expected = world(&sim);
    assert_eq!(expected["calls"]["DescribeTable"], 1_000);
    std::mem::forget(sim);
    let path = dir.path().join("sim.json");
    let again = SimCloud::load(&path, clock.clone()).unwrap();
    assert_eq!(again.time(), Some(T0 + 1_000_000), "the time of the last call is saved");
    assert_eq!(world(&again), expected);
}

#[tokio::test(start_paused = true)]
async fn the_log_is_compacted_and_the_last_handle_writes_the_world_whole() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sim.json");
    let (sim, clock, _) = saved(dir.path());
    let mut most = 0;
    for i in 0..20_000 {
        sim.with(|w: &mut World| w.set_generated_items("us-east-1", "t00001", i));
        most = most.max(log_len(dir.path()));
    }
    let snapshot = std::fs::metadata(&path).unwrap().len();
    assert!(most < (4 * snapshot).max(1 << 20) + 4_096, "the log grew to {most} bytes");
    assert!(most > 1 << 19, "20,000 changes were written ({most} bytes at most)");
    let expected = world(&sim);
    drop(sim);
    // The last handle went: `sim.json` alone is the world, the log follows it empty.
    assert_eq!(std::fs::read_to_string(dir.path().join("sim.log")).unwrap().lines().count(), 1);
    let whole: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(whole, expected);
    assert_eq!(loaded(&path, &clock), expected);
}
