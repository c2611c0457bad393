// Package version reports what build of Vigil this is: the version, the
// commit it was built from and when that commit was made.
//
// A plain `go build` in a git checkout records the commit and its time
// (debug.ReadBuildInfo: vcs.revision, vcs.time, vcs.modified). Release
// builds (make release) set them at link time instead, so a build from a
// tarball or a container context without .git still says what it is:
//
//	-ldflags "-X github.com/vigilsec/vigil/internal/version.Version=v1.2.3
//	          -X github.com/vigilsec/vigil/internal/version.Commit=<sha>
//	          -X github.com/vigilsec/vigil/internal/version.Date=<RFC 3339>"
//
// The date is the commit's, not the wall clock's, so that two builds of one
// commit are the same bytes.
package version

import (
	"runtime"
	"runtime/debug"
	"strings"
)

// Set at link time; empty values are filled from the build info.
var (
	Version = "dev"
	Commit  = ""
	Date    = ""
)

// Info describes this binary.
type Info struct {
	Version   string `json:"version"`
	Commit    string `json:"commit,omitempty"`
	Date      string `json:"date,omitempty"`     // commit time, RFC 3339
	Modified  bool   `json:"modified,omitempty"` // built from a tree with uncommitted changes
	GoVersion string `json:"go"`
	Platform  string `json:"platform"`
}

// Get is this binary's Info.
func Get() Info {
	i := Info{Version: Version, Commit: Commit, Date: Date, GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	if bi, ok := debug.ReadBuildInfo(); ok {
		i = fromBuildInfo(i, bi.Settings)
	}
	return i
}

func fromBuildInfo(i Info, settings []debug.BuildSetting) Info {
	fromVCS := i.Commit == ""
	for _, s := range settings {
		switch s.Key {
		case "vcs.revision":
			if fromVCS {
				i.Commit = s.Value
			}
		case "vcs.time":
			if i.Date == "" {
				i.Date = s.Value
			}
		case "vcs.modified":
			if fromVCS {
				i.Modified = s.Value == "true"
			}
		}
	}
	return i
}

// String is one line: "v1.2.3 (commit 0123456789ab, 2026-01-02T03:04:05Z)".
func String() string { return Get().String() }

func (i Info) String() string {
	var extra []string
	if i.Commit != "" {
		c := i.Commit
		if len(c) > 12 {
			c = c[:12]
		}
		if i.Modified {
			c += "-dirty"
		}
		extra = append(extra, "commit "+c)
	}
	if i.Date != "" {
		extra = append(extra, i.Date)
	}
	if len(extra) == 0 {
		return i.Version
	}
	return i.Version + " (" + strings.Join(extra, ", ") + ")"
}
