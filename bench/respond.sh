#!/usr/bin/env bash
# The cost of deny rules on what they allow, as ratios against no agent, all
# measured in one run (setups take turns round by round; medians compared).
#
#   sudo bench/respond.sh
#   ROUNDS=9 OPENS=500000 CONNECTS=100000 sudo bench/respond.sh
#
# Setups:
#   none        nothing attached
#   vigil       `vigil run`, built-in rules, no deny rule
#   vigil-deny  the same plus two deny rules that never match the workload:
#               one on opens of a directory (so every open there is held by
#               fanotify and decided by the rules), one on connects to a port
#               (so the cgroup connect hook looks every connect up)
# Workloads (bench/loop):
#   open-held   open+close of a file in the deny rule's directory: allowed
#               after the rules decide (the added latency of fanotify deny mode)
#   open-other  open+close of /etc/hostname, which no deny rule names
#   connect     TCP connect+close to a loopback listener: allowed by the hook
#   udp-connect UDP socket+connect+close to loopback: the hook without TCP's
#               handshake around it
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-5}
OPENS=${OPENS:-200000}
CONNECTS=${CONNECTS:-50000}
SETUPS=${SETUPS:-"none vigil vigil-deny"}
[ "$(id -u)" = 0 ] || { echo "bench/respond.sh needs root" >&2; exit 1; }

work=$(mktemp -d /tmp/vigil-bench-respond.XXXXXX)
pid=
cleanup() {
	if [ -n "$pid" ]; then kill -INT "$pid" 2>/dev/null; wait "$pid" 2>/dev/null || true; fi
	rm -rf "$work"
}
trap cleanup EXIT

CGO_ENABLED=0 go build -o "$work/vigil" ./cmd/vigil
CGO_ENABLED=0 go build -o "$work/loop" ./bench/loop
mkdir -p "$work/protected" "$work/rules" "$work/none"
echo data >"$work/protected/file"
cat >"$work/rules/deny.yaml" <<YAML
rules:
  - id: bench-deny-open
    name: Deny opens of the bench's directory by a program that never runs
    severity: warning
    on: [file]
    condition: file.path.startsWith("$work/protected/") && process.name == "no-such-prog"
    response: deny
  - id: bench-deny-connect
    name: Deny connects to a port nothing uses
    severity: warning
    on: [net]
    condition: event.action == "connect" && destination.ip == "127.0.0.1" && destination.port == 1
    response: deny
YAML
for s in vigil vigil-deny; do
	dir=$work/none; [ $s = vigil-deny ] && dir=$work/rules
	cat >"$work/$s.yaml" <<YAML
status_socket: $work/status.sock
rules:
  dirs: [$dir]
response:
  pin_dir: /sys/fs/bpf/vigil-bench-$$
  interfaces: []
YAML
done

start() {
	case $1 in
	none) return ;;
	vigil | vigil-deny)
		"$work/vigil" run --config "$work/$1.yaml" --output "$work/events.json" --log-level warn 2>"$work/agent.log" &
		pid=$!
		for _ in $(seq 100); do "$work/vigil" status --socket "$work/status.sock" >/dev/null 2>&1 && return; sleep 0.1; done ;;
	esac
	echo "$1 did not start:" >&2; cat "$work/agent.log" >&2; exit 1
}
stop() {
	if [ -n "$pid" ]; then kill -INT "$pid"; wait "$pid" || true; pid=; fi
	rm -f "$work/events.json"
}

declare -A times
for r in $(seq "$ROUNDS"); do
	for s in $SETUPS; do
		start "$s"
		times[$s.open-held]+="$("$work/loop" open "$OPENS" "$work/protected/file") "
		times[$s.open-other]+="$("$work/loop" open "$OPENS") "
		times[$s.connect]+="$("$work/loop" connect "$CONNECTS") "
		times[$s.udp-connect]+="$("$work/loop" udp-connect "$OPENS") "
		stop "$s"
	done
done

median() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
"$work/vigil" version
echo "kernel $(uname -r), $(nproc) CPUs, $ROUNDS rounds, median; open n=$OPENS, connect n=$CONNECTS"
printf '%-11s' setup
for w in open-held open-other connect udp-connect; do printf ' %14s %7s' "$w (us/op)" ratio; done
echo
for s in $SETUPS; do
	printf '%-11s' "$s"
	for w in open-held open-other connect udp-connect; do
		n=$OPENS; [ $w = connect ] && n=$CONNECTS
		v=$(median <<<"${times[$s.$w]}"); b=$(median <<<"${times[none.$w]}")
		printf ' %14.2f %6.2fx' "$(awk -v a="$v" -v n="$n" 'BEGIN{print a/n*1e6}')" "$(awk -v a="$v" -v b="$b" 'BEGIN{print a/b}')"
	done
	echo
done
