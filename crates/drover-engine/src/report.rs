//! Run reports: what a run did, per table and target, against the objectives — as JSON,
//! Markdown, JUnit XML and a self-contained HTML page with a timeline.
//!
//! Reports are built from the journal alone. They carry no credentials and no item contents
//! beyond key attributes (canary keys, marker keys).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use drover_plan::{Mode, Plan, StepKind};
use serde::Serialize;

use crate::graph::{Shape, StepGraph};
use crate::ports::Millis;
use crate::run::format_time;
use crate::state::{Phase, RunState, StepKey, StepOutput};

/// One step in a report.
#[derive(Debug, Clone, Serialize)]
pub struct StepReport {
    /// Step kind.
    pub step: StepKind,
    /// Final phase.
    pub phase: String,
    /// When it began (ms since the epoch).
    pub began_at: Option<Millis>,
    /// When it ended.
    pub ended_at: Option<Millis>,
    /// How long it took.
    pub duration_ms: Option<Millis>,
    /// Attempts.
    pub attempt: u32,
    /// Jobs it ran.
    pub job_ids: Vec<String>,
    /// What it produced, or why it failed.
    pub detail: String,
}

/// A table in one target.
#[derive(Debug, Clone, Serialize)]
pub struct TableReport {
    /// Table name.
    pub table: String,
    /// Target region.
    pub target: String,
    /// The recovery point restored from (or copied), when known.
    pub recovery_point: Option<String>,
    /// When it was taken.
    pub recovery_point_at: Option<Millis>,
    /// How old it was when its restore began (point-in-time recovery: how long before the
    /// instant was chosen it lies): the data loss a real recovery would have had.
    pub rpo_achieved_ms: Option<Millis>,
    /// Steps in order.
    pub steps: Vec<StepReport>,
    /// Validation results.
    pub checks: Vec<String>,
    /// Whether every step succeeded.
    pub ok: bool,
}

/// A whole run.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    /// Run id.
    pub run_id: String,
    /// Drill, failover or backup.
    pub mode: Mode,
    /// Plan name.
    pub plan: String,
    /// `succeeded`, `failed`, `interrupted` or `unfinished`.
    pub outcome: String,
    /// Start of the run.
    pub started_at: Millis,
    /// Whether its times are simulated (a run on the simulated cloud), not the wall clock's.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub simulated: bool,
    /// Last record.
    pub ended_at: Millis,
    /// A point-in-time run's instant: every table restored to it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restored_to: Option<Millis>,
    /// RPO objective.
    pub rpo_objective_ms: Option<Millis>,
    /// RTO objective.
    pub rto_objective_ms: Option<Millis>,
    /// From the start to the last successful validation, when every table was validated.
    pub recovery_time_ms: Option<Millis>,
    /// Largest RPO achieved over the tables.
    pub rpo_achieved_ms: Option<Millis>,
    /// The chain of steps that decided when the run ended, first to last.
    pub critical_path: Vec<String>,
    /// Per table and target.
    pub tables: Vec<TableReport>,
    /// The drill's recovery points its teardown deleted (source points and copies).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub points_deleted: Vec<String>,
    /// The drill's recovery points kept, and why (their lifecycle deletes them).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub points_kept: BTreeMap<String, String>,
    /// The run's own hooks (`after_target` per target, `after_run`) and how they ended; a
    /// table's hooks are among its validation's checks.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub hooks: Vec<HookReport>,
}

/// How one of the run's hooks ended.
#[derive(Debug, Clone, Serialize)]
pub struct HookReport {
    /// `after_target <region>` or `after_run`.
    pub when: String,
    /// The hook's name.
    pub name: String,
    /// Exited 0 within its timeout.
    pub passed: bool,
    /// How it ended (`exit 0 in 1.2s`, ...).
    pub result: String,
    /// Its output, bounded.
    pub output: String,
}

fn ms(d: std::time::Duration) -> Millis {
    Millis::try_from(d.as_millis()).unwrap_or(Millis::MAX)
}

/// A short human form of a duration in milliseconds.
#[must_use]
pub fn human(ms: Millis) -> String {
    let d = std::time::Duration::from_millis(u64::try_from(ms.max(0)).unwrap_or(0));
    if ms < 1000 { format!("{ms}ms") } else { drover_plan::format_duration(d) }
}

