package config

import (
	"errors"
	"fmt"
	"net/url"
	"reflect"
	"regexp"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// Sink is one entry of `sinks:`: a type, options common to every sink, and
// the options of its type (exactly one of the pointers is set, matching
// Type). docs/config.md describes each.
type Sink struct {
	// Type is file, syslog, webhook, elasticsearch or nats; the keys of
	// each type are in docs/config.md (Sinks) and docs/sinks.md.
	Type string `yaml:"type"`
	// Name labels counters and logs and names the spool directory
	// (default: the type, then type-2, type-3... for more of one type).
	Name string `yaml:"name"`
	// Kinds limits the sink to these kinds of event ("alert", "exec"...);
	// empty means all.
	Kinds []string  `yaml:"kinds"`
	Queue SinkQueue `yaml:"queue"`

	File          *FileSink          `yaml:"-"`
	Syslog        *SyslogSink        `yaml:"-"`
	Webhook       *WebhookSink       `yaml:"-"`
	Elasticsearch *ElasticsearchSink `yaml:"-"`
	NATS          *NATSSink          `yaml:"-"`

	// Line is where the entry starts in the file, for errors.
	Line int `yaml:"-"`
}

// SinkQueue tunes a sink's queue and disk spool. Zero values are defaults.
type SinkQueue struct {
	MemoryRecords int      `yaml:"memory_records"` // default 4096
	SpoolMiB      int      `yaml:"spool_mib"`      // disk bound, default 256
	MaxBatch      int      `yaml:"max_batch"`      // records per delivery, default 500
	MinBackoff    Duration `yaml:"min_backoff"`    // default 100ms
	MaxBackoff    Duration `yaml:"max_backoff"`    // default 30s
	DrainTimeout  Duration `yaml:"drain_timeout"`  // at stop, default 5s
}

// FileSink: JSON lines with rotation.
type FileSink struct {
	Path       string   `yaml:"path"`
	MaxSizeMiB int      `yaml:"max_size_mib"` // 0: no size limit
	MaxAge     Duration `yaml:"max_age"`      // 0: no age limit
	Keep       int      `yaml:"keep"`         // rotated files kept; 0: all
	Compress   bool     `yaml:"compress"`     // gzip rotated files
}

// SyslogSink: RFC 5424 over a unix datagram socket, UDP or TCP.
type SyslogSink struct {
	Network         string `yaml:"network"` // unix, udp, tcp
	Address         string `yaml:"address"` // socket path or host:port
	Facility        string `yaml:"facility"`
	Format          string `yaml:"format"` // json, text
	MaxMessageBytes int    `yaml:"max_message_bytes"`
}

// WebhookSink: an HTTP POST of each event's JSON document.
type WebhookSink struct {
	URL        string            `yaml:"url"`
	Secret     string            `yaml:"secret"`      // HMAC-SHA256 key
	SecretFile string            `yaml:"secret_file"` // or read it from a file
	Headers    map[string]string `yaml:"headers"`
	Timeout    Duration          `yaml:"timeout"`
}

// ElasticsearchSink: the bulk API, ECS documents, an index template.
type ElasticsearchSink struct {
	URLs        []string `yaml:"urls"`
	IndexPrefix string   `yaml:"index_prefix"`
	APIKey      string   `yaml:"api_key"`
	Username    string   `yaml:"username"`
	Password    string   `yaml:"password"`
	CACert      string   `yaml:"ca_cert"`
	Timeout     Duration `yaml:"timeout"`
}

// NATSSink: JetStream, a subject per host.
type NATSSink struct {
	URL             string   `yaml:"url"`
	SubjectPrefix   string   `yaml:"subject_prefix"`
	Stream          string   `yaml:"stream"`
	CreateStream    bool     `yaml:"create_stream"`
	DuplicateWindow Duration `yaml:"duplicate_window"`
	CredsFile       string   `yaml:"creds_file"`
	Token           string   `yaml:"token"`
	User            string   `yaml:"user"`
	Password        string   `yaml:"password"`
	Timeout         Duration `yaml:"timeout"`
}

// SinkTypes lists the accepted types.
var SinkTypes = []string{"file", "syslog", "webhook", "elasticsearch", "nats"}

// EventKinds are the words `kinds:` accepts.
var EventKinds = []string{"exec", "fork", "exit", "file", "cred", "net", "kernel", "alert"}

type sinkCommon struct {
	Type  string    `yaml:"type"`
	Name  string    `yaml:"name"`
	Kinds []string  `yaml:"kinds"`
	Queue SinkQueue `yaml:"queue"`
}

// UnmarshalYAML reads an entry by its type, refusing options the type does
// not have, with the line of each problem.
func (s *Sink) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.MappingNode {
		return fmt.Errorf("line %d: sinks: each entry is a mapping with a type (one of %s)", n.Line, strings.Join(SinkTypes, ", "))
	}
	typ := ""
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == "type" {
			typ = n.Content[i+1].Value
		}
	}
	var opts any
	switch typ {
	case "file":
		s.File = new(FileSink)
		opts = s.File
	case "syslog":
		s.Syslog = new(SyslogSink)
		opts = s.Syslog
	case "webhook":
		s.Webhook = new(WebhookSink)
		opts = s.Webhook
	case "elasticsearch":
		s.Elasticsearch = new(ElasticsearchSink)
		opts = s.Elasticsearch
	case "nats":
		s.NATS = new(NATSSink)
		opts = s.NATS
	case "":
		return fmt.Errorf("line %d: sinks: entry has no type (one of %s)", n.Line, strings.Join(SinkTypes, ", "))
	default:
		return fmt.Errorf("line %d: sinks: type %q is not one of %s", n.Line, typ, strings.Join(SinkTypes, ", "))
	}
	allowed := append(yamlKeys(reflect.TypeOf(sinkCommon{})), yamlKeys(reflect.TypeOf(opts).Elem())...)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i]
		if !slices.Contains(allowed, k.Value) {
			return fmt.Errorf("line %d: sinks: a %s sink has no option %q (it has %s)", k.Line, typ, k.Value, strings.Join(allowed, ", "))
		}
		if v := n.Content[i+1]; k.Value == "queue" && v.Kind == yaml.MappingNode {
			qkeys := yamlKeys(reflect.TypeOf(SinkQueue{}))
			for j := 0; j+1 < len(v.Content); j += 2 {
				if qk := v.Content[j]; !slices.Contains(qkeys, qk.Value) {
					return fmt.Errorf("line %d: sinks: queue has no option %q (it has %s)", qk.Line, qk.Value, strings.Join(qkeys, ", "))
				}
			}
		}
	}
	var common sinkCommon
	var errs []string
	for _, target := range []any{&common, opts} {
		if err := decodeLenient(n, target); err != nil {
			var te *yaml.TypeError
			if !errors.As(err, &te) {
				return err
			}
			errs = append(errs, te.Errors...)
		}
	}
	if len(errs) > 0 {
		return &yaml.TypeError{Errors: errs}
	}
	s.Type, s.Name, s.Kinds, s.Queue, s.Line = common.Type, common.Name, common.Kinds, common.Queue, n.Line
	return nil
}

