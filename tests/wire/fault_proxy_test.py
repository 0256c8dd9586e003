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
        self.procs = []
        self.port = self.start_proxy()

    def start_proxy(self, *extra):
        """Starts one more proxy (with extra arguments); returns its port."""
        port_file = os.path.join(self.tmp.name, "port%d" % len(self.procs))
        proc = subprocess.Popen(
            ["/usr/bin/python3", PROXY, "--upstream",
             "http://127.0.0.1:%d" % self.upstream.server_address[1], "--port", "0",
             "--port-file", port_file, *extra], stderr=subprocess.DEVNULL,
            start_new_session=True)
        self.procs.append(proc)
        content = wait_for(lambda: read_file(port_file))
        self.assertTrue(content, "proxy did not write its port file")
        return int(content)

    def tearDown(self):
        for proc in self.procs:
            proc.kill()
            proc.wait()
        self.tmp.cleanup()

    def conn(self, port=None, timeout=10):
        c = http.client.HTTPConnection("127.0.0.1", port or self.port, timeout=timeout)
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

    # --- the faults of the fault-injection suite (tests/faults) ---------------------------

    def raw_exchange(self, request, port=None, timeout=10):
        """Sends raw bytes, reads until the proxy closes; returns everything received."""
        s = socket.create_connection(("127.0.0.1", port or self.port), timeout=timeout)
        self.addCleanup(s.close)
        s.sendall(request)
        got = b""
        while True:
            data = s.recv(65536)
            if not data:
                return got
            got += data

    def test_apply_drop_forwards_then_closes_without_reply(self):
        self.control("POST", "rules", [{"action": "apply_drop", "count": 1}])
        got = self.raw_exchange(b"POST /applied HTTP/1.1\r\nHost: x\r\n"
                                b"X-Amz-Target: DynamoDB_20120810.UpdateItem\r\n"
                                b"Content-Length: 2\r\n\r\n{}")
        self.assertEqual(got, b"")
        s = self.stats()
        # The upstream saw (and answered) the request: only the reply was lost.
        self.assertEqual((s["requests"], s["faults"], s["forwarded"]), (1, 1, 1))
        self.assertEqual(s["by_kind"], {"apply_drop": 1})
        c = self.conn()
        c.request("GET", "/after")
        self.assertEqual(c.getresponse().status, 200)

    def test_truncate_sends_status_line_and_part_of_the_body(self):
        self.control("POST", "rules", [{"action": "truncate", "count": 1}])
        got = self.raw_exchange(b"GET /truncated HTTP/1.1\r\nHost: x\r\n\r\n")
        head, sep, body = got.partition(b"\r\n\r\n")
        self.assertTrue(sep, got)
        self.assertTrue(head.startswith(b"HTTP/1.1 200"), head)
        length = [int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                  if line.lower().startswith(b"content-length:")]
        self.assertEqual(len(length), 1, head)
        self.assertGreater(length[0], 0)
        self.assertLess(len(body), length[0])
        self.assertGreater(len(body), 0)
        self.assertEqual(self.stats()["forwarded"], 1)
        # An HTTP client sees a short body.
        self.control("POST", "rules", [{"action": "truncate", "count": 1}])
        c = self.conn()
        c.request("GET", "/truncated")
        r = c.getresponse()
        self.assertEqual(r.status, 200)
        with self.assertRaises(http.client.IncompleteRead):
            r.read()

    def test_throttle_answers_each_services_throttling_error(self):
        self.control("POST", "rules", [{"action": "throttle", "count": 3}])
        c = self.conn()
        c.request("POST", "/", body=b"{}",
                  headers={"X-Amz-Target": "DynamoDB_20120810.UpdateItem"})
        r = c.getresponse()
        body = json.loads(r.read())
        self.assertEqual(r.status, 400)
        self.assertEqual(body["__type"],
                         "com.amazonaws.dynamodb.v20120810#ThrottlingException")
        c.request("POST", "/", body=b"{}", headers={"X-Amz-Target": "AmazonSQS.ReceiveMessage"})
        r = c.getresponse()
        body = json.loads(r.read())
        self.assertEqual(r.status, 400)
        self.assertEqual(body["__type"], "com.amazonaws.sqs#ThrottlingException")
        self.assertEqual(r.getheader("x-amzn-query-error"), "ThrottlingException;Sender")
        c.request("PUT", "/bucket/key", body=b"data")
        r = c.getresponse()
        root = ET.fromstring(r.read())
        self.assertEqual(r.status, 503)
        self.assertEqual(root.findtext("Code"), "SlowDown")
        s = self.stats()
        self.assertEqual((s["faults"], s["forwarded"], s["by_kind"]), (3, 0, {"throttle": 3}))

    def test_blackhole_never_answers_and_closes_when_the_client_hangs_up(self):
        self.control("POST", "rules", [{"action": "blackhole", "count": 1, "blackhole_s": 60}])
        c = self.conn(timeout=1)
        c.request("POST", "/", body=b"{}", headers={"X-Amz-Target": "AmazonSQS.SendMessage"})
        with self.assertRaises(socket.timeout):
            c.getresponse()
        c.close()
        # Other connections are served meanwhile; nothing was forwarded for the black hole.
        c2 = self.conn()
        c2.request("GET", "/after")
        self.assertEqual(c2.getresponse().status, 200)
        self.assertEqual(self.stats()["forwarded"], 1)

    def test_blackhole_gives_up_after_its_time(self):
        self.control("POST", "rules", [{"action": "blackhole", "count": 1, "blackhole_s": 0.5}])
        start = time.monotonic()
        got = self.raw_exchange(b"GET /held HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertEqual(got, b"")
        self.assertGreaterEqual(time.monotonic() - start, 0.45)
        self.assertEqual(self.stats()["forwarded"], 0)

    def statuses_under_chaos(self, port, targets):
        c = self.conn(port)
        statuses = []
        for target in targets:
            c.request("POST", "/", body=b"{}", headers={"X-Amz-Target": target})
            r = c.getresponse()
            r.read()
            statuses.append(r.status)
        return statuses

    def test_chaos_is_seeded_at_its_rate_and_logs_every_fault(self):
        log_path = os.path.join(self.tmp.name, "faults.jsonl")
        args = ["--chaos-rate", "0.3", "--chaos-seed", "42", "--chaos-kinds",
                "status500=1,status503=1,throttle=1", "--service", "sqs"]
        port_a = self.start_proxy(*args, "--fault-log", log_path)
        port_b = self.start_proxy(*args)
        targets = ["AmazonSQS.ReceiveMessage", "AmazonSQS.DeleteMessage"] * 60
        first = self.statuses_under_chaos(port_a, targets)
        second = self.statuses_under_chaos(port_b, targets)
        self.assertEqual(first, second)  # same seed, same requests: the same faults
        faults = [s for s in first if s != 200]
        self.assertTrue(20 <= len(faults) <= 52, len(faults))  # 36 expected
        self.assertEqual(set(faults), {400, 500, 503})
        # A long poll is hit no more often than any other call: every draw is the same.
        receive = sum(1 for t, s in zip(targets, first) if s != 200 and "Receive" in t)
        self.assertTrue(0.3 <= receive / len(faults) <= 0.7, (receive, len(faults)))
        with open(log_path) as f:
            logged = [json.loads(line) for line in f]
        self.assertEqual(len(logged), len(faults))
        self.assertTrue(all(e["service"] == "sqs" and e["source"] == "chaos" for e in logged))
        self.assertTrue(all(e["operation"].startswith("AmazonSQS.") for e in logged))
        self.assertEqual(sorted({e["kind"] for e in logged}),
                         ["status500", "status503", "throttle"])
        c = self.conn(port_a)
        c.request("GET", "/__fault__/stats")
        stats = json.loads(c.getresponse().read())
        self.assertEqual(stats["chaos_faults"], len(faults))
        self.assertEqual(sum(stats["by_kind"].values()), len(faults))

    def test_chaos_can_be_set_and_turned_off_through_the_control_api(self):
        status, body = self.control("POST", "chaos", {"rate": 1, "seed": 1,
                                                      "kinds": {"throttle": 1}})
        self.assertEqual(status, 200)
        self.assertEqual(body["rate"], 1.0)
        self.assertEqual(self.statuses_under_chaos(self.port, ["DynamoDB_20120810.GetItem"]),
                         [400])
        self.control("POST", "chaos", {"rate": 0})
        self.assertEqual(self.statuses_under_chaos(self.port, ["DynamoDB_20120810.GetItem"]),
                         [200])
        status, body = self.control("POST", "chaos", {"kinds": {"explode": 1}})
        self.assertEqual(status, 400)
        self.assertIn("explode", body["error"])
        # Rules still come first.
        self.control("POST", "chaos", {"rate": 1, "kinds": {"throttle": 1}})
        self.control("POST", "rules", [{"action": "status", "count": 1, "status": 500}])
        self.assertEqual(self.statuses_under_chaos(self.port, ["AmazonSQS.SendMessage"] * 2),
                         [500, 400])

    def test_chaos_apply_drop_reaches_the_upstream(self):
        port = self.start_proxy("--chaos-rate", "1", "--chaos-kinds", "apply_drop")
        got = self.raw_exchange(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
                                port=port)
        self.assertEqual(got, b"")
        c = self.conn(port)
        c.request("GET", "/__fault__/stats")
        stats = json.loads(c.getresponse().read())
        self.assertEqual((stats["forwarded"], stats["by_kind"]), (1, {"apply_drop": 1}))


if __name__ == "__main__":
    unittest.main(verbosity=2)
