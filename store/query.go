package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/procwatch/procwatch/api"
	"github.com/procwatch/procwatch/rules"
)

// Reads run in short transactions of at most readChunk results or
// scanChunk records looked at, and call back outside any transaction. A
// long export therefore never pins old pages for minutes, and a callback
// may call the store again without deadlocking.
const (
	readChunk = 1024
	scanChunk = 65536
)

// errStop ends a scan early without being an error.
var errStop = errors.New("stop")

// Get returns the stored incident with id. Incidents still queued by Put
// are not visible until their batch commits (Flush forces it).
func (s *Store) Get(id rules.ID) (rules.Incident, bool, error) {
	var inc rules.Incident
	found := false
	err := s.view(func(tx *bolt.Tx) error {
		key := id.Bytes()
		v := tx.Bucket(bucketIncidents).Get(key)
		if v == nil {
			return nil
		}
		found = true
		return decodeIncident(key, v, &inc)
	})
	if err != nil {
		return rules.Incident{}, false, fmt.Errorf("get incident %s: %w", id, err)
	}
	return inc, found, nil
}

// Query returns the incidents matching q, newest first, at most q.Limit
// (0: all of them).
func (s *Store) Query(q api.Query) ([]rules.Incident, error) {
	out := []rules.Incident{}
	err := s.Each(q, func(inc *rules.Incident) error {
		out = append(out, *inc)
		return nil
	})
	return out, err
}

// Each calls fn for every incident matching q, newest first, at most
// q.Limit of them (0: all). fn runs outside any transaction and may call
// the store; an error from fn stops the walk and is returned. With
// q.MinSeverity above info the walk uses the class index, so rare
// severities are found without reading the others.
//
// Damage fails only what it holds: a record that does not decode is
// skipped, and a damaged page makes the rest of the walk read the file's
// pages directly, skipping what cannot be read (salvage.go). After
// delivering everything else, Each then returns a *DamagedError.
func (s *Store) Each(q api.Query, fn func(*rules.Incident) error) error {
	hi := uint64(math.MaxUint64)
	if !q.Until.IsZero() {
		// Ids are at or after their raise time, by at most the largest
		// skew stored (see keyMaxSkew); the exact Time check follows.
		skew, err := s.maxSkew()
		if err != nil {
			return fmt.Errorf("query incidents: %w", err)
		}
		hi = timeBound(q.Until)
		if hi+skew < hi {
			hi = math.MaxUint64
		} else {
			hi += skew
		}
	}
	lo := uint64(0)
	if !q.Since.IsZero() {
		lo = timeBound(q.Since)
	}
	complete := unfiltered(q) && q.Limit == 0
	emitted := 0
	var dmg damage
	salvage := false
	batch := make([]rules.Incident, 0, readChunk)
	for {
		batch = batch[:0]
		var next uint64
		done := true
		var err error
		if salvage {
			next, done, err = s.salvageChunk(q, lo, hi, emitted, &batch, &dmg)
		} else {
			next, done, err = s.scanChunk(q, lo, hi, emitted, &batch, &dmg)
			if errors.Is(err, errCorruptPage) {
				// Deliver what was read before the damaged page and
				// go on below it, reading pages directly.
				s.log.Warn("store: a read met a damaged page; salvaging the rest", "path", s.path, "err", err)
				salvage, err, done, next = true, nil, false, hi
				if n := len(batch); n > 0 {
					next = uint64(batch[n-1].ID) - 1
					done = batch[n-1].ID == 0
				}
			}
		}
		if err != nil {
			return fmt.Errorf("query incidents: %w", err)
		}
		for i := range batch {
			if err := fn(&batch[i]); err != nil {
				return err
			}
		}
		emitted += len(batch)
		if q.Limit > 0 && emitted >= q.Limit {
			return s.finishRead(dmg, false, emitted)
		}
		if done {
			return s.finishRead(dmg, complete, emitted)
		}
		hi = next
	}
}

