package store

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/procwatch/procwatch/rules"
)

// ErrNoIncident is wrapped when SetStatus names an incident that is not
// stored (never was, or retention removed it).
var ErrNoIncident = errors.New("no such incident")

// ErrNoSkip is wrapped when RemoveSkip names a skip that is not stored.
var ErrNoSkip = errors.New("no such added skip")

// ErrSkipExists is wrapped when AddSkip is given a skip equal (kind, value,
// rule and pin) to one already added.
var ErrSkipExists = errors.New("skip already added")

// SetStatus sets the status of the given incidents. An explicit status
// overrides skips: the incidents lose their links to the skips that masked
// them, so removing such a skip later leaves them as set here. Ids that are
// not stored are reported in one error wrapping ErrNoIncident, after the
// others have been updated.
func (s *Store) SetStatus(ids []rules.ID, st rules.Status) error {
	return s.SetStatusBy(ids, st, nil)
}

// SetStatusBy is SetStatus that also appends a rules.Change naming by to
// the history of every incident whose status it changes (by nil: no
// history entry).
func (s *Store) SetStatusBy(ids []rules.ID, st rules.Status, by *rules.Actor) error {
	switch st {
	case rules.StatusOpen, rules.StatusAcknowledged, rules.StatusMasked:
	default:
		return fmt.Errorf("set status: unknown status %q (want open, acknowledged or masked)", st)
	}
	if err := s.Flush(); err != nil {
		return fmt.Errorf("set status: %w", err)
	}
	var missing []string
	s.wmu.Lock()
	defer s.wmu.Unlock()
	err := s.update(func(tx *bolt.Tx) error {
		missing = missing[:0]
		w := s.newWriteTx(tx)
		for _, id := range ids {
			key := id.Bytes()
			v := w.incs.Get(key)
			if v == nil {
				missing = append(missing, id.String())
				continue
			}
			var inc rules.Incident
			if err := decodeIncident(key, v, &inc); err != nil {
				return err
			}
			if err := w.clearMasks(key); err != nil {
				return err
			}
			if by != nil && inc.Status != st {
				inc.History = appendHistory(inc.History, rules.Change{Time: time.Now(), From: inc.Status, To: st, By: *by})
			}
			if err := w.setStatus(key, &inc, st); err != nil {
				return err
			}
		}
		return w.finish()
	})
	if err != nil {
		return fmt.Errorf("set status of %d incidents to %s: %w", len(ids), st, err)
	}
	if len(missing) > 0 {
		return fmt.Errorf("set status: %w: %s", ErrNoIncident, strings.Join(missing, ", "))
	}
	return nil
}

// CountCovered counts the open incidents covers accepts: how many a skip
// would mask. covers runs inside a read transaction and must not call the
// store.
func (s *Store) CountCovered(covers func(*rules.Incident) bool) (int, error) {
	// A failing commit (a full disk) does not stop the preview: it counts
	// what is committed, and Status shows what is pending.
	_ = s.Flush()
	n := 0
	err := s.view(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketIncidents).ForEach(func(k, v []byte) error {
			var inc rules.Incident
			if err := decodeIncident(k, v, &inc); err != nil {
				s.unreadable(k, err)
				return nil
			}
			if inc.Status == rules.StatusOpen && covers(&inc) {
				n++
			}
			return nil
		})
	})
	if err != nil {
		return 0, fmt.Errorf("count covered incidents: %w", err)
	}
	return n, nil
}

// AddSkip stores sk as an added skip (ID, Source and, when unset, AddedAt
// are filled in) and masks every open incident covers accepts, in one
// transaction; it returns the stored skip and how many incidents it masked.
// Incidents another skip already masked are linked to this one too, so
// they stay masked while either skip exists. covers runs inside the write
// transaction and must not call the store.
func (s *Store) AddSkip(sk rules.Skip, covers func(*rules.Incident) bool) (rules.Skip, int, error) {
	return s.AddSkipBy(sk, covers, nil)
}

