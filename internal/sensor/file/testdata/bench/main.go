// Command bench measures what the file sensor costs an open/close loop
// (bench/loop open N: read-opens of /etc/hostname), in rounds that alternate
// between configurations, and prints the median seconds of each and its
// ratio to nothing attached. Run it as root from the repository root:
//
//	go run ./internal/sensor/file/testdata/bench [-n 1000000] [-rounds 5]
//
// With -write, the loop opens a file in a fresh directory below /tmp with
// O_WRONLY instead (a write-open of an unwatched file, which walks the
// directories above it looking for a mark).
//
// Configurations:
//
//	none      no sensor loaded
//	disabled  sensor attached, file kind disabled (the floor: a tracepoint
//	          that looks up its kind and counts the drop)
//	default   reads and writes WATCHED with the default lists watched
//	reads-all reads ALL: every open is reported, and the ring drained
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/vigilsec/vigil/internal/event"
	"github.com/vigilsec/vigil/internal/sensor"
	"github.com/vigilsec/vigil/internal/sensor/file"
)

func main() {
	if len(os.Args) == 4 && os.Args[1] == "writeloop" {
		writeLoop(os.Args[2], os.Args[3])
		return
	}
	n := flag.Int("n", 1000000, "opens per run")
	rounds := flag.Int("rounds", 5, "runs of each configuration")
	write := flag.Bool("write", false, "write-opens of a file below /tmp instead of read-opens of /etc/hostname")
	flag.BoolVar(&progStats, "progstats", false, "measure vigil_openat's own run time too (slows every BPF program a little)")
	flag.Parse()
	if *write {
		self, err := os.Executable()
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
		workload = func(n int) *exec.Cmd {
			return exec.Command(self, "writeloop", writeTarget, strconv.Itoa(n))
		}
	}
	if err := run(*n, *rounds); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

type config struct {
	name string
	kind *sensor.KindFilter // nil: no sensor at all
}

// workload is the command that runs the loop; by default bench/loop.
var (
	progStats   bool
	workload    func(n int) *exec.Cmd
	writeTarget string
)

func run(n, rounds int) error {
	dir, err := os.MkdirTemp("", "vigil-file-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	writeTarget = filepath.Join(dir, "target")
	if err := os.WriteFile(writeTarget, nil, 0o644); err != nil {
		return err
	}
	loop := filepath.Join(dir, "loop")
	build := exec.Command("go", "build", "-o", loop, "./bench/loop")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("build bench/loop (run from the repository root): %v\n%s", err, out)
	}

	configs := []config{
		{"none", nil},
		{"disabled", &sensor.KindFilter{}},
		{"default", &sensor.KindFilter{Enabled: true, FileReads: sensor.InterestWatched, FileWrites: sensor.InterestWatched}},
		{"reads-all", &sensor.KindFilter{Enabled: true, FileReads: sensor.InterestAll, FileWrites: sensor.InterestWatched}},
	}
	walls, cpus := map[string][]float64{}, map[string][]float64{}
	for r := 0; r < rounds; r++ {
		for _, c := range configs {
			wall, cpu, extra, err := measure(loop, n, c)
			if err != nil {
				return fmt.Errorf("%s: %w", c.name, err)
			}
			walls[c.name] = append(walls[c.name], wall)
			cpus[c.name] = append(cpus[c.name], cpu)
			fmt.Fprintf(os.Stderr, "round %d %-9s wall %.3fs cpu %.3fs %s\n", r+1, c.name, wall, cpu, extra)
		}
	}
	bw, bc := median(walls["none"]), median(cpus["none"])
	fmt.Printf("%-9s %8s %7s %8s %7s %12s %14s\n", "config", "wall s", "ratio", "cpu s", "ratio", "cpu us/open", "vigil_openat ns")
	for _, c := range configs {
		w, cp := median(walls[c.name]), median(cpus[c.name])
		ns := "-"
		if len(progNs[c.name]) > 0 {
			ns = fmt.Sprintf("%.0f", median(progNs[c.name]))
		}
		fmt.Printf("%-9s %8.3f %6.2fx %8.3f %6.2fx %12.3f %14s\n", c.name, w, w/bw, cp, cp/bc, cp/float64(n)*1e6, ns)
	}
	return nil
}

func measure(loop string, n int, c config) (wall, cpu float64, extra string, err error) {
	if c.kind == nil {
		wall, cpu, err = runLoop(loop, n)
		return wall, cpu, "", err
	}
	sh, err := sensor.NewShared(16 << 20)
	if err != nil {
		return 0, 0, "", err
	}
	defer sh.Close()
	s, err := file.New(file.Config{}, sh)
	if err != nil {
		return 0, 0, "", err
	}
	defer s.Close()
	if _, err := s.WatchDefaults(); err != nil {
		return 0, 0, "", err
	}
	if err := sh.SetKind(sensor.TypeFile, *c.kind); err != nil {
		return 0, 0, "", err
	}
	rd, err := sensor.NewReader(sh, 20*time.Millisecond)
	if err != nil {
		return 0, 0, "", err
	}
	defer rd.Close()
	if progStats {
		// The programs' own time, from the kernel's BPF run-time
		// statistics (on while this is open; they cost some 20 ns a run).
		statsOn, err := ebpf.EnableStats(uint32(unix.BPF_STATS_RUN_TIME))
		if err != nil {
			return 0, 0, "", err
		}
		defer statsOn.Close()
	}
	ctx, cancel := context.WithCancel(context.Background())
	var records atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		clk := sensor.NewClock()
		var e event.Event
		_ = rd.Run(ctx, func(rec []byte) {
			if err := file.Decode(rec, clk, &e); err == nil {
				records.Add(1)
			}
		})
	}()
	before, _ := sh.KernelCounts()
	wall, cpu, err = runLoop(loop, n)
	after, _ := sh.KernelCounts()
	st, serr := s.ProgramStats()
	cancel()
	<-done
	b, a := before[sensor.TypeFile], after[sensor.TypeFile]
	extra = fmt.Sprintf("(sent %d lost %d filtered %d, decoded %d)", a.Sent-b.Sent, a.Lost-b.Lost, a.Filtered-b.Filtered, records.Load())
	if o := st["vigil_openat"]; serr == nil && o != nil && o.RunCount > 0 {
		extra += fmt.Sprintf(" vigil_openat %d runs, %.0f ns/run", o.RunCount, float64(o.Runtime.Nanoseconds())/float64(o.RunCount))
		progNs[c.name] = append(progNs[c.name], float64(o.Runtime.Nanoseconds())/float64(o.RunCount))
	}
	return wall, cpu, extra, err
}

// progNs collects vigil_openat's mean run time per configuration.
var progNs = map[string][]float64{}

// runLoop runs the workload and returns the seconds it printed (wall time)
// and the CPU time the loop process used, user and system: BPF programs on
// its syscalls run in its context, and CPU time is less disturbed than wall
// time by whatever else the machine is doing.
func runLoop(loop string, n int) (wall, cpu float64, err error) {
	cmd := exec.Command(loop, "open", strconv.Itoa(n))
	if workload != nil {
		cmd = workload(n)
	}
	out, err := cmd.Output()
	if err != nil {
		return 0, 0, err
	}
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	cpu = time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
	wall, err = strconv.ParseFloat(strings.TrimSpace(string(out)), 64)
	return wall, cpu, err
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// writeLoop opens path for writing n times, as bench/loop does for reads.
func writeLoop(path, count string) {
	n, _ := strconv.Atoi(count)
	p, err := syscall.BytePtrFromString(path)
	if err != nil {
		os.Exit(1)
	}
	start := time.Now()
	for i := 0; i < n; i++ {
		fd, _, errno := syscall.Syscall6(syscall.SYS_OPENAT, atFDCWD(), uintptr(unsafe.Pointer(p)), syscall.O_WRONLY, 0, 0, 0)
		if errno != 0 {
			fmt.Fprintln(os.Stderr, "writeloop:", errno)
			os.Exit(1)
		}
		syscall.Syscall(syscall.SYS_CLOSE, fd, 0, 0)
	}
	fmt.Printf("%.6f\n", time.Since(start).Seconds())
}

func atFDCWD() uintptr {
	fd := -100
	return uintptr(fd)
}
