#!/usr/bin/python3
"""The quickstart scenario: a whole spotgrid job on this machine, Spot reclaim included.

  scripts/quickstart.py [--build-dir DIR] [--no-watch] [--out DIR] [--json FILE]
                        [--emulators-env FILE] [--stack NAME]

scripts/demo builds the binaries and runs this. Step by step, printing each controller command
it runs:
 1. starts the local AWS emulators (SQS, DynamoDB, S3) and the IMDS and EC2/Auto Scaling fakes
    (tests/harness/launcher.py) in a temporary directory;
 2. `controller init` a stack, `controller enqueue examples/grid.csv` with a command template
    (examples/simulate.py: a small epidemic simulation that checkpoints, reports progress and
    writes one CSV row of results);
 3. starts three agents with two slots each, each a Spot "instance" with its own IMDS tenant;
 4. shows `controller progress --watch` (on a terminal; --no-watch, or no terminal, prints
    `controller progress` every 10 s instead);
 5. once a third of the job is done and one agent runs a unit that has checkpointed, gives
    that agent a Spot interruption notice (terminate in 30 s): the agent signals its units,
    uploads their checkpoints, requeues them and exits; the units resume on the other agents
    from their checkpoints;
 6. lets the remaining agents drain the queue and exit (--idle-shutdown, --on-drain exit);
 7. `controller results --merge`, prints the merged CSV's head and where everything is in S3,
    and how to run the same on AWS.
Everything it starts is stopped (also on Ctrl-C or an error), and it checks that no process
is left. What stays is --out (default BUILD_DIR/quickstart): merged.csv, results/, logs/.

--emulators-env FILE uses emulators that are already running (the `env` file of
`launcher.py start --state-dir DIR`) and leaves them running, so a test can inspect the
stack afterwards. --json FILE writes what the run saw (stack, job, the reclaimed agent, the
interrupted units, timings). Exit status 0 when the job ended with every unit SUCCEEDED, the
interrupted units resumed, and nothing was left running; 1 otherwise.

Standard library only; runs under /usr/bin/python3.
"""

import argparse
import datetime
import json
import os
import pty
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAUNCHER = os.path.join(ROOT, "tests", "harness", "launcher.py")
GRID = os.path.join(ROOT, "examples", "grid.csv")
SIMULATION = os.path.join(ROOT, "examples", "simulate.py")

JOB = "sir-sweep"
PREFIX = "runs"
AGENTS = 3
SLOTS = 2
NOTICE_AHEAD_S = 30
IDLE_SHUTDOWN = "8s"
# The reclaim waits for this share of the job to have succeeded, so it lands mid-run.
RECLAIM_AFTER_SHARE = 1.0 / 3.0
# ...and for a unit on the chosen agent to be at least this far (days), so it has a checkpoint.
RECLAIM_MIN_DAY = 15
RECLAIM_MAX_DAY = 80
SCENARIO_DEADLINE_S = 240
CLEAR = "\x1b[H\x1b[2J"


class QuickstartError(Exception):
    pass


class _Stop(BaseException):
    """SIGTERM, turned into an exception so every `finally` runs."""


def _on_sigterm(_signum, _frame):
    raise _Stop()


def now_text():
    return datetime.datetime.now().strftime("%H:%M:%S")


class Console:
    """Scenario events: printed at once and kept, so a live progress frame can repeat them."""

    def __init__(self):
        self.lock = threading.Lock()
        self.events = []
        self.live = False  # a `progress --watch` relay owns the screen

    def say(self, text=""):
        with self.lock:
            sys.stdout.write(text + "\n")
            sys.stdout.flush()

    def event(self, text):
        line = "[%s] %s" % (now_text(), text)
        with self.lock:
            self.events.append(line)
            sys.stdout.write(line + "\n")
            sys.stdout.flush()

    def frame_header(self):
        with self.lock:
            lines = ["spotgrid quickstart: what happened so far", *self.events[-12:], ""]
        return "\n".join(lines) + "\n"


