#!/usr/bin/python3
"""A fake of AWS STS (Query protocol, version 2011-06-15) for the credential providers' tests.

Usage: sts_fake.py --port 0 --port-file FILE     (or import it and call make_server())

Requests are `POST <tenant-prefix>/` with a form body, as SDKs send STS calls. Responses use
the XML shapes of botocore's sts model (AssumeRoleResponse/AssumeRoleResult/Credentials, ...)
with ResponseMetadata/RequestId and an x-amzn-RequestId header; errors are
ErrorResponse/Error/{Type,Code,Message} + RequestId.

Supported actions:
  AssumeRole                 signed (an Authorization header with a SigV4 Credential= is
                             required: the caller's access key id is taken from it); RoleArn and
                             RoleSessionName required; DurationSeconds 900..43200; SerialNumber
                             needs TokenCode.
  AssumeRoleWithWebIdentity  unsigned; RoleArn, RoleSessionName, WebIdentityToken required; a
                             token listed in state["rejected_tokens"] -> InvalidIdentityToken.
  GetCallerIdentity          signed; answers for the caller's access key id.
Issued credentials are deterministic, so two clients that make the same call get the same
access key id: "ASIA" + 16 upper-case hex digits of sha1(action|RoleArn|caller key or token).
Secret "secret-<same digits>", session token "token-<same digits>". Expiration: now +
DurationSeconds (default 3600), or state["expiration"] when set (an ISO 8601 string).

Control (under the tenant prefix):
  GET  /_fake/calls  [{action, params, caller, time[, error]}]
  GET  /_fake/state  the tenant's state;  PUT /_fake/state  JSON merged into it
  POST /_fake/fail   {"action": "X"|"*", "count": N, "status": 400, "code": "...", "message"}
  POST /_fake/reset
"""

import datetime
import hashlib
import os
import re
import sys
import time
import uuid
from xml.sax.saxutils import escape

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness_common  # noqa: E402

NS = "https://sts.amazonaws.com/doc/2011-06-15/"
ACCOUNT = "123456789012"


ApiError = harness_common.ApiError


class Tenant(harness_common.FakeTenant):
    def reset_state(self):
        self.state = {"expiration": None, "rejected_tokens": []}

    def state_doc(self):
        return self.state

    def merge_state(self, doc):
        self.state.update(doc)


def _digits(*parts):
    return hashlib.sha1("|".join(parts).encode("utf-8")).hexdigest()[:16].upper()


def _expiration(tenant, params):
    if tenant.state.get("expiration"):
        return tenant.state["expiration"]
    duration = int(params.get("DurationSeconds") or 3600)
    when = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=duration)
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def _require(params, *names):
    for name in names:
        if not params.get(name):
            raise ApiError(400, "ValidationError",
                           "1 validation error detected: Value null at '%s' failed to satisfy "
                           "constraint: Member must not be null" % (name[:1].lower() + name[1:]))


def _credentials_xml(tenant, params, digits):
    return ("<Credentials><AccessKeyId>ASIA%s</AccessKeyId>"
            "<SecretAccessKey>secret-%s</SecretAccessKey>"
            "<SessionToken>token-%s</SessionToken>"
            "<Expiration>%s</Expiration></Credentials>" %
            (digits, digits, digits, escape(_expiration(tenant, params))))


def _assumed_user(params, digits):
    role = params["RoleArn"].rsplit("/", 1)[-1]
    session = params["RoleSessionName"]
    return ("<AssumedRoleUser><AssumedRoleId>AROA%s:%s</AssumedRoleId>"
            "<Arn>arn:aws:sts::%s:assumed-role/%s/%s</Arn></AssumedRoleUser>" %
            (digits, escape(session), ACCOUNT, escape(role), escape(session)))


def _check_duration(params):
    if params.get("DurationSeconds"):
        value = int(params["DurationSeconds"])
        if value < 900 or value > 43200:
            raise ApiError(400, "ValidationError",
                           "The requested DurationSeconds exceeds the allowed range")


