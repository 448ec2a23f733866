package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/procwatch/procwatch/api"
	"github.com/procwatch/procwatch/event"
	"github.com/procwatch/procwatch/exehash"
	"github.com/procwatch/procwatch/queue"
	"github.com/procwatch/procwatch/rules"
)

// Defaults of Config.
const (
	// DefaultTick is one frame at 60 Hz: events are gathered at most this
	// long after the first of a batch arrives, so a subscriber gets them
	// within a frame and a storm still travels in batches.
	DefaultTick        = 16 * time.Millisecond
	DefaultDropAfter   = 30 * time.Second
	DefaultStatusEvery = 2 * time.Second
	// maxPendingEvents bounds the events gathered for one batch; past it
	// the oldest are dropped (queue.Queue) and counted for every
	// subscriber instead of growing memory during a storm.
	maxPendingEvents = 16384
	// maxPendingIncidents does the same for incidents; they remain stored.
	maxPendingIncidents = 65536
	// replayBatch is how many stored incidents one replay update carries.
	replayBatch = 256
	// dupWindow is how far before a subscription began a replayed
	// incident's last sighting may lie and still be checked against the
	// live updates gathered during the replay.
	dupWindow = time.Minute
)

// Config assembles a Local. Store and Rules are required.
type Config struct {
	Host   string        // reported in Status and stamped on incidents; default os.Hostname
	Store  Store         // where incidents, skips and settings live
	Source EventSource   // the sensor; nil runs without one (offline queries and changes)
	Rules  *rules.Engine // judges events; its rules are replaced on reload

	// RulesPath is shown in Status. New rules arrive through ApplyRules,
	// which a rules.Watcher on the file calls.
	RulesPath string

	Tick        time.Duration // longest wait from an event to its batch's delivery; default DefaultTick
	DropAfter   time.Duration // a subscriber that accepts nothing this long is dropped; default 30s
	StatusEvery time.Duration // how often subscribers get a Status; default 2s

	MailboxEvents    int // per-subscriber event bound; default api.DefaultMailboxEvents
	MailboxIncidents int // per-subscriber incident bound; default api.DefaultMailboxIncidents

	// OnIncident sees every new or updated incident, on the sensor's
	// goroutine (or, for an incident given its exe_sha256 after it was
	// raised, on the hash updater's); it must be quick and safe to call
	// from both. The agent's --output uses it.
	OnIncident func(rules.Incident)

	// Observer, when set, is told what the pipeline does, for metrics.
	Observer Observer

	// ExeHashes computes binaries' SHA-256 in the background, for pinned
	// skips and incidents' exe_sha256. Default: a cache with
	// exehash.Options{}; Run starts its worker.
	ExeHashes *exehash.Cache

	// Containers, when set, names the container of every event that has a
	// container id before the rules judge it (so `images` selectors see
	// the image), and its counters appear in Status.
	Containers ContainerNamer

	Logger *slog.Logger // default slog.Default()
}

// Local is api.Service for this host: events from the Source go
// through the rules Engine into the Store and out to subscribers. The
// sensor's goroutine never waits for a subscriber: it pushes to a bounded
// queue that fanOut drains, within Config.Tick of the batch's first event,
// into each subscriber's Mailbox.
type Local struct {
	cfg    Config
	log    *slog.Logger
	host   string
	engine *rules.Engine
	hashes *exehash.Cache
	// sums remembers the content hash each incident's first event got, so
	// a repeat (an exec storm counted into one incident) costs no stat.
	// Sensor goroutine only; emptied when it reaches maxSums.
	sums   map[rules.ID]string
	late   *lateHashes // incidents waiting for their binary's hash
	active atomic.Bool // monitoring on; when off, handle raises nothing

	obs      Observer // nil when nobody observes
	rulesErr atomic.Pointer[string]
	// sourceErr is why the wanted sensor could not start (SetSourceError).
	sourceErr atomic.Pointer[string]
	skipMu    sync.Mutex  // serialises skip changes, so the engine gets the latest list
	triage    triageCache // stored statuses for the engine's repeats

	events      *queue.Queue[api.Envelope] // the batch being gathered
	pendMu      sync.Mutex
	pendIncs    []rules.Incident
	pendDropped uint64        // incidents over maxPendingIncidents since the last batch
	incsDropped atomic.Uint64 // the same over the pipeline's life
	goneDropped atomic.Uint64 // drops of the mailboxes of subscribers gone

	subMu sync.Mutex
	subs  map[*subscriber]struct{}
	nsubs atomic.Int32

	monChanged chan struct{}
	statusDue  atomic.Bool
	running    atomic.Bool
}

