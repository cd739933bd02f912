//! GitHub Actions: when `GITHUB_ACTIONS=true`, a run or a check appends a Markdown summary to
//! the file `$GITHUB_STEP_SUMMARY` names and prints an `::error` workflow command per failed
//! table or finding. Nothing here changes an exit code: a summary that cannot be written is
//! one warning on stderr.
//!
//! The rendering is CI-specific (a short digest, not `drover report --format md`), so it
//! lives here; the report itself is `drover_engine::report::RunReport`.

use std::fmt::Write as _;
use std::io::Write as _;

use drover_engine::preflight::{Finding, Status};
use drover_engine::report::{RunReport, TableReport, human};
use drover_engine::run::format_time;
use drover_engine::state::RunState;

use crate::output;

/// GitHub shows at most 10 error annotations per step (and 50 per job); the last one drover
/// prints says how many more there are, and the summary lists them all.
const MAX_ANNOTATIONS: usize = 10;

/// Whether drover runs in a GitHub Actions job.
fn on_github() -> bool {
    std::env::var("GITHUB_ACTIONS").is_ok_and(|v| v == "true")
}

/// After a run's summary is printed: its digest in the step summary, an `::error` per
/// (table, target) that failed.
pub(crate) fn after_run(state: &RunState) {
    if !on_github() {
        return;
    }
    // The plan copy the journal keeps (what `drover report` reads).
    let loaded = drover_plan::load(&state.header.plan_path, state.header.plan_text.as_bytes());
    let Some(plan) = loaded.plan else {
        output::stderr(
            "warning: no GitHub step summary: the plan copy in the journal is not valid",
        );
        return;
    };
    let report = RunReport::new(&plan, state);
    append_summary(&run_summary(&report));
    let mode = report.mode.as_str();
    let failed: Vec<(String, String)> = report
        .tables
        .iter()
        .filter(|t| t.steps.iter().any(|s| s.phase == "failed"))
        .map(|t| (format!("drover {mode} {} in {}", t.table, t.target), reason(t)))
        .collect();
    annotate(&failed, "failed tables");
}

/// After `drover check` (`--pitr` when `pitr`) printed its findings: as [`after_check`].
pub(crate) fn after_readiness(pitr: bool, plan: &str, findings: &[Finding]) {
    after_check(if pitr { "check --pitr" } else { "check" }, plan, findings);
}

/// After `drover check` or `drover preflight` printed its findings: a summary of them, an
/// `::error` per failed finding. `command` is what ran (`check`, `check --pitr`, `preflight`).
pub(crate) fn after_check(command: &str, plan: &str, findings: &[Finding]) {
    if !on_github() {
        return;
    }
    append_summary(&check_summary(command, plan, findings));
    let failed: Vec<(String, String)> = findings
        .iter()
        .filter(|f| f.status == Status::Fail)
        .map(|f| {
            let message = match &f.fix {
                Some(fix) => format!("{}; to fix: {fix}", f.detail),
                None => f.detail.clone(),
            };
            (format!("drover {command} {} {}", f.check, f.subject), message)
        })
        .collect();
    annotate(&failed, "failed findings");
}

/// Prints `::error title=..::message` lines on stderr. GitHub's documentation says workflow
/// commands are "sent to the runner over stdout"
/// (<https://docs.github.com/en/actions/reference/workflow-commands-for-github-actions>), but
/// the runner reads stderr the same way: `ScriptHandler` feeds both streams to an
/// `OutputManager` over its `ActionCommandManager` (actions/runner,
/// `src/Runner.Worker/Handlers/ScriptHandler.cs`). drover's stdout carries data
/// (`check --format junit > check.xml`), where an annotation would corrupt the file and never
/// reach the runner.
fn annotate(failed: &[(String, String)], what: &str) {
    let shown = if failed.len() > MAX_ANNOTATIONS { MAX_ANNOTATIONS - 1 } else { failed.len() };
    let mut lines = String::new();
    for (title, message) in failed.iter().take(shown) {
        let _ =
            writeln!(lines, "::error title={}::{}", escape_property(title), escape_data(message));
    }
    if shown < failed.len() {
        let _ = writeln!(
            lines,
            "::error title=drover::{}",
            escape_data(&format!(
                "{} more {what}; the job summary lists them all",
                failed.len() - shown
            ))
        );
    }
    if !lines.is_empty() {
        output::stderr(&lines);
    }
}

/// Appends `text` to `$GITHUB_STEP_SUMMARY` (other steps write there too: never truncated);
/// warns once when the variable is unset or the file cannot be written.
fn append_summary(text: &str) {
    let Some(path) = std::env::var_os("GITHUB_STEP_SUMMARY").filter(|p| !p.is_empty()) else {
        output::stderr("warning: GITHUB_STEP_SUMMARY is not set; no step summary was written");
        return;
    };
    let written = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(&path)
        .and_then(|mut f| f.write_all(text.as_bytes()).and_then(|()| f.flush()));
    if let Err(e) = written {
        output::stderr(&format!(
            "warning: the step summary {} could not be written ({e}); the run's outcome stands",
            std::path::Path::new(&path).display()
        ));
    }
}

/// A workflow command's message: `%`, `\r` and `\n` escaped (actions/toolkit `escapeData`).
fn escape_data(s: &str) -> String {
    s.replace('%', "%25").replace('\r', "%0D").replace('\n', "%0A")
}

