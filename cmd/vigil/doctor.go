package main

import (
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/vigilsec/vigil/internal/doctor"
)

func doctorCmd() *cobra.Command {
	o := doctor.DefaultOptions()
	var format string
	cmd := &cobra.Command{
		Use:   "doctor",
		Short: "Check whether this host can run Vigil, what it will use and what to change",
		Long: `Check the kernel and the host: BTF, each BPF mechanism Vigil may use (by
loading a tiny program and attaching it, then removing it), the BPF LSM, the
cgroup layout, fanotify, the XDP modes of each interface, the clock and the
disk for Vigil's state. Prints what Vigil will use, what it falls back to,
and what the operator could change. Exits 1 when Vigil cannot run here.
Run it as root (as the agent runs); see docs/operating.md.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if format != "text" && format != "json" {
				return fmt.Errorf("--output %q: use text or json", format)
			}
			r := doctor.Run(o)
			out := cmd.OutOrStdout()
			if format == "json" {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				if err := enc.Encode(r); err != nil {
					return err
				}
			} else if err := r.WriteText(out); err != nil {
				return err
			}
			if !r.CanRun() {
				n := 0
				for _, c := range r.Checks {
					if c.Status == doctor.Fail {
						n++
					}
				}
				return fmt.Errorf("this host cannot run Vigil: %d check(s) failed (see above)", n)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVarP(&format, "output", "o", "text", "text or json")
	f.StringVar(&o.Procfs, "procfs", o.Procfs, "procfs root")
	f.StringVar(&o.Sysfs, "sysfs", o.Sysfs, "sysfs root")
	f.StringVar(&o.Boot, "boot", o.Boot, "where config-<release> kernel configs are, when /proc/config.gz is absent")
	f.StringVar(&o.StateDir, "state-dir", o.StateDir, "Vigil's state directory, for the disk check")
	return cmd
}
