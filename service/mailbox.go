package service

import (
	"sync"
	"time"

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
// never blocks: it merges into what the consumer has not taken yet, keeping
// the latest version of each incident (by ID) and the latest status, and
// counts what it has to throw away once a bound is reached. The producer
// (the sensor's reader, or a socket reader) therefore never waits for a slow
// consumer, and the consumer learns how much it lost from Update.Dropped.
type Mailbox struct {
	maxEvents    int
	maxIncidents int

	mu        sync.Mutex
	pending   Update
	index     map[rules.ID]int // position of each pending incident
	has       bool
	ready     chan struct{}
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
		maxEvents:    maxEvents,
		maxIncidents: maxIncidents,
		index:        make(map[rules.ID]int),
		ready:        make(chan struct{}, 1),
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
	room := m.maxEvents - len(m.pending.Events)
	if room < 0 {
		room = 0
	}
	kept := min(len(u.Events), room)
	m.pending.Dropped += uint64(len(u.Events) - kept)
	base := len(m.pending.Events)
	m.pending.Events = append(m.pending.Events, u.Events[:kept]...)
	for _, i := range u.Skipped {
		if i >= 0 && i < kept {
			m.pending.Skipped = append(m.pending.Skipped, base+i)
		}
	}
	for _, inc := range u.Incidents {
		if i, ok := m.index[inc.ID]; ok {
			m.pending.Incidents[i] = inc
			continue
		}
		if len(m.pending.Incidents) >= m.maxIncidents {
			m.pending.Dropped++
			continue
		}
		m.index[inc.ID] = len(m.pending.Incidents)
		m.pending.Incidents = append(m.pending.Incidents, inc)
	}
	if u.Status != nil {
		st := *u.Status
		m.pending.Status = &st
	}
	m.pending.Dropped += u.Dropped
	m.has = true
	m.mu.Unlock()
	select {
	case m.ready <- struct{}{}:
	default:
	}
}

// Ready is signalled (at most one token) after Put; the consumer then calls
// Take.
func (m *Mailbox) Ready() <-chan struct{} { return m.ready }

// Take removes and returns everything pending; ok is false when nothing is.
func (m *Mailbox) Take() (u Update, ok bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.has {
		return Update{}, false
	}
	u = m.pending
	m.pending = Update{}
	clear(m.index)
	m.has = false
	return u, true
}

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
	return m.has && now.Sub(m.lastTaken) > d
}
