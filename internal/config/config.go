// Package config loads the agent's configuration: built-in defaults, then a
// YAML file, then command-line flags. Errors name the file and line.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Config is everything `vigil run` can be told. The YAML names are the
// snake_case tags below; docs/config.md describes each.
type Config struct {
	// Output is where events go as JSON lines: "-" for stdout, or a file path.
	Output string `yaml:"output"`
	// StatusSocket is the root-only unix socket `vigil status` talks to.
	StatusSocket string `yaml:"status_socket"`
	// LogLevel is debug, info, warn or error; logs go to stderr.
	LogLevel string `yaml:"log_level"`
	// StatsInterval is how often the agent logs its counters; 0 disables.
	StatsInterval Duration `yaml:"stats_interval"`

	Kernel  Kernel  `yaml:"kernel"`
	Queue   Queue   `yaml:"queue"`
	Process Process `yaml:"process"`
	Sensors Sensors `yaml:"sensors"`
	Rules   Rules   `yaml:"rules"`
	Paths   Paths   `yaml:"paths"`
	Anomaly Anomaly `yaml:"anomaly"`
	// Containers: attribution and resource abuse (containers.go).
	Containers Containers `yaml:"containers"`
	// Response is how rules' responses are carried out (response.go).
	Response Response `yaml:"response"`
	// Sandboxes are per-container allowlists of programs, writable paths
	// and destinations, enforced or audited (sandbox.go).
	Sandboxes Sandboxes `yaml:"sandboxes"`
	// NetDefense: floods, scans, threat intelligence, payloads (netdef.go).
	NetDefense NetDefense `yaml:"netdefense"`
	// Ransomware and FIM: files.go.
	Ransomware Ransomware `yaml:"ransomware"`
	FIM        FIM        `yaml:"fim"`
	// Record, when set, is a file every event is appended to in the
	// recording format that `vigil replay` and `vigil rules test` read.
	Record string `yaml:"record"`

	// Where results go besides Output: outputs.go.
	Store   Store   `yaml:"store"`
	Web     Web     `yaml:"web"`
	Metrics Metrics `yaml:"metrics"`
	// Sinks are further outputs, each with a queue and a disk spool:
	// docs/sinks.md.
	Sinks []Sink `yaml:"sinks"`
	// SpoolDir holds the disk spool of each sink, in a directory named after it.
	SpoolDir string `yaml:"spool_dir"`
}

// Rules says where detection rules come from.
type Rules struct {
	// Builtin loads the rules embedded in the binary first.
	Builtin bool `yaml:"builtin"`
	// Dirs are read after the built-in rules, in order: their rules replace
	// built-in ones with the same id, and their overrides change them.
	Dirs []string `yaml:"dirs"`
	// Watch reloads the rules when a file in Dirs changes (SIGHUP always does).
	Watch bool `yaml:"watch"`
}

// Sensors says what each kernel sensor reports. Process lifecycle (exec,
// fork, exit) is always on: the process cache depends on it. Everything else
// is filtered in the kernel, so what is off costs next to nothing.
type Sensors struct {
	File   FileSensor `yaml:"file"`
	Cred   Sensor     `yaml:"cred"`
	Net    Sensor     `yaml:"net"`
	Kernel Sensor     `yaml:"kernel"`
}

// Sensor is the switch and outcome filter every sensor has.
type Sensor struct {
	// Enabled: true, false, or auto: loaded, and its events sent by the
	// kernel only while a loaded rule is on its kind.
	Enabled Switch `yaml:"enabled"`
	// Outcome: "any", "success" or "failure" of the operation.
	Outcome string `yaml:"outcome"`
}

// FileSensor adds which file operations are reported, by path.
type FileSensor struct {
	Sensor `yaml:",inline"`
	// Writes: which file changes are reported: "none", "watched" (below
	// WatchWrites) or "all" (but Ignore).
	Writes string `yaml:"writes"`
	// Reads: which opens for reading are reported: "none", "watched" (the
	// files in WatchReads) or "all".
	Reads string `yaml:"reads"`
	// WatchWrites: files and directories (with everything below them) whose
	// changes are reported. Empty means the built-in list.
	WatchWrites []string `yaml:"watch_writes"`
	// WatchReads: files, and directories whose files, are reported when
	// opened for reading. Empty means the built-in list.
	WatchReads []string `yaml:"watch_reads"`
	// Ignore: directories below which writes are never reported.
	Ignore []string `yaml:"ignore"`
}

// Switch turns a sensor on, off, or over to the rules (auto).
type Switch uint8

const (
	Off Switch = iota
	On
	Auto
)

// Loaded says whether the sensor is loaded at all.
func (s Switch) Loaded() bool { return s != Off }

