package rules

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"time"
	"unicode/utf8"

	"github.com/vigilsec/vigil/internal/event"
)

// The recording format of `vigil run --record` and `vigil replay`: one JSON
// object per line, one line per event.Event. Unlike the ECS output it keeps
// every field, so that a replay sees exactly what the recording saw:
// strings that are not UTF-8 (file names can be any bytes) are written as
// {"b64": "..."}, nil and empty lists stay apart, and times keep their
// nanoseconds.

// WriteRecord writes e as one line of a recording.
func WriteRecord(w io.Writer, e *event.Event) error {
	b, err := json.Marshal(toRec(e))
	if err != nil {
		return fmt.Errorf("record event: %w", err)
	}
	b = append(b, '\n')
	_, err = w.Write(b)
	return err
}

// ReadRecords reads a recording, calling fn with each event in order. It
// stops at the first error: a line that is not a record, or fn's error.
// Empty lines are skipped.
func ReadRecords(r io.Reader, fn func(*event.Event) error) error {
	br := bufio.NewReaderSize(r, 64<<10)
	for line := 1; ; line++ {
		b, err := br.ReadBytes('\n')
		if len(bytes.TrimSpace(b)) > 0 {
			var rec recEvent
			if err := json.Unmarshal(b, &rec); err != nil {
				return fmt.Errorf("record line %d: %w", line, err)
			}
			e, err := rec.event()
			if err != nil {
				return fmt.Errorf("record line %d: %w", line, err)
			}
			if err := fn(e); err != nil {
				return err
			}
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read records: %w", err)
		}
	}
}

// bstr is a string of any bytes: JSON text when it is UTF-8, else base64.
type bstr string

func (s bstr) MarshalJSON() ([]byte, error) {
	if utf8.ValidString(string(s)) {
		return json.Marshal(string(s))
	}
	return json.Marshal(struct {
		B64 string `json:"b64"`
	}{base64.StdEncoding.EncodeToString([]byte(s))})
}

func (s *bstr) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '{' {
		var v struct {
			B64 string `json:"b64"`
		}
		if err := json.Unmarshal(b, &v); err != nil {
			return err
		}
		raw, err := base64.StdEncoding.DecodeString(v.B64)
		if err != nil {
			return err
		}
		*s = bstr(raw)
		return nil
	}
	var str string
	if err := json.Unmarshal(b, &str); err != nil {
		return err
	}
	*s = bstr(str)
	return nil
}

func bstrs(ss []string) []bstr {
	if ss == nil {
		return nil
	}
	out := make([]bstr, len(ss))
	for i, s := range ss {
		out[i] = bstr(s)
	}
	return out
}

func strsOf(bs []bstr) []string {
	if bs == nil {
		return nil
	}
	out := make([]string, len(bs))
	for i, s := range bs {
		out[i] = string(s)
	}
	return out
}

type recEvent struct {
	Time      time.Time     `json:"time"`
	Kind      string        `json:"kind"`
	Process   recProcess    `json:"process"`
	Parent    *recProcess   `json:"parent,omitempty"`
	Ancestors []recAncestor `json:"ancestors"`
	Exit      *recExit      `json:"exit,omitempty"`
	Return    int64         `json:"return,omitempty"`
	Exec      *recExec      `json:"exec,omitempty"`
	File      *recFile      `json:"file,omitempty"`
	Cred      *recCred      `json:"cred,omitempty"`
	Net       *recNet       `json:"net,omitempty"`
	Kernel    *recKernel    `json:"kernel,omitempty"`
	Alert     *recAlert     `json:"alert,omitempty"`
	Origin    uint8         `json:"origin,omitempty"`
	Container *recContainer `json:"container,omitempty"`
	Response  *recResponse  `json:"response,omitempty"`
}

type recProcess struct {
	PID             uint32    `json:"pid"`
	TID             uint32    `json:"tid"`
	PPID            uint32    `json:"ppid"`
	Start           time.Time `json:"start"`
	StartBoot       uint64    `json:"start_boot"`
	ParentStartBoot uint64    `json:"parent_start_boot"`
	EntityID        bstr      `json:"entity_id"`
	Name            bstr      `json:"name"`
	Executable      bstr      `json:"executable"`
	Script          bstr      `json:"script"`
	Filename        bstr      `json:"filename"`
	Args            []bstr    `json:"args"`
	ArgsCount       int       `json:"args_count"`
	ArgsTruncated   bool      `json:"args_truncated"`
	WorkingDir      bstr      `json:"working_dir"`
	PathTruncated   bool      `json:"path_truncated"`
	UID             uint32    `json:"uid"`
	GID             uint32    `json:"gid"`
	EUID            uint32    `json:"euid"`
	EGID            uint32    `json:"egid"`
	AUID            uint32    `json:"auid"`
	SessionID       uint32    `json:"session_id"`
	CgroupID        uint64    `json:"cgroup_id"`
	FromProcfs      bool      `json:"from_procfs"`
}

