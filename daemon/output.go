package daemon

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/procwatch/procwatch/rules"
	"github.com/procwatch/procwatch/safepath"
)

// incidentOutput writes incidents as NDJSON from its own goroutine, so a
// slow disk or a stalled pipe never holds up the sensor: the queue is
// bounded and what overflows is counted and logged.
type incidentOutput struct {
	ch      chan rules.Incident
	done    chan struct{}
	dropped atomic.Uint64
	once    sync.Once
	log     *slog.Logger
}

const outputQueue = 8192

// openOutput starts the --output writer, or returns nil when path is empty.
func openOutput(path string, stdout io.Writer, log *slog.Logger) (*incidentOutput, error) {
	if path == "" {
		return nil, nil
	}
	var (
		w      = stdout
		closer = func() error { return nil }
	)
	if path != "-" {
		f, err := safepath.CreateOutput(path)
		if err != nil {
			return nil, fmt.Errorf("--output: %w", err)
		}
		w, closer = f, f.Close
	}
	o := &incidentOutput{ch: make(chan rules.Incident, outputQueue), done: make(chan struct{}), log: log}
	go o.loop(w, closer)
	return o, nil
}

// put queues inc; it never blocks. A nil output ignores it.
func (o *incidentOutput) put(inc rules.Incident) {
	if o == nil {
		return
	}
	select {
	case o.ch <- inc:
	default:
		o.dropped.Add(1)
	}
}

func (o *incidentOutput) loop(w io.Writer, closer func() error) {
	defer close(o.done)
	bw := bufio.NewWriterSize(w, 64<<10)
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	var failed error
	var reported uint64
	// check gives up on the output at its first error: the incidents are
	// in the database anyway, and one log line says so.
	check := func(err error) {
		if err != nil && failed == nil {
			failed = err
			o.log.Error("--output failed; no more incidents will be written there", "err", err)
		}
	}
	reportDrops := func() {
		if n := o.dropped.Load(); n > reported {
			o.log.Warn("--output could not keep up; incidents left out (they are in the database)", "count", n-reported)
			reported = n
		}
	}
	for {
		select {
		case inc, ok := <-o.ch:
			if !ok {
				check(errors.Join(bw.Flush(), closer()))
				reportDrops()
				return
			}
			if failed == nil {
				b, err := json.Marshal(&inc)
				if err == nil {
					_, err = bw.Write(append(b, '\n'))
				}
				check(err)
			}
		case <-tick.C:
			if failed == nil {
				check(bw.Flush())
			}
			reportDrops()
		}
	}
}

// close flushes and closes the output; a nil output does nothing.
func (o *incidentOutput) close() {
	if o == nil {
		return
	}
	o.once.Do(func() {
		close(o.ch)
		<-o.done
	})
}
