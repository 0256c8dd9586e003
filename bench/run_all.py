#!/usr/bin/python3
"""Runs every spotgrid benchmark and its peer in the same run, and prints one table.

Usage: bench/run_all.py BUILD_DIR [--quick] [--only NAME,...] [--json FILE]

Each row is one figure of ours beside the same figure for the peer a user would otherwise use
(botocore, which boto3 and the aws CLI run; the aws CLI itself; a plain boto3 script or worker
loop), both measured now on this machine, and the ratio: how many times better spotgrid is
(peer / ours for times, sizes and CPU; below 1x means the peer is better).

The parts, each also runnable alone (see its docstring):
  micro       Google Benchmark programs (sigv4_bench, json_encoding_bench) vs
              bench/peers/botocore_peer.py
  enqueue     bench/enqueue_bench.py: `controller enqueue` vs a boto3 batch script
  enqueue_rtt the same through bench/delay_proxy.py at a 20 ms round trip (20,000 units): the
              wall time where round trips, not the emulators, bound the peer; and the in-flight
              window (requests outstanding at once) spotgrid reached
  progress    bench/progress_bench.py: `controller progress` vs `aws dynamodb scan`
  agent       bench/agent_bench.py: idle footprint and dispatch latency vs a boto3 worker loop
              (bench/peers/boto3_worker.py), AWS requests per unit
  sync        bench/dir_sync_bench.py: DirectorySync vs `aws s3 sync`
  checkpoint  bench/checkpoint_flush_bench.py: a drain's checkpoint upload vs `aws s3 sync`
Every part that needs AWS starts its own emulators (tests/harness/launcher.py) and stops them.
--quick runs smaller sizes (a few minutes instead of about twelve), for a smoke run; the figures
the README quotes come from a full run.
"""
import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
PARTS = ["micro", "enqueue", "enqueue_rtt", "progress", "agent", "sync", "checkpoint"]

# (label, our executable, our benchmark name, peer key, peer name)
MICRO_ROWS = [
    ("SigV4: hash + sign a DynamoDB PutItem", "sigv4_bench", "BM_HashAndSignDynamoDbPutItem",
     "sign_dynamodb_json", "botocore SigV4Auth"),
    ("SigV4: sign an S3 PUT", "sigv4_bench", "BM_SignS3PutUploadPart",
     "sign_s3_put", "botocore S3SigV4Auth"),
    ("encode SendMessageBatch (10 entries)", "json_encoding_bench", "BM_EncodeSendMessageBatch",
     "encode_send_message_batch", "botocore serializer"),
    ("encode BatchWriteItem (25 items)", "json_encoding_bench", "BM_EncodeBatchWriteItem",
     "encode_batch_write_item", "botocore serializer"),
]

# Sizes per part: (full, quick).
SIZES = {
    "enqueue": (["--rows", "50000"], ["--rows", "5000"]),
    "enqueue_rtt": (["--rows", "20000", "--rtt-ms", "20"], ["--rows", "5000", "--rtt-ms", "20"]),
    "progress": (["--units", "100000"], ["--units", "10000"]),
    # Over TLS, as against AWS: TLS state is part of what an idle agent holds.
    "agent": (["--tls", "--idle-seconds", "60", "--latency-units", "30", "--request-units", "100"],
              ["--tls", "--idle-seconds", "15", "--latency-units", "8", "--request-units", "20"]),
    "sync": (["--files", "2000", "--repeat", "3"], ["--files", "300", "--repeat", "1"]),
    "checkpoint": (["--mib", "64", "--files", "4", "--repeat", "3"],
                   ["--mib", "16", "--files", "4", "--repeat", "1"]),
}
SCRIPTS = {"enqueue": "enqueue_bench.py", "enqueue_rtt": "enqueue_bench.py",
           "progress": "progress_bench.py",
           "agent": "agent_bench.py", "sync": "dir_sync_bench.py",
           "checkpoint": "checkpoint_flush_bench.py"}


