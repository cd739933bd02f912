"""DynamoDB point-in-time recovery (pitr.py): the item history, the window, RestoreTableToPointInTime
(same Region and cross-Region by ARN), its errors, and the history across a restart."""
import json
import os
import time

import botocore.exceptions
import pytest

from harness import ACCOUNT, DST, SRC, Emulator, make_table, start_server, stop_server

ON = {"PointInTimeRecoveryEnabled": True}
OFF = {"PointInTimeRecoveryEnabled": False}


def arn(name, region=SRC, account=ACCOUNT):
    return f"arn:aws:dynamodb:{region}:{account}:table/{name}"


def items(ddb, table):
    """Every item of the table (all pages), in a canonical order, for comparing whole item sets."""
    out, kwargs = [], {"TableName": table}
    while True:
        page = ddb.scan(**kwargs)
        out += page["Items"]
        if "LastEvaluatedKey" not in page:
            break
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    return sorted(out, key=lambda i: json.dumps(i, sort_keys=True, default=str))


def pitr(ddb, table):
    return ddb.describe_continuous_backups(TableName=table)["ContinuousBackupsDescription"][
        "PointInTimeRecoveryDescription"]


def instant():
    """A moment strictly between the writes before and after it (millisecond precision on the wire)."""
    time.sleep(0.05)
    t = time.time()
    time.sleep(0.05)
    return t


def fails(code, fn, *args, **kwargs):
    with pytest.raises(botocore.exceptions.ClientError) as e:
        fn(*args, **kwargs)
    assert e.value.response["Error"]["Code"] == code, e.value.response
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    return e.value.response


def key(pk, sk):
    return {"pk": {"S": pk}, "sk": {"N": str(sk)}}


def write_everything(ddb, table, tag):
    """Writes through PutItem, UpdateItem, DeleteItem, BatchWriteItem and TransactWriteItems."""
    ddb.put_item(TableName=table, Item={**key(f"put-{tag}", 1), "v": {"S": tag}})
    ddb.update_item(TableName=table, Key=key("customer-0", 0), UpdateExpression="SET v = :v",
                    ExpressionAttributeValues={":v": {"S": tag}})
    ddb.delete_item(TableName=table, Key=key("customer-1", 1))
    ddb.batch_write_item(RequestItems={table: [
        {"PutRequest": {"Item": {**key(f"batch-{tag}", 2), "v": {"S": tag}}}},
        {"DeleteRequest": {"Key": key("customer-0", 2)}}]})
    ddb.transact_write_items(TransactItems=[
        {"Put": {"TableName": table, "Item": {**key(f"tx-{tag}", 3), "v": {"S": tag}}}},
        {"Update": {"TableName": table, "Key": key("customer-1", 3), "UpdateExpression": "SET v = :v",
                    "ExpressionAttributeValues": {":v": {"S": tag}}}},
        {"Delete": {"TableName": table, "Key": key("customer-0", 4)}}])


@pytest.fixture
def source(ddb):
    """`orders` (5 items, a GSI and an LSI) with PITR enabled, then T1's writes."""
    make_table(ddb, "orders", items=6)
    ddb.update_continuous_backups(TableName="orders", PointInTimeRecoverySpecification=ON)
    time.sleep(0.05)
    write_everything(ddb, "orders", "t1")
    return "orders"


