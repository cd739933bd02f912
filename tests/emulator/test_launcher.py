"""The launcher (127.0.0.1 only, port file, signals) and the moto Backup features it keeps."""
import signal
import socket
import threading
import time

import botocore.exceptions
import pytest

from harness import (Emulator, backup_job, error_code, make_table, make_vault, start_server, stop_server,
                     wait_backup)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def restartable(tmp_path, job_seconds):
    """Arguments for a server that keeps its state in tmp_path across restarts, and its port
    (fixed, so that clients find it again)."""
    return ["--job-seconds", str(job_seconds), "--state-file", str(tmp_path / "state.pickle")], free_port()


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
    port = free_port()
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


def test_state_file_carries_tables_keys_points_and_running_jobs_across_a_restart(tmp_path):
    args, port = restartable(tmp_path, 1.5)
    proc, _, tmp = start_server(args, port=port)
    try:
        emu = Emulator(port)
        kms = emu.client("kms")
        key = kms.create_key()["KeyMetadata"]["Arn"]
        arn = make_table(emu.client("dynamodb"), kms_key=key)
        make_vault(emu.client("backup"), "vault", kms_key=key)
        job = backup_job(emu.client("backup"), arn, "vault", IdempotencyToken="restart-1")["BackupJobId"]
        assert emu.client("backup").describe_backup_job(BackupJobId=job)["State"] in ("CREATED", "RUNNING")
        assert stop_server(proc) == 0  # SIGTERM: saves the state
        assert (tmp_path / "state.pickle").exists()
        proc, _, tmp2 = start_server(args, port=port)
        emu = Emulator(port)
        # The job started before the restart finishes after it, with its recovery point.
        done = wait_backup(emu.client("backup"), job)
        assert done["State"] == "COMPLETED", done
        points = emu.client("backup").list_recovery_points_by_backup_vault(BackupVaultName="vault")
        assert [p["RecoveryPointArn"] for p in points["RecoveryPoints"]] == [done["RecoveryPointArn"]]
        # Same token, same job: idempotency survives the restart.
        again = backup_job(emu.client("backup"), arn, "vault", IdempotencyToken="restart-1")["BackupJobId"]
        assert again == job
        assert emu.client("dynamodb").scan(TableName="orders", Select="COUNT")["Count"] == 5
        assert emu.client("kms").describe_key(KeyId=key)["KeyMetadata"]["KeyState"] == "Enabled"
        stop_server(proc, tmp2)
    finally:
        stop_server(proc, tmp)


def test_every_acknowledged_call_survives_a_restart(tmp_path):
    """Calls answered while the server stops (on kept-alive connections, or queued behind the
    save) must be in the saved state: a service never loses a job it acknowledged."""
    args, port = restartable(tmp_path, 30)
    proc, _, tmp = start_server(args, port=port)
    try:
        emu = Emulator(port)
        arn = make_table(emu.client("dynamodb"))
        make_vault(emu.client("backup"), "vault")
        acked, lock, stop = [], threading.Lock(), threading.Event()

        def hammer(n):
            client = emu.client("backup")  # one kept-alive connection per thread
            for i in range(10_000):
                if stop.is_set():
                    return
                try:
                    out = backup_job(client, arn, "vault", IdempotencyToken=f"t{n}-{i}")
                except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError):
                    return  # refused or cut off: not acknowledged
                job = out.get("BackupJobId")
                assert job, out
                with lock:
                    acked.append(job)

        threads = [threading.Thread(target=hammer, args=(n,)) for n in range(6)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 20
        while len(acked) < 30 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert stop_server(proc) == 0
        stop.set()
        for t in threads:
            t.join(timeout=30)
        assert len(acked) >= 30
        proc, _, tmp2 = start_server(args, port=port)
        backup = Emulator(port).client("backup")
        lost = []
        for job in acked:
            try:
                backup.describe_backup_job(BackupJobId=job)
            except botocore.exceptions.ClientError:
                lost.append(job)
        assert lost == [], f"{len(lost)} of {len(acked)} acknowledged jobs lost"
        stop_server(proc, tmp2)
    finally:
        stop_server(proc, tmp)
