package kernelcap_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/rlimit"

	"github.com/vigilsec/vigil/internal/kernelcap"
	"github.com/vigilsec/vigil/internal/testenv"
)

// expected are the features the kernel-test guest's kernel is known to have
// (VIGIL_KT_EXPECT, set by test/kernels/run.sh): missing there is a failure.
func expected() []string {
	var out []string
	for _, f := range strings.Split(os.Getenv("VIGIL_KT_EXPECT"), ",") {
		if f != "" {
			out = append(out, f)
		}
	}
	return out
}

func probe(t *testing.T) kernelcap.Report {
	t.Helper()
	testenv.RequirePrivileged(t)
	if err := rlimit.RemoveMemlock(); err != nil {
		t.Fatal(err)
	}
	r := kernelcap.Probe(kernelcap.DefaultPaths)
	for _, f := range r.Features {
		t.Logf("%-12s %-5v %s", f.Name, f.OK, f.Detail)
	}
	for _, c := range r.Choices {
		t.Logf("%-12s -> %s", c.Job, c.Mechanism)
	}
	return r
}

// TestProbe: what every kernel Vigil supports has (5.17+ with BTF) is
// found, and each expected feature of the guest's kernel too.
func TestProbe(t *testing.T) {
	r := probe(t)
	for _, f := range []string{kernelcap.TPBTF, kernelcap.RingBuffer, kernelcap.BPFLoop, kernelcap.SendSignal} {
		if !r.Has(f) {
			t.Errorf("%s not found on a kernel the sensors run on", f)
		}
	}
	if got := r.Mechanism(kernelcap.JobDetect); got != kernelcap.MechTracepoint {
		t.Errorf("detect: %s, want %s", got, kernelcap.MechTracepoint)
	}
	if _, err := os.Stat(filepath.Join(testenv.CgroupV2Root(), "cgroup.procs")); err == nil && !r.Has(kernelcap.CgroupV2) {
		t.Errorf("cgroup v2 is mounted at %s, the probe says no", testenv.CgroupV2Root())
	}
	for _, f := range expected() {
		if !r.Has(f) {
			t.Errorf("%s: expected on this kernel (VIGIL_KT_EXPECT), not found", f)
		}
	}
	if r.Kernel == "" {
		t.Error("no kernel release")
	}
}

// TestMechanismsFollowLSM: deny goes to the BPF LSM exactly when it works,
// and to the fallbacks otherwise.
func TestMechanismsFollowLSM(t *testing.T) {
	r := probe(t)
	wantFile, wantNet := kernelcap.MechFanotify, kernelcap.MechCgroupSock
	if r.Has(kernelcap.BPFLSM) {
		wantFile, wantNet = kernelcap.MechLSM, kernelcap.MechLSM
	}
	for job, want := range map[string]string{kernelcap.JobDenyOpen: wantFile, kernelcap.JobDenyExec: wantFile, kernelcap.JobDenyConnect: wantNet} {
		if got := r.Mechanism(job); got != want {
			t.Errorf("%s: %s, want %s", job, got, want)
		}
	}
}

// TestLSMProbeAgreesWithAnotherHook checks ProbeLSM (file_open) against an
// independent load of an lsm program on another hook, and against the list
// of active LSMs.
func TestLSMProbeAgreesWithAnotherHook(t *testing.T) {
	testenv.RequirePrivileged(t)
	rlimit.RemoveMemlock()
	probeErr := kernelcap.ProbeLSM(kernelcap.DefaultPaths.LSM)
	b, err := os.ReadFile(kernelcap.DefaultPaths.LSM)
	if err != nil {
		t.Fatal(err)
	}
	listed := strings.Contains(","+strings.TrimSpace(string(b))+",", ",bpf,")
	if !listed {
		if !errors.Is(probeErr, kernelcap.ErrLSMInactive) {
			t.Fatalf("active LSMs %q lack bpf; ProbeLSM: %v", b, probeErr)
		}
		return
	}
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Type: ebpf.LSM, AttachType: ebpf.AttachLSMMac, AttachTo: "bprm_check_security", License: "GPL",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 0), asm.Return()},
	})
	if err == nil {
		prog.Close()
	}
	t.Logf("active LSMs %s; ProbeLSM: %v; lsm/bprm_check_security load: %v", strings.TrimSpace(string(b)), probeErr, err)
	if (probeErr == nil) != (err == nil) {
		t.Errorf("ProbeLSM says %v, an lsm/bprm_check_security load says %v", probeErr, err)
	}
}

// TestLSMInactiveFixture: a kernel whose active LSMs lack "bpf" has no BPF
// LSM, however the programs would load.
func TestLSMInactiveFixture(t *testing.T) {
	f := filepath.Join(t.TempDir(), "lsm")
	os.WriteFile(f, []byte("lockdown,capability,landlock,yama,apparmor"), 0o644)
	if err := kernelcap.ProbeLSM(f); !errors.Is(err, kernelcap.ErrLSMInactive) {
		t.Fatalf("ProbeLSM: %v, want ErrLSMInactive", err)
	}
	if err := kernelcap.ProbeLSM(filepath.Join(t.TempDir(), "missing")); err == nil || errors.Is(err, kernelcap.ErrLSMInactive) {
		t.Fatalf("ProbeLSM of a missing file: %v", err)
	}
}
