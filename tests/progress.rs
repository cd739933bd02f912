//! The run display off a terminal, through the real binary: plain lines, one per meaningful
//! event, with the simulated time and no wall-clock time, the same from run to run.

use std::path::Path;

use crate::common::{Run, drover};
use crate::snapshot;

const TABLES: [&str; 4] = ["customers", "products", "orders", "invoices"];

/// A drill of `plan` on the simulator, as fast as it computes.
fn drill(plan: &Path, dir: &Path, id: &str, extra: &[&str]) -> Run {
    let mut args = vec![
        "drill",
        plan.to_str().unwrap(),
        "--cloud",
        "sim",
        "--sim-speed",
        "1000000",
        "--run-id",
        id,
        "--state-dir",
        dir.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    drover(&args)
}

/// stderr without what changes from run to run: the state directory, the real time taken.
fn stable(stderr: &str, dir: &Path) -> String {
    stderr
        .lines()
        .filter(|l| !l.starts_with("simulated in "))
        .map(|l| l.replace(dir.to_str().unwrap(), "<state-dir>") + "\n")
        .collect()
}

/// No line carries a wall-clock timestamp (`2026-12-01T10:31:11…`).
fn assert_no_timestamps(stderr: &str) {
    for line in stderr.lines() {
        let stamp = line.as_bytes().windows(11).any(|w| {
            w[..4].iter().all(u8::is_ascii_digit) && w[4] == b'-' && w[7] == b'-' && w[10] == b'T'
        });
        assert!(!stamp, "a timestamp in: {line}");
    }
}

#[test]
fn a_sim_drill_prints_one_stable_line_per_event_and_counts_to_the_end() {
    let dir = tempfile::tempdir().unwrap();
    let plan = Path::new("plans/demo.yaml");
    let run = drill(plan, dir.path(), "demo-20261124t000000z-aaaa0001", &[]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    assert_no_timestamps(&run.stderr);
    for table in TABLES {
        for step in ["copy", "restore", "configure", "validate", "teardown"] {
            let line = format!("drill aaaa0001 {step} {table} -> us-west-2: succeeded (");
            assert!(run.stderr.contains(&line), "no `{line}` in:\n{}", run.stderr);
        }
        let line = format!("drill aaaa0001 recovery-point {table}: job ");
        assert!(run.stderr.contains(&line), "no `{line}` in:\n{}", run.stderr);
    }
    // The count only grows, one table at a time, to 4/4.
    let counts: Vec<u32> = run
        .stderr
        .lines()
        .filter_map(|l| l.split(" (").nth(1)?.split('/').next()?.parse().ok())
        .collect();
    assert!(counts.windows(2).all(|w| w[1] == w[0] || w[1] == w[0] + 1), "{counts:?}");
    assert_eq!(counts.last(), Some(&4));
    assert!(
        run.stderr.contains("] drill aaaa0001 finished: succeeded (4/4 validated in us-west-2)\n"),
        "{}",
        run.stderr
    );
    let lines = stable(&run.stderr, dir.path());
    let progress: String =
        lines.lines().filter(|l| l.starts_with("[sim +")).map(|l| format!("{l}\n")).collect();
    snapshot!("progress-drill-demo", progress);

    // The same events give the same lines, simulated times included.
    let again = tempfile::tempdir().unwrap();
    let run = drill(plan, again.path(), "demo-20261124t000000z-aaaa0001", &[]);
    assert_eq!(stable(&run.stderr, again.path()), lines);
}

#[test]
fn failures_and_what_they_block_have_their_lines_and_counts() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(crate::common::repo_root().join("plans/demo.yaml")).unwrap();
    // orders' validation asks for more items than the simulator seeds: it fails, and blocks
    // invoices (which depends on orders).
    let at = text.find("name: orders").unwrap();
    let at = at + text[at..].find("min_items: 1").unwrap();
    let text = format!("{}min_items: 1000000{}", &text[..at], &text[at + "min_items: 1".len()..]);
    let plan = dir.path().join("demo.yaml");
    std::fs::write(&plan, text).unwrap();
    let run = drill(&plan, dir.path(), "demo-20261124t000000z-aaaa0002", &[]);
    assert_eq!(run.code, 1, "{}", run.transcript());
    assert_no_timestamps(&run.stderr);
    let progress: String = run
        .stderr
        .lines()
        .filter(|l| l.starts_with("[sim +"))
        .filter(|l| l.contains("orders") || l.contains("invoices") || l.contains("finished"))
        .map(|l| format!("{l}\n"))
        .collect();
    snapshot!("progress-drill-failed", progress);
}

#[test]
fn json_logs_stay_tracing_events() {
    let dir = tempfile::tempdir().unwrap();
    let plan = Path::new("plans/demo.yaml");
    let run = drill(plan, dir.path(), "demo-20261124t000000z-aaaa0003", &["--log-format", "json"]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    assert!(!run.stderr.contains("[sim +"), "{}", run.stderr);
    let events: Vec<serde_json::Value> = run
        .stderr
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let succeeded = events
        .iter()
        .filter(|e| e["fields"]["message"] == "succeeded" && e["target"] == "drover::progress")
        .count();
    assert_eq!(succeeded, 4 * 6, "{}", run.stderr);
}
