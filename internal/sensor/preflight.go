package sensor

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/rlimit"
	"golang.org/x/sys/unix"
)

// Problem is a reason Vigil cannot run on this machine, phrased for the person
// running it: what is wrong and what to do.
type Problem struct {
	What string
	Fix  string
	Err  error
}

func (p *Problem) Error() string {
	s := p.What
	if p.Fix != "" {
		s += ": " + p.Fix
	}
	return s
}

func (p *Problem) Unwrap() error { return p.Err }

// MinKernel is the oldest kernel the sensors load on: tp_btf, ring buffers
// and bpf_loop (5.17).
var MinKernel = [2]int{5, 17}

// Preflight checks, before anything is loaded, that this process may use BPF
// and that the kernel has what the sensors need. btfPath is normally
// /sys/kernel/btf/vmlinux.
func Preflight(btfPath string) error {
	if os.Geteuid() != 0 {
		return &Problem{What: "vigil needs root to load its BPF programs", Fix: "run it with sudo"}
	}
	var uts unix.Utsname
	if err := unix.Uname(&uts); err == nil {
		release := unix.ByteSliceToString(uts.Release[:])
		if maj, min, ok := parseRelease(release); ok && (maj < MinKernel[0] || maj == MinKernel[0] && min < MinKernel[1]) {
			return &Problem{
				What: fmt.Sprintf("kernel %s is too old", release),
				Fix:  fmt.Sprintf("vigil needs Linux %d.%d or newer (BTF tracepoints, ring buffers, bpf_loop)", MinKernel[0], MinKernel[1]),
			}
		}
	}
	if _, err := os.Stat(btfPath); err != nil {
		return &Problem{
			What: fmt.Sprintf("the kernel has no BTF type information (%s is missing)", btfPath),
			Fix:  "use a kernel built with CONFIG_DEBUG_INFO_BTF=y (every major distribution's kernel has it)",
			Err:  err,
		}
	}
	if err := EnsureTracefs(); err != nil {
		return err
	}
	if err := rlimit.RemoveMemlock(); err != nil {
		return &Problem{What: "cannot lift the locked-memory limit for BPF maps", Fix: "run as root or raise RLIMIT_MEMLOCK", Err: err}
	}
	// The smallest thing BPF can do: if this fails, nothing else will load.
	m, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.Array, KeySize: 4, ValueSize: 4, MaxEntries: 1})
	if err != nil {
		return &Problem{What: "the kernel refused to create a BPF map", Fix: hint(err), Err: err}
	}
	m.Close()
	return nil
}

func parseRelease(r string) (maj, min int, ok bool) {
	parts := strings.SplitN(r, ".", 3)
	if len(parts) < 2 {
		return 0, 0, false
	}
	maj, err1 := strconv.Atoi(parts[0])
	minStr := parts[1]
	if i := strings.IndexFunc(minStr, func(r rune) bool { return r < '0' || r > '9' }); i >= 0 {
		minStr = minStr[:i]
	}
	min, err2 := strconv.Atoi(minStr)
	return maj, min, err1 == nil && err2 == nil
}

func hint(err error) string {
	switch {
	case errors.Is(err, unix.EPERM), errors.Is(err, unix.EACCES):
		return "BPF is not permitted: run as root; a lockdown=confidentiality kernel, a seccomp profile or a container without CAP_BPF and CAP_PERFMON also block it"
	case errors.Is(err, unix.ENOSYS):
		return "this kernel was built without BPF (CONFIG_BPF_SYSCALL)"
	case errors.Is(err, unix.ENOMEM):
		return "out of memory for BPF maps: lower ring_buffer_mib or raise RLIMIT_MEMLOCK"
	}
	return "see the error above"
}

// explain wraps an error from the BPF syscall with a hint for the person
// running Vigil.
func explain(err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%w (%s)", err, hint(err))
}

// Explain is explain for sensors: it wraps load and attach errors with what
// to do about them. Verifier rejections keep the verifier's last lines.
func Explain(what string, err error) error {
	var ve *ebpf.VerifierError
	if errors.As(err, &ve) {
		return fmt.Errorf("%s: the kernel's verifier rejected the program (this is a bug in vigil: please report it with `uname -r`): %w", what, ve)
	}
	if errors.Is(err, os.ErrNotExist) || errors.Is(err, unix.ENOENT) {
		return &Problem{What: fmt.Sprintf("%s: the kernel has no such hook", what), Fix: "this kernel lacks a tracepoint vigil needs; vigil supports Linux 5.17 and newer with BTF", Err: err}
	}
	return fmt.Errorf("%s: %w", what, explain(err))
}
