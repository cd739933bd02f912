//! The state store on S3 (`drover_aws::S3Store`) against the emulator over HTTP: conditional
//! writes and deletes as S3 answers them (412, and an injected 409
//! `ConditionalRequestConflict`), reads, paged listings, the bucket's region and facts, SSE-KMS
//! and checksums on the wire, and the kinds of its failures (a missing bucket, a denial, a
//! closed port).

use std::net::TcpListener;
use std::sync::Arc;
use std::time::{Duration, Instant};

use drover_aws::{AwsOptions, S3Store, S3StoreConfig};
use drover_engine::ErrorKind;
use drover_engine::store::{Condition, ObjectStore, Versioning, Written};
use serde_json::json;

use crate::common::Emulator;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

fn options(url: &str) -> AwsOptions {
    AwsOptions {
        endpoint_url: Some(url.to_owned()),
        emulator_credentials: true,
        ..AwsOptions::default()
    }
}

fn config(bucket: &str, prefix: &str) -> S3StoreConfig {
    S3StoreConfig {
        bucket: bucket.to_owned(),
        prefix: prefix.to_owned(),
        region: None,
        kms_key: None,
        page_size: None,
    }
}

/// An emulator with `bucket` in `region`, and a store on it under `prefix`.
async fn store(emu: &Emulator, bucket: &str, region: &str, config: S3StoreConfig) -> S3Store {
    emu.create_bucket(bucket, region);
    S3Store::connect(&options(&emu.url()), config).await.unwrap()
}

/// How often the emulator answered `op` (`s3:PutObject`), faults included.
fn count(emu: &Emulator, op: &str) -> u64 {
    emu.calls()["by_operation"][op].as_u64().unwrap_or(0)
}

fn etag(written: Written) -> String {
    match written {
        Written::Done { etag } => etag,
        Written::Conflict => panic!("a conflict where a write was expected"),
    }
}

#[test]
fn conditional_writes_and_deletes_fence_writers() {
    let emu = Emulator::start_ideal(1.0);
    runtime().block_on(async {
        let s = store(&emu, "state", "us-east-1", config("state", "team/drover")).await;
        let key = "runs/r1/lease.json";

        // Create once: a second create of the key fails its condition (412).
        let first = etag(s.put(key, b"{\"n\":1}".to_vec(), Condition::Absent).await.unwrap());
        assert!(first.starts_with('"') && first.ends_with('"'), "S3 quotes ETags: {first}");
        let again = s.put(key, b"{\"n\":9}".to_vec(), Condition::Absent).await.unwrap();
        assert_eq!(again, Written::Conflict);
        let read = s.get(key).await.unwrap().unwrap();
        assert_eq!((read.bytes.as_slice(), read.etag.as_str()), (&b"{\"n\":1}"[..], &*first));
        assert!(read.modified.is_some_and(|m| m > 1_700_000_000_000), "{:?}", read.modified);

        // Replace only what was read.
        let second = etag(
            s.put(key, b"{\"n\":2}".to_vec(), Condition::Matches(first.clone())).await.unwrap(),
        );
        assert_ne!(second, first);
        let stale = s.put(key, b"{\"n\":3}".to_vec(), Condition::Matches(first.clone())).await;
        assert_eq!(stale.unwrap(), Written::Conflict);
        assert_eq!(s.get(key).await.unwrap().unwrap().bytes, b"{\"n\":2}");
        // A key without an object does not match any ETag (S3 answers 404 NoSuchKey).
        let gone = s.put("runs/r1/none.json", b"{}".to_vec(), Condition::Matches(second.clone()));
        assert_eq!(gone.await.unwrap(), Written::Conflict);

        // Delete only what was read; deleting what is gone is done.
        assert_eq!(s.delete(key, Some(&first)).await.unwrap(), Written::Conflict);
        assert!(s.get(key).await.unwrap().is_some(), "a stale delete deleted");
        assert_eq!(
            s.delete(key, Some(&second)).await.unwrap(),
            Written::Done { etag: String::new() }
        );
        assert_eq!(s.get(key).await.unwrap(), None);
        assert_eq!(
            s.delete(key, Some(&second)).await.unwrap(),
            Written::Done { etag: String::new() }
        );
        assert_eq!(s.delete(key, None).await.unwrap(), Written::Done { etag: String::new() });
        assert_eq!(s.get("runs/never/written.json").await.unwrap(), None);

        // The objects are under the prefix, once: `team/drover/runs/...`.
        let head = emu.s3("HEAD", "/state/team/drover/runs/r1/lease.json", &[], "");
        assert_eq!(head.status, 404, "deleted");
        s.put(key, b"{}".to_vec(), Condition::Absent).await.unwrap();
        let head = emu.s3("HEAD", "/state/team/drover/runs/r1/lease.json", &[], "");
        assert_eq!(head.status, 200, "{:?}", head.headers);
        assert_eq!(s.location(), "s3://state/team/drover");
    });
}

