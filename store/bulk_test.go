package store

import (
	"bytes"
	"path/filepath"
	"testing"
	"time"

	"github.com/procwatch/procwatch/api"
	"github.com/procwatch/procwatch/rules"
)

// bulkN is the size of the store in the report of a lost incident: 400,000
// distinct incidents put with retention off, of which export and
// `incidents --limit 0` showed 399,999.
const bulkN = 400_000

// TestBulkEveryIncidentVisible puts bulkN distinct incidents, raised over
// 60 days, into a store with retention off, and checks that every
// way of reading them back finds all of them: the counter, Query without a
// limit, an NDJSON export, a replay from the start, and the same again
// through a read-only open of the closed file (the way a second process
// reads it). More than twice the queue limit goes through Put at once, so
// Put blocks and the commits run back to back, as in the report.
func TestBulkEveryIncidentVisible(t *testing.T) {
	if testing.Short() {
		t.Skip("puts 400,000 incidents (about 10 s)")
	}
	// This test is about every committed incident being visible, not
	// about the drop policy (TestFailingCommitsDropCounted): on a loaded
	// 2-core machine one 32,768-incident commit can take longer than
	// Put's 2 s wait, which then drops an incident.
	defer func(old time.Duration) { putWait = old }(putWait)
	putWait = 5 * time.Minute
	path := filepath.Join(t.TempDir(), "bulk.db")
	s, err := Open(path, Options{RetentionAge: -1, RetentionCount: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// Raised over the 60 days before baseTime: rules.NewID keeps every id
	// above those it handed out before, so ids near now would push the
	// ids of later tests' incidents ahead of their raise times.
	span := 60 * 24 * time.Hour
	start := baseTime.Add(-span)
	for i := range bulkN {
		inc := benchPool[i%len(benchPool)]
		ts := start.Add(time.Duration(i) * (span / bulkN))
		inc.ID = rules.NewID(ts)
		inc.Time, inc.FirstSeen, inc.LastSeen, inc.Process.Time = ts, ts, ts, ts
		s.Put(inc)
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.Committed != bulkN || st.Dropped != 0 || st.Queued != 0 {
		t.Errorf("Stats = %+v, want %d committed, none dropped or queued", st, bulkN)
	}
	checkAllVisible(t, "read-write", s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	ro, err := Open(path, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	checkAllVisible(t, "read-only", ro)
}

// checkAllVisible reads every incident of s in each way the front ends do
// and checks that each way finds bulkN distinct ones in its order.
func checkAllVisible(t *testing.T, how string, s *Store) {
	t.Helper()
	if n, err := s.Count(); err != nil || n != bulkN {
		t.Errorf("%s: Count = %d, %v; want %d", how, n, err, bulkN)
	}

	all, err := s.Query(api.Query{})
	if err != nil {
		t.Fatalf("%s: Query: %v", how, err)
	}
	if len(all) != bulkN {
		t.Errorf("%s: Query with no limit returned %d, want %d", how, len(all), bulkN)
	}
	for i := 1; i < len(all); i++ {
		if all[i-1].ID <= all[i].ID {
			t.Fatalf("%s: Query not newest first, or a repeat, at %d: %s then %s", how, i, all[i-1].ID, all[i].ID)
		}
	}

	var lines lineCounter
	n, err := s.Export(api.Query{}, FormatNDJSON, &lines, nil)
	if err != nil || n != bulkN || lines.n != bulkN {
		t.Errorf("%s: Export wrote %d incidents in %d lines, err %v; want %d", how, n, lines.n, err, bulkN)
	}

	replayed := 0
	var prev rules.ID
	err = s.After(0, func(inc *rules.Incident) error {
		if inc.ID <= prev {
			t.Fatalf("%s: After(0) not ascending at %s", how, inc.ID)
		}
		prev = inc.ID
		replayed++
		return nil
	})
	if err != nil || replayed != bulkN {
		t.Errorf("%s: After(0) replayed %d, err %v; want %d", how, replayed, err, bulkN)
	}
}

// lineCounter counts the newlines written to it, so a large export is
// checked without keeping it.
type lineCounter struct{ n int }

func (c *lineCounter) Write(p []byte) (int, error) {
	c.n += bytes.Count(p, []byte{'\n'})
	return len(p), nil
}
