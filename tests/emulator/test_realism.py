"""Realism mode (realism.py): one test per documented AWS behaviour, each asserting the AWS-shaped
answer and that it ends. A server of its own, started with --realism --seed 1; every test starts
from the launch settings (all knobs on) and turns on only the knobs it tests."""
import time

import botocore.exceptions
import pytest

from harness import (ACCOUNT, DST, ROLE, SRC, Emulator, backup_job, completed_point, error_code, make_table,
                     make_vault, start_server, stop_server, wait_backup, wait_copy, wait_for, wait_restore)

KNOBS = ("tag_delay", "pitr_unavailable", "pitr_latest_lag", "update_seconds", "ttl_enabling", "ttl_change_window",
         "delete_seconds", "restore_settle", "backup_lag", "unseen_jobs", "page_size", "max_restores", "one_job_per_resource",
         "copy_queue", "fault_rate", "idempotent_replay_without_id")
DEFAULTS = {"tag_delay": 1.0, "pitr_unavailable": 1.0, "pitr_latest_lag": 2.0, "update_seconds": 0.5,
            "ttl_enabling": 0.5, "ttl_change_window": 3.0, "delete_seconds": 1.0, "restore_settle": 1.0, "backup_lag": 1.0,
            "unseen_jobs": 0.5, "page_size": 2, "max_restores": 4, "one_job_per_resource": True,
            "copy_queue": 1.0, "fault_rate": 0.02, "idempotent_replay_without_id": True}
DR_VAULT = f"arn:aws:backup:{DST}:{ACCOUNT}:backup-vault:dr"


@pytest.fixture(scope="session")
def realistic():
    proc, port, tmp = start_server(["--realism", "--seed", "1"])
    try:
        yield Emulator(port)
    finally:
        stop_server(proc, tmp)


@pytest.fixture(autouse=True)
def fresh(realistic):
    """Overrides conftest's: resets this server (launch settings: every knob on), then turns every
    knob off; each test turns on what it tests. Jobs finish at once unless a test says otherwise."""
    assert realistic.control("/_drover/reset", {})[0] == 200
    knobs(realistic)
    realistic.control("/_drover/config", {"durations": {"default": 0}})
    yield


def knobs(emu, **on):
    status, cfg = emu.control("/_drover/realism", {**{k: None for k in KNOBS}, **on})
    assert status == 200, cfg
    return cfg["realism"]


@pytest.fixture
def ddb(realistic):
    return realistic.client("dynamodb", SRC)


@pytest.fixture
def ddb_dst(realistic):
    return realistic.client("dynamodb", DST)


@pytest.fixture
def backup(realistic):
    return realistic.client("backup", SRC)


@pytest.fixture
def backup_dst(realistic):
    return realistic.client("backup", DST)


def raises(code, call, *args, **kwargs):
    with pytest.raises(botocore.exceptions.ClientError) as e:
        call(*args, **kwargs)
    assert error_code(e) == code, e.value.response
    return e.value.response


def code(client_error):
    return client_error.response["Error"]["Code"]


def until(deadline_s, fn, done=bool, interval=0.05):
    return wait_for(fn, done, timeout=deadline_s, interval=interval)


def tags_of(ddb, arn):
    return {t["Key"]: t["Value"] for t in ddb.list_tags_of_resource(ResourceArn=arn)["Tags"]}


def simple_table(ddb, name):
    ddb.create_table(TableName=name, KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
                     AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
                     BillingMode="PAY_PER_REQUEST")
    return ddb.describe_table(TableName=name)["Table"]["TableArn"]


# ---------------------------------------------------------------- interface

def test_launch_settings_config_and_validation(realistic):
    status, cfg = realistic.control("/_drover/reset", {"moto": False})
    assert status == 200 and {k: cfg["realism"][k] for k in KNOBS} == DEFAULTS and cfg["realism"]["seed"] == 1
    assert realistic.control("/_drover/config")[1]["realism"]["page_size"] == 2
    for bad in ({"nope": 1}, {"tag_delay": -1}, {"tag_delay": "1"}, {"page_size": 1.5}, {"fault_rate": 2},
                {"one_job_per_resource": 1}, {"max_restores": True}, {"seed": "x"}, {"window_minute_seconds": 0}):
        status, out = realistic.control("/_drover/realism", bad)
        assert status == 400 and out["error"], bad
    # all or nothing: a bad value leaves the other knobs as they were
    assert realistic.control("/_drover/realism", {"tag_delay": 0.3, "page_size": -1})[0] == 400
    assert realistic.control("/_drover/config")[1]["realism"]["tag_delay"] == 1.0
    out = knobs(realistic, tag_delay=0.3, one_job_per_resource=None)
    assert out["tag_delay"] == 0.3 and out["one_job_per_resource"] is False and out["page_size"] == 0


# ---------------------------------------------------------------- 1. tag_delay

