package store

import (
	"bytes"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/procwatch/procwatch/rules"
)

// ageChunk caps the deletions of one age-retention transaction, so that a
// first run over a large backlog does not hold up incident commits.
const ageChunk = 50_000

// resolveRetention combines Options with the stored settings: a non-zero
// option wins, then a stored setting, then the default.
func (s *Store) resolveRetention() error {
	age, count, err := s.storedRetention()
	if err != nil {
		return err
	}
	retAge, retCount := DefaultRetentionAge, DefaultRetentionCount
	if age != 0 {
		retAge = age
	}
	if count != 0 {
		retCount = count
	}
	if s.opts.RetentionAge != 0 {
		retAge = s.opts.RetentionAge
	}
	if s.opts.RetentionCount != 0 {
		retCount = s.opts.RetentionCount
	}
	s.retAge.Store(int64(retAge))
	s.retCount.Store(int64(retCount))
	return nil
}

// enforceRetention deletes incidents past the age limit, then trims to the
// count limit.
func (s *Store) enforceRetention(now time.Time) error {
	if age := time.Duration(s.retAge.Load()); age > 0 {
		cutoff := now.Add(-age)
		for {
			more, err := s.trimByAge(cutoff)
			if err != nil {
				return err
			}
			if !more {
				break
			}
		}
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	return s.update(func(tx *bolt.Tx) error {
		w := s.newWriteTx(tx)
		if err := s.trimToCount(w); err != nil {
			return err
		}
		return w.finish()
	})
}

// trimByAge deletes, oldest first, incidents raised and last seen before
// cutoff. Ids follow raise time, so the walk stops at the first incident
// raised at or after cutoff; incidents raised earlier but seen again since
// are kept. It reports whether it stopped at ageChunk with more to do.
func (s *Store) trimByAge(cutoff time.Time) (more bool, err error) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	err = s.update(func(tx *bolt.Tx) error {
		w := s.newWriteTx(tx)
		stop := rules.ID(cutoff.UnixNano()).Bytes()
		var keys [][]byte
		var incs []rules.Incident
		c := w.incs.Cursor()
		for k, v := c.First(); k != nil && bytes.Compare(k, stop) < 0; k, v = c.Next() {
			if len(keys) == ageChunk {
				more = true
				break
			}
			inc, ok := s.decodeForRemoval(k, v)
			if ok && !inc.Time.Before(cutoff) {
				break
			}
			if ok && !inc.LastSeen.Before(cutoff) {
				continue
			}
			keys = append(keys, bytes.Clone(k))
			incs = append(incs, inc)
		}
		for i := range keys {
			if err := w.remove(keys[i], &incs[i]); err != nil {
				return err
			}
		}
		return w.finish()
	})
	if err != nil {
		return false, fmt.Errorf("age retention: %w", err)
	}
	return more, nil
}

// trimToCount deletes the oldest incidents beyond the count limit, inside
// the caller's transaction.
func (s *Store) trimToCount(w *writeTx) error {
	limit := s.retCount.Load()
	if limit < 0 {
		return nil
	}
	excess := w.total() - limit
	if excess <= 0 {
		return nil
	}
	var keys [][]byte
	var incs []rules.Incident
	c := w.incs.Cursor()
	for k, v := c.First(); k != nil && int64(len(keys)) < excess; k, v = c.Next() {
		inc, _ := s.decodeForRemoval(k, v)
		keys = append(keys, bytes.Clone(k))
		incs = append(incs, inc)
	}
	for i := range keys {
		if err := w.remove(keys[i], &incs[i]); err != nil {
			return fmt.Errorf("count retention: %w", err)
		}
	}
	return nil
}

// decodeForRemoval decodes a record that retention is about to delete. A
// damaged record must not block retention forever: it is logged and
// removed with only its id known (ok is false).
func (s *Store) decodeForRemoval(k, v []byte) (inc rules.Incident, ok bool) {
	if err := decodeIncident(k, v, &inc); err != nil {
		s.log.Warn("store: removing unreadable incident", "id", fmt.Sprintf("%x", k), "err", err)
		return rules.Incident{ID: idFromKey(k)}, false
	}
	return inc, true
}
