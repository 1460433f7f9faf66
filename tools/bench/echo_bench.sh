#!/usr/bin/env bash
# Benchmarks echo servers -- sluice's and peers on libuv, Boost.Asio,
# uvloop and Node -- with tools/loadgen, and prints a Markdown table.
#
#   tools/bench/echo_bench.sh                      # everything, 10 s per cell
#   tools/bench/echo_bench.sh --quick              # smoke test: 1 s per cell
#   tools/bench/echo_bench.sh --servers=libuv,asio --sizes=1024 --conns=10,100
#   tools/bench/echo_bench.sh --tls                # TLS: sluice, asio, uvloop, node
#
# Each server runs pinned to one CPU (--server_cpu, default 0) and loadgen to
# others (--loadgen_cpu, default 1; with --loadgen_threads on a machine with
# cores to spare, loadgen need not be the bottleneck). Servers listen on 127.0.0.1 on a port
# they pick (--port=0) and print it; loadgen only ever targets loopback.
# See docs/benchmarks.md for what the columns mean.
set -euo pipefail

usage() {
  cat <<'EOF'
usage: tools/bench/echo_bench.sh [flags]
  --servers=LIST      comma-separated, from: sluice sluice-streams libuv
                      asio uvloop uvloop-streams node baseline
                      baseline-streams (default: sluice,libuv,asio,uvloop;
                      with --tls: sluice,asio,uvloop,node)
  --tls               every server speaks TLS with the same certificate
                      (made by //tools:make_certs), loadgen --tls (TLS 1.3,
                      TLS_AES_128_GCM_SHA256, handshakes before the warmup);
                      sluice is samples:tls_echo_server, asio Boost.Asio's
                      ssl::stream, uvloop Python's ssl, node Node's tls
  --baseline=PATH     an echo_server binary of another sluice build (e.g.
                      an older commit's, built with --config=opt): the
                      servers baseline and baseline-streams run it, in the
                      same interleaved rounds as this build's
  --sizes=LIST        message sizes in bytes (default: 1024,10240,102400)
  --conns=LIST        connection counts (default: 10,100)
  --duration=D        measured time per cell (default: 10s; --quick: 1s)
  --warmup=D          warmup per cell (default: 1s; --quick: 200ms)
  --repeat=N          run each cell N times (fresh connections each time)
                      and report the run with the median req/s (default: 1)
  --max_other_cpu=P   a run during which the rest of the host used more than
                      P% of a CPU (e.g. a build) is retried (default: 15)
  --tries=N           retries per run before keeping a disturbed one, marked
                      "*" in the table (default: 6, 10 s apart)
  --quick             short durations, for a smoke test
  --server_cpu=N      CPU the server is pinned to (default: 0)
  --loadgen_cpu=LIST  CPU(s) loadgen is pinned to, as taskset takes them:
                      1, 1-3, 1,3 (default: 1)
  --loadgen_threads=N loadgen threads (default: 1); give each a CPU of its
                      own, e.g. --loadgen_cpu=1-3 --loadgen_threads=3
  --output=FILE       also write the Markdown table to FILE
  --raw=FILE          also write loadgen's RESULT lines to FILE
  --no_install        do not apt-get missing packages; skip their servers
Durations are loadgen's: 500ms, 5s, 1m.
EOF
}

die() {
  echo "echo_bench: $*" >&2
  exit 1
}

note() { echo "echo_bench: $*" >&2; }

servers=""
tls=0
sizes=1024,10240,102400
conns=10,100
duration=""
warmup=""
quick=0
repeat=1
max_other_cpu=15
tries=6
server_cpu=0
loadgen_cpu=1
loadgen_threads=1
output=""
raw=""
install=1
baseline=""

for arg in "$@"; do
  case "$arg" in
    --servers=*) servers=${arg#*=} ;;
    --tls) tls=1 ;;
    --sizes=*) sizes=${arg#*=} ;;
    --conns=*) conns=${arg#*=} ;;
    --duration=*) duration=${arg#*=} ;;
    --warmup=*) warmup=${arg#*=} ;;
    --repeat=*) repeat=${arg#*=} ;;
    --max_other_cpu=*) max_other_cpu=${arg#*=} ;;
    --tries=*) tries=${arg#*=} ;;
    --quick) quick=1 ;;
    --server_cpu=*) server_cpu=${arg#*=} ;;
    --loadgen_cpu=*) loadgen_cpu=${arg#*=} ;;
    --loadgen_threads=*) loadgen_threads=${arg#*=} ;;
    --output=*) output=${arg#*=} ;;
    --raw=*) raw=${arg#*=} ;;
    --no_install) install=0 ;;
    --baseline=*) baseline=${arg#*=} ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; die "unknown flag: $arg" ;;
  esac
done
if ((quick)); then
  : "${duration:=1s}" "${warmup:=200ms}"
else
  : "${duration:=10s}" "${warmup:=1s}"
fi

if [ -z "$servers" ]; then
  if ((tls)); then servers=sluice,asio,uvloop,node; else servers=sluice,libuv,asio,uvloop; fi
fi
IFS=, read -r -a server_list <<<"$servers"
for s in "${server_list[@]}"; do
  case "$s" in
    sluice | asio | uvloop | node) ;;
    sluice-streams | libuv | uvloop-streams | baseline | baseline-streams)
      ((!tls)) || die "$s has no TLS mode (with --tls: sluice asio uvloop node)" ;;&
    sluice-streams | libuv | uvloop-streams) ;;
    baseline | baseline-streams)
      [ -x "$baseline" ] || die "$s needs --baseline=PATH to an echo_server binary" ;;
    *) die "unknown server '$s' (known: sluice sluice-streams libuv asio uvloop uvloop-streams node baseline baseline-streams)" ;;
  esac