type subscriber struct {
	box    *api.Mailbox
	cancel context.CancelFunc
}

// New checks cfg and builds a Local. Nothing runs until Run; without Run,
// queries and changes still work but subscribers get only their replay.
func New(cfg Config) (*Local, error) {
	if cfg.Store == nil {
		return nil, errors.New("pipeline: no store")
	}
	if cfg.Rules == nil {
		return nil, errors.New("pipeline: no rules engine")
	}
	if cfg.Tick <= 0 {
		cfg.Tick = DefaultTick
	}
	if cfg.DropAfter <= 0 {
		cfg.DropAfter = DefaultDropAfter
	}
	if cfg.StatusEvery <= 0 {
		cfg.StatusEvery = DefaultStatusEvery
	}
	l := &Local{
		cfg:        cfg,
		obs:        cfg.Observer,
		log:        cfg.Logger,
		host:       cfg.Host,
		subs:       make(map[*subscriber]struct{}),
		monChanged: make(chan struct{}, 1),
		events:     queue.New[api.Envelope](maxPendingEvents),
		hashes:     cfg.ExeHashes,
	}
	if l.hashes == nil {
		l.hashes = exehash.New(exehash.Options{})
	}
	l.late = newLateHashes()
	l.hashes.OnServed(l.late.notify)
	if l.log == nil {
		l.log = slog.Default()
	}
	if l.host == "" {
		h, err := os.Hostname()
		if err != nil {
			return nil, fmt.Errorf("pipeline: host name: %w", err)
		}
		l.host = h
	}
	on, err := cfg.Store.Monitoring()
	if err != nil {
		return nil, fmt.Errorf("pipeline: read monitoring setting: %w", err)
	}
	l.active.Store(on)
	l.engine = cfg.Rules
	if err := l.pushSkips(); err != nil {
		return nil, fmt.Errorf("pipeline: %w", err)
	}
	return l, nil
}

// Run drives the sensor (while monitoring is on) and the fan-out to
// subscribers until ctx ends, then detaches the sensor and flushes the
// store. It returns an error only when the sensor fails.
func (l *Local) Run(ctx context.Context) error {
	if !l.running.CompareAndSwap(false, true) {
		return errors.New("pipeline: Run called twice")
	}
	defer l.running.Store(false)
	fanCtx, stopFan := context.WithCancel(context.Background())
	fanDone := make(chan struct{})
	go func() {
		defer close(fanDone)
		l.fanOut(fanCtx)
	}()
	hashStop, hashDone := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(hashDone)
		l.hashes.Run(hashStop)
	}()
	lateDone := make(chan struct{})
	go func() {
		defer close(lateDone)
		l.runLateHashes(hashStop)
	}()
	l.warmPins()
	err := l.runSource(ctx)
	stopFan()
	<-fanDone
	close(hashStop)
	<-hashDone
	<-lateDone
	l.dropAll()
	if ferr := l.cfg.Store.Flush(); ferr != nil && err == nil {
		err = fmt.Errorf("flush store: %w", ferr)
	}
	return err
}

// runSource starts and stops the sensor as monitoring is switched.
func (l *Local) runSource(ctx context.Context) error {
	var (
		srcDone chan error // nil while the sensor is not running
		stop    context.CancelFunc
	)
	detach := func() {
		stop()
		if err := <-srcDone; err != nil && !errors.Is(err, context.Canceled) {
			l.log.Warn("sensor stopped with an error", "err", err)
		}
		srcDone = nil
		l.log.Info("sensor detached")
	}
	for {
		want := l.active.Load() && l.cfg.Source != nil
		switch {
		case want && srcDone == nil:
			runCtx, cancel := context.WithCancel(ctx)
			stop = cancel
			srcDone = make(chan error, 1)
			go func(done chan<- error) { done <- l.cfg.Source.Run(runCtx, l.handle) }(srcDone)
			l.log.Info("starting the sensor")
		case !want && srcDone != nil:
			detach()
		}
		select {
		case <-ctx.Done():
			if srcDone != nil {
				detach()
			}
			return nil
		case <-l.monChanged:
		case err := <-srcDone:
			stop()
			if err == nil {
				err = errors.New("sensor stopped unexpectedly")
			}
			return fmt.Errorf("sensor: %w", err)
		}
	}
}

