package api

import (
	"github.com/procwatch/procwatch/event"
	"github.com/procwatch/procwatch/rules"
)

// Envelope is one event on its way from the sensor to a screen, with the
// pipeline's verdict on it. The verdict travels with the event through
// every queue, split and merge, so no index list has to be re-mapped when
// a batch is cut or joined. On the wire the event's fields are those of
// event.Event with "skip" added beside them.
type Envelope struct {
	event.Event
	// Skip is set when a rule matched the event but a skip suppressed the
	// incident, so front ends can show the event dimmed (a likely false
	// positive) instead of hiding it; nil otherwise.
	Skip *rules.SkipHit `json:"skip,omitempty"`
}

// Wrap puts plain events in envelopes without a verdict.
func Wrap(evs ...event.Event) []Envelope {
	out := make([]Envelope, len(evs))
	for i := range evs {
		out[i].Event = evs[i]
	}
	return out
}
