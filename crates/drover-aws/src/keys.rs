//! KMS: the state, region and manager of the keys restores and vaults encrypt with, and
//! their policies.

use async_trait::async_trait;
use drover_engine::ports::{CloudResult, KeyInfo, KeyService};

use crate::AwsCloud;
use crate::errors::{self, missing};

#[async_trait]
impl KeyService for AwsCloud {
    async fn describe_key(&self, region: &str, key_arn: &str) -> CloudResult<KeyInfo> {
        const OP: &str = "DescribeKey";
        let out = self
            .clients(region)
            .await
            .kms
            .describe_key()
            .key_id(key_arn)
            .send()
            .await
            .map_err(|e| errors::map(OP, &e))?;
        let meta = out.key_metadata().ok_or_else(|| missing(OP, "KeyMetadata"))?;
        let arn = meta.arn().unwrap_or(key_arn).to_owned();
        let key_region = arn.split(':').nth(3).unwrap_or(region).to_owned();
        Ok(KeyInfo {
            arn,
            state: meta.key_state().map_or("Unknown", |s| s.as_str()).to_owned(),
            region: key_region,
            aws_managed: meta.key_manager().is_some_and(|m| m.as_str() == "AWS"),
        })
    }

    async fn key_policy(&self, region: &str, key_arn: &str) -> CloudResult<String> {
        const OP: &str = "GetKeyPolicy";
        let out = self
            .clients(region)
            .await
            .kms
            .get_key_policy()
            .key_id(key_arn)
            .policy_name("default")
            .send()
            .await
            .map_err(|e| errors::map(OP, &e))?;
        out.policy().map(str::to_owned).ok_or_else(|| missing(OP, "Policy"))
    }
}
