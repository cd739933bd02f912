//! End to end against the AWS emulator over HTTP, through the real binary and the official
//! SDK: a drill of a 5-table plan with dependencies, a failover with the source region
//! unreachable, and SIGKILL + resume without duplicate jobs or tables.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::{Emulator, aws_command, drover_aws, kill_and_resume, wait};

pub(crate) const SRC: &str = "us-east-1";
/// Polls of runs against the emulator, whose jobs take a fraction of a second.
pub(crate) const FAST_POLLS: [&str; 2] = ["--poll-interval", "500ms"];
pub(crate) const DST: &str = "us-west-2";
/// The state bucket of tests on S3 state (in the target region: not in the source's).
pub(crate) const STATE_BUCKET: &str = "drover-state";

/// The keys under `prefix` in an emulator bucket, in order (one ListObjectsV2 page: tests
/// store fewer than 1,000 objects).
pub(crate) fn s3_keys(emu: &Emulator, bucket: &str, prefix: &str) -> Vec<String> {
    let listed = s3_retried(emu, "GET", &format!("/{bucket}?list-type=2&prefix={prefix}"), "");
    assert_eq!(listed.status, 200, "{}", listed.body);
    assert!(!listed.body.contains("<IsTruncated>true"), "more than one page");
    listed
        .body
        .split("<Key>")
        .skip(1)
        .filter_map(|rest| rest.split_once("</Key>").map(|(key, _)| key.to_owned()))
        .collect()
}

