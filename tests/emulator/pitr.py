"""DynamoDB point-in-time recovery for drover_moto (issue 15 groundwork), from outside moto.

moto 5.2.5's RestoreTableToPointInTime ignores SourceTableArn, RestoreDateTime and
UseLatestRestorableTime: it copies the source table as it is now, in the calling Region only.
Here, while PITR is enabled on a table (UpdateContinuousBackups), every write through moto's
backend put_item / update_item / delete_item (which PutItem, UpdateItem, DeleteItem,
BatchWriteItem and TransactWriteItems all go through) is kept in the table's item history,
`(time, hash key, range key, pre-image)`. The table's items at an instant T of the window are its
current items with every write made after T undone, newest first. Disabling PITR drops the
history; re-enabling starts a new one (the window starts again).

Sources: [BC-d] is botocore's dynamodb/2012-08-10 service-2.json (in the venv);
PointInTimeRecovery.Tutorial and pointintimerecovery_restores are pages of
docs.aws.amazon.com/amazondynamodb/latest/developerguide/.

State is on moto's Table (`_drover_pitr`), so moto's reset drops it and --state-file pickles it.
Every call is served under drover_moto's LOCK (realism's DynamoHandler.call_action wrapper).
This module must not import drover_moto (that runs as `__main__`).
"""
import copy
import datetime
import re
import time

DAY = 86400.0
TARGET_NAME = re.compile(r"^[a-zA-Z0-9_.-]{3,255}$")
TABLE_ARN = re.compile(r"^arn:aws:dynamodb:([a-z0-9-]+):(\d{12}):table/([a-zA-Z0-9_.-]{3,255})$")

MSG_INVALID_TIME = "RestoreDateTime must be between EarliestRestorableDateTime and LatestRestorableDateTime."
MSG_SSE_CROSS_REGION = ("SSESpecificationOverride is mandatory for cross-Region restores "
                        "(the source table is in {src}, the restore is called in {dst}).")
MSG_LIMIT = "Too many concurrent restores for this account in this Region. Try again later."


def _ms_floor(t):
    """Times are kept to the millisecond: an SDK sends RestoreDateTime with millisecond precision."""
    return int(t * 1000) / 1000.0


def _epoch(value):
    """RestoreDateTime as epoch seconds (moto's parser may hand over a number, a string or a datetime)."""
    if isinstance(value, datetime.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=datetime.timezone.utc)
        return value.timestamp()
    if isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        try:
            return _epoch(datetime.datetime.fromisoformat(str(value).replace("Z", "+00:00")))
        except ValueError:
            return None


def history(table):
    """The PITR state of a moto Table while PITR is enabled ({"enabled_at", "log"}), else None."""
    desc = table.continuous_backups.get("PointInTimeRecoveryDescription") or {}
    if desc.get("PointInTimeRecoveryStatus") != "ENABLED":
        table.__dict__.pop("_drover_pitr", None)
        return None
    st = table.__dict__.get("_drover_pitr")
    if st is None:  # enabled by a state file older than this module: the history starts now
        st = table._drover_pitr = {"enabled_at": _ms_floor(time.time()), "log": []}
    return st


def window(table, now, lag):
    """(EarliestRestorableDateTime, LatestRestorableDateTime) of a table with PITR, epoch seconds."""
    st = history(table)
    days = (table.continuous_backups["PointInTimeRecoveryDescription"].get("RecoveryPeriodInDays") or 35)
    earliest = max(st["enabled_at"], _ms_floor(now - days * DAY))
    return earliest, max(earliest, _ms_floor(now - lag))


def record(table, h, r, pre, now):
    st = history(table)
    if st is None:
        return
    st["log"].append((now, h, r, pre))
    days = (table.continuous_backups["PointInTimeRecoveryDescription"].get("RecoveryPeriodInDays") or 35)
    log = st["log"]
    # writes older than the earliest restorable time are never undone again
    while log and log[0][0] < now - days * DAY:
        log.pop(0)


def items_at(table, at):
    """A copy of the table's items as they were at `at` (epoch seconds, inside the window)."""
    items = copy.deepcopy(table.items)
    ranged = table.range_key_attr is not None
    for t, h, r, pre in reversed(history(table)["log"]):
        if t <= at:
            break
        if not ranged:
            if pre is None:
                items.pop(h, None)
            else:
                items[h] = copy.deepcopy(pre)
        elif pre is None:
            if h in items:
                items[h].pop(r, None)
                if not items[h]:
                    del items[h]
        else:
            items.setdefault(h, {})[r] = copy.deepcopy(pre)
    return items


