package store

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"sort"

	bolt "go.etcd.io/bbolt"

	"github.com/procwatch/procwatch/rules"
)

// Layout of the file (schema version 3). Every key and value format is
// documented in docs/store.md; change it only with a migration.
var (
	bucketMeta      = []byte("meta")       // magic, schema version
	bucketIncidents = []byte("incidents")  // id (8 bytes, big-endian) -> record (codec.go)
	bucketByClass   = []byte("by_class")   // eviction class (1) + severity (1) + id (8) -> empty
	bucketBySev     = []byte("by_sev")     // schema 2 only: severity (1) + id (8) -> empty
	bucketCounts    = []byte("counts")     // counter name -> uint64
	bucketNoise     = []byte("noise")      // noise counter key (noise.go) -> uint64
	bucketSkips     = []byte("skips")      // skip seq (8) -> rules.Skip as JSON
	bucketMasks     = []byte("masks")      // id (8) + skip seq (8) -> empty: the skip masked the incident
	bucketSkipMasks = []byte("skip_masks") // skip seq (8) + id (8) -> empty: the same, from the skip's side
	bucketSettings  = []byte("settings")   // setting name -> value

	keyMagic   = []byte("magic")
	keyVersion = []byte("schema_version")
	magic      = []byte("procwatch incident store")
)

// schemaVersion is the layout this code writes. Version 1 stored incidents
// as encoding/json documents and had no index or counter buckets; version
// 2 indexed incidents by severity alone (by_sev), version 3 by eviction
// class and severity (by_class), which count retention walks.
const schemaVersion = 3

// minReadableVersion is the oldest layout a read-only open can query
// without migrating: schema 2 differs only in its index.
const minReadableVersion = 2

// allBuckets lists the buckets of the current schema.
var allBuckets = [][]byte{bucketMeta, bucketIncidents, bucketByClass, bucketCounts, bucketNoise,
	bucketSkips, bucketMasks, bucketSkipMasks, bucketSettings}

// ErrSchemaTooNew is wrapped when the file was written by a newer procwatch
// whose layout this one does not know; the file is left alone.
var ErrSchemaTooNew = errors.New("database written by a newer procwatch")

// checkMeta reads the schema version. It returns 0 for a file with no
// buckets at all (a new database) and ErrNotProcwatch for a bbolt file that
// belongs to some other program.
func checkMeta(tx *bolt.Tx, path string) (uint32, error) {
	meta := tx.Bucket(bucketMeta)
	if meta == nil {
		empty := true
		_ = tx.ForEach(func([]byte, *bolt.Bucket) error { empty = false; return nil })
		if empty {
			return 0, nil
		}
		return 0, fmt.Errorf("open store %s: %w: it is a bbolt file of another program; move it away or pass another --db", path, ErrNotProcwatch)
	}
	if string(meta.Get(keyMagic)) != string(magic) {
		return 0, fmt.Errorf("open store %s: %w: unknown metadata; move it away or pass another --db", path, ErrNotProcwatch)
	}
	v := meta.Get(keyVersion)
	if len(v) != 4 {
		return 0, fmt.Errorf("open store %s: %w: schema version record is damaged", path, ErrNotProcwatch)
	}
	version := binary.BigEndian.Uint32(v)
	if version == 0 || version > schemaVersion {
		return version, fmt.Errorf("open store %s: %w: schema version %d, this procwatch knows up to %d; upgrade procwatch",
			path, ErrSchemaTooNew, version, schemaVersion)
	}
	return version, nil
}

// prepare creates the buckets of a new database or migrates an old one, in
// one transaction, so a crash leaves either the old or the new layout.
func (s *Store) prepare() error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	return s.update(func(tx *bolt.Tx) error {
		version, err := checkMeta(tx, s.path)
		if err != nil {
			return err
		}
		if version == schemaVersion {
			return nil
		}
		for _, name := range allBuckets {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return fmt.Errorf("open store %s: create bucket %s: %w", s.path, name, err)
			}
		}
		meta := tx.Bucket(bucketMeta)
		if err := meta.Put(keyMagic, magic); err != nil {
			return err
		}
		switch version {
		case 1:
			err = s.migrateV1(tx)
		case 2:
			err = s.migrateV2(tx)
		}
		if err != nil {
			return fmt.Errorf("open store %s: migrate schema %d to %d: %w", s.path, version, schemaVersion, err)
		}
		if version != 0 {
			s.log.Info("store migrated", "path", s.path, "from", version, "to", schemaVersion)
		}
		return meta.Put(keyVersion, binary.BigEndian.AppendUint32(nil, schemaVersion))
	})
}

