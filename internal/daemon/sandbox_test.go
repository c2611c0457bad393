package daemon

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vigilsec/vigil/internal/config"
	"github.com/vigilsec/vigil/internal/event"
	"github.com/vigilsec/vigil/internal/sandbox"
	"github.com/vigilsec/vigil/internal/testenv"
)

// listenIn opens a TCP listener on 127.0.0.1:port inside the network
// namespace of pid (a test container's), accepting and closing connections.
func listenIn(t *testing.T, pid int, port uint16) {
	t.Helper()
	type res struct {
		l   net.Listener
		err error
	}
	ch := make(chan res, 1)
	go func() {
		// The thread enters the namespace only to make the socket; if it
		// cannot come back it stays locked and dies with the goroutine.
		runtime.LockOSThread()
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			ch <- res{err: err}
			return
		}
		defer orig.Close()
		ns, err := os.Open(fmt.Sprintf("/proc/%d/ns/net", pid))
		if err != nil {
			ch <- res{err: err}
			return
		}
		defer ns.Close()
		if err := unix.Setns(int(ns.Fd()), unix.CLONE_NEWNET); err != nil {
			ch <- res{err: err}
			return
		}
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
		ch <- res{l, err}
	}()
	r := <-ch
	if r.err != nil {
		t.Fatalf("listen in the netns of %d: %v", pid, r.err)
	}
	t.Cleanup(func() { r.l.Close() })
	go func() {
		for {
			c, err := r.l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
}

func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o755); err != nil {
		t.Fatal(err)
	}
}

