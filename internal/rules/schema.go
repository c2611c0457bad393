package rules

import (
	"fmt"
	"path"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"

	"github.com/vigilsec/vigil/internal/event"
)

// The schema is the one table of the fields a condition can read: their CEL
// types, how they are read from an event.Event (for conditions and output
// templates) and how a test case writes them into one (for inline tests).

// objDef is a CEL object type: process, file, ...
type objDef struct {
	name   string // CEL type name, "vigil.Process"
	typ    *types.Type
	fields []*fieldDef
	byName map[string]*fieldDef
	fts    map[string]*types.FieldType
}

// fieldDef is one field of an object type.
type fieldDef struct {
	name string
	typ  *types.Type
	// obj is the type of an object field, or of the elements of a list of objects.
	obj *objDef
	get func(o *objVal) ref.Val
	// set writes a test event's value, typed by typ: string, int64, bool,
	// []string. Nil for fields derived from others.
	set func(e *event.Event, v any) error
	// derived names what to set instead, for fields without set.
	derived string
	// The field's value unboxed, for the fast paths: the one of its type is set.
	rawStr  func(o *objVal) string
	rawInt  func(o *objVal) int64
	rawBool func(o *objVal) bool
	// slot is the field's index in its object's per-event cache; -1 for
	// fields not worth caching (objects, which are preallocated).
	slot int
}

// schema holds the object types and the top-level variables.
type schema struct {
	objs map[string]*objDef
	vars []topVar
}

type topVar struct {
	name string
	obj  *objDef
	inst int
}

// Preallocated object instances of an evaluation: each top-level variable
// and each nested object has one, so reading a field allocates nothing.
const (
	instEvent = iota
	instProcess
	instParent
	instProcessIDs                        // 4 ids of the process: user, real_user, group, real_group
	instParentIDs    = instProcessIDs + 4 // and of the parent
	instUser         = instParentIDs + 4
	instGroup        = instUser + 1
	instFile         = instGroup + 1
	instSource       = instFile + 1
	instDest         = instSource + 1
	instNetwork      = instDest + 1
	instDNS          = instNetwork + 1
	instQuestion     = instDNS + 1
	instCred         = instQuestion + 1
	instCredOld      = instCred + 1
	instCredNew      = instCredOld + 1
	instKernel       = instCredNew + 1
	instContainer    = instKernel + 1
	instHost         = instContainer + 1
	instError        = instHost + 1
	instOrchestrator = instError + 1
	instOrchResource = instOrchestrator + 1
	numInst          = instOrchResource + 1
)

// Which id an ID object reads.
const (
	idEUID = iota
	idUID
	idEGID
	idGID
)

var getSchema = sync.OnceValue(newSchema)

