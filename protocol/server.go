package protocol

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"time"

	"github.com/procwatch/procwatch/api"
	"github.com/procwatch/procwatch/rules"
)

// Defaults of Server.
const (
	DefaultWriteTimeout   = 10 * time.Second
	DefaultHelloTimeout   = 10 * time.Second
	DefaultIdleTimeout    = 5 * time.Minute
	DefaultMaxConnections = 1024
	// DefaultMaxConnectionsPerUID bounds one unprivileged uid's share.
	DefaultMaxConnectionsPerUID = 64
	// DefaultMaxIncidents caps one incidents answer; export has no cap
	// (it streams under flow control) and is the way to get everything.
	DefaultMaxIncidents = 100_000
	// maxRequestsInFlight bounds the requests one connection runs at once;
	// further requests wait, unread, so a client pipelining thousands of
	// them costs the agent no more than this many.
	maxRequestsInFlight = 16
	// maxHeavy bounds the scans (incidents, export, noise, skip preview)
	// running at once across all connections.
	maxHeavy              = 4
	maxNoise              = 1000 // commands and paths per noise answer
	incidentsPerFrame     = 256
	exportChunkBytes      = 256 << 10
	exportWindow          = 4 // chunks in flight before the client acknowledges
	readBufferBytes       = 1 << 10
	progressEveryDuration = 200 * time.Millisecond
	softwareName          = "procwatch"
)

// Server answers the protocol for one Service. Its zero value is not
// usable; set Service at least.
type Server struct {
	Service api.Service
	Logger  *slog.Logger // default slog.Default()
	// WriteTimeout bounds each write on connections that support write
	// deadlines (sockets); a client that stops reading is disconnected
	// after it, so it cannot hold the agent up. Default 10s.
	WriteTimeout time.Duration
	// HelloTimeout bounds the wait for the client's hello on connections
	// that support read deadlines. Default 10s.
	HelloTimeout time.Duration
	// IdleTimeout closes a connection that has sent nothing and has no
	// request (or subscription) running for this long. Default 5m.
	IdleTimeout time.Duration
	// MaxConnections caps concurrent socket connections of callers other
	// than root; one more gets a "busy" error and is closed. Default 1024.
	MaxConnections int
	// MaxConnectionsPerUID caps one unprivileged uid's connections.
	// Default 64. Root and the agent's own uid count against neither cap.
	MaxConnectionsPerUID int
	// MaxIncidents caps the incidents one request returns (limit 0
	// included); the answer then says it was truncated. Default 100,000.
	MaxIncidents int
	// MaxFrame is the largest request accepted; default MaxFrame.
	MaxFrame int
	// Access says which local users may connect and what they may do.
	// The zero value lets only root and the agent's own uid in; see
	// NoGroups.
	Access Access
	// Stdio is who a connection without kernel credentials (stdin and
	// stdout of `serve --stdio`) answers for; default the process itself.
	Stdio *rules.Actor

	heavyOnce sync.Once
	heavy     chan struct{}
}

// Serve answers the protocol on conn for svc with default settings until
// the client hangs up or ctx ends; it closes conn before returning.
func Serve(ctx context.Context, svc api.Service, conn io.ReadWriteCloser) error {
	s := &Server{Service: svc}
	return s.Serve(ctx, conn)
}

type deadliner interface {
	SetWriteDeadline(t time.Time) error
	SetReadDeadline(t time.Time) error
}

// serverConn is one served connection.
type serverConn struct {
	s      *Server
	log    *slog.Logger
	rwc    io.ReadWriteCloser
	dl     deadliner // nil when the stream has no deadlines (stdio)
	ctx    context.Context
	cancel context.CancelFunc
	actor  rules.Actor
	role   Role

	wmu    sync.Mutex
	broken error

	rmu     sync.Mutex
	running map[uint64]*inFlight
	wg      sync.WaitGroup
}

// Serve answers the protocol on a stream without kernel credentials (a
// pipe, stdin and stdout) with full control, as s.Stdio. It returns when
// the client hangs up, a write times out or ctx ends, and closes rwc.
// Requests run concurrently, so a long export does not hold up a status
// query.
func (s *Server) Serve(ctx context.Context, rwc io.ReadWriteCloser) error {
	a := api.Self("stdio")
	if s.Stdio != nil {
		a = *s.Stdio
	}
	return s.serve(ctx, rwc, a, RoleFull)
}

