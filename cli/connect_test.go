package cli

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/procwatch/procwatch/store"
)

// TestExplicitSocketWithoutAgent: a --socket nobody answers on is an error
// naming the socket and what to run, never the default database's state.
func TestExplicitSocketWithoutAgent(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.sock")
	stale := filepath.Join(dir, "stale.sock")
	l, err := net.Listen("unix", stale)
	if err != nil {
		t.Fatal(err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close() // the file stays, nobody listens: an agent that died
	for _, tc := range []struct{ sock, why string }{
		{missing, "no such socket"},
		{stale, "connection refused"},
	} {
		for _, args := range [][]string{
			{"monitor", "status"},
			{"incidents"},
			{"skip", "list"},
		} {
			out, errOut, code := runCLI(t, "", append([]string{"--socket", tc.sock}, args...)...)
			if code != 1 || out != "" || strings.Count(errOut, "\n") != 1 ||
				!strings.Contains(errOut, "no agent answers on "+tc.sock) || !strings.Contains(errOut, tc.why) ||
				!strings.Contains(errOut, "procwatch agent --socket "+tc.sock) {
				t.Errorf("%v on %s: exit %d\nstdout %q\nstderr %q", args, tc.sock, code, out, errOut)
			}
		}
	}
}

// TestNoAgentMessagesNameSocketAndDatabase: --follow without an agent, and
// a database held by another process, say what was tried and what to run.
func TestNoAgentMessagesNameSocketAndDatabase(t *testing.T) {
	e := newTestEnv(t)
	_, errOut, code := runCLI(t, "", e.args("incidents", "--follow")...)
	if code != 1 || !strings.Contains(errOut, "no agent answers on "+e.sock) || !strings.Contains(errOut, e.db) ||
		!strings.Contains(errOut, "procwatch agent") {
		t.Errorf("--follow without an agent: exit %d, %q", code, errOut)
	}

	if err := os.MkdirAll(filepath.Dir(e.db), 0o700); err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(e.db, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	_, errOut, code = runCLI(t, "", e.args("incidents")...)
	if code != 1 || !strings.Contains(errOut, "no agent answers on "+e.sock) || !strings.Contains(errOut, "already running") ||
		!strings.Contains(errOut, e.db) || !strings.Contains(errOut, "procwatch agent") {
		t.Errorf("database held: exit %d, %q", code, errOut)
	}
}
