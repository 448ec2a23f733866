package tui

import (
	"cmp"
	"hash/fnv"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/procwatch/procwatch/rules"
	"github.com/procwatch/procwatch/sensor"
	"github.com/procwatch/procwatch/service"
)

// screen names one tab of the UI.
type screen int

const (
	screenIncidents screen = iota
	screenExec
	screenEscalations
	screenExits
	screenNoise
	screenSkips
	screenRules
	screenCount
)

var screenNames = [screenCount]string{"Incidents", "Exec", "Escalations", "Exits", "Noise", "Skips", "Rules"}

func (s screen) isStream() bool { return s >= screenExec && s <= screenExits }

// incidentsScreen keeps every incident the UI knows, formatted once, and
// shows them newest first or by severity.
type incidentsScreen struct {
	byID      map[rules.ID]*row
	bySev     bool
	list      *listView
	lastID    rules.ID
	needsSort bool
}

func newIncidentsScreen() *incidentsScreen {
	l := newListView(incidentColumns(), 1, false, "no incidents yet")
	l.byKey = true
	l.follow = false // new incidents must not pull the selection away
	return &incidentsScreen{byID: map[rules.ID]*row{}, list: l}
}

// upsert formats new or changed incidents and replaces their rows.
func (s *incidentsScreen) upsert(list []rules.Incident, users *userCache, loc *time.Location) {
	for i := range list {
		in := list[i]
		s.byID[in.ID] = incidentRow(&in, users, loc)
		s.lastID = max(s.lastID, in.ID)
	}
	if len(list) > 0 {
		s.needsSort = true
	}
}

// setStatus changes the status of incidents the UI holds.
func (s *incidentsScreen) setStatus(ids []rules.ID, st rules.Status, users *userCache, loc *time.Location) {
	for _, id := range ids {
		if r := s.byID[id]; r != nil {
			in := *r.item.(*rules.Incident)
			in.Status = st
			s.byID[id] = incidentRow(&in, users, loc)
			s.needsSort = true
		}
	}
}

// refresh re-sorts and re-filters if anything changed.
func (s *incidentsScreen) refresh() {
	if !s.needsSort {
		return
	}
	s.needsSort = false
	rows := make([]*row, 0, len(s.byID))
	for _, r := range s.byID {
		rows = append(rows, r)
	}
	slices.SortFunc(rows, func(a, b *row) int {
		if s.bySev && a.sev != b.sev {
			return cmp.Compare(b.sev, a.sev)
		}
		return cmp.Compare(b.key, a.key)
	})
	s.list.byKey = !s.bySev
	s.list.SetRows(rows)
}

func (s *incidentsScreen) toggleSort() {
	s.bySev = !s.bySev
	s.needsSort = true
	s.refresh()
}

func (s *incidentsScreen) selected() *rules.Incident {
	if r := s.list.Selected(); r != nil {
		return r.item.(*rules.Incident)
	}
	return nil
}

// shown returns the incidents on screen, in screen order.
func (s *incidentsScreen) shown() []rules.Incident {
	out := make([]rules.Incident, 0, len(s.list.shown))
	for _, r := range s.list.shown {
		out = append(out, *r.item.(*rules.Incident))
	}
	return out
}

// streamScreen is one live stream of events, bounded to the last cap rows.
// Pausing freezes what is shown while rows keep arriving and being counted.
type streamScreen struct {
	typ       sensor.EventType
	rows      *ring[*row]
	list      *listView
	seq       uint64
	paused    bool
	newRows   uint64
	dirty     bool
	evictions uint64
}

func newStreamScreen(t sensor.EventType, capacity int) *streamScreen {
	cols, verdict := streamColumns(t)
	l := newListView(cols, verdict, true, "waiting for events…")
	l.byKey = true
	return &streamScreen{typ: t, rows: newRing[*row](capacity), list: l}
}

func (s *streamScreen) add(it *streamItem, users *userCache, loc *time.Location) {
	s.seq++
	if s.rows.Len() == len(s.rows.buf) {
		s.evictions++
	}
	s.rows.Push(streamRow(s.seq, it, users, loc))
	s.dirty = true
	if s.paused {
		s.newRows++
	}
}

// refresh hands the rows to the list unless the view is paused.
func (s *streamScreen) refresh() {
	if s.paused || !s.dirty {
		return
	}
	s.dirty = false
	s.list.SetRows(s.rows.Slice())
}

