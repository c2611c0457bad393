// Command floor attaches the cheapest possible openat tracer (a counter) and
// holds it until interrupted; bench/run.sh uses it as the floor to compare
// Vigil with.
package main

//go:generate go tool bpf2go -cc clang-19 -strip llvm-strip-19 -cflags "-fdebug-compilation-dir=. -ffile-prefix-map=$PWD=. -O2 -g -Wall -Werror -D__TARGET_ARCH_x86 -I../../bpf/include" -target amd64 bpf floor.bpf.c

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/rlimit"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "floor:", err)
		os.Exit(1)
	}
}

func run() error {
	if err := rlimit.RemoveMemlock(); err != nil {
		return err
	}
	var objs bpfObjects
	if err := loadBpfObjects(&objs, nil); err != nil {
		return err
	}
	defer objs.Close()
	l, err := link.Tracepoint("syscalls", "sys_enter_openat", objs.VigilFloor, nil)
	if err != nil {
		return err
	}
	defer l.Close()
	fmt.Println("attached")
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	<-sig
	return nil
}
