#!/usr/bin/python3
"""Starts and stops the local AWS emulators and fakes the integration tests run against.

  launcher.py start --state-dir DIR     start everything, wait until each answers, write
                                        DIR/env (KEY=VALUE lines) and DIR/pids, then exit
  launcher.py stop --state-dir DIR      stop exactly the process groups recorded in DIR/pids
  launcher.py run [--state-dir DIR] -- CMD ARGS...
                                        start, run CMD with the env exported, stop (also when
                                        CMD fails, on an exception, SIGINT or SIGTERM); exit
                                        with CMD's status (128+N when it died of signal N)
  launcher.py env --state-dir DIR       print `export KEY=VALUE` lines for a shell

Services, each on a free 127.0.0.1 port (every program binds port 0 and reports the port it
got through a port file, so parallel launchers never race for a port):
  sqs       local-aws-sqs (createSqsServer)
  dynamodb  dynalite, tables change state at once (createTableMs/deleteTableMs/updateTableMs 0)
  s3        s3rver on a fresh data directory per start, run by node with
            --openssl-legacy-provider (s3rver encrypts ListObjectsV2 continuation tokens with
            DES, which OpenSSL 3 refuses otherwise)
  imds      tests/harness/imds_fake.py
  aws       tests/harness/aws_fake.py (EC2 + Auto Scaling)
Each child runs in its own session (so its own process group) with stdout/stderr in
DIR/logs/<name>.log. `stop` signals only the recorded groups (SIGTERM, SIGKILL after a grace
period) and checks each recorded leader's start time first, so a recycled PID is never hit.

Needs only the Python standard library (runs under /usr/bin/python3) and node >= 20 with
tests/node_modules installed (`npm ci` in tests/, done by scripts/install-deps).
"""

import argparse
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

HARNESS_DIR = os.path.dirname(os.path.abspath(__file__))
TESTS_DIR = os.path.dirname(HARNESS_DIR)
NODE_MODULES = os.path.join(TESTS_DIR, "node_modules")
PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable

START_DEADLINE_S = 60.0
STOP_GRACE_S = 5.0
LOG_TAIL_LINES = 40

# Small node bootstraps: each loads an emulator through its documented programmatic API, binds
# 127.0.0.1 port 0 and writes the bound port to argv[2] (written then renamed, so a reader never
# sees a partial number). argv[1] is the emulator's package directory.
_NODE_WRITE_PORT = (
    "const fs = require('fs');"
    "function ready(port) {"
    "  fs.writeFileSync(process.argv[2] + '.tmp', port + '\\n');"
    "  fs.renameSync(process.argv[2] + '.tmp', process.argv[2]);"
    "  console.log('listening on 127.0.0.1:' + port);"
    "}"
    "process.on('SIGTERM', () => process.exit(0));"
)
NODE_SQS = _NODE_WRITE_PORT + (
    "require(process.argv[1]).createSqsServer({port: 0, hostname: '127.0.0.1'})"
    ".then(s => ready(s.address().port))"
    ".catch(e => { console.error(e); process.exit(1); });"
)
NODE_DYNALITE = _NODE_WRITE_PORT + (
    "const server = require(process.argv[1])("
    "{createTableMs: 0, deleteTableMs: 0, updateTableMs: 0});"
    "server.on('error', e => { console.error(e); process.exit(1); });"
    "server.listen(0, '127.0.0.1', () => ready(server.address().port));"
)
# s3rver 3.7.1 lacks AbortMultipartUpload (405) and answers 500 where S3 says NoSuchUpload for
# an unknown upload id. A middleware in front of it adds both exactly as S3 documents them, so
# tests prove the product against S3's behaviour instead of the emulator's gap.
NODE_S3RVER = _NODE_WRITE_PORT + (
    "const path = require('path');"
    "const S3rver = require(process.argv[1]);"
    "const dir = process.argv[3];"
    "const s3 = new S3rver({address: '127.0.0.1', port: 0, silent: true, directory: dir,"
    " vhostBuckets: false});"
    "s3.middleware.unshift(async (ctx, next) => {"
    "  const id = ctx.query.uploadId;"
    "  const m = /^\\/([^/]+)\\/./.exec(ctx.path);"
    "  if (!id || !m || !['DELETE', 'POST', 'PUT'].includes(ctx.method)) return next();"
    "  const uploadDir = path.join(dir, m[1], '._S3rver_uploads', path.basename(id));"
    "  if (!fs.existsSync(uploadDir)) {"
    "    ctx.status = 404; ctx.type = 'application/xml';"
    "    ctx.body = '<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>NoSuchUpload</Code>'"
    "      + '<Message>The specified upload does not exist.</Message></Error>';"
    "    return;"
    "  }"
    "  if (ctx.method === 'DELETE') {"
    "    fs.rmSync(uploadDir, {recursive: true, force: true}); ctx.status = 204; return;"
    "  }"
    "  return next();"
    "});"
    "s3.run()"
    ".then(a => ready(a.port))"
    ".catch(e => { console.error(e); process.exit(1); });"
)


