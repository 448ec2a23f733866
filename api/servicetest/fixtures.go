package servicetest

import (
	"fmt"
	"path"
	"time"

	"github.com/procwatch/procwatch/api"
	"github.com/procwatch/procwatch/event"
	"github.com/procwatch/procwatch/rules"
)

// SampleRules returns a small rule set shaped like procwatch's defaults.
func SampleRules() []rules.Rule {
	yes := true
	return []rules.Rule{
		{Name: "root-escalation", Type: rules.TypeRootEscalation, Description: "a process without root ids became root",
			Severity: rules.OutcomeSeverity{Success: rules.SeverityHigh, Failure: rules.SeverityMedium},
			Skip:     rules.SkipList{Commands: []string{"sudo"}}},
		{Name: "shell-in-container", Type: rules.TypeBinExecution, Description: "an interactive shell started in a container",
			Match:    rules.Selectors{Commands: []string{"bash", "sh"}, Container: &yes},
			Severity: rules.OutcomeSeverity{Success: rules.SeverityCritical, Failure: rules.SeverityLow}},
		{Name: "tmp-exec", Type: rules.TypeBinExecution, Description: "a binary ran from a world-writable directory",
			Match:    rules.Selectors{Paths: []string{"/tmp/**", "/dev/shm/**"}},
			Severity: rules.OutcomeSeverity{Success: rules.SeverityMedium, Failure: rules.SeverityLow}},
		{Name: "crash", Type: rules.TypeTerminationFailure, Description: "a process died of a fatal signal",
			Match:    rules.Selectors{Signals: []string{"SIGSEGV", "SIGABRT"}},
			Severity: rules.OutcomeSeverity{Failure: rules.SeverityLow}},
	}
}

var sshdChain = []event.Ancestor{
	{PID: 4242, Exe: "/usr/bin/bash"},
	{PID: 4100, Exe: "/usr/sbin/sshd"},
	{PID: 812, Exe: "/usr/sbin/sshd"},
	{PID: 1, Exe: "/usr/lib/systemd/systemd"},
}

// EscalationEvent is a set-user-ID escalation by uid from exe, run from an
// SSH login shell.
func EscalationEvent(at time.Time, pid, uid uint32, exe string, args ...string) event.Event {
	ev := event.Event{
		Type: event.TypeEscalation, Time: at, PID: pid, TID: pid, PPID: 4242,
		UID: uid, EUID: 0, GID: uid, EGID: uid, AUID: 1000,
		Comm: event.Text(path.Base(exe)), Exe: event.Text(exe), Filename: event.Text(exe),
		Cwd: "/home/alice", TTY: "pts/0", ParentExe: "/usr/bin/bash",
		Ancestors: sshdChain, Outcome: event.Success, Method: event.MethodSuidExec,
		OldUID: event.Uint32(uid), NewUID: event.Uint32(uid), OldEUID: event.Uint32(uid), NewEUID: event.Uint32(0),
	}
	for _, a := range append([]string{exe}, args...) {
		ev.Args = append(ev.Args, event.Text(a))
	}
	return ev
}

// ExecEvent is an exec of exe by uid.
func ExecEvent(at time.Time, pid, uid uint32, exe string, args ...string) event.Event {
	ev := event.Event{
		Type: event.TypeExec, Time: at, PID: pid, TID: pid, PPID: 4242,
		UID: uid, EUID: uid, GID: uid, EGID: uid, AUID: 1000,
		Comm: event.Text(path.Base(exe)), Exe: event.Text(exe), Filename: event.Text(exe),
		Cwd: "/home/alice", TTY: "pts/0", ParentExe: "/usr/bin/bash",
		Ancestors: sshdChain, Outcome: event.Success,
	}
	for _, a := range append([]string{exe}, args...) {
		ev.Args = append(ev.Args, event.Text(a))
	}
	return ev
}

// ExitEvent is the exit of exe, with a code or a signal.
func ExitEvent(at time.Time, pid, uid uint32, exe string, code int, signal string) event.Event {
	ev := event.Event{
		Type: event.TypeExit, Time: at, PID: pid, TID: pid, PPID: 4242,
		UID: uid, EUID: uid, AUID: 1000, Comm: event.Text(path.Base(exe)), Exe: event.Text(exe),
		Outcome: event.Success, DurationNS: int64(1500 * time.Millisecond),
	}
	if signal != "" {
		ev.Signal, ev.Outcome = signal, event.Failure
	} else {
		ev.ExitCode = event.Int(code)
		if code != 0 {
			ev.Outcome = event.Failure
		}
	}
	return ev
}

// IncidentFor wraps ev in an open incident of rule with severity sev.
func IncidentFor(id rules.ID, host, rule, typ string, sev rules.Severity, ev event.Event, summary string) rules.Incident {
	return rules.Incident{
		ID: id, Time: ev.Time, Host: host, Rule: rule, Type: typ, Outcome: ev.Outcome,
		Severity: sev, Summary: event.Text(summary), Status: rules.StatusOpen, Process: ev,
		Count: 1, FirstSeen: ev.Time, LastSeen: ev.Time,
	}
}

