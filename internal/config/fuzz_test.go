package config

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzLoad: configuration files as anyone may write them. Load returns a
// configuration that validates, or an error naming the file; never a panic.
// Run longer with: go test -fuzz FuzzLoad ./internal/config
func FuzzLoad(f *testing.F) {
	f.Add([]byte("output: /var/log/vigil.json\nkernel:\n  ring_buffer_mib: 32\n  poll: 5ms\nprocess:\n  exit_grace: 1m\n"))
	f.Add([]byte("sensors:\n  file:\n    enabled: auto\n    reads: all\n    watch_writes: [/etc, relative]\n"))
	f.Add([]byte("response:\n  isolate_allow: [10.0.0.0/8, \"::1\", nonsense]\n"))
	f.Add([]byte("queue:\n  size: -1\nlog_level: loud\n"))
	f.Add([]byte("kernel: &a\n  poll: *a\n"))
	f.Add([]byte("output: [\n"))
	f.Add([]byte("\xff\xfe\x00"))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		p := filepath.Join(dir, "vigil.yaml")
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, err := Load(p)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("an error with no message")
			}
			return
		}
		if err := cfg.Validate(); err != nil {
			t.Fatalf("Load accepted a configuration that does not validate: %v", err)
		}
	})
}
