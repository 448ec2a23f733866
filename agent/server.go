package agent

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/procwatch/procwatch/rules"
	"github.com/procwatch/procwatch/service"
)

// Defaults of Server.
const (
	DefaultWriteTimeout   = 10 * time.Second
	DefaultHelloTimeout   = 10 * time.Second
	maxRequestsInFlight   = 16
	incidentsPerFrame     = 256
	exportChunkBytes      = 256 << 10
	progressEveryDuration = 200 * time.Millisecond
	softwareName          = "procwatch"
)

// Server answers the protocol for one Service. Its zero value is not
// usable; set Service at least.
type Server struct {
	Service service.Service
	Logger  *slog.Logger // default slog.Default()
	// WriteTimeout bounds each write on connections that support write
	// deadlines (sockets); a client that stops reading is disconnected
	// after it, so it cannot hold the agent up. Default 10s.
	WriteTimeout time.Duration
	// HelloTimeout bounds the wait for the client's hello on connections
	// that support read deadlines. Default 10s.
	HelloTimeout time.Duration
	// MaxFrame is the largest request accepted; default MaxFrame.
	MaxFrame int
}

// Serve answers the protocol on conn for svc with default settings until
// the client hangs up or ctx ends; it closes conn before returning.
func Serve(ctx context.Context, svc service.Service, conn io.ReadWriteCloser) error {
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

	wmu    sync.Mutex
	bw     *bufio.Writer
	broken error

	rmu     sync.Mutex
	running map[uint64]*inFlight
	wg      sync.WaitGroup
}

