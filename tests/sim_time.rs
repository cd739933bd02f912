//! Simulated time through the binary: a `--cloud sim` run is a discrete-event simulation, so
//! its journal and reports are a function of the plan, the options and the seed — the same
//! at any `--sim-speed` and on a loaded machine — and, without noise, its recovery time is
//! the estimate's. Plus the flags that only fit some runs.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::Value;

use crate::common::drover;

const PLAN: &str = "plans/shop-prod.yaml";
const RUN_ID: &str = "shop-prod-same-00000001";

fn drill(dir: &Path, extra: &[&str]) {
    let d = dir.to_str().unwrap();
    let mut args = vec!["drill", PLAN, "--cloud", "sim", "--run-id", RUN_ID, "--state-dir", d];
    args.extend_from_slice(extra);
    let run = drover(&args);
    assert_eq!(run.code, 0, "{}", run.transcript());
}

/// `drover drill plans/demo.yaml --cloud sim --sim-speed max` in `d`, with `extra`.
fn demo(d: &str, extra: &[&str]) -> crate::common::Run {
    let mut args = vec!["drill", "plans/demo.yaml", "--cloud", "sim", "--sim-speed", "max"];
    args.extend_from_slice(extra);
    args.extend(["--state-dir", d]);
    drover(&args)
}

/// The run's journal and its reports in every format.
fn outputs(dir: &Path) -> Vec<(String, String)> {
    let d = dir.to_str().unwrap();
    let mut out = vec![(
        "journal".to_owned(),
        std::fs::read_to_string(dir.join("runs").join(RUN_ID).join("journal.jsonl")).unwrap(),
    )];
    for format in ["json", "md", "junit", "html"] {
        let report = drover(&["report", RUN_ID, "--state-dir", d, "--format", format]);
        assert_eq!(report.code, 0, "{}", report.transcript());
        out.push((format.to_owned(), report.stdout));
    }
    out
}

/// Keeps every core busy until dropped.
struct Load(Arc<AtomicBool>, Vec<std::thread::JoinHandle<()>>);

impl Load {
    fn start() -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let cores = std::thread::available_parallelism().map_or(2, usize::from);
        let threads = (0..cores * 2)
            .map(|i| {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    let mut x: u64 = i as u64 + 1;
                    while !stop.load(Ordering::Relaxed) {
                        x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                        std::hint::black_box(x);
                    }
                })
            })
            .collect();
        Load(stop, threads)
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
        for t in self.1.drain(..) {
            let _ = t.join();
        }
    }
}

#[test]
fn the_same_sim_drill_at_two_speeds_and_under_load_is_byte_identical() {
    let fast = tempfile::tempdir().unwrap();
    drill(fast.path(), &["--sim-speed", "max"]);
    let paced = tempfile::tempdir().unwrap();
    {
        let _load = Load::start();
        drill(paced.path(), &["--sim-speed", "2000"]);
    }
    let (a, b) = (outputs(fast.path()), outputs(paced.path()));
    for ((name, x), (_, y)) in a.iter().zip(&b) {
        assert!(x == y, "the {name} differs between --sim-speed max and 2000 under load");
    }
    // The times are simulated ones, and labelled so.
    let json: Value = serde_json::from_str(&a[1].1).unwrap();
    assert_eq!(json["simulated"], true);
    assert_eq!(json["outcome"], "succeeded");
    assert!(a[2].1.contains("(simulated time)"), "{}", a[2].1);
}

