#!/usr/bin/env bash
# Runs tls_echo_server as a user would, against openssl s_client and
# echo_client --tls: with its ephemeral certificate, with make_certs's CA,
# and requiring client certificates.
set -euo pipefail

dir="$TEST_SRCDIR/$TEST_WORKSPACE/samples"
make_certs="$TEST_SRCDIR/$TEST_WORKSPACE/tools/make_certs"
out="$TEST_TMPDIR/server.out"
err="$TEST_TMPDIR/server.err"

fail() {
  echo "FAIL: $*" >&2
  echo "--- server stdout:" >&2
  cat "$out" >&2
  echo "--- server stderr:" >&2
  cat "$err" >&2
  exit 1
}

# Prints the first line matching $2 in file $1, waiting (bounded) for it.
wait_for_line() {
  for _ in $(seq 1 200); do
    if grep -m1 "$2" "$1"; then return 0; fi
    sleep 0.05
  done
  fail "timed out waiting for '$2' in $1"
}

# Starts the server with flags "$@"; sets $server and $port.
start_server() {
  "$dir/tls_echo_server" --port=0 "$@" >"$out" 2>"$err" &
  server=$!
  port=$(wait_for_line "$out" "tls echo server listening on" |
    sed -E 's/.*:([0-9]+)$/\1/')
}

# SIGTERM: a clean shutdown.
stop_server() {
  kill -TERM "$server"
  wait "$server" || fail "the server exited with $?"
  server=""
  grep -q "shutting down" "$out" || fail "no 'shutting down'"
}

server=""
trap '[ -z "$server" ] || kill "$server" 2>/dev/null || true' EXIT

# Sends a line through `openssl s_client "$@"` and prints the line echoed:
# s_client's input stays open until the echo is read (or 10 s passed).
s_client_echo() {
  local line=$1
  shift
  coproc S_CLIENT {
    exec timeout 10 openssl s_client -connect "127.0.0.1:$port" -quiet \
      -no_ign_eof "$@" 2>>"$TEST_TMPDIR/s_client.err"
  }
  local to=${S_CLIENT[1]} from=${S_CLIENT[0]} pid=$S_CLIENT_PID
  printf '%s\n' "$line" >&"$to"
  local echoed=""
  read -r -t 10 echoed <&"$from" || true
  exec {to}>&-
  wait "$pid" || true
  printf '%s\n' "$echoed"
}

# echo_client --tls "$@" must fail with a message matching $1.
expect_client_error() {
  local want=$1
  shift
  local status=0
  echo hello | timeout 20 "$dir/echo_client" --port="$port" --tls "$@" \
    >/dev/null 2>"$TEST_TMPDIR/client.err" || status=$?
  [ "$status" -ne 0 ] || fail "echo_client --tls $* should fail"
  grep -q -- "$want" "$TEST_TMPDIR/client.err" || {
    cat "$TEST_TMPDIR/client.err" >&2
    fail "echo_client --tls $*: no '$want'"
  }
}

# 1. No --cert/--key: an ephemeral self-signed certificate, whose fingerprint
# the server prints.
start_server
fingerprint=$(sed -nE 's/^SHA-256 fingerprint (.*)$/\1/p' "$out")
[ -n "$fingerprint" ] || fail "no fingerprint printed"
presented=$(timeout 10 openssl s_client -connect "127.0.0.1:$port" \
  </dev/null 2>/dev/null | openssl x509 -noout -fingerprint -sha256)
[ "$presented" = "sha256 Fingerprint=$fingerprint" ] ||
  fail "the server presented $presented, printed $fingerprint"
[ "$(s_client_echo 'hello over tls')" = "hello over tls" ] ||
  fail "s_client got no echo"
printf 'one\ntwo\n' |
  timeout 20 "$dir/echo_client" --port="$port" --tls --insecure >"$TEST_TMPDIR/lines.out"
[ "$(cat "$TEST_TMPDIR/lines.out")" = "$(printf 'one\ntwo')" ] ||
  fail "echo_client --tls --insecure: wrong echo"
timeout 30 "$dir/echo_client" --port="$port" --tls --insecure --bytes=20000000 |
  grep -q "echoed and verified 20000000 bytes" || fail "bulk echo over TLS"
# Verified against the system's trust store, a self-signed certificate fails.
expect_client_error "certificate verify failed"
grep -q "TLSv1.3" "$out" || fail "no connection line"
stop_server

# 2. A certificate from make_certs's CA.
"$make_certs" --out="$TEST_TMPDIR/certs" >/dev/null
"$make_certs" --out="$TEST_TMPDIR/other" >/dev/null
certs="$TEST_TMPDIR/certs"
start_server --cert="$certs/server.pem" --key="$certs/server.key"
echo hello | timeout 20 "$dir/echo_client" --port="$port" --tls \
  --ca="$certs/ca.pem" --server_name=localhost >"$TEST_TMPDIR/ca.out" ||
  fail "echo_client --ca failed: $(cat "$TEST_TMPDIR/ca.out")"
[ "$(cat "$TEST_TMPDIR/ca.out")" = hello ] || fail "echo_client --ca: wrong echo"
# The IP SAN works as well as the DNS one (--server_name defaults to --host).
echo hello | timeout 20 "$dir/echo_client" --port="$port" --tls \
  --ca="$certs/ca.pem" >/dev/null || fail "echo_client --ca, by IP address"
[ "$(s_client_echo verified -CAfile "$certs/ca.pem" -verify_return_error \
  -verify_hostname localhost)" = verified ] || fail "s_client -CAfile got no echo"
expect_client_error "certificate verify failed" \
  --ca="$TEST_TMPDIR/other/ca.pem" --server_name=localhost
expect_client_error "certificate verify failed: hostname mismatch" \
  --ca="$certs/ca.pem" --server_name=example.test
stop_server

# 3. --ca: client certificates are required and verified.
start_server --cert="$certs/server.pem" --key="$certs/server.key" \
  --ca="$certs/ca.pem" --alpn=echo,h2
[ "$(s_client_echo mutual -CAfile "$certs/ca.pem" -cert "$certs/client.pem" \
  -key "$certs/client.key" -alpn h2)" = mutual ] ||
  fail "s_client with a client certificate got no echo"
grep -q "ALPN h2, client CN=client" "$out" || fail "no client certificate line"
[ -z "$(s_client_echo anonymous -CAfile "$certs/ca.pem")" ] ||
  fail "a client without a certificate got an echo"
[ -z "$(s_client_echo stranger -CAfile "$certs/ca.pem" \
  -cert "$TEST_TMPDIR/other/client.pem" -key "$TEST_TMPDIR/other/client.key")" ] ||
  fail "a client certificate from another CA got an echo"
# TLS 1.3: the client's handshake is done before the server checks it.
expect_client_error "certificate required" --ca="$certs/ca.pem"
grep -q "certificate verify failed" "$err" || fail "the server did not log the rejection"
stop_server

# Bad flags are clear errors.
if "$dir/tls_echo_server" --cert="$certs/server.pem" 2>"$TEST_TMPDIR/flags.err"; then
  fail "--cert without --key should fail"
fi
grep -q -- "--cert and --key go together" "$TEST_TMPDIR/flags.err" ||
  fail "no error for --cert without --key"
echo "tls echo samples OK"
