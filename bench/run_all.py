#!/usr/bin/python3
"""Runs every spotgrid benchmark and its peer in the same run, and prints one table.

Usage: bench/run_all.py BUILD_DIR [--json FILE]
Each row pairs one of our Google Benchmark figures with the same operation done by the peer a
user would otherwise use (botocore, which boto3 and the aws CLI run), measured now on this
machine, and the ratio peer/ours (how many times faster spotgrid is).
"""
import argparse
import datetime
import json
import os
import platform
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))

# (label, our executable, our benchmark name, peer key, peer name)
ROWS = [
    ("SigV4: hash + sign a DynamoDB PutItem", "sigv4_bench", "BM_HashAndSignDynamoDbPutItem",
     "sign_dynamodb_json", "botocore SigV4Auth"),
    ("SigV4: sign an S3 PUT", "sigv4_bench", "BM_SignS3PutUploadPart",
     "sign_s3_put", "botocore S3SigV4Auth"),
    ("encode SendMessageBatch (10 entries)", "json_encoding_bench", "BM_EncodeSendMessageBatch",
     "encode_send_message_batch", "botocore serializer"),
    ("encode BatchWriteItem (25 items)", "json_encoding_bench", "BM_EncodeBatchWriteItem",
     "encode_batch_write_item", "botocore serializer"),
]


def run_ours(build_dir, exe):
    path = os.path.join(build_dir, "bench", exe)
    if not os.path.exists(path):
        sys.exit(f"run_all: {path} is missing (build the bench targets first)")
    out = subprocess.run([path, "--benchmark_format=json", "--benchmark_min_time=0.3"],
                         check=True, capture_output=True, text=True).stdout
    figures = {}
    for b in json.loads(out)["benchmarks"]:
        unit = {"ns": 1, "us": 1e3, "ms": 1e6, "s": 1e9}[b.get("time_unit", "ns")]
        figures[b["name"]] = b["cpu_time"] * unit
    return figures


def fmt_ns(ns):
    if ns >= 1e6:
        return f"{ns / 1e6:.2f} ms"
    if ns >= 1e3:
        return f"{ns / 1e3:.2f} us"
    return f"{ns:.0f} ns"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build_dir")
    ap.add_argument("--json", help="also write the raw figures here")
    args = ap.parse_args()

    ours = {}
    for exe in sorted({r[1] for r in ROWS}):
        ours.update({(exe, k): v for k, v in run_ours(args.build_dir, exe).items()})
    peer = json.loads(subprocess.run(["/usr/bin/python3", os.path.join(HERE, "peers", "botocore_peer.py")],
                                     check=True, capture_output=True, text=True).stdout)

    print(f"spotgrid benchmarks, {datetime.date.today()}, {platform.machine()}, "
          f"{os.cpu_count()} cores, botocore {peer.get('botocore_version')}")
    header = f"| {'operation':<40} | {'spotgrid':>10} | {'peer':>10} | {'peer is':<22} | {'ratio':>7} |"
    print(header)
    print("|" + "|".join("-" * (len(c)) for c in header.split("|")[1:-1]) + "|")
    rows = []
    for label, exe, name, key, peer_name in ROWS:
        a, b = ours.get((exe, name)), peer.get(key)
        if a is None or b is None:
            print(f"| {label:<40} | {'missing':>10} | {'':>10} | {peer_name:<22} | {'':>7} |")
            continue
        rows.append({"operation": label, "spotgrid_ns": a, "peer_ns": b, "peer": peer_name,
                     "ratio": b / a})
        print(f"| {label:<40} | {fmt_ns(a):>10} | {fmt_ns(b):>10} | {peer_name:<22} | {b / a:>6.0f}x |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"rows": rows, "ours": {f"{e}/{n}": v for (e, n), v in ours.items()},
                       "peer": peer}, f, indent=2)


if __name__ == "__main__":
    main()
