package fleet

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/procwatch/procwatch/queue"
	"github.com/procwatch/procwatch/rules"
)

// Publisher sizes. queueLen bounds the incidents waiting to enter the
// outbox; past it the oldest give way (counted as lost; they stay in the
// local database) instead of the sensor waiting. The queue's memory grows
// with what it holds: a preallocated channel of this many incidents was 52
// MB of heap per agent that every garbage collection had to scan.
const (
	queueLen     = 65536
	outboxBatch  = 256
	publishBatch = 512
	ackWait      = 5 * time.Second
)

// PublishStats tells the fleet how far a host's publishing has come. It
// travels in every status message.
type PublishStats struct {
	Connected bool   `json:"connected"`
	Pending   int    `json:"pending"`         // incident versions in the outbox, not yet acknowledged
	Revision  uint64 `json:"revision"`        // last revision queued
	Acked     uint64 `json:"acked"`           // last revision JetStream acknowledged
	Published uint64 `json:"published"`       // acknowledged messages since start
	Lost      uint64 `json:"lost"`            // incidents that found the queue full (still in the local database)
	Error     string `json:"error,omitempty"` // last publish error, until a publish succeeds
}

// publisher moves incidents from the sensor to the outbox, and from the
// outbox to JetStream.
type publisher struct {
	host string
	nc   *nats.Conn
	js   jetstream.JetStream
	box  *outbox
	log  *slog.Logger

	queue     *queue.Queue[rules.Incident]
	kick      chan struct{}
	lost      atomic.Uint64 // batches the outbox refused; queue drops are counted by the queue
	published atomic.Uint64
	lastErr   atomic.Pointer[string]
}

// put queues inc for the outbox without ever blocking.
func (p *publisher) put(inc rules.Incident) { p.queue.Push(inc) }

// lostTotal is every incident that did not reach the outbox: dropped by a
// full queue or refused by the outbox.
func (p *publisher) lostTotal() uint64 { return p.queue.Dropped() + p.lost.Load() }

// fill drains the queue into the outbox, a batch per transaction.
func (p *publisher) fill(ctx context.Context) {
	var reported uint64
	batch := make([]rules.Incident, 0, outboxBatch)
	for {
		select {
		case <-p.queue.Ready():
		case <-ctx.Done():
			return
		}
		for {
			batch, _ = p.queue.TakeN(batch[:0], outboxBatch)
			if len(batch) == 0 {
				break
			}
			if err := p.box.add(batch); err != nil {
				p.lost.Add(uint64(len(batch)))
				p.log.Error("fleet outbox: cannot queue incidents; they stay in the local database only", "count", len(batch), "err", err)
			}
			clear(batch) // let the incidents' strings go
			select {
			case p.kick <- struct{}{}:
			default:
			}
		}
		if n := p.lostTotal(); n > reported {
			p.log.Warn("fleet queue full: incidents not published (they are in the local database)", "total", n)
			reported = n
		}
	}
}

// send publishes the outbox until ctx ends: a batch at a time, each
// message with its Nats-Msg-Id, then waits for every acknowledgement and
// removes what was acknowledged. A failure keeps the rest queued and
// retries with backoff, so the agent resumes from the last acknowledged
// incident after an outage or a restart.
func (p *publisher) send(ctx context.Context) {
	wait := 250 * time.Millisecond
	for ctx.Err() == nil {
		es, err := p.box.next(publishBatch)
		if err == nil && len(es) > 0 {
			err = p.publish(ctx, es)
		}
		if err != nil {
			msg := err.Error()
			if p.lastErr.Swap(&msg) == nil {
				p.log.Warn("fleet publish failed; incidents stay queued", "err", err)
			}
			select {
			case <-time.After(wait):
			case <-ctx.Done():
			}
			wait = min(2*wait, 5*time.Second)
			continue
		}
		if p.lastErr.Swap(nil) != nil {
			p.log.Info("fleet publish resumed")
		}
		wait = 250 * time.Millisecond
		if len(es) == publishBatch {
			continue
		}
		select {
		case <-p.kick:
		case <-time.After(time.Second):
		case <-ctx.Done():
		}
	}
}

// publish sends es and records those JetStream acknowledged.
func (p *publisher) publish(ctx context.Context, es []entry) error {
	if !p.nc.IsConnected() {
		return errors.New("not connected to NATS")
	}
	subj := IncidentsSubject(p.host)
	futs := make([]jetstream.PubAckFuture, 0, len(es))
	var pubErr error
	for _, e := range es {
		m := nats.NewMsg(subj)
		m.Data = e.JSON
		m.Header.Set(jetstream.MsgIDHeader, MsgID(p.host, e.ID, e.Rev))
		m.Header.Set(HeaderRevision, strconv.FormatUint(e.Rev, 10))
		f, err := p.js.PublishMsgAsync(m)
		if err != nil {
			pubErr = err
			break
		}
		futs = append(futs, f)
	}
	var ok []entry
	timeout := time.NewTimer(ackWait)
	defer timeout.Stop()
wait:
	for i, f := range futs {
		select {
		case <-f.Ok():
			ok = append(ok, es[i])
		case err := <-f.Err():
			if errors.Is(err, jetstream.ErrNoStreamResponse) {
				err = fmt.Errorf("%w (%w)", err, errNoStream)
			}
			pubErr = cmpErr(pubErr, err)
		case <-timeout.C:
			pubErr = cmpErr(pubErr, fmt.Errorf("no acknowledgement within %s", ackWait))
			break wait
		case <-ctx.Done():
			pubErr = cmpErr(pubErr, ctx.Err())
			break wait
		}
	}
	if err := p.box.acked(ok); err != nil {
		return fmt.Errorf("fleet outbox: %w", err)
	}
	p.published.Add(uint64(len(ok)))
	if pubErr != nil {
		return fmt.Errorf("publish to %s: %w", subj, pubErr)
	}
	return nil
}

func cmpErr(old, err error) error {
	if old != nil {
		return old
	}
	return err
}

// MsgID is the Nats-Msg-Id of one incident version: the same version
// published twice (an acknowledgement lost on the way back) is stored once.
func MsgID(host string, id rules.ID, rev uint64) string {
	return host + "." + id.String() + "." + strconv.FormatUint(rev, 10)
}

// stats reports the publisher's state for the status message.
func (p *publisher) stats() PublishStats {
	pending, rev, acked := p.box.counts()
	s := PublishStats{
		Connected: p.nc != nil && p.nc.IsConnected(), // nil before Start
		Pending:   pending,
		Revision:  rev,
		Acked:     acked,
		Published: p.published.Load(),
		Lost:      p.lostTotal(),
	}
	if e := p.lastErr.Load(); e != nil {
		s.Error = *e
	}
	return s
}
