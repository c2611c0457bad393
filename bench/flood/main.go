// Command flood measures dropping a UDP flood with Vigil's XDP block list
// against nftables dropping the same flood, in one run, and what XDP
// accounting costs traffic that is let through. bench/flood.sh runs it.
//
// A namespace of its own, joined by a veth pair, sends from its end to this
// host's. On a veth the receiving side runs in the sender's softirq, so the
// packets/s a sender reaches is bounded by everything the packet costs,
// the drop included: the cheaper the drop, the more packets are dropped per
// second with the same CPUs. Setups take turns round by round; medians are
// reported, and ratios against XDP from the same run.
//
// Flood setups (the sender's address is dropped):
//
//	xdp          netguard's XDP program in native mode, the address in its
//	             block list
//	xdp-generic  the same in generic mode (after the skb is built)
//	tcx          the same program's work at tcx ingress, no XDP
//	             (response.xdp_mode: tcx)
//	nft-ingress  nftables, netdev family, ingress hook of the interface
//	             (the earliest nftables can drop)
//	nft-raw      nftables, inet family, prerouting at raw priority (-300),
//	             where DDoS drop rules usually go
//
// Pass-through setups (a UDP receiver counts what arrives):
//
//	plain         nothing attached
//	xdp-pass      netguard's XDP program, native, accounting off
//	xdp-acct      the same with per-source accounting on, as network
//	              defence runs it
//	generic-pass  generic mode, accounting off
//	generic-acct  generic mode, accounting on
//	tcx-pass      at tcx ingress, accounting off
//	tcx-acct      at tcx ingress, accounting on
//
// On a veth, native XDP makes the receiving side queue each packet to a
// NAPI of its own and convert its skb to an XDP buffer (copying it when the
// headroom is short); a physical NIC's native XDP runs before any skb
// exists, which is where it wins. This bench shows the veth case only.
package main

import (
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/vigilsec/vigil/internal/netguard"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "send" {
		send(os.Args[2:])
		return
	}
	rounds := flag.Int("rounds", 5, "rounds; each runs every setup once")
	secs := flag.Duration("duration", 3*time.Second, "how long each setup's sender runs")
	senders := flag.Int("senders", 2, "sending goroutines (one socket each)")
	flag.Parse()
	if err := run(*rounds, *secs, *senders); err != nil {
		fmt.Fprintln(os.Stderr, "flood:", err)
		os.Exit(1)
	}
}

// send floods addr with 64-byte UDP datagrams for a duration from n
// goroutines and prints how many it sent.
func send(args []string) {
	addr := netip.MustParseAddrPort(args[0])
	d, _ := time.ParseDuration(args[1])
	n, _ := strconv.Atoi(args[2])
	var sent atomic.Uint64
	var wg sync.WaitGroup
	end := time.Now().Add(d)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(addr))
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(2)
			}
			buf := make([]byte, 64)
			var k uint64
			for i := 0; ; i++ {
				if i%1024 == 0 && time.Now().After(end) {
					break
				}
				if _, err := c.Write(buf); err == nil {
					k++
				}
			}
			sent.Add(k)
		}()
	}
	wg.Wait()
	fmt.Println(sent.Load())
}

type lab struct {
	ns, hostIf, peerIf string
	hostIP, peerIP     netip.Addr
}

func ip(args ...string) error {
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return nil
}

func newLab() (*lab, error) {
	r := make([]byte, 3)
	rand.Read(r)
	id := fmt.Sprintf("%x", r)
	l := &lab{ns: "vigil-bench-" + id, hostIf: "vbf" + id, peerIf: "vbf" + id + "p",
		hostIP: netip.MustParseAddr("10.239.0.1"), peerIP: netip.MustParseAddr("10.239.0.2")}
	for _, args := range [][]string{
		{"netns", "add", l.ns},
		{"link", "add", l.hostIf, "type", "veth", "peer", "name", l.peerIf},
		{"link", "set", l.peerIf, "netns", l.ns},
		{"addr", "add", l.hostIP.String() + "/30", "dev", l.hostIf},
		{"link", "set", l.hostIf, "up"},
		{"-n", l.ns, "addr", "add", l.peerIP.String() + "/30", "dev", l.peerIf},
		{"-n", l.ns, "link", "set", l.peerIf, "up"},
		{"-n", l.ns, "link", "set", "lo", "up"},
	} {
		if err := ip(args...); err != nil {
			l.close()
			return nil, err
		}
	}
	return l, nil
}

