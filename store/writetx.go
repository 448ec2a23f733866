package store

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"slices"

	bolt "go.etcd.io/bbolt"

	"github.com/procwatch/procwatch/rules"
)

// appendFill is the page fill for buckets whose keys only grow (ids): pages
// split nearly full, so the file holds little slack.
const appendFill = 0.95

// Counter names in bucketCounts.
var (
	keyTotal = []byte("total") // every stored incident
	// keyMaxSkew holds the largest id - raise time (ns) ever stored. Ids
	// are normally their raise time plus a few nanoseconds, but a clock
	// stepped back makes rules.NewID hand out ids ahead of their time for
	// a while. Queries with Until widen their id bound by this much, so
	// they stay exact; it never shrinks, which only costs speed.
	keyMaxSkew = []byte("max_skew")
	// keyEvicted counts the incidents count retention has deleted since
	// the database was created (never decreases).
	keyEvicted = []byte("evicted_by_count")
)

// openKey names the counter of open incidents of one severity.
func openKey(sev rules.Severity) []byte { return []byte{'o', 'p', 'e', 'n', '/', byte(sev)} }

// writeTx bundles one write transaction's buckets with the counter changes
// it has made so far. Counters are summed in memory and written once at the
// end, so a batch of thousands of incidents with the same command touches
// each counter key once.
type writeTx struct {
	s                                                  *Store
	tx                                                 *bolt.Tx
	incs, byClass, counts, noise, masks, skips, skipMs *bolt.Bucket
	countDelta                                         map[string]int64
	noiseDelta                                         map[string]int64
	maxSkew                                            uint64
	// evicted and evictedRank say what count retention deleted in this
	// transaction: how many, and the class<<8|severity of the last one
	// (the highest rank reached).
	evicted, evictedRank int64
}

func (s *Store) newWriteTx(tx *bolt.Tx) *writeTx {
	w := &writeTx{
		s:          s,
		tx:         tx,
		incs:       tx.Bucket(bucketIncidents),
		byClass:    tx.Bucket(bucketByClass),
		counts:     tx.Bucket(bucketCounts),
		noise:      tx.Bucket(bucketNoise),
		masks:      tx.Bucket(bucketMasks),
		skips:      tx.Bucket(bucketSkips),
		skipMs:     tx.Bucket(bucketSkipMasks),
		countDelta: map[string]int64{},
		noiseDelta: map[string]int64{},
	}
	w.incs.FillPercent = appendFill
	w.byClass.FillPercent = appendFill
	// Noise keys start with their period, so new ones land at the end of
	// each resolution's range: nearly append-only as well.
	w.noise.FillPercent = appendFill
	return w
}

// upsert stores inc, replacing the incident with the same ID. The stored
// status wins over inc.Status: status belongs to triage (SetStatus, skips),
// while the rules engine sends repeats of an incident as "open" with a
// higher count. inc.Status is updated to what was stored.
func (w *writeTx) upsert(inc *rules.Incident) error {
	key := inc.ID.Bytes()
	if v := w.incs.Get(key); v != nil {
		var prev rules.Incident
		if err := decodeIncident(key, v, &prev); err != nil {
			// A damaged record is replaced by the new one; its share of
			// the counters is unknown and stays.
			w.s.log.Warn("store: replacing unreadable incident", "id", inc.ID.String(), "err", err)
		} else {
			inc.Status = prev.Status
			keepExeSHA256(inc, &prev)
			w.account(&prev, -1)
			if prev.Severity != inc.Severity {
				if err := w.byClass.Delete(classKey(&prev, key)); err != nil {
					return err
				}
			}
		}
	}
	if inc.Status == "" {
		inc.Status = rules.StatusOpen
	}
	if err := w.putRecord(key, inc); err != nil {
		return err
	}
	w.account(inc, +1)
	w.noteSkew(inc)
	return nil
}

// keepExeSHA256 keeps the exe_sha256 given to a stored incident after it
// was raised (SetExeSHA256) when a repeat of it, judged before the hash
// was known, arrives without one for the same binary.
func keepExeSHA256(inc, prev *rules.Incident) {
	p, q := &inc.Process, &prev.Process
	if p.ExeSHA256 == "" && q.ExeSHA256 != "" && p.ExeDev == q.ExeDev && p.ExeIno == q.ExeIno {
		p.ExeSHA256 = q.ExeSHA256
	}
}

// noteSkew raises the stored id skew (keyMaxSkew) to cover inc.
func (w *writeTx) noteSkew(inc *rules.Incident) {
	if id, t := uint64(inc.ID), timeBound(inc.Time); id > t && id-t > w.maxSkew {
		w.maxSkew = id - t
	}
}

// putRecord writes the record and its class index entry, without
// touching counters. bbolt keeps references to keys and values until the
// commit, so each gets its own allocation.
func (w *writeTx) putRecord(key []byte, inc *rules.Incident) error {
	w.s.buf = w.s.enc.encodeIncident(w.s.buf[:0], inc)
	val := bytes.Clone(w.s.buf)
	if err := w.incs.Put(key, val); err != nil {
		return fmt.Errorf("put incident %s: %w", inc.ID, err)
	}
	if err := w.byClass.Put(classKey(inc, key), nil); err != nil {
		return fmt.Errorf("index incident %s: %w", inc.ID, err)
	}
	return nil
}

