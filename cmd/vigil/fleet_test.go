package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vigilsec/vigil/internal/sink/nats"
	"github.com/vigilsec/vigil/internal/sink/sinktest"
	"github.com/vigilsec/vigil/internal/sink/spool"
	"github.com/vigilsec/vigil/internal/testenv"
)

// esFixture answers the index template and bulk requests as Elasticsearch
// does: create with an _id already taken is 409 and stores nothing.
type esFixture struct {
	t                  *testing.T
	mu                 sync.Mutex
	docs               map[string]map[string]any // _id -> document
	index              map[string]string         // _id -> data stream
	creates, conflicts int
}

func (f *esFixture) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Elastic-Product", "Elasticsearch")
	w.Header().Set("Content-Type", "application/json")
	switch {
	case r.Method == http.MethodPut && r.URL.Path == "/_index_template/vigil":
		io.Copy(io.Discard, r.Body)
		io.WriteString(w, `{"acknowledged":true}`)
	case r.Method == http.MethodPost && r.URL.Path == "/_bulk":
		sc := bufio.NewScanner(r.Body)
		sc.Buffer(nil, 16<<20)
		var items []string
		conflict := false
		f.mu.Lock()
		defer f.mu.Unlock()
		for sc.Scan() {
			var action map[string]struct {
				Index string `json:"_index"`
				ID    string `json:"_id"`
			}
			if err := json.Unmarshal(sc.Bytes(), &action); err != nil || action["create"].ID == "" || !sc.Scan() {
				f.t.Errorf("bad bulk action %q: %v", sc.Text(), err)
				w.WriteHeader(http.StatusBadRequest)
				return
			}
			a := action["create"]
			var doc map[string]any
			if err := json.Unmarshal(sc.Bytes(), &doc); err != nil {
				f.t.Errorf("document is not JSON: %v", err)
			}
			f.creates++
			if _, dup := f.docs[a.ID]; dup {
				f.conflicts++
				conflict = true
				items = append(items, fmt.Sprintf(`{"create":{"_index":%q,"_id":%q,"status":409,"error":{"type":"version_conflict_engine_exception","reason":"document already exists"}}}`, a.Index, a.ID))
				continue
			}
			f.docs[a.ID], f.index[a.ID] = doc, a.Index
			items = append(items, fmt.Sprintf(`{"create":{"_index":%q,"_id":%q,"result":"created","status":201}}`, a.Index, a.ID))
		}
		fmt.Fprintf(w, `{"errors":%t,"took":1,"items":[%s]}`, conflict, strings.Join(items, ","))
	default:
		w.WriteHeader(http.StatusNotFound)
		io.WriteString(w, `{"status":404}`)
	}
}

var fleetAlertN = regexp.MustCompile(`^alert n=(\d+) `)

// indexed counts the stored alerts per host and number, and the rest.
func (f *esFixture) indexed() (alerts map[string]map[int]int, other int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	alerts = map[string]map[int]int{}
	for id, doc := range f.docs {
		m, _ := doc["message"].(string)
		host, _ := doc["host"].(map[string]any)["name"].(string)
		mm := fleetAlertN.FindStringSubmatch(m)
		if mm == nil || f.index[id] != "vigil-alerts" {
			other++
			continue
		}
		n, _ := strconv.Atoi(mm[1])
		if alerts[host] == nil {
			alerts[host] = map[int]int{}
		}
		alerts[host][n]++
	}
	return alerts, other
}

