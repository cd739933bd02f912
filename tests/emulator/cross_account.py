"""Cross-account AWS for drover_moto: who the caller is, IAM policy evaluation, STS AssumeRole
as AWS enforces it, and the AWS Organization that cross-account AWS Backup copies need.

moto 5.2.5 keeps every resource per account already (its backends are keyed by account id),
and maps the access keys that STS AssumeRole hands out to the role's account. What it lacks is
the enforcement: `STSBackend.assume_role` lets anyone assume any role, existing or not. This
module wraps moto's `TokenResponse.assume_role` from outside moto (`install()`), so that
AssumeRole answers as AWS does ([BC-sts] = botocore's sts/2011-06-15 service-2.json):

- the role must exist in IAM of the role ARN's account, and its trust policy
  (AssumeRolePolicyDocument) must Allow `sts:AssumeRole` to the caller, with any
  `sts:ExternalId` condition met; otherwise HTTP 403 `AccessDenied`, "User: <caller arn> is not
  authorized to perform: sts:AssumeRole on resource: <role arn>" (the same answer whether the
  role is missing or does not trust the caller, as AWS gives);
- `DurationSeconds` beyond the role's `MaxSessionDuration` (default 3600) is a
  `ValidationError` "The requested DurationSeconds exceeds the MaxSessionDuration set for this
  role."; beyond one hour for a caller that is itself an assumed role (role chaining), "The
  requested DurationSeconds exceeds the 1 hour session limit for roles assumed by role
  chaining." ([BC-sts] DurationSeconds; both messages as AWS words them);
- the model's constraints on DurationSeconds (900-43200), RoleSessionName and ExternalId.

The organization (`Organization`) is the emulator's own state, set through
`POST /_drover/organization`: moto's Organizations API is not consulted.

It must not import drover_moto (that runs as `__main__`).
"""
import fnmatch
import hashlib
import json
import re
import time
import urllib.parse
import uuid
from xml.sax.saxutils import escape

ACCOUNT_ID = re.compile(r"^\d{12}$")
ROLE_ARN = re.compile(r"^arn:aws:iam::(\d{12}):role/(?:[\x21-\x7e]*/)?[\w+=,.@-]{1,64}$")
STS_NS = "https://sts.amazonaws.com/doc/2011-06-15/"
GLOBAL_SETTING_NAMES = ("isCrossAccountBackupEnabled", "isMpaEnabled", "isDelegatedAdministratorEnabled")


# ---------------------------------------------------------------- the caller

def caller(access_key, account, region="us-east-1"):
    """(arn, account, principals, assumed_role) of the caller of a request made with
    `access_key`, served as `account`. `arn` is what GetCallerIdentity answers (moto's
    `STSBackend.get_caller_identity`: an assumed-role session, an IAM user, else moto's default
    `arn:aws:sts::<account>:user/moto`); `principals` are the policy principals that name it: its
    account id, the account's root ARN, its own ARN, and for a role session the role's ARN."""
    from moto.sts.models import sts_backends
    backend = sts_backends[account]["aws"]
    _, arn, acct = backend.get_caller_identity(access_key, region)
    assumed = backend.get_assumed_role_from_access_key(access_key)
    principals = {acct, f"arn:aws:iam::{acct}:root", arn}
    if assumed is not None:
        principals.add(assumed.role_arn)
    return arn, acct, principals, assumed


# ---------------------------------------------------------------- policies

def parse_policy(text):
    """A JSON policy document (moto keeps trust policies as sent; IAM may hand them back
    URL-encoded), or None if it is not one."""
    if isinstance(text, dict):
        return text
    for candidate in (text, urllib.parse.unquote(text or "")):
        try:
            doc = json.loads(candidate)
        except (TypeError, ValueError):
            continue
        if isinstance(doc, dict) and isinstance(doc.get("Statement"), (list, dict)):
            return doc
    return None


def _listed(v):
    return v if isinstance(v, list) else [v]


def _action_matches(statement, action):
    if "Action" not in statement:
        return None  # NotAction: not evaluated
    return any(isinstance(a, str) and fnmatch.fnmatchcase(action.lower(), a.lower())
               for a in _listed(statement["Action"]))


def _principal_matches(statement, principals):
    if "Principal" not in statement:
        return None  # NotPrincipal: not evaluated
    p = statement["Principal"]
    if p == "*":
        return True
    if not isinstance(p, dict):
        return False
    return any(v == "*" or v in principals for v in _listed(p.get("AWS", [])) if isinstance(v, str))


