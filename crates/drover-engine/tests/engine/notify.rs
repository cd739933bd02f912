//! Events and metrics of a run, on the simulator: a run says when it starts, when a step fails
//! and when it ends, to every channel; a channel that cannot be reached never changes the run;
//! `--publish-metrics` puts the run's RTO and outcome per target.

use drover_engine::Outcome;
use drover_engine::metrics;
use drover_engine::notify::{Event, RUN_STATE_CHANGE, STEP_FAILURE};
use drover_plan::Mode;
use drover_sim::{Faults, Sent};

use super::{DEMO, Harness, Limits, RUN_ID, plan};

const TOPIC: &str = "arn:aws:sns:us-east-1:123456789012:dr-alerts";

fn harness() -> Harness {
    let text = format!(
        "{DEMO}notify:\n  eventbridge: {{region: us-east-1, event_bus: default}}\n  sns: {{topic_arn: \"{TOPIC}\"}}\n"
    );
    Harness::new(plan(&text), &text)
}

fn on_bus(h: &Harness) -> Vec<Event> {
    h.sim
        .sent()
        .into_iter()
        .filter_map(|s| match s {
            Sent::Event { region, bus, event, .. } => {
                assert_eq!((region.as_str(), bus.as_str()), ("us-east-1", "default"));
                Some(event)
            }
            _ => None,
        })
        .collect()
}

fn on_topic(h: &Harness) -> Vec<Event> {
    h.sim
        .sent()
        .into_iter()
        .filter_map(|s| match s {
            Sent::Message { topic_arn, event, .. } if topic_arn == TOPIC => Some(event),
            _ => None,
        })
        .collect()
}

fn states(events: &[Event]) -> Vec<(&str, &str)> {
    events.iter().map(|e| (e.detail_type.as_str(), e.detail.state.as_str())).collect()
}

#[tokio::test(start_paused = true)]
async fn a_failed_restore_is_told_at_once_and_in_the_run_end() {
    let h = harness();
    h.sim.set_faults(Faults {
        fail_restores_of: ["orders-drill-0123abcd".to_owned()].into(),
        ..Faults::default()
    });
    let report = h.start(Mode::Drill, RUN_ID, Limits::default(), None).await.unwrap();
    assert!(matches!(report.outcome, Outcome::Failed { .. }), "{:?}", report.outcome);
    let events = on_bus(&h);
    assert_eq!(
        states(&events),
        [
            (RUN_STATE_CHANGE, "STARTED"),
            (STEP_FAILURE, "STEP_FAILED"),
            (RUN_STATE_CHANGE, "FAILED")
        ],
        "{events:#?}"
    );
    let failed = &events[1].detail.failed_tables;
    assert_eq!(failed.len(), 1);
    assert_eq!((failed[0].table.as_str(), failed[0].step.as_str()), ("orders", "restore"));
    assert_eq!(failed[0].target, "us-west-2");
    let end = &events[2].detail;
    assert_eq!(end.run_id.as_deref(), Some(RUN_ID));
    assert_eq!((end.plan.as_str(), end.mode.as_deref()), ("test", Some("drill")));
    assert_eq!(end.outcome.as_deref(), Some("failed"));
    assert!(end.failed_tables.iter().any(|f| f.table == "orders" && f.step == "restore"));
    // The RTO was not achieved (not every table was validated); its objective is said.
    let rto = end.rto.as_ref().unwrap();
    assert_eq!((rto.achieved_seconds, rto.objective_seconds), (None, Some(86_400.0)));
    // The topic heard the same, in the same order.
    assert_eq!(on_topic(&h), events);
}