// TestSandboxes runs real runc containers named as docker names them
// around an agent with two sandbox profiles, one enforced and one audited,
// and checks from inside them: in the enforced one, an exec of a program
// not allowed, a write outside the writable paths and a connect to a port
// not allowed are refused, with alerts and response events, while allowed
// ones pass; a program the container ran before its sandbox was in force
// is killed; in the audited one, and in a container without a profile,
// and on the host, the same actions succeed (with alerts only in the
// audited one).
func TestSandboxes(t *testing.T) {
	testenv.SkipInGuest(t, "needs runc and a busybox root filesystem")
	testenv.RequirePrivileged(t)
	stateRoot := t.TempDir()
	ids := map[string]string{}
	docker := func(name string, args ...string) testenv.ContainerSpec {
		id := testenv.RandomID(t)
		ids[name] = id
		rec := filepath.Join(stateRoot, "var/lib/docker/containers", id, "config.v2.json")
		os.MkdirAll(filepath.Dir(rec), 0o755)
		os.WriteFile(rec, []byte(`{"Name":"/`+name+`","Config":{"Image":"busybox:1.36"}}`), 0o644)
		// Programs other than /bin/busybox, in the root filesystem
		// before the container starts (busybox runs the applet its
		// name says).
		rootfs := filepath.Join(stateRoot, "run/containerd/io.containerd.runtime.v2.task/moby", id, "rootfs")
		copyFile(t, testenv.Busybox, filepath.Join(rootfs, "opt/echo"))
		copyFile(t, testenv.Busybox, filepath.Join(rootfs, "opt/sleep"))
		return testenv.ContainerSpec{ID: id, StateRoot: stateRoot, RuncRoot: "run/docker/runtime-runc/moby",
			BundleDir: "run/containerd/io.containerd.runtime.v2.task/moby/%s", CgroupsPath: "/system.slice/docker-%s.scope", Args: args}
	}

	cfg := testConfig(t.TempDir())
	cfg.Containers.StateRoot = stateRoot
	cfg.Containers.Resources.Enabled = false
	// Each container has a network namespace of its own, where the test
	// listens on these two ports.
	const allowedPort, deniedPort = 7001, 7002
	cfgFile := filepath.Join(t.TempDir(), "vigil.yaml")
	os.WriteFile(cfgFile, []byte(`sandboxes:
  - name: boxed
    match: {names: ["boxed-*"], images: ["busybox:*"]}
    exec: [/bin/]
    write: [/tmp/]
    connect: ["127.0.0.1:7001"]
  - name: watched
    mode: audit
    match: {names: [audited]}
    exec: [/bin/]
    write: [/tmp/]
    connect: ["127.0.0.1:7001"]
`), 0o644)
	loaded, err := config.Load(cfgFile)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Sandboxes = loaded.Sandboxes

	// Two containers start before the agent (found at start-up), others
	// after (found by their first event).
	boxed := testenv.RunContainer(t, docker("boxed-1", "sleep", "600"))
	audited := testenv.RunContainer(t, docker("audited", "sleep", "600"))
	for _, c := range []*testenv.Container{boxed, audited} {
		listenIn(t, c.PID, allowedPort)
		listenIn(t, c.PID, deniedPort)
	}

	hostCG := testenv.NewCgroup(t)
	sink := &ctrSink{ids: map[string]bool{}, hostCG: hostCG.ID}
	for _, id := range ids {
		sink.ids[id] = true
	}
	a, err := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), sink)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("agent: %v", err)
		}
	})
	<-a.Ready()
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		sink.mu.Lock()
		defer sink.mu.Unlock()
		for _, e := range sink.events {
			switch {
			case e.Kind == event.KindAlert && strings.HasPrefix(e.Alert.RuleID, "sandbox-"):
				t.Logf("alert %s: %s (pid %d %s)", e.Alert.RuleID, e.Alert.Message, e.Process.PID, e.Process.Name)
			case e.Kind == event.KindResponse:
				t.Logf("response %+v (pid %d %s)", *e.Response, e.Process.PID, e.Process.Name)
			}
		}
	})
	// run starts a container whose events the sink keeps from the first.
	run := func(spec testenv.ContainerSpec) *testenv.Container {
		sink.mu.Lock()
		sink.ids[spec.ID] = true
		sink.mu.Unlock()
		return testenv.RunContainer(t, spec)
	}
	for _, c := range []*testenv.Container{boxed, audited} {
		deadline := time.Now().Add(15 * time.Second)
		for !a.sbx.inForce(c.CgroupPath) {
			if time.Now().After(deadline) {
				t.Fatalf("the sandbox of %s is not in force after 15s", c.CgroupPath)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	free := run(docker("free", "sleep", "600"))
	listenIn(t, free.PID, allowedPort)
	listenIn(t, free.PID, deniedPort)
	sink.wait(t, "exec in the container without a profile", 10*time.Second, func(e *event.Event) bool {
		return e.Kind == event.KindExec && e.Container != nil && e.Container.ID == free.ID
	})
	if a.sbx.inForce(free.CgroupPath) {
		t.Fatal("the container without a profile is in a sandbox")
	}

	// The same script in each container: a program not in /bin, a write
	// to /etc, a write to /tmp, a connect to each port.
	script := func(*testenv.Container) string {
		return fmt.Sprintf(`/opt/echo ran; echo exec=$?
echo changed > /etc/hostname; echo etc=$?
echo fine > /tmp/ok; echo tmp=$?
nc 127.0.0.1 %d </dev/null; echo allowed=$?
nc 127.0.0.1 %d </dev/null; echo denied=$?
cat /etc/hostname /tmp/ok`, allowedPort, deniedPort)
	}
	alertFor := func(c *testenv.Container, rule string) func(*event.Event) bool {
		return func(e *event.Event) bool {
			return e.Kind == event.KindAlert && e.Alert.RuleID == rule && e.Container != nil && e.Container.ID == c.ID
		}
	}
	responseFor := func(c *testenv.Container, rule, outcome string) func(*event.Event) bool {
		return func(e *event.Event) bool {
			return e.Kind == event.KindResponse && e.Response.RuleID == rule && e.Response.Outcome == outcome &&
				e.Container != nil && e.Container.ID == c.ID
		}
	}

	t.Run("enforced", func(t *testing.T) {
		out := boxed.Exec(t, "sh", "-c", script(boxed))
		for _, want := range []string{"exec=126", "etc=1", "tmp=0", "allowed=0", "denied=1", "Operation not permitted", "vigil-test\nfine\n"} {
			if !strings.Contains(out, want) {
				t.Errorf("output lacks %q:\n%s", want, out)
			}
		}
		if strings.Contains(out, "ran\n") {
			t.Errorf("/opt/echo ran:\n%s", out)
		}
		for _, rule := range []string{sandbox.RuleExec, sandbox.RuleWrite, sandbox.RuleConnect} {
			al := sink.wait(t, rule+" alert", 10*time.Second, alertFor(boxed, rule))
			if al.Alert.Ruleset != "sandbox:boxed" || al.Alert.Response != "deny" {
				t.Errorf("%s alert: ruleset %q response %q", rule, al.Alert.Ruleset, al.Alert.Response)
			}
			sink.wait(t, rule+" response", 10*time.Second, responseFor(boxed, rule, event.ResponseDone))
		}
		e := sink.wait(t, "exec alert", time.Second, alertFor(boxed, sandbox.RuleExec))
		if e.Process.Executable != "/opt/echo" {
			t.Errorf("exec alert process %+v", e.Process)
		}
		e = sink.wait(t, "connect alert", time.Second, alertFor(boxed, sandbox.RuleConnect))
		if e.Alert.Trigger == nil || e.Alert.Trigger.Net == nil || e.Alert.Trigger.Net.Destination.Port() != deniedPort {
			t.Errorf("connect alert trigger %+v", e.Alert.Trigger)
		}
	})

	t.Run("audited", func(t *testing.T) {
		out := audited.Exec(t, "sh", "-c", script(audited))
		for _, want := range []string{"ran\n", "exec=0", "etc=0", "tmp=0", "allowed=0", "denied=0", "changed\nfine\n"} {
			if !strings.Contains(out, want) {
				t.Errorf("output lacks %q:\n%s", want, out)
			}
		}
		for _, rule := range []string{sandbox.RuleExec, sandbox.RuleWrite, sandbox.RuleConnect} {
			al := sink.wait(t, rule+" alert", 10*time.Second, alertFor(audited, rule))
			if al.Alert.Ruleset != "sandbox:watched" || al.Alert.Response != "alert" {
				t.Errorf("%s alert: ruleset %q response %q", rule, al.Alert.Ruleset, al.Alert.Response)
			}
		}
	})

	t.Run("no profile", func(t *testing.T) {
		out := free.Exec(t, "sh", "-c", script(free))
		for _, want := range []string{"ran\n", "exec=0", "etc=0", "tmp=0", "allowed=0", "denied=0", "changed\nfine\n"} {
			if !strings.Contains(out, want) {
				t.Errorf("output lacks %q:\n%s", want, out)
			}
		}
	})

	t.Run("host", func(t *testing.T) {
		// The enforced container's own files, through the host's mounts.
		rootfs := filepath.Join(boxed.Bundle, "rootfs")
		if _, out := hostCG.Run(t, filepath.Join(rootfs, "opt/echo"), "host-ran"); out != "host-ran\n" {
			t.Errorf("host exec of the container's /opt/echo: %q", out)
		}
		if _, out := hostCG.Run(t, "/bin/sh", "-c", "echo from-host > "+filepath.Join(rootfs, "etc/hostname")+"; echo rc=$?"); out != "rc=0\n" {
			t.Errorf("host write to the container's /etc/hostname: %q", out)
		}
		// A loopback listener of the test's on the host: the profile
		// allows only port 7001, but its hooks are on the container's cgroup.
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		go func() {
			if c, err := l.Accept(); err == nil {
				c.Close()
			}
		}()
		if _, out := hostCG.Run(t, "/bin/sh", "-c", "busybox nc "+strings.Replace(l.Addr().String(), ":", " ", 1)+" </dev/null; echo rc=$?"); out != "rc=0\n" {
			t.Errorf("host connect to %s: %q", l.Addr(), out)
		}
	})

	// No alert for what the container without a profile or the host did.
	sink.mu.Lock()
	for _, e := range sink.events {
		if e.Kind == event.KindAlert && strings.HasPrefix(e.Alert.RuleID, "sandbox-") &&
			(e.Container == nil || e.Container.ID == free.ID) {
			t.Errorf("sandbox alert outside the sandboxes: %s %+v", e.Alert.Message, e.Container)
		}
		if e.Kind == event.KindResponse && e.Container != nil && e.Container.ID == audited.ID {
			t.Errorf("response in the audited container: %+v", e.Response)
		}
	}
	sink.mu.Unlock()

	t.Run("first program", func(t *testing.T) {
		// A container's first program is not allowed: its sandbox is
		// put in force while the runtime sets the container up, so the
		// exec is denied; had the runtime been quicker than the agent,
		// the program would be killed right after exec. Either way it
		// does not keep running.
		late := run(docker("boxed-late", "/opt/sleep", "600"))
		r := sink.wait(t, "response to the first program", 10*time.Second, responseFor(late, sandbox.RuleExec, event.ResponseDone))
		t.Logf("first program: %s by %s (%s)", r.Response.Action, r.Response.Mechanism, r.Response.Reason)
		if r.Response.Action != "deny" && r.Response.Action != "kill" {
			t.Errorf("response %+v", r.Response)
		}
		deadline := time.Now().Add(5 * time.Second)
		for len(late.PIDs()) > 0 {
			if time.Now().After(deadline) {
				t.Fatalf("the container still runs %v", late.PIDs())
			}
			time.Sleep(20 * time.Millisecond)
		}

		// One that starts after the agent and runs allowed programs only
		// is put in its sandbox from its first exec.
		fresh := run(docker("boxed-2", "sleep", "600"))
		deadline = time.Now().Add(10 * time.Second)
		for !a.sbx.inForce(fresh.CgroupPath) {
			if time.Now().After(deadline) {
				t.Fatalf("the sandbox of %s is not in force after 10s", fresh.CgroupPath)
			}
			time.Sleep(20 * time.Millisecond)
		}
		if out := fresh.Exec(t, "sh", "-c", "/opt/echo ran; echo exec=$?"); !strings.Contains(out, "exec=126") {
			t.Errorf("exec of /opt/echo in %s: %s", fresh.CgroupPath, out)
		}
	})
}
