package rules

import (
	"errors"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/vigilsec/vigil/internal/event"
)

// This file reads rule files into raw definitions that keep the YAML nodes
// they came from, for positions in error messages. Nothing is compiled here.

type rawFile struct {
	f         *srcFile
	lists     []*rawList
	macros    []*rawMacro
	rules     []*rawRule
	overrides []*rawOverride
}

type rawList struct {
	name   scalar
	append bool
	items  []string
	isInt  bool
	nums   []int64
}

type rawMacro struct {
	name scalar
	cond scalar
}

type rawException struct {
	name scalar
	cond scalar
}

type rawTest struct {
	pos   Pos
	name  string
	match bool
	event *yaml.Node
	f     *srcFile
	// payload: the packet's bytes, for payload rules' tests.
	payload    []byte
	hasPayload bool
}

type rawRule struct {
	f           *srcFile
	pos         Pos // the rule's id
	id          string
	name        string
	description string
	severity    event.Severity
	tags        []string
	mitre       []string
	on          []event.Kind
	cond        scalar
	exceptions  []rawException
	output      *scalar
	response    string
	responsePos Pos // where response was set, for errors about it
	dryRun      bool
	enabled     bool
	writes      []string
	reads       []string
	payload     *rawPayload
	tests       []rawTest
}

type rawOverride struct {
	pos        Pos
	id         string
	enabled    *bool
	severity   event.Severity
	response   string
	dryRun     *bool
	output     *scalar
	exceptions []rawException
}

var (
	idPattern    = regexp.MustCompile(`^[a-z0-9][a-z0-9-]*$`)
	namePattern  = regexp.MustCompile(`^[a-z_][a-z0-9_]*$`)
	mitrePattern = regexp.MustCompile(`^T[0-9]{4}(\.[0-9]{3})?$`)
	yamlErrLine  = regexp.MustCompile(`^yaml: line ([0-9]+): (.*)$`)
)

// responses are what a rule may ask for. The daemon's responders act on them.
var responses = setOf("alert", "kill", "deny", "block-ip", "isolate-host", "freeze")

// parser reads one file, reporting problems into errs.
type parser struct {
	f    *srcFile
	errs *errs
}

func parseFile(f *srcFile, e *errs) *rawFile {
	p := &parser{f: f, errs: e}
	out := &rawFile{f: f}
	dec := yaml.NewDecoder(strings.NewReader(string(f.data)))
	for {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			p.yamlError(err)
			return out
		}
		if len(doc.Content) == 0 {
			continue
		}
		root := doc.Content[0]
		if root.Kind == yaml.ScalarNode && root.Tag == "!!null" {
			continue
		}
		section := func(what string, item func(n *yaml.Node)) func(v *yaml.Node) {
			return func(v *yaml.Node) { p.seq(v, what, item) }
		}
		p.mapping(root, "rule file", map[string]func(v *yaml.Node){
			"lists":     section("lists", func(n *yaml.Node) { out.lists = append(out.lists, p.list(n)) }),
			"macros":    section("macros", func(n *yaml.Node) { out.macros = append(out.macros, p.macro(n)) }),
			"rules":     section("rules", func(n *yaml.Node) { out.rules = append(out.rules, p.rule(n)) }),
			"overrides": section("overrides", func(n *yaml.Node) { out.overrides = append(out.overrides, p.override(n)) }),
		})
	}
	// Drop what could not be read; the errors say why.
	out.lists = compact(out.lists)
	out.macros = compact(out.macros)
	out.rules = compact(out.rules)
	out.overrides = compact(out.overrides)
	return out
}

func compact[T any](xs []*T) []*T {
	out := xs[:0]
	for _, x := range xs {
		if x != nil {
			out = append(out, x)
		}
	}
	return out
}

func (p *parser) yamlError(err error) {
	msg := err.Error()
	line := 1
	if m := yamlErrLine.FindStringSubmatch(msg); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = m[2]
	} else {
		msg = strings.TrimPrefix(msg, "yaml: ")
	}
	p.errs.add(Pos{File: p.f.name, Line: line, Column: 1}, "%s", msg)
}

