#!/usr/bin/python3
"""A fake of IAM Identity Center for the SSO credential providers' tests: the SSO portal
(GetRoleCredentials) and SSO OIDC (CreateToken with a refresh token), sharing one token store so
a refreshed access token is accepted by the portal.

Usage: sso_fake.py --port 0 --port-file FILE     (or import it and call make_server())

REST-JSON, unsigned, as botocore's `sso` and `sso-oidc` models define them:
  GET  <tenant>/federation/credentials?account_id=A&role_name=R
       header x-amz-sso_bearer_token: an access token the store knows and that has not expired
       -> 200 {"roleCredentials": {"accessKeyId", "secretAccessKey", "sessionToken",
                                   "expiration": <epoch milliseconds>}}
       unknown or expired token -> 401, x-amzn-ErrorType UnauthorizedException,
       {"message": "Session token not found or invalid"}
  POST <tenant>/token  {"clientId", "clientSecret", "grantType": "refresh_token", "refreshToken"}
       a refresh token the store knows, issued to that client -> 200
       {"accessToken", "tokenType": "Bearer", "expiresIn": 28800, "refreshToken"} (the new access
       token is added to the store, the refresh token is rotated); otherwise 400,
       x-amzn-ErrorType InvalidGrantException, {"error": "invalid_grant", "error_description"}.
Issued role credentials are deterministic: access key id "ASIA" + 16 upper-case hex digits of
sha1(account|role), so two clients resolving the same role get the same key id.

State (per tenant):
  access_tokens:  {token: expiresAt epoch seconds (or null = never)}
  refresh_tokens: {refresh token: client id}
Control (under the tenant prefix):
  GET /_fake/calls [{service: "sso"|"sso-oidc", action, params, time[, error]}]  (params never
      hold tokens or secrets, only whether they were sent)
  GET /_fake/state; PUT /_fake/state (merged); POST /_fake/fail {"action", "count", "status",
      "code", "message"}; POST /_fake/reset
"""

import hashlib
import json
import os
import sys
import time
import urllib.parse
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness_common  # noqa: E402


ApiError = harness_common.ApiError


class Tenant(harness_common.FakeTenant):
    def reset_state(self):
        self.state = {"access_tokens": {}, "refresh_tokens": {}}

    def state_doc(self):
        return self.state

    def merge_state(self, doc):
        for key in ("access_tokens", "refresh_tokens"):
            self.state[key].update(doc.get(key, {}))


def get_role_credentials(tenant, query, headers):
    token = headers.get("x-amz-sso_bearer_token")
    account = query.get("account_id")
    role = query.get("role_name")
    if not token or not account or not role:
        raise ApiError(400, "InvalidRequestException", "Missing required parameter")
    tokens = tenant.state["access_tokens"]
    if token not in tokens or (tokens[token] is not None and tokens[token] <= time.time()):
        raise ApiError(401, "UnauthorizedException", "Session token not found or invalid")
    digits = hashlib.sha1(("%s|%s" % (account, role)).encode()).hexdigest()[:16].upper()
    return {"roleCredentials": {
        "accessKeyId": "ASIA" + digits, "secretAccessKey": "secret-" + digits,
        "sessionToken": "token-" + digits,
        "expiration": int((time.time() + 3600) * 1000)}}


def create_token(tenant, doc):
    for name in ("clientId", "clientSecret", "grantType"):
        if not doc.get(name):
            raise ApiError(400, "InvalidRequestException", "Missing %s" % name,
                           {"error": "invalid_request", "error_description": "Missing " + name})
    if doc["grantType"] != "refresh_token":
        raise ApiError(400, "UnsupportedGrantTypeException", "unsupported grant",
                       {"error": "unsupported_grant_type"})
    refresh = doc.get("refreshToken")
    if tenant.state["refresh_tokens"].get(refresh) != doc["clientId"]:
        raise ApiError(400, "InvalidGrantException", "Invalid refresh token",
                       {"error": "invalid_grant", "error_description": "Invalid refresh token"})
    del tenant.state["refresh_tokens"][refresh]
    access = "at-" + uuid.uuid4().hex
    new_refresh = "rt-" + uuid.uuid4().hex
    tenant.state["access_tokens"][access] = time.time() + 28800
    tenant.state["refresh_tokens"][new_refresh] = doc["clientId"]
    return {"accessToken": access, "tokenType": "Bearer", "expiresIn": 28800,
            "refreshToken": new_refresh}


_tenants = harness_common.Tenants(Tenant)


class Handler(harness_common.QuietHandler):

    def _dispatch(self):
        raw_path, _, query = self.path.partition("?")
        name, rest = harness_common.split_tenant(raw_path, ("_fake", "federation", "token"))
        body = self.read_body()
        with _tenants.lock:
            tenant = _tenants.get(name)
            if rest.startswith("/_fake/"):
                return harness_common.handle_control(self, tenant, rest[len("/_fake/"):], body)
            if self.command == "GET" and rest == "/federation/credentials":
                params = dict(urllib.parse.parse_qsl(query, keep_blank_values=True))
                service, action = "sso", "GetRoleCredentials"
                call_params = dict(params, bearer_token_sent=bool(
                    self.headers.get("x-amz-sso_bearer_token")))
                handler = lambda: get_role_credentials(tenant, params, self.headers)  # noqa
            elif self.command == "POST" and rest == "/token":
                try:
                    doc = json.loads(body.decode("utf-8") or "{}")
                except ValueError:
                    doc = {}
                service, action = "sso-oidc", "CreateToken"
                call_params = {"clientId": doc.get("clientId"), "grantType": doc.get("grantType"),
                               "refresh_token_sent": bool(doc.get("refreshToken"))}
                handler = lambda: create_token(tenant, doc)  # noqa
            else:
                return self.reply(404, json.dumps({"message": "no such operation"}),
                                  "application/json")
            call = {"service": service, "action": action, "params": call_params,
                    "time": time.time()}
            tenant.calls.append(call)
            return harness_common.answer_call(self, tenant, call, action, handler,
                                              "application/json", lambda e: e.body)

    do_GET = do_PUT = do_POST = do_DELETE = _dispatch  # noqa: N815



def make_server(port=0):
    """A server bound to 127.0.0.1:port (0 = free port); the caller runs serve_forever."""
    return harness_common.ThreadingServer(("127.0.0.1", port), Handler)


if __name__ == "__main__":
    harness_common.serve(Handler, "sso_fake")
