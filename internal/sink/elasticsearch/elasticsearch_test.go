package elasticsearch

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vigilsec/vigil/internal/sink/sinktest"
	"github.com/vigilsec/vigil/internal/sink/spool"
)

// cluster answers as Elasticsearch 8 does (the bulk API's documented request
// and response format, recorded from a real cluster's answers): the product
// header the official client checks, per-item statuses with error objects,
// and "create" that refuses an _id it already has with 409. Elasticsearch
// itself is not installable here.
type cluster struct {
	t         *testing.T
	mu        sync.Mutex
	docs      map[string]map[string]any // _index -> ... keyed by _id below
	byID      map[string]string         // _id -> _index
	template  []byte
	bulks     atomic.Int64
	down      atomic.Int64 // answer this many bulk requests with 503, then work
	throttled map[string]bool
	// item decides the status of one document by its alert number
	// (-1 for a plain event) on its n-th attempt.
	item     func(alert, attempt int) int
	attempts map[string]int
}

var alertN = regexp.MustCompile(`^alert n=(\d+) `)

func newCluster(t *testing.T) (*cluster, *httptest.Server) {
	c := &cluster{t: t, byID: map[string]string{}, attempts: map[string]int{}, docs: map[string]map[string]any{}}
	c.item = func(int, int) int { return 201 }
	srv := httptest.NewServer(c)
	t.Cleanup(srv.Close)
	return c, srv
}

func (c *cluster) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Elastic-Product", "Elasticsearch")
	w.Header().Set("Content-Type", "application/json")
	switch {
	case r.Method == http.MethodPut && r.URL.Path == "/_index_template/vigil":
		b, _ := io.ReadAll(r.Body)
		c.mu.Lock()
		c.template = b
		c.mu.Unlock()
		io.WriteString(w, `{"acknowledged":true}`)
	case r.Method == http.MethodPost && r.URL.Path == "/_bulk":
		c.bulk(w, r)
	default:
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprintf(w, `{"error":{"root_cause":[{"type":"illegal_argument_exception","reason":"unknown endpoint %s %s"}]},"status":404}`, r.Method, r.URL.Path)
	}
}

func (c *cluster) bulk(w http.ResponseWriter, r *http.Request) {
	c.bulks.Add(1)
	if ct := r.Header.Get("Content-Type"); ct != "application/x-ndjson" && ct != "application/json" {
		c.t.Errorf("bulk Content-Type %q", ct)
	}
	if c.down.Load() > 0 {
		c.down.Add(-1)
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, `{"error":{"root_cause":[{"type":"cluster_block_exception","reason":"blocked by: [SERVICE_UNAVAILABLE/2/no master];"}],"type":"cluster_block_exception","reason":"blocked by: [SERVICE_UNAVAILABLE/2/no master];"},"status":503}`)
		return
	}
	sc := bufio.NewScanner(r.Body)
	sc.Buffer(nil, 16<<20)
	var items []string
	errorsSeen := false
	c.mu.Lock()
	defer c.mu.Unlock()
	for sc.Scan() {
		var action map[string]struct {
			Index string `json:"_index"`
			ID    string `json:"_id"`
		}
		if err := json.Unmarshal(sc.Bytes(), &action); err != nil || len(action) != 1 {
			c.t.Fatalf("bad action line %q: %v", sc.Text(), err)
		}
		a, ok := action["create"]
		if !ok || a.Index == "" || a.ID == "" {
			c.t.Fatalf("action %q: want create with _index and _id", sc.Text())
		}
		if !sc.Scan() {
			c.t.Fatal("action without a document")
		}
		var doc map[string]any
		if err := json.Unmarshal(sc.Bytes(), &doc); err != nil {
			c.t.Fatalf("document is not JSON: %v: %q", err, sc.Text())
		}
		n := -1
		if m, _ := doc["message"].(string); alertN.MatchString(m) {
			n, _ = strconv.Atoi(alertN.FindStringSubmatch(m)[1])
		}
		c.attempts[a.ID]++
		status := c.item(n, c.attempts[a.ID])
		if status == 201 && c.byID[a.ID] != "" {
			status = 409
		}
		backing := ".ds-" + a.Index + "-2026.01.02-000001"
		switch status {
		case 201:
			c.byID[a.ID] = a.Index
			c.docs[a.ID] = doc
			items = append(items, fmt.Sprintf(`{"create":{"_index":%q,"_id":%q,"_version":1,"result":"created","_shards":{"total":2,"successful":1,"failed":0},"_seq_no":%d,"_primary_term":1,"status":201}}`, backing, a.ID, len(c.byID)))
		case 409:
			errorsSeen = true
			items = append(items, fmt.Sprintf(`{"create":{"_index":%q,"_id":%q,"status":409,"error":{"type":"version_conflict_engine_exception","reason":"[%s]: version conflict, document already exists (current version [1])","index_uuid":"aAsFqTI0Tc2W0LCWgPNrOA","shard":"0","index":%q}}}`, backing, a.ID, a.ID, backing))
		case 429:
			errorsSeen = true
			items = append(items, fmt.Sprintf(`{"create":{"_index":%q,"_id":%q,"status":429,"error":{"type":"es_rejected_execution_exception","reason":"rejected execution of coordinating operation [coordinating_and_primary_bytes=0, replica_bytes=0, all_bytes=0, coordinating_operation_bytes=1048576, max_coordinating_and_primary_bytes=0]"}}}`, backing, a.ID))
		case 400:
			errorsSeen = true
			items = append(items, fmt.Sprintf(`{"create":{"_index":%q,"_id":%q,"status":400,"error":{"type":"document_parsing_exception","reason":"[1:245] failed to parse field [process.pid] of type [long] in document with id '%s'. Preview of field's value: 'x'","caused_by":{"type":"illegal_argument_exception","reason":"For input string: \"x\""}}}}`, backing, a.ID, a.ID))
		}
	}
	fmt.Fprintf(w, `{"errors":%t,"took":3,"items":[%s]}`, errorsSeen, joinItems(items))
}

