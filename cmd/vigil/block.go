package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/vigilsec/vigil/internal/config"
	"github.com/vigilsec/vigil/internal/daemon"
	"github.com/vigilsec/vigil/internal/event"
	"github.com/vigilsec/vigil/internal/netguard"
	"github.com/vigilsec/vigil/internal/store"
	"github.com/vigilsec/vigil/internal/term"
)

// The block list and isolation live in BPF maps the agent pins
// (response.pin_dir); these commands change them directly, so they work
// whether or not the agent is running, as long as its state is pinned.

func openGuard(cfgPath string) (*netguard.Guard, string, error) {
	cfg, err := config.Load(cfgPath)
	if err != nil {
		return nil, "", err
	}
	g, err := netguard.OpenPinned(cfg.Response.PinDir)
	return g, cfg.Response.PinDir, err
}

// enforcing says whether the block list is in force now: programs pinned in
// the directory (left by an agent with blocks in force), or a running agent
// whose status says network enforcement is attached.
func enforcing(cfgPath, dir string) bool {
	if netguard.Linked(dir) {
		return true
	}
	cfg, err := config.Load(cfgPath)
	if err != nil {
		return false
	}
	st, err := daemon.QueryStatus(cfg.StatusSocket)
	if err != nil {
		return false
	}
	return st.Network != nil && st.Network.Attached
}

func blockCmd() *cobra.Command {
	var cfgPath string
	cmd := &cobra.Command{
		Use:   "block",
		Short: "List, add or remove blocked addresses (dropped in XDP and tcx)",
	}
	cmd.PersistentFlags().StringVarP(&cfgPath, "config", "c", "", "the agent's configuration file, to find response.pin_dir")
	list := &cobra.Command{
		Use:   "list",
		Short: "Show the blocks in force",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			g, _, err := openGuard(cfgPath)
			if err != nil {
				return err
			}
			defer g.Close()
			bl, err := g.List()
			if err != nil {
				return err
			}
			why := blockReasons(cmd.Context(), cfgPath)
			tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "PREFIX\tUNTIL\tSOURCE\tWHY")
			for _, b := range bl {
				until := "removed"
				if !b.Until.IsZero() {
					until = b.Until.Local().Format(time.RFC3339) + " (" + time.Until(b.Until).Round(time.Second).String() + ")"
				}
				reason := why[b.Prefix]
				switch {
				case reason != "":
				case b.Source == netguard.SourceManual:
					reason = "vigil block add"
				default:
					reason = "-"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", b.Prefix, until, b.Source, term.Safe(reason))
			}
			return tw.Flush()
		},
	}
	var dur time.Duration
	add := &cobra.Command{
		Use:   "add ADDRESS|CIDR...",
		Short: "Block addresses or prefixes, until removed or for --for",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ps, err := prefixes(args)
			if err != nil {
				return err
			}
			g, dir, err := openGuard(cfgPath)
			if err != nil {
				return err
			}
			defer g.Close()
			var until time.Time
			if dur > 0 {
				until = time.Now().Add(dur)
			}
			for _, p := range ps {
				if err := g.Block(p, until, netguard.SourceManual); err != nil {
					return err
				}
			}
			if !enforcing(cfgPath, dir) {
				fmt.Fprintln(os.Stderr, "vigil: no agent is running with network enforcement: the block is stored and applies when it starts")
			}
			return nil
		},
	}
	add.Flags().DurationVar(&dur, "for", 0, "lift the block after this long (default: until removed)")
	remove := &cobra.Command{
		Use:   "remove ADDRESS|CIDR...",
		Short: "Lift blocks",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ps, err := prefixes(args)
			if err != nil {
				return err
			}
			g, _, err := openGuard(cfgPath)
			if err != nil {
				return err
			}
			defer g.Close()
			for _, p := range ps {
				if err := g.Unblock(p); err != nil {
					return err
				}
			}
			return nil
		},
	}
	cmd.AddCommand(list, add, remove)
	return cmd
}

func prefixes(args []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, a := range args {
		p, err := config.ParsePrefix(a)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

func isolateCmd() *cobra.Command {
	var cfgPath string
	var allow []string
	cmd := &cobra.Command{
		Use:   "isolate on|off|status",
		Short: "Cut the host off the network but for an allowlist, or lift it",
		Long: "isolate on drops every packet on the guarded interfaces whose remote end is not in\n" +
			"--allow or response.isolate_allow (loopback is never guarded). It stays in force\n" +
			"across agent restarts until `vigil isolate off`.",
		Args:      cobra.ExactArgs(1),
		ValidArgs: []string{"on", "off", "status"},
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := config.Load(cfgPath)
			if err != nil {
				return err
			}
			g, err := netguard.OpenPinned(cfg.Response.PinDir)
			if err != nil {
				return err
			}
			defer g.Close()
			switch args[0] {
			case "on":
				extra, err := prefixes(allow)
				if err != nil {
					return err
				}
				al := append(config.Prefixes(cfg.Response.IsolateAllow), extra...)
				if len(al) == 0 {
					fmt.Fprintln(os.Stderr, "vigil: isolating with nothing allowed: remote sessions to this host will drop")
				}
				return g.Isolate(al)
			case "off":
				return g.Unisolate()
			case "status":
				iso, al, err := g.Isolation()
				if err != nil {
					return err
				}
				if !iso {
					fmt.Println("not isolated")
					return nil
				}
				fmt.Printf("isolated; allowed: %v\n", al)
				return nil
			}
			return fmt.Errorf("isolate %q: use on, off or status", args[0])
		},
	}
	cmd.Flags().StringVarP(&cfgPath, "config", "c", "", "the agent's configuration file, to find response.pin_dir")
	cmd.Flags().StringSliceVar(&allow, "allow", nil, "addresses or CIDRs that stay reachable (with response.isolate_allow)")
	return cmd
}

// blockReasons reads why each prefix was blocked from the newest block-ip
// response events in the agent's store: the rule or detector, its reason,
// and when. Without a store it returns nothing.
func blockReasons(ctx context.Context, cfgPath string) map[netip.Prefix]string {
	cfg, err := config.Load(cfgPath)
	if err != nil || cfg.Store.Path == "" {
		return nil
	}
	r, err := store.OpenReader(cfg.Store.Path)
	if err != nil {
		return nil
	}
	defer r.Close()
	evs, err := r.Events(ctx, store.Filter{Kinds: []string{"response"}, Limit: 5000})
	if err != nil {
		return nil
	}
	out := map[netip.Prefix]string{}
	for i := len(evs) - 1; i >= 0; i-- { // newest first
		var doc struct {
			Event struct{ Action string }
			Rule  struct{ ID string }
			Vigil struct {
				Response struct{ Target, Outcome, Reason string }
			}
		}
		if json.Unmarshal(evs[i].Doc, &doc) != nil || doc.Event.Action != "block-ip" || doc.Vigil.Response.Outcome != event.ResponseDone {
			continue
		}
		p, err := netip.ParsePrefix(strings.Fields(doc.Vigil.Response.Target + " ")[0])
		if err != nil {
			continue
		}
		if _, seen := out[p]; seen {
			continue
		}
		why := doc.Rule.ID
		if r := doc.Vigil.Response.Reason; r != "" {
			why += ": " + r
		}
		out[p] = why + " (" + evs[i].Time.Local().Format(time.DateTime) + ")"
	}
	return out
}
