// Package file is the file sensor: opens with write intent or of watched
// files, creation, unlink, rmdir, rename, chmod, chown, link, symlink,
// truncate and mkdir, on syscall exit tracepoints (file.bpf.c).
//
// What the kernel reports is decided in the kernel, from the file kind's
// filter (sensor.KindFilter: FileWrites and FileReads) and the interest set
// that Watch fills: see interest.go.
//
// Not seen: file operations submitted through io_uring (they make no
// syscall), 32-bit syscalls of compat tasks (syscall tracepoints skip them on
// x86_64), and syscalls not in Hooks, such as open_by_handle_at. Operations named by a path
// string are decided in the kernel from that string and the directory it
// starts from, not from the file they reached: a symlinked directory in the
// string can lead a write out of or into a watched tree unnoticed by the
// filter (opens are exact: they are judged by the file they opened).
package file

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"strings"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/link"

	"github.com/vigilsec/vigil/internal/sensor"
)

// Config tunes the sensor before it is loaded.
type Config struct {
	// FModeCreated is the kernel's FMODE_CREATED, the file->f_mode bit of a
	// file an open created. It is a #define, not in BTF; 0 means 0x100000,
	// its value from Linux 4.19 through at least 6.18.
	FModeCreated uint32
	// ProbeReads makes the programs read kernel objects with a helper call
	// per pointer instead of typed loads through the bpf_rdonly_cast kfunc.
	// New sets it on kernels without that kfunc (before 6.2); tests set it
	// to cover that path here.
	ProbeReads bool
}

// Hooks names the kernel hooks the sensor attaches to, for status and errors.
// Each is served by the program named vigil_<syscall>.
var Hooks = []string{
	"tracepoint/syscalls/sys_exit_openat",
	"tracepoint/syscalls/sys_exit_open",
	"tracepoint/syscalls/sys_exit_creat",
	"tracepoint/syscalls/sys_exit_openat2",
	"tracepoint/syscalls/sys_exit_unlink",
	"tracepoint/syscalls/sys_exit_unlinkat",
	"tracepoint/syscalls/sys_exit_rmdir",
	"tracepoint/syscalls/sys_exit_mkdir",
	"tracepoint/syscalls/sys_exit_mkdirat",
	"tracepoint/syscalls/sys_exit_rename",
	"tracepoint/syscalls/sys_exit_renameat",
	"tracepoint/syscalls/sys_exit_renameat2",
	"tracepoint/syscalls/sys_exit_link",
	"tracepoint/syscalls/sys_exit_linkat",
	"tracepoint/syscalls/sys_exit_symlink",
	"tracepoint/syscalls/sys_exit_symlinkat",
	"tracepoint/syscalls/sys_exit_chmod",
	"tracepoint/syscalls/sys_exit_fchmod",
	"tracepoint/syscalls/sys_exit_fchmodat",
	"tracepoint/syscalls/sys_exit_fchmodat2",
	"tracepoint/syscalls/sys_exit_chown",
	"tracepoint/syscalls/sys_exit_lchown",
	"tracepoint/syscalls/sys_exit_fchown",
	"tracepoint/syscalls/sys_exit_fchownat",
	"tracepoint/syscalls/sys_exit_truncate",
	"tracepoint/syscalls/sys_exit_ftruncate",
}

// requiredHook must attach for the sensor to be of any use.
const requiredHook = "tracepoint/syscalls/sys_exit_openat"

// objects is what the sensor keeps of its collection: the programs and its
// own map. The maps the programs write to belong to sensor.Shared.
type objects struct {
	bpfPrograms
	Lex  *ebpf.Map `ebpf:"vigil_file_lex"`
	Tail *ebpf.Map `ebpf:"vigil_file_tail"`
}

// Sensor is the loaded and attached file sensor.
type Sensor struct {
	objs   objects
	links  []link.Link
	shared *sensor.Shared
	watch  sync.Mutex // serializes Watch and ClearWatches (they read, then write, marks)
	// Skipped lists the hooks this kernel lacks (a syscall it does not
	// have, such as fchmodat2 before 6.6), each with the reason.
	Skipped []string
}