// Sends says whether the kernel sends the sensor's events, given whether a
// loaded rule needs them.
func (s Switch) Sends(needed bool) bool { return s == On || (s == Auto && needed) }

func (s Switch) String() string { return [...]string{"false", "true", "auto"}[s] }

func (s *Switch) UnmarshalYAML(n *yaml.Node) error {
	switch n.Value {
	case "true", "on", "yes":
		*s = On
	case "false", "off", "no":
		*s = Off
	case "auto":
		*s = Auto
	default:
		return fmt.Errorf("line %d: %q is not one of true, false, auto", n.Line, n.Value)
	}
	return nil
}

func (s Switch) MarshalYAML() (any, error) {
	if s == Auto {
		return "auto", nil
	}
	return s == On, nil
}

// Kernel tunes the transport from BPF to user space.
type Kernel struct {
	// RingBufferMiB is the ring buffer size, a power of two.
	RingBufferMiB int `yaml:"ring_buffer_mib"`
	// Poll is the longest an event waits in the ring before it is read.
	Poll Duration `yaml:"poll"`
}

// Queue is the user-space queue between the ring reader and the outputs. When
// it is full, events are dropped and counted, never blocking the reader.
type Queue struct {
	// Size is how many events the queue holds.
	Size int `yaml:"size"`
}

// Process tunes the process cache.
type Process struct {
	// MaxEntries bounds the process cache (at least 1024).
	MaxEntries int `yaml:"max_entries"`
	// ExitGrace is how long an exited process stays for late lookups.
	ExitGrace Duration `yaml:"exit_grace"`
	// AncestryDepth is how many ancestors are attached to each event, at
	// most 64 (the bound rule conditions are costed with).
	AncestryDepth int `yaml:"ancestry_depth"`
}

// Paths are the host filesystems Vigil reads. Tests point them at fixtures.
type Paths struct {
	// Procfs is where procfs is mounted.
	Procfs string `yaml:"procfs"`
	// Cgroupfs is the cgroup v2 hierarchy.
	Cgroupfs string `yaml:"cgroupfs"`
	// BTF is the kernel's BTF type information.
	BTF string `yaml:"btf"`
}

// Default is the configuration `vigil run` uses with no file.
func Default() Config {
	c := Config{
		Output:        "-",
		StatusSocket:  "/run/vigil/status.sock",
		LogLevel:      "info",
		StatsInterval: Duration(time.Minute),
		Kernel:        Kernel{RingBufferMiB: 16, Poll: Duration(20 * time.Millisecond)},
		Queue:         Queue{Size: 65536},
		Process:       Process{MaxEntries: 65536, ExitGrace: Duration(30 * time.Second), AncestryDepth: 16},
		Sensors: Sensors{
			File:   FileSensor{Sensor: Sensor{Enabled: On, Outcome: "any"}, Writes: "watched", Reads: "watched"},
			Cred:   Sensor{Enabled: On, Outcome: "success"},
			Net:    Sensor{Enabled: On, Outcome: "any"},
			Kernel: Sensor{Enabled: On, Outcome: "any"},
		},
		Rules:      Rules{Builtin: true, Dirs: []string{"/etc/vigil/rules.d"}, Watch: true},
		Paths:      Paths{Procfs: "/proc", Cgroupfs: defaultCgroupfs(), BTF: "/sys/kernel/btf/vmlinux"},
		Anomaly:    defaultAnomaly(),
		Containers: defaultContainers(),
		Response:   DefaultResponse(),
		NetDefense: defaultNetDefense(),
		Ransomware: defaultRansomware(),
		FIM:        defaultFIM(),
		SpoolDir:   "/var/lib/vigil/spool",
	}
	defaultOutputs(&c)
	return c
}

// defaultCgroupfs is the cgroup v2 hierarchy: /sys/fs/cgroup on a unified
// host, /sys/fs/cgroup/unified on a hybrid one.
func defaultCgroupfs() string {
	if _, err := os.Stat("/sys/fs/cgroup/unified/cgroup.procs"); err == nil {
		return "/sys/fs/cgroup/unified"
	}
	return "/sys/fs/cgroup"
}

