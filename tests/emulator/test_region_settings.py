"""DescribeRegionSettings / UpdateRegionSettings and the advanced-backup default knob."""
import re

from harness import DST, SRC, backup_job, make_table, make_vault, wait_backup


def test_default_is_advanced_on(backup):
    out = backup.describe_region_settings()
    assert out["ResourceTypeOptInPreference"]["DynamoDB"] is True
    assert out["ResourceTypeManagementPreference"]["DynamoDB"] is True


def test_update_region_settings_is_per_region(ddb, backup, backup_dst):
    backup.update_region_settings(ResourceTypeManagementPreference={"DynamoDB": False})
    out = backup.describe_region_settings()
    assert out["ResourceTypeManagementPreference"]["DynamoDB"] is False
    assert out["ResourceTypeOptInPreference"]["DynamoDB"] is True
    assert backup_dst.describe_region_settings()["ResourceTypeManagementPreference"]["DynamoDB"] is True
    # management off => not advanced => native DynamoDB backup ARN
    table = make_table(ddb)
    make_vault(backup, "primary")
    out = backup_job(backup, table, "primary")
    assert "RecoveryPointArn" not in out
    job = wait_backup(backup, out["BackupJobId"])
    assert job["RecoveryPointArn"].startswith(f"arn:aws:dynamodb:{SRC}:")
    # both on again => advanced
    backup.update_region_settings(ResourceTypeOptInPreference={"DynamoDB": True},
                                  ResourceTypeManagementPreference={"DynamoDB": True})
    assert re.match(rf"arn:aws:backup:{SRC}:\d{{12}}:recovery-point:",
                    backup_job(backup, table, "primary")["RecoveryPointArn"])


def test_control_toggles_default(emulator, backup, backup_dst):
    status, cfg = emulator.control("/_drover/config", {"advanced_default": False})
    assert status == 200 and cfg["advanced_default"] is False
    for client in (backup, backup_dst):
        out = client.describe_region_settings()
        assert out["ResourceTypeOptInPreference"]["DynamoDB"] is False
        assert out["ResourceTypeManagementPreference"]["DynamoDB"] is False
    backup.update_region_settings(ResourceTypeOptInPreference={"DynamoDB": True},
                                  ResourceTypeManagementPreference={"DynamoDB": True})
    assert backup.describe_region_settings()["ResourceTypeManagementPreference"]["DynamoDB"] is True
    assert backup_dst.describe_region_settings()["ResourceTypeManagementPreference"]["DynamoDB"] is False
    assert DST != SRC
