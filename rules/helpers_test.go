package rules

import (
	"testing"
	"time"

	"github.com/procwatch/procwatch/event"
)

// testUsers replaces the user database for a test, so results do not depend
// on the host's /etc/passwd.
func testUsers(t testing.TB) {
	t.Helper()
	names := map[uint32]string{0: "root", 34: "backup", 1000: "alice", 1001: "bob", 65534: "nobody"}
	old := lookupUser
	lookupUser = func(uid uint32) string { return names[uid] }
	userNames.Lock()
	clear(userNames.m)
	userNames.Unlock()
	t.Cleanup(func() {
		lookupUser = old
		userNames.Lock()
		clear(userNames.m)
		userNames.Unlock()
	})
}

func mustParse(t testing.TB, src string) *RuleSet {
	t.Helper()
	set, err := Parse("test.yaml", []byte(src))
	if err != nil {
		t.Fatalf("parse: %v\n%s", err, src)
	}
	return set
}

var t0 = time.Date(2026, 11, 29, 5, 0, 0, 0, time.UTC)

func execEvent(exe string, uid uint32) *event.Event {
	return &event.Event{
		Type: event.TypeExec, Time: t0, PID: 100, PPID: 1, UID: uid, EUID: uid,
		Comm: event.Text(baseName(exe)), Exe: event.Text(exe), Filename: event.Text(exe),
		Args: []event.Text{event.Text(exe)}, Outcome: event.Success,
	}
}

func escalationEvent(exe string, oldUID uint32, method string, outcome event.Outcome) *event.Event {
	ev := &event.Event{
		Type: event.TypeEscalation, Time: t0, PID: 200, PPID: 1, UID: 0, EUID: 0,
		Comm: event.Text(baseName(exe)), Exe: event.Text(exe), Outcome: outcome, Method: method,
		OldUID: event.Uint32(oldUID), OldEUID: event.Uint32(oldUID), NewUID: event.Uint32(0), NewEUID: event.Uint32(0),
	}
	if outcome == event.Failure {
		ev.UID, ev.EUID, ev.Errno = oldUID, oldUID, "EPERM"
	}
	return ev
}

func exitEvent(exe string, code int, signal string) *event.Event {
	ev := &event.Event{
		Type: event.TypeExit, Time: t0, PID: 300, PPID: 1, UID: 1000, EUID: 1000,
		Comm: event.Text(baseName(exe)), Exe: event.Text(exe), ExitCode: event.Int(code), Signal: signal,
		Outcome: event.Success,
	}
	if code != 0 || signal != "" {
		ev.Outcome = event.Failure
	}
	return ev
}
