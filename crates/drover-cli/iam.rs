//! `drover iam-policy PLAN`: the least-privilege IAM policies a run of the plan needs, as
//! JSON (built by `drover_aws::iam`; this module only resolves the accounts, picks and
//! prints).

use drover_aws::iam::{
    Account, Documents, Kind, MANAGED_POLICY_MAX_CHARS, PerAccount, Policies, PolicyDocument,
};

use crate::args::{IamPolicyArgs, IamRole};
use crate::exit::{CliError, Exit};
use crate::output;
use crate::support::load_plan;

pub(crate) fn run(args: &IamPolicyArgs) -> Result<Exit, CliError> {
    let Some((plan, _)) = load_plan(&args.plan) else { return Ok(Exit::Failure) };
    let account = match drover_aws::iam::resolve_account_id(&plan, args.account_id.as_deref()) {
        Ok(account) => account,
        Err(e) => {
            output::error(&e.to_string());
            return Ok(Exit::Usage);
        }
    };
    let operator_account = match drover_aws::iam::resolve_operator_account(
        &plan,
        &account,
        args.operator_account.as_deref(),
    ) {
        Ok(operator_account) => operator_account,
        Err(e) => {
            output::error(&e.to_string());
            return Ok(Exit::Usage);
        }
    };
    let mut documents = drover_aws::iam::documents(&plan, &account, operator_account.as_deref());
    // The state bucket's statements, for runs whose state is on S3: the operator's own
    // credentials read and write it.
    if let Some(url) = &args.state {
        match drover_engine::store::Location::parse(url) {
            Ok(drover_engine::store::Location::S3 { bucket, prefix, .. }) => {
                documents.add_operator_statements(drover_aws::iam::state_statements(
                    &bucket,
                    &prefix,
                    args.state_kms_key.as_deref(),
                ));
            }
            Ok(drover_engine::store::Location::Dir(_)) => {}
            Err(e) => {
                output::error(&e);
                return Ok(Exit::Usage);
            }
        }
    }
    // Events and metrics, only as the plan's `notify:` and the flags use them, in the
    // operator policy of the account that sends them.
    let used = drover_aws::iam::NotifyUse {
        channels: drover_engine::notify::Channels::of(&plan, &args.notify.channels()),
        publish_metrics: args.notify.publish_metrics,
    };
    if !used.is_empty() {
        documents.add_notify_statements(&plan, &account, &used);
    }
    let picked = match &documents {
        Documents::Single(p) => single(args, &account, p),
        Documents::PerAccount(p) => {
            for warning in &p.warnings {
                output::stderr(&format!("warning: {warning}"));
            }
            per_account(args, p)
        }
    };
    let printed = match picked {
        Ok(Some(printed)) => printed,
        Ok(None) => return Ok(Exit::Failure),
        Err(usage) => {
            output::error(&usage);
            return Ok(Exit::Usage);
        }
    };
    // The documents are plain strings, lists and maps: serializing them cannot fail.
    output::stdout_line(&serde_json::to_string_pretty(&printed).unwrap_or_default())?;
    Ok(Exit::Success)
}

/// What a plan in one account prints: its three documents, or the one `--role` names.
/// `Err`: a usage error; `Ok(None)`: a document could not be split (said on stderr).
fn single(args: &IamPolicyArgs, account: &str, p: &Policies) -> Result<Option<Printed>, String> {
    if let Some(other) = args.in_account.as_deref().filter(|id| *id != account) {
        return Err(format!(
            "--in-account {other}: the plan is in account {account} only (its documents are \
             all that account's)"
        ));
    }
    let all = || -> Option<Printed> {
        Some(Printed::All {
            operator: Box::new(render(args, "operator", &p.operator)?),
            backup_role: Box::new(render(args, "backup-role", &p.backup_role)?),
            backup_role_trust: Box::new(render(args, "backup-role-trust", &p.backup_role_trust)?),
        })
    };
    Ok(match args.role {
        None => all(),
        Some(IamRole::Operator) => render(args, "operator", &p.operator),
        Some(IamRole::BackupRole) => render(args, "backup-role", &p.backup_role),
        Some(IamRole::BackupRoleTrust) => render(args, "backup-role-trust", &p.backup_role_trust),
        Some(other) => {
            return Err(format!(
                "the plan is in one account and names no role for drover to assume: it needs no \
                 {} document (docs/iam.md)",
                kind(other).flag()
            ));
        }
    })
}

