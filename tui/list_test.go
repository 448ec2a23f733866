package tui

import (
	"cmp"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"charm.land/bubbles/v2/table"
	"github.com/charmbracelet/x/ansi"

	"github.com/procwatch/procwatch/rules"
)

// TestApplySortedMatchesASort: batches merged into a sorted list, with
// rows removed and rows replaced, leave it exactly as sorting everything
// would, with and without a filter, and the selection stays on its row.
func TestApplySortedMatchesASort(t *testing.T) {
	byKeyDesc := func(a, b *row[int]) int { return cmp.Compare(b.key, a.key) }
	for _, tt := range []struct {
		name    string
		filter  string
		batches int
		perB    int
	}{
		{"newest on top, no filter", "", 30, 50},
		{"with a filter", "7", 30, 50},
		{"one row a batch", "", 200, 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(1, 2))
			l := newListView[int]([]column{{title: "K", flex: true}}, -1, false, "")
			l.follow = false
			l.cmp = byKeyDesc
			l.SetSize(80, 20)
			l.SetFilter(tt.filter)
			held := map[uint64]*row[int]{}
			mk := func(k uint64, v int) *row[int] {
				return &row[int]{key: k, item: v, hay: fmt.Sprint(k), cells: []string{fmt.Sprint(k)}}
			}
			var selKey uint64
			for b := range tt.batches {
				var dels, adds []*row[int]
				seen := map[uint64]bool{}
				for range tt.perB {
					k := uint64(rng.IntN(5000)) // new keys and old ones (replaced)
					if seen[k] {
						continue
					}
					seen[k] = true
					if old := held[k]; old != nil {
						dels = append(dels, old)
					}
					r := mk(k, b)
					held[k] = r
					adds = append(adds, r)
				}
				l.applySorted(dels, adds)
				if b == 3 && len(l.shown) > 2 {
					l.Move(2)
					selKey = l.Selected().key
				}
			}
			want := make([]*row[int], 0, len(held))
			for _, r := range held {
				want = append(want, r)
			}
			slices.SortFunc(want, byKeyDesc)
			if !slices.Equal(l.all, want) {
				t.Fatalf("merged list differs from a sort of %d rows", len(want))
			}
			shown := slices.Clone(want)
			if tt.filter != "" {
				shown = slices.DeleteFunc(shown, func(r *row[int]) bool { return !strings.Contains(r.hay, tt.filter) })
			}
			if !slices.Equal(l.shown, shown) {
				t.Fatalf("shown rows differ from a filter of the sorted rows (%d vs %d)", len(l.shown), len(shown))
			}
			if selKey != 0 && l.Selected().key != selKey {
				t.Errorf("selection moved from %d to %d", selKey, l.Selected().key)
			}
		})
	}
}

// TestIncidentBatchesMatchARebuild: incidents of several hosts upserted
// batch by batch (new ones and new versions) are listed in the order a
// full rebuild gives, by id and by severity.
func TestIncidentBatchesMatchARebuild(t *testing.T) {
	for _, bySev := range []bool{false, true} {
		s := newIncidentsScreen([]string{"a", "b", "c"}, 0)
		s.bySev = bySev
		s.list.SetSize(160, 30)
		users := newUserCache(nil)
		rng := rand.New(rand.NewPCG(3, 4))
		for range 40 {
			var b []hostIncident
			for range 25 {
				h, i := rng.IntN(3), rng.IntN(400)
				in := fleetIncident(h, i)
				in.Severity = rules.Severity(1 + rng.IntN(4))
				b = append(b, hostIncident{host: h, inc: in})
			}
			s.upsert(b, nil, users, t0.Location())
		}
		got := slices.Clone(s.list.all)
		s.needsSort = true
		s.refresh()
		if !slices.Equal(got, s.list.all) {
			t.Errorf("bySev=%v: the merged list differs from a rebuild (%d rows vs %d)", bySev, len(got), len(s.list.all))
		}
	}
}

