#!/usr/bin/env bash
# Vigil's cost on a workload, as a ratio against the same workload with no
# agent, measured in one run: baseline and agent rounds alternate, and the
# median of each is compared.
#
#   sudo bench/run.sh              # defaults: 5 rounds, 1M open/close, 5k exec
#   ROUNDS=9 OPENS=1000000 EXECS=20000 sudo bench/run.sh
#
# Workloads (bench/loop): open = openat+close of /etc/hostname; exec =
# fork+exec+wait of /bin/true. The agent runs with its embedded defaults and
# writes its JSON to a file, as it would in production.
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-5}
OPENS=${OPENS:-1000000}
EXECS=${EXECS:-5000}
[ "$(id -u)" = 0 ] || { echo "bench/run.sh needs root (it runs the agent)" >&2; exit 1; }

work=$(mktemp -d /tmp/vigil-bench.XXXXXX)
agent=
cleanup() {
	[ -n "$agent" ] && kill -INT "$agent" 2>/dev/null && wait "$agent" 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

CGO_ENABLED=0 go build -o "$work/vigil" ./cmd/vigil
CGO_ENABLED=0 go build -o "$work/loop" ./bench/loop

start_agent() {
	"$work/vigil" run --output "$work/events.json" --log-level warn 2>"$work/agent.log" &
	agent=$!
	# ready once the status socket answers
	for _ in $(seq 100); do
		"$work/vigil" status >/dev/null 2>&1 && return
		sleep 0.1
	done
	echo "agent did not start:" >&2; cat "$work/agent.log" >&2; exit 1
}
stop_agent() {
	kill -INT "$agent"; wait "$agent" || true; agent=
}

median() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

declare -A base with
for w in open exec; do base[$w]=; with[$w]=; done
for r in $(seq "$ROUNDS"); do
	for w in open exec; do
		n=$OPENS; [ $w = exec ] && n=$EXECS
		base[$w]+="$("$work/loop" $w "$n") "
	done
	start_agent
	for w in open exec; do
		n=$OPENS; [ $w = exec ] && n=$EXECS
		with[$w]+="$("$work/loop" $w "$n") "
	done
	"$work/vigil" status >"$work/status.txt"
	stop_agent
done

"$work/vigil" version
echo "kernel $(uname -r), $(nproc) CPUs, $ROUNDS rounds, median wall time"
printf '%-6s %10s %12s %12s %8s\n' workload n "no agent(s)" "vigil(s)" ratio
for w in open exec; do
	n=$OPENS; [ $w = exec ] && n=$EXECS
	b=$(tr ' ' '\n' <<<"${base[$w]}" | grep . | median)
	v=$(tr ' ' '\n' <<<"${with[$w]}" | grep . | median)
	printf '%-6s %10d %12.3f %12.3f %7.2fx\n' $w "$n" "$b" "$v" "$(awk -v b="$b" -v v="$v" 'BEGIN{print v/b}')"
done
echo; echo "agent status at the end of the last round:"
sed -n '/KIND/,/^$/p' "$work/status.txt"
