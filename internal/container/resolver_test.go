package container

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/vigilsec/vigil/internal/event"
	"github.com/vigilsec/vigil/internal/testenv"
)

func newResolver(t *testing.T, stateRoot string) *Resolver {
	t.Helper()
	r, err := New(Config{CgroupRoot: testenv.CgroupV2Root(), StateRoot: stateRoot})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestResolveDocker runs a runc container the way docker does (runc root
// /run/docker/runtime-runc/moby, bundle in containerd's moby namespace,
// cgroup system.slice/docker-<id>.scope) with docker's config.v2.json next
// to it, and resolves its cgroup id both by handle and by walking.
func TestResolveDocker(t *testing.T) {
	testenv.SkipInGuest(t, "needs runc")
	testenv.RequirePrivileged(t)
	root := t.TempDir()
	id := testenv.RandomID(t)
	writeFile(t, filepath.Join(root, "var/lib/docker/containers", id, "config.v2.json"),
		`{"ID":"`+id+`","Name":"/web-1","Config":{"Image":"nginx:1.27","Labels":{}}}`)
	c := testenv.RunContainer(t, testenv.ContainerSpec{ID: id, StateRoot: root,
		RuncRoot: "run/docker/runtime-runc/moby", BundleDir: "run/containerd/io.containerd.runtime.v2.task/moby/%s",
		CgroupsPath: "/system.slice/docker-%s.scope", Args: []string{"sleep", "60"}})

	r := newResolver(t, root)
	if r.mntFD < 0 {
		t.Fatalf("open_by_handle_at unusable here: %s", r.Stats().HandleError)
	}
	got, origin := r.Lookup(c.CgroupID, uint32(c.PID), 0)
	want := &event.Container{ID: id, Name: "web-1", Runtime: Docker, Image: "nginx:1.27", CgroupPath: "/system.slice/docker-" + id + ".scope"}
	if origin != event.OriginContainer {
		t.Fatalf("origin %v, want container", origin)
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}
	if st := r.Stats(); st.Walks != 0 || st.Resolved != 1 {
		t.Errorf("stats %+v: want one resolution by handle, no walk", st)
	}
	// Again: from the cache.
	r.Lookup(c.CgroupID, 0, 0)
	if st := r.Stats(); st.Hits != 1 || st.Resolved != 1 {
		t.Errorf("stats %+v: want a cache hit", st)
	}

	// Without open_by_handle_at the hierarchy is walked.
	r2 := newResolver(t, root)
	r2.Close()
	got2, _ := r2.Lookup(c.CgroupID, 0, 0)
	if d := cmp.Diff(want, got2); d != "" {
		t.Errorf("by walking (-want +got):\n%s", d)
	}
	if st := r2.Stats(); st.Walks != 1 {
		t.Errorf("stats %+v: want one walk", st)
	}

	// The host: a cgroup of the test's own, and the v2 root.
	cg := testenv.NewCgroup(t)
	if c, o := r.Lookup(cg.ID, 0, 0); o != event.OriginHost || c != nil {
		t.Errorf("test cgroup %s: %v %+v, want host", cg, o, c)
	}
	if c, o := r.Lookup(r.rootID, uint32(os.Getpid()), 0); o != event.OriginHost || c != nil {
		t.Errorf("this process: %v %+v, want host", o, c)
	}
	// A cgroup id that does not exist.
	if _, o := r.Lookup(1<<62, 0, 0); o != event.OriginUnknown {
		t.Errorf("missing cgroup: %v, want unknown", o)
	}
}

// TestResolveKubernetes runs a container as containerd's CRI plugin does
// for a burstable pod with the systemd cgroup driver: cgroup
// kubepods-burstable-pod<uid>.slice/cri-containerd-<id>.scope, bundle in
// the k8s.io namespace with the CRI annotations.
func TestResolveKubernetes(t *testing.T) {
	testenv.SkipInGuest(t, "needs runc")
	testenv.RequirePrivileged(t)
	root := t.TempDir()
	podUID := "5d1c7e2a-9b3f-4c8d-a6e1-2f7b9c0d4e85"
	slice := "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + strings.ReplaceAll(podUID, "-", "_") + ".slice"
	c := testenv.RunContainer(t, testenv.ContainerSpec{StateRoot: root,
		RuncRoot: "run/containerd/runc/k8s.io", BundleDir: "run/containerd/io.containerd.runtime.v2.task/k8s.io/%s",
		CgroupsPath: slice + "/cri-containerd-%s.scope", Args: []string{"sleep", "60"},
		Annotations: map[string]string{
			"io.kubernetes.cri.container-type":    "container",
			"io.kubernetes.cri.container-name":    "api",
			"io.kubernetes.cri.image-name":        "registry.example/api:2.3",
			"io.kubernetes.cri.sandbox-name":      "api-7d9f-x2k4q",
			"io.kubernetes.cri.sandbox-namespace": "shop",
			"io.kubernetes.cri.sandbox-uid":       podUID,
		}})
	r := newResolver(t, root)
	got, origin := r.Lookup(c.CgroupID, uint32(c.PID), 0)
	want := &event.Container{ID: c.ID, Name: "api", Runtime: Containerd, Image: "registry.example/api:2.3",
		CgroupPath: slice + "/cri-containerd-" + c.ID + ".scope",
		Pod:        &event.Pod{Name: "api-7d9f-x2k4q", Namespace: "shop", UID: podUID, QoSClass: "burstable"}}
	if origin != event.OriginContainer {
		t.Fatalf("origin %v", origin)
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}
}

// TestResolveRuncByHand: runc run with a cgroupsPath of the caller's
// choosing, which no naming scheme recognises: runc's own state names it.
// The process is also attributed from /proc/<pid>/cgroup, as on a cgroup
// v1 host, where the v1 lines alone must do.
func TestResolveRuncByHand(t *testing.T) {
	testenv.SkipInGuest(t, "needs runc")
	testenv.RequirePrivileged(t)
	root := t.TempDir()
	name := "vigil-test-" + testenv.RandomID(t)[:8]
	c := testenv.RunContainer(t, testenv.ContainerSpec{ID: name, StateRoot: root,
		CgroupsPath: "/" + name + "/app", Args: []string{"sleep", "60"},
		Annotations: map[string]string{"nerdctl/name": "by-hand"}})
	r := newResolver(t, root)
	got, origin := r.Lookup(c.CgroupID, 0, 0)
	want := &event.Container{ID: name, Name: "by-hand", Runtime: Runc, CgroupPath: "/" + name + "/app"}
	if origin != event.OriginContainer {
		t.Fatalf("origin %v", origin)
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}

	// By PID: what a v1 host gives. Only the v1 lines of the real file.
	b, err := os.ReadFile("/proc/" + strconv.Itoa(c.PID) + "/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	pc := ParseProcCgroup(b)
	if pc.V1["memory"] != "/"+name+"/app" {
		t.Fatalf("memory v1 cgroup %q, want /%s/app (runc joins the v1 hierarchies)", pc.V1["memory"], name)
	}
	r1, err := New(Config{StateRoot: root}) // no v2 root: a v1 host
	if err != nil {
		t.Fatal(err)
	}
	defer r1.Close()
	got1, origin1 := r1.Lookup(0, uint32(c.PID), 1)
	if origin1 != event.OriginContainer {
		t.Fatalf("by pid: origin %v", origin1)
	}
	if d := cmp.Diff(want, got1); d != "" {
		t.Errorf("by pid (-want +got):\n%s", d)
	}
	if own, o := r1.Lookup(0, uint32(os.Getpid()), 1); o != event.OriginHost {
		t.Errorf("this process by pid: %v %+v, want host", o, own)
	}
}
