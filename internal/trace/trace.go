// Package trace is `vigil trace`: a live look at one kind of activity on the
// host (execs, opens, connections, DNS queries, file changes, credential
// changes, signals), one line per event, in the spirit of execsnoop, opensnoop
// and tcpconnect, and on kernels where those cannot run (no kprobes).
//
// A Tracer loads only the sensors its kind needs, against maps of its own
// (sensor.Shared), so it neither sees nor disturbs a running `vigil run`.
// Filters go into the kernel where the sensors can apply them, so that tracing
// one process on a busy host costs that process's events and a map lookup per
// other event (Describe says which filters run where):
//
//   - --pid, --cgroup, --comm: vigil_pids, vigil_cgroups and vigil_comms with
//     an included scope; --failed/--succeeded: the kind's outcome. All but
//     exec: the process sensor has no kernel-side filter (exec volume is low),
//     so exec records are all sent and filtered here.
//   - --path: for open and file, the prefix is watched in the file sensor's
//     interest set and writes are sent only below it. Reads under a watch
//     match only a file or the files directly in a watched directory, so for
//     a directory prefix every read-open is sent and the prefix is matched
//     here. A prefix that does not exist yet cannot be watched by inode:
//     then every operation is sent and matched here.
//   - --uid and --port: here only.
//
// Every filter is applied again here, which costs little and keeps the output
// exact whatever the kernel side could do.
package trace

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vigilsec/vigil/internal/event"
	"github.com/vigilsec/vigil/internal/proc"
	"github.com/vigilsec/vigil/internal/sensor"
	"github.com/vigilsec/vigil/internal/sensor/cred"
	"github.com/vigilsec/vigil/internal/sensor/file"
	"github.com/vigilsec/vigil/internal/sensor/kernel"
	netsensor "github.com/vigilsec/vigil/internal/sensor/net"
	"github.com/vigilsec/vigil/internal/sensor/process"
	"github.com/vigilsec/vigil/internal/sink/jsonl"
)

// Kind is what a trace shows: one subcommand of `vigil trace`.
type Kind string

const (
	Exec    Kind = "exec"    // programs started
	Open    Kind = "open"    // opens, reads and writes
	Connect Kind = "connect" // outgoing connections
	Accept  Kind = "accept"  // incoming connections
	Bind    Kind = "bind"    // bind and listen: servers taking a local address
	DNS     Kind = "dns"     // DNS queries sent
	File    Kind = "file"    // file changes: create, write-open, unlink, rename, chmod, ...
	Cred    Kind = "cred"    // set*id, setgroups, capset
	Signal  Kind = "signal"  // kill, tkill, tgkill, sigqueue, pidfd_send_signal
)

// Kinds lists every kind, in the order `vigil trace --help` shows them.
var Kinds = []Kind{Exec, Open, Connect, Accept, Bind, DNS, File, Cred, Signal}

// Defaults for the zero fields of Options.
const (
	DefaultBTF           = "/sys/kernel/btf/vmlinux"
	DefaultProcRoot      = "/proc"
	DefaultRingBufferMiB = 16
	DefaultPoll          = 20 * time.Millisecond
)

// Options say what to trace and how to show it. Within one filter, any value
// matches; every filter given must match.
type Options struct {
	Kind Kind

	PIDs    []uint32 // the process that acted (thread-group id)
	Comms   []string // its task name; cut to 15 bytes as the kernel keeps it
	Cgroups []string // cgroup v2 ids or directories; the cgroups below them at start too
	// Containers are container ids or unique prefixes, found by the names
	// runtimes give their cgroups (docker-<id>.scope, <id>, ...); each stands
	// for its cgroup directory, as in Cgroups.
	Containers []string
	UIDs       []uint32 // its real uid
	Paths      []string // open, file: a path or the one below it; exec: of the executable or script
	Ports      []uint16 // connect, accept, bind, dns: the local or the remote port
	Failed     bool     // only failed operations
	Success    bool     // only successful operations

	Count    int           // stop after this many events shown; 0: no limit
	Duration time.Duration // stop after this long; 0: no limit
	JSON     bool          // ECS JSON lines, as `vigil run` writes them, instead of the table

	BTF           string        // DefaultBTF when empty
	ProcRoot      string        // DefaultProcRoot when empty
	CgroupRoot    string        // the cgroup v2 mount; found when empty
	RingBufferMiB int           // DefaultRingBufferMiB when 0
	Poll          time.Duration // DefaultPoll when 0
	Log           *slog.Logger  // warnings; none when nil
}

