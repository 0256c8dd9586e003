#!/usr/bin/python3
"""Self-test of tests/harness/fault_proxy.py against a tiny in-process echo upstream.

Proves the proxy forwards requests and responses unchanged (streamed, chunked or not), applies
rules in order to matching requests only, answers AWS-shaped JSON and XML errors, drops and
delays, and counts requests, connections and faults. Needs no emulator.
"""

import http.client
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import xml.etree.ElementTree as ET
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HERE = os.path.dirname(os.path.abspath(__file__))
PROXY = os.path.join(HERE, "..", "harness", "fault_proxy.py")


class Echo(BaseHTTPRequestHandler):
    """Answers with a JSON description of the request it got."""
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_ANY(self):
        if "chunked" in self.headers.get("Transfer-Encoding", ""):
            body = b""
            while True:
                size = int(self.rfile.readline().strip(), 16)
                if size == 0:
                    self.rfile.readline()
                    break
                body += self.rfile.read(size)
                self.rfile.readline()
        else:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        out = json.dumps({"method": self.command, "path": self.path,
                          "headers": [[k, v] for k, v in self.headers.items()],
                          "body": body.decode("latin-1")}).encode()
        self.send_response(200)
        self.send_header("X-Upstream", "echo")
        if self.path.startswith("/chunked"):
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for i in range(0, len(out), 7):
                piece = out[i:i + 7]
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            self.wfile.write(b"0\r\n\r\n")
        else:
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

    do_GET = do_POST = do_PUT = do_DELETE = do_ANY


def wait_for(condition, deadline_s=10.0):
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        value = condition()
        if value:
            return value
        time.sleep(0.02)
    return condition()


def read_file(path):
    try:
        with open(path) as f:
            return f.read()
    except FileNotFoundError:
        return ""


class FaultProxyTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.upstream = ThreadingHTTPServer(("127.0.0.1", 0), Echo)
        cls.upstream.daemon_threads = True
        threading.Thread(target=cls.upstream.serve_forever, daemon=True).start()

    @classmethod
    def tearDownClass(cls):
        cls.upstream.shutdown()
        cls.upstream.server_close()

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        port_file = os.path.join(self.tmp.name, "port")
        self.proc = subprocess.Popen(
            ["/usr/bin/python3", PROXY, "--upstream",
             "http://127.0.0.1:%d" % self.upstream.server_address[1], "--port", "0",
             "--port-file", port_file], stderr=subprocess.DEVNULL, start_new_session=True)
        content = wait_for(lambda: read_file(port_file))
        self.assertTrue(content, "proxy did not write its port file")
        self.port = int(content)

    def tearDown(self):
        self.proc.kill()
        self.proc.wait()
        self.tmp.cleanup()

    def conn(self):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        self.addCleanup(c.close)
        return c

    def control(self, method, path, value=None):
        c = self.conn()
        c.request(method, "/__fault__/" + path,
                  body=None if value is None else json.dumps(value))
        r = c.getresponse()
        body = r.read()
        c.close()
        return r.status, json.loads(body or b"null")

    def stats(self):
        return self.control("GET", "stats")[1]

    def test_forwards_request_and_response_unchanged(self):
        c = self.conn()
        c.request("PUT", "/bucket/key%20x?uploads=", body=b"hello\x00world",
                  headers={"X-Amz-Date": "20240101T000000Z", "Authorization": "AWS4 sig"})
        r = c.getresponse()
        seen = json.loads(r.read())
        self.assertEqual(r.status, 200)
        self.assertEqual(r.getheader("X-Upstream"), "echo")
        self.assertEqual(seen["method"], "PUT")
        self.assertEqual(seen["path"], "/bucket/key%20x?uploads=")
        self.assertEqual(seen["body"], "hello\x00world")
        headers = dict(seen["headers"])
        self.assertEqual(headers["Authorization"], "AWS4 sig")
        self.assertEqual(headers["Host"], "127.0.0.1:%d" % self.port)

    def test_streams_chunked_bodies_both_ways(self):
        c = self.conn()
        c.request("POST", "/chunked", body=iter([b"abc", b"defg"]),
                  headers={"Transfer-Encoding": "chunked"}, encode_chunked=True)
        r = c.getresponse()
        seen = json.loads(r.read())
        self.assertEqual(seen["body"], "abcdefg")

    def test_keeps_client_connection_alive_and_counts_connections(self):
        c = self.conn()
        for _ in range(3):
            c.request("GET", "/x")
            r = c.getresponse()
            r.read()
            self.assertEqual(r.status, 200)
        c2 = self.conn()
        c2.request("GET", "/y")
        c2.getresponse().read()
        s = self.stats()
        self.assertEqual((s["requests"], s["connections"], s["faults"], s["forwarded"]),
                         (4, 2, 0, 4))

    def test_status_rule_answers_json_error_for_targeted_requests(self):
        self.control("POST", "rules", [{"action": "status", "count": 1, "status": 400,
                                        "code": "ThrottlingException"}])
        c = self.conn()
        c.request("POST", "/", body=b"{}", headers={"X-Amz-Target": "AmazonSQS.SendMessage"})
        r = c.getresponse()
        body = json.loads(r.read())
        self.assertEqual(r.status, 400)
        self.assertTrue(body["__type"].endswith("#ThrottlingException"))
        self.assertTrue(body["message"])
        self.assertTrue(r.getheader("x-amzn-RequestId"))
        # The same connection still works and the rule is used up.
        c.request("POST", "/", body=b"{}", headers={"X-Amz-Target": "AmazonSQS.SendMessage"})
        r = c.getresponse()
        r.read()
        self.assertEqual(r.status, 200)
        s = self.stats()
        self.assertEqual((s["requests"], s["faults"], s["forwarded"]), (2, 1, 1))

    def test_status_rule_answers_xml_error_when_asked(self):
        self.control("POST", "rules", [{"action": "status", "count": 1, "status": 503,
                                        "code": "SlowDown", "body_format": "xml"}])
        c = self.conn()
        c.request("PUT", "/bucket/key", body=b"data")
        r = c.getresponse()
        root = ET.fromstring(r.read())
        self.assertEqual(r.status, 503)
        self.assertEqual(root.tag, "Error")
        self.assertEqual(root.findtext("Code"), "SlowDown")
        self.assertEqual(root.findtext("RequestId"), r.getheader("x-amz-request-id"))

    def test_rules_apply_in_order_only_to_matching_requests(self):
        self.control("POST", "rules", [
            {"action": "status", "count": 1, "status": 500, "code": "First", "match": "Send"},
            {"action": "status", "count": 1, "status": 502, "code": "Second", "match": "Send"}])
        c = self.conn()
        statuses = []
        for target in ["AmazonSQS.Receive", "AmazonSQS.Send", "AmazonSQS.Send",
                       "AmazonSQS.Send"]:
            c.request("POST", "/", body=b"{}", headers={"X-Amz-Target": target})
            r = c.getresponse()
            r.read()
            statuses.append(r.status)
        self.assertEqual(statuses, [200, 500, 502, 200])
        self.assertEqual(self.stats()["faults"], 2)

    def test_drop_closes_connection_without_response(self):
        self.control("POST", "rules", [{"action": "drop", "count": 1}])
        c = self.conn()
        c.request("POST", "/", body=b"x")
        with self.assertRaises((http.client.RemoteDisconnected, ConnectionError)):
            c.getresponse()
        c = self.conn()
        c.request("POST", "/", body=b"x")
        self.assertEqual(c.getresponse().status, 200)
        s = self.stats()
        self.assertEqual((s["requests"], s["connections"], s["faults"], s["forwarded"]),
                         (2, 2, 1, 1))

    def test_delay_forwards_after_waiting(self):
        self.control("POST", "rules", [{"action": "delay", "count": 1, "delay_ms": 300}])
        c = self.conn()
        start = time.monotonic()
        c.request("GET", "/slow")
        r = c.getresponse()
        r.read()
        self.assertEqual(r.status, 200)
        self.assertGreaterEqual(time.monotonic() - start, 0.3)

    def test_delay_does_not_forward_when_client_gave_up(self):
        self.control("POST", "rules", [{"action": "delay", "count": 1, "delay_ms": 5000}])
        s = socket.create_connection(("127.0.0.1", self.port))
        self.addCleanup(s.close)
        s.sendall(b"POST /abandoned HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nx")
        self.assertTrue(wait_for(lambda: self.stats()["requests"] == 1))
        s.close()
        # Forwarded is never bumped for the abandoned request; a later request still works.
        c = self.conn()
        c.request("GET", "/after")
        self.assertEqual(c.getresponse().status, 200)
        self.assertEqual(self.stats()["forwarded"], 1)

    def test_rejects_malformed_rules(self):
        status, body = self.control("POST", "rules", [{"action": "explode"}])
        self.assertEqual(status, 400)
        self.assertIn("action", body["error"])

    def test_delete_rules_clears_pending_faults(self):
        self.control("POST", "rules", [{"action": "status", "count": 5, "status": 500}])
        self.control("DELETE", "rules")
        c = self.conn()
        c.request("GET", "/")
        self.assertEqual(c.getresponse().status, 200)


if __name__ == "__main__":
    unittest.main(verbosity=2)
