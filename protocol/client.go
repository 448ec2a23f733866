package protocol

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/procwatch/procwatch/api"
	"github.com/procwatch/procwatch/rules"
)

// DialTimeout bounds connecting to the socket.
const DialTimeout = 3 * time.Second

// clientHelloTimeout bounds the wait for the server's hello; a variable so
// tests need not wait that long.
var clientHelloTimeout = 10 * time.Second

// ErrClosed is returned by calls on a client whose connection is gone.
var ErrClosed = errors.New("connection to the agent is closed")

// Budgets of what one agent may make a client hold; variables so tests can
// lower them. An agent that breaks them is treated as broken or hostile:
// the call fails, or for a subscription the excess is counted as dropped.
var (
	// MaxAnswerBytes bounds the frames of one incidents answer.
	MaxAnswerBytes = 256 << 20
	// MaxPendingBytes bounds the subscription updates received and not yet
	// taken by the caller.
	MaxPendingBytes = 64 << 20
	// MaxStrayBytes bounds, per minute, the frames for requests that have
	// ended or never were (a few arrive after a cancel; a stream of them
	// is an agent flooding the client).
	MaxStrayBytes = 16 << 20
)

// ProtocolError says the agent broke the protocol (a frame too large, not
// JSON, more incidents than asked, more than the byte budget): the
// connection is closed with it, and a multi-host front end shows the host
// failed with this reason.
type ProtocolError struct{ Reason string }

func (e *ProtocolError) Error() string {
	return "the agent broke the protocol: " + e.Reason + "; connection closed"
}

// Client is api.Service over one protocol connection. It is safe for
// concurrent use; calls are multiplexed by request id.
type Client struct {
	rwc io.ReadWriteCloser

	wmu sync.Mutex
	bw  *bufio.Writer

	mu     sync.Mutex
	nextID uint64
	calls  map[uint64]*call
	err    error // set once the connection is gone
	done   chan struct{}

	// ServerSoftware is what the server named itself in its hello.
	ServerSoftware string
}

// call is one request waiting for its response. stream, when set, receives
// the request's non-final frames (incidents, chunks, updates) on the
// client's reader goroutine and must not block for long.
type call struct {
	resp       chan message
	stream     func(m message)
	persistent bool // a subscription: it lives on after its response, until its end frame
}

// Dial connects to an agent's unix socket and exchanges hellos.
func Dial(path string) (*Client, error) {
	conn, err := net.DialTimeout("unix", path, DialTimeout)
	if err != nil {
		return nil, fmt.Errorf("connect to agent at %s: %w", path, err)
	}
	c, err := NewClient(conn)
	if err != nil {
		return nil, fmt.Errorf("agent at %s: %w", path, err)
	}
	return c, nil
}

// NewClient speaks the protocol over rwc: it sends its hello, checks the
// server's, and starts reading. It closes rwc on failure.
func NewClient(rwc io.ReadWriteCloser) (*Client, error) {
	c := &Client{
		rwc:   rwc,
		bw:    bufio.NewWriterSize(rwc, 64<<10),
		calls: make(map[uint64]*call),
		done:  make(chan struct{}),
	}
	fr := newFrameReader(rwc, MaxFrame, 64<<10)
	// A stream without deadlines (a pipe, ssh) is closed if the server says
	// nothing in time, which ends the blocked read below.
	var helloTimedOut atomic.Bool
	watchdog := time.AfterFunc(clientHelloTimeout, func() {
		helloTimedOut.Store(true)
		rwc.Close()
	})
	defer watchdog.Stop()
	// Both sides speak first; writing concurrently with reading keeps an
	// unbuffered transport (a pipe without a kernel buffer) from deadlocking.
	sent := make(chan error, 1)
	go func() {
		sent <- c.write(message{Type: typeHello, Version: Version, Software: softwareName, Role: "client"})
	}()
	hello, err := c.readHello(fr)
	if err != nil {
		rwc.Close()
		<-sent
		if helloTimedOut.Load() {
			return nil, fmt.Errorf("no hello from the agent within %v; is procwatch running on the other side?", clientHelloTimeout)
		}
		return nil, err
	}
	if !watchdog.Stop() {
		<-sent
		return nil, fmt.Errorf("no hello from the agent within %v", clientHelloTimeout)
	}
	if err := <-sent; err != nil {
		rwc.Close()
		return nil, err
	}
	c.ServerSoftware = hello.Software
	go c.readLoop(fr)
	return c, nil
}

