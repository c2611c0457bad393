package container

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"

	"github.com/vigilsec/vigil/internal/event"
)

// Where runtimes keep the state of running containers, relative to the
// state root ("/" on a host). Each is read only for the id a cgroup path
// names, except the runc and crun roots, which are listed to find containers
// whose cgroup path carries no mark.
const (
	containerdTasks   = "run/containerd/io.containerd.runtime.v2.task" // <namespace>/<id>/config.json
	dockerContainers  = "var/lib/docker/containers"                    // <id>/config.v2.json
	storageRun        = "run/containers/storage/overlay-containers"    // CRI-O, podman: <id>/userdata/config.json
	storageLib        = "var/lib/containers/storage/overlay-containers"
	storageContainers = "var/lib/containers/storage/overlay-containers/containers.json"
	crunRoot          = "run/crun" // <id>/status
)

// runcRoots are the --root directories of runc as run by hand, by docker
// and by containerd (one per containerd namespace below the last).
var runcRoots = []string{"run/runc", "run/docker/runtime-runc/moby", "run/containerd/runc"}

// annotation and label keys that name a container, its image and its pod.
var (
	nameKeys      = []string{"io.kubernetes.cri.container-name", "io.kubernetes.container.name", "nerdctl/name"}
	imageKeys     = []string{"io.kubernetes.cri.image-name", "io.kubernetes.cri-o.ImageName"}
	podNameKeys   = []string{"io.kubernetes.cri.sandbox-name", "io.kubernetes.pod.name"}
	podNSKeys     = []string{"io.kubernetes.cri.sandbox-namespace", "io.kubernetes.pod.namespace"}
	podUIDKeys    = []string{"io.kubernetes.cri.sandbox-uid", "io.kubernetes.pod.uid"}
	criOMarkerKey = "io.kubernetes.cri-o.ContainerID"
	libpodKey     = "io.container.manager" // "libpod"
)

// ociConfig is the part of an OCI bundle's config.json read here.
type ociConfig struct {
	Annotations map[string]string `json:"annotations"`
	Hostname    string            `json:"hostname"`
}

// describe fills a container's identity from the cgroup reference and the
// runtime's state under root.
func describe(root string, r Ref) *event.Container {
	c := &event.Container{ID: r.ID, Runtime: r.Runtime, CgroupPath: r.Path}
	if r.PodUID != "" {
		c.Pod = &event.Pod{UID: r.PodUID, QoSClass: r.QoS}
	}
	switch r.Runtime {
	case Nspawn, LXC:
		c.Name = r.ID
		return c
	}
	if !isHexID(r.ID) {
		// runc or crun with the systemd driver: the unit names the id.
		if st, ok := findRuncState(root, r.ID); ok {
			c.Runtime = st.runtime
			applyAnnotations(c, readOCI(st.bundle).Annotations)
		}
		return c
	}
	// containerd (also docker's own containerd, namespace "moby").
	if nss, err := os.ReadDir(filepath.Join(root, containerdTasks)); err == nil {
		for _, ns := range nss {
			cfg := filepath.Join(root, containerdTasks, ns.Name(), r.ID, "config.json")
			if _, err := os.Stat(cfg); err != nil {
				continue
			}
			if c.Runtime == "" {
				c.Runtime = Containerd
				if ns.Name() == "moby" {
					c.Runtime = Docker
				}
			}
			applyAnnotations(c, readOCI(cfg).Annotations)
			break
		}
	}
	// CRI-O and podman share containers/storage.
	for _, dir := range []string{storageRun, storageLib} {
		cfg := filepath.Join(root, dir, r.ID, "userdata", "config.json")
		oc := readOCI(cfg)
		if oc.Annotations == nil {
			continue
		}
		if c.Runtime == "" {
			if oc.Annotations[libpodKey] == "libpod" {
				c.Runtime = Podman
			} else if oc.Annotations[criOMarkerKey] != "" {
				c.Runtime = CRIO
			}
		}
		applyAnnotations(c, oc.Annotations)
		break
	}
	if c.Name == "" || c.Image == "" {
		storageNames(root, c)
	}
	// docker's own record: the name and image given to docker run, and
	// the Kubernetes labels of cri-dockerd.
	if b, err := os.ReadFile(filepath.Join(root, dockerContainers, r.ID, "config.v2.json")); err == nil {
		var d struct {
			Name   string
			Config struct {
				Image  string
				Labels map[string]string
			}
		}
		if json.Unmarshal(b, &d) == nil {
			if c.Runtime == "" {
				c.Runtime = Docker
			}
			applyAnnotations(c, d.Config.Labels)
			if c.Name == "" {
				c.Name = strings.TrimPrefix(d.Name, "/")
			}
			if c.Image == "" {
				c.Image = d.Config.Image
			}
		}
	}
	if c.Runtime == "" {
		// A bare id under no runtime we know the state of: runc by hand?
		if st, ok := findRuncState(root, r.ID); ok {
			c.Runtime = st.runtime
			applyAnnotations(c, readOCI(st.bundle).Annotations)
		}
	}
	return c
}

func readOCI(path string) ociConfig {
	var oc ociConfig
	if b, err := os.ReadFile(path); err == nil {
		_ = json.Unmarshal(b, &oc)
	}
	return oc
}

