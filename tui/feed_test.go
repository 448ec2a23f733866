package tui

import (
	"context"
	"strings"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"

	"github.com/procwatch/procwatch/api"
	"github.com/procwatch/procwatch/api/servicetest"
	"github.com/procwatch/procwatch/rules"
)

// TestDrainWaitsForEventsNotATick: the drain command returns nothing while
// the inbox is empty (no ticker polls it) and hands over an update, with
// each event's skip verdict, once one arrives; cancelling the UI's context
// ends a waiting drain.
func TestDrainWaitsForEventsNotATick(t *testing.T) {
	box := newInbox(0, 8)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	msgs := make(chan tea.Msg, 1)
	go func() { msgs <- drainNext(ctx, time.Millisecond, time.Time{}, box, newUserCache(nil), 3)() }()
	select {
	case m := <-msgs:
		t.Fatalf("drain returned %+v with nothing in the inbox", m)
	case <-time.After(100 * time.Millisecond):
	}
	evs := api.Wrap(servicetest.ExecEvent(t0, 1, 1000, "/usr/bin/a"), servicetest.ExecEvent(t0, 2, 1000, "/usr/bin/b"))
	evs[1].Skip = &rules.SkipHit{Rule: "r", By: rules.SkipByAdded}
	box.put(api.Update{Events: evs, Dropped: 5})
	var m tea.Msg
	select {
	case m = <-msgs:
	case <-time.After(10 * time.Second):
		t.Fatal("drain never returned after an update arrived")
	}
	tm, ok := m.(tickMsg)
	if !ok || tm.gen != 3 || len(tm.items) != 2 || tm.dropped != 5 {
		t.Fatalf("got %+v, want both events and 5 dropped for gen 3", m)
	}
	if tm.items[0].skipped || !tm.items[1].skipped {
		t.Errorf("skipped = %v, %v; want only the second", tm.items[0].skipped, tm.items[1].skipped)
	}
	if d := eventDetail(&tm.items[1], newUserCache(nil), time.UTC); !strings.Contains(d, "matched rule r but an added skip (skip list) suppressed it") {
		t.Errorf("the detail does not say which skip:\n%s", d)
	}
	go func() { msgs <- drainNext(ctx, time.Millisecond, time.Now(), box, newUserCache(nil), 3)() }()
	cancel()
	select {
	case m := <-msgs:
		if m != nil {
			t.Errorf("cancelled drain returned %+v", m)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a drain waiting on an empty inbox outlived the UI's context")
	}
}

// TestInboxDropsOldest: past its bound the inbox keeps the newest rows
// and counts the rest, adding them to what the subscription reported.
func TestInboxDropsOldest(t *testing.T) {
	box := newInbox(0, 3)
	for pid := uint32(1); pid <= 5; pid++ {
		box.put(api.Update{Events: api.Wrap(servicetest.ExecEvent(t0, pid, 1000, "/usr/bin/a")), Dropped: 1})
	}
	b := box.take()
	if len(b.items) != 3 || b.items[0].ev.PID != 3 || b.items[2].ev.PID != 5 || b.dropped != 2+5 {
		t.Fatalf("items %d (first pid %d), dropped %d; want pids 3-5 and 7 dropped", len(b.items), b.items[0].ev.PID, b.dropped)
	}
}
