#!/usr/bin/env bash
# The cost of `vigil trace open` next to libbpf-tools' opensnoop on an
# open/close loop, as ratios against the same loop with no tracer. As in
# bench/run.sh, the setups take turns round by round and medians are compared.
#
#   sudo bench/trace.sh              # defaults: 5 rounds, 1M open/close
#   ROUNDS=9 OPENS=2000000 sudo bench/trace.sh
#
# Setups:
#   none            nothing attached
#   floor           a bare tracepoint on sys_enter_openat bumping a counter
#                   (bench/floor): the least any open tracer can cost
#   vigil           `vigil trace open`, every open printed, stdout to /dev/null
#   opensnoop       libbpf-tools opensnoop, every open printed, stdout to /dev/null
#   vigil-comm      `vigil trace open --comm <a name nothing runs>`: the comm filter
#                   drops every open in the kernel
#   opensnoop-name  `opensnoop --name <the same name>`: opensnoop's name filter,
#                   applied after each event reached user space
# Workload (bench/loop): openat+close of /etc/hostname.
#
# opensnoop comes from the Debian package libbpf-tools, installed here with
# apt-get when missing. If it cannot run on this kernel (several libbpf-tools
# need kprobes; opensnoop uses syscall tracepoints), it is reported as
# unavailable and its setups are skipped.
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-5}
OPENS=${OPENS:-1000000}
SETUPS=${SETUPS:-"none floor vigil opensnoop vigil-comm opensnoop-name"}
NOMATCH=vigil-nomatch # a comm no process has
[ "$(id -u)" = 0 ] || { echo "bench/trace.sh needs root (it loads BPF programs)" >&2; exit 1; }

work=$(mktemp -d /tmp/vigil-trace-bench.XXXXXX)
pid=
cleanup() {
	if [ -n "$pid" ]; then kill -INT "$pid" 2>/dev/null; wait "$pid" 2>/dev/null || true; fi
	rm -rf "$work"
}
trap cleanup EXIT

CGO_ENABLED=0 go build -o "$work/vigil" ./cmd/vigil
CGO_ENABLED=0 go build -o "$work/loop" ./bench/loop
CGO_ENABLED=0 go build -o "$work/floor" ./bench/floor

opensnoop=$(command -v opensnoop || true)
[ -z "$opensnoop" ] && [ -x /usr/sbin/opensnoop ] && opensnoop=/usr/sbin/opensnoop
if [ -z "$opensnoop" ]; then
	echo "installing libbpf-tools for opensnoop..." >&2
	if { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libbpf-tools; } >"$work/apt.log" 2>&1; then
		opensnoop=/usr/sbin/opensnoop
	else
		echo "apt-get install libbpf-tools failed:" >&2; tail -3 "$work/apt.log" >&2
	fi
fi
unavailable=
if [ -z "$opensnoop" ] || [ ! -x "$opensnoop" ]; then
	unavailable="opensnoop is not installed (Debian package libbpf-tools)"
fi

# attached PID: whether PID has a BPF program on sys_exit_openat (without
# bpftool: whether it is still running after two seconds).
if command -v bpftool >/dev/null; then
	attached() { bpftool perf show 2>/dev/null | grep -q "^pid $1 .*sys_exit_openat"; }
else
	attached() { sleep 2; kill -0 "$1" 2>/dev/null; }
fi

start() {
	local s=$1
	case $s in
	none) return 0 ;;
	floor)
		"$work/floor" >"$work/floor.out" 2>&1 &
		pid=$!
		for _ in $(seq 100); do grep -q attached "$work/floor.out" && return 0; sleep 0.05; done
		echo "floor did not start:" >&2; cat "$work/floor.out" >&2; exit 1 ;;
	vigil | vigil-comm)
		local args=(trace open)
		[ "$s" = vigil-comm ] && args+=(--comm "$NOMATCH")
		"$work/vigil" "${args[@]}" >/dev/null 2>"$work/$s.err" &
		pid=$!
		for _ in $(seq 200); do
			grep -q "tracing open" "$work/$s.err" 2>/dev/null && return 0
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.05
		done
		echo "$s did not start:" >&2; cat "$work/$s.err" >&2; exit 1 ;;
	opensnoop | opensnoop-name)
		[ -n "$unavailable" ] && return 1
		local args=()
		[ "$s" = opensnoop-name ] && args+=(--name "$NOMATCH")
		"$opensnoop" "${args[@]}" >/dev/null 2>"$work/$s.err" &
		pid=$!
		for _ in $(seq 200); do
			attached "$pid" && return 0
			if ! kill -0 "$pid" 2>/dev/null; then
				wait "$pid" 2>/dev/null || true; pid=
				unavailable="opensnoop does not run on this kernel: $(grep -v '^$' "$work/$s.err" | tail -1)"
				return 1
			fi
			sleep 0.05
		done
		kill -INT "$pid" 2>/dev/null; wait "$pid" 2>/dev/null || true; pid=
		unavailable="opensnoop did not attach within 10 s: $(tail -1 "$work/$s.err")"
		return 1 ;;
	esac
}
stop() {
	if [ -n "$pid" ]; then kill -INT "$pid"; wait "$pid" || true; pid=; fi
	[ -f "$work/$1.err" ] && cp "$work/$1.err" "$work/$1.last"
	return 0
}

declare -A times
for r in $(seq "$ROUNDS"); do
	for s in $SETUPS; do
		start "$s" || continue
		times[$s]+="$("$work/loop" open "$OPENS") "
		stop "$s"
	done
done

median() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

"$work/vigil" version
echo "kernel $(uname -r), $(nproc) CPUs, $ROUNDS rounds, median wall time of open n=$OPENS"
printf '%-15s %10s %8s\n' setup "open (s)" ratio
base=$(median <<<"${times[none]:-}")
for s in $SETUPS; do
	if [ -z "${times[$s]:-}" ]; then
		printf '%-15s %10s %8s\n' "$s" unavailable -
		continue
	fi
	o=$(median <<<"${times[$s]}")
	printf '%-15s %10.3f %7.2fx\n' "$s" "$o" "$(awk -v a="$o" -v b="$base" 'BEGIN{print a/b}')"
done
[ -n "$unavailable" ] && echo && echo "opensnoop unavailable: $unavailable"
for s in vigil vigil-comm; do
	[ -f "$work/$s.last" ] || continue
	echo; echo "$s, last round: what vigil trace counted"
	grep -v "tracing open" "$work/$s.last" | sed 's/^vigil trace: /  /'
done
for s in opensnoop opensnoop-name; do
	[ -f "$work/$s.last" ] || continue
	lost=$(grep -o 'Lost [0-9]* events' "$work/$s.last" | awk '{n += $2} END {print n + 0}')
	echo; echo "$s, last round: $lost events reported lost"
done
