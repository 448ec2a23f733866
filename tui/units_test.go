package tui

import (
	"image/color"
	"slices"
	"strings"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"

	"github.com/procwatch/procwatch/api"
	"github.com/procwatch/procwatch/api/servicetest"
	"github.com/procwatch/procwatch/event"
	"github.com/procwatch/procwatch/rules"
)

func TestLayoutColumns(t *testing.T) {
	cols, _ := incidentColumns(false)
	for _, tc := range []struct {
		width int
		want  []int
	}{
		// 80 columns: the summary keeps its 32 cells; COUNT gives way
		// (the detail pane shows it).
		{80, []int{8, 8, 5, 12, 8, 0, 33}},
		// 90: everything fits at its minimum.
		{90, []int{8, 8, 5, 12, 8, 5, 37}},
		// 60: optional columns go, highest drop rank first (COUNT,
		// USER, STATE, RULE), until the summary has its room.
		{60, []int{8, 8, 0, 0, 0, 0, 41}},
		// 160: wide, fixed columns at their max.
		{160, []int{8, 8, 5, 24, 12, 7, 89}},
	} {
		got := layoutColumns(cols, tc.width)
		if !slices.Equal(got, tc.want) {
			t.Errorf("width %d: widths %v, want %v", tc.width, got, tc.want)
		}
		total := 0
		for _, w := range got {
			if w > 0 {
				total += w + 1
			}
		}
		if total > tc.width {
			t.Errorf("width %d: columns take %d cells", tc.width, total)
		}
	}
}

func TestSparkline(t *testing.T) {
	for _, tc := range []struct {
		samples []float64
		width   int
		want    string
	}{
		{nil, 4, "    "},
		// One cell a second at width 60, newest on the right.
		{[]float64{0, 0}, 60, strings.Repeat(" ", 58) + "▁▁"},
		{[]float64{1, 2, 4, 8}, 60, strings.Repeat(" ", 56) + "▂▃▅█"},
		// At width 4 each cell covers 15 seconds and shows their peak.
		{[]float64{1, 2, 4, 8}, 4, "   █"},
		{append(make([]float64, 30), 8, 4), 4, " ▁▁█"},
	} {
		if got := sparkline(tc.samples, tc.width); got != tc.want {
			t.Errorf("sparkline(%v, %d) = %q, want %q", tc.samples, tc.width, got, tc.want)
		}
	}
	// 60 samples in 16 cells: the newest peak must survive the merge.
	s := make([]float64, 60)
	s[59] = 100
	if got := sparkline(s, 16); !strings.HasSuffix(got, "█") || strings.Count(got, "█") != 1 {
		t.Errorf("merged sparkline %q lost or spread the peak", got)
	}
}

