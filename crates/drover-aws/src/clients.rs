//! The SDK clients: one shared configuration (behaviour version, retries, timeouts,
//! credentials, endpoint) and one set of clients per region, built on first use and kept.

use std::collections::HashMap;
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region};
use tokio::sync::Mutex;

use crate::AwsOptions;

/// The SDK clients of one region.
#[derive(Clone)]
pub(crate) struct Clients {
    /// AWS Backup.
    pub(crate) backup: aws_sdk_backup::Client,
    /// DynamoDB.
    pub(crate) dynamodb: aws_sdk_dynamodb::Client,
    /// KMS.
    pub(crate) kms: aws_sdk_kms::Client,
}

/// Builds SDK clients once per region and keeps them: one shared configuration (behaviour
/// version, retries, timeouts, credentials, endpoint), per-region clients.
pub(crate) struct ClientFactory {
    /// How to reach AWS, for every region.
    options: AwsOptions,
    /// The clients built so far, by region.
    clients: Mutex<HashMap<String, Clients>>,
}

impl ClientFactory {
    /// A factory that has built no clients yet.
    pub(crate) fn new(options: AwsOptions) -> ClientFactory {
        ClientFactory { options, clients: Mutex::new(HashMap::new()) }
    }

    /// The clients of `region`, built on the first call for it.
    pub(crate) async fn get(&self, region: &str) -> Clients {
        let mut clients = self.clients.lock().await;
        if let Some(c) = clients.get(region) {
            return c.clone();
        }
        let attempt = Duration::from_millis(self.options.call_timeout_ms.unwrap_or(30_000));
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new(region.to_owned()))
            // The engine retries throttling with backoff and lowers its concurrency; the SDK
            // makes a few quick attempts first.
            .retry_config(RetryConfig::standard().with_max_attempts(3))
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(5).min(attempt))
                    .operation_attempt_timeout(attempt)
                    // Every attempt may time out, with the SDK's backoff between them.
                    .operation_timeout(attempt * 4)
                    .build(),
            );
        if let Some(profile) = &self.options.profile {
            loader = loader.profile_name(profile);
        }
        if self.options.emulator_credentials {
            loader = loader.credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
                "testing",
                "testing",
                None,
                None,
                "drover-emulator",
            ));
        }
        if let Some(url) =
            self.options.region_endpoints.get(region).or(self.options.endpoint_url.as_ref())
        {
            loader = loader.endpoint_url(url);
        }
        let config = loader.load().await;
        let c = Clients {
            backup: aws_sdk_backup::Client::new(&config),
            dynamodb: aws_sdk_dynamodb::Client::new(&config),
            kms: aws_sdk_kms::Client::new(&config),
        };
        clients.insert(region.to_owned(), c.clone());
        c
    }
}
