"""Seeds and inspects the emulator for drover's Rust end-to-end tests (tests/aws.rs).

    python fixture.py seed PORT < spec.json     prints {"keys": {region: key_arn}, ...}
    python fixture.py inspect PORT < query.json  prints the tables and jobs of each region
    python fixture.py notify-sinks PORT   {"region", "bus"?, "topic"} -> {"bus_arn", "topic_arn",
                                          "events_queue_url", "sns_queue_url"}
    python fixture.py drain-queue PORT    {"region", "queue_url", "wait_seconds"?} -> {"messages": [...]}
    python fixture.py metric-values PORT  {"region", "namespace", "metric", "dimensions", "start", "end",
                                          "period"?, "stat"?} -> {"timestamps": [...], "values": [...]}

Only talks to 127.0.0.1:PORT. The spec:
    {"source": "us-east-1", "targets": ["us-west-2"], "source_vault": "prod-vault",
     "target_vaults": {"us-west-2": "dr-vault"},
     "tables": [{"name": "orders", "sort_key": true, "gsi": true, "items": 30,
                 "canaries": [{"pk": "ORDER#1", "sk": "META"}]},
                {"name": "ledger", "key_type": "N", "items": 5, "canaries": [{"pk": "42"}]}],
     "extra_tables": [{"region": "us-west-2", "name": "orders-drill-decoy"}]}
plus, all optional (cross-account recovery; see README.md, "Cross-account"):
     "accounts": {"us-west-2": "111111111111"},   # the account of each Region's tables/vault/key
                                                  # (default 123456789012)
     "roles": [{"account": "111111111111", "name": "drover", "trusts": "123456789012",
                "external_id": "optional", "max_session_duration": 3600}],
     "backup_roles": [{"account": "111111111111", "name": "backup"}],  # trust backup.amazonaws.com
     "organization": {"management": "123456789012", "members": ["111111111111"],
                      "cross_account_backup": true},
     "vault_policies": {"us-west-2": {"allow_copy_from": ["123456789012"]}},
     "vault_locks": {"us-west-2": {"min_retention_days": 7, "max_retention_days": 365}},
     "aws_managed_vault_keys": ["us-west-2"]      # that target vault uses the account's aws/backup key
Set-up in other accounts goes through moto's `x-moto-account-id` header (fixtures only: drover
itself reaches other accounts by assuming roles). `inspect` takes "accounts" likewise.
"""
import json
import sys
import time
import urllib.request

import boto3
from botocore.config import Config

ACCOUNT = "123456789012"


def client(service, region, port, account=None):
    """A boto3 client of the emulator; with `account`, its calls are served as that account's (moto's
    `x-moto-account-id` header, for set-up only)."""
    c = boto3.client(
        service,
        region_name=region,
        endpoint_url=f"http://127.0.0.1:{port}",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        # The realism mode answers a few calls with passing 5xx faults: retry them like an SDK.
        config=Config(retries={"total_max_attempts": 10, "mode": "standard"}),
    )
    if account and account != ACCOUNT:
        def as_account(request, **_):
            request.headers["x-moto-account-id"] = account
        c.meta.events.register("before-sign.*.*", as_account)
    return c


def control(port, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method="POST" if data else "GET",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


def trust_policy(principal, external_id=None):
    statement = {"Effect": "Allow", "Principal": principal, "Action": "sts:AssumeRole"}
    if external_id:
        statement["Condition"] = {"StringEquals": {"sts:ExternalId": external_id}}
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]})


def copy_policy(accounts):
    """A vault access policy that lets those accounts copy into the vault (create-a-vault-access-policy.html)."""
    return json.dumps({"Version": "2012-10-17", "Statement": [{
        "Sid": "AllowCopyFromSourceAccounts", "Effect": "Allow",
        "Principal": {"AWS": [f"arn:aws:iam::{a}:root" for a in accounts]},
        "Action": "backup:CopyIntoBackupVault", "Resource": "*"}]})


