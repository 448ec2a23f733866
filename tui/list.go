package tui

import (
	"cmp"
	"slices"
	"sort"
	"strings"

	"charm.land/bubbles/v2/table"
	"charm.land/lipgloss/v2"
	"github.com/charmbracelet/x/ansi"

	"github.com/procwatch/procwatch/rules"
)

// column describes one column of a list. Fixed columns get min cells, or
// max on wide terminals; the flexible column takes what is left. Columns
// with a drop rank are hidden, highest rank first, when the flexible column
// would get narrower than its min (flexMin when it sets none).
type column struct {
	title    string
	min, max int
	flex     bool
	drop     int
}

// flexMin is the narrowest a flexible column may get before optional
// columns are hidden; flexRoom is what it keeps before fixed columns grow.
const (
	flexMin  = 16
	flexRoom = 48
)

// row is one formatted line of a list, holding the item it shows (an
// incident, an event, a skip…). Its cells are escaped once, when the row
// is built, so rendering never sees process bytes.
type row[T any] struct {
	key   uint64
	cells []string
	sev   rules.Severity
	dim   bool
	hay   string // lower-case text the filter searches
	item  T
	host  int // index of the host the row came from (0 with one host)
	// tail, when set, is shown at the end of the flexible column when its
	// text is too long for it (an incident's arguments): rows that differ
	// only there still look different.
	tail string
	// line is the row rendered (not selected) for lineKey's layout and
	// theme, reused by every frame that shows it.
	line    string
	lineKey lineKey
	// lazy: cells, hay and tail are not made yet; the list's format makes
	// them when the row is first drawn or filtered, so a row that scrolls
	// past unseen in a flood costs one allocation.
	lazy bool
}

// lister is what the Model needs of any screen's list, whatever its rows
// hold: moving, filtering, sizing and drawing.
type lister interface {
	Move(n int)
	Page() int
	Home()
	End()
	Filter() string
	SetFilter(s string)
	SetSize(w, h int)
	Len() int
	View(th theme) string
}

// listView is the scrolling, filterable table shared by the incident list,
// the event streams and the noise, skips and rules screens. It keeps the
// selection on the same row key while rows arrive or leave, and renders only
// the rows that fit through a bubbles table.
type listView[T any] struct {
	cols   []column
	sevCol int // column coloured by row severity; -1 for none
	tail   bool
	// byKey says rows are ordered by key (ascending in tail mode, descending
	// otherwise), so the selection can be found by binary search.
	byKey bool
	// follow keeps the selection on the newest row: the last one in tail
	// mode, the first one otherwise.
	follow bool

	all, shown []*row[T]
	filter     string
	// cmp, when set, is the order of all and shown: batches are merged
	// in (applySorted) and the selection found by binary search.
	cmp func(a, b *row[T]) int
	// format fills the cells, hay and tail of a lazy row.
	format func(r *row[T])

	sel    uint64
	selRow *row[T] // the selected row, for finding it again by cmp
	hasSel bool
	idx    int
	top    int

	width, height int
	widths        []int
	// layout counts SetSize calls: cached row lines are for one layout.
	layout uint64
	// tbl only sizes the body as the bubbles table does; rows are drawn
	// by render from cached lines.
	tbl       table.Model
	header    string
	headerKey lineKey
	// gen counts changes to what the list shows; View reuses its last
	// output while gen and the theme are unchanged.
	gen        uint64
	cachedGen  uint64
	cachedVer  int64
	cachedView string
	empty      string
}

func newListView[T any](cols []column, sevCol int, tail bool, empty string) *listView[T] {
	l := &listView[T]{cols: cols, sevCol: sevCol, tail: tail, follow: true, empty: empty}
	l.tbl = table.New(table.WithFocused(true))
	return l
}

// SetSize lays the columns out for a body of w×h cells.
func (l *listView[T]) SetSize(w, h int) {
	l.width, l.height = w, max(h, 2)
	l.widths = layoutColumns(l.cols, w)
	tc := make([]table.Column, len(l.cols))
	for i, c := range l.cols {
		tc[i] = table.Column{Title: c.title, Width: l.widths[i]}
	}
	l.tbl.SetRows(nil)
	l.tbl.SetColumns(tc)
	l.tbl.SetWidth(w)
	l.tbl.SetHeight(l.height)
	l.layout++
	l.clampTop()
	l.gen++
}

