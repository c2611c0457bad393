package file

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/vigilsec/vigil/internal/event"
	"github.com/vigilsec/vigil/internal/sensor"
)

// Kernel tests: each loads the sensor, runs testdata/trigger (one raw
// syscall per run) in a test cgroup, and checks the decoded events.

var watchedBoth = sensor.KindFilter{FileWrites: sensor.InterestWatched, FileReads: sensor.InterestWatched}

// forEachLoadMode runs a kernel test with the typed loads this kernel
// allows, and again with the probe reads kernels before 6.2 get.
func forEachLoadMode(t *testing.T, test func(t *testing.T, cfg Config)) {
	for _, m := range []struct {
		name string
		cfg  Config
	}{{"typed loads", Config{}}, {"probe reads", Config{ProbeReads: true}}} {
		t.Run(m.name, func(t *testing.T) { test(t, m.cfg) })
	}
}

// stat returns what the kernel reports of the file at p.
func stat(t *testing.T, p string) (ino uint64, dev uint32, mode uint32) {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino, sensor.KernelDev(st.Dev), st.Mode
}

func mkfile(t *testing.T, p string) {
	t.Helper()
	if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
}

func mkdir(t *testing.T, p string) {
	t.Helper()
	if err := os.MkdirAll(p, 0o755); err != nil {
		t.Fatal(err)
	}
}

// checkFile compares an event's file part, and its return value and process.
func checkFile(t *testing.T, e *event.Event, pid uint32, ret int64, want event.File) {
	t.Helper()
	if e.Kind != event.KindFile || e.Process.PID != pid || e.Return != ret || e.Process.Name != "trigger" {
		t.Errorf("event kind %v pid %d return %d name %q, want file, %d, %d, trigger",
			e.Kind, e.Process.PID, e.Return, e.Process.Name, pid, ret)
	}
	if diff := cmp.Diff(want, *e.File); diff != "" {
		t.Errorf("%s (-want +got):\n%s", want.Op, diff)
	}
}

// TestOps runs every operation once on a watched directory and checks every
// field of its record.
func TestOps(t *testing.T) { forEachLoadMode(t, testOps) }

