//! `drover status` and `drover runs`, and the summary printed at the end of a run.

use std::fmt::Write as _;

use drover_engine::run;
use drover_engine::state::{Phase, RunState, StepKey, StepOutput};
use drover_plan::{Mode, StepKind};
use serde_json::json;

use crate::args::{ReportArgs, ReportFormat, StateArgs, StatusArgs, StatusFormat};
use crate::exit::{CliError, Exit};
use crate::output;
use crate::state_store;
use crate::support::runtime;

/// Where a run stands, in one word.
pub(crate) fn verdict(state: &RunState) -> &'static str {
    match state.finished {
        Some(true) => "succeeded",
        Some(false) => "failed",
        None if state.interruptions > 0 => "interrupted",
        None => "unfinished",
    }
}

fn duration(ms: i64) -> String {
    drover_plan::format_duration(std::time::Duration::from_millis(
        u64::try_from(ms.max(0)).unwrap_or(0),
    ))
}

/// The time from the start of the run to the last successful validation (the recovery time
/// achieved), when every table was validated.
fn recovery_time(state: &RunState) -> Option<i64> {
    let validations: Vec<&drover_engine::state::StepState> =
        state.steps.iter().filter(|(k, _)| k.kind == StepKind::Validate).map(|(_, s)| s).collect();
    if validations.is_empty()
        || !validations.iter().all(|s| matches!(s.phase, Phase::Succeeded { .. }))
    {
        return None;
    }
    validations.iter().filter_map(|s| s.ended_at).max().map(|end| end - state.started_at)
}

/// A table of every (table, target) with the phase of each step, and the failures.
pub(crate) fn render(state: &RunState) -> String {
    let h = &state.header;
    let mut out = String::new();
    // A simulated run's times are the simulator's, not the wall clock's: say so.
    let simulated = if h.options.simulated() { " (simulated time)" } else { "" };
    let _ = writeln!(
        out,
        "run {} ({} of plan {}), started {}{simulated}: {}",
        h.run_id,
        h.mode.as_str(),
        h.plan_name,
        run::format_time(state.started_at),
        verdict(state)
    );
    let _ = write!(out, "elapsed {}{simulated}", duration(state.last_at - state.started_at));
    if let Some(rt) = recovery_time(state) {
        let _ = write!(out, "; every table restored and validated after {}", duration(rt));
    }
    out.push('\n');
    // Teardown shows only when the run has (or had) teardown steps (not with --keep).
    let mut kinds: Vec<StepKind> = drover_engine::graph::Shape::of(h, true)
        .steps()
        .iter()
        .copied()
        .filter(|k| {
            *k != StepKind::Teardown || state.steps.keys().any(|s| s.kind == StepKind::Teardown)
        })
        .collect();
    // A target's after_target hooks (table `*`), when the plan has them.
    if state.steps.keys().any(|s| s.kind == StepKind::Hooks) {
        kinds.push(StepKind::Hooks);
    }
    // Rows: (table, target) in journal order of first appearance.
    let mut rows: Vec<(String, String)> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for key in state.steps.keys() {
        if let Some(t) = &key.target
            && seen.insert((key.table.as_str(), t.as_str()))
        {
            rows.push((key.table.clone(), t.clone()));
        }
    }
    let width = rows.iter().map(|(t, _)| t.len()).max().unwrap_or(5).max(5);
    let rwidth = rows.iter().map(|(_, r)| r.len()).max().unwrap_or(6).max(6);
    let _ = write!(out, "\n{:<width$}  {:<rwidth$}", "TABLE", "TARGET");
    for k in &kinds {
        let _ = write!(out, "  {:<14}", k.as_str().to_uppercase());
    }
    let trimmed = out.trim_end_matches(' ').len();
    out.truncate(trimmed);
    out.push('\n');
    for (table, target) in &rows {
        let _ = write!(out, "{table:<width$}  {target:<rwidth$}");
        for kind in &kinds {
            let key = StepKey {
                table: table.clone(),
                target: if *kind == StepKind::RecoveryPoint && h.mode != Mode::Failover {
                    None
                } else {
                    Some(target.clone())
                },
                kind: *kind,
            };
            let phase = state.steps.get(&key).map_or("-", |s| s.phase.name());
            let _ = write!(out, "  {phase:<14}");
        }
        let trimmed = out.trim_end_matches(' ').len();
        out.truncate(trimmed);
        out.push('\n');
    }
    for cut in state.cuts.values() {
        let _ = writeln!(
            out,
            "\nconsistent cut in {} at {}{}: skew {} between tables, RPO achieved {}",
            cut.target,
            run::format_time(cut.time),
            if cut.requested { " (as asked with --at)" } else { "" },
            duration(cut.skew()),
            duration(cut.rpo_achieved())
        );
        for (table, p) in &cut.points {
            let late = if cut.late.contains(table) {
                "  (newer than the cut: no earlier point)"
            } else {
                ""
            };
            let _ = writeln!(
                out,
                "  {table:<width$}  {}  {}{late}",
                run::format_time(p.created_at),
                p.arn
            );
        }
        for (table, why) in &cut.missing {
            let _ = writeln!(out, "  {table:<width$}  none: {why}");
        }
    }
    let failures: Vec<(&StepKey, &String)> = state
        .steps
        .iter()
        .filter_map(|(k, s)| match &s.phase {
            Phase::Failed { message } => Some((k, message)),
            _ => None,
        })
        .collect();
    if !failures.is_empty() {
        out.push_str("\nfailed:\n");
        for (k, m) in failures {
            let _ = writeln!(out, "  {k}: {m}");
        }
    }
    let kept: Vec<String> = state
        .steps
        .values()
        .filter_map(|s| match &s.phase {
            Phase::Succeeded { output: StepOutput::Teardown { deleted: false, note, .. } }
                if note.starts_with("kept") =>
            {
                Some(note.clone())
            }
            _ => None,
        })
        .collect();
    for note in kept {
        let _ = writeln!(out, "teardown {note}");
    }
    out
}

