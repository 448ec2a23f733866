package tui

import (
	"strings"
	"testing"

	"github.com/charmbracelet/x/ansi"

	"github.com/procwatch/procwatch/service"
)

// TestHeaderStoreNotice: the header says when the database evicts by count
// or fails its commits (with the pending count), and says nothing while
// all is well.
func TestHeaderStoreNotice(t *testing.T) {
	cases := []struct {
		db   *service.StoreStatus
		want string // "" for no notice
	}{
		{nil, ""},
		{&service.StoreStatus{Incidents: 10}, ""},
		{&service.StoreStatus{EvictedByCount: 12345}, "db full: 12,345 evicted"},
		{&service.StoreStatus{EvictedByCount: 3, Pending: 4096, CommitError: "write procwatch.db: no space left on device\x1b[2J"},
			`db: 4,096 pending, commits failing: write procwatch.db: no space left on device\x1b[2J`},
	}
	for _, c := range cases {
		var h header
		h.observe(service.Status{Time: t0, Host: "db", Store: c.db})
		out := ansi.Strip(h.View(newTheme(true), 240, screenIncidents, int(screenCount-1), 4))
		if c.want == "" {
			if strings.Contains(out, "db:") || strings.Contains(out, "db full") {
				t.Errorf("notice without cause:\n%s", out)
			}
			continue
		}
		if !strings.Contains(out, c.want) {
			t.Errorf("header lacks %q:\n%s", c.want, out)
		}
	}
}