done
IFS=, read -r -a size_list <<<"$sizes"
IFS=, read -r -a conn_list <<<"$conns"
for n in "${size_list[@]}" "${conn_list[@]}" "$server_cpu" "$loadgen_threads" "$repeat" "$max_other_cpu" "$tries"; do
  [[ "$n" =~ ^[0-9]+$ ]] || die "not a number: '$n'"
done
[[ "$loadgen_cpu" =~ ^[0-9]+([-,][0-9]+)*$ ]] ||
  die "--loadgen_cpu: not a CPU list: '$loadgen_cpu' (e.g. 1, 1-3, 1,3)"

# Seconds (rounded up) in a loadgen duration like 500ms, 5s, 1.5m.
seconds_of() {
  awk -v d="$1" 'BEGIN {
    if (match(d, /^[0-9.]+ms$/)) s = substr(d, 1, length(d) - 2) / 1000;
    else if (match(d, /^[0-9.]+s$/)) s = substr(d, 1, length(d) - 1);
    else if (match(d, /^[0-9.]+m$/)) s = substr(d, 1, length(d) - 1) * 60;
    else exit 1;
    printf "%d\n", (s == int(s)) ? s : int(s) + 1 }' ||
    die "bad duration '$1' (use e.g. 500ms, 5s, 1m)"
}
cell_timeout=$(($(seconds_of "$duration") + $(seconds_of "$warmup") + 30))

workspace=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)
cd "$workspace"

# --- Packages -----------------------------------------------------------------

package_of() {
  case "$1" in
    sluice | sluice-streams | baseline | baseline-streams) ;;
    libuv) echo libuv1-dev ;;
    asio) echo libboost-dev ;;
    uvloop | uvloop-streams) echo python3-uvloop ;;
    node) echo nodejs ;;
  esac
}

installed() {
  [ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null)" = installed ]
}

missing=()
for s in "${server_list[@]}"; do
  p=$(package_of "$s")
  if [ -n "$p" ] && ! installed "$p" && [[ " ${missing[*]} " != *" $p "* ]]; then
    missing+=("$p")
  fi