// handle is the sensor's callback. It must stay quick and never wait for a
// subscriber: it evaluates, queues the incidents for the store and appends
// to the current batch.
func (l *Local) handle(ev *event.Event) {
	if !l.active.Load() {
		return
	}
	if ev.ContainerID != "" && l.cfg.Containers != nil {
		l.cfg.Containers.Enrich(ev)
	}
	var began time.Time
	if l.obs != nil {
		began = time.Now()
	}
	// The content hash costs a stat and a map lookup, never a read: only
	// for binaries a pinned skip names, before judging, and for those that
	// raise an incident whose hash is not known yet, after.
	ev.ExeSHA256 = ""
	if l.engine.PinnedPath(string(ev.Exe)) {
		ev.ExeSHA256 = l.hashes.Lookup(ev)
	}
	v := l.engine.Judge(ev)
	if l.obs != nil {
		l.obs.Judged(time.Since(began), v.Incidents)
	}
	incs := v.Incidents
	// A hash still unknown is attached later (latehash.go): l.late.mu is
	// held from the lookup until the incidents are queued and remembered.
	late := ev.ExeSHA256 == "" && l.needSum(incs)
	if late {
		l.late.mu.Lock()
		ev.ExeSHA256 = l.hashes.Lookup(ev)
	}
	for i := range incs {
		inc := &incs[i]
		if inc.Host == "" {
			inc.Host = l.host
		}
		l.fillSum(inc, ev)
		l.triage.apply(inc, l.cfg.Store)
		l.cfg.Store.Put(*inc)
		if l.cfg.OnIncident != nil {
			l.cfg.OnIncident(*inc)
		}
	}
	if late {
		if ev.ExeSHA256 == "" {
			l.late.addLocked(ev, incs)
		}
		l.late.mu.Unlock()
	}
	watching := l.nsubs.Load() > 0
	if !watching {
		return
	}
	env := api.Envelope{Event: copyEvent(ev)}
	if v.Skipped > 0 {
		hit := v.Skip
		env.Skip = &hit
	}
	l.queueIncidents(incs)
	l.events.Push(env)
}

// queueIncidents adds incs to the batch being gathered, counting those
// past maxPendingIncidents (they remain stored).
func (l *Local) queueIncidents(incs []rules.Incident) {
	if len(incs) == 0 {
		return
	}
	l.pendMu.Lock()
	room := max(0, maxPendingIncidents-len(l.pendIncs))
	kept := min(room, len(incs))
	l.pendIncs = append(l.pendIncs, incs[:kept]...)
	lost := uint64(len(incs) - kept)
	l.pendDropped += lost
	l.pendMu.Unlock()
	l.incsDropped.Add(lost)
}

// maxSums bounds Local.sums.
const maxSums = 4096

// needSum reports whether an incident of incs lacks the hash of its first
// event's binary: only then is the event's binary looked up (a stat or
// two), so the repeats of an incident whose hash is known cost none.
func (l *Local) needSum(incs []rules.Incident) bool {
	for i := range incs {
		if _, ok := l.sums[incs[i].ID]; !ok {
			return true
		}
	}
	return false
}

// fillSum gives inc the hash of its first event's binary: the one
// remembered for the incident, else ev's when ev is that first event or
// ran the same file (a repeat carries its first event), and remembers it.
func (l *Local) fillSum(inc *rules.Incident, ev *event.Event) {
	if inc.Process.ExeSHA256 != "" {
		return
	}
	if sum, ok := l.sums[inc.ID]; ok {
		inc.Process.ExeSHA256 = sum
		return
	}
	if ev.ExeSHA256 == "" || !(inc.Count == 1 || inc.Process.ExeDev == ev.ExeDev && inc.Process.ExeIno == ev.ExeIno) {
		return
	}
	inc.Process.ExeSHA256 = ev.ExeSHA256
	if l.sums == nil || len(l.sums) >= maxSums {
		l.sums = make(map[rules.ID]string, 64)
	}
	l.sums[inc.ID] = ev.ExeSHA256
}

// Dropped is how many events and incidents the pipeline's own batch
// dropped since it started (each subscriber's mailbox counts its own).
func (l *Local) Dropped() uint64 { return l.events.Dropped() + l.incsDropped.Load() }

