//! Estimates: the executor simulated with sizes and a model.

#![allow(clippy::unwrap_used)]

use drover_engine::state::Limits;
use drover_plan::{Mode, Plan};
use drover_sim::estimate::{Simulation, Sizes, calibrate, default_realism, estimate_with};
use drover_sim::{DurationModel, Realism};

fn plan(tables: &str) -> Plan {
    let yaml = format!(
        "version: 1\nname: est\nsource: {{region: us-east-1, backup_vault: src}}\n\
         iam_role_arn: arn:aws:iam::123456789012:role/r\nobjectives: {{rto: 2h}}\ntargets:\n  \
         - {{region: us-west-2, backup_vault: dr, kms_key_arn: \"arn:aws:kms:us-west-2:123456789012:key/1111aaaa-22bb-33cc-44dd-555555eeeeee\"}}\n\
         tables:\n{tables}"
    );
    drover_plan::load("est.yaml", yaml.as_bytes()).plan.unwrap()
}

fn model() -> DurationModel {
    DurationModel { noise: 0.0, ..DurationModel::default() }
}

#[test]
fn a_chain_takes_the_sum_of_its_steps() {
    let p = plan(
        "  - name: alpha\n  - name: bravo\n    depends_on: [alpha]\n  - name: charlie\n    depends_on: [bravo]\n",
    );
    let gb = 1_000_000_000;
    let sizes = Sizes::from([
        ("alpha".to_owned(), gb),
        ("bravo".to_owned(), gb),
        ("charlie".to_owned(), gb),
    ]);
    let off = Realism { update_ms: 0, delete_ms: 0, ..Realism::off() };
    let e = estimate_with(&p, Mode::Failover, &sizes, model(), Limits::default(), &off).unwrap();
    let m = model();
    // Three restores and three validation scans in a row.
    let expected = 3 * (m.expected_ms(drover_sim::JobKind::Restore, gb) + m.scan_ms(gb, 4));
    let got = e.rto_ms;
    assert!(
        got >= expected && got <= expected + expected / 50,
        "{got} vs {expected}: within 2% (polling)"
    );
    assert_eq!(e.targets[0].dominating.len(), 3);
    assert!(e.targets[0].critical_path.first().unwrap().0.starts_with("alpha us-west-2"));

    // With AWS's behaviours (the default), each restored table also settles before it is
    // used, and its tags show a few seconds late.
    let realism = default_realism();
    let e =
        estimate_with(&p, Mode::Failover, &sizes, model(), Limits::default(), &realism).unwrap();
    let settle = i64::try_from(realism.restore_settle_ms + realism.tag_delay_ms).unwrap();
    let expected = expected + 3 * settle;
    let got = e.rto_ms;
    assert!(
        got >= expected && got <= expected + expected / 20,
        "{got} vs {expected}: within 5% (polling)"
    );
}

#[test]
fn quotas_bound_wide_plans() {
    let tables: String = (0..100).map(|i| format!("  - name: t{i:03}\n")).collect();
    let p = plan(&tables);
    let sizes: Sizes = (0..100).map(|i| (format!("t{i:03}"), 100_000_000)).collect();
    let limits = Limits { restores: 10, ..Limits::default() };
    let e = estimate_with(&p, Mode::Failover, &sizes, model(), limits, &Realism::off()).unwrap();
    let one = model().expected_ms(drover_sim::JobKind::Restore, 100_000_000);
    // Ten rounds of ten restores.
    assert!(e.rto_ms >= 10 * one, "{} vs {}", e.rto_ms, 10 * one);
    assert!(e.rto_ms <= 11 * one, "{} vs {}", e.rto_ms, 11 * one);
}

