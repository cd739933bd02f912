//! `drover iam-policy PLAN`: the least-privilege IAM policies a run of the plan needs, as
//! JSON (built by `drover_aws::iam`; this module only resolves the account and prints).

use drover_aws::iam::{MANAGED_POLICY_MAX_CHARS, PolicyDocument};

use crate::args::{IamPolicyArgs, IamRole};
use crate::exit::{CliError, Exit};
use crate::output;
use crate::run_cmd::load_plan;

pub(crate) fn run(args: &IamPolicyArgs) -> Result<Exit, CliError> {
    let Some((plan, _)) = load_plan(&args.plan) else { return Ok(Exit::Failure) };
    let account = match drover_aws::iam::resolve_account_id(&plan, args.account_id.as_deref()) {
        Ok(account) => account,
        Err(e) => {
            output::error(&e.to_string());
            return Ok(Exit::Usage);
        }
    };
    let policies = drover_aws::iam::policies(&plan, &account);
    let documents = [
        ("operator", &policies.operator),
        ("backup-role", &policies.backup_role),
        ("backup-role-trust", &policies.backup_role_trust),
    ];
    let (json, printed) = match args.role {
        None => (serde_json::to_string_pretty(&policies), &documents[..]),
        Some(IamRole::Operator) => (serde_json::to_string_pretty(documents[0].1), &documents[..1]),
        Some(IamRole::BackupRole) => {
            (serde_json::to_string_pretty(documents[1].1), &documents[1..2])
        }
        Some(IamRole::BackupRoleTrust) => {
            (serde_json::to_string_pretty(documents[2].1), &documents[2..])
        }
    };
    // The documents are plain strings, lists and maps: serializing them cannot fail.
    output::stdout_line(&json.unwrap_or_default())?;
    for (name, doc) in printed {
        warn_if_too_large(name, doc);
    }
    Ok(Exit::Success)
}

fn warn_if_too_large(name: &str, doc: &PolicyDocument) {
    let size = doc.size();
    if size > MANAGED_POLICY_MAX_CHARS {
        output::stderr(&format!(
            "warning: the {name} policy is {size} characters (whitespace not counted), more \
             than a managed policy holds ({MANAGED_POLICY_MAX_CHARS}): attach it inline to a role \
             (10,240 in all) or split its statements over several policies (docs/iam.md)"
        ));
    }
}
