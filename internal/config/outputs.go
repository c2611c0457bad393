package config

import (
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"time"

	"gopkg.in/yaml.v3"
)

// Store is the embedded SQLite store: alerts and response events always,
// events of the kinds listed, pruned by age and size. `vigil alerts` and `vigil events` read it.
type Store struct {
	// Path of the database; "" disables the store (and the web page).
	Path string `yaml:"path"`
	// Events lists the kinds of events stored beside alerts and responses:
	// exec, fork, exit, file, cred, net, kernel, or all. Empty: alerts and
	// responses only.
	Events []EventKind `yaml:"events"`
	// MaxAge: rows older than this are deleted; 0 keeps them.
	MaxAge Duration `yaml:"max_age"`
	// MaxSizeMiB bounds the database file: the oldest events go first, then
	// the oldest alerts. 0: no bound.
	MaxSizeMiB int `yaml:"max_size_mib"`
	// Queue is how many rows wait for the database; when full, rows are
	// dropped and counted rather than slowing the agent down.
	Queue int `yaml:"queue"`
}

// Web is the agent's local web page.
type Web struct {
	// Listen is a loopback host:port; "" disables the page.
	Listen ListenAddr `yaml:"listen"`
	// TokenFile holds the token the page asks for. It is generated (root
	// only, mode 0600) when missing.
	TokenFile string `yaml:"token_file"`
}

// Metrics is the Prometheus endpoint.
type Metrics struct {
	// Listen is host:port for /metrics; "" disables it.
	Listen ListenAddr `yaml:"listen"`
}

// EventKind is an event kind name in the configuration, checked with its line.
type EventKind string

// StoreKinds are the kinds store.events accepts.
var StoreKinds = []string{"exec", "fork", "exit", "file", "cred", "net", "kernel", "all"}

func (k *EventKind) UnmarshalYAML(n *yaml.Node) error {
	for _, v := range StoreKinds {
		if n.Value == v {
			*k = EventKind(v)
			return nil
		}
	}
	return fmt.Errorf("line %d: %q is not an event kind (exec, fork, exit, file, cred, net, kernel or all)", n.Line, n.Value)
}

// ListenAddr is host:port, checked with its line when read.
type ListenAddr string

func (a *ListenAddr) UnmarshalYAML(n *yaml.Node) error {
	if n.Value != "" {
		if err := checkListen(n.Value); err != nil {
			return fmt.Errorf("line %d: %q: %v", n.Line, n.Value, err)
		}
	}
	*a = ListenAddr(n.Value)
	return nil
}

func checkListen(s string) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return errors.New("want host:port, like 127.0.0.1:9470")
	}
	if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
		return fmt.Errorf("port %q is not a number from 0 to 65535", port)
	}
	if host == "" {
		return errors.New("name the address to listen on (127.0.0.1 for this machine only)")
	}
	return nil
}

// defaultOutputs: alerts kept in /var/lib/vigil for 30 days within 1 GiB;
// the page and the metrics on loopback only.
func defaultOutputs(c *Config) {
	c.Store = Store{Path: "/var/lib/vigil/vigil.db", MaxAge: Duration(30 * 24 * time.Hour), MaxSizeMiB: 1024, Queue: 8192}
	c.Web = Web{Listen: "127.0.0.1:9470", TokenFile: "/var/lib/vigil/web.token"}
	c.Metrics = Metrics{Listen: "127.0.0.1:9471"}
}

func (c Config) validateOutputs() []error {
	var errs []error
	if c.Store.Path != "" && !filepath.IsAbs(c.Store.Path) {
		errs = append(errs, fmt.Errorf("store.path: %q is not an absolute path", c.Store.Path))
	}
	if c.Store.MaxAge < 0 {
		errs = append(errs, errors.New("store.max_age: must not be negative"))
	}
	if c.Store.MaxSizeMiB < 0 {
		errs = append(errs, errors.New("store.max_size_mib: must not be negative"))
	}
	if c.Store.Queue < 1 {
		errs = append(errs, fmt.Errorf("store.queue: %d must be at least 1", c.Store.Queue))
	}
	if c.Web.Listen != "" {
		if err := checkListen(string(c.Web.Listen)); err != nil {
			errs = append(errs, fmt.Errorf("web.listen: %v", err))
		}
		if c.Store.Path == "" {
			errs = append(errs, errors.New(`web.listen: the web page reads the store: set store.path, or web.listen: "" to disable the page`))
		}
		if c.Web.TokenFile == "" {
			errs = append(errs, errors.New("web.token_file: empty; the page needs a token"))
		}
	}
	if c.Metrics.Listen != "" {
		if err := checkListen(string(c.Metrics.Listen)); err != nil {
			errs = append(errs, fmt.Errorf("metrics.listen: %v", err))
		}
	}
	return errs
}

// StoresKind reports whether events of the named kind are stored.
func (s Store) StoresKind(kind string) bool {
	for _, k := range s.Events {
		if string(k) == kind || k == "all" {
			return true
		}
	}
	return false
}
