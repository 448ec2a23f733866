package tui

import (
	"cmp"
	"context"
	"fmt"
	"strconv"
	"strings"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"

	"github.com/procwatch/procwatch/api"
	"github.com/procwatch/procwatch/event"
	"github.com/procwatch/procwatch/hosts"
	"github.com/procwatch/procwatch/rules"
)

// Host is one of several hosts the UI shows together, each with its own
// service (usually a *hosts.Host reached over a transport command).
type Host struct {
	// Name is how the UI labels the host: the configured name, not the
	// name its agent reports, since two agents may share a machine.
	Name    string
	Service api.Service
	// Conn reports the connection state for the Hosts screen; nil means
	// the service is always there (an in-process pipeline).
	Conn func() hosts.Conn
}

// FromHosts adapts connected hosts for NewHosts and RunHosts.
func FromHosts(list []*hosts.Host) []Host {
	out := make([]Host, len(list))
	for i, h := range list {
		out[i] = Host{Name: h.Name(), Service: h, Conn: h.Conn}
	}
	return out
}

// NewHosts builds the UI on a list of hosts, one or several, through the
// same code: incidents and events of all of them merged, actions routed to
// the host an incident came from. With several, a HOST column, a Hosts
// screen to see their state and switch monitoring on several at once, and
// host names in titles and messages tell them apart. The list must not be
// empty.
func NewHosts(ctx context.Context, list []Host, opts Options) *Model {
	hv := make([]*hostView, len(list))
	for i, h := range list {
		hv[i] = &hostView{name: h.Name, svc: h.Service, conn: h.Conn}
	}
	return newModel(ctx, hv, opts)
}

// hostView is what the UI holds about one host: its subscription, the
// last incident id it saw there (to resume from), its status and rates,
// its connection and whether the operator selected it.
type hostView struct {
	name string
	svc  api.Service
	conn func() hosts.Conn

	gen    int // the current subscription; older ones' updates are ignored
	lastID rules.ID

	hdr       header // status and event rates of this host
	state     hosts.Conn
	haveState bool
	statusErr string
	subErr    string

	selected     bool
	result       string // outcome of the last action, short for the table
	resultErr    bool
	resultDetail string // the same in full, with the error
}

// connState is the host's connection as the Hosts screen names it.
func (h *hostView) connState() hosts.State {
	switch {
	case h.conn != nil && h.haveState:
		return h.state.State
	case h.conn != nil:
		return hosts.Connecting
	case h.statusErr != "":
		return hosts.Unreachable
	}
	return hosts.Connected
}

// trouble says, escaped, why what the UI shows of the host may be stale:
// its connection is down, or its subscription or status failed; "" when
// all is well.
func (h *hostView) trouble() string {
	if h.conn != nil && h.haveState && h.state.State != hosts.Connected {
		return cmp.Or(h.reason(), h.state.State.String())
	}
	return cmp.Or(h.subErr, h.statusErr)
}

// reason says why the host is not connected, escaped.
func (h *hostView) reason() string {
	switch {
	case h.connState() == hosts.Connected:
		return ""
	case h.state.Reason != "":
		return event.DisplayString(h.state.Reason)
	case h.statusErr != "":
		return h.statusErr
	}
	return h.subErr
}

func hostColumns() []column {
	return []column{
		{title: "SEL", min: 3, max: 3},
		{title: "HOST", min: 10, max: 20},
		{title: "STATE", min: 11, max: 11},
		{title: "MON", min: 4, max: 4},
		{title: "EV/S", min: 6, max: 7, drop: 2},
		{title: "DROPS", min: 6, max: 9, drop: 3},
		{title: "OPEN C/H/M/L/I", min: 14, max: 20, drop: 1},
		{title: "LAST ACTION", flex: true},
	}
}

