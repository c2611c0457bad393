package main

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/vigilsec/vigil/internal/fleet"
)

func fleetCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "fleet",
		Short: "Work with what a fleet of agents publishes to NATS (docs/fleet.md)",
	}
	var o fleet.Options
	var esURLs, apiKeyFile, logLevel string
	var statsEvery time.Duration
	index := &cobra.Command{
		Use:   "index --nats URL --es URL",
		Short: "Index the fleet's alerts from NATS JetStream into Elasticsearch, until stopped",
		Long: "index reads the stream the agents' nats sinks publish to with a durable consumer,\n" +
			"writes each document to Elasticsearch (data streams <prefix>-alerts and -events, _id the\n" +
			"message's Nats-Msg-Id) and acknowledges it once Elasticsearch has it: at least once from\n" +
			"the stream, once in the index. Run as many as you like with the same --durable: they share\n" +
			"the work.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var lvl slog.Level
			if err := lvl.UnmarshalText([]byte(logLevel)); err != nil {
				return err
			}
			o.Log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))
			o.ES.URLs = strings.Split(esURLs, ",")
			if apiKeyFile != "" {
				b, err := os.ReadFile(apiKeyFile)
				if err != nil {
					return err
				}
				o.ES.APIKey = strings.TrimSpace(string(b))
			}
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			var st fleet.Stats
			go func() {
				t := time.NewTicker(statsEvery)
				defer t.Stop()
				for {
					select {
					case <-ctx.Done():
						return
					case <-t.C:
						o.Log.Info("fleet: counters", "indexed", st.Indexed.Load(), "rejected", st.Rejected.Load(), "retried", st.Retried.Load())
					}
				}
			}()
			err := fleet.Index(ctx, o, &st)
			o.Log.Info("fleet: stopped", "indexed", st.Indexed.Load(), "rejected", st.Rejected.Load(), "retried", st.Retried.Load())
			return err
		},
	}
	f := index.Flags()
	f.StringVar(&o.NATSURL, "nats", "", "NATS servers of the cluster, comma-separated (nats://n1:4222,nats://n2:4222)")
	f.StringVar(&o.CredsFile, "nats-creds", "", "NATS .creds file")
	f.StringVar(&o.Stream, "stream", "VIGIL", "the stream the agents publish to")
	f.StringVar(&o.SubjectPrefix, "subject-prefix", "vigil", "the agents' subject_prefix")
	f.StringVar(&o.Durable, "durable", "vigil-index", "durable consumer name (consumers with one name share the work)")
	f.BoolVar(&o.Events, "events", false, "index events too, not only alerts")
	f.BoolVar(&o.CreateStream, "create-stream", false, "create the stream when missing (subjects <prefix>.>)")
	f.IntVar(&o.Replicas, "replicas", 3, "copies of a stream --create-stream makes")
	f.DurationVar(&o.DuplicateWindow, "duplicate-window", 2*time.Minute, "duplicate window of a stream --create-stream makes")
	f.IntVar(&o.Batch, "batch", 500, "most documents per bulk request")
	f.DurationVar(&o.AckWait, "ack-wait", 30*time.Second, "redeliver a message not acknowledged this long after delivery")
	f.StringVar(&esURLs, "es", "", "Elasticsearch URLs, comma-separated")
	f.StringVar(&o.ES.IndexPrefix, "index-prefix", "vigil", "index template and data stream prefix")
	f.StringVar(&apiKeyFile, "es-api-key-file", "", "file holding an Elasticsearch API key")
	f.StringVar(&o.ES.Username, "es-user", "", "Elasticsearch user (password in VIGIL_ES_PASSWORD)")
	f.StringVar(&o.ES.CACertFile, "es-ca-cert", "", "PEM file to trust for https Elasticsearch URLs")
	f.StringVar(&logLevel, "log-level", "info", "debug, info, warn, error")
	f.DurationVar(&statsEvery, "stats-interval", time.Minute, "how often counters are logged")
	index.MarkFlagRequired("nats")
	index.MarkFlagRequired("es")
	index.PreRun = func(*cobra.Command, []string) { o.ES.Password = os.Getenv("VIGIL_ES_PASSWORD") }
	cmd.AddCommand(index)
	return cmd
}
