"""StartBackupJob / DescribeBackupJob / ListBackupJobs."""
import re
import time

import botocore.exceptions
import pytest

from harness import ACCOUNT, ROLE, SRC, backup_job, error_code, make_table, make_vault, wait_backup, wait_for

ADVANCED_RP = re.compile(rf"^arn:aws:backup:{SRC}:{ACCOUNT}:recovery-point:[0-9A-F-]{{36}}$")
NATIVE_RP = re.compile(rf"^arn:aws:dynamodb:{SRC}:{ACCOUNT}:table/orders/backup/\d{{14}}-[0-9a-f]{{8}}$")


def test_advanced_backup_returns_backup_arn_and_encrypts_with_vault_key(ddb, backup, kms):
    key = kms.create_key()["KeyMetadata"]["Arn"]
    table = make_table(ddb)
    make_vault(backup, "primary", key)
    out = backup_job(backup, table, "primary")
    assert ADVANCED_RP.match(out["RecoveryPointArn"])
    assert out["BackupJobId"] and out["CreationDate"]
    job = wait_backup(backup, out["BackupJobId"])
    assert job["State"] == "COMPLETED" and job["PercentDone"] == "100.0"
    assert job["RecoveryPointArn"] == out["RecoveryPointArn"]
    assert job["EncryptionKeyArn"] == key and job["IsEncrypted"] is True
    assert job["ResourceType"] == "DynamoDB" and job["ResourceArn"] == table
    assert job["BackupVaultName"] == "primary" and job["IamRoleArn"] == ROLE
    assert job["BackupSizeInBytes"] > 0 and job["CompletionDate"] >= job["CreationDate"]


def test_non_advanced_backup_arn_only_after_completion(emulator, ddb, backup):
    emulator.control("/_drover/config", {"advanced_default": False, "durations": {"backup": 1.0}})
    table = make_table(ddb)
    make_vault(backup, "primary")
    out = backup_job(backup, table, "primary")
    assert "RecoveryPointArn" not in out
    assert "RecoveryPointArn" not in backup.describe_backup_job(BackupJobId=out["BackupJobId"])
    job = wait_backup(backup, out["BackupJobId"])
    assert job["State"] == "COMPLETED"
    assert NATIVE_RP.match(job["RecoveryPointArn"]), job["RecoveryPointArn"]


def test_state_progression_over_time(emulator, ddb, backup):
    emulator.control("/_drover/config", {"durations": {"backup": 1.6}})
    table = make_table(ddb)
    make_vault(backup, "primary")
    job_id = backup_job(backup, table, "primary")["BackupJobId"]
    seen = []
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        job = backup.describe_backup_job(BackupJobId=job_id)
        if not seen or seen[-1][0] != job["State"]:
            seen.append((job["State"], float(job["PercentDone"])))
        if job["State"] == "COMPLETED":
            break
        time.sleep(0.04)
    assert [s for s, _ in seen] == ["CREATED", "RUNNING", "COMPLETED"]
    assert seen[0][1] == 0.0 and seen[-1][1] == 100.0
    assert "CompletionDate" in job and "InitiationDate" in job


def test_snapshot_taken_at_job_start(emulator, ddb, backup, backup_dst):
    emulator.control("/_drover/config", {"durations": {"backup": 0.5}})
    table = make_table(ddb, items=3)
    make_vault(backup, "primary")
    out = backup_job(backup, table, "primary")
    ddb.put_item(TableName="orders", Item={"pk": {"S": "late"}, "sk": {"N": "99"}})  # after start: not included
    wait_backup(backup, out["BackupJobId"])
    backup.start_restore_job(RecoveryPointArn=out["RecoveryPointArn"], IamRoleArn=ROLE,
                             Metadata={"targetTableName": "orders-copy", "encryptionType": "Default"})
    items = wait_for(lambda: ddb.list_tables()["TableNames"], lambda names: "orders-copy" in names)
    assert items and ddb.scan(TableName="orders-copy")["Count"] == 3


