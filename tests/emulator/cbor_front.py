"""CloudWatch over Smithy RPC v2 CBOR for drover_moto (issue 16 groundwork), from outside moto.

The Rust SDK's CloudWatch client (aws-sdk-cloudwatch 1.140) speaks Smithy RPC v2 CBOR
(smithy.protocols#rpcv2Cbor): `POST /service/GraniteServiceVersion20100801/operation/<Operation>`
with `smithy-protocol: rpc-v2-cbor`, `Content-Type: application/cbor`, a CBOR body. moto 5.2.5
serves CloudWatch over the query and JSON protocols only. This module adds that route to moto's
own `moto.cloudwatch.urls.url_paths` and serves PutMetricData, GetMetricData and ListMetrics on
moto's cloudwatch backend (`cloudwatch_backends[account][region].metric_data`), so that data put
over CBOR is read by moto's query/JSON handlers (boto3) and the other way round.

Sources: [SPEC] https://smithy.io/2.0/additional-specs/protocols/smithy-rpc-v2.html;
[BC-cw] botocore's cloudwatch/2010-08-01 service-2.json (in the venv): member names, required
members, limits, error shapes (InvalidParameterValueException = query code InvalidParameterValue,
...). The service has the awsQueryCompatible trait, so an error also carries the
`x-amzn-query-error: <query code>;Sender` header, which botocore's and the Rust SDK's parsers read.

Every call is served under drover_moto's LOCK. This module must not import drover_moto.
"""
import base64
import datetime
import gzip
import json
import math
import re

import cbor2

SERVICE = "GraniteServiceVersion20100801"
PATH = re.compile(r"^/service/" + SERVICE + r"/operation/([^/?]+)$")
NS = "com.amazonaws.cloudwatch#"
HEADERS = {"smithy-protocol": "rpc-v2-cbor"}
UNITS = {"Seconds", "Microseconds", "Milliseconds", "Bytes", "Kilobytes", "Megabytes", "Gigabytes", "Terabytes",
         "Bits", "Kilobits", "Megabits", "Gigabits", "Terabits", "Percent", "Count", "Bytes/Second",
         "Kilobytes/Second", "Megabytes/Second", "Gigabytes/Second", "Terabytes/Second", "Bits/Second",
         "Kilobits/Second", "Megabits/Second", "Gigabits/Second", "Terabits/Second", "Count/Second", "None"}
LIMIT = 2.0 ** 360  # [BC-cw] MetricDatum.Value: "Values must be in the range of -2^360 to 2^360"
MAX_DATUMS, MAX_DIMENSIONS, MAX_FILTERS, MAX_VALUES, MAX_QUERIES = 1000, 30, 10, 150, 500
LIST_PAGE, MAX_DATAPOINTS = 500, 100800
STATS = ("SampleCount", "Average", "Sum", "Minimum", "Maximum")
PERCENTILE = re.compile(r"^p(\d{1,2}(\.\d{1,2})?|100)$")
METRIC_ID = re.compile(r"^[a-z][a-zA-Z0-9_]*$")
# every other operation of [BC-cw]: known to AWS, not served here (404 UnknownOperationException)
SERVED = ("PutMetricData", "GetMetricData", "ListMetrics")


class CborError(Exception):
    """An error answer: [BC-cw] shape name, its query code (awsQueryCompatible), HTTP status."""

    SHAPES = {"InvalidParameterValue": "InvalidParameterValueException",
              "InvalidParameterCombination": "InvalidParameterCombinationException",
              "MissingParameter": "MissingRequiredParameterException",
              "InvalidNextToken": "InvalidNextToken", "InternalServiceError": "InternalServiceFault"}

    def __init__(self, code, message, status=400, shape=None):
        super().__init__(message)
        self.code, self.message, self.status = code, message, status
        self.shape = shape or self.SHAPES.get(code, code)


def bad(msg):
    return CborError("InvalidParameterValue", msg)


def missing(name):
    return CborError("MissingParameter", f"The parameter {name} is required.")


def serialization(msg):
    return CborError("SerializationException", msg, shape="SerializationException")


