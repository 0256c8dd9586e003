#!/usr/bin/python3
"""Self-test of bench/delay_proxy.py against an in-process TCP echo server.

Proves the proxy adds a round trip of 2 x delay to an exchange on an open connection (and one
more round trip for a new connection's handshake), keeps bytes and their order, pipelines
(many chunks in flight cost one round trip, not one each), does not serialise connections,
passes a half-close through, and exits by itself at the end of its lifetime. Needs no emulator.
Every wait is a blocking read or wait with a deadline; nothing sleeps to synchronise.
"""

import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
BENCH = os.path.join(HERE, "..", "..", "bench")
PROXY = os.path.join(BENCH, "delay_proxy.py")
sys.path.insert(0, BENCH)
import delay_proxy  # noqa: E402

DELAY_MS = 10


class EchoServer:
    """Echoes every byte back on the same connection; closes its side after the peer's EOF."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._echo, args=(conn,), daemon=True).start()

    @staticmethod
    def _echo(conn):
        with conn:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            while True:
                data = conn.recv(65536)
                if not data:
                    return
                conn.sendall(data)

    def close(self):
        self.sock.close()


def recv_exactly(sock, n):
    out = bytearray()
    while len(out) < n:
        data = sock.recv(n - len(out))
        if not data:
            raise EOFError("connection closed after %d of %d bytes" % (len(out), n))
        out += data
    return bytes(out)


class DelayProxyTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.echo = EchoServer()
        cls.proc = subprocess.Popen(
            ["/usr/bin/python3", PROXY, "--upstream", "127.0.0.1:%d" % cls.echo.port,
             "--delay-ms", str(DELAY_MS), "--lifetime-s", "120", "--port-file", "-"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True)
        cls.port = delay_proxy.read_port(cls.proc, deadline_s=20)

    @classmethod
    def tearDownClass(cls):
        cls.proc.terminate()
        cls.proc.wait(timeout=10)
        cls.proc.stdout.close()
        cls.echo.close()

    def connect(self):
        s = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.addCleanup(s.close)
        return s

    def exchange_ms(self, s, payload=b"ping"):
        start = time.monotonic()
        s.sendall(payload)
        self.assertEqual(recv_exactly(s, len(payload)), payload)
        return (time.monotonic() - start) * 1000

    def test_round_trip_on_an_open_connection_is_twice_the_delay(self):
        s = self.connect()
        self.exchange_ms(s)  # the first exchange also pays the handshake round trip
        rtts = [self.exchange_ms(s) for _ in range(20)]
        median = statistics.median(rtts)
        self.assertGreaterEqual(min(rtts), 2 * DELAY_MS - 0.5, rtts)
        self.assertTrue(15 <= median <= 40, "median round trip %.1f ms: %s" % (median, rtts))

    def test_a_new_connection_pays_one_more_round_trip(self):
        # Timed from the connect: the handshake's round trip counts from the accept.
        start = time.monotonic()
        s = self.connect()
        self.exchange_ms(s)
        first = (time.monotonic() - start) * 1000
        self.assertTrue(4 * DELAY_MS - 0.5 <= first <= 4 * DELAY_MS + 30, first)

    def test_bytes_and_order_are_kept_and_chunks_are_pipelined(self):
        s = self.connect()
        self.exchange_ms(s)
        # 200 chunks written back to back (4 MiB in all) cost about one round trip plus the
        # transfer, not one round trip each (200 x 20 ms = 4 s).
        chunks = [bytes([i % 251]) * 20000 + i.to_bytes(4, "big") for i in range(200)]
        blob = b"".join(chunks)
        got = bytearray()

        def read_all():
            got.extend(recv_exactly(s, len(blob)))

        reader = threading.Thread(target=read_all)
        start = time.monotonic()
        reader.start()
        for chunk in chunks:
            s.sendall(chunk)
        reader.join(timeout=30)
        elapsed_ms = (time.monotonic() - start) * 1000
        self.assertFalse(reader.is_alive())
        self.assertEqual(bytes(got), blob)
        self.assertLess(elapsed_ms, 1000, "4 MiB in 200 chunks took %.0f ms" % elapsed_ms)

    def test_connections_do_not_wait_for_each_other(self):
        socks = [self.connect() for _ in range(30)]
        for s in socks:
            self.exchange_ms(s)
        start = time.monotonic()
        for i, s in enumerate(socks):
            s.sendall(b"n%03d" % i)
        for i, s in enumerate(socks):
            self.assertEqual(recv_exactly(s, 4), b"n%03d" % i)
        elapsed_ms = (time.monotonic() - start) * 1000
        # 30 exchanges at once: one round trip, not 30 (600 ms).
        self.assertLess(elapsed_ms, 120, elapsed_ms)

    def test_half_close_passes_through(self):
        s = self.connect()
        s.sendall(b"last words")
        s.shutdown(socket.SHUT_WR)
        self.assertEqual(recv_exactly(s, 10), b"last words")
        self.assertEqual(s.recv(10), b"")  # the echo server's close came back through

    def test_stops_by_itself_after_its_lifetime(self):
        with tempfile.TemporaryDirectory() as tmp:
            stats_file = os.path.join(tmp, "stats")
            proc = subprocess.Popen(
                ["/usr/bin/python3", PROXY, "--upstream", "127.0.0.1:%d" % self.echo.port,
                 "--lifetime-s", "1", "--port-file", "-", "--stats-file", stats_file],
                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True)
            try:
                port = delay_proxy.read_port(proc, deadline_s=20)
                with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
                    s.sendall(b"x")
                    self.assertEqual(recv_exactly(s, 1), b"x")
                self.assertEqual(proc.wait(timeout=15), 0)
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
                proc.stdout.close()
            with open(stats_file) as f:
                stats = f.read()
            self.assertIn('"stopped": "lifetime"', stats)

    def test_refuses_a_non_loopback_upstream(self):
        done = subprocess.run(["/usr/bin/python3", PROXY, "--upstream", "192.0.2.1:80",
                               "--lifetime-s", "5"], capture_output=True, text=True, timeout=20)
        self.assertNotEqual(done.returncode, 0)
        self.assertIn("not a loopback", done.stderr)


if __name__ == "__main__":
    unittest.main()
