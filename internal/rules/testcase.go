package rules

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/google/cel-go/common/types"
	"gopkg.in/yaml.v3"

	"github.com/vigilsec/vigil/internal/event"
)

// A rule's inline tests: events written with the field names conditions use,
// and whether the rule must match them.

type testCase struct {
	name  string
	pos   Pos
	match bool
	event *event.Event
	// payload: the packet's bytes, checked against a payload rule's
	// pattern before its condition.
	payload    []byte
	hasPayload bool
}

// TestResult is the outcome of one inline test case.
type TestResult struct {
	RuleID string
	Name   string // the test case's
	Pos    Pos    // where the test case is
	Pass   bool
	// Reason says what the rule did: "matched", "condition is false",
	// "suppressed by exception "x"", "kind file is not in on [exec]", or an
	// evaluation error; on failure, with what the test wanted.
	Reason string
	// Message is the rule's output for the event, when the rule matched.
	Message string
}

// RunTests runs every rule's inline test cases, enabled or not. A test
// checks its rule alone: its kinds, condition and exceptions.
func (s *Set) RunTests() []TestResult {
	c, err := newEvalCtx()
	if err != nil {
		return []TestResult{{Reason: err.Error()}}
	}
	c.host = s.ctx.host
	var out []TestResult
	for _, r := range s.rules {
		for _, t := range r.tests {
			res := TestResult{RuleID: r.info.ID, Name: t.name, Pos: t.pos}
			c.reset(t.event)
			matched, reason := r.explain(c, t.event)
			if p := r.info.Payload; p != nil && t.hasPayload {
				if ok, why := p.explain(t.event, t.payload); !ok {
					matched, reason = false, why
				}
			}
			if matched {
				res.Message = r.msg.render(c)
			}
			res.Pass = matched == t.match
			res.Reason = reason
			if !res.Pass {
				want := "want a match"
				if !t.match {
					want = "want no match"
				}
				res.Reason = want + ", got: " + reason
			}
			out = append(out, res)
			c.e = nil
		}
	}
	return out
}

// explain evaluates a rule on an event step by step and says what decided.
func (r *rule) explain(c *evalCtx, e *event.Event) (bool, string) {
	on := false
	for _, k := range r.info.On {
		on = on || k == e.Kind
	}
	if !on {
		return false, fmt.Sprintf("kind %s is not in on %v", e.Kind, r.info.On)
	}
	out, _, err := r.cond.Eval(r.input(c))
	if err != nil {
		return false, "condition failed: " + err.Error()
	}
	if out != types.True {
		return false, "condition is false"
	}
	for _, x := range r.excs {
		out, _, err := x.prog.Eval(r.input(c))
		if err != nil {
			continue // a failing exception does not suppress, as in Eval
		}
		if out == types.True {
			return false, fmt.Sprintf("suppressed by exception %q", x.name)
		}
	}
	return true, "matched"
}

// buildTestEvent writes a test case's fields into an event. Keys are field
// names as in conditions, dotted ("process.parent.name") or nested.
func buildTestEvent(t rawTest, r *rawRule, e *errs) (*event.Event, bool) {
	ev := &event.Event{Process: event.Process{AUID: event.NoUID, SessionID: event.NoUID}}
	b := &eventBuilder{f: t.f, errs: e, ev: ev, ok: true}
	b.mapping("", t.event)
	if !b.ok {
		return nil, false
	}
	if !b.settle(t, r) {
		return nil, false
	}
	return ev, true
}

type eventBuilder struct {
	f        *srcFile
	errs     *errs
	ev       *event.Event
	ok       bool
	kindSet  bool
	kindNode *yaml.Node
}

func (b *eventBuilder) errorf(n *yaml.Node, format string, args ...any) {
	b.errs.add(b.f.pos(n), format, args...)
	b.ok = false
}

func (b *eventBuilder) mapping(prefix string, n *yaml.Node) {
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], deref(n.Content[i+1])
		name := k.Value
		if prefix != "" {
			name = prefix + "." + name
		}
		if v.Kind == yaml.MappingNode {
			b.mapping(name, v)
			continue
		}
		b.field(name, k, v)
	}
}

func (b *eventBuilder) field(name string, k, v *yaml.Node) {
	if name == "process.ancestors" {
		b.ancestors(v)
		return
	}
	set, typ, err := setterFor(name)
	if err != nil {
		b.errorf(k, "%v", err)
		return
	}
	val, ok := b.value(v, typ, name)
	if !ok {
		return
	}
	if err := set(b.ev, val); err != nil {
		b.errorf(v, "field %q: %v", name, err)
		return
	}
	if name == "event.action" || name == "event.kind" {
		b.kindSet, b.kindNode = true, k
	}
}