done
if ((${#missing[@]} > 0)); then
  if ((install)); then
    sudo=()
    ((EUID == 0)) || sudo=(sudo)
    note "installing ${missing[*]}"
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update >&2 ||
      die "apt-get update failed"
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y \
      "${missing[@]}" >&2 || die "apt-get install ${missing[*]} failed"
  else
    kept=()
    for s in "${server_list[@]}"; do
      p=$(package_of "$s")
      if [ -n "$p" ] && ! installed "$p"; then
        note "skipping $s: $p is not installed (--no_install)"
      else
        kept+=("$s")
      fi
    done
    server_list=("${kept[@]}")
  fi
fi

# --- Build --------------------------------------------------------------------

targets=(//tools/loadgen:loadgen)
((!tls)) || targets+=(//tools:make_certs)
for s in "${server_list[@]}"; do
  case "$s" in
    sluice) targets+=(//samples:"$( ((tls)) && echo tls_echo_server || echo echo_server)") ;;
    sluice-streams) targets+=(//samples:echo_server) ;;
    libuv) targets+=(//tools/bench/peers:libuv_echo) ;;
    asio) targets+=(//tools/bench/peers:asio_echo) ;;
  esac
done
note "building ${targets[*]}"
./bazelw build --config=opt --jobs=2 "${targets[@]}" >&2 || die "build failed"
bin=$(./bazelw info --config=opt bazel-bin 2>/dev/null)
loadgen="$bin/tools/loadgen/loadgen"
loadgen_tls=()
tls_flags=()
workdir=$(mktemp -d "${TMPDIR:-/tmp}/echo_bench.XXXXXX")
if ((tls)); then
  # One certificate (and key type) for every server.
  "$bin/tools/make_certs" --out="$workdir/certs" >&2 || die "make_certs failed"
  tls_flags=(--cert="$workdir/certs/server.pem" --key="$workdir/certs/server.key")
  loadgen_tls=(--tls)
fi

# Sets server_cmd to the command line of server $1, less --port.
server_command() {
  # Debian's python3-uvloop is for /usr/bin/python3, whatever is on PATH.
  local uvloop_echo=(/usr/bin/python3 "$workspace/tools/bench/peers/uvloop_echo.py")
  if ((tls)); then
    case "$1" in
      sluice) server_cmd=("$bin/samples/tls_echo_server" "${tls_flags[@]}") ;;
      asio) server_cmd=("$bin/tools/bench/peers/asio_echo" --tls "${tls_flags[@]}") ;;
      uvloop) server_cmd=("${uvloop_echo[@]}" --tls "${tls_flags[@]}") ;;
      node) server_cmd=(node "$workspace/tools/bench/peers/node_tls_echo.js" --tls "${tls_flags[@]}") ;;
    esac
    return
  fi
  case "$1" in
    sluice) server_cmd=("$bin/samples/echo_server") ;;
    sluice-streams) server_cmd=("$bin/samples/echo_server" --mode=streams) ;;
    baseline) server_cmd=("$baseline") ;;
    baseline-streams) server_cmd=("$baseline" --mode=streams) ;;
    libuv) server_cmd=("$bin/tools/bench/peers/libuv_echo") ;;
    asio) server_cmd=("$bin/tools/bench/peers/asio_echo") ;;
    uvloop) server_cmd=("${uvloop_echo[@]}") ;;
    uvloop-streams) server_cmd=("${uvloop_echo[@]}" --streams) ;;
    node) server_cmd=(node "$workspace/tools/bench/peers/node_tls_echo.js" --no-tls) ;;
  esac
}

# --- Running ------------------------------------------------------------------

cpus=$(nproc)
server_pin=()
loadgen_pin=()
if ((cpus >= 2)) && [ "$server_cpu" != "$loadgen_cpu" ]; then
  server_pin=(taskset -c "$server_cpu")
  loadgen_pin=(taskset -c "$loadgen_cpu")
else
  note "warning: $cpus CPU(s) (or the same CPU twice): not pinning"
fi

declare -A pid port

stop_servers() {
  local s p
  for s in "${!pid[@]}"; do kill -TERM "${pid[$s]}" 2>/dev/null || true; done
  for _ in $(seq 1 40); do
    p=""
    for s in "${!pid[@]}"; do kill -0 "${pid[$s]}" 2>/dev/null && p=1; done
    [ -n "$p" ] || break
    sleep 0.05
  done
  for s in "${!pid[@]}"; do
    kill -KILL "${pid[$s]}" 2>/dev/null || true
    wait "${pid[$s]}" 2>/dev/null || true
    unset "pid[$s]"
  done
}

