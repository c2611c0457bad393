package netsensor

import (
	"encoding/binary"
	"errors"
	"strconv"
	"strings"

	"github.com/vigilsec/vigil/internal/event"
)

// DNS wire format limits (RFC 1035 2.3.4, 4.1.4).
const (
	dnsHeaderSize = 12
	dnsMaxName    = 255 // bytes of a name on the wire, length octets included
	dnsMaxLabel   = 63
	dnsMaxJumps   = 16 // compression pointers followed in one name
)

var (
	errDNSShort      = errors.New("dns: message too short")
	errDNSNoQuestion = errors.New("dns: no question")
	errDNSLabel      = errors.New("dns: bad label")
	errDNSPointer    = errors.New("dns: bad compression pointer")
	errDNSNameLong   = errors.New("dns: name too long")
)

// ParseDNSQuestion reads the header and the first question of a DNS message
// a process sent. The input is whatever the process put in a datagram to
// port 53, possibly cut at DNS_PAYLOAD_MAX bytes: every length is checked, and
// an error means it is not a query this parser understands.
func ParseDNSQuestion(b []byte) (*event.DNSQuestion, error) {
	if len(b) < dnsHeaderSize {
		return nil, errDNSShort
	}
	if binary.BigEndian.Uint16(b[4:]) == 0 { // QDCOUNT
		return nil, errDNSNoQuestion
	}
	name, end, err := dnsName(b, dnsHeaderSize)
	if err != nil {
		return nil, err
	}
	if len(b)-end < 4 { // QTYPE, QCLASS
		return nil, errDNSShort
	}
	return &event.DNSQuestion{
		ID:   binary.BigEndian.Uint16(b),
		Name: name,
		Type: DNSTypeName(binary.BigEndian.Uint16(b[end:])),
	}, nil
}

// dnsName decodes the name at off in presentation format ("www.example.com",
// "." for the root) and returns the offset just past it. Compression pointers
// are followed only backwards, each to before the previous one's target, so
// no message can make the walk loop.
func dnsName(b []byte, off int) (string, int, error) {
	var sb strings.Builder
	end := -1    // where the name ends in the message, once a pointer was taken
	limit := off // a pointer must point before this
	wire := 0    // bytes of the name on the wire, as if uncompressed
	for jumps := 0; ; {
		if off >= len(b) {
			return "", 0, errDNSShort
		}
		l := int(b[off])
		switch {
		case l == 0:
			if end < 0 {
				end = off + 1
			}
			if sb.Len() == 0 {
				return ".", end, nil
			}
			return sb.String(), end, nil
		case l&0xc0 == 0xc0:
			if off+1 >= len(b) {
				return "", 0, errDNSShort
			}
			target := int(binary.BigEndian.Uint16(b[off:]) & 0x3fff)
			if jumps++; jumps > dnsMaxJumps || target < dnsHeaderSize || target >= limit {
				return "", 0, errDNSPointer
			}
			if end < 0 {
				end = off + 2
			}
			off, limit = target, target
			continue
		case l > dnsMaxLabel: // 0x40 and 0x80: extended and reserved label types
			return "", 0, errDNSLabel
		}
		if wire += 1 + l; wire+1 > dnsMaxName {
			return "", 0, errDNSNameLong
		}
		if off+1+l > len(b) {
			return "", 0, errDNSShort
		}
		if sb.Len() > 0 {
			sb.WriteByte('.')
		}
		writeLabel(&sb, b[off+1:off+1+l])
		off += 1 + l
	}
}

// writeLabel writes a label as dig does: printable ASCII as it is, the
// separators '.' and '\' escaped, every other byte as \DDD. A hostile name
// cannot inject dots, control characters or invalid UTF-8 into the output.
func writeLabel(sb *strings.Builder, label []byte) {
	for _, c := range label {
		switch {
		case c == '.' || c == '\\':
			sb.WriteByte('\\')
			sb.WriteByte(c)
		case c > ' ' && c < 0x7f:
			sb.WriteByte(c)
		default:
			sb.WriteByte('\\')
			sb.WriteByte('0' + c/100)
			sb.WriteByte('0' + c/10%10)
			sb.WriteByte('0' + c%10)
		}
	}
}

// dnsTypes names the query types seen in practice (IANA DNS parameters).
var dnsTypes = map[uint16]string{
	1: "A", 2: "NS", 5: "CNAME", 6: "SOA", 10: "NULL", 12: "PTR", 13: "HINFO",
	15: "MX", 16: "TXT", 17: "RP", 18: "AFSDB", 24: "SIG", 25: "KEY", 28: "AAAA",
	29: "LOC", 33: "SRV", 35: "NAPTR", 36: "KX", 37: "CERT", 39: "DNAME", 41: "OPT",
	42: "APL", 43: "DS", 44: "SSHFP", 45: "IPSECKEY", 46: "RRSIG", 47: "NSEC",
	48: "DNSKEY", 49: "DHCID", 50: "NSEC3", 51: "NSEC3PARAM", 52: "TLSA",
	53: "SMIMEA", 55: "HIP", 59: "CDS", 60: "CDNSKEY", 61: "OPENPGPKEY",
	62: "CSYNC", 63: "ZONEMD", 64: "SVCB", 65: "HTTPS", 99: "SPF", 108: "EUI48",
	109: "EUI64", 249: "TKEY", 250: "TSIG", 251: "IXFR", 252: "AXFR",
	255: "ANY", 256: "URI", 257: "CAA",
}

// DNSTypeName names a query type: "A", "AAAA", ..., or "TYPE<n>" (RFC 3597)
// for one without a name here.
func DNSTypeName(t uint16) string {
	if s, ok := dnsTypes[t]; ok {
		return s
	}
	return "TYPE" + strconv.Itoa(int(t))
}
