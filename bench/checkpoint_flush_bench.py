#!/usr/bin/python3
"""Checkpoint flush benchmark: how long a draining agent takes to get a unit's checkpoint of
N MiB into S3, against `aws s3 sync` of the same directory.

Usage: /usr/bin/python3 bench/checkpoint_flush_bench.py BUILD_DIR [--mib 64] [--files 4]
                                                        [--repeat 3] [--json FILE]

Starts the emulators and a stack, writes a checkpoint directory of --files files totalling
--mib MiB (random bytes), then --repeat rounds of:
  ours  one agent (1 slot, --sync-interval 10m: nothing reaches S3 before the drain) runs a
        unit that copies that directory into $SPOTGRID_CHECKPOINT_DIR and waits; once the copy
        is complete the agent gets SIGTERM. Flush = SIGTERM -> the agent's exit: the unit's
        signal and exit, the checkpoint upload (checkpoint first, then logs), the ledger
        release and the requeue, the worker item. Checked afterwards: the unit is QUEUED with
        one interruption and S3 holds the whole checkpoint.
  peer  `aws s3 sync DIR s3://BUCKET/peer-R/` of the same directory (process start included).
Prints the medians. Everything started here is stopped here, by process id.
"""
import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time

import botocore.session

from emulators import running_emulators, wait_until

STACK = "flushbench"
JOB_PREFIX = "flush"


def make_checkpoint(path, mib, files):
    os.makedirs(path)
    os.chmod(path, 0o755)
    per_file = mib * 2**20 // files
    for i in range(files):
        name = os.path.join(path, f"state-{i:02d}.bin")
        with open(name, "wb") as f:
            f.write(os.urandom(per_file))
        os.chmod(name, 0o644)
    return per_file * files


def controller(binary, env, *args):
    done = subprocess.run([binary, *args, "--stack", STACK], env=env, capture_output=True,
                          text=True)
    if done.returncode != 0:
        sys.exit(f"checkpoint_flush_bench: controller {' '.join(args)}: {done.stderr}")
    return done.stdout


def flush_round(build_dir, env, tmp, source, round_no, s3, bucket):
    agent_bin = os.path.join(build_dir, "agent", "agent")
    controller_bin = os.path.join(build_dir, "controller", "controller")
    job = f"{JOB_PREFIX}{round_no}"
    grid = os.path.join(tmp, job + ".csv")
    with open(grid, "w") as f:
        f.write("id\nu1\n")
    # Copy, then mark the copy complete, then wait for the drain's SIGTERM and exit 143.
    command = (f'cp -r {source}/. "$SPOTGRID_CHECKPOINT_DIR"/'
               ' && touch "$SPOTGRID_OUTPUT_DIR/copied"'
               ' && trap "exit 143" TERM && while :; do sleep 0.05; done')
    controller(controller_bin, env, "enqueue", grid, "--job", job, "--command", command)
    adir = os.path.join(tmp, f"agent-{round_no}")
    work = os.path.join(adir, "work")
    os.makedirs(work)
    os.chmod(adir, 0o755)
    os.chmod(work, 0o755)
    env_file = os.path.join(adir, "agent.env")
    open(env_file, "w").close()
    agent_env = dict(env, AWS_EC2_METADATA_DISABLED="true")
    for name in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "SPOTGRID_STACK"):
        agent_env.pop(name, None)
    log = open(os.path.join(adir, "agent.log"), "ab")
    proc = subprocess.Popen(
        [agent_bin, "--stack", STACK, "--slots", "1", "--work-dir", work, "--heartbeat", "2s",
         "--poll-wait", "1", "--sync-interval", "10m", "--idle-shutdown", "1d",
         "--on-drain", "stay", "--env-file", env_file,
         "--user", "nobody" if os.geteuid() == 0 else ""],
        env=agent_env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True)
    try:
        marker = os.path.join(work, "slots", "0", job, "u1", "output", "copied")
        if not wait_until(lambda: os.path.exists(marker) or proc.poll() is not None, 120):
            with open(os.path.join(adir, "agent.log"), errors="replace") as f:
                tail = "".join(f.readlines()[-20:])
            sys.exit(f"checkpoint_flush_bench: the unit did not copy its checkpoint within "
                     f"120 s; the agent's log ends:\n{tail}")
        if proc.poll() is not None:
            sys.exit("checkpoint_flush_bench: the agent exited early")
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.wait(120)
        seconds = time.monotonic() - t0
        if proc.returncode != 0:
            sys.exit(f"checkpoint_flush_bench: the agent exited {proc.returncode}")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()
        # Units run in process groups of their own: stop any left under this agent's work dir.
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    if os.readlink(f"/proc/{entry}/cwd").startswith(work + "/"):
                        os.kill(int(entry), signal.SIGKILL)
                except OSError:
                    pass
    unit = json.loads(controller(controller_bin, env, "show", "u1", "--job", job, "--json"))
    listed = s3.list_objects_v2(Bucket=bucket, Prefix=f"{job}/u1/checkpoint/")
    uploaded = sum(o["Size"] for o in listed.get("Contents", []))
    # The requeued unit must not be what the next round's agent picks up.
    controller(controller_bin, env, "cancel", "--job", job)
    return {"seconds": seconds, "state": unit["state"], "interruptions": unit["interruptions"],
            "uploaded_bytes": uploaded}


