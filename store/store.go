// Package store keeps procwatch's incidents, added skips and settings in one
// bbolt file, so they survive restarts and crashes and answer queries fast
// even with a million incidents.
//
// One process writes the file at a time (bbolt's file lock); a second one
// gets a *LockedError naming the holder within about a second. Incidents
// arrive through Put, which only queues them: one goroutine commits the
// queue in batches at least every Options.BatchInterval, so a storm of
// thousands of incidents a second costs a few fsyncs, not thousands. After a
// crash at most the incidents queued since the last commit are lost; see
// docs/store.md for the exact bound.
//
// Everything else (status changes, skips, settings) is committed before the
// call returns.
package store

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/procwatch/procwatch/api"
	"github.com/procwatch/procwatch/rules"
	"github.com/procwatch/procwatch/safepath"
)

// Defaults for Options, chosen so that a month of a busy host fits in well
// under 2 GiB and a storm never waits more than a blink for its commit.
const (
	DefaultBatchInterval  = 100 * time.Millisecond
	DefaultRepeatInterval = time.Second
	DefaultRetentionAge   = 30 * 24 * time.Hour
	DefaultRetentionCount = 1_000_000
)

// Queue limits: a batch is committed early once batchSize incidents wait;
// one transaction commits at most txLimit, so that each commit is short and
// frees room in the queue often; Put blocks (for at most putWait) once
// queueLimit incidents wait.
const (
	batchSize  = 8192
	txLimit    = 32768
	queueLimit = 131072
	// openTimeout bounds the wait for another process's file lock.
	openTimeout = time.Second
	// retentionEvery is how often age-based retention runs in the agent.
	retentionEvery = time.Minute
)

// putWait bounds how long Put waits for room in a full queue before it
// drops the incident (counted and logged): the sensor must not stall. A
// variable only so that tests about visibility, not about the drop policy,
// can wait longer on a loaded machine.
var putWait = 2 * time.Second

// Options tune a Store. The zero value gives the documented defaults.
type Options struct {
	// BatchInterval is the longest a new incident waits in the queue
	// before its batch is committed. Default 100ms.
	BatchInterval time.Duration
	// RepeatInterval is the longest a repeat of a known incident (a new
	// count and last-seen time, nothing else new) waits when nothing more
	// urgent is queued: a storm of one repeating incident is then
	// committed once a second instead of ten times. Default 1s; never
	// shorter than BatchInterval.
	RepeatInterval time.Duration
	// RetentionAge drops incidents last seen longer ago than this.
	// 0 means the stored setting or 30 days; <0 keeps them forever.
	RetentionAge time.Duration
	// RetentionCount keeps at most this many incidents, deleting masked,
	// then acknowledged, then open ones of the lowest severity first
	// (oldest first within each), so a flood cannot push out an open high
	// or critical incident while anything lower is left.
	// 0 means the stored setting or 1,000,000; <0 is unlimited.
	RetentionCount int
	// ReadOnly opens the file with a shared lock and refuses writes; the
	// CLI uses it to read while no agent runs.
	ReadOnly bool
	// ReadOnlyFallback opens an existing database read-only when it
	// cannot be opened for writing (a read-only file or filesystem), so
	// that offline commands can still read it; writes then fail with
	// ErrReadOnly and Status().ReadOnly says so.
	ReadOnlyFallback bool
	// CheckAtOpen runs Check in the background after Open and logs a
	// warning when the database fails it; Status shows the finding. The
	// agent sets it.
	CheckAtOpen bool
	// Logger receives warnings about failed commits and dropped incidents.
	// Default slog.Default().
	Logger *slog.Logger
}

// ErrNotProcwatch is wrapped by Open's error when the file exists but is not
// a procwatch database, or is corrupt. The file is left untouched.
var ErrNotProcwatch = errors.New("not a procwatch database, or damaged")

// ErrReadOnly is returned by writes on a store opened with ReadOnly.
var ErrReadOnly = errors.New("store is open read-only")

// ErrClosed is returned by calls on a closed store.
var ErrClosed = errors.New("store is closed")

// LockedError says that another process holds the database. Front ends show
// it as is; the CLI uses it to decide to talk to the running agent instead.
type LockedError struct {
	Path string
	PID  int // 0 when the holder could not be found
}

// Error gives the one line front ends print, naming the holder's pid when
// it is known.
func (e *LockedError) Error() string {
	if e.PID > 0 {
		return fmt.Sprintf("procwatch is already running (pid %d) with %s", e.PID, e.Path)
	}
	return fmt.Sprintf("procwatch is already running with %s", e.Path)
}

