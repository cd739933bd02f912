//! KMS ([`KeyService`]): DescribeKey, GetKeyPolicy.

use async_trait::async_trait;
use drover_engine::ErrorKind;
use drover_engine::ports::{CloudResult, KeyInfo, KeyService};

use crate::cloud::SimCloud;
use crate::{err, policy};

#[async_trait]
impl KeyService for SimCloud {
    async fn describe_key(&self, region: &str, key_arn: &str) -> CloudResult<KeyInfo> {
        const OP: &str = "DescribeKey";
        self.op(OP, region, |w, _| {
            let r = w.region(OP, region)?;
            let k = r.keys.get(key_arn).ok_or_else(|| {
                err(ErrorKind::NotFound, OP, format!("Key '{key_arn}' does not exist"))
            })?;
            Ok(KeyInfo {
                arn: key_arn.to_owned(),
                state: k.state.clone(),
                region: region.to_owned(),
                aws_managed: k.aws_managed,
            })
        })
        .await
    }

    async fn key_policy(&self, region: &str, key_arn: &str) -> CloudResult<String> {
        const OP: &str = "GetKeyPolicy";
        self.op(OP, region, |w, _| {
            // The key's account: its ARN's, else its region's.
            let account = match drover_plan::arn_account(key_arn) {
                "" => w.account_of(region).to_owned(),
                account => account.to_owned(),
            };
            let r = w.region(OP, region)?;
            let k = r.keys.get(key_arn).ok_or_else(|| {
                err(ErrorKind::NotFound, OP, format!("Key '{key_arn}' does not exist"))
            })?;
            Ok(k.policy
                .clone()
                .unwrap_or_else(|| policy::default_key_policy(&account, k.aws_managed)))
        })
        .await
    }
}
