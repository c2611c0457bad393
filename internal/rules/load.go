package rules

import (
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/google/cel-go/cel"
)

// Source is a set of rule files: the *.yaml and *.yml files at the top of
// FS, read in lexical order.
type Source struct {
	// Name prefixes the file names in messages and in RuleInfo.Source: a
	// directory path, or a word such as "builtin". Empty for none.
	Name string
	FS   fs.FS
	// Files, when set, are the files to read instead of all of them, in
	// this order.
	Files []string
}

// Dir is the source of the rule files in a directory on disk.
func Dir(dir string) Source {
	return Source{Name: dir, FS: os.DirFS(dir)}
}

// File is the source of one rule file on disk.
func File(name string) Source {
	return Source{Name: filepath.Dir(name), FS: os.DirFS(filepath.Dir(name)), Files: []string{filepath.Base(name)}}
}

func (s Source) files() ([]string, error) {
	if s.Files != nil {
		return s.Files, nil
	}
	entries, err := fs.ReadDir(s.FS, ".")
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range entries {
		if !e.IsDir() && (strings.HasSuffix(e.Name(), ".yaml") || strings.HasSuffix(e.Name(), ".yml")) {
			names = append(names, e.Name())
		}
	}
	slices.Sort(names)
	return names, nil
}

func (s Source) display(name string) string {
	if s.Name == "" {
		return name
	}
	return path.Join(filepath.ToSlash(s.Name), name)
}

// Load reads, checks and compiles the rules of the sources, in order: the
// built-in defaults first, then the user's directories. A later file's list,
// macro or rule replaces an earlier one of the same name or id; overrides
// change rules by id. On any problem Load returns a *LoadError listing all
// of them, each with its file, line and column.
func Load(sources ...Source) (*Set, error) {
	e := &errs{order: map[string]int{}}
	var files []*rawFile
	for _, src := range sources {
		names, err := src.files()
		if err != nil {
			return nil, fmt.Errorf("rule source %q: %w", src.Name, err)
		}
		for _, name := range names {
			data, err := fs.ReadFile(src.FS, name)
			if err != nil {
				return nil, fmt.Errorf("rule source %q: %w", src.Name, err)
			}
			f := newSrcFile(src.display(name), len(e.order), data)
			e.order[f.name] = f.order
			files = append(files, parseFile(f, e))
		}
	}
	l := &loader{errs: e, lists: map[string]*listDef{}, macros: map[string]*macroDef{}, ruleIdx: map[string]int{}}
	for _, f := range files {
		l.merge(f)
	}
	for _, f := range files {
		for _, o := range f.overrides {
			l.override(o)
		}
	}
	set, err := l.compile()
	if err != nil {
		return nil, err
	}
	if err := e.err(); err != nil {
		return nil, err
	}
	return set, nil
}

type listDef struct {
	name  string
	pos   Pos
	file  *srcFile
	isInt bool
	items []string
	nums  []int64
}

type macroDef struct {
	raw   *rawMacro
	pos   Pos
	ast   *cel.Ast // checked, with the macros it uses inlined once resolved
	deps  []string
	state int // 0 unresolved, 1 resolving, 2 resolved, 3 broken
}

type loader struct {
	errs    *errs
	lists   map[string]*listDef
	macros  map[string]*macroDef
	rules   []*rawRule
	ruleIdx map[string]int
	notices []Notice
}

func (l *loader) notice(p Pos, format string, args ...any) {
	l.notices = append(l.notices, Notice{Pos: p, Msg: fmt.Sprintf(format, args...)})
}

// reserved are CEL's reserved words and the top-level objects: no list or
// macro may take their names.
var reserved = setOf("as", "break", "const", "continue", "else", "false", "for", "function", "if", "import", "in",
	"let", "loop", "package", "namespace", "null", "return", "true", "var", "void", "while")

func (l *loader) checkName(s scalar, what string) bool {
	name := s.value()
	if reserved[name] {
		l.errs.add(s.pos(), "%s name %q is a reserved word", what, name)
		return false
	}
	for _, v := range getSchema().vars {
		if v.name == name {
			l.errs.add(s.pos(), "%s name %q is the name of a field object", what, name)
			return false
		}
	}
	return true
}

