//! Runs that speak up, end to end through the binary and the SDK against the emulator: a drill
//! with a passing and a failing validation hook sends its events to EventBridge (read back
//! through the rule's SQS target) and SNS (through a subscribed queue) and puts its metrics,
//! read back with GetMetricData over CBOR; `check --publish-metrics` puts the recovery points'
//! age, which falls after `drover backup`, and a failed check sends a failure event.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use crate::aws::{DST, FAST_POLLS};
use crate::common::{Emulator, drover_aws};

const SRC: &str = "us-east-1";

struct Setup {
    emu: Emulator,
    dir: tempfile::TempDir,
    plan: PathBuf,
    sinks: Value,
}

/// A `#!/bin/sh` script `dir/name.sh` running `body`.
fn script(dir: &Path, name: &str, body: &str) {
    let path = dir.join(format!("{name}.sh"));
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    let mut perms = std::fs::metadata(&path).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(&path, perms).unwrap();
}

fn setup() -> Setup {
    let emu = Emulator::start(0.5);
    let seeded = emu.fixture(
        "seed",
        &json!({"source": SRC, "targets": [DST], "source_vault": "prod-vault",
        "target_vaults": {DST: "dr-vault"},
        "tables": [
            {"name": "customers", "items": 6, "canaries": [{"pk": "CUSTOMER#1"}]},
            {"name": "orders", "items": 5},
            {"name": "invoices", "items": 4},
        ]}),
    );
    let key = seeded["keys"][DST].as_str().unwrap().to_owned();
    let sinks = emu
        .fixture("notify-sinks", &json!({"region": SRC, "bus": "default", "topic": "dr-alerts"}));
    let topic = sinks["topic_arn"].as_str().unwrap().to_owned();
    let dir = tempfile::tempdir().unwrap();
    script(dir.path(), "read-a-customer", "echo \"read $DROVER_RESTORED_TABLE\"");
    script(
        dir.path(),
        "read-an-order",
        "echo 'order ORDER#1 not found through the API' >&2\nexit 3",
    );
    let yaml = format!(
        "version: 1
name: shop-notify
source: {{region: {SRC}, backup_vault: prod-vault}}
iam_role_arn: arn:aws:iam::123456789012:role/drover-backup
objectives: {{rpo: 1h, rto: 2h}}
targets:
  - {{region: {DST}, backup_vault: dr-vault, kms_key_arn: \"{key}\"}}
tables:
  - name: customers
    validate:
      min_items: 6
      hooks: [{{name: read-a-customer, run: [\"./read-a-customer.sh\"], timeout: 30s}}]
  - name: orders
    depends_on: [customers]
    validate:
      hooks: [{{name: read-an-order, run: [\"./read-an-order.sh\"], timeout: 30s}}]
  - name: invoices
    depends_on: [orders]
notify:
  eventbridge: {{region: {SRC}, event_bus: default}}
  sns: {{topic_arn: \"{topic}\"}}
"
    );
    let plan = dir.path().join("shop-notify.yaml");
    std::fs::write(&plan, yaml).unwrap();
    Setup { emu, dir, plan, sinks }
}

impl Setup {
    fn cli(&self, args: &[&str]) -> crate::common::Run {
        let url = self.emu.url();
        let state = self.dir.path().join("state");
        let mut all = args.to_vec();
        all.extend(["--cloud", "aws", "--endpoint-url", &url]);
        if matches!(args.first(), Some(&("drill" | "backup"))) {
            all.extend(FAST_POLLS);
            all.extend(["--state", state.to_str().unwrap()]);
        }
        drover_aws(&all)
    }

    fn plan(&self) -> &str {
        self.plan.to_str().unwrap()
    }

    /// The messages in a queue now, parsed.
    fn drain(&self, queue: &str) -> Vec<Value> {
        let url = self.sinks[queue].as_str().unwrap();
        let out = self.emu.fixture("drain-queue", &json!({"region": SRC, "queue_url": url}));
        out["messages"].as_array().cloned().unwrap_or_default()
    }

    /// A statistic of a metric in `region` over the last half hour (one period: one value),
    /// read with GetMetricData: the metrics are of standard resolution, so two data put in
    /// the same minute are told apart by statistics, not timestamps.
    fn metric(&self, region: &str, name: &str, dims: &Value, stat: &str) -> f64 {
        let now = now_s();
        let out = self.emu.fixture(
            "metric-values",
            &json!({"region": region, "namespace": "Drover", "metric": name, "dimensions": dims,
                    "start": now - 1800, "end": now + 60, "period": 3600, "stat": stat}),
        );
        let values = out["values"].as_array().unwrap();
        assert_eq!(values.len(), 1, "{name} {dims} {stat}: {out}");
        values[0].as_f64().unwrap()
    }
}

fn now_s() -> i64 {
    i64::try_from(SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()).unwrap()
}

/// Events read from the EventBridge queue: (detail-type, detail).
fn events(messages: &[Value]) -> Vec<(String, Value)> {
    messages
        .iter()
        .map(|m| {
            assert_eq!(m["source"], "drover", "{m}");
            (m["detail-type"].as_str().unwrap().to_owned(), m["detail"].clone())
        })
        .collect()
}

fn states(events: &[(String, Value)]) -> Vec<String> {
    events.iter().map(|(_, d)| d["state"].as_str().unwrap().to_owned()).collect()
}

#[test]
fn a_drill_with_a_failing_hook_is_heard_on_the_bus_the_topic_and_in_metrics() {
    let s = setup();
    let run = s.cli(&["drill", s.plan(), "--run-id", "notify-e2e-0000aaaa", "--publish-metrics"]);
    assert_eq!(run.code, 1, "{}", run.transcript());

    // The report: the passing hook passed, the failing one failed its validation, invoices
    // (which needs orders) was blocked.
    let report = drover_aws(&[
        "report",
        "notify-e2e-0000aaaa",
        "--format",
        "json",
        "--state-dir",
        s.dir.path().join("state").to_str().unwrap(),
    ]);
    assert_eq!(report.code, 0, "{}", report.transcript());
    let report: Value = serde_json::from_str(&report.stdout).unwrap();
    let table = |name: &str| {
        report["tables"].as_array().unwrap().iter().find(|t| t["table"] == name).unwrap().clone()
    };
    let phase = |t: &Value, step: &str| {
        t["steps"].as_array().unwrap().iter().find(|x| x["step"] == step).unwrap()["phase"].clone()
    };
    let customers = table("customers");
    assert_eq!(phase(&customers, "validate"), "succeeded");
    assert!(customers["checks"].to_string().contains("read-a-customer"), "{customers}");
    let orders = table("orders");
    assert_eq!(phase(&orders, "validate"), "failed");
    let detail = orders["steps"].to_string();
    assert!(
        detail.contains("read-an-order") && detail.contains("not found through the API"),
        "{detail}"
    );
    assert_eq!(phase(&table("invoices"), "restore"), "blocked");

    // EventBridge, through the rule's SQS target: start, the failed step, the end.
    let on_bus = events(&s.drain("events_queue_url"));
    assert_eq!(states(&on_bus), ["STARTED", "STEP_FAILED", "FAILED"], "{on_bus:#?}");
    assert_eq!(on_bus[0].0, "Drover Run State Change");
    assert_eq!(on_bus[1].0, "Drover Step Failure");
    let failed = &on_bus[1].1["failed_tables"][0];
    assert_eq!(
        (failed["table"].as_str(), failed["step"].as_str()),
        (Some("orders"), Some("validate"))
    );
    assert_eq!(failed["target"], DST);
    let end = &on_bus[2].1;
    assert_eq!(end["version"], 1);
    assert_eq!(end["run_id"], "notify-e2e-0000aaaa");
    assert_eq!((end["plan"].as_str(), end["mode"].as_str()), (Some("shop-notify"), Some("drill")));
    assert_eq!(end["outcome"], "failed");
    assert_eq!(end["rto"]["objective_seconds"], 7200.0);
    assert!(end["rto"]["achieved_seconds"].is_null(), "{end}");
    assert_eq!(end["rpo"]["objective_seconds"], 3600.0);
    assert!(end["rpo"]["achieved_seconds"].as_f64().is_some(), "{end}");

    // SNS, through a subscribed queue: the same three, each with a subject.
    let on_topic = s.drain("sns_queue_url");
    assert_eq!(on_topic.len(), 3, "{on_topic:#?}");
    let bodies: Vec<Value> = on_topic.iter().map(|m| m["Message"].clone()).collect();
    assert_eq!(states(&events(&bodies)), ["STARTED", "STEP_FAILED", "FAILED"]);
    let subject = on_topic[2]["Subject"].as_str().unwrap();
    assert!(subject.starts_with("drover drill of shop-notify"), "{subject}");

    // CloudWatch, read with GetMetricData: the run failed in the target, one table failed.
    let dims = json!({"Plan": "shop-notify", "Mode": "drill", "Target": DST});
    assert_eq!(s.metric(DST, "RunSucceeded", &dims, "Maximum"), 0.0);
    assert_eq!(s.metric(DST, "FailedTables", &dims, "Maximum"), 1.0);
    assert_eq!(s.metric(DST, "RtoObjectiveSeconds", &dims, "Maximum"), 7200.0);
}

#[test]
fn check_publish_metrics_shows_the_recovery_point_age_fall_after_a_backup() {
    let s = setup();
    let per_table = |t: &str| json!({"Plan": "shop-notify", "Target": DST, "Table": t});
    let per_target = json!({"Plan": "shop-notify", "Target": DST});

    // No recovery point yet: the check fails, says so as metrics, and sends one failure event.
    let first = s.cli(&["check", s.plan(), "--publish-metrics"]);
    assert_eq!(first.code, 1, "{}", first.transcript());
    assert_eq!(s.metric(DST, "MissingRecoveryPoints", &per_target, "Maximum"), 3.0);
    assert_eq!(s.metric(DST, "MissingRecoveryPoints", &per_table("orders"), "Maximum"), 1.0);
    assert_eq!(s.metric(DST, "RpoObjectiveSeconds", &per_table("orders"), "Maximum"), 3600.0);
    let failure = events(&s.drain("events_queue_url"));
    assert_eq!(failure.len(), 1, "{failure:#?}");
    assert_eq!(failure[0].0, "Drover Readiness Check Failure");
    assert_eq!(failure[0].1["findings"].as_array().unwrap().len(), 3);

    // A backup, then a check 4 s later: the age is at least 4 s.
    let backup = s.cli(&["backup", s.plan()]);
    assert_eq!(backup.code, 0, "{}", backup.transcript());
    std::thread::sleep(Duration::from_secs(4));
    let aged = s.cli(&["check", s.plan(), "--publish-metrics"]);
    assert_eq!(aged.code, 0, "{}", aged.transcript());
    let oldest = s.metric(DST, "RecoveryPointAgeSeconds", &per_table("orders"), "Maximum");
    assert!(oldest >= 4.0, "{oldest}");
    assert_eq!(s.metric(DST, "MissingRecoveryPoints", &per_target, "Minimum"), 0.0);
    // The backup run said when it started and ended; the passing check said nothing.
    let since = events(&s.drain("events_queue_url"));
    let said: Vec<(&str, &str, &str)> = since
        .iter()
        .map(|(t, d)| (t.as_str(), d["mode"].as_str().unwrap(), d["state"].as_str().unwrap()))
        .collect();
    assert_eq!(
        said,
        [
            ("Drover Run State Change", "backup", "STARTED"),
            ("Drover Run State Change", "backup", "SUCCEEDED")
        ]
    );

    // Another backup, and the check right after: the age falls to about zero.
    let backup = s.cli(&["backup", s.plan()]);
    assert_eq!(backup.code, 0, "{}", backup.transcript());
    let fresh = s.cli(&["check", s.plan(), "--publish-metrics"]);
    assert_eq!(fresh.code, 0, "{}", fresh.transcript());
    let ages = per_table("orders");
    assert_eq!(s.metric(DST, "RecoveryPointAgeSeconds", &ages, "SampleCount"), 2.0);
    let newest = s.metric(DST, "RecoveryPointAgeSeconds", &ages, "Minimum");
    // About zero: the point is as old as the backup run that made it took, and the 4 s wait
    // is gone.
    assert!(newest <= oldest - 3.0, "the age falls: {newest} after {oldest}");
}
