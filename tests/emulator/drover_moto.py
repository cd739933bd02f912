#!/usr/bin/env python3
"""drover_moto: moto (pinned 5.2.5) server plus the AWS Backup job APIs drover needs.

moto is extended from outside its package at import time: the missing AWS Backup
REST routes are added to moto's own `moto.backup.urls.url_paths`, served by a
subclass of moto's `BackupResponse`, and the data lives on moto's own backends
(state hangs off each `BackupBackend` instance, so moto's reset clears it too).
DynamoDB tables and KMS keys are read from / written to moto's dynamodb and kms
backends in the same process. A small WSGI wrapper adds the `/_drover/...`
control API, the throttling knobs and the lazy job clock.
S3 objects live in moto's s3 backend; every S3 key/bucket operation runs under LOCK, so that
moto's If-None-Match / If-Match checks and its writes are atomic, as S3's conditional writes are.
Cross-account recovery (cross_account.py): STS AssumeRole is enforced as AWS does (the role exists
and trusts the caller), vault access policies, the organization (POST /_drover/organization) and
AWS Backup's global settings decide cross-account copies, and Vault Lock guards its vault.

Usage: python drover_moto.py --port 0 --port-file PATH [--job-seconds 1.0] [--state-file PATH]
                             [--realism] [--seed N]
Binds 127.0.0.1 only. --realism turns on every documented AWS non-ideality of realism.py at
its scaled default (each knob can be set on its own through POST /_drover/realism), seeded
by --seed. With --state-file, the emulated accounts (tables, keys, vaults, recovery points,
jobs, realism state) are saved there on SIGTERM/SIGINT and loaded at start, so that a
restarted server carries on where it stopped, as AWS does. See README.md in this directory.
"""
import argparse
import copy
import copyreg
import functools
import html
import io
import json
import math
import os
import pickle
import re
import signal
import sys
import threading
import time
import urllib.parse
import uuid
from http import HTTPStatus

import moto.backup.urls as backup_urls
from moto.backup.models import backup_backends
from moto.backup.responses import BackupResponse
from moto.core.base_backend import BackendDict
from moto.core.exceptions import JsonRESTError
from moto.core.request import Request
from moto.core.responses import BaseResponse
from moto.core.routing import get_service_router
from moto.dynamodb.models import dynamodb_backends
from moto.dynamodb.models.table import Table
from moto.iam.models import get_account_id_from, iam_backends
from moto.kms.models import KmsBackend, kms_backends
from moto.kms.utils import RESERVED_ALIASES
from moto.s3.exceptions import MissingKey
from moto.s3.models import S3Backend, s3_backends
from moto.s3.responses import S3Response
from moto.s3.utils import _VersionedKeyStore
from moto.sts.models import sts_backends
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.datastructures import Headers
from werkzeug.serving import make_server

import cbor_front  # CloudWatch over Smithy RPC v2 CBOR (this directory)
import notify  # EventBridge PutEvents and SNS Publish, as AWS validates them (this directory)
import cross_account  # STS enforcement, IAM policies, the organization (this directory)
import pitr  # DynamoDB point-in-time recovery: item history, RestoreTableToPointInTime (this directory)
import realism  # the realism layer (this directory); it never imports this module

HOST = "127.0.0.1"  # never anything else
LOCK = threading.RLock()
KINDS = ("backup", "copy", "restore")
# Terminal states a fault may force, per the model's enums for each kind.
FAULT_STATES = {
    "backup": ("FAILED", "ABORTED", "EXPIRED", "PARTIAL"),
    "copy": ("FAILED", "PARTIAL"),
    "restore": ("FAILED", "ABORTED"),
}
KMS_MSG = ("The specified AWS KMS key ARN does not exist, is not enabled or you do "
           "not have permissions to access it.")
TABLE_ARN = re.compile(r"^arn:aws:dynamodb:([a-z0-9-]+):(\d{12}):table/([a-zA-Z0-9_.-]{1,255})$")
VAULT_ARN = re.compile(r"^arn:aws:backup:([a-z0-9-]+):(\d{12}):backup-vault:([a-zA-Z0-9_-]{2,50})$")
ROLE_ARN = re.compile(r"^arn:aws:iam::\d{12}:role/\S+$")
OPT_IN_TYPES = ("Aurora", "CloudFormation", "DocumentDB", "DynamoDB", "EBS", "EC2", "EFS",
                "FSx", "Neptune", "RDS", "Redshift", "S3", "Storage Gateway", "Timestream",
                "VirtualMachine")


# ---------------------------------------------------------------- errors

class BackupError(JsonRESTError):
    """AWS Backup error: x-amzn-ErrorType header plus a JSON body carrying both moto's
    usual keys (__type, message) and the model's exception members (Code, Message)."""

    def __init__(self, code, message, status=400):
        super().__init__(code, message)
        self.code = status
        self.description = json.dumps(
            {"__type": code, "Code": code, "Message": message, "message": message})


def not_found(msg):
    return BackupError("ResourceNotFoundException", msg)


def bad_value(msg):
    return BackupError("InvalidParameterValueException", msg)


# ---------------------------------------------------------------- control state

class Control:
    """Knobs set through /_drover/...; global to the server (all accounts/regions)."""

    def __init__(self, job_seconds):
        self.job_seconds = job_seconds
        self.reset()

    def reset(self):
        self.durations = {"default": self.job_seconds, "backup": None, "copy": None, "restore": None}
        self.advanced_default = True
        self.non_advanced_copy = "fail_job"  # or "reject" (InvalidRequestException)
        self.restore_kms_override = None  # fault: restores use this key, not the requested one
        self.unseen_jobs = 0.0  # fault: Describe*Job does not see a job this many seconds old
        self.window_minute_seconds = 1.0  # emulator seconds per Start/CompleteWindowMinutes minute
        # A cross-account copy into a vault whose key is AWS managed (aws/backup): "fail_job" (the
        # stricter reading of the docs, the default) or "allow" (the newest developer guide's note
        # for resources fully managed by AWS Backup). See README, "Cross-account".
        self.cross_account_aws_managed_key = "fail_job"
        self.job_faults = {k: [] for k in KINDS}  # one (state, message) per future job
        self.call_faults = []  # [{"operation","remaining","code","status","message"}]
        self.entry_faults = []  # [{"operation","remaining","code","message"}]: failed PutEvents entries
        # PutEvents to an event bus that does not exist: "fail_entry" (the entry fails with
        # ResourceNotFoundException) or "accept" (an EventId, delivered nowhere). README, "Events and SNS".
        self.missing_event_bus = "fail_entry"

    def duration(self, kind):
        d = self.durations.get(kind)
        return float(self.durations["default"] if d is None else d)

    def take_job_fault(self, kind):
        return self.job_faults[kind].pop(0) if self.job_faults[kind] else None

    def take_call_fault(self, service, op):
        # EventBridge and SNS calls are faulted only when named (`events:PutEvents`, `sns:*`, `PutEvents`):
        # a `*` fault meant for Backup or DynamoDB calls must not be spent on drover's notifications.
        anything = () if service in EXPLICIT_FAULT_SERVICES else ("*",)
        for f in self.call_faults:
            if f["remaining"] > 0 and f["operation"] in (*anything, f"{service}:*", op, f"{service}:{op}"):
                f["remaining"] -= 1
                return f
        return None

    def take_entry_fault(self, service, op):
        with LOCK:
            for f in self.entry_faults:
                if f["remaining"] > 0 and f["operation"] in (f"{service}:*", op, f"{service}:{op}"):
                    f["remaining"] -= 1
                    return f
        return None

    def describe(self):
        return {"durations": self.durations, "advanced_default": self.advanced_default,
                "non_advanced_copy": self.non_advanced_copy,
                "restore_kms_override": self.restore_kms_override, "unseen_jobs": self.unseen_jobs,
                "cross_account_aws_managed_key": self.cross_account_aws_managed_key,
                "window_minute_seconds": self.window_minute_seconds,
                "realism": {**REALISM.describe(), "window_minute_seconds": self.window_minute_seconds},
                "job_faults": {k: [{"state": s, "message": m} for s, m in v]
                               for k, v in self.job_faults.items()},
                "call_faults": [f for f in self.call_faults if f["remaining"] > 0],
                "entry_faults": [f for f in self.__dict__.get("entry_faults", []) if f["remaining"] > 0],
                "missing_event_bus": self.__dict__.get("missing_event_bus", "fail_entry")}


EXPLICIT_FAULT_SERVICES = ("events", "sns")
REALISM = realism.Realism()
CONTROL = Control(1.0)
ORG = cross_account.Organization()  # POST /_drover/organization; saved with --state-file
PENDING = []  # jobs not yet finalized, across all accounts/regions, in creation order
SEQ = {"next": 0}  # creation sequence of jobs and recovery points (stable list tokens)
QUEUED = ("backup", "copy")  # the kinds AWS runs one at a time per resource


def next_seq():
    SEQ["next"] += 1
    return SEQ["next"]


class RegionState:
    """Drover additions for one (account, region); attached to moto's BackupBackend."""

    def __init__(self):
        self.jobs = {k: {} for k in KINDS}  # kind -> id -> Job, in creation order
        self.tokens = {}  # (kind, IdempotencyToken) -> job id
        self.points = {}  # recovery point ARN -> dict (model fields + "_" internals)
        self.opt_in, self.management, self.incremental = {}, {}, {}

    def advanced(self):
        d = CONTROL.advanced_default
        return bool(self.opt_in.get("DynamoDB", d) and self.management.get("DynamoDB", d))


def region_state(account, region):
    backend = backup_backends[account][region]
    if "_drover" not in backend.__dict__:
        backend._drover = RegionState()
    return backend._drover


class Job:
    """A job's clock. It waits (CREATED/PENDING) until `begin` (None: queued behind another job on
    its resource), spends the first 25% of its duration CREATED, the rest RUNNING, and ends at
    begin + duration; a backup job may instead expire at its start or complete window."""

    def __init__(self, kind, account, region, fields):
        self.kind, self.account, self.region = kind, account, region
        self.state = region_state(account, region)
        self.id = str(uuid.uuid4()).upper()
        self.seq = next_seq()
        self.created = stamp()
        self.duration = CONTROL.duration(kind)
        self.doom = None  # (terminal state, message) decided at start
        self.final = None  # terminal state once finalized
        self.completed = None
        self.message = None
        self.f = fields
        self.resource = None  # ResourceArn whose one-job-at-a-time slot a backup/copy job takes
        self.ready_at = self.created  # earliest start (later for a queued copy job)
        self.begin = self.created  # when its clock starts; None while it waits for its resource
        self.start_by = None  # backup: EXPIRED if still CREATED then (StartWindowMinutes)
        self.complete_by = None  # backup: EXPIRED if not done then (CompleteWindowMinutes)

    def status(self, now):
        if self.final:
            return self.final
        first = "PENDING" if self.kind == "restore" else "CREATED"
        if self.doom and self.doom[0] == "EXPIRED":
            return first
        if self.begin is None or now < self.begin + 0.25 * self.duration:
            return first
        return "RUNNING"

    def percent(self, now):
        if self.final:
            return 100.0 if self.final == "COMPLETED" else 0.0
        if self.status(now) != "RUNNING" or self.duration <= 0:
            return 0.0
        return min(99.0, 100.0 * (now - self.begin - 0.25 * self.duration) / (0.75 * self.duration))

    def holds_resource(self):
        """Takes its resource's slot: a backup/copy job that has started (it may still be CREATED)."""
        return (self.kind in QUEUED and self.resource is not None and self.begin is not None
                and not (self.doom and self.doom[0] == "EXPIRED"))

    def next_event(self):
        """(time, what) of the next thing that happens to this job on its own, or (None, None)."""
        events = []
        if self.begin is not None:
            events.append((self.begin + self.duration, "end"))
        if self.start_by is not None and (self.begin is None or self.begin + 0.25 * self.duration > self.start_by):
            events.append((self.start_by, "start_window"))
        if self.complete_by is not None and (self.begin is None or self.begin + self.duration > self.complete_by):
            events.append((self.complete_by, "complete_window"))
        return min(events) if events else (None, None)

    def finish(self, state, message=None):
        self.final, self.message, self.completed = state, message, stamp()

    def common(self, now):
        out = {"AccountId": self.account, "CreationDate": self.created,
               "CompletionDate": self.completed, "StatusMessage": self.message}
        out.update({k: v for k, v in self.f.items() if not k.startswith("_")})
        return out


