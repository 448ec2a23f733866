package tui

import (
	"context"
	"sync"
	"time"

	tea "charm.land/bubbletea/v2"

	"github.com/procwatch/procwatch/api"
	"github.com/procwatch/procwatch/queue"
	"github.com/procwatch/procwatch/rules"
)

// The UI coalesces: every host's subscription puts its updates in one
// inbox, and one drain hands the model at most one message per frame
// (Options.Tick, 50 ms by default) carrying what arrived from all hosts.
// With 200 hosts the model sees 20 update messages a second, not one per
// host per frame, so a key never waits behind more than one frame's work.
// A frame takes at most frameIncidents incidents and frameEvents events;
// the rest waits in the inbox's bounded queues for the next frame, and
// what those queues have to drop (the oldest) is counted and shown in the
// header. Incidents the UI drops are still in their host's store.

// Per-frame budgets: what one Update may apply. At 20 frames a second
// that is 40,000 incidents and 50,000 events a second, ten times the fleet
// scale target, while one frame's Update stays within a few milliseconds.
const (
	frameIncidents = 2_000
	frameEvents    = 2_500
)

// inboxIncidents bounds the incidents waiting for a frame (about 26 MB):
// 8 s of the fleet scale target's 4,000 a second, while a frame takes up
// to 40,000 a second.
const inboxIncidents = 32_768

// inbox sits between the subscriptions and the model. Goroutines put every
// update in it without ever waiting for the UI; the model drains it at
// most once a frame. Events and incidents are queue.Queues shared by all
// hosts (drop-oldest, counted); status, upstream drops and the end of a
// subscription are kept per host, the latest status only.
type inbox struct {
	events    *queue.Queue[streamItem]
	incidents *queue.Queue[hostIncident]
	ready     chan struct{} // one token: something arrived

	mu    sync.Mutex
	hosts map[int]*hostNews // per host, what is not in the queues
}

// hostIncident is an incident with the subscription it came from.
type hostIncident struct {
	host, gen int
	inc       rules.Incident
}

// hostNews is what one host's subscription reported besides events and
// incidents since the last drain.
type hostNews struct {
	host, gen int
	status    *api.Status
	dropped   uint64 // events lost upstream (the agent's queues)
	closed    bool
	err       error
}

// newInbox returns an inbox holding at most maxEvents events and
// maxIncidents incidents for the model.
func newInbox(maxEvents, maxIncidents int) *inbox {
	return &inbox{
		events:    queue.New[streamItem](maxEvents),
		incidents: queue.New[hostIncident](maxIncidents),
		ready:     make(chan struct{}, 1),
		hosts:     map[int]*hostNews{},
	}
}

func (b *inbox) signal() {
	select {
	case b.ready <- struct{}{}:
	default:
	}
}

// port is one subscription's way into the inbox.
type port struct {
	b         *inbox
	host, gen int
}

func (b *inbox) port(host, gen int) port { return port{b: b, host: host, gen: gen} }

// news returns host's entry for this generation; b.mu held. A newer
// generation replaces what an older one left; what an older one sends
// after a newer one began goes nowhere (the model would ignore it).
func (p port) news() *hostNews {
	n := p.b.hosts[p.host]
	if n != nil && n.gen > p.gen {
		return &hostNews{}
	}
	if n == nil || n.gen != p.gen {
		n = &hostNews{host: p.host, gen: p.gen}
		p.b.hosts[p.host] = n
	}
	return n
}

// put adds one update. It is called from the subscription pump.
func (p port) put(u api.Update) {
	if u.Status != nil || u.Dropped > 0 {
		p.b.mu.Lock()
		n := p.news()
		if u.Status != nil {
			st := *u.Status
			n.status = &st
		}
		n.dropped += u.Dropped
		p.b.mu.Unlock()
	}
	if len(u.Incidents) > 0 {
		incs := make([]hostIncident, len(u.Incidents))
		for i := range u.Incidents {
			incs[i] = hostIncident{host: p.host, gen: p.gen, inc: u.Incidents[i]}
		}
		p.b.incidents.Push(incs...)
	}
	if len(u.Events) > 0 {
		items := make([]streamItem, len(u.Events))
		for i := range u.Events {
			items[i] = streamItem{host: p.host, gen: p.gen, ev: u.Events[i].Event, skipped: u.Events[i].Skip != nil}
			if s := u.Events[i].Skip; s != nil {
				items[i].skip = *s
			}
		}
		p.b.events.Push(items...)
	}
	p.b.signal()
}

// close records that the subscription ended.
func (p port) close(err error) {
	p.b.mu.Lock()
	n := p.news()
	n.closed, n.err = true, err
	p.b.mu.Unlock()
	p.b.signal()
}

// batch is what one frame takes from the inbox.
type batch struct {
	items     []streamItem
	incidents []hostIncident
	hosts     []hostNews
	// dropped and incDropped count what the inbox's own queues dropped
	// since the last frame (events, incidents), of whichever hosts.
	dropped, incDropped uint64
	// left is how much stays queued for the next frames.
	left int
}

// take hands over at most one frame's worth and leaves the rest queued;
// when something is left the inbox stays ready, so the next frame takes it.
func (b *inbox) take() batch {
	var out batch
	out.incidents, out.incDropped = b.incidents.TakeN(nil, frameIncidents)
	out.items, out.dropped = b.events.TakeN(nil, frameEvents)
	b.mu.Lock()
	for _, n := range b.hosts {
		out.hosts = append(out.hosts, *n)
	}
	clear(b.hosts)
	b.mu.Unlock()
	if out.left = b.incidents.Len() + b.events.Len(); out.left > 0 {
		b.signal()
	}
	return out
}

// frameMsg carries one frame's batch of every host.
type frameMsg struct {
	batch
	at time.Time
}

// subscribedMsg reports the result of a Subscribe call.
type subscribedMsg struct {
	host int
	gen  int
	err  error
}

// drainNext returns a command that waits until the inbox has something,
// and at least d (one frame) after the previous drain, resolves the user
// names the batch needs (I/O, so here and not in Update) and hands the
// batch over. No ticker runs: an idle UI costs nothing, and a batch
// reaches the model within a frame of its arrival.
func drainNext(ctx context.Context, d time.Duration, last time.Time, box *inbox, users *userCache) tea.Cmd {
	return func() tea.Msg {
		select {
		case <-box.ready:
		case <-ctx.Done():
			return nil
		}
		if wait := d - time.Since(last); wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return nil
			}
		}
		b := box.take()
		var uids []uint32
		for i := range b.items {
			uids = eventUIDs(&b.items[i].ev, uids)
		}
		for i := range b.incidents {
			uids = eventUIDs(&b.incidents[i].inc.Process, uids)
		}
		users.resolve(uids)
		return frameMsg{batch: b, at: time.Now()}
	}
}

// subscribe opens a subscription and starts the goroutine that copies its
// updates into the inbox until ctx ends or the channel closes.
func subscribe(ctx context.Context, svc api.Service, after rules.ID, p port) tea.Cmd {
	return func() tea.Msg {
		ch, err := svc.Subscribe(ctx, after)
		if err != nil {
			return subscribedMsg{host: p.host, gen: p.gen, err: err}
		}
		go func() {
			for u := range ch {
				p.put(u)
			}
			p.close(ctx.Err())
		}()
		return subscribedMsg{host: p.host, gen: p.gen}
	}
}
