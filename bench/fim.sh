#!/usr/bin/env bash
# vigil fim init against aide --init on the same tree, as a time ratio,
# measured in one run (they take turns round by round; medians).
#
#   sudo bench/fim.sh                       # 5 rounds, a copy of /usr/share (about 1-2 GB read)
#   ROUNDS=3 TREE=/usr/lib bench/fim.sh     # any tree; it is copied to a tmp dir first
#
# Both record SHA-256, size, mode, owner, inode and mtime of every file
# (aide with the same attributes: p+i+n+u+g+s+m+sha256); each run starts
# from an empty database. The page cache is warm for both (the copy is read
# once before the first round).
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-5}
TREE=${TREE:-/usr/share}
command -v aide >/dev/null || { echo "needs aide (apt-get install aide)" >&2; exit 1; }
work=$(mktemp -d /tmp/vigil-bench-fim.XXXXXX)
trap 'rm -rf "$work"' EXIT
CGO_ENABLED=0 go build -o "$work/vigil" ./cmd/vigil
cp -a "$TREE" "$work/tree"
files=$(find "$work/tree" -type f | wc -l)
find "$work/tree" -type f -exec cat {} + >/dev/null
cat >"$work/vigil.yaml" <<YAML
store:
  path: $work/vigil.db
fim:
  paths: [$work/tree]
YAML
cat >"$work/aide.conf" <<CONF
database_out=file:$work/aide.db
gzip_dbout=no
Bench = p+i+n+u+g+s+m+sha256
$work/tree Bench
CONF
run() { local t0 t1; t0=$(date +%s.%N); "$@" >"$work/out" 2>&1 || [ $? -lt 14 ] || { cat "$work/out" >&2; exit 1; }; t1=$(date +%s.%N); awk -v a="$t0" -v b="$t1" 'BEGIN{print b-a}'; }
median() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
v= a=
for _ in $(seq "$ROUNDS"); do
	rm -f "$work"/vigil.db* "$work/aide.db"
	v+="$(run "$work/vigil" fim init --config "$work/vigil.yaml") "
	a+="$(run aide --init --config "$work/aide.conf") "
done
vm=$(median <<<"$v"); am=$(median <<<"$a")
echo "$TREE: $files files, $(du -sh "$work/tree" | cut -f1); $ROUNDS rounds, median wall time, $(nproc) CPUs"
printf '%-16s %8.2f s\n%-16s %8.2f s\n' "aide --init" "$am" "vigil fim init" "$vm"
awk -v a="$am" -v v="$vm" 'BEGIN{printf "vigil / aide     %8.2fx\n", v/a}'
