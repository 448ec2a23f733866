package store

import (
	"strings"
	"testing"
	"time"

	"github.com/procwatch/procwatch/rules"
)

// TestSetExeSHA256GivesTheSumOnceAndRepeatsKeepIt: a stored incident
// without exe_sha256 gets the late sum (committed, and returned for the
// front ends); one that has a sum keeps it; a repeat of the incident
// queued without a sum (judged before the hash was known) keeps the late
// one, but a repeat naming another file does not inherit it.
func TestSetExeSHA256GivesTheSumOnceAndRepeatsKeepIt(t *testing.T) {
	s, _ := openTemp(t, Options{BatchInterval: time.Hour, RetentionAge: -1})
	// A fixed past time: rules.NewID keeps every id above those it handed
	// out before, so ids near the real now would push the ids of later
	// tests (TestRetentionByAge) ahead of their raise times.
	now := baseTime
	bare, hashed := fixture(now, 0), fixture(now.Add(time.Second), 1)
	bare.Process.ExeDev, bare.Process.ExeIno = 8, 100
	hashed.Process.ExeSHA256 = strings.Repeat("b", 64)
	s.Put(bare) // still queued: SetExeSHA256 must commit it first
	putAll(t, s, []rules.Incident{hashed})
	sum := strings.Repeat("a", 64)
	changed, err := s.SetExeSHA256(map[rules.ID]string{bare.ID: sum, hashed.ID: sum, rules.NewID(now): sum})
	if err != nil {
		t.Fatal(err)
	}
	if len(changed) != 1 || changed[0].ID != bare.ID || changed[0].Process.ExeSHA256 != sum || changed[0].Status != rules.StatusOpen {
		t.Fatalf("changed = %+v, want only %s with the sum", changed, bare.ID)
	}
	get := func(id rules.ID) rules.Incident {
		t.Helper()
		inc, ok, err := s.Get(id)
		if err != nil || !ok {
			t.Fatalf("get %s: %v %v", id, ok, err)
		}
		return inc
	}
	if got := get(hashed.ID).Process.ExeSHA256; got != hashed.Process.ExeSHA256 {
		t.Fatalf("a sum already given was replaced by %q", got)
	}

	tests := []struct {
		name    string
		ino     uint64
		wantSum string
	}{
		{"repeat of the same file", 100, sum},
		{"repeat naming another file", 101, ""},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rep := bare
			rep.Process.ExeIno = tc.ino
			rep.Count = uint64(2 + i)
			putAll(t, s, []rules.Incident{rep})
			got := get(bare.ID)
			if got.Count != rep.Count || got.Process.ExeSHA256 != tc.wantSum {
				t.Fatalf("after the repeat: count %d sum %q, want %d %q", got.Count, got.Process.ExeSHA256, rep.Count, tc.wantSum)
			}
		})
	}
}