/// What a plan in several accounts (or with roles) prints: every account's documents, one
/// account's (`--in-account`), or the one document `--role` names.
fn per_account(args: &IamPolicyArgs, p: &PerAccount) -> Result<Option<Printed>, String> {
    let mut rendered = |name: &str, doc: &PolicyDocument| render(args, name, doc).ok_or(());
    match (args.role, args.in_account.as_deref()) {
        (None, None) => Ok(p.map(&mut rendered).ok().map(|p| Printed::PerAccount(Box::new(p)))),
        (None, Some(id)) => match p.accounts.get(id) {
            Some(account) => {
                Ok(account.map(id, &mut rendered).ok().map(|a| Printed::Account(Box::new(a))))
            }
            None => Err(format!(
                "--in-account {id}: the plan's accounts are {}",
                p.accounts.keys().collect::<Vec<_>>().join(", ")
            )),
        },
        (Some(role), account) => {
            let kind = kind(role);
            let selected = p.select(kind, account)?;
            Ok(if kind.is_identity() {
                render(args, &selected.name, selected.document)
            } else {
                // A vault's or key's policy: one per resource, not a managed policy.
                Some(Printed::Whole(selected.document.clone()))
            })
        }
    }
}

fn kind(role: IamRole) -> Kind {
    match role {
        IamRole::Operator => Kind::Operator,
        IamRole::OperatorRoleTrust => Kind::OperatorRoleTrust,
        IamRole::BackupRole => Kind::BackupRole,
        IamRole::BackupRoleTrust => Kind::BackupRoleTrust,
        IamRole::VaultAccessPolicy => Kind::VaultAccessPolicy,
        IamRole::VaultKeyPolicy => Kind::VaultKeyPolicy,
        IamRole::KeyPolicy => Kind::KeyPolicy,
    }
}

/// An identity policy as printed: whole (with a warning when it is too large for a managed
/// policy), or with `--split` as its managed-size parts. `None`: it cannot be split (said on
/// stderr).
fn render(args: &IamPolicyArgs, name: &str, doc: &PolicyDocument) -> Option<Printed> {
    if !args.split {
        warn_if_too_large(name, doc);
        return Some(Printed::Whole(doc.clone()));
    }
    match doc.split(MANAGED_POLICY_MAX_CHARS) {
        Ok(parts) => Some(Printed::Parts(parts)),
        Err(e) => {
            output::error(&format!("cannot split the {name} policy: {e}"));
            None
        }
    }
}

/// What is printed: a document, its parts (`--split`), all three of a plan in one account (no
/// `--role`) in this order, or the documents of every account, or of one.
#[derive(serde::Serialize)]
#[serde(untagged)]
enum Printed {
    Whole(PolicyDocument),
    Parts(Vec<PolicyDocument>),
    All { operator: Box<Printed>, backup_role: Box<Printed>, backup_role_trust: Box<Printed> },
    PerAccount(Box<PerAccount<Printed>>),
    Account(Box<Account<Printed>>),
}

fn warn_if_too_large(name: &str, doc: &PolicyDocument) {
    /// What a role's inline policies hold, together (IAM quotas).
    const INLINE_MAX_CHARS: usize = 10_240;
    let size = doc.size();
    if size > INLINE_MAX_CHARS {
        output::stderr(&format!(
            "warning: the {name} policy is {size} characters (whitespace not counted), more \
             than a role's inline policies hold ({INLINE_MAX_CHARS}): print it with --split as \
             several managed policies (docs/iam.md)"
        ));
    } else if size > MANAGED_POLICY_MAX_CHARS {
        output::stderr(&format!(
            "warning: the {name} policy is {size} characters (whitespace not counted), more \
             than a managed policy holds ({MANAGED_POLICY_MAX_CHARS}): attach it inline to a role \
             (10,240 in all) or print it with --split as several policies (docs/iam.md)"
        ));
    }
}
