#!/usr/bin/python3
"""Directory sync benchmark: DirectorySync (bench/dir_sync_tool) against `aws s3 sync`, same
tree, same run, same s3rver, separate buckets.

Usage: bench/dir_sync_bench.py BUILD_DIR [--files N] [--repeat R] [--json FILE]
Starts the emulators, writes a tree of N files (default 2,000: mixed small sizes in a few
nested directories), then R times (default 3, each round to a fresh prefix):
  1. first sync: ours (with a manifest path), then `aws s3 sync DIR s3://B/P`;
  2. re-sync of the unchanged tree: ours in a fresh process reading the manifest, then aws;
     also ours in a fresh process without a manifest (one listing, the aws s3 sync rule).
Wall times include process start; uploads are ours from SyncStats and aws's from its
'upload:' lines. Reports medians and checks the issue's targets: re-sync uploads nothing and
takes at most a tenth of aws's wall time; a first sync at least as fast as aws's.
"""
import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time

from emulators import running_emulators


def proc_cpu_seconds(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def make_tree(root, files, seed=20240501):
    """N files with sizes from 100 B to 256 KiB (mostly small, log-uniform) in nested dirs."""
    rng = random.Random(seed)
    dirs = [""] + [f"d{i}" for i in range(8)] + [f"d{i}/sub{j}" for i in range(4) for j in range(3)]
    total = 0
    for i in range(files):
        size = int(10 ** rng.uniform(2, 5.4))  # 100 B .. ~250 KiB
        path = os.path.join(root, rng.choice(dirs), f"file{i:05d}.dat")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(rng.randbytes(size))
        total += size
    return total


def run(cmd, env, s3_pid):
    emu0 = proc_cpu_seconds(s3_pid)
    start = time.monotonic()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.monotonic() - start
    if done.returncode != 0:
        sys.exit(f"dir_sync_bench: {' '.join(cmd[:4])} failed ({done.returncode}):\n"
                 f"{done.stderr}{done.stdout[-2000:]}")
    return wall, done.stdout, proc_cpu_seconds(s3_pid) - emu0


def ours(tool, tree, url, manifest, env, s3_pid):
    cmd = [tool, tree, url] + (["--manifest", manifest] if manifest else [])
    wall, out, emu = run(cmd, env, s3_pid)
    stats = json.loads(out.strip().splitlines()[-1])
    return {"wall_s": wall, "uploads": stats["uploaded_files"], "requests": stats["requests"],
            "s3rver_cpu_s": emu}


def aws(tree, url, env, s3_pid):
    cmd = ["/usr/bin/aws", "s3", "sync", tree, url, "--endpoint-url", env["AWS_ENDPOINT_URL_S3"],
           "--no-progress"]
    wall, out, emu = run(cmd, env, s3_pid)
    uploads = sum(1 for line in out.splitlines() if line.startswith("upload:"))
    return {"wall_s": wall, "uploads": uploads, "s3rver_cpu_s": emu}


def median(rows, key):
    return statistics.median(r[key] for r in rows)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build_dir")
    ap.add_argument("--files", type=int, default=2000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", help="also write the raw figures here")
    args = ap.parse_args()
    tool = os.path.join(args.build_dir, "bench", "dir_sync_tool")
    if not os.path.exists(tool):
        sys.exit(f"dir_sync_bench: {tool} is missing (build the dir_sync_tool target)")

    results = {"first_ours": [], "first_aws": [], "resync_ours": [], "resync_aws": [],
               "resync_ours_listing": []}
    with tempfile.TemporaryDirectory(prefix="spotgrid-dir-sync-bench-") as tmp, \
            running_emulators(tmp) as (env, pids):
        env = dict(env)
        env.setdefault("AWS_DEFAULT_REGION", env.get("AWS_REGION", "us-east-1"))
        env["AWS_CONFIG_FILE"] = "/dev/null"
        env["AWS_SHARED_CREDENTIALS_FILE"] = "/dev/null"
        env["AWS_PAGER"] = ""
        s3_pid = pids["s3"]
        tree = os.path.join(tmp, "tree")
        total = make_tree(tree, args.files)
        for bucket in ("bench-ours", "bench-aws"):
            subprocess.run(["/usr/bin/aws", "s3", "mb", f"s3://{bucket}", "--endpoint-url",
                            env["AWS_ENDPOINT_URL_S3"]], env=env, check=True,
                           stdout=subprocess.DEVNULL)
        print(f"tree: {args.files} files, {total / 2**20:.1f} MiB; {args.repeat} round(s)",
              flush=True)

        for r in range(args.repeat):
            manifest = os.path.join(tmp, f"manifest-{r}.json")
            ours_url = f"s3://bench-ours/round{r}/"
            aws_url = f"s3://bench-aws/round{r}"
            results["first_ours"].append(ours(tool, tree, ours_url, manifest, env, s3_pid))
            results["first_aws"].append(aws(tree, aws_url, env, s3_pid))
            results["resync_ours"].append(ours(tool, tree, ours_url, manifest, env, s3_pid))
            results["resync_aws"].append(aws(tree, aws_url, env, s3_pid))
            results["resync_ours_listing"].append(ours(tool, tree, ours_url, None, env, s3_pid))
            print(f"round {r}: " + ", ".join(f"{k} {v[-1]['wall_s']:.3f}s/{v[-1]['uploads']} up"
                                             for k, v in results.items()), flush=True)

    rows = [
        ("first sync", "first_ours", "first_aws"),
        ("re-sync, unchanged tree (ours: manifest)", "resync_ours", "resync_aws"),
        ("re-sync, unchanged tree (ours: one listing)", "resync_ours_listing", "resync_aws"),
    ]
    print()
    print(f"{'':46} {'ours wall':>10} {'uploads':>8} {'reqs':>6} {'aws wall':>10} {'uploads':>8}"
          f" {'aws/ours':>9}")
    for label, o, a in rows:
        ow, aw = median(results[o], "wall_s"), median(results[a], "wall_s")
        print(f"{label:46} {ow:9.3f}s {median(results[o], 'uploads'):8.0f} "
              f"{median(results[o], 'requests'):6.0f} {aw:9.3f}s "
              f"{median(results[a], 'uploads'):8.0f} {aw / ow:8.1f}x")
    print("(medians over rounds; wall times include process start-up; s3rver is one node process"
          " and bounds both first syncs)")

    first_ours, first_aws = median(results["first_ours"], "wall_s"), median(results["first_aws"],
                                                                           "wall_s")
    resync_ours, resync_aws = median(results["resync_ours"], "wall_s"), median(
        results["resync_aws"], "wall_s")
    checks = [
        ("re-sync uploads nothing", all(r["uploads"] == 0 for r in results["resync_ours"])),
        ("re-sync at most 1/10 of aws s3 sync's wall time", resync_ours * 10 <= resync_aws),
        ("first sync at least as fast as aws s3 sync", first_ours <= first_aws),
        ("first sync uploads every file",
         all(r["uploads"] == args.files for r in results["first_ours"])),
    ]
    print()
    for name, ok in checks:
        print(f"{'PASS' if ok else 'FAIL'}  {name}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"files": args.files, "bytes": total, "results": results,
                       "checks": {n: ok for n, ok in checks}}, f, indent=1)
    return 0 if all(ok for _, ok in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
