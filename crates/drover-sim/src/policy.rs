//! Resource policies, as far as the simulator needs them: whether a backup vault's access policy
//! lets a role of another account copy into it (`backup:CopyIntoBackupVault`), the policy such
//! a helper writes, and the key policy KMS gives a key it makes.
//!
//! Evaluated as IAM evaluates a resource policy, and as the emulator does
//! (`tests/emulator/cross_account.py`, `allows`): an explicit `Deny` that applies wins, else an
//! `Allow` that applies lets the caller in, else it is denied. A statement's `Action` (a string
//! or a list; `*` and `?` wildcards, case-insensitive) must name the action and its `Principal`
//! the caller: `*`, or under `AWS` `*`, the account's id, its root
//! (`arn:aws:iam::ACCOUNT:root`) or the caller's own role ARN. Its `Condition` may use
//! `StringEquals` and `StringLike` on the keys the caller gives (`aws:PrincipalOrgID`,
//! `aws:PrincipalAccount`). What is not modelled (`NotAction`, `NotPrincipal`, other operators
//! or keys) is read strictly: such an `Allow` does not apply, such a `Deny` does. `Resource` is
//! not checked (a vault's policy is about that vault).

use serde_json::{Map, Value, json};

/// The action a copy into another account's vault needs on that vault.
pub(crate) const COPY_INTO_VAULT: &str = "backup:CopyIntoBackupVault";

/// Who asks: the principals that name the caller (its account id, the account's root, its
/// role) and the condition keys' values (lower-case names; `None`: the key has no value, as
/// `aws:PrincipalOrgID` outside an organization).
pub(crate) struct Caller<'a> {
    pub(crate) principals: Vec<String>,
    pub(crate) context: Vec<(&'a str, Option<String>)>,
}

impl Caller<'_> {
    /// `role` of `account`, in the organization `org_id` (if any).
    pub(crate) fn role(account: &str, role: &str, org_id: Option<&str>) -> Caller<'static> {
        let mut principals = vec![account.to_owned(), format!("arn:aws:iam::{account}:root")];
        if !role.is_empty() {
            principals.push(role.to_owned());
        }
        Caller {
            principals,
            context: vec![
                ("aws:principalorgid", org_id.map(str::to_owned)),
                ("aws:principalaccount", Some(account.to_owned())),
            ],
        }
    }
}

/// Whether `policy` (JSON) lets `caller` do `action`. A policy that is not a JSON policy
/// document lets no one in.
pub(crate) fn allows(policy: &str, action: &str, caller: &Caller<'_>) -> bool {
    let Ok(doc) = serde_json::from_str::<Value>(policy) else { return false };
    let statements: Vec<&Value> = match doc.get("Statement") {
        Some(Value::Array(all)) => all.iter().collect(),
        Some(one @ Value::Object(_)) => vec![one],
        _ => Vec::new(),
    };
    let mut allowed = false;
    for s in statements {
        // Each: `Some(true)`, `Some(false)`, or `None` when not evaluated.
        let action_ok = s.get("Action").map(|a| strings(a).iter().any(|p| glob(p, action)));
        let principal_ok = s.get("Principal").map(|p| names(p, &caller.principals));
        if action_ok == Some(false) || principal_ok == Some(false) {
            continue;
        }
        let held = s.get("Condition").map_or(Some(true), |c| holds(c, &caller.context));
        match s.get("Effect").and_then(Value::as_str) {
            Some("Deny") if held != Some(false) => return false,
            Some("Allow") if action_ok == Some(true) && principal_ok == Some(true) => {
                allowed |= held == Some(true);
            }
            _ => {}
        }
    }
    allowed
}

