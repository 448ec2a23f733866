package containers

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/procwatch/procwatch/event"
)

// Defaults of Config.
const (
	DefaultMaxEntries  = 4096
	DefaultWorkers     = 2
	DefaultQueue       = 256
	DefaultTimeout     = 3 * time.Second
	DefaultNegativeTTL = 30 * time.Second
	// notRunningRetry is how soon a container that is not running (yet) is
	// asked about again: its first process is seen while it is being
	// created, before the runtime reports an init pid.
	notRunningRetry = time.Second
	// maxRechecks bounds how often a container that is not running is
	// asked about again without an event to prompt it.
	maxRechecks = 5
)

// errNotRunning is a container with no init process to check against.
var errNotRunning = errors.New("not running")

// Config sets up a Cache. Sources is required; the rest have defaults.
type Config struct {
	Sources     []Source      // asked in order; the first that knows the id answers
	MaxEntries  int           // containers kept (found or not); the least recently used go first
	Workers     int           // lookups in flight at once
	Queue       int           // misses waiting for a worker; past it a miss is dropped and counted
	Timeout     time.Duration // for one lookup across all sources
	NegativeTTL time.Duration // how long "not found" or a failure is remembered before asking again
	Logger      *slog.Logger
	// ProcRoot is where /proc is read for the cgroup check; tests only.
	ProcRoot string
}

// entry is one container in the cache. state says which fields hold.
type entry struct {
	id       string
	state    int
	info     Container
	name     event.Text
	image    event.Text
	cgroup   string    // the container's cgroup, events must lie under it
	retryAt  time.Time // for stateAbsent
	rechecks int       // proactive re-asks of a container not running yet
	elem     *list.Element
}

const (
	statePending = iota // a lookup is queued or running
	stateFound
	stateAbsent // not found, failed, or unverifiable; asked again after retryAt
)

// Cache names containers by id without ever blocking its caller: Enrich
// is a map lookup, a miss queues one asynchronous lookup and returns, and
// later events of that container get the answer.
type Cache struct {
	cfg   Config
	log   *slog.Logger
	queue chan string

	mu    sync.Mutex
	byID  map[string]*entry
	lru   *list.List // front: most recently used
	stats event.ContainerStats

	stop context.CancelFunc
	wg   sync.WaitGroup
}

// New starts a Cache and its workers; Close stops them.
func New(cfg Config) (*Cache, error) {
	if len(cfg.Sources) == 0 {
		return nil, errors.New("containers: no runtime API to ask")
	}
	if cfg.MaxEntries <= 0 {
		cfg.MaxEntries = DefaultMaxEntries
	}
	if cfg.Workers <= 0 {
		cfg.Workers = DefaultWorkers
	}
	if cfg.Queue <= 0 {
		cfg.Queue = DefaultQueue
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.NegativeTTL <= 0 {
		cfg.NegativeTTL = DefaultNegativeTTL
	}
	if cfg.ProcRoot == "" {
		cfg.ProcRoot = "/proc"
	}
	c := &Cache{
		cfg:   cfg,
		log:   cfg.Logger,
		queue: make(chan string, cfg.Queue),
		byID:  make(map[string]*entry),
		lru:   list.New(),
	}
	if c.log == nil {
		c.log = slog.Default()
	}
	for _, s := range cfg.Sources {
		c.stats.Sources = append(c.stats.Sources, s.String())
	}
	ctx, stop := context.WithCancel(context.Background())
	c.stop = stop
	for range cfg.Workers {
		c.wg.Add(1)
		go c.work(ctx)
	}
	return c, nil
}

// Close stops the workers, waits for them and closes the sources that
// hold a connection (CRI's gRPC channel).
func (c *Cache) Close() {
	c.stop()
	c.wg.Wait()
	for _, s := range c.cfg.Sources {
		if cl, ok := s.(io.Closer); ok {
			cl.Close()
		}
	}
}

// Stats reports what the cache did, for `monitor status` and metrics.
func (c *Cache) Stats() event.ContainerStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.stats
	s.Sources = append([]string(nil), c.stats.Sources...)
	s.Cached = len(c.byID)
	return s
}