def create_table(ddb, name, sort_key=False, gsi=False, kms_key=None, key_type="S"):
    attrs = [{"AttributeName": "pk", "AttributeType": key_type}]
    keys = [{"AttributeName": "pk", "KeyType": "HASH"}]
    if sort_key:
        attrs.append({"AttributeName": "sk", "AttributeType": "S"})
        keys.append({"AttributeName": "sk", "KeyType": "RANGE"})
    args = dict(TableName=name, AttributeDefinitions=attrs, KeySchema=keys, BillingMode="PAY_PER_REQUEST")
    if gsi:
        attrs.append({"AttributeName": "status", "AttributeType": "S"})
        args["GlobalSecondaryIndexes"] = [{
            "IndexName": "by-status",
            "KeySchema": [{"AttributeName": "status", "KeyType": "HASH"}],
            "Projection": {"ProjectionType": "ALL"},
        }]
    if kms_key:
        args["SSESpecification"] = {"Enabled": True, "SSEType": "KMS", "KMSMasterKeyId": kms_key}
    ddb.create_table(**args)


def seed(port, spec):
    src = spec["source"]
    accounts = spec.get("accounts") or {}

    def acct(region):
        return accounts.get(region, ACCOUNT)
    out = {"keys": {}, "source_key": None}
    org = spec.get("organization")
    if org:
        out["organization"] = control(port, "/_drover/organization",
                                      {"management": org["management"], "members": org.get("members", [])})
        if org.get("cross_account_backup"):
            client("backup", src, port, org["management"]).update_global_settings(
                GlobalSettings={"isCrossAccountBackupEnabled": "true"})
            out["organization"] = control(port, "/_drover/organization")
    for kind, principal in (("roles", None), ("backup_roles", {"Service": "backup.amazonaws.com"})):
        arns = []
        for r in spec.get(kind, []):
            args = {}
            if r.get("max_session_duration"):
                args["MaxSessionDuration"] = r["max_session_duration"]
            trusted = principal or {"AWS": f"arn:aws:iam::{r['trusts']}:root"}
            arns.append(client("iam", "us-east-1", port, r["account"]).create_role(
                RoleName=r["name"], AssumeRolePolicyDocument=trust_policy(trusted, r.get("external_id")),
                **args)["Role"]["Arn"])
        if spec.get(kind):
            out[kind] = arns
    kms_src = client("kms", src, port, acct(src))
    out["source_key"] = kms_src.create_key(Description="source tables")["KeyMetadata"]["Arn"]
    backup_src = client("backup", src, port, acct(src))
    shared = spec.get("source_vault_key")
    if shared is None:
        backup_src.create_backup_vault(BackupVaultName=spec["source_vault"])
    else:
        # a customer-managed vault key, its policy shared with the accounts a copy goes to
        # (AWS's guidance for cross-account copies)
        root = f"arn:aws:iam::{acct(src)}:root"
        statements = [{"Sid": "Enable IAM User Permissions", "Effect": "Allow", "Principal": {"AWS": root},
                       "Action": "kms:*", "Resource": "*"}]
        if shared.get("share_with"):
            statements.append({"Sid": "Share with the recovery accounts", "Effect": "Allow",
                               "Principal": {"AWS": [f"arn:aws:iam::{a}:root" for a in shared["share_with"]]},
                               "Action": ["kms:Decrypt", "kms:DescribeKey", "kms:CreateGrant"], "Resource": "*"})
        vault_key = client("kms", src, port, acct(src)).create_key(
            Description="source vault", Policy=json.dumps({"Version": "2012-10-17", "Statement": statements}))
        out["source_vault_key"] = vault_key["KeyMetadata"]["Arn"]
        backup_src.create_backup_vault(BackupVaultName=spec["source_vault"],
                                       EncryptionKeyArn=out["source_vault_key"])
    vaults = {src: (backup_src, spec["source_vault"])}
    for region in spec["targets"]:
        backup = client("backup", region, port, acct(region))
        name = spec["target_vaults"][region]
        if region in spec.get("aws_managed_vault_keys", []):
            # no key of its own: the vault is encrypted with the account's AWS managed aws/backup key
            backup.create_backup_vault(BackupVaultName=name)
            key = backup.describe_backup_vault(BackupVaultName=name)["EncryptionKeyArn"]
        else:
            key = client("kms", region, port, acct(region)).create_key(
                Description="drover target")["KeyMetadata"]["Arn"]
            backup.create_backup_vault(BackupVaultName=name, EncryptionKeyArn=key)
        out["keys"][region] = key
        vaults[region] = (backup, name)
    for region, policy in (spec.get("vault_policies") or {}).items():
        backup, name = vaults[region]
        backup.put_backup_vault_access_policy(BackupVaultName=name, Policy=copy_policy(policy["allow_copy_from"]))
    for region, lock in (spec.get("vault_locks") or {}).items():
        backup, name = vaults[region]
        args = {k: lock[key] for k, key in (("MinRetentionDays", "min_retention_days"),
                                        ("MaxRetentionDays", "max_retention_days"),
                                        ("ChangeableForDays", "changeable_for_days")) if lock.get(key) is not None}
        backup.put_backup_vault_lock_configuration(BackupVaultName=name, **args)
    ddb = client("dynamodb", src, port, acct(src))
    for t in spec["tables"]:
        key_type = t.get("key_type", "S")  # the partition key's type: S, or N (numbers)
        create_table(ddb, t["name"], t.get("sort_key", False), t.get("gsi", False), out["source_key"], key_type)
        if t.get("pitr"):
            enable_pitr(ddb, t["name"])  # before the items: their writes are in the table's history
        items = []
        for i in range(t.get("items", 0)):
            pk = {"N": str(1000 + i)} if key_type == "N" else {"S": f"ITEM#{i}"}
            item = {"pk": pk, "status": {"S": "open" if i % 2 else "closed"}, "n": {"N": str(i)}}
            if t.get("sort_key"):
                item["sk"] = {"S": "META"}
            items.append(item)
        for c in t.get("canaries", []):
            typed = {k: {key_type if k == "pk" else "S": v} for k, v in c.items()}
            items.append(typed | {"status": {"S": "canary"}})
        for item in items:
            ddb.put_item(TableName=t["name"], Item=item)
    for t in spec.get("extra_tables", []):
        create_table(client("dynamodb", t["region"], port, t.get("account") or acct(t["region"])), t["name"])
    settle(port)
    return out