// layoutColumns gives each column its width for a total width w; hidden
// columns get 0, which the bubbles table skips.
func layoutColumns(cols []column, w int) []int {
	widths := make([]int, len(cols))
	hidden := make([]bool, len(cols))
	wide := w >= 140
	for {
		used, flexCols, flexWant := 0, 0, 0
		for i, c := range cols {
			if hidden[i] {
				continue
			}
			used++ // padding
			if c.flex {
				flexCols++
				flexWant += cmp.Or(c.min, flexMin)
				continue
			}
			widths[i] = c.min
			if wide && c.max > c.min {
				widths[i] = c.max
			}
			used += widths[i]
		}
		rest := w - used
		if rest >= max(flexWant, flexMin) || !hideOne(cols, hidden) {
			// Spare room beyond what the flexible column needs widens
			// the fixed columns towards their max.
			for i, c := range cols {
				if hidden[i] || c.flex || wide {
					continue
				}
				grow := min(c.max-widths[i], rest-flexRoom)
				if grow > 0 {
					widths[i] += grow
					rest -= grow
				}
			}
			for i, c := range cols {
				switch {
				case hidden[i]:
					widths[i] = 0
				case c.flex && flexCols > 0:
					widths[i] = max(rest/flexCols, 4)
				}
			}
			return widths
		}
	}
}

// hideOne hides the visible column with the highest drop rank.
func hideOne(cols []column, hidden []bool) bool {
	best := -1
	for i, c := range cols {
		if !hidden[i] && c.drop > 0 && (best < 0 || c.drop > cols[best].drop) {
			best = i
		}
	}
	if best < 0 {
		return false
	}
	hidden[best] = true
	return true
}

// SetRows replaces the rows (in display order) and keeps the selection on
// the same key when it is still there.
func (l *listView[T]) SetRows(rows []*row[T]) {
	l.all = rows
	l.refilter()
}

// SetFilter shows only rows whose text contains s, ignoring case.
func (l *listView[T]) SetFilter(s string) {
	l.filter = s
	l.refilter()
}

// Filter returns the current filter text.
func (l *listView[T]) Filter() string { return l.filter }

func (l *listView[T]) refilter() {
	if l.filter == "" {
		l.shown = l.all
	} else {
		needle := strings.ToLower(l.filter)
		l.shown = make([]*row[T], 0, len(l.all)/4)
		for _, r := range l.all {
			if strings.Contains(l.ready(r).hay, needle) {
				l.shown = append(l.shown, r)
			}
		}
	}
	l.reselect()
}

func (l *listView[T]) reselect() {
	l.gen++
	n := len(l.shown)
	switch {
	case n == 0:
		l.idx, l.hasSel = 0, false
		l.top = 0
		return
	case l.follow || !l.hasSel:
		if l.tail {
			l.idx = n - 1
		} else {
			l.idx = 0
		}
	case l.cmp != nil && l.selRow != nil:
		l.idx = l.findCmp(l.selRow)
	case l.byKey:
		l.idx = l.find(l.sel)
	default:
		l.idx = l.findLinear(l.sel)
	}
	l.sel, l.selRow, l.hasSel = l.shown[l.idx].key, l.shown[l.idx], true
	l.clampTop()
}

// findCmp returns the index of the row sorting where r does, or the
// nearest one when it is gone.
func (l *listView[T]) findCmp(r *row[T]) int {
	i, _ := slices.BinarySearchFunc(l.shown, r, l.cmp)
	return min(i, len(l.shown)-1)
}

// applySorted changes a list kept in cmp order by one batch: dels are rows
// it holds that go (a changed row goes and comes back), adds the rows that
// come, in any order. It costs a pass over the rows with memory moves and
// a sort of the batch, never a sort or a filter of what the list holds.
func (l *listView[T]) applySorted(dels, adds []*row[T]) {
	slices.SortFunc(adds, l.cmp)
	if l.filter == "" {
		l.all = mergeSorted(removeSorted(l.all, dels, l.cmp), adds, l.cmp)
		l.shown = l.all
	} else {
		l.all = mergeSorted(removeSorted(l.all, dels, l.cmp), adds, l.cmp)
		needle := strings.ToLower(l.filter)
		match := func(r *row[T]) bool { return strings.Contains(l.ready(r).hay, needle) }
		l.shown = mergeSorted(removeSorted(l.shown, dels, l.cmp), slices.DeleteFunc(slices.Clone(adds), func(r *row[T]) bool { return !match(r) }), l.cmp)
	}
	l.reselect()
}

// ready returns r with its cells, hay and tail made.
func (l *listView[T]) ready(r *row[T]) *row[T] {
	if r.lazy {
		l.format(r)
		r.lazy = false
	}
	return r
}

