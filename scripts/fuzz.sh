#!/usr/bin/env bash
# Runs every fuzz target for FUZZTIME each (default 10s): `make fuzz-short`
# in CI. Longer runs (docs/hardening.md): FUZZTIME=10m scripts/fuzz.sh, or
# one target: go test -run - -fuzz '^FuzzDecode$' -fuzztime 1h ./internal/sensor/file
# A failure writes the input to the package's testdata/fuzz/<target>/, where
# `go test` replays it from then on: commit it with the fix.
set -euo pipefail
cd "$(dirname "$0")/.."
FUZZTIME=${FUZZTIME:-10s}

# package target; the threat-intel parsers (internal/detect/intel, netdef
# branch) should add theirs here when merged.
targets=(
	"./internal/sensor/process FuzzDecode"
	"./internal/sensor/file FuzzDecode"
	"./internal/sensor/kernel FuzzDecode"
	"./internal/sensor/cred FuzzDecode"
	"./internal/sensor/net FuzzDecode"
	"./internal/sensor/net FuzzParseDNSQuestion"
	"./internal/rules FuzzLoad"
	"./internal/rules FuzzCondition"
	"./internal/config FuzzLoad"
)
for t in "${targets[@]}"; do
	read -r pkg name <<<"$t"
	echo "--- $name $pkg ($FUZZTIME)"
	go test -run - -fuzz "^${name}\$" -fuzztime "$FUZZTIME" "$pkg"
done
