//! The validated plan: what a YAML plan means once every check has passed.
//!
//! Values here are already checked (names, regions, ARNs, durations), so code that holds a
//! [`Plan`] never re-validates. Construction happens only in [`crate::lower`].

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::Serialize;

use crate::graph::PlanGraph;

/// Length of the short run id substituted for `{run}` in drill name templates.
///
/// The engine's run ids end in this many characters; the plan needs the number to prove that
/// every drill table name fits in DynamoDB's 255-character limit.
pub const RUN_SHORT_ID_LEN: usize = 8;

/// Default drill table name template.
pub const DEFAULT_DRILL_TEMPLATE: &str = "{table}-drill-{run}";

/// A validated DR plan, with its dependency graph.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    /// Format version (always 1 today).
    pub version: u32,
    /// Plan name, `[a-z0-9-]{1,40}`; used in run ids and ownership tags.
    pub name: String,
    /// Where the data lives today.
    pub source: Source,
    /// Role AWS Backup assumes for backup, copy and restore jobs.
    pub iam_role_arn: String,
    /// Recovery objectives, when the plan states them.
    pub objectives: Objectives,
    /// Regions to recover into, in plan order.
    pub targets: Vec<Target>,
    /// Tables, in plan order. [`TableId`] indexes this vector.
    pub tables: Vec<Table>,
    /// Drill settings.
    pub drill: Drill,
    /// AWS Backup's windows for the backup jobs drover starts (drills and backups).
    pub backup_jobs: BackupJobs,
    /// Hooks of the whole run.
    pub hooks: RunHooks,
    /// Where events of runs and checks go.
    pub notify: Notify,
    /// The dependency graph of `tables`.
    #[serde(skip)]
    pub graph: PlanGraph,
}

impl Plan {
    /// The table with this id.
    #[must_use]
    pub fn table(&self, id: TableId) -> &Table {
        &self.tables[id.0]
    }

    /// The table with this name, if the plan has one.
    #[must_use]
    pub fn table_by_name(&self, name: &str) -> Option<(TableId, &Table)> {
        self.tables.iter().enumerate().find(|(_, t)| t.name == name).map(|(i, t)| (TableId(i), t))
    }

    /// The target in this region, if the plan has one.
    #[must_use]
    pub fn target(&self, region: &Region) -> Option<&Target> {
        self.targets.iter().find(|t| &t.region == region)
    }

    /// The source account: `source.account_id`, else the account of its role, else the
    /// account of the plan's `iam_role_arn` (which is always in the source account).
    #[must_use]
    pub fn source_account(&self) -> &str {
        self.source
            .account_id
            .as_deref()
            .or_else(|| self.source.role.as_ref().map(AssumeRole::account))
            .unwrap_or_else(|| arn_account(&self.iam_role_arn))
    }

    /// The account `target` is in: its `account_id`, else the account of its role, else the
    /// source account.
    #[must_use]
    pub fn target_account<'a>(&'a self, target: &'a Target) -> &'a str {
        target
            .account_id
            .as_deref()
            .or_else(|| target.role.as_ref().map(AssumeRole::account))
            .unwrap_or_else(|| self.source_account())
    }

    /// Whether the plan reaches beyond the operator's own account: a role to assume, or a
    /// target in another account than the source.
    #[must_use]
    pub fn spans_accounts(&self) -> bool {
        self.source.role.is_some()
            || self.targets.iter().any(|t| t.role.is_some() || self.crosses_accounts(t))
    }

    /// Whether copies into `target` cross accounts.
    #[must_use]
    pub fn crosses_accounts(&self, target: &Target) -> bool {
        self.target_account(target) != self.source_account()
    }

    /// The AWS Backup role restores in `target` use: its own, else the plan's.
    #[must_use]
    pub fn restore_role<'a>(&'a self, target: &'a Target) -> &'a str {
        target.iam_role_arn.as_deref().unwrap_or(&self.iam_role_arn)
    }

