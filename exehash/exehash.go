// Package exehash computes the SHA-256 of executables in user space and
// caches it by file identity (device, inode) and version (mtime, ctime,
// size), so the event path never reads a binary: it asks the cache, which
// answers with one stat or says "not known yet" and hashes in the
// background.
//
// The cache is what pinned skips rely on ("this exact file"), so it fails
// closed: a hash is given only for the file the event names (same device
// and inode) in the version that was hashed (same mtime, ctime and size).
// ctime cannot be set from user space, so rewriting a file and restoring
// its mtime still changes the version and the hash is unknown until it is
// computed again.
package exehash

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/procwatch/procwatch/event"
)

// Key identifies one version of one file.
type Key struct {
	Dev, Ino uint64
	Mtime    int64 // nanoseconds
	Ctime    int64 // nanoseconds
	Size     int64
}

// Defaults of Options.
const (
	DefaultEntries = 4096
	DefaultQueue   = 256
	// DefaultMaxSize bounds the files hashed: a larger "binary" is left
	// unhashed (and so never matches a pin) rather than read for seconds.
	DefaultMaxSize = 1 << 30
)

// Options tunes a Cache; zero fields take the defaults.
type Options struct {
	Entries int   // cached hashes kept; past it the cache is emptied and refilled
	Queue   int   // hash requests waiting for the worker; past it requests are dropped (counted)
	MaxSize int64 // files larger than this are not hashed
	// ProcRoot is where /proc is mounted; tests leave it empty.
	ProcRoot string
}

// Stats counts what the cache did, so nothing is lost silently.
type Stats struct {
	Hits, Misses, Hashed, Failed, Dropped uint64
	Entries                               int
}

// Cache maps files and their versions to SHA-256 sums. Lookup is safe from any
// goroutine; Run hashes the requested files in the background.
type Cache struct {
	opts Options
	mu   sync.RWMutex
	// files holds, per file (device, inode), the version last hashed and
	// its sum: a lookup for a file never hashed costs no stat at all.
	files map[[2]uint64]entry
	// inflight holds the files (device, inode) queued and not yet served,
	// so a storm of execs of one new binary queues it once.
	inflight map[[2]uint64]struct{}
	reqs     chan request
	// served, when set, is told each file (device, inode) whose request
	// was served or dropped (see OnServed).
	served func(dev, ino uint64)

	hits, misses, hashed, failed, dropped atomic.Uint64
}

type entry struct {
	key Key
	sum string
}

type request struct {
	pid      uint32
	path     string
	dev, ino uint64 // 0: any file at path (Warm)
}

// New builds a Cache. Call Run to start hashing.
func New(opts Options) *Cache {
	if opts.Entries <= 0 {
		opts.Entries = DefaultEntries
	}
	if opts.Queue <= 0 {
		opts.Queue = DefaultQueue
	}
	if opts.MaxSize <= 0 {
		opts.MaxSize = DefaultMaxSize
	}
	if opts.ProcRoot == "" {
		opts.ProcRoot = "/proc"
	}
	return &Cache{opts: opts, files: map[[2]uint64]entry{}, inflight: map[[2]uint64]struct{}{}, reqs: make(chan request, opts.Queue)}
}

// Stats returns the counters.
func (c *Cache) Stats() Stats {
	c.mu.RLock()
	n := len(c.files)
	c.mu.RUnlock()
	return Stats{Hits: c.hits.Load(), Misses: c.misses.Load(), Hashed: c.hashed.Load(),
		Failed: c.failed.Load(), Dropped: c.dropped.Load(), Entries: n}
}

// OnServed sets fn to be told the file (device, inode) of every request
// the worker has served, hashed or not, and of every request dropped
// because the queue was full: whoever waits for a file's hash learns
// when to look (with Verified). fn runs on the worker's goroutine, or on
// Lookup's caller for a drop, and must not block or call the Cache back.
// Set it before Run.
func (c *Cache) OnServed(fn func(dev, ino uint64)) { c.served = fn }

// Verified returns the hex SHA-256 of the file with device dev and inode
// ino when the cache holds it for a version last changed (its ctime, which
// user space cannot set) no later than ranAt, the time the file was
// executed: nothing changed the file between the exec and the hash, so the
// sum is that of the content that ran, whatever happened to the file
// since (a short-lived process, a path only its mount namespace sees).
// Otherwise ""; it never stats, reads or queues anything.
func (c *Cache) Verified(dev, ino uint64, ranAt time.Time) string {
	if c == nil || ino == 0 {
		return ""
	}
	c.mu.RLock()
	e, known := c.files[[2]uint64{dev, ino}]
	c.mu.RUnlock()
	if !known || e.key.Ctime > ranAt.UnixNano() {
		return ""
	}
	return e.sum
}

// current stats the file dev/ino under its candidate names and returns
// its version.
func (c *Cache) current(pid uint32, exe string, dev, ino uint64) (Key, bool) {
	for _, p := range c.candidates(pid, exe) {
		k, ok := statKey(p)
		if ok && k.Dev == dev && k.Ino == ino {
			return k, true
		}
	}
	return Key{}, false
}

