//! Accounts: which account each region of a plan is in, and the credentials drover acts with
//! there.
//!
//! The engine's ports name regions only; a plan puts each region in exactly one account (the
//! source region in the source account, each target region in its target's account), so the
//! adapter picks the account, and with it the credentials, from the region. An account whose
//! plan entries name a `role_arn` is reached through STS AssumeRole (aws-config's
//! `AssumeRoleProvider`), chained from the operator's credentials (the standard chain,
//! `--profile` or the emulator's), with the session named after the run (`drover-<run id>`,
//! so that CloudTrail shows which run did what). Each account's session is shared by all its
//! regions' clients and renewed [`REFRESH_BEFORE`] before it expires, so long runs never
//! call with expired credentials; a new process assumes the roles again.

use std::collections::BTreeMap;
use std::error::Error;
use std::fmt;
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::{self, ProvideCredentials, SharedCredentialsProvider};
use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use drover_engine::ErrorKind;
use drover_plan::{AssumeRole, Plan};
use tokio::sync::Mutex;

use crate::errors::classify;

/// How long before its expiry an assumed session is renewed.
pub const REFRESH_BEFORE: Duration = Duration::from_secs(5 * 60);

/// How the message of a call that failed because its account's role could not be assumed
/// begins (so that commands can say what to fix: the role's trust, or the operator's
/// `sts:AssumeRole`).
pub const ASSUME_ROLE_FAILED: &str = "could not assume role";

/// The longest session name STS accepts (`RoleSessionName`, 2 to 64 of `[\w+=,.@-]`).
const SESSION_NAME_MAX: usize = 64;

/// Which account each region is in and how drover acts there; empty (every region with the
/// operator's own credentials) for commands without a plan.
#[derive(Debug, Clone, Default)]
pub struct Accounts {
    /// Region name to the account it is in and the role drover assumes there.
    regions: BTreeMap<String, Access>,
    /// The source account's: where drover acts outside the plan's regions and accounts (an
    /// event bus, topic or metric elsewhere).
    source: Option<Access>,
    /// The STS session name of assumed roles.
    session_name: String,
}

/// How drover acts in one account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Access {
    /// The account id.
    pub(crate) account: String,
    /// The role drover assumes there; `None`: the operator's own credentials.
    pub(crate) role: Option<AssumeRole>,
}

impl Accounts {
    /// The accounts of `plan`'s regions, with sessions named after `session` (a run id, or the
    /// command for commands without one).
    #[must_use]
    pub fn of_plan(plan: &Plan, session: &str) -> Accounts {
        let regions = plan
            .regions_and_accounts()
            .map(|(region, account)| {
                let access =
                    Access { account: account.to_owned(), role: plan.role_in(account).cloned() };
                (region.as_str().to_owned(), access)
            })
            .collect();
        let account = plan.source_account().to_owned();
        let source = Some(Access { role: plan.role_in(&account).cloned(), account });
        Accounts { regions, source, session_name: session_name(session) }
    }

    /// How drover acts in `region`'s account, when the plan names it.
    pub(crate) fn access(&self, region: &str) -> Option<&Access> {
        self.regions.get(region)
    }

    /// How drover acts for a resource outside the plan's tables (an event bus, a topic, a
    /// region's metrics) in `region`, of `account` when its ARN names one: that account's
    /// access when the plan puts a region in it; else, for a resource named without an
    /// account, `region`'s account when it is one of the plan's; else the source account's.
    /// `None`: the operator's own credentials.
    pub(crate) fn access_for(&self, region: &str, account: Option<&str>) -> Option<&Access> {
        let of_account = |id: &str| self.regions.values().find(|a| a.account == id);
        match account {
            Some(id) => of_account(id).or(self.source.as_ref()),
            None => self.regions.get(region).or(self.source.as_ref()),
        }
    }

    /// The session name of assumed roles.
    pub(crate) fn session_name(&self) -> &str {
        &self.session_name
    }
}

/// `drover-<id>`, cut to STS's 64 characters from the left (a run id's unique part is its
/// end), characters STS refuses replaced by `-`.
#[must_use]
pub fn session_name(id: &str) -> String {
    let clean: String = id
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || "+=,.@-_".contains(c) { c } else { '-' })
        .collect();
    let room = SESSION_NAME_MAX - "drover-".len();
    let start = clean.len().saturating_sub(room);
    format!("drover-{}", &clean[start..])
}

/// Whether credentials expiring at `expiry` must be renewed at `now`.
fn needs_refresh(expiry: Option<SystemTime>, now: SystemTime) -> bool {
    expiry.is_some_and(|at| at.duration_since(now).map_or(true, |left| left < REFRESH_BEFORE))
}

/// Why a role could not be assumed, with the kind of the failure (a denial, a passing fault)
/// for [`crate::errors`] to classify.
#[derive(Debug)]
pub(crate) struct AssumeRoleFailed {
    /// The kind the STS answer classifies as.
    pub(crate) kind: ErrorKind,
    /// What failed, in a sentence.
    message: String,
}

impl fmt::Display for AssumeRoleFailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl Error for AssumeRoleFailed {}

/// An assumed role's credentials, shared by every client of its account: one session at a
/// time, renewed [`REFRESH_BEFORE`] its expiry.
pub(crate) struct RoleCredentials {
    /// The role, for messages.
    role_arn: String,
    /// aws-config's assume-role provider (one STS AssumeRole per call).
    inner: aws_config::sts::AssumeRoleProvider,
    /// The current session, if any.
    current: Mutex<Option<Credentials>>,
}