    /// The role drover assumes in `account`, if any: the first the plan names for an entry
    /// (source or target) in that account. Validation makes every entry of one account name
    /// the same role, or none.
    #[must_use]
    pub fn role_in(&self, account: &str) -> Option<&AssumeRole> {
        let source = (self.source_account() == account).then_some(self.source.role.as_ref());
        source
            .into_iter()
            .chain(
                self.targets
                    .iter()
                    .filter(|t| self.target_account(t) == account)
                    .map(|t| t.role.as_ref()),
            )
            .flatten()
            .next()
    }

    /// Every region of the plan (source first, then the targets) with the account it is in.
    pub fn regions_and_accounts(&self) -> impl Iterator<Item = (&Region, &str)> + '_ {
        std::iter::once((&self.source.region, self.source_account()))
            .chain(self.targets.iter().map(|t| (&t.region, self.target_account(t))))
    }

    /// Ids of the tables restored in `region`, in plan order.
    pub fn tables_in(&self, region: &Region) -> impl Iterator<Item = TableId> + '_ {
        let region = region.clone();
        self.tables
            .iter()
            .enumerate()
            .filter(move |(_, t)| t.targets.contains(&region))
            .map(|(i, _)| TableId(i))
    }
}

/// Index of a table in [`Plan::tables`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct TableId(pub usize);

/// The source side of the plan.
#[derive(Debug, Clone, Serialize)]
pub struct Source {
    /// Region the tables live in.
    pub region: Region,
    /// Account id (12 digits), when the plan pins it.
    pub account_id: Option<String>,
    /// AWS Backup vault holding the source recovery points.
    pub backup_vault: String,
    /// The role drover assumes to act in the source account, when it does not act with the
    /// operator's own credentials there.
    pub role: Option<AssumeRole>,
}

/// A role drover assumes to act in an account (STS AssumeRole, chained from the operator's
/// credentials).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AssumeRole {
    /// The role's ARN (in the account it acts in).
    pub role_arn: String,
    /// The external id the role's trust policy requires, if any.
    pub external_id: Option<String>,
    /// How long each session lasts (15 minutes to 12 hours; AWS's default, one hour, when
    /// absent).
    #[serde(serialize_with = "ser_opt_duration")]
    pub session_duration: Option<Duration>,
}

impl AssumeRole {
    /// The account the role is in (the fifth field of its ARN).
    #[must_use]
    pub fn account(&self) -> &str {
        arn_account(&self.role_arn)
    }
}

/// The account field of an ARN (`arn:partition:service:region:account:...`), empty when it has
/// none.
#[must_use]
pub fn arn_account(arn: &str) -> &str {
    arn.split(':').nth(4).unwrap_or_default()
}

/// Recovery objectives.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Objectives {
    /// Oldest acceptable recovery point.
    #[serde(serialize_with = "ser_opt_duration")]
    pub rpo: Option<Duration>,
    /// Target duration of a whole recovery run.
    #[serde(serialize_with = "ser_opt_duration")]
    pub rto: Option<Duration>,
}

/// A region to recover into.
#[derive(Debug, Clone, Serialize)]
pub struct Target {
    /// The target region.
    pub region: Region,
    /// Vault in the target region that receives copies.
    pub backup_vault: String,
    /// KMS key (in the target region) that restored tables are encrypted with.
    pub kms_key_arn: String,
    /// The account the target is in, when the plan names one (else the source's account, or
    /// the account of `role`).
    pub account_id: Option<String>,
    /// The role drover assumes to act in the target's account.
    pub role: Option<AssumeRole>,
    /// The AWS Backup role that restores in this target (else the plan's `iam_role_arn`).
    pub iam_role_arn: Option<String>,
}

/// A table to recover, with its settings resolved against the plan's `defaults`.
#[derive(Debug, Clone, Serialize)]
pub struct Table {
    /// Table name in the source region (and the restored name on failover).
    pub name: String,
    /// Tables that must be restored and validated first, in plan order.
    pub depends_on: Vec<TableId>,
    /// Target regions this table is restored in (plan order).
    pub targets: Vec<Region>,
    /// TTL attribute to re-enable after restore.
    pub ttl_attribute: Option<String>,
    /// Stream view type to re-enable after restore.
    pub stream: Option<StreamView>,
    /// Whether point-in-time recovery is enabled after restore.
    pub point_in_time_recovery: bool,
    /// Whether deletion protection is enabled after restore.
    pub deletion_protection: bool,
    /// Tags applied after restore (drover's ownership tags come on top).
    pub tags: BTreeMap<String, String>,
    /// Post-restore validation.
    pub validate: Validation,
}