func newSchema() *schema {
	s := &schema{objs: map[string]*objDef{}}
	obj := func(name string, fields ...*fieldDef) *objDef {
		d := &objDef{name: "vigil." + name, typ: types.NewObjectType("vigil." + name), fields: fields,
			byName: map[string]*fieldDef{}, fts: map[string]*types.FieldType{}}
		for i, f := range fields {
			f.slot = i
			if f.obj != nil && f.typ.Kind() == types.StructKind {
				f.slot = -1
			}
			d.byName[f.name] = f
			d.fts[f.name] = fieldType(f)
		}
		s.objs[d.name] = d
		return d
	}

	idObj := obj("ID", str("id", func(o *objVal) string { return uidString(o.idValue()) }, nil))
	for _, f := range idObj.fields {
		f.set = nil // set through the owning process's field below
	}
	ancestor := obj("Ancestor",
		num("pid", func(o *objVal) int64 { return int64(o.anc.PID) }, nil),
		str("entity_id", func(o *objVal) string { return o.anc.EntityID }, nil),
		str("name", func(o *objVal) string { return o.anc.Name }, nil),
		str("executable", func(o *objVal) string { return o.anc.Executable }, nil),
		strs("args", func(o *objVal) []string { return o.anc.Args }, nil),
	)
	parent := obj("ParentProcess", processFields(idObj, true, nil)...)
	process := obj("Process", processFields(idObj, false, &processExtras{parent: parent, ancestor: ancestor})...)

	ev := obj("Event",
		str("action", func(o *objVal) string { return action(o.c.e) }, setAction),
		str("kind", func(o *objVal) string { return o.c.e.Kind.String() }, setKind),
		str("outcome", func(o *objVal) string { return outcome(o.c.e) }, setOutcome),
	)
	user := obj("User",
		str("id", func(o *objVal) string { return uidString(o.c.e.Process.UID) }, setID(func(e *event.Event) *uint32 { return &e.Process.UID })),
		str("audit_id", func(o *objVal) string {
			if a := o.c.e.Process.AUID; a != event.NoUID {
				return uidString(a)
			}
			return ""
		}, setID(func(e *event.Event) *uint32 { return &e.Process.AUID })),
	)
	group := obj("Group",
		str("id", func(o *objVal) string { return uidString(o.c.e.Process.GID) }, setID(func(e *event.Event) *uint32 { return &e.Process.GID })),
	)

	fileOf := func(o *objVal) *event.File {
		if f := o.c.e.File; f != nil {
			return f
		}
		return &noFile
	}
	ensureFile := func(e *event.Event) *event.File {
		if e.File == nil {
			e.File = &event.File{UID: event.NoUID, GID: event.NoUID}
		}
		return e.File
	}
	file := obj("File",
		str("path", func(o *objVal) string { return fileOf(o).Path }, setStr(func(e *event.Event) *string { return &ensureFile(e).Path })),
		derivedStr("name", func(o *objVal) string { return basename(fileOf(o).Path) }, "file.path"),
		derivedStr("directory", func(o *objVal) string { return dirname(fileOf(o).Path) }, "file.path"),
		str("target_path", func(o *objVal) string { return fileOf(o).TargetPath }, setStr(func(e *event.Event) *string { return &ensureFile(e).TargetPath })),
		derivedStr("target_name", func(o *objVal) string { return basename(fileOf(o).TargetPath) }, "file.target_path"),
		derivedStr("target_directory", func(o *objVal) string { return dirname(fileOf(o).TargetPath) }, "file.target_path"),
		str("raw_path", func(o *objVal) string { return fileOf(o).RawPath }, setStr(func(e *event.Event) *string { return &ensureFile(e).RawPath })),
		str("target_raw_path", func(o *objVal) string { return fileOf(o).TargetRawPath }, setStr(func(e *event.Event) *string { return &ensureFile(e).TargetRawPath })),
		num("mode", func(o *objVal) int64 { return int64(fileOf(o).Mode & 0o7777) }, setU32(func(e *event.Event) *uint32 { return &ensureFile(e).Mode })),
		str("uid", func(o *objVal) string { return optUID(fileOf(o).UID) }, setID(func(e *event.Event) *uint32 { return &ensureFile(e).UID })),
		str("gid", func(o *objVal) string { return optUID(fileOf(o).GID) }, setID(func(e *event.Event) *uint32 { return &ensureFile(e).GID })),
		flag("write", func(o *objVal) bool { return fileOf(o).Write }, setBool(func(e *event.Event) *bool { return &ensureFile(e).Write })),
		flag("watched", func(o *objVal) bool { return fileOf(o).Watched }, setBool(func(e *event.Event) *bool { return &ensureFile(e).Watched })),
		str("op", func(o *objVal) string { return string(fileOf(o).Op) }, func(e *event.Event, v any) error {
			op := event.FileOp(v.(string))
			if !fileOps[op] {
				return fmt.Errorf("unknown file operation %q", op)
			}
			ensureFile(e).Op = op
			return nil
		}),
		flag("created", func(o *objVal) bool { return fileOf(o).Op == event.FileCreate }, func(e *event.Event, v any) error {
			if v.(bool) {
				ensureFile(e).Op = event.FileCreate
			}
			return nil
		}),
		flag("path_resolved", func(o *objVal) bool { return fileOf(o).PathResolved }, setBool(func(e *event.Event) *bool { return &ensureFile(e).PathResolved })),
		num("open_flags", func(o *objVal) int64 { return int64(fileOf(o).OpenFlags) }, setU32(func(e *event.Event) *uint32 { return &ensureFile(e).OpenFlags })),
	)

	netOf := func(o *objVal) *event.Net {
		if n := o.c.e.Net; n != nil {
			return n
		}
		return &noNet
	}
	ensureNet := func(e *event.Event) *event.Net {
		if e.Net == nil {
			e.Net = &event.Net{}
		}
		return e.Net
	}
	endpoint := obj("Endpoint",
		str("ip", func(o *objVal) string {
			if a := o.endpoint(); a.IsValid() {
				return a.Addr().String()
			}
			return ""
		}, nil),
		num("port", func(o *objVal) int64 { return int64(o.endpoint().Port()) }, nil),
	)
	network := obj("Network",
		str("type", func(o *objVal) string { return netOf(o).Family }, setStr(func(e *event.Event) *string { return &ensureNet(e).Family })),
		str("transport", func(o *objVal) string { return netOf(o).Protocol }, setStr(func(e *event.Event) *string { return &ensureNet(e).Protocol })),
		str("direction", func(o *objVal) string { return direction(o.c.e.Net) }, func(e *event.Event, v any) error {
			d := v.(string)
			if d != "ingress" && d != "egress" {
				return fmt.Errorf("direction %q is not ingress or egress", d)
			}
			ensureNet(e).Dir = d
			return nil
		}),
	)
	question := obj("DNSQuestion",
		str("name", func(o *objVal) string { return dnsOf(o.c.e).Name }, setStr(func(e *event.Event) *string { return &ensureDNS(e).Name })),
		str("type", func(o *objVal) string { return dnsOf(o.c.e).Type }, setStr(func(e *event.Event) *string { return &ensureDNS(e).Type })),
	)
	dns := obj("DNS", object("question", question, func(o *objVal) *objVal { return &o.c.inst[instQuestion] }))

	credOf := func(o *objVal) *event.Cred {
		if c := o.c.e.Cred; c != nil {
			return c
		}
		return &noCred
	}
	ensureCred := func(e *event.Event) *event.Cred {
		if e.Cred == nil {
			e.Cred = &event.Cred{}
		}
		return e.Cred
	}
	creds := obj("Creds", credsFields()...)
	cred := obj("Cred",
		str("op", func(o *objVal) string { return string(credOf(o).Op) }, func(e *event.Event, v any) error {
			op := event.CredOp(v.(string))
			if !credOps[op] {
				return fmt.Errorf("unknown credential operation %q", op)
			}
			ensureCred(e).Op = op
			return nil
		}),
		&fieldDef{name: "args", typ: types.NewListType(types.IntType), get: func(o *objVal) ref.Val {
			args := credOf(o).Args
			vals := make([]ref.Val, len(args))
			for i, a := range args {
				vals[i] = types.Int(a)
			}
			return types.NewRefValList(types.DefaultTypeAdapter, vals)
		}, set: func(e *event.Event, v any) error {
			var args []uint32
			for _, n := range v.([]int64) {
				if n < 0 || n > 1<<32-1 {
					return fmt.Errorf("%d is out of range", n)
				}
				args = append(args, uint32(n))
			}
			ensureCred(e).Args = args
			return nil
		}},
		object("old", creds, func(o *objVal) *objVal { return &o.c.inst[instCredOld] }),
		object("new", creds, func(o *objVal) *objVal { return &o.c.inst[instCredNew] }),
	)

	kernelOf := func(o *objVal) *event.Kernel {
		if k := o.c.e.Kernel; k != nil {
			return k
		}
		return &noKernel
	}
	ensureKernel := func(e *event.Event) *event.Kernel {
		if e.Kernel == nil {
			e.Kernel = &event.Kernel{}
		}
		return e.Kernel
	}
	kstr := func(name string, f func(k *event.Kernel) *string) *fieldDef {
		return str(name, func(o *objVal) string { return *f(kernelOf(o)) }, setStr(func(e *event.Event) *string { return f(ensureKernel(e)) }))
	}
	kernel := obj("Kernel",
		str("op", func(o *objVal) string { return string(kernelOf(o).Op) }, func(e *event.Event, v any) error {
			op := event.KernelOp(v.(string))
			if !kernelOps[op] {
				return fmt.Errorf("unknown kernel operation %q", op)
			}
			ensureKernel(e).Op = op
			return nil
		}),
		strs("flags", func(o *objVal) []string { return kernelOf(o).FlagNames }, func(e *event.Event, v any) error {
			ensureKernel(e).FlagNames = v.([]string)
			return nil
		}),
		num("arg", func(o *objVal) int64 { return int64(kernelOf(o).Arg) }, func(e *event.Event, v any) error {
			ensureKernel(e).Arg = uint64(v.(int64))
			return nil
		}),
		kstr("arg_name", func(k *event.Kernel) *string { return &k.ArgName }),
		num("target_pid", func(o *objVal) int64 { return int64(kernelOf(o).TargetPID) }, setU32(func(e *event.Event) *uint32 { return &ensureKernel(e).TargetPID })),
		kstr("source", func(k *event.Kernel) *string { return &k.Source }),
		kstr("target", func(k *event.Kernel) *string { return &k.Target }),
		kstr("fstype", func(k *event.Kernel) *string { return &k.FSType }),
		kstr("name", func(k *event.Kernel) *string { return &k.Name }),
		kstr("path", func(k *event.Kernel) *string { return &k.Path }),
		kstr("params", func(k *event.Kernel) *string { return &k.Params }),
	)

	// Containers, as container attribution fills them: empty on the host.
	ctr := func(o *objVal) *event.Container {
		if c := o.c.e.Container; c != nil {
			return c
		}
		return &noContainer
	}
	ensureCtr := func(e *event.Event) *event.Container {
		if e.Container == nil {
			e.Container = &event.Container{}
			e.Origin = event.OriginContainer
		}
		return e.Container
	}
	cstr := func(name string, f func(c *event.Container) *string) *fieldDef {
		return str(name, func(o *objVal) string { return *f(ctr(o)) }, setStr(func(e *event.Event) *string { return f(ensureCtr(e)) }))
	}
	container := obj("Container",
		cstr("id", func(c *event.Container) *string { return &c.ID }),
		cstr("name", func(c *event.Container) *string { return &c.Name }),
		cstr("image", func(c *event.Container) *string { return &c.Image }),
		cstr("runtime", func(c *event.Container) *string { return &c.Runtime }),
		flag("host", func(o *objVal) bool { return o.c.e.Origin == event.OriginHost }, func(e *event.Event, v any) error {
			if v.(bool) {
				e.Origin, e.Container = event.OriginHost, nil
			}
			return nil
		}),
	)
	// Kubernetes, from the container's pod.
	pod := func(o *objVal) *event.Pod {
		if c := o.c.e.Container; c != nil && c.Pod != nil {
			return c.Pod
		}
		return &noPod
	}
	ensurePod := func(e *event.Event) *event.Pod {
		c := ensureCtr(e)
		if c.Pod == nil {
			c.Pod = &event.Pod{}
		}
		return c.Pod
	}
	pstrK := func(name string, f func(p *event.Pod) *string) *fieldDef {
		return str(name, func(o *objVal) string { return *f(pod(o)) }, setStr(func(e *event.Event) *string { return f(ensurePod(e)) }))
	}
	resource := obj("OrchestratorResource",
		pstrK("name", func(p *event.Pod) *string { return &p.Name }),
		pstrK("id", func(p *event.Pod) *string { return &p.UID }),
		derivedStr("type", func(o *objVal) string {
			if pod(o) != &noPod {
				return "pod"
			}
			return ""
		}, "orchestrator.resource.name"),
	)
	orchestrator := obj("Orchestrator",
		derivedStr("type", func(o *objVal) string {
			if pod(o) != &noPod {
				return "kubernetes"
			}
			return ""
		}, "orchestrator.resource.name"),
		pstrK("namespace", func(p *event.Pod) *string { return &p.Namespace }),
		object("resource", resource, func(o *objVal) *objVal { return &o.c.inst[instOrchResource] }),
	)
	host := obj("Host", derivedStr("name", func(o *objVal) string { return o.c.host }, ""))
	errObj := obj("Error", str("code", func(o *objVal) string { return errorCode(o.c.e) }, setErrorCode))

	s.vars = []topVar{
		{"event", ev, instEvent},
		{"process", process, instProcess},
		{"user", user, instUser},
		{"group", group, instGroup},
		{"file", file, instFile},
		{"source", endpoint, instSource},
		{"destination", endpoint, instDest},
		{"network", network, instNetwork},
		{"dns", dns, instDNS},
		{"cred", cred, instCred},
		{"kernel", kernel, instKernel},
		{"container", container, instContainer},
		{"host", host, instHost},
		{"error", errObj, instError},
		{"orchestrator", orchestrator, instOrchestrator},
	}
	return s
}

