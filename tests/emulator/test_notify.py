"""EventBridge PutEvents and SNS Publish read back through SQS, their validations and faults, and the
fixture commands notify-sinks, drain-queue and metric-values (README.md, "Events and SNS")."""
import datetime
import json
import os
import subprocess
import sys
import time

import botocore.exceptions
import pytest

from harness import ACCOUNT, HERE, SRC, error_code

FIXTURE = os.path.join(HERE, "fixture.py")
RUN = "Drover Run State Change"


def fixture(emulator, command, spec):
    """`fixture.py COMMAND PORT` with the spec on stdin, as tests/common.rs calls it."""
    port = emulator.endpoint.rsplit(":", 1)[1]
    out = subprocess.run([sys.executable, FIXTURE, command, port], input=json.dumps(spec), capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def entry(detail=None, **kw):
    return {"Source": "drover", "DetailType": RUN, "Detail": json.dumps(detail or {"run_id": "r1"}), **kw}


def drain(emulator, url, wait=0):
    return fixture(emulator, "drain-queue", {"region": SRC, "queue_url": url, "wait_seconds": wait})["messages"]


@pytest.fixture
def sinks(emulator):
    return fixture(emulator, "notify-sinks", {"region": SRC, "topic": "drover-alerts"})


def test_notify_sinks_shape_and_idempotence(emulator, sinks):
    assert sinks["bus_arn"] == f"arn:aws:events:{SRC}:{ACCOUNT}:event-bus/default"
    assert sinks["topic_arn"] == f"arn:aws:sns:{SRC}:{ACCOUNT}:drover-alerts"
    for url in (sinks["events_queue_url"], sinks["sns_queue_url"]):
        assert url.startswith("http://127.0.0.1:")
    assert fixture(emulator, "notify-sinks", {"region": SRC, "topic": "drover-alerts"}) == sinks
    sns = emulator.client("sns")
    assert len(sns.list_subscriptions_by_topic(TopicArn=sinks["topic_arn"])["Subscriptions"]) == 1
    sqs = emulator.client("sqs")
    policy = json.loads(sqs.get_queue_attributes(QueueUrl=sinks["sns_queue_url"], AttributeNames=["Policy"])
                        ["Attributes"]["Policy"])
    assert policy["Statement"][0]["Principal"] == {"Service": "sns.amazonaws.com"}
    assert emulator.client("events").list_targets_by_rule(Rule="drover-events")["Targets"][0]["Arn"].endswith(
        ":drover-events-default")


def test_put_events_reach_the_queue_by_bus_name_or_arn(emulator, sinks):
    events = emulator.client("events")
    out = events.put_events(Entries=[entry({"n": 1}), entry({"n": 2}, EventBusName="default"),
                                     entry({"n": 3}, EventBusName=sinks["bus_arn"]),
                                     {**entry({"n": 4}), "Source": "someone.else"}])
    assert out["FailedEntryCount"] == 0 and all("EventId" in e for e in out["Entries"])
    got = drain(emulator, sinks["events_queue_url"])
    assert [m["detail"] for m in got] == [{"n": 1}, {"n": 2}, {"n": 3}]  # the rule matches source drover only
    assert {m["source"] for m in got} == {"drover"} and {m["detail-type"] for m in got} == {RUN}
    assert got[0]["id"] == out["Entries"][0]["EventId"] and got[0]["account"] == ACCOUNT and got[0]["region"] == SRC
    assert drain(emulator, sinks["events_queue_url"]) == []  # deleted


def test_a_custom_bus_by_name_or_arn(emulator):
    sinks = fixture(emulator, "notify-sinks", {"region": SRC, "bus": "drover-bus", "topic": "t"})
    assert sinks["bus_arn"] == f"arn:aws:events:{SRC}:{ACCOUNT}:event-bus/drover-bus"
    events = emulator.client("events")
    out = events.put_events(Entries=[entry({"n": 1}, EventBusName="drover-bus"),
                                     entry({"n": 2}, EventBusName=sinks["bus_arn"]), entry({"n": 3})])
    assert out["FailedEntryCount"] == 0
    assert [m["detail"] for m in drain(emulator, sinks["events_queue_url"])] == [{"n": 1}, {"n": 2}]


def test_a_bus_arn_of_another_region_is_served_there(emulator, sinks):
    west = fixture(emulator, "notify-sinks", {"region": "us-west-2", "topic": "t"})
    out = emulator.client("events").put_events(Entries=[entry({"n": 1}, EventBusName=west["bus_arn"])])
    assert out["FailedEntryCount"] == 0
    assert drain(emulator, sinks["events_queue_url"]) == []
    got = fixture(emulator, "drain-queue", {"region": "us-west-2", "queue_url": west["events_queue_url"]})
    assert [m["detail"] for m in got["messages"]] == [{"n": 1}]


def test_a_missing_bus_fails_its_entry_or_is_accepted(emulator, sinks):
    events = emulator.client("events")
    for bus in ("nope", f"arn:aws:events:{SRC}:{ACCOUNT}:event-bus/nope"):
        out = events.put_events(Entries=[entry({"n": 1}, EventBusName=bus), entry({"n": 2})])
        assert out["FailedEntryCount"] == 1
        assert out["Entries"][0] == {"ErrorCode": "ResourceNotFoundException",
                                     "ErrorMessage": "Event bus nope does not exist."}
        assert "EventId" in out["Entries"][1]
    assert [m["detail"] for m in drain(emulator, sinks["events_queue_url"])] == [{"n": 2}, {"n": 2}]
    status, cfg = emulator.control("/_drover/config", {"missing_event_bus": "accept"})
    assert status == 200 and cfg["missing_event_bus"] == "accept"
    out = events.put_events(Entries=[entry(EventBusName="nope")])
    assert out["FailedEntryCount"] == 0 and "EventId" in out["Entries"][0]
    assert drain(emulator, sinks["events_queue_url"]) == []
    assert emulator.control("/_drover/config", {"missing_event_bus": "drop"})[0] == 400


def test_put_events_validations(emulator, sinks):
    events = emulator.client("events", validate=False)
    for entries, fragment in (([entry()] * 11, "less than or equal to 10"), ([], "greater than or equal to 1")):
        with pytest.raises(botocore.exceptions.ClientError) as e:
            events.put_events(Entries=entries)
        assert error_code(e) == "ValidationException" and fragment in str(e.value)
    # [EB-size]: Source + DetailType + Detail (+ 14 with Time) bytes, over all entries; 256 KB in all is fine
    base = len("drover") + len(RUN) + len('{"x": ""}')
    fits = {**entry(), "Detail": '{"x": "' + "é" * ((256 * 1024 - base) // 2) + '"}'}  # 2 bytes each
    assert len(fits["Detail"].encode()) + len("drover") + len(RUN) == 256 * 1024
    assert events.put_events(Entries=[fits])["FailedEntryCount"] == 0
    with pytest.raises(botocore.exceptions.ClientError) as e:
        events.put_events(Entries=[{**fits, "Time": datetime.datetime(2026, 1, 1)}])
    assert error_code(e) == "ValidationException" and "over the limit" in str(e.value)
    with pytest.raises(botocore.exceptions.ClientError):
        events.put_events(Entries=[entry({"x": "a" * 200_000}), entry({"x": "a" * 100_000})])
    out = events.put_events(Entries=[
        {"DetailType": RUN, "Detail": "{}"}, {"Source": "drover", "Detail": "{}"}, entry(Detail="[1]"),
        {**entry(), "Detail": "not json"}, {**entry(), "Detail": "[1]"}, entry({"ok": True})])
    assert out["FailedEntryCount"] == 5
    assert [e.get("ErrorCode") for e in out["Entries"]] == [
        "InvalidArgument", "InvalidArgument", "MalformedDetail", "MalformedDetail", "MalformedDetail", None]
    assert "Source is a required argument" in out["Entries"][0]["ErrorMessage"]
    assert [m["detail"] for m in drain(emulator, sinks["events_queue_url"])][1:] == [{"ok": True}]


def test_sns_publish_reaches_the_subscribed_queue_in_its_envelope(emulator, sinks):
    sns = emulator.client("sns")
    message_id = sns.publish(TopicArn=sinks["topic_arn"], Message=json.dumps({"run_id": "r1"}),
                             Subject="drover: drill failed",
                             MessageAttributes={"detail-type": {"DataType": "String", "StringValue": RUN}})["MessageId"]
    sns.publish(TopicArn=sinks["topic_arn"], Message="plain text")
    first, second = drain(emulator, sinks["sns_queue_url"])
    assert first["Type"] == "Notification" and first["MessageId"] == message_id
    assert first["TopicArn"] == sinks["topic_arn"] and first["Subject"] == "drover: drill failed"
    assert first["Message"] == {"run_id": "r1"}
    assert first["MessageAttributes"] == {"detail-type": {"Type": "String", "Value": RUN}}
    assert second["Message"] == "plain text" and "Subject" not in second


def test_sns_publish_validations(emulator, sinks):
    sns = emulator.client("sns")
    topic = sinks["topic_arn"]
    sns.publish(TopicArn=topic, Message="m", Subject="x" * 100)
    for subject in ("x" * 101, "two\nlines", "tab\there", "caf\u00e9"):
        with pytest.raises(botocore.exceptions.ClientError) as e:
            sns.publish(TopicArn=topic, Message="m", Subject=subject)
        assert error_code(e) == "InvalidParameter" and e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    attrs = {"detail-type": {"DataType": "String", "StringValue": RUN}}
    room = 262_144 - len("detail-type") - len("String") - len(RUN)
    sns.publish(TopicArn=topic, Message="a" * room, MessageAttributes=attrs)
    for message, extra in (("a" * (room + 1), attrs), ("é" * (262_144 // 2 + 1), {})):
        with pytest.raises(botocore.exceptions.ClientError) as e:
            sns.publish(TopicArn=topic, Message=message, MessageAttributes=extra)
        assert error_code(e) == "InvalidParameter" and "Message too long" in str(e.value)
    with pytest.raises(botocore.exceptions.ClientError) as e:
        sns.publish(TopicArn=topic.replace("drover-alerts", "nope"), Message="m")
    assert error_code(e) == "NotFound" and e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    assert len(drain(emulator, sinks["sns_queue_url"])) == 2


def test_throttled_put_events_and_publish(emulator, sinks):
    events, sns = emulator.client("events"), emulator.client("sns")
    emulator.control("/_drover/throttle", {"operation": "*", "count": 5})  # not spent on events or SNS
    assert events.put_events(Entries=[entry({"n": 0})])["FailedEntryCount"] == 0
    sns.publish(TopicArn=sinks["topic_arn"], Message="m0")
    emulator.control("/_drover/reset", {"moto": False})
    emulator.control("/_drover/throttle", {"operation": "events:PutEvents", "count": 2})
    emulator.control("/_drover/throttle", {"operation": "sns:Publish", "count": 1, "code": "Throttled",
                                           "status": 429, "message": "Rate exceeded"})
    for _ in range(2):
        with pytest.raises(botocore.exceptions.ClientError) as e:
            events.put_events(Entries=[entry({"n": 1})])
        assert error_code(e) == "ThrottlingException" and e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert events.put_events(Entries=[entry({"n": 1})])["FailedEntryCount"] == 0
    with pytest.raises(botocore.exceptions.ClientError) as e:
        sns.publish(TopicArn=sinks["topic_arn"], Message="m1")
    assert error_code(e) == "Throttled" and e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 429
    assert e.value.response["Error"]["Message"] == "Rate exceeded"
    # a client that retries (the SDKs retry ThrottlingException and Throttled) gets through
    emulator.control("/_drover/throttle", {"operation": "PutEvents", "count": 2})
    retrying = emulator.client("events", attempts=3)
    assert retrying.put_events(Entries=[entry({"n": 2})])["FailedEntryCount"] == 0
    assert [m["detail"] for m in drain(emulator, sinks["events_queue_url"])] == [{"n": 0}, {"n": 1}, {"n": 2}]
    calls = emulator.control("/_drover/calls")[1]
    assert calls["faulted"] == {"events:PutEvents": 4, "sns:Publish": 1}
    assert calls["by_operation"]["events:PutEvents"] == 6 and calls["by_operation"]["sns:Publish"] == 1


def test_failed_entries(emulator, sinks):
    events = emulator.client("events")
    status, cfg = emulator.control("/_drover/fail-entries", {"count": 2})
    assert status == 200 and cfg["entry_faults"][0]["remaining"] == 2
    out = events.put_events(Entries=[entry({"n": 1}), {**entry(), "Detail": "[1]"}, entry({"n": 2}), entry({"n": 3})])
    assert out["FailedEntryCount"] == 3
    assert out["Entries"][0] == {"ErrorCode": "ThrottlingException", "ErrorMessage": "Rate exceeded."}
    assert out["Entries"][1]["ErrorCode"] == "MalformedDetail"  # a bad entry spends no fault
    assert out["Entries"][2]["ErrorCode"] == "ThrottlingException" and "EventId" in out["Entries"][3]
    emulator.control("/_drover/fail-entries", {"operation": "events:PutEvents", "code": "InternalFailure"})
    out = events.put_events(Entries=[entry({"n": 4})])
    assert out == {**out, "FailedEntryCount": 1,
                   "Entries": [{"ErrorCode": "InternalFailure", "ErrorMessage": "Internal Service Failure."}]}
    assert events.put_events(Entries=[entry({"n": 4})])["FailedEntryCount"] == 0
    assert [m["detail"] for m in drain(emulator, sinks["events_queue_url"])] == [{"n": 3}, {"n": 4}]
    assert emulator.control("/_drover/config")[1]["entry_faults"] == []
    for body in ({"code": "AccessDenied"}, {"count": 0}, {"operation": "sns:Publish"}):
        assert emulator.control("/_drover/fail-entries", body)[0] == 400, body


def test_drain_queue_waits_and_keeps_non_json_bodies(emulator, sinks):
    sqs = emulator.client("sqs")
    sqs.send_message(QueueUrl=sinks["events_queue_url"], MessageBody="not json")
    for i in range(13):
        sqs.send_message(QueueUrl=sinks["events_queue_url"], MessageBody=json.dumps({"i": i}))
    got = drain(emulator, sinks["events_queue_url"])
    assert got[0] == "not json" and sorted(m["i"] for m in got[1:]) == list(range(13))
    started = time.monotonic()
    assert drain(emulator, sinks["events_queue_url"], wait=1) == []
    assert time.monotonic() - started >= 0.9


def test_metric_values(emulator):
    cw = emulator.client("cloudwatch")
    start = datetime.datetime(2026, 3, 1, 12, 0, tzinfo=datetime.timezone.utc)
    dims = [{"Name": "plan", "Value": "prod"}, {"Name": "table", "Value": "orders"}]
    for minute, value in ((0, 30.0), (0, 10.0), (2, 0.0)):
        cw.put_metric_data(Namespace="Drover", MetricData=[{
            "MetricName": "RecoveryPointAgeSeconds", "Dimensions": dims, "Value": value, "Unit": "Seconds",
            "Timestamp": start + datetime.timedelta(minutes=minute, seconds=5)}])
    cw.put_metric_data(Namespace="Drover", MetricData=[{  # another set of dimensions: another metric
        "MetricName": "RecoveryPointAgeSeconds", "Dimensions": dims[:1], "Value": 999.0, "Timestamp": start}])
    spec = {"region": SRC, "namespace": "Drover", "metric": "RecoveryPointAgeSeconds",
            "dimensions": {"table": "orders", "plan": "prod"}, "start": "2026-03-01T12:00:00Z",
            "end": start.timestamp() + 600}
    assert fixture(emulator, "metric-values", spec) == {
        "timestamps": ["2026-03-01T12:00:00Z", "2026-03-01T12:02:00Z"], "values": [20.0, 0.0]}
    assert fixture(emulator, "metric-values", {**spec, "stat": "Maximum", "period": 300}) == {
        "timestamps": ["2026-03-01T12:00:00Z"], "values": [30.0]}
    assert fixture(emulator, "metric-values", {**spec, "start": str(int(start.timestamp()) + 120),
                                               "end": "2026-03-01T12:10:00"})["values"] == [0.0]
    assert fixture(emulator, "metric-values", {**spec, "metric": "Nope"}) == {"timestamps": [], "values": []}
