"""S3 conditional writes (If-None-Match / If-Match), atomic under concurrency, and what drover's run
journals and leases need around them: versions, restarts, injected 409s, paging. See README.md."""
import os
import signal
import threading

import boto3
import botocore.exceptions
import pytest
from botocore.config import Config

from harness import SRC, Emulator, start_server, stop_server

BUCKET = "drover-journal"
ROUNDS = 5
WRITERS = 50


def s3_client(emu, attempts=1):
    return boto3.client(
        "s3", region_name=SRC, endpoint_url=emu.endpoint,
        aws_access_key_id="testing", aws_secret_access_key="testing",
        config=Config(s3={"addressing_style": "path"}, max_pool_connections=WRITERS + 10,
                      retries={"total_max_attempts": attempts, "mode": "standard"},
                      connect_timeout=5, read_timeout=30))


@pytest.fixture
def s3(emulator):
    client = s3_client(emulator)
    client.create_bucket(Bucket=BUCKET)
    return client


def failure(call, **kwargs):
    with pytest.raises(botocore.exceptions.ClientError) as e:
        call(**kwargs)
    return e.value.response["Error"]["Code"], e.value.response["ResponseMetadata"]["HTTPStatusCode"]


def body(s3, key, **kwargs):
    return s3.get_object(Bucket=BUCKET, Key=key, **kwargs)["Body"].read()


def race(s3, key, **put):
    """WRITERS threads PUT `key` at once (a barrier), each with its own body; returns
    (bodies that succeeded, error codes of the others)."""
    barrier = threading.Barrier(WRITERS)
    won, lost = [], []

    def writer(i):
        data = f"writer-{i}".encode()
        barrier.wait(timeout=30)
        try:
            s3.put_object(Bucket=BUCKET, Key=key, Body=data, **put)
            won.append(data)
        except botocore.exceptions.ClientError as e:
            lost.append(e.response["Error"]["Code"])

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(WRITERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads)
    return won, lost


def test_if_none_match_creates_once(s3):
    first = s3.put_object(Bucket=BUCKET, Key="lease", Body=b"mine", IfNoneMatch="*")
    assert failure(s3.put_object, Bucket=BUCKET, Key="lease", Body=b"theirs", IfNoneMatch="*") == \
        ("PreconditionFailed", 412)
    assert body(s3, "lease") == b"mine"
    assert s3.head_object(Bucket=BUCKET, Key="lease")["ETag"] == first["ETag"]


def test_if_match_replaces_only_the_version_read(s3):
    etag = s3.put_object(Bucket=BUCKET, Key="journal", Body=b"v1")["ETag"]
    etag2 = s3.put_object(Bucket=BUCKET, Key="journal", Body=b"v2", IfMatch=etag)["ETag"]
    assert body(s3, "journal") == b"v2" and etag2 != etag
    # a stale ETag (someone else wrote since) is refused and changes nothing
    assert failure(s3.put_object, Bucket=BUCKET, Key="journal", Body=b"v3", IfMatch=etag) == \
        ("PreconditionFailed", 412)
    assert body(s3, "journal") == b"v2"
    # moto 5.2.5 answers If-Match on a missing key with 404 NoSuchKey
    assert failure(s3.put_object, Bucket=BUCKET, Key="nothing", Body=b"x", IfMatch=etag)[1] == 404


def test_conditional_delete(s3):
    etag = s3.put_object(Bucket=BUCKET, Key="lease", Body=b"v1")["ETag"]
    s3.put_object(Bucket=BUCKET, Key="lease", Body=b"v2")
    assert failure(s3.delete_object, Bucket=BUCKET, Key="lease", IfMatch=etag) == ("PreconditionFailed", 412)
    assert body(s3, "lease") == b"v2"
    current = s3.head_object(Bucket=BUCKET, Key="lease")["ETag"]
    s3.delete_object(Bucket=BUCKET, Key="lease", IfMatch=current)
    assert failure(s3.head_object, Bucket=BUCKET, Key="lease")[1] == 404
    # [BC-s] DeleteObject If-Match: "'*' (asterisk) ... to denote a match of any ETag"
    s3.put_object(Bucket=BUCKET, Key="any", Body=b"x")
    s3.delete_object(Bucket=BUCKET, Key="any", IfMatch="*")
    assert failure(s3.head_object, Bucket=BUCKET, Key="any")[1] == 404


