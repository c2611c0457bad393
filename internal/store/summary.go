package store

import (
	"fmt"
	"strings"

	"github.com/vigilsec/vigil/internal/event"
)

// Summary is one line that says what an event did, for tables: the
// operation and its object. It is raw: whoever prints it escapes it.
func Summary(e *event.Event) string {
	switch e.Kind {
	case event.KindExec:
		return "exec " + strings.Join(e.Process.Args, " ")
	case event.KindFork:
		return "fork"
	case event.KindExit:
		if e.Exit != nil {
			return fmt.Sprintf("exit %d", e.Exit.Code)
		}
		return "exit"
	case event.KindFile:
		if f := e.File; f != nil {
			s := string(f.Op) + " " + f.Path
			if f.TargetPath != "" {
				s += " -> " + f.TargetPath
			}
			return s + outcome(e.Return)
		}
	case event.KindCred:
		if c := e.Cred; c != nil {
			return fmt.Sprintf("%s uid %d->%d euid %d->%d%s", c.Op, c.Old.UID, c.New.UID, c.Old.EUID, c.New.EUID, outcome(e.Return))
		}
	case event.KindNet:
		if n := e.Net; n != nil {
			switch {
			case n.DNS != nil:
				return fmt.Sprintf("dns %s %s", n.DNS.Type, n.DNS.Name)
			case n.Op == event.NetBind || n.Op == event.NetListen:
				return fmt.Sprintf("%s %s %s%s", n.Op, n.Protocol, n.Source, outcome(e.Return))
			case n.Op == event.NetAccept:
				return fmt.Sprintf("accept %s from %s%s", n.Protocol, n.Destination, outcome(e.Return))
			}
			return fmt.Sprintf("%s %s %s%s", n.Op, n.Protocol, n.Destination, outcome(e.Return))
		}
	case event.KindKernel:
		if k := e.Kernel; k != nil {
			s := string(k.Op)
			for _, v := range []string{k.ArgName, k.Name, k.Path, k.Source, k.Target} {
				if v != "" {
					s += " " + v
				}
			}
			if k.TargetPID != 0 {
				s += fmt.Sprintf(" pid %d", k.TargetPID)
			}
			return s + outcome(e.Return)
		}
	case event.KindAlert:
		if e.Alert != nil {
			return e.Alert.Message
		}
	}
	return e.Kind.String()
}

func outcome(ret int64) string {
	if ret < 0 {
		return " (" + event.ErrnoName(-ret) + ")"
	}
	return ""
}
