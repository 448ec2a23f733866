package tui

import (
	"fmt"
	"strings"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"

	"github.com/procwatch/procwatch/api"
	"github.com/procwatch/procwatch/api/servicetest"
	"github.com/procwatch/procwatch/rules"
)

func TestPause(t *testing.T) {
	for _, sz := range sizes {
		t.Run(sz.name, func(t *testing.T) {
			f := newFake()
			h := start(t, f, sz.w, sz.h, testOptions())
			h.waitFor("5 shown")
			h.typeKeys("2")
			h.waitFor("waiting for events")
			publishExec(f, t0.Add(time.Minute), 20000, 30, "/usr/bin/make")
			h.waitFor("30 rows", "following", "20029")
			h.press(tea.KeySpace)
			h.waitFor("PAUSED · 0 new")
			for i := range 12 {
				publishExec(f, t0.Add(2*time.Minute), 30000+uint32(i*100), 100, "/usr/bin/cc")
			}
			publishExec(f, t0.Add(2*time.Minute), 40000, 4, "/usr/bin/cc")
			s := h.waitFor("PAUSED · 1,204 new")
			if strings.Contains(s, "/usr/bin/cc") {
				t.Errorf("paused view shows rows that arrived after the pause:\n%s", s)
			}
			h.golden(s)
			h.press(tea.KeySpace)
			s = h.waitFor("1,234 rows", "following", "40003")
			if strings.Contains(s, "PAUSED") {
				t.Errorf("still paused:\n%s", s)
			}
		})
	}
}

func TestStreamBoundedAndSelectionKept(t *testing.T) {
	f := newFake()
	opts := testOptions()
	opts.Rows = 100
	h := start(t, f, 120, 30, opts)
	h.waitFor("5 shown")
	h.typeKeys("2")
	publishExec(f, t0, 1000, 60, "/usr/bin/ls")
	h.waitFor("60 rows", "1059")
	h.typeKeys("kkk") // leave follow mode: select pid 1056
	h.waitFor("scrolled (G follows)")
	sel := func() string {
		var pid string
		h.with(func(m *Model) { pid = m.streams[0].list.Selected().cells[1] })
		return pid
	}
	if got := sel(); got != "1056" {
		t.Fatalf("selected pid %s, want 1056", got)
	}
	publishExec(f, t0, 2000, 30, "/usr/bin/ls")
	h.waitFor("90 rows")
	if got := sel(); got != "1056" {
		t.Errorf("selection moved to pid %s while rows arrived", got)
	}
	publishExec(f, t0, 3000, 30, "/usr/bin/ls")
	h.waitFor("100 rows (last 100 kept)")
	if got := sel(); got != "1056" {
		t.Errorf("selection moved to pid %s after eviction of older rows", got)
	}
	// Evict the selected row itself: the selection falls to the oldest row.
	publishExec(f, t0, 4000, 80, "/usr/bin/ls")
	h.waitFor("100 rows (last 100 kept)", "3029")
	var oldest string
	h.with(func(m *Model) {
		shown := m.streams[0].list.shown
		oldest = shown[0].cells[1]
		if newest := shown[len(shown)-1].cells[1]; newest != "4079" {
			t.Errorf("newest row pid %s, want 4079", newest)
		}
		if n := m.streams[0].rows.Len(); n != 100 {
			t.Errorf("ring holds %d rows, want 100", n)
		}
	})
	if got := sel(); got != oldest {
		t.Errorf("after eviction selected %s, want the oldest row %s", got, oldest)
	}
	h.typeKeys("G")
	h.waitFor("following")
	if got := sel(); got != "4079" {
		t.Errorf("G selected %s, want the newest 4079", got)
	}
}

func TestStreamVerdicts(t *testing.T) {
	f := newFake()
	h := start(t, f, 160, 30, testOptions())
	h.waitFor("5 shown")
	h.typeKeys("3")
	at := t0.Add(5 * time.Minute)
	hit := servicetest.EscalationEvent(at, 9001, 65534, "/opt/suidtest")
	quiet := servicetest.EscalationEvent(at, 9002, 1000, "/usr/bin/sudo")
	other := servicetest.EscalationEvent(at, 9003, 1000, "/usr/bin/su")
	in := servicetest.IncidentFor(rules.ID(at.UnixNano()), testHost, "root-escalation", rules.TypeRootEscalation,
		rules.SeverityHigh, hit, "uid 65534 became root")
	evs := api.Wrap(hit, quiet, other)
	evs[1].Skip = &rules.SkipHit{Rule: "root-escalation", By: rules.SkipByRule}
	f.Publish(api.Update{Events: evs, Incidents: []rules.Incident{in}})
	s := h.waitFor("/opt/suidtest", "/usr/bin/su")
	lines := map[string]string{}
	for _, l := range strings.Split(s, "\n") {
		for _, pid := range []string{"9001", "9002", "9003"} {
			if strings.Contains(l, pid) {
				lines[pid] = l
			}
		}
	}
	if !strings.Contains(lines["9001"], "high") || !strings.Contains(lines["9002"], "skip") ||
		strings.Contains(lines["9003"], "high") || strings.Contains(lines["9003"], "skip") {
		t.Errorf("verdicts wrong:\n%s", strings.Join([]string{lines["9001"], lines["9002"], lines["9003"]}, "\n"))
	}
	// The skipped row is dimmed (faint) in the styled output.
	h.typeKeys("kk") // select 9001, so 9002 is drawn unselected
	var raw string
	h.with(func(m *Model) { raw = m.View().Content })
	for _, l := range strings.Split(raw, "\n") {
		if strings.Contains(l, "9002") && !strings.Contains(l, "\x1b[2") && !strings.Contains(l, ";2m") && !strings.Contains(l, ";2;") {
			t.Errorf("skipped row is not faint: %q", l)
		}
	}
	// s on a row that raised an escalation incident skips its binary
	// for its rule.
	h.typeKeys("s") // on 9001
	h.waitFor(`Skip path "/opt/suidtest" for rule root-escalation?`)
	h.typeKeys("n")
	// s on a row without an incident explains S instead.
	h.typeKeys("G")
	h.typeKeys("s")
	h.waitFor("this event raised no incident")
	h.press(tea.KeyEnter)
	h.waitFor("Verdict     no incident", "Ancestry")
}

func TestReconnectReplaysIncidents(t *testing.T) {
	f := newFake()
	h := start(t, f, 120, 30, testOptions())
	h.waitFor("5 shown")
	// End every subscription, as an agent restart would.
	h.with(func(m *Model) { m.box.port(0, m.hosts[0].gen).close(nil) })
	h.waitFor("disconnected")
	at := t0.Add(9 * time.Minute)
	ev := servicetest.ExecEvent(at, 777, 1000, "/tmp/new-binary")
	f.Raise(servicetest.IncidentFor(rules.ID(at.UnixNano()), testHost, "tmp-exec", rules.TypeBinExecution, rules.SeverityMedium, ev, "late incident"))
	h.waitFor("6 shown", "late incident")
	if !strings.Contains(strings.Join(f.Calls(), "\n"), fmt.Sprintf("Subscribe %s", rules.ID(servicetest.SampleIncidents(testHost, t0)[4].ID))) {
		t.Errorf("resubscribe did not resume after the last incident: %q", f.Calls())
	}
}
