// Package api is procwatch's API contract: the one interface, Service, and
// the plain data types it passes, between the pipeline (sensor, rules,
// store) and the front ends (the TUI and the CLI). pipeline.Local
// implements it in process; protocol.Client implements it over a socket or
// SSH; fleet implements it over NATS; api/servicetest is an in-memory fake
// for tests. So front ends never touch BPF or the database directly.
package api

import (
	"context"
	"errors"
	"io"
	"strings"
	"time"

	"github.com/procwatch/procwatch/event"
	"github.com/procwatch/procwatch/rules"
)

// Service is everything a front end can ask of one host's pipeline.
type Service interface {
	// Subscribe streams updates until ctx ends. Incidents with an ID greater
	// than after are replayed first (0 replays none), so a client that
	// reconnects misses nothing. Events arrive in batches, never one by one.
	Subscribe(ctx context.Context, after rules.ID) (<-chan Update, error)

	// Incidents returns stored incidents matching q, newest first.
	Incidents(ctx context.Context, q Query) ([]rules.Incident, error)
	// Noise counts incidents since a time by command and by path, most first.
	Noise(ctx context.Context, since time.Time, limit int) (Noise, error)
	// SetStatus acknowledges or masks incidents.
	SetStatus(ctx context.Context, ids []rules.ID, status rules.Status) error

	// Skips lists every skip, from rules.yaml and added ones.
	Skips(ctx context.Context) ([]rules.Skip, error)
	// PreviewSkip says how many open incidents s would mask, without adding it.
	PreviewSkip(ctx context.Context, s rules.Skip) (int, error)
	// AddSkip stores s, applies it to new events at once and masks the open
	// incidents it covers. The returned skip has its ID set.
	AddSkip(ctx context.Context, s rules.Skip) (added rules.Skip, masked int, err error)
	// RemoveSkip deletes an added skip and unmasks exactly the incidents it masked.
	RemoveSkip(ctx context.Context, id string) (unmasked int, err error)

	// Rules returns the active rules.
	Rules(ctx context.Context) ([]rules.Rule, error)
	// SetMonitoring attaches (true) or detaches (false) the sensor; the
	// choice persists across restarts.
	SetMonitoring(ctx context.Context, on bool) error
	// Status reports the host's state: monitoring, sensor stats, rules file
	// status and open incidents by severity.
	Status(ctx context.Context) (Status, error)

	// Export writes incidents matching q to w as "json" (one array) or
	// "ndjson" (one incident a line) and returns how many it wrote.
	Export(ctx context.Context, q Query, format string, w io.Writer) (int, error)
}

// Query selects incidents. Zero fields do not filter.
type Query struct {
	MinSeverity rules.Severity `json:"min_severity,omitempty"`
	Type        string         `json:"type,omitempty"`
	Rule        string         `json:"rule,omitempty"`
	Status      rules.Status   `json:"status,omitempty"`
	Since       time.Time      `json:"since,omitzero"`
	Until       time.Time      `json:"until,omitzero"`
	Grep        string         `json:"grep,omitempty"` // substring of summary, exe, args, rule
	Limit       int            `json:"limit,omitempty"`
}

// Matches reports whether inc passes every filter of q except Limit. The
// store applies it to stored incidents and clients to incidents that arrive
// live, so both mean the same thing by a query. Since and Until are
// inclusive; Grep is a case-sensitive substring of the summary, the rule,
// the exe or an argument.
func (q *Query) Matches(inc *rules.Incident) bool {
	switch {
	case q.MinSeverity != rules.SeverityNone && inc.Severity < q.MinSeverity,
		q.Type != "" && inc.Type != q.Type,
		q.Rule != "" && inc.Rule != q.Rule,
		q.Status != "" && inc.Status != q.Status,
		!q.Since.IsZero() && inc.Time.Before(q.Since),
		!q.Until.IsZero() && inc.Time.After(q.Until):
		return false
	}
	if q.Grep == "" || strings.Contains(string(inc.Summary), q.Grep) || strings.Contains(inc.Rule, q.Grep) ||
		strings.Contains(string(inc.Process.Exe), q.Grep) {
		return true
	}
	for _, a := range inc.Process.Args {
		if strings.Contains(string(a), q.Grep) {
			return true
		}
	}
	return false
}

// Update is one message of a subscription. Exactly the fields that changed
// are set.
type Update struct {
	Events    []Envelope       `json:"events,omitempty"`
	Incidents []rules.Incident `json:"incidents,omitempty"` // new or updated (count, status)
	Status    *Status          `json:"status,omitempty"`
	// Dropped counts the events and incidents this subscriber lost since its
	// previous update because it read too slowly. Lost incidents are still
	// stored: a consumer that sees Dropped > 0 can query them again.
	Dropped uint64 `json:"dropped,omitempty"`
}

