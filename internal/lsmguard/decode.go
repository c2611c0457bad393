package lsmguard

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"time"
	"unsafe"
)

// decodeDenial reads one vigil_denials record (struct denial).
func decodeDenial(b []byte) (Denial, error) {
	var r bpfDenial
	if len(b) < int(unsafe.Sizeof(r)) {
		return Denial{}, fmt.Errorf("denial record: %d bytes, want %d", len(b), unsafe.Sizeof(r))
	}
	if err := binary.Read(bytes.NewReader(b), binary.NativeEndian, &r); err != nil {
		return Denial{}, fmt.Errorf("denial record: %w", err)
	}
	comm := make([]byte, 0, len(r.Comm))
	for _, c := range r.Comm {
		if c == 0 {
			break
		}
		comm = append(comm, byte(c))
	}
	return Denial{
		Op:     Op(r.Op),
		Time:   time.Duration(r.KtimeNs),
		PID:    r.Pid,
		TGID:   r.Tgid,
		UID:    r.Uid,
		Comm:   string(comm),
		Cgroup: r.Cgroup,
		Dev:    r.Dev,
		Ino:    r.Ino,
		Family: r.Family,
	}, nil
}
