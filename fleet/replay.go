package fleet

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/procwatch/procwatch/event"
)

// Replay is an event source that plays a recorded capture (the NDJSON of
// `procwatch events --json`) instead of the sensor, so the whole pipeline
// (rules, store, publishing) runs without root or BPF and one machine can
// pose as many hosts. Each event is stamped with the time it is played.
// When the capture ends the source idles, reporting Done.
type Replay struct {
	Rate float64 // events per second; 0 plays as fast as the pipeline takes them

	// gate, when set, holds the first event back until it is closed (a
	// load test starts every replayed host at once).
	gate <-chan struct{}

	mu     sync.Mutex
	events []event.Event
	next   int
	stats  event.Stats
	done   chan struct{}
}

// LoadReplay reads a whole capture. A line that is not an event stops with
// its line number, since a half-read capture would be a wrong load.
func LoadReplay(path string, rate float64) (*Replay, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("--replay: %w", err)
	}
	defer f.Close()
	r := &Replay{Rate: rate, done: make(chan struct{})}
	if err := r.read(f, path); err != nil {
		return nil, err
	}
	if len(r.events) == 0 {
		return nil, fmt.Errorf("--replay %s: no events in the capture", path)
	}
	r.stats.Mode = "replay"
	return r, nil
}

func (r *Replay) read(rd io.Reader, path string) error {
	sc := bufio.NewScanner(rd)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for line := 1; sc.Scan(); line++ {
		b := sc.Bytes()
		if len(b) == 0 {
			continue
		}
		var ev event.Event
		if err := json.Unmarshal(b, &ev); err != nil {
			return fmt.Errorf("--replay %s:%d: not an event: %v (want the output of `procwatch events --json`)", path, line, err)
		}
		r.events = append(r.events, ev)
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("--replay %s: %w", path, err)
	}
	return nil
}

// Len is the number of events in the capture.
func (r *Replay) Len() int { return len(r.events) }

// Done is closed once every event was played.
func (r *Replay) Done() <-chan struct{} { return r.done }

// Run implements pipeline.EventSource. Stopped (monitoring off) and run
// again, it carries on where it was.
func (r *Replay) Run(ctx context.Context, handle func(*event.Event)) error {
	if r.gate != nil {
		select {
		case <-r.gate:
		case <-ctx.Done():
			return nil
		}
	}
	var tick <-chan time.Time
	if r.Rate > 0 {
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		tick = t.C
	}
	start, played := time.Now(), 0
	for {
		n := 256
		if tick != nil {
			select {
			case <-tick:
			case <-ctx.Done():
				return nil
			}
			n = int(time.Since(start).Seconds()*r.Rate) - played
		} else if ctx.Err() != nil {
			return nil
		}
		for range n {
			ev, ok := r.take()
			if !ok {
				<-ctx.Done()
				return nil
			}
			ev.Time = time.Now()
			handle(&ev)
			played++
		}
	}
}

// take returns the next event and counts it.
func (r *Replay) take() (event.Event, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.next >= len(r.events) {
		if r.done != nil {
			select {
			case <-r.done:
			default:
				close(r.done)
			}
		}
		return event.Event{}, false
	}
	ev := r.events[r.next]
	r.next++
	switch ev.Type {
	case event.TypeExec:
		r.stats.Exec++
	case event.TypeEscalation:
		r.stats.Escalation++
	case event.TypeExit:
		r.stats.Exit++
	}
	return ev, true
}

// Stats implements pipeline.EventSource.
func (r *Replay) Stats() event.Stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stats
}
