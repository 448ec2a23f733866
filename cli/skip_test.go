package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/procwatch/procwatch/event"
	"github.com/procwatch/procwatch/exehash"
	"github.com/procwatch/procwatch/rules"
	"github.com/procwatch/procwatch/store"
)

// storeIncidents writes n open tmp-exec incidents for exe into the test
// database, as an agent would have.
func storeIncidents(t *testing.T, e testEnv, exe string, n int) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(e.db), 0o700); err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(e.db, store.Options{RetentionAge: -1, RetentionCount: -1})
	if err != nil {
		t.Fatal(err)
	}
	at := time.Now().Add(-time.Hour)
	for i := range n {
		at := at.Add(time.Duration(i) * time.Millisecond)
		st.Put(rules.Incident{
			ID: rules.NewID(at), Time: at, FirstSeen: at, LastSeen: at, Count: 1, Host: "h",
			Rule: "tmp-exec", Type: rules.TypeBinExecution, Outcome: event.Success, Severity: rules.SeverityHigh,
			Status: rules.StatusOpen, Summary: event.Text(fmt.Sprintf("run %d", i)),
			Process: event.Event{Type: event.TypeExec, Exe: event.Text(exe), Comm: event.Text(filepath.Base(exe)), Outcome: event.Success},
		})
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
}

func listSkips(t *testing.T, e testEnv) []rules.Skip {
	t.Helper()
	var skips []rules.Skip
	if err := json.Unmarshal([]byte(mustRun(t, e, "skip", "list", "--json")), &skips); err != nil {
		t.Fatal(err)
	}
	var added []rules.Skip
	for _, s := range skips {
		if s.Source == rules.SourceAdded {
			added = append(added, s)
		}
	}
	return added
}

// TestSkipAddDryRunAndConfirmation: --dry-run shows what would be masked
// and stores nothing; past 100 incidents, a skip needs --yes off a
// terminal.
func TestSkipAddDryRunAndConfirmation(t *testing.T) {
	e := newTestEnv(t)
	storeIncidents(t, e, "/tmp/build/conftest", 101)

	out := mustRun(t, e, "skip", "add", "--rule", "tmp-exec", "path", "/tmp/build", "--dry-run")
	for _, want := range []string{
		"dry run: skip path /tmp/build for rule tmp-exec would mask 101 open incidents; nothing stored",
		"warning: covers every binary under /tmp/build, not one file",
		"warning: masks 101 open incidents (more than 100)",
		"run 100", "… and 81 more",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("dry run output lacks %q:\n%s", want, out)
		}
	}
	if s := listSkips(t, e); len(s) != 0 {
		t.Fatalf("a dry run stored %+v", s)
	}

	_, errOut, code := runCLI(t, "", e.args("skip", "add", "--rule", "tmp-exec", "path", "/tmp/build")...)
	if code != 1 || !strings.Contains(errOut, "would mask 101 open incidents") || !strings.Contains(errOut, "--yes") {
		t.Fatalf("off a terminal without --yes: exit %d, %q", code, errOut)
	}
	if s := listSkips(t, e); len(s) != 0 {
		t.Fatalf("an unconfirmed skip was stored: %+v", s)
	}
	out = mustRun(t, e, "skip", "add", "--rule", "tmp-exec", "path", "/tmp/build", "--yes")
	if !strings.Contains(out, "masked 101 open incidents") {
		t.Fatalf("--yes: %q", out)
	}
}

// TestSkipAddPin pins a real file: the skip stores its resolved path and
// SHA-256, skip list shows the pin, and a pin on a command or a directory
// is refused with what to do.
func TestSkipAddPin(t *testing.T) {
	e := newTestEnv(t)
	real := filepath.Join(e.dir, "tool")
	if err := os.WriteFile(real, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(e.dir, "link")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	sum, err := exehash.File(real)
	if err != nil {
		t.Fatal(err)
	}
	out, errOut, code := runCLI(t, "", e.args("skip", "add", "--rule", "tmp-exec", "path", link, "--pin")...)
	if code != 0 || !strings.Contains(out, "pinned to sha256:"+sum[:16]) || !strings.Contains(errOut, "resolves to "+real) {
		t.Fatalf("exit %d\nstdout %q\nstderr %q", code, out, errOut)
	}
	added := listSkips(t, e)
	if len(added) != 1 || added[0].Value != real || added[0].Pin != sum || added[0].Kind != rules.SkipPath {
		t.Fatalf("stored %+v", added)
	}
	table := mustRun(t, e, "skip", "list")
	if !strings.Contains(table, "PIN") || !strings.Contains(table, "sha256:"+sum[:16]+"…") {
		t.Errorf("skip list does not show the pin:\n%s", table)
	}
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"skip", "add", "command", "tool", "--pin"}, 2, "only a path can be pinned"},
		{[]string{"skip", "add", "path", e.dir, "--pin"}, 1, "not a regular file"},
		{[]string{"skip", "add", "path", filepath.Join(e.dir, "missing"), "--pin"}, 1, "must exist"},
	} {
		_, errOut, code := runCLI(t, "", e.args(tc.args...)...)
		if code != tc.code || !strings.Contains(errOut, tc.want) || strings.Count(errOut, "\n") != 1 {
			t.Errorf("%v: exit %d, %q; want exit %d and %q on one line", tc.args, code, errOut, tc.code, tc.want)
		}
	}
}

