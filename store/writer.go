package store

import (
	"errors"
	"fmt"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/procwatch/procwatch/rules"
)

// Put queues an upsert of inc (by inc.ID) and returns at once; the commit
// goroutine writes it within BatchInterval, or within RepeatInterval when
// it is a repeat (see urgent). inc.ID must come from
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
	if s.queue == nil {
		s.queue, s.spare = s.spare, nil
	}
	// The commit goroutine sleeps until the queue's first deadline, so it
	// is told when the queue starts, when its first urgent incident
	// arrives, and when a batch is full.
	kick := false
	if len(s.queue) == 0 {
		s.queuedAt, kick = time.Now(), true
	}
	if s.urgentAt.IsZero() && urgent(&inc) {
		s.urgentAt, kick = time.Now(), true
	}
	if i, ok := s.queued[inc.ID]; ok {
		// A repeat carries the incident's whole state: it replaces the
		// queued one and keeps that one's status, as writing both in
		// turn would (see superseded).
		inc.Status = s.queue[i].Status
		s.queue[i] = inc
		s.folded++
		s.qmu.Unlock()
		if kick {
			s.kickLoop()
		}
		return
	}
	if s.queued == nil {
		s.queued = make(map[rules.ID]int)
	}
	s.queued[inc.ID] = len(s.queue)
	s.queue = append(s.queue, inc)
	if len(s.queue) == batchSize {
		kick = true
	}
	s.qmu.Unlock()
	if kick {
		s.kickLoop()
	}
}

// urgent reports whether inc may not wait for RepeatInterval: a new
// incident (count 1) or one that carries its process's fate must be on
// disk within BatchInterval. A repeat only moves an incident's count and
// last-seen time; a crash loses at most RepeatInterval of them.
func urgent(inc *rules.Incident) bool {
	return inc.Count <= 1 || inc.Fate != nil
}

// nextCommit says when the queue is due: at once when a full batch waits,
// BatchInterval after its first urgent incident, else RepeatInterval after
// it started, and never before the retry of a failing commit is due.
// pending is false for an empty queue. Callers hold s.qmu.
func (s *Store) nextCommit(now time.Time) (wait time.Duration, pending bool) {
	if len(s.queue) == 0 {
		return 0, false
	}
	due := s.queuedAt.Add(s.opts.RepeatInterval)
	if !s.urgentAt.IsZero() {
		due = s.urgentAt.Add(s.opts.BatchInterval)
	}
	if len(s.queue) >= batchSize {
		due = now
	}
	if s.failing && due.Before(s.retryAt) {
		due = s.retryAt
	}
	return due.Sub(now), true
}

// maxSpare bounds the queue array kept for reuse (in incidents), so a
// burst does not pin a large array for good.
const maxSpare = 4096

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
// While commits are failing it does not hammer the disk: until the next
// retry is due it returns at once with an error wrapping ErrCommitsFailing
// and the last commit error, and the incidents stay queued. Readers can go
// on with what is committed (Status shows what is pending).
func (s *Store) Flush() error {
	if s.opts.ReadOnly {
		return nil
	}
	s.qmu.Lock()
	wait := s.failing && time.Now().Before(s.retryAt)
	pending := len(s.queue)
	s.qmu.Unlock()
	if wait {
		return fmt.Errorf("%d incidents pending in %s: %w: %s", pending, s.path, ErrCommitsFailing, s.lastError())
	}
	return s.flushQueued()
}

// ErrCommitsFailing is wrapped by Flush's error while commits fail and the
// next retry is not yet due.
var ErrCommitsFailing = errors.New("commits are failing; retrying with backoff")

// Retry backoff after a failed commit: the delay doubles from the batch
// interval up to maxRetryDelay, so a full disk is retried every few seconds
// and its incidents commit soon after space returns. The log doubles its
// interval from firstFailLog up to maxFailLog.
const (
	maxRetryDelay = 5 * time.Second
	firstFailLog  = time.Second
	maxFailLog    = time.Minute
)

func (s *Store) lastError() string {
	if p := s.lastErr.Load(); p != nil {
		return *p
	}
	return ""
}

// commitFailed records a failed commit; callers hold s.qmu. It schedules
// the next retry and logs at the first failure and then at doubling
// intervals, never more than once a minute once failures last.
func (s *Store) commitFailed(err error) {
	now := time.Now()
	if !s.failing {
		s.failing, s.failSince = true, now
		s.retryDelay, s.failLogEvery, s.failLogAt = 0, firstFailLog, time.Time{}
		s.failures = 0
	}
	s.failures++
	s.retryDelay = min(max(2*s.retryDelay, s.opts.BatchInterval), maxRetryDelay)
	s.retryAt = now.Add(s.retryDelay)
	if now.Before(s.failLogAt) {
		return
	}
	s.log.Error("store: commit failed; incidents kept in memory and retried with backoff", "path", s.path,
		"err", err, "pending", len(s.queue), "failures", s.failures, "failing_for", now.Sub(s.failSince).Round(time.Millisecond),
		"next_retry_in", s.retryDelay)
	s.failLogAt = now.Add(s.failLogEvery)
	s.failLogEvery = min(2*s.failLogEvery, maxFailLog)
}

