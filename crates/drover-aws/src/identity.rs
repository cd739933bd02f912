//! STS: who drover acts as in each region's account (GetCallerIdentity through the account's
//! credentials: a role that cannot be assumed fails here, before any other call).

use async_trait::async_trait;
use drover_engine::ports::{CallerIdentity, CloudResult, IdentityService};

use crate::AwsCloud;
use crate::errors::{self, missing};

#[async_trait]
impl IdentityService for AwsCloud {
    async fn caller_identity(&self, region: &str) -> CloudResult<CallerIdentity> {
        const OP: &str = "GetCallerIdentity";
        let out = self
            .clients(region)
            .await
            .sts
            .get_caller_identity()
            .send()
            .await
            .map_err(|e| errors::map(OP, &e))?;
        Ok(CallerIdentity {
            account: out.account().ok_or_else(|| missing(OP, "Account"))?.to_owned(),
            arn: out.arn().ok_or_else(|| missing(OP, "Arn"))?.to_owned(),
        })
    }
}
