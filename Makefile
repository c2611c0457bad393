# Vigil: `make` builds, `make test` runs every test (root needed for the kernel
# tests), `make generate` rebuilds the BPF objects with clang-19.
GO ?= go
export CGO_ENABLED ?= 0

.PHONY: build test generate check-generated vmlinux bench release docs image fuzz-short

# -buildvcs=auto: record the commit even where GOFLAGS says -buildvcs=false.
build:
	$(GO) build -buildvcs=auto -o vigil ./cmd/vigil

test:
	$(GO) vet ./...
	$(GO) test -count=1 -p 1 ./...

generate:
	$(GO) generate ./...

# Every fuzz target for 10 s (FUZZTIME=1m for longer): decoders, rule and
# config parsers, the CEL condition compiler. docs/hardening.md.
fuzz-short:
	scripts/fuzz.sh

# Fails when the committed BPF output differs from what the C sources build to.
check-generated: generate
	git diff --exit-code -- '*.o' '*_bpfel.go' || { echo "committed BPF output is stale: run make generate and commit" >&2; exit 1; }

# Regenerates bpf/include from this machine's kernel BTF (by hand, not in CI).
vmlinux:
	scripts/gen-vmlinux.sh

bench:
	bench/run.sh

# The kernel tests inside other kernels under qemu (default: Debian's newest
# 6.1); KERNELS="pkg-or-image ..." picks others. See test/kernels/README.md.
.PHONY: test-kernels test-kernels-quick
test-kernels:
	test/kernels/run.sh $(KERNELS)

# The code paths only other kernels pick (BPF LSM): the probe and guard
# packages, and a deny rule carried out by the agent with BPF LSM: ~4 min.
test-kernels-quick:
	VIGIL_KT_PKGS=kernelcap,lsmguard test/kernels/run.sh $(KERNELS)
	VIGIL_KT_PKGS=internal/daemon VIGIL_KT_RUN=TestResponsesFromRules test/kernels/run.sh $(KERNELS)
# Reproducible release build of HEAD into dist/, built twice and compared
# (scripts/release.sh; VERSION=v1.2.3 to name it).
release:
	scripts/release.sh

# docs/config-reference.md from internal/config (a test fails when stale).
docs:
	$(GO) run ./internal/config/gen

# The container image (needs a Docker engine); see docs/operating.md.
IMAGE ?= vigil
VERSION ?= $(shell git describe --tags --always 2>/dev/null || echo dev)
image:
	docker build -t $(IMAGE):$(VERSION) --build-arg VERSION=$(VERSION) \
		--build-arg COMMIT=$$(git rev-parse HEAD) \
		--build-arg DATE=$$(TZ=UTC git log -1 --date=format-local:%Y-%m-%dT%H:%M:%SZ --format=%cd HEAD) .
