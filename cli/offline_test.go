package cli

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/procwatch/procwatch/event"
	"github.com/procwatch/procwatch/rules"
	"github.com/procwatch/procwatch/store"
)

// TestOfflineReadsDeleteNothing: with no agent running, `incidents` and
// `export` open the database themselves; they must not apply retention and
// delete incidents older than the default age limit.
func TestOfflineReadsDeleteNothing(t *testing.T) {
	e := newTestEnv(t)
	st, err := store.Open(e.db, store.Options{RetentionAge: -1, RetentionCount: -1})
	if err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-90 * 24 * time.Hour)
	for i := range 3 {
		at := old.Add(time.Duration(i) * time.Minute)
		st.Put(rules.Incident{
			ID: rules.NewID(at), Time: at, FirstSeen: at, LastSeen: at, Count: 1, Host: "h",
			Rule: "r", Type: rules.TypeBinExecution, Outcome: event.Success, Severity: rules.SeverityHigh,
			Status: rules.StatusOpen, Summary: "old", Process: event.Event{Type: event.TypeExec, Exe: "/tmp/x"},
		})
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"incidents", "--json", "--limit", "0"},
		{"export", "--format", "ndjson"},
		{"incidents", "--json", "--limit", "0"},
	} {
		out, errOut, code := runCLI(t, "", e.args(args...)...)
		if code != 0 {
			t.Fatalf("%v: exit %d: %s", args, code, errOut)
		}
		var n int
		if args[0] == "export" {
			n = strings.Count(out, "\n")
		} else {
			var incs []json.RawMessage
			if err := json.Unmarshal([]byte(out), &incs); err != nil {
				n = strings.Count(out, "\n") // NDJSON form
			} else {
				n = len(incs)
			}
		}
		if n != 3 {
			t.Fatalf("%v: %d incidents, want the 3 stored 90 days ago:\n%s", args, n, out)
		}
	}
}
