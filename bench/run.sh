#!/usr/bin/env bash
# Vigil's cost on a workload, as ratios against the same workload with no
# agent, all measured in one run: the setups take turns round by round, and
# the median of each is compared.
#
#   sudo bench/run.sh              # defaults: 5 rounds, 1M open/close, 5k exec
#   ROUNDS=9 OPENS=2000000 EXECS=20000 sudo bench/run.sh
#
# Setups:
#   none         nothing attached
#   floor        a bare tracepoint on sys_enter_openat bumping a counter
#                (bench/floor): the least any open tracer can cost
#   vigil        `vigil run` with its embedded defaults (only sensitive files'
#                reads and watched directories' writes reported)
#   vigil-all    `vigil run` reporting every open (sensors.file.reads/writes: all)
#   seq-off      `vigil run` with anomaly detection on, learning a program
#                that is not running: the sequence sensor's sys_enter hook
#                costs every syscall of every other program one hash lookup
#   seq-on       the same, learning the workload itself (bench/loop): every
#                syscall of it is collected, shipped and learned
#   no-ransom    `vigil run` with its defaults but the ransomware sensor off
#                (its open and close hooks): what that sensor costs opens
#   (SETUPS="none vigil seq-off seq-on" sudo bench/run.sh)
# Workloads (bench/loop): open = openat+close of /etc/hostname; exec =
# fork+exec+wait of /bin/true. The agent writes its JSON to a file.
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-5}
OPENS=${OPENS:-1000000}
EXECS=${EXECS:-5000}
SETUPS=${SETUPS:-"none floor vigil vigil-all"}
[ "$(id -u)" = 0 ] || { echo "bench/run.sh needs root (it loads BPF programs)" >&2; exit 1; }

work=$(mktemp -d /tmp/vigil-bench.XXXXXX)
pid=
cleanup() {
	if [ -n "$pid" ]; then kill -INT "$pid" 2>/dev/null; wait "$pid" 2>/dev/null || true; fi
	rm -rf "$work"
}
trap cleanup EXIT

CGO_ENABLED=0 go build -o "$work/vigil" ./cmd/vigil
CGO_ENABLED=0 go build -o "$work/loop" ./bench/loop
CGO_ENABLED=0 go build -o "$work/floor" ./bench/floor
cat >"$work/all.yaml" <<YAML
status_socket: $work/status.sock
sensors:
  file:
    reads: all
    writes: all
YAML
printf 'status_socket: %s/status.sock\n' "$work" >"$work/default.yaml"
for s in seq-off seq-on; do
	prog=$work/not-running; [ $s = seq-on ] && prog=$work/loop
	printf 'status_socket: %s/status.sock\nanomaly:\n  enabled: true\n  programs: [%s]\n  profiles_dir: %s/profiles\n' \
		"$work" "$prog" "$work" >"$work/$s.yaml"
done
# The agent a bench starts keeps to the bench: on a shared machine it must
# not kill other programs its ransomware detector judges, nor attach XDP to
# every interface. Detection, and its cost, stay on.
for f in all default seq-off seq-on; do
	printf 'ransomware:\n  kill: false\n  kernel_kill: false\nresponse:\n  interfaces: []\nnetdefense:\n  enabled: false\n' >>"$work/$f.yaml"
done
printf 'status_socket: %s/status.sock\nransomware:\n  enabled: false\nresponse:\n  interfaces: []\nnetdefense:\n  enabled: false\n' "$work" >"$work/no-ransom.yaml"

start() {
	case $1 in
	none) return ;;
	floor)
		"$work/floor" >"$work/floor.out" 2>&1 &
		pid=$!
		for _ in $(seq 100); do grep -q attached "$work/floor.out" && return; sleep 0.05; done ;;
	vigil | vigil-all | seq-off | seq-on | no-ransom)
		cfg=$work/default.yaml; [ "$1" = vigil-all ] && cfg=$work/all.yaml
		case $1 in seq-* | no-ransom) cfg=$work/$1.yaml ;; esac
		"$work/vigil" run --config "$cfg" --output "$work/events.json" --log-level warn 2>"$work/agent.log" &
		pid=$!
		for _ in $(seq 100); do "$work/vigil" status --socket "$work/status.sock" >/dev/null 2>&1 && return; sleep 0.1; done ;;
	esac
	echo "$1 did not start:" >&2; cat "$work"/*.log "$work"/*.out >&2 2>/dev/null; exit 1
}
stop() {
	case $1 in
	vigil | vigil-all | seq-* | no-ransom) "$work/vigil" status --socket "$work/status.sock" >"$work/status-$1.txt" ;;
	esac
	if [ -n "$pid" ]; then kill -INT "$pid"; wait "$pid" || true; pid=; fi
	rm -f "$work/events.json"
}

declare -A times
for r in $(seq "$ROUNDS"); do
	for s in $SETUPS; do
		start "$s"
		for w in open exec; do
			n=$OPENS; [ $w = exec ] && n=$EXECS
			times[$s.$w]+="$("$work/loop" $w "$n") "
		done
		stop "$s"
	done
done

median() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

"$work/vigil" version
echo "kernel $(uname -r), $(nproc) CPUs, $ROUNDS rounds, median wall time; open n=$OPENS, exec n=$EXECS"
printf '%-10s %12s %8s %12s %8s\n' setup "open (s)" ratio "exec (s)" ratio
for s in $SETUPS; do
	o=$(median <<<"${times[$s.open]}"); e=$(median <<<"${times[$s.exec]}")
	ob=$(median <<<"${times[none.open]}"); eb=$(median <<<"${times[none.exec]}")
	printf '%-10s %12.3f %7.2fx %12.3f %7.2fx\n' "$s" "$o" "$(awk -v a="$o" -v b="$ob" 'BEGIN{print a/b}')" \
		"$e" "$(awk -v a="$e" -v b="$eb" 'BEGIN{print a/b}')"
done
for s in vigil vigil-all seq-on; do
	[ -f "$work/status-$s.txt" ] || continue
	echo; echo "$s: agent counters at the end of the last round"
	sed -n '/KIND/,/^$/p' "$work/status-$s.txt"
done
