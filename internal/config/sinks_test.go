package config

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestLoadSinks(t *testing.T) {
	p := write(t, `spool_dir: /var/tmp/vigil-spool
sinks:
  - type: file
    path: /var/log/vigil/alerts.json
    kinds: [alert]
    max_size_mib: 100
    max_age: 24h
    keep: 7
    compress: true
  - type: syslog
    network: tcp
    address: 127.0.0.1:514
    facility: auth
    format: text
    queue:
      memory_records: 100
      spool_mib: 16
      max_backoff: 1m
  - type: webhook
    name: pager
    url: https://hooks.example.com/vigil
    secret_file: /etc/vigil/hook.key
    headers: {Authorization: Bearer x}
  - type: elasticsearch
    urls: [https://es1:9200, https://es2:9200]
    api_key: abc
  - type: nats
    url: nats://nats:4222
    stream: VIGIL
    create_stream: true
    duplicate_window: 10m
  - type: syslog
    network: unix
    address: /dev/log
`)
	cfg, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	want := []Sink{
		{Type: "file", Kinds: []string{"alert"}, Line: 3, File: &FileSink{Path: "/var/log/vigil/alerts.json",
			MaxSizeMiB: 100, MaxAge: Duration(24 * time.Hour), Keep: 7, Compress: true}},
		{Type: "syslog", Line: 10, Queue: SinkQueue{MemoryRecords: 100, SpoolMiB: 16, MaxBackoff: Duration(time.Minute)},
			Syslog: &SyslogSink{Network: "tcp", Address: "127.0.0.1:514", Facility: "auth", Format: "text"}},
		{Type: "webhook", Name: "pager", Line: 19, Webhook: &WebhookSink{URL: "https://hooks.example.com/vigil",
			SecretFile: "/etc/vigil/hook.key", Headers: map[string]string{"Authorization": "Bearer x"}}},
		{Type: "elasticsearch", Line: 24, Elasticsearch: &ElasticsearchSink{URLs: []string{"https://es1:9200", "https://es2:9200"}, APIKey: "abc"}},
		{Type: "nats", Line: 27, NATS: &NATSSink{URL: "nats://nats:4222", Stream: "VIGIL", CreateStream: true, DuplicateWindow: Duration(10 * time.Minute)}},
		{Type: "syslog", Line: 32, Syslog: &SyslogSink{Network: "unix", Address: "/dev/log"}},
	}
	if diff := cmp.Diff(want, cfg.Sinks); diff != "" {
		t.Errorf("sinks (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"file", "syslog", "pager", "elasticsearch", "nats", "syslog-2"}, cfg.SinkNames()); diff != "" {
		t.Errorf("names (-want +got):\n%s", diff)
	}
	if cfg.SpoolDir != "/var/tmp/vigil-spool" {
		t.Errorf("spool_dir %q", cfg.SpoolDir)
	}
}

func TestSinkErrorsNameFileAndLine(t *testing.T) {
	tests := []struct {
		name, body string
		want       []string
	}{
		{"no type", "sinks:\n  - path: /x\n", []string{"vigil.yaml", "line 2", "no type"}},
		{"unknown type", "sinks:\n  - type: kafka\n", []string{"line 2", `"kafka"`, "nats"}},
		{"option of another type", "sinks:\n  - type: file\n    path: /x\n    url: http://y\n", []string{"line 4", "file sink has no option \"url\""}},
		{"typo in queue", "sinks:\n  - type: file\n    path: /x\n    queue:\n      memory: 5\n", []string{"line 5", `"memory"`}},
		{"not a mapping", "sinks:\n  - file\n", []string{"line 2", "mapping"}},
		{"wrong value type", "sinks:\n  - type: file\n    path: /x\n    keep: many\n", []string{"line 4", "many"}},
		{"bad duration", "sinks:\n  - type: file\n    path: /x\n    max_age: soon\n", []string{"line 4", `"soon"`}},
		{"bad network", "sinks:\n  - type: syslog\n    network: tls\n    address: x:1\n", []string{"line 2", "sinks[0] (syslog)", `network "tls"`}},
		{"relative path", "sinks:\n  - type: file\n    path: x.json\n", []string{"line 2", "absolute"}},
		{"bad kind", "sinks:\n  - type: file\n    path: /x\n    kinds: [alerts]\n", []string{"line 2", `"alerts"`}},
		{"bad url", "sinks:\n  - type: webhook\n    url: ftp://x\n", []string{"line 2", "http or https"}},
		{"no urls", "sinks:\n  - type: elasticsearch\n", []string{"line 2", "urls"}},
		{"duplicate name", "sinks:\n  - type: file\n    path: /a\n  - type: file\n    name: file\n    path: /b\n", []string{"line 4", `"file" is also`}},
		{"stream", "sinks:\n  - type: nats\n    url: nats://x\n    create_stream: true\n", []string{"line 2", "stream name"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load(write(t, tt.body))
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}
