package store

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
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
	var w *writeTx
	err := s.update(func(tx *bolt.Tx) error {
		w = s.newWriteTx(tx)
		if err := s.trimToCount(w); err != nil {
			return err
		}
		return w.finish()
	})
	if err == nil {
		s.noteEvictions(w)
	}
	return err
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

// trimToCount deletes incidents beyond the count limit inside the caller's
// transaction, in the class index's order: masked, then acknowledged, then
// open incidents; within each the lowest severity and then the oldest id
// first. An open high or critical incident therefore goes only when
// nothing of a lower rank is left. The walk reads only the index's first
// entries, however large the database.
func (s *Store) trimToCount(w *writeTx) error {
	limit := s.retCount.Load()
	if limit < 0 {
		return nil
	}
	excess := w.total() - limit
	if excess <= 0 {
		return nil
	}
	// Take the victims' index keys first: a bucket must not change
	// under its own cursor.
	var keys [][]byte
	c := w.byClass.Cursor()
	for k, _ := c.First(); k != nil && int64(len(keys)) < excess; k, _ = c.Next() {
		keys = append(keys, bytes.Clone(k))
	}
	var evicted, worst int64
	ic := w.incs.Cursor()
	for _, k := range keys {
		if err := w.byClass.Delete(k); err != nil {
			return fmt.Errorf("count retention: %w", err)
		}
		if len(k) != 10 {
			continue // a damaged index entry
		}
		id := k[2:]
		ik, iv := ic.Seek(id)
		if !bytes.Equal(ik, id) {
			continue // stale: the incident is gone
		}
		inc, ok := s.decodeForRemoval(id, iv)
		if ok && !bytes.Equal(classKey(&inc, id), k) {
			continue // stale: the incident is indexed under its real class
		}
		// One seek per victim: the cursor deletes the record it found.
		if err := ic.Delete(); err != nil {
			return fmt.Errorf("count retention: %w", err)
		}
		if err := w.clearMasks(id); err != nil {
			return fmt.Errorf("count retention: %w", err)
		}
		w.account(&inc, -1)
		evicted++
		worst = int64(k[0])<<8 | int64(k[1])
	}
	if evicted > 0 {
		w.countDelta[string(keyEvicted)] += evicted
		w.evicted += evicted
		w.evictedRank = worst
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

// evictLogEvery limits the count-retention log to one line a minute, however
// many commits delete incidents.
const evictLogEvery = time.Minute

// noteEvictions records what a committed transaction's count retention
// deleted: the in-memory total behind Status and the metrics, and a log
// line at the first eviction and then at most once a minute (a flood
// evicting on every commit must not flood the log as well).
func (s *Store) noteEvictions(w *writeTx) {
	if w.evicted == 0 {
		return
	}
	total := s.evicted.Add(uint64(w.evicted))
	s.emu.Lock()
	defer s.emu.Unlock()
	s.evictPending += w.evicted
	s.evictRank = max(s.evictRank, w.evictedRank)
	now := time.Now()
	if !s.evictLogged.IsZero() && now.Sub(s.evictLogged) < evictLogEvery {
		return
	}
	class, sev := rankName(s.evictRank)
	level := slog.LevelWarn
	if class == "open" && rules.Severity(s.evictRank&0xff) >= rules.SeverityHigh {
		level = slog.LevelError
	}
	msg := "store: count limit reached; deleting masked, acknowledged, then the lowest-severity incidents to make room"
	if !s.evictLogged.IsZero() {
		msg = "store: count retention still deleting incidents"
	}
	s.log.Log(context.Background(), level, msg, "path", s.path, "limit", s.retCount.Load(),
		"evicted", s.evictPending, "evicted_total", total, "up_to_class", class, "up_to_severity", sev)
	s.evictLogged, s.evictPending, s.evictRank = now, 0, 0
}

// rankName spells a class<<8|severity rank for logs and status.
func rankName(rank int64) (class, severity string) {
	class = map[byte]string{classMasked: "masked", classAcknowledged: "acknowledged", classOpen: "open"}[byte(rank>>8)]
	return class, rules.Severity(rank & 0xff).String()
}
