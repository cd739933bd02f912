//! The documents of a plan that acts in more than one account, or through roles it names
//! (recovery into a separate account): [`documents`].
//!
//! drover acts in each account of a plan (the source's, each target's) with the role the plan
//! names for that account (`source.role`, `targets[].role`, assumed with STS from the
//! operator's credentials), or with the operator's own credentials where it names none. So,
//! per account:
//!
//! - the **operator** policy: the statements for what drover does there, scoped to that
//!   account's ARNs (the source's work in the source account: backups, copies, drill markers;
//!   a target's in the target's account: restores, restored tables, teardown, failover);
//! - the **operator role** drover assumes there, if any, with its trust policy: the operator's
//!   account may assume it (with `sts:ExternalId` when the plan names an external id);
//! - the **backup roles** AWS Backup assumes there, with their policies and trust policies:
//!   the plan's `iam_role_arn` in the source account (backups, copies), each target's
//!   `restore_role` in the target's account (restores);
//! - for each target in another account than the source: the **vault access policy** its vault
//!   needs (the source account may copy into it), and the **key policy** statements of the
//!   copy and the restore: the source vault's key shared with the destination account, the
//!   destination vault's key and the target's key usable by the restore role through DynamoDB.
//!
//! Beside them, the operator's own policy: `sts:AssumeRole` on exactly the roles the plan names.

use std::collections::BTreeMap;

use drover_plan::{AssumeRole, Plan, Target};
use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};

use super::{
    Arns, Builder, POLICY_VERSION, Policies, PolicyDocument, Scope, Statement, arn_account,
    backup_role, backup_role_trust, operator, policies, via,
};

/// What a key policy lets another principal do with the key, for copies and restores: use it,
/// and create the grants AWS services hold on it (a restored table's, for one); held by
/// `kms:ViaService` to the service that uses it.
const KEY_POLICY_ACTIONS: &[&str] = &[
    "kms:CreateGrant",
    "kms:Decrypt",
    "kms:DescribeKey",
    "kms:Encrypt",
    "kms:GenerateDataKey",
    "kms:GenerateDataKeyWithoutPlaintext",
    "kms:ReEncryptFrom",
    "kms:ReEncryptTo",
];

/// The account id the operator roles' trust policies name when the operator's account is not
/// known (no `--operator-account`, and drover assumes a role in every account of the plan):
/// IAM rejects the document until it is replaced.
pub const OPERATOR_ACCOUNT_PLACEHOLDER: &str = "OPERATOR_ACCOUNT_ID";

/// The longest session a role gives without raising its maximum (IAM's default
/// `MaxSessionDuration`, one hour).
const DEFAULT_MAX_SESSION_SECS: u64 = 3_600;

/// What `drover iam-policy` prints for a plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Documents {
    /// One account, no role to assume, one backup role: the three documents of [`policies`].
    Single(Policies),
    /// The documents of each account ([`documents`]).
    PerAccount(PerAccount),
}

impl Documents {
    /// Adds statements to the policy of the principal that runs drover (its own credentials):
    /// the single account's operator policy, or the operator's own policy of a plan acting in
    /// several accounts (created if the plan names no role).
    pub fn add_operator_statements(&mut self, statements: Vec<Statement>) {
        if statements.is_empty() {
            return;
        }
        match self {
            Documents::Single(p) => p.operator.statements.extend(statements),
            Documents::PerAccount(p) => p
                .operator
                .get_or_insert_with(|| PolicyDocument {
                    version: POLICY_VERSION,
                    statements: Vec::new(),
                })
                .statements
                .extend(statements),
        }
    }
}

/// The documents of a plan per account, in plan order (the source's account first). `D` is
/// how an identity policy is given (a document, or its `--split` parts); resource policies
/// (vault access policies, key policy statements) are always whole documents.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PerAccount<D = PolicyDocument> {
    /// The operator's own policy: `sts:AssumeRole` on the roles drover assumes (and the state
    /// bucket's statements). `None` when the plan names no role.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operator: Option<D>,
    /// Each account's documents, by account id.
    pub accounts: InOrder<Account<D>>,
    /// What looks wrong in the plan's accounts and roles, one sentence each (not printed on
    /// stdout).
    #[serde(skip)]
    pub warnings: Vec<String>,
}

/// A map that keeps its insertion order when serialized.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InOrder<V>(pub Vec<(String, V)>);

impl<V> InOrder<V> {
    /// The value under `key`.
    #[must_use]
    pub fn get(&self, key: &str) -> Option<&V> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// The keys, in order.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|(k, _)| k.as_str())
    }

    pub(super) fn entry(&mut self, key: &str) -> &mut V
    where
        V: Default,
    {
        let at = match self.0.iter().position(|(k, _)| k == key) {
            Some(at) => at,
            None => {
                self.0.push((key.to_owned(), V::default()));
                self.0.len() - 1
            }
        };
        &mut self.0[at].1
    }
}

impl<V: Serialize> Serialize for InOrder<V> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

/// The documents of one account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Account<D = PolicyDocument> {
    /// What drover does in the account: attach it to [`Account::operator_role`], or to the
    /// principal that runs drover when the plan names no role for the account. `None` for an
    /// account that holds only a key of the plan.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operator: Option<D>,
    /// The role drover assumes in the account, when the plan names one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operator_role: Option<OperatorRole<D>>,
    /// The roles AWS Backup assumes in the account, by ARN.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub backup_roles: BTreeMap<String, BackupRole<D>>,
    /// The access policy each vault of the account that copies from another account come
    /// into needs, by vault ARN.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub vault_access_policies: BTreeMap<String, PolicyDocument>,
    /// Statements for the key policy of the KMS key that encrypts each vault, by vault ARN (the
    /// plan does not name vaults' keys).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub vault_key_policies: BTreeMap<String, PolicyDocument>,
    /// Statements for the key policy of each target key (`kms_key_arn`) of the account, by key
    /// ARN.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub key_policies: BTreeMap<String, PolicyDocument>,
}

impl<D> Default for Account<D> {
    fn default() -> Self {
        Account {
            operator: None,
            operator_role: None,
            backup_roles: BTreeMap::new(),
            vault_access_policies: BTreeMap::new(),
            vault_key_policies: BTreeMap::new(),
            key_policies: BTreeMap::new(),
        }
    }
}

/// A role drover assumes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OperatorRole<D = PolicyDocument> {
    /// Its ARN.
    pub arn: String,
    /// Its trust policy: the operator's account may assume it.
    pub trust: D,
    /// The session the plan asks for, in seconds, when it is longer than a role gives by
    /// default (an hour): the role's `MaxSessionDuration` must be at least this.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_session_duration: Option<u64>,
}

/// A role AWS Backup assumes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BackupRole<D = PolicyDocument> {
    /// Its permissions.
    pub policy: D,
    /// Its trust policy (`backup.amazonaws.com`).
    pub trust: D,
}

