//! The plan's validation hooks, with a runner that records what it was asked and answers as
//! told: a failing table hook fails its validation and blocks its dependents; after_target
//! hooks run once every table of the target is validated, before teardown; after_run hooks run
//! once at the end with the outcome; a resumed run skips the hooks that passed.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use drover_engine::Outcome;
use drover_engine::hooks::{HookCall, HookOutcome, HookRunner};
use drover_engine::journal::CrashPoint;
use drover_engine::state::Phase;
use drover_plan::{Hook, Mode, StepKind};

use super::{DEMO, Harness, Limits, RUN_ID, key, plan};

/// Records every call; hooks named in `fail` exit 1.
#[derive(Default)]
struct Recorder {
    calls: Mutex<Vec<HookCall>>,
    fail: Mutex<Vec<String>>,
}

#[async_trait]
impl HookRunner for Recorder {
    async fn run(&self, call: &HookCall) -> HookOutcome {
        self.calls.lock().unwrap().push(call.clone());
        let failed = self.fail.lock().unwrap().contains(&call.name);
        HookOutcome {
            name: call.name.clone(),
            exit_code: Some(i32::from(failed)),
            timed_out: false,
            error: None,
            output: if failed { "order ORDER#1 not found via the API".into() } else { "ok".into() },
            truncated_bytes: 0,
            duration_ms: 5,
        }
    }
}

fn hook(name: &str) -> Hook {
    Hook {
        name: name.to_owned(),
        run: vec![format!("./{name}.sh")],
        timeout: Duration::from_secs(60),
    }
}

fn harness(fail: &[&str]) -> (Harness, Arc<Recorder>) {
    let mut p = plan(DEMO);
    p.tables[0].validate.hooks = vec![hook("read-a-customer")];
    p.tables[1].validate.hooks = vec![hook("read-an-order"), hook("list-orders")];
    p.hooks.after_target = vec![hook("app-smoke")];
    p.hooks.after_run = vec![hook("ticket")];
    let mut h = Harness::new(p, DEMO);
    let recorder = Arc::new(Recorder {
        fail: Mutex::new(fail.iter().map(|s| (*s).to_owned()).collect()),
        ..Recorder::default()
    });
    h.hooks = Some(recorder.clone());
    (h, recorder)
}

fn names(r: &Recorder) -> Vec<String> {
    r.calls.lock().unwrap().iter().map(|c| c.name.clone()).collect()
}

#[tokio::test(start_paused = true)]
async fn hooks_run_in_order_with_the_restored_names_and_after_run_last() {
    let (h, r) = harness(&[]);
    let report = h.start(Mode::Drill, RUN_ID, Limits::default(), None).await.unwrap();
    assert_eq!(report.outcome, Outcome::Succeeded, "{:?}", report.state.steps);
    assert_eq!(
        names(&r),
        ["read-a-customer", "read-an-order", "list-orders", "app-smoke", "ticket"]
    );
    let calls = r.calls.lock().unwrap().clone();
    let order = &calls[1];
    assert_eq!(order.env["DROVER_TABLE"], "orders");
    assert_eq!(order.env["DROVER_RESTORED_TABLE"], "orders-drill-0123abcd");
    assert_eq!(order.env["DROVER_REGION"], "us-west-2");
    assert_eq!(order.env["DROVER_MODE"], "drill");
    assert_eq!(order.env["DROVER_RUN_ID"], RUN_ID);
    let tables: serde_json::Value =
        serde_json::from_str(order.tables_json.as_deref().unwrap()).unwrap();
    assert_eq!(tables["tables"]["customers"]["restored_name"], "customers-drill-0123abcd");
    assert!(
        tables["tables"]["customers"]["arn"]
            .as_str()
            .unwrap()
            .ends_with("table/customers-drill-0123abcd")
    );
    // The after_target hook sees every table, none of them torn down yet.
    assert!(!calls[3].env.contains_key("DROVER_TABLE"));
    let app: serde_json::Value =
        serde_json::from_str(calls[3].tables_json.as_deref().unwrap()).unwrap();
    assert_eq!(app["tables"].as_object().unwrap().len(), 3);
    let hooks_end =
        report.state.steps[&key("*", Some("us-west-2"), StepKind::Hooks)].ended_at.unwrap();
    let teardown_began =
        report.state.steps[&key("orders", Some("us-west-2"), StepKind::Teardown)].began_at.unwrap();
    assert!(hooks_end <= teardown_began, "teardown began before the after_target hooks ended");
    assert_eq!(calls[4].env["DROVER_OUTCOME"], "succeeded");
    assert_eq!(report.state.after_run.len(), 1);
    // The report lists the run's own hooks; the validation's checks name the table's.
    let rr = drover_engine::report::RunReport::new(&h.plan, &report.state);
    let listed: Vec<(String, String, bool)> =
        rr.hooks.iter().map(|x| (x.when.clone(), x.name.clone(), x.passed)).collect();
    assert_eq!(
        listed,
        [
            ("after_target us-west-2".to_owned(), "app-smoke".to_owned(), true),
            ("after_run".to_owned(), "ticket".to_owned(), true)
        ]
    );
    assert!(rr.to_markdown().contains("- after_run `ticket`: passed, exit 0"));
    let validate =
        report.state.output(&key("orders", Some("us-west-2"), StepKind::Validate)).unwrap();
    let text = format!("{validate:?}");
    assert!(text.contains("hook `read-an-order`: exit 0"), "{text}");
}