// Lookup returns the hex SHA-256 of the binary ev ran, when the cache holds
// it for the file's current version; otherwise "" and the file is queued
// for hashing (without waiting). It costs one or two stat calls and never
// reads the file; for a file never hashed, not even the stat. Events
// without a file identity (ExeDev/ExeIno unset) get "".
func (c *Cache) Lookup(ev *event.Event) string {
	if c == nil || ev.ExeIno == 0 {
		return ""
	}
	id := [2]uint64{ev.ExeDev, ev.ExeIno}
	c.mu.RLock()
	e, known := c.files[id]
	c.mu.RUnlock()
	if known {
		if k, ok := c.current(ev.PID, string(ev.Exe), ev.ExeDev, ev.ExeIno); ok && k == e.key {
			c.hits.Add(1)
			return e.sum
		}
	}
	c.misses.Add(1)
	c.request(request{pid: ev.PID, path: string(ev.Exe), dev: ev.ExeDev, ino: ev.ExeIno})
	return ""
}

// Warm queues path for hashing, so that a pin added for it silences the
// next run at once instead of after the first sighting.
func (c *Cache) Warm(path string) {
	if c != nil {
		c.request(request{path: path})
	}
}

func (c *Cache) request(r request) {
	id := [2]uint64{r.dev, r.ino}
	if r.ino != 0 {
		c.mu.Lock()
		_, queued := c.inflight[id]
		if !queued {
			c.inflight[id] = struct{}{}
		}
		c.mu.Unlock()
		if queued {
			return
		}
	}
	select {
	case c.reqs <- r:
	default:
		c.dropped.Add(1)
		c.done(id)
		c.tell(id)
	}
}

// tell passes a served or dropped request of a file on to OnServed's fn.
func (c *Cache) tell(id [2]uint64) {
	if c.served != nil && id[1] != 0 {
		c.served(id[0], id[1])
	}
}

func (c *Cache) done(id [2]uint64) {
	c.mu.Lock()
	delete(c.inflight, id)
	c.mu.Unlock()
}

// candidates are the names under which the event's binary may be found:
// the process's own /proc/PID/exe (right across mount namespaces, while
// the process lives), then the path as the event gives it. Either is
// trusted only when its device and inode are the event's.
func (c *Cache) candidates(pid uint32, exe string) []string {
	var out [2]string
	n := 0
	if pid != 0 {
		out[n] = c.opts.ProcRoot + "/" + strconv.FormatUint(uint64(pid), 10) + "/exe"
		n++
	}
	if len(exe) > 0 && exe[0] == '/' {
		out[n] = exe
		n++
	}
	return out[:n]
}

// Run hashes queued files until stop is closed.
func (c *Cache) Run(stop <-chan struct{}) {
	for {
		select {
		case <-stop:
			return
		case r := <-c.reqs:
			c.serve(r)
		}
	}
}

func (c *Cache) serve(r request) {
	id := [2]uint64{r.dev, r.ino}
	// The waiters are told after the hash is in place (put), so a Lookup
	// that missed it is followed by a call of OnServed's fn.
	defer c.tell(id)
	defer c.done(id)
	for _, p := range c.candidates(r.pid, r.path) {
		key, sum, err := c.hashFile(p, r.dev, r.ino)
		if errors.Is(err, errOtherFile) || errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			c.failed.Add(1)
			return
		}
		c.put(key, sum)
		c.hashed.Add(1)
		return
	}
	c.failed.Add(1)
}

func (c *Cache) put(k Key, sum string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	id := [2]uint64{k.Dev, k.Ino}
	if _, ok := c.files[id]; !ok && len(c.files) >= c.opts.Entries {
		clear(c.files)
	}
	c.files[id] = entry{k, sum}
}

var errOtherFile = errors.New("not the file the event names")

// errChanged says the file changed while it was read.
var errChanged = errors.New("file changed while it was hashed")

// hashFile hashes the file at path when it is the file dev/ino names (any
// file when dev and ino are 0) and did not change while it was read.
func (c *Cache) hashFile(path string, dev, ino uint64) (Key, string, error) {
	f, before, err := openRegular(path, dev, ino)
	if err != nil {
		return Key{}, "", err
	}
	defer f.Close()
	sum, err := hashOpen(f, before, c.opts.MaxSize)
	if err != nil {
		return Key{}, "", fmt.Errorf("hash %s: %w", path, err)
	}
	return before, sum, nil
}

// hashOpen reads f to its end and checks that its version did not move.
func hashOpen(f *os.File, before Key, maxSize int64) (string, error) {
	if before.Size > maxSize {
		return "", fmt.Errorf("larger than %d bytes", maxSize)
	}
	h := sha256.New()
	if _, err := io.Copy(h, io.LimitReader(f, maxSize+1)); err != nil {
		return "", err
	}
	after, err := fstat(f)
	if err != nil {
		return "", err
	}
	if after != before {
		return "", errChanged
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// File hashes the regular file at path now, the way the cache does, and
// returns its hex SHA-256. `procwatch skip add path PATH --pin` uses it.
func File(path string) (string, error) {
	f, before, err := openRegular(path, 0, 0)
	if err != nil {
		return "", err
	}
	defer f.Close()
	sum, err := hashOpen(f, before, DefaultMaxSize)
	if err != nil {
		return "", fmt.Errorf("hash %s: %w", path, err)
	}
	return sum, nil
}

// ValidSum reports whether s is a hex SHA-256 as File returns it: 64
// lower-case hex digits.
func ValidSum(s string) bool {
	if len(s) != sha256.Size*2 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !('0' <= s[i] && s[i] <= '9' || 'a' <= s[i] && s[i] <= 'f') {
			return false
		}
	}
	return true
}
