//! The statements of drover's events and metrics (`notify:`, `--event-bus`, `--sns-topic`,
//! `--publish-metrics`): only for what a plan and its flags use, each in the operator policy
//! of the account whose credentials make the call (the adapter's `Accounts::access_for`):
//!
//! - `events:PutEvents` on each bus ARN (a bus named without an ARN is
//!   `arn:PARTITION:events:REGION:ACCOUNT:event-bus/NAME`, its account the region's in the
//!   plan, else the source's);
//! - `sns:Publish` on each topic ARN;
//! - `cloudwatch:PutMetricData`, which takes no resource (`*`), held to the namespace
//!   `Drover` by `cloudwatch:namespace` and to the account's target regions (where metrics
//!   are put) by `aws:RequestedRegion`.
//!
//! A bus or topic whose ARN names an account of the plan is called with that account's
//! credentials; one in any other account with the source account's (the bus's or topic's
//! resource policy must then let the source account in).

use std::collections::BTreeSet;

use drover_engine::metrics::NAMESPACE;
use drover_engine::notify::Channels;
use drover_plan::{Plan, Region};

use super::accounts::plan_accounts;
use super::{Arns, Builder, Documents, POLICY_VERSION, PolicyDocument, Statement, arn_account};

/// The Sid of the EventBridge statement.
pub const PUT_EVENTS_SID: &str = "PutDroverEvents";
/// The Sid of the SNS statement.
pub const PUBLISH_SID: &str = "PublishDroverEvents";
/// The Sid of the CloudWatch statement.
pub const PUT_METRICS_SID: &str = "PutDroverMetrics";

/// What a plan's runs and checks send: its `notify:` with the flags' channels
/// ([`Channels::of`]) and whether they put metrics (`--publish-metrics`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NotifyUse {
    /// Event buses and topics.
    pub channels: Channels,
    /// Whether metrics are put.
    pub publish_metrics: bool,
}

impl NotifyUse {
    /// Whether nothing is sent.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.channels.is_empty() && !self.publish_metrics
    }
}

/// The account whose credentials call a resource of `arn`'s account (or, without one, of
/// `region`): that account when the plan acts in it, else `region`'s when the plan has that
/// region, else the source's.
fn caller<'p>(a: &Arns<'p>, accounts: &[&'p str], region: &str, arn: Option<&str>) -> String {
    if let Some(id) = arn.and_then(arn_account) {
        return accounts.iter().find(|acc| **acc == id).map_or(a.account, |acc| acc).to_owned();
    }
    match Region::parse(region) {
        Ok(r) => a.account_in(&r).to_owned(),
        Err(_) => a.account.to_owned(),
    }
}

/// The statements of `used`, by the account whose operator policy they belong in (plan
/// order: the source's first).
fn statements(plan: &Plan, account_id: &str, used: &NotifyUse) -> Vec<(String, Vec<Statement>)> {
    let a = Arns { plan, account: account_id };
    let accounts: Vec<&str> = plan_accounts(&a).into_iter().map(|(id, _)| id).collect();
    let mut buses: Vec<(String, String)> = Vec::new();
    for (region, bus) in &used.channels.event_buses {
        let arn = bus.starts_with("arn:").then_some(bus.as_str());
        let account = caller(&a, &accounts, region, arn);
        let arn = match arn {
            Some(arn) => arn.to_owned(),
            None => {
                let partition = Region::parse(region).map_or(a.partition(), |r| r.partition());
                format!("arn:{partition}:events:{region}:{account}:event-bus/{bus}")
            }
        };
        buses.push((account, arn));
    }
    let topics: Vec<(String, String)> = used
        .channels
        .sns_topics
        .iter()
        .map(|t| {
            let region = drover_engine::notify::arn_region(t).unwrap_or_default();
            (caller(&a, &accounts, region, Some(t)), t.clone())
        })
        .collect();
    let mut out = Vec::new();
    // `caller` names only accounts of the plan.
    for id in accounts {
        let mut b = Builder(Vec::new());
        let mine = |list: &[(String, String)]| -> Vec<String> {
            list.iter().filter(|(acc, _)| acc == id).map(|(_, arn)| arn.clone()).collect()
        };
        b.push(Statement::allow(PUT_EVENTS_SID, &["events:PutEvents"], mine(&buses)));
        b.push(Statement::allow(PUBLISH_SID, &["sns:Publish"], mine(&topics)));
        let regions: BTreeSet<String> = plan
            .targets
            .iter()
            .filter(|t| a.account_of(t) == id)
            .map(|t| t.region.to_string())
            .collect();
        if used.publish_metrics && !regions.is_empty() {
            b.push(
                Statement::allow(PUT_METRICS_SID, &["cloudwatch:PutMetricData"], ["*".to_owned()])
                    .when("StringEquals", "cloudwatch:namespace", [NAMESPACE.to_owned()])
                    .when("StringEquals", "aws:RequestedRegion", regions),
            );
        }
        if !b.0.is_empty() {
            out.push((id.to_owned(), b.0));
        }
    }
    out
}

