#!/usr/bin/env bash
# Runs echo_server and echo_client as a user would, over TCP and Unix.
set -euo pipefail

dir="$TEST_SRCDIR/$TEST_WORKSPACE/samples"
out="$TEST_TMPDIR/server.out"

# Prints the first line matching $2 in file $1, waiting (bounded) for it.
wait_for_line() {
  for _ in $(seq 1 200); do
    if grep -m1 "$2" "$1"; then return 0; fi
    sleep 0.05
  done
  echo "timed out waiting for '$2' in $1" >&2
  cat "$1" >&2
  return 1
}

"$dir/echo_server" --port=0 >"$out" &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
port=$(wait_for_line "$out" "listening on" | sed -E 's/.*:([0-9]+)$/\1/')

"$dir/echo_client" --port="$port" --bytes=20000000 | tee "$TEST_TMPDIR/client.out"
grep -q "echoed and verified 20000000 bytes" "$TEST_TMPDIR/client.out"

printf 'one\ntwo\n' | "$dir/echo_client" --port="$port" >"$TEST_TMPDIR/lines.out"
[ "$(cat "$TEST_TMPDIR/lines.out")" = "$(printf 'one\ntwo')" ]

# SIGTERM: a clean shutdown.
kill -TERM "$server"
wait "$server"
grep -q "shutting down" "$out"

# The streams flavour of the same server.
"$dir/echo_server" --port=0 --mode=streams >"$out" &
server=$!
port=$(wait_for_line "$out" "listening on" | sed -E 's/.*:([0-9]+)$/\1/')
"$dir/echo_client" --port="$port" --bytes=20000000 | grep -q "echoed and verified 20000000 bytes"
kill -TERM "$server"
wait "$server"

# Unix sockets (sun_path is short: not under TEST_TMPDIR).
sock_dir=$(mktemp -d /tmp/sluice_echo_XXXXXX)
"$dir/echo_server" --unix="$sock_dir/echo.sock" >"$out" &
server=$!
wait_for_line "$out" "listening on unix:" >/dev/null
"$dir/echo_client" --unix="$sock_dir/echo.sock" --bytes=1000000 | grep -q verified
kill -TERM "$server"
wait "$server"
[ ! -e "$sock_dir/echo.sock" ]
rmdir "$sock_dir"

# Exits within a bound, or fails the test.
wait_exit() {
  for _ in $(seq 1 100); do
    kill -0 "$1" 2>/dev/null || { wait "$1"; return; }
    sleep 0.1
  done
  echo "server $1 still running 10 s after the signal" >&2
  cat "$out" >&2
  return 1
}

# A client that sends a lot and never reads its echo, then holds on.
start_stuck_client() {
  python3 -c '
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.settimeout(2)
try:
    s.sendall(b"x" * (64 << 20))
except socket.timeout:
    pass
print("stuck", flush=True)
time.sleep(60)
' "$1" >"$TEST_TMPDIR/stuck.out" &
  stuck=$!
  wait_for_line "$TEST_TMPDIR/stuck.out" stuck >/dev/null
}

# A graceful shutdown has a deadline, then aborts (both modes) ...
for mode in protocol streams; do
  "$dir/echo_server" --port=0 --mode=$mode --shutdown_timeout=500ms >"$out" &
  server=$!
  port=$(wait_for_line "$out" "listening on" | sed -E 's/.*:([0-9]+)$/\1/')
  start_stuck_client "$port"
  kill -TERM "$server"
  wait_exit "$server"
  grep -q "shutdown aborted 1 connection" "$out"
  kill "$stuck"
done
# ... and a second signal aborts at once.
"$dir/echo_server" --port=0 --shutdown_timeout=1h >"$out" &
server=$!
port=$(wait_for_line "$out" "listening on" | sed -E 's/.*:([0-9]+)$/\1/')
start_stuck_client "$port"
kill -TERM "$server"
wait_for_line "$out" "shutting down" >/dev/null
kill -INT "$server"
wait_exit "$server"
grep -q "aborting 1 connections" "$out"
kill "$stuck"

# A refused connection is a clear error, not a crash.
if "$dir/echo_client" --port=1 --bytes=10 2>"$TEST_TMPDIR/err"; then
  echo "connecting to port 1 should fail" >&2
  exit 1
fi
grep -q "UNAVAILABLE: connect to 127.0.0.1:1" "$TEST_TMPDIR/err"
echo "echo samples OK"