def _condition_holds(condition, context):
    """True / False, or None when it names an operator or key the emulator does not evaluate.
    Only StringEquals / StringLike on the keys in `context` (names compared case-insensitively,
    as IAM does for condition keys) are evaluated."""
    if not condition:
        return True
    if not isinstance(condition, dict):
        return None
    held = True
    for op, block in condition.items():
        if op not in ("StringEquals", "StringLike") or not isinstance(block, dict):
            return None
        for key, wanted in block.items():
            if key.lower() not in context:
                return None
            have = context[key.lower()]
            if have is None:
                held = False
                continue
            wanted = [w for w in _listed(wanted) if isinstance(w, str)]
            if op == "StringEquals":
                ok = have in wanted
            else:
                ok = any(fnmatch.fnmatchcase(have, w) for w in wanted)
            held = held and ok
    return held


def allows(doc, action, principals, context):
    """Whether policy `doc` allows `action` to a caller named by `principals`, with condition keys
    `context` ({lower-case key: value or None}). An explicit Deny wins. Stricter reading where
    the emulator cannot evaluate a statement (NotAction, NotPrincipal, another condition
    operator or key): an Allow does not apply, a Deny does."""
    allowed = False
    for st in _listed(doc.get("Statement", [])):
        if not isinstance(st, dict):
            continue
        action_ok = _action_matches(st, action)  # True, False, or None: not evaluated
        principal_ok = _principal_matches(st, principals)
        if action_ok is False or principal_ok is False:
            continue
        held = _condition_holds(st.get("Condition"), context)
        if st.get("Effect") == "Deny" and held is not False:
            return False
        if st.get("Effect") == "Allow" and action_ok and principal_ok and held is True:
            allowed = True
    return allowed


# ---------------------------------------------------------------- the organization

class Organization:
    """An AWS Organization (the emulator's own; POST /_drover/organization) and its AWS Backup
    global settings (DescribeGlobalSettings / UpdateGlobalSettings), one for the organization:
    isCrossAccountBackupEnabled lets "accounts in your organization ... copy backups to other
    accounts" ([BC-b] DescribeGlobalSettings)."""

    def __init__(self):
        self.reset()

    def reset(self):
        self.management = None
        self.members = []
        self.settings = {name: "false" for name in GLOBAL_SETTING_NAMES}
        self.last_update = None

    @property
    def id(self):
        """Deterministic: "o-" and 10 characters derived from the management account."""
        if self.management is None:
            return None
        return "o-" + hashlib.sha256(self.management.encode()).hexdigest()[:10]

    def member(self, account):
        return self.management is not None and (account == self.management or account in self.members)

    def same(self, a, b):
        return self.member(a) and self.member(b)

    def cross_account_backup(self):
        return self.management is not None and self.settings["isCrossAccountBackupEnabled"] == "true"

    def configure(self, body):
        """POST /_drover/organization: {"management": acct or null, "members": [accts]}. The
        settings are kept while the management account stays, else reset to false."""
        if set(body) - {"management", "members"}:
            raise ValueError(f"unknown keys {sorted(set(body) - {'management', 'members'})} "
                             "(known: management, members)")
        management, members = body.get("management"), body.get("members", [])
        if management is not None and not (isinstance(management, str) and ACCOUNT_ID.match(management)):
            raise ValueError("management must be a 12-digit account id or null")
        if not isinstance(members, list) or not all(isinstance(m, str) and ACCOUNT_ID.match(m) for m in members):
            raise ValueError("members must be a list of 12-digit account ids")
        if management is None and members:
            raise ValueError("an organization without a management account has no members")
        if management != self.management:
            self.reset()
            self.last_update = time.time() if management else None
        self.management = management
        self.members = sorted({m for m in members if m != management})

    def describe(self):
        return {"management": self.management, "members": self.members, "id": self.id,
                "global_settings": dict(self.settings) if self.management else None,
                "last_update_time": self.last_update}


# ---------------------------------------------------------------- STS AssumeRole

def _sts_error(code, message, status):
    body = (f'<ErrorResponse xmlns="{STS_NS}"><Error><Type>Sender</Type><Code>{escape(code)}</Code>'
            f"<Message>{escape(message)}</Message></Error><RequestId>{uuid.uuid4()}</RequestId></ErrorResponse>")
    return body, {"status": status, "Content-Type": "text/xml"}


