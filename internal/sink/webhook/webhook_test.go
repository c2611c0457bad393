package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vigilsec/vigil/internal/event"
	"github.com/vigilsec/vigil/internal/sink/sinktest"
	"github.com/vigilsec/vigil/internal/sink/spool"
)

var secret = []byte("s3cret-for-tests")

// receiver is a webhook endpoint that checks signatures the way docs/sinks.md
// tells receivers to, and can be down (503) or refuse (400).
type receiver struct {
	t        *testing.T
	down     atomic.Bool
	refuse   atomic.Bool
	requests atomic.Int64
	mu       sync.Mutex
	accepted map[string]int // X-Vigil-Id -> times accepted
	messages map[string]string
	ids      []string
}

func newReceiver(t *testing.T) (*receiver, *httptest.Server) {
	r := &receiver{t: t, accepted: map[string]int{}, messages: map[string]string{}}
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	return r, srv
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	r.requests.Add(1)
	body, _ := io.ReadAll(req.Body)
	if r.down.Load() {
		http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
		return
	}
	if r.refuse.Load() {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	ts := req.Header.Get("X-Vigil-Timestamp")
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || time.Since(time.Unix(sec, 0)).Abs() > time.Minute {
		r.t.Errorf("bad or stale X-Vigil-Timestamp %q", ts)
	}
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(ts + "." + string(body)))
	want := "sha256=" + hex.EncodeToString(m.Sum(nil))
	if got := req.Header.Get("X-Vigil-Signature"); !hmac.Equal([]byte(got), []byte(want)) {
		r.t.Errorf("signature %q, want %q", got, want)
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	if ct := req.Header.Get("Content-Type"); ct != "application/json" {
		r.t.Errorf("Content-Type %q", ct)
	}
	var doc struct {
		Message string                  `json:"message"`
		Event   struct{ Kind string }   `json:"event"`
		Process struct{ Args []string } `json:"process"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		r.t.Errorf("body is not one JSON document: %v: %q", err, body)
	}
	if len(doc.Process.Args) != 3 || doc.Process.Args[2] != sinktest.JSONString(sinktest.Hostile) {
		r.t.Errorf("hostile argument did not round-trip: %q", doc.Process.Args)
	}
	id := req.Header.Get("X-Vigil-Id")
	r.mu.Lock()
	r.accepted[id]++
	r.messages[id] = doc.Message
	r.ids = append(r.ids, id)
	r.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

// byMessage counts accepted deliveries per alert message.
func (r *receiver) byMessage() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]int{}
	for id, n := range r.accepted {
		out[r.messages[id]] += n
	}
	return out
}

func (r *receiver) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.ids)
}

func options(t *testing.T, url, dir string) Options {
	return Options{
		URL: url, Secret: secret, Host: &sinktest.Host,
		Kinds: []event.Kind{event.KindAlert},
		Queue: spool.Options{Name: "hook", Dir: dir, MemoryRecords: 8,
			MinBackoff: 5 * time.Millisecond, MaxBackoff: 50 * time.Millisecond, DrainTimeout: 200 * time.Millisecond},
	}
}

// The receiver answers 503 for a while in the middle of a stream of
// alerts: when it is back, every alert arrives exactly once.
func TestWebhookOutage(t *testing.T) {
	rcv, srv := newReceiver(t)
	s, err := New(options(t, srv.URL, filepath.Join(t.TempDir(), "spool")))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	const n = 300
	for i := range n {
		if i == 50 {
			rcv.down.Store(true)
		}
		if i == 250 {
			sinktest.WaitFor(t, "records in the spool", func() bool { return s.Stats().SpoolDepth > 0 })
			rcv.down.Store(false)
		}
		if err := s.Write(sinktest.Alert(i)); err != nil {
			t.Fatal(err)
		}
		s.Write(sinktest.Event(i)) // not an alert: filtered out by Kinds
		s.Flush()
		time.Sleep(time.Millisecond)
	}
	sinktest.WaitFor(t, "every alert", func() bool { return rcv.count() >= n })
	got := rcv.byMessage()
	for i := range n {
		if c := got[sinktest.Message(i)]; c != 1 {
			t.Errorf("alert %d accepted %d times, want 1", i, c)
		}
	}
	if len(got) != n {
		t.Errorf("receiver accepted %d distinct alerts, want %d", len(got), n)
	}
	st := s.Stats()
	if st.Written != n || st.Retries == 0 || st.Spooled == 0 || st.Failures != 0 || st.Dropped != 0 {
		t.Errorf("stats %+v", st)
	}
	if rcv.requests.Load() <= n {
		t.Errorf("%d requests for %d alerts: the outage was never hit", rcv.requests.Load(), n)
	}
}

// The agent stops while the receiver is down: the next start delivers
// what was left, exactly once.
func TestWebhookSpoolSurvivesRestart(t *testing.T) {
	rcv, srv := newReceiver(t)
	dir := filepath.Join(t.TempDir(), "spool")
	rcv.down.Store(true)
	s, err := New(options(t, srv.URL, dir))
	if err != nil {
		t.Fatal(err)
	}
	const n = 40
	for i := range n {
		s.Write(sinktest.Alert(i))
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.Written != 0 || st.Dropped != 0 {
		t.Fatalf("stats after close %+v", st)
	}
	rcv.down.Store(false)
	s2, err := New(options(t, srv.URL, dir))
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	sinktest.WaitFor(t, "the spooled alerts", func() bool { return rcv.count() >= n })
	got := rcv.byMessage()
	for i := range n {
		if got[sinktest.Message(i)] != 1 {
			t.Errorf("alert %d accepted %d times, want 1", i, got[sinktest.Message(i)])
		}
	}
}

// A 400 is a refusal: counted as failed, not retried.
func TestWebhookRefusalIsNotRetried(t *testing.T) {
	rcv, srv := newReceiver(t)
	rcv.refuse.Store(true)
	s, err := New(options(t, srv.URL, ""))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for i := range 5 {
		s.Write(sinktest.Alert(i))
	}
	sinktest.WaitFor(t, "5 failures", func() bool { return s.Stats().Failures == 5 })
	time.Sleep(50 * time.Millisecond)
	if r := rcv.requests.Load(); r != 5 {
		t.Errorf("%d requests for 5 refused alerts, want 5 (no retries)", r)
	}
}

func TestWebhookBadURL(t *testing.T) {
	for _, u := range []string{"", "ftp://x", "http://", "not a url"} {
		if _, err := New(Options{URL: u}); err == nil {
			t.Errorf("New(%q) succeeded", u)
		}
	}
}
