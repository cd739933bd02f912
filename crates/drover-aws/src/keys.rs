//! KMS: the state and region of the keys restores encrypt with.

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
        })
    }
}
