package rules

import (
	"fmt"
	"net/netip"
	"reflect"

	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/interpreter"

	"github.com/vigilsec/vigil/internal/event"
)

// evalCtx is the activation conditions are evaluated against: it exposes one
// event lazily, field by field, through preallocated object values, and
// caches each field it boxed for the rest of the event. It is reused from
// event to event and is not safe for concurrent use.
type evalCtx struct {
	e    *event.Event
	gen  uint64 // bumped per event: cached fields of older events are stale
	host string

	inst  [numInst]objVal
	cache []cacheEntry

	// Reused from event to event for process.ancestors.
	ancDef  *objDef
	ancs    []objVal
	ancVals []ref.Val

	frame *interpreter.ExecutionFrame
}

type cacheEntry struct {
	gen uint64
	v   ref.Val
}

// objVal is the CEL value of an object: one of the preallocated instances
// (process, process.parent, file, ...) or an element of process.ancestors.
type objVal struct {
	def *objDef
	c   *evalCtx
	// slots caches the object's fields for the current event; nil for ancestors.
	slots []cacheEntry

	parent bool // process.parent, or an id of the parent
	which  int  // an id object's id (idEUID...), an endpoint's end (0 source), creds (0 old)
	anc    *event.Ancestor
}

func newEvalCtx() (*evalCtx, error) {
	s := getSchema()
	c := &evalCtx{ancDef: s.objs["vigil.Ancestor"]}
	set := func(i int, d *objDef) {
		c.inst[i] = objVal{def: d, c: c}
	}
	byName := func(name string) *objDef { return s.objs["vigil."+name] }
	for _, v := range s.vars {
		set(v.inst, v.obj)
	}
	set(instParent, byName("ParentProcess"))
	c.inst[instParent].parent = true
	for i := range 4 {
		set(instProcessIDs+i, byName("ID"))
		c.inst[instProcessIDs+i].which = i
		set(instParentIDs+i, byName("ID"))
		c.inst[instParentIDs+i].which = i
		c.inst[instParentIDs+i].parent = true
	}
	c.inst[instDest].which = 1
	set(instQuestion, byName("DNSQuestion"))
	set(instOrchResource, byName("OrchestratorResource"))
	set(instCredOld, byName("Creds"))
	set(instCredNew, byName("Creds"))
	c.inst[instCredNew].which = 1
	n := 0
	for i := range c.inst {
		if c.inst[i].def == nil {
			return nil, fmt.Errorf("object instance %d has no type", i)
		}
		n += len(c.inst[i].def.fields)
	}
	c.cache = make([]cacheEntry, n)
	n = 0
	for i := range c.inst {
		k := len(c.inst[i].def.fields)
		c.inst[i].slots = c.cache[n : n+k : n+k]
		n += k
	}
	f, err := interpreter.NewExecutionFrame(c)
	if err != nil {
		return nil, err
	}
	c.frame = f
	return c, nil
}

// reset points the activation at the next event.
func (c *evalCtx) reset(e *event.Event) {
	c.e = e
	c.gen++
}

// ResolveName implements interpreter.Activation.
func (c *evalCtx) ResolveName(name string) (any, bool) {
	var i int
	switch name {
	case "process":
		i = instProcess
	case "event":
		i = instEvent
	case "file":
		i = instFile
	case "user":
		i = instUser
	case "destination":
		i = instDest
	case "source":
		i = instSource
	case "network":
		i = instNetwork
	case "dns":
		i = instDNS
	case "cred":
		i = instCred
	case "kernel":
		i = instKernel
	case "group":
		i = instGroup
	case "container":
		i = instContainer
	case "host":
		i = instHost
	case "error":
		i = instError
	case "orchestrator":
		i = instOrchestrator
	default:
		return nil, false
	}
	return &c.inst[i], true
}

// Parent implements interpreter.Activation.
func (c *evalCtx) Parent() interpreter.Activation { return nil }

func (c *evalCtx) ancestors() ref.Val {
	as := c.e.Ancestors
	if cap(c.ancs) < len(as) {
		c.ancs = make([]objVal, len(as))
		c.ancVals = make([]ref.Val, len(as))
	}
	c.ancs, c.ancVals = c.ancs[:len(as)], c.ancVals[:len(as)]
	for i := range as {
		c.ancs[i] = objVal{def: c.ancDef, c: c, anc: &as[i]}
		c.ancVals[i] = &c.ancs[i]
	}
	return types.NewRefValList(types.DefaultTypeAdapter, c.ancVals)
}

func (o *objVal) process() *event.Process {
	if o.parent {
		if p := o.c.e.Parent; p != nil {
			return p
		}
		return &noProcess
	}
	return &o.c.e.Process
}

func (o *objVal) idValue() uint32 {
	p := o.process()
	switch o.which {
	case idEUID:
		return p.EUID
	case idUID:
		return p.UID
	case idEGID:
		return p.EGID
	default:
		return p.GID
	}
}

func (o *objVal) endpoint() netip.AddrPort {
	n := o.c.e.Net
	switch {
	case n == nil:
		return netip.AddrPort{}
	case o.which == 0:
		return n.Source
	default:
		return n.Destination
	}
}

func (o *objVal) creds() *event.Creds {
	c := o.c.e.Cred
	switch {
	case c == nil:
		return &noCred.Old
	case o.which == 0:
		return &c.Old
	default:
		return &c.New
	}
}

// ConvertToNative implements ref.Val.
func (o *objVal) ConvertToNative(t reflect.Type) (any, error) {
	return nil, fmt.Errorf("%s cannot be converted to %v", o.def.name, t)
}

// ConvertToType implements ref.Val.
func (o *objVal) ConvertToType(t ref.Type) ref.Val {
	if t == types.TypeType {
		return o.def.typ
	}
	if t.TypeName() == o.def.name {
		return o
	}
	return types.NewErr("type conversion error from %s to %s", o.def.name, t.TypeName())
}

// Equal implements ref.Val: an object equals only itself.
func (o *objVal) Equal(other ref.Val) ref.Val {
	return types.Bool(o == other)
}

// Type implements ref.Val.
func (o *objVal) Type() ref.Type { return o.def.typ }

// Value implements ref.Val. Field getters receive the objVal itself.
func (o *objVal) Value() any { return o }

// Get implements traits.Indexer, for field access the checker did not type.
func (o *objVal) Get(index ref.Val) ref.Val {
	name, ok := index.(types.String)
	if !ok {
		return types.NewErr("no such key: %v", index)
	}
	ft, ok := o.def.fts[string(name)]
	if !ok {
		return types.NewErr("no such field: %s", name)
	}
	v, err := ft.GetFrom(o)
	if err != nil {
		return types.WrapErr(err)
	}
	return v.(ref.Val)
}
