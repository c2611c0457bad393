#!/usr/bin/env bash
# Process-cache churn: `vigil run` under an hour (DURATION) of processes
# starting and ending: exec loops (bench/stormload exec), and shells whose
# background children outlive them (re-parented to init), so pids are
# reused as they wrap. Every INTERVAL it compares the agent's process cache
# with /proc and prints its entries and RSS; at the end it fails if the
# cache holds more live processes than /proc shows (a leak) beyond SLACK, or
# if its entries or RSS kept growing over the second half of the run.
#
#   sudo bench/churn.sh                     # 1 hour
#   DURATION=5m INTERVAL=10s sudo bench/churn.sh
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-1h}
INTERVAL=${INTERVAL:-30s}
SLACK=${SLACK:-64}
# LOAD_NICE=19 runs the load at low priority on a machine doing other work
# (the agent keeps normal priority).
LOAD_NICE=${LOAD_NICE:-0}
[ "$(id -u)" = 0 ] || { echo "bench/churn.sh needs root" >&2; exit 1; }

work=$(mktemp -d /tmp/vigil-churn.XXXXXX)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT
CGO_ENABLED=0 go build -o "$work/vigil" ./cmd/vigil
CGO_ENABLED=0 go build -o "$work/stormload" ./bench/stormload
# The agent a bench starts keeps to the bench: on a shared machine it must
# not kill other programs its ransomware detector judges, nor attach XDP to
# every interface. Detection, and its cost, stay on.
printf 'status_socket: %s/status.sock\nstats_interval: 0s\nstore:\n  path: %s/vigil.db\nweb:\n  listen: ""\nmetrics:\n  listen: ""\n' "$work" "$work" >"$work/vigil.yaml"
printf 'ransomware:\n  kill: false\n  kernel_kill: false\nresponse:\n  interfaces: []\nnetdefense:\n  enabled: false\n' >>"$work/vigil.yaml"
"$work/vigil" run --config "$work/vigil.yaml" --output /dev/null --log-level warn 2>"$work/agent.log" &
agent=$!
pids+=("$agent")
for _ in $(seq 100); do "$work/vigil" status --socket "$work/status.sock" >/dev/null 2>&1 && break; sleep 0.1; done

secs=$(python3 -c "import re,sys; v,u=re.fullmatch(r'(\d+)([smh])','$DURATION').groups(); print(int(v)*{'s':1,'m':60,'h':3600}[u])")
nice -n "$LOAD_NICE" "$work/stormload" exec "$work" "${secs}s" >/dev/null &
pids+=($!)
# Orphans: each shell leaves a sleeper that outlives it.
nice -n "$LOAD_NICE" bash -c 'end=$((SECONDS + $1)); while [ $SECONDS -lt $end ]; do bash -c "sleep 0.$((RANDOM % 9 + 1)) & exit 0"; done' _ "$secs" &
pids+=($!)

printf '%8s %8s %8s %8s %10s %8s %9s\n' elapsed proc alive exited lost_exits evicted rss_mib
end=$((SECONDS + secs))
: >"$work/samples"
while [ $SECONDS -lt $end ]; do
	sleep "$INTERVAL"
	real=$(python3 -c 'import os; print(sum(d.isdigit() for d in os.listdir("/proc")))')
	"$work/vigil" status --socket "$work/status.sock" -o json >"$work/st.json"
	rss=$(awk '/VmRSS/{print int($2/1024)}' "/proc/$agent/status")
	python3 - "$work/st.json" "$real" "$rss" "$SECONDS" <<'PY' | tee -a "$work/samples"
import json, sys
s = json.load(open(sys.argv[1]))["process_cache"]
print(f"{sys.argv[4]:>8} {sys.argv[2]:>8} {s['Alive']:>8} {s['Exited']:>8} {s['LostExits']:>10} {s['Evicted']:>8} {sys.argv[3]:>9}")
PY
done
python3 - "$work/samples" "$SLACK" <<'PY'
import sys
rows = [list(map(int, l.split())) for l in open(sys.argv[1]) if l.strip()]
slack = int(sys.argv[2])
bad = [r for r in rows if r[2] > r[1] + slack]
half = rows[len(rows)//2:]
grow = lambda i: half and half[-1][i] > 1.2 * max(1, min(r[i] for r in half)) + slack
if bad: print(f"LEAK: cache holds more live processes than /proc: {bad[:3]}"); sys.exit(1)
if grow(2) or grow(6): print("GROWTH over the second half: entries or RSS kept rising"); sys.exit(1)
print(f"ok: {len(rows)} samples; alive never above /proc + {slack}; no growth over the second half")
PY
