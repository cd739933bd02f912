//! Estimates: the executor simulated with sizes and a model.

#![allow(clippy::unwrap_used)]

use drover_engine::state::Limits;
use drover_plan::{Mode, Plan};
use drover_sim::DurationModel;
use drover_sim::estimate::{Sizes, calibrate, estimate, simulate};

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
    let e = estimate(&p, Mode::Failover, &sizes, model(), Limits::default()).unwrap();
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
}

#[test]
fn quotas_bound_wide_plans() {
    let tables: String = (0..100).map(|i| format!("  - name: t{i:03}\n")).collect();
    let p = plan(&tables);
    let sizes: Sizes = (0..100).map(|i| (format!("t{i:03}"), 100_000_000)).collect();
    let limits = Limits { restores: 10, ..Limits::default() };
    let e = estimate(&p, Mode::Failover, &sizes, model(), limits).unwrap();
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
    let runs: Vec<_> = (0..3)
        .map(|seed| {
            rt.block_on(simulate(&p, Mode::Drill, &sizes, truth, Limits::default(), seed)).unwrap()
        })
        .collect();
    let (fitted, counts) = calibrate(&runs, model());
    assert_eq!(counts["restore"], 24);
    // Polling adds a little to every job: within 5%.
    assert!((fitted.restore_mb_s - 40.0).abs() / 40.0 < 0.05, "{fitted:?}");
    assert!((fitted.copy_mb_s - 80.0).abs() / 80.0 < 0.05, "{fitted:?}");
    assert!(fitted.restore_base_s > 100.0 && fitted.restore_base_s < 150.0, "{fitted:?}");
}