// processExtras are the fields of process that process.parent lacks.
type processExtras struct {
	parent, ancestor *objDef
}

func processFields(idObj *objDef, isParent bool, x *processExtras) []*fieldDef {
	// target is the process a test event writes.
	target := func(e *event.Event) *event.Process { return &e.Process }
	if isParent {
		target = func(e *event.Event) *event.Process {
			if e.Parent == nil {
				e.Parent = &event.Process{AUID: event.NoUID, SessionID: event.NoUID}
			}
			return e.Parent
		}
	}
	pstr := func(name string, f func(p *event.Process) *string) *fieldDef {
		return str(name, func(o *objVal) string { return *f(o.process()) }, setStr(func(e *event.Event) *string { return f(target(e)) }))
	}
	pflag := func(name string, f func(p *event.Process) *bool) *fieldDef {
		return flag(name, func(o *objVal) bool { return *f(o.process()) }, setBool(func(e *event.Event) *bool { return f(target(e)) }))
	}
	ids := instProcessIDs
	if isParent {
		ids = instParentIDs
	}
	id := func(name string, which int, f func(p *event.Process) *uint32) *fieldDef {
		d := object(name, idObj, func(o *objVal) *objVal { return &o.c.inst[ids+which] })
		d.set = setID(func(e *event.Event) *uint32 { return f(target(e)) })
		return d
	}
	fields := []*fieldDef{
		num("pid", func(o *objVal) int64 {
			if o.parent && o.c.e.Parent == nil {
				return int64(o.c.e.Process.PPID)
			}
			return int64(o.process().PID)
		}, setU32(func(e *event.Event) *uint32 { return &target(e).PID })),
		pstr("name", func(p *event.Process) *string { return &p.Name }),
		pstr("executable", func(p *event.Process) *string { return &p.Executable }),
		strs("args", func(o *objVal) []string { return o.process().Args }, func(e *event.Event, v any) error {
			target(e).Args = v.([]string)
			return nil
		}),
		num("args_count", func(o *objVal) int64 {
			p := o.process()
			if p.ArgsCount == 0 {
				return int64(len(p.Args))
			}
			return int64(p.ArgsCount)
		}, func(e *event.Event, v any) error {
			target(e).ArgsCount = int(v.(int64))
			return nil
		}),
		derivedStr("command_line", func(o *objVal) string { return strings.Join(o.process().Args, " ") }, "process.args"),
		pstr("working_directory", func(p *event.Process) *string { return &p.WorkingDir }),
		pstr("entity_id", func(p *event.Process) *string { return &p.EntityID }),
		id("user", idEUID, func(p *event.Process) *uint32 { return &p.EUID }),
		id("real_user", idUID, func(p *event.Process) *uint32 { return &p.UID }),
		id("group", idEGID, func(p *event.Process) *uint32 { return &p.EGID }),
		id("real_group", idGID, func(p *event.Process) *uint32 { return &p.GID }),
		pstr("script", func(p *event.Process) *string { return &p.Script }),
		pstr("filename", func(p *event.Process) *string { return &p.Filename }),
		pflag("args_truncated", func(p *event.Process) *bool { return &p.ArgsTruncated }),
		pflag("path_truncated", func(p *event.Process) *bool { return &p.PathTruncated }),
		pflag("from_procfs", func(p *event.Process) *bool { return &p.FromProcfs }),
		num("cgroup_id", func(o *objVal) int64 { return int64(o.process().CgroupID) }, func(e *event.Event, v any) error {
			target(e).CgroupID = uint64(v.(int64))
			return nil
		}),
	}
	if x == nil {
		return fields
	}
	ensureExec := func(e *event.Event) *event.Exec {
		if e.Exec == nil {
			e.Exec = &event.Exec{}
		}
		return e.Exec
	}
	xflag := func(name string, f func(x *event.Exec) *bool) *fieldDef {
		return flag(name, func(o *objVal) bool {
			if x := o.c.e.Exec; x != nil {
				return *f(x)
			}
			return false
		}, setBool(func(e *event.Event) *bool { return f(ensureExec(e)) }))
	}
	return append(fields,
		num("exit_code", func(o *objVal) int64 {
			if x := o.c.e.Exit; x != nil {
				return int64(x.Code)
			}
			return 0
		}, func(e *event.Event, v any) error {
			if e.Exit == nil {
				e.Exit = &event.ExitStatus{}
			}
			e.Exit.Code = int(v.(int64))
			return nil
		}),
		num("exit_signal", func(o *objVal) int64 {
			if x := o.c.e.Exit; x != nil {
				return int64(x.Signal)
			}
			return 0
		}, func(e *event.Event, v any) error {
			if e.Exit == nil {
				e.Exit = &event.ExitStatus{}
			}
			e.Exit.Signal = int(v.(int64))
			return nil
		}),
		xflag("secure_exec", func(x *event.Exec) *bool { return &x.SecureExec }),
		xflag("file_unlinked", func(x *event.Exec) *bool { return &x.FileUnlinked }),
		xflag("stdin_socket", func(x *event.Exec) *bool { return &x.StdinSocket }),
		xflag("stdout_socket", func(x *event.Exec) *bool { return &x.StdoutSocket }),
		xflag("stderr_socket", func(x *event.Exec) *bool { return &x.StderrSocket }),
		object("parent", x.parent, func(o *objVal) *objVal { return &o.c.inst[instParent] }),
		&fieldDef{name: "ancestors", typ: types.NewListType(x.ancestor.typ), obj: x.ancestor,
			get: func(o *objVal) ref.Val { return o.c.ancestors() }},
	)
}

