package respond

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/vigilsec/vigil/internal/testenv"
)

func TestParseSyscall(t *testing.T) {
	mem := func(addr uint64) (uint64, error) {
		if addr != 0x7ffd1000 {
			t.Errorf("read at %#x", addr)
		}
		return unix.O_RDWR, nil
	}
	for _, tt := range []struct {
		line string
		want Intent
	}{
		{"257 0xffffff9c 0x7fff82072a9e 0x0 0x0 0x0 0x0 0x7fff82071720 0x7f8a82aaa011", Intent{Known: true, Syscall: "openat"}},
		{"257 0xffffff9c 0x56083cfa8e00 0x241 0x1b6 0xc 0x1 0x7fffbb08a160 0x7fc561439011",
			Intent{Known: true, Write: true, Create: true, Syscall: "openat", Flags: 0x241}},
		{"2 0x5608 0x401 0x0 0x0 0x0 0x0 0x7fff 0x7fc5", Intent{Known: true, Write: true, Syscall: "open", Flags: 0x401}},
		{"85 0x5608 0x1a4 0x0 0x0 0x0 0x0 0x7fff 0x7fc5", Intent{Known: true, Write: true, Create: true, Syscall: "creat", Flags: 0x241}},
		{"437 0xffffff9c 0x5608 0x7ffd1000 0x18 0x0 0x0 0x7fff 0x7fc5", Intent{Known: true, Write: true, Syscall: "openat2", Flags: unix.O_RDWR}},
		{"59 0x5608 0x5609 0x560a 0x0 0x0 0x0 0x7fff 0x7fc5", Intent{Known: true, Syscall: "execve"}},
		{"425 0x5 0x0 0x0 0x0 0x0 0x0 0x7fff 0x7fc5", Intent{Syscall: "syscall 425"}},
		{"-1 0x7fff 0x7fc5", Intent{Syscall: "none"}},
		{"running", Intent{Syscall: "none"}},
	} {
		if got := ParseSyscall(tt.line, mem); got != tt.want {
			t.Errorf("%q: %+v, want %+v", tt.line, got, tt.want)
		}
	}
}

func TestUnescapeMount(t *testing.T) {
	if got := unescapeMount(`/a\040b\134c\011`); got != "/a b\\c\t" {
		t.Errorf("got %q", got)
	}
}

// A real runc container's mounts are marked: its writes to /etc and its
// exec of a program not allowed fail with EPERM, while the host writes the
// same file through its own mount untouched, and other opens pass.
func TestMountDenierContainer(t *testing.T) {
	testenv.RequirePrivileged(t)
	c := testenv.RunContainer(t, testenv.ContainerSpec{CgroupsPath: "/vigil-test-mountdeny-%s", Args: []string{"sleep", "600"}})
	rootfs := filepath.Join(c.Bundle, "rootfs")
	// A second program, a different file from /bin/busybox.
	if err := os.MkdirAll(filepath.Join(rootfs, "opt"), 0o755); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(filepath.Join(rootfs, "bin/busybox"))
	if err := os.WriteFile(filepath.Join(rootfs, "opt/echo"), b, 0o755); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var seen []string
	d, err := NewMountDenier("", func(r *MountRequest) bool {
		in := Intent{}
		if !r.Exec {
			in = r.OpenIntent()
		}
		mu.Lock()
		seen = append(seen, r.Path)
		mu.Unlock()
		if r.Exec {
			return !strings.HasPrefix(r.Path, "/opt/")
		}
		return !(strings.HasPrefix(r.Path, "/etc/") && in.Write)
	})
	if err != nil {
		t.Fatal(err)
	}
	marked, err := d.MarkNamespace(c.PID, true, true)
	if err != nil {
		t.Logf("mark: %v", err) // mounts shadowed by others cannot be reached
	}
	if len(marked) == 0 || marked[0] != "/" {
		t.Fatalf("marked %v, want the root first", marked)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()

	out := c.Exec(t, "sh", "-c", "echo changed > /etc/hostname; echo rc=$?; cat /etc/hostname; echo new > /tmp/x && cat /tmp/x; /opt/echo run; echo rc=$?")
	for _, want := range []string{"can't create /etc/hostname: Operation not permitted", "rc=1", "vigil-test", "new\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("container output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "run\n") {
		t.Errorf("/opt/echo ran:\n%s", out)
	}
	// The host writes the same file through its own mount: not held.
	host := filepath.Join(rootfs, "etc/hostname")
	if err := os.WriteFile(host, []byte("from-host\n"), 0o644); err != nil {
		t.Errorf("host write of %s: %v", host, err)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, p := range seen {
		if strings.HasPrefix(p, c.Bundle) {
			t.Errorf("a host open was held: %s", p)
		}
	}
	if d.Denied.Load() < 2 {
		t.Errorf("denied %d, want the write and the exec", d.Denied.Load())
	}
}