// refreshHosts rebuilds the Hosts screen's rows and the header from the
// hosts' state; it runs whatever the number of hosts.
func (m *Model) refreshHosts() {
	m.hostsDirty = false
	rows := make([]*row[*hostView], len(m.hosts))
	for i, h := range m.hosts {
		sel := "[ ]"
		if h.selected {
			sel = "[x]"
		}
		st := h.connState()
		mon, rate, drops, open := "?", "-", "-", "-"
		if h.hdr.have && st == hosts.Connected {
			switch state, _ := h.hdr.sensorState(); state {
			case sensorAttached:
				mon = "on"
			case sensorFailed:
				mon = "FAIL"
			case sensorStarting:
				mon = "…"
			default:
				mon = "off"
			}
			rate = compact(h.hdr.rates[0] + h.hdr.rates[1] + h.hdr.rates[2])
			drops = groupDigits(h.hdr.st.Sensor.Drops + h.hdr.st.QueueDropped + h.hdr.uiDropped)
			var n []string
			for s := rules.SeverityCritical; s >= rules.SeverityInfo; s-- {
				n = append(n, fmt.Sprint(h.hdr.st.OpenBySev[s.String()]))
			}
			open = strings.Join(n, "/")
		}
		name := event.DisplayString(h.name)
		cells := []string{sel, name, st.String(), mon, rate, drops, open, h.result}
		rows[i] = &row[*hostView]{key: keyOf(h.name), cells: cells, hay: hay(cells...), item: h, host: i,
			dim: st != hosts.Connected}
	}
	m.hostsList.SetRows(rows)
	m.mergeHeader()
}

// hostNotes explains, below the hosts table and in full, why each host
// that is not connected is not, and what failed in the last action.
func (m *Model) hostNotes() string {
	var lines []string
	for _, h := range m.hosts {
		name := event.DisplayString(h.name)
		if st := h.connState(); st != hosts.Connected {
			line := name + " " + st.String()
			if r := h.reason(); r != "" {
				line += ": " + r
			}
			if !h.state.Retry.IsZero() {
				line += " · next attempt " + clock(h.state.Retry, m.opts.Location)
			}
			lines = append(lines, m.th.errText.Render(line))
		}
		if h.resultErr && h.resultDetail != "" {
			lines = append(lines, m.th.warn.Render(name+" "+h.resultDetail))
		}
	}
	if len(lines) == 0 {
		return ""
	}
	return ansi.Wrap(strings.Join(lines, "\n"), m.width, " ")
}

// mergeHeader builds the header from the hosts: one host's header is its
// own, with its trouble as the connection error; several hosts' status is
// summed (see sumHeader).
func (m *Model) mergeHeader() {
	if m.several() {
		m.sumHeader()
	} else {
		h := m.hosts[0]
		src, short := m.hdr.source, m.hdr.sourceShort
		m.hdr = h.hdr
		m.hdr.source, m.hdr.sourceShort = src, short
		m.hdr.connErr = h.trouble()
	}
	// What the UI's own inbox dropped, of whichever hosts.
	m.hdr.uiDropped += m.uiDropped
	m.hdr.uiIncDropped = m.uiIncDropped
	m.hdr.uiBacklog = m.uiBacklog
}

// sumHeader sums the hosts' status into the header: events per second,
// drops, open incidents by severity, and a line saying how many hosts are
// connected and monitoring.
func (m *Model) sumHeader() {
	st := api.Status{OpenBySev: map[string]int{}}
	var rates [3]float64
	var uiDropped uint64
	connected, monitoring := 0, 0
	var rulesErrs, off []string
	var alerts []alert
	for _, h := range m.hosts {
		if h.connState() == hosts.Connected {
			connected++
		}
		if !h.hdr.have || h.connState() != hosts.Connected {
			continue
		}
		name := event.DisplayString(h.name)
		switch state, reason := h.hdr.sensorState(); state {
		case sensorAttached:
			monitoring++
		case sensorFailed:
			alerts = append(alerts, alert{text: "✖ " + name + " not monitoring: " + event.DisplayString(reason), err: true})
		case sensorOff:
			off = append(off, name)
		}
		if h.hdr.st.RulesError != "" {
			alerts = append(alerts, alert{text: "✖ " + name + " rules error: " + event.DisplayString(h.hdr.st.RulesError) + " (the previous rules stay active)", err: true})
		}
		for _, a := range storeAlerts(h.hdr.st.Store) {
			a.text = "✖ " + name + strings.TrimPrefix(a.text, "✖")
			alerts = append(alerts, a)
		}
		for k, n := range h.hdr.st.OpenBySev {
			st.OpenBySev[k] += n
		}
		st.Sensor.Drops += h.hdr.st.Sensor.Drops
		st.QueueDropped += h.hdr.st.QueueDropped
		uiDropped += h.hdr.uiDropped
		for i := range rates {
			rates[i] += h.hdr.rates[i]
		}
		if h.hdr.st.RulesError != "" {
			rulesErrs = append(rulesErrs, h.name+": "+h.hdr.st.RulesError)
		}
	}
	if len(off) > 0 {
		alerts = append(alerts, alert{text: "○ monitoring is off on " + strings.Join(off, ", ") + " (Hosts screen: a switches it on)"})
	}
	m.hdr.hostAlerts = alerts // never the one-host alerts: they are in here, named
	st.RulesError = strings.Join(rulesErrs, "; ")
	st.RulesPath = "" // each host has its own; the Rules screen shows the focused one
	m.hdr.st, m.hdr.have, m.hdr.rates, m.hdr.uiDropped = st, true, rates, uiDropped

	// Short enough that the open counts still fit on 80 columns.
	th := m.th
	who := th.bold.Render(fmt.Sprintf("%d hosts", len(m.hosts)))
	if down := len(m.hosts) - connected; down > 0 {
		who += th.errText.Render(fmt.Sprintf(", %d down", down))
	}
	mon := th.ok.Render(fmt.Sprintf("● mon %d/%d", monitoring, len(m.hosts)))
	if monitoring < len(m.hosts) {
		mon = th.warn.Render(fmt.Sprintf("○ mon %d/%d", monitoring, len(m.hosts)))
	}
	for _, a := range alerts {
		if a.err && strings.Contains(a.text, "not monitoring") {
			mon = th.errText.Render(fmt.Sprintf("✖ mon %d/%d", monitoring, len(m.hosts)))
			break
		}
	}
	m.hdr.who = who + th.dim.Render(" │ ") + mon
}

