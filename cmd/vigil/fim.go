package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/vigilsec/vigil/internal/config"
	"github.com/vigilsec/vigil/internal/fim"
	"github.com/vigilsec/vigil/internal/store"
)

func fimCmd() *cobra.Command {
	var cfgPath, db string
	cmd := &cobra.Command{
		Use:   "fim",
		Short: "File integrity: record a baseline of fim.paths, check the files against it, accept changes",
		Long: `vigil fim init records SHA-256, size, mode, owner, inode, mtime and symlink
target of every file below fim.paths in the store's database. vigil fim check
prints what was added, removed and changed since, as AIDE does, and exits with
1 (added) | 2 (removed) | 4 (changed), or 0 when nothing changed (14 on errors).
vigil fim accept PATH... records those paths as they are now.`,
	}
	cmd.PersistentFlags().StringVarP(&cfgPath, "config", "c", "", "the agent's configuration file (fim.paths, store.path)")
	cmd.PersistentFlags().StringVar(&db, "db", "", "the store's database (default: store.path from the configuration)")
	open := func() (config.FIM, *store.Baseline, error) {
		cfg, err := config.Load(cfgPath)
		if err != nil {
			return cfg.FIM, nil, err
		}
		if db == "" {
			db = cfg.Store.Path
		}
		if db == "" {
			return cfg.FIM, nil, errors.New("no database: store.path is empty in the configuration; give --db")
		}
		b, err := store.OpenBaseline(db)
		return cfg.FIM, b, err
	}
	scanner := func(c config.FIM) *fim.Scanner { return &fim.Scanner{Exclude: c.Exclude, Workers: c.Workers} }

	cmd.AddCommand(&cobra.Command{
		Use:   "init",
		Short: "Record the baseline of fim.paths (replacing any before)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, b, err := open()
			if err != nil {
				return err
			}
			defer b.Close()
			now, err := scanner(c).Scan(context.Background(), c.Paths)
			if err != nil {
				fmt.Fprintln(os.Stderr, "vigil: some files were not recorded:", err)
			}
			if err := b.Replace(now); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Baseline recorded: %d entries below %v in %s\n", len(now), c.Paths, db)
			return nil
		},
	})
	cmd.AddCommand(&cobra.Command{
		Use:   "check",
		Short: "Compare the files with the baseline; exit 1|2|4 for added|removed|changed",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, b, err := open()
			if err != nil {
				return err
			}
			defer b.Close()
			base, err := b.Load()
			if err != nil {
				return err
			}
			if len(base) == 0 {
				return errors.New("no baseline: run vigil fim init first")
			}
			now, scanErr := scanner(c).Scan(context.Background(), c.Paths)
			ch := fim.Diff(base, now)
			fim.Report(cmd.OutOrStdout(), len(now), ch)
			if scanErr != nil {
				fmt.Fprintln(os.Stderr, "vigil: some files were not checked:", scanErr)
				return exitError(14)
			}
			if code := fim.ExitCode(ch); code != 0 {
				return exitError(code)
			}
			return nil
		},
	})
	cmd.AddCommand(&cobra.Command{
		Use:   "accept PATH...",
		Short: "Record the paths (and what is below directories) in the baseline as they are now",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, b, err := open()
			if err != nil {
				return err
			}
			defer b.Close()
			base, err := b.Load()
			if err != nil {
				return err
			}
			var roots []string
			for _, a := range args {
				p, err := filepath.Abs(a)
				if err != nil {
					return err
				}
				if !fim.Under(p, c.Paths) {
					return fmt.Errorf("%s is not below fim.paths %v", p, c.Paths)
				}
				roots = append(roots, p)
			}
			now, err := scanner(c).Scan(context.Background(), roots)
			if err != nil {
				return err
			}
			var gone []string
			for p := range base {
				if _, ok := now[p]; !ok && fim.Under(p, roots) {
					gone = append(gone, p)
				}
			}
			if err := b.Update(now, gone); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Accepted: %d entries recorded, %d removed from the baseline\n", len(now), len(gone))
			return nil
		},
	})
	return cmd
}
