package syslog

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vigilsec/vigil/internal/testenv"
)

// rsyslog is a real rsyslogd (Debian's package) that the test starts with
// its own configuration: TCP and UDP inputs on loopback ports, a unix
// socket in the test's directory, and every message written to a file as
// one JSON object of the properties rsyslog parsed.
type rsyslog struct {
	t                *testing.T
	bin, dir         string
	tcpPort, udpPort int
	sock, out        string
	cmd              *exec.Cmd
}

// received is one message as rsyslog parsed it.
type received struct {
	Input    string `json:"input"`
	Hostname string `json:"hostname"`
	App      string `json:"app"`
	ProcID   string `json:"procid"`
	MsgID    string `json:"msgid"`
	SD       string `json:"sd"`
	Msg      string `json:"msg"`
	Severity string `json:"severity"`
	Facility string `json:"facility"`
	Version  string `json:"version"`
	Time     string `json:"time"`
}

const rsyslogConf = `global(workDirectory="%[1]s/work" maxMessageSize="64k")
module(load="imtcp")
module(load="imudp")
module(load="imuxsock" SysSock.Use="off")
input(type="imtcp" address="127.0.0.1" port="%[2]d")
input(type="imudp" address="127.0.0.1" port="%[3]d")
input(type="imuxsock" Socket="%[1]s/log.sock" UseSpecialParser="off" ParseHostname="on" IgnoreTimestamp="off")
template(name="vigiltest" type="list" option.jsonf="on") {
  property(outname="input" name="inputname" format="jsonf")
  property(outname="hostname" name="hostname" format="jsonf")
  property(outname="app" name="app-name" format="jsonf")
  property(outname="procid" name="procid" format="jsonf")
  property(outname="msgid" name="msgid" format="jsonf")
  property(outname="sd" name="structured-data" format="jsonf")
  property(outname="msg" name="msg" format="jsonf")
  property(outname="severity" name="syslogseverity" format="jsonf")
  property(outname="facility" name="syslogfacility" format="jsonf")
  property(outname="version" name="protocol-version" format="jsonf")
  property(outname="time" name="timereported" dateFormat="rfc3339" format="jsonf")
}
action(type="omfile" file="%[1]s/out.json" template="vigiltest" asyncWriting="off" flushOnTXEnd="on")
`

func freePort(t *testing.T, network string) int {
	t.Helper()
	if network == "udp" {
		c, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.LocalAddr().(*net.UDPAddr).Port
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func startRsyslog(t *testing.T) *rsyslog {
	t.Helper()
	r := &rsyslog{t: t, bin: testenv.RequireCommand(t, "rsyslogd"), dir: t.TempDir(),
		tcpPort: freePort(t, "tcp"), udpPort: freePort(t, "udp")}
	r.sock = filepath.Join(r.dir, "log.sock")
	r.out = filepath.Join(r.dir, "out.json")
	if err := os.MkdirAll(filepath.Join(r.dir, "work"), 0o700); err != nil {
		t.Fatal(err)
	}
	conf := fmt.Sprintf(rsyslogConf, r.dir, r.tcpPort, r.udpPort)
	if err := os.WriteFile(filepath.Join(r.dir, "rsyslog.conf"), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	r.start()
	t.Cleanup(r.stop)
	return r
}

func (r *rsyslog) start() {
	r.t.Helper()
	r.cmd = exec.Command(r.bin, "-n", "-f", filepath.Join(r.dir, "rsyslog.conf"), "-i", filepath.Join(r.dir, "rsyslogd.pid"))
	logf, err := os.OpenFile(filepath.Join(r.dir, "rsyslogd.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		r.t.Fatal(err)
	}
	defer logf.Close()
	r.cmd.Stdout, r.cmd.Stderr = logf, logf
	if err := r.cmd.Start(); err != nil {
		r.t.Fatalf("start rsyslogd: %v", err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", r.tcpPort))
		if err == nil {
			c.Close()
			if _, err := os.Stat(r.sock); err == nil {
				return
			}
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("rsyslogd did not listen on 127.0.0.1:%d and %s", r.tcpPort, r.sock)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stop ends the rsyslogd this test started, the way an administrator would.
func (r *rsyslog) stop() {
	if r.cmd == nil {
		return
	}
	r.cmd.Process.Signal(syscall.SIGTERM)
	r.cmd.Wait()
	r.cmd = nil
}

// messages returns what rsyslog wrote from Vigil (app-name vigil).
func (r *rsyslog) messages() []received {
	r.t.Helper()
	f, err := os.Open(r.out)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		r.t.Fatal(err)
	}
	defer f.Close()
	var out []received
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var m received
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			r.t.Fatalf("rsyslog output line is not JSON: %v: %q", err, sc.Text())
		}
		if m.App == "vigil" {
			out = append(out, m)
		}
	}
	return out
}

// parseSD parses RFC 5424 structured data independently of the sink's code:
// a list of [SD-ID param="value" ...] elements, where \" \\ and \] in a
// value stand for the character and any other backslash is literal.
func parseSD(sd string) ([]map[string]string, error) {
	var out []map[string]string
	if sd == "-" {
		return nil, nil
	}
	i := 0
	for i < len(sd) {
		if sd[i] != '[' {
			return nil, fmt.Errorf("at %d: want [", i)
		}
		i++
		j := strings.IndexAny(sd[i:], " ]")
		if j < 0 {
			return nil, fmt.Errorf("unterminated SD-ID")
		}
		el := map[string]string{"": sd[i : i+j]}
		i += j
		for sd[i] == ' ' {
			i++
			eq := strings.IndexByte(sd[i:], '=')
			if eq < 0 || i+eq+1 >= len(sd) || sd[i+eq+1] != '"' {
				return nil, fmt.Errorf("at %d: bad param", i)
			}
			name := sd[i : i+eq]
			i += eq + 2
			var v strings.Builder
			for {
				if i >= len(sd) {
					return nil, fmt.Errorf("unterminated value of %s", name)
				}
				c := sd[i]
				if c == '\\' && i+1 < len(sd) && strings.IndexByte(`"\]`, sd[i+1]) >= 0 {
					v.WriteByte(sd[i+1])
					i += 2
					continue
				}
				if c == '"' {
					i++
					break
				}
				if c == ']' {
					return nil, fmt.Errorf("unescaped ] in value of %s", name)
				}
				v.WriteByte(c)
				i++
			}
			el[name] = v.String()
		}
		if sd[i] != ']' {
			return nil, fmt.Errorf("at %d: want ]", i)
		}
		i++
		out = append(out, el)
	}
	return out, nil
}