func (l *loader) merge(f *rawFile) {
	for _, rl := range f.lists {
		name, p := rl.name.value(), rl.name.pos()
		if !l.checkName(rl.name, "list") {
			continue
		}
		if m, ok := l.macros[name]; ok {
			l.errs.add(p, "list %q has the name of the macro at %s", name, m.pos)
			continue
		}
		old, exists := l.lists[name]
		if rl.append {
			if !exists {
				l.errs.add(p, "append to unknown list %q", name)
				continue
			}
			if len(rl.items) > 0 {
				switch {
				case len(old.items) == 0:
					old.isInt = rl.isInt
				case old.isInt != rl.isInt:
					l.errs.add(p, "append of %s to list %q of %s", itemKind(rl.isInt), name, itemKind(old.isInt))
					continue
				}
			}
			// Copy: the list an earlier file defined is not changed in place.
			old.items = append(slices.Clip(old.items), rl.items...)
			old.nums = append(slices.Clip(old.nums), rl.nums...)
			continue
		}
		if exists {
			if old.file == f.f {
				l.errs.add(p, "list %q defined twice in this file (first at line %d)", name, old.pos.Line)
				continue
			}
			l.notice(p, "list %q replaces the one at %s", name, old.pos)
		}
		l.lists[name] = &listDef{name: name, pos: p, file: f.f, isInt: rl.isInt, items: rl.items, nums: rl.nums}
	}
	for _, rm := range f.macros {
		name, p := rm.name.value(), rm.name.pos()
		if !l.checkName(rm.name, "macro") {
			continue
		}
		if ld, ok := l.lists[name]; ok {
			l.errs.add(p, "macro %q has the name of the list at %s", name, ld.pos)
			continue
		}
		if old, ok := l.macros[name]; ok {
			if old.pos.File == p.File {
				l.errs.add(p, "macro %q defined twice in this file (first at line %d)", name, old.pos.Line)
				continue
			}
			l.notice(p, "macro %q replaces the one at %s", name, old.pos)
		}
		l.macros[name] = &macroDef{raw: rm, pos: p}
	}
	for _, r := range f.rules {
		i, ok := l.ruleIdx[r.id]
		if !ok {
			l.ruleIdx[r.id] = len(l.rules)
			l.rules = append(l.rules, r)
			continue
		}
		old := l.rules[i]
		if old.f == r.f {
			l.errs.add(r.pos, "duplicate rule id %q (first at line %d)", r.id, old.pos.Line)
			continue
		}
		l.notice(r.pos, "rule %q replaces the one at %s", r.id, old.pos)
		l.rules[i] = r
	}
}

func itemKind(isInt bool) string {
	if isInt {
		return "integers"
	}
	return "strings"
}

func (l *loader) override(o *rawOverride) {
	i, ok := l.ruleIdx[o.id]
	if !ok {
		l.errs.add(o.pos, "override of unknown rule %q", o.id)
		return
	}
	r := *l.rules[i] // copy: the raw rule may be shared by nothing else, but stay safe
	var changed []string
	if o.enabled != nil {
		r.enabled = *o.enabled
		changed = append(changed, fmt.Sprintf("enabled=%t", r.enabled))
	}
	if o.severity != 0 {
		r.severity = o.severity
		changed = append(changed, "severity="+r.severity.String())
	}
	if o.response != "" {
		r.response, r.responsePos = o.response, o.pos
		changed = append(changed, "response="+r.response)
	}
	if o.dryRun != nil {
		r.dryRun = *o.dryRun
		changed = append(changed, fmt.Sprintf("dry_run=%t", r.dryRun))
	}
	if o.output != nil {
		r.output = o.output
		changed = append(changed, "output")
	}
	if len(o.exceptions) > 0 {
		r.exceptions = append(slices.Clip(r.exceptions), o.exceptions...)
		changed = append(changed, fmt.Sprintf("+%d exceptions", len(o.exceptions)))
	}
	l.rules[i] = &r
	l.notice(o.pos, "override of rule %q (%s): %s", o.id, r.pos, strings.Join(changed, ", "))
}

func (l *loader) compile() (*Set, error) {
	env, err := newEnv()
	if err != nil {
		return nil, fmt.Errorf("rule environment: %w", err)
	}
	var opts []cel.EnvOption
	for _, name := range sortedKeys(l.lists) {
		ld := l.lists[name]
		elem := cel.StringType
		if ld.isInt {
			elem = cel.IntType
		}
		opts = append(opts, cel.Constant(name, cel.ListType(elem), newConstList(ld.items, ld.nums, ld.isInt)))
	}
	for _, name := range sortedKeys(l.macros) {
		opts = append(opts, cel.Variable(name, cel.BoolType))
	}
	env, err = env.Extend(opts...)
	if err != nil {
		return nil, fmt.Errorf("rule environment: %w", err)
	}
	c := &compiler{env: env, errs: l.errs, lists: l.lists, macros: l.macros}
	for _, name := range sortedKeys(l.macros) {
		c.checkMacro(l.macros[name])
	}
	for _, name := range sortedKeys(l.macros) {
		c.resolveMacro(name, nil)
	}
	set := &Set{notices: l.notices}
	for _, r := range l.rules {
		if cr := c.rule(r); cr != nil {
			set.rules = append(set.rules, cr)
		}
	}
	if err := set.index(); err != nil {
		return nil, err
	}
	return set, nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
