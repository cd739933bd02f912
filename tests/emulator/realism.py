"""Realism mode for drover_moto: the documented ways in which AWS is not an ideal service.

Without realism the emulator answers like an ideal service: a tag, update or delete is in
effect before the call returns, a backup holds the write made a millisecond earlier, every
list fits on one page. AWS documents the opposite. Each behaviour below is modelled on its
own, switched by its own knob (0 / False = off), with durations scaled from minutes or hours
down to seconds but keeping their shape. Every random choice comes from one
`random.Random(seed)`, so that a run reproduces.

This module is a layer: it knows moto's DynamoDB objects (patched here, from outside moto:
`install()` wraps methods of moto's `DynamoHandler`, `DynamoDBBackend` and `Table`), but not
drover_moto's AWS Backup code, which calls the functions below from its own handlers.
It must not import drover_moto (that runs as `__main__`).

State lives where it belongs, so that moto's reset clears it and `--state-file` pickles it:
per table on moto's `Table` objects (attributes `_drover_*`), per recovery point on the
point, and the knobs, RNG and timers on the `Realism` object (pickled by drover_moto).

Sources are quoted next to each behaviour: [BC-d] / [BC-b] / [BC-k] are botocore's
dynamodb/2012-08-10, backup/2018-11-15 and kms/2014-11-01 service-2.json (installed in the
venv); page names refer to docs.aws.amazon.com.
"""
import copy
import random
import time
import uuid
from datetime import timezone

# name: (kind, scaled default under --realism)
KNOBS = {
    "tag_delay": ("seconds", 1.0),
    "pitr_unavailable": ("seconds", 1.0),
    # pitr.py: LatestRestorableDateTime is this long before now ([BC-d]: "typically 5 minutes")
    "pitr_latest_lag": ("seconds", 2.0),
    "update_seconds": ("seconds", 0.5),
    "ttl_enabling": ("seconds", 0.5),
    "ttl_change_window": ("seconds", 3.0),
    "delete_seconds": ("seconds", 1.0),
    "restore_settle": ("seconds", 1.0),
    "backup_lag": ("seconds", 1.0),
    "unseen_jobs": ("seconds", 0.5),
    "page_size": ("count", 2),
    "max_restores": ("count", 4),
    "one_job_per_resource": ("flag", True),
    "copy_queue": ("seconds", 1.0),
    "fault_rate": ("rate", 0.02),
    "idempotent_replay_without_id": ("flag", True),
    # Debug, not a documented behaviour (so off even under --realism): drover_moto sleeps this many
    # ms between moto's S3 precondition check and its write (see drover_moto._delay_s3_write).
    "s3_write_delay_ms": ("count", 0),
}
OFF = {"seconds": 0.0, "count": 0, "flag": False, "rate": 0.0}
MAX_SECONDS = 3600


def _number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def parse_knob(name, value):
    """The stored value of knob `name` set to `value` (null turns it off); ValueError if bad."""
    if name not in KNOBS:
        raise ValueError(f"unknown realism knob {name!r} (known: {', '.join(KNOBS)})")
    kind = KNOBS[name][0]
    if value is None:
        return OFF[kind]
    if kind == "flag":
        if not isinstance(value, bool):
            raise ValueError(f"{name} must be true, false or null")
        return value
    if kind == "count":
        if not _number(value) or value != int(value) or not 0 <= value <= 1000:
            raise ValueError(f"{name} must be an integer 0-1000 (0 or null: off)")
        return int(value)
    if kind == "rate":
        if not _number(value) or not 0 <= value <= 1:
            raise ValueError(f"{name} must be a number 0-1 (0 or null: off)")
        return float(value)
    if not _number(value) or not 0 <= value <= MAX_SECONDS:
        raise ValueError(f"{name} must be a number of seconds 0-{MAX_SECONDS} (0 or null: off)")
    return float(value)


