#!/usr/bin/env bash
# Xen Orchestra connector against 10,000 VMs: full connect and cache fill,
# against xenithd and against a same-run baseline, the fastest possible
# server (a replay of xenithd's own answers).
#
#   bench/xoconnect/run.sh          (RUNS=5 VMS=10000 by default)
#
#  1. builds cmd/xenithd and bench/xoconnect/replay;
#  2. fills a temporary data directory with VMS VMs (bench/xoconnect/main.go,
#     which also writes the simulator's domains for the Running VMs, so that
#     xenithd adopts them at startup instead of restarting them);
#  3. starts xenithd on a loopback port, checks that it adopted every domain
#     and idles (its CPU over 2 s);
#  4. one recording connect (bench/xoconnect/connect.mjs) through
#     `replay -record`, a proxy in front of xenithd that keeps every answer;
#  5. starts `replay -replay`, which serves the recorded answers from memory
#     (a call it has no recording of, i.e. the next event.from, is held open);
#  6. RUNS rounds of one connect against xenithd and one against the replay,
#     alternating which goes first, a fresh connector each time;
#  7. prints every run, the medians of fetched_ms (connect() start to
#     objectsFetched), the ratio xenithd / replay (xenithd's own share, read
#     against a baseline measured in the same run on the same noisy
#     machine), and the bar verdict: xenithd median < 3000 ms.
#
# Every connect must fill the cache with no swallowed xen-api warning, at
# least VMS VMs, 2*VMS VBDs and VDIs, VMS VIFs and VM_metrics
# (connect.mjs --expect), and the same object counts as the recording run.
# server_cpu_ms is the CPU the target server (xenithd or the replay) used
# during the run, from /proc/PID/stat.
set -euo pipefail
cd "$(dirname "$0")/../.."
RUNS=${RUNS:-5} VMS=${VMS:-10000}
TMP=$(mktemp -d -t xenith-xoconnect-XXXXXX)
PID= RPID=
cleanup() {
	for p in $RPID $PID; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
	rm -rf "$TMP"
}
trap cleanup EXIT