// decodeChecked decodes a record and checks that its key is plausible for
// it: an id is at or after the raise time, by at most the largest skew
// ever stored. A damaged page can hand bbolt a garbled key over a sound
// value; this keeps such an incident from appearing under an id it never
// had.
func (s *Store) decodeChecked(key, val []byte, inc *rules.Incident, skew uint64) error {
	if err := decodeIncident(key, val, inc); err != nil {
		return err
	}
	id, t := uint64(inc.ID), timeBound(inc.Time)
	if id < t || id-t > skew {
		return fmt.Errorf("id %s does not fit its raise time %s: a damaged key", inc.ID, inc.Time.Format(time.RFC3339Nano))
	}
	return nil
}

// scanChunk reads incidents with lo <= id <= hi through bbolt, newest
// first, into batch: at most readChunk matches or scanChunk records looked
// at. Records that do not decode are skipped and counted in d. It returns
// the id to resume at (ids <= next) and whether the walk is done.
func (s *Store) scanChunk(q api.Query, lo, hi uint64, emitted int, batch *[]rules.Incident, d *damage) (next uint64, done bool, err error) {
	done = true
	err = s.view(func(tx *bolt.Tx) error {
		skew := readUint64(tx.Bucket(bucketCounts), keyMaxSkew)
		sc := newScanner(tx, q.MinSeverity, hi)
		defer func() {
			if sc.orphans > 0 {
				d.records += sc.orphans
				s.unreadable(nil, fmt.Errorf("%d index entries name incidents that cannot be found", sc.orphans))
			}
		}()
		scanned, read := 0, 0
		defer func() {
			if s.mapped.note(read) {
				releaseMapped(tx)
			}
		}()
		for {
			key, val := sc.next()
			if key == nil {
				return nil
			}
			read += len(val)
			id := binary.BigEndian.Uint64(key)
			if id < lo {
				return nil
			}
			if len(*batch) == readChunk || scanned == scanChunk {
				next, done = id, false
				return nil
			}
			scanned++
			var inc rules.Incident
			if err := s.decodeChecked(key, val, &inc, skew); err != nil {
				d.records++
				s.unreadable(key, err)
				continue
			}
			if !q.Matches(&inc) {
				continue
			}
			*batch = append(*batch, inc)
			if q.Limit > 0 && emitted+len(*batch) >= q.Limit {
				return nil
			}
		}
	})
	return next, done, err
}

