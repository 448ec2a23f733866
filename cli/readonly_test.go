package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/procwatch/procwatch/rules"
)

// TestOfflineReadOnlyDatabase: incidents, export and monitor status work
// on a database on a read-only filesystem (a read-only bind mount: root
// ignores file modes), opening it read-only; a change fails with one line.
func TestOfflineReadOnlyDatabase(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("a read-only bind mount needs root (CI runs the suite as root)")
	}
	src := useFakeSensor(t)
	e := newTestEnv(t)
	stop := startAgent(t, e)
	for _, exe := range []string{"/tmp/a", "/tmp/b", "/tmp/c"} {
		src.emit(t, tmpExec(exe, "x"))
	}
	waitIncidents(t, e, 3)
	if err, log := stop(); err != nil {
		t.Fatalf("agent: %v\n%s", err, log)
	}

	ro := t.TempDir()
	if err := syscall.Mount(filepath.Dir(e.db), ro, "", syscall.MS_BIND, ""); err != nil {
		t.Fatal(err)
	}
	defer syscall.Unmount(ro, syscall.MNT_DETACH)
	if err := syscall.Mount("", ro, "", syscall.MS_BIND|syscall.MS_REMOUNT|syscall.MS_RDONLY, ""); err != nil {
		t.Fatal(err)
	}
	e.db = filepath.Join(ro, filepath.Base(e.db))

	if got := parseNDJSON(t, mustRun(t, e, "incidents", "--json")); len(got) != 3 {
		t.Errorf("incidents on a read-only filesystem: %d", len(got))
	}
	var exported []rules.Incident
	if err := json.Unmarshal([]byte(mustRun(t, e, "export")), &exported); err != nil || len(exported) != 3 {
		t.Errorf("export on a read-only filesystem: %d, %v", len(exported), err)
	}
	// (It exits 1 because no agent monitors; the database lines are
	// what this test is about.)
	status, _, _ := runCLI(t, "", e.args("monitor", "status")...)
	if !strings.Contains(status, "(read-only): 3 incidents") {
		t.Errorf("monitor status does not say read-only:\n%s", status)
	}
	_, errOut, code := runCLI(t, "", e.args("skip", "add", "path", "/tmp/a")...)
	if code != 1 || strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, "read-only") {
		t.Errorf("skip add on a read-only database: exit %d, %q", code, errOut)
	}
}