def test_tagging_is_asynchronous(realistic, ddb):
    knobs(realistic, tag_delay=1.0)
    arn = simple_table(ddb, "tagged")
    ddb.tag_resource(ResourceArn=arn, Tags=[{"Key": "team", "Value": "dr"}, {"Key": "env", "Value": "a"}])
    t0 = time.monotonic()
    assert tags_of(ddb, arn) == {}  # the previous (empty) tag set
    until(5, lambda: tags_of(ddb, arn), lambda t: t == {"team": "dr", "env": "a"})
    assert time.monotonic() - t0 >= 0.9
    ddb.tag_resource(ResourceArn=arn, Tags=[{"Key": "env", "Value": "b"}])  # a new value replaces the old
    ddb.untag_resource(ResourceArn=arn, TagKeys=["team"])
    assert tags_of(ddb, arn) == {"team": "dr", "env": "a"}
    until(5, lambda: tags_of(ddb, arn), lambda t: t == {"env": "b"})


# ---------------------------------------------------------------- 2. pitr_unavailable

def test_continuous_backups_are_unavailable_on_a_new_table(realistic, ddb):
    knobs(realistic, pitr_unavailable=1.0)
    simple_table(ddb, "fresh")
    spec = {"PointInTimeRecoveryEnabled": True}
    resp = raises("ContinuousBackupsUnavailableException", ddb.update_continuous_backups, TableName="fresh",
                  PointInTimeRecoverySpecification=spec)
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert ddb.describe_continuous_backups(TableName="fresh")["ContinuousBackupsDescription"][
        "PointInTimeRecoveryDescription"]["PointInTimeRecoveryStatus"] == "DISABLED"  # no effect

    def enable():
        try:
            return ddb.update_continuous_backups(TableName="fresh", PointInTimeRecoverySpecification=spec)
        except botocore.exceptions.ClientError as e:
            assert code(e) == "ContinuousBackupsUnavailableException"
            return None
    out = until(5, enable)
    assert out["ContinuousBackupsDescription"]["PointInTimeRecoveryDescription"]["PointInTimeRecoveryStatus"] == \
        "ENABLED"


# ---------------------------------------------------------------- 3. update_seconds

def test_update_table_is_asynchronous(realistic, ddb):
    knobs(realistic, update_seconds=1.5)
    simple_table(ddb, "busy")
    out = ddb.update_table(TableName="busy", StreamSpecification={"StreamEnabled": True,
                                                                   "StreamViewType": "NEW_IMAGE"})
    assert out["TableDescription"]["TableStatus"] == "UPDATING"
    assert ddb.describe_table(TableName="busy")["Table"]["TableStatus"] == "UPDATING"
    raises("ResourceInUseException", ddb.update_table, TableName="busy", DeletionProtectionEnabled=True)
    raises("ResourceInUseException", ddb.update_time_to_live, TableName="busy",
           TimeToLiveSpecification={"Enabled": True, "AttributeName": "ttl"})
    raises("ResourceInUseException", ddb.delete_table, TableName="busy")
    ddb.put_item(TableName="busy", Item={"id": {"S": "1"}})  # UPDATING tables serve data
    ddb.update_continuous_backups(TableName="busy",  # not among UpdateContinuousBackups' errors
                                  PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True})
    until(5, lambda: ddb.describe_table(TableName="busy")["Table"]["TableStatus"], lambda s: s == "ACTIVE")
    # A table that has a stream: enabling one again (any view type) is a ValidationException.
    for view in ("NEW_IMAGE", "KEYS_ONLY"):
        raises("ValidationException", ddb.update_table, TableName="busy",
               StreamSpecification={"StreamEnabled": True, "StreamViewType": view})
    ddb.update_table(TableName="busy", StreamSpecification={"StreamEnabled": False})
    until(5, lambda: ddb.describe_table(TableName="busy")["Table"]["TableStatus"], lambda s: s == "ACTIVE")
    raises("ValidationException", ddb.update_table, TableName="busy", StreamSpecification={"StreamEnabled": False})
    out = ddb.update_table(TableName="busy", StreamSpecification={"StreamEnabled": True,
                                                                   "StreamViewType": "KEYS_ONLY"})
    assert out["TableDescription"]["StreamSpecification"]["StreamViewType"] == "KEYS_ONLY"


# ---------------------------------------------------------------- 4. ttl_enabling, ttl_change_window

def test_time_to_live_changes_slowly(realistic, ddb):
    knobs(realistic, ttl_enabling=0.8, ttl_change_window=1.5)
    simple_table(ddb, "expiring")

    def status():
        return ddb.describe_time_to_live(TableName="expiring")["TimeToLiveDescription"]["TimeToLiveStatus"]
    t0 = time.monotonic()
    ddb.update_time_to_live(TableName="expiring", TimeToLiveSpecification={"Enabled": True, "AttributeName": "ttl"})
    assert status() == "ENABLING"
    resp = raises("ValidationException", ddb.update_time_to_live, TableName="expiring",
                  TimeToLiveSpecification={"Enabled": False, "AttributeName": "ttl"})
    assert "multiple times within a fixed interval" in resp["Error"]["Message"]
    until(5, status, lambda s: s == "ENABLED")
    assert time.monotonic() - t0 >= 0.75

    def disable():
        try:
            return ddb.update_time_to_live(TableName="expiring",
                                           TimeToLiveSpecification={"Enabled": False, "AttributeName": "ttl"})
        except botocore.exceptions.ClientError as e:
            assert code(e) == "ValidationException"
    until(5, disable)
    assert time.monotonic() - t0 >= 1.45  # the change window had to pass
    assert status() == "DISABLING"
    until(5, status, lambda s: s == "DISABLED")


