package daemon

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/vigilsec/vigil/internal/config"
	"github.com/vigilsec/vigil/internal/event"
	"github.com/vigilsec/vigil/internal/sink"
	"github.com/vigilsec/vigil/internal/sink/elasticsearch"
	"github.com/vigilsec/vigil/internal/sink/file"
	"github.com/vigilsec/vigil/internal/sink/nats"
	"github.com/vigilsec/vigil/internal/sink/spool"
	"github.com/vigilsec/vigil/internal/sink/syslog"
	"github.com/vigilsec/vigil/internal/sink/webhook"
)

// OpenSinks starts the sinks of cfg.Sinks, each spooling under
// cfg.SpoolDir/<name>. On error the ones already started are closed.
func OpenSinks(cfg config.Config, host *event.Host, log *slog.Logger) ([]sink.Sink, error) {
	var out []sink.Sink
	names := cfg.SinkNames()
	for i, sc := range cfg.Sinks {
		s, err := openSink(sc, names[i], cfg.SpoolDir, host, log)
		if err != nil {
			for _, o := range out {
				o.Close()
			}
			return nil, fmt.Errorf("sink %s: %w", names[i], err)
		}
		out = append(out, s)
	}
	return out, nil
}

func openSink(sc config.Sink, name, spoolDir string, host *event.Host, log *slog.Logger) (sink.Sink, error) {
	q := spool.Options{
		Name: name, Type: sc.Type, Dir: filepath.Join(spoolDir, name),
		MemoryRecords: sc.Queue.MemoryRecords, MaxBytes: int64(sc.Queue.SpoolMiB) << 20,
		MaxBatch: sc.Queue.MaxBatch, MinBackoff: sc.Queue.MinBackoff.D(), MaxBackoff: sc.Queue.MaxBackoff.D(),
		DrainTimeout: sc.Queue.DrainTimeout.D(), Log: log,
	}
	var kinds []event.Kind
	for _, k := range sc.Kinds {
		for _, kk := range append(event.Kinds(), event.KindAlert) {
			if kk.String() == k {
				kinds = append(kinds, kk)
			}
		}
	}
	switch {
	case sc.File != nil:
		f := sc.File
		return file.New(file.Options{Path: f.Path, MaxBytes: int64(f.MaxSizeMiB) << 20, MaxAge: f.MaxAge.D(),
			Keep: f.Keep, Compress: f.Compress, Kinds: kinds, Host: host, Queue: q})
	case sc.Syslog != nil:
		y := sc.Syslog
		return syslog.New(syslog.Options{Network: y.Network, Address: y.Address, Facility: y.Facility,
			Format: y.Format, MaxMessageBytes: y.MaxMessageBytes, Kinds: kinds, Host: host, Queue: q})
	case sc.Webhook != nil:
		w := sc.Webhook
		secret := []byte(w.Secret)
		if w.SecretFile != "" {
			b, err := os.ReadFile(w.SecretFile)
			if err != nil {
				return nil, fmt.Errorf("secret_file: %w", err)
			}
			secret = []byte(strings.TrimSpace(string(b)))
		}
		return webhook.New(webhook.Options{URL: w.URL, Secret: secret, Headers: w.Headers,
			Timeout: w.Timeout.D(), Kinds: kinds, Host: host, Queue: q})
	case sc.Elasticsearch != nil:
		e := sc.Elasticsearch
		return elasticsearch.New(elasticsearch.Options{URLs: e.URLs, IndexPrefix: e.IndexPrefix, APIKey: e.APIKey,
			Username: e.Username, Password: e.Password, CACertFile: e.CACert, Timeout: e.Timeout.D(),
			Kinds: kinds, Host: host, Queue: q})
	case sc.NATS != nil:
		n := sc.NATS
		return nats.New(nats.Options{URL: n.URL, SubjectPrefix: n.SubjectPrefix, Stream: n.Stream,
			CreateStream: n.CreateStream, DuplicateWindow: n.DuplicateWindow.D(), CredsFile: n.CredsFile,
			Token: n.Token, User: n.User, Password: n.Password, Timeout: n.Timeout.D(),
			Kinds: kinds, Host: host, Queue: q})
	}
	return nil, fmt.Errorf("type %q has no options", sc.Type)
}