#[test]
fn lists_page_through_every_key_in_order_relative_to_the_prefix() {
    let emu = Emulator::start_ideal(1.0);
    runtime().block_on(async {
        let small_pages = S3StoreConfig { page_size: Some(2), ..config("lists", "/state/") };
        let s = store(&emu, "lists", "us-east-1", small_pages).await;
        // Written out of order, with a sibling prefix that must not be listed.
        for key in [
            "runs/run-b/journal/00000000000000000002.jsonl",
            "runs/run-a/journal/00000000000000000001.jsonl",
            "runs/run-b/journal/00000000000000000001.jsonl",
            "runs/run-a/lease.json",
            "runs/run-c/journal/00000000000000000001.jsonl",
        ] {
            s.put(key, key.as_bytes().to_vec(), Condition::Absent).await.unwrap();
        }
        let root =
            Arc::new(S3Store::connect(&options(&emu.url()), config("lists", "")).await.unwrap())
                as Arc<dyn ObjectStore>;
        root.put("state-old/runs/run-z/lease.json", b"{}".to_vec(), Condition::Absent)
            .await
            .unwrap();

        let before = count(&emu, "s3:ListObjectsV2");
        let listed = s.list("").await.unwrap();
        let keys: Vec<&str> = listed.iter().map(|l| l.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "runs/run-a/journal/00000000000000000001.jsonl",
                "runs/run-a/lease.json",
                "runs/run-b/journal/00000000000000000001.jsonl",
                "runs/run-b/journal/00000000000000000002.jsonl",
                "runs/run-c/journal/00000000000000000001.jsonl",
            ]
        );
        assert_eq!(listed[1].size, "runs/run-a/lease.json".len() as u64);
        assert!(listed.iter().all(|l| l.modified.is_some()));
        assert_eq!(count(&emu, "s3:ListObjectsV2") - before, 3, "5 keys in pages of 2");

        let journal = s.list("runs/run-b/journal/").await.unwrap();
        assert_eq!(journal.len(), 2);
        assert_eq!(journal[0].key, "runs/run-b/journal/00000000000000000001.jsonl");

        // Directories: the run ids, paged too; `runs` is `runs/`.
        assert_eq!(s.list_dirs("runs/").await.unwrap(), ["run-a", "run-b", "run-c"]);
        assert_eq!(s.list_dirs("runs").await.unwrap(), ["run-a", "run-b", "run-c"]);
        assert_eq!(s.list_dirs("runs/run-a/").await.unwrap(), ["journal"]);
        assert_eq!(s.list_dirs("").await.unwrap(), ["runs"]);
        assert!(s.list_dirs("nothing/").await.unwrap().is_empty());

        // The bucket's root: every key, `state/` included.
        assert_eq!(root.location(), "s3://lists");
        assert_eq!(root.list_dirs("").await.unwrap(), ["state", "state-old"]);
        assert_eq!(
            root.list("state-old/").await.unwrap()[0].key,
            "state-old/runs/run-z/lease.json"
        );
    });
}

