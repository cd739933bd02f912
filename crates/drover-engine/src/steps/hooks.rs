//! Running the plan's hooks from steps and at the end of a run: what each is told (its
//! environment and the tables file), journaling each outcome when it ends, and skipping, in a
//! resumed attempt, the hooks that already passed.

use std::collections::BTreeMap;

use drover_plan::{Hook, Mode};

use super::{StepResult, restored_name};
use crate::context::{Shared, StepError, StepFailure};
use crate::error::EngineError;
use crate::graph::Shape;
use crate::hooks::{HookCall, HookOutcome};
use crate::state::{RunEvent, StepEvent, StepKey, StepOutput};

pub(crate) use crate::graph::ALL_TABLES;

/// The environment every hook of a run gets.
fn base_env(shared: &Shared) -> BTreeMap<String, String> {
    let mode = match (shared.mode(), shared.pitr.is_some()) {
        (Mode::Drill, true) => "drill-pitr".to_owned(),
        (mode, _) => mode.as_str().to_owned(),
    };
    BTreeMap::from([
        ("DROVER_RUN_ID".to_owned(), shared.run_id.clone()),
        ("DROVER_MODE".to_owned(), mode),
        ("DROVER_PLAN".to_owned(), shared.plan.name.clone()),
    ])
}

/// `DROVER_TABLES_JSON`'s document: every table restored in `region`, its restored name and,
/// once restored, its ARN.
fn tables_json(shared: &Shared, region: &str) -> String {
    let shape = shared.with_state(|s| Shape::of(&s.header, false));
    let state = shared.state();
    let mut tables = serde_json::Map::new();
    for (place, ids) in shape.places(&shared.plan) {
        if place != region {
            continue;
        }
        for id in ids {
            let t = &shared.plan.table(id).name;
            let key = StepKey {
                table: t.clone(),
                target: Some(region.to_owned()),
                kind: drover_plan::StepKind::Restore,
            };
            let arn = match state.output(&key) {
                Some(StepOutput::Restore { table_arn, .. }) => serde_json::json!(table_arn),
                _ => serde_json::Value::Null,
            };
            tables.insert(
                t.clone(),
                serde_json::json!({"restored_name": restored_name(shared, t, region), "arn": arn}),
            );
        }
    }
    serde_json::json!({"run_id": shared.run_id, "region": region, "tables": tables}).to_string()
}

/// The call of `hook` with `env` and the tables file.
fn call_of(hook: &Hook, env: &BTreeMap<String, String>, tables_json: Option<String>) -> HookCall {
    HookCall {
        name: hook.name.clone(),
        argv: hook.run.clone(),
        timeout: hook.timeout,
        env: env.clone(),
        tables_json,
    }
}

/// Runs `hooks` for step `key` (in order, each journaled as it ends), skipping those that
/// passed earlier in the step's current attempt. The checks they add, or the failure of the
/// first that does not pass.
pub(super) async fn run_for_step(
    shared: &Shared,
    key: &StepKey,
    region: &str,
    hooks: &[Hook],
) -> Result<Vec<String>, StepError> {
    let mut checks = Vec::new();
    if hooks.is_empty() {
        return Ok(checks);
    }
    let Some(runner) = &shared.hooks else {
        checks.extend(hooks.iter().map(|h| format!("hook `{}`: not run (no hook runner)", h.name)));
        return Ok(checks);
    };
    let done: Vec<HookOutcome> =
        shared.with_state(|s| s.steps.get(key).map(|s| s.hooks.clone()).unwrap_or_default());
    let mut env = base_env(shared);
    env.insert("DROVER_REGION".to_owned(), region.to_owned());
    if key.table != ALL_TABLES {
        env.insert("DROVER_TABLE".to_owned(), key.table.clone());
        env.insert("DROVER_RESTORED_TABLE".to_owned(), restored_name(shared, &key.table, region));
    }
    for hook in hooks {
        if done.iter().any(|o| o.name == hook.name && o.passed()) {
            checks.push(format!("hook `{}`: passed (before the run was resumed)", hook.name));
            continue;
        }
        let call = call_of(hook, &env, Some(tables_json(shared, region)));
        tracing::info!(step = %key, hook = %hook.name, "running hook");
        let outcome = runner.run(&call).await;
        shared
            .record(key, StepEvent::HookFinished(outcome.clone()))
            .await
            .map_err(StepError::Engine)?;
        let summary = outcome.summary(hook.timeout);
        if !outcome.passed() {
            let tail = if outcome.output.trim().is_empty() {
                String::new()
            } else {
                format!("; {}", outcome.output_tail())
            };
            return Err(
                StepFailure::new(format!("hook `{}` failed: {summary}{tail}", hook.name)).into()
            );
        }
        checks.push(format!("hook `{}`: {summary}", hook.name));
    }
    Ok(checks)
}

/// The `after_target` step of `region`: the plan's `hooks.after_target`, once every table
/// there is validated.
pub(super) async fn after_target(shared: &Shared, key: &StepKey, region: &str) -> StepResult {
    let hooks = shared.plan.hooks.after_target.clone();
    let checks = run_for_step(shared, key, region, &hooks).await?;
    Ok(StepOutput::Validate { checks, digest: None })
}

/// The plan's `hooks.after_run`, once at the end of the run with its outcome (each journaled;
/// one that ended already is not run again). They report; they do not change the outcome.
pub(crate) async fn after_run(shared: &Shared, success: bool) -> Result<(), EngineError> {
    let hooks = &shared.plan.hooks.after_run;
    let Some(runner) = &shared.hooks else { return Ok(()) };
    let done = shared.with_state(|s| s.after_run.clone());
    let mut env = base_env(shared);
    env.insert(
        "DROVER_OUTCOME".to_owned(),
        if success { "succeeded" } else { "failed" }.to_owned(),
    );
    for hook in hooks {
        if done.iter().any(|o| o.name == hook.name) {
            continue;
        }
        let call = call_of(hook, &env, None);
        tracing::info!(hook = %hook.name, "running after_run hook");
        let outcome = runner.run(&call).await;
        if !outcome.passed() {
            tracing::warn!(hook = %hook.name, result = %outcome.summary(hook.timeout), "after_run hook failed");
        }
        shared.record_run(RunEvent::HookRan(outcome)).await?;
    }
    Ok(())
}