func (s *Server) serve(ctx context.Context, rwc io.ReadWriteCloser, actor rules.Actor, role Role) error {
	if s.Service == nil {
		rwc.Close()
		return errors.New("agent: server has no service")
	}
	c := &serverConn{
		s:       s,
		log:     s.Logger,
		rwc:     rwc,
		running: make(map[uint64]*inFlight),
		actor:   actor,
		role:    role,
	}
	if c.log == nil {
		c.log = slog.Default()
	}
	if d, ok := rwc.(deadliner); ok {
		c.dl = d
	}
	c.ctx, c.cancel = context.WithCancel(ctx)
	defer c.cancel()
	stop := context.AfterFunc(c.ctx, func() { rwc.Close() })
	defer stop()
	err := c.run()
	c.cancel()
	rwc.Close()
	c.wg.Wait()
	if errors.Is(err, io.EOF) || ctx.Err() != nil {
		return nil
	}
	return err
}

// heavySem returns the server-wide semaphore of scans.
func (s *Server) heavySem() chan struct{} {
	s.heavyOnce.Do(func() { s.heavy = make(chan struct{}, maxHeavy) })
	return s.heavy
}

func (s *Server) idleTimeout() time.Duration {
	if s.IdleTimeout > 0 {
		return s.IdleTimeout
	}
	return DefaultIdleTimeout
}

func (s *Server) maxIncidents() int {
	if s.MaxIncidents > 0 {
		return s.MaxIncidents
	}
	return DefaultMaxIncidents
}

func (s *Server) maxFrame() int {
	if s.MaxFrame > 0 {
		return s.MaxFrame
	}
	return MaxFrame
}

func (c *serverConn) run() error {
	fr := newFrameReader(c.rwc, c.s.maxFrame(), readBufferBytes)
	// Both sides speak first; see NewClient.
	sent := make(chan error, 1)
	go func() {
		sent <- c.send(message{Type: typeHello, Version: Version, Software: softwareName, Role: "server"})
	}()
	if err := offStack(func() error { return c.handshake(fr) }); err != nil {
		c.rwc.Close()
		<-sent
		return err
	}
	if err := <-sent; err != nil {
		return err
	}
	sem := make(chan struct{}, maxRequestsInFlight)
	for {
		frame, err := c.nextFrame(fr)
		if errors.Is(err, errFrameTooLarge) {
			c.sendError(0, CodeFrameTooLarge, fmt.Sprintf("frame exceeds %d bytes; it was discarded", c.s.maxFrame()))
			continue
		}
		if errors.Is(err, io.EOF) {
			c.finish()
			return err
		}
		if err != nil {
			return err
		}
		var m message
		if err := offStack(func() error { return json.Unmarshal(frame, &m) }); err != nil {
			offStack(func() error { c.sendError(0, CodeBadFrame, "frame is not a JSON message: "+err.Error()); return nil })
			continue
		}
		if m.Type == typeAck {
			c.ack(m.ID)
			continue
		}
		if m.Type != typeRequest || m.ID == 0 || m.Method == "" {
			c.sendError(m.ID, CodeBadFrame, "want a request with an id and a method")
			continue
		}
		if m.Method == methodCancel {
			c.cancelRequest(m)
			continue
		}
		select {
		case sem <- struct{}{}:
		case <-c.ctx.Done():
			return c.ctx.Err()
		}
		if !c.start(m, sem) {
			<-sem
		}
	}
}

// offStack runs fn on a goroutine of its own and waits for it. A
// connection's reader spends its life blocked in a read; the deep work of
// decoding JSON runs elsewhere, so the reader's stack stays at its initial
// few KiB instead of growing once and staying grown: with thousands of
// idle connections that is most of their memory.
func offStack(fn func() error) error {
	done := make(chan error, 1)
	go func() { done <- fn() }()
	return <-done
}