// checkReadable verifies a read-only store has the current layout; a
// read-only process cannot migrate.
func (s *Store) checkReadable() error {
	return s.view(func(tx *bolt.Tx) error {
		version, err := checkMeta(tx, s.path)
		switch {
		case err != nil:
			return err
		case version == 0:
			return fmt.Errorf("open store %s: the database is still being created; try again", s.path)
		case version < minReadableVersion:
			return fmt.Errorf("open store %s: schema version %d needs an upgrade to %d; run `procwatch agent` once to migrate it",
				s.path, version, schemaVersion)
		}
		return nil
	})
}

// migrateV1 re-encodes version 1 incidents (JSON documents) in the compact
// record format and builds the severity index and the counters that
// version 1 did not have. Skips and settings kept their format.
func (s *Store) migrateV1(tx *bolt.Tx) error {
	w := s.newWriteTx(tx)
	old := tx.Bucket(bucketIncidents)
	// Collect first: rewriting values while a cursor walks the same bucket
	// is not allowed in bbolt.
	type rec struct {
		key []byte
		inc rules.Incident
	}
	var recs []rec
	err := old.ForEach(func(k, v []byte) error {
		var inc rules.Incident
		if err := json.Unmarshal(v, &inc); err != nil {
			return fmt.Errorf("incident %x: %w", k, err)
		}
		if len(k) != 8 {
			return fmt.Errorf("incident key %x: want 8 bytes", k)
		}
		inc.ID = idFromKey(k)
		recs = append(recs, rec{append([]byte(nil), k...), inc})
		return nil
	})
	if err != nil {
		return err
	}
	var keys classKeys
	for i := range recs {
		w.s.buf = w.s.enc.encodeIncident(w.s.buf[:0], &recs[i].inc)
		if err := w.incs.Put(recs[i].key, bytes.Clone(w.s.buf)); err != nil {
			return err
		}
		keys = append(keys, classKey(&recs[i].inc, recs[i].key)...)
		w.account(&recs[i].inc, +1)
		w.noteSkew(&recs[i].inc)
	}
	if err := w.putClassKeys(keys); err != nil {
		return err
	}
	return w.finish()
}

// migrateV2 replaces schema 2's severity index by the eviction-class index:
// every record is read once for its status, severity and id skew. The
// index keys are sorted before they are written: bbolt splits nodes only
// at commit, so a million keys put in id order (spread over fifteen class
// and severity runs) would each shift a growing node, while keys put in
// key order are appended.
func (s *Store) migrateV2(tx *bolt.Tx) error {
	w := s.newWriteTx(tx)
	var keys classKeys
	err := w.incs.ForEach(func(k, v []byte) error {
		var inc rules.Incident
		if err := decodeIncident(k, v, &inc); err != nil {
			s.log.Warn("store: migrating an unreadable incident", "id", fmt.Sprintf("%x", k), "err", err)
			inc.Status, inc.Severity = rules.StatusOpen, rules.SeverityInfo
		} else {
			// Databases migrated from schema 1 by older code lack the
			// id skew; reads now check ids against it.
			w.noteSkew(&inc)
		}
		if len(k) == 8 {
			keys = append(keys, classKey(&inc, k)...)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if err := w.putClassKeys(keys); err != nil {
		return err
	}
	if err := w.finish(); err != nil {
		return err
	}
	if tx.Bucket(bucketBySev) != nil {
		return tx.DeleteBucket(bucketBySev)
	}
	return nil
}

// putClassKeys writes a migration's class index keys in key order (see
// migrateV2 for why).
func (w *writeTx) putClassKeys(keys classKeys) error {
	sort.Sort(keys)
	for i := 0; i < len(keys); i += classKeyLen {
		if err := w.byClass.Put(keys[i:i+classKeyLen:i+classKeyLen], nil); err != nil {
			return err
		}
	}
	return nil
}

// classKeyLen is the length of a class index key: class, severity, id.
const classKeyLen = 10

// classKeys holds class index keys back to back, 10 bytes each, so that a
// million of them take 10 MB in one allocation while they are sorted.
type classKeys []byte

func (k classKeys) Len() int { return len(k) / classKeyLen }
func (k classKeys) Less(i, j int) bool {
	return bytes.Compare(k[i*classKeyLen:(i+1)*classKeyLen], k[j*classKeyLen:(j+1)*classKeyLen]) < 0
}
func (k classKeys) Swap(i, j int) {
	var t [classKeyLen]byte
	a, b := k[i*classKeyLen:(i+1)*classKeyLen], k[j*classKeyLen:(j+1)*classKeyLen]
	copy(t[:], a)
	copy(a, b)
	copy(b, t[:])
}

// idFromKey reads an incident key; a key of the wrong length (damage) reads
// as id 0 rather than panicking.
func idFromKey(k []byte) rules.ID {
	if len(k) != 8 {
		return 0
	}
	return rules.ID(binary.BigEndian.Uint64(k))
}
