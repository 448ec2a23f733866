package rules

import (
	"strconv"
	"strings"
	"time"

	"github.com/procwatch/procwatch/event"
)

// maxSummaryArgs bounds the command line a summary quotes; the full argv
// is in the incident's process.
const maxSummaryArgs = 160

// summarize writes the one-line human account of an incident. It may hold
// process strings as they are; front ends escape it for display. It states
// only what the event shows: running a set-uid binary gives its process
// euid 0, which is not the same as the user getting a root shell (sudo may
// refuse), so that is what it says, and the process's end is added later
// (fateSuffix).
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
			if f.script != "" {
				b.WriteString(" ran script ")
				b.WriteString(f.script)
			}
			b.WriteString(" executed by ")
			writeUser(&b, f)
		}
	case event.TypeEscalation:
		writeEscalation(&b, ev, f, exe)
	case event.TypeExit:
		b.WriteString(exe)
		writeEnd(&b, ev.ExitCode, ev.Signal, ev.CoreDumped)
	default:
		b.WriteString(string(ev.Type))
		b.WriteString(" event from ")
		b.WriteString(exe)
	}
	writeArgs(&b, ev.Args)
	return b.String()
}

// writeEscalation says who got which root ids, how, and in what.
func writeEscalation(b *strings.Builder, ev *event.Event, f *facts, exe string) {
	writeUser(b, f)
	if f.outcome == event.Failure {
		b.WriteString(" was refused root via ")
		b.WriteString(orUnknown(ev.Method))
		writeErrno(b, ev.Errno)
		b.WriteString(" in ")
		b.WriteString(exe)
		return
	}
	if ev.Method == event.MethodSuidExec {
		// The path first: it is what an analyst looks for, and a narrow
		// column cuts the end of the line.
		b.WriteString(" ran set-uid ")
		b.WriteString(exe)
		b.WriteString(", gaining ")
		b.WriteString(rootIDs(ev))
		return
	}
	b.WriteString(" gained ")
	b.WriteString(rootIDs(ev))
	switch ev.Method {
	case "", event.MethodUnexplained:
		b.WriteString(" without a known cause in ")
	default:
		b.WriteString(" via ")
		b.WriteString(ev.Method)
		b.WriteString(" in ")
	}
	b.WriteString(exe)
}

// rootIDs names the root ids the process holds after an escalation.
func rootIDs(ev *event.Event) string {
	uid := ev.NewUID != nil && *ev.NewUID == 0
	euid := ev.NewEUID != nil && *ev.NewEUID == 0
	switch {
	case uid && euid:
		return "uid 0 and euid 0"
	case euid:
		return "euid 0"
	case uid:
		return "uid 0"
	}
	return "root"
}

func orUnknown(method string) string {
	if method == "" {
		return event.MethodUnexplained
	}
	return method
}

// writeEnd says how a process ended.
func writeEnd(b *strings.Builder, code *int, signal string, core bool) {
	switch {
	case signal != "":
		b.WriteString(" exited on ")
		b.WriteString(signal)
		if core {
			b.WriteString(" (core dumped)")
		}
	case code != nil && *code != 0:
		b.WriteString(" exited with code ")
		b.WriteString(strconv.Itoa(*code))
	default:
		b.WriteString(" exited normally")
	}
}

// writeArgs quotes the command line after a colon, cut to maxSummaryArgs
// bytes; a lone argv[0] adds nothing to the executable's path.
func writeArgs(b *strings.Builder, args []event.Text) {
	if len(args) < 2 {
		return
	}
	b.WriteString(": ")
	n := 0
	for i, a := range args {
		if i > 0 {
			b.WriteByte(' ')
			n++
		}
		if n+len(a) > maxSummaryArgs {
			b.WriteString(string(a[:max(0, maxSummaryArgs-n)]))
			b.WriteString("…")
			return
		}
		b.WriteString(string(a))
		n += len(a)
	}
}

// fateSuffix is what an escalation incident's summary gains when its
// process ends, e.g. "; the process exited with code 1 after 2.5s".
func fateSuffix(fate *event.Fate) string {
	var b strings.Builder
	b.WriteString("; the process")
	writeEnd(&b, fate.ExitCode, fate.Signal, fate.CoreDumped)
	if fate.DurationNS > 0 {
		b.WriteString(" after ")
		b.WriteString(time.Duration(fate.DurationNS).Round(time.Millisecond).String())
	}
	return b.String()
}

// summarizeFlood is the summary of a flood incident: who ran how many
// more binaries where, with the first few names.
func summarizeFlood(inc *Incident) string {
	var b strings.Builder
	var f facts
	f.uid = actingUID(&inc.Process)
	b.WriteString("flood: ")
	writeUser(&b, &f)
	if inc.Outcome == event.Failure {
		b.WriteString(" failed to execute ")
	} else {
		b.WriteString(" executed ")
	}
	b.WriteString(strconv.FormatUint(inc.Distinct, 10))
	if inc.Distinct >= maxDistinct {
		b.WriteString(" or more")
	}
	b.WriteString(" more binaries ")
	if fs, ok := strings.CutPrefix(inc.Scope, fsScope); ok {
		b.WriteString("on ")
		b.WriteString(fs)
	} else {
		b.WriteString("under ")
		b.WriteString(inc.Scope)
	}
	b.WriteString(", such as ")
	for i, s := range inc.Sample[:min(3, len(inc.Sample))] {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(string(s))
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
