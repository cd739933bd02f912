//! `drover sweep` against the simulator: what abandoned drills leave behind is found by its
//! ownership tags and deleted, and nothing else is: not a table without both tags, not a backup
//! run's recovery points, not a run in progress, not anything younger than `older_than`.

use std::time::Duration;

use drover_engine::ports::BackupService as _;
use drover_engine::store::Store;
use drover_engine::sweep::{self as sweeping, Action, Kind, Options, Reason, Sweep};
use drover_sim::Realism;

use super::*;

const DAY: Duration = Duration::from_secs(86_400);
const TARGET: &str = "us-west-2";
const SOURCE: &str = "us-east-1";

/// A drill run with `--keep`: its tables, source points and copies stay.
async fn kept_drill(h: &Harness, run_id: &str) {
    let mut header = h.header(Mode::Drill, run_id, Limits::default());
    header.options.keep = true;
    let (journal, state) = run::create(h.state_dir(), header, h.clock.now_ms()).unwrap();
    let report = h.exec(journal, state, Limits::default()).await.unwrap();
    assert_eq!(report.outcome, Outcome::Succeeded);
}

fn options(older_than: Duration) -> Options {
    Options { older_than, ..Options::default() }
}

/// The recovery points in the source vault and the target vault: (region, ARN).
async fn points(h: &Harness) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (region, vault) in [(SOURCE, "src"), (TARGET, "dr")] {
        for p in h.sim.list_vault_recovery_points(region, vault).await.unwrap() {
            out.push((region.to_owned(), p.arn));
        }
    }
    out.sort();
    out
}

async fn find(h: &Harness, state_dir: &Path, opts: &Options) -> Sweep {
    sweeping::find(&h.plan, &h.ports(), &Store::Dir(state_dir.to_owned()), opts).await
}

/// Finds and deletes, as `drover sweep --yes` does.
async fn sweep_now(h: &Harness, state_dir: &Path, opts: &Options) -> Sweep {
    let mut found = find(h, state_dir, opts).await;
    sweeping::delete(&h.plan, &h.ports(), &Store::Dir(state_dir.to_owned()), &mut found, opts)
        .await;
    found
}

fn calls(h: &Harness, op: &str) -> u64 {
    h.sim.with(|w| w.calls.get(op).copied().unwrap_or(0))
}

const DRILL_TABLES: [&str; 3] =
    ["customers-drill-0123abcd", "invoices-drill-0123abcd", "orders-drill-0123abcd"];

#[tokio::test(start_paused = true)]
async fn an_abandoned_kept_drill_is_swept_and_a_second_sweep_finds_nothing() {
    let h = Harness::new(plan(DEMO), DEMO);
    kept_drill(&h, RUN_ID).await;
    assert_eq!(h.sim.table_names(TARGET), DRILL_TABLES);
    assert_eq!(points(&h).await.len(), 6, "3 source points and 3 copies");
    tokio::time::sleep(2 * DAY).await;

    // The runner that ran the drill is gone, and its state directory with it.
    let elsewhere = tempfile::tempdir().unwrap();
    let swept = sweep_now(&h, elsewhere.path(), &Options::default()).await;
    assert!(swept.succeeded(), "{}", swept.render(false));
    assert_eq!(swept.count(Action::Deleted), 9, "{}", swept.render(false));
    assert!(
        swept
            .items
            .iter()
            .all(|i| i.reason == Reason::RunUnknown && i.run.as_deref() == Some(RUN_ID))
    );
    // orders-drill had deletion protection on: turned off first.
    assert!(h.sim.table_names(TARGET).is_empty(), "{:?}", h.sim.table_names(TARGET));
    assert_eq!(points(&h).await, Vec::<(String, String)>::new());
    assert_eq!(
        h.sim.table_names(SOURCE),
        ["customers", "invoices", "orders"],
        "the source is untouched"
    );

    let again = sweep_now(&h, elsewhere.path(), &Options::default()).await;
    assert!(again.items.is_empty() && again.succeeded(), "{}", again.render(false));
    assert!(again.render(false).contains("nothing found"), "{}", again.render(false));
}

