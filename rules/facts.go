package rules

import (
	"path"
	"strings"

	"github.com/procwatch/procwatch/event"
)

// facts are the properties of one event that selectors and skips compare,
// worked out once per event rather than once per rule. Nothing here
// allocates, so events that raise no incident cost no garbage.
type facts struct {
	ev   *event.Event
	path string // the executable the event is about
	// truncated: the sensor could not walk the path to the root (more
	// than its depth limit) and marked it with a leading "…".
	truncated bool
	base      string // its base name
	comm      string
	parent    string // base name of the parent's executable
	uid       uint32 // the acting user
	outcome   event.Outcome

	nameDone bool
	name     string
}

func (f *facts) init(ev *event.Event) {
	f.ev = ev
	f.path = subjectPath(ev)
	f.base = baseName(f.path)
	f.truncated = strings.HasPrefix(f.path, truncatedMark)
	f.comm = string(ev.Comm)
	parent := string(ev.ParentExe)
	if parent == "" && len(ev.Ancestors) > 0 {
		parent = string(ev.Ancestors[0].Exe)
	}
	f.parent = baseName(parent)
	f.uid = actingUID(ev)
	f.outcome = eventOutcome(ev)
	f.nameDone, f.name = false, ""
}

func (f *facts) userName() string {
	if !f.nameDone {
		f.name = UserName(f.uid)
		f.nameDone = true
	}
	return f.name
}

// subjectPath is the executable an event is about. For a successful exec
// and for every other event that is the resolved exe. A failed exec never
// ran its target, so the sensor's exe is still the caller's; the absolute
// path that was asked for is the better subject then.
func subjectPath(ev *event.Event) string {
	if ev.Type == event.TypeExec && eventOutcome(ev) == event.Failure &&
		strings.HasPrefix(string(ev.Filename), "/") {
		// The caller chose this string: clean it so "/usr/bin/../../tmp/x"
		// is judged as /tmp/x. Clean only allocates when it changes
		// something.
		return path.Clean(string(ev.Filename))
	}
	if ev.Exe != "" {
		return string(ev.Exe)
	}
	if strings.HasPrefix(string(ev.Filename), "/") {
		return string(ev.Filename)
	}
	return ""
}

// actingUID is the user an event is attributed to: for an escalation the
// uid before it (the user who gained or tried to gain root), otherwise the
// real uid.
func actingUID(ev *event.Event) uint32 {
	if ev.Type == event.TypeEscalation && ev.OldUID != nil {
		return *ev.OldUID
	}
	return ev.UID
}

// eventOutcome returns the event's outcome. The sensor always sets it; for
// hand-written captures without one, an exit is a failure when its code is
// non-zero or a signal killed it, and other events count as successes.
func eventOutcome(ev *event.Event) event.Outcome {
	switch ev.Outcome {
	case event.Success, event.Failure:
		return ev.Outcome
	}
	if ev.Type == event.TypeExit && (ev.Signal != "" || (ev.ExitCode != nil && *ev.ExitCode != 0)) {
		return event.Failure
	}
	return event.Success
}

// truncatedMark starts a path whose top the sensor could not capture.
const truncatedMark = "…"

func baseName(p string) string {
	if p == "" {
		return ""
	}
	p = strings.TrimRight(p, "/")
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		return p[i+1:]
	}
	return p
}
