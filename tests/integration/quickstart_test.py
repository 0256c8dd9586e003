#!/usr/bin/python3
"""The quickstart end to end, non-interactively: scripts/quickstart.py --no-watch with the
binaries of this build, against the emulators of the ctest fixture (so its stack can be
inspected afterwards), then checks the outcome through the controller, independently of what
the quickstart reported:

- every unit of examples/grid.csv SUCCEEDED exactly once: the job's counters and an exact
  recount agree, `controller list --json` has every unit SUCCEEDED, and every unit has exactly
  one attempt that succeeded;
- the reclaimed agent's units were interrupted (not failed) and resumed on another agent from
  their checkpoint: the later attempt's log says "resumed from checkpoint at day N" with N > 0,
  and its merged result row carries resumed_from_day N;
- the merged CSV has one row per grid row, keyed by the grid's ids;
- every agent exited 0 and no process of the run is left.

Environment (set by tests/CMakeLists.txt): SPOTGRID_TEST_ENV_FILE, SPOTGRID_BINARY_DIR,
SPOTGRID_SOURCE_DIR.
"""

import csv
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

SOURCE_DIR = os.environ.get("SPOTGRID_SOURCE_DIR",
                            os.path.dirname(os.path.dirname(os.path.dirname(
                                os.path.abspath(__file__)))))
BINARY_DIR = os.environ.get("SPOTGRID_BINARY_DIR", os.path.join(SOURCE_DIR, "build"))
ENV_FILE = os.environ.get("SPOTGRID_TEST_ENV_FILE", "")
QUICKSTART = os.path.join(SOURCE_DIR, "scripts", "quickstart.py")
GRID = os.path.join(SOURCE_DIR, "examples", "grid.csv")
JOB = "sir-sweep"


def read_env(path):
    env = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            key, sep, value = line.rstrip("\n").partition("=")
            if sep and key:
                env[key] = value
    return env


class QuickstartTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not ENV_FILE or not os.path.exists(ENV_FILE):
            raise RuntimeError("no emulator env file (SPOTGRID_TEST_ENV_FILE=%r): run under the "
                               "`emulators` ctest fixture" % ENV_FILE)
        cls.tmp = tempfile.mkdtemp(prefix="spotgrid-quickstart-test-")
        cls.stack = "qs-%d" % os.getpid()
        cls.report_path = os.path.join(cls.tmp, "report.json")
        cls.out = os.path.join(cls.tmp, "out")
        cls.quickstart = subprocess.run(
            ["/usr/bin/python3", QUICKSTART, "--build-dir", BINARY_DIR, "--no-watch",
             "--emulators-env", ENV_FILE, "--stack", cls.stack, "--out", cls.out,
             "--json", cls.report_path],
            capture_output=True, text=True, timeout=420)
        sys.stderr.write("---- quickstart output:\n%s\n---- its stderr:\n%s\n" %
                         (cls.quickstart.stdout[-6000:], cls.quickstart.stderr[-4000:]))
        cls.report = {}
        if os.path.exists(cls.report_path):
            with open(cls.report_path, encoding="utf-8") as f:
                cls.report = json.load(f)
        cls.env = dict(os.environ)
        cls.env.update(read_env(ENV_FILE))
        cls.env["SPOTGRID_STACK"] = cls.stack
        with open(GRID, encoding="utf-8", newline="") as f:
            cls.grid = list(csv.DictReader(f))

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def controller(self, *args):
        done = subprocess.run([os.path.join(BINARY_DIR, "controller", "controller"), *args],
                              env=self.env, capture_output=True, text=True, timeout=60)
        self.assertEqual(done.returncode, 0, "controller %s: %s" % (" ".join(args), done.stderr))
        return done.stdout

    def controller_json(self, *args):
        return json.loads(self.controller(*args, "--json"))

    def test_quickstart_exits_zero_and_leaves_no_process(self):
        self.assertEqual(self.quickstart.returncode, 0, self.quickstart.stderr)
        self.assertGreater(self.report.get("processes_started", 0), 3)
        self.assertEqual(self.report.get("processes_left"), [])
        self.assertEqual(self.report.get("agents"), {"agent-1": 0, "agent-2": 0, "agent-3": 0})
        # Nothing started for this stack survives: agents carry it on their command line.
        survivors = []
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    with open("/proc/%s/cmdline" % entry, "rb") as f:
                        argv = f.read().split(b"\0")
                except OSError:
                    continue
                if self.stack.encode() in argv:
                    survivors.append(int(entry))
        self.assertEqual(survivors, [])

    def test_every_unit_succeeded_exactly_once_by_counters_and_units(self):
        ids = sorted(row["id"] for row in self.grid)
        expected = {"total": len(ids), "queued": 0, "running": 0, "succeeded": len(ids),
                    "failed": 0, "cancelled": 0}
        self.assertEqual(self.controller_json("progress", "--job", JOB)["counts"], expected)
        self.assertEqual(self.controller_json("progress", "--job", JOB, "--exact")["counts"],
                         expected)
        units = self.controller_json("list", "--job", JOB)
        self.assertEqual(sorted(u["unit"] for u in units), ids)
        for unit in units:
            self.assertEqual(unit["state"], "SUCCEEDED", unit)
            self.assertEqual(unit["failures"], 0, unit)
            shown = self.controller_json("show", unit["unit"], "--job", JOB)
            reasons = [a["reason"] for a in shown["attempts"]]
            self.assertEqual(reasons.count("succeeded"), 1, shown)
            self.assertEqual(reasons[-1], "succeeded", shown)
            # Every earlier attempt was an interruption, never a failure.
            self.assertEqual(set(reasons[:-1]) - {"interrupted"}, set(), shown)
            self.assertEqual(len(reasons) - 1, unit["interruptions"], shown)

    def test_reclaimed_units_resumed_elsewhere_from_their_checkpoint(self):
        victim = self.report.get("victim", {}).get("instance")
        self.assertTrue(victim, "the quickstart reclaimed no agent")
        interrupted = [u for u in self.controller_json("list", "--job", JOB)
                       if u["interruptions"] > 0]
        self.assertGreaterEqual(len(interrupted), 1, "no unit was interrupted")
        self.assertEqual(sorted(u["unit"] for u in interrupted),
                         sorted(self.report.get("interrupted", {})))
        merged = self.merged_rows()
        for unit in interrupted:
            shown = self.controller_json("show", unit["unit"], "--job", JOB)
            first, last = shown["attempts"][0], shown["attempts"][-1]
            self.assertTrue(first["worker"].startswith(victim + "/"), first)
            self.assertEqual(first["reason"], "interrupted", first)
            self.assertFalse(last["worker"].startswith(victim + "/"), last)
            first_log = self.controller("logs", unit["unit"], "--job", JOB, "--attempt", "1")
            self.assertIn("SIGTERM: checkpoint saved at day", first_log)
            saved_day = int(re.search(r"checkpoint saved at day (\d+)", first_log).group(1))
            self.assertGreater(saved_day, 0)
            log = self.controller("logs", unit["unit"], "--job", JOB, "--attempt",
                                  str(last["n"]))
            self.assertIn("resumed from checkpoint at day %d " % saved_day, log)
            self.assertEqual(merged[unit["unit"]]["resumed_from_day"], str(saved_day))

    def test_merged_csv_has_one_row_per_grid_row(self):
        merged = self.merged_rows()
        self.assertEqual(sorted(merged), sorted(row["id"] for row in self.grid))
        interrupted = set(self.report.get("interrupted", {}))
        for row in self.grid:
            got = merged[row["id"]]
            self.assertEqual((got["beta"], got["gamma"], got["seed"]),
                             (row["beta"], row["gamma"], row["seed"]))
            self.assertTrue(0 < float(got["attack_rate"]) <= 1, got)
            if row["id"] not in interrupted:
                self.assertEqual(got["resumed_from_day"], "0", got)

    def merged_rows(self):
        path = os.path.join(self.out, "merged.csv")
        self.assertTrue(os.path.exists(path), "no merged.csv")
        with open(path, encoding="utf-8", newline="") as f:
            rows = list(csv.DictReader(f))
        by_unit = {}
        for row in rows:
            self.assertNotIn(row["unit"], by_unit, "unit %s twice in merged.csv" % row["unit"])
            by_unit[row["unit"]] = row
        self.assertEqual(len(rows), len(self.grid))
        return by_unit


if __name__ == "__main__":
    unittest.main(verbosity=2)