// spec is what one kind needs: its sensor, the record type it shows, and
// which of that sensor's operations belong to it.
type spec struct {
	sensor string
	rec    uint16
	ops    func(e *event.Event) bool
}

var specs = map[Kind]spec{
	Exec:    {"process", sensor.TypeExec, func(e *event.Event) bool { return e.Kind == event.KindExec }},
	Open:    {"file", sensor.TypeFile, fileOps(event.FileOpen, event.FileCreate)},
	File:    {"file", sensor.TypeFile, func(e *event.Event) bool { return e.File != nil }},
	Connect: {"net", sensor.TypeNet, netOps(event.NetConnect)},
	Accept:  {"net", sensor.TypeNet, netOps(event.NetAccept)},
	Bind:    {"net", sensor.TypeNet, netOps(event.NetBind, event.NetListen)},
	DNS:     {"net", sensor.TypeNet, netOps(event.NetDNS)},
	Cred:    {"cred", sensor.TypeCred, func(e *event.Event) bool { return e.Cred != nil }},
	Signal: {"kernel", sensor.TypeKernel, func(e *event.Event) bool {
		return e.Kernel != nil && (e.Kernel.Op == event.KernelSignal || e.Kernel.Op == event.KernelSignalAgent)
	}},
}

func fileOps(ops ...event.FileOp) func(*event.Event) bool {
	return func(e *event.Event) bool { return e.File != nil && slices.Contains(ops, e.File.Op) }
}

func netOps(ops ...event.NetOp) func(*event.Event) bool {
	return func(e *event.Event) bool { return e.Net != nil && slices.Contains(ops, e.Net.Op) }
}

func (k Kind) isNet() bool { return k == Connect || k == Accept || k == Bind || k == DNS }

// Validate checks the options without touching the kernel.
func (o *Options) Validate() error {
	if _, ok := specs[o.Kind]; !ok {
		return fmt.Errorf("no trace kind %q: use one of %v", o.Kind, Kinds)
	}
	switch {
	case o.Failed && o.Success:
		return errors.New("--failed and --succeeded exclude each other")
	case o.Kind == Exec && o.Failed:
		return errors.New("exec shows programs that started: failed execs are not reported (trace open --failed shows failed opens)")
	case len(o.Ports) > 0 && !o.Kind.isNet():
		return fmt.Errorf("--port applies to connect, accept, bind and dns, not %s", o.Kind)
	case len(o.Paths) > 0 && o.Kind != Open && o.Kind != File && o.Kind != Exec:
		return fmt.Errorf("--path applies to open, file and exec, not %s", o.Kind)
	case o.Count < 0:
		return errors.New("--count must not be negative")
	case o.Duration < 0:
		return errors.New("--duration must not be negative")
	case o.RingBufferMiB < 0 || o.RingBufferMiB&(o.RingBufferMiB-1) != 0:
		return fmt.Errorf("ring buffer of %d MiB: must be a power of two", o.RingBufferMiB)
	}
	for _, c := range o.Comms {
		if c == "" {
			return errors.New("--comm: empty name")
		}
	}
	for _, p := range o.Paths {
		if p == "" {
			return errors.New("--path: empty path")
		}
	}
	return nil
}

