package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/procwatch/procwatch/api"
)

// containerCollector exposes the container-name lookups (Status.Containers),
// so that events left without a name are visible as a figure: lookups by
// result, events whose cgroup failed the check, and the cache's size and
// evictions. Nothing is emitted when lookups are off.
type containerCollector struct {
	status func() (api.Status, error)

	lookups, dropped, unverified, evicted, cached *prometheus.Desc
}

func newContainerCollector(status func() (api.Status, error)) *containerCollector {
	return &containerCollector{
		status: status,
		lookups: prometheus.NewDesc("procwatch_container_lookups_total",
			"Container lookups asked of the runtime APIs, by result (found, not_found, not_running, failed).", []string{"result"}, nil),
		dropped: prometheus.NewDesc("procwatch_container_lookups_dropped_total",
			"Container lookups not made because the queue was full; the container's next event asks again.", nil, nil),
		unverified: prometheus.NewDesc("procwatch_container_events_unverified_total",
			"Events not given a container's name because their cgroup is not under that container's own.", nil, nil),
		evicted: prometheus.NewDesc("procwatch_container_cache_evicted_total",
			"Containers dropped from the lookup cache to stay within its bound.", nil, nil),
		cached: prometheus.NewDesc("procwatch_container_cache_entries",
			"Containers (found or not) in the lookup cache.", nil, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *containerCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.lookups, c.dropped, c.unverified, c.evicted, c.cached} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *containerCollector) Collect(ch chan<- prometheus.Metric) {
	st, _ := c.status()
	s := st.Containers
	if s == nil {
		return
	}
	for _, r := range []struct {
		result string
		n      uint64
	}{{"found", s.Found}, {"not_found", s.NotFound}, {"not_running", s.NotRunning}, {"failed", s.Failed}} {
		ch <- prometheus.MustNewConstMetric(c.lookups, prometheus.CounterValue, float64(r.n), r.result)
	}
	ch <- prometheus.MustNewConstMetric(c.dropped, prometheus.CounterValue, float64(s.Dropped))
	ch <- prometheus.MustNewConstMetric(c.unverified, prometheus.CounterValue, float64(s.Unverified))
	ch <- prometheus.MustNewConstMetric(c.evicted, prometheus.CounterValue, float64(s.Evicted))
	ch <- prometheus.MustNewConstMetric(c.cached, prometheus.GaugeValue, float64(s.Cached))
}
