package rules

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/google/cel-go/cel"
	celast "github.com/google/cel-go/common/ast"
	"github.com/google/cel-go/common/operators"
	"github.com/google/cel-go/common/types"
)

// Responses other than alert act outside CEL: in the kernel (kill at exec,
// connect and bind deny) or before an operation completes (fanotify deny).
// Those mechanisms cannot run a CEL program, so the rule's condition is
// turned at load into what they can apply: sets of paths, addresses and
// ports. Where the mechanism decides alone (the kernel kills or refuses
// without asking user space), the condition must be exactly such a set;
// where user space decides (fanotify asks, the rule runs in full), the set
// only has to contain every file the rule could match, so that it is
// watched. A rule whose response cannot be carried out this way is refused
// at load with the reason.

// Plan is how a rule's response is carried out, derived from its condition.
type Plan struct {
	// ExecKill: for kill on exec events, the executables the kernel kills
	// at exec: exactly the rule's condition.
	ExecKill *PathSet
	// DenyOpen and DenyExec: for deny on file and exec events, the files
	// whose opens and execs are held for the rule to decide (it can match
	// no other).
	DenyOpen *PathSet
	DenyExec *PathSet
	// DenyOpenExact and DenyExecExact: the same files when they are exactly
	// the rule's condition (files only, no directories, no other test and
	// no exceptions), so that the kernel can decide alone (BPF LSM).
	DenyOpenExact *PathSet
	DenyExecExact *PathSet
	// DenyNet: for deny on net events, the connects and binds the kernel
	// refuses: exactly the rule's condition.
	DenyNet []NetMatch
	// PayloadDrop: for deny on a payload rule, the kernel drops the packets
	// that hold the pattern.
	PayloadDrop bool
}

// PathSet is a set of absolute paths: exact files, and directories (ending
// in /) with everything below them.
type PathSet struct {
	Exact    []string
	Prefixes []string
}

// NetMatch is one connect or bind the kernel refuses. Zero fields match anything.
type NetMatch struct {
	Op   string     // "connect", "bind", or "" for both
	Addr netip.Addr // the remote address of a connect, the local one of a bind
	Port uint16     // the remote port of a connect, the local one of a bind
}

func (m NetMatch) String() string {
	op, addr, port := m.Op, "*", "*"
	if op == "" {
		op = "connect/bind"
	}
	if m.Addr.IsValid() {
		addr = m.Addr.String()
	}
	if m.Port != 0 {
		port = fmt.Sprint(m.Port)
	}
	return fmt.Sprintf("%s %s port %s", op, addr, port)
}

// atom is a test of one field against constants: == or in (strs, ints),
// startsWith or startsWithAny (prefixes), or a bool field.
type atom struct {
	// opaque is why this part of the condition is not a test of a field
	// against constants; then the other fields are empty.
	opaque   string
	field    string
	strs     []string
	ints     []int64
	prefixes []string
	isBool   bool
}

// maxClauses bounds the disjunctive normal form of a condition.
const maxClauses = 256

// clauses turns a condition into an OR of ANDs of atoms, or says which part
// of it is not an atom.
func clauses(a *celast.AST, e celast.Expr) ([][]atom, error) {
	if e.Kind() == celast.CallKind {
		call := e.AsCall()
		switch call.FunctionName() {
		case operators.LogicalOr:
			var out [][]atom
			for _, arg := range call.Args() {
				cs, err := clauses(a, arg)
				if err != nil {
					return nil, err
				}
				out = append(out, cs...)
			}
			if len(out) > maxClauses {
				return nil, fmt.Errorf("more than %d alternatives", maxClauses)
			}
			return out, nil
		case operators.LogicalAnd:
			out := [][]atom{nil}
			for _, arg := range call.Args() {
				cs, err := clauses(a, arg)
				if err != nil {
					return nil, err
				}
				var next [][]atom
				for _, x := range out {
					for _, y := range cs {
						next = append(next, append(slices.Clip(x), y...))
					}
				}
				if len(next) > maxClauses {
					return nil, fmt.Errorf("more than %d alternatives", maxClauses)
				}
				out = next
			}
			return out, nil
		}
	}
	at, err := atomOf(a, e)
	if err != nil {
		at = atom{opaque: err.Error()}
	}
	return [][]atom{{at}}, nil
}

