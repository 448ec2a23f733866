package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/procwatch/procwatch/api"
	"github.com/procwatch/procwatch/rules"
)

// DefaultStaleAfter is how long a host may stay silent before the fleet
// view calls it stale: three missed status messages.
const DefaultStaleAfter = 3 * time.Second

// DefaultMaxIncidents bounds the incidents a Client holds (about 2 KiB
// each): the stream may hold weeks of a fleet, more than a viewer should
// load. Past it the most expendable go (rules.ExpendableFirst).
const DefaultMaxIncidents = 200_000

// ClientOptions tune a Client.
type ClientOptions struct {
	// Caller is the identity put in control subjects (Identity of the
	// connection options); the account layout makes the server enforce it.
	Caller     string
	StaleAfter time.Duration // default DefaultStaleAfter
	// NoHistory starts the incident view at the stream's end instead of
	// its beginning (the CLI's hosts command needs no incidents).
	NoHistory bool
	// OnIncident, when set, sees every incident message as it arrives,
	// with dup set for a version already seen and the time the stream
	// stored it (tests and figures).
	OnIncident func(host string, inc *rules.Incident, rev uint64, dup bool, stored time.Time)
	Logger     *slog.Logger
	// MaxIncidents bounds the incidents held; default DefaultMaxIncidents.
	MaxIncidents int
}

// Client is the fleet as a front end sees it: hosts from their status
// messages, incidents from the stream (history included), and one
// api.Service per host whose calls go to that host's control service.
type Client struct {
	nc   *nats.Conn
	js   jetstream.JetStream
	opts ClientOptions
	log  *slog.Logger

	mu    sync.Mutex
	hosts map[string]*hostState
	// held counts the incidents of every host; evicted those let go to
	// stay under MaxIncidents (see evict).
	held, evicted int
	// added is closed and replaced when a host is first seen.
	added chan struct{}

	// caughtUp closes once the stream's history (up to its last message
	// when the client started) has been read.
	caughtUp   chan struct{}
	upTo       uint64
	caughtOnce sync.Once

	// permErr is the last permission violation the server reported, so a
	// call that times out because of it can say why.
	permErr atomic.Pointer[string]

	subs []*nats.Subscription
	cons jetstream.ConsumeContext
}

// hostState is what the client knows about one host.
type hostState struct {
	status    *StatusMsg
	lastSeen  time.Time
	firstSeen time.Time
	incidents map[rules.ID]*version
	watchers  map[*api.Mailbox]struct{}
}

type version struct {
	inc rules.Incident
	rev uint64
}

// NewClient starts following the fleet over nc: status messages at once,
// and the incident stream from its first message (or its end with
// NoHistory). It fails when the stream does not exist.
func NewClient(ctx context.Context, nc *nats.Conn, opts ClientOptions) (*Client, error) {
	if opts.StaleAfter <= 0 {
		opts.StaleAfter = DefaultStaleAfter
	}
	if opts.MaxIncidents <= 0 {
		opts.MaxIncidents = DefaultMaxIncidents
	}
	if opts.Caller == "" {
		opts.Caller = "anonymous"
	}
	opts.Caller = callerToken(opts.Caller)
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	c := &Client{nc: nc, js: js, opts: opts, log: opts.Logger, hosts: map[string]*hostState{}, added: make(chan struct{}), caughtUp: make(chan struct{})}
	if c.log == nil {
		c.log = slog.Default()
	}
	prev := nc.ErrorHandler()
	nc.SetErrorHandler(func(nc *nats.Conn, sub *nats.Subscription, err error) {
		if errors.Is(err, nats.ErrPermissionViolation) || strings.Contains(err.Error(), "Permissions Violation") {
			msg := err.Error()
			c.permErr.Store(&msg)
			return
		}
		if prev != nil {
			prev(nc, sub, err)
		}
	})
	sub, err := nc.Subscribe(StatusWildcard, c.onStatus)
	if err != nil {
		return nil, fmt.Errorf("subscribe %s: %w", StatusWildcard, err)
	}
	c.subs = append(c.subs, sub)
	if err := c.follow(ctx); err != nil {
		sub.Unsubscribe()
		return nil, err
	}
	return c, nil
}

// follow consumes the stream with an ordered consumer, which JetStream
// recreates from the last delivered sequence after a leader change or a
// reconnect, so nothing is skipped and nothing delivered twice.
func (c *Client) follow(ctx context.Context) error {
	s, err := c.js.Stream(ctx, StreamName)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return errNoStream
	}
	if err != nil {
		return fmt.Errorf("stream %s: %w", StreamName, err)
	}
	cfg := jetstream.OrderedConsumerConfig{FilterSubjects: []string{IncidentsWildcard}}
	c.upTo = s.CachedInfo().State.LastSeq
	if c.opts.NoHistory || c.upTo == 0 {
		c.caughtOnce.Do(func() { close(c.caughtUp) })
	}
	if c.opts.NoHistory {
		cfg.DeliverPolicy = jetstream.DeliverNewPolicy
	}
	cons, err := s.OrderedConsumer(ctx, cfg)
	if err != nil {
		return fmt.Errorf("consume %s: %w", StreamName, err)
	}
	cc, err := cons.Consume(c.onIncident)
	if err != nil {
		return fmt.Errorf("consume %s: %w", StreamName, err)
	}
	c.cons = cc
	return nil
}