def _validation(value, member, constraint):
    return _sts_error("ValidationError", f"1 validation error detected: Value '{value}' at '{member}' "
                                         f"failed to satisfy constraint: {constraint}", 400)


MAX_SESSION_MESSAGE = "The requested DurationSeconds exceeds the MaxSessionDuration set for this role."
CHAINING_MESSAGE = ("The requested DurationSeconds exceeds the 1 hour session limit for roles assumed by "
                    "role chaining.")


def assume_role_refusal(response):
    """None if this AssumeRole request may go on to moto, else the (body, headers) of AWS's
    refusal."""
    from moto.iam.models import iam_backends
    role_arn = response._get_param("RoleArn")
    session = response._get_param("RoleSessionName")
    external_id = response._get_param("ExternalId")
    duration = response._get_param("DurationSeconds")
    # [BC-sts] constraints (moto checks only the session name's length)
    for value, member in ((role_arn, "roleArn"), (session, "roleSessionName")):
        if value is None:
            return _sts_error("ValidationError", f"1 validation error detected: Value null at '{member}' "
                                                 "failed to satisfy constraint: Member must not be null", 400)
    if not (2 <= len(session) <= 64 and re.fullmatch(r"[\w+=,.@-]*", session)):
        if len(session) < 2:
            return _validation(session, "roleSessionName", "Member must have length greater than or equal to 2")
        if len(session) > 64:
            return _validation(session, "roleSessionName", "Member must have length less than or equal to 64")
        return _validation(session, "roleSessionName",
                           r"Member must satisfy regular expression pattern: [\w+=,.@-]*")
    if external_id is not None and not (2 <= len(external_id) <= 1224
                                        and re.fullmatch(r"[\w+=,.@:/-]*", external_id)):
        return _validation(external_id, "externalId",
                           r"Member must satisfy regular expression pattern: [\w+=,.@:\/-]*"
                           if 2 <= len(external_id) <= 1224 else
                           "Member must have length greater than or equal to 2" if len(external_id) < 2 else
                           "Member must have length less than or equal to 1224")
    if duration is not None:
        try:
            duration = int(duration)
        except (TypeError, ValueError):
            return _validation(duration, "durationSeconds", "Member must be an integer")
        if duration < 900:
            return _validation(duration, "durationSeconds", "Member must have value greater than or equal to 900")
        if duration > 43200:
            return _validation(duration, "durationSeconds", "Member must have value less than or equal to 43200")
    arn, account, principals, assumed = caller(response.get_access_key(), response.current_account,
                                               response.region)
    denied = _sts_error("AccessDenied", f"User: {arn} is not authorized to perform: sts:AssumeRole on "
                                        f"resource: {role_arn}", 403)
    m = ROLE_ARN.match(role_arn)
    if not m:
        return denied
    try:
        role = iam_backends[m.group(1)]["aws"].get_role_by_arn(role_arn)
    except Exception:  # moto's NotFoundException: no such role
        return denied
    trust = parse_policy(role.assume_role_policy_document)
    if trust is None or not allows(trust, "sts:AssumeRole", principals, {"sts:externalid": external_id}):
        return denied
    if duration is not None:
        if duration > int(role.max_session_duration or 3600):
            return _sts_error("ValidationError", MAX_SESSION_MESSAGE, 400)
        if assumed is not None and duration > 3600:
            return _sts_error("ValidationError", CHAINING_MESSAGE, 400)
    return None


def install(lock):
    """Wraps moto's STS `TokenResponse.assume_role` (from outside moto): AWS's checks first, under
    the emulator's lock (IAM and STS state are read and written together), then moto's own. IAM
    calls are served under the same lock, so a role is never read half made."""
    from moto.iam.responses import IamResponse
    from moto.sts.responses import TokenResponse
    orig = TokenResponse.assume_role
    if getattr(orig, "__drover__", False):
        return
    iam_call = IamResponse.call_action

    def locked_iam(self):
        with lock:
            return iam_call(self)
    IamResponse.call_action = locked_iam

    def assume_role(self):
        with lock:
            refusal = assume_role_refusal(self)
            if refusal is not None:
                return refusal
            return orig(self)
    assume_role.__drover__ = True
    assume_role.__wrapped__ = orig
    TokenResponse.assume_role = assume_role