def start_job(kind, account, region, token, fields, doom=None, resource=None, delay=0.0, windows=(None, None)):
    job = Job(kind, account, region, fields)
    fault = CONTROL.take_job_fault(kind)
    job.doom = tuple(fault) if fault else doom
    job.resource = resource
    job.ready_at = job.begin = job.created + delay
    start_minutes, complete_minutes = windows
    if start_minutes is not None:
        job.start_by = job.created + start_minutes * CONTROL.window_minute_seconds
    if complete_minutes is not None:
        job.complete_by = job.created + complete_minutes * CONTROL.window_minute_seconds
    if (REALISM["one_job_per_resource"] and kind in QUEUED and resource is not None
            and any(j.kind in QUEUED and j.resource == resource and not (j.doom and j.doom[0] == "EXPIRED")
                    for j in PENDING)):
        job.begin = None  # realism.OneJobPerResource: waits, CREATED, for the jobs before it
    job.state.jobs[kind][job.id] = job
    if token:
        job.state.tokens[(kind, token)] = job.id
    PENDING.append(job)
    return job


START_WINDOW_MSG = "Backup job could not start within the start window (StartWindowMinutes)."
# AWS's state and message for a job past its complete window (the console shows it EXPIRED,
# "Backup job expired before completion.": dev.classmethod.jp/articles/tsnote-awsbackup-ec2-jobs-expired).
COMPLETE_WINDOW_MSG = "Backup job expired before completion."


def release(at):
    """Starts the waiting jobs whose resource is free (in creation order), at time `at`."""
    busy = {j.resource for j in PENDING if j.holds_resource()}
    for job in PENDING:
        if job.begin is None and not (REALISM["one_job_per_resource"] and job.resource in busy):
            job.begin = max(at, job.ready_at)
            if job.holds_resource():
                busy.add(job.resource)


def tick():
    """Applies, in time order, every job event that is due (lazy clock; no threads): a job ends,
    or a backup job misses its start or complete window; a job that leaves frees its resource for
    the next one. Then ends realism's lingering states that are due (DELETING tables and points)."""
    now = time.time()
    for _ in range(100_000):  # bounded: every round removes a job
        due = [(t, i, j, what) for i, j in enumerate(PENDING) for t, what in [j.next_event()]
               if t is not None and t <= now]
        if not due:
            break
        at, _, job, what = min(due, key=lambda d: (d[0], d[1]))
        PENDING.remove(job)
        # skip jobs whose backend was reset by moto meanwhile
        if backup_backends[job.account][job.region].__dict__.get("_drover") is job.state:
            if what == "start_window":
                job.finish("EXPIRED", START_WINDOW_MSG)
            elif what == "complete_window":
                job.finish("EXPIRED", COMPLETE_WINDOW_MSG)
            elif job.doom:
                job.finish(*job.doom)
            else:
                FINALIZERS[job.kind](job)
            job.completed = round(at, 3)  # it ended when its clock says, not when we looked
        release(at)
    release(now)
    for key in REALISM.due(now):
        if key[0] == "table":
            realism.DeleteTableIsAsynchronous.finish(dynamodb_backends, key)
        elif key[0] == "point":
            remove_point(*key[1:])


# ---------------------------------------------------------------- helpers

def stamp():
    """Wall-clock time as returned in API dates (millisecond precision, as AWS Backup does)."""
    return round(time.time(), 3)


def drop_none(d):
    return {k: v for k, v in d.items() if v is not None}


def kms_problem(account, region, key_arn, missing_ok):
    """None if the KMS key is usable in that region, else a StatusMessage."""
    m = re.match(r"^arn:aws:kms:([a-z0-9-]+):(\d{12}):", key_arn or "")
    if m and (m.group(1), m.group(2)) != (region, account):
        return None if missing_ok else KMS_MSG
    try:
        key = kms_backends[account][region].describe_key(key_arn)
    except Exception:  # moto raises KeyError/NotFoundException for unknown ids
        return None if missing_ok else KMS_MSG
    return None if key.key_state == "Enabled" else KMS_MSG


def aws_backup_key(account, region):
    """ARN of the account's AWS managed key `aws/backup` in that Region (made on first use, as
    moto makes its other reserved aliases' keys; KeyManager AWS: see `_aws_managed_default_keys`)."""
    return kms_backends[account][region].describe_key("alias/aws/backup").arn


def vault_key(account, region, vault):
    """The vault's key; a vault created without one uses the AWS-managed aws/backup key."""
    return vault.encryption_key_arn or aws_backup_key(account, region)


def key_manager(account, region, key_arn):
    """KeyManager ("AWS" / "CUSTOMER") of a key moto KMS knows in that account and Region, else None."""
    m = re.match(r"^arn:aws:kms:([a-z0-9-]+):(\d{12}):", key_arn or "")
    if m:
        region, account = m.group(1), m.group(2)
    try:
        return kms_backends[account][region].describe_key(key_arn).key_manager
    except Exception:  # unknown to moto
        return None


# AWS managed keys. moto 5.2.5 makes the key of a reserved alias (alias/aws/dynamodb, ...) on first
# use, but as a customer managed key (KeyManager CUSTOMER) and without alias/aws/backup. In AWS,
# "AWS managed keys are KMS keys in your account that are created, managed, and used on your behalf
# by an AWS service", DescribeKey's KeyManager is AWS for them ([BC-k] KeyManagerType), and
# AWS Backup's is aws/backup. Both are fixed from outside moto here.
if "alias/aws/backup" not in RESERVED_ALIASES:
    RESERVED_ALIASES.append("alias/aws/backup")
_AWS_MANAGED_DESCRIPTIONS = {
    "alias/aws/backup": "Default key that protects my backups when no other key is defined",
    "alias/aws/dynamodb": "Default key that protects my DynamoDB data when no other key is defined",
}


def _aws_managed_default_keys(orig):
    @functools.wraps(orig)
    def generate(self, alias_name):
        key_id = orig(self, alias_name)
        if key_id is not None:
            key = self.keys[key_id]
            key.key_manager = "AWS"
            key.description = _AWS_MANAGED_DESCRIPTIONS.get(
                alias_name, f"Default key that protects my {alias_name.split('/')[-1]} data")
        return key_id
    return generate


KmsBackend._generate_default_keys = _aws_managed_default_keys(KmsBackend._generate_default_keys)


def snapshot_table(table):
    # moto's own item store, copied the way moto's RestoredTable copies a backup's items.
    # DynamoDB requests are serialized with ours (realism.install); the retry is belt and braces.
    for attempt in range(3):
        try:
            items = copy.deepcopy(table.items)
            break
        except RuntimeError:  # "dictionary changed size during iteration"
            if attempt == 2:
                raise
            time.sleep(0.01)
    # realism.BackupsAreNotPointInTime: the writes of the last `backup_lag` seconds are missed
    items = realism.BackupsAreNotPointInTime.undo_recent(table, items, time.time(), REALISM["backup_lag"])
    rcu_wcu = {k: table.throughput.get(k, 0) for k in ("ReadCapacityUnits", "WriteCapacityUnits")}

    def gsi(ix):
        d = {"IndexName": ix.name, "KeySchema": ix.schema, "Projection": ix.projection}
        if table.billing_mode != "PAY_PER_REQUEST":
            d["ProvisionedThroughput"] = {k: ix.throughput.get(k, 0) for k in rcu_wcu}
        return d
    sse = table.sse_specification if (table.sse_specification or {}).get("Enabled") else None
    snap = copy.deepcopy({
        "TableName": table.name, "TableArn": table.table_arn,
        "KeySchema": table.schema, "AttributeDefinitions": table.attr,
        "GlobalSecondaryIndexes": [gsi(ix) for ix in table.global_indexes],
        "LocalSecondaryIndexes": [ix.describe() for ix in table.indexes],
        "BillingMode": table.billing_mode or "PROVISIONED", "ProvisionedThroughput": rcu_wcu,
        "SSESpecification": sse, "Tags": {t["Key"]: t.get("Value") for t in table.tags or []},
        "ItemCount": sum(len(v) for v in items.values()) if table.range_key_attr else len(items)})
    snap["Items"] = items
    snap["SizeBytes"] = sum(item.size() for v in items.values() for item in (
        v.values() if table.range_key_attr else [v]))
    return snap


class RestoredFromBackupTable(Table):
    """A moto Table that reports RestoreSummary like a table restored from a backup."""

    # moto's model metaclass files classes under the 2nd dotted part of __module__.
    __module__ = "drover_moto.dynamodb"

    def describe(self, base_key="TableDescription"):
        result = super().describe(base_key=base_key)
        result[base_key]["RestoreSummary"] = {
            "SourceBackupArn": self.drover_source_backup, "SourceTableArn": self.drover_source_table,
            "RestoreDateTime": self.created_at, "RestoreInProgress": False}
        realism.describe_table_status(self, result[base_key])  # RestoredTablesSettle
        return result


# Filed with moto under "dynamodb" above; now named after the module it really lives in, so that
# a restored table pickles (--state-file).
RestoredFromBackupTable.__module__ = __name__


# ---------------------------------------------------------------- finalizers

def calculated_lifecycle(life, created, advanced, inherited_delete_at=None):
    """CalculatedLifecycle of a point: DeleteAt / MoveToColdStorageAt, days after its CreationDate.
    -1 keeps it indefinitely; for a copy, DeleteAfterDays -1 keeps the source's expiry
    (recov-point-create-a-copy.html). Cold storage only applies to advanced (arn:aws:backup:) points."""
    out = {}
    if (life.get("DeleteAfterDays") or 0) > 0:
        out["DeleteAt"] = created + 86400 * life["DeleteAfterDays"]
    elif life.get("DeleteAfterDays") == -1 and inherited_delete_at is not None:
        out["DeleteAt"] = inherited_delete_at
    if advanced and (life.get("MoveToColdStorageAfterDays") or 0) > 0:
        out["MoveToColdStorageAt"] = created + 86400 * life["MoveToColdStorageAfterDays"]
    return out or None


def point_tags(account, region, arn):
    return backup_backends[account][region].tagger.get_tag_dict_for_resource(arn)