// AddSkipBy is AddSkip that also records, in the history of every incident
// the skip masks, a rules.Change naming by and the skip (by nil: none).
func (s *Store) AddSkipBy(sk rules.Skip, covers func(*rules.Incident) bool, by *rules.Actor) (rules.Skip, int, error) {
	if err := rules.ValidateSkip(sk); err != nil {
		return rules.Skip{}, 0, fmt.Errorf("add skip: %w", err)
	}
	if err := s.Flush(); err != nil {
		return rules.Skip{}, 0, fmt.Errorf("add skip: %w", err)
	}
	sk.Source = rules.SourceAdded
	if sk.AddedAt.IsZero() {
		sk.AddedAt = time.Now()
	}
	masked := 0
	s.wmu.Lock()
	defer s.wmu.Unlock()
	err := s.update(func(tx *bolt.Tx) error {
		masked = 0
		w := s.newWriteTx(tx)
		if dup, ok, err := findSkip(w.skips, sk); err != nil {
			return err
		} else if ok {
			return fmt.Errorf("%w as id %s", ErrSkipExists, dup.ID)
		}
		seq, err := w.skips.NextSequence()
		if err != nil {
			return err
		}
		sk.ID = strconv.FormatUint(seq, 10)
		seqKey := binary.BigEndian.AppendUint64(nil, seq)
		raw, err := json.Marshal(sk)
		if err != nil {
			return err
		}
		if err := w.skips.Put(seqKey, raw); err != nil {
			return err
		}
		type hit struct {
			key []byte
			inc rules.Incident
		}
		var hits []hit
		err = w.incs.ForEach(func(k, v []byte) error {
			var inc rules.Incident
			if err := decodeIncident(k, v, &inc); err != nil {
				s.unreadable(k, err) // cannot be judged, so not masked
				return nil
			}
			switch inc.Status {
			case rules.StatusOpen:
			case rules.StatusMasked:
				if !w.maskedBySkip(k) {
					return nil // masked by hand: not the skips' business
				}
			default:
				return nil
			}
			if covers(&inc) {
				hits = append(hits, hit{bytes.Clone(k), inc})
			}
			return nil
		})
		if err != nil {
			return err
		}
		for i := range hits {
			h := &hits[i]
			if err := w.masks.Put(append(bytes.Clone(h.key), seqKey...), nil); err != nil {
				return err
			}
			if err := w.skipMs.Put(append(bytes.Clone(seqKey), h.key...), nil); err != nil {
				return err
			}
			if h.inc.Status == rules.StatusOpen {
				if by != nil {
					h.inc.History = appendHistory(h.inc.History, rules.Change{Time: time.Now(), From: rules.StatusOpen, To: rules.StatusMasked, By: *by, Skip: sk.ID})
				}
				if err := w.setStatus(h.key, &h.inc, rules.StatusMasked); err != nil {
					return err
				}
				masked++
			}
		}
		return w.finish()
	})
	if err != nil {
		return rules.Skip{}, 0, fmt.Errorf("add skip %s %q: %w", sk.Kind, sk.Value, err)
	}
	return sk, masked, nil
}

// RemoveSkip deletes the added skip with id and reopens exactly the
// incidents it masked, except those another skip still masks and those
// whose status was set by hand since. It returns how many it reopened.
func (s *Store) RemoveSkip(id string) (int, error) {
	return s.RemoveSkipBy(id, nil)
}

// RemoveSkipBy is RemoveSkip that also records, in the history of every
// incident it re-opens, a rules.Change naming by and the skip (by nil:
// none).
func (s *Store) RemoveSkipBy(id string, by *rules.Actor) (int, error) {
	seq, err := strconv.ParseUint(id, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("remove skip %q: %w (ids are numbers; see `procwatch skip list`)", id, ErrNoSkip)
	}
	seqKey := binary.BigEndian.AppendUint64(nil, seq)
	unmasked := 0
	s.wmu.Lock()
	defer s.wmu.Unlock()
	err = s.update(func(tx *bolt.Tx) error {
		unmasked = 0
		w := s.newWriteTx(tx)
		if w.skips.Get(seqKey) == nil {
			return fmt.Errorf("%w (see `procwatch skip list`)", ErrNoSkip)
		}
		if err := w.skips.Delete(seqKey); err != nil {
			return err
		}
		var ids [][]byte
		c := w.skipMs.Cursor()
		for k, _ := c.Seek(seqKey); k != nil && bytes.HasPrefix(k, seqKey); k, _ = c.Next() {
			ids = append(ids, bytes.Clone(k[8:]))
		}
		for _, key := range ids {
			if err := w.skipMs.Delete(append(bytes.Clone(seqKey), key...)); err != nil {
				return err
			}
			if err := w.masks.Delete(append(bytes.Clone(key), seqKey...)); err != nil {
				return err
			}
			if w.maskedBySkip(key) {
				continue
			}
			v := w.incs.Get(key)
			if v == nil {
				continue
			}
			var inc rules.Incident
			if err := decodeIncident(key, v, &inc); err != nil {
				return err
			}
			if inc.Status != rules.StatusMasked {
				continue
			}
			if by != nil {
				inc.History = appendHistory(inc.History, rules.Change{Time: time.Now(), From: rules.StatusMasked, To: rules.StatusOpen, By: *by, Skip: id})
			}
			if err := w.setStatus(key, &inc, rules.StatusOpen); err != nil {
				return err
			}
			unmasked++
		}
		return w.finish()
	})
	if err != nil {
		return 0, fmt.Errorf("remove skip %s: %w", id, err)
	}
	return unmasked, nil
}

