package config

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Anomaly configures learned-behaviour detection: per-program models of
// syscall sequences and of the programs each one runs (docs/anomaly.md).
type Anomaly struct {
	// Enabled turns learned-behaviour detection on.
	Enabled bool `yaml:"enabled"`
	// Programs are the executables, or #! scripts, whose behaviour is
	// learned, by absolute path.
	Programs []string `yaml:"programs"`
	// Listeners: also learn every program that listens on a TCP port.
	Listeners bool `yaml:"listeners"`
	// Learn is how long a program is learned, from its first syscalls,
	// before detection starts.
	Learn Duration `yaml:"learn"`
	// MinSyscalls is the least number of syscalls a program must have made
	// while learned before detection starts.
	MinSyscalls int `yaml:"min_syscalls"`
	// Startup is how many syscalls of each new process are its start-up:
	// learned, never judged (a start-up is mostly seen once per process).
	Startup int `yaml:"startup"`
	// FalseAlarms is the target rate of anomalous batches (64 syscalls)
	// of normal behaviour the threshold is calibrated to; 0: none of the
	// held-out normal batches would have alerted.
	FalseAlarms float64 `yaml:"false_alarms"`
	// NGram is the model's n-gram length (2..6).
	NGram int `yaml:"ngram"`
	// Frame is how many n-grams are scored together (1..4096).
	Frame int `yaml:"frame"`
	// ProfilesDir keeps the learned profiles across restarts.
	ProfilesDir string `yaml:"profiles_dir"`
}

func defaultAnomaly() Anomaly {
	return Anomaly{
		Learn:       Duration(24 * time.Hour),
		MinSyscalls: 100000,
		Startup:     10000,
		NGram:       6,
		Frame:       20,
		ProfilesDir: "/var/lib/vigil/profiles",
	}
}

func (a Anomaly) validate() error {
	var errs []error
	if a.NGram < 2 || a.NGram > 6 {
		errs = append(errs, fmt.Errorf("anomaly.ngram: %d is not in 2..6", a.NGram))
	}
	if a.Frame < 1 || a.Frame > 4096 {
		errs = append(errs, fmt.Errorf("anomaly.frame: %d is not in 1..4096", a.Frame))
	}
	if a.FalseAlarms < 0 || a.FalseAlarms >= 1 {
		errs = append(errs, fmt.Errorf("anomaly.false_alarms: %g is not in [0, 1)", a.FalseAlarms))
	}
	if a.MinSyscalls < 0 || a.Startup < 0 {
		errs = append(errs, errors.New("anomaly.min_syscalls, anomaly.startup: must not be negative"))
	}
	for _, p := range a.Programs {
		if !strings.HasPrefix(p, "/") {
			errs = append(errs, fmt.Errorf("anomaly.programs: %q is not an absolute path", p))
		}
	}
	if a.Enabled && len(a.Programs) == 0 && !a.Listeners {
		errs = append(errs, errors.New("anomaly: enabled with no programs and listeners off: nothing to learn"))
	}
	return errors.Join(errs...)
}