# ---------------------------------------------------------------- 5. delete_seconds

def test_delete_table_is_asynchronous(realistic, ddb, backup):
    knobs(realistic, delete_seconds=2.0)
    table = make_table(ddb, "doomed", items=3)
    make_vault(backup, "vault")
    rp = completed_point(backup, table, "vault")
    out = ddb.delete_table(TableName="doomed")
    assert out["TableDescription"]["TableStatus"] == "DELETING"
    assert ddb.describe_table(TableName="doomed")["Table"]["TableStatus"] == "DELETING"
    assert ddb.delete_table(TableName="doomed")["TableDescription"]["TableStatus"] == "DELETING"  # no error
    assert "doomed" in ddb.list_tables()["TableNames"]
    raises("ResourceInUseException", ddb.update_table, TableName="doomed", DeletionProtectionEnabled=True)
    raises("ResourceInUseException", ddb.update_time_to_live, TableName="doomed",
           TimeToLiveSpecification={"Enabled": True, "AttributeName": "ttl"})
    resp = raises("ResourceNotFoundException", ddb.list_tags_of_resource, ResourceArn=table)
    assert "ResourcArn" in resp["Error"]["Message"]
    raises("ResourceNotFoundException", ddb.tag_resource, ResourceArn=table, Tags=[{"Key": "a", "Value": "b"}])
    assert ddb.scan(TableName="doomed")["Count"] == 3  # "might continue to accept data read and write operations"
    job = wait_restore(backup, backup.start_restore_job(
        RecoveryPointArn=rp, IamRoleArn=ROLE, Metadata={"targetTableName": "doomed", "encryptionType": "Default"}
    )["RestoreJobId"])
    assert job["Status"] == "FAILED" and "Table already exists" in job["StatusMessage"]

    def gone():
        try:
            ddb.describe_table(TableName="doomed")
            return False
        except botocore.exceptions.ClientError as e:
            return code(e) == "ResourceNotFoundException"
    until(5, gone)
    assert "doomed" not in ddb.list_tables()["TableNames"]
    job = wait_restore(backup, backup.start_restore_job(
        RecoveryPointArn=rp, IamRoleArn=ROLE, Metadata={"targetTableName": "doomed", "encryptionType": "Default"}
    )["RestoreJobId"])
    assert job["Status"] == "COMPLETED"


# ---------------------------------------------------------------- 6. restore_settle

def test_restored_table_settles_after_the_job_completes(realistic, ddb, backup):
    knobs(realistic, restore_settle=2.0)
    make_vault(backup, "vault")
    rp = completed_point(backup, make_table(ddb, items=4), "vault")
    job = wait_restore(backup, backup.start_restore_job(
        RecoveryPointArn=rp, IamRoleArn=ROLE, Metadata={"targetTableName": "again", "encryptionType": "Default"}
    )["RestoreJobId"])
    assert job["Status"] == "COMPLETED"
    phases = []
    deadline = time.monotonic() + 8
    while time.monotonic() < deadline:
        t = ddb.describe_table(TableName="again")["Table"]
        phase = (t["TableStatus"], t["RestoreSummary"]["RestoreInProgress"],
                 tuple(g["IndexStatus"] for g in t["GlobalSecondaryIndexes"]))
        if not phases or phases[-1] != phase:
            phases.append(phase)
            if phase[0] == "CREATING":  # only an ACTIVE table serves reads and writes
                raises("ResourceNotFoundException", ddb.scan, TableName="again")
                raises("ResourceNotFoundException", ddb.list_tags_of_resource, ResourceArn=t["TableArn"])
        if phase == ("ACTIVE", False, ("ACTIVE",)):
            break
        time.sleep(0.05)
    assert phases == [("CREATING", True, ("CREATING",)), ("ACTIVE", True, ("CREATING",)),
                      ("ACTIVE", False, ("ACTIVE",))]
    assert ddb.scan(TableName="again")["Count"] == 4


# ---------------------------------------------------------------- 7. backup_lag

