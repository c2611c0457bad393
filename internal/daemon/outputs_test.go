package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/vigilsec/vigil/internal/config"
	"github.com/vigilsec/vigil/internal/store"
	"github.com/vigilsec/vigil/internal/testenv"
)

// startWith runs an agent of the test's own with cfg changed by mut.
func startWith(t *testing.T, mut func(*config.Config)) *harness {
	t.Helper()
	testenv.RequirePrivileged(t)
	cfg := testConfig(t.TempDir())
	mut(&cfg)
	h := &harness{cg: testenv.NewCgroup(t), output: cfg.Output, done: make(chan error, 1)}
	h.events = newCollector(h.cg.ID)
	a, err := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), h.events)
	if err != nil {
		t.Fatalf("start agent: %v", err)
	}
	h.agent = a
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	go func() { h.done <- a.Run(ctx) }()
	t.Cleanup(func() { h.stop(t) })
	<-a.Ready()
	return h
}

// writableDirProgram copies /usr/bin/true under /tmp with the given name, so
// that running it raises the built-in exec-from-writable-dir alert.
func writableDirProgram(t *testing.T, name string) string {
	t.Helper()
	dir, err := os.MkdirTemp("/tmp", "vigil-out-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	b, err := os.ReadFile("/usr/bin/true")
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// waitStored polls the store for the alert on pid.
func waitStored(t *testing.T, r *store.Reader, pid int) store.Alert {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		al, err := r.Alerts(context.Background(), store.Filter{PID: uint32(pid), Rule: "exec-from-writable-dir"})
		if err != nil {
			t.Fatal(err)
		}
		if len(al) > 0 {
			return al[0]
		}
		if time.Now().After(deadline) {
			t.Fatalf("no exec-from-writable-dir alert for pid %d in the store after 10s", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestAgentStoresAlerts: the package's shared agent (default store settings
// but its path) keeps the alert a real exec raises, with its document.
func TestAgentStoresAlerts(t *testing.T) {
	h := join(t)
	prog := writableDirProgram(t, "payload")
	pid, _ := h.cg.Run(t, prog, "stored-alert")
	r, err := store.OpenReader(filepath.Join(sharedAgent.dir, "vigil.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	a := waitStored(t, r, pid)
	if a.Executable != prog || a.Severity != "warning" || a.CgroupID != h.cg.ID || !strings.Contains(a.Message, prog) {
		t.Errorf("stored alert %+v", a)
	}
	full, err := r.Alert(context.Background(), a.ID)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Vigil struct {
			Alert struct {
				Trigger struct{ Process struct{ Args []string } }
			}
		}
	}
	if err := json.Unmarshal(full.Doc, &doc); err != nil || len(doc.Vigil.Alert.Trigger.Process.Args) != 2 {
		t.Errorf("stored document (%v): %s", err, full.Doc)
	}
	// Events are not stored by default.
	if evs, _ := r.Events(context.Background(), store.Filter{PID: uint32(pid)}); len(evs) != 0 {
		t.Errorf("%d events stored with store.events empty", len(evs))
	}
}

// TestWebPageShowsLiveAlert drives the page in headless Chromium: log in
// with the generated token, wait for the live stream, run a program from
// /tmp whose name is HTML and a terminal escape, and check that its alert
// appears within a second, as text, with its process tree.
func TestWebPageShowsLiveAlert(t *testing.T) {
	testenv.SkipInGuest(t, "needs Chromium")
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("headless Chromium is needed (apt-get install chromium; .ci/run installs it): %v", err)
	}
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "secret", "web.token")
	h := startWith(t, func(c *config.Config) {
		c.Web.Listen = "127.0.0.1:0"
		c.Web.TokenFile = tokenFile
		c.Store.Events = []config.EventKind{"exec"}
	})
	addr := h.agent.WebAddr()
	if addr == "" {
		t.Fatal("web page not listening")
	}
	st, err := os.Stat(tokenFile)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("token file: %v, mode %v; want a generated 0600 file", err, st)
	}
	tok, _ := os.ReadFile(tokenFile)
	base := "http://" + addr

	// Without the token: the API refuses, the page sends to the login form.
	resp, err := http.Get(base + "/api/alerts")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("GET /api/alerts without token: %s", resp.Status)
	}

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chromium), chromedp.NoSandbox,
		chromedp.Headless, chromedp.DisableGPU, chromedp.UserDataDir(filepath.Join(dir, "chromium")))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	ctx, cancelT := context.WithTimeout(ctx, 60*time.Second)
	defer cancelT()

	err = chromedp.Do(ctx,
		chromedp.Navigate(base+"/"),
		chromedp.WaitVisible(chromedp.ID("token")),
		chromedp.SendKeys(chromedp.ID("token"), "not-the-token"),
		chromedp.Submit(chromedp.ID("token")),
		chromedp.WaitVisible(chromedp.ID("login-error")),
	)
	if err != nil {
		t.Fatalf("a wrong token: %v", err)
	}
	if onPage, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.querySelector("#alerts") !== null`)); err != nil || onPage {
		t.Errorf("a wrong token showed the page (%v)", err)
	}
	err = chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.ID("token"), strings.TrimSpace(string(tok))),
		chromedp.Submit(chromedp.ID("token")),
		chromedp.WaitVisible(chromedp.ID("alerts")),
	)
	if err != nil {
		t.Fatalf("log in: %v", err)
	}
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`document.querySelector("#live").textContent === "live"`,
		chromedp.WithPollingTimeout(10*time.Second))); err != nil {
		t.Fatalf("live stream: %v", err)
	}

	// A name that is markup and a terminal escape: the page must show it as
	// text and run nothing.
	name := "<img src=x onerror=document.title='pwned'>\x1b[31m"
	prog := writableDirProgram(t, name)
	triggered := time.Now()
	pid, _ := h.cg.Run(t, prog, "--live")

	shownAt, err := chromedp.Run(ctx, chromedp.Poll[int64](fmt.Sprintf(`(() => {
			for (const tr of document.querySelectorAll("#alerts tbody tr")) {
				if (tr.children[3].textContent === "%d") return Number(tr.dataset.shownAt);
			}
			return 0;
		})()`, pid), chromedp.WithPollingInterval(10*time.Millisecond), chromedp.WithPollingTimeout(10*time.Second)))
	if err != nil {
		t.Fatalf("no row for pid %d in the page: %v", pid, err)
	}
	latency := time.UnixMilli(shownAt).Sub(triggered)
	t.Logf("alert shown %v after the trigger started", latency)
	if latency > time.Second {
		t.Errorf("alert shown %v after the trigger, want within a second", latency)
	}

	process, err := chromedp.Run(ctx, chromedp.Evaluate[string](fmt.Sprintf(`(() => {
		for (const tr of document.querySelectorAll("#alerts tbody tr"))
			if (tr.children[3].textContent === "%d") { tr.click(); return tr.children[4].textContent; }
		})()`, pid)))
	if err != nil {
		t.Fatal(err)
	}
	if process != prog {
		t.Errorf("process cell %q, want the path as text %q", process, prog)
	}
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`document.querySelectorAll("#tree li").length >= 2`,
		chromedp.WithPollingTimeout(5*time.Second))); err != nil {
		t.Fatalf("process tree: %v", err)
	}
	tree, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`Array.from(document.querySelectorAll("#tree li")).map(li => li.textContent)`))
	if err != nil {
		t.Fatal(err)
	}
	imgs, _ := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("img").length`))
	title, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.title`))
	if imgs != 0 || strings.Contains(title, "pwned") {
		t.Errorf("the program's name became markup: %d img elements, title %q", imgs, title)
	}
	if last := tree[len(tree)-1]; !strings.HasPrefix(last, fmt.Sprintf("%d  %s", pid, prog)) {
		t.Errorf("process tree ends with %q, want the alerting process", last)
	}
	self, _ := os.Executable()
	if parent := tree[len(tree)-2]; !strings.Contains(parent, fmt.Sprintf("%d  %s", os.Getpid(), self)) {
		t.Errorf("process tree's parent %q, want this test (pid %d, %s)", parent, os.Getpid(), self)
	}
	trigger, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector("#trigger").textContent`))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(trigger, "--live") {
		t.Errorf("triggering event's fields lack the argument: %q", trigger)
	}
	// The exec is stored (store.events: [exec]): it is listed as an event of
	// the process.
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`Array.from(document.querySelectorAll("#related td")).some(td => td.textContent.includes("--live"))`,
		chromedp.WithPollingTimeout(5*time.Second))); err != nil {
		t.Errorf("the stored exec is not among the process's events: %v", err)
	}
}

