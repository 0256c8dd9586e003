#!/usr/bin/python3
"""A fault-injecting HTTP reverse proxy in front of one upstream (an emulator).

Tests that prove the client core's retries start their own proxy, point a client at it and
tell it which faults to inject, so parallel tests never share rules:

    fault_proxy.py --upstream http://127.0.0.1:N --port 0 --port-file F

Requests are forwarded unchanged (method, path, headers, body) and so are responses; bodies
are streamed in chunks in both directions. Only hop-by-hop headers (Connection, Keep-Alive,
Expect, ...) are handled per connection, as any proxy does. Each client connection gets its
own upstream connection, so connection reuse by the client stays visible.

Control endpoints (never forwarded, never counted):
  POST   /__fault__/rules   JSON list of rules, appended to the current list:
           {"action": "drop" | "delay" | "status",
            "count": N,                 # how many matching requests it applies to (default 1)
            "match": "substring",       # of the path or X-Amz-Target; absent/"" = every request
            "status": 503, "code": "SlowDown", "message": "...",
            "body_format": "json" | "xml",   # default: json if X-Amz-Target was sent, else xml
            "delay_ms": 2000,
            "reset": false}             # drop with a TCP RST instead of a FIN
         Each proxied request takes the first rule (in list order) that still has a count left
         and matches; the rule's count goes down by one.
           drop:   reads the request, then closes the connection without any response.
           delay:  waits delay_ms, then forwards (not at all if the client hung up meanwhile).
           status: answers with that status and an AWS-shaped error body for the code.
  DELETE /__fault__/rules   removes every rule.
  GET    /__fault__/rules   the current rules with their remaining counts.
  GET    /__fault__/stats   {"requests": n, "connections": n, "faults": n,
                             "forwarded": n, "log": [{"method","path","target","fault"}]}
         requests = proxied requests received; connections = client connections that carried
         at least one proxied request; faults = rules applied; forwarded = requests that reached
         the upstream (delays included).
  POST   /__fault__/reset   clears rules and stats (and turns random faults off).
  POST   /__fault__/chaos   JSON {"rate": 0.08, "seed": 1, "kinds": {"drop": 1, ...},
                                  "blackhole_s": 40, "service": "sqs"}: random faults (below);
                            "rate": 0 turns them off. GET /__fault__/chaos shows the settings.

More actions (for rules and random faults):
  apply_drop  forwards the request, lets the upstream apply it and reads its whole response,
              then closes the connection without replying: "applied, but the reply was lost".
  truncate    forwards, then sends the status line, the headers (with the full Content-Length)
              and only part of the body (at most half; a body-less answer loses the end of its
              headers instead), then closes.
  throttle    answers the service's throttling error without forwarding: DynamoDB (target
              DynamoDB_*) 400 {"__type": "...#ThrottlingException"}, SQS JSON (AmazonSQS.*) 400
              {"__type": "...#ThrottlingException"} with x-amzn-query-error, anything else
              (S3) 503 <Error><Code>SlowDown</Code>; all are throttling to
              common/src/aws/retry.cc.
  blackhole   reads the request, never forwards nor answers; closes once the client hangs up,
              or after blackhole_s (rule field or chaos setting, default 40 s).
  status500 / status503 (random faults only): "status" with 500 InternalError / 503
              ServiceUnavailable.

Random faults ("chaos"): with --chaos-rate R (or POST /__fault__/chaos) every proxied request
that no rule took gets a fault with probability R, the kind drawn by weight from --chaos-kinds
(default: every kind above plus drop, weight 1 each). One random.Random(--chaos-seed) makes the
draws in arrival order, under the state lock: the same seed gives the same sequence of draws,
so the same mix of faults, though which request meets which fault follows arrival order. Every
request has the same chance whatever its operation, so a long poll (SQS ReceiveMessage with
WaitTimeSeconds) is black-holed no more often than any other call; a black-holed long poll is
held for blackhole_s like any other request, never for its wait time.

Every fault (rule or random) is written to stderr and, with --fault-log FILE, appended to FILE
as one JSON line {"t": unix time, "service", "kind", "source": "rule"|"chaos", "method",
"path", "target", "operation", "conn"}; "operation" is the X-Amz-Target, else METHOD PATH
(without the query). /__fault__/stats adds "by_kind" {kind: n} and "chaos_faults".

Standard library only; run with /usr/bin/python3.
"""