class LaunchError(Exception):
    pass


class _Terminated(Exception):
    def __init__(self, signum):
        super().__init__("signal %d" % signum)
        self.signum = signum


# A signal that arrives while a child is being spawned and recorded is held back until the
# child is recorded; otherwise the exception could fire between fork and bookkeeping and leave
# a process nobody stops.
_critical = {"depth": 0, "pending": None}


def _on_stop_signal(signum, _frame):
    if _critical["depth"] > 0:
        _critical["pending"] = signum
        return
    raise _Terminated(signum)


class _Uninterrupted:
    def __enter__(self):
        _critical["depth"] += 1

    def __exit__(self, *exc):
        _critical["depth"] -= 1
        pending = _critical["pending"]
        if _critical["depth"] == 0 and pending is not None and exc[0] is None:
            _critical["pending"] = None
            raise _Terminated(pending)
        return False


def _log_tail(path, lines=LOG_TAIL_LINES):
    try:
        with open(path, "r", encoding="utf-8", errors="replace") as f:
            content = f.readlines()
    except OSError:
        return "(no log)"
    return "".join(content[-lines:]) or "(empty log)"


def _proc_start_time(pid):
    """The kernel's start time of `pid` (clock ticks since boot), or None if it is gone."""
    try:
        with open("/proc/%d/stat" % pid, "r", encoding="ascii", errors="replace") as f:
            stat = f.read()
    except OSError:
        return None
    # Field 2 (comm) may contain spaces and parentheses; everything after the last ')' is safe.
    fields = stat[stat.rindex(")") + 2:].split()
    return int(fields[19])  # field 22 overall


def _node():
    node = shutil.which("node")
    if node is None:
        raise LaunchError("node is not installed (scripts/install-deps installs nodejs)")
    return node


def _package_dir(name):
    path = os.path.join(NODE_MODULES, name)
    if not os.path.isfile(os.path.join(path, "package.json")):
        raise LaunchError(
            "%s is missing from %s: run `npm ci` in %s (scripts/install-deps does it)" %
            (name, NODE_MODULES, TESTS_DIR))
    return path


def _service_commands(state_dir, s3_data_dir):
    """[(name, argv, readiness path)] for every service the launcher starts."""
    node = _node()
    ports = os.path.join(state_dir, "ports")
    return [
        ("sqs", [node, "-e", NODE_SQS, _package_dir("local-aws-sqs"),
                 os.path.join(ports, "sqs")], "/"),
        ("dynamodb", [node, "-e", NODE_DYNALITE, _package_dir("dynalite"),
                      os.path.join(ports, "dynamodb")], "/"),
        ("s3", [node, "--openssl-legacy-provider", "-e", NODE_S3RVER, _package_dir("s3rver"),
                os.path.join(ports, "s3"), s3_data_dir], "/"),
        ("imds", [PYTHON, os.path.join(HARNESS_DIR, "imds_fake.py"), "--port", "0",
                  "--port-file", os.path.join(ports, "imds")], "/_fake/requests"),
        ("aws", [PYTHON, os.path.join(HARNESS_DIR, "aws_fake.py"), "--port", "0",
                 "--port-file", os.path.join(ports, "aws")], "/_fake/calls"),
    ]