// queueDropped is Status.QueueDropped: the batch's drops and those of
// every mailbox, present and gone, since the pipeline started.
func (l *Local) queueDropped() uint64 {
	l.subMu.Lock()
	defer l.subMu.Unlock()
	n := l.Dropped() + l.goneDropped.Load()
	for s := range l.subs {
		n += s.box.Dropped()
	}
	return n
}

// copyEvent copies ev including its slices, since the sensor may reuse
// their memory once handle returns.
func copyEvent(ev *event.Event) event.Event {
	c := *ev
	c.Args = slices.Clone(ev.Args)
	c.Ancestors = slices.Clone(ev.Ancestors)
	return c
}

// fanOut hands each batch to every subscriber within Config.Tick of its
// first event (no free-running ticker: an idle pipeline does not wake),
// sends a status every StatusEvery, and drops subscribers that stopped
// reading.
func (l *Local) fanOut(ctx context.Context) {
	statusTick := time.NewTicker(l.cfg.StatusEvery)
	defer statusTick.Stop()
	lastStatus := time.Now()
	var buf []api.Envelope
	for {
		select {
		case <-ctx.Done():
			return
		case <-statusTick.C:
		case <-l.events.Ready():
			// Gather the rest of the reader's batch for at most a tick.
			t := time.NewTimer(l.cfg.Tick)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
		}
		now := time.Now()
		var batch api.Update
		var dropped uint64
		buf, dropped = l.events.Take(buf[:0])
		l.pendMu.Lock()
		batch.Incidents, l.pendIncs = l.pendIncs, nil
		batch.Dropped = dropped + l.pendDropped
		l.pendDropped = 0
		l.pendMu.Unlock()
		if l.nsubs.Load() == 0 {
			continue
		}
		// Mailboxes copy the elements; buf is reused for the next batch.
		batch.Events = buf
		if now.Sub(lastStatus) >= l.cfg.StatusEvery || l.statusDue.Swap(false) {
			lastStatus = now
			if st, err := l.status(); err == nil {
				batch.Status = &st
			} else {
				l.log.Warn("status for subscribers", "err", err)
			}
		}
		l.putAll(now, batch)
	}
}

// putAll puts batch in every subscriber's mailbox, dropping those that
// accepted nothing for Config.DropAfter.
func (l *Local) putAll(now time.Time, batch api.Update) {
	l.subMu.Lock()
	defer l.subMu.Unlock()
	for s := range l.subs {
		if s.box.Stalled(now, l.cfg.DropAfter) {
			l.log.Warn("dropping a subscriber that stopped reading", "after", l.cfg.DropAfter)
			l.removeLocked(s)
			if l.obs != nil {
				l.obs.SubscriberDropped()
			}
			continue
		}
		s.box.Put(batch)
	}
}

// broadcast puts u in every subscriber's mailbox at once, for changes made
// through the Service (status changes) rather than by the sensor.
func (l *Local) broadcast(u api.Update) {
	l.subMu.Lock()
	defer l.subMu.Unlock()
	for s := range l.subs {
		s.box.Put(u)
	}
}

func (l *Local) removeLocked(s *subscriber) {
	if _, ok := l.subs[s]; !ok {
		return
	}
	delete(l.subs, s)
	l.goneDropped.Add(s.box.Dropped())
	l.nsubs.Add(-1)
	s.cancel()
}

func (l *Local) dropAll() {
	l.subMu.Lock()
	defer l.subMu.Unlock()
	for s := range l.subs {
		l.removeLocked(s)
	}
}

// Subscribe implements api.Service. The subscriber's mailbox is in
// place before the store is flushed and read for the replay, so every
// incident is either replayed or arrives live; live copies identical to a
// replayed one are dropped, so none arrives twice.
func (l *Local) Subscribe(ctx context.Context, after rules.ID) (<-chan api.Update, error) {
	ctx, cancel := context.WithCancel(ctx)
	s := &subscriber{box: api.NewMailbox(l.cfg.MailboxEvents, l.cfg.MailboxIncidents), cancel: cancel}
	start := time.Now()
	l.subMu.Lock()
	l.subs[s] = struct{}{}
	l.nsubs.Add(1)
	l.subMu.Unlock()
	l.statusDue.Store(true)
	l.events.Signal()
	if !l.running.Load() {
		if st, err := l.status(); err == nil {
			s.box.Put(api.Update{Status: &st})
		}
	}
	out := make(chan api.Update, 4)
	go l.deliver(ctx, s, out, after, start)
	return out, nil
}

