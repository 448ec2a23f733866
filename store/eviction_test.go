package store

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/procwatch/procwatch/api"
	"github.com/procwatch/procwatch/event"
	"github.com/procwatch/procwatch/rules"
)

// syncBuffer is a log sink the store's goroutines may write concurrently.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// failedExec is what the rules raise when an unprivileged user executes a
// file it just made in /tmp and the exec fails: the path is attacker-chosen
// and distinct each time, so each is a new incident.
func failedExec(t time.Time, n int) rules.Incident {
	exe := fmt.Sprintf("/tmp/flood/%08d", n)
	sev := rules.SeverityLow
	if n%3 == 0 {
		sev = rules.SeverityMedium
	}
	return rules.Incident{
		ID: rules.NewID(t), Time: t, FirstSeen: t, LastSeen: t, Count: 1,
		Host: "web-01", Rule: "exec-from-tmp", Type: rules.TypeBinExecution,
		Outcome: event.Failure, Severity: sev, Status: rules.StatusOpen,
		Summary: event.Text("failed exec of " + exe + " by uid 65534"),
		Process: event.Event{Type: event.TypeExec, Time: t, PID: uint32(20000 + n%30000), UID: 65534, EUID: 65534,
			GID: 65534, EGID: 65534, Comm: event.Text(filepath.Base(exe)), Exe: event.Text(exe), Filename: event.Text(exe),
			Args: []event.Text{event.Text(exe)}, Outcome: event.Failure, Errno: "ENOEXEC"},
	}
}