def new_point(account, region, vault, snap, arn, fields, tags=None, inherited_delete_at=None):
    key = fields.pop("_key")
    point = drop_none({
        "RecoveryPointArn": arn, "BackupVaultName": vault.backup_vault_name,
        "BackupVaultArn": vault.backup_vault_arn, "ResourceArn": snap["TableArn"],
        "ResourceType": "DynamoDB", "ResourceName": snap["TableName"], "Status": "COMPLETED",
        "CompletionDate": stamp(), "BackupSizeInBytes": snap["SizeBytes"],
        "EncryptionKeyArn": key, "IsEncrypted": True, "StorageClass": "WARM",
        "VaultType": "BACKUP_VAULT", "IsParent": False, "_snapshot": snap, "_seq": next_seq(), **fields})
    advanced = arn.startswith("arn:aws:backup:")
    if vault.encryption_key_arn and advanced and key_manager(account, region, key) != "AWS":
        point["EncryptionKeyType"] = "CUSTOMER_MANAGED_KMS_KEY"  # not for aws/backup (AWS managed)
    calc = calculated_lifecycle(point.get("Lifecycle") or {}, point["CreationDate"], advanced, inherited_delete_at)
    if calc:
        point["CalculatedLifecycle"] = calc
    region_state(account, region).points[arn] = point
    vault.num_of_recovery_points += 1
    if tags:
        backup_backends[account][region].tag_resource(arn, tags)
    return point


def remove_point(account, region, arn):
    """A recovery point is gone: out of its vault, its tags dropped."""
    backend = backup_backends[account][region]
    st = backend.__dict__.get("_drover")
    point = st.points.pop(arn, None) if st else None
    if point is None:
        return
    vault = backend.vaults.get(point["BackupVaultName"])
    if vault is not None:
        vault.num_of_recovery_points = max(0, vault.num_of_recovery_points - 1)
    backend.tagger.delete_all_tags_for_resource(arn)


def backup_point_tags(snap, requested, advanced):
    """Tags of a new backup (tags-on-backups.html): "AWS Backup copies tags from the resources it
    protects to your recovery points ... Tags that are originally associated with a resource and
    tags that are assigned during backup are assigned to recovery points ..., up to a maximum of 50
    ... Tags that are assigned during backup have priority, and both sets of tags are copied in
    alphabetical order. DynamoDB does not support assigning tags to backups unless you first enable
    Advanced DynamoDB backup." So a non-advanced point gets none."""
    if not advanced:
        return {}
    out = {}
    for source in (requested or {}, snap.get("Tags") or {}):
        for k in sorted(source):
            if k not in out and len(out) < 50:
                out[k] = source[k]
    return out


# Cross-account copies (README, "Cross-account"). AWS fails the copy job; it does not refuse
# StartCopyJob: "If your source and destination accounts aren't in the same organization, then you
# receive the following error message: "Copy job failed. Both source and destination account must be
# a member of the same organization"" (repost.aws/knowledge-center/backup-troubleshoot-cross-account-copy;
# a copy job's status message reads "Access denied: Copy job failed. ...", as quoted in
# aws-solutions-library-samples/account-assessment-for-aws-organizations#57), and "This Access Denied
# error can occur when the destination backup vault doesn't have a vault access policy that allows
# copies from a source account" (repost.aws/knowledge-center/backup-resolve-access-denied-error).
NOT_SAME_ORGANIZATION_MSG = ("Access denied: Copy job failed. Both source and destination account must be a "
                             "member of the same organization")
COPY_ACCESS_DENIED_MSG = "Access Denied trying to call AWS Backup service"
# The emulator's wording (AWS documents no message for these two):
CROSS_ACCOUNT_DISABLED_MSG = ("Access denied: Copy job failed. Cross-account backup is not enabled for the "
                              "organization (AWS Backup global setting isCrossAccountBackupEnabled).")
AWS_MANAGED_DESTINATION_KEY_MSG = ("Copy job failed. The destination backup vault is encrypted with an AWS managed "
                                   "key (aws/backup), which cannot be used across accounts: encrypt the "
                                   "destination vault with a customer managed key.")


def copy_into_vault_allowed(vault, source_account, role_arn):
    """Whether the destination vault's access policy allows `backup:CopyIntoBackupVault` to the
    source account: principal `*`, its account id, its root ARN, or the copy job's role (the
    principal that makes the copy; stricter than any role of the account). Conditions on
    aws:PrincipalOrgID and aws:PrincipalAccount are evaluated (cross_account.allows)."""
    doc = cross_account.parse_policy(getattr(vault, "_drover_access_policy", None) or "")
    if doc is None:
        return False
    principals = {source_account, f"arn:aws:iam::{source_account}:root", role_arn}
    context = {"aws:principalorgid": ORG.id if ORG.member(source_account) else None,
               "aws:principalaccount": source_account}
    return cross_account.allows(doc, "backup:CopyIntoBackupVault", principals, context)


def retention_days(lifecycle, source=None):
    """Days a new point is kept (its DeleteAfterDays), math.inf for -1 (indefinitely; for a copy, -1
    keeps the source's expiry), None without a DeleteAfterDays."""
    days = (lifecycle or {}).get("DeleteAfterDays")
    if days == -1 and source is not None:
        delete_at = (source.get("CalculatedLifecycle") or {}).get("DeleteAt")
        if delete_at is not None:
            return round((delete_at - source["CreationDate"]) / 86400)
    if days == -1:
        return math.inf
    return days


def vault_lock_problem(vault, kind, lifecycle, source=None):
    """The StatusMessage of a backup or copy job that the vault's lock fails, else None.
    [BC-b] PutBackupVaultLockConfiguration MinRetentionDays: "any backup or copy job to the vault
    must have a lifecycle policy with a retention period equal to or longer than the minimum
    retention period. If the job's retention period is shorter than that minimum retention period,
    then the vault fails that backup or copy job"; MaxRetentionDays likewise ("equal to or shorter
    than the maximum"). Stricter reading: a job without a DeleteAfterDays fails a minimum (it has
    no "lifecycle policy with a retention period"), and one kept indefinitely fails a maximum. The
    lock applies from PutBackupVaultLockConfiguration on (moto's `locked`), in both modes."""
    if not getattr(vault, "locked", False):
        return None
    low, high = vault.min_retention_days, vault.max_retention_days
    days = retention_days(lifecycle, source)
    if (low is not None and (days is None or days < low)) or (
            high is not None and (days is None or days > high)):
        kept = ("no retention period (no Lifecycle DeleteAfterDays)" if days is None else
                "an indefinite retention period" if days == math.inf else f"a retention period of {days} days")
        bounds = ", ".join(f"{name} {v}" for name, v in (("MinRetentionDays", low), ("MaxRetentionDays", high))
                           if v is not None)
        return (f"The {kind} job's recovery point has {kept}, outside what the Vault Lock of backup vault "
                f"{vault.backup_vault_name} allows ({bounds}): the vault fails the {kind} job.")
    return None


def finalize_backup(job):
    f = job.f
    vault = backup_backends[job.account][job.region].vaults.get(f["BackupVaultName"])
    if vault is None:
        return job.finish("FAILED", f"Backup vault {f['BackupVaultName']} does not exist.")
    locked = vault_lock_problem(vault, "backup", f.get("RecoveryPointLifecycle"))
    if locked:
        return job.finish("FAILED", locked)
    advanced = f["_advanced"]
    key = vault_key(job.account, job.region, vault) if advanced else f["_table_key"]
    if advanced and kms_problem(job.account, job.region, key, missing_ok=True):
        return job.finish("FAILED", "Access denied to KMS key.")
    new_point(job.account, job.region, vault, f["_snapshot"], f["_arn"], {
        "_key": key, "CreationDate": job.created, "IamRoleArn": f["IamRoleArn"],
        "Lifecycle": f.get("RecoveryPointLifecycle")},
        tags=backup_point_tags(f["_snapshot"], f.get("_tags"), advanced))
    f["RecoveryPointArn"] = f["_arn"]
    f["EncryptionKeyArn"], f["IsEncrypted"] = key, True
    job.finish("COMPLETED")


def finalize_copy(job):
    f = job.f
    src = f["_source"]
    m = VAULT_ARN.match(f["DestinationBackupVaultArn"])
    d_region, d_account, d_name = m.groups()
    cross = d_account != job.account
    if cross:  # the organization first: AWS looks no further
        if not ORG.same(job.account, d_account):
            return job.finish("FAILED", NOT_SAME_ORGANIZATION_MSG)
        if not ORG.cross_account_backup():
            return job.finish("FAILED", CROSS_ACCOUNT_DISABLED_MSG)
    vault = backup_backends[d_account][d_region].vaults.get(d_name)
    if vault is None:
        return job.finish("FAILED", f"Destination backup vault {f['DestinationBackupVaultArn']} does not exist.")
    key = vault_key(d_account, d_region, vault)
    if cross:
        if not copy_into_vault_allowed(vault, job.account, f["IamRoleArn"]):
            return job.finish("FAILED", COPY_ACCESS_DENIED_MSG)
        if key_manager(d_account, d_region, key) == "AWS" and CONTROL.cross_account_aws_managed_key != "allow":
            return job.finish("FAILED", AWS_MANAGED_DESTINATION_KEY_MSG)
    lifecycle = f.get("DestinationRecoveryPointLifecycle") or src.get("Lifecycle")
    locked = vault_lock_problem(vault, "copy", lifecycle, src)
    if locked:
        return job.finish("FAILED", locked)
    if kms_problem(d_account, d_region, key, missing_ok=True):
        return job.finish("FAILED", "Access denied to KMS key.")
    arn = f"arn:aws:backup:{d_region}:{d_account}:recovery-point:{str(uuid.uuid4()).upper()}"
    # "If you copy your backup to another AWS Region, AWS Backup copies all tags of the original
    # backup to the destination AWS Region" (tags-on-backups.html).
    src_region, src_account = VAULT_ARN.match(src["BackupVaultArn"]).groups()[:2]
    new_point(d_account, d_region, vault, src["_snapshot"], arn, {
        "_key": key, "CreationDate": src["CreationDate"], "IamRoleArn": f["IamRoleArn"],
        "SourceBackupVaultArn": src["BackupVaultArn"], "Lifecycle": lifecycle},
        tags=point_tags(src_account, src_region, src["RecoveryPointArn"]),
        inherited_delete_at=(src.get("CalculatedLifecycle") or {}).get("DeleteAt"))
    f["DestinationRecoveryPointArn"], f["DestinationEncryptionKeyArn"] = arn, key
    job.finish("COMPLETED")