// nextFrame reads a frame; on a socket, a connection with nothing running
// that stays silent for the idle timeout is told so and closed.
func (c *serverConn) nextFrame(fr *frameReader) ([]byte, error) {
	for {
		if c.dl != nil {
			c.dl.SetReadDeadline(time.Now().Add(c.s.idleTimeout()))
		}
		frame, err := fr.next()
		if err == nil || !errors.Is(err, os.ErrDeadlineExceeded) {
			return frame, err
		}
		c.rmu.Lock()
		busy := len(c.running) > 0
		c.rmu.Unlock()
		if busy || fr.partial() {
			continue
		}
		c.log.Debug("closing an idle agent connection", "uid", c.actor.UID, "pid", c.actor.PID, "idle", c.s.idleTimeout())
		c.sendError(0, CodeIdle, fmt.Sprintf("connection idle for %v; closed", c.s.idleTimeout()))
		return nil, io.EOF
	}
}

// start runs request m on its own goroutine; false when it was refused.
func (c *serverConn) start(m message, sem chan struct{}) bool {
	rctx, rcancel := context.WithCancel(api.WithCaller(c.ctx, c.actor))
	c.rmu.Lock()
	if _, dup := c.running[m.ID]; dup {
		c.rmu.Unlock()
		rcancel()
		c.sendError(m.ID, CodeBadFrame, fmt.Sprintf("request id %d is already in use", m.ID))
		return false
	}
	req := &inFlight{cancel: rcancel, subscription: m.Method == methodSubscribe}
	if m.Method == methodExport {
		req.credits = make(chan struct{}, exportWindow)
		for range exportWindow {
			req.credits <- struct{}{}
		}
	}
	c.running[m.ID] = req
	c.rmu.Unlock()
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		defer func() { <-sem }()
		defer func() {
			c.rmu.Lock()
			if c.running[m.ID] == req {
				delete(c.running, m.ID)
			}
			c.rmu.Unlock()
			rcancel()
		}()
		c.handle(rctx, m, req)
	}()
	return true
}

// ack gives a running export one more chunk of credit.
func (c *serverConn) ack(id uint64) {
	c.rmu.Lock()
	req := c.running[id]
	c.rmu.Unlock()
	if req != nil && req.credits != nil {
		select {
		case req.credits <- struct{}{}:
		default: // more acks than chunks: ignore
		}
	}
}

// inFlight is a running request.
type inFlight struct {
	cancel       context.CancelFunc
	subscription bool
	credits      chan struct{} // export: chunks the client has room for
}

// finish runs when the client has closed its side: the requests it sent
// are still answered, but subscriptions, which would never end, are
// cancelled.
func (c *serverConn) finish() {
	c.rmu.Lock()
	for _, req := range c.running {
		if req.subscription {
			req.cancel()
		}
	}
	c.rmu.Unlock()
	c.wg.Wait()
}

// handshake waits for the client's hello and checks its version.
func (c *serverConn) handshake(fr *frameReader) error {
	if c.dl != nil {
		timeout := c.s.HelloTimeout
		if timeout <= 0 {
			timeout = DefaultHelloTimeout
		}
		c.dl.SetReadDeadline(time.Now().Add(timeout))
		defer c.dl.SetReadDeadline(time.Time{})
	}
	frame, err := fr.next()
	if err != nil {
		if errors.Is(err, errFrameTooLarge) {
			c.sendError(0, CodeFrameTooLarge, "hello frame too large")
		}
		return fmt.Errorf("read client hello: %w", err)
	}
	var m message
	if err := json.Unmarshal(frame, &m); err != nil || m.Type != typeHello {
		c.sendError(0, CodeBadFrame, "the first frame must be a hello")
		return errors.New("client did not send a hello")
	}
	if m.Version != Version {
		msg := fmt.Sprintf("protocol version mismatch: agent speaks %d, client speaks %d; run the same procwatch version on both sides", Version, m.Version)
		c.sendError(0, CodeVersionMismatch, msg)
		return errors.New(msg)
	}
	return nil
}

func (c *serverConn) cancelRequest(m message) {
	var p cancelParams
	if err := json.Unmarshal(m.Params, &p); err != nil {
		c.sendError(m.ID, CodeBadParams, "cancel: "+err.Error())
		return
	}
	c.rmu.Lock()
	req, ok := c.running[p.ID]
	c.rmu.Unlock()
	if ok {
		req.cancel()
	}
}

