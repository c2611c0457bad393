package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func write(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "vigil.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadOverridesDefaults(t *testing.T) {
	p := write(t, "output: /var/log/vigil.json\nkernel:\n  ring_buffer_mib: 32\n  poll: 5ms\nprocess:\n  exit_grace: 1m\n")
	got, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	want := Default()
	want.Output = "/var/log/vigil.json"
	want.Kernel.RingBufferMiB = 32
	want.Kernel.Poll = Duration(5 * time.Millisecond)
	want.Process.ExitGrace = Duration(time.Minute)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Load (-want +got):\n%s", diff)
	}
}

func TestLoadEmptyFileIsDefaults(t *testing.T) {
	got, err := Load(write(t, "# nothing\n"))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(Default(), got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestLoadErrorsNameFileAndLine(t *testing.T) {
	tests := []struct {
		name, body string
		want       []string
	}{
		{"unknown key", "output: \"-\"\nouptut: x\n", []string{"vigil.yaml", "line 2", "ouptut"}},
		{"bad duration", "kernel:\n  poll: soon\n", []string{"vigil.yaml", "line 2", `"soon"`}},
		{"wrong type", "queue:\n  size: lots\n", []string{"vigil.yaml", "line 2", "lots"}},
		{"bad value", "kernel:\n  ring_buffer_mib: 3\n", []string{"vigil.yaml", "ring_buffer_mib", "power of two"}},
		{"syntax", "output: [\n", []string{"vigil.yaml", "line"}},
		{"log level", "log_level: loud\n", []string{"log_level", "loud"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load(write(t, tt.body))
			if err == nil {
				t.Fatal("Load succeeded, want an error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.yaml"))
	if err == nil || !strings.Contains(err.Error(), "nope.yaml") {
		t.Fatalf("err = %v, want it to name the file", err)
	}
}

func TestSensorSettings(t *testing.T) {
	got, err := Load(write(t, "sensors:\n  file:\n    reads: all\n    watch_writes: [/srv/www]\n  net:\n    enabled: false\n  kernel:\n    enabled: auto\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got.Sensors.File.Reads != "all" || got.Sensors.File.Enabled != On || got.Sensors.Net.Enabled != Off || got.Sensors.Kernel.Enabled != Auto ||
		len(got.Sensors.File.WatchWrites) != 1 || got.Sensors.Cred.Outcome != "success" {
		t.Errorf("sensors = %+v", got.Sensors)
	}
	for body, want := range map[string]string{
		"sensors:\n  cred:\n    outcome: sometimes\n": "sensors.cred.outcome",
		"sensors:\n  cred:\n    enabled: maybe\n":     `line 3: "maybe" is not one of true, false, auto`,
		"sensors:\n  file:\n    writes: most\n":       "sensors.file.writes",
		"sensors:\n  file:\n    ignore: [relative]\n": "absolute",
		"sensors:\n  file:\n    wacth_reads: [/x]\n":  "line 3",
	} {
		if _, err := Load(write(t, body)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: err = %v, want it to mention %q", body, err, want)
		}
	}
}

func TestOutputSettings(t *testing.T) {
	got, err := Load(write(t, "store:\n  path: /srv/vigil.db\n  events: [exec, net]\n  max_age: 24h\nweb:\n  listen: 127.0.0.1:8080\nmetrics:\n  listen: \"\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got.Store.Path != "/srv/vigil.db" || !got.Store.StoresKind("net") || got.Store.StoresKind("file") ||
		got.Web.Listen != "127.0.0.1:8080" || got.Metrics.Listen != "" || got.Web.TokenFile != "/var/lib/vigil/web.token" {
		t.Errorf("outputs = %+v %+v %+v", got.Store, got.Web, got.Metrics)
	}
	d := Default()
	if d.Store.Path != "/var/lib/vigil/vigil.db" || d.Web.Listen == "" || d.Metrics.Listen == "" {
		t.Errorf("defaults: the store, page and metrics are on by default: %+v %+v %+v", d.Store, d.Web, d.Metrics)
	}
	for body, want := range map[string]string{
		"store:\n  events: [exec, nett]\n":             "line 2",
		"web:\n  listen: localhost\n":                  "line 2",
		"metrics:\n  listen: \":9100\"\n":              "line 2",
		"store:\n  path: relative.db\n":                "store.path",
		"store:\n  path: \"\"\n":                       "web.listen",
		"store:\n  queue: 0\n":                         "store.queue",
		"web:\n  listen: 127.0.0.1:99999\n":            "line 2",
		"store:\n  path: \"\"\nweb:\n  listen: \"\"\n": "",
	} {
		_, err := Load(write(t, body))
		if want == "" {
			if err != nil {
				t.Errorf("%q: %v", body, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "vigil.yaml") {
			t.Errorf("%q: err = %v, want it to name vigil.yaml and %q", body, err, want)
		}
	}
}
