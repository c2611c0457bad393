#!/usr/bin/env bash
# Packets/s through netguard's XDP program with per-source accounting off and
# on (and on with 10000 threat-intelligence prefixes), measured with
# BPF_PROG_TEST_RUN on one TCP SYN frame: the program's own cost per packet,
# with no driver and no sender in the way (on 2 vCPUs a veth sender tops out
# far below what the program can take; see shared/KERNEL.md).
#
#   sudo bench/xdp.sh
#   ROUNDS=9 PACKETS=5000000 sudo bench/xdp.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-5}
PACKETS=${PACKETS:-2000000}
[ "$(id -u)" = 0 ] || { echo "bench/xdp.sh needs root" >&2; exit 1; }

out=$(go test -run XXX -bench 'BenchmarkXDP$' -benchtime "${PACKETS}x" -count "$ROUNDS" ./internal/netguard)
echo "$out" | grep -E '^Benchmark' >&2
echo "$out" | awk '
/^BenchmarkXDP\// {
	name = $1; sub(/^BenchmarkXDP\//, "", name); sub(/-[0-9]+$/, "", name)
	for (i = 1; i <= NF; i++) if ($(i+1) == "ns/pkt") v[name] = v[name] " " $i
}
END {
	printf "%-28s %10s %14s\n", "setup", "ns/packet", "packets/s"
	n = split("accounting=off accounting=on accounting=on,intel=10000", order, " ")
	for (k = 1; k <= n; k++) {
		s = order[k]; m = split(v[s], a, " ")
		# median
		for (i = 1; i <= m; i++) for (j = i + 1; j <= m; j++) if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
		med = a[int((m + 1) / 2)]
		printf "%-28s %10s %14.0f\n", s, med, 1e9 / med
	}
}'
