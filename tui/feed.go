package tui

import (
	"context"
	"sync"
	"time"

	tea "charm.land/bubbletea/v2"

	"github.com/procwatch/procwatch/rules"
	"github.com/procwatch/procwatch/service"
)

// inbox sits between a subscription and the model. A goroutine appends
// every update to it without ever waiting for the UI; a tick drains it in
// one message. It is bounded: when the UI falls behind, the oldest pending
// events are dropped and counted, so memory stays flat and the reader of
// the subscription never blocks on rendering.
type inbox struct {
	host      int // index of the host whose subscription fills it
	maxEvents int
	mu        sync.Mutex
	pending   batch
}

func newInbox(host, maxEvents int) *inbox {
	return &inbox{host: host, maxEvents: maxEvents}
}

// put adds one update. It is called from the subscription pump.
func (b *inbox) put(u service.Update) {
	b.mu.Lock()
	defer b.mu.Unlock()
	p := &b.pending
	for i := range u.Events {
		p.items = append(p.items, streamItem{host: b.host, ev: u.Events[i].Event, skipped: u.Events[i].Skip != nil})
	}
	if over := len(p.items) - b.maxEvents; over > 0 {
		p.items = append(p.items[:0], p.items[over:]...)
		p.dropped += uint64(over)
	}
	p.incidents = append(p.incidents, u.Incidents...)
	if u.Status != nil {
		st := *u.Status
		p.status = &st
	}
	p.dropped += u.Dropped
}

// close records that the subscription ended.
func (b *inbox) close(err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.pending.closed, b.pending.err = true, err
}

// batch is everything an inbox held at one tick.
type batch struct {
	items     []streamItem
	incidents []rules.Incident
	status    *service.Status
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

// drainEvery returns a command that waits one tick, resolves the user names
// the batch needs (I/O, so here and not in Update) and hands the batch over.
func drainEvery(d time.Duration, box *inbox, users *userCache, gen int) tea.Cmd {
	return tea.Tick(d, func(t time.Time) tea.Msg {
		b := box.take()
		var uids []uint32
		for i := range b.items {
			uids = eventUIDs(&b.items[i].ev, uids)
		}
		for i := range b.incidents {
			uids = eventUIDs(&b.incidents[i].Process, uids)
		}
		users.resolve(uids)
		return tickMsg{batch: b, host: box.host, gen: gen, at: t}
	})
}

// subscribe opens a subscription and starts the goroutine that copies its
// updates into box until ctx ends or the channel closes.
func subscribe(ctx context.Context, svc service.Service, after rules.ID, box *inbox, gen int) tea.Cmd {
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
