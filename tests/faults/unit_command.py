#!/usr/bin/python3
"""The command every unit of the fault-injection suite runs (tests/faults/fault_suite.py).

  unit_command.py --records FILE --unit ID --sleep-ms N

- Appends "start <unit> <attempt> <pid> <time_ns>" to FILE when it starts and
  "end <unit> <attempt> <pid> <time_ns> <done|interrupted>" when it ends, each line with one
  write(2) on an O_APPEND descriptor, so lines of concurrent units never interleave.
  time_ns is CLOCK_REALTIME (time.time_ns()), the clock the suite stamps its kills with.
- "Works" for N ms in 50 ms steps. A checkpoint ($SPOTGRID_CHECKPOINT_DIR/progress.json,
  written to a temporary name and renamed) says how much is done; a later attempt resumes from
  it (the agent restores the checkpoint before the attempt).
- On SIGTERM (a drain) it saves its checkpoint, writes its end line and exits 143: not
  finished, so not a success.
- When done it writes $SPOTGRID_OUTPUT_DIR/result.txt ("unit=U attempt=N pid=P resumed_ms=M",
  renamed into place), its end line, and exits 0.
"""

import argparse
import json
import os
import signal
import sys
import time

STEP_S = 0.05
stop = {"requested": False}


def record(fd, text):
    os.write(fd, (text + "\n").encode())


def write_atomically(path, data, tmp_dir):
    tmp = os.path.join(tmp_dir, ".%s.%d.tmp" % (os.path.basename(path), os.getpid()))
    with open(tmp, "w") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.rename(tmp, path)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", required=True)
    ap.add_argument("--unit", required=True)
    ap.add_argument("--sleep-ms", type=int, required=True)
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: stop.update(requested=True))

    unit = os.environ.get("SPOTGRID_UNIT", args.unit)
    attempt = os.environ.get("SPOTGRID_ATTEMPT", "?")
    checkpoint_dir = os.environ["SPOTGRID_CHECKPOINT_DIR"]
    output_dir = os.environ["SPOTGRID_OUTPUT_DIR"]
    scratch = os.environ.get("SPOTGRID_SCRATCH_DIR", checkpoint_dir)
    fd = os.open(args.records, os.O_WRONLY | os.O_APPEND)
    pid = os.getpid()
    record(fd, "start %s %s %d %d" % (unit, attempt, pid, time.time_ns()))

    checkpoint = os.path.join(checkpoint_dir, "progress.json")
    done_ms = 0
    try:
        with open(checkpoint) as f:
            done_ms = int(json.load(f)["done_ms"])
    except (OSError, ValueError, KeyError):
        pass
    resumed_ms = done_ms
    while done_ms < args.sleep_ms:
        if stop["requested"]:
            write_atomically(checkpoint, json.dumps({"done_ms": done_ms}), scratch)
            record(fd, "end %s %s %d %d interrupted" % (unit, attempt, pid, time.time_ns()))
            sys.exit(143)
        step = min(STEP_S, (args.sleep_ms - done_ms) / 1000.0)
        time.sleep(step)
        done_ms += int(round(step * 1000))
    write_atomically(os.path.join(output_dir, "result.txt"),
                     "unit=%s attempt=%s pid=%d resumed_ms=%d\n" % (unit, attempt, pid,
                                                                   resumed_ms), scratch)
    record(fd, "end %s %s %d %d done" % (unit, attempt, pid, time.time_ns()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
