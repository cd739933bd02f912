//! Point-in-time recovery: the checks before a run that restores from it (`drover recover`,
//! `drover drill --pitr`), the instant `--latest` means, and PITR readiness
//! (`drover check --pitr`).
//!
//! Every table must be recoverable to the one instant: PITR on, and the instant inside
//! [`EarliestRestorableDateTime`, `LatestRestorableDateTime`] (DescribeContinuousBackups). One
//! table out of its window stops the run before anything starts.

use drover_plan::{Mode, Plan, format_duration};

use super::{
    Finding, Status, accounts, age, fail, name_free, pass, patient, source_table, target_key,
};
use crate::graph::Shape;
use crate::ports::{CloudResult, ContinuousBackups, Millis, Ports};
use crate::run::format_time;
use crate::state::Pitr;

/// Each source table's point-in-time recovery (DescribeContinuousBackups in the source region),
/// in plan order.
pub async fn windows(plan: &Plan, ports: &Ports) -> Vec<(String, CloudResult<ContinuousBackups>)> {
    let src = plan.source.region.as_str();
    let mut out = Vec::with_capacity(plan.tables.len());
    for t in &plan.tables {
        let w = patient(ports, || ports.tables.continuous_backups(src, &t.name)).await;
        out.push((t.name.clone(), w));
    }
    out
}

/// The latest instant every table can be restored to, in whole seconds (`--latest`): the
/// earliest of the tables' `LatestRestorableDateTime`s.
///
/// # Errors
/// A sentence naming a table that has no window (PITR off, or its window could not be read),
/// or the tables whose windows do not overlap.
pub fn latest_common(
    windows: &[(String, CloudResult<ContinuousBackups>)],
) -> Result<Millis, String> {
    let mut latest: Option<(Millis, &str)> = None;
    let mut earliest: Option<(Millis, &str)> = None;
    for (table, w) in windows {
        let w = match w {
            Ok(w) => w,
            Err(e) => {
                return Err(format!("the restorable window of `{table}` could not be read: {e}"));
            }
        };
        let (Some(e), Some(l), true) = (w.earliest, w.latest, w.enabled) else {
            return Err(format!(
                "point-in-time recovery is off on `{table}`: enable it, or leave the table out of the plan"
            ));
        };
        if latest.is_none_or(|(m, _)| l < m) {
            latest = Some((l, table));
        }
        if earliest.is_none_or(|(m, _)| e > m) {
            earliest = Some((e, table));
        }
    }
    let Some((l, lt)) = latest else { return Err("the plan has no tables".to_owned()) };
    let at = l.div_euclid(1000) * 1000;
    match earliest {
        Some((e, et)) if e > at => Err(format!(
            "no instant is restorable for every table: `{et}` can be restored from {} only, `{lt}` up to {} only",
            format_time(e),
            format_time(l)
        )),
        _ => Ok(at),
    }
}

/// One table's window against the instant.
fn window_finding(
    table: &str,
    src: &str,
    at: Millis,
    w: &CloudResult<ContinuousBackups>,
) -> Finding {
    let subject = format!("{table} in {src}");
    let enable = format!(
        "aws dynamodb update-continuous-backups --region {src} --table-name {table} \
         --point-in-time-recovery-specification PointInTimeRecoveryEnabled=true"
    );
    let w = match w {
        Ok(w) => w,
        Err(e) => {
            return fail(
                "pitr-window",
                subject,
                e.to_string(),
                "allow dynamodb:DescribeContinuousBackups",
            );
        }
    };
    let (true, Some(e), Some(l)) = (w.enabled, w.earliest, w.latest) else {
        return fail(
            "pitr-window",
            subject,
            "point-in-time recovery is off (once on, it restores only to instants after it was enabled)",
            enable,
        );
    };
    let window = format!("[{}, {}]", format_time(e), format_time(l));
    let when = format_time(at);
    if at < e {
        return fail(
            "pitr-window",
            subject,
            format!("{when} is before its restorable window {window}"),
            format!(
                "recover to an instant at or after {} (--to), or restore from a backup (`drover failover --at`); the window starts when PITR was enabled, or RecoveryPeriodInDays ago",
                format_time(e)
            ),
        );
    }
    if at > l {
        return fail(
            "pitr-window",
            subject,
            format!(
                "{when} is after its restorable window {window} (it ends about five minutes before now)"
            ),
            format!(
                "recover to an instant at or before {} (--to, or --latest), or wait until the window reaches {when}",
                format_time(l)
            ),
        );
    }
    pass("pitr-window", subject, format!("{when} is inside its restorable window {window}"))
}

