package metrics

import (
	"testing"

	"github.com/procwatch/procwatch/api"
	"github.com/procwatch/procwatch/event"
)

func TestContainerLookupMetrics(t *testing.T) {
	box := &statusBox{}
	m, err := New(Sources{Status: box.get})
	if err != nil {
		t.Fatal(err)
	}
	// Lookups off: no series.
	if _, ok := scrape(t, m).Value("procwatch_container_cache_entries"); ok {
		t.Error("container series without container lookups")
	}
	box.set(api.Status{Containers: &event.ContainerStats{
		Cached: 4, Lookups: 10, Found: 5, NotFound: 2, NotRunning: 1, Failed: 2, Dropped: 3, Evicted: 6, Unverified: 7,
	}}, nil)
	f := scrape(t, m)
	want(t, f, 5, "procwatch_container_lookups_total", "result", "found")
	want(t, f, 2, "procwatch_container_lookups_total", "result", "not_found")
	want(t, f, 1, "procwatch_container_lookups_total", "result", "not_running")
	want(t, f, 2, "procwatch_container_lookups_total", "result", "failed")
	want(t, f, 3, "procwatch_container_lookups_dropped_total")
	want(t, f, 7, "procwatch_container_events_unverified_total")
	want(t, f, 6, "procwatch_container_cache_evicted_total")
	want(t, f, 4, "procwatch_container_cache_entries")
}