func TestGroupDigits(t *testing.T) {
	for n, want := range map[uint64]string{0: "0", 999: "999", 1000: "1,000", 1204: "1,204", 1234567: "1,234,567"} {
		if got := groupDigits(n); got != want {
			t.Errorf("groupDigits(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestRing(t *testing.T) {
	r := newRing[int](3)
	for i := 1; i <= 5; i++ {
		r.Push(i)
	}
	if got := r.Slice(); !slices.Equal(got, []int{3, 4, 5}) || r.Len() != 3 {
		t.Errorf("ring = %v (len %d), want [3 4 5]", got, r.Len())
	}
}

func TestInboxBounded(t *testing.T) {
	box := newInbox(100, 100)
	u := servicetest.LoadBatch(t0, 1, 80)
	p := box.port(0, 1)
	p.put(u)
	p.put(u) // 160 pending, 60 over the bound
	st := api.Status{Host: "h"}
	p.put(api.Update{Status: &st, Dropped: 7})
	b := box.take()
	if len(b.items) != 100 || b.dropped != 60 || len(b.hosts) != 1 || b.hosts[0].dropped != 7 {
		t.Errorf("took %d items, %d dropped here, news %+v; want 100, 60 and 7 dropped upstream", len(b.items), b.dropped, b.hosts)
	}
	// The newest events are kept: the last one is the last of the batch.
	if last := b.items[len(b.items)-1].ev.PID; last != 80 {
		t.Errorf("last pid %d, want 80", last)
	}
	if !b.items[len(b.items)-80].skipped { // index 0 of the second batch
		t.Error("Skipped index lost")
	}
	if b.hosts[0].status == nil || b.hosts[0].status.Host != "h" {
		t.Error("status lost")
	}
	if b2 := box.take(); len(b2.items) != 0 || b2.dropped != 0 || len(b2.hosts) != 0 {
		t.Error("take did not empty the inbox")
	}
}

func TestHeaderRates(t *testing.T) {
	var h header
	at := t0
	h.observe(api.Status{Time: at, Sensor: event.Stats{Exec: 100, Escalation: 1, Exit: 90}})
	h.observe(api.Status{Time: at.Add(2 * time.Second), Sensor: event.Stats{Exec: 10100, Escalation: 5, Exit: 8090}})
	if h.rates != [3]float64{5000, 2, 4000} {
		t.Errorf("rates = %v", h.rates)
	}
	out := ansi.Strip(h.View(newTheme(true), 160, screenIncidents, int(screenCount-1), 4))
	if !strings.Contains(out, "exec 5.0k/s  esc 2/s  exit 4.0k/s") {
		t.Errorf("header:\n%s", out)
	}
	// A restarted sensor (counters going back) gives zero, not garbage.
	h.observe(api.Status{Time: at.Add(3 * time.Second), Sensor: event.Stats{Exec: 5}})
	if h.rates != [3]float64{} {
		t.Errorf("rates after restart = %v", h.rates)
	}
}

func TestHeaderDropsAndRulesError(t *testing.T) {
	var h header
	h.observe(api.Status{Time: t0, Host: "db", Sensor: event.Stats{Drops: 1500}, QueueDropped: 40, RulesError: "rules.yaml:3:5: unknown field \"sevrity\""})
	h.uiDropped = 2
	out := ansi.Strip(h.View(newTheme(true), 200, screenIncidents, int(screenCount-1), 4))
	for _, want := range []string{"drops 1,542 (queues 40) (ui 2)", `rules error: rules.yaml:3:5: unknown field "sevrity"`, "monitoring OFF"} {
		if !strings.Contains(out, want) {
			t.Errorf("header lacks %q:\n%s", want, out)
		}
	}
}

func TestAncestryTree(t *testing.T) {
	ev := servicetest.ExecEvent(t0, 10, 0, "/bin/sh")
	ev.Ancestors = []event.Ancestor{{PID: 9, Exe: "/usr/bin/sudo"}, {PID: 1, Exe: "/sbin/init"}}
	want := "/sbin/init (1)\n└─ /usr/bin/sudo (9)\n   └─ /bin/sh (10)  ◀ this process\n"
	if got := ancestryTree(&ev); got != want {
		t.Errorf("tree:\n%s\nwant:\n%s", got, want)
	}
	// Without ancestors the parent fields still give one level.
	ev.Ancestors = nil
	ev.PPID, ev.ParentExe = 9, "/usr/bin/sudo"
	if got := ancestryTree(&ev); !strings.HasPrefix(got, "/usr/bin/sudo (9)\n└─ /bin/sh (10)") {
		t.Errorf("tree without ancestors:\n%s", got)
	}
}

func TestBackgroundColourPicksPalette(t *testing.T) {
	m := New(t.Context(), newFake(), testOptions())
	m.Update(tea.BackgroundColorMsg{Color: color.White})
	if m.th.isDark {
		t.Error("white background kept the dark palette")
	}
	light := m.th.sevStyle(rules.SeverityCritical).GetForeground()
	m.Update(tea.BackgroundColorMsg{Color: color.Black})
	if !m.th.isDark {
		t.Error("black background kept the light palette")
	}
	if dark := m.th.sevStyle(rules.SeverityCritical).GetForeground(); dark == light {
		t.Errorf("critical has the same colour %v on light and dark backgrounds", dark)
	}
}

func TestWrapWords(t *testing.T) {
	for _, tc := range []struct {
		in    string
		width int
		want  []string
	}{
		{"rule tmp-exec watches", 10, []string{"rule", "tmp-exec", "watches"}},
		{"a b c", 3, []string{"a b", "c"}},
		{"/a/very/long/path/name", 8, []string{"/a/very/", "long/pat", "h/name"}},
		{"keep  two spaces", 40, []string{"keep  two spaces"}},
		{"", 5, []string{""}},
		{"one\ntwo", 10, []string{"one", "two"}},
	} {
		if got := wrapWords(tc.in, tc.width); !slices.Equal(got, tc.want) {
			t.Errorf("wrapWords(%q, %d) = %q, want %q", tc.in, tc.width, got, tc.want)
		}
	}
}
