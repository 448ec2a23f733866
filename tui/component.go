package tui

import (
	"fmt"
	"time"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"

	"github.com/procwatch/procwatch/event"
)

// component is one screen of the UI, built the way soft-serve's tabs and
// crush's dialogs are: it says what its title line holds, lists its keys
// with their help (the help screen, the hint line and the unknown-key
// check are built from them), handles those keys, draws its body and is
// told its size. It does no I/O: what needs the service comes back as a
// tea.Cmd. The Model keeps what every screen shares (header, hosts,
// dialogs, the detail pane) and hands each key to the active component
// after the global and navigation keys.
type component interface {
	// list is the screen's table, for navigation and the filter.
	list() lister
	// title is what the title line says after the screen's name.
	title() []string
	// keys are the screen's own bindings; hint the ones the hint line
	// shows, most important first.
	keys() []key.Binding
	hint() []key.Binding
	// update handles a key of the screen that is not a global or a
	// navigation key.
	update(msg tea.KeyPressMsg) tea.Cmd
	// view draws the body under the title line.
	view() string
	// setSize lays the screen out for a body of w×h cells.
	setSize(w, h int)
	// shown runs when the screen becomes the active one: what it shows
	// is loaded or caught up then.
	shown() tea.Cmd
	// refresh hands rows that arrived to the list while it is visible.
	refresh()
}

// baseComp holds what every component has: the model it belongs to and
// which screen it is.
type baseComp struct {
	m  *Model
	id screen
}

func (b baseComp) keys() []key.Binding { return b.m.keys.screenKeys(b.id, b.m.several()) }
func (b baseComp) hint() []key.Binding {
	return b.m.keys.hint(keyContext{screen: b.id, several: b.m.several()})
}
func (b baseComp) shown() tea.Cmd { return nil }
func (b baseComp) refresh()       {}

// newComponents builds the screens of m, in screen order.
func newComponents(m *Model) [screenCount]component {
	var c [screenCount]component
	c[screenIncidents] = incidentsComp{baseComp{m, screenIncidents}}
	for i := range m.streams {
		c[screenExec+screen(i)] = streamComp{baseComp{m, screenExec + screen(i)}, m.streams[i]}
	}
	c[screenNoise] = noiseComp{baseComp{m, screenNoise}}
	c[screenSkips] = skipsComp{baseComp{m, screenSkips}}
	c[screenRules] = rulesComp{baseComp{m, screenRules}}
	c[screenHosts] = hostsComp{baseComp{m, screenHosts}}
	return c
}

// comp returns the active screen.
func (m *Model) comp() component { return m.comps[m.active] }

// Incidents.

type incidentsComp struct{ baseComp }

func (c incidentsComp) list() lister { return c.m.inc.list }
func (c incidentsComp) title() []string {
	order := "newest first"
	if c.m.inc.bySev {
		order = "by severity"
	}
	parts := []string{fmt.Sprintf("%s shown", groupDigits(uint64(c.m.inc.list.Len()))), order}
	if n := c.m.inc.evicted; n > 0 {
		parts = append(parts, fmt.Sprintf("%s let go to stay under %s (in the hosts' stores)", groupDigits(uint64(n)), groupDigits(uint64(c.m.inc.maxHeld))))
	}
	if c.m.several() {
		parts = append(parts, c.m.hostScope())
	}
	return parts
}
func (c incidentsComp) update(msg tea.KeyPressMsg) tea.Cmd { return c.m.handleIncidentKey(msg) }
func (c incidentsComp) view() string                       { return c.m.inc.list.View(c.m.th) }
func (c incidentsComp) setSize(w, h int)                   { c.m.inc.list.SetSize(w, h) }
func (c incidentsComp) refresh()                           { c.m.inc.refresh() }

// Exec, Escalations, Exits.

type streamComp struct {
	baseComp
	s *streamScreen
}

