//! Least-privilege IAM policies for a plan (`drover iam-policy`): pure, no SDK calls.
//!
//! For a plan in one account that names no role for drover to assume ([`policies`]), three
//! documents, every resource scoped to the plan's ARNs:
//!
//! - the **operator** policy, for the principal that runs drover: exactly the actions of the
//!   SDK operations this crate calls (a unit test scans every other source file of the crate
//!   so that the two cannot drift), plus `iam:PassRole` on the backup role, which the
//!   `Start*Job` calls need, and what DynamoDB checks with the caller's permissions in a
//!   point-in-time restore (item reads and writes on the new table, the use of its key:
//!   `PITR_TARGET_ACTIONS`, `PITR_KEY_ACTIONS`);
//! - the **backup role** policy, for the role AWS Backup assumes (`iam_role_arn`): the DynamoDB,
//!   AWS Backup and KMS statements of the AWS managed policies
//!   `AWSBackupServiceRolePolicyForBackup` and `AWSBackupServiceRolePolicyForRestores`,
//!   narrowed to the plan's tables, vaults, regions and account;
//! - the backup role's **trust policy** for `backup.amazonaws.com`.
//!
//! A plan that puts targets in other accounts, or names roles, gets the documents of each
//! account instead ([`documents`], `accounts.rs`): the same statements split by the account
//! each piece of work is done in, the roles drover assumes and their trust, and the resource
//! policies copies across accounts need (destination vault access policies, key policy
//! statements).
//!
//! [`Documents::add_notify_statements`] adds those of drover's events and metrics
//! (`events:PutEvents`, `sns:Publish`, `cloudwatch:PutMetricData` in the namespace `Drover`),
//! only for what the plan's `notify:` and the flags use (`iam/notify.rs`).
//!
//! [`state_statements`] are the state store's (a bucket and prefix for runs' state, `S3Store`),
//! for the operator's policy when runs keep their state in S3.
//!
//! Action names and resource types follow the Service Authorization Reference (DynamoDB,
//! AWS Backup, AWS KMS, IAM, STS). Actions that AWS does not let a policy scope to a resource
//! (`backup:DescribeBackupJob`, `DescribeCopyJob`, `DescribeRestoreJob`,
//! `DescribeRegionSettings`, `DescribeGlobalSettings`, and `ListBackupJobs`, `ListCopyJobs`,
//! `ListRestoreJobs`, which find the job of an idempotent `Start*Job` replay that answers
//! without its id, and `dynamodb:ListTables`, which `drover sweep` reads) sit in one
//! statement, [`UNSCOPABLE_SID`], whose resource is `*`, held to the plan's regions by
//! `aws:RequestedRegion`. STS GetCallerIdentity needs no permission.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use drover_engine::state::DEFAULT_PITR_TEMPLATE;
use drover_plan::{Plan, Region, Table, Target};
use serde::{Serialize, Serializer};

mod accounts;
mod notify;

pub use accounts::{
    Account, BackupRole, Documents, InOrder, Kind, OPERATOR_ACCOUNT_PLACEHOLDER,
    OperatorAccountConflict, OperatorRole, PerAccount, Selected, documents,
    resolve_operator_account,
};
pub use notify::{NotifyUse, PUBLISH_SID, PUT_EVENTS_SID, PUT_METRICS_SID};

/// The IAM policy language version every document uses.
pub const POLICY_VERSION: &str = "2012-10-17";

/// The service principal of AWS Backup: the backup role must trust it.
pub const BACKUP_SERVICE_PRINCIPAL: &str = "backup.amazonaws.com";

/// The most characters (whitespace not counted) a customer managed policy may hold (IAM
/// quota; inline policies of a role share 10,240).
pub const MANAGED_POLICY_MAX_CHARS: usize = 6_144;

/// The Sid of the one statement whose resource is `*` (actions without resource-level
/// permissions).
pub const UNSCOPABLE_SID: &str = "NoResourceLevelPermissionsInPlanRegions";

/// The three documents a plan needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Policies {
    /// For the principal running drover.
    pub operator: PolicyDocument,
    /// Permissions of the role AWS Backup assumes (`iam_role_arn`).
    pub backup_role: PolicyDocument,
    /// Trust policy of that role.
    pub backup_role_trust: PolicyDocument,
}

/// An IAM policy document, serialized the way `aws iam create-policy` takes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PolicyDocument {
    /// Always [`POLICY_VERSION`].
    #[serde(rename = "Version")]
    pub version: &'static str,
    /// The statements, in a fixed order.
    #[serde(rename = "Statement")]
    pub statements: Vec<Statement>,
}

impl PolicyDocument {
    /// Its size as IAM counts it against [`MANAGED_POLICY_MAX_CHARS`]: characters of the JSON
    /// text, whitespace not counted.
    #[must_use]
    pub fn size(&self) -> usize {
        serde_json::to_string(self)
            .map_or(usize::MAX, |json| json.chars().filter(|c| !c.is_whitespace()).count())
    }

    /// The same permissions as documents of at most `max` characters each ([`Self::size`]),
    /// for attaching as several managed policies: statements are packed in order, and a
    /// statement too large on its own is cut into parts by its resources (each part keeps the
    /// actions and conditions; its Sid gets the part number). A document that fits is
    /// returned as it is.
    ///
    /// # Errors
    /// The Sid of a statement that exceeds `max` even with a single resource.
    pub fn split(&self, max: usize) -> Result<Vec<PolicyDocument>, TooLarge> {
        if self.size() <= max {
            return Ok(vec![self.clone()]);
        }
        let doc = |statements| PolicyDocument { version: self.version, statements };
        let fits = |statement: &Statement| doc(vec![statement.clone()]).size() <= max;
        let mut parts: Vec<Statement> = Vec::new();
        for statement in &self.statements {
            if fits(statement) {
                parts.push(statement.clone());
                continue;
            }
            let mut cut: Vec<Statement> = Vec::new();
            for resource in &statement.resources {
                if let Some(last) = cut.last_mut() {
                    last.resources.push(resource.clone());
                    if fits(last) {
                        continue;
                    }
                    last.resources.pop();
                }
                let part = Statement {
                    sid: Cow::Owned(format!("{}Part{}", statement.sid, cut.len() + 1)),
                    resources: vec![resource.clone()],
                    ..statement.clone()
                };
                if !fits(&part) {
                    return Err(TooLarge { sid: statement.sid.to_string(), max });
                }
                cut.push(part);
            }
            parts.extend(cut);
        }
        let mut docs: Vec<PolicyDocument> = Vec::new();
        for statement in parts {
            if let Some(last) = docs.last_mut() {
                last.statements.push(statement.clone());
                if last.size() <= max {
                    continue;
                }
                last.statements.pop();
            }
            docs.push(doc(vec![statement]));
        }
        Ok(docs)
    }
}

/// A statement that no split brings under the size limit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("statement {sid} exceeds {max} characters even with a single resource")]
pub struct TooLarge {
    /// The statement's Sid.
    pub sid: String,
    /// The limit it exceeds.
    pub max: usize,
}

/// One `Allow` statement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Statement {
    /// What the statement is for (alphanumeric, as IAM requires).
    #[serde(rename = "Sid")]
    pub sid: Cow<'static, str>,
    /// Always `Allow`.
    #[serde(rename = "Effect")]
    pub effect: &'static str,
    /// Trust and resource policies only: who the statement is for (`Service`, `AWS`) and
    /// their names or ARNs.
    #[serde(rename = "Principal", skip_serializing_if = "Option::is_none")]
    pub principal: Option<BTreeMap<&'static str, Values>>,
    /// Actions, sorted.
    #[serde(rename = "Action")]
    pub actions: Vec<String>,
    /// Resource ARNs (or patterns), sorted; empty only in trust policies.
    #[serde(rename = "Resource", skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<String>,
    /// Condition operator to condition key to values.
    #[serde(rename = "Condition", skip_serializing_if = "BTreeMap::is_empty")]
    pub condition: BTreeMap<&'static str, BTreeMap<&'static str, Values>>,
}

/// Condition values: one is written as a string, several as a sorted list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Values(pub Vec<String>);

impl Serialize for Values {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0.as_slice() {
            [one] => s.serialize_str(one),
            many => many.serialize(s),
        }
    }
}

impl Statement {
    fn allow(
        sid: &'static str,
        actions: &[&str],
        resources: impl IntoIterator<Item = String>,
    ) -> Statement {
        let actions: BTreeSet<String> = actions.iter().map(|a| (*a).to_owned()).collect();
        let resources: BTreeSet<String> = resources.into_iter().collect();
        Statement {
            sid: Cow::Borrowed(sid),
            effect: "Allow",
            principal: None,
            actions: actions.into_iter().collect(),
            resources: resources.into_iter().collect(),
            condition: BTreeMap::new(),
        }
    }

    /// The statement for these principals (trust and resource policies), sorted.
    fn to(mut self, kind: &'static str, principals: impl IntoIterator<Item = String>) -> Statement {
        let principals: BTreeSet<String> = principals.into_iter().collect();
        self.principal
            .get_or_insert_with(BTreeMap::new)
            .insert(kind, Values(principals.into_iter().collect()));
        self
    }