/// A document `--role` picks out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The operator's own policy, or with an account, the operator policy of that account.
    Operator,
    /// The trust policy of the role drover assumes in an account.
    OperatorRoleTrust,
    /// A backup role's policy.
    BackupRole,
    /// A backup role's trust policy.
    BackupRoleTrust,
    /// A vault access policy.
    VaultAccessPolicy,
    /// Key policy statements for a vault's key.
    VaultKeyPolicy,
    /// Key policy statements for a target key.
    KeyPolicy,
}

impl Kind {
    /// Its `--role` value.
    #[must_use]
    pub fn flag(self) -> &'static str {
        match self {
            Kind::Operator => "operator",
            Kind::OperatorRoleTrust => "operator-role-trust",
            Kind::BackupRole => "backup-role",
            Kind::BackupRoleTrust => "backup-role-trust",
            Kind::VaultAccessPolicy => "vault-access-policy",
            Kind::VaultKeyPolicy => "vault-key-policy",
            Kind::KeyPolicy => "key-policy",
        }
    }

    /// Whether it is an identity policy (attached to a principal, so `--split` applies),
    /// rather than a resource's policy.
    #[must_use]
    pub fn is_identity(self) -> bool {
        matches!(
            self,
            Kind::Operator | Kind::OperatorRoleTrust | Kind::BackupRole | Kind::BackupRoleTrust
        )
    }
}

/// A document picked out by [`PerAccount::select`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selected<'a> {
    /// What it is, for messages ("operator of account 111122223333").
    pub name: String,
    /// The document.
    pub document: &'a PolicyDocument,
}

impl PerAccount {
    /// The one document of `kind` (in `account`, when given): `--role` and `--in-account`.
    ///
    /// # Errors
    /// A sentence saying why no single document matches: none does, or several do (naming
    /// them, and how to pick one).
    pub fn select(&self, kind: Kind, account: Option<&str>) -> Result<Selected<'_>, String> {
        if kind == Kind::Operator && account.is_none() {
            return self
                .operator
                .as_ref()
                .map(|document| Selected { name: "operator".to_owned(), document })
                .ok_or_else(|| {
                    format!(
                        "the plan names no role for drover to assume, so the operator has no \
                         policy of its own: pick an account's operator policy with \
                         --in-account ({})",
                        self.accounts.keys().collect::<Vec<_>>().join(", ")
                    )
                });
        }
        let accounts: Vec<(&str, &Account)> = match account {
            Some(id) => match self.accounts.get(id) {
                Some(a) => vec![(id, a)],
                None => {
                    return Err(format!(
                        "account {id} is none of the plan's ({})",
                        self.accounts.keys().collect::<Vec<_>>().join(", ")
                    ));
                }
            },
            None => self.accounts.0.iter().map(|(k, v)| (k.as_str(), v)).collect(),
        };
        let mut found: Vec<(&str, String, &PolicyDocument)> = Vec::new();
        for (id, a) in &accounts {
            for (key, doc) in a.candidates(kind) {
                found.push((id, key, doc));
            }
        }
        let within = account.map_or(String::new(), |id| format!(" in account {id}"));
        match found.as_slice() {
            [] => Err(format!("the plan has no {} document{within}", kind.flag())),
            [(id, key, document)] => Ok(Selected {
                name: if key.is_empty() {
                    format!("{} of account {id}", kind.flag())
                } else {
                    format!("{} {key}", kind.flag())
                },
                document,
            }),
            [(first, ..), ..] if found.iter().any(|(id, ..)| id != first) => {
                let ids: Vec<&str> = found.iter().map(|(id, ..)| *id).collect();
                Err(format!(
                    "accounts {} each have a {} document: pass --in-account",
                    ids.join(", "),
                    kind.flag()
                ))
            }
            [(id, ..), ..] => {
                let keys: Vec<&str> = found.iter().map(|(_, key, _)| key.as_str()).collect();
                Err(format!(
                    "account {id} has {} {} documents ({}): print the account's documents with \
                     --in-account {id} and take the one you need",
                    keys.len(),
                    kind.flag(),
                    keys.join(", ")
                ))
            }
        }
    }

    /// Every document as `f` gives it (`f` gets a name for messages and the document):
    /// identity policies only; resource policies are kept as they are.
    ///
    /// # Errors
    /// The first error of `f`.
    pub fn map<D, E>(
        &self,
        f: &mut impl FnMut(&str, &PolicyDocument) -> Result<D, E>,
    ) -> Result<PerAccount<D>, E> {
        let operator = self.operator.as_ref().map(|doc| f("operator", doc)).transpose()?;
        let mut accounts = Vec::new();
        for (id, account) in &self.accounts.0 {
            accounts.push((id.clone(), account.map(id, f)?));
        }
        Ok(PerAccount { operator, accounts: InOrder(accounts), warnings: self.warnings.clone() })
    }
}

impl Account {
    /// The documents of `kind`, each with what tells it from the others of the account (a
    /// role, vault or key ARN; empty for the one operator policy).
    fn candidates(&self, kind: Kind) -> Vec<(String, &PolicyDocument)> {
        fn keyed(m: &BTreeMap<String, PolicyDocument>) -> Vec<(String, &PolicyDocument)> {
            m.iter().map(|(k, d)| (k.clone(), d)).collect()
        }
        match kind {
            Kind::Operator => self.operator.iter().map(|d| (String::new(), d)).collect(),
            Kind::OperatorRoleTrust => {
                self.operator_role.iter().map(|r| (r.arn.clone(), &r.trust)).collect()
            }
            Kind::BackupRole => {
                self.backup_roles.iter().map(|(k, r)| (k.clone(), &r.policy)).collect()
            }
            Kind::BackupRoleTrust => {
                self.backup_roles.iter().map(|(k, r)| (k.clone(), &r.trust)).collect()
            }
            Kind::VaultAccessPolicy => keyed(&self.vault_access_policies),
            Kind::VaultKeyPolicy => keyed(&self.vault_key_policies),
            Kind::KeyPolicy => keyed(&self.key_policies),
        }
    }

    /// The account's documents as `f` gives its identity policies (see [`PerAccount::map`]).
    ///
    /// # Errors
    /// The first error of `f`.
    pub fn map<D, E>(
        &self,
        id: &str,
        f: &mut impl FnMut(&str, &PolicyDocument) -> Result<D, E>,
    ) -> Result<Account<D>, E> {
        let operator = self
            .operator
            .as_ref()
            .map(|doc| f(&format!("account {id} operator"), doc))
            .transpose()?;
        let operator_role = match &self.operator_role {
            Some(r) => Some(OperatorRole {
                arn: r.arn.clone(),
                trust: f(&format!("{} trust", r.arn), &r.trust)?,
                max_session_duration: r.max_session_duration,
            }),
            None => None,
        };
        let mut backup_roles = BTreeMap::new();
        for (arn, r) in &self.backup_roles {
            backup_roles.insert(
                arn.clone(),
                BackupRole {
                    policy: f(&format!("{arn} backup role"), &r.policy)?,
                    trust: f(&format!("{arn} trust"), &r.trust)?,
                },
            );
        }
        Ok(Account {
            operator,
            operator_role,
            backup_roles,
            vault_access_policies: self.vault_access_policies.clone(),
            vault_key_policies: self.vault_key_policies.clone(),
            key_policies: self.key_policies.clone(),
        })
    }
}

