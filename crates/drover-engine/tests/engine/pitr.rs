//! Point-in-time runs (`recover`, `drill --pitr`) on the simulator: a restore has no client
//! token, so a table is re-attached only when the journal shows this step may have restored it,
//! its `RestoreSummary` names the source and the instant, and no other run owns it.

use drover_engine::ports::{PointInTimeRestore, TableService};
use drover_engine::state::Phase;
use drover_engine::{Outcome, RUN_TAG};
use drover_plan::{Mode, StepKind};

use super::{DEMO, Harness, Limits, RUN_ID, key, plan};

const KEY: &str = "arn:aws:kms:us-west-2:123456789012:key/1111aaaa-22bb-33cc-44dd-555555eeeeee";

/// Restores `customers` to the recover's instant under the name the recover would give it, as
/// somebody else did before the run; tags it as `owner`'s when given.
async fn restored_by_someone_else(h: &Harness, owner: Option<&str>) -> String {
    let pitr = h.header(Mode::Recover, RUN_ID, Limits::default()).options.pitr.unwrap();
    let name = pitr.table_name("customers", "us-west-2", "0123abcd");
    let source = h.sim.describe_table("us-east-1", "customers").await.unwrap().unwrap();
    let request = PointInTimeRestore {
        region: "us-west-2".to_owned(),
        source_table_arn: source.arn,
        table_name: name.clone(),
        restore_time: pitr.at,
        kms_key_arn: Some(KEY.to_owned()),
    };
    let arn = h.sim.restore_to_point_in_time(&request).await.unwrap();
    // Until it is ready.
    tokio::time::advance(std::time::Duration::from_secs(3 * 3600)).await;
    if let Some(owner) = owner {
        let tags = std::collections::BTreeMap::from([(RUN_TAG.to_owned(), owner.to_owned())]);
        h.sim.tag_table("us-west-2", &arn, &tags).await.unwrap();
    }
    name
}

async fn assert_refused(h: &Harness, name: &str) {
    let report = h.start(Mode::Recover, RUN_ID, Limits::default(), None).await.unwrap();
    let Outcome::Failed { failed, .. } = report.outcome else { panic!("{:?}", report.outcome) };
    let restore = key("customers", Some("us-west-2"), StepKind::Restore);
    assert_eq!(failed, std::slice::from_ref(&restore));
    let Phase::Failed { message } = report.state.phase(&restore) else { panic!() };
    assert!(
        message.contains(&format!("`{name}` already exists"))
            && message.contains("not this run's restore"),
        "{message}"
    );
    // Its dependents are blocked; the table that does not depend on it is recovered.
    let orders = key("orders", Some("us-west-2"), StepKind::Restore);
    assert!(matches!(report.state.phase(&orders), Phase::Blocked { .. }));
    let tags = h
        .sim
        .list_tags(
            "us-west-2",
            &h.sim.describe_table("us-west-2", name).await.unwrap().unwrap().arn,
        )
        .await
        .unwrap();
    assert_ne!(
        tags.get(RUN_TAG).map(String::as_str),
        Some(RUN_ID),
        "the run took a table it did not restore"
    );
}

#[tokio::test(start_paused = true)]
async fn a_recover_never_takes_a_table_restored_to_its_instant_by_someone_else() {
    let h = Harness::new(plan(DEMO), DEMO);
    let name = restored_by_someone_else(&h, None).await;
    assert_refused(&h, &name).await;
}

#[tokio::test(start_paused = true)]
async fn a_recover_never_takes_a_table_another_run_owns() {
    let h = Harness::new(plan(DEMO), DEMO);
    let name = restored_by_someone_else(&h, Some("other-20261124t000000z-77777777")).await;
    assert_refused(&h, &name).await;
}

#[tokio::test(start_paused = true)]
async fn a_recover_restores_every_table_to_the_instant_in_dependency_order() {
    let h = Harness::new(plan(DEMO), DEMO);
    let report = h.start(Mode::Recover, RUN_ID, Limits::default(), None).await.unwrap();
    assert_eq!(report.outcome, Outcome::Succeeded, "{:?}", report.state.steps);
    super::assert_order(&h, RUN_ID);
    let pitr = report.state.header.options.pitr.clone().unwrap();
    let names = h.sim.table_names("us-west-2");
    let want: Vec<String> = ["customers", "invoices", "orders"]
        .iter()
        .map(|t| pitr.table_name(t, "us-west-2", "0123abcd"))
        .collect();
    assert_eq!(names, want);
    // No backup, copy or restore job: point-in-time recovery only; each table restored once.
    assert!(h.sim.with(|w| w.jobs_started.is_empty()));
    assert!(h.sim.with(|w| w.tables_restored.values().all(|n| *n == 1)));
    let validate =
        report.state.output(&key("orders", Some("us-west-2"), StepKind::Validate)).unwrap();
    let text = format!("{validate:?}");
    assert!(text.contains("(RestoreSummary)") && text.contains("as the source's"), "{text}");
}

/// A restore whose answer is lost (a timeout after the service created the table) is retried;
/// the retry is answered TableInUse while the table is CREATING: the step finds the table its
/// first call created by its `RestoreSummary`, and restores nothing twice.
#[tokio::test(start_paused = true)]
async fn a_restore_whose_answer_was_lost_is_found_by_its_restore_summary() {
    let h = Harness::new(plan(DEMO), DEMO);
    h.sim.set_faults(drover_sim::Faults {
        lose_answers: std::collections::BTreeMap::from([(
            "RestoreTableToPointInTime".to_owned(),
            3,
        )]),
        ..drover_sim::Faults::default()
    });
    let report = h.start(Mode::Recover, RUN_ID, Limits::default(), None).await.unwrap();
    assert_eq!(report.outcome, Outcome::Succeeded, "{:?}", report.state.steps);
    let restored = h.sim.with(|w| w.tables_restored.clone());
    assert_eq!(restored.len(), 3, "{restored:?}");
    assert!(restored.values().all(|n| *n == 1), "a table was restored twice: {restored:?}");
    let calls = h.sim.with(|w| w.calls.get("RestoreTableToPointInTime").copied());
    assert!(calls.unwrap_or(0) > 3, "no retry met a lost answer: {calls:?}");
}