def enable_pitr(ddb, name):
    """Turns point-in-time recovery on, riding out realism's ContinuousBackupsUnavailableException
    on a table created moments ago (pitr_unavailable)."""
    for _ in range(100):
        try:
            ddb.update_continuous_backups(
                TableName=name, PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True})
            return
        except ddb.exceptions.ContinuousBackupsUnavailableException:
            time.sleep(0.1)
    raise RuntimeError(f"point-in-time recovery could not be enabled on {name}")


def write(port, spec):
    """Item writes through the DynamoDB API, as an application makes them: `put` (items in
    DynamoDB JSON) and `delete` (keys) on `spec["table"]` in `spec["region"]` (and account)."""
    ddb = client("dynamodb", spec["region"], port, spec.get("account"))
    for item in spec.get("put", []):
        ddb.put_item(TableName=spec["table"], Item=item)
    for key in spec.get("delete", []):
        ddb.delete_item(TableName=spec["table"], Key=key)
    return {"time": time.time()}


def settle(port):
    """Lets the data be older than the realism mode's backup lag before a run starts, as a
    production table's would be (a backup misses the writes made just before it starts)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/_drover/config", timeout=10) as resp:
        lag = (json.loads(resp.read()).get("realism") or {}).get("backup_lag") or 0
    time.sleep(lag)


def break_things(port, spec):
    """Makes preflight fail: region settings, keys, vaults, tables, as the spec asks."""
    for region in spec.get("advanced_off", []):
        client("backup", region, port).update_region_settings(
            ResourceTypeOptInPreference={"DynamoDB": False}, ResourceTypeManagementPreference={"DynamoDB": False})
    for arn in spec.get("disable_keys", []):  # a key ARN names its Region and account
        region, account, key_id = arn.split(":")[3], arn.split(":")[4], arn.rsplit("/", 1)[1]
        client("kms", region, port, account).disable_key(KeyId=key_id)
    for arn in spec.get("enable_keys", []):  # undoes disable_keys
        region, account, key_id = arn.split(":")[3], arn.split(":")[4], arn.rsplit("/", 1)[1]
        client("kms", region, port, account).enable_key(KeyId=key_id)
    for v in spec.get("delete_vaults", []):
        client("backup", v["region"], port, v.get("account")).delete_backup_vault(BackupVaultName=v["name"])
    for t in spec.get("delete_tables", []):
        client("dynamodb", t["region"], port, t.get("account")).delete_table(TableName=t["name"])
    for i in spec.get("delete_items", []):
        client("dynamodb", i["region"], port).delete_item(
            TableName=i["table"], Key={k: {"S": v} for k, v in i["key"].items()})
    if spec.get("delete_items"):
        settle(port)  # the deletion happened before the run, not during its backup
    for t in spec.get("create_tables", []):  # someone else takes a name
        create_table(client("dynamodb", t["region"], port), t["name"])
    out = {}
    for region in spec.get("extra_keys", []):
        out[region] = client("kms", region, port).create_key(Description="another key")["KeyMetadata"]["Arn"]
    return out


def digest(ddb, name):
    """An order-independent digest of every item (sha256 of the sorted JSON items)."""
    import hashlib
    items, start = [], None
    while True:
        args = dict(TableName=name)
        if start:
            args["ExclusiveStartKey"] = start
        page = ddb.scan(**args)
        items.extend(json.dumps(i, sort_keys=True) for i in page["Items"])
        start = page.get("LastEvaluatedKey")
        if not start:
            break
    return hashlib.sha256("\n".join(sorted(items)).encode()).hexdigest()


def table_state(ddb, name):
    t = ddb.describe_table(TableName=name)["Table"]
    pitr = ddb.describe_continuous_backups(TableName=name)["ContinuousBackupsDescription"]
    ttl = ddb.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
    tags = [x for page in ddb.get_paginator("list_tags_of_resource").paginate(ResourceArn=t["TableArn"])
            for x in page.get("Tags", [])]
    count, start = 0, None
    while True:
        args = dict(TableName=name, Select="COUNT")
        if start:
            args["ExclusiveStartKey"] = start
        page = ddb.scan(**args)
        count += page["Count"]
        start = page.get("LastEvaluatedKey")
        if not start:
            break
    return {
        "status": t["TableStatus"],
        "items": count,
        "kms_key": (t.get("SSEDescription") or {}).get("KMSMasterKeyArn"),
        "gsis": sorted(g["IndexName"] for g in t.get("GlobalSecondaryIndexes", [])),
        "keys": sorted(k["AttributeName"] for k in t["KeySchema"]),
        "pitr": pitr.get("PointInTimeRecoveryDescription", {}).get("PointInTimeRecoveryStatus"),
        "ttl": ttl.get("AttributeName") if ttl.get("TimeToLiveStatus") in ("ENABLED", "ENABLING") else None,
        "stream": (t.get("StreamSpecification") or {}).get("StreamViewType")
        if (t.get("StreamSpecification") or {}).get("StreamEnabled") else None,
        "deletion_protection": t.get("DeletionProtectionEnabled", False),
        "tags": {x["Key"]: x["Value"] for x in tags},
        "digest": digest(ddb, name),
    }


def inspect(port, query):
    """Per Region: the tables, job counts and recovery points of that Region in the account
    `query["accounts"][region]` names (default 123456789012)."""
    out = {}
    accounts = query.get("accounts") or {}
    for region in query["regions"]:
        account = accounts.get(region, ACCOUNT)
        ddb = client("dynamodb", region, port, account)
        backup = client("backup", region, port, account)
        # Every list is paged to the end: the realism mode answers in small pages.
        names = [n for page in ddb.get_paginator("list_tables").paginate() for n in page.get("TableNames", [])]
        jobs = {}
        for kind, op, key in (("backup", "list_backup_jobs", "BackupJobs"),
                              ("copy", "list_copy_jobs", "CopyJobs"),
                              ("restore", "list_restore_jobs", "RestoreJobs")):
            jobs[kind] = sum(len(page.get(key, [])) for page in backup.get_paginator(op).paginate())
        points = {}
        for page in backup.get_paginator("list_backup_vaults").paginate():
            for vault in page.get("BackupVaultList", []):
                name = vault["BackupVaultName"]
                points[name] = {
                    p["RecoveryPointArn"]: p["Status"]
                    for pg in backup.get_paginator("list_recovery_points_by_backup_vault").paginate(BackupVaultName=name)
                    for p in pg.get("RecoveryPoints", [])
                }
        out[region] = {"account": account, "tables": {n: table_state(ddb, n) for n in names}, "jobs": jobs,
                       "points": points}
    return out


def _queue(sqs, name, policy):
    url = sqs.create_queue(QueueName=name)["QueueUrl"]  # the same URL when it exists already
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sqs.set_queue_attributes(QueueUrl=url, Attributes={"Policy": json.dumps(policy(arn))})
    return url, arn


def _send_policy(service, source_arn):
    """The queue policy AWS asks for: the service may send, for that source only (EventBridge:
    eb-use-resource-based.html#eb-sqs-permissions; SNS: subscribe-sqs-queue-to-sns-topic.html)."""
    return lambda queue_arn: {"Version": "2012-10-17", "Statement": [{
        "Sid": f"Allow{service.split('.')[0].upper()}", "Effect": "Allow", "Principal": {"Service": service},
        "Action": "sqs:SendMessage", "Resource": queue_arn,
        "Condition": {"ArnEquals": {"aws:SourceArn": source_arn}}}]}


def notify_sinks(port, spec):
    """Where drover's events and notifications can be read back: an SQS queue that a rule of the
    event bus (source `drover`) targets, and an SQS queue subscribed (not raw: SNS's JSON envelope,
    with Subject and MessageAttributes) to the topic, which is created. Idempotent."""
    region = spec["region"]
    bus = spec.get("bus") or "default"
    bus = bus.rsplit("event-bus/", 1)[-1]  # a bus ARN names it
    events, sqs, sns = (client(s, region, port) for s in ("events", "sqs", "sns"))
    if bus != "default" and bus not in [b["Name"] for b in events.list_event_buses().get("EventBuses", [])]:
        events.create_event_bus(Name=bus)
    bus_arn = events.describe_event_bus(Name=bus)["Arn"]
    rule_arn = events.put_rule(Name="drover-events", EventBusName=bus, State="ENABLED",
                               EventPattern=json.dumps({"source": ["drover"]}))["RuleArn"]
    events_url, events_queue = _queue(sqs, f"drover-events-{bus}", _send_policy("events.amazonaws.com", rule_arn))
    events.put_targets(Rule="drover-events", EventBusName=bus, Targets=[{"Id": "drover-queue", "Arn": events_queue}])
    topic_arn = sns.create_topic(Name=spec["topic"])["TopicArn"]
    sns_url, sns_queue = _queue(sqs, f"drover-sns-{spec['topic']}", _send_policy("sns.amazonaws.com", topic_arn))
    subscribed = [s for page in sns.get_paginator("list_subscriptions_by_topic").paginate(TopicArn=topic_arn)
                  for s in page.get("Subscriptions", []) if s["Endpoint"] == sns_queue]
    if not subscribed:
        sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=sns_queue,
                      Attributes={"RawMessageDelivery": "false"})
    return {"bus_arn": bus_arn, "topic_arn": topic_arn, "events_queue_url": events_url, "sns_queue_url": sns_url}


