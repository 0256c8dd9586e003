"""Shared plumbing for the test fakes (imds_fake.py, aws_fake.py, sts_fake.py, sso_fake.py).

Each fake is a threaded http.server on 127.0.0.1 that keeps isolated state per "tenant": the
path prefix in front of the API path (`/t-42/latest/...`, `/t-42/`), so parallel tests share one
server process without seeing each other. The root (no prefix) is the default tenant.

Stdlib only: the fakes run under Debian's /usr/bin/python3.
"""

import argparse
import http.server
import json
import os
import signal
import socketserver
import sys
import threading
import urllib.parse
import uuid


class ThreadingServer(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    # Tests open many short connections at once; the default backlog of 5 drops some.
    request_queue_size = 128


class QuietHandler(http.server.BaseHTTPRequestHandler):
    """Base handler: HTTP/1.1 keep-alive, logs to stderr in one line, helpers for replies."""

    protocol_version = "HTTP/1.1"
    server_version = "spotgrid-fake/1"

    def log_message(self, fmt, *args):  # noqa: N802 (stdlib name)
        sys.stderr.write("%s %s\n" % (self.log_date_time_string(), fmt % args))

    def read_body(self):
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def reply(self, status, body=b"", content_type="text/plain", headers=None):
        if isinstance(body, str):
            body = body.encode("utf-8")
        self.send_response(status)
        if content_type:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def reply_json(self, status, value):
        self.reply(status, json.dumps(value, indent=1, sort_keys=True), "application/json")


class ApiError(Exception):
    """An error a fake answers an API call with; `body` is the JSON document of JSON services."""

    def __init__(self, status, code, message, body=None):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.body = body if body is not None else {"message": message}


class FakeTenant:
    """What every fake keeps per tenant: the calls it was sent, the failures it was told to
    inject, and its own state. Subclasses define reset_state(), state_doc() and merge_state()."""

    # A fail rule must name its action (aws_fake); otherwise it defaults to every action.
    fail_rule_needs_action = False

    def __init__(self):
        self.reset()

    def reset(self):
        self.calls = []
        self.fail_rules = []
        self.reset_state()

    def reset_state(self):
        raise NotImplementedError

    def state_doc(self):
        raise NotImplementedError

    def merge_state(self, doc):
        raise NotImplementedError

    def take_failure(self, action):
        """The ApiError of the first live fail rule for `action`, counting it down; or None."""
        for rule in self.fail_rules:
            if rule["count"] > 0 and rule["action"] in (action, "*"):
                rule["count"] -= 1
                return ApiError(rule["status"], rule["code"], rule["message"])
        return None


class Tenants:
    """Tenants by name, made on first use; `lock` serialises every request of one fake."""

    def __init__(self, factory):
        self.lock = threading.Lock()
        self._factory = factory
        self._tenants = {}

    def get(self, name):
        if name not in self._tenants:
            self._tenants[name] = self._factory()
        return self._tenants[name]


def handle_control(handler, tenant, rest, body):
    """The control API every fake serves under <tenant>/_fake/: GET calls, GET/PUT state,
    POST fail {"action", "count", "status", "code", "message"}, POST reset."""
    try:
        doc = json.loads(body.decode("utf-8")) if body else {}
    except ValueError as e:
        return handler.reply_json(400, {"error": "bad JSON: %s" % e})
    command = handler.command
    if rest == "calls" and command == "GET":
        return handler.reply_json(200, tenant.calls)
    if rest == "state" and command == "GET":
        return handler.reply_json(200, tenant.state_doc())
    if rest == "state" and command in ("PUT", "POST"):
        tenant.merge_state(doc)
        return handler.reply_json(200, tenant.state_doc())
    if rest == "fail" and command == "POST":
        if tenant.fail_rule_needs_action and not doc.get("action"):
            return handler.reply_json(400, {"error": "fail rule needs an action"})
        tenant.fail_rules.append({
            "action": doc.get("action", "*"), "count": int(doc.get("count", 1)),
            "status": int(doc.get("status", 500)), "code": doc.get("code", "InternalError"),
            "message": doc.get("message", "Injected failure")})
        return handler.reply_json(200, {"ok": True})
    if rest == "reset" and command == "POST":
        tenant.reset()
        return handler.reply_json(200, {"ok": True})
    return handler.reply_json(404, {"error": "unknown control request %s %s" % (command, rest)})


class QueryHandler(QuietHandler):
    """Base handler of the Query-protocol fakes (EC2, Auto Scaling, STS): the tenant from the
    path prefix, the control API under <tenant>/_fake/, and the API parameters from the query
    string and the form body. Subclasses set `tenants` (a Tenants) and define
    _api(tenant, params); every request runs under the tenants' lock."""

    tenants = None

    def _dispatch(self):
        raw_path, _, query = self.path.partition("?")
        name, rest = split_tenant(raw_path, ("_fake",))
        body = self.read_body()
        with self.tenants.lock:
            tenant = self.tenants.get(name)
            if rest.startswith("/_fake/"):
                return handle_control(self, tenant, rest[len("/_fake/"):], body)
            if self.command not in ("GET", "POST"):
                return self.reply(405, "Method Not Allowed")
            params = dict(urllib.parse.parse_qsl(query, keep_blank_values=True))
            params.update(urllib.parse.parse_qsl(body.decode("utf-8"), keep_blank_values=True))
            return self._api(tenant, params)

    do_GET = do_PUT = do_POST = do_DELETE = _dispatch  # noqa: N815


def answer_call(handler, tenant, call, action, produce, content_type, error_body):
    """Answers one API call of a JSON fake: the first injected failure for `action`, or what
    `produce()` returns (an ApiError it raises is answered too). An error's code is recorded
    in `call`; every answer carries a fresh x-amzn-RequestId."""
    request_id = str(uuid.uuid4())
    try:
        failure = tenant.take_failure(action)
        if failure is not None:
            raise failure
        answer = produce()
    except ApiError as e:
        call["error"] = e.code
        return handler.reply(e.status, json.dumps(error_body(e)), content_type, headers={
            "x-amzn-ErrorType": e.code, "x-amzn-RequestId": request_id})
    return handler.reply(200, json.dumps(answer), content_type,
                         headers={"x-amzn-RequestId": request_id})


def split_tenant(path, markers):
    """Splits `path` (no query) at the first segment in `markers`.

    Returns (tenant, rest) where rest starts with '/' and the marker, e.g.
    split_tenant('/t-1/latest/api/token', ['latest']) == ('t-1', '/latest/api/token').
    When no marker is present, the whole path (slashes trimmed) is the tenant and rest is ''.
    """
    segments = path.split("/")
    for i, segment in enumerate(segments):
        if segment in markers:
            tenant = "/".join(s for s in segments[:i] if s)
            return tenant, "/" + "/".join(segments[i:])
    return "/".join(s for s in segments if s), ""


def parse_fake_args(description):
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--port", type=int, default=0, help="port to bind (0 = any free port)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port-file", help="write the bound port here once listening")
    return parser.parse_args()


def write_port_file(path, port):
    """Writes atomically, so a reader never sees a partial number."""
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="ascii") as f:
        f.write("%d\n" % port)
    os.replace(tmp, path)


def serve(handler_class, description):
    args = parse_fake_args(description)
    server = ThreadingServer((args.host, args.port), handler_class)
    port = server.server_address[1]
    # SIGTERM ends serve_forever cleanly; shutdown() must run off the serving thread.
    signal.signal(signal.SIGTERM,
                  lambda *_: threading.Thread(target=server.shutdown, daemon=True).start())
    if args.port_file:
        write_port_file(args.port_file, port)
    sys.stderr.write("%s listening on %s:%d\n" % (description, args.host, port))
    sys.stderr.flush()
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