/// The run as JSON.
pub(crate) fn to_json(state: &RunState) -> serde_json::Value {
    let h = &state.header;
    let steps: Vec<serde_json::Value> = state
        .steps
        .iter()
        .map(|(k, s)| {
            let mut v = json!({
                "table": k.table,
                "target": k.target,
                "step": k.kind.as_str(),
                "phase": s.phase.name(),
                "attempt": s.attempt,
                "began_at": s.began_at.map(run::format_time),
                "ended_at": s.ended_at.map(run::format_time),
                "job_ids": s.job_ids,
            });
            match &s.phase {
                Phase::Failed { message } => v["error"] = json!(message),
                Phase::Succeeded { output } => v["output"] = json!(output),
                Phase::Blocked { by } => v["blocked_by"] = json!(by.to_string()),
                _ => {}
            }
            v
        })
        .collect();
    json!({
        "run_id": h.run_id,
        "mode": h.mode,
        "plan": h.plan_name,
        "plan_hash": h.plan_hash,
        "state": verdict(state),
        "started_at": run::format_time(state.started_at),
        "last_record_at": run::format_time(state.last_at),
        "time": if h.options.simulated() { "simulated" } else { "wall clock" },
        "recovery_time_seconds": recovery_time(state).map(|ms| ms / 1000),
        "interruptions": state.interruptions,
        "cuts": state.cuts.values().map(|c| json!({
            "target": c.target,
            "time": run::format_time(c.time),
            "requested": c.requested,
            "skew_seconds": c.skew() / 1000,
            "rpo_achieved_seconds": c.rpo_achieved() / 1000,
            "points": c.points.iter().map(|(t, p)| json!({"table": t, "arn": p.arn, "created_at": run::format_time(p.created_at), "late": c.late.contains(t)})).collect::<Vec<_>>(),
            "missing": c.missing,
        })).collect::<Vec<_>>(),
        "steps": steps,
    })
}