// Enrich fills ev's container name, image and runtime from the cache. It
// never blocks on a runtime: on a miss it queues a lookup and returns, so
// the first events of a new container go on without the fields.
func (c *Cache) Enrich(ev *event.Event) {
	id := ev.ContainerID
	if id == "" || !ValidID(id) {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.byID[id]
	switch {
	case e == nil:
		c.ask(c.insert(id))
	case e.state == stateFound:
		c.lru.MoveToFront(e.elem)
		if !underCgroup(string(ev.Cgroup), e.cgroup) {
			c.stats.Unverified++
			return
		}
		ev.ContainerName, ev.ContainerImage, ev.ContainerRuntime = e.name, e.image, e.info.Runtime
	case e.state == stateAbsent && time.Now().After(e.retryAt):
		c.lru.MoveToFront(e.elem)
		c.ask(e)
	}
}

// insert adds a pending entry for id, evicting the least recently used
// entry past the bound. Pending entries are evicted like the others; the
// worker's answer then simply finds no entry and is dropped.
func (c *Cache) insert(id string) *entry {
	e := &entry{id: id, state: statePending}
	e.elem = c.lru.PushFront(e)
	c.byID[id] = e
	for len(c.byID) > c.cfg.MaxEntries {
		old := c.lru.Back().Value.(*entry)
		c.lru.Remove(old.elem)
		delete(c.byID, old.id)
		c.stats.Evicted++
	}
	return e
}

// ask queues a lookup for e without waiting. With the queue full the
// entry stays absent and the miss is counted; a later event asks again.
func (c *Cache) ask(e *entry) {
	select {
	case c.queue <- e.id:
		e.state = statePending
	default:
		c.stats.Dropped++
		e.state, e.retryAt = stateAbsent, time.Time{}
	}
}

// recheck asks again about a container that was not running yet, so that
// it is named before its next event rather than after it.
func (c *Cache) recheck(e *entry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.byID[e.id] == e && e.state == stateAbsent {
		c.ask(e)
	}
}

func (c *Cache) work(ctx context.Context) {
	defer c.wg.Done()
	for {
		select {
		case <-ctx.Done():
			return
		case id := <-c.queue:
			c.lookup(ctx, id)
		}
	}
}

// lookup asks every source in turn and stores the answer.
func (c *Cache) lookup(ctx context.Context, id string) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	var (
		info   Container
		err    error = ErrNotFound
		failed []string
	)
	for _, s := range c.cfg.Sources {
		info, err = s.Inspect(ctx, id)
		if err == nil {
			break
		}
		if !errors.Is(err, ErrNotFound) {
			failed = append(failed, err.Error())
		}
	}
	cgroup := ""
	if err == nil {
		cgroup, err = c.containerCgroup(id, info.InitPID)
	}
	var count *uint64
	switch {
	case err == nil:
		count = &c.stats.Found
	case errors.Is(err, ErrNotFound) && len(failed) == 0:
		count = &c.stats.NotFound
	case errors.Is(err, errNotRunning):
		count = &c.stats.NotRunning
	default:
		count = &c.stats.Failed
		if len(failed) > 0 && errors.Is(err, ErrNotFound) {
			err = errors.New(strings.Join(failed, "; "))
		}
		c.log.Debug("container lookup failed", "id", id, "err", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stats.Lookups++
	*count++
	e := c.byID[id]
	if e == nil || e.state != statePending {
		return // evicted while we asked
	}
	if err != nil {
		ttl := c.cfg.NegativeTTL
		if errors.Is(err, errNotRunning) {
			ttl = min(ttl, notRunningRetry)
			if e.rechecks < maxRechecks {
				e.rechecks++
				time.AfterFunc(ttl, func() { c.recheck(e) })
			}
		}
		e.state, e.retryAt = stateAbsent, time.Now().Add(ttl)
		return
	}
	e.state, e.info, e.cgroup = stateFound, info, cgroup
	e.name, e.image = event.Text(info.Name), event.Text(info.Image)
}

// containerCgroup reads the unified-hierarchy cgroup of the container's
// init process and cuts it after the component that names the container:
// the container's own cgroup, under which every process of it lies.
func (c *Cache) containerCgroup(id string, pid int) (string, error) {
	if pid <= 0 {
		return "", fmt.Errorf("container %.12s: %w, so its cgroup cannot be checked", id, errNotRunning)
	}
	b, err := os.ReadFile(fmt.Sprintf("%s/%d/cgroup", c.cfg.ProcRoot, pid))
	if err != nil {
		return "", fmt.Errorf("container %.12s: read its init's cgroup: %w", id, err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		path, ok := strings.CutPrefix(line, "0::")
		if !ok {
			continue
		}
		parts := strings.Split(path, "/")
		for i, p := range parts {
			if strings.Contains(p, id) {
				return strings.Join(parts[:i+1], "/"), nil
			}
		}
		return "", fmt.Errorf("container %.12s: its init's cgroup %q does not name it", id, path)
	}
	return "", fmt.Errorf("container %.12s: its init (pid %d) has no unified-hierarchy cgroup", id, pid)
}

// underCgroup reports whether path is cg or lies below it.
func underCgroup(path, cg string) bool {
	rest, ok := strings.CutPrefix(path, cg)
	return ok && (rest == "" || rest[0] == '/')
}
