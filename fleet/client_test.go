package fleet

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/procwatch/procwatch/rules"
)

// TestClientHoldsABoundedWindow: a viewer that reads a stream holding more
// incidents than its MaxIncidents keeps the newest within the bound (all
// of one class here, so the oldest go first), counts what it let go, and
// the stream itself still holds everything.
func TestClientHoldsABoundedWindow(t *testing.T) {
	c := startCluster(t, 1)
	urls := c.urls()
	setupStreams(t, urls, 1)
	a := startReplayAgent(t, "alpha", urls, capture("alpha", 50), 0)
	waitFor(t, 20*time.Second, "alpha settled", a.settled)
	local := a.localIncidents(t)
	if len(local) < 30 {
		t.Fatalf("the capture raised %d incidents; the test needs more than the bound", len(local))
	}

	nc, err := nats.Connect(urls)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	const bound = 10
	cl, err := NewClient(ctx, nc, ClientOptions{Caller: "tester", MaxIncidents: bound})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.WaitCaughtUp(ctx, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	held := cl.Incidents("alpha")
	if len(held) > bound || len(held)+cl.Evicted() != len(local) {
		t.Fatalf("held %d and evicted %d of %d incidents, want at most %d held and the rest counted", len(held), cl.Evicted(), len(local), bound)
	}
	var ids []rules.ID
	for id := range local {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	newest := ids[len(ids)-len(held):]
	for i, inc := range held { // newest first
		if want := newest[len(newest)-1-i]; inc.ID != want {
			t.Fatalf("held incident %d is %s, want %s: the oldest of one class go first", i, inc.ID, want)
		}
	}
	if n := len(caughtUpViewer(t, urls).Incidents("alpha")); n != len(local) {
		t.Fatalf("a viewer with the default bound sees %d of %d: the stream lost what the bounded one let go", n, len(local))
	}
}

// caughtUpViewer is a caught-up client with the default bound.
func caughtUpViewer(t *testing.T, urls string) *Client {
	t.Helper()
	v := newViewer(t, urls)
	if err := v.WaitCaughtUp(context.Background(), 20*time.Second); err != nil {
		t.Fatal(err)
	}
	return v.Client
}
