package event

import (
	"path"
	"strconv"
)

// kindDoc adds the fields particular to file, cred, net and kernel events.
func (e *Event) kindDoc(d *Document) {
	switch {
	case e.Alert != nil:
		alertDoc(e.Alert, d)
	case e.Response != nil:
		responseDoc(e.Response, d)
	case e.File != nil:
		fileDoc(e.File, d)
	case e.Cred != nil:
		c := e.Cred
		d.Event.Category, d.Event.Type, d.Event.Action = []string{"process"}, []string{"change"}, string(c.Op)
		d.Vigil.Cred = &vigilCred{Op: c.Op, Args: c.Args, Old: credsDoc(c.Old), New: credsDoc(c.New)}
	case e.Net != nil:
		netDoc(e.Net, d)
	case e.Kernel != nil:
		k := e.Kernel
		d.Event.Action = string(k.Op)
		switch k.Op {
		case KernelMount, KernelUmount, KernelPivotRoot:
			d.Event.Category, d.Event.Type = []string{"configuration"}, []string{"change"}
		case KernelModuleLoad:
			d.Event.Category, d.Event.Type = []string{"driver"}, []string{"start"}
		case KernelPtrace, KernelSignalAgent, KernelPidfdAgent:
			d.Event.Category, d.Event.Type = []string{"process"}, []string{"access"}
		default:
			d.Event.Category, d.Event.Type = []string{"process"}, []string{"change"}
		}
		d.Vigil.Kernel = &vigilKernel{Op: k.Op, Flags: k.Flags, FlagNames: k.FlagNames, Arg: k.Arg, ArgName: k.ArgName,
			TargetPID: k.TargetPID, Source: k.Source, Target: k.Target, FSType: k.FSType, Name: k.Name, Path: k.Path, Params: k.Params}
	}
}

var fileTypes = map[FileOp]string{
	FileCreate: "creation", FileMkdir: "creation", FileLink: "creation", FileSymlink: "creation",
	FileUnlink: "deletion", FileRmdir: "deletion",
	FileRename: "change", FileChmod: "change", FileChown: "change", FileTruncate: "change",
}

func fileDoc(f *File, d *Document) {
	typ := fileTypes[f.Op]
	if f.Op == FileOpen {
		typ = "access"
		if f.Write {
			typ = "change"
		}
	}
	d.Event.Category, d.Event.Type, d.Event.Action = []string{"file"}, []string{typ}, string(f.Op)
	d.File = &ecsFile{
		Path:       f.Path,
		Name:       path.Base(f.Path),
		Directory:  path.Dir(f.Path),
		TargetPath: f.TargetPath,
	}
	if f.Inode != 0 {
		d.File.Inode = strconv.FormatUint(f.Inode, 10)
		d.File.Device = strconv.FormatUint(uint64(f.Device>>20), 10) + ":" + strconv.FormatUint(uint64(f.Device&0xfffff), 10)
	}
	switch f.Op {
	case FileChmod, FileMkdir, FileCreate:
		d.File.Mode = "0" + strconv.FormatUint(uint64(f.Mode&0o7777), 8)
	case FileChown:
		if f.UID != NoUID {
			d.File.UID = uidString(f.UID)
		}
		if f.GID != NoUID {
			d.File.GID = uidString(f.GID)
		}
	}
	d.Vigil.File = &vigilFile{Op: f.Op, RawPath: f.RawPath, PathResolved: f.PathResolved, TargetRawPath: f.TargetRawPath,
		TargetPathResolved: f.TargetPathResolved, PathTruncated: f.PathTruncated, OpenFlags: f.OpenFlags,
		Write: f.Write, Watched: f.Watched}
}

func credsDoc(c Creds) credsJSON {
	return credsJSON{UID: c.UID, EUID: c.EUID, SUID: c.SUID, FSUID: c.FSUID, GID: c.GID, EGID: c.EGID, SGID: c.SGID, FSGID: c.FSGID,
		CapEffective: "0x" + strconv.FormatUint(c.CapEffective, 16), CapPermitted: "0x" + strconv.FormatUint(c.CapPermitted, 16)}
}

func netDoc(n *Net, d *Document) {
	d.Event.Category, d.Event.Action = []string{"network"}, string(n.Op)
	d.Network = &ecsNetwork{Type: n.Family, Transport: n.Protocol}
	d.Network.Direction = n.Direction()
	switch n.Op {
	case NetConnect, NetDNS, NetAccept:
		d.Event.Type = []string{"connection", "start"}
	default:
		d.Event.Type = []string{"info"}
	}
	if n.Source.IsValid() {
		d.Source = &ecsEndpoint{IP: n.Source.Addr().String(), Port: n.Source.Port()}
	}
	if n.Destination.IsValid() {
		d.Destination = &ecsEndpoint{IP: n.Destination.Addr().String(), Port: n.Destination.Port()}
	}
	if q := n.DNS; q != nil {
		d.DNS = &ecsDNS{ID: strconv.Itoa(int(q.ID)), Type: "query", Question: ecsDNSQuestion{Name: q.Name, Type: q.Type}}
	}
	d.Vigil.Net = &vigilNet{Op: n.Op, Family: n.Family, Type: n.Type, FD: n.FD}
}

// alertDoc renders a detection: ECS rule.*, threat.*, message, and the
// triggering event's own document under vigil.alert.trigger.
func alertDoc(a *Alert, d *Document) {
	d.Event.Kind, d.Event.Dataset, d.Event.Action = "alert", "vigil.alert", a.RuleID
	d.Event.Category, d.Event.Type = []string{"intrusion_detection"}, []string{"info"}
	d.Event.Severity = int(a.Severity)
	d.Rule = &ecsRule{ID: a.RuleID, Name: a.RuleName, Ruleset: a.Ruleset, Description: a.Description}
	d.Message = a.Message
	d.Tags = a.Tags
	if len(a.MITRE) > 0 {
		d.Threat = &ecsThreat{Framework: "MITRE ATT&CK"}
		for _, id := range a.MITRE {
			d.Threat.Technique = append(d.Threat.Technique, ecsTechnique{ID: id})
		}
	}
	d.Vigil.Alert = &vigilAlert{Severity: a.Severity.String(), Response: a.Response, DryRun: a.DryRun}
	if a.Trigger != nil {
		td := a.Trigger.Doc(nil, 0)
		d.Vigil.Alert.Trigger = &td
		// The alert is about the trigger's objects: surface them at the top.
		d.File, d.Source, d.Destination, d.Network, d.DNS = td.File, td.Source, td.Destination, td.Network, td.DNS
	}
}