func testOps(t *testing.T, cfg Config) {
	h := newHarnessConfig(t, cfg, watchedBoth)
	d := h.dir
	h.watch(t, sensor.WatchWrite|sensor.WatchRead, d)
	mkfile(t, d+"/exists")
	mkfile(t, d+"/victim")
	mkfile(t, d+"/old")
	mkfile(t, d+"/orig")
	mkfile(t, d+"/big")
	mkdir(t, d+"/gone")
	mkdir(t, d+"/gone2")
	mkdir(t, d+"/sub")
	ino, dev, mode := stat(t, d+"/exists")

	t.Run("open for write", func(t *testing.T) {
		pid, ret := h.trigger(t, d, "open", d+"/exists", "1") // O_WRONLY
		e := h.wait(t, pid, event.FileOpen)
		checkFile(t, e, pid, ret, event.File{Op: event.FileOpen, Path: d + "/exists", PathResolved: true,
			RawPath: d + "/exists", OpenFlags: unix.O_WRONLY, Mode: mode, Inode: ino, Device: dev, Write: true, Watched: true})
	})
	t.Run("open O_CREAT of an existing file", func(t *testing.T) {
		pid, ret := h.trigger(t, d, "openat", "exists", "1102", "600") // O_CREAT|O_RDWR|O_TRUNC
		e := h.wait(t, pid, event.FileOpen)
		checkFile(t, e, pid, ret, event.File{Op: event.FileOpen, Path: d + "/exists", PathResolved: true,
			RawPath: "exists", OpenFlags: unix.O_CREAT | unix.O_RDWR | unix.O_TRUNC, Mode: mode, Inode: ino, Device: dev,
			Write: true, Watched: true})
	})
	t.Run("create", func(t *testing.T) {
		pid, ret := h.trigger(t, d, "open", d+"/new", "101", "640") // O_CREAT|O_WRONLY
		e := h.wait(t, pid, event.FileCreate)
		ino, dev, mode := stat(t, d+"/new")
		checkFile(t, e, pid, ret, event.File{Op: event.FileCreate, Path: d + "/new", PathResolved: true,
			RawPath: d + "/new", OpenFlags: unix.O_CREAT | unix.O_WRONLY, Mode: mode, Inode: ino, Device: dev,
			Write: true, Watched: true})
		if mode&0o7777 != 0o640&^umask(t) {
			t.Errorf("mode %o", mode)
		}
	})
	t.Run("creat and openat2", func(t *testing.T) {
		pid, ret := h.trigger(t, d, "creat", "made", "600")
		e := h.wait(t, pid, event.FileCreate)
		ino, dev, mode := stat(t, d+"/made")
		checkFile(t, e, pid, ret, event.File{Op: event.FileCreate, Path: d + "/made", PathResolved: true,
			RawPath: "made", OpenFlags: unix.O_CREAT | unix.O_WRONLY | unix.O_TRUNC, Mode: mode, Inode: ino, Device: dev,
			Write: true, Watched: true})

		pid, ret = h.trigger(t, d, "openat2", "made2", "101", "600")
		e = h.wait(t, pid, event.FileCreate)
		ino, dev, mode = stat(t, d+"/made2")
		checkFile(t, e, pid, ret, event.File{Op: event.FileCreate, Path: d + "/made2", PathResolved: true,
			RawPath: "made2", OpenFlags: unix.O_CREAT | unix.O_WRONLY, Mode: mode, Inode: ino, Device: dev,
			Write: true, Watched: true})
	})
	t.Run("unlink", func(t *testing.T) {
		pid, ret := h.trigger(t, d, "unlink", d+"/victim")
		checkFile(t, h.wait(t, pid, event.FileUnlink), pid, ret, event.File{Op: event.FileUnlink, Path: d + "/victim",
			RawPath: d + "/victim", UID: event.NoUID, GID: event.NoUID, Watched: true})
	})
	t.Run("rmdir", func(t *testing.T) {
		pid, ret := h.trigger(t, d, "rmdir", "gone")
		checkFile(t, h.wait(t, pid, event.FileRmdir), pid, ret, event.File{Op: event.FileRmdir, Path: d + "/gone",
			RawPath: "gone", UID: event.NoUID, GID: event.NoUID, Watched: true})
		pid, ret = h.trigger(t, d, "unlinkat", "gone2", strconv.Itoa(unix.AT_REMOVEDIR))
		checkFile(t, h.wait(t, pid, event.FileRmdir), pid, ret, event.File{Op: event.FileRmdir, Path: d + "/gone2",
			RawPath: "gone2", UID: event.NoUID, GID: event.NoUID, Watched: true})
	})
	t.Run("rename", func(t *testing.T) {
		pid, ret := h.trigger(t, d, "rename", "old", d+"/sub/new")
		checkFile(t, h.wait(t, pid, event.FileRename), pid, ret, event.File{Op: event.FileRename, Path: d + "/old",
			RawPath: "old", TargetPath: d + "/sub/new", TargetRawPath: d + "/sub/new", UID: event.NoUID, GID: event.NoUID,
			Watched: true})
		pid, ret = h.trigger(t, d, "renameat2", "sub/new", "@"+d+"/sub/newer", "0")
		checkFile(t, h.wait(t, pid, event.FileRename), pid, ret, event.File{Op: event.FileRename, Path: d + "/sub/new",
			RawPath: "sub/new", TargetPath: d + "/sub/newer", TargetRawPath: "newer", UID: event.NoUID, GID: event.NoUID,
			Watched: true})
	})
	t.Run("chmod setuid", func(t *testing.T) {
		pid, ret := h.trigger(t, d, "chmod", "exists", "4755")
		checkFile(t, h.wait(t, pid, event.FileChmod), pid, ret, event.File{Op: event.FileChmod, Path: d + "/exists",
			RawPath: "exists", Mode: 0o4755, UID: event.NoUID, GID: event.NoUID, Watched: true})
		pid, ret = h.trigger(t, d, "fchmodat", "@"+d+"/exists", "2755")
		checkFile(t, h.wait(t, pid, event.FileChmod), pid, ret, event.File{Op: event.FileChmod, Path: d + "/exists",
			RawPath: "exists", Mode: 0o2755, UID: event.NoUID, GID: event.NoUID, Watched: true})
		pid, ret = h.trigger(t, d, "fchmod", "exists", "644")
		checkFile(t, h.wait(t, pid, event.FileChmod), pid, ret, event.File{Op: event.FileChmod, Path: d + "/exists",
			PathResolved: true, Mode: 0o644, Inode: ino, Device: dev, Watched: true})
	})
	t.Run("chown", func(t *testing.T) {
		pid, ret := h.trigger(t, d, "chown", "exists", "65534", "-1")
		checkFile(t, h.wait(t, pid, event.FileChown), pid, ret, event.File{Op: event.FileChown, Path: d + "/exists",
			RawPath: "exists", UID: 65534, GID: event.NoUID, Watched: true})
		pid, ret = h.trigger(t, d, "fchown", "exists", "-1", "65534")
		checkFile(t, h.wait(t, pid, event.FileChown), pid, ret, event.File{Op: event.FileChown, Path: d + "/exists",
			PathResolved: true, UID: event.NoUID, GID: 65534, Inode: ino, Device: dev, Watched: true})
		pid, ret = h.trigger(t, d, "fchownat", "@"+d+"/exists", "0", "0", "0")
		checkFile(t, h.wait(t, pid, event.FileChown), pid, ret, event.File{Op: event.FileChown, Path: d + "/exists",
			RawPath: "exists", UID: 0, GID: 0, Watched: true})
	})
	t.Run("link", func(t *testing.T) {
		pid, ret := h.trigger(t, d, "link", "orig", "hard")
		checkFile(t, h.wait(t, pid, event.FileLink), pid, ret, event.File{Op: event.FileLink, Path: d + "/orig",
			RawPath: "orig", TargetPath: d + "/hard", TargetRawPath: "hard", UID: event.NoUID, GID: event.NoUID, Watched: true})
	})
	t.Run("symlink", func(t *testing.T) {
		pid, ret := h.trigger(t, d, "symlink", "../../etc/shadow", "soft")
		checkFile(t, h.wait(t, pid, event.FileSymlink), pid, ret, event.File{Op: event.FileSymlink,
			Path: filepath.Join(d, "../../etc/shadow"), RawPath: "../../etc/shadow", TargetPath: d + "/soft",
			TargetRawPath: "soft", UID: event.NoUID, GID: event.NoUID, Watched: true})
		pid, ret = h.trigger(t, "/", "symlinkat", "/etc/passwd", "@"+d+"/sub/soft")
		checkFile(t, h.wait(t, pid, event.FileSymlink), pid, ret, event.File{Op: event.FileSymlink,
			Path: "/etc/passwd", RawPath: "/etc/passwd", TargetPath: d + "/sub/soft", TargetRawPath: "soft",
			UID: event.NoUID, GID: event.NoUID, Watched: true})
	})
	t.Run("truncate", func(t *testing.T) {
		bino, bdev, _ := stat(t, d+"/big")
		pid, ret := h.trigger(t, d, "truncate", "big", "100")
		checkFile(t, h.wait(t, pid, event.FileTruncate), pid, ret, event.File{Op: event.FileTruncate, Path: d + "/big",
			RawPath: "big", UID: event.NoUID, GID: event.NoUID, Watched: true})
		pid, ret = h.trigger(t, d, "ftruncate", "big", "0")
		checkFile(t, h.wait(t, pid, event.FileTruncate), pid, ret, event.File{Op: event.FileTruncate, Path: d + "/big",
			PathResolved: true, Inode: bino, Device: bdev, Watched: true})
	})
	t.Run("mkdir", func(t *testing.T) {
		pid, ret := h.trigger(t, d, "mkdir", "newdir", "750")
		checkFile(t, h.wait(t, pid, event.FileMkdir), pid, ret, event.File{Op: event.FileMkdir, Path: d + "/newdir",
			RawPath: "newdir", Mode: 0o750, UID: event.NoUID, GID: event.NoUID, Watched: true})
		pid, ret = h.trigger(t, "/", "mkdirat", "@"+d+"/sub/newdir", "1777")
		checkFile(t, h.wait(t, pid, event.FileMkdir), pid, ret, event.File{Op: event.FileMkdir, Path: d + "/sub/newdir",
			RawPath: "newdir", Mode: 0o1777, UID: event.NoUID, GID: event.NoUID, Watched: true})
	})
	t.Run("failures", func(t *testing.T) {
		pid, ret := h.trigger(t, d, "open", d+"/nodir/x", "1")
		if ret != -int64(unix.ENOENT) {
			t.Fatalf("open returned %d", ret)
		}
		checkFile(t, h.wait(t, pid, event.FileOpen), pid, ret, event.File{Op: event.FileOpen, Path: d + "/nodir/x",
			RawPath: d + "/nodir/x", OpenFlags: unix.O_WRONLY, UID: event.NoUID, GID: event.NoUID, Write: true, Watched: true})
		pid, ret = h.trigger(t, d, "open", "nodir/y", "101", "644")
		checkFile(t, h.wait(t, pid, event.FileOpen), pid, ret, event.File{Op: event.FileOpen, Path: d + "/nodir/y",
			RawPath: "nodir/y", OpenFlags: unix.O_CREAT | unix.O_WRONLY, Mode: 0o644, UID: event.NoUID, GID: event.NoUID,
			Write: true, Watched: true})
		pid, ret = h.trigger(t, d, "unlink", "nothing")
		checkFile(t, h.wait(t, pid, event.FileUnlink), pid, ret, event.File{Op: event.FileUnlink, Path: d + "/nothing",
			RawPath: "nothing", UID: event.NoUID, GID: event.NoUID, Watched: true})
		pid, ret = h.trigger(t, d, "rmdir", d)
		if ret >= 0 {
			t.Fatalf("rmdir of a non-empty directory returned %d", ret)
		}
		checkFile(t, h.wait(t, pid, event.FileRmdir), pid, ret, event.File{Op: event.FileRmdir, Path: d,
			RawPath: d, UID: event.NoUID, GID: event.NoUID, Watched: true})
	})
}

