package store

import (
	"sync/atomic"

	bolt "go.etcd.io/bbolt"
)

// releaseEvery is how many bytes of records reads may fault into the
// memory-mapped file before the store hands the mapped pages back to the
// kernel (see releaseMapped).
const releaseEvery = 8 << 20

// mappedReads counts bytes of records read through the mapping since the
// last release. A plain counter shared by every reader: which read pays
// for the release does not matter.
type mappedReads struct{ n atomic.Int64 }

// note adds n bytes read and reports whether a release is due.
func (m *mappedReads) note(n int) bool {
	if m.n.Add(int64(n)) < releaseEvery {
		return false
	}
	m.n.Store(0)
	return true
}

// releaseMapped tells the kernel that the pages of the database's mapping
// are not needed for now. bbolt maps the file read-only and shared and
// writes through the file, never the mapping, so nothing is lost: the
// pages stay in the page cache and a later read faults them back in. It
// keeps the agent's resident memory from growing by the whole file after
// the start-up check or a read of every incident. It runs inside a
// transaction, so bbolt cannot remap the file under it.
func releaseMapped(tx *bolt.Tx) {
	info := tx.DB().Info()
	if info == nil || info.Data == 0 {
		return
	}
	adviseDontNeed(info.Data, uintptr(tx.Size()))
}