import argparse
import http.client
import json
import os
import random
import select
import socket
import struct
import sys
import threading
import time
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

CHUNK = 64 * 1024
CONTROL_PREFIX = "/__fault__/"
# Per-connection headers a proxy must not pass on (RFC 9110 section 7.6.1), plus Expect: the
# proxy already answered "100 Continue" to the client and sends the body straight away.
HOP_BY_HOP = {
    "connection", "keep-alive", "proxy-connection", "te", "trailer", "upgrade",
    "proxy-authorization", "proxy-authenticate", "expect",
}


class State:
    """Rules and counters shared by all connection threads."""

    def __init__(self):
        self.lock = threading.Lock()
        self.reset()

    def reset(self):
        self.rules = []
        self.requests = 0
        self.connections = 0
        self.faults = 0
        self.chaos_faults = 0
        self.forwarded = 0
        self.by_kind = {}
        self.log = []
        self.chaos = {"rate": 0.0, "seed": None, "kinds": dict(DEFAULT_CHAOS_KINDS),
                      "blackhole_s": DEFAULT_BLACKHOLE_S}
        self.rng = random.Random(0)

    def set_chaos(self, settings):
        """Validated chaos settings (a dict from JSON or the command line); takes the lock."""
        with self.lock:
            chaos = dict(self.chaos)
            chaos.update(settings)
            self.chaos = chaos
            self.rng = random.Random(chaos.get("seed"))

    def take_rule(self, method, path, target):
        """Counts one proxied request and returns the rule to apply to it (a copy) or None.

        A rule in the list wins; otherwise a random fault may be drawn (a rule-shaped dict
        with "source": "chaos")."""
        with self.lock:
            self.requests += 1
            chosen = None
            for rule in self.rules:
                if rule["remaining"] <= 0:
                    continue
                match = rule.get("match") or ""
                if match and match not in path and match not in target:
                    continue
                rule["remaining"] -= 1
                self.faults += 1
                chosen = dict(rule)
                chosen["source"] = "rule"
                break
            if chosen is None and self.chaos["rate"] > 0:
                # Two draws per request whatever happens, so the sequence depends only on the
                # seed and the number of requests.
                hit = self.rng.random() < self.chaos["rate"]
                pick = self.rng.random()
                if hit:
                    kind = weighted_pick(self.chaos["kinds"], pick)
                    if kind is not None:
                        chosen = chaos_rule(kind, self.chaos)
                        self.faults += 1
                        self.chaos_faults += 1
            if chosen is not None:
                kind = chosen["action"]
                self.by_kind[kind] = self.by_kind.get(kind, 0) + 1
            self.log.append({"method": method, "path": path, "target": target,
                             "fault": chosen["action"] if chosen else None})
            return chosen


# Random fault kinds and their default weights.
CHAOS_KINDS = ("drop", "apply_drop", "truncate", "status500", "status503", "throttle",
               "blackhole")
DEFAULT_CHAOS_KINDS = {kind: 1.0 for kind in CHAOS_KINDS}
DEFAULT_BLACKHOLE_S = 40.0


def weighted_pick(weights, u):
    """The kind that u in [0, 1) falls on, in CHAOS_KINDS order; None if no weight."""
    total = sum(w for w in weights.values() if w > 0)
    if total <= 0:
        return None
    x = u * total
    last = None
    for kind in CHAOS_KINDS:
        w = weights.get(kind, 0)
        if w <= 0:
            continue
        last = kind
        if x < w:
            return kind
        x -= w
    return last


