//! `drover iam-policy PLAN`: the least-privilege IAM policies a run of the plan needs, as
//! JSON (built by `drover_aws::iam`; this module only resolves the account and prints).

use drover_aws::iam::{MANAGED_POLICY_MAX_CHARS, Policies, PolicyDocument};

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
    let mut policies = drover_aws::iam::policies(&plan, &account);
    // The state bucket's statements, for runs whose state is on S3.
    if let Some(url) = &args.state {
        match drover_engine::store::Location::parse(url) {
            Ok(drover_engine::store::Location::S3 { bucket, prefix, .. }) => {
                policies.operator.statements.extend(drover_aws::iam::state_statements(
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
    let render = |name: &str, doc: &PolicyDocument| -> Option<Printed> {
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
    };
    let all = |p: &Policies| -> Option<Printed> {
        Some(Printed::All {
            operator: Box::new(render("operator", &p.operator)?),
            backup_role: Box::new(render("backup-role", &p.backup_role)?),
            backup_role_trust: Box::new(render("backup-role-trust", &p.backup_role_trust)?),
        })
    };
    let printed = match args.role {
        None => all(&policies),
        Some(IamRole::Operator) => render("operator", &policies.operator),
        Some(IamRole::BackupRole) => render("backup-role", &policies.backup_role),
        Some(IamRole::BackupRoleTrust) => render("backup-role-trust", &policies.backup_role_trust),
    };
    let Some(printed) = printed else { return Ok(Exit::Failure) };
    // The documents are plain strings, lists and maps: serializing them cannot fail.
    output::stdout_line(&serde_json::to_string_pretty(&printed).unwrap_or_default())?;
    Ok(Exit::Success)
}

/// What is printed: a document, its parts (`--split`), or all three (no `--role`) in this
/// order.
#[derive(serde::Serialize)]
#[serde(untagged)]
enum Printed {
    Whole(PolicyDocument),
    Parts(Vec<PolicyDocument>),
    All { operator: Box<Printed>, backup_role: Box<Printed>, backup_role_trust: Box<Printed> },
}

fn warn_if_too_large(name: &str, doc: &PolicyDocument) {
    let size = doc.size();
    if size > MANAGED_POLICY_MAX_CHARS {
        output::stderr(&format!(
            "warning: the {name} policy is {size} characters (whitespace not counted), more \
             than a managed policy holds ({MANAGED_POLICY_MAX_CHARS}): attach it inline to a role \
             (10,240 in all) or print it with --split as several policies (docs/iam.md)"
        ));
    }
}