// send writes m (split into several frames if needed) and flushes. A
// failed or timed-out write breaks the connection for good.
func (c *serverConn) send(m message) error {
	frames, err := encode(m, c.s.maxFrame())
	if err != nil {
		return err
	}
	return c.write(frames)
}

// write sends frames in one go (a writev on sockets).
func (c *serverConn) write(frames net.Buffers) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.broken != nil {
		return c.broken
	}
	if c.dl != nil {
		timeout := c.s.WriteTimeout
		if timeout <= 0 {
			timeout = DefaultWriteTimeout
		}
		c.dl.SetWriteDeadline(time.Now().Add(timeout))
	}
	if _, err := frames.WriteTo(c.rwc); err != nil {
		return c.breakLocked(err)
	}
	return nil
}

func (c *serverConn) isBroken() bool {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.broken != nil
}

func (c *serverConn) breakLocked(err error) error {
	c.broken = fmt.Errorf("write to client: %w", err)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		c.log.Warn("closing an agent connection: the client stopped reading", "timeout", c.s.WriteTimeout)
	} else {
		c.log.Debug("agent connection closed while writing", "err", err)
	}
	c.cancel()
	c.rwc.Close()
	return c.broken
}

func (c *serverConn) sendError(id uint64, code, msg string) {
	t := typeResponse
	if id == 0 {
		t = typeError
	}
	c.send(message{Type: t, ID: id, Error: &Error{Code: code, Message: msg}})
}

// final sends the last frame of a request. The id is released first, so
// a client that reuses it once it has the answer is not refused. Only the
// request's own goroutine calls it, so the id still names this request.
func (c *serverConn) final(m message) error {
	c.rmu.Lock()
	delete(c.running, m.ID)
	c.rmu.Unlock()
	return c.send(m)
}

// fail ends a request with an error.
func (c *serverConn) fail(id uint64, code, msg string) {
	c.final(message{Type: typeResponse, ID: id, Error: &Error{Code: code, Message: msg}})
}

// respond ends a request with its result or error.
func (c *serverConn) respond(id uint64, result any, err error) {
	if err != nil {
		code := CodeFailed
		if errors.Is(err, context.Canceled) {
			code = CodeCanceled
		}
		c.fail(id, code, err.Error())
		return
	}
	raw, merr := json.Marshal(result)
	if merr != nil {
		c.fail(id, CodeFailed, "encode result: "+merr.Error())
		return
	}
	c.final(message{Type: typeResponse, ID: id, Result: raw})
}

// params decodes m.Params into p, answering bad_params on failure.
func (c *serverConn) params(m message, p any) bool {
	if len(m.Params) == 0 {
		return true
	}
	if err := json.Unmarshal(m.Params, p); err != nil {
		c.fail(m.ID, CodeBadParams, m.Method+": "+err.Error())
		return false
	}
	return true
}

// changes are the methods that alter state: only RoleFull may call them,
// and each is logged with who asked.
var changes = map[string]bool{
	methodSetStatus: true, methodAddSkip: true, methodRemoveSkip: true, methodSetMonitoring: true,
}

// heavy are the methods that scan the database.
var heavy = map[string]bool{
	methodIncidents: true, methodExport: true, methodNoise: true, methodPreviewSkip: true,
}

// handle runs one request.
func (c *serverConn) handle(ctx context.Context, m message, req *inFlight) {
	if changes[m.Method] && c.role < RoleFull {
		c.log.Warn("refused a change from a read-only caller", "method", m.Method, "by", c.actor.String())
		c.fail(m.ID, CodeForbidden, fmt.Sprintf("%s: uid %d may query and subscribe but not change anything (a member of --socket-read-group); ask root or a member of --socket-group", m.Method, c.actor.UID))
		return
	}
	if heavy[m.Method] {
		sem := c.s.heavySem()
		select {
		case sem <- struct{}{}:
			defer func() { <-sem }()
		case <-ctx.Done():
			c.respond(m.ID, nil, ctx.Err())
			return
		}
	}
	c.dispatch(ctx, m, req)
}

