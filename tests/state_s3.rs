//! Run state on S3 (`--state s3://...`), against the emulator's S3 over HTTP on 127.0.0.1:
//! racing processes, a killed holder taken over from another directory, the store
//! unreachable mid-run, Ctrl-C, `drover unlock`, and tampered objects. The drill and
//! failover end to end on S3 state are in `aws.rs`, beside their directory twins.

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::aws::{STATE_BUCKET, Setup, Store, s3_keys, s3_retried, setup};
use crate::common::{aws_command, wait};

/// A short lease, so that a killed holder's lease expires within the test.
const TTL: &str = "3s";

impl Setup {
    /// `drover ARGS` on the emulator with the state in the test bucket, from `cwd` (the
    /// repository root when `None`), its output kept.
    fn spawn_on_s3(&self, args: &[&str], cwd: Option<&std::path::Path>) -> Child {
        let url = self.emu.url();
        let state = self.state_url(Store::Bucket);
        let mut all = args.to_vec();
        all.extend(["--endpoint-url", &url, "--state", &state]);
        if matches!(args.first(), Some(&("drill" | "backup" | "failover"))) {
            all.extend(["--cloud", "aws", "--poll-interval", "500ms"]);
        }
        let mut command = aws_command(&all);
        if let Some(cwd) = cwd {
            command.current_dir(cwd);
        }
        command.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap()
    }

    /// Runs `drover ARGS` as [`Setup::spawn_on_s3`] does, to its end.
    fn on_s3(&self, args: &[&str]) -> crate::common::Run {
        finish(self.spawn_on_s3(args, None), Duration::from_secs(180))
    }

    fn lease(&self, id: &str) -> Option<serde_json::Value> {
        let got =
            s3_retried(&self.emu, "GET", &format!("/{STATE_BUCKET}/e2e/runs/{id}/lease.json"), "");
        (got.status == 200).then(|| serde_json::from_str(&got.body).unwrap())
    }
}

