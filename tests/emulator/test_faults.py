"""Fault knobs and the /_drover control API."""
import json
import time
import urllib.error
import urllib.request

import botocore.exceptions
import pytest

from harness import (ACCOUNT, DST, ROLE, backup_job, completed_point, error_code, make_table, make_vault,
                     wait_backup, wait_copy, wait_restore)


@pytest.mark.parametrize("state", ["FAILED", "ABORTED", "EXPIRED", "PARTIAL"])
def test_fail_next_backup_jobs(emulator, ddb, backup, state):
    status, cfg = emulator.control("/_drover/fail-jobs", {"kind": "backup", "count": 2, "state": state,
                                                         "message": "injected"})
    assert status == 200 and len(cfg["job_faults"]["backup"]) == 2
    table = make_table(ddb)
    make_vault(backup, "primary")
    jobs = [wait_backup(backup, backup_job(backup, table, "primary")["BackupJobId"]) for _ in range(3)]
    assert [j["State"] for j in jobs] == [state, state, "COMPLETED"]
    assert jobs[0]["StatusMessage"] == "injected" and "CompletionDate" in jobs[0]
    assert len(backup.list_recovery_points_by_backup_vault(BackupVaultName="primary")["RecoveryPoints"]) == 1


def test_expired_backup_never_runs(emulator, ddb, backup):
    emulator.control("/_drover/config", {"durations": {"backup": 0.4}})
    emulator.control("/_drover/fail-jobs", {"kind": "backup", "state": "EXPIRED"})
    make_vault(backup, "primary")
    job_id = backup_job(backup, make_table(ddb), "primary")["BackupJobId"]
    states = set()
    job = wait_backup(backup, job_id)
    for _ in range(3):
        states.add(backup.describe_backup_job(BackupJobId=job_id)["State"])
    assert job["State"] == "EXPIRED" and states == {"EXPIRED"}


@pytest.mark.parametrize("state", ["FAILED", "PARTIAL"])
def test_fail_next_copy_job(emulator, ddb, backup, backup_dst, state):
    make_vault(backup, "primary")
    make_vault(backup_dst, "dr")
    rp = completed_point(backup, make_table(ddb), "primary")
    emulator.control("/_drover/fail-jobs", {"kind": "copy", "state": state})
    job = wait_copy(backup, backup.start_copy_job(
        RecoveryPointArn=rp, SourceBackupVaultName="primary", IamRoleArn=ROLE,
        DestinationBackupVaultArn=f"arn:aws:backup:{DST}:{ACCOUNT}:backup-vault:dr")["CopyJobId"])
    assert job["State"] == state and job["StatusMessage"]
    assert backup_dst.list_recovery_points_by_backup_vault(BackupVaultName="dr")["RecoveryPoints"] == []


@pytest.mark.parametrize("state", ["FAILED", "ABORTED"])
def test_fail_next_restore_job(emulator, ddb, backup, state):
    make_vault(backup, "primary")
    rp = completed_point(backup, make_table(ddb), "primary")
    emulator.control("/_drover/fail-jobs", {"kind": "restore", "state": state, "message": "boom"})
    job = wait_restore(backup, backup.start_restore_job(
        RecoveryPointArn=rp, IamRoleArn=ROLE, Metadata={"targetTableName": "restored", "encryptionType": "Default"}
    )["RestoreJobId"])
    assert job["Status"] == state and job["StatusMessage"] == "boom"
    assert "restored" not in ddb.list_tables()["TableNames"]


def test_fail_jobs_rejects_states_the_model_does_not_allow(emulator):
    for body in ({"kind": "copy", "state": "ABORTED"}, {"kind": "restore", "state": "EXPIRED"},
                 {"kind": "nope"}, {"kind": "backup", "count": 0}):
        status, out = emulator.control("/_drover/fail-jobs", body)
        assert status == 400 and out["error"], body


