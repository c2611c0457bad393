package main

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/vigilsec/vigil/internal/config"
	"github.com/vigilsec/vigil/internal/daemon"
)

func runCmd() *cobra.Command {
	var cfgPath, output, logLevel, record string
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Run the agent in the foreground, writing events as JSON lines",
		Long: `Run the agent in the foreground. Events go to stdout as JSON lines with
Elastic Common Schema names (docs/events.md), or to the file given by --output.
Logs go to stderr. SIGHUP reloads the rules (so does a change in a rule
directory); SIGINT or SIGTERM detaches everything and exits.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.Load(cfgPath)
			if err != nil {
				return err
			}
			if cmd.Flags().Changed("output") {
				cfg.Output = output
			}
			if cmd.Flags().Changed("log-level") {
				cfg.LogLevel = logLevel
			}
			if cmd.Flags().Changed("record") {
				cfg.Record = record
			}
			if err := cfg.Validate(); err != nil {
				return err
			}
			log := newLogger(cfg.LogLevel)

			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()

			a, err := daemon.New(cfg, log)
			if err != nil {
				return err
			}
			a.ProtectFiles(cfgPath) // a change to it is tampering (docs/hardening.md)
			// SIGHUP reloads the rules; a bad rule set leaves the old one running.
			hup := make(chan os.Signal, 1)
			signal.Notify(hup, syscall.SIGHUP)
			defer signal.Stop(hup)
			go func() {
				for range hup {
					a.Reload()
				}
			}()
			return a.Run(ctx)
		},
	}
	cmd.Flags().StringVarP(&cfgPath, "config", "c", "", "YAML configuration file (defaults are built in)")
	cmd.Flags().StringVarP(&output, "output", "o", "-", `where events go: "-" for stdout, or a file path`)
	cmd.Flags().StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	cmd.Flags().StringVar(&record, "record", "", "also append every event to this file, for vigil replay and vigil rules test --events")
	return cmd
}

func newLogger(level string) *slog.Logger {
	var l slog.Level
	_ = l.UnmarshalText([]byte(level))
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: l}))
}