def test_a_restore_between_two_sets_of_writes_gives_exactly_the_earlier_items(ddb, source):
    at_t1 = items(ddb, source)
    t = instant()
    write_everything(ddb, source, "t2")  # corruption at T2: overwrites, deletes, new items
    ddb.delete_item(TableName=source, Key=key("put-t1", 1))
    ddb.put_item(TableName=source, Item={**key("customer-1", 5), "v": {"S": "corrupt"}})
    # a failed transaction writes nothing, and leaves no history behind
    with pytest.raises(botocore.exceptions.ClientError):
        ddb.transact_write_items(TransactItems=[
            {"Put": {"TableName": source, "Item": {**key("tx-failed", 9)}}},
            {"Delete": {"TableName": source, "Key": key("nope", 1), "ConditionExpression": "attribute_exists(pk)"}}])
    at_t2 = items(ddb, source)
    assert at_t2 != at_t1

    out = ddb.restore_table_to_point_in_time(SourceTableName=source, TargetTableName="orders-t1",
                                             RestoreDateTime=t)["TableDescription"]
    assert out["TableName"] == "orders-t1" and out["TableStatus"] == "ACTIVE"
    summary = out["RestoreSummary"]
    assert summary["SourceTableArn"] == arn(source) and summary["RestoreInProgress"] is False
    assert abs(summary["RestoreDateTime"].timestamp() - t) < 0.002
    assert "SourceBackupArn" not in summary
    assert items(ddb, "orders-t1") == at_t1
    assert items(ddb, source) == at_t2  # the source is untouched
    desc = ddb.describe_table(TableName="orders-t1")["Table"]
    assert desc["RestoreSummary"]["SourceTableArn"] == arn(source)
    assert desc["ItemCount"] == len(at_t1)
    src = ddb.describe_table(TableName=source)["Table"]
    assert desc["KeySchema"] == src["KeySchema"]
    assert [g["IndexName"] for g in desc["GlobalSecondaryIndexes"]] == ["by-status"]
    assert [i["IndexName"] for i in desc["LocalSecondaryIndexes"]] == ["by-created"]
    assert desc["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    assert ddb.query(TableName="orders-t1", IndexName="by-status", KeyConditionExpression="#s = :v",
                     ExpressionAttributeNames={"#s": "status"},
                     ExpressionAttributeValues={":v": {"S": "open"}})["Count"] == sum(
        1 for i in at_t1 if i.get("status") == {"S": "open"})
    # PITR is not restored ([BC-d]: "You must manually set up ... Point in time recovery settings")
    assert pitr(ddb, "orders-t1")["PointInTimeRecoveryStatus"] == "DISABLED"

    latest = ddb.restore_table_to_point_in_time(SourceTableName=source, TargetTableName="orders-now",
                                                UseLatestRestorableTime=True)["TableDescription"]
    assert items(ddb, "orders-now") == at_t2
    assert latest["RestoreSummary"]["SourceTableArn"] == arn(source)


