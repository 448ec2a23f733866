// Package metrics exposes what the agent does as Prometheus metrics, so a
// fleet of hosts can be watched from one place: events seen and lost by
// the sensor, incidents raised and open, rule evaluation time, subscribers
// that fell behind, the store's write queue, and whether monitoring is on.
//
// Everything is registered on a registry of its own (not the global one),
// together with the standard Go runtime and process collectors, so tests
// and other programs embedding the pipeline get exactly these series.
// Counters the pipeline drives (incidents, evaluation time, subscriber
// losses, reload errors) come through the pipeline.Observer methods;
// those the sensor and the store already keep are read at scrape time.
package metrics

import (
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/procwatch/procwatch/api"
	"github.com/procwatch/procwatch/rules"
	"github.com/procwatch/procwatch/store"
)

// Sources are read at every scrape. Status is required; Store may be nil.
type Sources struct {
	// Status gives the host's state: the sensor's counters, monitoring,
	// open incidents by severity and the rules reload error. The agent
	// passes pipeline.Local.Snapshot, which does not force a commit.
	Status func() (api.Status, error)
	// Store gives the incident store's write-queue counters.
	Store func() store.Stats
	// Logger receives scrape errors; default slog.Default().
	Logger *slog.Logger
}

// Metrics holds the registry and the series the pipeline drives. Its
// methods are safe for concurrent use.
type Metrics struct {
	reg    *prometheus.Registry
	log    *slog.Logger
	eval   prometheus.Histogram
	raised *prometheus.CounterVec
	repeat *prometheus.CounterVec
	// raisedBy and repeatBy hold each severity's child counter, so the
	// per-event path indexes an array instead of hashing label values.
	raisedBy, repeatBy [rules.SeverityCritical + 1]prometheus.Counter
	lost               prometheus.Counter
	kicked             prometheus.Counter
	reload             prometheus.Counter
}

// severities are the label values every per-severity series starts with,
// so a dashboard sees zeros rather than missing series.
var severities = []rules.Severity{rules.SeverityInfo, rules.SeverityLow, rules.SeverityMedium, rules.SeverityHigh, rules.SeverityCritical}

// New builds the registry: the Go and process collectors, the series the
// pipeline drives, and collectors reading src at scrape time.
func New(src Sources) (*Metrics, error) {
	if src.Status == nil {
		return nil, fmt.Errorf("metrics: no status source")
	}
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		log: src.Logger,
		eval: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "procwatch_rule_evaluation_seconds",
			Help: "Time the rules took to judge one event.",
			// Judging one event takes microseconds; the top buckets
			// catch a pathological rule set.
			Buckets: prometheus.ExponentialBuckets(1e-6, 4, 9),
		}),
		raised: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "procwatch_incidents_raised_total",
			Help: "New incidents raised by the rules, by severity.",
		}, []string{"severity"}),
		repeat: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "procwatch_incident_repeats_total",
			Help: "Repeats folded into an existing incident (its count went up), by severity.",
		}, []string{"severity"}),
		lost: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "procwatch_subscriber_updates_lost_total",
			Help: "Events and incidents that subscribers (TUI, CLI --follow, remote clients) lost because they read too slowly, summed over subscribers. Lost incidents are still stored.",
		}),
		kicked: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "procwatch_subscribers_dropped_total",
			Help: "Subscribers disconnected because they accepted nothing for 30 s.",
		}),
		reload: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "procwatch_rules_reload_errors_total",
			Help: "Rules reloads that failed; the previous rules stayed active.",
		}),
	}
	if m.log == nil {
		m.log = slog.Default()
	}
	for _, sev := range severities {
		m.raisedBy[sev] = m.raised.WithLabelValues(sev.String())
		m.repeatBy[sev] = m.repeat.WithLabelValues(sev.String())
	}
	cs := []prometheus.Collector{
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.eval, m.raised, m.repeat, m.lost, m.kicked, m.reload,
		newStatusCollector(src.Status),
		newContainerCollector(src.Status),
	}
	if src.Store != nil {
		cs = append(cs, newStoreCollector(src.Store))
	}
	for _, c := range cs {
		if err := m.reg.Register(c); err != nil {
			return nil, fmt.Errorf("metrics: register: %w", err)
		}
	}
	return m, nil
}

// Handler serves the registry in the Prometheus text or protobuf format.
// A source that fails leaves its series out of that scrape (and logs why)
// instead of failing the whole scrape.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		ErrorHandling:     promhttp.ContinueOnError,
		ErrorLog:          slogPrinter{m.log},
		Timeout:           10 * time.Second,
		EnableOpenMetrics: true,
	})
}

// Judged implements pipeline.Observer: it times the evaluation and counts
// new incidents and repeats by severity.
func (m *Metrics) Judged(took time.Duration, incs []rules.Incident) {
	m.eval.Observe(took.Seconds())
	for i := range incs {
		sev := incs[i].Severity
		if sev < rules.SeverityInfo || sev > rules.SeverityCritical {
			continue // the engine raises nothing below info
		}
		if incs[i].Count <= 1 {
			m.raisedBy[sev].Inc()
		} else {
			m.repeatBy[sev].Inc()
		}
	}
}

// SubscriberLost implements pipeline.Observer.
func (m *Metrics) SubscriberLost(n uint64) { m.lost.Add(float64(n)) }

// SubscriberDropped implements pipeline.Observer.
func (m *Metrics) SubscriberDropped() { m.kicked.Inc() }

// RulesReloadFailed implements pipeline.Observer.
func (m *Metrics) RulesReloadFailed() { m.reload.Inc() }

// slogPrinter adapts slog to promhttp's Println logger.
type slogPrinter struct{ log *slog.Logger }

func (p slogPrinter) Println(v ...any) {
	p.log.Warn("metrics scrape", "err", fmt.Sprint(v...))
}