func credsFields() []*fieldDef {
	c := func(name string, f func(c *event.Creds) *uint32) *fieldDef {
		return num(name, func(o *objVal) int64 { return int64(*f(o.creds())) }, nil)
	}
	return []*fieldDef{
		c("uid", func(c *event.Creds) *uint32 { return &c.UID }),
		c("euid", func(c *event.Creds) *uint32 { return &c.EUID }),
		c("suid", func(c *event.Creds) *uint32 { return &c.SUID }),
		c("fsuid", func(c *event.Creds) *uint32 { return &c.FSUID }),
		c("gid", func(c *event.Creds) *uint32 { return &c.GID }),
		c("egid", func(c *event.Creds) *uint32 { return &c.EGID }),
		c("sgid", func(c *event.Creds) *uint32 { return &c.SGID }),
		c("fsgid", func(c *event.Creds) *uint32 { return &c.FSGID }),
		num("cap_effective", func(o *objVal) int64 { return int64(o.creds().CapEffective) }, nil),
		num("cap_permitted", func(o *objVal) int64 { return int64(o.creds().CapPermitted) }, nil),
	}
}

// Field constructors.

func str(name string, get func(o *objVal) string, set func(e *event.Event, v any) error) *fieldDef {
	return &fieldDef{name: name, typ: types.StringType, get: func(o *objVal) ref.Val { return types.String(get(o)) }, set: set, rawStr: get}
}

