"""The emulators for a benchmark run: started with tests/harness/launcher.py, stopped after."""
import contextlib
import json
import os
import subprocess
import time

LAUNCHER = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                        "tests", "harness", "launcher.py")


@contextlib.contextmanager
def running_emulators(tmp):
    """Yields (env, pids): the process environment plus the launcher's endpoints and test
    credentials, and the pid of each emulator by name. Stops exactly what it started."""
    state = os.path.join(tmp, "emu")
    subprocess.run(["/usr/bin/python3", LAUNCHER, "start", "--state-dir", state], check=True,
                   stdout=subprocess.DEVNULL)
    try:
        env = dict(os.environ)
        with open(os.path.join(state, "env")) as f:
            for line in f:
                key, _, value = line.rstrip("\n").partition("=")
                if key:
                    env[key] = value
        with open(os.path.join(state, "pids")) as f:
            pids = {p["name"]: p["pid"] for p in json.load(f)["children"]}
        yield env, pids
    finally:
        subprocess.run(["/usr/bin/python3", LAUNCHER, "stop", "--state-dir", state],
                       stdout=subprocess.DEVNULL)


def wait_until(condition, deadline_s, interval=0.01):
    """Polls `condition` until it is true (True) or `deadline_s` has passed (False)."""
    end = time.monotonic() + deadline_s
    while not condition():
        if time.monotonic() > end:
            return False
        time.sleep(interval)  # polling a condition with a deadline
    return True