#[tokio::test(start_paused = true)]
async fn a_failing_hook_fails_its_validation_and_blocks_its_dependents() {
    let (h, r) = harness(&["read-an-order"]);
    let report = h.start(Mode::Drill, RUN_ID, Limits::default(), None).await.unwrap();
    let Outcome::Failed { failed, .. } = report.outcome else { panic!("{:?}", report.outcome) };
    let validate = key("orders", Some("us-west-2"), StepKind::Validate);
    assert_eq!(failed, std::slice::from_ref(&validate));
    let Phase::Failed { message } = report.state.phase(&validate) else { panic!() };
    assert!(
        message.contains("hook `read-an-order` failed: exit 1")
            && message.contains("ORDER#1 not found"),
        "{message}"
    );
    // The second hook of the table, the dependent table and the after_target hooks never ran.
    assert!(matches!(
        report.state.phase(&key("invoices", Some("us-west-2"), StepKind::Restore)),
        Phase::Blocked { .. }
    ));
    assert!(matches!(
        report.state.phase(&key("*", Some("us-west-2"), StepKind::Hooks)),
        Phase::Blocked { .. }
    ));
    assert_eq!(names(&r), ["read-a-customer", "read-an-order", "ticket"]);
    assert_eq!(r.calls.lock().unwrap()[2].env["DROVER_OUTCOME"], "failed");
    // Teardown still ran (it waits for the validations and hooks to be finished, not passed).
    assert!(h.sim.table_names("us-west-2").is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_resumed_run_skips_the_hooks_that_passed_and_runs_the_interrupted_one() {
    // Crash right after the first hook of `orders` is journaled: that one passed, the second
    // had not run.
    let (baseline, _) = harness(&[]);
    let report = baseline.start(Mode::Drill, RUN_ID, Limits::default(), None).await.unwrap();
    let entries = super::entries(&baseline, RUN_ID);
    let after = entries
        .iter()
        .position(|e| matches!(&e.record, drover_engine::journal::Record::Step { step, event: drover_engine::state::StepEvent::HookFinished(o) } if step.table == "orders" && o.name == "read-an-order"))
        .unwrap() as u64
        + 1;
    assert!(report.state.records > after);
    let (h, r) = harness(&[]);
    let crashed = h
        .start(Mode::Drill, RUN_ID, Limits::default(), Some(CrashPoint { after, torn: false }))
        .await;
    assert!(crashed.is_err());
    let before = names(&r);
    let report = h.resume(RUN_ID, Limits::default()).await;
    assert_eq!(report.outcome, Outcome::Succeeded);
    let all = names(&r);
    let resumed: Vec<&String> = all[before.len()..].iter().collect();
    assert!(
        !resumed.iter().any(|n| *n == "read-an-order" || *n == "read-a-customer"),
        "{resumed:?}"
    );
    assert_eq!(resumed, ["list-orders", "app-smoke", "ticket"]);
    let validate =
        report.state.output(&key("orders", Some("us-west-2"), StepKind::Validate)).unwrap();
    assert!(
        format!("{validate:?}")
            .contains("hook `read-an-order`: passed (before the run was resumed)")
    );
    let _ = BTreeMap::<(), ()>::new();
}

/// A failed run that is resumed and succeeds tells its after_run hooks so: they run again with
/// the new outcome. (A recover: a failed drill's teardown takes its tables away.)
#[tokio::test(start_paused = true)]
async fn after_run_hooks_run_again_when_a_failed_run_is_resumed() {
    let (h, r) = harness(&["read-an-order"]);
    let report = h.start(Mode::Recover, RUN_ID, Limits::default(), None).await.unwrap();
    assert!(matches!(report.outcome, Outcome::Failed { .. }));
    r.fail.lock().unwrap().clear();
    let report = h.resume(RUN_ID, Limits::default()).await;
    assert_eq!(report.outcome, Outcome::Succeeded, "{:?}", report.state.steps);
    let outcomes: Vec<String> = r
        .calls
        .lock()
        .unwrap()
        .iter()
        .filter(|c| c.name == "ticket")
        .map(|c| c.env["DROVER_OUTCOME"].clone())
        .collect();
    assert_eq!(outcomes, ["failed", "succeeded"]);
    assert_eq!(report.state.after_run.len(), 1);
}
