package file

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"path"
	"strings"
	"unsafe"

	"github.com/vigilsec/vigil/internal/event"
	"github.com/vigilsec/vigil/internal/sensor"
)

// fileSize is the size of the fixed part of a file record. Its fields are
// read at the offsets of the bpf2go mirror of struct file_event, by hand:
// binary.Decode's reflection would cost more than the rest of Decode.
var (
	fileSize = binary.Size(bpfFileEvent{})
	layout   bpfFileEvent
	offOp    = unsafe.Offsetof(layout.Op)
	offRet   = unsafe.Offsetof(layout.Ret)
	offFlags = unsafe.Offsetof(layout.Flags)
	offOpenF = unsafe.Offsetof(layout.OpenFlags)
	offMode  = unsafe.Offsetof(layout.Mode)
	offUID   = unsafe.Offsetof(layout.Uid)
	offGID   = unsafe.Offsetof(layout.Gid)
	offDev   = unsafe.Offsetof(layout.Dev)
	offIno   = unsafe.Offsetof(layout.Ino)
	offLens  = unsafe.Offsetof(layout.PathLen) // path, raw, path2, raw2: four u16
)

var opNames = [...]event.FileOp{
	bpfFileOpFILE_OPEN:     event.FileOpen,
	bpfFileOpFILE_CREATE:   event.FileCreate,
	bpfFileOpFILE_UNLINK:   event.FileUnlink,
	bpfFileOpFILE_RMDIR:    event.FileRmdir,
	bpfFileOpFILE_RENAME:   event.FileRename,
	bpfFileOpFILE_CHMOD:    event.FileChmod,
	bpfFileOpFILE_CHOWN:    event.FileChown,
	bpfFileOpFILE_LINK:     event.FileLink,
	bpfFileOpFILE_SYMLINK:  event.FileSymlink,
	bpfFileOpFILE_TRUNCATE: event.FileTruncate,
	bpfFileOpFILE_MKDIR:    event.FileMkdir,
}

// Decode decodes a file record (sensor.TypeFile) into e. It does not retain rec.
//
// Fields by operation: OpenFlags for open and create; Mode for create and
// open (the file's type and permission bits, or the mode argument when the
// open failed), chmod and mkdir (the argument, with setuid, setgid and sticky
// bits); UID and GID for chown (event.NoUID: left unchanged), otherwise the
// owner of the file when the kernel had it open (opens and fd operations),
// else NoUID; Inode and Device when the kernel had the file open.
func Decode(rec []byte, clk sensor.Clock, e *event.Event) error {
	if len(rec) < fileSize {
		return fmt.Errorf("file record: %d bytes, shorter than its %d fixed bytes", len(rec), fileSize)
	}
	le := binary.LittleEndian
	u32 := func(off uintptr) uint32 { return le.Uint32(rec[off:]) }
	var lens [4]int
	want := 0
	for i := range lens {
		lens[i] = int(le.Uint16(rec[offLens+2*uintptr(i):]))
		want += lens[i]
	}
	data := rec[fileSize:]
	if len(data) < want {
		return fmt.Errorf("file record: %d bytes of data, header says %d", len(data), want)
	}
	path1, data := data[:lens[0]], data[lens[0]:]
	raw1, data := data[:lens[1]], data[lens[1]:]
	path2, data := data[:lens[2]], data[lens[2]:]
	raw2 := data[:lens[3]]

	*e = event.Event{Time: clk.Time(le.Uint64(rec)), Kind: event.KindFile, Return: int64(int32(u32(offRet)))}
	if err := sensor.DecodeTask(rec, clk, &e.Process); err != nil {
		return err
	}
	flags := bpfFileFlag(u32(offFlags))
	f := &event.File{
		Op:            opName(u32(offOp)),
		RawPath:       sensor.CString(raw1),
		PathTruncated: flags&bpfFileFlagFILE_PATH_TRUNCATED != 0,
		Mode:          u32(offMode),
		UID:           u32(offUID),
		GID:           u32(offGID),
		Inode:         le.Uint64(rec[offIno:]),
		Device:        u32(offDev),
		Write:         flags&bpfFileFlagFILE_WRITE != 0,
		Watched:       flags&bpfFileFlagFILE_WATCHED != 0,
	}
	if f.Op == event.FileOpen || f.Op == event.FileCreate {
		f.OpenFlags = u32(offOpenF)
	}
	if lens[2] > 0 || lens[3] > 0 {
		f.TargetRawPath = sensor.CString(raw2)
		f.TargetPathResolved = flags&bpfFileFlagFILE_PATH2RESOLVED != 0
		f.TargetPath = operandPath(path2, f.TargetRawPath, f.TargetPathResolved)
	}
	if f.Op == event.FileSymlink {
		// RawPath is the link's content: where it points, seen from the
		// directory the link is in.
		f.Path = sensor.Resolve(f.RawPath, path.Dir(f.TargetPath))
	} else {
		f.PathResolved = flags&bpfFileFlagFILE_PATH_RESOLVED != 0
		f.Path = operandPath(path1, f.RawPath, f.PathResolved)
	}
	e.File = f
	return nil
}

// operandPath is the absolute path of one operand: the kernel's own when it
// resolved it, else the caller's string joined onto the directory it starts
// from. An absolute string starts from the task's root, which the kernel
// sends too (empty unless the task is chrooted).
func operandPath(components []byte, raw string, resolved bool) string {
	dir := joinComponents(components)
	if resolved {
		return dir
	}
	if raw == "" {
		return dir
	}
	return path.Join(dir, raw)
}

// joinComponents is sensor.JoinComponents without its intermediate slice of
// strings, which made up half of Decode's time: file records are the most
// numerous of all.
func joinComponents(b []byte) string {
	b = bytes.TrimSuffix(b, []byte{0})
	if len(b) == 0 {
		return "/"
	}
	var sb strings.Builder
	sb.Grow(len(b) + 1)
	for end := len(b); end >= 0; {
		start := bytes.LastIndexByte(b[:end], 0) + 1
		sb.WriteByte('/')
		sb.Write(b[start:end])
		end = start - 1
	}
	return sb.String()
}

func opName(op uint32) event.FileOp {
	if int(op) < len(opNames) && opNames[op] != "" {
		return opNames[op]
	}
	return event.FileOp(fmt.Sprintf("op%d", op))
}