// commitRecovered ends a failing spell; callers hold s.qmu.
func (s *Store) commitRecovered() {
	if !s.failing {
		return
	}
	s.log.Info("store: commits resumed", "path", s.path, "failed_for", time.Since(s.failSince).Round(time.Millisecond),
		"failures", s.failures, "pending", len(s.queue))
	s.failing = false
	s.failSince, s.retryAt = time.Time{}, time.Time{}
}

// loop is the commit goroutine: it sleeps until the queue is due (see
// nextCommit; an idle store does not wake), commits it, and applies age
// retention every minute.
func (s *Store) loop() {
	defer close(s.loopDone)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	retention := time.NewTicker(retentionEvery)
	defer retention.Stop()
	for {
		s.qmu.Lock()
		wait, pending := s.nextCommit(time.Now())
		s.qmu.Unlock()
		if pending && wait <= 0 {
			s.commitDue()
			continue
		}
		var due <-chan time.Time
		if pending {
			timer.Reset(wait)
			due = timer.C
		}
		select {
		case <-s.stop:
			timer.Stop()
			return
		case <-due:
		case <-s.kick:
		case now := <-retention.C:
			if err := s.enforceRetention(now); err != nil {
				s.log.Error("store: retention failed", "path", s.path, "err", err)
			}
		}
		timer.Stop()
	}
}

// commitDue commits the queue, batch after batch while full ones wait. A
// failure is logged, with backoff, by commitBatch, and retried when
// nextCommit says.
func (s *Store) commitDue() {
	for {
		more, err := s.commitBatch()
		if err != nil || more < batchSize {
			return
		}
	}
}

// superseded marks the incidents of batch that a later one with the same
// id replaces: a repeat carries the incident's whole state (count, last
// seen, process), so only the last of each id needs writing, and a storm
// of one repeating incident costs one record update per commit instead of
// one per event. The last takes the first one's status, as writing them
// in turn would have kept it. Callers hold s.wmu.
func (s *Store) superseded(batch []rules.Incident) []bool {
	s.skip = slices.Grow(s.skip[:0], len(batch))[:len(batch)]
	if s.seen == nil {
		s.seen = map[rules.ID]int{}
	}
	clear(s.seen)
	for i := len(batch) - 1; i >= 0; i-- {
		last, later := s.seen[batch[i].ID]
		s.skip[i] = later
		if later {
			batch[last].Status = batch[i].Status
		} else {
			s.seen[batch[i].ID] = i
		}
	}
	return s.skip
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
	array := s.queue[:0]
	batch := s.queue[:n:n]
	s.queue = s.queue[n:]
	whole := len(s.queue) == 0
	clear(s.queued) // the indexes moved; a later repeat is appended, and superseded folds it
	folded := uint64(0)
	if whole {
		folded, s.folded = s.folded, 0
		s.queue = nil // start the next queue on the spare array
		s.urgentAt = time.Time{}
	} else {
		s.queuedAt = time.Now() // the rest is due by its urgentAt, if any, or a RepeatInterval from now
	}
	close(s.drained)
	s.drained = make(chan struct{})
	s.qmu.Unlock()
	if n == 0 {
		return 0, nil
	}
	var w *writeTx
	err = s.update(func(tx *bolt.Tx) error {
		w = s.newWriteTx(tx)
		superseded := s.superseded(batch)
		for i := range batch {
			if superseded[i] {
				// A later repeat in this batch carries this incident's
				// whole state; writing both would only decode and encode
				// the record twice.
				w.noteSkew(&batch[i])
				continue
			}
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
		msg := err.Error()
		s.lastErr.Store(&msg)
		// Put the batch back in front of what arrived meanwhile, within
		// the queue's limit; what does not fit is dropped and counted.
		merged := append(batch, s.queue...)
		if over := len(merged) - queueLimit; over > 0 {
			merged = merged[over:]
			s.drop(uint64(over), errors.New("queue full while commits fail"))
		}
		s.queue = merged
		s.folded += folded
		s.urgentAt = time.Now() // retried when commitFailed's retryAt is due
		s.commitFailed(err)
		return len(s.queue), fmt.Errorf("commit %d incidents to %s: %w", len(batch), s.path, err)
	}
	s.noteEvictions(w)
	s.commitRecovered()
	s.lastErr.Store(nil)
	s.committed.Add(uint64(n) + folded)
	s.batches.Add(1)
	clear(batch) // let the incidents' strings go
	if whole && cap(array) <= maxSpare {
		// Put fills the next queue on this array instead of growing a
		// new one: an incident storm then allocates no queue at all.
		s.spare = array
	}
	return len(s.queue), nil
}
