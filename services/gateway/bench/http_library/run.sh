#!/bin/bash
# The HTTP library comparison behind the gateway's choice of Boost.Beast (see README, HTTP API):
# a hello server on cpp-httplib 0.11.4, civetweb 1.15, Boost.Beast (async) and the gateway's own
# HttpServer, each under wrk with 64 keep-alive connections for GET 13 B, GET 1 MiB, PUT 1 MiB
# and PUT 1 KiB, 5 s per case. quirk.cpp and civet_uri.cpp show the correctness problems that ruled
# out cpp-httplib (Range handling) and civetweb (URI decoding). Not part of the build or the tests.
#
#   services/gateway/bench/http_library/run.sh BUILD_DIR    (BUILD_DIR with libddsplit_gateway.a)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=$(cd "${1:-build/release}" && pwd)
out=$(mktemp -d /tmp/ddsplit-httplib-XXXXXX)
trap 'rm -rf "$out"' EXIT
g++ -O2 -std=c++20 "$here/httplib_hello.cpp" -o "$out/httplib_hello" $(pkg-config --cflags --libs cpp-httplib) -lpthread
g++ -O2 -std=c++20 "$here/civet_hello.cpp" -o "$out/civet_hello" -lcivetweb -lpthread
g++ -O2 -std=c++20 "$here/beast_hello.cpp" -o "$out/beast_hello" -lpthread
g++ -O2 -std=c++20 -I"$here/../../../.." "$here/gw_hello.cpp" -o "$out/gw_hello" \
  "$build/services/gateway/libddsplit_gateway.a" "$build/client/libddsplit_client.a" \
  "$build/common/metrics/libddsplit_metrics.a" "$build/common/wire/libddsplit_wire.a" \
  "$build/common/transport/libddsplit_transport.a" "$build/common/base/libddsplit_base.a" \
  -lspdlog -lfmt -lprometheus-cpp-core -lzmq -lpthread
printf 'wrk.method = "PUT"\nwrk.body = string.rep("x", 1048576)\n' > "$out/put1m.lua"
printf 'wrk.method = "PUT"\nwrk.body = string.rep("x", 1024)\n' > "$out/put1k.lua"
echo "load $(cut -d' ' -f1-3 /proc/loadavg)"
for server in "httplib_hello 64" "civet_hello 64" "beast_hello 64" "gw_hello 64" "gw_hello 16"; do
  "$out/${server%% *}" ${server#* } > "$out/port" & pid=$!
  for _ in $(seq 50); do [ -s "$out/port" ] && break; sleep 0.1; done
  port=$(cat "$out/port")
  for case in "GET /small" "GET /big" "PUT1M /put" "PUT1K /put"; do
    set -- $case
    script=""; [ "$1" = PUT1M ] && script="-s $out/put1m.lua"; [ "$1" = PUT1K ] && script="-s $out/put1k.lua"
    result=$(wrk -t2 -c64 -d5s $script "http://127.0.0.1:$port$2" 2>&1)
    echo "$server $1 $2 req/s=$(echo "$result" | awk '/Requests\/sec/ {print $2}') $(echo "$result" | grep -E 'Socket errors|Non-2xx' | tr '\n' ' ')"
  done
  kill $pid; wait $pid 2>/dev/null || true; rm -f "$out/port"
done
