//! `drover sweep` through the real binary, on the simulator (the worlds `--cloud sim` runs
//! leave in the state directory): the listing, the refusal without `--yes` off a terminal, JSON,
//! deletion, and a second sweep that finds nothing.

use std::path::Path;

use serde_json::{Value, json};

use crate::aws::{DST, SRC, setup};
use crate::common::drover;
use crate::snapshot;

const RUN: &str = "shop-demo-20261124t000000z-5eee0001";

fn world(dir: &Path, run_id: &str) -> Value {
    let text = std::fs::read_to_string(dir.join("runs").join(run_id).join("sim.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// A sweep's transcript without what changes from run to run: the state directory, the ages
/// (the simulator's clock runs with real time) and the recovery point ids.
fn stable(transcript: &str, state_dir: &str) -> String {
    let text = transcript.replace(state_dir, "[state]");
    let mut age: Option<(usize, usize)> = None;
    let mut out = String::new();
    for line in text.lines() {
        if let (Some(a), Some(w)) = (line.find("  AGE"), line.find("  WHY")) {
            age = Some((a + 2, w + 2));
        }
        let mut line = line.to_owned();
        if let Some((a, w)) = age
            && !line.starts_with("ACTION")
            && line.len() > w
            && line.is_char_boundary(a)
            && line.is_char_boundary(w)
        {
            line.replace_range(a..w, &format!("{:<width$}", "[age]", width = w - a));
        }
        if line.is_empty() {
            age = None;
        }
        while let Some(at) = line.find("recovery-point:") {
            let start = at + "recovery-point:".len();
            let end = line[start..].find(' ').map_or(line.len(), |e| start + e);
            if &line[start..end] == "[id]" {
                break;
            }
            line.replace_range(start..end, "[id]");
        }
        out.push_str(&line);
        out.push('\n');
    }
    // The normalised point ARNs are equal: keep one order.
    out
}

#[test]
fn a_kept_sim_drill_is_listed_refused_without_yes_and_swept_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let drill = drover(&[
        "drill",
        "plans/demo.yaml",
        "--cloud",
        "sim",
        "--keep",
        "--run-id",
        RUN,
        "--state-dir",
        d,
    ]);
    assert_eq!(drill.code, 0, "{}", drill.transcript());
    let sweep = |extra: &[&str]| {
        let mut args = vec!["sweep", "plans/demo.yaml", "--cloud", "sim", "--state-dir", d];
        args.extend_from_slice(extra);
        drover(&args)
    };

    // Minutes old (simulated time): younger than the default day.
    let young = sweep(&[]);
    assert_eq!(young.code, 0, "{}", young.transcript());
    snapshot!("sweep-young", stable(&young.transcript(), d));

    // Not on a terminal and no --yes: listed, refused, nothing deleted.
    let refused = sweep(&["--older-than", "0s"]);
    assert_eq!(refused.code, 1, "{}", refused.transcript());
    snapshot!("sweep-unconfirmed", stable(&refused.transcript(), d));
    assert_eq!(
        world(dir.path(), RUN)["regions"]["us-west-2"]["tables"].as_object().unwrap().len(),
        4
    );

    let dry = sweep(&["--older-than", "0s", "--dry-run", "--format", "json"]);
    assert_eq!(dry.code, 0, "{}", dry.transcript());
    let listing: Value = serde_json::from_str(&dry.stdout).unwrap();
    assert_eq!(listing["dry_run"], true);
    assert_eq!(listing["counts"], json!({"delete": 12, "deleted": 0, "failed": 0, "spare": 0}));
    let items = listing["items"].as_array().unwrap();
    assert!(items.iter().all(|i| i["reason"] == "run-finished" && i["run"] == RUN), "{listing}");
    assert_eq!(items.iter().filter(|i| i["kind"] == "table").count(), 4);
    assert_eq!(items.iter().filter(|i| i["kind"] == "recovery-point").count(), 8);

    let swept = sweep(&["--older-than", "0s", "--yes"]);
    assert_eq!(swept.code, 0, "{}", swept.transcript());
    snapshot!("sweep-deleted", stable(&swept.transcript(), d));
    let w = world(dir.path(), RUN);
    assert_eq!(w["regions"]["us-west-2"]["tables"], json!({}), "no drill table left");
    assert_eq!(w["regions"]["us-east-1"]["tables"].as_object().unwrap().len(), 4, "source kept");
    // Deleting a recovery point is asynchronous: a point may still be DELETING in the saved
    // world (the simulator ends the state at its next call), never left as it was.
    for (region, vault) in [("us-east-1", "prod-vault"), ("us-west-2", "dr-usw2")] {
        let points = w["regions"][region]["vaults"][vault]["points"].as_object().unwrap();
        assert!(points.values().all(|p| p["deleting_until"].is_number()), "{region}: {points:?}");
    }

    let again = sweep(&["--older-than", "0s", "--yes", "--format", "json"]);
    assert_eq!(again.code, 0, "{}", again.transcript());
    let again: Value = serde_json::from_str(&again.stdout).unwrap();
    assert_eq!(again["items"], json!([]));
    assert_eq!(again["succeeded"], true);
}

#[test]
fn bad_sweep_flags_are_usage_errors_and_an_empty_state_directory_sweeps_nothing() {
    for args in [
        &["sweep", "plans/demo.yaml", "--older-than", "soon"][..],
        &["sweep", "plans/demo.yaml", "--older-than", "-1d"],
        &["sweep", "plans/demo.yaml", "--yes", "--dry-run"],
        &["sweep"],
    ] {
        let run = drover(args);
        assert_eq!(run.code, 2, "{args:?}: {}", run.transcript());
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let run = drover(&["sweep", "plans/demo.yaml", "--cloud", "sim", "--state-dir", d]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    assert!(run.stdout.contains("nothing found"), "{}", run.stdout);
    assert!(run.stderr.contains("no simulated world to sweep"), "{}", run.stderr);
}

/// A kept drill on the emulator in realism mode (tags shown late, tables and points DELETING a
/// while, lists in pages of two, passing faults), then `sweep --older-than 0s --yes`: no drill
/// table and no drill recovery point is left, the decoy table with a drill-like name stays, and
/// a second sweep finds nothing to delete.
#[test]
fn a_kept_drill_on_the_emulator_is_swept_and_the_decoy_stays() {
    let s = setup(0.3);
    let plan = s.plan.to_str().unwrap();
    let state = s.state();
    let id = "emu-20261124t000000z-5eee0002";
    let drill = s.cloud_cli(&["drill", plan, "--keep", "--run-id", id, "--state-dir", &state]);
    assert_eq!(drill.code, 0, "{}\n{}", drill.transcript(), s.emu.log());
    let before = s.inspect();
    assert_eq!(before[DST]["tables"].as_object().unwrap().len(), 6, "5 drill tables and the decoy");

    let swept = s.cloud_cli(&["sweep", plan, "--older-than", "0s", "--yes", "--state-dir", &state]);
    assert_eq!(swept.code, 0, "{}\n{}", swept.transcript(), s.emu.log());
    assert!(
        swept.stdout.lines().any(|l| l.starts_with("spare")
            && l.contains("orders-drill-decoy000")
            && l.contains("lacks drover's ownership tags")),
        "{}",
        swept.stdout
    );
    let deleted = swept.stdout.lines().filter(|l| l.starts_with("deleted")).count();
    assert_eq!(deleted, 15, "5 drill tables, 5 source points, 5 copies:\n{}", swept.stdout);
    let world = s.inspect();
    let left: Vec<&String> = world[DST]["tables"].as_object().unwrap().keys().collect();
    assert_eq!(left, ["orders-drill-decoy000"], "no drill table left, the decoy kept");
    assert_eq!(world[SRC]["tables"].as_object().unwrap().len(), 5, "the source is untouched");
    assert_eq!(s.points_left(), json!({}), "no drill recovery point left");

    let again = s.cloud_cli(&["sweep", plan, "--older-than", "0s", "--state-dir", &state]);
    assert_eq!(again.code, 0, "{}", again.transcript());
    assert!(!again.stdout.lines().any(|l| l.starts_with("delete")), "{}", again.stdout);
}
