//! CloudWatch: drover's metrics ([`MetricService`]), PutMetricData in the region the engine
//! names (a target's), with the credentials of that region's account (the source account's
//! for a region outside the plan). The SDK's CloudWatch client speaks Smithy RPC v2 CBOR (and
//! gzips large PutMetricData bodies); its errors carry their code in the body's `__type` and,
//! the service being `awsQueryCompatible`, the `x-amzn-query-error` header, which wins
//! (`InvalidParameterValue`, `InternalServiceError`, ...).

use async_trait::async_trait;
use aws_sdk_cloudwatch::types::{Dimension, MetricDatum, StandardUnit};
use aws_smithy_types::DateTime;
use drover_engine::metrics::{Datum, MetricService};
use drover_engine::ports::CloudResult;

use crate::AwsCloud;
use crate::errors;

fn datum(d: &Datum) -> MetricDatum {
    let dimensions = d
        .dimensions
        .iter()
        .map(|(name, value)| Dimension::builder().name(*name).value(value).build())
        .collect();
    MetricDatum::builder()
        .metric_name(d.name)
        .set_dimensions(Some(dimensions))
        .value(d.value)
        .unit(StandardUnit::from(d.unit.as_str()))
        .timestamp(DateTime::from_millis(d.timestamp))
        .build()
}

#[async_trait]
impl MetricService for AwsCloud {
    async fn put_metric_data(
        &self,
        region: &str,
        namespace: &str,
        data: &[Datum],
    ) -> CloudResult<()> {
        const OP: &str = "PutMetricData";
        self.factory
            .notify(region, None)
            .await
            .cloudwatch
            .put_metric_data()
            .namespace(namespace)
            .set_metric_data(Some(data.iter().map(datum).collect()))
            .send()
            .await
            .map_err(|e| errors::map(OP, &e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use drover_engine::metrics::Unit;

    use super::*;

    #[test]
    fn data_keep_their_name_dimensions_value_unit_and_time() {
        let d = Datum {
            name: "RecoveryPointAgeSeconds",
            dimensions: vec![("Plan", "shop".to_owned()), ("Target", "us-west-2".to_owned())],
            value: 90.0,
            unit: Unit::Seconds,
            timestamp: 1_767_225_600_000,
        };
        let m = datum(&d);
        assert_eq!(m.metric_name(), Some("RecoveryPointAgeSeconds"));
        let dims: Vec<(&str, &str)> = m
            .dimensions()
            .iter()
            .map(|x| (x.name().unwrap_or_default(), x.value().unwrap_or_default()))
            .collect();
        assert_eq!(dims, [("Plan", "shop"), ("Target", "us-west-2")]);
        assert_eq!(m.value(), Some(90.0));
        assert_eq!(m.unit(), Some(&StandardUnit::Seconds));
        assert_eq!(m.timestamp().map(|t| t.to_millis().ok()), Some(Some(1_767_225_600_000)));
        let count = Datum { unit: Unit::Count, ..d };
        assert_eq!(datum(&count).unit(), Some(&StandardUnit::Count));
    }
}
