//! The events and metrics contract (issue 16) of the AWS adapter, against the emulator
//! (`tests/emulator/notify.py`, `tests/emulator/cbor_front.py`), through
//! `drover_aws::AwsCloud`: an event put on a bus reaches the bus's rule target, an event
//! published to a topic reaches its subscription, metrics put over Smithy RPC v2 CBOR are read
//! back with GetMetricData, and the errors of each map to the kinds the notifier and the
//! metrics publisher tell apart (retry what may pass, give up on the rest).

use std::time::SystemTime;

use drover_engine::ErrorKind;
use drover_engine::metrics::{Datum, MetricService, NAMESPACE, RECOVERY_POINT_AGE, Unit};
use drover_engine::notify::{
    DETAIL_VERSION, Detail, Event, EventService, FailedTable, RUN_STATE_CHANGE, STEP_FAILURE,
};
use drover_engine::ports::Millis;
use serde_json::{Value, json};

use crate::common::Emulator;

const REGION: &str = "us-east-1";
const TARGET: &str = "us-west-2";

fn now_ms() -> Millis {
    let since = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap();
    Millis::try_from(since.as_millis()).unwrap()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

/// An ideal emulator (no passing faults: each test injects its own) and the adapter on it.
fn setup() -> (Emulator, drover_aws::AwsCloud) {
    let emu = Emulator::start_ideal(0.2);
    let aws = drover_aws::AwsCloud::new(drover_aws::AwsOptions {
        endpoint_url: Some(emu.url()),
        emulator_credentials: true,
        ..drover_aws::AwsOptions::default()
    });
    (emu, aws)
}

fn event(detail_type: &str, state: &str, at: Millis) -> Event {
    Event {
        detail_type: detail_type.to_owned(),
        time: at,
        detail: Detail {
            version: DETAIL_VERSION,
            state: state.to_owned(),
            run_id: Some("shop-20260101-1a2b3c4d".to_owned()),
            plan: "shop".to_owned(),
            mode: Some("drill".to_owned()),
            outcome: None,
            started_at: Some("2026-01-01T00:00:00Z".to_owned()),
            rto: None,
            rpo: None,
            failed_tables: if state == "STEP_FAILED" {
                vec![FailedTable {
                    table: "orders".to_owned(),
                    target: TARGET.to_owned(),
                    step: "validate".to_owned(),
                    error: "2 canary items are missing".to_owned(),
                }]
            } else {
                Vec::new()
            },
            findings: Vec::new(),
        },
    }
}

/// The bus `ops` with a rule (source `drover`) to a queue, and the topic `dr-alerts` with a
/// queue subscribed.
fn sinks(emu: &Emulator) -> Value {
    emu.fixture("notify-sinks", &json!({"region": REGION, "bus": "ops", "topic": "dr-alerts"}))
}

fn drain(emu: &Emulator, queue: &Value) -> Vec<Value> {
    let out = emu
        .fixture("drain-queue", &json!({"region": REGION, "queue_url": queue, "wait_seconds": 5}));
    out["messages"].as_array().unwrap().clone()
}

#[test]
fn put_event_reaches_the_bus_by_name_and_by_arn() {
    let (emu, aws) = setup();
    let sinks = sinks(&emu);
    let at = now_ms();
    let started = event(RUN_STATE_CHANGE, "STARTED", at);
    let failed = event(STEP_FAILURE, "STEP_FAILED", at + 1_000);
    let bus_arn = sinks["bus_arn"].as_str().unwrap();
    let rt = runtime();
    rt.block_on(aws.put_event(REGION, "ops", &started)).unwrap();
    rt.block_on(aws.put_event(REGION, bus_arn, &failed)).unwrap();
    let got = drain(&emu, &sinks["events_queue_url"]);
    assert_eq!(got.len(), 2, "{got:?}");
    for (message, sent) in got.iter().zip([&started, &failed]) {
        assert_eq!(message["source"], "drover");
        assert_eq!(message["detail-type"], sent.detail_type.as_str());
        assert_eq!(message["detail"], serde_json::to_value(&sent.detail).unwrap());
        assert_eq!(message["region"], REGION);
        assert_eq!(
            message["time"],
            drover_engine::run::format_time(sent.time).as_str(),
            "the event's own time"
        );
    }
}

#[test]
fn publish_reaches_the_topic_with_subject_envelope_and_detail_type() {
    let (emu, aws) = setup();
    let sinks = sinks(&emu);
    let failed = event(STEP_FAILURE, "STEP_FAILED", now_ms());
    let topic = sinks["topic_arn"].as_str().unwrap();
    runtime().block_on(aws.publish(topic, &failed)).unwrap();
    let got = drain(&emu, &sinks["sns_queue_url"]);
    assert_eq!(got.len(), 1, "{got:?}");
    let n = &got[0];
    assert_eq!(n["Type"], "Notification");
    assert_eq!(n["TopicArn"], topic);
    assert_eq!(n["Subject"], failed.subject().as_str());
    assert_eq!(n["Message"], failed.envelope(), "the body is the EventBridge envelope");
    assert_eq!(n["MessageAttributes"]["detail-type"]["Type"], "String");
    assert_eq!(n["MessageAttributes"]["detail-type"]["Value"], STEP_FAILURE);
}

#[test]
fn event_errors_map_by_kind() {
    let (emu, aws) = setup();
    let sinks = sinks(&emu);
    let e = event(RUN_STATE_CHANGE, "STARTED", now_ms());
    let rt = runtime();
    // A bus that does not exist: the entry fails (PutEvents answers 200).
    let err = rt.block_on(aws.put_event(REGION, "nope", &e)).unwrap_err();
    assert_eq!(err.kind, ErrorKind::NotFound, "{err:?}");
    assert_eq!(err.op, "PutEvents");
    assert!(err.message.contains("ResourceNotFoundException"), "{}", err.message);
    // Failed entries of a call that succeeded: by their ErrorCode.
    for (code, kind) in
        [("ThrottlingException", ErrorKind::Throttled), ("InternalFailure", ErrorKind::Transient)]
    {
        assert_eq!(emu.control("/_drover/fail-entries", &json!({"code": code})), 200);
        let err = rt.block_on(aws.put_event(REGION, "ops", &e)).unwrap_err();
        assert_eq!(err.kind, kind, "{code}: {err:?}");
        assert!(err.message.contains(code), "{}", err.message);
    }
    // A whole call throttled past the SDK's own attempts.
    assert_eq!(
        emu.control("/_drover/throttle", &json!({"operation": "events:PutEvents", "count": 3})),
        200
    );
    let err = rt.block_on(aws.put_event(REGION, "ops", &e)).unwrap_err();
    assert_eq!(err.kind, ErrorKind::Throttled, "{err:?}");
    // A topic that does not exist.
    let err = rt
        .block_on(aws.publish("arn:aws:sns:us-east-1:123456789012:no-such-topic", &e))
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::NotFound, "{err:?}");
    assert_eq!(err.op, "Publish");
    // A topic ARN that is not one: said before any call.
    let err = rt.block_on(aws.publish("dr-alerts", &e)).unwrap_err();
    assert_eq!(err.kind, ErrorKind::Fatal, "{err:?}");
    assert!(err.message.contains("not an SNS topic ARN"), "{}", err.message);
    // Nothing of the failed deliveries reached the sinks.
    assert!(drain(&emu, &sinks["events_queue_url"]).is_empty());
}

