package netsensor

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vigilsec/vigil/internal/event"
	"github.com/vigilsec/vigil/internal/sensor"
	"github.com/vigilsec/vigil/internal/testenv"
)

// triggerDir holds the trigger once built; TestMain removes it.
var triggerDir string

// triggerPath builds testdata/trigger once per test binary.
var triggerPath = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "vigil-net-trigger-")
	if err != nil {
		return "", err
	}
	triggerDir = dir
	bin := filepath.Join(dir, "trigger")
	// go test puts its own toolchain first in PATH.
	cmd := exec.Command("go", "build", "-o", bin, "./testdata/trigger")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./testdata/trigger: %w: %s", err, out)
	}
	return bin, nil
})

func TestMain(m *testing.M) {
	code := m.Run()
	if triggerDir != "" {
		os.RemoveAll(triggerDir)
	}
	os.Exit(code)
}

// harness is a loaded sensor and the net events of one test cgroup.
type harness struct {
	shared *sensor.Shared
	cg     *testenv.Cgroup

	mu     sync.Mutex
	events []event.Event
	errs   []error
}

// start loads the sensor against fresh shared maps, with the net kind
// enabled or not, and collects the decoded net events of the test's cgroup.
func start(t *testing.T, enabled bool, cfg Config) *harness {
	t.Helper()
	testenv.RequirePrivileged(t)
	shared, err := sensor.NewShared(16 << 20)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { shared.Close() })
	s, err := New(cfg, shared)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if err := shared.SetKind(sensor.TypeNet, sensor.KindFilter{Enabled: enabled}); err != nil {
		t.Fatal(err)
	}
	h := &harness{shared: shared, cg: testenv.NewCgroup(t)}

	rd, err := sensor.NewReader(shared, 10*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	clk := sensor.NewClock()
	go func() {
		defer close(done)
		_ = rd.Run(ctx, func(rec []byte) {
			hdr, err := sensor.ParseHeader(rec)
			if err != nil || hdr.Type != sensor.TypeNet {
				return
			}
			var e event.Event
			err = Decode(rec, clk, &e)
			h.mu.Lock()
			defer h.mu.Unlock()
			if err != nil {
				h.errs = append(h.errs, err)
			} else if e.Process.CgroupID == h.cg.ID {
				h.events = append(h.events, e)
			}
		})
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		rd.Close()
		h.mu.Lock()
		defer h.mu.Unlock()
		for _, err := range h.errs {
			t.Errorf("decode: %v", err)
		}
	})
	return h
}

// run runs the trigger in the test's cgroup and returns its output lines,
// each parsed into key=value fields.
func (h *harness) run(t *testing.T, args ...string) []map[string]string {
	t.Helper()
	bin, err := triggerPath()
	if err != nil {
		t.Fatal(err)
	}
	cmd := h.cg.Command(bin, args...)
	out, err := cmd.Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("trigger %s: %v: %s", strings.Join(args, " "), err, stderr)
	}
	var lines []map[string]string
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		kv := map[string]string{}
		for _, f := range strings.Fields(l) {
			k, v, _ := strings.Cut(f, "=")
			kv[k] = v
		}
		lines = append(lines, kv)
	}
	return lines
}