def test_conditional_writes_on_a_versioned_bucket(s3):
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    v1 = s3.put_object(Bucket=BUCKET, Key="journal", Body=b"v1", IfNoneMatch="*")
    assert failure(s3.put_object, Bucket=BUCKET, Key="journal", Body=b"x", IfNoneMatch="*") == \
        ("PreconditionFailed", 412)
    v2 = s3.put_object(Bucket=BUCKET, Key="journal", Body=b"v2", IfMatch=v1["ETag"])
    assert failure(s3.put_object, Bucket=BUCKET, Key="journal", Body=b"x", IfMatch=v1["ETag"]) == \
        ("PreconditionFailed", 412)
    versions = s3.list_object_versions(Bucket=BUCKET, Prefix="journal")["Versions"]
    assert sorted(v["VersionId"] for v in versions) == sorted([v1["VersionId"], v2["VersionId"]])
    assert body(s3, "journal", VersionId=v1["VersionId"]) == b"v1" and body(s3, "journal") == b"v2"


def test_concurrent_creates_have_exactly_one_winner(emulator, s3):
    for r in range(ROUNDS):
        won, lost = race(s3, f"lease-{r}", IfNoneMatch="*")
        assert len(won) == 1 and lost == ["PreconditionFailed"] * (WRITERS - 1), (r, len(won), set(lost))
        assert body(s3, f"lease-{r}") == won[0]
    # the same with moto's check-to-write window widened to 50 ms
    assert emulator.control("/_drover/realism", {"s3_write_delay_ms": 50})[0] == 200
    for r in range(2):
        won, lost = race(s3, f"slow-lease-{r}", IfNoneMatch="*")
        assert len(won) == 1 and len(lost) == WRITERS - 1, (r, len(won), set(lost))
        assert body(s3, f"slow-lease-{r}") == won[0]


def test_concurrent_renewals_have_exactly_one_winner(emulator, s3):
    for r, delay in enumerate([0] * ROUNDS + [50]):
        assert emulator.control("/_drover/realism", {"s3_write_delay_ms": delay})[0] == 200
        etag = s3.put_object(Bucket=BUCKET, Key="lease", Body=f"held-{r}".encode())["ETag"]
        won, lost = race(s3, "lease", IfMatch=etag)
        assert len(won) == 1 and lost == ["PreconditionFailed"] * (WRITERS - 1), (r, len(won), set(lost))
        assert body(s3, "lease") == won[0]


def test_without_the_lock_moto_lets_several_writers_win():
    """The lock is what makes the tests above pass: served as moto 5.2.5 does (--no-s3-lock, debug
    only), with the window widened, several `If-None-Match: *` writers all succeed."""
    proc, port, tmp = start_server(["--no-s3-lock"])
    try:
        emu = Emulator(port)
        assert emu.control("/_drover/realism", {"s3_write_delay_ms": 50})[0] == 200
        s3 = s3_client(emu)
        s3.create_bucket(Bucket=BUCKET)
        winners = [len(race(s3, f"lease-{r}", IfNoneMatch="*")[0]) for r in range(3)]
        assert max(winners) > 1, winners
    finally:
        stop_server(proc, tmp)


def test_the_write_delay_knob_is_validated_and_off_by_default(emulator):
    assert emulator.control("/_drover/config")[1]["realism"]["s3_write_delay_ms"] == 0
    for bad in (-1, 1.5, 1001, "5", True):
        assert emulator.control("/_drover/realism", {"s3_write_delay_ms": bad})[0] == 400, bad


def test_objects_and_every_version_survive_a_restart(tmp_path):
    state = str(tmp_path / "state.pickle")
    proc, port, tmp = start_server(["--state-file", state])
    try:
        s3 = s3_client(Emulator(port))
        s3.create_bucket(Bucket=BUCKET)
        s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
        ids = [s3.put_object(Bucket=BUCKET, Key="journal", Body=f"v{i}".encode())["VersionId"] for i in range(3)]
        lease = s3.put_object(Bucket=BUCKET, Key="lease", Body=b"held", IfNoneMatch="*")["ETag"]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=40) == 0 and os.path.exists(state)
    finally:
        stop_server(proc, tmp)
    proc, port, tmp = start_server(["--state-file", state])
    try:
        s3 = s3_client(Emulator(port))
        versions = s3.list_object_versions(Bucket=BUCKET, Prefix="journal")["Versions"]
        assert sorted(v["VersionId"] for v in versions) == sorted(ids)
        assert [body(s3, "journal", VersionId=v) for v in ids] == [b"v0", b"v1", b"v2"]
        assert body(s3, "journal") == b"v2"
        assert s3.get_bucket_versioning(Bucket=BUCKET)["Status"] == "Enabled"
        # the preconditions still hold against the restored objects
        assert failure(s3.put_object, Bucket=BUCKET, Key="lease", Body=b"x", IfNoneMatch="*")[0] == \
            "PreconditionFailed"
        s3.put_object(Bucket=BUCKET, Key="lease", Body=b"renewed", IfMatch=lease)
        assert body(s3, "lease") == b"renewed"
    finally:
        stop_server(proc, tmp)