/// A workflow command's property: as data, and `:` and `,` too (`escapeProperty`).
fn escape_property(s: &str) -> String {
    escape_data(s).replace(':', "%3A").replace(',', "%2C")
}

/// A Markdown table cell: `|` escaped, line breaks as `<br>`.
fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace("\r\n", "<br>").replace(['\n', '\r'], "<br>")
}

/// Inline code: backticks would end it, so they become quotes.
fn code(s: &str) -> String {
    format!("`{}`", s.replace('`', "'").replace(['\n', '\r'], " "))
}

/// `ok`, `failed`, `blocked`, or the phase the table's first unfinished step is in.
fn result(t: &TableReport) -> &str {
    if t.ok {
        return "ok";
    }
    if t.steps.iter().any(|s| s.phase == "failed") {
        return "failed";
    }
    t.steps.iter().find(|s| s.phase != "succeeded").map_or("not run", |s| s.phase.as_str())
}

/// Why a table is not ok: its first failed step, else its first step that did not succeed.
fn reason(t: &TableReport) -> String {
    t.steps
        .iter()
        .find(|s| s.phase == "failed")
        .or_else(|| t.steps.iter().find(|s| s.phase != "succeeded"))
        .map_or(String::new(), |s| format!("{}: {}", s.step.as_str(), s.detail))
}

fn run_summary(r: &RunReport) -> String {
    let mut out = format!(
        "\n## drover {} of plan {}: {}\n\n",
        r.mode.as_str(),
        code(&r.plan),
        if r.outcome == "succeeded" {
            "succeeded".to_owned()
        } else {
            format!("**{}**", r.outcome)
        }
    );
    let _ = writeln!(out, "- run: {}", code(&r.run_id));
    let _ = writeln!(out, "- plan: {}", code(&r.plan));
    let _ = writeln!(out, "- mode: {}", r.mode.as_str());
    let _ = writeln!(out, "- outcome: **{}**", r.outcome);
    let _ = writeln!(
        out,
        "- started {}, last event {}{}",
        format_time(r.started_at),
        format_time(r.ended_at),
        if r.simulated { " (simulated time)" } else { "" }
    );
    if let Some(at) = r.restored_to {
        let _ = writeln!(out, "- point-in-time recovery to {}", format_time(at));
    }
    let opt = |v: Option<drover_engine::ports::Millis>| v.map_or("-".to_owned(), human);
    let met = |m: Option<bool>| m.map_or("-", |m| if m { "met" } else { "**not met**" });
    out.push_str("\n| objective | target | achieved | |\n|---|---|---|---|\n");
    let _ = writeln!(
        out,
        "| RTO | {} | {} | {} |",
        opt(r.rto_objective_ms),
        opt(r.recovery_time_ms),
        met(r.rto_met())
    );
    let _ = writeln!(
        out,
        "| RPO | {} | {} | {} |",
        opt(r.rpo_objective_ms),
        opt(r.rpo_achieved_ms),
        met(r.rpo_met())
    );
    let not_ok = r.tables.iter().filter(|t| !t.ok).count();
    let _ = writeln!(
        out,
        "\n{} of {} (table, target) pairs ok\n\n| table | target | result | reason |\n|---|---|---|---|",
        r.tables.len() - not_ok,
        r.tables.len()
    );
    for t in &r.tables {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} |",
            cell(&t.table),
            cell(&t.target),
            if t.ok { "ok".to_owned() } else { format!("**{}**", result(t)) },
            if t.ok { String::new() } else { cell(&reason(t)) }
        );
    }
    if r.outcome != "succeeded" {
        let _ = writeln!(
            out,
            "\n`drover resume {}` continues the run; `drover report {} --format html` shows every step.",
            r.run_id.replace('`', "'"),
            r.run_id.replace('`', "'")
        );
    }
    out
}

fn check_summary(command: &str, plan: &str, findings: &[Finding]) -> String {
    let count = |s: Status| findings.iter().filter(|f| f.status == s).count();
    let failed = count(Status::Fail);
    let mut out = format!(
        "\n## drover {command} of plan {}: {}\n\n{} checks: {} passed, {} warned, {failed} failed\n",
        code(plan),
        if failed == 0 { "passed" } else { "**failed**" },
        findings.len(),
        count(Status::Pass),
        count(Status::Warn),
    );
    out.push_str("\n| check | subject | status | detail | fix |\n|---|---|---|---|---|\n");
    for f in findings {
        let status = match f.status {
            Status::Pass => "pass".to_owned(),
            other => format!("**{}**", other.as_str()),
        };
        let _ = writeln!(
            out,
            "| {} | {} | {status} | {} | {} |",
            cell(f.check),
            cell(&f.subject),
            cell(&f.detail),
            cell(f.fix.as_deref().unwrap_or_default())
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_workflow_command_data_and_properties() {
        assert_eq!(escape_data("100% done\r\nnext"), "100%25 done%0D%0Anext");
        assert_eq!(escape_property("a: b, c%"), "a%3A b%2C c%25");
    }

    #[test]
    fn escapes_table_cells() {
        assert_eq!(cell("a|b\nc\r\nd"), "a\\|b<br>c<br>d");
    }
}
