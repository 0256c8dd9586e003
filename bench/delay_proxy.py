#!/usr/bin/python3
"""A TCP forwarder that adds a fixed one-way delay: a real round-trip time in front of an emulator.

    delay_proxy.py --upstream 127.0.0.1:PORT [--delay-ms 10] [--lifetime-s 900]
                   [--port-file F] [--stats-file F]

Listens on a free 127.0.0.1 port (only loopback: there is no option to listen elsewhere, and
the upstream must be a loopback address too) and forwards every connection to the upstream.
Every chunk read from either side at time t is written to the other side at t + delay: a
per-connection, per-direction queue of (due time, bytes) drained by the event loop's timers,
so order and bandwidth are kept and nothing is serialised across connections or chunks (a
delay, not a throttle). With --delay-ms 10 a request/response exchange costs 20 ms more than
direct, as a 20 ms round trip does.

A new connection also pays the round trip of its TCP handshake: the kernel completes the
client's connect at once, so the first bytes of a connection are held until one round trip
(2 x delay) after the accept, then the one-way delay (--no-handshake-rtt turns that off).
End of stream (a half-close) travels with the same delay after the data before it; a reset
closes the other side once the data before it is delivered.

The proxy stops by itself after --lifetime-s (default 900 s), or as soon as the process that
started it is gone (checked once a second), or on SIGTERM/SIGINT. On exit it writes its stats
as JSON to --stats-file: connections, chunks and bytes each way, and how late chunks were
written against their due time (p50/p99/max lateness: the proxy is not a bottleneck while
those stay around a millisecond).

Standard library only (asyncio protocols, no threads); run with /usr/bin/python3.

As a module, `running_delay_proxies(endpoints, delay_ms, tmp)` starts one proxy process per
endpoint URL and yields the proxied URLs (bench/enqueue_bench.py uses it).
"""

import argparse
import asyncio
import collections
import contextlib
import ipaddress
import json
import os
import select
import signal
import socket
import subprocess
import sys
import urllib.parse

# Backpressure: a side stops reading while more than this many bytes wait in its delay queue
# (plus the other side's transport buffer), and reads again below LOW. 8 MiB in 10 ms is
# 800 MB/s, far above what the emulators serve, so it only bounds memory.
HIGH_WATER = 8 * 1024 * 1024
LOW_WATER = 2 * 1024 * 1024
READ_CHUNK = 256 * 1024
EOF = None  # the marker queued for a half-close
LATENESS_BUCKETS_US = [100, 250, 500, 1000, 2000, 5000, 10000, 20000, 50000]


class Stats:
    def __init__(self):
        self.connections = 0
        self.open = 0
        self.peak_open = 0
        # Requests in flight: connections whose client sent bytes since the upstream last
        # answered (HTTP/1.1 without pipelining: one request per busy connection).
        self.in_flight = 0
        self.peak_in_flight = 0
        self.upstream_failures = 0
        self.chunks = {"up": 0, "down": 0}
        self.bytes = {"up": 0, "down": 0}
        self.late_max_us = 0.0
        self.late_hist = [0] * (len(LATENESS_BUCKETS_US) + 1)
        self.late_n = 0

    def record_lateness(self, late_s):
        us = max(0.0, late_s * 1e6)
        self.late_n += 1
        self.late_max_us = max(self.late_max_us, us)
        for i, edge in enumerate(LATENESS_BUCKETS_US):
            if us <= edge:
                self.late_hist[i] += 1
                return
        self.late_hist[-1] += 1

    def quantile_us(self, q):
        """Upper edge of the bucket holding quantile q (max lateness for the last bucket)."""
        if self.late_n == 0:
            return 0.0
        rank = q * self.late_n
        seen = 0
        for i, count in enumerate(self.late_hist):
            seen += count
            if seen >= rank and count:
                return float(LATENESS_BUCKETS_US[i]) if i < len(LATENESS_BUCKETS_US) \
                    else self.late_max_us
        return self.late_max_us

    def as_dict(self):
        return {"connections": self.connections, "peak_open_connections": self.peak_open,
                "peak_requests_in_flight": self.peak_in_flight,
                "upstream_failures": self.upstream_failures,
                "chunks": self.chunks, "bytes": self.bytes, "lateness_samples": self.late_n,
                "lateness_p50_us_at_most": self.quantile_us(0.5),
                "lateness_p99_us_at_most": self.quantile_us(0.99),
                "lateness_max_us": round(self.late_max_us, 1),
                "lateness_buckets_us": dict(zip([str(e) for e in LATENESS_BUCKETS_US] + ["more"],
                                                self.late_hist))}