def test_an_injected_conditional_request_conflict_reaches_the_client(emulator, s3):
    status, _ = emulator.control("/_drover/throttle", {"operation": "s3:PutObject", "count": 1,
                                                       "code": "ConditionalRequestConflict", "status": 409})
    assert status == 200
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.put_object(Bucket=BUCKET, Key="lease", Body=b"mine", IfNoneMatch="*")
    err = e.value.response
    assert err["Error"]["Code"] == "ConditionalRequestConflict" and err["Error"]["Message"]
    assert err["ResponseMetadata"]["HTTPStatusCode"] == 409 and err["ResponseMetadata"]["RequestId"]
    assert failure(s3.head_object, Bucket=BUCKET, Key="lease")[1] == 404  # no effect
    s3.put_object(Bucket=BUCKET, Key="lease", Body=b"mine", IfNoneMatch="*")  # the retry works
    calls = emulator.control("/_drover/calls")[1]
    assert calls["faulted"] == {"s3:PutObject": 1} and calls["by_operation"]["s3:PutObject"] == 2
    assert calls["by_operation"]["s3:CreateBucket"] == 1 and calls["by_operation"]["s3:HeadObject"] == 1


def test_faults_are_named_by_s3_operation(emulator, s3):
    s3.put_object(Bucket=BUCKET, Key="k", Body=b"x")
    emulator.control("/_drover/throttle", {"operation": "s3:GetObject", "count": 1, "code": "SlowDown",
                                           "status": 503, "message": "Please reduce your request rate."})
    emulator.control("/_drover/throttle", {"operation": "s3:HeadObject", "count": 1, "code": "InternalError",
                                           "status": 500})
    s3.list_objects_v2(Bucket=BUCKET)  # not faulted: another operation
    assert failure(s3.get_object, Bucket=BUCKET, Key="k") == ("SlowDown", 503)
    assert failure(s3.head_object, Bucket=BUCKET, Key="k")[1] == 500  # HEAD: no body, as in S3
    assert body(s3, "k") == b"x"
    assert emulator.control("/_drover/calls")[1]["faulted"] == {"s3:GetObject": 1, "s3:HeadObject": 1}


def test_list_objects_v2_pages_with_max_keys(s3):
    keys = [f"runs/{i:02d}.json" for i in range(7)]
    for k in keys:
        s3.put_object(Bucket=BUCKET, Key=k, Body=b"{}")
    s3.put_object(Bucket=BUCKET, Key="other", Body=b"")
    pages, token = [], None
    while True:
        kwargs = {"ContinuationToken": token} if token else {}
        page = s3.list_objects_v2(Bucket=BUCKET, Prefix="runs/", MaxKeys=3, **kwargs)
        pages.append([o["Key"] for o in page["Contents"]])
        assert page["KeyCount"] == len(pages[-1]) and page["MaxKeys"] == 3
        if not page["IsTruncated"]:
            assert "NextContinuationToken" not in page
            break
        token = page["NextContinuationToken"]
    assert pages == [keys[0:3], keys[3:6], keys[6:7]]
    after = s3.list_objects_v2(Bucket=BUCKET, Prefix="runs/", StartAfter=keys[4], MaxKeys=10)
    assert [o["Key"] for o in after["Contents"]] == keys[5:] and not after["IsTruncated"]
    paged = [o["Key"] for p in s3.get_paginator("list_objects_v2").paginate(
        Bucket=BUCKET, PaginationConfig={"PageSize": 2}) for o in p["Contents"]]
    assert paged == ["other"] + keys  # UTF-8 binary order


def test_get_bucket_versioning_answers_with_s3s_element(s3):
    # What went over the wire: botocore parses any root element, the Rust SDK only S3's.
    bodies = []
    s3.meta.events.register("after-call.s3.GetBucketVersioning",
                            lambda http_response, **_: bodies.append(http_response.content))
    assert "Status" not in s3.get_bucket_versioning(Bucket=BUCKET)
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    assert s3.get_bucket_versioning(Bucket=BUCKET)["Status"] == "Enabled"
    assert all(b"<VersioningConfiguration " in b and b"GetBucketVersioningResponse" not in b
               for b in bodies), bodies
    assert b"<Status>Enabled</Status></VersioningConfiguration>" in bodies[1], bodies
