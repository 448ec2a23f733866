package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/procwatch/procwatch/api"
	"github.com/procwatch/procwatch/store"
)

// statusCollector turns one api.Status, read at scrape time, into the
// sensor's counters and the host's gauges. The sensor already counts
// events by type, drops and malformed records for its whole life, so they
// are exposed as counters as they are, not re-counted.
type statusCollector struct {
	status func() (api.Status, error)

	events, drops, malformed, ring, open, monitoring, rulesFailing, fatesLost, queueDropped *prometheus.Desc
}

func newStatusCollector(status func() (api.Status, error)) *statusCollector {
	return &statusCollector{
		status: status,
		events: prometheus.NewDesc("procwatch_events_total",
			"Events the sensor delivered, by type (exec, escalation, exit, fork).", []string{"type"}, nil),
		drops: prometheus.NewDesc("procwatch_events_dropped_total",
			"Events the kernel could not put in the ring buffer (it was full); raise --ring-buffer-mib if this grows.", nil, nil),
		malformed: prometheus.NewDesc("procwatch_records_malformed_total",
			"Ring buffer records the sensor could not decode.", nil, nil),
		ring: prometheus.NewDesc("procwatch_sensor_ring_buffer_bytes",
			"Size of the sensor's BPF ring buffer.", nil, nil),
		open: prometheus.NewDesc("procwatch_incidents_open",
			"Stored incidents still open (not acknowledged or masked), by severity.", []string{"severity"}, nil),
		monitoring: prometheus.NewDesc("procwatch_monitoring",
			"1 while monitoring is on (the sensor is wanted attached), 0 after `procwatch monitor off`.", nil, nil),
		rulesFailing: prometheus.NewDesc("procwatch_rules_reload_failing",
			"1 while the last rules reload failed and the previous rules are active.", nil, nil),
		fatesLost: prometheus.NewDesc("procwatch_fates_lost_total",
			"Root-escalation incidents whose process's end will not be attached: more escalated processes ran at once than the rules follow.", nil, nil),
		queueDropped: prometheus.NewDesc("procwatch_queue_dropped_total",
			"Events and incidents the agent's queues (pipeline batch, subscriber mailboxes) dropped because a front end read too slowly; incidents stay stored.", nil, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *statusCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.events, c.drops, c.malformed, c.ring, c.open, c.monitoring, c.rulesFailing, c.fatesLost, c.queueDropped} {
		ch <- d
	}
}

// Collect implements prometheus.Collector. A status that failed part way
// (the open counts could not be read) still yields what it has, plus an
// error for the open incidents.
func (c *statusCollector) Collect(ch chan<- prometheus.Metric) {
	st, err := c.status()
	s := st.Sensor
	for _, e := range []struct {
		typ string
		n   uint64
	}{{"exec", s.Exec}, {"escalation", s.Escalation}, {"exit", s.Exit}, {"fork", s.Fork}} {
		ch <- prometheus.MustNewConstMetric(c.events, prometheus.CounterValue, float64(e.n), e.typ)
	}
	ch <- prometheus.MustNewConstMetric(c.drops, prometheus.CounterValue, float64(s.Drops))
	ch <- prometheus.MustNewConstMetric(c.malformed, prometheus.CounterValue, float64(s.Malformed))
	ch <- prometheus.MustNewConstMetric(c.ring, prometheus.GaugeValue, float64(s.BufferBytes))
	ch <- prometheus.MustNewConstMetric(c.monitoring, prometheus.GaugeValue, boolValue(st.Monitoring))
	ch <- prometheus.MustNewConstMetric(c.rulesFailing, prometheus.GaugeValue, boolValue(st.RulesError != ""))
	ch <- prometheus.MustNewConstMetric(c.fatesLost, prometheus.CounterValue, float64(st.FatesLost))
	ch <- prometheus.MustNewConstMetric(c.queueDropped, prometheus.CounterValue, float64(st.QueueDropped))
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.open, err)
		return
	}
	for _, sev := range severities {
		ch <- prometheus.MustNewConstMetric(c.open, prometheus.GaugeValue, float64(st.OpenBySev[sev.String()]), sev.String())
	}
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// storeCollector exposes the store's write-queue counters: whether
// commits keep up with a storm, and whether any incident was given up on.
type storeCollector struct {
	stats func() store.Stats

	queued, committed, commits, blocked, dropped, failing, evicted, unreadable *prometheus.Desc
}

func newStoreCollector(stats func() store.Stats) *storeCollector {
	return &storeCollector{
		stats: stats,
		queued: prometheus.NewDesc("procwatch_store_queued_incidents",
			"Incidents waiting in the store's queue for the next commit.", nil, nil),
		committed: prometheus.NewDesc("procwatch_store_committed_incidents_total",
			"Incidents (new and updated) committed to the database.", nil, nil),
		commits: prometheus.NewDesc("procwatch_store_commits_total",
			"Write transactions that committed incidents.", nil, nil),
		blocked: prometheus.NewDesc("procwatch_store_put_blocked_total",
			"Times the rules had to wait for room in the store's full queue.", nil, nil),
		dropped: prometheus.NewDesc("procwatch_store_dropped_incidents_total",
			"Incidents the store gave up on (queue full while commits failed or lagged); each is also logged.", nil, nil),
		failing: prometheus.NewDesc("procwatch_store_commit_failing",
			"1 while the last commit failed (disk full, I/O error); its incidents are retried.", nil, nil),
		evicted: prometheus.NewDesc("procwatch_store_evicted_incidents_total",
			"Incidents the count limit deleted to make room (masked, acknowledged, then the lowest severities first), since the database was created.", nil, nil),
		unreadable: prometheus.NewDesc("procwatch_store_unreadable_records_total",
			"Damaged incident records reads skipped since the agent started.", nil, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *storeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.queued, c.committed, c.commits, c.blocked, c.dropped, c.failing, c.evicted, c.unreadable} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *storeCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.stats()
	ch <- prometheus.MustNewConstMetric(c.queued, prometheus.GaugeValue, float64(st.Queued))
	ch <- prometheus.MustNewConstMetric(c.committed, prometheus.CounterValue, float64(st.Committed))
	ch <- prometheus.MustNewConstMetric(c.commits, prometheus.CounterValue, float64(st.Batches))
	ch <- prometheus.MustNewConstMetric(c.blocked, prometheus.CounterValue, float64(st.Blocked))
	ch <- prometheus.MustNewConstMetric(c.dropped, prometheus.CounterValue, float64(st.Dropped))
	ch <- prometheus.MustNewConstMetric(c.failing, prometheus.GaugeValue, boolValue(st.LastError != ""))
	ch <- prometheus.MustNewConstMetric(c.evicted, prometheus.CounterValue, float64(st.Evicted))
	ch <- prometheus.MustNewConstMetric(c.unreadable, prometheus.CounterValue, float64(st.Unreadable))
}
