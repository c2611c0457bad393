package sensor

import (
	"bytes"
	"testing"
)

// TestKindFilterLayout: the bytes are struct kind_filter's (bpf/events.h).
func TestKindFilterLayout(t *testing.T) {
	f := KindFilter{Enabled: true, Outcome: OutcomeFailure, PIDScope: ScopeIncluded, CgroupScope: ScopeExcluded,
		FileWrites: InterestWatched, FileReads: InterestAll, CommScope: ScopeIncluded}
	b, err := f.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	want := []byte{1, 2, 1, 2, 1, 2, 1, 0}
	if !bytes.Equal(b, want) {
		t.Errorf("marshalled % x, want % x", b, want)
	}
	var back KindFilter
	if err := back.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	if back != f {
		t.Errorf("round trip %+v, want %+v", back, f)
	}
}

func TestCommKey(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"cat", "cat"},
		{"", ""},
		{"exactly15bytes!", "exactly15bytes!"},
		{"a-much-longer-process-name", "a-much-longer-p"},
	} {
		k := CommKey(tt.in)
		if got := CString(k[:]); got != tt.want || k[CommLen-1] != 0 {
			t.Errorf("CommKey(%q) = %q (% x), want %q NUL-padded", tt.in, got, k, tt.want)
		}
	}
}