// removeSorted removes dels (rows rs holds, found by binary search) from
// rs, which is in cmp order, in one pass.
func removeSorted[T any](rs, dels []*row[T], cmp func(a, b *row[T]) int) []*row[T] {
	if len(dels) == 0 {
		return rs
	}
	at := make([]int, 0, len(dels))
	for _, d := range dels {
		if i, ok := slices.BinarySearchFunc(rs, d, cmp); ok && rs[i] == d {
			at = append(at, i)
		}
	}
	if len(at) == 0 {
		return rs
	}
	for _, i := range at { // marked only now: the searches need every row
		rs[i] = nil
	}
	return slices.DeleteFunc(rs, func(r *row[T]) bool { return r == nil })
}

// mergeSorted merges adds (sorted) into rs (sorted) in place, from the
// back: each add finds its place by binary search and the rows after it
// move as one block, so a batch costs k binary searches and one pass of
// memory moves, not a comparison per row held.
func mergeSorted[T any](rs, adds []*row[T], cmp func(a, b *row[T]) int) []*row[T] {
	if len(adds) == 0 {
		return rs
	}
	n, k := len(rs), len(adds)
	rs = slices.Grow(rs, k)[:n+k]
	i := n - 1 // the last row of rs not yet moved
	for j := k - 1; j >= 0; j-- {
		// The first of rs[:i+1] that sorts after adds[j]; equal rows stay first.
		p := sort.Search(i+1, func(x int) bool { return cmp(rs[x], adds[j]) > 0 })
		copy(rs[p+j+1:], rs[p:i+1])
		rs[p+j] = adds[j]
		i = p - 1
	}
	return rs
}

