//! Preflight of a plan's accounts: that drover can act in each (the role it assumes there),
//! and, for copies into another account, what AWS Backup needs before it lets one in — the
//! destination vault's access policy, customer-managed keys shared as the copy and the
//! restore need them, and the Organization's cross-account backup setting. A plan with one
//! account and no role is not checked here (nothing changed for it).
//!
//! A failover acts only in target accounts (the source account may be compromised or gone),
//! so it never checks the source account.

use std::collections::BTreeSet;

use drover_plan::{Mode, Plan, Target, arn_account};

use super::{Finding, Status, fail, pass, patient};
use crate::ports::Ports;
use crate::resource_policy::{COPY_INTO_VAULT, Caller, allows};

/// The checks of every account a `mode` run acts in, and the accounts drover cannot act in
/// (their other checks would only repeat that).
pub(super) async fn accounts(
    plan: &Plan,
    mode: Mode,
    ports: &Ports,
) -> (Vec<Finding>, BTreeSet<String>) {
    let mut out = Vec::new();
    let mut failed = BTreeSet::new();
    if !plan.spans_accounts() {
        return (out, failed);
    }
    let mut seen = BTreeSet::new();
    let regions = plan
        .regions_and_accounts()
        .filter(|(region, _)| mode != Mode::Failover || **region != plan.source.region);
    for (region, account) in regions {
        if !seen.insert(account.to_owned()) {
            continue;
        }
        let finding = identity(plan, ports, region.as_str(), account).await;
        if finding.status == Status::Fail {
            failed.insert(account.to_owned());
        }
        out.push(finding);
    }
    if mode != Mode::Failover && !failed.contains(plan.source_account()) {
        let crossing: Vec<&Target> = plan
            .targets
            .iter()
            .filter(|t| plan.crosses_accounts(t) && !failed.contains(plan.target_account(t)))
            .collect();
        if !crossing.is_empty() {
            out.push(cross_account_setting(plan, ports).await);
        }
        for target in crossing {
            out.push(vault_policy(plan, ports, target).await);
            out.push(destination_vault_key(plan, ports, target).await);
            out.extend(source_vault_key(plan, ports, target).await);
        }
    }
    for target in &plan.targets {
        if !failed.contains(plan.target_account(target)) {
            out.extend(restore_key_policy(plan, ports, target).await);
        }
    }
    (out, failed)
}

/// The identity check of a point-in-time run, which acts in the source's account only (it
/// cannot restore across accounts): none for a plan in one account.
pub(super) async fn identities(plan: &Plan, ports: &Ports) -> Vec<Finding> {
    if !plan.spans_accounts() {
        return Vec::new();
    }
    vec![identity(plan, ports, plan.source.region.as_str(), plan.source_account()).await]
}

/// The role drover assumes in `account` is assumable, and acts in that account.
async fn identity(plan: &Plan, ports: &Ports, region: &str, account: &str) -> Finding {
    let role = plan.role_in(account);
    let subject = match role {
        Some(role) => format!("account {account} (role {})", role.role_arn),
        None => format!("account {account}"),
    };
    match patient(ports, || ports.identity.caller_identity(region)).await {
        Ok(id) if id.account == account => {
            pass("account", subject, format!("drover acts as {}", id.arn))
        }
        Ok(id) => fail(
            "account",
            subject,
            format!("the credentials act in account {}, not {account}", id.account),
            match role {
                Some(_) => format!("name a role of account {account} in role_arn"),
                None => format!(
                    "name the role drover assumes in account {account} (role_arn), or run with \
                     credentials of that account (--profile)"
                ),
            },
        ),
        Err(e) => fail(
            "account",
            subject,
            e.message.clone(),
            match role {
                Some(role) => {
                    let external = role
                        .external_id
                        .as_ref()
                        .map(|id| format!(" with the condition sts:ExternalId = {id}"))
                        .unwrap_or_default();
                    format!(
                        "let the operator assume {}: the role's trust policy must allow \
                         sts:AssumeRole to the operator's account{external}, and the operator's \
                         own policy must allow sts:AssumeRole on the role (`drover iam-policy \
                         PLAN` prints both)",
                        role.role_arn
                    )
                }
                None => format!("check the credentials drover runs with in account {account}"),
            },
        ),
    }
}

