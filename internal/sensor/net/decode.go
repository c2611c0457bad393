package netsensor

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"strconv"

	"github.com/vigilsec/vigil/internal/event"
	"github.com/vigilsec/vigil/internal/sensor"
)

// netSize is the size of struct net_event, which the payload follows.
var netSize = binary.Size(bpfNetEvent{})

// Address families, socket types and protocols: UAPI values.
const (
	afUnix  = 1
	afInet  = 2
	afInet6 = 10
)

var ops = map[bpfNetOp]event.NetOp{
	bpfNetOpNET_CONNECT: event.NetConnect,
	bpfNetOpNET_BIND:    event.NetBind,
	bpfNetOpNET_LISTEN:  event.NetListen,
	bpfNetOpNET_ACCEPT:  event.NetAccept,
	bpfNetOpNET_DNS:     event.NetDNS,
}

var families = map[uint16]string{afUnix: "unix", afInet: "ipv4", afInet6: "ipv6"}

var sockTypes = map[uint16]string{1: "stream", 2: "dgram", 3: "raw", 4: "rdm", 5: "seqpacket", 6: "dccp", 10: "packet"}

// protocols by IANA number, named as network.transport is in ECS.
var protocols = map[uint16]string{
	1: "icmp", 2: "igmp", 6: "tcp", 17: "udp", 33: "dccp", 58: "ipv6-icmp",
	132: "sctp", 136: "udplite", 255: "raw", 262: "mptcp",
}

// Decode decodes a net record (EVENT_NET) into e. It does not retain rec.
func Decode(rec []byte, clk sensor.Clock, e *event.Event) error {
	var raw bpfNetEvent
	if _, err := binary.Decode(rec, binary.LittleEndian, &raw); err != nil {
		return fmt.Errorf("net record: %w", err)
	}
	payload := rec[netSize:]
	if len(payload) < int(raw.PayloadLen) {
		return fmt.Errorf("net record: %d bytes of payload, header says %d", len(payload), raw.PayloadLen)
	}
	payload = payload[:raw.PayloadLen]
	op, ok := ops[bpfNetOp(raw.Op)]
	if !ok {
		return fmt.Errorf("net record: unknown operation %d", raw.Op)
	}

	*e = event.Event{Time: clk.Time(raw.Hdr.KtimeNs), Kind: event.KindNet, Return: int64(raw.Ret)}
	if err := sensor.DecodeTask(rec, clk, &e.Process); err != nil {
		return err
	}
	n := &event.Net{
		Op:          op,
		Family:      name(families, raw.Family, "af"),
		Type:        name(sockTypes, raw.Type, "type"),
		Source:      addrPort(raw.Family, raw.Saddr, raw.Sport),
		Destination: addrPort(raw.Family, raw.Daddr, raw.Dport),
		FD:          raw.Fd,
	}
	// Unix sockets carry 0 (PF_UNSPEC): they have no transport protocol.
	if raw.Family == afInet || raw.Family == afInet6 {
		n.Protocol = name(protocols, raw.Protocol, "proto")
	}
	if op == event.NetDNS {
		// A datagram to port 53 that is not a DNS query keeps the event
		// (it may well be what a rule wants to see) without a question.
		n.DNS, _ = ParseDNSQuestion(payload)
	}
	e.Net = n
	return nil
}

func name(names map[uint16]string, v uint16, prefix string) string {
	if s, ok := names[v]; ok {
		return s
	}
	return prefix + strconv.Itoa(int(v))
}

// addrPort reads an address as the kernel wrote it: IPv4 in the first four
// bytes, IPv6 (IPv4-mapped ones kept as they are) in all sixteen. An end the
// record does not know (all zero) is the zero AddrPort.
func addrPort(family uint16, b [16]byte, port uint16) netip.AddrPort {
	var a netip.Addr
	switch family {
	case afInet:
		a = netip.AddrFrom4([4]byte(b[:4]))
	case afInet6:
		a = netip.AddrFrom16(b)
	default:
		return netip.AddrPort{}
	}
	if port == 0 && a.IsUnspecified() {
		return netip.AddrPort{}
	}
	return netip.AddrPortFrom(a, port)
}
