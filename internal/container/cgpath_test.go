package container

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const (
	id1  = "4f2c9a0b1e3d5f7a9c1e3b5d7f9a1c3e5b7d9f1a3c5e7b9d1f3a5c7e9b1d3f5a"
	id2  = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	uid  = "8d5e1a9c-3b7f-4e2d-9a61-0c4b2f8e7d13"
	uidU = "8d5e1a9c_3b7f_4e2d_9a61_0c4b2f8e7d13"
)

// TestParsePath covers the cgroup layouts of each runtime, with the systemd
// and the cgroupfs driver, as they appear in a v2 hierarchy or in one v1
// hierarchy (the path is the same: relative to the hierarchy's root).
func TestParsePath(t *testing.T) {
	tests := []struct {
		name string
		path string
		want *Ref // nil: not a container
	}{
		{"host root", "/", nil},
		{"host service", "/system.slice/ssh.service", nil},
		{"user session", "/user.slice/user-1000.slice/session-3.scope", nil},
		{"docker systemd", "/system.slice/docker-" + id1 + ".scope", &Ref{ID: id1, Runtime: Docker, Path: "/system.slice/docker-" + id1 + ".scope"}},
		{"docker cgroupfs", "/docker/" + id1, &Ref{ID: id1, Runtime: Docker, Path: "/docker/" + id1}},
		{"docker daemon itself", "/system.slice/docker.service", nil},
		{"docker in docker", "/docker/" + id1 + "/docker/" + id2, &Ref{ID: id2, Runtime: Docker, Path: "/docker/" + id1 + "/docker/" + id2}},
		{"containerd plain (ctr, namespace default)", "/default/" + id1, &Ref{ID: id1, Path: "/default/" + id1}},
		{"containerd k8s systemd burstable",
			"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + uidU + ".slice/cri-containerd-" + id1 + ".scope",
			&Ref{ID: id1, Runtime: Containerd, PodUID: uid, QoS: "burstable",
				Path: "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + uidU + ".slice/cri-containerd-" + id1 + ".scope"}},
		{"containerd k8s systemd besteffort",
			"/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" + uidU + ".slice/cri-containerd-" + id1 + ".scope",
			&Ref{ID: id1, Runtime: Containerd, PodUID: uid, QoS: "besteffort",
				Path: "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" + uidU + ".slice/cri-containerd-" + id1 + ".scope"}},
		{"containerd k8s systemd guaranteed",
			"/kubepods.slice/kubepods-pod" + uidU + ".slice/cri-containerd-" + id1 + ".scope",
			&Ref{ID: id1, Runtime: Containerd, PodUID: uid, QoS: "guaranteed",
				Path: "/kubepods.slice/kubepods-pod" + uidU + ".slice/cri-containerd-" + id1 + ".scope"}},
		{"k8s cgroupfs burstable (containerd or CRI-O: the state decides)",
			"/kubepods/burstable/pod" + uid + "/" + id1,
			&Ref{ID: id1, PodUID: uid, QoS: "burstable", Path: "/kubepods/burstable/pod" + uid + "/" + id1}},
		{"k8s cgroupfs guaranteed", "/kubepods/pod" + uid + "/" + id1,
			&Ref{ID: id1, PodUID: uid, QoS: "guaranteed", Path: "/kubepods/pod" + uid + "/" + id1}},
		{"k8s pod cgroup itself", "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + uidU + ".slice", nil},
		{"kubelet", "/system.slice/kubelet.service", nil},
		{"CRI-O systemd", "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" + uidU + ".slice/crio-" + id1 + ".scope",
			&Ref{ID: id1, Runtime: CRIO, PodUID: uid, QoS: "besteffort",
				Path: "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" + uidU + ".slice/crio-" + id1 + ".scope"}},
		{"CRI-O systemd, container subgroup", "/kubepods.slice/kubepods-pod" + uidU + ".slice/crio-" + id1 + ".scope/container",
			&Ref{ID: id1, Runtime: CRIO, PodUID: uid, QoS: "guaranteed", Path: "/kubepods.slice/kubepods-pod" + uidU + ".slice/crio-" + id1 + ".scope"}},
		{"CRI-O cgroupfs", "/kubepods/besteffort/pod" + uid + "/crio-" + id1,
			&Ref{ID: id1, Runtime: CRIO, PodUID: uid, QoS: "besteffort", Path: "/kubepods/besteffort/pod" + uid + "/crio-" + id1}},
		{"CRI-O conmon", "/kubepods.slice/kubepods-pod" + uidU + ".slice/crio-conmon-" + id1 + ".scope", nil},
		{"cri-dockerd", "/kubepods.slice/kubepods-pod" + uidU + ".slice/docker-" + id1 + ".scope",
			&Ref{ID: id1, Runtime: Docker, PodUID: uid, QoS: "guaranteed", Path: "/kubepods.slice/kubepods-pod" + uidU + ".slice/docker-" + id1 + ".scope"}},
		{"podman root systemd", "/machine.slice/libpod-" + id1 + ".scope", &Ref{ID: id1, Runtime: Podman, Path: "/machine.slice/libpod-" + id1 + ".scope"}},
		{"podman container subgroup", "/machine.slice/libpod-" + id1 + ".scope/container", &Ref{ID: id1, Runtime: Podman, Path: "/machine.slice/libpod-" + id1 + ".scope"}},
		{"podman rootless", "/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-" + id1 + ".scope",
			&Ref{ID: id1, Runtime: Podman, Path: "/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-" + id1 + ".scope"}},
		{"podman cgroupfs", "/libpod_parent/libpod-" + id1, &Ref{ID: id1, Runtime: Podman, Path: "/libpod_parent/libpod-" + id1}},
		{"podman conmon", "/machine.slice/libpod-conmon-" + id1 + ".scope", nil},
		{"runc systemd driver default", "/system.slice/runc-web1.scope", &Ref{ID: "web1", Runtime: Runc, Path: "/system.slice/runc-web1.scope"}},
		{"crun systemd driver", "/machine.slice/crun-db\\x2d2.scope", &Ref{ID: "db-2", Runtime: Crun, Path: "/machine.slice/crun-db\\x2d2.scope"}},
		{"runc cgroupfs path of the caller's choosing", "/mycontainers/web1", nil},
		{"nspawn registered machine", "/machine.slice/machine-deb\\x2dtest.scope", &Ref{ID: "deb-test", Runtime: Nspawn, Path: "/machine.slice/machine-deb\\x2dtest.scope"}},
		{"nspawn service payload", "/machine.slice/systemd-nspawn@debian.service/payload",
			&Ref{ID: "debian", Runtime: Nspawn, Path: "/machine.slice/systemd-nspawn@debian.service"}},
		{"nspawn supervisor", "/machine.slice/systemd-nspawn@debian.service/supervisor", nil},
		{"nspawn payload subgroup", "/machine.slice/systemd-nspawn@debian.service/payload/system.slice/cron.service",
			&Ref{ID: "debian", Runtime: Nspawn, Path: "/machine.slice/systemd-nspawn@debian.service"}},
		{"lxc v2", "/lxc.payload.web", &Ref{ID: "web", Runtime: LXC, Path: "/lxc.payload.web"}},
		{"lxc v2 inner", "/lxc.payload.web/init.scope", &Ref{ID: "web", Runtime: LXC, Path: "/lxc.payload.web"}},
		{"lxc monitor", "/lxc.monitor.web", nil},
		{"lxc v1", "/lxc/web", &Ref{ID: "web", Runtime: LXC, Path: "/lxc/web"}},
		{"short hex is not an id", "/docker/4f2c9a0b1e3d", nil},
		{"upper-case hex is not an id", "/docker/" + strings.ToUpper(id1), nil},
		{"libvirt VM is not nspawn outside machine.slice", "/system.slice/machine-x.scope", nil},
	}
	for _, tt := range tests {
		got, ok := ParsePath(tt.path)
		if tt.want == nil {
			if ok {
				t.Errorf("%s: ParsePath(%q) = %+v, want not a container", tt.name, tt.path, got)
			}
			continue
		}
		if !ok {
			t.Errorf("%s: ParsePath(%q) not a container, want %+v", tt.name, tt.path, *tt.want)
			continue
		}
		if d := cmp.Diff(*tt.want, got); d != "" {
			t.Errorf("%s: ParsePath(%q) (-want +got):\n%s", tt.name, tt.path, d)
		}
	}
}

// TestProcCgroup reads /proc/<pid>/cgroup as cgroup v1, v2 and hybrid hosts
// write it.
func TestProcCgroup(t *testing.T) {
	dockerScope := "/system.slice/docker-" + id1 + ".scope"
	tests := []struct {
		name    string
		content string
		want    *Ref
	}{
		{"v2 host", "0::/system.slice/cron.service\n", nil},
		{"v2 docker", "0::" + dockerScope + "\n", &Ref{ID: id1, Runtime: Docker, Path: dockerScope}},
		{"v1 host", "12:pids:/system.slice/cron.service\n11:memory:/system.slice/cron.service\n1:name=systemd:/system.slice/cron.service\n", nil},
		{"v1 docker cgroupfs", "12:pids:/docker/" + id1 + "\n4:cpu,cpuacct:/docker/" + id1 + "\n1:name=systemd:/docker/" + id1 + "\n",
			&Ref{ID: id1, Runtime: Docker, Path: "/docker/" + id1}},
		{"v1 k8s, only controllers", "11:memory:/kubepods/burstable/pod" + uid + "/" + id1 + "\n",
			&Ref{ID: id1, PodUID: uid, QoS: "burstable", Path: "/kubepods/burstable/pod" + uid + "/" + id1}},
		{"hybrid docker (runc joins the unified hierarchy too)", "9:name=systemd:" + dockerScope + "\n4:memory:" + dockerScope + "\n0::" + dockerScope + "\n",
			&Ref{ID: id1, Runtime: Docker, Path: dockerScope}},
		{"hybrid, v2 left at the root by an older runtime", "9:name=systemd:" + dockerScope + "\n4:memory:" + dockerScope + "\n0::/\n",
			&Ref{ID: id1, Runtime: Docker, Path: dockerScope}},
		{"hybrid host", "9:name=systemd:/\n4:memory:/process_api/979dbba22be639c47870b9f786ae0fb0\n0::/\n", nil},
		{"empty", "", nil},
	}
	for _, tt := range tests {
		got, ok := ParseProcCgroup([]byte(tt.content)).Ref()
		switch {
		case tt.want == nil && ok:
			t.Errorf("%s: %+v, want host", tt.name, got)
		case tt.want != nil && !ok:
			t.Errorf("%s: host, want %+v", tt.name, *tt.want)
		case tt.want != nil:
			if d := cmp.Diff(*tt.want, got); d != "" {
				t.Errorf("%s (-want +got):\n%s", tt.name, d)
			}
		}
	}
}