def finalize_restore(job):
    f = job.f
    point, meta = f["_point"], f["_meta"]
    snap = point["_snapshot"]
    name = meta["targettablename"]
    ddb = dynamodb_backends[job.account][job.region]
    if name in ddb.tables:
        return job.finish("FAILED", f"Table already exists: {name}")
    if kms_problem(job.account, job.region, point.get("EncryptionKeyArn"), missing_ok=True):
        return job.finish("FAILED", "Access denied to KMS key.")
    etype = meta.get("encryptiontype")
    if etype == "KMS":
        sse = {"Enabled": True, "SSEType": "KMS"}
        if meta.get("kmsmasterkeyarn"):
            if kms_problem(job.account, job.region, meta["kmsmasterkeyarn"], missing_ok=False):
                return job.finish("FAILED", KMS_MSG)
            sse["KMSMasterKeyId"] = kms_backends[job.account][job.region].describe_key(
                CONTROL.restore_kms_override or meta["kmsmasterkeyarn"]).arn
    elif etype == "Default":
        sse = None
    else:  # not given: same-Region restores keep the source table's encryption
        sse = copy.deepcopy(snap["SSESpecification"])
        if sse and kms_problem(job.account, job.region, sse.get("KMSMasterKeyId"), missing_ok=False):
            return job.finish("FAILED", KMS_MSG)
    provisioned = snap["BillingMode"] != "PAY_PER_REQUEST"
    table = RestoredFromBackupTable(
        name, account_id=job.account, region=job.region, schema=copy.deepcopy(snap["KeySchema"]),
        attr=copy.deepcopy(snap["AttributeDefinitions"]),
        throughput=copy.deepcopy(snap["ProvisionedThroughput"]) if provisioned else None,
        billing_mode=snap["BillingMode"], indexes=copy.deepcopy(snap["LocalSecondaryIndexes"]),
        global_indexes=copy.deepcopy(snap["GlobalSecondaryIndexes"]), sse_specification=sse)
    table.drover_source_backup, table.drover_source_table = point["RecoveryPointArn"], snap["TableArn"]
    table.items = copy.deepcopy(snap["Items"])
    ddb.tables[name] = table
    realism.RestoredTablesSettle.begin(table, time.time(), REALISM["restore_settle"])
    f["CreatedResourceArn"] = table.table_arn
    job.finish("COMPLETED")


FINALIZERS = {"backup": finalize_backup, "copy": finalize_copy, "restore": finalize_restore}


# ---------------------------------------------------------------- list helpers

def paginate(rows, p, key):
    """One page of `rows`, [(seq, item)] newest first. The NextToken names the last item returned,
    so that items created between pages neither repeat nor shift the later pages: paging through
    returns every item that existed at the first page exactly once. realism.ListsArePaginated caps
    the page at `page_size` whatever MaxResults asks."""
    n = p.get("MaxResults")
    if n is not None and not 1 <= int(n) <= 1000:
        raise bad_value("MaxResults must be between 1 and 1000.")
    token = p.get("NextToken")
    try:
        after = int(token) if token else None
        if after is not None and after < 0:
            raise ValueError(token)
    except ValueError:
        raise bad_value("Invalid NextToken.")
    if after is not None:
        rows = [r for r in rows if r[0] < after]
    size = realism.ListsArePaginated.cap(int(n or 1000), REALISM["page_size"])
    page = rows[:size]
    return {key: [item for _, item in page], "NextToken": str(page[-1][0]) if len(rows) > size else None}


def ts(value):
    return value.timestamp() if hasattr(value, "timestamp") else float(value)


def date_filters(p, created, completed=None):
    checks = [("ByCreatedAfter", created, lambda a, b: a >= b), ("ByCreatedBefore", created, lambda a, b: a <= b),
              ("ByCompleteAfter", completed, lambda a, b: a >= b), ("ByCompleteBefore", completed, lambda a, b: a <= b)]
    for name, value, ok in checks:
        if p.get(name) is not None and (value is None or not ok(value, ts(p[name]))):
            return False
    return True


def public(d):
    return {k: v for k, v in d.items() if not k.startswith("_") and v is not None}


MAX_WINDOW_MINUTES = 52_560_000  # "a maximum value of 100 years (52,560,000 minutes)"


def check_windows(p):
    """StartWindowMinutes / CompleteWindowMinutes of StartBackupJob ([BC-b]): the start window
    "is optional, and the default is 8 hours. If this value is included, it must be at least 60
    minutes to avoid errors"; both have "a maximum value of 100 years (52,560,000 minutes)". The
    error code is not documented: InvalidParameterValueException ("the value is out of range")."""
    start, complete = p.get("StartWindowMinutes"), p.get("CompleteWindowMinutes")
    if start is not None and not 60 <= int(start) <= MAX_WINDOW_MINUTES:
        raise bad_value(f"StartWindowMinutes must be at least 60 minutes and at most {MAX_WINDOW_MINUTES} "
                        f"minutes; got {start}.")
    if complete is not None and not 1 <= int(complete) <= MAX_WINDOW_MINUTES:
        raise bad_value(f"CompleteWindowMinutes must be between 1 and {MAX_WINDOW_MINUTES} minutes; got {complete}.")
    return (480 if start is None else int(start)), (None if complete is None else int(complete))


def check_lifecycle(life):
    """Lifecycle of StartBackupJob / StartCopyJob ([BC-b] Lifecycle: "Backups transitioned to cold
    storage must be stored in cold storage for a minimum of 90 days. Therefore ... the retention
    setting must be 90 days greater than the transition to cold after days setting"; "This parameter
    has a maximum value of 100 years (36,500 days)"; "-1 ... keep your recovery points
    indefinitely"). AWS's answers (hashicorp/terraform-provider-aws#7350, #24960; the code of the
    "Invalid lifecycle." family: lgallard/terraform-aws-backup#40):
    InvalidParameterValueException "Invalid lifecycle. DeleteAfterDays cannot be less than 90 days
    apart from MoveToColdStorageAfterDays" and "... cannot be less than 1 or more than 36500 days"."""
    if not life:
        return None
    if "DeleteAfterEvent" in life:
        raise bad_value("Invalid lifecycle. DeleteAfterEvent is not valid as an input.")
    for name in ("DeleteAfterDays", "MoveToColdStorageAfterDays"):
        v = life.get(name)
        if v is not None and v != -1 and not 1 <= int(v) <= 36500:
            raise bad_value(f"Invalid lifecycle. {name} cannot be less than 1 or more than 36500 days")
    delete, cold = life.get("DeleteAfterDays"), life.get("MoveToColdStorageAfterDays")
    if delete is not None and cold is not None and delete > 0 and cold > 0 and delete < cold + 90:
        raise bad_value("Invalid lifecycle. DeleteAfterDays cannot be less than 90 days apart from "
                        "MoveToColdStorageAfterDays")
    return dict(life)


# ---------------------------------------------------------------- responses