# --- formatting ----------------------------------------------------------------------------------

def fmt_ns(ns):
    if ns >= 1e9:
        return f"{ns / 1e9:.2f} s"
    if ns >= 1e6:
        return f"{ns / 1e6:.2f} ms"
    if ns >= 1e3:
        return f"{ns / 1e3:.2f} us"
    return f"{ns:.0f} ns"


def fmt_ratio(ratio):
    if ratio is None:
        return ""
    return f"{ratio:.0f}x" if ratio >= 10 else f"{ratio:.1f}x"


class Table:
    def __init__(self):
        self.rows = []

    def add(self, label, ours, peer, peer_name, ratio, raw=None):
        self.rows.append({"figure": label, "spotgrid": ours, "peer": peer, "peer_is": peer_name,
                          "ratio": fmt_ratio(ratio), "ratio_value": ratio, "raw": raw})

    def missing(self, label, why):
        self.rows.append({"figure": label, "spotgrid": "failed", "peer": "", "peer_is": why,
                          "ratio": "", "ratio_value": None, "raw": None})

    def render(self):
        cols = [("figure", "figure", "<"), ("spotgrid", "spotgrid", ">"), ("peer", "peer", ">"),
                ("peer_is", "peer is", "<"), ("ratio", "ratio", ">")]
        widths = {k: max(len(title), *(len(str(r[k])) for r in self.rows)) for k, title, _ in cols}
        lines = ["| " + " | ".join(f"{title:{a}{widths[k]}}" for k, title, a in cols) + " |",
                 "|" + "|".join("-" * (widths[k] + 2) for k, _, _ in cols) + "|"]
        for r in self.rows:
            lines.append("| " + " | ".join(f"{str(r[k]):{a}{widths[k]}}" for k, _, a in cols)
                         + " |")
        return "\n".join(lines)


# --- the parts -----------------------------------------------------------------------------------

def run_micro(build_dir, table, _quick):
    ours = {}
    for exe in sorted({r[1] for r in MICRO_ROWS}):
        path = os.path.join(build_dir, "bench", exe)
        if not os.path.exists(path):
            raise RuntimeError(f"{path} is missing (build the bench targets first)")
        out = subprocess.run([path, "--benchmark_format=json", "--benchmark_min_time=0.3"],
                             check=True, capture_output=True, text=True).stdout
        for b in json.loads(out)["benchmarks"]:
            unit = {"ns": 1, "us": 1e3, "ms": 1e6, "s": 1e9}[b.get("time_unit", "ns")]
            ours[(exe, b["name"])] = b["cpu_time"] * unit
    peer = json.loads(subprocess.run(
        ["/usr/bin/python3", os.path.join(HERE, "peers", "botocore_peer.py")],
        check=True, capture_output=True, text=True).stdout)
    for label, exe, name, key, peer_name in MICRO_ROWS:
        a, b = ours.get((exe, name)), peer.get(key)
        if a is None or b is None:
            table.missing(label, "no figure")
            continue
        table.add(label, fmt_ns(a), fmt_ns(b), peer_name, b / a)
    return {"ours_ns": {f"{e}/{n}": v for (e, n), v in ours.items()}, "peer": peer}


def run_script(part, build_dir, quick, tmp):
    out = os.path.join(tmp, part + ".json")
    argv = ["/usr/bin/python3", os.path.join(HERE, SCRIPTS[part]), build_dir,
            *SIZES[part][1 if quick else 0], "--json", out]
    log = os.path.join(tmp, part + ".log")
    with open(log, "w") as f:
        done = subprocess.run(argv, stdout=f, stderr=subprocess.STDOUT, cwd=HERE)
    if done.returncode != 0 and not (part == "sync" and os.path.exists(out)):
        with open(log, errors="replace") as f:
            tail = "".join(f.readlines()[-15:])
        raise RuntimeError(f"{SCRIPTS[part]} exited {done.returncode}:\n{tail}")
    with open(out) as f:
        return json.load(f)


