package event

import (
	"encoding/json"
	"strconv"
	"time"
)

// Document is an Event rendered with Elastic Common Schema field names, the
// shape every JSON output shares. docs/events.md describes each field.
type Document struct {
	Timestamp    string           `json:"@timestamp"`
	Event        ecsEvent         `json:"event"`
	Process      ecsProcess       `json:"process"`
	User         ecsUser          `json:"user"`
	Group        ecsID            `json:"group"`
	Host         *ecsHost         `json:"host,omitempty"`
	Container    *ecsContainer    `json:"container,omitempty"`
	Orchestrator *ecsOrchestrator `json:"orchestrator,omitempty"`
	File         *ecsFile         `json:"file,omitempty"`
	Source       *ecsEndpoint     `json:"source,omitempty"`
	Destination  *ecsEndpoint     `json:"destination,omitempty"`
	Network      *ecsNetwork      `json:"network,omitempty"`
	DNS          *ecsDNS          `json:"dns,omitempty"`
	Error        *ecsError        `json:"error,omitempty"`
	Rule         *ecsRule         `json:"rule,omitempty"`
	Threat       *ecsThreat       `json:"threat,omitempty"`
	Message      string           `json:"message,omitempty"`
	Tags         []string         `json:"tags,omitempty"`
	Vigil        vigilDetails     `json:"vigil"`
}

type ecsRule struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	Ruleset     string `json:"ruleset,omitempty"`
	Description string `json:"description,omitempty"`
}

type ecsThreat struct {
	Framework string         `json:"framework"`
	Technique []ecsTechnique `json:"technique"`
}

type ecsTechnique struct {
	ID string `json:"id"`
}

type ecsEvent struct {
	Kind     string   `json:"kind"`
	Module   string   `json:"module"`
	Dataset  string   `json:"dataset"`
	Category []string `json:"category"`
	Type     []string `json:"type"`
	Action   string   `json:"action"`
	Outcome  string   `json:"outcome,omitempty"`
	Severity int      `json:"severity,omitempty"`
	Sequence uint64   `json:"sequence,omitempty"`
}

type ecsError struct {
	Code string `json:"code"`
}

type ecsFile struct {
	Path       string `json:"path"`
	Name       string `json:"name,omitempty"`
	Directory  string `json:"directory,omitempty"`
	TargetPath string `json:"target_path,omitempty"`
	Inode      string `json:"inode,omitempty"`
	Device     string `json:"device,omitempty"`
	Mode       string `json:"mode,omitempty"`
	UID        string `json:"uid,omitempty"`
	GID        string `json:"gid,omitempty"`
}

type ecsEndpoint struct {
	IP   string `json:"ip,omitempty"`
	Port uint16 `json:"port,omitempty"`
}

type ecsNetwork struct {
	Type      string `json:"type,omitempty"`
	Transport string `json:"transport,omitempty"`
	Direction string `json:"direction,omitempty"`
}

type ecsDNS struct {
	ID       string         `json:"id"`
	Type     string         `json:"type"`
	Question ecsDNSQuestion `json:"question"`
}

type ecsDNSQuestion struct {
	Name string `json:"name"`
	Type string `json:"type"`
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
	// Origin: "host" or "container"; absent when not resolved.
	Origin  string        `json:"origin,omitempty"`
	Process *vigilProcess `json:"process,omitempty"`
	Exec    *vigilExec    `json:"exec,omitempty"`
	Exit    *vigilExit    `json:"exit,omitempty"`
	Cgroup  *vigilCgroup  `json:"cgroup,omitempty"`
	Return  *int64        `json:"return,omitempty"`
	File    *vigilFile    `json:"file,omitempty"`
	Cred    *vigilCred    `json:"cred,omitempty"`
	Net     *vigilNet     `json:"net,omitempty"`
	Kernel  *vigilKernel  `json:"kernel,omitempty"`
	Alert   *vigilAlert   `json:"alert,omitempty"`
	// Response is set on response events (response.go).
	Response *vigilResponse `json:"response,omitempty"`
}

type vigilAlert struct {
	Severity string    `json:"severity"`
	Response string    `json:"response,omitempty"`
	DryRun   bool      `json:"dry_run,omitempty"`
	Trigger  *Document `json:"trigger,omitempty"`
}