def _parse(body):
    """An SQS body: JSON when it is (an EventBridge event; SNS's envelope, whose "Message" is parsed
    too when it is JSON), else the string."""
    try:
        value = json.loads(body)
    except ValueError:
        return body
    if isinstance(value, dict) and value.get("Type") == "Notification" and isinstance(value.get("Message"), str):
        try:
            value["Message"] = json.loads(value["Message"])
        except ValueError:
            pass
    return value


def drain_queue(port, spec):
    """Receives and deletes every message of the queue available now (the first receive waits up to
    `wait_seconds`, default 0, for one to arrive), in the order received."""
    sqs = client("sqs", spec["region"], port)
    url, wait, messages = spec["queue_url"], int(spec.get("wait_seconds") or 0), []
    while True:
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=wait,
                                  VisibilityTimeout=30).get("Messages", [])
        if not got:
            break
        wait = 0
        for m in got:
            messages.append(_parse(m["Body"]))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    return {"messages": messages}


def _when(value):
    """An instant: epoch seconds (a number, or a string of one) or ISO 8601 (naive means UTC)."""
    import datetime
    if isinstance(value, (int, float)) or (isinstance(value, str) and value.replace(".", "", 1).isdigit()):
        return datetime.datetime.fromtimestamp(float(value), datetime.timezone.utc)
    t = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    return t if t.tzinfo else t.replace(tzinfo=datetime.timezone.utc)


