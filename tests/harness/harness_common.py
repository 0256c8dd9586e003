"""Shared plumbing for the test fakes (imds_fake.py, aws_fake.py).

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
