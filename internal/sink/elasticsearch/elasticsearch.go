// Package elasticsearch indexes events as ECS documents through the bulk
// API, with the official client (github.com/elastic/go-elasticsearch).
//
// Alerts go to the data stream <prefix>-alerts, other events to
// <prefix>-events. Before the first bulk request the sink installs the
// composable index template <prefix> (index patterns <prefix>-*, a data
// stream, ECS mappings for the fields Vigil writes). Every document is
// written with op "create" and an _id fixed when the event was queued, so a
// retried or replayed document is refused with 409 by Elasticsearch, which
// the sink counts as delivered: each document is indexed once.
//
// Per-item results of a bulk response are honoured: 429 and 5xx items are
// retried with backoff, 409 is a duplicate (delivered), any other 4xx
// (a mapping error) is refused for good and counted as failed.
package elasticsearch

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/elastic/go-elasticsearch/v8"

	"github.com/vigilsec/vigil/internal/event"
	"github.com/vigilsec/vigil/internal/sink"
	"github.com/vigilsec/vigil/internal/sink/spool"
)

// Options configure an Elasticsearch sink.
type Options struct {
	// URLs of the cluster's nodes.
	URLs []string
	// IndexPrefix names the template and data streams (default "vigil").
	IndexPrefix string
	// Credentials: an API key (base64, as Elasticsearch issues it), or a
	// user and password.
	APIKey, Username, Password string
	// CACertFile is a PEM file to trust for https URLs.
	CACertFile string
	// Timeout bounds one request (default 30s).
	Timeout time.Duration
	Kinds   []event.Kind
	Host    *event.Host
	Queue   spool.Options
}

//go:embed template.json
var templateJSON string

// Template returns the index template the sink installs for prefix.
func Template(prefix string) []byte {
	return []byte(strings.ReplaceAll(templateJSON, "{{prefix}}", prefix))
}

// New starts an Elasticsearch sink. Nothing is sent until the first event.
func New(o Options) (*spool.Sink, error) {
	if len(o.URLs) == 0 {
		return nil, errors.New("elasticsearch: no urls")
	}
	if o.IndexPrefix == "" {
		o.IndexPrefix = "vigil"
	}
	if o.IndexPrefix != strings.ToLower(o.IndexPrefix) || strings.ContainsAny(o.IndexPrefix, `\/*?"<>| ,#:`) {
		return nil, fmt.Errorf("elasticsearch: index_prefix %q is not a valid index name (lowercase, no \\/*?\"<>|,#: or spaces)", o.IndexPrefix)
	}
	if o.Timeout <= 0 {
		o.Timeout = 30 * time.Second
	}
	if o.Queue.Type == "" {
		o.Queue.Type = "elasticsearch"
	}
	client, err := newClient(o)
	if err != nil {
		return nil, err
	}
	s := &sender{opts: o, client: client}
	alerts, events := o.IndexPrefix+"-alerts", o.IndexPrefix+"-events"
	seq := sink.NewSequencer()
	enc := func(e *event.Event) ([]byte, error) {
		n, id := seq.Next()
		doc, err := sink.MarshalDoc(e, o.Host, n)
		if err != nil {
			return nil, err
		}
		index := events
		if e.Kind == event.KindAlert {
			index = alerts
		}
		action, err := json.Marshal(map[string]bulkAction{"create": {Index: index, ID: id}})
		if err != nil {
			return nil, err
		}
		return spool.Record(action, doc), nil
	}
	return spool.NewSink(o.Queue, o.Kinds, enc, s)
}

func newClient(o Options) (*elasticsearch.Client, error) {
	cfg := elasticsearch.Config{
		Addresses: o.URLs, APIKey: o.APIKey, Username: o.Username, Password: o.Password,
		// The spool retries, per document; the client must not retry on its own.
		DisableRetry: true,
		Transport:    &http.Transport{ResponseHeaderTimeout: o.Timeout, Proxy: http.ProxyFromEnvironment},
	}
	if o.CACertFile != "" {
		pem, err := os.ReadFile(o.CACertFile)
		if err != nil {
			return nil, fmt.Errorf("elasticsearch: ca_cert: %w", err)
		}
		cfg.CACert = pem
		cfg.Transport = nil // the client builds one that trusts CACert
	}
	client, err := elasticsearch.NewClient(cfg)
	if err != nil {
		return nil, fmt.Errorf("elasticsearch: %w", err)
	}
	return client, nil
}

