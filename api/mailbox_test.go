package api

import (
	"testing"
	"time"

	"github.com/procwatch/procwatch/event"
	"github.com/procwatch/procwatch/rules"
)

func TestMailboxMergesAndBounds(t *testing.T) {
	m := NewMailbox(3, 2)
	ev := func(pid uint32) Envelope { return Envelope{Event: event.Event{PID: pid}} }
	skip := &rules.SkipHit{Rule: "r", By: rules.SkipByGlobal}
	skipped := func(pid uint32) Envelope { e := ev(pid); e.Skip = skip; return e }
	m.Put(Update{Events: []Envelope{ev(1), skipped(2)}})
	m.Put(Update{Events: []Envelope{skipped(3), ev(4)}})
	m.Put(Update{Incidents: []rules.Incident{{ID: 1, Count: 1}, {ID: 2, Count: 1}}})
	m.Put(Update{Incidents: []rules.Incident{{ID: 1, Count: 5}, {ID: 3, Count: 1}}, Dropped: 2})
	st := Status{Host: "a"}
	m.Put(Update{Status: &st})
	st.Host = "b" // the mailbox keeps its own copy
	u, ok := m.Take()
	if !ok {
		t.Fatal("nothing to take")
	}
	// Drop-oldest: pid 1 gave way; each verdict stayed with its event.
	if len(u.Events) != 3 || u.Events[0].PID != 2 || u.Events[2].PID != 4 {
		t.Errorf("events %+v, want pids 2-4", u.Events)
	}
	for i, want := range []bool{true, true, false} {
		if got := u.Events[i].Skip != nil; got != want {
			t.Errorf("event pid %d skipped %v, want %v", u.Events[i].PID, got, want)
		}
	}
	if m.Dropped() != 2 {
		t.Errorf("lifetime drops %d, want 2 (the producer's 2 are counted where they happened)", m.Dropped())
	}
	if len(u.Incidents) != 2 || u.Incidents[0].Count != 5 {
		t.Errorf("incidents %+v, want id 1 at count 5 and id 2", u.Incidents)
	}
	// 1 event and 1 incident over the bounds, plus 2 reported by the producer.
	if u.Dropped != 4 {
		t.Errorf("dropped %d, want 4", u.Dropped)
	}
	if u.Status == nil || u.Status.Host != "a" {
		t.Errorf("status %+v", u.Status)
	}
	if _, ok := m.Take(); ok {
		t.Error("a second Take returned something")
	}
	now := time.Now()
	m.Delivered(now)
	m.Put(Update{Events: []Envelope{ev(9)}})
	if m.Stalled(now.Add(time.Second), 2*time.Second) || !m.Stalled(now.Add(3*time.Second), 2*time.Second) {
		t.Error("Stalled does not follow the last delivery")
	}
}