// applyAnnotations fills what is still empty from annotations or labels.
func applyAnnotations(c *event.Container, a map[string]string) {
	if len(a) == 0 {
		return
	}
	first := func(keys []string) string {
		for _, k := range keys {
			if v := a[k]; v != "" {
				return v
			}
		}
		return ""
	}
	if c.Name == "" {
		c.Name = first(nameKeys)
	}
	if c.Image == "" {
		c.Image = first(imageKeys)
	}
	name, ns, uid := first(podNameKeys), first(podNSKeys), first(podUIDKeys)
	if name == "" && ns == "" && uid == "" {
		return
	}
	if c.Pod == nil {
		c.Pod = &event.Pod{}
	}
	if c.Pod.Name == "" {
		c.Pod.Name = name
	}
	if c.Pod.Namespace == "" {
		c.Pod.Namespace = ns
	}
	if c.Pod.UID == "" {
		c.Pod.UID = uid
	}
}

// storageNames reads the name and image of a CRI-O or podman container
// from containers/storage's index.
func storageNames(root string, c *event.Container) {
	b, err := os.ReadFile(filepath.Join(root, storageContainers))
	if err != nil {
		return
	}
	var list []struct {
		ID       string   `json:"id"`
		Names    []string `json:"names"`
		Metadata string   `json:"metadata"`
	}
	if json.Unmarshal(b, &list) != nil {
		return
	}
	for _, x := range list {
		if x.ID != c.ID {
			continue
		}
		var md struct {
			ImageName string `json:"image-name"`
			Name      string `json:"name"`
		}
		_ = json.Unmarshal([]byte(x.Metadata), &md)
		if c.Name == "" {
			c.Name = md.Name
			if c.Name == "" && len(x.Names) > 0 {
				c.Name = x.Names[0]
			}
		}
		if c.Image == "" {
			c.Image = md.ImageName
		}
		return
	}
}

// runtimeState is a container found in a runc or crun state directory.
type runtimeState struct {
	id, runtime string
	bundle      string // the bundle's config.json
	cgroupPath  string // relative to the hierarchy root, when known
}

// runcStateDirs lists the state directories of runc and crun under root:
// each holds one directory per container.
func runcStateDirs(root string) []struct{ dir, runtime string } {
	var out []struct{ dir, runtime string }
	for _, r := range runcRoots {
		d := filepath.Join(root, r)
		if r == "run/containerd/runc" {
			nss, _ := os.ReadDir(d)
			for _, ns := range nss {
				out = append(out, struct{ dir, runtime string }{filepath.Join(d, ns.Name()), Runc})
			}
			continue
		}
		out = append(out, struct{ dir, runtime string }{d, Runc})
	}
	return append(out, struct{ dir, runtime string }{filepath.Join(root, crunRoot), Crun})
}

func findRuncState(root, id string) (runtimeState, bool) {
	for _, d := range runcStateDirs(root) {
		if st, ok := readRuntimeState(filepath.Join(d.dir, id), d.runtime); ok {
			return st, true
		}
	}
	return runtimeState{}, false
}

// listRuntimeStates reads every container in the runc and crun state
// directories.
func listRuntimeStates(root string) []runtimeState {
	var out []runtimeState
	for _, d := range runcStateDirs(root) {
		ents, _ := os.ReadDir(d.dir)
		for _, e := range ents {
			if st, ok := readRuntimeState(filepath.Join(d.dir, e.Name()), d.runtime); ok {
				out = append(out, st)
			}
		}
	}
	return out
}

// readRuntimeState reads runc's state.json or crun's status file.
func readRuntimeState(dir, runtime string) (runtimeState, bool) {
	st := runtimeState{id: filepath.Base(dir), runtime: runtime}
	if runtime == Crun {
		b, err := os.ReadFile(filepath.Join(dir, "status"))
		if err != nil {
			return st, false
		}
		var s struct {
			Bundle     string `json:"bundle"`
			CgroupPath string `json:"cgroup-path"`
		}
		if json.Unmarshal(b, &s) != nil {
			return st, false
		}
		st.bundle = filepath.Join(s.Bundle, "config.json")
		st.cgroupPath = cleanCgroupPath(s.CgroupPath)
		return st, true
	}
	b, err := os.ReadFile(filepath.Join(dir, "state.json"))
	if err != nil {
		return st, false
	}
	var s struct {
		ID     string `json:"id"`
		Config struct {
			Labels  []string `json:"labels"`
			Cgroups struct {
				Path string `json:"path"`
			} `json:"cgroups"`
		} `json:"config"`
		CgroupPaths map[string]string `json:"cgroup_paths"`
	}
	if json.Unmarshal(b, &s) != nil {
		return st, false
	}
	if s.ID != "" {
		st.id = s.ID
	}
	for _, l := range s.Config.Labels {
		if b, ok := strings.CutPrefix(l, "bundle="); ok {
			st.bundle = filepath.Join(b, "config.json")
		}
	}
	if p := s.Config.Cgroups.Path; strings.HasPrefix(p, "/") {
		st.cgroupPath = cleanCgroupPath(p)
	} else if p, ok := s.CgroupPaths[""]; ok {
		// systemd driver: the unified path, under the mount point.
		st.cgroupPath = p
	}
	return st, true
}

func cleanCgroupPath(p string) string {
	if p == "" {
		return ""
	}
	return filepath.Clean("/" + p)
}
