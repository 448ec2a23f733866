package pipeline

import (
	"context"
	"io"
	"time"

	"github.com/procwatch/procwatch/api"
	"github.com/procwatch/procwatch/event"
	"github.com/procwatch/procwatch/rules"
)

// EventSource produces sensor events. *sensor.Sensor satisfies it; tests
// use a fake. Run calls handle from one goroutine until ctx ends and may be
// called again after it returned, which is how monitoring is switched off
// and on.
type EventSource interface {
	Run(ctx context.Context, handle func(*event.Event)) error
	Stats() event.Stats
}

// Store is the part of *store.Store the pipeline uses. It is an interface
// so that the pipeline's tests can count calls and inject failures. Its
// errors already name the operation ("remove skip 7: no such added
// skip"), so Local returns them as they are rather than prefixing the
// same words again. SetStatus, CountCovered and AddSkip commit the queued
// incidents before they look at the stored ones, and SetStatus, AddSkip
// and Export check their status, skip and format, so Local neither
// flushes nor validates before calling them.
type Store interface {
	Put(inc rules.Incident)
	Flush() error
	Get(id rules.ID) (rules.Incident, bool, error)
	Query(q api.Query) ([]rules.Incident, error)
	Each(q api.Query, fn func(*rules.Incident) error) error
	After(id rules.ID, fn func(*rules.Incident) error) error
	Noise(since time.Time, limit int) (api.Noise, error)
	OpenBySeverity() (map[string]int, error)
	// Status describes the database (size, limits, evictions, pending
	// and failing commits) without waiting for a commit.
	Status() api.StoreStatus
	SetStatusBy(ids []rules.ID, st rules.Status, by *rules.Actor) error
	CountCovered(covers func(*rules.Incident) bool) (int, error)
	AddSkipBy(sk rules.Skip, covers func(*rules.Incident) bool, by *rules.Actor) (rules.Skip, int, error)
	RemoveSkipBy(id string, by *rules.Actor) (int, error)
	Skips() ([]rules.Skip, error)
	Monitoring() (bool, error)
	SetMonitoringBy(on bool, by *rules.Actor) error
	MonitoringSwitch() (*api.MonitoringSwitch, error)
	Export(q api.Query, format string, w io.Writer, progress func(done, total int)) (int, error)
	// SetExeSHA256 gives stored incidents without an exe_sha256 the sum
	// computed after they were raised, and returns those it changed.
	SetExeSHA256(sums map[rules.ID]string) ([]rules.Incident, error)
	// MaskForSkip masks the open incidents ids for the added skip
	// skipID, with mask links and history, and returns those it masked.
	MaskForSkip(skipID string, ids []rules.ID, by rules.Actor) ([]rules.Incident, error)
}

// Observer is told what the pipeline does, so the agent can export metrics
// without the pipeline knowing about Prometheus. Judged runs on the
// sensor's goroutine for every event and must be quick; the others run
// rarely, from any goroutine.
type Observer interface {
	// Judged reports how long the rules took to judge one event and the
	// incidents it raised (Count 1) or updated (Count > 1).
	Judged(took time.Duration, incs []rules.Incident)
	// SubscriberLost counts events and incidents one subscriber lost
	// because it read too slowly (the Dropped of an update it received).
	SubscriberLost(n uint64)
	// SubscriberDropped reports a subscriber disconnected for reading
	// nothing for Config.DropAfter.
	SubscriberDropped()
	// RulesReloadFailed reports a rules reload that failed; the previous
	// rules stay active.
	RulesReloadFailed()
}

// ContainerNamer fills an event's container name, image and runtime from
// what the container runtime said about its id. *containers.Cache
// satisfies it. Enrich runs on the sensor's goroutine for every event in a
// container, before the rules: it must never wait for the runtime.
type ContainerNamer interface {
	Enrich(ev *event.Event)
	Stats() event.ContainerStats
}