class Realism:
    """The knobs, the one seeded RNG and the timers of realism mode (global to the server)."""

    def __init__(self):
        self.launch = {k: OFF[kind] for k, (kind, _) in KNOBS.items()}
        self.launch_seed = 0
        self.timers = []  # [(due, key)] of lingering states to end (DELETING tables, points)
        self.reset()

    def launch_with(self, enabled, seed):
        """The settings given on the command line, which /_drover/reset restores."""
        self.launch = {k: (default if enabled else OFF[kind]) for k, (kind, default) in KNOBS.items()}
        self.launch_seed = int(seed)
        self.reset()

    def reset(self, clear_state=False):
        self.knobs = dict(self.launch)
        self.seed = self.launch_seed
        self.rng = random.Random(self.seed)
        if clear_state:
            self.timers = []

    def __getitem__(self, name):
        return self.knobs[name]

    def update(self, body):
        """Sets any subset of the knobs (and `seed`, which reseeds the RNG); all or nothing."""
        new, seed = {}, None
        for name, value in body.items():
            if name == "seed":
                if not _number(value) or value != int(value):
                    raise ValueError("seed must be an integer")
                seed = int(value)
            else:
                new[name] = parse_knob(name, value)
        self.knobs.update(new)
        if seed is not None:
            self.seed = seed
            self.rng = random.Random(seed)

    def describe(self):
        return {**self.knobs, "seed": self.seed}

    # -- timers of lingering states
    def add_timer(self, due, key):
        self.timers.append((due, key))
        self.timers.sort(key=lambda t: t[0])

    def due(self, now):
        out = []
        while self.timers and self.timers[0][0] <= now:
            out.append(self.timers.pop(0)[1])
        return out


# ================================================================ DynamoDB table states

def table_id(table):
    """A stable id for a moto Table (moto's TransactWriteItems may swap the object for a copy)."""
    if "_drover_id" not in table.__dict__:
        table._drover_id = str(uuid.uuid4())
    return table._drover_id


def table_status(table, now):
    """TableStatus as realism shows it: DELETING > CREATING (restore settling) > UPDATING > ACTIVE."""
    d = table.__dict__
    if d.get("_drover_deleting_until") is not None:
        return "DELETING"
    settle = d.get("_drover_settle")
    if settle and now < settle[0]:
        return "CREATING"
    if now < d.get("_drover_updating_until", 0):
        return "UPDATING"
    return "ACTIVE"


def became_active_at(table):
    """When the table became ACTIVE: its creation, or for a restored table the end of its CREATING phase."""
    settle = table.__dict__.get("_drover_settle")
    if settle:
        return settle[0]
    return table.created_at.replace(tzinfo=timezone.utc).timestamp()  # moto: naive UTC


def describe_table_status(table, desc, now=None):
    """Rewrites a moto TableDescription with the realism states (called by Table.describe)."""
    now = time.time() if now is None else now
    desc["TableStatus"] = table_status(table, now)
    settle = table.__dict__.get("_drover_settle")
    if settle and now < settle[1]:
        # RestoredTablesSettle: indexes are still being built while the restore is in progress.
        for gsi in desc.get("GlobalSecondaryIndexes") or []:
            gsi["IndexStatus"] = "CREATING"
        if "RestoreSummary" in desc:
            desc["RestoreSummary"]["RestoreInProgress"] = True
    return desc