// Stats counts what the write queue did, for the agent's status and logs.
type Stats struct {
	Queued    int    // incidents waiting for the next commit
	Committed uint64 // incidents committed since Open
	Batches   uint64 // write transactions that committed incidents
	Blocked   uint64 // Put calls that had to wait for room in the queue
	Dropped   uint64 // incidents given up on: queue full while commits fail, or read-only store
	LastError string // the last commit error, empty after a successful commit
	// FailingSince is when commits started failing; zero while they work.
	FailingSince time.Time
	// Evicted counts incidents deleted by count retention since the
	// database was created.
	Evicted uint64
	// Unreadable counts damaged records reads skipped since Open.
	Unreadable uint64
}

// Store is an open incident database. Its methods are safe for concurrent
// use.
type Store struct {
	path     string
	db       *bolt.DB
	opts     Options
	log      *slog.Logger
	retAge   atomic.Int64 // resolved, nanoseconds: <0 forever
	retCount atomic.Int64 // resolved: <0 unlimited

	qmu     sync.Mutex
	queue   []rules.Incident
	spare   []rules.Incident // an empty committed queue array, for Put to reuse
	drained chan struct{}    // closed whenever the queue is taken for a commit
	// queuedAt is when the queue last went from empty to not empty;
	// urgentAt when the first incident queued that cannot wait for
	// RepeatInterval (zero: none queued). See nextCommit.
	queuedAt, urgentAt time.Time
	// queued indexes the queue by incident id, so that a repeat of a
	// queued incident replaces it instead of growing the queue (a storm
	// of one incident holds one entry); folded counts those repeats for
	// Stats().Committed. Cleared whenever the queue is taken.
	queued  map[rules.ID]int
	folded  uint64
	failing bool // the last commit failed
	// While failing: since when, how many failures, when the next retry
	// is due and its delay, and when the next log line may be written.
	failSince, retryAt, failLogAt time.Time
	retryDelay, failLogEvery      time.Duration
	failures                      int
	closing                       bool
	kick                          chan struct{}
	stop                          chan struct{}
	loopDone                      chan struct{}

	wmu sync.Mutex // serialises write transactions
	// seen and skip are commitBatch's scratch space for superseded
	// repeats; held under wmu.
	seen map[rules.ID]int
	skip []bool
	enc  encoder
	buf  []byte

	evicted      atomic.Uint64 // incidents deleted by count retention, ever (counts/evicted_by_count)
	emu          sync.Mutex    // guards the eviction log's state below
	evictLogged  time.Time
	evictPending int64
	evictRank    int64

	damageLogged time.Time     // guarded by emu
	unreadableN  atomic.Uint64 // damaged records skipped by reads
	mapped       mappedReads   // bytes read through the mapping since its pages were released
	checkErr     atomic.Pointer[string]

	committed atomic.Uint64
	batches   atomic.Uint64
	blocked   atomic.Uint64
	dropped   atomic.Uint64
	lastErr   atomic.Pointer[string]

	closeOnce sync.Once
	closeErr  error
}

// DefaultPath is where the database lives unless --db says otherwise:
// /var/lib/procwatch/procwatch.db as root, else
// $XDG_STATE_HOME/procwatch/procwatch.db (~/.local/state when unset).
func DefaultPath() string {
	home, _ := os.UserHomeDir()
	return defaultPath(os.Geteuid(), os.Getenv("XDG_STATE_HOME"), home)
}

func defaultPath(euid int, stateHome, home string) string {
	if euid == 0 {
		return "/var/lib/procwatch/procwatch.db"
	}
	// The XDG spec says to ignore relative paths in its variables.
	if stateHome == "" || !filepath.IsAbs(stateHome) {
		if home == "" {
			home = "."
		}
		stateHome = filepath.Join(home, ".local", "state")
	}
	return filepath.Join(stateHome, "procwatch", "procwatch.db")
}

