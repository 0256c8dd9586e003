#!/usr/bin/python3
"""A fake EC2 instance metadata service (IMDSv2 only) for tests.

Usage: imds_fake.py --port 0 --port-file FILE

Each tenant (the path prefix before `/latest` or `/_fake`, e.g. `/t-42/latest/...`; none = the
default tenant) has its own metadata, tokens and request log, so parallel tests point
AWS_EC2_METADATA_SERVICE_ENDPOINT at `http://127.0.0.1:PORT/<unique-tenant>` and never interfere.

API (as real IMDS):
  PUT /latest/api/token         header X-aws-ec2-metadata-token-ttl-seconds 1..21600 (else 400);
                                X-Forwarded-For present -> 403; body = token valid for the TTL.
  GET /latest/meta-data/<path>  header X-aws-ec2-metadata-token (missing/unknown/expired -> 401);
  GET /latest/dynamic/instance-identity/document
                                unset path -> 404. A path without a value but with children
                                answers the listing of its children (like IMDS directories).
Control (under the tenant prefix):
  PUT    /_fake/meta-data/<path>  body = new value (also /_fake/dynamic/<path>)
  DELETE /_fake/meta-data/<path>  that path 404s from now on
  POST   /_fake/expire-tokens     every token issued so far is expired
  GET    /_fake/requests          JSON list of {method, path, raw_path, headers, time} of API
                                  requests (path relative to the tenant; header names
                                  lower-cased; time = arrival, Unix seconds with a fraction)
  POST   /_fake/reset             back to the defaults, no tokens, empty request log

The default role credentials use key id and secret `S3RVER` (s3rver checks both, the other
emulators accept anything), a per-tenant session token, and Expiration = now + 6 h.
"""

import datetime
import json
import os
import secrets
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness_common  # noqa: E402

ROLE = "spotgrid-worker"
MAX_TTL = 21600
# Marks the credentials document, generated at read time so Expiration is always in the future.
_GENERATED_CREDENTIALS = object()
_GENERATED_IDENTITY = object()


