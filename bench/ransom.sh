#!/usr/bin/env bash
# The cost of the ransomware sensor's write sampling, as ratios against no
# agent, measured in one run (setups take turns round by round; medians).
#
#   sudo bench/ransom.sh                 # 5 rounds, 20k files, 2M /dev/null writes
#   ROUNDS=3 FILES=10000 WRITES=1000000 sudo bench/ransom.sh
#
# Setups:  none         nothing attached
#          no-ransom    vigil run with ransomware.enabled: false
#          vigil        vigil run with its defaults (ransomware detector on)
# Workloads (bench/loop):
#          write    FILES files of 64 KiB, 16 writes of 4 KiB each, in a tmpfs
#                   directory: every file is tracked, sampled, judged and
#                   reported at close (a write-heavy benign workload)
#          devnull  WRITES writes of 64 bytes to /dev/null: what every write
#                   that is not to a tracked file pays (one failed lookup)
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-5}
FILES=${FILES:-20000}
WRITES=${WRITES:-2000000}
SETUPS=${SETUPS:-"none no-ransom vigil"}
[ "$(id -u)" = 0 ] || { echo "bench/ransom.sh needs root (it loads BPF programs)" >&2; exit 1; }

work=$(mktemp -d /tmp/vigil-bench.XXXXXX)
pid=
cleanup() {
	if [ -n "$pid" ]; then kill -INT "$pid" 2>/dev/null; wait "$pid" 2>/dev/null || true; fi
	umount "$work/data" 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

CGO_ENABLED=0 go build -o "$work/vigil" ./cmd/vigil
CGO_ENABLED=0 go build -o "$work/loop" ./bench/loop
mkdir "$work/data" && mount -t tmpfs -o size=64m tmpfs "$work/data"
common="status_socket: $work/status.sock
store: {path: $work/vigil.db}
web: {listen: ''}
metrics: {listen: ''}"
printf '%s\n' "$common" >"$work/vigil.yaml"
printf '%s\nransomware: {enabled: false}\n' "$common" >"$work/no-ransom.yaml"

start() {
	[ "$1" = none ] && return
	"$work/vigil" run --config "$work/$1.yaml" --output "$work/events.json" --log-level warn 2>"$work/agent.log" &
	pid=$!
	for _ in $(seq 100); do "$work/vigil" status --socket "$work/status.sock" >/dev/null 2>&1 && return; sleep 0.1; done
	echo "$1 did not start:" >&2; cat "$work/agent.log" >&2; exit 1
}
stop() {
	[ "$1" = vigil ] && "$work/vigil" status --socket "$work/status.sock" >"$work/status-$1.txt"
	if [ -n "$pid" ]; then kill -INT "$pid"; wait "$pid" || true; pid=; fi
	rm -f "$work/events.json"
}

declare -A times
for r in $(seq "$ROUNDS"); do
	for s in $SETUPS; do
		start "$s"
		times[$s.write]+="$("$work/loop" write "$FILES" "$work/data") "
		times[$s.devnull]+="$("$work/loop" devnull "$WRITES") "
		stop "$s"
	done
done

median() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
echo "kernel $(uname -r), $(nproc) CPUs, $ROUNDS rounds, median wall time; write: $FILES files x 16 x 4 KiB; devnull: $WRITES x 64 B"
printf '%-10s %12s %8s %12s %8s\n' setup "write (s)" ratio "devnull (s)" ratio
for s in $SETUPS; do
	w=$(median <<<"${times[$s.write]}"); d=$(median <<<"${times[$s.devnull]}")
	wb=$(median <<<"${times[none.write]}"); db=$(median <<<"${times[none.devnull]}")
	printf '%-10s %12.3f %7.2fx %12.3f %7.2fx\n' "$s" "$w" "$(awk -v a="$w" -v b="$wb" 'BEGIN{print a/b}')" \
		"$d" "$(awk -v a="$d" -v b="$db" 'BEGIN{print a/b}')"
done
if [ -f "$work/status-vigil.txt" ]; then echo; echo "vigil: agent counters at the end of the last round"; sed -n '/KIND/,/^$/p' "$work/status-vigil.txt"; fi