impl fmt::Debug for RoleCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RoleCredentials").field("role_arn", &self.role_arn).finish_non_exhaustive()
    }
}

impl RoleCredentials {
    /// Credentials of `role`, assumed with the credentials and settings of `base` (the
    /// operator's), in sessions named `session_name`.
    pub(crate) async fn provider(
        role: &AssumeRole,
        session_name: &str,
        base: &aws_config::SdkConfig,
    ) -> SharedCredentialsProvider {
        let mut builder = aws_config::sts::AssumeRoleProvider::builder(&role.role_arn)
            .session_name(session_name)
            .configure(base);
        if let Some(id) = &role.external_id {
            builder = builder.external_id(id);
        }
        if let Some(length) = role.session_duration {
            builder = builder.session_length(length);
        }
        SharedCredentialsProvider::new(RoleCredentials {
            role_arn: role.role_arn.clone(),
            inner: builder.build().await,
            current: Mutex::new(None),
        })
    }

    async fn credentials(&self) -> provider::Result {
        let mut current = self.current.lock().await;
        if let Some(c) = current.as_ref()
            && !needs_refresh(c.expiry(), SystemTime::now())
        {
            return Ok(c.clone());
        }
        tracing::debug!(role = %self.role_arn, "assuming role");
        match self.inner.provide_credentials().await {
            Ok(c) => {
                *current = Some(c.clone());
                Ok(c)
            }
            Err(e) => Err(CredentialsError::provider_error(self.failure(&e))),
        }
    }

    /// What an AssumeRole failure means: the STS error's code (AccessDenied: the role does not
    /// trust the caller, the external id is wrong, or the caller may not assume it), or the
    /// chain's messages.
    fn failure(&self, e: &CredentialsError) -> AssumeRoleFailed {
        let mut next: Option<&(dyn Error + 'static)> = Some(e);
        let mut service = None;
        while let Some(err) = next {
            type StsError = aws_sdk_sts::error::SdkError<
                aws_sdk_sts::operation::assume_role::AssumeRoleError,
                aws_sdk_sts::config::http::HttpResponse,
            >;
            if let Some(aws_sdk_sts::error::SdkError::ServiceError(s)) =
                err.downcast_ref::<StsError>()
            {
                let status = s.raw().status().as_u16();
                let code = s.err().code().map(str::to_owned);
                let message = s.err().message().map(str::to_owned);
                service = Some((code, message, status));
                break;
            }
            next = err.source();
        }
        let role = &self.role_arn;
        match service {
            Some((code, message, status)) => {
                let kind = match classify(code.as_deref(), Some(status)) {
                    ErrorKind::Throttled | ErrorKind::Transient => ErrorKind::Transient,
                    ErrorKind::AccessDenied | ErrorKind::Unauthenticated => ErrorKind::AccessDenied,
                    _ => ErrorKind::Credentials,
                };
                let code = code.unwrap_or_else(|| format!("HTTP {status}"));
                let message = message.map(|m| format!(": {m}")).unwrap_or_default();
                AssumeRoleFailed {
                    kind,
                    message: format!("{ASSUME_ROLE_FAILED} {role} ({code}{message})"),
                }
            }
            None => AssumeRoleFailed {
                kind: ErrorKind::Credentials,
                message: format!("could not assume role {role}: {}", crate::errors::chain(e)),
            },
        }
    }
}

impl ProvideCredentials for RoleCredentials {
    fn provide_credentials<'a>(&'a self) -> provider::future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        provider::future::ProvideCredentials::new(self.credentials())
    }
}

/// The shared credentials of each assumed account, built on first use.
#[derive(Default)]
pub(crate) struct Sessions {
    by_account: Mutex<BTreeMap<String, SharedCredentialsProvider>>,
}

impl Sessions {
    /// The credentials drover acts with in `access`'s account, `None` for the operator's own.
    pub(crate) async fn credentials(
        &self,
        access: &Access,
        session_name: &str,
        base: &aws_config::SdkConfig,
    ) -> Option<SharedCredentialsProvider> {
        let role = access.role.as_ref()?;
        let mut by_account = self.by_account.lock().await;
        if let Some(p) = by_account.get(&access.account) {
            return Some(p.clone());
        }
        let p = RoleCredentials::provider(role, session_name, base).await;
        by_account.insert(access.account.clone(), p.clone());
        Some(p)
    }
}

impl fmt::Debug for Sessions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sessions").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_names_carry_the_run_id_within_stss_limits() {
        assert_eq!(session_name("shop-20261201-1a2b3c4d"), "drover-shop-20261201-1a2b3c4d");
        let long = format!("{}-deadbeef", "a".repeat(70));
        let name = session_name(&long);
        assert_eq!(name.len(), 64);
        assert!(name.starts_with("drover-") && name.ends_with("-deadbeef"), "{name}");
        assert_eq!(session_name("preflight check"), "drover-preflight-check");
    }

    #[test]
    fn sessions_are_renewed_before_they_expire() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        assert!(!needs_refresh(None, now), "credentials without expiry are kept");
        assert!(!needs_refresh(Some(now + Duration::from_secs(3600)), now));
        assert!(needs_refresh(Some(now + Duration::from_secs(299)), now));
        assert!(needs_refresh(Some(now - Duration::from_secs(1)), now), "expired");
    }
}
