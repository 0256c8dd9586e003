#!/usr/bin/python3
"""A fake of AWS Secrets Manager and SSM Parameter Store for the agent's secret fetching: the
two reads an attempt makes, GetSecretValue and GetParameter (with decryption).

Usage: secrets_fake.py --port 0 --port-file FILE     (or import it and call make_server())

JSON 1.1 over POST <tenant>/, one endpoint for both services, told apart by X-Amz-Target:
  secretsmanager.GetSecretValue {"SecretId": name or ARN[, "VersionStage"]}
    -> {"ARN", "Name", "VersionId", "SecretString", "VersionStages": ["AWSCURRENT"],
        "CreatedDate": epoch seconds}
    unknown -> 400 ResourceNotFoundException "Secrets Manager can't find the specified secret."
  AmazonSSM.GetParameter {"Name", "WithDecryption"}
    -> {"Parameter": {"Name", "Type", "Value", "Version", "ARN", "LastModifiedDate", "DataType"}}
    a SecureString without WithDecryption comes back as the fake's ciphertext stand-in
    unknown -> 400 ParameterNotFound
  A name listed in state "denied" -> 400 AccessDeniedException (as an IAM denial reads).
Requests must be signed (an Authorization header naming a key id); the key id is recorded.

State (per tenant):
  secrets:    {name: value}          (ARN arn:aws:secretsmanager:us-east-1:123456789012:secret:<name>-AbCdEf)
  parameters: {name: {"value", "type": "String"|"SecureString"}}
  denied:     [names or ARNs]
Control (under the tenant prefix):
  GET /_fake/calls [{service, action, params, caller, time[, error]}]  (params never hold a
      secret value: only the name asked for)
  GET /_fake/state; PUT /_fake/state (merged); POST /_fake/fail; POST /_fake/reset
"""

import json
import os
import re
import sys
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness_common  # noqa: E402

ApiError = harness_common.ApiError
ACCOUNT = "123456789012"
REGION = "us-east-1"


class Tenant(harness_common.FakeTenant):
    def reset_state(self):
        self.state = {"secrets": {}, "parameters": {}, "denied": []}

    def state_doc(self):
        return self.state

    def merge_state(self, doc):
        self.state["secrets"].update(doc.get("secrets", {}))
        self.state["parameters"].update(doc.get("parameters", {}))
        self.state["denied"] = list(doc.get("denied", self.state["denied"]))


def secret_arn(name):
    return "arn:aws:secretsmanager:%s:%s:secret:%s-AbCdEf" % (REGION, ACCOUNT, name)


def get_secret_value(tenant, doc):
    secret_id = doc.get("SecretId")
    if not secret_id:
        raise ApiError(400, "InvalidParameterException", "SecretId is required")
    name = secret_id
    match = re.match(r"^arn:aws:secretsmanager:[^:]+:\d+:secret:(.+)-[A-Za-z0-9]{6}$", secret_id)
    if match:
        name = match.group(1)
    if secret_id in tenant.state["denied"] or name in tenant.state["denied"]:
        raise ApiError(400, "AccessDeniedException",
                       "User is not authorized to perform: secretsmanager:GetSecretValue on "
                       "resource: " + secret_id)
    if name not in tenant.state["secrets"]:
        raise ApiError(400, "ResourceNotFoundException",
                       "Secrets Manager can't find the specified secret.")
    return {"ARN": secret_arn(name), "Name": name, "VersionId": "v-" + name,
            "SecretString": tenant.state["secrets"][name], "VersionStages": ["AWSCURRENT"],
            "CreatedDate": 1765000000.0}


def get_parameter(tenant, doc):
    name = doc.get("Name")
    if not name:
        raise ApiError(400, "ValidationException", "Name is required")
    if name in tenant.state["denied"]:
        raise ApiError(400, "AccessDeniedException",
                       "User is not authorized to perform: ssm:GetParameter on resource: " + name)
    parameter = tenant.state["parameters"].get(name)
    if parameter is None:
        raise ApiError(400, "ParameterNotFound", "")
    kind = parameter.get("type", "String")
    value = parameter["value"]
    if kind == "SecureString" and not doc.get("WithDecryption"):
        value = "AQICAH-ciphertext-of-" + uuid.uuid5(uuid.NAMESPACE_URL, name).hex
    return {"Parameter": {
        "Name": name, "Type": kind, "Value": value, "Version": 1,
        "ARN": "arn:aws:ssm:%s:%s:parameter/%s" % (REGION, ACCOUNT, name.lstrip("/")),
        "LastModifiedDate": 1765000000.0, "DataType": "text"}}


ACTIONS = {
    "secretsmanager.GetSecretValue": ("secretsmanager", "GetSecretValue", get_secret_value,
                                      ("SecretId", "VersionStage")),
    "AmazonSSM.GetParameter": ("ssm", "GetParameter", get_parameter, ("Name", "WithDecryption")),
}

_tenants = harness_common.Tenants(Tenant)


class Handler(harness_common.QuietHandler):

    def _dispatch(self):
        raw_path, _, _ = self.path.partition("?")
        name, rest = harness_common.split_tenant(raw_path, ("_fake",))
        body = self.read_body()
        with _tenants.lock:
            tenant = _tenants.get(name)
            if rest.startswith("/_fake/"):
                return harness_common.handle_control(self, tenant, rest[len("/_fake/"):], body)
            target = self.headers.get("X-Amz-Target", "")
            if self.command != "POST" or target not in ACTIONS:
                return self.reply(400, json.dumps({"__type": "UnknownOperationException"}),
                                  "application/x-amz-json-1.1")
            service, action, handler, recorded = ACTIONS[target]
            try:
                doc = json.loads(body.decode("utf-8") or "{}")
            except ValueError:
                doc = {}
            auth = self.headers.get("Authorization", "")
            caller = re.search(r"Credential=([^/]+)/", auth)
            call = {"service": service, "action": action,
                    "params": {k: doc[k] for k in recorded if k in doc},
                    "caller": caller.group(1) if caller else None, "time": time.time()}
            tenant.calls.append(call)

            def produce():
                if caller is None:
                    raise ApiError(400, "MissingAuthenticationTokenException",
                                   "Request is missing Authentication Token")
                return handler(tenant, doc)

            return harness_common.answer_call(
                self, tenant, call, action, produce, "application/x-amz-json-1.1",
                lambda e: {"__type": e.code, "message": e.message})

    do_GET = do_PUT = do_POST = do_DELETE = _dispatch  # noqa: N815


def make_server(port=0):
    """A server bound to 127.0.0.1:port (0 = free port); the caller runs serve_forever."""
    return harness_common.ThreadingServer(("127.0.0.1", port), Handler)


if __name__ == "__main__":
    harness_common.serve(Handler, "secrets_fake")