func atomOf(a *celast.AST, e celast.Expr) (atom, error) {
	if name, ok := fieldName(a, e); ok {
		if g, ok := fieldPath(a, e); ok && g.field.typ.IsExactType(types.BoolType) {
			return atom{field: name, isBool: true}, nil
		}
	}
	if e.Kind() == celast.CallKind {
		call := e.AsCall()
		fn := call.FunctionName()
		switch {
		case fn == operators.Equals || fn == operators.In:
			if g, ok := guardExpr(a, e); ok && !g.isBool {
				args := call.Args()
				name, _ := fieldName(a, args[0])
				if fn == operators.Equals {
					if n, ok := fieldName(a, args[1]); ok {
						name = n
					}
				}
				return atom{field: name, strs: g.strs, ints: g.ints}, nil
			}
		case (fn == "startsWith" || fn == "startsWithAny") && call.IsMemberFunction() && len(call.Args()) == 1:
			name, ok := fieldName(a, call.Target())
			if !ok {
				break
			}
			var prefixes []string
			if fn == "startsWith" {
				arg := call.Args()[0]
				if arg.Kind() != celast.LiteralKind {
					break
				}
				s, ok := arg.AsLiteral().(types.String)
				if !ok {
					break
				}
				prefixes = []string{string(s)}
			} else {
				elems, ok := constElems(a, call.Args()[0])
				if !ok {
					break
				}
				for _, x := range elems {
					s, ok := x.(types.String)
					if !ok {
						return atom{}, fmt.Errorf("startsWithAny of a list that is not of strings")
					}
					prefixes = append(prefixes, string(s))
				}
			}
			return atom{field: name, prefixes: prefixes}, nil
		}
	}
	return atom{}, fmt.Errorf("%s is not a test of a field against constants (==, in, startsWith, startsWithAny)", exprText(e))
}

// fieldName spells a select chain of a global variable: "process.executable".
func fieldName(a *celast.AST, e celast.Expr) (string, bool) {
	if _, ok := fieldPath(a, e); !ok {
		return "", false
	}
	var names []string
	for e.Kind() == celast.SelectKind {
		names = append([]string{e.AsSelect().FieldName()}, names...)
		e = e.AsSelect().Operand()
	}
	return e.AsIdent() + "." + strings.Join(names, "."), true
}

// exprText names an expression in an error message.
func exprText(e celast.Expr) string {
	switch e.Kind() {
	case celast.CallKind:
		c := e.AsCall()
		if op, ok := operators.FindReverse(c.FunctionName()); ok {
			return fmt.Sprintf("a test with %q", op)
		}
		return fmt.Sprintf("a call of %s()", c.FunctionName())
	case celast.SelectKind:
		return "a field that is not boolean"
	case celast.ComprehensionKind:
		return "a comprehension (exists, all...)"
	}
	return "an expression"
}