    fn when(
        mut self,
        operator: &'static str,
        key: &'static str,
        values: impl IntoIterator<Item = String>,
    ) -> Statement {
        let values: BTreeSet<String> = values.into_iter().collect();
        self.condition
            .entry(operator)
            .or_default()
            .insert(key, Values(values.into_iter().collect()));
        self
    }
}

/// Collects statements, dropping those that end up without a resource (a feature the plan
/// does not use).
struct Builder(Vec<Statement>);

impl Builder {
    fn push(&mut self, statement: Statement) {
        if !statement.resources.is_empty() {
            self.0.push(statement);
        }
    }

    fn finish(self) -> PolicyDocument {
        PolicyDocument { version: POLICY_VERSION, statements: self.0 }
    }
}

/// Why no account id could be settled on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccountIdError {
    /// `--account-id` disagrees with the plan's `source.account_id`.
    Conflict {
        /// The plan's `source.account_id`.
        plan: String,
        /// The account id given on the command line.
        given: String,
    },
    /// The plan does not pin an account and its ARNs name several (or none).
    Unknown {
        /// The accounts the role and KMS key ARNs name.
        accounts: Vec<String>,
    },
}

impl fmt::Display for AccountIdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AccountIdError::Conflict { plan, given } => write!(
                f,
                "--account-id {given} disagrees with the plan's `source.account_id` ({plan})"
            ),
            AccountIdError::Unknown { accounts } if accounts.is_empty() => {
                f.write_str("the plan names no AWS account: pass --account-id")
            }
            AccountIdError::Unknown { accounts } => write!(
                f,
                "the plan does not pin `source.account_id` and its role and KMS key ARNs name \
                 different accounts ({}): pass --account-id",
                accounts.join(", ")
            ),
        }
    }
}

impl std::error::Error for AccountIdError {}

/// Checks an account id: 12 digits.
///
/// # Errors
/// A message saying what is wrong.
pub fn check_account_id(s: &str) -> Result<String, String> {
    if s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit()) {
        Ok(s.to_owned())
    } else {
        Err(format!("`{s}` is not an AWS account id: expected 12 digits"))
    }
}

/// The account the plan's resources live in (its source account): the plan's
/// `source.account_id`, else `given` (`--account-id`), else the account every role and KMS key
/// ARN of the source account names (the plan's `iam_role_arn`, `source.role`, and the keys of
/// the targets that name no account of their own).
///
/// # Errors
/// [`AccountIdError`] when `given` contradicts the plan, or when nothing settles the account.
pub fn resolve_account_id(plan: &Plan, given: Option<&str>) -> Result<String, AccountIdError> {
    match (&plan.source.account_id, given) {
        (Some(pinned), Some(given)) if pinned != given => {
            Err(AccountIdError::Conflict { plan: pinned.clone(), given: given.to_owned() })
        }
        (Some(pinned), _) => Ok(pinned.clone()),
        (None, Some(given)) => Ok(given.to_owned()),
        (None, None) => {
            let accounts: BTreeSet<&str> = std::iter::once(plan.iam_role_arn.as_str())
                .chain(plan.source.role.iter().map(|r| r.role_arn.as_str()))
                .chain(
                    plan.targets
                        .iter()
                        .filter(|t| own_account(t).is_none())
                        .map(|t| t.kms_key_arn.as_str()),
                )
                .filter_map(arn_account)
                .collect();
            match accounts.iter().collect::<Vec<_>>().as_slice() {
                [one] => Ok((**one).to_owned()),
                _ => Err(AccountIdError::Unknown {
                    accounts: accounts.iter().map(|a| (*a).to_owned()).collect(),
                }),
            }
        }
    }
}

fn arn_account(arn: &str) -> Option<&str> {
    arn.split(':').nth(4).filter(|a| !a.is_empty())
}

/// The account a target names for itself: its `account_id`, else its role's. `None`: the
/// source account.
fn own_account(t: &Target) -> Option<&str> {
    t.account_id
        .as_deref()
        .or_else(|| t.role.as_ref().and_then(|r| arn_account(&r.role_arn)))
        .filter(|a| !a.is_empty())
}

/// The DNS suffix of a partition (from the SDK's partition table), for `kms:ViaService`
/// values; `None` for partitions drover does not know it for.
fn dns_suffix(partition: &str) -> Option<&'static str> {
    match partition {
        "aws" | "aws-us-gov" => Some("amazonaws.com"),
        "aws-cn" => Some("amazonaws.com.cn"),
        "aws-iso" => Some("c2s.ic.gov"),
        "aws-iso-b" => Some("sc2s.sgov.gov"),
        _ => None,
    }
}

/// `kms:ViaService` values for `service` in `regions`, with the condition operator they need
/// (`StringLike` when a partition's DNS suffix is unknown).
fn via<'r>(
    service: &str,
    regions: impl IntoIterator<Item = &'r Region>,
) -> (&'static str, Vec<String>) {
    let mut like = false;
    let values: Vec<String> = regions
        .into_iter()
        .map(|r| match dns_suffix(r.partition()) {
            Some(suffix) => format!("{service}.{r}.{suffix}"),
            None => {
                like = true;
                format!("{service}.{r}.*")
            }
        })
        .collect();
    (if like { "StringLike" } else { "StringEquals" }, values)
}

/// ARNs of the plan's resources: each region's in the account it is in (the source region in
/// the source account, each target's in the target's account).
struct Arns<'a> {
    plan: &'a Plan,
    /// The source account ([`resolve_account_id`]).
    account: &'a str,
}

/// The part of a plan a document covers: the source's work (backups, copies, drill markers),
/// some targets' (restores and restored tables), or both.
struct Scope<'a> {
    /// The source's work.
    source: bool,
    /// The targets whose work it covers, in plan order.
    targets: Vec<&'a Target>,
    /// Whether preflight checks the plan's accounts (a plan that names a role or puts a target
    /// in another account): it then reads every target key's policy.
    checks_accounts: bool,
}

impl<'a> Scope<'a> {
    /// The whole plan, in one account.
    fn all(plan: &'a Plan) -> Scope<'a> {
        Scope { source: true, targets: plan.targets.iter().collect(), checks_accounts: false }
    }

    fn target_regions(&self) -> BTreeSet<&'a Region> {
        self.targets.iter().map(|t| &t.region).collect()
    }
}

impl<'a> Arns<'a> {
    /// The account `t` is in.
    fn account_of(&self, t: &'a Target) -> &'a str {
        own_account(t).unwrap_or(self.account)
    }

    /// The account `region` is in (the source's or a target's).
    fn account_in(&self, region: &Region) -> &'a str {
        self.plan.target(region).map_or(self.account, |t| self.account_of(t))
    }

    /// Whether copies into `t` cross accounts.
    fn crosses(&self, t: &Target) -> bool {
        own_account(t).is_some_and(|a| a != self.account)
    }

