// Package term makes strings from the monitored host safe to print on a
// terminal. Process names, arguments and paths are chosen by whoever runs
// the process: printed raw, an escape sequence in them could rewrite the
// screen, retitle the window or hide the lines around it, and a newline or
// tab could forge a row of a table.
package term

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Safe returns s with everything a terminal would interpret written out
// visibly: C0 and C1 controls and DEL as \n, \t, \r, \e or \xNN; Unicode
// format characters that reorder or hide text (bidi overrides, zero-width
// characters) as \u{NNNN}; bytes that are not UTF-8 as \xNN. A backslash is
// doubled, so what Safe writes reads back unambiguously.
func Safe(s string) string {
	if isPlain(s) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r == '\\':
			b.WriteString(`\\`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == 0x1b:
			b.WriteString(`\e`)
		case r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0):
			fmt.Fprintf(&b, `\x%02x`, r)
		case unicode.Is(unicode.Cf, r) || r == 0x2028 || r == 0x2029:
			fmt.Fprintf(&b, `\u{%04x}`, r)
		default:
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}

// isPlain: printable ASCII without a backslash, the common case.
func isPlain(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '\\' {
			return false
		}
	}
	return true
}

// Cut shortens s to at most n runes, marking the cut with "…". A byte that
// is not UTF-8 counts as one rune and is kept as it is, for Safe to show as
// \xNN (a conversion to []rune would turn it into U+FFFD).
func Cut(s string, n int) string {
	if n <= 0 || utf8.RuneCountInString(s) <= n {
		return s
	}
	i := 0
	for range n - 1 {
		_, size := utf8.DecodeRuneInString(s[i:])
		i += size
	}
	return s[:i] + "…"
}
