package hosts

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/procwatch/procwatch/api"
	"github.com/procwatch/procwatch/protocol"
	"github.com/procwatch/procwatch/rules"
)

// State is where a host's connection stands.
type State int

// Connection states. A host starts Connecting; a failed attempt or a lost
// connection makes it Unreachable until the next attempt.
const (
	Connecting State = iota
	Connected
	Unreachable
	// Failed: the host's agent broke the protocol or a client budget (a
	// frame too large, more incidents than asked, an endless stream); the
	// connection was cut and the next attempt waits the longest backoff.
	Failed
)

var stateNames = [...]string{"connecting", "connected", "unreachable", "failed"}

// String returns the word the Hosts screen shows.
func (s State) String() string {
	if int(s) < len(stateNames) {
		return stateNames[s]
	}
	return fmt.Sprintf("state(%d)", int(s))
}

// Conn is a snapshot of one host's connection, for display.
type Conn struct {
	State State
	// Reason says why the host is unreachable, or why its last connection
	// ended while it reconnects.
	Reason string
	// Since is when the host entered State.
	Since time.Time
	// Retry is when the next attempt starts, while Unreachable.
	Retry time.Time
	// Failures counts attempts that failed in a row; it picks the backoff.
	Failures int
	// Connects counts successful connections, so a front end can tell a
	// reconnect from the first connection.
	Connects int
}

// Options tune a Host. Zero values pick the defaults.
type Options struct {
	// MinBackoff is the wait after the first failure (default 500ms); it
	// doubles with each failure in a row up to MaxBackoff (default 30s),
	// with up to 20% random jitter so many hosts do not retry in step.
	MinBackoff, MaxBackoff time.Duration
	// Now returns the current time (default time.Now).
	Now func() time.Time
}