// decodeLenient decodes n into v, ignoring keys v lacks (the caller checked
// them against the union of both structs).
func decodeLenient(n *yaml.Node, v any) error {
	keys := yamlKeys(reflect.TypeOf(v).Elem())
	sub := *n
	sub.Content = nil
	for i := 0; i+1 < len(n.Content); i += 2 {
		if slices.Contains(keys, n.Content[i].Value) {
			sub.Content = append(sub.Content, n.Content[i], n.Content[i+1])
		}
	}
	return sub.Decode(v)
}

// yamlKeys lists the YAML keys of a struct type.
func yamlKeys(t reflect.Type) []string {
	var out []string
	for f := range t.Fields() {
		tag := f.Tag.Get("yaml")
		name, _, _ := strings.Cut(tag, ",")
		if name == "-" || !f.IsExported() {
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		out = append(out, name)
	}
	return out
}

var sinkName = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// SinkNames returns each sink's name: its own, or else its type, then
// type-2, type-3... for further sinks of one type.
func (c Config) SinkNames() []string {
	names := make([]string, len(c.Sinks))
	perType := map[string]int{}
	for i, s := range c.Sinks {
		perType[s.Type]++
		names[i] = s.Name
		if names[i] == "" {
			names[i] = s.Type
			if perType[s.Type] > 1 {
				names[i] = fmt.Sprintf("%s-%d", s.Type, perType[s.Type])
			}
		}
	}
	return names
}

// validateSinks returns one error per problem, with the entry's line.
func (c Config) validateSinks() []error {
	var errs []error
	seen := map[string]int{}
	names := c.SinkNames()
	for i := range c.Sinks {
		s := &c.Sinks[i]
		bad := func(format string, args ...any) {
			errs = append(errs, fmt.Errorf("line %d: sinks[%d] (%s): %s", s.Line, i, s.Type, fmt.Sprintf(format, args...)))
		}
		if !sinkName.MatchString(names[i]) {
			bad("name %q: use letters, digits, - and _ (it names the spool directory)", names[i])
		}
		if prev, dup := seen[names[i]]; dup {
			bad("name %q is also the name of sinks[%d]", names[i], prev)
		}
		seen[names[i]] = i
		for _, k := range s.Kinds {
			if !slices.Contains(EventKinds, k) {
				bad("kinds: %q is not one of %s", k, strings.Join(EventKinds, ", "))
			}
		}
		q := s.Queue
		if q.MemoryRecords < 0 || q.SpoolMiB < 0 || q.MaxBatch < 0 || q.MinBackoff < 0 || q.MaxBackoff < 0 || q.DrainTimeout < 0 {
			bad("queue: values must not be negative")
		}
		switch {
		case s.File != nil:
			f := s.File
			if !strings.HasPrefix(f.Path, "/") {
				bad("path %q is not an absolute path", f.Path)
			}
			if f.MaxSizeMiB < 0 || f.MaxAge < 0 || f.Keep < 0 {
				bad("max_size_mib, max_age and keep must not be negative")
			}
		case s.Syslog != nil:
			y := s.Syslog
			switch y.Network {
			case "unix":
				if !strings.HasPrefix(y.Address, "/") {
					bad("address %q: a unix socket needs an absolute path", y.Address)
				}
			case "udp", "tcp":
				if !strings.Contains(y.Address, ":") {
					bad("address %q is not host:port", y.Address)
				}
			default:
				bad("network %q is not one of unix, udp, tcp", y.Network)
			}
			if y.Facility != "" && !slices.Contains(facilities, y.Facility) {
				bad("facility %q is not one of %s", y.Facility, strings.Join(facilities, ", "))
			}
			if y.Format != "" && y.Format != "json" && y.Format != "text" {
				bad("format %q is not json or text", y.Format)
			}
		case s.Webhook != nil:
			if !httpURL(s.Webhook.URL) {
				bad("url %q is not an http or https URL", s.Webhook.URL)
			}
			if s.Webhook.Secret != "" && s.Webhook.SecretFile != "" {
				bad("secret and secret_file: set one")
			}
		case s.Elasticsearch != nil:
			if len(s.Elasticsearch.URLs) == 0 {
				bad("urls: at least one is needed")
			}
			for _, u := range s.Elasticsearch.URLs {
				if !httpURL(u) {
					bad("url %q is not an http or https URL", u)
				}
			}
			if p := s.Elasticsearch.IndexPrefix; p != strings.ToLower(p) || strings.ContainsAny(p, `\/*?"<>| ,#:`) {
				bad("index_prefix %q: lowercase, without \\/*?\"<>|,#: or spaces", p)
			}
		case s.NATS != nil:
			if s.NATS.URL == "" {
				bad("url is empty")
			}
			if s.NATS.CreateStream && s.NATS.Stream == "" {
				bad("create_stream needs a stream name")
			}
		}
	}
	return errs
}

var facilities = []string{"kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron",
	"authpriv", "ftp", "local0", "local1", "local2", "local3", "local4", "local5", "local6", "local7"}

func httpURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
}
