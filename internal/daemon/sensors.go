package daemon

import (
	"errors"
	"fmt"
	"io"

	"github.com/vigilsec/vigil/internal/config"
	"github.com/vigilsec/vigil/internal/event"
	"github.com/vigilsec/vigil/internal/rules"
	"github.com/vigilsec/vigil/internal/sensor"
	"github.com/vigilsec/vigil/internal/sensor/cred"
	"github.com/vigilsec/vigil/internal/sensor/file"
	"github.com/vigilsec/vigil/internal/sensor/kernel"
	netsensor "github.com/vigilsec/vigil/internal/sensor/net"
	"github.com/vigilsec/vigil/internal/sensor/process"
)

// decoder turns one ring buffer record into an event.
type decoder func(rec []byte, clk sensor.Clock, e *event.Event) error

// attached is a sensor the agent holds.
type attached struct {
	name    string
	hooks   []string
	missing []string // hooks this kernel lacks; the sensor works without them
	closer  io.Closer
}

// optionalSensor is a sensor the agent can run without: if it fails to load,
// the agent says so and goes on.
type optionalSensor struct {
	name    string
	enabled bool
	types   []uint16
	decode  decoder
	load    func(*sensor.Shared) (io.Closer, []string, error) // closer, missing hooks
	hooks   []string
}

func (a *Agent) optionalSensors() []optionalSensor {
	s := a.cfg.Sensors
	return []optionalSensor{
		{name: "file", enabled: s.File.Enabled.Loaded(), types: []uint16{sensor.TypeFile}, decode: file.Decode, hooks: file.Hooks,
			load: func(sh *sensor.Shared) (io.Closer, []string, error) {
				f, err := file.New(file.Config{}, sh)
				if err != nil {
					return nil, nil, err
				}
				if err := a.watchFiles(f); err != nil {
					f.Close()
					return nil, nil, err
				}
				a.fileSensor = f
				if err := a.watchRuleNeeds(a.rules.Load()); err != nil {
					f.Close()
					return nil, nil, err
				}
				return f, f.Skipped, nil
			}},
		{name: "cred", enabled: s.Cred.Enabled.Loaded(), types: []uint16{sensor.TypeCred}, decode: cred.Decode, hooks: cred.Hooks,
			load: func(sh *sensor.Shared) (io.Closer, []string, error) {
				c, err := cred.New(cred.Config{}, sh)
				return c, nil, err
			}},
		{name: "net", enabled: s.Net.Enabled.Loaded(), types: []uint16{sensor.TypeNet}, decode: netsensor.Decode, hooks: netsensor.Hooks,
			load: func(sh *sensor.Shared) (io.Closer, []string, error) {
				n, err := netsensor.New(netsensor.Config{}, sh)
				return n, nil, err
			}},
		{name: "kernel", enabled: s.Kernel.Enabled.Loaded(), types: []uint16{sensor.TypeKernel}, decode: kernel.Decode, hooks: kernel.Hooks,
			load: func(sh *sensor.Shared) (io.Closer, []string, error) {
				k, err := kernel.New(kernel.Config{}, sh)
				if err != nil {
					return nil, nil, err
				}
				return k, k.Missing(), nil
			}},
	}
}

