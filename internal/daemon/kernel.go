package daemon

import (
	"log/slog"

	"github.com/vigilsec/vigil/internal/kernelcap"
)

// probeKernel finds what the kernel offers and logs the mechanism picked
// for each job; the response engine reads it (Agent.Kernel) to choose the
// BPF LSM or its fallbacks.
func probeKernel(log *slog.Logger) kernelcap.Report {
	r := kernelcap.Probe(kernelcap.DefaultPaths)
	args := []any{"kernel", r.Kernel}
	for _, c := range r.Choices {
		args = append(args, c.Job, c.Mechanism)
	}
	log.Info("kernel mechanisms", args...)
	for _, f := range r.Features {
		if !f.OK {
			log.Debug("kernel feature unavailable", "feature", f.Name, "why", f.Detail)
		}
	}
	return r
}

// Kernel is what the kernel probe found at start-up.
func (a *Agent) Kernel() kernelcap.Report { return a.kernel }