class Launcher:
    """Owns the processes of one state directory."""

    def __init__(self, state_dir):
        self.state_dir = os.path.abspath(state_dir)
        self.pids_path = os.path.join(self.state_dir, "pids")
        self.env_path = os.path.join(self.state_dir, "env")
        self.children = []  # dicts: name, pid, pgid, start_time, proc (only in this process)
        self.s3_data_dir = None

    # ---- recording

    def _write_pids(self):
        records = [{k: c[k] for k in ("name", "pid", "pgid", "start_time")}
                   for c in self.children]
        doc = {"launcher_pid": os.getpid(), "s3_data_dir": self.s3_data_dir,
               "children": records}
        tmp = self.pids_path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(doc, f, indent=1)
        os.replace(tmp, self.pids_path)

    def _read_pids(self):
        try:
            with open(self.pids_path, "r", encoding="utf-8") as f:
                return json.load(f)
        except FileNotFoundError:
            return None
        except ValueError as e:
            raise LaunchError("unreadable %s: %s" % (self.pids_path, e)) from e

    # ---- start

    def start(self):
        os.makedirs(self.state_dir, exist_ok=True)
        if self._read_pids() is not None:
            # A previous run did not stop (crash, killed ctest): its processes are ours.
            self.stop()
        for sub in ("logs", "ports"):
            os.makedirs(os.path.join(self.state_dir, sub), exist_ok=True)
        if os.path.exists(self.env_path):
            os.remove(self.env_path)
        for name in os.listdir(os.path.join(self.state_dir, "ports")):
            os.remove(os.path.join(self.state_dir, "ports", name))
        self.s3_data_dir = tempfile.mkdtemp(prefix="spotgrid-s3rver-")
        self._write_pids()

        services = _service_commands(self.state_dir, self.s3_data_dir)
        for name, argv, _ in services:
            self._spawn(name, argv)
        ports = {}
        deadline = time.monotonic() + START_DEADLINE_S
        for name, _, probe in services:
            ports[name] = self._wait_ready(name, probe, deadline)

        env = self._env_values(ports)
        tmp = self.env_path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            for key, value in env.items():
                f.write("%s=%s\n" % (key, value))
        os.replace(tmp, self.env_path)
        return env

    def _spawn(self, name, argv):
        log_path = os.path.join(self.state_dir, "logs", name + ".log")
        with _Uninterrupted(), open(log_path, "ab") as log:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log,
                                    stderr=subprocess.STDOUT, close_fds=True,
                                    start_new_session=True, cwd=TESTS_DIR)
            start_time = _proc_start_time(proc.pid)
            self.children.append({"name": name, "pid": proc.pid, "pgid": proc.pid,
                                  "start_time": start_time, "proc": proc})
            self._write_pids()

    def _wait_ready(self, name, probe, deadline):
        child = next(c for c in self.children if c["name"] == name)
        port_file = os.path.join(self.state_dir, "ports", name)
        log_path = os.path.join(self.state_dir, "logs", name + ".log")
        port = None
        last_error = "no port file yet"
        while time.monotonic() < deadline:
            code = child["proc"].poll()
            if code is not None:
                raise LaunchError("%s exited with status %s before it answered; last lines of "
                                  "%s:\n%s" % (name, code, log_path, _log_tail(log_path)))
            if port is None:
                try:
                    with open(port_file, "r", encoding="ascii") as f:
                        port = int(f.read().strip())
                except (OSError, ValueError):
                    port = None
            if port is not None:
                try:
                    with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, probe),
                                                timeout=2):
                        return port
                except urllib.error.HTTPError:
                    return port  # any HTTP answer means it is serving
                except OSError as e:
                    last_error = str(e)
            time.sleep(0.05)  # polling readiness with a deadline
        raise LaunchError("%s did not answer within %.0f s (%s); last lines of %s:\n%s" %
                          (name, START_DEADLINE_S, last_error, log_path, _log_tail(log_path)))

    @staticmethod
    def _env_values(ports):
        def url(name):
            return "http://127.0.0.1:%d" % ports[name]

        return {
            "AWS_ENDPOINT_URL_SQS": url("sqs"),
            "AWS_ENDPOINT_URL_DYNAMODB": url("dynamodb"),
            "AWS_ENDPOINT_URL_S3": url("s3"),
            "AWS_ENDPOINT_URL_EC2": url("aws"),
            "AWS_ENDPOINT_URL_AUTO_SCALING": url("aws"),
            "AWS_EC2_METADATA_SERVICE_ENDPOINT": url("imds"),
            "SPOTGRID_FAKE_IMDS_URL": url("imds"),
            "SPOTGRID_FAKE_AWS_URL": url("aws"),
            "AWS_ACCESS_KEY_ID": "S3RVER",
            "AWS_SECRET_ACCESS_KEY": "S3RVER",
            "AWS_REGION": "us-east-1",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_CONFIG_FILE": "/dev/null",
            "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
        }

    # ---- stop

    def stop(self):
        """Stops the recorded process groups; returns the names it had to SIGKILL."""
        doc = self._read_pids()
        if doc is None:
            return []
        records = doc.get("children", [])
        live = {c["pid"]: c.get("proc") for c in self.children}
        targets = []
        for rec in records:
            leader_start = _proc_start_time(rec["pgid"])
            if leader_start is not None and leader_start != rec.get("start_time"):
                continue  # the leader's PID now belongs to an unrelated process
            if self._signal_group(rec["pgid"], signal.SIGTERM):
                targets.append(rec)
        killed = []
        targets = self._wait_gone(targets, live, time.monotonic() + STOP_GRACE_S)
        if targets:
            for rec in targets:
                self._signal_group(rec["pgid"], signal.SIGKILL)
                killed.append(rec["name"])
            targets = self._wait_gone(targets, live, time.monotonic() + STOP_GRACE_S)
        if targets:
            raise LaunchError("process groups %s survived SIGKILL" %
                              ", ".join(str(r["pgid"]) for r in targets))
        if doc.get("s3_data_dir"):
            shutil.rmtree(doc["s3_data_dir"], ignore_errors=True)
        os.remove(self.pids_path)
        self.children = []
        return killed

    def _wait_gone(self, targets, live, deadline):
        """Polls until the groups in `targets` are gone or `deadline`; returns the survivors."""
        while True:
            for rec in targets:
                proc = live.get(rec["pid"])
                if proc is not None:
                    proc.poll()  # reap our own child, or its zombie keeps the group alive
            targets = [rec for rec in targets if self._group_alive(rec["pgid"])]
            if not targets or time.monotonic() >= deadline:
                return targets
            time.sleep(0.02)

    @staticmethod
    def _signal_group(pgid, sig):
        try:
            os.killpg(pgid, sig)
            return True
        except ProcessLookupError:
            return False

    @staticmethod
    def _group_alive(pgid):
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        # Zombies still count for kill(); a group made only of zombies has exited.
        return any(_is_live_member(pid, pgid) for pid in _pids())

    def read_env(self):
        try:
            with open(self.env_path, "r", encoding="utf-8") as f:
                lines = f.read().splitlines()
        except FileNotFoundError as e:
            raise LaunchError("%s does not exist: run `launcher.py start --state-dir %s` first"
                              % (self.env_path, self.state_dir)) from e
        env = {}
        for line in lines:
            if line and not line.startswith("#") and "=" in line:
                key, value = line.split("=", 1)
                env[key] = value
        return env


