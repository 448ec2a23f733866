package api

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/procwatch/procwatch/queue"
	"github.com/procwatch/procwatch/rules"
)

// Default bounds of a Mailbox. Incidents are merged by ID, so their bound is
// only reached by a storm of distinct incidents; events are plain history
// and the first thing to give way.
const (
	DefaultMailboxEvents    = 8192
	DefaultMailboxIncidents = 65536
)

// Mailbox collects updates for one consumer that reads at its own pace. Put
// never blocks: events go into a queue.Queue (drop-oldest, counted),
// incidents are merged by ID keeping the latest version of each, and the
// latest status replaces the previous one. The producer (the sensor's
// reader, or a socket reader) therefore never waits for a slow consumer,
// and the consumer learns how much it lost from Update.Dropped.
type Mailbox struct {
	maxIncidents int
	events       *queue.Queue[Envelope]

	mu        sync.Mutex
	incidents []rules.Incident
	index     map[rules.ID]int // position of each pending incident
	status    *Status
	has       bool
	lostIncs  uint64 // incidents dropped since the last Take
	totalIncs atomic.Uint64
	lastTaken time.Time
}

// NewMailbox returns an empty mailbox with the given bounds; zero or
// negative bounds take the defaults.
func NewMailbox(maxEvents, maxIncidents int) *Mailbox {
	if maxEvents <= 0 {
		maxEvents = DefaultMailboxEvents
	}
	if maxIncidents <= 0 {
		maxIncidents = DefaultMailboxIncidents
	}
	return &Mailbox{
		maxIncidents: maxIncidents,
		events:       queue.New[Envelope](maxEvents),
		index:        make(map[rules.ID]int),
		lastTaken:    time.Now(),
	}
}

// Put merges u into the pending update. u's slices are not retained beyond
// their elements, which are copied.
func (m *Mailbox) Put(u Update) {
	if len(u.Events) == 0 && len(u.Incidents) == 0 && u.Status == nil && u.Dropped == 0 {
		return
	}
	m.mu.Lock()
	for _, inc := range u.Incidents {
		if i, ok := m.index[inc.ID]; ok {
			m.incidents[i] = inc
			continue
		}
		if len(m.incidents) >= m.maxIncidents {
			m.lostIncs++
			m.totalIncs.Add(1)
			continue
		}
		m.index[inc.ID] = len(m.incidents)
		m.incidents = append(m.incidents, inc)
	}
	if u.Status != nil {
		st := *u.Status
		m.status = &st
	}
	m.has = true
	m.mu.Unlock()
	// Events after the incidents: a consumer woken by the queue finds both.
	m.events.AddDropped(u.Dropped)
	m.events.Push(u.Events...)
	m.events.Signal()
}

// Ready is signalled (at most one token) after Put; the consumer then calls
// Take.
func (m *Mailbox) Ready() <-chan struct{} { return m.events.Ready() }

// Take removes and returns everything pending; ok is false when nothing is.
func (m *Mailbox) Take() (u Update, ok bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var dropped uint64
	u.Events, dropped = m.events.Take(nil)
	if !m.has && len(u.Events) == 0 && dropped == 0 {
		return Update{}, false
	}
	u.Incidents, u.Status = m.incidents, m.status
	u.Dropped = dropped + m.lostIncs
	m.incidents, m.status, m.lostIncs, m.has = nil, nil, 0, false
	clear(m.index)
	return u, true
}

// Dropped is how many events and incidents this mailbox itself dropped
// over its life (not those reported to it by an upstream Update.Dropped),
// for Status and metrics.
func (m *Mailbox) Dropped() uint64 { return m.events.Dropped() + m.totalIncs.Load() }

// Delivered records that the consumer accepted an update, for Stalled.
func (m *Mailbox) Delivered(now time.Time) {
	m.mu.Lock()
	m.lastTaken = now
	m.mu.Unlock()
}

// Stalled reports whether updates have been waiting while the consumer
// accepted nothing for longer than d: a consumer that stopped reading.
func (m *Mailbox) Stalled(now time.Time, d time.Duration) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return (m.has || m.events.Len() > 0) && now.Sub(m.lastTaken) > d
}
