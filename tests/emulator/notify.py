"""EventBridge PutEvents and SNS Publish for drover_moto (issue 16: drover's events), from outside moto.

moto 5.2.5 already delivers PutEvents to a rule's SQS target and Publish to an SQS subscription,
through the server. This module wraps moto's `EventsBackend.put_events` and `SNSBackend.publish`
to answer what moto gets wrong or leaves out, as AWS documents it (README.md, "Events and SNS"):

- PutEvents: 1 to 10 entries and a total entry size of at most 256 KB, computed as [EB-size]
  says, else the call fails (ValidationException); `Detail` must be a JSON *object* (moto only
  warns on `[1]`), else the entry fails with MalformedDetail; a bus that does not exist, by name
  or ARN, fails its entry (moto fails the whole call with ResourceNotFoundException, which the
  model does not list for PutEvents), or is accepted silently (`missing_event_bus: "accept"`, what
  AWS has been reported to do); a bus ARN of another account or Region is served by that
  account's and Region's backend (moto would take its name in the caller's); entry faults
  (`POST /_drover/fail-entries`) fail the next entries with ErrorCode ThrottlingException /
  InternalFailure, FailedEntryCount counting them, as a partial failure of AWS does.
- Publish: `Subject` printable ASCII (no line breaks or control characters), at most 100
  characters; the message plus its attributes at most 262,144 *bytes* (moto counts characters).
- A rule's SQS target without an InputTransformer gets the whole event, `account` included.

Sources: [EB-api] https://docs.aws.amazon.com/eventbridge/latest/APIReference/API_PutEvents.html;
[EB-size] https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-putevent-size.html;
[EB-put] https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-putevents.html;
[EB-events] https://docs.aws.amazon.com/eventbridge/latest/ref/overiew-event-structure.html (the event's fields);
[BC-ev] / [BC-sns]: botocore's events/2015-10-07 and sns/2010-03-31 service-2.json (in the venv).

This module must not import drover_moto: `install` gets what it needs.
"""
import json
import re
import urllib.parse
import uuid

MAX_ENTRIES = 10  # [BC-ev] PutEventsRequestEntryList "min": 1, "max": 10
MAX_ENTRIES_BYTES = 256 * 1024  # [EB-size] "The total entry size must be less than 256KB"
MAX_SNS_BYTES = 262_144  # [BC-sns] Message: "at most 256 KiB in size (262,144 bytes, not 262,144 characters)"
MAX_SUBJECT = 100  # [BC-sns] "less than 100 characters"; AWS takes exactly 100 (getmoto/moto#1503)
SUBJECT = re.compile(r"^[\x20-\x7e]+$")  # printable ASCII: no line breaks, no control characters
BUS_ARN = re.compile(r"^arn:aws[a-z-]*:events:([a-z0-9-]+):(\d{12}):event-bus/(.+)$")
ENTRY_FAULT_CODES = ("ThrottlingException", "InternalFailure")
# Messages of injected entry faults: the emulator's wording (AWS documents the codes, not the texts).
ENTRY_FAULT_MESSAGES = {"ThrottlingException": "Rate exceeded.", "InternalFailure": "Internal Service Failure."}
EVENT_KEYS = ("version", "id", "detail-type", "source", "account", "time", "region", "resources", "detail")
SNS_NS = "http://sns.amazonaws.com/doc/2010-03-31/"


def entries_size(entries):
    """[EB-size]: Time 14 bytes if given; Source, DetailType, Detail and each of Resources, their UTF-8 bytes."""
    total = 0
    for e in entries:
        total += 14 if e.get("Time") is not None else 0
        for key in ("Source", "DetailType", "Detail"):
            total += len((e.get(key) or "").encode("utf-8"))
        total += sum(len((r or "").encode("utf-8")) for r in e.get("Resources") or [])
    return total


def sns_size(message, attributes):
    """The message and its attributes ([BC-sns]: "the combined size of the message body and message
    attributes"): each attribute's name, data type and value, in UTF-8 bytes."""
    total = len((message or "").encode("utf-8"))
    for name, attr in (attributes or {}).items():
        # moto hands them over as {"Type", "Value"} (the API's {"DataType", "StringValue" | "BinaryValue"})
        kind = attr.get("Type", attr.get("DataType"))
        value = next((attr[k] for k in ("Value", "StringValue", "BinaryValue") if attr.get(k) is not None), "")
        total += len(name.encode("utf-8")) + len(str(kind or "").encode("utf-8"))
        total += len(value if isinstance(value, bytes) else str(value or "").encode("utf-8"))
    return total