func umask(t *testing.T) uint32 {
	m := unix.Umask(0)
	unix.Umask(m)
	return uint32(m)
}

// TestOutcome checks that the outcome filter applies: with successes only, a
// failed open is not reported.
func TestOutcome(t *testing.T) {
	f := watchedBoth
	f.Outcome = sensor.OutcomeSuccess
	h := newHarness(t, f)
	d := h.dir
	h.watch(t, sensor.WatchWrite, d)
	pid, _ := h.trigger(t, d, "open", "nodir/x", "1")
	h.settle(t, d)
	if got := h.eventsOf(pid); len(got) != 0 {
		t.Errorf("a failed open was reported with OutcomeSuccess:\n%s", h.dump())
	}
}

// TestReadOpens: a read-open is reported only when the file, or the
// directory it is in, is watched for reads.
func TestReadOpens(t *testing.T) { forEachLoadMode(t, testReadOpens) }

func testReadOpens(t *testing.T, cfg Config) {
	h := newHarnessConfig(t, cfg, watchedBoth)
	d := h.dir
	h.watch(t, sensor.WatchWrite, d) // for settle; says nothing about reads
	mkfile(t, d+"/secret")
	mkfile(t, d+"/plain")
	mkdir(t, d+"/keys/deeper")
	mkfile(t, d+"/keys/id")
	mkfile(t, d+"/keys/deeper/x")
	h.watch(t, sensor.WatchRead, d+"/secret", d+"/keys")

	pid, ret := h.trigger(t, d, "open", d+"/secret", "0")
	ino, dev, mode := stat(t, d+"/secret")
	checkFile(t, h.wait(t, pid, event.FileOpen), pid, ret, event.File{Op: event.FileOpen, Path: d + "/secret",
		PathResolved: true, RawPath: d + "/secret", Mode: mode, Inode: ino, Device: dev, Watched: true})

	pid, ret = h.trigger(t, d+"/keys", "openat", "id", "0")
	ino, dev, mode = stat(t, d+"/keys/id")
	checkFile(t, h.wait(t, pid, event.FileOpen), pid, ret, event.File{Op: event.FileOpen, Path: d + "/keys/id",
		PathResolved: true, RawPath: "id", Mode: mode, Inode: ino, Device: dev, Watched: true})

	// Failed read-opens of watched files are matched by path.
	pid, ret = h.trigger(t, d, "open", d+"/keys/missing", "0")
	checkFile(t, h.wait(t, pid, event.FileOpen), pid, ret, event.File{Op: event.FileOpen, Path: d + "/keys/missing",
		RawPath: d + "/keys/missing", UID: event.NoUID, GID: event.NoUID, Watched: true})

	quiet := []uint32{}
	for _, p := range []string{d + "/plain", d + "/keys/deeper/x", "/etc/hostname", d + "/nothing"} {
		pid, _ := h.trigger(t, d, "open", p, "0")
		quiet = append(quiet, pid)
	}
	h.settle(t, d)
	for _, pid := range quiet {
		if got := h.eventsOf(pid); len(got) != 0 {
			t.Errorf("unwatched read-open reported: %+v", *got[0].File)
		}
	}
}

