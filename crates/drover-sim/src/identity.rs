//! STS ([`IdentityService`]): GetCallerIdentity, in the account of the region asked about.

use async_trait::async_trait;
use drover_engine::ports::{CallerIdentity, CloudResult, IdentityService};

use crate::cloud::SimCloud;

#[async_trait]
impl IdentityService for SimCloud {
    async fn caller_identity(&self, region: &str) -> CloudResult<CallerIdentity> {
        const OP: &str = "GetCallerIdentity";
        self.op(OP, region, |w, _| {
            w.region(OP, region)?;
            let account = w.account_of(region).to_owned();
            Ok(CallerIdentity { arn: session_arn(&account), account })
        })
        .await
    }
}

/// Who drover is in `account`: a role's session, as the AWS adapter acts in each account.
pub(crate) fn session_arn(account: &str) -> String {
    format!("arn:aws:sts::{account}:assumed-role/drover/drover-sim")
}