func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// TestFleetIndex runs docs/fleet.md: a three-node NATS cluster with the
// guide's configuration, two hosts publishing alerts and events through the
// nats sink, and the guide's vigil fleet index command indexing into an
// Elasticsearch fixture. One NATS node is killed (SIGKILL) in the middle:
// every alert must be indexed exactly once, and nothing but alerts.
func TestFleetIndex(t *testing.T) {
	testenv.SkipInGuest(t, "needs nats-server and the repository")
	natsServer := testenv.RequireCommand(t, "nats-server")
	bin := vigil(t)
	var conf, index, agent string
	for _, b := range readGuide(t, "fleet.md") {
		switch {
		case b.has("file") && b.tags["file"] == "nats-server.conf":
			conf = b.body
		case b.lang == "sh" && b.tags["step"] == "index":
			index = b.body
		case b.lang == "yaml" && b.has("agent"):
			agent = b.body
		}
	}
	if conf == "" || index == "" || agent == "" {
		t.Fatal("docs/fleet.md lacks the nats-server.conf, the agent's sinks or the index block")
	}
	dir := t.TempDir()

	// The agent's sink configuration is one vigil accepts.
	os.WriteFile(filepath.Join(dir, "agent.yaml"), []byte(agent), 0o600)
	if out, err := exec.Command(bin, "config", "validate", filepath.Join(dir, "agent.yaml")).CombinedOutput(); err != nil {
		t.Errorf("the guide's sink configuration: %v\n%s", err, out)
	}

	// Three nodes: the guide's file with loopback ports and a store each.
	type node struct {
		client, route int
		conf          string
		cmd           *exec.Cmd
	}
	nodes := make([]*node, 3)
	for i := range nodes {
		nodes[i] = &node{client: freePort(t), route: freePort(t)}
	}
	for i, n := range nodes {
		c := strings.ReplaceAll(conf, "server_name: n1", fmt.Sprintf("server_name: n%d", i+1))
		c = strings.ReplaceAll(c, "0.0.0.0:4222", fmt.Sprintf("127.0.0.1:%d", n.client))
		c = strings.ReplaceAll(c, "0.0.0.0:6222", fmt.Sprintf("127.0.0.1:%d", n.route))
		c = strings.ReplaceAll(c, "/var/lib/nats", filepath.Join(dir, fmt.Sprintf("store%d", i+1)))
		for j, m := range nodes {
			c = strings.ReplaceAll(c, fmt.Sprintf("nats%d:6222", j+1), fmt.Sprintf("127.0.0.1:%d", m.route))
		}
		if strings.Contains(c, "nats1") || strings.Contains(c, "0.0.0.0") {
			t.Fatalf("the guide's configuration changed shape:\n%s", c)
		}
		n.conf = filepath.Join(dir, fmt.Sprintf("n%d.conf", i+1))
		os.WriteFile(n.conf, []byte(c), 0o600)
		logf, _ := os.Create(filepath.Join(dir, fmt.Sprintf("n%d.log", i+1)))
		n.cmd = exec.Command(natsServer, "-c", n.conf)
		n.cmd.Stdout, n.cmd.Stderr = logf, logf
		if err := n.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		logf.Close()
		t.Cleanup(func() {
			if n.cmd != nil {
				n.cmd.Process.Signal(syscall.SIGTERM)
				n.cmd.Wait()
			}
		})
	}
	var urls []string
	for _, n := range nodes {
		urls = append(urls, fmt.Sprintf("nats://127.0.0.1:%d", n.client))
	}
	// Ready when JetStream answers with a meta leader.
	sinktest.WaitFor(t, "the NATS cluster's JetStream", func() bool {
		nc, err := natsgo.Connect(strings.Join(urls, ","), natsgo.Timeout(time.Second))
		if err != nil {
			return false
		}
		defer nc.Close()
		js, _ := jetstream.New(nc)
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, err = js.AccountInfo(ctx)
		return err == nil
	})

	es := &esFixture{t: t, docs: map[string]map[string]any{}, index: map[string]string{}}
	srv := httptest.NewServer(es)
	t.Cleanup(srv.Close)

	// The guide's index command, as written.
	var log lockedBuffer
	ix := exec.Command("bash", "-c", "exec "+strings.TrimSpace(index))
	ix.Env = append(os.Environ(), "PATH="+filepath.Dir(bin)+":"+os.Getenv("PATH"), "NATS="+strings.Join(urls, ","), "ES="+srv.URL)
	ix.Stdout, ix.Stderr = &log, &log
	if err := ix.Start(); err != nil {
		t.Fatal(err)
	}
	ixDone := make(chan error, 1)
	go func() { ixDone <- ix.Wait() }()
	t.Cleanup(func() {
		if ix.ProcessState == nil {
			ix.Process.Kill()
			<-ixDone
		}
	})
	waitFor(t, "the indexer to consume", &log, "fleet: consuming")
	if !strings.Contains(log.String(), `msg="fleet: stream created" stream=VIGIL replicas=3`) {
		t.Errorf("the indexer did not create the R3 stream:\n%s", log.String())
	}

	// Two hosts, each with the whole cluster, starting at different nodes.
	const n = 300
	hosts := []string{"web-1", "db.2"}
	sinks := make([]*spool.Sink, len(hosts))
	for i, h := range hosts {
		host := sinktest.Host
		host.Name = h
		s, err := nats.New(nats.Options{
			URL: strings.Join(append(urls[i:], urls[:i]...), ","), SubjectPrefix: "vigil", Stream: "VIGIL",
			Host: &host, Timeout: 2 * time.Second,
			Queue: spool.Options{Name: "nats", Dir: filepath.Join(dir, "spool-"+h), MemoryRecords: 64,
				MinBackoff: 10 * time.Millisecond, MaxBackoff: 500 * time.Millisecond, DrainTimeout: 10 * time.Second},
		})
		if err != nil {
			t.Fatal(err)
		}
		sinks[i] = s
		defer s.Close()
	}
	for i := range n {
		if i == n/3 {
			// A node dies: the one web-1 talks to.
			nodes[0].cmd.Process.Kill()
			nodes[0].cmd.Wait()
			nodes[0].cmd = nil
		}
		for _, s := range sinks {
			s.Write(sinktest.Alert(i))
			if i%10 == 0 {
				s.Write(sinktest.Event(i))
			}
			s.Flush()
		}
		time.Sleep(3 * time.Millisecond)
	}
	for i, s := range sinks {
		sinktest.WaitFor(t, hosts[i]+"'s sink to deliver", func() bool { return s.Stats().Written == n+n/10 })
	}
	deadline := time.Now().Add(90 * time.Second)
	for {
		alerts, _ := es.indexed()
		if len(alerts["web-1"]) == n && len(alerts["db.2"]) == n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("indexed %d alerts of web-1 and %d of db.2, want %d each\nindexer:\n%s", len(alerts["web-1"]), len(alerts["db.2"]), n, log.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	alerts, other := es.indexed()
	for _, h := range hosts {
		for i := range n {
			if alerts[h][i] != 1 {
				t.Errorf("%s: alert %d indexed %d times, want 1", h, i, alerts[h][i])
			}
		}
	}
	if other != 0 {
		t.Errorf("%d documents that are not the hosts' alerts were indexed", other)
	}
	ix.Process.Signal(syscall.SIGINT)
	if err := <-ixDone; err != nil {
		t.Errorf("vigil fleet index after SIGINT: %v\n%s", err, log.String())
	}
	es.mu.Lock()
	t.Logf("bulk creates %d, of which conflicts (redeliveries) %d", es.creates, es.conflicts)
	es.mu.Unlock()
	m := regexp.MustCompile(`msg="fleet: stopped" indexed=(\d+)`).FindStringSubmatch(log.String())
	if m == nil {
		t.Fatalf("no final counters from the indexer:\n%s", log.String())
	}
	if got, _ := strconv.Atoi(m[1]); got < 2*n {
		t.Errorf("the indexer counts %d indexed, want at least %d", got, 2*n)
	}
}