// Load reads a YAML file over the defaults. Unknown keys are errors.
func Load(path string) (Config, error) {
	cfg := Default()
	if path == "" {
		return cfg, cfg.Validate()
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return cfg, fmt.Errorf("config: %w", err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil && !errors.Is(err, errEOF) {
		return cfg, fmt.Errorf("%s: %s", path, yamlMessage(err))
	}
	if err := cfg.Validate(); err != nil {
		return cfg, fmt.Errorf("%s: %w", path, err)
	}
	return cfg, nil
}

var errEOF = func() error { var v any; return yaml.NewDecoder(strings.NewReader("")).Decode(&v) }()

var yamlLine = regexp.MustCompile(`^(?:yaml: )?line (\d+): `)

// yamlMessage turns "yaml: line 3: x" into "line 3: x", one problem per line.
func yamlMessage(err error) string {
	var te *yaml.TypeError
	msgs := []string{err.Error()}
	if errors.As(err, &te) {
		msgs = te.Errors
	}
	for i, m := range msgs {
		msgs[i] = yamlLine.ReplaceAllString(m, "line $1: ")
		if strings.Contains(m, "field payload not found in type config.NetDefense") {
			msgs[i] += " (payload signatures are rules now: a rule with payload:, see docs/network.md)"
		}
	}
	return strings.Join(msgs, "; ")
}

// Validate checks values that YAML types cannot.
func (c Config) Validate() error {
	var errs []error
	if mib := c.Kernel.RingBufferMiB; mib < 1 || mib&(mib-1) != 0 {
		errs = append(errs, fmt.Errorf("kernel.ring_buffer_mib: %d is not a power of two of at least 1", mib))
	}
	if c.Kernel.Poll <= 0 {
		errs = append(errs, errors.New("kernel.poll: must be positive"))
	}
	if c.Queue.Size < 1 {
		errs = append(errs, fmt.Errorf("queue.size: %d must be at least 1", c.Queue.Size))
	}
	if c.Process.MaxEntries < 1024 {
		errs = append(errs, fmt.Errorf("process.max_entries: %d must be at least 1024", c.Process.MaxEntries))
	}
	if c.Process.AncestryDepth < 0 || c.Process.AncestryDepth > 64 {
		errs = append(errs, fmt.Errorf("process.ancestry_depth: %d must be between 0 and 64", c.Process.AncestryDepth))
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("log_level: %q is not one of debug, info, warn, error", c.LogLevel))
	}
	for name, o := range map[string]string{"file": c.Sensors.File.Outcome, "cred": c.Sensors.Cred.Outcome,
		"net": c.Sensors.Net.Outcome, "kernel": c.Sensors.Kernel.Outcome} {
		if _, ok := Outcomes[o]; !ok {
			errs = append(errs, fmt.Errorf("sensors.%s.outcome: %q is not one of any, success, failure", name, o))
		}
	}
	for name, v := range map[string]string{"writes": c.Sensors.File.Writes, "reads": c.Sensors.File.Reads} {
		if _, ok := Interests[v]; !ok {
			errs = append(errs, fmt.Errorf("sensors.file.%s: %q is not one of none, watched, all", name, v))
		}
	}
	for _, list := range [][]string{c.Sensors.File.WatchWrites, c.Sensors.File.WatchReads, c.Sensors.File.Ignore} {
		for _, p := range list {
			if !strings.HasPrefix(p, "/") {
				errs = append(errs, fmt.Errorf("sensors.file: %q is not an absolute path", p))
			}
		}
	}
	if err := c.Containers.validate(); err != nil {
		errs = append(errs, err)
	}
	errs = append(errs, c.Response.validate()...)
	if err := c.NetDefense.Validate(); err != nil {
		errs = append(errs, err)
	}
	errs = append(errs, c.Ransomware.validate()...)
	errs = append(errs, c.FIM.validate()...)
	if c.Output == "" {
		errs = append(errs, errors.New(`output: empty; use "-" for stdout or a file path`))
	}
	if err := c.Anomaly.validate(); err != nil {
		errs = append(errs, err)
	}
	errs = append(errs, c.validateOutputs()...)
	if len(c.Sinks) > 0 && !strings.HasPrefix(c.SpoolDir, "/") {
		errs = append(errs, fmt.Errorf("spool_dir: %q is not an absolute path", c.SpoolDir))
	}
	errs = append(errs, c.validateSinks()...)
	return errors.Join(errs...)
}

// Outcomes and Interests list the accepted words, for validation and for the
// daemon to translate.
var (
	Outcomes  = map[string]uint8{"any": 0, "success": 1, "failure": 2}
	Interests = map[string]uint8{"none": 0, "watched": 1, "all": 2}
)

// Duration is a time.Duration written as "20ms", "30s" or "1m" in YAML.
type Duration time.Duration

func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %q is not a duration like 20ms, 30s or 1m", n.Line, n.Value)
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML writes the duration as time.Duration does, without zero
// trailing units: 1m, 24h, 1h30m, 20ms.
func (d Duration) MarshalYAML() (any, error) {
	s := time.Duration(d).String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s, nil
}

// D is the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }
