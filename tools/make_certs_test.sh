#!/usr/bin/env bash
# Runs make_certs as a user would and checks its files with openssl.
set -euo pipefail

bin="$TEST_SRCDIR/$TEST_WORKSPACE/tools/make_certs"
certs="$TEST_TMPDIR/certs"

fail() {
  echo "FAIL: $*" >&2
  exit 1
}

# A key left with a wider mode is narrowed when it is replaced.
mkdir "$certs"
touch "$certs/server.key"
chmod 0644 "$certs/server.key"

"$bin" --out="$certs" --hosts='localhost,127.0.0.1,::1,*.example.test' \
  --days=2 >"$TEST_TMPDIR/out"
for name in ca server client; do
  grep -q "wrote $certs/$name.pem" "$TEST_TMPDIR/out" || fail "$name.pem not reported"
  grep -q "wrote $certs/$name.key" "$TEST_TMPDIR/out" || fail "$name.key not reported"
  [ "$(stat -c %a "$certs/$name.key")" = 600 ] || fail "$name.key is not mode 0600"
done
grep -qF "openssl s_client -connect 127.0.0.1:8443 -CAfile $certs/ca.pem" \
  "$TEST_TMPDIR/out" || fail "no s_client example"

openssl verify -CAfile "$certs/ca.pem" -purpose sslserver "$certs/server.pem"
openssl verify -CAfile "$certs/ca.pem" -purpose sslclient "$certs/client.pem"
openssl x509 -in "$certs/server.pem" -noout -text >"$TEST_TMPDIR/server.txt"
for san in "DNS:localhost" "IP Address:127.0.0.1" "IP Address:0:0:0:0:0:0:0:1" \
  "DNS:\*.example.test" "TLS Web Server Authentication"; do
  grep -q "$san" "$TEST_TMPDIR/server.txt" || fail "server.pem lacks $san"
done
openssl x509 -in "$certs/client.pem" -noout -text |
  grep -q "TLS Web Client Authentication" || fail "client.pem lacks clientAuth"
# --days=2: valid for more than one day, not for three.
openssl x509 -in "$certs/server.pem" -noout -checkend 86400 >/dev/null
if openssl x509 -in "$certs/server.pem" -noout -checkend 259200 >/dev/null; then
  fail "server.pem is valid for more than --days=2"
fi

# `bazel run` passes the caller's directory: a relative --out goes there.
BUILD_WORKING_DIRECTORY="$TEST_TMPDIR" "$bin" --out=relative >/dev/null
[ -f "$TEST_TMPDIR/relative/ca.pem" ] || fail "relative --out not under BUILD_WORKING_DIRECTORY"

# Mistakes: exit status 1, a message naming the problem, nothing written.
expect_error() {
  local want=$1
  shift
  local status=0
  "$bin" "$@" >/dev/null 2>"$TEST_TMPDIR/err" || status=$?
  [ "$status" -eq 1 ] || fail "make_certs $* exited with $status, want 1"
  grep -qF -- "$want" "$TEST_TMPDIR/err" || {
    cat "$TEST_TMPDIR/err" >&2
    fail "make_certs $*: no '$want'"
  }
}
expect_error "--out=DIR is required"
expect_error "is not a directory" --out="$certs/ca.pem"
expect_error "cannot make --out directory $certs/ca.pem/sub: Not a directory" \
  --out="$certs/ca.pem/sub"
expect_error "cannot make --out directory $TEST_TMPDIR/no/such: No such file" \
  --out="$TEST_TMPDIR/no/such"
# Unwritable even for root.
expect_error "open /proc/ca.pem: " --out=/proc
expect_error "--hosts: 'bad host' is neither an IP address nor a DNS name" \
  --out="$TEST_TMPDIR/bad" --hosts='localhost,bad host'
expect_error "--hosts: '-x.test' is neither" --out="$TEST_TMPDIR/bad" --hosts=-x.test
expect_error "--hosts has an empty entry" --out="$TEST_TMPDIR/bad" --hosts=a,,b
expect_error "--days must be positive, got 0" --out="$TEST_TMPDIR/bad" --days=0
expect_error "ends after the year 9999" --out="$TEST_TMPDIR/bad" --days=3000000
[ ! -e "$TEST_TMPDIR/bad" ] || fail "a failed run made its --out directory"
echo "make_certs OK"
