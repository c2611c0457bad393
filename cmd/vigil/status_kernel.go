package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/vigilsec/vigil/internal/kernelcap"
)

// printKernel shows what the kernel probe found: the mechanism per job, then
// each feature, with the reason for those missing.
func printKernel(w io.Writer, r kernelcap.Report) {
	if r.Kernel == "" && len(r.Features) == 0 {
		return // an agent from before the probe
	}
	var jobs []string
	for _, c := range r.Choices {
		jobs = append(jobs, c.Job+"="+c.Mechanism)
	}
	fmt.Fprintf(w, "\nkernel %s: %s\n", r.Kernel, strings.Join(jobs, " "))
	for _, f := range r.Features {
		switch {
		case f.OK && f.Detail != "":
			fmt.Fprintf(w, "  %-12s yes (%s)\n", f.Name, f.Detail)
		case f.OK:
			fmt.Fprintf(w, "  %-12s yes\n", f.Name)
		default:
			fmt.Fprintf(w, "  %-12s no: %s\n", f.Name, f.Detail)
		}
	}
}