def metric_values(port, spec):
    """GetMetricData of one metric with exactly those dimensions, spoken as the Rust SDK speaks it
    (Smithy RPC v2 CBOR, SigV4-signed, served by cbor_front.py): oldest first, timestamps in
    ISO 8601 UTC ("2026-01-01T00:00:00Z"), one per period with data."""
    import datetime
    import time
    import urllib.error
    import urllib.request

    import cbor2
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    utc = datetime.timezone.utc
    query = {"Id": "m", "ReturnData": True, "MetricStat": {
        "Metric": {"Namespace": spec["namespace"], "MetricName": spec["metric"],
                   "Dimensions": [{"Name": k, "Value": str(v)} for k, v in (spec.get("dimensions") or {}).items()]},
        "Period": int(spec.get("period") or 60), "Stat": spec.get("stat") or "Average"}}
    body = {"MetricDataQueries": [query], "ScanBy": "TimestampAscending",
            "StartTime": cbor2.CBORTag(1, _when(spec["start"]).timestamp()),
            "EndTime": cbor2.CBORTag(1, _when(spec["end"]).timestamp())}
    url = f"http://127.0.0.1:{port}/service/GraniteServiceVersion20100801/operation/GetMetricData"
    points = []
    while True:
        data = cbor2.dumps(body)
        req = AWSRequest(method="POST", url=url, data=data, headers={
            "smithy-protocol": "rpc-v2-cbor", "Content-Type": "application/cbor", "Accept": "application/cbor"})
        SigV4Auth(Credentials("testing", "testing"), "monitoring", spec["region"]).add_auth(req)
        sent = urllib.request.Request(url, data=data, method="POST", headers=dict(req.headers.items()))
        for attempt in range(8):
            # the realism mode's passing faults (5xx, throttling) are retried, as an SDK does
            try:
                with urllib.request.urlopen(sent, timeout=30) as resp:
                    page = cbor2.loads(resp.read())
                break
            except urllib.error.HTTPError as e:
                if e.code < 429 or attempt == 7:
                    raise
                time.sleep(0.2 * 2 ** attempt)
        for r in page.get("MetricDataResults", []):
            stamps = [t.value if isinstance(t, cbor2.CBORTag) else t for t in r.get("Timestamps", [])]
            stamps = [t if isinstance(t, datetime.datetime) else datetime.datetime.fromtimestamp(t, utc)
                      for t in stamps]
            points.extend(zip(stamps, r.get("Values", [])))
        if not page.get("NextToken"):
            break
        body["NextToken"] = page["NextToken"]
    points.sort(key=lambda p: p[0])
    return {"timestamps": [t.astimezone(utc).strftime("%Y-%m-%dT%H:%M:%SZ") for t, _ in points],
            "values": [v for _, v in points]}


def main():
    command, port = sys.argv[1], int(sys.argv[2])
    arg = json.load(sys.stdin)
    result = {"seed": seed, "inspect": inspect, "break": break_things, "write": write,
              "notify-sinks": notify_sinks, "drain-queue": drain_queue,
              "metric-values": metric_values}[command](port, arg)
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
