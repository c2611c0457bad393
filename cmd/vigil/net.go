package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/vigilsec/vigil/internal/config"
	"github.com/vigilsec/vigil/internal/daemon"
	"github.com/vigilsec/vigil/internal/netdef"
)

func netCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "net",
		Short: "Network defence: the busiest sources (top)",
	}
	cmd.AddCommand(netTopCmd())
	return cmd
}

func netTopCmd() *cobra.Command {
	var cfgPath, socket, format string
	var n int
	var every time.Duration
	cmd := &cobra.Command{
		Use:   "top",
		Short: "Show the sources sending the most packets to this host, from the XDP accounting",
		Long: `Shows the sources that sent the most packets per second over the agent's
last poll of the XDP per-source counters (netdefense.poll), with their bit
and SYN rates, their packets and bytes so far, the distinct ports and hosts
they reached within the scan window, and whether they are blocked.
With --watch it refreshes until interrupted.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.Load(cfgPath)
			if err != nil {
				return err
			}
			if cmd.Flags().Changed("socket") {
				cfg.StatusSocket = socket
			}
			if format != "table" && format != "json" {
				return fmt.Errorf("--output %q: use table or json", format)
			}
			for {
				st, err := daemon.QueryStatus(cfg.StatusSocket)
				if err != nil {
					return err
				}
				if st.Network == nil || st.Network.Defence == nil {
					why := "network defence is off (netdefense.enabled)"
					if st.Network != nil && st.Network.Error != "" {
						why = "network enforcement is not attached: " + st.Network.Error
					}
					return errors.New(why)
				}
				d := *st.Network.Defence
				if n >= 0 && len(d.Talkers.Top) > n {
					d.Talkers.Top = d.Talkers.Top[:n]
				}
				if format == "json" {
					if err := json.NewEncoder(os.Stdout).Encode(d.Talkers); err != nil {
						return err
					}
				} else {
					if every > 0 {
						fmt.Print("\x1b[H\x1b[2J") // home, clear
					}
					printTop(os.Stdout, d)
				}
				if every <= 0 {
					return nil
				}
				time.Sleep(every)
			}
		},
	}
	cmd.Flags().StringVarP(&cfgPath, "config", "c", "", "the agent's configuration file, to find its socket")
	cmd.Flags().StringVar(&socket, "socket", "", "status socket (default from the configuration)")
	cmd.Flags().StringVarP(&format, "output", "o", "table", "table or json (one JSON document per refresh)")
	cmd.Flags().IntVarP(&n, "number", "n", 20, "sources to show (the agent keeps the 50 busiest)")
	cmd.Flags().DurationVarP(&every, "watch", "w", 0, "refresh every this long (e.g. 1s) until interrupted")
	return cmd
}

func printTop(w io.Writer, d netdef.Status) {
	t := d.Talkers
	if t.At.IsZero() {
		fmt.Fprintln(w, "no interval measured yet: the agent needs two polls of the counters")
		return
	}
	fmt.Fprintf(w, "%s: %d sources over %s, %s, %s, %s in total; %d blocked\n",
		t.At.Local().Format("15:04:05"), t.Sources, t.Interval.Round(time.Millisecond),
		perSecond(t.Total.PPS, "packets"), bitRate(t.Total.BitsPS), perSecond(t.Total.SYNsPS, "SYNs"), d.Blocked)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "SOURCE\tPACKETS/S\tBITS/S\tSYNS/S\tPACKETS\tBYTES\tPORTS\tHOSTS\tBLOCKED\t")
	for _, x := range t.Top {
		blocked := ""
		if x.Blocked {
			blocked = "yes"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%d\t%s\t\n", x.Addr, si(x.PPS), si(x.BitsPS), si(x.SYNsPS),
			si(float64(x.Packets)), bytesSI(x.Bytes), x.Ports, x.Hosts, blocked)
	}
	tw.Flush()
}

// si writes v with a k, M or G suffix.
func si(v float64) string {
	switch {
	case v >= 1e9:
		return fmt.Sprintf("%.1fG", v/1e9)
	case v >= 1e6:
		return fmt.Sprintf("%.1fM", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%.1fk", v/1e3)
	case v == float64(int64(v)):
		return fmt.Sprintf("%d", int64(v))
	}
	return fmt.Sprintf("%.1f", v)
}

func bytesSI(b uint64) string {
	switch {
	case b >= 1<<30:
		return fmt.Sprintf("%.1fGiB", float64(b)/(1<<30))
	case b >= 1<<20:
		return fmt.Sprintf("%.1fMiB", float64(b)/(1<<20))
	case b >= 1<<10:
		return fmt.Sprintf("%.1fKiB", float64(b)/(1<<10))
	}
	return fmt.Sprintf("%dB", b)
}

func perSecond(v float64, what string) string { return si(v) + " " + what + "/s" }

func bitRate(v float64) string { return si(v) + "bit/s" }