// line is the trigger's output line for op, by its position among them.
func line(t *testing.T, lines []map[string]string, op string, nth int) map[string]string {
	t.Helper()
	for _, l := range lines {
		if l["op"] == op {
			if nth == 0 {
				return l
			}
			nth--
		}
	}
	t.Fatalf("trigger printed no op=%s line: %v", op, lines)
	return nil
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// waitFor polls until match finds an event, or fails after a generous deadline.
func (h *harness) waitFor(t *testing.T, what string, match func(e *event.Event) bool) event.Event {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		h.mu.Lock()
		for i := range h.events {
			if match(&h.events[i]) {
				e := h.events[i]
				h.mu.Unlock()
				return e
			}
		}
		n := len(h.events)
		h.mu.Unlock()
		if time.Now().After(deadline) {
			t.Fatalf("no event for %s among %d net events of the test cgroup:\n%s", what, n, h.dump())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (h *harness) dump() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var sb strings.Builder
	for _, e := range h.events {
		n := e.Net
		sb.WriteString(strings.Join([]string{string(n.Op), n.Family, n.Protocol, n.Type,
			"src=" + n.Source.String(), "dst=" + n.Destination.String(),
			"fd=" + strconv.Itoa(int(n.FD)), "ret=" + strconv.FormatInt(e.Return, 10)}, " "))
		if n.DNS != nil {
			sb.WriteString(" dns=" + strconv.Itoa(int(n.DNS.ID)) + "/" + n.DNS.Name + "/" + n.DNS.Type)
		}
		sb.WriteByte('\n')
	}
	return sb.String()
}

// checkNet compares the fields a test knows; the zero value of a field in
// want means "any" for FD only.
func checkNet(t *testing.T, what string, got event.Event, want event.Net, ret int64) {
	t.Helper()
	n := got.Net
	if want.FD == 0 {
		want.FD = n.FD
	}
	if n.Op != want.Op || n.Family != want.Family || n.Protocol != want.Protocol || n.Type != want.Type ||
		n.Source != want.Source || n.Destination != want.Destination || n.FD != want.FD || got.Return != ret {
		t.Errorf("%s:\n got %+v ret %d\nwant %+v ret %d", what, *n, got.Return, want, ret)
	}
	if got.Process.Name != "trigger" {
		t.Errorf("%s: process %q, want trigger", what, got.Process.Name)
	}
}

func TestConnect(t *testing.T) {
	h := start(t, true, Config{})

	// Listeners of the test's own on ephemeral ports, and a port that is
	// bound but not listening: a connect to it is refused, and no other
	// process can take the port meanwhile.
	var ports []netip.AddrPort
	for _, nw := range []string{"tcp4", "tcp6"} {
		addr := map[string]string{"tcp4": "127.0.0.1:0", "tcp6": "[::1]:0"}[nw]
		ln, err := net.Listen(nw, addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				c.Close()
			}
		}()
		ports = append(ports, ln.Addr().(*net.TCPAddr).AddrPort())
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	sa, _ := unix.Getsockname(fd)
	refused := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(sa.(*unix.SockaddrInet4).Port))
	ports = append(ports, refused)

	args := []string{"connect"}
	for _, p := range ports {
		args = append(args, p.String())
	}
	// A non-blocking connect: reported when the kernel has started it
	// (EINPROGRESS), or at once if loopback was quicker.
	nonblocking := netip.AddrPortFrom(ports[0].Addr(), ports[0].Port())
	args = append(args, "nb:"+nonblocking.String())
	ports = append(ports, nonblocking)
	lines := h.run(t, args...)

	for i, dst := range ports {
		l := line(t, lines, "connect", i)
		src := netip.AddrPortFrom(dst.Addr(), uint16(atoi(t, l["sport"])))
		family := "ipv4"
		if dst.Addr().Is6() {
			family = "ipv6"
		}
		var ret int64
		if l["errno"] != "0" {
			ret = -int64(atoi(t, l["errno"]))
		}
		if ret == -int64(unix.ECONNREFUSED) {
			// A refused connect releases the local address, but the
			// port the SYN left from is kept.
			src = netip.AddrPortFrom(netip.IPv4Unspecified(), src.Port())
		}
		fd := int32(atoi(t, l["fd"]))
		e := h.waitFor(t, "connect to "+dst.String(), func(e *event.Event) bool {
			return e.Net.Op == event.NetConnect && e.Net.Destination == dst && e.Return == ret &&
				e.Net.Source.Port() == src.Port()
		})
		checkNet(t, "connect to "+dst.String(), e, event.Net{
			Op: event.NetConnect, Family: family, Protocol: "tcp", Type: "stream",
			Source: src, Destination: dst, FD: fd,
		}, ret)
	}
	if errno := line(t, lines, "connect", 3)["errno"]; errno != "0" && errno != strconv.Itoa(int(unix.EINPROGRESS)) {
		t.Errorf("non-blocking connect: errno %s", errno)
	}
	if l := line(t, lines, "connect", 2); l["errno"] != strconv.Itoa(int(unix.ECONNREFUSED)) {
		t.Errorf("connect to %s: errno %s, want ECONNREFUSED", refused, l["errno"])
	}
}

// walks are the two ways the programs find a socket from its fd.
var walks = map[string]Config{"direct": {}, "portable": {PortableFDWalk: true}}

func TestBindListenAccept(t *testing.T) {
	for walk, cfg := range walks {
		t.Run(walk, func(t *testing.T) { testBindListenAccept(t, cfg) })
	}
}

func testBindListenAccept(t *testing.T, cfg Config) {
	h := start(t, true, cfg)
	for _, ip := range []string{"127.0.0.1", "::1"} {
		t.Run(ip, func(t *testing.T) {
			addr := netip.MustParseAddr(ip)
			family := map[bool]string{true: "ipv4", false: "ipv6"}[addr.Is4()]
			lines := h.run(t, "serve", ip)
			l := line(t, lines, "serve", 0)
			local := netip.AddrPortFrom(addr, uint16(atoi(t, l["port"])))
			client := netip.AddrPortFrom(addr, uint16(atoi(t, l["cport"])))
			lfd := int32(atoi(t, l["lfd"]))
			tcp := event.Net{Family: family, Protocol: "tcp", Type: "stream"}

			// bind asked for port 0: the record has the port the kernel chose.
			e := h.waitFor(t, "bind", func(e *event.Event) bool { return e.Net.Op == event.NetBind && e.Net.Source == local })
			want := tcp
			want.Op, want.Source, want.FD = event.NetBind, local, lfd
			checkNet(t, "bind", e, want, 0)

			e = h.waitFor(t, "listen", func(e *event.Event) bool { return e.Net.Op == event.NetListen && e.Net.Source == local })
			want.Op = event.NetListen
			checkNet(t, "listen", e, want, 0)

			// accept4, then accept(2): the new socket's both ends.
			for i, l := range []map[string]string{l, line(t, lines, "serve2", 0)} {
				client = netip.AddrPortFrom(addr, uint16(atoi(t, l["cport"])))
				afd := atoi(t, l["afd"])
				e = h.waitFor(t, "accept", func(e *event.Event) bool {
					return e.Net.Op == event.NetAccept && e.Net.Destination == client
				})
				want = tcp
				want.Op, want.Source, want.Destination, want.FD = event.NetAccept, local, client, int32(afd)
				checkNet(t, "accept "+strconv.Itoa(i), e, want, int64(afd))
			}
		})
	}
}

func TestDNS(t *testing.T) {
	for walk, cfg := range walks {
		t.Run(walk, func(t *testing.T) { testDNS(t, cfg) })
	}
}

func testDNS(t *testing.T, cfg Config) {
	h := start(t, true, cfg)
	for _, ip := range []string{"127.0.0.1", "::1"} {
		t.Run(ip, func(t *testing.T) {
			addr := netip.MustParseAddr(ip)
			family := map[bool]string{true: "ipv4", false: "ipv6"}[addr.Is4()]
			dst := netip.AddrPortFrom(addr, 53)
			lines := h.run(t, "dns", ip)
			unconnected := line(t, lines, "dns", 0)
			connected := line(t, lines, "dnsconnected", 0)

			// Query IDs, as the trigger numbers them: 1 sendto, 2 sendmsg,
			// 3-4 sendmmsg, all with the address; on a connected socket 5
			// send(), 6-7 sendmmsg, 8 sendmsg.
			for id, qtype := range map[uint16]string{1: "A", 2: "AAAA", 3: "A", 4: "AAAA", 5: "A", 6: "A", 7: "AAAA", 8: "AAAA"} {
				l := unconnected
				if id >= 5 {
					l = connected
				}
				what := "DNS query " + strconv.Itoa(int(id))
				e := h.waitFor(t, what, func(e *event.Event) bool {
					return e.Net.Op == event.NetDNS && e.Net.DNS != nil && e.Net.DNS.ID == id && e.Net.Destination.Addr() == addr
				})
				want := &event.DNSQuestion{ID: id, Name: "vigil-test.example.com", Type: qtype}
				if *e.Net.DNS != *want {
					t.Errorf("%s: question %+v, want %+v", what, *e.Net.DNS, *want)
				}
				n := *e.Net
				if n.Family != family || n.Protocol != "udp" || n.Type != "dgram" || n.Destination != dst ||
					n.FD != int32(atoi(t, l["fd"])) || n.Source.Port() != uint16(atoi(t, l["sport"])) {
					t.Errorf("%s: %+v", what, n)
				}
				// Unconnected sends succeed; connected ones may be refused
				// once the kernel has seen the ICMP port unreachable.
				if e.Return < 0 && (id < 5 || e.Return != -int64(unix.ECONNREFUSED)) {
					t.Errorf("%s: return %d", what, e.Return)
				}
			}
		})
	}
}

// With the net kind disabled nothing is sent: every connect is counted as
// filtered instead.
func TestDisabledKindSendsNothing(t *testing.T) {
	h := start(t, false, Config{})
	ln, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()

	before, err := h.shared.KernelCounts()
	if err != nil {
		t.Fatal(err)
	}
	const n = 10000
	h.run(t, "udpconnect", strconv.Itoa(n), ln.LocalAddr().String())
	after, err := h.shared.KernelCounts()
	if err != nil {
		t.Fatal(err)
	}
	b, a := before[sensor.TypeNet], after[sensor.TypeNet]
	if a.Sent != b.Sent || a.Lost != b.Lost {
		t.Errorf("net records sent %d -> %d, lost %d -> %d: want none", b.Sent, a.Sent, b.Lost, a.Lost)
	}
	if a.Filtered-b.Filtered < n {
		t.Errorf("filtered %d -> %d: want at least %d more", b.Filtered, a.Filtered, n)
	}
	time.Sleep(100 * time.Millisecond) // the reader's poll: nothing may arrive
	if got := h.dump(); got != "" {
		t.Errorf("net events with the kind disabled:\n%s", got)
	}
}

// Datagrams to any port but 53 are not records, even with the kind enabled.
func TestSendtoOtherPortSendsNothing(t *testing.T) {
	h := start(t, true, Config{})
	ln, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	h.run(t, "sendto", "1000", ln.LocalAddr().String())

	// The trigger ends with one query to port 53: once it is here, every
	// earlier datagram has been through the sensor.
	h.waitFor(t, "the marker query", func(e *event.Event) bool {
		return e.Net.Op == event.NetDNS && e.Net.DNS != nil && e.Net.DNS.ID == 9 && e.Net.DNS.Type == "TXT"
	})
	h.mu.Lock()
	n := len(h.events)
	h.mu.Unlock()
	if n != 1 {
		t.Errorf("%d net events, want only the marker:\n%s", n, h.dump())
	}
}

func TestKernelHasFunc(t *testing.T) {
	if kernelHasFunc("vigil_no_such_function") {
		t.Error("found a function that does not exist")
	}
	// Not an error on kernels before 6.2: the sensor then walks fds the portable way.
	t.Logf("bpf_rdonly_cast: %v", kernelHasFunc("bpf_rdonly_cast"))
}

// glibc's own resolver, as every dynamically linked program uses it: it
// connects a UDP socket to the nameserver and sends the A and AAAA queries
// together with sendmmsg. The trigger points it at 127.0.0.1 (where nothing
// listens) with a resolv.conf bind-mounted in a mount namespace of its own.
func TestGlibcResolver(t *testing.T) {
	testenv.RequirePrivileged(t)
	resolverOnlyLocal(t)
	for _, tool := range []string{"unshare", "mount", "getent"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed", tool)
		}
	}
	h := start(t, true, Config{})
	conf := filepath.Join(t.TempDir(), "resolv.conf")
	if err := os.WriteFile(conf, []byte("nameserver 127.0.0.1\noptions attempts:1 timeout:1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := h.cg.Command("unshare", "--mount", "--propagation", "private", "sh", "-c",
		`mount --bind "$1" /etc/resolv.conf && exec getent ahosts vigil-test.example.com`, "sh", conf)
	_ = cmd.Run() // getent fails: nothing answers

	for _, qtype := range []string{"A", "AAAA"} {
		e := h.waitFor(t, "glibc's "+qtype+" query", func(e *event.Event) bool {
			return e.Net.Op == event.NetDNS && e.Net.DNS != nil && e.Net.DNS.Type == qtype && e.Process.Name == "getent"
		})
		n := e.Net
		if n.DNS.Name != "vigil-test.example.com" || n.Destination != netip.MustParseAddrPort("127.0.0.1:53") ||
			n.Protocol != "udp" || n.Source.Port() == 0 {
			t.Errorf("glibc's %s query: %+v %+v", qtype, *n, *n.DNS)
		}
	}
}

// resolverOnlyLocal skips the test unless getent can only reach the
// nameservers of resolv.conf: no nscd (outside the test's mount namespace)
// and no NSS module that asks a daemon or the network (resolve, mdns).
func resolverOnlyLocal(t *testing.T) {
	t.Helper()
	for _, sock := range []string{"/run/nscd/socket", "/var/run/nscd/socket"} {
		if _, err := os.Stat(sock); err == nil {
			t.Skip("nscd runs: getent would ask it, outside the test's namespace")
		}
	}
	b, err := os.ReadFile("/etc/nsswitch.conf")
	if err != nil {
		t.Skip(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) == 0 || f[0] != "hosts:" {
			continue
		}
		for _, src := range f[1:] {
			if src != "files" && src != "dns" && src != "myhostname" && !strings.HasPrefix(src, "[") {
				t.Skipf("hosts: %s in nsswitch.conf could send queries elsewhere", src)
			}
		}
		return
	}
	t.Skip("no hosts line in /etc/nsswitch.conf")
}
