package metrics

import (
	"bytes"
	"errors"
	"log/slog"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/procwatch/procwatch/api"
	"github.com/procwatch/procwatch/event"
	"github.com/procwatch/procwatch/metrics/metricstest"
	"github.com/procwatch/procwatch/rules"
	"github.com/procwatch/procwatch/store"
)

// statusBox is a Status source a test changes between scrapes.
type statusBox struct {
	mu  sync.Mutex
	st  api.Status
	err error
}

func (b *statusBox) get() (api.Status, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.st, b.err
}

func (b *statusBox) set(st api.Status, err error) {
	b.mu.Lock()
	b.st, b.err = st, err
	b.mu.Unlock()
}

func scrape(t *testing.T, m *Metrics) metricstest.Families {
	t.Helper()
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	return metricstest.Scrape(t, srv.URL)
}

func want(t *testing.T, f metricstest.Families, v float64, name string, labels ...string) {
	t.Helper()
	got, ok := f.Value(name, labels...)
	if !ok {
		t.Errorf("%s%v: missing", name, labels)
		return
	}
	if got != v {
		t.Errorf("%s%v = %v, want %v", name, labels, got, v)
	}
}

func TestScrapeReportsSourcesAndObservations(t *testing.T) {
	box := &statusBox{}
	box.set(api.Status{
		Monitoring:   true,
		Sensor:       event.Stats{Exec: 40, Escalation: 2, Exit: 37, Fork: 9, Drops: 5, Malformed: 1, BufferBytes: 8 << 20},
		OpenBySev:    map[string]int{"high": 3, "critical": 1},
		FatesLost:    6,
		QueueDropped: 13,
	}, nil)
	storeStats := store.Stats{Queued: 7, Committed: 120, Batches: 4, Blocked: 2, Dropped: 1, LastError: "disk full", Evicted: 11, Unreadable: 3}
	m, err := New(Sources{Status: box.get, Store: func() store.Stats { return storeStats }})
	if err != nil {
		t.Fatal(err)
	}
	high := rules.Incident{Severity: rules.SeverityHigh, Count: 1}
	repeat := rules.Incident{Severity: rules.SeverityHigh, Count: 2}
	low := rules.Incident{Severity: rules.SeverityLow, Count: 1}
	m.Judged(3*time.Microsecond, []rules.Incident{high, low})
	m.Judged(2*time.Microsecond, []rules.Incident{repeat})
	m.Judged(time.Millisecond, nil)
	m.SubscriberLost(12)
	m.SubscriberLost(3)
	m.SubscriberDropped()
	m.RulesReloadFailed()

	f := scrape(t, m)
	want(t, f, 40, "procwatch_events_total", "type", "exec")
	want(t, f, 2, "procwatch_events_total", "type", "escalation")
	want(t, f, 37, "procwatch_events_total", "type", "exit")
	want(t, f, 9, "procwatch_events_total", "type", "fork")
	want(t, f, 5, "procwatch_events_dropped_total")
	want(t, f, 1, "procwatch_records_malformed_total")
	want(t, f, 8<<20, "procwatch_sensor_ring_buffer_bytes")
	want(t, f, 1, "procwatch_monitoring")
	want(t, f, 0, "procwatch_rules_reload_failing")
	want(t, f, 3, "procwatch_incidents_open", "severity", "high")
	want(t, f, 1, "procwatch_incidents_open", "severity", "critical")
	want(t, f, 0, "procwatch_incidents_open", "severity", "info")
	want(t, f, 1, "procwatch_incidents_raised_total", "severity", "high")
	want(t, f, 1, "procwatch_incidents_raised_total", "severity", "low")
	want(t, f, 0, "procwatch_incidents_raised_total", "severity", "critical")
	want(t, f, 1, "procwatch_incident_repeats_total", "severity", "high")
	want(t, f, 3, "procwatch_rule_evaluation_seconds") // sample count
	want(t, f, 15, "procwatch_subscriber_updates_lost_total")
	want(t, f, 1, "procwatch_subscribers_dropped_total")
	want(t, f, 1, "procwatch_rules_reload_errors_total")
	want(t, f, 7, "procwatch_store_queued_incidents")
	want(t, f, 120, "procwatch_store_committed_incidents_total")
	want(t, f, 4, "procwatch_store_commits_total")
	want(t, f, 2, "procwatch_store_put_blocked_total")
	want(t, f, 1, "procwatch_store_dropped_incidents_total")
	want(t, f, 1, "procwatch_store_commit_failing")
	want(t, f, 11, "procwatch_store_evicted_incidents_total")
	want(t, f, 3, "procwatch_store_unreadable_records_total")
	want(t, f, 6, "procwatch_fates_lost_total")
	want(t, f, 13, "procwatch_queue_dropped_total")

	h := f["procwatch_rule_evaluation_seconds"].GetMetric()[0].GetHistogram()
	if sum := h.GetSampleSum(); sum < 0.001 || sum > 0.0011 {
		t.Errorf("evaluation time sum = %v s, want 1.005e-3", sum)
	}
	for name, typ := range map[string]string{
		"procwatch_events_total":            "COUNTER",
		"procwatch_incidents_open":          "GAUGE",
		"procwatch_rule_evaluation_seconds": "HISTOGRAM",
		"procwatch_monitoring":              "GAUGE",
		"procwatch_fates_lost_total":        "COUNTER",
		"procwatch_queue_dropped_total":     "COUNTER",
	} {
		if got := f.Type(name); got != typ {
			t.Errorf("%s is a %s, want %s", name, got, typ)
		}
	}
	// The standard collectors are on the same registry.
	for _, name := range []string{"go_goroutines", "process_open_fds", "process_resident_memory_bytes"} {
		if _, ok := f.Value(name); !ok {
			t.Errorf("%s missing: the Go and process collectors are not registered", name)
		}
	}
	for name := range f {
		if !strings.HasPrefix(name, "procwatch_") && !strings.HasPrefix(name, "go_") && !strings.HasPrefix(name, "process_") {
			t.Errorf("unexpected family %s (a global registry leaking in?)", name)
		}
	}

	// Later scrapes follow the sources: monitoring off, a failed reload.
	box.set(api.Status{Monitoring: false, RulesError: "line 3: bad", OpenBySev: map[string]int{}}, nil)
	f = scrape(t, m)
	want(t, f, 0, "procwatch_monitoring")
	want(t, f, 1, "procwatch_rules_reload_failing")
	want(t, f, 0, "procwatch_incidents_open", "severity", "high")
}