#[test]
fn facts_give_the_buckets_region_versioning_and_default_encryption() {
    let emu = Emulator::start_ideal(1.0);
    runtime().block_on(async {
        // The region is asked of S3 (HeadBucket in us-east-1) when not given.
        let s = store(&emu, "eu-state", "eu-west-1", config("eu-state", "p")).await;
        let facts = s.facts().await.unwrap();
        assert_eq!(facts.region, "eu-west-1");
        assert_eq!(facts.versioning, Versioning::Off);
        assert_eq!(facts.default_encryption, None, "moto's buckets have no default rule");

        emu.bucket_versioning("eu-state", "Enabled");
        let rule = "<ServerSideEncryptionConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">\
            <Rule><ApplyServerSideEncryptionByDefault><SSEAlgorithm>aws:kms</SSEAlgorithm>\
            </ApplyServerSideEncryptionByDefault></Rule></ServerSideEncryptionConfiguration>";
        let put = emu.s3("PUT", "/eu-state?encryption", &[("Content-Type", "application/xml")], rule);
        assert_eq!(put.status, 200, "{}", put.body);
        let facts = s.facts().await.unwrap();
        assert_eq!(facts.versioning, Versioning::Enabled);
        assert_eq!(facts.default_encryption.as_deref(), Some("aws:kms"));
        emu.bucket_versioning("eu-state", "Suspended");
        assert_eq!(s.facts().await.unwrap().versioning, Versioning::Suspended);

        // HeadBucket denied (it needs `s3:ListBucket`, which the state statements hold to the
        // prefix), and without the region header: GetBucketLocation answers.
        let locations = count(&emu, "s3:GetBucketLocation");
        for _ in 0..2 {
            let denied = json!({"operation": "s3:HeadBucket", "code": "AccessDenied", "status": 403});
            assert_eq!(emu.control("/_drover/throttle", &denied), 200);
        }
        let s = S3Store::connect(&options(&emu.url()), config("eu-state", "p")).await.unwrap();
        assert_eq!(s.facts().await.unwrap().region, "eu-west-1");
        emu.create_bucket("us-state", "us-east-1");
        let s = S3Store::connect(&options(&emu.url()), config("us-state", "p")).await.unwrap();
        assert_eq!(s.facts().await.unwrap().region, "us-east-1", "an empty location constraint");
        assert_eq!(count(&emu, "s3:GetBucketLocation") - locations, 2);

        // A given region is taken as it is: nothing is asked.
        let heads = count(&emu, "s3:HeadBucket");
        let given = S3StoreConfig { region: Some("eu-west-1".to_owned()), ..config("eu-state", "p") };
        let s = S3Store::connect(&options(&emu.url()), given).await.unwrap();
        assert_eq!(count(&emu, "s3:HeadBucket"), heads);
        assert_eq!(s.facts().await.unwrap().region, "eu-west-1");
    });
}

#[test]
fn a_conditional_request_conflict_is_a_conflict_and_is_not_retried() {
    let emu = Emulator::start_ideal(1.0);
    runtime().block_on(async {
        let s = store(&emu, "busy", "us-east-1", config("busy", "p")).await;
        let conflict = json!({"operation": "s3:PutObject", "code": "ConditionalRequestConflict", "status": 409});
        assert_eq!(emu.control("/_drover/throttle", &conflict), 200);
        let before = count(&emu, "s3:PutObject");
        let put = s.put("runs/r1/lease.json", b"{}".to_vec(), Condition::Absent).await.unwrap();
        assert_eq!(put, Written::Conflict);
        assert_eq!(count(&emu, "s3:PutObject") - before, 1, "a 409 is the caller's to retry");
        assert_eq!(s.get("runs/r1/lease.json").await.unwrap(), None, "nothing was written");

        // A 409 on a conditional delete too.
        etag(s.put("runs/r1/lease.json", b"{}".to_vec(), Condition::Absent).await.unwrap());
        let on_delete = json!({"operation": "s3:DeleteObject", "code": "ConditionalRequestConflict", "status": 409});
        assert_eq!(emu.control("/_drover/throttle", &on_delete), 200);
        let current = s.get("runs/r1/lease.json").await.unwrap().unwrap().etag;
        assert_eq!(s.delete("runs/r1/lease.json", Some(&current)).await.unwrap(), Written::Conflict);

        // Passing faults and throttling are retried (five attempts), and then succeed.
        for (code, status) in [("InternalError", 500), ("SlowDown", 503)] {
            let fault = json!({"operation": "s3:GetObject", "code": code, "status": status});
            assert_eq!(emu.control("/_drover/throttle", &fault), 200);
        }
        let before = count(&emu, "s3:GetObject");
        assert!(s.get("runs/r1/lease.json").await.unwrap().is_some());
        assert_eq!(count(&emu, "s3:GetObject") - before, 3);

        // A denial is not retried, and says where and what to do.
        let denied = json!({"operation": "s3:PutObject", "code": "AccessDenied", "status": 403, "message": "Access Denied"});
        assert_eq!(emu.control("/_drover/throttle", &denied), 200);
        let e = s.put("runs/r2/lease.json", b"{}".to_vec(), Condition::Absent).await.unwrap_err();
        assert_eq!((e.kind, e.op.as_str()), (ErrorKind::AccessDenied, "PutObject"), "{e}");
        assert!(
            e.message.starts_with("s3://busy/p/runs/r2/lease.json: AccessDenied: Access Denied; grant"),
            "{}",
            e.message
        );
    });
}