    fn partition(&self) -> &'static str {
        self.source().partition()
    }

    /// The root principal of an account (the account, delegating to its IAM policies).
    fn root(&self, account: &str) -> String {
        format!("arn:{}:iam::{account}:root", self.partition())
    }

    fn table(&self, region: &Region, name: &str) -> String {
        format!(
            "arn:{}:dynamodb:{region}:{}:table/{name}",
            region.partition(),
            self.account_in(region)
        )
    }

    fn vault(&self, region: &Region, vault: &str) -> String {
        format!(
            "arn:{}:backup:{region}:{}:backup-vault:{vault}",
            region.partition(),
            self.account_in(region)
        )
    }

    fn source_vault(&self) -> String {
        self.vault(self.source(), &self.plan.source.backup_vault)
    }

    fn target_vault(&self, t: &Target) -> String {
        self.vault(&t.region, &t.backup_vault)
    }

    /// Recovery points of a region: AWS Backup names them by an opaque id, so they cannot be
    /// scoped further (copies get new ids in the destination region).
    fn recovery_points(&self, region: &Region) -> String {
        format!(
            "arn:{}:backup:{region}:{}:recovery-point:*",
            region.partition(),
            self.account_in(region)
        )
    }

    /// Every KMS key of the region's account in a region (for keys the plan does not name:
    /// the source tables' keys and the vaults' keys).
    fn keys(&self, region: &Region) -> String {
        format!("arn:{}:kms:{region}:{}:key/*", region.partition(), self.account_in(region))
    }

    fn source(&self) -> &'a Region {
        &self.plan.source.region
    }

    /// The regions of a scope's work: the source region with the source's, and the targets'.
    fn scope_regions(&self, scope: &Scope<'a>) -> BTreeSet<&'a Region> {
        scope.source.then(|| self.source()).into_iter().chain(scope.target_regions()).collect()
    }

    /// The source-region ARNs of the tables named.
    fn source_tables<'t>(&self, tables: impl IntoIterator<Item = &'t str>) -> Vec<String> {
        tables.into_iter().map(|name| self.table(self.source(), name)).collect()
    }

    /// The names a table gets in each of its targets among `regions`: its own (failover) and
    /// the drill template with `{run}` as `*`.
    fn restored(
        &self,
        t: &Table,
        regions: &BTreeSet<&Region>,
        failover: bool,
        drill: bool,
    ) -> Vec<String> {
        let mut out = Vec::new();
        for region in t.targets.iter().filter(|r| regions.contains(r)) {
            if failover {
                out.push(self.table(region, &t.name));
            }
            if drill {
                out.push(self.table(region, &self.plan.drill.table_name(&t.name, "*", region)));
            }
        }
        out
    }

    fn restored_all(
        &self,
        regions: &BTreeSet<&Region>,
        failover: bool,
        drill: bool,
    ) -> Vec<String> {
        self.plan.tables.iter().flat_map(|t| self.restored(t, regions, failover, drill)).collect()
    }

    /// The names `drover recover`'s default template ([`DEFAULT_PITR_TEMPLATE`], `{time}` as
    /// `*`) gives a table in `region`.
    fn pitr_default(&self, t: &Table, region: &Region) -> String {
        let name = DEFAULT_PITR_TEMPLATE
            .replace("{table}", &t.name)
            .replace("{time}", "*")
            .replace("{run}", "*")
            .replace("{region}", region.as_str());
        self.table(region, &name)
    }

    /// The tables a point-in-time restore may create: in each of `regions` (targets in the
    /// source account) the default template's names, the plan's own (`--names-from-plan`) and
    /// the drill's (`drill --pitr`), and with `into_source` the default template's names in the
    /// source region (`--into-source`). `template_only`: the default template's names alone.
    fn pitr_restored(
        &self,
        regions: &BTreeSet<&Region>,
        into_source: bool,
        template_only: bool,
    ) -> Vec<String> {
        let mut out = Vec::new();
        for t in &self.plan.tables {
            for region in t.targets.iter().filter(|r| regions.contains(r)) {
                out.push(self.pitr_default(t, region));
            }
            if !template_only {
                out.extend(self.restored(t, regions, true, true));
            }
            if into_source {
                out.push(self.pitr_default(t, self.source()));
            }
        }
        out
    }

    /// The drill names of every table in the source region (`{run}` as `*`): `drover sweep`
    /// also looks there, for drill tables left from before the plan's regions were swapped.
    fn source_drill_names(&self) -> Vec<String> {
        let src = self.source();
        self.plan
            .tables
            .iter()
            .map(|t| self.table(src, &self.plan.drill.table_name(&t.name, "*", src)))
            .collect()
    }

    /// `kms:ViaService` values for DynamoDB in `regions`, with the condition operator they
    /// need (`StringLike` when a partition's DNS suffix is unknown).
    fn via_dynamodb<'r>(
        &self,
        regions: impl IntoIterator<Item = &'r Region>,
    ) -> (&'static str, Vec<String>) {
        via("dynamodb", regions)
    }

    /// `keys(region)` for each region, plus the key of each target in those regions when
    /// that pattern does not cover it (a key in another account).
    fn key_patterns(&self, regions: &BTreeSet<&Region>) -> Vec<String> {
        let mut out: Vec<String> = regions.iter().map(|r| self.keys(r)).collect();
        for t in self.plan.targets.iter().filter(|t| regions.contains(&t.region)) {
            if arn_account(&t.kms_key_arn) != Some(self.account_in(&t.region)) {
                out.push(t.kms_key_arn.clone());
            }
        }
        out
    }
}

/// DynamoDB reads of a table's description, settings and tags (`describe_table`).
const DESCRIBE_TABLE: &[&str] = &[
    "dynamodb:DescribeContinuousBackups",
    "dynamodb:DescribeTable",
    "dynamodb:DescribeTimeToLive",
    "dynamodb:ListTagsOfResource",
];

/// What DynamoDB does with a restored table's key, and AWS Backup with a vault's key, in a
/// restore (`AWSBackupServiceRolePolicyForRestores`, `KMSPermissions`).
const RESTORE_KEY_ACTIONS: &[&str] = &[
    "kms:Decrypt",
    "kms:DescribeKey",
    "kms:Encrypt",
    "kms:GenerateDataKey",
    "kms:GenerateDataKeyWithoutPlaintext",
    "kms:ReEncryptFrom",
    "kms:ReEncryptTo",
];

/// What DynamoDB checks on the new table of a point-in-time restore, with the caller's
/// permissions ("RestoreTableToPointInTime permissions are necessary on the source table, and
/// DynamoDB read and write permissions on the target table are necessary for restore
/// functionality", DynamoDB Developer Guide, `backuprestore_IAM.html`): not SDK calls of
/// drover's.
pub(crate) const PITR_TARGET_ACTIONS: &[&str] = &[
    "dynamodb:BatchWriteItem",
    "dynamodb:DeleteItem",
    "dynamodb:GetItem",
    "dynamodb:PutItem",
    "dynamodb:Query",
    "dynamodb:Scan",
    "dynamodb:UpdateItem",
];

/// What DynamoDB does with a customer managed key on behalf of the principal that restores a
/// table under it (the target key of `SSESpecificationOverride`, or the source table's key
/// beside the source): the permissions "Authorizing use of your customer managed key" (AWS KMS
/// Developer Guide, `services-dynamodb.html`) lists, `kms:ReEncrypt*` and
/// `kms:GenerateDataKey*` spelled out as in [`RESTORE_KEY_ACTIONS`]; held to DynamoDB by
/// `kms:ViaService`.
pub(crate) const PITR_KEY_ACTIONS: &[&str] = &[
    "kms:CreateGrant",
    "kms:Decrypt",
    "kms:DescribeKey",
    "kms:Encrypt",
    "kms:GenerateDataKey",
    "kms:GenerateDataKeyWithoutPlaintext",
    "kms:ReEncryptFrom",
    "kms:ReEncryptTo",
];

/// The policies a run of `plan` needs, all in `account_id` (see [`resolve_account_id`]): a
/// plan whose targets are all in its source account and that names no role for drover to
/// assume. [`documents`] covers every plan.
#[must_use]
pub fn policies(plan: &Plan, account_id: &str) -> Policies {
    let arns = Arns { plan, account: account_id };
    let scope = Scope::all(plan);
    Policies {
        operator: operator(&arns, &scope),
        backup_role: backup_role(&arns, true, &scope.targets),
        backup_role_trust: backup_role_trust(),
    }
}

