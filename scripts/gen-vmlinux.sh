#!/usr/bin/env bash
# Regenerates bpf/include: vmlinux.h from the running kernel's BTF, and the libbpf
# headers the BPF programs include, copied from Debian's libbpf-dev.
#
# Run it by hand when moving to a new kernel baseline; CI does not, because the
# result depends on the kernel of the machine that runs it. The BPF objects are
# CO-RE, so one vmlinux.h serves every kernel that has BTF.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
out="$top/bpf/include"
btf=${BTF:-/sys/kernel/btf/vmlinux}

command -v bpftool >/dev/null || { echo "bpftool not found: apt-get install bpftool" >&2; exit 1; }
[ -r "$btf" ] || { echo "no kernel BTF at $btf" >&2; exit 1; }

mkdir -p "$out/bpf"
bpftool btf dump file "$btf" format c > "$out/vmlinux.h.tmp"
mv "$out/vmlinux.h.tmp" "$out/vmlinux.h"
for h in bpf_helpers.h bpf_helper_defs.h bpf_core_read.h bpf_tracing.h bpf_endian.h; do
	install -m 0644 "/usr/include/bpf/$h" "$out/bpf/$h"
done
echo "wrote $out/vmlinux.h from $btf ($(uname -r))"
