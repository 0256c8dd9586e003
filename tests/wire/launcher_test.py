#!/usr/bin/python3
"""Tests of tests/harness/launcher.py: it exports the endpoints, and stops exactly its own
processes (also when the command fails or the launcher is told to terminate)."""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
LAUNCHER = os.path.join(os.path.dirname(HERE), "harness", "launcher.py")
PYTHON = "/usr/bin/python3"
ENDPOINT_KEYS = ("AWS_ENDPOINT_URL_SQS", "AWS_ENDPOINT_URL_DYNAMODB", "AWS_ENDPOINT_URL_S3",
                 "AWS_ENDPOINT_URL_EC2", "AWS_ENDPOINT_URL_AUTO_SCALING",
                 "AWS_EC2_METADATA_SERVICE_ENDPOINT", "SPOTGRID_FAKE_IMDS_URL",
                 "SPOTGRID_FAKE_AWS_URL")


def alive(pid):
    """True while `pid` exists and is not a zombie."""
    try:
        with open("/proc/%d/stat" % pid, "r", encoding="ascii", errors="replace") as f:
            stat = f.read()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2:].split()[0] != "Z"


def wait_until(condition, timeout_s=20.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)  # polling a condition with a deadline
    return condition()


def launcher(*args, **kwargs):
    return subprocess.run([PYTHON, LAUNCHER, *args], capture_output=True, text=True,
                          timeout=120, check=False, **kwargs)


def read_env(path):
    with open(path, "r", encoding="utf-8") as f:
        return dict(line.split("=", 1) for line in f.read().splitlines() if "=" in line)


def recorded_pids(state_dir):
    with open(os.path.join(state_dir, "pids"), "r", encoding="utf-8") as f:
        return [c["pid"] for c in json.load(f)["children"]]


class LauncherTest(unittest.TestCase):

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="launcher-test-")
        # An unrelated process the launcher must never touch.
        self.bystander = subprocess.Popen(["sleep", "300"], start_new_session=True)
        self.addCleanup(self.bystander.wait)
        self.addCleanup(self.bystander.kill)
        self.addCleanup(shutil.rmtree, self.tmp, True)

    def test_run_exports_env_and_stops_its_processes_when_command_fails(self):
        out = os.path.join(self.tmp, "seen.json")
        state = os.path.join(self.tmp, "state")
        script = (
            "import json, os, sys\n"
            "env = {k: v for k, v in os.environ.items() if k.startswith(('AWS_', 'SPOTGRID_'))}\n"
            "pids = json.load(open(os.path.join(os.path.dirname("
            "os.environ['SPOTGRID_TEST_ENV_FILE']), 'pids')))\n"
            "json.dump({'env': env, 'pids': [c['pid'] for c in pids['children']]},"
            " open(sys.argv[1], 'w'))\n"
            "sys.exit(7)\n")
        result = launcher("run", "--state-dir", state, "--", PYTHON, "-c", script, out)
        self.assertEqual(result.returncode, 7, result.stderr)
        with open(out, "r", encoding="utf-8") as f:
            seen = json.load(f)
        for key in ENDPOINT_KEYS:
            self.assertRegex(seen["env"][key], r"^http://127\.0\.0\.1:\d+$", key)
        self.assertEqual(seen["env"]["AWS_ACCESS_KEY_ID"], "S3RVER")
        self.assertEqual(seen["env"]["AWS_REGION"], "us-east-1")
        self.assertEqual(len(seen["pids"]), 5)
        for pid in seen["pids"]:
            self.assertFalse(alive(pid), "pid %d survived" % pid)
        self.assertTrue(alive(self.bystander.pid))
        self.assertFalse(os.path.exists(os.path.join(state, "pids")))

    def test_two_launchers_side_by_side_get_different_ports(self):
        dirs = [os.path.join(self.tmp, "a"), os.path.join(self.tmp, "b")]
        procs = [subprocess.Popen([PYTHON, LAUNCHER, "start", "--state-dir", d],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for d in dirs]
        for p in procs:
            _, err = p.communicate(timeout=120)
            self.assertEqual(p.returncode, 0, err)
        pids = [recorded_pids(d) for d in dirs]
        try:
            ports = [{v.rsplit(":", 1)[1] for k, v in read_env(os.path.join(d, "env")).items()
                      if k in ENDPOINT_KEYS} for d in dirs]
            self.assertEqual(len(ports[0]), 5)
            self.assertEqual(len(ports[1]), 5)
            self.assertFalse(ports[0] & ports[1])
        finally:
            for d in dirs:
                result = launcher("stop", "--state-dir", d)
                self.assertEqual(result.returncode, 0, result.stderr)
        for pid in pids[0] + pids[1]:
            self.assertFalse(alive(pid), "pid %d survived" % pid)
        self.assertTrue(alive(self.bystander.pid))

    def test_run_stops_everything_when_the_launcher_gets_sigterm(self):
        state = os.path.join(self.tmp, "state")
        proc = subprocess.Popen([PYTHON, LAUNCHER, "run", "--state-dir", state, "--",
                                 "sleep", "300"], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        self.assertTrue(wait_until(lambda: os.path.exists(os.path.join(state, "env"))))
        pids = recorded_pids(state)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
        self.assertEqual(proc.returncode, 128 + signal.SIGTERM, err)
        for pid in pids:
            self.assertFalse(alive(pid), "pid %d survived" % pid)
        self.assertTrue(alive(self.bystander.pid))

    def test_stop_spares_a_recorded_pid_that_now_belongs_to_another_process(self):
        state = os.path.join(self.tmp, "state")
        os.makedirs(state)
        with open(os.path.join(state, "pids"), "w", encoding="utf-8") as f:
            json.dump({"children": [{"name": "sqs", "pid": self.bystander.pid,
                                     "pgid": self.bystander.pid, "start_time": 1}]}, f)
        result = launcher("stop", "--state-dir", state)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertTrue(alive(self.bystander.pid))


if __name__ == "__main__":
    sys.exit(unittest.main(verbosity=2))
