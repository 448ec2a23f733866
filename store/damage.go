package store

import (
	"errors"
	"fmt"
	"runtime/debug"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/procwatch/procwatch/api"
	"github.com/procwatch/procwatch/rules"
)

// ErrDamaged is wrapped by *DamagedError; it is api.ErrDamaged, so
// front ends can tell a partial read from a failure without this package.
var ErrDamaged = api.ErrDamaged

// DamagedError is returned by Each, Query and Export after they delivered
// every incident they could read, when some could not be: records that do
// not decode, or pages that are damaged. Callers show what they got and
// this error as a warning.
type DamagedError struct {
	Path string
	// Records counts records that did not decode or pointed outside their
	// page; Pages counts damaged pages skipped with what they held.
	Records, Pages int
	// Missing is how many stored incidents the read did not return, from
	// the stored total, when it covered every incident (no filter); else
	// 0, as what damaged pages held is unknown.
	Missing int
}

// Skipped is the number of incidents known to be lost to the damage.
func (e *DamagedError) Skipped() int { return max(e.Records, e.Missing) }

func (e *DamagedError) Error() string {
	what := fmt.Sprintf("%d unreadable incidents were skipped", e.Skipped())
	if e.Pages > 0 && e.Missing == 0 {
		what = fmt.Sprintf("%d unreadable incidents and %d damaged pages (holding an unknown number) were skipped", e.Records, e.Pages)
	}
	return fmt.Sprintf("%s in %s; every other incident was read (copy the file somewhere safe; `procwatch agent` reports the damage when it starts)", what, e.Path)
}

func (e *DamagedError) Unwrap() error { return ErrDamaged }

// errCorruptPage marks a read that bbolt could not finish because a page
// is damaged (it panicked or faulted); Each then salvages.
var errCorruptPage = errors.New("corrupt page")

// damage tallies what one read skipped.
type damage struct{ records, pages int }

func (d damage) any() bool { return d.records > 0 || d.pages > 0 }

// unreadable counts and logs a record that does not decode. The log is
// limited to one line a minute: a damaged page read again and again must
// not flood it.
func (s *Store) unreadable(key []byte, err error) {
	s.unreadableN.Add(1)
	s.emu.Lock()
	defer s.emu.Unlock()
	if now := time.Now(); now.Sub(s.damageLogged) >= time.Minute {
		s.damageLogged = now
		s.log.Warn("store: skipping an unreadable incident record (damaged database)", "path", s.path,
			"id", fmt.Sprintf("%x", key), "err", err, "unreadable_total", s.unreadableN.Load())
	}
}

// finishRead turns a read's tally into its result: nil, or a
// *DamagedError. complete says the read covered every stored incident, so
// the stored total tells how many it missed.
// A complete read that found no damage but fewer incidents than stored
// also met damage: bbolt followed a garbled page without noticing.
func (s *Store) finishRead(d damage, complete bool, delivered int) error {
	missing := 0
	if complete {
		if total, err := s.Count(); err == nil && total > delivered {
			missing = total - delivered
		}
	}
	if !d.any() && missing == 0 {
		return nil
	}
	if missing > d.records {
		s.unreadableN.Add(uint64(missing - d.records))
	}
	return &DamagedError{Path: s.path, Records: d.records, Pages: d.pages, Missing: missing}
}

// salvageChunk reads incidents with lo <= id <= hi straight from the
// file's pages (see salvage.go), newest first, into batch: at most
// readChunk matches or scanChunk records looked at. It returns the id to
// resume at (ids <= next) and whether the walk is done.
func (s *Store) salvageChunk(q api.Query, lo, hi uint64, emitted int, batch *[]rules.Incident, d *damage) (next uint64, done bool, err error) {
	done = true
	err = s.view(func(tx *bolt.Tx) error {
		r, err := openRawTree(tx)
		if err != nil {
			return err
		}
		defer r.close()
		root := uint64(tx.Bucket(bucketIncidents).Root())
		if root == 0 {
			return fmt.Errorf("%w: the incidents are inline in a damaged page", errCorruptPage)
		}
		scanned := 0
		skew := readUint64(tx.Bucket(bucketCounts), keyMaxSkew)
		r.walkDesc(root, rules.ID(hi).Bytes(), 0, func(flags uint32, k, v []byte) bool {
			id := idFromKey(k)
			if flags&bucketElement != 0 || id == 0 {
				d.records++
				return true
			}
			if uint64(id) < lo {
				return false
			}
			if len(*batch) == readChunk || scanned == scanChunk {
				next, done = uint64(id), false
				return false
			}
			scanned++
			var inc rules.Incident
			if err := s.decodeChecked(k, v, &inc, skew); err != nil {
				d.records++
				s.unreadable(k, err)
				return true
			}
			if !q.Matches(&inc) {
				return true
			}
			*batch = append(*batch, inc)
			return q.Limit == 0 || emitted+len(*batch) < q.Limit
		})
		d.pages += r.damagedPages
		d.records += r.badElements
		if r.damagedPages > 0 || r.badElements > 0 {
			s.log.Warn("store: skipped damaged pages while reading", "path", s.path, "pages", r.damagedPages,
				"records", r.badElements, "first", strings.Join(r.problems, "; "))
		}
		return nil
	})
	return next, done, err
}

// Check verifies the whole file as `bbolt check` does, after checking the
// incidents' pages and records itself (bbolt's own check trusts element
// offsets, so it runs only when they are sound). It returns nil for a
// sound database, and keeps its finding for Status.
func (s *Store) Check() error {
	err := s.view(func(tx *bolt.Tx) error {
		// The check reads every page through the mapping: hand them back.
		defer releaseMapped(tx)
		r, err := openRawTree(tx)
		if err != nil {
			return err
		}
		defer r.close()
		records, bad := 0, 0
		skew := readUint64(tx.Bucket(bucketCounts), keyMaxSkew)
		check := func(flags uint32, k, v []byte) bool {
			records++
			var inc rules.Incident
			if flags&bucketElement != 0 || s.decodeChecked(k, v, &inc, skew) != nil {
				bad++
			}
			return true
		}
		if root := uint64(tx.Bucket(bucketIncidents).Root()); root != 0 {
			r.walkDesc(root, nil, 0, check)
		} else {
			// A small bucket lives inline in its parent's page.
			_ = tx.Bucket(bucketIncidents).ForEach(func(k, v []byte) error { check(0, k, v); return nil })
		}
		if r.damagedPages > 0 || r.badElements > 0 || bad > 0 {
			return fmt.Errorf("%d damaged pages and %d unreadable incident records (%s)", r.damagedPages, bad+r.badElements, strings.Join(r.problems, "; "))
		}
		if total := counter(tx.Bucket(bucketCounts), keyTotal); int64(records) != total {
			return fmt.Errorf("%d incident records but the counters say %d", records, total)
		}
		var errs []string
		for err := range tx.Check() {
			if len(errs) < 5 {
				errs = append(errs, err.Error())
			}
		}
		if len(errs) > 0 {
			return errors.New(strings.Join(errs, "; "))
		}
		return nil
	})
	if err != nil {
		err = fmt.Errorf("consistency check of %s failed: %w", s.path, err)
		msg := err.Error()
		s.checkErr.Store(&msg)
		return err
	}
	s.checkErr.Store(nil)
	return nil
}

// guardFaults makes a memory fault in this goroutine (bbolt following a
// damaged page's offsets out of its mapping) a panic that view can
// recover, instead of a crash. It returns the function that restores the
// previous setting.
func guardFaults() func() {
	old := debug.SetPanicOnFault(true)
	return func() { debug.SetPanicOnFault(old) }
}