// SampleSHA256 is the content hash the sample /tmp/build/run.sh reports.
const SampleSHA256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"

// SampleIncidents returns a handful of incidents between t0 and t0+5m,
// oldest first, each with a distinct id derived from its time.
func SampleIncidents(host string, t0 time.Time) []rules.Incident {
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	id := func(s int) rules.ID { return rules.ID(at(s).UnixNano()) }
	esc := EscalationEvent(at(10), 5001, 1000, "/usr/bin/sudo", "-i")
	pk := EscalationEvent(at(70), 5100, 65534, "/usr/bin/pkexec", "/bin/sh")
	shell := ExecEvent(at(130), 5200, 0, "/usr/bin/bash", "-i")
	shell.ContainerID = "3f2a9c1e77b0"
	shell.Cgroup = "/system.slice/docker-3f2a9c1e77b0.scope"
	tmp := ExecEvent(at(190), 5300, 1000, "/tmp/build/run.sh", "--fast")
	tmp.ExeSHA256 = SampleSHA256
	crash := ExitEvent(at(250), 5400, 1000, "/usr/local/bin/worker", 0, "SIGSEGV")
	crash.CoreDumped = true
	out := []rules.Incident{
		IncidentFor(id(10), host, "root-escalation", rules.TypeRootEscalation, rules.SeverityHigh, esc, "uid 1000 became root through set-user-ID /usr/bin/sudo"),
		IncidentFor(id(70), host, "root-escalation", rules.TypeRootEscalation, rules.SeverityHigh, pk, "uid 65534 became root through set-user-ID /usr/bin/pkexec"),
		IncidentFor(id(130), host, "shell-in-container", rules.TypeBinExecution, rules.SeverityCritical, shell, "shell /usr/bin/bash started in container 3f2a9c1e77b0"),
		IncidentFor(id(190), host, "tmp-exec", rules.TypeBinExecution, rules.SeverityMedium, tmp, "/tmp/build/run.sh ran from a world-writable directory"),
		IncidentFor(id(250), host, "crash", rules.TypeTerminationFailure, rules.SeverityLow, crash, "/usr/local/bin/worker killed by SIGSEGV (core dumped)"),
	}
	out[0].Count, out[0].LastSeen = 12, at(280)
	return out
}

// HostileNames are process strings built to attack a terminal: cursor
// moves, colour and title changes, an OSC 8 hyperlink, a bidi override that
// reverses text, zero-width characters, C1 controls and invalid UTF-8.
var HostileNames = []string{
	"/tmp/evil\r\x1b[2Kuser=root",
	"/tmp/\x1b]8;;http://attacker.example/\x1b\\click\x1b]8;;\x1b\\",
	"/tmp/\u202egnp.exe",
	"/tmp/zero\u200bwidth\u2066x",
	"/tmp/c1\u009b31mred",
	"/tmp/bad\xff\xfeutf8",
	"/tmp/\x1b]0;pwned\x07title",
}

// HostileIncidents returns one incident per hostile name, newest last.
func HostileIncidents(host string, t0 time.Time) []rules.Incident {
	out := make([]rules.Incident, len(HostileNames))
	for i, name := range HostileNames {
		at := t0.Add(time.Duration(i) * time.Second)
		ev := ExecEvent(at, uint32(7000+i), 1000, name, "--arg\x1b[31m", "\u202eevil")
		ev.Comm = event.Text(path.Base(name))
		ev.Cwd = event.Text("/home/\x1b[1mbold")
		out[i] = IncidentFor(rules.ID(at.UnixNano()), host, "tmp-exec", rules.TypeBinExecution, rules.SeverityMedium, ev,
			fmt.Sprintf("%s ran from a world-writable directory", name))
	}
	return out
}

// LoadBatch returns n events spread over the three types, starting at pid
// base, as one update. Every fiftieth event is marked skipped.
func LoadBatch(at time.Time, base uint32, n int) api.Update {
	u := api.Update{Events: make([]api.Envelope, n)}
	for i := range n {
		pid := base + uint32(i)
		e := &u.Events[i]
		switch i % 3 {
		case 0:
			e.Event = ExecEvent(at, pid, 1000, "/usr/bin/grep", "-r", "needle", "/srv")
		case 1:
			e.Event = ExitEvent(at, pid, 1000, "/usr/bin/grep", 1, "")
		default:
			e.Event = EscalationEvent(at, pid, 1000, "/usr/bin/sudo", "systemctl", "status")
		}
		if i%50 == 0 {
			e.Skip = &rules.SkipHit{Rule: "load", By: rules.SkipByGlobal}
		}
	}
	return u
}
