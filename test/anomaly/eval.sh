#!/usr/bin/env bash
# Builds syscall traces of a small file server on this machine, normal and
# attacked, in the ADFA-LD format, and checks the offline model on them:
#
#   test/anomaly/eval.sh [SESSIONS]      # default 100 normal sessions, 30 attacked
#
# A session starts the server (internal/daemon/testdata/anomaly_server.py)
# under `strace -f -n`, makes 5-30 requests for files (some missing), and
# stops it; its trace is the server process's syscall numbers. An attacked
# session makes one of its requests the server's command-injection bug (RUN:
# it runs a shell). Normal sessions are split: 70% train the model (with its
# threshold calibrated by cross-validation to a 1% false-alarm rate), 30% are
# held out; the held-out normal and the attacked traces are scored.
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${1:-100}
A=$((N * 3 / 10))
work=$(mktemp -d /tmp/vigil-anomaly-eval.XXXXXX)
trap 'rm -rf "$work"' EXIT
command -v strace >/dev/null || { echo "needs strace" >&2; exit 1; }
CGO_ENABLED=0 go build -o "$work/vigil" ./cmd/vigil
mkdir -p "$work/files" "$work/train" "$work/held-out" "$work/attack"
for i in 0 1 2 3 4; do head -c $((1000 * (i + 1))) /dev/urandom | base64 >"$work/files/page$i.html"; done

session() { # out, attack?
	local out=$1 attack=$2 raw=$work/raw port pid n bad
	strace -f -n -qq -o "$raw" python3 internal/daemon/testdata/anomaly_server.py "$work/files" >"$work/port" &
	pid=$!
	for _ in $(seq 600); do [ -s "$work/port" ] && break; sleep 0.05; done
	port=$(cat "$work/port")
	[ -n "$port" ] || { echo "the server did not start in 30s" >&2; kill $pid; exit 1; }
	n=$((5 + RANDOM % 26)); bad=-1
	[ "$attack" = 1 ] && bad=$((RANDOM % n))
	for i in $(seq 0 $((n - 1))); do
		if [ $i = $bad ]; then req=RUN; else req="GET page$((RANDOM % 7)).html"; fi
		python3 -c 'import socket,sys; s=socket.create_connection(("127.0.0.1",int(sys.argv[1]))); s.sendall(sys.argv[2].encode()+b"\n"); s.recv(1<<20)' "$port" "$req"
	done
	python3 -c 'import socket,sys; s=socket.create_connection(("127.0.0.1",int(sys.argv[1]))); s.sendall(b"QUIT\n")' "$port"
	wait $pid || true
	# The server's own syscalls: the first pid in the trace is strace's child.
	# (strace -f splits a syscall interrupted by another process's line into
	# "unfinished" and "resumed" halves: count the first.)
	awk 'NR == 1 {p = $1} $1 == p && !/resumed>/ && match($0, /\[ *[0-9]+\]/) {
		s = substr($0, RSTART + 1, RLENGTH - 2); gsub(/ /, "", s); printf "%s%s", sep, s; sep = " "} END {print ""}' "$raw" >"$out"
}

for i in $(seq -w 1 "$N"); do
	d=train; [ $((10#$i % 10)) -ge 7 ] && d=held-out
	session "$work/$d/normal-$i.txt" 0
done
for i in $(seq -w 1 "$A"); do session "$work/attack/attack-$i.txt" 1; done

"$work/vigil" anomaly train --far 0.01 -o "$work/model.json" "$work/train"
"$work/vigil" anomaly score -q -m "$work/model.json" --normal "$work/held-out" --attack "$work/attack"