// dispatch runs the method of m.
func (c *serverConn) dispatch(ctx context.Context, m message, req *inFlight) {
	svc := c.s.Service
	switch m.Method {
	case methodSubscribe:
		var p subscribeParams
		if c.params(m, &p) {
			c.subscribe(ctx, m.ID, p.After)
		}
	case methodIncidents:
		var p incidentsParams
		if c.params(m, &p) {
			c.incidents(ctx, m.ID, p.Query)
		}
	case methodNoise:
		var p noiseParams
		if c.params(m, &p) {
			if p.Limit <= 0 || p.Limit > maxNoise {
				p.Limit = maxNoise // an answer is one frame; a flood of distinct paths must not outgrow it
			}
			n, err := svc.Noise(ctx, p.Since, p.Limit)
			c.respond(m.ID, n, err)
		}
	case methodSetStatus:
		var p setStatusParams
		if c.params(m, &p) {
			c.audit(m.Method, "status", p.Status, "incidents", len(p.IDs))
			c.respond(m.ID, struct{}{}, svc.SetStatus(ctx, p.IDs, p.Status))
		}
	case methodSkips:
		sk, err := svc.Skips(ctx)
		c.respond(m.ID, sk, err)
	case methodPreviewSkip:
		var p skipParams
		if c.params(m, &p) {
			n, err := svc.PreviewSkip(ctx, p.Skip)
			c.respond(m.ID, countResult{Count: n}, err)
		}
	case methodAddSkip:
		var p skipParams
		if c.params(m, &p) {
			c.audit(m.Method, "kind", p.Skip.Kind, "value", p.Skip.Value, "rule", p.Skip.Rule)
			sk, n, err := svc.AddSkip(ctx, p.Skip)
			c.respond(m.ID, addSkipResult{sk, n}, err)
		}
	case methodRemoveSkip:
		var p removeSkipParams
		if c.params(m, &p) {
			c.audit(m.Method, "skip", p.ID)
			n, err := svc.RemoveSkip(ctx, p.ID)
			c.respond(m.ID, countResult{Count: n}, err)
		}
	case methodRules:
		r, err := svc.Rules(ctx)
		c.respond(m.ID, r, err)
	case methodSetMonitoring:
		var p monitoringParams
		if c.params(m, &p) {
			c.audit(m.Method, "on", p.On)
			c.respond(m.ID, struct{}{}, svc.SetMonitoring(ctx, p.On))
		}
	case methodStatus:
		st, err := svc.Status(ctx)
		c.respond(m.ID, st, err)
	case methodExport:
		var p exportParams
		if c.params(m, &p) {
			c.export(ctx, m.ID, p, req.credits)
		}
	default:
		c.fail(m.ID, CodeUnknownMethod, fmt.Sprintf("unknown method %q", m.Method))
	}
}

// audit logs a change with the caller the kernel reported.
func (c *serverConn) audit(method string, args ...any) {
	a := c.actor
	attrs := append([]any{"method", method, "by", a.String(), "uid", a.UID, "pid", a.PID, "via", a.Via}, args...)
	if a.SSHUser != "" {
		attrs = append(attrs, "ssh_user", a.SSHUser, "ssh_from", a.SSHFrom)
	}
	c.log.Info("change requested", attrs...)
}

// errCapped stops the walk at the per-request cap.
var errCapped = errors.New("incidents cap reached")

