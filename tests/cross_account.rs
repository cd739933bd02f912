//! Recovery into a separate account, end to end through the binary and the SDK against the
//! emulator in its realism mode: the operator's credentials (the emulator's default account)
//! assume a role in the production account and one in the recovery account; copies go from
//! production into the recovery account's vault (the Organization allowing it, the vault's
//! access policy letting production in, the source vault's key shared); restores, checks and
//! teardown run in the account of each target. The emulator's call log (by account) shows who
//! did what.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};

use crate::aws::FAST_POLLS;
use crate::common::{Emulator, aws_command, drover_aws, kill_and_resume};

/// The account of the operator's own credentials (the emulator's default).
const OPERATOR: &str = "123456789012";
/// The production account: the source and one target.
const PROD: &str = "111111111111";
/// The recovery account: the other target.
const RECOVERY: &str = "222222222222";
const SRC: &str = "us-east-1";
/// A target in the production account.
const SAME: &str = "us-west-2";
/// A target in the recovery account.
const AWAY: &str = "eu-west-1";
const EXTERNAL_ID: &str = "drover-e2e-7f3a";
const TABLES: [&str; 3] = ["customers", "orders", "invoices"];

/// The seed of a production and a recovery account, with `changes` merged over it.
fn spec(changes: &Value) -> Value {
    let mut spec = json!({
        "source": SRC,
        "targets": [SAME, AWAY],
        "source_vault": "prod-vault",
        "target_vaults": {SAME: "dr-vault", AWAY: "recovery-vault"},
        "accounts": {SRC: PROD, SAME: PROD, AWAY: RECOVERY},
        "roles": [
            {"account": PROD, "name": "drover-prod", "trusts": OPERATOR, "external_id": EXTERNAL_ID},
            {"account": RECOVERY, "name": "drover-recovery", "trusts": OPERATOR, "external_id": EXTERNAL_ID},
        ],
        "backup_roles": [
            {"account": PROD, "name": "drover-backup"},
            {"account": RECOVERY, "name": "drover-restore"},
        ],
        "organization": {"management": PROD, "members": [PROD, RECOVERY], "cross_account_backup": true},
        "vault_policies": {AWAY: {"allow_copy_from": [PROD]}},
        "source_vault_key": {"share_with": [RECOVERY]},
        "tables": [
            {"name": "customers", "items": 20, "canaries": [{"pk": "CUSTOMER#1"}]},
            {"name": "orders", "items": 25, "sort_key": true, "gsi": true},
            {"name": "invoices", "items": 10},
        ],
    });
    if let (Some(spec), Some(changes)) = (spec.as_object_mut(), changes.as_object()) {
        for (k, v) in changes {
            spec.insert(k.clone(), v.clone());
        }
    }
    spec
}