STATS = Stats()


class DelayLine:
    """One direction of one connection: bytes read from `source` reach `target` `delay` later."""

    def __init__(self, loop, delay, name, hold_until):
        self.loop = loop
        self.delay = delay
        self.name = name  # "up" (client -> upstream) or "down"
        self.hold_until = hold_until  # nothing is due before this (the handshake round trip)
        self.queue = collections.deque()
        self.queued_bytes = 0
        self.timer = None
        self.source = None  # transports, set once connected
        self.target = None
        self.target_paused = False
        self.source_paused = False
        self.finished = False  # EOF delivered
        self.on_finished = None
        self.on_data = None  # called with the line's name for every chunk read

    def push(self, data):
        now = self.loop.time()
        if self.on_data is not None and data is not EOF:
            self.on_data(self.name)
        due = max(now, self.hold_until) + self.delay
        self.queue.append((due, data))
        if data is not EOF:
            self.queued_bytes += len(data)
            STATS.chunks[self.name] += 1
            STATS.bytes[self.name] += len(data)
        self._update_reading()
        self._schedule()

    def _schedule(self):
        if self.timer is None and self.queue and self.target is not None:
            self.timer = self.loop.call_at(self.queue[0][0], self._flush)

    def attach_target(self, transport):
        self.target = transport
        self._schedule()

    def _flush(self):
        self.timer = None
        if self.target is None:
            return
        now = self.loop.time()
        # Everything due by now goes out in order; a write never blocks (the transport buffers).
        while self.queue and self.queue[0][0] <= now + 0.0005:
            due, data = self.queue.popleft()
            STATS.record_lateness(now - due)
            if data is EOF:
                self.queue.clear()
                self.finished = True
                if not self.target.is_closing():
                    if self.target.can_write_eof():
                        self.target.write_eof()
                    else:
                        self.target.close()
                if self.on_finished:
                    self.on_finished()
                return
            self.queued_bytes -= len(data)
            if not self.target.is_closing():
                self.target.write(data)
        self._update_reading()
        self._schedule()

    def pause_target_writing(self, paused):
        self.target_paused = paused
        self._update_reading()

    def _update_reading(self):
        if self.source is None or self.source.is_closing():
            return
        want_pause = self.target_paused or self.queued_bytes > HIGH_WATER
        if want_pause and not self.source_paused:
            self.source.pause_reading()
            self.source_paused = True
        elif self.source_paused and not self.target_paused and self.queued_bytes < LOW_WATER:
            self.source.resume_reading()
            self.source_paused = False

    def cancel(self):
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.queue.clear()


class Side(asyncio.Protocol):
    """One socket of a proxied connection; `incoming` is the line its reads go into, `outgoing`
    the line that writes to it."""

    def __init__(self, pair, incoming, outgoing):
        self.pair = pair
        self.incoming = incoming
        self.outgoing = outgoing
        self.transport = None

    def connection_made(self, transport):
        self.transport = transport
        self.incoming.source = transport
        self.outgoing.attach_target(transport)

    def data_received(self, data):
        self.incoming.push(data)

    def eof_received(self):
        self.incoming.push(EOF)
        return True  # keep the other direction open until its own EOF

    def pause_writing(self):
        self.outgoing.pause_target_writing(True)

    def resume_writing(self):
        self.outgoing.pause_target_writing(False)

    def connection_lost(self, exc):
        if self.pair.closed:
            return
        if not self.incoming.finished and (not self.incoming.queue
                                           or self.incoming.queue[-1][1] is not EOF):
            # A reset or a close without a half-close: deliver what came before it, then end.
            self.incoming.push(EOF)
        self.pair.side_lost(self)


