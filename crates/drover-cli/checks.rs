//! `drover preflight` and `drover check`, and the preflight that precedes every run.

use std::fmt::Write as _;

use drover_engine::graph::Shape;
use drover_engine::preflight::{self, Finding, Status};
use drover_engine::state::{DEFAULT_PITR_TEMPLATE, Pitr, PitrNames, PitrTime};
use drover_plan::{Mode, Plan};
use serde_json::json;

use crate::access::{self, Instead, Side};
use crate::args::{CheckArgs, CheckFormat, CloudArgs, PointsArgs, PreflightArgs, StatusFormat};
use crate::cloud::Cloud;
use crate::exit::{CliError, Exit};
use crate::output;
use crate::support::{load_plan, runtime};

/// The findings as a table, with fixes and a count.
pub(crate) fn render(findings: &[Finding]) -> String {
    let w_check = findings.iter().map(|f| f.check.len()).max().unwrap_or(5).max(5);
    let w_subject = findings.iter().map(|f| f.subject.len()).max().unwrap_or(7).clamp(7, 60);
    let mut out = format!("{:<w_check$}  {:<w_subject$}  STATUS  DETAIL\n", "CHECK", "SUBJECT");
    for f in findings {
        let _ = writeln!(
            out,
            "{:<w_check$}  {:<w_subject$}  {:<6}  {}",
            f.check,
            f.subject,
            f.status.as_str(),
            f.detail
        );
    }
    let fixes: Vec<&Finding> =
        findings.iter().filter(|f| f.status != Status::Pass && f.fix.is_some()).collect();
    if !fixes.is_empty() {
        out.push_str("\nto fix:\n");
        for f in fixes {
            let _ = writeln!(
                out,
                "  {} {}: {}",
                f.check,
                f.subject,
                f.fix.as_deref().unwrap_or_default()
            );
        }
    }
    let count = |s: Status| findings.iter().filter(|f| f.status == s).count();
    let _ = write!(
        out,
        "\n{} checks: {} passed, {} warned, {} failed",
        findings.len(),
        count(Status::Pass),
        count(Status::Warn),
        count(Status::Fail)
    );
    out
}

fn failed(findings: &[Finding]) -> bool {
    findings.iter().any(|f| f.status == Status::Fail)
}

fn as_json(findings: &[Finding]) -> serde_json::Value {
    json!({ "passed": !failed(findings), "findings": findings })
}

fn escape_xml(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// JUnit XML: each finding a test case, failures as `<failure>`.
pub(crate) fn junit(suite: &str, findings: &[Finding]) -> String {
    let failures = findings.iter().filter(|f| f.status == Status::Fail).count();
    let mut out = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites>\n  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\">\n",
        escape_xml(suite),
        findings.len()
    );
    for f in findings {
        let _ = write!(
            out,
            "    <testcase classname=\"{}\" name=\"{}\"",
            escape_xml(f.check),
            escape_xml(&f.subject)
        );
        match f.status {
            Status::Fail => {
                let _ = writeln!(
                    out,
                    ">\n      <failure message=\"{}\">{}</failure>\n    </testcase>",
                    escape_xml(&f.detail),
                    escape_xml(f.fix.as_deref().unwrap_or_default())
                );
            }
            _ => {
                let _ = writeln!(
                    out,
                    ">\n      <system-out>{}</system-out>\n    </testcase>",
                    escape_xml(&f.detail)
                );
            }
        }
    }
    out.push_str("  </testsuite>\n</testsuites>\n");
    out
}

fn cloud_for(args: &CloudArgs, plan: &Plan, mode: Mode, command: &str) -> Option<Cloud> {
    match Cloud::new(args.cloud, &args.aws, &args.sim, plan, mode, command) {
        Ok(cloud) => Some(cloud),
        Err(e) => {
            output::error(&e);
            None
        }
    }
}