/// The operator's statements for a scope of the plan: what drover calls for the source's work
/// when `scope.source`, and for the targets' of `scope.targets`.
fn operator(a: &Arns<'_>, scope: &Scope<'_>) -> PolicyDocument {
    let plan = a.plan;
    let src = scope.source;
    let names = || plan.tables.iter().filter(|_| src).map(|t| t.name.as_str());
    let here = scope.target_regions();
    let regions = a.scope_regions(scope);
    let crossing: Vec<&Target> = scope.targets.iter().copied().filter(|t| a.crosses(t)).collect();
    let copies_cross = src && plan.targets.iter().any(|t| a.crosses(t));
    let mut b = Builder(Vec::new());

    // Source region: preflight, backups, estimates, drill validation.
    b.push(Statement::allow("ReadSourceTables", DESCRIBE_TABLE, a.source_tables(names())));
    b.push(Statement::allow(
        "DigestSourceTablesBeforeBackup",
        &["dynamodb:Scan"],
        a.source_tables(
            plan.tables.iter().filter(|t| src && t.validate.digest).map(|t| t.name.as_str()),
        ),
    ));
    if plan.drill.write_marker {
        b.push(Statement::allow(
            "WriteAndRemoveDrillMarkers",
            &["dynamodb:DeleteItem", "dynamodb:PutItem"],
            a.source_tables(names()),
        ));
    }
    b.push(Statement::allow(
        "StartBackupsIntoSourceVault",
        &["backup:StartBackupJob"],
        src.then(|| a.source_vault()),
    ));
    b.push(Statement::allow(
        "CopySourceRecoveryPoints",
        &["backup:StartCopyJob"],
        src.then(|| a.recovery_points(a.source())),
    ));
    b.push(Statement::allow(
        "ReadVaultsAndRecoveryPoints",
        &["backup:DescribeBackupVault", "backup:ListRecoveryPointsByBackupVault"],
        src.then(|| a.source_vault())
            .into_iter()
            .chain(scope.targets.iter().map(|t| a.target_vault(t))),
    ));
    // Preflight of a copy into another account: the destination vault must let the source
    // account copy into it.
    b.push(Statement::allow(
        "ReadDestinationVaultAccessPolicies",
        &["backup:GetBackupVaultAccessPolicy"],
        crossing.iter().map(|t| a.target_vault(t)),
    ));

    // Drill teardown deletes the drill's recovery points (source and copies), and only
    // those: the points drover tags as a drill's of this plan.
    b.push(
        Statement::allow(
            "DeleteDrillRecoveryPoints",
            &["backup:DeleteRecoveryPoint"],
            regions.iter().map(|r| a.recovery_points(r)),
        )
        .when("StringEquals", "aws:ResourceTag/drover:mode", ["drill".to_owned()])
        .when("StringEquals", "aws:ResourceTag/drover:plan", [plan.name.clone()]),
    );
    // `drover sweep` reads the tags of the plan's tables' recovery points to find a drill's
    // (ListTags takes no resource-tag condition keys).
    b.push(Statement::allow(
        "ReadRecoveryPointTags",
        &["backup:ListTags"],
        regions.iter().map(|r| a.recovery_points(r)),
    ));

    // Target regions: restores from the target vaults, then the restored tables.
    b.push(Statement::allow(
        "RestoreFromTargetVaults",
        &["backup:StartRestoreJob"],
        here.iter().map(|r| a.recovery_points(r)),
    ));
    b.push(Statement::allow(
        "DescribeTargetKeys",
        &["kms:DescribeKey"],
        scope.targets.iter().map(|t| t.kms_key_arn.clone()),
    ));
    // Preflight of a plan that spans accounts: the keys of the vaults a copy into another
    // account goes between (customer managed, the source vault's shared with the destination
    // account; the plan does not name them, DescribeBackupVault does), and the policy of each
    // target's key (its restore role may use it).
    let mut vault_key_regions: BTreeSet<&Region> = crossing.iter().map(|t| &t.region).collect();
    if copies_cross {
        vault_key_regions.insert(a.source());
    }
    let mut keys = a.key_patterns(&vault_key_regions);
    if scope.checks_accounts {
        for t in &scope.targets {
            let covered = vault_key_regions.contains(&t.region)
                && arn_account(&t.kms_key_arn) == Some(a.account_in(&t.region));
            if !covered {
                keys.push(t.kms_key_arn.clone());
            }
        }
    }
    b.push(Statement::allow(
        "ReadKeysForAccountChecks",
        &["kms:DescribeKey", "kms:GetKeyPolicy"],
        keys,
    ));
    // One statement for the reads and the settings of restored tables: same resources, and
    // the policy stays smaller.
    let mut configure = DESCRIBE_TABLE.to_vec();
    configure.extend([
        "dynamodb:Scan",
        "dynamodb:TagResource",
        "dynamodb:UpdateContinuousBackups",
        "dynamodb:UpdateTable",
        "dynamodb:UpdateTimeToLive",
    ]);
    // Point-in-time restores (`drover recover`, `drill --pitr`) stay in their account: into
    // the targets in the source account, and beside the source (`--into-source`). DynamoDB
    // checks the item reads and writes of the new tables against the caller's permissions.
    let pitr_here: BTreeSet<&Region> =
        scope.targets.iter().filter(|t| !a.crosses(t)).map(|t| &t.region).collect();
    let mut restored_tables = a.restored_all(&here, true, true);
    restored_tables.extend(a.pitr_restored(&pitr_here, src, true));
    let mut canaries: Vec<String> = plan
        .tables
        .iter()
        .filter(|t| !t.validate.canary_keys.is_empty())
        .flat_map(|t| a.restored(t, &here, true, true))
        .collect();
    if plan.drill.write_marker {
        canaries.extend(a.restored_all(&here, false, true));
    }
    if pitr_here == here {
        // Every restored table of the scope may be a point-in-time restore's: one statement,
        // whose `GetItem` also reads the canaries and markers.
        configure.extend(PITR_TARGET_ACTIONS);
        b.push(Statement::allow("ConfigureAndValidateRestoredTables", &configure, restored_tables));
    } else {
        b.push(Statement::allow("ConfigureAndValidateRestoredTables", &configure, restored_tables));
        b.push(Statement::allow("ReadCanaryItems", &["dynamodb:GetItem"], canaries));
        b.push(Statement::allow(
            "WriteItemsOfPointInTimeRestores",
            PITR_TARGET_ACTIONS,
            a.pitr_restored(&pitr_here, src, false),
        ));
    }
    b.push(Statement::allow(
        "TearDownDrillTables",
        &["dynamodb:DeleteTable"],
        a.restored_all(&here, false, true),
    ));
    // `drover sweep` in the source region: drill names only (the target regions' are above).
    b.push(Statement::allow(
        "SweepDrillNamesInSourceRegion",
        &[
            "dynamodb:DeleteTable",
            "dynamodb:DescribeTable",
            "dynamodb:ListTagsOfResource",
            "dynamodb:UpdateTable",
        ],
        if src { a.source_drill_names() } else { Vec::new() },
    ));

    b.push(Statement::allow(
        "RestoreSourceTablesToPointInTime",
        &["dynamodb:RestoreTableToPointInTime"],
        a.source_tables(names()),
    ));
    // The key of each new table: the target's (the SSE override), or beside the source the
    // source table's (the plan does not name it: the account's keys in the source region).
    let mut pitr_keys: Vec<String> =
        scope.targets.iter().filter(|t| !a.crosses(t)).map(|t| t.kms_key_arn.clone()).collect();
    let mut pitr_key_regions = pitr_here.clone();
    if src {
        pitr_keys.push(a.keys(a.source()));
        pitr_key_regions.insert(a.source());
    }
    let (op, via) = a.via_dynamodb(pitr_key_regions.iter().copied());
    b.push(
        Statement::allow(
            "UseKeysThroughDynamoDBForPointInTimeRestores",
            PITR_KEY_ACTIONS,
            pitr_keys,
        )
        .when(op, "kms:ViaService", via),
    );

    // The backup role of the source's jobs, the restore roles of the targets'.
    b.push(
        Statement::allow(
            "PassBackupRoleToAwsBackup",
            &["iam:PassRole"],
            src.then(|| plan.iam_role_arn.clone())
                .into_iter()
                .chain(scope.targets.iter().map(|t| plan.restore_role(t).to_owned())),
        )
        .when("StringEquals", "iam:PassedToService", [BACKUP_SERVICE_PRINCIPAL.to_owned()]),
    );
    let mut unscopable: Vec<&str> = Vec::new();
    if src {
        unscopable.extend([
            "backup:DescribeBackupJob",
            "backup:DescribeCopyJob",
            "backup:DescribeRegionSettings",
            // Finding the job of a `Start*Job` replay that names none (`jobs.rs`).
            "backup:ListBackupJobs",
            "backup:ListCopyJobs",
        ]);
    }
    if !scope.targets.is_empty() {
        unscopable.extend(["backup:DescribeRestoreJob", "backup:ListRestoreJobs"]);
    }
    if copies_cross {
        // Preflight: the Organization must let its accounts copy backups to each other (read
        // in the source account).
        unscopable.push("backup:DescribeGlobalSettings");
    }
    // `drover sweep`: the tables of each region, to find drill names.
    unscopable.push("dynamodb:ListTables");
    b.push(Statement::allow(UNSCOPABLE_SID, &unscopable, ["*".to_owned()]).when(
        "StringEquals",
        "aws:RequestedRegion",
        regions.iter().map(|r| r.to_string()),
    ));
    b.finish()
}

/// The policy of an AWS Backup role: its backup and copy jobs when `source` (the plan's
/// `iam_role_arn`), and the restore jobs of `restores` (the targets whose restore role it is).
fn backup_role(a: &Arns<'_>, source: bool, restores: &[&Target]) -> PolicyDocument {
    let plan = a.plan;
    let names = || plan.tables.iter().filter(|_| source).map(|t| t.name.as_str());
    let restore_regions: BTreeSet<&Region> = restores.iter().map(|t| &t.region).collect();
    // Copies go to every target's vault; of those in another account, AWS Backup lets the
    // role do nothing but copy into the vault (the vault's access policy decides), and
    // re-encrypts the copy there itself: the role's other permissions stay in its account.
    let copies: Vec<&Target> = plan.targets.iter().filter(|_| source).collect();
    let local: Vec<&Target> = copies.iter().copied().filter(|t| !a.crosses(t)).collect();
    let mut regions: BTreeSet<&Region> = restore_regions.clone();
    if source {
        regions.insert(a.source());
        regions.extend(local.iter().map(|t| &t.region));
    }
    let mut b = Builder(Vec::new());

    // Backups of the source tables (AWSBackupServiceRolePolicyForBackup: DynamoDBPermissions,
    // DynamodbBackupPermissions, DynamoDBBackupResourcePermissions).
    b.push(Statement::allow(
        "BackUpSourceTables",
        &[
            "dynamodb:CreateBackup",
            "dynamodb:DescribeTable",
            "dynamodb:ListTagsOfResource",
            "dynamodb:StartAwsBackupJob",
        ],
        a.source_tables(names()),
    ));
    b.push(Statement::allow(
        "ManageNativeBackupsOfSourceTables",
        &["dynamodb:DeleteBackup", "dynamodb:DescribeBackup"],
        names().map(|n| format!("{}/backup/*", a.table(a.source(), n))),
    ));
    // Vaults and copies (BackupVaultPermissions, BackupVaultCopyPermissions,
    // RecoveryPointTaggingPermissions).
    b.push(Statement::allow(
        "DescribePlanVaults",
        &["backup:DescribeBackupVault"],
        source
            .then(|| a.source_vault())
            .into_iter()
            .chain(local.iter().chain(restores).map(|t| a.target_vault(t))),
    ));
    b.push(Statement::allow(
        "CopyIntoTargetVaults",
        &["backup:CopyIntoBackupVault"],
        copies.iter().map(|t| a.target_vault(t)),
    ));
    b.push(Statement::allow(
        "CopyFromSourceRecoveryPoints",
        &["backup:CopyFromBackupVault"],
        source.then(|| a.recovery_points(a.source())),
    ));
    b.push(Statement::allow(
        "TagRecoveryPoints",
        &["backup:TagResource"],
        source
            .then(|| a.source())
            .into_iter()
            .chain(local.iter().map(|t| &t.region))
            .map(|r| a.recovery_points(r)),
    ));
    // Restores (AWSBackupServiceRolePolicyForRestores: DynamoDBPermissions,
    // DynamoDBRestorePermissions).
    b.push(Statement::allow(
        "RestoreIntoPlanTableNames",
        &[
            "dynamodb:BatchWriteItem",
            "dynamodb:DeleteItem",
            "dynamodb:DescribeTable",
            "dynamodb:GetItem",
            "dynamodb:PutItem",
            "dynamodb:Query",
            "dynamodb:RestoreTableFromAwsBackup",
            "dynamodb:Scan",
            "dynamodb:UpdateItem",
        ],
        a.restored_all(&restore_regions, true, true),
    ));
    // KMS (KMSDynamoDBPermissions, KMSPermissions, KMSDescribePermissions,
    // KMSCreateGrantPermissions): the source tables' and the vaults' keys are not in the plan,
    // so these are held to the account and the plan's regions.
    if source {
        let (op, via) = a.via_dynamodb([a.source()]);
        b.push(
            Statement::allow(
                "UseSourceTableKeysThroughDynamoDB",
                &["kms:Decrypt", "kms:GenerateDataKey"],
                [a.keys(a.source())],
            )
            .when(op, "kms:ViaService", via),
        );
    }
    if !restores.is_empty() {
        let (op, via) = a.via_dynamodb(restore_regions.iter().copied());
        b.push(
            Statement::allow(
                "UseTargetKeysThroughDynamoDBForRestores",
                RESTORE_KEY_ACTIONS,
                a.key_patterns(&restore_regions),
            )
            .when(op, "kms:ViaService", via),
        );
    }
    b.push(Statement::allow(
        "DescribeVaultAndTableKeys",
        &["kms:DescribeKey"],
        a.key_patterns(&regions),
    ));
    b.push(
        Statement::allow(
            "GrantKeysToAwsResourcesOnly",
            &["kms:CreateGrant"],
            a.key_patterns(&regions),
        )
        .when("Bool", "kms:GrantIsForAWSResource", ["true".to_owned()]),
    );
    b.finish()
}