func (c streamComp) list() lister { return c.s.list }
func (c streamComp) title() []string {
	parts := []string{fmt.Sprintf("%s rows (last %s kept)", groupDigits(uint64(c.s.rows.Len())), groupDigits(uint64(c.m.opts.Rows)))}
	switch {
	case c.s.paused:
		parts = append(parts, c.m.th.paused.Render("PAUSED · "+groupDigits(c.s.newRows)+" new"))
	case c.s.list.follow:
		parts = append(parts, "following")
	default:
		parts = append(parts, "scrolled (G follows)")
	}
	return parts
}
func (c streamComp) update(msg tea.KeyPressMsg) tea.Cmd { return c.m.handleStreamKey(msg) }
func (c streamComp) view() string                       { return c.s.list.View(c.m.th) }
func (c streamComp) setSize(w, h int)                   { c.s.list.SetSize(w, h) }
func (c streamComp) refresh()                           { c.s.refresh() }

// Noise.

type noiseComp struct{ baseComp }

func (c noiseComp) list() lister { return c.m.noise }
func (c noiseComp) title() []string {
	win := "last hour"
	if c.m.noiseWin > time.Hour {
		win = "last day"
	}
	return append([]string{win, "suggested skips for open incidents, most first"}, c.m.focusTitle()...)
}
func (c noiseComp) update(msg tea.KeyPressMsg) tea.Cmd { return c.m.handleNoiseKey(msg) }
func (c noiseComp) view() string                       { return c.m.noise.View(c.m.th) }
func (c noiseComp) setSize(w, h int)                   { c.m.noise.SetSize(w, h) }
func (c noiseComp) shown() tea.Cmd                     { return c.m.loadNoise() }

// Skips.

type skipsComp struct{ baseComp }

func (c skipsComp) list() lister                       { return c.m.skips }
func (c skipsComp) title() []string                    { return c.m.countAndFocus(c.m.skips) }
func (c skipsComp) update(msg tea.KeyPressMsg) tea.Cmd { return c.m.handleSkipsKey(msg) }
func (c skipsComp) view() string                       { return c.m.skips.View(c.m.th) }
func (c skipsComp) setSize(w, h int)                   { c.m.skips.SetSize(w, h) }
func (c skipsComp) shown() tea.Cmd                     { return loadSkips(c.m.ctx, c.m.target(c.m.focus)) }

// Rules.

type rulesComp struct{ baseComp }

func (c rulesComp) list() lister                       { return c.m.rulesList }
func (c rulesComp) title() []string                    { return c.m.countAndFocus(c.m.rulesList) }
func (c rulesComp) update(msg tea.KeyPressMsg) tea.Cmd { return c.m.handleRulesKey(msg) }
func (c rulesComp) view() string                       { return c.m.rulesList.View(c.m.th) }
func (c rulesComp) setSize(w, h int)                   { c.m.rulesList.SetSize(w, h) }
func (c rulesComp) shown() tea.Cmd                     { return loadRules(c.m.ctx, c.m.target(c.m.focus)) }

// countAndFocus is the title of the skips and rules screens: how many
// rows, and whose they are.
func (m *Model) countAndFocus(l lister) []string {
	return append([]string{fmt.Sprintf("%d", l.Len())}, m.focusTitle()...)
}

// focusTitle names, for the title line, the host whose noise, skips and
// rules are shown: nothing with one host, there is no other.
func (m *Model) focusTitle() []string {
	if !m.several() {
		return nil
	}
	return []string{"host " + event.DisplayString(m.hosts[m.focus].name)}
}

// Hosts (several hosts only).

type hostsComp struct{ baseComp }

func (c hostsComp) list() lister                       { return c.m.hostsList }
func (c hostsComp) title() []string                    { return []string{c.m.hostsTitle()} }
func (c hostsComp) update(msg tea.KeyPressMsg) tea.Cmd { return c.m.handleHostsKey(msg) }
func (c hostsComp) view() string {
	body := c.m.hostsList.View(c.m.th)
	if notes := c.m.hostNotes(); notes != "" {
		body += "\n\n" + notes
	}
	return body
}

// setSize makes the hosts table as tall as its rows; the notes on
// unreachable hosts go below it.
func (c hostsComp) setSize(w, h int) {
	c.m.hostsList.SetSize(w, max(min(h/2, len(c.m.hosts)+1), min(h, 3)))
}
func (c hostsComp) shown() tea.Cmd { c.m.refreshHosts(); return nil }
