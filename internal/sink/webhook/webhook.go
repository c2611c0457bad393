// Package webhook POSTs each event as a JSON document (its ECS document,
// docs/events.md) to an HTTP endpoint, through a spool.Queue: retries with
// backoff on network errors, 408, 429 and 5xx; a 4xx otherwise is a refusal
// and counts as failed. With a secret, every request carries an HMAC-SHA256
// signature the receiver checks (docs/sinks.md):
//
//	X-Vigil-Id:        the event's id, the same on every retry (deduplicate on it)
//	X-Vigil-Timestamp: unix seconds when this attempt was signed
//	X-Vigil-Signature: sha256=hex(HMAC-SHA256(secret, timestamp + "." + body))
package webhook

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/vigilsec/vigil/internal/event"
	"github.com/vigilsec/vigil/internal/sink"
	"github.com/vigilsec/vigil/internal/sink/spool"
	"github.com/vigilsec/vigil/internal/version"
)

// Options configure a webhook sink.
type Options struct {
	URL string
	// Secret, when set, signs every request (see the package documentation).
	Secret []byte
	// Headers are added to every request (e.g. Authorization).
	Headers map[string]string
	// Timeout bounds one request (default 10s).
	Timeout time.Duration
	// Kinds, when not empty, limits the sink to these kinds of event.
	Kinds []event.Kind
	Host  *event.Host
	Queue spool.Options
}

// New starts a webhook sink.
func New(o Options) (*spool.Sink, error) {
	u, err := url.Parse(o.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("webhook: url %q is not an http or https URL", o.URL)
	}
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	if o.Queue.Type == "" {
		o.Queue.Type = "webhook"
	}
	s := &sender{opts: o, client: &http.Client{Timeout: o.Timeout}}
	seq := sink.NewSequencer()
	enc := func(e *event.Event) ([]byte, error) {
		n, id := seq.Next()
		body, err := sink.MarshalDoc(e, o.Host, n)
		if err != nil {
			return nil, err
		}
		return spool.Record([]byte(id), body), nil
	}
	return spool.NewSink(o.Queue, o.Kinds, enc, s)
}

type sender struct {
	opts   Options
	client *http.Client
}

// Sign returns the X-Vigil-Signature value for body sent at ts.
func Sign(secret []byte, ts string, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(ts))
	m.Write([]byte("."))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// Send posts the records one by one, in order; at the first that must be
// retried, it stops and leaves the rest for later.
func (s *sender) Send(ctx context.Context, batch [][]byte) error {
	outcomes := make([]spool.Outcome, len(batch))
	var first error
	for i, rec := range batch {
		if first != nil && outcomes[i-1] == spool.Retry {
			outcomes[i] = spool.Retry
			continue
		}
		o, err := s.post(ctx, rec)
		outcomes[i] = o
		if err != nil && first == nil {
			first = err
		}
	}
	if first == nil {
		return nil
	}
	return &spool.BatchError{Outcomes: outcomes, Err: first}
}

func (s *sender) post(ctx context.Context, rec []byte) (spool.Outcome, error) {
	f, err := spool.Fields(rec, 2)
	if err != nil {
		return spool.Rejected, err
	}
	id, body := f[0], f[1]
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.opts.URL, bytes.NewReader(body))
	if err != nil {
		return spool.Rejected, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "vigil/"+version.String())
	for k, v := range s.opts.Headers {
		req.Header.Set(k, v)
	}
	req.Header.Set("X-Vigil-Id", string(id))
	if len(s.opts.Secret) > 0 {
		ts := strconv.FormatInt(time.Now().Unix(), 10)
		req.Header.Set("X-Vigil-Timestamp", ts)
		req.Header.Set("X-Vigil-Signature", Sign(s.opts.Secret, ts, body))
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return spool.Retry, fmt.Errorf("webhook: %w", err)
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	switch c := resp.StatusCode; {
	case c >= 200 && c < 300:
		return spool.Delivered, nil
	case c == http.StatusRequestTimeout || c == http.StatusTooManyRequests || c >= 500:
		return spool.Retry, fmt.Errorf("webhook: %s", resp.Status)
	default:
		return spool.Rejected, errors.New("webhook: refused: " + resp.Status)
	}
}