def error_answer(code, message, status, shape=None, sender=True):
    """(status, headers, body) of an rpcv2Cbor error ([SPEC] "Error responses": a CBOR map with
    __type, the error's shape ID, and its members)."""
    shape = shape or CborError.SHAPES.get(code, code)
    body = cbor2.dumps({"__type": NS + shape, "message": message})
    headers = {**HEADERS, "Content-Type": "application/cbor",
               "x-amzn-query-error": f"{code};{'Sender' if sender else 'Receiver'}"}
    return status, headers, body


# ---------------------------------------------------------------- typed access to the input

def _member(d, name, kind, where, required=False):
    v = d.get(name)
    if v is None:
        if required:
            raise missing(f"{where}{name}")
        return None
    ok = {"str": lambda x: isinstance(x, str),
          "int": lambda x: isinstance(x, int) and not isinstance(x, bool),
          "num": lambda x: isinstance(x, (int, float)) and not isinstance(x, bool),
          "bool": lambda x: isinstance(x, bool),
          "list": lambda x: isinstance(x, list),
          "map": lambda x: isinstance(x, dict),
          "time": lambda x: isinstance(x, datetime.datetime)}[kind](v)
    if not ok:
        raise serialization(f"{where}{name}: expected a CBOR {kind}")
    return v


def _length(v, name, lo, hi):
    if not lo <= len(v) <= hi:
        raise bad(f"The parameter {name} must be between {lo} and {hi} characters long.")


def _naive_utc(t):
    """moto's cloudwatch keeps naive UTC datetimes (moto.core.utils.utcnow)."""
    if t.tzinfo is not None:
        t = t.astimezone(datetime.timezone.utc).replace(tzinfo=None)
    return t


def _tag1(t):
    """A timestamp as [SPEC] encodes it: CBOR tag 1, epoch seconds."""
    epoch = t.replace(tzinfo=datetime.timezone.utc).timestamp()
    return cbor2.CBORTag(1, int(epoch) if epoch == int(epoch) else epoch)


def _dimensions(d, where, filters=False):
    dims = _member(d, "Dimensions", "list", where) or []
    cap = MAX_FILTERS if filters else MAX_DIMENSIONS
    if len(dims) > cap:
        raise bad(f"The collection {where}Dimensions must not have a size greater than {cap}.")
    out, names = [], set()
    for i, dim in enumerate(dims, 1):
        at = f"{where}Dimensions.member.{i}."
        if not isinstance(dim, dict):
            raise serialization(f"{at[:-1]}: expected a CBOR map")
        name = _member(dim, "Name", "str", at, required=True)
        value = _member(dim, "Value", "str", at, required=not filters)
        _length(name, f"{at}Name", 1, 255)
        if value is not None:
            _length(value, f"{at}Value", 1, 1024)
        if name in names:
            raise bad(f"No metric may have duplicate dimension names ({where}Dimensions: {name}).")
        names.add(name)
        out.append({"Name": name, "Value": value} if value is not None or not filters else {"Name": name})
    return out


def _finite(v, name):
    if not math.isfinite(v) or abs(v) > LIMIT:
        raise bad(f"The value {v} for parameter {name} is invalid.")
    return float(v)


# ---------------------------------------------------------------- the operations

