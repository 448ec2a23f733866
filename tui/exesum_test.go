package tui

import (
	"strings"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"

	"github.com/procwatch/procwatch/api"
	"github.com/procwatch/procwatch/api/servicetest"
	"github.com/procwatch/procwatch/rules"
)

// TestFirstSightingBecomesPinnable: an incident raised at a binary's first
// sighting arrives without its SHA-256, and p offers an unpinned skip with
// a warning; when the pipeline's update gives it the hash, the open detail
// pane shows the SHA-256 and p offers the pinned skip.
func TestFirstSightingBecomesPinnable(t *testing.T) {
	for _, sz := range sizes {
		t.Run(sz.name, func(t *testing.T) {
			f := newFake()
			at := t0.Add(5 * time.Minute)
			ev := servicetest.ExecEvent(at, 4321, 1000, "/tmp/late/tool")
			inc := servicetest.IncidentFor(rules.ID(at.UnixNano()), testHost, "tmp-exec", rules.TypeBinExecution, rules.SeverityHigh, ev, "tool ran from /tmp")
			f.Raise(inc)
			h := start(t, f, sz.w, sz.h, testOptions())
			h.waitFor("6 shown")
			h.typeKeys("/late/tool")
			h.waitFor("1 shown")
			h.press(tea.KeyEnter)
			h.typeKeys("p")
			s := h.waitFor(`Skip path "/tmp/late/tool" for rule tmp-exec?`)
			if strings.Contains(flat(s), "pinned to SHA-256") {
				t.Fatalf("p offered a pin before the hash was known:\n%s", s)
			}
			h.typeKeys("n")
			h.waitFor("cancelled")
			h.press(tea.KeyEnter) // the detail pane
			h.waitFor("Exe", "/tmp/late/tool")

			inc.Process.ExeSHA256 = servicetest.SampleSHA256
			f.Publish(api.Update{Incidents: []rules.Incident{inc}})
			// At 80×24 the process part is below the fold: go to the end
			// until the update has arrived and the line shows.
			for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
				h.typeKeys("G")
				if strings.Contains(h.screen(), "SHA-256     "+servicetest.SampleSHA256[:40]) {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("the detail pane never showed the SHA-256:\n%s", h.screen())
				}
			}
			h.typeKeys("p")
			h.waitFor(`Skip path "/tmp/late/tool" pinned to SHA-256 ` + servicetest.SampleSHA256[:12] + `… for rule tmp-exec?`)
		})
	}
}

// TestDetailEscapesExeSHA256: the sum comes over the wire from a possibly
// hostile agent like any process string.
func TestDetailEscapesExeSHA256(t *testing.T) {
	in := servicetest.HostileIncidents(hostileHost, t0)[0]
	in.Process.ExeSHA256 = "ab\x1b[2Jcd"
	s := incidentDetail(&in, nil, newUserCache(nil), time.UTC)
	checkNoHazards(t, "detail", s)
	if !strings.Contains(s, `SHA-256     ab\x1b[2Jcd`) {
		t.Errorf("detail lacks the escaped sum:\n%s", s)
	}
	in.Process.ExeSHA256 = ""
	if s := incidentDetail(&in, nil, newUserCache(nil), time.UTC); strings.Contains(s, "SHA-256") {
		t.Errorf("a sum not known is shown:\n%s", s)
	}
}