type recAncestor struct {
	PID        uint32 `json:"pid"`
	EntityID   bstr   `json:"entity_id"`
	Name       bstr   `json:"name"`
	Executable bstr   `json:"executable"`
	Args       []bstr `json:"args"`
}

type recExit struct {
	Code       int  `json:"code"`
	Signal     int  `json:"signal"`
	CoreDumped bool `json:"core_dumped"`
}

type recExec struct {
	SecureExec   bool `json:"secure_exec"`
	FileUnlinked bool `json:"file_unlinked"`
	StdinSocket  bool `json:"stdin_socket"`
	StdoutSocket bool `json:"stdout_socket"`
	StderrSocket bool `json:"stderr_socket"`
	Killed       bool `json:"killed,omitempty"`
}

type recFile struct {
	Op                 bstr   `json:"op"`
	Path               bstr   `json:"path"`
	PathResolved       bool   `json:"path_resolved"`
	RawPath            bstr   `json:"raw_path"`
	TargetPath         bstr   `json:"target_path"`
	TargetPathResolved bool   `json:"target_path_resolved"`
	TargetRawPath      bstr   `json:"target_raw_path"`
	PathTruncated      bool   `json:"path_truncated"`
	OpenFlags          uint32 `json:"open_flags"`
	Mode               uint32 `json:"mode"`
	UID                uint32 `json:"uid"`
	GID                uint32 `json:"gid"`
	Inode              uint64 `json:"inode"`
	Device             uint32 `json:"device"`
	Write              bool   `json:"write"`
	Watched            bool   `json:"watched"`
}

type recCred struct {
	Op   bstr     `json:"op"`
	Args []uint32 `json:"args"`
	Old  recCreds `json:"old"`
	New  recCreds `json:"new"`
}

type recCreds struct {
	UID          uint32 `json:"uid"`
	EUID         uint32 `json:"euid"`
	SUID         uint32 `json:"suid"`
	FSUID        uint32 `json:"fsuid"`
	GID          uint32 `json:"gid"`
	EGID         uint32 `json:"egid"`
	SGID         uint32 `json:"sgid"`
	FSGID        uint32 `json:"fsgid"`
	CapEffective uint64 `json:"cap_effective"`
	CapPermitted uint64 `json:"cap_permitted"`
}

type recNet struct {
	Op          bstr           `json:"op"`
	Family      bstr           `json:"family"`
	Protocol    bstr           `json:"protocol"`
	Type        bstr           `json:"type"`
	Source      netip.AddrPort `json:"source"`
	Destination netip.AddrPort `json:"destination"`
	FD          int32          `json:"fd"`
	DNS         *recDNS        `json:"dns,omitempty"`
	Dir         bstr           `json:"dir,omitempty"`
}

type recDNS struct {
	ID   uint16 `json:"id"`
	Name bstr   `json:"name"`
	Type bstr   `json:"type"`
}

type recKernel struct {
	Op        bstr   `json:"op"`
	Flags     uint64 `json:"flags"`
	FlagNames []bstr `json:"flag_names"`
	Arg       uint64 `json:"arg"`
	ArgName   bstr   `json:"arg_name"`
	TargetPID uint32 `json:"target_pid"`
	Source    bstr   `json:"source"`
	Target    bstr   `json:"target"`
	FSType    bstr   `json:"fstype"`
	Name      bstr   `json:"name"`
	Path      bstr   `json:"path"`
	Params    bstr   `json:"params"`
}

type recAlert struct {
	RuleID      bstr      `json:"rule_id"`
	RuleName    bstr      `json:"rule_name"`
	Ruleset     bstr      `json:"ruleset,omitempty"`
	Description bstr      `json:"description"`
	Severity    uint8     `json:"severity"`
	Tags        []bstr    `json:"tags"`
	MITRE       []bstr    `json:"mitre"`
	Message     bstr      `json:"message"`
	Response    bstr      `json:"response"`
	DryRun      bool      `json:"dry_run,omitempty"`
	Trigger     *recEvent `json:"trigger,omitempty"`
}

type recResponse struct {
	RuleID    bstr `json:"rule_id"`
	Action    bstr `json:"action"`
	Mechanism bstr `json:"mechanism"`
	Target    bstr `json:"target"`
	Outcome   bstr `json:"outcome"`
	Reason    bstr `json:"reason"`
}