func (c *Client) readHello(fr *frameReader) (message, error) {
	frame, err := fr.next()
	if err != nil {
		return message{}, fmt.Errorf("read agent hello: %w", err)
	}
	var m message
	if err := json.Unmarshal(frame, &m); err != nil {
		return message{}, fmt.Errorf("agent hello is not JSON: %w", err)
	}
	if m.Type == typeError && m.Error != nil {
		return message{}, m.Error
	}
	if m.Type != typeHello {
		return message{}, fmt.Errorf("agent sent %q before its hello", m.Type)
	}
	if m.Version != Version {
		return message{}, &Error{Code: CodeVersionMismatch, Message: fmt.Sprintf(
			"protocol version mismatch: agent speaks %d, client speaks %d; run the same procwatch version on both sides", m.Version, Version)}
	}
	return m, nil
}

// write sends one message; requests are small and never split.
func (c *Client) write(m message) error {
	frames, err := encode(m, MaxFrame)
	if err != nil {
		return err
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	for _, f := range frames {
		if _, err := c.bw.Write(f); err != nil {
			return fmt.Errorf("send to agent: %w", err)
		}
	}
	if err := c.bw.Flush(); err != nil {
		return fmt.Errorf("send to agent: %w", err)
	}
	return nil
}

// readLoop dispatches frames to their calls until the connection ends.
// What the agent sends is bounded: a frame over MaxFrame or one that is not
// JSON ends the connection (a working agent never sends either), and each
// call bounds what it keeps.
func (c *Client) readLoop(fr *frameReader) {
	var err error
	stray, strayFrom := 0, time.Now()
	for {
		var m message
		if m, err = readMessage(fr); err != nil {
			break
		}
		if m.Type == typeError {
			if m.Error != nil && (m.Error.Code == CodeVersionMismatch || m.Error.Code == CodeBusy || m.Error.Code == CodeForbidden || m.Error.Code == CodeIdle) {
				err = m.Error
				break
			}
			continue
		}
		c.mu.Lock()
		cl := c.calls[m.ID]
		c.mu.Unlock()
		if cl == nil {
			if now := time.Now(); now.Sub(strayFrom) > time.Minute {
				stray, strayFrom = 0, now
			}
			if stray += m.size + m.Size; stray > MaxStrayBytes {
				err = &ProtocolError{fmt.Sprintf("it sent over %d MiB in a minute for requests that had ended or never were", MaxStrayBytes>>20)}
				break
			}
			continue
		}
		c.deliver(cl, m)
	}
	c.end(err)
}

// readMessage reads and decodes the next frame, with a chunk's raw bytes.
func readMessage(fr *frameReader) (message, error) {
	frame, err := fr.next()
	if errors.Is(err, errFrameTooLarge) {
		return message{}, &ProtocolError{fmt.Sprintf("it sent a frame over %d bytes", MaxFrame)}
	}
	if err != nil {
		return message{}, err
	}
	var m message
	if json.Unmarshal(frame, &m) != nil {
		return message{}, &ProtocolError{"it sent a frame that is not a JSON message"}
	}
	m.size = len(frame)
	if m.Type == typeChunk {
		if m.Data, err = fr.raw(m.Size); err != nil {
			return message{}, &ProtocolError{err.Error()}
		}
	}
	return m, nil
}

// deliver hands m to the call it belongs to.
func (c *Client) deliver(cl *call, m message) {
	switch m.Type {
	case typeResponse:
		if !cl.persistent || m.Error != nil {
			c.forget(m.ID)
		}
		select {
		case cl.resp <- m:
		default:
		}
	case typeEnd:
		c.forget(m.ID)
		if cl.stream != nil {
			cl.stream(m)
		}
	default:
		if cl.stream != nil {
			cl.stream(m)
		}
	}
}

// end fails every pending call once the connection is gone.
func (c *Client) end(err error) {
	if err == nil || errors.Is(err, io.EOF) {
		err = ErrClosed
	}
	c.rwc.Close()
	c.mu.Lock()
	if c.err == nil {
		c.err = err
	} else {
		err = c.err
	}
	calls := c.calls
	c.calls = map[uint64]*call{}
	c.mu.Unlock()
	close(c.done)
	for _, cl := range calls {
		if cl.stream != nil {
			cl.stream(message{Type: typeEnd, Error: &Error{Code: CodeFailed, Message: err.Error()}})
		}
		select {
		case cl.resp <- message{Type: typeResponse, Error: &Error{Code: CodeFailed, Message: err.Error()}}:
		default:
		}
	}
}

// Err is why the connection ended, once it has (see Done).
func (c *Client) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// fail closes the connection because the agent broke a budget or the
// protocol; every pending call fails with err.
func (c *Client) fail(err error) {
	c.mu.Lock()
	if c.err == nil {
		c.err = err
	}
	c.mu.Unlock()
	c.rwc.Close()
}

// Close ends the connection; pending calls fail and subscriptions end.
func (c *Client) Close() error {
	err := c.rwc.Close()
	<-c.done
	return err
}

// Done is closed when the connection has ended.
func (c *Client) Done() <-chan struct{} { return c.done }

// start registers a call and sends its request.
func (c *Client) start(method string, params any, stream func(message)) (uint64, *call, error) {
	return c.startCall(method, params, &call{resp: make(chan message, 1), stream: stream})
}

func (c *Client) startCall(method string, params any, cl *call) (uint64, *call, error) {
	raw, err := json.Marshal(params)
	if err != nil {
		return 0, nil, fmt.Errorf("%s: encode params: %w", method, err)
	}
	c.mu.Lock()
	if c.err != nil {
		err := c.err
		c.mu.Unlock()
		return 0, nil, err
	}
	c.nextID++
	id := c.nextID
	c.calls[id] = cl
	c.mu.Unlock()
	if err := c.write(message{Type: typeRequest, ID: id, Method: method, Params: raw}); err != nil {
		c.forget(id)
		return 0, nil, err
	}
	return id, cl, nil
}

func (c *Client) forget(id uint64) {
	c.mu.Lock()
	delete(c.calls, id)
	c.mu.Unlock()
}

// cancel asks the server to stop request id; errors are moot since the
// caller has already given up on it.
func (c *Client) cancel(id uint64) {
	raw, _ := json.Marshal(cancelParams{id})
	c.mu.Lock()
	c.nextID++
	own := c.nextID
	c.mu.Unlock()
	c.write(message{Type: typeRequest, ID: own, Method: methodCancel, Params: raw})
}

// wait blocks for the response of a call and decodes its result.
func (c *Client) wait(ctx context.Context, id uint64, cl *call, result any) error {
	select {
	case m := <-cl.resp:
		if m.Error != nil {
			return m.Error
		}
		if result != nil && len(m.Result) > 0 {
			if err := json.Unmarshal(m.Result, result); err != nil {
				return fmt.Errorf("decode agent answer: %w", err)
			}
		}
		return nil
	case <-ctx.Done():
		c.forget(id)
		c.cancel(id)
		return ctx.Err()
	}
}

// do is a plain request and response.
func (c *Client) do(ctx context.Context, method string, params, result any) error {
	id, cl, err := c.start(method, params, nil)
	if err != nil {
		return err
	}
	return c.wait(ctx, id, cl, result)
}

// Subscribe implements api.Service. Updates are kept in a mailbox
// between the connection and the returned channel, so a caller that reads
// slowly delays neither other calls nor the connection.
func (c *Client) Subscribe(ctx context.Context, after rules.ID) (<-chan api.Update, error) {
	box := api.NewMailbox(0, 0)
	ended := make(chan struct{})
	var endOnce sync.Once
	// pending counts the bytes of updates put and not yet taken; past
	// MaxPendingBytes what is pending gives way to the new update and is
	// counted as dropped: the queues' drop-oldest policy (docs/queues.md),
	// by bytes as well as by count.
	var pending atomic.Int64
	stream := func(m message) {
		switch m.Type {
		case typeUpdate:
			if m.Update == nil {
				return
			}
			if pending.Add(int64(m.size)) > int64(MaxPendingBytes) {
				old, _ := box.Take()
				pending.Store(int64(m.size))
				box.Put(api.Update{Status: old.Status, Dropped: uint64(len(old.Events)+len(old.Incidents)) + old.Dropped})
			}
			box.Put(*m.Update)
		case typeEnd:
			endOnce.Do(func() { close(ended) })
		}
	}
	id, cl, err := c.startCall(methodSubscribe, subscribeParams{after}, &call{resp: make(chan message, 1), stream: stream, persistent: true})
	if err != nil {
		return nil, err
	}
	if err := c.wait(ctx, id, cl, nil); err != nil {
		c.forget(id)
		return nil, err
	}
	out := make(chan api.Update, 4)
	go func() {
		defer close(out)
		defer func() {
			select {
			case <-ended:
			default:
				c.forget(id)
				c.cancel(id)
			}
		}()
		for last := false; !last; {
			select {
			case <-box.Ready():
			case <-ended:
				last = true // deliver what arrived before the end, then stop
			case <-ctx.Done():
				return
			}
			if u, ok := box.Take(); ok {
				pending.Store(0)
				select {
				case out <- u:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return out, nil
}

// ErrTruncated is wrapped by the error Incidents returns, with the
// incidents received, when the agent's per-request cap cut the answer short.
var ErrTruncated = errors.New("the agent caps one answer; use procwatch export for every incident")

// Incidents implements api.Service. The answer is held to what was
// asked: an agent that sends more incidents than q.Limit, or more than
// MaxAnswerBytes of them, is cut off (see ProtocolError).
func (c *Client) Incidents(ctx context.Context, q api.Query) ([]rules.Incident, error) {
	var got []rules.Incident
	var mu sync.Mutex
	var bytes int
	var broke error
	id, cl, err := c.start(methodIncidents, incidentsParams{q}, func(m message) {
		mu.Lock()
		defer mu.Unlock()
		if broke != nil || m.Type != typeIncidents {
			return
		}
		bytes += m.size
		switch {
		case q.Limit > 0 && len(got)+len(m.Incidents) > q.Limit:
			broke = &ProtocolError{fmt.Sprintf("it sent more than the %d incidents asked for", q.Limit)}
		case bytes > MaxAnswerBytes:
			broke = &ProtocolError{fmt.Sprintf("its incidents answer passed %d MiB", MaxAnswerBytes>>20)}
		default:
			got = append(got, m.Incidents...)
			return
		}
		got = nil
		c.fail(broke)
	})
	if err != nil {
		return nil, err
	}
	var res countResult
	err = c.wait(ctx, id, cl, &res)
	mu.Lock()
	defer mu.Unlock()
	if broke != nil {
		return nil, broke
	}
	if err != nil {
		return nil, err
	}
	if len(got) != res.Count {
		return nil, fmt.Errorf("incidents: agent announced %d, sent %d", res.Count, len(got))
	}
	if res.Truncated {
		return got, fmt.Errorf("incidents: %d returned, more match: %w", len(got), ErrTruncated)
	}
	if res.Damaged != "" {
		return got, &api.DamagedWarning{Message: res.Damaged}
	}
	return got, nil
}

// EachIncident implements api.IncidentStreamer: fn gets each incident
// as its frame arrives, so a client asking for every incident holds one
// frame at a time instead of the whole answer. The connection's reader
// waits for fn to take each frame, so a slow fn slows the agent's answer
// (and other calls on this connection) rather than filling memory; an
// agent whose write then times out closes the connection. An agent that
// sends more incidents than q.Limit is cut off (see ProtocolError). fn
// must not retain inc.
func (c *Client) EachIncident(ctx context.Context, q api.Query, fn func(*rules.Incident) error) error {
	frames := make(chan []rules.Incident)
	stop := make(chan struct{})
	defer close(stop)
	var broke atomic.Pointer[ProtocolError]
	received := 0 // on the reader goroutine only
	id, cl, err := c.start(methodIncidents, incidentsParams{q}, func(m message) {
		if m.Type != typeIncidents || broke.Load() != nil {
			return
		}
		if received += len(m.Incidents); q.Limit > 0 && received > q.Limit {
			pe := &ProtocolError{fmt.Sprintf("it sent more than the %d incidents asked for", q.Limit)}
			broke.Store(pe)
			c.fail(pe)
			return
		}
		select {
		case frames <- m.Incidents:
		case <-stop:
		}
	})
	if err != nil {
		return err
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel() // an early return cancels the request
	var res countResult
	waited := make(chan error, 1)
	go func() { waited <- c.wait(wctx, id, cl, &res) }()
	n := 0
	for {
		select {
		case batch := <-frames:
			for i := range batch {
				if err := fn(&batch[i]); err != nil {
					return err
				}
				n++
			}
		case err := <-waited:
			// The response follows the last frame on the reader, which
			// waited for each frame to be taken: all were handed to fn.
			if pe := broke.Load(); pe != nil {
				return pe
			}
			return c.answered(err, n, res)
		}
	}
}

// answered turns the end of a streamed incidents answer into its error.
func (c *Client) answered(err error, n int, res countResult) error {
	switch {
	case err != nil:
		return err
	case n != res.Count:
		return fmt.Errorf("incidents: agent announced %d, sent %d", res.Count, n)
	case res.Truncated:
		return fmt.Errorf("incidents: %d returned, more match: %w", n, ErrTruncated)
	case res.Damaged != "":
		return &api.DamagedWarning{Message: res.Damaged}
	}
	return nil
}

// Noise implements api.Service.
func (c *Client) Noise(ctx context.Context, since time.Time, limit int) (api.Noise, error) {
	var n api.Noise
	err := c.do(ctx, methodNoise, noiseParams{since, limit}, &n)
	return n, err
}

// SetStatus implements api.Service.
func (c *Client) SetStatus(ctx context.Context, ids []rules.ID, st rules.Status) error {
	return c.do(ctx, methodSetStatus, setStatusParams{ids, st}, nil)
}

// Skips implements api.Service.
func (c *Client) Skips(ctx context.Context) ([]rules.Skip, error) {
	var s []rules.Skip
	err := c.do(ctx, methodSkips, struct{}{}, &s)
	return s, err
}

// PreviewSkip implements api.Service.
func (c *Client) PreviewSkip(ctx context.Context, s rules.Skip) (int, error) {
	var r countResult
	err := c.do(ctx, methodPreviewSkip, skipParams{s}, &r)
	return r.Count, err
}

// AddSkip implements api.Service.
func (c *Client) AddSkip(ctx context.Context, s rules.Skip) (rules.Skip, int, error) {
	var r addSkipResult
	err := c.do(ctx, methodAddSkip, skipParams{s}, &r)
	return r.Skip, r.Masked, err
}

// RemoveSkip implements api.Service.
func (c *Client) RemoveSkip(ctx context.Context, id string) (int, error) {
	var r countResult
	err := c.do(ctx, methodRemoveSkip, removeSkipParams{id}, &r)
	return r.Count, err
}

// Rules implements api.Service.
func (c *Client) Rules(ctx context.Context) ([]rules.Rule, error) {
	var r []rules.Rule
	err := c.do(ctx, methodRules, struct{}{}, &r)
	return r, err
}

// SetMonitoring implements api.Service.
func (c *Client) SetMonitoring(ctx context.Context, on bool) error {
	return c.do(ctx, methodSetMonitoring, monitoringParams{on}, nil)
}

// Status implements api.Service.
func (c *Client) Status(ctx context.Context) (api.Status, error) {
	var st api.Status
	err := c.do(ctx, methodStatus, struct{}{}, &st)
	return st, err
}

// Export implements api.Service. Chunks are written to w by a
// goroutine of their own, never by the connection's reader, and each is
// acknowledged once written: the agent sends at most a window of chunks
// ahead, so a slow w slows the export without filling memory or holding
// up other calls. Progress goes to the function set with
// api.WithExportProgress.
func (c *Client) Export(ctx context.Context, q api.Query, format string, w io.Writer) (int, error) {
	progress := api.ExportProgress(ctx)
	chunks := make(chan []byte, exportWindow)
	var (
		overflow atomic.Bool
		idv      atomic.Uint64
		cmu      sync.Mutex
		closed   bool
	)
	reqID, cl, err := c.start(methodExport, exportParams{q, format}, func(m message) {
		switch m.Type {
		case typeChunk:
			cmu.Lock()
			defer cmu.Unlock()
			if closed {
				return
			}
			select {
			case chunks <- m.Data:
			default:
				if !overflow.Swap(true) {
					c.fail(&ProtocolError{fmt.Sprintf("it sent more than %d export chunks ahead of the acknowledgements", exportWindow)})
				}
			}
		case typeProgress:
			if progress != nil {
				progress(m.Done, m.Total)
			}
		}
	})
	if err != nil {
		return 0, err
	}
	idv.Store(reqID)
	written := make(chan error, 1)
	go func() {
		var werr error
		for b := range chunks {
			if werr != nil {
				continue
			}
			if _, werr = w.Write(b); werr != nil {
				c.cancel(idv.Load())
				continue
			}
			c.write(message{Type: typeAck, ID: idv.Load()})
		}
		written <- werr
	}()
	var res countResult
	err = c.wait(ctx, reqID, cl, &res)
	// The response follows the last chunk on the reader goroutine, so
	// every chunk is in the channel by now.
	cmu.Lock()
	closed = true
	close(chunks)
	cmu.Unlock()
	if werr := <-written; werr != nil {
		return res.Count, fmt.Errorf("export: write output: %w", werr)
	}
	if err == nil && res.Damaged != "" {
		return res.Count, &api.DamagedWarning{Message: res.Damaged}
	}
	return res.Count, err
}

var (
	_ api.Service          = (*Client)(nil)
	_ api.IncidentStreamer = (*Client)(nil)
)