def wait_for(condition, deadline_s, what, interval=0.25):
    end = time.monotonic() + deadline_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > end:
            raise QuickstartError("timed out after %.0f s waiting for %s" % (deadline_s, what))
        time.sleep(interval)  # polling a condition with a deadline


def read_env_file(path):
    env = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            key, sep, value = line.rstrip("\n").partition("=")
            if sep and key and not key.startswith("#"):
                env[key] = value
    return env


def http(method, url, body=b""):
    request = urllib.request.Request(url, data=body if method in ("PUT", "POST") else None,
                                     method=method)
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.read()


def instance_id(n):
    # EC2-shaped ("i-" and 17 hex digits), distinct per agent and per run.
    return "i-0%08x%08x" % (int(time.time()) & 0xffffffff, (os.getpid() << 4) + n)


def proc_cwd(pid):
    try:
        return os.readlink("/proc/%d/cwd" % pid)
    except OSError:
        return ""


def proc_cmdline(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def proc_alive(pid):
    try:
        with open("/proc/%d/stat" % pid, encoding="ascii", errors="replace") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def processes_under(path):
    """Live processes whose working directory or command line lies under `path`."""
    found = []
    prefix = path.rstrip("/") + "/"
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        pid = int(entry)
        if (proc_cwd(pid).startswith(prefix) or prefix in proc_cmdline(pid)) and proc_alive(pid):
            found.append(pid)
    return found


class Agent:
    def __init__(self, n, binary, stack, tmp, env, imds_base):
        self.n = n
        self.name = "agent-%d" % n
        self.instance = instance_id(n)
        self.dir = os.path.join(tmp, self.name)
        self.work = os.path.join(self.dir, "work")
        os.makedirs(self.work)
        for d in (self.dir, self.work):
            os.chmod(d, 0o755)  # the unit's user must reach its directories
        env_file = os.path.join(self.dir, "agent.env")
        open(env_file, "w").close()  # no /etc/spotgrid/agent.env: every setting is a flag
        self.imds = "%s/%s-%s" % (imds_base, stack, self.name)
        http("PUT", self.imds + "/_fake/meta-data/instance-id", self.instance.encode())
        http("PUT", self.imds + "/_fake/meta-data/placement/availability-zone",
             ("us-east-1%s" % "abc"[(n - 1) % 3]).encode())
        self.argv = [binary, "--stack", stack, "--slots", str(SLOTS), "--work-dir", self.work,
                     "--heartbeat", "2s", "--poll-wait", "2", "--spot-poll", "1s",
                     "--idle-shutdown", IDLE_SHUTDOWN, "--on-drain", "exit",
                     "--upload-reserve", "10s", "--env-file", env_file,
                     "--user", "nobody" if os.geteuid() == 0 else ""]
        child_env = dict(env)
        for name in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "JOURNAL_STREAM",
                     "INVOCATION_ID"):
            child_env.pop(name, None)
        child_env["AWS_EC2_METADATA_SERVICE_ENDPOINT"] = self.imds
        child_env["AWS_EC2_METADATA_DISABLED"] = "false"
        self.log_path = os.path.join(self.dir, "agent.log")
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(self.argv, env=child_env, stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        self.exited_at = None

    def running(self):
        if self.proc.poll() is None:
            return True
        if self.exited_at is None:
            self.exited_at = time.monotonic()
        return False

    def spot_notice(self, at):
        doc = {"action": "terminate", "time": at.strftime("%Y-%m-%dT%H:%M:%SZ")}
        http("PUT", self.imds + "/_fake/meta-data/spot/instance-action", json.dumps(doc).encode())

    def stop(self):
        """SIGTERM (the agent releases what it holds), SIGKILL to its group after 40 s."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(40)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()
        # Units run in process groups of their own, under the agent's work directory.
        for pid in processes_under(self.work):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def tail(self, lines=20):
        try:
            with open(self.log_path, errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except OSError:
            return ""


class Controller:
    def __init__(self, binary, env, console):
        self.binary, self.env, self.console = binary, env, console

    def run(self, args, show=True, check=True):
        if show:
            self.console.say("$ controller " + " ".join(_quote(a) for a in args))
        done = subprocess.run([self.binary, *args], env=self.env, capture_output=True, text=True)
        if check and done.returncode != 0:
            raise QuickstartError("controller %s failed (%d):\n%s%s" % (
                " ".join(args), done.returncode, done.stdout, done.stderr))
        return done

    def json(self, args):
        return json.loads(self.run(args + ["--json"], show=False).stdout)

    def progress(self):
        return self.json(["progress", "--job", JOB])


def _day(progress):
    """The day of a "day N/DAYS" progress report; -1 for anything else."""
    try:
        return int(progress.split()[1].split("/")[0]) if progress.startswith("day ") else -1
    except (IndexError, ValueError):
        return -1


def _quote(arg):
    if arg and all(c.isalnum() or c in "-_./=:,{}@%+" for c in arg):
        return arg
    return "'" + arg.replace("'", "'\\''") + "'"


class Watch:
    """`controller progress --watch` on a pseudo-terminal, relayed to ours with the scenario's
    events above each frame (the command clears the screen at every redraw)."""

    def __init__(self, controller, console):
        self.console = console
        master, slave = pty.openpty()
        self.master = master
        cols, rows = shutil.get_terminal_size((100, 40))
        try:
            import fcntl
            import struct
            import termios
            fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        except OSError:
            pass
        self.proc = subprocess.Popen([controller.binary, "progress", "--job", JOB, "--watch"],
                                     env=controller.env, stdin=subprocess.DEVNULL, stdout=slave,
                                     stderr=slave, start_new_session=True)
        os.close(slave)
        console.live = True
        self.thread = threading.Thread(target=self._relay, daemon=True)
        self.thread.start()

    def _relay(self):
        pending = ""
        while True:
            try:
                ready, _, _ = select.select([self.master], [], [], 0.5)
                if not ready:
                    if self.proc.poll() is not None:
                        break
                    continue
                data = os.read(self.master, 65536).decode(errors="replace")
            except OSError:
                break  # EIO: the command exited and closed its side
            if not data:
                break
            pending += data
            while CLEAR in pending:
                before, pending = pending.split(CLEAR, 1)
                self._write(before + CLEAR + self.console.frame_header())
            # Hold back a tail that may be the start of the next clear sequence.
            keep = next((k for k in range(len(CLEAR) - 1, 0, -1)
                         if pending.endswith(CLEAR[:k])), 0)
            if len(pending) > keep:
                self._write(pending[:len(pending) - keep])
                pending = pending[len(pending) - keep:]
        if pending:
            self._write(pending)
        self.console.live = False

    def _write(self, text):
        with self.console.lock:
            sys.stdout.write(text)
            sys.stdout.flush()

    def done(self):
        return self.proc.poll() is not None

    def stop(self):
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.thread.join(5)
        try:
            os.close(self.master)
        except OSError:
            pass


class Scenario:
    def __init__(self, args):
        self.args = args
        self.console = Console()
        self.build_dir = os.path.abspath(args.build_dir)
        self.controller_bin = os.path.join(self.build_dir, "controller", "controller")
        self.agent_bin = os.path.join(self.build_dir, "agent", "agent")
        self.out = os.path.abspath(args.out or os.path.join(self.build_dir, "quickstart"))
        self.stack = args.stack or "quickstart-%d" % os.getpid()
        self.bucket = "%s-outputs" % self.stack
        self.tmp = None
        self.launcher_state = None
        self.started_pids = []
        self.agents = []
        self.watch = None
        self.report = {"stack": self.stack, "job": JOB, "bucket": self.bucket, "prefix": PREFIX,
                       "out": self.out}
        self.t0 = time.monotonic()

    # ---- setup and teardown

    def run(self):
        for path in (self.controller_bin, self.agent_bin):
            if not os.access(path, os.X_OK):
                raise QuickstartError("%s is not built (scripts/demo builds it)" % path)
        self.tmp = tempfile.mkdtemp(prefix="spotgrid-quickstart-")
        os.chmod(self.tmp, 0o755)
        try:
            self._scenario()
        finally:
            self._teardown()

    def _start_emulators(self):
        if self.args.emulators_env:
            self.console.say("Using the running emulators of %s" % self.args.emulators_env)
            return read_env_file(self.args.emulators_env)
        self.console.say("Starting the local AWS emulators (SQS, DynamoDB, S3) and the IMDS and "
                         "EC2/Auto Scaling fakes...")
        self.launcher_state = os.path.join(self.tmp, "emulators")
        done = subprocess.run(["/usr/bin/python3", LAUNCHER, "start", "--state-dir",
                               self.launcher_state], capture_output=True, text=True)
        pids_path = os.path.join(self.launcher_state, "pids")
        if os.path.exists(pids_path):
            with open(pids_path) as f:
                self.started_pids += [c["pid"] for c in json.load(f)["children"]]
        if done.returncode != 0:
            raise QuickstartError("the emulators did not start:\n" + done.stderr)
        return read_env_file(os.path.join(self.launcher_state, "env"))

    def _teardown(self):
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut cleanup
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if self.watch is not None:
            self.watch.stop()
            self.started_pids.append(self.watch.proc.pid)
        for agent in self.agents:
            agent.stop()
            self.started_pids.append(agent.proc.pid)
        self._save_logs()
        if self.launcher_state is not None:
            subprocess.run(["/usr/bin/python3", LAUNCHER, "stop", "--state-dir",
                            self.launcher_state], stdout=subprocess.DEVNULL)
        left = [pid for pid in self.started_pids if proc_alive(pid)]
        left += [pid for pid in processes_under(self.tmp) if pid not in left]
        self.report["processes_started"] = len(self.started_pids)
        self.report["processes_left"] = left
        shutil.rmtree(self.tmp, ignore_errors=True)
        if left:
            self.console.say("LEFT BEHIND: processes %s" % left)
        else:
            self.console.say("Stopped everything it started: %d processes checked, none left."
                             % len(self.started_pids))
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, _on_sigterm)

    def _save_logs(self):
        logs = os.path.join(self.out, "logs")
        os.makedirs(logs, exist_ok=True)
        for agent in self.agents:
            if os.path.exists(agent.log_path):
                shutil.copy(agent.log_path, os.path.join(logs, agent.name + ".log"))
        if self.launcher_state and os.path.isdir(os.path.join(self.launcher_state, "logs")):
            for name in os.listdir(os.path.join(self.launcher_state, "logs")):
                shutil.copy(os.path.join(self.launcher_state, "logs", name),
                            os.path.join(logs, "emulator-" + name))

    # ---- the scenario

    def _scenario(self):
        say, event = self.console.say, self.console.event
        if os.path.isdir(self.out):
            shutil.rmtree(self.out)
        os.makedirs(self.out)
        emulators = self._start_emulators()
        env = dict(os.environ)
        env.update(emulators)
        env["SPOTGRID_STACK"] = self.stack
        env.pop("AWS_PROFILE", None)
        controller = Controller(self.controller_bin, env, self.console)
        # The command runs as an unprivileged user, which may not reach this checkout.
        bin_dir = os.path.join(self.tmp, "bin")
        os.makedirs(bin_dir)
        os.chmod(bin_dir, 0o755)
        simulation = os.path.join(bin_dir, "simulate.py")
        shutil.copy(SIMULATION, simulation)
        os.chmod(simulation, 0o755)
        # No `exec`: /bin/sh (dash) forks the simulation and dies of the drain's SIGTERM at
        # once; the agent waits for the whole process group, so the simulation still saves
        # its checkpoint.
        template = ("/usr/bin/python3 %s --beta {beta} --gamma {gamma} --seed {seed}"
                    % simulation)

        say("")
        say("1. Create the stack '%s': work queue, dead-letter queue, ledger table, bucket."
            % self.stack)
        controller.run(["init", "--bucket", self.bucket, "--prefix", PREFIX])
        say("")
        say("2. Enqueue the sweep: every row of examples/grid.csv becomes a unit.")
        with open(GRID, encoding="utf-8") as f:
            rows = sum(1 for line in f if line.strip()) - 1
        self.report["rows"] = rows
        say("   " + "".join(open(GRID, encoding="utf-8").readlines()[:3]).replace("\n", "\n   ")
            + "... (%d rows)" % rows)
        done = controller.run(["enqueue", GRID, "--job", JOB, "--command", template])
        say(done.stdout.rstrip())
        say("")
        say("3. Start %d agents with %d slots each, each on its own (fake) Spot instance." %
            (AGENTS, SLOTS))
        for n in range(1, AGENTS + 1):
            agent = Agent(n, self.agent_bin, self.stack, self.tmp, env,
                          emulators["SPOTGRID_FAKE_IMDS_URL"])
            self.agents.append(agent)
            self.started_pids.append(agent.proc.pid)
            say("   %s: %s (%s)" % (agent.name, agent.instance, " ".join(
                _quote(a) for a in [os.path.basename(agent.argv[0])] + agent.argv[1:]
                if not a.startswith(self.tmp))))
        self.job_started = time.monotonic()
        say("")
        live = sys.stdout.isatty() and not self.args.no_watch
        say("4. Watch the job: controller progress --watch%s" %
            ("" if live else " (no terminal: `controller progress` every 10 s)"))
        if live:
            time.sleep(1.5)  # let the reader see the commands above before the screen clears
            self.watch = Watch(controller, self.console)
        self._drive(controller, live)
        if self.watch is not None:
            wait_for(self.watch.done, 30, "controller progress --watch to end")
            self.watch.stop()
            self.started_pids.append(self.watch.proc.pid)
            self.watch = None
        say("")
        say(controller.run(["progress", "--job", JOB]).stdout.rstrip())
        self._wait_for_agents_to_exit(event)
        self._results(controller)

    def _drive(self, controller, live):
        """Reclaims one agent mid-run and follows the interrupted units until the job is done."""
        event = self.console.event
        last_print = 0.0
        victim, victim_exit, interrupted, notice_at = None, None, {}, None
        resumed = {}
        deadline = time.monotonic() + SCENARIO_DEADLINE_S
        while True:
            if time.monotonic() > deadline:
                raise QuickstartError("the job did not finish within %d s" % SCENARIO_DEADLINE_S)
            report = controller.progress()
            counts = report["counts"]
            if not live and time.monotonic() - last_print >= 10:
                last_print = time.monotonic()
                self.console.say(controller.run(["progress", "--job", JOB], show=False)
                                 .stdout.rstrip() + "\n")
            for agent in self.agents:
                if agent is not victim and not agent.running() and not report.get("done"):
                    raise QuickstartError("%s exited early (%s):\n%s" %
                                          (agent.name, agent.proc.returncode, agent.tail()))
            if victim is None:
                victim = self._maybe_reclaim(report)
                if victim is not None:
                    notice_at = time.monotonic()
            elif victim_exit is None and not victim.running():
                victim_exit = victim.exited_at
                event("%s drained and exited with status %d, %.1f s after the notice" %
                      (victim.name, victim.proc.returncode, victim_exit - notice_at))
                if victim.proc.returncode != 0:
                    raise QuickstartError("%s exited with %d:\n%s" % (
                        victim.name, victim.proc.returncode, victim.tail()))
                interrupted = self._released_units(controller, victim)
            for unit, day in interrupted.items():
                if unit in resumed:
                    continue
                shown = controller.json(["show", unit, "--job", JOB])
                if shown["state"] == "SUCCEEDED":
                    worker = shown["attempts"][-1]["worker"] if shown["attempts"] else "?"
                    log = controller.run(["logs", unit, "--job", JOB], show=False,
                                         check=False).stdout
                    line = next((l for l in log.splitlines() if l.startswith("resumed from")),
                                "(its log does not say it resumed)")
                    resumed[unit] = {"worker": worker, "attempt": shown["attempt"],
                                     "log_line": line, "interrupted_log_line": day}
                    event("%s succeeded on %s, attempt %d: \"%s\"" %
                          (unit, worker, shown["attempt"], line))
            if (report.get("done") and victim_exit is not None
                    and len(resumed) == len(interrupted)):
                if not interrupted:
                    raise QuickstartError("the reclaimed agent had no unit to release: its "
                                          "units all finished before the notice")
                break
            if report.get("done") and counts["succeeded"] != counts["total"]:
                raise QuickstartError("the job ended with %s" % json.dumps(counts))
            time.sleep(1)  # polling the ledger
        self.report["interrupted"] = resumed
        self.report["victim"] = {"name": victim.name, "instance": victim.instance,
                                 "exit_code": victim.proc.returncode,
                                 "exit_after_notice_s": victim.exited_at - notice_at}
        self.report["job_seconds"] = time.monotonic() - self.job_started

    def _maybe_reclaim(self, report):
        counts = report["counts"]
        if counts["succeeded"] < counts["total"] * RECLAIM_AFTER_SHARE:
            return None
        # An agent whose unit is well under way (it has checkpointed) and far from its end.
        best = None
        for running in report.get("running", []):
            day = _day(running.get("progress", ""))
            instance = running["worker"].split("/")[0]
            agent = next((a for a in self.agents if a.instance == instance), None)
            if (agent and RECLAIM_MIN_DAY <= day <= RECLAIM_MAX_DAY
                    and (best is None or day > best[1])):
                best = (agent, day)
        if best is None:
            return None
        victim = best[0]
        units = sorted("%s (day %d)" % (r["unit"], _day(r.get("progress", "")))
                       for r in report["running"] if r["worker"].startswith(victim.instance + "/"))
        at = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(
            seconds=NOTICE_AHEAD_S)
        victim.spot_notice(at)
        self.console.event(
            "Spot interruption notice to %s (%s): terminate at %s UTC. It runs %s." % (
                victim.name, victim.instance, at.strftime("%H:%M:%S"), ", ".join(units)))
        return victim

    def _released_units(self, controller, victim):
        """The units the drained agent released: {unit: day of the checkpoint it uploaded}."""
        released = {}
        for unit in controller.json(["list", "--job", JOB]):
            if unit["interruptions"] < 1:
                continue
            shown = controller.json(["show", unit["unit"], "--job", JOB])
            if not any(a["worker"].startswith(victim.instance + "/") and
                       a["reason"] == "interrupted" for a in shown["attempts"]):
                continue
            log = controller.run(["logs", unit["unit"], "--job", JOB, "--attempt", "1"],
                                 show=False, check=False).stdout
            saved = next((l for l in log.splitlines() if l.startswith("SIGTERM:")), "")
            released[unit["unit"]] = saved
            self.console.event("%s was interrupted and requeued, not failed; its log: \"%s\"" %
                               (unit["unit"], saved or "(nothing)"))
        return released

    def _wait_for_agents_to_exit(self, event):
        self.console.say("")
        self.console.say("5. The queue is empty: each agent exits after %s idle (--on-drain exit;"
                         " on EC2 it would terminate its instance)." % IDLE_SHUTDOWN)
        for agent in self.agents:
            wait_for(lambda a=agent: not a.running(), 60, "%s to exit" % agent.name)
            if agent.proc.returncode != 0:
                raise QuickstartError("%s exited with %d:\n%s" % (
                    agent.name, agent.proc.returncode, agent.tail()))
        self.report["agents"] = {a.name: a.proc.returncode for a in self.agents}
        event("all agents exited with status 0")

    def _results(self, controller):
        say = self.console.say
        say("")
        say("6. Fetch the results and merge each unit's result.csv into one table.")
        results_dir = os.path.join(self.out, "results")
        merged = os.path.join(self.out, "merged.csv")
        done = controller.run(["results", "--job", JOB, "--out", results_dir, "--merge", merged])
        say(done.stdout.rstrip())
        with open(merged, encoding="utf-8") as f:
            lines = f.read().splitlines()
        self.report["merged_csv"] = merged
        self.report["merged_rows"] = len(lines) - 1
        say("")
        say("%s (%d rows; the head):" % (merged, len(lines) - 1))
        table = [line.split(",") for line in lines[:9]]
        if len(table[0]) > 1 and table[0][1] == "id":  # the id column repeats the unit's name
            table = [row[:1] + row[2:] for row in table]
        widths = [max(len(row[i]) for row in table if i < len(row)) for i in range(len(table[0]))]
        for row in table:
            say("  " + "  ".join(cell.rjust(widths[i]) for i, cell in enumerate(row)))
        resumed_rows = [row for row in (line.split(",") for line in lines[1:])
                        if row[-1] not in ("0", "")]
        if resumed_rows:
            say("  ... and the resumed units (resumed_from_day > 0):")
            for row in resumed_rows:
                if len(row) == len(widths) + 1:
                    row = row[:1] + row[2:]
                say("  " + "  ".join(cell.rjust(widths[i]) for i, cell in enumerate(row)))
        say("")
        say("Where everything is in S3 (s3://%s/%s/%s/UNIT/...):" % (self.bucket, PREFIX, JOB))
        say("  output/result.csv          what the command wrote to $SPOTGRID_OUTPUT_DIR")
        say("  checkpoint/sim-row0.json   $SPOTGRID_CHECKPOINT_DIR, restored before a retry")
        say("  logs/ATTEMPT/stdout.log    each attempt's stdout and stderr")
        for unit in sorted(self.report.get("interrupted", {}))[:1]:
            shown = controller.json(["show", unit, "--job", JOB])
            say("  the interrupted unit %s (`controller show %s`):" % (unit, unit))
            say("    output      %s" % shown["output"])
            say("    checkpoint  %s" % shown["checkpoint"])
            for attempt in shown["attempts"]:
                say("    attempt %d   %s  (%s on %s)" % (attempt["n"], attempt["stdout"],
                                                       attempt["reason"], attempt["worker"]))
        say("Locally: %s (merged.csv, results/UNIT/result.csv, logs/)." % self.out)
        say("")
        say("The same on AWS (README, \"Deploying on AWS\"): build the .deb, bake the AMI with packer,")
        say("`controller init --bucket YOUR-BUCKET`, deploy deploy/fleet.yaml with CloudFormation,")
        say("then `controller enqueue examples/grid.csv --command '...'` and `controller progress")
        say("--watch`: the Auto Scaling group grows with the queue; Spot reclaims drain as here.")
        say("")
        self.console.say("Quickstart done in %.0f s." % (time.monotonic() - self.t0))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build-dir", default=os.environ.get("SPOTGRID_BUILD_DIR",
                                                          os.path.join(ROOT, "build")))
    ap.add_argument("--no-watch", action="store_true",
                    help="print `controller progress` every 10 s instead of --watch")
    ap.add_argument("--out", help="where merged.csv, results/ and logs/ go "
                                  "(default BUILD_DIR/quickstart)")
    ap.add_argument("--json", help="write what the run saw to this file")
    ap.add_argument("--emulators-env", help="use these running emulators (launcher env file)")
    ap.add_argument("--stack", help="the stack's name (default quickstart-PID)")
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, _on_sigterm)
    scenario = Scenario(args)
    status = 0
    try:
        scenario.run()
    except QuickstartError as e:
        print("quickstart: %s" % e, file=sys.stderr)
        status = 1
    except (KeyboardInterrupt, _Stop):
        print("quickstart: interrupted; everything it started was stopped", file=sys.stderr)
        status = 130
    if scenario.report.get("processes_left"):
        status = status or 1
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(scenario.report, f, indent=2)
    return status


if __name__ == "__main__":
    sys.exit(main())