/// The Organization lets its accounts copy backups to each other (read from the source
/// account; only the management account can change it).
async fn cross_account_setting(plan: &Plan, ports: &Ports) -> Finding {
    let src = plan.source.region.as_str();
    let subject = format!("organization of account {}", plan.source_account());
    match patient(ports, || ports.backup.cross_account_backup(src)).await {
        Ok(true) => pass("cross-account-backup", subject, "cross-account backup is enabled"),
        Ok(false) => fail(
            "cross-account-backup",
            subject,
            "cross-account backup is off: AWS Backup refuses copies into another account",
            "in the Organization's management account: aws backup update-global-settings \
             --global-settings isCrossAccountBackupEnabled=true",
        ),
        Err(e) => Finding {
            check: "cross-account-backup",
            subject,
            status: Status::Warn,
            detail: format!("drover cannot read the setting ({e})"),
            fix: Some(
                "check by hand, in the Organization's management account, that `aws backup \
                 describe-global-settings` shows isCrossAccountBackupEnabled=true, and that \
                 both accounts are members of the Organization"
                    .to_owned(),
            ),
        },
    }
}

/// The statement a vault access policy needs so that `source` may copy into it.
fn copy_statement(source: &str) -> String {
    format!(
        "{{\"Version\":\"2012-10-17\",\"Statement\":[{{\"Effect\":\"Allow\",\"Principal\":\
         {{\"AWS\":\"arn:aws:iam::{source}:root\"}},\"Action\":\"{COPY_INTO_VAULT}\",\
         \"Resource\":\"*\"}}]}}"
    )
}

/// The destination vault's access policy lets the source account copy into it.
async fn vault_policy(plan: &Plan, ports: &Ports, target: &Target) -> Finding {
    let r = target.region.as_str();
    let vault = &target.backup_vault;
    let source = plan.source_account();
    let subject = format!("vault {vault} in {r} (account {})", plan.target_account(target));
    let fix = format!(
        "aws backup put-backup-vault-access-policy --region {r} --backup-vault-name {vault} \
         --policy '{}' (in account {}; merge it into the vault's policy if it has one)",
        copy_statement(source),
        plan.target_account(target)
    );
    match patient(ports, || ports.backup.vault_access_policy(r, vault)).await {
        Ok(Some(policy))
            if allows(
                &policy,
                COPY_INTO_VAULT,
                &Caller::role(source, &plan.iam_role_arn, None),
            ) =>
        {
            pass("vault-policy", subject, format!("allows {COPY_INTO_VAULT} from account {source}"))
        }
        Ok(Some(policy)) if policy.contains("aws:PrincipalOrgID") => Finding {
            check: "vault-policy",
            subject,
            status: Status::Warn,
            detail: format!(
                "allows {COPY_INTO_VAULT} by Organization, which drover cannot check from here"
            ),
            fix: Some(format!(
                "make sure account {source} is in the Organization the policy names"
            )),
        },
        Ok(Some(_)) => fail(
            "vault-policy",
            subject,
            format!(
                "the vault's access policy does not allow {COPY_INTO_VAULT} from account \
                 {source}: AWS Backup refuses the copies"
            ),
            fix,
        ),
        Ok(None) => fail(
            "vault-policy",
            subject,
            format!(
                "the vault has no access policy: AWS Backup refuses copies from account {source}"
            ),
            fix,
        ),
        Err(e) => fail(
            "vault-policy",
            subject,
            e.to_string(),
            "create the vault, or allow backup:GetBackupVaultAccessPolicy on it to drover's role \
             in that account",
        ),
    }
}

/// The key of a vault that takes part in a copy across accounts: customer-managed (AWS
/// managed keys cannot be shared with another account) and in the vault's account.
async fn vault_key(
    ports: &Ports,
    region: &str,
    vault: &str,
    account: &str,
    check: &'static str,
) -> Result<(String, Finding), Finding> {
    let subject = format!("key of vault {vault} in {region}");
    let info =
        patient(ports, || ports.backup.describe_vault(region, vault)).await.map_err(|e| {
            fail(
                check,
                subject.clone(),
                e.to_string(),
                "create the vault, or fix its name in the plan",
            )
        })?;
    let Some(key) = info.encryption_key_arn else {
        return Err(fail(
            check,
            subject,
            "the vault names no KMS key",
            format!(
                "copy through a vault encrypted with a customer-managed key of account {account}"
            ),
        ));
    };
    let fix = format!(
        "use a vault encrypted with a customer-managed key of account {account} (aws backup \
         create-backup-vault --region {region} --backup-vault-name NAME --encryption-key-arn \
         KEY_ARN)"
    );
    let k = patient(ports, || ports.keys.describe_key(region, &key))
        .await
        .map_err(|e| fail(check, subject.clone(), e.to_string(), "allow kms:DescribeKey on it"))?;
    if k.aws_managed {
        return Err(fail(
            check,
            subject,
            format!(
                "{key} is an AWS managed key, which cannot be shared with another account: \
                 copies across accounts fail"
            ),
            fix,
        ));
    }
    if arn_account(&k.arn) != account {
        return Err(fail(
            check,
            subject,
            format!("{} is a key of account {}, not of {account}", k.arn, arn_account(&k.arn)),
            fix,
        ));
    }
    if k.state != "Enabled" {
        return Err(fail(
            check,
            subject,
            format!("{} is {}", k.arn, k.state),
            "enable the key (aws kms enable-key), or cancel its deletion",
        ));
    }
    Ok((k.arn.clone(), pass(check, subject, format!("{} is customer-managed and Enabled", k.arn))))
}

