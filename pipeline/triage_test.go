package pipeline

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/procwatch/procwatch/api"
	"github.com/procwatch/procwatch/rules"
)

// TestRepeatKeepsTriageStatus: after an operator masks or acknowledges an
// incident, a repeat of it (the rules engine counting one more) reaches
// OnIncident (the fleet, --output) and subscribers with the stored status,
// not as "open" again; re-opening it shows open on the next repeat.
func TestRepeatKeepsTriageStatus(t *testing.T) {
	var mu sync.Mutex
	var seen []rules.Incident
	h := newHarness(t, func(c *Config) {
		c.OnIncident = func(inc rules.Incident) {
			mu.Lock()
			seen = append(seen, inc)
			mu.Unlock()
		}
	})
	h.waitRunning(t)
	last := func() rules.Incident {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			mu.Lock()
			n := len(seen)
			var inc rules.Incident
			if n > 0 {
				inc = seen[n-1]
			}
			mu.Unlock()
			if n > 0 {
				return inc
			}
			if time.Now().After(deadline) {
				t.Fatal("no incident reached OnIncident")
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	h.source.emit(t, execEvent("/tmp/a", "1"))
	first := last()
	h.store.Flush()
	for i, st := range []rules.Status{rules.StatusMasked, rules.StatusAcknowledged, rules.StatusOpen} {
		if err := h.local.SetStatus(context.Background(), []rules.ID{first.ID}, st); err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		seen = nil
		mu.Unlock()
		h.source.emit(t, execEvent("/tmp/a", "1"))
		got := last()
		if got.ID != first.ID || got.Count != uint64(i+2) {
			t.Fatalf("repeat %d: incident %s count %d, want %s count %d", i, got.ID, got.Count, first.ID, i+2)
		}
		if got.Status != st {
			t.Errorf("repeat after %s: OnIncident saw status %s", st, got.Status)
		}
		h.store.Flush()
		if stored := h.incidents(t, api.Query{})[0]; stored.Status != st {
			t.Errorf("repeat after %s: stored status %s", st, stored.Status)
		}
	}
}