// incidents streams the answer in frames as the store reads it, so a
// request for every incident costs one batch of memory, not the database.
// At most MaxIncidents are sent; the answer then says it was truncated.
func (c *serverConn) incidents(ctx context.Context, id uint64, q api.Query) {
	capN := c.s.maxIncidents()
	truncated := false
	if q.Limit > 0 && q.Limit <= capN {
		capN = q.Limit // the limit asked for, held to even if the service is not
	} else {
		q.Limit = capN + 1 // one more tells whether the cap cut it short
	}
	batch := make([]rules.Incident, 0, incidentsPerFrame)
	n := 0
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		err := c.send(message{Type: typeIncidents, ID: id, Incidents: batch})
		n += len(batch)
		clear(batch)
		batch = batch[:0]
		return err
	}
	err := api.EachIncident(ctx, c.s.Service, q, func(inc *rules.Incident) error {
		if n+len(batch) == capN {
			truncated = capN != q.Limit
			return errCapped
		}
		batch = append(batch, *inc)
		if len(batch) == incidentsPerFrame {
			return flush()
		}
		return nil
	})
	if errors.Is(err, errCapped) {
		err = nil
	}
	damaged := ""
	if errors.Is(err, api.ErrDamaged) {
		damaged, err = err.Error(), nil // a warning: what was read is sent
	}
	if err == nil {
		err = flush()
	}
	if truncated {
		c.log.Info("an incidents answer reached the per-request cap", "cap", capN, "by", c.actor.String())
	}
	// A broken connection makes this a no-op; an incident too large for a
	// frame gets the client an answer.
	c.respond(id, countResult{Count: n, Truncated: truncated, Damaged: damaged}, err)
}

// subscribe answers at once, then streams updates until the service ends
// the subscription or the client cancels it, and closes with an end frame.
func (c *serverConn) subscribe(ctx context.Context, id uint64, after rules.ID) {
	ch, err := c.s.Service.Subscribe(ctx, after)
	if err != nil {
		c.respond(id, nil, err)
		return
	}
	c.send(message{Type: typeResponse, ID: id, Result: json.RawMessage("{}")})
	for u := range ch {
		if err := c.send(message{Type: typeUpdate, ID: id, Update: &u}); err != nil {
			if c.isBroken() {
				return
			}
			// Only an event or incident larger than a frame gets here;
			// the subscriber hears of it as a loss.
			c.log.Warn("update too large to send; counted as dropped", "err", err)
			c.send(message{Type: typeUpdate, ID: id, Update: &api.Update{Dropped: uint64(len(u.Events) + len(u.Incidents))}})
		}
	}
	end := message{Type: typeEnd, ID: id}
	if ctx.Err() == nil {
		end.Error = &Error{Code: CodeFailed, Message: "the agent ended the subscription (it read too slowly, or the agent is stopping)"}
	}
	c.final(end)
}

// chunkWriter turns the export stream into chunk frames: a small JSON
// frame giving the size, then the bytes as they are. It waits for the
// client's credit before each chunk, so a client writing slowly to its
// disk slows the export instead of filling its memory.
type chunkWriter struct {
	c       *serverConn
	ctx     context.Context
	id      uint64
	credits chan struct{}
}

func (w chunkWriter) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		k := min(len(p), exportChunkBytes)
		if err := w.chunk(p[:k]); err != nil {
			return n, err
		}
		n += k
		p = p[k:]
	}
	return n, nil
}

func (w chunkWriter) chunk(p []byte) error {
	timeout := w.c.s.WriteTimeout
	if timeout <= 0 {
		timeout = DefaultWriteTimeout
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-w.credits:
	case <-w.ctx.Done():
		return w.ctx.Err()
	case <-t.C:
		return fmt.Errorf("the client acknowledged no export chunk for %v", timeout)
	}
	head, err := encode(message{Type: typeChunk, ID: w.id, Size: len(p)}, w.c.s.maxFrame())
	if err != nil {
		return err
	}
	return w.c.write(append(head, p))
}

func (c *serverConn) export(ctx context.Context, id uint64, p exportParams, credits chan struct{}) {
	bw := bufio.NewWriterSize(chunkWriter{c, ctx, id, credits}, exportChunkBytes)
	var last time.Time
	progress := func(done, total int) {
		if now := time.Now(); now.Sub(last) >= progressEveryDuration || done == total {
			last = now
			c.send(message{Type: typeProgress, ID: id, Done: done, Total: total})
		}
	}
	n, err := c.s.Service.Export(api.WithExportProgress(ctx, progress), p.Query, p.Format, bw)
	damaged := ""
	if errors.Is(err, api.ErrDamaged) {
		damaged, err = err.Error(), nil // the document is complete without what was skipped
	}
	if err == nil {
		if ferr := bw.Flush(); ferr != nil {
			err = fmt.Errorf("export: %w", ferr)
		}
	}
	c.respond(id, countResult{Count: n, Damaged: damaged}, err)
}