class DroverBackupResponse(BackupResponse):
    """moto's BackupResponse plus the job / recovery point / region-settings operations."""

    def call_action(self):
        with LOCK:
            return super().call_action()

    # -- plumbing
    def _p(self):
        self.parse_parameters(self.normalized_request)  # model-driven (botocore) parsing
        return dict(self.params)

    @property
    def _st(self):
        return region_state(self.current_account, self.region)

    def _out(self, d):
        self.response_headers["Content-Type"] = "application/json"
        return json.dumps(drop_none(d))

    def _job(self, kind, job_id):
        job = self._st.jobs[kind].get(job_id)
        if job is None:
            raise not_found(f"Cannot find {kind} job with id {job_id}")
        return job

    def _described(self, kind, job_id):
        """The job a Describe*Job reads: one younger than the `unseen_jobs` knob (config or
        realism) is not found yet (an eventually consistent read)."""
        job = self._job(kind, job_id)
        if not realism.JobsAreEventuallyConsistent.seen(
                job.created, time.time(), max(CONTROL.unseen_jobs, REALISM["unseen_jobs"])):
            raise not_found(f"Cannot find {kind} job with id {job_id}")
        return job

    def _listed(self, kind, out):
        """The jobs a List*Jobs sees, newest first, as [(seq, output)]: realism's `unseen_jobs`
        hides the young ones (JobsAreEventuallyConsistent)."""
        now = time.time()
        return [(j.seq, out(j, now)) for j in sorted(self._st.jobs[kind].values(), key=lambda j: -j.seq)
                if realism.JobsAreEventuallyConsistent.seen(j.created, now, REALISM["unseen_jobs"])]

    @staticmethod
    def _replayed(out):
        """The answer to a Start*Job replayed with a used IdempotencyToken (IdempotentReplayIsBare)."""
        return {} if REALISM["idempotent_replay_without_id"] else out

    def _usable_point(self, point):
        if point.get("Status") == "DELETING":  # RecoveryPointDeletionIsAsynchronous
            raise BackupError("InvalidRequestException",
                              f"Recovery point {point['RecoveryPointArn']} is being deleted.")
        return point

    def _vault(self, name):
        vault = self.backup_backend.vaults.get(name)
        if vault is None:
            raise not_found(f"Backup vault {name} does not exist.")
        return vault

    def _point(self, vault_name, arn):
        self._vault(vault_name)
        point = self._st.points.get(arn)
        if point is None or point["BackupVaultName"] != vault_name:
            raise not_found(f"Recovery point {arn} not found in backup vault {vault_name}.")
        return point

    @staticmethod
    def _require(p, *names):
        for n in names:
            if p.get(n) in (None, ""):
                raise BackupError("MissingParameterValueException", f"{n} is required.")

    def _may_pass(self, role_arn):
        """iam:PassRole: "You can only use the PassRole permission to pass an IAM role to a service
        that shares the same AWS account" (IAM User Guide, id_roles_use_passrole.html). A role of
        another account is refused at the call, with the denial every AWS API may answer
        (AccessDeniedException, HTTP 400: AWS Backup's CommonErrors.html) in IAM's wording."""
        m = re.match(r"^arn:aws:iam::(\d{12}):", role_arn or "")
        if m and m.group(1) != self.current_account:
            arn = cross_account.caller(self.get_access_key(), self.current_account, self.region)[0]
            raise BackupError("AccessDeniedException",
                              f"User: {arn} is not authorized to perform: iam:PassRole on resource: {role_arn}")

    def _replay(self, kind, p):
        job_id = self._st.tokens.get((kind, p.get("IdempotencyToken"))) if p.get("IdempotencyToken") else None
        return self._st.jobs[kind][job_id] if job_id else None

    # -- region settings
    def describe_region_settings(self):
        st, d = self._st, CONTROL.advanced_default
        opt = {t: True for t in OPT_IN_TYPES}
        opt["DynamoDB"] = d
        return self._out({
            "ResourceTypeOptInPreference": {**opt, **st.opt_in},
            "ResourceTypeManagementPreference": {"DynamoDB": d, "EFS": True, **st.management},
            "ResourceTypeOptInIncremental": st.incremental or None})

    def update_region_settings(self):
        p, st = self._p(), self._st
        for key, target in (("ResourceTypeOptInPreference", st.opt_in),
                            ("ResourceTypeManagementPreference", st.management),
                            ("ResourceTypeOptInIncremental", st.incremental)):
            for k, v in (p.get(key) or {}).items():
                if not isinstance(v, bool):
                    raise bad_value(f"{key} values must be booleans.")
                target[k] = v
        return self._out({})

    # -- backup jobs
    def start_backup_job(self):
        p = self._p()
        self._require(p, "BackupVaultName", "ResourceArn", "IamRoleArn")
        if not ROLE_ARN.match(p["IamRoleArn"]):
            raise bad_value(f"Invalid IamRoleArn: {p['IamRoleArn']}")
        self._may_pass(p["IamRoleArn"])
        windows = check_windows(p)
        lifecycle = check_lifecycle(p.get("Lifecycle"))
        job = self._replay("backup", p)
        replayed = job is not None
        if job is None:
            vault = self._vault(p["BackupVaultName"])
            m = TABLE_ARN.match(p["ResourceArn"])
            if not m:
                raise bad_value(f"Invalid or unsupported resource ARN: {p['ResourceArn']} "
                                "(this emulator supports DynamoDB tables only)")
            if m.group(1) != self.region or m.group(2) != self.current_account:
                raise bad_value("The resource must be in the same Region and account as the backup vault.")
            table = dynamodb_backends[self.current_account][self.region].tables.get(m.group(3))
            advanced = self._st.advanced()
            job_start = stamp()
            now_ms = int(job_start * 1000)
            arn = (f"arn:aws:backup:{self.region}:{self.current_account}:recovery-point:{str(uuid.uuid4()).upper()}"
                   if advanced else f"{p['ResourceArn']}/backup/{now_ms:014d}-{uuid.uuid4().hex[:8]}")
            snap = snapshot_table(table) if table is not None else None
            fields = {
                "BackupVaultName": vault.backup_vault_name, "BackupVaultArn": vault.backup_vault_arn,
                "VaultType": "BACKUP_VAULT", "ResourceArn": p["ResourceArn"], "ResourceType": "DynamoDB",
                "ResourceName": m.group(3), "IamRoleArn": p["IamRoleArn"],
                "RecoveryPointArn": arn if advanced else None,
                "RecoveryPointLifecycle": lifecycle, "IsParent": False,
                "BackupSizeInBytes": snap["SizeBytes"] if snap else None,
                "_arn": arn, "_advanced": advanced, "_snapshot": snap, "_tags": p.get("RecoveryPointTags"),
                "_table_key": ((snap or {}).get("SSESpecification") or {}).get("KMSMasterKeyId")}
            doom = None if table is not None else ("FAILED", f"Resource {p['ResourceArn']} not found.")
            job = start_job("backup", self.current_account, self.region, p.get("IdempotencyToken"), fields, doom,
                            resource=p["ResourceArn"], windows=windows)
            job.f["StartBy"] = job.start_by
        out = {"BackupJobId": job.id, "CreationDate": job.created,
               "RecoveryPointArn": job.f["RecoveryPointArn"] if job.f["_advanced"] else None, "IsParent": False}
        return self._out(self._replayed(out) if replayed else out)

    def _backup_job_out(self, job, now):
        out = job.common(now)
        out.update(BackupJobId=job.id, State=job.status(now), PercentDone=f"{job.percent(now):.1f}",
                   ExpectedCompletionDate=None if job.begin is None else job.begin + job.duration,
                   BytesTransferred=job.f.get("BackupSizeInBytes") if job.final == "COMPLETED" else 0)
        if job.begin is not None and job.status(now) != "CREATED" and not (
                job.final == "EXPIRED" and job.message == START_WINDOW_MSG):
            out["InitiationDate"] = job.begin + 0.25 * job.duration
        return drop_none(out)

    def describe_backup_job(self):
        return self._out(self._backup_job_out(self._described("backup", self.uri_match["backupJobId"]), time.time()))

    def list_backup_jobs(self):
        p = self._p()
        jobs = [(seq, j) for seq, j in self._listed("backup", self._backup_job_out) if all((
            p.get("ByResourceArn") in (None, j["ResourceArn"]), p.get("ByState") in (None, j["State"]),
            p.get("ByBackupVaultName") in (None, j["BackupVaultName"]),
            p.get("ByResourceType") in (None, j["ResourceType"]),
            p.get("ByAccountId") in (None, j["AccountId"]),
            date_filters(p, j["CreationDate"], j.get("CompletionDate"))))]
        return self._out(paginate(jobs, p, "BackupJobs"))

    # -- copy jobs
    def start_copy_job(self):
        p = self._p()
        self._require(p, "RecoveryPointArn", "SourceBackupVaultName", "DestinationBackupVaultArn", "IamRoleArn")
        if not ROLE_ARN.match(p["IamRoleArn"]):
            raise bad_value(f"Invalid IamRoleArn: {p['IamRoleArn']}")
        self._may_pass(p["IamRoleArn"])
        lifecycle = check_lifecycle(p.get("Lifecycle"))
        job = self._replay("copy", p)
        replayed = job is not None
        if job is None:
            source = self._usable_point(self._point(p["SourceBackupVaultName"], p["RecoveryPointArn"]))
            if not VAULT_ARN.match(p["DestinationBackupVaultArn"]):
                raise bad_value(f"Invalid DestinationBackupVaultArn: {p['DestinationBackupVaultArn']}")
            doom = None
            if not source["RecoveryPointArn"].startswith("arn:aws:backup:"):
                msg = ("Copy of this DynamoDB backup is not supported: cross-Region and cross-account copies "
                       "require AWS Backup advanced features for DynamoDB (recovery point is not fully managed "
                       "by AWS Backup).")
                if CONTROL.non_advanced_copy == "reject":
                    raise BackupError("InvalidRequestException", msg)
                doom = ("FAILED", msg)
            fields = {
                "SourceBackupVaultArn": source["BackupVaultArn"], "SourceRecoveryPointArn": source["RecoveryPointArn"],
                "DestinationBackupVaultArn": p["DestinationBackupVaultArn"], "DestinationVaultType": "BACKUP_VAULT",
                "DestinationRecoveryPointLifecycle": lifecycle, "ResourceArn": source["ResourceArn"],
                "ResourceType": "DynamoDB", "ResourceName": source["ResourceName"],
                "BackupSizeInBytes": source["BackupSizeInBytes"], "IamRoleArn": p["IamRoleArn"],
                "IsParent": False, "_source": source}
            job = start_job("copy", self.current_account, self.region, p.get("IdempotencyToken"), fields, doom,
                            resource=source["ResourceArn"], delay=realism.CopyJobsQueue.delay(REALISM))
        out = {"CopyJobId": job.id, "CreationDate": job.created, "IsParent": False}
        return self._out(self._replayed(out) if replayed else out)

    @staticmethod
    def _copy_job_out(job, now):
        out = job.common(now)
        out.update(CopyJobId=job.id, State=job.status(now))
        return drop_none(out)

    def describe_copy_job(self):
        job = self._described("copy", self.uri_match["copyJobId"])
        return self._out({"CopyJob": self._copy_job_out(job, time.time())})

    def list_copy_jobs(self):
        p = self._p()
        jobs = [(seq, j) for seq, j in self._listed("copy", self._copy_job_out) if all((
            p.get("ByResourceArn") in (None, j["ResourceArn"]), p.get("ByState") in (None, j["State"]),
            p.get("ByResourceType") in (None, j["ResourceType"]),
            p.get("ByDestinationVaultArn") in (None, j["DestinationBackupVaultArn"]),
            p.get("BySourceRecoveryPointArn") in (None, j["SourceRecoveryPointArn"]),
            p.get("ByAccountId") in (None, j["AccountId"]),
            date_filters(p, j["CreationDate"], j.get("CompletionDate"))))]
        return self._out(paginate(jobs, p, "CopyJobs"))

    # -- restore jobs
    def start_restore_job(self):
        p = self._p()
        self._require(p, "RecoveryPointArn", "Metadata")
        if p.get("IamRoleArn"):
            if not ROLE_ARN.match(p["IamRoleArn"]):
                raise bad_value(f"Invalid IamRoleArn: {p['IamRoleArn']}")
            self._may_pass(p["IamRoleArn"])
        job = self._replay("restore", p)
        replayed = job is not None
        if job is None:
            point = self._st.points.get(p["RecoveryPointArn"])
            if point is None:
                raise not_found(f"Recovery point {p['RecoveryPointArn']} not found.")
            self._usable_point(point)
            if p.get("ResourceType") not in (None, "DynamoDB"):
                raise bad_value(f"ResourceType {p['ResourceType']} does not match the recovery point (DynamoDB).")
            meta = {k.lower(): v for k, v in p["Metadata"].items()}
            name = meta.get("targettablename")
            if not name or not re.match(r"^[a-zA-Z0-9_.-]{3,255}$", name):
                raise bad_value("Metadata targetTableName is missing or not a valid DynamoDB table name.")
            if meta.get("encryptiontype") not in (None, "Default", "KMS"):
                raise bad_value("Metadata encryptionType must be Default or KMS.")
            if meta.get("kmsmasterkeyarn") and meta.get("encryptiontype") != "KMS":
                raise bad_value("Metadata kmsMasterKeyArn requires encryptionType KMS.")
            doom = None
            if meta.get("encryptiontype") is None and not point["ResourceArn"].startswith(
                    f"arn:aws:dynamodb:{self.region}:"):
                doom = ("FAILED", "An encryption type (encryptionType) must be specified when restoring a "
                                  "DynamoDB backup into a different Region.")
            limit = REALISM["max_restores"]  # realism.RestoresAreLimited
            if limit and restores_in_progress(self.current_account, self.region, time.time()) >= limit:
                raise BackupError("LimitExceededException", realism.RestoresAreLimited.MESSAGE)
            fields = {
                "RecoveryPointArn": point["RecoveryPointArn"], "SourceResourceArn": point["ResourceArn"],
                "BackupVaultArn": point["BackupVaultArn"], "BackupSizeInBytes": point["BackupSizeInBytes"],
                "IamRoleArn": p.get("IamRoleArn"), "ResourceType": "DynamoDB",
                "RecoveryPointCreationDate": point["CreationDate"], "IsParent": False,
                "_point": point, "_meta": meta}
            job = start_job("restore", self.current_account, self.region, p.get("IdempotencyToken"), fields, doom)
        out = {"RestoreJobId": job.id}
        return self._out(self._replayed(out) if replayed else out)

    @staticmethod
    def _restore_job_out(job, now):
        out = job.common(now)
        out.update(RestoreJobId=job.id, Status=job.status(now), PercentDone=f"{job.percent(now):.1f}",
                   ExpectedCompletionTimeMinutes=max(1, math.ceil(job.duration / 60)))
        return drop_none(out)

    def describe_restore_job(self):
        return self._out(self._restore_job_out(self._described("restore", self.uri_match["restoreJobId"]),
                                               time.time()))

    def list_restore_jobs(self):
        p = self._p()
        jobs = [(seq, j) for seq, j in self._listed("restore", self._restore_job_out) if all((
            p.get("ByStatus") in (None, j["Status"]), p.get("ByResourceType") in (None, j["ResourceType"]),
            p.get("ByAccountId") in (None, j["AccountId"]),
            date_filters(p, j["CreationDate"], j.get("CompletionDate"))))]
        return self._out(paginate(jobs, p, "RestoreJobs"))

    # -- recovery points
    def list_recovery_points_by_backup_vault(self):
        p = self._p()
        self._vault(p["BackupVaultName"])
        points = [(rp["_seq"], public(rp)) for rp in self._points_newest_first()
                  if rp["BackupVaultName"] == p["BackupVaultName"]
                  and p.get("ByResourceArn") in (None, rp["ResourceArn"])
                  and p.get("ByResourceType") in (None, rp["ResourceType"])
                  and p.get("ByBackupPlanId") is None and p.get("ByParentRecoveryPointArn") is None
                  and date_filters(p, rp["CreationDate"])]
        points = [(seq, {k: v for k, v in rp.items() if k != "StorageClass"}) for seq, rp in points]
        return self._out(paginate(points, p, "RecoveryPoints"))

    def list_recovery_points_by_resource(self):
        p = self._p()
        points = []
        for rp in self._points_newest_first():
            if rp["ResourceArn"] != p["ResourceArn"]:
                continue
            if p.get("ManagedByAWSBackupOnly") and not rp["RecoveryPointArn"].startswith("arn:aws:backup:"):
                continue
            points.append((rp["_seq"], drop_none({
                "RecoveryPointArn": rp["RecoveryPointArn"], "CreationDate": rp["CreationDate"],
                "Status": rp["Status"], "EncryptionKeyArn": rp.get("EncryptionKeyArn"),
                "BackupSizeBytes": rp["BackupSizeInBytes"], "IsParent": False,
                "ResourceName": rp["ResourceName"], "VaultType": rp["VaultType"],
                "EncryptionKeyType": rp.get("EncryptionKeyType")})))
        return self._out(paginate(points, p, "RecoveryPoints"))

    def _points_newest_first(self):
        return sorted(self._st.points.values(), key=lambda rp: -rp["_seq"])

    def describe_recovery_point(self):
        p = self._p()
        return self._out(public(self._point(p["BackupVaultName"], p["RecoveryPointArn"])))

    def get_recovery_point_restore_metadata(self):
        p = self._p()
        rp = self._point(p["BackupVaultName"], p["RecoveryPointArn"])
        return self._out({"BackupVaultArn": rp["BackupVaultArn"], "RecoveryPointArn": rp["RecoveryPointArn"],
                          "ResourceType": "DynamoDB",
                          "RestoreMetadata": {"originalTableName": rp["ResourceName"]}})

    def delete_recovery_point(self):
        p = self._p()
        rp = self._point(p["BackupVaultName"], p["RecoveryPointArn"])
        if getattr(self._vault(p["BackupVaultName"]), "locked", False):
            # [BC-b] PutBackupVaultLockConfiguration: Vault Lock "prevents attempts to delete any
            # recovery point stored in or created in a backup vault". The wording is the emulator's.
            raise BackupError("InvalidRequestException",
                              f"Recovery point {rp['RecoveryPointArn']} cannot be deleted: backup vault "
                              f"{p['BackupVaultName']} is protected by AWS Backup Vault Lock.")
        if rp.get("Status") == "DELETING":
            raise BackupError("InvalidResourceStateException",
                              "Recovery point is already being deleted.")
        for job in PENDING:
            if job.kind == "copy" and job.f["_source"] is rp:
                raise BackupError("InvalidResourceStateException",
                                  "Recovery point is being copied by an ongoing copy job.")
        seconds = REALISM["delete_seconds"]
        if seconds:  # realism.RecoveryPointDeletionIsAsynchronous
            rp["Status"] = "DELETING"
            REALISM.add_timer(time.time() + seconds, ("point", self.current_account, self.region,
                                                      rp["RecoveryPointArn"]))
        else:
            remove_point(self.current_account, self.region, rp["RecoveryPointArn"])
        return self._out({})

    def list_backup_vaults(self):
        size = REALISM["page_size"]
        if not size:
            return super().list_backup_vaults()
        # realism.ListsArePaginated (moto's own version returns every vault at once); the
        # NextToken names the last vault returned, in creation order.
        p = self._p()
        n = p.get("MaxResults")
        if n is not None and not 1 <= int(n) <= 1000:
            raise bad_value("MaxResults must be between 1 and 1000.")
        vaults = sorted(self.backup_backend.list_backup_vaults(), key=lambda v: (v.creation_date, v.backup_vault_name))
        token = p.get("NextToken")
        if token:
            try:
                after = (float(token.split(":", 1)[0]), token.split(":", 1)[1])
            except (ValueError, IndexError):
                raise bad_value("Invalid NextToken.")
            vaults = [v for v in vaults if (v.creation_date, v.backup_vault_name) > after]
        size = realism.ListsArePaginated.cap(int(n or 1000), size)
        page = vaults[:size]
        return self._out({"BackupVaultList": [v.to_list_dict() for v in page],
                          "NextToken": f"{page[-1].creation_date!r}:{page[-1].backup_vault_name}"
                          if len(vaults) > size else None})

    def list_tags(self):
        """ListTags (`GET /tags/{resourceArn}/`). moto reads the ARN as the path's second-last
        segment, which holds only with the trailing slash: the Rust SDK sends none, and got the
        tags of a resource called `tags`. Read the ARN after `/tags/` instead."""
        path = urllib.parse.urlsplit(self.path).path
        arn = urllib.parse.unquote(path.split("/tags/", 1)[1].rstrip("/"))
        return json.dumps({"Tags": self.backup_backend.list_tags(resource_arn=arn)})

    def create_backup_vault(self):
        """moto's, plus the key of a vault created without EncryptionKeyArn: the account's AWS
        managed aws/backup key (create-a-vault.html: without a key of your own, the vault is
        encrypted with the AWS managed key for AWS Backup), which DescribeBackupVault and
        ListBackupVaults then name, as AWS does."""
        out = super().create_backup_vault()
        vault = self.backup_backend.vaults[json.loads(out)["BackupVaultName"]]
        if not vault.encryption_key_arn:
            vault.encryption_key_arn = aws_backup_key(self.current_account, self.region)
        return out

    # -- vault access policies ([BC-b] Put/Get/DeleteBackupVaultAccessPolicy,
    #    PUT/GET/DELETE /backup-vaults/{backupVaultName}/access-policy); kept on moto's Vault
    def put_backup_vault_access_policy(self):
        p = self._p()
        vault = self._vault(p["BackupVaultName"])
        self._require(p, "Policy")
        if cross_account.parse_policy(p["Policy"]) is None:
            raise bad_value("Invalid vault access policy: it must be a JSON policy document with a Statement.")
        vault._drover_access_policy = p["Policy"]
        return self._out({})

    def get_backup_vault_access_policy(self):
        p = self._p()
        vault = self._vault(p["BackupVaultName"])
        policy = getattr(vault, "_drover_access_policy", None)
        if policy is None:
            raise not_found(f"Backup vault {vault.backup_vault_name} has no access policy.")
        return self._out({"BackupVaultName": vault.backup_vault_name, "BackupVaultArn": vault.backup_vault_arn,
                          "Policy": policy})

    def delete_backup_vault_access_policy(self):
        p = self._p()
        self._vault(p["BackupVaultName"])._drover_access_policy = None
        return self._out({})

    # -- global settings ([BC-b] DescribeGlobalSettings GET /global-settings, UpdateGlobalSettings
    #    PUT /global-settings): one set for the organization (cross_account.Organization)
    def describe_global_settings(self):
        # "Returns an error if the account is not a member of an Organizations organization": the
        # model's InvalidRequestException, with AWS's message (cloudquery/cq-provider-aws#817).
        if not ORG.member(self.current_account):
            raise BackupError("InvalidRequestException", "Your account is not a member of an organization.")
        return self._out({"GlobalSettings": dict(ORG.settings), "LastUpdateTime": ORG.last_update})

    def update_global_settings(self):
        p = self._p()
        settings = p.get("GlobalSettings")
        if not settings:
            raise BackupError("MissingParameterValueException", "GlobalSettings is required.")
        for name, value in settings.items():
            if name not in cross_account.GLOBAL_SETTING_NAMES:
                raise bad_value(f"Unknown global setting {name} (known: "
                                f"{', '.join(cross_account.GLOBAL_SETTING_NAMES)}).")
            if not isinstance(value, str) or value.lower() not in ("true", "false"):
                raise bad_value(f"The value of {name} must be true or false.")
        # "Returns an error if the account is not an Organizations management account."
        if ORG.management is None or ORG.management != self.current_account:
            raise BackupError("InvalidRequestException",
                              "Your account is not the management account of an organization: only the "
                              "management account can update the global settings.")
        ORG.settings.update({name: value.lower() for name, value in settings.items()})
        ORG.last_update = stamp()
        return self._out({})

    def describe_backup_vault(self):
        # moto's own version omits NumberOfRecoveryPoints (attribute name mismatch)
        vault = self.backup_backend.describe_backup_vault(self.path.split("/")[-1])
        return self._out({**vault.to_list_dict(), "VaultType": "BACKUP_VAULT", "VaultState": "AVAILABLE"})

    def delete_backup_vault(self):
        name = self.path.split("/")[-1]
        if any(rp["BackupVaultName"] == name for rp in self._st.points.values()):
            raise BackupError("InvalidRequestException",
                              "Backup vault cannot be deleted because it contains recovery points.")
        return super().delete_backup_vault()


