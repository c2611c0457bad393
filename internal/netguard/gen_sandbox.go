package netguard

//go:generate go tool bpf2go -cc clang-19 -strip llvm-strip-19 -cflags "-fdebug-compilation-dir=. -ffile-prefix-map=$PWD=. -O2 -g -Wall -Werror -D__TARGET_ARCH_x86 -I../../bpf -I../../bpf/include" -target amd64 -type sbx_key -type sbx_ports sbx sandbox.bpf.c
