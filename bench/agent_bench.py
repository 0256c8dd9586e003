#!/usr/bin/python3
"""Agent benchmark: what an idle agent costs, how fast it starts a unit, how many AWS requests a
unit costs.

Usage: /usr/bin/python3 bench/agent_bench.py BUILD_DIR [--idle-seconds 60] [--latency-units 30]
                                             [--request-units 100] [--tls] [--json FILE]

Starts the emulators (tests/harness/launcher.py) and a stack (`controller init`), then:
 1. idle: one agent (--slots 1, default heartbeat and long poll) with an empty queue; over
    --idle-seconds its RSS (VmRSS, sampled every second; VmHWM) and CPU (utime + stime from
    /proc/PID/stat). Targets: < 10 MiB, < 0.5 % of one core.
 2. dispatch latency: the same idle agent; for each of --latency-units units (already in the
    ledger, their enqueue messages drained), this script sends the unit's message itself and
    the command writes `date +%s.%N` into its output. Latency = command start - the moment the
    SendMessage call began. The emulator's own long-poll wake-up is measured the same way with
    a botocore receiver on a separate queue, so "beyond the wake-up" can be read off.
    Target: median and p99 under 100 ms beyond the wake-up.
 3. requests per unit: a fresh agent (--slots 2, default heartbeat and sync interval) talks to
    SQS, DynamoDB and S3 through tests/harness/fault_proxy.py (no faults; its stats log names
    every request); --request-units one-line units are enqueued and run; requests are counted by
    service and operation (X-Amz-Target for SQS and DynamoDB, method and path shape for S3).
    Target: at most 6 per unit besides the S3 transfers of outputs and logs.
With --tls, the idle agent and its boto3 peer (phases 1 and 2) reach SQS, DynamoDB and S3 over
TLS, as on AWS: a TLS front (a self-signed certificate for 127.0.0.1, trusted through
AWS_CA_BUNDLE, which both honour) sits before each emulator and AWS_ENDPOINT_URL_* name the
https:// fronts; the fronts count the TLS connections each client made. Phase 3 stays plain.
The agent runs as `nobody` when this script runs as root (as on a worker: units never run as
root). Everything started here is stopped here, by process id.
"""
import argparse
import csv
import json
import os
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request

import botocore.session

from emulators import running_emulators, wait_until

HERE = os.path.dirname(os.path.abspath(__file__))
FAULT_PROXY = os.path.join(os.path.dirname(HERE), "tests", "harness", "fault_proxy.py")
TICK = os.sysconf("SC_CLK_TCK")


# --- processes ----------------------------------------------------------------------------------

