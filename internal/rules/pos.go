package rules

import (
	"fmt"
	"sort"
	"strings"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// Pos is a place in a rule file. Line and Column count from 1; Column
// counts characters.
type Pos struct {
	File         string
	Line, Column int
}

func (p Pos) String() string { return fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Column) }

// Error is one problem with a rule file.
type Error struct {
	Pos
	Msg string
}

func (e Error) Error() string { return e.Pos.String() + ": " + e.Msg }

// LoadError is every problem a load found, in file order.
type LoadError struct {
	Errors []Error
}

func (e *LoadError) Error() string {
	lines := make([]string, len(e.Errors))
	for i, err := range e.Errors {
		lines[i] = err.Error()
	}
	return strings.Join(lines, "\n")
}

// Notice is something a load did that deserves a debug log line but is no
// error: a rule, list or macro replaced by a later file, a rule changed by
// an override.
type Notice struct {
	Pos
	Msg string
}

func (n Notice) String() string { return n.Pos.String() + ": " + n.Msg }

// srcFile is a rule file being loaded.
type srcFile struct {
	name  string // as shown in messages
	order int    // position in the load, to sort errors by
	data  []byte
	lines []int // byte offset of each line's start
}

func newSrcFile(name string, order int, data []byte) *srcFile {
	f := &srcFile{name: name, order: order, data: data, lines: []int{0}}
	for i, b := range data {
		if b == '\n' {
			f.lines = append(f.lines, i+1)
		}
	}
	return f
}

func (f *srcFile) pos(n *yaml.Node) Pos {
	return Pos{File: f.name, Line: n.Line, Column: n.Column}
}

// offset returns the byte offset of a line and character column (from 1).
func (f *srcFile) offset(line, col int) int {
	if line < 1 {
		return 0
	}
	if line > len(f.lines) {
		return len(f.data)
	}
	off := f.lines[line-1]
	for i := 1; i < col && off < len(f.data) && f.data[off] != '\n'; i++ {
		_, size := utf8.DecodeRune(f.data[off:])
		off += size
	}
	return off
}

// posAt turns a byte offset into a position.
func (f *srcFile) posAt(off int) Pos {
	line := sort.Search(len(f.lines), func(i int) bool { return f.lines[i] > off }) // first line after
	start := f.lines[line-1]
	return Pos{File: f.name, Line: line, Column: utf8.RuneCount(f.data[start:off]) + 1}
}

// scalar is a YAML string value with what is needed to point into it.
type scalar struct {
	f *srcFile
	n *yaml.Node
}

func (s scalar) value() string { return s.n.Value }
func (s scalar) pos() Pos      { return s.f.pos(s.n) }

// at returns the position in the file of the character at rune offset off
// of the value. It walks the value and the source together: literal and
// folded blocks, plain scalars over several lines and quoted strings differ
// from their value only in whitespace (indentation, folded line breaks) and
// escapes, which the walk skips.
func (s scalar) at(off int) Pos {
	n, f := s.n, s.f
	if n.Kind != yaml.ScalarNode {
		return s.pos()
	}
	si := f.offset(n.Line, n.Column)
	switch n.Style {
	case yaml.LiteralStyle, yaml.FoldedStyle:
		// The value starts on the line after the | or > indicator.
		if n.Line < len(f.lines) {
			si = f.lines[n.Line]
		}
	case yaml.DoubleQuotedStyle, yaml.SingleQuotedStyle:
		si++
	}
	src := f.data
	val := []rune(n.Value)
	if off > len(val) {
		off = len(val)
	}
	skipSpace := func() {
		for si < len(src) && isSpace(src[si]) {
			si++
		}
	}
	for _, vr := range val[:off] {
		if si >= len(src) {
			break
		}
		if vr == ' ' || vr == '\t' || vr == '\n' {
			if isSpace(src[si]) {
				si++
			}
			continue
		}
		skipSpace()
		if si >= len(src) {
			break
		}
		sr, size := utf8.DecodeRune(src[si:])
		switch {
		case sr == vr:
			si += size
		case sr == '\\' && n.Style == yaml.DoubleQuotedStyle:
			si += 2 // an escape; \x.. and \u.... are rare in conditions
		case sr == '\'' && n.Style == yaml.SingleQuotedStyle:
			si += 2 // '' stands for '
		default:
			si += size
		}
	}
	if off < len(val) && val[off] != ' ' && val[off] != '\n' && val[off] != '\t' {
		skipSpace()
	}
	if si > len(src) {
		si = len(src)
	}
	return f.posAt(si)
}

func isSpace(b byte) bool { return b == ' ' || b == '\t' || b == '\n' || b == '\r' }

// errs collects the problems of a load.
type errs struct {
	list  []Error
	order map[string]int
}

func (e *errs) add(p Pos, format string, args ...any) {
	e.list = append(e.list, Error{Pos: p, Msg: fmt.Sprintf(format, args...)})
}

func (e *errs) err() error {
	if len(e.list) == 0 {
		return nil
	}
	list := append([]Error(nil), e.list...)
	sort.SliceStable(list, func(i, j int) bool {
		a, b := list[i], list[j]
		if a.File != b.File {
			return e.order[a.File] < e.order[b.File]
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Column < b.Column
	})
	// The same problem can be found twice (a condition checked alone and
	// as part of a rule): report it once.
	out := list[:0]
	for i, x := range list {
		if i > 0 && x == list[i-1] {
			continue
		}
		out = append(out, x)
	}
	return &LoadError{Errors: out}
}
