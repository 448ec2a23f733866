package tui

import (
	"cmp"
	"fmt"
	"hash/fnv"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/procwatch/procwatch/event"
	"github.com/procwatch/procwatch/rules"
	"github.com/procwatch/procwatch/suggest"
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
	screenHosts // only when the UI shows several hosts
	screenCount
)

var screenNames = [screenCount]string{"Incidents", "Exec", "Escalations", "Exits", "Noise", "Skips", "Rules", "Hosts"}

func (s screen) isStream() bool { return s >= screenExec && s <= screenExits }

// incidentsScreen keeps every incident the UI knows, formatted once, and
// shows them newest first or by severity. With several hosts it merges
// them, each row naming its host, and can show one host only.
type incidentsScreen struct {
	byID      map[incKey]*row[*rules.Incident]
	bySev     bool
	list      *listView[*rules.Incident]
	names     []string // host names; nil with one host
	onlyHost  int      // show only this host's incidents; -1 shows all
	needsSort bool
	// maxHeld bounds byID; evicted counts the incidents let go (evict).
	maxHeld, evicted int
	// users and loc format rows when they are first drawn (lazily).
	users *userCache
	loc   *time.Location
}

// incKey identifies an incident across hosts: ids are unique per host only.
type incKey struct {
	host int
	id   rules.ID
}

func newIncidentsScreen(names []string, maxHeld int) *incidentsScreen {
	cols, sevCol := incidentColumns(names != nil)
	l := newListView[*rules.Incident](cols, sevCol, false, "no incidents yet")
	l.follow = false // new incidents must not pull the selection away
	s := &incidentsScreen{byID: map[incKey]*row[*rules.Incident]{}, list: l, names: names, onlyHost: -1, maxHeld: maxHeld}
	l.cmp = s.order
	l.format = func(r *row[*rules.Incident]) { formatIncidentRow(r, s.hostName(r.host), s.users, s.loc) }
	return s
}

// order is the list's order: newest id first (by severity first when
// sorted so), then by host; a total order, since (host, id) is unique.
func (s *incidentsScreen) order(a, b *row[*rules.Incident]) int {
	if s.bySev && a.sev != b.sev {
		return cmp.Compare(b.sev, a.sev)
	}
	if c := cmp.Compare(b.item.ID, a.item.ID); c != 0 {
		return c
	}
	return cmp.Compare(a.host, b.host)
}

func (s *incidentsScreen) hostName(host int) string {
	if s.names == nil || host >= len(s.names) {
		return ""
	}
	return s.names[host]
}

// upsertHost is upsert for a list of one host (a load).
func (s *incidentsScreen) upsertHost(host int, list []rules.Incident, users *userCache, loc *time.Location) rules.ID {
	b := make([]hostIncident, len(list))
	for i := range list {
		b[i] = hostIncident{host: host, inc: list[i]}
	}
	return s.upsert(b, nil, users, loc)[host]
}

// upsert formats new or changed incidents (those keep accepts; nil keeps
// all) and merges their rows into the list: the cost is the batch's,
// plus a pass of memory moves over the list, never a sort of everything.
// It returns the greatest id per host, for resuming.
func (s *incidentsScreen) upsert(list []hostIncident, keep func(host, gen int) bool, users *userCache, loc *time.Location) map[int]rules.ID {
	last := map[int]rules.ID{}
	var dels, adds []*row[*rules.Incident]
	var inBatch map[incKey]int // index in adds of a row this batch added
	for i := range list {
		hi := &list[i]
		if keep != nil && !keep(hi.host, hi.gen) {
			continue
		}
		k := incKey{hi.host, hi.inc.ID}
		s.users, s.loc = users, loc
		r := lazyIncidentRow(&hi.inc, hi.host, s.hostName(hi.host))
		old := s.byID[k]
		s.byID[k] = r
		last[hi.host] = max(last[hi.host], hi.inc.ID)
		if s.onlyHost >= 0 && hi.host != s.onlyHost {
			continue
		}
		if j, ok := inBatch[k]; ok {
			adds[j] = r // a newer version of one this batch brought
			continue
		}
		if old != nil {
			dels = append(dels, old)
		}
		if inBatch == nil {
			inBatch = make(map[incKey]int, len(list))
		}
		inBatch[k] = len(adds)
		adds = append(adds, r)
	}
	if !s.needsSort && len(adds) > 0 {
		s.list.applySorted(dels, adds)
	}
	// (With needsSort, the next refresh rebuilds the list from byID.)
	s.evict()
	return last
}

