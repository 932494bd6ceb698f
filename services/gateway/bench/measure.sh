#!/usr/bin/env bash
# Gateway throughput against the native client, for 1 KiB and 1 MiB records, PUT and GET, on a
# fresh local cluster (stores with --sync none, so the disk does not dominate). wrk (Debian
# package "wrk") drives HTTP with 64 keep-alive connections; gateway_native_load drives the native
# client with 64 requests in flight. Prints one line per case and the HTTP/native ratio.
#
#   services/gateway/bench/measure.sh [BUILD_DIR] [SECONDS] [GATEWAY_THREADS]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=$(cd "${1:-build/release}" && pwd)
seconds=${2:-10}
gateway_threads=${3:-16}
command -v wrk >/dev/null || { echo "needs wrk (apt-get install wrk)"; exit 2; }
dir=$(mktemp -d /tmp/ddsplit-gwbench-XXXXXX)
"$build/bin/ddsplit" cluster up --dir "$dir/cluster" --sync none --log-level warn --no-gateway \
  > "$dir/up.log" 2>&1 &
cluster_pid=$!
gateway_pid=""
cleanup() {
  [ -n "$gateway_pid" ] && kill "$gateway_pid" 2>/dev/null && wait "$gateway_pid" 2>/dev/null
  kill -INT "$cluster_pid" 2>/dev/null && wait "$cluster_pid" 2>/dev/null
  rm -rf "$dir"
}
trap cleanup EXIT
for _ in $(seq 300); do grep -q "^running" "$dir/up.log" 2>/dev/null && break; sleep 0.1; done
json="$dir/cluster/cluster.json"
endpoint() { python3 -c "import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]][0]['endpoint'])" "$json" "$1"; }
"$build/bin/ddsplit-gateway" --splitter "$(endpoint splitters)" --assembler "$(endpoint assemblers)" \
  --threads "$gateway_threads" --max-record-bytes 67108864 --log-level warn --announce-fd 3 \
  3> "$dir/announce" 2> "$dir/gateway.log" &
gateway_pid=$!
for _ in $(seq 300); do [ -s "$dir/announce" ] && break; sleep 0.1; done
url=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['url'])" "$dir/announce")
echo "cluster $dir, gateway $url (threads $gateway_threads), $seconds s per case, load $(cut -d' ' -f1-3 /proc/loadavg)"

native() {  # op size keys
  "$build/bin/gateway_native_load" --cluster "$json" --op "$1" --size "$2" --keys "$3" \
    --concurrency 64 --threads 2 --seconds "$seconds" |
    python3 -c "import json,sys; d=json.load(sys.stdin); print('%.1f %.1f %d' % (d['ops_per_second'], d['mib_per_second'], d['errors']))"
}
http() {  # script args...
  local script=$1; shift
  wrk -t2 -c64 -d"${seconds}s" --latency -s "$here/$script" "$url" -- "$@" > "$dir/wrk.txt" 2>&1
  local rps bad
  rps=$(awk '/Requests\/sec/ {print $2}' "$dir/wrk.txt")
  bad=$(awk '/Non-2xx/ {print $5}' "$dir/wrk.txt"); bad=${bad:-0}
  echo "$rps $bad"
}
for size in 1024 1048576; do
  read -r n_put n_put_mib n_put_err < <(native put "$size" 1000)
  read -r h_put h_put_err < <(http put.lua "$size" 1000 "httpbench/$size")
  read -r n_get n_get_mib n_get_err < <(native get "$size" 100)
  read -r h_get h_get_err < <(http get.lua 100 "bench/$size")
  python3 - "$size" "$n_put" "$h_put" "$n_get" "$h_get" "$n_put_err" "$h_put_err" "$n_get_err" "$h_get_err" <<'PY'
import sys
size, n_put, h_put, n_get, h_get = int(sys.argv[1]), *map(float, sys.argv[2:6])
errors = sys.argv[6:10]
mib = size / 2**20
for op, n, h, ne, he in (("PUT", n_put, h_put, errors[0], errors[1]), ("GET", n_get, h_get, errors[2], errors[3])):
    print(f"{op} {size:>8} B: native {n:9.1f} ops/s ({n*mib:7.1f} MiB/s)  http {h:9.1f} ops/s "
          f"({h*mib:7.1f} MiB/s)  ratio {h/n if n else 0:.2f}  errors native {ne} http-non2xx {he}")
PY
done