func toRec(e *event.Event) *recEvent {
	r := &recEvent{
		Time:    e.Time,
		Kind:    e.Kind.String(),
		Process: toRecProcess(&e.Process),
		Return:  e.Return,
	}
	if e.Parent != nil {
		p := toRecProcess(e.Parent)
		r.Parent = &p
	}
	if e.Ancestors != nil {
		r.Ancestors = make([]recAncestor, len(e.Ancestors))
		for i, a := range e.Ancestors {
			r.Ancestors[i] = recAncestor{PID: a.PID, EntityID: bstr(a.EntityID), Name: bstr(a.Name), Executable: bstr(a.Executable), Args: bstrs(a.Args)}
		}
	}
	if x := e.Exit; x != nil {
		r.Exit = &recExit{Code: x.Code, Signal: x.Signal, CoreDumped: x.CoreDumped}
	}
	if x := e.Exec; x != nil {
		r.Exec = &recExec{SecureExec: x.SecureExec, FileUnlinked: x.FileUnlinked,
			StdinSocket: x.StdinSocket, StdoutSocket: x.StdoutSocket, StderrSocket: x.StderrSocket, Killed: x.Killed}
	}
	if f := e.File; f != nil {
		r.File = &recFile{Op: bstr(f.Op), Path: bstr(f.Path), PathResolved: f.PathResolved, RawPath: bstr(f.RawPath),
			TargetPath: bstr(f.TargetPath), TargetPathResolved: f.TargetPathResolved, TargetRawPath: bstr(f.TargetRawPath),
			PathTruncated: f.PathTruncated, OpenFlags: f.OpenFlags, Mode: f.Mode, UID: f.UID, GID: f.GID,
			Inode: f.Inode, Device: f.Device, Write: f.Write, Watched: f.Watched}
	}
	if c := e.Cred; c != nil {
		r.Cred = &recCred{Op: bstr(c.Op), Args: c.Args, Old: recCreds(c.Old), New: recCreds(c.New)}
	}
	if n := e.Net; n != nil {
		r.Net = &recNet{Op: bstr(n.Op), Family: bstr(n.Family), Protocol: bstr(n.Protocol), Type: bstr(n.Type),
			Source: n.Source, Destination: n.Destination, FD: n.FD, Dir: bstr(n.Dir)}
		if q := n.DNS; q != nil {
			r.Net.DNS = &recDNS{ID: q.ID, Name: bstr(q.Name), Type: bstr(q.Type)}
		}
	}
	if k := e.Kernel; k != nil {
		r.Kernel = &recKernel{Op: bstr(k.Op), Flags: k.Flags, FlagNames: bstrs(k.FlagNames), Arg: k.Arg, ArgName: bstr(k.ArgName),
			TargetPID: k.TargetPID, Source: bstr(k.Source), Target: bstr(k.Target), FSType: bstr(k.FSType),
			Name: bstr(k.Name), Path: bstr(k.Path), Params: bstr(k.Params)}
	}
	if a := e.Alert; a != nil {
		r.Alert = &recAlert{RuleID: bstr(a.RuleID), RuleName: bstr(a.RuleName), Ruleset: bstr(a.Ruleset), Description: bstr(a.Description),
			Severity: uint8(a.Severity), Tags: bstrs(a.Tags), MITRE: bstrs(a.MITRE), Message: bstr(a.Message),
			Response: bstr(a.Response), DryRun: a.DryRun}
		if a.Trigger != nil {
			r.Alert.Trigger = toRec(a.Trigger)
		}
	}
	r.Origin, r.Container = uint8(e.Origin), toRecContainer(e.Container)
	if x := e.Response; x != nil {
		r.Response = &recResponse{RuleID: bstr(x.RuleID), Action: bstr(x.Action), Mechanism: bstr(x.Mechanism),
			Target: bstr(x.Target), Outcome: bstr(x.Outcome), Reason: bstr(x.Reason)}
	}
	return r
}

func toRecProcess(p *event.Process) recProcess {
	return recProcess{PID: p.PID, TID: p.TID, PPID: p.PPID, Start: p.Start, StartBoot: p.StartBoot,
		ParentStartBoot: p.ParentStartBoot, EntityID: bstr(p.EntityID), Name: bstr(p.Name),
		Executable: bstr(p.Executable), Script: bstr(p.Script), Filename: bstr(p.Filename), Args: bstrs(p.Args),
		ArgsCount: p.ArgsCount, ArgsTruncated: p.ArgsTruncated, WorkingDir: bstr(p.WorkingDir),
		PathTruncated: p.PathTruncated, UID: p.UID, GID: p.GID, EUID: p.EUID, EGID: p.EGID, AUID: p.AUID,
		SessionID: p.SessionID, CgroupID: p.CgroupID, FromProcfs: p.FromProcfs}
}