/// Strings of a string-or-list policy element.
fn strings(v: &Value) -> Vec<&str> {
    match v {
        Value::String(s) => vec![s.as_str()],
        Value::Array(all) => all.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

/// Whether a `Principal` names the caller.
fn names(principal: &Value, principals: &[String]) -> bool {
    match principal {
        Value::String(s) => s == "*",
        Value::Object(p) => p
            .get("AWS")
            .map(strings)
            .unwrap_or_default()
            .into_iter()
            .any(|v| v == "*" || principals.iter().any(|p| p == v)),
        _ => false,
    }
}

/// Whether a `Condition` holds: `Some(true)` or `Some(false)`, `None` when it uses an operator
/// or a key that is not modelled.
fn holds(condition: &Value, context: &[(&str, Option<String>)]) -> Option<bool> {
    let Value::Object(ops) = condition else { return None };
    let mut held = true;
    for (op, block) in ops {
        let like = match op.as_str() {
            "StringEquals" => false,
            "StringLike" => true,
            _ => return None,
        };
        let Value::Object(block): &Value = block else { return None };
        let block: &Map<String, Value> = block;
        for (key, wanted) in block {
            let (_, have) = context.iter().find(|(k, _)| k.eq_ignore_ascii_case(key))?;
            let ok = have.as_deref().is_some_and(|have| {
                strings(wanted)
                    .into_iter()
                    .any(|w| if like { glob_exact(w, have) } else { w == have })
            });
            held &= ok;
        }
    }
    Some(held)
}

/// Whether `text` matches `pattern` (`*`: any run, `?`: any one character), ignoring ASCII
/// case, as IAM matches action names.
fn glob(pattern: &str, text: &str) -> bool {
    glob_exact(&pattern.to_ascii_lowercase(), &text.to_ascii_lowercase())
}

/// [`glob`], case-sensitive (`StringLike`).
fn glob_exact(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    // Greedy, backtracking only to the last `*`.
    let (mut i, mut j) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while j < t.len() {
        if i < p.len() && (p[i] == '?' || p[i] == t[j]) {
            i += 1;
            j += 1;
        } else if i < p.len() && p[i] == '*' {
            star = Some((i, j));
            i += 1;
        } else if let Some((si, sj)) = star {
            i = si + 1;
            j = sj + 1;
            star = Some((si, sj + 1));
        } else {
            return false;
        }
    }
    p[i..].iter().all(|c| *c == '*')
}

/// A vault access policy that lets each of `accounts` (their root: any of their principals
/// allowed by their own IAM) copy into the vault.
pub(crate) fn copy_from(accounts: &[&str]) -> String {
    let principals: Vec<String> =
        accounts.iter().map(|a| format!("arn:aws:iam::{a}:root")).collect();
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "AllowCopyIntoVault",
            "Effect": "Allow",
            "Principal": {"AWS": principals},
            "Action": COPY_INTO_VAULT,
            "Resource": "*",
        }],
    })
    .to_string()
}

/// A key policy for a key of `account` shared with `with` (other accounts): KMS's default
/// statement, and one letting those accounts use the key for a copy (`kms:Decrypt`,
/// `kms:DescribeKey`, `kms:CreateGrant`, what AWS Backup needs of a source vault's key).
pub(crate) fn shared_key(account: &str, with: &[&str]) -> String {
    let mut policy = key_policy(account, false);
    let principals: Vec<String> = with.iter().map(|a| format!("arn:aws:iam::{a}:root")).collect();
    if let Some(Value::Array(statements)) = policy.get_mut("Statement") {
        statements.push(json!({
            "Sid": "Allow the recovery accounts to use the key for copies",
            "Effect": "Allow",
            "Principal": {"AWS": principals},
            "Action": ["kms:Decrypt", "kms:DescribeKey", "kms:CreateGrant"],
            "Resource": "*",
        }));
    }
    policy.to_string()
}

/// The key policy KMS gives a key of `account` made without one: the account's root may do
/// everything (`kms:*`), so that the account's IAM policies decide. An AWS managed key's is
/// AWS's: the account's principals may use it only through the service.
pub(crate) fn default_key_policy(account: &str, aws_managed: bool) -> String {
    key_policy(account, aws_managed).to_string()
}

