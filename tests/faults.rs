//! The fault table of docs/reliability.md through the real binary and the AWS adapter,
//! against the emulator: unsuccessful job ends, passing 5xx faults, the service restarting
//! mid-run, and a full disk under the journal. Every wait is bounded.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::aws::{DST, Setup, setup};
use crate::common::{aws_command, drover, drover_aws, wait};

fn status(s: &Setup, id: &str) -> Value {
    let run = drover(&["status", id, "--format", "json", "--state-dir", &s.state()]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    serde_json::from_str(&run.stdout).unwrap()
}

/// `(step, error)` of each failed step.
fn failures(status: &Value) -> Vec<(String, String)> {
    status["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["phase"] == "failed")
        .map(|s| {
            (
                format!("{} {}", s["table"].as_str().unwrap(), s["step"].as_str().unwrap()),
                s["error"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// Every unsuccessful end state of every kind of job, one after the other: the first job of
/// the kind fails with the service's state and message, the run exits 1, and `resume`
/// retries it (failing again with the next injected state), until a clean resume finishes.
#[test]
fn jobs_ending_failed_aborted_expired_or_partial_fail_their_step_and_resume_retries() {
    let s = setup(0.2);
    let id = "emu-20261125t000000z-fa000001";
    let plan = s.plan.to_str().unwrap().to_owned();
    let cases = [
        ("backup", "FAILED"),
        ("backup", "ABORTED"),
        ("backup", "EXPIRED"),
        ("backup", "PARTIAL"),
        ("copy", "FAILED"),
        ("copy", "PARTIAL"),
        ("restore", "FAILED"),
        ("restore", "ABORTED"),
    ];
    for (i, (kind, state)) in cases.iter().enumerate() {
        assert_eq!(s.emu.control("/_drover/reset", &json!({"moto": false})), 200);
        let fault =
            json!({"kind": kind, "state": state, "message": format!("{state} by the test")});
        assert_eq!(s.emu.control("/_drover/fail-jobs", &fault), 200);
        let run = if i == 0 {
            s.cloud_cli(&["drill", &plan, "--run-id", id, "--state-dir", &s.state()])
        } else {
            drover_aws(&["resume", id, "--state-dir", &s.state()])
        };
        let case = format!("{kind} ending {state}");
        assert_eq!(run.code, 1, "{case}: {}", run.transcript());
        let failed = failures(&status(&s, id));
        assert_eq!(failed.len(), 1, "{case}: {failed:?}");
        let (step, error) = &failed[0];
        let want_step = if *kind == "backup" { "recovery-point" } else { kind };
        assert!(step.ends_with(want_step), "{case}: {step}");
        assert!(error.contains(&format!("ended {state}: {state} by the test")), "{case}: {error}");
        assert!(run.stdout.contains(state) || run.stderr.contains(state), "{case}");
    }
    assert_eq!(s.emu.control("/_drover/reset", &json!({"moto": false})), 200);
    let run = drover_aws(&["resume", id, "--state-dir", &s.state()]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    let world = s.inspect();
    let left: Vec<&String> = world[DST]["tables"].as_object().unwrap().keys().collect();
    assert_eq!(left, ["orders-drill-decoy000"], "every drill table torn down, the decoy kept");
}

/// HTTP 500 and 503 answers on the calls a run depends on: the SDK's and drover's retries
/// absorb them and no job starts twice.
#[test]
fn server_errors_are_retried_without_duplicate_jobs() {
    let s = setup(0.2);
    for (op, status, code) in [
        ("StartBackupJob", 500, "InternalFailure"),
        ("DescribeCopyJob", 503, "ServiceUnavailableException"),
        ("StartRestoreJob", 500, "InternalFailure"),
        ("DescribeRestoreJob", 503, "ServiceUnavailableException"),
        ("dynamodb:DescribeTable", 500, "InternalServerError"),
        ("dynamodb:Scan", 500, "InternalServerError"),
    ] {
        let fault = json!({"operation": op, "count": 8, "status": status, "code": code, "message": "injected"});
        assert_eq!(s.emu.control("/_drover/throttle", &fault), 200);
    }
    let run = s.cloud_cli(&["drill", s.plan.to_str().unwrap(), "--state-dir", &s.state()]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    s.assert_one_job_per_table("5xx answers were retried");
}

/// Eventually consistent reads: each job is not found by `Describe*Job` for its first 1.5
/// seconds. drover asks again instead of failing the step, and starts no job twice.
#[test]
fn jobs_not_visible_right_after_they_start_are_polled_again() {
    let s = setup(0.2);
    assert_eq!(s.emu.control("/_drover/config", &json!({"unseen_jobs": 1.5})), 200);
    let run = s.cloud_cli(&["drill", s.plan.to_str().unwrap(), "--state-dir", &s.state()]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    s.assert_one_job_per_table("jobs not seen yet were polled again");
}

/// Calls that answer only after the client gave up (`--call-timeout 1s`, answers after 2.5 s):
/// each timed-out attempt is retried, and a timed-out `StartRestoreJob` that the service
/// carried out anyway does not start a second job (same idempotency token, same job).
#[test]
fn timed_out_calls_are_retried_and_a_start_that_went_through_is_not_repeated() {
    let s = setup(0.2);
    for op in ["StartBackupJob", "DescribeCopyJob", "StartRestoreJob", "dynamodb:DescribeTable"] {
        let slow = json!({"operation": op, "count": 2, "delay": 2.5});
        assert_eq!(s.emu.control("/_drover/slow", &slow), 200);
    }
    let plan = s.plan.to_str().unwrap().to_owned();
    let run = s.cloud_cli(&["drill", &plan, "--call-timeout", "1s", "--state-dir", &s.state()]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    assert_eq!(s.emu.config()["call_faults"], json!([]), "every slow answer was waited for");
    s.assert_one_job_per_table("a start that went through was not repeated");
}

/// A drill of the setup's plan running in the background, its stderr kept in a file.
struct Background {
    child: std::process::Child,
    log: std::path::PathBuf,
    journal: std::path::PathBuf,
}

impl Background {
    fn drill(s: &Setup, id: &str) -> Background {
        let (url, state, plan) = (s.emu.url(), s.state(), s.plan.to_str().unwrap().to_owned());
        let log = s.dir.path().join(format!("{id}.log"));
        let child = aws_command(&["drill", &plan, "--cloud", "aws", "--endpoint-url", &url])
            .args(["--run-id", id, "--state-dir", &state])
            .args(crate::aws::FAST_POLLS)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let journal = Path::new(&state).join("runs").join(id).join("journal.jsonl");
        Background { child, log, journal }
    }

    /// Waits (at most 90 s) until a line of the run's journal satisfies `seen`.
    fn until(&mut self, what: &str, seen: impl Fn(&str) -> bool) {
        let start = Instant::now();
        while !std::fs::read_to_string(&self.journal).is_ok_and(|j| j.lines().any(&seen)) {
            assert!(start.elapsed() < Duration::from_secs(90), "{what}: not seen");
            assert!(self.child.try_wait().unwrap().is_none(), "{what}: {}", self.stderr());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The exit code (at most 180 s from now).
    fn finish(&mut self) -> Option<i32> {
        wait(&mut self.child, Duration::from_secs(180))
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// The service goes away mid-run (its endpoint refuses connections for a few seconds) and
/// comes back with its state: the run rides it out with retries and finishes, and no job
/// is started twice.
#[test]
fn a_service_restart_mid_run_is_ridden_out() {
    let mut s = setup(1.0);
    let mut run = Background::drill(&s, "emu-20261125t000000z-fa000002");
    // Restart once backups are in flight.
    run.until("a job started", |l| l.contains("\"job-started\""));
    s.emu.restart(Duration::from_secs(3));
    let code = run.finish();
    let stderr = run.stderr();
    assert_eq!(code, Some(0), "{stderr}\n{}", s.emu.log());
    s.assert_one_job_per_table(&stderr);
}

/// What a shell in a private mount namespace does: a tiny tmpfs as the state directory, a
/// drill that fills it, a copy of the state as the full disk left it, a resume on the still
/// full disk, then more room and a resume that finishes.
const FULL_DISK: &str = r#"
set -u
state=$1 out=$2
mount -t tmpfs -o size=12k tmpfs "$state" || exit 97
"$DROVER" drill "$PLAN" --cloud aws --endpoint-url "$URL" --run-id "$ID" --state-dir "$state" \
  >"$out/drill.out" 2>"$out/drill.err"
echo $? >"$out/drill.code"
mkdir "$out/full" && cp -a "$state/." "$out/full/"
"$DROVER" resume "$ID" --state-dir "$state" >"$out/resume1.out" 2>"$out/resume1.err"
echo $? >"$out/resume1.code"
mount -o remount,size=8m "$state" || exit 98
"$DROVER" resume "$ID" --state-dir "$state" >"$out/resume2.out" 2>"$out/resume2.err"
echo $? >"$out/resume2.code"
mkdir "$out/done" && cp -a "$state/." "$out/done/"
"#;

/// The disk under the journal fills up mid-run: the run stops with a clear error, the
/// journal holds only whole, verified records (the partial one is cut back), resuming on the
/// full disk fails the same clean way, and once there is room `resume` finishes with no job
/// started twice.
#[test]
fn a_full_disk_under_the_journal_stops_the_run_cleanly_and_loses_nothing() {
    let s = setup(0.3);
    let id = "emu-20261125t000000z-fa000003";
    let state = s.dir.path().join("tiny");
    let out = s.dir.path().join("out");
    std::fs::create_dir_all(&state).unwrap();
    std::fs::create_dir_all(&out).unwrap();
    let drover_cmd = aws_command(&[]);
    let mut cmd = Command::new("unshare");
    cmd.args(["--mount", "--map-root-user", "sh", "-c", FULL_DISK, "sh"])
        .arg(&state)
        .arg(&out)
        .env("URL", s.emu.url())
        .env("PLAN", &s.plan)
        .env("ID", id)
        .env("DROVER", drover_cmd.get_program())
        .current_dir(crate::common::repo_root())
        .stdin(Stdio::null());
    for (k, v) in drover_cmd.get_envs() {
        match v {
            Some(v) => cmd.env(k, v),
            None => cmd.env_remove(k),
        };
    }
    let script = cmd.output().unwrap();
    assert!(script.status.success(), "{}", String::from_utf8_lossy(&script.stderr));
    let read = |name: &str| std::fs::read_to_string(out.join(name)).unwrap();
    let code = |name: &str| read(&format!("{name}.code")).trim().to_owned();

    assert_eq!(code("drill"), "1", "{}", read("drill.err"));
    let err = read("drill.err");
    assert!(err.contains("No space left on device") && err.contains("drover resume"), "{err}");
    // Only whole, verified records remain: no torn tail to cut, nothing corrupt.
    let journal = out.join("full/runs").join(id).join("journal.jsonl");
    let (entries, torn) = drover_engine::journal::Journal::read(&journal).unwrap();
    assert!(torn.is_none(), "{torn:?}");
    assert!(entries.len() > 3, "the run got going before the disk filled: {}", entries.len());

    assert_eq!(code("resume1"), "1", "{}", read("resume1.err"));
    assert!(read("resume1.err").contains("No space left on device"), "{}", read("resume1.err"));

    assert_eq!(code("resume2"), "0", "{}", read("resume2.err"));
    let journal = out.join("done/runs").join(id).join("journal.jsonl");
    let (entries, torn) = drover_engine::journal::Journal::read(&journal).unwrap();
    assert!(torn.is_none());
    assert!(matches!(
        entries.last().unwrap().record,
        drover_engine::journal::Record::Run {
            event: drover_engine::state::RunEvent::Finished { success: true }
        }
    ));
    s.assert_one_job_per_table("the resume with room finished the run");
}

/// The most talkative a run can be (every crate at `trace`, the AWS SDK's request signing
/// included, as JSON logs) never prints the secret key, nor does anything it writes.
#[test]
fn no_secret_in_trace_logs_journals_or_reports() {
    let s = setup(0.2);
    let id = "emu-20261125t000000z-fa000004";
    let plan = s.plan.to_str().unwrap().to_owned();
    let url = s.emu.url();
    let out = aws_command(&["backup", &plan, "--cloud", "aws", "--endpoint-url", &url])
        .args(["--run-id", id, "--state-dir", &s.state(), "--log-format", "json"])
        .env("RUST_LOG", "trace")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let mut seen = String::from_utf8_lossy(&out.stdout).into_owned();
    let logs = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(logs.contains("aws_sigv4"), "the SDK's signing was traced: {} bytes", logs.len());
    seen.push_str(&logs);
    for format in ["md", "json", "junit", "html"] {
        seen.push_str(
            &drover_aws(&["report", id, "--format", format, "--state-dir", &s.state()])
                .transcript(),
        );
    }
    for entry in std::fs::read_dir(Path::new(&s.state()).join("runs").join(id)).unwrap() {
        seen.push_str(&String::from_utf8_lossy(&std::fs::read(entry.unwrap().path()).unwrap()));
    }
    assert!(!seen.contains(crate::common::TEST_SECRET), "the secret key leaked");
}

/// The target KMS key is disabled while a restore runs: the restore fails with the
/// service's message, its dependents wait, and once the key is enabled again `resume`
/// finishes the drill.
#[test]
fn a_kms_key_disabled_mid_run_fails_restores_until_it_is_enabled() {
    let s = setup(1.0);
    let id = "emu-20261125t000000z-fa000005";
    let mut run = Background::drill(&s, id);
    run.until("a restore started", |l| {
        l.contains("\"kind\":\"restore\"") && l.contains("\"job-started\"")
    });
    s.emu.fixture("break", &json!({"disable_keys": [s.target_key]}));
    assert_eq!(run.finish(), Some(1), "{}", run.stderr());
    let failed = failures(&status(&s, id));
    assert!(!failed.is_empty());
    for (step, error) in &failed {
        assert!(step.ends_with("restore"), "{step}: {error}");
        assert!(error.contains("KMS key"), "{step}: {error}");
    }
    s.emu.fixture("break", &json!({"enable_keys": [s.target_key]}));
    let run = drover_aws(&["resume", id, "--state-dir", &s.state()]);
    assert_eq!(run.code, 0, "{}", run.transcript());
}

/// Someone creates a table under a drill name while the drill runs (after preflight found it
/// free): that restore fails, naming the table; teardown removes the drill's own tables but
/// not that one; resuming while the name is taken fails the same way.
#[test]
fn a_target_name_taken_mid_run_is_never_overwritten_nor_torn_down() {
    let s = setup(1.0);
    let id = "emu-20261125t000000z-fa000006";
    let squatter = "shipments-drill-fa000006";
    let mut run = Background::drill(&s, id);
    // customers and products restore first; shipments waits for orders.
    run.until("a restore started", |l| {
        l.contains("\"kind\":\"restore\"") && l.contains("\"job-started\"")
    });
    s.emu.fixture("break", &json!({"create_tables": [{"region": DST, "name": squatter}]}));
    assert_eq!(run.finish(), Some(1), "{}", run.stderr());
    let failed = failures(&status(&s, id));
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0].0, "shipments restore");
    assert!(failed[0].1.contains(squatter) && failed[0].1.contains("already exists"), "{failed:?}");
    let tables = |s: &Setup| -> Vec<String> {
        s.inspect()[DST]["tables"].as_object().unwrap().keys().cloned().collect()
    };
    assert_eq!(tables(&s), ["orders-drill-decoy000", squatter], "only others' tables are left");

    let again = drover_aws(&["resume", id, "--state-dir", &s.state()]);
    assert_eq!(again.code, 1, "{}", again.transcript());
    assert_eq!(tables(&s), ["orders-drill-decoy000", squatter]);
}