// Open opens or creates the database at path ("" means DefaultPath). It
// fails with *LockedError within about a second when another process holds
// the file, and with an error wrapping ErrNotProcwatch when the file is not
// a procwatch database; such a file is never written to. An older schema is
// migrated in place.
func Open(path string, opts Options) (s *Store, err error) {
	if path == "" {
		path = DefaultPath()
	}
	if opts.BatchInterval <= 0 {
		opts.BatchInterval = DefaultBatchInterval
	}
	if opts.RepeatInterval <= 0 {
		opts.RepeatInterval = DefaultRepeatInterval
	}
	opts.RepeatInterval = max(opts.RepeatInterval, opts.BatchInterval)
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	var db *bolt.DB
	defer func() {
		if r := recover(); r != nil {
			if db != nil {
				db.Close()
			}
			s, err = nil, fmt.Errorf("open store %s: %w (%v); move it away or pass another --db", path, ErrNotProcwatch, r)
		}
	}()

	if err := safepath.CheckParent(path, safepath.NoGroup); err != nil {
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	info, statErr := os.Lstat(path) // a symbolic link is not a regular file: refused
	switch {
	case statErr == nil && !info.Mode().IsRegular():
		return nil, fmt.Errorf("open store %s: %w: not a regular file", path, ErrNotProcwatch)
	case statErr == nil && info.Size() > 0 && !opts.ReadOnly:
		// Check the file with a read-only open before bbolt may write to
		// it: opening read-write can commit a transaction of its own.
		if err := precheck(path); err != nil {
			return nil, err
		}
	case errors.Is(statErr, fs.ErrNotExist):
		if opts.ReadOnly {
			return nil, fmt.Errorf("open store %s: no database yet (the agent creates it): %w", path, statErr)
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, fmt.Errorf("open store %s: create directory: %w", path, err)
		}
		if err := safepath.CheckParent(path, safepath.NoGroup); err != nil {
			return nil, fmt.Errorf("open store %s: %w", path, err)
		}
	case statErr != nil:
		return nil, fmt.Errorf("open store %s: %w", path, statErr)
	}

	db, err = openBolt(path, opts.ReadOnly)
	if err != nil && !opts.ReadOnly && opts.ReadOnlyFallback && statErr == nil && notWritable(err) {
		opts.Logger.Warn("store: the database cannot be written; opened read-only", "path", path, "why", err)
		opts.ReadOnly = true
		db, err = openBolt(path, true)
	}
	if err != nil {
		return nil, err
	}
	if !opts.ReadOnly {
		if info, err := os.Stat(path); err == nil && info.Mode().Perm()&0o077 != 0 {
			if err := os.Chmod(path, 0o600); err != nil {
				db.Close()
				return nil, fmt.Errorf("open store %s: restrict mode to 0600: %w", path, err)
			}
		}
	}
	s = &Store{
		path:     path,
		db:       db,
		opts:     opts,
		log:      opts.Logger,
		drained:  make(chan struct{}),
		kick:     make(chan struct{}, 1),
		stop:     make(chan struct{}),
		loopDone: make(chan struct{}),
	}
	if opts.ReadOnly {
		err = s.checkReadable()
	} else {
		err = s.prepare()
	}
	if err != nil {
		db.Close()
		return nil, err
	}
	if err := s.resolveRetention(); err != nil {
		db.Close()
		return nil, err
	}
	if err := s.view(func(tx *bolt.Tx) error {
		s.evicted.Store(readUint64(tx.Bucket(bucketCounts), keyEvicted))
		return nil
	}); err != nil {
		db.Close()
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	if opts.ReadOnly {
		close(s.loopDone)
		return s, nil
	}
	if err := s.enforceRetention(time.Now()); err != nil {
		db.Close()
		return nil, fmt.Errorf("open store %s: apply retention: %w", path, err)
	}
	// Opening read the pages a migration or retention touched.
	_ = s.view(func(tx *bolt.Tx) error { releaseMapped(tx); return nil })
	go s.loop()
	if opts.CheckAtOpen {
		go s.checkInBackground()
	}
	return s, nil
}

// checkInBackground runs Check and logs the outcome, so a damaged
// database is reported when the agent starts without delaying it.
func (s *Store) checkInBackground() {
	start := time.Now()
	if err := s.Check(); err != nil {
		s.log.Error("store: the database failed its consistency check; reads skip what is damaged and say how much", "path", s.path, "err", err)
		return
	}
	s.log.Info("store: consistency check passed", "path", s.path, "took", time.Since(start).Round(time.Millisecond))
}

// openBolt opens the bbolt file and turns its errors into the store's.
func openBolt(path string, readOnly bool) (*bolt.DB, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{
		Timeout:      openTimeout,
		ReadOnly:     readOnly,
		FreelistType: bolt.FreelistMapType,
		OpenFile:     safepath.OpenFile, // O_NOFOLLOW
	})
	if err == nil {
		return db, nil
	}
	switch {
	case errors.Is(err, berrors.ErrTimeout):
		return nil, &LockedError{Path: path, PID: lockHolder(path)}
	case errors.Is(err, berrors.ErrInvalid), errors.Is(err, berrors.ErrVersionMismatch),
		errors.Is(err, berrors.ErrChecksum), errors.Is(err, berrors.ErrInvalidMapping):
		return nil, fmt.Errorf("open store %s: %w (%v); move it away or pass another --db", path, ErrNotProcwatch, err)
	}
	return nil, fmt.Errorf("open store %s: %w", path, err)
}

// notWritable reports whether an open for writing failed because the file
// or its filesystem is read-only (root gets EROFS; others also EACCES).
func notWritable(err error) bool {
	return errors.Is(err, syscall.EROFS) || errors.Is(err, syscall.EACCES) || errors.Is(err, syscall.EPERM)
}

// precheck opens an existing file read-only and checks that it is a
// procwatch database this version understands.
func precheck(path string) error {
	db, err := openBolt(path, true)
	if err != nil {
		return err
	}
	defer db.Close()
	return db.View(func(tx *bolt.Tx) error {
		_, err := checkMeta(tx, path)
		return err
	})
}

// Path returns the file the store was opened on.
func (s *Store) Path() string { return s.path }

// Close commits every queued incident, stops the commit goroutine and closes
// the file. It is safe to call more than once.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.qmu.Lock()
		s.closing = true
		s.qmu.Unlock()
		if !s.opts.ReadOnly {
			close(s.stop)
		}
		<-s.loopDone
		var flushErr error
		if !s.opts.ReadOnly {
			flushErr = s.flushQueued()
		}
		closeErr := s.db.Close()
		switch {
		case flushErr != nil:
			s.closeErr = fmt.Errorf("close store %s: final commit: %w", s.path, flushErr)
		case closeErr != nil:
			s.closeErr = fmt.Errorf("close store %s: %w", s.path, closeErr)
		}
	})
	return s.closeErr
}