// planFor checks that the rule's response can be carried out and derives
// how. It returns the reason when it cannot.
func planFor(info RuleInfo, cond *cel.Ast, hasExceptions bool) (*Plan, error) {
	if info.Response == "alert" || info.Response == "" {
		return nil, nil
	}
	if info.Payload != nil {
		return payloadPlan(info, cond, hasExceptions)
	}
	on := map[string]bool{}
	for _, k := range info.On {
		on[k.String()] = true
	}
	only := func(allowed ...string) error {
		for _, k := range info.On {
			if !slices.Contains(allowed, k.String()) {
				return fmt.Errorf("response %s cannot act on %s events (only on %s)", info.Response, k, strings.Join(allowed, ", "))
			}
		}
		return nil
	}
	a := cond.NativeRep()
	cls, clsErr := clauses(a, a.Expr())
	p := &Plan{}
	switch info.Response {
	case "kill":
		if !on["exec"] {
			return p, nil // the process is killed from user space after the event
		}
		why := "response kill on exec events kills in the kernel at exec, so the condition must be one the kernel can decide: " +
			`process.executable ==, in, startsWith or startsWithAny (directories ending in /), joined by || or by && with event.action == "exec", and no exceptions`
		if hasExceptions {
			return nil, fmt.Errorf("%s; this rule has exceptions", why)
		}
		if clsErr != nil {
			return nil, fmt.Errorf("%s; %v", why, clsErr)
		}
		ps, err := exactPaths(cls, "process.executable", "exec")
		if err != nil {
			return nil, fmt.Errorf("%s; %v", why, err)
		}
		p.ExecKill = ps
	case "deny":
		if err := only("file", "exec", "net"); err != nil {
			return nil, fmt.Errorf("%w: deny acts before file opens (fanotify), execs (fanotify) and connects and binds (cgroup hooks)", err)
		}
		if (on["file"] || on["exec"]) && clsErr != nil {
			return nil, fmt.Errorf("deny on file or exec events watches the files the rule can match: %v", clsErr)
		}
		if on["file"] {
			ps, err := necessaryPaths(cls, "file.path")
			if err != nil {
				return nil, fmt.Errorf("deny on file events watches the files the rule can match: %v", err)
			}
			p.DenyOpen = ps
			if !hasExceptions {
				p.DenyOpenExact = filesOnly(exactPaths(cls, "file.path", "open"))
			}
		}
		if on["exec"] {
			ps, err := necessaryPaths(cls, "process.executable")
			if err != nil {
				return nil, fmt.Errorf("deny on exec events watches the programs the rule can match: %v", err)
			}
			p.DenyExec = ps
			if !hasExceptions {
				p.DenyExecExact = filesOnly(exactPaths(cls, "process.executable", "exec"))
			}
		}
		if on["net"] {
			why := "deny on net events refuses connects and binds in the kernel, so the condition must be one the kernel can decide: " +
				`event.action == "connect" or "bind", destination.ip, destination.port (connect) or source.ip, source.port (bind) == or in constants, joined by && and ||, and no exceptions`
			if hasExceptions {
				return nil, fmt.Errorf("%s; this rule has exceptions", why)
			}
			if clsErr != nil {
				return nil, fmt.Errorf("%s; %v", why, clsErr)
			}
			ms, err := netMatches(cls)
			if err != nil {
				return nil, fmt.Errorf("%s; %v", why, err)
			}
			p.DenyNet = ms
		}
	case "block-ip":
		if err := only("net"); err != nil {
			return nil, fmt.Errorf("%w: block-ip blocks the remote address of the event (destination.ip)", err)
		}
	case "isolate-host", "freeze":
	}
	return p, nil
}

// payloadPlan: a payload rule acts on the packet that matched (deny drops
// it in the kernel) or on its remote address (block-ip).
func payloadPlan(info RuleInfo, cond *cel.Ast, hasExceptions bool) (*Plan, error) {
	switch info.Response {
	case "block-ip", "isolate-host":
		return &Plan{}, nil
	case "deny":
		e := cond.NativeRep().Expr()
		isTrue := e.Kind() == celast.LiteralKind && e.AsLiteral() == types.True
		if !isTrue || hasExceptions {
			return nil, errors.New("deny on a payload rule drops the matching packets in the kernel, which cannot run a condition: " +
				"leave the condition out (or true) and give no exceptions, or use block-ip, which acts after the rule decides")
		}
		return &Plan{PayloadDrop: true}, nil
	}
	return nil, fmt.Errorf("response %s cannot act on a packet: a payload rule may alert, deny (drop the packets in the kernel), "+
		"block-ip (the remote address) or isolate-host", info.Response)
}

// exactPaths reads clauses that test only field (and event.action ==
// action) into the paths they match exactly.
func exactPaths(cls [][]atom, field, action string) (*PathSet, error) {
	ps := &PathSet{}
	for _, cl := range cls {
		var paths *atom
		for i := range cl {
			at := &cl[i]
			switch {
			case at.opaque != "":
				return nil, errors.New(at.opaque)
			case at.field == "event.action" && len(at.strs) > 0:
				if !slices.Contains(at.strs, action) {
					return nil, fmt.Errorf("event.action is tested against %q, which never holds for %s events", at.strs, action)
				}
			case at.field == field && !at.isBool && len(at.ints) == 0:
				if paths != nil {
					return nil, fmt.Errorf("two tests of %s joined by &&", field)
				}
				paths = at
			default:
				return nil, fmt.Errorf("it tests %s", at.field)
			}
		}
		if paths == nil {
			return nil, fmt.Errorf("an alternative does not test %s", field)
		}
		if err := ps.add(paths, field); err != nil {
			return nil, err
		}
	}
	ps.clean()
	return ps, nil
}

// filesOnly keeps a path set of files alone: nil for an error or for one
// with directories.
func filesOnly(ps *PathSet, err error) *PathSet {
	if err != nil || ps == nil || len(ps.Prefixes) > 0 || len(ps.Exact) == 0 {
		return nil
	}
	return ps
}

