package intel

import (
	"bufio"
	"bytes"
	"errors"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

// Seeds: a few lines of each format the feeds publish, as the feeds write
// them, plus damaged ones. testdata/fuzz/<target>/ holds more, and the
// inputs any crash found.
var addrSeeds = []string{
	// plain list
	"1.2.3.4\n10.0.0.0/8\n2001:db8::/32\n",
	// FireHOL netset
	"#\n# firehol_level1\n#\n# Source: https://iplists.firehol.org/\n0.0.0.0/8\n1.10.16.0/20\n223.254.0.0/16\n",
	// Spamhaus DROP
	"; Spamhaus DROP List 2026/11/27 - (c) 2026 The Spamhaus Project SLC\n; Last-Modified: Fri, 27 Nov 2026 10:00:00 GMT\n1.10.16.0/20 ; SBL256894\n2.56.192.0/22 ; SBL459831\n",
	// abuse.ch Feodo Tracker CSV
	"################################################################\n# Feodo Tracker Botnet C2 IP Blocklist (CSV)\n################################################################\n# \"first_seen_utc\",\"dst_ip\",\"dst_port\",\"c2_status\",\"last_online\",\"malware\"\n\"2024-01-01 00:00:00\",\"198.51.100.7\",\"443\",\"online\",\"2024-01-02\",\"QakBot\"\n",
	// ThreatFox ip:port
	"\"2024-01-01\",\"203.0.113.9:8080\",\"botnet_cc\"\n\"2024-01-01\",\"[2001:db8::1]:443\",\"botnet_cc\"\n",
	// damaged
	"300.1.2.3/8\n::ffff:192.0.2.9\n::ffff:192.0.2.0/120\nfe80::1%eth0\n1.2.3.4/33\n\"\",\",\n",
	"1.2.3.4\r\n\t5.6.7.8 \r\n\xff\xfe\x00\n",
}

var domainSeeds = []string{
	// plain list
	"evil.example\nEvil2.Example.\n*.wild.example\n.dot.example\n",
	// hosts file
	"# hosts\n127.0.0.1 localhost\n0.0.0.0 Pool.Evil.Example\n0.0.0.0 a.example b.example\n::1 ip6.example\n",
	// URLhaus CSV
	"# id,dateadded,url,url_status,last_online,threat,tags,urlhaus_link,reporter\n\"1\",\"2024-01-01\",\"http://dl.malware.example:8080/x.sh\",\"online\"\n\"2\",\"2024-01-01\",\"http://192.0.2.1/x.sh\",\"offline\"\n",
	// URLhaus plain URLs
	"http://evil.example/a\nhttps://user:pw@x.evil.example:8443/p?q=1#f\nhttp://[2001:db8::1]/x\n",
	// damaged
	"bad_domain!\nnodot\n" + strings.Repeat("a", 64) + ".example\nhttp://%zz/\nhttp:// /\n0.0.0.0\n",
	"a..b\n\xff.example\nxn--bcher-kva.example\nEXAMPLE.COM.\n\x00.example\n",
}

// FuzzParseAddrs: address lists as feeds (or an attacker who controls
// one) write them. Every line with content yields one prefix or one
// error naming that line; the prefixes are valid and masked, IPv4 ones
// not mapped into IPv6; parsing is deterministic, and the prefixes read
// back as themselves.
//
//	go test -run - -fuzz '^FuzzParseAddrs$' -fuzztime 10m ./internal/intel
func FuzzParseAddrs(f *testing.F) {
	for _, s := range addrSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := ParseAddrs(bytes.NewReader(data), "feed.netset")
		content, scanErr := contentLines(data)
		if checkErr(t, err, scanErr) {
			return
		}
		checkErrors(t, r, content)
		if len(r.Prefixes)+r.Bad != len(content) {
			t.Fatalf("%d prefixes + %d bad lines, want one of each per line with content (%d)", len(r.Prefixes), r.Bad, len(content))
		}
		for _, p := range r.Prefixes {
			if !p.IsValid() || p != p.Masked() || p.Addr().Is4In6() || p.Addr().Zone() != "" {
				t.Fatalf("prefix %v (valid %v, masked %v, 4in6 %v, zone %q)", p, p.IsValid(), p.Masked(), p.Addr().Is4In6(), p.Addr().Zone())
			}
		}
		again, _ := ParseAddrs(bytes.NewReader(data), "feed.netset")
		if !reflect.DeepEqual(r, again) {
			t.Fatalf("two parses differ:\n%+v\n%+v", r, again)
		}
		var b strings.Builder
		for _, p := range r.Prefixes {
			b.WriteString(p.String() + "\n")
		}
		back, err := ParseAddrs(strings.NewReader(b.String()), "back")
		if err != nil || back.Bad != 0 || !reflect.DeepEqual(back.Prefixes, r.Prefixes) {
			t.Fatalf("the prefixes do not read back as themselves: %v, %v bad, %v != %v", err, back.Bad, back.Prefixes, r.Prefixes)
		}
	})
}