def _iso(ts):
    return datetime.datetime.fromtimestamp(ts, datetime.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%SZ")


def _default_metadata():
    return {
        "meta-data/ami-id": "ami-0123456789abcdef0",
        "meta-data/instance-id": "i-0123456789abcdef0",
        "meta-data/instance-type": "c5.large",
        "meta-data/instance-life-cycle": "spot",
        "meta-data/local-ipv4": "10.0.0.10",
        "meta-data/placement/region": "us-east-1",
        "meta-data/placement/availability-zone": "us-east-1a",
        "meta-data/placement/availability-zone-id": "use1-az1",
        "meta-data/iam/security-credentials/": ROLE,
        "meta-data/iam/security-credentials/" + ROLE: _GENERATED_CREDENTIALS,
        "dynamic/instance-identity/document": _GENERATED_IDENTITY,
    }


class Tenant:
    def __init__(self, name):
        self.name = name
        self.reset()

    def reset(self):
        self.metadata = _default_metadata()
        self.tokens = {}  # token -> monotonic expiry
        self.requests = []

    def credentials(self):
        now = time.time()
        return json.dumps({
            "Code": "Success",
            "LastUpdated": _iso(now),
            "Type": "AWS-HMAC",
            "AccessKeyId": "S3RVER",
            "SecretAccessKey": "S3RVER",
            "Token": "FakeImdsSessionToken/" + (self.name or "default"),
            "Expiration": _iso(now + 6 * 3600),
        }, indent=2)

    def identity(self):
        md = self.metadata

        def get(key):
            value = md.get("meta-data/" + key)
            return value if isinstance(value, str) else None

        return json.dumps({
            "accountId": "123456789012",
            "architecture": "x86_64",
            "availabilityZone": get("placement/availability-zone"),
            "imageId": get("ami-id"),
            "instanceId": get("instance-id"),
            "instanceType": get("instance-type"),
            "privateIp": get("local-ipv4"),
            "region": get("placement/region"),
            "version": "2017-09-30",
            "pendingTime": _iso(time.time() - 60),
        }, indent=2)

    def lookup(self, key):
        """Value for `key` ('meta-data/...'), a generated listing, or None (404)."""
        for candidate in (key, key.rstrip("/"), key.rstrip("/") + "/"):
            if candidate not in self.metadata:
                continue
            value = self.metadata[candidate]
            if value is None:  # deleted through the control API
                return None
            if value is _GENERATED_CREDENTIALS:
                return self.credentials()
            if value is _GENERATED_IDENTITY:
                return self.identity()
            return value
        prefix = key.rstrip("/") + "/"
        children = set()
        for k, v in self.metadata.items():
            if v is None or not k.startswith(prefix) or k == prefix:
                continue
            rest = k[len(prefix):]
            head, sep, _ = rest.partition("/")
            children.add(head + ("/" if sep else ""))
        if children:
            return "\n".join(sorted(children))
        return None


_lock = threading.Lock()
_tenants = {}


def _tenant(name):
    t = _tenants.get(name)
    if t is None:
        t = _tenants[name] = Tenant(name)
    return t


class Handler(harness_common.QuietHandler):

    def _dispatch(self):
        path = self.path.split("?", 1)[0]
        name, rest = harness_common.split_tenant(path, ("latest", "_fake"))
        body = self.read_body()
        with _lock:
            tenant = _tenant(name)
            if rest.startswith("/_fake/"):
                return self._control(tenant, rest[len("/_fake/"):], body)
            if rest.startswith("/latest/"):
                tenant.requests.append({
                    "method": self.command,
                    "path": rest,
                    "raw_path": self.path,
                    "headers": {k.lower(): v for k, v in self.headers.items()},
                    "time": time.time(),
                })
                return self._api(tenant, rest[len("/latest/"):])
        self.reply(404, "Not Found")

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _dispatch  # noqa: N815

    def _api(self, tenant, rest):
        if rest == "api/token":
            if self.command != "PUT":
                return self.reply(405, "Method Not Allowed")
            if self.headers.get("X-Forwarded-For") is not None:
                return self.reply(403, "Forbidden")
            try:
                ttl = int(self.headers.get("X-aws-ec2-metadata-token-ttl-seconds", ""))
            except ValueError:
                ttl = 0
            if not 1 <= ttl <= MAX_TTL:
                return self.reply(400, "Bad Request")
            token = "AQAEA" + secrets.token_urlsafe(40)
            tenant.tokens[token] = time.monotonic() + ttl
            return self.reply(200, token,
                              headers={"X-aws-ec2-metadata-token-ttl-seconds": str(ttl)})
        if self.command not in ("GET", "HEAD"):
            return self.reply(405, "Method Not Allowed")
        token = self.headers.get("X-aws-ec2-metadata-token")
        expiry = tenant.tokens.get(token) if token else None
        if expiry is None or expiry <= time.monotonic():
            return self.reply(401, "Unauthorized")
        if not (rest.startswith("meta-data/") or rest.startswith("dynamic/")):
            return self.reply(404, "Not Found")
        value = tenant.lookup(rest)
        if value is None:
            return self.reply(404, "Not Found")
        remaining = max(1, int(expiry - time.monotonic()))
        return self.reply(200, value,
                          headers={"X-aws-ec2-metadata-token-ttl-seconds": str(remaining)})

    def _control(self, tenant, rest, body):
        if rest == "requests" and self.command == "GET":
            return self.reply_json(200, tenant.requests)
        if rest == "reset" and self.command == "POST":
            tenant.reset()
            return self.reply_json(200, {"ok": True})
        if rest == "expire-tokens" and self.command == "POST":
            for token in tenant.tokens:
                tenant.tokens[token] = 0.0
            return self.reply_json(200, {"expired": len(tenant.tokens)})
        if rest.startswith("meta-data/") or rest.startswith("dynamic/"):
            if self.command == "PUT":
                tenant.metadata[rest] = body.decode("utf-8")
                return self.reply_json(200, {"ok": True})
            if self.command == "DELETE":
                for candidate in (rest, rest.rstrip("/"), rest.rstrip("/") + "/"):
                    tenant.metadata.pop(candidate, None)
                # Marked absent rather than removed, so a path with children does not turn
                # into a generated listing.
                tenant.metadata[rest] = None
                return self.reply_json(200, {"ok": True})
        return self.reply_json(404, {"error": "unknown control request %s %s" %
                                     (self.command, rest)})


if __name__ == "__main__":
    harness_common.serve(Handler, "imds_fake")