func derivedStr(name string, get func(o *objVal) string, from string) *fieldDef {
	d := str(name, get, nil)
	d.derived = from
	return d
}

func num(name string, get func(o *objVal) int64, set func(e *event.Event, v any) error) *fieldDef {
	return &fieldDef{name: name, typ: types.IntType, get: func(o *objVal) ref.Val { return boxInt(get(o)) }, set: set, rawInt: get}
}

// boxInt makes a CEL int without allocating for the values fields mostly
// hold (modes up to 0o7777, open flags, ports below 4096, small pids):
// boxing an int64 into an interface allocates above 255.
func boxInt(n int64) ref.Val {
	if n >= 0 && n < int64(len(smallInts)) {
		return smallInts[n]
	}
	return types.Int(n)
}

var smallInts = func() (v [4096]ref.Val) {
	for i := range v {
		v[i] = types.Int(i)
	}
	return v
}()

func flag(name string, get func(o *objVal) bool, set func(e *event.Event, v any) error) *fieldDef {
	return &fieldDef{name: name, typ: types.BoolType, get: func(o *objVal) ref.Val { return types.Bool(get(o)) }, set: set, rawBool: get}
}

func strs(name string, get func(o *objVal) []string, set func(e *event.Event, v any) error) *fieldDef {
	return &fieldDef{name: name, typ: types.NewListType(types.StringType), set: set,
		get: func(o *objVal) ref.Val { return types.NewStringList(types.DefaultTypeAdapter, get(o)) }}
}