func (p *parser) errorf(n *yaml.Node, format string, args ...any) {
	p.errs.add(p.f.pos(n), format, args...)
}

// mapping calls the handler of each key of n, reporting unknown and
// repeated keys. It reports false when n is not a mapping.
func (p *parser) mapping(n *yaml.Node, what string, keys map[string]func(v *yaml.Node)) bool {
	n = deref(n)
	if n.Kind != yaml.MappingNode {
		p.errorf(n, "%s must be a mapping", what)
		return false
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], deref(n.Content[i+1])
		h, ok := keys[k.Value]
		switch {
		case !ok:
			p.errorf(k, "unknown key %q in %s (want %s)", k.Value, what, keyList(keys))
		case seen[k.Value]:
			p.errorf(k, "key %q repeated in %s", k.Value, what)
		default:
			seen[k.Value] = true
			h(v)
		}
	}
	return true
}

func keyList(keys map[string]func(v *yaml.Node)) string {
	names := make([]string, 0, len(keys))
	for k := range keys {
		names = append(names, k)
	}
	slices.Sort(names)
	return strings.Join(names, ", ")
}

func (p *parser) seq(n *yaml.Node, what string, item func(n *yaml.Node)) {
	n = deref(n)
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return
	}
	if n.Kind != yaml.SequenceNode {
		p.errorf(n, "%s must be a list", what)
		return
	}
	for _, c := range n.Content {
		item(deref(c))
	}
}

// deref follows a YAML alias (*name) to the node its anchor (&name) marks.
func deref(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

func (p *parser) str(n *yaml.Node, what string) (string, bool) {
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		p.errorf(n, "%s must be a string", what)
		return "", false
	}
	return n.Value, true
}

func (p *parser) boolean(n *yaml.Node, what string) (bool, bool) {
	var b bool
	if n.Kind != yaml.ScalarNode || n.Tag != "!!bool" || n.Decode(&b) != nil {
		p.errorf(n, "%s must be true or false", what)
		return false, false
	}
	return b, true
}

func (p *parser) strList(n *yaml.Node, what string) []string {
	var out []string
	p.seq(n, what, func(c *yaml.Node) {
		if s, ok := p.str(c, what+" item"); ok {
			out = append(out, s)
		}
	})
	return out
}

func (p *parser) name(n *yaml.Node, what string) (scalar, bool) {
	s, ok := p.str(n, what)
	if !ok {
		return scalar{}, false
	}
	if !namePattern.MatchString(s) {
		p.errorf(n, "%s %q must be lower case letters, digits and _, starting with a letter", what, s)
		return scalar{}, false
	}
	return scalar{f: p.f, n: n}, true
}

func (p *parser) condition(n *yaml.Node, what string) (scalar, bool) {
	s, ok := p.str(n, what)
	if !ok {
		return scalar{}, false
	}
	if strings.TrimSpace(s) == "" {
		p.errorf(n, "%s is empty", what)
		return scalar{}, false
	}
	return scalar{f: p.f, n: n}, true
}

func hasKey(n *yaml.Node, key string) bool {
	n = deref(n)
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return true
		}
	}
	return false
}

// required reports the keys of a mapping that are missing.
func (p *parser) required(n *yaml.Node, what string, keys ...string) bool {
	ok := true
	for _, k := range keys {
		found := false
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == k {
				found = true
			}
		}
		if !found {
			p.errorf(n, "%s has no %q", what, k)
			ok = false
		}
	}
	return ok
}

func (p *parser) list(n *yaml.Node) *rawList {
	l := &rawList{}
	valid := p.mapping(n, "list", map[string]func(v *yaml.Node){
		"name":   func(v *yaml.Node) { l.name, _ = p.name(v, "list name") },
		"append": func(v *yaml.Node) { l.append, _ = p.boolean(v, "append") },
		"items": func(v *yaml.Node) {
			ints, strs := 0, 0
			p.seq(v, "items", func(c *yaml.Node) {
				if c.Kind != yaml.ScalarNode || c.Tag == "!!null" {
					p.errorf(c, "list items must be strings or integers")
					return
				}
				if c.Tag == "!!int" {
					k, err := strconv.ParseInt(c.Value, 0, 64)
					if err != nil {
						p.errorf(c, "list item %s: %v", c.Value, err)
						return
					}
					ints++
					l.nums = append(l.nums, k)
				} else {
					strs++
				}
				l.items = append(l.items, c.Value)
			})
			if ints > 0 && strs > 0 {
				p.errorf(v, "list mixes strings and integers: quote the numbers to make them strings")
			}
			l.isInt = ints > 0 && strs == 0
		},
	})
	if !valid || !p.required(n, "list", "name", "items") || l.name.n == nil {
		return nil
	}
	return l
}

