package web

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigilsec/vigil/internal/event"
	"github.com/vigilsec/vigil/internal/store"
)

const token = "0123456789abcdef0123456789abcdef"

func serve(t *testing.T) (*httptest.Server, *store.Store) {
	t.Helper()
	st, err := store.Open(store.Options{Path: filepath.Join(t.TempDir(), "vigil.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	rd, err := st.Reader()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	srv := httptest.NewServer(New(ctx, Options{Token: token, Store: rd, Alerts: st, Talkers: NewTalkers()}))
	t.Cleanup(func() { cancel(); srv.Close() })
	return srv, st
}

func get(t *testing.T, c *http.Client, u, bearer string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest("GET", u, nil)
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func TestTokenGuardsEverythingButTheLoginForm(t *testing.T) {
	srv, _ := serve(t)
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for path, want := range map[string]int{"/": http.StatusSeeOther, "/api/alerts": 401, "/api/overview": 401,
		"/api/stream": 401, "/api/alerts/1": 401, "/login": 200, "/static/app.css": 200} {
		resp := get(t, c, srv.URL+path, "")
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET %s without token: %d, want %d", path, resp.StatusCode, want)
		}
		if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") {
			t.Errorf("GET %s: CSP %q", path, csp)
		}
	}
	if resp := get(t, c, srv.URL+"/api/alerts", "wrong"); resp.StatusCode != 401 {
		t.Errorf("wrong bearer: %d", resp.StatusCode)
	}
	if resp := get(t, c, srv.URL+"/api/alerts", token); resp.StatusCode != 200 {
		t.Errorf("bearer: %d", resp.StatusCode)
	}
	resp, err := c.PostForm(srv.URL+"/login", url.Values{"token": {token}})
	if err != nil {
		t.Fatal(err)
	}
	var cookie *http.Cookie
	for _, ck := range resp.Cookies() {
		if ck.Name == cookieName {
			cookie = ck
		}
	}
	if resp.StatusCode != http.StatusSeeOther || cookie == nil || !cookie.HttpOnly || cookie.SameSite != http.SameSiteStrictMode {
		t.Fatalf("login: %d, cookie %+v", resp.StatusCode, cookie)
	}
	if resp, _ := c.PostForm(srv.URL+"/login", url.Values{"token": {"nope"}}); resp.StatusCode != 401 || len(resp.Cookies()) != 0 {
		t.Errorf("bad login: %d, cookies %v", resp.StatusCode, resp.Cookies())
	}
}

func TestStreamAndDetail(t *testing.T) {
	srv, st := serve(t)
	req, _ := http.NewRequest("GET", srv.URL+"/api/stream", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	lines := bufio.NewScanner(resp.Body)
	lines.Scan() // the stream's opening comment

	trig := &event.Event{Time: time.Now(), Kind: event.KindExec, Process: event.Process{PID: 7, Name: "sh",
		Executable: "/bin/sh", Args: []string{"sh", "<script>"}, EntityID: "e7", AUID: event.NoUID, SessionID: event.NoUID},
		Parent:    &event.Process{PID: 6, Executable: "/usr/sbin/nginx"},
		Ancestors: []event.Ancestor{{PID: 5, Executable: "/usr/lib/systemd/systemd-init"}, {PID: 1, Executable: "/sbin/init"}}}
	st.Write(event.NewAlert(event.Alert{RuleID: "shell-under-server", Severity: event.SeverityCritical, Message: "<b>m</b>"}, trig))

	var data string
	for lines.Scan() {
		if d, ok := strings.CutPrefix(lines.Text(), "data: "); ok {
			data = d
			break
		}
	}
	var a store.Alert
	if err := json.Unmarshal([]byte(data), &a); err != nil || a.RuleID != "shell-under-server" || a.Message != "<b>m</b>" {
		t.Fatalf("streamed %q (%v)", data, err)
	}
	dr := get(t, http.DefaultClient, srv.URL+"/api/alerts/1", token)
	var d Detail
	if err := json.NewDecoder(dr.Body).Decode(&d); err != nil {
		t.Fatal(err)
	}
	var pids []uint32
	for _, n := range d.Tree {
		pids = append(pids, n.PID)
	}
	if len(pids) != 4 || pids[0] != 1 || pids[1] != 5 || pids[2] != 6 || pids[3] != 7 {
		t.Errorf("tree pids %v, want root first: 1 5 6 7", pids)
	}
	// The API's JSON escapes <, > and & as well: the trigger says <script>
	// only once decoded.
	if !strings.Contains(string(d.Trigger), `"\u003cscript\u003e"`) {
		t.Errorf("trigger %s", d.Trigger)
	}
	if r := get(t, http.DefaultClient, srv.URL+"/api/alerts/99", token); r.StatusCode != 404 {
		t.Errorf("missing alert: %d", r.StatusCode)
	}
}