def add_enqueue(fig, table):
    n = fig["rows"]
    ours, peer = fig["spotgrid"], fig["boto3"]
    table.add(f"enqueue {n:,} units: client CPU per unit", f"{ours['cpu_s'] / n * 1e6:.1f} us",
              f"{peer['cpu_s'] / n * 1e6:.1f} us", "boto3 batch script",
              peer["cpu_s"] / ours["cpu_s"])
    table.add(f"enqueue {n:,} units: wall", f"{ours['wall_s']:.1f} s", f"{peer['wall_s']:.1f} s",
              "boto3 batch script", peer["wall_s"] / ours["wall_s"])


def add_enqueue_rtt(fig, table):
    n, rtt = fig["rows"], fig["rtt_ms"]
    ours, peer = fig["spotgrid"], fig["boto3"]
    window = ours.get("window", {})
    table.add(f"enqueue {n:,} units, {rtt:g} ms RTT: wall ({window.get('sqs', '?')} SQS + "
              f"{window.get('dynamodb', '?')} DynamoDB requests in flight)",
              f"{ours['wall_s']:.1f} s", f"{peer['wall_s']:.1f} s", "boto3 batch script",
              peer["wall_s"] / ours["wall_s"])
    table.add(f"enqueue {n:,} units, {rtt:g} ms RTT: client CPU per unit",
              f"{ours['cpu_s'] / n * 1e6:.1f} us", f"{peer['cpu_s'] / n * 1e6:.1f} us",
              "boto3 batch script", peer["cpu_s"] / ours["cpu_s"])


def add_progress(fig, table):
    table.add(f"progress of a {fig['units']:,}-unit job (median)",
              f"{fig['ours_median_ms']:.0f} ms", f"{fig['peer_median_ms']:.0f} ms",
              "aws dynamodb scan COUNT", fig["peer_median_ms"] / fig["ours_median_ms"])


def add_agent(fig, table):
    lat = fig["latency"]
    ours, peer = lat["from_send_start_ms"], lat["peer_from_send_start_ms"]
    table.add("dispatch: SendMessage -> command start, median", f"{ours['median']:.1f} ms",
              f"{peer['median']:.1f} ms", "boto3 worker loop", peer["median"] / ours["median"])
    table.add("dispatch: SendMessage -> command start, p99", f"{ours['p99']:.1f} ms",
              f"{peer['p99']:.1f} ms", "boto3 worker loop", peer["p99"] / ours["p99"])
    idle, pidle = fig["idle"], fig["idle_peer"]
    over = " over TLS" if "tls_connections" in fig else ""
    table.add(f"idle RSS{over} ({idle['seconds']:.0f} s of empty long polls)",
              f"{idle['rss_max_kib'] / 1024:.1f} MiB", f"{pidle['rss_max_kib'] / 1024:.1f} MiB",
              "boto3 worker loop", pidle["rss_max_kib"] / idle["rss_max_kib"])
    if idle["cpu_s"] > 0:
        table.add("idle CPU (share of one core)", f"{idle['cpu_percent_of_core']:.3f} %",
                  f"{pidle['cpu_percent_of_core']:.3f} %", "boto3 worker loop",
                  pidle["cpu_s"] / idle["cpu_s"])
    else:
        # Not one clock tick in the whole window: the ratio is at least peer / one tick.
        tick = 1.0 / os.sysconf("SC_CLK_TCK")
        table.add("idle CPU (share of one core)", "0 ticks",
                  f"{pidle['cpu_percent_of_core']:.3f} %", "boto3 worker loop", None)
        if pidle["cpu_s"] > 0:
            table.rows[-1]["ratio"] = ">" + fmt_ratio(pidle["cpu_s"] / tick)
    req = fig["requests"]
    table.add("AWS requests per unit besides S3 transfers",
              f"{req['per_unit_besides_transfers']:.2f}", "n/a",
              "(none keeps a ledger; target <= 6)", None)


