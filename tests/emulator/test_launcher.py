"""The launcher (127.0.0.1 only, port file, signals) and the moto Backup features it keeps."""
import signal
import socket
import time

import botocore.exceptions
import pytest

from harness import Emulator, error_code, start_server, stop_server


def listening_addresses(port):
    """Local IPv4 addresses in LISTEN state on `port`, from /proc/net/tcp."""
    found = []
    with open("/proc/net/tcp") as fh:
        for line in fh.readlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            addr, p = local.split(":")
            if int(p, 16) == port and state == "0A":
                found.append(socket.inet_ntoa(bytes.fromhex(addr)[::-1]))
    return found


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_binds_loopback_writes_port_file_and_stops_on_signal(sig):
    proc, port, tmp = start_server()
    try:
        assert 0 < port < 65536
        assert listening_addresses(port) == ["127.0.0.1"]
        proc.send_signal(sig)
        deadline = time.monotonic() + 10
        while proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert proc.returncode == 0
    finally:
        stop_server(proc, tmp)


def test_explicit_port_and_job_seconds():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc, bound, tmp = start_server(["--job-seconds", "0.25"], port=port)
    try:
        assert bound == port
        assert Emulator(port).control("/_drover/config")[1]["durations"]["default"] == 0.25
    finally:
        stop_server(proc, tmp)


def test_moto_backup_features_still_work(backup):
    arn = backup.create_backup_vault(BackupVaultName="primary", BackupVaultTags={"team": "dr"})["BackupVaultArn"]
    assert backup.describe_backup_vault(BackupVaultName="primary")["BackupVaultArn"] == arn
    assert [v["BackupVaultName"] for v in backup.list_backup_vaults()["BackupVaultList"]] == ["primary"]
    backup.tag_resource(ResourceArn=arn, Tags={"env": "test"})
    assert backup.list_tags(ResourceArn=arn)["Tags"] == {"team": "dr", "env": "test"}
    backup.untag_resource(ResourceArn=arn, TagKeyList=["team"])
    assert backup.list_tags(ResourceArn=arn)["Tags"] == {"env": "test"}
    backup.put_backup_vault_lock_configuration(BackupVaultName="primary", MinRetentionDays=1)
    assert backup.describe_backup_vault(BackupVaultName="primary")["Locked"] is True
    plan = backup.create_backup_plan(BackupPlan={"BackupPlanName": "daily", "Rules": [
        {"RuleName": "r", "TargetBackupVaultName": "primary"}]})
    assert backup.get_backup_plan(BackupPlanId=plan["BackupPlanId"])["BackupPlan"]["BackupPlanName"] == "daily"
    assert len(backup.list_backup_plans()["BackupPlansList"]) == 1
    backup.delete_backup_vault(BackupVaultName="primary")
    with pytest.raises(botocore.exceptions.ClientError) as e:
        backup.describe_backup_vault(BackupVaultName="primary")
    assert error_code(e) == "ResourceNotFoundException"


def test_regions_are_isolated(backup, backup_dst):
    backup.create_backup_vault(BackupVaultName="primary")
    assert backup_dst.list_backup_vaults()["BackupVaultList"] == []
