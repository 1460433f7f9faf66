#!/usr/bin/env bash
# Runs the countdown sample as a user would: to the end, and interrupted.
set -euo pipefail

bin="$TEST_SRCDIR/$TEST_WORKSPACE/samples/countdown"
out="$TEST_TMPDIR/out"

"$bin" --from=3 --interval=20ms >"$out"
for line in "3..." "2..." "1..." "liftoff!" "countdown finished: OK"; do
  grep -qxF "$line" "$out" || { echo "missing line: $line"; cat "$out"; exit 1; }
done

# Ctrl-C cancels the countdown: the sample reports it and exits 1. The
# sample prints "5..." before its first sleep, so once that line is there
# the SIGINT handler is installed.
"$bin" --from=5 --interval=1h >"$out" &
pid=$!
for _ in $(seq 1 200); do
  grep -qxF "5..." "$out" && break
  sleep 0.05
done
kill -INT "$pid"
status=0
wait "$pid" || status=$?
[ "$status" -eq 1 ] || { echo "exit status $status, want 1"; cat "$out"; exit 1; }
grep -qxF "interrupted" "$out" || { echo "no 'interrupted'"; cat "$out"; exit 1; }
grep -q "countdown finished: CANCELLED" "$out" || { cat "$out"; exit 1; }
echo "countdown sample OK"
