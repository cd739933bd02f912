//! Resource policies, as far as the simulator needs them: whether a backup vault's access policy
//! lets a role of another account copy into it (`backup:CopyIntoBackupVault`), the policy such
//! a helper writes, and the key policy KMS gives a key it makes.
//!
//! Policies are evaluated by the engine's `resource_policy` (as IAM evaluates a resource policy,
//! and as the emulator does, `tests/emulator/cross_account.py`), which preflight uses too, so
//! that what preflight predicts is what the simulator does.

use serde_json::{Value, json};

pub(crate) use drover_engine::resource_policy::{COPY_INTO_VAULT, Caller, allows};

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

    #[test]
    fn the_policies_the_set_up_writes_let_in_whom_they_name() {
        let caller = Caller::role(SRC, ROLE, Some("o-abc"));
        assert!(allows(&copy_from(&[SRC]), COPY_INTO_VAULT, &caller));
        assert!(!allows(&copy_from(&["222222222222"]), COPY_INTO_VAULT, &caller));
        let shared = shared_key("222222222222", &[SRC]);
        assert!(allows(&shared, "kms:Decrypt", &caller));
        assert!(!allows(&shared, "kms:ScheduleKeyDeletion", &caller));
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