func (o *Options) defaults() {
	if o.BTF == "" {
		o.BTF = DefaultBTF
	}
	if o.ProcRoot == "" {
		o.ProcRoot = DefaultProcRoot
	}
	if o.CgroupRoot == "" {
		o.CgroupRoot = cgroupV2Root()
	}
	if o.RingBufferMiB == 0 {
		o.RingBufferMiB = DefaultRingBufferMiB
	}
	if o.Poll == 0 {
		o.Poll = DefaultPoll
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
}

type decoder func(rec []byte, clk sensor.Clock, e *event.Event) error

// Tracer is a loaded trace: its sensors are attached and its filters set.
type Tracer struct {
	opts   Options
	spec   spec
	filter *userFilter
	kside  []string // filters applied in the kernel, for Describe
	uside  []string // filters applied here

	shared   *sensor.Shared
	sensors  []io.Closer
	types    []uint16 // record types the loaded sensors send
	decoders [sensor.TypeMax]decoder
	reader   *sensor.Reader
	clock    sensor.Clock

	cache *proc.Cache // JSON only: fills in parents and programs as `vigil run` does
	host  event.Host

	out      *bufio.Writer
	json     *jsonl.Writer
	line     []byte
	writeErr error

	received [sensor.TypeMax]atomic.Uint64
	shown    atomic.Uint64
	badRecs  atomic.Uint64
	stop     context.CancelFunc
	done     atomic.Bool // the count was reached

	closeOnce sync.Once
}

// New checks the machine, sets the filters and loads and attaches the
// sensors. Events are written to out from Run on; the table's header is
// written now.
func New(opts Options, out io.Writer) (*Tracer, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	opts.defaults()
	f, err := newUserFilter(&opts)
	if err != nil {
		return nil, err
	}
	if err := sensor.Preflight(opts.BTF); err != nil {
		return nil, err
	}
	t := &Tracer{
		opts:   opts,
		spec:   specs[opts.Kind],
		filter: f,
		clock:  sensor.NewClock(),
		out:    bufio.NewWriterSize(out, 64<<10),
	}
	if t.shared, err = sensor.NewShared(opts.RingBufferMiB << 20); err != nil {
		return nil, err
	}
	if err := t.attach(); err != nil {
		t.Close()
		return nil, err
	}
	if opts.JSON {
		t.host = hostInfo(opts.ProcRoot)
		t.json = jsonl.New(t.out, &t.host)
		t.cache = proc.New(proc.Config{BootID: t.host.BootID, BootTime: t.clock.Boot(), ProcRoot: opts.ProcRoot,
			CgroupRoot: opts.CgroupRoot})
	} else {
		t.out.WriteString(header(opts.Kind))
		if err := t.out.Flush(); err != nil {
			t.Close()
			return nil, fmt.Errorf("write: %w", err)
		}
	}
	return t, nil
}

// attach sets the kernel filters, then loads the sensors: the kind's, and
// for JSON the process sensor too, whose exec, fork and exit records keep the
// process cache right (a cache filled only from /proc would name a program
// that has since exec'd another).
func (t *Tracer) attach() error {
	if err := t.kernelFilters(); err != nil {
		return fmt.Errorf("set kernel filters: %w", err)
	}
	names := []string{t.spec.sensor}
	if t.opts.JSON && t.spec.sensor != "process" {
		names = append(names, "process")
	}
	for _, name := range names {
		if err := t.load(name); err != nil {
			return err
		}
	}
	// Enabled last: until now the kind sent nothing.
	if t.spec.sensor != "process" {
		kf, err := t.shared.Kind(t.spec.rec)
		if err != nil {
			return err
		}
		kf.Enabled = true
		if err := t.shared.SetKind(t.spec.rec, kf); err != nil {
			return err
		}
	}
	var err error
	t.reader, err = sensor.NewReader(t.shared, t.opts.Poll)
	return err
}

func (t *Tracer) load(name string) error {
	sh := t.shared
	switch name {
	case "process":
		s, err := process.New(process.Config{}, sh)
		if err != nil {
			return err
		}
		t.sensors = append(t.sensors, s)
		t.decoders[sensor.TypeExec] = process.DecodeExec
		t.decoders[sensor.TypeFork] = process.DecodeFork
		t.decoders[sensor.TypeExit] = process.DecodeExit
		t.types = append(t.types, sensor.TypeExec, sensor.TypeFork, sensor.TypeExit)
		return nil
	case "file":
		s, err := file.New(file.Config{}, sh)
		if err != nil {
			return err
		}
		t.sensors = append(t.sensors, s)
		t.decoders[sensor.TypeFile] = file.Decode
		t.types = append(t.types, sensor.TypeFile)
		return t.watchPaths(s)
	case "net":
		s, err := netsensor.New(netsensor.Config{}, sh)
		if err != nil {
			return err
		}
		t.sensors = append(t.sensors, s)
		t.decoders[sensor.TypeNet] = netsensor.Decode
		t.types = append(t.types, sensor.TypeNet)
		return nil
	case "cred":
		s, err := cred.New(cred.Config{}, sh)
		if err != nil {
			return err
		}
		t.sensors = append(t.sensors, s)
		t.decoders[sensor.TypeCred] = cred.Decode
		t.types = append(t.types, sensor.TypeCred)
		return nil
	case "kernel":
		s, err := kernel.New(kernel.Config{SignalsAll: true}, sh)
		if err != nil {
			return err
		}
		t.sensors = append(t.sensors, s)
		t.decoders[sensor.TypeKernel] = kernel.Decode
		t.types = append(t.types, sensor.TypeKernel)
		return nil
	}
	return fmt.Errorf("no sensor %q", name)
}

// kernelFilters fills the filter maps and the kind's filter, still disabled.
func (t *Tracer) kernelFilters() error {
	o := &t.opts
	f := t.filter
	if t.spec.sensor == "process" {
		// No kernel-side filter: everything is matched here.
		t.uside = f.describe(true)
		return nil
	}
	kf := sensor.KindFilter{}
	switch {
	case o.Failed:
		kf.Outcome = sensor.OutcomeFailure
		t.kside = append(t.kside, "--failed")
	case o.Success:
		kf.Outcome = sensor.OutcomeSuccess
		t.kside = append(t.kside, "--succeeded")
	}
	if len(f.pids) > 0 {
		kf.PIDScope = sensor.ScopeIncluded
		for pid := range f.pids {
			if err := t.shared.MarkPID(pid, sensor.Include); err != nil {
				return err
			}
		}
		t.kside = append(t.kside, "--pid")
	}
	if len(f.cgroups) > 0 {
		kf.CgroupScope = sensor.ScopeIncluded
		for id := range f.cgroups {
			if err := t.shared.MarkCgroup(id, sensor.Include); err != nil {
				return err
			}
		}
		t.kside = append(t.kside, fmt.Sprintf("--cgroup (%d cgroups)", len(f.cgroups)))
	}
	if len(f.comms) > 0 {
		kf.CommScope = sensor.ScopeIncluded
		for c := range f.comms {
			if err := t.shared.MarkComm(c, sensor.Include); err != nil {
				return err
			}
		}
		t.kside = append(t.kside, "--comm")
	}
	if t.spec.sensor == "file" {
		kf.FileReads, kf.FileWrites = t.fileInterest()
	}
	t.uside = f.describe(false)
	return t.shared.SetKind(t.spec.rec, kf)
}

// fileInterest decides what the file sensor sends for the kind and --path
// (see the package comment).
func (t *Tracer) fileInterest() (reads, writes sensor.Interest) {
	reads, writes = sensor.InterestAll, sensor.InterestAll
	if t.opts.Kind == File {
		reads = sensor.InterestNone // the file kind is about changes
	}
	if len(t.opts.Paths) == 0 {
		return reads, writes
	}
	allExist, allFiles := true, true
	for _, p := range t.opts.Paths {
		st, err := os.Stat(p)
		if err != nil {
			allExist, allFiles = false, false
			break
		}
		if st.IsDir() {
			allFiles = false
		}
	}
	if allExist {
		writes = sensor.InterestWatched
		t.kside = append(t.kside, "--path (writes)")
		if reads == sensor.InterestAll && allFiles {
			reads = sensor.InterestWatched
			t.kside[len(t.kside)-1] = "--path"
		}
	}
	return reads, writes
}

// watchPaths marks the --path prefixes in the file sensor's interest set,
// when fileInterest chose to have the kernel match them.
func (t *Tracer) watchPaths(s *file.Sensor) error {
	kf, err := t.shared.Kind(sensor.TypeFile)
	if err != nil {
		return err
	}
	if kf.FileWrites != sensor.InterestWatched {
		return nil
	}
	if _, err := s.Watch(t.opts.Paths, sensor.WatchRead|sensor.WatchWrite); err != nil {
		return fmt.Errorf("watch --path: %w", err)
	}
	return nil
}

// Describe says what is traced and which filters run in the kernel and which
// in user space, in one line for stderr.
func (t *Tracer) Describe() string {
	var b strings.Builder
	fmt.Fprintf(&b, "tracing %s", t.opts.Kind)
	if len(t.kside) > 0 {
		fmt.Fprintf(&b, "; filtered in the kernel: %s", strings.Join(t.kside, ", "))
	}
	if len(t.uside) > 0 {
		fmt.Fprintf(&b, "; in user space: %s", strings.Join(t.uside, ", "))
	}
	if t.opts.Kind == Exec {
		b.WriteString(" (exec records are not filtered in the kernel)")
	}
	return b.String()
}

// Run writes matching events until ctx is done, Count events were shown or
// Duration passed, then detaches everything. It returns the counters.
func (t *Tracer) Run(ctx context.Context) (Stats, error) {
	defer t.Close()
	if t.opts.Duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, t.opts.Duration)
		defer cancel()
	}
	ctx, t.stop = context.WithCancel(ctx)
	defer t.stop()

	runDone := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		// The reader drains the ring before it returns; under a load that
		// never lets the ring run empty, stop reading after a second.
		select {
		case <-runDone:
		case <-ctx.Done():
			select {
			case <-runDone:
			case <-time.After(time.Second):
				t.reader.Close()
			}
		}
	})
	if t.cache != nil {
		if _, err := t.cache.ScanProcfs(); err != nil {
			t.opts.Log.Warn("procfs scan incomplete: processes are read from /proc when first seen", "err", err)
		}
		wg.Go(func() {
			tick := time.NewTicker(5 * time.Second)
			defer tick.Stop()
			for {
				select {
				case <-runDone:
					return
				case <-tick.C:
					t.cache.Sweep()
				}
			}
		})
	}
	err := t.reader.Run(ctx, t.handle)
	close(runDone)
	wg.Wait()
	if ferr := t.flush(); err == nil {
		err = ferr
	}
	if err == nil {
		err = t.writeErr
	}
	st := t.Stats()
	return st, err
}