func (o *Options) defaults() {
	if o.MinBackoff <= 0 {
		o.MinBackoff = 500 * time.Millisecond
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = 30 * time.Second
	}
	if o.MaxBackoff < o.MinBackoff {
		o.MaxBackoff = o.MinBackoff
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

// backoff returns the wait after the given number of failures in a row.
func (o *Options) backoff(failures int) time.Duration {
	d := o.MinBackoff
	for i := 1; i < failures && d < o.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, o.MaxBackoff)
	return d - time.Duration(rand.Int64N(int64(d)/5+1))
}

// UnreachableError is returned by calls on a host that has no connection.
type UnreachableError struct {
	Host   string
	State  State
	Reason string
}

// Error says which host and why, so a message line can show it as is.
func (e *UnreachableError) Error() string {
	if e.Reason == "" {
		return fmt.Sprintf("host %s is %s", e.Host, e.State)
	}
	return fmt.Sprintf("host %s is %s: %s", e.Host, e.State, e.Reason)
}

// Host is one remote agent, kept connected in the background. It implements
// api.Service: calls go to the current connection and fail at once with
// an UnreachableError while there is none, except Subscribe, which waits
// for a connection. A subscription ends when its connection does; the
// caller resubscribes with the last incident id it holds to miss nothing.
type Host struct {
	name string
	dial Dialer
	opts Options

	mu      sync.Mutex
	conn    Conn
	client  *protocol.Client
	ready   chan struct{} // closed while connected; replaced on disconnect
	changed chan struct{} // closed and replaced on every state change

	cancel context.CancelFunc
	done   chan struct{}
}

// New returns a host that connects with dial once Start is called.
func New(name string, dial Dialer, opts Options) *Host {
	opts.defaults()
	return &Host{
		name:    name,
		dial:    dial,
		opts:    opts,
		conn:    Conn{State: Connecting, Since: opts.Now()},
		ready:   make(chan struct{}),
		changed: make(chan struct{}),
	}
}

// FromSpec returns a host reached by running spec's command.
func FromSpec(spec Spec, opts Options) *Host {
	return New(spec.Name, CommandDialer(spec.Command), opts)
}

// Name returns the host's name as configured (not the name its agent
// reports): two agents on one machine are still two hosts.
func (h *Host) Name() string { return h.name }

// Conn returns a snapshot of the connection state.
func (h *Host) Conn() Conn {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.conn
}

// Changed returns a channel that is closed at the next state change.
func (h *Host) Changed() <-chan struct{} {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.changed
}

// Start begins connecting in the background until ctx ends or Close is
// called. It must be called once.
func (h *Host) Start(ctx context.Context) {
	ctx, cancel := context.WithCancel(ctx)
	h.mu.Lock()
	h.cancel = cancel
	h.done = make(chan struct{})
	h.mu.Unlock()
	go h.run(ctx)
}

// Close stops reconnecting, closes the connection and ends the transport.
func (h *Host) Close() error {
	h.mu.Lock()
	cancel, done := h.cancel, h.done
	h.mu.Unlock()
	if cancel == nil {
		return nil
	}
	cancel()
	<-done
	return nil
}

func (h *Host) setState(st State, reason string, c *protocol.Client, retry time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.conn.State, h.conn.Reason, h.conn.Since, h.conn.Retry = st, reason, h.opts.Now(), retry
	switch {
	case st == Connected:
		h.conn.Failures = 0
		h.conn.Connects++
		h.client = c
		close(h.ready)
	case h.client != nil:
		h.client = nil
		h.ready = make(chan struct{})
	}
	if st == Unreachable {
		h.conn.Failures++
	}
	close(h.changed)
	h.changed = make(chan struct{})
}

func (h *Host) run(ctx context.Context) {
	defer close(h.done)
	reason := ""
	for {
		h.setState(Connecting, reason, nil, time.Time{})
		c, explain, err := h.connect(ctx)
		if ctx.Err() != nil {
			if c != nil {
				c.Close()
			}
			h.setState(Unreachable, "closed", nil, time.Time{})
			return
		}
		state := Unreachable
		if err == nil {
			h.setState(Connected, "", c, time.Time{})
			select {
			case <-c.Done():
				reason = "connection lost"
				var pe *protocol.ProtocolError
				if errors.As(c.Err(), &pe) {
					state, reason = Failed, pe.Error()
				} else if why, _ := explain(); why != "" {
					reason += ": " + why
				}
			case <-ctx.Done():
				c.Close()
				h.setState(Unreachable, "closed", nil, time.Time{})
				return
			}
			c.Close()
		} else {
			reason = err.Error()
		}
		wait := h.opts.backoff(h.Conn().Failures + 1)
		if state == Failed {
			wait = h.opts.MaxBackoff
		}
		h.setState(state, reason, nil, h.opts.Now().Add(wait))
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return
		}
	}
}

// connect dials and exchanges hellos. explain describes, after the
// connection has ended, why the transport went away, and whether it
// exited.
func (h *Host) connect(ctx context.Context) (c *protocol.Client, explain func() (string, bool), err error) {
	rwc, err := h.dial(ctx)
	if err != nil {
		return nil, nil, err
	}
	explain = func() (string, bool) { return "", false }
	if cc, ok := rwc.(*cmdConn); ok {
		explain = cc.explain
	}
	type result struct {
		c   *protocol.Client
		err error
	}
	res := make(chan result, 1)
	go func() {
		c, err := protocol.NewClient(rwc)
		res <- result{c, err}
	}()
	select {
	case r := <-res:
		if r.err == nil {
			return r.c, explain, nil
		}
		// A transport that exited (ssh could not connect, sudo wanted a
		// password) says more than the protocol's "EOF" does.
		switch s, exited := explain(); {
		case exited && errors.Is(r.err, io.EOF):
			return nil, nil, errors.New(s)
		case s != "":
			return nil, nil, fmt.Errorf("%w (%s)", r.err, s)
		}
		return nil, nil, r.err
	case <-ctx.Done():
		rwc.Close()
		if r := <-res; r.c != nil {
			r.c.Close()
		}
		return nil, nil, ctx.Err()
	}
}