/// The statements the state store ([`crate::S3Store`]) needs on `bucket` under `prefix`
/// (empty: the whole bucket), for the principal that runs drover, to add to its policy:
///
/// - `s3:GetObject`, `s3:PutObject`, `s3:DeleteObject` on the prefix's objects;
/// - `s3:ListBucket` on the bucket, held to the prefix by `s3:prefix` (ListObjectsV2 lists
///   `prefix/...`; HeadBucket, which needs the same action without a prefix, is then denied,
///   and the store asks GetBucketLocation for the region instead);
/// - `s3:GetBucketLocation`, `s3:GetBucketVersioning`, `s3:GetEncryptionConfiguration` on the
///   bucket (the region, and preflight's facts);
/// - with `kms_key` (the key's ARN: IAM scopes KMS permissions by key ARN, not alias):
///   `kms:GenerateDataKey` (writes) and `kms:Decrypt` (reads) on it, through S3 only
///   (`kms:ViaService` in the key's region).
///
/// ARNs are in the key's partition, `aws` without a key.
#[must_use]
pub fn state_statements(bucket: &str, prefix: &str, kms_key: Option<&str>) -> Vec<Statement> {
    let prefix = prefix.trim_matches('/');
    let key_arn = kms_key.and_then(|k| {
        let parts: Vec<&str> = k.splitn(6, ':').collect();
        match parts[..] {
            ["arn", partition, "kms", region, _, _] => Some((partition, region)),
            _ => None,
        }
    });
    let partition = key_arn.map_or("aws", |(partition, _)| partition);
    let bucket_arn = format!("arn:{partition}:s3:::{bucket}");
    let objects = if prefix.is_empty() {
        format!("{bucket_arn}/*")
    } else {
        format!("{bucket_arn}/{prefix}/*")
    };
    let mut b = Builder(Vec::new());
    b.push(Statement::allow(
        "ReadAndWriteRunState",
        &["s3:DeleteObject", "s3:GetObject", "s3:PutObject"],
        [objects],
    ));
    let list = Statement::allow("ListRunState", &["s3:ListBucket"], [bucket_arn.clone()]);
    b.push(if prefix.is_empty() {
        list
    } else {
        list.when("StringLike", "s3:prefix", [format!("{prefix}/*"), format!("{prefix}/")])
    });
    b.push(Statement::allow(
        "ReadStateBucketSettings",
        &["s3:GetBucketLocation", "s3:GetBucketVersioning", "s3:GetEncryptionConfiguration"],
        [bucket_arn],
    ));
    if let Some(key) = kms_key {
        let encrypt = Statement::allow(
            "EncryptRunStateWithKey",
            &["kms:Decrypt", "kms:GenerateDataKey"],
            [key.to_owned()],
        );
        b.push(match key_arn {
            Some((partition, region)) => match dns_suffix(partition) {
                Some(suffix) => encrypt.when(
                    "StringEquals",
                    "kms:ViaService",
                    [format!("s3.{region}.{suffix}")],
                ),
                None => encrypt.when("StringLike", "kms:ViaService", [format!("s3.{region}.*")]),
            },
            None => encrypt,
        });
    }
    b.0
}

fn backup_role_trust() -> PolicyDocument {
    let statement = Statement::allow("AssumedByAwsBackup", &["sts:AssumeRole"], [])
        .to("Service", [BACKUP_SERVICE_PRINCIPAL.to_owned()]);
    PolicyDocument { version: POLICY_VERSION, statements: vec![statement] }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The adapter's source files, whose SDK calls the policy must follow: every `.rs` file
    /// under `src/` but this module's (`iam.rs`, `iam/`), as (path under `src/`, text), read
    /// when the test runs so that a new module cannot be left out.
    fn adapter_sources() -> Vec<(String, String)> {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut files = Vec::new();
        let mut dirs = vec![root.clone()];
        while let Some(dir) = dirs.pop() {
            let entries = std::fs::read_dir(&dir)
                .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()));
            for entry in entries {
                let path = entry.expect("a directory entry").path();
                if path == root.join("iam") {
                    continue;
                }
                if path.is_dir() {
                    dirs.push(path);
                } else if path.extension().is_some_and(|x| x == "rs") && path != root.join("iam.rs")
                {
                    let text = std::fs::read_to_string(&path)
                        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
                    let name = path.strip_prefix(&root).unwrap_or(&path).display().to_string();
                    files.push((name, text));
                }
            }
        }
        files.sort();
        files
    }

    pub(super) const FULL_PLAN: &str = r#"
version: 1
name: iam-test
source: {region: us-east-1, account_id: "123456789012", backup_vault: prod-vault}
iam_role_arn: arn:aws:iam::123456789012:role/drover-backup
targets:
  - region: us-west-2
    backup_vault: dr-usw2
    kms_key_arn: arn:aws:kms:us-west-2:123456789012:key/1111aaaa-22bb-33cc-44dd-555555eeeeee
  - region: eu-west-1
    backup_vault: dr-euw1
    kms_key_arn: arn:aws:kms:eu-west-1:123456789012:key/mrk-0123456789abcdef0123456789abcdef
tables:
  - name: customers
    validate: {digest: true, canary_keys: [{pk: "C#1"}]}
  - name: orders
    depends_on: [customers]
    targets: [us-west-2]
drill:
  table_name: "{table}-drill-{run}-{region}"
  write_marker: true