def test_the_window_and_its_bounds(emulator, ddb):
    make_table(ddb, "orders", items=3)
    before = items(ddb, "orders")
    off = pitr(ddb, "orders")
    assert off == {"PointInTimeRecoveryStatus": "DISABLED"}
    t0 = time.time()
    desc = ddb.update_continuous_backups(TableName="orders", PointInTimeRecoverySpecification=ON)[
        "ContinuousBackupsDescription"]["PointInTimeRecoveryDescription"]
    assert desc["PointInTimeRecoveryStatus"] == "ENABLED" and desc["RecoveryPeriodInDays"] == 35
    earliest = desc["EarliestRestorableDateTime"].timestamp()
    assert t0 - 0.002 <= earliest <= time.time()
    write_everything(ddb, "orders", "w")
    now = pitr(ddb, "orders")
    assert now["EarliestRestorableDateTime"].timestamp() == earliest
    assert now["LatestRestorableDateTime"].timestamp() >= time.time() - 0.5  # knob off: latest is now

    # the earliest instant itself: the items as they were when PITR was enabled
    ddb.restore_table_to_point_in_time(SourceTableName="orders", TargetTableName="at-earliest",
                                       RestoreDateTime=now["EarliestRestorableDateTime"])
    assert items(ddb, "at-earliest") == before
    fails("InvalidRestoreTimeException", ddb.restore_table_to_point_in_time, SourceTableName="orders",
          TargetTableName="too-early", RestoreDateTime=earliest - 1)
    fails("InvalidRestoreTimeException", ddb.restore_table_to_point_in_time, SourceTableName="orders",
          TargetTableName="too-late", RestoreDateTime=time.time() + 60)
    assert "too-early" not in ddb.list_tables()["TableNames"]

    # LatestRestorableDateTime is `pitr_latest_lag` before now (AWS: typically 5 minutes)
    assert emulator.control("/_drover/realism", {"pitr_latest_lag": 1.0})[0] == 200
    time.sleep(1.1)
    lagging = pitr(ddb, "orders")
    latest = lagging["LatestRestorableDateTime"].timestamp()
    assert time.time() - 1.2 <= latest <= time.time() - 0.99
    settled = items(ddb, "orders")
    ddb.put_item(TableName="orders", Item={**key("fresh", 1)})  # newer than LatestRestorableDateTime
    fails("InvalidRestoreTimeException", ddb.restore_table_to_point_in_time, SourceTableName="orders",
          TargetTableName="in-the-lag", RestoreDateTime=time.time() - 0.1)
    ddb.restore_table_to_point_in_time(SourceTableName="orders", TargetTableName="at-latest",
                                       UseLatestRestorableTime=True)
    assert items(ddb, "at-latest") == settled

    # disabling drops the history; re-enabling starts a new window
    off = ddb.update_continuous_backups(TableName="orders", PointInTimeRecoverySpecification=OFF)[
        "ContinuousBackupsDescription"]["PointInTimeRecoveryDescription"]
    assert off == {"PointInTimeRecoveryStatus": "DISABLED"}
    fails("PointInTimeRecoveryUnavailableException", ddb.restore_table_to_point_in_time,
          SourceTableName="orders", TargetTableName="while-off", UseLatestRestorableTime=True)
    assert emulator.control("/_drover/realism", {"pitr_latest_lag": None})[0] == 200
    ddb.update_continuous_backups(TableName="orders", PointInTimeRecoverySpecification=ON)
    again = pitr(ddb, "orders")
    assert again["EarliestRestorableDateTime"].timestamp() > earliest + 1
    fails("InvalidRestoreTimeException", ddb.restore_table_to_point_in_time, SourceTableName="orders",
          TargetTableName="old-window", RestoreDateTime=earliest + 0.5)
    # enabling again while enabled keeps the window
    ddb.update_continuous_backups(TableName="orders", PointInTimeRecoverySpecification=ON)
    assert pitr(ddb, "orders")["EarliestRestorableDateTime"] == again["EarliestRestorableDateTime"]


def test_errors(emulator, ddb, source):
    restore = ddb.restore_table_to_point_in_time
    body = fails("TableNotFoundException", restore, SourceTableName="missing", TargetTableName="x-missing",
                 UseLatestRestorableTime=True)
    assert "missing" in body["Error"]["Message"]
    fails("TableNotFoundException", restore, SourceTableArn=arn("missing"), TargetTableName="x-missing",
          UseLatestRestorableTime=True)
    fails("TableNotFoundException", ddb.describe_continuous_backups, TableName="missing")
    fails("TableAlreadyExistsException", restore, SourceTableName=source, TargetTableName=source,
          UseLatestRestorableTime=True)
    make_table(ddb, "plain", items=1)
    fails("PointInTimeRecoveryUnavailableException", restore, SourceTableName="plain",
          TargetTableName="x-plain", UseLatestRestorableTime=True)
    # exactly one of the two times, exactly one of the two sources
    fails("ValidationException", restore, SourceTableName=source, TargetTableName="x-both",
          UseLatestRestorableTime=True, RestoreDateTime=time.time() - 0.01)
    fails("ValidationException", restore, SourceTableName=source, TargetTableName="x-none")
    fails("ValidationException", restore, SourceTableName=source, SourceTableArn=arn(source),
          TargetTableName="x-two", UseLatestRestorableTime=True)
    assert sorted(ddb.list_tables()["TableNames"]) == ["orders", "plain"]

    # a target still being created: TableInUseException; concurrent restores: LimitExceededException
    assert emulator.control("/_drover/realism", {"restore_settle": 3.0, "max_restores": 2})[0] == 200
    first = restore(SourceTableName=source, TargetTableName="rt1", UseLatestRestorableTime=True)
    assert first["TableDescription"]["TableStatus"] == "CREATING"
    assert first["TableDescription"]["RestoreSummary"]["RestoreInProgress"] is True
    fails("TableInUseException", restore, SourceTableName=source, TargetTableName="rt1",
          UseLatestRestorableTime=True)
    restore(SourceTableName=source, TargetTableName="rt2", UseLatestRestorableTime=True)
    body = fails("LimitExceededException", restore, SourceTableName=source, TargetTableName="rt3",
                 UseLatestRestorableTime=True)
    assert "rt3" not in ddb.list_tables()["TableNames"]
    time.sleep(3.1)
    restore(SourceTableName=source, TargetTableName="rt3", UseLatestRestorableTime=True)
    fails("TableAlreadyExistsException", restore, SourceTableName=source, TargetTableName="rt1",
          UseLatestRestorableTime=True)