// TestPrometheusScrapesAgent starts Debian's Prometheus on loopback with a
// generated configuration that scrapes the agent, and asks its HTTP API for
// vigil's series.
func TestPrometheusScrapesAgent(t *testing.T) {
	testenv.SkipInGuest(t, "needs Prometheus")
	promBin, err := exec.LookPath("prometheus")
	if err != nil {
		t.Fatalf("Prometheus is needed (apt-get install prometheus; .ci/run installs it): %v", err)
	}
	h := startWith(t, func(c *config.Config) { c.Metrics.Listen = "127.0.0.1:0" })
	target := h.agent.MetricsAddr()
	if target == "" {
		t.Fatal("metrics not listening")
	}
	// One alert, so that a rule hit series exists.
	prog := writableDirProgram(t, "scraped")
	pid, _ := h.cg.Run(t, prog)
	h.events.waitFor(t, "the exec", isExec(pid, prog))

	dir := t.TempDir()
	promAddr := freePort(t)
	cfgFile := filepath.Join(dir, "prometheus.yml")
	os.WriteFile(cfgFile, []byte(fmt.Sprintf(`global:
  scrape_interval: 1s
scrape_configs:
  - job_name: vigil
    static_configs:
      - targets: [%q]
`, target)), 0o644)
	cmd := exec.Command(promBin, "--config.file="+cfgFile, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+promAddr, "--log.level=warn")
	var logs strings.Builder
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("prometheus:\n%s", logs.String())
		}
	})

	query := func(q string) []promSample {
		resp, err := http.Get("http://" + promAddr + "/api/v1/query?query=" + url.QueryEscape(q))
		if err != nil {
			return nil
		}
		defer resp.Body.Close()
		var r struct {
			Status string
			Data   struct{ Result []promSample }
		}
		if json.NewDecoder(resp.Body).Decode(&r) != nil || r.Status != "success" {
			return nil
		}
		return r.Data.Result
	}
	wait := func(q string) []promSample {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			if res := query(q); len(res) > 0 {
				return res
			}
			if time.Now().After(deadline) {
				t.Fatalf("Prometheus has no result for %s after 30s", q)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	up := wait(`up{job="vigil"} == 1`)
	if up[0].Metric["instance"] != target {
		t.Errorf("up series %+v, want instance %s", up[0].Metric, target)
	}
	for _, q := range []string{
		`vigil_events_received_total{kind="exec"} > 0`,
		`vigil_kernel_events_lost_total{kind="exec"}`,
		`vigil_events_dropped_total{kind="exec"}`,
		`vigil_rule_hits_total{rule="exec-from-writable-dir"} >= 1`,
		`vigil_sink_queue_depth{sink="store"}`,
		`vigil_sink_failures_total{sink="store"}`,
		`vigil_sensor_up{sensor="process"} == 1`,
		`process_resident_memory_bytes{job="vigil"} > 0`,
		`process_cpu_seconds_total{job="vigil"}`,
	} {
		wait(q)
	}

	// Every query of the Grafana dashboard is PromQL that Prometheus accepts.
	b, err := os.ReadFile("../../deploy/grafana/vigil.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatal(err)
	}
	vars := strings.NewReplacer("$job", ".*", "$instance", ".*", "$__rate_interval", "1m")
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			resp, err := http.Get("http://" + promAddr + "/api/v1/query?query=" + url.QueryEscape(vars.Replace(tg.Expr)))
			if err != nil {
				t.Fatal(err)
			}
			var r struct{ Status, Error string }
			json.NewDecoder(resp.Body).Decode(&r)
			resp.Body.Close()
			if r.Status != "success" {
				t.Errorf("dashboard panel %q: Prometheus refuses %s: %s", p.Title, tg.Expr, r.Error)
			}
		}
	}
}

type promSample struct {
	Metric map[string]string
	Value  []any
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
