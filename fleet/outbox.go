package fleet

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/procwatch/procwatch/rules"
	"github.com/procwatch/procwatch/safepath"
)

// outbox is the agent's queue of incidents not yet acknowledged by
// JetStream, in a bbolt file of its own beside the incident database. It
// holds the latest version of each incident only: while the fleet is
// unreachable a storm of updates to one incident costs one message once
// it is back. Every version gets a revision from one persistent counter,
// so revisions only grow, across restarts too.
type outbox struct {
	db *bolt.DB
}

var (
	bucketPending = []byte("pending") // incident id (8 bytes) -> revision (8 bytes) + incident JSON
	bucketMeta    = []byte("meta")
	keyRevision   = []byte("revision") // last revision handed out
	keyAcked      = []byte("acked")    // revision of the last acknowledged message
	keyPending    = []byte("pending")  // entries in bucketPending, kept so status need not count them
)

// entry is one queued incident version.
type entry struct {
	ID   rules.ID
	Rev  uint64
	JSON []byte
}

// openOutbox opens (creating, 0600) the outbox file. Like the database it
// sits beside, its directory must be trusted and the file itself is never
// opened through a symbolic link.
func openOutbox(path string, noSync bool) (*outbox, error) {
	if err := safepath.CheckParent(path, safepath.NoGroup); err != nil {
		return nil, fmt.Errorf("fleet outbox %s: %w", path, err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second, NoSync: noSync, OpenFile: safepath.OpenFile})
	if err != nil {
		return nil, fmt.Errorf("open fleet outbox %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		if _, err := tx.CreateBucketIfNotExists(bucketPending); err != nil {
			return err
		}
		meta, err := tx.CreateBucketIfNotExists(bucketMeta)
		if err != nil {
			return err
		}
		// A new outbox starts its revisions at the current time in
		// microseconds, so an agent whose outbox was lost or deleted still
		// numbers new versions above those the fleet has seen (viewers keep
		// the highest revision; the stream drops a repeated message id).
		if meta.Get(keyRevision) == nil {
			return meta.Put(keyRevision, be(uint64(max(time.Now().UnixMicro(), 0))))
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("prepare fleet outbox %s: %w", path, err)
	}
	return &outbox{db: db}, nil
}

func (o *outbox) close() error { return o.db.Close() }

func u64(b []byte) uint64 {
	if len(b) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(b)
}

func be(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

// add queues incs in one transaction, each with the next revision.
func (o *outbox) add(incs []rules.Incident) error {
	return o.db.Update(func(tx *bolt.Tx) error {
		meta, pend := tx.Bucket(bucketMeta), tx.Bucket(bucketPending)
		rev, n := u64(meta.Get(keyRevision)), u64(meta.Get(keyPending))
		for i := range incs {
			b, err := json.Marshal(&incs[i])
			if err != nil {
				return fmt.Errorf("encode incident %s: %w", incs[i].ID, err)
			}
			rev++
			k := be(uint64(incs[i].ID))
			if pend.Get(k) == nil {
				n++
			}
			if err := pend.Put(k, append(be(rev), b...)); err != nil {
				return err
			}
		}
		if err := meta.Put(keyPending, be(n)); err != nil {
			return err
		}
		return meta.Put(keyRevision, be(rev))
	})
}

// next returns up to n queued entries, oldest incident first.
func (o *outbox) next(n int) ([]entry, error) {
	var out []entry
	err := o.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketPending).Cursor()
		for k, v := c.First(); k != nil && len(out) < n; k, v = c.Next() {
			if len(v) < 8 {
				return errors.New("fleet outbox: short entry")
			}
			out = append(out, entry{ID: rules.ID(u64(k)), Rev: u64(v[:8]), JSON: append([]byte(nil), v[8:]...)})
		}
		return nil
	})
	return out, err
}

// acked removes entries JetStream acknowledged, unless a newer version of
// the incident was queued meanwhile (that one still has to go).
func (o *outbox) acked(es []entry) error {
	if len(es) == 0 {
		return nil
	}
	return o.db.Update(func(tx *bolt.Tx) error {
		pend, meta := tx.Bucket(bucketPending), tx.Bucket(bucketMeta)
		last, n := u64(meta.Get(keyAcked)), u64(meta.Get(keyPending))
		for _, e := range es {
			k := be(uint64(e.ID))
			if v := pend.Get(k); len(v) >= 8 && u64(v[:8]) == e.Rev {
				if err := pend.Delete(k); err != nil {
					return err
				}
				n = max(n, 1) - 1
			}
			last = max(last, e.Rev)
		}
		if err := meta.Put(keyPending, be(n)); err != nil {
			return err
		}
		return meta.Put(keyAcked, be(last))
	})
}

// counts returns how many incidents wait, and the last revision handed
// out and acknowledged.
func (o *outbox) counts() (pending int, rev, acked uint64) {
	o.db.View(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		pending = int(u64(meta.Get(keyPending)))
		rev, acked = u64(meta.Get(keyRevision)), u64(meta.Get(keyAcked))
		return nil
	})
	return
}