type incidentVersion struct {
	count    uint64
	status   rules.Status
	lastSeen time.Time
	ended    bool // the process's fate is attached
	hashed   bool // exe_sha256 is known (it may be attached later)
}

func versionOf(inc *rules.Incident) incidentVersion {
	return incidentVersion{inc.Count, inc.Status, inc.LastSeen, inc.Fate != nil, inc.Process.ExeSHA256 != ""}
}

// deliver replays, then forwards the mailbox to out until ctx ends or the
// subscriber is dropped.
func (l *Local) deliver(ctx context.Context, s *subscriber, out chan<- api.Update, after rules.ID, start time.Time) {
	defer close(out)
	defer func() {
		l.subMu.Lock()
		l.removeLocked(s)
		l.subMu.Unlock()
	}()
	var replayed map[rules.ID]incidentVersion
	if after > 0 {
		var err error
		replayed, err = l.replay(ctx, s, out, after, start)
		if err != nil {
			if ctx.Err() == nil {
				l.log.Warn("replay for a subscriber failed", "err", err)
			}
			return
		}
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.box.Ready():
		}
		u, ok := s.box.Take()
		if !ok {
			continue
		}
		if u.Dropped > 0 && l.obs != nil {
			l.obs.SubscriberLost(u.Dropped)
		}
		if replayed != nil {
			u.Incidents = slices.DeleteFunc(u.Incidents, func(inc rules.Incident) bool {
				v, seen := replayed[inc.ID]
				return seen && v == versionOf(&inc)
			})
			replayed = nil
			if len(u.Events) == 0 && len(u.Incidents) == 0 && u.Status == nil && u.Dropped == 0 {
				continue
			}
		}
		select {
		case out <- u:
			s.box.Delivered(time.Now())
		case <-ctx.Done():
			return
		}
	}
}