// Close stops following the fleet; the connection stays the caller's.
func (c *Client) Close() {
	for _, s := range c.subs {
		s.Unsubscribe()
	}
	if c.cons != nil {
		c.cons.Stop()
	}
}

// host returns the state of name, creating it; c.mu held.
func (c *Client) host(name string) *hostState {
	h := c.hosts[name]
	if h == nil {
		h = &hostState{firstSeen: time.Now(), incidents: map[rules.ID]*version{}, watchers: map[*api.Mailbox]struct{}{}}
		c.hosts[name] = h
		close(c.added)
		c.added = make(chan struct{})
	}
	return h
}

// NewHosts sends, as they appear, the names of the hosts the client sees
// that are not in known (a front end's hosts at its start): a host whose
// first status or incident arrives later, so a UI shows it without a
// restart. The channel closes when ctx ends.
func (c *Client) NewHosts(ctx context.Context, known []string) <-chan string {
	seen := make(map[string]bool, len(known))
	for _, n := range known {
		seen[n] = true
	}
	out := make(chan string)
	go func() {
		defer close(out)
		for {
			c.mu.Lock()
			added := c.added
			var fresh []string
			for name := range c.hosts {
				if !seen[name] {
					seen[name] = true
					fresh = append(fresh, name)
				}
			}
			c.mu.Unlock()
			slices.Sort(fresh)
			for _, name := range fresh {
				select {
				case out <- name:
				case <-ctx.Done():
					return
				}
			}
			select {
			case <-added:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out
}

func (c *Client) onStatus(m *nats.Msg) {
	name, ok := hostOfSubject(m.Subject)
	if !ok || CheckHost(name) != nil {
		return
	}
	var st StatusMsg
	if err := json.Unmarshal(m.Data, &st); err != nil {
		c.log.Debug("bad status message", "host", name, "err", err)
		return
	}
	st.Host = name // the subject, which permissions tie to the host, not what the body claims
	c.mu.Lock()
	h := c.host(name)
	h.status, h.lastSeen = &st, time.Now()
	s := st.Status
	for w := range h.watchers {
		w.Put(api.Update{Status: &s})
	}
	c.mu.Unlock()
}

func (c *Client) onIncident(m jetstream.Msg) {
	name, ok := hostOfSubject(m.Subject())
	if !ok || CheckHost(name) != nil {
		return
	}
	var stored time.Time
	if md, err := m.Metadata(); err == nil {
		stored = md.Timestamp
		if md.Sequence.Stream >= c.upTo {
			defer c.caughtOnce.Do(func() { close(c.caughtUp) })
		}
	}
	rev, _ := strconv.ParseUint(m.Headers().Get(HeaderRevision), 10, 64)
	var inc rules.Incident
	if err := json.Unmarshal(m.Data(), &inc); err != nil {
		c.log.Warn("bad incident message", "host", name, "err", err)
		return
	}
	inc.Host = name
	c.mu.Lock()
	h := c.host(name)
	old, seen := h.incidents[inc.ID]
	dup := seen && old.rev >= rev
	if !dup {
		h.incidents[inc.ID] = &version{inc: inc, rev: rev}
		for w := range h.watchers {
			w.Put(api.Update{Incidents: []rules.Incident{inc}})
		}
		if !seen {
			c.held++
			c.evict()
		}
	}
	c.mu.Unlock()
	if c.opts.OnIncident != nil {
		c.opts.OnIncident(name, &inc, rev, dup, stored)
	}
}

// evict lets the most expendable tenth of the incidents go once more than
// MaxIncidents are held, so a stream of weeks cannot fill the viewer's
// memory and a flood of low incidents pushes out its own kind first. What
// goes stays in the stream and in the hosts' stores; Evicted counts it.
// c.mu held.
func (c *Client) evict() {
	if c.held <= c.opts.MaxIncidents {
		return
	}
	all := make([]*rules.Incident, 0, c.held)
	for _, h := range c.hosts {
		for _, v := range h.incidents {
			all = append(all, &v.inc)
		}
	}
	slices.SortFunc(all, rules.ExpendableFirst)
	n := c.held - c.opts.MaxIncidents*9/10
	for _, inc := range all[:n] {
		delete(c.hosts[inc.Host].incidents, inc.ID)
	}
	c.held -= n
	c.evicted += n
	c.log.Info("fleet view: let the most expendable incidents go to stay bounded (they remain in the stream and on their hosts)",
		"evicted", n, "evicted_total", c.evicted, "held", c.held)
}

// Evicted is how many incidents the client let go to stay under
// MaxIncidents since it started.
func (c *Client) Evicted() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.evicted
}

// WaitCaughtUp waits until the stream's history has been read, so a
// listing includes what happened while no viewer ran.
func (c *Client) WaitCaughtUp(ctx context.Context, d time.Duration) error {
	select {
	case <-c.caughtUp:
		return nil
	case <-time.After(d):
		return fmt.Errorf("reading %s: history not read within %s", StreamName, d)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// HostInfo is one host as the fleet view shows it.
type HostInfo struct {
	Name     string     `json:"host"`
	Stale    bool       `json:"stale"`
	LastSeen time.Time  `json:"last_seen,omitzero"`
	Status   *StatusMsg `json:"status,omitempty"`
	// Incidents counts the incidents of the host the client holds: those
	// of the stream, less any let go to stay under MaxIncidents.
	Incidents int `json:"incidents"`
}

// Hosts lists every host that sent a status or has incidents in the
// stream, by name.
func (c *Client) Hosts() []HostInfo {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	out := make([]HostInfo, 0, len(c.hosts))
	for name, h := range c.hosts {
		out = append(out, HostInfo{Name: name, LastSeen: h.lastSeen, Status: h.status,
			Stale: h.lastSeen.IsZero() || now.Sub(h.lastSeen) > c.opts.StaleAfter, Incidents: len(h.incidents)})
	}
	slices.SortFunc(out, func(a, b HostInfo) int {
		if a.Name < b.Name {
			return -1
		}
		if a.Name > b.Name {
			return 1
		}
		return 0
	})
	return out
}

// Incidents returns the incidents of host (every host when empty) held
// from the stream, each in its latest version, newest first.
func (c *Client) Incidents(host string) []rules.Incident {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []rules.Incident
	for name, h := range c.hosts {
		if host != "" && name != host {
			continue
		}
		for _, v := range h.incidents {
			out = append(out, v.inc)
		}
	}
	slices.SortFunc(out, func(a, b rules.Incident) int {
		switch {
		case a.ID > b.ID:
			return -1
		case a.ID < b.ID:
			return 1
		case a.Host < b.Host:
			return -1
		case a.Host > b.Host:
			return 1
		}
		return 0
	})
	return out
}

// WaitHosts waits up to d for status messages, so a front end that starts
// has the hosts that are up.
func (c *Client) WaitHosts(ctx context.Context, d time.Duration, want int) {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		n := 0
		for _, h := range c.Hosts() {
			if !h.Stale {
				n++
			}
		}
		if want > 0 && n >= want {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// ControlError is a failure the host's control service reported.
type ControlError struct {
	Host, Op, Code, Msg string
}

func (e *ControlError) Error() string { return fmt.Sprintf("host %s: %s", e.Host, e.Msg) }

// Call runs one control operation on host: req is sent as JSON and the
// answer decoded into resp (when not nil).
func (c *Client) Call(ctx context.Context, host, op string, req, resp any) error {
	if err := CheckHost(host); err != nil {
		return err
	}
	var data []byte
	if req != nil {
		b, err := json.Marshal(req)
		if err != nil {
			return err
		}
		data = b
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
	}
	m, err := c.nc.RequestWithContext(ctx, ControlSubject(host, op, c.opts.Caller), data)
	switch {
	case errors.Is(err, nats.ErrNoResponders):
		return fmt.Errorf("host %s does not answer: no procwatch agent serves it (is it running with --nats?)", host)
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout):
		if p := c.permErr.Load(); p != nil && strings.Contains(*p, ControlSubject(host, op, c.opts.Caller)) {
			return fmt.Errorf("host %s: %s refused by the NATS server: %s", host, op, *p)
		}
		return fmt.Errorf("host %s: %s timed out", host, op)
	case err != nil:
		return fmt.Errorf("host %s: %s: %w", host, op, err)
	}
	if code := m.Header.Get("Nats-Service-Error-Code"); code != "" {
		return &ControlError{Host: host, Op: op, Code: code, Msg: m.Header.Get("Nats-Service-Error")}
	}
	if resp != nil {
		if err := json.Unmarshal(m.Data, resp); err != nil {
			return fmt.Errorf("host %s: %s: bad answer: %w", host, op, err)
		}
	}
	return nil
}

// watch registers a mailbox for host's updates and returns the incidents
// after id, oldest first, to replay into it, and the host's latest status
// (nil before its first).
func (c *Client) watch(host string, box *api.Mailbox, after rules.ID) ([]rules.Incident, *api.Status) {
	c.mu.Lock()
	defer c.mu.Unlock()
	h := c.host(host)
	h.watchers[box] = struct{}{}
	var st *api.Status
	if h.status != nil {
		s := h.status.Status
		st = &s
	}
	var out []rules.Incident
	if after > 0 {
		for id, v := range h.incidents {
			if id > after {
				out = append(out, v.inc)
			}
		}
	}
	slices.SortFunc(out, func(a, b rules.Incident) int {
		if a.ID < b.ID {
			return -1
		}
		return 1
	})
	return out, st
}

func (c *Client) unwatch(host string, box *api.Mailbox) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if h := c.hosts[host]; h != nil {
		delete(h.watchers, box)
	}
}
