package fleet

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/procwatch/procwatch/api"
	"github.com/procwatch/procwatch/rules"
)

// statusOf returns the status the fleet view holds for an incident.
func statusOf(v *viewer, host string, id rules.ID) rules.Status {
	for _, inc := range v.Incidents(host) {
		if inc.ID == id {
			return inc.Status
		}
	}
	return ""
}

// TestControlAndSkips drives two replayed agents through the fleet: the
// control service switches monitoring off on one, acknowledges an incident
// (recorded as the NATS caller, and the new status reaches the stream), a
// fleet-wide skip masks what it covers on both hosts within a second or
// so, a host skip only on its host, and removing a skip unmasks and leaves
// its trail in the bucket's history.
func TestControlAndSkips(t *testing.T) {
	c := startCluster(t, 1)
	urls := c.urls()
	setupStreams(t, urls, 1)
	v := newViewer(t, urls)
	a := startReplayAgent(t, "alpha", urls, capture("alpha", 20), 0)
	b := startReplayAgent(t, "beta", urls, capture("beta", 20), 0)
	waitFor(t, 20*time.Second, "both agents settled", func() bool { return a.settled() && b.settled() })
	waitFor(t, 10*time.Second, "both hosts' status", func() bool {
		return v.Host("alpha", false).Conn().State.String() == "connected" && v.Host("beta", false).Conn().State.String() == "connected"
	})
	ctx := context.Background()

	// The status message carries what the Hosts screen shows.
	statusOK := func(st *StatusMsg, name string) bool {
		return st != nil && st.Host == name && st.FleetHost == name && st.Version == "1.0.0" && st.Monitoring &&
			st.Sensor.Mode == "replay" && st.Sensor.Exec == 20 && st.OpenBySev["high"]+st.OpenBySev["medium"] == 16 &&
			st.Publish.Connected && st.Publish.Pending == 0 && st.Publish.Acked > 0 && st.Skips.Watching
	}
	waitFor(t, 10*time.Second, "complete status messages from both hosts", func() bool {
		ok := 0
		for _, h := range v.Hosts() {
			if statusOK(h.Status, h.Name) {
				ok++
			}
		}
		return ok == 2
	})

	// Monitoring off on one host, through its control service.
	if err := v.Host("beta", false).SetMonitoring(ctx, false); err != nil {
		t.Fatal(err)
	}
	if st, err := b.local.Status(ctx); err != nil || st.Monitoring {
		t.Fatalf("beta monitoring after off: %v %v", st.Monitoring, err)
	}
	if st, err := v.Host("alpha", false).Status(ctx); err != nil || !st.Monitoring {
		t.Fatalf("alpha status: %+v %v", st, err)
	}

	// Acknowledge: recorded as the NATS caller, and published.
	incs := v.Incidents("alpha")
	if len(incs) != 16 {
		t.Fatalf("alpha has %d incidents in the view, want 16", len(incs))
	}
	id := incs[0].ID
	if err := v.Host("alpha", false).SetStatus(ctx, []rules.ID{id}, rules.StatusAcknowledged); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the acknowledgement in the fleet view", func() bool { return statusOf(v, "alpha", id) == rules.StatusAcknowledged })
	local := a.localIncidents(t)[id]
	if n := len(local.History); n == 0 || local.History[n-1].By.User != "nats:tester" || local.History[n-1].By.Via != "nats" {
		t.Fatalf("acknowledgement recorded as %+v, want the NATS caller nats:tester", local.History)
	}

	// A fleet-wide skip masks on both hosts; a host skip on one only.
	key, err := v.AddFleetSkip(ctx, "", rules.Skip{Kind: rules.SkipUser, Value: "1000", Note: "test payloads (a command skip never covers a binary in /tmp)"})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	waitFor(t, 10*time.Second, "the fleet skip masking on both hosts", func() bool {
		for _, inc := range v.Incidents("") {
			if inc.Status == rules.StatusOpen {
				return false
			}
		}
		return true
	})
	t.Logf("fleet skip applied on both hosts and seen masked in the view after %s", time.Since(start).Round(time.Millisecond))
	for _, ra := range []*replayAgent{a, b} {
		sk, _ := ra.local.Skips(ctx)
		found := false
		for _, s := range sk {
			if strings.Contains(s.Note, key) {
				found = true
			}
		}
		if !found {
			t.Errorf("%s: no local copy of fleet skip %s in %+v", ra.host, key, sk)
		}
	}
	if err := v.RemoveFleetSkip(ctx, key); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the removal unmasking", func() bool {
		n := 0
		for _, inc := range v.Incidents("") {
			if inc.Status == rules.StatusOpen {
				n++
			}
		}
		return n == 31 // 32 incidents, one acknowledged
	})
	hkey, err := v.AddFleetSkip(ctx, "beta", rules.Skip{Kind: rules.SkipUser, Value: "1000"})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the host skip masking beta", func() bool {
		open, _ := b.local.Incidents(ctx, api.Query{Status: rules.StatusOpen})
		return len(open) == 0
	})
	if open, _ := a.local.Incidents(ctx, api.Query{Status: rules.StatusOpen}); len(open) != 15 {
		t.Errorf("a skip for beta changed alpha: %d open, want 15", len(open))
	}

	// The history names who added and removed what.
	hist, err := v.FleetSkips(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	var trail []string
	for _, e := range hist {
		switch {
		case e.Deleted:
			trail = append(trail, "deleted "+e.Key)
		case e.Skip.Removed:
			trail = append(trail, "removed "+e.Key+" by "+e.Skip.RemovedBy)
		default:
			trail = append(trail, "added "+e.Key+" by "+e.Skip.Skip.AddedBy)
		}
	}
	want := []string{"added " + key + " by tester", "removed " + key + " by tester", "deleted " + key, "added " + hkey + " by tester"}
	if strings.Join(trail, "\n") != strings.Join(want, "\n") {
		t.Errorf("history:\n%s\nwant:\n%s", strings.Join(trail, "\n"), strings.Join(want, "\n"))
	}
	live, _ := v.FleetSkips(ctx, false)
	if len(live) != 1 || live[0].Key != hkey || live[0].Host != "beta" {
		t.Errorf("skips in force: %+v, want only %s for beta", live, hkey)
	}
}