// TestPaths: how the path of each kind of reference comes out.
func TestPaths(t *testing.T) { forEachLoadMode(t, testPaths) }

func testPaths(t *testing.T, cfg Config) {
	h := newHarnessConfig(t, cfg, watchedBoth)
	d := h.dir
	h.watch(t, sensor.WatchWrite, d)
	mkdir(t, d+"/real")
	mkdir(t, d+"/sub")
	if err := os.Symlink("real", d+"/link"); err != nil {
		t.Fatal(err)
	}

	t.Run("relative to the working directory", func(t *testing.T) {
		h.shell(t, d+"/sub", "touch x")
		e := h.waitFor(t, "touch x", func(e *event.Event) bool { return e.File.Op == event.FileCreate && e.File.RawPath == "x" })
		if e.File.Path != d+"/sub/x" || !e.File.PathResolved {
			t.Errorf("touch x in %s/sub: path %q resolved %v", d, e.File.Path, e.File.PathResolved)
		}
		pid, _ := h.trigger(t, d+"/sub", "unlink", "x")
		if f := h.wait(t, pid, event.FileUnlink).File; f.Path != d+"/sub/x" || f.PathResolved {
			t.Errorf("unlink x: path %q resolved %v", f.Path, f.PathResolved)
		}
	})
	t.Run("relative to a dirfd", func(t *testing.T) {
		pid, _ := h.trigger(t, "/", "openat", "@"+d+"/sub/y", "101", "644")
		if f := h.wait(t, pid, event.FileCreate).File; f.Path != d+"/sub/y" || f.RawPath != "y" || !f.PathResolved {
			t.Errorf("openat(dirfd, y): %+v", *f)
		}
		pid, _ = h.trigger(t, "/", "unlinkat", "@"+d+"/sub/y", "0")
		if f := h.wait(t, pid, event.FileUnlink).File; f.Path != d+"/sub/y" || f.RawPath != "y" || f.PathResolved {
			t.Errorf("unlinkat(dirfd, y): %+v", *f)
		}
	})
	t.Run("through a symlinked directory", func(t *testing.T) {
		// An open is resolved by the kernel: the real path.
		pid, _ := h.trigger(t, d, "open", "link/z", "101", "644")
		if f := h.wait(t, pid, event.FileCreate).File; f.Path != d+"/real/z" || f.RawPath != "link/z" || !f.PathResolved {
			t.Errorf("open link/z: %+v", *f)
		}
		// A path operation is joined as written.
		pid, _ = h.trigger(t, d, "unlink", "link/z")
		if f := h.wait(t, pid, event.FileUnlink).File; f.Path != d+"/link/z" || f.PathResolved {
			t.Errorf("unlink link/z: %+v", *f)
		}
	})
	t.Run("dot-dot", func(t *testing.T) {
		mkfile(t, d+"/a")
		pid, _ := h.trigger(t, d+"/sub", "open", "../sub/../a", "1")
		if f := h.wait(t, pid, event.FileOpen).File; f.Path != d+"/a" || !f.PathResolved || !f.Watched {
			t.Errorf("open ../sub/../a: %+v", *f)
		}
		// The kernel cannot tell where ".." leads by the string: it reports
		// the operation without claiming it is watched.
		pid, _ = h.trigger(t, d+"/sub", "unlink", "../a")
		if f := h.wait(t, pid, event.FileUnlink).File; f.Path != d+"/a" || f.Watched {
			t.Errorf("unlink ../a: %+v", *f)
		}
	})
	t.Run("dot and repeated slashes", func(t *testing.T) {
		// They change nothing, in the kernel's path set as in user space.
		mkfile(t, d+"/e")
		raw := ".//" + d[1:] + "//./e"
		pid, _ := h.trigger(t, "/", "unlink", raw)
		if f := h.wait(t, pid, event.FileUnlink).File; f.Path != d+"/e" || f.RawPath != raw || !f.Watched {
			t.Errorf("unlink %s from /: %+v", raw, *f)
		}
	})
	t.Run("longer than a record holds", func(t *testing.T) {
		// A path of more than VIGIL_PATH_MAX - NAME_MAX - 1 bytes (but
		// under PATH_MAX, so the trigger can chdir there): the kernel
		// writes the names nearest the file and says it stopped. The
		// "full" check is the branch a pre-6.7 verifier could drop as dead
		// (bpf/lib/path.h), which would let this path through unflagged.
		deep := d
		for i := 0; len(deep)+251+len("/f") < 4080; i++ {
			deep += fmt.Sprintf("/%03d%s", i, strings.Repeat("x", 246))
		}
		if err := os.MkdirAll(deep, 0o755); err != nil {
			t.Fatal(err)
		}
		h.watch(t, sensor.WatchWrite, deep)
		full := deep + "/f"
		pid, _ := h.trigger(t, deep, "open", "f", "101", "644")
		f := h.wait(t, pid, event.FileCreate).File
		if !f.PathTruncated || len(f.Path) >= len(full) || !strings.HasSuffix(full, f.Path) || !strings.HasPrefix(f.Path, "/") {
			t.Errorf("open f in a %d-byte directory: path %q (%d bytes), truncated %v: want the end of %q, flagged truncated",
				len(deep), f.Path, len(f.Path), f.PathTruncated, full)
		}
		if len(f.Path) < 3800-256 {
			t.Errorf("only %d bytes of the path kept", len(f.Path))
		}
	})
	t.Run("absolute and relative paths from elsewhere", func(t *testing.T) {
		// Nothing above the working directory / is watched: the path
		// set decides, for absolute strings and relative ones with slashes.
		mkfile(t, d+"/b")
		mkfile(t, d+"/c")
		pid, _ := h.trigger(t, "/", "chmod", d+"/b", "600")
		if f := h.wait(t, pid, event.FileChmod).File; f.Path != d+"/b" || !f.Watched {
			t.Errorf("chmod %s/b: %+v", d, *f)
		}
		pid, _ = h.trigger(t, "/", "unlink", d[1:]+"/c")
		if f := h.wait(t, pid, event.FileUnlink).File; f.Path != d+"/c" || !f.Watched {
			t.Errorf("unlink %s/c from /: %+v", d[1:], *f)
		}
	})
}

