//! When AWS cannot be reached or does not let drover in: one sentence that names the cause
//! (no credentials, an endpoint out of reach, credentials refused, a call denied) and what to
//! do, for every command that talks to AWS, instead of one failure per resource.
//!
//! The adapter classifies ([`ErrorKind::is_access`]); this module only words it. Commands that
//! read many things first read one that they read anyway ([`check`]), so that a missing
//! credential chain or a closed port is told once and at once, before preflight's patient
//! retries would spend minutes on it.

use drover_engine::{CloudError, ErrorKind};
use drover_plan::Plan;

use crate::cloud::{Cloud, CloudSpec};

/// What a command can do without AWS, offered after the cause's own fixes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Instead {
    /// `--cloud sim`.
    Sim,
    /// `--sizes FILE` (an estimate), or `--cloud sim`.
    SizesOrSim,
}

/// Which side of the plan a command reads first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side<'a> {
    /// The source region (drills, backups, estimates): DescribeTable of the first table.
    Source,
    /// A target region, the first one unless named (failovers, readiness): DescribeBackupVault
    /// of its vault. A failover never calls the source, which may be down.
    Target(Option<&'a str>),
}

/// Reads one thing the command reads anyway, on `side`; the sentence for the operator when
/// that fails for want of access. Any other answer (a table or vault that does not exist, a
/// passing fault) is the command's own to report. The simulator is always reachable.
pub(crate) async fn check(
    plan: &Plan,
    side: Side<'_>,
    cloud: &Cloud,
    instead: Instead,
) -> Result<(), String> {
    if matches!(cloud.spec, CloudSpec::Sim(_)) {
        return Ok(());
    }
    let (region, result) = match side {
        Side::Source => {
            let Some(table) = plan.tables.first() else { return Ok(()) };
            let region = plan.source.region.as_str();
            (region, cloud.ports.tables.describe_table(region, &table.name).await.map(|_| ()))
        }
        Side::Target(named) => {
            let target = match named {
                Some(region) => plan.targets.iter().find(|t| t.region.as_str() == region),
                None => plan.targets.first(),
            };
            let Some(target) = target else { return Ok(()) };
            let region = target.region.as_str();
            (region, cloud.ports.backup.vault_arn(region, &target.backup_vault).await.map(|_| ()))
        }
    };
    match result {
        Err(e) => match message(&e, region, &cloud.spec, instead) {
            Some(sentence) => Err(sentence),
            None => Ok(()),
        },
        Ok(()) => Ok(()),
    }
}

/// The sentence for `e`, met calling `region` on `spec`, when it is an access failure
/// ([`ErrorKind::is_access`]); `None` for any other failure.
pub(crate) fn message(
    e: &CloudError,
    region: &str,
    spec: &CloudSpec,
    instead: Instead,
) -> Option<String> {
    let options = match spec {
        CloudSpec::Aws(options) => Some(options),
        CloudSpec::Sim(_) => None,
    };
    let endpoint = options
        .and_then(|o| o.region_endpoints.get(region).or(o.endpoint_url.as_ref()))
        .map(String::as_str);
    let profile = options
        .and_then(|o| o.profile.clone())
        .or_else(|| std::env::var("AWS_PROFILE").ok().filter(|p| !p.is_empty()));
    let assuming = e.message.starts_with(drover_aws::ASSUME_ROLE_FAILED);
    let (cause, fix) = match e.kind {
        ErrorKind::Credentials | ErrorKind::AccessDenied | ErrorKind::Unauthenticated
            if assuming =>
        {
            (
                format!("drover {} to act in {region}", e.message),
                "let your credentials assume it: the role's trust policy must allow \
                 sts:AssumeRole to their account (with the plan's external_id, if it names one), \
                 and their own policy must allow sts:AssumeRole on the role (`drover iam-policy \
                 PLAN` prints both)"
                    .to_owned(),
            )
        }
        ErrorKind::Credentials => (
            match &profile {
                Some(p) => format!("no AWS credentials found for {region} in profile `{p}`"),
                None => format!("no AWS credentials found for {region}"),
            } + " (`--log-level debug` shows where the SDK looked)",
            "pass --profile NAME or sign in with `aws sso login`".to_owned(),
        ),
        ErrorKind::Unreachable => match endpoint {
            Some(url) => (
                format!("cannot reach {url} for {region} ({})", e.message),
                "check that it is up and that --endpoint-url is right".to_owned(),
            ),
            None => (
                format!("cannot reach AWS in {region} ({})", e.message),
                "check the network, or point drover at an emulator with --endpoint-url URL"
                    .to_owned(),
            ),
        },
        ErrorKind::Unauthenticated => (
            format!(
                "AWS refused the credentials in {region} as expired or invalid ({})",
                e.message
            ),
            "refresh them (`aws sso login`, or new keys) or pass --profile NAME".to_owned(),
        ),
        ErrorKind::AccessDenied => (
            format!("AWS denied {} in {region} ({})", e.op, e.message),
            "grant the permissions `drover iam-policy PLAN` prints, or pass --profile NAME for \
             other credentials"
                .to_owned(),
        ),
        _ => return None,
    };
    let instead = match instead {
        Instead::Sim => "or use --cloud sim to work without AWS",
        Instead::SizesOrSim => {
            "give the table sizes with --sizes FILE, or use --cloud sim to work without AWS"
        }
    };
    Some(format!("{cause}; {fix}, {instead}"))
}

