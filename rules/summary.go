package rules

import (
	"strconv"
	"strings"

	"github.com/procwatch/procwatch/event"
)

// summarize writes the one-line human account of an incident. It may hold
// process strings as they are; front ends escape it for display.
func summarize(ev *event.Event, f *facts) string {
	var b strings.Builder
	exe := f.path
	if exe == "" {
		exe = "(unknown executable)"
	}
	switch ev.Type {
	case event.TypeExec:
		if f.outcome == event.Failure {
			writeUser(&b, f)
			b.WriteString(" failed to execute ")
			b.WriteString(exe)
			writeErrno(&b, ev.Errno)
		} else {
			b.WriteString(exe)
			b.WriteString(" executed by ")
			writeUser(&b, f)
		}
	case event.TypeEscalation:
		writeUser(&b, f)
		if f.outcome == event.Failure {
			b.WriteString(" was refused root")
		} else {
			b.WriteString(" gained root")
		}
		switch ev.Method {
		case "", event.MethodUnexplained:
			b.WriteString(" without a known cause")
		default:
			b.WriteString(" via ")
			b.WriteString(ev.Method)
		}
		if f.outcome == event.Failure {
			writeErrno(&b, ev.Errno)
		}
		if ev.Method == event.MethodSuidExec {
			b.WriteString(" of ")
		} else {
			b.WriteString(" in ")
		}
		b.WriteString(exe)
	case event.TypeExit:
		b.WriteString(exe)
		switch {
		case ev.Signal != "":
			b.WriteString(" exited on ")
			b.WriteString(ev.Signal)
			if ev.CoreDumped {
				b.WriteString(" (core dumped)")
			}
		case ev.ExitCode != nil && *ev.ExitCode != 0:
			b.WriteString(" exited with code ")
			b.WriteString(strconv.Itoa(*ev.ExitCode))
		default:
			b.WriteString(" exited normally")
		}
	default:
		b.WriteString(string(ev.Type))
		b.WriteString(" event from ")
		b.WriteString(exe)
	}
	return b.String()
}

// writeUser writes "uid 1000 (alice)", or "uid 1000" when the uid has no
// name on this host.
func writeUser(b *strings.Builder, f *facts) {
	b.WriteString("uid ")
	b.WriteString(strconv.FormatUint(uint64(f.uid), 10))
	if name := f.userName(); name != "" {
		b.WriteString(" (")
		b.WriteString(name)
		b.WriteByte(')')
	}
}

func writeErrno(b *strings.Builder, errno string) {
	if errno == "" {
		return
	}
	b.WriteString(" (")
	b.WriteString(errno)
	b.WriteByte(')')
}