class Pair:
    """A proxied connection: the client side (accepted) and the upstream side."""

    def __init__(self, loop, args):
        delay = args.delay_ms / 1000.0
        now = loop.time()
        hold = now + 2 * delay if args.handshake_rtt else now
        self.loop = loop
        self.up = DelayLine(loop, delay, "up", hold)
        self.down = DelayLine(loop, delay, "down", now)
        self.up.on_finished = self.down.on_finished = self._maybe_close
        self.up.on_data = self.down.on_data = self._count_in_flight
        self.busy = False
        self.client = Side(self, self.up, self.down)
        self.upstream = None
        self.closed = False
        STATS.connections += 1
        STATS.open += 1
        STATS.peak_open = max(STATS.peak_open, STATS.open)

    def _count_in_flight(self, direction):
        if direction == "up" and not self.busy:
            self.busy = True
            STATS.in_flight += 1
            STATS.peak_in_flight = max(STATS.peak_in_flight, STATS.in_flight)
        elif direction == "down" and self.busy:
            self.busy = False
            STATS.in_flight -= 1

    def connect_upstream(self, host, port):
        async def connect():
            try:
                _, side = await self.loop.create_connection(
                    lambda: Side(self, self.down, self.up), host, port)
                self.upstream = side
                side.transport.get_extra_info("socket").setsockopt(
                    socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                if self.closed:
                    side.transport.close()
            except OSError:
                STATS.upstream_failures += 1
                self.close()
        return self.loop.create_task(connect())

    def _maybe_close(self):
        if self.up.finished and self.down.finished:
            self.close()

    def side_lost(self, side):
        # Either side gone for good: once both lines have delivered their EOF, close all.
        if side is self.client and self.upstream is None:
            self.close()
        self._maybe_close()

    def close(self):
        if self.closed:
            return
        self.closed = True
        STATS.open -= 1
        if self.busy:
            self.busy = False
            STATS.in_flight -= 1
        for line in (self.up, self.down):
            line.cancel()
        for side in (self.client, self.upstream):
            if side is not None and side.transport is not None:
                side.transport.close()


def check_loopback(host):
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except socket.gaierror as e:
        raise SystemExit("delay_proxy: cannot resolve %s: %s" % (host, e))
    for info in infos:
        if not ipaddress.ip_address(info[4][0]).is_loopback:
            raise SystemExit("delay_proxy: upstream %s is not a loopback address" % host)


def write_file_atomically(path, text):
    tmp = "%s.tmp.%d" % (path, os.getpid())
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)  # readers never see a partial file