// After calls fn for every stored incident with an id greater than id, in
// ascending order: a subscriber that reconnects replays what it missed.
// Records that do not decode are skipped and counted (Stats().Unreadable).
func (s *Store) After(id rules.ID, fn func(*rules.Incident) error) error {
	from := uint64(id)
	for {
		if from == math.MaxUint64 {
			return nil
		}
		start := rules.ID(from + 1).Bytes()
		var batch []rules.Incident
		more := false
		err := s.view(func(tx *bolt.Tx) error {
			c := tx.Bucket(bucketIncidents).Cursor()
			scanned, read := 0, 0
			defer func() {
				if s.mapped.note(read) {
					releaseMapped(tx)
				}
			}()
			for k, v := c.Seek(start); k != nil; k, v = c.Next() {
				if scanned == readChunk {
					more = true
					return nil
				}
				scanned++
				read += len(v)
				from = uint64(idFromKey(k))
				var inc rules.Incident
				if err := decodeIncident(k, v, &inc); err != nil {
					s.unreadable(k, err)
					continue
				}
				batch = append(batch, inc)
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("replay incidents after %s: %w", id, err)
		}
		for i := range batch {
			if err := fn(&batch[i]); err != nil {
				return err
			}
		}
		if !more {
			return nil
		}
	}
}

// OpenBySeverity counts open incidents per severity name, with every
// severity from info to critical present (zero when none).
func (s *Store) OpenBySeverity() (map[string]int, error) {
	out := map[string]int{}
	err := s.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketCounts)
		for sev := rules.SeverityInfo; sev <= rules.SeverityCritical; sev++ {
			out[sev.String()] = int(counter(b, openKey(sev)))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("count open incidents: %w", err)
	}
	return out, nil
}

// Count returns the number of stored incidents.
func (s *Store) Count() (int, error) {
	var n int64
	err := s.view(func(tx *bolt.Tx) error {
		n = counter(tx.Bucket(bucketCounts), keyTotal)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("count incidents: %w", err)
	}
	return int(n), nil
}

func (s *Store) maxSkew() (uint64, error) {
	var skew uint64
	err := s.view(func(tx *bolt.Tx) error {
		skew = readUint64(tx.Bucket(bucketCounts), keyMaxSkew)
		return nil
	})
	return skew, err
}

// timeBound turns a time into an id bound; times before 1970 bound at 0.
func timeBound(t time.Time) uint64 {
	ns := t.UnixNano()
	if ns < 0 {
		return 0
	}
	return uint64(ns)
}

// scanner yields incident records newest first with ids <= hi: straight
// from the incidents bucket, or, for a severity floor above info, by
// merging the index's runs (each in id order): one per class and severity
// at or above the floor in the class index, one per severity in schema 2's
// severity index.
type scanner struct {
	incs *bolt.Bucket
	full *bolt.Cursor
	hi   []byte
	// index mode: one cursor and current id per run
	runs []sevRun
	// orphans counts index entries whose incident could not be found.
	orphans int
}

type sevRun struct {
	prefix []byte
	c      *bolt.Cursor
	id     []byte // nil when the run is exhausted
}

func newScanner(tx *bolt.Tx, minSev rules.Severity, hi uint64) *scanner {
	sc := &scanner{incs: tx.Bucket(bucketIncidents), hi: rules.ID(hi).Bytes()}
	if minSev <= rules.SeverityInfo {
		return sc
	}
	var prefixes [][]byte
	idx := tx.Bucket(bucketByClass)
	if idx != nil {
		for class := classMasked; class <= classOpen; class++ {
			for sev := minSev; sev <= rules.SeverityCritical; sev++ {
				prefixes = append(prefixes, []byte{class, byte(sev)})
			}
		}
	} else {
		idx = tx.Bucket(bucketBySev) // schema 2, opened read-only
		for sev := minSev; sev <= rules.SeverityCritical; sev++ {
			prefixes = append(prefixes, []byte{byte(sev)})
		}
	}
	sc.runs = []sevRun{}
	for _, p := range prefixes {
		run := sevRun{prefix: p, c: idx.Cursor()}
		if k, _ := lastAtOrBelow(run.c, append(bytes.Clone(p), sc.hi...), len(p)); k != nil {
			run.id = k[len(p):]
			sc.runs = append(sc.runs, run)
		}
	}
	return sc
}

// lastAtOrBelow positions c at the last key <= bound that shares bound's
// first prefixLen bytes and has an 8-byte id after them.
func lastAtOrBelow(c *bolt.Cursor, bound []byte, prefixLen int) (k, v []byte) {
	k, v = c.Seek(bound)
	if k == nil {
		k, v = c.Last()
	} else if bytes.Compare(k, bound) > 0 {
		k, v = c.Prev()
	}
	if k == nil || len(k) != prefixLen+8 || !bytes.Equal(k[:prefixLen], bound[:prefixLen]) {
		return nil, nil
	}
	return k, v
}

func (sc *scanner) next() (key, val []byte) {
	if sc.runs == nil {
		if sc.full == nil {
			sc.full = sc.incs.Cursor()
			return lastAtOrBelow(sc.full, sc.hi, 0)
		}
		return sc.full.Prev()
	}
	for {
		best := -1
		for i := range sc.runs {
			if sc.runs[i].id != nil && (best < 0 || bytes.Compare(sc.runs[i].id, sc.runs[best].id) > 0) {
				best = i
			}
		}
		if best < 0 {
			return nil, nil
		}
		run := &sc.runs[best]
		key = bytes.Clone(run.id)
		k, _ := run.c.Prev()
		if n := len(run.prefix); k != nil && len(k) == n+8 && bytes.HasPrefix(k, run.prefix) {
			run.id = k[n:]
		} else {
			run.id = nil
		}
		if val = sc.incs.Get(key); val != nil {
			return key, val
		}
		// An index entry without its incident: damage (or a damaged
		// record replaced earlier). Counted, so the loss shows.
		sc.orphans++
	}
}
