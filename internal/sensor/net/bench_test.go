package netsensor

import (
	"net"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/vigilsec/vigil/internal/sensor"
	"github.com/vigilsec/vigil/internal/testenv"
)

// BenchmarkSendto measures what the sensor adds to a datagram that is not
// DNS, the common case on a busy host: sendto with an address (one user
// read of the sockaddr) and send() on a connected socket (the fd walk to the
// socket's peer port). Compare the sub-benchmarks:
//
//	sudo go test -run XXX -bench Sendto -count 5 ./internal/sensor/net/
func BenchmarkSendto(b *testing.B) {
	testenv.RequirePrivileged(b)
	ln, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	port := ln.LocalAddr().(*net.UDPAddr).Port
	to := &unix.SockaddrInet4{Port: port, Addr: [4]byte{127, 0, 0, 1}}
	msg := dnsQuery(1, "vigil-test.example.com", 1)

	for _, mode := range []struct {
		name    string
		load    bool
		enabled bool
		cfg     Config
	}{
		{"none", false, false, Config{}},
		{"disabled", true, false, Config{}},
		{"enabled", true, true, Config{}},
		{"enabled-portable", true, true, Config{PortableFDWalk: true}},
	} {
		b.Run(mode.name, func(b *testing.B) {
			if mode.load {
				shared, err := sensor.NewShared(1 << 20)
				if err != nil {
					b.Fatal(err)
				}
				defer shared.Close()
				s, err := New(mode.cfg, shared)
				if err != nil {
					b.Fatal(err)
				}
				defer s.Close()
				if err := shared.SetKind(sensor.TypeNet, sensor.KindFilter{Enabled: mode.enabled}); err != nil {
					b.Fatal(err)
				}
			}
			b.Run("addr", func(b *testing.B) {
				fd := udpSocket(b)
				for b.Loop() {
					_ = unix.Sendto(fd, msg, 0, to)
				}
			})
			b.Run("connected", func(b *testing.B) {
				fd := udpSocket(b)
				if err := unix.Connect(fd, to); err != nil {
					b.Fatal(err)
				}
				for b.Loop() {
					_ = unix.Sendto(fd, msg, 0, nil)
				}
			})
		})
	}
}

func udpSocket(b *testing.B) int {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { unix.Close(fd) })
	return fd
}
