package doctor

import (
	"encoding/binary"
	"errors"
	"fmt"

	"syscall"

	"golang.org/x/sys/unix"
)

// XDP feature bits of the netdev generic netlink family
// (include/uapi/linux/netdev.h, enum netdev_xdp_act), Linux 6.3+.
const (
	XDPActBasic     = 1 << 0 // the driver runs XDP programs (native mode)
	XDPActRedirect  = 1 << 1
	XDPActNdoXmit   = 1 << 2
	XDPActZeroCopy  = 1 << 3
	XDPActHWOffload = 1 << 4
)

const (
	netdevCmdDevGet      = 1
	netdevAttrIfindex    = 1
	netdevAttrXDPFeature = 3
	nlaHeaderLen         = 4
	genlHeaderLen        = 4
)

// ErrNoNetdevFamily: the kernel predates the netdev netlink family (6.3),
// so it does not say which interfaces run XDP natively.
var ErrNoNetdevFamily = errors.New("the kernel does not report XDP features (netdev netlink family, Linux 6.3+)")

// netdevXDPFeatures asks the kernel, over generic netlink, for every
// interface's XDP features: `ynl --family netdev --dump dev-get`.
func netdevXDPFeatures() (map[int]uint64, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_GENERIC)
	if err != nil {
		return nil, fmt.Errorf("netlink socket: %w", err)
	}
	defer unix.Close(fd)
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return nil, fmt.Errorf("netlink bind: %w", err)
	}
	tv := unix.Timeval{Sec: 2}
	_ = unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)

	// The family's id.
	name := append([]byte("netdev"), 0)
	msgs, err := genlRequest(fd, unix.GENL_ID_CTRL, unix.CTRL_CMD_GETFAMILY, 0, nlAttr(unix.CTRL_ATTR_FAMILY_NAME, name))
	if errors.Is(err, unix.ENOENT) {
		return nil, ErrNoNetdevFamily
	}
	if err != nil {
		return nil, fmt.Errorf("resolve netdev family: %w", err)
	}
	var family uint16
	for _, m := range msgs {
		for typ, v := range parseAttrs(m) {
			if typ == unix.CTRL_ATTR_FAMILY_ID && len(v) >= 2 {
				family = binary.NativeEndian.Uint16(v)
			}
		}
	}
	if family == 0 {
		return nil, ErrNoNetdevFamily
	}
	msgs, err = genlRequest(fd, family, netdevCmdDevGet, unix.NLM_F_DUMP, nil)
	if err != nil {
		return nil, fmt.Errorf("netdev dev-get: %w", err)
	}
	out := map[int]uint64{}
	for _, m := range msgs {
		a := parseAttrs(m)
		idx, feat := a[netdevAttrIfindex], a[netdevAttrXDPFeature]
		if len(idx) >= 4 && len(feat) >= 8 {
			out[int(binary.NativeEndian.Uint32(idx))] = binary.NativeEndian.Uint64(feat)
		}
	}
	return out, nil
}

func nlAttr(typ uint16, v []byte) []byte {
	b := make([]byte, nlaHeaderLen+align4(len(v)))
	binary.NativeEndian.PutUint16(b[0:], uint16(nlaHeaderLen+len(v)))
	binary.NativeEndian.PutUint16(b[2:], typ)
	copy(b[nlaHeaderLen:], v)
	return b
}

func align4(n int) int { return (n + 3) &^ 3 }

// genlRequest sends one generic netlink request and returns the payloads
// (after the genl header) of the answers, up to NLMSG_DONE for a dump.
func genlRequest(fd int, family uint16, cmd uint8, flags uint16, attrs []byte) ([][]byte, error) {
	req := make([]byte, unix.NLMSG_HDRLEN+genlHeaderLen+len(attrs))
	binary.NativeEndian.PutUint32(req[0:], uint32(len(req)))
	binary.NativeEndian.PutUint16(req[4:], family)
	binary.NativeEndian.PutUint16(req[6:], unix.NLM_F_REQUEST|unix.NLM_F_ACK|flags)
	binary.NativeEndian.PutUint32(req[8:], 1) // seq
	req[unix.NLMSG_HDRLEN] = cmd
	req[unix.NLMSG_HDRLEN+1] = 1 // version
	copy(req[unix.NLMSG_HDRLEN+genlHeaderLen:], attrs)
	if err := unix.Sendto(fd, req, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return nil, err
	}
	var out [][]byte
	buf := make([]byte, 1<<16)
	for {
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if err != nil {
			return nil, err
		}
		msgs, err := syscall.ParseNetlinkMessage(buf[:n])
		if err != nil {
			return nil, err
		}
		for _, m := range msgs {
			switch m.Header.Type {
			case unix.NLMSG_DONE:
				return out, nil
			case unix.NLMSG_ERROR:
				if len(m.Data) < 4 {
					return nil, errors.New("short netlink error")
				}
				if e := int32(binary.NativeEndian.Uint32(m.Data)); e != 0 {
					return nil, unix.Errno(-e)
				}
				// The ACK of a request that was not a dump ends it.
				if flags&unix.NLM_F_DUMP == 0 {
					return out, nil
				}
			default:
				if len(m.Data) >= genlHeaderLen {
					// buf is read into again: keep a copy.
					out = append(out, append([]byte(nil), m.Data[genlHeaderLen:]...))
				}
			}
		}
	}
}

// parseAttrs reads top-level netlink attributes; the last of a type wins.
func parseAttrs(b []byte) map[uint16][]byte {
	out := map[uint16][]byte{}
	for len(b) >= nlaHeaderLen {
		l := int(binary.NativeEndian.Uint16(b[0:]))
		typ := binary.NativeEndian.Uint16(b[2:]) & 0x3fff // drop NLA_F_NESTED, NLA_F_NET_BYTEORDER
		if l < nlaHeaderLen || l > len(b) {
			break
		}
		out[typ] = b[nlaHeaderLen:l]
		if align4(l) >= len(b) {
			break
		}
		b = b[align4(l):]
	}
	return out
}
