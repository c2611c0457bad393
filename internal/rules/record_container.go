package rules

import "github.com/vigilsec/vigil/internal/event"

// recContainer records event.Container and event.Pod.
type recContainer struct {
	ID         bstr    `json:"id"`
	Name       bstr    `json:"name"`
	Runtime    bstr    `json:"runtime"`
	Image      bstr    `json:"image"`
	CgroupPath bstr    `json:"cgroup_path"`
	Pod        *recPod `json:"pod,omitempty"`
}

type recPod struct {
	Name      bstr `json:"name"`
	Namespace bstr `json:"namespace"`
	UID       bstr `json:"uid"`
	QoSClass  bstr `json:"qos_class"`
}

func toRecContainer(c *event.Container) *recContainer {
	if c == nil {
		return nil
	}
	r := &recContainer{ID: bstr(c.ID), Name: bstr(c.Name), Runtime: bstr(c.Runtime), Image: bstr(c.Image), CgroupPath: bstr(c.CgroupPath)}
	if p := c.Pod; p != nil {
		r.Pod = &recPod{Name: bstr(p.Name), Namespace: bstr(p.Namespace), UID: bstr(p.UID), QoSClass: bstr(p.QoSClass)}
	}
	return r
}

func (r *recContainer) container() *event.Container {
	if r == nil {
		return nil
	}
	c := &event.Container{ID: string(r.ID), Name: string(r.Name), Runtime: string(r.Runtime), Image: string(r.Image), CgroupPath: string(r.CgroupPath)}
	if p := r.Pod; p != nil {
		c.Pod = &event.Pod{Name: string(p.Name), Namespace: string(p.Namespace), UID: string(p.UID), QoSClass: string(p.QoSClass)}
	}
	return c
}
