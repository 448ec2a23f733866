// Package protocol is procwatch's wire protocol: it carries api.Service
// over a byte stream. It is not the daemon (`procwatch agent` is assembled
// in package daemon); it is what the daemon's socket speaks: the local unix socket of `procwatch agent`, the stdin/stdout of
// `procwatch serve --stdio`, and SSH through the latter. One protocol
// serves all of them; docs/protocol.md specifies it. Server answers on the
// pipeline's side (with the socket's access checks and connection limits),
// Client implements api.Service on the front end's side.
package protocol

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/procwatch/procwatch/api"
	"github.com/procwatch/procwatch/rules"
)

// Version is the protocol version this build speaks. Both sides send it in
// their hello; a difference ends the connection with a clear error, because
// a silent misreading of incidents would be worse than no connection.
//
// Version 2: export chunks travel as raw bytes after their frame (no
// base64) under a credit window the client acknowledges; incidents
// answers say when the agent's per-request cap cut them short.
const Version = 2

// MaxFrame is the largest frame either side accepts, newline included.
// Senders split incident lists and updates to stay below it.
const MaxFrame = 1 << 20

// Message types.
const (
	typeHello     = "hello"
	typeRequest   = "request"
	typeResponse  = "response"
	typeUpdate    = "update"
	typeEnd       = "end"
	typeIncidents = "incidents"
	typeChunk     = "chunk"
	typeProgress  = "progress"
	typeError     = "error"
	typeAck       = "ack"
)

// Methods: one per api.Service method, plus cancel.
const (
	methodSubscribe     = "subscribe"
	methodIncidents     = "incidents"
	methodNoise         = "noise"
	methodSetStatus     = "set_status"
	methodSkips         = "skips"
	methodPreviewSkip   = "preview_skip"
	methodAddSkip       = "add_skip"
	methodRemoveSkip    = "remove_skip"
	methodRules         = "rules"
	methodSetMonitoring = "set_monitoring"
	methodStatus        = "status"
	methodExport        = "export"
	methodCancel        = "cancel"
)

// Error codes carried in Error.Code.
const (
	CodeBadFrame        = "bad_frame"
	CodeFrameTooLarge   = "frame_too_large"
	CodeVersionMismatch = "version_mismatch"
	CodeUnknownMethod   = "unknown_method"
	CodeBadParams       = "bad_params"
	CodeFailed          = "failed"
	CodeCanceled        = "canceled"
	CodeForbidden       = "forbidden"
	CodeBusy            = "busy"
	CodeIdle            = "idle"
)

// Error is a protocol-level or service error as it travels on the wire. The
// client returns it as a Go error, so callers can tell an agent-side
// failure (Code "failed") from a broken connection.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Error returns a service failure as its own message, so it reads like the
// error the agent saw; protocol errors are prefixed with their code.
func (e *Error) Error() string {
	if e.Code == CodeFailed {
		return e.Message
	}
	return e.Code + ": " + e.Message
}

// message is the one envelope of every frame; Type says which fields apply.
type message struct {
	Type string `json:"type"`
	ID   uint64 `json:"id,omitempty"`

	// hello
	Version  int    `json:"version,omitempty"`
	Software string `json:"software,omitempty"`
	Role     string `json:"role,omitempty"`

	// request
	Method string          `json:"method,omitempty"`
	Params json.RawMessage `json:"params,omitempty"`

	// response, end, error
	Result json.RawMessage `json:"result,omitempty"`
	Error  *Error          `json:"error,omitempty"`

	// update, incidents, chunk, progress
	Update    *api.Update      `json:"update,omitempty"`
	Incidents []rules.Incident `json:"incidents,omitempty"`
	Size      int              `json:"size,omitempty"` // chunk: raw bytes that follow the frame
	Data      []byte           `json:"-"`              // chunk: those bytes, read by the client
	size      int              // bytes of the frame as received
	Done      int              `json:"done,omitempty"`
	Total     int              `json:"total,omitempty"`
}

// Parameters and results of the methods.
type (
	subscribeParams struct {
		After rules.ID `json:"after"`
	}
	incidentsParams struct {
		Query api.Query `json:"query"`
	}
	countResult struct {
		Count int `json:"count"`
		// Truncated: the agent's per-request cap ended an incidents
		// answer before every match was sent.
		Truncated bool `json:"truncated,omitempty"`
		// Damaged: the answer holds every incident the agent could read
		// from a damaged database; this is the warning saying how many
		// it skipped.
		Damaged string `json:"damaged,omitempty"`
	}
	noiseParams struct {
		Since time.Time `json:"since"`
		Limit int       `json:"limit"`
	}
	setStatusParams struct {
		IDs    []rules.ID   `json:"ids"`
		Status rules.Status `json:"status"`
	}
	skipParams struct {
		Skip rules.Skip `json:"skip"`
	}
	addSkipResult struct {
		Skip   rules.Skip `json:"skip"`
		Masked int        `json:"masked"`
	}
	removeSkipParams struct {
		ID string `json:"id"`
	}
	monitoringParams struct {
		On bool `json:"on"`
	}
	exportParams struct {
		Query  api.Query `json:"query"`
		Format string    `json:"format"`
	}
	cancelParams struct {
		ID uint64 `json:"id"`
	}
)