// find returns the index of key in shown, or the nearest sensible index when
// the row is gone (evicted or filtered out).
func (l *listView[T]) find(key uint64) int {
	// Rows are ordered by key in both directions, so search.
	lo, hi := 0, len(l.shown)
	for lo < hi {
		m := (lo + hi) / 2
		k := l.shown[m].key
		if k == key {
			return m
		}
		if (k < key) == l.tail {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo >= len(l.shown) {
		return len(l.shown) - 1
	}
	return lo
}

// findLinear is find for lists whose order is not by key (incidents sorted
// by severity, noise by count).
func (l *listView[T]) findLinear(key uint64) int {
	for i, r := range l.shown {
		if r.key == key {
			return i
		}
	}
	return min(l.idx, len(l.shown)-1)
}

func (l *listView[T]) clampTop() {
	h := l.tbl.Height()
	if h <= 0 {
		h = 1
	}
	if l.idx < l.top {
		l.top = l.idx
	}
	if l.idx >= l.top+h {
		l.top = l.idx - h + 1
	}
	l.top = max(0, min(l.top, len(l.shown)-h))
}

// Move moves the selection by n rows (negative is up) and turns follow mode
// off unless the move lands on the newest row.
func (l *listView[T]) Move(n int) {
	if len(l.shown) == 0 {
		return
	}
	l.idx = max(0, min(l.idx+n, len(l.shown)-1))
	l.sel, l.selRow, l.hasSel = l.shown[l.idx].key, l.shown[l.idx], true
	newest := 0
	if l.tail {
		newest = len(l.shown) - 1
	}
	l.follow = l.tail && l.idx == newest
	l.clampTop()
	l.gen++
}

// Home selects the first row, End the last one.
func (l *listView[T]) Home() { l.Move(-len(l.shown)) }

// End selects the last row.
func (l *listView[T]) End() { l.Move(len(l.shown)) }

// Page is the number of rows one page moves.
func (l *listView[T]) Page() int { return max(l.tbl.Height()-1, 1) }

// Selected returns the selected row, or nil when the list is empty.
func (l *listView[T]) Selected() *row[T] {
	if len(l.shown) == 0 || l.idx >= len(l.shown) {
		return nil
	}
	return l.shown[l.idx]
}

// Len returns the number of rows shown after filtering.
func (l *listView[T]) Len() int { return len(l.shown) }

// View renders the visible window of rows.
func (l *listView[T]) View(th theme) string {
	if l.cachedView != "" && l.cachedGen == l.gen && l.cachedVer == th.version {
		return l.cachedView
	}
	l.cachedView = l.render(th)
	l.cachedGen, l.cachedVer = l.gen, th.version
	return l.cachedView
}

// render draws the header and the visible rows as the bubbles table
// would, from lines cached on the rows: a row is rendered once per layout
// and theme, so a frame costs the visible rows' lookups and the selected
// row, whatever moved in the list.
func (l *listView[T]) render(th theme) string {
	h := l.tbl.Height()
	end := min(l.top+h, len(l.shown))
	key := lineKey{layout: l.layout, theme: th.version}
	if l.header == "" || l.headerKey != key {
		l.header, l.headerKey = l.headerLine(th), key
	}
	lines := make([]string, 0, end-l.top)
	for i := l.top; i < end; i++ {
		r := l.ready(l.shown[i])
		if i == l.idx {
			// Plain cells, so the reverse style covers the whole line.
			lines = append(lines, th.table.Selected.Render(l.rowLine(l.withTail(r).cells, th)))
			continue
		}
		if r.line == "" || r.lineKey != key {
			r.line, r.lineKey = l.rowLine(l.styled(l.withTail(r), th), th), key
		}
		lines = append(lines, r.line)
	}
	body := lipgloss.NewStyle().Width(l.tbl.Width()).Height(h).Render(strings.Join(lines, "\n"))
	out := l.header + "\n" + body
	if len(l.shown) == 0 {
		msg := l.empty
		if l.filter != "" && len(l.all) > 0 {
			msg = "no rows match the filter"
		}
		out = lipgloss.JoinVertical(lipgloss.Left, firstLine(out), th.dim.Render("  "+msg))
	}
	return fitLines(out, l.height)
}

// lineKey is what a cached line was rendered for.
type lineKey struct {
	layout uint64
	theme  int64
}

// headerLine renders the column titles as the bubbles table does.
func (l *listView[T]) headerLine(th theme) string {
	s := make([]string, 0, len(l.cols))
	for i, c := range l.cols {
		w := l.widths[i]
		if w <= 0 {
			continue
		}
		cell := lipgloss.NewStyle().Width(w).MaxWidth(w).Inline(true).Render(ansi.Truncate(c.title, w, "…"))
		s = append(s, th.table.Header.Render(cell))
	}
	return lipgloss.JoinHorizontal(lipgloss.Top, s...)
}

// rowLine renders one row's cells as the bubbles table does.
func (l *listView[T]) rowLine(cells []string, th theme) string {
	s := make([]string, 0, len(cells))
	for i, v := range cells {
		if i >= len(l.widths) || l.widths[i] <= 0 {
			continue
		}
		w := l.widths[i]
		cell := lipgloss.NewStyle().Width(w).MaxWidth(w).Inline(true).Render(ansi.Truncate(v, w, "…"))
		s = append(s, th.table.Cell.Render(cell))
	}
	return lipgloss.JoinHorizontal(lipgloss.Top, s...)
}

// withTail returns r with its tail fitted into the flexible column when
// the column's text does not fit: the head of the text, cut, then the
// tail, cut to at most half the column.
func (l *listView[T]) withTail(r *row[T]) *row[T] {
	if r.tail == "" {
		return r
	}
	for i, c := range l.cols {
		if !c.flex || i >= len(r.cells) || i >= len(l.widths) {
			continue
		}
		w, cell := l.widths[i], r.cells[i]
		if w <= 0 || ansi.StringWidth(cell) <= w {
			return r
		}
		tail := ansi.Truncate(r.tail, max(w/2, 1), "…")
		head := ansi.Truncate(cell, max(w-ansi.StringWidth(tail)-3, 1), "…")
		cp := *r
		cp.cells = append([]string(nil), r.cells...)
		cp.cells[i] = head + " · " + tail
		return &cp
	}
	return r
}

func (l *listView[T]) styled(r *row[T], th theme) table.Row {
	if !r.dim && (l.sevCol < 0 || r.sev == rules.SeverityNone) {
		return r.cells
	}
	cells := make(table.Row, len(r.cells))
	for i, c := range r.cells {
		switch {
		case r.dim:
			cells[i] = th.dim.Render(c)
		case i == l.sevCol:
			cells[i] = th.sevStyle(r.sev).Render(c)
		default:
			cells[i] = c
		}
	}
	return cells
}

// fitLines pads or cuts s to exactly h lines. Lines are already no wider
// than the screen, so this is cheaper than a lipgloss height style.
func fitLines(s string, h int) string {
	n := strings.Count(s, "\n") + 1
	switch {
	case n < h:
		return s + strings.Repeat("\n", h-n)
	case n > h:
		i, cut := 0, 0
		for ; i < h; i++ {
			cut += strings.IndexByte(s[cut:], '\n') + 1
		}
		return s[:cut-1]
	}
	return s
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}