def test_a_backup_misses_the_latest_writes(realistic, ddb, backup):
    make_vault(backup, "vault")
    arn = make_table(ddb, "ledger", items=4)  # customer-{i%2} / sk i
    knobs(realistic, backup_lag=1.5)  # the seed items were written before: not in the write log
    ddb.put_item(TableName="ledger", Item={"pk": {"S": "new"}, "sk": {"N": "1"}})
    ddb.update_item(TableName="ledger", Key={"pk": {"S": "customer-0"}, "sk": {"N": "0"}},
                    UpdateExpression="SET #s = :v", ExpressionAttributeNames={"#s": "status"},
                    ExpressionAttributeValues={":v": {"S": "changed"}})
    ddb.delete_item(TableName="ledger", Key={"pk": {"S": "customer-1"}, "sk": {"N": "1"}})
    ddb.batch_write_item(RequestItems={"ledger": [
        {"PutRequest": {"Item": {"pk": {"S": "batch"}, "sk": {"N": "1"}}}},
        {"DeleteRequest": {"Key": {"pk": {"S": "customer-0"}, "sk": {"N": "2"}}}}]})
    ddb.transact_write_items(TransactItems=[
        {"Put": {"TableName": "ledger", "Item": {"pk": {"S": "txn"}, "sk": {"N": "1"}}}},
        {"Update": {"TableName": "ledger", "Key": {"pk": {"S": "customer-1"}, "sk": {"N": "3"}},
                    "UpdateExpression": "SET #s = :v", "ExpressionAttributeNames": {"#s": "status"},
                    "ExpressionAttributeValues": {":v": {"S": "changed"}}}}])
    with pytest.raises(botocore.exceptions.ClientError):  # a cancelled transaction writes nothing
        ddb.transact_write_items(TransactItems=[
            {"Put": {"TableName": "ledger", "Item": {"pk": {"S": "ghost"}, "sk": {"N": "1"}}}},
            {"ConditionCheck": {"TableName": "ledger", "Key": {"pk": {"S": "nope"}, "sk": {"N": "9"}},
                                "ConditionExpression": "attribute_exists(pk)"}}])
    lagged = completed_point(backup, arn, "vault")
    time.sleep(1.55)
    current = completed_point(backup, arn, "vault")

    def restored(rp, name):
        job = wait_restore(backup, backup.start_restore_job(
            RecoveryPointArn=rp, IamRoleArn=ROLE, Metadata={"targetTableName": name, "encryptionType": "Default"}
        )["RestoreJobId"])
        assert job["Status"] == "COMPLETED", job
        items = ddb.scan(TableName=name)["Items"]
        return {(i["pk"]["S"], i["sk"]["N"]): i["status"]["S"] if "status" in i else None for i in items}
    before = {("customer-0", "0"): "closed", ("customer-1", "1"): "open", ("customer-0", "2"): "closed",
              ("customer-1", "3"): "open"}
    assert restored(lagged, "ledger-lagged") == before
    assert restored(current, "ledger-now") == {
        ("customer-0", "0"): "changed", ("customer-1", "3"): "changed", ("new", "1"): None, ("batch", "1"): None,
        ("txn", "1"): None}
    assert backup.describe_recovery_point(BackupVaultName="vault", RecoveryPointArn=lagged)["BackupSizeInBytes"] > 0


# ---------------------------------------------------------------- 8. unseen_jobs

def test_young_jobs_are_neither_found_nor_listed(realistic, ddb, backup):
    knobs(realistic, unseen_jobs=0.8)
    make_vault(backup, "vault")
    job = backup_job(backup, make_table(ddb), "vault")["BackupJobId"]
    raises("ResourceNotFoundException", backup.describe_backup_job, BackupJobId=job)
    assert backup.list_backup_jobs()["BackupJobs"] == []
    listed = until(5, lambda: backup.list_backup_jobs()["BackupJobs"])
    assert [j["BackupJobId"] for j in listed] == [job]
    assert backup.describe_backup_job(BackupJobId=job)["BackupJobId"] == job


# ---------------------------------------------------------------- 9. page_size

def all_pages(call, key, token_in="NextToken", token_out="NextToken", **kwargs):
    pages, token = [], None
    for _ in range(50):  # bounded
        page = call(**kwargs, **({token_in: token} if token else {}))
        pages.append(page[key])
        token = page.get(token_out)
        if not token:
            return pages
    raise AssertionError("too many pages")