fn detail(phase: &Phase) -> String {
    match phase {
        Phase::Succeeded { output } => match output {
            StepOutput::RecoveryPoint { arn, .. } | StepOutput::Copy { arn, .. } => arn.clone(),
            StepOutput::Restore { table_name, .. } => format!("restored as {table_name}"),
            StepOutput::Configure { applied } if applied.is_empty() => {
                "nothing to change".to_owned()
            }
            StepOutput::Configure { applied } => applied.join(", "),
            StepOutput::Validate { checks, .. } => format!("{} checks passed", checks.len()),
            StepOutput::Teardown { note, points_deleted, .. } if !points_deleted.is_empty() => {
                format!("{note}; deleted its copy {}", points_deleted.join(", "))
            }
            StepOutput::Teardown { note, .. } => note.clone(),
        },
        Phase::Failed { message } => message.clone(),
        Phase::Blocked { by } => format!("blocked by {by}"),
        other => other.name().to_owned(),
    }
}

impl RunReport {
    /// Builds the report of a run from its state (and the plan, for its dependencies).
    #[must_use]
    pub fn new(plan: &Plan, state: &RunState) -> RunReport {
        let h = &state.header;
        let mode = h.mode;
        let mut tables = Vec::new();
        let shape = Shape::of(h, true);
        let pitr = h.options.pitr.as_ref();
        for (region, ids) in shape.places(plan) {
            for id in ids {
                let t = plan.table(id);
                let r = region.clone();
                let mut steps = Vec::new();
                for kind in shape.steps() {
                    let key = StepKey {
                        table: t.name.clone(),
                        target: if *kind == StepKind::RecoveryPoint && mode != Mode::Failover {
                            None
                        } else {
                            Some(r.clone())
                        },
                        kind: *kind,
                    };
                    let Some(s) = state.steps.get(&key) else { continue };
                    steps.push(StepReport {
                        step: *kind,
                        phase: s.phase.name().to_owned(),
                        began_at: s.began_at,
                        ended_at: s.ended_at,
                        duration_ms: s.began_at.zip(s.ended_at).map(|(b, e)| e - b),
                        attempt: s.attempt,
                        job_ids: s.job_ids.clone(),
                        detail: detail(&s.phase),
                    });
                }
                let point =
                    steps.iter().find(|s| s.step == StepKind::RecoveryPoint).and_then(|_| {
                        let key = StepKey {
                            table: t.name.clone(),
                            target: if mode == Mode::Failover { Some(r.clone()) } else { None },
                            kind: StepKind::RecoveryPoint,
                        };
                        match state.output(&key) {
                            Some(StepOutput::RecoveryPoint { arn, created_at, .. }) => {
                                Some((arn.clone(), *created_at))
                            }
                            _ => None,
                        }
                    });
                let restore_began =
                    steps.iter().find(|s| s.step == StepKind::Restore).and_then(|s| s.began_at);
                let checks = match state.output(&StepKey {
                    table: t.name.clone(),
                    target: Some(r.clone()),
                    kind: StepKind::Validate,
                }) {
                    Some(StepOutput::Validate { checks, .. }) => checks.clone(),
                    _ => Vec::new(),
                };
                let ok = !steps.is_empty() && steps.iter().all(|s| s.phase == "succeeded");
                tables.push(TableReport {
                    table: t.name.clone(),
                    target: r,
                    recovery_point: point.as_ref().map(|p| p.0.clone()),
                    recovery_point_at: point.as_ref().map(|p| p.1),
                    rpo_achieved_ms: match pitr {
                        // The data a recovery to that instant loses: what was written since.
                        Some(p) => Some((p.chosen_at - p.at).max(0)),
                        None => point.as_ref().zip(restore_began).map(|(p, b)| (b - p.1).max(0)),
                    },
                    steps,
                    checks,
                    ok,
                });
            }
        }
        let validations: Vec<&crate::state::StepState> = state
            .steps
            .iter()
            .filter(|(k, _)| k.kind == StepKind::Validate)
            .map(|(_, s)| s)
            .collect();
        let recovery_time_ms = (!validations.is_empty()
            && validations.iter().all(|s| matches!(s.phase, Phase::Succeeded { .. })))
        .then(|| validations.iter().filter_map(|s| s.ended_at).max().map(|e| e - state.started_at))
        .flatten();
        let outcome = match state.finished {
            Some(true) => "succeeded",
            Some(false) => "failed",
            None if state.interruptions > 0 => "interrupted",
            None => "unfinished",
        };
        let mut points_deleted: Vec<String> = state
            .steps
            .values()
            .filter_map(|s| match &s.phase {
                Phase::Succeeded { output: StepOutput::Teardown { points_deleted, .. } } => {
                    Some(points_deleted.iter().cloned())
                }
                _ => None,
            })
            .flatten()
            .collect();
        let mut points_kept: BTreeMap<String, String> = state
            .steps
            .values()
            .filter_map(|s| match &s.phase {
                Phase::Succeeded { output: StepOutput::Teardown { points_kept, .. } } => {
                    Some(points_kept.iter().map(|(p, why)| (p.clone(), why.clone())))
                }
                _ => None,
            })
            .flatten()
            .collect();
        if let Some((deleted, kept)) = &state.source_points {
            points_deleted.extend(deleted.iter().cloned());
            points_kept.extend(kept.iter().map(|(p, why)| (p.clone(), why.clone())));
        }
        let timeout_of = |list: &[drover_plan::Hook], name: &str| {
            list.iter()
                .find(|x| x.name == name)
                .map_or(drover_plan::DEFAULT_HOOK_TIMEOUT, |x| x.timeout)
        };
        let mut hooks = Vec::new();
        for (key, step) in &state.steps {
            if key.kind != StepKind::Hooks {
                continue;
            }
            for o in &step.hooks {
                hooks.push(HookReport {
                    when: format!("after_target {}", key.target.as_deref().unwrap_or_default()),
                    name: o.name.clone(),
                    passed: o.passed(),
                    result: o.summary(timeout_of(&plan.hooks.after_target, &o.name)),
                    output: o.output.clone(),
                });
            }
        }
        for o in &state.after_run {
            hooks.push(HookReport {
                when: "after_run".to_owned(),
                name: o.name.clone(),
                passed: o.passed(),
                result: o.summary(timeout_of(&plan.hooks.after_run, &o.name)),
                output: o.output.clone(),
            });
        }
        RunReport {
            run_id: h.run_id.clone(),
            mode,
            plan: h.plan_name.clone(),
            outcome: outcome.to_owned(),
            started_at: state.started_at,
            simulated: h.options.simulated(),
            ended_at: state.last_at,
            restored_to: pitr.map(|p| p.at),
            rpo_objective_ms: plan.objectives.rpo.map(ms),
            rto_objective_ms: plan.objectives.rto.map(ms),
            recovery_time_ms,
            rpo_achieved_ms: tables.iter().filter_map(|t| t.rpo_achieved_ms).max(),
            critical_path: critical_path(plan, state, None)
                .into_iter()
                .map(|(key, d)| format!("{key} ({})", human(d)))
                .collect(),
            tables,
            points_deleted,
            points_kept,
            hooks,
        }
    }

