#!/usr/bin/env bash
# Every sample's --help starts with what it does and an example command, and
# lists its flags, the shared ones included.
set -euo pipefail

dir="$TEST_SRCDIR/$TEST_WORKSPACE/samples"
for sample in broadcast countdown echo_client echo_server stream_server \
  tls_echo_server; do
  help="$TEST_TMPDIR/$sample.help"
  # Abseil exits with 1 after printing the help.
  "$dir/$sample" --help >"$help" 2>&1 || true
  if grep -q "SetProgramUsageMessage" "$help"; then
    echo "$sample: no usage message" >&2
    exit 1
  fi
  grep -q "./bazelw run //samples:$sample -- " "$help" ||
    { echo "$sample --help shows no example command:" >&2; cat "$help" >&2; exit 1; }
  grep -q -- "-port" "$help" || [ "$sample" = countdown ] ||
    { echo "$sample --help lists no --port:" >&2; cat "$help" >&2; exit 1; }
done
# The flags of the shared sources are listed too.
grep -q -- "-shutdown_timeout" "$TEST_TMPDIR/echo_server.help"
grep -q -- "-cert" "$TEST_TMPDIR/tls_echo_server.help"
echo "help OK"