"#;

    pub(super) fn load(text: &str) -> Plan {
        let loaded = drover_plan::load("test.yaml", text.as_bytes());
        loaded.plan.unwrap_or_else(|| panic!("invalid test plan: {:?}", loaded.diagnostics))
    }

    /// The recovery account of [`cross_account_plan`].
    pub(super) const RECOVERY: &str = "210987654321";

    /// [`FULL_PLAN`] with its us-west-2 target in a recovery account: drover assumes
    /// `drover-recovery` there (with an external id, for two hours), restores with
    /// `drover-restore`, and encrypts with a key of that account. eu-west-1 stays in the
    /// source account.
    pub(super) fn cross_account_plan() -> Plan {
        let mut plan = load(FULL_PLAN);
        let t = &mut plan.targets[0];
        assert_eq!(t.region.as_str(), "us-west-2");
        t.account_id = Some(RECOVERY.to_owned());
        t.role = Some(drover_plan::AssumeRole {
            role_arn: format!("arn:aws:iam::{RECOVERY}:role/drover-recovery"),
            external_id: Some("drover-iam-test".to_owned()),
            session_duration: Some(std::time::Duration::from_secs(7_200)),
        });
        t.iam_role_arn = Some(format!("arn:aws:iam::{RECOVERY}:role/drover-restore"));
        t.kms_key_arn =
            format!("arn:aws:kms:us-west-2:{RECOVERY}:key/1111aaaa-22bb-33cc-44dd-555555eeeeee");
        plan
    }

    pub(super) fn actions(doc: &PolicyDocument) -> BTreeSet<String> {
        doc.statements.iter().flat_map(|s| s.actions.iter().cloned()).collect()
    }

    fn pascal(snake: &str) -> String {
        snake
            .split('_')
            .map(|w| {
                let mut c = w.chars();
                c.next()
                    .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                    .unwrap_or_default()
            })
            .collect()
    }

    /// Source text without `//` comments.
    fn code(src: &str) -> String {
        src.lines().map(|l| l.find("//").map_or(l, |i| &l[..i])).collect::<Vec<_>>().join("\n")
    }

    fn is_ident(b: u8) -> bool {
        b.is_ascii_alphanumeric() || b == b'_'
    }

    /// Walks a method chain back from the `.` of `.send()`: the first call of the chain (the
    /// operation) and what it is called on (a client field or a variable).
    fn chain_start(src: &[u8], dot: usize) -> Option<(String, String)> {
        let skip_ws = |mut i: usize| {
            while i > 0 && src[i - 1].is_ascii_whitespace() {
                i -= 1;
            }
            i
        };
        let ident_before = |end: usize| {
            let mut start = end;
            while start > 0 && is_ident(src[start - 1]) {
                start -= 1;
            }
            (start, String::from_utf8_lossy(&src[start..end]).into_owned())
        };
        let mut at = dot;
        let mut op = None;
        loop {
            let end = skip_ws(at);
            if end == 0 {
                return None;
            }
            if src[end - 1] == b')' {
                let mut depth = 0usize;
                let mut i = end;
                loop {
                    i -= 1;
                    match src[i] {
                        b')' => depth += 1,
                        b'(' => {
                            depth -= 1;
                            if depth == 0 {
                                break;
                            }
                        }
                        _ => {}
                    }
                    if i == 0 {
                        return None;
                    }
                }
                let (start, name) = ident_before(i);
                let before = skip_ws(start);
                if name.is_empty() || before == 0 || src[before - 1] != b'.' {
                    return None;
                }
                op = Some(name);
                at = before - 1;
            } else {
                let (_, receiver) = ident_before(end);
                return op.map(|op| (receiver, op));
            }
        }
    }

    /// The service of a client receiver: a field of `Clients`, a variable bound to one, or a
    /// parameter of an SDK client type (`ddb: &aws_sdk_dynamodb::Client`), in the same file.
    fn service_of(src: &str, receiver: &str) -> BTreeSet<&'static str> {
        const SERVICES: [&str; 8] =
            ["backup", "cloudwatch", "dynamodb", "events", "kms", "s3", "sns", "sts"];
        if let Some(s) = SERVICES.iter().find(|s| **s == receiver) {
            return BTreeSet::from([*s]);
        }
        let mut found = BTreeSet::new();
        let binding = format!("let {receiver} =");
        for (i, _) in src.match_indices(&binding) {
            let rest = &src[i..];
            let expr = &rest[..rest.find(';').unwrap_or(rest.len())];
            for s in SERVICES {
                let field = format!(".{s}");
                if expr.match_indices(&field).any(|(j, _)| {
                    expr.as_bytes().get(j + field.len()).is_none_or(|b| !is_ident(*b))
                }) {
                    found.insert(s);
                }
            }
        }
        let parameter = format!("{receiver}: ");
        for (i, _) in src.match_indices(&parameter) {
            if i > 0 && is_ident(src.as_bytes()[i - 1]) {
                continue;
            }
            let ty = src[i + parameter.len()..].trim_start_matches('&');
            for s in SERVICES {
                if ty.starts_with(&format!("aws_sdk_{s}::Client")) {
                    found.insert(s);
                }
            }
        }
        found
    }

    /// The IAM action of an SDK operation: `service:Operation`, but for the S3 operations
    /// whose action is named otherwise (Service Authorization Reference, Amazon S3).
    fn iam_action(service: &str, op: &str) -> String {
        let action = match (service, op) {
            ("s3", "ListObjectsV2" | "HeadBucket") => "ListBucket",
            ("s3", "GetBucketEncryption") => "GetEncryptionConfiguration",
            _ => op,
        };
        format!("{service}:{action}")
    }

    /// The state store's statements for a bucket, prefix and key like the CLI's.
    fn state() -> Vec<Statement> {
        let key = "arn:aws:kms:eu-west-1:123456789012:key/1111aaaa-22bb-33cc-44dd-555555eeeeee";
        state_statements("drover-state", "team/drover", Some(key))
    }

    /// Every SDK operation the adapter's source files send, as an IAM action
    /// (`dynamodb:DescribeTable`).
    fn sdk_actions() -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        let mut calls = 0;
        for (file, text) in adapter_sources() {
            let src = code(&text);
            let bytes = src.as_bytes();
            for (at, _) in src.match_indices(".send()") {
                calls += 1;
                let line = src[..at].lines().count();
                let (receiver, op) = chain_start(bytes, at).unwrap_or_else(|| {
                    panic!("{file}:{line}: cannot find the operation of this call")
                });
                let services = service_of(&src, &receiver);
                let [service] = services.iter().collect::<Vec<_>>()[..] else {
                    panic!(
                        "{file}:{line}: `{receiver}.{op}()` is not on one SDK client: {services:?}"
                    )
                };
                out.insert(iam_action(service, &pascal(&op)));
            }
        }
        assert!(calls >= 20, "found only {calls} `.send()` calls in the adapter's sources");
        out
    }

    #[test]
    fn the_scanner_reads_every_adapter_file() {
        let sdk = sdk_actions();
        for known in [
            "backup:StartCopyJob",
            "backup:ListRecoveryPointsByBackupVault",
            "backup:ListTags",
            "dynamodb:DescribeTable",
            "dynamodb:ListTables",
            "dynamodb:Scan",
            "kms:DescribeKey",
            "kms:GetKeyPolicy",
            "backup:GetBackupVaultAccessPolicy",
            "backup:DescribeGlobalSettings",
            "sts:GetCallerIdentity",
            "events:PutEvents",
            "sns:Publish",
            "cloudwatch:PutMetricData",
        ] {
            assert!(sdk.contains(known), "{known} not found in {sdk:?}");
        }
        let src = b"c.dynamodb\n  .delete_table()\n  .name(f(a))\n  .send()";
        let dot = src.len() - ".send()".len();
        assert_eq!(chain_start(src, dot), Some(("dynamodb".to_owned(), "delete_table".to_owned())));
        let params =
            "fn f(\n    ddb: &aws_sdk_dynamodb::Client,\n    xddb: aws_sdk_kms::Client,\n)";
        assert_eq!(service_of(params, "ddb"), BTreeSet::from(["dynamodb"]));
        assert_eq!(service_of(params, "xddb"), BTreeSet::from(["kms"]));
    }

    /// SDK operations that need no IAM permission (STS GetCallerIdentity: "No permissions
    /// are required to perform this operation", STS API reference).
    const NO_PERMISSION: &[&str] = &["sts:GetCallerIdentity"];

    /// SDK operations only a plan that copies into another account calls (preflight reads of
    /// the destination vault's access policy, the keys' policies, the Organization's setting).
    const CROSS_ACCOUNT_ONLY: &[&str] =
        &["backup:DescribeGlobalSettings", "backup:GetBackupVaultAccessPolicy", "kms:GetKeyPolicy"];

    /// SDK operations only a plan or flags that send events or metrics call.
    const NOTIFY_ONLY: &[&str] = &["cloudwatch:PutMetricData", "events:PutEvents", "sns:Publish"];

    /// Every channel and metrics: a bus by name in the source region, a bus ARN in
    /// eu-west-1, a topic in us-west-2 (the recovery account's, in [`cross_account_plan`]).
    pub(super) fn notify_everything(account: &str) -> NotifyUse {
        NotifyUse {
            channels: drover_engine::notify::Channels {
                event_buses: vec![
                    ("us-east-1".to_owned(), "default".to_owned()),
                    (
                        "eu-west-1".to_owned(),
                        "arn:aws:events:eu-west-1:123456789012:event-bus/ops".to_owned(),
                    ),
                ],
                sns_topics: vec![format!("arn:aws:sns:us-west-2:{account}:dr-alerts")],
            },
            publish_metrics: true,
        }
    }

    /// Every operator document of a plan: the single account's, or the operator's own and
    /// each account's.
    fn operator_docs(d: &Documents) -> Vec<&PolicyDocument> {
        match d {
            Documents::Single(p) => vec![&p.operator],
            Documents::PerAccount(p) => p
                .operator
                .iter()
                .chain(p.accounts.0.iter().filter_map(|(_, a)| a.operator.as_ref()))
                .collect(),
        }
    }

    fn granted(docs: &[&PolicyDocument]) -> BTreeSet<String> {
        docs.iter().flat_map(|d| actions(d)).collect()
    }

    #[test]
    fn every_sdk_operation_of_the_adapter_is_in_the_operator_policies() {
        // S3 is the state store's: its statements are checked below.
        let needed: BTreeSet<String> = sdk_actions()
            .into_iter()
            .filter(|a| !a.starts_with("s3:") && !NO_PERMISSION.contains(&a.as_str()))
            .collect();
        let mut cross = documents(&cross_account_plan(), "123456789012", None);
        cross.add_notify_statements(
            &cross_account_plan(),
            "123456789012",
            &notify_everything(RECOVERY),
        );
        let granted_cross = granted(&operator_docs(&cross));
        let missing: Vec<_> = needed.iter().filter(|a| !granted_cross.contains(*a)).collect();
        assert!(
            missing.is_empty(),
            "the adapter calls operations the operator policies lack: {missing:?}"
        );
        // A plan in one account needs all but the cross-account reads.
        let single = policies(&load(FULL_PLAN), "123456789012");
        let granted_single = actions(&single.operator);
        let missing: Vec<_> = needed
            .iter()
            .filter(|a| {
                !CROSS_ACCOUNT_ONLY.contains(&a.as_str())
                    && !NOTIFY_ONLY.contains(&a.as_str())
                    && !granted_single.contains(*a)
            })
            .collect();
        assert!(missing.is_empty(), "the single-account policy lacks: {missing:?}");
        for a in NOTIFY_ONLY {
            assert!(needed.contains(*a), "{a} is no longer called: drop it from the list");
            assert!(!granted_single.contains(*a), "{a} granted to a plan that sends nothing");
        }
        for a in CROSS_ACCOUNT_ONLY {
            assert!(needed.contains(*a), "{a} is no longer called: drop it from the list");
            assert!(!granted_single.contains(*a), "{a} granted to a single-account plan");
        }
    }

    #[test]
    fn the_operator_policies_grant_nothing_the_adapter_does_not_call() {
        let sdk = sdk_actions();
        let mut notifying = Documents::Single(policies(&load(FULL_PLAN), "123456789012"));
        notifying.add_notify_statements(
            &load(FULL_PLAN),
            "123456789012",
            &notify_everything("123456789012"),
        );
        let mut cross_notifying = documents(&cross_account_plan(), "123456789012", None);
        cross_notifying.add_notify_statements(
            &cross_account_plan(),
            "123456789012",
            &notify_everything(RECOVERY),
        );
        for d in [
            Documents::Single(policies(&load(FULL_PLAN), "123456789012")),
            documents(&cross_account_plan(), "123456789012", None),
            notifying,
            cross_notifying,
        ] {
            // What the adapter calls that needs a permission, with passing the backup roles to
            // `Start*Job` and assuming the plan's roles (aws-config's credentials provider, not
            // the adapter's code).
            let needed: BTreeSet<&str> = sdk
                .iter()
                .map(String::as_str)
                .filter(|a| !NO_PERMISSION.contains(a))
                .chain(["iam:PassRole", "sts:AssumeRole"])
                // What DynamoDB checks on behalf of a point-in-time restore's caller.
                .chain(PITR_TARGET_ACTIONS.iter().chain(PITR_KEY_ACTIONS).copied())
                .collect();
            let extra: Vec<_> = granted(&operator_docs(&d))
                .into_iter()
                .filter(|a| !needed.contains(a.as_str()))
                .collect();
            assert!(
                extra.is_empty(),
                "the operator policies grant actions the adapter never calls: {extra:?}"
            );
        }
    }

    #[test]
    fn the_operator_assumes_exactly_the_roles_the_plan_names() {
        let d = documents(&cross_account_plan(), "123456789012", None);
        let Documents::PerAccount(p) = &d else {
            panic!("a cross-account plan prints documents per account");
        };
        let assume: Vec<&Statement> = operator_docs(&d)
            .into_iter()
            .flat_map(|d| &d.statements)
            .filter(|s| s.actions.iter().any(|a| a.starts_with("sts:")))
            .collect();
        assert_eq!(assume.len(), 1, "{assume:?}");
        assert_eq!(assume[0].actions, ["sts:AssumeRole"]);
        assert_eq!(assume[0].resources, ["arn:aws:iam::210987654321:role/drover-recovery"]);
        assert!(assume[0].condition.is_empty());
        assert_eq!(p.operator.as_ref().unwrap().statements.len(), 1);
    }

    #[test]
    fn the_state_statements_grant_exactly_the_s3_operations_of_the_adapter() {
        let s3: BTreeSet<String> =
            sdk_actions().into_iter().filter(|a| a.starts_with("s3:")).collect();
        let granted: BTreeSet<String> =
            state().iter().flat_map(|s| s.actions.iter().cloned()).collect();
        for known in ["s3:PutObject", "s3:ListBucket", "s3:GetEncryptionConfiguration"] {
            assert!(s3.contains(known), "{known} not found in {s3:?}");
        }
        // S3 calls KMS on the caller's behalf with an SSE-KMS key: no SDK call of drover's.
        let kms = BTreeSet::from(["kms:Decrypt".to_owned(), "kms:GenerateDataKey".to_owned()]);
        let s3_granted: BTreeSet<String> = granted.difference(&kms).cloned().collect();
        assert_eq!(s3_granted, s3, "the state statements and the adapter's S3 calls differ");
    }

    #[test]
    fn state_statements_are_scoped_to_the_prefix_and_the_key() {
        let doc = PolicyDocument { version: POLICY_VERSION, statements: state() };
        assert_eq!(
            serde_json::to_value(&doc).unwrap()["Statement"],
            serde_json::json!([
                {
                    "Sid": "ReadAndWriteRunState",
                    "Effect": "Allow",
                    "Action": ["s3:DeleteObject", "s3:GetObject", "s3:PutObject"],
                    "Resource": ["arn:aws:s3:::drover-state/team/drover/*"]
                },
                {
                    "Sid": "ListRunState",
                    "Effect": "Allow",
                    "Action": ["s3:ListBucket"],
                    "Resource": ["arn:aws:s3:::drover-state"],
                    "Condition": {
                        "StringLike": {"s3:prefix": ["team/drover/", "team/drover/*"]}
                    }
                },
                {
                    "Sid": "ReadStateBucketSettings",
                    "Effect": "Allow",
                    "Action": [
                        "s3:GetBucketLocation",
                        "s3:GetBucketVersioning",
                        "s3:GetEncryptionConfiguration"
                    ],
                    "Resource": ["arn:aws:s3:::drover-state"]
                },
                {
                    "Sid": "EncryptRunStateWithKey",
                    "Effect": "Allow",
                    "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
                    "Resource": [
                        "arn:aws:kms:eu-west-1:123456789012:key/1111aaaa-22bb-33cc-44dd-555555eeeeee"
                    ],
                    "Condition": {"StringEquals": {"kms:ViaService": "s3.eu-west-1.amazonaws.com"}}
                }
            ])
        );
        for s in state() {
            assert!(s.sid.bytes().all(|b| b.is_ascii_alphanumeric()), "Sid {}", s.sid);
        }
    }

    #[test]
    fn state_statements_of_the_bucket_root_and_without_a_key() {
        let root = state_statements("drover-state", "/", None);
        let sids: Vec<_> = root.iter().map(|s| s.sid.to_string()).collect();
        assert_eq!(sids, ["ReadAndWriteRunState", "ListRunState", "ReadStateBucketSettings"]);
        assert_eq!(root[0].resources, ["arn:aws:s3:::drover-state/*"]);
        assert!(root[1].condition.is_empty(), "the whole bucket is listed");
        // Slashes around the prefix do not double; a key in another partition moves the ARNs.
        let cn = "arn:aws-cn:kms:cn-north-1:123456789012:key/1111aaaa-22bb-33cc-44dd-555555eeeeee";
        let china = state_statements("b", "/runs/", Some(cn));
        assert_eq!(china[0].resources, ["arn:aws-cn:s3:::b/runs/*"]);
        let via = serde_json::to_value(&china[3].condition).unwrap();
        assert_eq!(
            via,
            serde_json::json!({"StringEquals": {"kms:ViaService": "s3.cn-north-1.amazonaws.com.cn"}})
        );
    }

    #[test]
    fn features_the_plan_does_not_use_get_no_permissions() {
        let plan = load(&FULL_PLAN.replace("write_marker: true", "write_marker: false").replace(
            "validate: {digest: true, canary_keys: [{pk: \"C#1\"}]}",
            "validate: {min_items: 1}",
        ));
        // Item writes and reads only on the tables restores create (DynamoDB checks those of a
        // point-in-time restore there), never on the source tables.
        let operator = policies(&plan, "123456789012").operator;
        for s in &operator.statements {
            if s.sid == "ConfigureAndValidateRestoredTables" {
                let source =
                    ["customers", "orders"].map(|t| format!(":us-east-1:123456789012:table/{t}"));
                assert!(
                    s.resources.iter().all(|r| !source.iter().any(|t| r.ends_with(t))),
                    "{s:?}"
                );
                continue;
            }
            for absent in ["dynamodb:PutItem", "dynamodb:DeleteItem", "dynamodb:GetItem"] {
                assert!(!s.actions.iter().any(|a| a == absent), "{absent} in {}", s.sid);
            }
        }
        let sids: Vec<_> = policies(&plan, "123456789012")
            .operator
            .statements
            .iter()
            .map(|s| s.sid.clone())
            .collect();
        assert!(!sids.iter().any(|s| s == "DigestSourceTablesBeforeBackup"), "{sids:?}");
    }

    #[test]
    fn resources_are_scoped_to_the_plan() {
        let p = policies(&load(FULL_PLAN), "123456789012");
        for doc in [&p.operator, &p.backup_role] {
            for s in &doc.statements {
                assert!(!s.resources.is_empty(), "{} has no resource", s.sid);
                assert!(s.sid.bytes().all(|b| b.is_ascii_alphanumeric()), "Sid {}", s.sid);
                for r in &s.resources {
                    if r == "*" {
                        assert_eq!(s.sid, UNSCOPABLE_SID);
                    } else {
                        assert!(r.contains(":123456789012:"), "{}: {r} not in the account", s.sid);
                    }
                }
            }
        }
        let operator = serde_json::to_value(&p.operator).unwrap();
        let text = operator.to_string();
        assert!(text.contains("arn:aws:dynamodb:us-east-1:123456789012:table/customers\""));
        assert!(text.contains("arn:aws:dynamodb:us-west-2:123456789012:table/orders\""));
        assert!(text.contains("table/orders-drill-*-us-west-2\""));
        assert!(
            !text.contains("eu-west-1:123456789012:table/orders"),
            "orders is not in eu-west-1"
        );
        assert!(text.contains("arn:aws:backup:us-east-1:123456789012:backup-vault:prod-vault"));
        assert!(text.contains("arn:aws:backup:eu-west-1:123456789012:recovery-point:*"));
    }

    #[test]
    fn pass_role_is_held_to_aws_backup() {
        let p = policies(&load(FULL_PLAN), "123456789012");
        let pass = p.operator.statements.iter().find(|s| s.actions == ["iam:PassRole"]).unwrap();
        assert_eq!(pass.resources, ["arn:aws:iam::123456789012:role/drover-backup"]);
        assert_eq!(
            serde_json::to_value(&pass.condition).unwrap(),
            serde_json::json!({"StringEquals": {"iam:PassedToService": "backup.amazonaws.com"}})
        );
        let grant = p.backup_role.statements.iter().find(|s| s.actions == ["kms:CreateGrant"]);
        assert_eq!(
            serde_json::to_value(&grant.unwrap().condition).unwrap(),
            serde_json::json!({"Bool": {"kms:GrantIsForAWSResource": "true"}})
        );
        let trust = serde_json::to_value(&p.backup_role_trust).unwrap();
        assert_eq!(trust["Statement"][0]["Principal"]["Service"], "backup.amazonaws.com");
        assert_eq!(trust["Statement"][0]["Action"][0], "sts:AssumeRole");
    }

    #[test]
    fn partitions_and_via_service_follow_the_regions() {
        let text = FULL_PLAN
            .replace("us-east-1", "cn-north-1")
            .replace("us-west-2", "cn-northwest-1")
            .replace("arn:aws:", "arn:aws-cn:")
            .replace(
                "  - region: eu-west-1\n    backup_vault: dr-euw1\n    kms_key_arn: arn:aws-cn:kms:eu-west-1:123456789012:key/mrk-0123456789abcdef0123456789abcdef\n",
                "",
            );
        let p = policies(&load(&text), "123456789012");
        let json = serde_json::to_string(&p).unwrap();
        assert!(json.contains("arn:aws-cn:dynamodb:cn-north-1:123456789012:table/customers"));
        assert!(json.contains("dynamodb.cn-northwest-1.amazonaws.com.cn"));
        assert!(!json.contains("arn:aws:"), "{json}");
    }

    #[test]
    fn the_account_comes_from_the_plan_the_flag_or_agreeing_arns() {
        let pinned = load(FULL_PLAN);
        assert_eq!(resolve_account_id(&pinned, None).unwrap(), "123456789012");
        assert_eq!(resolve_account_id(&pinned, Some("123456789012")).unwrap(), "123456789012");
        assert_eq!(
            resolve_account_id(&pinned, Some("999999999999")),
            Err(AccountIdError::Conflict {
                plan: "123456789012".to_owned(),
                given: "999999999999".to_owned()
            })
        );
        let unpinned = load(&FULL_PLAN.replace(", account_id: \"123456789012\"", ""));
        assert_eq!(resolve_account_id(&unpinned, None).unwrap(), "123456789012");
        assert_eq!(resolve_account_id(&unpinned, Some("999999999999")).unwrap(), "999999999999");
        let split = load(
            &FULL_PLAN
                .replace(", account_id: \"123456789012\"", "")
                .replace("iam::123456789012", "iam::210987654321"),
        );
        let err = resolve_account_id(&split, None).unwrap_err();
        assert!(err.to_string().contains("--account-id"), "{err}");
        assert!(err.to_string().contains("(123456789012, 210987654321)"), "{err}");
        assert!(check_account_id("12345678901").is_err());
        assert!(check_account_id("12345678901a").is_err());
        assert_eq!(check_account_id("123456789012").unwrap(), "123456789012");
    }

    #[test]
    fn size_counts_json_without_whitespace() {
        let p = policies(&load(FULL_PLAN), "123456789012");
        let compact = serde_json::to_string(&p.backup_role_trust).unwrap();
        assert_eq!(p.backup_role_trust.size(), compact.len());
        let pretty = serde_json::to_string_pretty(&p.operator).unwrap();
        assert_eq!(p.operator.size(), pretty.chars().filter(|c| !c.is_whitespace()).count());
        assert!(p.operator.size() < MANAGED_POLICY_MAX_CHARS, "{}", p.operator.size());
    }

    #[test]
    fn keys_in_another_account_are_named_exactly() {
        let unpinned = load(&FULL_PLAN.replace(", account_id: \"123456789012\"", ""));
        let p = policies(&unpinned, "999999999999");
        let grant = p.backup_role.statements.iter().find(|s| s.actions == ["kms:CreateGrant"]);
        let resources = &grant.unwrap().resources;
        assert!(
            resources.contains(
                &"arn:aws:kms:us-west-2:123456789012:key/1111aaaa-22bb-33cc-44dd-555555eeeeee"
                    .to_owned()
            )
        );
        assert!(resources.contains(&"arn:aws:kms:us-west-2:999999999999:key/*".to_owned()));
    }

    /// Every (action, resource, condition) a set of documents grants.
    fn grants(docs: &[PolicyDocument]) -> BTreeSet<(String, String, String)> {
        let mut out = BTreeSet::new();
        for s in docs.iter().flat_map(|d| &d.statements) {
            let condition = serde_json::to_string(&s.condition).unwrap();
            for a in &s.actions {
                for r in &s.resources {
                    out.insert((a.clone(), r.clone(), condition.clone()));
                }
            }
        }
        out
    }

    #[test]
    fn split_documents_fit_and_grant_exactly_the_same() {
        let mut text = FULL_PLAN.to_owned();
        for i in 0..40 {
            text.push_str(&format!("  - name: ledger-{i:02}\n    depends_on: [customers]\n"));
        }
        // `tables:` is not the last key of FULL_PLAN: move `drill:` after the added tables.
        let text = text.replace(
            "drill:\n  table_name: \"{table}-drill-{run}-{region}\"\n  write_marker: true\n",
            "",
        ) + "drill:\n  table_name: \"{table}-drill-{run}-{region}\"\n  write_marker: true\n";
        let p = policies(&load(&text), "123456789012");
        for whole in [&p.operator, &p.backup_role] {
            assert!(whole.size() > MANAGED_POLICY_MAX_CHARS, "{}", whole.size());
            let parts = whole.split(MANAGED_POLICY_MAX_CHARS).unwrap();
            assert!(parts.len() >= 2);
            for part in &parts {
                assert!(part.size() <= MANAGED_POLICY_MAX_CHARS, "{}", part.size());
                assert_eq!(part.version, POLICY_VERSION);
            }
            assert_eq!(grants(&parts), grants(std::slice::from_ref(whole)));
            let sids: Vec<_> = parts.iter().flat_map(|d| &d.statements).map(|s| &s.sid).collect();
            let unique: BTreeSet<_> = sids.iter().collect();
            assert_eq!(unique.len(), sids.len(), "{sids:?}");
            assert!(sids.iter().all(|s| s.bytes().all(|b| b.is_ascii_alphanumeric())));
        }
        // A statement larger than the limit on its own is cut by resources.
        let small = p.operator.split(800).unwrap();
        assert!(small.iter().flat_map(|d| &d.statements).any(|s| s.sid.contains("Part2")));
        assert!(small.iter().all(|d| d.size() <= 800));
        assert_eq!(grants(&small), grants(std::slice::from_ref(&p.operator)));
    }

    #[test]
    fn a_document_that_fits_is_not_split_and_an_impossible_limit_is_an_error() {
        let p = policies(&load(FULL_PLAN), "123456789012");
        assert_eq!(p.operator.split(MANAGED_POLICY_MAX_CHARS).unwrap(), vec![p.operator.clone()]);
        let err = p.operator.split(50).unwrap_err();
        assert_eq!(err.max, 50);
        assert!(p.operator.statements.iter().any(|s| s.sid == err.sid));
    }
}