fn key_policy(account: &str, aws_managed: bool) -> Value {
    let root = format!("arn:aws:iam::{account}:root");
    if aws_managed {
        return json!({
            "Version": "2012-10-17",
            "Id": "auto-backup-1",
            "Statement": [
                {
                    "Sid": "Allow access through AWS Backup for all principals in the account that are authorized to use AWS Backup",
                    "Effect": "Allow",
                    "Principal": {"AWS": "*"},
                    "Action": ["kms:CreateGrant", "kms:Decrypt", "kms:GenerateDataKey*"],
                    "Resource": "*",
                    "Condition": {
                        "StringEquals": {"kms:CallerAccount": account},
                        "StringLike": {"kms:ViaService": "backup.*.amazonaws.com"},
                    },
                },
                {
                    "Sid": "Allow direct access to key metadata to the account",
                    "Effect": "Allow",
                    "Principal": {"AWS": root},
                    "Action": ["kms:Describe*", "kms:Get*", "kms:List*", "kms:RevokeGrant"],
                    "Resource": "*",
                },
            ],
        });
    }
    json!({
        "Version": "2012-10-17",
        "Id": "key-default-1",
        "Statement": [{
            "Sid": "Enable IAM User Permissions",
            "Effect": "Allow",
            "Principal": {"AWS": root},
            "Action": "kms:*",
            "Resource": "*",
        }],
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const SRC: &str = "111111111111";
    const ROLE: &str = "arn:aws:iam::111111111111:role/drover-backup";

    fn policy(statements: Value) -> String {
        json!({"Version": "2012-10-17", "Statement": statements}).to_string()
    }

    fn allow(principal: Value, action: Value) -> Value {
        json!({"Effect": "Allow", "Principal": principal, "Action": action, "Resource": "*"})
    }

    fn caller() -> Caller<'static> {
        Caller::role(SRC, ROLE, Some("o-abc"))
    }

    #[test]
    fn principals_that_name_the_account_let_it_in() {
        for principal in [
            json!("*"),
            json!({"AWS": "*"}),
            json!({"AWS": SRC}),
            json!({"AWS": "arn:aws:iam::111111111111:root"}),
            json!({"AWS": ["arn:aws:iam::999999999999:root", ROLE]}),
        ] {
            let p = policy(json!([allow(principal.clone(), json!(COPY_INTO_VAULT))]));
            assert!(allows(&p, COPY_INTO_VAULT, &caller()), "{principal}");
        }
        assert!(allows(&copy_from(&[SRC]), COPY_INTO_VAULT, &caller()));
        // A one-statement policy may give it as an object.
        let single = json!({"Statement": allow(json!("*"), json!(COPY_INTO_VAULT))}).to_string();
        assert!(allows(&single, COPY_INTO_VAULT, &caller()));
    }

    #[test]
    fn other_accounts_other_roles_and_other_actions_are_denied() {
        let other = policy(json!([allow(json!({"AWS": "222222222222"}), json!("backup:*"))]));
        assert!(!allows(&other, COPY_INTO_VAULT, &caller()));
        let other_role = policy(json!([allow(
            json!({"AWS": "arn:aws:iam::111111111111:role/someone-else"}),
            json!(COPY_INTO_VAULT)
        )]));
        assert!(!allows(&other_role, COPY_INTO_VAULT, &caller()));
        let service =
            policy(json!([allow(json!({"Service": "backup.amazonaws.com"}), json!("*"))]));
        assert!(!allows(&service, COPY_INTO_VAULT, &caller()));
        let action = policy(json!([allow(json!("*"), json!("backup:StartCopyJob"))]));
        assert!(!allows(&action, COPY_INTO_VAULT, &caller()));
        assert!(!allows("not json", COPY_INTO_VAULT, &caller()));
        assert!(!allows(&policy(json!([])), COPY_INTO_VAULT, &caller()));
    }

    #[test]
    fn wildcards_case_and_an_explicit_deny() {
        for action in ["*", "backup:*", "Backup:copyinto*", "backup:CopyIntoBackupVaul?"] {
            let p = policy(json!([allow(json!("*"), json!([action]))]));
            assert!(allows(&p, COPY_INTO_VAULT, &caller()), "{action}");
        }
        assert!(!glob("backup:Copy*Job", COPY_INTO_VAULT));
        let denied = policy(json!([
            allow(json!("*"), json!("backup:*")),
            {"Effect": "Deny", "Principal": {"AWS": SRC}, "Action": COPY_INTO_VAULT, "Resource": "*"},
        ]));
        assert!(!allows(&denied, COPY_INTO_VAULT, &caller()));
    }

    #[test]
    fn conditions_on_the_organization_and_account_are_evaluated_the_rest_strictly() {
        let when = |condition: Value, effect: &str| {
            policy(json!([
                allow(json!("*"), json!("backup:*")),
                {"Effect": effect, "Principal": "*", "Action": COPY_INTO_VAULT, "Resource": "*",
                 "Condition": condition},
            ]))
        };
        let only = |condition: Value| {
            policy(json!([{"Effect": "Allow", "Principal": "*", "Action": COPY_INTO_VAULT,
                           "Resource": "*", "Condition": condition}]))
        };
        let org = json!({"StringEquals": {"aws:PrincipalOrgID": "o-abc"}});
        assert!(allows(&only(org.clone()), COPY_INTO_VAULT, &caller()));
        let outside = Caller::role(SRC, ROLE, None);
        assert!(!allows(&only(org), COPY_INTO_VAULT, &outside));
        let like = json!({"StringLike": {"aws:principalaccount": "1111*"}});
        assert!(allows(&only(like), COPY_INTO_VAULT, &caller()));
        let unknown = json!({"Bool": {"aws:SecureTransport": "true"}});
        assert!(
            !allows(&only(unknown.clone()), COPY_INTO_VAULT, &caller()),
            "an Allow not evaluated"
        );
        assert!(
            !allows(&when(unknown, "Deny"), COPY_INTO_VAULT, &caller()),
            "a Deny not evaluated"
        );
        let other = json!({"StringEquals": {"aws:PrincipalAccount": "222222222222"}});
        assert!(
            allows(&when(other, "Deny"), COPY_INTO_VAULT, &caller()),
            "a Deny that does not hold"
        );
        let not_action = policy(json!([
            allow(json!("*"), json!("backup:*")),
            {"Effect": "Deny", "Principal": "*", "NotAction": "backup:Describe*", "Resource": "*"},
        ]));
        assert!(!allows(&not_action, COPY_INTO_VAULT, &caller()));
    }

    #[test]
    fn the_default_key_policy_lets_the_account_root_do_everything() {
        let p: Value = serde_json::from_str(&default_key_policy(SRC, false)).unwrap();
        let s = &p["Statement"][0];
        assert_eq!(s["Principal"]["AWS"], "arn:aws:iam::111111111111:root");
        assert_eq!(s["Action"], "kms:*");
        let managed: Value = serde_json::from_str(&default_key_policy(SRC, true)).unwrap();
        assert_eq!(managed["Statement"][0]["Condition"]["StringEquals"]["kms:CallerAccount"], SRC);
    }
}
