package pipeline

import (
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/procwatch/procwatch/event"
	"github.com/procwatch/procwatch/rules"
)

// Bounds of the incidents that wait for their binary's SHA-256.
const (
	// maxLateFiles bounds the binaries waited for at once; an incident of
	// one more is not waited for (counted in ExeHashStats.Unattached).
	// The hash cache's queue (256) keeps the number far below it.
	maxLateFiles = 1024
	// maxLatePerFile bounds the incidents waiting for one binary.
	maxLatePerFile = 8
	// lateServed is how many "file served" notices may wait for the
	// updater; past it the updater goes over every waiting file once.
	lateServed = 1024
	// lateGather is how long the updater gathers served files before it
	// writes their incidents to the store in one transaction.
	lateGather = 50 * time.Millisecond
	// lateMaxAge is how long a file may wait without its notice before
	// it is given up (counted), when notices were lost.
	lateMaxAge = time.Minute
)

// lateHashes remembers the incidents raised before their binary's SHA-256
// was known, by the binary's (device, inode), and gives them the sum when
// the background hash is done. The event path only appends to a bounded
// list; the store write happens on the updater's goroutine.
type lateHashes struct {
	// mu is held by handle from the hash lookup that missed until the
	// incidents are queued in the store and remembered here: a hash that
	// completes meanwhile is seen by the lookup or finds them remembered.
	mu       sync.Mutex
	files    map[[2]uint64]*lateFile
	served   chan [2]uint64
	overflow atomic.Bool // a served notice was lost: look at every file

	attached, unattached atomic.Uint64
}

type lateFile struct {
	since time.Time // when the first incident began to wait
	incs  []lateInc
}

type lateInc struct {
	id    rules.ID
	ranAt time.Time // the incident's first exec: the file must be older
}

func newLateHashes() *lateHashes {
	return &lateHashes{files: map[[2]uint64]*lateFile{}, served: make(chan [2]uint64, lateServed)}
}

// notify is the hash cache's OnServed hook; it never blocks.
func (h *lateHashes) notify(dev, ino uint64) {
	select {
	case h.served <- [2]uint64{dev, ino}:
	default:
		h.overflow.Store(true)
	}
}

// addLocked remembers the incidents of ev's binary that have no sum yet;
// h.mu held.
func (h *lateHashes) addLocked(ev *event.Event, incs []rules.Incident) {
	id := [2]uint64{ev.ExeDev, ev.ExeIno}
	for i := range incs {
		p := &incs[i].Process
		if p.ExeSHA256 != "" || incs[i].ID == 0 || p.ExeDev != ev.ExeDev || p.ExeIno != ev.ExeIno || p.Time.IsZero() {
			continue
		}
		f := h.files[id]
		if f == nil {
			if len(h.files) >= maxLateFiles {
				h.unattached.Add(1)
				continue
			}
			f = &lateFile{since: time.Now()}
			h.files[id] = f
		}
		if f.has(incs[i].ID) {
			continue
		}
		if len(f.incs) >= maxLatePerFile {
			h.unattached.Add(1)
			continue
		}
		f.incs = append(f.incs, lateInc{incs[i].ID, p.Time})
	}
}

func (f *lateFile) has(id rules.ID) bool {
	for _, w := range f.incs {
		if w.id == id {
			return true
		}
	}
	return false
}

// take removes and returns the waiting files named in ids, or every
// waiting file after a lost notice (sweep).
func (h *lateHashes) take(ids [][2]uint64) (files map[[2]uint64]*lateFile, sweep bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make(map[[2]uint64]*lateFile, len(ids))
	if h.overflow.Swap(false) {
		out, h.files = h.files, map[[2]uint64]*lateFile{}
		return out, true
	}
	for _, id := range ids {
		if f := h.files[id]; f != nil {
			out[id] = f
			delete(h.files, id)
		}
	}
	return out, false
}