def test_throttle_backup_operation(emulator, ddb, backup):
    make_vault(backup, "primary")
    emulator.control("/_drover/throttle", {"operation": "StartBackupJob", "count": 2})
    table = make_table(ddb)
    backup.list_backup_jobs()  # other operations are not affected
    for _ in range(2):
        with pytest.raises(botocore.exceptions.ClientError) as e:
            backup_job(backup, table, "primary")
        assert error_code(e) == "ThrottlingException"
        assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
        assert e.value.response["ResponseMetadata"]["HTTPHeaders"]["x-amzn-errortype"] == "ThrottlingException"
    assert backup_job(backup, table, "primary")["BackupJobId"]
    assert len(backup.list_backup_jobs()["BackupJobs"]) == 1  # throttled calls started nothing


def test_throttled_calls_are_retried_by_the_sdk(emulator, ddb):
    make_table(ddb)
    emulator.control("/_drover/throttle", {"operation": "dynamodb:DescribeTable", "count": 2})
    retrying = emulator.client("dynamodb", attempts=3)
    out = retrying.describe_table(TableName="orders")
    assert out["ResponseMetadata"]["RetryAttempts"] == 2


def test_throttle_dynamodb_and_wildcards(emulator, ddb, backup):
    make_table(ddb)
    emulator.control("/_drover/throttle", {"operation": "dynamodb:*", "count": 1})
    backup.list_backup_jobs()
    with pytest.raises(botocore.exceptions.ClientError) as e:
        ddb.scan(TableName="orders")
    assert error_code(e) == "ThrottlingException"
    ddb.scan(TableName="orders")
    emulator.control("/_drover/throttle", {"operation": "*", "count": 2})
    for call in (lambda: ddb.list_tables(), lambda: backup.list_copy_jobs()):
        with pytest.raises(botocore.exceptions.ClientError) as e:
            call()
        assert error_code(e) == "ThrottlingException"
    ddb.list_tables()
    backup.list_copy_jobs()


def test_custom_error_code(emulator, ddb, backup, backup_dst):
    make_vault(backup, "primary")
    rp = completed_point(backup, make_table(ddb), "primary")
    emulator.control("/_drover/throttle", {"operation": "backup:StartCopyJob", "code": "LimitExceededException",
                                           "message": "too many copies"})
    with pytest.raises(botocore.exceptions.ClientError) as e:
        backup.start_copy_job(RecoveryPointArn=rp, SourceBackupVaultName="primary", IamRoleArn=ROLE,
                              DestinationBackupVaultArn=f"arn:aws:backup:{DST}:{ACCOUNT}:backup-vault:dr")
    assert error_code(e) == "LimitExceededException"
    assert e.value.response["Error"]["Message"] == "too many copies"


def test_error_body_shape(emulator):
    req = urllib.request.Request(emulator.endpoint + "/backup-jobs/unknown-id", headers={
        "Authorization": "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/backup/aws4_request, "
                         "SignedHeaders=host, Signature=0"})
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=10)
    assert e.value.code == 400
    assert e.value.headers["x-amzn-ErrorType"] == "ResourceNotFoundException"
    body = json.loads(e.value.read())
    assert body["__type"] == body["Code"] == "ResourceNotFoundException" and body["Message"]


def test_durations_per_kind_and_config(emulator):
    status, cfg = emulator.control("/_drover/config", {"durations": {"default": 2, "copy": 0.5, "restore": None}})
    assert status == 200
    assert cfg["durations"] == {"default": 2, "backup": None, "copy": 0.5, "restore": None}
    assert emulator.control("/_drover/config")[1]["durations"]["copy"] == 0.5
    for bad in ({"durations": {"default": -1}}, {"durations": {"default": None}}, {"durations": {"x": 1}},
                {"non_advanced_copy": "maybe"}):
        assert emulator.control("/_drover/config", bad)[0] == 400
    assert emulator.control("/_drover/nope")[0] == 404


def test_reset_clears_state_and_knobs(emulator, ddb, backup):
    make_vault(backup, "primary")
    make_table(ddb)
    emulator.control("/_drover/fail-jobs", {"kind": "copy"})
    emulator.control("/_drover/throttle", {"operation": "ListTables", "count": 5})
    status, cfg = emulator.control("/_drover/reset", {})
    assert status == 200 and cfg["job_faults"]["copy"] == [] and cfg["call_faults"] == []
    assert ddb.list_tables()["TableNames"] == []
    assert backup.list_backup_vaults()["BackupVaultList"] == []


