"""CloudWatch over Smithy RPC v2 CBOR (cbor_front.py), spoken as the Rust SDK speaks it: a SigV4-signed
POST /service/GraniteServiceVersion20100801/operation/<Op> with a cbor2 body, sent with urllib."""
import datetime
import gzip
import math
import urllib.error
import urllib.request

import cbor2
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from harness import SRC

NS = "drover/test"
DIMS = [{"Name": "TableName", "Value": "orders"}, {"Name": "Stage", "Value": "copy"}]


def cbor_call(emulator, op, body, region=SRC, headers=None, raw=None, sign_headers=True):
    """(status, headers, decoded body or None) of one rpcv2Cbor call."""
    data = raw if raw is not None else cbor2.dumps(body)
    h = {"smithy-protocol": "rpc-v2-cbor", "Content-Type": "application/cbor", "Accept": "application/cbor"}
    h.update(headers or {})
    h = {k: v for k, v in h.items() if v is not None}
    url = f"{emulator.endpoint}/service/GraniteServiceVersion20100801/operation/{op}"
    req = AWSRequest(method="POST", url=url, data=data, headers=h)
    SigV4Auth(Credentials("testing", "testing"), "monitoring", region).add_auth(req)
    prepared = urllib.request.Request(url, data=data, method="POST", headers=dict(req.headers.items()))
    try:
        with urllib.request.urlopen(prepared, timeout=10) as resp:
            status, rh, payload = resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as e:
        status, rh, payload = e.code, e.headers, e.read()
    return status, rh, (cbor2.loads(payload) if payload else None)


def ts(t):
    return cbor2.CBORTag(1, t.timestamp())  # [SPEC] timestamps: tag 1, epoch seconds


def minute(offset=0):
    now = datetime.datetime.now(datetime.timezone.utc).replace(second=0, microsecond=0)
    return now + datetime.timedelta(minutes=offset)


def put(emulator, data, namespace=NS, **kw):
    return cbor_call(emulator, "PutMetricData", {"Namespace": namespace, "MetricData": data}, **kw)


def query(qid, stat, period=60, dims=DIMS, name="RestoreSeconds", **extra):
    return {"Id": qid, "MetricStat": {"Metric": {"Namespace": NS, "MetricName": name, "Dimensions": dims},
                                      "Period": period, "Stat": stat, **extra}}


def get(emulator, queries, start, end, **kw):
    return cbor_call(emulator, "GetMetricData", {"MetricDataQueries": queries, "StartTime": ts(start),
                                                  "EndTime": ts(end), **kw})


def assert_error(answer, status, shape, query_code):
    code, headers, body = answer
    assert code == status, answer
    assert headers["smithy-protocol"] == "rpc-v2-cbor"
    assert headers["Content-Type"] == "application/cbor"
    assert body["__type"] == f"com.amazonaws.cloudwatch#{shape}", body
    assert body["message"]
    assert headers["x-amzn-query-error"] == f"{query_code};Sender"
    return body["message"]


def test_put_then_get_metric_data_aggregates_over_the_period(emulator):
    t0 = minute(-10)
    status, headers, body = put(emulator, [
        {"MetricName": "RestoreSeconds", "Dimensions": DIMS, "Timestamp": ts(t0 + datetime.timedelta(seconds=5)),
         "Value": 10.0, "Unit": "Seconds", "StorageResolution": 60},
        {"MetricName": "RestoreSeconds", "Dimensions": list(reversed(DIMS)),  # order does not matter
         "Timestamp": ts(t0 + datetime.timedelta(seconds=50)), "Value": 30, "Unit": "Seconds"},
        {"MetricName": "RestoreSeconds", "Dimensions": DIMS, "Timestamp": ts(t0 + datetime.timedelta(minutes=1)),
         "Values": [1.0, 2.0], "Counts": [3, 1], "Unit": "Seconds"},
        # another metric (other dimensions) that must not be mixed in
        {"MetricName": "RestoreSeconds", "Dimensions": DIMS[:1], "Timestamp": ts(t0), "Value": 1000.0},
    ])
    assert (status, body) == (200, None)
    assert headers["smithy-protocol"] == "rpc-v2-cbor"
    stats = ["Sum", "Average", "SampleCount", "Maximum", "Minimum"]
    status, headers, body = get(emulator, [query(s.lower(), s) for s in stats], t0, minute(1),
                                ScanBy="TimestampAscending")
    assert status == 200, body
    assert headers["smithy-protocol"] == "rpc-v2-cbor" and headers["Content-Type"] == "application/cbor"
    results = {r["Id"]: r for r in body["MetricDataResults"]}
    assert [r["Id"] for r in body["MetricDataResults"]] == [s.lower() for s in stats]
    for r in results.values():
        assert r["StatusCode"] == "Complete"
        assert r["Label"] == "RestoreSeconds"
        assert r["Timestamps"] == [t0, t0 + datetime.timedelta(minutes=1)]  # tag 1, decoded by cbor2
    assert results["sum"]["Values"] == [40.0, 5.0]
    assert results["average"]["Values"] == [20.0, 1.25]
    assert results["samplecount"]["Values"] == [2.0, 4.0]
    assert results["maximum"]["Values"] == [30.0, 2.0]
    assert results["minimum"]["Values"] == [10.0, 1.0]
    # a 5-minute period sums both minutes; the default order is newest first
    status, _, body = get(emulator, [query("five", "Sum", period=300), query("hidden", "Sum") | {"ReturnData": False}],
                          t0, minute(1))
    assert [r["Id"] for r in body["MetricDataResults"]] == ["five"]
    assert sum(body["MetricDataResults"][0]["Values"]) == 45.0
    # Unit filter: no data with another unit
    status, _, body = get(emulator, [query("ms", "Sum", Unit="Milliseconds")], t0, minute(1))
    assert body["MetricDataResults"][0]["Values"] == []


