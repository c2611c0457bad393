// Package fim is file integrity monitoring in the manner of AIDE: a
// baseline of what files are (content hash, size, mode, owner, inode,
// mtime, symlink target), and the differences of the files now from it.
//
// Hashing is parallel and bounded in memory: a fixed number of workers, each
// streaming files through one buffer, so a large file occupies one worker
// and nothing else.
package fim

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Type of an entry.
const (
	TypeFile    = "f"
	TypeDir     = "d"
	TypeSymlink = "l"
	TypeOther   = "o" // devices, sockets, fifos: metadata only
)

// Entry is what the baseline keeps of one path.
type Entry struct {
	Path   string
	Type   string
	Size   int64
	Mode   uint32 // permission and type bits, as st_mode
	UID    uint32
	GID    uint32
	Inode  uint64
	Mtime  time.Time
	Target string // symlink target
	SHA256 string // hex, regular files only
}

// Scanner walks and hashes.
type Scanner struct {
	// Exclude are path.Match patterns, matched against the whole path and,
	// for patterns without a "/", the file's name; or directory prefixes
	// ending in "/".
	Exclude []string
	// Workers hash in parallel (default 2).
	Workers int
	// BufSize is each worker's read buffer (default 64 KiB).
	BufSize int
}

// Excluded says whether p is left out.
func (s *Scanner) Excluded(p string) bool {
	for _, x := range s.Exclude {
		if strings.HasSuffix(x, "/") {
			if strings.HasPrefix(p+"/", x) {
				return true
			}
			continue
		}
		if ok, _ := path.Match(x, p); ok {
			return true
		}
		if ok, _ := path.Match(x, path.Base(p)); ok && !strings.Contains(x, "/") {
			return true
		}
	}
	return false
}

// Scan records every path below roots (a root that is a file is itself).
// Symlinks are recorded, not followed. Problems with single files are
// returned together, after the rest is scanned.
func (s *Scanner) Scan(ctx context.Context, roots []string) (map[string]Entry, error) {
	var paths []string
	var errs []error
	for _, root := range roots {
		root = filepath.Clean(root)
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				if p == root && errors.Is(err, fs.ErrNotExist) {
					return nil
				}
				errs = append(errs, err)
				return nil
			}
			if s.Excluded(p) {
				if d.IsDir() {
					return fs.SkipDir
				}
				return nil
			}
			paths = append(paths, p)
			return ctx.Err()
		})
		if err != nil {
			return nil, err
		}
	}
	out, herrs := s.Entries(ctx, paths)
	return out, errors.Join(append(errs, herrs...)...)
}

// Entries stats and hashes paths with the workers. A path that does not
// exist is absent from the result, not an error.
func (s *Scanner) Entries(ctx context.Context, paths []string) (map[string]Entry, []error) {
	workers := max(s.Workers, 1)
	if s.Workers == 0 {
		workers = 2
	}
	bufSize := s.BufSize
	if bufSize <= 0 {
		bufSize = 64 << 10
	}
	jobs := make(chan string)
	var mu sync.Mutex
	out := make(map[string]Entry, len(paths))
	var errs []error
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			buf := make([]byte, bufSize)
			for p := range jobs {
				e, err := Stat(p, buf)
				mu.Lock()
				switch {
				case err == nil:
					out[p] = e
				case !errors.Is(err, fs.ErrNotExist):
					errs = append(errs, err)
				}
				mu.Unlock()
			}
		})
	}
	for _, p := range paths {
		if ctx.Err() != nil {
			break
		}
		jobs <- p
	}
	close(jobs)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		errs = append(errs, err)
	}
	return out, errs
}

// Stat records one path, hashing a regular file through buf.
func Stat(p string, buf []byte) (Entry, error) {
	fi, err := os.Lstat(p)
	if err != nil {
		return Entry{}, err
	}
	st, _ := fi.Sys().(*syscall.Stat_t)
	e := Entry{Path: p, Size: fi.Size(), Mtime: fi.ModTime()}
	if st != nil {
		e.Mode, e.UID, e.GID, e.Inode = st.Mode, st.Uid, st.Gid, st.Ino
	}
	switch {
	case fi.Mode().IsRegular():
		e.Type = TypeFile
		f, err := os.Open(p)
		if err != nil {
			return Entry{}, err
		}
		defer f.Close()
		h := sha256.New()
		if _, err := io.CopyBuffer(h, struct{ io.Reader }{f}, buf); err != nil {
			return Entry{}, fmt.Errorf("%s: %w", p, err)
		}
		e.SHA256 = hex.EncodeToString(h.Sum(nil))
	case fi.IsDir():
		e.Type = TypeDir
		e.Size = 0 // directory sizes change with every file made in them
	case fi.Mode()&fs.ModeSymlink != 0:
		e.Type = TypeSymlink
		if e.Target, err = os.Readlink(p); err != nil {
			return Entry{}, err
		}
	default:
		e.Type = TypeOther
	}
	return e, nil
}

// Change is one difference from the baseline.
type Change struct {
	Path   string
	Kind   string // "added", "removed", "changed"
	Old    *Entry
	New    *Entry
	Fields []string // for changed: what differs (sha256, size, mode, owner, group, inode, mtime, target, type)
}

