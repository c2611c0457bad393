package container

import (
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/vigilsec/vigil/internal/event"
)

// TestDescribe reads each runtime's state files, in the formats the
// runtimes write, from a fixture root.
func TestDescribe(t *testing.T) {
	root := t.TempDir()
	w := func(rel, content string) { writeFile(t, filepath.Join(root, rel), content) }
	// CRI-O: bundle in containers/storage with its annotations.
	w("run/containers/storage/overlay-containers/"+id1+"/userdata/config.json", `{"annotations":{
		"io.kubernetes.cri-o.ContainerID":"`+id1+`","io.kubernetes.container.name":"db",
		"io.kubernetes.cri-o.ImageName":"quay.io/x/db:1","io.kubernetes.pod.name":"db-0",
		"io.kubernetes.pod.namespace":"data","io.kubernetes.pod.uid":"`+uid+`"}}`)
	// podman: the manager annotation; name and image in storage's index.
	w("var/lib/containers/storage/overlay-containers/"+id2+"/userdata/config.json", `{"annotations":{"io.container.manager":"libpod"}}`)
	w("var/lib/containers/storage/overlay-containers/containers.json", `[{"id":"`+id2+`","names":["cache"],
		"metadata":"{\"image-name\":\"docker.io/library/redis:7\",\"name\":\"cache\"}"}]`)
	// cri-dockerd: docker's record with the Kubernetes labels.
	id3 := "ab" + id1[2:]
	w("var/lib/docker/containers/"+id3+"/config.v2.json", `{"Name":"/k8s_web_web-0_default_`+uid+`_0",
		"Config":{"Image":"nginx","Labels":{"io.kubernetes.container.name":"web","io.kubernetes.pod.name":"web-0",
		"io.kubernetes.pod.namespace":"default","io.kubernetes.pod.uid":"`+uid+`"}}}`)
	// crun with the systemd driver: crun's status file points at the bundle.
	w("run/crun/job-7/status", `{"id":"job-7","pid":1234,"bundle":"`+root+`/b7","rootfs":"`+root+`/b7/rootfs",
		"cgroup-path":"/machine.slice/crun-job\\x2d7.scope","systemd-cgroup":true}`)
	w("b7/config.json", `{"annotations":{"nerdctl/name":"nightly"}}`)

	tests := []struct {
		name string
		ref  Ref
		want *event.Container
	}{
		{"cri-o", Ref{ID: id1, Path: "/kubepods/besteffort/pod" + uid + "/" + id1, PodUID: uid, QoS: "besteffort"},
			&event.Container{ID: id1, Name: "db", Runtime: CRIO, Image: "quay.io/x/db:1", CgroupPath: "/kubepods/besteffort/pod" + uid + "/" + id1,
				Pod: &event.Pod{Name: "db-0", Namespace: "data", UID: uid, QoSClass: "besteffort"}}},
		{"podman", Ref{ID: id2, Path: "/libpod_parent/libpod-" + id2},
			&event.Container{ID: id2, Name: "cache", Runtime: Podman, Image: "docker.io/library/redis:7", CgroupPath: "/libpod_parent/libpod-" + id2}},
		{"cri-dockerd", Ref{ID: id3, Runtime: Docker, Path: "/x"},
			&event.Container{ID: id3, Name: "web", Runtime: Docker, Image: "nginx", CgroupPath: "/x",
				Pod: &event.Pod{Name: "web-0", Namespace: "default", UID: uid}}},
		{"crun systemd", Ref{ID: "job-7", Runtime: Crun, Path: "/machine.slice/crun-job\\x2d7.scope"},
			&event.Container{ID: "job-7", Name: "nightly", Runtime: Crun, CgroupPath: "/machine.slice/crun-job\\x2d7.scope"}},
		{"nspawn", Ref{ID: "debian", Runtime: Nspawn, Path: "/machine.slice/machine-debian.scope"},
			&event.Container{ID: "debian", Name: "debian", Runtime: Nspawn, CgroupPath: "/machine.slice/machine-debian.scope"}},
		{"no state at all", Ref{ID: id1[:63] + "0", Path: "/default/x"},
			&event.Container{ID: id1[:63] + "0", CgroupPath: "/default/x"}},
	}
	for _, tt := range tests {
		if d := cmp.Diff(tt.want, describe(root, tt.ref)); d != "" {
			t.Errorf("%s (-want +got):\n%s", tt.name, d)
		}
	}
	sts := listRuntimeStates(root)
	if len(sts) != 1 || sts[0].cgroupPath != "/machine.slice/crun-job\\x2d7.scope" || sts[0].runtime != Crun {
		t.Errorf("runtime states %+v", sts)
	}
}