def install(lock, operation, fault_response, control):
    """Wraps moto's PutEvents and Publish; returns drover_moto's `_operation` and `_fault_response`,
    wrapped so that `events:` and `sns:` calls are named (and can be faulted), and an injected fault
    on an SNS call is answered in the query protocol's XML. `control()` gives drover_moto's Control."""
    from moto.events.exceptions import ValidationException
    from moto.events.models import EventsBackend, events_backends
    from moto.sns.exceptions import SNSInvalidParameter
    from moto.sns.models import SNSBackend

    orig_put_events = EventsBackend.put_events

    def put_events(self, events):
        events = events or []
        if not 1 <= len(events) <= MAX_ENTRIES:
            raise ValidationException(
                f"1 validation error detected: Value '[PutEventsRequestEntry]' at 'entries' failed to satisfy "
                f"constraint: Member must have length {'less than or equal to 10' if events else 'greater than or equal to 1'}")
        if entries_size(events) > MAX_ENTRIES_BYTES:
            # AWS's answer, as clients report it (awslabs/aws-service-catalog-puppet#563)
            raise ValidationException("Total size of the entries in the request is over the limit.")
        out = []
        for event in events:
            out.append(_one_event(self, event))
        return out

    def _one_event(backend, event):
        if not (event.get("Source") and event.get("DetailType") and event.get("Detail")):
            return orig_put_events(backend, [event])[0]  # moto's InvalidArgument entries
        try:
            detail = json.loads(event["Detail"])
        except ValueError:
            detail = None
        if not isinstance(detail, dict):  # [EB-api] Detail: "A valid JSON object"
            return {"ErrorCode": "MalformedDetail", "ErrorMessage": "Detail is malformed."}
        name = event.get("EventBusName") or "default"
        m = BUS_ARN.match(name)
        target = backend
        if m:
            region, account, name = m.groups()
            target = events_backends[account][region]
        if name not in target.event_buses:
            if control().missing_event_bus == "accept":
                return {"EventId": str(uuid.uuid4())}  # accepted, delivered nowhere
            return {"ErrorCode": "ResourceNotFoundException", "ErrorMessage": f"Event bus {name} does not exist."}
        fault = control().take_entry_fault("events", "PutEvents")
        if fault:
            return {"ErrorCode": fault["code"], "ErrorMessage": fault["message"]}
        return orig_put_events(target, [{**event, "EventBusName": name}])[0]

    EventsBackend.put_events = put_events

    # A target without an InputTransformer gets the whole event ([EB-events]: version, id, detail-type,
    # source, account, time, region, resources, detail); moto 5.2.5's default template drops "account".
    from moto.events.utils import EventTemplateParser
    orig_parse = EventTemplateParser.parse

    def parse(input_template, input_paths_map, event):
        if input_template or input_paths_map:
            return orig_parse(input_template, input_paths_map, event)
        return {k: event[k] for k in EVENT_KEYS if k in event}

    EventTemplateParser.parse = staticmethod(parse)

    orig_publish = SNSBackend.publish

    def publish(self, message, arn, phone_number=None, subject=None, message_attributes=None, **kwargs):
        if subject is not None and (len(subject) > MAX_SUBJECT or not SUBJECT.match(subject)):
            raise SNSInvalidParameter("Invalid parameter: Subject")
        if not phone_number and sns_size(message, message_attributes) > MAX_SNS_BYTES:
            raise SNSInvalidParameter("Invalid parameter: Message too long")
        return orig_publish(self, message, arn, phone_number=phone_number, subject=subject,
                            message_attributes=message_attributes, **kwargs)

    SNSBackend.publish = publish

    def named(environ):
        service, op = operation(environ)
        if service == "events" and not op:
            target = environ.get("HTTP_X_AMZ_TARGET", "")
            return service, (target.split(".")[-1] if target else None)
        if service == "sns" and not op:
            action = (urllib.parse.parse_qs(environ.get("QUERY_STRING", "")).get("Action")
                      or _form(environ).get("Action"))
            return service, (action[0] if action else None)
        return service, op

    def fault(environ, start_response, service, f):
        if service != "sns":
            return fault_response(environ, start_response, service, f)
        # the query protocol's error: <ErrorResponse><Error><Type/><Code/><Message/></Error><RequestId/>
        import html
        from http import HTTPStatus
        environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        request_id = str(uuid.uuid4())
        body = (f'<ErrorResponse xmlns="{SNS_NS}"><Error><Type>{"Sender" if f["status"] < 500 else "Receiver"}</Type>'
                f"<Code>{html.escape(f['code'])}</Code><Message>{html.escape(f['message'])}</Message></Error>"
                f"<RequestId>{request_id}</RequestId></ErrorResponse>").encode()
        start_response(f"{f['status']} {HTTPStatus(f['status']).phrase}",
                       [("Content-Type", "text/xml"), ("Content-Length", str(len(body))),
                        ("x-amzn-RequestId", request_id)])
        return [body]
    return named, fault


def _form(environ):
    """The form parameters of a query-protocol body, leaving the body readable again for moto."""
    import io
    if not environ.get("CONTENT_TYPE", "").startswith("application/x-www-form-urlencoded"):
        return {}
    data = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
    environ["wsgi.input"] = io.BytesIO(data)
    return urllib.parse.parse_qs(data.decode("utf-8", "replace"))