def test_lists_come_in_small_pages(realistic, ddb, backup, backup_dst):
    knobs(realistic, page_size=2)
    for i in range(5):
        make_vault(backup, f"vault-{i}")
    make_vault(backup_dst, "dr")
    tables = [make_table(ddb, f"tab{i}", items=5) for i in range(3)]
    points = [completed_point(backup, tables[0], "vault-0") for _ in range(3)]
    copies = [wait_copy(backup, backup.start_copy_job(RecoveryPointArn=rp, SourceBackupVaultName="vault-0",
                                                      IamRoleArn=ROLE, DestinationBackupVaultArn=DR_VAULT)["CopyJobId"])
              for rp in points]
    restores = [wait_restore(backup, backup.start_restore_job(
        RecoveryPointArn=points[0], IamRoleArn=ROLE, Metadata={"targetTableName": f"rt{i}", "encryptionType": "Default"}
    )["RestoreJobId"]) for i in range(3)]
    ddb.tag_resource(ResourceArn=tables[0], Tags=[{"Key": f"k{i}", "Value": str(i)} for i in range(5)])

    def check(pages, expected):
        assert all(len(p) <= 2 for p in pages) and len(pages) > 1, pages
        flat = sum(pages, [])
        assert len(flat) == len(expected) and sorted(flat) == sorted(expected)

    check([[v["BackupVaultName"] for v in p] for p in all_pages(backup.list_backup_vaults, "BackupVaultList",
                                                                   MaxResults=100)],
          [f"vault-{i}" for i in range(5)])
    check([[p["RecoveryPointArn"] for p in page] for page in all_pages(
        backup.list_recovery_points_by_backup_vault, "RecoveryPoints", BackupVaultName="vault-0", MaxResults=100)],
        points)
    check([[p["RecoveryPointArn"] for p in page] for page in all_pages(
        backup.list_recovery_points_by_resource, "RecoveryPoints", ResourceArn=tables[0], MaxResults=100)], points)
    check([[j["BackupJobId"] for j in p] for p in all_pages(backup.list_backup_jobs, "BackupJobs")],
          [j["BackupJobId"] for j in backup.get_paginator("list_backup_jobs").paginate().build_full_result()[
              "BackupJobs"]])
    check([[j["CopyJobId"] for j in p] for p in all_pages(backup.list_copy_jobs, "CopyJobs", MaxResults=1000)],
          [c["CopyJobId"] for c in copies])
    check([[j["RestoreJobId"] for j in p] for p in all_pages(backup.list_restore_jobs, "RestoreJobs")],
          [r["RestoreJobId"] for r in restores])
    check(all_pages(ddb.list_tables, "TableNames", "ExclusiveStartTableName", "LastEvaluatedTableName", Limit=100),
          ["tab0", "tab1", "tab2", "rt0", "rt1", "rt2"])
    check([[t["Key"] for t in p] for p in all_pages(ddb.list_tags_of_resource, "Tags", ResourceArn=tables[0])],
          [f"k{i}" for i in range(5)])
    scanned = all_pages(ddb.scan, "Items", "ExclusiveStartKey", "LastEvaluatedKey", TableName="tab1", Limit=100)
    check([[(i["pk"]["S"], i["sk"]["N"]) for i in p] for p in scanned],
          [(f"customer-{i % 2}", str(i)) for i in range(5)])
    segments = [all_pages(ddb.scan, "Items", "ExclusiveStartKey", "LastEvaluatedKey", TableName="tab1",
                          Segment=s, TotalSegments=2) for s in range(2)]
    assert sorted(i["sk"]["N"] for seg in segments for p in seg for i in p) == [str(i) for i in range(5)]
    # Items created between pages neither repeat nor shift the later pages.
    first = backup.list_recovery_points_by_backup_vault(BackupVaultName="vault-0")
    completed_point(backup, tables[0], "vault-0")
    rest = all_pages(backup.list_recovery_points_by_backup_vault, "RecoveryPoints", BackupVaultName="vault-0",
                     NextToken=first["NextToken"])
    assert sorted(p["RecoveryPointArn"] for p in first["RecoveryPoints"] + sum(rest, [])) == sorted(points)


# ---------------------------------------------------------------- 10. max_restores, one_job_per_resource, copy_queue

def test_concurrent_restores_are_limited(realistic, ddb, backup):
    knobs(realistic, max_restores=2)
    make_vault(backup, "vault")
    rp = completed_point(backup, make_table(ddb), "vault")
    realistic.control("/_drover/config", {"durations": {"restore": 1.0}})

    def restore(name):
        return backup.start_restore_job(RecoveryPointArn=rp, IamRoleArn=ROLE,
                                        Metadata={"targetTableName": name, "encryptionType": "Default"})
    first = [restore(f"rt{i}")["RestoreJobId"] for i in range(2)]
    resp = raises("LimitExceededException", restore, "rt2")
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert len(backup.list_restore_jobs()["RestoreJobs"]) == 2  # no job was started
    for job in first:
        wait_restore(backup, job)
    assert wait_restore(backup, restore("rt2")["RestoreJobId"])["Status"] == "COMPLETED"


def test_one_backup_or_copy_job_per_resource(realistic, ddb, backup, backup_dst):
    knobs(realistic, one_job_per_resource=True)
    make_vault(backup, "vault")
    make_vault(backup_dst, "dr")
    orders, users = make_table(ddb, "orders"), make_table(ddb, "users")
    rp = completed_point(backup, orders, "vault")
    realistic.control("/_drover/config", {"durations": {"default": 1.0}})
    a = backup_job(backup, orders, "vault")["BackupJobId"]
    b = backup_job(backup, orders, "vault")["BackupJobId"]
    c = backup.start_copy_job(RecoveryPointArn=rp, SourceBackupVaultName="vault", IamRoleArn=ROLE,
                              DestinationBackupVaultArn=DR_VAULT)["CopyJobId"]  # same resource: waits too
    other = backup_job(backup, users, "vault")["BackupJobId"]  # another resource: not held up
    until(5, lambda: backup.describe_backup_job(BackupJobId=other)["State"], lambda s: s == "RUNNING")
    assert backup.describe_backup_job(BackupJobId=a)["State"] == "RUNNING"
    waiting = backup.describe_backup_job(BackupJobId=b)
    assert waiting["State"] == "CREATED" and "ExpectedCompletionDate" not in waiting  # not started yet
    done_a = wait_backup(backup, a)
    assert backup.describe_copy_job(CopyJobId=c)["CopyJob"]["State"] == "CREATED"
    done_b = wait_backup(backup, b)
    assert done_b["State"] == "COMPLETED"
    # b's duration counts from when it started: when a ended (its CREATED quarter, then RUNNING).
    assert (done_b["InitiationDate"] - done_a["CompletionDate"]).total_seconds() == pytest.approx(0.25, abs=0.01)
    assert (done_b["CompletionDate"] - done_a["CompletionDate"]).total_seconds() == pytest.approx(1.0, abs=0.01)
    assert wait_copy(backup, c)["State"] == "COMPLETED"
    knobs(realistic)  # off: nothing waits
    x, y = (backup_job(backup, orders, "vault")["BackupJobId"] for _ in range(2))
    until(5, lambda: backup.describe_backup_job(BackupJobId=y)["State"], lambda s: s == "RUNNING")
    assert backup.describe_backup_job(BackupJobId=x)["State"] in ("RUNNING", "COMPLETED")