# cpu_ms PID: user+system CPU time of the process so far, in ms.
TICK=$(getconf CLK_TCK)
cpu_ms() { awk -v t="$TICK" '{ sub(/.*\) /, ""); print int(($12 + $13) * 1000 / t) }' "/proc/$1/stat"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
field() { sed -E "s/.*\"$1\":([0-9]+).*/\\1/" <<<"$2"; }
# counts: the object counts of a connect.mjs line, to compare runs.
counts() { grep -oE '"(objects|VM|VBD|VDI|VIF|VM_metrics)":[0-9]+' <<<"$1" | tr '\n' ' '; }
# start_replay LOG ARGS...: start bench/xoconnect/replay, set RPID and RURL.
start_replay() {
	local log=$1
	shift
	"$TMP/replay" -listen 127.0.0.1:0 "$@" >"$log.out" 2>"$log" &
	RPID=$!
	until grep -q '^listening on ' "$log.out" 2>/dev/null; do
		kill -0 "$RPID" 2>/dev/null || { cat "$log"; exit 1; }
		sleep 0.05
	done
	RURL="http://$(sed -n 's/^listening on //p' "$log.out")"
}
stop_replay() { kill "$RPID"; wait "$RPID" || true; RPID=; }

echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'); $(go version | cut -d' ' -f3); node $(node --version); load average $(cut -d' ' -f1-3 /proc/loadavg)"
go build -o "$TMP/xenithd" ./cmd/xenithd
go build -o "$TMP/replay" ./bench/xoconnect/replay
go run ./bench/xoconnect -dir "$TMP/data" -vms "$VMS"

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
# --sim-memory: room for the ~6,700 running 4 GiB domains (32 TiB), so the
# host's memory accounting stays sane.
"$TMP/xenithd" --data "$TMP/data" --http "127.0.0.1:$PORT" --https "" --socket none \
	--hypervisor sim --sim-memory $((32 << 40)) \
	--root-password pw --sim-boot-time 0 --log-level warn 2>"$TMP/xenithd.log" &
PID=$!
XURL="http://127.0.0.1:$PORT"
start=$(date +%s.%N)
until curl -s -o /dev/null "$XURL/"; do
	kill -0 "$PID" 2>/dev/null || { cat "$TMP/xenithd.log"; exit 1; }
	sleep 0.05
done
up=$(echo "$(date +%s.%N) - $start" | bc)
c0=$(cpu_ms "$PID")
sleep 2
c1=$(cpu_ms "$PID")
printf 'xenithd up in %.2f s (pid %d, %d ms CPU so far), then %d ms CPU over 2 s idle; RSS %s\n' \
	"$up" "$PID" "$c0" "$((c1 - c0))" "$(awk '/VmRSS/ {print $2, $3}' /proc/$PID/status)"
if grep -q 'vanished\|guest event' "$TMP/xenithd.log"; then
	echo "FAIL: xenithd did not adopt the simulator's domains:"
	grep -m5 'vanished\|guest event' "$TMP/xenithd.log"
	exit 1
fi

# connect LABEL URL SERVERPID: one connect.mjs run, checked; prints its line.
ref_counts=
connect() {
	local label=$1 url=$2 spid=$3 line rc=0 s0 s1
	s0=$(cpu_ms "$spid")
	line=$(node bench/xoconnect/connect.mjs --url "$url" --password pw --expect "$VMS") || rc=$?
	s1=$(cpu_ms "$spid")
	echo "$label: $line server_cpu_ms=$((s1 - s0))"
	if ((rc != 0)); then echo "FAIL: connect.mjs exited $rc against $label"; exit 1; fi
	if [[ -z "$ref_counts" ]]; then
		ref_counts=$(counts "$line")
	elif [[ "$(counts "$line")" != "$ref_counts" ]]; then
		echo "FAIL: object counts differ from the recording run: $(counts "$line") vs $ref_counts"
		exit 1
	fi
	LAST=$(field fetched_ms "$line") LASTNODE=$(field node_cpu_ms "$line") LASTSRV=$((s1 - s0))
}

start_replay "$TMP/record.log" -record "$TMP/recording.gob" -upstream "$XURL"
connect "record (through the proxy)" "$RURL" "$PID"
stop_replay
cat "$TMP/record.log"
start_replay "$TMP/replay.log" -replay "$TMP/recording.gob"
cat "$TMP/replay.log"

xs=() rs=() xn=() rn=() xsrv=() rsrv=()
for i in $(seq "$RUNS"); do
	if ((i % 2 == 1)); then
		connect "run $i xenithd" "$XURL" "$PID"; xs+=("$LAST") xn+=("$LASTNODE") xsrv+=("$LASTSRV")
		connect "run $i replay " "$RURL" "$RPID"; rs+=("$LAST") rn+=("$LASTNODE") rsrv+=("$LASTSRV")
	else
		connect "run $i replay " "$RURL" "$RPID"; rs+=("$LAST") rn+=("$LASTNODE") rsrv+=("$LASTSRV")
		connect "run $i xenithd" "$XURL" "$PID"; xs+=("$LAST") xn+=("$LASTNODE") xsrv+=("$LASTSRV")
	fi
done
stop_replay
cat "$TMP/replay.log" | tail -n 1
mx=$(median "${xs[@]}") mr=$(median "${rs[@]}")
# Paired: each round's two connects ran back to back, so their ratio
# cancels most of the machine's drift.
ratios=()
for i in "${!xs[@]}"; do ratios+=("$(ratio "${xs[$i]}" "${rs[$i]}")"); done
verdict=PASS
((mx < 3000)) || verdict=FAIL
echo "xenithd RSS after: $(awk '/VmRSS/ {print $2, $3}' /proc/$PID/status); load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "fetched_ms xenithd: ${xs[*]}; replay baseline: ${rs[*]}"
echo "median connect+cache fill over $RUNS runs: xenithd ${mx} ms, replay baseline ${mr} ms, ratio xenithd/baseline $(ratio "$mx" "$mr")"
echo "per-round ratios xenithd/baseline: ${ratios[*]}; median $(median "${ratios[@]}")"
echo "median CPU per connect (less sensitive to the machine's load than wall time): node client $(median "${xn[@]}") ms against xenithd, $(median "${rn[@]}") ms against the replay; server xenithd $(median "${xsrv[@]}") ms, replay $(median "${rsrv[@]}") ms"
echo "bar: xenithd median ${mx} ms < 3000 ms: $verdict (the baseline, same client against a server with nothing to do: ${mr} ms)"