// Diff compares now with the baseline, in path order.
func Diff(base, now map[string]Entry) []Change {
	var out []Change
	for p, n := range now {
		n := n
		o, ok := base[p]
		if !ok {
			out = append(out, Change{Path: p, Kind: "added", New: &n})
			continue
		}
		if f := Compare(o, n); len(f) > 0 {
			o := o
			out = append(out, Change{Path: p, Kind: "changed", Old: &o, New: &n, Fields: f})
		}
	}
	for p, o := range base {
		if _, ok := now[p]; !ok {
			o := o
			out = append(out, Change{Path: p, Kind: "removed", Old: &o})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}

// Compare lists the fields in which two records of a path differ.
func Compare(o, n Entry) []string {
	var f []string
	add := func(differ bool, name string) {
		if differ {
			f = append(f, name)
		}
	}
	add(o.Type != n.Type, "type")
	add(o.SHA256 != n.SHA256, "sha256")
	add(o.Size != n.Size, "size")
	add(o.Mode != n.Mode, "mode")
	add(o.UID != n.UID, "owner")
	add(o.GID != n.GID, "group")
	add(o.Inode != n.Inode, "inode")
	add(!o.Mtime.Equal(n.Mtime), "mtime")
	add(o.Target != n.Target, "target")
	return f
}

// Exit status bits of `vigil fim check`, as AIDE's.
const (
	ExitAdded   = 1
	ExitRemoved = 2
	ExitChanged = 4
)

// ExitCode is the bits of the kinds of changes present.
func ExitCode(ch []Change) int {
	code := 0
	for _, c := range ch {
		switch c.Kind {
		case "added":
			code |= ExitAdded
		case "removed":
			code |= ExitRemoved
		case "changed":
			code |= ExitChanged
		}
	}
	return code
}

// Report writes the changes as AIDE does: a summary, the lists, then the
// details of each change.
func Report(w io.Writer, total int, ch []Change) {
	var added, removed, changed []Change
	for _, c := range ch {
		switch c.Kind {
		case "added":
			added = append(added, c)
		case "removed":
			removed = append(removed, c)
		default:
			changed = append(changed, c)
		}
	}
	if len(ch) == 0 {
		fmt.Fprintf(w, "No differences found between the files and the baseline (%d entries).\n", total)
		return
	}
	fmt.Fprintf(w, "Found differences between the files and the baseline!\n\nSummary:\n")
	fmt.Fprintf(w, "  Total number of entries:\t%d\n  Added entries:\t\t%d\n  Removed entries:\t\t%d\n  Changed entries:\t\t%d\n",
		total, len(added), len(removed), len(changed))
	rule := strings.Repeat("-", 51)
	section := func(title string, list []Change, line func(Change) string) {
		if len(list) == 0 {
			return
		}
		fmt.Fprintf(w, "\n%s\n%s:\n%s\n\n", rule, title, rule)
		for _, c := range list {
			fmt.Fprintln(w, line(c))
		}
	}
	section("Added entries", added, func(c Change) string { return c.New.Type + "++++++++++: " + c.Path })
	section("Removed entries", removed, func(c Change) string { return c.Old.Type + "----------: " + c.Path })
	section("Changed entries", changed, func(c Change) string { return c.New.Type + " " + flags(c.Fields) + ": " + c.Path })
	if len(changed) == 0 {
		return
	}
	fmt.Fprintf(w, "\n%s\nDetailed information about changes:\n%s\n", rule, rule)
	for _, c := range changed {
		fmt.Fprintf(w, "\nFile: %s\n", c.Path)
		for _, f := range c.Fields {
			o, n := field(c.Old, f), field(c.New, f)
			fmt.Fprintf(w, "  %-8s : %s | %s\n", f, o, n)
		}
	}
}

// flags is AIDE's summary string: one letter per attribute that changed.
func flags(fields []string) string {
	letters := []struct{ field, c string }{{"type", "f"}, {"size", "s"}, {"mode", "p"}, {"owner", "u"}, {"group", "g"},
		{"inode", "i"}, {"mtime", "m"}, {"sha256", "C"}, {"target", "l"}}
	var b strings.Builder
	for _, l := range letters {
		if contains(fields, l.field) {
			b.WriteString(l.c)
		} else {
			b.WriteString(".")
		}
	}
	return b.String()
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

func field(e *Entry, f string) string {
	switch f {
	case "type":
		return e.Type
	case "sha256":
		return e.SHA256
	case "size":
		return fmt.Sprint(e.Size)
	case "mode":
		return fmt.Sprintf("%o", e.Mode)
	case "owner":
		return fmt.Sprint(e.UID)
	case "group":
		return fmt.Sprint(e.GID)
	case "inode":
		return fmt.Sprint(e.Inode)
	case "mtime":
		return e.Mtime.UTC().Format(time.RFC3339Nano)
	case "target":
		return e.Target
	}
	return ""
}

// Under says whether p is one of roots or below one.
func Under(p string, roots []string) bool {
	for _, r := range roots {
		r = filepath.Clean(r)
		if p == r || strings.HasPrefix(p, strings.TrimSuffix(r, "/")+"/") {
			return true
		}
	}
	return false
}
