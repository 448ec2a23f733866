package fleet

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/procwatch/procwatch/rules"
)

// viewer is a fleet Client that counts what arrives.
type viewer struct {
	*Client
	nc   *nats.Conn
	mu   sync.Mutex
	dups int
	msgs map[string]int // host/id/rev -> deliveries
}

func newViewer(t testing.TB, urls string) *viewer {
	t.Helper()
	v := &viewer{msgs: map[string]int{}}
	nc, err := nats.Connect(urls, nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	v.nc = nc
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	v.Client, err = NewClient(ctx, nc, ClientOptions{Caller: "tester", OnIncident: func(host string, inc *rules.Incident, rev uint64, dup bool, _ time.Time) {
		v.mu.Lock()
		defer v.mu.Unlock()
		v.msgs[fmt.Sprintf("%s/%s/%d", host, inc.ID, rev)]++
		if dup {
			v.dups++
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { v.Close(); nc.Close() })
	return v
}

// checkExactlyOnce asserts that the view holds every stored incident of
// every agent in its stored version, nothing else, and that no message was
// delivered twice.
func (v *viewer) checkExactlyOnce(t *testing.T, agents []*replayAgent) {
	t.Helper()
	total := 0
	for _, ra := range agents {
		local := ra.localIncidents(t)
		seen := v.Incidents(ra.host)
		if len(seen) != len(local) {
			t.Errorf("%s: %d incidents in the fleet view, %d in its database", ra.host, len(seen), len(local))
		}
		for _, inc := range seen {
			l, ok := local[inc.ID]
			switch {
			case !ok:
				t.Errorf("%s: incident %s in the fleet view is not in its database", ra.host, inc.ID)
			case l.Count != inc.Count || l.Status != inc.Status:
				t.Errorf("%s: incident %s: view has count %d %s, database %d %s", ra.host, inc.ID, inc.Count, inc.Status, l.Count, l.Status)
			}
		}
		total += len(local)
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	for k, n := range v.msgs {
		if n != 1 {
			t.Errorf("message %s delivered %d times", k, n)
		}
	}
	if v.dups != 0 {
		t.Errorf("%d incident versions arrived twice", v.dups)
	}
	t.Logf("%d agents, %d incidents, %d messages, each delivered once", len(agents), total, len(v.msgs))
}

// TestLeaderKilled runs 10 replayed agents against a 3-node cluster and
// shuts the stream's leader down mid-run: every incident still arrives in
// the fleet view exactly once.
func TestLeaderKilled(t *testing.T) {
	c := startCluster(t, 3)
	urls := c.urls()
	setupStreams(t, urls, 3)
	v := newViewer(t, urls)

	const perAgent = 300
	var agents []*replayAgent
	for i := range 10 {
		host := fmt.Sprintf("host-%02d", i)
		agents = append(agents, startReplayAgent(t, host, urls, capture(host, perAgent), 100))
	}
	// Mid-run: about a third of the capture is played.
	waitFor(t, 30*time.Second, "a third of the incidents in the view", func() bool {
		return len(v.Incidents("")) >= 10*perAgent/4
	})
	nc, _ := nats.Connect(urls)
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	info, err := js.Stream(ctx, StreamName)
	cancel()
	nc.Close()
	if err != nil {
		t.Fatal(err)
	}
	leader := info.CachedInfo().Cluster.Leader
	before := len(v.Incidents(""))
	c.kill(leader)
	t.Logf("killed stream leader %s with %d incidents in the view", leader, before)

	waitFor(t, 90*time.Second, "every agent to play its capture and be acknowledged", func() bool {
		for _, ra := range agents {
			if !ra.settled() {
				return false
			}
		}
		return true
	})
	want := 10 * perAgent * 4 / 5
	waitFor(t, 30*time.Second, fmt.Sprintf("%d incidents in the view", want), func() bool { return len(v.Incidents("")) >= want })
	time.Sleep(500 * time.Millisecond) // let any duplicate arrive before counting
	v.checkExactlyOnce(t, agents)
}

// disconnectFor is how long TestDisconnectCatchUp cuts an agent off;
// PROCWATCH_FLEET_DISCONNECT=30s runs the full half minute.
func disconnectFor(t *testing.T) time.Duration {
	if s := os.Getenv("PROCWATCH_FLEET_DISCONNECT"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			t.Fatalf("PROCWATCH_FLEET_DISCONNECT: %v", err)
		}
		return d
	}
	return 6 * time.Second
}

// TestDisconnectCatchUp cuts one agent's TCP connection while it keeps
// raising incidents, restarts nothing, and lets it back: it catches up
// from its outbox with nothing missing and nothing twice.
func TestDisconnectCatchUp(t *testing.T) {
	c := startCluster(t, 3)
	urls := c.urls()
	setupStreams(t, urls, 3)
	v := newViewer(t, urls)
	p := newProxy(t, fmt.Sprintf("127.0.0.1:%d", c.opts[1].Port))
	cut := disconnectFor(t)
	rate := 50.0
	n := int(rate*(cut.Seconds()+4)) / 5 * 5
	ra := startReplayAgent(t, "cut-off", p.url(), capture("cut-off", n), rate)
	other := startReplayAgent(t, "steady", urls, capture("steady", n), rate)

	waitFor(t, 20*time.Second, "the first incidents", func() bool { return len(v.Incidents("cut-off")) > 0 })
	p.setCut(true)
	t.Logf("cut the agent off for %s", cut)
	time.Sleep(cut / 2)
	// Really disconnected: the fleet sees it stale and nothing new arrives.
	if ra.nc.IsConnected() || ra.agent.Stats().Connected {
		t.Fatal("agent still connected through a cut proxy")
	}
	stuck := len(v.Incidents("cut-off"))
	time.Sleep(cut / 2)
	if pend := ra.agent.Stats().Pending; pend == 0 {
		t.Fatal("nothing queued in the outbox while disconnected")
	}
	if n := len(v.Incidents("cut-off")); n != stuck {
		t.Fatalf("incidents arrived while cut off: %d then %d", stuck, n)
	}
	if h := v.Host("cut-off", false).Conn(); h.State.String() != "unreachable" {
		t.Errorf("cut-off host is %s in the fleet view, want unreachable (stale)", h.State)
	}
	queued := ra.agent.Stats().Pending
	p.setCut(false)
	t.Logf("%d incidents queued at reconnect", queued)
	waitFor(t, 60*time.Second, "both agents settled", func() bool { return ra.settled() && other.settled() })
	waitFor(t, 30*time.Second, "every incident in the view", func() bool { return len(v.Incidents("cut-off")) >= n*4/5 && len(v.Incidents("steady")) >= n*4/5 })
	time.Sleep(500 * time.Millisecond)
	v.checkExactlyOnce(t, []*replayAgent{ra, other})

	// Its watch of the skips bucket came back too.
	if _, err := v.AddFleetSkip(context.Background(), "", rules.Skip{Kind: rules.SkipUser, Value: "1000"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 15*time.Second, "the reconnected agent applying a fleet skip", func() bool { return ra.agent.skips.state().Applied == 1 })
}