func TestSkipAddNamesWhatIsMissing(t *testing.T) {
	e := newTestEnv(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"skip", "add"}, "missing the kind (command, path or user) and the value"},
		{[]string{"skip", "add", "path"}, "missing the value to skip"},
		{[]string{"skip", "add", "colour", "red"}, `unknown kind "colour": want command, path or user`},
	} {
		_, errOut, code := runCLI(t, "", e.args(tc.args...)...)
		if code != 2 || !strings.Contains(errOut, tc.want) {
			t.Errorf("%v: exit %d, %q; want exit 2 and %q", tc.args, code, errOut, tc.want)
		}
	}
}

// TestPinnedSkipWithRealSensor pins a binary under the real sensor: its
// runs are silenced; after a different file is put at the same path, its
// runs raise incidents again, carrying the new content's SHA-256.
func TestPinnedSkipWithRealSensor(t *testing.T) {
	e := newTestEnv(t)
	bin := filepath.Join(e.dir, "bin")
	os.MkdirAll(bin, 0o755)
	rulesYAML := strings.Replace(agentTestRules, `"/tmp/**"`, fmt.Sprintf("%q", bin+"/**"), 1)
	os.WriteFile(e.rules, []byte(rulesYAML), 0o600)
	_, closeProbe, err := newEventSource(1<<20, nil)
	if err != nil {
		if os.Getenv("PROCWATCH_REQUIRE_BPF") == "1" {
			t.Fatalf("sensor cannot load and PROCWATCH_REQUIRE_BPF=1: %v", err)
		}
		t.Skipf("sensor cannot load: %v", err)
	}
	closeProbe()
	startAgent(t, e)
	install := func(name, from string) string {
		data, err := os.ReadFile(from)
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(bin, name)
		tmp := p + ".new"
		if err := os.WriteFile(tmp, data, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, p); err != nil {
			t.Fatal(err)
		}
		return p
	}
	pinned := install("pinned", "/bin/true")
	control := install("control", "/bin/true")
	mustRun(t, e, "skip", "add", "--rule", "tmp-exec", "path", pinned, "--pin")

	n := 0
	// run executes exe with a fresh argument (so dedup never folds runs)
	// and returns it.
	run := func(exe string) string {
		n++
		arg := fmt.Sprintf("run-%d", n)
		var exitErr *exec.ExitError
		if err := exec.Command(exe, arg).Run(); err != nil && !errors.As(err, &exitErr) {
			t.Fatal(err)
		}
		return arg
	}
	find := func(exe, arg string) *rules.Incident {
		for _, inc := range parseNDJSON(t, mustRun(t, e, "incidents", "--json", "--limit", "0")) {
			if string(inc.Process.Exe) == exe && len(inc.Process.Args) > 1 && string(inc.Process.Args[1]) == arg {
				return &inc
			}
		}
		return nil
	}
	// waitFor runs exe until one of its incidents satisfies ok.
	waitFor := func(exe string, ok func(*rules.Incident) bool) *rules.Incident {
		deadline := time.Now().Add(20 * time.Second)
		for time.Now().Before(deadline) {
			arg := run(exe)
			for i := 0; i < 20; i++ {
				if inc := find(exe, arg); inc != nil {
					if ok(inc) {
						return inc
					}
					break
				}
				time.Sleep(50 * time.Millisecond)
			}
		}
		t.Fatalf("no incident of %s as wanted", exe)
		return nil
	}
	// Once a control binary's incident carries its hash, the worker has
	// served the pin's warm-up request queued before it.
	waitFor(control, func(inc *rules.Incident) bool { return inc.Process.ExeSHA256 != "" })

	arg := run(pinned)
	waitFor(control, func(*rules.Incident) bool { return true }) // the pinned run's event was judged before this one
	if inc := find(pinned, arg); inc != nil {
		t.Fatalf("the pinned file raised %+v", inc)
	}

	// Another file at the same path: raised at once (its hash unknown or
	// different), then with its own hash once known.
	install("pinned", "/bin/false")
	want, err := exehash.File(pinned)
	if err != nil {
		t.Fatal(err)
	}
	arg = run(pinned)
	waitFor(control, func(*rules.Incident) bool { return true })
	if find(pinned, arg) == nil {
		t.Fatal("a different file at the pinned path raised no incident")
	}
	inc := waitFor(pinned, func(inc *rules.Incident) bool { return inc.Process.ExeSHA256 != "" })
	if inc.Process.ExeSHA256 != want {
		t.Errorf("incident exe_sha256 %s, want %s", inc.Process.ExeSHA256, want)
	}
}

func TestSkipListShowsOwners(t *testing.T) {
	e := newTestEnv(t)
	rulesYAML := agentTestRules + "    skip: {owners: [root], paths: [/tmp/go-build*/b*/*.test]}\n"
	if err := os.WriteFile(e.rules, []byte(rulesYAML), 0o600); err != nil {
		t.Fatal(err)
	}
	out := mustRun(t, e, "skip", "list")
	if !strings.Contains(out, "/tmp/go-build*/b*/*.test (owned by root)") {
		t.Fatalf("skip list hides the owners narrowing:\n%s", out)
	}
}
