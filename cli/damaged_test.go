package cli

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/procwatch/procwatch/rules"
)

// garbleRecord makes the stored record of the incident with id unreadable
// (field 0 with wire type 7) by patching its bytes in the file.
func garbleRecord(t *testing.T, path string, id rules.ID) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	var rec []byte
	_ = db.View(func(tx *bolt.Tx) error {
		rec = bytes.Clone(tx.Bucket([]byte("incidents")).Get(id.Bytes()))
		return nil
	})
	db.Close()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	at := bytes.Index(b, rec)
	if len(rec) == 0 || at < 0 {
		t.Fatal("record not found in the file")
	}
	b[at], b[at+1] = 0x07, 0x00
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestDamagedDatabaseCommands: with one incident record garbled,
// `incidents` and `export` give every other incident and a one-line
// warning naming the count (exit 1), offline and through the agent, and
// the agent warns at start that the database failed its check.
func TestDamagedDatabaseCommands(t *testing.T) {
	src := useFakeSensor(t)
	e := newTestEnv(t)
	stop := startAgent(t, e)
	for _, exe := range []string{"/tmp/a", "/tmp/b", "/tmp/c"} {
		src.emit(t, tmpExec(exe, "x"))
	}
	incs := waitIncidents(t, e, 3)
	if err, log := stop(); err != nil {
		t.Fatalf("agent: %v\n%s", err, log)
	}
	garbleRecord(t, e.db, incs[1].ID)

	check := func(how string) {
		out, errOut, code := runCLI(t, "", e.args("incidents", "--json")...)
		if got := parseNDJSON(t, out); len(got) != 2 || code != 1 || strings.Count(errOut, "\n") > 1 ||
			!strings.Contains(errOut, "warning: 1 unreadable incidents were skipped") {
			t.Errorf("%s incidents: %d listed, exit %d, stderr %q", how, len(got), code, errOut)
		}
		file := filepath.Join(e.dir, "export-"+how+".json")
		_, errOut, code = runCLI(t, "", e.args("export", "-o", file)...)
		var exported []rules.Incident
		data, _ := os.ReadFile(file)
		if err := json.Unmarshal(data, &exported); err != nil || len(exported) != 2 || code != 1 ||
			!strings.Contains(errOut, "1 unreadable incidents were skipped") {
			t.Errorf("%s export: %d exported (%v), exit %d, stderr %q", how, len(exported), err, code, errOut)
		}
	}
	check("offline")

	stop = startAgent(t, e)
	check("agent")
	deadline := time.Now().Add(10 * time.Second)
	for agentStoreStatus(t, e).CheckError == "" && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if st := agentStoreStatus(t, e); !strings.Contains(st.CheckError, "1 unreadable incident records") {
		t.Errorf("status check_error: %q", st.CheckError)
	}
	if err, log := stop(); err != nil || !strings.Contains(log, "failed its consistency check") {
		t.Errorf("agent log lacks the check's warning (%v):\n%s", err, log)
	}
}