class UpdateTableIsAsynchronous:
    """Knob `update_seconds`. [BC-d] UpdateTable: "UpdateTable is an asynchronous operation; while
    it's executing, the table status changes from ACTIVE to UPDATING. While it's UPDATING, you
    can't issue another UpdateTable request." ResourceInUseException: "You tried to update a
    resource that was already being updated." UpdateTimeToLive lists ResourceInUseException
    too (so it is refused while UPDATING); UpdateContinuousBackups does not (so it is not).
    UpdateTable.StreamSpecification: "You receive a ValidationException if you try to enable a
    stream on a table that already has a stream, or if you try to disable a stream on a table
    that doesn't have a stream." (moto answers ResourceInUseException "Cannot enable stream",
    and keeps the label of a disabled stream, refusing any new one: both corrected here.)"""

    @staticmethod
    def in_use(table, now, doing="change"):
        """The ResourceInUseException message for a change to a table that is not ACTIVE, or None."""
        status = table_status(table, now)
        if status == "ACTIVE":
            return None
        being = {"UPDATING": "updated", "CREATING": "created", "DELETING": "deleted"}[status]
        return f"Attempt to {doing} a resource which is still in use: Table is being {being}: {table.name}"

    @staticmethod
    def stream_problem(table, spec):
        enabled = bool((table.stream_specification or {}).get("StreamEnabled"))
        if spec.get("StreamEnabled") and enabled:
            return f"Table already has an enabled stream: TableName: {table.name}"
        if spec.get("StreamEnabled") is False and not enabled:
            return f"Table does not have an enabled stream to disable: TableName: {table.name}"
        return None

    @staticmethod
    def begin(table, now, seconds):
        table._drover_updating_until = now + seconds


class TimeToLiveChangesSlowly:
    """Knobs `ttl_enabling` and `ttl_change_window`. [BC-d] UpdateTimeToLive: "It can take up to
    one hour for the change to fully process. Any additional UpdateTimeToLive calls for the same
    table during this one hour duration result in a ValidationException." TimeToLiveStatus has
    ENABLING and DISABLING. Scaled: ENABLING/DISABLING for `ttl_enabling` s, and a second change
    within `ttl_change_window` s (AWS: one hour) is refused."""

    MESSAGE = "Time to live has been modified multiple times within a fixed interval"

    @staticmethod
    def refused(table, now):
        return now < table.__dict__.get("_drover_ttl_window_until", 0)

    @staticmethod
    def changed(table, now, enabled, enabling, window):
        if enabling:
            table._drover_ttl = {"until": now + enabling, "status": "ENABLING" if enabled else "DISABLING"}
        if window:
            table._drover_ttl_window_until = now + window

    @staticmethod
    def shown(table, ttl, now):
        pending = table.__dict__.get("_drover_ttl")
        out = dict(ttl)
        if pending and now < pending["until"]:
            out["TimeToLiveStatus"] = pending["status"]
        return out


class DeleteTableIsAsynchronous:
    """Knob `delete_seconds`. [BC-d] DeleteTable: "After a DeleteTable request, the specified table
    is in the DELETING state until DynamoDB completes the deletion. ... If a table is in CREATING
    or UPDATING states, then DynamoDB returns a ResourceInUseException. ... If table is already in
    the DELETING state, no error is returned. DynamoDB might continue to accept data read and write
    operations, such as GetItem and PutItem, on a table in the DELETING state until the table
    deletion is complete." The table keeps its name until it is gone (a restore into it fails,
    "Table already exists"); UpdateTable / UpdateTimeToLive on it give ResourceInUseException;
    tag operations give ResourceNotFoundException (its status is not ACTIVE; see TagsOfAnInactiveTable)."""

    @staticmethod
    def begin(realism, table, account, region, now, seconds):
        table._drover_deleting_until = now + seconds
        realism.add_timer(now + seconds, ("table", account, region, table.name, table_id(table)))

    @staticmethod
    def finish(dynamodb_backends, key):
        _, account, region, name, tid = key
        tables = dynamodb_backends[account][region].tables
        table = tables.get(name)
        if table is not None and table.__dict__.get("_drover_id") == tid:
            del tables[name]


class TagsOfAnInactiveTable:
    """Not a knob: follows from the CREATING / DELETING states above. [BC-d] ResourceNotFoundException:
    "The operation tried to access a nonexistent table or index. The resource might not be specified
    correctly, or its status might not be ACTIVE." TagResource on a table still CREATING answers
    "ResourceNotFoundException: Requested resource not found: ResourcArn: arn:aws:dynamodb:...
    not found" (AWS's own spelling; seen in cortexproject/cortex#1369 and cloud-custodian#3514).
    Reading: TagResource / UntagResource / ListTagsOfResource on a CREATING or DELETING table give
    that error; data-plane calls on a CREATING table give ResourceNotFoundException (only ACTIVE
    tables serve reads and writes), on a DELETING one they still work (DeleteTable's doc above)."""

    @staticmethod
    def message(arn):
        return f"Requested resource not found: ResourcArn: {arn} not found"