// value decodes a YAML value as a field of type typ wants it.
func (b *eventBuilder) value(v *yaml.Node, typ *types.Type, name string) (any, bool) {
	scalar := v.Kind == yaml.ScalarNode && v.Tag != "!!null"
	switch {
	case typ.IsExactType(types.StringType) && scalar:
		return v.Value, true
	case typ.IsExactType(types.IntType) && scalar && v.Tag == "!!int":
		n, err := strconv.ParseInt(v.Value, 0, 64)
		if err == nil {
			return n, true
		}
	case typ.IsExactType(types.BoolType) && scalar && v.Tag == "!!bool":
		var x bool
		if v.Decode(&x) == nil {
			return x, true
		}
	case typ.IsExactType(types.NewListType(types.IntType)) && v.Kind == yaml.SequenceNode:
		out := []int64{}
		for _, c := range v.Content {
			n, ok := b.value(c, types.IntType, name)
			if !ok {
				return nil, false
			}
			out = append(out, n.(int64))
		}
		return out, true
	case typ.Kind() == types.ListKind && v.Kind == yaml.SequenceNode:
		out := []string{}
		for _, c := range v.Content {
			if c.Kind != yaml.ScalarNode || c.Tag == "!!null" {
				b.errorf(c, "field %q: want a list of strings", name)
				return nil, false
			}
			out = append(out, c.Value)
		}
		return out, true
	}
	want := map[types.Kind]string{types.StringKind: "a string", types.IntKind: "an integer", types.BoolKind: "true or false", types.ListKind: "a list"}[typ.Kind()]
	b.errorf(v, "field %q: want %s", name, want)
	return nil, false
}

func (b *eventBuilder) ancestors(v *yaml.Node) {
	if v.Kind != yaml.SequenceNode {
		b.errorf(v, "field \"process.ancestors\": want a list of mappings")
		return
	}
	for _, item := range v.Content {
		if item.Kind != yaml.MappingNode {
			b.errorf(item, "field \"process.ancestors\": want a list of mappings")
			return
		}
		var a event.Ancestor
		for i := 0; i+1 < len(item.Content); i += 2 {
			k, v := item.Content[i], item.Content[i+1]
			name := "process.ancestors[]." + k.Value
			switch k.Value {
			case "pid":
				if n, ok := b.value(v, types.IntType, name); ok {
					a.PID = uint32(n.(int64))
				}
			case "entity_id", "name", "executable":
				if s, ok := b.value(v, types.StringType, name); ok {
					*map[string]*string{"entity_id": &a.EntityID, "name": &a.Name, "executable": &a.Executable}[k.Value] = s.(string)
				}
			case "args":
				if l, ok := b.value(v, types.NewListType(types.StringType), name); ok {
					a.Args = l.([]string)
				}
			default:
				b.errorf(k, "unknown field %q", name)
			}
		}
		b.ev.Ancestors = append(b.ev.Ancestors, a)
	}
}

// setterFor finds how a test event writes a field.
func setterFor(name string) (func(e *event.Event, v any) error, *types.Type, error) {
	if set, typ, ok := pairSetter(name); ok {
		return set, typ, nil
	}
	f, ok := getSchema().lookupField(name)
	if !ok {
		return nil, nil, fmt.Errorf("unknown field %q", name)
	}
	if f.obj != nil && f.typ.Kind() == types.StructKind {
		return nil, nil, fmt.Errorf("field %q is an object: set its fields", name)
	}
	if f.set == nil && strings.HasSuffix(name, ".id") {
		// process.user.id: the id objects are written through their owner.
		if owner, ok := getSchema().lookupField(strings.TrimSuffix(name, ".id")); ok && owner.set != nil {
			return owner.set, types.StringType, nil
		}
	}
	if f.set == nil {
		if f.derived != "" {
			return nil, nil, fmt.Errorf("field %q cannot be set: it is derived from %s", name, f.derived)
		}
		return nil, nil, fmt.Errorf("field %q cannot be set in a test event", name)
	}
	return f.set, f.typ, nil
}