// TestIgnore: an Ignore mark below a watched directory is the nearest mark,
// and drops what is below it.
func TestIgnore(t *testing.T) { forEachLoadMode(t, testIgnore) }

func testIgnore(t *testing.T, cfg Config) {
	h := newHarnessConfig(t, cfg, sensor.KindFilter{FileWrites: sensor.InterestWatched, FileReads: sensor.InterestNone})
	d := h.dir
	mkdir(t, d+"/ign/deep")
	mkfile(t, d+"/ign/victim")
	mkfile(t, d+"/ign/victim2")
	h.watch(t, sensor.WatchWrite, d)
	h.watch(t, sensor.Ignore, d+"/ign")

	var quiet []uint32
	for _, run := range [][]string{
		{d, "open", d + "/ign/x", "101", "644"},
		{d, "open", d + "/ign/deep/x", "101", "644"},
		{d, "unlink", d + "/ign/victim"},
		{d + "/ign", "unlink", "victim2"},
		{"/", "mkdir", d[1:] + "/ign/newdir", "755"},
	} {
		pid, _ := h.trigger(t, run[0], run[1:]...)
		quiet = append(quiet, pid)
	}
	pid, _ := h.trigger(t, d, "open", d+"/y", "101", "644")
	h.wait(t, pid, event.FileCreate)
	h.settle(t, d)
	for _, pid := range quiet {
		if got := h.eventsOf(pid); len(got) != 0 {
			t.Errorf("write below an ignored directory reported: %+v", *got[0].File)
		}
	}

	// Under InterestAll, what is not ignored is reported, watched or not.
	h.setKind(t, sensor.KindFilter{Enabled: true, CgroupScope: sensor.ScopeIncluded, FileWrites: sensor.InterestAll})
	pid, _ = h.trigger(t, d, "open", d+"/ign/z", "101", "644")
	other := t.TempDir()
	pid2, _ := h.trigger(t, other, "open", "w", "101", "644")
	if f := h.wait(t, pid2, event.FileCreate).File; f.Watched {
		t.Errorf("unwatched create marked watched: %+v", *f)
	}
	h.settle(t, d)
	if got := h.eventsOf(pid); len(got) != 0 {
		t.Errorf("write below an ignored directory reported under InterestAll: %+v", *got[0].File)
	}
}

