package term

import "testing"

func TestSafe(t *testing.T) {
	tests := []struct{ in, want string }{
		{"/usr/bin/true", "/usr/bin/true"},
		{"héllo wörld 日本", "héllo wörld 日本"},
		{"a\nb", `a\nb`},
		{"col1\tcol2", `col1\tcol2`},
		{"\x1b]0;owned\x07", `\e]0;owned\x07`},
		{"\x1b[2J\x1b[1;1Hfake", `\e[2J\e[1;1Hfake`},
		{"over\rwrite", `over\rwrite`},
		{"\x9b31m", `\x9b31m`},   // C1 CSI as a rune (U+009B)
		{"\xc2\x9b", `\x9b`},     // the same, as UTF-8
		{"\xff\xfe", `\xff\xfe`}, // not UTF-8
		{"del\x7f", `del\x7f`},
		{"evil\u202etxt.exe", `evil\u{202e}txt.exe`},
		{"zero\u200bwidth", `zero\u{200b}width`},
		{`C:\path`, `C:\\path`},
		{`\e`, `\\e`}, // a literal backslash-e cannot pass for an escape
		{"nul\x00", `nul\x00`},
	}
	for _, tt := range tests {
		if got := Safe(tt.in); got != tt.want {
			t.Errorf("Safe(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestSafeOutputHasNoControls(t *testing.T) {
	var all []byte
	for c := 0; c < 256; c++ {
		all = append(all, byte(c))
	}
	for _, s := range []string{string(all), string([]rune{0x85, 0x2028, 0x2029, 0x61c, 0x2066})} {
		for _, r := range Safe(s) {
			if r < 0x20 || (r >= 0x7f && r < 0xa0) || r == 0x2028 || r == 0x2029 || r == 0x61c || r == 0x2066 {
				t.Fatalf("Safe left %U in %q", r, Safe(s))
			}
		}
	}
}

func TestCut(t *testing.T) {
	if got := Cut("abcdef", 4); got != "abc…" {
		t.Errorf("Cut = %q", got)
	}
	if got := Cut("日本語", 3); got != "日本語" {
		t.Errorf("Cut = %q", got)
	}
	// Bytes that are not UTF-8 are kept, each one rune, so that Safe shows
	// them as \xNN whether or not the string was cut.
	if got := Cut("a\xff\x9b日b\xfe", 5); got != "a\xff\x9b日…" {
		t.Errorf("Cut = %q", got)
	}
	if got := Safe(Cut("\xffxyz", 3)); got != `\xffx…` {
		t.Errorf("Safe(Cut) = %q", got)
	}
}
