package daemon

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigilsec/vigil/internal/config"
	"github.com/vigilsec/vigil/internal/event"
	"github.com/vigilsec/vigil/internal/testenv"
)

// ctrSink keeps the events of the test's containers and of its host cgroup.
type ctrSink struct {
	mu     sync.Mutex
	ids    map[string]bool
	hostCG uint64
	events []*event.Event
}

func (s *ctrSink) Write(e *event.Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if (e.Container != nil && s.ids[e.Container.ID]) || (s.hostCG != 0 && e.Process.CgroupID == s.hostCG) {
		s.events = append(s.events, e)
	}
	return nil
}
func (s *ctrSink) Flush() error { return nil }
func (s *ctrSink) Close() error { return nil }

func (s *ctrSink) wait(t *testing.T, what string, d time.Duration, match func(*event.Event) bool) *event.Event {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		s.mu.Lock()
		for _, e := range s.events {
			if match(e) {
				s.mu.Unlock()
				return e
			}
		}
		n := len(s.events)
		s.mu.Unlock()
		if time.Now().After(deadline) {
			t.Fatalf("no %s after %s (%d events of the test's containers)", what, d, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestContainers runs real runc containers, in cgroups named as docker and
// containerd name them, around an agent of its own (resource thresholds
// short enough for a test), and checks attribution of events from inside
// them (also of a process started before the agent), escape attempts
// detected, a CPU hog and a likely miner flagged, and host processes marked
// as host.
func TestContainers(t *testing.T) {
	testenv.SkipInGuest(t, "needs runc and a busybox root filesystem")
	testenv.RequirePrivileged(t)
	stateRoot := t.TempDir()
	idOld, idPod, idHog := testenv.RandomID(t), testenv.RandomID(t), testenv.RandomID(t)
	// docker's record of the first: name and image.
	dockerRec := filepath.Join(stateRoot, "var/lib/docker/containers", idOld, "config.v2.json")
	os.MkdirAll(filepath.Dir(dockerRec), 0o755)
	os.WriteFile(dockerRec, []byte(`{"Name":"/old-web","Config":{"Image":"busybox:1.36"}}`), 0o644)
	docker := func(id string, args ...string) testenv.ContainerSpec {
		return testenv.ContainerSpec{ID: id, StateRoot: stateRoot, RuncRoot: "run/docker/runtime-runc/moby",
			BundleDir: "run/containerd/io.containerd.runtime.v2.task/moby/%s", CgroupsPath: "/system.slice/docker-%s.scope", Args: args}
	}

	// Started before the agent: it waits for /tmp/go, then execs cat.
	old := testenv.RunContainer(t, docker(idOld, "sh", "-c", "while [ ! -e /tmp/go ]; do sleep 0.1; done; exec cat /etc/hostname"))

	cfg := testConfig(t.TempDir())
	cfg.Containers.StateRoot = stateRoot
	rc := &cfg.Containers.Resources
	// A busy loop takes a whole CPU when it can; others' tests on the
	// machine can take some of it, hence thresholds well below 100%.
	rc.Interval = config.Duration(500 * time.Millisecond)
	rc.Sustain = config.Duration(time.Second)
	rc.CPUPercent = 25
	rc.Miner.CPUPercent = 20
	rc.Miner.Ports = []uint16{3333}
	hostCG := testenv.NewCgroup(t)
	sink := &ctrSink{ids: map[string]bool{idOld: true, idPod: true, idHog: true}, hostCG: hostCG.ID}
	a, err := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), sink)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("agent: %v", err)
		}
	})
	<-a.Ready()

	t.Run("started before the agent", func(t *testing.T) {
		if err := os.WriteFile(filepath.Join(old.Bundle, "rootfs/tmp/go"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
		e := sink.wait(t, "exec of cat by the container's init", 10*time.Second, func(e *event.Event) bool {
			return e.Kind == event.KindExec && int(e.Process.PID) == old.PID
		})
		if e.Origin != event.OriginContainer || e.Container == nil || e.Container.ID != idOld || e.Container.Runtime != "docker" ||
			e.Container.Name != "old-web" || e.Container.Image != "busybox:1.36" {
			t.Errorf("exec attributed %v %+v, want docker container old-web (%s)", e.Origin, e.Container, idOld)
		}
		// The JSON document carries it in ECS names.
		b, _ := json.Marshal(e)
		var doc struct {
			Container struct {
				ID, Name, Runtime string
				Image             struct{ Name string }
			}
			Vigil struct {
				Origin string
				Cgroup struct{ Path string }
			}
		}
		json.Unmarshal(b, &doc)
		if doc.Container.ID != idOld || doc.Container.Name != "old-web" || doc.Container.Runtime != "docker" || doc.Container.Image.Name != "busybox:1.36" ||
			doc.Vigil.Origin != "container" || doc.Vigil.Cgroup.Path != "/system.slice/docker-"+idOld+".scope" {
			t.Errorf("ECS document: %s", b)
		}
	})

	podUID := "5d1c7e2a-9b3f-4c8d-a6e1-2f7b9c0d4e85"
	pod := testenv.RunContainer(t, testenv.ContainerSpec{ID: idPod, StateRoot: stateRoot,
		RuncRoot: "run/containerd/runc/k8s.io", BundleDir: "run/containerd/io.containerd.runtime.v2.task/k8s.io/%s",
		CgroupsPath: "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" + strings.ReplaceAll(podUID, "-", "_") + ".slice/cri-containerd-%s.scope",
		Args:        []string{"sleep", "600"},
		Annotations: map[string]string{"io.kubernetes.cri.container-name": "api", "io.kubernetes.cri.sandbox-name": "api-0",
			"io.kubernetes.cri.sandbox-namespace": "shop", "io.kubernetes.cri.sandbox-uid": podUID, "io.kubernetes.cri.image-name": "busybox:1.36"}})

	t.Run("kubernetes pod", func(t *testing.T) {
		pod.Exec(t, "cat", "/etc/hostname")
		e := sink.wait(t, "exec of cat in the pod", 10*time.Second, func(e *event.Event) bool {
			return e.Kind == event.KindExec && e.Container != nil && e.Container.ID == idPod && e.Process.Name == "cat"
		})
		c := e.Container
		if c.Runtime != "containerd" || c.Name != "api" || c.Image != "busybox:1.36" || c.Pod == nil ||
			*c.Pod != (event.Pod{Name: "api-0", Namespace: "shop", UID: podUID, QoSClass: "besteffort"}) {
			t.Errorf("attributed %+v pod %+v", c, c.Pod)
		}
	})

	t.Run("escape attempts", func(t *testing.T) {
		pod.Exec(t, "unshare", "-m", "true")
		pod.Exec(t, "mount", "-t", "cgroup", "-o", "memory", "cgroup", "/tmp")
		// A program run through another process's root, as from a host
		// pid namespace's /proc/1/root.
		pod.Exec(t, "/proc/1/root/bin/sh", "-c", "true")
		// A client of the runtime's socket (busybox nc has no -U: the
		// attempt is what counts).
		pod.Exec(t, "sh", "-c", "nc -U /var/run/docker.sock </dev/null 2>/dev/null; true")
		for _, rule := range []string{"container-namespace-change", "container-privileged-mount", "container-mount",
			"container-host-root-access", "container-runtime-socket-access"} {
			e := sink.wait(t, rule+" alert", 10*time.Second, func(e *event.Event) bool {
				return e.Kind == event.KindAlert && e.Alert.RuleID == rule && e.Container != nil && e.Container.ID == idPod
			})
			if e.Container.Pod == nil || e.Container.Pod.Name != "api-0" {
				t.Errorf("%s alert without the pod: %+v", rule, e.Container)
			}
		}
	})

	t.Run("cpu hog and miner", func(t *testing.T) {
		testenv.RunContainer(t, docker(idHog, "sh", "-c", "nc 127.0.0.1 3333 </dev/null; while :; do :; done"))
		sink.wait(t, "connect to the pool port", 10*time.Second, func(e *event.Event) bool {
			return e.Kind == event.KindNet && e.Container != nil && e.Container.ID == idHog && e.Net.Destination.Port() == 3333
		})
		hog := filepath.Join(testenv.CgroupV2Root(), "system.slice/docker-"+idHog+".scope/cpu.stat")
		t.Cleanup(func() {
			if t.Failed() {
				b, _ := os.ReadFile(hog)
				t.Logf("hog's cpu.stat: %s; agent: %+v", b, a.ctrs.resolver.Stats())
			}
		})
		cpu := sink.wait(t, "container-cpu-high alert", 30*time.Second, func(e *event.Event) bool {
			return e.Kind == event.KindAlert && e.Alert.RuleID == "container-cpu-high" && e.Container != nil && e.Container.ID == idHog
		})
		t.Logf("%s", cpu.Alert.Message)
		miner := sink.wait(t, "container-cryptominer alert", 30*time.Second, func(e *event.Event) bool {
			return e.Kind == event.KindAlert && e.Alert.RuleID == "container-cryptominer" && e.Container != nil && e.Container.ID == idHog
		})
		if miner.Alert.Trigger == nil || miner.Alert.Trigger.Net == nil || miner.Process.Name != "nc" {
			t.Errorf("miner alert trigger %+v process %+v: want the nc connect", miner.Alert.Trigger, miner.Process)
		}
		// The idle pod container is not flagged.
		sink.mu.Lock()
		for _, e := range sink.events {
			if e.Kind == event.KindAlert && e.Alert.RuleID == "container-cpu-high" && e.Container.ID != idHog {
				t.Errorf("CPU alert for %s", e.Container.ID)
			}
		}
		sink.mu.Unlock()
	})

	t.Run("host", func(t *testing.T) {
		pid, _ := hostCG.Run(t, "/bin/true")
		e := sink.wait(t, "exec of true on the host", 10*time.Second, func(e *event.Event) bool {
			return e.Kind == event.KindExec && int(e.Process.PID) == pid
		})
		if e.Origin != event.OriginHost || e.Container != nil {
			t.Errorf("host exec: origin %v container %+v, want host", e.Origin, e.Container)
		}
		b, _ := json.Marshal(e)
		if !strings.Contains(string(b), `"origin":"host"`) || strings.Contains(string(b), `"container":`) {
			t.Errorf("host exec document: %s", b)
		}
	})
}
