"""Honoured always (not only in realism mode): StartWindowMinutes / CompleteWindowMinutes on
StartBackupJob, Lifecycle on StartBackupJob / StartCopyJob, and the tags of recovery points."""
import time

import botocore.exceptions
import pytest

from harness import (ACCOUNT, DST, ROLE, backup_job, completed_point, error_code, make_table, make_vault,
                     wait_backup, wait_copy)

DR_VAULT = f"arn:aws:backup:{DST}:{ACCOUNT}:backup-vault:dr"
DAY = 86400


def states_until_done(backup, job_id, timeout=10):
    seen = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = backup.describe_backup_job(BackupJobId=job_id)
        if not seen or seen[-1] != job["State"]:
            seen.append(job["State"])
        if job["State"] not in ("CREATED", "RUNNING"):
            return seen, job
        time.sleep(0.03)
    raise AssertionError(f"job still {seen}")


def test_window_minutes_are_validated_and_scaled(emulator, ddb, backup):
    table = make_table(ddb)
    make_vault(backup, "vault")
    for kw in ({"StartWindowMinutes": 59}, {"StartWindowMinutes": 52_560_001}, {"CompleteWindowMinutes": 0}):
        with pytest.raises(botocore.exceptions.ClientError) as e:
            backup_job(backup, table, "vault", **kw)
        assert error_code(e) == "InvalidParameterValueException", kw
    assert backup.list_backup_jobs()["BackupJobs"] == []
    assert emulator.control("/_drover/config", {"window_minute_seconds": 0})[0] == 400
    status, cfg = emulator.control("/_drover/config", {"window_minute_seconds": 0.5})
    assert status == 200 and cfg["window_minute_seconds"] == 0.5
    job = backup.describe_backup_job(BackupJobId=backup_job(backup, table, "vault", StartWindowMinutes=60)[
        "BackupJobId"])
    assert (job["StartBy"] - job["CreationDate"]).total_seconds() == pytest.approx(30, abs=0.01)
    default = backup.describe_backup_job(BackupJobId=backup_job(backup, table, "vault")["BackupJobId"])
    assert (default["StartBy"] - default["CreationDate"]).total_seconds() == pytest.approx(240, abs=0.01)  # 8 h


def test_a_job_still_created_at_the_end_of_its_start_window_expires(emulator, ddb, backup):
    emulator.control("/_drover/config", {"window_minute_seconds": 0.005, "durations": {"backup": 2.0}})
    make_vault(backup, "vault")
    # CREATED for the first 0.5 s of its 2 s; the start window (60 min = 0.3 s) ends first.
    seen, job = states_until_done(backup, backup_job(backup, make_table(ddb), "vault", StartWindowMinutes=60)[
        "BackupJobId"])
    assert seen == ["CREATED", "EXPIRED"] and "start window" in job["StatusMessage"]
    assert "InitiationDate" not in job and "RecoveryPointArn" in job  # advanced: the ARN was returned at start
    assert backup.list_recovery_points_by_backup_vault(BackupVaultName="vault")["RecoveryPoints"] == []


def test_a_job_not_done_by_its_complete_window_expires(emulator, ddb, backup):
    emulator.control("/_drover/config", {"window_minute_seconds": 0.2, "durations": {"backup": 1.0}})
    make_vault(backup, "vault")
    table = make_table(ddb)
    seen, job = states_until_done(backup, backup_job(backup, table, "vault", StartWindowMinutes=60,
                                                     CompleteWindowMinutes=3)["BackupJobId"])
    assert seen == ["CREATED", "RUNNING", "EXPIRED"] and job["StatusMessage"] == "Backup job expired before completion."
    assert (job["CompletionDate"] - job["CreationDate"]).total_seconds() == pytest.approx(0.6, abs=0.05)
    assert backup.list_recovery_points_by_backup_vault(BackupVaultName="vault")["RecoveryPoints"] == []
    seen, job = states_until_done(backup, backup_job(backup, table, "vault", CompleteWindowMinutes=10)["BackupJobId"])
    assert seen == ["CREATED", "RUNNING", "COMPLETED"]


@pytest.mark.parametrize("life,message", [
    ({"MoveToColdStorageAfterDays": 20, "DeleteAfterDays": 100}, "90 days apart"),
    ({"DeleteAfterDays": 0}, "less than 1 or more than 36500"),
    ({"DeleteAfterDays": 36501}, "less than 1 or more than 36500"),
    ({"MoveToColdStorageAfterDays": -2}, "less than 1 or more than 36500"),
    ({"DeleteAfterEvent": "DELETE_AFTER_COPY"}, "not valid as an input"),
])
def test_lifecycle_is_validated(ddb, backup, life, message):
    table = make_table(ddb)
    make_vault(backup, "vault")
    rp = completed_point(backup, table, "vault")
    for call in (lambda: backup_job(backup, table, "vault", Lifecycle=life),
                 lambda: backup.start_copy_job(RecoveryPointArn=rp, SourceBackupVaultName="vault", IamRoleArn=ROLE,
                                               DestinationBackupVaultArn=DR_VAULT, Lifecycle=life)):
        with pytest.raises(botocore.exceptions.ClientError) as e:
            call()
        assert error_code(e) == "InvalidParameterValueException" and message in e.value.response["Error"]["Message"]
    assert len(backup.list_backup_jobs()["BackupJobs"]) == 1 and backup.list_copy_jobs()["CopyJobs"] == []