// current returns the live client, or an UnreachableError.
func (h *Host) current() (*protocol.Client, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.client != nil {
		select {
		case <-h.client.Done():
		default:
			return h.client, nil
		}
	}
	st := h.conn.State
	if st == Connected {
		st = Connecting // the connection just ended; run has not seen it yet
	}
	return nil, &UnreachableError{Host: h.name, State: st, Reason: h.conn.Reason}
}

// waitConnected blocks until the host is connected or ctx ends.
func (h *Host) waitConnected(ctx context.Context) (*protocol.Client, error) {
	for {
		// Take the channel before looking, so a change in between still
		// wakes the wait.
		h.mu.Lock()
		changed := h.changed
		h.mu.Unlock()
		c, err := h.current()
		if err == nil {
			return c, nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return nil, fmt.Errorf("%w (gave up waiting: %w)", err, ctx.Err())
		}
	}
}

// Subscribe implements api.Service. It waits for a connection, then
// subscribes on it; the channel closes when ctx ends or the connection
// does.
func (h *Host) Subscribe(ctx context.Context, after rules.ID) (<-chan api.Update, error) {
	c, err := h.waitConnected(ctx)
	if err != nil {
		return nil, err
	}
	return c.Subscribe(ctx, after)
}

// Incidents implements api.Service.
func (h *Host) Incidents(ctx context.Context, q api.Query) ([]rules.Incident, error) {
	c, err := h.current()
	if err != nil {
		return nil, err
	}
	return c.Incidents(ctx, q)
}

// Noise implements api.Service.
func (h *Host) Noise(ctx context.Context, since time.Time, limit int) (api.Noise, error) {
	c, err := h.current()
	if err != nil {
		return api.Noise{}, err
	}
	return c.Noise(ctx, since, limit)
}

// SetStatus implements api.Service.
func (h *Host) SetStatus(ctx context.Context, ids []rules.ID, st rules.Status) error {
	c, err := h.current()
	if err != nil {
		return err
	}
	return c.SetStatus(ctx, ids, st)
}

// Skips implements api.Service.
func (h *Host) Skips(ctx context.Context) ([]rules.Skip, error) {
	c, err := h.current()
	if err != nil {
		return nil, err
	}
	return c.Skips(ctx)
}

// PreviewSkip implements api.Service.
func (h *Host) PreviewSkip(ctx context.Context, s rules.Skip) (int, error) {
	c, err := h.current()
	if err != nil {
		return 0, err
	}
	return c.PreviewSkip(ctx, s)
}

// AddSkip implements api.Service.
func (h *Host) AddSkip(ctx context.Context, s rules.Skip) (rules.Skip, int, error) {
	c, err := h.current()
	if err != nil {
		return rules.Skip{}, 0, err
	}
	return c.AddSkip(ctx, s)
}

// RemoveSkip implements api.Service.
func (h *Host) RemoveSkip(ctx context.Context, id string) (int, error) {
	c, err := h.current()
	if err != nil {
		return 0, err
	}
	return c.RemoveSkip(ctx, id)
}

// Rules implements api.Service.
func (h *Host) Rules(ctx context.Context) ([]rules.Rule, error) {
	c, err := h.current()
	if err != nil {
		return nil, err
	}
	return c.Rules(ctx)
}

// SetMonitoring implements api.Service.
func (h *Host) SetMonitoring(ctx context.Context, on bool) error {
	c, err := h.current()
	if err != nil {
		return err
	}
	return c.SetMonitoring(ctx, on)
}

// Status implements api.Service.
func (h *Host) Status(ctx context.Context) (api.Status, error) {
	c, err := h.current()
	if err != nil {
		return api.Status{}, err
	}
	return c.Status(ctx)
}

// Export implements api.Service.
func (h *Host) Export(ctx context.Context, q api.Query, format string, w io.Writer) (int, error) {
	c, err := h.current()
	if err != nil {
		return 0, err
	}
	return c.Export(ctx, q, format, w)
}

// IsUnreachable reports whether err came from calling a host without a
// connection.
func IsUnreachable(err error) bool {
	var ue *UnreachableError
	return errors.As(err, &ue)
}

var _ api.Service = (*Host)(nil)