cleanup() {
  stop_servers
  rm -rf "$workdir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Starts server $1 pinned; sets pid[$1] and port[$1]. The server must print
# its port on stdout within 10 s, as "...:PORT" or "port PORT".
start_server() {
  local name=$1 p=""
  server_command "$name"
  "${server_pin[@]}" "${server_cmd[@]}" --port=0 >"$workdir/$name.out" 2>"$workdir/$name.err" &
  pid[$name]=$!
  for _ in $(seq 1 200); do
    p=$(grep -oE '(:|port[= ])[0-9]+' "$workdir/$name.out" | head -n1 | grep -oE '[0-9]+$' || true)
    if [ -n "$p" ]; then
      port[$name]=$p
      return 0
    fi
    kill -0 "${pid[$name]}" 2>/dev/null || break
    sleep 0.05
  done
  cat "$workdir/$name.err" >&2
  return 1
}

# Prints the value of KEY ($2) in RESULT line $1, or "-".
field() {
  local v
  v=$(sed -n 's/^RESULT .*\<'"$2"'=\([^ ]*\).*/\1/p' <<<"$1")
  echo "${v:--}"
}

# Prints the CPU the rest of the host used during RESULT line $1, in % of
# one CPU (0 if unknown): host busy time less server's and loadgen's.
other_cpu() {
  awk -v host="$(field "$1" host_cpu_util)" -v srv="$(field "$1" server_cpu_util)" \
    -v lg="$(field "$1" loadgen_cpu_util)" 'BEGIN {
      if (host == "-" || srv == "-") { print 0; exit }
      o = (host - srv - lg) * 100; printf "%d\n", (o > 0) ? o + 0.5 : 0 }'
}

# Runs loadgen once against server $1 with size $2 and $3 connections,
# retrying while other work disturbs the run. Sets `result` (the RESULT
# line) and `disturbed` ("*" if a disturbed run was kept); returns 1 on error.
measure() {
  local s=$1 size=$2 c=$3 try status other
  disturbed=""
  for ((try = 1; ; try++)); do
    status=0
    "${loadgen_pin[@]}" timeout --kill-after=5 "$cell_timeout" "$loadgen" \
      --host=127.0.0.1 --port="${port[$s]}" --connections="$c" --size="$size" \
      "${loadgen_tls[@]}" \
      --threads="$loadgen_threads" \
      --duration="$duration" --warmup="$warmup" --server_pid="${pid[$s]}" \
      >"$workdir/cell.out" 2>"$workdir/cell.err" || status=$?
    result=$(grep '^RESULT ' "$workdir/cell.out" || true)
    if ((status != 0)) || [ -z "$result" ]; then
      note "$s size=$size conns=$c: loadgen failed (status $status): $(cat "$workdir/cell.err")"
      return 1
    fi
    sed -n '3p' "$workdir/cell.out" | sed "s/^/echo_bench: $s /" >&2
    sleep 0.2  # let the server reap the connections
    other=$(other_cpu "$result")
    ((other > max_other_cpu)) || return 0
    if ((try >= tries)); then
      note "keeping a disturbed run (other work used ${other}% of a CPU)"
      disturbed="*"
      return 0
    fi
    note "other work used ${other}% of a CPU during that run: retrying in 10 s"
    sleep 10
  done
}