def install(realism, dynamodb_backends, restores_in_progress):
    """Wraps moto's DynamoDB backend writes and the three PITR handlers. `restores_in_progress(
    account, region, now)` counts the restores of any type still running there (drover_moto's)."""
    from moto.dynamodb.exceptions import ERROR_TYPE_PREFIX, JsonRESTError, MockValidationException
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.models.dynamo_type import DynamoType
    from moto.dynamodb.models.table import Table
    from moto.dynamodb.responses import DynamoHandler, DynamoResult
    import realism as realism_mod

    def error(code, message):
        return JsonRESTError(ERROR_TYPE_PREFIX + code, message)  # HTTP 400, DynamoDB's __type

    class PointInTimeRestoredTable(Table):
        """A moto Table restored to a point in time: RestoreSummary as [BC-d] describes it."""
        __module__ = "pitr.dynamodb"  # moto's model metaclass files classes under the 2nd dotted part

        def describe(self, base_key="TableDescription"):
            result = super().describe(base_key=base_key)
            result[base_key]["RestoreSummary"] = {
                "SourceTableArn": self.drover_source_table, "RestoreDateTime": self.drover_restore_time,
                "RestoreInProgress": False}
            realism_mod.describe_table_status(self, result[base_key])  # RestoredTablesSettle
            return result
    # so that it pickles (--state-file): a module-level name of this module
    PointInTimeRestoredTable.__module__ = __name__
    PointInTimeRestoredTable.__qualname__ = "PointInTimeRestoredTable"
    globals()["PointInTimeRestoredTable"] = PointInTimeRestoredTable

    patch = realism_mod.patch_method

    # -- the item history: every write API goes through these three backend methods
    def kept(name, key_of):
        @patch(DynamoDBBackend, name)
        def write(self, orig, table_name, key_or_item, *args, **kwargs):
            try:
                table = self.get_table(table_name)
                st = history(table)
                if st is None:
                    return orig(self, table_name, key_or_item, *args, **kwargs)
                h, r = key_of(self, table, key_or_item)
                pre = copy.deepcopy(table.get_item(h, r))
            except Exception:  # let moto answer with its own error
                return orig(self, table_name, key_or_item, *args, **kwargs)
            out = orig(self, table_name, key_or_item, *args, **kwargs)
            # TransactWriteItems may have swapped the table for a copy; the history is on the live one
            record(self.get_table(table_name), h, r, pre, time.time())
            return out

    def item_key(backend, table, item):
        r = DynamoType(item[table.range_key_attr]) if table.range_key_attr else None
        return DynamoType(item[table.hash_key_attr]), r

    kept("put_item", item_key)
    kept("update_item", lambda backend, table, key: backend.get_keys_value(table, key))
    kept("delete_item", lambda backend, table, key: backend.get_keys_value(table, key))

    def described(table, now):
        """ContinuousBackupsDescription with the live window ([BC-d] PointInTimeRecoveryDescription)."""
        out = copy.deepcopy(table.continuous_backups)
        desc = out["PointInTimeRecoveryDescription"]
        if history(table) is not None:
            desc["EarliestRestorableDateTime"], desc["LatestRestorableDateTime"] = window(
                table, now, realism["pitr_latest_lag"])
        else:
            for k in ("EarliestRestorableDateTime", "LatestRestorableDateTime", "RecoveryPeriodInDays"):
                desc.pop(k, None)
        return out

    @patch(DynamoHandler, "update_continuous_backups")
    def update_continuous_backups(self, orig):
        orig(self)  # moto's (and realism's ContinuousBackupsUnavailable) checks and state
        table = self.dynamodb_backend.get_table(self.body["TableName"])
        now = time.time()
        if self.body["PointInTimeRecoverySpecification"].get("PointInTimeRecoveryEnabled"):
            if "_drover_pitr" not in table.__dict__:
                table._drover_pitr = {"enabled_at": _ms_floor(now), "log": []}
        else:
            table.__dict__.pop("_drover_pitr", None)
        return DynamoResult({"ContinuousBackupsDescription": described(table, now)})

    @patch(DynamoHandler, "describe_continuous_backups")
    def describe_continuous_backups(self, orig):
        orig(self)  # moto's TableNotFoundException
        table = self.dynamodb_backend.get_table(self.body["TableName"])
        return DynamoResult({"ContinuousBackupsDescription": described(table, time.time())})

    def gsi(table, ix):
        d = {"IndexName": ix.name, "KeySchema": copy.deepcopy(ix.schema),
             "Projection": copy.deepcopy(ix.projection)}
        if table.billing_mode != "PAY_PER_REQUEST":
            d["ProvisionedThroughput"] = {k: ix.throughput.get(k, 0)
                                          for k in ("ReadCapacityUnits", "WriteCapacityUnits")}
        return d

    @patch(DynamoHandler, "restore_table_to_point_in_time")
    def restore_table_to_point_in_time(self, orig):
        body = self.body
        account, region = self.current_account, self.region
        target = body.get("TargetTableName")
        if not isinstance(target, str) or not TARGET_NAME.match(target):
            raise MockValidationException("TargetTableName must be 3-255 characters of [a-zA-Z0-9_.-].")
        name, arn = body.get("SourceTableName"), body.get("SourceTableArn")
        if (name is None) == (arn is None):
            raise MockValidationException("Exactly one of SourceTableName and SourceTableArn must be given.")
        latest = bool(body.get("UseLatestRestorableTime"))
        at = body.get("RestoreDateTime")
        if latest == (at is not None):
            raise MockValidationException(
                "Exactly one of RestoreDateTime and UseLatestRestorableTime (true) must be given.")
        if at is not None:
            at = _epoch(at)
            if at is None:
                raise MockValidationException("RestoreDateTime must be a timestamp (epoch seconds).")
        src_account, src_region = account, region
        if arn is not None:
            m = TABLE_ARN.match(arn)
            if not m:
                raise MockValidationException(f"Invalid SourceTableArn: {arn}")
            src_region, src_account, name = m.groups()
        if src_region != region and not body.get("SSESpecificationOverride"):
            raise MockValidationException(MSG_SSE_CROSS_REGION.format(src=src_region, dst=region))
        # RestoreTableToPointInTime restores within an account: another account's table is not found
        try:
            source = (dynamodb_backends[account][src_region].tables.get(name)
                      if src_account == account else None)
        except KeyError:  # a Region moto does not know
            source = None
        if source is None:
            raise error("TableNotFoundException", f"Table not found: {arn or name}")
        ddb = self.dynamodb_backend
        now = time.time()
        existing = ddb.tables.get(target)
        if existing is not None:
            if realism_mod.table_status(existing, now) in ("CREATING", "DELETING"):
                raise error("TableInUseException", f"Table is being created or deleted: {target}")
            raise error("TableAlreadyExistsException", f"Table already exists: {target}")
        if history(source) is None:
            raise error("PointInTimeRecoveryUnavailableException",
                        f"Point in time recovery is not enabled for table '{source.name}'")
        earliest, newest = window(source, now, realism["pitr_latest_lag"])
        at = newest if latest else at
        if not earliest <= at <= newest:
            raise error("InvalidRestoreTimeException", MSG_INVALID_TIME)
        limit = realism["max_restores"]  # realism.RestoresAreLimited, any type of restore
        if limit and restores_in_progress(account, region, now) >= limit:
            raise error("LimitExceededException", MSG_LIMIT)
        override = body.get("SSESpecificationOverride")
        if override is not None:
            sse = copy.deepcopy(override) if override.get("Enabled") else None
            if sse is not None:
                sse.setdefault("SSEType", "KMS")
        else:  # "Encryption settings ... come from the current settings of the source table"
            sse = copy.deepcopy(source.sse_specification) if (source.sse_specification or {}).get("Enabled") else None
        provisioned = source.billing_mode != "PAY_PER_REQUEST"
        table = PointInTimeRestoredTable(
            target, account_id=account, region=region, schema=copy.deepcopy(source.schema),
            attr=copy.deepcopy(source.attr),
            throughput=({k: source.throughput.get(k, 0) for k in ("ReadCapacityUnits", "WriteCapacityUnits")}
                        if provisioned else None),
            billing_mode=source.billing_mode or "PROVISIONED",
            indexes=[ix.describe() for ix in source.indexes],
            global_indexes=[gsi(source, ix) for ix in source.global_indexes], sse_specification=sse)
        table.drover_source_table, table.drover_restore_time = source.table_arn, at
        table.items = items_at(source, at)
        ddb.tables[target] = table
        realism_mod.RestoredTablesSettle.begin(table, now, realism["restore_settle"])
        return DynamoResult(table.describe())
