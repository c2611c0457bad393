package daemon

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vigilsec/vigil/internal/config"
	"github.com/vigilsec/vigil/internal/event"
	"github.com/vigilsec/vigil/internal/testenv"
)

// TestLearnedBehaviourOfAServer: the agent learns a small file server, then
// stays quiet on its normal requests and alerts when a request makes it run
// a shell.
func TestLearnedBehaviourOfAServer(t *testing.T) {
	testenv.RequirePrivileged(t)
	dir := t.TempDir()
	script := filepath.Join(dir, "fileserver.py")
	src, err := os.ReadFile("testdata/anomaly_server.py")
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(script, src, 0o755)
	files := filepath.Join(dir, "files")
	os.Mkdir(files, 0o755)
	for i := range 5 {
		os.WriteFile(filepath.Join(files, fmt.Sprintf("page%d.html", i)), []byte(strings.Repeat("<p>hello</p>\n", 10*(i+1))), 0o644)
	}

	cfg := testConfig(dir)
	cfg.Anomaly.Enabled = true
	cfg.Anomaly.Programs = []string{script}
	cfg.Anomaly.Learn = config.Duration(time.Hour) // ended by EndLearning below
	cfg.Anomaly.MinSyscalls = 0
	cfg.Anomaly.Startup = 2000 // python's imports; the requests come after
	cfg.Anomaly.ProfilesDir = filepath.Join(dir, "profiles")
	cg := testenv.NewCgroup(t)
	events := newCollector(cg.ID)
	a, err := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), events)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	defer func() { cancel(); <-done }()
	<-a.Ready()

	srv := cg.Command(script, files)
	out, err := srv.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { srv.Process.Kill(); srv.Wait() }()
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("server: %v", err)
	}
	port, _ := strconv.Atoi(strings.TrimSpace(line))
	ask := func(req string) string {
		t.Helper()
		c, err := net.Dial("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		io.WriteString(c, req+"\n")
		b, _ := io.ReadAll(c)
		return string(b)
	}
	waitUntil(t, "the server to be selected", func() bool { return len(a.AnomalyStatus()) == 1 })

	// Learn: ordinary requests, some for files that are not there.
	for i := range 600 {
		ask(fmt.Sprintf("GET page%d.html", i%7))
	}
	t.Logf("status after the requests: %+v", a.AnomalyStatus())
	waitUntil(t, "syscalls of the server", func() bool { return a.AnomalyStatus()[0].Syscalls > 6000 })
	if err := a.EndLearning(script); err != nil {
		t.Fatal(err)
	}
	st := a.AnomalyStatus()[0]
	if st.Mode != "detecting" || st.Grams == 0 {
		t.Fatalf("after learning: %+v", st)
	}
	t.Logf("learned: %+v", st)
	if _, err := os.Stat(filepath.Join(cfg.Anomaly.ProfilesDir, strings.ReplaceAll(strings.TrimPrefix(script, "/"), "/", "_")+".json")); err != nil {
		t.Errorf("profile not saved: %v", err)
	}

	isAnomaly := func(e *event.Event) bool {
		return e.Kind == event.KindAlert && strings.HasPrefix(e.Alert.RuleID, "anomaly-")
	}
	// Detect: ordinary requests stay quiet.
	for i := range 200 {
		ask(fmt.Sprintf("GET page%d.html", (i*3)%7))
	}
	time.Sleep(300 * time.Millisecond) // the last batches reach the detector
	if n := events.count(isAnomaly); n != 0 {
		for _, e := range events.all(isAnomaly) {
			t.Logf("alert: %s", e.Alert.Message)
		}
		t.Fatalf("%d anomaly alerts on ordinary requests", n)
	}

	// The bug: the server runs a shell.
	if got := ask("RUN"); !strings.Contains(got, "uid=") {
		t.Fatalf("RUN answered %q", got)
	}
	spawn := events.waitFor(t, "anomaly-spawn alert", func(e *event.Event) bool { return isAnomaly(e) && e.Alert.RuleID == "anomaly-spawn" })
	if !strings.Contains(spawn.Alert.Message, "/usr/bin/dash") && !strings.Contains(spawn.Alert.Message, "/bin/sh") {
		t.Errorf("spawn alert: %s", spawn.Alert.Message)
	}
	sys := events.waitFor(t, "anomaly-syscalls alert", func(e *event.Event) bool { return isAnomaly(e) && e.Alert.RuleID == "anomaly-syscalls" })
	t.Logf("alerts: %s; %s", spawn.Alert.Message, sys.Alert.Message)
}

// all returns the collected events that match.
func (c *collector) all(match func(*event.Event) bool) []event.Event {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []event.Event
	for i := range c.events {
		if match(&c.events[i]) {
			out = append(out, c.events[i])
		}
	}
	return out
}
