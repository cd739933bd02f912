//! `drover iam-policy`: the policies of the example plans, scoped to their ARNs.

use std::io::Write as _;

use serde_json::Value;

use crate::common::{drover, repo_root};
use crate::snapshot;

/// The statement whose resource may be `*` (kept in sync with `drover_aws::iam`).
const UNSCOPABLE_SID: &str = "NoResourceLevelPermissionsInPlanRegions";

fn policies(plan: &str) -> Value {
    let run = drover(&["iam-policy", plan]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    assert!(run.stderr.lines().all(|l| l.starts_with("warning: the ")), "{}", run.transcript());
    serde_json::from_str(&run.stdout).unwrap()
}

fn statements(doc: &Value) -> &Vec<Value> {
    doc["Statement"].as_array().unwrap()
}

fn strings(v: &Value) -> Vec<&str> {
    v.as_array().unwrap().iter().map(|s| s.as_str().unwrap()).collect()
}

/// Every resource of `doc` (ARN patterns), with the statement's Sid.
fn resources(doc: &Value) -> Vec<(&str, &str)> {
    statements(doc)
        .iter()
        .flat_map(|s| {
            let sid = s["Sid"].as_str().unwrap();
            strings(&s["Resource"]).into_iter().map(move |r| (sid, r))
        })
        .collect()
}

/// The plan as drover reads it (`plan --format json` has no ARNs; the YAML is enough here).
fn plan_yaml(plan: &str) -> serde_yaml::Value {
    serde_yaml::from_str(&std::fs::read_to_string(repo_root().join(plan)).unwrap()).unwrap()
}

#[test]
fn example_plans_snapshot() {
    for (plan, name) in
        [("plans/shop-prod.yaml", "main__iam__shop-prod"), ("plans/demo.yaml", "main__iam__demo")]
    {
        let run = drover(&["iam-policy", plan]);
        assert_eq!(run.code, 0, "{}", run.transcript());
        snapshot!(name, run.transcript());
    }
}

#[test]
fn every_resource_is_scoped_to_the_plan_account() {
    for plan in ["plans/shop-prod.yaml", "plans/demo.yaml"] {
        let all = policies(plan);
        let account = plan_yaml(plan)["source"]["account_id"].as_str().unwrap().to_owned();
        for role in ["operator", "backup_role"] {
            let doc = &all[role];
            assert_eq!(doc["Version"], "2012-10-17");
            for s in statements(doc) {
                assert_eq!(s["Effect"], "Allow");
                let actions = strings(&s["Action"]);
                let mut sorted = actions.clone();
                sorted.sort_unstable();
                assert_eq!(
                    actions, sorted,
                    "{plan} {role}: actions of {} are not sorted",
                    s["Sid"]
                );
                assert!(!strings(&s["Resource"]).is_empty(), "{plan} {role}: {}", s["Sid"]);
            }
            for (sid, r) in resources(doc) {
                if r == "*" {
                    assert_eq!(sid, UNSCOPABLE_SID, "{plan} {role}: `*` outside the one statement");
                    assert_eq!(role, "operator");
                } else {
                    assert!(r.starts_with("arn:aws:"), "{plan} {role} {sid}: {r}");
                    assert!(
                        r.contains(&format!(":{account}:")),
                        "{plan} {role} {sid}: {r} is not in account {account}"
                    );
                }
            }
        }
        let unscopable: Vec<_> =
            statements(&all["operator"]).iter().filter(|s| s["Sid"] == UNSCOPABLE_SID).collect();
        assert_eq!(unscopable.len(), 1);
        assert!(
            unscopable[0]["Condition"]["StringEquals"]["aws:RequestedRegion"].is_array(),
            "the `*` statement is held to the plan's regions"
        );
    }
}

#[test]
fn every_table_of_the_plan_appears_in_each_of_its_regions() {
    for plan in ["plans/shop-prod.yaml", "plans/demo.yaml"] {
        let all = policies(plan);
        let yaml = plan_yaml(plan);
        let account = yaml["source"]["account_id"].as_str().unwrap();
        let source = yaml["source"]["region"].as_str().unwrap();
        let all_targets: Vec<&str> = yaml["targets"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|t| t["region"].as_str().unwrap())
            .collect();
        let operator: Vec<&str> = resources(&all["operator"]).into_iter().map(|(_, r)| r).collect();
        let role: Vec<&str> = resources(&all["backup_role"]).into_iter().map(|(_, r)| r).collect();
        for t in yaml["tables"].as_sequence().unwrap() {
            let name = t["name"].as_str().unwrap();
            let src = format!("arn:aws:dynamodb:{source}:{account}:table/{name}");
            assert!(operator.contains(&src.as_str()), "{plan}: operator lacks {src}");
            assert!(role.contains(&src.as_str()), "{plan}: backup role lacks {src}");
            let targets: Vec<&str> = match t["targets"].as_sequence() {
                Some(only) => only.iter().map(|r| r.as_str().unwrap()).collect(),
                None => all_targets.clone(),
            };
            for region in &all_targets {
                let failover = format!("arn:aws:dynamodb:{region}:{account}:table/{name}");
                let drill = format!("{failover}-drill-*");
                let listed = targets.contains(region);
                for arn in [&failover, &drill] {
                    assert_eq!(
                        operator.contains(&arn.as_str()),
                        listed,
                        "{plan}: operator and {arn} (restored there: {listed})"
                    );
                    assert_eq!(role.contains(&arn.as_str()), listed, "{plan}: role and {arn}");
                }
            }
        }
    }
}

#[test]
fn pass_role_is_limited_to_the_plan_role_and_aws_backup() {
    for plan in ["plans/shop-prod.yaml", "plans/demo.yaml"] {
        let all = policies(plan);
        let role_arn = plan_yaml(plan)["iam_role_arn"].as_str().unwrap().to_owned();
        let pass: Vec<&Value> = statements(&all["operator"])
            .iter()
            .filter(|s| strings(&s["Action"]).contains(&"iam:PassRole"))
            .collect();
        assert_eq!(pass.len(), 1, "{plan}");
        assert_eq!(strings(&pass[0]["Action"]), ["iam:PassRole"]);
        assert_eq!(strings(&pass[0]["Resource"]), [role_arn.as_str()]);
        assert_eq!(
            pass[0]["Condition"],
            serde_json::json!({"StringEquals": {"iam:PassedToService": "backup.amazonaws.com"}})
        );
        let trust = &all["backup_role_trust"]["Statement"][0];
        assert_eq!(trust["Principal"], serde_json::json!({"Service": "backup.amazonaws.com"}));
        assert_eq!(trust["Action"], serde_json::json!(["sts:AssumeRole"]));
    }
}

#[test]
fn role_prints_one_pastable_document() {
    let all = policies("plans/shop-prod.yaml");
    for (flag, key) in [
        ("operator", "operator"),
        ("backup-role", "backup_role"),
        ("backup-role-trust", "backup_role_trust"),
    ] {
        let run = drover(&["iam-policy", "plans/shop-prod.yaml", "--role", flag]);
        assert_eq!(run.code, 0, "{}", run.transcript());
        let doc: Value = serde_json::from_str(&run.stdout).unwrap();
        assert_eq!(doc, all[key], "--role {flag}");
        assert_eq!(doc["Version"], "2012-10-17");
    }
    let run = drover(&["iam-policy", "plans/shop-prod.yaml", "--role", "admin"]);
    assert_eq!(run.code, 2, "{}", run.transcript());
}

#[test]
fn documents_too_large_for_a_managed_policy_are_flagged() {
    let run = drover(&["iam-policy", "plans/demo.yaml"]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    assert!(run.stderr.is_empty(), "{}", run.transcript());
    // 12 tables in two targets, each under its own and its drill name: more than 6,144.
    let run = drover(&["iam-policy", "plans/shop-prod.yaml", "--role", "operator"]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    let size = serde_json::from_str::<Value>(&run.stdout)
        .unwrap()
        .to_string()
        .chars()
        .filter(|c| !c.is_whitespace())
        .count();
    assert!(size > 6144, "{size}");
    assert_eq!(run.stderr.lines().count(), 1, "{}", run.transcript());
    assert!(
        run.stderr.contains(&format!("the operator policy is {size} characters")),
        "{}",
        run.transcript()
    );
    let run = drover(&["iam-policy", "plans/shop-prod.yaml", "--role", "backup-role-trust"]);
    assert!(run.stderr.is_empty(), "{}", run.transcript());
}

fn temp_plan(contents: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::Builder::new().suffix(".yaml").tempfile().unwrap();
    f.write_all(contents.as_bytes()).unwrap();
    f.flush().unwrap();
    f
}

/// plans/demo.yaml without `source.account_id` and with the role in `role_account`.
fn demo_unpinned(role_account: &str) -> tempfile::NamedTempFile {
    let demo = std::fs::read_to_string(repo_root().join("plans/demo.yaml")).unwrap();
    let pin = "  account_id: \"123456789012\"\n";
    let role = "iam_role_arn: arn:aws:iam::123456789012:role/drover-backup";
    assert!(demo.contains(pin) && demo.contains(role));
    temp_plan(
        &demo.replace(pin, "").replace(
            role,
            &format!("iam_role_arn: arn:aws:iam::{role_account}:role/drover-backup"),
        ),
    )
}

#[test]
fn the_account_must_be_known() {
    // The ARNs agree: their account is the plan's.
    let agreeing = demo_unpinned("123456789012");
    let path = agreeing.path().to_str().unwrap();
    let run = drover(&["iam-policy", path]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    assert_eq!(serde_json::from_str::<Value>(&run.stdout).unwrap(), policies("plans/demo.yaml"));

    // They disagree: a usage error that names the flag, and nothing on stdout.
    let split = demo_unpinned("210987654321");
    let path = split.path().to_str().unwrap();
    let run = drover(&["iam-policy", path]);
    assert_eq!(run.code, 2, "{}", run.transcript());
    assert!(run.stdout.is_empty(), "{}", run.transcript());
    assert!(run.stderr.contains("--account-id"), "{}", run.transcript());
    assert!(run.stderr.contains("123456789012, 210987654321"), "{}", run.transcript());

    // --account-id settles it.
    let run = drover(&["iam-policy", path, "--account-id", "210987654321"]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    let all: Value = serde_json::from_str(&run.stdout).unwrap();
    for (_, r) in resources(&all["operator"]) {
        assert!(r == "*" || r.contains(":210987654321:") || r.starts_with("arn:aws:kms:"), "{r}");
    }

    // ... but must be an account id, and must not contradict the plan.
    for bad in ["12345", "12345678901x", ""] {
        let run = drover(&["iam-policy", path, "--account-id", bad]);
        assert_eq!(run.code, 2, "--account-id {bad:?}: {}", run.transcript());
        assert!(run.stdout.is_empty());
    }
    let run = drover(&["iam-policy", "plans/demo.yaml", "--account-id", "210987654321"]);
    assert_eq!(run.code, 2, "{}", run.transcript());
    assert!(run.stderr.contains("source.account_id"), "{}", run.transcript());
}

#[test]
fn invalid_plans_exit_1_with_their_diagnostics() {
    let run = drover(&["iam-policy", "tests/plans/invalid/cycle.yaml"]);
    assert_eq!(run.code, 1, "{}", run.transcript());
    assert!(run.stdout.is_empty(), "{}", run.transcript());
    assert!(run.stderr.contains("dependency cycle"), "{}", run.transcript());
    assert!(run.stderr.contains("is not a valid plan"), "{}", run.transcript());

    let run = drover(&["iam-policy", "tests/plans/missing.yaml"]);
    assert_eq!(run.code, 1, "{}", run.transcript());
    assert!(run.stderr.contains("cannot read"), "{}", run.transcript());
}

/// Every (action, resource or principal, condition) the documents grant.
fn grants<'d>(docs: impl IntoIterator<Item = &'d Value>) -> std::collections::BTreeSet<String> {
    let mut out = std::collections::BTreeSet::new();
    for s in docs.into_iter().flat_map(statements) {
        // A trust policy names a principal instead of resources.
        let on = match s.get("Resource") {
            Some(r) => strings(r).into_iter().map(str::to_owned).collect(),
            None => vec![s["Principal"].to_string()],
        };
        for a in s["Action"].as_array().unwrap() {
            for r in &on {
                out.insert(format!("{a} {r} {}", s["Condition"]));
            }
        }
    }
    out
}

#[test]
fn split_prints_managed_size_documents_that_grant_the_same() {
    let whole = policies("plans/shop-prod.yaml");
    let run = drover(&["iam-policy", "plans/shop-prod.yaml", "--split"]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    assert!(run.stderr.is_empty(), "no size warning: {}", run.transcript());
    let split: Value = serde_json::from_str(&run.stdout).unwrap();
    for key in ["operator", "backup_role", "backup_role_trust"] {
        let parts = split[key].as_array().unwrap();
        for part in parts {
            let size = part.to_string().chars().filter(|c| !c.is_whitespace()).count();
            assert!(size <= 6144, "{key}: a part of {size} characters");
            assert_eq!(part["Version"], "2012-10-17");
        }
        assert_eq!(grants(parts), grants([&whole[key]]), "{key}");
        let sids: Vec<_> = parts.iter().flat_map(statements).map(|s| &s["Sid"]).collect();
        let unique: std::collections::BTreeSet<_> = sids.iter().map(|s| s.to_string()).collect();
        assert_eq!(unique.len(), sids.len(), "{key}: {sids:?}");
    }
    // shop-prod's operator and backup-role policies are too large for one managed policy.
    assert!(split["operator"].as_array().unwrap().len() >= 2);
    assert!(split["backup_role"].as_array().unwrap().len() >= 2);
    assert_eq!(split["backup_role_trust"].as_array().unwrap().len(), 1);
    // With --role: the list of that document's parts.
    let run = drover(&["iam-policy", "plans/shop-prod.yaml", "--role", "operator", "--split"]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    assert_eq!(serde_json::from_str::<Value>(&run.stdout).unwrap(), split["operator"]);
}

/// The recovery-account example: a source role and a target in another account.
const DR: &str = "plans/shop-dr-account.yaml";
const PROD: &str = "123456789012";
const RECOVERY: &str = "210987654321";
const OPERATOR: &str = "999999999999";

/// `drover iam-policy` of a plan with more arguments, as JSON (exit 0).
fn printed(plan: &str, more: &[&str]) -> Value {
    let mut args = vec!["iam-policy", plan];
    args.extend_from_slice(more);
    let run = drover(&args);
    assert_eq!(run.code, 0, "{}", run.transcript());
    serde_json::from_str(&run.stdout).unwrap()
}

fn account<'v>(all: &'v Value, id: &str) -> &'v Value {
    let a = &all["accounts"][id];
    assert!(a.is_object(), "no account {id}: {all}");
    a
}

/// Every identity document of a per-account output, with a name: the operator's own, each
/// account's operator policy, role trusts, backup role policies and trusts.
fn identity_documents(all: &Value) -> Vec<(String, &Value)> {
    let mut out = Vec::new();
    if let Some(own) = all.get("operator") {
        out.push(("operator".to_owned(), own));
    }
    for (id, a) in all["accounts"].as_object().unwrap() {
        out.push((format!("{id} operator"), &a["operator"]));
        if let Some(role) = a.get("operator_role") {
            out.push((format!("{id} operator role trust"), &role["trust"]));
        }
        for (arn, role) in a["backup_roles"].as_object().unwrap() {
            out.push((format!("{arn} policy"), &role["policy"]));
            out.push((format!("{arn} trust"), &role["trust"]));
        }
    }
    out
}

#[test]
fn cross_account_plan_snapshot() {
    let run = drover(&["iam-policy", DR, "--operator-account", OPERATOR]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    snapshot!("main__iam__shop-dr-account", run.transcript());
}

#[test]
fn each_account_gets_its_own_work_scoped_to_its_arns() {
    let all = printed(DR, &["--operator-account", OPERATOR]);
    let ids: Vec<&String> = all["accounts"].as_object().unwrap().keys().collect();
    assert_eq!(ids, [PROD, RECOVERY]);
    for id in [PROD, RECOVERY] {
        let operator = &account(&all, id)["operator"];
        assert_eq!(operator["Version"], "2012-10-17");
        for (sid, r) in resources(operator) {
            assert!(
                r == "*" || r.contains(&format!(":{id}:")),
                "account {id}, {sid}: {r} is another account's"
            );
        }
    }
    let sids = |id: &str| -> Vec<String> {
        statements(&account(&all, id)["operator"])
            .iter()
            .map(|s| s["Sid"].as_str().unwrap().to_owned())
            .collect()
    };
    // Backups and copies in production only; the recovery account restores.
    for sid in ["StartBackupsIntoSourceVault", "CopySourceRecoveryPoints", "ReadSourceTables"] {
        assert!(sids(PROD).iter().any(|s| s == sid), "{sid}");
        assert!(!sids(RECOVERY).iter().any(|s| s == sid), "{sid} in the recovery account");
    }
    let restores = |id: &str| -> Vec<String> {
        statements(&account(&all, id)["operator"])
            .iter()
            .find(|s| s["Sid"] == "RestoreFromTargetVaults")
            .map(|s| strings(&s["Resource"]).into_iter().map(str::to_owned).collect())
            .unwrap()
    };
    assert_eq!(restores(PROD), [format!("arn:aws:backup:us-west-2:{PROD}:recovery-point:*")]);
    assert_eq!(
        restores(RECOVERY),
        [format!("arn:aws:backup:eu-west-1:{RECOVERY}:recovery-point:*")]
    );
    // Each account's tables: `sessions` is not restored in the recovery account.
    let recovery = serde_json::to_string(&account(&all, RECOVERY)["operator"]).unwrap();
    assert!(recovery.contains(&format!("eu-west-1:{RECOVERY}:table/orders-drill-*")));
    assert!(!recovery.contains("table/sessions"), "{recovery}");
    // Every statement: an Allow with sorted actions, and a Sid IAM takes.
    for (name, doc) in identity_documents(&all) {
        for s in statements(doc) {
            assert_eq!(s["Effect"], "Allow", "{name}");
            let actions = strings(&s["Action"]);
            let mut sorted = actions.clone();
            sorted.sort_unstable();
            assert_eq!(actions, sorted, "{name}: {}", s["Sid"]);
            assert!(s["Sid"].as_str().unwrap().bytes().all(|b| b.is_ascii_alphanumeric()));
        }
    }
}

#[test]
fn the_operator_assumes_the_roles_the_plan_names_and_they_trust_its_account() {
    let all = printed(DR, &["--operator-account", OPERATOR]);
    let yaml = plan_yaml(DR);
    let source_role = yaml["source"]["role_arn"].as_str().unwrap();
    let target = &yaml["targets"][1];
    let recovery_role = target["role_arn"].as_str().unwrap();
    // The operator's own policy: sts:AssumeRole on exactly those roles.
    assert_eq!(
        all["operator"],
        serde_json::json!({
            "Version": "2012-10-17",
            "Statement": [{
                "Sid": "AssumePlanRoles",
                "Effect": "Allow",
                "Action": ["sts:AssumeRole"],
                "Resource": [source_role, recovery_role]
            }]
        })
    );
    let root = format!("arn:aws:iam::{OPERATOR}:root");
    let prod = &account(&all, PROD)["operator_role"];
    assert_eq!(prod["arn"], source_role);
    assert_eq!(
        prod["trust"]["Statement"],
        serde_json::json!([{
            "Sid": "AssumedByDroverOperator",
            "Effect": "Allow",
            "Principal": {"AWS": root},
            "Action": ["sts:AssumeRole"]
        }])
    );
    assert!(prod.get("max_session_duration").is_none(), "an hour is a role's default");
    let recovery = &account(&all, RECOVERY)["operator_role"];
    assert_eq!(recovery["arn"], recovery_role);
    assert_eq!(
        recovery["trust"]["Statement"][0]["Condition"],
        serde_json::json!({"StringEquals": {"sts:ExternalId": target["external_id"]}})
    );
    assert_eq!(recovery["max_session_duration"], 7200);
    // Without --operator-account: a placeholder IAM refuses, and a warning that says so.
    let run = drover(&["iam-policy", DR]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    let placeholder: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(
        account(&placeholder, RECOVERY)["operator_role"]["trust"]["Statement"][0]["Principal"]["AWS"],
        "arn:aws:iam::OPERATOR_ACCOUNT_ID:root"
    );
    assert!(run.stderr.contains("--operator-account"), "{}", run.transcript());
}

/// shop-dr-account without `source.role_arn`: drover acts in production with the operator's
/// own credentials.
fn dr_without_source_role() -> tempfile::NamedTempFile {
    let text = std::fs::read_to_string(repo_root().join(DR)).unwrap();
    let role = "  role_arn: arn:aws:iam::123456789012:role/drover-prod\n  session_duration: 1h\n";
    assert!(text.contains(role));
    temp_plan(&text.replace(role, ""))
}

#[test]
fn the_operator_account_is_the_one_drover_acts_in_with_its_own_credentials() {
    let plan = dr_without_source_role();
    let path = plan.path().to_str().unwrap();
    let run = drover(&["iam-policy", path]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    // No warning but the size of the production account's operator policy (its point-in-time
    // restores, beside the source and into us-west-2, make it larger than a managed policy).
    assert!(
        run.stderr.lines().all(|l| l.contains("more than a managed policy holds")),
        "{}",
        run.transcript()
    );
    let all: Value = serde_json::from_str(&run.stdout).unwrap();
    assert!(account(&all, PROD).get("operator_role").is_none());
    assert_eq!(
        account(&all, RECOVERY)["operator_role"]["trust"]["Statement"][0]["Principal"]["AWS"],
        format!("arn:aws:iam::{PROD}:root")
    );
    assert_eq!(
        all["operator"]["Statement"][0]["Resource"],
        serde_json::json!([format!("arn:aws:iam::{RECOVERY}:role/drover-recovery")])
    );
    // Another operator account contradicts the plan.
    let run = drover(&["iam-policy", path, "--operator-account", OPERATOR]);
    assert_eq!(run.code, 2, "{}", run.transcript());
    assert!(run.stdout.is_empty());
    assert!(run.stderr.contains(&format!("drover acts in account {PROD}")), "{}", run.transcript());
    for bad in ["12345", "x23456789012"] {
        let run = drover(&["iam-policy", DR, "--operator-account", bad]);
        assert_eq!(run.code, 2, "{}", run.transcript());
    }
}

#[test]
fn backup_roles_work_in_their_own_accounts() {
    let all = printed(DR, &["--operator-account", OPERATOR]);
    let yaml = plan_yaml(DR);
    let backup = yaml["iam_role_arn"].as_str().unwrap();
    let restore = yaml["targets"][1]["iam_role_arn"].as_str().unwrap();
    let roles = |id: &str| -> Vec<String> {
        account(&all, id)["backup_roles"].as_object().unwrap().keys().cloned().collect()
    };
    assert_eq!(roles(PROD), [backup]);
    assert_eq!(roles(RECOVERY), [restore]);
    for (id, arn) in [(PROD, backup), (RECOVERY, restore)] {
        let role = &account(&all, id)["backup_roles"][arn];
        assert_eq!(
            role["trust"]["Statement"][0]["Principal"],
            serde_json::json!({"Service": "backup.amazonaws.com"})
        );
        for (sid, r) in resources(&role["policy"]) {
            // The source's role names one resource of the recovery account: the vault it
            // copies into.
            let vault = format!("arn:aws:backup:eu-west-1:{RECOVERY}:backup-vault:recovery-vault");
            if id == PROD && r == vault {
                assert_eq!(sid, "CopyIntoTargetVaults");
                continue;
            }
            assert!(r.contains(&format!(":{id}:")), "{arn} {sid}: {r}");
        }
    }
    // PassRole: each account passes its own backup role.
    for (id, arn) in [(PROD, backup), (RECOVERY, restore)] {
        let pass: Vec<&Value> = statements(&account(&all, id)["operator"])
            .iter()
            .filter(|s| strings(&s["Action"]).contains(&"iam:PassRole"))
            .collect();
        assert_eq!(pass.len(), 1);
        assert_eq!(strings(&pass[0]["Resource"]), [arn]);
    }
}

#[test]
fn copies_into_the_recovery_account_get_vault_and_key_policies() {
    let all = printed(DR, &["--operator-account", OPERATOR]);
    let yaml = plan_yaml(DR);
    let restore = yaml["targets"][1]["iam_role_arn"].as_str().unwrap();
    let key = yaml["targets"][1]["kms_key_arn"].as_str().unwrap();
    let vault = format!("arn:aws:backup:eu-west-1:{RECOVERY}:backup-vault:recovery-vault");
    let recovery = account(&all, RECOVERY);
    assert_eq!(
        recovery["vault_access_policies"],
        serde_json::json!({vault.clone(): {
            "Version": "2012-10-17",
            "Statement": [{
                "Sid": "CopyFromSourceAccount",
                "Effect": "Allow",
                "Principal": {"AWS": format!("arn:aws:iam::{PROD}:root")},
                "Action": ["backup:CopyIntoBackupVault"],
                "Resource": [vault.clone()]
            }]
        }})
    );
    for doc in [&recovery["vault_key_policies"][&vault], &recovery["key_policies"][key]] {
        let s = &statements(doc)[0];
        assert_eq!(s["Principal"], serde_json::json!({"AWS": restore}));
        assert_eq!(
            s["Condition"],
            serde_json::json!({"StringEquals": {"kms:ViaService": "dynamodb.eu-west-1.amazonaws.com"}})
        );
        assert!(strings(&s["Action"]).contains(&"kms:CreateGrant"));
        assert!(strings(&s["Action"]).contains(&"kms:Decrypt"));
    }
    let prod = account(&all, PROD);
    let source_vault = format!("arn:aws:backup:us-east-1:{PROD}:backup-vault:prod-vault");
    let share = &statements(&prod["vault_key_policies"][&source_vault])[0];
    assert_eq!(
        share["Principal"],
        serde_json::json!({"AWS": format!("arn:aws:iam::{RECOVERY}:root")})
    );
    assert_eq!(
        share["Condition"],
        serde_json::json!({"StringEquals": {"kms:ViaService": "backup.us-east-1.amazonaws.com"}})
    );
    // us-west-2 is in production: no resource policy for its vault or key.
    assert!(prod.get("vault_access_policies").is_none() && prod.get("key_policies").is_none());
}

#[test]
fn role_and_in_account_print_one_document_or_say_which_to_pick() {
    let all = printed(DR, &["--operator-account", OPERATOR]);
    let with = |more: &[&str]| {
        let mut args = vec!["--operator-account", OPERATOR];
        args.extend_from_slice(more);
        printed(DR, &args)
    };
    assert_eq!(with(&["--role", "operator"]), all["operator"]);
    assert_eq!(
        with(&["--role", "operator", "--in-account", RECOVERY]),
        account(&all, RECOVERY)["operator"]
    );
    assert_eq!(
        with(&["--role", "operator-role-trust", "--in-account", PROD]),
        account(&all, PROD)["operator_role"]["trust"]
    );
    let vault = format!("arn:aws:backup:eu-west-1:{RECOVERY}:backup-vault:recovery-vault");
    assert_eq!(
        with(&["--role", "vault-access-policy"]),
        account(&all, RECOVERY)["vault_access_policies"][&vault]
    );
    assert_eq!(with(&["--in-account", RECOVERY]), *account(&all, RECOVERY));
    // Ambiguous or absent: a usage error that says how to choose.
    for (more, says) in [
        (&["--role", "backup-role"][..], "--in-account"),
        (&["--role", "operator-role-trust"][..], "--in-account"),
        (&["--role", "vault-access-policy", "--in-account", PROD][..], "no vault-access-policy"),
        (&["--in-account", OPERATOR][..], "123456789012, 210987654321"),
        (&["--role", "key-policy", "--in-account", OPERATOR][..], "none of the plan's"),
    ] {
        let mut args = vec!["iam-policy", DR];
        args.extend_from_slice(more);
        let run = drover(&args);
        assert_eq!(run.code, 2, "{more:?}: {}", run.transcript());
        assert!(run.stdout.is_empty(), "{more:?}");
        assert!(run.stderr.contains(says), "{more:?}: {}", run.transcript());
    }
    // A plan in one account has none of these.
    let run = drover(&["iam-policy", "plans/demo.yaml", "--role", "vault-access-policy"]);
    assert_eq!(run.code, 2, "{}", run.transcript());
    assert!(run.stderr.contains("one account"), "{}", run.transcript());
    assert_eq!(
        printed("plans/demo.yaml", &["--in-account", "123456789012"]),
        policies("plans/demo.yaml")
    );
    let run = drover(&["iam-policy", "plans/demo.yaml", "--in-account", RECOVERY]);
    assert_eq!(run.code, 2, "{}", run.transcript());
}

#[test]
fn split_cuts_each_identity_policy_of_each_account() {
    let whole = printed(DR, &["--operator-account", OPERATOR]);
    let split = printed(DR, &["--operator-account", OPERATOR, "--split"]);
    let whole_docs = identity_documents(&whole);
    let split_docs = identity_documents(&split);
    assert_eq!(whole_docs.len(), split_docs.len());
    for ((name, doc), (split_name, parts)) in whole_docs.iter().zip(&split_docs) {
        assert_eq!(name, split_name);
        let parts = parts.as_array().unwrap_or_else(|| panic!("{name} is not split: {parts}"));
        for part in parts {
            let size = part.to_string().chars().filter(|c| !c.is_whitespace()).count();
            assert!(size <= 6144, "{name}: a part of {size} characters");
        }
        assert_eq!(grants(parts), grants([*doc]), "{name}");
    }
    // Resource policies are one per vault or key: printed whole.
    for id in [PROD, RECOVERY] {
        for key in ["vault_access_policies", "vault_key_policies", "key_policies"] {
            assert_eq!(account(&split, id).get(key), account(&whole, id).get(key), "{id} {key}");
        }
    }
    let run = drover(&["iam-policy", DR, "--role", "operator", "--in-account", PROD, "--split"]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    let parts: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(parts, account(&split, PROD)["operator"]);
}

#[test]
fn state_statements_go_to_the_operators_own_policy() {
    let all = printed(DR, &["--operator-account", OPERATOR, "--state", "s3://drover-state/shop"]);
    let sids: Vec<&str> =
        statements(&all["operator"]).iter().map(|s| s["Sid"].as_str().unwrap()).collect();
    assert_eq!(
        sids,
        ["AssumePlanRoles", "ReadAndWriteRunState", "ListRunState", "ReadStateBucketSettings"]
    );
    for id in [PROD, RECOVERY] {
        assert!(!account(&all, id)["operator"].to_string().contains("s3:"), "{id}");
    }
}

/// plans/demo.yaml with a `notify:` of both kinds.
fn demo_notifying() -> tempfile::NamedTempFile {
    let demo = std::fs::read_to_string(repo_root().join("plans/demo.yaml")).unwrap();
    temp_plan(&format!(
        "{demo}\nnotify:\n  eventbridge: {{region: us-east-1, event_bus: ops}}\n  sns: \
         {{topic_arn: \"arn:aws:sns:us-east-1:123456789012:dr-alerts\"}}\n"
    ))
}

fn statement<'d>(doc: &'d Value, sid: &str) -> Option<&'d Value> {
    statements(doc).iter().find(|s| s["Sid"] == sid)
}

const NOTIFY_ACTIONS: [&str; 3] = ["events:PutEvents", "sns:Publish", "cloudwatch:PutMetricData"];

#[test]
fn events_and_metrics_are_granted_only_when_the_plan_or_the_flags_use_them() {
    // The example plans send nothing: none of the actions.
    for args in [
        &["plans/shop-prod.yaml"][..],
        &["plans/demo.yaml"],
        &["plans/shop-dr-account.yaml", "--operator-account", OPERATOR],
    ] {
        let plan = args[0];
        let run = drover(&[&["iam-policy"][..], args].concat());
        assert_eq!(run.code, 0, "{}", run.transcript());
        for action in NOTIFY_ACTIONS {
            assert!(!run.stdout.contains(action), "{plan}: {action}");
        }
    }
    // The plan's `notify:`: the bus named (in its region and the plan's account) and the topic.
    let plan = demo_notifying();
    let path = plan.path().to_str().unwrap();
    let all = printed(path, &[]);
    let op = &all["operator"];
    assert_eq!(
        statement(op, "PutDroverEvents").unwrap()["Resource"],
        serde_json::json!(["arn:aws:events:us-east-1:123456789012:event-bus/ops"])
    );
    assert_eq!(strings(&statement(op, "PutDroverEvents").unwrap()["Action"]), ["events:PutEvents"]);
    assert_eq!(
        statement(op, "PublishDroverEvents").unwrap()["Resource"],
        serde_json::json!(["arn:aws:sns:us-east-1:123456789012:dr-alerts"])
    );
    assert!(statement(op, "PutDroverMetrics").is_none(), "metrics without --publish-metrics");
    // The flags add to the plan's: another bus and topic, and metrics with the namespace
    // condition, in the target's region.
    let all = printed(
        path,
        &[
            "--event-bus",
            "arn:aws:events:eu-west-1:123456789012:event-bus/central",
            "--sns-topic",
            "arn:aws:sns:us-west-2:123456789012:oncall",
            "--publish-metrics",
        ],
    );
    let op = &all["operator"];
    assert_eq!(
        strings(&statement(op, "PutDroverEvents").unwrap()["Resource"]),
        [
            "arn:aws:events:eu-west-1:123456789012:event-bus/central",
            "arn:aws:events:us-east-1:123456789012:event-bus/ops"
        ]
    );
    assert_eq!(strings(&statement(op, "PublishDroverEvents").unwrap()["Resource"]).len(), 2);
    assert_eq!(
        statement(op, "PutDroverMetrics").unwrap(),
        &serde_json::json!({
            "Sid": "PutDroverMetrics",
            "Effect": "Allow",
            "Action": ["cloudwatch:PutMetricData"],
            "Resource": ["*"],
            "Condition": {"StringEquals": {
                "aws:RequestedRegion": "us-west-2",
                "cloudwatch:namespace": "Drover",
            }},
        })
    );
    // Flags alone, on a plan without `notify:`.
    let all = printed("plans/demo.yaml", &["--publish-metrics"]);
    assert!(statement(&all["operator"], "PutDroverMetrics").is_some());
    assert!(statement(&all["operator"], "PutDroverEvents").is_none());
}

#[test]
fn events_and_metrics_are_granted_in_the_account_that_sends_them() {
    let all = printed(
        DR,
        &[
            "--operator-account",
            OPERATOR,
            "--event-bus",
            &format!("arn:aws:events:eu-west-1:{RECOVERY}:event-bus/dr"),
            "--sns-topic",
            "arn:aws:sns:us-east-1:123456789012:dr-alerts",
            "--publish-metrics",
        ],
    );
    let source = &account(&all, "123456789012")["operator"];
    let recovery = &account(&all, RECOVERY)["operator"];
    assert!(statement(source, "PutDroverEvents").is_none());
    assert_eq!(
        strings(&statement(recovery, "PutDroverEvents").unwrap()["Resource"]),
        [format!("arn:aws:events:eu-west-1:{RECOVERY}:event-bus/dr")]
    );
    assert!(statement(source, "PublishDroverEvents").is_some());
    assert!(statement(recovery, "PublishDroverEvents").is_none());
    // Metrics in each target's region, by the account it is in.
    let regions = |doc: &Value| {
        statement(doc, "PutDroverMetrics").unwrap()["Condition"]["StringEquals"]
            ["aws:RequestedRegion"]
            .clone()
    };
    assert_eq!(regions(source), "us-west-2");
    assert_eq!(regions(recovery), "eu-west-1");
    // The operator's own policy only assumes roles.
    if let Some(own) = all.get("operator") {
        for action in NOTIFY_ACTIONS {
            assert!(!own.to_string().contains(action), "{action} in {own}");
        }
    }
}