/// `--operator-account` contradicts the plan.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "--operator-account {given}: drover acts in account {acting} with the operator's own \
     credentials (the plan names no role for it), so they are account {acting}'s"
)]
pub struct OperatorAccountConflict {
    /// The account drover acts in without a role.
    pub acting: String,
    /// The account given.
    pub given: String,
}

/// The accounts of the plan's work, in plan order (the source's first), each with the role
/// drover assumes there, if any.
pub(super) fn plan_accounts<'p>(a: &Arns<'p>) -> Vec<(&'p str, Option<&'p AssumeRole>)> {
    let mut out: Vec<(&str, Option<&AssumeRole>)> = vec![(a.account, a.plan.source.role.as_ref())];
    for t in &a.plan.targets {
        let account = a.account_of(t);
        match out.iter_mut().find(|(id, _)| *id == account) {
            Some((_, role)) => *role = role.or(t.role.as_ref()),
            None => out.push((account, t.role.as_ref())),
        }
    }
    out
}

/// The account of the credentials that run drover, for the operator roles' trust policies:
/// the one account of the plan drover acts in without a role (its own credentials are that
/// account's), else `given` (`--operator-account`). `None`: unknown.
///
/// # Errors
/// [`OperatorAccountConflict`] when `given` is not the account drover acts in without a role.
pub fn resolve_operator_account(
    plan: &Plan,
    account_id: &str,
    given: Option<&str>,
) -> Result<Option<String>, OperatorAccountConflict> {
    let a = Arns { plan, account: account_id };
    let without: Vec<&str> =
        plan_accounts(&a).into_iter().filter(|(_, r)| r.is_none()).map(|(id, _)| id).collect();
    match (without.as_slice(), given) {
        ([one], Some(given)) if *one != given => {
            Err(OperatorAccountConflict { acting: (*one).to_owned(), given: given.to_owned() })
        }
        ([one], _) => Ok(Some((*one).to_owned())),
        (_, given) => Ok(given.map(str::to_owned)),
    }
}

/// The documents a run of `plan` needs, its source in `account_id` ([`super::resolve_account_id`]):
/// [`Documents::Single`] (exactly [`policies`]) for a plan in one account that names no role
/// for drover and one backup role, else [`Documents::PerAccount`]. `operator_account`
/// ([`resolve_operator_account`]) is the principal of the operator roles' trust policies
/// ([`OPERATOR_ACCOUNT_PLACEHOLDER`] when `None`).
#[must_use]
pub fn documents(plan: &Plan, account_id: &str, operator_account: Option<&str>) -> Documents {
    let a = Arns { plan, account: account_id };
    let single = plan.source.role.is_none()
        && plan.targets.iter().all(|t| {
            t.role.is_none()
                && a.account_of(t) == account_id
                && plan.restore_role(t) == plan.iam_role_arn
        });
    if single {
        return Documents::Single(policies(plan, account_id));
    }
    Documents::PerAccount(per_account(&a, operator_account))
}

fn per_account(a: &Arns<'_>, operator_account: Option<&str>) -> PerAccount {
    let plan = a.plan;
    let mut accounts: InOrder<Account> = InOrder(Vec::new());
    let mut warnings = Vec::new();
    let principal = operator_account.unwrap_or(OPERATOR_ACCOUNT_PLACEHOLDER);

    // What drover does in each account, and the role it assumes there.
    let roles = plan_accounts(a);
    let checks_accounts =
        plan.source.role.is_some() || plan.targets.iter().any(|t| t.role.is_some() || a.crosses(t));
    for (id, role) in &roles {
        let scope = Scope {
            source: *id == a.account,
            targets: plan.targets.iter().filter(|t| a.account_of(t) == *id).collect(),
            checks_accounts,
        };
        let entry = accounts.entry(id);
        entry.operator = Some(operator(a, &scope));
        entry.operator_role = role.map(|r| OperatorRole {
            arn: r.role_arn.clone(),
            trust: operator_role_trust(a, principal, r),
            max_session_duration: r
                .session_duration
                .map(|d| d.as_secs())
                .filter(|s| *s > DEFAULT_MAX_SESSION_SECS),
        });
    }
    let without: Vec<&str> = roles.iter().filter(|(_, r)| r.is_none()).map(|(id, _)| *id).collect();
    if without.len() > 1 {
        warnings.push(format!(
            "drover acts with the operator's own credentials in accounts {}, but credentials \
             act in one account: name a role for drover (`source.role`, `targets[].role`) in \
             all of them but one",
            without.join(", ")
        ));
    }
    if operator_account.is_none() && roles.iter().any(|(_, r)| r.is_some()) {
        warnings.push(format!(
            "the trust policies of the roles drover assumes name {OPERATOR_ACCOUNT_PLACEHOLDER} \
             for the account of the credentials that run drover: pass --operator-account ID"
        ));
    }

    // The backup roles: the plan's (backups, copies, and the restores of the targets that
    // name none), and each target's own.
    let mut backup_roles: Vec<(&str, bool, Vec<&Target>)> =
        vec![(plan.iam_role_arn.as_str(), true, Vec::new())];
    for t in &plan.targets {
        let role = plan.restore_role(t);
        match backup_roles.iter_mut().find(|(arn, ..)| *arn == role) {
            Some((.., restores)) => restores.push(t),
            None => backup_roles.push((role, false, vec![t])),
        }
    }
    for (arn, source, restores) in &backup_roles {
        for t in restores {
            let account = a.account_of(t);
            if arn_account(arn) != Some(account) {
                warnings.push(format!(
                    "target {} is in account {account} but restores with {arn}: AWS Backup \
                     takes a role of the account a job runs in: give the target an \
                     `iam_role_arn` in account {account}",
                    t.region
                ));
            }
        }
        let account = match restores.first() {
            Some(t) if !*source => a.account_of(t),
            _ => a.account,
        };
        accounts.entry(account).backup_roles.insert(
            (*arn).to_owned(),
            BackupRole { policy: backup_role(a, *source, restores), trust: backup_role_trust() },
        );
    }

    // Copies into other accounts: the destination vaults' access policies and the keys.
    let crossing: Vec<&Target> = plan.targets.iter().filter(|t| a.crosses(t)).collect();
    if !crossing.is_empty() {
        accounts
            .entry(a.account)
            .vault_key_policies
            .insert(a.source_vault(), source_vault_key_policy(a, &crossing));
    }
    let mut keys: BTreeMap<&str, Vec<&Target>> = BTreeMap::new();
    for t in &crossing {
        let entry = accounts.entry(a.account_of(t));
        entry.vault_access_policies.insert(a.target_vault(t), vault_access_policy(a, t));
        entry.vault_key_policies.insert(a.target_vault(t), restore_key_policy(a, &[t]));
        keys.entry(t.kms_key_arn.as_str()).or_default().push(t);
    }
    for (key, targets) in keys {
        let account = arn_account(key).unwrap_or_else(|| a.account_of(targets[0]));
        accounts
            .entry(account)
            .key_policies
            .insert(key.to_owned(), restore_key_policy(a, &targets));
    }

    // The operator's own policy: the roles it assumes.
    let assumed: Vec<String> =
        roles.iter().filter_map(|(_, r)| r.map(|r| r.role_arn.clone())).collect();
    let mut own = Builder(Vec::new());
    own.push(Statement::allow("AssumePlanRoles", &["sts:AssumeRole"], assumed));
    let operator = (!own.0.is_empty()).then(|| own.finish());
    PerAccount { operator, accounts, warnings }
}