// Stats returns the write queue's counters.
func (s *Store) Stats() Stats {
	s.qmu.Lock()
	queued, since := len(s.queue), s.failSince
	s.qmu.Unlock()
	return Stats{
		Queued:       queued,
		Committed:    s.committed.Load(),
		Batches:      s.batches.Load(),
		Blocked:      s.blocked.Load(),
		Dropped:      s.dropped.Load(),
		LastError:    s.lastError(),
		FailingSince: since,
		Evicted:      s.evicted.Load(),
		Unreadable:   s.unreadableN.Load(),
	}
}

// view runs fn in a read transaction, turning a panic from a corrupt page
// into an error instead of a crash.
func (s *Store) view(fn func(tx *bolt.Tx) error) (err error) {
	defer guardFaults()()
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("read store %s: %w: %w: %v", s.path, ErrNotProcwatch, errCorruptPage, r)
		}
	}()
	return s.db.View(fn)
}

// update runs fn in a write transaction; callers hold s.wmu.
func (s *Store) update(fn func(tx *bolt.Tx) error) (err error) {
	if s.opts.ReadOnly {
		return fmt.Errorf("write store %s: %w", s.path, ErrReadOnly)
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("write store %s: %w: corrupt page: %v", s.path, ErrNotProcwatch, r)
		}
	}()
	return s.db.Update(fn)
}

// Status describes the database for `monitor status`, the metrics and the
// TUI header: size and limits, what count retention deleted, and what is
// pending or failing. It reads one counter and takes no write lock, so it
// answers while commits fail.
func (s *Store) Status() api.StoreStatus {
	st := s.Stats()
	age, count := s.Retention()
	out := api.StoreStatus{
		Path:           s.path,
		ReadOnly:       s.opts.ReadOnly,
		RetentionCount: max(count, 0),
		EvictedByCount: st.Evicted,
		Pending:        st.Queued,
		CommitError:    st.LastError,
		Dropped:        st.Dropped,
		Unreadable:     st.Unreadable,
	}
	if age > 0 {
		out.RetentionAgeSeconds = int64(age / time.Second)
	}
	if !st.FailingSince.IsZero() {
		out.FailingSince = &st.FailingSince
	}
	if p := s.checkErr.Load(); p != nil {
		out.CheckError = *p
	}
	if n, err := s.Count(); err == nil {
		out.Incidents = n
	}
	return out
}