/// Waits for a child (killing it after `limit`) and collects its output.
fn finish(mut child: Child, limit: Duration) -> crate::common::Run {
    let code = wait(&mut child, limit).unwrap_or(-1);
    let out = child.wait_with_output().unwrap();
    crate::common::Run {
        code,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Waits until `check` holds (polling), or panics after `limit` saying `what`.
fn until(limit: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// How many calls of `operation` the emulator answered (its call log: cheap to poll).
fn calls(s: &Setup, operation: &str) -> u64 {
    s.emu.calls()["by_operation"][operation].as_u64().unwrap_or(0)
}

/// Kills a drill once its restores are under way (SIGKILL: no cleanup, the lease stays).
fn kill_once_restoring(s: &Setup, mut child: Child) {
    until(Duration::from_secs(120), "the drill's first restore job", || {
        calls(s, "backup:StartRestoreJob") > 0
    });
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn two_processes_starting_the_same_run_one_proceeds_and_no_job_starts_twice() {
    let s = setup(0.3);
    let plan = s.plan.to_str().unwrap().to_owned();
    let id = "emu-20261124t000000z-race0001";
    let args = ["drill", plan.as_str(), "--run-id", id, "--skip-preflight"];
    let a = s.spawn_on_s3(&args, None);
    let b = s.spawn_on_s3(&args, None);
    let (a, b) = (finish(a, Duration::from_secs(180)), finish(b, Duration::from_secs(180)));
    let (won, lost) = if a.code == 0 { (a, b) } else { (b, a) };
    assert_eq!(won.code, 0, "{}", won.transcript());
    assert_eq!(lost.code, 1, "{}", lost.transcript());
    assert!(
        lost.stderr.contains("is held by") || lost.stderr.contains("exists already"),
        "the loser says why: {}",
        lost.stderr
    );
    s.assert_one_job_per_table("two processes raced for one run");
    let status = s.reader(Store::Bucket, &["status", id]);
    assert!(status.stdout.contains("succeeded"), "{}", status.transcript());
}

#[test]
fn a_killed_holder_is_taken_over_from_another_directory_without_a_job_twice() {
    let s = setup(1.0);
    let plan = s.plan.to_str().unwrap().to_owned();
    let id = "emu-20261124t000000z-kill0001";
    let child = s.spawn_on_s3(&["drill", &plan, "--run-id", id, "--lease-ttl", TTL], None);
    kill_once_restoring(&s, child);
    let lease = s.lease(id).expect("a killed holder leaves its lease");
    // Another machine: another directory, no local state at all.
    let elsewhere = tempfile::tempdir().unwrap();
    let resumed = finish(
        s.spawn_on_s3(&["resume", id, "--wait", "1m"], Some(elsewhere.path())),
        Duration::from_secs(240),
    );
    assert_eq!(resumed.code, 0, "{}\n{}", resumed.transcript(), s.emu.log());
    assert!(
        resumed.stderr.contains("took over run")
            && resumed.stderr.contains(lease["lease"].as_str().unwrap()),
        "it says whose lease it took over: {}",
        resumed.stderr
    );
    assert!(!elsewhere.path().join(".drover").exists(), "nothing was kept locally");
    let world = s.assert_one_job_per_table("after a SIGKILL and a takeover");
    let left: Vec<&String> = world[crate::aws::DST]["tables"].as_object().unwrap().keys().collect();
    assert_eq!(left, ["orders-drill-decoy000"], "every drill table torn down, once");
    // One unbroken chain: it reads, and replays to a finished run.
    let status = s.reader(Store::Bucket, &["status", id, "--format", "json"]);
    assert_eq!(status.code, 0, "{}", status.transcript());
    let json: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    assert_eq!(json["state"], "succeeded");
    assert!(s.lease(id).is_none(), "the lease was released at the end");
}

#[test]
fn a_live_lease_is_refused_until_unlocked_and_the_break_is_journaled() {
    let s = setup(1.0);
    let plan = s.plan.to_str().unwrap().to_owned();
    let id = "emu-20261124t000000z-lock0001";
    // A long lease: its holder is killed and will not come back.
    let child = s.spawn_on_s3(&["drill", &plan, "--run-id", id, "--lease-ttl", "10m"], None);
    kill_once_restoring(&s, child);
    let lease = s.lease(id).unwrap();
    let lease_id = lease["lease"].as_str().unwrap().to_owned();
    let refused = s.on_s3(&["resume", id]);
    assert_eq!(refused.code, 1, "{}", refused.transcript());
    for part in ["is held by", &lease_id, "drover unlock", "until"] {
        assert!(refused.stderr.contains(part), "{part} missing: {}", refused.stderr);
    }
    let status = s.reader(Store::Bucket, &["status", id]);
    assert!(status.stdout.contains(&lease_id), "status shows the holder: {}", status.stdout);
    // `sweep` reads the bucket's runs: what the unfinished run made is spared, not deleted as
    // the leftovers of a run unknown to the store.
    let sweep = s.on_s3(&["sweep", &plan, "--dry-run", "--older-than", "0s", "--format", "json"]);
    assert_eq!(sweep.code, 0, "{}", sweep.transcript());
    let listing: serde_json::Value = serde_json::from_str(&sweep.stdout).unwrap();
    assert_eq!(listing["state_dir"], s.state_url(Store::Bucket), "{listing}");
    let of_run: Vec<&serde_json::Value> =
        listing["items"].as_array().unwrap().iter().filter(|i| i["run"] == id).collect();
    assert!(!of_run.is_empty(), "the run's drill resources are found: {listing}");
    for item in of_run {
        assert_eq!(item["action"], "spare", "{item}");
        assert_eq!(item["reason"], "run-in-progress", "{item}");
    }
    // Only the lease seen is broken.
    let wrong = s.on_s3(&["unlock", id, "--lease", "0000000000000000"]);
    assert_eq!(wrong.code, 1, "{}", wrong.transcript());
    assert!(wrong.stderr.contains(&lease_id), "{}", wrong.stderr);
    let broken = s.on_s3(&["unlock", id, "--lease", &lease_id]);
    assert_eq!(broken.code, 0, "{}", broken.transcript());
    assert!(s.lease(id).is_none());
    let journal = s.journal_text(Store::Bucket, id);
    assert!(
        journal.contains("\"event\":\"lease-broken\"") && journal.contains(&lease_id),
        "the break is journaled: {journal}"
    );
    let resumed = s.on_s3(&["resume", id]);
    assert_eq!(resumed.code, 0, "{}", resumed.transcript());
    s.assert_one_job_per_table("after unlock and resume");
}

#[cfg(unix)]
#[test]
fn ctrl_c_releases_the_lease_and_another_process_resumes_at_once() {
    let s = setup(1.0);
    let plan = s.plan.to_str().unwrap().to_owned();
    let id = "emu-20261124t000000z-sigint01";
    let mut child = s.spawn_on_s3(&["drill", &plan, "--run-id", id, "--lease-ttl", "10m"], None);
    until(Duration::from_secs(120), "the drill's first backup job", || {
        calls(&s, "backup:StartBackupJob") > 0
    });
    let pid = child.id().to_string();
    assert!(std::process::Command::new("kill").args(["-INT", &pid]).status().unwrap().success());
    let code = wait(&mut child, Duration::from_secs(60));
    let out = child.wait_with_output().unwrap();
    assert_eq!(code, Some(130), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(s.lease(id).is_none(), "Ctrl-C released the lease (OpenTofu#3669)");
    // No wait for a 10-minute lease: the next process proceeds at once.
    let resumed = s.on_s3(&["resume", id]);
    assert_eq!(resumed.code, 0, "{}", resumed.transcript());
    s.assert_one_job_per_table("after Ctrl-C and resume");
}

#[test]
fn s3_failing_for_a_while_is_ridden_out_and_s3_down_stops_the_run_cleanly() {
    let mut s = setup(0.5);
    let plan = s.plan.to_str().unwrap().to_owned();
    // A few failed writes (503s, retried by the SDK and then by the journal): ridden out.
    let id = "emu-20261124t000000z-flaky001";
    s.state_url(Store::Bucket);
    let code = s.emu.control(
        "/_drover/throttle",
        &json!({"operation": "s3:PutObject", "count": 8, "code": "ServiceUnavailable", "status": 503}),
    );
    assert_eq!(code, 200);
    let run = s.on_s3(&["drill", &plan, "--run-id", id, "--skip-preflight"]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    assert!(s.emu.calls()["faulted"]["s3:PutObject"].as_u64().unwrap_or(0) >= 8);

    // The whole endpoint down for longer than the lease: the run stops cleanly, and resumes.
    let id = "emu-20261124t000000z-down0001";
    let child = s.spawn_on_s3(&["drill", &plan, "--run-id", id, "--lease-ttl", TTL], None);
    let before = calls(&s, "backup:StartBackupJob");
    until(Duration::from_secs(120), "the drill's first backup job", || {
        calls(&s, "backup:StartBackupJob") > before
    });
    s.emu.restart(Duration::from_secs(12));
    let stopped = finish(child, Duration::from_secs(180));
    assert_eq!(stopped.code, 1, "{}", stopped.transcript());
    assert!(stopped.stderr.contains("drover resume"), "{}", stopped.stderr);
    let resumed = s.on_s3(&["resume", id, "--wait", "1m"]);
    assert_eq!(resumed.code, 0, "{}\n{}", resumed.transcript(), s.emu.log());
    let world = s.inspect();
    assert_eq!(world[crate::aws::SRC]["jobs"]["backup"], 10, "one backup per table and run");
}

#[test]
fn tampered_truncated_and_foreign_objects_are_refused() {
    let s = setup(0.2);
    let plan = s.plan.to_str().unwrap().to_owned();
    let id = "emu-20261124t000000z-tamper01";
    let run = s.on_s3(&["backup", &plan, "--run-id", id, "--skip-preflight"]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    let keys = s3_keys(&s.emu, STATE_BUCKET, &format!("e2e/runs/{id}/journal/"));
    assert!(keys.len() > 3, "{keys:?}");
    let key = &keys[2];
    let path = format!("/{STATE_BUCKET}/{key}");
    let original = s3_retried(&s.emu, "GET", &path, "").body;
    let put = |body: &str| assert_eq!(s3_retried(&s.emu, "PUT", &path, body).status, 200);
    let refused = |what: &str, expect: &str| {
        let status = s.reader(Store::Bucket, &["status", id]);
        assert_eq!(status.code, 1, "{what}: {}", status.transcript());
        assert!(
            status.stderr.contains(expect) && status.stderr.contains("journal"),
            "{what}: {}",
            status.stderr
        );
        let resume = s.on_s3(&["resume", id]);
        assert_eq!(resume.code, 1, "{what}: {}", resume.transcript());
    };
    put(&original.replacen("\"seq\":", "\"seq\": ", 1));
    refused("an edited record", key.rsplit('/').next().unwrap());
    put(&original[..original.len() / 2]);
    refused("a truncated object", key.rsplit('/').next().unwrap());
    put(&original);
    let restored = s.reader(Store::Bucket, &["status", id]);
    assert_eq!(restored.code, 0, "restored: {}", restored.transcript());
    let foreign = format!("/{STATE_BUCKET}/e2e/runs/{id}/journal/notes.txt");
    assert_eq!(s3_retried(&s.emu, "PUT", &foreign, "hello").status, 200);
    refused("a foreign object", "not a journal object");
    assert_eq!(s3_retried(&s.emu, "DELETE", &foreign, "").status, 204);
    // A journal copied from another run is never read as this one's.
    let copy = format!("/{STATE_BUCKET}/e2e/runs/emu-copied/journal/00000000000000000001.jsonl");
    let first = s3_retried(&s.emu, "GET", &format!("/{STATE_BUCKET}/{}", keys[0]), "").body;
    assert_eq!(s3_retried(&s.emu, "PUT", &copy, &first).status, 200);
    let copied = s.reader(Store::Bucket, &["status", "emu-copied"]);
    assert_eq!(copied.code, 1, "{}", copied.transcript());
    assert!(copied.stderr.contains("not this run's"), "{}", copied.stderr);
}