def chaos_rule(kind, chaos):
    if kind == "status500":
        rule = {"action": "status", "status": 500, "code": "InternalError"}
    elif kind == "status503":
        rule = {"action": "status", "status": 503, "code": "ServiceUnavailable"}
    else:
        rule = {"action": kind}
    rule["blackhole_s"] = chaos.get("blackhole_s", DEFAULT_BLACKHOLE_S)
    rule["source"] = "chaos"
    rule["kind"] = kind
    return rule


def validate_chaos(value):
    if not isinstance(value, dict):
        raise ValueError("chaos settings must be a JSON object")
    out = {}
    if "rate" in value:
        rate = value["rate"]
        if not isinstance(rate, (int, float)) or not 0 <= rate <= 1:
            raise ValueError("rate must be a number from 0 to 1")
        out["rate"] = float(rate)
    if "seed" in value:
        if value["seed"] is not None and not isinstance(value["seed"], (int, str)):
            raise ValueError("seed must be an integer or a string")
        out["seed"] = value["seed"]
    if "kinds" in value:
        kinds = value["kinds"]
        if not isinstance(kinds, dict) or not kinds:
            raise ValueError("kinds must be a non-empty object {kind: weight}")
        for kind, weight in kinds.items():
            if kind not in CHAOS_KINDS:
                raise ValueError("unknown kind %r (known: %s)" % (kind, ", ".join(CHAOS_KINDS)))
            if not isinstance(weight, (int, float)) or weight < 0:
                raise ValueError("the weight of %s must be a non-negative number" % kind)
        out["kinds"] = {k: float(w) for k, w in kinds.items()}
    if "blackhole_s" in value:
        if not isinstance(value["blackhole_s"], (int, float)) or value["blackhole_s"] < 0:
            raise ValueError("blackhole_s must be a non-negative number")
        out["blackhole_s"] = float(value["blackhole_s"])
    if "service" in value:
        out["service"] = str(value["service"])
    return out


def parse_kinds(text):
    """"drop=1,apply_drop=2" or "drop,truncate" -> {kind: weight}."""
    kinds = {}
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        name, _, weight = item.partition("=")
        kinds[name.strip()] = float(weight) if weight else 1.0
    return kinds


STATE = State()


RULE_ACTIONS = ("drop", "delay", "status", "apply_drop", "truncate", "throttle", "blackhole")


def validate_rule(rule):
    if not isinstance(rule, dict):
        raise ValueError("each rule must be a JSON object")
    action = rule.get("action")
    if action not in RULE_ACTIONS:
        raise ValueError("action must be one of %s, not %r" % (", ".join(RULE_ACTIONS), action))
    count = rule.get("count", 1)
    if not isinstance(count, int) or count < 0:
        raise ValueError("count must be a non-negative integer")
    if action == "status":
        status = rule.get("status", 503)
        if not isinstance(status, int) or not 100 <= status <= 599:
            raise ValueError("status must be an HTTP status code")
    if action == "delay" and not isinstance(rule.get("delay_ms", 0), (int, float)):
        raise ValueError("delay_ms must be a number")
    if action == "blackhole" and not isinstance(rule.get("blackhole_s", 0), (int, float)):
        raise ValueError("blackhole_s must be a number")
    if rule.get("body_format") not in (None, "json", "xml"):
        raise ValueError("body_format must be json or xml")
    out = dict(rule)
    out["count"] = count
    out["remaining"] = count
    return out


def error_body(rule, has_target, request_id):
    """The AWS-shaped error body and headers for a "status" rule."""
    status = rule.get("status", 503)
    code = rule.get("code") or ("InternalError" if status >= 500 else "BadRequest")
    message = rule.get("message") or ("Injected by fault_proxy: %s" % code)
    body_format = rule.get("body_format") or ("json" if has_target else "xml")
    if body_format == "json":
        namespace = rule.get("namespace") or "com.amazonaws.faultproxy"
        body = json.dumps({"__type": "%s#%s" % (namespace, code), "message": message})
        headers = [("Content-Type", "application/x-amz-json-1.0"),
                   ("x-amzn-RequestId", request_id)]
    else:
        body = ('<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>%s</Code>'
                '<Message>%s</Message><RequestId>%s</RequestId></Error>'
                % (xml_escape(code), xml_escape(message), request_id))
        headers = [("Content-Type", "application/xml"), ("x-amz-request-id", request_id),
                   ("x-amzn-RequestId", request_id)]
    return status, body.encode("utf-8"), headers