func (p *recProcess) process() event.Process {
	return event.Process{PID: p.PID, TID: p.TID, PPID: p.PPID, Start: p.Start, StartBoot: p.StartBoot,
		ParentStartBoot: p.ParentStartBoot, EntityID: string(p.EntityID), Name: string(p.Name),
		Executable: string(p.Executable), Script: string(p.Script), Filename: string(p.Filename), Args: strsOf(p.Args),
		ArgsCount: p.ArgsCount, ArgsTruncated: p.ArgsTruncated, WorkingDir: string(p.WorkingDir),
		PathTruncated: p.PathTruncated, UID: p.UID, GID: p.GID, EUID: p.EUID, EGID: p.EGID, AUID: p.AUID,
		SessionID: p.SessionID, CgroupID: p.CgroupID, FromProcfs: p.FromProcfs}
}

func (r *recEvent) event() (*event.Event, error) {
	kind, ok := parseKind(r.Kind)
	switch {
	case ok:
	case r.Kind == event.KindAlert.String():
		kind = event.KindAlert
	case r.Kind == event.KindResponse.String():
		kind = event.KindResponse
	case r.Kind == event.KindUnknown.String():
		kind = event.KindUnknown
	default:
		return nil, fmt.Errorf("unknown event kind %q", r.Kind)
	}
	e := &event.Event{Time: r.Time, Kind: kind, Process: r.Process.process(), Return: r.Return}
	if r.Parent != nil {
		p := r.Parent.process()
		e.Parent = &p
	}
	if r.Ancestors != nil {
		e.Ancestors = make([]event.Ancestor, len(r.Ancestors))
		for i, a := range r.Ancestors {
			e.Ancestors[i] = event.Ancestor{PID: a.PID, EntityID: string(a.EntityID), Name: string(a.Name),
				Executable: string(a.Executable), Args: strsOf(a.Args)}
		}
	}
	if x := r.Exit; x != nil {
		e.Exit = &event.ExitStatus{Code: x.Code, Signal: x.Signal, CoreDumped: x.CoreDumped}
	}
	if x := r.Exec; x != nil {
		e.Exec = &event.Exec{SecureExec: x.SecureExec, FileUnlinked: x.FileUnlinked,
			StdinSocket: x.StdinSocket, StdoutSocket: x.StdoutSocket, StderrSocket: x.StderrSocket, Killed: x.Killed}
	}
	if f := r.File; f != nil {
		e.File = &event.File{Op: event.FileOp(f.Op), Path: string(f.Path), PathResolved: f.PathResolved,
			RawPath: string(f.RawPath), TargetPath: string(f.TargetPath), TargetPathResolved: f.TargetPathResolved,
			TargetRawPath: string(f.TargetRawPath), PathTruncated: f.PathTruncated, OpenFlags: f.OpenFlags,
			Mode: f.Mode, UID: f.UID, GID: f.GID, Inode: f.Inode, Device: f.Device, Write: f.Write, Watched: f.Watched}
	}
	if c := r.Cred; c != nil {
		e.Cred = &event.Cred{Op: event.CredOp(c.Op), Args: c.Args, Old: event.Creds(c.Old), New: event.Creds(c.New)}
	}
	if n := r.Net; n != nil {
		e.Net = &event.Net{Op: event.NetOp(n.Op), Family: string(n.Family), Protocol: string(n.Protocol),
			Type: string(n.Type), Source: n.Source, Destination: n.Destination, FD: n.FD, Dir: string(n.Dir)}
		if q := n.DNS; q != nil {
			e.Net.DNS = &event.DNSQuestion{ID: q.ID, Name: string(q.Name), Type: string(q.Type)}
		}
	}
	if k := r.Kernel; k != nil {
		e.Kernel = &event.Kernel{Op: event.KernelOp(k.Op), Flags: k.Flags, FlagNames: strsOf(k.FlagNames), Arg: k.Arg,
			ArgName: string(k.ArgName), TargetPID: k.TargetPID, Source: string(k.Source), Target: string(k.Target),
			FSType: string(k.FSType), Name: string(k.Name), Path: string(k.Path), Params: string(k.Params)}
	}
	if a := r.Alert; a != nil {
		e.Alert = &event.Alert{RuleID: string(a.RuleID), RuleName: string(a.RuleName), Ruleset: string(a.Ruleset), Description: string(a.Description),
			Severity: event.Severity(a.Severity), Tags: strsOf(a.Tags), MITRE: strsOf(a.MITRE), Message: string(a.Message),
			Response: string(a.Response), DryRun: a.DryRun}
		if a.Trigger != nil {
			t, err := a.Trigger.event()
			if err != nil {
				return nil, fmt.Errorf("alert trigger: %w", err)
			}
			e.Alert.Trigger = t
		}
	}
	e.Origin, e.Container = event.Origin(r.Origin), r.Container.container()
	if x := r.Response; x != nil {
		e.Response = &event.Response{RuleID: string(x.RuleID), Action: string(x.Action), Mechanism: string(x.Mechanism),
			Target: string(x.Target), Outcome: string(x.Outcome), Reason: string(x.Reason)}
	}
	return e, nil
}
