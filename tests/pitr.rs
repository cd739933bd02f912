//! Point-in-time recovery end to end, through the binary and the SDK against the emulator in
//! its realism mode (`LatestRestorableDateTime` lags, restored tables settle, tags show late):
//! items written at T1, corrupted and deleted at T2, `drover recover --to` an instant between
//! them restores every table to exactly its T1 items, in dependency order, configured and
//! validated; preflight refuses what cannot be restored to the instant; SIGKILL at random
//! moments, then `resume`, restores no table twice.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use crate::aws::{DST, FAST_POLLS};
use crate::common::{Emulator, aws_command, drover_aws, kill_and_resume};

const SRC: &str = "us-east-1";
const TABLES: [&str; 3] = ["customers", "orders", "invoices"];

struct Setup {
    emu: Emulator,
    dir: tempfile::TempDir,
    plan: PathBuf,
    key: String,
}

/// Three dependent tables with PITR on from their creation (so every seeded write is in their
/// history), and one target; `extra` tables (without PITR) join the plan.
fn setup(extra: &[&str]) -> Setup {
    let emu = Emulator::start(0.5);
    let mut tables = vec![
        json!({"name": "customers", "items": 12, "canaries": [{"pk": "CUSTOMER#1"}], "pitr": true}),
        json!({"name": "orders", "items": 15, "sort_key": true, "gsi": true, "pitr": true}),
        json!({"name": "invoices", "items": 8, "pitr": true}),
    ];
    tables.extend(extra.iter().map(|t| json!({"name": t, "items": 3})));
    let seeded = emu.fixture(
        "seed",
        &json!({"source": SRC, "targets": [DST], "source_vault": "prod-vault",
                "target_vaults": {DST: "dr-vault"}, "tables": tables}),
    );
    let key = seeded["keys"][DST].as_str().unwrap().to_owned();
    let dir = tempfile::tempdir().unwrap();
    let mut yaml = format!(
        "version: 1
name: shop-pitr
source: {{region: {SRC}, backup_vault: prod-vault}}
iam_role_arn: arn:aws:iam::123456789012:role/drover-backup
objectives: {{rpo: 15m, rto: 2h}}
targets:
  - {{region: {DST}, backup_vault: dr-vault, kms_key_arn: \"{key}\"}}
tables:
  - name: customers
    point_in_time_recovery: true
    tags: {{team: shop}}
    validate: {{min_items: 10, canary_keys: [{{pk: \"CUSTOMER#1\"}}], digest: true}}
  - name: orders
    depends_on: [customers]
    point_in_time_recovery: true
    ttl_attribute: expires_at
    validate: {{digest: true}}
  - name: invoices
    depends_on: [orders]
    validate: {{digest: true}}
"
    );
    for t in extra {
        yaml.push_str(&format!("  - name: {t}\n"));
    }
    let plan = dir.path().join("shop-pitr.yaml");
    std::fs::write(&plan, yaml).unwrap();
    Setup { emu, dir, plan, key }
}

impl Setup {
    fn args<'a>(&'a self, args: &[&'a str], url: &'a str, state: &'a str) -> Vec<&'a str> {
        let mut all = args.to_vec();
        let command = args.first().copied().unwrap_or_default();
        if matches!(command, "recover" | "drill" | "check") {
            all.extend(["--cloud", "aws"]);
        }
        if matches!(command, "recover" | "drill" | "check" | "resume") {
            all.extend(["--endpoint-url", url]);
        }
        if command != "check" {
            all.extend(["--state", state]);
        }
        if matches!(args.first(), Some(&("drill" | "recover"))) {
            all.extend(FAST_POLLS);
        }
        all
    }

    fn cli(&self, args: &[&str]) -> crate::common::Run {
        let (url, state) = (self.emu.url(), self.state());
        drover_aws(&self.args(args, &url, &state))
    }

    fn state(&self) -> String {
        self.dir.path().join("state").to_str().unwrap().to_owned()
    }

    fn journal(&self, id: &str) -> PathBuf {
        Path::new(&self.state()).join("runs").join(id).join("journal.jsonl")
    }

    fn tables(&self, region: &str) -> Value {
        self.emu.fixture("inspect", &json!({"regions": [region]}))[region]["tables"].clone()
    }

    /// T1, an instant, T2: the seeded items are the T1 state; the instant lies a whole second
    /// after them (`--to` takes whole seconds) and before the T2 writes, which change two
    /// customers, delete a customer and an order, and add an invoice. Returns the instant (ms)
    /// and each table's T1 digest.
    fn corrupt_after_an_instant(&self) -> (i64, Value) {
        let before = self.tables(SRC);
        let now = now_ms();
        let instant = (now / 1000 + 1) * 1000;
        std::thread::sleep(Duration::from_millis(u64::try_from(instant + 700 - now).unwrap()));
        let bad = |i: u32| json!({"pk": {"S": format!("ITEM#{i}")}, "status": {"S": "ENCRYPTED-BY-RANSOMWARE"}});
        self.emu.fixture(
            "write",
            &json!({"region": SRC, "table": "customers", "put": [bad(1), bad(2)],
                    "delete": [{"pk": {"S": "ITEM#3"}}]}),
        );
        self.emu.fixture(
            "write",
            &json!({"region": SRC, "table": "orders",
                    "delete": [{"pk": {"S": "ITEM#4"}, "sk": {"S": "META"}}]}),
        );
        self.emu.fixture(
            "write",
            &json!({"region": SRC, "table": "invoices",
                    "put": [{"pk": {"S": "ITEM#99"}, "status": {"S": "bogus"}}]}),
        );
        let after = self.tables(SRC);
        let digests: serde_json::Map<String, Value> =
            TABLES.iter().map(|t| ((*t).to_owned(), before[*t]["digest"].clone())).collect();
        for t in TABLES {
            assert_ne!(before[t]["digest"], after[t]["digest"], "{t} was not changed at T2");
        }
        // The window reaches the instant once `pitr_latest_lag` (2 s) has passed it.
        std::thread::sleep(Duration::from_millis(2500));
        (instant, Value::Object(digests))
    }
}

fn now_ms() -> i64 {
    i64::try_from(SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis()).unwrap()
}

/// `2026-12-01T10:30:05Z`.
fn utc(ms: i64) -> String {
    drover_engine::run::format_time(ms)
}

/// Each step's first `began` and last `succeeded` record in a journal: (key, time).
fn records(journal: &str) -> Vec<(String, String, i64)> {
    journal
        .lines()
        // Each line is `<hash> <record>`.
        .filter_map(|l| serde_json::from_str::<Value>(l.split_once(' ')?.1).ok())
        .filter_map(|e| {
            let step = &e["step"];
            let event = e["event"].as_str()?.to_owned();
            let key = format!(
                "{} {} {}",
                step["table"].as_str()?,
                step["target"].as_str().unwrap_or("-"),
                step["kind"].as_str()?
            );
            Some((key, event, e["at"].as_i64()?))
        })
        .collect()
}

fn at(records: &[(String, String, i64)], key: &str, event: &str) -> i64 {
    records
        .iter()
        .find(|(k, e, _)| k == key && e == event)
        .unwrap_or_else(|| panic!("no {event} of {key}"))
        .2
}

/// RestoreTableToPointInTime calls the emulator served (faults it answered, which restore
/// nothing, left out).
fn pitr_restores(emu: &Emulator) -> i64 {
    let calls = emu.calls();
    let op = "dynamodb:RestoreTableToPointInTime";
    calls["by_operation"][op].as_i64().unwrap_or(0) - calls["faulted"][op].as_i64().unwrap_or(0)
}

#[test]
fn recover_to_an_instant_between_two_writes_restores_exactly_the_earlier_items() {
    let s = setup(&[]);
    let (instant, t1) = s.corrupt_after_an_instant();
    let plan = s.plan.to_str().unwrap();
    let id = "shop-pitr-20261201t000000z-00000001";
    let to = utc(instant);
    let run = s.cli(&["recover", plan, "--to", &to, "--run-id", id]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    assert!(run.stderr.contains(&format!("every table is restored to {to}")), "{}", run.stderr);

    // Every restored table holds exactly the T1 items, with the plan's settings re-applied.
    let compact = to.replace(['-', ':'], "");
    let there = s.tables(DST);
    for t in TABLES {
        let name = format!("{t}-at-{compact}");
        let table = &there[&name];
        assert_eq!(table["digest"], t1[t], "{name} does not hold {t}'s T1 items: {table}");
        assert_eq!(table["kms_key"], json!(s.key), "{name}");
        assert_eq!(table["tags"]["drover:run"], json!(id), "{name}");
        assert_eq!(table["status"], "ACTIVE", "{name}");
    }
    assert_eq!(there["customers-at-".to_owned() + &compact]["pitr"], "ENABLED");
    assert_eq!(there["customers-at-".to_owned() + &compact]["tags"]["team"], "shop");
    assert_eq!(there["orders-at-".to_owned() + &compact]["ttl"], "expires_at");
    assert_eq!(there["orders-at-".to_owned() + &compact]["gsis"].as_array().unwrap().len(), 1);
    assert_eq!(there.as_object().unwrap().len(), 3, "only the three restored tables: {there}");
    assert_eq!(pitr_restores(&s.emu), 3);

    // In dependency order: a table's restore began after its dependency was validated.
    let journal = std::fs::read_to_string(s.journal(id)).unwrap();
    let r = records(&journal);
    for (dep, t) in [("customers", "orders"), ("orders", "invoices")] {
        let validated = at(&r, &format!("{dep} {DST} validate"), "succeeded");
        let began = at(&r, &format!("{t} {DST} restore"), "began");
        assert!(validated <= began, "{t} restored before {dep} was validated");
    }

    // The report states the instant and the RPO achieved against when it was chosen.
    let report = s.cli(&["report", id, "--format", "json"]);
    assert_eq!(report.code, 0, "{}", report.transcript());
    let report: Value = serde_json::from_str(&report.stdout).unwrap();
    assert_eq!(report["outcome"], "succeeded");
    assert_eq!(report["restored_to"], json!(instant));
    let rpo = report["rpo_achieved_ms"].as_i64().unwrap();
    assert!((2_000..60_000).contains(&rpo), "RPO {rpo} ms");
    let checks = report["tables"][0]["checks"].to_string();
    assert!(checks.contains(&format!("as it was at {to} (RestoreSummary)")), "{checks}");

    // Beside the source (in-region), under a template of our own.
    let run = s.cli(&[
        "recover",
        plan,
        "--to",
        &to,
        "--into-source",
        "--name-template",
        "{table}-fixed-{run}",
        "--run-id",
        "shop-pitr-20261201t000000z-00000002",
    ]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    let here = s.tables(SRC);
    for t in TABLES {
        let name = format!("{t}-fixed-00000002");
        assert_eq!(here[&name]["digest"], t1[t], "{name}: {}", here[&name]);
        // The restore keeps the source table's encryption.
        assert_eq!(here[&name]["kms_key"], here[t]["kms_key"], "{name}");
    }
}

#[test]
fn preflight_refuses_a_table_without_pitr_and_an_instant_outside_the_window() {
    let s = setup(&["audit"]);
    let plan = s.plan.to_str().unwrap();
    let run = s.cli(&["recover", plan, "--latest"]);
    assert_eq!(run.code, 1, "{}", run.transcript());
    assert!(run.stderr.contains("point-in-time recovery is off on `audit`"), "{}", run.stderr);

    let run = s.cli(&["recover", plan, "--before-minutes", "1"]);
    assert_eq!(run.code, 1, "{}", run.transcript());
    let line = |check: &str, subject: &str| {
        run.stderr.lines().find(|l| l.starts_with(check) && l.contains(subject)).unwrap_or_default()
    };
    assert!(
        line("pitr-window", "audit in us-east-1").contains("fail    point-in-time recovery is off"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("update-continuous-backups --region us-east-1 --table-name audit"),
        "{}",
        run.stderr
    );
    // The tables whose window does not reach a minute back (PITR was enabled seconds ago).
    assert!(
        line("pitr-window", "customers in us-east-1").contains("is before its restorable window ["),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("recover to an instant at or after"), "{}", run.stderr);
    assert!(run.stderr.contains("preflight failed; nothing was started"), "{}", run.stderr);
    assert_eq!(pitr_restores(&s.emu), 0);
    assert!(s.tables(DST).as_object().unwrap().is_empty());

    // `check --pitr` says the same per table, for cron and CI.
    let check = s.cli(&["check", plan, "--pitr", "--format", "json"]);
    assert_eq!(check.code, 1, "{}", check.transcript());
    let findings: Value = serde_json::from_str(&check.stdout).unwrap();
    let by_table: Vec<(String, String)> = findings["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (f["subject"].as_str().unwrap().to_owned(), f["status"].as_str().unwrap().to_owned())
        })
        .collect();
    assert!(
        by_table.contains(&("customers in us-east-1".to_owned(), "pass".to_owned())),
        "{by_table:?}"
    );
    assert!(
        by_table.contains(&("audit in us-east-1".to_owned(), "fail".to_owned())),
        "{by_table:?}"
    );
}

#[test]
fn sigkill_during_recover_then_resume_restores_no_table_twice() {
    let s = setup(&[]);
    let (instant, t1) = s.corrupt_after_an_instant();
    let plan = s.plan.to_str().unwrap().to_owned();
    let (url, state) = (s.emu.url(), s.state());
    let id = "shop-pitr-20261201t000000z-0000000a";
    let to = utc(instant);
    let spawn = |args: Vec<&str>| {
        aws_command(&s.args(&args, &url, &state))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    let child = spawn(vec!["recover", &plan, "--to", &to, "--run-id", id]);
    let (code, kills) = kill_and_resume(
        child,
        &s.journal(id),
        0x5eed_0015,
        (4, 300, Duration::from_secs(240)),
        || {},
        || spawn(vec!["resume", id]),
    );
    assert!(kills > 0, "no kill landed");
    if code != Some(0) {
        let last = s.cli(&["resume", id]);
        assert_eq!(last.code, 0, "{}", last.transcript());
    }
    assert_eq!(pitr_restores(&s.emu), 3, "a table was restored twice (or not at all)");
    let compact = to.replace(['-', ':'], "");
    let there = s.tables(DST);
    assert_eq!(there.as_object().unwrap().len(), 3, "{there}");
    for t in TABLES {
        assert_eq!(there[format!("{t}-at-{compact}")]["digest"], t1[t], "{t}");
    }
    let status = s.cli(&["status", id, "--format", "json"]);
    let status: Value = serde_json::from_str(&status.stdout).unwrap();
    assert_eq!(status["state"], "succeeded", "{status}");
}

#[test]
fn a_pitr_drill_rehearses_the_recovery_and_tears_it_down() {
    let s = setup(&[]);
    let plan = s.plan.to_str().unwrap();
    // The window must reach the seeded writes first.
    std::thread::sleep(Duration::from_millis(2500));
    let run = s.cli(&["drill", plan, "--pitr", "--run-id", "shop-pitr-20261201t000000z-0000000d"]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    assert_eq!(pitr_restores(&s.emu), 3);
    assert!(s.tables(DST).as_object().unwrap().is_empty(), "the drill left tables behind");
    let report = s.cli(&["report", "shop-pitr-20261201t000000z-0000000d", "--format", "json"]);
    let report: Value = serde_json::from_str(&report.stdout).unwrap();
    assert_eq!(report["mode"], "drill");
    assert!(report["restored_to"].as_i64().is_some(), "{report}");
    // No backup, copy or restore job: point-in-time recovery only.
    let jobs = s.emu.fixture("inspect", &json!({"regions": [SRC, DST]}));
    for r in [SRC, DST] {
        assert_eq!(jobs[r]["jobs"], json!({"backup": 0, "copy": 0, "restore": 0}), "{r}");
    }
}