// handle runs on the reader's goroutine for every record.
func (t *Tracer) handle(rec []byte) {
	if t.done.Load() {
		return
	}
	h, err := sensor.ParseHeader(rec)
	if err != nil || h.Type == 0 || h.Type >= sensor.TypeMax || t.decoders[h.Type] == nil {
		t.badRecs.Add(1)
		return
	}
	var e event.Event
	if err := t.decoders[h.Type](rec, t.clock, &e); err != nil {
		t.badRecs.Add(1)
		return
	}
	t.received[h.Type].Add(1)
	if t.cache != nil {
		switch h.Type {
		case sensor.TypeExec:
			t.cache.Exec(&e.Process)
		case sensor.TypeFork:
			t.cache.Fork(&e.Process)
		case sensor.TypeExit:
			t.cache.Exit(&e.Process, *e.Exit)
		default:
			t.cache.Complete(&e.Process)
		}
	}
	if h.Type == t.spec.rec && t.spec.ops(&e) && t.filter.match(&e) {
		t.show(&e)
	}
	if t.reader.Pending() == 0 {
		// Nothing more waiting: out with what is buffered, so that a line
		// is never held back while the host is quiet.
		t.flush()
	}
}

func (t *Tracer) show(e *event.Event) {
	if t.json != nil {
		t.cache.Enrich(e, 16)
		if err := t.json.Write(e); err != nil {
			t.fail(err)
			return
		}
	} else {
		t.line = formatLine(t.line[:0], t.opts.Kind, e)
		if _, err := t.out.Write(t.line); err != nil {
			t.fail(err)
			return
		}
	}
	if n := t.shown.Add(1); t.opts.Count > 0 && n >= uint64(t.opts.Count) {
		t.done.Store(true)
		t.flush()
		t.stop()
		t.reader.Close() // no more reading: the count is what was asked for
	}
}

