"""StartRestoreJob / DescribeRestoreJob / ListRestoreJobs."""
import time

import botocore.exceptions
import pytest

from harness import (ACCOUNT, DST, ROLE, SRC, completed_point, error_code, make_table, make_vault, wait_copy,
                     wait_for, wait_restore)


def restore(backup, rp, **meta):
    return backup.start_restore_job(RecoveryPointArn=rp, IamRoleArn=ROLE, ResourceType="DynamoDB",
                                    Metadata=meta)["RestoreJobId"]


@pytest.fixture
def dr_point(ddb, backup, backup_dst, kms, kms_dst):
    """An advanced point copied to the DR region."""
    src_key = kms.create_key()["KeyMetadata"]["Arn"]
    table = make_table(ddb, kms_key=src_key)
    make_vault(backup, "primary", src_key)
    make_vault(backup_dst, "dr", kms_dst.create_key()["KeyMetadata"]["Arn"])
    rp = completed_point(backup, table, "primary")
    job = wait_copy(backup, backup.start_copy_job(
        RecoveryPointArn=rp, SourceBackupVaultName="primary", IamRoleArn=ROLE,
        DestinationBackupVaultArn=f"arn:aws:backup:{DST}:{ACCOUNT}:backup-vault:dr")["CopyJobId"])
    return {"table": table, "rp": rp, "dr_rp": job["DestinationRecoveryPointArn"], "src_key": src_key}


