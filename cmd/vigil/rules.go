package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/vigilsec/vigil/internal/config"
	"github.com/vigilsec/vigil/internal/daemon"
	"github.com/vigilsec/vigil/internal/event"
	"github.com/vigilsec/vigil/internal/rules"
)

// ruleFlags are the flags every command that loads rules shares.
type ruleFlags struct {
	cfgPath   string
	dirs      []string
	noBuiltin bool
}

func (f *ruleFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringVarP(&f.cfgPath, "config", "c", "", "the agent's configuration file, for its rule directories")
	cmd.Flags().StringSliceVarP(&f.dirs, "dir", "d", nil, "rule directory (repeatable; default: rules.dirs of the configuration)")
	cmd.Flags().BoolVar(&f.noBuiltin, "no-builtin", false, "leave out the built-in rules")
}

func (f *ruleFlags) load(extraDirs ...string) (*rules.Set, error) {
	cfg, err := config.Load(f.cfgPath)
	if err != nil {
		return nil, err
	}
	dirs := cfg.Rules.Dirs
	if len(f.dirs) > 0 || len(extraDirs) > 0 {
		dirs = append(append([]string(nil), f.dirs...), extraDirs...)
	}
	for _, d := range extraDirs {
		if st, err := os.Stat(d); err != nil || !st.IsDir() {
			return nil, fmt.Errorf("%s: not a directory", d)
		}
	}
	return rules.Load(daemon.RuleSources(cfg.Rules.Builtin && !f.noBuiltin, dirs)...)
}

func rulesCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "rules", Short: "List, check and test detection rules"}
	cmd.AddCommand(rulesListCmd(), rulesValidateCmd(), rulesTestCmd())
	return cmd
}

func rulesListCmd() *cobra.Command {
	var f ruleFlags
	var format string
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the rules the agent would load",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			set, err := f.load()
			if err != nil {
				return err
			}
			infos := set.Rules()
			if format == "json" {
				return json.NewEncoder(cmd.OutOrStdout()).Encode(infos)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tSEVERITY\tON\tENABLED\tMITRE\tNAME")
			for _, r := range infos {
				on := make([]string, len(r.On))
				for i, k := range r.On {
					on[i] = k.String()
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%v\t%s\t%s\n", r.ID, r.Severity, strings.Join(on, ","), r.Enabled, strings.Join(r.MITRE, ","), r.Name)
			}
			return tw.Flush()
		},
	}
	f.add(cmd)
	cmd.Flags().StringVarP(&format, "output", "o", "table", "table or json")
	return cmd
}

func rulesValidateCmd() *cobra.Command {
	var f ruleFlags
	cmd := &cobra.Command{
		Use:   "validate DIR...",
		Short: "Check rule files: every problem with its file, line and column",
		Long: `Check the rule files in each DIR, loaded after the built-in rules (whose lists
and macros they may use). Prints every problem as FILE:LINE:COLUMN: REASON and
exits non-zero if there is any.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			set, err := f.load(args...)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%d rules OK\n", len(set.Rules()))
			return nil
		},
	}
	f.add(cmd)
	return cmd
}

func rulesTestCmd() *cobra.Command {
	var f ruleFlags
	var events string
	var verbose bool
	cmd := &cobra.Command{
		Use:   "test [DIR...]",
		Short: "Run the test cases declared with each rule, and rules over recorded events",
		Long: `Run every rule's own test cases (the tests: list next to its condition) and
report each that fails. With --events FILE (a recording made by
vigil run --record), also run all rules over the recorded events and print
the alerts they raise as JSON lines. Exits non-zero if a test case fails.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			set, err := f.load(args...)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			var failed, passed int
			for _, r := range set.RunTests() {
				if r.Pass {
					passed++
					if verbose {
						fmt.Fprintf(out, "ok   %s %s: %s: %s\n", r.Pos, r.RuleID, r.Name, r.Reason)
					}
					continue
				}
				failed++
				fmt.Fprintf(out, "FAIL %s %s: %s: %s\n", r.Pos, r.RuleID, r.Name, r.Reason)
			}
			if events != "" {
				if err := replay(events, set, out); err != nil {
					return err
				}
			}
			fmt.Fprintf(out, "%d passed, %d failed\n", passed, failed)
			if failed > 0 {
				return exitError(1)
			}
			return nil
		},
	}
	f.add(cmd)
	cmd.Flags().StringVar(&events, "events", "", "a recording (vigil run --record) to run the rules over")
	cmd.Flags().BoolVarP(&verbose, "verbose", "v", false, "also list the test cases that pass")
	return cmd
}

func replayCmd() *cobra.Command {
	var f ruleFlags
	cmd := &cobra.Command{
		Use:   "replay FILE",
		Short: "Run the rules over a recording and print the alerts they raise",
		Long: `Read a recording made by vigil run --record and run the rules over it, as
the agent would have, printing each alert as an ECS JSON line.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			set, err := f.load()
			if err != nil {
				return err
			}
			return replay(args[0], set, cmd.OutOrStdout())
		},
	}
	f.add(cmd)
	return cmd
}

// replay runs set over the recorded events in path and writes the alerts.
func replay(path string, set *rules.Set, w io.Writer) error {
	in, err := os.Open(path)
	if err != nil {
		return err
	}
	defer in.Close()
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	var werr error
	err = rules.ReadRecords(in, func(e *event.Event) error {
		set.Eval(e, func(al *event.Event) {
			if werr == nil {
				werr = enc.Encode(al.Doc(nil, 0))
			}
		})
		return werr
	})
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return errors.Join(werr)
}