def test_the_raw_error_is_dynamodbs_json(emulator, ddb, source):
    ddb.meta.events.register("after-call.dynamodb.RestoreTableToPointInTime",
                             lambda http_response, **_: raw.append(http_response))
    raw = []
    fails("InvalidRestoreTimeException", ddb.restore_table_to_point_in_time, SourceTableName=source,
          TargetTableName="x-early", RestoreDateTime=1.0)
    body = json.loads(raw[0].content)
    assert body["__type"] == "com.amazonaws.dynamodb.v20120810#InvalidRestoreTimeException"
    assert body["message"] == "RestoreDateTime must be between EarliestRestorableDateTime and LatestRestorableDateTime."


def test_a_cross_region_restore_by_arn_needs_the_sse_override(ddb, ddb_dst, kms_dst, source):
    at_t1 = items(ddb, source)
    t = instant()
    write_everything(ddb, source, "t2")
    restore = ddb_dst.restore_table_to_point_in_time
    body = fails("ValidationException", restore, SourceTableArn=arn(source), TargetTableName="orders-dr",
                 RestoreDateTime=t)
    assert "SSESpecificationOverride" in body["Error"]["Message"]
    assert ddb_dst.list_tables()["TableNames"] == []
    # by name, the source is looked up in the calling Region
    fails("TableNotFoundException", restore, SourceTableName=source, TargetTableName="orders-dr",
          RestoreDateTime=t)
    # RestoreTableToPointInTime stays within the account
    fails("TableNotFoundException", restore, SourceTableArn=arn(source, account="210987654321"),
          TargetTableName="orders-dr", RestoreDateTime=t, SSESpecificationOverride={"Enabled": True})
    key_arn = kms_dst.create_key()["KeyMetadata"]["Arn"]
    out = restore(SourceTableArn=arn(source), TargetTableName="orders-dr", RestoreDateTime=t,
                  SSESpecificationOverride={"Enabled": True, "SSEType": "KMS", "KMSMasterKeyId": key_arn})
    desc = out["TableDescription"]
    assert desc["TableArn"] == arn("orders-dr", DST)
    assert desc["RestoreSummary"]["SourceTableArn"] == arn(source)
    assert desc["SSEDescription"]["SSEType"] == "KMS" and desc["SSEDescription"]["KMSMasterKeyArn"] == key_arn
    assert items(ddb_dst, "orders-dr") == at_t1
    assert "orders-dr" not in ddb.list_tables()["TableNames"]
    # an AWS owned key (Enabled false) is an override too
    restore(SourceTableArn=arn(source), TargetTableName="orders-dr2", UseLatestRestorableTime=True,
            SSESpecificationOverride={"Enabled": False})
    assert "SSEDescription" not in ddb_dst.describe_table(TableName="orders-dr2")["Table"]
    assert items(ddb_dst, "orders-dr2") == items(ddb, source)
    # same Region by ARN: the override is optional
    ddb.restore_table_to_point_in_time(SourceTableArn=arn(source), TargetTableName="orders-back",
                                       RestoreDateTime=t)
    assert items(ddb, "orders-back") == at_t1


