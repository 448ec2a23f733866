package tui

import (
	"fmt"
	"testing"
	"time"

	"github.com/procwatch/procwatch/api"
	"github.com/procwatch/procwatch/api/servicetest"
	"github.com/procwatch/procwatch/rules"
)

// BenchmarkMergedIncidents measures one tick that brings a new incident
// from one of four hosts while the merged list holds 40,000 incidents
// (10,000 per host): upsert, merge into the merged list, frame rendered.
func BenchmarkMergedIncidents(b *testing.B) {
	const nHosts, perHost = 4, 10_000
	list := make([]Host, nHosts)
	for i := range list {
		name := fmt.Sprintf("web-%02d", i+1)
		list[i] = Host{Name: name, Service: servicetest.New(name, nil)}
	}
	m := NewHosts(b.Context(), list, testOptions())
	m.resize(160, 48)
	mk := func(host, i int) rules.Incident {
		at := t0.Add(time.Duration(i) * time.Millisecond)
		ev := servicetest.ExecEvent(at, uint32(i), 1000, fmt.Sprintf("/tmp/build-%d/run.sh", i))
		return servicetest.IncidentFor(rules.ID(at.UnixNano()), list[host].Name, "tmp-exec", rules.TypeBinExecution, rules.SeverityMedium, ev, "ran from /tmp")
	}
	for h := range nHosts {
		batch := make([]rules.Incident, perHost)
		for i := range batch {
			batch[i] = mk(h, i)
		}
		m.inc.upsertHost(h, batch, m.users, m.opts.Location)
	}
	m.inc.refresh()
	box := newInbox(1<<20, 1<<20)
	i := perHost
	for b.Loop() {
		h := i % nHosts
		box.port(h, m.hosts[h].gen).put(api.Update{Incidents: []rules.Incident{mk(h, i)}})
		i++
		m.Update(frameMsg{batch: box.take()})
		_ = m.View()
	}
}

// BenchmarkFleetFrame measures one frame at the fleet scale target: 200
// hosts, 100,000 incidents held, and a frame bringing 200 new incidents
// (4,000 a second at 20 frames a second) with every host's status; the
// frame applied (Update) and drawn (View). cpu-% is the share of one core
// 20 such frames a second take.
func BenchmarkFleetFrame(b *testing.B) {
	const nHosts, held, perFrame = 200, 100_000, 200
	list := make([]Host, nHosts)
	for i := range list {
		name := fmt.Sprintf("h%03d", i)
		list[i] = Host{Name: name, Service: servicetest.New(name, nil)}
	}
	m := NewHosts(b.Context(), list, testOptions())
	m.resize(160, 48)
	box := newInbox(1<<20, 1<<20)
	n := 0
	next := func(k int) {
		for range k {
			h := n % nHosts
			box.port(h, m.hosts[h].gen).put(api.Update{Incidents: []rules.Incident{fleetIncident(h, n)}})
			n++
		}
	}
	for n < held {
		next(frameIncidents)
		m.Update(frameMsg{batch: box.take()})
	}
	_ = m.View()
	for b.Loop() {
		next(perFrame)
		for h := range nHosts {
			st := api.Status{Host: list[h].Name, Time: t0.Add(time.Duration(n) * time.Millisecond)}
			box.port(h, m.hosts[h].gen).put(api.Update{Status: &st})
		}
		m.Update(frameMsg{batch: box.take()})
		_ = m.View()
	}
	perOp := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
	b.ReportMetric(perOp*20/1e9*100, "cpu-%")
}