type bulkAction struct {
	Index string `json:"_index"`
	ID    string `json:"_id"`
}

type sender struct {
	opts     Options
	client   *elasticsearch.Client
	template bool // installed
}

func (s *sender) installTemplate(ctx context.Context) error {
	if s.template {
		return nil
	}
	res, err := s.client.Indices.PutIndexTemplate(s.opts.IndexPrefix, bytes.NewReader(Template(s.opts.IndexPrefix)),
		s.client.Indices.PutIndexTemplate.WithContext(ctx))
	if err != nil {
		return fmt.Errorf("elasticsearch: index template: %w", err)
	}
	defer res.Body.Close()
	if res.IsError() {
		body, _ := io.ReadAll(io.LimitReader(res.Body, 4096))
		return fmt.Errorf("elasticsearch: index template: %s: %s", res.Status(), body)
	}
	s.template = true
	return nil
}

// bulkResponse is the part of the bulk API's answer the sink reads.
type bulkResponse struct {
	Errors bool `json:"errors"`
	Items  []map[string]struct {
		Status int `json:"status"`
		Error  *struct {
			Type   string `json:"type"`
			Reason string `json:"reason"`
		} `json:"error"`
	} `json:"items"`
}

func (s *sender) Send(ctx context.Context, batch [][]byte) error {
	if err := s.installTemplate(ctx); err != nil {
		return err
	}
	var body bytes.Buffer
	outcomes := make([]spool.Outcome, len(batch))
	var sent []int // index in batch of each item in the request
	var first error
	for i, rec := range batch {
		f, err := spool.Fields(rec, 2)
		if err != nil {
			outcomes[i] = spool.Rejected
			first = err
			continue
		}
		body.Write(f[0])
		body.WriteByte('\n')
		body.Write(f[1])
		body.WriteByte('\n')
		sent = append(sent, i)
	}
	if len(sent) == 0 {
		return &spool.BatchError{Outcomes: outcomes, Err: first}
	}
	ctx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
	defer cancel()
	res, err := s.client.Bulk(&body, s.client.Bulk.WithContext(ctx))
	if err != nil {
		return fmt.Errorf("elasticsearch: bulk: %w", err)
	}
	defer res.Body.Close()
	if res.IsError() {
		msg, _ := io.ReadAll(io.LimitReader(res.Body, 4096))
		err := fmt.Errorf("elasticsearch: bulk: %s: %s", res.Status(), bytes.TrimSpace(msg))
		switch res.StatusCode {
		case http.StatusBadRequest, http.StatusRequestEntityTooLarge:
			return spool.Permanent(err)
		}
		return err // 429, 5xx, and 401/403/404 until the cluster is fixed
	}
	var br bulkResponse
	if err := json.NewDecoder(res.Body).Decode(&br); err != nil {
		return fmt.Errorf("elasticsearch: bulk response: %w", err)
	}
	if !br.Errors && len(br.Items) == len(sent) && first == nil {
		return nil
	}
	if len(br.Items) != len(sent) {
		return fmt.Errorf("elasticsearch: bulk response has %d items for %d documents", len(br.Items), len(sent))
	}
	for k, item := range br.Items {
		i := sent[k]
		for _, r := range item { // one key: the op
			switch {
			case r.Status >= 200 && r.Status < 300, r.Status == http.StatusConflict:
				outcomes[i] = spool.Delivered
			case r.Status == http.StatusTooManyRequests || r.Status >= 500:
				outcomes[i] = spool.Retry
			default:
				outcomes[i] = spool.Rejected
			}
			if outcomes[i] != spool.Delivered && first == nil {
				first = fmt.Errorf("elasticsearch: document refused: %d", r.Status)
				if r.Error != nil {
					first = fmt.Errorf("elasticsearch: document refused: %d %s: %s", r.Status, r.Error.Type, r.Error.Reason)
				}
			}
		}
	}
	if first == nil {
		return nil
	}
	return &spool.BatchError{Outcomes: outcomes, Err: first}
}
