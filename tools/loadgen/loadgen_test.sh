#!/usr/bin/env bash
# Runs loadgen against :test_echo_server: a clean run must report requests
# and CPU; a corrupted echo, a refused connection and a non-loopback host
# must fail with a clear message.
set -euo pipefail

dir="$TEST_SRCDIR/$TEST_WORKSPACE/tools/loadgen"
loadgen="$dir/loadgen"
server_bin="$dir/test_echo_server"
tmp="$TEST_TMPDIR"

server_pid=""
trap '[ -z "$server_pid" ] || kill "$server_pid" 2>/dev/null || true' EXIT

fail() {
  echo "FAIL: $*"
  for f in "$tmp"/*.out "$tmp"/*.err; do [ -s "$f" ] && { echo "--- $f"; cat "$f"; }; done
  exit 1
}

# Starts the test server with the given flags; sets server_pid and port.
start_server() {
  # Made first: the background job opens it after the polling below starts.
  : >"$tmp/server.out"
  "$server_bin" --lifetime=50s "$@" >"$tmp/server.out" 2>"$tmp/server.err" &
  server_pid=$!
  port=""
  for _ in $(seq 1 100); do
    port=$(sed -n 's/^listening on 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$tmp/server.out")
    [ -n "$port" ] && return 0
    sleep 0.05
  done
  fail "test server did not print its port"
}

stop_server() {
  kill "$server_pid" 2>/dev/null || true
  wait "$server_pid" 2>/dev/null || true
  server_pid=""
}

# Prints the value of KEY in the RESULT line of file $1.
result() {
  sed -n 's/^RESULT .*\<'"$2"'=\([^ ]*\).*/\1/p' "$1"
}

# 1. A clean run, with server CPU accounting.
start_server
"$loadgen" --port="$port" --connections=4 --size=1024 --warmup=200ms \
  --duration=1s --server_pid="$server_pid" >"$tmp/ok.out" 2>"$tmp/ok.err" ||
  fail "loadgen failed against a correct echo server"
requests=$(result "$tmp/ok.out" requests)
[ "${requests:-0}" -gt 0 ] || fail "no requests reported"
[ -n "$(result "$tmp/ok.out" server_cpu_us_per_req)" ] || fail "no server CPU"
for key in p50_us p99_us p999_us loadgen_cpu_us_per_req host_cpu_util tcp_retrans; do
  [ -n "$(result "$tmp/ok.out" "$key")" ] || fail "no $key"
done
[ ! -s "$tmp/ok.err" ] || fail "unexpected stderr"
echo "clean run: $requests requests"

# 1b. Several threads share the connections; one result for all of them.
"$loadgen" --port="$port" --connections=5 --threads=3 --size=512 \
  --warmup=100ms --duration=500ms >"$tmp/threads.out" 2>"$tmp/threads.err" ||
  fail "loadgen --threads=3 failed"
[ "$(result "$tmp/threads.out" threads)" = 3 ] || fail "threads not reported"
[ "$(result "$tmp/threads.out" connections)" = 5 ] || fail "connections"
[ "$(result "$tmp/threads.out" requests)" -gt 0 ] || fail "no requests (threads)"
echo "threads: $(result "$tmp/threads.out" requests) requests"

# 2. Large messages (partial writes, echo arriving while still sending), JSON.
"$loadgen" --port="$port" --connections=2 --size=1000000 --warmup=0s \
  --duration=300ms --format=json >"$tmp/big.out" 2>"$tmp/big.err" ||
  fail "loadgen failed with 1 MB messages"
grep -q '"requests":[1-9]' "$tmp/big.out" || fail "no requests in JSON"
grep -q '"server_cpu_us_per_req":null' "$tmp/big.out" || fail "JSON server CPU"
stop_server

# 3. The server flips one byte: loadgen must say so and exit 1.
start_server --corrupt_at=5000
status=0
"$loadgen" --port="$port" --connections=4 --size=1024 --warmup=0s \
  --duration=1s >"$tmp/corrupt.out" 2>"$tmp/corrupt.err" || status=$?
[ "$status" -eq 1 ] || fail "corrupted echo: exit status $status, want 1"
grep -q "wrong echo byte at offset 904 of request 4" "$tmp/corrupt.err" ||
  fail "corrupted echo: unclear error"