    /// Whether the recovery time met the RTO objective (when both are known).
    #[must_use]
    pub fn rto_met(&self) -> Option<bool> {
        self.recovery_time_ms.zip(self.rto_objective_ms).map(|(a, o)| a <= o)
    }

    /// Whether the data loss met the RPO objective (when both are known).
    #[must_use]
    pub fn rpo_met(&self) -> Option<bool> {
        self.rpo_achieved_ms.zip(self.rpo_objective_ms).map(|(a, o)| a <= o)
    }

    /// Markdown.
    #[must_use]
    pub fn to_markdown(&self) -> String {
        let mut out = format!("# drover {} report: {}\n\n", self.mode.as_str(), self.run_id);
        let _ = writeln!(out, "- plan: `{}`", self.plan);
        let _ = writeln!(out, "- outcome: **{}**", self.outcome);
        let _ = writeln!(
            out,
            "- started: {}, last event: {}{}",
            format_time(self.started_at),
            format_time(self.ended_at),
            if self.simulated { " (simulated time)" } else { "" }
        );
        if let Some(at) = self.restored_to {
            let _ = writeln!(
                out,
                "- point-in-time recovery: every table restored to **{}**",
                format_time(at)
            );
        }
        let _ = writeln!(out, "\n| objective | target | achieved | met |\n|---|---|---|---|");
        let met = |m: Option<bool>| m.map_or("-", |m| if m { "yes" } else { "**no**" });
        let opt = |v: Option<Millis>| v.map_or("-".to_owned(), human);
        let _ = writeln!(
            out,
            "| RTO (recovery time) | {} | {} | {} |",
            opt(self.rto_objective_ms),
            opt(self.recovery_time_ms),
            met(self.rto_met())
        );
        let _ = writeln!(
            out,
            "| RPO (data loss) | {} | {} | {} |",
            opt(self.rpo_objective_ms),
            opt(self.rpo_achieved_ms),
            met(self.rpo_met())
        );
        if !self.critical_path.is_empty() {
            let _ = writeln!(
                out,
                "\n## Critical path\n\n{}",
                self.critical_path.iter().map(|s| format!("1. {s}")).collect::<Vec<_>>().join("\n")
            );
        }
        if !self.points_deleted.is_empty() || !self.points_kept.is_empty() {
            out.push_str("\n## Recovery points\n\n");
            for p in &self.points_deleted {
                let _ = writeln!(out, "- deleted `{p}`");
            }
            for (p, why) in &self.points_kept {
                let _ = writeln!(out, "- kept `{p}`: {why}");
            }
        }
        if !self.hooks.is_empty() {
            out.push_str("\n## Hooks\n\n");
            for hk in &self.hooks {
                let mark = if hk.passed { "passed" } else { "**failed**" };
                let _ = writeln!(out, "- {} `{}`: {mark}, {}", hk.when, hk.name, hk.result);
            }
        }
        out.push_str("\n## Tables\n");
        for t in &self.tables {
            let _ = writeln!(
                out,
                "\n### {} in {} — {}\n",
                t.table,
                t.target,
                if t.ok { "ok" } else { "**not ok**" }
            );
            if let (Some(p), Some(at)) = (&t.recovery_point, t.recovery_point_at) {
                let _ = writeln!(out, "- recovery point `{p}` taken {}", format_time(at));
            }
            if let Some(rpo) = t.rpo_achieved_ms {
                let _ = writeln!(out, "- RPO achieved: {}", human(rpo));
            }
            let _ = writeln!(
                out,
                "\n| step | phase | began | ended | duration | detail |\n|---|---|---|---|---|---|"
            );
            for s in &t.steps {
                let _ = writeln!(
                    out,
                    "| {} | {} | {} | {} | {} | {} |",
                    s.step.as_str(),
                    s.phase,
                    s.began_at.map_or("-".to_owned(), format_time),
                    s.ended_at.map_or("-".to_owned(), format_time),
                    opt(s.duration_ms),
                    s.detail.replace('|', "\\\\|")
                );
            }
            if !t.checks.is_empty() {
                let _ = writeln!(
                    out,
                    "\nvalidation:\n{}",
                    t.checks.iter().map(|c| format!("- {c}")).collect::<Vec<_>>().join("\n")
                );
            }
        }
        out
    }