// TestIncidentsHeldStayBounded: past its bound the incident list lets the
// most expendable go (masked, then low severities, oldest first), keeps
// every open critical incident, counts what went, and stays the list a
// rebuild gives.
func TestIncidentsHeldStayBounded(t *testing.T) {
	const bound = 100
	s := newIncidentsScreen([]string{"a", "b"}, bound)
	s.list.SetSize(160, 30)
	users := newUserCache(nil)
	rng := rand.New(rand.NewPCG(5, 6))
	seen := map[incKey]bool{}
	critical := map[incKey]bool{}
	for i := range 600 {
		h := rng.IntN(2)
		in := fleetIncident(h, i)
		switch {
		case i%50 == 0:
			in.Severity = rules.SeverityCritical
			critical[incKey{h, in.ID}] = true
		case i%3 == 0:
			in.Status, in.Severity = rules.StatusMasked, rules.SeverityHigh
		default:
			in.Severity = rules.SeverityLow
		}
		seen[incKey{h, in.ID}] = true
		before := maps.Clone(s.byID)
		s.upsert([]hostIncident{{host: h, inc: in}}, nil, users, t0.Location())
		if len(s.byID) > bound {
			t.Fatalf("after %d incidents the list holds %d, want at most %d", i+1, len(s.byID), bound)
		}
		// An eviction that took an open incident left no masked one.
		for k, r := range before {
			if s.byID[k] != nil || r.item.Status != rules.StatusOpen {
				continue
			}
			for k2, r2 := range before {
				if r2.item.Status == rules.StatusMasked && s.byID[k2] != nil {
					t.Fatalf("open %s was let go while masked %s stayed", r.item.ID, r2.item.ID)
				}
			}
		}
	}
	if len(s.byID)+s.evicted != len(seen) {
		t.Fatalf("held %d + let go %d != %d incidents", len(s.byID), s.evicted, len(seen))
	}
	for k := range critical {
		if s.byID[k] == nil {
			t.Fatalf("open critical incident %v was let go before masked and low ones", k)
		}
	}
	got := slices.Clone(s.list.all)
	s.needsSort = true
	s.refresh()
	if !slices.Equal(got, s.list.all) {
		t.Fatalf("the list after evictions differs from a rebuild (%d rows vs %d)", len(got), len(s.list.all))
	}
}

// TestRenderMatchesTheTable: the list's own drawing from cached lines is
// byte for byte what the bubbles table drew (styles included), on every
// frame, with the selection moving and the theme changing.
func TestRenderMatchesTheTable(t *testing.T) {
	s := newIncidentsScreen([]string{"web-01", "db-01"}, 0)
	l := s.list
	l.SetSize(120, 12)
	users := newUserCache(nil)
	var b []hostIncident
	for i := range 30 {
		in := fleetIncident(i%2, i)
		in.Severity = rules.Severity(i % 6)
		if i%7 == 0 {
			in.Status = rules.StatusMasked
		}
		b = append(b, hostIncident{host: i % 2, inc: in})
	}
	s.upsert(b, nil, users, time.UTC)
	byTable := func(th theme) string {
		tbl := table.New(table.WithFocused(true))
		tc := make([]table.Column, len(l.cols))
		for i, c := range l.cols {
			tc[i] = table.Column{Title: c.title, Width: l.widths[i]}
		}
		tbl.SetColumns(tc)
		tbl.SetWidth(l.width)
		tbl.SetHeight(l.height)
		tbl.SetStyles(th.table)
		h := tbl.Height()
		end := min(l.top+h, len(l.shown))
		var win []table.Row
		for i := l.top; i < end; i++ {
			r := l.withTail(l.shown[i])
			if i == l.idx {
				win = append(win, r.cells)
				continue
			}
			win = append(win, l.styled(r, th))
		}
		tbl.SetRows(win)
		tbl.SetCursor(l.idx - l.top)
		return fitLines(tbl.View(), l.height)
	}
	for step, th := range []theme{newTheme(true), newTheme(true), newTheme(false)} {
		for range 3 {
			l.Move(4)
			got, want := l.View(th), byTable(th)
			if !strings.Contains(got, "\x1b[7m") || !strings.Contains(got, "\x1b[1;") {
				t.Fatalf("no reverse selection or bold severity drawn:\n%q", got)
			}
			if got != want {
				t.Fatalf("step %d, selection %d: the list draws\n%q\nthe table drew\n%q", step, l.idx, got, want)
			}
		}
	}
}

// TestIncidentRowsFormattedWhenNeeded: a flood of incidents costs a row
// each; only the rows drawn are formatted, and a filter still finds a row
// that was never drawn.
func TestIncidentRowsFormattedWhenNeeded(t *testing.T) {
	s := newIncidentsScreen([]string{"web-01", "db-01"}, 0)
	s.list.SetSize(160, 20)
	var b []hostIncident
	for i := range 5000 {
		b = append(b, hostIncident{host: i % 2, inc: fleetIncident(i%2, i)})
	}
	s.upsert(b, nil, newUserCache(nil), time.UTC)
	th := newTheme(true)
	s.list.View(th)
	formatted := 0
	for _, r := range s.list.all {
		if !r.lazy {
			formatted++
		}
	}
	if formatted == 0 || formatted > 20 {
		t.Errorf("%d of 5,000 rows formatted after one frame of 20 lines", formatted)
	}
	s.list.SetFilter("ran h1-2501") // incident 2501 of host 1, far below the screen
	if s.list.Len() != 1 || s.list.Selected().item.ID != fleetIncident(1, 2501).ID {
		t.Fatalf("the filter found %d rows, want incident 2501 of host 1", s.list.Len())
	}
	if out := ansi.Strip(s.list.View(th)); !strings.Contains(out, "ran h1-2501") {
		t.Errorf("the filtered row is not drawn:\n%s", out)
	}
}
