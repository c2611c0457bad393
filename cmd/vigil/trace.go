package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/vigilsec/vigil/internal/trace"
)

var traceShort = map[trace.Kind]string{
	trace.Exec:    "programs started: ppid, uid, executable, arguments",
	trace.Open:    "file opens, for reading and writing: result (fd or error), flags, path",
	trace.Connect: "outgoing connections: result, protocol, local and remote address",
	trace.Accept:  "accepted connections: result (new fd), protocol, local and remote address",
	trace.Bind:    "bind and listen: the local addresses servers take",
	trace.DNS:     "DNS queries sent (UDP datagrams to port 53): server, query type, name",
	trace.File:    "file changes: create, write-open, unlink, rmdir, rename, chmod, chown, link, symlink, truncate, mkdir",
	trace.Cred:    "credential changes (set*id, setgroups, capset): the call, result, ids old->new",
	trace.Signal:  "signals sent (kill, tkill, tgkill, rt_sigqueueinfo, rt_tgsigqueueinfo, pidfd_send_signal): target pid, signal, result",
}

const traceLong = `Stream one kind of activity live, one line per event: time, pid, comm, cgroup id,
then what matters for the kind. Strings from the traced processes are printed as is
when plain and quoted with Go escapes otherwise, so a hostile file name or argument
never breaks a line. With -o json, each event is an ECS JSON document, the same as
` + "`vigil run`" + ` writes (docs/events.md).

The trace loads only the sensors it needs, with maps of its own: a running
` + "`vigil run`" + ` is neither seen nor disturbed. Ctrl-C stops it and detaches everything;
the counts of events shown, received and lost go to stderr at exit.

Filters (repeat a flag or separate values by commas for "any of"; different
filters must all match):
  --pid, --comm, --cgroup   applied in the kernel, so tracing one process on a busy
                            host costs little. Not for exec: process records have no
                            kernel-side filter (execs are few), they are filtered here.
  --failed, --succeeded     in the kernel (exec shows successful execs only).
  --path                    open, file: when every path exists, writes are matched in
                            the kernel (the file sensor's watch list, by inode); reads
                            too when every path is a file. Reads below a directory,
                            and paths that do not exist yet, are matched here.
                            exec: the executable or script, matched here.
  --uid, --port             matched here.
Every filter is also applied in user space, so the output is exact.`

func traceCmd() *cobra.Command {
	var (
		o                  trace.Options
		pids, uids, ports  []uint
		output             string
		failed, succeeded  bool
		ringMiB            int
		cgroups, comms, ps []string
		containers         []string
	)
	cmd := &cobra.Command{
		Use:   "trace <kind> [filters]",
		Short: "Watch one kind of activity live: execs, opens, connections, DNS, file and credential changes, signals",
		Long:  traceLong,
		Args:  cobra.NoArgs,
	}
	f := cmd.PersistentFlags()
	f.UintSliceVar(&pids, "pid", nil, "only these processes (thread-group ids)")
	f.StringArrayVar(&comms, "comm", nil, "only processes with this name (comm, at most 15 bytes: longer names are cut)")
	f.StringArrayVar(&cgroups, "cgroup", nil, "only this cgroup v2, by id or directory, and the cgroups below it at start")
	f.StringArrayVar(&containers, "container", nil, "only this container, by id or unique id prefix (its cgroup, applied in the kernel)")
	f.UintSliceVar(&uids, "uid", nil, "only processes with this real uid")
	f.StringArrayVar(&ps, "path", nil, "open, file: only this file or what is below this directory; exec: executables there")
	f.UintSliceVar(&ports, "port", nil, "connect, accept, bind, dns: only this local or remote port")
	f.BoolVar(&failed, "failed", false, "only operations that failed")
	f.BoolVar(&succeeded, "succeeded", false, "only operations that succeeded")
	f.IntVarP(&o.Count, "count", "n", 0, "stop after this many events (0: no limit)")
	f.DurationVarP(&o.Duration, "duration", "d", 0, "stop after this long, e.g. 30s (0: no limit)")
	f.StringVarP(&output, "output", "o", "table", "table or json (ECS JSON lines, as vigil run writes)")
	f.IntVar(&ringMiB, "ring-buffer-mib", trace.DefaultRingBufferMiB, "ring buffer size in MiB, a power of two")

	for _, k := range trace.Kinds {
		sub := &cobra.Command{
			Use:   string(k) + " [filters]",
			Short: traceShort[k],
			Long:  traceShort[k] + ".\n\n" + traceLong,
			Args:  cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				o.Kind = k
				o.Failed, o.Success = failed, succeeded
				o.Comms, o.Cgroups, o.Paths = splitAll(comms), splitAll(cgroups), ps
				o.Containers = splitAll(containers)
				o.RingBufferMiB = ringMiB
				var err error
				if o.PIDs, err = uint32s("--pid", pids, math.MaxInt32); err != nil {
					return err
				}
				if o.UIDs, err = uint32s("--uid", uids, math.MaxUint32); err != nil {
					return err
				}
				p32, err := uint32s("--port", ports, math.MaxUint16)
				if err != nil {
					return err
				}
				o.Ports = nil
				for _, p := range p32 {
					o.Ports = append(o.Ports, uint16(p))
				}
				switch output {
				case "table", "":
					o.JSON = false
				case "json":
					o.JSON = true
				default:
					return fmt.Errorf("--output %q: use table or json", output)
				}
				return runTrace(o)
			},
		}
		cmd.AddCommand(sub)
	}
	return cmd
}

func runTrace(o trace.Options) error {
	// A closed stdout (`vigil trace open | head`) ends the trace with EPIPE
	// instead of killing it before it can detach and count.
	pipe := make(chan os.Signal, 1)
	signal.Notify(pipe, syscall.SIGPIPE)
	defer signal.Stop(pipe)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	o.Log = newLogger("warn")
	t, err := trace.New(o, os.Stdout)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "vigil trace: %s; Ctrl-C to stop\n", t.Describe())
	st, err := t.Run(ctx)
	for _, l := range strings.Split(st.Summary(), "\n") {
		fmt.Fprintln(os.Stderr, "vigil trace:", l)
	}
	if errors.Is(err, syscall.EPIPE) {
		return nil
	}
	return err
}

// splitAll splits comma-separated values (StringArray flags keep commas).
// Task names and cgroup directories with commas are rare; paths are not split.
func splitAll(vals []string) []string {
	var out []string
	for _, v := range vals {
		for _, s := range strings.Split(v, ",") {
			if s = strings.TrimSpace(s); s != "" {
				out = append(out, s)
			}
		}
	}
	return out
}

func uint32s(flag string, vals []uint, max uint64) ([]uint32, error) {
	var out []uint32
	for _, v := range vals {
		if uint64(v) > max {
			return nil, fmt.Errorf("%s %d: out of range (at most %d)", flag, v, max)
		}
		out = append(out, uint32(v))
	}
	return out, nil
}