def test_slow_calls_take_effect_though_the_client_timed_out(emulator, ddb, backup):
    import boto3
    from botocore.config import Config

    table = make_table(ddb)
    make_vault(backup, "primary")
    status, cfg = emulator.control("/_drover/slow", {"operation": "StartBackupJob", "count": 1, "delay": 1.5})
    assert status == 200 and cfg["call_faults"][0]["delay"] == 1.5
    impatient = boto3.client("backup", region_name="us-east-1", endpoint_url=emulator.endpoint,
                             aws_access_key_id="testing", aws_secret_access_key="testing",
                             config=Config(retries={"total_max_attempts": 1}, read_timeout=0.5))
    with pytest.raises(botocore.exceptions.ReadTimeoutError):
        backup_job(impatient, table, "primary", IdempotencyToken="slow-1")
    # The call was served after all; asking again with the same token returns that job.
    jobs = wait_for_jobs(backup, 1)
    assert backup_job(backup, table, "primary", IdempotencyToken="slow-1")["BackupJobId"] == jobs[0]["BackupJobId"]
    assert len(backup.list_backup_jobs()["BackupJobs"]) == 1
    assert emulator.control("/_drover/slow", {"count": 0})[0] == 400


def wait_for_jobs(backup, n):
    from harness import wait_for
    return wait_for(lambda: backup.list_backup_jobs()["BackupJobs"], lambda jobs: len(jobs) >= n, timeout=10)


def test_unseen_jobs_are_not_found_by_describe_until_they_age(emulator, ddb, backup):
    table = make_table(ddb)
    make_vault(backup, "primary")
    for bad in (-1, 601, "5", True):
        assert emulator.control("/_drover/config", {"unseen_jobs": bad})[0] == 400, bad
    status, cfg = emulator.control("/_drover/config", {"unseen_jobs": 0.6})
    assert status == 200 and cfg["unseen_jobs"] == 0.6
    job = backup_job(backup, table, "primary")["BackupJobId"]
    with pytest.raises(botocore.exceptions.ClientError) as e:
        backup.describe_backup_job(BackupJobId=job)
    assert error_code(e) == "ResourceNotFoundException"
    # The job exists all along: listed, and described once it is old enough.
    assert [j["BackupJobId"] for j in backup.list_backup_jobs()["BackupJobs"]] == [job]
    time.sleep(0.7)
    assert backup.describe_backup_job(BackupJobId=job)["BackupJobId"] == job
    assert emulator.control("/_drover/reset", {"moto": False})[1]["unseen_jobs"] == 0


@pytest.mark.parametrize("code,message", [
    # IAM's denial, as DynamoDB and AWS Backup word it (the identity, the action, the reason).
    ("AccessDeniedException", "User: arn:aws:iam::123456789012:user/drill is not authorized to perform: "
                              "dynamodb:DescribeTable because no identity-based policy allows it"),
    # An STS session past its expiry: the credentials themselves are refused.
    ("ExpiredTokenException", "The security token included in the request is expired"),
    # An access key AWS does not know.
    ("UnrecognizedClientException", "The security token included in the request is invalid."),
])
def test_access_errors_every_aws_api_may_answer(emulator, ddb, backup, code, message):
    """The common authentication and authorization errors (the AWS API references' "Common
    Errors"; DynamoDB's "Error handling"), answered through `throttle` with their code: how
    tests/unreachable.rs makes drover meet a denial or an expired session."""
    for operation, call in [("dynamodb:*", ddb.list_tables), ("backup:*", backup.list_backup_vaults)]:
        emulator.control("/_drover/throttle", {"operation": operation, "count": 1, "code": code,
                                               "status": 400, "message": message})
        with pytest.raises(botocore.exceptions.ClientError) as e:
            call()
        assert error_code(e) == code
        assert e.value.response["Error"]["Message"] == message
        assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
        call()  # one answer only: the next call is served