func (p *parser) macro(n *yaml.Node) *rawMacro {
	m := &rawMacro{}
	valid := p.mapping(n, "macro", map[string]func(v *yaml.Node){
		"name":      func(v *yaml.Node) { m.name, _ = p.name(v, "macro name") },
		"condition": func(v *yaml.Node) { m.cond, _ = p.condition(v, "condition") },
	})
	if !valid || !p.required(n, "macro", "name", "condition") || m.name.n == nil || m.cond.n == nil {
		return nil
	}
	return m
}

func (p *parser) exceptions(v *yaml.Node) []rawException {
	var out []rawException
	names := map[string]bool{}
	p.seq(v, "exceptions", func(c *yaml.Node) {
		var x rawException
		if !p.mapping(c, "exception", map[string]func(v *yaml.Node){
			"name": func(v *yaml.Node) {
				if s, ok := p.str(v, "exception name"); ok {
					if names[s] {
						p.errorf(v, "exception %q repeated", s)
					}
					names[s] = true
					x.name = scalar{f: p.f, n: v}
				}
			},
			"condition": func(v *yaml.Node) { x.cond, _ = p.condition(v, "condition") },
		}) || !p.required(c, "exception", "name", "condition") || x.name.n == nil || x.cond.n == nil {
			return
		}
		out = append(out, x)
	})
	return out
}

func (p *parser) severity(v *yaml.Node) event.Severity {
	s, ok := p.str(v, "severity")
	if !ok {
		return 0
	}
	sev, ok := event.ParseSeverity(s)
	if !ok {
		p.errorf(v, "unknown severity %q (want info, notice, warning, error, critical)", s)
	}
	return sev
}

func (p *parser) response(v *yaml.Node) string {
	s, ok := p.str(v, "response")
	if ok && !responses[s] {
		p.errorf(v, "unknown response %q (want alert, kill, deny, block-ip, isolate-host, freeze)", s)
	}
	return s
}

