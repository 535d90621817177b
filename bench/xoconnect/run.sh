#!/usr/bin/env bash
# Xen Orchestra connector against 10,000 VMs: full connect and cache fill.
#
#   bench/xoconnect/run.sh          (RUNS=3 VMS=10000 by default)
#
# 1. builds cmd/xenithd, 2. fills a temporary data directory with VMS VMs
# (bench/xoconnect/main.go), 3. starts xenithd on a loopback port, 4. runs
# bench/xoconnect/connect.mjs RUNS times (a fresh connector each time) and
# prints each run and the median of fetched_ms (connect() start to
# objectsFetched). Bar: median < 3000 ms.
set -euo pipefail
cd "$(dirname "$0")/../.."
RUNS=${RUNS:-3} VMS=${VMS:-10000}
TMP=$(mktemp -d -t xenith-xoconnect-XXXXXX)
PID=
cleanup() {
	if [[ -n "$PID" ]]; then kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; fi
	rm -rf "$TMP"
}
trap cleanup EXIT

echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'); $(go version | cut -d' ' -f3); node $(node --version); load average $(cut -d' ' -f1-3 /proc/loadavg)"
go build -o "$TMP/xenithd" ./cmd/xenithd
go run ./bench/xoconnect -dir "$TMP/data" -vms "$VMS"

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$TMP/xenithd" --data "$TMP/data" --http "127.0.0.1:$PORT" --https "" --socket none \
	--root-password pw --sim-boot-time 0 --log-level warn 2>"$TMP/xenithd.log" &
PID=$!
start=$(date +%s.%N)
until curl -s -o /dev/null "http://127.0.0.1:$PORT/"; do
	kill -0 "$PID" 2>/dev/null || { cat "$TMP/xenithd.log"; exit 1; }
	sleep 0.05
done
printf 'xenithd up in %.2f s (pid %d), RSS %s\n' "$(echo "$(date +%s.%N) - $start" | bc)" "$PID" \
	"$(awk '/VmRSS/ {print $2, $3}' /proc/$PID/status)"

times=()
for i in $(seq "$RUNS"); do
	line=$(node bench/xoconnect/connect.mjs --url "http://127.0.0.1:$PORT" --password pw)
	echo "run $i: $line"
	times+=("$(sed -E 's/.*"fetched_ms":([0-9]+).*/\1/' <<<"$line")")
done
median=$(printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
verdict=PASS
((median < 3000)) || verdict=FAIL
echo "xenithd RSS after: $(awk '/VmRSS/ {print $2, $3}' /proc/$PID/status)"
echo "median connect+cache fill over $RUNS runs: ${median} ms (bar < 3000 ms): $verdict"
