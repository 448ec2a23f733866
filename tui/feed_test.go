package tui

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"

	"github.com/procwatch/procwatch/api"
	"github.com/procwatch/procwatch/api/servicetest"
	"github.com/procwatch/procwatch/rules"
)

// TestDrainWaitsForEventsNotATick: the drain command returns nothing while
// the inbox is empty (no ticker polls it) and hands over an update, with
// each event's skip verdict, once one arrives; cancelling the UI's context
// ends a waiting drain.
func TestDrainWaitsForEventsNotATick(t *testing.T) {
	box := newInbox(8, 8)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	msgs := make(chan tea.Msg, 1)
	go func() { msgs <- drainNext(ctx, time.Millisecond, time.Time{}, box, newUserCache(nil))() }()
	select {
	case m := <-msgs:
		t.Fatalf("drain returned %+v with nothing in the inbox", m)
	case <-time.After(100 * time.Millisecond):
	}
	evs := api.Wrap(servicetest.ExecEvent(t0, 1, 1000, "/usr/bin/a"), servicetest.ExecEvent(t0, 2, 1000, "/usr/bin/b"))
	evs[1].Skip = &rules.SkipHit{Rule: "r", By: rules.SkipByAdded}
	box.port(0, 3).put(api.Update{Events: evs, Dropped: 5})
	var m tea.Msg
	select {
	case m = <-msgs:
	case <-time.After(10 * time.Second):
		t.Fatal("drain never returned after an update arrived")
	}
	fm, ok := m.(frameMsg)
	if !ok || len(fm.items) != 2 || fm.items[0].gen != 3 || len(fm.hosts) != 1 || fm.hosts[0].dropped != 5 || fm.hosts[0].gen != 3 {
		t.Fatalf("got %+v, want both events and 5 dropped for gen 3", m)
	}
	if fm.items[0].skipped || !fm.items[1].skipped {
		t.Errorf("skipped = %v, %v; want only the second", fm.items[0].skipped, fm.items[1].skipped)
	}
	if d := eventDetail(&fm.items[1], newUserCache(nil), time.UTC); !strings.Contains(d, "matched rule r but an added skip (skip list) suppressed it") {
		t.Errorf("the detail does not say which skip:\n%s", d)
	}
	go func() { msgs <- drainNext(ctx, time.Millisecond, time.Now(), box, newUserCache(nil))() }()
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

// TestInboxDropsOldest: past its bound the inbox keeps the newest rows and
// counts the rest; what the subscription reported lost stays its host's.
func TestInboxDropsOldest(t *testing.T) {
	box := newInbox(3, 8)
	for pid := uint32(1); pid <= 5; pid++ {
		box.port(0, 1).put(api.Update{Events: api.Wrap(servicetest.ExecEvent(t0, pid, 1000, "/usr/bin/a")), Dropped: 1})
	}
	b := box.take()
	if len(b.items) != 3 || b.items[0].ev.PID != 3 || b.items[2].ev.PID != 5 || b.dropped != 2 {
		t.Fatalf("items %d (first pid %d), dropped %d; want pids 3-5 and 2 dropped here", len(b.items), b.items[0].ev.PID, b.dropped)
	}
	if len(b.hosts) != 1 || b.hosts[0].dropped != 5 {
		t.Fatalf("host news %+v, want 5 dropped upstream", b.hosts)
	}
}

// fleetIncident is incident i of host h, with an id of its own.
func fleetIncident(h, i int) rules.Incident {
	at := t0.Add(time.Duration(i) * time.Millisecond)
	ev := servicetest.ExecEvent(at, uint32(1000+i), 1000, fmt.Sprintf("/tmp/h%d-%d", h, i))
	return servicetest.IncidentFor(rules.ID(at.UnixNano()), fmt.Sprintf("h%02d", h), "tmp-exec", rules.TypeBinExecution, rules.SeverityMedium, ev, fmt.Sprintf("ran h%d-%d", h, i))
}

// TestInboxCoalescesHosts: updates of many hosts, arriving one by one, are
// taken as one batch: every incident and event, the latest status of each
// host, and a subscription that ended, each tied to its generation.
func TestInboxCoalescesHosts(t *testing.T) {
	const hosts, each = 20, 10
	box := newInbox(1000, 1000)
	for i := range each {
		for h := range hosts {
			st := api.Status{Host: fmt.Sprintf("h%02d", h), Time: t0.Add(time.Duration(i) * time.Second)}
			box.port(h, 1).put(api.Update{Incidents: []rules.Incident{fleetIncident(h, i)}, Status: &st,
				Events: api.Wrap(servicetest.ExecEvent(t0, uint32(h*100+i), 1000, "/usr/bin/a"))})
		}
	}
	box.port(7, 2).close(nil)
	box.port(7, 1).put(api.Update{Status: &api.Status{Host: "late"}}) // the replaced subscription, late
	<-box.ready                                                       // as the drain does
	b := box.take()
	if len(b.incidents) != hosts*each || len(b.items) != hosts*each || b.left != 0 {
		t.Fatalf("one take: %d incidents, %d events, %d left; want %d, %d, 0", len(b.incidents), len(b.items), b.left, hosts*each, hosts*each)
	}
	if len(b.hosts) != hosts {
		t.Fatalf("news of %d hosts, want %d", len(b.hosts), hosts)
	}
	for _, n := range b.hosts {
		switch {
		case n.host == 7 && (!n.closed || n.gen != 2 || n.status != nil):
			t.Errorf("host 7: %+v, want the end of generation 2, which replaced what generation 1 sent before and after", n)
		case n.host != 7 && (n.status == nil || !n.status.Time.Equal(t0.Add((each-1)*time.Second))):
			t.Errorf("host %d: status %+v, want only the latest", n.host, n.status)
		}
	}
	select {
	case <-box.ready:
		t.Error("the inbox is still ready after everything was taken")
	default:
	}
}

// TestInboxFrameBudget: a frame takes at most frameIncidents incidents;
// the rest waits (the inbox stays ready), and what the bounded queue must
// drop is counted and shown in the header.
func TestInboxFrameBudget(t *testing.T) {
	box := newInbox(10, frameIncidents+500)
	var incs []rules.Incident
	for i := range frameIncidents + 700 {
		incs = append(incs, fleetIncident(1, i))
	}
	box.port(1, 1).put(api.Update{Incidents: incs})
	b := box.take()
	if len(b.incidents) != frameIncidents || b.left != 500 || b.incDropped != 200 {
		t.Fatalf("first frame: %d incidents, %d left, %d dropped; want %d, 500, 200", len(b.incidents), b.left, b.incDropped, frameIncidents)
	}
	if b.incidents[0].inc.ID != incs[200].ID {
		t.Errorf("the oldest were not the ones dropped")
	}
	select {
	case <-box.ready:
	default:
		t.Fatal("the inbox is not ready although 500 incidents wait")
	}
	if b2 := box.take(); len(b2.incidents) != 500 || b2.left != 0 || b2.incDropped != 0 {
		t.Fatalf("second frame: %d incidents, %d left, %d dropped; want 500, 0, 0", len(b2.incidents), b2.left, b2.incDropped)
	}

	// The model shows the drop.
	list := []Host{{Name: "h00", Service: servicetest.New("h00", nil)}, {Name: "h01", Service: servicetest.New("h01", nil)}}
	m := NewHosts(t.Context(), list, testOptions())
	m.resize(160, 48)
	m.Update(frameMsg{batch: b})
	if got := ansi.Strip(m.View().Content); !strings.Contains(got, "ui dropped 200 incidents · ui 500 behind") {
		t.Errorf("the header does not show the incidents the UI dropped and what waits:\n%s", got)
	}
	m.Update(frameMsg{})
	if got := ansi.Strip(m.View().Content); strings.Contains(got, "behind") || !strings.Contains(got, "ui dropped 200 incidents") {
		t.Errorf("caught up, the header should keep the drops and lose the backlog:\n%s", got)
	}
}

// frameCounter wraps the model and counts, under a lock, the frames
// handled between sending a key and its handling that were taken from the
// inbox before the key was sent: those it waited behind. (A frame taken
// after the send can only come first when the sender was descheduled
// before its send reached the program; it is not queued ahead.)
type frameCounter struct {
	m       *Model
	mu      *sync.Mutex
	frames  *int
	sentAt  *time.Time // zero when no key is on its way
	ahead   *int
	between *[]int
	handled chan struct{}
}

func (p frameCounter) Init() tea.Cmd { return p.m.Init() }

func (p frameCounter) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	p.mu.Lock()
	switch msg := msg.(type) {
	case frameMsg:
		*p.frames++
		if !p.sentAt.IsZero() && msg.at.Before(*p.sentAt) {
			*p.ahead++
		}
	case tea.KeyPressMsg:
		if msg.Code == tea.KeyDown && !p.sentAt.IsZero() {
			*p.between = append(*p.between, *p.ahead)
			*p.sentAt, *p.ahead = time.Time{}, 0
			defer func() { p.handled <- struct{}{} }()
		}
	}
	p.mu.Unlock()
	_, cmd := p.m.Update(msg)
	return p, cmd
}