// pairSetter writes the fields of objects that appear twice with one type:
// source and destination, cred.old and cred.new.
func pairSetter(name string) (func(e *event.Event, v any) error, *types.Type, bool) {
	ensureNet := func(e *event.Event) *event.Net {
		if e.Net == nil {
			e.Net = &event.Net{}
		}
		return e.Net
	}
	endpoint := func(e *event.Event, dst bool) *netip.AddrPort {
		if dst {
			return &ensureNet(e).Destination
		}
		return &ensureNet(e).Source
	}
	switch name {
	case "source.ip", "destination.ip":
		dst := name == "destination.ip"
		return func(e *event.Event, v any) error {
			a, err := netip.ParseAddr(v.(string))
			if err != nil {
				return err
			}
			ap := endpoint(e, dst)
			*ap = netip.AddrPortFrom(a, ap.Port())
			return nil
		}, types.StringType, true
	case "source.port", "destination.port":
		dst := name == "destination.port"
		return func(e *event.Event, v any) error {
			n := v.(int64)
			if n < 0 || n > 65535 {
				return fmt.Errorf("port %d is out of range", n)
			}
			ap := endpoint(e, dst)
			*ap = netip.AddrPortFrom(ap.Addr(), uint16(n))
			return nil
		}, types.IntType, true
	}
	rest, isNew := strings.CutPrefix(name, "cred.new.")
	if !isNew {
		var isOld bool
		if rest, isOld = strings.CutPrefix(name, "cred.old."); !isOld {
			return nil, nil, false
		}
	}
	ptr := func(c *event.Creds) *uint32 {
		return map[string]*uint32{"uid": &c.UID, "euid": &c.EUID, "suid": &c.SUID, "fsuid": &c.FSUID,
			"gid": &c.GID, "egid": &c.EGID, "sgid": &c.SGID, "fsgid": &c.FSGID}[rest]
	}
	var probe event.Creds
	if ptr(&probe) == nil && rest != "cap_effective" && rest != "cap_permitted" {
		return nil, nil, false
	}
	return func(e *event.Event, v any) error {
		if e.Cred == nil {
			e.Cred = &event.Cred{}
		}
		c := &e.Cred.Old
		if isNew {
			c = &e.Cred.New
		}
		n := v.(int64)
		switch rest {
		case "cap_effective":
			c.CapEffective = uint64(n)
		case "cap_permitted":
			c.CapPermitted = uint64(n)
		default:
			if n < 0 || n > 1<<32-1 {
				return fmt.Errorf("%d is out of range", n)
			}
			*ptr(c) = uint32(n)
		}
		return nil
	}, types.IntType, true
}

// settle decides the event's kind (written, or implied by the fields set,
// or the rule's first kind) and checks the fields agree with it.
func (b *eventBuilder) settle(t rawTest, r *rawRule) bool {
	e := b.ev
	var implied []event.Kind
	if e.File != nil {
		implied = append(implied, event.KindFile)
	}
	if e.Net != nil {
		implied = append(implied, event.KindNet)
	}
	if e.Cred != nil {
		implied = append(implied, event.KindCred)
	}
	if e.Kernel != nil {
		implied = append(implied, event.KindKernel)
	}
	if e.Exec != nil {
		implied = append(implied, event.KindExec)
	}
	if e.Exit != nil {
		implied = append(implied, event.KindExit)
	}
	switch {
	case b.kindSet:
		for _, k := range implied {
			if k != e.Kind {
				b.errs.add(b.f.pos(b.kindNode), "test event of kind %s sets fields of %s events", e.Kind, k)
				return false
			}
		}
	case len(implied) > 1:
		b.errs.add(t.pos, "test event sets fields of %s and %s events: set event.action", implied[0], implied[1])
		return false
	case len(implied) == 1:
		e.Kind = implied[0]
	case len(r.on) > 0:
		e.Kind = r.on[0]
	}
	switch e.Kind {
	case event.KindExec:
		if e.Exec == nil {
			e.Exec = &event.Exec{}
		}
	case event.KindExit:
		if e.Exit == nil {
			e.Exit = &event.ExitStatus{}
		}
	case event.KindFile:
		if e.File == nil {
			e.File = &event.File{UID: event.NoUID, GID: event.NoUID}
		}
	case event.KindNet:
		if e.Net == nil {
			e.Net = &event.Net{}
		}
	case event.KindCred:
		if e.Cred == nil {
			e.Cred = &event.Cred{}
		}
	case event.KindKernel:
		if e.Kernel == nil {
			e.Kernel = &event.Kernel{}
		}
	}
	return true
}