class TaggingIsAsynchronous:
    """Knob `tag_delay`. [BC-d] TagResource / UntagResource: "TagResource is an asynchronous
    operation. If you issue a ListTagsOfResource request immediately after a TagResource request,
    DynamoDB might return your previous tag set, if there was one, or an empty tag set. ... Wait
    for a few seconds, and then try the ListTagsOfResource request again." Stricter reading: the
    previous set is returned until `tag_delay` s have passed. The table's own tags change at once
    (a backup taken meanwhile inherits them); only ListTagsOfResource lags. (moto appends a second
    entry when a key is tagged again; here a key's new value replaces the old one.)"""

    @staticmethod
    def visible(table, now):
        versions = table.__dict__.get("_drover_tag_versions") or []
        while versions and versions[0][0] <= now:
            table._drover_tags_shown = versions.pop(0)[1]
        if not versions:
            return copy.deepcopy(table.tags)
        return copy.deepcopy(table._drover_tags_shown)

    @staticmethod
    def before_change(table, now):
        TaggingIsAsynchronous.visible(table, now)
        versions = table.__dict__.setdefault("_drover_tag_versions", [])
        if not versions:
            table._drover_tags_shown = copy.deepcopy(table.tags)

    @staticmethod
    def after_change(table, now, delay):
        merged = {}
        for tag in table.tags:
            merged[tag["Key"]] = tag
        table.tags = list(merged.values())
        table._drover_tag_versions.append((now + delay, copy.deepcopy(table.tags)))


class ContinuousBackupsEnableLate:
    """Knob `pitr_unavailable`. [BC-d] UpdateContinuousBackups errors include
    ContinuousBackupsUnavailableException (HTTP 400): "Backups have not yet been enabled for this
    table." Projects wait and retry after creating a table (scalar-labs/scalardb#347, nasa/cumulus
    #1116: PITR "fails to be enabled if it is running against newly created tables"). Scaled: for
    `pitr_unavailable` s after the table became ACTIVE (created, or restored and out of CREATING)."""

    MESSAGE = "Backups have not yet been enabled for this table."

    @staticmethod
    def unavailable(table, now, seconds):
        return bool(seconds) and now < became_active_at(table) + seconds


class RestoredTablesSettle:
    """Knob `restore_settle`. The restored table is not ready when the restore job says COMPLETED:
    [BC-d] TableStatus CREATING ("The table is being created"), RestoreSummary.RestoreInProgress
    ("Indicates if a restore is in progress or not"), IndexStatus CREATING ("The index is being
    created"); a table is ready when it is ACTIVE, RestoreInProgress is false and every GSI is
    ACTIVE (aws-dr-facts.md, inference from the model). Scaled: after the job completes, the
    table is CREATING for the first half of `restore_settle`, then ACTIVE with RestoreInProgress
    true and its GSIs CREATING, then ready."""

    @staticmethod
    def begin(table, now, seconds):
        if seconds:
            table._drover_settle = (now + seconds / 2, now + seconds)


