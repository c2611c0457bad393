package daemon

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/vigilsec/vigil/internal/config"
	"github.com/vigilsec/vigil/internal/container"
	"github.com/vigilsec/vigil/internal/detect/resource"
	"github.com/vigilsec/vigil/internal/event"
)

// containers attributes events to containers and samples their resource
// use for the resource detector. A nil *containers does nothing.
type containers struct {
	cfg      config.Containers
	log      *slog.Logger
	resolver *container.Resolver
	detector *resource.Detector // nil when resources are off
}

func newContainers(cfg config.Config, log *slog.Logger) *containers {
	if !cfg.Containers.Enabled {
		return nil
	}
	root := cfg.Paths.Cgroupfs
	if root != "" && container.DetectCgroupRoot() == "" {
		root = "" // a v1-only host: attribution by /proc/<pid>/cgroup
	}
	r, err := container.New(container.Config{CgroupRoot: root, ProcRoot: cfg.Paths.Procfs, StateRoot: cfg.Containers.StateRoot})
	if err != nil {
		log.Warn("container attribution off", "err", err)
		return nil
	}
	if h := r.Stats().HandleError; h != "" {
		log.Info("cgroups resolved by walking the hierarchy", "reason", h)
	}
	c := &containers{cfg: cfg.Containers, log: log, resolver: r}
	if rc := cfg.Containers.Resources; rc.Enabled {
		c.detector = resource.New(resource.Config{
			CPUPercent: float64(rc.CPUPercent), MemoryBytes: uint64(rc.Memory), PIDs: rc.PIDs,
			IOBytesPerSecond: uint64(rc.IOPerSecond), Sustain: rc.Sustain.D(),
			MinerCPUPercent: float64(rc.Miner.CPUPercent), MinerWindow: rc.Miner.Window.D(),
			MinerPorts: rc.Miner.Ports, MinerDomains: rc.Miner.Domains,
		})
	}
	return c
}

// enrich attributes e; network events of containers also go to the miner
// check, whose alerts go to emit. It runs on the reader goroutine.
func (c *containers) enrich(e *event.Event, emit func(*event.Event)) {
	if c == nil {
		return
	}
	c.resolver.Enrich(e)
	if e.Kind == event.KindExit {
		c.resolver.Forget(e.Process.PID, e.Process.StartBoot)
	}
	if c.detector != nil && e.Net != nil && e.Container != nil {
		for _, a := range c.detector.ObserveNet(e) {
			emit(a)
		}
	}
}

// start runs the resource sampler until the returned stop is called; its
// alerts go to emit. Stop returns once the sampler has stopped, so that
// emit is never called after.
func (c *containers) start(ctx context.Context, emit func(*event.Event)) (stop func()) {
	if c == nil || c.detector == nil {
		return func() {}
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		c.sample(ctx, emit)
	}()
	return func() { cancel(); wg.Wait() }
}

func (c *containers) sample(ctx context.Context, emit func(*event.Event)) {
	iv := c.cfg.Resources.Interval.D()
	t := time.NewTicker(iv)
	defer t.Stop()
	var listErrs int
	for {
		now := time.Now()
		list, err := c.resolver.Containers()
		if err != nil && listErrs == 0 {
			c.log.Warn("containers not listed for resource sampling", "err", err)
			listErrs++
		}
		for _, ctr := range list {
			u, err := c.resolver.Usage(ctr)
			if err != nil {
				continue // gone since listed
			}
			s := resource.Sample{At: now, Container: ctr, CPU: u.CPU, Memory: u.MemoryBytes, PIDs: u.PIDs,
				IOBytes: u.IOReadBytes + u.IOWriteBytes, HasCPU: u.HasCPU, HasMemory: u.HasMemory, HasPIDs: u.HasPIDs, HasIO: u.HasIO}
			for _, a := range c.detector.Observe(s) {
				emit(a)
			}
		}
		c.detector.Forget(now.Add(-10 * iv))
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// list is the containers running now (for sandboxes); nil on error.
func (c *containers) list() []*event.Container {
	if c == nil {
		return nil
	}
	l, _ := c.resolver.Containers()
	return l
}

func (c *containers) close() error {
	if c == nil {
		return nil
	}
	return c.resolver.Close()
}