def put_metric_data(backend, p, now):
    namespace = _member(p, "Namespace", "str", "", required=True)
    _length(namespace, "Namespace", 1, 255)
    if namespace.startswith(":"):
        raise bad(f"The value {namespace} for parameter Namespace is invalid.")  # [BC-cw] pattern [^:].*
    if namespace.startswith("AWS/"):
        raise bad(f"The value {namespace} for parameter Namespace is invalid. "
                  "Namespaces beginning with AWS/ are reserved.")
    if p.get("EntityMetricData"):
        raise bad("EntityMetricData is not supported by the emulator.")
    data = _member(p, "MetricData", "list", "")
    if not data:
        raise missing("MetricData")
    if len(data) > MAX_DATUMS:
        raise bad(f"The collection MetricData must not have a size greater than {MAX_DATUMS}.")
    datums = []
    for i, m in enumerate(data, 1):
        at = f"MetricData.member.{i}."
        if not isinstance(m, dict):
            raise serialization(f"{at[:-1]}: expected a CBOR map")
        name = _member(m, "MetricName", "str", at, required=True)
        _length(name, f"{at}MetricName", 1, 255)
        datum = {"MetricName": name, "Dimensions": _dimensions(m, at)}
        ts = _member(m, "Timestamp", "time", at)
        if ts is not None:
            ts = _naive_utc(ts)
            # [BC-cw] PutMetricData: "as much as two weeks before the current date, and as much as
            # 2 hours after the current day and time"
            if ts < now - datetime.timedelta(days=14) or ts > now + datetime.timedelta(hours=2):
                raise bad(f"The parameter {at}Timestamp must specify a time no more than two weeks in "
                          "the past and no more than two hours in the future.")
        datum["Timestamp"] = ts or now
        value = _member(m, "Value", "num", at)
        values = _member(m, "Values", "list", at)
        counts = _member(m, "Counts", "list", at)
        stats = _member(m, "StatisticValues", "map", at)
        given = [k for k, v in (("Value", value), ("Values", values), ("StatisticValues", stats)) if v is not None]
        if len(given) > 1:
            raise CborError("InvalidParameterCombination",
                            f"The parameters {at}{given[0]} and {at}{given[1]} are mutually exclusive "
                            "and you have specified both.")
        if counts is not None and values is None:
            raise CborError("InvalidParameterCombination", f"The parameter {at}Counts requires {at}Values.")
        if value is not None:
            datum["Value"] = _finite(value, f"{at}Value")
        elif values is not None:
            if len(values) > MAX_VALUES:
                raise bad(f"The collection {at}Values must not have a size greater than {MAX_VALUES}.")
            if not values:
                raise missing(f"{at}Values")
            for j, v in enumerate(values, 1):
                if not isinstance(v, (int, float)) or isinstance(v, bool):
                    raise serialization(f"{at}Values.member.{j}: expected a CBOR number")
            datum["Values"] = [_finite(v, f"{at}Values") for v in values]
            if counts is not None:
                if len(counts) != len(values):
                    raise bad(f"The parameters {at}Values and {at}Counts must be of the same size.")
                for j, c in enumerate(counts, 1):
                    if not isinstance(c, (int, float)) or isinstance(c, bool) or not math.isfinite(c) or c < 0:
                        raise bad(f"The value {c} for parameter {at}Counts.member.{j} is invalid.")
                datum["Counts"] = [float(c) for c in counts]
        elif stats is not None:
            s = {}
            for k in ("SampleCount", "Sum", "Minimum", "Maximum"):
                v = _member(stats, k, "num", f"{at}StatisticValues.", required=True)
                s[k] = _finite(v, f"{at}StatisticValues.{k}")
            if s["SampleCount"] <= 0 or s["Minimum"] > s["Maximum"]:
                raise bad(f"The parameter {at}StatisticValues is invalid.")
            datum["StatisticValues"] = s
        else:
            raise missing(f"{at}Value")  # AWS would take 0; the stricter reading (drover always sends one)
        unit = _member(m, "Unit", "str", at)
        if unit is not None:
            if unit not in UNITS:
                raise bad(f"The value {unit} for parameter {at}Unit is invalid.")
            datum["Unit"] = unit
        res = _member(m, "StorageResolution", "int", at)
        if res is not None and res not in (1, 60):  # [BC-cw] "Valid values are 1 and 60"
            raise bad(f"The value {res} for parameter {at}StorageResolution is invalid.")
        datums.append(datum)
    backend.put_metric_data(namespace, datums)  # all validated first: nothing is stored on an error
    return None


def _identity(md):
    return (md.namespace, md.name, frozenset((d.name, d.value) for d in md.dimensions))


def _token(kind, n):
    return base64.urlsafe_b64encode(json.dumps({kind: n}).encode()).decode()


def _offset(token, kind, code):
    if token is None:
        return 0
    try:
        n = json.loads(base64.urlsafe_b64decode(token.encode()))[kind]
        if isinstance(n, int) and n >= 0:
            return n
    except Exception:
        pass
    raise CborError(code, "The NextToken is invalid." if code == "InvalidNextToken"
                    else f"The value {token} for parameter NextToken is invalid.")