#[test]
fn writes_carry_a_checksum_a_content_type_and_the_kms_key() {
    let emu = Emulator::start_ideal(1.0);
    runtime().block_on(async {
        let key_id = "arn:aws:kms:us-east-1:123456789012:key/1111aaaa-22bb-33cc-44dd-555555eeeeee";
        let encrypted = S3StoreConfig { kms_key: Some(key_id.to_owned()), ..config("sse", "p") };
        let s = store(&emu, "sse", "us-east-1", encrypted).await;
        s.put("runs/r1/journal/00000000000000000001.jsonl", b"abc".to_vec(), Condition::Absent)
            .await
            .unwrap();
        let head = emu.s3(
            "HEAD",
            "/sse/p/runs/r1/journal/00000000000000000001.jsonl",
            &[("x-amz-checksum-mode", "ENABLED")],
            "",
        );
        assert_eq!(head.status, 200);
        let h = |name: &str| head.headers.get(name).map(String::as_str);
        assert_eq!(h("x-amz-server-side-encryption"), Some("aws:kms"), "{:?}", head.headers);
        assert_eq!(h("x-amz-server-side-encryption-aws-kms-key-id"), Some(key_id));
        // SHA-256 of `abc` (FIPS 180-2's example), as S3 stores it: base64.
        assert_eq!(
            h("x-amz-checksum-sha256"),
            Some("ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0=")
        );
        assert_eq!(h("content-type"), Some("application/x-ndjson"));

        // Without a key, no encryption header: the bucket's default applies.
        let plain = store(&emu, "plain", "us-east-1", config("plain", "p")).await;
        plain.put("runs/r1/lease.json", b"abc".to_vec(), Condition::Absent).await.unwrap();
        let head = emu.s3("HEAD", "/plain/p/runs/r1/lease.json", &[], "");
        assert_eq!(head.status, 200);
        assert_eq!(head.headers.get("x-amz-server-side-encryption-aws-kms-key-id"), None);
        assert_ne!(
            head.headers.get("x-amz-server-side-encryption").map(String::as_str),
            Some("aws:kms")
        );
        assert_eq!(head.headers.get("content-type").map(String::as_str), Some("application/json"));
    });
}

#[test]
fn a_missing_bucket_and_a_closed_port_are_told_apart() {
    let emu = Emulator::start_ideal(1.0);
    // A port nothing listens on: bound, then closed.
    let closed = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    runtime().block_on(async {
        let e = S3Store::connect(&options(&emu.url()), config("no-such-bucket", "p"))
            .await
            .unwrap_err();
        assert_eq!(e.kind, ErrorKind::NotFound, "{e}");
        assert!(e.message.starts_with("s3://no-such-bucket: "), "{}", e.message);
        assert!(e.message.contains("check that the bucket exists"), "{}", e.message);

        // Unreachable, both when the region is asked and on a call; the SDK's five attempts
        // back off 1, 2, 4 and 8 s at most (jittered down).
        let unreachable = AwsOptions {
            call_timeout_ms: Some(1_000),
            ..options(&format!("http://127.0.0.1:{closed}"))
        };
        let started = Instant::now();
        let asked = S3Store::connect(&unreachable, config("state", "p"));
        let given = async {
            let c = S3StoreConfig { region: Some("eu-west-1".to_owned()), ..config("state", "p") };
            S3Store::connect(&unreachable, c).await.unwrap().get("runs/r1/lease.json").await
        };
        let (asked, given) = tokio::join!(asked, given);
        let elapsed = started.elapsed();
        let asked = asked.unwrap_err();
        assert_eq!(
            (asked.kind, asked.op.as_str()),
            (ErrorKind::Unreachable, "HeadBucket"),
            "{asked}"
        );
        let given = given.unwrap_err();
        assert_eq!(
            (given.kind, given.op.as_str()),
            (ErrorKind::Unreachable, "GetObject"),
            "{given}"
        );
        assert!(given.message.contains("Connection refused"), "{}", given.message);
        assert!(
            given.message.starts_with("s3://state/p/runs/r1/lease.json: "),
            "{}",
            given.message
        );
        assert!(elapsed < Duration::from_secs(20), "took {elapsed:?}");
    });
}