# Prints the table row for server $1, size $2, $3 connections, from the
# runs in runs[$1 $2 $3] ("REQ_PER_S RESULT..." lines): the median by req/s.
row() {
  local s=$1 size=$2 c=$3 sorted result range
  mapfile -t sorted < <(printf '%s' "${runs[$s $size $c]}" | sort -g)
  result=${sorted[$(((${#sorted[@]} - 1) / 2))]#* }
  range="-"
  if ((${#sorted[@]} > 1)); then
    range=$(awk -v lo="${sorted[0]%% *}" -v hi="${sorted[-1]%% *}" \
      'BEGIN { printf "%.0f–%.0f", lo, hi }')
  fi
  awk -v s="$s${marks[$s $size $c]:-}" -v size="$size" -v c="$c" -v range="$range" \
    -v rps="$(field "$result" req_per_s)" -v mib="$(field "$result" mib_per_s)" \
    -v p50="$(field "$result" p50_us)" -v p99="$(field "$result" p99_us)" \
    -v cpu="$(field "$result" server_cpu_us_per_req)" \
    -v util="$(field "$result" server_cpu_util)" \
    -v lg="$(field "$result" loadgen_cpu_util)" \
    -v host="$(field "$result" host_cpu_util)" \
    -v retrans="$(field "$result" tcp_retrans)" 'BEGIN {
      o = (host - util - lg) * 100
      other = (host == "-") ? "-" : sprintf("%.0f%%", (o > -0.5 && o < 0.5) ? 0 : o)
      printf "| %s | %d | %d | %.0f | %s | %.1f | %.0f | %.0f | %.2f | %.0f%% | %.0f%% | %s | %s |\n",
        s, size, c, rps, range, mib, p50, p99, cpu, util * 100, lg * 100, other, retrans }'
}

load=$(cut -d' ' -f1-3 /proc/loadavg)
# How busy the host is before we start, in % of one CPU: others' work skews
# every number (see the "other CPU" column).
busy_before=$( (head -n1 /proc/stat; sleep 1; head -n1 /proc/stat) | awk '
  { b[NR] = $2 + $3 + $4 + $7 + $8; t[NR] = b[NR] + $5 + $6 }
  END { printf "%.0f", (b[2] - b[1]) * 100 / (t[2] - t[1]) * '"$cpus"' }')
if ((busy_before > 10)); then
  note "warning: the host is already busy (${busy_before}% of a CPU before starting): numbers will be noisy"
fi
cpu_model=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1)

# All servers run at once, idle but for the one under load, so that each
# cell's runs alternate between servers: a drift in the machine's speed
# (other VMs on the host, thermal) then hits every server alike.
failures=0
running=()
for s in "${server_list[@]}"; do
  if start_server "$s"; then
    note "$s: pid ${pid[$s]}, 127.0.0.1:${port[$s]}"
    running+=("$s")
  else
    note "$s: did not start (or print its port); skipping it"
    failures=$((failures + 1))
  fi
done

declare -A runs marks failed
rows=()
for size in "${size_list[@]}"; do
  for c in "${conn_list[@]}"; do
    for ((run = 1; run <= repeat; run++)); do
      for s in "${running[@]}"; do
        [ -z "${failed[$s $size $c]:-}" ] || continue
        if ! kill -0 "${pid[$s]}" 2>/dev/null; then
          note "$s: server died"
          failed[$s $size $c]="server died"
          continue
        fi
        if ! measure "$s" "$size" "$c"; then
          failed[$s $size $c]="error"
          continue
        fi
        [ -z "$raw" ] || echo "server=$s run=$run $result" >>"$workdir/raw"
        runs[$s $size $c]+="$(field "$result" req_per_s) $result"$'\n'
        [ -z "$disturbed" ] || marks[$s $size $c]="*"
      done
    done
    for s in "${running[@]}"; do
      if [ -n "${failed[$s $size $c]:-}" ]; then
        rows+=("| $s | $size | $c | ${failed[$s $size $c]} |$(printf ' |%.0s' 1 2 3 4 5 6 7 8 9)")
        failures=$((failures + 1))
      else
        rows+=("$(row "$s" "$size" "$c")")
      fi
    done
  done
done
stop_servers

{
  echo "Echo benchmark$( ((tls)) && echo " over TLS (TLS 1.3, TLS_AES_128_GCM_SHA256)"): $cpus CPUs ($cpu_model), kernel $(uname -r);"
  echo "server on CPU $server_cpu, loadgen ($loadgen_threads thread(s)) on CPU $loadgen_cpu; $warmup warmup + $duration per run,"
  echo "median of $repeat run(s) by req/s; before the run: load average $load, ${busy_before}% of a CPU busy."
  echo "Latencies in µs; MiB/s is payload in each direction; other CPU = CPU the rest"
  echo "of the host used meanwhile; retrans = TCP segments the host retransmitted"
  echo "during the median run (stalls). A \"*\" marks a cell kept although other work"
  echo "used more than ${max_other_cpu}% of a CPU during it. See docs/benchmarks.md."
  echo
  echo "| server | size (B) | conns | req/s | req/s range | MiB/s | p50 µs | p99 µs | server CPU µs/req | server CPU | loadgen CPU | other CPU | retrans |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
  printf '%s\n' "${rows[@]}"
} >"$workdir/table.md"
cat "$workdir/table.md"
[ -z "$output" ] || cp "$workdir/table.md" "$output"
[ -z "$raw" ] || cp "$workdir/raw" "$raw" 2>/dev/null || true
((failures == 0)) || die "$failures failure(s), see above"
