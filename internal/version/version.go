// Package version reports what build of Vigil this is.
package version

import "runtime/debug"

// Version is set at link time: -ldflags "-X github.com/vigilsec/vigil/internal/version.Version=v1.2.3".
var Version = "dev"

// String is the version plus the VCS revision the binary was built from, when known.
func String() string {
	v := Version
	if bi, ok := debug.ReadBuildInfo(); ok {
		var rev, dirty string
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				if s.Value == "true" {
					dirty = "-dirty"
				}
			}
		}
		if len(rev) > 12 {
			rev = rev[:12]
		}
		if rev != "" {
			v += " (" + rev + dirty + ")"
		}
	}
	return v
}