# Register: every moto backup route plus the ones moto lacks is served by the subclass.
NEW_ROUTES = (
    "{0}/backup-jobs/?$", "{0}/backup-jobs/(?P<backupJobId>[^/]+)$",
    "{0}/copy-jobs/?$", "{0}/copy-jobs/(?P<copyJobId>[^/]+)$",
    "{0}/restore-jobs/?$", "{0}/restore-jobs/(?P<restoreJobId>[^/]+)$",
    "{0}/account-settings$",
    "{0}/global-settings$",
    "{0}/backup-vaults/(?P<backupVaultName>[^/]+)/access-policy$",
    "{0}/backup-vaults/(?P<backupVaultName>[^/]+)/recovery-points/$",
    "{0}/backup-vaults/(?P<backupVaultName>[^/]+)/recovery-points/(?P<recoveryPointArn>.+)$",
    "{0}/resources/(?P<resourceArn>.+)/recovery-points/$",
)
for _route in list(backup_urls.url_paths) + list(NEW_ROUTES):
    backup_urls.url_paths[_route] = DroverBackupResponse.dispatch

# The realism layer's hooks into moto's DynamoDB (each a no-op while its knob is off).
realism.install(REALISM, LOCK, dynamodb_backends)
# STS AssumeRole as AWS enforces it (the role exists, its trust policy allows the caller).
cross_account.install(LOCK)


def restores_in_progress(account, region, now):
    """Restores of any type still running in an account and Region (realism.RestoresAreLimited):
    unfinished StartRestoreJob jobs, and point-in-time restores whose table is still restoring."""
    jobs = sum(1 for j in PENDING if j.kind == "restore" and (j.account, j.region) == (account, region))
    tables = dynamodb_backends[account][region].tables.values() if account in dynamodb_backends else ()
    return jobs + sum(1 for t in tables if isinstance(t, pitr.PointInTimeRestoredTable)
                      and now < (t.__dict__.get("_drover_settle") or (0, 0))[1])


# DynamoDB point-in-time recovery (issue 15): item history while PITR is on, RestoreTableToPointInTime.
pitr.install(REALISM, dynamodb_backends, restores_in_progress)


# ---------------------------------------------------------------- S3 conditional writes
#
# [BC-s] (botocore s3/2006-03-01) PutObject / CompleteMultipartUpload If-None-Match: "Uploads the
# object only if the object key name does not already exist in the bucket specified. Otherwise,
# Amazon S3 returns a 412 Precondition Failed error." If-Match: "... only if the ETag ... matches".
# moto 5.2.5 checks these headers (S3Response.put_object, delete_object, the CompleteMultipartUpload
# branch of _key_response_post) and writes a few statements later, with no lock; the server is
# threaded, so two concurrent `If-None-Match: *` PUTs could both succeed. Every key- and
# bucket-level S3 operation is therefore served under LOCK, which makes check-then-write atomic as
# in S3. The request body is read before (S3Response.setup_class), so no upload holds the lock.
# --no-s3-lock (debug only) serves S3 as moto does, to show that the lock is what matters.
S3_LOCKED = {"on": True}