/// The plan's RTO objective against an estimate from the source tables' current sizes (a
/// warning when it exceeds: an estimate never blocks a recovery). Failovers read no source,
/// so they take sizes from the recovery points in the target vaults.
async fn objective_finding(plan: &Plan, mode: Mode, cloud: &Cloud) -> Option<Finding> {
    let rto = plan.objectives.rto?;
    let mut sizes = drover_sim::estimate::Sizes::new();
    for t in &plan.tables {
        let bytes = match mode {
            Mode::Failover => {
                let target = plan.targets.iter().find(|x| t.targets.contains(&x.region))?;
                let points = cloud
                    .ports
                    .backup
                    .list_recovery_points(
                        target.region.as_str(),
                        &target.backup_vault,
                        plan.source.region.as_str(),
                        &t.name,
                    )
                    .await
                    .ok()?;
                points.iter().filter_map(|p| p.size_bytes).next().unwrap_or(0)
            }
            _ => {
                cloud
                    .ports
                    .tables
                    .describe_table(plan.source.region.as_str(), &t.name)
                    .await
                    .ok()??
                    .size_bytes
            }
        };
        sizes.insert(t.name.clone(), bytes);
    }
    let (model, note) =
        crate::estimate::model(&crate::args::ModelArgs { sizes: None, history: None });
    let plan2 = plan.clone();
    let estimate = match tokio::task::spawn_blocking(move || {
        crate::estimate::run(&plan2, mode, &sizes, model)
    })
    .await
    {
        Ok(Ok(e)) => e,
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "no RTO estimate");
            return None;
        }
        Err(e) => {
            tracing::warn!(error = %e, "no RTO estimate");
            return None;
        }
    };
    let subject = format!("RTO objective {}", drover_plan::format_duration(rto));
    let detail = format!("estimated {} ({note})", drover_engine::report::human(estimate.rto_ms));
    Some(if crate::estimate::exceeds(plan, &estimate) {
        Finding {
            check: "objective",
            subject,
            status: Status::Warn,
            detail: format!("{detail}: exceeds the objective"),
            fix: Some("see `drover plan PLAN --estimate` for the critical path; raise limits, split large tables, or revise the objective".to_owned()),
        }
    } else {
        Finding { check: "objective", subject, status: Status::Pass, detail, fix: None }
    })
}

pub(crate) fn preflight_cmd(args: &PreflightArgs) -> Result<Exit, CliError> {
    let Some((plan, _)) = load_plan(&args.plan) else { return Ok(Exit::Failure) };
    let mode: Mode = args.mode.into();
    let Some(cloud) = cloud_for(&args.cloud, &plan, mode, "preflight") else {
        return Ok(Exit::Failure);
    };
    // Drill names depend on the run id; check them for a placeholder short id.
    let findings = runtime()?.block_on(async {
        access::check(&plan, side(mode), &cloud, Instead::Sim).await?;
        let mut findings = if mode == Mode::Recover {
            latest_pitr_preflight(&plan, &cloud).await
        } else {
            preflight::preflight(&plan, mode, &cloud.ports, "preflight").await
        };
        findings.extend(objective_finding(&plan, mode, &cloud).await);
        // The state store a run would use, when one is named.
        if args.state.state.is_some() || args.state.state_dir.is_some() {
            let store = crate::state_store::open(
                &args.state,
                &cloud.aws_options(),
                drover_engine::store::lease::DEFAULT_TTL,
            )
            .await?;
            findings.extend(preflight::state_store(&plan, &store).await);
        }
        Ok::<_, String>(findings)
    });
    let findings = match findings {
        Ok(findings) => findings,
        Err(sentence) => {
            output::error(&sentence);
            return Ok(Exit::Failure);
        }
    };
    match args.format {
        StatusFormat::Text => output::stdout_line(&render(&findings))?,
        StatusFormat::Json => output::stdout_line(&as_json(&findings).to_string())?,
    }
    crate::ci::after_check("preflight", &plan.name, &findings);
    Ok(if failed(&findings) { Exit::Failure } else { Exit::Success })
}

