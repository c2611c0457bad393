#!/usr/bin/env bash
# Reproducible release build of the committed HEAD (make release).
#
# Builds vigil twice, from two copies of HEAD (git archive) at different
# paths, each with a build cache of its own, and fails unless the two
# binaries are the same bytes. Then writes dist/vigil-<version>-linux-<arch>
# and dist/SHA256SUMS.
#
# Flags: CGO_ENABLED=0 (a static binary; the BPF objects are committed, so no
# clang), -trimpath (no build paths), -buildvcs=false with the commit and the
# commit's date set by -ldflags (a copy without .git says what it is; no
# wall-clock time goes in). The Go toolchain is the one go.mod names
# (GOTOOLCHAIN=local refuses any other).
#
# Environment: VERSION (default: git describe), DIST (default: dist),
# SHARED_CACHE=1 to build both copies with the caller's GOCACHE (faster; the
# copies still differ in path).
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION=${VERSION:-$(git describe --tags --always 2>/dev/null || echo dev)}
COMMIT=$(git rev-parse HEAD)
DATE=$(TZ=UTC git log -1 --date=format-local:%Y-%m-%dT%H:%M:%SZ --format=%cd HEAD)
DIST=${DIST:-dist}
GOARCH=$(go env GOARCH)
OUT="vigil-${VERSION}-linux-${GOARCH}"
if [ -n "$(git status --porcelain --untracked-files=no)" ]; then
	echo "release: the work tree has uncommitted changes; building the committed HEAD ($COMMIT)" >&2
fi

pkg=github.com/vigilsec/vigil/internal/version
ldflags="-s -w -X $pkg.Version=$VERSION -X $pkg.Commit=$COMMIT -X $pkg.Date=$DATE"

tmp=$(mktemp -d)
trap 'chmod -R u+w "$tmp" 2>/dev/null; rm -rf "$tmp"' EXIT

build() { # build SRC-DIR OUT-FILE
	local src=$1 out=$2 cache
	mkdir -p "$src"
	git archive HEAD | tar -x -C "$src"
	if [ "${SHARED_CACHE:-0}" = 1 ]; then cache=$(go env GOCACHE); else cache="$tmp/cache-$(basename "$out")"; fi
	(cd "$src" && env CGO_ENABLED=0 GOFLAGS="-buildvcs=false -mod=readonly" GOTOOLCHAIN=local GOCACHE="$cache" \
		go build -trimpath -ldflags "$ldflags" -o "$out" ./cmd/vigil)
}

build "$tmp/a/src" "$tmp/one"
build "$tmp/b/somewhere/else/vigil" "$tmp/two"

one=$(sha256sum "$tmp/one" | cut -d' ' -f1)
two=$(sha256sum "$tmp/two" | cut -d' ' -f1)
if [ "$one" != "$two" ]; then
	echo "release: NOT reproducible: $one != $two" >&2
	exit 1
fi

mkdir -p "$DIST"
cp "$tmp/one" "$DIST/$OUT"
(cd "$DIST" && sha256sum "$OUT" >SHA256SUMS)
echo "release: $DIST/$OUT sha256 $one (two builds identical)"