def _pids():
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def _is_live_member(pid, pgid):
    try:
        with open("/proc/%d/stat" % pid, "r", encoding="ascii", errors="replace") as f:
            stat = f.read()
    except OSError:
        return False
    fields = stat[stat.rindex(")") + 2:].split()
    return fields[0] != "Z" and int(fields[2]) == pgid  # state, pgrp


def cmd_run(state_dir, argv):
    own_dir = state_dir is None
    if own_dir:
        state_dir = tempfile.mkdtemp(prefix="spotgrid-emulators-")
    launcher = Launcher(state_dir)
    child = None
    old_handlers = {s: signal.signal(s, _on_stop_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    status = 1
    try:
        env = launcher.start()
        child_env = dict(os.environ)
        child_env.update(env)
        child_env["SPOTGRID_TEST_ENV_FILE"] = launcher.env_path
        try:
            with _Uninterrupted():
                child = subprocess.Popen(argv, env=child_env)
        except OSError as e:
            raise LaunchError("cannot run %s: %s" % (shlex.join(argv), e)) from e
        code = child.wait()
        status = code if code >= 0 else 128 - code
    except _Terminated as e:
        if child is not None and child.poll() is None:
            child.send_signal(e.signum)
            try:
                child.wait(timeout=STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        status = 128 + e.signum
    except LaunchError as e:
        print("launcher: %s" % e, file=sys.stderr)
        status = 1
    finally:
        # A second signal must not interrupt the cleanup.
        for s in old_handlers:
            signal.signal(s, signal.SIG_IGN)
        launcher.stop()
        if own_dir:
            shutil.rmtree(state_dir, ignore_errors=True)
        for s, h in old_handlers.items():
            signal.signal(s, h)
    return status


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("start", "stop", "env"):
        p = sub.add_parser(name)
        p.add_argument("--state-dir", required=True)
    p = sub.add_parser("run")
    p.add_argument("--state-dir")
    p.add_argument("argv", nargs=argparse.REMAINDER)
    args = parser.parse_args()

    if args.command == "run":
        argv = args.argv[1:] if args.argv[:1] == ["--"] else args.argv
        if not argv:
            parser.error("run needs a command after --")
        return cmd_run(args.state_dir, argv)

    launcher = Launcher(args.state_dir)
    try:
        if args.command == "start":
            # A start cut short (ctest timeout, Ctrl-C) must not leave half the services up.
            for s in (signal.SIGINT, signal.SIGTERM):
                signal.signal(s, _on_stop_signal)
            try:
                launcher.start()
            except BaseException:
                for s in (signal.SIGINT, signal.SIGTERM):
                    signal.signal(s, signal.SIG_IGN)
                launcher.stop()
                raise
            print("emulators started; env in %s" % launcher.env_path)
        elif args.command == "stop":
            killed = launcher.stop()
            if killed:
                print("launcher: had to SIGKILL %s" % ", ".join(killed), file=sys.stderr)
        elif args.command == "env":
            for key, value in launcher.read_env().items():
                print("export %s=%s" % (key, shlex.quote(value)))
    except LaunchError as e:
        print("launcher: %s" % e, file=sys.stderr)
        return 1
    except _Terminated as e:
        print("launcher: stopped by signal %d" % e.signum, file=sys.stderr)
        return 128 + e.signum
    return 0


if __name__ == "__main__":
    sys.exit(main())