def proc_cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def proc_status(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            out[key] = value.strip()
    return out


def proc_pss_kib(pid):
    """Proportional set size: shared library pages divided among the processes mapping them."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def kib(value):  # "1234 kB" -> 1234
    return int(value.split()[0])


def percentile(values, p):
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = (len(ordered) - 1) * p / 100.0
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


class Agent:
    """One agent process in its own session, its own work dir and empty env file."""

    def __init__(self, binary, tmp, name, stack, env, slots=1, extra=()):
        self.dir = os.path.join(tmp, name)
        self.work = os.path.join(self.dir, "work")
        os.makedirs(self.work)
        os.chmod(self.dir, 0o755)
        os.chmod(self.work, 0o755)
        env_file = os.path.join(self.dir, "agent.env")
        open(env_file, "w").close()
        self.notify_path = os.path.join(self.dir, "notify.sock")
        self.notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.notify.bind(self.notify_path)
        user = "nobody" if os.geteuid() == 0 else ""
        argv = [binary, "--stack", stack, "--slots", str(slots), "--work-dir", self.work,
                "--idle-shutdown", "1d", "--on-drain", "stay", "--user", user,
                "--env-file", env_file, *extra]
        child_env = dict(env)
        for name_ in ("WATCHDOG_USEC", "WATCHDOG_PID", "JOURNAL_STREAM", "SPOTGRID_STACK"):
            child_env.pop(name_, None)
        child_env["AWS_EC2_METADATA_DISABLED"] = "true"
        # Our own notification socket tells us when the agent is connected and ready.
        child_env["NOTIFY_SOCKET"] = self.notify_path
        self.log_path = os.path.join(self.dir, "agent.log")
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(argv, env=child_env, stdin=subprocess.DEVNULL,
                                     stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        self.ready = threading.Event()
        threading.Thread(target=self._read_notifications, daemon=True).start()

    def _read_notifications(self):
        # Drained for as long as the agent lives, as systemd does: sd_notify blocks once the
        # socket's datagram queue is full.
        while True:
            try:
                data = self.notify.recv(4096).decode(errors="replace")
            except OSError:
                return
            if "READY=1" in data.split("\n"):
                self.ready.set()

    def wait_ready(self, deadline_s=60):
        end = time.monotonic() + deadline_s
        while not self.ready.wait(0.5):
            if self.proc.poll() is not None:
                sys.exit(f"agent_bench: the agent exited ({self.proc.returncode}):\n{self.tail()}")
            if time.monotonic() > end:
                sys.exit(f"agent_bench: no READY=1 from the agent within {deadline_s} s:\n"
                         f"{self.tail()}")

    def tail(self, n=30):
        with open(self.log_path, errors="replace") as f:
            return "".join(f.readlines()[-n:])

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        # Units run in process groups of their own: stop any left under our work dir.
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    if os.readlink(f"/proc/{entry}/cwd").startswith(self.work + "/"):
                        os.kill(int(entry), signal.SIGKILL)
                except OSError:
                    pass
        try:
            self.notify.shutdown(socket.SHUT_RDWR)  # wakes the reader thread
        except OSError:
            pass
        self.notify.close()
        self.log.close()


class FaultProxy:
    """tests/harness/fault_proxy.py in front of one emulator, without faults: a request log."""

    def __init__(self, tmp, name, upstream):
        port_file = os.path.join(tmp, f"proxy-{name}.port")
        self.log = open(os.path.join(tmp, f"proxy-{name}.log"), "ab")
        self.proc = subprocess.Popen(["/usr/bin/python3", FAULT_PROXY, "--upstream", upstream,
                                      "--port", "0", "--port-file", port_file],
                                     stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        end = time.monotonic() + 15
        while not os.path.exists(port_file):
            if time.monotonic() > end or self.proc.poll() is not None:
                sys.exit(f"agent_bench: fault_proxy for {name} did not start")
            time.sleep(0.02)  # polling for the port file with a deadline
        with open(port_file) as f:
            self.url = "http://127.0.0.1:%d" % int(f.read())

    def control(self, method, what):
        request = urllib.request.Request(f"{self.url}/__fault__/{what}", method=method,
                                         data=b"" if method == "POST" else None)
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read() or b"{}")

    def stop(self):
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        self.log.close()


# --- TLS fronts (--tls) -------------------------------------------------------------------------

class TlsFronts:
    """One TLS-terminating forwarder per emulator (SQS, DynamoDB, S3), on threads of this
    process: accepts TLS on a free loopback port and relays the plaintext to the emulator."""

    SERVICES = ("AWS_ENDPOINT_URL_SQS", "AWS_ENDPOINT_URL_DYNAMODB", "AWS_ENDPOINT_URL_S3")

    def __init__(self, tmp, env):
        self.cert = os.path.join(tmp, "tls-front.pem")
        key = os.path.join(tmp, "tls-front.key")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key,
                        "-out", self.cert, "-days", "1", "-subj", "/CN=127.0.0.1",
                        "-addext", "subjectAltName=IP:127.0.0.1"],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.chmod(tmp, 0o755)
        os.chmod(self.cert, 0o644)  # the agent runs as nobody
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(self.cert, key)
        self.env = dict(env)
        self.env["AWS_CA_BUNDLE"] = self.cert
        self.connections = {}
        self.listeners = []
        for var in self.SERVICES:
            upstream = urllib.parse.urlsplit(env[var])
            listener = socket.create_server(("127.0.0.1", 0))
            self.listeners.append(listener)
            self.connections[var] = 0
            threading.Thread(target=self._accept, daemon=True,
                             args=(listener, var, (upstream.hostname, upstream.port))).start()
            self.env[var] = f"https://127.0.0.1:{listener.getsockname()[1]}"

    def _accept(self, listener, var, upstream):
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            self.connections[var] += 1
            threading.Thread(target=self._serve, args=(conn, upstream), daemon=True).start()

    def _serve(self, conn, upstream):
        try:
            tls = self.ctx.wrap_socket(conn, server_side=True)
            plain = socket.create_connection(upstream)
        except OSError:
            conn.close()
            return
        threading.Thread(target=self._pipe, args=(plain, tls), daemon=True).start()
        self._pipe(tls, plain)

    @staticmethod
    def _pipe(src, dst):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def counts(self):
        return {var.rsplit("_", 1)[1].lower(): n for var, n in self.connections.items()}

    def close(self):
        for listener in self.listeners:
            listener.close()


# --- the stack --------------------------------------------------------------------------------

class Stack:
    def __init__(self, controller, env, tmp, name):
        self.controller, self.env, self.tmp, self.name = controller, env, tmp, name
        self.bucket = name + "-bucket"
        out = self.run(["init", "--bucket", self.bucket, "--visibility", "60", "--json"])
        self.info = json.loads(out)
        self.table = "spotgrid-" + name
        session = botocore.session.get_session()
        region = env["AWS_REGION"]
        self.ddb = session.create_client("dynamodb", endpoint_url=env["AWS_ENDPOINT_URL_DYNAMODB"],
                                         region_name=region, aws_access_key_id="S3RVER",
                                         aws_secret_access_key="S3RVER")
        self.sqs = session.create_client("sqs", endpoint_url=env["AWS_ENDPOINT_URL_SQS"],
                                         region_name=region, aws_access_key_id="S3RVER",
                                         aws_secret_access_key="S3RVER")
        self.s3 = session.create_client("s3", endpoint_url=env["AWS_ENDPOINT_URL_S3"],
                                        region_name=region, aws_access_key_id="S3RVER",
                                        aws_secret_access_key="S3RVER")

    def run(self, args):
        done = subprocess.run([self.controller, *args, "--stack", self.name], env=self.env,
                              capture_output=True, text=True)
        if done.returncode != 0:
            sys.exit(f"agent_bench: controller {' '.join(args)} failed:\n{done.stderr}")
        return done.stdout

    def enqueue(self, job, rows, command):
        path = os.path.join(self.tmp, job + ".csv")
        with open(path, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["id", "n"])
            for i in range(rows):
                w.writerow([f"u{i + 1}", str(i + 1)])
        self.run(["enqueue", path, "--job", job, "--command", command])

    def unit_state(self, job, unit):
        item = self.ddb.get_item(TableName=self.table, ConsistentRead=True,
                                 Key={"pk": {"S": "JOB#" + job}, "sk": {"S": "U#" + unit}})
        return item.get("Item", {}).get("state", {}).get("S")

    def job_succeeded(self, job):
        item = self.ddb.get_item(TableName=self.table, ConsistentRead=True,
                                 Key={"pk": {"S": "JOB#" + job}, "sk": {"S": "#JOB"}})
        return int(item.get("Item", {}).get("succeeded", {}).get("N", "0"))

    def queue_depth(self):
        attributes = self.sqs.get_queue_attributes(
            QueueUrl=self.info["queue_url"], AttributeNames=["All"])["Attributes"]
        return sum(int(attributes.get(name, "0")) for name in (
            "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible",
            "ApproximateNumberOfMessagesDelayed"))

    def drain_queue(self, expected):
        url, got, end = self.info["queue_url"], 0, time.monotonic() + 60
        while got < expected and time.monotonic() < end:
            messages = self.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10,
                                                WaitTimeSeconds=1).get("Messages", [])
            for m in messages:
                self.sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
            got += len(messages)
        if got < expected:
            sys.exit(f"agent_bench: drained only {got} of {expected} messages")

    def output(self, job, unit, name):
        return self.s3.get_object(Bucket=self.bucket,
                                  Key=f"{job}/{unit}/output/{name}")["Body"].read().decode()


def wait_for(condition, deadline_s, what, interval=0.05, agent=None):
    end = time.monotonic() + deadline_s
    while not condition():
        if time.monotonic() > end:
            tail = f"; the agent's log ends:\n{agent.tail()}" if agent else ""
            sys.exit(f"agent_bench: timed out waiting for {what}{tail}")
        time.sleep(interval)  # polling a condition with a deadline


# --- 1. idle ------------------------------------------------------------------------------------

def measure_idle(agent, seconds, peer=None):
    """The idle agent's footprint; with `peer` (a boto3 worker polling its own empty queue),
    the peer's too, sampled in the same window."""
    time.sleep(5)  # warm-up: the first polls, the worker item, allocator settling
    pids = {"agent": agent.proc.pid}
    if peer is not None:
        pids["peer"] = peer.proc.pid
    cpu0 = {name: proc_cpu_seconds(pid) for name, pid in pids.items()}
    wall0 = time.monotonic()
    rss = {name: [] for name in pids}
    while time.monotonic() - wall0 < seconds:
        for name, pid in pids.items():
            rss[name].append(kib(proc_status(pid)["VmRSS"]))
        time.sleep(1)  # sampling interval
    wall = time.monotonic() - wall0
    out = {}
    for name, pid in pids.items():
        cpu = proc_cpu_seconds(pid) - cpu0[name]
        status = proc_status(pid)
        # RssAnon is the process's own memory; RssFile is mostly shared libraries' pages
        # (libcurl, libcrypto, libstdc++, ...), shared with every other process mapping them.
        out[name] = {"seconds": wall, "cpu_s": cpu, "cpu_percent_of_core": 100.0 * cpu / wall,
                     "rss_max_kib": max(rss[name]), "rss_mean_kib": statistics.mean(rss[name]),
                     "rss_anon_kib": kib(status["RssAnon"]),
                     "rss_file_kib": kib(status["RssFile"]), "pss_kib": proc_pss_kib(pid),
                     "vm_hwm_kib": kib(status["VmHWM"]), "threads": int(status["Threads"])}
    return out


class PeerWorker:
    """bench/peers/boto3_worker.py on a queue of its own: the worker loop a boto3 user writes."""

    def __init__(self, tmp, queue_url, env):
        self.work = os.path.join(tmp, "peer-work")
        os.makedirs(self.work)
        self.log_path = os.path.join(tmp, "peer-worker.log")
        self.log = open(self.log_path, "ab")
        self.queue_url = queue_url
        self.proc = subprocess.Popen(
            ["/usr/bin/python3", os.path.join(HERE, "peers", "boto3_worker.py"), queue_url,
             self.work], env=env, stdin=subprocess.DEVNULL, stdout=self.log,
            stderr=subprocess.STDOUT, start_new_session=True)

    def tail(self, n=20):
        with open(self.log_path, errors="replace") as f:
            return "".join(f.readlines()[-n:])

    def stop(self):
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()
        self.log.close()


def measure_peer_latency(stack, peer, units):
    """SendMessage -> command start for the boto3 worker, timed as for the agent."""
    from_send = []
    for i in range(units):
        unit = f"p{i + 1}"
        time.sleep(1.0)  # the worker is back in its long poll
        # No '&', '<' or '>' in the body: local-aws-sqs puts bodies into its XML unescaped.
        body = json.dumps({"unit": unit, "command": 'date +%s.%N | tee "$OUT/start.tmp"; '
                                                    'mv "$OUT/start.tmp" "$OUT/start"'})
        t0 = time.time()
        stack.sqs.send_message(QueueUrl=peer.queue_url, MessageBody=body)
        path = os.path.join(peer.work, unit, "start")
        if not wait_until(lambda: os.path.exists(path) or peer.proc.poll() is not None, 60):
            sys.exit(f"agent_bench: the boto3 worker did not run {unit}:\n{peer.tail()}")
        if not os.path.exists(path):
            sys.exit(f"agent_bench: the boto3 worker exited:\n{peer.tail()}")
        with open(path) as f:
            from_send.append(float(f.read().strip()) - t0)
    return from_send


# --- 2. dispatch latency ------------------------------------------------------------------------

def long_poll_wakeup(stack, samples):
    """SendMessage -> ReceiveMessage of a botocore long poll on a queue of the same emulator."""
    url = stack.sqs.create_queue(QueueName=stack.name + "-wakeup")["QueueUrl"]
    sender = botocore.session.get_session().create_client(
        "sqs", endpoint_url=stack.env["AWS_ENDPOINT_URL_SQS"], region_name=stack.env["AWS_REGION"],
        aws_access_key_id="S3RVER", aws_secret_access_key="S3RVER")
    results = []
    for _ in range(samples):
        got = {}

        def receive():
            while "t" not in got:
                m = stack.sqs.receive_message(QueueUrl=url, WaitTimeSeconds=20).get("Messages")
                if m:
                    got["t"] = time.time()
                    stack.sqs.delete_message(QueueUrl=url, ReceiptHandle=m[0]["ReceiptHandle"])

        thread = threading.Thread(target=receive)
        thread.start()
        time.sleep(0.5)  # let the receiver enter its long poll
        t0 = time.time()
        sender.send_message(QueueUrl=url, MessageBody="x")
        thread.join(30)
        results.append(got["t"] - t0)
    stack.sqs.delete_queue(QueueUrl=url)
    return results


def measure_latency(stack, agent, job, units):
    url = stack.info["queue_url"]
    from_send, from_sent = [], []
    for i in range(units):
        unit = f"u{i + 1}"
        time.sleep(1.0)  # the agent is back in its long poll, idle
        body = json.dumps({"v": 1, "job": job, "unit": unit}, separators=(",", ":"))
        t0 = time.time()
        stack.sqs.send_message(QueueUrl=url, MessageBody=body)
        t1 = time.time()
        wait_for(lambda: stack.unit_state(job, unit) == "SUCCEEDED", 60, f"{job}/{unit}",
                 agent=agent)
        started = float(stack.output(job, unit, "start").strip())
        from_send.append(started - t0)
        from_sent.append(started - t1)
        if agent.proc.poll() is not None:
            sys.exit(f"agent_bench: the agent exited:\n{agent.tail()}")
    return from_send, from_sent


# --- 3. requests per unit -----------------------------------------------------------------------

def s3_operation(method, path):
    parsed = urllib.parse.urlsplit(path)
    query = urllib.parse.parse_qs(parsed.query, keep_blank_values=True)
    parts = parsed.path.lstrip("/").split("/", 1)
    key = urllib.parse.unquote(parts[1]) if len(parts) > 1 else ""
    if not key:
        if "list-type" in query:
            return "ListObjectsV2"
        if "delete" in query:
            return "DeleteObjects"
        return f"{method} bucket"
    if "uploads" in query:
        return "CreateMultipartUpload"
    if "uploadId" in query:
        return {"PUT": "UploadPart", "POST": "CompleteMultipartUpload",
                "DELETE": "AbortMultipartUpload", "GET": "ListParts"}.get(method, method)
    kind = ("output" if "/output/" in key else "logs" if "/logs/" in key
            else "checkpoint" if "/checkpoint/" in key else "other")
    op = {"PUT": "PutObject", "GET": "GetObject", "HEAD": "HeadObject",
          "DELETE": "DeleteObject"}.get(method, method)
    return f"{op} ({kind})"


TRANSFERS = {"PutObject (output)", "PutObject (logs)", "UploadPart", "CreateMultipartUpload",
             "CompleteMultipartUpload"}


def measure_requests(binary, stack, tmp, env, units):
    proxies = {name: FaultProxy(tmp, name, env[f"AWS_ENDPOINT_URL_{name.upper()}"])
               for name in ("sqs", "dynamodb", "s3")}
    agent = None
    try:
        agent_env = dict(env)
        for name, proxy in proxies.items():
            agent_env[f"AWS_ENDPOINT_URL_{name.upper()}"] = proxy.url
        agent = Agent(binary, tmp, "agent-requests", stack.name, agent_env, slots=2)
        agent.wait_ready()
        time.sleep(2)  # past start-up: the stack read, the first worker heartbeat
        for proxy in proxies.values():
            proxy.control("POST", "reset")
        cpu0 = proc_cpu_seconds(agent.proc.pid)
        start = time.monotonic()
        stack.enqueue("reqs", units, 'echo {n} > "$SPOTGRID_OUTPUT_DIR/out.txt"')
        wait_for(lambda: stack.job_succeeded("reqs") >= units, 600, "the request-count job",
                 interval=0.2, agent=agent)
        # The message is deleted after the unit is marked SUCCEEDED: wait for the last deletes.
        wait_for(lambda: stack.queue_depth() == 0, 60, "the queue to empty", agent=agent)
        wall = time.monotonic() - start
        cpu = proc_cpu_seconds(agent.proc.pid) - cpu0
        counts = {}
        for name, proxy in proxies.items():
            for entry in proxy.control("GET", "stats")["log"]:
                if name == "s3":
                    op = s3_operation(entry["method"], entry["path"])
                else:
                    op = entry["target"].split(".", 1)[-1] or entry["method"]
                counts[(name, op)] = counts.get((name, op), 0) + 1
        rss = kib(proc_status(agent.proc.pid)["VmHWM"])
    finally:
        if agent is not None:
            agent.stop()
        for proxy in proxies.values():
            proxy.stop()
    return counts, {"wall_s": wall, "agent_cpu_s": cpu, "vm_hwm_kib": rss}


# --- main ---------------------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build_dir")
    ap.add_argument("--idle-seconds", type=int, default=60)
    ap.add_argument("--latency-units", type=int, default=30)
    ap.add_argument("--request-units", type=int, default=100)
    ap.add_argument("--tls", action="store_true",
                    help="idle and dispatch phases over TLS fronts (see the module doc)")
    ap.add_argument("--json", help="also write the figures to this file")
    args = ap.parse_args()
    binary = os.path.join(args.build_dir, "agent", "agent")
    controller = os.path.join(args.build_dir, "controller", "controller")
    for path in (binary, controller):
        if not os.access(path, os.X_OK):
            sys.exit(f"agent_bench: {path} is not built")

    results = {}
    with tempfile.TemporaryDirectory(prefix="spotgrid-agent-bench-") as tmp, \
            running_emulators(tmp) as (env, _pids):
        os.chmod(tmp, 0o755)
        stack = Stack(controller, env, tmp, "agentbench")
        # The latency units are in the ledger before the agent starts; their enqueue messages
        # are drained so that each unit's message is the one this script sends and times.
        stack.enqueue("lat", args.latency_units, 'date +%s.%N > "$SPOTGRID_OUTPUT_DIR/start"')
        stack.drain_queue(args.latency_units)

        fronts = TlsFronts(tmp, env) if args.tls else None
        client_env = fronts.env if fronts else env
        agent = Agent(binary, tmp, "agent-idle", stack.name, client_env, slots=1)
        peer = PeerWorker(tmp, stack.sqs.create_queue(QueueName=stack.name + "-peer")["QueueUrl"],
                          client_env)
        try:
            agent.wait_ready()
            idle = measure_idle(agent, args.idle_seconds, peer)
            results["idle"], results["idle_peer"] = idle["agent"], idle["peer"]
            from_send, from_sent = measure_latency(stack, agent, "lat", args.latency_units)
            peer_from_send = measure_peer_latency(stack, peer, args.latency_units)
        finally:
            agent.stop()
            peer.stop()
            if fronts:
                results["tls_connections"] = fronts.counts()
                fronts.close()
        wakeup = long_poll_wakeup(stack, min(args.latency_units, 20))
        results["latency"] = {
            "units": args.latency_units,
            "from_send_start_ms": {"median": 1000 * statistics.median(from_send),
                                   "p99": 1000 * percentile(from_send, 99),
                                   "max": 1000 * max(from_send)},
            "from_send_return_ms": {"median": 1000 * statistics.median(from_sent),
                                    "p99": 1000 * percentile(from_sent, 99)},
            "long_poll_wakeup_ms": {"median": 1000 * statistics.median(wakeup),
                                    "p99": 1000 * percentile(wakeup, 99)},
            "peer_from_send_start_ms": {"median": 1000 * statistics.median(peer_from_send),
                                        "p99": 1000 * percentile(peer_from_send, 99),
                                        "max": 1000 * max(peer_from_send)},
        }
        counts, run = measure_requests(binary, stack, tmp, env, args.request_units)

    n = args.request_units
    idle = results["idle"]
    over = "TLS" if args.tls else "plain HTTP"
    print(f"agent idle over {idle['seconds']:.0f} s of empty long polls over {over} "
          f"(1 slot, defaults)")
    if args.tls:
        print(f"  TLS connections accepted by the fronts (agent and peer): "
              f"{results['tls_connections']}")
    print(f"  RSS max {idle['rss_max_kib'] / 1024:.2f} MiB (mean "
          f"{idle['rss_mean_kib'] / 1024:.2f}, VmHWM {idle['vm_hwm_kib'] / 1024:.2f}; "
          f"target < {16 if args.tls else 10} MiB), {idle['threads']} threads")
    print(f"  of which RssAnon {idle['rss_anon_kib'] / 1024:.2f} MiB (the agent's own), RssFile "
          f"{idle['rss_file_kib'] / 1024:.2f} MiB (mapped binary and shared libraries); PSS "
          f"{(idle['pss_kib'] or 0) / 1024:.2f} MiB")
    print(f"  CPU {idle['cpu_s']:.3f} s = {idle['cpu_percent_of_core']:.3f} % of one core "
          f"(target < 0.5 %)")
    lat = results["latency"]
    extra_median = lat["from_send_start_ms"]["median"] - lat["long_poll_wakeup_ms"]["median"]
    extra_p99 = lat["from_send_start_ms"]["p99"] - lat["long_poll_wakeup_ms"]["median"]
    print(f"dispatch latency, SendMessage -> command start, {lat['units']} units on an idle agent")
    print(f"  median {lat['from_send_start_ms']['median']:.1f} ms, p99 "
          f"{lat['from_send_start_ms']['p99']:.1f} ms, max {lat['from_send_start_ms']['max']:.1f}"
          f" ms (from SendMessage's return: median {lat['from_send_return_ms']['median']:.1f} ms)")
    print(f"  the emulator's own long-poll wake-up (botocore receiver): median "
          f"{lat['long_poll_wakeup_ms']['median']:.1f} ms, p99 "
          f"{lat['long_poll_wakeup_ms']['p99']:.1f} ms")
    print(f"  beyond the wake-up: median {extra_median:.1f} ms, p99 {extra_p99:.1f} ms "
          f"(target < 100 ms)")
    peer_lat = lat["peer_from_send_start_ms"]
    print(f"  peer (bench/peers/boto3_worker.py, no ledger): median {peer_lat['median']:.1f} ms, "
          f"p99 {peer_lat['p99']:.1f} ms")
    pidle = results["idle_peer"]
    print(f"peer idle (boto3 worker, same window): RSS max {pidle['rss_max_kib'] / 1024:.2f} MiB "
          f"(RssAnon {pidle['rss_anon_kib'] / 1024:.2f} MiB), CPU "
          f"{pidle['cpu_percent_of_core']:.3f} % of one core")

    print(f"AWS requests for {n} one-line units (1 agent, 2 slots, default heartbeat and sync), "
          f"{run['wall_s']:.1f} s, agent CPU {run['agent_cpu_s']:.2f} s "
          f"({1000 * run['agent_cpu_s'] / n:.1f} ms/unit), VmHWM {run['vm_hwm_kib'] / 1024:.1f} MiB")
    print(f"| {'service':<9} | {'operation':<28} | {'requests':>8} | {'per unit':>8} |")
    print(f"|{'-' * 11}|{'-' * 30}|{'-' * 10}|{'-' * 10}|")
    control = transfers = 0
    for (service, op), count in sorted(counts.items()):
        print(f"| {service:<9} | {op:<28} | {count:>8} | {count / n:>8.2f} |")
        if service == "s3" and op in TRANSFERS:
            transfers += count
        else:
            control += count
    print(f"per unit: {control / n:.2f} requests besides output and log transfers (target <= 6),"
          f" {transfers / n:.2f} S3 transfers of outputs and logs")
    results["requests"] = {"units": n, "run": run,
                           "by_operation": {f"{s}:{o}": c for (s, o), c in sorted(counts.items())},
                           "per_unit_besides_transfers": control / n,
                           "per_unit_transfers": transfers / n}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