async def serve(args):
    loop = asyncio.get_running_loop()
    host, _, port = args.upstream.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    check_loopback(host)
    upstream_port = int(port)

    def accept():
        pair = Pair(loop, args)
        pair.connect_upstream(host, upstream_port)
        return pair.client

    server = await loop.create_server(accept, "127.0.0.1", args.port, backlog=512,
                                      reuse_address=True)
    sock = server.sockets[0]
    bound = sock.getsockname()[1]
    stop = loop.create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda: stop.done() or stop.set_result("signal"))
    loop.call_later(args.lifetime_s, lambda: stop.done() or stop.set_result("lifetime"))
    parent = os.getppid()

    def watch_parent():
        if os.getppid() != parent and not stop.done():
            stop.set_result("parent gone")
        elif not stop.done():
            loop.call_later(1.0, watch_parent)

    loop.call_later(1.0, watch_parent)
    if args.port_file == "-":
        sys.stdout.write("%d\n" % bound)
        sys.stdout.flush()
    elif args.port_file:
        write_file_atomically(args.port_file, "%d\n" % bound)
    sys.stderr.write("delay_proxy: 127.0.0.1:%d -> %s, %g ms each way, stops within %g s\n"
                     % (bound, args.upstream, args.delay_ms, args.lifetime_s))
    sys.stderr.flush()
    why = await stop
    server.close()
    stats = STATS.as_dict()
    stats["stopped"] = why
    stats["delay_ms"] = args.delay_ms
    if args.stats_file:
        write_file_atomically(args.stats_file, json.dumps(stats, indent=1) + "\n")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--upstream", required=True, help="HOST:PORT of the upstream (loopback)")
    ap.add_argument("--delay-ms", type=float, default=10.0, help="one-way delay (default 10)")
    ap.add_argument("--no-handshake-rtt", dest="handshake_rtt", action="store_false",
                    help="do not hold a new connection's first bytes for a round trip")
    ap.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0 = a free one)")
    ap.add_argument("--port-file",
                    help="write the bound port here once listening ('-': one line on stdout)")
    ap.add_argument("--stats-file", help="write JSON stats here on exit")
    ap.add_argument("--lifetime-s", type=float, default=900.0,
                    help="exit after this long at most (default 900)")
    args = ap.parse_args(argv)
    if args.delay_ms < 0 or args.lifetime_s <= 0:
        ap.error("--delay-ms must be >= 0 and --lifetime-s > 0")
    asyncio.run(serve(args))


# --- as a module -------------------------------------------------------------------------------

@contextlib.contextmanager
def running_delay_proxies(endpoints, delay_ms, tmp, lifetime_s=900.0, handshake_rtt=True):
    """Starts one proxy per endpoint ({name: "http://127.0.0.1:N"}) and yields
    ({name: proxied URL}, info): info["pids"] = {name: pid}, and info["stats"] = {name: the
    proxy's stats}, filled in when the block ends. Stops exactly the processes it started
    (SIGTERM, then SIGKILL after 5 s)."""
    procs = {}
    stats = {}
    urls = {}
    info = {"pids": {}, "stats": stats}
    try:
        for name, url in endpoints.items():
            parts = urllib.parse.urlsplit(url)
            argv = ["/usr/bin/python3", os.path.abspath(__file__),
                    "--upstream", "%s:%d" % (parts.hostname, parts.port),
                    "--delay-ms", str(delay_ms), "--lifetime-s", str(lifetime_s),
                    "--port-file", "-",
                    "--stats-file", os.path.join(tmp, "delay-proxy-%s.stats" % name)]
            if not handshake_rtt:
                argv.append("--no-handshake-rtt")
            procs[name] = subprocess.Popen(argv, stdout=subprocess.PIPE,
                                           stderr=subprocess.DEVNULL, start_new_session=True)
            info["pids"][name] = procs[name].pid
        for name, url in endpoints.items():
            port = read_port(procs[name], deadline_s=20.0)
            parts = urllib.parse.urlsplit(url)
            urls[name] = urllib.parse.urlunsplit(
                (parts.scheme, "127.0.0.1:%d" % port, parts.path, parts.query, parts.fragment))
        yield urls, info
    finally:
        for name, proc in procs.items():
            if proc.poll() is None:
                proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            proc.stdout.close()
            try:
                with open(os.path.join(tmp, "delay-proxy-%s.stats" % name)) as f:
                    stats[name] = json.load(f)
            except (OSError, ValueError):
                pass


def read_port(proc, deadline_s):
    """The port a proxy started with --port-file - prints once it listens (a blocking read with
    a deadline: no polling)."""
    ready, _, _ = select.select([proc.stdout], [], [], deadline_s)
    line = proc.stdout.readline() if ready else b""
    if not line.strip():
        raise RuntimeError("delay_proxy did not report its port within %g s (exit status %s)"
                           % (deadline_s, proc.poll()))
    return int(line)


if __name__ == "__main__":
    main()
