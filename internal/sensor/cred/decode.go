package cred

import (
	"encoding/binary"
	"fmt"

	"github.com/vigilsec/vigil/internal/event"
	"github.com/vigilsec/vigil/internal/sensor"
)

var recordSize = binary.Size(bpfCredEvent{})

var opNames = map[bpfCredOp]event.CredOp{
	bpfCredOpCRED_SETUID:    event.CredSetuid,
	bpfCredOpCRED_SETGID:    event.CredSetgid,
	bpfCredOpCRED_SETREUID:  event.CredSetreuid,
	bpfCredOpCRED_SETREGID:  event.CredSetregid,
	bpfCredOpCRED_SETRESUID: event.CredSetresuid,
	bpfCredOpCRED_SETRESGID: event.CredSetresgid,
	bpfCredOpCRED_SETFSUID:  event.CredSetfsuid,
	bpfCredOpCRED_SETFSGID:  event.CredSetfsgid,
	bpfCredOpCRED_SETGROUPS: event.CredSetgroups,
	bpfCredOpCRED_CAPSET:    event.CredCapset,
}

// argCount is how many of the record's args each call passed.
func argCount(op bpfCredOp, args [3]uint32) int {
	switch op {
	case bpfCredOpCRED_SETREUID, bpfCredOpCRED_SETREGID:
		return 2
	case bpfCredOpCRED_SETRESUID, bpfCredOpCRED_SETRESGID, bpfCredOpCRED_CAPSET:
		return 3
	case bpfCredOpCRED_SETGROUPS:
		// The group count, then up to two of the groups.
		return 1 + int(min(args[0], 2))
	}
	return 1
}

// Decode decodes a cred record into e. It does not retain rec.
//
// Args are what the caller passed: the ids for set*id (NoUID for -1); for
// setgroups the group count and then the first two groups; for capset the
// effective, permitted and inheritable sets asked for, capabilities 0-31 only.
// For setfsuid/setfsgid, which return the previous id whatever happens,
// Return is 0 when the id asked for is in effect afterwards (or -1 was
// passed) and -EPERM when not; the previous id is Old.FSUID/FSGID.
func Decode(rec []byte, clk sensor.Clock, e *event.Event) error {
	var raw bpfCredEvent
	if _, err := binary.Decode(rec, binary.LittleEndian, &raw); err != nil {
		return fmt.Errorf("cred record: %w", err)
	}
	op, ok := opNames[bpfCredOp(raw.Op)]
	if !ok {
		return fmt.Errorf("cred record: unknown op %d", raw.Op)
	}
	*e = event.Event{Time: clk.Time(raw.Hdr.KtimeNs), Kind: event.KindCred, Return: int64(raw.Ret)}
	if err := sensor.DecodeTask(rec, clk, &e.Process); err != nil {
		return err
	}
	n := argCount(bpfCredOp(raw.Op), raw.Args)
	e.Cred = &event.Cred{
		Op:   op,
		Args: append([]uint32(nil), raw.Args[:n]...),
		Old:  creds(raw.Old),
		New:  creds(raw.New),
	}
	return nil
}

func creds(c bpfCredIds) event.Creds {
	return event.Creds{
		UID: c.Uid, EUID: c.Euid, SUID: c.Suid, FSUID: c.Fsuid,
		GID: c.Gid, EGID: c.Egid, SGID: c.Sgid, FSGID: c.Fsgid,
		CapEffective: c.CapEffective, CapPermitted: c.CapPermitted,
	}
}