! grep -q '^RESULT' "$tmp/corrupt.out" || fail "corrupted echo: RESULT printed"
echo "corrupted echo: $(cat "$tmp/corrupt.err")"
# With threads, the first failing thread stops the others and the run ends
# at once, not after the 30 s window.
status=0
started=$SECONDS
"$loadgen" --port="$port" --connections=4 --threads=2 --size=1024 \
  --warmup=0s --duration=30s >"$tmp/corrupt2.out" 2>"$tmp/corrupt2.err" || status=$?
[ "$status" -eq 1 ] || fail "corrupted echo, 2 threads: exit status $status, want 1"
grep -q "wrong echo byte at offset 904 of request 4" "$tmp/corrupt2.err" ||
  fail "corrupted echo, 2 threads: unclear error"
((SECONDS - started < 20)) || fail "corrupted echo, 2 threads: ran the window out"
stop_server

# 4. Nobody listens on the port any more: connection refused, exit 1.
status=0
"$loadgen" --port="$port" --connections=4 --duration=1s \
  >"$tmp/refused.out" 2>"$tmp/refused.err" || status=$?
[ "$status" -eq 1 ] || fail "refused: exit status $status, want 1"
grep -q "Connection refused" "$tmp/refused.err" || fail "refused: unclear error"
echo "refused: $(cat "$tmp/refused.err")"

# 5. Not loopback: refused before any packet is sent; bad flags exit 2.
status=0
"$loadgen" --host=192.0.2.1 --port=9 >/dev/null 2>"$tmp/remote.err" || status=$?
[ "$status" -eq 2 ] || fail "non-loopback host: exit status $status, want 2"
grep -q "not a loopback address" "$tmp/remote.err" || fail "non-loopback: unclear error"
status=0
"$loadgen" --port=1 --size=0 >/dev/null 2>"$tmp/usage.err" || status=$?
[ "$status" -eq 2 ] || fail "--size=0: exit status $status, want 2"
status=0
"$loadgen" --port=1 --connections=2 --threads=3 >/dev/null 2>"$tmp/threads.err" || status=$?
[ "$status" -eq 2 ] || fail "--threads > --connections: exit status $status, want 2"
grep -q "at most --connections" "$tmp/threads.err" || fail "--threads: unclear error"

# 6. TLS against sluice's TLS echo server (its ephemeral certificate): the
# handshakes finish before the window, every echo is checked as over TCP.
tls_server="$TEST_SRCDIR/$TEST_WORKSPACE/samples/tls_echo_server"
: >"$tmp/tls_server.out"
"$tls_server" --port=0 >"$tmp/tls_server.out" 2>"$tmp/tls_server.err" &
server_pid=$!
tls_port=""
for _ in $(seq 1 100); do
  tls_port=$(sed -n 's/^tls echo server listening on 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$tmp/tls_server.out")
  [ -n "$tls_port" ] && break
  sleep 0.05
done
[ -n "$tls_port" ] || fail "the TLS echo server did not print its port"
"$loadgen" --tls --port="$tls_port" --connections=3 --size=20000 \
  --warmup=100ms --duration=500ms >"$tmp/tls.out" 2>"$tmp/tls.err" ||
  fail "loadgen --tls failed against the TLS echo server"
[ "$(result "$tmp/tls.out" tls)" = 1 ] || fail "--tls: not reported"
[ "$(result "$tmp/tls.out" requests)" -gt 0 ] || fail "--tls: no requests"
grep -q "over TLSv1.3 TLS_AES_128_GCM_SHA256" "$tmp/tls.out" ||
  fail "--tls: not TLS 1.3 with AES-128-GCM"
echo "tls: $(result "$tmp/tls.out" requests) requests"
status=0
"$loadgen" --tls --tls_ciphersuites=NO_SUCH_SUITE --port="$tls_port" \
  >/dev/null 2>"$tmp/suite.err" || status=$?
[ "$status" -eq 2 ] || fail "bad --tls_ciphersuites: exit status $status, want 2"
stop_server
# A plain echo server answers the ClientHello with its own bytes: a clear
# handshake failure, exit 1.
start_server
status=0
"$loadgen" --tls --port="$port" --connections=1 --duration=1s \
  >"$tmp/plain.out" 2>"$tmp/plain.err" || status=$?
[ "$status" -eq 1 ] || fail "--tls against plain TCP: exit status $status, want 1"
grep -q "TLS handshake failed" "$tmp/plain.err" || fail "--tls against plain TCP: unclear error"
echo "tls against plain TCP: $(cat "$tmp/plain.err")"
stop_server

echo "loadgen_test OK"