/// Post-restore validation of one table.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Validation {
    /// Minimum item count.
    pub min_items: Option<u64>,
    /// Items that must exist after restore: key attribute name to typed value.
    pub canary_keys: Vec<BTreeMap<String, KeyValue>>,
    /// Compare an order-independent hash of every item (a full parallel scan).
    pub digest: bool,
    /// Commands run after the built-in checks of this table pass (`validate.hooks`).
    pub hooks: Vec<Hook>,
}

/// A validation hook: a command drover runs (argv, no shell) against the restored tables, with
/// their names, region, run id and mode in its environment. A non-zero exit, or no exit
/// within `timeout`, fails the step it belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Hook {
    /// Its name in the journal and the report, `[A-Za-z0-9_.-]{1,64}`, unique where it is.
    pub name: String,
    /// The program and its arguments (no shell); a relative program is found from the plan
    /// file's directory.
    pub run: Vec<String>,
    /// How long it may run before it is killed (default 5m).
    #[serde(serialize_with = "ser_duration")]
    pub timeout: Duration,
}

/// Hooks of the whole run (`hooks:`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RunHooks {
    /// Once per target, after every table there is validated (`after_target`).
    pub after_target: Vec<Hook>,
    /// Once, at the end of the run, whatever its outcome (`after_run`).
    pub after_run: Vec<Hook>,
}

/// Where a run's events go (`notify:`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Notify {
    /// Amazon EventBridge: `PutEvents` to this bus in this region.
    pub eventbridge: Option<EventBridge>,
    /// Amazon SNS: `Publish` to this topic.
    pub sns: Option<Sns>,
}

/// An EventBridge event bus.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EventBridge {
    /// Its region.
    pub region: Region,
    /// Its name or ARN (`default` unless set).
    pub event_bus: String,
}

/// An SNS topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Sns {
    /// Its ARN (`arn:aws:sns:REGION:ACCOUNT:NAME`).
    pub topic_arn: String,
}

/// The default timeout of a hook.
pub const DEFAULT_HOOK_TIMEOUT: Duration = Duration::from_secs(300);

/// DynamoDB stream view type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum StreamView {
    /// `NEW_IMAGE`
    NewImage,
    /// `OLD_IMAGE`
    OldImage,
    /// `NEW_AND_OLD_IMAGES`
    NewAndOldImages,
    /// `KEYS_ONLY`
    KeysOnly,
}

impl StreamView {
    /// Every view type, with its name in plans and in the DynamoDB API.
    pub const ALL: [(&'static str, StreamView); 4] = [
        ("NEW_IMAGE", StreamView::NewImage),
        ("OLD_IMAGE", StreamView::OldImage),
        ("NEW_AND_OLD_IMAGES", StreamView::NewAndOldImages),
        ("KEYS_ONLY", StreamView::KeysOnly),
    ];

    /// The name used in plans and in the DynamoDB API.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            StreamView::NewImage => "NEW_IMAGE",
            StreamView::OldImage => "OLD_IMAGE",
            StreamView::NewAndOldImages => "NEW_AND_OLD_IMAGES",
            StreamView::KeysOnly => "KEYS_ONLY",
        }
    }
}

/// Drill settings.
#[derive(Debug, Clone, Serialize)]
pub struct Drill {
    /// Template of drill table names.
    pub table_name: String,
    /// Write a marker item into each source table before the backup (and remove it after
    /// the drill), so that validation proves the data went through backup, copy and restore.
    /// Off by default: the write reaches the source table's stream consumers.
    pub write_marker: bool,
    /// Days after which AWS Backup deletes a drill's recovery points and copies
    /// (`Lifecycle.DeleteAfterDays`), so that an abandoned drill stops costing money; teardown
    /// deletes them sooner. Never moved to cold storage.
    pub recovery_point_retention_days: u32,
    /// The read budget of a drill's scans of the source tables (the digest before and after
    /// the backup): the only reads a drill makes of production tables.
    pub source_reads: SourceReads,
}

