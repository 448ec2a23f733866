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

// inbox sits between a subscription and the model. A goroutine puts every
// update in it without ever waiting for the UI; the model drains it as soon
// as something arrives, at most once a frame (Options.Tick). Its events are
// a queue.Queue: when the UI falls behind, the oldest pending events are
// dropped and counted, so memory stays flat and the reader of the
// subscription never blocks on rendering.
type inbox struct {
	host    int // index of the host whose subscription fills it
	items   *queue.Queue[streamItem]
	mu      sync.Mutex
	pending batch // everything but the items
}

func newInbox(host, maxEvents int) *inbox {
	return &inbox{host: host, items: queue.New[streamItem](maxEvents)}
}

// put adds one update. It is called from the subscription pump.
func (b *inbox) put(u api.Update) {
	b.mu.Lock()
	p := &b.pending
	p.incidents = append(p.incidents, u.Incidents...)
	if u.Status != nil {
		st := *u.Status
		p.status = &st
	}
	b.mu.Unlock()
	b.items.AddDropped(u.Dropped)
	items := make([]streamItem, len(u.Events))
	for i := range u.Events {
		items[i] = streamItem{host: b.host, ev: u.Events[i].Event, skipped: u.Events[i].Skip != nil}
		if s := u.Events[i].Skip; s != nil {
			items[i].skip = *s
		}
	}
	b.items.Push(items...)
	b.items.Signal() // incidents or a status alone wake the model too
}

// close records that the subscription ended.
func (b *inbox) close(err error) {
	b.mu.Lock()
	b.pending.closed, b.pending.err = true, err
	b.mu.Unlock()
	b.items.Signal()
}

// batch is everything an inbox held at one tick.
type batch struct {
	items     []streamItem
	incidents []rules.Incident
	status    *api.Status
	dropped   uint64
	closed    bool
	err       error
}

// take hands over what is pending and leaves the inbox empty.
func (b *inbox) take() batch {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := b.pending
	b.pending = batch{}
	var dropped uint64
	out.items, dropped = b.items.Take(nil)
	out.dropped += dropped
	return out
}

// tickMsg carries one drained batch; gen ties it to the subscription it
// belongs to so a stale tick after a reconnect is ignored.
type tickMsg struct {
	batch
	host int
	gen  int
	at   time.Time
}

// subscribedMsg reports the result of a Subscribe call.
type subscribedMsg struct {
	host int
	gen  int
	err  error
}

// drainNext returns a command that waits until the inbox has something,
// and at least d (one frame) after the previous drain at last, resolves the
// user names the batch needs (I/O, so here and not in Update) and hands
// the batch over. No ticker runs: an idle subscription costs nothing, and
// a batch reaches the model within a frame of its arrival.
func drainNext(ctx context.Context, d time.Duration, last time.Time, box *inbox, users *userCache, gen int) tea.Cmd {
	return func() tea.Msg {
		select {
		case <-box.items.Ready():
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
			uids = eventUIDs(&b.incidents[i].Process, uids)
		}
		users.resolve(uids)
		return tickMsg{batch: b, host: box.host, gen: gen, at: time.Now()}
	}
}

// subscribe opens a subscription and starts the goroutine that copies its
// updates into box until ctx ends or the channel closes.
func subscribe(ctx context.Context, svc api.Service, after rules.ID, box *inbox, gen int) tea.Cmd {
	return func() tea.Msg {
		ch, err := svc.Subscribe(ctx, after)
		if err != nil {
			return subscribedMsg{host: box.host, gen: gen, err: err}
		}
		go func() {
			for u := range ch {
				box.put(u)
			}
			box.close(ctx.Err())
		}()
		return subscribedMsg{host: box.host, gen: gen}
	}
}