func object(name string, d *objDef, inst func(o *objVal) *objVal) *fieldDef {
	return &fieldDef{name: name, typ: d.typ, obj: d, get: func(o *objVal) ref.Val { return inst(o) }}
}

func fieldType(f *fieldDef) *types.FieldType {
	return &types.FieldType{
		Type:  f.typ,
		IsSet: func(any) bool { return true },
		GetFrom: func(target any) (any, error) {
			o, ok := target.(*objVal)
			if !ok {
				return nil, fmt.Errorf("no field %q on %T", f.name, target)
			}
			return readField(o, f), nil
		},
	}
}

// Setters for test events.

func setStr(f func(e *event.Event) *string) func(e *event.Event, v any) error {
	return func(e *event.Event, v any) error {
		*f(e) = v.(string)
		return nil
	}
}

func setBool(f func(e *event.Event) *bool) func(e *event.Event, v any) error {
	return func(e *event.Event, v any) error {
		*f(e) = v.(bool)
		return nil
	}
}

func setU32(f func(e *event.Event) *uint32) func(e *event.Event, v any) error {
	return func(e *event.Event, v any) error {
		n := v.(int64)
		if n < 0 || n > 1<<32-1 {
			return fmt.Errorf("%d is out of range", n)
		}
		*f(e) = uint32(n)
		return nil
	}
}