#[cfg(test)]
mod tests {
    use drover_aws::AwsOptions;

    use super::*;

    fn aws(endpoint: Option<&str>, profile: Option<&str>) -> CloudSpec {
        CloudSpec::Aws(AwsOptions {
            endpoint_url: endpoint.map(str::to_owned),
            profile: profile.map(str::to_owned),
            ..AwsOptions::default()
        })
    }

    #[test]
    fn only_access_failures_get_a_sentence() {
        let spec = aws(None, Some("prod"));
        for kind in [ErrorKind::NotFound, ErrorKind::Transient, ErrorKind::Throttled] {
            let e = CloudError::new(kind, "DescribeTable", "x");
            assert_eq!(message(&e, "us-east-1", &spec, Instead::Sim), None, "{kind}");
        }
    }

    #[test]
    fn each_sentence_names_the_cause_and_the_fixes() {
        let refused = CloudError::new(ErrorKind::Unreachable, "DescribeTable", "refused");
        let to_emulator = aws(Some("http://127.0.0.1:9"), None);
        assert_eq!(
            message(&refused, "us-east-1", &to_emulator, Instead::SizesOrSim).unwrap(),
            "cannot reach http://127.0.0.1:9 for us-east-1 (refused); check that it is up and \
             that --endpoint-url is right, give the table sizes with --sizes FILE, or use \
             --cloud sim to work without AWS"
        );
        let to_aws = aws(None, Some("prod"));
        let sentence = message(&refused, "us-east-1", &to_aws, Instead::Sim).unwrap();
        assert!(sentence.starts_with("cannot reach AWS in us-east-1 (refused); "), "{sentence}");
        let none = CloudError::new(ErrorKind::Credentials, "DescribeTable", "chain");
        let sentence = message(&none, "eu-west-1", &to_aws, Instead::Sim).unwrap();
        assert!(sentence.starts_with("no AWS credentials found for eu-west-1 in profile `prod` ("));
        assert!(sentence.ends_with("or use --cloud sim to work without AWS"), "{sentence}");
        let denied = CloudError::new(ErrorKind::AccessDenied, "DescribeBackupVault", "nope");
        let sentence = message(&denied, "us-west-2", &to_aws, Instead::Sim).unwrap();
        assert!(sentence.starts_with("AWS denied DescribeBackupVault in us-west-2 (nope); "));
        assert!(sentence.contains("drover iam-policy PLAN"), "{sentence}");
        let role = "arn:aws:iam::222222222222:role/drover";
        let assume = CloudError::new(
            ErrorKind::AccessDenied,
            "DescribeTable",
            format!("{} {role} (AccessDenied: not authorized)", drover_aws::ASSUME_ROLE_FAILED),
        );
        let sentence = message(&assume, "eu-west-1", &to_aws, Instead::Sim).unwrap();
        assert!(
            sentence.starts_with(&format!("drover could not assume role {role} (AccessDenied")),
            "{sentence}"
        );
        assert!(sentence.contains("to act in eu-west-1; let your credentials assume it"));
        assert!(sentence.contains("sts:AssumeRole on the role"), "{sentence}");
    }
}