def test_a_backup_waiting_for_its_resource_expires_at_the_end_of_its_start_window(realistic, ddb, backup):
    knobs(realistic, one_job_per_resource=True)
    realistic.control("/_drover/config", {"durations": {"backup": 1.0}, "window_minute_seconds": 0.005})
    make_vault(backup, "vault")
    table = make_table(ddb)
    first = backup_job(backup, table, "vault")["BackupJobId"]
    waiting = backup_job(backup, table, "vault", StartWindowMinutes=60)["BackupJobId"]  # 60 min: 0.3 s
    job = wait_backup(backup, waiting)
    assert job["State"] == "EXPIRED" and "start window" in job["StatusMessage"] and "InitiationDate" not in job
    assert (job["CompletionDate"] - job["CreationDate"]).total_seconds() == pytest.approx(0.3, abs=0.05)
    assert backup.describe_backup_job(BackupJobId=first)["State"] in ("CREATED", "RUNNING")
    assert wait_backup(backup, first)["State"] == "COMPLETED"


def test_copy_jobs_wait_in_created_for_a_seeded_while(realistic, ddb, backup, backup_dst):
    make_vault(backup, "vault")
    make_vault(backup_dst, "dr")
    rp = completed_point(backup, make_table(ddb), "vault")
    realistic.control("/_drover/config", {"durations": {"copy": 0.2}})

    def queued(seed):
        knobs(realistic, copy_queue=0.8, seed=seed)
        jobs = [backup.start_copy_job(RecoveryPointArn=rp, SourceBackupVaultName="vault", IamRoleArn=ROLE,
                                      DestinationBackupVaultArn=DR_VAULT)["CopyJobId"] for _ in range(3)]
        done = [wait_copy(backup, j) for j in jobs]
        assert all(j["State"] == "COMPLETED" for j in done)
        return [round((j["CompletionDate"] - j["CreationDate"]).total_seconds(), 1) for j in done]
    a, b, c = queued(5), queued(5), queued(6)
    assert all(0.2 <= t <= 1.2 for t in a) and len(set(a)) > 1, a
    assert max(abs(x - y) for x, y in zip(a, b)) <= 0.15, (a, b)  # the same seed, the same queueing
    assert a != c


# ---------------------------------------------------------------- 11. fault_rate

def raw_status(call):
    try:
        call()
        return 200, None
    except botocore.exceptions.ClientError as e:
        return e.response["ResponseMetadata"]["HTTPStatusCode"], e.response["Error"].get("Code")


def test_server_faults_pass_and_have_no_effect(realistic):
    knobs(realistic, fault_rate=1.0)
    ddb, backup, kms = (realistic.client(s) for s in ("dynamodb", "backup", "kms"))
    seen = {"dynamodb": set(), "backup": set(), "kms": set()}
    for i in range(30):
        seen["dynamodb"].add(raw_status(lambda: simple_table(ddb, f"t{i}")))
        seen["backup"].add(raw_status(lambda: backup.create_backup_vault(BackupVaultName=f"v{i}")))
        seen["kms"].add(raw_status(lambda: kms.create_key()))
        assert realistic.control("/_drover/config")[0] == 200  # the control API is never faulted
    assert seen["dynamodb"] == {(500, "InternalServerError"), (503, "503")}
    assert seen["backup"] == {(500, "ServiceUnavailableException"), (500, "DependencyFailureException"),
                              (503, "503")}
    assert seen["kms"] == {(500, "KMSInternalException"), (503, "503")}
    knobs(realistic)  # and they pass
    assert ddb.list_tables()["TableNames"] == [] and backup.list_backup_vaults()["BackupVaultList"] == []
    assert kms.list_keys()["Keys"] == []
    # A small rate is ridden out by the SDK's retries.
    knobs(realistic, fault_rate=0.2)
    retrying = realistic.client("dynamodb", attempts=10)
    for i in range(10):
        simple_table(retrying, f"r{i}")
    knobs(realistic)
    assert len(ddb.list_tables()["TableNames"]) == 10


