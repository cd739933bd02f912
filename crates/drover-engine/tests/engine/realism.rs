//! drover against a simulator that behaves like AWS ([`Realism`]): asynchronous tags, PITR
//! unavailable on new tables, UPDATING / ENABLING / DELETING states, restored tables that
//! settle after their job, backups that miss the last minute's writes, jobs unseen at first, the
//! restore quota, one backup or copy job per table, copy jobs queued, passing server faults.
//!
//! A drill and a failover with every behaviour on succeed with everything in effect; then one
//! test per behaviour, each run twice where an engine setting is what copes: as drover runs, it
//! succeeds; with that setting turned off (`PollPolicy::settle`, `Settings::backup_settle`,
//! retries, ...) the behaviour makes it fail, which shows the test exercises what it names.

use std::time::Duration;

use drover_engine::ports::{BackupService, TableService};
use drover_engine::{PollPolicy, RetryPolicy};
use drover_sim::Realism;

use super::*;

const TARGETS: [&str; 2] = ["us-west-2", "eu-west-1"];
const CHAIN: [&str; 3] = ["customers", "orders", "invoices"];

/// Every behaviour off (the UPDATING and DELETING states too): each focused test turns on the
/// one it is about.
fn none() -> Realism {
    Realism { update_ms: 0, delete_ms: 0, ..Realism::off() }
}

/// The demo plan with a second target and digests: orders has a stream, TTL, deletion
/// protection, every table PITR and a tag; a marker is written before each backup.
fn realistic_text() -> String {
    DEMO.replace(
        "targets:\n  - {region: us-west-2",
        "targets:\n  - {region: eu-west-1, backup_vault: dr, kms_key_arn: \"arn:aws:kms:eu-west-1:123456789012:key/1111aaaa-22bb-33cc-44dd-555555eeeeee\"}\n  - {region: us-west-2",
    )
    .replace(
        "defaults: {point_in_time_recovery: true,",
        "defaults: {validate: {digest: true}, point_in_time_recovery: true,",
    )
}

/// A harness for `text` whose simulator models `realism`; orders has a global secondary
/// index (restored tables build it while they settle).
fn harness(text: &str, realism: Realism) -> Harness {
    let h = Harness::new(plan(text), text);
    h.sim.with(|w| w.add_global_index("us-east-1", "orders", "by-customer"));
    h.sim.set_realism(realism);
    h
}

fn settings() -> Settings {
    Settings { scan_segments: 4, ..Settings::default() }
}

/// Starts a run with `settings` (and `keep` for drills).
async fn start(h: &Harness, mode: Mode, keep: bool, limits: Limits, settings: Settings) -> Report {
    let mut header = h.header(mode, RUN_ID, limits);
    header.options.keep = keep;
    let (journal, state) = run::create(h.state_dir(), header, h.clock.now_ms()).unwrap();
    exec_with(h, journal, state, Settings { limits, ..settings }).await
}

/// Resumes the run with `settings`.
async fn resume(h: &Harness, settings: Settings) -> Report {
    let mut opened = run::open(h.state_dir(), RUN_ID).unwrap();
    run::prepare_resume(&mut opened.journal, &mut opened.state, h.clock.now_ms(), None).unwrap();
    exec_with(h, opened.journal, opened.state, settings).await
}

async fn exec_with(
    h: &Harness,
    journal: Journal,
    state: drover_engine::state::RunState,
    settings: Settings,
) -> Report {
    execute(Execution {
        plan: h.plan.clone(),
        journal,
        state,
        ports: h.ports(),
        settings,
        cancel: CancellationToken::new(),
        observer: Arc::new(Silent),
        hooks: None,
    })
    .await
    .unwrap()
}

fn effects(h: &Harness, field: &str) -> u64 {
    h.sim.with(|w| w.effects.get(field).copied().unwrap_or(0))
}

fn checks(report: &Report, table: &str, target: &str) -> String {
    match report.state.output(&key(table, Some(target), StepKind::Validate)) {
        Some(StepOutput::Validate { checks, .. }) => checks.join("\n"),
        other => panic!("{table} {target}: {other:?}"),
    }
}