def list_metrics(backend, p, now):
    namespace = _member(p, "Namespace", "str", "")
    name = _member(p, "MetricName", "str", "")
    for k, v in (("Namespace", namespace), ("MetricName", name)):
        if v is not None:
            _length(v, k, 1, 255)
    filters = _dimensions(p, "", filters=True)
    recent = _member(p, "RecentlyActive", "str", "")
    if recent is not None and recent != "PT3H":
        raise bad(f"The value {recent} for parameter RecentlyActive is invalid.")
    start = _offset(_member(p, "NextToken", "str", ""), "metric", "InvalidParameterValue")
    seen, metrics = set(), []
    for md in backend.get_all_metrics():
        if namespace is not None and md.namespace != namespace or name is not None and md.name != name:
            continue
        if recent and md.timestamp < now - datetime.timedelta(hours=3):
            continue
        dims = {(d.name, d.value) for d in md.dimensions}
        names = {d.name for d in md.dimensions}
        if any(f["Name"] not in names if "Value" not in f else (f["Name"], f["Value"]) not in dims
               for f in filters):
            continue
        key = _identity(md)
        if key not in seen:
            seen.add(key)
            metrics.append({"Namespace": md.namespace, "MetricName": md.name,
                            "Dimensions": [{"Name": d.name, "Value": d.value} for d in md.dimensions]})
    if start > len(metrics):
        raise bad("The value for parameter NextToken is invalid.")
    out = {"Metrics": metrics[start:start + LIST_PAGE]}
    if start + LIST_PAGE < len(metrics):
        out["NextToken"] = _token("metric", start + LIST_PAGE)
    return out


def _samples(md):
    """(count, sum, min, max, raw values or None) of one stored datum."""
    if hasattr(md, "value"):
        return 1.0, md.value, md.value, md.value, [md.value]
    return md.sample_count, md.sum_stat, md.min_stat, md.max_stat, None


def _statistic(stat, data):
    parts = [_samples(md) for md in data]
    count = sum(x[0] for x in parts)
    if stat == "SampleCount":
        return count
    if stat == "Sum":
        return sum(x[1] for x in parts)
    if stat == "Average":
        return sum(x[1] for x in parts) / count
    if stat == "Minimum":
        return min(x[2] for x in parts)
    if stat == "Maximum":
        return max(x[3] for x in parts)
    raw = sorted(v for x in parts for v in (x[4] or ()))  # pNN, nearest rank over raw values
    if not raw:
        return None
    q = float(stat[1:])
    return raw[max(0, math.ceil(q / 100 * len(raw)) - 1)]


