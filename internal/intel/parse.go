// Package intel reads threat-intelligence lists, addresses and prefixes or
// domains, from files in the formats feeds publish them in, and matches
// addresses and DNS names against them. It is pure: the agent puts the
// prefixes in the kernel (netguard) and matches names and connects here.
//
// Address lists: one address or CIDR a line (plain lists, FireHOL .netset,
// Spamhaus DROP with "; SBL..." after it), or CSV lines (abuse.ch feeds:
// Feodo Tracker, ThreatFox, SSLBL) where the first field holding an
// address, an address:port or a CIDR is taken. Domain lists: one domain a
// line, hosts-file lines ("0.0.0.0 evil.example"), or CSV lines (URLhaus),
// where the first field holding a domain or a URL is taken. Lines starting
// with '#', ';' or "//" and blank lines are skipped. A line that cannot be
// read is reported with its file and line; the rest of the file still loads.
package intel

import (
	"bufio"
	"fmt"
	"io"
	"net/netip"
	"net/url"
	"strings"
)

// LineError is a line that could not be read.
type LineError struct {
	File string
	Line int
	Text string // the line, cut to 80 bytes
	Err  string
}

func (e *LineError) Error() string {
	return fmt.Sprintf("%s:%d: %s: %q", e.File, e.Line, e.Err, e.Text)
}

// maxLineErrors bounds the errors kept per file; the count goes on.
const maxLineErrors = 100

// Result is what a file held.
type Result struct {
	Prefixes []netip.Prefix
	Domains  []string
	Errors   []*LineError // the first maxLineErrors
	Bad      int          // every line that could not be read
}

func (r *Result) bad(file string, line int, text, why string) {
	r.Bad++
	if len(r.Errors) < maxLineErrors {
		if len(text) > 80 {
			text = text[:80]
		}
		r.Errors = append(r.Errors, &LineError{File: file, Line: line, Text: text, Err: why})
	}
}

func lines(rd io.Reader, fn func(n int, line string)) error {
	sc := bufio.NewScanner(rd)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' || line[0] == ';' || strings.HasPrefix(line, "//") {
			continue
		}
		fn(n, line)
	}
	return sc.Err()
}

// ParseAddrs reads an address list; file names it in errors.
func ParseAddrs(rd io.Reader, file string) (*Result, error) {
	r := &Result{}
	err := lines(rd, func(n int, line string) {
		if strings.Contains(line, ",") {
			for _, f := range strings.Split(line, ",") {
				if p, ok := addrField(f); ok {
					r.Prefixes = append(r.Prefixes, p)
					return
				}
			}
			r.bad(file, n, line, "no address or CIDR in any field")
			return
		}
		tok := strings.Fields(strings.SplitN(line, ";", 2)[0])
		if len(tok) == 0 {
			r.bad(file, n, line, "no address")
			return
		}
		p, ok := addrField(tok[0])
		if !ok {
			r.bad(file, n, line, "not an address or CIDR")
			return
		}
		r.Prefixes = append(r.Prefixes, p)
	})
	return r, err
}

// addrField reads "1.2.3.4", "1.2.3.0/24", "2001:db8::/32", "1.2.3.4:443",
// "[2001:db8::1]:443", with CSV quotes around it or not.
func addrField(s string) (netip.Prefix, bool) {
	s = strings.Trim(strings.TrimSpace(s), `"'`)
	if s == "" {
		return netip.Prefix{}, false
	}
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, false
		}
		if p.Addr().Is4In6() {
			p = netip.PrefixFrom(p.Addr().Unmap(), max(p.Bits()-96, 0))
		}
		return p.Masked(), true
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		ap, err2 := netip.ParseAddrPort(s)
		if err2 != nil {
			return netip.Prefix{}, false
		}
		a = ap.Addr()
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), true
}

// ParseDomains reads a domain list; file names it in errors.
func ParseDomains(rd io.Reader, file string) (*Result, error) {
	r := &Result{}
	err := lines(rd, func(n int, line string) {
		if strings.Contains(line, ",") {
			for _, f := range strings.Split(line, ",") {
				if d, ok := domainField(f); ok {
					r.Domains = append(r.Domains, d)
					return
				}
			}
			r.bad(file, n, line, "no domain or URL in any field")
			return
		}
		tok := strings.Fields(line)
		// hosts-file lines: "0.0.0.0 evil.example" or "127.0.0.1 evil.example".
		if len(tok) >= 2 {
			if _, err := netip.ParseAddr(tok[0]); err == nil {
				tok = tok[1:]
			}
		}
		d, ok := domainField(tok[0])
		if !ok {
			r.bad(file, n, line, "not a domain")
			return
		}
		r.Domains = append(r.Domains, d)
	})
	return r, err
}

// domainField reads a domain, "*.domain", ".domain" or a URL, with CSV
// quotes or not, and returns the domain in lower case without a final dot.
func domainField(s string) (string, bool) {
	s = strings.Trim(strings.TrimSpace(s), `"'`)
	if strings.Contains(s, "://") {
		u, err := url.Parse(s)
		if err != nil || u.Hostname() == "" {
			return "", false
		}
		s = u.Hostname()
	}
	s = strings.TrimPrefix(strings.TrimPrefix(s, "*."), ".")
	s = strings.ToLower(strings.TrimSuffix(s, "."))
	if !validDomain(s) {
		return "", false
	}
	return s, true
}

// validDomain accepts names with at least two labels of letters, digits,
// '-' and '_' (seen in the wild), not addresses.
func validDomain(s string) bool {
	if len(s) == 0 || len(s) > 253 || !strings.Contains(s, ".") {
		return false
	}
	if _, err := netip.ParseAddr(s); err == nil {
		return false
	}
	for _, l := range strings.Split(s, ".") {
		if l == "" || len(l) > 63 {
			return false
		}
		for _, c := range l {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}
