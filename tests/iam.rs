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