def assume_role(tenant, params, caller):
    if caller is None:
        raise ApiError(403, "MissingAuthenticationToken", "Request is missing Authentication Token")
    _require(params, "RoleArn", "RoleSessionName")
    _check_duration(params)
    if params.get("SerialNumber") and not params.get("TokenCode"):
        raise ApiError(403, "AccessDenied", "MultiFactorAuthentication failed, TokenCode missing")
    digits = _digits("AssumeRole", params["RoleArn"], caller)
    return (_credentials_xml(tenant, params, digits) + _assumed_user(params, digits) +
            "<PackedPolicySize>6</PackedPolicySize>")


def assume_role_with_web_identity(tenant, params, caller):
    del caller  # unsigned
    _require(params, "RoleArn", "RoleSessionName", "WebIdentityToken")
    _check_duration(params)
    token = params["WebIdentityToken"]
    if token in tenant.state.get("rejected_tokens", []):
        raise ApiError(400, "InvalidIdentityToken", "Couldn't retrieve verification key")
    digits = _digits("AssumeRoleWithWebIdentity", params["RoleArn"], token)
    return (_credentials_xml(tenant, params, digits) +
            "<SubjectFromWebIdentityToken>system:serviceaccount:default:fake"
            "</SubjectFromWebIdentityToken>" + _assumed_user(params, digits) +
            "<Provider>oidc.fake.example</Provider><Audience>sts.amazonaws.com</Audience>")


def get_caller_identity(tenant, params, caller):
    del tenant, params
    if caller is None:
        raise ApiError(403, "MissingAuthenticationToken", "Request is missing Authentication Token")
    return ("<Arn>arn:aws:iam::%s:user/%s</Arn><UserId>%s</UserId><Account>%s</Account>" %
            (ACCOUNT, escape(caller), escape(caller), ACCOUNT))


HANDLERS = {
    "AssumeRole": assume_role,
    "AssumeRoleWithWebIdentity": assume_role_with_web_identity,
    "GetCallerIdentity": get_caller_identity,
}

_tenants = harness_common.Tenants(Tenant)


def _caller(authorization):
    m = re.search(r"Credential=([^/,\s]+)/", authorization or "")
    return m.group(1) if m else None


class Handler(harness_common.QueryHandler):
    tenants = _tenants

    def _api(self, tenant, params):
        action = params.pop("Action", "")
        params.pop("Version", None)
        caller = _caller(self.headers.get("Authorization"))
        request_id = str(uuid.uuid4())
        call = {"action": action, "params": params, "caller": caller, "time": time.time()}
        tenant.calls.append(call)
        try:
            if action not in HANDLERS:
                raise ApiError(400, "InvalidAction",
                               "Could not find operation %s for version 2011-06-15" % action)
            failure = tenant.take_failure(action)
            if failure is not None:
                raise failure
            inner = HANDLERS[action](tenant, params, caller)
        except ApiError as e:
            call["error"] = e.code
            kind = "Receiver" if e.status >= 500 else "Sender"
            xml = ('<ErrorResponse xmlns="%s"><Error><Type>%s</Type><Code>%s</Code>'
                   "<Message>%s</Message></Error><RequestId>%s</RequestId></ErrorResponse>" %
                   (NS, kind, escape(e.code), escape(e.message), request_id))
            return self.reply(e.status, xml, "text/xml",
                              headers={"x-amzn-RequestId": request_id})
        xml = ('<%sResponse xmlns="%s"><%sResult>%s</%sResult><ResponseMetadata>'
               "<RequestId>%s</RequestId></ResponseMetadata></%sResponse>" %
               (action, NS, action, inner, action, request_id, action))
        self.reply(200, xml, "text/xml", headers={"x-amzn-RequestId": request_id})



def make_server(port=0):
    """A server bound to 127.0.0.1:port (0 = free port); the caller runs serve_forever."""
    return harness_common.ThreadingServer(("127.0.0.1", port), Handler)


if __name__ == "__main__":
    harness_common.serve(Handler, "sts_fake")
