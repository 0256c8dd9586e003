#!/usr/bin/python3
"""The fault-injection suite: the ledger's promise under a hostile network and a hostile fleet.

  fault_suite.py [--units N] [--agents M] [--slots S] [--fault-rate X] [--seed K]
                 [--duration-limit SECONDS] [--chaos-interval A:B] [--json FILE]
                 [--build-dir DIR | --agent BIN --controller BIN] [--keep]

What it does
  1. Starts the emulators (tests/harness/launcher.py) in a temporary directory, and one
     tests/harness/fault_proxy.py per service (SQS, DynamoDB, S3) in front of them, each with
     random faults at 8 % x --fault-rate of its requests (seeded from --seed): drop before
     forwarding, apply-then-drop (the upstream applied the request, the reply is lost),
     truncated response, 500, 503, the service's throttling error, black hole (40 s).
  2. `controller init` and `controller enqueue` (straight to the emulators) a grid of N units;
     unit i sleeps a seeded 0.5-3 s in tests/faults/unit_command.py, which appends start/end
     records to a shared file, checkpoints on SIGTERM and writes its attempt number into its
     output.
  3. Runs M real agents (S slots each; short heartbeat, poll and idle timings; each with its
     own IMDS tenant of the launcher's IMDS fake, so each is a Spot instance) whose SQS,
     DynamoDB and S3 endpoints are the proxies. Every A-B seconds (seeded) a chaos loop picks a
     healthy agent and either SIGKILLs it together with its units (an instance that vanished),
     SIGTERMs it (a stop: it must exit within --stop-timeout), or gives it a Spot interruption
     notice for T = now + 20 s (it must exit before T); a replacement starts at once, so M
     agents are always taking work. An agent still alive at its deadline is SIGKILLed with its
     units (as EC2 would) and counted as a drain overrun.
  4. When the ledger shows every unit finished (or at --duration-limit), chaos stops, the
     agents are left to go idle and exit (--idle-shutdown, --on-drain exit), and the suite
     checks, against the emulators directly:
       lost units       every unit is SUCCEEDED (`controller list --json`);
       double counting  `controller progress --json` (no --exact) counts == a recount of the
                        units' states == `controller progress --exact --json` counts (read
                        once every agent has been gone for longer than a lease, so every
                        intent an agent left can be settled);
       outputs          s3://.../<unit>/output/result.txt names the attempt the ledger records
                        as the unit's succeeded one (`controller show --json`), and there is
                        exactly one succeeded attempt, the unit's last;
       overlap          no two executions of a unit overlap in time (see "Overlap" below);
       drain overruns   no agent outlived its notice's time T, or SIGTERM + --stop-timeout;
       processes        no unit command outlived an agent that exited on its own, and after
                        the cleanup nothing the suite started (agents, commands, proxies,
                        emulators) is alive.
     It also measures re-executions per unit (command starts / units), "lease ... lost"
     log lines and how many of them were spurious (no later attempt by another worker exists in
     the ledger), and the faults each proxy injected.

Overlap, judged soundly
  Each execution of a unit is an interval [start, end] on CLOCK_REALTIME: start is the
  command's own "start" record; end is its own "end" record when it wrote one. A command that
  died without one (SIGKILL by us with its agent, or by its agent after a lost lease or a
  drain's grace) is closed by the earliest moment it was *observed dead*: the time the suite
  confirmed the SIGKILLed processes gone, or the first time a 100 ms sampler of /proc found the
  pid gone (or a zombie, or reused by another program). Both are upper bounds of the real end,
  so the intervals can only be too long, never too short: "no overlap" is then a proof, while a
  reported overlap shorter than the sampler's period could be an artefact (the report shows the
  overlap in ms and how each end was established). A start record is written by the command
  after the agent claimed the attempt, so two executions of different attempts overlapping
  means two workers ran the unit at the same moment. Two start records for the same attempt
  are reported as well.

Exit status 0 when every check passed, 1 when one failed (each failure names the units, with
their ledger record, their record lines and the agents' log lines about them), 2 on bad usage.
Everything started is stopped at the end, also on failure, SIGINT or SIGTERM. The temporary
directory (records, logs, fault logs) is kept when a check failed, or with --keep.
Run with /usr/bin/python3 (Debian's, with botocore).
"""

import argparse
import concurrent.futures
import json
import math
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
TESTS_DIR = os.path.dirname(HERE)
SOURCE_DIR = os.path.dirname(TESTS_DIR)
HARNESS_DIR = os.path.join(TESTS_DIR, "harness")
sys.path.insert(0, HARNESS_DIR)
import launcher as launcher_mod  # noqa: E402

PYTHON = "/usr/bin/python3"
FAULT_PROXY = os.path.join(HARNESS_DIR, "fault_proxy.py")
UNIT_COMMAND = os.path.join(HERE, "unit_command.py")
BASE_FAULT_RATE = 0.08
SERVICES = ("sqs", "dynamodb", "s3")
ENDPOINT_VARS = {"sqs": "AWS_ENDPOINT_URL_SQS", "dynamodb": "AWS_ENDPOINT_URL_DYNAMODB",
                 "s3": "AWS_ENDPOINT_URL_S3"}
JOB = "chaos"
PREFIX = "runs"
# Agent timings: short, so the suite is fast. The lease is max(3 heartbeats, 10 s) = 10 s.
HEARTBEAT_S = 1
LEASE_S = 10
STOP_TIMEOUT_S = 20
NOTICE_LEAD_S = 20
AGENT_FLAGS = ["--heartbeat", "%ds" % HEARTBEAT_S, "--sync-interval", "2s", "--poll-wait", "2",
               "--idle-shutdown", "5s", "--on-drain", "exit", "--spot-poll", "1s",
               "--stop-timeout", "%ds" % STOP_TIMEOUT_S, "--upload-reserve", "6s",
               "--kill-grace", "2s"]
