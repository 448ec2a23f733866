package cli

import (
	"encoding/json"
	"fmt"
	"os"
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
