//! KMS ([`KeyService`]): DescribeKey.

use async_trait::async_trait;
use drover_engine::ErrorKind;
use drover_engine::ports::{CloudResult, KeyInfo, KeyService};

use crate::cloud::SimCloud;
use crate::err;

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
            })
        })
        .await
    }
}