#[tokio::test(start_paused = true)]
async fn a_finished_drills_leftovers_are_swept_with_its_state_directory() {
    let h = Harness::new(plan(DEMO), DEMO);
    kept_drill(&h, RUN_ID).await;
    tokio::time::sleep(2 * DAY).await;
    let found = find(&h, h.state_dir(), &Options::default()).await;
    assert_eq!(found.to_delete(), 9, "{}", found.render(true));
    assert!(found.items.iter().all(|i| i.reason == Reason::RunFinished));
    let text = found.render(true);
    assert!(text.contains("its run finished (succeeded)") && text.contains("dry run"), "{text}");
    let json = found.to_json(true);
    assert_eq!(json["counts"]["delete"], 9);
    assert_eq!(json["items"][0]["reason"], "run-finished");

    let swept = sweep_now(&h, h.state_dir(), &Options::default()).await;
    assert!(swept.succeeded(), "{}", swept.render(false));
    assert!(h.sim.table_names(TARGET).is_empty());
    assert!(points(&h).await.is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_dry_run_reads_only() {
    let h = Harness::new(plan(DEMO), DEMO);
    kept_drill(&h, RUN_ID).await;
    tokio::time::sleep(2 * DAY).await;
    let before = points(&h).await;
    let changes = ["DeleteTable", "DeleteRecoveryPoint", "UpdateTable", "TagResource"];
    let calls_before: Vec<u64> = changes.iter().map(|op| calls(&h, op)).collect();
    let found = find(&h, h.state_dir(), &Options::default()).await;
    assert_eq!(found.to_delete(), 9);
    assert!(!found.succeeded(), "what qualifies is not gone yet");
    assert_eq!(h.sim.table_names(TARGET), DRILL_TABLES);
    assert_eq!(points(&h).await, before);
    let calls_after: Vec<u64> = changes.iter().map(|op| calls(&h, op)).collect();
    assert_eq!(calls_after, calls_before, "{changes:?}");
}

#[tokio::test(start_paused = true)]
async fn a_run_in_progress_keeps_everything_and_the_listing_says_how_to_finish_it() {
    let h = Harness::new(plan(DEMO), DEMO);
    kept_drill(&h, RUN_ID).await;
    // An interrupted resume: the journal is not finished, whether or not a process holds it.
    let mut opened = run::open(h.state_dir(), RUN_ID).unwrap();
    run::prepare_resume(&mut opened.journal, &mut opened.state, h.clock.now_ms(), None).unwrap();
    drop(opened);
    tokio::time::sleep(2 * DAY).await;

    let swept = sweep_now(&h, h.state_dir(), &options(Duration::ZERO)).await;
    assert_eq!(swept.count(Action::Spare), 9, "{}", swept.render(false));
    assert!(swept.items.iter().all(|i| i.reason == Reason::RunInProgress));
    let text = swept.render(false);
    assert!(
        text.contains(&format!("drover resume {RUN_ID}"))
            && text.contains(&format!("drover teardown {RUN_ID}")),
        "{text}"
    );
    assert_eq!(h.sim.table_names(TARGET), DRILL_TABLES);
    assert_eq!(points(&h).await.len(), 6);
}

#[tokio::test(start_paused = true)]
async fn a_run_resumed_after_the_listing_is_spared_when_it_comes_to_deleting() {
    let h = Harness::new(plan(DEMO), DEMO);
    kept_drill(&h, RUN_ID).await;
    tokio::time::sleep(2 * DAY).await;
    let mut found = find(&h, h.state_dir(), &Options::default()).await;
    assert_eq!(found.to_delete(), 9);
    // Someone resumes the run while the operator reads the listing.
    let mut opened = run::open(h.state_dir(), RUN_ID).unwrap();
    run::prepare_resume(&mut opened.journal, &mut opened.state, h.clock.now_ms(), None).unwrap();
    drop(opened);
    let state = Store::Dir(h.state_dir().to_owned());
    sweeping::delete(&h.plan, &h.ports(), &state, &mut found, &Options::default()).await;
    assert_eq!(found.count(Action::Spare), 9, "{}", found.render(false));
    assert!(
        found
            .items
            .iter()
            .all(|i| i.reason == Reason::RunInProgress
                && i.why.contains("read again before deleting"))
    );
    assert_eq!(h.sim.table_names(TARGET), DRILL_TABLES);
    assert_eq!(points(&h).await.len(), 6);
}

#[tokio::test(start_paused = true)]
async fn tables_without_both_ownership_tags_are_spared_however_drill_like_their_names() {
    let h = Harness::new(plan(DEMO), DEMO);
    let ports = h.ports();
    let tag = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    };
    let other_run = "test-20261124t000000z-other000";
    let cases: [(&str, BTreeMap<String, String>); 5] = [
        ("orders-drill-decoy000", BTreeMap::new()),
        ("customers-drill-half0000", tag(&[("drover:plan", "test")])),
        ("invoices-drill-norun000", tag(&[("drover:run", other_run)])),
        ("orders-drill-other000", tag(&[("drover:plan", "another"), ("drover:run", other_run)])),
        ("customers-drill-badrun00", tag(&[("drover:plan", "test"), ("drover:run", "Not a run")])),
    ];
    for (name, tags) in &cases {
        h.sim.add_table(TARGET, name, "pk", None, 3, &[]);
        if !tags.is_empty() {
            let arn = ports.tables.describe_table(TARGET, name).await.unwrap().unwrap().arn;
            ports.tables.tag_table(TARGET, &arn, tags).await.unwrap();
        }
    }
    // A production name in the target region, and a name the template cannot make.
    h.sim.add_table(TARGET, "orders", "pk", None, 3, &[]);
    h.sim.add_table(TARGET, "orders-drill-toolongname", "pk", None, 3, &[]);
    tokio::time::sleep(2 * DAY).await;

    let swept = sweep_now(&h, h.state_dir(), &options(Duration::ZERO)).await;
    let spared: BTreeMap<&str, Reason> =
        swept.items.iter().map(|i| (i.name.as_str(), i.reason)).collect();
    assert_eq!(
        spared,
        BTreeMap::from([
            ("customers-drill-badrun00", Reason::BadRunTag),
            ("customers-drill-half0000", Reason::NotOwned),
            ("invoices-drill-norun000", Reason::NotOwned),
            ("orders-drill-decoy000", Reason::NotOwned),
            ("orders-drill-other000", Reason::OtherPlan),
        ]),
        "{}",
        swept.render(false)
    );
    assert!(swept.items.iter().all(|i| i.action == Action::Spare));
    assert_eq!(h.sim.table_names(TARGET).len(), 7, "nothing was deleted");
    assert_eq!(calls(&h, "DeleteTable"), 0);
    // Tags were read only for the names the template can make.
    assert_eq!(calls(&h, "ListTagsOfResource"), 5);
}

#[tokio::test(start_paused = true)]
async fn a_backup_runs_recovery_points_are_never_swept() {
    let h = Harness::new(plan(DEMO), DEMO);
    let backup = "test-20261124t000000z-backup01";
    let report = h.start(Mode::Backup, backup, Limits::default(), None).await.unwrap();
    assert_eq!(report.outcome, Outcome::Succeeded);
    let backup_points = points(&h).await;
    assert_eq!(backup_points.len(), 6);
    kept_drill(&h, RUN_ID).await;
    tokio::time::sleep(2 * DAY).await;

    // Neither with the state directory nor without it.
    let elsewhere = tempfile::tempdir().unwrap();
    for dir in [h.state_dir(), elsewhere.path()] {
        let swept = sweep_now(&h, dir, &Options::default()).await;
        assert!(swept.succeeded(), "{}", swept.render(false));
        let spared: Vec<_> = swept.items.iter().filter(|i| i.action == Action::Spare).collect();
        assert_eq!(spared.len(), 6, "{}", swept.render(false));
        assert!(spared.iter().all(|i| i.kind == Kind::RecoveryPoint
            && i.reason == Reason::NotADrillPoint
            && i.run.as_deref() == Some(backup)
            && i.why.contains("a real failover restores from it")));
        assert_eq!(points(&h).await, backup_points);
    }
    assert!(h.sim.table_names(TARGET).is_empty());
}

#[tokio::test(start_paused = true)]
async fn older_than_keeps_younger_resources() {
    let h = Harness::new(plan(DEMO), DEMO);
    kept_drill(&h, RUN_ID).await;
    tokio::time::sleep(Duration::from_secs(2 * 3600)).await;

    let young = sweep_now(&h, h.state_dir(), &Options::default()).await;
    assert_eq!(young.count(Action::Spare), 9, "{}", young.render(false));
    assert!(young.items.iter().all(|i| i.reason == Reason::Younger && i.why == "younger than 1d"));
    assert_eq!(h.sim.table_names(TARGET), DRILL_TABLES);

    // Between the copies (taken at backup time) and the tables (restored later): the age is
    // each resource's own creation time.
    let swept = sweep_now(&h, h.state_dir(), &options(Duration::from_secs(3600))).await;
    assert!(swept.succeeded(), "{}", swept.render(false));
    assert_eq!(swept.count(Action::Deleted), 9);
    assert!(h.sim.table_names(TARGET).is_empty());
}

#[tokio::test(start_paused = true)]
async fn deletes_wait_out_updating_and_deleting_as_aws_does() {
    let h = Harness::new(plan(DEMO), DEMO);
    h.sim.set_realism(Realism {
        update_ms: 5_000,
        delete_ms: 30_000,
        point_delete_ms: 20_000,
        tag_delay_ms: 5_000,
        ..Realism::off()
    });
    kept_drill(&h, RUN_ID).await;
    tokio::time::sleep(2 * DAY).await;
    let swept = sweep_now(&h, h.state_dir(), &Options::default()).await;
    assert!(swept.succeeded(), "{}", swept.render(false));
    // Tables are awaited until gone; points may still be DELETING.
    assert!(h.sim.table_names(TARGET).is_empty());
    let effects = h.sim.with(|w| w.effects.clone());
    assert!(effects.get("delete_ms").copied().unwrap_or(0) > 0, "{effects:?}");
    // A second sweep finds nothing to do (points being deleted are not listed).
    let again = find(&h, h.state_dir(), &Options::default()).await;
    assert!(again.items.is_empty(), "{}", again.render(true));
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert!(points(&h).await.is_empty());
}

/// `drover teardown` of a kept drill: the run that had ended ends again (its outcome as it
/// was), so that what its teardown could not delete is a finished run's, for `drover sweep`;
/// a drill interrupted mid-run stays unfinished after a teardown, for `resume`.
#[tokio::test(start_paused = true)]
async fn a_teardown_leaves_the_runs_outcome_as_it_was() {
    async fn teardown(h: &Harness, run_id: &str) -> drover_engine::state::RunState {
        let mut opened = run::open(h.state_dir(), run_id).unwrap();
        let entry = opened
            .journal
            .append(
                h.clock.now_ms(),
                Record::Run { event: drover_engine::state::RunEvent::TeardownRequested },
            )
            .unwrap();
        opened.state.apply(&entry).unwrap();
        assert_eq!(opened.state.finished, None, "unfinished while it tears down");
        let settings = Settings { teardown_only: true, scan_segments: 4, ..Settings::default() };
        let report = execute(Execution {
            plan: h.plan.clone(),
            journal: opened.journal,
            state: opened.state,
            ports: h.ports(),
            settings,
            cancel: CancellationToken::new(),
            observer: Arc::new(Silent),
            hooks: None,
        })
        .await
        .unwrap();
        report.state
    }

    let h = Harness::new(plan(DEMO), DEMO);
    kept_drill(&h, RUN_ID).await;
    let state = teardown(&h, RUN_ID).await;
    assert_eq!(state.finished, Some(true));
    assert_eq!(run::read(h.state_dir(), RUN_ID).unwrap().0.finished, Some(true));
    assert!(h.sim.table_names(TARGET).is_empty());

    // Stopped after its first few records (a crash): the backups never finished.
    let crashed = "test-20261124t000000z-crash001";
    let stopped = h
        .start(
            Mode::Drill,
            crashed,
            Limits::default(),
            Some(drover_engine::journal::CrashPoint { after: 4, torn: false }),
        )
        .await;
    assert!(stopped.is_err());
    let state = teardown(&h, crashed).await;
    assert_eq!(state.finished, None, "an interrupted run stays resumable");
    let found = find(&h, h.state_dir(), &options(Duration::ZERO)).await;
    assert!(
        found.items.iter().all(|i| i.action == Action::Spare && i.reason == Reason::RunInProgress),
        "{}",
        found.render(true)
    );
}