// load reads the stored incident id into inc. found is false when there is
// none; err is a record that does not decode (the caller decides whether
// that fails the transaction or is skipped and counted).
func (w *writeTx) load(id rules.ID, inc *rules.Incident) (key []byte, found bool, err error) {
	key = id.Bytes()
	v := w.incs.Get(key)
	if v == nil {
		return key, false, nil
	}
	return key, true, decodeIncident(key, v, inc)
}

// setStatus rewrites one stored incident with a new status.
func (w *writeTx) setStatus(key []byte, inc *rules.Incident, st rules.Status) error {
	if inc.Status == st {
		return nil
	}
	w.account(inc, -1)
	if err := w.byClass.Delete(classKey(inc, key)); err != nil {
		return err
	}
	inc.Status = st
	if err := w.putRecord(key, inc); err != nil {
		return err
	}
	w.account(inc, +1)
	return nil
}

// remove deletes a stored incident with its index entry and mask links.
func (w *writeTx) remove(key []byte, inc *rules.Incident) error {
	if err := w.incs.Delete(key); err != nil {
		return err
	}
	if err := w.byClass.Delete(classKey(inc, key)); err != nil {
		return err
	}
	if err := w.clearMasks(key); err != nil {
		return err
	}
	w.account(inc, -1)
	return nil
}

// clearMasks removes every skip's mask link to the incident with key id.
func (w *writeTx) clearMasks(id []byte) error {
	var links [][]byte
	c := w.masks.Cursor()
	for k, _ := c.Seek(id); k != nil && bytes.HasPrefix(k, id); k, _ = c.Next() {
		links = append(links, bytes.Clone(k))
	}
	for _, k := range links {
		if err := w.masks.Delete(k); err != nil {
			return err
		}
		if err := w.skipMs.Delete(append(bytes.Clone(k[8:]), id...)); err != nil {
			return err
		}
	}
	return nil
}

// maskedBySkip reports whether any skip holds a mask link to the incident.
func (w *writeTx) maskedBySkip(id []byte) bool {
	k, _ := w.masks.Cursor().Seek(id)
	return k != nil && bytes.HasPrefix(k, id)
}

// account adds sign times inc's share to the counters: the total, the open
// count of its severity, and (unless masked) the noise counters.
func (w *writeTx) account(inc *rules.Incident, sign int64) {
	w.countDelta[string(keyTotal)] += sign
	if inc.Status == rules.StatusOpen {
		w.countDelta[string(openKey(inc.Severity))] += sign
	}
	if inc.Status != rules.StatusMasked {
		forNoiseKeys(inc, func(k []byte) { w.noiseDelta[string(k)] += sign })
	}
}

// total returns the number of stored incidents as this transaction sees it.
func (w *writeTx) total() int64 {
	return counter(w.counts, keyTotal) + w.countDelta[string(keyTotal)]
}

// finish writes the summed counter changes.
func (w *writeTx) finish() error {
	if err := applyDeltas(w.counts, w.countDelta); err != nil {
		return fmt.Errorf("update counters: %w", err)
	}
	if err := applyDeltas(w.noise, w.noiseDelta); err != nil {
		return fmt.Errorf("update noise counters: %w", err)
	}
	clear(w.countDelta)
	clear(w.noiseDelta)
	if w.maxSkew > readUint64(w.counts, keyMaxSkew) {
		if err := w.counts.Put(keyMaxSkew, binary.BigEndian.AppendUint64(nil, w.maxSkew)); err != nil {
			return fmt.Errorf("update id skew: %w", err)
		}
	}
	return nil
}

// applyDeltas adds each delta to its counter, in key order so that the
// pages touched are visited once; counters that reach zero are deleted.
func applyDeltas(b *bolt.Bucket, deltas map[string]int64) error {
	keys := make([]string, 0, len(deltas))
	for k, d := range deltas {
		if d != 0 {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		key := []byte(k)
		v := counter(b, key) + deltas[k]
		var err error
		if v <= 0 {
			err = b.Delete(key)
		} else {
			err = b.Put(key, binary.BigEndian.AppendUint64(nil, uint64(v)))
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// readUint64 reads an 8-byte big-endian value; a missing or damaged one
// reads as 0.
func readUint64(b *bolt.Bucket, key []byte) uint64 {
	v := b.Get(key)
	if len(v) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(v)
}

// counter reads a counter as a signed number, so deltas can be added to it.
func counter(b *bolt.Bucket, key []byte) int64 { return int64(readUint64(b, key)) }

// Eviction classes, in the order count retention deletes them: masked
// incidents first, then acknowledged ones, then open ones. Within a class
// the lower severity goes first, and within a severity the older id.
const (
	classMasked byte = iota
	classAcknowledged
	classOpen
)

// evictionClass ranks a status; an unknown status counts as open, so it is
// kept as long as an open incident of its severity would be.
func evictionClass(st rules.Status) byte {
	switch st {
	case rules.StatusMasked:
		return classMasked
	case rules.StatusAcknowledged:
		return classAcknowledged
	}
	return classOpen
}

// classKey is an incident's key in the class index: class, severity, id.
// Sorted, the index lists incidents in the order count retention deletes
// them.
func classKey(inc *rules.Incident, id []byte) []byte {
	k := make([]byte, 0, 10)
	k = append(k, evictionClass(inc.Status), byte(inc.Severity))
	return append(k, id...)
}
