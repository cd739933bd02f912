//! The engine's object store port on Amazon S3: where runs' state lives when `--state` names a
//! bucket (`s3://bucket/prefix`).
//!
//! S3's own conditional requests fence concurrent writers: PutObject with `If-None-Match: *`
//! ([`Condition::Absent`]) or `If-Match: <ETag>` ([`Condition::Matches`]), DeleteObject with
//! `If-Match`. A request whose condition fails is [`Written::Conflict`] (412
//! `PreconditionFailed`, or 409 `ConditionalRequestConflict`: another conditional write to the
//! key was in progress), never an error, and never retried here: the caller reads the object
//! again and decides. Every write carries a SHA-256 checksum that S3 verifies (buckets with
//! Object Lock refuse writes without one: hashicorp/terraform#36113) and, with a KMS key,
//! asks for SSE-KMS with that key; without one the bucket's default encryption applies.
//!
//! The client is built like the ports' (`clients.rs`), with five attempts per call (standard
//! retries: throttling, 5xx, timeouts, connections refused) and path-style addressing when an
//! endpoint override points at an emulator. It calls the bucket's own region: the one given,
//! or the one HeadBucket (`x-amz-bucket-region`) or GetBucketLocation answers in `us-east-1`.
//! The IAM permissions these calls need are [`crate::iam::state_statements`].

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{BucketVersioningStatus, ChecksumAlgorithm, ServerSideEncryption};
use drover_engine::ports::CloudResult;
use drover_engine::store::{
    Condition, Listed, Object, ObjectStore, StoreFacts, Versioning, Written,
};
use drover_engine::{CloudError, ErrorKind};

use crate::AwsOptions;
use crate::clients::{CallLimits, endpoint, sdk_config};
use crate::errors;

/// Attempts per S3 call. S3 answers bursts with 503 `SlowDown` and asks clients to back off
/// and retry; the state store has no engine above it to retry for it.
const ATTEMPTS: u32 = 5;

/// The longest the SDK's standard retries wait between `ATTEMPTS` attempts: 1 s, doubling
/// (the standard strategy's initial backoff, jittered down, at most 20 s each).
const BACKOFF: Duration = Duration::from_secs(1 + 2 + 4 + 8);

/// The region that asks S3 where a bucket is, when the caller does not say.
const DISCOVERY_REGION: &str = "us-east-1";

/// Where the store is: a bucket, a prefix in it, and how to write there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3StoreConfig {
    /// The bucket's name.
    pub bucket: String,
    /// The prefix of every key, without slashes at either end (they are trimmed); empty for
    /// the bucket's root.
    pub prefix: String,
    /// The bucket's region; asked of S3 when `None`.
    pub region: Option<String>,
    /// The KMS key (ARN, id or alias) objects are encrypted with (SSE-KMS); `None` leaves
    /// the bucket's default encryption.
    pub kms_key: Option<String>,
    /// Keys per ListObjectsV2 page (`MaxKeys`; S3's default and maximum is 1,000); tests set
    /// it small to page.
    pub page_size: Option<i32>,
}

/// The object store on S3: a bucket and prefix, reached through the official SDK.
#[derive(Debug, Clone)]
pub struct S3Store {
    /// The client, in the bucket's region.
    s3: aws_sdk_s3::Client,
    bucket: String,
    /// Trimmed of slashes; empty for the bucket's root.
    prefix: String,
    region: String,
    kms_key: Option<String>,
    page_size: Option<i32>,
}