def _lock_s3(name):
    orig = getattr(S3Response, name)

    @functools.wraps(orig)
    def locked(self, *args, **kwargs):
        if not S3_LOCKED["on"]:
            return orig(self, *args, **kwargs)
        with LOCK:
            return orig(self, *args, **kwargs)
    setattr(S3Response, name, locked)


def _delay_s3_write(name):
    """Realism knob `s3_write_delay_ms` (debug, off even under --realism): sleeps between moto's
    precondition check and its write, to widen the window a missing lock would leave open."""
    orig = getattr(S3Backend, name)

    @functools.wraps(orig)
    def delayed(self, *args, **kwargs):
        ms = REALISM.knobs.get("s3_write_delay_ms") or 0
        if ms:
            time.sleep(ms / 1000.0)
        return orig(self, *args, **kwargs)
    setattr(S3Backend, name, delayed)


def _delete_object_if_match_any(orig):
    """[BC-s] DeleteObject If-Match: "If-Match does accept a string value of an '*' (asterisk)
    character to denote a match of any ETag." moto 5.2.5 compares '*' with the ETag (412): an
    existing object's delete goes on here without the header (a missing one stays moto's 404)."""

    @functools.wraps(orig)
    def delete_object(self):
        if (self.headers.get("If-Match") or "").strip() == "*" and \
                self.backend.get_object(self.bucket_name, self.parse_key_name()) is not None:
            headers = self.headers
            self.headers = Headers(list(headers.items()))
            self.headers.remove("If-Match")
            try:
                return orig(self)
            finally:
                self.headers = headers
        return orig(self)
    return delete_object


def _versioning_configuration(orig):
    """GetBucketVersioning's answer is `<VersioningConfiguration xmlns="...">` (the GetBucketVersioning
    API reference's response syntax; the Smithy model's xmlName). moto 5.2.5 serializes it from
    botocore's model, which names no element, as `<GetBucketVersioningResponse>`: botocore ignores the
    root, the AWS SDK for Rust refuses it ("expected VersioningConfiguration")."""

    @functools.wraps(orig)
    def get_bucket_versioning(self):
        status, headers, body = orig(self)
        if isinstance(body, bytes):
            body = body.replace(b"GetBucketVersioningResponse", b"VersioningConfiguration")
        elif isinstance(body, str):
            body = body.replace("GetBucketVersioningResponse", "VersioningConfiguration")
        return status, headers, body
    return get_bucket_versioning


for _name in ("_key_response", "_bucket_response"):
    _lock_s3(_name)
for _name in ("put_object", "delete_object", "complete_multipart_upload"):
    _delay_s3_write(_name)
S3Response.delete_object = _delete_object_if_match_any(S3Response.delete_object)
S3Response.get_bucket_versioning = _versioning_configuration(S3Response.get_bucket_versioning)


# ---------------------------------------------------------------- WSGI wrapper

def _json_response(start_response, status, body, headers=(), content_type="application/json"):
    data = json.dumps(body).encode()
    start_response(status, [("Content-Type", content_type), ("Content-Length", str(len(data))), *headers])
    return [data]


def _operation(environ):
    """(service, operation) of an AWS request, from the SigV4 scope and the model."""
    m = re.search(r"Credential=[^/]+/\d+/[^/]+/([^/]+)/aws4_request", environ.get("HTTP_AUTHORIZATION", ""))
    service = m.group(1) if m else None
    if service == "dynamodb":
        return service, environ.get("HTTP_X_AMZ_TARGET", "").split(".")[-1]
    if service in ("backup", "s3"):  # S3: path-style addressing (PutObject, ListObjectsV2, ...)
        try:
            return service, get_service_router(service).match(Request(environ))[0].name
        except Exception:  # unmatched path: let moto answer it
            return service, None
    return service, None


def _fault_response(environ, start_response, service, fault):
    environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))  # drain the unused request body
    code, msg = fault["code"], fault["message"]
    status = f"{fault['status']} {HTTPStatus(fault['status']).phrase}"
    if service == "dynamodb":
        return _json_response(start_response, status,
                              {"__type": f"com.amazonaws.dynamodb.v20120810#{code}", "message": msg},
                              [("x-amzn-ErrorType", code)], "application/x-amz-json-1.0")
    if service == "s3":
        # S3's REST-XML error (ErrorResponses.html): <Error><Code/><Message/><RequestId/></Error>;
        # a HEAD answer has no body, as in S3 (SDKs then go by the status).
        request_id = uuid.uuid4().hex[:16].upper()
        data = b"" if environ.get("REQUEST_METHOD") == "HEAD" else (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Error><Code>{html.escape(code)}</Code><Message>{html.escape(msg)}</Message>"
            f"<RequestId>{request_id}</RequestId></Error>").encode()
        start_response(status, [("Content-Type", "application/xml"), ("Content-Length", str(len(data))),
                                ("x-amz-request-id", request_id)])
        return [data]
    return _json_response(start_response, status, {"__type": code, "Code": code, "Message": msg, "message": msg},
                          [("x-amzn-ErrorType", code)])


def _realism_fault_response(environ, start_response, service, fault):
    """realism.ServersFault: a modelled server fault, or a plain 503 with an empty body."""
    code, status, message = fault
    if code is None:
        environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        start_response("503 Service Unavailable", [("Content-Length", "0")])
        return [b""]
    return _fault_response(environ, start_response, service, {"code": code, "status": status, "message": message})


# CloudWatch over Smithy RPC v2 CBOR (issue 16): the route, `cloudwatch:` call names, CBOR faults.
_operation, _fault_response = cbor_front.install(LOCK, _operation, _fault_response)
# EventBridge PutEvents and SNS Publish (issue 16): validations, missing buses, entry faults, names, SNS faults.
_operation, _fault_response = notify.install(LOCK, _operation, _fault_response, lambda: CONTROL)


# Default messages of injected faults (POST /_drover/throttle), by code; the emulator's wording.
FAULT_MESSAGES = {"ConditionalRequestConflict": "A conflicting operation occurred during the conditional "
                                                "request. Retry the request."}


def _window_minute_seconds(value):
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 < value <= 3600:
        raise ValueError(f"bad window_minute_seconds={value!r} (seconds per window minute, 0 < x <= 3600)")
    return float(value)


def _control(environ, start_response):
    path, method = environ.get("PATH_INFO", ""), environ["REQUEST_METHOD"]
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = json.loads(environ["wsgi.input"].read(length) or b"{}") if length else {}
        if not isinstance(body, dict):
            raise ValueError("body must be a JSON object")
        if path == "/_drover/calls" and method == "GET":
            return _json_response(start_response, "200 OK", CALL_LOG.describe())
        if path == "/_drover/organization" and method in ("GET", "POST"):
            if method == "POST":
                ORG.configure(body)  # ValueError on bad input; nothing changed then
            return _json_response(start_response, "200 OK", ORG.describe())
        if path == "/_drover/config" and method == "GET":
            pass
        elif path == "/_drover/config" and method == "POST":
            for kind, secs in (body.get("durations") or {}).items():
                if kind not in ("default",) + KINDS or not (
                        (secs is None and kind != "default") or (isinstance(secs, (int, float)) and 0 <= secs <= 3600)):
                    raise ValueError(f"bad duration {kind}={secs!r}")
                CONTROL.durations[kind] = secs
            if "advanced_default" in body:
                CONTROL.advanced_default = bool(body["advanced_default"])
            if "non_advanced_copy" in body:
                if body["non_advanced_copy"] not in ("fail_job", "reject"):
                    raise ValueError("non_advanced_copy must be fail_job or reject")
                CONTROL.non_advanced_copy = body["non_advanced_copy"]
            if "restore_kms_override" in body:
                CONTROL.restore_kms_override = body["restore_kms_override"]
            if "cross_account_aws_managed_key" in body:
                if body["cross_account_aws_managed_key"] not in ("fail_job", "allow"):
                    raise ValueError("cross_account_aws_managed_key must be fail_job or allow")
                CONTROL.cross_account_aws_managed_key = body["cross_account_aws_managed_key"]
            if "unseen_jobs" in body:
                secs = body["unseen_jobs"]
                if not isinstance(secs, (int, float)) or isinstance(secs, bool) or not 0 <= secs <= 600:
                    raise ValueError(f"bad unseen_jobs={secs!r} (seconds, 0-600)")
                CONTROL.unseen_jobs = float(secs)
            if "window_minute_seconds" in body:
                CONTROL.window_minute_seconds = _window_minute_seconds(body["window_minute_seconds"])
            if "missing_event_bus" in body:
                if body["missing_event_bus"] not in ("fail_entry", "accept"):
                    raise ValueError("missing_event_bus must be fail_entry or accept")
                CONTROL.missing_event_bus = body["missing_event_bus"]
        elif path == "/_drover/realism" and method == "POST":
            body = dict(body)
            wms = _window_minute_seconds(body.pop("window_minute_seconds")) if "window_minute_seconds" in body else None
            REALISM.update(body)  # all or nothing; ValueError on an unknown key or a bad value
            if wms is not None:
                CONTROL.window_minute_seconds = wms
        elif path == "/_drover/fail-jobs" and method == "POST":
            kind, count = body.get("kind"), int(body.get("count", 1))
            state = body.get("state", "FAILED")
            if kind not in KINDS or state not in FAULT_STATES[kind] or not 0 < count <= 1000:
                raise ValueError(f"kind must be one of {KINDS}; state one of {FAULT_STATES.get(kind)}; 0<count<=1000")
            msg = body.get("message") or f"Injected {state.lower()} by drover_moto."
            CONTROL.job_faults[kind].extend([(state, msg)] * count)
        elif path == "/_drover/throttle" and method == "POST":
            count, status = int(body.get("count", 1)), int(body.get("status", 400))
            if not 0 < count <= 1000 or not 400 <= status <= 599 or status not in HTTPStatus._value2member_map_:
                raise ValueError("need 0<count<=1000 and a standard HTTP status in 400..599")
            code = body.get("code", "ThrottlingException")
            CONTROL.call_faults.append({"operation": body.get("operation", "*"), "remaining": count,
                                        "code": code, "status": status,
                                        "message": body.get("message") or FAULT_MESSAGES.get(code, "Rate exceeded")})
        elif path == "/_drover/fail-entries" and method == "POST":
            # The next `count` PutEvents entries that would succeed fail with that ErrorCode instead
            # (the call answers 200 with FailedEntryCount), and are not delivered.
            count, code = int(body.get("count", 1)), body.get("code", "ThrottlingException")
            operation = body.get("operation", "events:PutEvents")
            if not 0 < count <= 1000 or code not in notify.ENTRY_FAULT_CODES or \
                    operation not in ("PutEvents", "events:PutEvents", "events:*"):
                raise ValueError(f"need 0<count<=1000, code one of {notify.ENTRY_FAULT_CODES}, "
                                 "operation events:PutEvents")
            CONTROL.entry_faults.append({"operation": operation, "remaining": count, "code": code,
                                         "message": body.get("message") or notify.ENTRY_FAULT_MESSAGES[code]})
        elif path == "/_drover/slow" and method == "POST":
            # The next `count` calls of `operation` are answered only after `delay` seconds
            # (then served normally): a client that times out first never sees the answer,
            # though the call took effect, as with a slow AWS endpoint.
            count, delay = int(body.get("count", 1)), float(body.get("delay", 1.0))
            if not 0 < count <= 1000 or not 0 < delay <= 30:
                raise ValueError("need 0<count<=1000 and 0<delay<=30")
            CONTROL.call_faults.append({"operation": body.get("operation", "*"), "remaining": count,
                                        "delay": delay})
        elif path == "/_drover/reset" and method == "POST":
            CONTROL.reset()
            CALL_LOG.reset()
            moto = body.get("moto", True)
            REALISM.reset(clear_state=moto)  # the launch-time realism settings, RNG reseeded
            if moto:
                PENDING.clear()
                BackendDict.reset()
                ORG.reset()
        else:
            return _json_response(start_response, "404 Not Found", {"error": f"no control route {method} {path}"})
    except (ValueError, TypeError) as e:
        return _json_response(start_response, "400 Bad Request", {"error": str(e)})
    return _json_response(start_response, "200 OK", CONTROL.describe())