// TestFailingStatusKeepsTheRest checks that a status source that fails
// (the database cannot be read) costs only the open-incident gauges of
// that scrape, with the error logged, and not the whole endpoint.
func TestFailingStatusKeepsTheRest(t *testing.T) {
	box := &statusBox{}
	box.set(api.Status{Monitoring: true, Sensor: event.Stats{Exec: 4}}, errors.New("status: count open incidents: disk gone"))
	var logged bytes.Buffer
	m, err := New(Sources{Status: box.get, Logger: slog.New(slog.NewTextHandler(&logged, nil))})
	if err != nil {
		t.Fatal(err)
	}
	m.Judged(time.Microsecond, []rules.Incident{{Severity: rules.SeverityCritical, Count: 1}})
	f := scrape(t, m)
	want(t, f, 4, "procwatch_events_total", "type", "exec")
	want(t, f, 1, "procwatch_monitoring")
	want(t, f, 1, "procwatch_incidents_raised_total", "severity", "critical")
	if _, ok := f.Value("procwatch_incidents_open", "severity", "high"); ok {
		t.Error("open incidents reported although they could not be read")
	}
	if _, ok := f.Value("procwatch_store_queued_incidents"); ok {
		t.Error("store series present without a store source")
	}
	if !strings.Contains(logged.String(), "disk gone") {
		t.Errorf("scrape error not logged: %q", logged.String())
	}
}

func TestNewNeedsAStatusSource(t *testing.T) {
	if _, err := New(Sources{}); err == nil {
		t.Error("New without a status source succeeded")
	}
}
