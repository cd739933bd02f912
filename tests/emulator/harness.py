"""Test harness helpers: launch/stop drover_moto, boto3 clients, control API, polling helpers."""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

import boto3
from botocore.config import Config

HERE = os.path.dirname(os.path.abspath(__file__))
LAUNCHER = os.path.join(HERE, "drover_moto.py")
ACCOUNT = "123456789012"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/drover-test"
SRC, DST = "us-east-1", "us-west-2"


def start_server(extra_args=(), port=0):
    """Launch drover_moto.py (port 0 = a free one); return (proc, port, tmpdir). Bounded wait."""
    tmp = tempfile.mkdtemp(prefix="drover-moto-")
    port_file = os.path.join(tmp, "port")
    log = open(os.path.join(tmp, "server.log"), "w")
    proc = subprocess.Popen([sys.executable, LAUNCHER, "--port", str(port), "--port-file", port_file, *extra_args],
                            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    log.close()  # the child keeps its own descriptor
    deadline = time.monotonic() + 30
    while not os.path.exists(port_file):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            proc.wait(timeout=10)
            raise RuntimeError("drover_moto did not start: " + open(os.path.join(tmp, "server.log")).read())
        time.sleep(0.05)
    with open(port_file) as fh:
        return proc, int(fh.read()), tmp


def stop_server(proc, tmp=None):
    """SIGTERM, bounded wait, then SIGKILL; removes the temp dir. Returns the exit code."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
    if tmp:
        shutil.rmtree(tmp, ignore_errors=True)
    return proc.returncode


class Emulator:
    def __init__(self, port):
        self.endpoint = f"http://127.0.0.1:{port}"

    def control(self, path, body=None, method=None):
        """Call the /_drover control API; returns (status, json)."""
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.endpoint + path, data=data, method=method or ("POST" if data else "GET"),
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    def client(self, service, region=SRC, attempts=1, validate=True, account=None, credentials=None):
        """A boto3 client. `account`: served as that account (moto's x-moto-account-id header, for
        set-up only); `credentials`: an STS Credentials dict (AssumeRole's) instead of "testing"."""
        keys = ({"aws_access_key_id": credentials["AccessKeyId"],
                 "aws_secret_access_key": credentials["SecretAccessKey"],
                 "aws_session_token": credentials["SessionToken"]} if credentials else
                {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"})
        c = boto3.client(
            service, region_name=region, endpoint_url=self.endpoint, **keys,
            config=Config(retries={"total_max_attempts": attempts, "mode": "standard"},
                          parameter_validation=validate, connect_timeout=5, read_timeout=10))
        if account:
            def as_account(request, **_):
                request.headers["x-moto-account-id"] = account
            c.meta.events.register("before-sign.*.*", as_account)
        return c


# ---------------------------------------------------------------- helpers

def wait_for(fn, done, timeout=10.0, interval=0.05):
    """Poll fn() until done(result); bounded by timeout."""
    deadline = time.monotonic() + timeout
    while True:
        result = fn()
        if done(result):
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out; last result: {result}")
        time.sleep(interval)


def make_table(ddb, name="orders", items=5, kms_key=None):
    """Table with a composite key, a GSI, an LSI and `items` items."""
    kwargs = {}
    if kms_key:
        kwargs["SSESpecification"] = {"Enabled": True, "SSEType": "KMS", "KMSMasterKeyId": kms_key}
    ddb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                              {"AttributeName": "sk", "AttributeType": "N"},
                              {"AttributeName": "status", "AttributeType": "S"},
                              {"AttributeName": "created", "AttributeType": "N"}],
        BillingMode="PAY_PER_REQUEST",
        GlobalSecondaryIndexes=[{"IndexName": "by-status",
                                 "KeySchema": [{"AttributeName": "status", "KeyType": "HASH"}],
                                 "Projection": {"ProjectionType": "ALL"}}],
        LocalSecondaryIndexes=[{"IndexName": "by-created",
                                "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"},
                                              {"AttributeName": "created", "KeyType": "RANGE"}],
                                "Projection": {"ProjectionType": "KEYS_ONLY"}}],
        **kwargs)
    for i in range(items):
        ddb.put_item(TableName=name, Item={
            "pk": {"S": f"customer-{i % 2}"}, "sk": {"N": str(i)}, "status": {"S": "open" if i % 2 else "closed"},
            "created": {"N": str(1000 + i)}, "blob": {"B": bytes([i, 255])}, "tags": {"SS": ["a", f"t{i}"]}})
    return ddb.describe_table(TableName=name)["Table"]["TableArn"]


def make_vault(backup, name, kms_key=None):
    kwargs = {"EncryptionKeyArn": kms_key} if kms_key else {}
    return backup.create_backup_vault(BackupVaultName=name, **kwargs)["BackupVaultArn"]


def backup_job(backup, table_arn, vault, **kwargs):
    return backup.start_backup_job(BackupVaultName=vault, ResourceArn=table_arn, IamRoleArn=ROLE, **kwargs)


def wait_backup(backup, job_id, timeout=10.0):
    return wait_for(lambda: backup.describe_backup_job(BackupJobId=job_id),
                    lambda j: j["State"] not in ("CREATED", "PENDING", "RUNNING"), timeout)


def wait_copy(backup, job_id, timeout=10.0):
    return wait_for(lambda: backup.describe_copy_job(CopyJobId=job_id)["CopyJob"],
                    lambda j: j["State"] not in ("CREATED", "RUNNING"), timeout)


def wait_restore(backup, job_id, timeout=10.0):
    return wait_for(lambda: backup.describe_restore_job(RestoreJobId=job_id),
                    lambda j: j["Status"] not in ("PENDING", "RUNNING"), timeout)


def completed_point(backup, table_arn, vault, **kwargs):
    """Run a backup job to completion; return the recovery point ARN."""
    job = wait_backup(backup, backup_job(backup, table_arn, vault, **kwargs)["BackupJobId"])
    assert job["State"] == "COMPLETED", job
    return job["RecoveryPointArn"]


def error_code(excinfo):
    return excinfo.value.response["Error"]["Code"]


def trust_policy(*principals, external_id=None, service=None):
    """An IAM role trust policy allowing sts:AssumeRole to those AWS principals (or a service)."""
    statement = {"Effect": "Allow", "Action": "sts:AssumeRole",
                 "Principal": {"Service": service} if service else {"AWS": list(principals)}}
    if external_id:
        statement["Condition"] = {"StringEquals": {"sts:ExternalId": external_id}}
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]})


def make_role(emulator, account, name, *principals, **kwargs):
    """An IAM role in `account` (set up through x-moto-account-id); returns its ARN."""
    extra = {"MaxSessionDuration": kwargs.pop("max_session_duration")} if "max_session_duration" in kwargs else {}
    return emulator.client("iam", account=account).create_role(
        RoleName=name, AssumeRolePolicyDocument=trust_policy(*principals, **kwargs), **extra)["Role"]["Arn"]