func (t *Tracer) flush() error {
	var err error
	if t.json != nil {
		err = t.json.Flush()
	} else {
		err = t.out.Flush()
	}
	if err != nil {
		t.fail(err)
	}
	return err
}

// fail stops the trace at the first write error (a closed pipe, a full disk).
func (t *Tracer) fail(err error) {
	if t.writeErr == nil {
		t.writeErr = fmt.Errorf("write: %w", err)
	}
	t.done.Store(true)
	t.stop()
	t.reader.Close()
}

// Close detaches the sensors and frees the maps. Run calls it; it is safe to
// call more than once.
func (t *Tracer) Close() error {
	var errs []error
	t.closeOnce.Do(func() {
		if t.reader != nil {
			errs = append(errs, t.reader.Close())
		}
		// Detaching waits for RCU grace periods: in parallel.
		ch := make(chan error, len(t.sensors))
		for _, s := range t.sensors {
			go func() { ch <- s.Close() }()
		}
		for range t.sensors {
			errs = append(errs, <-ch)
		}
		t.sensors = nil
		errs = append(errs, t.shared.Close())
	})
	return errors.Join(errs...)
}

// Stats counts what a trace saw.
type Stats struct {
	Kind     Kind
	Records  string // the record type the kind is made of: "file", "net"...
	Received uint64 // records of that type read from the ring buffer
	Shown    uint64 // events written
	Bad      uint64 // records that could not be decoded
	// Kernel has the kernel's counters for each record type the loaded
	// sensors send, by name ("file", "exec"...).
	Kernel    map[string]sensor.Counts
	KernelErr error
}