def test_cross_region_restore_creates_table_with_data_indexes_and_key(ddb, ddb_dst, backup_dst, kms_dst, dr_point):
    target_key = kms_dst.create_key()["KeyMetadata"]["Arn"]
    job_id = restore(backup_dst, dr_point["dr_rp"], targetTableName="orders-dr", encryptionType="KMS",
                     kmsMasterKeyArn=target_key)
    job = wait_restore(backup_dst, job_id)
    assert job["Status"] == "COMPLETED", job
    assert job["CreatedResourceArn"] == f"arn:aws:dynamodb:{DST}:{ACCOUNT}:table/orders-dr"
    assert job["RecoveryPointArn"] == dr_point["dr_rp"] and job["SourceResourceArn"] == dr_point["table"]
    assert job["ResourceType"] == "DynamoDB" and job["PercentDone"] == "100.0"
    src = ddb.describe_table(TableName="orders")["Table"]
    new = ddb_dst.describe_table(TableName="orders-dr")["Table"]
    assert new["TableStatus"] == "ACTIVE" and new["ItemCount"] == src["ItemCount"] == 5
    assert new["KeySchema"] == src["KeySchema"]
    assert sorted(map(str, new["AttributeDefinitions"])) == sorted(map(str, src["AttributeDefinitions"]))
    assert [g["IndexName"] for g in new["GlobalSecondaryIndexes"]] == ["by-status"]
    assert [i["IndexName"] for i in new["LocalSecondaryIndexes"]] == ["by-created"]
    assert new["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    assert new["SSEDescription"]["SSEType"] == "KMS" and new["SSEDescription"]["KMSMasterKeyArn"] == target_key
    assert new["RestoreSummary"]["SourceBackupArn"] == dr_point["dr_rp"]
    assert new["RestoreSummary"]["RestoreInProgress"] is False
    key = {"pk": {"S": "customer-1"}, "sk": {"N": "3"}}
    assert ddb_dst.get_item(TableName="orders-dr", Key=key)["Item"] == ddb.get_item(TableName="orders", Key=key)["Item"]
    assert ddb_dst.query(TableName="orders-dr", IndexName="by-status", KeyConditionExpression="#s = :v",
                         ExpressionAttributeNames={"#s": "status"},
                         ExpressionAttributeValues={":v": {"S": "open"}})["Count"] == 2


def test_restore_status_progression(emulator, backup_dst, ddb_dst, dr_point):
    emulator.control("/_drover/config", {"durations": {"restore": 1.2}})
    job_id = restore(backup_dst, dr_point["dr_rp"], targetTableName="orders-dr", encryptionType="Default")
    seen = []
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        tables = ddb_dst.list_tables()["TableNames"]
        job = backup_dst.describe_restore_job(RestoreJobId=job_id)
        assert "State" not in job
        if job["Status"] != "COMPLETED":
            assert "orders-dr" not in tables  # the table appears at completion (ACTIVE)
        if not seen or seen[-1] != job["Status"]:
            seen.append(job["Status"])
        if job["Status"] == "COMPLETED":
            break
        time.sleep(0.03)
    assert seen == ["PENDING", "RUNNING", "COMPLETED"]
    assert "SSEDescription" not in ddb_dst.describe_table(TableName="orders-dr")["Table"]  # AWS-owned key


def test_restore_into_existing_table_fails(ddb_dst, backup_dst, dr_point):
    ddb_dst.create_table(TableName="taken", KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
                         AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
                         BillingMode="PAY_PER_REQUEST")
    job = wait_restore(backup_dst, restore(backup_dst, dr_point["dr_rp"], targetTableName="taken",
                                           encryptionType="Default"))
    assert job["Status"] == "FAILED" and "already exists" in job["StatusMessage"]
    assert "CreatedResourceArn" not in job
    assert ddb_dst.describe_table(TableName="taken")["Table"]["ItemCount"] == 0


@pytest.mark.parametrize("case", ["disabled", "missing", "other-region", "pending-deletion"])
def test_restore_with_unusable_kms_key_fails(case, kms_dst, kms, backup_dst, ddb_dst, dr_point):
    meta = kms_dst.create_key()["KeyMetadata"]
    key = meta["Arn"]
    if case == "disabled":
        kms_dst.disable_key(KeyId=meta["KeyId"])  # moto's DisableKey takes key ids only
    elif case == "missing":
        key = key.rsplit("/", 1)[0] + "/11111111-2222-3333-4444-555555555555"
    elif case == "other-region":
        key = kms.create_key()["KeyMetadata"]["Arn"]
    else:
        kms_dst.schedule_key_deletion(KeyId=meta["KeyId"], PendingWindowInDays=7)
    job = wait_restore(backup_dst, restore(backup_dst, dr_point["dr_rp"], targetTableName="orders-dr",
                                           encryptionType="KMS", kmsMasterKeyArn=key))
    assert job["Status"] == "FAILED" and "KMS key" in job["StatusMessage"]
    assert "orders-dr" not in ddb_dst.list_tables()["TableNames"]


def test_restore_fails_when_backup_key_disabled(backup_dst, kms_dst, dr_point):
    vault_key = backup_dst.describe_backup_vault(BackupVaultName="dr")["EncryptionKeyArn"]
    kms_dst.disable_key(KeyId=vault_key.rsplit("/", 1)[1])
    job = wait_restore(backup_dst, restore(backup_dst, dr_point["dr_rp"], targetTableName="orders-dr",
                                           encryptionType="Default"))
    assert job["Status"] == "FAILED" and "KMS key" in job["StatusMessage"]


def test_restore_metadata_keys_are_case_insensitive_and_kms_without_key(backup_dst, ddb_dst, dr_point):
    job = wait_restore(backup_dst, restore(backup_dst, dr_point["dr_rp"], TARGETTABLENAME="orders-dr",
                                           EncryptionType="KMS"))
    assert job["Status"] == "COMPLETED"
    sse = ddb_dst.describe_table(TableName="orders-dr")["Table"]["SSEDescription"]
    assert sse["SSEType"] == "KMS" and sse["KMSMasterKeyArn"].startswith(f"arn:aws:kms:{DST}:")


def test_restore_validation(backup_dst, dr_point):
    for meta in ({}, {"targetTableName": "x"}, {"targetTableName": "ok-name", "encryptionType": "AES"},
                 {"targetTableName": "ok-name", "kmsMasterKeyArn": "arn:aws:kms:us-west-2:1:key/x"}):
        with pytest.raises(botocore.exceptions.ClientError) as e:
            restore(backup_dst, dr_point["dr_rp"], **meta)
        assert error_code(e) == "InvalidParameterValueException", meta
    with pytest.raises(botocore.exceptions.ClientError) as e:
        restore(backup_dst, dr_point["rp"], targetTableName="orders-dr")  # source-region point, DR region call
    assert error_code(e) == "ResourceNotFoundException"
    with pytest.raises(botocore.exceptions.ClientError) as e:
        backup_dst.describe_restore_job(RestoreJobId="nope")
    assert error_code(e) == "ResourceNotFoundException"


def test_cross_region_restore_needs_encryption_type(backup_dst, dr_point):
    job = wait_restore(backup_dst, restore(backup_dst, dr_point["dr_rp"], targetTableName="orders-dr"))
    assert job["Status"] == "FAILED" and "encryptionType" in job["StatusMessage"]


def test_same_region_restore_keeps_source_key_by_default(ddb, backup, dr_point):
    job = wait_restore(backup, restore(backup, dr_point["rp"], targetTableName="orders-again"))
    assert job["Status"] == "COMPLETED"
    assert ddb.describe_table(TableName="orders-again")["Table"]["SSEDescription"]["KMSMasterKeyArn"] == \
        dr_point["src_key"]


def test_restore_native_point_same_region(emulator, ddb, backup):
    emulator.control("/_drover/config", {"advanced_default": False})
    table = make_table(ddb, "native")
    make_vault(backup, "vault")
    rp = completed_point(backup, table, "vault")
    job = wait_restore(backup, restore(backup, rp, targetTableName="native-restored", encryptionType="Default"))
    assert job["Status"] == "COMPLETED" and ddb.scan(TableName="native-restored")["Count"] == 5


def test_restore_idempotency_and_list_filters(emulator, backup_dst, ddb_dst, dr_point):
    a = backup_dst.start_restore_job(RecoveryPointArn=dr_point["dr_rp"], IamRoleArn=ROLE, IdempotencyToken="r-1",
                                     Metadata={"targetTableName": "t-one", "encryptionType": "Default"})
    b = backup_dst.start_restore_job(RecoveryPointArn=dr_point["dr_rp"], IamRoleArn=ROLE, IdempotencyToken="r-1",
                                     Metadata={"targetTableName": "t-one", "encryptionType": "Default"})
    assert a["RestoreJobId"] == b["RestoreJobId"]
    wait_restore(backup_dst, a["RestoreJobId"])
    failed = wait_restore(backup_dst, restore(backup_dst, dr_point["dr_rp"], targetTableName="t-one",
                                              encryptionType="Default"))["RestoreJobId"]
    emulator.control("/_drover/config", {"durations": {"restore": 30}})
    pending = restore(backup_dst, dr_point["dr_rp"], targetTableName="t-two", encryptionType="Default")

    def ids(**kw):
        return [j["RestoreJobId"] for j in backup_dst.list_restore_jobs(**kw)["RestoreJobs"]]
    assert ids(ByStatus="COMPLETED") == [a["RestoreJobId"]]
    assert ids(ByStatus="FAILED") == [failed]
    assert ids(ByStatus="PENDING") == [pending]
    assert len(ids(ByResourceType="DynamoDB")) == 3
    created = backup_dst.describe_restore_job(RestoreJobId=pending)["CreationDate"]
    assert ids(ByCreatedAfter=created) == [pending]
    page = backup_dst.list_restore_jobs(MaxResults=2)
    assert len(page["RestoreJobs"]) == 2
    assert len(backup_dst.list_restore_jobs(MaxResults=2, NextToken=page["NextToken"])["RestoreJobs"]) == 1
    assert wait_for(lambda: ids(), lambda x: len(x) == 3)
    assert SRC != DST