class BackupsAreNotPointInTime:
    """Knob `backup_lag`. [BC-d] CreateBackup: "If you submit a backup request on 2018-12-14 at
    14:25:00, the backup is guaranteed to contain all data committed to the table up to 14:24:00,
    and data committed after 14:26:00 will not be. The backup might contain data modifications made
    between 14:24:00 and 14:26:00." AWS Backup's advanced DynamoDB backups are "not instantaneous"
    (DynamoDB developer guide, UsageNotesAWS). Stricter reading, scaled: the snapshot misses every
    write made in the last `backup_lag` s before StartBackupJob. Each table keeps a log of the
    pre-images of its writes (PutItem, UpdateItem, DeleteItem, BatchWriteItem, TransactWriteItems
    all write through moto's backend put_item/update_item/delete_item), only for the lag window;
    the snapshot undoes them, newest first, over a copy of the current items."""

    @staticmethod
    def record(table, hash_key, range_key, pre_image, now, lag):
        log = table.__dict__.setdefault("_drover_writes", [])
        log.append((now, hash_key, range_key, pre_image))
        while log and log[0][0] < now - lag:
            log.pop(0)

    @staticmethod
    def undo_recent(table, items, now, lag):
        """`items` (a copy of table.items) as they were `lag` seconds before `now`."""
        if not lag:
            return items
        ranged = table.range_key_attr is not None
        for t, h, r, pre in reversed(list(table.__dict__.get("_drover_writes") or [])):
            if t < now - lag:
                break
            if not ranged:
                if pre is None:
                    items.pop(h, None)
                else:
                    items[h] = copy.deepcopy(pre)
            elif pre is None:
                if h in items:
                    items[h].pop(r, None)
            else:
                items[h][r] = copy.deepcopy(pre)
        return items


class ListsArePaginated:
    """Knob `page_size`. Every List* of AWS Backup and DynamoDB returns a NextToken (ListTables:
    LastEvaluatedTableName) when there is more; [BC-b] MaxResults is "The maximum number of items
    to be returned" (a maximum: the service may return fewer); [BC-d] Scan: "If the total size of
    scanned items exceeds the maximum dataset size limit of 1 MB, the scan completes and results
    are returned to the user. The LastEvaluatedKey value is also returned". Scaled: at most
    `page_size` items a page, whatever MaxResults / Limit asks."""

    @staticmethod
    def cap(asked, page_size):
        return min(asked, page_size) if page_size else asked


class JobsAreEventuallyConsistent:
    """Knob `unseen_jobs` (also the older config knob of the same name, which affects Describe*Job
    only). Eventually consistent reads: [BC-d] DescribeTable: "If you issue a DescribeTable request
    immediately after a CreateTable request, DynamoDB might return a ResourceNotFoundException.
    This is because DescribeTable uses an eventually consistent query"; AWS Backup documents no
    read-after-write guarantee for its jobs. Scaled: a job younger than `unseen_jobs` s is not
    found by Describe*Job and not listed by List*Jobs."""

    @staticmethod
    def seen(job_created, now, seconds):
        return now - job_created >= seconds


class RestoresAreLimited:
    """Knob `max_restores`. DynamoDB RestoreTableFromBackup ([BC-d]): "Any number of users can
    execute up to 50 concurrent restores (any type of restore) in a given account"; quotas page:
    LimitExceededException past the limit. Scaled to `max_restores` unfinished restore jobs per
    account and Region; StartRestoreJob then fails LimitExceededException (HTTP 400, a [BC-b]
    error shape; note that [BC-b] does not list it among StartRestoreJob's errors)."""

    MESSAGE = "Too many concurrent restore jobs for this account in this Region. Try again later."


class OneJobPerResource:
    """Knob `one_job_per_resource`. AWS Backup quotas (aws-backup-limits.html): "Concurrent backup
    and copy jobs per resource: 1. Not adjustable." A later job waits in CREATED until the running
    one ends, and its duration counts from when it actually starts. The resource of a copy job is
    the source point's ResourceArn (the table)."""


class CopyJobsQueue:
    """Knob `copy_queue`. recov-point-create-a-copy.html: "If AWS Backup encounters any system
    errors, the copy job enters a retry phase that lasts for 2 hours. During this time, the copy
    job status remains in the CREATED state while the system periodically attempts to initiate the
    job." Scaled: each copy job stays CREATED for an extra seeded random 0..`copy_queue` s."""

    @staticmethod
    def delay(realism):
        q = realism["copy_queue"]
        return realism.rng.uniform(0, q) if q else 0.0


