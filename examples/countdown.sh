#!/bin/sh
# A command that checkpoints and resumes, in plain sh: counts from $1 down to 0, one step a
# second, saving where it is after every step. Started again with a checkpoint (the agent
# restores $SPOTGRID_CHECKPOINT_DIR from S3 before a later attempt) it goes on from there.
# On SIGTERM (the agent's signal when the instance is reclaimed) it saves and exits 143.
set -eu
ck="${SPOTGRID_CHECKPOINT_DIR:-.}/countdown"
n="${1:-30}"
if [ -f "$ck" ]; then
  n="$(cat "$ck")"
  echo "resumed from checkpoint at $n"
fi
trap 'echo "$n" > "$ck.tmp" && mv "$ck.tmp" "$ck"; exit 143' TERM
while [ "$n" -gt 0 ]; do
  echo "$n left" > "${SPOTGRID_PROGRESS_FILE:-/dev/null}"
  sleep 1 &
  wait $!  # a trapped signal interrupts `wait` at once, not after the sleep
  n=$((n - 1))
  echo "$n" > "$ck.tmp" && mv "$ck.tmp" "$ck"
done
echo "done" > "${SPOTGRID_OUTPUT_DIR:-.}/countdown.txt"