def throttle_body(target, request_id):
    """The throttling error of the service the request went to (see the module doc)."""
    if target.startswith("DynamoDB"):
        rule = {"status": 400, "code": "ThrottlingException", "body_format": "json",
                "namespace": "com.amazonaws.dynamodb.v20120810",
                "message": "Rate of requests exceeds the allowed throughput (fault_proxy)"}
        return error_body(rule, True, request_id)
    if target.startswith("AmazonSQS"):
        rule = {"status": 400, "code": "ThrottlingException", "body_format": "json",
                "namespace": "com.amazonaws.sqs", "message": "Rate exceeded (fault_proxy)"}
        status, body, headers = error_body(rule, True, request_id)
        return status, body, headers + [("x-amzn-query-error", "ThrottlingException;Sender")]
    if target:
        return error_body({"status": 400, "code": "ThrottlingException"}, True, request_id)
    rule = {"status": 503, "code": "SlowDown", "body_format": "xml",
            "message": "Please reduce your request rate. (fault_proxy)"}
    return error_body(rule, False, request_id)


def operation_of(method, path, target):
    return target or "%s %s" % (method, path.split("?", 1)[0])


def xml_escape(text):
    return (text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&quot;"))


class NoDelayConnection(http.client.HTTPConnection):
    """An upstream connection that sends each write at once (also after a reconnect)."""

    def connect(self):
        super().connect()
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, so client connection reuse is observable
    server_version = "fault_proxy"
    upstream = None  # urllib.parse.SplitResult, set in main()

    def setup(self):
        super().setup()
        # Headers and body leave in separate writes: without this, Nagle and the client's
        # delayed ACK hold each response back about 40 ms.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.upstream_conn = None
        self.counted_connection = False

    def finish(self):
        try:
            super().finish()
        finally:
            self.close_upstream()

    def log_message(self, fmt, *args):  # quiet unless --verbose
        if self.server.verbose:
            sys.stderr.write("fault_proxy: %s\n" % (fmt % args))

    # Every method goes through the same path.
    def do_GET(self):
        self.handle_any()

    do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = do_OPTIONS = do_GET

    def handle_any(self):
        if self.path.startswith(CONTROL_PREFIX):
            self.handle_control()
            return
        self.body_consumed = False
        target = self.headers.get("X-Amz-Target", "")
        with STATE.lock:
            if not self.counted_connection:
                self.counted_connection = True
                STATE.connections += 1
        rule = STATE.take_rule(self.command, self.path, target)
        action = rule["action"] if rule else None
        if rule is not None:
            self.log_fault(rule, target)
        if action == "apply_drop":
            response = self.forward_buffered(self.request_body_chunks())
            if response is not None:
                self.drop(False)
            return
        if action == "truncate":
            response = self.forward_buffered(self.request_body_chunks())
            if response is not None:
                self.send_truncated(*response)
            return
        if action == "blackhole":
            self.drain_body()
            self.client_hung_up(rule.get("blackhole_s", DEFAULT_BLACKHOLE_S), until_close=True)
            self.drop(False)
            return
        if action == "throttle":
            self.drain_body()
            status, body, headers = throttle_body(target, str(uuid.uuid4()))
            self.send_error_answer(status, body, headers)
            return
        if action == "drop":
            self.drain_body()
            self.drop(rule.get("reset", False))
            return
        if action == "status":
            self.drain_body()
            status, body, headers = error_body(rule, bool(target), str(uuid.uuid4()))
            self.send_error_answer(status, body, headers)
            return
        if action == "delay":
            # The body is read first so that during the wait the only thing the client can
            # still send is its hang-up; a request the client gave up on is not forwarded.
            body = list(self.request_body_chunks())
            if self.client_hung_up(rule.get("delay_ms", 0) / 1000.0):
                self.close_connection = True
                return
            self.forward(body)
            return
        self.forward(self.request_body_chunks())

    # --- faults -------------------------------------------------------------------------

    def log_fault(self, rule, target):
        kind = rule.get("kind") or rule["action"]
        if rule["action"] == "status" and not rule.get("kind"):
            kind = "status%d" % rule.get("status", 503)
        entry = {"t": round(time.time(), 6), "service": self.server.service, "kind": kind,
                 "source": rule.get("source", "rule"), "method": self.command,
                 "path": self.path, "target": target,
                 "operation": operation_of(self.command, self.path, target),
                 "conn": "%s:%d" % self.client_address[:2]}
        line = json.dumps(entry, sort_keys=True)
        sys.stderr.write("fault_proxy[%s]: fault %s on %s (%s)\n"
                         % (self.server.service, kind, entry["operation"], entry["conn"]))
        sys.stderr.flush()
        if self.server.fault_log is not None:
            with self.server.fault_log_lock:
                self.server.fault_log.write(line + "\n")
                self.server.fault_log.flush()

    def send_error_answer(self, status, body, headers):
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def send_truncated(self, status, reason, headers, body):
        """The status line and headers (with the full Content-Length), then at most half the
        body, then the connection is closed. A body-less answer loses its headers' end."""
        out = [b"%s %d %s\r\n" % (self.protocol_version.encode("ascii"), status,
                                  (reason or "").encode("latin-1", "replace"))]
        for name, value in headers:
            lower = name.lower()
            if lower in HOP_BY_HOP or lower in ("transfer-encoding", "content-length"):
                continue
            out.append(b"%s: %s\r\n" % (name.encode("latin-1", "replace"),
                                         value.encode("latin-1", "replace")))
        out.append(b"Content-Length: %d\r\n\r\n" % len(body))
        head = b"".join(out)
        if body and self.command != "HEAD":
            data = head + body[:len(body) // 2]
        else:
            data = head[:max(1, len(head) // 2)]
        try:
            self.wfile.write(data)
            self.wfile.flush()
        except OSError:
            pass
        self.drop(False)

    def drain_body(self):
        for _ in self.request_body_chunks():
            pass

    def drop(self, reset):
        self.close_connection = True
        try:
            self.wfile.flush()
        except OSError:
            pass
        sock = self.connection
        try:
            if reset:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            else:
                sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        sock.close()

    def client_hung_up(self, seconds, until_close=False):
        """Waits `seconds`; True as soon as the client closes its side. With until_close,
        anything the client sends meanwhile is read and thrown away (a black hole)."""
        deadline = time.monotonic() + seconds
        sock = self.connection
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            readable, _, _ = select.select([sock], [], [], left)
            if not readable:
                continue
            try:
                peeked = sock.recv(65536 if until_close else 1,
                                   0 if until_close else socket.MSG_PEEK)
            except OSError:
                return True
            if not peeked:
                return True
            if until_close:
                continue
            # A pipelined next request is waiting: nothing more to learn; sleep it out.
            time.sleep(max(0.0, deadline - time.monotonic()))
            return False

    # --- forwarding ---------------------------------------------------------------------

    def request_body_chunks(self):
        """Yields the request body in chunks as it arrives (Content-Length or chunked)."""
        if self.body_consumed:
            return
        self.body_consumed = True
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            while True:
                line = self.rfile.readline(65537)
                size = int(line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return
                left = size
                while left > 0:
                    data = self.rfile.read(min(CHUNK, left))
                    if not data:
                        raise ConnectionError("client closed mid-body")
                    left -= len(data)
                    yield data
                self.rfile.readline(3)
        else:
            left = int(self.headers.get("Content-Length") or 0)
            while left > 0:
                data = self.rfile.read(min(CHUNK, left))
                if not data:
                    raise ConnectionError("client closed mid-body")
                left -= len(data)
                yield data

    def open_upstream(self):
        if self.upstream_conn is None:
            up = self.upstream
            self.upstream_conn = NoDelayConnection(up.hostname, up.port or 80, timeout=300)
        return self.upstream_conn

    def close_upstream(self):
        if self.upstream_conn is not None:
            self.upstream_conn.close()
            self.upstream_conn = None

    def send_upstream(self, body_chunks):
        """Sends the request on to the upstream as received; returns the upstream's response
        (its headers read, its body not). Raises OSError or HTTPException."""
        chunked_request = "chunked" in self.headers.get("Transfer-Encoding", "").lower()
        conn = self.open_upstream()
        path = (self.upstream.path.rstrip("/") + self.path) if self.upstream.path else self.path
        conn.putrequest(self.command, path, skip_host=True, skip_accept_encoding=True)
        for name, value in self.headers.items():
            if name.lower() in HOP_BY_HOP:
                continue
            conn.putheader(name, value)
        conn.endheaders()
        for data in body_chunks:
            if chunked_request:
                conn.send(b"%x\r\n%s\r\n" % (len(data), data))
            else:
                conn.send(data)
        if chunked_request:
            conn.send(b"0\r\n\r\n")
        with STATE.lock:
            STATE.forwarded += 1
        return conn.getresponse()

    def forward(self, body_chunks):
        try:
            response = self.send_upstream(body_chunks)
        except (OSError, http.client.HTTPException) as e:
            self.close_upstream()
            self.upstream_failed(e)
            return

        has_length = response.getheader("Content-Length") is not None
        rechunk = not has_length and self.command != "HEAD" and response.status not in (204, 304)
        self.send_response_only(response.status, response.reason)
        for name, value in response.getheaders():
            lower = name.lower()
            if lower in HOP_BY_HOP or lower == "transfer-encoding":
                continue
            self.send_header(name, value)
        if rechunk:
            self.send_header("Transfer-Encoding", "chunked")
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        try:
            while True:
                data = response.read(CHUNK) if self.command != "HEAD" else b""
                if not data:
                    break
                if rechunk:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                else:
                    self.wfile.write(data)
            if rechunk:
                self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except (OSError, http.client.HTTPException):
            self.close_connection = True
            self.close_upstream()
            return
        if response.will_close:
            self.close_upstream()

    def forward_buffered(self, body_chunks):
        """Forwards the request and reads the whole response: (status, reason, headers, body),
        or None after answering 502 when the upstream failed."""
        try:
            response = self.send_upstream(body_chunks)
            body = response.read() if self.command != "HEAD" else b""
            result = (response.status, response.reason, response.getheaders(), body)
            if response.will_close:
                self.close_upstream()
            return result
        except (OSError, http.client.HTTPException) as e:
            self.close_upstream()
            self.upstream_failed(e)
            return None

    def upstream_failed(self, e):
        body = json.dumps({"__type": "FaultProxyUpstreamError", "message": str(e)}).encode()
        try:
            self.send_response(502)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except OSError:
            self.close_connection = True

    # --- control ------------------------------------------------------------------------

    def handle_control(self):
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        path = self.path.split("?", 1)[0]
        if path == CONTROL_PREFIX + "rules" and self.command == "POST":
            try:
                rules = json.loads(raw.decode("utf-8") or "[]")
                if isinstance(rules, dict):
                    rules = [rules]
                if not isinstance(rules, list):
                    raise ValueError("expected a JSON list of rules")
                parsed = [validate_rule(r) for r in rules]
            except ValueError as e:  # json.JSONDecodeError is a ValueError
                self.reply_json(400, {"error": str(e)})
                return
            with STATE.lock:
                STATE.rules.extend(parsed)
                count = len(STATE.rules)
            self.reply_json(200, {"rules": count})
        elif path == CONTROL_PREFIX + "rules" and self.command == "DELETE":
            with STATE.lock:
                STATE.rules = []
            self.reply_json(200, {"rules": 0})
        elif path == CONTROL_PREFIX + "rules" and self.command == "GET":
            with STATE.lock:
                rules = [dict(r) for r in STATE.rules]
            self.reply_json(200, rules)
        elif path == CONTROL_PREFIX + "stats" and self.command == "GET":
            with STATE.lock:
                stats = {"requests": STATE.requests, "connections": STATE.connections,
                         "faults": STATE.faults, "forwarded": STATE.forwarded,
                         "chaos_faults": STATE.chaos_faults, "by_kind": dict(STATE.by_kind),
                         "log": list(STATE.log)}
            self.reply_json(200, stats)
        elif path == CONTROL_PREFIX + "chaos" and self.command == "POST":
            try:
                settings = validate_chaos(json.loads(raw.decode("utf-8") or "{}"))
            except ValueError as e:
                self.reply_json(400, {"error": str(e)})
                return
            if "service" in settings:
                self.server.service = settings.pop("service")
            STATE.set_chaos(settings)
            with STATE.lock:
                self.reply_json(200, dict(STATE.chaos))
        elif path == CONTROL_PREFIX + "chaos" and self.command == "GET":
            with STATE.lock:
                self.reply_json(200, dict(STATE.chaos))
        elif path == CONTROL_PREFIX + "reset" and self.command == "POST":
            with STATE.lock:
                STATE.reset()
            self.reply_json(200, {})
        else:
            self.reply_json(404, {"error": "unknown control endpoint %s %s" % (self.command,
                                                                              path)})

    def reply_json(self, status, value):
        body = json.dumps(value).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128
    verbose = False
    service = "proxy"
    fault_log = None
    fault_log_lock = threading.Lock()


def write_port_file(path, port):
    tmp = "%s.tmp.%d" % (path, os.getpid())
    with open(tmp, "w") as f:
        f.write("%d\n" % port)
    os.replace(tmp, path)  # atomic: readers never see a partial number


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--upstream", required=True, help="http://host:port of the upstream")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--port-file")
    parser.add_argument("--verbose", action="store_true")
    parser.add_argument("--service", default="proxy",
                        help="a name for the fault log and stderr lines (e.g. sqs)")
    parser.add_argument("--chaos-rate", type=float, default=0.0,
                        help="probability of a random fault per request (0..1)")
    parser.add_argument("--chaos-seed", default=None, help="seed of the random faults")
    parser.add_argument("--chaos-kinds", default=None,
                        help="kinds and weights, e.g. drop=1,apply_drop=2 (default: all, 1)")
    parser.add_argument("--blackhole-s", type=float, default=DEFAULT_BLACKHOLE_S,
                        help="how long a black hole holds a request the client keeps waiting on")
    parser.add_argument("--fault-log", help="append one JSON line per fault to this file")
    args = parser.parse_args()
    chaos = {"rate": args.chaos_rate, "blackhole_s": args.blackhole_s}
    if args.chaos_seed is not None:
        chaos["seed"] = int(args.chaos_seed) if args.chaos_seed.isdigit() else args.chaos_seed
    if args.chaos_kinds:
        chaos["kinds"] = parse_kinds(args.chaos_kinds)
    try:
        STATE.set_chaos(validate_chaos(chaos))
    except ValueError as e:
        parser.error(str(e))

    upstream = urllib.parse.urlsplit(args.upstream)
    if upstream.scheme != "http" or not upstream.hostname:
        parser.error("--upstream must be an http:// URL")
    Handler.upstream = upstream
    server = Server((args.host, args.port), Handler)
    server.verbose = args.verbose
    server.service = args.service
    if args.fault_log:
        server.fault_log = open(args.fault_log, "a", encoding="utf-8")
    port = server.server_address[1]
    if args.port_file:
        write_port_file(args.port_file, port)
    sys.stderr.write("fault_proxy: listening on %s:%d -> %s\n" % (args.host, port, args.upstream))
    sys.stderr.flush()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