// TestDisabledKindSendsNothing: with the file kind disabled, a burst of
// 100,000 write-opens reaches the ring buffer not once, and every one of
// them is counted as filtered.
func TestDisabledKindSendsNothing(t *testing.T) {
	h := newHarness(t, watchedBoth)
	d := h.dir
	h.watch(t, sensor.WatchWrite|sensor.WatchRead, d)
	mkfile(t, d+"/f")
	h.setKind(t, sensor.KindFilter{})
	burst(t, h, d+"/f", "1")
}

// TestUnwatchedReadsSendNothing: reads WATCHED with nothing watched: 100,000
// read-opens, no record.
func TestUnwatchedReadsSendNothing(t *testing.T) {
	h := newHarness(t, sensor.KindFilter{FileReads: sensor.InterestWatched, FileWrites: sensor.InterestNone})
	burst(t, h, h.dir+"/f", "0")
}

func burst(t *testing.T, h *harness, p, flags string) {
	t.Helper()
	mkfile(t, p)
	before, err := h.sh.KernelCounts()
	if err != nil {
		t.Fatal(err)
	}
	const n = 100000
	if _, ret := h.trigger(t, h.dir, "openloop", p, flags, strconv.Itoa(n)); ret != n {
		t.Fatalf("openloop returned %d", ret)
	}
	after, err := h.sh.KernelCounts()
	if err != nil {
		t.Fatal(err)
	}
	b, a := before[sensor.TypeFile], after[sensor.TypeFile]
	if a.Sent != b.Sent || a.Lost != b.Lost {
		t.Errorf("sent %d -> %d, lost %d -> %d: records reached the ring buffer", b.Sent, a.Sent, b.Lost, a.Lost)
	}
	if a.Filtered-b.Filtered < n {
		t.Errorf("filtered grew by %d, want at least %d", a.Filtered-b.Filtered, n)
	}
	if rd := h.pending(); rd != 0 {
		t.Errorf("%d records decoded", rd)
	}
}

