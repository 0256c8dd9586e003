#!/usr/bin/python3
"""Enqueue benchmark: `controller enqueue` against a plain boto3 script, same grid, same run.

Usage: bench/enqueue_bench.py BUILD_DIR [--rows N] [--rtt-ms MS [--via-proxy]] [--json F]
Starts the emulators (tests/harness/launcher.py), writes a grid of N rows (default 50,000),
enqueues it with our controller and then with bench/peers/boto3_enqueue.py, and reports for
each: wall time, the client's CPU time (user + system, from wait4), CPU per unit, and the
emulators' CPU over the same interval (to show whose work bounds the wall time).

--rtt-ms MS puts bench/delay_proxy.py (MS/2 each way, plus a round trip for each new
connection's handshake) in front of local-aws-sqs and dynalite, and both clients enqueue
through it: the figure at a real round-trip time (20 ms is a laptop to a nearby AWS region).
The peer script is unchanged; only its endpoint variables point at the proxies. The report
then also gives the proxies' CPU, how late they delivered chunks (they are not the
bottleneck while that stays near 1 ms), and the in-flight window each client reached: the
most requests outstanding at once, as the proxies saw them. --rtt-ms 0 --via-proxy runs
through the proxies with no delay, to compare with a direct run (the proxies' own cost).
"""
import argparse
import contextlib
import csv
import json
import os
import subprocess
import sys
import tempfile
import time

from delay_proxy import running_delay_proxies
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


def timed(cmd, env, emulator_pids, proxy_pids=()):
    emu0 = proc_cpu_seconds(emulator_pids)
    proxy0 = proc_cpu_seconds(proxy_pids)
    start = time.monotonic()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.monotonic() - start
    err = proc.stderr.read().decode(errors="replace")
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"enqueue_bench: {cmd[0]} failed:\n{err}")
    return {"wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime,
            "emulator_cpu_s": proc_cpu_seconds(emulator_pids) - emu0,
            "proxy_cpu_s": proc_cpu_seconds(proxy_pids) - proxy0}


@contextlib.contextmanager
def maybe_proxied(env, args, tmp):
    """Yields (env for the timed clients, proxy info or None)."""
    if args.rtt_ms <= 0 and not args.via_proxy:
        yield env, None
        return
    endpoints = {"sqs": env["AWS_ENDPOINT_URL_SQS"], "dynamodb": env["AWS_ENDPOINT_URL_DYNAMODB"]}
    with running_delay_proxies(endpoints, args.rtt_ms / 2.0, tmp) as (urls, info):
        proxied = dict(env)
        proxied["AWS_ENDPOINT_URL_SQS"] = urls["sqs"]
        proxied["AWS_ENDPOINT_URL_DYNAMODB"] = urls["dynamodb"]
        yield proxied, info


def run_one(cmd, env, emulator_pids, tmp, args):
    """One timed client run, through its own proxies when asked (so the proxies' stats, peak
    in-flight requests included, are that client's alone)."""
    with maybe_proxied(env, args, tmp) as (run_env, info):
        proxy_pids = list(info["pids"].values()) if info else []
        result = timed(cmd, run_env, emulator_pids, proxy_pids)
    if info:
        result["proxies"] = info["stats"]
        result["window"] = {name: s.get("peak_requests_in_flight")
                            for name, s in info["stats"].items()}
    return result


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build_dir")
    ap.add_argument("--rows", type=int, default=50000)
    ap.add_argument("--rtt-ms", type=float, default=0.0,
                    help="enqueue through delay proxies adding this round-trip time")
    ap.add_argument("--via-proxy", action="store_true",
                    help="go through the proxies even with --rtt-ms 0 (their own cost)")
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
        ours = run_one([controller, "enqueue", grid, "--stack", "benchours", "--job", "sweep",
                        "--command", TEMPLATE], env, pids, tmp, args)

        # The peer gets its own queue and table, created outside the timed part.
        subprocess.run([controller, "init", "--stack", "benchpeer", "--bucket", "bench-peer"],
                       env=env, check=True, stdout=subprocess.DEVNULL)
        queue_url = json.loads(subprocess.run(
            ["/usr/bin/aws", "sqs", "get-queue-url", "--queue-name", "spotgrid-benchpeer",
             "--endpoint-url", env["AWS_ENDPOINT_URL_SQS"], "--output", "json"],
            env=env, check=True, capture_output=True, text=True).stdout)["QueueUrl"]
        peer = run_one(["/usr/bin/python3", os.path.join(HERE, "peers", "boto3_enqueue.py"),
                        grid, queue_url, "spotgrid-benchpeer"], env, pids, tmp, args)

    n = args.rows
    where = "directly"
    if args.rtt_ms > 0 or args.via_proxy:
        where = f"through delay proxies adding {args.rtt_ms:g} ms per round trip"
    print(f"enqueue of {n:,} units against the emulators (local-aws-sqs, dynalite), {where}")
    print(f"| {'client':<22} | {'wall':>8} | {'client CPU':>10} | {'CPU/unit':>9} | {'emulators CPU':>13} |")
    print(f"|{'-' * 24}|{'-' * 10}|{'-' * 12}|{'-' * 11}|{'-' * 15}|")
    for name, r in (("spotgrid controller", ours), ("boto3 script", peer)):
        print(f"| {name:<22} | {r['wall_s']:>7.1f}s | {r['cpu_s']:>9.2f}s | "
              f"{r['cpu_s'] / n * 1e6:>7.1f}us | {r['emulator_cpu_s']:>12.1f}s |")
    print(f"CPU per unit: boto3 / spotgrid = {peer['cpu_s'] / ours['cpu_s']:.1f}x; "
          f"wall: {peer['wall_s'] / ours['wall_s']:.1f}x")
    if "proxies" in ours:
        for name, r in (("spotgrid controller", ours), ("boto3 script", peer)):
            parts = []
            for service in ("dynamodb", "sqs"):
                s = r["proxies"].get(service, {})
                parts.append(f"{service}: {s.get('peak_requests_in_flight', '?')} requests in "
                             f"flight at most over {s.get('connections', '?')} connections, "
                             f"chunks late p99 <= {s.get('lateness_p99_us_at_most', 0) / 1000:g} "
                             f"ms (max {s.get('lateness_max_us', 0) / 1000:.1f} ms)")
            print(f"{name}: proxies CPU {r['proxy_cpu_s']:.2f}s; " + "; ".join(parts))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"rows": n, "rtt_ms": args.rtt_ms,
                       "via_proxy": args.rtt_ms > 0 or args.via_proxy,
                       "spotgrid": ours, "boto3": peer}, f, indent=2)


if __name__ == "__main__":
    main()