    /// JUnit XML: each (table, target) is a test case.
    #[must_use]
    pub fn to_junit(&self) -> String {
        let failures = self.tables.iter().filter(|t| !t.ok).count();
        let secs = |ms: Millis| format!("{:.3}", ms as f64 / 1000.0);
        let mut out = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites>\n  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\" time=\"{}\">\n",
            xml(&format!("drover {} {}", self.mode.as_str(), self.run_id)),
            self.tables.len(),
            secs(self.ended_at - self.started_at)
        );
        for t in &self.tables {
            let time: Millis = t.steps.iter().filter_map(|s| s.duration_ms).sum();
            let _ = write!(
                out,
                "    <testcase classname=\"{}.{}\" name=\"{}\" time=\"{}\"",
                xml(&self.plan),
                xml(&t.target),
                xml(&t.table),
                secs(time)
            );
            let lines: Vec<String> = t
                .steps
                .iter()
                .map(|s| format!("{}: {} ({})", s.step.as_str(), s.phase, s.detail))
                .collect();
            if t.ok {
                let _ = writeln!(
                    out,
                    ">\n      <system-out>{}</system-out>\n    </testcase>",
                    xml(&lines.join("\n"))
                );
            } else {
                let first = t
                    .steps
                    .iter()
                    .find(|s| s.phase != "succeeded")
                    .map_or(String::new(), |s| format!("{}: {}", s.step.as_str(), s.detail));
                let _ = writeln!(
                    out,
                    ">\n      <failure message=\"{}\">{}</failure>\n    </testcase>",
                    xml(&first),
                    xml(&lines.join("\n"))
                );
            }
        }
        out.push_str("  </testsuite>\n</testsuites>\n");
        out
    }

    /// A self-contained HTML page (no scripts, no external resources) with a timeline of
    /// every step.
    #[must_use]
    #[allow(clippy::cast_precision_loss)]
    pub fn to_html(&self) -> String {
        let mut out =
            String::from("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n");
        let _ = writeln!(out, "<title>drover {} {}</title>", self.mode.as_str(), xml(&self.run_id));
        out.push_str(concat!(
            "<style>body{font:14px system-ui,sans-serif;margin:24px;color:#1b1f24}",
            "table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ccd;padding:3px 8px;text-align:left}",
            ".ok{color:#16703a}.bad{color:#b42318;font-weight:bold}.legend span{display:inline-block;margin-right:14px}",
            ".sw{display:inline-block;width:12px;height:12px;margin-right:4px;vertical-align:middle}</style></head><body>\n"
        ));
        let cls = |ok: bool| if ok { "ok" } else { "bad" };
        let _ = writeln!(
            out,
            "<h1>drover {} <code>{}</code></h1>\n<p>plan <b>{}</b>: <span class=\"{}\">{}</span>, started {}{}</p>",
            self.mode.as_str(),
            xml(&self.run_id),
            xml(&self.plan),
            cls(self.outcome == "succeeded"),
            self.outcome,
            format_time(self.started_at),
            if self.simulated { " (simulated time)" } else { "" }
        );
        let opt = |v: Option<Millis>| v.map_or("-".to_owned(), human);
        let met = |m: Option<bool>| match m {
            Some(true) => "<span class=\"ok\">met</span>",
            Some(false) => "<span class=\"bad\">missed</span>",
            None => "-",
        };
        let _ = writeln!(
            out,
            "<table><tr><th>objective</th><th>target</th><th>achieved</th><th></th></tr>\
             <tr><td>RTO</td><td>{}</td><td>{}</td><td>{}</td></tr><tr><td>RPO</td><td>{}</td><td>{}</td><td>{}</td></tr></table>",
            opt(self.rto_objective_ms),
            opt(self.recovery_time_ms),
            met(self.rto_met()),
            opt(self.rpo_objective_ms),
            opt(self.rpo_achieved_ms),
            met(self.rpo_met())
        );
        // Timeline.
        let colours = [
            (StepKind::RecoveryPoint, "#6e56cf"),
            (StepKind::Copy, "#0b7fab"),
            (StepKind::Restore, "#e5484d"),
            (StepKind::Configure, "#f5a524"),
            (StepKind::Validate, "#30a46c"),
            (StepKind::Teardown, "#8b8d98"),
        ];
        let colour = |k: StepKind| colours.iter().find(|(c, _)| *c == k).map_or("#999", |(_, c)| c);
        let span = (self.ended_at - self.started_at).max(1) as f64;
        let (label_w, chart_w, row_h) = (260.0, 760.0, 22.0);
        let height = row_h * self.tables.len() as f64 + 40.0;
        let _ = writeln!(
            out,
            "<h2>Timeline</h2>\n<svg id=\"timeline\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{height}\" role=\"img\" aria-label=\"timeline of every step\">",
            label_w + chart_w + 20.0
        );
        for (i, t) in self.tables.iter().enumerate() {
            let y = 10.0 + row_h * i as f64;
            let _ = writeln!(
                out,
                "<text x=\"0\" y=\"{}\" font-size=\"12\">{} · {}</text>",
                y + 14.0,
                xml(&t.table),
                xml(&t.target)
            );
            for s in &t.steps {
                let (Some(b), Some(e)) = (s.began_at, s.ended_at.or(Some(self.ended_at))) else {
                    continue;
                };
                let x = label_w + (b - self.started_at) as f64 / span * chart_w;
                let w = ((e - b) as f64 / span * chart_w).max(2.0);
                let failed =
                    if s.phase == "failed" { " stroke=\"#b42318\" stroke-width=\"2\"" } else { "" };
                let _ = writeln!(
                    out,
                    "<rect class=\"step\" x=\"{x:.1}\" y=\"{y}\" width=\"{w:.1}\" height=\"{}\" fill=\"{}\"{failed}><title>{} {}: {} ({})</title></rect>",
                    row_h - 6.0,
                    colour(s.step),
                    xml(&t.table),
                    s.step.as_str(),
                    s.phase,
                    opt(s.duration_ms)
                );
            }
        }
        let _ = writeln!(
            out,
            "<text x=\"{label_w}\" y=\"{}\" font-size=\"11\">0</text><text x=\"{}\" y=\"{}\" font-size=\"11\" text-anchor=\"end\">{}</text></svg>",
            height - 8.0,
            label_w + chart_w,
            height - 8.0,
            human(self.ended_at - self.started_at)
        );
        out.push_str("<p class=\"legend\">");
        for (k, c) in colours {
            let _ = write!(
                out,
                "<span><i class=\"sw\" style=\"background:{c}\"></i>{}</span>",
                k.as_str()
            );
        }
        out.push_str("</p>\n");
        if !self.critical_path.is_empty() {
            let _ = writeln!(
                out,
                "<h2>Critical path</h2><ol>{}</ol>",
                self.critical_path
                    .iter()
                    .map(|s| format!("<li>{}</li>", xml(s)))
                    .collect::<String>()
            );
        }
        out.push_str("<h2>Tables</h2>\n<table><tr><th>table</th><th>target</th><th>recovery point</th><th>RPO achieved</th><th>steps</th><th>validation</th></tr>\n");
        for t in &self.tables {
            let steps: Vec<String> = t
                .steps
                .iter()
                .map(|s| {
                    format!(
                        "{} <span class=\"{}\">{}</span> {}",
                        s.step.as_str(),
                        cls(s.phase == "succeeded"),
                        s.phase,
                        xml(&opt(s.duration_ms))
                    )
                })
                .collect();
            let _ = writeln!(
                out,
                "<tr><td>{}</td><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td></tr>",
                xml(&t.table),
                xml(&t.target),
                xml(t.recovery_point.as_deref().unwrap_or("-")),
                opt(t.rpo_achieved_ms),
                steps.join("<br>"),
                t.checks.iter().map(|c| xml(c)).collect::<Vec<_>>().join("<br>")
            );
        }
        out.push_str("</table>\n");
        let errors: Vec<String> = self
            .tables
            .iter()
            .flat_map(|t| {
                t.steps.iter().filter(|s| s.phase == "failed").map(move |s| {
                    format!("{} {} {}: {}", t.table, t.target, s.step.as_str(), s.detail)
                })
            })
            .collect();
        if !errors.is_empty() {
            let _ = writeln!(
                out,
                "<h2>Errors</h2><ul>{}</ul>",
                errors
                    .iter()
                    .map(|e| format!("<li class=\"bad\">{}</li>", xml(e)))
                    .collect::<String>()
            );
        }
        out.push_str("</body></html>\n");
        out
    }
}