/// How much read capacity a drill's scans of a production table may use per second: a share
/// of a provisioned table's read capacity, a fixed rate for an on-demand table (where reads
/// cost money and can throttle the application).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct SourceReads {
    /// Share of the table's provisioned read capacity units (default 0.25).
    pub provisioned_share: f64,
    /// Read capacity units per second for an on-demand table (default 500).
    pub on_demand_units: u32,
}

impl Default for SourceReads {
    fn default() -> Self {
        SourceReads { provisioned_share: 0.25, on_demand_units: 500 }
    }
}

impl SourceReads {
    /// The read budget for a table with `provisioned` read capacity units (`None`: on demand).
    #[must_use]
    pub fn units_per_second(&self, provisioned: Option<u64>) -> f64 {
        #[allow(clippy::cast_precision_loss)]
        match provisioned {
            Some(rcu) => (rcu as f64 * self.provisioned_share).max(1.0),
            None => f64::from(self.on_demand_units),
        }
    }
}

/// The default [`Drill::recovery_point_retention_days`].
pub const DEFAULT_DRILL_RETENTION_DAYS: u32 = 1;

/// AWS Backup's windows for backup jobs (`StartWindowMinutes`, `CompleteWindowMinutes`), both
/// counted from when the job is created.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct BackupJobs {
    /// A job not started by then ends EXPIRED (at least 1 h; AWS's own default is 8 h).
    #[serde(serialize_with = "ser_duration")]
    pub start_window: Duration,
    /// A job not done by then is cancelled.
    #[serde(serialize_with = "ser_duration")]
    pub complete_window: Duration,
}

impl Default for BackupJobs {
    fn default() -> Self {
        BackupJobs {
            start_window: Duration::from_secs(3600),
            complete_window: Duration::from_secs(24 * 3600),
        }
    }
}

impl BackupJobs {
    /// The start window in minutes.
    #[must_use]
    pub fn start_window_minutes(&self) -> u32 {
        u32::try_from(self.start_window.as_secs() / 60).unwrap_or(u32::MAX)
    }

    /// The complete window in minutes.
    #[must_use]
    pub fn complete_window_minutes(&self) -> u32 {
        u32::try_from(self.complete_window.as_secs() / 60).unwrap_or(u32::MAX)
    }
}

impl Drill {
    /// The drill table name for `table` in `region` during run `run_short_id`.
    #[must_use]
    pub fn table_name(&self, table: &str, run_short_id: &str, region: &Region) -> String {
        self.table_name
            .replace("{table}", table)
            .replace("{run}", run_short_id)
            .replace("{region}", region.as_str())
    }
}

impl Default for Drill {
    fn default() -> Self {
        Drill {
            table_name: DEFAULT_DRILL_TEMPLATE.to_owned(),
            write_marker: false,
            recovery_point_retention_days: DEFAULT_DRILL_RETENTION_DAYS,
            source_reads: SourceReads::default(),
        }
    }
}

/// An AWS region name such as `us-east-1`, checked for shape and partition.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct Region(String);

impl Region {
    /// Parses a region name: `xx-name-N` in a known partition.
    ///
    /// # Errors
    /// Returns a message saying what is wrong with `s`.
    pub fn parse(s: &str) -> Result<Region, String> {
        crate::rules::check_region(s).map(|()| Region(s.to_owned()))
    }

    /// The region name.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The ARN partition the region belongs to (`aws`, `aws-cn`, `aws-us-gov`, ...).
    #[must_use]
    pub fn partition(&self) -> &'static str {
        crate::rules::partition_of(&self.0)
    }
}

impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Formats a duration the way plans write them (`1h30m`, `45s`, `2d`).
#[must_use]
pub fn format_duration(d: Duration) -> String {
    let mut secs = d.as_secs();
    if secs == 0 {
        return "0s".to_owned();
    }
    let mut out = String::new();
    for (unit, len) in [("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)] {
        if secs >= len {
            out.push_str(&format!("{}{unit}", secs / len));
            secs %= len;
        }
    }
    out
}

fn ser_duration<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format_duration(*d))
}