// evict lets the most expendable tenth of the incidents go once more than
// maxHeld are held (rules.ExpendableFirst), so a long session on a busy
// fleet cannot fill the UI's memory, and a flood of low incidents pushes
// out its own kind before an open high one.
func (s *incidentsScreen) evict() {
	if s.maxHeld <= 0 || len(s.byID) <= s.maxHeld {
		return
	}
	all := make([]*row[*rules.Incident], 0, len(s.byID))
	for _, r := range s.byID {
		all = append(all, r)
	}
	slices.SortFunc(all, func(a, b *row[*rules.Incident]) int {
		if c := rules.ExpendableFirst(a.item, b.item); c != 0 {
			return c
		}
		return cmp.Compare(a.host, b.host)
	})
	dels := all[:len(all)-s.maxHeld*9/10]
	for _, r := range dels {
		delete(s.byID, incKey{r.host, r.item.ID})
	}
	s.evicted += len(dels)
	if !s.needsSort {
		slices.SortFunc(dels, s.order)
		s.list.applySorted(dels, nil)
	}
}

// setStatus changes the status of incidents the UI holds.
func (s *incidentsScreen) setStatus(host int, ids []rules.ID, st rules.Status, users *userCache, loc *time.Location) {
	var list []hostIncident
	for _, id := range ids {
		if r := s.byID[incKey{host, id}]; r != nil {
			in := *r.item
			in.Status = st
			list = append(list, hostIncident{host: host, inc: in})
		}
	}
	s.upsert(list, nil, users, loc)
}

// showHost shows one host's incidents (-1: every host's).
func (s *incidentsScreen) showHost(host int) {
	s.onlyHost = host
	s.needsSort = true
	s.refresh()
}

// refresh rebuilds the list from every incident held when its order or
// host filter changed (an operator's action, not a flow of incidents).
func (s *incidentsScreen) refresh() {
	if !s.needsSort {
		return
	}
	s.needsSort = false
	rows := make([]*row[*rules.Incident], 0, len(s.byID))
	for k, r := range s.byID {
		if s.onlyHost < 0 || k.host == s.onlyHost {
			rows = append(rows, r)
		}
	}
	slices.SortFunc(rows, s.order)
	s.list.SetRows(rows)
}

func (s *incidentsScreen) toggleSort() {
	s.bySev = !s.bySev
	s.needsSort = true
	s.refresh()
}

// selected returns the incident under the cursor and its host.
func (s *incidentsScreen) selected() (*rules.Incident, int) {
	if r := s.list.Selected(); r != nil {
		return r.item, r.host
	}
	return nil, 0
}

// shown returns the incidents on screen, in screen order.
func (s *incidentsScreen) shown() []rules.Incident {
	out := make([]rules.Incident, 0, len(s.list.shown))
	for _, r := range s.list.shown {
		out = append(out, *r.item)
	}
	return out
}

// streamScreen is one live stream of events, bounded to the last cap rows.
// Pausing freezes what is shown while rows keep arriving and being counted.
type streamScreen struct {
	names   []string // host names; nil with one host
	rows    *ring[*row[*streamItem]]
	list    *listView[*streamItem]
	seq     uint64
	paused  bool
	newRows uint64
	dirty   bool
}

func newStreamScreen(t event.EventType, capacity int, names []string) *streamScreen {
	cols, verdict := streamColumns(t, names != nil)
	l := newListView[*streamItem](cols, verdict, true, "waiting for events…")
	l.byKey = true
	return &streamScreen{names: names, rows: newRing[*row[*streamItem]](capacity), list: l}
}

