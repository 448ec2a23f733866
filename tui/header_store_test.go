package tui

import (
	"strings"
	"testing"

	"github.com/charmbracelet/x/ansi"

	"github.com/procwatch/procwatch/api"
)

// TestHeaderStoreNotice: the header says when the database evicts by count
// or fails its commits (with the pending count), and says nothing while
// all is well.
func TestHeaderStoreNotice(t *testing.T) {
	cases := []struct {
		db   *api.StoreStatus
		want string // "" for no notice
	}{
		{nil, ""},
		{&api.StoreStatus{Incidents: 10}, ""},
		{&api.StoreStatus{EvictedByCount: 12345}, "db full: 12,345 evicted"},
		{&api.StoreStatus{EvictedByCount: 3, Pending: 4096, CommitError: "write procwatch.db: no space left on device\x1b[2J"},
			`db: 4,096 pending, commits failing`},
		// The reason in full, escaped, in the banner.
		{&api.StoreStatus{Pending: 4096, CommitError: "write procwatch.db: no space left on device\x1b[2J"},
			`✖ database: commits failing, 4,096 incident(s) wait in memory: write procwatch.db: no space left on device\x1b[2J`},
		{&api.StoreStatus{Dropped: 7}, "✖ database: 7 incident(s) dropped while commits failed"},
	}
	for _, c := range cases {
		var h header
		h.observe(api.Status{Time: t0, Host: "db", Store: c.db})
		out := ansi.Strip(h.View(newTheme(true), 240, screenIncidents, int(screenCount-1), 4))
		if c.want == "" {
			if strings.Contains(out, "db:") || strings.Contains(out, "db full") || strings.Contains(out, "database") {
				t.Errorf("notice without cause:\n%s", out)
			}
			continue
		}
		if !strings.Contains(out, c.want) {
			t.Errorf("header lacks %q:\n%s", c.want, out)
		}
	}
}

// TestHeaderKeepsMustSeeStates: at 80 columns, with every must-see state at
// once, none of them is cut: each short form is whole on its line and each
// reason is whole in the banner.
func TestHeaderKeepsMustSeeStates(t *testing.T) {
	var h header
	h.observe(api.Status{Time: t0, Host: "a-rather-long-host-name.example.org", Monitoring: true,
		Sensor:     sensorStats("failed", "load BPF programs: permission denied", ""),
		RulesError: "rules.yaml:3:5: unknown field \"sevrity\"",
		OpenBySev:  map[string]int{"critical": 12, "high": 340, "medium": 5},
		Store:      &api.StoreStatus{EvictedByCount: 99, Pending: 10, CommitError: "no space left on device"}})
	h.uiDropped = 1234
	h.source, h.sourceShort = "agent /run/procwatch/procwatch.sock", "agent"
	out := ansi.Strip(h.View(newTheme(true), 80, screenIncidents, 7, 8))
	for _, want := range []string{"✖ NOT MONITORING", "drops 1,234 (ui 1,234)", "✖ rules error", "db full: 99 evicted",
		"db: 10 pending, commits failing", "✖ not monitoring: load BPF programs: permission denied",
		`✖ rules error: rules.yaml:3:5: unknown field "sevrity" (the previous rules stay active)`,
		"✖ database: commits failing, 10 incident(s) wait in memory: no space left on device"} {
		if !strings.Contains(flat(out), want) {
			t.Errorf("header lacks %q:\n%s", want, out)
		}
	}
	for i, l := range strings.Split(out, "\n") {
		if ansi.StringWidth(l) > 80 {
			t.Errorf("line %d wider than 80: %q", i, l)
		}
	}
}