// New loads the sensor's programs, writing to the shared maps, and attaches
// them. A syscall tracepoint the kernel lacks is skipped and listed in
// Skipped; any other failure is an error.
func New(cfg Config, shared *sensor.Shared) (*Sensor, error) {
	spec, err := loadBpf()
	if err != nil {
		return nil, fmt.Errorf("file sensor: %w", err)
	}
	if cfg.FModeCreated == 0 {
		cfg.FModeCreated = 0x100000
	}
	if !cfg.ProbeReads && !kernelHasFunc("bpf_rdonly_cast") {
		cfg.ProbeReads = true
	}
	for name, v := range map[string]any{
		"fmode_created": cfg.FModeCreated,
		"direct_loads":  !cfg.ProbeReads,
	} {
		if err := spec.Variables[name].Set(v); err != nil {
			return nil, fmt.Errorf("file sensor: set %s: %w", name, err)
		}
	}
	repl, err := shared.Prepare(spec)
	if err != nil {
		return nil, fmt.Errorf("file sensor: %w", err)
	}
	s := &Sensor{shared: shared}
	if err := spec.LoadAndAssign(&s.objs, &ebpf.CollectionOptions{MapReplacements: repl}); err != nil {
		return nil, sensor.Explain("file sensor: load", err)
	}
	if !tracefsMounted() {
		s.Close()
		return nil, &sensor.Problem{
			What: "file sensor: tracefs is not mounted, and syscall tracepoints are attached through it",
			Fix:  "mount it: mount -t tracefs nodev /sys/kernel/tracing",
		}
	}
	// Every syscall's program hands its request to vigil_file_rpt.
	if err := s.objs.Tail.Put(uint32(0), s.objs.VigilFileRpt); err != nil {
		s.Close()
		return nil, fmt.Errorf("file sensor: install vigil_file_rpt: %w", err)
	}
	progs := programsByName(&s.objs.bpfPrograms)
	for _, hook := range Hooks {
		tp := strings.TrimPrefix(hook, "tracepoint/syscalls/")
		prog := progs["vigil_"+strings.TrimPrefix(tp, "sys_exit_")]
		if prog == nil {
			s.Close()
			return nil, fmt.Errorf("file sensor: no program for %s", hook)
		}
		l, err := link.Tracepoint("syscalls", tp, prog, nil)
		if err != nil {
			if hook != requiredHook && errors.Is(err, os.ErrNotExist) {
				s.Skipped = append(s.Skipped, fmt.Sprintf("%s: %v", hook, err))
				continue
			}
			s.Close()
			return nil, sensor.Explain("file sensor: attach "+hook, err)
		}
		s.links = append(s.links, l)
	}
	return s, nil
}

// tracefsMounted reports whether the tracepoints' directory is there, where
// cilium/ebpf looks for it.
func tracefsMounted() bool {
	for _, dir := range []string{"/sys/kernel/tracing/events", "/sys/kernel/debug/tracing/events"} {
		if _, err := os.Stat(dir); err == nil {
			return true
		}
	}
	return false
}

// kernelHasFunc reports whether the kernel's BTF has the function (a kfunc).
func kernelHasFunc(name string) bool {
	spec, err := btf.LoadKernelSpec()
	if err != nil {
		return false
	}
	var fn *btf.Func
	return spec.TypeByName(name, &fn) == nil
}

// programsByName indexes the loaded programs by their ELF names.
func programsByName(p *bpfPrograms) map[string]*ebpf.Program {
	out := map[string]*ebpf.Program{}
	v := reflect.ValueOf(p).Elem()
	for i := 0; i < v.NumField(); i++ {
		if prog, ok := v.Field(i).Interface().(*ebpf.Program); ok {
			out[v.Type().Field(i).Tag.Get("ebpf")] = prog
		}
	}
	return out
}

// Close detaches and unloads everything. It is safe to call more than once.
func (s *Sensor) Close() error {
	// Detaching a syscall tracepoint waits for an RCU grace period; in
	// parallel, the links share them (26 in a row take about two seconds).
	errs := make([]error, len(s.links))
	var wg sync.WaitGroup
	for i, l := range s.links {
		wg.Go(func() { errs[i] = l.Close() })
	}
	wg.Wait()
	s.links = nil
	errs = append(errs, s.objs.bpfPrograms.Close())
	s.objs.bpfPrograms = bpfPrograms{}
	for _, m := range []**ebpf.Map{&s.objs.Lex, &s.objs.Tail} {
		if *m != nil {
			errs = append(errs, (*m).Close())
			*m = nil
		}
	}
	return errors.Join(errs...)
}

// ProgramStats reports, per program, how often it ran and for how long. The
// kernel counts only while BPF run-time statistics are on (ebpf.EnableStats);
// a tail-called program's time counts towards the syscall's program.
func (s *Sensor) ProgramStats() (map[string]*ebpf.ProgramStats, error) {
	out := map[string]*ebpf.ProgramStats{}
	for name, p := range programsByName(&s.objs.bpfPrograms) {
		if p == nil {
			continue
		}
		st, err := p.Stats()
		if err != nil {
			return nil, fmt.Errorf("file sensor: stats of %s: %w", name, err)
		}
		out[name] = st
	}
	return out, nil
}