class ServersFault:
    """Knob `fault_rate`. Server faults that pass, on every service, and have no effect:
    [BC-d] InternalServerError ("fault": true; HTTP 500); [BC-b] ServiceUnavailableException ("The
    request failed due to a temporary failure of the server"; "fault": true; the API reference
    gives HTTP 500) and DependencyFailureException ("fault": true; HTTP 500); [BC-k]
    KMSInternalException ("fault": true, "The request can be retried"; HTTP 500); and plain 503s
    with an empty body (as from a load balancer; every SDK retries 503). The control API is never
    faulted. One RNG draw decides whether a call faults, a second which fault."""

    FAULTS = {
        "dynamodb": [("InternalServerError", 500, "Internal server error")],
        "backup": [("ServiceUnavailableException", 500, "The request failed due to a temporary failure "
                                                        "of the server."),
                   ("DependencyFailureException", 500, "A dependent AWS service or resource returned an "
                                                       "error to the AWS Backup service, and the action "
                                                       "cannot be completed.")],
        "kms": [("KMSInternalException", 500, "The request was rejected because an internal exception "
                                              "occurred. The request can be retried.")],
    }
    PLAIN_503 = (None, 503, "")

    @staticmethod
    def draw(realism, service):
        rate = realism["fault_rate"]
        if not rate or not service or realism.rng.random() >= rate:
            return None
        return realism.rng.choice(ServersFault.FAULTS.get(service, []) + [ServersFault.PLAIN_503])


class IdempotentReplayIsBare:
    """Knob `idempotent_replay_without_id`. [BC-b] StartBackupJob / StartCopyJob / StartRestoreJob
    IdempotencyToken: "Retrying a successful request with the same idempotency token results in a
    success message with no action taken." No output member is `required` in the model
    (StartBackupJobOutput, StartCopyJobOutput, StartRestoreJobOutput), so the stricter reading: a
    replay answers 200 with an empty body, without the job id."""


class RecoveryPointDeletionIsAsynchronous:
    """Knob `delete_seconds` (shared with DeleteTable). [BC-b] RecoveryPointStatus has DELETING;
    InvalidResourceStateException: "Backup is already performing an action on this recovery point.
    It can't perform the action you requested until the first action finishes." The point shows
    Status DELETING for `delete_seconds` s before it is gone: a second DeleteRecoveryPoint gives
    InvalidResourceStateException; StartCopyJob / StartRestoreJob from it give
    InvalidRequestException (the one of their listed errors that fits)."""


# ================================================================ moto DynamoDB hooks

DATA_OPS = ("GetItem", "PutItem", "UpdateItem", "DeleteItem", "Query", "Scan",
            "BatchGetItem", "BatchWriteItem", "TransactGetItems", "TransactWriteItems")


def _tables_named(op, body):
    if op in ("BatchGetItem", "BatchWriteItem"):
        return list((body.get("RequestItems") or {}).keys())
    if op in ("TransactGetItems", "TransactWriteItems"):
        return [next(iter(i.values())).get("TableName") for i in body.get("TransactItems") or [] if i]
    return [body.get("TableName")]


def patch_method(cls, name):
    """Replaces `cls.name` with `fn(self, orig, *args, **kwargs)` (a decorator), keeping the
    original as `__wrapped__`: how the emulator extends moto from outside its package."""
    def deco(fn):
        orig = getattr(cls, name)

        def wrapper(self, *args, **kwargs):
            return fn(self, orig, *args, **kwargs)
        wrapper.__name__ = name
        wrapper.__wrapped__ = orig
        setattr(cls, name, wrapper)
        return fn
    return deco


