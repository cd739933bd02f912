"""ListRecoveryPointsByBackupVault / ListRecoveryPointsByResource / DescribeRecoveryPoint /
GetRecoveryPointRestoreMetadata / DeleteRecoveryPoint."""
import botocore.exceptions
import pytest

from harness import ROLE, backup_job, completed_point, error_code, make_table, make_vault, wait_backup


def test_describe_recovery_point(ddb, backup, kms):
    key = kms.create_key()["KeyMetadata"]["Arn"]
    table = make_table(ddb)
    vault_arn = make_vault(backup, "primary", key)
    job = wait_backup(backup, backup_job(backup, table, "primary",
                                         Lifecycle={"DeleteAfterDays": 35})["BackupJobId"])
    rp = backup.describe_recovery_point(BackupVaultName="primary", RecoveryPointArn=job["RecoveryPointArn"])
    assert rp["RecoveryPointArn"] == job["RecoveryPointArn"]
    assert rp["BackupVaultArn"] == vault_arn and rp["BackupVaultName"] == "primary"
    assert rp["ResourceArn"] == table and rp["ResourceType"] == "DynamoDB" and rp["ResourceName"] == "orders"
    assert rp["Status"] == "COMPLETED" and rp["StorageClass"] == "WARM"
    assert rp["EncryptionKeyArn"] == key and rp["IsEncrypted"] is True
    assert rp["EncryptionKeyType"] == "CUSTOMER_MANAGED_KMS_KEY"
    assert rp["CreationDate"] == job["CreationDate"] and rp["BackupSizeInBytes"] == job["BackupSizeInBytes"]
    assert rp["Lifecycle"]["DeleteAfterDays"] == 35 and "DeleteAt" in rp["CalculatedLifecycle"]
    assert "SourceBackupVaultArn" not in rp
    assert backup.describe_backup_vault(BackupVaultName="primary")["NumberOfRecoveryPoints"] == 1


def test_vault_without_key_uses_aws_backup_managed_key(ddb, backup, kms):
    rp_arn = completed_point(backup, make_table(ddb), make_vault(backup, "primary") and "primary")
    rp = backup.describe_recovery_point(BackupVaultName="primary", RecoveryPointArn=rp_arn)
    alias = [a for a in kms.list_aliases()["Aliases"] if a["AliasName"] == "alias/aws/backup"][0]
    assert rp["EncryptionKeyArn"].endswith(alias["TargetKeyId"])


def test_native_point_describe_and_metadata(emulator, ddb, backup):
    emulator.control("/_drover/config", {"advanced_default": False})
    table = make_table(ddb)
    make_vault(backup, "primary")
    arn = completed_point(backup, table, "primary")
    assert arn.startswith("arn:aws:dynamodb:") and "/backup/" in arn  # '/' in a URI label
    rp = backup.describe_recovery_point(BackupVaultName="primary", RecoveryPointArn=arn)
    assert rp["RecoveryPointArn"] == arn and rp["ResourceArn"] == table
    meta = backup.get_recovery_point_restore_metadata(BackupVaultName="primary", RecoveryPointArn=arn)
    assert meta["RecoveryPointArn"] == arn and meta["ResourceType"] == "DynamoDB"
    listed = backup.list_recovery_points_by_resource(ResourceArn=table)["RecoveryPoints"]
    assert [p["RecoveryPointArn"] for p in listed] == [arn]
    assert backup.list_recovery_points_by_resource(ResourceArn=table, ManagedByAWSBackupOnly=True)[
        "RecoveryPoints"] == []


def test_get_recovery_point_restore_metadata(ddb, backup):
    table = make_table(ddb)
    vault_arn = make_vault(backup, "primary")
    arn = completed_point(backup, table, "primary")
    out = backup.get_recovery_point_restore_metadata(BackupVaultName="primary", RecoveryPointArn=arn)
    assert out["BackupVaultArn"] == vault_arn and out["RecoveryPointArn"] == arn
    assert out["ResourceType"] == "DynamoDB"
    assert out["RestoreMetadata"] == {"originalTableName": "orders"}