def peer_round(env, source, bucket, round_no):
    t0 = time.monotonic()
    subprocess.run(["/usr/bin/aws", "s3", "sync", source, f"s3://{bucket}/peer-{round_no}/",
                    "--endpoint-url", env["AWS_ENDPOINT_URL_S3"], "--only-show-errors"],
                   env=env, check=True)
    return {"seconds": time.monotonic() - t0}


def run(build_dir, mib=64, files=4, repeat=3):
    """Runs the benchmark; returns its figures (also what --json writes)."""
    results = {"mib": mib, "files": files, "ours": [], "peer": []}
    with tempfile.TemporaryDirectory(prefix="spotgrid-flush-bench-") as tmp, \
            running_emulators(tmp) as (env, _pids):
        os.chmod(tmp, 0o755)
        env = dict(env, AWS_PAGER="")
        bucket = STACK + "-bucket"
        controller(os.path.join(build_dir, "controller", "controller"), env, "init",
                   "--bucket", bucket)
        source = os.path.join(tmp, "checkpoint")
        results["bytes"] = make_checkpoint(source, mib, files)
        s3 = botocore.session.get_session().create_client(
            "s3", endpoint_url=env["AWS_ENDPOINT_URL_S3"], region_name=env["AWS_REGION"],
            aws_access_key_id="S3RVER", aws_secret_access_key="S3RVER")
        for r in range(repeat):
            ours = flush_round(build_dir, env, tmp, source, r, s3, bucket)
            if (ours["state"] != "QUEUED" or ours["interruptions"] != 1
                    or ours["uploaded_bytes"] != results["bytes"]):
                sys.exit(f"checkpoint_flush_bench: round {r}: the drain did not flush the "
                         f"checkpoint: {ours}")
            results["ours"].append(ours)
            results["peer"].append(peer_round(env, source, bucket, r))
    results["ours_median_s"] = statistics.median(r["seconds"] for r in results["ours"])
    results["peer_median_s"] = statistics.median(r["seconds"] for r in results["peer"])
    return results


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build_dir")
    ap.add_argument("--mib", type=int, default=64)
    ap.add_argument("--files", type=int, default=4)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", help="also write the figures to this file")
    args = ap.parse_args()
    results = run(args.build_dir, args.mib, args.files, args.repeat)
    ours, peer = results["ours_median_s"], results["peer_median_s"]
    print(f"checkpoint flush: {args.mib} MiB in {args.files} files, medians of {args.repeat}")
    print(f"| {'flush':<56} | {'seconds':>8} |")
    print(f"|{'-' * 58}|{'-' * 10}|")
    print(f"| {'agent drain: SIGTERM -> checkpoint in S3, requeued, exit':<56} | {ours:>8.2f} |")
    print(f"| {'aws s3 sync of the same directory':<56} | {peer:>8.2f} |")
    print(f"aws s3 sync / drain: {peer / ours:.1f}x")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