def test_the_same_seed_gives_the_same_faults(realistic):
    ddb = realistic.client("dynamodb")

    def pattern(seed):
        knobs(realistic, fault_rate=0.4, seed=seed)
        return [raw_status(ddb.list_tables) for _ in range(40)]
    a, b, c = pattern(7), pattern(7), pattern(8)
    assert a == b and a != c
    assert {s for s, _ in a} >= {200, 500} and 10 < sum(s != 200 for s, _ in a) < 30
    # /_drover/reset reseeds with the launch seed (1): the sequence starts over.
    realistic.control("/_drover/reset", {"moto": False})
    knobs(realistic, fault_rate=0.4)
    first = [raw_status(ddb.list_tables) for _ in range(20)]
    realistic.control("/_drover/reset", {"moto": False})
    knobs(realistic, fault_rate=0.4)
    assert [raw_status(ddb.list_tables) for _ in range(20)] == first


# ---------------------------------------------------------------- 12. idempotent_replay_without_id

def test_an_idempotent_replay_answers_without_the_job_id(realistic, ddb, backup, backup_dst):
    knobs(realistic, idempotent_replay_without_id=True)
    make_vault(backup, "vault")
    make_vault(backup_dst, "dr")
    table = make_table(ddb)
    first = backup_job(backup, table, "vault", IdempotencyToken="b-1")
    again = backup_job(backup, table, "vault", IdempotencyToken="b-1")
    assert first["BackupJobId"] and "BackupJobId" not in again and "RecoveryPointArn" not in again
    rp = wait_backup(backup, first["BackupJobId"])["RecoveryPointArn"]
    kw = dict(RecoveryPointArn=rp, SourceBackupVaultName="vault", IamRoleArn=ROLE, DestinationBackupVaultArn=DR_VAULT,
              IdempotencyToken="c-1")
    assert backup.start_copy_job(**kw)["CopyJobId"] and "CopyJobId" not in backup.start_copy_job(**kw)
    kw = dict(RecoveryPointArn=rp, IamRoleArn=ROLE, Metadata={"targetTableName": "xt1", "encryptionType": "Default"},
              IdempotencyToken="r-1")
    assert backup.start_restore_job(**kw)["RestoreJobId"] and "RestoreJobId" not in backup.start_restore_job(**kw)
    assert [len(backup.list_backup_jobs()["BackupJobs"]), len(backup.list_copy_jobs()["CopyJobs"]),
            len(backup.list_restore_jobs()["RestoreJobs"])] == [1, 1, 1]  # no action taken
    knobs(realistic)
    assert backup_job(backup, table, "vault", IdempotencyToken="b-1")["BackupJobId"] == first["BackupJobId"]


# ---------------------------------------------------------------- DeleteRecoveryPoint (delete_seconds)

def test_a_deleted_recovery_point_is_deleting_for_a_while(realistic, ddb, backup):
    knobs(realistic, delete_seconds=0.6)
    make_vault(backup, "vault")
    rp = completed_point(backup, make_table(ddb), "vault")
    backup.delete_recovery_point(BackupVaultName="vault", RecoveryPointArn=rp)
    assert backup.describe_recovery_point(BackupVaultName="vault", RecoveryPointArn=rp)["Status"] == "DELETING"
    assert [p["Status"] for p in backup.list_recovery_points_by_backup_vault(BackupVaultName="vault")[
        "RecoveryPoints"]] == ["DELETING"]
    raises("InvalidResourceStateException", backup.delete_recovery_point, BackupVaultName="vault",
           RecoveryPointArn=rp)
    raises("InvalidRequestException", backup.start_restore_job, RecoveryPointArn=rp, IamRoleArn=ROLE,
           Metadata={"targetTableName": "xt1", "encryptionType": "Default"})
    raises("InvalidRequestException", backup.start_copy_job, RecoveryPointArn=rp, SourceBackupVaultName="vault",
           IamRoleArn=ROLE, DestinationBackupVaultArn=DR_VAULT)
    raises("InvalidRequestException", backup.delete_backup_vault, BackupVaultName="vault")  # not empty yet
    until(5, lambda: backup.list_recovery_points_by_backup_vault(BackupVaultName="vault")["RecoveryPoints"],
          lambda points: points == [])
    raises("ResourceNotFoundException", backup.describe_recovery_point, BackupVaultName="vault", RecoveryPointArn=rp)
    assert backup.describe_backup_vault(BackupVaultName="vault")["NumberOfRecoveryPoints"] == 0
    backup.delete_backup_vault(BackupVaultName="vault")


# ---------------------------------------------------------------- all together, and across a restart

