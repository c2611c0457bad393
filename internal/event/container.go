package event

// Origin says where the process of an event runs: on the host or in a
// container. The zero value means it was not resolved (no cgroup id, or a
// cgroup that was gone before the agent could read it).
type Origin uint8

const (
	OriginUnknown Origin = iota
	OriginHost
	OriginContainer
)

var originNames = [...]string{"", "host", "container"}

func (o Origin) String() string {
	if int(o) < len(originNames) {
		return originNames[o]
	}
	return ""
}

// Container is the container a process runs in, as its cgroup path and the
// runtime's state on disk describe it. Fields the runtime does not record are
// empty.
type Container struct {
	ID      string
	Name    string
	Runtime string // docker, containerd, cri-o, podman, runc, crun, systemd-nspawn, lxc
	Image   string
	// CgroupPath is the container's cgroup, relative to the hierarchy root.
	CgroupPath string
	// Pod is the Kubernetes pod the container belongs to, if any.
	Pod *Pod
}

// Pod is a Kubernetes pod, from the cgroup path (UID, QoS class) and the
// runtime's annotations or labels (name, namespace).
type Pod struct {
	Name      string
	Namespace string
	UID       string
	QoSClass  string // guaranteed, burstable, besteffort
}

type ecsContainer struct {
	ID      string    `json:"id"`
	Name    string    `json:"name,omitempty"`
	Runtime string    `json:"runtime,omitempty"`
	Image   *ecsImage `json:"image,omitempty"`
}

type ecsImage struct {
	Name string `json:"name"`
}

type ecsOrchestrator struct {
	Type      string      `json:"type"`
	Namespace string      `json:"namespace,omitempty"`
	Resource  ecsResource `json:"resource"`
}

type ecsResource struct {
	Type string `json:"type"`
	Name string `json:"name,omitempty"`
	ID   string `json:"id,omitempty"`
}

// containerDoc adds container.*, orchestrator.* and vigil.origin.
func containerDoc(e *Event, d *Document) {
	d.Vigil.Origin = e.Origin.String()
	c := e.Container
	if c == nil {
		return
	}
	d.Container = &ecsContainer{ID: c.ID, Name: c.Name, Runtime: c.Runtime}
	if c.Image != "" {
		d.Container.Image = &ecsImage{Name: c.Image}
	}
	if c.CgroupPath != "" && d.Vigil.Cgroup != nil {
		d.Vigil.Cgroup.Path = c.CgroupPath
	}
	if p := c.Pod; p != nil {
		d.Orchestrator = &ecsOrchestrator{Type: "kubernetes", Namespace: p.Namespace,
			Resource: ecsResource{Type: "pod", Name: p.Name, ID: p.UID}}
		if d.Vigil.Cgroup != nil {
			d.Vigil.Cgroup.PodQoS = p.QoSClass
		}
	}
}