impl S3Store {
    /// A store on `config.bucket` under `config.prefix`, with a client in the bucket's region:
    /// `config.region`, or else the region S3 gives for the bucket (HeadBucket's
    /// `x-amz-bucket-region`, falling back to GetBucketLocation), asked in `us-east-1`.
    ///
    /// # Errors
    /// When the bucket's region cannot be found: the bucket does not exist, S3 cannot be
    /// reached, or the credentials may not ask (a [`CloudError`] of the call that failed).
    ///
    /// # Cancel safety
    /// Cancel safe: it only reads.
    pub async fn connect(
        options: &AwsOptions,
        config: S3StoreConfig,
    ) -> Result<S3Store, CloudError> {
        let limits = CallLimits::new(options, ATTEMPTS, |attempt| attempt * ATTEMPTS + BACKOFF);
        let bucket = config.bucket;
        let prefix = config.prefix.trim_matches('/').to_owned();
        let region = match config.region {
            Some(region) => region,
            None => {
                let s3 = client(options, DISCOVERY_REGION, &limits).await;
                bucket_region(&s3, &bucket).await?
            }
        };
        let s3 = client(options, &region, &limits).await;
        Ok(S3Store {
            s3,
            bucket,
            prefix,
            region,
            kms_key: config.kms_key,
            page_size: config.page_size,
        })
    }

    /// The object key of `key` (or the ListObjectsV2 prefix of a `prefix`), relative to the
    /// store's prefix: below it, after one slash (so that `state` does not list `state-old/`).
    fn object_key(&self, key: &str) -> String {
        let key = key.trim_start_matches('/');
        if self.prefix.is_empty() { key.to_owned() } else { format!("{}/{key}", self.prefix) }
    }

    /// `key` (an object key) relative to the store's prefix.
    fn relative<'k>(&self, key: &'k str) -> &'k str {
        if self.prefix.is_empty() {
            key
        } else {
            key.strip_prefix(self.prefix.as_str()).and_then(|k| k.strip_prefix('/')).unwrap_or(key)
        }
    }

    /// `s3://bucket/object`, for messages.
    fn url(&self, object: &str) -> String {
        if object.is_empty() {
            format!("s3://{}", self.bucket)
        } else {
            format!("s3://{}/{object}", self.bucket)
        }
    }

    /// The error of `op` on `object` (an object key, or a prefix), in one sentence: where, the
    /// service's code and message, and what to do.
    fn fail<E>(&self, op: &str, object: &str, e: &SdkError<E, HttpResponse>) -> CloudError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        located(errors::map(op, e), &self.url(object))
    }
}

/// An S3 client in `region`, path-style when an endpoint override is set (emulators serve
/// neither virtual-hosted buckets nor their DNS names).
async fn client(options: &AwsOptions, region: &str, limits: &CallLimits) -> aws_sdk_s3::Client {
    let config = sdk_config(options, region, limits).await;
    let overridden = endpoint(options, region).is_some() || config.endpoint_url().is_some();
    let s3 = aws_sdk_s3::config::Builder::from(&config).force_path_style(overridden).build();
    aws_sdk_s3::Client::from_conf(s3)
}

/// The region of `bucket`, asked through `s3`: HeadBucket's `x-amz-bucket-region`, which S3
/// sends on a redirect or a denial too; else GetBucketLocation, whose empty location
/// constraint is `us-east-1` (and `EU`, of the oldest buckets, `eu-west-1`).
async fn bucket_region(s3: &aws_sdk_s3::Client, bucket: &str) -> Result<String, CloudError> {
    const HEADER: &str = "x-amz-bucket-region";
    let url = format!("s3://{bucket}");
    let head = s3.head_bucket().bucket(bucket).send().await;
    let found = match &head {
        Ok(out) => out.bucket_region().map(str::to_owned),
        Err(e) => match e.raw_response() {
            Some(raw) => match raw.headers().get(HEADER) {
                Some(region) => Some(region.to_owned()),
                None => {
                    let mapped = errors::map("HeadBucket", e);
                    if mapped.kind == ErrorKind::NotFound {
                        return Err(located(mapped, &url));
                    }
                    // A denial without the header (HeadBucket needs `s3:ListBucket`, which
                    // the state statements hold to the prefix): GetBucketLocation may answer.
                    None
                }
            },
            // No answer (S3 out of reach, timeouts): asking again another way would only
            // double the wait.
            None => return Err(located(errors::map("HeadBucket", e), &url)),
        },
    };
    if let Some(region) = found.filter(|r| !r.is_empty()) {
        return Ok(region);
    }
    let out = s3
        .get_bucket_location()
        .bucket(bucket)
        .send()
        .await
        .map_err(|e| located(errors::map("GetBucketLocation", &e), &url))?;
    Ok(match out.location_constraint().map(|c| c.as_str()) {
        None | Some("") => "us-east-1".to_owned(),
        Some("EU") => "eu-west-1".to_owned(),
        Some(region) => region.to_owned(),
    })
}