func (p frameCounter) View() tea.View { return p.m.View() }

// TestKeyNotQueuedBehindUpdates floods a real program with incidents,
// events and status from 8 hosts and sends keys meanwhile: the updates
// reach the model as one message a frame at most, so a key waits behind
// at most one frame (the one already on its way), however much is
// pending.
func TestKeyNotQueuedBehindUpdates(t *testing.T) {
	const nHosts = 8
	fakes := make([]*servicetest.Fake, nHosts)
	list := make([]Host, nHosts)
	for h := range fakes {
		fakes[h] = servicetest.New(fmt.Sprintf("h%02d", h), nil)
		list[h] = Host{Name: fmt.Sprintf("h%02d", h), Service: fakes[h]}
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	opts := testOptions()
	opts.Tick = 20 * time.Millisecond
	m := NewHosts(ctx, list, opts)
	var (
		mu      sync.Mutex
		frames  int
		sentAt  time.Time
		ahead   int
		between []int
	)
	p := frameCounter{m: m, mu: &mu, frames: &frames, sentAt: &sentAt, ahead: &ahead, between: &between, handled: make(chan struct{}, 1)}
	prog := tea.NewProgram(p, tea.WithInput(nil), tea.WithOutput(devNullT(t)), tea.WithWindowSize(160, 48), tea.WithContext(ctx))
	done := make(chan struct{})
	go func() { prog.Run(); close(done) }()
	defer func() { cancel(); <-done }()

	// The flood: every host publishes as fast as it can until the test ends.
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	for h, f := range fakes {
		wg.Go(func() {
			for i := 0; ctx.Err() == nil; i++ {
				st := api.Status{Host: fmt.Sprintf("h%02d", h), Time: t0.Add(time.Duration(i) * time.Second)}
				u := servicetest.LoadBatch(t0, uint32(i*100), 100)
				if i%10 == 0 {
					u.Incidents = []rules.Incident{fleetIncident(h, i)}
				}
				u.Status = &st
				f.Publish(u)
				if i%50 == 0 {
					time.Sleep(time.Millisecond) // let the fake's subscriber drain
				}
			}
		})
	}
	waitFrames := func(n int) {
		for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
			mu.Lock()
			f := frames
			mu.Unlock()
			if f >= n {
				return
			}
		}
		t.Fatalf("fewer than %d frames in 30s", n)
	}
	waitFrames(3)
	for range 20 {
		mu.Lock()
		sentAt = time.Now()
		mu.Unlock()
		prog.Send(tea.KeyPressMsg{Code: tea.KeyDown})
		select {
		case <-p.handled:
		case <-time.After(30 * time.Second):
			t.Fatal("a key was not handled within 30 s")
		}
		time.Sleep(7 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	for i, n := range between {
		if n > 1 {
			t.Errorf("key %d waited behind %d frames, want at most 1", i, n)
		}
	}
	if frames < 5 {
		t.Errorf("only %d frames during the flood", frames)
	}
}

func devNullT(t *testing.T) *os.File {
	f, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}