pub(crate) fn check_cmd(args: &CheckArgs) -> Result<Exit, CliError> {
    let Some((plan, _)) = load_plan(&args.plan) else { return Ok(Exit::Failure) };
    let mode = if args.pitr { Mode::Recover } else { Mode::Failover };
    let Some(cloud) = cloud_for(&args.cloud, &plan, mode, "check") else {
        return Ok(Exit::Failure);
    };
    if args.pitr && args.notify.publish_metrics {
        output::error(
            "--publish-metrics puts the recovery points' readiness, not point-in-time recovery's: \
             leave out one of --pitr and --publish-metrics",
        );
        return Ok(Exit::Usage);
    }
    let rt = runtime()?;
    let checked = rt.block_on(async {
        if args.pitr {
            // Point-in-time recovery lives in the source region.
            access::check(&plan, Side::Source, &cloud, Instead::Sim).await?;
            return Ok((preflight::pitr::readiness(&plan, &cloud.ports).await, Vec::new()));
        }
        access::check(&plan, Side::Target(None), &cloud, Instead::Sim).await?;
        Ok::<_, String>(preflight::readiness_points(&plan, &cloud.ports).await)
    });
    let (findings, points) = match checked {
        Ok(checked) => checked,
        Err(sentence) => {
            output::error(&sentence);
            return Ok(Exit::Failure);
        }
    };
    let published = rt.block_on(async {
        crate::notify::check_failed(&plan, args.pitr, &findings, &args.notify, &cloud).await;
        !args.notify.publish_metrics
            || crate::notify::publish_readiness(&plan, &points, &cloud).await
    });
    match args.format {
        CheckFormat::Text => output::stdout_line(&render(&findings))?,
        CheckFormat::Json => output::stdout_line(&as_json(&findings).to_string())?,
        CheckFormat::Junit => {
            output::stdout_line(&junit(&format!("drover check {}", plan.name), &findings))?
        }
    }
    crate::ci::after_readiness(args.pitr, &plan.name, &findings);
    Ok(if failed(&findings) || !published { Exit::Failure } else { Exit::Success })
}

/// The preflight before a run: prints the findings when any is not a pass; `false` when the
/// run must not start.
pub(crate) async fn before_run(
    plan: &Plan,
    mode: Mode,
    cloud: &Cloud,
    store: &drover_engine::store::Store,
    short_id: &str,
) -> bool {
    if !reachable(plan, mode, cloud).await {
        return false;
    }
    let mut findings = preflight::preflight(plan, mode, &cloud.ports, short_id).await;
    findings.extend(objective_finding(plan, mode, cloud).await);
    findings.extend(preflight::state_store(plan, store).await);
    may_start(&findings)
}

/// Prints the findings of a run's preflight when any is not a pass; whether the run may start.
fn may_start(findings: &[Finding]) -> bool {
    if findings.iter().any(|f| f.status != Status::Pass) {
        output::stderr(&render(findings));
    }
    if failed(findings) {
        output::error("preflight failed; nothing was started (fix the above, or --skip-preflight)");
        return false;
    }
    true
}

/// The preflight before a point-in-time run (`recover`, `drill --pitr`), with the RTO
/// objective against a point-in-time estimate; prints the findings when any is not a pass;
/// `false` when the run must not start.
pub(crate) async fn before_pitr_run(
    plan: &Plan,
    shape: Shape,
    pitr: &Pitr,
    cloud: &Cloud,
    store: &drover_engine::store::Store,
    short_id: &str,
) -> bool {
    let mut findings = preflight::pitr::preflight(plan, shape, pitr, &cloud.ports, short_id).await;
    findings.extend(objective_finding(plan, Mode::Recover, cloud).await);
    findings.extend(preflight::state_store(plan, store).await);
    may_start(&findings)
}

/// `drover preflight --mode pitr`: a recover to the latest instant every table can be restored
/// to, under the default names.
async fn latest_pitr_preflight(plan: &Plan, cloud: &Cloud) -> Vec<Finding> {
    let windows = preflight::pitr::windows(plan, &cloud.ports).await;
    let at = match preflight::pitr::latest_common(&windows) {
        Ok(at) => at,
        Err(e) => {
            return vec![Finding {
                check: "pitr-window",
                subject: format!("plan {}", plan.name),
                status: Status::Fail,
                detail: format!("no instant every table can be restored to: {e}"),
                fix: Some("`drover check PLAN --pitr` shows each table's window".to_owned()),
            }];
        }
    };
    let pitr = Pitr {
        at,
        requested: PitrTime::Latest,
        chosen_at: cloud.ports.clock.now(),
        into_source: false,
        names: PitrNames::Template(DEFAULT_PITR_TEMPLATE.to_owned()),
    };
    preflight::pitr::preflight(
        plan,
        Shape::new(Mode::Recover, false),
        &pitr,
        &cloud.ports,
        "preflight",
    )
    .await
}

/// The side of the plan a `mode` run reads first: a failover never calls the source.
fn side(mode: Mode) -> Side<'static> {
    if mode == Mode::Failover { Side::Target(None) } else { Side::Source }
}

