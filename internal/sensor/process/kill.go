package process

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"

	"github.com/vigilsec/vigil/internal/sensor"
)

// KillSet is what the kernel kills at exec, before the new program runs:
// executables by file, and everything below directories. Allow wins over
// both: allowlisted programs are never killed, nor is pid 1 or Vigil.
type KillSet struct {
	Files []sensor.InodeKey
	Trees []sensor.InodeKey
	Allow []sensor.InodeKey
}

// execKill is the sensor's kill map and its switch.
type execKill struct {
	m  *ebpf.Map
	on *ebpf.Variable
}

// SetExecKill replaces the kill set. An empty set turns the check off.
func (s *Sensor) SetExecKill(ks KillSet) error {
	if s.kill.m == nil {
		return errors.New("exec kill: sensor closed")
	}
	want := map[sensor.InodeKey]uint32{}
	for _, k := range ks.Files {
		want[k] |= uint32(bpfExecKillMarkKILL_FILE)
	}
	for _, k := range ks.Trees {
		want[k] |= uint32(bpfExecKillMarkKILL_TREE)
	}
	kills := len(want)
	for _, k := range ks.Allow {
		want[k] |= uint32(bpfExecKillMarkKILL_ALLOW)
	}
	if kills == 0 {
		if err := s.kill.on.Set(uint32(0)); err != nil {
			return fmt.Errorf("exec kill: %w", err)
		}
	}
	var old []bpfExecKillKey
	var k bpfExecKillKey
	var v uint32
	it := s.kill.m.Iterate()
	for it.Next(&k, &v) {
		old = append(old, k)
	}
	var errs []error
	for _, k := range old {
		if _, ok := want[sensor.InodeKey{Ino: k.Ino, Dev: k.Dev}]; !ok {
			errs = append(errs, ignoreNotExist(s.kill.m.Delete(&k)))
		}
	}
	for ik, mark := range want {
		k := bpfExecKillKey{Ino: ik.Ino, Dev: ik.Dev}
		if err := s.kill.m.Put(&k, mark); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("exec kill: %w", err)
	}
	if kills > 0 {
		if err := s.kill.on.Set(uint32(1)); err != nil {
			return fmt.Errorf("exec kill: %w", err)
		}
	}
	return nil
}

func ignoreNotExist(err error) error {
	if errors.Is(err, ebpf.ErrKeyNotExist) {
		return nil
	}
	return err
}
