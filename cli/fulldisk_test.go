package cli

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestAgentFullDisk runs the agent with its database on a small tmpfs (as
// root), fills the filesystem and raises incidents: `incidents` still
// answers with what is committed, `monitor status` shows the pending count
// and the commit error, and once space returns every incident is stored.
func TestAgentFullDisk(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root (CI runs the suite as root)")
	}
	src := useFakeSensor(t)
	e := newTestEnv(t)
	dbDir := filepath.Dir(e.db)
	if err := os.MkdirAll(dbDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", dbDir, "tmpfs", 0, "size=4m,mode=0700"); err != nil {
		t.Fatal(err)
	}
	defer syscall.Unmount(dbDir, syscall.MNT_DETACH)
	stop := startAgent(t, e)
	src.emit(t, tmpExec("/tmp/before", "x"))
	waitIncidents(t, e, 1)

	filler := filepath.Join(dbDir, "filler")
	f, err := os.Create(filler)
	if err != nil {
		t.Fatal(err)
	}
	for chunk := make([]byte, 64<<10); ; {
		if _, err := f.Write(chunk); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatal(err)
			}
			if _, err := f.Write(chunk[:512]); err != nil {
				break
			}
		}
	}
	f.Close()

	const during = 300
	for i := range during {
		src.emit(t, tmpExec(fmt.Sprintf("/tmp/during/%d", i), "x"))
	}
	deadline := time.Now().Add(20 * time.Second)
	st := agentStoreStatus(t, e)
	for (st.CommitError == "" || st.Pending < during) && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
		st = agentStoreStatus(t, e)
	}
	if !strings.Contains(st.CommitError, "no space left on device") || st.Pending != during || st.FailingSince == nil {
		t.Fatalf("status on a full disk: %+v", st)
	}
	if text := mustRun(t, e, "monitor", "status"); !strings.Contains(text, fmt.Sprintf("pending:     %d incidents not yet committed; commits failing", during)) {
		t.Errorf("monitor status on a full disk:\n%s", text)
	}
	if got := parseNDJSON(t, mustRun(t, e, "incidents", "--json")); len(got) != 1 {
		t.Errorf("incidents on a full disk: %d, want the 1 committed", len(got))
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	waitIncidents(t, e, 1+during, "--limit", "0")
	if st := agentStoreStatus(t, e); st.CommitError != "" || st.Pending != 0 {
		t.Errorf("status after space returned: %+v", st)
	}
	err, log := stop()
	if err != nil {
		t.Fatalf("agent: %v\n%s", err, log)
	}
	if n := strings.Count(log, "commit failed"); n == 0 || n > 6 {
		t.Errorf("%d commit failure log lines, want a few:\n%s", n, log)
	}
}