def test_a_dr_run_with_every_knob_at_its_default(realistic):
    """backup -> cross-Region copy -> restore, with every knob on: a client that retries, pages and
    polls (as drover must) gets through."""
    realistic.control("/_drover/reset", {})  # every knob on, at its default
    realistic.control("/_drover/config", {"durations": {"default": 0.3}})
    ddb, ddb_dst = realistic.client("dynamodb", SRC, attempts=8), realistic.client("dynamodb", DST, attempts=8)
    backup, backup_dst = realistic.client("backup", SRC, attempts=8), realistic.client("backup", DST, attempts=8)
    make_vault(backup, "vault")
    make_vault(backup_dst, "dr")
    table = make_table(ddb, items=5)

    def job(call, **kw):  # unseen_jobs: a young job is not found yet
        def get():
            try:
                return call(**kw)
            except botocore.exceptions.ClientError as e:
                assert code(e) == "ResourceNotFoundException"
        return until(15, get, lambda j: j is not None)
    time.sleep(1.1)  # backup_lag: the seed items must be older than the lag to be in the backup
    out = backup_job(backup, table, "vault", IdempotencyToken="all-1")
    bj = until(15, lambda: job(backup.describe_backup_job, BackupJobId=out["BackupJobId"]),
               lambda j: j["State"] == "COMPLETED")
    copy_id = backup.start_copy_job(RecoveryPointArn=bj["RecoveryPointArn"], SourceBackupVaultName="vault",
                                    IamRoleArn=ROLE, DestinationBackupVaultArn=DR_VAULT)["CopyJobId"]
    cj = until(15, lambda: job(backup.describe_copy_job, CopyJobId=copy_id)["CopyJob"],
               lambda j: j["State"] == "COMPLETED")
    points = [p["RecoveryPointArn"] for page in backup_dst.get_paginator(
        "list_recovery_points_by_backup_vault").paginate(BackupVaultName="dr") for p in page["RecoveryPoints"]]
    assert points == [cj["DestinationRecoveryPointArn"]]
    rid = backup_dst.start_restore_job(RecoveryPointArn=points[0], IamRoleArn=ROLE,
                                       Metadata={"targetTableName": "orders-dr", "encryptionType": "Default"})[
        "RestoreJobId"]
    until(15, lambda: job(backup_dst.describe_restore_job, RestoreJobId=rid), lambda j: j["Status"] == "COMPLETED")

    def ready():
        t = ddb_dst.describe_table(TableName="orders-dr")["Table"]
        return (t["TableStatus"] == "ACTIVE" and not t["RestoreSummary"]["RestoreInProgress"]
                and all(g["IndexStatus"] == "ACTIVE" for g in t["GlobalSecondaryIndexes"]))
    until(15, ready)
    items = [i for page in ddb_dst.get_paginator("scan").paginate(TableName="orders-dr") for i in page["Items"]]
    assert len(items) == 5


def test_realism_state_survives_a_restart(tmp_path):
    """Pending tag sets, a DELETING table, the write log, the knobs and the RNG are saved with the rest."""
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    args = ["--realism", "--seed", "3", "--state-file", str(tmp_path / "state.pickle")]
    proc, _, tmp = start_server(args, port=port)
    tmp2 = None
    try:
        emu = Emulator(port)
        knobs(emu, tag_delay=4, delete_seconds=4, backup_lag=30)
        ddb = emu.client("dynamodb")
        arn = simple_table(ddb, "kept")
        simple_table(ddb, "going")
        ddb.tag_resource(ResourceArn=arn, Tags=[{"Key": "a", "Value": "1"}])
        ddb.put_item(TableName="kept", Item={"id": {"S": "recent"}})
        ddb.delete_table(TableName="going")
        emu.control("/_drover/realism", {"fault_rate": 0.5, "seed": 9})
        before = [raw_status(ddb.list_tables) for _ in range(8)]
        assert stop_server(proc) == 0
        proc, _, tmp2 = start_server(args, port=port)
        emu = Emulator(port)
        ddb = emu.client("dynamodb")
        after = [raw_status(ddb.list_tables) for _ in range(8)]
        cfg = emu.control("/_drover/realism", {"fault_rate": 0})[1]["realism"]
        assert (cfg["tag_delay"], cfg["delete_seconds"], cfg["backup_lag"], cfg["seed"]) == (4, 4, 30, 9)
        assert tags_of(ddb, arn) == {}  # still the previous tag set
        assert ddb.describe_table(TableName="going")["Table"]["TableStatus"] == "DELETING"
        backup = emu.client("backup")
        make_vault(backup, "vault")
        rp = wait_backup(backup, backup_job(backup, arn, "vault")["BackupJobId"])["RecoveryPointArn"]
        job = wait_restore(backup, backup.start_restore_job(RecoveryPointArn=rp, IamRoleArn=ROLE, Metadata={
            "targetTableName": "kept-restored", "encryptionType": "Default"})["RestoreJobId"])
        assert job["Status"] == "COMPLETED"
        assert ddb.scan(TableName="kept-restored")["Count"] == 0  # the write log came along: the write is missed
        until(10, lambda: tags_of(ddb, arn) == {"a": "1"})
        until(10, lambda: "going" not in ddb.list_tables()["TableNames"])
        # The RNG carried on where it stopped: the same draws as an uninterrupted run from seed 9.
        emu.control("/_drover/realism", {"fault_rate": 0.5, "seed": 9})
        assert [raw_status(ddb.list_tables) for _ in range(16)] == before + after
    finally:
        stop_server(proc, tmp)
        if tmp2:
            stop_server(proc, tmp2)
