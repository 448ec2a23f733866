package store

import (
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/procwatch/procwatch/rules"
)

// Put queues an upsert of inc (by inc.ID) and returns at once; the commit
// goroutine writes it within BatchInterval. inc.ID must come from
// rules.NewID(inc.Time): time filters and age retention rely on ids being
// at or after the raise time. A repeat of a stored incident keeps the
// stored status (see upsert).
//
// Put never drops an incident silently. When the queue is full (queueLimit)
// because commits fall behind, Put waits for the next commit, for at most
// two seconds; if commits are failing, or the wait runs out, the incident
// is dropped, counted in Stats().Dropped and logged.
func (s *Store) Put(inc rules.Incident) {
	if s.opts.ReadOnly {
		s.drop(1, ErrReadOnly)
		return
	}
	if inc.ID == 0 {
		inc.ID = rules.NewID(inc.Time)
	}
	s.qmu.Lock()
	if s.closing {
		s.qmu.Unlock()
		s.drop(1, ErrClosed)
		return
	}
	if len(s.queue) >= queueLimit {
		if s.failing {
			s.qmu.Unlock()
			s.drop(1, errors.New("queue full and commits failing"))
			return
		}
		s.blocked.Add(1)
		deadline := time.NewTimer(putWait)
		defer deadline.Stop()
		for len(s.queue) >= queueLimit && !s.failing && !s.closing {
			ch := s.drained
			s.qmu.Unlock()
			s.kickLoop()
			select {
			case <-ch:
			case <-deadline.C:
				s.drop(1, errors.New("queue full: commits are too slow"))
				return
			}
			s.qmu.Lock()
		}
		if len(s.queue) >= queueLimit || s.closing {
			s.qmu.Unlock()
			s.drop(1, errors.New("queue full"))
			return
		}
	}
	s.queue = append(s.queue, inc)
	n := len(s.queue)
	s.qmu.Unlock()
	if n == batchSize {
		s.kickLoop()
	}
}

func (s *Store) kickLoop() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// drop counts and logs incidents that could not be queued. Logging is
// limited to one line per thousand drops so a storm cannot flood the log.
func (s *Store) drop(n uint64, why error) {
	total := s.dropped.Add(n)
	if total-n == 0 || total/1000 != (total-n)/1000 {
		s.log.Error("store: incidents dropped", "path", s.path, "dropped_total", total, "why", why)
	}
}

// Flush commits every queued incident now and returns the commit's error.
func (s *Store) Flush() error {
	if s.opts.ReadOnly {
		return nil
	}
	return s.flushQueued()
}

// loop is the commit goroutine: it commits the queue every BatchInterval,
// at once while full batches wait, and applies age retention every minute.
func (s *Store) loop() {
	defer close(s.loopDone)
	tick := time.NewTicker(s.opts.BatchInterval)
	defer tick.Stop()
	retention := time.NewTicker(retentionEvery)
	defer retention.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-tick.C:
		case <-s.kick:
		case now := <-retention.C:
			if err := s.enforceRetention(now); err != nil {
				s.log.Error("store: retention failed", "path", s.path, "err", err)
			}
			continue
		}
		for {
			more, err := s.commitBatch()
			if err != nil {
				s.log.Error("store: commit failed; will retry", "path", s.path, "err", err)
				break
			}
			if more < batchSize {
				break
			}
		}
	}
}

// flushQueued commits everything queued when it is called, in batches. It
// commits at least once even with an empty queue, which waits for a commit
// in flight (holding s.wmu) that may hold incidents queued earlier.
func (s *Store) flushQueued() error {
	s.qmu.Lock()
	n := len(s.queue)
	s.qmu.Unlock()
	for {
		if _, err := s.commitBatch(); err != nil {
			return err
		}
		if n -= txLimit; n <= 0 {
			return nil
		}
	}
}

// commitBatch takes up to txLimit incidents from the front of the queue and
// commits them in one transaction, with count retention applied in the
// same transaction. On failure the incidents go back to the front of the
// queue to be retried. It returns how many incidents are left queued.
func (s *Store) commitBatch() (left int, err error) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.qmu.Lock()
	n := min(len(s.queue), txLimit)
	batch := s.queue[:n:n]
	s.queue = s.queue[n:]
	if len(s.queue) == 0 {
		s.queue = nil // start the next queue on a fresh array
	}
	close(s.drained)
	s.drained = make(chan struct{})
	s.qmu.Unlock()
	if n == 0 {
		return 0, nil
	}
	err = s.update(func(tx *bolt.Tx) error {
		w := s.newWriteTx(tx)
		for i := range batch {
			if err := w.upsert(&batch[i]); err != nil {
				return err
			}
		}
		if err := s.trimToCount(w); err != nil {
			return err
		}
		return w.finish()
	})
	s.qmu.Lock()
	defer s.qmu.Unlock()
	if err != nil {
		s.failing = true
		msg := err.Error()
		s.lastErr.Store(&msg)
		// Put the batch back in front of what arrived meanwhile, within
		// the queue's limit; what does not fit is dropped and counted.
		merged := append(batch, s.queue...)
		if over := len(merged) - queueLimit; over > 0 {
			merged = merged[over:]
			s.dropped.Add(uint64(over))
		}
		s.queue = merged
		return len(s.queue), fmt.Errorf("commit %d incidents to %s: %w", len(batch), s.path, err)
	}
	s.failing = false
	s.lastErr.Store(nil)
	s.committed.Add(uint64(n))
	s.batches.Add(1)
	clear(batch) // let the incidents' strings go
	return len(s.queue), nil
}