// setID writes an id written as in ECS, a decimal string.
func setID(f func(e *event.Event) *uint32) func(e *event.Event, v any) error {
	return func(e *event.Event, v any) error {
		n, err := strconv.ParseUint(v.(string), 10, 32)
		if err != nil {
			return fmt.Errorf("id %q is not a decimal number", v)
		}
		*f(e) = uint32(n)
		return nil
	}
}

func setAction(e *event.Event, v any) error {
	a := v.(string)
	switch {
	case a == "exec" || a == "fork" || a == "exit":
		k, _ := parseKind(a)
		e.Kind = k
	case fileOps[event.FileOp(a)]:
		e.Kind = event.KindFile
		if e.File == nil {
			e.File = &event.File{UID: event.NoUID, GID: event.NoUID}
		}
		e.File.Op = event.FileOp(a)
	case netOps[event.NetOp(a)]:
		e.Kind = event.KindNet
		if e.Net == nil {
			e.Net = &event.Net{}
		}
		e.Net.Op = event.NetOp(a)
	case credOps[event.CredOp(a)]:
		e.Kind = event.KindCred
		if e.Cred == nil {
			e.Cred = &event.Cred{}
		}
		e.Cred.Op = event.CredOp(a)
	case kernelOps[event.KernelOp(a)]:
		e.Kind = event.KindKernel
		if e.Kernel == nil {
			e.Kernel = &event.Kernel{}
		}
		e.Kernel.Op = event.KernelOp(a)
	default:
		return fmt.Errorf("unknown action %q", a)
	}
	return nil
}

func setKind(e *event.Event, v any) error {
	k, ok := parseKind(v.(string))
	if !ok {
		return fmt.Errorf("unknown event kind %q (want %s)", v, kindList())
	}
	e.Kind = k
	return nil
}

func setOutcome(e *event.Event, v any) error {
	switch v.(string) {
	case "success":
		e.Return = 0
	case "failure":
		if e.Return >= 0 {
			e.Return = -1 // EPERM
		}
	default:
		return fmt.Errorf("outcome is success or failure, not %q", v)
	}
	return nil
}

func setErrorCode(e *event.Event, v any) error {
	name := v.(string)
	for errno := int64(1); errno < 4096; errno++ {
		if event.ErrnoName(errno) == name {
			e.Return = -errno
			return nil
		}
	}
	return fmt.Errorf("unknown error code %q", name)
}

// Derived values, computed as the ECS document does.

func action(e *event.Event) string {
	switch {
	case e.File != nil:
		return string(e.File.Op)
	case e.Cred != nil:
		return string(e.Cred.Op)
	case e.Net != nil:
		return string(e.Net.Op)
	case e.Kernel != nil:
		return string(e.Kernel.Op)
	}
	return e.Kind.String()
}

func hasOutcome(k event.Kind) bool {
	return k == event.KindFile || k == event.KindCred || k == event.KindNet || k == event.KindKernel
}

func outcome(e *event.Event) string {
	if !hasOutcome(e.Kind) {
		return ""
	}
	if e.Return < 0 {
		return "failure"
	}
	return "success"
}

func errorCode(e *event.Event) string {
	if hasOutcome(e.Kind) && e.Return < 0 {
		return event.ErrnoName(-e.Return)
	}
	return ""
}

func direction(n *event.Net) string {
	if n == nil {
		return ""
	}
	return n.Direction()
}

func dnsOf(e *event.Event) *event.DNSQuestion {
	if e.Net != nil && e.Net.DNS != nil {
		return e.Net.DNS
	}
	return &noDNS
}

func ensureDNS(e *event.Event) *event.DNSQuestion {
	if e.Net == nil {
		e.Net = &event.Net{}
	}
	if e.Net.DNS == nil {
		e.Net.DNS = &event.DNSQuestion{}
	}
	return e.Net.DNS
}

func uidString(id uint32) string {
	if id < uint32(len(smallIDs)) {
		return smallIDs[id]
	}
	if id == 65534 { // nobody
		return "65534"
	}
	return strconv.FormatUint(uint64(id), 10)
}

// smallIDs are the strings of the ids most events carry (root, system
// accounts, the first users), made once so that reading user.id does not
// allocate.
var smallIDs = func() (ids [2048]string) {
	for i := range ids {
		ids[i] = strconv.Itoa(i)
	}
	return ids
}()