type vigilExec struct {
	SecureExec   bool `json:"secure_exec,omitempty"`
	FileUnlinked bool `json:"file_unlinked,omitempty"`
	StdinSocket  bool `json:"stdin_socket,omitempty"`
	StdoutSocket bool `json:"stdout_socket,omitempty"`
	StderrSocket bool `json:"stderr_socket,omitempty"`
	Killed       bool `json:"killed,omitempty"`
}

type vigilFile struct {
	Op                 FileOp `json:"op"`
	RawPath            string `json:"raw_path,omitempty"`
	PathResolved       bool   `json:"path_resolved"`
	TargetRawPath      string `json:"raw_target_path,omitempty"`
	TargetPathResolved bool   `json:"target_path_resolved,omitempty"`
	PathTruncated      bool   `json:"path_truncated,omitempty"`
	OpenFlags          uint32 `json:"open_flags,omitempty"`
	Write              bool   `json:"write,omitempty"`
	Watched            bool   `json:"watched,omitempty"`
}

type vigilCred struct {
	Op   CredOp    `json:"op"`
	Args []uint32  `json:"args,omitempty"`
	Old  credsJSON `json:"old"`
	New  credsJSON `json:"new"`
}

type credsJSON struct {
	UID          uint32 `json:"uid"`
	EUID         uint32 `json:"euid"`
	SUID         uint32 `json:"suid"`
	FSUID        uint32 `json:"fsuid"`
	GID          uint32 `json:"gid"`
	EGID         uint32 `json:"egid"`
	SGID         uint32 `json:"sgid"`
	FSGID        uint32 `json:"fsgid"`
	CapEffective string `json:"cap_effective"`
	CapPermitted string `json:"cap_permitted"`
}

type vigilNet struct {
	Op     NetOp  `json:"op"`
	Family string `json:"family,omitempty"`
	Type   string `json:"type,omitempty"`
	FD     int32  `json:"fd"`
}

type vigilKernel struct {
	Op        KernelOp `json:"op"`
	Flags     uint64   `json:"flags,omitempty"`
	FlagNames []string `json:"flag_names,omitempty"`
	Arg       uint64   `json:"arg,omitempty"`
	ArgName   string   `json:"arg_name,omitempty"`
	TargetPID uint32   `json:"target_pid,omitempty"`
	Source    string   `json:"source,omitempty"`
	Target    string   `json:"target,omitempty"`
	FSType    string   `json:"fstype,omitempty"`
	Name      string   `json:"name,omitempty"`
	Path      string   `json:"path,omitempty"`
	Params    string   `json:"params,omitempty"`
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
	ID   uint64 `json:"id"`
	Path string `json:"path,omitempty"`
	// PodQoS is the Kubernetes QoS class the cgroup path names.
	PodQoS string `json:"pod_qos,omitempty"`
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
		Event: ecsEvent{Kind: "event", Module: "vigil", Dataset: "vigil." + e.Kind.String(),
			Category: []string{"process"}, Type: []string{"info"}, Action: e.Kind.String(), Sequence: seq},
		Process: processDoc(&e.Process),
		User:    ecsUser{ID: uidString(e.Process.UID)},
		Group:   ecsID{ID: uidString(e.Process.GID)},
	}
	switch e.Kind {
	case KindExec, KindFork:
		d.Event.Dataset = "vigil.process"
		d.Event.Type = []string{"start"}
	case KindExit:
		d.Event.Dataset = "vigil.process"
		d.Event.Type = []string{"end"}
		d.Process.End = formatTime(e.Time)
	case KindFile, KindCred, KindNet, KindKernel:
		ret := e.Return
		d.Vigil.Return = &ret
		d.Event.Outcome = "success"
		if ret < 0 {
			d.Event.Outcome = "failure"
			d.Error = &ecsError{Code: ErrnoName(-ret)}
		}
	}
	e.kindDoc(&d)
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
	if x := e.Exec; x != nil {
		d.Vigil.Exec = &vigilExec{SecureExec: x.SecureExec, FileUnlinked: x.FileUnlinked,
			StdinSocket: x.StdinSocket, StdoutSocket: x.StdoutSocket, StderrSocket: x.StderrSocket, Killed: x.Killed}
	}
	if e.Process.CgroupID != 0 {
		d.Vigil.Cgroup = &vigilCgroup{ID: e.Process.CgroupID}
	}
	containerDoc(e, &d)
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