/// Reads a run's state (the latest run when `run_id` is `None`) from the store `state`
/// names, and with `holder`, who holds the run now on a bucket (a sentence), if anyone does;
/// errors are printed.
fn read_run(
    state: &StateArgs,
    run_id: Option<&str>,
    holder: bool,
) -> Result<Option<(RunState, Option<String>)>, CliError> {
    let rt = runtime()?;
    Ok(rt.block_on(async {
        let store = match state_store::open_for_reading(state).await {
            Ok(store) => store,
            Err(e) => {
                output::error(&e);
                return None;
            }
        };
        let run_id = match run_id {
            Some(id) => {
                if let Err(e) = run::check_run_id(id) {
                    output::error(&e);
                    return None;
                }
                id.to_owned()
            }
            None => match store.list().await.map(|runs| runs.into_iter().last()) {
                Ok(Some((id, _))) => id,
                Ok(None) => {
                    output::error(&format!("no runs in {}", store.location()));
                    return None;
                }
                Err(e) => {
                    output::error(&e.to_string());
                    return None;
                }
            },
        };
        match store.read(&run_id).await {
            Ok((state, torn)) => {
                if let Some(t) = torn {
                    output::stderr(&format!(
                        "warning: the journal's last record (line {}) is torn: {}; it is ignored",
                        t.line, t.reason
                    ));
                }
                let holder =
                    if holder { state_store::holder_now(&store, &run_id).await } else { None };
                Some((state, holder))
            }
            Err(e) => {
                output::error(&e.to_string());
                None
            }
        }
    }))
}

pub(crate) fn report(args: &ReportArgs) -> Result<Exit, CliError> {
    let Some((state, _)) = read_run(&args.state, args.run_id.as_deref(), false)? else {
        return Ok(Exit::Failure);
    };
    // The report reads the plan copy the journal keeps: the file may have changed since.
    let loaded = drover_plan::load(&state.header.plan_path, state.header.plan_text.as_bytes());
    let Some(plan) = loaded.plan else {
        output::error("the plan copy in the journal is not a valid plan");
        return Ok(Exit::Failure);
    };
    let report = drover_engine::report::RunReport::new(&plan, &state);
    let text = match args.format {
        ReportFormat::Md => report.to_markdown(),
        ReportFormat::Json => serde_json::to_string_pretty(&report).unwrap_or_default(),
        ReportFormat::Junit => report.to_junit(),
        ReportFormat::Html => report.to_html(),
    };
    output::stdout_line(&text)?;
    // The process ends here: freeing a large run's state piece by piece would take a tenth
    // of the command's time for nothing.
    std::mem::forget((state, plan, report, text));
    Ok(Exit::Success)
}

pub(crate) fn status(args: &StatusArgs) -> Result<Exit, CliError> {
    let Some((state, holder)) = read_run(&args.state, args.run_id.as_deref(), true)? else {
        return Ok(Exit::Failure);
    };
    match args.format {
        StatusFormat::Text => {
            output::stdout_line(&render(&state))?;
            if let Some(holder) = &holder {
                output::stdout_line(holder)?;
            }
        }
        StatusFormat::Json => {
            let mut json = to_json(&state);
            if let Some(holder) = holder {
                json["held_by"] = serde_json::Value::String(holder);
            }
            output::stdout_line(&serde_json::to_string_pretty(&json).unwrap_or_default())?;
        }
    }
    // As in `report`: the process ends, nothing to free.
    std::mem::forget(state);
    Ok(Exit::Success)
}

pub(crate) fn runs(args: &StateArgs) -> Result<Exit, CliError> {
    let listed = runtime()?.block_on(async {
        let store = state_store::open_for_reading(args).await?;
        let runs = store.list().await.map_err(|e| e.to_string())?;
        Ok::<_, String>((store.location(), runs))
    });
    let (location, runs) = match listed {
        Ok(listed) => listed,
        Err(e) => {
            output::error(&e);
            return Ok(Exit::Failure);
        }
    };
    if runs.is_empty() {
        output::stderr(&format!("no runs in {location}"));
        return Ok(Exit::Success);
    }
    let width = runs.iter().map(|(id, _)| id.len()).max().unwrap_or(6).max(6);
    let mut out = format!("{:<width$}  {:<8}  {:<20}  STATE\n", "RUN ID", "MODE", "STARTED");
    for (id, state) in runs {
        match state {
            Ok(s) => {
                let _ = writeln!(
                    out,
                    "{id:<width$}  {:<8}  {:<20}  {}{}",
                    s.header.mode.as_str(),
                    run::format_time(s.started_at),
                    verdict(&s),
                    if s.header.options.simulated() { " (simulated)" } else { "" }
                );
            }
            Err(e) => {
                let _ = writeln!(out, "{id:<width$}  {:<8}  {:<20}  unreadable: {e}", "?", "?");
            }
        }
    }
    output::stdout_line(&out)?;
    Ok(Exit::Success)
}