// putBack returns a file taken by a sweep whose hash is not known yet,
// unless it waited too long; h.mu not held.
func (h *lateHashes) putBack(id [2]uint64, f *lateFile, now time.Time) bool {
	if now.Sub(f.since) > lateMaxAge {
		return false
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if g := h.files[id]; g != nil {
		// Remembered again meanwhile: keep both lists, within the bound.
		for _, w := range f.incs {
			if !g.has(w.id) && len(g.incs) < maxLatePerFile {
				g.incs = append(g.incs, w)
			}
		}
		return true
	}
	if len(h.files) >= maxLateFiles {
		return false
	}
	h.files[id] = f
	return true
}

// runLateHashes gives incidents their binary's SHA-256 as the hash cache
// serves the files, until stop is closed.
func (l *Local) runLateHashes(stop <-chan struct{}) {
	h := l.late
	for {
		var ids [][2]uint64
		select {
		case <-stop:
			return
		case id := <-h.served:
			ids = append(ids, id)
		}
		gather := time.NewTimer(lateGather)
	more:
		for {
			select {
			case id := <-h.served:
				ids = append(ids, id)
			case <-gather.C:
				break more
			case <-stop:
				gather.Stop()
				return
			}
		}
		l.attachLate(h.take(ids))
	}
}

// attachLate writes the sums of the served files to their incidents
// (those whose file is unchanged since it ran) and hands the changed
// incidents to subscribers and OnIncident like any update.
func (l *Local) attachLate(files map[[2]uint64]*lateFile, sweep bool) {
	h := l.late
	sums := map[rules.ID]string{}
	waiting := 0
	now := time.Now()
	for id, f := range files {
		n := len(sums)
		for _, w := range f.incs {
			if s := l.hashes.Verified(id[0], id[1], w.ranAt); s != "" {
				sums[w.id] = s
			}
		}
		// A sweep finds files not served yet: they wait on.
		if sweep && len(sums) == n && h.putBack(id, f, now) {
			continue
		}
		waiting += len(f.incs)
	}
	if waiting == 0 {
		return
	}
	// Those whose file changed since it ran (or could not be hashed)
	// keep no sum; those evicted or given one by a repeat meanwhile are
	// not counted.
	h.unattached.Add(uint64(waiting - len(sums)))
	changed, err := l.cfg.Store.SetExeSHA256(sums)
	if err != nil {
		h.unattached.Add(uint64(len(sums)))
		l.log.Warn("incidents keep no exe_sha256", "incidents", len(sums), "err", err)
	}
	h.attached.Add(uint64(len(changed)))
	if len(changed) == 0 {
		return
	}
	l.maskPinned(changed)
	if l.cfg.OnIncident != nil {
		for _, inc := range changed {
			l.cfg.OnIncident(inc)
		}
	}
	// Through the pending batch, behind the sighting that raised them.
	if l.nsubs.Load() > 0 {
		l.queueIncidents(changed)
		l.events.Signal() // wake fanOut: no event comes with them
	}
}

// maskPinned masks the incidents of changed, just given their binary's
// hash, that a skip pinned to that hash covers: the skip would have
// silenced them had the hash been known when they were raised (a pinned
// skip never silences an unknown hash). changed is updated in place.
func (l *Local) maskPinned(changed []rules.Incident) {
	pins := l.engine.PinnedSkips()
	if len(pins) == 0 {
		return
	}
	// As AddSkip and RemoveSkip: a skip removed meanwhile masks nothing
	// (MaskForSkip checks it is still stored), and repeats then carry the
	// new status (the triage cache is refreshed).
	l.skipMu.Lock()
	defer l.skipMu.Unlock()
	defer l.triage.forget()
	at := make(map[rules.ID]int, len(changed))
	for i := range changed {
		at[changed[i].ID] = i
	}
	self := rules.Actor{UID: uint32(os.Getuid()), PID: uint32(os.Getpid()), Via: "local"}
	for _, sk := range pins {
		covers := sk.Coverer()
		var ids []rules.ID
		for i := range changed {
			if changed[i].Status == rules.StatusOpen && covers(&changed[i]) {
				ids = append(ids, changed[i].ID)
			}
		}
		if len(ids) == 0 {
			continue
		}
		masked, err := l.cfg.Store.MaskForSkip(sk.ID, ids, self)
		if err != nil {
			l.log.Warn("incidents a pinned skip covers stay open", "skip", sk.ID, "incidents", len(ids), "err", err)
			continue
		}
		for _, inc := range masked {
			changed[at[inc.ID]] = inc
		}
		if len(masked) > 0 {
			l.log.Info("masked incidents once their binary's hash matched a pinned skip", "skip", sk.ID, "path", sk.Value, "incidents", len(masked))
		}
	}
}