#[test]
fn without_noise_a_sim_drill_takes_exactly_the_estimate() {
    let dir = tempfile::tempdir().unwrap();
    drill(dir.path(), &["--sim-speed", "max", "--sim-noise", "0"]);
    let d = dir.path().to_str().unwrap();
    let report = drover(&["report", RUN_ID, "--state-dir", d, "--format", "json"]);
    let report: Value = serde_json::from_str(&report.stdout).unwrap();
    let plan = drover(&[
        "plan",
        PLAN,
        "--estimate",
        "--cloud",
        "sim",
        "--mode",
        "drill",
        "--format",
        "json",
    ]);
    assert_eq!(plan.code, 0, "{}", plan.transcript());
    let plan: Value = serde_json::from_str(&plan.stdout).unwrap();
    let estimate = &plan["estimate"];
    assert!(estimate["rto_ms"].is_i64(), "{estimate}");
    assert_eq!(report["recovery_time_ms"], estimate["rto_ms"]);
}

#[test]
fn a_sim_summary_says_its_times_are_simulated() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let run = demo(d, &[]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    assert!(run.stdout.contains("started 2026-01-01T00:00:00Z (simulated time)"), "{}", run.stdout);
    assert!(run.stdout.contains("(simulated time); every table"), "{}", run.stdout);
    assert!(run.stderr.contains("of real time"), "{}", run.stderr);
    let runs = drover(&["runs", "--state-dir", d]);
    assert!(runs.stdout.contains("succeeded (simulated)"), "{}", runs.stdout);
}

#[test]
fn flags_only_where_they_mean_something() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    for (args, says) in [
        (&["failover", "plans/demo.yaml", "--cloud", "sim", "--yes", "--keep"][..], "--keep"),
        (&["backup", "plans/demo.yaml", "--cloud", "sim", "--keep"], "--keep"),
        (
            &["drill", "plans/demo.yaml", "--sim-seed", "3"],
            "--sim-seed is an option of the simulated cloud",
        ),
        (
            &["drill", "plans/demo.yaml", "--sim-speed", "max"],
            "--sim-speed is an option of the simulated cloud",
        ),
        (
            &["preflight", "plans/demo.yaml", "--sim-items", "5"],
            "--sim-items is an option of the simulated cloud",
        ),
        (
            &["drill", "plans/demo.yaml", "--cloud", "sim", "--sim-speed", "fast"],
            "not a positive number or `max`",
        ),
        (
            &["drill", "plans/demo.yaml", "--cloud", "sim", "--sim-noise", "2"],
            "--sim-noise must be between 0 and 1",
        ),
    ] {
        let mut args = args.to_vec();
        if !["preflight", "plan"].contains(&args[0]) {
            args.extend(["--state-dir", d]);
        }
        let run = drover(&args);
        assert_eq!(run.code, 2, "{args:?}: {}", run.transcript());
        assert!(run.stderr.contains(says), "{args:?}: {}", run.stderr);
        assert!(!dir.path().join("runs").exists(), "{args:?} started a run");
    }
}

#[test]
fn any_run_id_of_letters_digits_and_dashes_runs_and_names_its_drill_tables() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let run = demo(d, &["--keep", "--run-id", "nightly-1"]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    let status = drover(&["status", "nightly-1", "--state-dir", d, "--format", "json"]);
    let status: Value = serde_json::from_str(&status.stdout).unwrap();
    let restored: Vec<String> = status["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["step"] == "restore")
        .map(|s| s["output"]["table_name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(restored.len(), 4, "{status}");
    // Its short id is derived (8 hex digits), the same for every table of the run.
    let short: Vec<&str> = restored.iter().map(|n| &n[n.len() - 8..]).collect();
    assert!(short.iter().all(|s| *s == short[0]), "{restored:?}");
    assert!(short[0].bytes().all(|b| b.is_ascii_hexdigit()), "{restored:?}");
    for bad in ["Nightly", "a_b", &"a".repeat(65)] {
        let run = drover(&[
            "drill",
            "plans/demo.yaml",
            "--cloud",
            "sim",
            "--run-id",
            bad,
            "--state-dir",
            d,
        ]);
        assert_eq!(run.code, 2, "{bad}: {}", run.transcript());
        assert!(
            run.stderr.contains("must be 1 to 64 lowercase letters, digits or `-`"),
            "{}",
            run.stderr
        );
    }
}
