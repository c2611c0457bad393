package event

import (
	"encoding/json"
	"strconv"
	"time"
)

// Document is an Event rendered with Elastic Common Schema field names, the
// shape every JSON output shares. docs/events.md describes each field.
type Document struct {
	Timestamp string       `json:"@timestamp"`
	Event     ecsEvent     `json:"event"`
	Process   ecsProcess   `json:"process"`
	User      ecsUser      `json:"user"`
	Group     ecsID        `json:"group"`
	Host      *ecsHost     `json:"host,omitempty"`
	Container *ecsID       `json:"container,omitempty"`
	Vigil     vigilDetails `json:"vigil"`
}

type ecsEvent struct {
	Kind     string   `json:"kind"`
	Category []string `json:"category"`
	Type     []string `json:"type"`
	Action   string   `json:"action"`
	Sequence uint64   `json:"sequence,omitempty"`
}

type ecsID struct {
	ID string `json:"id"`
}

type ecsUser struct {
	ID    string `json:"id"`
	Audit *ecsID `json:"audit,omitempty"` // login uid, as auditbeat names it
}

type ecsHost struct {
	Name         string  `json:"name"`
	Hostname     string  `json:"hostname"`
	ID           string  `json:"id,omitempty"`
	Architecture string  `json:"architecture,omitempty"`
	Boot         *ecsID  `json:"boot,omitempty"`
	OS           *ecsHOS `json:"os,omitempty"`
}

type ecsHOS struct {
	Kernel string `json:"kernel"`
	Type   string `json:"type"`
}

type ecsProcess struct {
	PID              uint32      `json:"pid"`
	Thread           *ecsThread  `json:"thread,omitempty"`
	EntityID         string      `json:"entity_id,omitempty"`
	Name             string      `json:"name,omitempty"`
	Executable       string      `json:"executable,omitempty"`
	Args             []string    `json:"args,omitempty"`
	ArgsCount        int         `json:"args_count,omitempty"`
	CommandLine      string      `json:"command_line,omitempty"`
	WorkingDirectory string      `json:"working_directory,omitempty"`
	Start            string      `json:"start,omitempty"`
	End              string      `json:"end,omitempty"`
	ExitCode         *int        `json:"exit_code,omitempty"`
	User             ecsID       `json:"user"`
	RealUser         ecsID       `json:"real_user"`
	Group            ecsID       `json:"group"`
	RealGroup        ecsID       `json:"real_group"`
	Parent           *ecsProcess `json:"parent,omitempty"`
}

type ecsThread struct {
	ID uint32 `json:"id"`
}

type vigilDetails struct {
	Process *vigilProcess `json:"process,omitempty"`
	Exit    *vigilExit    `json:"exit,omitempty"`
	Cgroup  *vigilCgroup  `json:"cgroup,omitempty"`
}

type vigilProcess struct {
	Script        string        `json:"script,omitempty"`
	Filename      string        `json:"filename,omitempty"`
	ArgsTruncated bool          `json:"args_truncated,omitempty"`
	PathTruncated bool          `json:"path_truncated,omitempty"`
	SessionID     *uint32       `json:"session_id,omitempty"`
	FromProcfs    bool          `json:"from_procfs,omitempty"`
	Ancestors     []ecsAncestor `json:"ancestors,omitempty"`
}

type ecsAncestor struct {
	PID        uint32   `json:"pid"`
	EntityID   string   `json:"entity_id,omitempty"`
	Name       string   `json:"name,omitempty"`
	Executable string   `json:"executable,omitempty"`
	Args       []string `json:"args,omitempty"`
}

type vigilExit struct {
	Signal     int    `json:"signal,omitempty"`
	SignalName string `json:"signal_name,omitempty"`
	CoreDumped bool   `json:"core_dumped,omitempty"`
}

type vigilCgroup struct {
	ID uint64 `json:"id"`
}

const timeFormat = "2006-01-02T15:04:05.000000000Z07:00"

func formatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(timeFormat)
}

// Doc renders the event as an ECS document. host may be nil.
func (e *Event) Doc(host *Host, seq uint64) Document {
	d := Document{
		Timestamp: formatTime(e.Time),
		Event:     ecsEvent{Kind: "event", Category: []string{"process"}, Action: e.Kind.String(), Sequence: seq},
		Process:   processDoc(&e.Process),
		User:      ecsUser{ID: uidString(e.Process.UID)},
		Group:     ecsID{ID: uidString(e.Process.GID)},
	}
	switch e.Kind {
	case KindExec, KindFork:
		d.Event.Type = []string{"start"}
	case KindExit:
		d.Event.Type = []string{"end"}
		d.Process.End = formatTime(e.Time)
	default:
		d.Event.Type = []string{"info"}
	}
	if e.Process.AUID != NoUID {
		d.User.Audit = &ecsID{ID: uidString(e.Process.AUID)}
	}
	if host != nil {
		d.Host = &ecsHost{Name: host.Name, Hostname: host.Name, ID: host.ID, Architecture: host.Arch}
		if host.BootID != "" {
			d.Host.Boot = &ecsID{ID: host.BootID}
		}
		if host.Kernel != "" {
			d.Host.OS = &ecsHOS{Kernel: host.Kernel, Type: "linux"}
		}
	}
	if e.Parent != nil {
		pd := processDoc(e.Parent)
		d.Process.Parent = &pd
	}
	vp := &vigilProcess{
		Script:        e.Process.Script,
		Filename:      e.Process.Filename,
		ArgsTruncated: e.Process.ArgsTruncated,
		PathTruncated: e.Process.PathTruncated,
		FromProcfs:    e.Process.FromProcfs,
	}
	if e.Process.SessionID != NoUID {
		sid := e.Process.SessionID
		vp.SessionID = &sid
	}
	for _, a := range e.Ancestors {
		vp.Ancestors = append(vp.Ancestors, ecsAncestor(a))
	}
	d.Vigil.Process = vp
	if e.Process.CgroupID != 0 {
		d.Vigil.Cgroup = &vigilCgroup{ID: e.Process.CgroupID}
	}
	if e.Exit != nil {
		code := e.Exit.Code
		d.Process.ExitCode = &code
		if e.Exit.Signal != 0 {
			d.Vigil.Exit = &vigilExit{Signal: e.Exit.Signal, SignalName: SignalName(e.Exit.Signal), CoreDumped: e.Exit.CoreDumped}
		}
	}
	return d
}

func processDoc(p *Process) ecsProcess {
	d := ecsProcess{
		PID:              p.PID,
		EntityID:         p.EntityID,
		Name:             p.Name,
		Executable:       p.Executable,
		Args:             p.Args,
		ArgsCount:        p.ArgsCount,
		WorkingDirectory: p.WorkingDir,
		Start:            formatTime(p.Start),
		User:             ecsID{ID: uidString(p.EUID)},
		RealUser:         ecsID{ID: uidString(p.UID)},
		Group:            ecsID{ID: uidString(p.EGID)},
		RealGroup:        ecsID{ID: uidString(p.GID)},
	}
	if p.TID != 0 && p.TID != p.PID {
		d.Thread = &ecsThread{ID: p.TID}
	}
	if d.ArgsCount == 0 {
		d.ArgsCount = len(p.Args)
	}
	return d
}

// MarshalJSON renders the event as its ECS document without host fields.
func (e *Event) MarshalJSON() ([]byte, error) {
	return json.Marshal(e.Doc(nil, 0))
}

func uidString(id uint32) string { return strconv.FormatUint(uint64(id), 10) }
