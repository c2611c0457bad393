package config

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Ransomware configures the ransomware detector and its response
// (docs/files.md).
type Ransomware struct {
	// Enabled loads the ransomware sensor (it samples the first write to
	// every regular file opened for writing).
	Enabled bool `yaml:"enabled"`
	// Window is how far back a process's (or container's) files count.
	Window Duration `yaml:"window"`
	// MinFiles: files a process must encrypt within Window to be
	// detected; ContainerMinFiles: the same for a container's processes
	// together.
	MinFiles int `yaml:"min_files"`
	// ContainerMinFiles: files a container's processes together must
	// encrypt within Window.
	ContainerMinFiles int `yaml:"container_min_files"`
	// KernelKill lets the kernel kill a process the moment its score reaches
	// MinFiles, or it touches a decoy, before user space hears of it.
	KernelKill bool `yaml:"kernel_kill"`
	// Kill: on detection kill the process and its children and freeze its
	// container (response.dry_run and response.allow_programs apply).
	Kill bool `yaml:"kill"`
	// EntropyMin (bits per byte) from which a sample of no known format
	// counts as encrypted; SampleBytes of the first write are judged.
	EntropyMin float64 `yaml:"entropy_min"`
	// SampleBytes: how many bytes of a file's first write are judged.
	SampleBytes int `yaml:"sample_bytes"`
	// AllowPrograms are executables never judged (absolute paths).
	AllowPrograms []string `yaml:"allow_programs"`
	// Decoys are planted in these directories, with these names.
	Decoys Decoys `yaml:"decoys"`
	// OnlyCgroup restricts the sensor (and its kills) to one cgroup v2
	// directory under paths.cgroupfs: for trials and tests. "": all.
	OnlyCgroup string `yaml:"only_cgroup"`
}

// Decoys are files no one has a reason to touch: a write, rename or
// delete of one is a detection.
type Decoys struct {
	// Dirs get a decoy file each at start (removed at exit if the agent
	// made it).
	Dirs []string `yaml:"dirs"`
	// Names are the decoys' file names, chosen to sort first and last.
	Names []string `yaml:"names"`
}

// FIM configures file integrity monitoring (vigil fim, and live checks).
type FIM struct {
	// Paths are files and directories (recursively) in the baseline.
	Paths []string `yaml:"paths"`
	// Exclude are path patterns (path.Match, or a directory prefix ending
	// in "/") left out.
	Exclude []string `yaml:"exclude"`
	// Workers hash in parallel; each holds one buffer, so memory is bounded.
	Workers int `yaml:"workers"`
	// Live re-hashes watched paths the agent sees written, renamed,
	// deleted or chmodded, and alerts on a change from the baseline.
	Live bool `yaml:"live"`
	// Settle is how long a file must be quiet before it is re-hashed.
	Settle Duration `yaml:"settle"`
}

func defaultRansomware() Ransomware {
	return Ransomware{
		Enabled: true, Window: Duration(10 * time.Minute), MinFiles: 5, ContainerMinFiles: 5,
		KernelKill: true, Kill: true, EntropyMin: 7.0, SampleBytes: 512,
		Decoys: Decoys{Names: []string{"!0000-vigil-decoy.docx", "~zzzz-vigil-decoy.xlsx"}},
	}
}

func defaultFIM() FIM {
	return FIM{
		Paths:   []string{"/etc", "/bin", "/sbin", "/usr/bin", "/usr/sbin", "/usr/local/bin", "/usr/local/sbin", "/boot"},
		Exclude: []string{"/etc/mtab", "/etc/ld.so.cache", "/etc/adjtime"},
		Workers: 2, Live: true, Settle: Duration(time.Second),
	}
}

func (r Ransomware) validate() []error {
	var errs []error
	if r.MinFiles < 1 || r.ContainerMinFiles < 1 {
		errs = append(errs, errors.New("ransomware.min_files, container_min_files: must be at least 1"))
	}
	if r.Window <= 0 {
		errs = append(errs, errors.New("ransomware.window: must be positive"))
	}
	if r.EntropyMin < 1 || r.EntropyMin > 8 {
		errs = append(errs, fmt.Errorf("ransomware.entropy_min: %g is not in 1..8 bits per byte", r.EntropyMin))
	}
	if r.SampleBytes < 256 || r.SampleBytes > 512 {
		errs = append(errs, fmt.Errorf("ransomware.sample_bytes: %d is not in 256..512", r.SampleBytes))
	}
	for _, l := range []struct {
		key   string
		paths []string
	}{{"allow_programs", r.AllowPrograms}, {"decoys.dirs", r.Decoys.Dirs}} {
		for _, p := range l.paths {
			if !strings.HasPrefix(p, "/") {
				errs = append(errs, fmt.Errorf("ransomware.%s: %q is not an absolute path", l.key, p))
			}
		}
	}
	for _, n := range r.Decoys.Names {
		if n == "" || strings.Contains(n, "/") {
			errs = append(errs, fmt.Errorf("ransomware.decoys.names: %q is not a file name", n))
		}
	}
	if len(r.Decoys.Dirs) > 0 && len(r.Decoys.Names) == 0 {
		errs = append(errs, errors.New("ransomware.decoys: dirs without names"))
	}
	return errs
}

func (f FIM) validate() []error {
	var errs []error
	for _, p := range f.Paths {
		if !strings.HasPrefix(p, "/") {
			errs = append(errs, fmt.Errorf("fim.paths: %q is not an absolute path", p))
		}
	}
	if f.Workers < 1 || f.Workers > 64 {
		errs = append(errs, fmt.Errorf("fim.workers: %d is not in 1..64", f.Workers))
	}
	if f.Settle < 0 {
		errs = append(errs, errors.New("fim.settle: must not be negative"))
	}
	return errs
}