/// The trust policy of a role drover assumes: the operator's account, with the external id
/// the plan names.
fn operator_role_trust(a: &Arns<'_>, principal: &str, role: &AssumeRole) -> PolicyDocument {
    let mut statement = Statement::allow("AssumedByDroverOperator", &["sts:AssumeRole"], [])
        .to("AWS", [a.root(principal)]);
    if let Some(id) = &role.external_id {
        statement = statement.when("StringEquals", "sts:ExternalId", [id.clone()]);
    }
    PolicyDocument { version: POLICY_VERSION, statements: vec![statement] }
}

/// The access policy of a target's vault in another account: the source account may copy
/// into it (AWS Backup rejects every other action across accounts whatever the policy says).
fn vault_access_policy(a: &Arns<'_>, t: &Target) -> PolicyDocument {
    let statement = Statement::allow(
        "CopyFromSourceAccount",
        &["backup:CopyIntoBackupVault"],
        [a.target_vault(t)],
    )
    .to("AWS", [a.root(a.account)]);
    PolicyDocument { version: POLICY_VERSION, statements: vec![statement] }
}

/// Statements for the key policy of the source vault's key: the destination accounts may use
/// it through AWS Backup in the source region, for the copies (a copy into another account
/// needs the source vault's key, customer managed, shared with the destination account).
fn source_vault_key_policy(a: &Arns<'_>, crossing: &[&Target]) -> PolicyDocument {
    let accounts: Vec<String> = crossing.iter().map(|t| a.root(a.account_of(t))).collect();
    let (op, via) = via("backup", [a.source()]);
    PolicyDocument {
        version: POLICY_VERSION,
        statements: vec![
            Statement::allow("UseThroughAwsBackupForCopies", KEY_POLICY_ACTIONS, ["*".to_owned()])
                .to("AWS", accounts)
                .when(op, "kms:ViaService", via),
        ],
    }
}