def test_the_history_survives_a_restart(tmp_path):
    state = str(tmp_path / "state.pickle")
    proc, port, tmp = start_server(["--state-file", state])
    try:
        ddb = Emulator(port).client("dynamodb", SRC)
        make_table(ddb, "orders", items=4)
        ddb.update_continuous_backups(TableName="orders", PointInTimeRecoverySpecification=ON)
        write_everything(ddb, "orders", "t1")
        at_t1 = items(ddb, "orders")
        t = instant()
        write_everything(ddb, "orders", "t2")
        at_t2 = items(ddb, "orders")
        ddb.restore_table_to_point_in_time(SourceTableName="orders", TargetTableName="before-restart",
                                           RestoreDateTime=t)
        window = pitr(ddb, "orders")
    finally:
        assert stop_server(proc, tmp) == 0
    assert os.path.exists(state)
    proc, port, tmp = start_server(["--state-file", state])
    try:
        ddb = Emulator(port).client("dynamodb", SRC)
        assert pitr(ddb, "orders")["EarliestRestorableDateTime"] == window["EarliestRestorableDateTime"]
        assert items(ddb, "orders") == at_t2
        assert items(ddb, "before-restart") == at_t1
        summary = ddb.describe_table(TableName="before-restart")["Table"]["RestoreSummary"]
        assert summary["SourceTableArn"] == arn("orders")
        ddb.restore_table_to_point_in_time(SourceTableName="orders", TargetTableName="after-restart",
                                           RestoreDateTime=t)
        assert items(ddb, "after-restart") == at_t1
        ddb.put_item(TableName="orders", Item={**key("after", 1)})  # the history goes on after the restart
        t3 = instant()
        ddb.delete_item(TableName="orders", Key=key("after", 1))
        ddb.restore_table_to_point_in_time(SourceTableName="orders", TargetTableName="at-t3", RestoreDateTime=t3)
        assert items(ddb, "at-t3") == sorted(at_t2 + [key("after", 1)],
                                             key=lambda i: json.dumps(i, sort_keys=True, default=str))
    finally:
        stop_server(proc, tmp)


def test_the_fixture_seeds_tables_with_pitr_and_writes_items(emulator):
    """fixture.py's `"pitr": true` turns PITR on before the seeded writes (so they are in the
    history), and `write` makes an application's writes through PutItem and DeleteItem."""
    import subprocess
    import sys
    here = os.path.dirname(os.path.abspath(__file__))
    port = emulator.endpoint.rsplit(":", 1)[1]

    def fixture(command, arg):
        out = subprocess.run([sys.executable, f"{here}/fixture.py", command, port], input=json.dumps(arg),
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)

    fixture("seed", {"source": SRC, "targets": [DST], "source_vault": "prod", "target_vaults": {DST: "dr"},
                     "tables": [{"name": "ledger", "items": 3, "pitr": True}, {"name": "plain", "items": 1}]})
    ddb = emulator.client("dynamodb")
    assert pitr(ddb, "ledger")["PointInTimeRecoveryStatus"] == "ENABLED"
    assert pitr(ddb, "plain")["PointInTimeRecoveryStatus"] == "DISABLED"
    seeded = items(ddb, "ledger")
    at = instant()
    answer = fixture("write", {"region": SRC, "table": "ledger", "put": [{"pk": {"S": "ITEM#9"}}],
                               "delete": [{"pk": {"S": "ITEM#0"}}]})
    assert answer["time"] > at
    now = items(ddb, "ledger")
    assert {"pk": {"S": "ITEM#9"}} in now and all(i["pk"] != {"S": "ITEM#0"} for i in now)
    ddb.restore_table_to_point_in_time(SourceTableName="ledger", TargetTableName="ledger-then",
                                       RestoreDateTime=at)
    assert items(ddb, "ledger-then") == seeded