fn ser_opt_duration<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_str(&format_duration(*d)),
        None => s.serialize_none(),
    }
}

/// A key attribute value of a DynamoDB item (canary keys, markers): one of DynamoDB's three
/// scalar key types.
///
/// Plans write a string value as a plain string (`pk: "ORDER#1"`) or typed, as in DynamoDB's
/// JSON (`pk: {S: "ORDER#1"}`, `id: {N: "42"}`, `blob: {B: "AAEC"}`, base64). Serialized the
/// same way: `S` as a plain string (so journals written before typed keys still read), `N`
/// and `B` as one-key maps.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum KeyValue {
    /// A string.
    S(String),
    /// A number, as its decimal text (DynamoDB sends numbers as strings).
    N(String),
    /// Binary.
    B(Vec<u8>),
}

impl KeyValue {
    /// The DynamoDB type letter: `S`, `N` or `B`.
    #[must_use]
    pub fn type_name(&self) -> &'static str {
        match self {
            KeyValue::S(_) => "S",
            KeyValue::N(_) => "N",
            KeyValue::B(_) => "B",
        }
    }

    /// The value as text: strings and numbers as they are, binary as base64.
    #[must_use]
    pub fn text(&self) -> String {
        match self {
            KeyValue::S(s) | KeyValue::N(s) => s.clone(),
            KeyValue::B(b) => crate::rules::base64_encode(b),
        }
    }

    /// Builds a value from its type letter and text (base64 for `B`).
    ///
    /// # Errors
    /// A message saying what is wrong: an unknown type, a malformed number, bad base64.
    pub fn parse(type_name: &str, text: &str) -> Result<KeyValue, String> {
        match type_name {
            "S" => Ok(KeyValue::S(text.to_owned())),
            "N" => crate::rules::check_number(text).map(|()| KeyValue::N(text.to_owned())),
            "B" => crate::rules::base64_decode(text).map(KeyValue::B),
            other => Err(format!(
                "`{other}` is not a key attribute type: key attributes are S (string), N (number) or B (binary, base64)"
            )),
        }
    }
}

impl fmt::Display for KeyValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyValue::S(s) => write!(f, "{s:?}"),
            other => write!(f, "{{{}: {:?}}}", other.type_name(), other.text()),
        }
    }
}

impl Serialize for KeyValue {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap as _;
        match self {
            KeyValue::S(v) => s.serialize_str(v),
            other => {
                let mut map = s.serialize_map(Some(1))?;
                map.serialize_entry(other.type_name(), &other.text())?;
                map.end()
            }
        }
    }
}

