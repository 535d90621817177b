#!/usr/bin/env bash
# Runs every benchmark of BENCHMARKS.md and prints a summary table.
#
#   bench/run.sh            full run (about 4-5 minutes on 2 cores)
#   QUICK=1 bench/run.sh    fewer rounds (about 2 minutes)
#
# Steps:
#   1. go test -bench=. ./bench/      in-process Go benchmarks (bars 1, 2)
#   2. rpcbench                       bars 1 and 2, server in its own process,
#                                     interleaved rounds, Go http.Client load
#   3. rpcbench -bars 1 -wrk          bar 1 again with wrk as the load
#                                     generator (skipped if wrk is missing)
#   4. memload                        bar 3, 10,000 VMs, build and reopen
#
# Raw outputs are kept in $OUT (a temporary directory unless set).
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=${OUT:-$(mktemp -d -t xenith-bench-XXXXXX)}
mkdir -p "$OUT"
if [[ -n "${QUICK:-}" ]]; then
	ROUNDS=${ROUNDS:-4} ROUND=${ROUND:-1s} CALLS=${CALLS:-5} BENCHTIME=${BENCHTIME:-500ms}
else
	ROUNDS=${ROUNDS:-8} ROUND=${ROUND:-2s} CALLS=${CALLS:-9} BENCHTIME=${BENCHTIME:-1s}
fi

echo "== machine"
echo "nproc: $(nproc); CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'); $(go version)"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "raw output in $OUT"

go build -o "$OUT/rpcbench" ./bench/cmd/rpcbench
go build -o "$OUT/memload" ./bench/cmd/memload

echo
echo "== 1. go test -run='^\$' -bench=. -benchtime=$BENCHTIME ./bench/"
go test -run='^$' -bench=. -benchtime="$BENCHTIME" ./bench/ | tee "$OUT/gotest.txt"

echo
echo "== 2. rpcbench (Go clients, server in its own process)"
"$OUT/rpcbench" -bars 1,2 -rounds "$ROUNDS" -round "$ROUND" -calls "$CALLS" | tee "$OUT/rpcbench.txt"

if command -v wrk >/dev/null; then
	echo
	echo "== 3. rpcbench -wrk (bar 1 with wrk as the load generator)"
	"$OUT/rpcbench" -bars 1 -wrk -rounds "$ROUNDS" -round "$ROUND" | tee "$OUT/rpcbench-wrk.txt"
else
	echo
	echo "== 3. skipped: wrk is not installed (apt-get install wrk)"
fi

echo
echo "== 4. memload (10,000 VMs)"
"$OUT/memload" | tee "$OUT/memload.txt"

echo
echo "== summary (load average now: $(cut -d' ' -f1-3 /proc/loadavg))"
{
	echo "bar|target|measured|baseline|vs baseline|bar|verdict"
	# In-process Go benchmarks: %bare from the sub-benchmark lines.
	awk '
		/^BenchmarkGetRecordKeepAlive\/(xmlrpc|jsonrpc)/ {
			split($1, n, "/"); sub(/-[0-9]+$/, "", n[2])
			for (i = 1; i < NF; i++) { if ($(i+1) == "req/s") r = $i; if ($(i+1) == "%bare") p = $i }
			bar = (n[2] == "xmlrpc") ? 50 : 60
			printf "1 get_record req/s (go test, in-process)|%s|%.0f/s|-|%.1f%%|>= %d%%|%s\n", n[2], r, p, bar, (p >= bar) ? "PASS" : "FAIL"
		}
		/^BenchmarkGetAllRecords10k\/(xmlrpc|jsonrpc)/ {
			split($1, n, "/"); sub(/-[0-9]+$/, "", n[2])
			for (i = 1; i < NF; i++) { if ($(i+1) == "ms-median") m = $i; if ($(i+1) == "x-bare") p = $i }
			bar = (n[2] == "xmlrpc") ? 300 : 150
			printf "2 get_all_records 10k VMs, median (go test, in-process)|%s|%.1f ms|-|x%.1f|< %d ms|%s\n", n[2], m, p, bar, (m < bar) ? "PASS" : "FAIL"
		}' "$OUT/gotest.txt"
	cat "$OUT/rpcbench.txt" $([[ -f "$OUT/rpcbench-wrk.txt" ]] && echo "$OUT/rpcbench-wrk.txt") "$OUT/memload.txt" |
		grep '^SUMMARY|' | cut -d'|' -f2-
} | column -t -s'|'