/// The destination vault's key.
async fn destination_vault_key(plan: &Plan, ports: &Ports, target: &Target) -> Finding {
    let account = plan.target_account(target);
    match vault_key(ports, target.region.as_str(), &target.backup_vault, account, "vault-key").await
    {
        Ok((_, finding)) | Err(finding) => finding,
    }
}

/// The source vault's key: customer-managed, and shared with the target's account (AWS's
/// guidance for cross-account copies: the source key's policy must let the destination
/// account use it).
async fn source_vault_key(plan: &Plan, ports: &Ports, target: &Target) -> Vec<Finding> {
    let src = plan.source.region.as_str();
    let vault = &plan.source.backup_vault;
    let (key, finding) =
        match vault_key(ports, src, vault, plan.source_account(), "source-vault-key").await {
            Ok(found) => found,
            Err(finding) => return vec![finding],
        };
    let destination = plan.target_account(target);
    let caller = Caller {
        principals: vec![destination.to_owned(), format!("arn:aws:iam::{destination}:root")],
        context: vec![
            ("aws:principalaccount", Some(destination.to_owned())),
            ("kms:calleraccount", Some(destination.to_owned())),
            ("kms:viaservice", Some(format!("backup.{src}.amazonaws.com"))),
        ],
    };
    vec![finding, key_policy(ports, src, &key, &caller, &COPY_KEY_ACTIONS, destination).await]
}

/// What a copy needs of the source vault's key from the destination account.
const COPY_KEY_ACTIONS: [&str; 3] = ["kms:Decrypt", "kms:DescribeKey", "kms:CreateGrant"];

/// What a restore needs of the target's key: DynamoDB encrypts the new table with it, through
/// a grant it creates for the restore role.
const RESTORE_KEY_ACTIONS: [&str; 5] =
    ["kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey", "kms:DescribeKey", "kms:CreateGrant"];

/// The target's key lets the restore role use it through DynamoDB.
async fn restore_key_policy(plan: &Plan, ports: &Ports, target: &Target) -> Option<Finding> {
    let r = target.region.as_str();
    let account = plan.target_account(target);
    let role = plan.restore_role(target);
    let caller = Caller {
        principals: vec![
            account.to_owned(),
            format!("arn:aws:iam::{account}:root"),
            role.to_owned(),
        ],
        context: vec![
            ("aws:principalaccount", Some(account.to_owned())),
            ("kms:calleraccount", Some(account.to_owned())),
            ("kms:viaservice", Some(format!("dynamodb.{r}.amazonaws.com"))),
        ],
    };
    Some(key_policy(ports, r, &target.kms_key_arn, &caller, &RESTORE_KEY_ACTIONS, role).await)
}

/// `key`'s policy lets `caller` (named `who` in messages) do every one of `actions`.
async fn key_policy(
    ports: &Ports,
    region: &str,
    key: &str,
    caller: &Caller<'_>,
    actions: &[&str],
    who: &str,
) -> Finding {
    let subject = format!("policy of key {key}");
    let policy = match patient(ports, || ports.keys.key_policy(region, key)).await {
        Ok(policy) => policy,
        Err(e) => {
            return fail("key-policy", subject, e.to_string(), "allow kms:GetKeyPolicy on it");
        }
    };
    let missing: Vec<&str> =
        actions.iter().copied().filter(|a| !allows(&policy, a, caller)).collect();
    if missing.is_empty() {
        return pass("key-policy", subject, format!("lets {who} use the key"));
    }
    let principal =
        if who.starts_with("arn:") { who.to_owned() } else { format!("arn:aws:iam::{who}:root") };
    fail(
        "key-policy",
        subject,
        format!("does not let {who} {}", missing.join(", ")),
        format!(
            "add to the key policy: {{\"Effect\":\"Allow\",\"Principal\":{{\"AWS\":\"{principal}\"}},\
             \"Action\":[{}],\"Resource\":\"*\"}}",
            actions.iter().map(|a| format!("\"{a}\"")).collect::<Vec<_>>().join(",")
        ),
    )
}
