package process

//go:generate go tool bpf2go -cc clang-19 -strip llvm-strip-19 -cflags "-fdebug-compilation-dir=. -ffile-prefix-map=$PWD=. -O2 -g -Wall -Werror -D__TARGET_ARCH_x86 -I../../../bpf -I../../../bpf/include" -target amd64 -type exec_event -type fork_event -type exit_event -type task_info -type event_header -type kstats -type event_type -type exec_flag -type exec_kill_key -type exec_kill_mark bpf process.bpf.c