/// `e` with its message saying where (`url`) and what to do, in one sentence.
fn located(e: CloudError, url: &str) -> CloudError {
    let fix = match e.kind {
        ErrorKind::NotFound => "check that the bucket exists and that the state location names it",
        ErrorKind::AccessDenied => {
            "grant the caller the state bucket's permissions (`drover_aws::iam::state_statements`: \
             S3 on the prefix, KMS on its key)"
        }
        ErrorKind::Unauthenticated => "refresh the credentials or pass --profile NAME",
        ErrorKind::Credentials => "give drover AWS credentials (environment, --profile, SSO)",
        ErrorKind::Unreachable => "check that the S3 endpoint is up and reachable",
        ErrorKind::Throttled => "S3 asks to slow down: try again in a moment",
        ErrorKind::Transient => "a passing S3 fault: try again",
        _ => "check the state location and the bucket's settings",
    };
    let message = format!("{url}: {}; {fix}", e.message);
    CloudError::new(e.kind, e.op, message)
}

/// The service's code and the HTTP status of a failed call, when it got an answer.
fn answer<E: ProvideErrorMetadata>(e: &SdkError<E, HttpResponse>) -> (Option<&str>, Option<u16>) {
    let code = e.as_service_error().and_then(ProvideErrorMetadata::code);
    (code, e.raw_response().map(|r| r.status().as_u16()))
}

/// Whether S3 refused a conditional request for its condition: 412 `PreconditionFailed`, or
/// 409 `ConditionalRequestConflict` (a conflicting write to the key in progress).
fn failed_condition(code: Option<&str>, status: Option<u16>) -> bool {
    matches!(code, Some("PreconditionFailed" | "ConditionalRequestConflict")) || status == Some(412)
}

/// Whether S3 answered that the key has no object (not that the bucket does not exist).
fn no_such_key(code: Option<&str>) -> bool {
    matches!(code, Some("NoSuchKey" | "NotFound"))
}

/// The content type of `key`: JSON lines for `.jsonl`, else JSON.
fn content_type(key: &str) -> &'static str {
    if key.ends_with(".jsonl") { "application/x-ndjson" } else { "application/json" }
}

#[async_trait]
impl ObjectStore for S3Store {
    fn location(&self) -> String {
        self.url(&self.prefix)
    }

    async fn get(&self, key: &str) -> CloudResult<Option<Object>> {
        const OP: &str = "GetObject";
        let object = self.object_key(key);
        let out = match self.s3.get_object().bucket(&self.bucket).key(&object).send().await {
            Ok(out) => out,
            Err(e) if no_such_key(answer(&e).0) => return Ok(None),
            Err(e) => return Err(self.fail(OP, &object, &e)),
        };
        let etag = out.e_tag().unwrap_or_default().to_owned();
        let modified = out.last_modified().and_then(|d| d.to_millis().ok());
        let bytes = out.body.collect().await.map_err(|e| {
            let message = format!("the body was cut short: {}", errors::chain(&e));
            located(CloudError::new(ErrorKind::Transient, OP, message), &self.url(&object))
        })?;
        Ok(Some(Object { bytes: bytes.into_bytes().to_vec(), etag, modified }))
    }