def get_metric_data(backend, p, now):
    queries = _member(p, "MetricDataQueries", "list", "", required=True)
    start = _member(p, "StartTime", "time", "", required=True)
    end = _member(p, "EndTime", "time", "", required=True)
    if not queries:
        raise missing("MetricDataQueries")
    if len(queries) > MAX_QUERIES:
        raise bad(f"The collection MetricDataQueries must not have a size greater than {MAX_QUERIES}.")
    start, end = _naive_utc(start), _naive_utc(end)
    if start >= end:
        raise bad("The parameter StartTime must be less than the parameter EndTime.")
    scan = _member(p, "ScanBy", "str", "") or "TimestampDescending"
    if scan not in ("TimestampDescending", "TimestampAscending"):
        raise bad(f"The value {scan} for parameter ScanBy is invalid.")
    cap = _member(p, "MaxDatapoints", "int", "")
    if cap is not None and cap < 1:
        raise bad(f"The value {cap} for parameter MaxDatapoints is invalid.")
    cap = cap or MAX_DATAPOINTS
    skip = _offset(_member(p, "NextToken", "str", ""), "datapoint", "InvalidNextToken")
    ids, plans = set(), []
    for i, q in enumerate(queries, 1):
        at = f"MetricDataQueries.member.{i}."
        if not isinstance(q, dict):
            raise serialization(f"{at[:-1]}: expected a CBOR map")
        qid = _member(q, "Id", "str", at, required=True)
        if not METRIC_ID.match(qid) or len(qid) > 255:
            raise bad(f"The value {qid} for parameter {at}Id is invalid. The first character must be a "
                      "lowercase letter; the others letters, numbers or underscores.")
        if qid in ids:
            raise bad(f"The value {qid} for parameter {at}Id is not unique.")
        ids.add(qid)
        stat_spec = _member(q, "MetricStat", "map", at)
        if q.get("Expression") is not None:
            if stat_spec is not None:
                raise CborError("InvalidParameterCombination",
                                f"The parameters {at}MetricStat and {at}Expression are mutually exclusive.")
            raise bad(f"{at}Expression: metric math and Metrics Insights are not supported by the emulator.")
        if stat_spec is None:
            raise missing(f"{at}MetricStat")
        sat = f"{at}MetricStat."
        metric = _member(stat_spec, "Metric", "map", sat, required=True)
        period = _member(stat_spec, "Period", "int", sat, required=True)
        stat = _member(stat_spec, "Stat", "str", sat, required=True)
        unit = _member(stat_spec, "Unit", "str", sat)
        if period < 1 or (period not in (1, 5, 10, 20, 30) and period % 60):
            raise bad(f"The parameter {sat}Period must be 1, 5, 10, 20, 30, or a multiple of 60.")
        if stat not in STATS and not PERCENTILE.match(stat):
            raise bad(f"The value {stat} for parameter {sat}Stat is invalid.")
        if unit is not None and unit not in UNITS:
            raise bad(f"The value {unit} for parameter {sat}Unit is invalid.")
        mat = f"{sat}Metric."
        ns = _member(metric, "Namespace", "str", mat, required=True)
        name = _member(metric, "MetricName", "str", mat, required=True)
        dims = frozenset((d["Name"], d["Value"]) for d in _dimensions(metric, mat))
        ret = _member(q, "ReturnData", "bool", at)
        label = _member(q, "Label", "str", at) or name
        plans.append((qid, label, (ns, name, dims), period, stat, unit, ret is not False))
    # [BC-cw] StartTime: "Start time less than 15 days ago - Round down to the nearest whole minute"
    # (sub-minute periods: to the period); EndTime is exclusive.
    epoch0 = datetime.datetime(1970, 1, 1)
    results = []
    stored = backend.get_all_metrics()
    for qid, label, key, period, stat, unit, ret in plans:
        if not ret:
            continue
        grain = period if period < 60 else 60
        s = int((start - epoch0).total_seconds()) // grain * grain
        data = [md for md in stored if _identity(md) == key and (unit is None or md.unit == unit)]
        buckets = {}
        for md in data:
            t = (md.timestamp - epoch0).total_seconds()
            if s <= t < (end - epoch0).total_seconds():
                buckets.setdefault(s + int((t - s) // period) * period, []).append(md)
        points = [(b, _statistic(stat, mds)) for b, mds in sorted(buckets.items())]
        points = [(b, v) for b, v in points if v is not None]
        if scan == "TimestampDescending":
            points.reverse()
        results.append({"Id": qid, "Label": label, "points": points})
    # pagination over the datapoints of every query, in order ([BC-cw] MaxDatapoints, NextToken)
    out, seen, more = [], 0, False
    for r in results:
        pts = r.pop("points")
        mine = pts[max(0, skip - seen):max(0, skip + cap - seen)]  # global indices [skip, skip + cap)
        seen += len(pts)
        more = more or seen > skip + cap
        partial = seen > skip + cap
        r["Timestamps"] = [_tag1(epoch0 + datetime.timedelta(seconds=b)) for b, _ in mine]
        r["Values"] = [float(v) for _, v in mine]
        r["StatusCode"] = "PartialData" if partial else "Complete"
        r["Messages"] = []
        out.append(r)
    answer = {"MetricDataResults": out, "Messages": []}
    if more:
        answer["NextToken"] = _token("datapoint", skip + cap)
    return answer


OPERATIONS = {"PutMetricData": put_metric_data, "GetMetricData": get_metric_data, "ListMetrics": list_metrics}


def _body(request):
    data = request.get_data()
    if (request.headers.get("Content-Encoding") or "").lower() == "gzip":  # [BC-cw] PutMetricData requestcompression
        try:
            data = gzip.decompress(data)
        except OSError:
            raise serialization("The request body is not valid gzip.")
    if not data:
        return {}  # [SPEC]: an empty body is an empty input structure
    try:
        p = cbor2.loads(data)
    except Exception as e:
        raise serialization(f"The request body is not valid CBOR: {e}")
    if not isinstance(p, dict):
        raise serialization("The request body must be a CBOR map.")
    return p


def install(lock, operation, fault_response):
    """Adds the rpcv2Cbor route to moto's cloudwatch app and returns drover_moto's `_operation`
    and `_fault_response`, wrapped: CloudWatch calls are named `cloudwatch:<Operation>` (whatever
    the protocol: the SigV4 scope says `monitoring`), and an injected fault on a CBOR call is
    answered in CBOR."""
    import moto.cloudwatch.urls as cloudwatch_urls
    from moto.cloudwatch.models import cloudwatch_backends
    from moto.core.responses import BaseResponse
    from moto.core.utils import utcnow

    class CborFront(BaseResponse):
        def __init__(self):
            super().__init__(service_name="cloudwatch")

        def _dispatch(self, request, full_url=None, headers=None):
            op = PATH.match(request.path).group(1)
            try:
                if request.headers.get("smithy-protocol") != "rpc-v2-cbor":
                    raise serialization("Missing or unsupported smithy-protocol header (rpc-v2-cbor expected).")
                if op not in OPERATIONS:
                    raise CborError("UnknownOperationException", f"Operation {op} is not served over rpcv2Cbor "
                                    "by the emulator." if op in KNOWN else f"Unknown operation {op}.",
                                    status=404, shape="UnknownOperationException")
                p = _body(request)
                self.setup_class(request, full_url, headers, use_raw_body=True)
                with lock:
                    result = OPERATIONS[op](cloudwatch_backends[self.current_account][self.region], p, utcnow())
            except CborError as e:
                return error_answer(e.code, e.message, e.status, e.shape)
            if result is None:  # no output shape: an empty body ([SPEC])
                return 200, dict(HEADERS), b""
            return 200, {**HEADERS, "Content-Type": "application/cbor"}, cbor2.dumps(result)

    cloudwatch_urls.url_paths["{0}/service/" + SERVICE + "/operation/(?P<operation>[^/]+)$"] = CborFront.dispatch

    def named(environ):
        service, op = operation(environ)
        if service != "monitoring":
            return service, op
        m = PATH.match(environ.get("PATH_INFO", ""))
        if m:
            return "cloudwatch", m.group(1)
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        return "cloudwatch", (target.split(".")[-1] if target else op)  # query: the log reads Action

    def fault(environ, start_response, service, f):
        if not (service == "cloudwatch" and PATH.match(environ.get("PATH_INFO", ""))):
            return fault_response(environ, start_response, service, f)
        environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        status, headers, body = error_answer(f["code"], f["message"], f["status"], sender=f["status"] < 500)
        from http import HTTPStatus
        start_response(f"{status} {HTTPStatus(status).phrase}",
                       [*headers.items(), ("Content-Length", str(len(body)))])
        return [body]
    return named, fault


KNOWN = {"DeleteAlarms", "DeleteAnomalyDetector", "DeleteDashboards", "DeleteInsightRules", "DeleteMetricStream",
         "DescribeAlarmHistory", "DescribeAlarms", "DescribeAlarmsForMetric", "DescribeAnomalyDetectors",
         "DescribeInsightRules", "DisableAlarmActions", "DisableInsightRules", "EnableAlarmActions",
         "EnableInsightRules", "GetDashboard", "GetInsightRuleReport", "GetMetricStatistics", "GetMetricStream",
         "GetMetricWidgetImage", "ListDashboards", "ListManagedInsightRules", "ListMetricStreams",
         "ListTagsForResource", "PutAnomalyDetector", "PutCompositeAlarm", "PutDashboard", "PutInsightRule",
         "PutManagedInsightRules", "PutMetricAlarm", "PutMetricStream", "SetAlarmState", "StartMetricStreams",
         "StopMetricStreams", "TagResource", "UntagResource"}
