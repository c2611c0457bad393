package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestContainersConfig(t *testing.T) {
	dir := t.TempDir()
	write := func(body string) string {
		p := filepath.Join(dir, "vigil.yaml")
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cfg, err := Load(write("containers:\n  resources:\n    cpu_percent: 150%\n    memory: 512MiB\n    io_per_second: 20MB\n    pids: 300\n    sustain: 5s\n    miner:\n      ports: [3333]\n"))
	if err != nil {
		t.Fatal(err)
	}
	r := cfg.Containers.Resources
	if r.CPUPercent != 150 || r.Memory != 512<<20 || r.IOPerSecond != 20e6 || r.PIDs != 300 || r.Sustain.D() != 5*time.Second ||
		len(r.Miner.Ports) != 1 || r.Miner.Ports[0] != 3333 || !cfg.Containers.Enabled || r.Miner.CPUPercent != 50 {
		t.Errorf("loaded %+v", cfg.Containers)
	}
	for _, tt := range []struct{ body, want string }{
		{"containers:\n  resources:\n    memory: lots\n", `vigil.yaml: line 3: "lots" is not a size`},
		{"containers:\n  resources:\n    cpu_percent: -5\n", `vigil.yaml: line 3: "-5" is not a percentage`},
		{"containers:\n  resources:\n    interval: 1ms\n", "containers.resources.interval: 1ms is shorter than 100ms"},
		{"containers:\n  state_root: run\n", `containers.state_root: "run" is not an absolute path`},
		{"containers:\n  resources:\n    miner:\n      ports: [70000]\n", "line 4"},
	} {
		_, err := Load(write(tt.body))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%q: error %v, want %q", tt.body, err, tt.want)
		}
	}
}