func (h *harness) pending() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.events)
}

// TestWatchMissing: paths that do not exist are returned, not errors.
func TestWatchMissing(t *testing.T) {
	h := newHarness(t, watchedBoth)
	missing, err := h.s.Watch([]string{h.dir, h.dir + "/nope", h.dir + "/nope/deeper", "/nonexistent-*"}, sensor.WatchWrite)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{h.dir + "/nope", h.dir + "/nope/deeper", "/nonexistent-*"}
	if diff := cmp.Diff(want, missing); diff != "" {
		t.Errorf("missing (-want +got):\n%s", diff)
	}
	// A file made later where a missing path was watched is covered by path.
	mkdir(t, h.dir+"/nope")
	pid, _ := h.trigger(t, "/", "mkdir", h.dir+"/nope/deeper", "755")
	if f := h.wait(t, pid, event.FileMkdir).File; !f.Watched {
		t.Errorf("mkdir of a watched missing path: %+v", *f)
	}
	if err := h.s.ClearWatches(); err != nil {
		t.Fatal(err)
	}
	pid, _ = h.trigger(t, h.dir, "mkdir", "after-clear", "755")
	h.setKind(t, sensor.KindFilter{Enabled: true, CgroupScope: sensor.ScopeIncluded, FileWrites: sensor.InterestAll})
	pid2, _ := h.trigger(t, h.dir, "mkdir", "marker", "755")
	h.wait(t, pid2, event.FileMkdir)
	if got := h.eventsOf(pid); len(got) != 0 {
		t.Errorf("reported after ClearWatches: %+v", *got[0].File)
	}
}