// necessaryPaths finds in each clause a test of field, which any match
// must pass: together they hold every path the rule can match.
func necessaryPaths(cls [][]atom, field string) (*PathSet, error) {
	ps := &PathSet{}
	for _, cl := range cls {
		var best *atom
		for i := range cl {
			if cl[i].field == field && !cl[i].isBool && len(cl[i].ints) == 0 {
				best = &cl[i]
				break
			}
		}
		if best == nil {
			return nil, fmt.Errorf("an alternative of the condition does not test %s with ==, in, startsWith or startsWithAny", field)
		}
		if err := ps.add(best, field); err != nil {
			return nil, err
		}
	}
	ps.clean()
	return ps, nil
}

func (ps *PathSet) add(at *atom, field string) error {
	for _, s := range at.strs {
		if !strings.HasPrefix(s, "/") {
			return fmt.Errorf("%s == %q: not an absolute path", field, s)
		}
		ps.Exact = append(ps.Exact, s)
	}
	for _, s := range at.prefixes {
		if !strings.HasPrefix(s, "/") || !strings.HasSuffix(s, "/") {
			return fmt.Errorf("%s.startsWith(%q): the prefix must be an absolute directory ending in /", field, s)
		}
		ps.Prefixes = append(ps.Prefixes, s)
	}
	return nil
}

func (ps *PathSet) clean() {
	slices.Sort(ps.Exact)
	ps.Exact = slices.Compact(ps.Exact)
	slices.Sort(ps.Prefixes)
	ps.Prefixes = slices.Compact(ps.Prefixes)
}

// netMatches reads clauses into the connects and binds they match exactly.
func netMatches(cls [][]atom) ([]NetMatch, error) {
	var out []NetMatch
	for _, cl := range cls {
		ops := []string{""}
		var addrs []netip.Addr
		var ports []uint16
		var remote, local bool
		for _, at := range cl {
			if at.opaque != "" {
				return nil, errors.New(at.opaque)
			}
			if at.isBool || len(at.prefixes) > 0 {
				return nil, fmt.Errorf("it tests %s with something other than == or in", at.field)
			}
			switch at.field {
			case "event.action":
				ops = nil
				for _, s := range at.strs {
					if s == "connect" || s == "bind" {
						ops = append(ops, s)
					}
				}
				if len(ops) == 0 {
					return nil, fmt.Errorf("event.action is tested against %q: only connect and bind can be denied", at.strs)
				}
			case "destination.ip", "source.ip":
				if addrs != nil {
					return nil, fmt.Errorf("two address tests joined by &&")
				}
				addrs = []netip.Addr{}
				for _, s := range at.strs {
					ip, err := netip.ParseAddr(s)
					if err != nil {
						return nil, fmt.Errorf("%s == %q: not an IP address", at.field, s)
					}
					addrs = append(addrs, ip.Unmap())
				}
			case "destination.port", "source.port":
				if ports != nil {
					return nil, fmt.Errorf("two port tests joined by &&")
				}
				ports = []uint16{}
				for _, n := range at.ints {
					if n < 1 || n > 65535 {
						return nil, fmt.Errorf("%s == %d: not a port", at.field, n)
					}
					ports = append(ports, uint16(n))
				}
			default:
				return nil, fmt.Errorf("it tests %s", at.field)
			}
			remote = remote || strings.HasPrefix(at.field, "destination.")
			local = local || strings.HasPrefix(at.field, "source.")
		}
		if remote && local {
			return nil, fmt.Errorf("an alternative tests both source and destination")
		}
		// destination.* are a connect's remote end; source.* a bind's own.
		for i, op := range ops {
			switch {
			case remote && op == "bind", local && op == "connect":
				return nil, fmt.Errorf("%s with %s fields: a connect is matched by destination.*, a bind by source.*", op, map[bool]string{true: "destination", false: "source"}[remote])
			case op == "" && remote:
				ops[i] = "connect"
			case op == "" && local:
				ops[i] = "bind"
			}
		}
		if len(addrs) == 0 && len(ports) == 0 {
			return nil, fmt.Errorf("an alternative names no address or port: it would refuse every connect or bind")
		}
		if len(addrs) == 0 {
			addrs = []netip.Addr{{}}
		}
		if len(ports) == 0 {
			ports = []uint16{0}
		}
		for _, op := range ops {
			for _, ip := range addrs {
				for _, port := range ports {
					out = append(out, NetMatch{Op: op, Addr: ip, Port: port})
				}
			}
		}
	}
	return out, nil
}
