#!/usr/bin/env bash
# An event storm against `vigil run` with its built-in rules: tight open,
# connect and exec loops (bench/stormload) for a minute, each counting what it
# did. Prints the events offered per second, what the agent delivered to its
# sinks and dropped at each stage, how `vigil status` answered during the
# storm, and the agent's peak RSS. internal/daemon's TestStormCountersAddUp
# is the short version with the exact accounting assertion.
#
#   sudo bench/storm.sh                         # 60 s, 2 open + 1 connect + 1 exec workers
#   DURATION=5m OPEN=3 CONNECT=2 EXEC=2 sudo bench/storm.sh
#
# The agent's counters are host-wide: other processes' events are in them
# too, so delivered + dropped may exceed what the workers offered, never fall
# short of it (the "unaccounted" column must be <= 0).
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-60s}
OPEN=${OPEN:-2}
CONNECT=${CONNECT:-1}
EXEC=${EXEC:-1}
[ "$(id -u)" = 0 ] || { echo "bench/storm.sh needs root (it loads BPF programs)" >&2; exit 1; }

work=$(mktemp -d /tmp/vigil-storm.XXXXXX)
chmod 755 "$work"
pid=
cleanup() {
	if [ -n "$pid" ]; then kill -INT "$pid" 2>/dev/null; wait "$pid" 2>/dev/null || true; fi
	rm -rf "$work"
}
trap cleanup EXIT

CGO_ENABLED=0 go build -o "$work/vigil" ./cmd/vigil
CGO_ENABLED=0 go build -o "$work/stormload" ./bench/stormload
mkdir "$work/files"
# The built-in watch list plus the workers' directory, so every open is an event.
watch=$("$work/stormload" watch-writes)
# The agent a bench starts keeps to the bench: on a shared machine it must
# not kill other programs its ransomware detector judges, nor attach XDP to
# every interface. Detection, and its cost, stay on.
{
	printf 'status_socket: %s/status.sock\nstats_interval: 0s\n' "$work"
	printf 'store:\n  path: %s/vigil.db\nweb:\n  listen: ""\nmetrics:\n  listen: ""\n' "$work"
	printf 'ransomware:\n  kill: false\n  kernel_kill: false\nresponse:\n  interfaces: []\nnetdefense:\n  enabled: false\n'
	printf 'sensors:\n  file:\n    watch_writes:\n'
	for p in $watch "$work/files"; do printf '      - %s\n' "$p"; done
} >"$work/vigil.yaml"
"$work/vigil" config validate "$work/vigil.yaml" >/dev/null

"$work/vigil" run --config "$work/vigil.yaml" --output "$work/events.json" --log-level warn 2>"$work/agent.log" &
pid=$!
for _ in $(seq 100); do "$work/vigil" status --socket "$work/status.sock" >/dev/null 2>&1 && break; sleep 0.1; done
"$work/vigil" status --socket "$work/status.sock" -o json >"$work/before.json"

workers=()
start() { "$work/stormload" "$1" "$work/files" "$DURATION" >"$work/w-$1-$2.json" & workers+=($!); }
for i in $(seq "$OPEN"); do start open "$i"; done
for i in $(seq "$CONNECT"); do start connect "$i"; done
for i in $(seq "$EXEC"); do start exec "$i"; done
began=$(date +%s.%N)

# While the storm runs: how long `vigil status` takes, and the agent's RSS.
slowest=0 failures=0
while kill -0 "${workers[0]}" 2>/dev/null; do
	t0=$(date +%s.%N)
	if "$work/vigil" status --socket "$work/status.sock" >/dev/null 2>&1; then
		slowest=$(awk -v a="$slowest" -v b="$(awk -v s="$t0" -v e="$(date +%s.%N)" 'BEGIN{print e-s}')" 'BEGIN{print (b>a)?b:a}')
	else
		failures=$((failures + 1))
	fi
	grep VmRSS "/proc/$pid/status" | awk '{print $2}' >>"$work/rss"
	sleep 2
done
for w in "${workers[@]}"; do wait "$w"; done
ended=$(date +%s.%N)
# Let the agent drain its ring and queue.
for _ in $(seq 100); do
	"$work/vigil" status --socket "$work/status.sock" -o json >"$work/after.json"
	python3 -c 'import json,sys; s=json.load(open(sys.argv[1])); sys.exit(0 if s["queue"]["used"]==0 and s["ring_buffer_bytes"]["used"]==0 else 1)' "$work/after.json" && break
	sleep 0.2
done
hwm=$(awk '/VmHWM/{print $2}' "/proc/$pid/status")
kill -INT "$pid"; wait "$pid" || true; pid=

"$work/vigil" version
echo "kernel $(uname -r), $(nproc) CPUs, load before $(cut -d' ' -f1-3 /proc/loadavg); $OPEN open + $CONNECT connect + $EXEC exec workers for $DURATION"
python3 - "$work" "$began" "$ended" "$slowest" "$failures" "$hwm" <<'PY'
import glob, json, sys
work, began, ended, slowest, failures, hwm = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
secs = ended - began
offered = {}
for f in glob.glob(work + "/w-*.json"):
    c = json.load(open(f))
    ev = {"exec": {"fork": c["ops"], "exec": c["ops"] - c["fails"], "exit": c["ops"]},
          "open": {"file": c["ops"] + 1}, "connect": {"net": c["ops"]}}[c["kind"]]
    for k, n in ev.items():
        offered[k] = offered.get(k, 0) + n
before = {k["kind"]: k for k in json.load(open(work + "/before.json"))["events"]}
after = json.load(open(work + "/after.json"))
storm_files = 0
with open(work + "/events.json", "rb") as f:
    marker = ('"' + work + '/files/storm-').encode()
    for line in f:
        if marker in line:
            storm_files += 1
d = lambda k, f: after_k[f] - before[k][f]
print(f"{sum(offered.values()) / secs:,.0f} events/s offered by the workers over {secs:.1f} s\n")
print(f"{'kind':6} {'offered':>11} {'kernel sent':>12} {'kernel lost':>12} {'filtered':>12} {'received':>11} {'queue drop':>11} {'written':>11} {'unaccounted':>12}")
for after_k in after["events"]:
    k = after_k["kind"]
    if k == "syscalls":
        continue
    o = offered.get(k, 0)
    un = o - (d(k, "written") + d(k, "kernel_lost") + d(k, "queue_dropped"))
    print(f"{k:6} {o:11,} {d(k,'kernel_sent'):12,} {d(k,'kernel_lost'):12,} {d(k,'kernel_filtered'):12,} {d(k,'received'):11,} {d(k,'queue_dropped'):11,} {d(k,'written'):11,} {un:12,}")
r = after["rules"]
print(f"\nfile events of the workers' files in the JSON output: {storm_files:,} of {offered.get('file', 0):,} offered")
print(f"alerts raised {r['alerts_raised']:,}, written {r['alerts_written']:,}, dropped {r['alerts_dropped']:,}; decode errors {after['decode_errors']}, sink errors {after['sink_errors']}")
print(f"vigil status during the storm: slowest answer {slowest:.2f} s, {failures} failed")
rss = [int(x) for x in open(work + "/rss").read().split()]
print(f"agent RSS during the storm: max sampled {max(rss)/1024:.0f} MiB; peak (VmHWM) {hwm/1024:.0f} MiB; process cache {after['process_cache']}")
PY