def add_sync(fig, table):
    res = fig["results"]

    def median(key):
        values = sorted(r["wall_s"] for r in res[key])
        return values[len(values) // 2]

    label = f"{fig['files']:,} files, {fig['bytes'] / 2**20:.1f} MiB"
    table.add(f"dir sync, first ({label})", f"{median('first_ours'):.2f} s",
              f"{median('first_aws'):.2f} s", "aws s3 sync",
              median("first_aws") / median("first_ours"))
    table.add("dir sync, unchanged tree (manifest)", f"{median('resync_ours'):.3f} s",
              f"{median('resync_aws'):.2f} s", "aws s3 sync",
              median("resync_aws") / median("resync_ours"))
    table.add("dir sync, unchanged tree (one listing)", f"{median('resync_ours_listing'):.3f} s",
              f"{median('resync_aws'):.2f} s", "aws s3 sync",
              median("resync_aws") / median("resync_ours_listing"))


def add_checkpoint(fig, table):
    table.add(f"checkpoint flush on drain ({fig['mib']} MiB, SIGTERM -> exit)",
              f"{fig['ours_median_s']:.2f} s", f"{fig['peer_median_s']:.2f} s", "aws s3 sync",
              fig["peer_median_s"] / fig["ours_median_s"])


ADDERS = {"enqueue": add_enqueue, "enqueue_rtt": add_enqueue_rtt, "progress": add_progress,
          "agent": add_agent, "sync": add_sync, "checkpoint": add_checkpoint}


def versions():
    out = {}
    try:
        import botocore
        out["botocore"] = botocore.__version__
    except ImportError:
        pass
    try:
        import boto3
        out["boto3"] = boto3.__version__
    except ImportError:
        pass
    try:
        aws = subprocess.run(["/usr/bin/aws", "--version"], capture_output=True, text=True)
        out["aws"] = aws.stdout.split()[0].split("/")[1] if aws.stdout else "?"
    except (OSError, IndexError):
        pass
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("build_dir")
    ap.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    ap.add_argument("--only", help="comma-separated parts: " + ",".join(PARTS))
    ap.add_argument("--json", help="also write every figure here")
    args = ap.parse_args()
    build_dir = os.path.abspath(args.build_dir)
    parts = args.only.split(",") if args.only else PARTS
    unknown = set(parts) - set(PARTS)
    if unknown:
        ap.error("unknown part(s): " + ", ".join(sorted(unknown)))

    table = Table()
    raw = {}
    failed = []
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="spotgrid-bench-") as tmp:
        for part in parts:
            t0 = time.monotonic()
            print(f"run_all: {part}...", file=sys.stderr, flush=True)
            try:
                if part == "micro":
                    raw[part] = run_micro(build_dir, table, args.quick)
                else:
                    raw[part] = run_script(part, build_dir, args.quick, tmp)
                    ADDERS[part](raw[part], table)
            except (RuntimeError, subprocess.CalledProcessError, KeyError, ValueError,
                    OSError) as e:
                failed.append(part)
                table.missing(part, "see stderr")
                print(f"run_all: {part} failed: {e}", file=sys.stderr)
            print(f"run_all: {part} took {time.monotonic() - t0:.0f} s", file=sys.stderr,
                  flush=True)

    v = versions()
    print(f"spotgrid benchmarks, {datetime.date.today()}, {platform.machine()}, "
          f"{os.cpu_count()} cores, {platform.freedesktop_os_release().get('PRETTY_NAME', '')}"
          f"{' (--quick)' if args.quick else ''}; peers: botocore {v.get('botocore', '?')}, "
          f"boto3 {v.get('boto3', '?')}, aws CLI {v.get('aws', '?')}; "
          f"{time.monotonic() - started:.0f} s")
    print(table.render())
    print("ratio = how many times better spotgrid is (peer / ours); local emulators, process "
          "start included where a command is timed.")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"date": str(datetime.date.today()), "quick": args.quick,
                       "versions": v, "rows": table.rows, "raw": raw}, f, indent=2)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
