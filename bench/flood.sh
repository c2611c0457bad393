#!/usr/bin/env bash
# A UDP flood from one source dropped by Vigil's XDP block list (native and
# generic mode) against nftables dropping the same flood (netdev ingress, and
# inet prerouting at raw priority), then what XDP with per-source accounting
# costs the traffic it lets through; all in one run, setups taking turns round
# by round, medians and ratios against XDP from the same run. Senders run in
# a network namespace of the bench's own, over a veth pair (bench/flood).
#
#   sudo bench/flood.sh
#   ROUNDS=9 DURATION=5s SENDERS=2 sudo bench/flood.sh
#
# Needs nftables (apt-get install nftables).
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-3s}
SENDERS=${SENDERS:-2}
[ "$(id -u)" = 0 ] || { echo "bench/flood.sh needs root" >&2; exit 1; }
command -v nft >/dev/null || { echo "bench/flood.sh needs nft: apt-get install nftables" >&2; exit 1; }
bin=$(mktemp /tmp/vigil-flood.XXXXXX)
trap 'rm -f "$bin"' EXIT
CGO_ENABLED=0 go build -o "$bin" ./bench/flood
"$bin" -rounds "$ROUNDS" -duration "$DURATION" -senders "$SENDERS"
