"""A small HTTP proxy for the transport tests: CONNECT tunnels and absolute-form forwarding.

It speaks what corporate proxies speak to the AWS CLI: `CONNECT host:port` for https:// (then
it relays bytes both ways), and `GET http://host:port/path` (absolute form) for http://, which
it forwards on a fresh connection and answers with a Content-Length response. Every request it
receives is appended to --record as one line, `METHOD TARGET auth=VALUE` (VALUE is the
Proxy-Authorization header, or `-`), so a test can prove its traffic went through the proxy.

It only ever connects to loopback addresses (127.0.0.0/8, ::1, localhost); any other target
gets 403 without a connection. --refuse answers 403 to everything.

Usage: connect_proxy.py --record FILE [--refuse] --port 0 --port-file FILE
"""

import argparse
import http.client
import http.server
import ipaddress
import os
import select
import socket
import threading

HOP_BY_HOP = {
    "connection", "proxy-connection", "proxy-authorization", "keep-alive", "te", "trailer",
    "transfer-encoding", "upgrade",
}


def is_loopback(host):
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def split_host_port(target, default_port):
    if target.startswith("["):
        host, _, rest = target[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    else:
        host, _, port = target.rpartition(":") if ":" in target else (target, "", "")
    return host, int(port) if port else default_port


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "connect-proxy"

    def log_message(self, *args):
        pass

    def record(self):
        auth = self.headers.get("Proxy-Authorization", "-")
        with self.server.record_lock, open(self.server.record, "a") as f:
            f.write(f"{self.command} {self.path} auth={auth}\n")

    def refuse(self, code, reason):
        body = reason.encode()
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_CONNECT(self):
        self.record()
        host, port = split_host_port(self.path, 443)
        if self.server.refuse_all:
            self.close_connection = True
            return self.refuse(403, "refused by policy")
        if not is_loopback(host):
            self.close_connection = True
            return self.refuse(403, "only loopback targets")
        try:
            upstream = socket.create_connection((host, port), timeout=10)
        except OSError as e:
            self.close_connection = True
            return self.refuse(502, str(e))
        self.send_response(200, "Connection established")
        self.end_headers()
        self.wfile.flush()
        self.close_connection = True
        relay(self.connection, upstream)

    def forward(self):
        self.record()
        if self.server.refuse_all:
            return self.refuse(403, "refused by policy")
        if not self.path.startswith("http://"):
            return self.refuse(400, "absolute-form http:// URL expected")
        rest = self.path[len("http://"):]
        authority, slash, path = rest.partition("/")
        host, port = split_host_port(authority, 80)
        if not is_loopback(host):
            return self.refuse(403, "only loopback targets")
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length) if length else None
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
        try:
            conn = http.client.HTTPConnection(host, port, timeout=30)
            conn.request(self.command, slash + path, body=body, headers=headers)
            response = conn.getresponse()
            data = response.read()
            conn.close()
        except OSError as e:
            return self.refuse(502, str(e))
        self.send_response(response.status, response.reason)
        for k, v in response.getheaders():
            if k.lower() not in HOP_BY_HOP and k.lower() != "content-length":
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = forward


def relay(a, b):
    sockets = [a, b]
    try:
        while True:
            readable, _, _ = select.select(sockets, [], [], 60)
            if not readable:
                return
            for s in readable:
                data = s.recv(65536)
                if not data:
                    return
                (b if s is a else a).sendall(data)
    except OSError:
        return
    finally:
        b.close()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--record", required=True)
    p.add_argument("--refuse", action="store_true")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--port-file", required=True)
    a = p.parse_args()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", a.port), Handler)
    server.daemon_threads = True
    server.record = a.record
    server.record_lock = threading.Lock()
    server.refuse_all = a.refuse
    open(a.record, "a").close()
    with open(a.port_file + ".tmp", "w") as f:
        f.write(str(server.server_address[1]))
    os.rename(a.port_file + ".tmp", a.port_file)
    server.serve_forever()


if __name__ == "__main__":
    main()