// Status is a snapshot of one host.
type Status struct {
	Host       string `json:"host"`
	Monitoring bool   `json:"monitoring"`
	// MonitoringSwitch is who last switched monitoring, and when; nil if
	// nobody has since the database was created.
	MonitoringSwitch *MonitoringSwitch `json:"monitoring_switch,omitempty"`
	Sensor           event.Stats       `json:"sensor"`
	// Containers counts the container-name lookups; nil when none are made.
	Containers *event.ContainerStats `json:"containers,omitempty"`
	RulesPath  string                `json:"rules_path"`
	RulesError string                `json:"rules_error,omitempty"` // last reload error; old rules stay active
	OpenBySev  map[string]int        `json:"open_by_severity"`
	// Store is the incident database's state; nil from an agent too old
	// to report it.
	Store *StoreStatus `json:"store,omitempty"`
	Time  time.Time    `json:"time"`
	// ExeHashes counts the background hashing of binaries (exe_sha256,
	// pinned skips), so a request dropped or a file that could not be read
	// shows; nil from an agent too old to report it.
	ExeHashes *ExeHashStats `json:"exe_hashes,omitempty"`
	// FatesLost counts root-escalation incidents whose process's end will
	// not be attached (rules.Engine.FatesLost): more escalated processes
	// ran at once than the engine follows.
	FatesLost uint64 `json:"fates_lost,omitempty"`
	// QueueDropped counts the events and incidents the agent's queues
	// dropped since it started (the pipeline's batch and every
	// subscriber's mailbox, docs/queues.md): what front ends reading too
	// slowly did not see live. Dropped incidents remain stored.
	QueueDropped uint64 `json:"queue_dropped,omitempty"`
}

// ExeHashStats is what the agent's cache of binaries' SHA-256 did since it
// started. A lookup that misses answers "unknown" (a pinned skip does not
// silence) and queues the file; Dropped counts requests refused because
// the queue was full, Failed files that could not be hashed (gone, not
// readable, changed while read, too large).
type ExeHashStats struct {
	Hits    uint64 `json:"hits"`
	Misses  uint64 `json:"misses"`
	Hashed  uint64 `json:"hashed"`
	Failed  uint64 `json:"failed"`
	Dropped uint64 `json:"dropped"`
	Entries int    `json:"entries"`
	// Attached counts incidents raised before their binary's hash was
	// known that were given it once the background hash was done;
	// Unattached those that could not be (the file changed after it ran,
	// it could not be hashed, or too many waited at once).
	Attached   uint64 `json:"attached"`
	Unattached uint64 `json:"unattached"`
}

// MonitoringSwitch is who last switched monitoring on or off, and when,
// with the caller as the kernel reported it.
type MonitoringSwitch struct {
	On   bool        `json:"on"`
	Time time.Time   `json:"time"`
	By   rules.Actor `json:"by"`
}

// ErrDamaged is wrapped by the error of a read (incidents, export) that
// returned every incident it could read but skipped damaged ones: callers
// show what they got and the error as a warning.
var ErrDamaged = errors.New("damaged database")

// DamagedWarning carries such a warning where the original error cannot
// travel (over the agent's socket).
type DamagedWarning struct{ Message string }

func (w *DamagedWarning) Error() string { return w.Message }

// Unwrap makes errors.Is(err, ErrDamaged) true.
func (w *DamagedWarning) Unwrap() error { return ErrDamaged }

// StoreStatus says what the incident database keeps, deletes and fails to
// write, so that nothing is lost without it showing.
type StoreStatus struct {
	Path     string `json:"path"`
	ReadOnly bool   `json:"read_only,omitempty"` // opened read-only (read-only file or filesystem)
	// Incidents is how many are stored (committed).
	Incidents int `json:"incidents"`
	// RetentionCount and RetentionAgeSeconds are the limits in force; 0
	// means no limit.
	RetentionCount      int   `json:"retention_count"`
	RetentionAgeSeconds int64 `json:"retention_age_seconds"`
	// EvictedByCount counts the incidents the count limit has deleted
	// since the database was created.
	EvictedByCount uint64 `json:"evicted_by_count"`
	// Pending incidents wait in memory for their commit; while commits
	// fail (a full disk) they pile up here and CommitError says why.
	Pending      int        `json:"pending"`
	CommitError  string     `json:"commit_error,omitempty"`
	FailingSince *time.Time `json:"failing_since,omitempty"`
	// Dropped incidents were given up on (queue full while commits
	// failed); each is also logged.
	Dropped uint64 `json:"dropped"`
	// Unreadable counts damaged records reads have skipped since the
	// database was opened, and CheckError is the consistency check's
	// finding at start (empty when it passed or did not run).
	Unreadable uint64 `json:"unreadable,omitempty"`
	CheckError string `json:"check_error,omitempty"`
}

// Noise answers "why am I seeing so many incidents": counts by command and by
// path, most first.
type Noise struct {
	Commands []NoiseEntry `json:"commands"`
	Paths    []NoiseEntry `json:"paths"`
}

// NoiseEntry is one command or path with its incident count.
type NoiseEntry struct {
	Value string `json:"value"`
	Rule  string `json:"rule,omitempty"`
	Count int    `json:"count"`
}
