package netguard

//go:generate go tool bpf2go -cc clang-19 -strip llvm-strip-19 -cflags "-fdebug-compilation-dir=. -ffile-prefix-map=$PWD=. -O2 -g -Wall -Werror -D__TARGET_ARCH_x86 -I../../bpf -I../../bpf/include" -target amd64 -type lpm_key -type block_val -type deny_key -type guard_config -type guard_stat -type netdef_config -type src_stats -type nd_total -type pair_key -type intel_val -type sig -type notice -type nd_stat -type notice_kind -type flood_reason bpf netguard.bpf.c
