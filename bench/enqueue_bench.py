#!/usr/bin/python3
"""Enqueue benchmark: `controller enqueue` against a plain boto3 script, same grid, same run.

Usage: bench/enqueue_bench.py BUILD_DIR [--rows N]
Starts the emulators (tests/harness/launcher.py), writes a grid of N rows (default 50,000),
enqueues it with our controller and then with bench/peers/boto3_enqueue.py, and reports for
each: wall time, the client's CPU time (user + system, from wait4), CPU per unit, and the
emulators' CPU over the same interval (to show whose work bounds the wall time).
"""
import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time

from emulators import running_emulators

HERE = os.path.dirname(os.path.abspath(__file__))
TEMPLATE = "python3 simulate.py --alpha {alpha} --beta {beta} --seed {seed}"


def proc_cpu_seconds(pids):
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
        except (OSError, IndexError, ValueError):
            pass
    return total


def timed(cmd, env, emulator_pids):
    emu0 = proc_cpu_seconds(emulator_pids)
    start = time.monotonic()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.monotonic() - start
    err = proc.stderr.read().decode(errors="replace")
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"enqueue_bench: {cmd[0]} failed:\n{err}")
    return {"wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime,
            "emulator_cpu_s": proc_cpu_seconds(emulator_pids) - emu0}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build_dir")
    ap.add_argument("--rows", type=int, default=50000)
    ap.add_argument("--json")
    args = ap.parse_args()
    controller = os.path.join(args.build_dir, "controller", "controller")

    with tempfile.TemporaryDirectory(prefix="spotgrid-enqueue-bench-") as tmp, \
            running_emulators(tmp) as (env, emulator_pids):
        pids = [emulator_pids["sqs"], emulator_pids["dynamodb"]]
        grid = os.path.join(tmp, "sweep.csv")
        with open(grid, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["alpha", "beta", "seed"])
            for i in range(args.rows):
                w.writerow([f"{(i % 100) * 0.01:.2f}", str(i % 7), str(i)])

        subprocess.run([controller, "init", "--stack", "benchours", "--bucket", "bench-ours"],
                       env=env, check=True, stdout=subprocess.DEVNULL)
        ours = timed([controller, "enqueue", grid, "--stack", "benchours", "--job", "sweep",
                      "--command", TEMPLATE], env, pids)

        # The peer gets its own queue and table, created outside the timed part.
        subprocess.run([controller, "init", "--stack", "benchpeer", "--bucket", "bench-peer"],
                       env=env, check=True, stdout=subprocess.DEVNULL)
        queue_url = json.loads(subprocess.run(
            ["/usr/bin/aws", "sqs", "get-queue-url", "--queue-name", "spotgrid-benchpeer",
             "--endpoint-url", env["AWS_ENDPOINT_URL_SQS"], "--output", "json"],
            env=env, check=True, capture_output=True, text=True).stdout)["QueueUrl"]
        peer = timed(["/usr/bin/python3", os.path.join(HERE, "peers", "boto3_enqueue.py"), grid,
                      queue_url, "spotgrid-benchpeer"], env, pids)

    n = args.rows
    print(f"enqueue of {n:,} units against the emulators (local-aws-sqs, dynalite)")
    print(f"| {'client':<22} | {'wall':>8} | {'client CPU':>10} | {'CPU/unit':>9} | {'emulators CPU':>13} |")
    print(f"|{'-' * 24}|{'-' * 10}|{'-' * 12}|{'-' * 11}|{'-' * 15}|")
    for name, r in (("spotgrid controller", ours), ("boto3 script", peer)):
        print(f"| {name:<22} | {r['wall_s']:>7.1f}s | {r['cpu_s']:>9.2f}s | "
              f"{r['cpu_s'] / n * 1e6:>7.1f}us | {r['emulator_cpu_s']:>12.1f}s |")
    print(f"CPU per unit: boto3 / spotgrid = {peer['cpu_s'] / ours['cpu_s']:.1f}x; "
          f"wall: {peer['wall_s'] / ours['wall_s']:.1f}x")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"rows": n, "spotgrid": ours, "boto3": peer}, f, indent=2)


if __name__ == "__main__":
    main()