// replay sends the stored incidents with ID > after in batches. It returns
// the versions of the recently seen ones, against which live duplicates
// are checked.
func (l *Local) replay(ctx context.Context, s *subscriber, out chan<- api.Update, after rules.ID, start time.Time) (map[rules.ID]incidentVersion, error) {
	l.flush()
	recent := make(map[rules.ID]incidentVersion)
	batch := make([]rules.Incident, 0, replayBatch)
	send := func() error {
		if len(batch) == 0 {
			return nil
		}
		select {
		case out <- api.Update{Incidents: batch}:
			s.box.Delivered(time.Now())
		case <-ctx.Done():
			return ctx.Err()
		}
		batch = make([]rules.Incident, 0, replayBatch)
		return nil
	}
	err := l.cfg.Store.After(after, func(inc *rules.Incident) error {
		if !inc.LastSeen.Before(start.Add(-dupWindow)) {
			recent[inc.ID] = versionOf(inc)
		}
		batch = append(batch, *inc)
		if len(batch) == replayBatch {
			return send()
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("replay after %s: %w", after, err)
	}
	return recent, send()
}

// Incidents implements api.Service.
func (l *Local) Incidents(ctx context.Context, q api.Query) ([]rules.Incident, error) {
	l.flush()
	return l.cfg.Store.Query(q)
}

// EachIncident implements api.IncidentStreamer: incidents are read in
// short transactions of a bounded batch and handed to fn one at a time.
func (l *Local) EachIncident(ctx context.Context, q api.Query, fn func(*rules.Incident) error) error {
	l.flush()
	return l.cfg.Store.Each(q, func(inc *rules.Incident) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		return fn(inc)
	})
}

// flush commits queued incidents before a read, so a front end sees what
// was raised before it asked (the store commits on its own within its
// batch interval; a flush with nothing queued costs nothing). A commit that
// fails (a full disk) does not fail the read: it is served from what is
// committed, and Status shows the pending incidents and the error, while
// the store retries with backoff and logs the failure.
func (l *Local) flush() {
	if err := l.cfg.Store.Flush(); err != nil {
		l.log.Debug("read served from committed incidents; commit pending", "err", err)
	}
}

// Noise implements api.Service.
func (l *Local) Noise(ctx context.Context, since time.Time, limit int) (api.Noise, error) {
	l.flush()
	return l.cfg.Store.Noise(since, limit)
}

// SetStatus implements api.Service and pushes the changed incidents to
// subscribers, so every front end sees an acknowledgement at once.
func (l *Local) SetStatus(ctx context.Context, ids []rules.ID, st rules.Status) error {
	by := api.Caller(ctx)
	err := l.cfg.Store.SetStatusBy(ids, st, &by)
	l.triage.forget()
	if err != nil {
		return err
	}
	const maxPushed = 1000
	if len(ids) <= maxPushed && l.nsubs.Load() > 0 {
		var changed []rules.Incident
		for _, id := range ids {
			if inc, ok, err := l.cfg.Store.Get(id); err == nil && ok {
				changed = append(changed, inc)
			}
		}
		l.broadcast(api.Update{Incidents: changed})
	}
	l.statusDue.Store(true)
	return nil
}

// Skips implements api.Service: the rules file's skips, then the added ones.
func (l *Local) Skips(ctx context.Context) ([]rules.Skip, error) {
	file := l.engine.RuleSet().Skips()
	added, err := l.cfg.Store.Skips()
	if err != nil {
		return nil, err
	}
	all := make([]rules.Skip, 0, len(file)+len(added))
	for _, s := range file {
		if s.Source == "" {
			s.Source = rules.SourceRulesFile
		}
		all = append(all, s)
	}
	return append(all, added...), nil
}

// PreviewSkip implements api.Service.
func (l *Local) PreviewSkip(ctx context.Context, s rules.Skip) (int, error) {
	if err := rules.ValidateSkip(s); err != nil {
		return 0, fmt.Errorf("preview skip: %w", err)
	}
	n, err := l.cfg.Store.CountCovered(s.Coverer())
	if err != nil {
		return 0, fmt.Errorf("preview skip: %w", err)
	}
	return n, nil
}

// AddSkip implements api.Service: store, mask, then hand the engine
// the full list of added skips so new events are filtered at once.
func (l *Local) AddSkip(ctx context.Context, s rules.Skip) (rules.Skip, int, error) {
	if s.Rule != "" && l.engine.RuleSet().Rule(s.Rule) == nil {
		return rules.Skip{}, 0, fmt.Errorf("add skip: no rule named %q (see procwatch rules)", s.Rule)
	}
	s.Source = rules.SourceAdded
	s.AddedBy = api.Caller(ctx).String() // the kernel's word, not the client's
	l.skipMu.Lock()
	defer l.skipMu.Unlock()
	by := api.Caller(ctx)
	added, masked, err := l.cfg.Store.AddSkipBy(s, s.Coverer(), &by)
	l.triage.forget()
	if err != nil {
		return rules.Skip{}, 0, err
	}
	if s.Pin != "" {
		l.hashes.Warm(s.Value)
	}
	if err := l.pushSkips(); err != nil {
		return added, masked, err
	}
	l.statusDue.Store(true)
	return added, masked, nil
}

// RemoveSkip implements api.Service.
func (l *Local) RemoveSkip(ctx context.Context, id string) (int, error) {
	l.skipMu.Lock()
	defer l.skipMu.Unlock()
	by := api.Caller(ctx)
	n, err := l.cfg.Store.RemoveSkipBy(id, &by)
	l.triage.forget()
	if err != nil {
		return 0, err
	}
	if err := l.pushSkips(); err != nil {
		return n, err
	}
	l.statusDue.Store(true)
	return n, nil
}

// warmPins queues the pinned files for hashing, so their next run finds
// the hash known instead of raising one incident first.
func (l *Local) warmPins() {
	added, err := l.cfg.Store.Skips()
	if err != nil {
		return // pushSkips reported it
	}
	for _, s := range added {
		if s.Pin != "" {
			l.hashes.Warm(s.Value)
		}
	}
}

// pushSkips gives the engine the stored list of added skips; skipMu held.
func (l *Local) pushSkips() error {
	added, err := l.cfg.Store.Skips()
	if err != nil {
		return fmt.Errorf("reload added skips: %w", err)
	}
	if err := l.engine.SetAddedSkips(added); err != nil {
		l.log.Warn("some added skips are invalid and do not apply", "err", err)
	}
	return nil
}

// ApplyRules makes set the active rules, keeping dedup state and added
// skips. With a non-nil err (a broken file) the old rules stay active and
// err shows in Status.RulesError until rules apply cleanly again. Its
// signature fits rules.NewWatcher's callback, which is how the agent hot
// reloads on file changes and SIGHUP.
func (l *Local) ApplyRules(set *rules.RuleSet, err error) {
	if err == nil && set == nil {
		err = errors.New("no rules")
	}
	if err != nil {
		msg := err.Error()
		l.rulesErr.Store(&msg)
		l.statusDue.Store(true)
		l.log.Error("rules reload failed; keeping the previous rules", "path", l.cfg.RulesPath, "err", strings.ReplaceAll(msg, "\n", " | "))
		if l.obs != nil {
			l.obs.RulesReloadFailed()
		}
		return
	}
	l.engine.SetRules(set)
	l.rulesErr.Store(nil)
	l.statusDue.Store(true)
	l.log.Info("rules reloaded", "path", l.cfg.RulesPath, "rules", len(set.Rules))
}

// Rules implements api.Service.
func (l *Local) Rules(ctx context.Context) ([]rules.Rule, error) {
	return l.engine.Rules(), nil
}

// SetMonitoring implements api.Service. The setting is stored first,
// so it holds across restarts; a running sensor is then detached or
// attached.
func (l *Local) SetMonitoring(ctx context.Context, on bool) error {
	by := api.Caller(ctx)
	if err := l.cfg.Store.SetMonitoringBy(on, &by); err != nil {
		return fmt.Errorf("set monitoring: %w", err)
	}
	if l.active.Swap(on) != on {
		select {
		case l.monChanged <- struct{}{}:
		default:
		}
		l.log.Info("monitoring switched", "on", on, "by", by.String())
	}
	l.statusDue.Store(true)
	return nil
}

// Status implements api.Service.
func (l *Local) Status(ctx context.Context) (api.Status, error) {
	l.flush()
	return l.status()
}

// SetSourceError records why the sensor that was wanted could not start,
// for a Local running without a Source: Status then reports the sensor
// "failed" with this reason instead of merely "off".
func (l *Local) SetSourceError(err error) {
	if err == nil {
		l.sourceErr.Store(nil)
		return
	}
	msg := err.Error()
	l.sourceErr.Store(&msg)
}

// Snapshot is Status without committing the store's queue first, for
// frequent pollers such as a metrics scrape that must not force commits:
// its open counts cover committed incidents, at most one batch interval
// behind.
func (l *Local) Snapshot() (api.Status, error) {
	return l.status()
}

func (l *Local) status() (api.Status, error) {
	st := api.Status{
		Host:       l.host,
		Monitoring: l.active.Load(),
		RulesPath:  l.cfg.RulesPath,
		Time:       time.Now(),
	}
	switch {
	case l.cfg.Source != nil:
		st.Sensor = l.cfg.Source.Stats()
	case l.sourceErr.Load() != nil:
		st.Sensor = event.Stats{State: event.SensorFailed, Error: *l.sourceErr.Load()}
	default:
		st.Sensor = event.Stats{State: event.SensorOff}
	}
	if l.cfg.Containers != nil {
		cs := l.cfg.Containers.Stats()
		st.Containers = &cs
	}
	if msg := l.rulesErr.Load(); msg != nil {
		st.RulesError = *msg
	}
	db := l.cfg.Store.Status()
	st.Store = &db
	hs := l.hashes.Stats()
	st.ExeHashes = &api.ExeHashStats{Hits: hs.Hits, Misses: hs.Misses, Hashed: hs.Hashed,
		Failed: hs.Failed, Dropped: hs.Dropped, Entries: hs.Entries,
		Attached: l.late.attached.Load(), Unattached: l.late.unattached.Load()}
	st.FatesLost = l.engine.FatesLost()
	st.QueueDropped = l.queueDropped()
	if sw, err := l.cfg.Store.MonitoringSwitch(); err == nil {
		st.MonitoringSwitch = sw
	}
	open, err := l.cfg.Store.OpenBySeverity()
	if err != nil {
		return st, fmt.Errorf("status: count open incidents: %w", err)
	}
	st.OpenBySev = open
	return st, nil
}

// Export implements api.Service. Progress goes to the function set
// with api.WithExportProgress, and the export stops when ctx ends.
func (l *Local) Export(ctx context.Context, q api.Query, format string, w io.Writer) (int, error) {
	l.flush()
	return l.cfg.Store.Export(q, format, ctxWriter{ctx, w}, api.ExportProgress(ctx))
}

// ctxWriter fails writes once ctx ends, which stops a long export whose
// reader went away.
type ctxWriter struct {
	ctx context.Context
	w   io.Writer
}

func (c ctxWriter) Write(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.w.Write(p)
}

var _ api.Service = (*Local)(nil)