func joinItems(items []string) string {
	out := ""
	for i, it := range items {
		if i > 0 {
			out += ","
		}
		out += it
	}
	return out
}

// stored counts the documents per alert number in an index.
func (c *cluster) stored(index string) map[int]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[int]int{}
	for id, doc := range c.docs {
		if c.byID[id] != index {
			continue
		}
		n := -1
		if m, _ := doc["message"].(string); alertN.MatchString(m) {
			n, _ = strconv.Atoi(alertN.FindStringSubmatch(m)[1])
			if m != sinktest.Message(n) {
				c.t.Errorf("message %q did not round-trip", m)
			}
		}
		out[n]++
	}
	return out
}

func options(url, dir string) Options {
	return Options{
		URLs: []string{url}, Host: &sinktest.Host, Timeout: 10 * time.Second,
		Queue: spool.Options{Name: "es", Dir: dir, MaxBatch: 50,
			MinBackoff: 5 * time.Millisecond, MaxBackoff: 50 * time.Millisecond, DrainTimeout: 5 * time.Second},
	}
}

// A bulk response with per-item 429s and 400s: the 429 documents are sent
// again and indexed, the 400 ones counted as failed and not retried; the
// whole cluster answering 503 for a while delays but loses nothing.
func TestBulkPartialFailures(t *testing.T) {
	c, srv := newCluster(t)
	c.item = func(n, attempt int) int {
		switch {
		case n >= 0 && n%17 == 3:
			return 400
		case n >= 0 && n%5 == 1 && attempt <= 2:
			return 429
		}
		return 201
	}
	c.down.Store(3)
	s, err := New(options(srv.URL, filepath.Join(t.TempDir(), "spool")))
	if err != nil {
		t.Fatal(err)
	}
	const n = 200
	for i := range n {
		s.Write(sinktest.Alert(i))
		if i%10 == 0 {
			s.Write(sinktest.Event(i))
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	rejected := 0
	alerts := c.stored("vigil-alerts")
	for i := range n {
		want := 1
		if i%17 == 3 {
			want = 0
			rejected++
		}
		if alerts[i] != want {
			t.Errorf("alert %d indexed %d times, want %d", i, alerts[i], want)
		}
	}
	if ev := c.stored("vigil-events"); ev[-1] != n/10 {
		t.Errorf("%d events indexed, want %d", ev[-1], n/10)
	}
	st := s.Stats()
	if st.Failures != uint64(rejected) || st.Written != uint64(n-rejected+n/10) || st.Retries == 0 || st.Dropped != 0 {
		t.Errorf("stats %+v; want %d failed, %d sent", st, rejected, n-rejected+n/10)
	}
	// The refused documents were not retried.
	c.mu.Lock()
	for id, a := range c.attempts {
		if a > 3 {
			t.Errorf("document %s attempted %d times", id, a)
		}
	}
	c.mu.Unlock()

	var tmpl struct {
		IndexPatterns []string       `json:"index_patterns"`
		DataStream    map[string]any `json:"data_stream"`
		Template      struct {
			Mappings struct {
				Properties map[string]any `json:"properties"`
			} `json:"mappings"`
		} `json:"template"`
	}
	if err := json.Unmarshal(c.template, &tmpl); err != nil {
		t.Fatalf("index template is not JSON: %v", err)
	}
	if len(tmpl.IndexPatterns) != 1 || tmpl.IndexPatterns[0] != "vigil-*" || tmpl.DataStream == nil ||
		tmpl.Template.Mappings.Properties["@timestamp"] == nil || tmpl.Template.Mappings.Properties["process"] == nil {
		t.Errorf("index template %s", c.template)
	}
}

// A document sent again (a replay after a crash) is refused with 409 by
// create, and counted as delivered: it is indexed once.
func TestBulkConflictIsDelivered(t *testing.T) {
	c, srv := newCluster(t)
	dir := filepath.Join(t.TempDir(), "spool")
	s, err := New(options(srv.URL, dir))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		s.Write(sinktest.Alert(i))
	}
	sinktest.WaitFor(t, "10 sent", func() bool { return s.Stats().Written == 10 })
	s.Close()
	// Now replay the same records by hand through a second sender.
	client, err := newClient(options(srv.URL, ""))
	if err != nil {
		t.Fatal(err)
	}
	snd := &sender{opts: options(srv.URL, ""), client: client, template: true}
	c.mu.Lock()
	var ids []string
	for id := range c.byID {
		ids = append(ids, id)
	}
	c.mu.Unlock()
	var batch [][]byte
	for _, id := range ids {
		action, _ := json.Marshal(map[string]bulkAction{"create": {Index: "vigil-alerts", ID: id}})
		doc, _ := json.Marshal(c.docs[id])
		batch = append(batch, spool.Record(action, doc))
	}
	if err := snd.Send(t.Context(), batch); err != nil {
		t.Fatalf("replayed batch: %v (409 must count as delivered)", err)
	}
	if got := c.stored("vigil-alerts"); len(got) != 10 {
		t.Errorf("%d alerts indexed, want 10", len(got))
	}
}

func TestNewRejectsBadOptions(t *testing.T) {
	for _, o := range []Options{{}, {URLs: []string{"http://x"}, IndexPrefix: "Vigil"}, {URLs: []string{"http://x"}, IndexPrefix: "a b"}} {
		if _, err := New(o); err == nil {
			t.Errorf("New(%+v) succeeded", o)
		}
	}
}