// TestFloodNeverEvictsCritical reproduces the eviction attack: a store at
// its count limit holds a critical open incident (the oldest) among
// incidents of every severity and status, and an unprivileged user floods
// it with 20,000 failed execs of distinct /tmp paths (low and medium).
// Before the class index, count retention deleted the oldest first and the
// critical incident went with the first commit of the flood. Now it and
// every open high incident survive, exactly the reference ranking is kept,
// the eviction counter moves, and the log says so once, not per incident.
func TestFloodNeverEvictsCritical(t *testing.T) {
	const limit = 2000
	var logs syncBuffer
	s, _ := openTemp(t, Options{RetentionAge: -1, RetentionCount: limit,
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})

	start := baseTime
	crit := fixture(start, 0)
	crit.Severity, crit.Rule = rules.SeverityCritical, "unexpected-root"
	all := []rules.Incident{crit}
	for i := 1; i < limit; i++ {
		all = append(all, fixture(start.Add(time.Duration(i)*time.Millisecond), i))
	}
	putAll(t, s, all)
	// Triage some: a masked and an acknowledged high incident must go
	// before any open one.
	var acked, masked []rules.ID
	for i := 1; i < limit; i += 10 {
		acked = append(acked, all[i].ID)
		all[i].Status = rules.StatusAcknowledged
		masked = append(masked, all[i+1].ID)
		all[i+1].Status = rules.StatusMasked
	}
	if err := s.SetStatus(acked, rules.StatusAcknowledged); err != nil {
		t.Fatal(err)
	}
	if err := s.SetStatus(masked, rules.StatusMasked); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.Evicted != 0 {
		t.Fatalf("evicted %d before the flood", st.Evicted)
	}

	const flood = 20_000
	floodAt := baseTime.Add(time.Hour)
	for n := range flood {
		inc := failedExec(floodAt.Add(time.Duration(n)*time.Microsecond), n)
		all = append(all, inc)
		s.Put(inc)
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}

	if got, ok, err := s.Get(crit.ID); err != nil || !ok || got.Severity != rules.SeverityCritical {
		t.Fatalf("the critical incident was evicted by the flood (%v, %v)", ok, err)
	}
	high, err := s.Query(api.Query{MinSeverity: rules.SeverityHigh, Status: rules.StatusOpen})
	if err != nil {
		t.Fatal(err)
	}
	wantHigh := bruteQuery(all, api.Query{MinSeverity: rules.SeverityHigh, Status: rules.StatusOpen})
	if !slices.Equal(idsOf(high), wantHigh) {
		t.Errorf("%d open high/critical incidents left, want all %d", len(high), len(wantHigh))
	}
	got, err := s.Query(api.Query{})
	if err != nil {
		t.Fatal(err)
	}
	if want := keepByRank(all, limit); !slices.Equal(idsOf(got), want) {
		t.Errorf("kept %d incidents that differ from the reference ranking (%d)", len(got), len(want))
	}
	checkCounters(t, s)
	st := s.Status()
	if st.EvictedByCount != uint64(len(all)-limit) || st.Incidents != limit {
		t.Errorf("status: %d evicted, %d stored; want %d, %d", st.EvictedByCount, st.Incidents, len(all)-limit, limit)
	}
	if n := strings.Count(logs.String(), "count limit reached"); n != 1 {
		t.Errorf("%d 'count limit reached' log lines for a flood, want 1:\n%s", n, logs.String())
	}
	if n := strings.Count(logs.String(), "\n"); n > 3 {
		t.Errorf("%d log lines for one flood:\n%s", n, logs.String())
	}

	// The counter is kept in the database: it survives a restart.
	path := s.Path()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	ro, err := Open(path, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	if n := ro.Status().EvictedByCount; n != uint64(len(all)-limit) {
		t.Errorf("evicted counter after reopening: %d", n)
	}
}

// TestStatusChangesMoveTheClassIndex acknowledges, masks and reopens
// incidents and checks the index follows (checkCounters compares it with
// the records) and that severity queries stay exact over every class.
func TestStatusChangesMoveTheClassIndex(t *testing.T) {
	s, _ := openTemp(t, Options{RetentionAge: -1})
	all := fixtures(baseTime, 500)
	putAll(t, s, all)
	for _, st := range []rules.Status{rules.StatusAcknowledged, rules.StatusMasked, rules.StatusOpen, rules.StatusMasked} {
		var ids []rules.ID
		for i := 0; i < len(all); i += 3 {
			ids = append(ids, all[i].ID)
			all[i].Status = st
		}
		if err := s.SetStatus(ids, st); err != nil {
			t.Fatal(err)
		}
		checkCounters(t, s)
		for _, q := range []api.Query{{MinSeverity: rules.SeverityMedium}, {MinSeverity: rules.SeverityHigh, Limit: 7}} {
			got, err := s.Query(q)
			if err != nil {
				t.Fatal(err)
			}
			if want := bruteQuery(all, q); !slices.Equal(idsOf(got), want) {
				t.Errorf("after %s, %+v: %d incidents, want %d", st, q, len(got), len(want))
			}
		}
	}
}

// makeV2 turns a current database into schema 2: the severity index
// instead of the class index, and version 2 in the metadata.
func makeV2(t *testing.T, path string) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.Update(func(tx *bolt.Tx) error {
		sev, err := tx.CreateBucket(bucketBySev)
		if err != nil {
			return err
		}
		if err := tx.Bucket(bucketByClass).ForEach(func(k, _ []byte) error {
			return sev.Put(append([]byte{k[1]}, k[2:]...), nil)
		}); err != nil {
			return err
		}
		if err := tx.DeleteBucket(bucketByClass); err != nil {
			return err
		}
		return tx.Bucket(bucketMeta).Put(keyVersion, binary.BigEndian.AppendUint32(nil, 2))
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestMigrateFromV2 keeps old databases readable: a schema 2 file answers
// severity queries read-only (as on a read-only filesystem), and a
// read-write open builds the class index in one transaction, after which
// count retention ranks its incidents.
func TestMigrateFromV2(t *testing.T) {
	path := filepath.Join(t.TempDir(), "v2.db")
	s, err := Open(path, Options{RetentionAge: -1})
	if err != nil {
		t.Fatal(err)
	}
	all := fixtures(baseTime, 400)
	putAll(t, s, all)
	ack := []rules.ID{all[4].ID, all[9].ID}
	if err := s.SetStatus(ack, rules.StatusAcknowledged); err != nil {
		t.Fatal(err)
	}
	all[4].Status, all[9].Status = rules.StatusAcknowledged, rules.StatusAcknowledged
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	makeV2(t, path)

	q := api.Query{MinSeverity: rules.SeverityHigh}
	ro, err := Open(path, Options{ReadOnly: true})
	if err != nil {
		t.Fatalf("read-only open of schema 2: %v", err)
	}
	got, err := ro.Query(q)
	ro.Close()
	if err != nil || !slices.Equal(idsOf(got), bruteQuery(all, q)) {
		t.Fatalf("schema 2 read-only query: %d incidents, %v", len(got), err)
	}

	s, err = Open(path, Options{RetentionAge: -1, RetentionCount: 100})
	if err != nil {
		t.Fatalf("open schema 2: %v", err)
	}
	defer s.Close()
	err = s.view(func(tx *bolt.Tx) error {
		if v := binary.BigEndian.Uint32(tx.Bucket(bucketMeta).Get(keyVersion)); v != schemaVersion {
			t.Errorf("schema %d after migration", v)
		}
		if tx.Bucket(bucketBySev) != nil {
			t.Error("schema 2's severity index left behind")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	checkCounters(t, s)
	got, err = s.Query(api.Query{})
	if err != nil {
		t.Fatal(err)
	}
	if want := keepByRank(all, 100); !slices.Equal(idsOf(got), want) {
		t.Errorf("after migration and count retention: %d kept, want the reference %d", len(got), len(want))
	}
}
