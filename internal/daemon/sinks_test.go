package daemon

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/vigilsec/vigil/internal/config"
	"github.com/vigilsec/vigil/internal/testenv"
)

type cgroupDoc struct {
	Event   struct{ Action string } `json:"event"`
	Process struct{ Args []string } `json:"process"`
	Vigil   struct {
		Cgroup struct{ ID uint64 } `json:"cgroup"`
	} `json:"vigil"`
}

// The agent with configured sinks: a real exec in the test's cgroup reaches
// a webhook (filtered to exec events) and a file sink, through their queues.
func TestConfiguredSinksReceiveEvents(t *testing.T) {
	testenv.RequirePrivileged(t)
	cg := testenv.NewCgroup(t)
	var mu sync.Mutex
	var hooked []cgroupDoc
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var d cgroupDoc
		if err := json.NewDecoder(r.Body).Decode(&d); err != nil {
			t.Errorf("webhook body: %v", err)
		}
		if d.Vigil.Cgroup.ID == cg.ID {
			mu.Lock()
			hooked = append(hooked, d)
			mu.Unlock()
		}
	}))
	defer srv.Close()

	dir := t.TempDir()
	cfg := testConfig(dir)
	cfg.SpoolDir = filepath.Join(dir, "spool")
	cfg.Sinks = []config.Sink{
		{Type: "webhook", Kinds: []string{"exec"}, Webhook: &config.WebhookSink{URL: srv.URL, Secret: "k"}},
		{Type: "file", File: &config.FileSink{Path: filepath.Join(dir, "sink.json")}},
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	a, err := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatalf("start agent: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	<-a.Ready()

	cg.Run(t, "/bin/true", "vigil-sink-test")
	want := func(d cgroupDoc) bool {
		return d.Event.Action == "exec" && slices.Contains(d.Process.Args, "vigil-sink-test")
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		mu.Lock()
		ok := slices.ContainsFunc(hooked, want)
		mu.Unlock()
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the webhook did not receive the exec of /bin/true in the test's cgroup")
		}
		time.Sleep(20 * time.Millisecond)
	}
	names := map[string]bool{}
	for _, st := range a.sinkStats() {
		names[st.Name] = true
	}
	if !names["webhook"] || !names["file"] {
		t.Errorf("SinkStats names %v", names)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// After the agent stopped, the file sink has everything it was given.
	f, err := os.Open(filepath.Join(dir, "sink.json"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	found := false
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var d cgroupDoc
		if err := json.Unmarshal(sc.Bytes(), &d); err != nil {
			t.Fatalf("file sink line: %v", err)
		}
		if d.Vigil.Cgroup.ID == cg.ID && want(d) {
			found = true
		}
	}
	if !found {
		t.Error("the file sink lacks the exec")
	}
	mu.Lock()
	for _, d := range hooked {
		if d.Event.Action != "exec" {
			t.Errorf("webhook got a %s event; kinds is [exec]", d.Event.Action)
		}
	}
	mu.Unlock()
}
