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

# A refused connection is a clear error, not a crash.
if "$dir/echo_client" --port=1 --bytes=10 2>"$TEST_TMPDIR/err"; then
  echo "connecting to port 1 should fail" >&2
  exit 1
fi
grep -q "UNAVAILABLE: connect to 127.0.0.1:1" "$TEST_TMPDIR/err"
echo "echo samples OK"