impl<'de> serde::Deserialize<'de> for KeyValue {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<KeyValue, D::Error> {
        #[derive(serde::Deserialize)]
        #[serde(untagged)]
        enum Repr {
            Plain(String),
            Typed(BTreeMap<String, String>),
        }
        match Repr::deserialize(d)? {
            Repr::Plain(s) => Ok(KeyValue::S(s)),
            Repr::Typed(map) if map.len() == 1 => {
                let (t, v) =
                    map.into_iter().next().ok_or_else(|| serde::de::Error::custom("empty"))?;
                KeyValue::parse(&t, &v).map_err(serde::de::Error::custom)
            }
            Repr::Typed(_) => {
                Err(serde::de::Error::custom("a typed key value is a map with one key: S, N or B"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Plan {
        let loaded = crate::load("t.yaml", text.as_bytes());
        loaded.plan.unwrap_or_else(|| panic!("{:#?}", loaded.diagnostics.items()))
    }

    /// A production account with a target of its own and a recovery account.
    const TWO_ACCOUNTS: &str = r#"
version: 1
name: t
source:
  region: us-east-1
  account_id: "111111111111"
  backup_vault: prod
  role_arn: arn:aws:iam::111111111111:role/drover-prod
  external_id: prod-ext
iam_role_arn: arn:aws:iam::111111111111:role/drover-backup
targets:
  - region: us-west-2
    backup_vault: dr
    kms_key_arn: arn:aws:kms:us-west-2:111111111111:key/1111aaaa-22bb-33cc-44dd-555555eeeeee
  - region: eu-west-1
    account_id: "222222222222"
    role_arn: arn:aws:iam::222222222222:role/drover-recovery
    external_id: rec-ext
    session_duration: 2h
    iam_role_arn: arn:aws:iam::222222222222:role/drover-restore
    backup_vault: recovery
    kms_key_arn: arn:aws:kms:eu-west-1:222222222222:key/1111aaaa-22bb-33cc-44dd-555555eeeeee
tables:
  - name: customers
"#;

    #[test]
    fn a_plan_across_two_accounts_knows_each_entrys_account_and_roles() {
        let plan = load(TWO_ACCOUNTS);
        let (usw2, euw1) = (&plan.targets[0], &plan.targets[1]);
        assert_eq!(plan.source_account(), "111111111111");
        assert_eq!(plan.target_account(usw2), "111111111111");
        assert_eq!(plan.target_account(euw1), "222222222222");
        assert!(!plan.crosses_accounts(usw2));
        assert!(plan.crosses_accounts(euw1));
        assert_eq!(plan.restore_role(usw2), "arn:aws:iam::111111111111:role/drover-backup");
        assert_eq!(plan.restore_role(euw1), "arn:aws:iam::222222222222:role/drover-restore");

        let prod = plan.role_in("111111111111").unwrap();
        assert_eq!(prod.role_arn, "arn:aws:iam::111111111111:role/drover-prod");
        assert_eq!(prod.external_id.as_deref(), Some("prod-ext"));
        assert_eq!(prod.session_duration, None);
        assert_eq!(prod.account(), "111111111111");
        let recovery = plan.role_in("222222222222").unwrap();
        assert_eq!(recovery.role_arn, "arn:aws:iam::222222222222:role/drover-recovery");
        assert_eq!(recovery.external_id.as_deref(), Some("rec-ext"));
        assert_eq!(recovery.session_duration, Some(Duration::from_secs(7200)));
        assert_eq!(plan.role_in("333333333333"), None);

        let regions: Vec<(&str, &str)> =
            plan.regions_and_accounts().map(|(r, a)| (r.as_str(), a)).collect();
        assert_eq!(
            regions,
            [
                ("us-east-1", "111111111111"),
                ("us-west-2", "111111111111"),
                ("eu-west-1", "222222222222")
            ]
        );
        // The new keys serialize with the plan (`drover plan --format json` shows them).
        let json = serde_json::to_value(&plan).unwrap();
        assert_eq!(json["targets"][1]["role"]["session_duration"], "2h");
        assert_eq!(json["targets"][1]["account_id"], "222222222222");
        assert_eq!(json["source"]["role"]["external_id"], "prod-ext");
    }

    /// A v1 plan: one account, no role to assume.
    const V1: &str = r#"
version: 1
name: t
source:
  region: us-east-1
  account_id: "111111111111"
  backup_vault: prod
iam_role_arn: arn:aws:iam::111111111111:role/drover-backup
targets:
  - region: us-west-2
    backup_vault: dr
    kms_key_arn: arn:aws:kms:us-west-2:111111111111:key/1111aaaa-22bb-33cc-44dd-555555eeeeee
  - region: eu-west-1
    backup_vault: dr
    kms_key_arn: arn:aws:kms:eu-west-1:111111111111:key/1111aaaa-22bb-33cc-44dd-555555eeeeee
tables:
  - name: customers
"#;

    #[test]
    fn a_v1_plan_is_in_one_account_with_no_role_to_assume() {
        let plan = load(V1);
        assert_eq!(plan.source_account(), "111111111111");
        for t in &plan.targets {
            assert_eq!(plan.target_account(t), "111111111111");
            assert!(!plan.crosses_accounts(t));
            assert_eq!(plan.restore_role(t), plan.iam_role_arn);
            assert_eq!((&t.account_id, &t.role, &t.iam_role_arn), (&None, &None, &None));
        }
        assert_eq!(plan.source.role, None);
        assert_eq!(plan.role_in("111111111111"), None);

        // Without `source.account_id`, the account is the one of the AWS Backup role.
        let plan = load(&V1.replace("  account_id: \"111111111111\"\n", ""));
        assert_eq!(plan.source.account_id, None);
        assert_eq!(plan.source_account(), "111111111111");
        assert_eq!(plan.target_account(&plan.targets[0]), "111111111111");
        assert!(plan.regions_and_accounts().all(|(_, a)| a == "111111111111"));
    }

    #[test]
    fn accounts_follow_from_roles_when_no_account_id_names_them() {
        let plan = load(
            r#"
version: 1
name: t
source:
  region: us-east-1
  backup_vault: prod
iam_role_arn: arn:aws:iam::111111111111:role/drover-backup
targets:
  - region: us-west-2
    role_arn: arn:aws:iam::111111111111:role/drover-prod
    backup_vault: dr
    kms_key_arn: arn:aws:kms:us-west-2:111111111111:key/1111aaaa-22bb-33cc-44dd-555555eeeeee
  - region: eu-west-1
    role_arn: arn:aws:iam::222222222222:role/drover-recovery
    iam_role_arn: arn:aws:iam::222222222222:role/drover-restore
    backup_vault: recovery
    kms_key_arn: arn:aws:kms:eu-west-1:222222222222:key/1111aaaa-22bb-33cc-44dd-555555eeeeee
  - region: ap-south-1
    backup_vault: dr
    kms_key_arn: arn:aws:kms:ap-south-1:111111111111:key/1111aaaa-22bb-33cc-44dd-555555eeeeee
tables:
  - name: customers
"#,
        );
        let [usw2, euw1, aps1] = [&plan.targets[0], &plan.targets[1], &plan.targets[2]];
        assert_eq!(plan.source_account(), "111111111111");
        assert_eq!(plan.target_account(usw2), "111111111111");
        assert_eq!(plan.target_account(euw1), "222222222222");
        assert_eq!(plan.target_account(aps1), "111111111111");
        assert!(plan.crosses_accounts(euw1) && !plan.crosses_accounts(aps1));
        // The role a target names for the source account is the role of the whole account,
        // the source and the other targets there included.
        let prod = plan.role_in(plan.source_account()).unwrap();
        assert_eq!(prod.role_arn, "arn:aws:iam::111111111111:role/drover-prod");
        assert_eq!(plan.role_in("222222222222").unwrap().account(), "222222222222");

        // A source role names the source account when `source.account_id` does not.
        let mut by_role = plan.clone();
        by_role.source.role = plan.targets[0].role.clone();
        by_role.iam_role_arn = "arn:aws:iam::999999999999:role/x".into();
        assert_eq!(by_role.source_account(), "111111111111");
    }

    #[test]
    fn arn_accounts() {
        assert_eq!(arn_account("arn:aws:iam::111111111111:role/x"), "111111111111");
        assert_eq!(arn_account("arn:aws:kms:eu-west-1:222222222222:key/k"), "222222222222");
        assert_eq!(arn_account("not-an-arn"), "");
    }

    #[test]
    fn key_values_serialize_plain_strings_and_typed_numbers_and_binary() {
        let values = [
            (KeyValue::S("ORDER#1".into()), r#""ORDER#1""#),
            (KeyValue::N("42".into()), r#"{"N":"42"}"#),
            (KeyValue::B(vec![0, 1, 2]), r#"{"B":"AAEC"}"#),
        ];
        for (value, json) in values {
            assert_eq!(serde_json::to_string(&value).unwrap(), json);
            assert_eq!(serde_json::from_str::<KeyValue>(json).unwrap(), value);
        }
        // A journal written before typed keys holds plain strings, and still reads.
        assert_eq!(
            serde_json::from_str::<KeyValue>(r#"{"S":"x"}"#).unwrap(),
            KeyValue::S("x".into())
        );
        for bad in [r#"{"N":"4 2"}"#, r#"{"X":"1"}"#, r#"{"N":"1","S":"x"}"#, "42"] {
            assert!(serde_json::from_str::<KeyValue>(bad).is_err(), "{bad}");
        }
    }
}
