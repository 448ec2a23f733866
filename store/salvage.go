package store

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"

	bolt "go.etcd.io/bbolt"
)

// A damaged page must fail only what it holds. bbolt trusts its pages: a
// page whose header is garbage makes it panic, and one whose elements
// point outside the page makes it read out of bounds. When a read meets
// such a page, the store falls back to reading the incidents' B+tree
// straight from the file: every page header and element is checked before
// it is used, a damaged page is skipped (and counted) with the subtree
// under it, and the walk goes on with its neighbours, which the parent
// branch page still names.
//
// The page format is bbolt's (version 2 files): a 16-byte header (page id
// uint64, flags uint16, element count uint16, overflow page count uint32)
// then count elements of 16 bytes. A branch element is (key offset uint32,
// key size uint32, child page id uint64); a leaf element is (flags uint32,
// key offset uint32, key size uint32, value size uint32), offsets counted
// from the element itself. bbolt writes them in the machine's byte order.

const (
	pageHeaderSize = 16
	elementSize    = 16
	branchFlag     = 0x01
	leafFlag       = 0x02
	bucketElement  = 0x01 // leaf element flag: the value is a sub-bucket
	maxTreeDepth   = 64   // deeper than any real tree: a loop in damaged pages
)

var native = binary.NativeEndian

// rawTree reads pages of one read transaction's snapshot from the file.
// The transaction pins the snapshot: bbolt does not reuse its pages while
// it is open.
type rawTree struct {
	f        *os.File
	pageSize int
	npages   uint64 // the high-water mark: pages at or past it are not in use
	buf      []byte
	// damagedPages counts pages skipped as damaged during the walk.
	damagedPages int
	// badElements counts leaf elements that point outside their page.
	badElements int
	problems    []string // the first few, for messages
}

func openRawTree(tx *bolt.Tx) (*rawTree, error) {
	f, err := os.Open(tx.DB().Path())
	if err != nil {
		return nil, fmt.Errorf("open for salvage: %w", err)
	}
	ps := tx.DB().Info().PageSize
	return &rawTree{f: f, pageSize: ps, npages: uint64(tx.Size()) / uint64(ps)}, nil
}

func (r *rawTree) close() { r.f.Close() }

func (r *rawTree) problem(format string, args ...any) {
	if len(r.problems) < 5 {
		r.problems = append(r.problems, fmt.Sprintf(format, args...))
	}
}

// page reads page id (with its overflow pages) and checks its header. The
// returned slice is valid until the next call.
func (r *rawTree) page(id uint64) ([]byte, bool) {
	if id < 2 || id >= r.npages {
		r.problem("page %d: out of range", id)
		return nil, false
	}
	size := r.pageSize
	if cap(r.buf) < size {
		r.buf = make([]byte, size)
	}
	p := r.buf[:size]
	if _, err := r.f.ReadAt(p, int64(id)*int64(r.pageSize)); err != nil {
		r.problem("page %d: %v", id, err)
		return nil, false
	}
	if native.Uint64(p) != id {
		r.problem("page %d: header names page %d", id, native.Uint64(p))
		return nil, false
	}
	if over := uint64(native.Uint32(p[12:])); over > 0 {
		if id+over >= r.npages {
			r.problem("page %d: %d overflow pages run past the end", id, over)
			return nil, false
		}
		size = int(over+1) * r.pageSize
		big := make([]byte, size)
		copy(big, p)
		if _, err := r.f.ReadAt(big[r.pageSize:], int64(id+1)*int64(r.pageSize)); err != nil {
			r.problem("page %d: %v", id, err)
			return nil, false
		}
		p = big
	}
	count := int(native.Uint16(p[10:]))
	if count == 0 || pageHeaderSize+count*elementSize > len(p) {
		r.problem("page %d: %d elements do not fit", id, count)
		return nil, false
	}
	return p, true
}

// element returns the key and value of element i of page p, checking that
// they lie within the page.
func element(p []byte, i int, branch bool) (flags uint32, key, val []byte, child uint64, ok bool) {
	off := pageHeaderSize + i*elementSize
	e := p[off : off+elementSize]
	if branch {
		pos, ksize := int(native.Uint32(e)), int(native.Uint32(e[4:]))
		start := off + pos
		if pos < elementSize || start+ksize > len(p) || ksize == 0 {
			return 0, nil, nil, 0, false
		}
		return 0, p[start : start+ksize], nil, native.Uint64(e[8:]), true
	}
	flags = native.Uint32(e)
	pos, ksize, vsize := int(native.Uint32(e[4:])), int(native.Uint32(e[8:])), int(native.Uint32(e[12:]))
	start := off + pos
	if pos < elementSize || ksize == 0 || start+ksize+vsize > len(p) || start+ksize+vsize < start {
		return 0, nil, nil, 0, false
	}
	return flags, p[start : start+ksize], p[start+ksize : start+ksize+vsize], 0, true
}

// walkDesc visits the leaf elements of the tree under page id in
// descending key order, starting at the last key <= hi (nil: no bound),
// until visit returns false. Damaged pages are counted and skipped with
// their subtree. It returns false when visit stopped the walk.
func (r *rawTree) walkDesc(id uint64, hi []byte, depth int, visit func(flags uint32, k, v []byte) bool) bool {
	if depth > maxTreeDepth {
		r.damagedPages++
		r.problem("page %d: the tree is deeper than %d levels", id, maxTreeDepth)
		return true
	}
	p, ok := r.page(id)
	if !ok {
		r.damagedPages++
		return true
	}
	count := int(native.Uint16(p[10:]))
	switch native.Uint16(p[8:]) {
	case branchFlag:
		type child struct {
			key []byte
			id  uint64
		}
		children := make([]child, 0, count)
		for i := range count {
			_, k, _, c, ok := element(p, i, true)
			if !ok || (i > 0 && bytes.Compare(k, children[i-1].key) <= 0) {
				r.damagedPages++
				r.problem("page %d: branch element %d is damaged", id, i)
				return true
			}
			children = append(children, child{bytes.Clone(k), c})
		}
		for i := count - 1; i >= 0; i-- {
			if hi != nil && i > 0 && bytes.Compare(children[i].key, hi) > 0 {
				continue
			}
			if !r.walkDesc(children[i].id, hi, depth+1, visit) {
				return false
			}
		}
		return true
	case leafFlag:
		// Copy the page: visit may decode values while the walk reads
		// other pages into r.buf.
		p = bytes.Clone(p)
		for i := count - 1; i >= 0; i-- {
			flags, k, v, _, ok := element(p, i, false)
			if !ok {
				r.badElements++
				r.problem("page %d: leaf element %d points outside the page", id, i)
				continue
			}
			if hi != nil && bytes.Compare(k, hi) > 0 {
				continue
			}
			if !visit(flags, k, v) {
				return false
			}
		}
		return true
	}
	r.damagedPages++
	r.problem("page %d: not a branch or leaf page (flags %#x)", id, native.Uint16(p[8:]))
	return true
}
