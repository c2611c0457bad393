// Command vigil is an eBPF security agent: it watches processes, files and the
// network of a Linux host, detects attacks and stops them.
package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

func main() {
	root := &cobra.Command{
		Use:           "vigil",
		Short:         "eBPF security agent: see what runs on this host, detect attacks, stop them",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(runCmd(), statusCmd(), versionCmd(), rulesCmd(), replayCmd(), traceCmd(),
		alertsCmd(), eventsCmd(), anomalyCmd(), blockCmd(), isolateCmd(), netCmd(), doctorCmd(), configCmd(), fimCmd(), fleetCmd())
	if err := root.Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "vigil:", err)
		var ee exitError
		if errors.As(err, &ee) {
			os.Exit(int(ee))
		}
		os.Exit(1)
	}
}

// exitError asks main for a particular exit status.
type exitError int

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", int(e)) }
