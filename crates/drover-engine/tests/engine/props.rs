//! Property tests of the scheduler: random dependency graphs, concurrency limits and fault
//! sequences, run on the simulator in virtual time. Whatever the case, no step starts before
//! the steps it depends on succeeded, the cloud never sees more concurrent jobs than the
//! limits allow, every run ends, and a failed run finishes on `resume` once the faults stop.
//!
//! `PROPTEST_CASES=N` runs more cases (CI runs the default below); a failing case is shrunk
//! and saved under `proptest-regressions/` to be replayed first from then on.

use std::collections::BTreeMap;
use std::time::Duration;

use proptest::prelude::*;

use super::*;

const TARGETS: [&str; 2] = ["us-west-2", "eu-west-1"];

#[derive(Debug, Clone)]
struct Case {
    /// For each table, the earlier tables it depends on.
    deps: Vec<Vec<usize>>,
    targets: usize,
    limits: Limits,
    throttle_rate: f64,
    error_rate: f64,
    /// Jobs of each kind that end unsuccessfully.
    failures: [u32; 3],
}

fn case() -> impl Strategy<Value = Case> {
    (1usize..=9)
        .prop_flat_map(|n| {
            let deps = (0..n)
                .map(|i| proptest::sample::subsequence((0..i).collect::<Vec<_>>(), 0..=i.min(3)))
                .collect::<Vec<_>>();
            (
                deps,
                1usize..=2,
                (1usize..=4, 1usize..=4, 1usize..=3, 1usize..=3),
                prop_oneof![Just(0.0), 0.0..0.5],
                prop_oneof![Just(0.0), 0.0..0.3],
                [0u32..=1, 0u32..=1, 0u32..=1],
            )
        })
        .prop_map(|(deps, targets, (b, c, r, t), throttle_rate, error_rate, failures)| Case {
            deps,
            targets,
            limits: Limits { backups: b, copies: c, restores: r, table_ops: t },
            throttle_rate,
            error_rate,
            failures,
        })
}

fn harness(case: &Case) -> Harness {
    let names: Vec<String> = (0..case.deps.len()).map(|i| format!("tbl{i}")).collect();
    let deps: Vec<Vec<&str>> =
        case.deps.iter().map(|d| d.iter().map(|j| names[*j].as_str()).collect()).collect();
    let tables: Vec<(&str, &[&str])> =
        names.iter().zip(&deps).map(|(n, d)| (n.as_str(), d.as_slice())).collect();
    let (p, text) = plan_of(&tables, &TARGETS[..case.targets], "");
    Harness::new(p, &text)
}

/// The most jobs of each (region, kind) the cloud saw running at once.
fn peak_jobs(h: &Harness) -> BTreeMap<(String, JobKind), usize> {
    let mut events: BTreeMap<(String, JobKind), Vec<(Millis, i32)>> = BTreeMap::new();
    for (region, kind, start, end) in h.sim.with(|w| w.job_spans()) {
        let e = events.entry((region, kind)).or_default();
        e.push((start, 1));
        e.push((end, -1));
    }
    events
        .into_iter()
        .map(|(scope, mut e)| {
            // Ends sort before starts at the same instant: a slot freed can be reused at once.
            e.sort_unstable();
            let mut now = 0i32;
            let peak = e.iter().map(|(_, d)| {
                now += d;
                now
            });
            (scope, usize::try_from(peak.max().unwrap_or(0)).unwrap_or(0))
        })
        .collect()
}

/// Each step's first `began`, and when it last succeeded, from the journal.
fn step_times(h: &Harness) -> (BTreeMap<StepKey, Millis>, BTreeMap<StepKey, Millis>) {
    let (mut began, mut succeeded) = (BTreeMap::new(), BTreeMap::new());
    for e in entries(h, RUN_ID) {
        if let Record::Step { step, event } = e.record {
            match event {
                StepEvent::Began => {
                    began.insert(step, e.at);
                }
                StepEvent::Succeeded(_) => {
                    succeeded.insert(step, e.at);
                }
                _ => {}
            }
        }
    }
    (began, succeeded)
}

/// What each step waits for, from the plan (not from the engine's own graph).
fn prerequisites(plan: &Plan, step: &StepKey) -> Vec<StepKey> {
    let region = step.target.as_deref();
    let table = |name: &str, kind| key(name, region, kind);
    match step.kind {
        StepKind::Copy => vec![key(&step.table, None, StepKind::RecoveryPoint)],
        StepKind::Restore => {
            let (_, t) = plan.table_by_name(&step.table).unwrap();
            let mut pre = vec![table(&step.table, StepKind::Copy)];
            pre.extend(
                t.depends_on.iter().map(|d| table(&plan.table(*d).name, StepKind::Validate)),
            );
            pre
        }
        StepKind::Configure => vec![table(&step.table, StepKind::Restore)],
        StepKind::Validate => vec![table(&step.table, StepKind::Configure)],
        _ => Vec::new(),
    }
}

fn check(h: &Harness, case: &Case) -> Result<(), TestCaseError> {
    let (began, succeeded) = step_times(h);
    for (step, at) in &began {
        for pre in prerequisites(&h.plan, step) {
            let done = succeeded.get(&pre);
            prop_assert!(
                done.is_some_and(|d| d <= at),
                "{step} began at {at} before {pre} succeeded ({done:?})"
            );
        }
    }
    let limit = |kind| match kind {
        JobKind::Backup => case.limits.backups,
        JobKind::Copy => case.limits.copies,
        JobKind::Restore => case.limits.restores,
    };
    for ((region, kind), peak) in peak_jobs(h) {
        prop_assert!(peak <= limit(kind), "{region} {kind:?}: {peak} jobs at once");
    }
    Ok(())
}

fn run_case(case: &Case) -> Result<(), TestCaseError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    rt.block_on(async {
        let h = harness(case);
        let kinds = [JobKind::Backup, JobKind::Copy, JobKind::Restore];
        h.sim.set_faults(Faults {
            throttle_rate: case.throttle_rate,
            error_rate: case.error_rate,
            fail_next: kinds.into_iter().zip(case.failures).collect(),
            ..Faults::default()
        });
        // Every run ends: a virtual month is far beyond any of these plans.
        let month = Duration::from_secs(30 * 86_400);
        let first = tokio::time::timeout(month, h.start(Mode::Drill, RUN_ID, case.limits, None))
            .await
            .map_err(|_| TestCaseError::fail("the run did not end"))?
            .unwrap();
        check(&h, case)?;
        let injected: u32 = case.failures.iter().sum();
        match &first.outcome {
            Outcome::Succeeded => {}
            Outcome::Failed { failed, .. } => {
                prop_assert!(injected > 0, "failed without an injected job failure: {failed:?}");
                prop_assert!(failed.len() <= injected as usize, "{failed:?}");
                h.sim.set_faults(Faults::default());
                let second = tokio::time::timeout(month, h.resume(RUN_ID, case.limits))
                    .await
                    .map_err(|_| TestCaseError::fail("the resumed run did not end"))?;
                prop_assert_eq!(&second.outcome, &Outcome::Succeeded);
                check(&h, case)?;
            }
            other => prop_assert!(false, "{other:?}"),
        }
        prop_assert!(h.sim.table_names(TARGETS[0]).is_empty(), "a drill leaves no table");
        Ok(())
    })
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 48,
        failure_persistence: Some(Box::new(
            proptest::test_runner::FileFailurePersistence::WithSource("regressions"),
        )),
        ..ProptestConfig::default()
    })]

    #[test]
    fn scheduling_respects_dependencies_and_limits_and_always_ends(case in case()) {
        run_case(&case)?;
    }
}