def test_wrong_vault_or_unknown_point(ddb, backup):
    table = make_table(ddb)
    make_vault(backup, "primary")
    make_vault(backup, "other")
    arn = completed_point(backup, table, "primary")
    for vault, point in (("other", arn), ("primary", arn + "0"), ("missing", arn)):
        with pytest.raises(botocore.exceptions.ClientError) as e:
            backup.describe_recovery_point(BackupVaultName=vault, RecoveryPointArn=point)
        assert error_code(e) == "ResourceNotFoundException"


def test_list_by_vault_filters_and_pagination(ddb, backup):
    t1, t2 = make_table(ddb, "orders"), make_table(ddb, "users")
    make_vault(backup, "primary")
    make_vault(backup, "other")
    orders = [completed_point(backup, t1, "primary") for _ in range(3)]
    users = completed_point(backup, t2, "primary")
    completed_point(backup, t1, "other")

    def arns(**kw):
        return [p["RecoveryPointArn"] for p in
                backup.list_recovery_points_by_backup_vault(BackupVaultName="primary", **kw)["RecoveryPoints"]]
    assert sorted(arns()) == sorted(orders + [users])
    assert sorted(arns(ByResourceArn=t1)) == sorted(orders)
    assert arns(ByResourceType="EBS") == []
    assert arns(ByBackupPlanId="plan-1") == []
    newest = backup.describe_recovery_point(BackupVaultName="primary", RecoveryPointArn=users)["CreationDate"]
    assert arns(ByCreatedAfter=newest) == [users]
    assert users not in arns(ByCreatedBefore=newest.replace(microsecond=0))

    seen, token = [], None
    for _ in range(10):  # bounded
        page = backup.list_recovery_points_by_backup_vault(
            BackupVaultName="primary", MaxResults=3, **({"NextToken": token} if token else {}))
        seen.append(len(page["RecoveryPoints"]))
        token = page.get("NextToken")
        if not token:
            break
    assert seen == [3, 1]
    with pytest.raises(botocore.exceptions.ClientError) as e:
        backup.list_recovery_points_by_backup_vault(BackupVaultName="missing")
    assert error_code(e) == "ResourceNotFoundException"


def test_list_by_resource(ddb, backup):
    table = make_table(ddb)
    make_vault(backup, "primary")
    make_vault(backup, "other")
    a = completed_point(backup, table, "primary")
    b = completed_point(backup, table, "other")
    points = backup.list_recovery_points_by_resource(ResourceArn=table)["RecoveryPoints"]
    assert sorted(p["RecoveryPointArn"] for p in points) == sorted([a, b])
    assert all("BackupVaultName" not in p and p["BackupSizeBytes"] > 0 for p in points)
    page = backup.list_recovery_points_by_resource(ResourceArn=table, MaxResults=1)
    assert len(page["RecoveryPoints"]) == 1 and page["NextToken"]
    assert backup.list_recovery_points_by_resource(ResourceArn=table + "-x")["RecoveryPoints"] == []


def test_delete_recovery_point(ddb, backup):
    table = make_table(ddb)
    make_vault(backup, "primary")
    arn = completed_point(backup, table, "primary")
    with pytest.raises(botocore.exceptions.ClientError) as e:
        backup.delete_backup_vault(BackupVaultName="primary")
    assert error_code(e) == "InvalidRequestException"
    backup.delete_recovery_point(BackupVaultName="primary", RecoveryPointArn=arn)
    with pytest.raises(botocore.exceptions.ClientError) as e:
        backup.describe_recovery_point(BackupVaultName="primary", RecoveryPointArn=arn)
    assert error_code(e) == "ResourceNotFoundException"
    with pytest.raises(botocore.exceptions.ClientError) as e:
        backup.delete_recovery_point(BackupVaultName="primary", RecoveryPointArn=arn)
    assert error_code(e) == "ResourceNotFoundException"
    assert backup.describe_backup_vault(BackupVaultName="primary")["NumberOfRecoveryPoints"] == 0
    with pytest.raises(botocore.exceptions.ClientError) as e:
        backup.start_restore_job(RecoveryPointArn=arn, IamRoleArn=ROLE, Metadata={"targetTableName": "x-restored"})
    assert error_code(e) == "ResourceNotFoundException"
    backup.delete_backup_vault(BackupVaultName="primary")
