//! The fault table of docs/reliability.md, on the simulator: each test injects one fault and
//! checks what drover guarantees under it. (Throttling storms, a disabled key before the
//! run, the source region down during failover and crash points live in `main.rs`.)

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use drover_engine::Clock;
use drover_engine::preflight::{self, Status};

use super::*;

const KEY: &str = "arn:aws:kms:us-west-2:123456789012:key/1111aaaa-22bb-33cc-44dd-555555eeeeee";
const CHAIN: [&str; 3] = ["customers", "orders", "invoices"];

/// Waits (in virtual time) until `ready` holds, then runs `then`: a fault injected while the
/// run is in flight. Gives up after a virtual day so that a test can never hang.
fn when(
    sim: &SimCloud,
    ready: impl Fn(&drover_sim::World) -> bool + Send + 'static,
    then: impl FnOnce(&SimCloud) + Send + 'static,
) -> tokio::task::JoinHandle<bool> {
    let sim = sim.clone();
    tokio::spawn(async move {
        for _ in 0..86_400 {
            if sim.with(|w| ready(w)) {
                then(&sim);
                return true;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        false
    })
}

fn restores_started(w: &drover_sim::World) -> u64 {
    w.jobs_started.get(&JobKind::Restore).copied().unwrap_or(0)
}

async fn preflight_ok(h: &Harness, mode: Mode) {
    let findings = preflight::preflight(&h.plan, mode, &h.ports(), "0123abcd").await;
    let failing: Vec<_> = findings.iter().filter(|f| f.status == Status::Fail).collect();
    assert!(failing.is_empty(), "{failing:#?}");
}

#[tokio::test(start_paused = true)]
async fn transient_errors_and_timeouts_are_retried() {
    let h = Harness::new(plan(DEMO), DEMO);
    h.sim.set_faults(Faults { error_next: 30, error_rate: 0.3, ..Faults::default() });
    let report = h.start(Mode::Drill, RUN_ID, Limits::default(), None).await.unwrap();
    assert_eq!(report.outcome, Outcome::Succeeded, "{:#?}", report.state.steps);
    let started = h.sim.with(|w| w.jobs_started.clone());
    for kind in [JobKind::Backup, JobKind::Copy, JobKind::Restore] {
        assert_eq!(started[&kind], 3, "{kind:?}: retried calls started no job twice");
    }
    // The faults happened: far more calls than a clean run makes.
    let clean = Harness::new(plan(DEMO), DEMO);
    clean.start(Mode::Drill, RUN_ID, Limits::default(), None).await.unwrap();
    let calls = |h: &Harness| h.sim.with(|w| w.calls.values().sum::<u64>());
    assert!(calls(&h) > calls(&clean) + 30, "{} vs {}", calls(&h), calls(&clean));
}

#[tokio::test(start_paused = true)]
async fn a_passing_fault_that_never_passes_fails_the_step_after_the_retry_budget() {
    let h = Harness::new(plan(DEMO), DEMO);
    h.sim.set_faults(Faults { error_rate: 1.0, ..Faults::default() });
    let report = h.start(Mode::Drill, RUN_ID, Limits::default(), None).await.unwrap();
    let Outcome::Failed { failed, .. } = &report.outcome else { panic!("{:?}", report.outcome) };
    assert!(!failed.is_empty());
    let Phase::Failed { message } = report.state.phase(&failed[0]) else { panic!() };
    assert!(message.contains("still failing after"), "{message}");
    // Nothing was started, so nothing is left behind.
    assert_eq!(h.sim.with(|w| w.jobs_started.values().sum::<u64>()), 0);
}

/// Every unsuccessful end state AWS Backup's model allows, for each kind of job: the step
/// fails with the service's state and message, its dependents are blocked, independent
/// tables finish, and `resume` retries the step to success.
#[tokio::test(start_paused = true)]
async fn a_job_that_ends_unsuccessfully_fails_its_step_and_resume_retries_it() {
    for kind in [JobKind::Backup, JobKind::Copy, JobKind::Restore] {
        for state in kind.failure_states() {
            let h = Harness::new(plan(DEMO), DEMO);
            h.sim.set_faults(Faults {
                fail_next: [(kind, 1)].into(),
                fail_state: Some((*state).to_owned()),
                ..Faults::default()
            });
            let report = h.start(Mode::Drill, RUN_ID, Limits::default(), None).await.unwrap();
            let case = format!("{kind:?} ending {state}");
            let Outcome::Failed { failed, blocked } = &report.outcome else {
                panic!("{case}: {:?}", report.outcome)
            };
            assert_eq!(failed.len(), 1, "{case}: {failed:?}");
            let step = &failed[0];
            let Phase::Failed { message } = report.state.phase(step) else { panic!("{case}") };
            assert!(
                message.contains(&format!("ended {state}: Injected {}", state.to_lowercase())),
                "{case}: {message}"
            );
            // Tables after the failed one in the chain depend on it: their restores are
            // blocked; tables before it are independent and recovered.
            let at = CHAIN.iter().position(|t| *t == step.table).unwrap();
            assert!(*blocked > 0, "{case}");
            for (i, table) in CHAIN.iter().enumerate() {
                let restore = report.state.phase(&key_of(table, StepKind::Restore));
                let validate = report.state.phase(&key_of(table, StepKind::Validate));
                if i < at {
                    assert!(matches!(validate, Phase::Succeeded { .. }), "{case}: {table}");
                } else if i > at || step.kind != StepKind::Restore {
                    assert!(
                        matches!(restore, Phase::Blocked { .. }),
                        "{case}: {table} {restore:?}"
                    );
                }
            }
            assert!(h.sim.table_names("us-west-2").is_empty(), "{case}: drill tables torn down");

            h.sim.set_faults(Faults::default());
            let before = h.sim.with(|w| w.jobs_started[&kind]);
            let report = h.resume(RUN_ID, Limits::default()).await;
            assert_eq!(report.outcome, Outcome::Succeeded, "{case}");
            assert!(h.sim.with(|w| w.jobs_started[&kind]) > before, "{case}: the job ran again");
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_kms_key_disabled_mid_run_fails_the_restores_and_resume_recovers() {
    let h = Harness::new(plan(DEMO), DEMO);
    preflight_ok(&h, Mode::Drill).await;
    let disabled = when(
        &h.sim,
        |w| restores_started(w) >= 1,
        |sim| sim.set_key_state("us-west-2", KEY, "Disabled"),
    );
    let report = h.start(Mode::Drill, RUN_ID, Limits::default(), None).await.unwrap();
    assert!(disabled.await.unwrap(), "the key was disabled while the run was in flight");
    let Outcome::Failed { failed, .. } = &report.outcome else { panic!("{:?}", report.outcome) };
    assert_eq!(failed, &[key_of("customers", StepKind::Restore)]);
    let Phase::Failed { message } = report.state.phase(&failed[0]) else { panic!() };
    assert!(message.contains(KEY) && message.contains("Disabled"), "{message}");
    assert!(h.sim.table_names("us-west-2").is_empty());

    h.sim.set_key_state("us-west-2", KEY, "Enabled");
    assert_eq!(h.resume(RUN_ID, Limits::default()).await.outcome, Outcome::Succeeded);
}

/// Someone creates a table under the name a restore is about to use, after preflight
/// checked the name was free: before drover starts that restore (drover's own check refuses)
/// or while the restore job runs (the service fails the job). drover never overwrites the
/// table, never deletes it, and the run reports why; once the name is free again, `resume`
/// finishes.
#[tokio::test(start_paused = true)]
async fn a_target_name_taken_after_preflight_is_never_overwritten_nor_deleted() {
    let cases = [Mode::Drill, Mode::Failover].into_iter().flat_map(|m| [(m, 1), (m, 2)]);
    for (mode, restores) in cases {
        let h = Harness::new(plan(DEMO), DEMO);
        if mode == Mode::Failover {
            h.sim.seed_copies(&h.plan, 3_600_000);
        }
        preflight_ok(&h, mode).await;
        let name = if mode == Mode::Drill { "orders-drill-0123abcd" } else { "orders" };
        let squat = when(
            &h.sim,
            move |w| restores_started(w) >= restores,
            move |sim| sim.add_table("us-west-2", name, "pk", None, 7, &[]),
        );
        let report = h.start(mode, RUN_ID, Limits::default(), None).await.unwrap();
        assert!(squat.await.unwrap());
        let case = format!("{mode:?}, after {restores} restore(s) started");
        let Outcome::Failed { failed, .. } = &report.outcome else {
            panic!("{case}: {:?}", report.outcome)
        };
        assert_eq!(failed, &[key_of("orders", StepKind::Restore)], "{case}");
        let Phase::Failed { message } = report.state.phase(&failed[0]) else { panic!() };
        let expected = if restores == 1 {
            format!("table `{name}` already exists in us-west-2; drover never overwrites a table")
        } else {
            format!("ended FAILED: Table already exists: {name}")
        };
        assert!(message.contains(&expected), "{case}: {message}");
        assert!(matches!(
            report.state.phase(&key_of("invoices", StepKind::Restore)),
            Phase::Blocked { .. }
        ));
        // The other table's data is intact, and still there after a drill's teardown.
        assert_eq!(h.sim.item_count("us-west-2", name), Some(7), "{case}");

        // Resuming while the name is still taken fails the same way and still spares it.
        let report = h.resume(RUN_ID, Limits::default()).await;
        assert!(matches!(report.outcome, Outcome::Failed { .. }), "{case}");
        assert_eq!(h.sim.item_count("us-west-2", name), Some(7), "{case}");

        h.sim.with(|w| w.drop_table("us-west-2", name));
        let report = h.resume(RUN_ID, Limits::default()).await;
        assert_eq!(report.outcome, Outcome::Succeeded, "{case}");
    }
}

/// The operator's machine clock, jumping: the cloud keeps its own time.
struct JumpingClock {
    inner: Arc<SystemClock>,
    offset_ms: AtomicI64,
}

#[async_trait::async_trait]
impl Clock for JumpingClock {
    fn now(&self) -> Millis {
        self.inner.now_ms() + self.offset_ms.load(Ordering::SeqCst)
    }

    fn monotonic(&self) -> Duration {
        self.inner.monotonic()
    }

    async fn sleep(&self, d: Duration) {
        self.inner.sleep(d).await;
    }
}

/// The wall clock jumps two hours ahead while a call is being retried (beyond the 30-minute
/// retry budget), then three hours back: the retry budget counts elapsed time, the run
/// finishes, and the journal's times never go backwards.
#[tokio::test(start_paused = true)]
async fn the_clock_jumping_neither_ends_retries_early_nor_breaks_the_journal() {
    let h = Harness::new(plan(DEMO), DEMO);
    h.sim.set_faults(Faults {
        throttle_ops: ["StartRestoreJob".into()].into(),
        ..Faults::default()
    });
    let clock = Arc::new(JumpingClock { inner: h.clock.clone(), offset_ms: AtomicI64::new(0) });
    let jumps = {
        let (clock, sim) = (clock.clone(), h.sim.clone());
        tokio::spawn(async move {
            // Wait for the first refused restore, then jump while its retries go on.
            for _ in 0..86_400 {
                if sim.with(|w| w.calls.get("StartRestoreJob").copied().unwrap_or(0) > 0) {
                    break;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            tokio::time::sleep(Duration::from_secs(300)).await;
            clock.offset_ms.store(2 * 3_600_000, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_secs(300)).await;
            clock.offset_ms.store(-3_600_000, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_secs(300)).await;
            sim.set_faults(Faults::default());
        })
    };
    let (journal, state) =
        run::create(h.state_dir(), h.header(Mode::Drill, RUN_ID, Limits::default()), clock.now())
            .unwrap();
    let mut ports = h.ports();
    ports.clock = clock.clone();
    let report = execute(Execution {
        plan: h.plan.clone(),
        journal,
        state,
        ports,
        settings: Settings { scan_segments: 4, ..Settings::default() },
        cancel: CancellationToken::new(),
        observer: Arc::new(Silent),
        hooks: None,
    })
    .await
    .unwrap();
    jumps.await.unwrap();
    assert_eq!(report.outcome, Outcome::Succeeded, "{:#?}", report.state.steps);
    let times: Vec<Millis> = entries(&h, RUN_ID).iter().map(|e| e.at).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "journal times go backwards: {times:?}");
    let run_report = drover_engine::report::RunReport::new(&h.plan, &report.state);
    for t in &run_report.tables {
        for s in &t.steps {
            assert!(s.duration_ms.is_none_or(|d| d >= 0), "{s:?}");
        }
    }
}

/// Found by the scheduler's property test: a step whose two dependencies are blocked together was
/// blocked twice, and the engine stopped on its own state machine's refusal.
#[tokio::test(start_paused = true)]
async fn a_step_with_two_blocked_dependencies_is_blocked_once() {
    let (p, text) = plan_of(
        &[("top", &[]), ("left", &["top"]), ("right", &["top"]), ("bottom", &["left", "right"])],
        &["us-west-2"],
        "",
    );
    let h = Harness::new(p, &text);
    // The first copy (top's: it heads the longest chain) fails: top's restore is blocked,
    // then left's and right's together, and bottom waits on both.
    h.sim.set_faults(Faults { fail_next: [(JobKind::Copy, 1)].into(), ..Faults::default() });
    let one = Limits { backups: 1, copies: 1, restores: 1, table_ops: 1 };
    let report = h.start(Mode::Drill, RUN_ID, one, None).await.unwrap();
    let Outcome::Failed { failed, .. } = &report.outcome else { panic!("{:?}", report.outcome) };
    assert_eq!(failed, &[key_of("top", StepKind::Copy)]);
    assert!(matches!(
        report.state.phase(&key_of("bottom", StepKind::Restore)),
        Phase::Blocked { .. }
    ));
    h.sim.set_faults(Faults::default());
    assert_eq!(h.resume(RUN_ID, Limits::default()).await.outcome, Outcome::Succeeded);
}

/// Found by the fuzzing helper's throttled runs: a restore whose job finished but whose step
/// failed before tagging the table (throttled past the retry budget) left a table that
/// `resume` refused as "already exists" forever and teardown kept. The journal's job reports
/// it created that table: `resume` adopts it, tags it, and the drill finishes clean.
#[tokio::test(start_paused = true)]
async fn a_restore_that_failed_before_tagging_its_table_is_adopted_on_resume() {
    let h = Harness::new(plan(DEMO), DEMO);
    let throttled = when(
        &h.sim,
        |w| w.tables_restored.values().sum::<u64>() >= 1,
        |sim| {
            sim.set_faults(Faults {
                throttle_ops: ["DescribeTable".into()].into(),
                ..Faults::default()
            })
        },
    );
    let report = h.start(Mode::Drill, RUN_ID, Limits::default(), None).await.unwrap();
    assert!(throttled.await.unwrap());
    assert!(matches!(report.outcome, Outcome::Failed { .. }), "{:?}", report.outcome);
    let Phase::Failed { message } = report.state.phase(&key_of("customers", StepKind::Restore))
    else {
        panic!("{:#?}", report.state.steps)
    };
    assert!(message.contains("still failing after"), "{message}");
    assert_eq!(h.sim.table_names("us-west-2"), ["customers-drill-0123abcd"], "left untagged");

    h.sim.set_faults(Faults::default());
    let report = h.resume(RUN_ID, Limits::default()).await;
    assert_eq!(report.outcome, Outcome::Succeeded, "{:#?}", report.state.steps);
    assert_eq!(h.sim.with(|w| w.jobs_started[&JobKind::Restore]), 3, "adopted, not restored again");
    assert!(h.sim.table_names("us-west-2").is_empty(), "teardown removed it");
}

/// Reads of a job just started are eventually consistent: a `Describe*Job` that does not see
/// it yet is asked again (for `PollPolicy::unseen_grace`), and no job is started twice. A job
/// that stays unseen fails its step with the service's not-found, and `resume` starts it anew.
#[tokio::test(start_paused = true)]
async fn a_job_not_visible_yet_is_polled_again_and_one_never_seen_fails_its_step() {
    let h = Harness::new(plan(DEMO), DEMO);
    h.sim.set_faults(Faults { unseen_jobs_ms: 20_000, ..Faults::default() });
    let report = h.start(Mode::Drill, RUN_ID, Limits::default(), None).await.unwrap();
    assert_eq!(report.outcome, Outcome::Succeeded, "{:#?}", report.state.steps);
    let started = h.sim.with(|w| w.jobs_started.clone());
    for kind in [JobKind::Backup, JobKind::Copy, JobKind::Restore] {
        assert_eq!(started[&kind], 3, "{kind:?}: no job started twice");
    }
    let not_found = h.sim.with(|w| w.calls.get("DescribeBackupJob").copied().unwrap_or(0));
    assert!(not_found > 3, "the unseen jobs were described again: {not_found}");

    let h = Harness::new(plan(DEMO), DEMO);
    h.sim.set_faults(Faults { unseen_jobs_ms: 3_600_000, ..Faults::default() });
    let report = h.start(Mode::Drill, RUN_ID, Limits::default(), None).await.unwrap();
    let Outcome::Failed { failed, .. } = &report.outcome else { panic!("{:?}", report.outcome) };
    assert_eq!(failed.len(), 3, "{failed:?}");
    for step in failed {
        assert_eq!(step.kind, StepKind::RecoveryPoint);
        let Phase::Failed { message } = report.state.phase(step) else { panic!() };
        assert!(message.contains("DescribeBackupJob failed (not-found)"), "{message}");
    }
    h.sim.set_faults(Faults::default());
    let report = h.resume(RUN_ID, Limits::default()).await;
    assert_eq!(report.outcome, Outcome::Succeeded);
    assert_eq!(h.sim.with(|w| w.jobs_started[&JobKind::Backup]), 6, "resume started them anew");
}