fn datum(value: f64, table: &str, at: Millis) -> Datum {
    Datum {
        name: RECOVERY_POINT_AGE,
        // In the order of their names: moto 5.2.5's GetMetricData (behind `metric-values`)
        // matches dimensions in the order given (its `Dimension.__lt__` is wrong), and the
        // fixture's JSON object reaches it sorted.
        dimensions: vec![
            ("Plan", "shop".to_owned()),
            ("Table", table.to_owned()),
            ("Target", TARGET.to_owned()),
        ],
        value,
        unit: Unit::Seconds,
        timestamp: at,
    }
}

/// The values of `RecoveryPointAgeSeconds` of a table, per minute, oldest first (GetMetricData).
fn values(emu: &Emulator, table: &str, around: Millis) -> Vec<f64> {
    #[allow(clippy::cast_precision_loss)]
    let secs = |ms: Millis| ms as f64 / 1000.0;
    let out = emu.fixture(
        "metric-values",
        &json!({
            "region": TARGET, "namespace": NAMESPACE, "metric": RECOVERY_POINT_AGE,
            "dimensions": {"Plan": "shop", "Target": TARGET, "Table": table},
            "start": secs(around - 600_000), "end": secs(around + 600_000),
            "period": 60, "stat": "Maximum",
        }),
    );
    out["values"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect()
}

#[test]
fn metrics_put_over_cbor_are_read_back() {
    let (emu, aws) = setup();
    // Two minutes apart, so that they fall in two periods.
    let now = now_ms() / 60_000 * 60_000;
    let earlier = now - 120_000;
    let data =
        [datum(3600.0, "orders", earlier), datum(0.0, "orders", now), datum(7.5, "ledger", now)];
    runtime().block_on(aws.put_metric_data(TARGET, NAMESPACE, &data)).unwrap();
    assert_eq!(values(&emu, "orders", now), [3600.0, 0.0]);
    assert_eq!(values(&emu, "ledger", now), [7.5]);
    // The Rust SDK's client speaks only rpc-v2-cbor, which only the emulator's CBOR front
    // serves: the call was logged as CloudWatch's.
    let calls = emu.calls();
    assert!(calls["by_operation"].to_string().contains("PutMetricData"), "{calls}");
    // A thousand data in one call (PutMetricData's limit; the SDK may gzip the body).
    let many: Vec<Datum> = (0..1000).map(|i| datum(f64::from(i), "bulk", now)).collect();
    runtime().block_on(aws.put_metric_data(TARGET, NAMESPACE, &many)).unwrap();
    assert_eq!(values(&emu, "bulk", now), [999.0]);
}

#[test]
fn metric_errors_over_cbor_keep_the_services_code_and_message() {
    let (emu, aws) = setup();
    let rt = runtime();
    let now = now_ms();
    // Invalid data: the service's code (the `x-amzn-query-error` header's, over the body's
    // `__type`) and message, not retried.
    let err = rt
        .block_on(aws.put_metric_data(TARGET, "AWS/Drover", &[datum(1.0, "t", now)]))
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Fatal, "{err:?}");
    assert_eq!(err.op, "PutMetricData");
    assert!(
        err.message.starts_with(
            "InvalidParameterValue: The value AWS/Drover for parameter Namespace is invalid"
        ),
        "{}",
        err.message
    );
    let err = rt
        .block_on(aws.put_metric_data(TARGET, NAMESPACE, &[datum(f64::NAN, "t", now)]))
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Fatal, "{err:?}");
    assert!(err.message.starts_with("InvalidParameterValue: "), "{}", err.message);
    let old = now - 15 * 24 * 3_600_000;
    let err =
        rt.block_on(aws.put_metric_data(TARGET, NAMESPACE, &[datum(1.0, "t", old)])).unwrap_err();
    assert!(err.message.contains("two weeks"), "{}", err.message);
    // Injected answers, in CBOR: throttling and faults past the SDK's attempts, a denial.
    for (code, status, count, kind) in [
        ("ThrottlingException", 400, 3, ErrorKind::Throttled),
        ("InternalServiceError", 500, 3, ErrorKind::Transient),
        ("AccessDenied", 403, 1, ErrorKind::AccessDenied),
    ] {
        let fault = json!({"operation": "cloudwatch:PutMetricData", "count": count, "code": code,
                           "status": status, "message": format!("injected {code}")});
        assert_eq!(emu.control("/_drover/throttle", &fault), 200);
        let err = rt
            .block_on(aws.put_metric_data(TARGET, NAMESPACE, &[datum(1.0, "t", now)]))
            .unwrap_err();
        assert_eq!(err.kind, kind, "{code}: {err:?}");
        assert_eq!(err.message, format!("{code}: injected {code}"));
    }
    // Nothing was stored by the failed calls; a good call after them is.
    assert!(values(&emu, "t", now).is_empty());
    rt.block_on(aws.put_metric_data(TARGET, NAMESPACE, &[datum(2.0, "t", now)])).unwrap();
    assert_eq!(values(&emu, "t", now), [2.0]);
}
