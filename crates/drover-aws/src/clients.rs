//! The SDK clients: one shared configuration (behaviour version, retries, timeouts,
//! credentials, endpoint) and one set of clients per (account, region), built on first use
//! and kept. A plan puts each region in one account, so the region names both; the account's
//! credentials are the operator's, or the role the plan names there (`accounts.rs`).
//!
//! [`sdk_config`] is the only place that loads an SDK configuration: the state store
//! (`state_store.rs`) builds its S3 client from it too.

use std::collections::HashMap;
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use tokio::sync::Mutex;

use crate::AwsOptions;
use crate::accounts::{Access, Accounts, Sessions};

/// The SDK clients of one region.
#[derive(Clone)]
pub(crate) struct Clients {
    /// AWS Backup.
    pub(crate) backup: aws_sdk_backup::Client,
    /// DynamoDB.
    pub(crate) dynamodb: aws_sdk_dynamodb::Client,
    /// KMS.
    pub(crate) kms: aws_sdk_kms::Client,
    /// STS (GetCallerIdentity).
    pub(crate) sts: aws_sdk_sts::Client,
}

/// Builds SDK clients once per (account, region) and keeps them: one shared configuration
/// (behaviour version, retries, timeouts, credentials, endpoint), per-region clients with
/// the credentials of the region's account.
pub(crate) struct ClientFactory {
    /// How to reach AWS, for every region.
    options: AwsOptions,
    /// The account of each region and how drover acts there.
    accounts: Accounts,
    /// The sessions of assumed roles, one per account.
    sessions: Sessions,
    /// The clients built so far, by region (each region is in one account).
    clients: Mutex<HashMap<String, Clients>>,
    /// The event and metric clients built so far, by (region, account: empty for the
    /// operator's own credentials).
    notify: Mutex<HashMap<(String, String), NotifyClients>>,
}

/// The clients of events and metrics in one region, with one account's credentials (a bus
/// or topic may be outside the plan's regions: `Accounts::access_for`).
#[derive(Clone)]
pub(crate) struct NotifyClients {
    /// EventBridge.
    pub(crate) events: aws_sdk_eventbridge::Client,
    /// SNS.
    pub(crate) sns: aws_sdk_sns::Client,
    /// CloudWatch (Smithy RPC v2 CBOR).
    pub(crate) cloudwatch: aws_sdk_cloudwatch::Client,
}

impl ClientFactory {
    /// A factory that has built no clients yet.
    pub(crate) fn new(options: AwsOptions, accounts: Accounts) -> ClientFactory {
        ClientFactory {
            options,
            accounts,
            sessions: Sessions::default(),
            clients: Mutex::new(HashMap::new()),
            notify: Mutex::new(HashMap::new()),
        }
    }

    /// The SDK configuration of `region` with the credentials of `access`'s account (the
    /// operator's own when `None` or when the plan names no role there).
    async fn config(&self, region: &str, access: Option<&Access>) -> SdkConfig {
        // The engine retries throttling with backoff and lowers its concurrency; the SDK
        // makes a few quick attempts first. Every attempt may time out, with the SDK's backoff
        // between them.
        let limits = CallLimits::new(&self.options, 3, |attempt| attempt * 4);
        let config = sdk_config(&self.options, region, &limits).await;
        if let Some(access) = access
            && let Some(role) =
                self.sessions.credentials(access, self.accounts.session_name(), &config).await
        {
            return config.into_builder().credentials_provider(role).build();
        }
        config
    }

    /// The event and metric clients of `region`, acting in the account `account` names
    /// (an ARN's account, when there is one) as [`Accounts::access_for`] says; built on the
    /// first call for them.
    pub(crate) async fn notify(&self, region: &str, account: Option<&str>) -> NotifyClients {
        let access = self.accounts.access_for(region, account);
        let key = (region.to_owned(), access.map(|a| a.account.clone()).unwrap_or_default());
        let mut clients = self.notify.lock().await;
        if let Some(c) = clients.get(&key) {
            return c.clone();
        }
        let config = self.config(region, access).await;
        let c = NotifyClients {
            events: aws_sdk_eventbridge::Client::new(&config),
            sns: aws_sdk_sns::Client::new(&config),
            cloudwatch: aws_sdk_cloudwatch::Client::new(&config),
        };
        clients.insert(key, c.clone());
        c
    }

    /// The clients of `region`, built on the first call for it.
    pub(crate) async fn get(&self, region: &str) -> Clients {
        let mut clients = self.clients.lock().await;
        if let Some(c) = clients.get(region) {
            return c.clone();
        }
        let config = self.config(region, self.accounts.access(region)).await;
        let c = Clients {
            backup: aws_sdk_backup::Client::new(&config),
            dynamodb: aws_sdk_dynamodb::Client::new(&config),
            kms: aws_sdk_kms::Client::new(&config),
            sts: aws_sdk_sts::Client::new(&config),
        };
        clients.insert(region.to_owned(), c.clone());
        c
    }
}

/// How many attempts a call makes and how long it may take.
pub(crate) struct CallLimits {
    /// Attempts per call (standard retry mode).
    pub(crate) attempts: u32,
    /// The longest wait for one attempt (`options.call_timeout_ms`, default 30 s).
    pub(crate) attempt: Duration,
    /// The longest wait for the whole call, every attempt and backoff included.
    pub(crate) operation: Duration,
}

impl CallLimits {
    /// `attempts` attempts of at most `options.call_timeout_ms` each (default 30 s), the whole
    /// call at most `operation(attempt timeout)`.
    pub(crate) fn new(
        options: &AwsOptions,
        attempts: u32,
        operation: impl FnOnce(Duration) -> Duration,
    ) -> CallLimits {
        let attempt = Duration::from_millis(options.call_timeout_ms.unwrap_or(30_000));
        CallLimits { attempts, attempt, operation: operation(attempt) }
    }
}

/// The SDK configuration of `region`: the pinned behaviour version, standard retries and the
/// timeouts of `limits` (connections within 5 s at most), credentials (the standard chain,
/// `--profile`, or the emulator's), and the endpoint override of the region
/// ([`endpoint`]).
pub(crate) async fn sdk_config(
    options: &AwsOptions,
    region: &str,
    limits: &CallLimits,
) -> SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(region.to_owned()))
        .retry_config(RetryConfig::standard().with_max_attempts(limits.attempts))
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(5).min(limits.attempt))
                .operation_attempt_timeout(limits.attempt)
                .operation_timeout(limits.operation)
                .build(),
        );
    if let Some(profile) = &options.profile {
        loader = loader.profile_name(profile);
    }
    if options.emulator_credentials {
        loader = loader.credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "testing",
            "testing",
            None,
            None,
            "drover-emulator",
        ));
    }
    if let Some(url) = endpoint(options, region) {
        loader = loader.endpoint_url(url);
    }
    loader.load().await
}

/// The endpoint override of `region`: `--region-endpoint`, else `--endpoint-url`.
pub(crate) fn endpoint<'a>(options: &'a AwsOptions, region: &str) -> Option<&'a str> {
    options.region_endpoints.get(region).or(options.endpoint_url.as_ref()).map(String::as_str)
}