#[test]
fn calibration_recovers_the_model_of_past_runs() {
    let tables: String = (0..8).map(|i| format!("  - name: tbl{i}\n")).collect();
    let p = plan(&tables);
    let sizes: Sizes = (0..8).map(|i| (format!("tbl{i}"), (i + 1) * 2_000_000_000)).collect();
    let truth = DurationModel {
        restore_base_s: 120.0,
        restore_mb_s: 40.0,
        copy_base_s: 30.0,
        copy_mb_s: 80.0,
        ..model()
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap();
    let fit = |realism: &Realism| {
        let runs: Vec<_> = (0..3)
            .map(|seed| {
                let simulation = Simulation {
                    seed,
                    realism: realism.clone(),
                    ..Simulation::new(truth, Limits::default())
                };
                rt.block_on(simulation.run(&p, Mode::Drill, &sizes)).unwrap().0
            })
            .collect();
        calibrate(&runs, model())
    };
    let (fitted, counts) = fit(&Realism::off());
    assert_eq!(counts["restore"], 24);
    // Polling adds a little to every job: within 5%.
    assert!((fitted.restore_mb_s - 40.0).abs() / 40.0 < 0.05, "{fitted:?}");
    assert!((fitted.copy_mb_s - 80.0).abs() / 80.0 < 0.05, "{fitted:?}");
    assert!(fitted.restore_base_s > 100.0 && fitted.restore_base_s < 150.0, "{fitted:?}");
    // Calibration fits steps, not jobs: runs on a cloud whose restored tables settle (AWS, and
    // the default realism) give a restore base that holds the settling too.
    let realism = default_realism();
    let (settled, _) = fit(&realism);
    #[allow(clippy::cast_precision_loss)]
    let settle_s = realism.restore_settle_ms as f64 / 1000.0;
    let extra = settled.restore_base_s - fitted.restore_base_s;
    assert!((extra - settle_s).abs() < 15.0, "{extra} s more, settling takes {settle_s} s");
    assert!((settled.restore_mb_s - 40.0).abs() / 40.0 < 0.05, "{settled:?}");
}

/// A point-in-time recovery (`plan --estimate --mode pitr`): the engine's recover run against
/// source tables with PITR on; every restore takes at least the 20 minutes AWS's take at any
/// size, then settles and is validated.
#[test]
fn a_point_in_time_recovery_takes_at_least_twenty_minutes() {
    let p = plan("  - name: alpha\n  - name: bravo\n    depends_on: [alpha]\n");
    let mb = 1_000_000;
    let sizes = Sizes::from([("alpha".to_owned(), mb), ("bravo".to_owned(), 1000 * mb)]);
    let e =
        estimate_with(&p, Mode::Recover, &sizes, model(), Limits::default(), &default_realism())
            .unwrap();
    let m = model();
    let twenty = 20 * 60 * 1000;
    // Two restores in a row (bravo waits for alpha's validation).
    let restores = m.pitr_restore_ms(mb) + m.pitr_restore_ms(1000 * mb);
    assert!(m.pitr_restore_ms(mb) >= twenty);
    assert!(e.rto_ms >= restores, "{} vs {restores}", e.rto_ms);
    assert!(e.rto_ms <= restores + restores / 10, "{} vs {restores}: within 10%", e.rto_ms);
    assert!(
        e.targets[0]
            .critical_path
            .iter()
            .any(|(k, d)| k == "bravo us-west-2 restore" && *d >= twenty),
        "{:?}",
        e.targets[0].critical_path
    );
    // An instant model makes it instant (but for polling and the realism's settling).
    let off = Realism { update_ms: 0, delete_ms: 0, ..Realism::off() };
    let e =
        estimate_with(&p, Mode::Recover, &sizes, DurationModel::instant(), Limits::default(), &off)
            .unwrap();
    assert!(e.rto_ms < 60_000, "{}", e.rto_ms);
}

/// Duration models saved before point-in-time restores were timed load with AWS's 20 minutes.
#[test]
fn older_duration_models_load_with_the_pitr_defaults() {
    let mut old = serde_json::to_value(DurationModel::default()).unwrap();
    let obj = old.as_object_mut().unwrap();
    obj.remove("pitr_restore_base_s");
    obj.remove("pitr_restore_mb_s");
    let m: DurationModel = serde_json::from_value(old).unwrap();
    assert_eq!(m, DurationModel::default());
    assert_eq!(m.pitr_restore_base_s, 1200.0);
    assert_eq!(DurationModel::instant().pitr_restore_ms(1 << 40), 0);
}

/// A recover run's restore steps are point-in-time restores, never samples of restore jobs:
/// they calibrate `pitr-restore` from the sizes journaled with them, and only that.
#[test]
fn calibration_counts_point_in_time_restores_apart() {
    let p = plan("  - name: alpha\n  - name: bravo\n");
    let sizes = Sizes::from([("alpha".to_owned(), 1_000_000), ("bravo".to_owned(), 2_000_000)]);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap();
    let sim = Simulation::new(model(), Limits::default());
    let (state, _) = rt.block_on(sim.run(&p, Mode::Recover, &sizes)).unwrap();
    let (fitted, counts) = calibrate(&[state], model());
    assert_eq!(counts, std::collections::BTreeMap::from([("pitr-restore", 2)]), "{counts:?}");
    let m = model();
    assert_eq!(
        (fitted.restore_base_s, fitted.restore_mb_s, fitted.backup_base_s),
        (m.restore_base_s, m.restore_mb_s, m.backup_base_s)
    );
    // Fitted to the simulated restores' own durations: at least the 20-minute floor.
    assert!(fitted.pitr_restore_base_s >= 1100.0, "{fitted:?}");
    assert!(fitted.pitr_restore_ms(1_000_000) >= 1_190_000, "{fitted:?}");
}