/// The production account's plan: one target in production, one in the recovery account
/// (unless `away_only`: the recovery target alone, as a failover into it is run).
fn plan(dir: &Path, keys: &Value, away_only: bool) -> PathBuf {
    let same = format!(
        "  - {{region: {SAME}, backup_vault: dr-vault, kms_key_arn: \"{}\"}}\n",
        keys[SAME].as_str().unwrap()
    );
    let yaml = format!(
        "version: 1
name: xacct
source:
  region: {SRC}
  account_id: \"{PROD}\"
  backup_vault: prod-vault
  role_arn: arn:aws:iam::{PROD}:role/drover-prod
  external_id: {EXTERNAL_ID}
iam_role_arn: arn:aws:iam::{PROD}:role/drover-backup
objectives: {{rpo: 1h, rto: 1h}}
targets:
{same}  - region: {AWAY}
    account_id: \"{RECOVERY}\"
    role_arn: arn:aws:iam::{RECOVERY}:role/drover-recovery
    external_id: {EXTERNAL_ID}
    session_duration: 1h
    iam_role_arn: arn:aws:iam::{RECOVERY}:role/drover-restore
    backup_vault: recovery-vault
    kms_key_arn: \"{away}\"
tables:
  - name: customers
    validate: {{min_items: 20, canary_keys: [{{pk: \"CUSTOMER#1\"}}], digest: true}}
  - name: orders
    depends_on: [customers]
    validate: {{digest: true}}
  - name: invoices
    depends_on: [orders]
",
        same = if away_only { String::new() } else { same },
        away = keys[AWAY].as_str().unwrap(),
    );
    let path = dir.join(if away_only { "xacct-away.yaml" } else { "xacct.yaml" });
    std::fs::write(&path, yaml).unwrap();
    path
}

struct Setup {
    emu: Emulator,
    dir: tempfile::TempDir,
    plan: PathBuf,
    keys: Value,
}

fn setup(changes: &Value) -> Setup {
    let emu = Emulator::start(0.5);
    let seeded = emu.fixture("seed", &spec(changes));
    let dir = tempfile::tempdir().unwrap();
    let keys = seeded["keys"].clone();
    let plan = plan(dir.path(), &keys, false);
    Setup { emu, dir, plan, keys }
}

impl Setup {
    fn cli(&self, args: &[&str]) -> crate::common::Run {
        let url = self.emu.url();
        let state = self.state();
        let mut all = args.to_vec();
        all.extend(["--cloud", "aws", "--endpoint-url", &url, "--state", &state]);
        if matches!(args.first(), Some(&("drill" | "backup" | "failover"))) {
            all.extend(FAST_POLLS);
        }
        drover_aws(&all)
    }

    fn state(&self) -> String {
        self.dir.path().join("state").to_str().unwrap().to_owned()
    }

    /// Each region as its account sees it: tables, job counts, recovery points.
    fn inspect(&self) -> Value {
        self.emu.fixture(
            "inspect",
            &json!({"regions": [SRC, SAME, AWAY], "accounts": {SRC: PROD, SAME: PROD, AWAY: RECOVERY}}),
        )
    }

    /// The recovery points left in every vault of every region (of its account), once those
    /// being deleted are gone.
    fn points_left(&self) -> Value {
        for _ in 0..150 {
            let world = self.inspect();
            let mut left = serde_json::Map::new();
            let mut deleting = false;
            for region in [SRC, SAME, AWAY] {
                for (vault, points) in world[region]["points"].as_object().unwrap() {
                    let points = points.as_object().unwrap();
                    deleting |= points.values().any(|s| s == "DELETING");
                    if !points.is_empty() {
                        left.insert(format!("{region} {vault}"), json!(points));
                    }
                }
            }
            if !deleting {
                return Value::Object(left);
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!("recovery points still deleting after 30 s");
    }

    /// The calls each account made, by operation.
    fn calls_by_account(&self) -> Value {
        self.emu.calls()["by_account"].clone()
    }

    fn journal(&self, id: &str) -> String {
        std::fs::read_to_string(
            Path::new(&self.state()).join("runs").join(id).join("journal.jsonl"),
        )
        .unwrap()
    }
}

/// The operations of one account in the call log.
fn operations(calls: &Value, account: &str) -> Vec<String> {
    calls[account].as_object().map(|ops| ops.keys().cloned().collect()).unwrap_or_default()
}

#[test]
fn a_drill_from_production_into_a_recovery_account_leaves_nothing_in_either() {
    let s = setup(&json!({}));
    let plan = s.plan.to_str().unwrap();
    let id = "xacct-20261201t000000z-e2e00001";
    let run = s.cli(&["drill", plan, "--run-id", id]);
    assert_eq!(run.code, 0, "{}", run.transcript());

    // Restores ran in each target's account: the journal names the restored tables' ARNs.
    let journal = s.journal(id);
    for table in TABLES {
        let away = format!("arn:aws:dynamodb:{AWAY}:{RECOVERY}:table/{table}-drill-");
        let same = format!("arn:aws:dynamodb:{SAME}:{PROD}:table/{table}-drill-");
        assert!(journal.contains(&away), "{table} restored in the recovery account");
        assert!(journal.contains(&same), "{table} restored in the production account");
    }
    // Copies went from production into the recovery account's vault, as AWS Backup does it:
    // the copy jobs in the source account, the restores in the target's.
    let world = s.inspect();
    assert_eq!(world[SRC]["jobs"], json!({"backup": 3, "copy": 6, "restore": 0}), "{world}");
    assert_eq!(world[AWAY]["jobs"]["restore"], 3, "{world}");
    assert_eq!(world[SAME]["jobs"]["restore"], 3, "{world}");
    // Teardown left nothing of the drill in either account.
    for region in [SRC, SAME, AWAY] {
        let tables: Vec<&String> = world[region]["tables"].as_object().unwrap().keys().collect();
        let expected: Vec<&str> = if region == SRC { TABLES.to_vec() } else { Vec::new() };
        let mut tables: Vec<&str> = tables.iter().map(|t| t.as_str()).collect();
        tables.sort_unstable();
        let mut expected = expected;
        expected.sort_unstable();
        assert_eq!(tables, expected, "tables left in {region}");
    }
    assert_eq!(s.points_left(), json!({}), "no recovery point left in any vault");
    // drover acted in each account through its role: the operator's own credentials only
    // assumed the roles.
    let calls = s.calls_by_account();
    assert_eq!(operations(&calls, OPERATOR), ["sts:AssumeRole"], "{calls}");
    let prod = operations(&calls, PROD);
    let recovery = operations(&calls, RECOVERY);
    assert!(prod.iter().any(|o| o == "backup:StartCopyJob"), "{prod:?}");
    assert!(!recovery.iter().any(|o| o == "backup:StartCopyJob"), "{recovery:?}");
    assert!(recovery.iter().any(|o| o == "backup:StartRestoreJob"), "{recovery:?}");
    assert!(recovery.iter().any(|o| o == "sts:GetCallerIdentity"), "preflight asked who it is");
}

#[test]
fn a_failover_into_the_recovery_account_makes_no_call_as_production() {
    let s = setup(&json!({}));
    let away = plan(s.dir.path(), &s.keys, true);
    let away = away.to_str().unwrap();
    // Copies in the recovery vault, from a backup run (in production).
    let backup = s.cli(&["backup", away, "--run-id", "xacct-20261201t000000z-e2e00002"]);
    assert_eq!(backup.code, 0, "{}", backup.transcript());
    assert_eq!(s.emu.control("/_drover/reset", &json!({"moto": false})), 200);

    // The production account is out of reach: the source region does not answer at all.
    let run = s.cli(&[
        "failover",
        away,
        "--yes",
        "--run-id",
        "xacct-20261201t000000z-e2e00003",
        "--region-endpoint",
        &format!("{SRC}=http://127.0.0.1:9"),
    ]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    let calls = s.calls_by_account();
    assert!(
        calls.get(PROD).is_none(),
        "no call with the production account's credentials: {calls}"
    );
    assert_eq!(operations(&calls, OPERATOR), ["sts:AssumeRole"], "{calls}");
    let world = s.inspect();
    for table in TABLES {
        assert_eq!(world[AWAY]["tables"][table]["status"], "ACTIVE", "{table}: {world}");
    }
}

#[test]
fn preflight_names_the_fix_for_each_cross_account_mistake() {
    // The recovery account's role does not exist; a third account's vault has no access
    // policy and an AWS managed key.
    const THIRD: &str = "333333333333";
    const OTHER: &str = "ap-southeast-2";
    let s = setup(&json!({
        "targets": [SAME, AWAY, OTHER],
        "target_vaults": {SAME: "dr-vault", AWAY: "recovery-vault", OTHER: "vault3"},
        "accounts": {SRC: PROD, SAME: PROD, AWAY: RECOVERY, OTHER: THIRD},
        "roles": [
            {"account": PROD, "name": "drover-prod", "trusts": OPERATOR, "external_id": EXTERNAL_ID},
            {"account": THIRD, "name": "drover-third", "trusts": OPERATOR},
        ],
        "organization": {"management": PROD, "members": [PROD, RECOVERY, THIRD], "cross_account_backup": true},
        "aws_managed_vault_keys": [OTHER],
    }));
    let text = std::fs::read_to_string(&s.plan).unwrap().replace(
        "tables:\n",
        &format!(
            "  - region: {OTHER}
    account_id: \"{THIRD}\"
    role_arn: arn:aws:iam::{THIRD}:role/drover-third
    iam_role_arn: arn:aws:iam::{THIRD}:role/drover-restore
    backup_vault: vault3
    kms_key_arn: \"{}\"
tables:\n",
            s.keys[OTHER].as_str().unwrap()
        ),
    );
    std::fs::write(&s.plan, text).unwrap();
    let run = s.cli(&["preflight", s.plan.to_str().unwrap(), "--format", "json"]);
    assert_eq!(run.code, 1, "{}", run.transcript());
    let report: Value = serde_json::from_str(&run.stdout).unwrap();
    let findings = report["findings"].clone();
    let failed = |check: &str, subject: &str| -> Value {
        findings
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["check"] == check && f["subject"].as_str().unwrap().contains(subject))
            .cloned()
            .unwrap_or_else(|| panic!("no {check} finding on {subject}: {findings:#}"))
    };
    let role = failed("account", RECOVERY);
    assert_eq!(role["status"], "fail", "{role}");
    assert!(role["detail"].as_str().unwrap().contains("could not assume role"), "{role}");
    assert!(role["fix"].as_str().unwrap().contains("sts:ExternalId = drover-e2e-7f3a"), "{role}");
    let policy = failed("vault-policy", "vault3");
    assert_eq!(policy["status"], "fail", "{policy}");
    assert!(policy["fix"].as_str().unwrap().contains("put-backup-vault-access-policy"), "{policy}");
    assert!(policy["fix"].as_str().unwrap().contains("backup:CopyIntoBackupVault"), "{policy}");
    let key = failed("vault-key", "vault3");
    assert_eq!(key["status"], "fail", "{key}");
    assert!(key["detail"].as_str().unwrap().contains("AWS managed key"), "{key}");
    assert!(key["fix"].as_str().unwrap().contains("customer-managed key"), "{key}");
    // What drover can check in the recovery account it cannot enter is left out.
    assert!(
        !findings.as_array().unwrap().iter().any(|f| f["check"] == "vault-policy"
            && f["subject"].as_str().unwrap().contains("recovery-vault")),
        "{findings:#}"
    );
    // A key of another account is refused by the plan itself, at its line.
    let text = std::fs::read_to_string(&s.plan)
        .unwrap()
        .replace(&format!("kms:{AWAY}:{RECOVERY}:"), &format!("kms:{AWAY}:{PROD}:"));
    let wrong = s.dir.path().join("wrong-key.yaml");
    std::fs::write(&wrong, text).unwrap();
    let run = s.cli(&["preflight", wrong.to_str().unwrap()]);
    assert_eq!(run.code, 1, "{}", run.transcript());
    assert!(run.stderr.contains("kms_key_arn") && run.stderr.contains(RECOVERY), "{}", run.stderr);
}

#[test]
fn a_drill_into_a_locked_recovery_vault_keeps_its_copies_and_says_why() {
    let s =
        setup(&json!({"vault_locks": {AWAY: {"min_retention_days": 7, "max_retention_days": 30}}}));
    let id = "xacct-20261201t000000z-e2e00004";
    let run = s.cli(&["drill", s.plan.to_str().unwrap(), "--run-id", id]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    let left = s.points_left();
    let kept = left[format!("{AWAY} recovery-vault")].as_object().map_or(0, |p| p.len());
    assert_eq!(kept, 3, "the locked vault keeps the drill's copies: {left}");
    assert_eq!(left.as_object().unwrap().len(), 1, "nothing else is left: {left}");
    let state = s.state();
    let report = drover_aws(&["report", id, "--state", &state, "--format", "md"]);
    assert_eq!(report.code, 0, "{}", report.transcript());
    assert!(report.stdout.contains("vault `recovery-vault` is locked"), "{}", report.stdout);
    assert!(
        report.stdout.contains("7 days"),
        "kept as long as the lock's minimum: {}",
        report.stdout
    );
}

#[test]
fn sigkill_and_resume_of_a_cross_account_drill_starts_no_job_twice() {
    let s = setup(&json!({}));
    let id = "xacct-20261201t000000z-e2e00005";
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
        "--state",
        &state,
        "--poll-interval",
        "500ms",
    ]);
    let journal = Path::new(&state).join("runs").join(id).join("journal.jsonl");
    let mut assumed = Vec::new();
    let (finished, kills) = kill_and_resume(
        child,
        &journal,
        0x2545_F491_4F6C_DD1D,
        (6, 900, Duration::from_secs(240)),
        || assumed.push(s.emu.calls()["by_operation"]["sts:AssumeRole"].as_u64().unwrap_or(0)),
        || spawn(&["resume", id, "--state", &state]),
    );
    assert_eq!(finished, Some(0), "after {kills} kills");
    assert!(kills >= 2, "only {kills} kills landed");
    // Each resumed process assumed the roles again.
    let total = s.emu.calls()["by_operation"]["sts:AssumeRole"].as_u64().unwrap();
    assert!(
        assumed.windows(2).all(|w| w[1] > w[0]) && total > assumed[kills - 1],
        "{assumed:?} then {total}"
    );
    let world = s.inspect();
    assert_eq!(world[SRC]["jobs"], json!({"backup": 3, "copy": 6, "restore": 0}), "{world}");
    assert_eq!(world[AWAY]["jobs"]["restore"], 3, "no restore twice in the recovery account");
    assert_eq!(world[SAME]["jobs"]["restore"], 3, "{world}");
    assert_eq!(s.points_left(), json!({}), "{world}");
}

#[test]
fn a_source_role_that_cannot_be_assumed_is_one_sentence_with_its_fix() {
    // The production role trusts another account than the operator's.
    let s = setup(&json!({
        "roles": [
            {"account": PROD, "name": "drover-prod", "trusts": "999999999999", "external_id": EXTERNAL_ID},
            {"account": RECOVERY, "name": "drover-recovery", "trusts": OPERATOR, "external_id": EXTERNAL_ID},
        ],
    }));
    let run = s.cli(&["preflight", s.plan.to_str().unwrap()]);
    assert_eq!(run.code, 1, "{}", run.transcript());
    let role = format!("arn:aws:iam::{PROD}:role/drover-prod");
    assert!(
        run.stderr.contains(&format!("drover could not assume role {role} (AccessDenied")),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("to act in us-east-1; let your credentials assume it"));
    assert!(run.stderr.contains("drover iam-policy PLAN"), "{}", run.stderr);
    assert_eq!(run.stderr.lines().count(), 1, "one sentence: {}", run.stderr);
}