/// Statements for the key policy of a destination vault's key or a target key: the restore
/// roles of `targets` may use it through DynamoDB in their regions (which creates a grant on
/// the key for each restored table).
fn restore_key_policy(a: &Arns<'_>, targets: &[&Target]) -> PolicyDocument {
    let roles: Vec<String> = targets.iter().map(|t| a.plan.restore_role(t).to_owned()).collect();
    let (op, via) = a.via_dynamodb(targets.iter().map(|t| &t.region));
    PolicyDocument {
        version: POLICY_VERSION,
        statements: vec![
            Statement::allow("UseThroughDynamoDBForRestores", KEY_POLICY_ACTIONS, ["*".to_owned()])
                .to("AWS", roles)
                .when(op, "kms:ViaService", via),
        ],
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use serde_json::json;

    use super::super::tests::{FULL_PLAN, RECOVERY, actions, cross_account_plan, load};
    use super::*;

    const SOURCE: &str = "123456789012";

    fn per_account(plan: &Plan, operator_account: Option<&str>) -> PerAccount {
        match documents(plan, SOURCE, operator_account) {
            Documents::PerAccount(p) => p,
            Documents::Single(_) => panic!("expected documents per account"),
        }
    }

    fn account<'p>(p: &'p PerAccount, id: &str) -> &'p Account {
        p.accounts.get(id).unwrap_or_else(|| panic!("no account {id}"))
    }

    fn sids(doc: &PolicyDocument) -> Vec<&str> {
        doc.statements.iter().map(|s| s.sid.as_ref()).collect()
    }

    fn statement<'d>(doc: &'d PolicyDocument, sid: &str) -> &'d Statement {
        doc.statements.iter().find(|s| s.sid == sid).unwrap_or_else(|| panic!("no {sid}"))
    }

    #[test]
    fn point_in_time_restores_are_granted_where_source_and_destination_share_the_account() {
        // One account: the source tables, and the new tables in every target and beside the
        // source, under the default template's names, the plan's and the drill's.
        let single = policies(&load(FULL_PLAN), SOURCE).operator;
        assert_eq!(
            statement(&single, "RestoreSourceTablesToPointInTime").resources,
            ["customers", "orders"]
                .map(|t| format!("arn:aws:dynamodb:us-east-1:{SOURCE}:table/{t}"))
        );
        let restored = statement(&single, "ConfigureAndValidateRestoredTables");
        for action in super::super::PITR_TARGET_ACTIONS {
            assert!(restored.actions.iter().any(|a| a == action), "{action}");
        }
        for name in [
            "us-west-2:123456789012:table/orders-at-*",
            "us-west-2:123456789012:table/orders",
            "us-west-2:123456789012:table/orders-drill-*-us-west-2",
            "eu-west-1:123456789012:table/customers-at-*",
            "us-east-1:123456789012:table/customers-at-*",
            "us-east-1:123456789012:table/orders-at-*",
        ] {
            let arn = format!("arn:aws:dynamodb:{name}");
            assert!(restored.resources.contains(&arn), "{arn} not in {:?}", restored.resources);
        }
        assert!(
            !restored.resources.iter().any(|r| r.contains("eu-west-1:123456789012:table/orders"))
        );
        assert!(!sids(&single).contains(&"ReadCanaryItems"), "covered by the restored tables'");
        let keys = statement(&single, "UseKeysThroughDynamoDBForPointInTimeRestores");
        assert!(keys.actions.contains(&"kms:CreateGrant".to_owned()), "{:?}", keys.actions);
        assert_eq!(
            keys.resources,
            [
                "arn:aws:kms:eu-west-1:123456789012:key/mrk-0123456789abcdef0123456789abcdef",
                "arn:aws:kms:us-east-1:123456789012:key/*",
                "arn:aws:kms:us-west-2:123456789012:key/1111aaaa-22bb-33cc-44dd-555555eeeeee",
            ]
        );
        assert_eq!(
            serde_json::to_value(&keys.condition).unwrap(),
            json!({"StringEquals": {"kms:ViaService": [
                "dynamodb.eu-west-1.amazonaws.com",
                "dynamodb.us-east-1.amazonaws.com",
                "dynamodb.us-west-2.amazonaws.com"
            ]}})
        );

        // Across accounts: nothing in the recovery account (a restore cannot leave the source
        // account); the source account's restores go beside the source and into eu-west-1.
        let p = per_account(&cross_account_plan(), None);
        let source = account(&p, SOURCE).operator.as_ref().unwrap();
        let recovery = account(&p, RECOVERY).operator.as_ref().unwrap();
        for sid in [
            "RestoreSourceTablesToPointInTime",
            "UseKeysThroughDynamoDBForPointInTimeRestores",
            "WriteItemsOfPointInTimeRestores",
        ] {
            assert!(!sids(recovery).contains(&sid), "{sid} in the recovery account");
        }
        let restored = statement(recovery, "ConfigureAndValidateRestoredTables");
        assert!(
            !restored.actions.iter().any(|a| a == "dynamodb:PutItem"),
            "{:?}",
            restored.actions
        );
        assert!(!restored.resources.iter().any(|r| r.contains("-at-")), "{:?}", restored.resources);
        assert!(sids(recovery).contains(&"ReadCanaryItems"));
        assert!(sids(source).contains(&"RestoreSourceTablesToPointInTime"));
        let restored = statement(source, "ConfigureAndValidateRestoredTables");
        assert!(restored.actions.iter().any(|a| a == "dynamodb:PutItem"));
        assert!(
            restored
                .resources
                .contains(&format!("arn:aws:dynamodb:us-east-1:{SOURCE}:table/customers-at-*"))
        );
        assert!(!restored.resources.iter().any(|r| r.contains(":us-west-2:")));
        assert_eq!(
            statement(source, "UseKeysThroughDynamoDBForPointInTimeRestores").resources,
            [
                "arn:aws:kms:eu-west-1:123456789012:key/mrk-0123456789abcdef0123456789abcdef",
                "arn:aws:kms:us-east-1:123456789012:key/*",
            ]
        );
    }

    #[test]
    fn a_plan_in_one_account_prints_the_three_documents_as_before() {
        let plan = load(FULL_PLAN);
        assert_eq!(documents(&plan, SOURCE, None), Documents::Single(policies(&plan, SOURCE)));
        // A target naming the source account, or the plan's own role, changes nothing.
        let mut same = load(FULL_PLAN);
        same.targets[0].account_id = Some(SOURCE.to_owned());
        same.targets[1].iam_role_arn = Some(same.iam_role_arn.clone());
        assert_eq!(documents(&same, SOURCE, None), Documents::Single(policies(&plan, SOURCE)));
    }

    #[test]
    fn a_role_in_the_one_account_gets_its_trust_and_the_same_operator_policy() {
        let mut plan = load(FULL_PLAN);
        plan.source.role = Some(AssumeRole {
            role_arn: format!("arn:aws:iam::{SOURCE}:role/drover"),
            external_id: None,
            session_duration: None,
        });
        let p = per_account(&plan, Some("999999999999"));
        assert_eq!(p.accounts.keys().collect::<Vec<_>>(), [SOURCE]);
        let a = account(&p, SOURCE);
        let single = policies(&load(FULL_PLAN), SOURCE);
        // The one account's statements, and preflight's reads of the target keys' policies
        // (checked in a plan that names a role).
        let mut operator = a.operator.clone().unwrap();
        let at = operator.statements.iter().position(|s| s.sid == "ReadKeysForAccountChecks");
        let read = operator.statements.remove(at.unwrap());
        assert_eq!(operator, single.operator);
        assert_eq!(
            read.resources,
            plan.targets.iter().map(|t| t.kms_key_arn.clone()).rev().collect::<Vec<_>>()
        );
        let role = &a.backup_roles[&plan.iam_role_arn];
        assert_eq!((&role.policy, &role.trust), (&single.backup_role, &single.backup_role_trust));
        let trust = a.operator_role.as_ref().unwrap();
        assert_eq!(trust.max_session_duration, None);
        assert_eq!(
            serde_json::to_value(&trust.trust).unwrap()["Statement"][0],
            json!({
                "Sid": "AssumedByDroverOperator",
                "Effect": "Allow",
                "Principal": {"AWS": "arn:aws:iam::999999999999:root"},
                "Action": ["sts:AssumeRole"]
            })
        );
        assert!(a.vault_access_policies.is_empty() && a.key_policies.is_empty());
        assert!(a.vault_key_policies.is_empty());
        assert!(p.warnings.is_empty(), "{:?}", p.warnings);
    }

    #[test]
    fn each_account_gets_the_statements_of_its_own_work_scoped_to_its_arns() {
        let p = per_account(&cross_account_plan(), None);
        assert_eq!(p.accounts.keys().collect::<Vec<_>>(), [SOURCE, RECOVERY]);
        for (id, a) in &p.accounts.0 {
            let operator = a.operator.as_ref().unwrap();
            for s in &operator.statements {
                assert!(s.sid.bytes().all(|b| b.is_ascii_alphanumeric()), "Sid {}", s.sid);
                for r in &s.resources {
                    assert!(
                        r == "*" || r.contains(&format!(":{id}:")),
                        "account {id}, {}: {r} is another account's",
                        s.sid
                    );
                }
            }
        }
        let source = account(&p, SOURCE).operator.as_ref().unwrap();
        let recovery = account(&p, RECOVERY).operator.as_ref().unwrap();
        // The source's work only in the source account.
        for sid in [
            "ReadSourceTables",
            "StartBackupsIntoSourceVault",
            "CopySourceRecoveryPoints",
            "WriteAndRemoveDrillMarkers",
            "SweepDrillNamesInSourceRegion",
        ] {
            assert!(sids(source).contains(&sid), "{sid}");
            assert!(!sids(recovery).contains(&sid), "{sid} in the recovery account");
        }
        // us-west-2's restores only in the recovery account; eu-west-1's stay in the source's.
        let restores = |doc| statement(doc, "RestoreFromTargetVaults").resources.clone();
        assert_eq!(
            restores(recovery),
            [format!("arn:aws:backup:us-west-2:{RECOVERY}:recovery-point:*")]
        );
        assert_eq!(
            restores(source),
            [format!("arn:aws:backup:eu-west-1:{SOURCE}:recovery-point:*")]
        );
        assert_eq!(
            statement(recovery, "PassBackupRoleToAwsBackup").resources,
            [format!("arn:aws:iam::{RECOVERY}:role/drover-restore")]
        );
        assert_eq!(
            statement(source, "PassBackupRoleToAwsBackup").resources,
            [format!("arn:aws:iam::{SOURCE}:role/drover-backup")]
        );
        // Preflight's reads of a copy across accounts: the destination vault's policy and the
        // keys, each in its account.
        assert_eq!(
            statement(recovery, "ReadDestinationVaultAccessPolicies").resources,
            [format!("arn:aws:backup:us-west-2:{RECOVERY}:backup-vault:dr-usw2")]
        );
        assert!(!sids(source).contains(&"ReadDestinationVaultAccessPolicies"));
        // The source vault's key, and eu-west-1's target key (whose policy preflight reads in
        // a plan that spans accounts); the destination vault's key and us-west-2's.
        assert_eq!(
            statement(source, "ReadKeysForAccountChecks").resources,
            [
                "arn:aws:kms:eu-west-1:123456789012:key/mrk-0123456789abcdef0123456789abcdef"
                    .to_owned(),
                format!("arn:aws:kms:us-east-1:{SOURCE}:key/*")
            ]
        );
        assert_eq!(
            statement(recovery, "ReadKeysForAccountChecks").resources,
            [format!("arn:aws:kms:us-west-2:{RECOVERY}:key/*")]
        );
        // A plan in one account that only restores with another role checks no account.
        let mut other_role = load(FULL_PLAN);
        other_role.targets[0].iam_role_arn = Some(format!("arn:aws:iam::{SOURCE}:role/other"));
        let p = per_account(&other_role, None);
        let operator = account(&p, SOURCE).operator.as_ref().unwrap();
        assert!(!sids(operator).contains(&"ReadKeysForAccountChecks"), "{:?}", sids(operator));
        assert_eq!(actions(operator), actions(&policies(&load(FULL_PLAN), SOURCE).operator));
        let p = per_account(&cross_account_plan(), None);
        let source = account(&p, SOURCE).operator.as_ref().unwrap();
        let recovery = account(&p, RECOVERY).operator.as_ref().unwrap();
        // The `*` statement: each account's regions and jobs.
        let unscopable = |doc| {
            let s = statement(doc, super::super::UNSCOPABLE_SID);
            (s.actions.clone(), serde_json::to_value(&s.condition).unwrap())
        };
        assert_eq!(
            unscopable(recovery),
            (
                ["backup:DescribeRestoreJob", "backup:ListRestoreJobs", "dynamodb:ListTables"]
                    .map(str::to_owned)
                    .to_vec(),
                json!({"StringEquals": {"aws:RequestedRegion": "us-west-2"}})
            )
        );
        let (source_jobs, regions) = unscopable(source);
        assert!(source_jobs.contains(&"backup:DescribeCopyJob".to_owned()));
        assert!(source_jobs.contains(&"backup:DescribeGlobalSettings".to_owned()));
        assert_eq!(
            regions,
            json!({"StringEquals": {"aws:RequestedRegion": ["eu-west-1", "us-east-1"]}})
        );
        // Every account's work together is the one-account plan's, plus the cross-account reads.
        let one = actions(&policies(&load(FULL_PLAN), SOURCE).operator);
        let all: BTreeSet<String> = actions(source).union(&actions(recovery)).cloned().collect();
        let added: Vec<&String> = all.difference(&one).collect();
        assert_eq!(
            added,
            [
                "backup:DescribeGlobalSettings",
                "backup:GetBackupVaultAccessPolicy",
                "kms:GetKeyPolicy"
            ]
        );
        assert!(one.is_subset(&all));
    }

    #[test]
    fn backup_roles_work_in_their_own_accounts_and_copy_into_the_others() {
        let plan = cross_account_plan();
        let p = per_account(&plan, None);
        let source = &account(&p, SOURCE).backup_roles;
        let recovery = &account(&p, RECOVERY).backup_roles;
        assert_eq!(source.keys().collect::<Vec<_>>(), [&plan.iam_role_arn]);
        let restore = format!("arn:aws:iam::{RECOVERY}:role/drover-restore");
        assert_eq!(recovery.keys().collect::<Vec<_>>(), [&restore]);
        let backup = &source[&plan.iam_role_arn].policy;
        // The one resource of the recovery account the source's role names: the vault it
        // copies into.
        let foreign: Vec<(&str, &str)> = backup
            .statements
            .iter()
            .flat_map(|s| s.resources.iter().map(move |r| (s.sid.as_ref(), r.as_str())))
            .filter(|(_, r)| r.contains(RECOVERY))
            .collect();
        assert_eq!(
            foreign,
            [(
                "CopyIntoTargetVaults",
                "arn:aws:backup:us-west-2:210987654321:backup-vault:dr-usw2"
            )]
        );
        let restore_policy = &recovery[&restore].policy;
        assert_eq!(
            sids(restore_policy),
            [
                "DescribePlanVaults",
                "RestoreIntoPlanTableNames",
                "UseTargetKeysThroughDynamoDBForRestores",
                "DescribeVaultAndTableKeys",
                "GrantKeysToAwsResourcesOnly"
            ]
        );
        for s in &restore_policy.statements {
            for r in &s.resources {
                assert!(r.contains(&format!(":us-west-2:{RECOVERY}:")), "{}: {r}", s.sid);
            }
        }
        for role in [&source[&plan.iam_role_arn], &recovery[&restore]] {
            assert_eq!(role.trust, backup_role_trust());
        }
    }

    #[test]
    fn copies_across_accounts_get_the_vault_access_and_key_policies() {
        let p = per_account(&cross_account_plan(), None);
        let recovery = account(&p, RECOVERY);
        let vault = format!("arn:aws:backup:us-west-2:{RECOVERY}:backup-vault:dr-usw2");
        assert_eq!(recovery.vault_access_policies.keys().collect::<Vec<_>>(), [&vault]);
        assert_eq!(
            serde_json::to_value(&recovery.vault_access_policies[&vault]).unwrap(),
            json!({
                "Version": "2012-10-17",
                "Statement": [{
                    "Sid": "CopyFromSourceAccount",
                    "Effect": "Allow",
                    "Principal": {"AWS": "arn:aws:iam::123456789012:root"},
                    "Action": ["backup:CopyIntoBackupVault"],
                    "Resource": [vault]
                }]
            })
        );
        let use_actions = json!([
            "kms:CreateGrant",
            "kms:Decrypt",
            "kms:DescribeKey",
            "kms:Encrypt",
            "kms:GenerateDataKey",
            "kms:GenerateDataKeyWithoutPlaintext",
            "kms:ReEncryptFrom",
            "kms:ReEncryptTo"
        ]);
        let restore_statements = json!([{
            "Sid": "UseThroughDynamoDBForRestores",
            "Effect": "Allow",
            "Principal": {"AWS": "arn:aws:iam::210987654321:role/drover-restore"},
            "Action": use_actions,
            "Resource": ["*"],
            "Condition": {"StringEquals": {"kms:ViaService": "dynamodb.us-west-2.amazonaws.com"}}
        }]);
        // The destination vault's key and the target key: the restore role, through DynamoDB.
        assert_eq!(
            serde_json::to_value(&recovery.vault_key_policies[&vault]).unwrap()["Statement"],
            restore_statements
        );
        let key =
            format!("arn:aws:kms:us-west-2:{RECOVERY}:key/1111aaaa-22bb-33cc-44dd-555555eeeeee");
        assert_eq!(recovery.key_policies.keys().collect::<Vec<_>>(), [&key]);
        assert_eq!(
            serde_json::to_value(&recovery.key_policies[&key]).unwrap()["Statement"],
            restore_statements
        );
        // The source vault's key: shared with the recovery account.
        let source = account(&p, SOURCE);
        assert!(source.vault_access_policies.is_empty() && source.key_policies.is_empty());
        let source_vault = "arn:aws:backup:us-east-1:123456789012:backup-vault:prod-vault";
        assert_eq!(
            serde_json::to_value(&source.vault_key_policies[source_vault]).unwrap()["Statement"],
            json!([{
                "Sid": "UseThroughAwsBackupForCopies",
                "Effect": "Allow",
                "Principal": {"AWS": "arn:aws:iam::210987654321:root"},
                "Action": use_actions,
                "Resource": ["*"],
                "Condition": {"StringEquals": {"kms:ViaService": "backup.us-east-1.amazonaws.com"}}
            }])
        );
        // eu-west-1 is in the source account: no resource policy for it.
        let all = serde_json::to_string(&p).unwrap();
        assert!(!all.contains("backup-vault:dr-euw1\":{"), "{all}");
        assert!(!all.contains("key/mrk-0123456789abcdef0123456789abcdef\":"));
    }

    #[test]
    fn the_printed_resource_policies_let_in_what_preflight_checks_and_no_more() {
        use drover_engine::resource_policy::{COPY_INTO_VAULT, Caller, allows};
        let plan = cross_account_plan();
        let p = per_account(&plan, None);
        let text = |doc: &PolicyDocument| serde_json::to_string(doc).unwrap();
        let recovery = account(&p, RECOVERY);
        let vault = format!("arn:aws:backup:us-west-2:{RECOVERY}:backup-vault:dr-usw2");
        // The destination vault: the source account's backup role may copy into it.
        let vault_policy = text(&recovery.vault_access_policies[&vault]);
        assert!(allows(
            &vault_policy,
            COPY_INTO_VAULT,
            &Caller::role(SOURCE, &plan.iam_role_arn, None)
        ));
        assert!(!allows(&vault_policy, COPY_INTO_VAULT, &Caller::role("999999999999", "", None)));
        assert!(!allows(
            &vault_policy,
            "backup:DeleteRecoveryPoint",
            &Caller::role(SOURCE, &plan.iam_role_arn, None)
        ));
        // The source vault's key: the recovery account, through AWS Backup in the source region.
        let from = |account: &str, via: &str| Caller {
            principals: vec![account.to_owned(), format!("arn:aws:iam::{account}:root")],
            context: vec![
                ("aws:principalaccount", Some(account.to_owned())),
                ("kms:calleraccount", Some(account.to_owned())),
                ("kms:viaservice", Some(via.to_owned())),
            ],
        };
        let source_key = text(
            &account(&p, SOURCE).vault_key_policies["arn:aws:backup:us-east-1:123456789012:backup-vault:prod-vault"],
        );
        for action in ["kms:Decrypt", "kms:DescribeKey", "kms:CreateGrant"] {
            assert!(allows(&source_key, action, &from(RECOVERY, "backup.us-east-1.amazonaws.com")));
            assert!(!allows(
                &source_key,
                action,
                &from(RECOVERY, "dynamodb.us-east-1.amazonaws.com")
            ));
            assert!(!allows(
                &source_key,
                action,
                &from("999999999999", "backup.us-east-1.amazonaws.com")
            ));
        }
        // The destination vault's key and the target key: the restore role, through DynamoDB.
        let restore = format!("arn:aws:iam::{RECOVERY}:role/drover-restore");
        let key =
            format!("arn:aws:kms:us-west-2:{RECOVERY}:key/1111aaaa-22bb-33cc-44dd-555555eeeeee");
        for policy in
            [text(&recovery.vault_key_policies[&vault]), text(&recovery.key_policies[&key])]
        {
            let mut role = from(RECOVERY, "dynamodb.us-west-2.amazonaws.com");
            let others = role.clone();
            role.principals.push(restore.clone());
            for action in [
                "kms:Encrypt",
                "kms:Decrypt",
                "kms:GenerateDataKey",
                "kms:DescribeKey",
                "kms:CreateGrant",
            ] {
                assert!(allows(&policy, action, &role), "{action}");
                // Not another principal of the account (the key policy's root statement, which
                // the printed statements are added to, decides for those).
                assert!(!allows(&policy, action, &others), "{action}");
            }
            let mut elsewhere = from(RECOVERY, "backup.us-west-2.amazonaws.com");
            elsewhere.principals.push(restore.clone());
            assert!(!allows(&policy, "kms:Decrypt", &elsewhere));
        }
    }

    #[test]
    fn the_operator_assumes_the_plan_roles_trusting_its_account_with_the_external_id() {
        let plan = cross_account_plan();
        let p = per_account(&plan, Some(SOURCE));
        assert!(p.warnings.is_empty(), "{:?}", p.warnings);
        let role = account(&p, RECOVERY).operator_role.as_ref().unwrap();
        assert_eq!(role.arn, format!("arn:aws:iam::{RECOVERY}:role/drover-recovery"));
        assert_eq!(role.max_session_duration, Some(7_200));
        assert_eq!(
            serde_json::to_value(&role.trust).unwrap(),
            json!({
                "Version": "2012-10-17",
                "Statement": [{
                    "Sid": "AssumedByDroverOperator",
                    "Effect": "Allow",
                    "Principal": {"AWS": "arn:aws:iam::123456789012:root"},
                    "Action": ["sts:AssumeRole"],
                    "Condition": {"StringEquals": {"sts:ExternalId": "drover-iam-test"}}
                }]
            })
        );
        assert!(account(&p, SOURCE).operator_role.is_none());
        // Without the operator's account: a placeholder IAM refuses, and a warning.
        let unknown = per_account(&plan, None);
        let trust = serde_json::to_value(
            &account(&unknown, RECOVERY).operator_role.as_ref().unwrap().trust,
        )
        .unwrap();
        assert_eq!(
            trust["Statement"][0]["Principal"]["AWS"],
            format!("arn:aws:iam::{OPERATOR_ACCOUNT_PLACEHOLDER}:root")
        );
        assert_eq!(unknown.warnings.len(), 1, "{:?}", unknown.warnings);
        assert!(unknown.warnings[0].contains("--operator-account"), "{:?}", unknown.warnings);
        // A session of an hour or less needs no longer maximum.
        let mut short = cross_account_plan();
        short.targets[0].role.as_mut().unwrap().session_duration =
            Some(std::time::Duration::from_secs(3_600));
        let p = per_account(&short, Some(SOURCE));
        assert_eq!(
            account(&p, RECOVERY).operator_role.as_ref().unwrap().max_session_duration,
            None
        );
    }

    #[test]
    fn the_operator_account_is_the_one_drover_acts_in_without_a_role() {
        let plan = cross_account_plan();
        // drover acts in the source account with the operator's own credentials.
        assert_eq!(resolve_operator_account(&plan, SOURCE, None), Ok(Some(SOURCE.to_owned())));
        assert_eq!(
            resolve_operator_account(&plan, SOURCE, Some(SOURCE)),
            Ok(Some(SOURCE.to_owned()))
        );
        let err = resolve_operator_account(&plan, SOURCE, Some("999999999999")).unwrap_err();
        assert_eq!(err.acting, SOURCE);
        assert!(err.to_string().contains("--operator-account 999999999999"), "{err}");
        // A role in every account: only the flag says.
        let mut roles = cross_account_plan();
        roles.source.role = Some(AssumeRole {
            role_arn: format!("arn:aws:iam::{SOURCE}:role/drover"),
            external_id: None,
            session_duration: None,
        });
        assert_eq!(resolve_operator_account(&roles, SOURCE, None), Ok(None));
        assert_eq!(
            resolve_operator_account(&roles, SOURCE, Some("999999999999")),
            Ok(Some("999999999999".to_owned()))
        );
        let p = per_account(&roles, Some("999999999999"));
        let operator = p.operator.as_ref().unwrap();
        assert_eq!(
            operator.statements[0].resources,
            [
                format!("arn:aws:iam::{SOURCE}:role/drover"),
                format!("arn:aws:iam::{RECOVERY}:role/drover-recovery")
            ]
        );
        for id in [SOURCE, RECOVERY] {
            let trust = &account(&p, id).operator_role.as_ref().unwrap().trust;
            assert_eq!(
                serde_json::to_value(trust).unwrap()["Statement"][0]["Principal"]["AWS"],
                "arn:aws:iam::999999999999:root"
            );
        }
    }

    #[test]
    fn plans_drover_cannot_act_on_as_written_are_warned_about() {
        // Two accounts without a role: the operator's credentials act in one only.
        let mut plan = load(FULL_PLAN);
        plan.targets[0].account_id = Some(RECOVERY.to_owned());
        plan.targets[0].kms_key_arn =
            format!("arn:aws:kms:us-west-2:{RECOVERY}:key/1111aaaa-22bb-33cc-44dd-555555eeeeee");
        let p = per_account(&plan, None);
        let text = p.warnings.join("\n");
        assert!(text.contains("own credentials in accounts 123456789012, 210987654321"), "{text}");
        // ... and restores in the recovery account with the source account's role.
        assert!(
            text.contains(
                "target us-west-2 is in account 210987654321 but restores with \
                 arn:aws:iam::123456789012:role/drover-backup"
            ),
            "{text}"
        );
    }

    #[test]
    fn the_account_of_the_source_ignores_the_keys_of_targets_in_their_own_accounts() {
        let mut plan = cross_account_plan();
        plan.source.account_id = None;
        assert_eq!(super::super::resolve_account_id(&plan, None), Ok(SOURCE.to_owned()));
    }

    #[test]
    fn select_picks_one_document_or_says_why_not() {
        let plan = cross_account_plan();
        let p = per_account(&plan, Some(SOURCE));
        let own = p.select(Kind::Operator, None).unwrap();
        assert_eq!((own.name.as_str(), own.document), ("operator", p.operator.as_ref().unwrap()));
        let theirs = p.select(Kind::Operator, Some(RECOVERY)).unwrap();
        assert_eq!(theirs.name, format!("operator of account {RECOVERY}"));
        assert_eq!(Some(theirs.document), account(&p, RECOVERY).operator.as_ref());
        // One of its kind in the plan: no account needed.
        let trust = p.select(Kind::OperatorRoleTrust, None).unwrap();
        assert_eq!(
            trust.name,
            format!("operator-role-trust arn:aws:iam::{RECOVERY}:role/drover-recovery")
        );
        assert!(p.select(Kind::VaultAccessPolicy, None).is_ok());
        // Several: say where, and how to choose.
        let err = p.select(Kind::BackupRole, None).unwrap_err();
        assert!(
            err.contains("123456789012, 210987654321") && err.contains("--in-account"),
            "{err}"
        );
        assert!(p.select(Kind::BackupRole, Some(SOURCE)).is_ok());
        let err = p.select(Kind::VaultKeyPolicy, None).unwrap_err();
        assert!(err.contains("--in-account"), "{err}");
        let err = p.select(Kind::KeyPolicy, Some(SOURCE)).unwrap_err();
        assert_eq!(err, "the plan has no key-policy document in account 123456789012");
        let err = p.select(Kind::Operator, Some("999999999999")).unwrap_err();
        assert!(err.contains("999999999999 is none of the plan's (123456789012, 210987654321)"));
        // Several in one account.
        let mut two = cross_account_plan();
        two.targets[1].account_id = Some(RECOVERY.to_owned());
        two.targets[1].kms_key_arn =
            format!("arn:aws:kms:eu-west-1:{RECOVERY}:key/mrk-0123456789abcdef0123456789abcdef");
        let p = per_account(&two, Some(SOURCE));
        let err = p.select(Kind::VaultAccessPolicy, Some(RECOVERY)).unwrap_err();
        assert!(
            err.starts_with("account 210987654321 has 2 vault-access-policy documents"),
            "{err}"
        );
        // No role named: the operator has no policy of its own.
        let mut none = load(FULL_PLAN);
        none.targets[0].iam_role_arn = Some("arn:aws:iam::123456789012:role/other".to_owned());
        let p = per_account(&none, None);
        assert!(p.operator.is_none());
        assert!(p.select(Kind::Operator, None).unwrap_err().contains("--in-account"));
    }

    #[test]
    fn map_gives_identity_policies_and_keeps_resource_policies() {
        let p = per_account(&cross_account_plan(), Some(SOURCE));
        let mut names = Vec::new();
        let sizes = p
            .map(&mut |name, doc| {
                names.push(name.to_owned());
                Ok::<usize, ()>(doc.size())
            })
            .unwrap();
        assert_eq!(
            names,
            [
                "operator",
                "account 123456789012 operator",
                "arn:aws:iam::123456789012:role/drover-backup backup role",
                "arn:aws:iam::123456789012:role/drover-backup trust",
                "account 210987654321 operator",
                "arn:aws:iam::210987654321:role/drover-recovery trust",
                "arn:aws:iam::210987654321:role/drover-restore backup role",
                "arn:aws:iam::210987654321:role/drover-restore trust",
            ]
        );
        let recovery = sizes.accounts.get(RECOVERY).unwrap();
        assert_eq!(recovery.vault_access_policies, account(&p, RECOVERY).vault_access_policies);
        assert_eq!(
            serde_json::to_value(&sizes).unwrap()["accounts"][RECOVERY]["operator"],
            json!(account(&p, RECOVERY).operator.as_ref().unwrap().size())
        );
        // The accounts keep the plan's order when printed.
        let text = serde_json::to_string(&p).unwrap();
        assert!(text.find(SOURCE).unwrap() < text.find(&format!("\"{RECOVERY}\":")).unwrap());
    }

    #[test]
    fn statements_added_for_the_operator_go_to_its_own_policy() {
        let state = super::super::state_statements("b", "p", None);
        let mut single = documents(&load(FULL_PLAN), SOURCE, None);
        single.add_operator_statements(state.clone());
        let Documents::Single(p) = &single else { panic!() };
        assert!(p.operator.statements.ends_with(&state));
        let mut cross = documents(&cross_account_plan(), SOURCE, None);
        cross.add_operator_statements(state.clone());
        let Documents::PerAccount(p) = &cross else { panic!() };
        assert_eq!(sids(p.operator.as_ref().unwrap())[0], "AssumePlanRoles");
        assert!(p.operator.as_ref().unwrap().statements.ends_with(&state));
        // A plan that names no role gets an operator policy for them.
        let mut none = load(FULL_PLAN);
        none.targets[0].iam_role_arn = Some("arn:aws:iam::123456789012:role/other".to_owned());
        let mut d = documents(&none, SOURCE, None);
        d.add_operator_statements(state.clone());
        let Documents::PerAccount(p) = &d else { panic!() };
        assert_eq!(p.operator.as_ref().unwrap().statements, state);
    }
}