#[tokio::test(start_paused = true)]
async fn a_bus_that_throttles_for_ever_never_changes_the_run() {
    let h = harness();
    h.sim.set_faults(Faults { throttle_ops: ["PutEvents".to_owned()].into(), ..Faults::default() });
    let report = h.start(Mode::Drill, RUN_ID, Limits::default(), None).await.unwrap();
    assert_eq!(report.outcome, Outcome::Succeeded);
    assert!(on_bus(&h).is_empty());
    // Each of the two events was retried until the delivery gave up.
    let calls = h.sim.with(|w| w.calls.get("PutEvents").copied().unwrap_or(0));
    assert!(calls > 4, "{calls}");
    let topic = on_topic(&h);
    assert_eq!(states(&topic), [(RUN_STATE_CHANGE, "STARTED"), (RUN_STATE_CHANGE, "SUCCEEDED")]);
    let rto = topic[1].detail.rto.as_ref().unwrap();
    assert_eq!(rto.met, Some(true));
    assert!(rto.achieved_seconds.unwrap() > 0.0);
}

#[tokio::test(start_paused = true)]
async fn a_bus_that_throttles_twice_gets_every_event() {
    let h = harness();
    h.sim.set_faults(Faults { throttle_next: 2, ..Faults::default() });
    let report = h.start(Mode::Drill, RUN_ID, Limits::default(), None).await.unwrap();
    assert_eq!(report.outcome, Outcome::Succeeded);
    assert_eq!(
        states(&on_bus(&h)),
        [(RUN_STATE_CHANGE, "STARTED"), (RUN_STATE_CHANGE, "SUCCEEDED")]
    );
}

#[tokio::test(start_paused = true)]
async fn a_resumed_run_says_so() {
    let h = harness();
    h.sim.set_faults(Faults {
        fail_next: [(drover_sim::JobKind::Copy, 1)].into(),
        ..Faults::default()
    });
    let first = h.start(Mode::Drill, RUN_ID, Limits::default(), None).await.unwrap();
    assert!(matches!(first.outcome, Outcome::Failed { .. }));
    let second = h.resume(RUN_ID, Limits::default()).await;
    assert_eq!(second.outcome, Outcome::Succeeded);
    let events = on_bus(&h);
    let s = states(&events);
    assert_eq!(s.first(), Some(&(RUN_STATE_CHANGE, "STARTED")));
    assert_eq!(&s[s.len() - 2..], [(RUN_STATE_CHANGE, "RESUMED"), (RUN_STATE_CHANGE, "SUCCEEDED")]);
}

#[tokio::test(start_paused = true)]
async fn a_run_puts_its_rto_and_outcome_per_target() {
    let mut h = Harness::new(plan(DEMO), DEMO);
    h.publish_metrics = true;
    let report = h.start(Mode::Drill, RUN_ID, Limits::default(), None).await.unwrap();
    assert_eq!(report.outcome, Outcome::Succeeded);
    let data: Vec<(String, metrics::Datum)> = h
        .sim
        .sent()
        .into_iter()
        .filter_map(|s| match s {
            Sent::Metric { region, namespace, datum } => {
                assert_eq!(namespace, metrics::NAMESPACE);
                Some((region, datum))
            }
            _ => None,
        })
        .collect();
    let get = |name: &str| {
        data.iter().find(|(_, d)| d.name == name).unwrap_or_else(|| panic!("no {name}: {data:?}"))
    };
    let (region, ok) = get(metrics::RUN_SUCCEEDED);
    assert_eq!((region.as_str(), ok.value), ("us-west-2", 1.0));
    assert_eq!(
        ok.dimensions,
        [
            ("Plan", "test".to_owned()),
            ("Mode", "drill".to_owned()),
            ("Target", "us-west-2".to_owned())
        ]
    );
    assert!(get(metrics::RTO_ACHIEVED).1.value > 0.0);
    assert_eq!(get(metrics::RTO_OBJECTIVE).1.value, 86_400.0);
    assert_eq!(get(metrics::FAILED_TABLES).1.value, 0.0);
    // No notify: no events.
    assert!(!h.sim.sent().iter().any(|s| matches!(s, Sent::Event { .. } | Sent::Message { .. })));
}
