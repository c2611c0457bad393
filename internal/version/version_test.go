package version

import (
	"runtime/debug"
	"testing"
)

func TestFromBuildInfo(t *testing.T) {
	vcs := []debug.BuildSetting{
		{Key: "vcs", Value: "git"},
		{Key: "vcs.revision", Value: "0123456789abcdef0123456789abcdef01234567"},
		{Key: "vcs.time", Value: "2026-01-02T03:04:05Z"},
		{Key: "vcs.modified", Value: "true"},
	}
	tests := []struct {
		name     string
		in       Info
		settings []debug.BuildSetting
		want     string
	}{
		{"plain go build", Info{Version: "dev"}, vcs, "dev (commit 0123456789ab-dirty, 2026-01-02T03:04:05Z)"},
		{"no vcs", Info{Version: "dev"}, nil, "dev"},
		{"release ldflags win", Info{Version: "v1.0.0", Commit: "fedcba9876543210", Date: "2026-02-03T00:00:00Z"}, vcs,
			"v1.0.0 (commit fedcba987654, 2026-02-03T00:00:00Z)"},
	}
	for _, tt := range tests {
		if got := fromBuildInfo(tt.in, tt.settings).String(); got != tt.want {
			t.Errorf("%s: %q, want %q", tt.name, got, tt.want)
		}
	}
}