// FuzzParseDomains: domain lists, hosts files and URL feeds. Every line
// with content yields one domain or one error naming that line; every
// domain is a valid lower-case name with two labels or more, not an
// address; parsing is deterministic, and the domains read back as
// themselves.
//
//	go test -run - -fuzz '^FuzzParseDomains$' -fuzztime 10m ./internal/intel
func FuzzParseDomains(f *testing.F) {
	for _, s := range domainSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := ParseDomains(bytes.NewReader(data), "feed.txt")
		content, scanErr := contentLines(data)
		if checkErr(t, err, scanErr) {
			return
		}
		checkErrors(t, r, content)
		if len(r.Domains)+r.Bad != len(content) {
			t.Fatalf("%d domains + %d bad lines, want one of each per line with content (%d)", len(r.Domains), r.Bad, len(content))
		}
		for _, d := range r.Domains {
			if !validDomain(d) || d != strings.ToLower(d) || strings.HasSuffix(d, ".") || !utf8.ValidString(d) {
				t.Fatalf("domain %q is not a valid lower-case name", d)
			}
			if _, err := netip.ParseAddr(d); err == nil {
				t.Fatalf("domain %q is an address", d)
			}
		}
		again, _ := ParseDomains(bytes.NewReader(data), "feed.txt")
		if !reflect.DeepEqual(r, again) {
			t.Fatalf("two parses differ:\n%+v\n%+v", r, again)
		}
		back, err := ParseDomains(strings.NewReader(strings.Join(r.Domains, "\n")), "back")
		if err != nil || back.Bad != 0 || !slicesEqual(back.Domains, r.Domains) {
			t.Fatalf("the domains do not read back as themselves: %v, %v bad, %q != %q", err, back.Bad, back.Domains, r.Domains)
		}
	})
}

func slicesEqual(a, b []string) bool {
	return len(a) == len(b) && (len(a) == 0 || reflect.DeepEqual(a, b))
}

// contentLines splits data the way a feed is read, independently of the
// parser: line number (from 1) to the line, trimmed, for each line that is
// neither blank nor a comment.
func contentLines(data []byte) (map[int]string, error) {
	out := map[int]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 1024*1024)
	for n := 1; sc.Scan(); n++ {
		l := strings.TrimSpace(sc.Text())
		if l == "" || strings.HasPrefix(l, "#") || strings.HasPrefix(l, ";") || strings.HasPrefix(l, "//") {
			continue
		}
		out[n] = l
	}
	return out, sc.Err()
}

// checkErr: a read error is only the scanner's (a line over 1 MiB), and
// then both readings agree. It reports whether the input was refused.
func checkErr(t *testing.T, err, scanErr error) bool {
	t.Helper()
	if (err == nil) != (scanErr == nil) || err != nil && !errors.Is(err, bufio.ErrTooLong) {
		t.Fatalf("parse error %v, reading the lines alone: %v", err, scanErr)
	}
	return err != nil
}

// checkErrors: every problem names a line with content, quotes its start,
// and the count and the list agree.
func checkErrors(t *testing.T, r *Result, content map[int]string) {
	t.Helper()
	if r.Bad < len(r.Errors) || len(r.Errors) > maxLineErrors || r.Bad <= maxLineErrors && r.Bad != len(r.Errors) {
		t.Fatalf("%d bad lines, %d errors kept", r.Bad, len(r.Errors))
	}
	last := 0
	for _, e := range r.Errors {
		line, ok := content[e.Line]
		if !ok {
			t.Fatalf("error %v names line %d, which is blank, a comment or not in the input", e, e.Line)
		}
		if e.Line <= last {
			t.Fatalf("error %v after one for line %d", e, last)
		}
		last = e.Line
		if e.File != "feed.netset" && e.File != "feed.txt" || e.Err == "" || len(e.Text) > 80 || !strings.HasPrefix(line, e.Text) {
			t.Fatalf("error %+v for line %q", e, line)
		}
	}
}
