"""StartCopyJob / DescribeCopyJob / ListCopyJobs (cross-Region)."""
import re

import botocore.exceptions
import pytest

from harness import (ACCOUNT, DST, ROLE, SRC, completed_point, error_code, make_table, make_vault, wait_copy,
                     wait_for)

DR_VAULT = f"arn:aws:backup:{DST}:{ACCOUNT}:backup-vault:dr"


def copy(backup, rp, dest=DR_VAULT, **kw):
    return backup.start_copy_job(RecoveryPointArn=rp, SourceBackupVaultName="primary",
                                 DestinationBackupVaultArn=dest, IamRoleArn=ROLE, **kw)


@pytest.fixture
def setup(ddb, backup, backup_dst, kms, kms_dst):
    src_key = kms.create_key()["KeyMetadata"]["Arn"]
    dst_meta = kms_dst.create_key()["KeyMetadata"]
    dst_key = dst_meta["Arn"]
    table = make_table(ddb)
    src_vault = make_vault(backup, "primary", src_key)
    assert make_vault(backup_dst, "dr", dst_key) == DR_VAULT
    return {"table": table, "src_key": src_key, "dst_key": dst_key, "dst_key_id": dst_meta["KeyId"], "src_vault": src_vault,
            "rp": completed_point(backup, table, "primary")}


def test_copy_creates_new_point_in_destination_with_destination_key(backup, backup_dst, setup):
    out = copy(backup, setup["rp"])
    assert out["CopyJobId"] and out["CreationDate"]
    job = wait_copy(backup, out["CopyJobId"])
    assert job["State"] == "COMPLETED"
    assert job["SourceRecoveryPointArn"] == setup["rp"] and job["SourceBackupVaultArn"] == setup["src_vault"]
    assert job["DestinationBackupVaultArn"] == DR_VAULT and job["ResourceArn"] == setup["table"]
    dest = job["DestinationRecoveryPointArn"]
    assert dest != setup["rp"] and re.match(rf"^arn:aws:backup:{DST}:{ACCOUNT}:recovery-point:", dest)
    assert job["DestinationEncryptionKeyArn"] == setup["dst_key"]
    src = backup.describe_recovery_point(BackupVaultName="primary", RecoveryPointArn=setup["rp"])
    rp = backup_dst.describe_recovery_point(BackupVaultName="dr", RecoveryPointArn=dest)
    assert rp["EncryptionKeyArn"] == setup["dst_key"] != src["EncryptionKeyArn"]
    assert rp["SourceBackupVaultArn"] == setup["src_vault"] and rp["BackupVaultArn"] == DR_VAULT
    assert rp["CreationDate"] == src["CreationDate"] and rp["ResourceArn"] == setup["table"]
    # the copy lives only in the destination region
    with pytest.raises(botocore.exceptions.ClientError):
        backup.describe_recovery_point(BackupVaultName="primary", RecoveryPointArn=dest)
    assert [p["RecoveryPointArn"] for p in
            backup_dst.list_recovery_points_by_backup_vault(BackupVaultName="dr")["RecoveryPoints"]] == [dest]


def test_copy_state_progression(emulator, backup, setup):
    emulator.control("/_drover/config", {"durations": {"copy": 1.2}})
    job_id = copy(backup, setup["rp"])["CopyJobId"]
    states = []
    wait_for(lambda: states.append(backup.describe_copy_job(CopyJobId=job_id)["CopyJob"]) or states[-1],
             lambda j: j["State"] == "COMPLETED", interval=0.03)
    names = [s["State"] for s in states]
    assert names[0] == "CREATED" and "RUNNING" in names
    assert names.index("RUNNING") > names.index("CREATED")
    assert all("DestinationRecoveryPointArn" not in s for s in states[:-1])