func (l *lab) close() {
	exec.Command("ip", "link", "del", l.hostIf).Run()
	exec.Command("ip", "netns", "del", l.ns).Run()
}

// flood runs the sender in the namespace against port and returns the
// packets it sent.
func (l *lab) flood(port uint16, d time.Duration, senders int) (uint64, error) {
	self, _ := os.Executable()
	out, err := exec.Command("ip", "netns", "exec", l.ns, self, "send",
		netip.AddrPortFrom(l.hostIP, port).String(), d.String(), strconv.Itoa(senders)).Output()
	if err != nil {
		return 0, fmt.Errorf("sender: %w", err)
	}
	return strconv.ParseUint(strings.TrimSpace(string(out)), 10, 64)
}

// cpuBusy is the machine's non-idle CPU time so far, in clock ticks.
func cpuBusy() uint64 {
	b, _ := os.ReadFile("/proc/stat")
	f := strings.Fields(strings.SplitN(string(b), "\n", 2)[0])
	var busy uint64
	for i, v := range f[1:] {
		n, _ := strconv.ParseUint(v, 10, 64)
		if i != 3 && i != 4 { // idle, iowait
			busy += n
		}
	}
	return busy
}

type result struct {
	pps     float64 // packets/s the sender reached
	arrived uint64  // packets the receiver read
	cpuNs   float64 // machine CPU ns per packet sent
}

type setup struct {
	name  string
	flood bool // the sender's address is dropped
	on    func() error
	off   func() error
}

