package fleet

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	"github.com/procwatch/procwatch/api"
)

// maxLease caps one lease: a viewer that vanishes stops the events within
// this long.
const maxLease = 60 * time.Second

// LiveMsg is one batch of live events on procwatch.v1.<host>.events.
// Each event carries its verdict ("skip", when a skip suppressed a rule's
// match), as in api.Update.
type LiveMsg struct {
	Events  []api.Envelope `json:"events"`
	Dropped uint64         `json:"dropped,omitempty"`
}

// lease publishes the host's live events only while a viewer holds a
// lease: with none, the agent does not even subscribe to its pipeline, so
// nothing is spent per event when nobody watches.
type lease struct {
	a     *Agent
	mu    sync.Mutex
	until time.Time
	kick  chan struct{}
	once  sync.Once
}

func (l *lease) init() { l.once.Do(func() { l.kick = make(chan struct{}, 1) }) }

// extend renews the lease for d (capped) and returns when it ends.
func (l *lease) extend(d time.Duration) time.Time {
	l.init()
	d = min(max(d, time.Second), maxLease)
	l.mu.Lock()
	if u := time.Now().Add(d); u.After(l.until) {
		l.until = u
	}
	until := l.until
	l.mu.Unlock()
	select {
	case l.kick <- struct{}{}:
	default:
	}
	return until
}

func (l *lease) end() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.until
}

// run waits for a lease, streams while it holds, and stops at its end.
func (l *lease) run(ctx context.Context) {
	l.init()
	for {
		select {
		case <-l.kick:
		case <-ctx.Done():
			return
		}
		if time.Until(l.end()) > 0 {
			l.stream(ctx)
		}
	}
}

func (l *lease) stream(ctx context.Context) {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ch, err := l.a.cfg.Service.Subscribe(sctx, 0)
	if err != nil {
		l.a.log.Warn("live events: subscribe", "err", err)
		return
	}
	subj := EventsSubject(l.a.cfg.Host)
	t := time.NewTimer(time.Until(l.end()))
	defer t.Stop()
	for {
		select {
		case u, ok := <-ch:
			if !ok {
				return
			}
			if len(u.Events) == 0 && u.Dropped == 0 {
				continue
			}
			b, err := json.Marshal(LiveMsg{Events: u.Events, Dropped: u.Dropped})
			if err == nil {
				l.a.nc.Publish(subj, b)
			}
		case <-t.C:
			left := time.Until(l.end())
			if left <= 0 {
				return
			}
			t.Reset(left)
		case <-ctx.Done():
			return
		}
	}
}