/// A raw S3 request to the emulator, retried while it answers a passing 5xx (realism mode
/// faults S3 calls too).
pub(crate) fn s3_retried(
    emu: &Emulator,
    method: &str,
    path: &str,
    body: &str,
) -> crate::common::Http {
    for _ in 0..20 {
        let answer = emu.s3(method, path, &[], body);
        if answer.status < 500 {
            return answer;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{method} {path}: the emulator kept answering 5xx");
}

/// Where a test keeps its runs' state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Store {
    /// A local directory (`--state DIR`).
    Dir,
    /// An S3 bucket on the emulator (`--state s3://...`).
    Bucket,
}

const TABLES: [&str; 5] = ["customers", "products", "orders", "invoices", "shipments"];

fn spec() -> Value {
    json!({
        "source": SRC,
        "targets": [DST],
        "source_vault": "prod-vault",
        "target_vaults": {DST: "dr-vault"},
        "tables": [
            {"name": "customers", "items": 25, "gsi": true, "canaries": [{"pk": "CUSTOMER#1"}]},
            {"name": "products", "items": 15},
            {"name": "orders", "items": 30, "sort_key": true, "gsi": true, "canaries": [{"pk": "ORDER#1", "sk": "META"}]},
            {"name": "invoices", "items": 10},
            {"name": "shipments", "items": 12, "sort_key": true},
        ],
        "extra_tables": [{"region": DST, "name": "orders-drill-decoy000"}],
    })
}

fn plan(dir: &Path, target_key: &str) -> PathBuf {
    let yaml = format!(
        "version: 1
name: emu
source: {{region: {SRC}, account_id: \"123456789012\", backup_vault: prod-vault}}
iam_role_arn: arn:aws:iam::123456789012:role/drover-backup
objectives: {{rpo: 1h, rto: 1h}}
targets:
  - {{region: {DST}, backup_vault: dr-vault, kms_key_arn: \"{target_key}\"}}
defaults:
  point_in_time_recovery: true
  tags: {{team: shop}}
tables:
  - name: customers
    validate: {{min_items: 25, canary_keys: [{{pk: \"CUSTOMER#1\"}}]}}
  - name: products
    ttl_attribute: expires_at
  - name: orders
    depends_on: [customers, products]
    stream: NEW_AND_OLD_IMAGES
    deletion_protection: true
    tags: {{tier: \"1\"}}
    validate: {{canary_keys: [{{pk: \"ORDER#1\", sk: \"META\"}}]}}
  - name: invoices
    depends_on: [orders]
    point_in_time_recovery: false
  - name: shipments
    depends_on: [orders]
    ttl_attribute: archived_at
"
    );
    let path = dir.join("emu.yaml");
    std::fs::write(&path, yaml).unwrap();
    path
}

pub(crate) struct Setup {
    pub(crate) emu: Emulator,
    pub(crate) dir: tempfile::TempDir,
    pub(crate) plan: PathBuf,
    pub(crate) target_key: String,
}

pub(crate) fn setup(job_seconds: f64) -> Setup {
    let emu = Emulator::start(job_seconds);
    let seeded = emu.fixture("seed", &spec());
    let target_key = seeded["keys"][DST].as_str().unwrap().to_owned();
    let dir = tempfile::tempdir().unwrap();
    let plan = plan(dir.path(), &target_key);
    Setup { emu, dir, plan, target_key }
}

impl Setup {
    /// `drover ARGS --cloud aws --endpoint-url <the emulator>`; runs poll every 500 ms (the
    /// emulator's jobs take a fraction of a second).
    pub(crate) fn cloud_cli(&self, args: &[&str]) -> crate::common::Run {
        let url = self.emu.url();
        let mut all = args.to_vec();
        all.extend(["--cloud", "aws", "--endpoint-url", &url]);
        if matches!(args.first(), Some(&("drill" | "backup" | "failover"))) {
            all.extend(FAST_POLLS);
        }
        drover_aws(&all)
    }

    pub(crate) fn state(&self) -> String {
        self.dir.path().join("state").to_str().unwrap().to_owned()
    }

    /// The `--state` of `store`: the setup's directory, or a versioned bucket in the target
    /// region (made on first use) under the prefix `e2e`.
    pub(crate) fn state_url(&self, store: Store) -> String {
        match store {
            Store::Dir => self.state(),
            Store::Bucket => {
                if !self.dir.path().join("bucket-made").exists() {
                    self.emu.create_bucket(STATE_BUCKET, DST);
                    self.emu.bucket_versioning(STATE_BUCKET, "Enabled");
                    std::fs::write(self.dir.path().join("bucket-made"), "").unwrap();
                }
                format!("s3://{STATE_BUCKET}/e2e")
            }
        }
    }

    /// A command that reads runs (`report`, `status`, `runs`) on `store`: a bucket is reached
    /// through the environment (`AWS_ENDPOINT_URL`), as those commands have no AWS flags, and
    /// listed 3 keys a page (`DROVER_STATE_PAGE_SIZE`), so that reading a journal of more
    /// objects pages through the listing.
    pub(crate) fn reader(&self, store: Store, args: &[&str]) -> crate::common::Run {
        let state = self.state_url(store);
        let mut all = args.to_vec();
        all.extend(["--state", &state]);
        let out = aws_command(&all)
            .env("AWS_ENDPOINT_URL", self.emu.url())
            .env("DROVER_STATE_PAGE_SIZE", "3")
            .output()
            .unwrap();
        crate::common::Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// A run's journal as stored: the file, or its objects in key order, concatenated.
    pub(crate) fn journal_text(&self, store: Store, id: &str) -> String {
        match store {
            Store::Dir => std::fs::read_to_string(
                Path::new(&self.state()).join("runs").join(id).join("journal.jsonl"),
            )
            .unwrap(),
            Store::Bucket => s3_keys(&self.emu, STATE_BUCKET, &format!("e2e/runs/{id}/journal/"))
                .iter()
                .map(|key| s3_retried(&self.emu, "GET", &format!("/{STATE_BUCKET}/{key}"), "").body)
                .collect(),
        }
    }

    pub(crate) fn inspect(&self) -> Value {
        self.emu.fixture("inspect", &json!({"regions": [SRC, DST]}))
    }

    /// The recovery points in every vault of both regions, by region and vault, once those
    /// being deleted are gone (deleting is asynchronous); empty vaults are left out.
    pub(crate) fn points_left(&self) -> Value {
        let start = Instant::now();
        loop {
            let world = self.inspect();
            let mut left = serde_json::Map::new();
            let mut deleting = false;
            for region in [SRC, DST] {
                for (vault, points) in world[region]["points"].as_object().unwrap() {
                    let points = points.as_object().unwrap();
                    deleting |= points.values().any(|s| s == "DELETING");
                    if !points.is_empty() {
                        left.insert(format!("{region} {vault}"), json!(points));
                    }
                }
            }
            if !deleting || start.elapsed() > Duration::from_secs(30) {
                return Value::Object(left);
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Asserts that the run(s) on the setup's 5 tables started one backup, one copy and one
    /// restore per table (no job twice), and returns the emulator's world.
    pub(crate) fn assert_one_job_per_table(&self, context: &str) -> Value {
        let world = self.inspect();
        assert_eq!(world[SRC]["jobs"], json!({"backup": 5, "copy": 5, "restore": 0}), "{context}");
        assert_eq!(world[DST]["jobs"]["restore"], 5, "{context}");
        world
    }
}

#[test]
fn a_drill_restores_every_table_faithfully_and_tears_down_only_its_own() {
    drill_end_to_end(Store::Dir);
}

#[test]
fn a_drill_on_s3_state_restores_every_table_faithfully_and_tears_down_only_its_own() {
    drill_end_to_end(Store::Bucket);
}

fn drill_end_to_end(store: Store) {
    let s = setup(0.3);
    let id = "emu-20261124t000000z-e2e00001";
    let state = s.state_url(store);
    let run = s.cloud_cli(&[
        "drill",
        s.plan.to_str().unwrap(),
        "--keep",
        "--run-id",
        id,
        "--state",
        &state,
    ]);
    assert_eq!(run.code, 0, "{}\n{}", run.transcript(), s.emu.log());
    for t in TABLES {
        assert!(run.stdout.contains(t), "the report lists {t}");
    }
    let world = s.inspect();
    let src = &world[SRC]["tables"];
    let dst = &world[DST]["tables"];
    for t in TABLES {
        let restored = &dst[format!("{t}-drill-e2e00001")];
        let source = &src[t];
        assert_eq!(restored["status"], "ACTIVE", "{t}");
        assert_eq!(
            restored["digest"], source["digest"],
            "{t}: the restored items differ from the source's"
        );
        assert_eq!(restored["items"], source["items"], "{t}");
        assert_eq!(restored["keys"], source["keys"], "{t}");
        assert_eq!(restored["gsis"], source["gsis"], "{t}");
        assert_eq!(restored["kms_key"], json!(s.target_key), "{t}: encrypted with the target key");
        assert_eq!(restored["tags"]["drover:run"], id, "{t}");
        assert_eq!(restored["tags"]["drover:plan"], "emu", "{t}");
        assert_eq!(restored["tags"]["team"], "shop", "{t}");
    }
    let orders = &dst["orders-drill-e2e00001"];
    assert_eq!(orders["stream"], "NEW_AND_OLD_IMAGES");
    assert_eq!(orders["deletion_protection"], true);
    assert_eq!(orders["tags"]["tier"], "1");
    assert_eq!(orders["pitr"], "ENABLED");
    assert_eq!(dst["invoices-drill-e2e00001"]["pitr"], "DISABLED");
    assert_eq!(dst["products-drill-e2e00001"]["ttl"], "expires_at");
    assert_eq!(dst["shipments-drill-e2e00001"]["ttl"], "archived_at");

    // No secret anywhere: output, journal, reports.
    let mut seen = run.transcript();
    for format in ["md", "json", "junit", "html"] {
        let report = s.reader(store, &["report", id, "--format", format]);
        assert_eq!(report.code, 0, "{}", report.transcript());
        seen.push_str(&report.transcript());
    }
    let journal = s.journal_text(store, id);
    assert!(journal.contains("\"type\":\"header\""), "{journal}");
    seen.push_str(&journal);
    assert!(!seen.contains(crate::common::TEST_SECRET), "the secret key leaked");
    assert!(!seen.contains("AWS_SECRET_ACCESS_KEY"), "the secret's name leaked");

    let url = s.emu.url();
    let down = drover_aws(&["teardown", id, "--state", &state, "--endpoint-url", &url]);
    assert_eq!(down.code, 0, "{}", down.transcript());
    let world = s.inspect();
    let left: Vec<&String> = world[DST]["tables"].as_object().unwrap().keys().collect();
    assert_eq!(
        left,
        ["orders-drill-decoy000"],
        "teardown deletes its own tables and never the decoy"
    );
    assert_eq!(world[SRC]["tables"].as_object().unwrap().len(), 5, "the source is untouched");
    assert_eq!(s.points_left(), json!({}), "teardown deletes the drill's recovery points");
}

#[test]
fn a_failover_restores_from_target_copies_with_the_source_region_unreachable() {
    failover_end_to_end(Store::Dir);
}

/// With the state in a bucket of the target region, a failover needs nothing of the source
/// region (the point of keeping state out of it).
#[test]
fn a_failover_on_s3_state_restores_from_target_copies_with_the_source_region_unreachable() {
    failover_end_to_end(Store::Bucket);
}

fn failover_end_to_end(store: Store) {
    let s = setup(0.2);
    let url = s.emu.url();
    // The bucket's region named: finding it would ask us-east-1, the region that is down.
    let mut state = s.state_url(store);
    if store == Store::Bucket {
        state.push_str(&format!("?region={DST}"));
    }
    // A backup run leaves copies of every table in the target vault (a drill deletes its own).
    let backup = s.cloud_cli(&["backup", s.plan.to_str().unwrap(), "--state", &state]);
    assert_eq!(backup.code, 0, "{}", backup.transcript());
    // Now the source region is unreachable: port 1 on loopback refuses connections. Any call
    // there would be retried until it gives up, far beyond the time allowed here.
    let mut failover = aws_command(&[
        "failover",
        s.plan.to_str().unwrap(),
        "--yes",
        "--cloud",
        "aws",
        "--endpoint-url",
        &url,
        "--region-endpoint",
        &format!("{SRC}=http://127.0.0.1:1"),
        "--state",
        &state,
    ])
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let code = wait(&mut failover, Duration::from_secs(120));
    let out = failover.wait_with_output().unwrap();
    assert_eq!(
        code,
        Some(0),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let world = s.inspect();
    for t in TABLES {
        let restored = &world[DST]["tables"][t];
        assert_eq!(restored["digest"], world[SRC]["tables"][t]["digest"], "{t}");
        assert_eq!(restored["kms_key"], json!(s.target_key), "{t}");
    }
    // Refuses a second failover over the restored tables.
    let again = s.cloud_cli(&["failover", s.plan.to_str().unwrap(), "--yes", "--state", &state]);
    assert_eq!(again.code, 1);
    assert!(again.stderr.contains("never overwrites"), "{}", again.stderr);
    let runs = s.reader(store, &["runs"]);
    assert_eq!(runs.code, 0, "{}", runs.transcript());
    assert_eq!(runs.stdout.matches("succeeded").count(), 2, "{}", runs.stdout);
}

#[test]
fn sigkill_mid_run_then_resume_starts_no_job_twice() {
    let s = setup(1.0);
    let id = "emu-20261124t000000z-e2e00003";
    let url = s.emu.url();
    let state = s.state();
    let plan = s.plan.to_str().unwrap().to_owned();
    let spawn = |args: &[&str]| {
        aws_command(args).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap()
    };
    let child = spawn(&[
        "drill",
        &plan,
        "--cloud",
        "aws",
        "--endpoint-url",
        &url,
        "--run-id",
        id,
        "--state-dir",
        &state,
    ]);
    let journal = Path::new(&state).join("runs").join(id).join("journal.jsonl");
    let (finished, kills) = kill_and_resume(
        child,
        &journal,
        0x9E37_79B9_7F4A_7C15,
        (8, 700, Duration::from_secs(180)),
        || {},
        || spawn(&["resume", id, "--state-dir", &state]),
    );
    assert_eq!(
        finished,
        Some(0),
        "after {kills} kills\n{}",
        s.emu.log().lines().rev().take(20).collect::<Vec<_>>().join("\n")
    );
    assert!(kills >= 2, "only {kills} kills landed");
    let world = s.assert_one_job_per_table("after the kills and resumes");
    let left: Vec<&String> = world[DST]["tables"].as_object().unwrap().keys().collect();
    assert_eq!(left, ["orders-drill-decoy000"], "every drill table was torn down, the decoy kept");
    assert_eq!(s.points_left(), json!({}), "and every drill recovery point deleted");
}

#[test]
fn service_errors_reach_the_engine_with_their_kind_and_message() {
    use drover_engine::ErrorKind;
    use drover_engine::ports::{BackupRequest, BackupService, JobState, TableService};
    let s = setup(0.2);
    let aws = drover_aws::AwsCloud::new(drover_aws::AwsOptions {
        endpoint_url: Some(s.emu.url()),
        emulator_credentials: true,
        ..drover_aws::AwsOptions::default()
    });
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let table = aws.describe_table(SRC, "orders").await.unwrap().unwrap();
        let request = BackupRequest {
            region: SRC.to_owned(),
            table_arn: table.arn.clone(),
            vault: "prod-vault".to_owned(),
            iam_role_arn: "arn:aws:iam::123456789012:role/drover-backup".to_owned(),
            idempotency_token: "errors-1".to_owned(),
            ..Default::default()
        };
        // More refusals than the SDK's own attempts: the engine sees a throttle, with the
        // service's code and message.
        let throttle = json!({"operation": "StartBackupJob", "count": 5, "code": "LimitExceededException", "message": "Too many jobs"});
        assert_eq!(s.emu.control("/_drover/throttle", &throttle), 200);
        let err = aws.start_backup_job(&request).await.unwrap_err();
        assert_eq!(err.kind, ErrorKind::Throttled, "{err}");
        assert!(err.message.contains("LimitExceededException") && err.message.contains("Too many jobs"), "{err}");
        assert_eq!(s.emu.control("/_drover/reset", &json!({"moto": false})), 200);

        let missing = BackupRequest { table_arn: table.arn.replace("orders", "ghost"), ..request.clone() };
        let job = aws.start_backup_job(&missing).await;
        match job {
            Err(e) => assert_eq!(e.kind, ErrorKind::NotFound, "{e}"),
            Ok(id) => {
                // AWS may accept the job and fail it; either way the failure is visible.
                let status = described(&aws, &id).await;
                assert_ne!(status.state, JobState::Completed);
            }
        }
        let aborted = json!({"kind": "backup", "count": 1, "state": "ABORTED", "message": "aborted by test"});
        assert_eq!(s.emu.control("/_drover/fail-jobs", &aborted), 200);
        let id = aws.start_backup_job(&BackupRequest { idempotency_token: "errors-2".to_owned(), ..request }).await.unwrap();
        let start = Instant::now();
        let status = loop {
            let status = described(&aws, &id).await;
            if matches!(status.state, JobState::Completed | JobState::Failed) {
                break status;
            }
            assert!(start.elapsed() < Duration::from_secs(30));
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert_eq!((status.state, status.raw_state.as_str()), (JobState::Failed, "ABORTED"));
        assert_eq!(status.message.as_deref(), Some("aborted by test"));
    });
}

/// DescribeBackupJob, asked again while the job is not visible yet (reads right after a
/// start are eventually consistent) or a passing fault answers.
async fn described(aws: &drover_aws::AwsCloud, id: &str) -> drover_engine::ports::JobStatus {
    use drover_engine::ports::BackupService;
    let start = Instant::now();
    loop {
        match aws.describe_backup_job(SRC, id).await {
            Ok(status) => return status,
            Err(e)
                if start.elapsed() < Duration::from_secs(30)
                    && (e.kind == drover_engine::ErrorKind::NotFound || e.kind.is_retryable()) =>
            {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("DescribeBackupJob {id}: {e}"),
        }
    }
}

#[test]
fn a_throttling_storm_on_the_emulator_slows_a_drill_but_it_finishes() {
    let s = setup(0.2);
    // The run's own calls are throttled (preflight's reads are spared: it gives up sooner).
    for op in [
        "StartBackupJob",
        "DescribeBackupJob",
        "StartCopyJob",
        "StartRestoreJob",
        "dynamodb:UpdateTable",
        "dynamodb:TagResource",
    ] {
        let storm = json!({"operation": op, "count": 12, "code": "ThrottlingException"});
        assert_eq!(s.emu.control("/_drover/throttle", &storm), 200);
    }
    // And the restore quota is one at a time (AWS: 50 per account; LimitExceededException
    // beyond): restores of independent tables are refused until the one running ends.
    assert_eq!(s.emu.control("/_drover/realism", &json!({"max_restores": 1})), 200);
    let run = s.cloud_cli(&["drill", s.plan.to_str().unwrap(), "--state-dir", &s.state()]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    let world = s.assert_one_job_per_table("throttled starts were retried, never duplicated");
    assert!(world[DST]["tables"].as_object().unwrap().keys().all(|t| t == "orders-drill-decoy000"));
}

#[test]
fn preflight_and_check_on_the_emulator() {
    let s = setup(0.2);
    let url = s.emu.url();
    let plan = s.plan.to_str().unwrap().to_owned();
    let ok = drover_aws(&["preflight", &plan, "--cloud", "aws", "--endpoint-url", &url]);
    assert_eq!(ok.code, 0, "{}", ok.transcript());
    // Nothing in the target vault yet: not ready for a failover.
    let check = s.cloud_cli(&["check", &plan, "--format", "junit"]);
    assert_eq!(check.code, 1, "{}", check.transcript());
    assert!(
        check.stdout.contains("failures=\"5\"")
            && check.stdout.contains("no completed recovery point"),
        "{}",
        check.stdout
    );
    // A drill deletes its recovery points: still not ready.
    let drill = s.cloud_cli(&["drill", &plan, "--state-dir", &s.state()]);
    assert_eq!(drill.code, 0, "{}", drill.transcript());
    let check = s.cloud_cli(&["check", &plan, "--format", "json"]);
    assert_eq!(check.code, 1, "a drill's points do not count: {}", check.transcript());
    // A backup leaves fresh copies: ready.
    let backup = s.cloud_cli(&["backup", &plan, "--state-dir", &s.state()]);
    assert_eq!(backup.code, 0, "{}", backup.transcript());
    let check = s.cloud_cli(&["check", &plan, "--format", "json"]);
    assert_eq!(check.code, 0, "{}", check.transcript());
    let report: Value = serde_json::from_str(&check.stdout).unwrap();
    assert_eq!(report["passed"], true);
    assert_eq!(report["findings"].as_array().unwrap().len(), 5);

    s.emu.fixture(
        "break",
        &json!({
            "advanced_off": [SRC],
            "disable_keys": [s.target_key],
            "delete_tables": [{"region": SRC, "name": "invoices"}],
        }),
    );
    let failed = s.cloud_cli(&["preflight", &plan, "--format", "json"]);
    assert_eq!(failed.code, 1, "{}", failed.transcript());
    let report: Value = serde_json::from_str(&failed.stdout).unwrap();
    let fails: Vec<(String, String)> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["status"] == "fail")
        .map(|f| {
            (f["check"].as_str().unwrap().to_owned(), f["subject"].as_str().unwrap().to_owned())
        })
        .collect();
    assert!(
        fails.contains(&("advanced-backup".to_owned(), format!("source region {SRC}"))),
        "{fails:?}"
    );
    assert!(
        fails.contains(&("source-table".to_owned(), format!("invoices in {SRC}"))),
        "{fails:?}"
    );
    assert!(fails.iter().any(|(c, _)| c == "target-key"), "{fails:?}");
    // A drill does not start.
    let drill = s.cloud_cli(&["drill", &plan, "--state-dir", &s.state()]);
    assert_eq!(drill.code, 1);
    assert!(drill.stderr.contains("preflight failed; nothing was started"), "{}", drill.stderr);
}

#[test]
fn backup_makes_a_failover_ready_and_points_lists_the_copies() {
    let s = setup(0.2);
    let url = s.emu.url();
    let plan = s.plan.to_str().unwrap().to_owned();
    let check = drover_aws(&["check", &plan, "--cloud", "aws", "--endpoint-url", &url]);
    assert_eq!(check.code, 1, "{}", check.transcript());
    let backup = s.cloud_cli(&["backup", &plan, "--state-dir", &s.state()]);
    assert_eq!(backup.code, 0, "{}", backup.transcript());
    let world = s.inspect();
    assert_eq!(
        world[SRC]["jobs"],
        json!({"backup": 5, "copy": 5, "restore": 0}),
        "no restore in a backup run"
    );
    let check = drover_aws(&["check", &plan, "--cloud", "aws", "--endpoint-url", &url]);
    assert_eq!(check.code, 0, "{}", check.transcript());
    let points = s.cloud_cli(&["points", &plan, "--format", "json"]);
    assert_eq!(points.code, 0, "{}", points.transcript());
    let points: Value = serde_json::from_str(&points.stdout).unwrap();
    let rows = points["points"].as_array().unwrap();
    // One backup in the source vault and one copy in the target vault per table.
    assert_eq!(rows.len(), 10);
    assert!(
        rows.iter().all(|r| r["within_rpo"] == true && r["status"] == "COMPLETED"),
        "{rows:#?}"
    );
    let target_rows: Vec<&Value> = rows.iter().filter(|r| r["region"] == DST).collect();
    assert_eq!(target_rows.len(), 5);
    assert!(target_rows.iter().all(|r| r["encryption_key_arn"] == json!(s.target_key)));
    let only_target =
        drover_aws(&["points", &plan, "--target", DST, "--cloud", "aws", "--endpoint-url", &url]);
    assert!(only_target.stdout.ends_with("5 recovery points\n"), "{}", only_target.stdout);
}

fn validate_failure(s: &Setup, id: &str, table: &str) -> String {
    let status = drover_aws(&["status", id, "--format", "json", "--state-dir", &s.state()]);
    let status: Value = serde_json::from_str(&status.stdout).unwrap();
    status["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|st| st["table"] == table && st["step"] == "validate")
        .and_then(|st| st["error"].as_str())
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn validation_fails_on_a_missing_canary_and_on_the_wrong_key() {
    let s = setup(0.2);
    let plan = s.plan.to_str().unwrap().to_owned();
    s.emu.fixture("break", &json!({"delete_items": [{"region": SRC, "table": "orders", "key": {"pk": "ORDER#1", "sk": "META"}}]}));
    let id = "emu-20261124t000000z-e2e00007";
    let run = s.cloud_cli(&["drill", &plan, "--run-id", id, "--state-dir", &s.state()]);
    assert_eq!(run.code, 1, "{}", run.transcript());
    let message = validate_failure(&s, id, "orders");
    assert!(message.contains("canary item {pk=\"ORDER#1\", sk=\"META\"} is missing"), "{message}");

    let other = s.emu.fixture("break", &json!({"extra_keys": [DST]}));
    let other_key = other[DST].as_str().unwrap();
    assert_eq!(s.emu.control("/_drover/config", &json!({"restore_kms_override": other_key})), 200);
    let id = "emu-20261124t000000z-e2e00008";
    let run = s.cloud_cli(&["drill", &plan, "--run-id", id, "--state-dir", &s.state()]);
    assert_eq!(run.code, 1, "{}", run.transcript());
    let message = validate_failure(&s, id, "customers");
    assert!(
        message.contains(&format!("encrypted with {other_key} instead of the target's key")),
        "{message}"
    );
}

#[test]
fn digests_prove_the_restored_items_equal_the_source() {
    let s = setup(0.2);
    let text = std::fs::read_to_string(&s.plan)
        .unwrap()
        .replace("defaults:\n", "defaults:\n  validate: {digest: true}\n");
    std::fs::write(&s.plan, text).unwrap();
    let id = "emu-20261124t000000z-e2e00009";
    let run = s.cloud_cli(&[
        "drill",
        s.plan.to_str().unwrap(),
        "--run-id",
        id,
        "--state-dir",
        &s.state(),
        // The emulator's backups hold every write made before they start: no minute to wait.
        "--backup-settle",
        "0s",
    ]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    let report = drover_aws(&["report", id, "--format", "json", "--state-dir", &s.state()]);
    let report: Value = serde_json::from_str(&report.stdout).unwrap();
    for t in report["tables"].as_array().unwrap() {
        let checks = t["checks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap())
            .collect::<Vec<_>>()
            .join("\n");
        assert!(
            checks.contains("equals the source's, taken just before the backup"),
            "{}: {checks}",
            t["table"]
        );
        assert!(checks.contains("as at backup time"), "{checks}");
    }
}

#[test]
fn preflight_fails_on_missing_vaults_taken_names_and_stale_points() {
    let s = setup(0.2);
    let url = s.emu.url();
    // RPO of one second: any point is stale a moment after it is taken.
    let text = std::fs::read_to_string(&s.plan).unwrap().replace("rpo: 1h", "rpo: 1s");
    std::fs::write(&s.plan, text).unwrap();
    let plan = s.plan.to_str().unwrap().to_owned();
    let backup = s.cloud_cli(&["backup", &plan, "--state-dir", &s.state(), "--skip-preflight"]);
    assert_eq!(backup.code, 0, "{}", backup.transcript());
    std::thread::sleep(Duration::from_millis(2100));
    let check = drover_aws(&["check", &plan, "--cloud", "aws", "--endpoint-url", &url]);
    assert_eq!(check.code, 1);
    assert_eq!(check.stdout.matches("beyond the RPO of 1s").count(), 5, "{}", check.stdout);
    // A failover preflight fails on stale points and on a target name that is taken.
    s.emu.fixture("seed", &json!({"source": SRC, "targets": [], "source_vault": "other-vault", "target_vaults": {}, "tables": [], "extra_tables": [{"region": DST, "name": "invoices"}, {"region": DST, "name": "orders-drill-preflight"}]}));
    let pre = s.cloud_cli(&["preflight", &plan, "--mode", "failover"]);
    assert_eq!(pre.code, 1);
    assert!(
        pre.stdout.lines().any(|l| l.starts_with("target-name")
            && l.contains("invoices in us-west-2")
            && l.contains(" fail ")),
        "{}",
        pre.stdout
    );
    assert_eq!(pre.stdout.matches("beyond the RPO").count(), 5, "{}", pre.stdout);
    // A drill preflight fails on a drill name that is taken (`drover preflight` checks the
    // names for the short id "preflight").
    let pre = s.cloud_cli(&["preflight", &plan]);
    assert_eq!(pre.code, 1);
    assert!(
        pre.stdout.lines().any(|l| l.starts_with("drill-name")
            && l.contains("orders-drill-preflight in us-west-2")
            && l.contains(" fail ")),
        "{}",
        pre.stdout
    );
    // Missing vaults.
    let mut other = s.plan.clone();
    other.set_file_name("missing-vaults.yaml");
    let text = std::fs::read_to_string(&s.plan)
        .unwrap()
        .replace("backup_vault: prod-vault", "backup_vault: no-such-vault")
        .replace("backup_vault: dr-vault", "backup_vault: no-dr-vault");
    std::fs::write(&other, text).unwrap();
    let pre = s.cloud_cli(&["preflight", other.to_str().unwrap(), "--format", "json"]);
    assert_eq!(pre.code, 1);
    let report: Value = serde_json::from_str(&pre.stdout).unwrap();
    let failed: Vec<&str> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["status"] == "fail")
        .map(|f| f["check"].as_str().unwrap())
        .collect();
    // (The drill name taken above is still taken.)
    assert_eq!(failed, ["source-vault", "target-vault", "drill-name"], "{report}");
}

/// Seven tables with dependencies (a diamond and a chain), one keyed by numbers, in realism
/// mode: a drill (marker and digests on) that leaves nothing behind, then a backup, then a
/// failover from the backup's copies: every table back with every item, setting and tag.
#[test]
fn seven_tables_drill_then_backup_then_failover_in_realism_mode() {
    let emu = Emulator::start(0.3);
    let spec = json!({
        "source": SRC,
        "targets": [DST],
        "source_vault": "prod-vault",
        "target_vaults": {DST: "dr-vault"},
        "tables": [
            {"name": "accounts", "items": 12, "canaries": [{"pk": "ACCOUNT#1"}]},
            {"name": "customers", "items": 20, "gsi": true, "canaries": [{"pk": "CUSTOMER#1"}]},
            {"name": "products", "items": 8},
            {"name": "orders", "items": 25, "sort_key": true, "gsi": true, "canaries": [{"pk": "ORDER#1", "sk": "META"}]},
            {"name": "ledger", "items": 9, "key_type": "N", "canaries": [{"pk": "42"}]},
            {"name": "invoices", "items": 10},
            {"name": "shipments", "items": 7, "sort_key": true},
        ],
    });
    let seeded = emu.fixture("seed", &spec);
    let key = seeded["keys"][DST].as_str().unwrap().to_owned();
    let dir = tempfile::tempdir().unwrap();
    let plan = dir.path().join("seven.yaml");
    std::fs::write(
        &plan,
        format!(
            "version: 1
name: seven
source: {{region: {SRC}, account_id: \"123456789012\", backup_vault: prod-vault}}
iam_role_arn: arn:aws:iam::123456789012:role/drover-backup
targets:
  - {{region: {DST}, backup_vault: dr-vault, kms_key_arn: \"{key}\"}}
defaults:
  point_in_time_recovery: true
  tags: {{team: shop}}
  validate: {{digest: true}}
drill: {{write_marker: true}}
tables:
  - name: accounts
    validate: {{min_items: 12, canary_keys: [{{pk: \"ACCOUNT#1\"}}]}}
  - name: customers
    depends_on: [accounts]
    ttl_attribute: expires_at
    validate: {{canary_keys: [{{pk: \"CUSTOMER#1\"}}]}}
  - name: products
    depends_on: [accounts]
    stream: NEW_IMAGE
  - name: orders
    depends_on: [customers, products]
    stream: NEW_AND_OLD_IMAGES
    deletion_protection: true
    tags: {{tier: \"1\"}}
    validate: {{canary_keys: [{{pk: \"ORDER#1\", sk: \"META\"}}]}}
  - name: ledger
    depends_on: [orders]
    validate: {{canary_keys: [{{pk: {{N: \"42\"}}}}]}}
  - name: invoices
    depends_on: [ledger]
    point_in_time_recovery: false
  - name: shipments
    depends_on: [orders]
    ttl_attribute: archived_at
"
        ),
    )
    .unwrap();
    let plan = plan.to_str().unwrap();
    let state = dir.path().join("state");
    let state = state.to_str().unwrap();
    let url = emu.url();
    let cli = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["--cloud", "aws", "--endpoint-url", &url, "--state-dir", state]);
        if matches!(args.first(), Some(&("drill" | "backup" | "failover"))) {
            all.extend(FAST_POLLS);
        }
        drover_aws(&all)
    };
    let inspect = || emu.fixture("inspect", &json!({"regions": [SRC, DST]}));
    let before = inspect();

    // The drill: the emulator's backups miss the last second's writes, so the marker and the
    // digests need the backup to wait a little longer than that.
    let id = "seven-20261201t000000z-d7a11000";
    let drill = cli(&["drill", plan, "--run-id", id, "--backup-settle", "2s"]);
    assert_eq!(drill.code, 0, "{}\n{}", drill.transcript(), emu.log());
    let report = drover_aws(&["report", id, "--format", "json", "--state-dir", state]);
    let report: Value = serde_json::from_str(&report.stdout).unwrap();
    assert_eq!(report["outcome"], "succeeded");
    for t in report["tables"].as_array().unwrap() {
        let checks = t["checks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap())
            .collect::<Vec<_>>()
            .join("\n");
        assert!(checks.contains("drill marker present"), "{}: {checks}", t["table"]);
        assert!(
            checks.contains("equals the source's, taken just before the backup"),
            "{}: {checks}",
            t["table"]
        );
        assert!(checks.contains("settings and tags are in effect"), "{}: {checks}", t["table"]);
    }
    assert_eq!(
        report["points_deleted"].as_array().map(Vec::len),
        Some(14),
        "7 source points and 7 copies"
    );
    let after = inspect();
    assert!(
        after[DST]["tables"].as_object().unwrap().is_empty(),
        "no drill table left: {}",
        after[DST]["tables"]
    );
    for (name, table) in after[SRC]["tables"].as_object().unwrap() {
        assert_eq!(
            table["digest"], before[SRC]["tables"][name]["digest"],
            "{name}: the marker is removed"
        );
    }
    let points = {
        let start = Instant::now();
        loop {
            let world = inspect();
            let left: Vec<(String, Value)> = [SRC, DST]
                .iter()
                .flat_map(|r| {
                    world[*r]["points"]
                        .as_object()
                        .unwrap()
                        .iter()
                        .filter(|(_, p)| !p.as_object().unwrap().is_empty())
                        .map(|(v, p)| (v.clone(), p.clone()))
                        .collect::<Vec<_>>()
                })
                .collect();
            if left.is_empty() || start.elapsed() > Duration::from_secs(30) {
                break left;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    assert!(points.is_empty(), "no drill recovery point left: {points:?}");

    // A backup: copies in the target vault, which a failover restores from.
    let backup = cli(&["backup", plan]);
    assert_eq!(backup.code, 0, "{}", backup.transcript());
    let failover = cli(&["failover", plan, "--yes"]);
    assert_eq!(failover.code, 0, "{}\n{}", failover.transcript(), emu.log());
    let world = inspect();
    for (name, source) in before[SRC]["tables"].as_object().unwrap() {
        let restored = &world[DST]["tables"][name];
        assert_eq!(restored["digest"], source["digest"], "{name}");
        assert_eq!(restored["kms_key"], json!(key), "{name}");
        assert_eq!(restored["tags"]["team"], "shop", "{name}");
        assert_eq!(restored["tags"]["drover:plan"], "seven", "{name}");
    }
    assert_eq!(world[DST]["tables"]["orders"]["stream"], "NEW_AND_OLD_IMAGES");
    assert_eq!(world[DST]["tables"]["products"]["stream"], "NEW_IMAGE");
    assert_eq!(world[DST]["tables"]["orders"]["deletion_protection"], true);
    assert_eq!(world[DST]["tables"]["customers"]["ttl"], "expires_at");
    assert_eq!(world[DST]["tables"]["invoices"]["pitr"], "DISABLED");
    assert_eq!(world[DST]["tables"]["ledger"]["pitr"], "ENABLED");
    // One backup and one copy per table and run (drill and backup), one restore per table
    // and run (drill and failover): nothing started twice.
    assert_eq!(world[SRC]["jobs"], json!({"backup": 14, "copy": 14, "restore": 0}));
    assert_eq!(world[DST]["jobs"]["restore"], 14);
}

/// The adapter's paced scans: a scan with a read budget takes at least the time its consumed
/// capacity allows (the emulator counts one unit per page; pages of two items), and a page
/// throttled more often than the SDK retries is asked again from where it was, so the scan
/// still finishes with every item.
#[test]
fn scans_keep_to_their_read_budget_and_ride_out_throttled_pages() {
    use drover_engine::ports::{ScanOptions, TableService};
    let emu = Emulator::start_ideal(0.2);
    assert_eq!(emu.control("/_drover/realism", &json!({"page_size": 2})), 200);
    let spec = json!({
        "source": SRC, "targets": [DST], "source_vault": "prod-vault",
        "target_vaults": {DST: "dr-vault"},
        "tables": [{"name": "orders", "items": 24}],
    });
    emu.fixture("seed", &spec);
    let aws = drover_aws::AwsCloud::new(drover_aws::AwsOptions {
        endpoint_url: Some(emu.url()),
        emulator_credentials: true,
        ..drover_aws::AwsOptions::default()
    });
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let fast = aws.digest_items(SRC, "orders", &ScanOptions::unpaced(2)).await.unwrap();
        assert_eq!(fast.items, 24);
        // 12 pages of one unit each at 4 units per second: at least 2 s (the first second's
        // pages go at once).
        let paced = ScanOptions { segments: 2, read_units_per_second: Some(4.0), item_bytes: Some(100) };
        let start = Instant::now();
        let digest = aws.digest_items(SRC, "orders", &paced).await.unwrap();
        assert_eq!(digest, fast);
        assert!(start.elapsed() >= Duration::from_secs(2), "paced scan took {:?}", start.elapsed());

        // Five throttled answers in a row: more than the SDK's three attempts.
        let storm = json!({"operation": "dynamodb:Scan", "count": 5, "code": "ProvisionedThroughputExceededException"});
        assert_eq!(emu.control("/_drover/throttle", &storm), 200);
        let digest = aws.digest_items(SRC, "orders", &ScanOptions::unpaced(1)).await.unwrap();
        assert_eq!(digest, fast, "the throttled scan read every item once");
        assert_eq!(emu.config()["call_faults"], json!([]), "every throttled answer was met");
    });
}