def install(realism, lock, dynamodb_backends):
    """Wraps moto's DynamoDB handler, backend and Table from outside moto. With every knob off
    (and no lingering state) each wrapper calls moto's own method unchanged."""
    from moto.core.responses import ActionResult
    from moto.dynamodb.exceptions import (DeletionProtectedException, MockValidationException,
                                          ResourceInUseException, ResourceNotFoundException)
    from moto.dynamodb.exceptions import ERROR_TYPE_PREFIX, JsonRESTError
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.models.dynamo_type import DynamoType
    from moto.dynamodb.models.table import Table
    from moto.dynamodb.responses import DynamoHandler, DynamoResult

    class ContinuousBackupsUnavailable(JsonRESTError):
        def __init__(self):
            super().__init__(ERROR_TYPE_PREFIX + "ContinuousBackupsUnavailableException",
                             ContinuousBackupsEnableLate.MESSAGE)

    def find(handler, name_or_arn):
        try:
            return handler.dynamodb_backend.get_table(name_or_arn)
        except Exception:
            return None

    patch = patch_method

    # -- one DynamoDB call at a time, like the Backup calls (realism state is read and written)
    @patch(DynamoHandler, "call_action")
    def call_action(self, orig):
        with lock:
            return orig(self)

    # -- TagsOfAnInactiveTable: only an ACTIVE (or UPDATING, or DELETING) table serves data
    def serving(op):
        @patch(DynamoHandler, "".join("_" + c.lower() if c.isupper() else c for c in op).lstrip("_"))
        def data_call(self, orig, *args, **kwargs):
            now = time.time()
            for name in _tables_named(op, self.body or {}):
                table = find(self, name) if name else None
                if table is not None and table_status(table, now) == "CREATING":
                    raise ResourceNotFoundException(table_name=table.name)
            return orig(self, *args, **kwargs)
    for _op in DATA_OPS:
        serving(_op)

    # -- TableStatus, index status and RestoreInProgress in every TableDescription
    @patch(Table, "describe")
    def describe(self, orig, base_key="TableDescription"):
        result = orig(self, base_key=base_key)
        describe_table_status(self, result[base_key])
        return result

    @patch(DynamoHandler, "delete_table")
    def delete_table(self, orig):
        table = find(self, self.body["TableName"])
        if table is None:
            return orig(self)
        now, seconds = time.time(), realism["delete_seconds"]
        status = table_status(table, now)
        if status == "DELETING":
            return DynamoResult(table.describe())  # "no error is returned"
        if status in ("CREATING", "UPDATING"):
            raise ResourceInUseException(UpdateTableIsAsynchronous.in_use(table, now, "delete"))
        if not seconds:
            return orig(self)
        if table.deletion_protection_enabled:
            raise DeletionProtectedException(table.name)
        DeleteTableIsAsynchronous.begin(realism, table, self.current_account, self.region, now, seconds)
        return DynamoResult(table.describe())

    @patch(DynamoHandler, "update_table")
    def update_table(self, orig):
        table = find(self, self.body["TableName"])
        if table is None:
            return orig(self)
        now, seconds = time.time(), realism["update_seconds"]
        problem = UpdateTableIsAsynchronous.in_use(table, now)
        if problem:
            raise ResourceInUseException(problem)
        if not seconds:
            return orig(self)
        spec = self.body.get("StreamSpecification")
        if spec:
            problem = UpdateTableIsAsynchronous.stream_problem(table, spec)
            if problem:
                raise MockValidationException(problem)
            if spec.get("StreamEnabled"):
                table.latest_stream_label = None  # the disabled stream's label; moto would refuse
        before = table.__dict__.get("_drover_updating_until", 0)
        UpdateTableIsAsynchronous.begin(table, now, seconds)
        try:
            return orig(self)
        except Exception:
            table._drover_updating_until = before
            raise

    @patch(DynamoHandler, "update_time_to_live")
    def update_time_to_live(self, orig):
        table = find(self, self.body["TableName"])
        if table is None:
            return orig(self)
        now = time.time()
        problem = UpdateTableIsAsynchronous.in_use(table, now)
        if problem:
            raise ResourceInUseException(problem)
        if TimeToLiveChangesSlowly.refused(table, now):
            raise MockValidationException(TimeToLiveChangesSlowly.MESSAGE)
        result = orig(self)
        TimeToLiveChangesSlowly.changed(table, now, bool(self.body["TimeToLiveSpecification"].get("Enabled")),
                                        realism["ttl_enabling"], realism["ttl_change_window"])
        return result

    @patch(DynamoHandler, "describe_time_to_live")
    def describe_time_to_live(self, orig):
        table = find(self, self.body["TableName"])
        if table is None or "_drover_ttl" not in table.__dict__:
            return orig(self)
        return ActionResult({"TimeToLiveDescription": TimeToLiveChangesSlowly.shown(table, table.ttl, time.time())})

    @patch(DynamoHandler, "update_continuous_backups")
    def update_continuous_backups(self, orig):
        table = find(self, self.body["TableName"])
        if table is not None and ContinuousBackupsEnableLate.unavailable(table, time.time(),
                                                                          realism["pitr_unavailable"]):
            raise ContinuousBackupsUnavailable()
        return orig(self)

    def tag_change(self, orig):
        table = find(self, self.body["ResourceArn"])
        if table is None:
            return orig(self)
        now = time.time()
        if table_status(table, now) in ("CREATING", "DELETING"):
            raise ResourceNotFoundException(TagsOfAnInactiveTable.message(self.body["ResourceArn"]))
        delay = realism["tag_delay"]
        if not delay:
            return orig(self)
        TaggingIsAsynchronous.before_change(table, now)
        result = orig(self)
        TaggingIsAsynchronous.after_change(table, now, delay)
        return result
    patch(DynamoHandler, "tag_resource")(tag_change)
    patch(DynamoHandler, "untag_resource")(tag_change)

    @patch(DynamoHandler, "list_tags_of_resource")
    def list_tags_of_resource(self, orig):
        arn = self.body["ResourceArn"]
        table = find(self, arn)
        if table is None:
            return orig(self)
        now = time.time()
        if table_status(table, now) in ("CREATING", "DELETING"):
            raise ResourceNotFoundException(TagsOfAnInactiveTable.message(arn))
        size = realism["page_size"]
        if not size and not table.__dict__.get("_drover_tag_versions"):
            return orig(self)
        tags = TaggingIsAsynchronous.visible(table, now)
        size = size or 10  # moto's own page size for this call
        keys = [t["Key"] for t in tags]
        marker = self.body.get("NextToken")
        if marker and marker not in keys:
            raise MockValidationException("Invalid NextToken")
        start = keys.index(marker) + 1 if marker else 0
        page = tags[start:start + size]
        out = {"Tags": page}
        if start + size < len(tags):
            out["NextToken"] = page[-1]["Key"]
        return ActionResult(out)

    @patch(DynamoHandler, "list_tables")
    def list_tables(self, orig):
        if realism["page_size"]:
            self.body["Limit"] = ListsArePaginated.cap(self.body.get("Limit") or 100, realism["page_size"])
        return orig(self)

    @patch(DynamoHandler, "scan")
    def scan(self, orig):
        if realism["page_size"]:
            asked = self.body.get("Limit")
            self.body["Limit"] = ListsArePaginated.cap(asked or realism["page_size"], realism["page_size"])
        return orig(self)

    # -- the write log of BackupsAreNotPointInTime, at moto's backend (every write API goes through it)
    def logged(name, key_of):
        @patch(DynamoDBBackend, name)
        def write(self, orig, table_name, key_or_item, *args, **kwargs):
            lag = realism["backup_lag"]
            if not lag:
                return orig(self, table_name, key_or_item, *args, **kwargs)
            try:
                table = self.get_table(table_name)
                h, r = key_of(self, table, key_or_item)
                pre = copy.deepcopy(table.get_item(h, r))
            except Exception:  # let moto answer with its own error
                return orig(self, table_name, key_or_item, *args, **kwargs)
            out = orig(self, table_name, key_or_item, *args, **kwargs)
            BackupsAreNotPointInTime.record(table, h, r, pre, time.time(), lag)
            return out

    def item_key(backend, table, item):
        r = DynamoType(item[table.range_key_attr]) if table.range_key_attr else None
        return DynamoType(item[table.hash_key_attr]), r

    logged("put_item", item_key)
    logged("update_item", lambda backend, table, key: backend.get_keys_value(table, key))
    logged("delete_item", lambda backend, table, key: backend.get_keys_value(table, key))
