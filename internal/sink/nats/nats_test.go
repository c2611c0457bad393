package nats

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"syscall"
	"testing"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vigilsec/vigil/internal/sink/sinktest"
	"github.com/vigilsec/vigil/internal/sink/spool"
	"github.com/vigilsec/vigil/internal/testenv"
)

// server is a real nats-server with JetStream (Debian's package), on a
// loopback port, with its store in the test's directory so that a restart
// keeps the stream.
type server struct {
	t    *testing.T
	bin  string
	dir  string
	port int
	cmd  *exec.Cmd
}

func startServer(t *testing.T) *server {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	s := &server{t: t, bin: testenv.RequireCommand(t, "nats-server"), dir: t.TempDir(), port: port}
	s.start()
	t.Cleanup(s.stop)
	return s
}

func (s *server) url() string { return fmt.Sprintf("nats://127.0.0.1:%d", s.port) }

func (s *server) start() {
	s.t.Helper()
	s.cmd = exec.Command(s.bin, "-a", "127.0.0.1", "-p", strconv.Itoa(s.port), "-js", "-sd", filepath.Join(s.dir, "store"))
	logf, err := os.OpenFile(filepath.Join(s.dir, "nats-server.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		s.t.Fatal(err)
	}
	defer logf.Close()
	s.cmd.Stdout, s.cmd.Stderr = logf, logf
	if err := s.cmd.Start(); err != nil {
		s.t.Fatalf("start nats-server: %v", err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		nc, err := natsgo.Connect(s.url(), natsgo.Timeout(time.Second))
		if err == nil {
			js, _ := jetstream.New(nc)
			_, err = js.AccountInfo(context.Background())
			nc.Close()
			if err == nil {
				return
			}
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("nats-server did not come up on %s: %v", s.url(), err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (s *server) stop() {
	if s.cmd == nil {
		return
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	s.cmd.Wait()
	s.cmd = nil
}

// stored is what the stream holds: per subject, the alert numbers and how
// often each is there, and every Nats-Msg-Id.
type stored struct {
	count    map[string]map[int]int
	ids      map[string]int
	messages int
}

var alertN = regexp.MustCompile(`^alert n=(\d+) `)

func readStream(t *testing.T, url, stream string) stored {
	t.Helper()
	nc, err := natsgo.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, stream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	out := stored{count: map[string]map[int]int{}, ids: map[string]int{}, messages: int(info.State.Msgs)}
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if err != nil {
			t.Fatalf("get %d: %v", seq, err)
		}
		var doc struct {
			Message string `json:"message"`
			Process struct{ Args []string }
		}
		if err := json.Unmarshal(m.Data, &doc); err != nil {
			t.Fatalf("payload is not JSON: %v", err)
		}
		if len(doc.Process.Args) != 3 || doc.Process.Args[2] != sinktest.JSONString(sinktest.Hostile) {
			t.Errorf("hostile argument did not round-trip: %q", doc.Process.Args)
		}
		n := -1
		if mm := alertN.FindStringSubmatch(doc.Message); mm != nil {
			n, _ = strconv.Atoi(mm[1])
			if doc.Message != sinktest.Message(n) {
				t.Errorf("message %q", doc.Message)
			}
		}
		if out.count[m.Subject] == nil {
			out.count[m.Subject] = map[int]int{}
		}
		out.count[m.Subject][n]++
		out.ids[m.Header.Get(jetstream.MsgIDHeader)]++
	}
	return out
}

func options(url, dir, host string) Options {
	h := sinktest.Host
	h.Name = host
	return Options{
		URL: url, SubjectPrefix: "vigil", Stream: "VIGIL", CreateStream: true, Host: &h, Timeout: 2 * time.Second,
		Queue: spool.Options{Name: "nats", Dir: dir, MemoryRecords: 32,
			MinBackoff: 10 * time.Millisecond, MaxBackoff: 200 * time.Millisecond, DrainTimeout: 5 * time.Second},
	}
}

// Two hosts publish alerts and events to one stream, each on its own
// subjects; every message is there once with its Nats-Msg-Id.
func TestNATSFleet(t *testing.T) {
	srv := startServer(t)
	const n = 50
	for _, host := range []string{"web-1", "db.2"} {
		s, err := New(options(srv.url(), filepath.Join(t.TempDir(), "spool"), host))
		if err != nil {
			t.Fatal(err)
		}
		for i := range n {
			s.Write(sinktest.Alert(i))
			s.Write(sinktest.Event(i))
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if st := s.Stats(); st.Written != 2*n {
			t.Errorf("%s: %+v", host, st)
		}
	}
	got := readStream(t, srv.url(), "VIGIL")
	if got.messages != 4*n || len(got.ids) != 4*n {
		t.Errorf("stream holds %d messages with %d ids, want %d", got.messages, len(got.ids), 4*n)
	}
	for _, subj := range []string{"vigil.web-1.alerts", "vigil.db_2.alerts"} {
		for i := range n {
			if got.count[subj][i] != 1 {
				t.Errorf("%s: alert %d stored %d times", subj, i, got.count[subj][i])
			}
		}
	}
	for _, subj := range []string{"vigil.web-1.events", "vigil.db_2.events"} {
		if got.count[subj][-1] != n {
			t.Errorf("%s: %d events, want %d", subj, got.count[subj][-1], n)
		}
	}
}

// The server stops in the middle of a stream of alerts and comes back:
// every alert is in the stream exactly once.
func TestNATSOutage(t *testing.T) {
	srv := startServer(t)
	s, err := New(options(srv.url(), filepath.Join(t.TempDir(), "spool"), "web-1"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	const n = 300
	for i := range n {
		switch i {
		case 100:
			srv.stop()
		case 200:
			sinktest.WaitFor(t, "failed attempts", func() bool { return s.Stats().Retries > 0 })
			srv.start()
		}
		s.Write(sinktest.Alert(i))
		s.Flush()
		time.Sleep(2 * time.Millisecond)
	}
	sinktest.WaitFor(t, "every alert acknowledged", func() bool { return s.Stats().Written == n })
	got := readStream(t, srv.url(), "VIGIL")
	for i := range n {
		if c := got.count["vigil.web-1.alerts"][i]; c != 1 {
			t.Errorf("alert %d stored %d times, want 1", i, c)
		}
	}
	if got.messages != n {
		t.Errorf("stream holds %d messages, want %d", got.messages, n)
	}
	st := s.Stats()
	if st.Retries == 0 || st.Spooled == 0 || st.Dropped != 0 {
		t.Errorf("stats %+v: the outage was not hit, or lost records", st)
	}
}

// The agent stops while the server is down, and starts again once it is
// back: the spool is replayed and every alert is stored once.
func TestNATSSpoolSurvivesRestart(t *testing.T) {
	srv := startServer(t)
	dir := filepath.Join(t.TempDir(), "spool")
	// Make the stream, then take the server down.
	s0, err := New(options(srv.url(), dir, "web-1"))
	if err != nil {
		t.Fatal(err)
	}
	s0.Write(sinktest.Alert(0))
	s0.Close()
	srv.stop()

	o := options(srv.url(), dir, "web-1")
	o.Queue.DrainTimeout = 300 * time.Millisecond
	s1, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i < 60; i++ {
		s1.Write(sinktest.Alert(i))
	}
	s1.Close()
	if st := s1.Stats(); st.Written != 0 || st.SpoolDepth != 59 || st.Queued != 0 {
		t.Errorf("stats at close: %+v, want all 59 alerts in the spool", st)
	}

	srv.start()
	s2, err := New(options(srv.url(), dir, "web-1"))
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	sinktest.WaitFor(t, "the spool replayed", func() bool { return s2.Stats().Written == 59 })
	got := readStream(t, srv.url(), "VIGIL")
	for i := range 60 {
		if c := got.count["vigil.web-1.alerts"][i]; c != 1 {
			t.Errorf("alert %d stored %d times, want 1", i, c)
		}
	}
}

// A record published twice (as after a crash, when the spool is replayed
// from its last clean position) is stored once: the stream drops the second
// by its Nats-Msg-Id.
func TestNATSDuplicateIsDropped(t *testing.T) {
	srv := startServer(t)
	nc, err := natsgo.Connect(srv.url())
	if err != nil {
		t.Fatal(err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	snd := &sender{opts: options(srv.url(), "", "web-1"), nc: nc, js: js}
	defer snd.Close()
	var recs [][]byte
	for i := range 10 {
		doc, err := json.Marshal(sinktest.Alert(i))
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, spool.Record([]byte("vigil.web-1.alerts"), []byte(fmt.Sprintf("dup-test-%d", i)), doc))
	}
	for range 2 {
		if err := snd.Send(context.Background(), recs); err != nil {
			t.Fatal(err)
		}
	}
	got := readStream(t, srv.url(), "VIGIL")
	if got.messages != 10 || len(got.ids) != 10 {
		t.Errorf("stream holds %d messages (%d ids) after publishing 10 twice, want 10", got.messages, len(got.ids))
	}
}

func TestToken(t *testing.T) {
	for in, want := range map[string]string{"web-1": "web-1", "db.2": "db_2", "a b*>": "a_b__", "": "_"} {
		if got := Token(in); got != want {
			t.Errorf("Token(%q) = %q, want %q", in, got, want)
		}
	}
}