// checkedHosts returns the hosts the operator selected on the Hosts screen.
func (m *Model) checkedHosts() []int {
	var out []int
	for i, h := range m.hosts {
		if h.selected {
			out = append(out, i)
		}
	}
	return out
}

// selectedHosts returns the hosts the operator selected; with none
// selected, the host under the cursor of the Hosts screen.
func (m *Model) selectedHosts() []int {
	out := m.checkedHosts()
	if len(out) == 0 {
		if r := m.hostsList.Selected(); r != nil {
			out = append(out, r.host)
		}
	}
	return out
}

// hostNames lists hosts by name for messages: "web1", "web1, web2", or
// "3 hosts (web1, web2, db1)".
func (m *Model) hostNames(idx []int) string {
	names := make([]string, len(idx))
	for i, h := range idx {
		names[i] = event.DisplayString(m.hosts[h].name)
	}
	if len(names) > 2 {
		return fmt.Sprintf("%d hosts (%s)", len(names), strings.Join(names, ", "))
	}
	return strings.Join(names, ", ")
}

// onWhat names where an action goes, for confirmations: "" with one host,
// " on web1" or " on 2 hosts (...)" otherwise.
func (m *Model) onWhat(results []hostResult) string {
	if !m.several() {
		return ""
	}
	idx := make([]int, len(results))
	for i, r := range results {
		idx[i] = r.host
	}
	return " on " + m.hostNames(idx)
}

// hostsTitle is the Hosts screen's title: counts of hosts by state and of
// selected hosts.
func (m *Model) hostsTitle() string {
	return fmt.Sprintf("%d hosts · %d selected", len(m.hosts), len(m.checkedHosts()))
}

// hostScope tells, on the incidents title line, which hosts are shown and
// where actions go.
func (m *Model) hostScope() string {
	scope := "all hosts"
	if m.inc.onlyHost >= 0 {
		scope = "host " + event.DisplayString(m.hosts[m.inc.onlyHost].name)
	}
	if m.fanOut {
		scope += " · " + m.th.warn.Render("actions → selected hosts")
	}
	return scope
}

// actionHosts returns the hosts an action on an incident or event of host
// goes to: that host, and in fan-out mode every selected host too.
func (m *Model) actionHosts(host int) []int {
	out := []int{host}
	if m.fanOut {
		for _, i := range m.checkedHosts() {
			if i != host {
				out = append(out, i)
			}
		}
	}
	return out
}

// targets returns actionHosts as call targets.
func (m *Model) targets(host int) []target {
	var out []target
	for _, i := range m.actionHosts(host) {
		out = append(out, m.target(i))
	}
	return out
}

// sameIncidentKey says when incidents on different hosts are the same
// finding, for acknowledging or masking it on every selected host: same
// rule, same executable and arguments, same user.
func sameIncidentKey(in *rules.Incident) uint64 {
	return keyOf(in.Rule, commandLine(&in.Process), strconv.FormatUint(uint64(in.Process.UID), 10))
}