// Stats reads the counters, the kernel's included; it works until Close.
func (t *Tracer) Stats() Stats {
	st := Stats{Kind: t.opts.Kind, Records: sensor.TypeName(t.spec.rec), Received: t.received[t.spec.rec].Load(), Shown: t.shown.Load(), Bad: t.badRecs.Load()}
	if t.shared == nil || t.shared.Stats == nil {
		return st
	}
	kc, err := t.shared.KernelCounts()
	if err != nil {
		st.KernelErr = err
		return st
	}
	st.Kernel = map[string]sensor.Counts{}
	for _, typ := range t.types {
		st.Kernel[sensor.TypeName(typ)] = kc[typ]
	}
	return st
}

// Summary is what `vigil trace` prints to stderr at exit.
func (s Stats) Summary() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d events shown; %d %s records received, %d of them left out by user-space filters",
		s.Shown, s.Received, s.Records, s.Received-min(s.Shown, s.Received))
	if s.Bad > 0 {
		fmt.Fprintf(&b, "; %d undecodable records", s.Bad)
	}
	if s.KernelErr != nil {
		fmt.Fprintf(&b, "\nkernel counters unavailable: %v", s.KernelErr)
	}
	names := make([]string, 0, len(s.Kernel))
	for n := range s.Kernel {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		c := s.Kernel[n]
		fmt.Fprintf(&b, "\nin the kernel, %s records: sent %d, lost (ring buffer full) %d, filtered %d", n, c.Sent, c.Lost, c.Filtered)
	}
	return b.String()
}

// hostInfo describes this machine for the JSON documents, as the agent does.
func hostInfo(procfs string) event.Host {
	h := event.Host{}
	h.Name, _ = os.Hostname()
	h.ID = readTrim("/etc/machine-id")
	h.BootID = readTrim(filepath.Join(procfs, "sys/kernel/random/boot_id"))
	var uts unix.Utsname
	if unix.Uname(&uts) == nil {
		h.Kernel = unix.ByteSliceToString(uts.Release[:])
		h.Arch = unix.ByteSliceToString(uts.Machine[:])
	}
	return h
}

func readTrim(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}