// Skips returns the added skips, oldest first. Skips written in rules.yaml
// are not stored; the rules engine knows them.
func (s *Store) Skips() ([]rules.Skip, error) {
	out := []rules.Skip{}
	err := s.view(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketSkips).ForEach(func(k, v []byte) error {
			var sk rules.Skip
			if err := json.Unmarshal(v, &sk); err != nil {
				return fmt.Errorf("skip %x: %w", k, err)
			}
			out = append(out, sk)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("list skips: %w", err)
	}
	return out, nil
}

// findSkip looks for an added skip with the same kind, value, rule and
// pin: two pins on one path (two versions of a file) are two skips.
func findSkip(b *bolt.Bucket, want rules.Skip) (rules.Skip, bool, error) {
	var found rules.Skip
	ok := false
	err := b.ForEach(func(k, v []byte) error {
		var sk rules.Skip
		if err := json.Unmarshal(v, &sk); err != nil {
			return fmt.Errorf("skip %x: %w", k, err)
		}
		if sk.Kind == want.Kind && sk.Value == want.Value && sk.Rule == want.Rule && sk.Pin == want.Pin {
			found, ok = sk, true
			return errStop
		}
		return nil
	})
	if errors.Is(err, errStop) {
		err = nil
	}
	return found, ok, err
}

// maxHistory bounds an incident's history, so that flipping its status in a
// loop cannot grow one record without end. The first entry and the latest
// ones are kept; every change is also logged by the agent.
const maxHistory = 64

func appendHistory(h []rules.Change, c rules.Change) []rules.Change {
	if len(h) >= maxHistory {
		h = append(h[:1], h[len(h)-maxHistory+2:]...)
	}
	return append(h, c)
}

// MaskForSkip masks, for the added skip skipID, those of the open incidents
// ids that its caller found covered, as adding the skip would have done had
// they been covered then: a mask link (so removing the skip re-opens them)
// and a history entry naming by and the skip. The pipeline calls it when
// the hash of an incident's binary arrives after a skip pinned to that
// hash was added. It returns the incidents it masked.
func (s *Store) MaskForSkip(skipID string, ids []rules.ID, by rules.Actor) ([]rules.Incident, error) {
	seq, err := strconv.ParseUint(skipID, 10, 64)
	if err != nil {
		return nil, fmt.Errorf("mask for skip %q: %w", skipID, ErrNoSkip)
	}
	if err := s.Flush(); err != nil {
		return nil, fmt.Errorf("mask for skip %s: %w", skipID, err)
	}
	seqKey := binary.BigEndian.AppendUint64(nil, seq)
	var masked []rules.Incident
	s.wmu.Lock()
	defer s.wmu.Unlock()
	err = s.update(func(tx *bolt.Tx) error {
		masked = masked[:0]
		w := s.newWriteTx(tx)
		if w.skips.Get(seqKey) == nil {
			return ErrNoSkip // removed meanwhile: nothing to mask for it
		}
		for _, id := range ids {
			var inc rules.Incident
			key, found, err := w.load(id, &inc)
			if err != nil {
				s.unreadable(key, err)
				continue
			}
			if !found || inc.Status != rules.StatusOpen {
				continue // set by hand, or masked already
			}
			if err := w.masks.Put(append(bytes.Clone(key), seqKey...), nil); err != nil {
				return err
			}
			if err := w.skipMs.Put(append(bytes.Clone(seqKey), key...), nil); err != nil {
				return err
			}
			inc.History = appendHistory(inc.History, rules.Change{Time: time.Now(), From: rules.StatusOpen, To: rules.StatusMasked, By: by, Skip: skipID})
			if err := w.setStatus(key, &inc, rules.StatusMasked); err != nil {
				return err
			}
			masked = append(masked, inc)
		}
		return w.finish()
	})
	if errors.Is(err, ErrNoSkip) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("mask %d incidents for skip %s: %w", len(ids), skipID, err)
	}
	return masked, nil
}
