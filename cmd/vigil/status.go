package main

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/vigilsec/vigil/internal/config"
	"github.com/vigilsec/vigil/internal/daemon"
	"github.com/vigilsec/vigil/internal/term"
)

func statusCmd() *cobra.Command {
	var cfgPath, socket, format string
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the running agent's health: sensors, event rates, drops",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.Load(cfgPath)
			if err != nil {
				return err
			}
			if cmd.Flags().Changed("socket") {
				cfg.StatusSocket = socket
			}
			st, err := daemon.QueryStatus(cfg.StatusSocket)
			if err != nil {
				return err
			}
			switch format {
			case "json":
				enc := json.NewEncoder(os.Stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(st)
			case "table", "":
				printStatus(os.Stdout, st)
				return nil
			}
			return fmt.Errorf("--output %q: use table or json", format)
		},
	}
	cmd.Flags().StringVarP(&cfgPath, "config", "c", "", "the agent's configuration file, to find its socket")
	cmd.Flags().StringVar(&socket, "socket", "", "status socket (default from the configuration)")
	cmd.Flags().StringVarP(&format, "output", "o", "table", "table or json")
	return cmd
}

func printStatus(w io.Writer, st daemon.Status) {
	up := time.Duration(st.UptimeSeconds * float64(time.Second)).Round(time.Second)
	fmt.Fprintf(w, "vigil %s, pid %d, up %s\n", st.Version, st.PID, up)
	for _, s := range st.Sensors {
		switch {
		case s.Error != "":
			fmt.Fprintf(w, "sensor %-8s NOT RUNNING: %s\n", s.Name, s.Error)
		case len(s.Missing) > 0:
			fmt.Fprintf(w, "sensor %-8s %d hooks attached (this kernel lacks %v)\n", s.Name, len(s.Hooks)-len(s.Missing), s.Missing)
		default:
			fmt.Fprintf(w, "sensor %-8s %d hooks attached\n", s.Name, len(s.Hooks))
		}
	}
	fmt.Fprintf(w, "events/s %.1f, written %d, queue %d/%d, ring buffer %d/%d bytes\n\n",
		st.EventsPerSecond, st.Written, st.Queue.Used, st.Queue.Capacity, st.RingBuffer.Used, st.RingBuffer.Capacity)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "KIND\tKERNEL SENT\tKERNEL LOST\tFILTERED\tRECEIVED\tQUEUE DROPPED\tWRITTEN\t")
	for _, k := range st.Events {
		kind := k.Kind
		if k.Off {
			kind += " (off)"
		}
		written := fmt.Sprint(k.Written)
		if k.DetectorInput {
			written = "(detector)"
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%s\t\n", kind, k.KernelSent, k.KernelLost, k.KernelFiltered, k.Received, k.QueueDropped, written)
	}
	tw.Flush()
	r := st.Rules
	fmt.Fprintf(w, "\nrules: %d loaded, %d enabled; alerts raised %d, written %d, dropped %d; reloads %d, failed %d\n",
		r.Loaded, r.Enabled, r.AlertsRaised, r.AlertsWritten, r.AlertsDropped, r.Reloads, r.ReloadFailures)
	printRuleCounts(w, "rule evaluation errors (the rule did not match)", r.EvalErrors)
	printRuleCounts(w, "rule evaluations stopped at the cost limit (the rule did not match)", r.CostExceeded)
	if n := st.Network; n != nil {
		if n.Attached {
			fmt.Fprintf(w, "network enforcement attached; ingress %v", n.XDP)
			if len(n.Skipped) > 0 {
				fmt.Fprintf(w, "; interfaces left alone: %v", n.Skipped)
			}
			fmt.Fprintln(w)
		} else {
			fmt.Fprintf(w, "network enforcement NOT attached: %s\n", n.Error)
		}
		if d := n.Defence; d != nil {
			k := d.Kernel
			fmt.Fprintf(w, "network defence: %d sources, %s, %s in the last poll; %d blocked; %d payload rules (%d matches, %d dropped); intel %d prefixes, %d domains (%d dropped in, %d out, %d connects refused); %d notices lost\n",
				d.Talkers.Sources, perSecond(d.Talkers.Total.PPS, "packets"), bitRate(d.Talkers.Total.BitsPS), d.Blocked,
				d.PayloadRules, k.PayloadMatches, k.PayloadDrops, d.IntelPrefixes, d.IntelDomains,
				k.IntelDropsIn, k.IntelDropsOut, k.IntelDeniedConnects, k.NoticesLost+d.PayloadEventsDropped)
			if d.Error != "" {
				fmt.Fprintf(w, "network defence counters incomplete: %s\n", d.Error)
			}
		}
	}
	for _, p := range st.Anomaly {
		fmt.Fprintf(w, "learned program %s: %s, %d syscalls, %d n-grams, threshold %.3f, %d programs spawned, %d anomalies\n",
			p.Program, p.Mode, p.Syscalls, p.Grams, p.Threshold, p.Spawned, p.Anomalies)
	}
	pc := st.ProcessCache
	fmt.Fprintf(w, "process cache: %d entries, decode errors %d, duplicate exits %d, sink errors %d\n",
		pc.Entries(), st.DecodeErrors, st.DuplicateExits, st.SinkErrors)
	if st.KernelError != "" {
		fmt.Fprintf(w, "kernel counters unavailable: %s\n", st.KernelError)
	}
	printKernel(w, st.Kernel)
}

// printRuleCounts writes one line of per-rule counts, by rule id, or
// nothing when there are none.
func printRuleCounts(w io.Writer, what string, counts map[string]uint64) {
	if len(counts) == 0 {
		return
	}
	fmt.Fprintf(w, "%s:", what)
	for i, id := range slices.Sorted(maps.Keys(counts)) {
		sep := ","
		if i == 0 {
			sep = ""
		}
		fmt.Fprintf(w, "%s %s %d", sep, term.Safe(id), counts[id])
	}
	fmt.Fprintln(w)
}
