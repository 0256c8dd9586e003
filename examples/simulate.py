#!/usr/bin/python3
"""A small stochastic epidemic (SIR) simulation: the kind of command a spotgrid grid runs.

  simulate.py --beta 0.3 --gamma 0.1 --seed 1 [--population 2000] [--days 120] [--pace 0.05]

A population of --population people, 5 of them infected on day 0. Every day each susceptible
person is infected with probability 1 - exp(-beta * I / N) and each infected one recovers with
probability gamma. It writes one CSV row of results (peak of infections, its day, attack rate)
to $SPOTGRID_OUTPUT_DIR/result.csv, appending below a header, so a chunked unit (several rows
one after another) collects one row per grid row.

What makes it a good spotgrid citizen:
- Checkpoints: after every simulated day its whole state (day, S, I, R, peak, the random
  generator's state) goes to $SPOTGRID_CHECKPOINT_DIR/sim-row<SPOTGRID_ROW>.json, written to a
  temporary file and renamed, so a checkpoint is never half written. The agent uploads that
  directory to S3 and restores it before a later attempt.
- Resumes: started with a checkpoint it continues from the saved day and prints "resumed from
  checkpoint at day N"; the result row says so too (resumed_from_day). Because the random state
  is saved, a resumed run gives exactly the figures an uninterrupted run would.
- Stops cleanly: SIGTERM (what the agent sends when the instance is reclaimed) saves the
  checkpoint and exits 143 at once.
- Reports progress: "day N/DAYS" in $SPOTGRID_PROGRESS_FILE, which `controller progress` shows.
- A finished row's checkpoint keeps its result, so a chunked unit that is resumed re-emits the
  rows it had finished without computing them again.

--pace is wall time per simulated day (seconds): a stand-in for a heavier model, so that the
quickstart's units take a few seconds each. 0 runs flat out. Outside an agent (no SPOTGRID_*
variables) everything goes to the current directory. Python standard library only.
"""

import argparse
import csv
import io
import json
import math
import os
import random
import signal
import sys
import time

RESULT_COLUMNS = ["peak_infected", "peak_day", "attack_rate", "final_susceptible",
                  "resumed_from_day"]
INITIAL_INFECTED = 5

_stop = {"requested": False}


def _on_term(_signum, _frame):
    _stop["requested"] = True  # the main loop saves and exits: no I/O in a signal handler


def _binomial(rng, n, p):
    return sum(1 for _ in range(n) if rng.random() < p)


def _write_atomically(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _save(path, state, rng):
    doc = dict(state)
    version, internal, gauss = rng.getstate()
    doc["rng"] = [version, list(internal), gauss]
    _write_atomically(path, json.dumps(doc))


def _load(path, rng):
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except FileNotFoundError:
        return None
    version, internal, gauss = doc.pop("rng")
    rng.setstate((version, tuple(internal), gauss))
    return doc


def _append_result(output_dir, row):
    path = os.path.join(output_dir, "result.csv")
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    if not os.path.exists(path) or os.path.getsize(path) == 0:
        writer.writerow(RESULT_COLUMNS)
    writer.writerow([row[c] for c in RESULT_COLUMNS])
    with open(path, "a", encoding="utf-8") as f:
        f.write(buf.getvalue())


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--beta", type=float, required=True, help="infection rate per day")
    ap.add_argument("--gamma", type=float, required=True, help="recovery rate per day")
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--population", type=int, default=2000)
    ap.add_argument("--days", type=int, default=120)
    ap.add_argument("--pace", type=float, default=0.05,
                    help="wall seconds per simulated day (0: as fast as possible)")
    args = ap.parse_args()
    if not (0 < args.gamma <= 1 and args.beta > 0 and args.population > INITIAL_INFECTED
            and args.days > 0 and args.pace >= 0):
        ap.error("need beta > 0, 0 < gamma <= 1, population > 5, days > 0, pace >= 0")

    signal.signal(signal.SIGTERM, _on_term)
    output_dir = os.environ.get("SPOTGRID_OUTPUT_DIR", ".")
    checkpoint_dir = os.environ.get("SPOTGRID_CHECKPOINT_DIR", ".")
    progress_file = os.environ.get("SPOTGRID_PROGRESS_FILE")
    row_index = os.environ.get("SPOTGRID_ROW", "0")
    checkpoint = os.path.join(checkpoint_dir, "sim-row%s.json" % row_index)

    rng = random.Random(args.seed)
    state = _load(checkpoint, rng)
    resumed_from = 0
    if state is None:
        state = {"day": 0, "s": args.population - INITIAL_INFECTED, "i": INITIAL_INFECTED,
                 "r": 0, "peak": INITIAL_INFECTED, "peak_day": 0, "resumed_from_day": 0,
                 "done": False}
    else:
        resumed_from = state["day"]
        state["resumed_from_day"] = resumed_from
        print("resumed from checkpoint at day %d (attempt %s)" %
              (resumed_from, os.environ.get("SPOTGRID_ATTEMPT", "?")), flush=True)

    n = args.population
    while not state["done"] and state["day"] < args.days:
        if _stop["requested"]:
            _save(checkpoint, state, rng)
            print("SIGTERM: checkpoint saved at day %d, exiting" % state["day"], flush=True)
            return 143
        started = time.monotonic()
        p_infect = 1.0 - math.exp(-args.beta * state["i"] / n)
        new_infected = _binomial(rng, state["s"], p_infect)
        new_recovered = _binomial(rng, state["i"], args.gamma)
        state["s"] -= new_infected
        state["i"] += new_infected - new_recovered
        state["r"] += new_recovered
        state["day"] += 1
        if state["i"] > state["peak"]:
            state["peak"], state["peak_day"] = state["i"], state["day"]
        _save(checkpoint, state, rng)
        if progress_file:
            # In place: the file is ours, the directory around it is the agent's.
            with open(progress_file, "w", encoding="utf-8") as f:
                f.write("day %d/%d\n" % (state["day"], args.days))
        rest = args.pace - (time.monotonic() - started)
        if rest > 0:
            time.sleep(rest)  # pacing: stands in for a heavier model's work per day

    state["done"] = True
    _save(checkpoint, state, rng)
    _append_result(output_dir, {
        "peak_infected": state["peak"],
        "peak_day": state["peak_day"],
        "attack_rate": "%.4f" % ((n - state["s"]) / n),
        "final_susceptible": state["s"],
        "resumed_from_day": state["resumed_from_day"],
    })
    print("beta=%g gamma=%g seed=%d: peak %d on day %d, attack rate %.1f%%" %
          (args.beta, args.gamma, args.seed, state["peak"], state["peak_day"],
           100.0 * (n - state["s"]) / n), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
