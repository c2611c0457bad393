package daemon

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/vigilsec/vigil/internal/kernelcap"
)

// TestStatusShowsKernelMechanisms: `vigil status` (the status socket) shows
// what the kernel probe finds on this kernel, and the mechanism per job.
func TestStatusShowsKernelMechanisms(t *testing.T) {
	h := join(t)
	st, err := QueryStatus(h.agent.cfg.StatusSocket)
	if err != nil {
		t.Fatalf("status: %v", err)
	}
	want := kernelcap.Probe(kernelcap.DefaultPaths)
	if st.Kernel.Kernel != want.Kernel {
		t.Errorf("kernel %q, want %q", st.Kernel.Kernel, want.Kernel)
	}
	if diff := cmp.Diff(want.Choices, st.Kernel.Choices); diff != "" {
		t.Errorf("mechanisms (-probe now +status):\n%s", diff)
	}
	ok := func(r kernelcap.Report) map[string]bool {
		m := map[string]bool{}
		for _, f := range r.Features {
			m[f.Name] = f.OK
		}
		return m
	}
	if diff := cmp.Diff(ok(want), ok(st.Kernel)); diff != "" {
		t.Errorf("features (-probe now +status):\n%s", diff)
	}
	if st.Kernel.Mechanism(kernelcap.JobDetect) != kernelcap.MechTracepoint {
		t.Errorf("detect: %s", st.Kernel.Mechanism(kernelcap.JobDetect))
	}
	t.Logf("%+v", st.Kernel.Choices)
}
