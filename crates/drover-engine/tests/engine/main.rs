//! The engine against the simulated cloud, in virtual time: ordering, limits, faults,
//! failure isolation, and the crash-point sweep (on a state directory and on a bucket).

#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use drover_engine::journal::{CrashPoint, Journal, Record};
use drover_engine::ports::{Millis, Value};
use drover_engine::state::{
    DEFAULT_PITR_TEMPLATE, Header, Limits, Phase, Pitr, PitrNames, PitrTime, RunOptions, StepEvent,
    StepKey, StepOutput,
};
use drover_engine::store::{Bucket, Store};
use drover_engine::{
    Execution, Outcome, Ports, Report, Settings, Silent, SystemClock, execute, run,
};
use drover_plan::{Mode, Plan, StepKind};
use drover_sim::{Faults, JobKind, SimCloud};
use tokio_util::sync::CancellationToken;

mod bucket;
mod faults;
mod hooks;
mod notify;
mod objects;
mod pitr;
mod props;
mod realism;
mod sweep;

const T0: Millis = 1_795_000_000_000;
const RUN_ID: &str = "test-20261124t000000z-0123abcd";

fn plan(yaml: &str) -> Plan {
    let loaded = drover_plan::load("test.yaml", yaml.as_bytes());
    assert!(!loaded.diagnostics.has_errors(), "{:?}", loaded.diagnostics.items());
    loaded.plan.unwrap()
}

/// A plan with `tables` given as (name, depends_on) pairs and the given targets.
fn plan_of(tables: &[(&str, &[&str])], targets: &[&str], extra: &str) -> (Plan, String) {
    let mut y = String::from(
        "version: 1\nname: test\nsource: {region: us-east-1, account_id: \"123456789012\", backup_vault: src}\n\
         iam_role_arn: arn:aws:iam::123456789012:role/r\ntargets:\n",
    );
    for t in targets {
        y.push_str(&format!(
            "  - {{region: {t}, backup_vault: dr-{t}, kms_key_arn: \"arn:aws:kms:{t}:123456789012:key/1111aaaa-22bb-33cc-44dd-555555eeeeee\"}}\n"
        ));
    }
    y.push_str(extra);
    y.push_str("tables:\n");
    for (name, deps) in tables {
        y.push_str(&format!("  - name: {name}\n"));
        if !deps.is_empty() {
            y.push_str(&format!("    depends_on: [{}]\n", deps.join(", ")));
        }
    }
    (plan(&y), y)
}

