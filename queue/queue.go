// Package queue is the one bounded queue between the sensor's reader and
// the screen: the pipeline's batch, each subscriber's mailbox, the agent
// client's subscription and the TUI's inbox all hold their events in a
// Queue, so they share one drop policy and one way of counting drops.
//
// The policy is drop-oldest. A producer (the sensor's reader, a socket
// reader) must never wait for a consumer, so a full queue has to lose
// something; losing the oldest keeps what a live view shows current and
// bounds its lag to the queue's length, where dropping the newest would
// freeze the view on a flood's first events while everything after it,
// including what an attacker does once the flood started, is thrown away.
// Incidents never depend on a queue: they are stored before any queue sees
// them, so a consumer that learns of drops can query them again. Every
// drop is counted, both since the consumer's last Take (to pass on in an
// update) and over the queue's life (for status and metrics).
package queue

import (
	"sync"
	"sync/atomic"
)

// Queue is a bounded FIFO safe for one or more producers and consumers.
// Push never blocks; when the queue is full the oldest items give way.
type Queue[T any] struct {
	mu      sync.Mutex
	limit   int // the most items held
	buf     []T // ring, grown on demand up to limit items
	head    int // index of the oldest item in buf
	n       int // items held
	dropped uint64
	total   atomic.Uint64
	ready   chan struct{}
}

// New returns an empty queue holding at most capacity items (at least 1).
// Its memory grows with what it holds, so an idle queue with a large
// bound costs little.
func New[T any](capacity int) *Queue[T] {
	return &Queue[T]{limit: max(capacity, 1), ready: make(chan struct{}, 1)}
}

// Cap is the most items the queue holds.
func (q *Queue[T]) Cap() int { return q.limit }

// grow makes room for one more item below the limit, keeping the order.
func (q *Queue[T]) grow() {
	nb := make([]T, min(max(2*len(q.buf), 16), q.limit))
	for i := 0; i < q.n; i++ {
		nb[i] = q.buf[(q.head+i)%len(q.buf)]
	}
	q.buf, q.head = nb, 0
}

// Push appends items, dropping (and counting) the oldest ones past the
// bound, and signals Ready.
func (q *Queue[T]) Push(items ...T) {
	if len(items) == 0 {
		return
	}
	q.mu.Lock()
	if over := len(items) - q.limit; over > 0 {
		q.drop(uint64(over))
		items = items[over:]
	}
	for _, it := range items {
		if q.n == len(q.buf) && q.n < q.limit {
			q.grow()
		}
		c := len(q.buf)
		if q.n == c {
			q.head = (q.head + 1) % c // the oldest gives way (overwritten below)
			q.n--
			q.drop(1)
		}
		q.buf[(q.head+q.n)%c] = it
		q.n++
	}
	q.mu.Unlock()
	q.Signal()
}

// AddDropped counts n items lost before they reached the queue (a
// producer's own drop, or one reported by an upstream queue), so the
// consumer learns of them from Take like of the queue's own.
func (q *Queue[T]) AddDropped(n uint64) {
	if n == 0 {
		return
	}
	q.mu.Lock()
	q.dropped += n
	q.mu.Unlock()
	q.Signal()
}

func (q *Queue[T]) drop(n uint64) {
	q.dropped += n
	q.total.Add(n)
}

// Signal wakes a consumer waiting on Ready without adding anything, for
// producers that queue other things (incidents, status) beside the items.
func (q *Queue[T]) Signal() {
	select {
	case q.ready <- struct{}{}:
	default:
	}
}

// Ready holds a token after a Push (at most one however many pushes); the
// consumer then calls Take.
func (q *Queue[T]) Ready() <-chan struct{} { return q.ready }

// Take appends everything queued to dst, oldest first, empties the queue
// and returns the items with the drops counted since the previous Take
// (including AddDropped).
func (q *Queue[T]) Take(dst []T) ([]T, uint64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	c := len(q.buf)
	if dst == nil && q.n > 0 {
		dst = make([]T, 0, q.n)
	}
	var zero T
	for i := 0; i < q.n; i++ {
		j := (q.head + i) % c
		dst = append(dst, q.buf[j])
		q.buf[j] = zero // let the taken items' memory go
	}
	q.head, q.n = 0, 0
	d := q.dropped
	q.dropped = 0
	return dst, d
}

// TakeN is Take for at most n items (all of them when n <= 0): a
// consumer with a budget per round (the TUI's frame) takes what it can
// handle and leaves the rest queued, still bounded and still dropping the
// oldest. The drops since the previous take are handed over with the
// first items.
func (q *Queue[T]) TakeN(dst []T, n int) ([]T, uint64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if n <= 0 || n > q.n {
		n = q.n
	}
	c := len(q.buf)
	if dst == nil && n > 0 {
		dst = make([]T, 0, n)
	}
	var zero T
	for i := 0; i < n; i++ {
		j := (q.head + i) % c
		dst = append(dst, q.buf[j])
		q.buf[j] = zero
	}
	if q.n -= n; q.n == 0 {
		q.head = 0
	} else {
		q.head = (q.head + n) % c
	}
	d := q.dropped
	q.dropped = 0
	return dst, d
}

// Len is how many items are queued.
func (q *Queue[T]) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.n
}

// Dropped is how many items this queue itself dropped over its life (not
// counting AddDropped), for status and metrics.
func (q *Queue[T]) Dropped() uint64 { return q.total.Load() }