// TestDefaults: with the default lists, reading /etc/shadow is reported and
// reading /etc/hostname is not; a write below /etc is (made to fail, so that
// nothing there changes).
func TestDefaults(t *testing.T) {
	h := newHarness(t, watchedBoth)
	if _, err := h.s.WatchDefaults(); err != nil {
		t.Fatal(err)
	}
	h.watch(t, sensor.WatchWrite, h.dir) // for settle
	if _, err := os.Stat("/etc/shadow"); err != nil {
		t.Skip("no /etc/shadow here")
	}
	pid, ret := h.trigger(t, "/", "open", "/etc/shadow", "0")
	if f := h.wait(t, pid, event.FileOpen).File; f.Path != "/etc/shadow" || !f.Watched || f.Write || ret < 0 {
		t.Errorf("read of /etc/shadow: %+v", *f)
	}
	pid, _ = h.trigger(t, "/", "open", "/etc/vigil-test-no-such-dir/x", "101", "644")
	if f := h.wait(t, pid, event.FileOpen).File; f.Path != "/etc/vigil-test-no-such-dir/x" || !f.Watched || !f.Write {
		t.Errorf("failed write below /etc: %+v", *f)
	}
	quiet, _ := h.trigger(t, "/", "open", "/etc/hostname", "0")
	quiet2, _ := h.trigger(t, "/", "open", "/proc/self/status", "0")
	h.settle(t, h.dir)
	for _, pid := range []uint32{quiet, quiet2} {
		if got := h.eventsOf(pid); len(got) != 0 {
			t.Errorf("unwatched read reported: %+v", *got[0].File)
		}
	}
}