def test_lifecycle_is_kept_on_points_and_copies(ddb, backup, backup_dst):
    table = make_table(ddb)
    make_vault(backup, "vault")
    make_vault(backup_dst, "dr")
    life = {"MoveToColdStorageAfterDays": 30, "DeleteAfterDays": 120, "OptInToArchiveForSupportedResources": True}
    job = wait_backup(backup, backup_job(backup, table, "vault", Lifecycle=life)["BackupJobId"])
    assert job["RecoveryPointLifecycle"] == life
    rp = backup.describe_recovery_point(BackupVaultName="vault", RecoveryPointArn=job["RecoveryPointArn"])
    created = rp["CreationDate"]
    assert rp["Lifecycle"] == life
    assert (rp["CalculatedLifecycle"]["DeleteAt"] - created).total_seconds() == 120 * DAY
    assert (rp["CalculatedLifecycle"]["MoveToColdStorageAt"] - created).total_seconds() == 30 * DAY
    listed = backup.list_recovery_points_by_backup_vault(BackupVaultName="vault")["RecoveryPoints"][0]
    assert listed["Lifecycle"] == life and listed["CalculatedLifecycle"] == rp["CalculatedLifecycle"]
    forever = wait_backup(backup, backup_job(backup, table, "vault", Lifecycle={"DeleteAfterDays": -1})[
        "BackupJobId"])["RecoveryPointArn"]  # -1: kept indefinitely
    assert "CalculatedLifecycle" not in backup.describe_recovery_point(BackupVaultName="vault",
                                                                       RecoveryPointArn=forever)

    def copy(**kw):
        out = wait_copy(backup, backup.start_copy_job(RecoveryPointArn=rp["RecoveryPointArn"],
                                                      SourceBackupVaultName="vault", IamRoleArn=ROLE,
                                                      DestinationBackupVaultArn=DR_VAULT, **kw)["CopyJobId"])
        return backup_dst.describe_recovery_point(BackupVaultName="dr", RecoveryPointArn=out[
            "DestinationRecoveryPointArn"]), out
    same, _ = copy()  # no Lifecycle: the source's
    assert same["Lifecycle"] == life and same["CreationDate"] == created
    assert same["CalculatedLifecycle"] == rp["CalculatedLifecycle"]
    inherit, out = copy(Lifecycle={"DeleteAfterDays": -1})  # "will retain its source recovery point's expiration date"
    assert out["DestinationRecoveryPointLifecycle"] == {"DeleteAfterDays": -1}
    assert inherit["CalculatedLifecycle"]["DeleteAt"] == rp["CalculatedLifecycle"]["DeleteAt"]
    longer, _ = copy(Lifecycle={"DeleteAfterDays": 400})  # counted from the source's creation date
    assert (longer["CalculatedLifecycle"]["DeleteAt"] - created).total_seconds() == 400 * DAY


def test_recovery_points_carry_tags_and_copies_keep_them(ddb, backup, backup_dst):
    table = make_table(ddb)
    ddb.tag_resource(ResourceArn=table, Tags=[{"Key": "team", "Value": "orders"}, {"Key": "env", "Value": "prod"}])
    make_vault(backup, "vault")
    make_vault(backup_dst, "dr")
    rp = wait_backup(backup, backup_job(backup, table, "vault", RecoveryPointTags={
        "env": "drill", "purpose": "dr"})["BackupJobId"])["RecoveryPointArn"]
    # the table's tags plus the requested ones, which win a conflict
    assert backup.list_tags(ResourceArn=rp)["Tags"] == {"team": "orders", "env": "drill", "purpose": "dr"}
    dest = wait_copy(backup, backup.start_copy_job(RecoveryPointArn=rp, SourceBackupVaultName="vault",
                                                   IamRoleArn=ROLE, DestinationBackupVaultArn=DR_VAULT)["CopyJobId"])
    assert backup_dst.list_tags(ResourceArn=dest["DestinationRecoveryPointArn"])["Tags"] == {
        "team": "orders", "env": "drill", "purpose": "dr"}
    # At most 50 tags: the requested ones first, then the table's, each in alphabetical order.
    ddb.tag_resource(ResourceArn=table, Tags=[{"Key": f"t{i:02d}", "Value": "x"} for i in range(48)])
    many = wait_backup(backup, backup_job(backup, table, "vault", RecoveryPointTags={
        f"r{i}": "y" for i in range(5)})["BackupJobId"])["RecoveryPointArn"]
    tags = backup.list_tags(ResourceArn=many)["Tags"]
    assert len(tags) == 50 and all(f"r{i}" in tags for i in range(5))
    assert "env" in tags and "t43" in tags and "t44" not in tags and "team" not in tags
    backup.delete_recovery_point(BackupVaultName="vault", RecoveryPointArn=rp)
    assert backup.list_tags(ResourceArn=rp)["Tags"] == {}