def test_non_advanced_point_copy_fails(emulator, ddb, backup, setup):
    emulator.control("/_drover/config", {"advanced_default": False})
    native = completed_point(backup, setup["table"], "primary")
    assert native.startswith("arn:aws:dynamodb:")
    job = wait_copy(backup, copy(backup, native)["CopyJobId"])
    assert job["State"] == "FAILED" and "advanced" in job["StatusMessage"]
    assert "DestinationRecoveryPointArn" not in job
    emulator.control("/_drover/config", {"non_advanced_copy": "reject"})
    with pytest.raises(botocore.exceptions.ClientError) as e:
        copy(backup, native)
    assert error_code(e) == "InvalidRequestException"


def test_copy_errors(backup, backup_dst, setup):
    with pytest.raises(botocore.exceptions.ClientError) as e:
        copy(backup, setup["rp"] + "X")
    assert error_code(e) == "ResourceNotFoundException"
    with pytest.raises(botocore.exceptions.ClientError) as e:
        copy(backup, setup["rp"], dest="arn:aws:backup:us-west-2:123:vault")
    assert error_code(e) == "InvalidParameterValueException"
    with pytest.raises(botocore.exceptions.ClientError) as e:
        backup.describe_copy_job(CopyJobId="nope")
    assert error_code(e) == "ResourceNotFoundException"
    job = wait_copy(backup, copy(backup, setup["rp"], dest=DR_VAULT + "-missing")["CopyJobId"])
    assert job["State"] == "FAILED" and "does not exist" in job["StatusMessage"]


def test_copy_fails_when_destination_key_disabled(backup, kms_dst, setup):
    kms_dst.disable_key(KeyId=setup["dst_key_id"])  # moto's DisableKey takes key ids only
    job = wait_copy(backup, copy(backup, setup["rp"])["CopyJobId"])
    assert job["State"] == "FAILED" and "KMS" in job["StatusMessage"]


def test_copy_idempotency_token(backup, setup):
    a = copy(backup, setup["rp"], IdempotencyToken="c-1")
    b = copy(backup, setup["rp"], IdempotencyToken="c-1")
    assert a["CopyJobId"] == b["CopyJobId"]
    assert len(backup.list_copy_jobs()["CopyJobs"]) == 1


def test_source_point_cannot_be_deleted_while_copying(emulator, backup, setup):
    emulator.control("/_drover/config", {"durations": {"copy": 30}})
    copy(backup, setup["rp"])
    with pytest.raises(botocore.exceptions.ClientError) as e:
        backup.delete_recovery_point(BackupVaultName="primary", RecoveryPointArn=setup["rp"])
    assert error_code(e) == "InvalidResourceStateException"


def test_list_copy_jobs_filters_and_pagination(emulator, backup, backup_dst, setup):
    make_vault(backup_dst, "dr2")
    dr2 = DR_VAULT + "2"
    done = [wait_copy(backup, copy(backup, setup["rp"])["CopyJobId"])["CopyJobId"] for _ in range(2)]
    other = wait_copy(backup, copy(backup, setup["rp"], dest=dr2)["CopyJobId"])["CopyJobId"]
    emulator.control("/_drover/config", {"durations": {"copy": 30}})
    running = copy(backup, setup["rp"])["CopyJobId"]

    def ids(**kw):
        return [j["CopyJobId"] for j in backup.list_copy_jobs(**kw)["CopyJobs"]]
    assert ids(ByDestinationVaultArn=dr2) == [other]
    assert sorted(ids(ByDestinationVaultArn=DR_VAULT)) == sorted(done + [running])
    assert ids(ByState="CREATED") == [running]
    assert sorted(ids(ByState="COMPLETED")) == sorted(done + [other])
    assert len(ids(ByResourceArn=setup["table"])) == 4 and ids(ByResourceArn=setup["table"] + "x") == []
    assert len(ids(BySourceRecoveryPointArn=setup["rp"])) == 4
    assert len(ids(ByResourceType="DynamoDB")) == 4
    assert backup_dst.list_copy_jobs()["CopyJobs"] == []  # copy jobs live in the source region
    page = backup.list_copy_jobs(MaxResults=3)
    assert len(page["CopyJobs"]) == 3
    rest = backup.list_copy_jobs(MaxResults=3, NextToken=page["NextToken"])
    assert len(rest["CopyJobs"]) == 1 and "NextToken" not in rest
    assert SRC != DST