func (s *streamScreen) add(it *streamItem, users *userCache, loc *time.Location) {
	s.seq++
	name := ""
	if s.names != nil {
		name = s.names[it.host]
	}
	s.rows.Push(streamRow(s.seq, it, name, users, loc))
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
		return r.item
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

func noiseColumns() []column {
	return []column{
		{title: "COUNT", min: 6, max: 9},
		{title: "RULE", min: 14, max: 24, drop: 2},
		{title: "SUGGESTED SKIP", min: 24, flex: true},
		{title: "WARNINGS", min: 10, max: 60, drop: 1},
	}
}

// noiseRows shows each suggestion: how many incidents it silences, for
// which rule, the skip, and its warnings in brief.
func noiseRows(list []suggest.Suggestion) []*row[*suggest.Suggestion] {
	rows := make([]*row[*suggest.Suggestion], len(list))
	for i := range list {
		sg := &list[i]
		s := sg.Skip
		what := event.DisplayString(s.Kind) + " " + event.DisplayString(s.Value)
		if s.Pin != "" {
			what += " (pinned)"
		}
		var warn []string
		for _, w := range sg.Warnings {
			warn = append(warn, event.DisplayString(w.Code))
		}
		cells := []string{groupDigits(uint64(sg.Count)), ruleScope(s.Rule), what, strings.Join(warn, ", ")}
		rows[i] = &row[*suggest.Suggestion]{key: keyOf(s.Kind, s.Rule, s.Value, s.Pin), cells: cells, hay: hay(cells...), item: sg}
	}
	return rows
}

// ruleScope names, escaped, the rule a skip or noise entry is for; a
// skip without a rule covers all of them.
func ruleScope(rule string) string {
	if rule == "" {
		return "all rules"
	}
	return event.DisplayString(rule)
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

func skipRows(list []rules.Skip, loc *time.Location) []*row[*rules.Skip] {
	rows := make([]*row[*rules.Skip], len(list))
	for i := range list {
		s := &list[i]
		added := ""
		if !s.AddedAt.IsZero() {
			added = s.AddedAt.In(loc).Format("2006-01-02 15:04")
		}
		note := event.DisplayString(s.Note)
		if s.AddedBy != "" {
			note = strings.TrimSpace(note + " (" + event.DisplayString(s.AddedBy) + ")")
		}
		cells := []string{event.DisplayString(s.Source), event.DisplayString(s.Kind), ruleScope(s.Rule), event.DisplayString(s.Value), note, added}
		rows[i] = &row[*rules.Skip]{key: keyOf(s.ID, s.Source, s.Kind, s.Rule, s.Value), cells: cells, hay: hay(cells...), item: s,
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

func ruleRows(list []rules.Rule) []*row[*rules.Rule] {
	rows := make([]*row[*rules.Rule], len(list))
	for i := range list {
		r := &list[i]
		nskips := len(r.Skip.Commands) + len(r.Skip.Paths) + len(r.Skip.Users)
		cells := []string{event.DisplayString(r.Name), event.DisplayString(r.Type), r.Severity.Success.String(),
			r.Severity.Failure.String(), strconv.Itoa(nskips), selectorText(r.Match)}
		rows[i] = &row[*rules.Rule]{key: keyOf(r.Name), cells: cells, hay: hay(cells...), item: r,
			sev: max(r.Severity.Success, r.Severity.Failure)}
	}
	return rows
}

// statusLong names a triage status in a sentence.
func statusLong(st rules.Status) string {
	switch st {
	case rules.StatusAcknowledged:
		return "acknowledged"
	case rules.StatusMasked:
		return "masked"
	case rules.StatusOpen:
		return "open"
	}
	return event.DisplayString(string(st))
}

// confirmAll asks to give every incident the list shows (filter and host
// scope applied) status st, naming how many change and how many already
// have it.
func (m *Model) confirmAll(st rules.Status) {
	ids := make([][]rules.ID, len(m.hosts))
	n, already := 0, 0
	for _, r := range m.inc.list.shown {
		in := r.item
		if in.Status == st {
			already++
			continue
		}
		ids[r.host] = append(ids[r.host], in.ID)
		n++
	}
	verb := "Acknowledge"
	if st == rules.StatusMasked {
		verb = "Mask"
	}
	if n == 0 {
		m.setMsg("nothing to %s: the %d incident(s) shown are all %s already", strings.ToLower(verb), already, statusLong(st))
		return
	}
	var to []target
	var hostsHit []hostResult
	for h, l := range ids {
		if len(l) > 0 {
			t := m.target(h)
			t.ids = l
			to = append(to, t)
			hostsHit = append(hostsHit, hostResult{host: h})
		}
	}
	scope := "shown"
	if f := m.inc.list.Filter(); f != "" {
		scope = "shown by the filter \"" + event.DisplayString(f) + "\""
	}
	c := &confirmation{
		prompt: fmt.Sprintf("%s all %d incident(s) %s%s?", verb, n, scope, m.onWhat(hostsHit)),
		yes:    setStatus(m.ctx, to, st),
	}
	if already > 0 {
		c.lines = append(c.lines, fmt.Sprintf("%d more shown are %s already and stay so.", already, statusLong(st)))
	}
	c.lines = append(c.lines, "R re-opens an incident one at a time.")
	if n > suggest.ManyIncidents {
		c.warnings = append(c.warnings, fmt.Sprintf("changes %d incidents (more than %d)", n, suggest.ManyIncidents))
	}
	m.confirm = c
}