impl Documents {
    /// Adds the statements of the events and metrics `used` ([`NotifyUse`]) to the operator
    /// policy of the account whose credentials send them (a plan in one account: its operator
    /// policy). Nothing when nothing is used.
    pub fn add_notify_statements(&mut self, plan: &Plan, account_id: &str, used: &NotifyUse) {
        for (account, statements) in statements(plan, account_id, used) {
            match self {
                Documents::Single(p) => p.operator.statements.extend(statements),
                Documents::PerAccount(p) => p
                    .accounts
                    .entry(&account)
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
}

#[cfg(test)]
mod tests {
    use super::super::tests::{FULL_PLAN, RECOVERY, cross_account_plan, load, notify_everything};
    use super::super::{Kind, documents, policies};
    use super::*;

    fn find<'d>(doc: &'d PolicyDocument, sid: &str) -> Option<&'d Statement> {
        doc.statements.iter().find(|s| s.sid == sid)
    }

    #[test]
    fn nothing_is_added_for_a_plan_and_flags_that_send_nothing() {
        let plan = load(FULL_PLAN);
        let before = Documents::Single(policies(&plan, "123456789012"));
        let mut after = before.clone();
        after.add_notify_statements(&plan, "123456789012", &NotifyUse::default());
        assert_eq!(after, before);
        assert!(NotifyUse::default().is_empty());
    }

    #[test]
    fn a_plan_in_one_account_gets_each_used_statement_in_its_operator_policy() {
        let plan = load(FULL_PLAN);
        let mut d = Documents::Single(policies(&plan, "123456789012"));
        d.add_notify_statements(&plan, "123456789012", &notify_everything("123456789012"));
        let Documents::Single(p) = &d else { panic!("one account") };
        let events = find(&p.operator, PUT_EVENTS_SID).unwrap();
        assert_eq!(events.actions, ["events:PutEvents"]);
        assert_eq!(
            events.resources,
            [
                "arn:aws:events:eu-west-1:123456789012:event-bus/ops",
                "arn:aws:events:us-east-1:123456789012:event-bus/default",
            ]
        );
        let sns = find(&p.operator, PUBLISH_SID).unwrap();
        assert_eq!(sns.resources, ["arn:aws:sns:us-west-2:123456789012:dr-alerts"]);
        let metrics = serde_json::to_value(find(&p.operator, PUT_METRICS_SID).unwrap()).unwrap();
        assert_eq!(
            metrics,
            serde_json::json!({
                "Sid": "PutDroverMetrics",
                "Effect": "Allow",
                "Action": ["cloudwatch:PutMetricData"],
                "Resource": ["*"],
                "Condition": {"StringEquals": {
                    "aws:RequestedRegion": ["eu-west-1", "us-west-2"],
                    "cloudwatch:namespace": "Drover",
                }},
            })
        );
    }

    #[test]
    fn only_what_is_used_is_granted() {
        let plan = load(FULL_PLAN);
        let mut used = notify_everything("123456789012");
        used.publish_metrics = false;
        used.channels.event_buses.clear();
        let mut d = Documents::Single(policies(&plan, "123456789012"));
        d.add_notify_statements(&plan, "123456789012", &used);
        let Documents::Single(p) = &d else { panic!("one account") };
        assert!(find(&p.operator, PUBLISH_SID).is_some());
        assert!(find(&p.operator, PUT_EVENTS_SID).is_none());
        assert!(find(&p.operator, PUT_METRICS_SID).is_none());
    }

    #[test]
    fn statements_go_to_the_account_whose_credentials_send() {
        let plan = cross_account_plan();
        let mut used = notify_everything(RECOVERY);
        // A bus by name in the recovery account's region, and a topic of an account outside
        // the plan (sent with the source account's credentials).
        used.channels.event_buses.push(("us-west-2".to_owned(), "dr".to_owned()));
        used.channels.sns_topics.push("arn:aws:sns:us-east-1:999999999999:central".to_owned());
        let mut d = documents(&plan, "123456789012", None);
        d.add_notify_statements(&plan, "123456789012", &used);
        let Documents::PerAccount(p) = &d else { panic!("per account") };
        let source = p.accounts.get("123456789012").unwrap().operator.as_ref().unwrap();
        let recovery = p.accounts.get(RECOVERY).unwrap().operator.as_ref().unwrap();
        assert_eq!(
            find(source, PUT_EVENTS_SID).unwrap().resources,
            [
                "arn:aws:events:eu-west-1:123456789012:event-bus/ops",
                "arn:aws:events:us-east-1:123456789012:event-bus/default",
            ]
        );
        assert_eq!(
            find(recovery, PUT_EVENTS_SID).unwrap().resources,
            [format!("arn:aws:events:us-west-2:{RECOVERY}:event-bus/dr")]
        );
        assert_eq!(
            find(recovery, PUBLISH_SID).unwrap().resources,
            [format!("arn:aws:sns:us-west-2:{RECOVERY}:dr-alerts")]
        );
        assert_eq!(
            find(source, PUBLISH_SID).unwrap().resources,
            ["arn:aws:sns:us-east-1:999999999999:central"]
        );
        // Metrics are put in each target's region, with its account's credentials.
        let regions = |doc: &PolicyDocument| {
            serde_json::to_value(&find(doc, PUT_METRICS_SID).unwrap().condition).unwrap()
                ["StringEquals"]["aws:RequestedRegion"]
                .clone()
        };
        assert_eq!(regions(source), "eu-west-1");
        assert_eq!(regions(recovery), "us-west-2");
        // The operator's own policy (assuming roles) gets none of them.
        let own = p.operator.as_ref().unwrap();
        assert!(own.statements.iter().all(|s| s.sid == "AssumePlanRoles"), "{own:?}");
        // And the selection by role still finds them.
        let picked = d_operator(&d, RECOVERY);
        assert!(picked.contains("sns:Publish"), "{picked}");
    }

    fn d_operator(d: &Documents, account: &str) -> String {
        let Documents::PerAccount(p) = d else { panic!("per account") };
        let selected = p.select(Kind::Operator, Some(account)).unwrap();
        serde_json::to_string(selected.document).unwrap()
    }
}