// optUID renders an optional id: empty when unset.
func optUID(id uint32) string {
	if id == event.NoUID {
		return ""
	}
	return uidString(id)
}

// basename and dirname are path.Base and path.Dir, except that the empty
// path stays empty rather than becoming ".".
func basename(p string) string {
	if p == "" {
		return ""
	}
	return path.Base(p)
}

func dirname(p string) string {
	if p == "" {
		return ""
	}
	return path.Dir(p)
}

// Zero values read when an event lacks the part a field lives in.
var (
	noProcess = event.Process{AUID: event.NoUID, SessionID: event.NoUID}
	noFile    = event.File{UID: event.NoUID, GID: event.NoUID}
	noNet     event.Net
	noDNS     event.DNSQuestion
	noCred    event.Cred
	noKernel  event.Kernel
	// noContainer and noPod are read for host processes.
	noContainer event.Container
	noPod       event.Pod
)

var (
	fileOps = setOf(event.FileOpen, event.FileCreate, event.FileUnlink, event.FileRmdir, event.FileRename, event.FileChmod,
		event.FileChown, event.FileLink, event.FileSymlink, event.FileTruncate, event.FileMkdir)
	netOps  = setOf(event.NetConnect, event.NetBind, event.NetListen, event.NetAccept, event.NetDNS, event.NetPayload)
	credOps = setOf(event.CredSetuid, event.CredSetgid, event.CredSetreuid, event.CredSetregid, event.CredSetresuid,
		event.CredSetresgid, event.CredSetfsuid, event.CredSetfsgid, event.CredSetgroups, event.CredCapset)
	kernelOps = setOf(event.KernelUnshare, event.KernelSetns, event.KernelCloneNS, event.KernelMount, event.KernelUmount,
		event.KernelPivotRoot, event.KernelPtrace, event.KernelModuleLoad, event.KernelMemfdCreate, event.KernelExecveat,
		event.KernelBPF, event.KernelSignalAgent)
)

func setOf[T comparable](vs ...T) map[T]bool {
	m := make(map[T]bool, len(vs))
	for _, v := range vs {
		m[v] = true
	}
	return m
}

func parseKind(name string) (event.Kind, bool) {
	for _, k := range event.Kinds() {
		if k.String() == name {
			return k, true
		}
	}
	return 0, false
}

func kindList() string {
	var names []string
	for _, k := range event.Kinds() {
		names = append(names, k.String())
	}
	return strings.Join(names, ", ")
}

// lookupField resolves a dotted field path ("process.parent.name").
func (s *schema) lookupField(p string) (*fieldDef, bool) {
	parts := strings.Split(p, ".")
	var cur *objDef
	for _, v := range s.vars {
		if v.name == parts[0] {
			cur = v.obj
		}
	}
	if cur == nil || len(parts) < 2 {
		return nil, false
	}
	for i, name := range parts[1:] {
		f, ok := cur.byName[name]
		if !ok {
			return nil, false
		}
		if i == len(parts)-2 {
			return f, true
		}
		if f.obj == nil || f.typ.Kind() != types.StructKind {
			return nil, false
		}
		cur = f.obj
	}
	return nil, false
}

// Field describes a field conditions can read.
type Field struct {
	Name string // "process.parent.name"
	Type string // "string", "int", "bool", "list(string)", ...
}

// Fields lists every field conditions and output templates can read, in order.
func Fields() []Field {
	s := getSchema()
	var out []Field
	var walk func(prefix string, d *objDef)
	walk = func(prefix string, d *objDef) {
		for _, f := range d.fields {
			name := prefix + "." + f.name
			if f.obj != nil && f.typ.Kind() == types.StructKind {
				walk(name, f.obj)
				continue
			}
			typ := f.typ.String()
			if f.obj != nil {
				typ = "list(" + strings.TrimPrefix(f.obj.name, "vigil.") + ")"
				out = append(out, Field{Name: name, Type: typ})
				for _, af := range f.obj.fields {
					out = append(out, Field{Name: name + "[]." + af.name, Type: af.typ.String()})
				}
				continue
			}
			out = append(out, Field{Name: name, Type: typ})
		}
	}
	for _, v := range s.vars {
		walk(v.name, v.obj)
	}
	return out
}

// fieldNames lists the names of an object's fields, for suggestions.
func (d *objDef) fieldNames() []string {
	names := make([]string, 0, len(d.fields))
	for _, f := range d.fields {
		names = append(names, f.name)
	}
	sort.Strings(names)
	return names
}