/// Whether the cloud a `mode` run talks to can be reached and lets drover in; when not, says
/// why and what to do (one sentence, `crate::access`) and that nothing was started. The
/// preflight before a run begins with it; a resumed run, which has no preflight, can call it
/// before it continues.
pub(crate) async fn reachable(plan: &Plan, mode: Mode, cloud: &Cloud) -> bool {
    match access::check(plan, side(mode), cloud, Instead::Sim).await {
        Ok(()) => true,
        Err(sentence) => {
            output::error(&format!("nothing was started: {sentence}"));
            false
        }
    }
}

/// `drover points`: every recovery point of each table in the source vault and each target
/// vault, newest first.
pub(crate) fn points_cmd(args: &PointsArgs) -> Result<Exit, CliError> {
    let Some((plan, _)) = load_plan(&args.plan) else { return Ok(Exit::Failure) };
    if let Some(t) = &args.target
        && !plan.targets.iter().any(|x| x.region.as_str() == t)
    {
        output::error(&format!("`{t}` is not a target of the plan"));
        return Ok(Exit::Usage);
    }
    let Some(cloud) = cloud_for(&args.cloud, &plan, Mode::Failover, "points") else {
        return Ok(Exit::Failure);
    };
    let src = plan.source.region.as_str();
    let mut vaults: Vec<(String, String)> = Vec::new();
    if args.target.is_none() {
        vaults.push((src.to_owned(), plan.source.backup_vault.clone()));
    }
    for t in &plan.targets {
        if args.target.as_deref().is_none_or(|want| want == t.region.as_str()) {
            vaults.push((t.region.to_string(), t.backup_vault.clone()));
        }
    }
    let now = cloud.ports.clock.now();
    let rpo = plan.objectives.rpo.map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    let mut rows = Vec::new();
    let mut errors = 0;
    let side = match &args.target {
        None => Side::Source,
        Some(region) => Side::Target(Some(region)),
    };
    let rt = runtime()?;
    if let Err(sentence) = rt.block_on(access::check(&plan, side, &cloud, Instead::Sim)) {
        output::error(&sentence);
        return Ok(Exit::Failure);
    }
    rt.block_on(async {
        for (region, vault) in &vaults {
            for t in &plan.tables {
                match cloud.ports.backup.list_recovery_points(region, vault, src, &t.name).await {
                    Ok(points) => {
                        for p in points {
                            let age = now - p.created_at;
                            rows.push(json!({
                                "region": region,
                                "vault": vault,
                                "table": t.name,
                                "arn": p.arn,
                                "created_at": drover_engine::run::format_time(p.created_at),
                                "age_seconds": age / 1000,
                                "size_bytes": p.size_bytes,
                                "status": p.status,
                                "encryption_key_arn": p.encryption_key_arn,
                                "within_rpo": rpo.map(|r| age <= r),
                            }));
                        }
                    }
                    Err(e) => {
                        errors += 1;
                        output::error(&format!("{} in vault {vault} ({region}): {e}", t.name));
                    }
                }
            }
        }
    });
    match args.format {
        StatusFormat::Json => output::stdout_line(&json!({ "points": rows }).to_string())?,
        StatusFormat::Text => {
            let mut out = format!(
                "{:<14}  {:<16}  {:<24}  {:<20}  {:>8}  {:>12}  {:<10}  {:<6}  KEY\n",
                "REGION", "VAULT", "TABLE", "CREATED", "AGE", "BYTES", "STATUS", "IN RPO"
            );
            for r in &rows {
                let age = r["age_seconds"].as_i64().unwrap_or(0);
                let _ = writeln!(
                    out,
                    "{:<14}  {:<16}  {:<24}  {:<20}  {:>8}  {:>12}  {:<10}  {:<6}  {}",
                    r["region"].as_str().unwrap_or_default(),
                    r["vault"].as_str().unwrap_or_default(),
                    r["table"].as_str().unwrap_or_default(),
                    r["created_at"].as_str().unwrap_or_default(),
                    drover_plan::format_duration(std::time::Duration::from_secs(
                        u64::try_from(age).unwrap_or(0)
                    )),
                    r["size_bytes"].as_u64().map_or("-".to_owned(), |b| b.to_string()),
                    r["status"].as_str().unwrap_or_default(),
                    match r["within_rpo"].as_bool() {
                        Some(true) => "yes",
                        Some(false) => "no",
                        None => "-",
                    },
                    r["encryption_key_arn"].as_str().unwrap_or("-"),
                );
            }
            let _ = write!(out, "{} recovery points", rows.len());
            output::stdout_line(&out)?;
        }
    }
    Ok(if errors > 0 { Exit::Failure } else { Exit::Success })
}
