"""GET /_drover/calls: the AWS calls answered, by service:Operation and by account."""
import boto3
import botocore.exceptions
import pytest
from botocore.config import Config

from harness import ACCOUNT, SRC, Emulator, make_role, make_table, make_vault, start_server, stop_server
from test_launcher import restartable


def calls(emulator):
    status, body = emulator.control("/_drover/calls")
    assert status == 200, body
    return body


def test_counts_every_aws_call_by_operation_and_account_but_not_the_control_api(emulator, ddb, backup, kms):
    assert calls(emulator) == {"total": 0, "by_operation": {}, "faulted_total": 0, "faulted": {},
                               "by_account": {}}
    make_table(ddb, "orders", items=2)  # CreateTable, 2 PutItem, DescribeTable
    ddb.describe_table(TableName="orders")
    make_vault(backup, "v")
    backup.describe_backup_vault(BackupVaultName="v")
    kms.create_key(Description="k")
    emulator.control("/_drover/config")  # not an AWS call
    want = {"dynamodb:CreateTable": 1, "dynamodb:PutItem": 2, "dynamodb:DescribeTable": 2,
            "backup:CreateBackupVault": 1, "backup:DescribeBackupVault": 1, "kms:CreateKey": 1}
    got = calls(emulator)
    assert got["by_operation"] == want
    assert got["total"] == 8
    assert got["by_account"] == {ACCOUNT: want}  # key "testing": moto's default account
    assert got["faulted_total"] == 0


def test_faulted_calls_count_and_are_counted_apart(emulator, ddb):
    make_table(ddb, "orders", items=0)
    emulator.control("/_drover/throttle", {"operation": "dynamodb:DescribeTable", "count": 1})
    with pytest.raises(botocore.exceptions.ClientError):
        ddb.describe_table(TableName="orders")
    ddb.describe_table(TableName="orders")
    emulator.control("/_drover/realism", {"fault_rate": 1.0})  # realism's passing server faults
    with pytest.raises(botocore.exceptions.ClientError):
        ddb.list_tables()
    emulator.control("/_drover/realism", {"fault_rate": 0})
    got = calls(emulator)
    assert got["by_operation"]["dynamodb:DescribeTable"] == 3  # make_table's, the throttled one, this one
    assert got["by_operation"]["dynamodb:ListTables"] == 1
    assert got["faulted"] == {"dynamodb:DescribeTable": 1, "dynamodb:ListTables": 1}
    assert got["faulted_total"] == 2
    assert got["total"] == sum(got["by_operation"].values())


def test_reset_clears_the_counts(emulator, ddb):
    ddb.list_tables()
    assert calls(emulator)["total"] == 1
    emulator.control("/_drover/reset", {"moto": False})
    assert calls(emulator)["total"] == 0


def test_the_account_is_the_one_moto_maps_the_access_key_to(emulator):
    """STS AssumeRole of a role in another account gives keys that moto maps to that account
    (moto.iam.models.get_account_id_from); other keys are moto's default account."""
    other = "210987654321"
    role = make_role(emulator, other, "drover-dr", ACCOUNT)  # trusts this account (STS enforces it)
    emulator.control("/_drover/reset", {"moto": False})  # count from here
    creds = emulator.client("sts").assume_role(RoleArn=role, RoleSessionName="drill")["Credentials"]
    ddb = boto3.client("dynamodb", region_name=SRC, endpoint_url=emulator.endpoint,
                       aws_access_key_id=creds["AccessKeyId"], aws_secret_access_key=creds["SecretAccessKey"],
                       aws_session_token=creds["SessionToken"],
                       config=Config(retries={"total_max_attempts": 1}))
    ddb.list_tables()
    ddb.list_tables()
    got = calls(emulator)
    assert got["by_account"] == {ACCOUNT: {"sts:AssumeRole": 1}, other: {"dynamodb:ListTables": 2}}


def test_the_counts_survive_a_restart(tmp_path):
    args, port = restartable(tmp_path, 0.0)
    proc, _, tmp = start_server(args, port=port)
    try:
        emu = Emulator(port)
        emu.client("dynamodb").list_tables()
        before = calls(emu)
        assert before["by_operation"] == {"dynamodb:ListTables": 1}
    finally:
        assert stop_server(proc, tmp) == 0
    proc, _, tmp = start_server(args, port=port)
    try:
        assert calls(emu) == before
        emu.client("dynamodb").list_tables()
        assert calls(emu)["by_operation"] == {"dynamodb:ListTables": 2}
    finally:
        stop_server(proc, tmp)