    /// A [`Written::Conflict`] may follow a first attempt that wrote and whose answer was lost
    /// (a timeout): the SDK's retry then fails the condition that the first attempt met. The
    /// caller tells the two apart by reading the object back.
    async fn put(&self, key: &str, bytes: Vec<u8>, condition: Condition) -> CloudResult<Written> {
        const OP: &str = "PutObject";
        let object = self.object_key(key);
        let (if_none_match, if_match) = match &condition {
            Condition::Absent => (Some("*".to_owned()), None),
            Condition::Matches(etag) => (None, Some(etag.clone())),
        };
        let sse = self.kms_key.as_ref().map(|_| ServerSideEncryption::AwsKms);
        let sent = self
            .s3
            .put_object()
            .bucket(&self.bucket)
            .key(&object)
            .content_type(content_type(key))
            .checksum_algorithm(ChecksumAlgorithm::Sha256)
            .set_if_none_match(if_none_match)
            .set_if_match(if_match)
            .set_server_side_encryption(sse)
            .set_ssekms_key_id(self.kms_key.clone())
            .body(ByteStream::from(bytes))
            .send()
            .await;
        match sent {
            Ok(out) => Ok(Written::Done { etag: out.e_tag().unwrap_or_default().to_owned() }),
            Err(e) => {
                let (code, status) = answer(&e);
                // `If-Match` on a key without an object: S3 answers 404 `NoSuchKey`; the
                // object read is gone, which is the condition failing.
                let gone = matches!(condition, Condition::Matches(_)) && no_such_key(code);
                if failed_condition(code, status) || gone {
                    Ok(Written::Conflict)
                } else {
                    Err(self.fail(OP, &object, &e))
                }
            }
        }
    }

    async fn delete(&self, key: &str, if_match: Option<&str>) -> CloudResult<Written> {
        const OP: &str = "DeleteObject";
        let object = self.object_key(key);
        let delete = self
            .s3
            .delete_object()
            .bucket(&self.bucket)
            .key(&object)
            .set_if_match(if_match.map(str::to_owned))
            .send()
            .await;
        match delete {
            Ok(_) => Ok(Written::Done { etag: String::new() }),
            Err(e) => {
                let (code, status) = answer(&e);
                if no_such_key(code) {
                    Ok(Written::Done { etag: String::new() })
                } else if failed_condition(code, status) {
                    Ok(Written::Conflict)
                } else {
                    Err(self.fail(OP, &object, &e))
                }
            }
        }
    }