class CallLog:
    """The AWS calls answered since the launch or the last POST /_drover/reset, by
    `service:Operation` and by account (GET /_drover/calls); a call answered with a fault
    (injected, realism's, or the 503 of a stopping server) counts, and also counts under
    `faulted`. Kept under LOCK; saved with --state-file."""

    def __init__(self):
        self.reset()

    def reset(self):
        self.by_operation, self.faulted, self.by_account = {}, {}, {}

    def record(self, account, name, faulted=False):
        with LOCK:
            self.by_operation[name] = self.by_operation.get(name, 0) + 1
            ops = self.by_account.setdefault(account, {})
            ops[name] = ops.get(name, 0) + 1
            if faulted:
                self.faulted[name] = self.faulted.get(name, 0) + 1

    def describe(self):
        with LOCK:
            return {"total": sum(self.by_operation.values()), "by_operation": dict(sorted(self.by_operation.items())),
                    "faulted_total": sum(self.faulted.values()), "faulted": dict(sorted(self.faulted.items())),
                    "by_account": {a: dict(sorted(ops.items())) for a, ops in sorted(self.by_account.items())}}


CALL_LOG = CallLog()


def _form_body(environ):
    """The parameters of a form-encoded (query protocol: STS, IAM) request body, leaving the body
    readable again for moto."""
    if not environ.get("CONTENT_TYPE", "").startswith("application/x-www-form-urlencoded"):
        return {}
    data = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
    environ["wsgi.input"] = io.BytesIO(data)
    return urllib.parse.parse_qs(data.decode("utf-8", "replace"))


def _call_name(environ, service, op):
    """`service:Operation` of an AWS call, for the call log: `_operation`'s, else the
    X-Amz-Target's (JSON protocols: KMS, ...) or the Action parameter's (query protocol);
    `?` for what cannot be told."""
    if op is None:
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        if target:
            op = target.split(".")[-1]
        else:
            action = (urllib.parse.parse_qs(environ.get("QUERY_STRING", "")).get("Action")
                      or _form_body(environ).get("Action"))
            op = action[0] if action else None
    return f"{service or '?'}:{op or '?'}"


def _account(environ):
    """The account moto 5.2.5 serves a call as (BaseResponse.get_current_account): MOTO_ACCOUNT_ID,
    else the x-moto-account-id header, else the account of the SigV4 access key
    (moto.iam.models.get_account_id_from: keys made by IAM CreateAccessKey or STS AssumeRole map
    to their account; any other key, to the default 123456789012)."""
    if "MOTO_ACCOUNT_ID" in os.environ:
        return os.environ["MOTO_ACCOUNT_ID"]
    if environ.get("HTTP_X_MOTO_ACCOUNT_ID"):
        return environ["HTTP_X_MOTO_ACCOUNT_ID"]
    m = BaseResponse.access_key_regex.search(environ.get("HTTP_AUTHORIZATION", ""))
    if m:
        key = m.group(1)
    else:
        query = urllib.parse.parse_qs(environ.get("QUERY_STRING", ""))
        key = (query.get("AWSAccessKeyId") or _form_body(environ).get("AWSAccessKeyId") or ["AKIAEXAMPLE"])[0]
    return get_account_id_from(key)


def _log_call(environ, service, op, faulted=False):
    """Counts an AWS call (never /_drover/ or moto's own /moto-api/) in CALL_LOG."""
    path = environ.get("PATH_INFO", "")
    if not path.startswith(("/_drover/", "/moto-api")):
        CALL_LOG.record(_account(environ), _call_name(environ, service, op), faulted)


class Calls:
    """Calls being served, so that a stopping server saves only once every call it
    acknowledged has taken effect, and refuses (503) the calls that arrive after that
    (on kept-alive connections, which outlive the listening socket)."""

    def __init__(self):
        self.done = threading.Condition(LOCK)
        self.running = 0
        self.stopping = False

    def enter(self):
        with LOCK:
            if self.stopping:
                return False
            self.running += 1
            return True

    def leave(self):
        with LOCK:
            self.running -= 1
            self.done.notify_all()

    def stop(self, timeout):
        """Refuses new calls and waits (bounded) for the running ones to take effect."""
        with LOCK:
            self.stopping = True
            self.done.wait_for(lambda: self.running == 0, timeout)


CALLS = Calls()
STOPPING = {"code": "ServiceUnavailableException", "message": "The service is restarting.", "status": 503}
STOPPING_S3 = {**STOPPING, "code": "ServiceUnavailable"}  # S3's 503 code (ErrorResponses.html)


def build_app():
    moto_app = DomainDispatcherApplication(create_backend_app)

    def app(environ, start_response):
        if not CALLS.enter():
            service, op = _operation(environ)
            _log_call(environ, service, op, faulted=True)
            return _fault_response(environ, start_response, service, STOPPING_S3 if service == "s3" else STOPPING)
        try:
            return serve(environ, start_response)
        finally:
            CALLS.leave()

    def serve(environ, start_response):
        with LOCK:
            if environ.get("PATH_INFO", "").startswith("/_drover/"):
                return _control(environ, start_response)
            service, op = _operation(environ)
            fault = CONTROL.take_call_fault(service, op) if op else None
            if fault and "delay" not in fault:
                _log_call(environ, service, op, faulted=True)
                return _fault_response(environ, start_response, service, fault)
            passing = realism.ServersFault.draw(REALISM, service) if not fault else None
            _log_call(environ, service, op, faulted=bool(passing))
            if passing:
                return _realism_fault_response(environ, start_response, service, passing)
        if fault:
            time.sleep(fault["delay"])  # outside the lock: other calls go on meanwhile
        with LOCK:
            tick()
        return moto_app(environ, start_response)
    return app


# ---------------------------------------------------------------- state across restarts

def _pickle_private_key(key):
    from cryptography.hazmat.primitives import serialization
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    return _load_private_key, (pem,)


def _load_private_key(pem):
    from cryptography.hazmat.primitives import serialization
    return serialization.load_pem_private_key(pem, password=None)


def _register_key_pickling():
    """moto's KMS keys hold `cryptography` private keys, which do not pickle: save them as PEM."""
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    for cls in (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey):
        for impl in {cls, *cls.__subclasses__()}:
            copyreg.pickle(impl, _pickle_private_key)
    # The OpenSSL-backed classes are registered as virtual subclasses: register those too.
    for key in (rsa.generate_private_key(65537, 2048), ec.generate_private_key(ec.SECP256R1())):
        copyreg.pickle(type(key), _pickle_private_key)


def _pickle_versioned_keys(store):
    """moto's _VersionedKeyStore (a bucket's keys) is a dict of key -> [versions] whose items() gives
    only the latest version, so the default pickle would drop the older ones: keep every version."""
    return _load_versioned_keys, ([(k, list(dict.__getitem__(store, k))) for k in dict.keys(store)],)


def _load_versioned_keys(items):
    store = _VersionedKeyStore()
    for key, versions in items:
        dict.__setitem__(store, key, versions)
    return store


copyreg.pickle(_VersionedKeyStore, _pickle_versioned_keys)
STATE_BACKENDS = {"dynamodb": dynamodb_backends, "backup": backup_backends, "kms": kms_backends,
                  "s3": s3_backends, "iam": iam_backends, "sts": sts_backends}


def save_state(path):
    """Writes every backend drover uses, the pending jobs and the knobs (atomically)."""
    with LOCK:
        data = pickle.dumps({"backends": {k: dict(v) for k, v in STATE_BACKENDS.items()},
                             "pending": PENDING, "control": CONTROL.__dict__, "realism": REALISM.__dict__,
                             "seq": SEQ, "calls": CALL_LOG.__dict__, "organization": ORG.__dict__},
                            protocol=pickle.HIGHEST_PROTOCOL)
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def load_state(path):
    with open(path, "rb") as fh:
        data = pickle.load(fh)  # our own file, written by save_state
    with LOCK:
        for name, live in STATE_BACKENDS.items():
            live.clear()
            live.update(data["backends"].get(name) or {})  # older files have no "s3", "iam", "sts"
        PENDING[:] = data["pending"]
        CONTROL.__dict__.update(data["control"])
        REALISM.__dict__.update(data.get("realism") or {})
        SEQ.update(data.get("seq") or {})
        CALL_LOG.__dict__.update(data.get("calls") or {})
        ORG.reset()
        ORG.__dict__.update(data.get("organization") or {})


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, default=0, help="TCP port on 127.0.0.1 (0 = pick a free one)")
    ap.add_argument("--port-file", help="write the bound port here once the server is ready")
    ap.add_argument("--job-seconds", type=float, default=1.0, help="default job duration in seconds")
    ap.add_argument("--state-file", help="load the emulated state from here at start (if it exists), "
                                         "save it here on SIGTERM/SIGINT")
    ap.add_argument("--realism", action="store_true",
                    help="turn on every realism behaviour at its scaled default (see realism.py)")
    ap.add_argument("--seed", type=int, default=0, help="seed of realism's random choices (default 0)")
    ap.add_argument("--no-s3-lock", action="store_true",
                    help="debug only: serve S3 as moto does, without the lock that makes conditional "
                         "writes atomic (to show that the lock matters)")
    args = ap.parse_args(argv)
    S3_LOCKED["on"] = not args.no_s3_lock
    CONTROL.job_seconds = args.job_seconds
    CONTROL.reset()
    REALISM.launch_with(args.realism, args.seed)
    if args.state_file:
        _register_key_pickling()
        if os.path.exists(args.state_file):
            load_state(args.state_file)
    server = make_server(HOST, args.port, build_app(), threaded=True, request_handler=MotoRequestHandler)
    port = server.server_port
    os.environ["MOTO_PORT"] = str(port)

    def stop(signum, frame):
        threading.Thread(target=server.shutdown, daemon=True).start()
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    if args.port_file:
        tmp = f"{args.port_file}.tmp{os.getpid()}"
        with open(tmp, "w") as fh:
            fh.write(f"{port}\n")
        os.replace(tmp, args.port_file)
    print(f"drover_moto listening on http://{HOST}:{port}", file=sys.stderr, flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        # A delayed call sleeps at most 30 s; past that the state is saved regardless.
        CALLS.stop(timeout=35)
        if args.state_file:
            save_state(args.state_file)
        server.server_close()


if __name__ == "__main__":
    main()