def test_cbor_data_is_read_by_boto3_and_the_query_protocol(emulator):
    t0 = minute(-5)
    assert put(emulator, [{"MetricName": "RestoreSeconds", "Dimensions": DIMS, "Timestamp": ts(t0),
                           "Value": 7.0}])[0] == 200
    cw = emulator.client("cloudwatch")  # botocore 1.44.8 picks the JSON protocol for CloudWatch
    metrics = cw.list_metrics(Namespace=NS)["Metrics"]
    assert metrics == [{"Namespace": NS, "MetricName": "RestoreSeconds", "Dimensions": DIMS}]
    out = cw.get_metric_statistics(Namespace=NS, MetricName="RestoreSeconds", Dimensions=DIMS, StartTime=t0,
                                   EndTime=minute(1), Period=60, Statistics=["Sum"])
    assert [d["Sum"] for d in out["Datapoints"]] == [7.0]
    # and the other way round: boto3's datum is read over CBOR
    cw.put_metric_data(Namespace=NS, MetricData=[{"MetricName": "Other", "Value": 2.0, "Timestamp": t0}])
    status, _, body = get(emulator, [query("o", "Sum", dims=[], name="Other")], t0, minute(1))
    assert body["MetricDataResults"][0]["Values"] == [2.0]
    # the query protocol (form-encoded Action=ListMetrics), signed as the CLI would
    url = emulator.endpoint + "/"
    form = f"Action=ListMetrics&Version=2010-08-01&Namespace={NS.replace('/', '%2F')}".encode()
    req = AWSRequest(method="POST", url=url, data=form,
                     headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"})
    SigV4Auth(Credentials("testing", "testing"), "monitoring", SRC).add_auth(req)
    with urllib.request.urlopen(urllib.request.Request(url, data=form, headers=dict(req.headers.items())),
                                timeout=10) as resp:
        xml = resp.read().decode()
    assert "<MetricName>RestoreSeconds</MetricName>" in xml and "<Value>orders</Value>" in xml


def test_list_metrics_with_dimension_filters(emulator):
    t = ts(minute(-1))
    assert put(emulator, [{"MetricName": "RestoreSeconds", "Dimensions": DIMS, "Timestamp": t, "Value": 1.0},
                          {"MetricName": "RestoreSeconds", "Dimensions": DIMS, "Timestamp": t, "Value": 2.0},
                          {"MetricName": "CopyBytes", "Dimensions": DIMS[:1], "Timestamp": t, "Value": 3.0},
                          {"MetricName": "Bare", "Timestamp": t, "Value": 4.0}])[0] == 200
    assert put(emulator, [{"MetricName": "Elsewhere", "Value": 1.0}], namespace="drover/other")[0] == 200

    def names(**filters):
        status, headers, body = cbor_call(emulator, "ListMetrics", filters)
        assert status == 200 and headers["smithy-protocol"] == "rpc-v2-cbor", body
        assert "NextToken" not in body
        return sorted((m["MetricName"], len(m["Dimensions"])) for m in body["Metrics"])

    assert names(Namespace=NS) == [("Bare", 0), ("CopyBytes", 1), ("RestoreSeconds", 2)]
    assert names() == [("Bare", 0), ("CopyBytes", 1), ("Elsewhere", 0), ("RestoreSeconds", 2)]
    assert names(Namespace=NS, MetricName="RestoreSeconds") == [("RestoreSeconds", 2)]
    assert names(Namespace=NS, Dimensions=[{"Name": "TableName", "Value": "orders"}]) == [
        ("CopyBytes", 1), ("RestoreSeconds", 2)]
    assert names(Namespace=NS, Dimensions=[{"Name": "Stage"}]) == [("RestoreSeconds", 2)]
    assert names(Namespace=NS, Dimensions=[{"Name": "TableName", "Value": "nope"}]) == []
    _, _, body = cbor_call(emulator, "ListMetrics", {"Namespace": NS, "MetricName": "RestoreSeconds"})
    assert body["Metrics"] == [{"Namespace": NS, "MetricName": "RestoreSeconds", "Dimensions": DIMS}]
    assert_error(cbor_call(emulator, "ListMetrics", {"NextToken": "garbage"}), 400,
                 "InvalidParameterValueException", "InvalidParameterValue")


def test_put_metric_data_limits(emulator):
    ok = {"MetricName": "m", "Value": 1.0}
    cases = [
        ({"MetricData": [ok]}, "MissingRequiredParameterException", "MissingParameter"),
        ({"Namespace": NS}, "MissingRequiredParameterException", "MissingParameter"),
        ({"Namespace": NS, "MetricData": [{"Value": 1.0}]}, "MissingRequiredParameterException", "MissingParameter"),
        ({"Namespace": "AWS/DynamoDB", "MetricData": [ok]}, "InvalidParameterValueException", "InvalidParameterValue"),
        ({"Namespace": "", "MetricData": [ok]}, "InvalidParameterValueException", "InvalidParameterValue"),
        ({"Namespace": NS, "MetricData": [ok] * 1001}, "InvalidParameterValueException", "InvalidParameterValue"),
        ({"Namespace": NS, "MetricData": [{**ok, "Dimensions": [{"Name": f"d{i}", "Value": "v"} for i in range(31)]}]},
         "InvalidParameterValueException", "InvalidParameterValue"),
        ({"Namespace": NS, "MetricData": [{**ok, "Dimensions": [{"Name": "d"}]}]},
         "MissingRequiredParameterException", "MissingParameter"),
        ({"Namespace": NS, "MetricData": [{**ok, "Value": math.nan}]}, "InvalidParameterValueException",
         "InvalidParameterValue"),
        ({"Namespace": NS, "MetricData": [{**ok, "Value": math.inf}]}, "InvalidParameterValueException",
         "InvalidParameterValue"),
        ({"Namespace": NS, "MetricData": [{**ok, "Value": 2.0 ** 361}]}, "InvalidParameterValueException",
         "InvalidParameterValue"),
        ({"Namespace": NS, "MetricData": [{**ok, "Values": [1.0]}]}, "InvalidParameterCombinationException",
         "InvalidParameterCombination"),
        ({"Namespace": NS, "MetricData": [{"MetricName": "m", "Values": [1.0, 2.0], "Counts": [1]}]},
         "InvalidParameterValueException", "InvalidParameterValue"),
        ({"Namespace": NS, "MetricData": [{"MetricName": "m", "Values": [1.0] * 151}]},
         "InvalidParameterValueException", "InvalidParameterValue"),
        ({"Namespace": NS, "MetricData": [{**ok, "Unit": "Parsecs"}]}, "InvalidParameterValueException",
         "InvalidParameterValue"),
        ({"Namespace": NS, "MetricData": [{**ok, "StorageResolution": 30}]}, "InvalidParameterValueException",
         "InvalidParameterValue"),
        ({"Namespace": NS, "MetricData": [{**ok, "Timestamp": ts(minute(-60 * 24 * 15))}]},
         "InvalidParameterValueException", "InvalidParameterValue"),
    ]
    for body, shape, code in cases:
        assert_error(cbor_call(emulator, "PutMetricData", body), 400, shape, code)
    # 1,000 datums and 30 dimensions are fine; a rejected request stored nothing
    assert put(emulator, [{**ok, "Dimensions": [{"Name": f"d{i}", "Value": "v"} for i in range(30)]}] * 1000)[0] == 200
    _, _, body = cbor_call(emulator, "ListMetrics", {})
    assert [m["Namespace"] for m in body["Metrics"]] == [NS]


def test_get_metric_data_errors_and_pagination(emulator):
    t0 = minute(-10)
    assert put(emulator, [{"MetricName": "RestoreSeconds", "Dimensions": DIMS,
                           "Timestamp": ts(t0 + datetime.timedelta(minutes=i)), "Value": float(i)}
                          for i in range(5)])[0] == 200
    bad = [
        ({"MetricDataQueries": [query("a", "Sum")], "StartTime": ts(t0)}, "MissingRequiredParameterException",
         "MissingParameter"),
        ({"MetricDataQueries": [query("A", "Sum")], "StartTime": ts(t0), "EndTime": ts(minute())},
         "InvalidParameterValueException", "InvalidParameterValue"),
        ({"MetricDataQueries": [query("a", "Sum"), query("a", "Sum")], "StartTime": ts(t0), "EndTime": ts(minute())},
         "InvalidParameterValueException", "InvalidParameterValue"),
        ({"MetricDataQueries": [query("a", "Sum", period=45)], "StartTime": ts(t0), "EndTime": ts(minute())},
         "InvalidParameterValueException", "InvalidParameterValue"),
        ({"MetricDataQueries": [query("a", "Median")], "StartTime": ts(t0), "EndTime": ts(minute())},
         "InvalidParameterValueException", "InvalidParameterValue"),
        ({"MetricDataQueries": [query("a", "Sum")], "StartTime": ts(minute()), "EndTime": ts(t0)},
         "InvalidParameterValueException", "InvalidParameterValue"),
        ({"MetricDataQueries": [{"Id": "a"}], "StartTime": ts(t0), "EndTime": ts(minute())},
         "MissingRequiredParameterException", "MissingParameter"),
        ({"MetricDataQueries": [query("a", "Sum")], "StartTime": ts(t0), "EndTime": ts(minute()),
          "NextToken": "nope"}, "InvalidNextToken", "InvalidNextToken"),
    ]
    for body, shape, code in bad:
        assert_error(cbor_call(emulator, "GetMetricData", body), 400, shape, code)
    pages, token = [], None
    while True:
        extra = {"NextToken": token} if token else {}
        status, _, body = get(emulator, [query("a", "Sum")], t0, minute(), MaxDatapoints=2,
                              ScanBy="TimestampAscending", **extra)
        assert status == 200, body
        pages.append(body["MetricDataResults"][0]["Values"])
        token = body.get("NextToken")
        if not token:
            break
    assert pages == [[0.0, 1.0], [2.0, 3.0], [4.0]]


def test_protocol_errors_and_unknown_operations(emulator):
    status, headers, body = cbor_call(emulator, "FlyToTheMoon", {})
    assert status == 404 and body["__type"].endswith("#UnknownOperationException")
    assert headers["smithy-protocol"] == "rpc-v2-cbor"
    status, _, body = cbor_call(emulator, "PutMetricAlarm", {})
    assert status == 404 and body["__type"].endswith("#UnknownOperationException")
    status, _, body = cbor_call(emulator, "ListMetrics", None, raw=b"\xff\x00not cbor")
    assert status == 400 and body["__type"].endswith("#SerializationException")
    status, _, body = cbor_call(emulator, "ListMetrics", {}, headers={"smithy-protocol": None})
    assert status == 400 and body["__type"].endswith("#SerializationException")
    # an empty body is an empty input; gzip bodies (PutMetricData's requestcompression) are accepted
    assert cbor_call(emulator, "ListMetrics", None, raw=b"")[0] == 200
    data = gzip.compress(cbor2.dumps({"Namespace": NS, "MetricData": [{"MetricName": "z", "Value": 1.0}]}))
    assert cbor_call(emulator, "PutMetricData", None, raw=data, headers={"Content-Encoding": "gzip"})[0] == 200


def test_calls_are_logged_and_faults_answer_cbor(emulator):
    put(emulator, [{"MetricName": "m", "Value": 1.0}])
    cbor_call(emulator, "ListMetrics", {})
    emulator.client("cloudwatch").list_metrics()
    _, calls = emulator.control("/_drover/calls")
    assert calls["by_operation"] == {"cloudwatch:ListMetrics": 2, "cloudwatch:PutMetricData": 1}
    status, _ = emulator.control("/_drover/throttle", {"operation": "cloudwatch:PutMetricData", "count": 1})
    assert status == 200
    assert_error(put(emulator, [{"MetricName": "m", "Value": 1.0}]), 400, "ThrottlingException", "ThrottlingException")
    assert put(emulator, [{"MetricName": "m", "Value": 1.0}])[0] == 200
    _, calls = emulator.control("/_drover/calls")
    assert calls["by_operation"]["cloudwatch:PutMetricData"] == 3
    assert calls["faulted"] == {"cloudwatch:PutMetricData": 1}


@pytest.mark.parametrize("region", ["us-west-2"])
def test_regions_are_separate(emulator, region):
    assert put(emulator, [{"MetricName": "m", "Value": 1.0}], region=region)[0] == 200
    assert cbor_call(emulator, "ListMetrics", {})[2]["Metrics"] == []
    assert len(cbor_call(emulator, "ListMetrics", {}, region=region)[2]["Metrics"]) == 1