/// Every check a point-in-time run of `plan` needs to pass before it starts: the accounts, the
/// source tables and their windows, the targets' keys and accounts, and the new names free.
pub async fn preflight(
    plan: &Plan,
    shape: Shape,
    pitr: &Pitr,
    ports: &Ports,
    short_id: &str,
) -> Vec<Finding> {
    let src = plan.source.region.as_str();
    let mut out = accounts::identities(plan, ports).await;
    if out.iter().any(|f| f.status == Status::Fail) {
        return out;
    }
    for t in &plan.tables {
        out.push(source_table(ports, src, &t.name).await);
    }
    for (table, w) in windows(plan, ports).await {
        out.push(window_finding(&table, src, pitr.at, &w));
    }
    let check = if shape.mode == Mode::Drill { "drill-name" } else { "recover-name" };
    for (region, ids) in shape.places(plan) {
        if region != src {
            let Some(target) = plan.targets.iter().find(|t| t.region.as_str() == region) else {
                continue;
            };
            if plan.crosses_accounts(target) {
                out.push(fail(
                    "pitr-account",
                    format!("target {region}"),
                    format!(
                        "the target is in account {}, the source in {}: point-in-time recovery restores within one account",
                        plan.target_account(target),
                        plan.source_account()
                    ),
                    "recover beside the source (--into-source), or from backups copied to that account (`drover failover`)",
                ));
                continue;
            }
            out.push(target_key(plan, target, ports).await);
        }
        for id in ids {
            let name = crate::run::restored_name(
                plan,
                shape.mode,
                Some(pitr),
                &plan.table(id).name,
                &region,
                short_id,
            );
            out.push(name_free(ports, check, &region, &name).await);
        }
    }
    out
}

/// PITR readiness (`drover check --pitr`): per table, whether PITR is on and its restorable
/// window, with the RPO a recovery to its latest restorable time achieves now against the
/// plan's objective.
pub async fn readiness(plan: &Plan, ports: &Ports) -> Vec<Finding> {
    let src = plan.source.region.as_str();
    let now = ports.clock.now();
    let mut out = Vec::new();
    for (table, w) in windows(plan, ports).await {
        let subject = format!("{table} in {src}");
        let w = match w {
            Ok(w) => w,
            Err(e) => {
                out.push(fail(
                    "pitr",
                    subject,
                    e.to_string(),
                    "allow dynamodb:DescribeContinuousBackups",
                ));
                continue;
            }
        };
        let (true, Some(e), Some(l)) = (w.enabled, w.earliest, w.latest) else {
            out.push(fail(
                "pitr",
                subject,
                "point-in-time recovery is off: the table cannot be recovered to an instant",
                format!(
                    "aws dynamodb update-continuous-backups --region {src} --table-name {table} \
                     --point-in-time-recovery-specification PointInTimeRecoveryEnabled=true"
                ),
            ));
            continue;
        };
        let lag = age(now, l);
        let span = age(l, e);
        let days = w.recovery_period_days.map_or_else(String::new, |d| format!(", kept {d} days"));
        let detail = format!(
            "restorable from {} to {} ({} of history{days}); RPO now {}",
            format_time(e),
            format_time(l),
            format_duration(span),
            format_duration(lag)
        );
        out.push(match plan.objectives.rpo {
            Some(rpo) if lag > rpo => fail(
                "pitr",
                subject,
                format!("{detail}, beyond the RPO of {}", format_duration(rpo)),
                "the latest restorable time lags: check the table's state, or raise the RPO objective",
            ),
            _ => pass("pitr", subject, detail),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{CloudError, ErrorKind};

    fn on(earliest: Millis, latest: Millis) -> CloudResult<ContinuousBackups> {
        Ok(ContinuousBackups {
            enabled: true,
            earliest: Some(earliest),
            latest: Some(latest),
            recovery_period_days: Some(35),
        })
    }

    #[test]
    fn latest_is_the_earliest_of_the_latest_times_to_the_second() {
        let w = vec![("a".to_owned(), on(0, 10_500)), ("b".to_owned(), on(1_000, 9_700))];
        assert_eq!(latest_common(&w), Ok(9_000));
    }

    #[test]
    fn latest_refuses_a_table_without_pitr_or_windows_that_do_not_meet() {
        let off = Ok(ContinuousBackups::default());
        let w = vec![("a".to_owned(), on(0, 10_000)), ("b".to_owned(), off)];
        assert!(latest_common(&w).unwrap_err().contains("`b`"));
        let w = vec![("a".to_owned(), on(0, 10_000)), ("b".to_owned(), on(20_000, 30_000))];
        let e = latest_common(&w).unwrap_err();
        assert!(e.contains("`b` can be restored from") && e.contains("`a` up to"), "{e}");
        let err = Err(CloudError::new(ErrorKind::AccessDenied, "DescribeContinuousBackups", "no"));
        assert!(latest_common(&[("a".to_owned(), err)]).unwrap_err().contains("could not be read"));
    }

    #[test]
    fn a_window_finding_names_the_window_and_the_fix() {
        let w = on(60_000, 120_000);
        assert_eq!(window_finding("t", "us-east-1", 90_000, &w).status, Status::Pass);
        let before = window_finding("t", "us-east-1", 1_000, &w);
        assert_eq!(before.status, Status::Fail);
        assert!(
            before.detail.contains(
                "before its restorable window [1970-01-01T00:01:00Z, 1970-01-01T00:02:00Z]"
            ),
            "{}",
            before.detail
        );
        assert!(before.fix.unwrap().contains("at or after 1970-01-01T00:01:00Z"));
        let after = window_finding("t", "us-east-1", 200_000, &w);
        assert!(after.fix.unwrap().contains("at or before 1970-01-01T00:02:00Z"));
        let off = window_finding("t", "us-east-1", 90_000, &Ok(ContinuousBackups::default()));
        assert!(
            off.detail.contains("off") && off.fix.unwrap().contains("update-continuous-backups")
        );
    }
}