const DEMO: &str = "version: 1
name: test
source: {region: us-east-1, account_id: \"123456789012\", backup_vault: src}
iam_role_arn: arn:aws:iam::123456789012:role/r
objectives: {rpo: 24h, rto: 24h}
targets:
  - {region: us-west-2, backup_vault: dr, kms_key_arn: \"arn:aws:kms:us-west-2:123456789012:key/1111aaaa-22bb-33cc-44dd-555555eeeeee\"}
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
drill: {write_marker: true}
";

/// How long a journal on the memory bucket rides out a failing store (as the CLI: the
/// lease's time to live).
const RIDE_OUT: std::time::Duration = std::time::Duration::from_secs(60);

struct Harness {
    plan: Plan,
    text: String,
    sim: SimCloud,
    clock: Arc<SystemClock>,
    dir: tempfile::TempDir,
    /// Where runs' state lives: the directory `dir` unless a bucket was asked for.
    store: Store,
    /// The bucket behind `store`, for a bucket harness.
    bucket: Option<Arc<objects::MemStore>>,
    /// The hook runner runs get.
    hooks: Option<Arc<dyn drover_engine::hooks::HookRunner>>,
    /// Runs put their metrics (`--publish-metrics`).
    publish_metrics: bool,
}

impl Harness {
    fn new(plan: Plan, text: &str) -> Harness {
        let clock = Arc::new(SystemClock::starting_at(T0));
        let sim = SimCloud::new("123456789012", 7, clock.clone());
        sim.seed_from_plan(&plan, 20);
        let dir = tempfile::tempdir().unwrap();
        let store = Store::Dir(dir.path().to_owned());
        Harness {
            plan,
            text: text.to_owned(),
            sim,
            clock,
            dir,
            store,
            bucket: None,
            hooks: None,
            publish_metrics: false,
        }
    }

    /// A harness whose runs' state lives in a bucket (in memory).
    fn on_bucket(plan: Plan, text: &str) -> Harness {
        let mut h = Harness::new(plan, text);
        let mem = objects::MemStore::new(h.clock.clone());
        h.store = Store::Bucket(Bucket { objects: mem.clone(), ride_out: RIDE_OUT });
        h.bucket = Some(mem);
        h
    }

    /// The bucket of a bucket harness.
    fn mem(&self) -> &Arc<objects::MemStore> {
        self.bucket.as_ref().expect("a bucket harness")
    }

    fn state_dir(&self) -> &Path {
        self.dir.path()
    }

    fn ports(&self) -> Ports {
        Ports {
            backup: Arc::new(self.sim.clone()),
            tables: Arc::new(self.sim.clone()),
            keys: Arc::new(self.sim.clone()),
            identity: Arc::new(self.sim.clone()),
            events: Arc::new(self.sim.clone()),
            metrics: Arc::new(self.sim.clone()),
            clock: self.clock.clone(),
        }
    }

    fn header(&self, mode: Mode, run_id: &str, limits: Limits) -> Header {
        Header {
            run_id: run_id.to_owned(),
            mode,
            plan_name: self.plan.name.clone(),
            plan_hash: run::plan_hash(self.text.as_bytes()),
            plan_path: "test.yaml".to_owned(),
            plan_text: self.text.clone(),
            drover_version: "test".to_owned(),
            options: RunOptions {
                keep: false,
                limits,
                cloud: serde_json::json!({"kind": "sim"}),
                cut_at: None,
                backup_settle_ms: None,
                poll_interval_ms: None,
                source_read_units: None,
                notify: Default::default(),
                publish_metrics: self.publish_metrics,
                // A recover restores every table as it was ten minutes before the run.
                pitr: (mode == Mode::Recover).then(|| Pitr {
                    at: T0 - 600_000,
                    requested: PitrTime::BeforeMinutes { minutes: 10 },
                    chosen_at: T0,
                    into_source: false,
                    names: PitrNames::Template(DEFAULT_PITR_TEMPLATE.to_owned()),
                }),
            },
        }
    }

    async fn start(
        &self,
        mode: Mode,
        run_id: &str,
        limits: Limits,
        crash: Option<CrashPoint>,
    ) -> Result<Report, drover_engine::EngineError> {
        let (mut journal, state) = self
            .store
            .create(self.header(mode, run_id, limits), self.clock.now_ms())
            .await
            .unwrap();
        journal.crash_at(crash);
        self.exec(journal, state, limits).await
    }

    async fn resume(&self, run_id: &str, limits: Limits) -> Report {
        let mut opened = self.store.open(run_id).await.unwrap();
        run::prepare_resume(&mut opened.journal, &mut opened.state, self.clock.now_ms(), None)
            .unwrap();
        opened.journal.flush().await.unwrap();
        self.exec(opened.journal, opened.state, limits).await.unwrap()
    }

    async fn exec(
        &self,
        journal: Journal,
        state: drover_engine::state::RunState,
        limits: Limits,
    ) -> Result<Report, drover_engine::EngineError> {
        execute(Execution {
            plan: self.plan.clone(),
            journal,
            state,
            ports: self.ports(),
            settings: Settings { limits, scan_segments: 4, ..Settings::default() },
            cancel: CancellationToken::new(),
            observer: Arc::new(Silent),
            hooks: self.hooks.clone(),
        })
        .await
    }
}

trait NowMs {
    fn now_ms(&self) -> Millis;
}

impl NowMs for SystemClock {
    fn now_ms(&self) -> Millis {
        drover_engine::Clock::now(self)
    }
}

fn entries(h: &Harness, run_id: &str) -> Vec<drover_engine::journal::Entry> {
    Journal::read(&run::journal_path(h.state_dir(), run_id)).unwrap().0
}

/// When each step reached each event, from the journal.
fn times(h: &Harness, run_id: &str) -> BTreeMap<(StepKey, &'static str), Millis> {
    let mut out = BTreeMap::new();
    for e in entries(h, run_id) {
        if let Record::Step { step, event } = e.record {
            let name = match event {
                StepEvent::Began => "began",
                StepEvent::Succeeded(_) => "succeeded",
                _ => continue,
            };
            out.entry((step, name)).or_insert(e.at);
        }
    }
    out
}

fn key(table: &str, target: Option<&str>, kind: StepKind) -> StepKey {
    StepKey { table: table.to_owned(), target: target.map(str::to_owned), kind }
}

/// Every restore began after each of its dependencies was validated in the same target.
fn assert_order(h: &Harness, run_id: &str) {
    let t = times(h, run_id);
    for table in &h.plan.tables {
        for region in &table.targets {
            let r = Some(region.as_str());
            let began = t[&(key(&table.name, r, StepKind::Restore), "began")];
            for dep in &table.depends_on {
                let dep = &h.plan.table(*dep).name;
                let validated = t[&(key(dep, r, StepKind::Validate), "succeeded")];
                assert!(
                    began >= validated,
                    "{} restore began before {dep} was validated in {region}",
                    table.name
                );
            }
        }
    }
}

#[tokio::test(start_paused = true)]
async fn drill_restores_in_dependency_order_and_cleans_up() {
    let h = Harness::new(plan(DEMO), DEMO);
    let report = h.start(Mode::Drill, RUN_ID, Limits::default(), None).await.unwrap();
    assert_eq!(report.outcome, Outcome::Succeeded);
    assert_order(&h, RUN_ID);
    // Teardown left no drill table; the source kept its tables and lost the marker.
    assert!(h.sim.table_names("us-west-2").is_empty(), "{:?}", h.sim.table_names("us-west-2"));
    assert_eq!(h.sim.table_names("us-east-1"), ["customers", "invoices", "orders"]);
    assert_eq!(h.sim.item_count("us-east-1", "customers"), Some(21));
    // Each step's job ran exactly once.
    let started = h.sim.with(|w| w.jobs_started.clone());
    assert_eq!(
        started,
        BTreeMap::from([(JobKind::Backup, 3), (JobKind::Copy, 3), (JobKind::Restore, 3)])
    );
    let state = &report.state;
    let validate = state.output(&key("orders", Some("us-west-2"), StepKind::Validate)).unwrap();
    let text = format!("{validate:?}");
    assert!(text.contains("canary") && text.contains("drill marker present"), "{text}");
    let configure = state.output(&key("orders", Some("us-west-2"), StepKind::Configure)).unwrap();
    let text = format!("{configure:?}");
    for s in [
        "point-in-time recovery on",
        "TTL on `expires`",
        "stream NEW_AND_OLD_IMAGES",
        "deletion protection on",
    ] {
        assert!(text.contains(s), "{s} missing from {text}");
    }
}

#[tokio::test(start_paused = true)]
async fn kept_drill_tables_carry_settings_and_ownership_tags() {
    let h = Harness::new(plan(DEMO), DEMO);
    let (mut journal, state) = {
        let mut header = h.header(Mode::Drill, RUN_ID, Limits::default());
        header.options.keep = true;
        run::create(h.state_dir(), header, h.clock.now_ms()).unwrap()
    };
    journal.crash_at(None);
    let report = h.exec(journal, state, Limits::default()).await.unwrap();
    assert_eq!(report.outcome, Outcome::Succeeded);
    let names = h.sim.table_names("us-west-2");
    assert_eq!(
        names,
        ["customers-drill-0123abcd", "invoices-drill-0123abcd", "orders-drill-0123abcd"]
    );
    let info = drover_engine::ports::TableService::describe_table(
        &h.sim,
        "us-west-2",
        "orders-drill-0123abcd",
    )
    .await
    .unwrap()
    .unwrap();
    let tags = drover_engine::ports::TableService::list_tags(&h.sim, "us-west-2", &info.arn)
        .await
        .unwrap();
    assert_eq!(tags.get("drover:run").map(String::as_str), Some(RUN_ID));
    assert_eq!(tags.get("drover:plan").map(String::as_str), Some("test"));
    assert_eq!(tags.get("team").map(String::as_str), Some("t"));
    let pitr = drover_engine::ports::TableService::point_in_time_recovery(
        &h.sim,
        "us-west-2",
        "orders-drill-0123abcd",
    )
    .await
    .unwrap();
    assert!(info.deletion_protection && pitr);
    assert_eq!(info.stream.as_deref(), Some("NEW_AND_OLD_IMAGES"));
    assert_eq!(
        info.kms_key_arn.as_deref(),
        Some("arn:aws:kms:us-west-2:123456789012:key/1111aaaa-22bb-33cc-44dd-555555eeeeee")
    );
    // The restored table has the source's items plus the marker written before the backup
    // (removed from the source once the drill ended).
    assert_eq!(
        h.sim.item_count("us-west-2", "orders-drill-0123abcd"),
        Some(h.sim.item_count("us-east-1", "orders").unwrap() + 1)
    );
}

#[tokio::test(start_paused = true)]
async fn chains_diamonds_and_wide_plans_keep_order_and_limits() {
    let wide: Vec<(String, Vec<String>)> =
        (0..60).map(|i| (format!("wide-{i:02}"), Vec::new())).collect();
    let shapes: Vec<Vec<(String, Vec<String>)>> = vec![
        // chain
        (0..6)
            .map(|i| {
                (
                    format!("chain-{i}"),
                    if i == 0 { vec![] } else { vec![format!("chain-{}", i - 1)] },
                )
            })
            .collect(),
        // diamond
        vec![
            ("top".into(), vec![]),
            ("left".into(), vec!["top".into()]),
            ("right".into(), vec!["top".into()]),
            ("bottom".into(), vec!["left".into(), "right".into()]),
        ],
        wide,
    ];
    for shape in shapes {
        let tables: Vec<(&str, Vec<&str>)> = shape
            .iter()
            .map(|(n, d)| (n.as_str(), d.iter().map(String::as_str).collect()))
            .collect();
        let refs: Vec<(&str, &[&str])> = tables.iter().map(|(n, d)| (*n, d.as_slice())).collect();
        let (p, text) = plan_of(&refs, &["us-west-2", "eu-west-1"], "");
        let h = Harness::new(p, &text);
        let limits = Limits { backups: 7, copies: 5, restores: 4, table_ops: 3 };
        let report = h.start(Mode::Drill, RUN_ID, limits, None).await.unwrap();
        assert_eq!(report.outcome, Outcome::Succeeded, "{:?}", shape[0]);
        assert_order(&h, RUN_ID);
        for (scope, peak) in &report.peak_concurrency {
            let limit = if scope.ends_with("backup jobs") {
                7
            } else if scope.ends_with("copy jobs") {
                5
            } else if scope.ends_with("restores") {
                4
            } else {
                3
            };
            assert!(*peak <= limit, "{scope}: {peak} in flight, limit {limit}");
        }
        if shape.len() == 60 {
            assert_eq!(
                report.peak_concurrency["us-west-2 restores"], 4,
                "the wide plan uses every restore slot"
            );
        }
    }
}

#[tokio::test(start_paused = true)]
async fn throttling_storms_slow_the_run_but_it_finishes() {
    let tables: Vec<String> = (0..20).map(|i| format!("t{i:02}")).collect();
    let refs: Vec<(&str, &[&str])> = tables.iter().map(|n| (n.as_str(), &[][..])).collect();
    let (p, text) = plan_of(&refs, &["us-west-2"], "");
    let h = Harness::new(p, &text);
    h.sim.set_faults(Faults { throttle_rate: 0.4, throttle_next: 50, ..Faults::default() });
    let report = h.start(Mode::Drill, RUN_ID, Limits::default(), None).await.unwrap();
    assert_eq!(report.outcome, Outcome::Succeeded);
    let started = h.sim.with(|w| w.jobs_started.clone());
    assert_eq!(started[&JobKind::Restore], 20, "throttled starts were retried, never duplicated");
    let throttled_calls: u64 = h.sim.with(|w| w.calls.values().sum());
    assert!(throttled_calls > 200, "the storm happened: {throttled_calls} calls");
}

#[tokio::test(start_paused = true)]
async fn a_failed_step_blocks_its_dependents_only_and_resume_retries_it() {
    let (p, text) = plan_of(
        &[
            ("accounts", &[]),
            ("orders", &["accounts"]),
            ("invoices", &["orders"]),
            ("catalog", &[]),
        ],
        &["us-west-2"],
        "",
    );
    let h = Harness::new(p, &text);
    let doomed = "orders-drill-0123abcd".to_owned();
    h.sim.set_faults(Faults { fail_restores_of: [doomed.clone()].into(), ..Faults::default() });
    let report = h.start(Mode::Drill, RUN_ID, Limits::default(), None).await.unwrap();
    let Outcome::Failed { failed, blocked } = &report.outcome else {
        panic!("{:?}", report.outcome)
    };
    assert_eq!(failed, &[key("orders", Some("us-west-2"), StepKind::Restore)]);
    // invoices' restore/configure/validate, and orders' configure/validate.
    assert_eq!(*blocked, 5);
    let state = &report.state;
    assert!(matches!(
        state.phase(&key("catalog", Some("us-west-2"), StepKind::Validate)),
        Phase::Succeeded { .. }
    ));
    assert!(matches!(
        state.phase(&key("invoices", Some("us-west-2"), StepKind::Restore)),
        Phase::Blocked { .. }
    ));
    let Phase::Failed { message } =
        state.phase(&key("orders", Some("us-west-2"), StepKind::Restore))
    else {
        panic!()
    };
    assert!(message.contains("Injected failure"), "{message}");
    // Teardown ran anyway: nothing left behind but what resume needs. The tables are gone,
    // and so are the recovery points, except orders' and invoices' copies (their restores are
    // retried from them; the source points were copied everywhere, so they are not needed).
    assert!(
        h.sim.table_names("us-west-2").is_empty(),
        "{:?} {:#?}",
        h.sim.table_names("us-west-2"),
        state.steps
    );
    let left = points_left(&h).await;
    assert_eq!(
        left,
        [("us-west-2", "invoices".to_owned()), ("us-west-2", "orders".to_owned())],
        "kept for resume"
    );
    let (deleted, kept) = report.state.source_points.clone().unwrap();
    assert_eq!((deleted.len(), kept.len()), (4, 0), "every source point was copied");

    h.sim.set_faults(Faults::default());
    let report = h.resume(RUN_ID, Limits::default()).await;
    assert_eq!(report.outcome, Outcome::Succeeded);
    assert_eq!(h.sim.with(|w| w.jobs_started[&JobKind::Restore]), 5, "4 restores + 1 retry");
    assert!(h.sim.table_names("us-west-2").is_empty());
    assert_eq!(points_left(&h).await, [], "the drill's recovery points are all deleted");
}

/// The recovery points of the plan's tables in the source vault and the targets' vaults:
/// (region, table).
async fn points_left(h: &Harness) -> Vec<(&'static str, String)> {
    use drover_engine::ports::BackupService as _;
    let mut left = Vec::new();
    for (region, vault) in [("us-east-1", h.plan.source.backup_vault.clone())]
        .into_iter()
        .chain(h.plan.targets.iter().map(|t| ("us-west-2", t.backup_vault.clone())))
    {
        for t in &h.plan.tables {
            let points =
                h.sim.list_recovery_points(region, &vault, "us-east-1", &t.name).await.unwrap();
            left.extend(points.iter().map(|_| (region, t.name.clone())));
        }
    }
    left.sort();
    left
}

#[tokio::test(start_paused = true)]
async fn failover_restores_from_copies_in_the_target_vault_without_the_source_region() {
    let h = Harness::new(plan(DEMO), DEMO);
    // A backup run leaves copies in the target vault (a drill deletes its own).
    let report = h.start(Mode::Backup, RUN_ID, Limits::default(), None).await.unwrap();
    assert_eq!(report.outcome, Outcome::Succeeded);
    h.sim.set_region_down("us-east-1", true);
    let calls_before = h.sim.with(|w| w.calls.clone());
    let failover_id = "test-20261124t010000z-89abcdef";
    let report = h.start(Mode::Failover, failover_id, Limits::default(), None).await.unwrap();
    assert_eq!(report.outcome, Outcome::Succeeded, "{:?}", report.state.steps);
    assert_order(&h, failover_id);
    assert_eq!(h.sim.table_names("us-west-2"), ["customers", "invoices", "orders"]);
    // 20 generated items and the canary (a backup run writes no marker).
    assert_eq!(h.sim.item_count("us-west-2", "customers"), Some(21));
    // A second failover would overwrite the tables: refused before anything starts.
    let refused = run::check_failover_names(&h.plan, &h.sim).await.unwrap_err().to_string();
    assert!(
        refused.contains("`customers` in us-west-2") && refused.contains("never overwrites"),
        "{refused}"
    );
    // Every call of the failover went to the target region: the source is down, and a call
    // there would have failed the run.
    let calls_after = h.sim.with(|w| w.calls.clone());
    assert!(calls_after.values().sum::<u64>() > calls_before.values().sum::<u64>());
}

#[tokio::test(start_paused = true)]
async fn failover_refuses_recovery_points_older_than_the_rpo() {
    let text = DEMO.replace("rpo: 24h", "rpo: 1h");
    let h = Harness::new(plan(&text), &text);
    h.start(Mode::Backup, RUN_ID, Limits::default(), None).await.unwrap();
    tokio::time::advance(std::time::Duration::from_secs(3 * 3600)).await;
    let report = h
        .start(Mode::Failover, "test-20261124t010000z-89abcdef", Limits::default(), None)
        .await
        .unwrap();
    let Outcome::Failed { failed, .. } = report.outcome else { panic!() };
    assert_eq!(failed.len(), 3);
    let Phase::Failed { message } = report.state.phase(&failed[0]) else { panic!() };
    assert!(message.contains("beyond the RPO of 1h"), "{message}");
    assert!(h.sim.table_names("us-west-2").is_empty());
}

/// A failover needs copies in the target vault: a backup run leaves them.
async fn prepare(h: &Harness, mode: Mode) {
    if mode == Mode::Failover {
        let r = h
            .start(Mode::Backup, "seed-20261124t000000z-00000000", Limits::default(), None)
            .await
            .unwrap();
        assert_eq!(r.outcome, Outcome::Succeeded);
    }
}

/// Crashes a run after each of its records (and with the next record torn), resumes it, and
/// checks that it ends as an uninterrupted run does, every job started once. On a bucket a
/// torn record is a whole object that landed without its writer learning so.
async fn sweep(mode: Mode, on_bucket: bool) -> usize {
    let harness = || {
        if on_bucket {
            Harness::on_bucket(plan(DEMO), DEMO)
        } else {
            Harness::new(plan(DEMO), DEMO)
        }
    };
    let baseline = harness();
    prepare(&baseline, mode).await;
    let report = baseline.start(mode, RUN_ID, Limits::default(), None).await.unwrap();
    assert_eq!(report.outcome, Outcome::Succeeded);
    let records = report.state.records;
    let expected_tables: Vec<Vec<String>> =
        ["us-east-1", "us-west-2"].iter().map(|r| baseline.sim.table_names(r)).collect();
    let expected_jobs = baseline.sim.with(|w| w.jobs_started.clone());
    let mut runs = 0;
    for after in 1..records {
        for torn in [false, true] {
            let h = harness();
            prepare(&h, mode).await;
            let crashed =
                h.start(mode, RUN_ID, Limits::default(), Some(CrashPoint { after, torn })).await;
            assert!(crashed.is_err(), "{mode:?}: no crash after record {after}");
            if on_bucket {
                // Every record accepted before the crash is in the bucket, and a torn one
                // too (objects are whole): the resumed run replays them.
                let (state, torn_tail) = h.store.read(RUN_ID).await.unwrap();
                assert_eq!(torn_tail, None);
                assert_eq!(
                    state.records,
                    after + u64::from(torn),
                    "{mode:?} crash after {after} (torn {torn})"
                );
            }
            let report = h.resume(RUN_ID, Limits::default()).await;
            assert_eq!(
                report.outcome,
                Outcome::Succeeded,
                "{mode:?} crash after {after} (torn {torn}): {:#?}",
                report.state.steps
            );
            let tables: Vec<Vec<String>> =
                ["us-east-1", "us-west-2"].iter().map(|r| h.sim.table_names(r)).collect();
            assert_eq!(tables, expected_tables, "{mode:?} crash after {after} (torn {torn})");
            let jobs = h.sim.with(|w| w.jobs_started.clone());
            assert_eq!(
                jobs, expected_jobs,
                "{mode:?} crash after {after} (torn {torn}): a job was started twice"
            );
            let restored = h.sim.with(|w| w.tables_restored.clone());
            assert!(
                restored.values().all(|n| *n == 1),
                "{mode:?} crash after {after}: a table was restored twice: {restored:?}"
            );
            runs += 1;
        }
    }
    runs
}

#[tokio::test(start_paused = true)]
async fn crash_point_sweep_of_a_drill() {
    let runs = sweep(Mode::Drill, false).await;
    assert!(runs > 100, "{runs} crash points");
}

#[tokio::test(start_paused = true)]
async fn crash_point_sweep_of_a_drill_on_a_bucket() {
    let runs = sweep(Mode::Drill, true).await;
    assert!(runs > 100, "{runs} crash points");
}

#[tokio::test(start_paused = true)]
async fn crash_point_sweep_of_a_recover() {
    let runs = sweep(Mode::Recover, false).await;
    assert!(runs > 40, "{runs} crash points");
}

#[tokio::test(start_paused = true)]
async fn crash_point_sweep_of_a_recover_on_a_bucket() {
    let runs = sweep(Mode::Recover, true).await;
    assert!(runs > 40, "{runs} crash points");
}

#[tokio::test(start_paused = true)]
async fn crash_point_sweep_of_a_failover() {
    let runs = sweep(Mode::Failover, false).await;
    assert!(runs > 40, "{runs} crash points");
}

#[tokio::test(start_paused = true)]
async fn crash_point_sweep_of_a_failover_on_a_bucket() {
    let runs = sweep(Mode::Failover, true).await;
    assert!(runs > 40, "{runs} crash points");
}

#[tokio::test(start_paused = true)]
async fn a_torn_tail_is_cut_and_a_corrupt_middle_record_is_refused() {
    let h = Harness::new(plan(DEMO), DEMO);
    let crashed = h
        .start(Mode::Drill, RUN_ID, Limits::default(), Some(CrashPoint { after: 10, torn: true }))
        .await;
    assert!(crashed.is_err());
    let path = run::journal_path(h.state_dir(), RUN_ID);
    let (entries, torn) = Journal::read(&path).unwrap();
    assert_eq!(entries.len(), 10);
    assert_eq!(torn.unwrap().line, 11);
    // Corrupt a record in the middle: replay refuses, naming the line.
    let text = std::fs::read_to_string(&path).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    lines[4] = lines[4].replace("\"seq\":5", "\"seq\":5 ");
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    let err = run::open(h.state_dir(), RUN_ID).unwrap_err().to_string();
    assert!(err.contains("line 5") && err.contains("corrupt or was modified"), "{err}");
}

#[tokio::test(start_paused = true)]
async fn a_disabled_target_key_fails_restores_with_the_service_message() {
    let h = Harness::new(plan(DEMO), DEMO);
    let key = "arn:aws:kms:us-west-2:123456789012:key/1111aaaa-22bb-33cc-44dd-555555eeeeee";
    h.sim.set_key_state("us-west-2", key, "Disabled");
    let report = h.start(Mode::Drill, RUN_ID, Limits::default(), None).await.unwrap();
    let Outcome::Failed { failed, blocked } = &report.outcome else {
        panic!("{:?}", report.outcome)
    };
    // customers fails; orders and invoices depend on it and are blocked.
    assert_eq!(failed, &[key_of("customers", StepKind::Restore)]);
    assert_eq!(*blocked, 2 + 3 + 3);
    let Phase::Failed { message } = report.state.phase(&failed[0]) else { panic!() };
    assert!(message.contains("is Disabled and cannot be used"), "{message}");
    assert!(h.sim.table_names("us-west-2").is_empty());
    // Re-enable the key and resume: the run completes.
    h.sim.set_key_state("us-west-2", key, "Enabled");
    assert_eq!(h.resume(RUN_ID, Limits::default()).await.outcome, Outcome::Succeeded);
}

fn key_of(table: &str, kind: StepKind) -> StepKey {
    key(table, Some("us-west-2"), kind)
}

#[tokio::test(start_paused = true)]
async fn latency_slows_a_run_without_changing_its_result() {
    let fast = Harness::new(plan(DEMO), DEMO);
    let fast_report = fast.start(Mode::Drill, RUN_ID, Limits::default(), None).await.unwrap();
    let slow = Harness::new(plan(DEMO), DEMO);
    slow.sim.set_faults(Faults { latency_ms: 2_000, ..Faults::default() });
    let slow_report = slow.start(Mode::Drill, RUN_ID, Limits::default(), None).await.unwrap();
    assert_eq!(slow_report.outcome, Outcome::Succeeded);
    let took = |r: &Report| r.state.last_at - r.state.started_at;
    assert!(
        took(&slow_report) > took(&fast_report) + 60_000,
        "{} vs {}",
        took(&slow_report),
        took(&fast_report)
    );
    assert_eq!(
        fast.sim.with(|w| w.jobs_started.clone()),
        slow.sim.with(|w| w.jobs_started.clone())
    );
}

mod preflight {
    use drover_engine::preflight::{self, Status};

    use super::*;

    fn failing(findings: &[drover_engine::preflight::Finding]) -> Vec<(String, String)> {
        findings
            .iter()
            .filter(|f| f.status == Status::Fail)
            .map(|f| (f.check.to_owned(), f.subject.clone()))
            .collect()
    }

    #[tokio::test(start_paused = true)]
    async fn a_ready_account_passes() {
        let h = Harness::new(plan(DEMO), DEMO);
        let findings = preflight::preflight(&h.plan, Mode::Drill, &h.ports(), "0123abcd").await;
        assert!(failing(&findings).is_empty(), "{findings:#?}");
        assert_eq!(findings.len(), 1 + 3 + 1 + 1 + 1 + 3);
    }

    #[tokio::test(start_paused = true)]
    async fn each_reason_fails_the_drill_preflight() {
        let h = Harness::new(plan(DEMO), DEMO);
        h.sim.set_advanced_backup("us-east-1", false);
        h.sim.with(|w| w.drop_table("us-east-1", "orders"));
        h.sim.with(|w| w.drop_vault("us-west-2", "dr"));
        h.sim.set_key_state(
            "us-west-2",
            "arn:aws:kms:us-west-2:123456789012:key/1111aaaa-22bb-33cc-44dd-555555eeeeee",
            "Disabled",
        );
        h.sim.add_table("us-west-2", "invoices-drill-0123abcd", "pk", None, 0, &[]);
        let findings = preflight::preflight(&h.plan, Mode::Drill, &h.ports(), "0123abcd").await;
        let fails = failing(&findings);
        for (check, subject) in [
            ("advanced-backup", "source region us-east-1"),
            ("source-table", "orders in us-east-1"),
            ("target-vault", "vault dr in us-west-2"),
            (
                "target-key",
                "key arn:aws:kms:us-west-2:123456789012:key/1111aaaa-22bb-33cc-44dd-555555eeeeee in us-west-2",
            ),
            ("drill-name", "invoices-drill-0123abcd in us-west-2"),
        ] {
            assert!(
                fails.contains(&(check.to_owned(), subject.to_owned())),
                "{check} {subject} not failed: {findings:#?}"
            );
        }
        assert_eq!(fails.len(), 5, "{fails:?}");
        assert!(findings.iter().filter(|f| f.status == Status::Fail).all(|f| f.fix.is_some()));
    }

    #[tokio::test(start_paused = true)]
    async fn failover_preflight_and_readiness_fail_on_taken_names_and_stale_points() {
        let text = DEMO.replace("rpo: 24h", "rpo: 1h");
        let h = Harness::new(plan(&text), &text);
        // Without any copy, nothing is ready.
        let fails = failing(&preflight::readiness(&h.plan, &h.ports()).await);
        assert_eq!(fails.len(), 3, "{fails:?}");
        h.sim.seed_copies(&h.plan, 3 * 3600 * 1000);
        let findings = preflight::readiness(&h.plan, &h.ports()).await;
        assert!(
            findings
                .iter()
                .all(|f| f.status == Status::Fail && f.detail.contains("beyond the RPO of 1h")),
            "{findings:#?}"
        );
        h.sim.seed_copies(&h.plan, 10 * 60 * 1000);
        assert!(failing(&preflight::readiness(&h.plan, &h.ports()).await).is_empty());
        h.sim.add_table("us-west-2", "orders", "pk", None, 0, &[]);
        let fails = failing(&preflight::preflight(&h.plan, Mode::Failover, &h.ports(), "x").await);
        assert_eq!(fails, [("target-name".to_owned(), "orders in us-west-2".to_owned())]);
    }
}

mod consistent_cut {
    use super::*;

    const MIN: Millis = 60_000;

    fn harness() -> Harness {
        let h = Harness::new(plan(DEMO), DEMO);
        // Hourly-ish copies at different times per table.
        h.sim.seed_copy(&h.plan, "customers", 50 * MIN);
        h.sim.seed_copy(&h.plan, "customers", 10 * MIN);
        h.sim.seed_copy(&h.plan, "orders", 40 * MIN);
        h.sim.seed_copy(&h.plan, "orders", 30 * MIN);
        h.sim.seed_copy(&h.plan, "invoices", 35 * MIN);
        h.sim.seed_copy(&h.plan, "invoices", 5 * MIN);
        h
    }

    #[tokio::test(start_paused = true)]
    async fn failover_uses_every_tables_newest_point_at_or_before_the_cut() {
        let h = harness();
        let start = h.clock.now_ms();
        let report = h.start(Mode::Failover, RUN_ID, Limits::default(), None).await.unwrap();
        assert_eq!(report.outcome, Outcome::Succeeded);
        let cut = &report.state.cuts["us-west-2"];
        // The oldest of the newest points: orders' 30-minute-old copy.
        assert_eq!(cut.time, start - 30 * MIN);
        let ages: BTreeMap<&str, Millis> =
            cut.points.iter().map(|(t, p)| (t.as_str(), (start - p.created_at) / MIN)).collect();
        assert_eq!(ages, BTreeMap::from([("customers", 50), ("invoices", 35), ("orders", 30)]));
        assert_eq!(cut.skew(), 20 * MIN);
        assert!(cut.late.is_empty() && cut.missing.is_empty());
        // The restore steps used exactly those points.
        let rp = report
            .state
            .output(&key("orders", Some("us-west-2"), StepKind::RecoveryPoint))
            .unwrap();
        let StepOutput::RecoveryPoint { arn, .. } = rp else { panic!() };
        assert_eq!(arn, &cut.points["orders"].arn);
        // The cut is in the journal, once.
        let cuts = entries(&h, RUN_ID)
            .iter()
            .filter(|e| {
                matches!(e.record, Record::Run { event: drover_engine::state::RunEvent::Cut(_) })
            })
            .count();
        assert_eq!(cuts, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn an_explicit_cut_recovers_to_before_a_time_or_fails_the_tables_that_cannot() {
        let h = harness();
        let start = h.clock.now_ms();
        let mut header = h.header(Mode::Failover, RUN_ID, Limits::default());
        header.options.cut_at = Some(start - 38 * MIN);
        let (journal, state) = run::create(h.state_dir(), header, start).unwrap();
        let report = h.exec(journal, state, Limits::default()).await.unwrap();
        let cut = &report.state.cuts["us-west-2"];
        assert!(cut.requested);
        assert_eq!(cut.points.keys().collect::<Vec<_>>(), ["customers", "orders"]);
        assert_eq!((start - cut.points["orders"].created_at) / MIN, 40);
        assert!(cut.missing["invoices"].contains("no recovery point at or before"));
        let Outcome::Failed { failed, .. } = &report.outcome else {
            panic!("{:?}", report.outcome)
        };
        assert_eq!(failed, &[key("invoices", Some("us-west-2"), StepKind::RecoveryPoint)]);
    }
}

mod reports {
    use drover_engine::report::RunReport;

    use super::*;

    /// A drill in virtual time, with one table failing validation: every report format is
    /// deterministic, so it is snapshotted whole.
    async fn report() -> RunReport {
        let text = DEMO.replace("validate: {min_items: 5,", "validate: {min_items: 500,");
        let h = Harness::new(plan(&text), &text);
        let report = h.start(Mode::Drill, RUN_ID, Limits::default(), None).await.unwrap();
        assert!(matches!(report.outcome, Outcome::Failed { .. }));
        RunReport::new(&h.plan, &report.state)
    }

    #[tokio::test(start_paused = true)]
    async fn markdown() {
        insta::assert_snapshot!(report().await.to_markdown());
    }

    #[tokio::test(start_paused = true)]
    async fn junit() {
        insta::assert_snapshot!(report().await.to_junit());
    }

    #[tokio::test(start_paused = true)]
    async fn json() {
        insta::assert_json_snapshot!(report().await);
    }

    #[tokio::test(start_paused = true)]
    async fn html() {
        let html = report().await.to_html();
        // Self-contained: no scripts, no links or sources to fetch (the SVG namespace is a name).
        assert!(
            !["<script", "src=", "href=", "@import", "url("].iter().any(|s| html.contains(s)),
            "{html}"
        );
        insta::assert_snapshot!(html);
    }

    #[tokio::test(start_paused = true)]
    async fn achieved_objectives_and_critical_path() {
        let h = Harness::new(plan(DEMO), DEMO);
        let report = h.start(Mode::Drill, RUN_ID, Limits::default(), None).await.unwrap();
        let r = RunReport::new(&h.plan, &report.state);
        assert_eq!(r.outcome, "succeeded");
        assert_eq!(r.rto_met(), Some(true));
        let rt = r.recovery_time_ms.unwrap();
        assert!(rt > 10 * 60_000, "restores take minutes in the model: {rt}");
        // The chain runs through the dependency chain customers -> orders -> invoices.
        let path = r.critical_path.join(" | ");
        for step in
            ["customers recovery-point", "orders us-west-2 restore", "invoices us-west-2 validate"]
        {
            assert!(path.contains(step), "{step} not on {path}");
        }
        assert!(r.tables.iter().all(|t| t.ok && t.rpo_achieved_ms.is_some()));
    }
}

mod validation {
    use drover_engine::ports::{Item, TableService};

    use super::*;

    fn validate_output(report: &Report, table: &str, target: &str) -> Vec<String> {
        match report.state.output(&key(table, Some(target), StepKind::Validate)) {
            Some(StepOutput::Validate { checks, .. }) => checks.clone(),
            other => panic!("{table} {target}: {other:?}"),
        }
    }

    fn failure(report: &Report, table: &str, target: &str) -> String {
        match report.state.phase(&key(table, Some(target), StepKind::Validate)) {
            Phase::Failed { message } => message.clone(),
            other => panic!("{table} {target}: {other:?}"),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn tiers_are_recorded_and_digests_match_the_source_and_across_targets() {
        let text = DEMO
            .replace("targets:\n  - {region: us-west-2", "targets:\n  - {region: eu-west-1, backup_vault: dr, kms_key_arn: \"arn:aws:kms:eu-west-1:123456789012:key/1111aaaa-22bb-33cc-44dd-555555eeeeee\"}\n  - {region: us-west-2")
            .replace("defaults: {point_in_time_recovery: true,", "defaults: {validate: {digest: true}, point_in_time_recovery: true,");
        let h = Harness::new(plan(&text), &text);
        let report = h.start(Mode::Drill, RUN_ID, Limits::default(), None).await.unwrap();
        assert_eq!(report.outcome, Outcome::Succeeded, "{:#?}", report.state.steps);
        for target in ["us-west-2", "eu-west-1"] {
            let checks = validate_output(&report, "orders", target).join("\n");
            for want in [
                "structure: key schema and 0 index(es) as at backup time",
                "structure: encrypted with the target's KMS key",
                "structure: the plan's settings and tags are in effect",
                "count: 22 items",
                "count: equal to the recovery point's 22 items",
                "content: canary {pk=\"ORDER#1\", sk=\"META\"} present",
                "content: drill marker present",
                "equals the source's, taken just before the backup",
            ] {
                assert!(checks.contains(want), "{target}: `{want}` missing from\n{checks}");
            }
        }
        // The second target to validate compared its digest with the first's.
        let both = format!(
            "{}\n{}",
            validate_output(&report, "orders", "us-west-2").join("\n"),
            validate_output(&report, "orders", "eu-west-1").join("\n")
        );
        assert!(both.contains("digest: equal to "), "{both}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_missing_canary_fails_validation_and_blocks_dependents() {
        let h = Harness::new(plan(DEMO), DEMO);
        let canary = Item::from([("pk".to_owned(), Value::S("CUSTOMER#1".to_owned()))]);
        h.sim.delete_item("us-east-1", "customers", &canary).await.unwrap();
        let report = h.start(Mode::Drill, RUN_ID, Limits::default(), None).await.unwrap();
        let message = failure(&report, "customers", "us-west-2");
        assert!(message.contains("canary item {pk=\"CUSTOMER#1\"} is missing"), "{message}");
        assert!(matches!(
            report.state.phase(&key("orders", Some("us-west-2"), StepKind::Restore)),
            Phase::Blocked { .. }
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn a_table_under_the_wrong_key_fails_validation() {
        let h = Harness::new(plan(DEMO), DEMO);
        let other_key =
            "arn:aws:kms:us-west-2:123456789012:key/99999999-22bb-33cc-44dd-555555eeeeee";
        h.sim.add_key("us-west-2", other_key);
        h.sim.set_faults(Faults {
            restore_with_key: Some(other_key.to_owned()),
            ..Faults::default()
        });
        let report = h.start(Mode::Drill, RUN_ID, Limits::default(), None).await.unwrap();
        let message = failure(&report, "customers", "us-west-2");
        assert!(
            message.contains(&format!("encrypted with {other_key} instead of the target's key")),
            "{message}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_source_that_changes_during_the_backup_is_said_so() {
        let text = DEMO.replace(
            "defaults: {point_in_time_recovery: true,",
            "defaults: {validate: {digest: true}, point_in_time_recovery: true,",
        );
        let h = Harness::new(plan(&text), &text);
        // A writer keeps writing to orders while the drill runs.
        let sim = h.sim.clone();
        let writer = tokio::spawn(async move {
            for i in 0..200 {
                let item = Item::from([
                    ("pk".to_owned(), Value::S(format!("LIVE#{i}"))),
                    ("sk".to_owned(), Value::S("META".to_owned())),
                ]);
                let _ = sim.put_item("us-east-1", "orders", &item).await;
                tokio::time::sleep(std::time::Duration::from_secs(5)).await;
            }
        });
        let report = h.start(Mode::Drill, RUN_ID, Limits::default(), None).await.unwrap();
        writer.abort();
        assert_eq!(report.outcome, Outcome::Succeeded, "{:#?}", report.state.steps);
        let checks = validate_output(&report, "orders", "us-west-2").join("\n");
        assert!(
            checks.contains("the source changed during the backup: compared across targets only"),
            "{checks}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn teardown_keeps_a_table_that_lost_its_ownership_tag() {
    let h = Harness::new(plan(DEMO), DEMO);
    let mut header = h.header(Mode::Drill, RUN_ID, Limits::default());
    header.options.keep = true;
    let (journal, state) = run::create(h.state_dir(), header, h.clock.now_ms()).unwrap();
    assert_eq!(
        h.exec(journal, state, Limits::default()).await.unwrap().outcome,
        Outcome::Succeeded
    );
    h.sim.with(|w| w.untag("us-west-2", "orders-drill-0123abcd", "drover:run"));
    // Someone else's table with a similar name.
    h.sim.add_table("us-west-2", "orders-drill-0123abcd-copy", "pk", None, 3, &[]);
    let mut opened = run::open(h.state_dir(), RUN_ID).unwrap();
    let entry = opened
        .journal
        .append(
            h.clock.now_ms(),
            Record::Run { event: drover_engine::state::RunEvent::TeardownRequested },
        )
        .unwrap();
    opened.state.apply(&entry).unwrap();
    let report = execute(Execution {
        plan: h.plan.clone(),
        journal: opened.journal,
        state: opened.state,
        ports: h.ports(),
        settings: Settings { teardown_only: true, scan_segments: 4, ..Settings::default() },
        cancel: CancellationToken::new(),
        observer: Arc::new(Silent),
        hooks: None,
    })
    .await
    .unwrap();
    assert_eq!(report.outcome, Outcome::Succeeded);
    assert_eq!(
        h.sim.table_names("us-west-2"),
        ["orders-drill-0123abcd", "orders-drill-0123abcd-copy"]
    );
    let Some(StepOutput::Teardown { deleted: false, note, .. }) =
        report.state.output(&key("orders", Some("us-west-2"), StepKind::Teardown))
    else {
        panic!()
    };
    assert!(note.contains("lacks the ownership tag drover:run="), "{note}");
}