fn xml(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// The chain of steps that decided when the run's last step (in `target`, if given) ended,
/// teardowns aside: from that step back through, at each step, the prerequisite that finished
/// last. Each with its duration (ms).
#[must_use]
pub fn critical_path(
    plan: &Plan,
    state: &RunState,
    target: Option<&str>,
) -> Vec<(StepKey, Millis)> {
    let graph = StepGraph::shaped(plan, Shape::of(&state.header, false));
    // Only steps that ran (began and ended): blocked steps never started.
    let ended = |i: usize| {
        state.steps.get(&graph.steps()[i]).filter(|s| s.began_at.is_some()).and_then(|s| s.ended_at)
    };
    let last = (0..graph.len())
        .filter(|i| graph.steps()[*i].kind != StepKind::Teardown)
        .filter(|i| target.is_none() || graph.steps()[*i].target.as_deref() == target)
        .filter_map(|i| ended(i).map(|e| (e, i)))
        .max();
    let Some((_, mut i)) = last else { return Vec::new() };
    let mut chain = vec![i];
    let mut seen = BTreeMap::new();
    while let Some(&(j, _)) =
        graph.waits(i).iter().filter(|(j, _)| ended(*j).is_some()).max_by_key(|(j, _)| ended(*j))
    {
        if seen.insert(j, ()).is_some() {
            break;
        }
        chain.push(j);
        i = j;
    }
    chain.reverse();
    chain
        .into_iter()
        .map(|i| {
            let key = graph.steps()[i].clone();
            let d = state
                .steps
                .get(&key)
                .and_then(|s| s.began_at.zip(s.ended_at))
                .map_or(0, |(b, e)| e - b);
            (key, d)
        })
        .collect()
}
