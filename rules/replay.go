package rules

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"

	"github.com/procwatch/procwatch/event"
)

// MaxCaptureLine bounds one line of a capture. Real events are a few KiB
// (the sensor caps argv); anything longer is rejected as malformed rather
// than buffered without limit.
const MaxCaptureLine = 1 << 20

// LineError is a capture line that could not be replayed.
type LineError struct {
	Line int
	Err  error
}

// Error names the line, so a message can be traced back to the capture.
func (e *LineError) Error() string { return fmt.Sprintf("line %d: %v", e.Line, e.Err) }

// Unwrap gives the decoding error, for errors.As on JSON error types.
func (e *LineError) Unwrap() error { return e.Err }

// ReplayStats sums up a replay.
type ReplayStats struct {
	Lines    int // lines read, blank ones included
	Events   int // events judged
	BadLines int // lines skipped as malformed
	Skipped  int // rule matches a skip suppressed
	// Rules maps each rule that raised something to its counts.
	Rules map[string]*RuleCount
}

// RuleCount is what one rule raised during a replay.
type RuleCount struct {
	Incidents int    // distinct incidents (after dedup)
	Events    uint64 // events that matched, repeats included
}

// SortedRules returns the rule names of s.Rules, most incidents first.
func (s *ReplayStats) SortedRules() []string {
	names := make([]string, 0, len(s.Rules))
	for n := range s.Rules {
		names = append(names, n)
	}
	sort.Slice(names, func(i, j int) bool {
		a, b := s.Rules[names[i]], s.Rules[names[j]]
		if a.Incidents != b.Incidents {
			return a.Incidents > b.Incidents
		}
		return names[i] < names[j]
	})
	return names
}

// Replay judges every event of an NDJSON capture (as written by
// `procwatch events --json`) with e, so rules can be tuned offline without
// root. onIncident receives each new or dedup-updated incident in order.
// Malformed lines (bad JSON, an unknown event type or outcome, a line over
// MaxCaptureLine) are passed to onBadLine and skipped: the replay goes on.
// The error is only for a failing reader.
func Replay(r io.Reader, e *Engine, onIncident func(Incident), onBadLine func(*LineError)) (ReplayStats, error) {
	stats := ReplayStats{Rules: map[string]*RuleCount{}}
	br := bufio.NewReaderSize(r, 64<<10)
	var line []byte
	for {
		var tooLong bool
		var err error
		line, tooLong, err = readLine(br, line[:0])
		if len(line) == 0 && !tooLong && err != nil {
			if errors.Is(err, io.EOF) {
				return stats, nil
			}
			return stats, fmt.Errorf("read capture: %w", err)
		}
		stats.Lines++
		bad := func(err error) {
			stats.BadLines++
			if onBadLine != nil {
				onBadLine(&LineError{Line: stats.Lines, Err: err})
			}
		}
		switch {
		case tooLong:
			bad(fmt.Errorf("longer than %d bytes", MaxCaptureLine))
		case len(bytes.TrimSpace(line)) == 0:
		default:
			ev, perr := decodeCaptureLine(line)
			if perr != nil {
				bad(perr)
				break
			}
			stats.Events++
			v := e.Judge(&ev)
			stats.Skipped += v.Skipped
			for i, inc := range v.Incidents {
				if i >= len(v.Incidents)-v.Fated {
					// A process's end attached to an earlier incident:
					// an update, not a match.
					if onIncident != nil {
						onIncident(inc)
					}
					continue
				}
				c := stats.Rules[inc.Rule]
				if c == nil {
					c = &RuleCount{}
					stats.Rules[inc.Rule] = c
				}
				if inc.Count == 1 {
					c.Incidents++
				}
				c.Events++
				if onIncident != nil {
					onIncident(inc)
				}
			}
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				return stats, nil
			}
			return stats, fmt.Errorf("read capture: %w", err)
		}
	}
}

// readLine appends one line (without its newline) to buf. A line longer
// than MaxCaptureLine is read to its end and dropped, reported as tooLong.
func readLine(br *bufio.Reader, buf []byte) (line []byte, tooLong bool, err error) {
	for {
		chunk, err := br.ReadSlice('\n')
		if !tooLong {
			if len(buf)+len(chunk) > MaxCaptureLine+1 {
				tooLong, buf = true, buf[:0]
			} else {
				buf = append(buf, chunk...)
			}
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		return bytes.TrimSuffix(buf, []byte{'\n'}), tooLong, err
	}
}

// decodeCaptureLine parses one event and checks the fields rules rely on.
// Unknown fields are allowed: captures from a newer procwatch still replay.
func decodeCaptureLine(line []byte) (event.Event, error) {
	var ev event.Event
	if err := json.Unmarshal(line, &ev); err != nil {
		return ev, fmt.Errorf("not a JSON event: %w", err)
	}
	switch ev.Type {
	case event.TypeExec, event.TypeEscalation, event.TypeExit:
	case "":
		return ev, errors.New(`event has no "type"`)
	default:
		return ev, fmt.Errorf("unknown event type %q (want exec, escalation or exit)", ev.Type)
	}
	switch ev.Outcome {
	case event.Success, event.Failure, "":
	default:
		return ev, fmt.Errorf("unknown outcome %q (want success or failure)", ev.Outcome)
	}
	return ev, nil
}