// Serve answers the protocol on conn until the client hangs up, a write
// times out or ctx ends; it closes conn before returning. Requests run
// concurrently, so a long export does not hold up a status query.
func (s *Server) Serve(ctx context.Context, rwc io.ReadWriteCloser) error {
	if s.Service == nil {
		rwc.Close()
		return errors.New("agent: server has no service")
	}
	c := &serverConn{
		s:       s,
		log:     s.Logger,
		rwc:     rwc,
		bw:      bufio.NewWriterSize(rwc, 64<<10),
		running: make(map[uint64]*inFlight),
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

func (s *Server) maxFrame() int {
	if s.MaxFrame > 0 {
		return s.MaxFrame
	}
	return MaxFrame
}

func (c *serverConn) run() error {
	fr := newFrameReader(c.rwc, c.s.maxFrame())
	// Both sides speak first; see NewClient.
	sent := make(chan error, 1)
	go func() {
		sent <- c.send(message{Type: typeHello, Version: Version, Software: softwareName, Role: "server"})
	}()
	if err := c.handshake(fr); err != nil {
		c.rwc.Close()
		<-sent
		return err
	}
	if err := <-sent; err != nil {
		return err
	}
	sem := make(chan struct{}, maxRequestsInFlight)
	for {
		frame, err := fr.next()
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
		if err := json.Unmarshal(frame, &m); err != nil {
			c.sendError(0, CodeBadFrame, "frame is not a JSON message: "+err.Error())
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
		rctx, rcancel := context.WithCancel(c.ctx)
		c.rmu.Lock()
		if _, dup := c.running[m.ID]; dup {
			c.rmu.Unlock()
			rcancel()
			<-sem
			c.sendError(m.ID, CodeBadFrame, fmt.Sprintf("request id %d is already in use", m.ID))
			continue
		}
		req := &inFlight{rcancel, m.Method == methodSubscribe}
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
			c.handle(rctx, m)
		}()
	}
}

// inFlight is a running request.
type inFlight struct {
	cancel       context.CancelFunc
	subscription bool
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
	for _, f := range frames {
		if _, err := c.bw.Write(f); err != nil {
			return c.breakLocked(err)
		}
	}
	if err := c.bw.Flush(); err != nil {
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

// handle runs one request.
func (c *serverConn) handle(ctx context.Context, m message) {
	svc := c.s.Service
	switch m.Method {
	case methodSubscribe:
		var p subscribeParams
		if c.params(m, &p) {
			c.subscribe(ctx, m.ID, p.After)
		}
	case methodIncidents:
		var p incidentsParams
		if !c.params(m, &p) {
			return
		}
		incs, err := svc.Incidents(ctx, p.Query)
		if err != nil {
			c.respond(m.ID, nil, err)
			return
		}
		for i := 0; i < len(incs); i += incidentsPerFrame {
			end := min(i+incidentsPerFrame, len(incs))
			if err := c.send(message{Type: typeIncidents, ID: m.ID, Incidents: incs[i:end]}); err != nil {
				// A broken connection makes this a no-op; an incident
				// too large for a frame gets the client an answer.
				c.respond(m.ID, nil, err)
				return
			}
		}
		c.respond(m.ID, countResult{len(incs)}, nil)
	case methodNoise:
		var p noiseParams
		if c.params(m, &p) {
			n, err := svc.Noise(ctx, p.Since, p.Limit)
			c.respond(m.ID, n, err)
		}
	case methodSetStatus:
		var p setStatusParams
		if c.params(m, &p) {
			c.respond(m.ID, struct{}{}, svc.SetStatus(ctx, p.IDs, p.Status))
		}
	case methodSkips:
		sk, err := svc.Skips(ctx)
		c.respond(m.ID, sk, err)
	case methodPreviewSkip:
		var p skipParams
		if c.params(m, &p) {
			n, err := svc.PreviewSkip(ctx, p.Skip)
			c.respond(m.ID, countResult{n}, err)
		}
	case methodAddSkip:
		var p skipParams
		if c.params(m, &p) {
			sk, n, err := svc.AddSkip(ctx, p.Skip)
			c.respond(m.ID, addSkipResult{sk, n}, err)
		}
	case methodRemoveSkip:
		var p removeSkipParams
		if c.params(m, &p) {
			n, err := svc.RemoveSkip(ctx, p.ID)
			c.respond(m.ID, countResult{n}, err)
		}
	case methodRules:
		r, err := svc.Rules(ctx)
		c.respond(m.ID, r, err)
	case methodSetMonitoring:
		var p monitoringParams
		if c.params(m, &p) {
			c.respond(m.ID, struct{}{}, svc.SetMonitoring(ctx, p.On))
		}
	case methodStatus:
		st, err := svc.Status(ctx)
		c.respond(m.ID, st, err)
	case methodExport:
		var p exportParams
		if c.params(m, &p) {
			c.export(ctx, m.ID, p)
		}
	default:
		c.fail(m.ID, CodeUnknownMethod, fmt.Sprintf("unknown method %q", m.Method))
	}
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
			c.send(message{Type: typeUpdate, ID: id, Update: &service.Update{Dropped: uint64(len(u.Events) + len(u.Incidents))}})
		}
	}
	end := message{Type: typeEnd, ID: id}
	if ctx.Err() == nil {
		end.Error = &Error{Code: CodeFailed, Message: "the agent ended the subscription (it read too slowly, or the agent is stopping)"}
	}
	c.final(end)
}

// chunkWriter turns the export stream into chunk frames.
type chunkWriter struct {
	c  *serverConn
	id uint64
}

func (w chunkWriter) Write(p []byte) (int, error) {
	if err := w.c.send(message{Type: typeChunk, ID: w.id, Data: p}); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (c *serverConn) export(ctx context.Context, id uint64, p exportParams) {
	bw := bufio.NewWriterSize(chunkWriter{c, id}, exportChunkBytes)
	var last time.Time
	progress := func(done, total int) {
		if now := time.Now(); now.Sub(last) >= progressEveryDuration || done == total {
			last = now
			c.send(message{Type: typeProgress, ID: id, Done: done, Total: total})
		}
	}
	n, err := c.s.Service.Export(service.WithExportProgress(ctx, progress), p.Query, p.Format, bw)
	if err == nil {
		if ferr := bw.Flush(); ferr != nil {
			err = fmt.Errorf("export: %w", ferr)
		}
	}
	c.respond(id, countResult{n}, err)
}
