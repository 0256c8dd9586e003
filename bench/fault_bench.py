#!/usr/bin/python3
"""The fault-injection suite at scale: tests/faults/fault_suite.py at 1x and 2x fault rates.

Usage: bench/fault_bench.py BUILD_DIR [--units 300] [--agents 4] [--slots 2] [--rates 1,2]
                            [--seed 1] [--chaos-interval 3:6] [--json FILE]

Each rate is one full run of the suite (its own emulators, fault proxies, agents and chaos
loop; see the suite's docstring), one after the other, so the runs do not share the 2 cores.
Prints one table, a column per rate:
  lost units, double-counted units, output mismatches, re-executions per unit (command starts /
  units), ledger claims, "lease lost" lines and how many were spurious (no later attempt by
  another worker in the ledger), overlapping executions, drain overruns, processes left, the
  faults injected and chaos events, the run's wall time and the suite's verdict, followed by
  each failed check's first lines. The suite's exit status does not stop the bench: every rate
  runs. Exit status: 0 when every run passed, 1 otherwise.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SUITE = os.path.join(os.path.dirname(HERE), "tests", "faults", "fault_suite.py")

ROWS = [
    ("lost units", lambda f: f.get("lost_units")),
    ("double-counted units", lambda f: f.get("double_counted_units")),
    ("output mismatches", lambda f: f.get("output_mismatches")),
    ("re-executions per unit", lambda f: f.get("reexecutions_per_unit")),
    ("ledger claims", lambda f: f.get("ledger_claims")),
    ("lease-lost lines", lambda f: f.get("lease_lost_lines")),
    ("  of which spurious", lambda f: f.get("spurious_lease_lost")),
    ("overlapping executions", lambda f: f.get("overlapping_executions")),
    ("drain overruns", lambda f: f.get("drain_overruns")),
    ("processes left", lambda f: None if "processes_left" not in f else
     len(f.get("processes_left") or []) + len(f.get("processes_left_by_agents") or [])),
    ("faults injected", lambda f: sum(v["faults"] for v in (f.get("faults") or {}).values())),
    ("requests via proxies", lambda f: sum(v["requests"] for v in (f.get("faults") or {}).values())),
    ("chaos kill/term/notice", lambda f: "/".join(str((f.get("chaos") or {}).get(k, "-"))
                                                  for k in ("kill", "term", "notice"))),
    ("agents started", lambda f: f.get("agents_started")),
    ("run time (s)", lambda f: f.get("run_s")),
    ("wall time (s)", lambda f: f.get("bench_wall_s")),
    ("verdict", lambda f: "PASS" if f.get("passed") else
     "FAIL: " + ",".join(sorted({x["check"] for x in f.get("failures", [])}))),
]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("build_dir")
    ap.add_argument("--units", type=int, default=300)
    ap.add_argument("--agents", type=int, default=4)
    ap.add_argument("--slots", type=int, default=2)
    ap.add_argument("--rates", default="1,2")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--chaos-interval", default="3:6")
    ap.add_argument("--duration-limit", type=float, default=1200)
    ap.add_argument("--json", help="write every run's figures to this file")
    args = ap.parse_args()

    results = {}
    for rate in [r.strip() for r in args.rates.split(",") if r.strip()]:
        with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as out:
            path = out.name
        argv = ["/usr/bin/python3", SUITE, "--build-dir", args.build_dir,
                "--units", str(args.units), "--agents", str(args.agents),
                "--slots", str(args.slots), "--fault-rate", rate, "--seed", str(args.seed),
                "--chaos-interval", args.chaos_interval,
                "--duration-limit", str(args.duration_limit), "--json", path]
        print("== fault rate x%s: %s" % (rate, " ".join(argv[1:])), flush=True)
        start = time.monotonic()
        done = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        wall = time.monotonic() - start
        try:
            with open(path) as f:
                figures = json.load(f)
        except (OSError, ValueError):
            figures = {"passed": False, "failures": [{"check": "run", "text": done.stdout[-3000:]}]}
        os.remove(path)
        figures["bench_wall_s"] = round(wall, 1)
        results[rate] = figures
        # The suite's own summary table (its failures' evidence follows in the table below).
        lines = done.stdout.splitlines()
        head = next((i for i, line in enumerate(lines) if line.startswith("units / agents")),
                    max(0, len(lines) - 25))
        print("\n".join(lines[head:head + 19]), flush=True)

    rates = list(results)
    print("\nfault_bench: %d units on %d agents x %d slots, seed %d" % (
        args.units, args.agents, args.slots, args.seed))
    header = ["figure"] + ["x%s (%.0f %% of requests)" % (
        r, 100 * results[r].get("fault_rate_per_request", 0)) for r in rates]
    table = [header] + [[name] + [str(get(results[r])) for r in rates] for name, get in ROWS]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for i, row in enumerate(table):
        print("  ".join(cell.ljust(widths[j]) for j, cell in enumerate(row)))
        if i == 0:
            print("  ".join("-" * w for w in widths))
    for r in rates:
        for failure in results[r].get("failures", []):
            lines = failure["text"].splitlines()
            print("\nx%s FAILED [%s] %s" % (r, failure["check"], "\n  ".join(lines[:12])))
            if len(lines) > 12:
                print("  ... (%d more lines; see --json)" % (len(lines) - 12))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1, default=str)
    return 0 if all(f.get("passed") for f in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