func (s *streamScreen) togglePause() {
	s.paused = !s.paused
	s.newRows = 0
	if !s.paused {
		s.dirty = true
		s.refresh()
	}
}

func (s *streamScreen) selected() *streamItem {
	if r := s.list.Selected(); r != nil {
		return r.item.(*streamItem)
	}
	return nil
}

func keyOf(parts ...string) uint64 {
	h := fnv.New64a()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return h.Sum64()
}

// noiseEntry is one row of the noise screen.
type noiseEntry struct {
	kind string // rules.SkipCommand or rules.SkipPath
	service.NoiseEntry
}

func noiseColumns() []column {
	return []column{
		{title: "COUNT", min: 7, max: 9},
		{title: "KIND", min: 7, max: 7},
		{title: "RULE", min: 16, max: 28, drop: 1},
		{title: "COMMAND OR PATH", flex: true},
	}
}

func noiseRows(n service.Noise) []*row {
	var entries []noiseEntry
	for _, e := range n.Commands {
		entries = append(entries, noiseEntry{rules.SkipCommand, e})
	}
	for _, e := range n.Paths {
		entries = append(entries, noiseEntry{rules.SkipPath, e})
	}
	slices.SortStableFunc(entries, func(a, b noiseEntry) int { return cmp.Compare(b.Count, a.Count) })
	rows := make([]*row, len(entries))
	for i := range entries {
		e := &entries[i]
		rule := "all rules"
		if e.Rule != "" {
			rule = sensor.DisplayString(e.Rule)
		}
		cells := []string{groupDigits(uint64(e.Count)), e.kind, rule, sensor.DisplayString(e.Value)}
		rows[i] = &row{key: keyOf(e.kind, e.Rule, e.Value), cells: cells, hay: hay(cells...), item: e}
	}
	return rows
}

func skipColumns() []column {
	return []column{
		{title: "SOURCE", min: 10, max: 10},
		{title: "KIND", min: 7, max: 7},
		{title: "RULE", min: 14, max: 24},
		{title: "VALUE", flex: true},
		{title: "NOTE", min: 12, max: 30, drop: 1},
		{title: "ADDED", min: 16, max: 16, drop: 2},
	}
}

func skipRows(list []rules.Skip, loc *time.Location) []*row {
	rows := make([]*row, len(list))
	for i := range list {
		s := &list[i]
		rule := "all rules"
		if s.Rule != "" {
			rule = sensor.DisplayString(s.Rule)
		}
		added := ""
		if !s.AddedAt.IsZero() {
			added = s.AddedAt.In(loc).Format("2006-01-02 15:04")
		}
		note := sensor.DisplayString(s.Note)
		if s.AddedBy != "" {
			note = strings.TrimSpace(note + " (" + sensor.DisplayString(s.AddedBy) + ")")
		}
		cells := []string{sensor.DisplayString(s.Source), sensor.DisplayString(s.Kind), rule, sensor.DisplayString(s.Value), note, added}
		rows[i] = &row{key: keyOf(s.ID, s.Source, s.Kind, s.Rule, s.Value), cells: cells, hay: hay(cells...), item: s,
			dim: s.Source != rules.SourceAdded}
	}
	return rows
}

func ruleColumns() []column {
	return []column{
		{title: "RULE", min: 18, max: 28},
		{title: "TYPE", min: 19, max: 19, drop: 2},
		{title: "SUCCESS", min: 8, max: 8},
		{title: "FAILURE", min: 8, max: 8},
		{title: "SKIPS", min: 5, max: 5, drop: 1},
		{title: "SELECTORS", flex: true},
	}
}

func ruleRows(list []rules.Rule) []*row {
	rows := make([]*row, len(list))
	for i := range list {
		r := &list[i]
		nskips := len(r.Skip.Commands) + len(r.Skip.Paths) + len(r.Skip.Users)
		cells := []string{sensor.DisplayString(r.Name), sensor.DisplayString(r.Type), r.Severity.Success.String(),
			r.Severity.Failure.String(), strconv.Itoa(nskips), selectorText(r.Match)}
		rows[i] = &row{key: keyOf(r.Name), cells: cells, hay: hay(cells...), item: r,
			sev: max(r.Severity.Success, r.Severity.Failure)}
	}
	return rows
}