LEASE_LOST = re.compile(r"lease on (\S+)/(\S+) attempt (\d+) lost")
SAMPLE_S = 0.1


class SuiteError(Exception):
    pass


class _Stopped(Exception):
    pass


def _on_signal(signum, _frame):
    raise _Stopped("signal %d" % signum)


# --- /proc helpers ------------------------------------------------------------------------

def proc_stat(pid):
    try:
        with open("/proc/%d/stat" % pid, "r", encoding="ascii", errors="replace") as f:
            stat = f.read()
    except OSError:
        return None
    return stat[stat.rindex(")") + 2:].split()


def proc_alive(pid):
    fields = proc_stat(pid)
    return fields is not None and fields[0] not in ("Z", "X")


def proc_cmdline(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def proc_cwd(pid):
    try:
        return os.readlink("/proc/%d/cwd" % pid)
    except OSError:
        return ""


def processes_under(path):
    """Live processes whose working directory or command line lies under `path`."""
    prefix = path.rstrip("/") + "/"
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        pid = int(entry)
        if (proc_cwd(pid).startswith(prefix) or prefix in proc_cmdline(pid)) and proc_alive(pid):
            found.append(pid)
    return found


def kill_pids(pids):
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def wait_gone(pids, deadline_s):
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        pids = [p for p in pids if proc_alive(p)]
        if not pids:
            return []
        time.sleep(0.01)
    return [p for p in pids if proc_alive(p)]


def tcp_connections(pid):
    """[(local_port, remote_port)] of the loopback TCP sockets `pid` holds (IPv4)."""
    inodes = set()
    try:
        for fd in os.listdir("/proc/%d/fd" % pid):
            try:
                link = os.readlink("/proc/%d/fd/%s" % (pid, fd))
            except OSError:
                continue
            if link.startswith("socket:["):
                inodes.add(link[8:-1])
        with open("/proc/%d/net/tcp" % pid) as f:
            lines = f.readlines()[1:]
    except OSError:
        return []
    found = []
    for line in lines:
        fields = line.split()
        if len(fields) > 9 and fields[9] in inodes:
            found.append((int(fields[1].split(":")[1], 16), int(fields[2].split(":")[1], 16)))
    return found


def http(method, url, body=b""):
    request = urllib.request.Request(url, data=body if method in ("PUT", "POST") else None,
                                     method=method)
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.read()


def iso(ts):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def fmt_ns(ns):
    if ns is None:
        return "-"
    return time.strftime("%H:%M:%S", time.localtime(ns / 1e9)) + ".%03d" % (ns // 1000000 % 1000)


# --- the pieces ---------------------------------------------------------------------------

class Proxy:
    def __init__(self, service, upstream, tmp, rate, seed, blackhole_s):
        self.service = service
        self.port_file = os.path.join(tmp, "proxy-%s.port" % service)
        self.fault_log = os.path.join(tmp, "faults-%s.jsonl" % service)
        self.log_path = os.path.join(tmp, "proxy-%s.log" % service)
        argv = [PYTHON, FAULT_PROXY, "--upstream", upstream, "--port", "0",
                "--port-file", self.port_file, "--service", service,
                "--chaos-rate", repr(rate), "--chaos-seed", str(seed),
                "--blackhole-s", repr(blackhole_s), "--fault-log", self.fault_log]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        end = time.monotonic() + 30
        self.port = None
        while time.monotonic() < end and self.proc.poll() is None:
            try:
                with open(self.port_file) as f:
                    self.port = int(f.read().strip())
                break
            except (OSError, ValueError):
                time.sleep(0.02)
        if self.port is None:
            raise SuiteError("fault proxy for %s did not start; see %s" % (service,
                                                                           self.log_path))
        self.url = "http://127.0.0.1:%d" % self.port

    def stats(self):
        try:
            doc = json.loads(http("GET", self.url + "/__fault__/stats"))
        except OSError:
            return None
        doc.pop("log", None)
        return doc

    def stop(self):
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()


class Agent:
    """One agent process on its own fake Spot instance; its exit time comes from waitpid."""

    def __init__(self, suite, n):
        self.n = n
        self.name = "agent-%d" % n
        self.instance = "i-0%04x%04x%08x" % (suite.seed & 0xffff, os.getpid() & 0xffff, n)
        self.dir = os.path.join(suite.tmp, "agents", self.name)
        self.work = os.path.join(self.dir, "work")
        os.makedirs(self.work)
        for d in (self.dir, self.work):
            os.chmod(d, 0o755)  # the unit's user must reach its directories
        env_file = os.path.join(self.dir, "agent.env")
        open(env_file, "w").close()
        self.imds = "%s/%s-%s" % (suite.emulators["SPOTGRID_FAKE_IMDS_URL"], suite.stack,
                                  self.name)
        http("PUT", self.imds + "/_fake/meta-data/instance-id", self.instance.encode())
        self.argv = [suite.agent_bin, "--stack", suite.stack, "--slots", str(suite.args.slots),
                     "--work-dir", self.work, "--env-file", env_file] + AGENT_FLAGS
        if os.geteuid() == 0:
            self.argv += ["--user", "nobody"]
        env = {k: v for k, v in suite.base_env.items()
               if not k.startswith("SPOTGRID_") and k not in (
                   "NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "JOURNAL_STREAM",
                   "INVOCATION_ID", "AWS_PROFILE")}
        for service, proxy in suite.proxies.items():
            env[ENDPOINT_VARS[service]] = proxy.url
        env["AWS_EC2_METADATA_SERVICE_ENDPOINT"] = self.imds
        env["AWS_EC2_METADATA_DISABLED"] = "false"
        self.log_path = os.path.join(self.dir, "agent.log")
        self.fate = None          # "kill" | "term" | "notice" | "overrun-kill" | "end-term" ...
        self.fate_ns = None
        self.deadline_ns = None   # a notice's T, or SIGTERM + stop timeout
        self.exit_ns = None
        self.exit_code = None
        self.units_dead_ns = None  # when the units of a SIGKILLed agent were confirmed gone
        self.killed_unit_pids = []
        self.overrun = False
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(self.argv, env=env, stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        self.start_ns = time.time_ns()
        self.reaper = threading.Thread(target=self._reap, daemon=True)
        self.reaper.start()

    def _reap(self):
        code = self.proc.wait()
        self.exit_ns = time.time_ns()
        self.exit_code = code

    def alive(self):
        return self.exit_ns is None

    def healthy(self):
        """Alive and not on its way out: counts towards the fleet."""
        return self.alive() and self.fate is None

    def kill_instance(self, why):
        """SIGKILL to the agent's group, then to every command it runs: the instance is gone.
        Returns once all are confirmed dead; units_dead_ns is then an upper bound of their end."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.reaper.join(10)
        pids = processes_under(self.work)
        # Commands the agent started may have left its work directory; none should, but the
        # sampler's records name their pids too.
        kill_pids(pids)
        left = wait_gone(pids, 10)
        self.killed_unit_pids = pids
        self.units_dead_ns = time.time_ns()
        if left:
            raise SuiteError("%s: processes %s survived SIGKILL" % (self.name, left))
        return why

    def log_lines(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read().splitlines()
        except OSError:
            return []


class RecordWatch(threading.Thread):
    """Follows the records file and watches every started command's pid in /proc; the first
    moment a pid is seen gone is an upper bound of that command's end."""

    def __init__(self, path):
        super().__init__(daemon=True)
        self.path = path
        self.offset = 0
        self.partial = b""
        self.lock = threading.Lock()
        self.tracked = {}  # pid -> {"unit", "attempt", "start_ns", "cwd", "dead_ns", "ended"}
        self.stop_event = threading.Event()

    def run(self):
        while not self.stop_event.is_set():
            self.sample()
            self.stop_event.wait(SAMPLE_S)

    def sample(self):
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                data = f.read()
        except OSError:
            data = b""
        self.offset += len(data)
        data = self.partial + data
        lines = data.split(b"\n")
        self.partial = lines.pop()
        now = time.time_ns()
        with self.lock:
            for raw in lines:
                parts = raw.decode(errors="replace").split()
                if len(parts) < 5:
                    continue
                kind, unit, attempt, pid = parts[0], parts[1], parts[2], int(parts[3])
                if kind == "start":
                    cmd = proc_cmdline(pid)
                    alive = proc_alive(pid) and unit in cmd
                    self.tracked[pid] = {"unit": unit, "attempt": attempt,
                                         "start_ns": int(parts[4]), "cwd": proc_cwd(pid),
                                         "dead_ns": None if alive else now, "ended": False}
                elif kind == "end" and pid in self.tracked:
                    self.tracked[pid]["ended"] = True
            for pid, info in self.tracked.items():
                if info["dead_ns"] is None:
                    if not (proc_alive(pid) and info["unit"] in proc_cmdline(pid)):
                        info["dead_ns"] = now

    def stop(self):
        self.stop_event.set()
        self.join(5)
        self.sample()


# --- the suite ----------------------------------------------------------------------------

class Suite:
    def __init__(self, args):
        self.args = args
        self.seed = args.seed
        self.rng = random.Random("chaos:%d" % args.seed)
        build = args.build_dir or os.environ.get("SPOTGRID_BINARY_DIR") or os.path.join(
            SOURCE_DIR, "build")
        self.agent_bin = args.agent or os.path.join(build, "agent", "agent")
        self.controller_bin = args.controller or os.path.join(build, "controller", "controller")
        for path in (self.agent_bin, self.controller_bin):
            if not os.access(path, os.X_OK):
                raise SuiteError("%s is missing: build it first (or pass --build-dir)" % path)
        self.stack = "flt%d" % os.getpid()
        self.bucket = "spotgrid-flt-%d" % os.getpid()
        self.tmp = None
        self.launcher = None
        self.proxies = {}
        self.agents = []
        self.events = []
        self.failures = []
        self.figures = {}
        self.watch = None
        self.started_pids = []
        self.next_agent = 1

    # -- logging

    def event(self, text, **fields):
        entry = {"t": time.time(), "what": text}
        entry.update(fields)
        self.events.append(entry)
        print("[%s] %s" % (fmt_ns(time.time_ns()), text), flush=True)

    def fail(self, check, text):
        self.failures.append({"check": check, "text": text})

    # -- controller

    def controller(self, *args, check=True, timeout=120):
        done = subprocess.run([self.controller_bin, *args], env=self.controller_env,
                              capture_output=True, text=True, timeout=timeout)
        if check and done.returncode != 0:
            raise SuiteError("controller %s exited %d: %s" % (" ".join(args), done.returncode,
                                                              done.stderr.strip()))
        return done

    def controller_json(self, *args):
        return json.loads(self.controller(*args, "--json").stdout)

    # -- run

    def run(self):
        old = {s: signal.signal(s, _on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        self.tmp = tempfile.mkdtemp(prefix="spotgrid-faults-")
        os.chmod(self.tmp, 0o755)
        kept = False
        try:
            self._setup()
            self._drive()
            self._end_phase()
            self._verify()
        except _Stopped as e:
            self.fail("run", "stopped by %s" % e)
        except SuiteError as e:
            self.fail("run", str(e))
        finally:
            for s in old:
                signal.signal(s, signal.SIG_IGN)
            try:
                self._cleanup()
            finally:
                for s, h in old.items():
                    signal.signal(s, h)
            kept = bool(self.failures) or self.args.keep
            self.figures["tmp_dir"] = self.tmp if kept else None
            if not kept:
                shutil.rmtree(self.tmp, ignore_errors=True)
        return self.report()

    def _setup(self):
        a = self.args
        self.event("emulators: starting (state in %s)" % self.tmp)
        self.launcher = launcher_mod.Launcher(os.path.join(self.tmp, "emulators"))
        try:
            self.emulators = self.launcher.start()
        except launcher_mod.LaunchError as e:
            raise SuiteError("emulators did not start: %s" % e)
        self.base_env = dict(os.environ)
        self.base_env.update(self.emulators)
        self.controller_env = dict(self.base_env)
        self.controller_env.pop("AWS_PROFILE", None)
        self.controller_env["SPOTGRID_STACK"] = self.stack
        rate = min(1.0, BASE_FAULT_RATE * a.fault_rate)
        self.figures["fault_rate_per_request"] = rate
        for i, service in enumerate(SERVICES):
            self.proxies[service] = Proxy(service, self.emulators[ENDPOINT_VARS[service]],
                                          self.tmp, rate, a.seed * 10 + i, a.blackhole_s)
            self.started_pids.append(self.proxies[service].proc.pid)
        self.event("fault proxies: %s (%.1f %% of requests)" % (
            ", ".join("%s %s" % (s, p.url) for s, p in self.proxies.items()), rate * 100))

        bin_dir = os.path.join(self.tmp, "bin")
        os.makedirs(bin_dir)
        os.chmod(bin_dir, 0o755)
        command = os.path.join(bin_dir, "unit_command.py")
        shutil.copy(UNIT_COMMAND, command)
        os.chmod(command, 0o755)
        self.records = os.path.join(self.tmp, "records.log")
        open(self.records, "w").close()
        os.chmod(self.records, 0o666)  # the units run as nobody
        grid = os.path.join(self.tmp, "grid.csv")
        self.unit_ids = ["u%04d" % i for i in range(1, a.units + 1)]
        self.sleep_ms = {u: int(random.Random("%d:%s" % (a.seed, u)).uniform(500, 3000))
                         for u in self.unit_ids}
        with open(grid, "w") as f:
            f.write("id,sleep_ms\n")
            for u in self.unit_ids:
                f.write("%s,%d\n" % (u, self.sleep_ms[u]))
        template = "%s %s --records %s --unit {id} --sleep-ms {sleep_ms}" % (
            PYTHON, command, self.records)
        self.controller("init", "--bucket", self.bucket, "--prefix", PREFIX,
                        "--visibility", "10", "--max-receives", "100")
        self.controller("enqueue", grid, "--job", JOB, "--command", template,
                        "--max-attempts", "10")
        self.event("stack %s: %d units enqueued (job %s)" % (self.stack, a.units, JOB))
        self.watch = RecordWatch(self.records)
        self.watch.start()

    def start_agent(self, why):
        agent = Agent(self, self.next_agent)
        self.next_agent += 1
        self.agents.append(agent)
        self.started_pids.append(agent.proc.pid)
        self.event("%s started (%s, pid %d, %s)" % (agent.name, agent.instance, agent.proc.pid,
                                                     why))
        return agent

    def unit_states(self):
        units = self.controller_json("list", "--job", JOB)
        return {u["unit"]: u for u in units}

    def _drive(self):
        a = self.args
        lo, hi = a.chaos_interval
        for _ in range(a.agents):
            self.start_agent("initial fleet")
        begin = time.monotonic()
        self.figures["run_started"] = time.time()
        limit = begin + a.duration_limit
        next_chaos = begin + self.rng.uniform(lo, hi)
        next_poll = begin
        chaos_counts = {"kill": 0, "term": 0, "notice": 0}
        unfinished = len(self.unit_ids)
        while True:
            now = time.monotonic()
            self._enforce_deadlines()
            self._note_exits()
            if now >= next_poll:
                states = self.unit_states()
                unfinished = sum(1 for u in self.unit_ids if states.get(u, {}).get("state")
                                 not in ("SUCCEEDED", "FAILED", "CANCELLED"))
                next_poll = now + 1.0
                if unfinished == 0:
                    self.event("ledger: every unit finished")
                    break
            if now >= limit:
                self.event("duration limit (%d s) reached with %d units unfinished" %
                           (a.duration_limit, unfinished))
                break
            healthy = [ag for ag in self.agents if ag.healthy()]
            while len(healthy) < a.agents:
                healthy.append(self.start_agent("replacement"))
            if now >= next_chaos:
                victim = self.rng.choice(healthy)
                action = self.rng.choice(("kill", "term", "notice"))
                chaos_counts[action] += 1
                self._chaos(victim, action)
                next_chaos = now + self.rng.uniform(lo, hi)
            time.sleep(0.1)  # polling: each pass checks deadlines, exits and the ledger
        self.figures["chaos"] = chaos_counts
        self.figures["run_s"] = round(time.monotonic() - begin, 1)

    def _chaos(self, agent, action):
        agent.fate_ns = time.time_ns()
        if action == "kill":
            agent.fate = "kill"
            self.event("chaos: SIGKILL %s and its commands" % agent.name)
            agent.kill_instance("chaos")
        elif action == "term":
            agent.fate = "term"
            agent.deadline_ns = agent.fate_ns + STOP_TIMEOUT_S * 10**9
            try:
                os.kill(agent.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            self.event("chaos: SIGTERM %s (must exit by %s)" % (agent.name,
                                                                  fmt_ns(agent.deadline_ns)))
        else:
            agent.fate = "notice"
            t = int(time.time()) + NOTICE_LEAD_S
            agent.deadline_ns = t * 10**9
            doc = {"action": "terminate", "time": iso(t)}
            http("PUT", agent.imds + "/_fake/meta-data/spot/instance-action",
                 json.dumps(doc).encode())
            self.event("chaos: Spot notice to %s for %s (must exit before it)" %
                       (agent.name, doc["time"]))

    def _enforce_deadlines(self):
        now = time.time_ns()
        for agent in self.agents:
            if agent.alive() and agent.deadline_ns is not None and now >= agent.deadline_ns:
                agent.overrun = True
                agent.stuck_connections = tcp_connections(agent.proc.pid)
                self.event("%s still running at its deadline %s (%s): SIGKILL, as EC2 would" %
                           (agent.name, fmt_ns(agent.deadline_ns), agent.fate))
                agent.kill_instance("deadline")

    def _note_exits(self):
        for agent in self.agents:
            if agent.exit_ns is not None and not getattr(agent, "exit_noted", False):
                agent.exit_noted = True
                if agent.fate != "kill" and not agent.overrun:
                    self.event("%s exited with status %s (%s)" % (
                        agent.name, agent.exit_code, agent.fate or "on its own"))

    def _end_phase(self):
        """No more chaos: agents go idle and exit by themselves (--idle-shutdown)."""
        self.event("chaos stopped; waiting for the agents to go idle and exit")
        end = time.monotonic() + 90
        while time.monotonic() < end and any(ag.alive() for ag in self.agents):
            self._enforce_deadlines()
            self._note_exits()
            time.sleep(0.1)
        left = [ag for ag in self.agents if ag.alive()]
        self.figures["agents_not_exiting_idle"] = [ag.name for ag in left]
        for ag in left:
            ag.fate = ag.fate or "end-term"
            ag.deadline_ns = ag.deadline_ns or time.time_ns() + STOP_TIMEOUT_S * 10**9
            self.event("%s did not exit on its own: SIGTERM" % ag.name)
            try:
                os.kill(ag.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        while any(ag.alive() for ag in self.agents):
            self._enforce_deadlines()
            time.sleep(0.1)
        self._note_exits()
        # A command that outlived an agent that exited by itself is a leak of the product.
        leaks = []
        for ag in self.agents:
            if ag.fate == "kill" or ag.overrun:
                continue
            for pid in processes_under(ag.work):
                leaks.append({"agent": ag.name, "pid": pid, "cmdline": proc_cmdline(pid),
                              "cwd": proc_cwd(pid)})
        self.figures["processes_left_by_agents"] = leaks
        if leaks:
            self.fail("processes", "commands outlived their agents: %s" % json.dumps(leaks))
            kill_pids([leak["pid"] for leak in leaks])
        last_exit = max(ag.exit_ns for ag in self.agents)
        # Every intent an agent left is older than its lease from here on.
        settle = last_exit / 1e9 + LEASE_S + 3
        while time.time() < settle:
            time.sleep(0.2)
        self.watch.stop()

    # -- checks

    def _verify(self):
        self.event("verifying against the ledger and S3")
        states = self.unit_states()
        progress = self.controller_json("progress", "--job", JOB)
        exact = self.controller_json("progress", "--job", JOB, "--exact")
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            shown = dict(zip(self.unit_ids, pool.map(
                lambda u: self.controller_json("show", u, "--job", JOB), self.unit_ids)))
        records = self._parse_records()
        outputs = self._read_outputs()
        logs = {ag.name: ag.log_lines() for ag in self.agents}
        self.evidence_context = (shown, records, logs)

        # 1. lost units
        lost = [u for u in self.unit_ids if states.get(u, {}).get("state") != "SUCCEEDED"]
        self.figures["lost_units"] = len(lost)
        if lost:
            self.fail("lost", "%d units did not end SUCCEEDED: %s\n%s" % (
                len(lost), ", ".join(lost[:20]), self.evidence(lost)))

        # 2. double counting
        recount = {"total": len(states), "queued": 0, "running": 0, "succeeded": 0,
                   "failed": 0, "cancelled": 0}
        for u in states.values():
            key = {"QUEUED": "queued", "RUNNING": "running", "SUCCEEDED": "succeeded",
                   "FAILED": "failed", "CANCELLED": "cancelled"}.get(u["state"])
            if key:
                recount[key] += 1
        counters = progress["counts"]
        exact_counts = exact["counts"]
        doubled = sum(max(0, counters.get(k, 0) - recount[k])
                      for k in ("succeeded", "failed", "cancelled"))
        self.figures["double_counted_units"] = doubled
        self.figures["counters"] = {"progress": counters, "exact": exact_counts,
                                    "recount": recount}
        for name, counts in (("progress", counters), ("progress --exact", exact_counts)):
            diff = {k: (counts.get(k), recount[k]) for k in recount if counts.get(k) != recount[k]}
            if diff:
                self.fail("double-count", "`controller %s --json` counts differ from the units' "
                          "states (counter, recount): %s" % (name, diff))

        # 3. outputs come from the succeeding attempt
        mismatches = []
        for u in self.unit_ids:
            if u in lost:
                continue
            attempts = shown[u].get("attempts", [])
            ok = [at for at in attempts if at.get("reason") == "succeeded"]
            problem = None
            if len(ok) != 1:
                problem = "%d attempts with reason succeeded" % len(ok)
            elif ok[0]["n"] != shown[u]["attempt"]:
                problem = "succeeded attempt %d is not the last claim %d" % (ok[0]["n"],
                                                                            shown[u]["attempt"])
            else:
                got = outputs.get(u)
                want = "attempt=%d" % ok[0]["n"]
                if got is None:
                    problem = "no output/result.txt in S3"
                elif want not in got.split():
                    problem = "output says %r, the ledger's succeeded attempt is %d" % (
                        got.strip(), ok[0]["n"])
            if problem:
                mismatches.append((u, problem))
        self.figures["output_mismatches"] = len(mismatches)
        if mismatches:
            self.fail("outputs", "%d units' outputs do not come from their succeeded attempt:\n"
                      "%s\n%s" % (len(mismatches), "\n".join("  %s: %s" % m
                                                              for m in mismatches[:20]),
                                  self.evidence([m[0] for m in mismatches])))

        # 4. overlaps
        overlaps, duplicates = self._overlaps(records)
        self.figures["overlapping_executions"] = len(overlaps)
        self.figures["duplicate_starts"] = len(duplicates)
        if overlaps:
            self.fail("overlap", "%d pairs of executions of one unit overlapped:\n%s\n%s" % (
                len(overlaps), "\n".join("  " + o["text"] for o in overlaps[:20]),
                self.evidence(sorted({o["unit"] for o in overlaps}))))
        if duplicates:
            self.fail("overlap", "an attempt's command started more than once: %s\n%s" % (
                duplicates[:20], self.evidence(sorted({d[0] for d in duplicates}))))

        # 5. drain overruns
        overruns = []
        for ag in self.agents:
            if ag.deadline_ns is None or ag.fate not in ("term", "notice", "end-term"):
                continue
            if ag.overrun or ag.exit_ns is None or ag.exit_ns >= ag.deadline_ns:
                overruns.append("%s (%s at %s): deadline %s, exited %s%s" % (
                    ag.name, ag.fate, fmt_ns(ag.fate_ns), fmt_ns(ag.deadline_ns),
                    fmt_ns(ag.exit_ns), " (SIGKILLed by the suite)" if ag.overrun else ""))
        self.figures["drain_overruns"] = len(overruns)
        if overruns:
            tails = []
            for ag in self.agents:
                if any(o.startswith(ag.name + " ") for o in overruns):
                    tails.append("---- last lines of %s:\n%s" % (
                        ag.log_path, "\n".join(ag.log_lines()[-25:])))
                    tails.append(self.connection_evidence(ag))
            self.fail("drain", "agents outlived their deadline:\n  %s\n%s" % (
                "\n  ".join(overruns), "\n".join(tails)))

        # 6. figures
        starts = sum(len(v) for v in records.values())
        claims = sum(shown[u].get("attempt", 0) for u in self.unit_ids)
        self.figures["command_starts"] = starts
        self.figures["ledger_claims"] = claims
        self.figures["reexecutions_per_unit"] = round(starts / max(1, len(self.unit_ids)), 3)
        lost_lines, spurious = [], []
        for name, lines in logs.items():
            for line in lines:
                m = LEASE_LOST.search(line)
                if not m or m.group(1) != JOB:
                    continue
                unit, n = m.group(2), int(m.group(3))
                lost_lines.append((name, line))
                attempts = shown.get(unit, {}).get("attempts", [])
                mine = next((at for at in attempts if at["n"] == n), None)
                owner = mine.get("worker") if mine else None
                if not any(at["n"] > n and at.get("worker") != owner for at in attempts):
                    spurious.append("%s: %s" % (name, line.strip()))
        self.figures["lease_lost_lines"] = len(lost_lines)
        self.figures["spurious_lease_lost"] = len(spurious)
        self.figures["spurious_lease_lost_lines"] = spurious[:50]
        self.figures["agents_started"] = len(self.agents)
        self.figures["agent_exit_codes"] = {ag.name: ag.exit_code for ag in self.agents}
        self.figures["failures_recorded"] = sum(shown[u].get("failures", 0) for u in self.unit_ids)
        self.figures["interruptions_recorded"] = sum(shown[u].get("interruptions", 0)
                                                     for u in self.unit_ids)

    def _parse_records(self):
        """{unit: [execution]}, each {attempt, pid, start, end, end_how, why_end}."""
        starts = {}
        ends = {}
        with open(self.records, errors="replace") as f:
            for line in f:
                parts = line.split()
                if len(parts) < 5 or parts[0] not in ("start", "end"):
                    continue
                key = (parts[1], parts[2], int(parts[3]))
                if parts[0] == "start":
                    starts[key] = int(parts[4])
                else:
                    ends[key] = (int(parts[4]), parts[5] if len(parts) > 5 else "")
        killed_at = {}
        for ag in self.agents:
            if ag.units_dead_ns is not None:
                for pid in ag.killed_unit_pids:
                    killed_at[pid] = min(killed_at.get(pid, ag.units_dead_ns), ag.units_dead_ns)
        tracked = self.watch.tracked if self.watch else {}
        out = {}
        for (unit, attempt, pid), start in starts.items():
            execution = {"attempt": attempt, "pid": pid, "start": start, "end": None,
                         "how": None}
            if (unit, attempt, pid) in ends:
                execution["end"], how = ends[(unit, attempt, pid)]
                execution["how"] = "end record (%s)" % how
            else:
                bounds = []
                info = tracked.get(pid)
                if info and info["unit"] == unit and info["dead_ns"] is not None:
                    bounds.append((info["dead_ns"], "seen dead by the sampler"))
                if pid in killed_at and killed_at[pid] >= start:
                    bounds.append((killed_at[pid], "SIGKILLed with its agent"))
                if bounds:
                    execution["end"], execution["how"] = min(bounds)
                else:
                    execution["end"], execution["how"] = math.inf, "no end known"
            info = tracked.get(pid)
            execution["cwd"] = info["cwd"] if info and info["unit"] == unit else ""
            out.setdefault(unit, []).append(execution)
        return out

    @staticmethod
    def _overlaps(records):
        overlaps, duplicates = [], []
        for unit, execs in records.items():
            execs = sorted(execs, key=lambda e: e["start"])
            seen = {}
            for e in execs:
                seen.setdefault(e["attempt"], []).append(e["pid"])
            for attempt, pids in seen.items():
                if len(pids) > 1:
                    duplicates.append((unit, attempt, pids))
            for i, a in enumerate(execs):
                for b in execs[i + 1:]:
                    if b["start"] < a["end"] and a["attempt"] != b["attempt"]:
                        overlap_ms = (min(a["end"], b["end"]) - b["start"]) / 1e6
                        overlaps.append({"unit": unit, "text": (
                            "%s: attempt %s (pid %d, %s .. %s, %s, %s) and attempt %s (pid %d, "
                            "started %s, %s) overlap by %.0f ms" % (
                                unit, a["attempt"], a["pid"], fmt_ns(a["start"]),
                                fmt_ns(a["end"]) if a["end"] != math.inf else "never",
                                a["how"], a["cwd"], b["attempt"], b["pid"], fmt_ns(b["start"]),
                                b["cwd"], overlap_ms))})
        return overlaps, duplicates

    def _read_outputs(self):
        import botocore.config
        import botocore.session
        session = botocore.session.get_session()
        s3 = session.create_client(
            "s3", endpoint_url=self.emulators["AWS_ENDPOINT_URL_S3"], region_name="us-east-1",
            aws_access_key_id="S3RVER", aws_secret_access_key="S3RVER",
            config=botocore.config.Config(s3={"addressing_style": "path"},
                                          retries={"max_attempts": 3}))

        def get(unit):
            key = "%s/%s/%s/output/result.txt" % (PREFIX, JOB, unit)
            try:
                return s3.get_object(Bucket=self.bucket, Key=key)["Body"].read().decode()
            except s3.exceptions.NoSuchKey:
                return None

        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            return dict(zip(self.unit_ids, pool.map(get, self.unit_ids)))

    def fault_log(self):
        entries = []
        for service in SERVICES:
            try:
                with open(os.path.join(self.tmp, "faults-%s.jsonl" % service)) as f:
                    entries.extend(json.loads(line) for line in f if line.strip())
            except (OSError, ValueError):
                pass
        return sorted(entries, key=lambda e: e["t"])

    def connection_evidence(self, agent):
        """What an agent still alive at its deadline was connected to, and the faults the
        proxies injected on those connections (matched by the agent's local port)."""
        conns = getattr(agent, "stuck_connections", None)
        if not conns:
            return "-- %s: no open connection recorded at its deadline" % agent.name
        by_port = {p.port: s for s, p in self.proxies.items()}
        for name, url in self.emulators.items():
            if name.startswith("SPOTGRID_FAKE_") and url.rsplit(":", 1)[-1].isdigit():
                by_port.setdefault(int(url.rsplit(":", 1)[-1]),
                                   name[len("SPOTGRID_FAKE_"):-len("_URL")].lower() + " fake")
        faults = self.fault_log()
        since = agent.start_ns / 1e9
        out = ["-- %s's TCP connections at its deadline (and the faults the proxy injected on "
               "each since the agent started):" % agent.name]
        for local, remote in conns:
            peer = by_port.get(remote, "port %d" % remote)
            hits = [e for e in faults if e.get("conn") == "127.0.0.1:%d" % local
                    and e.get("service") == peer and e["t"] >= since]
            out.append("  :%d -> %s; faults on it: %s" % (local, peer, "; ".join(
                "%s %s %s" % (fmt_ns(int(e["t"] * 1e9)), e["kind"], e["operation"])
                for e in hits[-3:]) or "none"))
        return "\n".join(out)

    def evidence(self, units, limit=3):
        """The ledger record, the record lines and the agents' log lines of a few units."""
        shown, records, logs = getattr(self, "evidence_context", ({}, {}, {}))
        out = []
        for unit in units[:limit]:
            out.append("==== unit %s" % unit)
            try:
                out.append(self.controller("show", unit, "--job", JOB, "--json").stdout.strip())
            except (SuiteError, subprocess.SubprocessError) as e:
                out.append("(controller show failed: %s)" % e)
            out.append("-- its records:")
            try:
                with open(self.records, errors="replace") as f:
                    out.extend("  " + line.rstrip() for line in f
                               if line.split()[1:2] == [unit])
            except OSError:
                pass
            for e in records.get(unit, []):
                out.append("  attempt %s pid %d: %s .. %s (%s) cwd %s" % (
                    e["attempt"], e["pid"], fmt_ns(e["start"]),
                    fmt_ns(e["end"]) if e["end"] != math.inf else "?", e["how"], e["cwd"]))
            out.append("-- agents' log lines naming %s/%s:" % (JOB, unit))
            needle = "%s/%s" % (JOB, unit)
            for name, lines in logs.items():
                for line in lines:
                    if needle in line:
                        out.append("  %s: %s" % (name, line.rstrip()))
        return "\n".join(out)

    # -- cleanup and report

    def _cleanup(self):
        problems = []
        for ag in self.agents:
            if ag.alive():
                try:
                    os.killpg(ag.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                ag.reaper.join(10)
        if self.watch is not None and self.watch.is_alive():
            self.watch.stop()
        if self.tmp:
            agents_dir = os.path.join(self.tmp, "agents")
            pids = processes_under(agents_dir) if os.path.isdir(agents_dir) else []
            kill_pids(pids)
            wait_gone(pids, 10)
        proxy_stats = {}
        for service, proxy in self.proxies.items():
            proxy_stats[service] = proxy.stats()
            proxy.stop()
        self.figures["proxies"] = proxy_stats
        if self.launcher is not None:
            try:
                self.launcher.stop()
            except launcher_mod.LaunchError as e:
                problems.append(str(e))
        survivors = [p for p in self.started_pids if proc_alive(p)]
        if self.tmp:
            survivors += processes_under(self.tmp)
        self.figures["processes_left"] = sorted(set(survivors))
        if survivors or problems:
            self.fail("processes", "left after cleanup: %s %s" % (
                [(p, proc_cmdline(p)) for p in sorted(set(survivors))], problems))

    def report(self):
        f = self.figures
        a = self.args
        f.update({"units": a.units, "agents": a.agents, "slots": a.slots,
                  "fault_rate": a.fault_rate, "seed": a.seed})
        faults = {}
        for service, stats in (f.get("proxies") or {}).items():
            if stats:
                faults[service] = {"requests": stats["requests"], "faults": stats["faults"],
                                   "by_kind": stats["by_kind"]}
        f["faults"] = faults
        f["failures"] = self.failures
        f["passed"] = not self.failures
        f["events"] = self.events
        return f


def print_summary(f, out=sys.stdout):
    rows = [
        ("units / agents x slots", "%s / %s x %s" % (f.get("units"), f.get("agents"),
                                                     f.get("slots"))),
        ("fault rate", "x%s (%.1f %% of requests)" % (
            f.get("fault_rate"), 100 * f.get("fault_rate_per_request", 0))),
        ("seed", f.get("seed")),
        ("run time (s)", f.get("run_s")),
        ("chaos (kill/term/notice)", "/".join(str((f.get("chaos") or {}).get(k, "-"))
                                              for k in ("kill", "term", "notice"))),
        ("agents started", f.get("agents_started")),
        ("faults injected", ", ".join("%s %d/%d" % (s, v["faults"], v["requests"])
                                      for s, v in (f.get("faults") or {}).items())),
        ("lost units", f.get("lost_units")),
        ("double-counted units", f.get("double_counted_units")),
        ("output mismatches", f.get("output_mismatches")),
        ("re-executions per unit", f.get("reexecutions_per_unit")),
        ("ledger claims", f.get("ledger_claims")),
        ("lease-lost lines (spurious)", "%s (%s)" % (f.get("lease_lost_lines"),
                                                     f.get("spurious_lease_lost"))),
        ("overlapping executions", f.get("overlapping_executions")),
        ("drain overruns", f.get("drain_overruns")),
        ("processes left", len(f.get("processes_left") or []) +
         len(f.get("processes_left_by_agents") or [])),
        ("result", "PASS" if f.get("passed") else "FAIL (%d checks)" % len(f.get("failures")))]
    width = max(len(r[0]) for r in rows)
    for name, value in rows:
        out.write("%s  %s\n" % (name.ljust(width), value))
    for failure in f.get("failures", []):
        out.write("\nFAILED [%s] %s\n" % (failure["check"], failure["text"]))
    if f.get("tmp_dir"):
        out.write("\nkept for diagnosis: %s\n" % f["tmp_dir"])
    out.flush()


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--units", type=int, default=60)
    ap.add_argument("--agents", type=int, default=3)
    ap.add_argument("--slots", type=int, default=2)
    ap.add_argument("--fault-rate", type=float, default=1.0,
                    help="multiplier of the base rate (8 %% of requests)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--duration-limit", type=float, default=600,
                    help="seconds the units have to finish")
    ap.add_argument("--chaos-interval", default="3:6", help="A:B seconds between chaos events")
    ap.add_argument("--blackhole-s", type=float, default=40.0)
    ap.add_argument("--json", help="write the figures and failures to this file")
    ap.add_argument("--build-dir", help="where agent/agent and controller/controller are "
                    "(default $SPOTGRID_BINARY_DIR, else build/)")
    ap.add_argument("--agent")
    ap.add_argument("--controller")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = ap.parse_args(argv)
    try:
        lo, hi = (float(x) for x in args.chaos_interval.split(":"))
        if not 0 < lo <= hi:
            raise ValueError
    except ValueError:
        ap.error("--chaos-interval must be A:B seconds with 0 < A <= B")
    args.chaos_interval = (lo, hi)
    if args.units < 1 or args.agents < 1 or args.slots < 1 or args.fault_rate < 0:
        ap.error("--units, --agents, --slots must be positive, --fault-rate not negative")
    return args


def run_suite(args):
    try:
        suite = Suite(args)
    except SuiteError as e:
        return {"passed": False, "failures": [{"check": "setup", "text": str(e)}]}
    return suite.run()


def main():
    args = parse_args()
    figures = run_suite(args)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(figures, f, indent=1, default=str)
    print_summary(figures)
    return 0 if figures.get("passed") else 1


if __name__ == "__main__":
    sys.exit(main())
