package spool

import (
	"encoding/binary"
	"errors"
)

// Record packs the parts of a record (an id, a subject, a body...) each
// behind its length, for the sender to take apart with Fields.
func Record(parts ...[]byte) []byte {
	n := 0
	for _, p := range parts {
		n += binary.MaxVarintLen32 + len(p)
	}
	out := make([]byte, 0, n)
	for _, p := range parts {
		out = binary.AppendUvarint(out, uint64(len(p)))
		out = append(out, p...)
	}
	return out
}

var errFields = errors.New("spool: malformed record")

// Fields splits a record made by Record into its n parts.
func Fields(rec []byte, n int) ([][]byte, error) {
	out := make([][]byte, 0, n)
	for range n {
		l, k := binary.Uvarint(rec)
		if k <= 0 || uint64(len(rec)-k) < l {
			return nil, errFields
		}
		out = append(out, rec[k:k+int(l)])
		rec = rec[k+int(l):]
	}
	if len(rec) != 0 {
		return nil, errFields
	}
	return out, nil
}
