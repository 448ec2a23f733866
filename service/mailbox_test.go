package service

import (
	"testing"
	"time"

	"github.com/procwatch/procwatch/event"
	"github.com/procwatch/procwatch/rules"
)

func TestMailboxMergesAndBounds(t *testing.T) {
	m := NewMailbox(3, 2)
	ev := func(pid uint32) event.Event { return event.Event{PID: pid} }
	m.Put(Update{Events: []event.Event{ev(1), ev(2)}, Skipped: []int{1}})
	m.Put(Update{Events: []event.Event{ev(3), ev(4)}, Skipped: []int{0, 1}})
	m.Put(Update{Incidents: []rules.Incident{{ID: 1, Count: 1}, {ID: 2, Count: 1}}})
	m.Put(Update{Incidents: []rules.Incident{{ID: 1, Count: 5}, {ID: 3, Count: 1}}, Dropped: 2})
	st := Status{Host: "a"}
	m.Put(Update{Status: &st})
	st.Host = "b" // the mailbox keeps its own copy
	u, ok := m.Take()
	if !ok {
		t.Fatal("nothing to take")
	}
	if len(u.Events) != 3 || u.Events[2].PID != 3 {
		t.Errorf("events %+v, want pids 1-3", u.Events)
	}
	if len(u.Skipped) != 2 || u.Skipped[0] != 1 || u.Skipped[1] != 2 {
		t.Errorf("skipped %v, want [1 2] (the index of pid 4 is gone with it)", u.Skipped)
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
	m.Put(Update{Events: []event.Event{ev(9)}})
	if m.Stalled(now.Add(time.Second), 2*time.Second) || !m.Stalled(now.Add(3*time.Second), 2*time.Second) {
		t.Error("Stalled does not follow the last delivery")
	}
}