func run(rounds int, d time.Duration, senders int) error {
	if _, err := exec.LookPath("nft"); err != nil {
		return errors.New("nft not found: apt-get install nftables")
	}
	l, err := newLab()
	if err != nil {
		return err
	}
	defer l.close()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	pin := filepath.Join("/sys/fs/bpf", "vigil-bench-"+strings.TrimPrefix(l.ns, "vigil-bench-"))
	defer os.RemoveAll(pin)
	var g *netguard.Guard
	// openGuard attaches netguard in mode; it blocks the sender, or lets it
	// through with accounting on or off.
	openGuard := func(mode string, block, acct bool) func() error {
		return func() error {
			var err error
			if g, err = netguard.Open(netguard.Config{PinDir: pin, Interfaces: []string{l.hostIf}, XDPMode: mode}); err != nil {
				return err
			}
			if got := g.XDPModes()[l.hostIf]; got != mode {
				return fmt.Errorf("XDP attached in %s mode, want %s", got, mode)
			}
			if acct {
				if err := g.SetAccounting(netguard.Accounting{Enabled: true, AutoBlock: true, PPS: 1 << 40,
					BlockFor: time.Minute, PairWindow: time.Minute, UDPPortMax: 32768}); err != nil {
					return err
				}
			}
			if block {
				return g.Block(netip.PrefixFrom(l.peerIP, 32), time.Time{}, netguard.SourceManual)
			}
			return nil
		}
	}
	closeGuard := func() error { err := g.Remove(); g = nil; return err }
	nft := func(rules string) func() error {
		return func() error {
			cmd := exec.Command("nft", "-f", "-")
			cmd.Stdin = strings.NewReader(rules)
			if out, err := cmd.CombinedOutput(); err != nil {
				return fmt.Errorf("nft: %v: %s", err, out)
			}
			return nil
		}
	}
	nftOff := func(family string) func() error {
		return func() error { return exec.Command("nft", "delete", "table", family, "vigil_bench").Run() }
	}
	none := func() error { return nil }
	setups := []setup{
		{"xdp", true, openGuard("native", true, false), closeGuard},
		{"xdp-generic", true, openGuard("generic", true, false), closeGuard},
		{"tcx", true, openGuard("tcx", true, false), closeGuard},
		{"nft-ingress", true, nft(fmt.Sprintf("table netdev vigil_bench { chain vb_in { type filter hook ingress device %s priority -500; ip saddr %s drop; }; }", l.hostIf, l.peerIP)), nftOff("netdev")},
		{"nft-raw", true, nft(fmt.Sprintf("table inet vigil_bench { chain vb_pre { type filter hook prerouting priority -300; ip saddr %s drop; }; }", l.peerIP)), nftOff("inet")},
		{"plain", false, none, none},
		{"xdp-pass", false, openGuard("native", false, false), closeGuard},
		{"xdp-acct", false, openGuard("native", false, true), closeGuard},
		{"generic-pass", false, openGuard("generic", false, false), closeGuard},
		{"generic-acct", false, openGuard("generic", false, true), closeGuard},
		{"tcx-pass", false, openGuard("tcx", false, false), closeGuard},
		{"tcx-acct", false, openGuard("tcx", false, true), closeGuard},
	}

	// A receiver that counts what arrives.
	rc, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(l.hostIP, 0)))
	if err != nil {
		return err
	}
	defer rc.Close()
	rc.SetReadBuffer(8 << 20)
	port := uint16(rc.LocalAddr().(*net.UDPAddr).Port)
	var arrived atomic.Uint64
	go func() {
		buf := make([]byte, 2048)
		for {
			if _, _, err := rc.ReadFromUDP(buf); err != nil {
				return
			}
			arrived.Add(1)
		}
	}()
	// The link takes a moment to pass packets.
	for i := 0; arrived.Load() == 0 && i < 50; i++ {
		l.flood(port, 50*time.Millisecond, 1)
		time.Sleep(100 * time.Millisecond)
	}
	if arrived.Load() == 0 {
		return errors.New("nothing arrives over the veth")
	}

	tick := float64(time.Second) / 100 // USER_HZ
	res := map[string][]result{}
	for r := range rounds {
		for _, s := range setups {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if err := s.on(); err != nil {
				return fmt.Errorf("%s: %w", s.name, err)
			}
			time.Sleep(200 * time.Millisecond)
			a0, c0 := arrived.Load(), cpuBusy()
			sent, err := l.flood(port, d, senders)
			time.Sleep(100 * time.Millisecond) // let the receiver drain
			a1, c1 := arrived.Load(), cpuBusy()
			if oerr := s.off(); err == nil {
				err = oerr
			}
			if err != nil {
				return fmt.Errorf("%s: %w", s.name, err)
			}
			x := result{pps: float64(sent) / d.Seconds(), arrived: a1 - a0, cpuNs: float64(c1-c0) * tick / float64(max(sent, 1))}
			if s.flood && x.arrived > sent/1000 {
				return fmt.Errorf("%s: %d of %d packets arrived: the drop is not working", s.name, x.arrived, sent)
			}
			res[s.name] = append(res[s.name], x)
			fmt.Fprintf(os.Stderr, "round %d %-12s %10.0f packets/s sent, %9d arrived, %6.0f CPU ns/packet\n", r+1, s.name, x.pps, x.arrived, x.cpuNs)
		}
	}

	med := func(name string, f func(result) float64) float64 {
		v := make([]float64, 0, len(res[name]))
		for _, x := range res[name] {
			v = append(v, f(x))
		}
		slices.Sort(v)
		return v[len(v)/2]
	}
	pps := func(x result) float64 { return x.pps }
	cpu := func(x result) float64 { return x.cpuNs }
	got := func(x result) float64 { return float64(x.arrived) / d.Seconds() }
	fmt.Printf("UDP flood from one source, %d senders, %s per setup, %d rounds, medians\n", senders, d, rounds)
	fmt.Printf("%-12s %14s %10s %16s %16s\n", "drop by", "dropped/s", "vs xdp", "CPU ns/packet", "vs xdp")
	x, xc := med("xdp", pps), med("xdp", cpu)
	for _, n := range []string{"xdp", "xdp-generic", "tcx", "nft-ingress", "nft-raw"} {
		fmt.Printf("%-12s %14.0f %9.2fx %16.0f %15.2fx\n", n, med(n, pps), med(n, pps)/x, med(n, cpu), med(n, cpu)/xc)
	}
	fmt.Printf("\npassed traffic, the same sender, a receiver counting\n")
	fmt.Printf("%-12s %14s %14s %10s %16s\n", "setup", "sent/s", "arrived/s", "vs plain", "CPU ns/packet")
	p := med("plain", got)
	for _, n := range []string{"plain", "xdp-pass", "xdp-acct", "generic-pass", "generic-acct", "tcx-pass", "tcx-acct"} {
		fmt.Printf("%-12s %14.0f %14.0f %9.2fx %16.0f\n", n, med(n, pps), med(n, got), med(n, got)/p, med(n, cpu))
	}
	return nil
}
