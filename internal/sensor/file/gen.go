package file

//go:generate go tool bpf2go -cc clang-19 -strip llvm-strip-19 -cflags "-fdebug-compilation-dir=. -ffile-prefix-map=$PWD=. -O2 -g -Wall -Werror -D__TARGET_ARCH_x86 -I../../../bpf -I../../../bpf/include" -target amd64 -type file_event -type task_info -type event_header -type file_op -type file_flag -type lex_key -type lex_val bpf file.bpf.c
