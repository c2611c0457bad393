package anomaly

import (
	"encoding/json"
	"fmt"
	"slices"
)

// modelJSON is a model on disk: n-grams as their numbers, then the count.
type modelJSON struct {
	N         int        `json:"n"`
	Frame     int        `json:"frame"`
	Threshold float64    `json:"threshold"`
	Total     uint64     `json:"total"`
	Grams     [][]uint32 `json:"grams"`
}

func (m *Model) MarshalJSON() ([]byte, error) {
	j := modelJSON{N: m.N, Frame: m.Frame, Threshold: m.Threshold, Total: m.Total, Grams: make([][]uint32, 0, len(m.Grams))}
	keys := make([]uint64, 0, len(m.Grams))
	for k := range m.Grams {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		g := make([]uint32, 0, m.N+1)
		for _, x := range unpack(k, m.N) {
			g = append(g, uint32(x))
		}
		j.Grams = append(j.Grams, append(g, m.Grams[k]))
	}
	return json.Marshal(j)
}

func (m *Model) UnmarshalJSON(b []byte) error {
	var j modelJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	nm, err := NewModel(Params{N: j.N, Frame: j.Frame})
	if err != nil {
		return err
	}
	nm.Threshold, nm.Total = j.Threshold, j.Total
	for i, g := range j.Grams {
		if len(g) != j.N+1 {
			return fmt.Errorf("n-gram %d has %d numbers, want %d and a count", i, len(g), j.N+1)
		}
		w := make([]uint16, j.N)
		for k := range j.N {
			if g[k] >= MaxSyscall {
				return fmt.Errorf("n-gram %d: %d is not a syscall number", i, g[k])
			}
			w[k] = uint16(g[k])
		}
		nm.Grams[pack(w)] = g[j.N]
	}
	*m = *nm
	return nil
}
