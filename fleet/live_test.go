package fleet

import (
	"context"
	"encoding/json"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// TestLiveEventsOnlyUnderLease: an agent publishes no events while nobody
// holds a lease, streams them once a viewer takes one, and stops when the
// lease runs out without renewal.
func TestLiveEventsOnlyUnderLease(t *testing.T) {
	c := startCluster(t, 1)
	urls := c.urls()
	setupStreams(t, urls, 1)
	v := newViewer(t, urls)
	startReplayAgent(t, "live", urls, capture("live", 2000), 100)

	var events atomic.Int64
	nc, err := nats.Connect(urls)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	sub, err := nc.Subscribe(EventsSubject("live"), func(m *nats.Msg) {
		var lm LiveMsg
		if json.Unmarshal(m.Data, &lm) == nil {
			events.Add(int64(len(lm.Events)))
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	waitFor(t, 10*time.Second, "the agent raising incidents", func() bool { return len(v.Incidents("live")) > 20 })
	time.Sleep(time.Second)
	if n := events.Load(); n != 0 {
		t.Fatalf("%d events published with no lease", n)
	}
	var lease LeaseReply
	if err := v.Call(context.Background(), "live", OpLive, LeaseRequest{Seconds: 1}, &lease); err != nil {
		t.Fatal(err)
	}
	if lease.Subject != EventsSubject("live") || time.Until(lease.Until) > 2*time.Second {
		t.Fatalf("lease %+v", lease)
	}
	waitFor(t, 5*time.Second, "events under the lease", func() bool { return events.Load() > 10 })
	time.Sleep(time.Until(lease.Until) + 500*time.Millisecond)
	after := events.Load()
	time.Sleep(time.Second)
	if n := events.Load(); n != after {
		t.Fatalf("events kept coming after the lease ended: %d then %d", after, n)
	}
	t.Logf("%d events while the lease held, none before or after", after)
}