// statusTargets returns, for acknowledging or masking in (of host), the
// incidents to change on each target host: in itself, and in fan-out mode
// the open incidents of the other selected hosts that are the same finding.
func (m *Model) statusTargets(in *rules.Incident, host int) []target {
	to := m.actionHosts(host)
	ids := make([][]rules.ID, len(m.hosts))
	ids[host] = []rules.ID{in.ID}
	if m.fanOut {
		inScope := make([]bool, len(m.hosts))
		for _, i := range to {
			inScope[i] = true
		}
		want := sameIncidentKey(in)
		self := incKey{host, in.ID}
		for k, r := range m.inc.byID {
			other := r.item
			if inScope[k.host] && k != self && other.Status == rules.StatusOpen && sameIncidentKey(other) == want {
				ids[k.host] = append(ids[k.host], k.id)
			}
		}
	}
	var out []target
	for _, i := range to {
		if len(ids[i]) > 0 {
			t := m.target(i)
			t.ids = ids[i]
			out = append(out, t)
		}
	}
	return out
}

// handleHostsKey handles the Hosts screen: select hosts, switch
// monitoring on or off on all selected hosts at once, open one host's
// incidents.
func (m *Model) handleHostsKey(msg tea.KeyPressMsg) tea.Cmd {
	k := &m.keys
	r := m.hostsList.Selected()
	switch {
	case key.Matches(msg, k.Select):
		if r != nil {
			m.hosts[r.host].selected = !m.hosts[r.host].selected
			m.refreshHosts()
		}
	case key.Matches(msg, k.SelectAll):
		all := true
		for _, h := range m.hosts {
			all = all && h.selected
		}
		for _, h := range m.hosts {
			h.selected = !all
		}
		m.refreshHosts()
	case key.Matches(msg, k.Activate), key.Matches(msg, k.Deactivate):
		on := key.Matches(msg, k.Activate)
		idx := m.selectedHosts()
		if len(idx) == 0 {
			return nil
		}
		to := make([]target, len(idx))
		for i, h := range idx {
			to[i] = m.target(h)
		}
		if on {
			m.markPending(idx, "monitoring on…")
			return setMonitoring(m.ctx, to, true)
		}
		m.confirm = &confirmation{
			prompt: fmt.Sprintf("Switch monitoring off on %s? Their sensors detach and no events are seen until it is back on.", m.hostNames(idx)),
			yes:    setMonitoring(m.ctx, to, false),
		}
	case key.Matches(msg, k.Open):
		if r != nil {
			m.focus = r.host
			m.inc.showHost(r.host)
			cmd := m.switchTo(screenIncidents)
			return tea.Batch(cmd, loadRules(m.ctx, m.target(m.focus)), loadSkips(m.ctx, m.target(m.focus)))
		}
	case key.Matches(msg, k.Refresh):
		cmds := make([]tea.Cmd, len(m.hosts))
		for i := range m.hosts {
			cmds[i] = m.loadStatus(i, false)
		}
		return tea.Batch(cmds...)
	}
	return nil
}

// markPending notes on each host's row that an action is on its way.
func (m *Model) markPending(idx []int, what string) {
	for _, i := range idx {
		m.hosts[i].result, m.hosts[i].resultErr, m.hosts[i].resultDetail = what, false, ""
	}
	m.refreshHosts()
}

// cycleHostFilter shows all hosts' incidents, then each host's in turn.
// The host shown also becomes the focus of the noise, skips and rules
// screens.
func (m *Model) cycleHostFilter() tea.Cmd {
	next := m.inc.onlyHost + 1
	if next >= len(m.hosts) {
		next = -1
	}
	m.inc.showHost(next)
	if next < 0 {
		m.setMsg("Incidents of all hosts")
		return nil
	}
	m.focus = next
	m.setMsg("Incidents of host %s only · H for the next host", event.DisplayString(m.hosts[next].name))
	return tea.Batch(loadRules(m.ctx, m.target(m.focus)), loadSkips(m.ctx, m.target(m.focus)))
}

// toggleFanOut switches where skips, acknowledgements and masks go.
func (m *Model) toggleFanOut() {
	m.fanOut = !m.fanOut
	if !m.fanOut {
		m.setMsg("Actions go to the host the incident came from")
		return
	}
	sel := m.checkedHosts()
	if len(sel) == 0 {
		m.setMsg("Actions go to the incident's host and the selected hosts: none selected yet (screen 8, space)")
		return
	}
	m.setMsg("Actions go to the incident's host and the selected hosts: %s", m.hostNames(sel))
}