    async fn list(&self, prefix: &str) -> CloudResult<Vec<Listed>> {
        const OP: &str = "ListObjectsV2";
        let full = self.object_key(prefix);
        let mut pages = self
            .s3
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(&full)
            .set_max_keys(self.page_size)
            .into_paginator()
            .send();
        let mut listed = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| self.fail(OP, &full, &e))?;
            for object in page.contents() {
                let Some(key) = object.key() else { continue };
                listed.push(Listed {
                    key: self.relative(key).to_owned(),
                    size: object.size().and_then(|s| u64::try_from(s).ok()).unwrap_or(0),
                    modified: object.last_modified().and_then(|d| d.to_millis().ok()),
                });
            }
        }
        // S3 lists in UTF-8 binary order already; an S3-compatible store may not.
        listed.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(listed)
    }

    /// `prefix` is a directory: `runs` lists what is under `runs/`, as `runs/` does.
    async fn list_dirs(&self, prefix: &str) -> CloudResult<Vec<String>> {
        const OP: &str = "ListObjectsV2";
        let mut full = self.object_key(prefix);
        if !full.is_empty() && !full.ends_with('/') {
            full.push('/');
        }
        let mut pages = self
            .s3
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(&full)
            .delimiter("/")
            .set_max_keys(self.page_size)
            .into_paginator()
            .send();
        let mut dirs = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| self.fail(OP, &full, &e))?;
            for common in page.common_prefixes() {
                let Some(dir) = common.prefix() else { continue };
                let name = dir.strip_prefix(full.as_str()).unwrap_or(dir).trim_end_matches('/');
                if !name.is_empty() {
                    dirs.push(name.to_owned());
                }
            }
        }
        dirs.sort();
        dirs.dedup();
        Ok(dirs)
    }

    async fn facts(&self) -> CloudResult<StoreFacts> {
        let bucket = self.url("");
        let versioning = self
            .s3
            .get_bucket_versioning()
            .bucket(&self.bucket)
            .send()
            .await
            .map_err(|e| located(errors::map("GetBucketVersioning", &e), &bucket))?;
        let versioning = match versioning.status() {
            Some(BucketVersioningStatus::Enabled) => Versioning::Enabled,
            Some(BucketVersioningStatus::Suspended) => Versioning::Suspended,
            _ => Versioning::Off,
        };
        // Advisory: a bucket without a default encryption rule, or a caller not allowed to
        // read it, has none to report.
        let default_encryption =
            match self.s3.get_bucket_encryption().bucket(&self.bucket).send().await {
                Ok(out) => out
                    .server_side_encryption_configuration()
                    .and_then(|c| c.rules().first())
                    .and_then(|r| r.apply_server_side_encryption_by_default())
                    .map(|d| d.sse_algorithm().as_str().to_owned()),
                Err(e) => {
                    let mapped = errors::map("GetBucketEncryption", &e);
                    let absent =
                        answer(&e).0 == Some("ServerSideEncryptionConfigurationNotFoundError");
                    if absent || mapped.kind == ErrorKind::AccessDenied {
                        None
                    } else {
                        return Err(located(mapped, &bucket));
                    }
                }
            };
        Ok(StoreFacts { region: self.region.clone(), versioning, default_encryption })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(prefix: &str) -> S3Store {
        let conf = aws_sdk_s3::Config::builder()
            .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
            .region(aws_sdk_s3::config::Region::new("eu-west-1"))
            .build();
        S3Store {
            s3: aws_sdk_s3::Client::from_conf(conf),
            bucket: "drover-state".to_owned(),
            prefix: prefix.trim_matches('/').to_owned(),
            region: "eu-west-1".to_owned(),
            kms_key: None,
            page_size: None,
        }
    }

    #[test]
    fn keys_go_under_the_prefix_without_double_slashes() {
        let s = store("/team/drover/");
        assert_eq!(s.object_key("runs/r1/journal.jsonl"), "team/drover/runs/r1/journal.jsonl");
        assert_eq!(s.object_key("/runs/r1"), "team/drover/runs/r1");
        assert_eq!(s.object_key(""), "team/drover/");
        assert_eq!(s.object_key("runs/"), "team/drover/runs/");
        assert_eq!(s.relative("team/drover/runs/r1/lease.json"), "runs/r1/lease.json");
        assert_eq!(s.location(), "s3://drover-state/team/drover");
        let root = store("");
        assert_eq!(root.object_key("runs/r1"), "runs/r1");
        assert_eq!(root.object_key(""), "");
        assert_eq!(root.relative("runs/r1"), "runs/r1");
        assert_eq!(root.location(), "s3://drover-state");
    }

    #[test]
    fn failed_conditions_are_412_and_409_conditional_request_conflict() {
        assert!(failed_condition(Some("PreconditionFailed"), Some(412)));
        assert!(failed_condition(None, Some(412)));
        assert!(failed_condition(Some("ConditionalRequestConflict"), Some(409)));
        // Another 409 is S3's passing conflict, retried as an error.
        assert!(!failed_condition(Some("OperationAborted"), Some(409)));
        assert!(!failed_condition(Some("NoSuchKey"), Some(404)));
        assert!(no_such_key(Some("NoSuchKey")));
        assert!(!no_such_key(Some("NoSuchBucket")), "a missing bucket is an error");
    }

    #[test]
    fn messages_say_where_and_what_to_do() {
        let e =
            CloudError::new(ErrorKind::AccessDenied, "PutObject", "AccessDenied: Access Denied");
        let e = located(e, "s3://drover-state/team/runs/r1/lease.json");
        assert_eq!(e.kind, ErrorKind::AccessDenied);
        assert_eq!(e.op, "PutObject");
        assert!(
            e.message.starts_with(
                "s3://drover-state/team/runs/r1/lease.json: AccessDenied: Access Denied; grant"
            ),
            "{}",
            e.message
        );
        assert_eq!(content_type("runs/r1/journal/0001.jsonl"), "application/x-ndjson");
        assert_eq!(content_type("runs/r1/lease.json"), "application/json");
    }

    #[test]
    fn the_store_is_an_object_store_for_any_thread() {
        fn shared(_: std::sync::Arc<dyn ObjectStore>) {}
        shared(std::sync::Arc::new(store("p")));
    }
}
