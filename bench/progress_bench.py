#!/usr/bin/python3
"""progress benchmark: `controller progress` on a 100,000-unit job, beside what a user would
otherwise run to learn the same counts (the aws CLI counting the units with a Scan).

Usage: bench/progress_bench.py BUILD_DIR [--units N] [--json FILE]
Starts the emulators, enqueues an N-unit job (default 100,000) with the controller, then times
`controller progress --json` (11 runs, process start included) and
`aws dynamodb scan --select COUNT` filtered on state (3 runs). Target: progress under 200 ms.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

from emulators import running_emulators



def timed_ms(cmd, env):
    start = time.monotonic()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    elapsed = (time.monotonic() - start) * 1000
    if done.returncode != 0:
        sys.exit(f"progress_bench: {' '.join(cmd[:3])} failed:\n{done.stderr}")
    return elapsed, done.stdout


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build_dir")
    ap.add_argument("--units", type=int, default=100000)
    ap.add_argument("--json", help="also write the figures to this file")
    args = ap.parse_args()
    controller = os.path.join(args.build_dir, "controller", "controller")

    with tempfile.TemporaryDirectory(prefix="spotgrid-progress-bench-") as tmp, \
            running_emulators(tmp) as (env, _):
        env["SPOTGRID_STACK"] = "benchprogress"
        grid = os.path.join(tmp, "big.csv")
        with open(grid, "w") as f:
            f.write("seed\n" + "".join(f"{i}\n" for i in range(1, args.units + 1)))
        subprocess.run([controller, "init", "--bucket", "bench-progress"], env=env, check=True,
                       stdout=subprocess.DEVNULL)
        subprocess.run([controller, "enqueue", grid, "--command", "echo {seed}"], env=env,
                       check=True, stdout=subprocess.DEVNULL)

        ours = []
        for _ in range(11):
            ms, out = timed_ms([controller, "progress", "--job", "big", "--json"], env)
            assert json.loads(out)["counts"]["total"] == args.units
            ours.append(ms)
        peer = []
        for _ in range(3):
            ms, _ = timed_ms(["/usr/bin/aws", "dynamodb", "scan", "--table-name",
                              "spotgrid-benchprogress", "--select", "COUNT",
                              "--filter-expression", "#s = :q",
                              "--expression-attribute-names", '{"#s":"state"}',
                              "--expression-attribute-values", '{":q":{"S":"QUEUED"}}',
                              "--endpoint-url", env["AWS_ENDPOINT_URL_DYNAMODB"],
                              "--output", "json"], env)
            peer.append(ms)

    ours.sort()
    med, p90 = statistics.median(ours), ours[int(len(ours) * 0.9) - 1]
    peer_med = statistics.median(peer)
    print(f"progress of a {args.units:,}-unit job against dynalite (process start included)")
    print(f"| {'client':<38} | {'median':>9} | {'p90':>9} |")
    print(f"|{'-' * 40}|{'-' * 11}|{'-' * 11}|")
    print(f"| {'controller progress --json':<38} | {med:>7.0f}ms | {p90:>7.0f}ms |")
    print(f"| {'aws dynamodb scan --select COUNT':<38} | {peer_med:>7.0f}ms | {max(peer):>7.0f}ms |")
    print(f"ratio (scan / progress, median): {peer_med / med:.0f}x; target < 200 ms: "
          f"{'met' if med < 200 else 'NOT met'}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"units": args.units, "ours_ms": ours, "peer_ms": peer,
                       "ours_median_ms": med, "ours_p90_ms": p90, "peer_median_ms": peer_med},
                      f, indent=2)


if __name__ == "__main__":
    main()