// attach loads the sensors. The process sensor is required; the others are
// loaded when enabled, and a failure to load one is logged, shown in status,
// and not fatal.
func (a *Agent) attach() (err error) {
	if a.shared, err = sensor.NewShared(a.cfg.Kernel.RingBufferMiB << 20); err != nil {
		return err
	}
	if err := a.applyFilters(a.rules.Load()); err != nil {
		return err
	}
	p, err := process.New(process.Config{}, a.shared)
	if err != nil {
		return err
	}
	a.procSensor = p
	a.sensors = append(a.sensors, attached{name: "process", hooks: process.Hooks, closer: p})
	a.decoders[sensor.TypeExec] = process.DecodeExec
	a.decoders[sensor.TypeFork] = process.DecodeFork
	a.decoders[sensor.TypeExit] = process.DecodeExit

	for _, o := range a.optionalSensors() {
		if !o.enabled {
			continue
		}
		c, missing, err := o.load(a.shared)
		if err != nil {
			a.log.Warn("sensor not loaded; running without it", "sensor", o.name, "err", err)
			a.sensorErrors = append(a.sensorErrors, SensorStatus{Name: o.name, Error: err.Error()})
			continue
		}
		if len(missing) > 0 {
			a.log.Info("sensor runs without hooks this kernel lacks", "sensor", o.name, "missing", missing)
		}
		a.sensors = append(a.sensors, attached{name: o.name, hooks: o.hooks, missing: missing, closer: c})
		for _, t := range o.types {
			a.decoders[t] = o.decode
		}
	}
	if a.cfg.Anomaly.Enabled {
		if err := a.startAnomaly(); err != nil {
			a.log.Warn("sensor not loaded; running without it", "sensor", "seq", "err", err)
			a.sensorErrors = append(a.sensorErrors, SensorStatus{Name: "seq", Error: err.Error()})
		}
	}
	if a.cfg.Ransomware.Enabled {
		if err := a.startRansom(); err != nil {
			a.log.Warn("sensor not loaded; running without it", "sensor", "ransom", "err", err)
			a.sensorErrors = append(a.sensorErrors, SensorStatus{Name: "ransom", Error: err.Error()})
		}
	}
	a.reader, err = sensor.NewReader(a.shared, a.cfg.Kernel.Poll.D())
	return err
}

// applyFilters tells the kernel what to send, from the configuration and,
// for sensors set to auto, from the kinds the loaded rules are on.
func (a *Agent) applyFilters(set *rules.Set) error {
	needed := map[event.Kind]bool{}
	if set != nil {
		for _, k := range set.Needs().Kinds {
			needed[k] = true
		}
	}
	s := a.cfg.Sensors
	kinds := []struct {
		t    uint16
		kind event.Kind
		cfg  config.Sensor
	}{
		{sensor.TypeCred, event.KindCred, s.Cred}, {sensor.TypeNet, event.KindNet, s.Net}, {sensor.TypeKernel, event.KindKernel, s.Kernel},
	}
	var errs []error
	for _, k := range kinds {
		f := sensor.KindFilter{Enabled: k.cfg.Enabled.Sends(needed[k.kind]), Outcome: sensor.Outcome(config.Outcomes[k.cfg.Outcome])}
		errs = append(errs, a.shared.SetKind(k.t, f))
		a.kindOff[k.t].Store(!f.Enabled)
	}
	fs := s.File
	a.kindOff[sensor.TypeFile].Store(!fs.Enabled.Sends(needed[event.KindFile]))
	errs = append(errs, a.shared.SetKind(sensor.TypeFile, sensor.KindFilter{
		Enabled:    fs.Enabled.Sends(needed[event.KindFile]),
		Outcome:    sensor.Outcome(config.Outcomes[fs.Outcome]),
		FileWrites: sensor.Interest(config.Interests[fs.Writes]),
		FileReads:  sensor.Interest(config.Interests[fs.Reads]),
	}))
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("set kernel filters: %w", err)
	}
	return nil
}

// watchFiles fills the file interest set from the configuration, or from
// the built-in lists where the configuration names none.
func (a *Agent) watchFiles(f *file.Sensor) error {
	fs := a.cfg.Sensors.File
	orDefault := func(paths, def []string) []string {
		if len(paths) == 0 {
			return def
		}
		return paths
	}
	var missing []string
	for _, l := range []struct {
		paths []string
		mark  sensor.InodeMark
	}{
		{orDefault(fs.WatchReads, file.DefaultSensitiveReads), sensor.WatchRead},
		{orDefault(fs.WatchWrites, file.DefaultWatchedWrites), sensor.WatchWrite},
		{orDefault(fs.Ignore, file.DefaultIgnored), sensor.Ignore},
	} {
		m, err := f.Watch(l.paths, l.mark)
		if err != nil {
			return fmt.Errorf("file interest set: %w", err)
		}
		missing = append(missing, m...)
	}
	if len(missing) > 0 {
		a.log.Debug("watched paths that do not exist (yet)", "paths", missing)
	}
	return nil
}

func (a *Agent) closeSensors() error {
	var errs []error
	for _, s := range a.sensors {
		errs = append(errs, s.closer.Close())
	}
	a.sensors = nil
	return errors.Join(errs...)
}