var errFrameTooLarge = errors.New("frame too large")

// frameReader reads newline-terminated frames of at most max bytes. A
// frame interrupted by a read error (a deadline) is kept, and the next
// call goes on with it.
type frameReader struct {
	br       *bufio.Reader
	max      int
	buf      []byte
	tooLarge bool
}

func newFrameReader(r io.Reader, max, bufSize int) *frameReader {
	return &frameReader{br: bufio.NewReaderSize(r, bufSize), max: max}
}

// next returns the next frame without its newline. A frame longer than max
// is consumed up to its newline and reported as errFrameTooLarge, so the
// stream stays usable and costs no more than max bytes of memory. The
// returned slice is valid until the next call.
func (f *frameReader) next() ([]byte, error) {
	for {
		chunk, err := f.br.ReadSlice('\n')
		if !f.tooLarge {
			if len(f.buf)+len(chunk) > f.max {
				f.tooLarge = true
				f.buf = nil
			} else {
				f.buf = append(f.buf, chunk...)
			}
		}
		switch {
		case err == nil:
			buf, tooLarge := f.buf, f.tooLarge
			f.buf, f.tooLarge = f.buf[:0], false
			if cap(f.buf) > 64<<10 {
				f.buf = nil // do not keep a large frame's buffer
			}
			if tooLarge {
				return nil, errFrameTooLarge
			}
			return buf[:len(buf)-1], nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF) && len(f.buf) > 0 && !f.tooLarge:
			return nil, fmt.Errorf("connection ended inside a frame: %w", io.ErrUnexpectedEOF)
		default:
			return nil, err
		}
	}
}

// partial reports whether a frame has begun but not ended.
func (f *frameReader) partial() bool { return len(f.buf) > 0 || f.tooLarge }

// raw reads the n bytes that follow a chunk frame.
func (f *frameReader) raw(n int) ([]byte, error) {
	if n < 0 || n > f.max {
		return nil, fmt.Errorf("chunk of %d bytes exceeds the %d-byte limit", n, f.max)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(f.br, b); err != nil {
		return nil, fmt.Errorf("read chunk: %w", err)
	}
	return b, nil
}

// encode marshals m into frames, splitting an incident list or an update
// that would exceed max into halves until each fits.
func encode(m message, max int) ([][]byte, error) {
	b, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", m.Type, err)
	}
	if len(b)+1 <= max {
		return [][]byte{append(b, '\n')}, nil
	}
	first, second, ok := split(m)
	if !ok {
		return nil, fmt.Errorf("encode %s: %d bytes exceed the %d-byte frame limit", m.Type, len(b), max)
	}
	a, err := encode(first, max)
	if err != nil {
		return nil, err
	}
	c, err := encode(second, max)
	if err != nil {
		return nil, err
	}
	return append(a, c...), nil
}

// split halves the list of m that can be split: incidents of an incidents
// message, or the events and incidents of an update.
func split(m message) (message, message, bool) {
	switch {
	case m.Type == typeIncidents && len(m.Incidents) > 1:
		h := len(m.Incidents) / 2
		a, b := m, m
		a.Incidents, b.Incidents = m.Incidents[:h], m.Incidents[h:]
		return a, b, true
	case m.Type == typeUpdate && m.Update != nil:
		u := *m.Update
		var ua, ub api.Update
		switch {
		case len(u.Events) > 1:
			h := len(u.Events) / 2
			ua, ub = u, api.Update{}
			ua.Events, ub.Events = u.Events[:h], u.Events[h:] // verdicts travel with their events
			ub.Incidents = u.Incidents
			ua.Incidents = nil
		case len(u.Incidents) > 1:
			h := len(u.Incidents) / 2
			ua, ub = u, api.Update{}
			ua.Incidents, ub.Incidents = u.Incidents[:h], u.Incidents[h:]
		case len(u.Events) == 1 && len(u.Incidents) > 0:
			ua, ub = u, api.Update{Incidents: u.Incidents}
			ua.Incidents = nil
		default:
			return m, m, false
		}
		a, b := m, m
		a.Update, b.Update = &ua, &ub
		return a, b, true
	}
	return m, m, false
}