/// The message of the first failed step, and the step.
fn first_failure(report: &Report) -> (StepKey, String) {
    let Outcome::Failed { failed, .. } = &report.outcome else {
        panic!("expected a failure: {:?}", report.outcome)
    };
    let Phase::Failed { message } = report.state.phase(&failed[0]) else { panic!() };
    (failed[0].clone(), message.clone())
}

fn assert_succeeded(report: &Report) {
    assert_eq!(report.outcome, Outcome::Succeeded, "{:#?}", report.state.steps);
}

/// Waits (in virtual time) until `ready` holds, then changes the world: something happening
/// while the run is in flight.
fn when(
    sim: &SimCloud,
    ready: impl Fn(&drover_sim::World) -> bool + Send + 'static,
    then: impl FnOnce(&mut drover_sim::World) + Send + 'static,
) -> tokio::task::JoinHandle<bool> {
    let sim = sim.clone();
    tokio::spawn(async move {
        for _ in 0..86_400 {
            if sim.with(|w| ready(w)) {
                sim.with(then);
                return true;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        false
    })
}

/// The checks a validation of `table` in `target` records when everything the plan asks is in
/// effect and the backup held the marker and the data digested just before it.
fn assert_everything_in_effect(report: &Report, table: &str, target: &str) {
    let checks = checks(report, table, target);
    for want in [
        "is ACTIVE, no restore in progress, every index ACTIVE",
        "structure: key schema and",
        "structure: encrypted with the target's KMS key",
        "structure: the plan's settings and tags are in effect",
        "count: equal to the recovery point's",
        "content: drill marker present",
        "equals the source's, taken just before the backup",
    ] {
        assert!(checks.contains(want), "{table} {target}: `{want}` missing from\n{checks}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_drill_with_every_aws_behaviour_succeeds_with_everything_in_effect() {
    let text = realistic_text();
    let h = harness(&text, Realism::aws());
    let report = start(&h, Mode::Drill, false, Limits::default(), settings()).await;
    assert_succeeded(&report);
    assert_order(&h, RUN_ID);
    for table in CHAIN {
        for target in TARGETS {
            assert_everything_in_effect(&report, table, target);
        }
    }
    let both = format!(
        "{}\n{}",
        checks(&report, "orders", TARGETS[0]),
        checks(&report, "orders", TARGETS[1])
    );
    assert!(both.contains("digest: equal to "), "{both}");
    let configure = format!(
        "{:?}",
        report.state.output(&key("orders", Some("us-west-2"), StepKind::Configure)).unwrap()
    );
    for s in [
        "point-in-time recovery on",
        "TTL on `expires`",
        "stream NEW_AND_OLD_IMAGES",
        "deletion protection on",
    ] {
        assert!(configure.contains(s), "{s} missing from {configure}");
    }
    // Nothing left behind: no drill table (teardown waited for each to be gone), no marker in
    // the source, every job started once.
    for target in TARGETS {
        assert!(h.sim.table_names(target).is_empty(), "{target}: {:?}", h.sim.table_names(target));
    }
    assert_eq!(h.sim.item_count("us-east-1", "customers"), Some(21));
    assert_eq!(
        h.sim.with(|w| w.jobs_started.clone()),
        BTreeMap::from([(JobKind::Backup, 3), (JobKind::Copy, 6), (JobKind::Restore, 6)])
    );
    // The drill's recovery points, source and copies, are being deleted, and then gone.
    h.sim.with(|w| w.realism.fault_rate = 0.0);
    tokio::time::sleep(Duration::from_millis(Realism::aws().point_delete_ms)).await;
    for (region, vault) in [("us-east-1", "src"), ("us-west-2", "dr"), ("eu-west-1", "dr")] {
        for table in CHAIN {
            let points =
                h.sim.list_recovery_points(region, vault, "us-east-1", table).await.unwrap();
            assert!(points.is_empty(), "{region} {vault} {table}: {points:?}");
        }
    }
    // The behaviours did happen (the ones drover avoids, such as a second TTL change, did not).
    for field in [
        "tag_delay_ms",
        "pitr_unavailable_ms",
        "update_ms",
        "ttl_enabling_ms",
        "delete_ms",
        "restore_settle_ms",
        "unseen_jobs_ms",
        "one_job_per_resource",
        "copy_queue_ms",
        "fault_rate",
    ] {
        assert!(
            effects(&h, field) > 0,
            "{field} never happened: {:?}",
            h.sim.with(|w| w.effects.clone())
        );
    }
    for avoided in ["ttl_change_window_ms", "backup_lag_ms", "inactive_tables_not_found"] {
        assert_eq!(effects(&h, avoided), 0, "{avoided}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_failover_with_every_aws_behaviour_succeeds_with_everything_in_effect() {
    let text = realistic_text();
    let h = harness(&text, Realism::aws());
    h.sim.seed_copies(&h.plan, 30 * 60_000);
    let report = start(&h, Mode::Failover, false, Limits::default(), settings()).await;
    assert_succeeded(&report);
    assert_order(&h, RUN_ID);
    for table in CHAIN {
        for target in TARGETS {
            let checks = checks(&report, table, target);
            for want in [
                "is ACTIVE, no restore in progress, every index ACTIVE",
                "structure: encrypted with the target's KMS key",
                "structure: the plan's settings and tags are in effect",
            ] {
                assert!(checks.contains(want), "{table} {target}: `{want}` missing from\n{checks}");
            }
        }
        // Both targets restored copies of one backup: their digests were compared.
        let both = format!(
            "{}\n{}",
            checks(&report, table, TARGETS[0]),
            checks(&report, table, TARGETS[1])
        );
        assert!(both.contains("digest: equal to "), "{both}");
    }
    // The restored tables, each once, and nothing else; every setting and tag in effect now.
    for target in TARGETS {
        assert_eq!(h.sim.table_names(target), ["customers", "invoices", "orders"]);
        let info = h.sim.describe_table(target, "orders").await.unwrap().unwrap();
        assert!(info.is_ready() && info.deletion_protection, "{info:?}");
        assert_eq!(info.stream.as_deref(), Some("NEW_AND_OLD_IMAGES"));
        assert!(h.sim.point_in_time_recovery(target, "orders").await.unwrap());
        let tags = h.sim.list_tags(target, &info.arn).await.unwrap();
        assert_eq!(tags.get("drover:run").map(String::as_str), Some(RUN_ID));
        assert_eq!(tags.get("team").map(String::as_str), Some("t"));
    }
    assert_eq!(h.sim.with(|w| w.jobs_started.clone()), BTreeMap::from([(JobKind::Restore, 6)]));
    assert!(h.sim.with(|w| w.tables_restored.values().all(|n| *n == 1)));
    for field in
        ["tag_delay_ms", "pitr_unavailable_ms", "update_ms", "ttl_enabling_ms", "restore_settle_ms"]
    {
        assert!(effects(&h, field) > 0, "{field} never happened");
    }
}

#[tokio::test(start_paused = true)]
async fn the_same_seed_gives_the_same_journal_and_world_under_aws_realism() {
    let text = realistic_text();
    let once = async || {
        let h = harness(&text, Realism::aws());
        let report = start(&h, Mode::Drill, false, Limits::default(), settings()).await;
        assert_succeeded(&report);
        let journal = std::fs::read(run::journal_path(h.state_dir(), RUN_ID)).unwrap();
        (journal, h.sim.with(|w| serde_json::to_string(&*w).unwrap()))
    };
    let first = once().await;
    assert!(first == once().await, "two runs of one seed differ");
}

/// Tags show seconds after TagResource: drover reads them again (for `PollPolicy::settle`)
/// until they are in effect. Without that, configure finds them missing.
#[tokio::test(start_paused = true)]
async fn tags_shown_late_are_read_again_until_they_are_in_effect() {
    let realism = Realism { tag_delay_ms: 5_000, ..none() };
    let h = harness(DEMO, realism.clone());
    assert_succeeded(&start(&h, Mode::Drill, false, Limits::default(), settings()).await);
    assert!(effects(&h, "tag_delay_ms") > 0);

    let h = harness(DEMO, realism);
    let impatient = Settings {
        poll: PollPolicy { settle: Duration::ZERO, ..PollPolicy::default() },
        ..settings()
    };
    let (step, message) =
        first_failure(&start(&h, Mode::Drill, false, Limits::default(), impatient).await);
    assert_eq!(step.kind, StepKind::Configure);
    assert!(
        message.contains("not in effect 0s after configuring") && message.contains("tag `"),
        "{message}"
    );
}

/// UpdateContinuousBackups on a table that just became ACTIVE answers
/// ContinuousBackupsUnavailableException, a passing fault: drover retries it. Without
/// retries (a budget shorter than the minute), configure fails.
#[tokio::test(start_paused = true)]
async fn pitr_unavailable_on_a_new_table_is_retried_until_it_is_available() {
    let realism = Realism { pitr_unavailable_ms: 60_000, ..none() };
    let h = harness(DEMO, realism.clone());
    assert_succeeded(&start(&h, Mode::Drill, false, Limits::default(), settings()).await);
    assert!(effects(&h, "pitr_unavailable_ms") > 0);

    let h = harness(DEMO, realism);
    let retry = RetryPolicy { give_up_after: Duration::from_secs(10), ..RetryPolicy::default() };
    let (step, message) = first_failure(
        &start(&h, Mode::Drill, false, Limits::default(), Settings { retry, ..settings() }).await,
    );
    assert_eq!(step.kind, StepKind::Configure);
    assert!(
        message.contains("ContinuousBackupsUnavailableException")
            && message.contains("still failing after"),
        "{message}"
    );
}

/// UpdateTable leaves a table UPDATING and refuses another update meanwhile: drover waits for
/// the table between the stream, deletion protection and (in teardown) the delete. Given a
/// single poll of the table, it gives up on the UPDATING table.
#[tokio::test(start_paused = true)]
async fn every_update_waits_out_updating() {
    let realism = Realism { update_ms: 120_000, ..none() };
    let h = harness(DEMO, realism.clone());
    let report = start(&h, Mode::Drill, false, Limits::default(), settings()).await;
    assert_succeeded(&report);
    let configure = format!(
        "{:?}",
        report.state.output(&key("orders", Some("us-west-2"), StepKind::Configure)).unwrap()
    );
    assert!(
        configure.contains("stream NEW_AND_OLD_IMAGES")
            && configure.contains("deletion protection on")
    );
    assert!(h.sim.table_names("us-west-2").is_empty(), "teardown lifted protection, then deleted");
    assert!(effects(&h, "update_ms") > 0);
    assert_eq!(h.sim.with(|w| w.calls["UpdateTable"]), 3, "stream, protection on, protection off");

    let h = harness(DEMO, realism);
    let once =
        Settings { poll: PollPolicy { table_polls: 1, ..PollPolicy::default() }, ..settings() };
    let (step, message) =
        first_failure(&start(&h, Mode::Drill, false, Limits::default(), once).await);
    assert_eq!(step, key("orders", Some("us-west-2"), StepKind::Configure));
    assert!(message.contains("is still UPDATING"), "{message}");
}

/// A table whose stream has another view (someone changed it while it was being restored):
/// DynamoDB refuses to enable a stream over an enabled one, so drover disables it, waits out
/// UPDATING, then enables the plan's view.
#[tokio::test(start_paused = true)]
async fn a_stream_of_another_view_is_disabled_first() {
    let realism = Realism { restore_settle_ms: 60_000, ..Realism::off() };
    let h = harness(DEMO, realism);
    let changed = when(
        &h.sim,
        |w| w.table_settled_at("us-west-2", "orders-drill-0123abcd").is_some(),
        |w| w.set_stream_view("us-west-2", "orders-drill-0123abcd", Some("KEYS_ONLY")),
    );
    let report = start(&h, Mode::Drill, true, Limits::default(), settings()).await;
    assert!(changed.await.unwrap(), "the stream was changed while the table settled");
    assert_succeeded(&report);
    let info = h.sim.describe_table("us-west-2", "orders-drill-0123abcd").await.unwrap().unwrap();
    assert_eq!(info.stream.as_deref(), Some("NEW_AND_OLD_IMAGES"));
    // Disable, enable, deletion protection.
    assert_eq!(h.sim.with(|w| w.calls["UpdateTable"]), 3);
}

/// TTL is ENABLING for a while after UpdateTimeToLive, and a second change within the hour is
/// refused: drover counts ENABLING as enabled and changes TTL only when it is not already on
/// the plan's attribute, so a resumed configure does not change it again.
#[tokio::test(start_paused = true)]
async fn ttl_enabling_counts_as_enabled_and_ttl_is_never_changed_twice() {
    let realism =
        Realism { ttl_enabling_ms: 10 * 60_000, ttl_change_window_ms: 3_600_000, ..none() };
    let h = harness(DEMO, realism.clone());
    assert_succeeded(&start(&h, Mode::Drill, false, Limits::default(), settings()).await);
    assert!(effects(&h, "ttl_enabling_ms") > 0, "validation read TTL while ENABLING");

    // Configure fails after enabling TTL (UpdateTable throttled past a short retry budget);
    // resuming within the hour leaves TTL alone.
    let h = harness(DEMO, realism);
    h.sim.set_faults(Faults { throttle_ops: ["UpdateTable".into()].into(), ..Faults::default() });
    let retry = RetryPolicy { give_up_after: Duration::from_secs(30), ..RetryPolicy::default() };
    let short = Settings { retry, ..settings() };
    let (step, message) =
        first_failure(&start(&h, Mode::Drill, true, Limits::default(), short.clone()).await);
    assert_eq!(step, key("orders", Some("us-west-2"), StepKind::Configure));
    assert!(message.contains("UpdateTable failed (throttled)"), "{message}");
    h.sim.set_faults(Faults::default());
    assert_succeeded(&resume(&h, short).await);
    assert_eq!(h.sim.with(|w| w.calls["UpdateTimeToLive"]), 1);
    assert_eq!(effects(&h, "ttl_change_window_ms"), 0);
}

/// A failover restores into a name whose old table is still being deleted: drover waits until
/// the name is free (a restore finishing into a DELETING table fails "Table already exists").
/// Polling the name only once, it gives up instead.
#[tokio::test(start_paused = true)]
async fn a_restore_into_a_name_being_deleted_waits_until_it_is_gone() {
    let realism = Realism { delete_ms: 15 * 60_000, ..none() };
    let setup = |realism: Realism| async move {
        let h = harness(DEMO, realism);
        h.sim.seed_copies(&h.plan, 30 * 60_000);
        h.sim.add_table("us-west-2", "customers", "pk", None, 3, &[]);
        h.sim.delete_table("us-west-2", "customers").await.unwrap();
        h
    };
    let h = setup(realism.clone()).await;
    let report = start(&h, Mode::Failover, false, Limits::default(), settings()).await;
    assert_succeeded(&report);
    assert_eq!(h.sim.item_count("us-west-2", "customers"), Some(21), "the restored table");
    assert_eq!(h.sim.with(|w| w.jobs_started[&JobKind::Restore]), 3, "no restore failed");
    assert!(effects(&h, "delete_ms") > 0);

    let h = setup(realism).await;
    let once =
        Settings { poll: PollPolicy { table_polls: 1, ..PollPolicy::default() }, ..settings() };
    let (step, message) =
        first_failure(&start(&h, Mode::Failover, false, Limits::default(), once).await);
    assert_eq!(step, key("customers", Some("us-west-2"), StepKind::Restore));
    assert!(message.contains("was not deleted in time"), "{message}");
}

/// Teardown after a process that deleted a drill table and stopped before journaling it: the
/// table is DELETING, has no tags to read (a table that is not ACTIVE is not found), and
/// teardown waits until it is gone.
#[tokio::test(start_paused = true)]
async fn teardown_waits_out_a_table_already_being_deleted() {
    let realism = Realism { delete_ms: 15 * 60_000, inactive_tables_not_found: true, ..none() };
    let h = harness(DEMO, realism);
    assert_succeeded(&start(&h, Mode::Drill, true, Limits::default(), settings()).await);
    h.sim.delete_table("us-west-2", "customers-drill-0123abcd").await.unwrap();
    let mut opened = run::open(h.state_dir(), RUN_ID).unwrap();
    let entry = opened
        .journal
        .append(
            h.clock.now_ms(),
            Record::Run { event: drover_engine::state::RunEvent::TeardownRequested },
        )
        .unwrap();
    opened.state.apply(&entry).unwrap();
    let teardown = Settings { teardown_only: true, ..settings() };
    let report = exec_with(&h, opened.journal, opened.state, teardown).await;
    assert_succeeded(&report);
    let Some(StepOutput::Teardown { deleted: true, note, .. }) =
        report.state.output(&key("customers", Some("us-west-2"), StepKind::Teardown))
    else {
        panic!("{:#?}", report.state.steps)
    };
    assert_eq!(note, "deleted `customers-drill-0123abcd`");
    assert!(h.sim.table_names("us-west-2").is_empty());
    assert_eq!(effects(&h, "inactive_tables_not_found"), 0, "no tags read while DELETING");
}

/// A restored table is CREATING after its job completes, then ACTIVE with its restore in
/// progress and its indexes CREATING: drover's restore step ends (and the table is tagged and
/// configured) only once it is ready. Polling it only once, drover gives up.
#[tokio::test(start_paused = true)]
async fn restored_tables_are_used_only_once_they_have_settled() {
    let realism = Realism { restore_settle_ms: 120_000, inactive_tables_not_found: true, ..none() };
    let h = harness(DEMO, realism.clone());
    let report = start(&h, Mode::Drill, true, Limits::default(), settings()).await;
    assert_succeeded(&report);
    let t = times(&h, RUN_ID);
    for table in CHAIN {
        let name = format!("{table}-drill-0123abcd");
        let settled = h.sim.with(|w| w.table_settled_at("us-west-2", &name)).unwrap();
        let restored = t[&(key(table, Some("us-west-2"), StepKind::Restore), "succeeded")];
        assert!(
            restored >= settled,
            "{table}: restore step ended {} s before the table settled",
            (settled - restored) / 1000
        );
    }
    let orders = checks(&report, "orders", "us-west-2");
    assert!(orders.contains("key schema and 1 index(es) as at backup time"), "{orders}");
    assert!(effects(&h, "restore_settle_ms") > 0);
    assert_eq!(effects(&h, "inactive_tables_not_found"), 0, "nothing touched a CREATING table");

    let h = harness(DEMO, realism);
    let once =
        Settings { poll: PollPolicy { table_polls: 1, ..PollPolicy::default() }, ..settings() };
    let (step, message) =
        first_failure(&start(&h, Mode::Drill, false, Limits::default(), once).await);
    assert_eq!(step.kind, StepKind::Restore);
    assert!(message.contains("is still CREATING"), "{message}");
}

/// A backup holds what was committed a minute before it was requested, not later writes:
/// drover starts it `Settings::backup_settle` after writing the marker and taking the digest,
/// so both describe the backup. Started at once, the backup misses the marker.
#[tokio::test(start_paused = true)]
async fn the_backup_starts_a_minute_after_the_marker_and_the_digest() {
    let text = DEMO.replace(
        "defaults: {point_in_time_recovery: true,",
        "defaults: {validate: {digest: true}, point_in_time_recovery: true,",
    );
    let realism = Realism { backup_lag_ms: 60_000, ..none() };
    let h = harness(&text, realism.clone());
    let report = start(&h, Mode::Drill, false, Limits::default(), settings()).await;
    assert_succeeded(&report);
    for table in CHAIN {
        let checks = checks(&report, table, "us-west-2");
        for want in [
            "content: drill marker present",
            "count: equal to the recovery point's",
            "equals the source's, taken just before the backup",
        ] {
            assert!(checks.contains(want), "{table}: `{want}` missing from\n{checks}");
        }
    }
    assert_eq!(effects(&h, "backup_lag_ms"), 0, "no backup missed a write");

    let h = harness(&text, realism);
    let hasty = Settings { backup_settle: Duration::ZERO, ..settings() };
    let (step, message) =
        first_failure(&start(&h, Mode::Drill, false, Limits::default(), hasty).await);
    assert_eq!(step.kind, StepKind::Validate);
    for want in [
        "the drill marker written before the backup is missing",
        "but the recovery point holds",
        "differs from the source's",
    ] {
        assert!(message.contains(want), "`{want}` missing from {message}");
    }
    assert_eq!(effects(&h, "backup_lag_ms"), 3, "each backup missed its marker");
}

/// The settle counts from when the marker is committed: a marker write throttled for half a
/// minute lands late, and the backup still waits a whole `backup_settle` after it (counted from
/// before the write, the backup would miss the marker).
#[tokio::test(start_paused = true)]
async fn the_settle_counts_from_the_committed_marker_write() {
    let realism = Realism { backup_lag_ms: 60_000, ..none() };
    let h = harness(DEMO, realism);
    h.sim.set_faults(Faults { throttle_ops: ["PutItem".to_owned()].into(), ..Faults::default() });
    let sim = h.sim.clone();
    let lift = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(30)).await;
        sim.set_faults(Faults::default());
    });
    let report = start(&h, Mode::Drill, false, Limits::default(), settings()).await;
    lift.await.unwrap();
    assert_succeeded(&report);
    for table in CHAIN {
        let checks = checks(&report, table, "us-west-2");
        assert!(checks.contains("content: drill marker present"), "{table}: {checks}");
    }
    assert_eq!(effects(&h, "backup_lag_ms"), 0, "no backup missed its marker");
}

/// A job just started is not found for a few seconds: drover asks again (for
/// `PollPolicy::unseen_grace`) and never starts it twice. Without the grace, the step fails.
#[tokio::test(start_paused = true)]
async fn jobs_unseen_at_first_are_polled_again() {
    let realism = Realism { unseen_jobs_ms: 5_000, ..none() };
    let h = harness(DEMO, realism.clone());
    assert_succeeded(&start(&h, Mode::Drill, false, Limits::default(), settings()).await);
    assert_eq!(
        h.sim.with(|w| w.jobs_started.clone()),
        BTreeMap::from([(JobKind::Backup, 3), (JobKind::Copy, 3), (JobKind::Restore, 3)])
    );
    assert!(effects(&h, "unseen_jobs_ms") >= 9);

    let h = harness(DEMO, realism);
    let blind = Settings {
        poll: PollPolicy { unseen_grace: Duration::ZERO, ..PollPolicy::default() },
        ..settings()
    };
    let (step, message) =
        first_failure(&start(&h, Mode::Drill, false, Limits::default(), blind).await);
    assert_eq!(step.kind, StepKind::RecoveryPoint);
    assert!(message.contains("DescribeBackupJob failed (not-found)"), "{message}");
}

/// With a concurrency limit above the region's restore quota, the restores beyond it are
/// refused (LimitExceededException, throttling): drover backs off, lowers its limit and
/// finishes, each restore started once. Without retries the refused restores fail.
#[tokio::test(start_paused = true)]
async fn a_concurrency_limit_above_the_restore_quota_still_finishes() {
    let tables: Vec<String> = (0..12).map(|i| format!("t{i:02}")).collect();
    let refs: Vec<(&str, &[&str])> = tables.iter().map(|n| (n.as_str(), &[][..])).collect();
    let (_, text) = plan_of(&refs, &["us-west-2"], "");
    let realism = Realism { max_restores: 4, ..none() };
    let limits = Limits { restores: 12, ..Limits::default() };
    let h = harness(&text, realism.clone());
    assert_succeeded(&start(&h, Mode::Drill, false, limits, settings()).await);
    assert_eq!(h.sim.with(|w| w.jobs_started[&JobKind::Restore]), 12, "never started twice");
    assert!(effects(&h, "max_restores") > 0, "the quota was hit");
    // At no time did more than 4 restore jobs run.
    let spans: Vec<(Millis, Millis)> = h.sim.with(|w| {
        w.job_spans().into_iter().filter(|s| s.1 == JobKind::Restore).map(|s| (s.2, s.3)).collect()
    });
    let most = spans
        .iter()
        .map(|(start, _)| spans.iter().filter(|(s, e)| s <= start && start < e).count())
        .max();
    assert_eq!(most, Some(4));

    let h = harness(&text, realism);
    let retry = RetryPolicy { give_up_after: Duration::from_secs(1), ..RetryPolicy::default() };
    let (step, message) = first_failure(
        &start(&h, Mode::Drill, false, limits, Settings { retry, ..settings() }).await,
    );
    assert_eq!(step.kind, StepKind::Restore);
    assert!(
        message.contains("LimitExceededException") && message.contains("still failing after"),
        "{message}"
    );
}

/// AWS Backup runs one backup or copy job per table at a time: the copies of a table into two
/// targets take turns (the second waits CREATED). drover polls the waiting copy until it ends,
/// starts nothing twice, and the run finishes.
#[tokio::test(start_paused = true)]
async fn copies_of_one_table_into_two_targets_take_turns() {
    let h = harness(&realistic_text(), Realism { one_job_per_resource: true, ..none() });
    assert_succeeded(&start(&h, Mode::Drill, false, Limits::default(), settings()).await);
    assert_eq!(effects(&h, "one_job_per_resource"), 3, "one copy of each table waited");
    assert_eq!(h.sim.with(|w| w.jobs_started[&JobKind::Copy]), 6);
    // The second copy of each table started when the first ended.
    let copies: Vec<(Millis, Millis)> = h.sim.with(|w| {
        w.job_times().into_values().filter(|j| j.0 == JobKind::Copy).map(|j| (j.1, j.2)).collect()
    });
    let follows =
        copies.iter().filter(|(begin, _)| copies.iter().any(|(_, end)| end == begin)).count();
    assert_eq!(follows, 3, "{copies:?}");
}

/// Copy jobs may sit CREATED for a long while (AWS retries them for up to two hours): drover
/// keeps polling and the run finishes.
#[tokio::test(start_paused = true)]
async fn copies_that_sit_in_created_are_waited_for() {
    let h = harness(DEMO, Realism { copy_queue_ms: 30 * 60_000, ..none() });
    let report = start(&h, Mode::Drill, false, Limits::default(), settings()).await;
    assert_succeeded(&report);
    assert_eq!(effects(&h, "copy_queue_ms"), 3);
    assert_eq!(h.sim.with(|w| w.jobs_started[&JobKind::Copy]), 3);
}

/// A small share of every call meets a passing server fault (HTTP 500 / 503): drover retries
/// them and starts no job twice. Without retries the first fault fails its step.
#[tokio::test(start_paused = true)]
async fn passing_server_faults_are_retried() {
    let realism = Realism { fault_rate: 0.05, ..none() };
    let h = harness(DEMO, realism.clone());
    assert_succeeded(&start(&h, Mode::Drill, false, Limits::default(), settings()).await);
    assert!(effects(&h, "fault_rate") > 5);
    assert_eq!(
        h.sim.with(|w| w.jobs_started.clone()),
        BTreeMap::from([(JobKind::Backup, 3), (JobKind::Copy, 3), (JobKind::Restore, 3)])
    );

    let h = harness(DEMO, realism);
    let retry = RetryPolicy { give_up_after: Duration::ZERO, ..RetryPolicy::default() };
    let (_, message) = first_failure(
        &start(&h, Mode::Drill, false, Limits::default(), Settings { retry, ..settings() }).await,
    );
    assert!(
        message.contains("(HTTP 50") && message.contains("still failing after 0s"),
        "{message}"
    );
}

/// A drill's scans of production tables keep to their read budget: the plan's rate for
/// on-demand tables paces the digest before and after the backup (4 MB at 100 units per
/// second, 4 KB a unit: about ten seconds a scan; the scan before the backup runs within the
/// minute the backup waits anyway, the one after adds to the step), and a larger budget
/// (`--source-read-units`) goes faster. Restored tables are the run's own, scanned unpaced.
#[tokio::test(start_paused = true)]
async fn source_scans_keep_to_their_read_budget() {
    let text = DEMO
        .replace(
            "defaults: {point_in_time_recovery: true,",
            "defaults: {validate: {digest: true}, point_in_time_recovery: true,",
        )
        .replace(
            "drill: {write_marker: true}",
            "drill: {write_marker: true, source_reads: {on_demand_units: 100}}",
        );
    let scans = async |units: Option<u32>| {
        let h = harness(&text, none());
        h.sim.with(|w| w.set_generated_items("us-east-1", "customers", 20_000));
        let settings = Settings { source_read_units: units, ..settings() };
        let report = start(&h, Mode::Drill, false, Limits::default(), settings).await;
        assert_succeeded(&report);
        let step = &report.state.steps[&key("customers", None, StepKind::RecoveryPoint)];
        step.ended_at.unwrap() - step.began_at.unwrap()
    };
    let budgeted = scans(None).await;
    let generous = scans(Some(40_000)).await;
    assert!(
        budgeted - generous >= 9_000,
        "a scan of 4 MB at 100 units/s after the backup: {budgeted} ms against {generous} ms"
    );
}
