//! Runs through the real binary on the simulated cloud: drill, failover, status, resume after
//! SIGKILL and Ctrl-C, the state-directory lock, plan changes, teardown.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::common::{drover, repo_root, wait};

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_drover"));
    c.current_dir(repo_root()).env("NO_COLOR", "1").stdin(Stdio::null());
    c
}

fn state_dir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

fn status_json(dir: &Path, run_id: &str) -> Value {
    let run = drover(&["status", run_id, "--format", "json", "--state-dir", dir.to_str().unwrap()]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    serde_json::from_str(&run.stdout).unwrap()
}

/// The simulator's world, as the run left it.
fn world(dir: &Path, run_id: &str) -> Value {
    let text = std::fs::read_to_string(dir.join("runs").join(run_id).join("sim.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

#[test]
fn a_sim_drill_runs_end_to_end_and_reports() {
    let dir = state_dir();
    let d = dir.path().to_str().unwrap();
    let id = "demo-20261124t000000z-aaaa0001";
    let run =
        drover(&["drill", "plans/demo.yaml", "--cloud", "sim", "--run-id", id, "--state-dir", d]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    assert!(run.stdout.contains(": succeeded"), "{}", run.stdout);
    assert!(run.stdout.contains("every table restored and validated after"), "{}", run.stdout);
    let status = status_json(dir.path(), id);
    assert_eq!(status["state"], "succeeded");
    assert_eq!(status["mode"], "drill");
    let steps = status["steps"].as_array().unwrap();
    // 4 tables: one backup each, then copy, restore, configure, validate, teardown.
    assert_eq!(steps.len(), 4 * 6);
    assert!(steps.iter().all(|s| s["phase"] == "succeeded"));
    let w = world(dir.path(), id);
    assert_eq!(w["jobs_started"], serde_json::json!({"backup": 4, "copy": 4, "restore": 4}));
    let runs = drover(&["runs", "--state-dir", d]);
    assert!(runs.stdout.contains(id) && runs.stdout.contains("succeeded"), "{}", runs.stdout);
    // Resuming a finished run does nothing.
    let again = drover(&["resume", id, "--state-dir", d]);
    assert_eq!(again.code, 0);
    assert!(again.stderr.contains("already succeeded"));
}

#[test]
fn a_sim_drill_into_a_recovery_account_restores_there() {
    let dir = state_dir();
    let d = dir.path().to_str().unwrap();
    let id = "shop-dr-account-20261201t000000z-aaaa0002";
    let plan = "plans/shop-dr-account.yaml";
    let run = drover(&["drill", plan, "--cloud", "sim", "--run-id", id, "--state-dir", d]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    let journal =
        std::fs::read_to_string(dir.path().join("runs").join(id).join("journal.jsonl")).unwrap();
    // The recovery account's target restores in that account, the other in production's.
    assert!(journal.contains("arn:aws:dynamodb:eu-west-1:210987654321:table/orders-drill-"));
    assert!(journal.contains("arn:aws:dynamodb:us-west-2:123456789012:table/orders-drill-"));
    assert!(!journal.contains("arn:aws:dynamodb:eu-west-1:123456789012:table/"), "{journal}");
    let status = status_json(dir.path(), id);
    assert_eq!(status["state"], "succeeded");
}

#[test]
fn a_sim_failover_needs_confirmation_and_restores_under_own_names() {
    let dir = state_dir();
    let d = dir.path().to_str().unwrap();
    let unconfirmed = drover(&["failover", "plans/demo.yaml", "--cloud", "sim", "--state-dir", d]);
    assert_eq!(unconfirmed.code, 2, "{}", unconfirmed.transcript());
    assert!(unconfirmed.stderr.contains("--yes"));
    let id = "demo-20261124t000000z-bbbb0001";
    let run = drover(&[
        "failover",
        "plans/demo.yaml",
        "--cloud",
        "sim",
        "--yes",
        "--run-id",
        id,
        "--state-dir",
        d,
    ]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    let status = status_json(dir.path(), id);
    assert_eq!(status["state"], "succeeded");
    let restore = status["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["step"] == "restore")
        .unwrap()
        .clone();
    assert_eq!(restore["output"]["table_name"], restore["table"], "restored under its own name");
}

#[test]
fn a_sim_recover_restores_every_table_to_one_instant() {
    let dir = state_dir();
    let d = dir.path().to_str().unwrap();
    let id = "demo-20261124t000000z-cccc0001";
    let to = "2025-12-31T23:30:00Z";
    let args = [
        "recover",
        "plans/demo.yaml",
        "--cloud",
        "sim",
        "--to",
        to,
        "--run-id",
        id,
        "--state-dir",
        d,
    ];
    let run = drover(&args);
    assert_eq!(run.code, 0, "{}", run.transcript());
    assert!(run.stderr.contains(&format!("every table is restored to {to}")), "{}", run.stderr);
    let status = status_json(dir.path(), id);
    assert_eq!(status["state"], "succeeded");
    assert_eq!(status["mode"], "recover");
    let steps = status["steps"].as_array().unwrap();
    // 4 tables, each restored, configured and validated: no backup, copy or restore job.
    assert_eq!(steps.len(), 4 * 3, "{steps:?}");
    let names: Vec<&str> = steps
        .iter()
        .filter(|s| s["step"] == "restore")
        .map(|s| s["output"]["table_name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"orders-at-20251231T233000Z"), "{names:?}");
    let w = world(dir.path(), id);
    assert_eq!(w["jobs_started"], serde_json::json!({}));
    let report = drover(&["report", id, "--state-dir", d]);
    assert!(
        report.stdout.contains("every table restored to **2025-12-31T23:30:00Z**"),
        "{}",
        report.stdout
    );
}

/// `--latest` is chosen once: a recover killed mid-run resumes to the instant it chose, however
/// much later the resume comes.
#[test]
fn a_killed_sim_recover_resumes_to_the_instant_it_chose() {
    let dir = state_dir();
    let d = dir.path().to_str().unwrap();
    let id = "demo-20261124t000000z-cccc0002";
    let mut child = bin()
        .args(["recover", "plans/demo.yaml", "--cloud", "sim", "--latest", "--sim-speed", "600"])
        .args(["--run-id", id, "--state-dir", d])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(2500));
    child.kill().unwrap();
    child.wait().unwrap();
    let before = status_json(dir.path(), id);
    assert_ne!(before["state"], "succeeded", "the run ended before the kill");
    let resumed = drover(&["resume", id, "--state-dir", d]);
    assert_eq!(resumed.code, 0, "{}", resumed.transcript());
    let status = status_json(dir.path(), id);
    assert_eq!(status["state"], "succeeded");
    // The simulated world starts at 2026-01-01T00:00:00Z; its latest restorable time is five
    // minutes before.
    let names: Vec<&str> = status["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["step"] == "restore")
        .map(|s| s["output"]["table_name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 4, "{names:?}");
    assert!(names.iter().all(|n| n.ends_with("-at-20251231T235500Z")), "{names:?}");
    let w = world(dir.path(), id);
    let restored = w["tables_restored"].as_object().unwrap();
    assert!(restored.values().all(|n| n == 1), "a table was restored twice: {restored:?}");
}

#[test]
fn recover_flags_are_checked_before_anything_starts() {
    for (args, says) in [
        (&["recover", "plans/demo.yaml", "--cloud", "sim"][..], "name the instant"),
        (&["drill", "plans/demo.yaml", "--cloud", "sim", "--latest"], "add --pitr"),
        (
            &[
                "recover",
                "plans/demo.yaml",
                "--cloud",
                "sim",
                "--latest",
                "--name-template",
                "{tabel}-x",
            ],
            "did you mean `{table}`",
        ),
        (
            &[
                "recover",
                "plans/demo.yaml",
                "--cloud",
                "sim",
                "--latest",
                "--name-template",
                "restored",
            ],
            "no `{table}`",
        ),
        (
            &[
                "recover",
                "plans/demo.yaml",
                "--cloud",
                "sim",
                "--latest",
                "--to",
                "2026-01-01T00:00:00Z",
            ],
            "cannot be used with",
        ),
        (
            &["recover", "plans/demo.yaml", "--cloud", "sim", "--latest", "--names-from-plan"],
            "--yes",
        ),
        (
            &[
                "recover",
                "plans/demo.yaml",
                "--cloud",
                "sim",
                "--latest",
                "--into-source",
                "--name-template",
                "{table}",
            ],
            "a table of the plan",
        ),
    ] {
        let run = drover(args);
        assert_eq!(run.code, 2, "{args:?}: {}", run.transcript());
        assert!(run.stderr.contains(says), "{args:?}: {}", run.stderr);
    }
    // An instant the simulated world's windows do not reach fails preflight with the fix.
    let dir = state_dir();
    let d = dir.path().to_str().unwrap();
    let run = drover(&[
        "recover",
        "plans/demo.yaml",
        "--cloud",
        "sim",
        "--to",
        "2025-01-01T00:00:00Z",
        "--state-dir",
        d,
    ]);
    assert_eq!(run.code, 1, "{}", run.transcript());
    assert!(run.stderr.contains("is before its restorable window"), "{}", run.stderr);
    assert!(run.stderr.contains("preflight failed; nothing was started"), "{}", run.stderr);
}

#[test]
fn bad_run_flags_are_usage_errors() {
    for args in [
        &["drill", "plans/demo.yaml", "--cloud", "sim", "--run-id", "Not Valid"][..],
        &["drill", "plans/demo.yaml", "--cloud", "moon"],
        &["drill", "plans/demo.yaml", "--max-restores", "0"],
        &["resume"],
    ] {
        let run = drover(args);
        assert_eq!(run.code, 2, "{args:?}: {}", run.transcript());
    }
}

fn spawn_drill(dir: &Path, id: &str, speed: &str) -> std::process::Child {
    bin()
        .args([
            "drill",
            "plans/shop-prod.yaml",
            "--cloud",
            "sim",
            "--sim-speed",
            speed,
            "--run-id",
            id,
        ])
        .args(["--state-dir", dir.to_str().unwrap(), "--sim-items", "1000"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn resume(dir: &Path, id: &str) -> std::process::Child {
    bin()
        .args(["resume", id, "--state-dir", dir.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// Waits for a child, killing it after `limit`.

#[test]
fn sigkill_at_random_moments_then_resume_completes_without_duplicates() {
    let dir = state_dir();
    let id = "shop-prod-20261124t000000z-cccc0001";
    // A deterministic sequence of kill delays (xorshift), bounded in count.
    let mut seed: u64 = 0x2545_F491_4F6C_DD1D;
    let mut delay = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        Duration::from_millis(100 + seed % 600)
    };
    let mut child = spawn_drill(dir.path(), id, "500");
    let mut kills = 0;
    let mut finished = None;
    for _ in 0..12 {
        std::thread::sleep(delay());
        if let Some(status) = child.try_wait().unwrap() {
            finished = status.code();
            break;
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        kills += 1;
        child = resume(dir.path(), id);
    }
    if finished.is_none() {
        finished = wait(&mut child, Duration::from_secs(120));
    }
    assert_eq!(finished, Some(0), "the run did not complete after {kills} kills");
    assert!(kills >= 3, "only {kills} kills landed; the run was too quick to test");
    let status = status_json(dir.path(), id);
    assert_eq!(status["state"], "succeeded");
    let w = world(dir.path(), id);
    // shop-prod: 12 tables, 11 of them in eu-west-1 too: 12 backups, 23 copies, 23 restores.
    assert_eq!(
        w["jobs_started"],
        serde_json::json!({"backup": 12, "copy": 23, "restore": 23}),
        "a job was started twice"
    );
    let restored = w["tables_restored"].as_object().unwrap();
    assert_eq!(restored.len(), 23);
    assert!(restored.values().all(|n| n == 1), "a table was restored twice: {restored:?}");
}

#[test]
fn ctrl_c_interrupts_cleanly_and_resume_continues() {
    let dir = state_dir();
    let id = "shop-prod-20261124t000000z-dddd0001";
    let mut child = spawn_drill(dir.path(), id, "200");
    std::thread::sleep(Duration::from_millis(800));
    let sent = Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(sent.success());
    assert_eq!(wait(&mut child, Duration::from_secs(30)), Some(130));
    let status = status_json(dir.path(), id);
    assert_eq!(status["state"], "interrupted");
    let mut child = resume(dir.path(), id);
    // The resumed run is paced by default (a few seconds).
    assert_eq!(wait(&mut child, Duration::from_secs(120)), Some(0));
    assert_eq!(status_json(dir.path(), id)["state"], "succeeded");
}

#[test]
fn one_run_at_a_time_per_state_directory() {
    let dir = state_dir();
    let mut first = spawn_drill(dir.path(), "shop-prod-20261124t000000z-eeee0001", "100");
    std::thread::sleep(Duration::from_millis(500));
    let second = drover(&[
        "drill",
        "plans/demo.yaml",
        "--cloud",
        "sim",
        "--state-dir",
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(second.code, 1, "{}", second.transcript());
    assert!(second.stderr.contains("another drover is running"), "{}", second.stderr);
    first.kill().unwrap();
    first.wait().unwrap();
    // The killed process's lock is released by the OS: the directory is usable again.
    let third = drover(&[
        "drill",
        "plans/demo.yaml",
        "--cloud",
        "sim",
        "--state-dir",
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(third.code, 0, "{}", third.transcript());
}

#[test]
fn resume_refuses_a_changed_plan_unless_forced() {
    let dir = state_dir();
    let plan_dir = tempfile::tempdir().unwrap();
    let plan = plan_dir.path().join("demo.yaml");
    std::fs::copy(repo_root().join("plans/demo.yaml"), &plan).unwrap();
    let id = "shop-demo-20261124t000000z-ffff0001";
    let mut child = bin()
        .args([
            "drill",
            plan.to_str().unwrap(),
            "--cloud",
            "sim",
            "--sim-speed",
            "100",
            "--run-id",
            id,
        ])
        .args(["--state-dir", dir.path().to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    child.kill().unwrap();
    child.wait().unwrap();
    let text = std::fs::read_to_string(&plan).unwrap();
    std::fs::write(&plan, text.replace("tags: {tier: \"1\"}", "tags: {tier: \"2\"}")).unwrap();
    let d = dir.path().to_str().unwrap();
    let refused = drover(&["resume", id, "--state-dir", d]);
    assert_eq!(refused.code, 1);
    assert!(
        refused.stderr.contains("changed since run") && refused.stderr.contains("--force"),
        "{}",
        refused.stderr
    );
    let forced = drover(&["resume", id, "--force", "--state-dir", d]);
    assert_eq!(forced.code, 0, "{}", forced.transcript());
}

#[test]
fn kept_drill_tables_are_torn_down_later() {
    let dir = state_dir();
    let d = dir.path().to_str().unwrap();
    let id = "shop-demo-20261124t000000z-abab0001";
    let run = drover(&[
        "drill",
        "plans/demo.yaml",
        "--cloud",
        "sim",
        "--keep",
        "--run-id",
        id,
        "--state-dir",
        d,
    ]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    assert!(!run.stdout.contains("TEARDOWN"));
    let tables = world(dir.path(), id)["regions"]["us-west-2"]["tables"].as_object().unwrap().len();
    assert_eq!(tables, 4);
    let down = drover(&["teardown", id, "--state-dir", d]);
    assert_eq!(down.code, 0, "{}", down.transcript());
    let tables = world(dir.path(), id)["regions"]["us-west-2"]["tables"].as_object().unwrap().len();
    assert_eq!(tables, 0);
    // The run had ended before its teardown: it ends again (not left unfinished).
    assert_eq!(status_json(dir.path(), id)["state"], "succeeded");
}

#[test]
fn a_sim_backup_copies_without_restoring() {
    let dir = state_dir();
    let d = dir.path().to_str().unwrap();
    let id = "shop-demo-20261124t000000z-bcbc0001";
    let run =
        drover(&["backup", "plans/demo.yaml", "--cloud", "sim", "--run-id", id, "--state-dir", d]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    let status = status_json(dir.path(), id);
    assert_eq!(status["mode"], "backup");
    assert_eq!(status["steps"].as_array().unwrap().len(), 8);
    assert_eq!(world(dir.path(), id)["jobs_started"], serde_json::json!({"backup": 4, "copy": 4}));
}

/// A journal edited by hand, or copied from another run of another plan, is refused by
/// every command that reads it, with the reason; nothing is resumed from it.
#[test]
fn modified_and_foreign_journals_are_refused_with_a_clear_error() {
    let dir = state_dir();
    let d = dir.path().to_str().unwrap();
    let demo = "shop-demo-20261125t000000z-7a000001";
    let prod = "shop-prod-20261125t000000z-7a000002";
    for (plan, id) in [("plans/demo.yaml", demo), ("plans/shop-prod.yaml", prod)] {
        let run = drover(&["drill", plan, "--cloud", "sim", "--run-id", id, "--state-dir", d]);
        assert_eq!(run.code, 0, "{}", run.transcript());
    }
    let journal = |id: &str| dir.path().join("runs").join(id).join("journal.jsonl");
    let original = std::fs::read_to_string(journal(demo)).unwrap();
    let refused = |what: &str, needle: &str| {
        for args in [
            vec!["resume", demo, "--state-dir", d],
            vec!["status", demo, "--state-dir", d],
            vec!["report", demo, "--state-dir", d],
        ] {
            let run = drover(&args);
            assert_eq!(run.code, 1, "{what}: {args:?}: {}", run.transcript());
            assert!(run.stderr.contains(needle), "{what}: {args:?}: {}", run.stderr);
        }
        let runs = drover(&["runs", "--state-dir", d]);
        assert!(
            runs.stdout.contains(demo) && runs.stdout.contains(needle),
            "{what}: {}",
            runs.stdout
        );
    };

    // A record in the middle edited (a failure turned into a success, say).
    let mut lines: Vec<String> = original.lines().map(str::to_owned).collect();
    lines[4] = lines[4].replacen("\"seq\":5", "\"seq\":5,\"note\":\"edited\"", 1);
    std::fs::write(journal(demo), lines.join("\n") + "\n").unwrap();
    refused("an edited record", "record on line 5 is corrupt or was modified");

    // A record removed.
    let mut lines: Vec<&str> = original.lines().collect();
    lines.remove(3);
    std::fs::write(journal(demo), lines.join("\n") + "\n").unwrap();
    refused("a removed record", "record on line 4 is corrupt or was modified");

    // Another plan's journal in this run's place.
    std::fs::copy(journal(prod), journal(demo)).unwrap();
    refused("another run's journal", &format!("records run `{prod}` of plan `shop-prod`"));

    // Put back, the run reads again: the refusals were about the journal, not the run.
    std::fs::write(journal(demo), &original).unwrap();
    assert_eq!(drover(&["status", demo, "--state-dir", d]).code, 0);
}