def test_idempotency_token_returns_same_job(ddb, backup):
    table = make_table(ddb)
    make_vault(backup, "primary")
    first = backup_job(backup, table, "primary", IdempotencyToken="tok-1")
    again = backup_job(backup, table, "primary", IdempotencyToken="tok-1")
    other = backup_job(backup, table, "primary", IdempotencyToken="tok-2")
    assert again["BackupJobId"] == first["BackupJobId"]
    assert again["RecoveryPointArn"] == first["RecoveryPointArn"]
    assert other["BackupJobId"] != first["BackupJobId"]
    assert len(backup.list_backup_jobs()["BackupJobs"]) == 2


def test_validation_errors(emulator, ddb, backup):
    table = make_table(ddb)
    make_vault(backup, "primary")
    with pytest.raises(botocore.exceptions.ClientError) as e:
        backup_job(backup, table, "nope")
    assert error_code(e) == "ResourceNotFoundException"
    with pytest.raises(botocore.exceptions.ClientError) as e:
        backup_job(backup, "arn:aws:s3:::bucket", "primary")
    assert error_code(e) == "InvalidParameterValueException"
    with pytest.raises(botocore.exceptions.ClientError) as e:
        backup_job(backup, table.replace(SRC, "eu-west-1"), "primary")
    assert error_code(e) == "InvalidParameterValueException"
    raw = emulator.client("backup", validate=False)  # bypass botocore's own required-member check
    with pytest.raises(botocore.exceptions.ClientError) as e:
        raw.start_backup_job(BackupVaultName="primary", ResourceArn=table)
    assert error_code(e) == "MissingParameterValueException"
    with pytest.raises(botocore.exceptions.ClientError) as e:
        backup.describe_backup_job(BackupJobId="00000000-0000-0000-0000-000000000000")
    assert error_code(e) == "ResourceNotFoundException"
    assert e.value.response["ResponseMetadata"]["HTTPHeaders"]["x-amzn-errortype"] == "ResourceNotFoundException"


def test_missing_table_fails_job(ddb, backup):
    table = make_table(ddb)
    make_vault(backup, "primary")
    ddb.delete_table(TableName="orders")
    job = wait_backup(backup, backup_job(backup, table, "primary")["BackupJobId"])
    assert job["State"] == "FAILED" and "not found" in job["StatusMessage"]


def test_list_backup_jobs_filters_and_pagination(emulator, ddb, backup, kms):
    t1 = make_table(ddb, "orders")
    t2 = make_table(ddb, "users")
    make_vault(backup, "primary")
    make_vault(backup, "other")
    ids = [backup_job(backup, t1, "primary")["BackupJobId"] for _ in range(3)]
    ids.append(backup_job(backup, t2, "other")["BackupJobId"])
    for job_id in ids:
        wait_backup(backup, job_id)
    emulator.control("/_drover/config", {"durations": {"backup": 30}})
    running = backup_job(backup, t2, "primary")["BackupJobId"]

    def listed(**kw):
        return [j["BackupJobId"] for j in backup.list_backup_jobs(**kw)["BackupJobs"]]
    assert set(listed(ByResourceArn=t1)) == set(ids[:3])
    assert listed(ByBackupVaultName="other") == [ids[3]]
    assert listed(ByState="CREATED") == [running]
    assert set(listed(ByState="COMPLETED")) == set(ids)
    assert len(listed(ByResourceType="DynamoDB")) == 5 and listed(ByResourceType="EBS") == []
    created = backup.describe_backup_job(BackupJobId=running)["CreationDate"]
    assert listed(ByCreatedAfter=created) == [running]
    assert running not in listed(ByCreatedBefore=created.replace(microsecond=0))

    pages, token = [], None
    for _ in range(10):  # bounded
        kw = {"MaxResults": 2, **({"NextToken": token} if token else {})}
        page = backup.list_backup_jobs(**kw)
        pages.append([j["BackupJobId"] for j in page["BackupJobs"]])
        token = page.get("NextToken")
        if not token:
            break
    assert [len(p) for p in pages] == [2, 2, 1]
    assert sorted(sum(pages, [])) == sorted(ids + [running])
    paginated = [j["BackupJobId"] for p in backup.get_paginator("list_backup_jobs").paginate(
        PaginationConfig={"PageSize": 1}) for j in p["BackupJobs"]]
    assert sorted(paginated) == sorted(ids + [running])
    with pytest.raises(botocore.exceptions.ClientError) as e:
        emulator.client("backup", validate=False).list_backup_jobs(MaxResults=0)
    assert error_code(e) == "InvalidParameterValueException"
