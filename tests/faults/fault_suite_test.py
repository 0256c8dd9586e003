#!/usr/bin/python3
"""ctest `faults.fault_suite`: tests/faults/fault_suite.py at CI size.

60 units on 3 agents x 2 slots, default fault rate (8 % of the agents' SQS, DynamoDB and S3
requests), chaos every 3-6 s, seed 1: a few minutes on a 2-core machine. The suite starts its
own emulators, proxies and agents in a temporary directory and stops them all.

Environment:
  SPOTGRID_BINARY_DIR            the build whose agent/agent and controller/controller run
                                 (set by tests/CMakeLists.txt)
  SPOTGRID_FAULT_SUITE_UNITS     a larger run: this many units (and a longer duration limit)
  SPOTGRID_FAULT_SUITE_AGENTS    ... on this many agents
  SPOTGRID_FAULT_SUITE_SLOTS, SPOTGRID_FAULT_SUITE_SEED, SPOTGRID_FAULT_SUITE_RATE
  SPOTGRID_FAULT_SUITE_JSON      also write the figures to this file

Each check is its own test case, so the ctest log names what failed; the failure message
carries the evidence (unit ids, ledger records, record lines, agent log lines).
"""

import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fault_suite  # noqa: E402


def env_int(name, default):
    value = os.environ.get(name, "")
    return int(value) if value.strip() else default


class FaultSuiteTest(unittest.TestCase):
    figures = None

    @classmethod
    def setUpClass(cls):
        units = env_int("SPOTGRID_FAULT_SUITE_UNITS", 60)
        agents = env_int("SPOTGRID_FAULT_SUITE_AGENTS", 3)
        argv = ["--units", str(units), "--agents", str(agents),
                "--slots", str(env_int("SPOTGRID_FAULT_SUITE_SLOTS", 2)),
                "--seed", str(env_int("SPOTGRID_FAULT_SUITE_SEED", 1)),
                "--fault-rate", os.environ.get("SPOTGRID_FAULT_SUITE_RATE", "") or "1",
                "--chaos-interval", "3:6",
                # Generous; a larger run needs `ctest --timeout` beyond the 600 s registered.
                "--duration-limit", str(max(200, units * 3))]
        if os.environ.get("SPOTGRID_FAULT_SUITE_JSON"):
            argv += ["--json", os.environ["SPOTGRID_FAULT_SUITE_JSON"]]
        args = fault_suite.parse_args(argv)
        cls.figures = fault_suite.run_suite(args)
        fault_suite.print_summary(cls.figures, sys.stderr)
        if args.json:
            import json
            with open(args.json, "w") as f:
                json.dump(cls.figures, f, indent=1, default=str)

    def failures_of(self, *checks):
        return [f["text"] for f in self.figures.get("failures", []) if f["check"] in checks]

    def check(self, *checks):
        found = self.failures_of(*checks)
        self.assertFalse(found, "\n\n".join(found))

    def test_run_completed(self):
        self.check("run", "setup")

    def test_no_unit_lost(self):
        self.check("lost")
        self.assertEqual(self.figures.get("lost_units"), 0)

    def test_no_unit_double_counted(self):
        self.check("double-count")
        self.assertEqual(self.figures.get("double_counted_units"), 0)

    def test_outputs_come_from_the_succeeded_attempt(self):
        self.check("outputs")
        self.assertEqual(self.figures.get("output_mismatches"), 0)

    def test_no_unit_ran_twice_at_once(self):
        self.check("overlap")
        self.assertEqual(self.figures.get("overlapping_executions"), 0)

    def test_no_agent_outlived_its_deadline(self):
        self.check("drain")
        self.assertEqual(self.figures.get("drain_overruns"), 0)

    def test_no_process_left(self):
        self.check("processes")
        self.assertEqual(self.figures.get("processes_left"), [])

    def test_chaos_and_faults_happened(self):
        # The run proves something only if the fleet and the network were actually hostile.
        chaos = self.figures.get("chaos") or {}
        self.assertGreater(sum(chaos.values()), 0, chaos)
        faults = self.figures.get("faults") or {}
        self.assertEqual(sorted(faults), ["dynamodb", "s3", "sqs"])
        self.assertTrue(all(v["faults"] > 0 for v in faults.values()), faults)


if __name__ == "__main__":
    unittest.main(verbosity=2)