func (p *parser) rule(n *yaml.Node) *rawRule {
	r := &rawRule{f: p.f, pos: p.f.pos(n), enabled: true, response: "alert"}
	defer func() {
		if r.responsePos.Line == 0 {
			r.responsePos = r.pos
		}
	}()
	valid := p.mapping(n, "rule", map[string]func(v *yaml.Node){
		"id": func(v *yaml.Node) {
			if s, ok := p.str(v, "id"); ok {
				r.pos = p.f.pos(v)
				if !idPattern.MatchString(s) {
					p.errorf(v, "rule id %q must be lower case letters, digits and -", s)
				}
				r.id = s
			}
		},
		"name":        func(v *yaml.Node) { r.name, _ = p.str(v, "name") },
		"description": func(v *yaml.Node) { r.description, _ = p.str(v, "description") },
		"severity":    func(v *yaml.Node) { r.severity = p.severity(v) },
		"tags":        func(v *yaml.Node) { r.tags = p.strList(v, "tags") },
		"mitre": func(v *yaml.Node) {
			p.seq(v, "mitre", func(c *yaml.Node) {
				if s, ok := p.str(c, "mitre item"); ok {
					if !mitrePattern.MatchString(s) {
						p.errorf(c, "%q is not an ATT&CK technique id (T1059 or T1059.004)", s)
					}
					r.mitre = append(r.mitre, s)
				}
			})
		},
		"on": func(v *yaml.Node) {
			seen := map[event.Kind]bool{}
			p.seq(v, "on", func(c *yaml.Node) {
				s, ok := p.str(c, "on item")
				if !ok {
					return
				}
				k, ok := parseKind(s)
				if !ok {
					p.errorf(c, "unknown event kind %q in on (want %s)", s, kindList())
					return
				}
				if !seen[k] {
					seen[k] = true
					r.on = append(r.on, k)
				}
			})
			if len(v.Content) == 0 && v.Kind == yaml.SequenceNode {
				p.errorf(v, "on lists no event kind")
			}
		},
		"condition":  func(v *yaml.Node) { r.cond, _ = p.condition(v, "condition") },
		"exceptions": func(v *yaml.Node) { r.exceptions = p.exceptions(v) },
		"output": func(v *yaml.Node) {
			if _, ok := p.str(v, "output"); ok {
				r.output = &scalar{f: p.f, n: v}
			}
		},
		"response": func(v *yaml.Node) { r.response, r.responsePos = p.response(v), p.f.pos(v) },
		"dry_run":  func(v *yaml.Node) { r.dryRun, _ = p.boolean(v, "dry_run") },
		"enabled":  func(v *yaml.Node) { r.enabled, _ = p.boolean(v, "enabled") },
		"watch": func(v *yaml.Node) {
			paths := func(v *yaml.Node, what string) []string {
				var out []string
				p.seq(v, what, func(c *yaml.Node) {
					if s, ok := p.str(c, what+" item"); ok {
						if !strings.HasPrefix(s, "/") {
							p.errorf(c, "watch path %q must be absolute", s)
							return
						}
						out = append(out, s)
					}
				})
				return out
			}
			p.mapping(v, "watch", map[string]func(v *yaml.Node){
				"writes": func(v *yaml.Node) { r.writes = paths(v, "writes") },
				"reads":  func(v *yaml.Node) { r.reads = paths(v, "reads") },
			})
		},
		"payload": func(v *yaml.Node) { r.payload = p.payload(v) },
		"tests": func(v *yaml.Node) {
			p.seq(v, "tests", func(c *yaml.Node) {
				t := rawTest{pos: p.f.pos(c), f: p.f}
				hasMatch := false
				if !p.mapping(c, "test", map[string]func(v *yaml.Node){
					"name":  func(v *yaml.Node) { t.name, _ = p.str(v, "test name") },
					"match": func(v *yaml.Node) { t.match, hasMatch = p.boolean(v, "match") },
					"event": func(v *yaml.Node) {
						if v.Kind != yaml.MappingNode {
							p.errorf(v, "test event must be a mapping of field names to values")
							return
						}
						t.event, t.payload, t.hasPayload = p.testPayload(v)
					},
				}) || !p.required(c, "test", "name", "match", "event") || !hasMatch || t.event == nil {
					return
				}
				r.tests = append(r.tests, t)
			})
		},
	})
	required := []string{"id", "name", "severity", "on", "condition"}
	if hasKey(n, "payload") {
		required = required[:3] // on and condition have defaults
	}
	if !valid || !p.required(n, "rule", required...) || r.id == "" || !p.settlePayloadRule(n, r) || r.cond.n == nil {
		return nil
	}
	return r
}

func (p *parser) override(n *yaml.Node) *rawOverride {
	o := &rawOverride{pos: p.f.pos(n)}
	valid := p.mapping(n, "override", map[string]func(v *yaml.Node){
		"id": func(v *yaml.Node) {
			if s, ok := p.str(v, "id"); ok {
				o.id, o.pos = s, p.f.pos(v)
			}
		},
		"enabled": func(v *yaml.Node) {
			if b, ok := p.boolean(v, "enabled"); ok {
				o.enabled = &b
			}
		},
		"severity": func(v *yaml.Node) { o.severity = p.severity(v) },
		"response": func(v *yaml.Node) { o.response = p.response(v) },
		"dry_run": func(v *yaml.Node) {
			if b, ok := p.boolean(v, "dry_run"); ok {
				o.dryRun = &b
			}
		},
		"output": func(v *yaml.Node) {
			if _, ok := p.str(v, "output"); ok {
				o.output = &scalar{f: p.f, n: v}
			}
		},
		"exceptions": func(v *yaml.Node) { o.exceptions = p.exceptions(v) },
	})
	if !valid || !p.required(n, "override", "id") || o.id == "" {
		return nil
	}
	return o
}
